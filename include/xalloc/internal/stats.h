/*
 * stats: totals over every arena, and the text report printed by
 * malloc_stats() and at exit with stats_print:true.
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

void stats_totals(stats_totals_t *t);
typedef void stats_write_cb_t(void *opaque, const char *s);
void stats_print(stats_write_cb_t *write_cb, void *opaque, const char *opts);
#endif
