/*
 * Remote frees (arena.h, "Remote frees"; doc/DESIGN.md): objects a thread
 * frees into the arena of another thread go back through the bin's remote
 * stack, without the bin lock, and are taken by whoever next holds it.
 *
 *   - producer/consumer threads on two explicit arenas (and a pair that
 *     sends both ways): every object is handed out once at a time, its
 *     contents intact while live; the remote stack was used; the heap check
 *     passes; the producer arena's small allocated bytes go back to 0, its
 *     runs become free, and a purge leaves no dirty or muzzy page;
 *   - each taker -- stats read, refill, free, decay, purge, heap check,
 *     reset, destroy -- empties the stack, and meanwhile the pending objects
 *     count as allocated and pass arena_validate;
 *   - pending objects freed twice, written after free, or whose link was
 *     overwritten are reported, never handed out twice, and the heap check
 *     passes afterwards (abort:false).
 * Runs with tcache on and off (off: nothing is ever pushed; the threads
 * part still checks correctness).
 */
#include "xtest.h"

#include <pthread.h>
#include <sched.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/run.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"
#include "xchild.h"

static unsigned new_arena(void) {
  unsigned ind;
  size_t sz = sizeof(ind);
  EXPECT(mallctl("arenas.create", &ind, &sz, NULL, 0) == 0);
  return ind;
}

static void bind_arena(unsigned ind) { EXPECT(mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)) == 0); }

static void arena_op(unsigned ind, const char *op) {
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.%s", ind, op);
  EXPECT(mallctl(name, NULL, NULL, NULL, 0) == 0);
}

static bool arena_check_ok(unsigned ind) {
  bool ok = false;
  size_t len = sizeof(ok);
  char name[64];
  snprintf(name, sizeof(name), "arena.%u.check", ind);
  EXPECT(mallctl(name, &ok, &len, NULL, 0) == 0);
  return ok;
}

/* Read without taking anything: what is pending, and the bin's stats. */
static bool pending(unsigned ind, unsigned binind) {
  arena_bin_t *bin = &arenas[ind]->bins[binind];
  xmutex_lock(&bin->lock);
  bool p = __atomic_load_n(&bin->remote, __ATOMIC_ACQUIRE) != NULL || bin->remote_rest != NULL;
  xmutex_unlock(&bin->lock);
  return p;
}
static arena_bin_stats_t bin_stats_peek(unsigned ind, unsigned binind) {
  arena_bin_t *bin = &arenas[ind]->bins[binind];
  xmutex_lock(&bin->lock);
  arena_bin_stats_t s = bin->stats;
  xmutex_unlock(&bin->lock);
  return s;
}
static uint64_t nremote_total(unsigned ind) {
  uint64_t n = 0;
  for (unsigned b = 0; b < SZ_NBINS; b++) n += bin_stats_peek(ind, b).nremote;
  return n;
}
static size_t nactive_peek(unsigned ind) {
  arena_t *a = arenas[ind];
  xmutex_lock(&a->lock);
  size_t n = a->nactive;
  xmutex_unlock(&a->lock);
  return n;
}

/* ---- live set: every pointer handed out is not live already ---- */

#define LIVE_SLOTS 16384 /* a power of two, well above the objects in flight */
typedef struct {
  pthread_mutex_t mtx;
  uintptr_t slot[LIVE_SLOTS];
  size_t n;
} live_set_t;

static size_t live_hash(uintptr_t p) { return (size_t)((p >> 3) * 0x9E3779B97F4A7C15ULL >> 50) & (LIVE_SLOTS - 1); }

/* False if p is live already. */
static bool live_add(live_set_t *s, void *ptr) {
  uintptr_t p = (uintptr_t)ptr;
  pthread_mutex_lock(&s->mtx);
  size_t i = live_hash(p);
  while (s->slot[i] != 0 && s->slot[i] != p) i = (i + 1) & (LIVE_SLOTS - 1);
  bool fresh = s->slot[i] == 0;
  if (fresh) {
    s->slot[i] = p;
    s->n++;
  }
  pthread_mutex_unlock(&s->mtx);
  return fresh;
}

