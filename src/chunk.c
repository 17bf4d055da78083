/* chunk: per-arena chunk trees, reservations, decay (see chunk.h). */
#include <errno.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/chunk.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/sz.h"

static base_pool_t chunk_node_pool = BASE_POOL_INITIALIZER(sizeof(extent_node_t));
size_t chunk_nholes;


extent_node_t *chunk_node_alloc(chunk_arena_t *ca) {
  xmutex_lock(&ca->node_mtx);
  extent_node_t *n = ca->node_cache;
  if (n != NULL) {
    ca->node_cache = n->next;
    ca->nnode_cache--;
  }
  xmutex_unlock(&ca->node_mtx);
  if (n == NULL) return base_pool_alloc(&chunk_node_pool);
  memset(n, 0, sizeof(*n)); /* as base's pools give them */
  return n;
}

void chunk_node_free(chunk_arena_t *ca, extent_node_t *node) {
  xmutex_lock(&ca->node_mtx);
  if (ca->nnode_cache < CHUNK_NODE_CACHE) {
    node->next = ca->node_cache;
    ca->node_cache = node;
    ca->nnode_cache++;
    node = NULL;
  }
  xmutex_unlock(&ca->node_mtx);
  if (node != NULL) base_pool_free(&chunk_node_pool, node);
}

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
  xmutex_init(&ca->node_mtx);
  pthread_cond_init(&ca->purge_cond, NULL);
  for (unsigned s = 0; s < CHUNK_NSTATES; s++) rb_init(&ca->szad[s], chunk_cmp_szad);
  rb_init(&ca->ad, chunk_cmp_ad);
  ca->grow_size = 2 * sz_chunksize;
  dirty_init(&ca->dirty, opt_dirty_decay_ms, opt_muzzy_decay_ms, decay_now_ns());
}

void chunk_arena_renew(chunk_arena_t *ca, extent_hooks_t *hooks, ssize_t dirty_ms, ssize_t muzzy_ms) {
  uint64_t now = decay_now_ns();
  xmutex_lock(&ca->mtx);
  xassert(!ca->purging && ca->ad.n == 0 && ca->free_bytes == 0 && ca->reserved == 0 && ca->purging_bytes == 0);
  ca->npurged = ca->nmadvise = ca->nunmapped = ca->nunmap_kept = 0;
  ca->decommitted = 0;
  ca->nhook_alloc = ca->nhook_dalloc = ca->nhook_refused = 0;
  ca->grow_size = 2 * sz_chunksize;
  ca->grow_count = 0;
  dirty_init(&ca->dirty, dirty_ms, muzzy_ms, now);
  __atomic_store_n(&ca->hooks, hooks, __ATOMIC_RELEASE);
  xmutex_unlock(&ca->mtx);
}

/* ---- extent hooks ---- */

static void *chunk_default_alloc(extent_hooks_t *h, void *new_addr, size_t size, size_t alignment,
                                 bool *zero, bool *commit, unsigned ind) {
  (void)h;
  (void)ind;
  if (size == 0 || (size & (PAGE - 1)) != 0 || alignment == 0 || (alignment & (alignment - 1)) != 0) return NULL;
  if (alignment < PAGE) alignment = PAGE;
  void *p = pages_map_aligned(size, alignment);
  if (p != NULL && new_addr != NULL && p != new_addr) {
    pages_unmap(p, size);
    return NULL;
  }
  if (p == NULL) return NULL;
  *zero = true;
  *commit = true;
  return p;
}
static bool chunk_default_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  (void)h, (void)committed, (void)ind;
  return pages_unmap(addr, size);
}
static void chunk_default_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
  (void)h, (void)committed, (void)ind;
  pages_unmap(addr, size);
}
static bool chunk_default_commit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                                 unsigned ind) {
  (void)h, (void)size, (void)ind;
  return pages_commit((char *)addr + off, len);
}
static bool chunk_default_decommit(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                                   unsigned ind) {
  (void)h, (void)size, (void)ind;
  return pages_decommit((char *)addr + off, len);
}
static bool chunk_default_purge_lazy(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                                     unsigned ind) {
  (void)h, (void)size, (void)ind;
  return pages_purge_lazy((char *)addr + off, len);
}
static bool chunk_default_purge_forced(extent_hooks_t *h, void *addr, size_t size, size_t off, size_t len,
                                       unsigned ind) {
  (void)h, (void)size, (void)ind;
  return pages_purge_forced((char *)addr + off, len);
}
static bool chunk_default_split(extent_hooks_t *h, void *addr, size_t size, size_t a, size_t b, bool c,
                                unsigned ind) {
  (void)h, (void)addr, (void)size, (void)a, (void)b, (void)c, (void)ind;
  return false;
}
static bool chunk_default_merge(extent_hooks_t *h, void *a, size_t sa, void *b, size_t sb, bool c,
                                unsigned ind) {
  (void)h, (void)a, (void)sa, (void)b, (void)sb, (void)c, (void)ind;
  return false;
}

extent_hooks_t chunk_hooks_default = {chunk_default_alloc,      chunk_default_dalloc,       chunk_default_destroy,
                                      chunk_default_commit,     chunk_default_decommit,     chunk_default_purge_lazy,
                                      chunk_default_purge_forced, chunk_default_split,      chunk_default_merge};

static inline extent_hooks_t *chunk_hooks_load(chunk_arena_t *ca) {
  return __atomic_load_n(&ca->hooks, __ATOMIC_ACQUIRE);
}

void chunk_arena_set_user_hooks(chunk_arena_t *ca, extent_hooks_t *h, unsigned ind) {
  ca->ind = ind;
  __atomic_store_n(&ca->hooks, h, __ATOMIC_RELEASE);
}

extent_hooks_t *chunk_hooks_get(chunk_arena_t *ca) {
  extent_hooks_t *h = chunk_hooks_load(ca);
  return h != NULL ? h : &chunk_hooks_default;
}

