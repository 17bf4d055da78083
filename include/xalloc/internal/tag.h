#ifndef XALLOC_INTERNAL_TAG_H
#define XALLOC_INTERNAL_TAG_H

#include "xalloc/internal/vg.h"

/*
 * Free tags. Every free small region (in a cache or in its run: a run
 * tags all its regions when it is created) and every free or cached large
 * object holds tcache_tag(ptr) in its first word; every object handed to
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
 * becomes a no-op and tcache_tagged() is false), to measure their cost.
 */
extern uintptr_t tcache_tag_key XA_HIDDEN;
static inline uintptr_t tcache_tag(const void *ptr) { return tcache_tag_key ^ (uintptr_t)ptr; }
static inline bool tcache_tagged(const void *ptr) {
  return config_heap_checks && *(const uintptr_t *)ptr == tcache_tag(ptr);
}
static inline void tcache_set_tag(void *ptr) {
  if (config_heap_checks) *(uintptr_t *)ptr = tcache_tag(ptr);
}
static inline void tcache_clear_tag(void *ptr) {
  if (config_heap_checks) *(uintptr_t *)ptr = 0;
}
/* A cached object about to be handed out has lost its tag. */
static inline bool tcache_tag_lost(const void *ptr) {
  return config_heap_checks && *(const uintptr_t *)ptr != tcache_tag(ptr);
}
/* A free region about to leave its run (a refill, or an allocation with
 * the cache off) has lost its tag: it was written after free, or it is
 * live (a double free pushed it into a cache and malloc handed it out).
 * Valgrind sees the region as free: the word is peeked. */
static inline bool tcache_tag_lost_peek(const void *ptr) {
  return config_heap_checks && vg_peek_word(ptr) != tcache_tag(ptr);
}
/* The tag test on memory that may be free as far as valgrind knows. */
static inline bool tcache_tagged_peek(const void *ptr) {
  return config_heap_checks && ((uintptr_t)ptr & 7) == 0 && vg_peek_word(ptr) == tcache_tag(ptr);
}

/* Junk bytes (junk:true): new memory, freed memory. */
#define JUNK_ALLOC 0xa5
#define JUNK_FREE 0x5a
#endif
