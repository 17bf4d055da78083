/*
 * rtree: a two-level radix tree from a chunk address to the metadata of the
 * chunk (an arena chunk descriptor or a huge record). Reads are lock-free
 * (acquire loads); writes take a lock only to create a leaf. A pointer that
 * xalloc does not own maps to NULL, which is how free() recognises it.
 * Keys are addr >> RTREE_LG_GRAIN (the smallest chunk size) for
 * user-space addresses below 2^48; a larger chunk takes several keys.
 * The shape is fixed at build time, so a lookup is two dependent loads.
 *
 * Page words, for the free fast path: every grain that was ever part of an
 * arena chunk has an array of one 64-bit word per page, kept for good (a
 * grain's array never moves, so a thread may cache where it is: see
 * tcache.h), reached through a second tree of the same shape. A page's
 * word is 0 unless the page belongs to a small run, or is the first page
 * of a large run whose class a thread cache may hold; then it is
 *   (class + 1) << RTREE_PW_CLASS_SHIFT | (uint32_t)-(address of the run)
 * (the low half negated, so that the free fast path gets a pointer's
 * offset in its run with one 32-bit add: x = (uint32_t)ptr + (uint32_t)w),
 * where (class + 1) << (RTREE_PW_CLASS_SHIFT - 32) is the byte offset of the
 * class's bin in a tsd_t (tcache.h checks it). The arena layer writes the
 * words (under the arena lock, when a run changes state or size:
 * rtree_pw_set); rtree_set_range_chunk maps an arena chunk and creates its
 * grains' arrays; a grain whose record is replaced or cleared has its
 * words cleared.
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

#define RTREE_PW_CLASS_SHIFT 37
#define RTREE_PW_PER_GRAIN ((size_t)1 << (RTREE_LG_GRAIN - LG_PAGE))

typedef struct {
  uint64_t *root[(size_t)1 << RTREE_ROOT_BITS]; /* leaves of 2^RTREE_LEAF_BITS arrays */
} rtree_pw_t;
extern rtree_pw_t rtree_pw_global;

static inline uint64_t rtree_pw_word(unsigned ind, uintptr_t run_addr) {
  return ((uint64_t)(ind + 1) << RTREE_PW_CLASS_SHIFT) | (uint32_t)(0u - (uint32_t)run_addr);
}

/* The page words of addr's grain (the word of the page at addr is at
 * index (addr >> LG_PAGE) % RTREE_PW_PER_GRAIN); NULL if the grain never
 * was part of an arena chunk (or addr is out of range). */
static inline uint64_t *rtree_pw_grain(uintptr_t addr) {
  if (unlikely(addr >> RTREE_LG_VA)) return NULL;
  uintptr_t key = addr >> RTREE_LG_GRAIN;
  uint64_t **leaf = (uint64_t **)__atomic_load_n(&rtree_pw_global.root[key >> RTREE_LEAF_BITS], __ATOMIC_ACQUIRE);
  if (unlikely(leaf == NULL)) return NULL;
  return __atomic_load_n(&leaf[key & (((uintptr_t)1 << RTREE_LEAF_BITS) - 1)], __ATOMIC_ACQUIRE);
}

/* Set the words of the npages pages from addr (all in arena chunks). */
void rtree_pw_set(uintptr_t addr, size_t npages, uint64_t word);

/* Map the grain containing addr to val (NULL to clear). True on OOM. */
bool rtree_set(uintptr_t addr, void *val);
/* Map every grain of [addr, addr+size) to val; on OOM nothing is changed
 * and true is returned. */
bool rtree_set_range(uintptr_t addr, size_t size, void *val);
/* The same for an arena chunk val, whose grains get page words. */
bool rtree_set_range_chunk(uintptr_t addr, size_t size, void *val);

void rtree_prefork(void);
void rtree_postfork_parent(void);
void rtree_postfork_child(void);
#endif
