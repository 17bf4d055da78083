/* arena: arenas -- creation, the choice of a thread's arena, the
 * lifecycle (operations, reset, destroy) and fork (see arena.h; runs,
 * bins, large, purge and check have files of their own). */
#include <errno.h>

#include "xalloc/internal/huge.h"
#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"

arena_t *arenas[ARENAS_MAX];
unsigned narenas;
unsigned narenas_auto;
unsigned narenas_large = 1;
static xmutex_t arenas_lock = XMUTEX_INITIALIZER;
ssize_t arenas_decay_ms[2];

/* Run descriptors, one pool per bitmap size; chunk descriptors. */
base_pool_t arena_run_pools[SZ_BITMAP_WORDS + 1];
base_pool_t arena_chunk_pool;
size_t arena_chunk_npages;

static int arena_cmp_avail(const rb_node_t *a, const rb_node_t *b) {
  const arena_run_t *x = rb_entry(a, arena_run_t, link);
  const arena_run_t *y = rb_entry(b, arena_run_t, link);
  if (x->npages != y->npages) return x->npages < y->npages ? -1 : 1;
  /* The search key has no chunk: it sorts before every run of its size. */
  uintptr_t xa = x->chunk ? (uintptr_t)arena_run_addr(x) : 0;
  uintptr_t ya = y->chunk ? (uintptr_t)arena_run_addr(y) : 0;
  return xa < ya ? -1 : xa > ya;
}

int arena_cmp_addr(const rb_node_t *a, const rb_node_t *b) {
  uintptr_t xa = (uintptr_t)arena_run_addr(rb_entry(a, arena_run_t, link));
  uintptr_t ya = (uintptr_t)arena_run_addr(rb_entry(b, arena_run_t, link));
  return xa < ya ? -1 : xa > ya;
}

static int arena_cmp_huge(const rb_node_t *a, const rb_node_t *b) {
  const extent_node_t *x = rb_entry(a, extent_node_t, ad);
  const extent_node_t *y = rb_entry(b, extent_node_t, ad);
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}


bool arena_boot(void) {
  tag_boot();
  for (unsigned i = 0; i <= SZ_BITMAP_WORDS; i++) {
    arena_run_pools[i].size = sizeof(arena_run_t) + i * sizeof(uint64_t);
    arena_run_pools[i].free = NULL;
  }
  arena_chunk_npages = sz_chunksize >> LG_PAGE;
  arena_chunk_pool.size = sizeof(arena_chunk_t) + ALIGNMENT_CEILING(arena_chunk_npages, 8) * 2 +
                          arena_chunk_npages * sizeof(arena_run_t *) +
                          2 * ((arena_chunk_npages + 63) / 64) * sizeof(uint64_t);
  arena_chunk_pool.free = NULL;
  arenas_decay_ms[0] = opt_dirty_decay_ms;
  arenas_decay_ms[1] = opt_muzzy_decay_ms;
  return false;
}

arena_t *arena_new(unsigned ind) {
  arena_t *a = base_alloc(sizeof(arena_t));
  if (a == NULL) return NULL;
  a->ind = ind;
  xmutex_init(&a->lock);
  rb_init(&a->runs_avail, arena_cmp_avail);
  xmutex_init(&a->life_mtx);
  pthread_cond_init(&a->life_cond, NULL);
  uint64_t now = decay_now_ns();
  a->create_ns = now;
  ssize_t dms = __atomic_load_n(&arenas_decay_ms[0], __ATOMIC_RELAXED);
  ssize_t mms = __atomic_load_n(&arenas_decay_ms[1], __ATOMIC_RELAXED);
  dirty_init(&a->dirty, dms, mms, now);
  chunk_arena_init(&a->chunks);
  dirty_init(&a->chunks.dirty, dms, mms, now);
  a->chunks.ind = ind;
  xmutex_init(&a->huge_mtx);
  rb_init(&a->huge, arena_cmp_huge);
  rb_init(&a->chunk_list, arena_cmp_chunk);
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    xmutex_init(&a->bins[i].lock);
    rb_init(&a->bins[i].runs, arena_cmp_addr);
  }
  return a;
}

/* Automatic arenas made so far: they are arenas[0..arenas_nauto). */
static unsigned arenas_nauto;

