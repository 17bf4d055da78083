/* tsd: the per-thread state's lifecycle (see tcache.h): made at a
 * thread's first call, parked for a new thread or freed at its exit
 * (tcache_park), the call and byte counters, fork. The bins themselves are
 * tcache.c's. */
#include <pthread.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/decay.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/tcache.h"

/* Sentinels: empty bins that hold nothing. */
static tsd_t tsd_empty = {.state = TSD_EMPTY, .pw_first = TSD_PW_NONE};
static tsd_t tsd_boot = {.state = TSD_BOOT, .pw_first = TSD_PW_NONE};
static tsd_t tsd_exited = {.state = TSD_EXITED, .pw_first = TSD_PW_NONE};

__thread tsd_t *tsd_tls __attribute__((tls_model("initial-exec"))) = &tsd_empty;

base_pool_t tsd_pool;
static pthread_key_t tsd_key;
static xmutex_t tsd_list_lock = XMUTEX_INITIALIZER;
static tsd_t tsd_list = {.state = TSD_EMPTY}; /* sentinel of the list of live tsds */

static void tsd_destroy(void *arg);

bool tsd_boot_state(size_t size) {
  tsd_boot.arena = tsd_exited.arena = tsd_empty.arena = arenas[0];
  tsd_list.next = tsd_list.prev = &tsd_list;
  tsd_pool.size = size;
  /* The stacks' slots are written before they are read: a reused tsd
   * clears only its fields (not the slots' pages it never touched). */
  tsd_pool.zero = sizeof(tsd_t);
  tsd_pool.free = NULL;
  return pthread_key_create(&tsd_key, tsd_destroy) != 0;
}

static tsd_t *tsd_adopt(void);
static void tsd_discard(tsd_t *t);

static tsd_t *tsd_create(void) {
  tsd_tls = &tsd_boot; /* allocations made while building are served directly */
  /* An adopted cache's thread takes an arena as any new thread does: kept
   * with the cache, the arenas' loads counted parked caches as threads
   * and spread the new ones wider (oversub: 30.6 MiB peak RSS against
   * 23.9, bench/RESULTS.md). */
  tsd_t *t = tsd_adopt();
  bool adopted = t != NULL;
  if (!adopted) t = base_pool_alloc(&tsd_pool);
  arena_t *a = t != NULL ? arena_choose() : NULL;
  if (t == NULL || a == NULL) {
    if (adopted)
      tsd_discard(t);
    else if (t != NULL)
      base_pool_free(&tsd_pool, t);
    tsd_tls = &tsd_empty;
    return &tsd_boot;
  }
  t->state = TSD_NOMINAL;
  t->arena = a;
  if (adopted)
    sample_tsd_init(t); /* the bins keep their objects (tsd_park) */
  else
    tcache_bins_init(t, tcache_active);
  xmutex_lock(&tsd_list_lock);
  t->next = &tsd_list;
  t->prev = tsd_list.prev;
  tsd_list.prev->next = t;
  tsd_list.prev = t;
  xmutex_unlock(&tsd_list_lock);
  /* May allocate (second-level key storage); tsd_tls is still tsd_boot. */
  pthread_setspecific(tsd_key, t);
  tsd_tls = t;
  return t;
}

tsd_t *tsd_fetch(void) {
  tsd_t *t = tsd_tls;
  if (likely(t->state == TSD_NOMINAL)) return t;
  if (t->state == TSD_EMPTY) return tsd_create();
  return t; /* boot or exited: no cache, first arena */
}

/* Calls and bytes of threads that are gone, and of calls made while a
 * thread had no tsd (during its creation, after its exit). */
static uint64_t tsd_gone_nmalloc, tsd_gone_nfree;

/* Objects pushed into bin i by free (owner only). */
static uint64_t tsd_npush(const tsd_t *t, unsigned i) {
  return tcache_ncached(t, i) + t->nflush[i] + tcache_npop(t, i) - t->nfill[i];
}

/* The bins' pops and pushes, exactly (owner only). */
static void tsd_bin_calls(const tsd_t *t, uint64_t *nmalloc, uint64_t *nfree) {
  uint64_t m = 0, f = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    m += tcache_npop(t, i);
    f += tsd_npush(t, i);
  }
  *nmalloc = m;
  *nfree = f;
}

/* Publish bin ind's counts: the sums move by what it did since its last
 * publication (each bin's counts only go up, so the sums do too). */
