/*
 * xalloc: the public entry points, lazy initialization and fork handlers.
 *
 * Initialization happens on the first call into the allocator, from any
 * thread, before or after main. It reads the options, builds the size
 * class tables and the first arena, and calls nothing that could allocate
 * (no dlsym, no stdio, no TLS setup), so it is safe under LD_PRELOAD.
 */
/* In a prefixed build, xalloc.h maps every public name (malloc, mallocx,
 * ...) to its prefixed one, so the definitions below get those names. */
#define XALLOC_MANGLE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "xalloc/internal/background.h"
#include "xalloc/internal/conf.h"
#include "xalloc/internal/ctl.h"
#include "xalloc/internal/huge.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/guard.h"
#include "xalloc/internal/prof.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/stack.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/stats.h"
#include "xalloc/internal/statlog.h"
#include "xalloc/internal/tcache.h"
#include "xalloc/xalloc.h"

bool vg_running;
static bool xa_initialized;
static bool xa_init_failed;
static int xa_stats_fd = -1; /* copy of stderr for stats_print at exit */
static xmutex_t xa_init_lock = XMUTEX_INITIALIZER;

static void xa_prefork(void);
static void xa_postfork_parent(void);
static void xa_postfork_child(void);

/*
 * Register the fork handlers once, as early as possible: from the library
 * constructor below (before the program's constructors and main, with
 * nothing allocated), or from initialization if an allocation came first
 * (another library's constructor). prepare handlers run in reverse order of
 * registration and parent/child handlers in order, so handlers registered
 * first take xalloc's locks after every later-registered prepare handler
 * ran and release them before any later-registered parent/child handler
 * runs: those may allocate. glibc's pthread_atfork does not allocate for
 * its first 48 handlers; if it did, the allocation would initialize xalloc
 * normally (initialization never registers twice).
 */
static void xa_atfork_register(void) {
  static bool atfork_done;
  if (__atomic_exchange_n(&atfork_done, true, __ATOMIC_ACQ_REL)) return;
  pthread_atfork(xa_prefork, xa_postfork_parent, xa_postfork_child);
}

__attribute__((constructor(101))) static void xa_ctor(void) {
  xa_atfork_register();
  statlog_ctor(); /* stats_interval_ms: starts here if initialized already */
}

XA_NOINLINE static bool xa_init_slow(void) {
  xmutex_lock(&xa_init_lock);
  if (__atomic_load_n(&xa_initialized, __ATOMIC_ACQUIRE)) {
    xmutex_unlock(&xa_init_lock);
    return false;
  }
  if (xa_init_failed) goto fail;
  if (sysconf(_SC_PAGESIZE) != (long)PAGE) {
    util_warn("xalloc: page size %zu differs from the build's %zu; cannot start\n",
              (size_t)sysconf(_SC_PAGESIZE), PAGE);
    xa_init_failed = true;
    goto fail;
  }
  conf_init();
  pages_boot(); /* commit:auto reads vm.overcommit_memory */
  if (sz_boot(opt_lg_chunk) || rtree_boot(opt_lg_chunk) || arena_boot()) {
    xa_init_failed = true;
    goto fail;
  }
  arenas[0] = arena_new(0);
  if (arenas[0] == NULL) goto fail;
  narenas = 1;
  long ncpus_l = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned ncpus = ncpus_l > 0 ? (unsigned)ncpus_l : 1;
  narenas_auto = opt_narenas != 0 ? opt_narenas : 4 * ncpus;
  if (narenas_auto > ARENAS_MAX) narenas_auto = ARENAS_MAX;
  narenas_large = opt_narenas_large != 0 ? opt_narenas_large : ncpus;
  if (narenas_large > narenas_auto) narenas_large = narenas_auto;
  vg_running = config_valgrind && vg_detect();
  if (prof_boot() || guard_boot()) {
    xa_init_failed = true;
    goto fail;
  }
  sample_boot();
  if (tcache_boot()) {
    xa_init_failed = true;
    goto fail;
  }
  /* Strict commit accounting: blocks above the cached classes are page
   * multiples (sz.h). */
  if (pages_strict) sz_page_min = tcache_maxclass > SZ_SMALL_MAX ? tcache_maxclass : SZ_SMALL_MAX;
  background_boot();
  if (opt_stats_print) xa_stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
  __atomic_store_n(&xa_initialized, true, __ATOMIC_RELEASE);
  xmutex_unlock(&xa_init_lock);
  /* Usually done by the constructor already; if not, after initialization
   * (pthread_atfork may allocate, which is now fine). */
  xa_atfork_register();
  statlog_boot(); /* stats_interval_ms: starts here if the constructor ran */
  if (opt_prof) prof_boot_late(); /* loads the unwinder: allocates */
  if (guard_on) guard_boot_late();
  return false;
fail:
  xmutex_unlock(&xa_init_lock);
  return true;
}

static inline bool xa_init(void) {
  /* Acquire: pairs with the release store at the end of xa_init_slow, so
   * that a thread seeing "initialized" also sees everything it published
   * (options, size class tables, arenas[0], ...). */
  if (likely(__atomic_load_n(&xa_initialized, __ATOMIC_ACQUIRE))) return false;
  return xa_init_slow();
}

/* ---- core operations ---- */

/* junk:true and valgrind: new memory (on the slow paths only). */
static inline void xa_alloc_debug(void *ret, size_t usize, bool zero) {
  if (unlikely(opt_junk) && !zero) memset(ret, JUNK_ALLOC, usize);
  vg_malloclike(ret, usize, zero);
}

/*
 * The one allocation dispatcher. Every allocating entry point decodes its
 * arguments and comes here (malloc's and calloc's slow path, the aligned
 * calls, mallocx; realloc and rallocx when they move):
 *   usize:     sz_s2u or sz_sa2u of the request (never 0);
 *   alignment: a power of two, or 0 for no more than the class gives
 *              (a small class serves the alignments sz_sa2u chose it for);
 *   zero:      the block must read as zero;
 *   cache:     the cache to serve from (the thread's own, an explicit one)
 *              or NULL for none;
 *   arena:     where everything else comes from, and what a cache refills
 *              from;
 *   big:       arena is the thread's own (no MALLOCX_ARENA): a block above
 *              tcache_max comes from arena_large(arena) instead (arena.h).
 * A cache serves a class it caches (ncached_max != 0: small classes and
 * large ones up to tcache_max; none with zero:true, junk:true or under
 * valgrind) if the class is aligned enough by itself (large ones are
 * page aligned); the rest comes straight from the arena. The calling
 * thread t counts every allocation its own bins did not serve.
 */
