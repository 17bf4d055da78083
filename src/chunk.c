/* chunk: per-arena chunk trees and reservations (see chunk.h). */
#include <errno.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/chunk.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/sz.h"

static base_pool_t chunk_node_pool = BASE_POOL_INITIALIZER(sizeof(extent_node_t));

/* Dirty bytes kept before purging (until decay-based purging replaces it). */
#define CHUNK_DIRTY_MAX_CHUNKS 4

extent_node_t *chunk_node_alloc(void) { return base_pool_alloc(&chunk_node_pool); }
void chunk_node_free(extent_node_t *node) { base_pool_free(&chunk_node_pool, node); }

static int chunk_cmp_szad(const rb_node_t *a, const rb_node_t *b) {
  const extent_node_t *x = rb_entry(a, extent_node_t, szad);
  const extent_node_t *y = rb_entry(b, extent_node_t, szad);
  if (x->size != y->size) return x->size < y->size ? -1 : 1;
  if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
  return 0;
}

static int chunk_cmp_ad(const rb_node_t *a, const rb_node_t *b) {
  const extent_node_t *x = rb_entry(a, extent_node_t, ad);
  const extent_node_t *y = rb_entry(b, extent_node_t, ad);
  if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
  return 0;
}

void chunk_arena_init(chunk_arena_t *ca) {
  memset(ca, 0, sizeof(*ca));
  xmutex_init(&ca->mtx);
  rb_init(&ca->szad, chunk_cmp_szad);
  rb_init(&ca->ad, chunk_cmp_ad);
  ca->dirty.dirty_next = ca->dirty.dirty_prev = &ca->dirty;
  ca->grow_size = 2 * sz_chunksize;
}

static void chunk_dirty_insert(chunk_arena_t *ca, extent_node_t *n) {
  n->dirty_prev = ca->dirty.dirty_prev;
  n->dirty_next = &ca->dirty;
  ca->dirty.dirty_prev->dirty_next = n;
  ca->dirty.dirty_prev = n;
  ca->dirty_bytes += n->size;
}

static void chunk_dirty_remove(chunk_arena_t *ca, extent_node_t *n) {
  n->dirty_prev->dirty_next = n->dirty_next;
  n->dirty_next->dirty_prev = n->dirty_prev;
  n->dirty_prev = n->dirty_next = NULL;
  ca->dirty_bytes -= n->size;
}

static void chunk_insert(chunk_arena_t *ca, extent_node_t *n) {
  n->kind = META_FREE;
  rb_insert(&ca->szad, &n->szad);
  rb_insert(&ca->ad, &n->ad);
  ca->free_bytes += n->size;
  if (n->dirty) chunk_dirty_insert(ca, n);
}

static void chunk_remove(chunk_arena_t *ca, extent_node_t *n) {
  rb_remove(&ca->szad, &n->szad);
  rb_remove(&ca->ad, &n->ad);
  ca->free_bytes -= n->size;
  if (n->dirty) chunk_dirty_remove(ca, n);
}

static void chunk_insert_coalesce(chunk_arena_t *ca, extent_node_t *node, char *addr, size_t size,
                                  bool dirty, bool zeroed);

/* Purge a dirty free range: it becomes clean (reads as zero) and merges
 * with clean neighbours. If madvise fails it stays dirty, moved to the end
 * of the dirty list; returns true then. */
static bool chunk_purge_node(chunk_arena_t *ca, extent_node_t *n) {
  if (pages_purge_forced(n->addr, n->size)) {
    chunk_dirty_remove(ca, n);
    chunk_dirty_insert(ca, n);
    return true;
  }
  ca->npurged += n->size;
  chunk_remove(ca, n);
  chunk_insert_coalesce(ca, n, n->addr, n->size, false, true);
  return false;
}

/* Purge oldest first until at most max dirty bytes; each range once. */
static void chunk_purge_to(chunk_arena_t *ca, size_t max) {
  size_t visits = ca->szad.n;
  while (ca->dirty_bytes > max && visits-- > 0) chunk_purge_node(ca, ca->dirty.dirty_next);
}

static void chunk_maybe_purge(chunk_arena_t *ca) { chunk_purge_to(ca, CHUNK_DIRTY_MAX_CHUNKS * sz_chunksize); }

void chunk_purge_all(chunk_arena_t *ca) {
  xmutex_lock(&ca->mtx);
  chunk_purge_to(ca, 0);
  xmutex_unlock(&ca->mtx);
}

/*
 * Insert [addr, addr+size) into the trees, merging with free neighbours.
 * node is a fresh node to describe the range.
 */
