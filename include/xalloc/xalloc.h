/*
 * xalloc: the public header. The standard allocation functions keep their
 * usual declarations in <stdlib.h> and <malloc.h>; this header declares the
 * ones those headers may lack, and jemalloc 5's non-standard API with the
 * same names, argument order, flag encodings and error codes, so that code
 * written against <jemalloc/jemalloc.h> builds against this header
 * unchanged (see doc/API.md).
 */
#ifndef XALLOC_XALLOC_H
#define XALLOC_XALLOC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The symbol prefix. A library configured with --with-prefix=PFX exports
 * every public function as PFX followed by its name (PFXmalloc, PFXfree,
 * ..., PFXmallocx, PFXmallctl, ...), reads the PFXmalloc_conf symbol, and
 * replaces nothing of the C library's: malloc, free and the others stay
 * the C library's, so xalloc can live beside another allocator. Its header
 * is <xalloc/PFXxalloc.h>: this file with the two lines below reading
 * "#define XALLOC_PREFIXED 1" and "#define XALLOC_PREFIX PFX". There
 *  - the functions are declared under their prefixed names;
 *  - the jemalloc names (mallocx, rallocx, xallocx, sallocx, dallocx,
 *    sdallocx, nallocx, mallctl, mallctlnametomib, mallctlbymib,
 *    malloc_stats_print, malloc_conf) are macros for the prefixed ones, so
 *    code written against jemalloc's API builds unchanged; define
 *    XALLOC_NO_DEMANGLE before including the header to have only the
 *    prefixed names (e.g. to call jemalloc's own mallocx in the same file);
 *  - with XALLOC_MANGLE defined, the standard names (malloc, free, calloc,
 *    ..., mallinfo2) are macros for the prefixed ones too.
 * In the default build none of this applies: the names are the plain ones.
 */
#ifndef XALLOC_PREFIXED
#define XALLOC_PREFIXED 0
#define XALLOC_PREFIX
#endif
/* XALLOC_NAME(mallocx) is the exported name of mallocx (for this header's
 * own use: its argument must not be a macro). */
#define XALLOC_CONCAT_(a, b) a##b
#define XALLOC_CONCAT(a, b) XALLOC_CONCAT_(a, b)
#define XALLOC_NAME(name) XALLOC_CONCAT(XALLOC_PREFIX, name)

#if XALLOC_PREFIXED
#include <stdio.h> /* FILE, for malloc_info */
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define XALLOC_VERSION "0.1.0"
#define XALLOC_VERSION_MAJOR 0
#define XALLOC_VERSION_MINOR 1
#define XALLOC_VERSION_PATCH 0

#if XALLOC_PREFIXED
/* The standard functions, and glibc's introspection, under their prefixed
 * names (the plain ones are the C library's). */
void *XALLOC_NAME(malloc)(size_t size) __attribute__((malloc));
void XALLOC_NAME(free)(void *ptr);
void *XALLOC_NAME(calloc)(size_t n, size_t size) __attribute__((malloc));
void *XALLOC_NAME(realloc)(void *ptr, size_t size);
void *XALLOC_NAME(reallocarray)(void *ptr, size_t n, size_t size);
int XALLOC_NAME(posix_memalign)(void **memptr, size_t alignment, size_t size);
void *XALLOC_NAME(aligned_alloc)(size_t alignment, size_t size) __attribute__((malloc));
void *XALLOC_NAME(memalign)(size_t alignment, size_t size) __attribute__((malloc));
void *XALLOC_NAME(valloc)(size_t size) __attribute__((malloc));
void *XALLOC_NAME(pvalloc)(size_t size) __attribute__((malloc));
size_t XALLOC_NAME(malloc_usable_size)(void *ptr);
void XALLOC_NAME(free_sized)(void *ptr, size_t size);
void XALLOC_NAME(free_aligned_sized)(void *ptr, size_t alignment, size_t size);
int XALLOC_NAME(malloc_trim)(size_t pad);
void XALLOC_NAME(malloc_stats)(void);
struct mallinfo;
struct mallinfo2;
struct mallinfo XALLOC_NAME(mallinfo)(void);   /* the types are <malloc.h>'s */
struct mallinfo2 XALLOC_NAME(mallinfo2)(void);
int XALLOC_NAME(mallopt)(int param, int value);
int XALLOC_NAME(malloc_info)(int options, FILE *fp);
#else
size_t malloc_usable_size(void *ptr);
/* C23: free with the size (and alignment) the block was allocated with. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);
#endif

/*
 * Flags for mallocx and friends, OR-ed together; 0 means none. The bit
 * layout is jemalloc's: bits 0-5 log2 of the alignment, bit 6 zero, bits
 * 8-19 the thread cache (0 automatic, 1 none, i + 2 explicit cache i),
 * bits 20 and up the arena (0 automatic, i + 1 arena i).
 */
#define MALLOCX_LG_ALIGN(la) ((int)(la))
/* a must be a power of two. */
#define MALLOCX_ALIGN(a) ((int)__builtin_ctzll((unsigned long long)(a)))
#define MALLOCX_ZERO ((int)0x40)
#define MALLOCX_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define MALLOCX_TCACHE_NONE MALLOCX_TCACHE(-1)
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))