static void xa_dalloc(void *ptr, tsd_t *cache, tsd_t *t);

/*
 * The allocation ret (req bytes asked for, usize served, alignment, zeroed if zero) just served
 * from cache (or directly, for t) is a sample (cache->sample_pending,
 * sample.h): serve it from the guarded pool instead, giving ret back,
 * and/or record it in the heap profile. No lock is held. Not while a
 * stack is being captured on this thread (the unwinder's own
 * allocations).
 */
XA_NOINLINE static void *xa_sample_take(tsd_t *cache, void *ret, size_t req, size_t usize, size_t alignment,
                                        bool zero) {
  unsigned what = cache->sample_pending;
  cache->sample_pending = 0;
  if (stack_busy()) return ret;
  if (what & SAMPLE_GUARD) {
    void *g = guard_alloc(req, usize, alignment, zero);
    if (g != NULL) {
      tsd_t *t = tsd_fetch();
      xa_dalloc(ret, t->state == TSD_NOMINAL ? t : NULL, t);
      ret = g;
      usize = req; /* a guarded block is exactly what was asked for */
    }
  }
  if (what & SAMPLE_PROF) prof_sample(ret, usize);
  if (what & SAMPLE_PROF_DUMP) prof_due_dump();
  return ret;
}

static void *xa_alloc_from(tsd_t *t, tsd_t *cache, arena_t *arena, bool big, size_t req, size_t usize,
                           size_t alignment, bool zero) {
  unsigned ind = sz_size2index(usize);
  void *ret;
  if (cache != NULL && ind < tcache_nhbins && tcache_ncached_max(cache, ind) != 0 &&
      (ind < SZ_NBINS || alignment <= PAGE)) {
    ret = tcache_alloc(cache, arena, ind, usize);
    if (ret == NULL) return NULL;
    if (zero) memset(ret, 0, usize);
    if (cache != t) tsd_count_direct(t, true, usize);
    if (unlikely(cache->sample_pending)) ret = xa_sample_take(cache, ret, req, usize, alignment, zero);
    return ret;
  }
  if (big && ind >= tcache_nhbins) arena = arena_large(arena); /* above tcache_max (arena.h) */
  if (ind < SZ_NBINS)
    ret = arena_malloc_small(arena, ind, zero);
  else if (usize <= sz_large_max)
    ret = arena_malloc_large(arena, usize, alignment > PAGE ? alignment : PAGE, zero);
  else
    ret = huge_malloc(arena, usize, alignment > sz_chunksize ? alignment : sz_chunksize, zero);
  if (ret != NULL) {
    tsd_count_direct(t, true, usize);
    xa_alloc_debug(ret, usize, zero);
    if (unlikely(sample_on) && t->state == TSD_NOMINAL) {
      sample_direct(t, usize);
      if (unlikely(t->sample_pending)) ret = xa_sample_take(t, ret, req, usize, alignment, zero);
    }
  }
  return ret;
}

/*
 * The standard API's requests (alignment 0: malloc and calloc; else the
 * aligned calls), from the calling thread's cache and arena. This is also
 * the slow path of malloc: not initialized, no tsd yet, cache empty, a
 * lost tag, or a size the table does not cover.
 */
XA_NOINLINE static void *xa_alloc_slow(size_t size, size_t alignment, bool zero) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  size_t usize = alignment == 0 ? sz_s2u(size) : sz_sa2u(size, alignment);
  if (unlikely(usize == 0)) {
    errno = ENOMEM;
    return NULL;
  }
  tsd_t *t = tsd_fetch();
  return xa_alloc_from(t, t, t->arena, true, size, usize, alignment, zero || opt_zero);
}

/*
 * The fast path of malloc and calloc: pop an object from the bin at byte
 * offset off of the thread's tsd (8 * tcache_size2bin[size]); NULL when the slow
 * path must decide (bin empty, or the object lost its free tag; off 0 is
 * bin_none, which is always empty). One compare covers the common case:
 * above the bin's low-water mark the pop sets no new low. Every 256 pops
 * of a bin its 8-bit counter carries and *gc is set: the caller then
 * returns through xa_alloc_gc (a tail call, so that the fast path needs no
 * stack frame).
 */
XA_ALWAYS_INLINE void *xa_alloc_cached(tsd_t *t, uintptr_t off8, bool *gc, bool into_ret) {
  uint64_t top;
  if (unlikely(tcache_top_at_low(t, off8, &top))) {
    tcache_bin_t *b = tcache_bin_at(t, off8 * 8);
    if (top == tcache_ext(b)->base) return NULL;
    b->low = (uint32_t)top - 8;
  }
  /* into_ret: straight into the return register (malloc, one copy
   * fewer; calloc, which clears through the object first, is one copy
   * shorter without: gcc 12). */
  void *ret = into_ret ? tcache_slot_load(t, top - 8) : *(void **)((char *)t + top - 8);
  if (unlikely(tag_take(ret))) return NULL;
  if (ret == NULL) __builtin_unreachable(); /* a bin holds no NULL: the callers' test of ret folds away */
  if (unlikely(tcache_pop_commit(t, off8))) {
    t->gc_carry = tcache_bin_at(t, off8 * 8); /* for the GC step the caller makes next */
    *gc = true;
  } else {
    *gc = false;
  }
  return ret;
}

/* Bin off's pop counter carried: count it, one incremental GC step, then
 * hand out ret. */
XA_NOINLINE static void *xa_alloc_gc(tsd_t *t, void *ret, size_t size) {
  tcache_bin_t *b = t->gc_carry;
  tcache_pop_carry(t, b);
  if (unlikely(t->sample_pending))
    return xa_sample_take(t, ret, size, sz_index2size((unsigned)(b - t->bins)), 0, false);
  return ret;
}