int chunk_hooks_set(chunk_arena_t *ca, extent_hooks_t *h) {
  if (h == NULL) return EINVAL;
  extent_hooks_t *cur = chunk_hooks_load(ca);
  bool user = h != &chunk_hooks_default;
  if (user && h->alloc == NULL) return EINVAL;
  if ((cur != NULL) != user) return EPERM; /* ranges of one kind would reach the other */
  if (user) __atomic_store_n(&ca->hooks, h, __ATOMIC_RELEASE);
  return 0;
}

/* Whether the hooks let [a, a+sa) and [b, b+sa) (adjacent) become one. */
static bool chunk_merge_ok(chunk_arena_t *ca, char *a, size_t sa, char *b, size_t sb) {
  extent_hooks_t *h = chunk_hooks_load(ca);
  if (h == NULL) return true;
  if (h->merge == NULL || h->merge(h, a, sa, b, sb, true, ca->ind)) {
    __atomic_fetch_add(&ca->nhook_refused, 1, __ATOMIC_RELAXED);
    return false;
  }
  return true;
}

/* Whether the hooks let [addr, addr+size) become two at size_a. */
static bool chunk_split_ok(chunk_arena_t *ca, char *addr, size_t size, size_t size_a) {
  extent_hooks_t *h = chunk_hooks_load(ca);
  if (h == NULL) return true;
  if (h->split == NULL || h->split(h, addr, size, size_a, size - size_a, true, ca->ind)) {
    __atomic_fetch_add(&ca->nhook_refused, 1, __ATOMIC_RELAXED);
    return false;
  }
  return true;
}

bool chunk_split_allocated(chunk_arena_t *ca, void *addr, size_t size, size_t size_a) {
  return !chunk_split_ok(ca, addr, size, size_a);
}

/* Give a hook range back: dalloc, then destroy if dalloc refuses. true if
 * dalloc refused (the range was destroyed, or leaked if destroy is NULL). */
static bool chunk_hook_giveback(chunk_arena_t *ca, extent_hooks_t *h, void *addr, size_t size) {
  if (h->dalloc != NULL && !h->dalloc(h, addr, size, true, ca->ind)) return false;
  if (h->destroy != NULL) h->destroy(h, addr, size, true, ca->ind);
  return true;
}

unsigned chunk_purge_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len, bool lazy) {
  extent_hooks_t *h = chunk_hooks_load(ca);
  if (h == NULL) {
    char *p = (char *)base + off;
    if (lazy) return pages_purge_lazy(p, len) ? CHUNK_PURGE_NONE : CHUNK_PURGE_LAZY;
    return pages_purge_forced(p, len) ? CHUNK_PURGE_NONE : CHUNK_PURGE_FORCED;
  }
  if (lazy && h->purge_lazy != NULL && !h->purge_lazy(h, base, bsize, off, len, ca->ind)) return CHUNK_PURGE_LAZY;
  if (h->purge_forced != NULL && !h->purge_forced(h, base, bsize, off, len, ca->ind)) return CHUNK_PURGE_FORCED;
  __atomic_fetch_add(&ca->nhook_refused, 1, __ATOMIC_RELAXED);
  return CHUNK_PURGE_NONE;
}

bool chunk_decommit_ok(chunk_arena_t *ca) {
  return pages_strict && !chunk_hooked(ca) &&
         __atomic_load_n(&chunk_nholes, __ATOMIC_RELAXED) < pages_hole_budget;
}

bool chunk_commit_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len) {
  if (len == 0) return false;
  extent_hooks_t *h = chunk_hooks_get(ca);
  if (h->commit == NULL || h->commit(h, base, bsize, off, len, ca->ind)) {
    errno = ENOMEM;
    return true;
  }
  __atomic_fetch_sub(&ca->decommitted, len, __ATOMIC_RELAXED);
  return false;
}

bool chunk_decommit_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len) {
  if (len == 0) return false;
  extent_hooks_t *h = chunk_hooks_get(ca);
  if (h->decommit == NULL || h->decommit(h, base, bsize, off, len, ca->ind)) return true;
  __atomic_fetch_add(&ca->decommitted, len, __ATOMIC_RELAXED);
  return false;
}

/*
 * A new range from the user hooks, exactly size bytes at alignment; mtx not
 * held. NULL with errno ENOMEM if the hook fails or breaks its contract (a
 * misaligned range, or one it cannot commit: given back at once).
 */
static void *chunk_hook_alloc(chunk_arena_t *ca, extent_hooks_t *h, size_t size, size_t alignment,
                              bool *zeroed) {
  bool zero = false, commit = true;
  char *p = h->alloc(h, NULL, size, alignment, &zero, &commit, ca->ind);
  if (p == NULL) goto fail;
  if (((uintptr_t)p & (alignment - 1)) != 0 || (uintptr_t)p + size < (uintptr_t)p) {
    util_warn("xalloc: extent hook alloc of arena %u returned %p, not aligned to %zu; given back\n", ca->ind,
          (void *)p, alignment);
    chunk_hook_giveback(ca, h, p, size);
    goto fail;
  }
  if (!commit && (h->commit == NULL || h->commit(h, p, size, 0, size, ca->ind))) {
    chunk_hook_giveback(ca, h, p, size);
    goto fail;
  }
  xmutex_lock(&ca->mtx);
  ca->reserved += size;
  ca->nhook_alloc++;
  xmutex_unlock(&ca->mtx);
  *zeroed = zero;
  return p;
fail:
  errno = ENOMEM;
  return NULL;
}

static inline unsigned chunk_node_state(const extent_node_t *n) {
  return n->dirty ? CHUNK_DIRTY : n->muzzy ? CHUNK_MUZZY : n->retained ? CHUNK_RETAINED : CHUNK_CLEAN;
}

static inline void chunk_node_set_state(extent_node_t *n, unsigned state) {
  n->dirty = state == CHUNK_DIRTY;
  n->muzzy = state == CHUNK_MUZZY;
  n->zeroed = state == CHUNK_CLEAN || state == CHUNK_RETAINED;
  n->retained = state == CHUNK_RETAINED;
}