arena_t *arena_choose(void) {
  xmutex_lock(&arenas_lock);
  /* arenas[0] is made at initialization, outside this function. */
  while (arenas_nauto < narenas_auto && arenas[arenas_nauto] != NULL) arenas_nauto++;
  arena_t *best = NULL;
  for (unsigned i = 0; i < arenas_nauto; i++) {
    if (best == NULL || arenas[i]->nthreads < best->nthreads) best = arenas[i];
  }
  /* Spread first: a new arena while there is room and none is idle. */
  if ((best == NULL || best->nthreads > 0) && arenas_nauto < narenas_auto) {
    unsigned n = arenas_nauto;
    arena_t *a = arena_new(n);
    if (a != NULL) {
      __atomic_store_n(&arenas[n], a, __ATOMIC_RELEASE);
      arenas_nauto = n + 1;
      if (narenas < n + 1) __atomic_store_n(&narenas, n + 1, __ATOMIC_SEQ_CST); /* see arenas_prefork_ops */
      best = a;
    }
  }
  if (best != NULL) best->nthreads++;
  xmutex_unlock(&arenas_lock);
  return best;
}

/* Destroyed explicit arenas waiting for arenas.create, newest first. */
static arena_t *arenas_recycled;

/*
 * Make the destroyed arena a (empty: reset, released, retired, dead) new
 * one: figures zero, decay times the defaults, hooks. A thread that read
 * the old pointer before it was retired (a purge of every arena) may still
 * take its locks, so they are kept, and the fields are reset under them;
 * while it is dead no operation starts on it (arena_op_begin), and it
 * comes alive last. arenas_lock held.
 */
static void arena_renew(arena_t *a, extent_hooks_t *hooks) {
  uint64_t now = decay_now_ns();
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    arena_bin_t *bin = &a->bins[i];
    xmutex_lock(&bin->lock);
    xassert(bin->runcur == NULL && bin->runs.n == 0);
    memset(&bin->stats, 0, sizeof(bin->stats));
    xmutex_unlock(&bin->lock);
  }
  xmutex_lock(&a->lock);
  xassert(a->runs_avail.n == 0 && a->chunk_list.n == 0 && a->nchunks == 0 && a->nactive == 0 &&
          a->dirty.npages[DIRTY_D] == 0 && a->dirty.npages[DIRTY_M] == 0 && a->npurging == 0 &&
          a->spare == NULL);
  a->stats.nmalloc_large = a->stats.ndalloc_large = 0;
  a->stats.allocated_large = 0;
  a->stats.npurged_pages = a->stats.nmadvise = 0;
  ssize_t dms = __atomic_load_n(&arenas_decay_ms[0], __ATOMIC_RELAXED);
  ssize_t mms = __atomic_load_n(&arenas_decay_ms[1], __ATOMIC_RELAXED);
  dirty_init(&a->dirty, dms, mms, now);
  memset(a->freed_large, 0, sizeof(a->freed_large));
  a->freed_large_next = 0;
  a->create_ns = now;
  xmutex_unlock(&a->lock);
  chunk_arena_renew(&a->chunks, hooks, dms, mms);
  xmutex_lock(&a->huge_mtx);
  xassert(a->huge.n == 0);
  a->stats.nmalloc_huge = a->stats.ndalloc_huge = 0;
  a->stats.allocated_huge = 0;
  memset(a->freed_huge, 0, sizeof(a->freed_huge));
  a->freed_huge_next = 0;
  xmutex_unlock(&a->huge_mtx);
  xmutex_lock(&a->life_mtx);
  xassert(a->dead && a->op == ARENA_OP_NONE);
  a->dead = false;
  xmutex_unlock(&a->life_mtx);
  __atomic_store_n(&a->retired, false, __ATOMIC_RELEASE);
}

arena_t *arena_create_explicit(extent_hooks_t *hooks) {
  xmutex_lock(&arenas_lock);
  arena_t *a = arenas_recycled;
  if (a != NULL) {
    /* arenas_lock comes before the arena's locks (as in arenas_prefork). */
    arenas_recycled = a->recycle_next;
    a->recycle_next = NULL;
    arena_renew(a, hooks);
    __atomic_store_n(&arenas[a->ind], a, __ATOMIC_RELEASE);
  } else {
    unsigned n = narenas > narenas_auto ? narenas : narenas_auto;
    a = n <= ARENA_IND_MAX ? arena_new(n) : NULL;
    if (a != NULL) {
      if (hooks != NULL) chunk_arena_set_user_hooks(&a->chunks, hooks, n);
      __atomic_store_n(&arenas[n], a, __ATOMIC_RELEASE);
      __atomic_store_n(&narenas, n + 1, __ATOMIC_SEQ_CST); /* see arenas_prefork_ops */
    }
  }
  xmutex_unlock(&arenas_lock);
  return a;
}

