/* purge: decay-driven purging of the free runs of an arena (arena.h). A
 * purge is one lifecycle operation (arena_op_begin): the run level, then
 * the arena's chunk level; it never overlaps a reset or destroy. */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"

/* Slow-path calls left before this thread's next decay check. */
static __thread int32_t arena_decay_ticks __attribute__((tls_model("initial-exec")));

/*
 * Take free runs out for purging, oldest first: runs with dirty pages while
 * the arena has more than dirty_limit of them (lazily if lazy, else
 * forced), then runs with muzzy pages while it has more than muzzy_limit
 * (forced). Arena lock held; returns the list (purge_next).
 */
static arena_run_t *arena_purge_collect(arena_t *a, size_t dirty_limit, size_t muzzy_limit, bool lazy) {
  arena_run_t *list = NULL, **tail = &list;
  while (a->ndirty > dirty_limit && a->dirty.next != &a->dirty) {
    arena_run_t *run = arena_run_of(a->dirty.next, dirty_link);
    arena_avail_remove(a, run);
    run->purge_op = lazy ? ARENA_PURGE_LAZY : ARENA_PURGE_FORCED;
    *tail = run;
    tail = &run->purge_next;
  }
  while (a->nmuzzy > muzzy_limit && a->muzzy.next != &a->muzzy) {
    arena_run_t *run = arena_run_of(a->muzzy.next, muzzy_link);
    arena_avail_remove(a, run);
    run->purge_op = ARENA_PURGE_FORCED;
    *tail = run;
    tail = &run->purge_next;
  }
  *tail = NULL;
  size_t nd = 0, nm = 0;
  for (arena_run_t *run = list; run != NULL; run = run->purge_next) {
    /* Neither allocatable nor mergeable while out. */
    run->state = RUN_PURGING;
    a->npurging += run->npages;
    nd += run->ndirty;
    nm += run->nmuzzy;
    if (a->spare == run->chunk) a->spare = NULL;
  }
  decay_removed(&a->decay_dirty, nd);
  decay_removed(&a->decay_muzzy, nm);
  return list;
}

/* Append list b to list a (purge_next); returns the head. */
static arena_run_t *arena_purge_concat(arena_run_t *a, arena_run_t *b) {
  if (a == NULL) return b;
  arena_run_t *t = a;
  while (t->purge_next != NULL) t = t->purge_next;
  t->purge_next = b;
  return a;
}

/* madvise each run of list (no lock held), then free them again under the
 * arena lock in their new state. */
static void arena_purge_finish(arena_t *a, arena_run_t *list) {
  if (list == NULL) return;
  uint64_t ncalls = 0;
  for (arena_run_t *run = list; run != NULL; run = run->purge_next) {
    char *addr = arena_run_addr(run);
    size_t size = (size_t)run->npages << LG_PAGE;
    unsigned done = chunk_purge_pages(&a->chunks, run->chunk->addr, sz_chunksize, (size_t)(addr - run->chunk->addr),
                                      size, run->purge_op == ARENA_PURGE_LAZY);
    ncalls++;
    run->purge_op = done == CHUNK_PURGE_LAZY ? ARENA_PURGE_LAZY : done == CHUNK_PURGE_FORCED ? ARENA_PURGE_FORCED : 0;
  }
  xmutex_lock(&a->lock);
  a->stats.nmadvise += ncalls;
  for (arena_run_t *run = list, *next; run != NULL; run = next) {
    next = run->purge_next;
    run->purge_next = NULL;
    arena_chunk_t *chunk = run->chunk;
    if (run->purge_op != 0) {
      a->stats.npurged_pages += run->purge_op == ARENA_PURGE_LAZY ? run->ndirty : run->ndirty + run->nmuzzy;
      if (run->purge_op == ARENA_PURGE_LAZY)
        arena_pages_dirty_to_muzzy(chunk, run->pageind, run->npages);
      else
        arena_pages_set_clean(chunk, run->pageind, run->npages);
    }
    run->purge_op = 0;
    a->npurging -= run->npages;
    /* Free again (coalescing, spare); a failed run keeps its pages' state
     * and goes to the tail of its lists. */
    arena_run_dalloc(a, run, false);
  }
  decay_purged(&a->decay_dirty, a->ndirty);
  decay_purged(&a->decay_muzzy, a->nmuzzy);
  xmutex_unlock(&a->lock);
  arena_chunks_flush(a);
}

/* When the arena's run level next has purging to look at (arena lock). */
static uint64_t arena_decay_next_locked(arena_t *a, uint64_t now) {
  uint64_t t = UINT64_MAX, u;
  if (a->ndirty != 0) {
    if ((u = decay_ns_until_epoch(&a->decay_dirty, now)) < t) t = u;
    if ((u = decay_ns_until_step(&a->decay_dirty, now)) < t) t = u;
  }
  if (a->nmuzzy != 0) {
    if ((u = decay_ns_until_epoch(&a->decay_muzzy, now)) < t) t = u;
    if ((u = decay_ns_until_step(&a->decay_muzzy, now)) < t) t = u;
  }
  return t;
}

