/* stats: totals and the text report (see stats.h). */
#include "xalloc/internal/stats.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/tcache.h"

void stats_totals(stats_totals_t *t) {
  memset(t, 0, sizeof(*t));
  size_t free_chunk_bytes = 0, dirty_chunk_bytes = 0, muzzy_chunk_bytes = 0;
  for (unsigned i = 0; i < narenas; i++) {
    arena_t *a = arenas[i];
    if (a == NULL) continue;
    for (unsigned b = 0; b < SZ_NBINS; b++) {
      arena_bin_t *bin = &a->bins[b];
      xmutex_lock(&bin->lock);
      t->allocated_small += bin->stats.curregs * sz_bin_info[b].reg_size;
      xmutex_unlock(&bin->lock);
    }
    xmutex_lock(&a->lock);
    t->allocated_large += a->stats.allocated_large;
    t->active += a->nactive << LG_PAGE;
    t->dirty += a->ndirty << LG_PAGE;
    t->muzzy += a->nmuzzy << LG_PAGE;
    t->resident += (a->nactive + a->ndirty + a->nmuzzy + a->npurging) << LG_PAGE;
    t->npurged += a->stats.npurged_pages << LG_PAGE;
    t->nmadvise += a->stats.nmadvise;
    t->nfree_ranges += a->runs_avail.n;
    xmutex_unlock(&a->lock);
    xmutex_lock(&a->chunks.mtx);
    free_chunk_bytes += a->chunks.free_bytes;
    dirty_chunk_bytes += a->chunks.dirty_bytes;
    muzzy_chunk_bytes += a->chunks.muzzy_bytes;
    t->resident += a->chunks.dirty_bytes + a->chunks.muzzy_bytes + a->chunks.purging_bytes;
    t->npurged += a->chunks.npurged;
    t->nmadvise += a->chunks.nmadvise;
    t->nfree_ranges += a->chunks.szad.n;
    xmutex_unlock(&a->chunks.mtx);
    xmutex_lock(&a->huge_mtx);
    t->allocated_huge += a->stats.allocated_huge;
    t->nhuge += a->huge.n;
    for (rb_node_t *r = rb_first(&a->huge); r != NULL; r = rb_next(r)) {
      const extent_node_t *n = rb_entry(r, extent_node_t, ad);
      t->active += PAGE_CEILING(n->usize);
      t->resident += n->size; /* a recycled dirty range may be resident past usize */
    }
    xmutex_unlock(&a->huge_mtx);
  }
  t->allocated = t->allocated_small + t->allocated_large + t->allocated_huge;
  tcache_requests(&t->nmalloc, &t->ndalloc);
  t->dirty += dirty_chunk_bytes;
  t->muzzy += muzzy_chunk_bytes;
  t->retained = free_chunk_bytes - dirty_chunk_bytes - muzzy_chunk_bytes;
  base_stats_t bs;
  base_stats_get(&bs);
  t->metadata = bs.mapped;
  t->resident += bs.mapped;
  pages_stats_t ps;
  pages_stats_get(&ps);
  t->mapped = ps.mapped;
  t->stranded = ps.stranded;
  t->nunmap_kept = ps.nunmap_kept;
}

#define OUT(...)                                    \
  do {                                              \
    char buf_[512];                                 \
    util_format(buf_, sizeof(buf_), __VA_ARGS__);   \
    write_cb(opaque, buf_);                         \
  } while (0)

static void stats_default_write(void *opaque, const char *s) {
  (void)opaque;
  util_write(s);
}

void stats_print(stats_write_cb_t *write_cb, void *opaque, const char *opts) {
  if (write_cb == NULL) write_cb = stats_default_write;
  bool bins = opts == NULL || strchr(opts, 'b') == NULL;
  stats_totals_t t;
  stats_totals(&t);
  OUT("___ Begin xalloc statistics ___\n");
  OUT("Version: %s\n", PACKAGE_VERSION);
  OUT("Options: lg_chunk:%u abort:%s\n", opt_lg_chunk, opt_abort ? "true" : "false");
  OUT("Memory return: dirty_decay_ms:%d muzzy_decay_ms:%d retain:%s retain_grow_k:%u "
      "background_thread:%s thp:%s\n",
      (int)opt_dirty_decay_ms, (int)opt_muzzy_decay_ms, opt_retain ? "true" : "false", opt_retain_grow_k,
      opt_background_thread ? "true" : "false",
      opt_thp == THP_ALWAYS ? "always" : opt_thp == THP_NEVER ? "never" : "default");
  OUT("Arenas: %u, page size: %zu, chunk size: %zu\n", narenas, PAGE, sz_chunksize);
  OUT("Allocated: %zu, active: %zu, metadata: %zu, dirty: %zu, retained: %zu, mapped: %zu\n",
      t.allocated, t.active, t.metadata, t.dirty, t.retained, t.mapped);
  OUT("Muzzy: %zu, resident (at most): %zu, stranded: %zu, purged: %zu in %zu calls, failed munmaps kept: %zu\n",
      t.muzzy, t.resident, t.stranded, (size_t)t.npurged, (size_t)t.nmadvise, (size_t)t.nunmap_kept);
  OUT("Allocated small: %zu, large: %zu, huge: %zu (%zu live huge)\n", t.allocated_small,
      t.allocated_large, t.allocated_huge, t.nhuge);
  OUT("Allocation calls: %llu, free calls: %llu\n", (unsigned long long)t.nmalloc,
      (unsigned long long)t.ndalloc);
  for (unsigned i = 0; bins && i < narenas; i++) {
    arena_t *a = arenas[i];
    if (a == NULL) continue;
    OUT("arena %u: bins:\n", i);
    OUT("%8s %6s %8s %12s %12s %10s %8s %8s\n", "size", "nregs", "run_size", "nmalloc", "ndalloc",
        "curregs", "curruns", "nruns");
    for (unsigned b = 0; b < SZ_NBINS; b++) {
      arena_bin_t *bin = &a->bins[b];
      xmutex_lock(&bin->lock);
      arena_bin_stats_t s = bin->stats;
      xmutex_unlock(&bin->lock);
      if (s.nmalloc == 0) continue;
      const sz_bin_info_t *info = &sz_bin_info[b];
      OUT("%8u %6u %8zu %12llu %12llu %10zu %8zu %8llu\n", info->reg_size, info->nregs,
          (size_t)info->run_pages << LG_PAGE, (unsigned long long)s.nmalloc,
          (unsigned long long)s.ndalloc, s.curregs, s.curruns, (unsigned long long)s.nruns);
    }
  }
  OUT("___ End xalloc statistics ___\n");
}