/* The purge engine's list n is on (dirty.h): DIRTY_NKINDS when clean. */
static inline unsigned chunk_kind_of(const extent_node_t *n) {
  return n->dirty ? DIRTY_D : n->muzzy ? DIRTY_M : DIRTY_NKINDS;
}

static void chunk_list_insert(chunk_arena_t *ca, extent_node_t *n) {
  unsigned k = chunk_kind_of(n);
  if (k != DIRTY_NKINDS) dirty_add(&ca->dirty, k, &n->dlink, n->size >> LG_PAGE);
}

static void chunk_list_remove(chunk_arena_t *ca, extent_node_t *n) {
  unsigned k = chunk_kind_of(n);
  if (k != DIRTY_NKINDS) dirty_del(&ca->dirty, k, &n->dlink, n->size >> LG_PAGE);
}

static void chunk_insert(chunk_arena_t *ca, extent_node_t *n) {
  n->kind = META_FREE;
  rb_insert(&ca->szad[chunk_node_state(n)], &n->szad);
  rb_insert(&ca->ad, &n->ad);
  ca->free_bytes += n->size;
  chunk_list_insert(ca, n);
  if (n->retained) chunk_holes_add(1);
}

static void chunk_remove(chunk_arena_t *ca, extent_node_t *n) {
  rb_remove(&ca->szad[chunk_node_state(n)], &n->szad);
  rb_remove(&ca->ad, &n->ad);
  ca->free_bytes -= n->size;
  chunk_list_remove(ca, n);
  if (n->retained) chunk_holes_add(-1);
}

/*
 * User hooks: ask merge about the free neighbour nb of the range node
 * (adjacent, same state) with mtx released. Both are out of the trees
 * meanwhile (nb counted in purging_bytes), so nothing else can take or
 * merge them. mtx held on entry and on return; nb is freed if merged, put
 * back as it was if refused.
 */
static bool chunk_merge_unlocked(chunk_arena_t *ca, extent_node_t *node, extent_node_t *nb, bool nb_first) {
  chunk_remove(ca, nb);
  ca->purging_bytes += nb->size + node->size;
  xmutex_unlock(&ca->mtx);
  bool ok = nb_first ? chunk_merge_ok(ca, nb->addr, nb->size, node->addr, node->size)
                     : chunk_merge_ok(ca, node->addr, node->size, nb->addr, nb->size);
  xmutex_lock(&ca->mtx);
  ca->purging_bytes -= nb->size + node->size;
  if (!ok) {
    chunk_insert(ca, nb);
    return false;
  }
  if (nb_first) node->addr = nb->addr;
  node->size += nb->size;
  chunk_node_free(ca, nb);
  return true;
}

/*
 * Insert [addr, addr+size) into the trees in state, merging with free
 * neighbours in the same state (a clean range reads as zero; merging it
 * with a dirty or muzzy one would lose that). node describes the range.
 * mtx held; with user hooks it is released while merge is asked (see
 * chunk_merge_unlocked), so the trees may change meanwhile.
 */
static void chunk_insert_coalesce(chunk_arena_t *ca, extent_node_t *node, char *addr, size_t size,
                                  unsigned state) {
  node->addr = addr;
  node->size = size;
  chunk_node_set_state(node, state);
  bool hooked = chunk_hooked(ca);
  extent_node_t key = {0};
  key.addr = addr;
  rb_node_t *r = rb_psearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *prev = rb_entry(r, extent_node_t, ad);
    if (prev->addr + prev->size == addr && chunk_node_state(prev) == state) {
      if (hooked) {
        chunk_merge_unlocked(ca, node, prev, true);
      } else {
        chunk_remove(ca, prev);
        node->addr = prev->addr;
        node->size += prev->size;
        chunk_node_free(ca, prev);
      }
    }
  }
  key.addr = node->addr + node->size - 1;
  r = rb_nsearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *next = rb_entry(r, extent_node_t, ad);
    if (next->addr == node->addr + node->size && chunk_node_state(next) == state) {
      if (hooked) {
        chunk_merge_unlocked(ca, node, next, false);
      } else {
        chunk_remove(ca, next);
        node->size += next->size;
        chunk_node_free(ca, next);
      }
    }
  }
  chunk_insert(ca, node);
}

/* Become ca's one purger (mtx held): false if wait is false and another
 * purge (or a release) is in flight; else waits for it. */
static bool chunk_purger_enter(chunk_arena_t *ca, bool wait) {
  while (ca->purging) {
    if (!wait) return false;
    pthread_cond_wait(&ca->purge_cond, &ca->mtx.lock);
  }
  ca->purging = true;
  return true;
}

static void chunk_purger_exit(chunk_arena_t *ca) {
  ca->purging = false;
  pthread_cond_broadcast(&ca->purge_cond);
}

/*
 * retain:false: give the free range n (out of the trees, in purging_bytes;
 * mtx not held) back for good: the dalloc hook, or munmap. Returns
 * CHUNK_PURGE_UNMAPPED if it is gone; else it is kept (CHUNK_RELEASE_KEPT
 * set), with CHUNK_PURGE_FORCED if it was purged instead (a refused dalloc
 * then the purge hook, or a failed munmap that the pages layer purged:
 * reported once), with CHUNK_PURGE_NONE if that failed too (it keeps its
 * state). The caller counts them under mtx.
 */
#define CHUNK_RELEASE_KEPT 0x10u
static unsigned chunk_release(chunk_arena_t *ca, extent_node_t *n) {
  extent_hooks_t *h = chunk_hooks_load(ca);
  if (h != NULL) {
    if (h->dalloc != NULL && !h->dalloc(h, n->addr, n->size, true, ca->ind)) return CHUNK_PURGE_UNMAPPED;
    __atomic_fetch_add(&ca->nhook_refused, 1, __ATOMIC_RELAXED);
    return CHUNK_RELEASE_KEPT | chunk_purge_pages(ca, n->addr, n->size, 0, n->size, false);
  }
  int r = pages_unmap_or_keep(n->addr, n->size);
  if (r == PAGES_UNMAPPED) return CHUNK_PURGE_UNMAPPED;
  return CHUNK_RELEASE_KEPT | (r == PAGES_KEPT_CLEAN ? CHUNK_PURGE_FORCED : CHUNK_PURGE_NONE);
}

