/*
 * base: memory for xalloc's own metadata (chunk descriptors, run
 * descriptors, huge records, radix tree leaves). It lives in its own
 * mappings, never inside memory handed to the application, so an overrun
 * of an application buffer cannot reach it. Memory is carved from blocks
 * that grow geometrically and is never returned to the kernel; fixed-size
 * objects are recycled through pools.
 */
#ifndef XALLOC_INTERNAL_BASE_H
#define XALLOC_INTERNAL_BASE_H

#include "xalloc/internal/mutex.h"
#include "xalloc/internal/util.h"

/* Zeroed memory, 16-byte aligned (64 if size >= 64). NULL on OOM. */
void *base_alloc(size_t size);

/* A free list of objects of one size. */
typedef struct base_pool_s {
  size_t size;
  void *free;
  size_t nlive;
  size_t zero; /* bytes zeroed when an object is reused (0: all of it) */
} base_pool_t;
#define BASE_POOL_INITIALIZER(sz) {(sz), NULL, 0, 0}
/* Zeroed object from the pool (its first pool->zero bytes, if set, when
 * it is reused; new memory is all zero); NULL on OOM. */
void *base_pool_alloc(base_pool_t *pool);
void base_pool_free(base_pool_t *pool, void *obj);

typedef struct {
  size_t mapped;    /* bytes mapped for metadata */
  size_t allocated; /* bytes handed out (pool objects included, live or not) */
} base_stats_t;
void base_stats_get(base_stats_t *out);
/* Call fn on every block base has mapped (with the base lock held: fn
 * must not allocate through base). */
void base_blocks_foreach(void (*fn)(void *arg, void *addr, size_t size), void *arg);

void base_prefork(void);
void base_postfork_parent(void);
void base_postfork_child(void);
#endif