void arena_recycle(arena_t *a) {
  xmutex_lock(&arenas_lock);
  xassert(arenas[a->ind] == NULL && a->nthreads == 0);
  a->recycle_next = arenas_recycled;
  arenas_recycled = a;
  xmutex_unlock(&arenas_lock);
}

bool arena_is_auto(const arena_t *a) { return a->ind < narenas_auto; }

arena_t *arena_get(unsigned ind) {
  if (ind >= __atomic_load_n(&narenas, __ATOMIC_SEQ_CST)) return NULL;
  arena_t *a = __atomic_load_n(&arenas[ind], __ATOMIC_ACQUIRE);
  return a != NULL && !__atomic_load_n(&a->retired, __ATOMIC_ACQUIRE) ? a : NULL;
}

bool arena_migrate(arena_t *from, unsigned ind, arena_t **to) {
  bool err = true;
  xmutex_lock(&arenas_lock);
  arena_t *a = ind < narenas ? arenas[ind] : NULL;
  /* An automatic arena not made yet is made now (as jemalloc does). */
  if (a == NULL && ind < narenas_auto && (a = arena_new(ind)) != NULL) {
    __atomic_store_n(&arenas[ind], a, __ATOMIC_RELEASE);
    if (narenas < ind + 1) __atomic_store_n(&narenas, ind + 1, __ATOMIC_SEQ_CST);
  }
  if (a != NULL && !a->retired) {
    if (from != NULL) from->nthreads--;
    a->nthreads++;
    *to = a;
    err = false;
  }
  xmutex_unlock(&arenas_lock);
  return err;
}

/* Retire an explicit arena that no thread uses (arena_get returns NULL for
 * it from now on; its slot in arenas[] stays until it is dead, so that fork
 * sees the destroy in flight). True (nothing changed) if it is automatic,
 * in use or already retired. */
static bool arena_retire(arena_t *a) {
  bool err = true;
  xmutex_lock(&arenas_lock);
  if (a->nthreads == 0 && !arena_is_auto(a) && !a->retired) {
    __atomic_store_n(&a->retired, true, __ATOMIC_RELEASE);
    err = false;
  }
  xmutex_unlock(&arenas_lock);
  return err;
}

unsigned arena_nthreads(const arena_t *a) {
  xmutex_lock(&arenas_lock);
  unsigned n = a->nthreads;
  xmutex_unlock(&arenas_lock);
  return n;
}

ssize_t arena_decay_ms_get(arena_t *a, bool muzzy) {
  xmutex_lock(&a->lock);
  ssize_t ms = dirty_decay_ms(&a->dirty, muzzy ? DIRTY_M : DIRTY_D);
  xmutex_unlock(&a->lock);
  return ms;
}

void arena_decay_ms_set(arena_t *a, bool muzzy, ssize_t ms) {
  uint64_t now = decay_now_ns();
  unsigned kind = muzzy ? DIRTY_M : DIRTY_D;
  xmutex_lock(&a->lock);
  dirty_set_decay(&a->dirty, kind, ms, now);
  xmutex_unlock(&a->lock);
  chunk_arena_t *ca = &a->chunks;
  xmutex_lock(&ca->mtx);
  dirty_set_decay(&ca->dirty, kind, ms, now);
  xmutex_unlock(&ca->mtx);
  /* Everything of that kind is due now. */
  if (ms != -1) arena_decay(a);
}

void arena_unchoose(arena_t *a) {
  xmutex_lock(&arenas_lock);
  a->nthreads--;
  xmutex_unlock(&arenas_lock);
}

/* ---- lifecycle ---- */

/*
 * Set while fork() waits for the operations in flight (arenas_prefork_ops)
 * and until it is over; an operation checks it under its arena's life_mtx
 * after the arena was published, and the forker sets it before it reads
 * narenas (both sequentially consistent), so an operation either sees it
 * and backs off, or runs on an arena the forker waits for.
 */
static bool arenas_forking;
static xmutex_t arenas_fork_mtx = XMUTEX_INITIALIZER;
static pthread_cond_t arenas_fork_cond = PTHREAD_COND_INITIALIZER;