XA_ALWAYS_INLINE void *xa_alloc(size_t size) {
  uintptr_t off8; /* the bin's offset / 8 */
  if (likely(size <= SZ_LOOKUP_MAX))
    off8 = __atomic_load_n(&tcache_size2bin[size], __ATOMIC_RELAXED);
  else if (size <= __atomic_load_n(&tcache_maxclass, __ATOMIC_RELAXED))
    off8 = __atomic_load_n(&tcache_large2bin[(size - 1) >> 10], __ATOMIC_RELAXED); /* a large class the caches hold */
  else
    goto slow;
  tsd_t *t = tsd_tls;
  bool gc;
  void *ret = xa_alloc_cached(t, off8, &gc, true);
  if (likely(ret != NULL)) return unlikely(gc) ? xa_alloc_gc(t, ret, size) : ret;
slow:
  return xa_alloc_slow(size, 0, false);
}

/*
 * Whether ptr, in a page of a small run whose binmap entry is e (size class
 * in the low byte, page index in the run in the high byte), is the start of
 * a region: its offset in the run must be a multiple of the region size
 * (multiply-shift, no division).
 */
static inline size_t xa_run_offset(const arena_chunk_t *chunk, const void *ptr, unsigned e) {
  return (((uintptr_t)ptr - (uintptr_t)chunk->addr) & PAGE_MASK) + ((size_t)(e >> 8) << LG_PAGE);
}
static inline bool xa_region_start(const arena_chunk_t *chunk, const void *ptr, unsigned e) {
  unsigned ind = e & 0xff;
  size_t roff = xa_run_offset(chunk, ptr, e);
  return ((roff * sz_div_magic[ind]) >> 32) * sz_index2size_tab[ind] == roff;
}

/* Metadata of an allocated pointer, or NULL (reported) if xalloc does not own it. */
static inline uint8_t *xa_meta(const void *ptr, const char *op) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (unlikely(meta == NULL || (*meta != META_ARENA_CHUNK && *meta != META_HUGE))) {
    if (guard_contains(ptr)) return (uint8_t *)&guard_meta; /* the guarded pool (guard.h) */
    report_unowned(op, ptr);
    return NULL;
  }
  return meta;
}

/*
 * Free ptr into cache (a thread's own cache, an explicit one, or NULL for
 * none), counting the call in t (the calling thread) when it does not go
 * into t's own bins. Every pointer is checked against the metadata first.
 */
/* A small object being freed: a sample of the heap profiler is in a page
 * whose word is 0 (prof.h). */
static inline void xa_prof_free_small(const void *ptr) {
  if (likely(!prof_live_any())) return;
  uint64_t *words = rtree_pw_grain((uintptr_t)ptr);
  if (words != NULL &&
      __atomic_load_n(&words[((uintptr_t)ptr >> LG_PAGE) & (RTREE_PW_PER_GRAIN - 1)], __ATOMIC_ACQUIRE) != 0)
    return;
  prof_free_slow(ptr);
}

static void xa_dalloc(void *ptr, tsd_t *cache, tsd_t *t) {
  uint8_t *meta = xa_meta(ptr, "free");
  if (unlikely(meta == NULL)) return;
  if (unlikely(*meta == META_GUARD)) {
    prof_free_check(ptr); /* a guarded block may be a profile sample too */
    guard_free(ptr, "free");
    return;
  }
  if (*meta == META_HUGE) {
    extent_node_t *node = (extent_node_t *)meta;
    size_t usize = node->usize;
    if (node->addr == ptr) prof_free_check(ptr);
    huge_dalloc(node, ptr);
    tsd_count_direct(t, false, usize);
    return;
  }
  arena_chunk_t *chunk = (arena_chunk_t *)meta;
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  unsigned e = chunk->binmap[pageind];
  unsigned ind = e & 0xff;
  size_t usize;
  if (ind < SZ_NBINS) {
    if (!xa_region_start(chunk, ptr, e)) {
      arena_dalloc(chunk, ptr); /* not a region's start: reported there */
      return;
    }
    /* A region in a page its run never used was never handed out (no tag
     * there to catch this: bin.c, arena_run_expose): the run's bitmap
     * decides (reported there). */
    const arena_run_t *run = chunk->map[pageind];
    size_t nexposed = __atomic_load_n(&run->nexposed, __ATOMIC_RELAXED);
    if (unlikely(xa_run_offset(chunk, ptr, e) >= nexposed * sz_index2size(ind))) {
      arena_dalloc(chunk, ptr);
      return;
    }
    usize = sz_index2size(ind);
    xa_prof_free_small(ptr);
  } else {
    /* Large (or not allocated: arena_dalloc reports it). */
    arena_run_t *run = chunk->map[pageind];
    usize = run != NULL && run->state == RUN_LARGE ? (size_t)run->npages << LG_PAGE : 0;
    bool start = usize != 0 && (char *)ptr == chunk->addr + ((size_t)run->pageind << LG_PAGE);
    if (start) prof_free_check(ptr);
    if (!start || usize > tcache_maxclass) {
      arena_dalloc(chunk, ptr);
      if (usize != 0) tsd_count_direct(t, false, usize);
      return;
    }
    ind = sz_size2index(usize);
  }
  if (cache != NULL && tcache_ncached_max(cache, ind) != 0) {
    tcache_dalloc_hard(cache, ind, ptr);
    if (cache != t) tsd_count_direct(t, false, usize);
    return;
  }
  /* Straight to the arena. An object sitting in some thread's cache is
   * allocated as far as its run knows, but carries the free tag: a free of
   * it here is a double free. */
  if (config_heap_checks && unlikely(tag_present_peek(ptr))) {
    report_bad_find("free", BAD_FREED, ptr, NULL);
    return;
  }
  arena_dalloc(chunk, ptr);
  tsd_count_direct(t, false, usize);
}

/*
 * A thread's first frees, made before its first allocation, go straight
 * back to their arenas instead of building the thread's cache: a thread
 * that frees objects handed over by another thread and then allocates would
 * otherwise be given those very objects back, whose cache lines the other
 * threads still write to (allocator-induced false sharing). A thread that
 * only frees gets its cache after XA_EARLY_FREES frees, for batching.
 */
#define XA_EARLY_FREES 64
static __thread uint32_t xa_early_frees __attribute__((tls_model("initial-exec")));