/* A purge batch: the ranges taken out, in order (next). */
typedef struct {
  chunk_arena_t *ca;
  extent_node_t *list, **tail;
} chunk_purge_batch_t;

static void chunk_purge_batch_init(chunk_purge_batch_t *b, chunk_arena_t *ca) {
  b->ca = ca;
  b->list = NULL;
  b->tail = &b->list;
}

/* The take function of the purge engine (dirty.h): the range l links
 * leaves the trees for the batch. mtx held. */
static void chunk_purge_take(void *ctx, dirty_link_t *l, unsigned kind, unsigned op) {
  (void)kind;
  chunk_purge_batch_t *b = ctx;
  extent_node_t *n = rb_entry(l, extent_node_t, dlink);
  chunk_remove(b->ca, n);
  n->purge_op = (uint8_t)op;
  n->next = NULL;
  b->ca->purging_bytes += n->size;
  *b->tail = n;
  b->tail = &n->next;
}

/*
 * Purge the batch's ranges with mtx released, and put them back in their
 * new state (or in their old one, at the tail of their list, if madvise
 * failed). Caller holds mtx (released meanwhile, held again on return) and
 * is the purger.
 */
static void chunk_purge_finish(chunk_purge_batch_t *b) {
  chunk_arena_t *ca = b->ca;
  extent_node_t *list = b->list;
  if (list == NULL) return;
  xmutex_unlock(&ca->mtx);
  unsigned ncalls = 0;
  for (extent_node_t *n = list; n != NULL; n = n->next) {
    if (!opt_retain && n->purge_op == CHUNK_PURGE_FORCED)
      n->purge_op = (uint8_t)chunk_release(ca, n); /* retain:false: for good is unmapped */
    else if (n->purge_op == CHUNK_PURGE_FORCED && chunk_decommit_ok(ca) &&
             !chunk_decommit_pages(ca, n->addr, n->size, 0, n->size))
      n->purge_op = CHUNK_PURGE_DECOMMIT; /* strict overcommit: for good is decommitted */
    else
      n->purge_op = (uint8_t)chunk_purge_pages(ca, n->addr, n->size, 0, n->size, n->purge_op == CHUNK_PURGE_LAZY);
    ncalls++;
  }
  bool hooked = chunk_hooked(ca);
  xmutex_lock(&ca->mtx);
  ca->nmadvise += ncalls;
  extent_node_t *gone = NULL;
  for (extent_node_t *n = list, *next; n != NULL; n = next) {
    next = n->next;
    unsigned state = chunk_node_state(n);
    if (n->purge_op == CHUNK_PURGE_UNMAPPED) {
      ca->npurged += n->size;
      ca->purging_bytes -= n->size;
      ca->reserved -= n->size;
      ca->nunmapped += n->size;
      if (hooked) ca->nhook_dalloc++;
      n->next = gone;
      gone = n;
      continue;
    }
    if (n->purge_op & CHUNK_RELEASE_KEPT) {
      if (!hooked) ca->nunmap_kept++;
      n->purge_op &= (uint8_t)~CHUNK_RELEASE_KEPT;
    }
    if (n->purge_op != 0) {
      ca->npurged += n->size;
      state = n->purge_op == CHUNK_PURGE_LAZY      ? CHUNK_MUZZY
              : n->purge_op == CHUNK_PURGE_DECOMMIT ? CHUNK_RETAINED
                                                    : CHUNK_CLEAN;
    }
    n->purge_op = 0;
    ca->purging_bytes -= n->size;
    if (hooked && state != CHUNK_CLEAN) {
      /* Not purged: the hook range goes back as it was (asking merge
       * again is pointless). */
      chunk_node_set_state(n, state);
      chunk_insert(ca, n);
    } else {
      chunk_insert_coalesce(ca, n, n->addr, n->size, state);
    }
  }
  dirty_settle(&ca->dirty);
  for (extent_node_t *n = gone, *next; n != NULL; n = next) {
    next = n->next;
    chunk_node_free(ca, n);
  }
}

/* Collect (dirty_collect, dirty_step) and purge a batch. mtx held
 * (released meanwhile), the caller the purger. */
static void chunk_purge(chunk_arena_t *ca, bool step, uint64_t now) {
  chunk_purge_batch_t b;
  chunk_purge_batch_init(&b, ca);
  if (step)
    dirty_step(&ca->dirty, now, chunk_purge_take, &b);
  else
    dirty_collect(&ca->dirty, 0, 0, false, chunk_purge_take, &b);
  chunk_purge_finish(&b);
}

void chunk_purge_all(chunk_arena_t *ca) {
  xmutex_lock(&ca->mtx);
  chunk_purger_enter(ca, true);
  chunk_purge(ca, false, 0);
  chunk_purger_exit(ca);
  xmutex_unlock(&ca->mtx);
}

void chunk_decay(chunk_arena_t *ca, uint64_t now, bool wait) {
  xmutex_lock(&ca->mtx);
  if (!chunk_purger_enter(ca, wait)) {
    xmutex_unlock(&ca->mtx);
    return;
  }
  chunk_purge(ca, true, now);
  chunk_purger_exit(ca);
  xmutex_unlock(&ca->mtx);
}

uint64_t chunk_decay_ns_until(chunk_arena_t *ca, uint64_t now) {
  xmutex_lock(&ca->mtx);
  uint64_t t = dirty_ns_until(&ca->dirty, now);
  xmutex_unlock(&ca->mtx);
  return t;
}

/* Reuse (decay.h): what is left after an allocation took a range. mtx
 * held. */
