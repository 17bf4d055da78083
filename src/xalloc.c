/*
 * xalloc: the public entry points, lazy initialization and fork handlers.
 *
 * Initialization happens on the first call into the allocator, from any
 * thread, before or after main. It reads the options, builds the size
 * class tables and the first arena, and calls nothing that could allocate
 * (no dlsym, no stdio, no TLS setup), so it is safe under LD_PRELOAD.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "xalloc/internal/conf.h"
#include "xalloc/internal/huge.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/stats.h"
#include "xalloc/internal/tcache.h"

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
  tsd_t *t = tsd_fetch();
  if (unlikely(size > SZ_MAX)) {
    errno = ENOMEM;
    return NULL;
  }
  unsigned ind = sz_size2index(size);
  size_t usize = sz_index2size(ind);
  void *ret;
  if (ind < tcache_nhbins && t->bins[ind].ncached_max != 0) {
    tcache_bin_t *b = &t->bins[ind];
    /* An object whose tag is gone was written after free, or pushed twice
     * (and may be live): reported, never handed out (abort:false drops it
     * and takes the next one; the run still counts it as allocated). */
    while (b->ncached != 0 && unlikely(tcache_tag_lost(b->stack[b->ncached - 1]))) {
      tcache_report_corrupt(b->stack[--b->ncached]);
      if (b->ncached < b->low_water) b->low_water = b->ncached;
    }
    if (b->ncached != 0) {
      ret = b->stack[--b->ncached];
      if (b->ncached < b->low_water) b->low_water = b->ncached;
      tcache_clear_tag(ret);
    } else if (ind < SZ_NBINS) {
      ret = tcache_alloc_small_hard(t, ind);
    } else {
      ret = arena_malloc_large(t->arena, usize, PAGE, false);
      if (ret != NULL) t->nfill[ind]++;
      b->low_water = 0;
    }
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
      b->ncached = --n;
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

/* Metadata of an allocated pointer, or NULL (reported) if xalloc does not own it. */
static inline uint8_t *xa_meta(const void *ptr, const char *op) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (unlikely(meta == NULL || (*meta != META_ARENA_CHUNK && *meta != META_HUGE))) {
    arena_report_unowned(op, ptr);
    return NULL;
  }
  return meta;
}

XA_NOINLINE static void xa_free_slow(void *ptr) {
  if (ptr == NULL) return;
  uint8_t *meta = xa_meta(ptr, "free");
  if (unlikely(meta == NULL)) return;
  tsd_t *t = tsd_fetch();
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
  if (ind < SZ_NBINS) {
    size_t roff = (((uintptr_t)ptr - (uintptr_t)chunk->addr) & PAGE_MASK) + ((size_t)(e >> 8) << LG_PAGE);
    if (((roff * sz_div_magic[ind]) >> 32) * sz_index2size_tab[ind] != roff) {
      arena_dalloc(chunk, ptr); /* not a region's start: reported there */
      return;
    }
  } else {
    /* Large (or not allocated: arena_dalloc reports it). */
    arena_run_t *run = chunk->map[pageind];
    size_t usize = run != NULL && run->state == RUN_LARGE ? (size_t)run->npages << LG_PAGE : 0;
    if (usize != 0 && usize <= tcache_maxclass && tcache_active &&
        (char *)ptr == chunk->addr + ((size_t)run->pageind << LG_PAGE)) {
      ind = sz_size2index(usize);
      if (t->bins[ind].ncached_max != 0) {
        tcache_dalloc_hard(t, ind, ptr);
        return;
      }
    }
    arena_dalloc(chunk, ptr);
    if (usize != 0) tsd_count_direct(t, false, usize);
    return;
  }
  if (t->bins[ind].ncached_max != 0) {
    tcache_dalloc_hard(t, ind, ptr);
    return;
  }
  arena_dalloc(chunk, ptr);
  tsd_count_direct(t, false, sz_index2size(ind));
}

/* The fast path: find the size class through the radix tree and the
 * chunk's page map, and push onto the thread's cache. */
XA_ALWAYS_INLINE void xa_free(void *ptr) {
  tsd_t *t = tsd_tls;
  arena_chunk_t *chunk = rtree_get((uintptr_t)ptr);
  if (likely(chunk != NULL) && likely(chunk->kind == META_ARENA_CHUNK)) {
    uintptr_t off = (uintptr_t)ptr - (uintptr_t)chunk->addr;
    unsigned e = chunk->binmap[off >> LG_PAGE];
    unsigned ind = e & 0xff;
    /* Offset in the run; it must be a multiple of the region size. */
    size_t roff = (off & PAGE_MASK) + ((size_t)(e >> 8) << LG_PAGE);
    if (likely(ind < SZ_NBINS) &&
        (!config_heap_checks ||
         likely(((roff * sz_div_magic[ind]) >> 32) * sz_index2size_tab[ind] == roff))) {
      tcache_bin_t *b = &t->bins[ind];
      uint32_t n = b->ncached;
      if (likely(n < b->ncached_max) && likely(!tcache_tagged(ptr))) {
        tcache_set_tag(ptr);
        b->stack[n] = ptr;
        b->ncached = n + 1;
        b->nfree++;
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
          (in_place && !arena_ralloc_large_in_place((arena_chunk_t *)meta, ptr, old, usize, false)))
        return ptr;
    }
  } else if (usize > sz_large_max && in_place) {
    if (!huge_ralloc_in_place((extent_node_t *)meta, ptr, usize, false)) return ptr;
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

/* glibc's internal names, which a preloaded allocator must also cover. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-attributes"
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
  xmutex_prefork(&xa_init_lock);
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
  xmutex_postfork_parent(&xa_init_lock);
}

static void xa_postfork_child(void) {
  base_postfork_child();
  rtree_postfork_child();
  arenas_postfork_child();
  tcache_postfork_child();
  xmutex_postfork_child(&xa_init_lock);
}

/* stats_print:true prints at exit, to a copy of stderr taken at start-up
 * (programs such as coreutils close stderr in an atexit handler). */
static void xa_stats_write(void *opaque, const char *s) {
  (void)opaque;
  util_write_fd(xa_stats_fd, s);
}

__attribute__((destructor)) static void xa_fini(void) {
  if (xa_initialized && opt_stats_print && xa_stats_fd >= 0) stats_print(xa_stats_write, NULL, NULL);
}
