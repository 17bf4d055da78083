/*
 * Test-side wrappers of mmap, munmap, madvise and mprotect (unit tests
 * link with -Wl,--wrap=mmap,--wrap=munmap,--wrap=madvise,--wrap=mprotect;
 * mprotect is counted, and can fail too). They record every call
 * the library makes and can make chosen calls fail with ENOMEM.
 */
#ifndef XALLOC_TEST_WRAP_H
#define XALLOC_TEST_WRAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  void *addr;
  size_t size;
} wrap_range_t;

/* Counts of calls made since the start (successful or not). */
extern unsigned long wrap_nmmap, wrap_nmunmap, wrap_nmadvise, wrap_nmprotect;
/* Of the mmap calls: those with PROT_NONE, and those with MAP_FIXED. */
extern unsigned long wrap_nmmap_none, wrap_nmmap_fixed;
/* The most recent successful mmap results (ring of WRAP_LOG entries). */
#define WRAP_LOG 64
extern wrap_range_t wrap_mmap_log[WRAP_LOG];
/* Make the next n calls of mmap / munmap / madvise fail with ENOMEM
 * (0 = none). fail_*_after skips that many successful calls first. */
extern unsigned long wrap_fail_mmap, wrap_fail_mmap_after;
extern unsigned long wrap_fail_munmap, wrap_fail_munmap_after;
extern unsigned long wrap_fail_madvise;
/* Make the next n calls of mprotect fail with ENOMEM (what strict
 * overcommit answers at the commit limit). */
extern unsigned long wrap_fail_mprotect;
void wrap_reset(void);

/* /proc/self/maps helpers: the whole text (read now, in a static buffer);
 * bytes of [a, a+size) covered by mappings; is every byte mapped? any? */
const char *maps_read(void);
size_t maps_covered(uintptr_t a, size_t size);
int maps_all_mapped(uintptr_t a, size_t size);
int maps_any_mapped(uintptr_t a, size_t size);
#endif
