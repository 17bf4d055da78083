/*
 * stats: totals over every arena, per-arena figures, and the report printed
 * by malloc_stats_print (text or JSON), malloc_stats() and, with
 * stats_print:true, at exit. Every figure is documented in doc/STATS.md.
 * Figures are read under the locks that protect them, one arena (and one
 * bin) at a time, so a report taken while other threads run is a set of
 * consistent per-lock snapshots, not one global instant.
 */
#ifndef XALLOC_INTERNAL_STATS_H
#define XALLOC_INTERNAL_STATS_H

#include "xalloc/internal/arena.h"

typedef struct {
  size_t allocated;  /* bytes in live allocations (usable sizes) */
  size_t active;     /* bytes in pages of live runs and huge allocations */
  size_t mapped;     /* bytes mapped by xalloc (pages layer) */
  size_t committed;  /* of which committed: charged against the commit
                        limit (all of mapped unless commit decommits) */
  size_t metadata;   /* bytes mapped for metadata */
  size_t dirty;      /* bytes in free dirty pages (runs and chunk ranges) */
  size_t muzzy;      /* bytes in free lazily purged pages (MADV_FREE) */
  size_t retained;   /* bytes of free chunk ranges that are clean (purged or
                        never used): mapped, not resident, reusable */
  size_t resident;   /* bytes that may be resident: metadata, active runs,
                        whole huge ranges, dirty, muzzy, being purged */
  size_t stranded;   /* bytes mapped but owned by nothing (failed trims) */
  uint64_t npurged;  /* bytes purged (lazily or forced) */
  uint64_t nmadvise; /* purge calls made by decay and trim */
  uint64_t nunmap_kept; /* failed munmaps whose range was kept as retained */
  size_t allocated_small, allocated_large, allocated_huge;
  uint64_t nmalloc, ndalloc;
  size_t nhuge;      /* live huge allocations */
  size_t nfree_ranges; /* free runs and free chunk ranges */
  size_t tcache_parked, tcache_parked_bytes; /* caches of exited threads parked (tcache.h), bytes they hold */
} stats_totals_t;

/*
 * One arena's figures (or the sum over arenas: stats_arena_merge), read
 * as they are kept. The figures a user sees are derived from these by the
 * functions below, and only there, so that a total (stats.*) and the
 * merged arenas (stats.arenas.<MALLCTL_ARENAS_ALL>.*) always agree.
 */
typedef struct {
  unsigned nthreads;
  size_t pactive_runs;   /* pages in live runs */
  size_t pactive;        /* pactive_runs and the pages of huge allocations */
  size_t pdirty_runs;    /* free pages in arena chunks that may be resident */
  size_t pmuzzy_runs;    /* free pages in arena chunks purged lazily */
  size_t ppurging_runs;  /* pages of free runs out for purging */
  size_t nchunks;        /* arena chunks */
  size_t mapped;         /* bytes reserved for this arena (pages layer or hooks) */
  size_t mapped_hooks;   /* of which from user extent hooks */
  size_t decommitted;    /* of which decommitted (retained ranges, huge tails) */
  size_t chunk_free;     /* bytes in free chunk ranges */
  size_t chunk_dirty;    /* of which dirty */
  size_t chunk_muzzy;    /* of which muzzy (lazily purged) */
  size_t chunk_purging;  /* bytes of free chunk ranges out for purging */
  size_t huge_mapped;    /* bytes of the whole ranges of huge allocations */
  size_t nfree_ranges;   /* free runs and free chunk ranges */
  uint64_t npurged;      /* bytes purged, runs and chunk ranges */
  uint64_t nmadvise;     /* purge calls, runs and chunk ranges */
  size_t allocated_small;
  uint64_t nmalloc_small, ndalloc_small;
  size_t allocated_large;
  uint64_t nmalloc_large, ndalloc_large;
  size_t allocated_huge, nhuge;
  uint64_t nmalloc_huge, ndalloc_huge;
  ssize_t dirty_decay_ms, muzzy_decay_ms; /* one arena's (not merged) */
  uint64_t uptime_ns;    /* since the arena was made; merged: the longest */
  arena_bin_stats_t bins[SZ_NBINS];
  size_t bin_nonfull[SZ_NBINS]; /* runs of the class with free regions */
} stats_arena_t;

/* Free bytes that may be resident, content unknown: runs and ranges. */
static inline size_t stats_dirty(const stats_arena_t *s) { return (s->pdirty_runs << LG_PAGE) + s->chunk_dirty; }
/* Free bytes purged lazily (MADV_FREE), not since reused. */
static inline size_t stats_muzzy(const stats_arena_t *s) { return (s->pmuzzy_runs << LG_PAGE) + s->chunk_muzzy; }
/* Free chunk ranges that are clean: mapped, not resident, reusable. */
static inline size_t stats_retained(const stats_arena_t *s) {
  return s->chunk_free - s->chunk_dirty - s->chunk_muzzy;
}
/* Bytes that may be resident: live runs, whole huge ranges, dirty, muzzy,
 * and what is out for purging (metadata is counted in the totals only). */
static inline size_t stats_resident(const stats_arena_t *s) {
  return ((s->pactive_runs + s->ppurging_runs) << LG_PAGE) + stats_dirty(s) + stats_muzzy(s) +
         s->chunk_purging + s->huge_mapped;
}
static inline size_t stats_allocated(const stats_arena_t *s) {
  return s->allocated_small + s->allocated_large + s->allocated_huge;
}

/* The totals, from the figures of every arena; no lock held (the chunks
 * the drains free are given back, see arena_bin_stats_read). */
void stats_totals(stats_totals_t *t);
/* The totals, from all: the merged figures of every arena. */
void stats_totals_from(const stats_arena_t *all, stats_totals_t *t);
/* arena's figures, its remote stacks drained first; takes no step that may
 * call a hook (the caller gives the chunks the drain freed back with
 * arena_chunks_flush once it holds no lock). */
void stats_arena_get(arena_t *arena, stats_arena_t *out);
void stats_arena_merge(stats_arena_t *dst, const stats_arena_t *src);

typedef void stats_write_cb_t(void *opaque, const char *s);
/*
 * Print the report. opts as malloc_stats_print: J (JSON), g (no general
 * information), m (no merged arena figures), a (no per-arena figures),
 * b (no per-bin tables), l (no large and huge figures). NULL or "" prints
 * everything as text.
 */
void stats_print(stats_write_cb_t *write_cb, void *opaque, const char *opts);
#endif
