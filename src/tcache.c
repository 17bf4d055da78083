/* tcache: thread caches and per-thread state (see tcache.h). */
#include <errno.h>
#include <pthread.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/decay.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/report.h"

/* Sentinels: empty bins that hold nothing. */
static tsd_t tsd_empty = {.state = TSD_EMPTY, .pw_first = TSD_PW_NONE};
static tsd_t tsd_boot = {.state = TSD_BOOT, .pw_first = TSD_PW_NONE};
static tsd_t tsd_exited = {.state = TSD_EXITED, .pw_first = TSD_PW_NONE};

__thread tsd_t *tsd_tls __attribute__((tls_model("initial-exec"))) = &tsd_empty;

unsigned tcache_nhbins;
uint8_t tcache_size2bin[SZ_LOOKUP_MAX + 1];
uint8_t tcache_large2bin[TCACHE_LARGE2BIN_N];
bool tcache_active;
static bool tcache_allowed; /* false: caches may never hold anything */
size_t tcache_maxclass;
static size_t tsd_slots;       /* stack slots per tsd */
static base_pool_t tsd_pool;
static pthread_key_t tsd_key;
static xmutex_t tsd_list_lock = XMUTEX_INITIALIZER;
static tsd_t tsd_list = {.state = TSD_EMPTY}; /* sentinel of the list of live tsds */

unsigned tcache_bin_cap0(unsigned ind) {
  if (ind < SZ_NBINS) {
    unsigned n = sz_bin_info[ind].nregs * 2;
    if (n > TCACHE_NSLOTS_SMALL_MAX) n = TCACHE_NSLOTS_SMALL_MAX;
    if (n < 4) n = 4;
    return n & ~1u;
  }
  return TCACHE_NSLOTS_LARGE;
}

unsigned tcache_bin_slots(unsigned ind) {
  unsigned n = tcache_bin_cap0(ind);
  if (ind < SZ_NBINS && sz_bin_info[ind].reg_size <= TCACHE_GROW_MAXCLASS) {
    size_t g = TCACHE_GROW_BYTES / sz_bin_info[ind].reg_size;
    if (g > TCACHE_NSLOTS_GROW_MAX) g = TCACHE_NSLOTS_GROW_MAX;
    if (g > n) n = (unsigned)g & ~1u;
  }
  return n;
}

static void tsd_destroy(void *arg);

bool tcache_boot(void) {
  tsd_boot.arena = tsd_exited.arena = tsd_empty.arena = arenas[0];
  /* junk:true and valgrind need every call on the slow paths: threads get
   * caches that hold nothing. */
  /* Junk filling, valgrind and zero need every call on the slow path. */
  tcache_allowed = !opt_junk && !vg_running && !opt_zero;
  tcache_active = opt_tcache && tcache_allowed;
  tsd_list.next = tsd_list.prev = &tsd_list;
  size_t max = opt_tcache_max;
  if (max > sz_large_max) max = sz_large_max;
  tcache_nhbins = SZ_NBINS;
  while (tcache_nhbins < TCACHE_NBINS_MAX && sz_index2size(tcache_nhbins) <= max) tcache_nhbins++;
  /* Read by the malloc fast path before it knows initialization is done. */
  __atomic_store_n(&tcache_maxclass, sz_index2size(tcache_nhbins - 1), __ATOMIC_RELAXED);
  /* Read by the malloc fast path before it knows initialization is done
   * (0, bin_none, until now). */
  xassert(sz_index2size(2) == 32); /* calloc's XA_OFF8_CLASS32 */
  for (size_t sz = 0; sz <= SZ_LOOKUP_MAX; sz++)
    __atomic_store_n(&tcache_size2bin[sz], (uint8_t)(tcache_bin_off(sz_size2index(sz)) / 8), __ATOMIC_RELAXED);
  for (size_t k = 0; k < TCACHE_LARGE2BIN_N; k++) {
    unsigned ind = sz_size2index((k + 1) << 10);
    xassert(ind == sz_size2index((k << 10) + 1) || (k << 10) < SZ_LOOKUP_MAX);
    if (ind < tcache_nhbins) __atomic_store_n(&tcache_large2bin[k], (uint8_t)(tcache_bin_off(ind) / 8), __ATOMIC_RELAXED);
  }
  tsd_slots = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) tsd_slots += tcache_bin_slots(i);
  tsd_pool.size = sizeof(tsd_t) + tsd_slots * sizeof(void *);
  /* The stacks' slots are written before they are read: a reused tsd
   * clears only its fields (not the slots' pages it never touched). */
  tsd_pool.zero = sizeof(tsd_t);
  tsd_pool.free = NULL;
  if (pthread_key_create(&tsd_key, tsd_destroy) != 0) return true;
  return false;
}