XA_NOINLINE static void xa_free_slow(void *ptr) {
  if (ptr == NULL) return;
  tsd_t *t = tsd_tls;
  if (t->state == TSD_EMPTY && xa_early_frees < XA_EARLY_FREES) {
    xa_early_frees++;
    xa_dalloc(ptr, NULL, t);
    return;
  }
  t = tsd_fetch();
  xa_dalloc(ptr, t, t);
}

/*
 * The fast path of every free: find the page's word (rtree.h) -- through
 * the thread's cache of the last grain it looked up, else the page word
 * tree -- which names the class's bin and the run's start, check that ptr
 * is a region's start, and push onto the bin. The page words hold the
 * class of every page of a small run and of the first page of a large run
 * of a class the caches may hold, so small and cached large objects are
 * both freed here; any other page's word is 0, which leads to bin_none,
 * which holds nothing. With sized (free_sized, sdallocx), size must be of
 * the class found. Returns false (nothing done) when the slow
 * path must decide: not an arena chunk's page of a cached class, not a
 * region's start, a size of another class, bin full or caching nothing,
 * the free tag already there.
 */
XA_ALWAYS_INLINE bool xa_free_push(tsd_t *t, void *ptr, bool sized, size_t size, const uint64_t *wp) {
  uint64_t w = __atomic_load_n(wp, __ATOMIC_RELAXED);
  uint32_t x = (uint32_t)(uintptr_t)ptr + (uint32_t)w; /* offset in the run (rtree.h) */
  __asm__("" : "+r"(x)); /* x first, then w's high half in place: no copy of w */
  uintptr_t off = (uintptr_t)(w >> 32); /* the bin's */
  if (config_heap_checks && unlikely(tcache_not_region_start(t, off, x))) return false;
  if (sized) {
    tcache_bin_ext_t *e = tcache_ext(tcache_bin_at(t, off));
    if (unlikely(size - e->szmin > e->szrange)) return false;
  }
  uint64_t top;
  if (unlikely(tcache_top_at_full(t, off, &top)) || unlikely(tag_present(ptr))) return false;
  tag_set(ptr);
  *(void **)((char *)t + top) = ptr;
  tcache_push_commit(t, off);
  return true;
}

/* The grain is not the one the thread looked up last: look it up (and
 * remember it), then push as above. */
XA_ALWAYS_INLINE bool xa_free_miss(tsd_t *t, void *ptr, bool sized, size_t size) {
  uint64_t *words = rtree_pw_grain((uintptr_t)ptr);
  if (unlikely(words == NULL)) return false;
  uintptr_t page = (uintptr_t)ptr >> LG_PAGE;
  /* The sentinels are shared: nothing is cached in them (their bins hold
   * nothing anyway). */
  if (likely(t->state == TSD_NOMINAL)) {
    t->pw_first = page & ~(RTREE_PW_PER_GRAIN - 1);
    t->pw_words = words;
  }
  return xa_free_push(t, ptr, sized, size, &words[page & (RTREE_PW_PER_GRAIN - 1)]);
}

/* The index of ptr's page in the grain the thread looked up last, which
 * is RTREE_PW_PER_GRAIN or more for any other grain. */
XA_ALWAYS_INLINE uintptr_t xa_free_idx(const tsd_t *t, const void *ptr) {
  return ((uintptr_t)ptr >> LG_PAGE) - t->pw_first;
}

XA_NOINLINE static void xa_free_miss_any(tsd_t *t, void *ptr) {
  if (likely(xa_free_miss(t, ptr, false, 0))) return;
  xa_free_slow(ptr);
}

XA_ALWAYS_INLINE void xa_free(void *ptr) {
  tsd_t *t = tsd_tls;
  uintptr_t idx = xa_free_idx(t, ptr);
  if (unlikely(idx >= RTREE_PW_PER_GRAIN)) {
    xa_free_miss_any(t, ptr);
    return;
  }
  if (likely(xa_free_push(t, ptr, false, 0, &t->pw_words[idx]))) return;
  xa_free_slow(ptr);
}

/* Usable size of a live allocation; 0 (reported as a bad op) if ptr is
 * not xalloc's, not the start of an allocation, or already freed. */
static size_t xa_usable(const void *ptr, const char *op);
/* xa_usable as the size classes see it, for the sized frees' checks: a
 * guarded block's is the usable size its request would have had. */
static size_t xa_usable_class(const void *ptr, const char *op) {
  size_t u = xa_usable(ptr, op);
  return unlikely(u != 0 && guard_contains(ptr)) ? guard_usize(ptr) : u;
}

static size_t xa_usable(const void *ptr, const char *op) {
  uint8_t *meta = xa_meta(ptr, op);
  if (meta == NULL) return 0;
  if (*meta == META_ARENA_CHUNK) return arena_lookup((arena_chunk_t *)meta, ptr, op);
  if (unlikely(*meta == META_GUARD)) return guard_usable(ptr, op);
  extent_node_t *node = (extent_node_t *)meta;
  if (node->addr != ptr) {
    report_bad(op, BAD_INTERIOR, ptr, node->usize, ((arena_t *)node->arena)->ind, NULL);
    return 0;
  }
  return node->usize;
}

/*
 * The one "in place" decision, for realloc, rallocx and xallocx: resize
 * ptr (old usable bytes) to usize without moving it; the new usable size,
 * or 0 if it cannot be done in place. The same class is always kept. A
 * small block never changes class in place; a large one grows or shrinks
 * within its chunk while it stays large; a huge one while it stays huge.
 * With junk:true or under valgrind only the same class is kept (new bytes
 * get junk; memcheck sees one block freed and one allocated).
 */
static size_t xa_resize_in_place(void *ptr, size_t old, size_t usize, bool zero) {
  if (unlikely(guard_contains(ptr))) return 0; /* a guarded block (guard.h) moves */
  if (usize == old) return old;
  if (opt_junk || vg_on()) return 0;
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (*meta == META_ARENA_CHUNK) {
    if (old > SZ_SMALL_MAX && usize > SZ_SMALL_MAX && usize <= sz_large_max &&
        !arena_ralloc_large_in_place((arena_chunk_t *)meta, ptr, old, usize, zero)) {
      prof_resize_check(ptr, usize); /* a sample keeps its record, with its new size and page word */
      return usize;
    }
    return 0;
  }
  if (usize > sz_large_max && !huge_ralloc_in_place((extent_node_t *)meta, ptr, usize, zero)) {
    prof_resize_check(ptr, usize);
    return usize;
  }
  return 0;
}

