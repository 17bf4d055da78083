/* stats: totals, per-arena figures and the report (see stats.h). */
#include "xalloc/internal/stats.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/conf.h"
#include "xalloc/internal/guard.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/tcache.h"

void stats_arena_get(arena_t *a, stats_arena_t *s) {
  memset(s, 0, sizeof(*s));
  s->nthreads = arena_nthreads(a);
  for (unsigned b = 0; b < SZ_NBINS; b++) {
    /* Remote frees drained first. */
    arena_bin_stats_read(a, b, &s->bins[b], &s->bin_nonfull[b]);
    s->allocated_small += s->bins[b].curregs * sz_bin_info[b].reg_size;
    s->nmalloc_small += s->bins[b].nmalloc;
    s->ndalloc_small += s->bins[b].ndalloc;
  }
  xmutex_lock(&a->lock);
  s->pactive_runs = a->nactive;
  s->pdirty_runs = a->dirty.npages[DIRTY_D];
  s->pmuzzy_runs = a->dirty.npages[DIRTY_M];
  s->ppurging_runs = a->npurging;
  s->nchunks = a->nchunks;
  s->nfree_ranges = a->runs_avail.n;
  s->allocated_large = a->stats.allocated_large;
  s->nmalloc_large = a->stats.nmalloc_large;
  s->ndalloc_large = a->stats.ndalloc_large;
  s->npurged = a->stats.npurged_pages << LG_PAGE;
  s->nmadvise = a->stats.nmadvise;
  s->dirty_decay_ms = dirty_decay_ms(&a->dirty, DIRTY_D);
  s->muzzy_decay_ms = dirty_decay_ms(&a->dirty, DIRTY_M);
  s->uptime_ns = decay_now_ns() - a->create_ns;
  xmutex_unlock(&a->lock);
  xmutex_lock(&a->chunks.mtx);
  s->mapped = a->chunks.reserved;
  s->decommitted = __atomic_load_n(&a->chunks.decommitted, __ATOMIC_RELAXED);
  if (chunk_hooked(&a->chunks)) s->mapped_hooks = a->chunks.reserved;
  s->chunk_free = a->chunks.free_bytes;
  s->chunk_dirty = chunk_dirty_bytes(&a->chunks);
  s->chunk_muzzy = chunk_muzzy_bytes(&a->chunks);
  s->chunk_purging = a->chunks.purging_bytes;
  s->nfree_ranges += a->chunks.ad.n;
  s->npurged += a->chunks.npurged;
  s->nmadvise += a->chunks.nmadvise;
  xmutex_unlock(&a->chunks.mtx);
  s->pactive = s->pactive_runs;
  xmutex_lock(&a->huge_mtx);
  s->allocated_huge = a->stats.allocated_huge;
  s->nmalloc_huge = a->stats.nmalloc_huge;
  s->ndalloc_huge = a->stats.ndalloc_huge;
  s->nhuge = a->huge.n;
  for (rb_node_t *r = rb_first(&a->huge); r != NULL; r = rb_next(r)) {
    const extent_node_t *n = rb_entry(r, extent_node_t, ad);
    s->pactive += PAGE_CEILING(n->usize) >> LG_PAGE;
    s->huge_mapped += n->committed; /* a recycled dirty range may be resident past usize */
  }
  xmutex_unlock(&a->huge_mtx);
}