/*
 * Give t's bins their stacks; they cache objects if enabled. With zero:true
 * no bin caches anything, so that every allocation takes the slow path,
 * which zeroes (the fast path stays as it is).
 */
static void tsd_bins_init(tsd_t *t, bool enabled) {
  t->tcache_enabled = enabled;
  t->pw_first = TSD_PW_NONE;
  t->pw_words = NULL;
  uint32_t off = (uint32_t)sizeof(tsd_t);
  /* Bins past tcache_nhbins (large classes page words may name) stay zero:
   * they hold nothing, and their region test fails. */
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_bin_t *b = &t->bins[i];
    t->ext[i].base = off;
    b->top = b->low = off;
    b->full = off + (enabled && tcache_allowed ? tcache_bin_cap0(i) * 8 : 0);
    b->refilled = 0;
    off += tcache_bin_slots(i) * 8;
    b->magic = i < SZ_NBINS ? sz_div_magic[i] : TCACHE_REGION_BOUND;
    t->ext[i].szmin = i == 0 ? 0 : sz_index2size(i - 1) + 1;
    t->ext[i].szrange = sz_index2size(i) - t->ext[i].szmin;
    b->lg_fill_div = 1;
    b->npop = b->npop_start = 0;
  }
  t->grown = 0;
  sample_tsd_init(t);
}

void tcache_set_enabled(tsd_t *t, bool enabled) {
  if (!tsd_nominal(t)) return;
  tcache_flush_all(t);
  t->tcache_enabled = enabled;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_bin_t *b = &t->bins[i];
    b->full = tcache_base(t, i) + (enabled && tcache_allowed ? tcache_bin_cap0(i) * 8 : 0);
    b->refilled = 0;
  }
  t->grown = 0;
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
    tsd_bins_init(t, tcache_active);
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

/* The bins' pops and pushes, exactly (owner only), and published for the
 * other threads' readings. */
static void tsd_bin_calls(const tsd_t *t, uint64_t *nmalloc, uint64_t *nfree) {
  uint64_t m = 0, f = 0;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    uint64_t p = tcache_npop(t, i);
    m += p;
    f += tcache_ncached(t, i) + t->nflush[i] + p - t->nfill[i];
  }
  *nmalloc = m;
  *nfree = f;
}