void tsd_publish_bin(tsd_t *t, unsigned ind) {
  if (t->state != TSD_NOMINAL) return;
  uint64_t p = tcache_npop(t, ind), q = tsd_npush(t, ind);
  TSD_STORE(t->pub_nmalloc, t->pub_nmalloc + (p - t->pub_pop[ind]));
  TSD_STORE(t->pub_nfree, t->pub_nfree + (q - t->pub_push[ind]));
  t->pub_pop[ind] = p;
  t->pub_push[ind] = q;
}

/* Publish every bin's counts (the published sums are exact then): one
 * pass and one store of each sum (this runs every 16th GC step: calling
 * tsd_publish_bin per bin cost 0.2 instructions per malloc+free pair). */
void tsd_publish_calls(tsd_t *t) {
  if (t->state != TSD_NOMINAL) return;
  uint64_t m = 0, f = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    m += t->pub_pop[i] = tcache_npop(t, i);
    f += t->pub_push[i] = tsd_npush(t, i);
  }
  TSD_STORE(t->pub_nmalloc, m);
  TSD_STORE(t->pub_nfree, f);
}

/* Calls of t: exact (its own thread, as it exits), else the published
 * counts, which only go up: safe to read while the owner runs (see
 * tcache_requests). */
static uint64_t tsd_nmalloc(const tsd_t *t, bool exact) {
  uint64_t m, f;
  if (exact)
    tsd_bin_calls(t, &m, &f);
  else
    m = TSD_LOAD(t->pub_nmalloc);
  return TSD_LOAD(t->ndirect_malloc) + m;
}

static uint64_t tsd_nfree(const tsd_t *t, bool exact) {
  uint64_t m, f;
  if (exact)
    tsd_bin_calls(t, &m, &f);
  else
    f = TSD_LOAD(t->pub_nfree);
  return TSD_LOAD(t->ndirect_free) + f;
}

/* The published counters: refreshed on the slow paths (fills, flushes,
 * direct calls, GC steps), so they trail the fast paths by at most what
 * the cache served since. */
XA_NOINLINE void tsd_publish_slow(tsd_t *t) {
  __atomic_store_n(&t->allocatedp, tsd_allocated(t), __ATOMIC_RELAXED);
  __atomic_store_n(&t->deallocatedp, tsd_deallocated(t), __ATOMIC_RELAXED);
}

void tsd_publish_counters(tsd_t *t) {
  t->counters_published = true;
  tsd_publish_slow(t);
}

void tsd_count_direct(tsd_t *t, bool is_malloc, size_t usize) {
  if (t->state != TSD_NOMINAL) {
    __atomic_fetch_add(is_malloc ? &tsd_gone_nmalloc : &tsd_gone_nfree, 1, __ATOMIC_RELAXED);
  } else if (is_malloc) {
    tsd_counter_inc(&t->ndirect_malloc);
    t->allocated += usize;
  } else {
    tsd_counter_inc(&t->ndirect_free);
    t->deallocated += usize;
  }
  TSD_PUBLISH(t);
}

void tcache_requests(uint64_t *nmalloc, uint64_t *nfree) {
  xmutex_lock(&tsd_list_lock);
  uint64_t m = __atomic_load_n(&tsd_gone_nmalloc, __ATOMIC_RELAXED);
  uint64_t f = __atomic_load_n(&tsd_gone_nfree, __ATOMIC_RELAXED);
  /* Other threads' counters are read without their cooperation. Each is
   * written by one thread, only goes up, and changes by one store per
   * call, so the sum cannot wrap, cannot go below an earlier reading (each
   * counter reads at least what it read before; a thread that exits moves
   * its exact counts to the gone totals under this lock), and lags by at
   * most the calls in flight. The bins' counts are derived (pushes =
   * ncached + nflush + npop - nfill), which is exact for the owner only:
   * read racily it would mix the before and after of a fill or flush, so
   * other threads' published counts are read, and the calling thread
   * publishes its own first (so that a reading from another thread later
   * does not go below this one). */
  tsd_t *self = tsd_tls;
  tsd_publish_calls(self); /* nothing for a sentinel */
  for (tsd_t *t = tsd_list.next; t != &tsd_list; t = t->next) {
    m += tsd_nmalloc(t, false);
    f += tsd_nfree(t, false);
  }
  xmutex_unlock(&tsd_list_lock);
  *nmalloc = m;
  *nfree = f;
}

/* ---- parked caches (tcache.h) ---- */