static void chunk_decay_note(chunk_arena_t *ca) { dirty_note(&ca->dirty); }

/* Put [addr, addr+size) back into the trees in state, described by the
 * spare node *spare (set to NULL: used). mtx held. */
static void chunk_insert_piece(chunk_arena_t *ca, extent_node_t **spare, char *addr, size_t size,
                               unsigned state) {
  extent_node_t *n = *spare;
  *spare = NULL;
  n->addr = addr;
  n->size = size;
  chunk_node_set_state(n, state);
  chunk_insert(ca, n);
}

/*
 * Take [addr, addr+size) out of the free node n, which contains it. The
 * lead and trail go back into the trees, described by *spare nodes (set to
 * NULL when used). Returns the state the range was in. mtx held; the
 * pages layer only (user hooks: chunk_take_hooked).
 */
static unsigned chunk_take(chunk_arena_t *ca, extent_node_t *n, char *addr, size_t size, extent_node_t **spare1,
                           extent_node_t **spare2) {
  unsigned state = chunk_node_state(n);
  size_t lead = (size_t)(addr - n->addr);
  size_t trail = n->size - lead - size;
  char *start = n->addr;
  chunk_remove(ca, n);
  chunk_node_free(ca, n);
  if (lead != 0) {
    chunk_insert_piece(ca, spare1, start, lead, state);
  }
  if (trail != 0) {
    chunk_insert_piece(ca, spare2, addr + size, trail, state);
  }
  chunk_decay_note(ca);
  return state;
}

/*
 * The same with user hooks: split is asked before each cut, with mtx
 * released (n is out of the trees meanwhile, counted in purging_bytes).
 * On a refusal n goes back (as the pieces the hook agreed to) and the
 * caller asks the hook for a new range: returns -1. Else 1 if the range
 * reads as zero, 0 if not. mtx held on entry and on return.
 */
static int chunk_take_hooked(chunk_arena_t *ca, extent_node_t *n, char *addr, size_t size,
                             extent_node_t **spare1, extent_node_t **spare2) {
  unsigned state = chunk_node_state(n);
  size_t lead = (size_t)(addr - n->addr);
  size_t trail = n->size - lead - size;
  char *start = n->addr;
  size_t nsize = n->size;
  chunk_remove(ca, n);
  bool lead_ok = true, trail_ok = true;
  if (lead != 0 || trail != 0) {
    ca->purging_bytes += nsize;
    xmutex_unlock(&ca->mtx);
    lead_ok = lead == 0 || chunk_split_ok(ca, start, nsize, lead);
    trail_ok = lead_ok && (trail == 0 || chunk_split_ok(ca, addr, size + trail, size));
    xmutex_lock(&ca->mtx);
    ca->purging_bytes -= nsize;
  }
  if (lead != 0 && lead_ok) {
    chunk_insert_piece(ca, spare1, start, lead, state);
  }
  if (!lead_ok || !trail_ok) {
    /* Back as one hook range: all of n, or what follows the lead. */
    n->addr = lead_ok ? addr : start;
    n->size = lead_ok ? size + trail : nsize;
    chunk_node_set_state(n, state);
    chunk_insert(ca, n);
    return -1;
  }
  chunk_node_free(ca, n);
  if (trail != 0) {
    chunk_insert_piece(ca, spare2, addr + size, trail, state);
  }
  chunk_decay_note(ca);
  return state == CHUNK_CLEAN ? 1 : 0;
}

/*
 * Best fit: the smallest free range that holds size bytes at alignment,
 * dirty ranges first, then muzzy, then clean, then retained (decommitted:
 * a commit call to reuse): memory just freed is reused
 * before memory purged (no page faults, and what the program reuses stays
 * the working set the reuse window keeps: decay.h).
 */
static extent_node_t *chunk_find(chunk_arena_t *ca, size_t size, size_t alignment, char **addrp) {
  static const unsigned order[CHUNK_NSTATES] = {CHUNK_DIRTY, CHUNK_MUZZY, CHUNK_CLEAN, CHUNK_RETAINED};
  extent_node_t key = {0};
  key.size = size;
  key.addr = NULL;
  for (unsigned k = 0; k < CHUNK_NSTATES; k++) {
    for (rb_node_t *r = rb_nsearch(&ca->szad[order[k]], &key.szad); r != NULL; r = rb_next(r)) {
      extent_node_t *n = rb_entry(r, extent_node_t, szad);
      char *a = (char *)ALIGNMENT_CEILING((uintptr_t)n->addr, alignment);
      if (a >= n->addr && a + size <= n->addr + n->size && a + size > a) {
        *addrp = a;
        return n;
      }
      /* A range at least size + alignment - chunk always fits: stop there. */
      if (n->size >= size + alignment) break;
    }
  }
  return NULL;
}

/*
 * Reserve a new piece from the pages layer and add it to the trees. With
 * retain:true the piece grows geometrically (K of each size, then double);
 * with retain:false it is exactly size. A failed growth-sized mapping is
 * retried at exactly size. With pages_strict the piece is reserved
 * uncommitted (retained: no commit charge), and committed when taken.
 */
static char *chunk_reserve_map(size_t size, size_t alignment) {
  return pages_strict ? pages_reserve_aligned(size, alignment) : pages_map_aligned(size, alignment);
}

static bool chunk_reserve(chunk_arena_t *ca, size_t size, size_t alignment) {
  size_t rsize = size;
  if (opt_retain && ca->grow_size > size) rsize = ca->grow_size;
  extent_node_t *node = chunk_node_alloc(ca);
  if (node == NULL) return true;
  char *p = chunk_reserve_map(rsize, alignment);
  if (p == NULL && rsize != size) {
    rsize = size;
    p = chunk_reserve_map(rsize, alignment);
  }
  if (p == NULL) {
    chunk_node_free(ca, node);
    errno = ENOMEM;
    return true;
  }
  pages_set_thp(p, rsize);
  if (opt_retain && rsize >= ca->grow_size && ++ca->grow_count >= CHUNK_GROW_K) {
    ca->grow_count = 0;
    if (ca->grow_size <= SIZE_MAX / 4) ca->grow_size <<= 1;
  }
  ca->reserved += rsize;
  if (pages_strict) __atomic_fetch_add(&ca->decommitted, rsize, __ATOMIC_RELAXED);
  chunk_insert_coalesce(ca, node, p, rsize, pages_strict ? CHUNK_RETAINED : CHUNK_CLEAN);
  return false;
}