static void *xa_realloc(void *ptr, size_t size) {
  if (ptr == NULL) return xa_alloc(size);
  if (size == 0) {
    /* As glibc: realloc(p, 0) frees p and returns NULL. */
    xa_free(ptr);
    return NULL;
  }
  size_t old = xa_usable(ptr, "realloc");
  if (old == 0) {
    errno = EINVAL;
    return NULL;
  }
  size_t usize = sz_s2u(size);
  if (usize == 0) {
    errno = ENOMEM;
    return NULL;
  }
  size_t u = xa_resize_in_place(ptr, old, usize, opt_zero);
  if (u != 0) {
    if (u != old) tsd_count_resize(tsd_fetch(), old, u);
    return ptr;
  }
  void *ret = unlikely(guard_contains(ptr)) ? guard_alloc(size, usize, 0, opt_zero) : NULL; /* stays guarded */
  if (ret == NULL) ret = xa_alloc(size);
  if (ret == NULL) return NULL;
  memcpy(ret, ptr, old < size ? old : size);
  xa_free(ptr);
  return ret;
}

/* ---- the standard API ---- */

XA_EXPORT void *malloc(size_t size) { return xa_alloc(size); }

XA_EXPORT void free(void *ptr) { xa_free(ptr); }

/* calloc's cached path for requests above 128 bytes: clear. */
XA_NOINLINE static void *xa_calloc_clear(void *ret, size_t total) {
  memset(ret, 0, total);
  return ret;
}

/* The same when the pop's counter carried: clear, count, one GC step. */
XA_NOINLINE static void *xa_calloc_gc(tsd_t *t, void *ret, size_t total) {
  memset(ret, 0, total < 8 ? 8 : total); /* the tag word too */
  tcache_bin_t *b = t->gc_carry;
  tcache_pop_carry(t, b);
  if (unlikely(t->sample_pending))
    return xa_sample_take(t, ret, total, sz_index2size((unsigned)(b - t->bins)), 0, true);
  return ret;
}

/* calloc's inline clears of the first total bytes of p, no loop and
 * cheaper than a call for the sizes calloc mostly sees (it clears the
 * 32-byte class itself). The first word (the free tag) is always written.
 * Up to 16 bytes: an object of more than 8 bytes has at least 16. */
XA_ALWAYS_INLINE void xa_clear_upto16(void *p, size_t total) {
  if (total > 8)
    __builtin_memset(p, 0, 16);
  else
    *(uint64_t *)p = 0;
}
/* 33 to 128 bytes: 32-byte stores from both ends that may overlap. */
XA_ALWAYS_INLINE void xa_clear_upto128(void *p, size_t total) {
  char *c = p;
  __builtin_memset(c, 0, 32);
  __builtin_memset(c + total - 32, 0, 32);
  if (total <= 64) return;
  __builtin_memset(c + 32, 0, 32);
  __builtin_memset(c + total - 64, 0, 32);
}

/* tcache_size2bin's entry of the 32-byte class (index 2 of 8, 16, 32, ...:
 * sz.h; checked by tcache_boot). */
#define XA_OFF8_CLASS32 ((2 + 1) * sizeof(tcache_bin_t) / 8)

XA_EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  /* The cached path: the object is zeroed here (thread caches cache
   * nothing with zero:true, junk:true or under valgrind). */
  if (likely(total <= SZ_LOOKUP_MAX)) {
    uintptr_t off8 = __atomic_load_n(&tcache_size2bin[total], __ATOMIC_RELAXED);
    tsd_t *t = tsd_tls;
    bool gc;
    void *ret = xa_alloc_cached(t, off8, &gc, false);
    if (likely(ret != NULL)) {
      if (unlikely(gc)) return xa_calloc_gc(t, ret, total);
      if (likely(off8 == XA_OFF8_CLASS32)) { /* 17..32 bytes: the whole 32-byte object, one compare */
        __builtin_memset(ret, 0, 32);
        return ret;
      }
      if (total <= 16) {
        xa_clear_upto16(ret, total);
        return ret;
      }
      if (total > 128) return xa_calloc_clear(ret, total);
      xa_clear_upto128(ret, total);
      return ret;
    }
  }
  return xa_alloc_slow(total, 0, true);
}

XA_EXPORT void *realloc(void *ptr, size_t size) { return xa_realloc(ptr, size); }

XA_EXPORT void *reallocarray(void *ptr, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return xa_realloc(ptr, total);
}

/* Alignments malloc gives anyway: every class of more than 8 bytes is a
 * multiple of 16 (QUANTUM) in page-aligned runs, and large and huge blocks
 * are page aligned, so a request of at least the alignment takes malloc's
 * fast path (rpmalloc's benchmark asks memalign for 8 and 16 by the
 * million). */
XA_ALWAYS_INLINE void *xa_alloc_aligned(size_t size, size_t alignment) {
  if (likely(alignment <= QUANTUM)) return xa_alloc(size < alignment ? alignment : size);
  return xa_alloc_slow(size, alignment, false);
}

XA_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
  if (!util_is_pow2(alignment) || alignment < sizeof(void *)) return EINVAL;
  int err = errno;
  void *p = xa_alloc_aligned(size, alignment);
  if (p == NULL) {
    errno = err;
    return ENOMEM;
  }
  *memptr = p;
  return 0;
}

