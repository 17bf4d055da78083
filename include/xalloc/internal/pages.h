/*
 * pages: the only layer that makes memory system calls (mmap, munmap,
 * madvise, mprotect). Every function takes and returns page-aligned,
 * page-multiple ranges, and keeps an exact count of the bytes xalloc has
 * mapped: pages_mapped() equals the sum of the sizes of the ranges this
 * layer has handed out and not unmapped, plus stranded bytes (ranges whose
 * munmap failed; they stay mapped, purged, and are counted here).
 */
#ifndef XALLOC_INTERNAL_PAGES_H
#define XALLOC_INTERNAL_PAGES_H

#include "xalloc/internal/util.h"

/* Map size bytes of fresh zeroed memory; NULL (errno ENOMEM) on failure. */
void *pages_map(size_t size);
/*
 * Map exactly [a, a+size) with a % alignment == 0 (alignment a power of two
 * >= PAGE). Over-maps by alignment - PAGE and trims both ends, so what is
 * returned is exactly what is owned. NULL (errno ENOMEM) on failure.
 */
void *pages_map_aligned(size_t size, size_t alignment);
/*
 * Unmap [addr, addr+size). Returns true on failure, in which case the range
 * is purged, stays mapped, and is counted as stranded; the caller must treat
 * it as memory it still owns (or forget it; it is accounted either way).
 */
bool pages_unmap(void *addr, size_t size);
/*
 * Unmap [addr, addr+size) for a caller that keeps the range if that fails
 * (retain:false). On failure (ENOMEM at vm.max_map_count) the range is
 * purged (MADV_DONTNEED), stays mapped and counted in pages_mapped(), is
 * NOT counted as stranded (the caller keeps it as retained memory), the
 * failure is counted in nunmap_kept, and the first such failure prints
 * one line on stderr. Returns PAGES_UNMAPPED, PAGES_KEPT_CLEAN (kept and
 * purged: reads as zero) or PAGES_KEPT (kept, and the purge failed too, as
 * under mlockall: the contents are unknown).
 */
enum { PAGES_UNMAPPED = 0, PAGES_KEPT_CLEAN = 1, PAGES_KEPT = 2 };
int pages_unmap_or_keep(void *addr, size_t size);
/* Give pages back to the kernel. Lazy: MADV_FREE (contents undefined until
 * rewritten). Forced: MADV_DONTNEED (reads as zero afterwards). Both return
 * true on failure. */
bool pages_purge_lazy(void *addr, size_t size);
bool pages_purge_forced(void *addr, size_t size);
/*
 * Reserve size bytes of address space with no access (PROT_NONE, nothing
 * committed): the guarded pool (guard.h). Counted in pages_mapped() like
 * any mapping. NULL (errno ENOMEM) on failure.
 */
void *pages_reserve(size_t size);
/* Make [addr, addr+size) readable and writable (access) or inaccessible
 * (mprotect); true on failure. Each protected piece of a mapping is a
 * kernel mapping of its own (a VMA) until its neighbours get the same
 * protection again: the caller bounds how many it makes. */
bool pages_protect(void *addr, size_t size, bool access);
/* Transparent huge page hints; true on failure. */
bool pages_huge(void *addr, size_t size);
bool pages_nohuge(void *addr, size_t size);
/* The hint the thp option asks for on chunk memory (none for thp:default). */
void pages_set_thp(void *addr, size_t size);

typedef struct {
  size_t mapped;      /* bytes currently mapped by xalloc (incl. stranded) */
  size_t stranded;    /* bytes whose munmap failed, kept mapped and purged */
  uint64_t nmaps;     /* successful mmap calls */
  uint64_t nunmaps;   /* successful munmap calls */
  uint64_t nfailed;   /* failed mmap/munmap/madvise calls */
  uint64_t nunmap_kept; /* failed munmaps whose range the caller kept */
  uint64_t npurge_lazy, npurge_forced; /* successful MADV_FREE / MADV_DONTNEED calls */
  uint64_t nprotect;  /* successful mprotect calls */
} pages_stats_t;
void pages_stats_get(pages_stats_t *out);
static inline size_t pages_mapped(void) {
  extern size_t pages_mapped_bytes;
  return __atomic_load_n(&pages_mapped_bytes, __ATOMIC_RELAXED);
}
#endif
