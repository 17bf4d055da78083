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
  size_t dirty;      /* bytes in free pages that may be resident */
  size_t retained;   /* bytes mapped, free, and purged (or never used) */
  size_t allocated_small, allocated_large, allocated_huge;
  uint64_t nmalloc, ndalloc;
  size_t nhuge;      /* live huge allocations */
  size_t nfree_ranges; /* free runs and free chunk ranges */
} stats_totals_t;

void stats_totals(stats_totals_t *t);
typedef void stats_write_cb_t(void *opaque, const char *s);
void stats_print(stats_write_cb_t *write_cb, void *opaque, const char *opts);
#endif