/*
 * pages_strict: settle the commit of [addr, addr+size), just taken from a
 * free range in state (mtx not held): a retained range is committed up to
 * *commit (all of it past the hole budget), a committed one has its tail
 * past *commit decommitted if chunk_decommit_ok. *commit is set to what is
 * committed. true if the commit failed (the range is still decommitted).
 */
static bool chunk_settle(chunk_arena_t *ca, char *addr, size_t size, unsigned state, size_t *commit) {
  if (state == CHUNK_RETAINED) {
    size_t want = chunk_decommit_ok(ca) ? *commit : size;
    if (chunk_commit_pages(ca, addr, size, 0, want)) return true;
    *commit = want;
    return false;
  }
  if (*commit >= size || !chunk_decommit_ok(ca) || chunk_decommit_pages(ca, addr, size, *commit, size - *commit))
    *commit = size;
  return false;
}

/* Put a range taken out of the trees (in state) back, as it was. */
static void chunk_untake(chunk_arena_t *ca, char *addr, size_t size, unsigned state) {
  extent_node_t *node = chunk_node_alloc(ca);
  if (node == NULL) {
    /* No metadata: it stays mapped and accounted, owned by nothing. */
    return;
  }
  xmutex_lock(&ca->mtx);
  chunk_insert_coalesce(ca, node, addr, size, state);
  xmutex_unlock(&ca->mtx);
}

/*
 * Out of memory (a reservation or a commit failed): make room and let the
 * caller try once more. Dirty and muzzy ranges are purged for good (with
 * pages_strict: decommitted, which gives their commit charge back), and
 * clean or retained ranges are unmapped (they hold address space, which
 * is what RLIMIT_AS counts). Only with pages_strict or a finite RLIMIT_AS
 * (elsewhere a failed mapping is an answer as it is). true if anything
 * was freed.
 */
bool chunk_relieve(chunk_arena_t *ca) {
  if (chunk_hooked(ca) || !(pages_strict || pages_as_limited())) return false;
  xmutex_lock(&ca->mtx);
  if (!chunk_purger_enter(ca, true)) {
    xmutex_unlock(&ca->mtx);
    return false;
  }
  bool any = ca->dirty.npages[DIRTY_D] != 0 || ca->dirty.npages[DIRTY_M] != 0;
  chunk_purge(ca, false, 0);
  extent_node_t *list = NULL;
  for (unsigned s = 0; s < CHUNK_NSTATES; s++) {
    if (s != CHUNK_CLEAN && s != CHUNK_RETAINED) continue;
    rb_node_t *r;
    while ((r = rb_first(&ca->szad[s])) != NULL) {
      extent_node_t *n = rb_entry(r, extent_node_t, szad);
      chunk_remove(ca, n);
      ca->purging_bytes += n->size;
      n->purge_op = (uint8_t)s;
      n->next = list;
      list = n;
    }
  }
  xmutex_unlock(&ca->mtx);
  extent_node_t *kept = NULL, *gone = NULL;
  size_t unmapped = 0, unmapped_dec = 0;
  for (extent_node_t *n = list, *next; n != NULL; n = next) {
    next = n->next;
    int r = pages_unmap_or_keep(n->addr, n->size);
    if (r == PAGES_UNMAPPED) {
      unmapped += n->size;
      if (n->purge_op == CHUNK_RETAINED) unmapped_dec += n->size;
      n->next = gone;
      gone = n;
    } else {
      /* Kept: a retained range is as it was; a clean one was purged
       * again, or holds anything if that failed too. */
      if (r == PAGES_KEPT && n->purge_op == CHUNK_CLEAN) n->purge_op = CHUNK_DIRTY;
      n->next = kept;
      kept = n;
    }
  }
  __atomic_fetch_sub(&ca->decommitted, unmapped_dec, __ATOMIC_RELAXED);
  xmutex_lock(&ca->mtx);
  for (extent_node_t *n = kept, *next; n != NULL; n = next) {
    next = n->next;
    ca->purging_bytes -= n->size;
    unsigned state = n->purge_op;
    n->purge_op = 0;
    chunk_insert_coalesce(ca, n, n->addr, n->size, state);
  }
  for (extent_node_t *n = gone; n != NULL; n = n->next) ca->purging_bytes -= n->size;
  ca->reserved -= unmapped;
  ca->nunmapped += unmapped;
  chunk_purger_exit(ca);
  xmutex_unlock(&ca->mtx);
  for (extent_node_t *n = gone, *next; n != NULL; n = next) {
    next = n->next;
    chunk_node_free(ca, n);
  }
  return any || unmapped != 0;
}

