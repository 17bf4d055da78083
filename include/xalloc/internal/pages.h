/*
 * pages: the only layer that makes memory system calls (mmap, munmap,
 * madvise, mprotect). Every function takes and returns page-aligned,
 * page-multiple ranges, and keeps an exact count of the bytes xalloc has
 * mapped: pages_mapped() equals the sum of the sizes of the ranges this
 * layer has handed out and not unmapped, plus stranded bytes (ranges whose
 * munmap failed; they stay mapped, purged, and are counted here).
 */
#ifndef XALLOC_INTERNAL_PAGES_H
#define XALLOC_INTERNAL_PAGES_H

#include "xalloc/internal/util.h"

/*
 * Commit accounting (the commit option). pages_strict is set once, by
 * pages_boot at initialization: commit:on, or commit:auto and
 * /proc/sys/vm/overcommit_memory reads 2 (strict accounting: every
 * writable private mapping is charged against CommitLimit, touched or
 * not). When it is set, the chunk layer reserves address space
 * uncommitted (pages_reserve_aligned: PROT_NONE, not charged), commits
 * what it hands out (pages_commit) and decommits what it keeps unused
 * (pages_decommit). When it is not set none of these calls is made.
 *
 * Commit is mprotect(PROT_READ|PROT_WRITE): under strict accounting the
 * kernel charges the range then, and refuses (ENOMEM, nothing changed)
 * past the limit; a MAP_FIXED mmap would unmap the range before it is
 * charged and leave a hole on failure. Decommit is a MAP_FIXED mmap of
 * PROT_NONE over the range: the old pages and their charge go (mprotect
 * to PROT_NONE would keep the charge). No MAP_NORESERVE: strict mode
 * ignores it, and without it commit:on under heuristic overcommit charges
 * exactly what strict mode would (the tests read that from smaps).
 *
 * pages_hole_budget bounds the decommitted pieces the chunk layer keeps
 * (each may split a kernel mapping in three): an eighth of
 * vm.max_map_count, read at the same time.
 */
extern bool pages_strict;
extern size_t pages_hole_budget;
void pages_boot(void);
/* Whether RLIMIT_AS is finite (asked once, the first time: after a failed
 * mapping). */
bool pages_as_limited(void);
/* Reserve [a, a+size), a % alignment == 0, uncommitted (PROT_NONE), as
 * pages_map_aligned does; counted in pages_mapped(). */
void *pages_reserve_aligned(size_t size, size_t alignment);
/* Commit / decommit a page-aligned range inside a mapping of this layer;
 * true on failure (errno ENOMEM). A failed commit leaves the range
 * decommitted. A decommitted range reads as zero once committed again. */
bool pages_commit(void *addr, size_t size);
bool pages_decommit(void *addr, size_t size);

/* Map size bytes of fresh zeroed memory; NULL (errno ENOMEM) on failure. */
void *pages_map(size_t size);
/*
 * Map exactly [a, a+size) with a % alignment == 0 (alignment a power of two
 * >= PAGE). Over-maps by alignment - PAGE and trims both ends, so what is
 * returned is exactly what is owned. NULL (errno ENOMEM) on failure.
 */
void *pages_map_aligned(size_t size, size_t alignment);
/*
 * Unmap [addr, addr+size). Returns true on failure, in which case the range
 * is purged, stays mapped, and is counted as stranded; the caller must treat
 * it as memory it still owns (or forget it; it is accounted either way).
 */
bool pages_unmap(void *addr, size_t size);
/*
 * Unmap [addr, addr+size) for a caller that keeps the range if that fails
 * (retain:false). On failure (ENOMEM at vm.max_map_count) the range is
 * purged (MADV_DONTNEED), stays mapped and counted in pages_mapped(), is
 * NOT counted as stranded (the caller keeps it as retained memory), the
 * failure is counted in nunmap_kept, and the first such failure prints
 * one line on stderr. Returns PAGES_UNMAPPED, PAGES_KEPT_CLEAN (kept and
 * purged: reads as zero) or PAGES_KEPT (kept, and the purge failed too, as
 * under mlockall: the contents are unknown).
 */
enum { PAGES_UNMAPPED = 0, PAGES_KEPT_CLEAN = 1, PAGES_KEPT = 2 };
int pages_unmap_or_keep(void *addr, size_t size);
/*
 * Make [addr, addr+size), part of a pages_reserve mapping, inaccessible and
 * give its pages back, in one call (a MAP_FIXED PROT_NONE mapping over it,
 * with the reservation's flags, so it merges back: no mapping added). On
 * failure (true) the range may be unmapped: the caller must not use it
 * again unless mprotect says it is still mapped.
 */
bool pages_discard_inaccessible(void *addr, size_t size);
/* Give pages back to the kernel. Lazy: MADV_FREE (contents undefined until
 * rewritten). Forced: MADV_DONTNEED (reads as zero afterwards). Both return
 * true on failure. */
bool pages_purge_lazy(void *addr, size_t size);
bool pages_purge_forced(void *addr, size_t size);
/*
 * Reserve size bytes of address space with no access (PROT_NONE, nothing
 * committed): the guarded pool (guard.h). Counted in pages_mapped() like
 * any mapping. NULL (errno ENOMEM) on failure.
 */
void *pages_reserve(size_t size);
/* Make [addr, addr+size) readable and writable (access) or inaccessible
 * (mprotect); true on failure. Each protected piece of a mapping is a
 * kernel mapping of its own (a VMA) until its neighbours get the same
 * protection again: the caller bounds how many it makes. */
bool pages_protect(void *addr, size_t size, bool access);
/* Transparent huge page hints; true on failure. */
bool pages_huge(void *addr, size_t size);
bool pages_nohuge(void *addr, size_t size);
/* The hint the thp option asks for on chunk memory (none for thp:default). */
void pages_set_thp(void *addr, size_t size);

typedef struct {
  size_t mapped;      /* bytes currently mapped by xalloc (incl. stranded) */
  size_t stranded;    /* bytes whose munmap failed, kept mapped and purged */
  uint64_t nmaps;     /* successful mmap calls */
  uint64_t nunmaps;   /* successful munmap calls */
  uint64_t nfailed;   /* failed mmap/munmap/madvise calls */
  uint64_t nunmap_kept; /* failed munmaps whose range the caller kept */
  uint64_t npurge_lazy, npurge_forced; /* successful MADV_FREE / MADV_DONTNEED calls */
  uint64_t ncommit, ndecommit; /* successful commit / decommit calls */
  uint64_t ncommit_failed;     /* commits the kernel refused (commit limit) */
  uint64_t nprotect;  /* successful mprotect calls */
} pages_stats_t;
void pages_stats_get(pages_stats_t *out);
static inline size_t pages_mapped(void) {
  extern size_t pages_mapped_bytes;
  return __atomic_load_n(&pages_mapped_bytes, __ATOMIC_RELAXED);
}
#endif