unsigned tsd_nparked;
static uint64_t tsd_parked_bytes;
/* Parked tsds, newest first (links next and prev), under tsd_list_lock. */
static tsd_t tsd_parked = {.state = TSD_EXITED, .next = &tsd_parked, .prev = &tsd_parked};
/* When the oldest parked cache is due to be flushed (UINT64_MAX: none):
 * written under tsd_list_lock, read without it by tsd_park_tick. */
uint64_t tsd_park_due_ns = UINT64_MAX;

/* How long a parked cache waits for a thread to adopt it. */
static uint64_t tsd_park_ns(void) {
  return (uint64_t)(opt_reuse_window_ms > 0 ? opt_reuse_window_ms : 1000) * 1000000u;
}

/* Bytes the bins of t hold. */
static uint64_t tsd_cached_bytes(const tsd_t *t) {
  uint64_t sum = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) sum += (uint64_t)tcache_ncached(t, i) * sz_index2size(i);
  return sum;
}

/* Counters of a tsd whose thread is gone (its counts were moved to the gone
 * totals) start again from its bins as they are: as if the objects it holds
 * had been filled into them, so that none is counted as freed again. */
static void tsd_counters_restart(tsd_t *t) {
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    t->nfill[i] = tcache_ncached(t, i);
    t->nflush[i] = 0;
    t->npop_base[i] = 0;
    t->bins[i].npop = t->bins[i].npop_start = 0;
  }
  t->allocated = t->deallocated = 0;
  t->ndirect_malloc = t->ndirect_free = 0;
  t->pub_nmalloc = t->pub_nfree = 0;
  memset(t->pub_pop, 0, sizeof(t->pub_pop));
  memset(t->pub_push, 0, sizeof(t->pub_push));
  t->counters_published = false;
  t->allocatedp = t->deallocatedp = 0;
}

/* Bins that grew (tcache_dalloc_hard) go back to their starting
 * capacities, and none counts as refilled: a new thread starts so. */
static void tsd_bins_restart(tsd_t *t) {
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    uint32_t cap0 = tcache_bin_cap0(i);
    t->bins[i].refilled = 0;
    if (tcache_ncached_max(t, i) <= cap0) continue;
    tcache_flush_bin(t, i, cap0);
    tcache_bin_restart(t, i);
  }
  t->grown = 0;
}

/* Flush a tsd that belongs to no thread (parked, or adopted by a thread
 * that could not start) and free it. */
static void tsd_discard(tsd_t *t) {
  t->state = TSD_EXITED;
  tcache_flush_all(t);
  base_pool_free(&tsd_pool, t);
}

/* Unlink t from the list it is on. */
static void tsd_unlink(tsd_t *t) {
  t->prev->next = t->next;
  t->next->prev = t->prev;
}

/* tsd_park_due_ns for the list as it is (tsd_list_lock held). */
static void tsd_park_due_update(void) {
  uint64_t due = tsd_parked.prev == &tsd_parked ? UINT64_MAX : tsd_parked.prev->parked_ns + tsd_park_ns();
  __atomic_store_n(&tsd_park_due_ns, due, __ATOMIC_RELAXED);
}

/* Park t (tsd_list_lock held); false if the budget has no room for it. */
static bool tsd_park_locked(tsd_t *t, uint64_t bytes, uint64_t now) {
  if (tsd_nparked >= opt_tcache_park || tsd_parked_bytes + bytes > TSD_PARK_BYTES) return false;
  t->parked_ns = now;
  t->parked_bytes = bytes;
  t->next = tsd_parked.next;
  t->prev = &tsd_parked;
  tsd_parked.next->prev = t;
  tsd_parked.next = t;
  tsd_parked_bytes += bytes;
  __atomic_store_n(&tsd_nparked, tsd_nparked + 1, __ATOMIC_RELAXED);
  tsd_park_due_update();
  return true;
}

/* Take parked t off the list (tsd_list_lock held). */
static void tsd_unpark_locked(tsd_t *t) {
  tsd_unlink(t);
  tsd_parked_bytes -= t->parked_bytes;
  __atomic_store_n(&tsd_nparked, tsd_nparked - 1, __ATOMIC_RELAXED);
  tsd_park_due_update();
}

/* The newest parked cache, off the list; NULL if none. */
static tsd_t *tsd_adopt(void) {
  if (__atomic_load_n(&tsd_nparked, __ATOMIC_RELAXED) == 0) return NULL;
  xmutex_lock(&tsd_list_lock);
  tsd_t *t = tsd_parked.next;
  if (t == &tsd_parked)
    t = NULL;
  else
    tsd_unpark_locked(t);
  xmutex_unlock(&tsd_list_lock);
  return t;
}

