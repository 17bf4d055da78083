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
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/stats.h"
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

XA_NOINLINE static bool xa_init_slow(void) {
  static bool atfork_done;
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
  if (sz_boot(opt_lg_chunk) || rtree_boot(opt_lg_chunk) || arena_boot()) {
    xa_init_failed = true;
    goto fail;
  }
  arenas[0] = arena_new(0);
  if (arenas[0] == NULL) goto fail;
  narenas = 1;
  if (opt_narenas != 0) {
    narenas_auto = opt_narenas;
  } else {
    long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    narenas_auto = ncpus > 0 ? 4 * (unsigned)ncpus : 4;
  }
  if (narenas_auto > ARENAS_MAX) narenas_auto = ARENAS_MAX;
  vg_running = config_valgrind && vg_detect();
  if (tcache_boot()) {
    xa_init_failed = true;
    goto fail;
  }
  background_boot();
  if (opt_stats_print) xa_stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10);
  __atomic_store_n(&xa_initialized, true, __ATOMIC_RELEASE);
  xmutex_unlock(&xa_init_lock);
  /* After initialization: pthread_atfork may allocate, which is now fine. */
  if (!atfork_done) {
    atfork_done = true;
    pthread_atfork(xa_prefork, xa_postfork_parent, xa_postfork_child);
  }
  return false;
fail:
  xmutex_unlock(&xa_init_lock);
  return true;
}

static inline bool xa_init(void) {
  if (likely(__atomic_load_n(&xa_initialized, __ATOMIC_RELAXED))) return false;
  return xa_init_slow();
}

/* ---- core operations ---- */

/* junk:true and valgrind: new memory (on the slow paths only). */
static inline void xa_alloc_debug(void *ret, size_t usize, bool zero) {
  if (unlikely(opt_junk) && !zero) memset(ret, JUNK_ALLOC, usize);
  vg_malloclike(ret, usize, zero);
}

/*
 * The slow path of every allocation: not initialized, no tsd yet, cache
 * empty, zeroing, or a size the table does not cover.
 */
XA_NOINLINE static void *xa_alloc_slow(size_t size, bool zero) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  /* With zero:true no bin caches anything (tcache.c), so every allocation
   * comes here. */
  zero = zero || opt_zero;
  tsd_t *t = tsd_fetch();
  if (unlikely(size > SZ_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  unsigned ind = sz_size2index(size);
  size_t usize = sz_index2size(ind);
  void *ret;
  if (ind < tcache_nhbins && t->bins[ind].ncached_max != 0) {
    ret = tcache_alloc(t, t->arena, ind, usize);
    if (ret != NULL && zero) memset(ret, 0, usize);
    return ret;
  }
  if (ind < SZ_NBINS)
    ret = arena_malloc_small(t->arena, ind, zero);
  else if (usize <= sz_large_max)
    ret = arena_malloc_large(t->arena, usize, PAGE, zero);
  else
    ret = huge_malloc(t->arena, usize, sz_chunksize, zero);
  if (ret != NULL) {
    tsd_count_direct(t, true, usize);
    xa_alloc_debug(ret, usize, zero);
  }
  return ret;
}

/* The fast path: a table lookup and a pop from the thread's cache. */
XA_ALWAYS_INLINE void *xa_alloc(size_t size) {
  tsd_t *t = tsd_tls;
  if (likely(size <= SZ_LOOKUP_MAX)) {
    unsigned ind = sz_size2index_tab[(size + 7) >> 3];
    tcache_bin_t *b = &t->bins[ind];
    uint32_t n = b->ncached;
    if (likely(n != 0)) {
      void *ret = b->stack[n - 1];
      if (unlikely(tcache_tag_lost(ret))) return xa_alloc_slow(size, false);
      tcache_clear_tag(ret);
      TSD_STORE(b->ncached, --n);
      if (unlikely(n < b->low_water)) b->low_water = n;
      if (unlikely(--t->gc_ticker < 0)) tcache_event(t);
      return ret;
    }
  }
  return xa_alloc_slow(size, false);
}

static void *xa_alloc_aligned(size_t size, size_t alignment, bool zero) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  size_t usize = sz_sa2u(size, alignment);
  if (usize == 0) {
    errno = ENOMEM;
    return NULL;
  }
  zero = zero || opt_zero;
  /* Small classes are aligned by their size: the cached path serves them. */
  if (usize <= SZ_SMALL_MAX) return xa_alloc_slow(usize, zero);
  tsd_t *t = tsd_fetch();
  void *ret;
  if (usize <= sz_large_max)
    ret = arena_malloc_large(t->arena, usize, alignment, zero);
  else
    ret = huge_malloc(t->arena, usize, alignment > sz_chunksize ? alignment : sz_chunksize, zero);
  if (ret != NULL) {
    tsd_count_direct(t, true, usize);
    xa_alloc_debug(ret, usize, zero);
  }
  return ret;
}