XA_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
  if (!util_is_pow2(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return xa_alloc_aligned(size, alignment);
}

XA_EXPORT void *memalign(size_t alignment, size_t size) {
  if (!util_is_pow2(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return xa_alloc_aligned(size, alignment);
}

XA_EXPORT void *valloc(size_t size) { return xa_alloc_slow(size, PAGE, false); }

XA_EXPORT void *pvalloc(size_t size) {
  size_t rounded = PAGE_CEILING(size);
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  return xa_alloc_slow(rounded == 0 ? PAGE : rounded, PAGE, false);
}

XA_EXPORT size_t malloc_usable_size(void *ptr) {
  if (ptr == NULL) return 0;
  return xa_usable(ptr, "malloc_usable_size");
}

/* A sized free whose size is wrong, or that the fast path left: checked
 * in full (one report for a bad pointer or a wrong size), then freed. */
XA_NOINLINE static void xa_free_sized_slow(void *ptr, size_t size) {
  size_t usize = xa_usable_class(ptr, "free_sized");
  if (usize == 0) return;
  if (sz_s2u(size) != usize) {
    char detail[64];
    util_format(detail, sizeof(detail), "free_sized with size %zu", size);
    report_bad_find("free_sized", BAD_SIZE, ptr, detail);
    return;
  }
  xa_free_slow(ptr);
}

/* (ptr and size first: where the caller has them, no register moves on the fast path) */
XA_NOINLINE static void xa_free_sized_miss(void *ptr, size_t size, tsd_t *t) {
  if (likely(xa_free_miss(t, ptr, true, size))) return;
  if (ptr == NULL) return;
  xa_free_sized_slow(ptr, size);
}

XA_EXPORT void free_sized(void *ptr, size_t size) {
  tsd_t *t = tsd_tls;
  uintptr_t idx = xa_free_idx(t, ptr);
  if (unlikely(idx >= RTREE_PW_PER_GRAIN)) {
    xa_free_sized_miss(ptr, size, t);
    return;
  }
  if (likely(xa_free_push(t, ptr, true, size, &t->pw_words[idx]))) return;
  if (ptr == NULL) return;
  xa_free_sized_slow(ptr, size);
}

XA_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size) {
  if (ptr == NULL) return;
  size_t usize = xa_usable_class(ptr, "free_aligned_sized");
  if (usize == 0) return;
  bool bad_align = !util_is_pow2(alignment) || ((uintptr_t)ptr & (alignment - 1)) != 0;
  if (bad_align || sz_sa2u(size, alignment) != usize) {
    char detail[96];
    util_format(detail, sizeof(detail), "free_aligned_sized with alignment %zu and size %zu", alignment,
                size);
    report_bad_find("free_aligned_sized", bad_align ? BAD_ALIGN : BAD_SIZE, ptr, detail);
    return;
  }
  xa_free(ptr);
}

/* ---- the jemalloc-compatible API (xalloc.h) ---- */

/* The fields of a MALLOCX_* flags word. */
#define XA_FLAGS_LG_ALIGN(f) ((unsigned)(f)&0x3f)
#define XA_FLAGS_ZERO(f) (((unsigned)(f)&0x40) != 0)
#define XA_FLAGS_TCACHE(f) (((unsigned)(f) >> 8) & 0xfff) /* 0 auto, 1 none, i + 2 cache i */
#define XA_FLAGS_ARENA(f) ((unsigned)(f) >> 20)           /* 0 auto, i + 1 arena i */
/* The alignment asked for: 1 to 2^63 (every lg is a valid shift; sz_sa2u
 * refuses what cannot be honoured, 2^62 and up). */
#define XA_FLAGS_ALIGN(f) ((size_t)1 << XA_FLAGS_LG_ALIGN(f))

/* The usable size mallocx(size, flags) gives; 0 if none (too large, or an
 * alignment that cannot be honoured). */
static size_t xa_flags_usize(size_t size, int flags) {
  if (XA_FLAGS_LG_ALIGN(flags) == 0) return sz_s2u(size);
  return sz_sa2u(size, XA_FLAGS_ALIGN(flags));
}

/*
 * mallocx's flags decoded into a request for xa_alloc_from: a named arena
 * serves the allocation itself (the memory must come from that arena, so
 * no cache is used); else MALLOCX_TCACHE(i) names the cache, TCACHE_NONE
 * none, and no tcache flag the thread's own.
 */
XA_NOINLINE static void *xa_mallocx_slow(size_t size, int flags) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  unsigned tci = XA_FLAGS_TCACHE(flags), ai = XA_FLAGS_ARENA(flags);
  size_t usize = xa_flags_usize(size, flags);
  if (usize == 0) {
    errno = ENOMEM;
    return NULL;
  }
  tsd_t *t = tsd_fetch(), *cache = t;
  arena_t *arena = t->arena;
  if (ai != 0) {
    if ((arena = arena_get(ai - 1)) == NULL) {
      errno = EINVAL; /* no such arena (or destroyed) */
      return NULL;
    }
    cache = NULL;
  } else if (tci == 1) {
    cache = NULL;
  } else if (tci >= 2 && (cache = tcache_explicit_get(tci - 2)) == NULL) {
    errno = EINVAL; /* no such cache */
    return NULL;
  }
  size_t alignment = XA_FLAGS_LG_ALIGN(flags) != 0 ? XA_FLAGS_ALIGN(flags) : 0;
  return xa_alloc_from(t, cache, arena, ai == 0, size, usize, alignment, XA_FLAGS_ZERO(flags) || opt_zero);
}

XA_EXPORT void *mallocx(size_t size, int flags) {
  if (likely(flags == 0)) return xa_alloc(size);
  return xa_mallocx_slow(size, flags);
}

XA_NOINLINE static void xa_dallocx_slow(void *ptr, int flags) {
  unsigned tci = XA_FLAGS_TCACHE(flags);
  tsd_t *t = tsd_fetch();
  tsd_t *cache = t;
  if (tci == 1) {
    cache = NULL;
  } else if (tci >= 2) {
    cache = tcache_explicit_get(tci - 2);
    if (cache == NULL) {
      /* Aborts, or (abort:false) frees without a cache. */
      report_bad_find("dallocx", BAD_TCACHE, ptr, NULL);
    }
  }
  xa_dalloc(ptr, cache, t);
}

XA_EXPORT void dallocx(void *ptr, int flags) {
  if (likely(XA_FLAGS_TCACHE(flags) == 0)) {
    xa_free(ptr);
    return;
  }
  if (ptr == NULL) return;
  xa_dallocx_slow(ptr, flags);
}

XA_NOINLINE static void xa_sdallocx_slow(void *ptr, size_t size, int flags) {
  size_t usize = xa_usable_class(ptr, "sdallocx");
  if (usize == 0) return;
  if (xa_flags_usize(size, flags) != usize) {
    report_bad_find("sdallocx", BAD_SIZE, ptr, NULL);
    return;
  }
  if (XA_FLAGS_TCACHE(flags) == 0)
    xa_free_slow(ptr);
  else
    xa_dallocx_slow(ptr, flags);
}

/* (ptr and size first: where the caller has them, no register moves on the fast path) */
XA_NOINLINE static void xa_sdallocx_miss(void *ptr, size_t size, tsd_t *t) {
  if (likely(xa_free_miss(t, ptr, true, size))) return;
  if (ptr == NULL) return;
  xa_sdallocx_slow(ptr, size, 0);
}

XA_EXPORT void sdallocx(void *ptr, size_t size, int flags) {
  if (likely(flags == 0)) {
    tsd_t *t = tsd_tls;
    uintptr_t idx = xa_free_idx(t, ptr);
    if (unlikely(idx >= RTREE_PW_PER_GRAIN)) {
      xa_sdallocx_miss(ptr, size, t);
      return;
    }
    if (likely(xa_free_push(t, ptr, true, size, &t->pw_words[idx]))) return;
  }
  if (ptr == NULL) return;
  xa_sdallocx_slow(ptr, size, flags);
}

XA_EXPORT size_t sallocx(const void *ptr, int flags) {
  (void)flags;
  if (ptr == NULL) return 0;
  return xa_usable(ptr, "sallocx");
}

XA_EXPORT size_t nallocx(size_t size, int flags) {
  if (unlikely(xa_init())) return 0;
  return xa_flags_usize(size, flags);
}

/* rallocx of a guarded block (guard.h): moves, into the pool again if it
 * fits and no arena is named. */
XA_NOINLINE static void *xa_rallocx_guarded(void *ptr, size_t size, int flags, size_t usize, size_t old) {
  size_t alignment = XA_FLAGS_LG_ALIGN(flags) != 0 ? XA_FLAGS_ALIGN(flags) : 0;
  void *ret = XA_FLAGS_ARENA(flags) == 0 ? guard_alloc(size, usize, alignment, XA_FLAGS_ZERO(flags) || opt_zero) : NULL;
  if (ret == NULL) ret = mallocx(size, flags);
  if (ret == NULL) return NULL;
  memcpy(ret, ptr, old < size ? old : size);
  dallocx(ptr, flags & (0xfff << 8));
  return ret;
}

XA_EXPORT void *rallocx(void *ptr, size_t size, int flags) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  if (ptr == NULL) return mallocx(size, flags);
  size_t usize = xa_flags_usize(size, flags);
  if (usize == 0) {
    errno = ENOMEM;
    return NULL;
  }
  size_t old = xa_usable(ptr, "rallocx");
  if (old == 0) {
    errno = EINVAL;
    return NULL;
  }
  unsigned ai = XA_FLAGS_ARENA(flags);
  bool zero = XA_FLAGS_ZERO(flags) || opt_zero;
  size_t alignment = XA_FLAGS_ALIGN(flags);
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (unlikely(meta == NULL)) return xa_rallocx_guarded(ptr, size, flags, usize, old);
  arena_t *owner = *meta == META_HUGE ? (arena_t *)((extent_node_t *)meta)->arena : ((arena_chunk_t *)meta)->arena;
  if (((uintptr_t)ptr & (alignment - 1)) == 0 && (ai == 0 || owner->ind == ai - 1)) {
    size_t u = xa_resize_in_place(ptr, old, usize, zero);
    if (u != 0) {
      if (u != old) tsd_count_resize(tsd_fetch(), old, u);
      return ptr;
    }
  }
  void *ret = mallocx(size, flags);
  if (ret == NULL) return NULL;
  memcpy(ret, ptr, old < size ? old : size);
  dallocx(ptr, flags & (0xfff << 8));
  return ret;
}