void stats_arena_merge(stats_arena_t *d, const stats_arena_t *s) {
  d->nthreads += s->nthreads;
  d->pactive_runs += s->pactive_runs;
  d->pactive += s->pactive;
  d->pdirty_runs += s->pdirty_runs;
  d->pmuzzy_runs += s->pmuzzy_runs;
  d->ppurging_runs += s->ppurging_runs;
  d->nchunks += s->nchunks;
  d->mapped += s->mapped;
  d->mapped_hooks += s->mapped_hooks;
  d->decommitted += s->decommitted;
  d->chunk_free += s->chunk_free;
  d->chunk_dirty += s->chunk_dirty;
  d->chunk_muzzy += s->chunk_muzzy;
  d->chunk_purging += s->chunk_purging;
  d->huge_mapped += s->huge_mapped;
  d->nfree_ranges += s->nfree_ranges;
  d->npurged += s->npurged;
  d->nmadvise += s->nmadvise;
  d->allocated_small += s->allocated_small;
  d->nmalloc_small += s->nmalloc_small;
  d->ndalloc_small += s->ndalloc_small;
  d->allocated_large += s->allocated_large;
  d->nmalloc_large += s->nmalloc_large;
  d->ndalloc_large += s->ndalloc_large;
  d->allocated_huge += s->allocated_huge;
  d->nhuge += s->nhuge;
  d->nmalloc_huge += s->nmalloc_huge;
  d->ndalloc_huge += s->ndalloc_huge;
  if (s->uptime_ns > d->uptime_ns) d->uptime_ns = s->uptime_ns;
  for (unsigned b = 0; b < SZ_NBINS; b++) {
    d->bin_nonfull[b] += s->bin_nonfull[b];
    d->bins[b].nmalloc += s->bins[b].nmalloc;
    d->bins[b].ndalloc += s->bins[b].ndalloc;
    d->bins[b].nruns += s->bins[b].nruns;
    d->bins[b].curregs += s->bins[b].curregs;
    d->bins[b].curruns += s->bins[b].curruns;
  }
}

void stats_totals_from(const stats_arena_t *all, stats_totals_t *t) {
  memset(t, 0, sizeof(*t));
  t->allocated_small = all->allocated_small;
  t->allocated_large = all->allocated_large;
  t->allocated_huge = all->allocated_huge;
  t->allocated = stats_allocated(all);
  t->active = all->pactive << LG_PAGE;
  t->dirty = stats_dirty(all);
  t->muzzy = stats_muzzy(all);
  t->retained = stats_retained(all);
  t->npurged = all->npurged;
  t->nmadvise = all->nmadvise;
  t->nhuge = all->nhuge;
  t->nfree_ranges = all->nfree_ranges;
  tcache_requests(&t->nmalloc, &t->ndalloc);
  tsd_park_stats(&t->tcache_parked, &t->tcache_parked_bytes);
  base_stats_t bs;
  base_stats_get(&bs);
  t->metadata = bs.mapped;
  t->resident = stats_resident(all) + bs.mapped;
  pages_stats_t ps;
  pages_stats_get(&ps);
  /* Memory from user extent hooks is mapped, but not by the pages layer. */
  t->mapped = ps.mapped + all->mapped_hooks;
  t->committed = t->mapped - (all->decommitted < t->mapped ? all->decommitted : t->mapped);
  t->stranded = ps.stranded;
  t->nunmap_kept = ps.nunmap_kept;
}

void stats_totals(stats_totals_t *t) {
  stats_arena_t all, s;
  memset(&all, 0, sizeof(all));
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    if (a == NULL) continue;
    stats_arena_get(a, &s);
    stats_arena_merge(&all, &s);
  }
  stats_totals_from(&all, t);
  arenas_chunks_flush();
}

/* ---- the report ---- */

typedef struct {
  stats_write_cb_t *cb;
  void *opaque;
  bool json;
  unsigned depth;
  bool comma; /* JSON: a value was written at this level */
} stats_out_t;

static void stats_default_write(void *opaque, const char *s) {
  (void)opaque;
  util_write(s);
}

#define OUT(o, ...)                               \
  do {                                            \
    char buf_[512];                               \
    util_format(buf_, sizeof(buf_), __VA_ARGS__); \
    (o)->cb((o)->opaque, buf_);                   \
  } while (0)