/* False if p is not live. Linear probing, deletion by backward shift. */
static bool live_remove(live_set_t *s, void *ptr) {
  uintptr_t p = (uintptr_t)ptr;
  pthread_mutex_lock(&s->mtx);
  size_t i = live_hash(p);
  while (s->slot[i] != 0 && s->slot[i] != p) i = (i + 1) & (LIVE_SLOTS - 1);
  bool found = s->slot[i] == p;
  if (found) {
    s->n--;
    size_t j = i;
    for (;;) {
      s->slot[i] = 0;
      for (;;) {
        j = (j + 1) & (LIVE_SLOTS - 1);
        if (s->slot[j] == 0) goto done;
        size_t k = live_hash(s->slot[j]);
        /* Move slot j to i unless its home k lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j)) continue;
        break;
      }
      s->slot[i] = s->slot[j];
      i = j;
    }
  }
done:
  pthread_mutex_unlock(&s->mtx);
  return found;
}

/* ---- a bounded queue of objects between two threads ---- */

#define QCAP 2048
typedef struct {
  pthread_mutex_t mtx;
  pthread_cond_t cond;
  void *obj[QCAP];
  size_t size[QCAP];
  unsigned head, n;
  bool closed;
} queue_t;

static void queue_init(queue_t *q) {
  memset(q, 0, sizeof(*q));
  pthread_mutex_init(&q->mtx, NULL);
  pthread_cond_init(&q->cond, NULL);
}

static void queue_put(queue_t *q, void *p, size_t size) {
  pthread_mutex_lock(&q->mtx);
  while (q->n == QCAP) pthread_cond_wait(&q->cond, &q->mtx);
  unsigned i = (q->head + q->n++) % QCAP;
  q->obj[i] = p;
  q->size[i] = size;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mtx);
}

static bool queue_try_put(queue_t *q, void *p, size_t size) {
  pthread_mutex_lock(&q->mtx);
  bool room = q->n < QCAP;
  if (room) {
    unsigned i = (q->head + q->n++) % QCAP;
    q->obj[i] = p;
    q->size[i] = size;
    pthread_cond_broadcast(&q->cond);
  }
  pthread_mutex_unlock(&q->mtx);
  return room;
}

static void queue_close(queue_t *q) {
  pthread_mutex_lock(&q->mtx);
  q->closed = true;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mtx);
}

/* Up to max objects; 0 once the queue is closed and empty. */
static unsigned queue_get(queue_t *q, void **p, size_t *size, unsigned max) {
  pthread_mutex_lock(&q->mtx);
  while (q->n == 0 && !q->closed) pthread_cond_wait(&q->cond, &q->mtx);
  unsigned k = 0;
  while (k < max && q->n > 0) {
    p[k] = q->obj[q->head];
    size[k++] = q->size[q->head];
    q->head = (q->head + 1) % QCAP;
    q->n--;
  }
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mtx);
  return k;
}

/* Fill an object with a pattern of its serial number, and check it. */
static void stamp(void *p, size_t size, uint64_t serial) {
  unsigned char *c = p;
  for (size_t i = 0; i < size; i++) c[i] = (unsigned char)(serial * 131 + i);
}
static bool stamped(const void *p, size_t size, uint64_t serial) {
  const unsigned char *c = p;
  for (size_t i = 0; i < size; i++)
    if (c[i] != (unsigned char)(serial * 131 + i)) return false;
  return true;
}

static const size_t sizes[] = {8, 16, 24, 48, 64, 100, 224, 512, 1000, 3000};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

typedef struct {
  unsigned arena;     /* the thread's arena */
  queue_t *out, *in;  /* objects it allocates go to out; it frees those from in */
  live_set_t *live;
  uint64_t nsend;     /* objects to allocate */
  uint64_t seed;
} pc_thread_t;

/* Serial numbers ride in the queue's size field's high bits. */
#define SERIAL_SHIFT 20

static void pc_consume(pc_thread_t *me, bool block) {
  void *p[64];
  size_t sz[64];
  unsigned k;
  if (!block) {
    pthread_mutex_lock(&me->in->mtx);
    bool empty = me->in->n == 0;
    pthread_mutex_unlock(&me->in->mtx);
    if (empty) return;
  }
  while ((k = queue_get(me->in, p, sz, 64)) > 0) {
    for (unsigned i = 0; i < k; i++) {
      size_t size = sz[i] & ((1u << SERIAL_SHIFT) - 1);
      uint64_t serial = sz[i] >> SERIAL_SHIFT;
      EXPECT(stamped(p[i], size, serial));
      EXPECT(live_remove(me->live, p[i]));
      free(p[i]);
    }
    if (!block) return;
  }
}

static void *pc_main(void *arg) {
  pc_thread_t *me = arg;
  bind_arena(me->arena);
  uint64_t s = me->seed;
  for (uint64_t i = 0; i < me->nsend; i++) {
    size_t size = sizes[xtest_rand(&s) % NSIZES];
    void *p = malloc(size);
    EXPECT(p != NULL);
    EXPECT(live_add(me->live, p));
    uint64_t serial = (me->seed << 32) + i;
    stamp(p, size, serial & 0xfffffff);
    size_t word = size | (size_t)((serial & 0xfffffff) << SERIAL_SHIFT);
    if (me->in == NULL) {
      queue_put(me->out, p, word);
    } else {
      /* Both ways: never wait for a peer that waits for us. */
      while (!queue_try_put(me->out, p, word)) {
        pc_consume(me, false);
        sched_yield();
      }
      if ((i & 31) == 0) pc_consume(me, false);
    }
  }
  queue_close(me->out);
  if (me->in != NULL) pc_consume(me, true);
  return NULL;
}

static void *consumer_main(void *arg) {
  pc_thread_t *me = arg;
  bind_arena(me->arena);
  pc_consume(me, true);
  return NULL;
}

static live_set_t live;

static void live_reset(void) {
  memset(&live, 0, sizeof(live));
  pthread_mutex_init(&live.mtx, NULL);
}

/* One thread allocates from arena P, the other (on arena C) frees. */
static void test_producer_consumer(void **state) {
  (void)state;
  unsigned P = new_arena(), C = new_arena();
  live_reset();
  queue_t q;
  queue_init(&q);
  pc_thread_t prod = {P, &q, NULL, &live, 200000, 1}, cons = {C, NULL, &q, &live, 0, 2};
  pthread_t tp, tc;
  assert_int_equal(pthread_create(&tc, NULL, consumer_main, &cons), 0);
  assert_int_equal(pthread_create(&tp, NULL, pc_main, &prod), 0);
  assert_int_equal(pthread_join(tp, NULL), 0);
  assert_int_equal(pthread_join(tc, NULL), 0);
  assert_int_equal(live.n, 0);
  /* Both threads are gone: their caches were flushed (parked ones by
   * tsd_park_flush, tcache.h), the consumer's objects of P handed over
   * remotely (some may be pending still). */
  tsd_park_flush();
  if (tcache_active) assert_true(nremote_total(P) > 0);
  assert_true(arena_validate(arenas[P]));
  assert_true(arena_check_ok(P));
  assert_true(arena_check_ok(C));
  /* Everything came back: nothing small is allocated in P, no run is in
   * use, and a purge leaves nothing dirty or muzzy. */
  assert_int_equal(arena_stat(P, "small.allocated"), 0);
  assert_int_equal(arena_stat(P, "pactive"), 0);
  for (unsigned b = 0; b < SZ_NBINS; b++) assert_false(pending(P, b));
  arena_op(P, "purge");
  assert_int_equal(arena_stat(P, "pdirty"), 0);
  assert_int_equal(arena_stat(P, "pmuzzy"), 0);
  assert_true(arena_check_ok(P));
}

/* Two threads on two arenas, each allocating and sending to the other and
 * freeing what it gets: own-arena flushes under trylock, remote ones
 * pushed, both ways. */
static void test_both_ways(void **state) {
  (void)state;
  unsigned A = new_arena(), B = new_arena();
  live_reset();
  queue_t ab, ba;
  queue_init(&ab);
  queue_init(&ba);
  pc_thread_t ta = {A, &ab, &ba, &live, 150000, 3}, tb = {B, &ba, &ab, &live, 150000, 4};
  pthread_t th[2];
  assert_int_equal(pthread_create(&th[0], NULL, pc_main, &ta), 0);
  assert_int_equal(pthread_create(&th[1], NULL, pc_main, &tb), 0);
  assert_int_equal(pthread_join(th[0], NULL), 0);
  assert_int_equal(pthread_join(th[1], NULL), 0);
  assert_int_equal(live.n, 0);
  tsd_park_flush(); /* exited threads' caches (tcache.h) */
  if (tcache_active) {
    assert_true(nremote_total(A) > 0);
    assert_true(nremote_total(B) > 0);
  }
  assert_true(arena_check_ok(A));
  assert_true(arena_check_ok(B));
  assert_int_equal(arena_stat(A, "small.allocated"), 0);
  assert_int_equal(arena_stat(B, "small.allocated"), 0);
  assert_int_equal(arena_stat(A, "pactive"), 0);
  assert_int_equal(arena_stat(B, "pactive"), 0);
}

/* ---- each taker empties the stack (in a child: decay is off, so that no
 * decay tick takes the stack behind the test's back) ---- */

#define NOBJ 300
static void *objs[NOBJ];
static size_t obj_size;

static void *free_objs_main(void *arg) {
  bind_arena(*(unsigned *)arg);
  for (int i = 0; i < NOBJ; i++) free(objs[i]);
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  return NULL;
}

/* The calling thread (on arena P) allocates NOBJ objects of size; a thread
 * on arena C frees them all and flushes its cache: they are pending on
 * P's stack for that class, counted in use, and valid. */
static void hand_over(unsigned P, unsigned C, size_t size) {
  obj_size = size;
  bind_arena(P);
  for (int i = 0; i < NOBJ; i++) {
    objs[i] = malloc(size);
    EXPECT(objs[i] != NULL);
    memset(objs[i], 0x5c, size);
  }
  /* Nothing of P's stays in this thread's cache: its own frees would
   * otherwise be mixed with the remote ones. */
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  unsigned binind = sz_size2index(size);
  size_t curregs = bin_stats_peek(P, binind).curregs;
  pthread_t th;
  EXPECT(pthread_create(&th, NULL, free_objs_main, &C) == 0);
  EXPECT(pthread_join(th, NULL) == 0);
  if (tcache_active && size >= ARENA_REMOTE_MIN) {
    EXPECT(pending(P, binind));
    /* Pending objects are allocated as far as the runs know. */
    EXPECT(bin_stats_peek(P, binind).curregs == curregs);
    EXPECT(arena_validate(arenas[P]));
  } else {
    EXPECT(!pending(P, binind));
    EXPECT(bin_stats_peek(P, binind).curregs == curregs - NOBJ);
  }
}

static void expect_taken(unsigned P, size_t size, size_t curregs_after) {
  unsigned binind = sz_size2index(size);
  EXPECT(!pending(P, binind));
  EXPECT(bin_stats_peek(P, binind).curregs == curregs_after);
  EXPECT(arena_validate(arenas[P]));
}

/* Decay off, for the arenas made from now on too (arenas.*_decay_ms: the
 * defaults new arenas take). */
static void decay_off(void) {
  opt_dirty_decay_ms = -1;
  opt_muzzy_decay_ms = -1;
  ssize_t off = -1;
  EXPECT(mallctl("arenas.dirty_decay_ms", NULL, NULL, &off, sizeof(off)) == 0);
  EXPECT(mallctl("arenas.muzzy_decay_ms", NULL, NULL, &off, sizeof(off)) == 0);
}

static void takers_child(void *arg) {
  (void)arg;
  decay_off();
  unsigned P = new_arena(), C = new_arena();
  const size_t size = 64;
  unsigned binind = sz_size2index(size);

  /* A stats read. */
  hand_over(P, C, size);
  /* (With the cache off they were freed at once.) */
  EXPECT(nactive_peek(P) > 0 || !tcache_active);
  uint64_t nremote = bin_stats_peek(P, binind).nremote;
  EXPECT(arena_stat(P, "small.allocated") == 0);
  expect_taken(P, size, 0);
  if (tcache_active) EXPECT(bin_stats_peek(P, binind).nremote == nremote + NOBJ);
  /* All of them came back remotely: the runs are free (and dirty). */
  EXPECT(nactive_peek(P) == 0);
  EXPECT(arena_stat(P, "pdirty") > 0);

  /* A purge: the runs become free and are purged. */
  hand_over(P, C, size);
  EXPECT(nactive_peek(P) > 0 || !tcache_active);
  arena_op(P, "purge");
  expect_taken(P, size, 0);
  EXPECT(nactive_peek(P) == 0);
  arena_t *a = arenas[P];
  xmutex_lock(&a->lock);
  EXPECT(a->dirty.npages[DIRTY_D] == 0 && a->dirty.npages[DIRTY_M] == 0);
  xmutex_unlock(&a->lock);

  /* A decay (what the background thread calls), decay itself off. */
  hand_over(P, C, size);
  arena_op(P, "decay");
  expect_taken(P, size, 0);
  EXPECT(nactive_peek(P) == 0);

  /* A decay tick takes only a stack no one took since the previous tick
   * looked (the owner's refills keep up with it otherwise). */
  hand_over(P, C, size);
  uint64_t takes = __atomic_load_n(&arenas[P]->bins[binind].remote_ntakes, __ATOMIC_RELAXED);
  arenas[P]->bins[binind].remote_tick_seen = takes - 1; /* as if taken since */
  arena_remote_drain(arenas[P], true);
  EXPECT(pending(P, binind) || !tcache_active); /* left: its owner is at work */
  arena_remote_drain(arenas[P], true);
  expect_taken(P, size, 0); /* nothing took it since: stale, taken */

  /* The heap check. */
  hand_over(P, C, size);
  EXPECT(arena_check_ok(P));
  expect_taken(P, size, 0);

  /* A refill of the owner's cache: straight from the stack. */
  hand_over(P, C, size);
  void *p = malloc(size);
  EXPECT(p != NULL);
  bool found = false;
  for (int i = 0; i < NOBJ; i++) found |= objs[i] == p;
  if (tcache_active) {
    EXPECT(found);
    /* The refill filled the whole cache from the stack, and kept the rest
     * for the next refill (still pending: in use for the runs). */
    EXPECT(tcache_ncached(tsd_tls, binind) + 1 == tcache_ncached_max(tsd_tls, binind));
    EXPECT(pending(P, binind));
    EXPECT(bin_stats_peek(P, binind).curregs == NOBJ);
    /* The next refill starts with them. */
    void *q[256];
    unsigned nq = tcache_ncached_max(tsd_tls, binind) + 1;
    EXPECT(nq <= 256);
    for (unsigned i = 0; i < nq; i++) {
      q[i] = malloc(size);
      found = false;
      for (int j = 0; j < NOBJ; j++) found |= objs[j] == q[i];
      EXPECT(found);
    }
    for (unsigned i = 0; i < nq; i++) free(q[i]);
  }
  EXPECT(arena_validate(arenas[P]));
  free(p);
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  expect_taken(P, size, 0);

  /* A free with the cache off (straight to the bin, which takes the
   * stack first). */
  hand_over(P, C, size);
  if (tcache_active) {
    bool off = false, on = true;
    EXPECT(mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof(off)) == 0);
    p = malloc(size); /* also takes the stack (arena_malloc_small) */
    expect_taken(P, size, 1);
    hand_over(P, C, size);
    EXPECT(mallctl("thread.tcache.enabled", NULL, NULL, &off, sizeof(off)) == 0);
    free(p);
    expect_taken(P, size, 0);
    EXPECT(mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof(on)) == 0);
  }

  /* 8-byte regions have no room for a link: freed under the lock. */
  hand_over(P, C, 8);
  expect_taken(P, 8, 0);

  /* A reset discards the stack with the runs. */
  hand_over(P, C, size);
  hand_over(P, C, 1000);
  bind_arena(0);
  arena_op(P, "reset");
  expect_taken(P, size, 0);
  expect_taken(P, 1000, 0);
  EXPECT(nactive_peek(P) == 0);
  EXPECT(arena_check_ok(P));

  /* So does a destroy. */
  hand_over(P, C, size);
  bind_arena(0);
  a = arenas[P];
  arena_op(P, "destroy");
  EXPECT(arena_get(P) == NULL);
  EXPECT(__atomic_load_n(&a->bins[binind].remote, __ATOMIC_ACQUIRE) == NULL);
  EXPECT(arena_check_ok(C));
  fprintf(stderr, "TAKERS DONE\n");
}