static void tsd_publish_calls(tsd_t *t) {
  if (t->state != TSD_NOMINAL) return;
  uint64_t m, f;
  tsd_bin_calls(t, &m, &f);
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
XA_NOINLINE static void tsd_publish_slow(tsd_t *t) {
  __atomic_store_n(&t->allocatedp, tsd_allocated(t), __ATOMIC_RELAXED);
  __atomic_store_n(&t->deallocatedp, tsd_deallocated(t), __ATOMIC_RELAXED);
}
#define TSD_PUBLISH(t)                                   \
  do {                                                   \
    if (unlikely((t)->counters_published)) tsd_publish_slow(t); \
  } while (0)

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
    t->bins[i].full = tcache_base(t, i) + cap0 * 8;
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

/* Refill small bin ind of t from arena and pop one; NULL if the arena is
 * out of memory. */
static void *tcache_alloc_small_hard(tsd_t *t, arena_t *arena, unsigned ind) {
  tcache_bin_t *b = &t->bins[ind];
  unsigned max = tcache_ncached_max(t, ind);
  /* A grown bin refills as much as it did at its starting capacity: what
   * it holds beyond that comes from the thread's own frees, never from
   * runs opened for it. */
  unsigned n = tcache_bin_cap0(ind) >> b->lg_fill_div;
  if (n > max) n = max;
  if (n == 0) n = 1;
  /* The bin is empty: objects freed remotely may fill all of it. */
  unsigned got = arena_fill_small(arena, ind, tcache_slot(t, tcache_base(t, ind)), n, max > n ? max : n);
  if (got == 0) {
    errno = ENOMEM;
    return NULL;
  }
  /* The regions come tagged from their runs (arena_fill_small checked the
   * tags): only the one handed out is cleared. */
  b->top = tcache_base(t, ind) + (got - 1) * 8;
  b->low = tcache_base(t, ind);
  b->refilled = 1;
  t->nfill[ind] += got;
  void *ret = *tcache_slot(t, (uint32_t)b->top);
  tag_clear(ret);
  return ret;
}

static arena_t *tcache_owner(void *ptr) {
  arena_chunk_t *chunk = rtree_get((uintptr_t)ptr);
  if (chunk == NULL || chunk->kind != META_ARENA_CHUNK) return NULL;
  return chunk->arena;
}

/* Give objs[0..nflush) (nflush <= TCACHE_FLUSH_WINDOW) of bin ind back to
 * their arenas; objs[] is overwritten. */
static void tcache_flush_window(tsd_t *t, unsigned ind, void **objs, unsigned nflush) {
  void *batch[TCACHE_FLUSH_WINDOW];
  /* Objects leaving the cache must still hold their tags. One that lost it
   * was written after free, or pushed twice with the tag written over in
   * between and one copy already handed out (it is live): reported, and
   * not given back to its run, where a refill would hand it out again (it
   * stays allocated; abort:false leaks it). A copy pushed twice that kept
   * its tag is reported by the run bitmap. */
  unsigned keep = 0;
  /* Each object's owner, looked up once; then one batch per owner (most
   * flushes have one owner: given back as they are). */
  arena_t *own[TCACHE_FLUSH_WINDOW];
  bool mixed = false;
  for (unsigned j = 0; j < nflush; j++) {
    if (unlikely(tag_lost(objs[j]))) {
      report_bad_find("flush", BAD_TAG_LOST, objs[j], NULL);
      continue;
    }
    objs[keep] = objs[j];
    own[keep] = tcache_owner(objs[j]);
    mixed |= own[keep] != own[0];
    keep++;
  }
  nflush = keep;
  if (!mixed && nflush > 0 && own[0] != NULL) {
    if (ind < SZ_NBINS)
      arena_dalloc_small_flush(own[0], ind, objs, nflush, own[0] != t->arena);
    else
      for (unsigned j = 0; j < nflush; j++) arena_dalloc(rtree_get((uintptr_t)objs[j]), objs[j]);
    nflush = 0;
  }
  while (nflush > 0) {
    arena_t *owner = own[0];
    if (owner == NULL) {
      /* Cannot happen for objects pushed by free; report and drop. */
      report_bad("free", BAD_NOT_BLOCK, objs[0], 0, ARENA_IND_NONE, NULL);
      objs[0] = objs[--nflush];
      own[0] = own[nflush];
      continue;
    }
    unsigned k = 0, m = 0;
    for (unsigned j = 0; j < nflush; j++) {
      if (own[j] == owner) {
        batch[k++] = objs[j];
      } else {
        own[m] = own[j];
        objs[m++] = objs[j];
      }
    }
    if (ind < SZ_NBINS) {
      /* To another arena: handed over without its lock (arena.h). */
      arena_dalloc_small_flush(owner, ind, batch, k, owner != t->arena);
    } else {
      for (unsigned j = 0; j < k; j++) arena_dalloc(rtree_get((uintptr_t)batch[j]), batch[j]);
    }
    nflush = m;
  }
}

void tcache_flush_bin(tsd_t *t, unsigned ind, unsigned rem) {
  tcache_bin_t *b = &t->bins[ind];
  uint32_t ncached = tcache_ncached(t, ind);
  if (rem >= ncached) return;
  void **objs = tcache_slot(t, tcache_base(t, ind));
  /* The oldest first, a window at a time (the windows' arrays are on the
   * stack). */
  for (unsigned s = 0; s < ncached - rem; s += TCACHE_FLUSH_WINDOW) {
    unsigned w = ncached - rem - s;
    tcache_flush_window(t, ind, objs + s, w < TCACHE_FLUSH_WINDOW ? w : TCACHE_FLUSH_WINDOW);
  }
  memmove(objs, objs + (ncached - rem), rem * sizeof(void *));
  t->nflush[ind] += ncached - rem;
  b->top = tcache_base(t, ind) + rem * 8;
  if (b->low > b->top) b->low = (uint32_t)b->top;
  tsd_publish_calls(t);
}

void tcache_dalloc_hard(tsd_t *t, unsigned ind, void *ptr) {
  tcache_bin_t *b = &t->bins[ind];
  if (tag_present(ptr)) {
    report_bad_find("free", BAD_FREED, ptr, NULL);
    return;
  }
  tag_set(ptr);
  if ((uint32_t)b->top >= b->full) {
    /* Full. A bin that went empty since it last overflowed cycles between
     * its arena and the program: it doubles instead (up to its slots), so
     * that a thread that frees and allocates its objects by the thousand
     * stops sending them back and forth (tcmalloc's free lists grow the
     * same way). The GC shrinks it back as the thread stops using it. */
    uint32_t cap = tcache_ncached_max(t, ind), slots = tcache_bin_slots(ind);
    uint32_t grow = cap < slots - cap ? cap : slots - cap;
    uint64_t bytes = (uint64_t)grow * sz_index2size(ind);
    if (b->refilled && cap != 0 && grow != 0 && t->grown + bytes <= TCACHE_GROW_BUDGET) {
      b->full += grow * 8;
      t->grown += bytes;
    } else {
      tcache_flush_bin(t, ind, cap / 2);
    }
    b->refilled = 0;
  }
  *tcache_slot(t, (uint32_t)b->top) = ptr;
  b->top += 8;
  TSD_PUBLISH(t);
}

void tcache_flush_all(tsd_t *t) {
  for (unsigned i = 0; i < tcache_nhbins; i++) tcache_flush_bin(t, i, 0);
}

void tcache_event(tsd_t *t) {
  TSD_PUBLISH(t);
  unsigned ind = t->gc_next;
  t->gc_next = ind + 1 < tcache_nhbins ? ind + 1 : 0;
  tcache_bin_t *b = &t->bins[ind];
  uint32_t low_water = (b->low - tcache_base(t, ind)) / 8;
  if (low_water > 0) {
    /* Unused since the last visit: flush three quarters of it, and fill
     * less next time. */
    tcache_flush_bin(t, ind, tcache_ncached(t, ind) - (low_water - (low_water >> 2)));
    /* A bin that grew (tcache_dalloc_hard) gives back half of it. */
    uint32_t cap = tcache_ncached_max(t, ind), cap0 = tcache_bin_cap0(ind);
    if (cap > cap0) {
      uint32_t to = cap / 2 > cap0 ? cap / 2 : cap0;
      tcache_flush_bin(t, ind, to);
      b->full = tcache_base(t, ind) + to * 8;
      t->grown -= (uint64_t)(cap - to) * sz_index2size(ind);
    }
    if (ind < SZ_NBINS && (tcache_ncached_max(t, ind) >> (b->lg_fill_div + 1)) >= 1) b->lg_fill_div++;
  } else if (b->lg_fill_div > 1) {
    /* It ran dry: fill more next time. */
    b->lg_fill_div--;
  }
  b->low = (uint32_t)b->top;
  /* Publish the call counts every 16th step: summing the bins costs
   * about two instructions per pop if done at every step. */
  if ((++t->gc_steps & 15) == 0) tsd_publish_calls(t);
  /* A thread that only ever hits its cache still drives the arenas'
   * decay (the reuse window: decay.h). */
  uint64_t now = t->arena != NULL ? arena_decay_event(t->arena) : decay_now_ns();
  tsd_park_tick(now);
}

void tcache_pop_carry(tsd_t *t, tcache_bin_t *b) {
  unsigned ind = (unsigned)(b - t->bins);
  if (likely(!sample_on)) {
    t->npop_base[ind] += 256;
    tcache_event(t);
    return;
  }
  /* Sampling (sample.h): this batch was 256 - npop_start pops; the next
   * one starts the counter at a random value. npop_base + npop stays the
   * bin's pops. */
  unsigned k = 256 - b->npop_start;
  unsigned start = sample_carry(t, ind, k);
  b->npop_start = (uint8_t)start;
  b->npop = (uint8_t)start;
  t->npop_base[ind] += 256 - start;
  t->sample_gc += k;
  if (t->sample_gc >= 256) {
    t->sample_gc -= 256;
    tcache_event(t);
  }
}

/* Count a pop of bin ind made off the fast path. */
static void tcache_count_pop(tsd_t *t, unsigned ind) {
  if (tcache_npop_inc(&t->bins[ind])) {
    if (likely(!sample_on))
      t->npop_base[ind] += 256;
    else
      tcache_pop_carry(t, &t->bins[ind]); /* the caller serves t->sample_pending */
  }
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

void *tcache_alloc(tsd_t *t, arena_t *arena, unsigned ind, size_t usize) {
  tcache_bin_t *b = &t->bins[ind];
  void *ret;
  /* An object whose tag is gone was written after free, or pushed twice
   * (and may be live): reported, never handed out (abort:false drops it and
   * takes the next one; the run still counts it as allocated). */
  while (b->top != tcache_base(t, ind) && unlikely(tag_lost(*tcache_slot(t, (uint32_t)b->top - 8)))) {
    b->top -= 8;
    report_bad_find("malloc", BAD_TAG_LOST, *tcache_slot(t, (uint32_t)b->top), NULL);
    t->nflush[ind]++; /* dropped: it left the bin */
    if (b->top < b->low) b->low = (uint32_t)b->top;
  }
  if (b->top != tcache_base(t, ind)) {
    b->top -= 8;
    ret = *tcache_slot(t, (uint32_t)b->top);
    if (b->top < b->low) b->low = (uint32_t)b->top;
    tag_clear(ret);
  } else if (ind < SZ_NBINS) {
    ret = tcache_alloc_small_hard(t, arena, ind);
  } else {
    ret = arena_malloc_large(arena, usize, PAGE, false);
    if (ret != NULL) t->nfill[ind]++;
    b->low = tcache_base(t, ind);
  }
  if (ret != NULL) tcache_count_pop(t, ind);
  TSD_PUBLISH(t);
  return ret;
}

/* ---- explicit caches (tcache.create) ---- */

/* Explicit caches. Slots are written under tcaches_lock (release stores)
 * and read without it (acquire loads): MALLOCX_TCACHE(i) costs no lock. As
 * in jemalloc, a cache is used by one thread at a time and not while it is
 * destroyed. */
static tsd_t *tcaches[TCACHE_EXPLICIT_MAX];
static xmutex_t tcaches_lock = XMUTEX_INITIALIZER;

bool tcache_explicit_create(unsigned *ind) {
  tsd_t *t = base_pool_alloc(&tsd_pool);
  if (t == NULL) return true;
  t->state = TSD_NOMINAL;
  t->arena = arenas[0];
  tsd_bins_init(t, true);
  xmutex_lock(&tcaches_lock);
  unsigned i = 0;
  while (i < TCACHE_EXPLICIT_MAX && tcaches[i] != NULL) i++;
  if (i < TCACHE_EXPLICIT_MAX) __atomic_store_n(&tcaches[i], t, __ATOMIC_RELEASE);
  xmutex_unlock(&tcaches_lock);
  if (i == TCACHE_EXPLICIT_MAX) {
    base_pool_free(&tsd_pool, t);
    return true;
  }
  *ind = i;
  return false;
}

tsd_t *tcache_explicit_get(unsigned ind) {
  if (ind >= TCACHE_EXPLICIT_MAX) return NULL;
  return __atomic_load_n(&tcaches[ind], __ATOMIC_ACQUIRE);
}

bool tcache_explicit_flush(unsigned ind) {
  tsd_t *t = tcache_explicit_get(ind);
  if (t == NULL) return true;
  tcache_flush_all(t);
  return false;
}

bool tcache_explicit_destroy(unsigned ind) {
  if (ind >= TCACHE_EXPLICIT_MAX) return true;
  xmutex_lock(&tcaches_lock);
  tsd_t *t = tcaches[ind];
  __atomic_store_n(&tcaches[ind], NULL, __ATOMIC_RELEASE);
  xmutex_unlock(&tcaches_lock);
  if (t == NULL) return true;
  tcache_flush_all(t);
  t->state = TSD_EXITED;
  base_pool_free(&tsd_pool, t);
  return false;
}

void tsd_count_resize(tsd_t *t, size_t oldsize, size_t newsize) {
  if (t->state != TSD_NOMINAL) return;
  t->allocated += newsize;
  t->deallocated += oldsize;
  TSD_PUBLISH(t);
}

void tcache_prefork(void) {
  xmutex_prefork(&tcaches_lock);
  xmutex_prefork(&tsd_list_lock);
}
void tcache_postfork_parent(void) {
  xmutex_postfork_parent(&tsd_list_lock);
  xmutex_postfork_parent(&tcaches_lock);
}
void tcache_postfork_child(void) {
  xmutex_postfork_child(&tsd_list_lock);
  xmutex_postfork_child(&tcaches_lock);
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