/* JSON: the key (or nothing, in arrays) of the next value. */
static void j_key(stats_out_t *o, const char *key) {
  char ind[64];
  unsigned n = 2 * o->depth < sizeof(ind) - 1 ? 2 * o->depth : sizeof(ind) - 1;
  memset(ind, ' ', n);
  ind[n] = '\0';
  if (key != NULL)
    OUT(o, "%s\n%s\"%s\": ", o->comma ? "," : "", ind, key);
  else
    OUT(o, "%s\n%s", o->comma ? "," : "", ind);
  o->comma = true;
}
static void j_open(stats_out_t *o, const char *key, const char *brace) {
  j_key(o, key);
  o->cb(o->opaque, brace);
  o->depth++;
  o->comma = false;
}
static void j_close(stats_out_t *o, const char *brace) {
  char ind[64];
  o->depth--;
  unsigned n = 2 * o->depth < sizeof(ind) - 1 ? 2 * o->depth : sizeof(ind) - 1;
  memset(ind, ' ', n);
  ind[n] = '\0';
  OUT(o, "\n%s%s", ind, brace);
  o->comma = true;
}
static void j_u64(stats_out_t *o, const char *key, uint64_t v) {
  j_key(o, key);
  OUT(o, "%llu", (unsigned long long)v);
}
static void j_i64(stats_out_t *o, const char *key, int64_t v) {
  j_key(o, key);
  OUT(o, "%lld", (long long)v);
}
static void j_bool(stats_out_t *o, const char *key, bool v) {
  j_key(o, key);
  o->cb(o->opaque, v ? "true" : "false");
}
static void j_str(stats_out_t *o, const char *key, const char *s) {
  char buf[256];
  size_t n = 0;
  j_key(o, key);
  buf[n++] = '"';
  for (; *s != '\0'; s++) {
    if (n + 8 >= sizeof(buf)) {
      buf[n] = '\0';
      o->cb(o->opaque, buf);
      n = 0;
    }
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[n++] = '\\';
      buf[n++] = (char)c;
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      memcpy(buf + n, "\\u00", 4);
      buf[n + 4] = hex[c >> 4];
      buf[n + 5] = hex[c & 15];
      n += 6;
    } else {
      buf[n++] = (char)c;
    }
  }
  buf[n++] = '"';
  buf[n] = '\0';
  o->cb(o->opaque, buf);
}

static unsigned stats_pct(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0 : (unsigned)(part * 100 / whole);
}

/* The guarded pool (guard.h), when guard_sample is on. */
static void stats_print_guard(stats_out_t *o) {
  guard_stats_t g;
  guard_stats_get(&g);
  if (g.slots == 0) return;
  if (o->json) {
    j_open(o, "guard", "{");
    j_u64(o, "slots", g.slots);
    j_u64(o, "slot_size", g.slot_size);
    j_u64(o, "mapped", g.mapped);
    j_u64(o, "in_use", g.in_use);
    j_u64(o, "allocated", g.allocated);
    j_u64(o, "resident", g.resident);
    j_u64(o, "nmalloc", g.nmalloc);
    j_u64(o, "ndalloc", g.ndalloc);
    j_u64(o, "exhausted", g.nexhausted);
    j_u64(o, "faults", g.nfaults);
    j_close(o, "}");
  } else {
    OUT(o, "Guarded pool: %zu slots of %zu bytes (%zu mapped), in use %zu (%zu bytes requested, %zu resident), "
           "served %llu, freed %llu, exhausted %llu, faults %llu\n",
        g.slots, g.slot_size, g.mapped, g.in_use, g.allocated, g.resident, (unsigned long long)g.nmalloc,
        (unsigned long long)g.ndalloc, (unsigned long long)g.nexhausted, (unsigned long long)g.nfaults);
  }
}

