/* purge: decay-driven purging of the free runs of an arena (arena.h),
 * through the purge engine (dirty.h) that the chunk level uses too. A
 * purge is one lifecycle operation (arena_op_begin): the run level, then
 * the arena's chunk level; it never overlaps a reset or destroy. */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"

/* Slow-path calls left before this thread's next decay check. */
static __thread int32_t arena_decay_ticks __attribute__((tls_model("initial-exec")));

/* A purge batch: the runs taken out, in order (purge_next). */
typedef struct {
  arena_t *a;
  arena_run_t *list, **tail;
} arena_purge_batch_t;

static void arena_purge_batch_init(arena_purge_batch_t *b, arena_t *a) {
  b->a = a;
  b->list = NULL;
  b->tail = &b->list;
}

/* The take function of the purge engine (dirty.h): the run l links leaves
 * runs_avail (neither allocatable nor mergeable while out) for the batch.
 * Arena lock held. */
static void arena_purge_take(void *ctx, dirty_link_t *l, unsigned kind, unsigned op) {
  arena_purge_batch_t *b = ctx;
  arena_t *a = b->a;
  arena_run_t *run = kind == DIRTY_D ? arena_run_of(l, dirty_link) : arena_run_of(l, muzzy_link);
  arena_avail_remove(a, run);
  run->purge_op = (uint8_t)op;
  run->state = RUN_PURGING;
  run->purge_next = NULL;
  a->npurging += run->npages;
  if (a->spare == run->chunk) a->spare = NULL;
  *b->tail = run;
  b->tail = &run->purge_next;
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
                                      size, run->purge_op == CHUNK_PURGE_LAZY);
    ncalls++;
    run->purge_op = done == CHUNK_PURGE_LAZY || done == CHUNK_PURGE_FORCED ? (uint8_t)done : 0;
  }
  xmutex_lock(&a->lock);
  a->stats.nmadvise += ncalls;
  for (arena_run_t *run = list, *next; run != NULL; run = next) {
    next = run->purge_next;
    run->purge_next = NULL;
    arena_chunk_t *chunk = run->chunk;
    if (run->purge_op != 0) {
      a->stats.npurged_pages += run->purge_op == CHUNK_PURGE_LAZY ? run->ndirty : run->ndirty + run->nmuzzy;
      if (run->purge_op == CHUNK_PURGE_LAZY)
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
  dirty_settle(&a->dirty);
  xmutex_unlock(&a->lock);
  arena_chunks_flush(a);
}

static void arena_decay_impl(arena_t *a, bool wait) {
  if (!arena_op_begin(a, ARENA_OP_PURGE, wait)) return;
  /* Objects freed remotely go back to their runs first: runs they empty
   * are purged like any other. A tick (!wait) leaves the stacks the
   * arena's own refills keep taking. */
  arena_remote_drain(a, !wait);
  uint64_t now = decay_now_ns();
  arena_purge_batch_t b;
  arena_purge_batch_init(&b, a);
  xmutex_lock(&a->lock);
  dirty_step(&a->dirty, now, arena_purge_take, &b);
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, b.list);
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
  ssize_t dms = dirty_decay_ms(&a->dirty, DIRTY_D);
  ssize_t mms = dirty_decay_ms(&a->dirty, DIRTY_M);
  if (dms != 0 && --arena_decay_ticks > 0) return;
  arena_decay_ticks = ARENA_DECAY_TICKS;
  if (dms >= 0 || mms >= 0) arena_decay_impl(a, false);
  arena_decay_other(a, decay_now_ns());
}

uint64_t arena_decay_ns_until(arena_t *a, uint64_t now) {
  xmutex_lock(&a->lock);
  uint64_t t = dirty_ns_until(&a->dirty, now);
  xmutex_unlock(&a->lock);
  uint64_t u = chunk_decay_ns_until(&a->chunks, now);
  return u < t ? u : t;
}

void arena_purge_all(arena_t *a) {
  if (!arena_op_begin(a, ARENA_OP_PURGE, true)) return;
  arena_remote_drain(a, false);
  arena_purge_batch_t b;
  arena_purge_batch_init(&b, a);
  xmutex_lock(&a->lock);
  dirty_collect(&a->dirty, 0, 0, false, arena_purge_take, &b);
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, b.list);
  chunk_purge_all(&a->chunks);
  arena_op_end(a, false);
}