static void chunk_insert_coalesce(chunk_arena_t *ca, extent_node_t *node, char *addr, size_t size,
                                  bool dirty, bool zeroed) {
  node->addr = addr;
  node->size = size;
  node->dirty = dirty;
  node->zeroed = zeroed;
  extent_node_t key = {0};
  key.addr = addr;
  rb_node_t *r = rb_psearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *prev = rb_entry(r, extent_node_t, ad);
    /* Only ranges in the same state merge: a clean range reads as zero,
     * and merging it with a dirty one would lose that. */
    if (prev->addr + prev->size == addr && prev->dirty == dirty) {
      chunk_remove(ca, prev);
      node->addr = prev->addr;
      node->size += prev->size;
      chunk_node_free(prev);
    }
  }
  r = rb_nsearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *next = rb_entry(r, extent_node_t, ad);
    if (next->addr == addr + size && next->dirty == dirty) {
      chunk_remove(ca, next);
      node->size += next->size;
      chunk_node_free(next);
    }
  }
  chunk_insert(ca, node);
}

/*
 * Take [addr, addr+size) out of the free node n, which contains it. The
 * lead and trail go back into the trees, described by *spare nodes (set to
 * NULL when used). Returns n's zeroed state.
 */
static bool chunk_take(chunk_arena_t *ca, extent_node_t *n, char *addr, size_t size,
                       extent_node_t **spare1, extent_node_t **spare2) {
  chunk_remove(ca, n);
  bool zeroed = n->zeroed, dirty = n->dirty;
  size_t lead = (size_t)(addr - n->addr);
  size_t trail = n->size - lead - size;
  char *start = n->addr;
  chunk_node_free(n);
  if (lead != 0) {
    extent_node_t *l = *spare1;
    *spare1 = NULL;
    l->addr = start;
    l->size = lead;
    l->dirty = dirty;
    l->zeroed = zeroed;
    chunk_insert(ca, l);
  }
  if (trail != 0) {
    extent_node_t *t = *spare2;
    *spare2 = NULL;
    t->addr = addr + size;
    t->size = trail;
    t->dirty = dirty;
    t->zeroed = zeroed;
    chunk_insert(ca, t);
  }
  return zeroed;
}

/* Best fit: smallest free range that holds size bytes at alignment. */
static extent_node_t *chunk_find(chunk_arena_t *ca, size_t size, size_t alignment, char **addrp) {
  extent_node_t key = {0};
  key.size = size;
  key.addr = NULL;
  for (rb_node_t *r = rb_nsearch(&ca->szad, &key.szad); r != NULL; r = rb_next(r)) {
    extent_node_t *n = rb_entry(r, extent_node_t, szad);
    char *a = (char *)ALIGNMENT_CEILING((uintptr_t)n->addr, alignment);
    if (a >= n->addr && a + size <= n->addr + n->size && a + size > a) {
      *addrp = a;
      return n;
    }
    /* A range at least size + alignment - chunk always fits: stop there. */
    if (n->size >= size + alignment) break;
  }
  return NULL;
}

/* Reserve a new piece from the pages layer and add it to the trees. */
static bool chunk_reserve(chunk_arena_t *ca, size_t size, size_t alignment) {
  size_t rsize = size > ca->grow_size ? size : ca->grow_size;
  extent_node_t *node = chunk_node_alloc();
  if (node == NULL) return true;
  char *p = pages_map_aligned(rsize, alignment);
  if (p == NULL && rsize != size) {
    rsize = size;
    p = pages_map_aligned(rsize, alignment);
  }
  if (p == NULL) {
    chunk_node_free(node);
    errno = ENOMEM;
    return true;
  }
  if (rsize >= ca->grow_size && ++ca->grow_count >= CHUNK_GROW_K) {
    ca->grow_count = 0;
    if (ca->grow_size <= SIZE_MAX / 4) ca->grow_size <<= 1;
  }
  ca->reserved += rsize;
  chunk_insert_coalesce(ca, node, p, rsize, false, true);
  return false;
}

