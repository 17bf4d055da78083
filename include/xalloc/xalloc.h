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

#ifdef __cplusplus
extern "C" {
#endif

#define XALLOC_VERSION "0.1.0"
#define XALLOC_VERSION_MAJOR 0
#define XALLOC_VERSION_MINOR 1
#define XALLOC_VERSION_PATCH 0

size_t malloc_usable_size(void *ptr);
/* C23: free with the size (and alignment) the block was allocated with. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t alignment, size_t size);

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

#ifdef __cplusplus
}
#endif
#endif
