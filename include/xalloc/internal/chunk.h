/*
 * chunk: chunk-aligned memory for one arena. Free ranges (multiples of the
 * chunk size, chunk aligned) are kept in two trees: by size then address
 * (best fit, lowest address first) and by address (coalescing with both
 * neighbours on free). New memory is reserved from the pages layer in
 * pieces that grow geometrically -- CHUNK_GROW_K reservations of one size
 * before the size doubles -- so that an arena makes O(K log N) mappings for
 * N bytes and the unused part of the reservations is bounded.
 *
 * Free ranges are dirty (may hold resident pages) or clean (purged or never
 * touched; clean ranges read as zero). Dirty bytes above a bound are purged
 * oldest first.
 *
 * All of a chunk_arena_t is protected by its mtx. Lock order: arena lock,
 * then chunk mtx, then base and rtree locks.
 */
#ifndef XALLOC_INTERNAL_CHUNK_H
#define XALLOC_INTERNAL_CHUNK_H

#include "xalloc/internal/mutex.h"
#include "xalloc/internal/rb.h"
#include "xalloc/internal/util.h"

#define CHUNK_GROW_K 2

/* Kinds of metadata that the radix tree points to (first byte of each). */
enum { META_NONE = 0, META_ARENA_CHUNK = 1, META_HUGE = 2, META_FREE = 3 };

typedef struct extent_node_s extent_node_t;
/*
 * A chunk-aligned range: a free range in a chunk_arena_t (kind META_FREE)
 * or a huge allocation (kind META_HUGE, see huge.h). For a free range,
 * szad and ad link it into the trees and dirty_link into the dirty list
 * when dirty. For a huge allocation, ad links it into the arena's huge tree.
 */
struct extent_node_s {
  uint8_t kind;
  bool dirty;  /* free: may have resident pages */
  bool zeroed; /* free: reads as zero */
  void *arena;
  char *addr;
  size_t size;  /* bytes, a multiple of the chunk size */
  size_t usize; /* huge: usable size */
  rb_node_t szad;
  rb_node_t ad;
  extent_node_t *dirty_prev, *dirty_next;
};

typedef struct {
  xmutex_t mtx;
  rb_tree_t szad;
  rb_tree_t ad;
  extent_node_t dirty; /* sentinel of the dirty list, oldest first */
  size_t free_bytes;   /* bytes in the trees */
  size_t dirty_bytes;  /* bytes of dirty ranges in the trees */
  size_t reserved;     /* bytes ever reserved from the pages layer */
  size_t grow_size;    /* size of the next reservation */
  unsigned grow_count; /* reservations made at grow_size */
  uint64_t npurged;    /* bytes purged */
} chunk_arena_t;

void chunk_arena_init(chunk_arena_t *ca);
/*
 * Allocate size bytes (a chunk multiple) at alignment (a power of two >=
 * chunk size). *zeroed tells whether the range reads as zero. NULL with
 * errno ENOMEM when the OS refuses memory.
 */
void *chunk_alloc(chunk_arena_t *ca, size_t size, size_t alignment, bool *zeroed);
/* Give [addr, addr+size) back to the arena's trees. */
void chunk_dalloc(chunk_arena_t *ca, void *addr, size_t size, bool dirty);
/* Take the free range [addr, addr+size) if it is wholly free; true if not. */
bool chunk_alloc_at(chunk_arena_t *ca, void *addr, size_t size, bool *zeroed);
/* Purge all dirty free ranges now. */
void chunk_purge_all(chunk_arena_t *ca);
/* Whether addr lies in a free range of the trees (for error reports). */
bool chunk_contains(chunk_arena_t *ca, const void *addr);
/* Check the trees (order, coalescing, counters); false if broken. */
bool chunk_validate(chunk_arena_t *ca);
extent_node_t *chunk_node_alloc(void);
void chunk_node_free(extent_node_t *node);

void chunk_prefork(chunk_arena_t *ca);
void chunk_postfork_parent(chunk_arena_t *ca);
void chunk_postfork_child(chunk_arena_t *ca);
#endif
