/* tcache: the thread caches' bins: sizes, fills, flushes, GC, explicit
 * caches (see tcache.h; the per-thread state's lifecycle is tsd.c). */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/report.h"

unsigned tcache_nhbins;
uint8_t tcache_size2bin[SZ_LOOKUP_MAX + 1];
uint8_t tcache_large2bin[TCACHE_LARGE2BIN_N];
bool tcache_active;
static bool tcache_allowed; /* false: caches may never hold anything */
size_t tcache_maxclass;
/* Where each bin's stack lives in a tsd block (byte offsets): its starting
 * stack (cap0 slots), all of them packed together after the tsd_t; and,
 * for a bin that may grow, the room it grows in (tcache_bin_slots), all of
 * them at the end of the block (0: none). A stack moves to its room the
 * first time it grows and back when it is down to cap0 again, so a thread
 * that never grows touches only the packed starting stacks (a page per
 * growing class before: their rooms sat between the other stacks). */
static uint32_t tcache_start_off[TCACHE_NBINS_MAX], tcache_room_off[TCACHE_NBINS_MAX];

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

bool tcache_boot(void) {
  /* junk:true and valgrind need every call on the slow paths: threads get
   * caches that hold nothing. */
  /* Junk filling, valgrind and zero need every call on the slow path. */
  tcache_allowed = !opt_junk && !vg_running && !opt_zero;
  tcache_active = opt_tcache && tcache_allowed;
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
  uint32_t off = (uint32_t)sizeof(tsd_t);
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_start_off[i] = off;
    off += tcache_bin_cap0(i) * 8;
  }
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_room_off[i] = 0;
    if (tcache_bin_slots(i) > tcache_bin_cap0(i)) {
      tcache_room_off[i] = off;
      off += tcache_bin_slots(i) * 8;
    }
  }
  return tsd_boot_state(off);
}

/*
 * Give t's bins their stacks; they cache objects if enabled. With zero:true
 * no bin caches anything, so that every allocation takes the slow path,
 * which zeroes (the fast path stays as it is).
 */
void tcache_bins_init(tsd_t *t, bool enabled) {
  t->tcache_enabled = enabled;
  t->pw_first = TSD_PW_NONE;
  t->pw_words = NULL;
  /* Bins past tcache_nhbins (large classes page words may name) stay zero:
   * they hold nothing, and their region test fails. */
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_bin_t *b = &t->bins[i];
    uint32_t off = tcache_start_off[i];
    t->ext[i].base = off;
    b->top = b->low = off;
    b->full = off + (enabled && tcache_allowed ? tcache_bin_cap0(i) * 8 : 0);
    b->refilled = 0;
    b->magic = i < SZ_NBINS ? sz_div_magic[i] : TCACHE_REGION_BOUND;
    t->ext[i].szmin = i == 0 ? 0 : sz_index2size(i - 1) + 1;
    t->ext[i].szrange = sz_index2size(i) - t->ext[i].szmin;
    b->lg_fill_div = 1;
    b->npop = b->npop_start = 0;
  }
  t->grown = 0;
  sample_tsd_init(t);
}

static void tcache_bin_move(tsd_t *t, unsigned ind, uint32_t to, uint32_t cap);

void tcache_set_enabled(tsd_t *t, bool enabled) {
  if (!tsd_nominal(t)) return;
  tcache_flush_all(t);
  t->tcache_enabled = enabled;
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_bin_t *b = &t->bins[i];
    tcache_bin_move(t, i, tcache_start_off[i], enabled && tcache_allowed ? tcache_bin_cap0(i) : 0);
    b->refilled = 0;
  }
  t->grown = 0;
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
  tsd_publish_bin(t, ind);
}

/* Move bin ind's stack, its objects and low-water mark with it, to start at
 * offset to, with room for cap objects. */
static void tcache_bin_move(tsd_t *t, unsigned ind, uint32_t to, uint32_t cap) {
  tcache_bin_t *b = &t->bins[ind];
  uint32_t from = tcache_base(t, ind), n = tcache_ncached(t, ind);
  if (to == from) {
    b->full = to + cap * 8;
    return;
  }
  memcpy(tcache_slot(t, to), tcache_slot(t, from), (size_t)n * 8);
  b->low = to + (b->low - from);
  b->top = to + n * 8;
  b->full = to + cap * 8;
  t->ext[ind].base = to;
}

void tcache_bin_restart(tsd_t *t, unsigned ind) { tcache_bin_move(t, ind, tcache_start_off[ind], tcache_bin_cap0(ind)); }

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
      tcache_bin_move(t, ind, tcache_room_off[ind], cap + grow); /* into its room the first time */
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
  tsd_publish_calls(t); /* the bins a flush left alone (empty) too */
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
      /* Back to its starting stack once down to its starting capacity. */
      tcache_bin_move(t, ind, to == cap0 ? tcache_start_off[ind] : tcache_base(t, ind), to);
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
  if (t->arena != NULL) tsd_park_tick(arena_decay_event(t->arena));
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
  tcache_bins_init(t, true);
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

void tcache_prefork(void) {
  xmutex_prefork(&tcaches_lock);
  tsd_prefork();
}
void tcache_postfork_parent(void) {
  tsd_postfork_parent();
  xmutex_postfork_parent(&tcaches_lock);
}
void tcache_postfork_child(void) {
  tsd_postfork_child();
  xmutex_postfork_child(&tcaches_lock);
}