/* Flush the parked caches parked before cutoff (all: UINT64_MAX). They are
 * taken off the list under the lock, flushed without it (flushes take bin
 * and arena locks). */
static void tsd_park_flush_before(uint64_t cutoff) {
  if (__atomic_load_n(&tsd_nparked, __ATOMIC_RELAXED) == 0) return;
  tsd_t *list = NULL;
  xmutex_lock(&tsd_list_lock);
  /* Oldest at the tail. */
  while (tsd_parked.prev != &tsd_parked && tsd_parked.prev->parked_ns < cutoff) {
    tsd_t *t = tsd_parked.prev;
    tsd_unpark_locked(t);
    t->next = list;
    list = t;
  }
  xmutex_unlock(&tsd_list_lock);
  while (list != NULL) {
    tsd_t *t = list;
    list = t->next;
    tsd_discard(t);
  }
}

void tsd_park_flush(void) { tsd_park_flush_before(UINT64_MAX); }

void tsd_park_stats(size_t *n, size_t *bytes) {
  xmutex_lock(&tsd_list_lock);
  *n = tsd_nparked;
  *bytes = (size_t)tsd_parked_bytes;
  xmutex_unlock(&tsd_list_lock);
}

void tsd_park_expire(uint64_t now) {
  uint64_t age = tsd_park_ns();
  if (now > age) tsd_park_flush_before(now - age + 1);
}

static void tsd_destroy(void *arg) {
  tsd_t *t = arg;
  if (t == NULL || t->state != TSD_NOMINAL) return;
  tsd_tls = &tsd_exited;
  /* A cache that holds something is parked for the next thread; one that
   * holds nothing, or finds no room, goes, and so does the cache of a
   * thread bound to an explicit arena (its objects are that arena's: a new
   * thread's malloc would hand them out). */
  bool park = t->tcache_enabled && opt_tcache_park != 0 && arena_is_auto(t->arena);
  if (park) tsd_bins_restart(t);
  uint64_t bytes = park ? tsd_cached_bytes(t) : 0;
  uint64_t now = bytes != 0 ? decay_now_ns() : 0;
  arena_unchoose(t->arena);
  xmutex_lock(&tsd_list_lock);
  tsd_unlink(t);
  __atomic_fetch_add(&tsd_gone_nmalloc, tsd_nmalloc(t, true), __ATOMIC_RELAXED);
  __atomic_fetch_add(&tsd_gone_nfree, tsd_nfree(t, true), __ATOMIC_RELAXED);
  t->state = TSD_EXITED;
  bool parked = false;
  if (bytes != 0) {
    tsd_counters_restart(t);
    parked = tsd_park_locked(t, bytes, now);
  }
  xmutex_unlock(&tsd_list_lock);
  if (parked)
    tsd_park_tick(now);
  else
    tsd_discard(t);
}

uint64_t tsd_allocated(const tsd_t *t) {
  uint64_t sum = t->allocated;
  for (unsigned i = 0; i < tcache_nhbins; i++) sum += tcache_npop(t, i) * sz_index2size(i);
  return sum;
}

uint64_t tsd_deallocated(const tsd_t *t) {
  uint64_t sum = t->deallocated;
  for (unsigned i = 0; i < tcache_nhbins; i++) sum += tsd_npush(t, i) * sz_index2size(i);
  return sum;
}

void tsd_count_resize(tsd_t *t, size_t oldsize, size_t newsize) {
  if (t->state != TSD_NOMINAL) return;
  t->allocated += newsize;
  t->deallocated += oldsize;
  TSD_PUBLISH(t);
}

void tsd_prefork(void) { xmutex_prefork(&tsd_list_lock); }
void tsd_postfork_parent(void) { xmutex_postfork_parent(&tsd_list_lock); }
void tsd_postfork_child(void) {
  xmutex_postfork_child(&tsd_list_lock);
  /* Only the forking thread lives on in the child: the other threads'
   * caches are unreachable. Forget them (their objects stay allocated). */
  tsd_t *self = tsd_tls;
  /* Their calls stay counted (as those of threads that are gone). */
  for (tsd_t *t = tsd_list.next; t != &tsd_list && t != NULL; t = t->next) {
    if (t == self) continue;
    tsd_gone_nmalloc += tsd_nmalloc(t, false);
    tsd_gone_nfree += tsd_nfree(t, false);
  }
  tsd_list.next = tsd_list.prev = &tsd_list;
  if (self->state == TSD_NOMINAL) {
    self->next = self->prev = &tsd_list;
    tsd_list.next = tsd_list.prev = self;
  }
}