/*
 * Whether ptr, in a page of a small run whose binmap entry is e (size class
 * in the low byte, page index in the run in the high byte), is the start of
 * a region: its offset in the run must be a multiple of the region size
 * (multiply-shift, no division).
 */
static inline bool xa_region_start(const arena_chunk_t *chunk, const void *ptr, unsigned e) {
  unsigned ind = e & 0xff;
  size_t roff = (((uintptr_t)ptr - (uintptr_t)chunk->addr) & PAGE_MASK) + ((size_t)(e >> 8) << LG_PAGE);
  return ((roff * sz_div_magic[ind]) >> 32) * sz_index2size_tab[ind] == roff;
}

/* Metadata of an allocated pointer, or NULL (reported) if xalloc does not own it. */
static inline uint8_t *xa_meta(const void *ptr, const char *op) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (unlikely(meta == NULL || (*meta != META_ARENA_CHUNK && *meta != META_HUGE))) {
    arena_report_unowned(op, ptr);
    return NULL;
  }
  return meta;
}

/*
 * Free ptr into cache (a thread's own cache, an explicit one, or NULL for
 * none), counting the call in t (the calling thread) when it does not go
 * into t's own bins. Every pointer is checked against the metadata first.
 */
static void xa_dalloc(void *ptr, tsd_t *cache, tsd_t *t) {
  uint8_t *meta = xa_meta(ptr, "free");
  if (unlikely(meta == NULL)) return;
  if (*meta == META_HUGE) {
    extent_node_t *node = (extent_node_t *)meta;
    size_t usize = node->usize;
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
    usize = sz_index2size(ind);
  } else {
    /* Large (or not allocated: arena_dalloc reports it). */
    arena_run_t *run = chunk->map[pageind];
    usize = run != NULL && run->state == RUN_LARGE ? (size_t)run->npages << LG_PAGE : 0;
    if (usize == 0 || usize > tcache_maxclass ||
        (char *)ptr != chunk->addr + ((size_t)run->pageind << LG_PAGE)) {
      arena_dalloc(chunk, ptr);
      if (usize != 0) tsd_count_direct(t, false, usize);
      return;
    }
    ind = sz_size2index(usize);
  }
  if (cache != NULL && cache->bins[ind].ncached_max != 0) {
    tcache_dalloc_hard(cache, ind, ptr);
    if (cache != t) tsd_count_direct(t, false, usize);
    return;
  }
  /* Straight to the arena. An object sitting in some thread's cache is
   * allocated as far as its run knows, but carries the free tag: a free of
   * it here is a double free. */
  if (config_heap_checks && unlikely(tcache_tagged(ptr))) {
    tcache_report_double_free(ptr);
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

/* The fast path: find the size class through the radix tree and the
 * chunk's page map, and push onto the thread's cache. */
XA_ALWAYS_INLINE void xa_free(void *ptr) {
  tsd_t *t = tsd_tls;
  arena_chunk_t *chunk = rtree_get((uintptr_t)ptr);
  if (likely(chunk != NULL) && likely(chunk->kind == META_ARENA_CHUNK)) {
    unsigned e = chunk->binmap[((uintptr_t)ptr - (uintptr_t)chunk->addr) >> LG_PAGE];
    unsigned ind = e & 0xff;
    if (likely(ind < SZ_NBINS) && (!config_heap_checks || likely(xa_region_start(chunk, ptr, e)))) {
      tcache_bin_t *b = &t->bins[ind];
      uint32_t n = b->ncached;
      if (likely(n < b->ncached_max) && likely(!tcache_tagged(ptr))) {
        tcache_set_tag(ptr);
        b->stack[n] = ptr;
        TSD_STORE(b->ncached, n + 1);
        TSD_STORE(b->nfree, b->nfree + 1);
        return;
      }
    }
  }
  xa_free_slow(ptr);
}

/* Usable size of a live allocation; 0 (reported as a bad op) if ptr is
 * not xalloc's, not the start of an allocation, or already freed. */
static size_t xa_usable(const void *ptr, const char *op) {
  uint8_t *meta = xa_meta(ptr, op);
  if (meta == NULL) return 0;
  if (*meta == META_ARENA_CHUNK) return arena_lookup((arena_chunk_t *)meta, ptr, op);
  extent_node_t *node = (extent_node_t *)meta;
  if (node->addr != ptr) {
    arena_report_bad(op, BAD_INTERIOR, ptr, node->usize, ((arena_t *)node->arena)->ind);
    return 0;
  }
  return node->usize;
}

static unsigned xa_arena_ind(const void *ptr) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (meta == NULL) return ARENA_IND_NONE;
  if (*meta == META_ARENA_CHUNK) return ((arena_chunk_t *)meta)->arena->ind;
  return ((arena_t *)((extent_node_t *)meta)->arena)->ind;
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
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  /* junk:true and valgrind: always move (new bytes get junk; memcheck
   * sees one block freed and one allocated). */
  bool in_place = !opt_junk && !vg_on();
  if (*meta == META_ARENA_CHUNK) {
    if (old <= SZ_SMALL_MAX) {
      if (usize == old) return ptr;
    } else if (usize > SZ_SMALL_MAX && usize <= sz_large_max) {
      if (usize == old ||
          (in_place && !arena_ralloc_large_in_place((arena_chunk_t *)meta, ptr, old, usize, opt_zero)))
        return ptr;
    }
  } else if (usize > sz_large_max && in_place) {
    if (!huge_ralloc_in_place((extent_node_t *)meta, ptr, usize, opt_zero)) return ptr;
  }
  void *ret = xa_alloc(size);
  if (ret == NULL) return NULL;
  memcpy(ret, ptr, old < size ? old : size);
  xa_free(ptr);
  return ret;
}

/* ---- the standard API ---- */

XA_EXPORT void *malloc(size_t size) { return xa_alloc(size); }

XA_EXPORT void free(void *ptr) { xa_free(ptr); }

XA_EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return xa_alloc_slow(total, true);
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

XA_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
  if (!util_is_pow2(alignment) || alignment < sizeof(void *)) return EINVAL;
  int err = errno;
  void *p = xa_alloc_aligned(size, alignment, false);
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
  return xa_alloc_aligned(size, alignment, false);
}