XA_EXPORT size_t xallocx(void *ptr, size_t size, size_t extra, int flags) {
  if (ptr == NULL || xa_init()) return 0;
  size_t old = xa_usable(ptr, "xallocx");
  if (old == 0) return 0;
  /* Not aligned as asked (2^62 and up: nothing is): not resized. */
  size_t alignment = XA_FLAGS_ALIGN(flags);
  if (((uintptr_t)ptr & (alignment - 1)) != 0 || size > SZ_MAX) return old;
  bool zero = XA_FLAGS_ZERO(flags) || opt_zero;
  size_t max = SZ_MAX - size < extra ? SZ_MAX : size + extra;
  /* The most that was asked for, else the least; sized as mallocx would
   * with these flags, so that sdallocx(ptr, size, flags) agrees (an
   * aligned large block is not grown to a size that needs a chunk). */
  size_t umax = xa_flags_usize(max, flags), umin = xa_flags_usize(size, flags);
  size_t u = umax != 0 ? xa_resize_in_place(ptr, old, umax, zero) : 0;
  if (u == 0 && umin != umax && umin != 0) u = xa_resize_in_place(ptr, old, umin, zero);
  if (u == 0) return old;
  if (u != old) tsd_count_resize(tsd_fetch(), old, u);
  return u;
}

XA_EXPORT int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  if (unlikely(xa_init())) return EAGAIN;
  return ctl_byname(name, oldp, oldlenp, newp, newlen);
}

XA_EXPORT int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp) {
  if (unlikely(xa_init())) return EAGAIN;
  return ctl_nametomib(name, mibp, miblenp);
}

XA_EXPORT int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                           size_t newlen) {
  if (unlikely(xa_init())) return EAGAIN;
  return ctl_bymib(mib, miblen, oldp, oldlenp, newp, newlen);
}

XA_EXPORT void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque, const char *opts) {
  if (unlikely(xa_init())) return;
  stats_print(write_cb, cbopaque, opts);
}

/* glibc's internal names, which a preloaded allocator must also cover (a
 * prefixed build replaces nothing of the C library's). */
