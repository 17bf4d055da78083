/*
 * xalloc: the public entry points, lazy initialization and fork handlers.
 *
 * Initialization happens on the first call into the allocator, from any
 * thread, before or after main. It reads the options, builds the size
 * class tables and the first arena, and calls nothing that could allocate
 * (no dlsym, no stdio, no TLS setup), so it is safe under LD_PRELOAD.
 */
#include <errno.h>
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

static bool xa_initialized;
static bool xa_init_failed;
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

static inline arena_t *xa_arena(void) { return arenas[0]; }

/* ---- core operations ---- */

static inline void *xa_alloc(size_t size, bool zero) {
  if (unlikely(xa_init())) {
    errno = ENOMEM;
    return NULL;
  }
  arena_t *a = xa_arena();
  if (likely(size <= SZ_SMALL_MAX)) return arena_malloc_small(a, sz_size2index(size), zero);
  size_t usize = sz_s2u(size);
  if (unlikely(usize == 0)) {
    errno = ENOMEM;
    return NULL;
  }
  if (usize <= sz_large_max) return arena_malloc_large(a, usize, PAGE, zero);
  return huge_malloc(a, usize, sz_chunksize, zero);
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
  arena_t *a = xa_arena();
  if (usize <= SZ_SMALL_MAX) return arena_malloc_small(a, sz_size2index(usize), zero);
  if (usize <= sz_large_max) return arena_malloc_large(a, usize, alignment, zero);
  return huge_malloc(a, usize, alignment > sz_chunksize ? alignment : sz_chunksize, zero);
}

/* Metadata of an allocated pointer, or NULL (reported) if xalloc does not own it. */
static inline uint8_t *xa_meta(const void *ptr, const char *what) {
  uint8_t *meta = likely(xa_initialized) ? rtree_get((uintptr_t)ptr) : NULL;
  if (unlikely(meta == NULL || (*meta != META_ARENA_CHUNK && *meta != META_HUGE))) {
    arena_report(what, ptr, 0, 0);
    return NULL;
  }
  return meta;
}

static inline void xa_free(void *ptr) {
  if (unlikely(ptr == NULL)) return;
  uint8_t *meta = xa_meta(ptr, "invalid free (pointer not allocated by xalloc)");
  if (unlikely(meta == NULL)) return;
  if (likely(*meta == META_ARENA_CHUNK))
    arena_dalloc((arena_chunk_t *)meta, ptr);
  else
    huge_dalloc((extent_node_t *)meta, ptr);
}

/* Usable size of an allocated pointer; 0 (reported) if not one. */
static size_t xa_usable(const void *ptr, const char *what) {
  uint8_t *meta = xa_meta(ptr, what);
  if (meta == NULL) return 0;
  if (*meta == META_ARENA_CHUNK) {
    size_t u = arena_salloc((arena_chunk_t *)meta, ptr);
    if (u == 0) arena_report(what, ptr, 0, ((arena_chunk_t *)meta)->arena->ind);
    return u;
  }
  extent_node_t *node = (extent_node_t *)meta;
  if (node->addr != ptr) {
    arena_report(what, ptr, 0, ((arena_t *)node->arena)->ind);
    return 0;
  }
  return node->usize;
}

static void *xa_realloc(void *ptr, size_t size) {
  if (ptr == NULL) return xa_alloc(size, false);
  if (size == 0) {
    /* As glibc: realloc(p, 0) frees p and returns NULL. */
    xa_free(ptr);
    return NULL;
  }
  size_t old = xa_usable(ptr, "invalid realloc (pointer not allocated by xalloc)");
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
  if (*meta == META_ARENA_CHUNK) {
    if (old <= SZ_SMALL_MAX) {
      if (usize == old) return ptr;
    } else if (usize > SZ_SMALL_MAX && usize <= sz_large_max) {
      if (usize == old || !arena_ralloc_large_in_place((arena_chunk_t *)meta, ptr, old, usize, false))
        return ptr;
    }
  } else if (usize > sz_large_max) {
    if (!huge_ralloc_in_place((extent_node_t *)meta, ptr, usize, false)) return ptr;
  }
  void *ret = xa_alloc(size, false);
  if (ret == NULL) return NULL;
  memcpy(ret, ptr, old < size ? old : size);
  xa_free(ptr);
  return ret;
}

/* ---- the standard API ---- */

XA_EXPORT void *malloc(size_t size) { return xa_alloc(size, false); }

XA_EXPORT void free(void *ptr) { xa_free(ptr); }

XA_EXPORT void *calloc(size_t n, size_t size) {
  size_t total;
  if (unlikely(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  return xa_alloc(total, true);
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
  return xa_usable(ptr, "invalid malloc_usable_size (pointer not allocated by xalloc)");
}

XA_EXPORT void free_sized(void *ptr, size_t size) {
  if (ptr == NULL) return;
  size_t usize = xa_usable(ptr, "invalid free_sized (pointer not allocated by xalloc)");
  if (usize == 0) return;
  if (sz_s2u(size) != usize) {
    arena_report("mis-sized free", ptr, usize, 0);
    return;
  }
  xa_free(ptr);
}

XA_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size) {
  if (ptr == NULL) return;
  size_t usize = xa_usable(ptr, "invalid free_aligned_sized (pointer not allocated by xalloc)");
  if (usize == 0) return;
  if (!util_is_pow2(alignment) || ((uintptr_t)ptr & (alignment - 1)) != 0 ||
      sz_sa2u(size, alignment) != usize) {
    arena_report("mis-sized or mis-aligned free", ptr, usize, 0);
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
  fprintf(fp,
          "<malloc version=\"xalloc-%s\">\n<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"allocated\" size=\"%zu\"/>\n<total type=\"dirty\" size=\"%zu\"/>\n"
          "<total type=\"retained\" size=\"%zu\"/>\n</malloc>\n",
          PACKAGE_VERSION, t.mapped, t.allocated, t.dirty, t.retained);
  return 0;
}

/* ---- fork ---- */

static void xa_prefork(void) {
  xmutex_prefork(&xa_init_lock);
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_prefork(arenas[i]);
  rtree_prefork();
  base_prefork();
}

static void xa_postfork_parent(void) {
  base_postfork_parent();
  rtree_postfork_parent();
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_parent(arenas[i]);
  xmutex_postfork_parent(&xa_init_lock);
}

static void xa_postfork_child(void) {
  base_postfork_child();
  rtree_postfork_child();
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_child(arenas[i]);
  xmutex_postfork_child(&xa_init_lock);
}

/* stats_print:true prints at exit. */
__attribute__((destructor)) static void xa_fini(void) {
  if (xa_initialized && opt_stats_print) stats_print(NULL, NULL, NULL);
}
