#ifndef XALLOC_INTERNAL_TAG_H
#define XALLOC_INTERNAL_TAG_H

#include "xalloc/internal/vg.h"

/*
 * tag: free tags (src/tag.c holds the key). Every free small region (in a
 * cache or in its run: a run tags the regions of each of its pages when it
 * first takes a region from that page, and a page not used yet has page
 * word 0, so that no free there takes the fast path; bin.c,
 * arena_run_expose) and every free or cached large
 * object holds tag_of(ptr) in its first word; every object handed to
 * the application has that word cleared. A free that finds the tag is a
 * double free, reported at once; a cached object whose tag is gone when it
 * is about to be handed out was written after free (or pushed twice), and
 * is reported instead of being handed out again, and so is a region whose
 * tag is gone when a refill (or an allocation with the cache off) takes it
 * out of its run. The tag mixes a random
 * per-process key with the address, so application data cannot match it
 * by accident. The tag is only a check: the authority is the run bitmap,
 * which every object meets again when it leaves the cache.
 *
 * ./configure --disable-heap-checks turns tags off (every function here
 * becomes a no-op and tag_present() is false), to measure their cost.
 */
extern uintptr_t tag_key XA_HIDDEN;
/* Choose the key (at initialization, before any object is tagged). */
void tag_boot(void);
static inline uintptr_t tag_of(const void *ptr) { return tag_key ^ (uintptr_t)ptr; }
static inline bool tag_present(const void *ptr) {
  return config_heap_checks && *(const uintptr_t *)ptr == tag_of(ptr);
}
static inline void tag_set(void *ptr) {
  if (config_heap_checks) *(uintptr_t *)ptr = tag_of(ptr);
}
static inline void tag_clear(void *ptr) {
  if (config_heap_checks) *(uintptr_t *)ptr = 0;
}
/* A cached object about to be handed out has lost its tag. */
static inline bool tag_lost(const void *ptr) {
  return config_heap_checks && *(const uintptr_t *)ptr != tag_of(ptr);
}
/* The same test on a cached object being handed out, clearing the tag
 * when it is there: true (and the word left as it was) if it was lost.
 * On x86-64 one xor to memory both tests and clears (the word becomes 0
 * exactly when it held the tag); a lost tag is xored back. */
static inline bool tag_take(void *ptr) {
  if (!config_heap_checks) return false;
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool lost;
  uintptr_t tag = tag_of(ptr);
  __asm__("xorq %[tag], (%[p])" : "=@ccnz"(lost) : [p] "r"(ptr), [tag] "r"(tag) : "memory");
  if (unlikely(lost)) *(uintptr_t *)ptr ^= tag;
  return lost;
#else
  if (*(const uintptr_t *)ptr != tag_of(ptr)) return true;
  *(uintptr_t *)ptr = 0;
  return false;
#endif
}
/* A free region about to leave its run (a refill, or an allocation with
 * the cache off) has lost its tag: it was written after free, or it is
 * live (a double free pushed it into a cache and malloc handed it out).
 * Valgrind sees the region as free: the word is peeked. */
static inline bool tag_lost_peek(const void *ptr) {
  return config_heap_checks && vg_peek_word(ptr) != tag_of(ptr);
}
/* The tag test on memory that may be free as far as valgrind knows. */
static inline bool tag_present_peek(const void *ptr) {
  return config_heap_checks && ((uintptr_t)ptr & 7) == 0 && vg_peek_word(ptr) == tag_of(ptr);
}

/* Junk bytes (junk:true): new memory, freed memory. */
#define JUNK_ALLOC 0xa5
#define JUNK_FREE 0x5a
#endif
