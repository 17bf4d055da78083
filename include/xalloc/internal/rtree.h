/*
 * rtree: a two-level radix tree from a chunk address to the metadata of the
 * chunk (an arena chunk descriptor or a huge record). Reads are lock-free
 * (acquire loads); writes take a lock only to create a leaf. A pointer that
 * xalloc does not own maps to NULL, which is how free() recognises it.
 * Keys are addr >> lg_chunk for user-space addresses below 2^48.
 */
#ifndef XALLOC_INTERNAL_RTREE_H
#define XALLOC_INTERNAL_RTREE_H

#include "xalloc/internal/util.h"

#define RTREE_LG_VA 48
#define RTREE_ROOT_MAX_BITS 16

typedef struct {
  unsigned lg_chunk;
  unsigned leaf_bits;
  unsigned root_bits;
  void **root[(size_t)1 << RTREE_ROOT_MAX_BITS];
} rtree_t;

extern rtree_t rtree_global;

/* Set up for a chunk size; true on failure (lg_chunk out of range). */
bool rtree_boot(unsigned lg_chunk);

static inline void *rtree_get(uintptr_t addr) {
  const rtree_t *rt = &rtree_global;
  if (unlikely(addr >> RTREE_LG_VA)) return NULL;
  uintptr_t key = addr >> rt->lg_chunk;
  void **leaf = __atomic_load_n(&rt->root[key >> rt->leaf_bits], __ATOMIC_ACQUIRE);
  if (unlikely(leaf == NULL)) return NULL;
  return __atomic_load_n(&leaf[key & (((uintptr_t)1 << rt->leaf_bits) - 1)], __ATOMIC_ACQUIRE);
}

/* Map the chunk containing addr to val (NULL to clear). True on OOM. */
bool rtree_set(uintptr_t addr, void *val);
/* Map every chunk of [addr, addr+size) to val; on OOM nothing is changed
 * and true is returned. */
bool rtree_set_range(uintptr_t addr, size_t size, void *val);

void rtree_prefork(void);
void rtree_postfork_parent(void);
void rtree_postfork_child(void);
#endif
