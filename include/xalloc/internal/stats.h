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
} stats_totals_t;

/* One arena's figures (or the sum over arenas: stats_arena_merge). */
typedef struct {
  unsigned nthreads;
  size_t pactive;        /* pages in live runs */
  size_t pdirty;         /* free pages in arena chunks that may be resident */
  size_t nchunks;        /* arena chunks */
  size_t mapped;         /* bytes reserved from the pages layer for this arena */
  size_t chunk_free;     /* bytes in free chunk ranges */
  size_t chunk_dirty;    /* of which dirty */
  size_t chunk_muzzy;    /* of which muzzy (lazily purged) */
  size_t pmuzzy;         /* muzzy pages in free runs */
  uint64_t npurged;      /* bytes purged, runs and chunk ranges */
  size_t allocated_small;
  uint64_t nmalloc_small, ndalloc_small;
  size_t allocated_large;
  uint64_t nmalloc_large, ndalloc_large;
  size_t allocated_huge, nhuge;
  uint64_t nmalloc_huge, ndalloc_huge;
  arena_bin_stats_t bins[SZ_NBINS];
} stats_arena_t;

void stats_totals(stats_totals_t *t);
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