static void *chunk_alloc_once(chunk_arena_t *ca, size_t size, size_t alignment, size_t *commit, bool *zeroed) {
  extent_node_t *s1 = chunk_node_alloc(ca), *s2 = chunk_node_alloc(ca);
  char *ret = NULL;
  unsigned state = CHUNK_CLEAN;
  if (s1 == NULL || s2 == NULL) goto out;
  xmutex_lock(&ca->mtx);
  char *addr;
  extent_node_t *n = chunk_find(ca, size, alignment, &addr);
  extent_hooks_t *h = chunk_hooks_load(ca);
  if (n == NULL && h == NULL && !chunk_reserve(ca, size, alignment)) n = chunk_find(ca, size, alignment, &addr);
  if (n != NULL && h == NULL) {
    state = chunk_take(ca, n, addr, size, &s1, &s2);
    *zeroed = state == CHUNK_CLEAN || state == CHUNK_RETAINED;
    ret = addr;
  } else if (n != NULL) {
    int z = chunk_take_hooked(ca, n, addr, size, &s1, &s2);
    if (z >= 0) {
      *zeroed = z != 0;
      ret = addr;
    }
  }
  xmutex_unlock(&ca->mtx);
  if (ret != NULL && h == NULL && pages_strict && chunk_settle(ca, ret, size, state, commit)) {
    chunk_untake(ca, ret, size, state);
    ret = NULL;
  } else if (ret != NULL && !(h == NULL && pages_strict)) {
    *commit = size;
  }
  /* User hooks: exactly this range from the hook, straight to the caller. */
  if (ret == NULL && h != NULL) {
    ret = chunk_hook_alloc(ca, h, size, alignment, zeroed);
    *commit = size;
  }
out:
  if (s1 != NULL) chunk_node_free(ca, s1);
  if (s2 != NULL) chunk_node_free(ca, s2);
  if (ret == NULL) errno = ENOMEM;
  return ret;
}

void *chunk_alloc_commit(chunk_arena_t *ca, size_t size, size_t alignment, size_t *commit, bool *zeroed) {
  xassert(size != 0 && (size & (sz_chunksize - 1)) == 0);
  xassert(*commit != 0 && *commit <= size && (*commit & PAGE_MASK) == 0);
  if (alignment < sz_chunksize) alignment = sz_chunksize;
  size_t want = *commit;
  void *ret = chunk_alloc_once(ca, size, alignment, commit, zeroed);
  if (ret == NULL && chunk_relieve(ca)) {
    *commit = want;
    ret = chunk_alloc_once(ca, size, alignment, commit, zeroed);
  }
  if (ret == NULL) errno = ENOMEM;
  return ret;
}

void *chunk_alloc(chunk_arena_t *ca, size_t size, size_t alignment, bool *zeroed) {
  size_t commit = size;
  return chunk_alloc_commit(ca, size, alignment, &commit, zeroed);
}

bool chunk_alloc_at_commit(chunk_arena_t *ca, void *addr, size_t size, size_t *commit, bool *zeroed) {
  /* User hooks: growing an allocated range in place would need a merge of
   * an allocated and a free range; not done (the caller moves). */
  if (chunk_hooked(ca)) return true;
  extent_node_t *s1 = chunk_node_alloc(ca), *s2 = chunk_node_alloc(ca);
  bool err = true;
  unsigned state = CHUNK_CLEAN;
  if (s1 == NULL || s2 == NULL) goto out;
  xmutex_lock(&ca->mtx);
  extent_node_t key = {0};
  key.addr = addr;
  rb_node_t *r = rb_psearch(&ca->ad, &key.ad);
  if (r != NULL) {
    extent_node_t *n = rb_entry(r, extent_node_t, ad);
    if ((char *)addr + size <= n->addr + n->size && (char *)addr + size > (char *)addr) {
      state = chunk_take(ca, n, addr, size, &s1, &s2);
      *zeroed = state == CHUNK_CLEAN || state == CHUNK_RETAINED;
      err = false;
    }
  }
  xmutex_unlock(&ca->mtx);
  if (!err && pages_strict && chunk_settle(ca, addr, size, state, commit)) {
    chunk_untake(ca, addr, size, state);
    err = true;
  } else if (!err && !pages_strict) {
    *commit = size;
  }
out:
  if (s1 != NULL) chunk_node_free(ca, s1);
  if (s2 != NULL) chunk_node_free(ca, s2);
  return err;
}

bool chunk_alloc_at(chunk_arena_t *ca, void *addr, size_t size, bool *zeroed) {
  size_t commit = size;
  return chunk_alloc_at_commit(ca, addr, size, &commit, zeroed);
}

void chunk_dalloc_state(chunk_arena_t *ca, void *addr, size_t size, unsigned state) {
  xassert(size != 0 && (size & (sz_chunksize - 1)) == 0);
  /* Strict overcommit: a clean range is decommitted (no lock held). */
  if (state == CHUNK_CLEAN && chunk_decommit_ok(ca) && !chunk_decommit_pages(ca, addr, size, 0, size))
    state = CHUNK_RETAINED;
  extent_node_t *node = chunk_node_alloc(ca);
  if (node == NULL) {
    /* No metadata for the range: purge it and let it go (it stays mapped
     * and counted by the pages layer). */
    if (state != CHUNK_RETAINED) chunk_purge_pages(ca, addr, size, 0, size, false);
    return;
  }
  /* Kept, with retain:false too: the purge that gives it back for good
   * (decay curve or reuse window) unmaps it then (chunk_release). */
  xmutex_lock(&ca->mtx);
  chunk_insert_coalesce(ca, node, addr, size, state);
  xmutex_unlock(&ca->mtx);
}

void chunk_dalloc_commit(chunk_arena_t *ca, void *addr, size_t size, unsigned state, size_t committed) {
  /* A clean range is decommitted (chunk_dalloc_state): its committed head
   * only, then. */
  if (committed < size && state == CHUNK_CLEAN && chunk_decommit_ok(ca) &&
      !chunk_decommit_pages(ca, addr, size, 0, committed))
    state = CHUNK_RETAINED;
  else if (committed < size) {
    /* The decommitted tail: committed again, so that the range is one
     * state (it is reused as it is, under decay); if the commit limit
     * refuses, all of it is decommitted. */
    if (chunk_commit_pages(ca, addr, size, committed, size - committed)) {
      if (!chunk_decommit_pages(ca, addr, size, 0, committed)) {
        state = CHUNK_RETAINED;
      } else {
        /* Neither: the range stays as it is, owned by nothing (mapped
         * and accounted, never reused). Rare: the commit limit and
         * vm.max_map_count both reached. */
        pages_purge_forced(addr, committed);
        return;
      }
    }
  }
  if (state == CHUNK_RETAINED) {
    extent_node_t *node = chunk_node_alloc(ca);
    if (node == NULL) return;
    xmutex_lock(&ca->mtx);
    chunk_insert_coalesce(ca, node, addr, size, CHUNK_RETAINED);
    xmutex_unlock(&ca->mtx);
    return;
  }
  chunk_dalloc_state(ca, addr, size, state);
}