static void arenas_fork_wait(void) {
  xmutex_lock(&arenas_fork_mtx);
  while (__atomic_load_n(&arenas_forking, __ATOMIC_SEQ_CST))
    pthread_cond_wait(&arenas_fork_cond, &arenas_fork_mtx.lock);
  xmutex_unlock(&arenas_fork_mtx);
}

bool arena_op_begin(arena_t *a, unsigned op, bool wait) {
  pthread_t self = pthread_self();
  for (;;) {
    if (wait)
      xmutex_lock(&a->life_mtx);
    else if (!xmutex_trylock(&a->life_mtx))
      return false;
    for (;;) {
      /* A purger leaves an arena being reset or destroyed alone. */
      if (a->dead || (op == ARENA_OP_PURGE && (a->op == ARENA_OP_RESET || a->op == ARENA_OP_DESTROY))) {
        xmutex_unlock(&a->life_mtx);
        return false;
      }
      if (__atomic_load_n(&arenas_forking, __ATOMIC_SEQ_CST)) break;
      if (a->op == ARENA_OP_NONE) {
        a->op = (uint8_t)op;
        a->op_owner = self;
        xmutex_unlock(&a->life_mtx);
        return true;
      }
      /* Never wait for oneself (an extent hook calling back into its arena). */
      if (!wait || pthread_equal(a->op_owner, self)) {
        xmutex_unlock(&a->life_mtx);
        return false;
      }
      pthread_cond_wait(&a->life_cond, &a->life_mtx.lock);
    }
    /* A fork is pending: it must not wait for us. */
    xmutex_unlock(&a->life_mtx);
    if (!wait) return false;
    arenas_fork_wait();
  }
}

void arena_op_end(arena_t *a, bool dead) {
  xmutex_lock(&a->life_mtx);
  xassert(a->op != ARENA_OP_NONE && pthread_equal(a->op_owner, pthread_self()));
  a->op = ARENA_OP_NONE;
  if (dead) a->dead = true;
  pthread_cond_broadcast(&a->life_cond);
  xmutex_unlock(&a->life_mtx);
}

/* Every small and large allocation of the arena goes: run descriptors and
 * chunk descriptors are freed under the bin and arena locks, the chunks go
 * back to the chunk trees once they are dropped. Within a reset or destroy
 * operation (no purge in flight: no run is RUN_PURGING). */
static void arena_reset_runs(arena_t *a) {
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_lock(&a->bins[i].lock);
  xmutex_lock(&a->lock);
  /* Chunks detached by a free that has not given them back yet. */
  arena_chunk_t *list = a->chunks_out;
  __atomic_store_n(&a->chunks_out, NULL, __ATOMIC_RELAXED);
  rb_node_t *r;
  while ((r = rb_first(&a->chunk_list)) != NULL) {
    arena_chunk_t *chunk = rb_entry(r, arena_chunk_t, link);
    /* The first page of every run, free or allocated, maps to it. */
    for (size_t p = 0; p < arena_chunk_npages;) {
      arena_run_t *run = chunk->map[p];
      size_t n = run->npages;
      xassert(run->state != RUN_PURGING);
      if (run->state == RUN_FREE) arena_avail_remove(a, run);
      arena_run_desc_free(a, run);
      p += n;
    }
    rtree_set_range((uintptr_t)chunk->addr, sz_chunksize, NULL);
    arena_chunk_list_remove(a, chunk);
    a->nchunks--;
    chunk->out_state = CHUNK_DIRTY;
    chunk->out_next = list;
    list = chunk;
  }
  xassert(a->dirty.npages[DIRTY_D] == 0 && a->dirty.npages[DIRTY_M] == 0 && a->npurging == 0 &&
          a->runs_avail.n == 0);
  a->nactive = 0;
  a->spare = NULL;
  a->stats.ndalloc_large = a->stats.nmalloc_large;
  a->stats.allocated_large = 0;
  xmutex_unlock(&a->lock);
  for (unsigned i = SZ_NBINS; i-- > 0;) {
    arena_bin_t *bin = &a->bins[i];
    bin->runcur = NULL;
    rb_init(&bin->runs, arena_cmp_addr);
    arena_bin_remote_discard(bin); /* objects freed remotely: their runs are gone */
    bin->stats.ndalloc = bin->stats.nmalloc;
    bin->stats.curregs = 0;
    bin->stats.curruns = 0;
    xmutex_unlock(&bin->lock);
  }
  /* No lock held: chunk_dalloc may unmap (retain:false) or call hooks. */
  arena_chunks_giveback(a, list);
}

