#ifndef XALLOC_INTERNAL_TAG_H
#define XALLOC_INTERNAL_TAG_H

#include "xalloc/internal/util.h"

/*
 * Free tags. Every free small object (in a cache or in its run) and every
 * cached large object holds tcache_tag(ptr) in its first word; every object
 * handed to the application has that word cleared. A free that finds the
 * tag is a double free, reported at once; a cached object whose tag is gone
 * when it is about to be handed out was written after free (or pushed
 * twice), and is reported instead of being handed out again. The tag mixes
 * a random per-process key with the address, so application data cannot
 * match it by accident. The tag is only a check: the authority is the
 * run bitmap, which every object meets again when it leaves the cache.
 */
extern uintptr_t tcache_tag_key;
static inline uintptr_t tcache_tag(const void *ptr) { return tcache_tag_key ^ (uintptr_t)ptr; }
static inline bool tcache_tagged(const void *ptr) { return *(const uintptr_t *)ptr == tcache_tag(ptr); }
static inline void tcache_set_tag(void *ptr) { *(uintptr_t *)ptr = tcache_tag(ptr); }
static inline void tcache_clear_tag(void *ptr) { *(uintptr_t *)ptr = 0; }
#endif