void chunk_dalloc(chunk_arena_t *ca, void *addr, size_t size, bool dirty) {
  chunk_dalloc_state(ca, addr, size, dirty ? CHUNK_DIRTY : CHUNK_CLEAN);
}

void chunk_arena_release(chunk_arena_t *ca) {
  xmutex_lock(&ca->mtx);
  /* Wait for a purge in flight (its ranges are out of the trees) and keep
   * others off while the ranges are given back with mtx released. */
  chunk_purger_enter(ca, true);
  extent_node_t *list = NULL;
  rb_node_t *r;
  while ((r = rb_first(&ca->ad)) != NULL) {
    extent_node_t *n = rb_entry(r, extent_node_t, ad);
    chunk_remove(ca, n);
    ca->purging_bytes += n->size;
    n->next = list;
    list = n;
  }
  xmutex_unlock(&ca->mtx);
  /* No lock held: munmap, or the user's dalloc/destroy. */
  extent_hooks_t *h = chunk_hooks_load(ca);
  uint64_t ngiven = 0;
  size_t bytes = 0, dec = 0;
  for (extent_node_t *n = list; n != NULL; n = n->next) {
    if (n->retained) dec += n->size;
    if (h != NULL) {
      /* dalloc, else destroy: the hook gets every range back. */
      chunk_hook_giveback(ca, h, n->addr, n->size);
      ngiven++;
    } else {
      /* On failure the pages layer keeps the range purged and counted. */
      pages_unmap(n->addr, n->size);
    }
    bytes += n->size;
  }
  __atomic_fetch_sub(&ca->decommitted, dec, __ATOMIC_RELAXED);
  xmutex_lock(&ca->mtx);
  ca->nhook_dalloc += ngiven;
  ca->purging_bytes -= bytes;
  ca->reserved = 0;
  ca->grow_size = 2 * sz_chunksize;
  ca->grow_count = 0;
  chunk_purger_exit(ca);
  xmutex_unlock(&ca->mtx);
  for (extent_node_t *n = list, *next; n != NULL; n = next) {
    next = n->next;
    chunk_node_free(ca, n);
  }
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
  /* With user hooks, neighbours the hook refused to merge stay apart. */
  bool hooked = chunk_hooked(ca);
  xmutex_lock(&ca->mtx);
  bool ok = rb_validate(&ca->ad);
  size_t nszad = 0;
  for (unsigned s = 0; s < CHUNK_NSTATES; s++) {
    ok = ok && rb_validate(&ca->szad[s]);
    nszad += ca->szad[s].n;
    /* Each tree holds the ranges of its state only. */
    for (rb_node_t *r = rb_first(&ca->szad[s]); ok && r != NULL; r = rb_next(r))
      if (chunk_node_state(rb_entry(r, extent_node_t, szad)) != s) ok = false;
  }
  ok = ok && nszad == ca->ad.n;
  size_t total = 0, dirty = 0, muzzy = 0;
  const extent_node_t *prev = NULL;
  for (rb_node_t *r = rb_first(&ca->ad); ok && r != NULL; r = rb_next(r)) {
    const extent_node_t *n = rb_entry(r, extent_node_t, ad);
    if (n->kind != META_FREE || n->size == 0 || (n->size & (sz_chunksize - 1)) != 0 ||
        ((uintptr_t)n->addr & (sz_chunksize - 1)) != 0)
      ok = false;
    /* No overlap; neighbours in the same state are merged. */
    if (prev != NULL && (prev->addr + prev->size > n->addr ||
                         (!hooked && prev->addr + prev->size == n->addr &&
                          chunk_node_state(prev) == chunk_node_state(n))))
      ok = false;
    /* Exactly one state; only clean ranges read as zero. */
    if ((n->dirty && n->muzzy) || n->zeroed != (!n->dirty && !n->muzzy)) ok = false;
    total += n->size;
    if (n->dirty) dirty += n->size;
    if (n->muzzy) muzzy += n->size;
    prev = n;
  }
  size_t listed = 0;
  const dirty_link_t *dh = &ca->dirty.list[DIRTY_D], *mh = &ca->dirty.list[DIRTY_M];
  for (const dirty_link_t *l = dh->next; ok && l != dh; l = l->next) {
    const extent_node_t *n = rb_entry(l, extent_node_t, dlink);
    if (!n->dirty) ok = false;
    listed += n->size;
  }
  size_t mlisted = 0;
  for (const dirty_link_t *l = mh->next; ok && l != mh; l = l->next) {
    const extent_node_t *n = rb_entry(l, extent_node_t, dlink);
    if (!n->muzzy) ok = false;
    mlisted += n->size;
  }
  if (total != ca->free_bytes || dirty != chunk_dirty_bytes(ca) || listed != dirty || muzzy != chunk_muzzy_bytes(ca) ||
      mlisted != muzzy || total + ca->purging_bytes > ca->reserved)
    ok = false;
  xmutex_unlock(&ca->mtx);
  return ok;
}

/* Fork waits for a purge in flight (for an arena's chunk arena there is
 * none by now: arenas_prefork_ops waited for it). */
void chunk_prefork(chunk_arena_t *ca) {
  xmutex_prefork(&ca->mtx);
  while (ca->purging) pthread_cond_wait(&ca->purge_cond, &ca->mtx.lock);
  xmutex_prefork(&ca->node_mtx);
}
void chunk_postfork_parent(chunk_arena_t *ca) {
  xmutex_postfork_parent(&ca->node_mtx);
  xmutex_postfork_parent(&ca->mtx);
}
void chunk_postfork_child(chunk_arena_t *ca) {
  xmutex_postfork_child(&ca->node_mtx);
  xmutex_postfork_child(&ca->mtx);
  pthread_cond_init(&ca->purge_cond, NULL);
}