bool arena_reset(arena_t *a) {
  if (!arena_op_begin(a, ARENA_OP_RESET, true)) return true;
  huge_reset(a);
  arena_reset_runs(a);
  arena_op_end(a, false);
  return false;
}

bool arena_destroy(arena_t *a) {
  if (arena_is_auto(a) || !arena_op_begin(a, ARENA_OP_DESTROY, true)) return true;
  if (arena_retire(a)) {
    arena_op_end(a, false);
    return true;
  }
  huge_reset(a);
  arena_reset_runs(a);
  chunk_arena_release(&a->chunks);
  arena_op_end(a, true);
  /* Under arenas_lock, which fork holds from arenas_prefork to postfork:
   * the slot does not change under a fork. */
  xmutex_lock(&arenas_lock);
  __atomic_store_n(&arenas[a->ind], NULL, __ATOMIC_RELEASE);
  xmutex_unlock(&arenas_lock);
  return false;
}

/* ---- fork ---- */

void arenas_prefork_ops(void) {
  __atomic_store_n(&arenas_forking, true, __ATOMIC_SEQ_CST);
  pthread_t self = pthread_self();
  /* narenas is read again each time round: arenas made meanwhile count. */
  for (unsigned i = 0; i < __atomic_load_n(&narenas, __ATOMIC_SEQ_CST); i++) {
    arena_t *a = __atomic_load_n(&arenas[i], __ATOMIC_ACQUIRE);
    if (a == NULL) continue;
    xmutex_lock(&a->life_mtx);
    /* (A hook forking inside an operation: not waited for.) */
    while (a->op != ARENA_OP_NONE && !pthread_equal(a->op_owner, self))
      pthread_cond_wait(&a->life_cond, &a->life_mtx.lock);
    xmutex_unlock(&a->life_mtx);
  }
}

/* Destroyed arenas waiting to be recycled too: their locks are kept (a
 * purge that read the pointer before the destroy may still take one). */
void arenas_prefork(void) {
  /* Threads waiting for the fork to end wait on its cond (lock released). */
  xmutex_prefork(&arenas_fork_mtx);
  xmutex_prefork(&arenas_lock);
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_prefork(arenas[i]);
  for (arena_t *a = arenas_recycled; a != NULL; a = a->recycle_next) arena_prefork(a);
}

void arenas_postfork_parent(void) {
  for (arena_t *a = arenas_recycled; a != NULL; a = a->recycle_next) arena_postfork_parent(a);
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_parent(arenas[i]);
  xmutex_postfork_parent(&arenas_lock);
  __atomic_store_n(&arenas_forking, false, __ATOMIC_SEQ_CST);
  pthread_cond_broadcast(&arenas_fork_cond);
  xmutex_postfork_parent(&arenas_fork_mtx);
}

void arenas_postfork_child(void) {
  for (arena_t *a = arenas_recycled; a != NULL; a = a->recycle_next) arena_postfork_child(a);
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_child(arenas[i]);
  xmutex_postfork_child(&arenas_lock);
  /* The threads waiting for the fork to end are not in the child. */
  xmutex_postfork_child(&arenas_fork_mtx);
  pthread_cond_init(&arenas_fork_cond, NULL);
  __atomic_store_n(&arenas_forking, false, __ATOMIC_SEQ_CST);
}

/* No operation is in flight (arenas_prefork_ops), and none starts: life_mtx
 * is only ever held briefly. */
void arena_prefork(arena_t *a) {
  xmutex_prefork(&a->life_mtx);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_prefork(&a->bins[i].lock);
  xmutex_prefork(&a->lock);
  chunk_prefork(&a->chunks);
  xmutex_prefork(&a->huge_mtx);
}

void arena_postfork_parent(arena_t *a) {
  xmutex_postfork_parent(&a->huge_mtx);
  chunk_postfork_parent(&a->chunks);
  xmutex_postfork_parent(&a->lock);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_postfork_parent(&a->bins[i].lock);
  xmutex_postfork_parent(&a->life_mtx);
}

void arena_postfork_child(arena_t *a) {
  xmutex_postfork_child(&a->huge_mtx);
  chunk_postfork_child(&a->chunks);
  xmutex_postfork_child(&a->lock);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_postfork_child(&a->bins[i].lock);
  xmutex_postfork_child(&a->life_mtx);
  pthread_cond_init(&a->life_cond, NULL);
}