static void test_takers(void **state) {
  (void)state;
  char err[4096];
  int st = xtest_run_child(takers_child, NULL, err, sizeof(err));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child failed (status %x):\n%s", st, err);
  assert_non_null(strstr(err, "TAKERS DONE"));
}

/* ---- bad frees of pending objects (abort:false, in a child) ---- */


static bool reported(const char *what, const void *p) {
  char s[200];
  snprintf(s, sizeof(s), "%s of %p ", what, p);
  return strstr(reports, s) != NULL;
}



static unsigned bad_C;
static void *free_one_main(void *arg) {
  bind_arena(bad_C);
  free(arg);
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  return NULL;
}

/* Frees two objects from arena bad_C, in this order, in one flush. */
static void *bad_two[2];
static void *free_two_main(void *arg) {
  (void)arg;
  bind_arena(bad_C);
  free(bad_two[0]);
  free(bad_two[1]);
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  return NULL;
}

static void bad_child(void *arg) {
  int which = (int)(intptr_t)arg;
  opt_abort = false;
  decay_off();
  report_hook = collect_report;
  unsigned P = new_arena(), C = new_arena();
  bad_C = C;
  const size_t size = 96;
  unsigned binind = sz_size2index(size);
  hand_over(P, C, size);
  EXPECT(pending(P, binind));
  char *p = objs[NOBJ / 2];
  switch (which) {
  case 0:
    /* Freed again while pending: the tag says so at once. */
    free(p);
    EXPECT(reported("double free", p));
    break;
  case 1:
    /* Written after free while pending: the heap check says so (and
     * leaves the stack alone); reported when the stack is taken, and left
     * allocated. */
    memset(p, 0x41, 8);
    EXPECT(!arena_check_ok(P));
    EXPECT(pending(P, binind));
    arena_op(P, "decay");
    EXPECT(reported("write after free (or double free) detected on its way back from another thread", p));
    break;
  case 2:
    /* Its link overwritten (its second word): it goes back to its run,
     * the walk stops after it, the rest stay allocated. */
    memset(p + 8, 0x41, 8);
    arena_op(P, "decay");
    EXPECT(reported("write after free (or double free) detected on its way back from another thread", p));
    break;
  case 3: {
    /* Written after free and freed again: pushed twice. The second copy
     * is met first (it is on top), the first one then is a double free. */
    memset(p, 0, 8);
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, free_one_main, p) == 0);
    EXPECT(pthread_join(th, NULL) == 0);
    arena_op(P, "decay");
    EXPECT(reported("double free", p));
    break;
  }
  case 4: {
    /* Back in its run already, written after free (its tag gone, so the
     * free fast path takes it) and freed again remotely right after a live
     * neighbour of its run: the run's bitmap says it is free (the drain
     * meets it through the run the neighbour's lookup found). */
    arena_op(P, "decay");
    EXPECT(!pending(P, binind));
    bind_arena(P);
    bool on = false;
    EXPECT(mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof(on)) == 0);
    /* Live objects, so that the list is not longer than what is in use
     * (the walk's other bound). */
    void *live[8];
    for (int i = 0; i < 8; i++) EXPECT((live[i] = malloc(size)) != NULL);
    char *q = malloc(size);
    EXPECT(q != NULL);
    p = NULL;
    for (int i = 0; i < NOBJ && p == NULL; i++) {
      bool in_use = objs[i] == q;
      for (int j = 0; j < 8; j++) in_use |= objs[i] == live[j];
      if (!in_use && ((uintptr_t)objs[i] >> 12) == ((uintptr_t)q >> 12)) p = objs[i];
    }
    EXPECT(p != NULL);
    memset(p, 0, 16);
    bad_two[0] = q;
    bad_two[1] = p;
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, free_two_main, NULL) == 0);
    EXPECT(pthread_join(th, NULL) == 0);
    EXPECT(pending(P, binind));
    arena_op(P, "decay");
    EXPECT(reported("double free", p));
    for (int i = 0; i < 8; i++) free(live[i]);
    on = true;
    EXPECT(mallctl("thread.tcache.enabled", NULL, NULL, &on, sizeof(on)) == 0);
    p = NULL;
    break;
  }
  }
  arena_op(P, "decay"); /* (case 0: the stack was left alone) */
  EXPECT(!pending(P, binind));
  EXPECT(arena_validate(arenas[P]));
  bind_arena(P);
  /* Only the object that lost its tag stays allocated for good; in the
   * other cases it went back to its run once. */
  expect_never_handed_out(which == 1 ? p : NULL, size);
  EXPECT(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);
  EXPECT(arena_check_ok(P));
  fprintf(stderr, "BAD DONE\n");
}

static void test_bad_pending(void **state) {
  (void)state;
  if (!tcache_active || !config_heap_checks) skip();
  for (int i = 0; i < 5; i++) {
    char err[8192];
    int st = xtest_run_child(bad_child, (void *)(intptr_t)i, err, sizeof(err));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("case %d failed (status %x):\n%s", i, st, err);
    if (strstr(err, "BAD DONE") == NULL) fail_msg("case %d:\n%s", i, err);
  }
}

int main(void) {
  free(malloc(1));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_producer_consumer),
      cmocka_unit_test(test_both_ways),
      cmocka_unit_test(test_takers),
      cmocka_unit_test(test_bad_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