void *chunk_alloc(chunk_arena_t *ca, size_t size, size_t alignment, bool *zeroed) {
  xassert(size != 0 && (size & (sz_chunksize - 1)) == 0);
  if (alignment < sz_chunksize) alignment = sz_chunksize;
  extent_node_t *s1 = chunk_node_alloc(), *s2 = chunk_node_alloc();
  char *ret = NULL;
  if (s1 == NULL || s2 == NULL) goto out;
  xmutex_lock(&ca->mtx);
  char *addr;
  extent_node_t *n = chunk_find(ca, size, alignment, &addr);
  if (n == NULL && !chunk_reserve(ca, size, alignment)) n = chunk_find(ca, size, alignment, &addr);
  if (n != NULL) {
    *zeroed = chunk_take(ca, n, addr, size, &s1, &s2);
    ret = addr;
  }
  xmutex_unlock(&ca->mtx);
out:
  if (s1 != NULL) chunk_node_free(s1);
  if (s2 != NULL) chunk_node_free(s2);
  if (ret == NULL) errno = ENOMEM;
  return ret;
}

bool chunk_alloc_at(chunk_arena_t *ca, void *addr, size_t size, bool *zeroed) {
  extent_node_t *s1 = chunk_node_alloc(), *s2 = chunk_node_alloc();
  bool err = true;
  if (s1 == NULL || s2 == NULL) goto out;
  xmutex_lock(&ca->mtx);
  extent_node_t key = {0};
  key.addr = addr;
  rb_node_t *r = rb_psearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *n = rb_entry(r, extent_node_t, ad);
    if ((char *)addr + size <= n->addr + n->size && (char *)addr + size > (char *)addr) {
      *zeroed = chunk_take(ca, n, addr, size, &s1, &s2);
      err = false;
    }
  }
  xmutex_unlock(&ca->mtx);
out:
  if (s1 != NULL) chunk_node_free(s1);
  if (s2 != NULL) chunk_node_free(s2);
  return err;
}

void chunk_dalloc(chunk_arena_t *ca, void *addr, size_t size, bool dirty) {
  xassert(size != 0 && (size & (sz_chunksize - 1)) == 0);
  extent_node_t *node = chunk_node_alloc();
  if (node == NULL) {
    /* No metadata for the range: purge it and let it go (it stays mapped
     * and counted by the pages layer). */
    pages_purge_forced(addr, size);
    return;
  }
  xmutex_lock(&ca->mtx);
  chunk_insert_coalesce(ca, node, addr, size, dirty, !dirty);
  chunk_maybe_purge(ca);
  xmutex_unlock(&ca->mtx);
}

bool chunk_contains(chunk_arena_t *ca, const void *addr) {
  extent_node_t key;
  key.addr = (char *)addr;
  xmutex_lock(&ca->mtx);
  rb_node_t *r = rb_psearch(&ca->ad, &key.ad);
  bool in = false;
  if (r != NULL) {
    const extent_node_t *n = rb_entry(r, extent_node_t, ad);
    in = (const char *)addr >= n->addr && (const char *)addr < n->addr + n->size;
  }
  xmutex_unlock(&ca->mtx);
  return in;
}

bool chunk_validate(chunk_arena_t *ca) {
  xmutex_lock(&ca->mtx);
  bool ok = rb_validate(&ca->szad) && rb_validate(&ca->ad) && ca->szad.n == ca->ad.n;
  size_t total = 0, dirty = 0;
  const extent_node_t *prev = NULL;
  for (rb_node_t *r = rb_first(&ca->ad); ok && r != NULL; r = rb_next(r)) {
    const extent_node_t *n = rb_entry(r, extent_node_t, ad);
    if (n->kind != META_FREE || n->size == 0 || (n->size & (sz_chunksize - 1)) != 0 ||
        ((uintptr_t)n->addr & (sz_chunksize - 1)) != 0)
      ok = false;
    /* No overlap; neighbours in the same state are merged. */
    if (prev != NULL && (prev->addr + prev->size > n->addr ||
                         (prev->addr + prev->size == n->addr && prev->dirty == n->dirty)))
      ok = false;
    if (n->zeroed == n->dirty) ok = false; /* clean ranges read as zero, dirty ones may not */
    total += n->size;
    if (n->dirty) dirty += n->size;
    prev = n;
  }
  size_t listed = 0;
  for (extent_node_t *n = ca->dirty.dirty_next; ok && n != &ca->dirty; n = n->dirty_next) {
    if (!n->dirty) ok = false;
    listed += n->size;
  }
  if (total != ca->free_bytes || dirty != ca->dirty_bytes || listed != dirty) ok = false;
  xmutex_unlock(&ca->mtx);
  return ok;
}

void chunk_prefork(chunk_arena_t *ca) { xmutex_prefork(&ca->mtx); }
void chunk_postfork_parent(chunk_arena_t *ca) { xmutex_postfork_parent(&ca->mtx); }
void chunk_postfork_child(chunk_arena_t *ca) { xmutex_postfork_child(&ca->mtx); }