#if !XALLOC_PREFIXED
#pragma GCC diagnostic push
#ifndef __clang__ /* gcc's warning that an alias lacks malloc's attributes */
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#endif
XA_EXPORT void *__libc_malloc(size_t size) __attribute__((alias("malloc")));
XA_EXPORT void __libc_free(void *ptr) __attribute__((alias("free")));
XA_EXPORT void *__libc_calloc(size_t n, size_t size) __attribute__((alias("calloc")));
XA_EXPORT void *__libc_realloc(void *ptr, size_t size) __attribute__((alias("realloc")));
XA_EXPORT void *__libc_memalign(size_t alignment, size_t size) __attribute__((alias("memalign")));
XA_EXPORT void *__libc_valloc(size_t size) __attribute__((alias("valloc")));
XA_EXPORT void *__libc_pvalloc(size_t size) __attribute__((alias("pvalloc")));
XA_EXPORT int __posix_memalign(void **memptr, size_t alignment, size_t size)
    __attribute__((alias("posix_memalign")));
#pragma GCC diagnostic pop
#endif

/* ---- glibc's malloc introspection ---- */

XA_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  if (xa_init()) return 0;
  stats_totals_t before, after;
  stats_totals(&before);
  tsd_park_flush(); /* the caches of exited threads (tcache.h) */
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i); /* a destroyed arena: NULL, or skipped by arena_purge_all */
    if (a != NULL) arena_purge_all(a);
  }
  stats_totals(&after);
  return before.dirty != after.dirty;
}

XA_EXPORT void malloc_stats(void) {
  if (xa_init()) return;
  stats_totals_t t;
  stats_totals(&t);
  util_printf("Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
              "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
              "max mmap regions = %10zu\nmax mmap bytes   = %10zu\n",
              t.mapped, t.allocated, t.mapped, t.allocated, t.nhuge, t.allocated_huge);
}

XA_EXPORT struct mallinfo2 mallinfo2(void) {
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  if (xa_init()) return mi;
  stats_totals_t t;
  stats_totals(&t);
  mi.arena = t.mapped - t.metadata;
  mi.ordblks = t.nfree_ranges;
  mi.hblks = t.nhuge;
  mi.hblkhd = t.allocated_huge;
  mi.uordblks = t.allocated;
  mi.fordblks = mi.arena > t.allocated ? mi.arena - t.allocated : 0;
  mi.keepcost = t.dirty;
  return mi;
}

static int xa_clamp_int(size_t v) { return v > 0x7fffffff ? 0x7fffffff : (int)v; }

XA_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = xa_clamp_int(m2.arena);
  mi.ordblks = xa_clamp_int(m2.ordblks);
  mi.hblks = xa_clamp_int(m2.hblks);
  mi.hblkhd = xa_clamp_int(m2.hblkhd);
  mi.uordblks = xa_clamp_int(m2.uordblks);
  mi.fordblks = xa_clamp_int(m2.fordblks);
  mi.keepcost = xa_clamp_int(m2.keepcost);
  return mi;
}

XA_EXPORT int mallopt(int param, int value) {
  (void)value;
  /* glibc's tunables have no meaning here (xalloc is tuned with
   * XALLOC_CONF); accept the known ones so that programs carry on. */
  switch (param) {
  case M_MXFAST:
  case M_TRIM_THRESHOLD:
  case M_TOP_PAD:
  case M_MMAP_THRESHOLD:
  case M_MMAP_MAX:
  case M_CHECK_ACTION:
  case M_PERTURB:
  case M_ARENA_TEST:
  case M_ARENA_MAX:
    return 1;
  default:
    return 0;
  }
}

XA_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  if (xa_init()) return -1;
  stats_totals_t t;
  stats_totals(&t);
  /* The heap check: every arena's metadata, each inconsistency one line on
   * stderr (see doc/SAFETY.md). */
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE), nbad = 0;
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    if (a != NULL && !arena_check(a, true)) nbad++;
  }
  fprintf(fp,
          "<malloc version=\"xalloc-%s\">\n<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"allocated\" size=\"%zu\"/>\n<total type=\"dirty\" size=\"%zu\"/>\n"
          "<total type=\"retained\" size=\"%zu\"/>\n<check arenas=\"%u\" failed=\"%u\"/>\n</malloc>\n",
          PACKAGE_VERSION, t.mapped, t.allocated, t.dirty, t.retained, n, nbad);
  return 0;
}

/* ---- fork ---- */

/* Also correct before initialization (the handlers are registered from the
 * constructor): every lock is statically initialized, no arena exists yet,
 * and holding xa_init_lock keeps another thread from initializing until
 * the fork is over. */
static void xa_prefork(void) {
  /* First, before any lock: wait for the arenas' purges, resets and
   * destroys in flight (the extent hooks they call may allocate or call
   * mallctl, which needs the locks taken below). */
  arenas_prefork_ops();
  ctl_prefork();
  prof_prefork(); /* its locks come before base's (a new context is allocated under them) */
  xmutex_prefork(&xa_init_lock);
  background_prefork();
  statlog_prefork();
  tcache_prefork();
  guard_prefork();
  arenas_prefork();
  rtree_prefork();
  base_prefork();
}

static void xa_postfork_parent(void) {
  base_postfork_parent();
  rtree_postfork_parent();
  arenas_postfork_parent();
  guard_postfork_parent();
  tcache_postfork_parent();
  statlog_postfork_parent();
  background_postfork_parent();
  xmutex_postfork_parent(&xa_init_lock);
  prof_postfork_parent();
  ctl_postfork_parent();
}

static void xa_postfork_child(void) {
  base_postfork_child();
  rtree_postfork_child();
  arenas_postfork_child();
  guard_postfork_child();
  tcache_postfork_child();
  statlog_postfork_child();
  background_postfork_child();
  xmutex_postfork_child(&xa_init_lock);
  prof_postfork_child();
  ctl_postfork_child();
}

/* stats_print:true prints at exit, to a copy of stderr taken at start-up
 * (programs such as coreutils close stderr in an atexit handler). */
static void xa_stats_write(void *opaque, const char *s) {
  (void)opaque;
  util_write_fd(xa_stats_fd, s);
}

__attribute__((destructor)) static void xa_fini(void) {
  if (!__atomic_load_n(&xa_initialized, __ATOMIC_ACQUIRE)) return;
  background_stop();
  statlog_stop();
  if (opt_stats_print && xa_stats_fd >= 0) stats_print(xa_stats_write, NULL, opt_stats_print_opts);
}