static void stats_print_arena(stats_out_t *o, const char *key, const char *title,
                              const stats_arena_t *s, bool bins, bool large) {
  if (o->json) {
    j_open(o, key, "{");
    j_u64(o, "nthreads", s->nthreads);
    j_u64(o, "pactive", s->pactive);
    j_u64(o, "pdirty", stats_dirty(s) >> LG_PAGE);
    j_u64(o, "pmuzzy", stats_muzzy(s) >> LG_PAGE);
    j_u64(o, "nchunks", s->nchunks);
    j_u64(o, "mapped", s->mapped);
    j_u64(o, "retained", stats_retained(s));
    j_u64(o, "resident", stats_resident(s));
    j_u64(o, "chunk_muzzy", s->chunk_muzzy);
    j_u64(o, "npurged", s->npurged);
    j_open(o, "small", "{");
    j_u64(o, "allocated", s->allocated_small);
    j_u64(o, "nmalloc", s->nmalloc_small);
    j_u64(o, "ndalloc", s->ndalloc_small);
    j_close(o, "}");
    if (large) {
      j_open(o, "large", "{");
      j_u64(o, "allocated", s->allocated_large);
      j_u64(o, "nmalloc", s->nmalloc_large);
      j_u64(o, "ndalloc", s->ndalloc_large);
      j_close(o, "}");
      j_open(o, "huge", "{");
      j_u64(o, "allocated", s->allocated_huge);
      j_u64(o, "nmalloc", s->nmalloc_huge);
      j_u64(o, "ndalloc", s->ndalloc_huge);
      j_u64(o, "curhuge", s->nhuge);
      j_close(o, "}");
    }
    if (bins) {
      j_open(o, "bins", "[");
      for (unsigned b = 0; b < SZ_NBINS; b++) {
        const sz_bin_info_t *info = &sz_bin_info[b];
        const arena_bin_stats_t *bs = &s->bins[b];
        j_open(o, NULL, "{");
        j_u64(o, "size", info->reg_size);
        j_u64(o, "nregs", info->nregs);
        j_u64(o, "slab_size", (size_t)info->run_pages << LG_PAGE);
        j_u64(o, "nmalloc", bs->nmalloc);
        j_u64(o, "ndalloc", bs->ndalloc);
        j_u64(o, "curregs", bs->curregs);
        j_u64(o, "curslabs", bs->curruns);
        j_u64(o, "nslabs", bs->nruns);
        j_close(o, "}");
      }
      j_close(o, "]");
    }
    j_close(o, "}");
    return;
  }
  OUT(o, "%s\n", title);
  OUT(o, "  threads: %u, active pages: %zu, dirty pages: %zu, muzzy pages: %zu, arena chunks: %zu\n",
      s->nthreads, s->pactive, stats_dirty(s) >> LG_PAGE, stats_muzzy(s) >> LG_PAGE, s->nchunks);
  OUT(o, "  mapped: %zu, resident: %zu, free chunk memory: %zu (dirty %zu, muzzy %zu, retained %zu), purged: %llu\n",
      s->mapped, stats_resident(s), s->chunk_free, s->chunk_dirty, s->chunk_muzzy, stats_retained(s),
      (unsigned long long)s->npurged);
  OUT(o, "  %-8s %14s %14s %14s %10s\n", "", "allocated", "nmalloc", "ndalloc", "live");
  OUT(o, "  %-8s %14zu %14llu %14llu %10llu\n", "small:", s->allocated_small,
      (unsigned long long)s->nmalloc_small, (unsigned long long)s->ndalloc_small,
      (unsigned long long)(s->nmalloc_small - s->ndalloc_small));
  if (large) {
    OUT(o, "  %-8s %14zu %14llu %14llu %10llu\n", "large:", s->allocated_large,
        (unsigned long long)s->nmalloc_large, (unsigned long long)s->ndalloc_large,
        (unsigned long long)(s->nmalloc_large - s->ndalloc_large));
    OUT(o, "  %-8s %14zu %14llu %14llu %10zu\n", "huge:", s->allocated_huge,
        (unsigned long long)s->nmalloc_huge, (unsigned long long)s->ndalloc_huge, s->nhuge);
  }
  if (!bins) return;
  OUT(o, "  bins (classes never used are left out; util = regions in use / regions in live runs):\n");
  OUT(o, "  %8s %8s %8s %10s %8s %5s %12s %12s %8s\n", "size", "regs/run", "run size", "in use",
      "runs", "util", "nmalloc", "ndalloc", "runs made");
  for (unsigned b = 0; b < SZ_NBINS; b++) {
    const arena_bin_stats_t *bs = &s->bins[b];
    if (bs->nmalloc == 0) continue;
    const sz_bin_info_t *info = &sz_bin_info[b];
    char util[8];
    util_format(util, sizeof(util), "%u%%", stats_pct(bs->curregs, (uint64_t)bs->curruns * info->nregs));
    OUT(o, "  %8u %8u %8zu %10zu %8zu %5s %12llu %12llu %8llu\n", info->reg_size, info->nregs,
        (size_t)info->run_pages << LG_PAGE, bs->curregs, bs->curruns, util,
        (unsigned long long)bs->nmalloc, (unsigned long long)bs->ndalloc, (unsigned long long)bs->nruns);
  }
}