/* The arena index that means every arena in arena.<i>.purge / .decay and
 * stats.arenas.<i>.* (the merged figures); arenas.narenas itself means the
 * same. */
#define MALLCTL_ARENAS_ALL 4096
/* stats.arenas.<i>.*: the merged figures of every destroyed arena. */
#define MALLCTL_ARENAS_DESTROYED 4097

/*
 * Extent hooks, with jemalloc 5's members and signatures (see doc/API.md,
 * "Extent hooks"): an explicit arena made by mallctl("arenas.create", ...,
 * &hooks_ptr, sizeof(extent_hooks_t *)) gets all its chunk memory from
 * hooks->alloc and gives it back through dalloc/destroy. A bool hook
 * returns false on success, true for "refused / not done".
 */
typedef struct extent_hooks_s extent_hooks_t;
typedef void *(extent_alloc_t)(extent_hooks_t *, void *, size_t, size_t, bool *, bool *, unsigned);
typedef bool (extent_dalloc_t)(extent_hooks_t *, void *, size_t, bool, unsigned);
typedef void (extent_destroy_t)(extent_hooks_t *, void *, size_t, bool, unsigned);
typedef bool (extent_commit_t)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
typedef bool (extent_decommit_t)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
typedef bool (extent_purge_t)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
typedef bool (extent_split_t)(extent_hooks_t *, void *, size_t, size_t, size_t, bool, unsigned);
typedef bool (extent_merge_t)(extent_hooks_t *, void *, size_t, void *, size_t, bool, unsigned);
struct extent_hooks_s {
  extent_alloc_t *alloc;
  extent_dalloc_t *dalloc;
  extent_destroy_t *destroy;
  extent_commit_t *commit;
  extent_decommit_t *decommit;
  extent_purge_t *purge_lazy;
  extent_purge_t *purge_forced;
  extent_split_t *split;
  extent_merge_t *merge;
};

#if XALLOC_PREFIXED
#define mallocx XALLOC_NAME(mallocx)
#define rallocx XALLOC_NAME(rallocx)
#define xallocx XALLOC_NAME(xallocx)
#define sallocx XALLOC_NAME(sallocx)
#define dallocx XALLOC_NAME(dallocx)
#define sdallocx XALLOC_NAME(sdallocx)
#define nallocx XALLOC_NAME(nallocx)
#define mallctl XALLOC_NAME(mallctl)
#define mallctlnametomib XALLOC_NAME(mallctlnametomib)
#define mallctlbymib XALLOC_NAME(mallctlbymib)
#define malloc_stats_print XALLOC_NAME(malloc_stats_print)
#define malloc_conf XALLOC_NAME(malloc_conf)
#endif
void *mallocx(size_t size, int flags) __attribute__((malloc));
void *rallocx(void *ptr, size_t size, int flags);
size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
size_t sallocx(const void *ptr, int flags);
void dallocx(void *ptr, int flags);
void sdallocx(void *ptr, size_t size, int flags);
size_t nallocx(size_t size, int flags);
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                 size_t newlen);
void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque, const char *opts);

/* Options a program may define, as with jemalloc (see doc/TUNING.md). */
extern const char *malloc_conf;

#if XALLOC_PREFIXED && defined(XALLOC_NO_DEMANGLE)
#undef mallocx
#undef rallocx
#undef xallocx
#undef sallocx
#undef dallocx
#undef sdallocx
#undef nallocx
#undef mallctl
#undef mallctlnametomib
#undef mallctlbymib
#undef malloc_stats_print
#undef malloc_conf
#endif
#if XALLOC_PREFIXED && defined(XALLOC_MANGLE)
#define malloc XALLOC_NAME(malloc)
#define free XALLOC_NAME(free)
#define calloc XALLOC_NAME(calloc)
#define realloc XALLOC_NAME(realloc)
#define reallocarray XALLOC_NAME(reallocarray)
#define posix_memalign XALLOC_NAME(posix_memalign)
#define aligned_alloc XALLOC_NAME(aligned_alloc)
#define memalign XALLOC_NAME(memalign)
#define valloc XALLOC_NAME(valloc)
#define pvalloc XALLOC_NAME(pvalloc)
#define malloc_usable_size XALLOC_NAME(malloc_usable_size)
#define free_sized XALLOC_NAME(free_sized)
#define free_aligned_sized XALLOC_NAME(free_aligned_sized)
#define malloc_trim XALLOC_NAME(malloc_trim)
#define malloc_stats XALLOC_NAME(malloc_stats)
/* Function-like: "struct mallinfo2" keeps its name. */
#define mallinfo(...) XALLOC_NAME(mallinfo)(__VA_ARGS__)
#define mallinfo2(...) XALLOC_NAME(mallinfo2)(__VA_ARGS__)
#define mallopt XALLOC_NAME(mallopt)
#define malloc_info XALLOC_NAME(malloc_info)
#endif

#ifdef __cplusplus
}
#endif
#endif