XA_EXPORT void *memalign(size_t alignment, size_t size) {
  if (!util_is_pow2(alignment)) {
    errno = EINVAL;
    return NULL;
  }
  return xa_alloc_aligned(size, alignment, false);
}

XA_EXPORT void *valloc(size_t size) { return xa_alloc_aligned(size, PAGE, false); }

XA_EXPORT void *pvalloc(size_t size) {
  size_t rounded = PAGE_CEILING(size);
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  return xa_alloc_aligned(rounded == 0 ? PAGE : rounded, PAGE, false);
}

XA_EXPORT size_t malloc_usable_size(void *ptr) {
  if (ptr == NULL) return 0;
  return xa_usable(ptr, "malloc_usable_size");
}

XA_EXPORT void free_sized(void *ptr, size_t size) {
  if (ptr == NULL) return;
  size_t usize = xa_usable(ptr, "free_sized");
  if (usize == 0) return;
  if (sz_s2u(size) != usize) {
    char detail[64];
    util_format(detail, sizeof(detail), "free_sized with size %zu", size);
    arena_report_ex("mis-sized free", ptr, usize, xa_arena_ind(ptr), detail);
    return;
  }
  xa_free(ptr);
}

XA_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size) {
  if (ptr == NULL) return;
  size_t usize = xa_usable(ptr, "free_aligned_sized");
  if (usize == 0) return;
  bool bad_align = !util_is_pow2(alignment) || ((uintptr_t)ptr & (alignment - 1)) != 0;
  if (bad_align || sz_sa2u(size, alignment) != usize) {
    char detail[96];
    util_format(detail, sizeof(detail), "free_aligned_sized with alignment %zu and size %zu", alignment,
                size);
    arena_report_ex(bad_align ? "mis-aligned free" : "mis-sized free", ptr, usize, xa_arena_ind(ptr),
                    detail);
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

/* The usable size mallocx(size, flags) gives; 0 if none. */
static size_t xa_flags_usize(size_t size, int flags) {
  unsigned la = XA_FLAGS_LG_ALIGN(flags);
  if (la == 0) return sz_s2u(size);
  if (la >= 63) return 0;
  return sz_sa2u(size, (size_t)1 << la);
}

/* From arena a, no cache. */
static void *xa_arena_alloc(arena_t *a, size_t usize, size_t alignment, bool zero) {
  if (usize <= SZ_SMALL_MAX) return arena_malloc_small(a, sz_size2index(usize), zero);
  if (usize <= sz_large_max) return arena_malloc_large(a, usize, alignment, zero);
  return huge_malloc(a, usize, alignment > sz_chunksize ? alignment : sz_chunksize, zero);
}

XA_NOINLINE static void *xa_mallocx_slow(size_t size, int flags) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  unsigned la = XA_FLAGS_LG_ALIGN(flags), tci = XA_FLAGS_TCACHE(flags), ai = XA_FLAGS_ARENA(flags);
  bool zero = XA_FLAGS_ZERO(flags) || opt_zero;
  size_t alignment = la != 0 && la < 63 ? (size_t)1 << la : 0;
  if (tci == 0 && ai == 0) return alignment != 0 ? xa_alloc_aligned(size, alignment, zero) : xa_alloc_slow(size, zero);
  size_t usize = xa_flags_usize(size, flags);
  if (usize == 0) {
    errno = ENOMEM;
    return NULL;
  }
  tsd_t *t = tsd_fetch();
  arena_t *arena = t->arena;
  if (ai != 0 && (arena = arena_get(ai - 1)) == NULL) {
    errno = EINVAL; /* no such arena (or destroyed) */
    return NULL;
  }
  void *ret;
  /* An explicit cache serves sizes it caches, unless an arena was named
   * (then the memory must come from that arena). */
  if (tci >= 2 && ai == 0) {
    tsd_t *tc = tcache_explicit_get(tci - 2);
    if (tc == NULL) {
      errno = EINVAL; /* no such cache */
      return NULL;
    }
    unsigned ind = sz_size2index(usize);
    if (ind < tcache_nhbins && tc->bins[ind].ncached_max != 0 && (usize <= SZ_SMALL_MAX || alignment <= PAGE)) {
      ret = tcache_alloc(tc, arena, ind, usize);
      if (ret != NULL) {
        if (zero) memset(ret, 0, usize);
        tsd_count_direct(t, true, usize);
      }
      return ret;
    }
  }
  ret = xa_arena_alloc(arena, usize, alignment < PAGE ? PAGE : alignment, zero);
  if (ret != NULL) tsd_count_direct(t, true, usize);
  return ret;
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
      arena_report("dallocx with a tcache that does not exist", ptr, 0, 0);
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

XA_EXPORT void sdallocx(void *ptr, size_t size, int flags) {
  if (ptr == NULL) return;
  size_t usize = xa_usable(ptr, "invalid sdallocx (pointer not allocated by xalloc)");
  if (usize == 0) return;
  if (xa_flags_usize(size, flags) != usize) {
    arena_report("mis-sized free", ptr, usize, 0);
    return;
  }
  dallocx(ptr, flags);
}

XA_EXPORT size_t sallocx(const void *ptr, int flags) {
  (void)flags;
  if (ptr == NULL) return 0;
  return xa_usable(ptr, "invalid sallocx (pointer not allocated by xalloc)");
}

XA_EXPORT size_t nallocx(size_t size, int flags) {
  if (unlikely(xa_init())) return 0;
  return xa_flags_usize(size, flags);
}

/*
 * Resize ptr (old usable bytes) in place to usize; the new usable size, or
 * 0 if it cannot be done in place.
 */
static size_t xa_resize_in_place(void *ptr, size_t old, size_t usize, bool zero) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (*meta == META_ARENA_CHUNK) {
    if (old <= SZ_SMALL_MAX) return usize == old ? old : 0;
    if (usize > SZ_SMALL_MAX && usize <= sz_large_max &&
        (usize == old || !arena_ralloc_large_in_place((arena_chunk_t *)meta, ptr, old, usize, zero)))
      return usize;
    return 0;
  }
  if (usize > sz_large_max && !huge_ralloc_in_place((extent_node_t *)meta, ptr, usize, zero)) return usize;
  return 0;
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
  size_t old = xa_usable(ptr, "invalid rallocx (pointer not allocated by xalloc)");
  if (old == 0) {
    errno = EINVAL;
    return NULL;
  }
  unsigned la = XA_FLAGS_LG_ALIGN(flags), ai = XA_FLAGS_ARENA(flags);
  bool zero = XA_FLAGS_ZERO(flags) || opt_zero;
  size_t alignment = la != 0 && la < 63 ? (size_t)1 << la : 1;
  uint8_t *meta = rtree_get((uintptr_t)ptr);
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
  size_t old = xa_usable(ptr, "invalid xallocx (pointer not allocated by xalloc)");
  if (old == 0) return 0;
  unsigned la = XA_FLAGS_LG_ALIGN(flags);
  size_t alignment = la != 0 && la < 63 ? (size_t)1 << la : 1;
  if (((uintptr_t)ptr & (alignment - 1)) != 0 || size > SZ_MAX) return old;
  bool zero = XA_FLAGS_ZERO(flags) || opt_zero;
  size_t max = SZ_MAX - size < extra ? SZ_MAX : size + extra;
  /* The most that was asked for, else the least. */
  size_t u = xa_resize_in_place(ptr, old, sz_s2u(max), zero);
  if (u == 0 && max != size) u = xa_resize_in_place(ptr, old, sz_s2u(size), zero);
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
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_purge_all(arenas[i]);
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
  for (unsigned i = 0; i < n; i++)
    if (arenas[i] != NULL && !arena_check(arenas[i], true)) nbad++;
  fprintf(fp,
          "<malloc version=\"xalloc-%s\">\n<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"allocated\" size=\"%zu\"/>\n<total type=\"dirty\" size=\"%zu\"/>\n"
          "<total type=\"retained\" size=\"%zu\"/>\n<check arenas=\"%u\" failed=\"%u\"/>\n</malloc>\n",
          PACKAGE_VERSION, t.mapped, t.allocated, t.dirty, t.retained, n, nbad);
  return 0;
}

/* ---- fork ---- */

static void xa_prefork(void) {
  ctl_prefork();
  xmutex_prefork(&xa_init_lock);
  background_prefork();
  tcache_prefork();
  arenas_prefork();
  rtree_prefork();
  base_prefork();
}

static void xa_postfork_parent(void) {
  base_postfork_parent();
  rtree_postfork_parent();
  arenas_postfork_parent();
  tcache_postfork_parent();
  background_postfork_parent();
  xmutex_postfork_parent(&xa_init_lock);
  ctl_postfork_parent();
}

static void xa_postfork_child(void) {
  base_postfork_child();
  rtree_postfork_child();
  arenas_postfork_child();
  tcache_postfork_child();
  background_postfork_child();
  xmutex_postfork_child(&xa_init_lock);
  ctl_postfork_child();
}

/* stats_print:true prints at exit, to a copy of stderr taken at start-up
 * (programs such as coreutils close stderr in an atexit handler). */
static void xa_stats_write(void *opaque, const char *s) {
  (void)opaque;
  util_write_fd(xa_stats_fd, s);
}

__attribute__((destructor)) static void xa_fini(void) {
  if (xa_initialized) background_stop();
  if (xa_initialized && opt_stats_print && xa_stats_fd >= 0) stats_print(xa_stats_write, NULL, opt_stats_print_opts);
}