void stats_print(stats_write_cb_t *write_cb, void *opaque, const char *opts) {
  stats_out_t out = {write_cb != NULL ? write_cb : stats_default_write, opaque, false, 0, false};
  stats_out_t *o = &out;
  bool general = true, merged = true, per_arena = true, bins = true, large = true;
  for (const char *p = opts != NULL ? opts : ""; *p != '\0'; p++) {
    switch (*p) {
    case 'J': o->json = true; break;
    case 'g': general = false; break;
    case 'm': merged = false; break;
    case 'a': per_arena = false; break;
    case 'b': bins = false; break;
    case 'l': large = false; break;
    default: break; /* jemalloc letters with no meaning here */
    }
  }
  stats_totals_t t;
  stats_totals(&t);
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  char vbuf[64];
  if (o->json) {
    o->cb(o->opaque, "{");
    o->depth = 1;
    j_open(o, "xalloc", "{");
    j_str(o, "version", PACKAGE_VERSION);
    if (general) {
      j_open(o, "config", "{");
      j_bool(o, "debug", config_debug);
      j_str(o, "malloc_conf", XALLOC_CONF_DEFAULT);
      j_close(o, "}");
      j_open(o, "opt", "{");
      for (unsigned i = 0; i < conf_nopts; i++) {
        const conf_desc_t *d = &conf_table[i];
        if (d->kind == CONF_BOOL)
          j_bool(o, d->name, *(const bool *)d->ptr);
        else if (d->kind == CONF_UINT)
          j_u64(o, d->name, *(const unsigned *)d->ptr);
        else if (d->kind == CONF_SSIZE)
          j_i64(o, d->name, *(const ssize_t *)d->ptr);
        else
          j_str(o, d->name, conf_value_str(d, vbuf, sizeof(vbuf)));
      }
      j_close(o, "}");
      j_open(o, "arenas", "{");
      j_u64(o, "narenas", n);
      j_u64(o, "narenas_auto", narenas_auto);
      j_u64(o, "page", PAGE);
      j_u64(o, "quantum", QUANTUM);
      j_u64(o, "chunk_size", sz_chunksize);
      j_u64(o, "tcache_max", tcache_maxclass);
      j_u64(o, "nbins", SZ_NBINS);
      j_close(o, "}");
    }
    j_open(o, "stats", "{");
    j_u64(o, "allocated", t.allocated);
    j_u64(o, "active", t.active);
    j_u64(o, "metadata", t.metadata);
    j_u64(o, "resident", t.resident);
    j_u64(o, "mapped", t.mapped);
    j_u64(o, "retained", t.retained);
    j_u64(o, "dirty", t.dirty);
    j_u64(o, "muzzy", t.muzzy);
    j_u64(o, "stranded", t.stranded);
    j_u64(o, "purged", t.npurged);
    j_u64(o, "purge_calls", t.nmadvise);
    j_u64(o, "failed_munmaps_kept", t.nunmap_kept);
    j_u64(o, "nmalloc", t.nmalloc);
    j_u64(o, "ndalloc", t.ndalloc);
    j_u64(o, "tcache_parked", t.tcache_parked);
    j_u64(o, "tcache_parked_bytes", t.tcache_parked_bytes);
    stats_print_guard(o);
  } else {
    OUT(o, "___ Begin xalloc statistics ___\n");
    OUT(o, "Version: %s\n", PACKAGE_VERSION);
    if (general) {
      /* These three lines keep the format scripts already parse. */
      OUT(o, "Options: lg_chunk:%u abort:%s\n", opt_lg_chunk, opt_abort ? "true" : "false");
      OUT(o, "Arenas: %u, page size: %zu, chunk size: %zu\n", n, PAGE, sz_chunksize);
      OUT(o, "Build: debug %s, quantum %zu, built-in options \"%s\"; automatic arenas: up to %u; "
             "thread caches hold sizes up to %zu\n",
          config_debug ? "true" : "false", QUANTUM, XALLOC_CONF_DEFAULT, narenas_auto, tcache_maxclass);
      OUT(o, "Option table (name, value, meaning):\n");
      for (unsigned i = 0; i < conf_nopts; i++) {
        const conf_desc_t *d = &conf_table[i];
        OUT(o, "  %-18s %-10s %s\n", d->name, conf_value_str(d, vbuf, sizeof(vbuf)), d->help);
      }
    }
    OUT(o, "Totals: allocated %zu, active %zu, metadata %zu, resident %zu, mapped %zu, retained %zu, "
           "dirty %zu\n",
        t.allocated, t.active, t.metadata, t.resident, t.mapped, t.retained, t.dirty);
    OUT(o, "Memory return: muzzy %zu, stranded %zu, purged %zu bytes in %zu calls, failed munmaps kept %zu\n",
        t.muzzy, t.stranded, (size_t)t.npurged, (size_t)t.nmadvise, (size_t)t.nunmap_kept);
    OUT(o, "Allocated small %zu, large %zu, huge %zu (%zu live huge allocations)\n", t.allocated_small,
        t.allocated_large, t.allocated_huge, t.nhuge);
    OUT(o, "Allocation calls: %llu, free calls: %llu\n", (unsigned long long)t.nmalloc,
        (unsigned long long)t.ndalloc);
    OUT(o, "Caches of exited threads parked: %zu, holding %zu bytes\n", t.tcache_parked, t.tcache_parked_bytes);
    stats_print_guard(o);
  }
  if (merged || per_arena) {
    if (o->json) j_open(o, "arenas", "{");
    if (merged) {
      stats_arena_t sum, s;
      memset(&sum, 0, sizeof(sum));
      for (unsigned i = 0; i < n; i++) {
        arena_t *a = arena_get(i);
        if (a == NULL) continue;
        stats_arena_get(a, &s);
        stats_arena_merge(&sum, &s);
      }
      stats_print_arena(o, "merged", "Merged arenas:", &sum, bins, large);
    }
    for (unsigned i = 0; per_arena && i < n; i++) {
      arena_t *a = arena_get(i);
      if (a == NULL) continue;
      stats_arena_t s;
      stats_arena_get(a, &s);
      char key[16], title[64];
      util_format(key, sizeof(key), "%u", i);
      util_format(title, sizeof(title), "Arena %u (%s):", i, arena_is_auto(a) ? "automatic" : "explicit");
      stats_print_arena(o, key, title, &s, bins, large);
    }
    if (o->json) j_close(o, "}");
  }
  arenas_chunks_flush(); /* what the drains of stats_arena_get freed */
  if (o->json) {
    j_close(o, "}"); /* stats */
    j_close(o, "}"); /* xalloc */
    o->cb(o->opaque, "\n}\n");
  } else {
    OUT(o, "___ End xalloc statistics ___\n");
  }
}