static void arena_decay_impl(arena_t *a, bool wait) {
  if (!arena_op_begin(a, ARENA_OP_PURGE, wait)) return;
  /* Objects freed remotely go back to their runs first: runs they empty
   * are purged like any other. A tick (!wait) leaves the stacks the
   * arena's own refills keep taking. */
  arena_remote_drain(a, !wait);
  uint64_t now = decay_now_ns();
  xmutex_lock(&a->lock);
  /* What the program did not reuse in the reuse window goes for good
   * first (decay.h), then the curve's share goes lazily. */
  size_t idle_d = decay_idle(&a->decay_dirty, now, a->ndirty);
  size_t idle_m = decay_idle(&a->decay_muzzy, now, a->nmuzzy);
  arena_run_t *list = NULL;
  if (idle_d != 0 || idle_m != 0) list = arena_purge_collect(a, a->ndirty - idle_d, a->nmuzzy - idle_m, false);
  size_t dl = SIZE_MAX, ml = SIZE_MAX;
  bool d = decay_advance(&a->decay_dirty, now, a->ndirty, &dl);
  bool m = decay_advance(&a->decay_muzzy, now, a->nmuzzy, &ml);
  if (d || m)
    list = arena_purge_concat(
        list, arena_purge_collect(a, d ? dl : SIZE_MAX, m ? ml : SIZE_MAX, a->decay_muzzy.time_ms != 0));
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, list);
  chunk_decay(&a->chunks, now, wait);
  /* The next look for arena_decay_event: when something is due, and at
   * least every ARENA_DECAY_EVENT_NS (pages freed meanwhile have dates). */
  uint64_t next = arena_decay_ns_until(a, now);
  if (next > ARENA_DECAY_EVENT_NS) next = ARENA_DECAY_EVENT_NS;
  __atomic_store_n(&a->decay_next_ns, now + next, __ATOMIC_RELAXED);
  arena_op_end(a, false);
}

void arena_decay(arena_t *a) { arena_decay_impl(a, true); }

/* The arena arena_decay_event looks at besides the caller's, in turn: an
 * arena whose threads went quiet (or exited) still gets its checks while
 * any thread of the process keeps allocating. */
static __thread unsigned arena_decay_other_next __attribute__((tls_model("initial-exec")));

static void arena_decay_other(arena_t *a, uint64_t now) {
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  if (n < 2) return;
  /* Per thread: no shared counter for the threads to write. */
  unsigned i = arena_decay_other_next++ % n;
  arena_t *o = arena_get(i);
  if (o != NULL && o != a && now >= __atomic_load_n(&o->decay_next_ns, __ATOMIC_RELAXED)) arena_decay_impl(o, false);
}

uint64_t arena_decay_event(arena_t *a) {
  uint64_t now = decay_now_ns();
  if (now >= __atomic_load_n(&a->decay_next_ns, __ATOMIC_RELAXED)) arena_decay_impl(a, false);
  arena_decay_other(a, now);
  return now;
}

void (*arena_tick_hook)(void);

void arena_decay_tick(arena_t *a) {
  if (unlikely(arena_tick_hook != NULL)) arena_tick_hook();
  /* The arena's decay times (arena.<i>.*_decay_ms), read without its lock:
   * a stale value only moves one check. */
  ssize_t dms = __atomic_load_n(&a->decay_dirty.time_ms, __ATOMIC_RELAXED);
  ssize_t mms = __atomic_load_n(&a->decay_muzzy.time_ms, __ATOMIC_RELAXED);
  if (dms != 0 && --arena_decay_ticks > 0) return;
  arena_decay_ticks = ARENA_DECAY_TICKS;
  if (dms >= 0 || mms >= 0) arena_decay_impl(a, false);
  arena_decay_other(a, decay_now_ns());
}

uint64_t arena_decay_ns_until(arena_t *a, uint64_t now) {
  xmutex_lock(&a->lock);
  uint64_t t = arena_decay_next_locked(a, now);
  xmutex_unlock(&a->lock);
  uint64_t u = chunk_decay_ns_until(&a->chunks, now);
  return u < t ? u : t;
}

void arena_purge_all(arena_t *a) {
  if (!arena_op_begin(a, ARENA_OP_PURGE, true)) return;
  arena_remote_drain(a, false);
  xmutex_lock(&a->lock);
  arena_run_t *list = arena_purge_collect(a, 0, 0, false);
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, list);
  chunk_purge_all(&a->chunks);
  arena_op_end(a, false);
}
