/*
 * rtree: a two-level radix tree from a chunk address to the metadata of the
 * chunk (an arena chunk descriptor or a huge record). Reads are lock-free
 * (acquire loads); writes take a lock only to create a leaf. A pointer that
 * xalloc does not own maps to NULL, which is how free() recognises it.
 * Keys are addr >> RTREE_LG_GRAIN (the smallest chunk size) for
 * user-space addresses below 2^48; a larger chunk takes several keys.
 * The shape is fixed at build time, so a lookup is two dependent loads.
 */
#ifndef XALLOC_INTERNAL_RTREE_H
#define XALLOC_INTERNAL_RTREE_H

#include "xalloc/internal/util.h"

#define RTREE_LG_VA 48
#define RTREE_LG_GRAIN 21
#define RTREE_LEAF_BITS 13
#define RTREE_ROOT_BITS (RTREE_LG_VA - RTREE_LG_GRAIN - RTREE_LEAF_BITS)

typedef struct {
  void **root[(size_t)1 << RTREE_ROOT_BITS];
} rtree_t;

extern rtree_t rtree_global;

/* Check that chunks of 2^lg_chunk bytes fit the tree; true if not. */
bool rtree_boot(unsigned lg_chunk);

static inline void *rtree_get(uintptr_t addr) {
  if (unlikely(addr >> RTREE_LG_VA)) return NULL;
  uintptr_t key = addr >> RTREE_LG_GRAIN;
  void **leaf = __atomic_load_n(&rtree_global.root[key >> RTREE_LEAF_BITS], __ATOMIC_ACQUIRE);
  if (unlikely(leaf == NULL)) return NULL;
  return __atomic_load_n(&leaf[key & (((uintptr_t)1 << RTREE_LEAF_BITS) - 1)], __ATOMIC_ACQUIRE);
}

/* Map the grain containing addr to val (NULL to clear). True on OOM. */
bool rtree_set(uintptr_t addr, void *val);
/* Map every grain of [addr, addr+size) to val; on OOM nothing is changed
 * and true is returned. */
bool rtree_set_range(uintptr_t addr, size_t size, void *val);

void rtree_prefork(void);
void rtree_postfork_parent(void);
void rtree_postfork_child(void);
#endif
