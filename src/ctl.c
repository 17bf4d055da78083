/* ctl: the mallctl namespace (see ctl.h and doc/API.md). */
#include <errno.h>

#include "xalloc/internal/background.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/conf.h"
#include "xalloc/internal/ctl.h"
#include "xalloc/internal/cfi.h"
#include "xalloc/internal/guard.h"
#include "xalloc/internal/prof.h"
#include "xalloc/internal/huge.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/stats.h"
#include "xalloc/internal/tcache.h"

#define CTL_ARENAS_ALL ARENAS_MAX /* jemalloc's MALLCTL_ARENAS_ALL (4096) */
#define CTL_ARENAS_DESTROYED (ARENAS_MAX + 1) /* MALLCTL_ARENAS_DESTROYED (4097) */
#define CTL_DEPTH_MAX 8

/*
 * ctl_mtx protects the namespace's own state: the statistics snapshot
 * below (refreshed by epoch, read by stats.* and by the lookup of
 * stats.arenas.<i>) and opt.*'s name buffers. It is held for a lookup and,
 * for the nodes under epoch, stats and opt (ctl_root_locked), across the
 * handler; every other handler (thread.*, tcache.*, arenas.*, arena.<i>.*)
 * runs with it released, since those call into the arenas and from there
 * into user extent hooks, which may call mallctl themselves.
 */
static xmutex_t ctl_mtx = XMUTEX_INITIALIZER;

/* ---- the statistics snapshot (refreshed by "epoch") ---- */

static bool ctl_initialized;
static uint64_t ctl_epoch;
static stats_totals_t ctl_totals;
static unsigned ctl_narenas;
static size_t ctl_bg_nthreads;   /* stats.background_thread.* */
static uint64_t ctl_bg_nruns, ctl_bg_interval;
static guard_stats_t ctl_guard; /* stats.guard.* */
/* Per arena, the sum at [CTL_ARENAS_ALL], and the destroyed arenas at
 * [CTL_ARENAS_DESTROYED]; in base memory, reused. */
static stats_arena_t *ctl_astats[ARENAS_MAX + 2];
static bool ctl_arena_live[ARENAS_MAX + 2];

/* The destroyed arenas' figures (stats.arenas.<MALLCTL_ARENAS_DESTROYED>),
 * merged at each destroy. Its own lock, a leaf (nothing is taken under it),
 * taken after ctl_mtx at fork. */
static xmutex_t ctl_destroyed_mtx = XMUTEX_INITIALIZER;
static stats_arena_t ctl_destroyed;
static unsigned ctl_ndestroyed;

/* Merge the figures of a (reset and released: only its counts of what it
 * ever did are left) into the destroyed arenas'. */
static void ctl_destroyed_add(arena_t *a) {
  stats_arena_t s;
  stats_arena_get(a, &s);
  xmutex_lock(&ctl_destroyed_mtx);
  stats_arena_merge(&ctl_destroyed, &s);
  ctl_ndestroyed++;
  xmutex_unlock(&ctl_destroyed_mtx);
}

static bool ctl_destroyed_any(void) {
  xmutex_lock(&ctl_destroyed_mtx);
  bool any = ctl_ndestroyed != 0;
  xmutex_unlock(&ctl_destroyed_mtx);
  return any;
}

/* Set by ctl_refresh: its drains may have detached chunks, given back once
 * ctl_mtx is released (ctl_unlock): giving a chunk back may call the
 * dalloc hook, and the hook may call mallctl. */
static bool ctl_flush_pending;

static void ctl_refresh(void) {
  if (ctl_astats[CTL_ARENAS_ALL] == NULL) ctl_astats[CTL_ARENAS_ALL] = base_alloc(sizeof(stats_arena_t));
  stats_arena_t *sum = ctl_astats[CTL_ARENAS_ALL], sum_local;
  ctl_arena_live[CTL_ARENAS_ALL] = sum != NULL;
  if (sum == NULL) sum = &sum_local; /* no room for the merged figures: totals only */
  memset(sum, 0, sizeof(*sum));
  ctl_flush_pending = true;
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    ctl_arena_live[i] = false;
    if (a == NULL) continue;
    if (ctl_astats[i] == NULL) ctl_astats[i] = base_alloc(sizeof(stats_arena_t));
    /* No room for the arena's own figures: still counted in the totals. */
    stats_arena_t one, *s = ctl_astats[i] != NULL ? ctl_astats[i] : &one;
    stats_arena_get(a, s);
    ctl_arena_live[i] = s != &one;
    stats_arena_merge(sum, s);
  }
  for (unsigned i = n; i < ctl_narenas; i++) ctl_arena_live[i] = false;
  ctl_narenas = n;
  stats_arena_t **d = &ctl_astats[CTL_ARENAS_DESTROYED];
  if (*d == NULL) *d = base_alloc(sizeof(stats_arena_t));
  ctl_arena_live[CTL_ARENAS_DESTROYED] = false;
  if (*d != NULL) {
    xmutex_lock(&ctl_destroyed_mtx);
    **d = ctl_destroyed;
    ctl_arena_live[CTL_ARENAS_DESTROYED] = ctl_ndestroyed != 0;
    xmutex_unlock(&ctl_destroyed_mtx);
  }
  /* Totals from the same figures: a total is the merged arenas' figure. */
  stats_totals_from(sum, &ctl_totals);
  ctl_bg_nthreads = background_running() ? 1 : 0;
  ctl_bg_nruns = background_npasses();
  ctl_bg_interval = background_run_interval_ns();
  guard_stats_get(&ctl_guard);
  ctl_epoch++;
}

/* ---- value transfer, with jemalloc's error rules ---- */

/*
 * Whether a read of a size-byte value may be made: none was asked for
 * (oldp or oldlenp NULL), or *oldlenp is size. Otherwise EINVAL, with
 * *oldlenp set to size and nothing copied (no caller variable is ever half
 * written). Every handler that does anything checks this first.
 */
static int ctl_check_read(void *oldp, size_t *oldlenp, size_t size) {
  if (oldp == NULL || oldlenp == NULL || *oldlenp == size) return 0;
  *oldlenp = size;
  return EINVAL;
}

/* Copy a value out, if asked (see ctl_check_read). */
static int ctl_read(void *oldp, size_t *oldlenp, const void *v, size_t size) {
  int err = ctl_check_read(oldp, oldlenp, size);
  if (err != 0 || oldp == NULL || oldlenp == NULL) return err;
  memcpy(oldp, v, size);
  return 0;
}

/* Copy a new value in (if any); EINVAL if newlen is wrong. */
static int ctl_write(void *v, size_t size, const void *newp, size_t newlen, bool *written) {
  *written = false;
  if (newp == NULL) return 0;
  if (newlen != size) return EINVAL;
  memcpy(v, newp, size);
  *written = true;
  return 0;
}

#define READONLY()                                \
  do {                                            \
    if (newp != NULL || newlen != 0) return EPERM; \
  } while (0)
#define WRITEONLY()                                  \
  do {                                               \
    if (oldp != NULL || oldlenp != NULL) return EPERM; \
  } while (0)

#define CTL_ARGS const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen
#define CTL_UNUSED() \
  (void)mib;         \
  (void)oldp;        \
  (void)oldlenp;     \
  (void)newp;        \
  (void)newlen

/* A read-only value computed by expr. */
#define CTL_RO(fn, type, expr)                    \
  static int fn(CTL_ARGS) {                       \
    CTL_UNUSED();                                 \
    READONLY();                                   \
    type v_ = (expr);                             \
    return ctl_read(oldp, oldlenp, &v_, sizeof(v_)); \
  }

typedef int ctl_handler_t(CTL_ARGS);
typedef struct ctl_node_s ctl_node_t;
struct ctl_node_s {
  const char *name;
  ctl_handler_t *handler;                /* a leaf */
  const ctl_node_t *children;            /* named children, up to a {NULL} */
  const ctl_node_t *(*index)(size_t i);  /* indexed children: node for i, or NULL */
};
#define LEAF(n, h) {n, h, NULL, NULL}
#define NODE(n, c) {n, NULL, c, NULL}
#define INODE(n, f) {n, NULL, NULL, f}
#define END {NULL, NULL, NULL, NULL}

/* ---- arena indices ---- */

/* arenas.narenas: every arena index in use, as jemalloc counts them: the
 * automatic ones (made or not yet made) and the explicit ones (destroyed
 * ones included). */
static unsigned ctl_nindices(void) {
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  return n > narenas_auto ? n : narenas_auto;
}

/* What the arena index i of arena.<i> and stats.arenas.<i> means now: one
 * arena, every arena (MALLCTL_ARENAS_ALL, or arenas.narenas itself:
 * jemalloc's older spelling), or the destroyed ones. */
enum { CTL_ONE, CTL_ALL, CTL_DESTROYED };
static int ctl_arena_kind(size_t i) {
  if (i == CTL_ARENAS_ALL || i == ctl_nindices()) return CTL_ALL;
  if (i == CTL_ARENAS_DESTROYED) return CTL_DESTROYED;
  return CTL_ONE;
}

/* The arena for arena.<i> (NULL: all, destroyed, or no arena there). */
static arena_t *ctl_arena_one(size_t i) {
  return ctl_arena_kind(i) == CTL_ONE ? arena_get((unsigned)i) : NULL;
}

/* ---- version, epoch, config, opt ---- */

CTL_RO(ctl_version, const char *, PACKAGE_VERSION)

static int ctl_epoch_h(CTL_ARGS) {
  CTL_UNUSED();
  uint64_t v = 0;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(ctl_epoch));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (w) ctl_refresh();
  return ctl_read(oldp, oldlenp, &ctl_epoch, sizeof(ctl_epoch));
}

CTL_RO(ctl_config_cache_oblivious, bool, false)
CTL_RO(ctl_config_debug, bool, config_debug)
CTL_RO(ctl_config_fill, bool, true)
CTL_RO(ctl_config_malloc_conf, const char *, XALLOC_CONF_DEFAULT)
CTL_RO(ctl_config_lazy_lock, bool, false)
CTL_RO(ctl_config_prof, bool, true)
CTL_RO(ctl_config_prof_libgcc, bool, !cfi_available()) /* stacks through libgcc's unwinder (else xalloc's, cfi.h) */
CTL_RO(ctl_config_prof_libunwind, bool, false)
CTL_RO(ctl_config_stats, bool, true)
CTL_RO(ctl_config_utrace, bool, false)
CTL_RO(ctl_config_xmalloc, bool, false)

static const ctl_node_t ctl_config_nodes[] = {
    LEAF("cache_oblivious", ctl_config_cache_oblivious), LEAF("debug", ctl_config_debug),
    LEAF("fill", ctl_config_fill), LEAF("lazy_lock", ctl_config_lazy_lock),
    LEAF("malloc_conf", ctl_config_malloc_conf), LEAF("prof", ctl_config_prof),
    LEAF("prof_libgcc", ctl_config_prof_libgcc), LEAF("prof_libunwind", ctl_config_prof_libunwind),
    LEAF("stats", ctl_config_stats), LEAF("utrace", ctl_config_utrace),
    LEAF("xmalloc", ctl_config_xmalloc), END};

#define OPT_COUNT(kind, name, def, min, max, choices, help) +1
enum { CTL_NOPTS = 0 XALLOC_OPTIONS(OPT_COUNT) };
#undef OPT_COUNT

/* opt.<name>: one leaf per row of the option table, in its order. Types:
 * bool, unsigned, ssize_t; choices and strings as const char *; narenas,
 * tcache_max and junk as jemalloc has them. */
static int ctl_opt_h(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  const conf_desc_t *d = &conf_table[mib[1]];
  /* narenas: the effective number of automatic arenas (0 means "four per
   * CPU"), as jemalloc reports it. */
  if (d->ptr == &opt_narenas) return ctl_read(oldp, oldlenp, &narenas_auto, sizeof(narenas_auto));
  if (d->ptr == &opt_narenas_large) return ctl_read(oldp, oldlenp, &narenas_large, sizeof(narenas_large));
  /* jemalloc's types: tcache_max is a size_t, junk a string. */
  if (d->ptr == &opt_tcache_max) {
    size_t v = opt_tcache_max;
    return ctl_read(oldp, oldlenp, &v, sizeof(v));
  }
  /* lg_prof_sample is a size_t in jemalloc. */
  if (d->ptr == &opt_lg_prof_sample) {
    size_t v = opt_lg_prof_sample;
    return ctl_read(oldp, oldlenp, &v, sizeof(v));
  }
  if (d->ptr == &opt_junk) {
    const char *v = opt_junk ? "true" : "false";
    return ctl_read(oldp, oldlenp, &v, sizeof(v));
  }
  switch (d->kind) {
  case CONF_BOOL:
    return ctl_read(oldp, oldlenp, d->ptr, sizeof(bool));
  case CONF_UINT:
    return ctl_read(oldp, oldlenp, d->ptr, sizeof(unsigned));
  case CONF_SSIZE:
    return ctl_read(oldp, oldlenp, d->ptr, sizeof(ssize_t));
  case CONF_ENUM: {
    /* A NUL-terminated copy of the current choice, kept per option. */
    static char names[CTL_NOPTS][32];
    const char *str = conf_enum_name(d, names[mib[1]], sizeof(names[0]));
    return ctl_read(oldp, oldlenp, &str, sizeof(str));
  }
  default:
    return ctl_read(oldp, oldlenp, d->ptr, sizeof(const char *));
  }
}

/* jemalloc's options for what xalloc does one way only: these values say
 * which (no sbrk, no per-CPU arenas, no huge pages for metadata, realloc(p,
 * 0) frees, one background thread, no interval statistics, no cache-
 * oblivious offsets, no oversize arena). */
CTL_RO(ctl_opt_dss, const char *, "disabled")
CTL_RO(ctl_opt_percpu_arena, const char *, "disabled")
CTL_RO(ctl_opt_metadata_thp, const char *, "disabled")
CTL_RO(ctl_opt_zero_realloc, const char *, "free")
CTL_RO(ctl_opt_max_background_threads, size_t, 1)
CTL_RO(ctl_opt_stats_interval, int64_t, -1)
CTL_RO(ctl_opt_stats_interval_opts, const char *, "")
CTL_RO(ctl_opt_confirm_conf, bool, false)
CTL_RO(ctl_opt_cache_oblivious, bool, false)
CTL_RO(ctl_opt_oversize_threshold, size_t, 0)

static const ctl_node_t ctl_opt_nodes[] = {
#define OPT_NODE(kind, name, def, min, max, choices, help) LEAF(#name, ctl_opt_h),
    XALLOC_OPTIONS(OPT_NODE)
#undef OPT_NODE
        LEAF("dss", ctl_opt_dss),
    LEAF("percpu_arena", ctl_opt_percpu_arena),
    LEAF("metadata_thp", ctl_opt_metadata_thp),
    LEAF("zero_realloc", ctl_opt_zero_realloc),
    LEAF("max_background_threads", ctl_opt_max_background_threads),
    LEAF("stats_interval", ctl_opt_stats_interval),
    LEAF("stats_interval_opts", ctl_opt_stats_interval_opts),
    LEAF("confirm_conf", ctl_opt_confirm_conf),
    LEAF("cache_oblivious", ctl_opt_cache_oblivious),
    LEAF("oversize_threshold", ctl_opt_oversize_threshold),
    END};

/* ---- background_thread, max_background_threads ---- */

/* Read: whether the purging thread is on; write: start it now / stop and
 * join it (EAGAIN if it cannot be created). */
static int ctl_background_thread(CTL_ARGS) {
  CTL_UNUSED();
  bool old = background_enabled(), v = false, w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (w && v != old && background_set_enabled(v)) return EAGAIN;
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

/* xalloc has one purging thread: the maximum is 1, and 1 is all it takes
 * (jemalloc refuses more than opt.max_background_threads the same way). */
static int ctl_max_background_threads(CTL_ARGS) {
  CTL_UNUSED();
  size_t old = 1, v = 0;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (w && v != 1) return EINVAL;
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

/* ---- thread.* ---- */

static tsd_t *ctl_tsd(void) {
  tsd_t *t = tsd_fetch();
  return tsd_nominal(t) ? t : NULL;
}

static int ctl_thread_arena(CTL_ARGS) {
  CTL_UNUSED();
  tsd_t *t = ctl_tsd();
  if (t == NULL) return EAGAIN;
  unsigned old = t->arena->ind, ind = 0;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&ind, sizeof(ind), newp, newlen, &w);
  if (err != 0) return err;
  if (w && ind != old) {
    arena_t *to;
    if (arena_migrate(t->arena, ind, &to)) return EFAULT;
    t->arena = to;
  }
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

static int ctl_thread_tcache_enabled(CTL_ARGS) {
  CTL_UNUSED();
  tsd_t *t = ctl_tsd();
  if (t == NULL) return EAGAIN;
  bool old = t->tcache_enabled, v = false;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (w && v != old) tcache_set_enabled(t, v);
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

static int ctl_thread_tcache_flush(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  tsd_t *t = ctl_tsd();
  if (t != NULL) tcache_flush_all(t);
  return 0;
}

/* thread.idle: the thread will wait a while; give back what it holds (its
 * cache) and purge what is due in its arena. */
static int ctl_thread_idle(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  tsd_t *t = ctl_tsd();
  if (t != NULL) {
    tcache_flush_all(t);
    arena_decay(t->arena);
  }
  return 0;
}

static int ctl_thread_allocated(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  tsd_t *t = ctl_tsd();
  uint64_t v = t != NULL ? tsd_allocated(t) : 0;
  int err = ctl_read(oldp, oldlenp, &v, sizeof(v));
  if (err == 0 && t != NULL && t->counters_published) tsd_publish_counters(t); /* *allocatedp agrees */
  return err;
}

static int ctl_thread_deallocated(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  tsd_t *t = ctl_tsd();
  uint64_t v = t != NULL ? tsd_deallocated(t) : 0;
  int err = ctl_read(oldp, oldlenp, &v, sizeof(v));
  if (err == 0 && t != NULL && t->counters_published) tsd_publish_counters(t);
  return err;
}

/* thread.allocatedp / deallocatedp: the address of a counter the thread
 * keeps; see tsd_publish_counters for how up to date it is. */
static int ctl_thread_counterp(void *oldp, size_t *oldlenp, void *newp, size_t newlen, bool dealloc) {
  READONLY();
  int err = ctl_check_read(oldp, oldlenp, sizeof(uint64_t *));
  if (err != 0) return err;
  tsd_t *t = ctl_tsd();
  if (t == NULL) return EAGAIN;
  tsd_publish_counters(t);
  uint64_t *p = dealloc ? &t->deallocatedp : &t->allocatedp;
  return ctl_read(oldp, oldlenp, &p, sizeof(p));
}
static int ctl_thread_allocatedp(CTL_ARGS) {
  (void)mib;
  return ctl_thread_counterp(oldp, oldlenp, newp, newlen, false);
}
static int ctl_thread_deallocatedp(CTL_ARGS) {
  (void)mib;
  return ctl_thread_counterp(oldp, oldlenp, newp, newlen, true);
}

/* ---- prof.* and thread.prof.* (prof.h) ---- */

/* A read-write bool kept by the profiler: fn(old, new or NULL). */
static int ctl_prof_bool(void *oldp, size_t *oldlenp, void *newp, size_t newlen, int (*fn)(bool *, const bool *)) {
  bool old, v = false, w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err == 0) err = fn(&old, w ? &v : NULL);
  if (err != 0) return err;
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}
static int ctl_prof_active(CTL_ARGS) {
  (void)mib;
  return ctl_prof_bool(oldp, oldlenp, newp, newlen, prof_ctl_active);
}
static int ctl_prof_gdump(CTL_ARGS) {
  (void)mib;
  return ctl_prof_bool(oldp, oldlenp, newp, newlen, prof_ctl_gdump);
}
static int ctl_prof_thread_active_init(CTL_ARGS) {
  (void)mib;
  return ctl_prof_bool(oldp, oldlenp, newp, newlen, prof_ctl_thread_active_init);
}
static int ctl_thread_prof_active(CTL_ARGS) {
  (void)mib;
  return ctl_prof_bool(oldp, oldlenp, newp, newlen, prof_ctl_thread_active);
}

/* prof.dump: write-only, a file name (const char *) or nothing for the
 * next PREFIX.PID.SEQ.mN.heap. EFAULT if it cannot be written. */
static int ctl_prof_dump(CTL_ARGS) {
  CTL_UNUSED();
  if (oldp != NULL || oldlenp != NULL) return EPERM;
  const char *name = NULL;
  bool w;
  int err = ctl_write(&name, sizeof(name), newp, newlen, &w);
  if (err != 0) return err;
  return prof_ctl_dump(name);
}

/* prof.reset: write-only; a size_t, if given, is the new lg_prof_sample. */
static int ctl_prof_reset(CTL_ARGS) {
  CTL_UNUSED();
  if (oldp != NULL || oldlenp != NULL) return EPERM;
  size_t lg = (size_t)-1;
  bool w;
  int err = ctl_write(&lg, sizeof(lg), newp, newlen, &w);
  if (err != 0) return err;
  return prof_ctl_reset(lg);
}

static int ctl_prof_lg_sample(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  if (!opt_prof) return ENOENT;
  size_t v = (size_t)util_lg_floor(prof_sample_mean());
  return ctl_read(oldp, oldlenp, &v, sizeof(v));
}

static int ctl_prof_interval(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  if (!opt_prof) return ENOENT;
  uint64_t v = prof_interval_bytes();
  return ctl_read(oldp, oldlenp, &v, sizeof(v));
}

/* thread.prof.name: read a const char * (the thread's name, "" if none),
 * write one of at most 63 printable characters. */
static int ctl_thread_prof_name(CTL_ARGS) {
  (void)mib;
  const char *old = NULL, *v = NULL;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err == 0) err = prof_ctl_thread_name(&old, w ? &v : NULL);
  if (err != 0) return err;
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

static const ctl_node_t ctl_prof_nodes[] = {
    LEAF("active", ctl_prof_active), LEAF("dump", ctl_prof_dump), LEAF("gdump", ctl_prof_gdump),
    LEAF("reset", ctl_prof_reset), LEAF("lg_sample", ctl_prof_lg_sample), LEAF("interval", ctl_prof_interval),
    LEAF("thread_active_init", ctl_prof_thread_active_init), END};
static const ctl_node_t ctl_thread_prof_nodes[] = {
    LEAF("name", ctl_thread_prof_name), LEAF("active", ctl_thread_prof_active), END};

static const ctl_node_t ctl_thread_tcache_nodes[] = {
    LEAF("enabled", ctl_thread_tcache_enabled), LEAF("flush", ctl_thread_tcache_flush), END};
static const ctl_node_t ctl_thread_nodes[] = {
    LEAF("arena", ctl_thread_arena),         LEAF("allocated", ctl_thread_allocated),
    LEAF("allocatedp", ctl_thread_allocatedp), LEAF("deallocated", ctl_thread_deallocated),
    LEAF("deallocatedp", ctl_thread_deallocatedp), LEAF("idle", ctl_thread_idle),
    NODE("tcache", ctl_thread_tcache_nodes), NODE("prof", ctl_thread_prof_nodes), END};

/* ---- tcache.* ---- */

static int ctl_tcache_create(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  /* As jemalloc: without room for exactly an unsigned, no cache is made,
   * nothing is written and *oldlenp is set to 0. */
  if (oldp == NULL || oldlenp == NULL || *oldlenp != sizeof(unsigned)) {
    if (oldlenp != NULL) *oldlenp = 0;
    return EINVAL;
  }
  unsigned ind;
  if (tcache_explicit_create(&ind)) return EFAULT;
  return ctl_read(oldp, oldlenp, &ind, sizeof(ind));
}

static int ctl_tcache_op(void *oldp, size_t *oldlenp, void *newp, size_t newlen, bool destroy) {
  WRITEONLY();
  unsigned ind = 0;
  bool w;
  int err = ctl_write(&ind, sizeof(ind), newp, newlen, &w);
  if (err != 0) return err;
  if (!w) return EFAULT;
  if (destroy ? tcache_explicit_destroy(ind) : tcache_explicit_flush(ind)) return EFAULT;
  return 0;
}
static int ctl_tcache_flush(CTL_ARGS) {
  (void)mib;
  return ctl_tcache_op(oldp, oldlenp, newp, newlen, false);
}
static int ctl_tcache_destroy(CTL_ARGS) {
  (void)mib;
  return ctl_tcache_op(oldp, oldlenp, newp, newlen, true);
}

static const ctl_node_t ctl_tcache_nodes[] = {LEAF("create", ctl_tcache_create),
                                              LEAF("flush", ctl_tcache_flush),
                                              LEAF("destroy", ctl_tcache_destroy), END};

/* ---- arenas.* ---- */

CTL_RO(ctl_arenas_narenas, unsigned, ctl_nindices())
CTL_RO(ctl_arenas_page, size_t, PAGE)
CTL_RO(ctl_arenas_quantum, size_t, QUANTUM)
CTL_RO(ctl_arenas_chunk_size, size_t, sz_chunksize)
CTL_RO(ctl_arenas_tcache_max, size_t, tcache_maxclass)
CTL_RO(ctl_arenas_nbins, unsigned, SZ_NBINS)
CTL_RO(ctl_arenas_nhbins, unsigned, tcache_nhbins)
CTL_RO(ctl_arenas_nlextents, unsigned, SZ_NCLASSES - SZ_NBINS)

static int ctl_arenas_create(CTL_ARGS) {
  CTL_UNUSED();
  if (oldp == NULL || oldlenp == NULL || *oldlenp != sizeof(unsigned)) {
    if (oldlenp != NULL) *oldlenp = 0;
    return EINVAL;
  }
  /* newp, as with jemalloc: an extent_hooks_t * (the address of a
   * variable holding the table's address). NULL or the default table:
   * the pages layer. */
  extent_hooks_t *hooks = NULL;
  if (newp != NULL) {
    if (newlen != sizeof(extent_hooks_t *)) return EINVAL;
    memcpy(&hooks, newp, sizeof(hooks));
    if (hooks == &chunk_hooks_default) hooks = NULL;
    if (hooks != NULL && hooks->alloc == NULL) return EINVAL;
  }
  arena_t *a = arena_create_explicit(hooks);
  if (a == NULL) return EAGAIN;
  unsigned ind = a->ind;
  return ctl_read(oldp, oldlenp, &ind, sizeof(ind));
}

CTL_RO(ctl_arenas_bin_size, size_t, sz_bin_info[mib[2]].reg_size)
CTL_RO(ctl_arenas_bin_nregs, uint32_t, sz_bin_info[mib[2]].nregs)
CTL_RO(ctl_arenas_bin_slab_size, size_t, (size_t)sz_bin_info[mib[2]].run_pages << LG_PAGE)
static const ctl_node_t ctl_arenas_bin_i_nodes[] = {LEAF("size", ctl_arenas_bin_size),
                                                    LEAF("nregs", ctl_arenas_bin_nregs),
                                                    LEAF("slab_size", ctl_arenas_bin_slab_size), END};
static const ctl_node_t ctl_arenas_bin_i = NODE(NULL, ctl_arenas_bin_i_nodes);
static const ctl_node_t *ctl_arenas_bin_index(size_t i) { return i < SZ_NBINS ? &ctl_arenas_bin_i : NULL; }

CTL_RO(ctl_arenas_lextent_size, size_t, sz_index2size((unsigned)(SZ_NBINS + mib[2])))
static const ctl_node_t ctl_arenas_lextent_i_nodes[] = {LEAF("size", ctl_arenas_lextent_size), END};
static const ctl_node_t ctl_arenas_lextent_i = NODE(NULL, ctl_arenas_lextent_i_nodes);
static const ctl_node_t *ctl_arenas_lextent_index(size_t i) {
  return i < SZ_NCLASSES - SZ_NBINS ? &ctl_arenas_lextent_i : NULL;
}

/* A decay time as jemalloc takes it: -1 (never) to the longest; anything
 * else is EFAULT. */
static bool ctl_decay_ms_ok(ssize_t ms) { return ms >= -1 && ms <= DECAY_MS_MAX; }

/* arenas.dirty_decay_ms / muzzy_decay_ms: the times new arenas start with. */
static int ctl_arenas_decay_ms(void *oldp, size_t *oldlenp, void *newp, size_t newlen, int k) {
  ssize_t old = __atomic_load_n(&arenas_decay_ms[k], __ATOMIC_RELAXED), v = 0;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (w) {
    if (!ctl_decay_ms_ok(v)) return EFAULT;
    __atomic_store_n(&arenas_decay_ms[k], v, __ATOMIC_RELAXED);
  }
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}
static int ctl_arenas_dirty_decay_ms(CTL_ARGS) {
  (void)mib;
  return ctl_arenas_decay_ms(oldp, oldlenp, newp, newlen, 0);
}
static int ctl_arenas_muzzy_decay_ms(CTL_ARGS) {
  (void)mib;
  return ctl_arenas_decay_ms(oldp, oldlenp, newp, newlen, 1);
}

/* arenas.lookup: the index of the arena a pointer belongs to (newp points
 * to the pointer). A pointer xalloc does not own: EINVAL, as jemalloc. */
static int ctl_arenas_lookup(CTL_ARGS) {
  CTL_UNUSED();
  unsigned ind;
  void *ptr;
  int err = ctl_check_read(oldp, oldlenp, sizeof(ind));
  if (err != 0) return err;
  if (newp == NULL || newlen != sizeof(ptr)) return EINVAL;
  memcpy(&ptr, newp, sizeof(ptr));
  const uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (meta != NULL && *meta == META_ARENA_CHUNK)
    ind = ((const arena_chunk_t *)meta)->arena->ind;
  else if (meta != NULL && *meta == META_HUGE)
    ind = ((const arena_t *)((const extent_node_t *)meta)->arena)->ind;
  else
    return EINVAL;
  return ctl_read(oldp, oldlenp, &ind, sizeof(ind));
}

static const ctl_node_t ctl_arenas_nodes[] = {
    LEAF("narenas", ctl_arenas_narenas), LEAF("create", ctl_arenas_create),
    LEAF("dirty_decay_ms", ctl_arenas_dirty_decay_ms), LEAF("muzzy_decay_ms", ctl_arenas_muzzy_decay_ms),
    LEAF("lookup", ctl_arenas_lookup),
    LEAF("page", ctl_arenas_page), LEAF("quantum", ctl_arenas_quantum),
    LEAF("chunk_size", ctl_arenas_chunk_size), LEAF("tcache_max", ctl_arenas_tcache_max),
    LEAF("nbins", ctl_arenas_nbins), LEAF("nhbins", ctl_arenas_nhbins),
    LEAF("nlextents", ctl_arenas_nlextents), INODE("bin", ctl_arenas_bin_index),
    INODE("lextent", ctl_arenas_lextent_index), END};

/* ---- arena.<i>.* ---- */

/* Purge or decay arena <i>, or every arena. An index with no arena (an
 * automatic arena not made yet, a destroyed one, MALLCTL_ARENAS_DESTROYED)
 * has nothing to purge: 0, as jemalloc. */
static int ctl_arena_purge_decay(const size_t *mib, bool decay) {
  /* A purge gives back what the caches of exited threads hold too (a
   * decay leaves them to their own time: tcache.h). */
  if (!decay) tsd_park_flush();
  if (ctl_arena_kind(mib[1]) == CTL_ALL) {
    unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
      arena_t *a = arena_get(i);
      if (a != NULL) decay ? arena_decay(a) : arena_purge_all(a);
    }
    return 0;
  }
  arena_t *a = ctl_arena_one(mib[1]);
  if (a != NULL) decay ? arena_decay(a) : arena_purge_all(a);
  return 0;
}

static int ctl_arena_purge(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  return ctl_arena_purge_decay(mib, false);
}

static int ctl_arena_decay(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  return ctl_arena_purge_decay(mib, true);
}

/* Whether the index has an arena (all: true; destroyed: whether any arena
 * was destroyed, once the statistics know it). */
static int ctl_arena_initialized(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  bool v;
  switch (ctl_arena_kind(mib[1])) {
  case CTL_ALL: v = true; break;
  case CTL_DESTROYED: v = ctl_destroyed_any(); break;
  default: v = ctl_arena_one(mib[1]) != NULL; break;
  }
  return ctl_read(oldp, oldlenp, &v, sizeof(v));
}

/* The heap check (arena_check): reads true if the arena's metadata is
 * consistent; each inconsistency is printed as one line on stderr. */
static int ctl_arena_check(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  bool ok = true;
  int err = ctl_check_read(oldp, oldlenp, sizeof(ok));
  if (err != 0) return err;
  if (ctl_arena_kind(mib[1]) == CTL_ALL) {
    unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
      arena_t *a = arena_get(i);
      if (a != NULL && !arena_check(a, true)) ok = false;
    }
  } else {
    arena_t *a = ctl_arena_one(mib[1]);
    if (a == NULL) return EFAULT;
    ok = arena_check(a, true);
  }
  return ctl_read(oldp, oldlenp, &ok, sizeof(ok));
}

/* Reset or destroy: explicit arenas only (EFAULT otherwise, as jemalloc).
 * Both wait for a purge in flight on the arena (arena.h, lifecycle). */
static int ctl_arena_reset_destroy(const size_t *mib, bool destroy) {
  arena_t *a = ctl_arena_one(mib[1]);
  if (a == NULL || arena_is_auto(a)) return EFAULT;
  /* The calling thread's cache may hold objects of the arena; other
   * threads' caches must have been flushed by their threads (as jemalloc
   * requires). */
  tsd_t *t = ctl_tsd();
  if (t != NULL) tcache_flush_all(t);
  tsd_park_flush(); /* exited threads' caches may hold its objects */
  prof_arena_reset(a); /* its samples are about to be freed without free() */
  if (!destroy) return arena_reset(a) ? EFAULT : 0;
  /* EFAULT if a thread still uses it (or it is gone already). */
  if (arena_destroy(a)) return EFAULT;
  /* As jemalloc: the figures go to MALLCTL_ARENAS_DESTROYED, the index
   * (and the arena_t) to the next arenas.create. */
  ctl_destroyed_add(a);
  arena_recycle(a);
  return 0;
}

static int ctl_arena_reset(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  return ctl_arena_reset_destroy(mib, false);
}

static int ctl_arena_destroy(CTL_ARGS) {
  CTL_UNUSED();
  READONLY();
  WRITEONLY();
  return ctl_arena_reset_destroy(mib, true);
}

/* Read the arena's hooks table; write one (user hooks for a hooked arena,
 * see chunk_hooks_set). */
static int ctl_arena_extent_hooks(CTL_ARGS) {
  arena_t *a = ctl_arena_one(mib[1]);
  if (a == NULL) return EFAULT;
  extent_hooks_t *old = chunk_hooks_get(&a->chunks), *h;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err != 0) return err;
  if (newp != NULL) {
    if (newlen != sizeof(extent_hooks_t *)) return EINVAL;
    memcpy(&h, newp, sizeof(h));
    err = chunk_hooks_set(&a->chunks, h);
    if (err != 0) return err;
  }
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

/* arena.<i>.dirty_decay_ms / muzzy_decay_ms: one arena's (EFAULT for all
 * arenas or an index with no arena, and for a time out of range, as
 * jemalloc). Setting it purges that kind of page at once (unless -1). */
static int ctl_arena_decay_ms(const size_t *mib, void *oldp, size_t *oldlenp, void *newp, size_t newlen,
                              bool muzzy) {
  ssize_t v = 0;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(ssize_t));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  arena_t *a = ctl_arena_one(mib[1]);
  if (a == NULL || (w && !ctl_decay_ms_ok(v))) return EFAULT;
  ssize_t old = arena_decay_ms_get(a, muzzy);
  if (w) arena_decay_ms_set(a, muzzy, v);
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}
static int ctl_arena_dirty_decay_ms(CTL_ARGS) { return ctl_arena_decay_ms(mib, oldp, oldlenp, newp, newlen, false); }
static int ctl_arena_muzzy_decay_ms(CTL_ARGS) { return ctl_arena_decay_ms(mib, oldp, oldlenp, newp, newlen, true); }

/* arena.<i>.dss: xalloc never uses sbrk. "disabled" reads and writes;
 * jemalloc's other settings cannot be honoured (EFAULT), other strings are
 * EINVAL. */
static int ctl_arena_dss(CTL_ARGS) {
  CTL_UNUSED();
  const char *old = "disabled", *v = NULL;
  bool w;
  int err = ctl_check_read(oldp, oldlenp, sizeof(old));
  if (err == 0) err = ctl_write(&v, sizeof(v), newp, newlen, &w);
  if (err != 0) return err;
  if (ctl_arena_kind(mib[1]) == CTL_DESTROYED || (ctl_arena_kind(mib[1]) == CTL_ONE && ctl_arena_one(mib[1]) == NULL))
    return EFAULT;
  if (w) {
    if (v == NULL) return EINVAL;
    if (strcmp(v, "primary") == 0 || strcmp(v, "secondary") == 0) return EFAULT;
    if (strcmp(v, "disabled") != 0) return EINVAL;
  }
  return ctl_read(oldp, oldlenp, &old, sizeof(old));
}

static const ctl_node_t ctl_arena_i_nodes[] = {LEAF("initialized", ctl_arena_initialized),
                                               LEAF("dirty_decay_ms", ctl_arena_dirty_decay_ms),
                                               LEAF("muzzy_decay_ms", ctl_arena_muzzy_decay_ms),
                                               LEAF("dss", ctl_arena_dss),
                                               LEAF("purge", ctl_arena_purge), LEAF("decay", ctl_arena_decay),
                                               LEAF("extent_hooks", ctl_arena_extent_hooks),
                                               LEAF("check", ctl_arena_check),
                                               LEAF("reset", ctl_arena_reset),
                                               LEAF("destroy", ctl_arena_destroy), END};
static const ctl_node_t ctl_arena_i = NODE(NULL, ctl_arena_i_nodes);
/* Every index in use, arenas.narenas itself (all), MALLCTL_ARENAS_ALL and
 * MALLCTL_ARENAS_DESTROYED. */
static const ctl_node_t *ctl_arena_index(size_t i) {
  return i <= ctl_nindices() || i == CTL_ARENAS_ALL || i == CTL_ARENAS_DESTROYED ? &ctl_arena_i : NULL;
}

/* ---- stats.* (from the snapshot) ---- */

CTL_RO(ctl_stats_allocated, size_t, ctl_totals.allocated)
CTL_RO(ctl_stats_active, size_t, ctl_totals.active)
CTL_RO(ctl_stats_metadata, size_t, ctl_totals.metadata)
CTL_RO(ctl_stats_resident, size_t, ctl_totals.resident)
CTL_RO(ctl_stats_mapped, size_t, ctl_totals.mapped)
CTL_RO(ctl_stats_retained, size_t, ctl_totals.retained)
CTL_RO(ctl_stats_tcache_parked, size_t, ctl_totals.tcache_parked)
CTL_RO(ctl_stats_tcache_parked_bytes, size_t, ctl_totals.tcache_parked_bytes)
CTL_RO(ctl_stats_committed, size_t, ctl_totals.committed)
CTL_RO(ctl_stats_dirty, size_t, ctl_totals.dirty)
CTL_RO(ctl_stats_muzzy, size_t, ctl_totals.muzzy)
CTL_RO(ctl_stats_metadata_thp, size_t, 0) /* metadata never uses huge pages */
CTL_RO(ctl_stats_bg_num_threads, size_t, ctl_bg_nthreads)
CTL_RO(ctl_stats_bg_num_runs, uint64_t, ctl_bg_nruns)
CTL_RO(ctl_stats_bg_run_interval, uint64_t, ctl_bg_interval)
/* stats.guard.*: the guarded pool (guard.h). */
CTL_RO(ctl_sg_slots, size_t, ctl_guard.slots)
CTL_RO(ctl_sg_slot_size, size_t, ctl_guard.slot_size)
CTL_RO(ctl_sg_mapped, size_t, ctl_guard.mapped)
CTL_RO(ctl_sg_in_use, size_t, ctl_guard.in_use)
CTL_RO(ctl_sg_allocated, size_t, ctl_guard.allocated)
CTL_RO(ctl_sg_resident, size_t, ctl_guard.resident)
CTL_RO(ctl_sg_nmalloc, uint64_t, ctl_guard.nmalloc)
CTL_RO(ctl_sg_ndalloc, uint64_t, ctl_guard.ndalloc)
CTL_RO(ctl_sg_exhausted, uint64_t, ctl_guard.nexhausted)
CTL_RO(ctl_sg_faults, uint64_t, ctl_guard.nfaults)
static const ctl_node_t ctl_stats_guard_nodes[] = {
    LEAF("slots", ctl_sg_slots),         LEAF("slot_size", ctl_sg_slot_size), LEAF("mapped", ctl_sg_mapped),
    LEAF("in_use", ctl_sg_in_use),       LEAF("allocated", ctl_sg_allocated), LEAF("resident", ctl_sg_resident),
    LEAF("nmalloc", ctl_sg_nmalloc),     LEAF("ndalloc", ctl_sg_ndalloc),     LEAF("exhausted", ctl_sg_exhausted),
    LEAF("faults", ctl_sg_faults),       END};
static const ctl_node_t ctl_stats_bg_nodes[] = {LEAF("num_threads", ctl_stats_bg_num_threads),
                                                LEAF("num_runs", ctl_stats_bg_num_runs),
                                                LEAF("run_interval", ctl_stats_bg_run_interval), END};

/* The snapshot stats.arenas.<i> reads (arenas.narenas as <i>: the sum). */
static const stats_arena_t *ctl_sa(size_t i) {
  return ctl_astats[ctl_arena_kind(i) == CTL_ALL ? CTL_ARENAS_ALL : i];
}
#define SA (ctl_sa(mib[2]))
CTL_RO(ctl_sa_nthreads, unsigned, SA->nthreads)
CTL_RO(ctl_sa_pactive, size_t, SA->pactive)
CTL_RO(ctl_sa_pdirty, size_t, stats_dirty(SA) >> LG_PAGE)
CTL_RO(ctl_sa_pmuzzy, size_t, stats_muzzy(SA) >> LG_PAGE)
CTL_RO(ctl_sa_resident, size_t, stats_resident(SA))
CTL_RO(ctl_sa_mapped, size_t, SA->mapped)
CTL_RO(ctl_sa_retained, size_t, stats_retained(SA))
CTL_RO(ctl_sa_committed, size_t, SA->mapped - SA->decommitted)
CTL_RO(ctl_sa_npurged, uint64_t, SA->npurged)
CTL_RO(ctl_sa_dss, const char *, "disabled")
/* Decay times of one arena; all and destroyed arenas have none (-1). */
CTL_RO(ctl_sa_dirty_decay_ms, ssize_t, ctl_arena_kind(mib[2]) == CTL_ONE ? SA->dirty_decay_ms : -1)
CTL_RO(ctl_sa_muzzy_decay_ms, ssize_t, ctl_arena_kind(mib[2]) == CTL_ONE ? SA->muzzy_decay_ms : -1)
CTL_RO(ctl_sa_uptime, uint64_t, SA->uptime_ns)
CTL_RO(ctl_sa_metadata_thp, size_t, 0)
CTL_RO(ctl_sa_small_allocated, size_t, SA->allocated_small)
CTL_RO(ctl_sa_small_nmalloc, uint64_t, SA->nmalloc_small)
CTL_RO(ctl_sa_small_ndalloc, uint64_t, SA->ndalloc_small)
/* large.*: everything above the small classes, as jemalloc counts it (its
 * large extents are xalloc's large and huge allocations); huge.*: the part
 * of one chunk or more. */
CTL_RO(ctl_sa_large_allocated, size_t, SA->allocated_large + SA->allocated_huge)
CTL_RO(ctl_sa_large_nmalloc, uint64_t, SA->nmalloc_large + SA->nmalloc_huge)
CTL_RO(ctl_sa_large_ndalloc, uint64_t, SA->ndalloc_large + SA->ndalloc_huge)
CTL_RO(ctl_sa_huge_allocated, size_t, SA->allocated_huge)
CTL_RO(ctl_sa_huge_nmalloc, uint64_t, SA->nmalloc_huge)
CTL_RO(ctl_sa_huge_ndalloc, uint64_t, SA->ndalloc_huge)
CTL_RO(ctl_sa_huge_curhuge, size_t, SA->nhuge)
CTL_RO(ctl_sab_size, size_t, sz_bin_info[mib[4]].reg_size)
CTL_RO(ctl_sab_nregs, uint32_t, sz_bin_info[mib[4]].nregs)
CTL_RO(ctl_sab_slab_size, size_t, (size_t)sz_bin_info[mib[4]].run_pages << LG_PAGE)
CTL_RO(ctl_sab_nmalloc, uint64_t, SA->bins[mib[4]].nmalloc)
CTL_RO(ctl_sab_ndalloc, uint64_t, SA->bins[mib[4]].ndalloc)
CTL_RO(ctl_sab_curregs, size_t, SA->bins[mib[4]].curregs)
CTL_RO(ctl_sab_curslabs, size_t, SA->bins[mib[4]].curruns)
CTL_RO(ctl_sab_nslabs, uint64_t, SA->bins[mib[4]].nruns)
CTL_RO(ctl_sab_nonfull_slabs, size_t, SA->bin_nonfull[mib[4]])
#undef SA

static const ctl_node_t ctl_sab_j_nodes[] = {
    LEAF("size", ctl_sab_size),       LEAF("nregs", ctl_sab_nregs),       LEAF("slab_size", ctl_sab_slab_size),
    LEAF("nmalloc", ctl_sab_nmalloc), LEAF("ndalloc", ctl_sab_ndalloc),   LEAF("curregs", ctl_sab_curregs),
    LEAF("curslabs", ctl_sab_curslabs), LEAF("nslabs", ctl_sab_nslabs),
    LEAF("nonfull_slabs", ctl_sab_nonfull_slabs), END};
static const ctl_node_t ctl_sab_j = NODE(NULL, ctl_sab_j_nodes);
static const ctl_node_t *ctl_sab_index(size_t j) { return j < SZ_NBINS ? &ctl_sab_j : NULL; }

static const ctl_node_t ctl_sa_small_nodes[] = {LEAF("allocated", ctl_sa_small_allocated),
                                                LEAF("nmalloc", ctl_sa_small_nmalloc),
                                                LEAF("ndalloc", ctl_sa_small_ndalloc), END};
static const ctl_node_t ctl_sa_large_nodes[] = {LEAF("allocated", ctl_sa_large_allocated),
                                                LEAF("nmalloc", ctl_sa_large_nmalloc),
                                                LEAF("ndalloc", ctl_sa_large_ndalloc), END};
static const ctl_node_t ctl_sa_huge_nodes[] = {
    LEAF("allocated", ctl_sa_huge_allocated), LEAF("nmalloc", ctl_sa_huge_nmalloc),
    LEAF("ndalloc", ctl_sa_huge_ndalloc), LEAF("curhuge", ctl_sa_huge_curhuge), END};
static const ctl_node_t ctl_sa_i_nodes[] = {
    LEAF("nthreads", ctl_sa_nthreads), LEAF("pactive", ctl_sa_pactive),
    LEAF("pdirty", ctl_sa_pdirty),     LEAF("pmuzzy", ctl_sa_pmuzzy),
    LEAF("resident", ctl_sa_resident), LEAF("mapped", ctl_sa_mapped),
    LEAF("retained", ctl_sa_retained), LEAF("committed", ctl_sa_committed),
    LEAF("npurged", ctl_sa_npurged),
    LEAF("dss", ctl_sa_dss),           LEAF("dirty_decay_ms", ctl_sa_dirty_decay_ms),
    LEAF("muzzy_decay_ms", ctl_sa_muzzy_decay_ms), LEAF("uptime", ctl_sa_uptime),
    LEAF("metadata_thp", ctl_sa_metadata_thp),
    NODE("small", ctl_sa_small_nodes), NODE("large", ctl_sa_large_nodes),
    NODE("huge", ctl_sa_huge_nodes),   INODE("bins", ctl_sab_index), END};
static const ctl_node_t ctl_sa_i = NODE(NULL, ctl_sa_i_nodes);
static const ctl_node_t *ctl_sa_index(size_t i) {
  if (ctl_arena_kind(i) == CTL_ALL) i = CTL_ARENAS_ALL;
  if (i > CTL_ARENAS_DESTROYED || !ctl_arena_live[i] || ctl_astats[i] == NULL) return NULL;
  return &ctl_sa_i;
}

static const ctl_node_t ctl_stats_nodes[] = {
    LEAF("allocated", ctl_stats_allocated), LEAF("active", ctl_stats_active),
    LEAF("metadata", ctl_stats_metadata),   LEAF("resident", ctl_stats_resident),
    LEAF("mapped", ctl_stats_mapped),       LEAF("retained", ctl_stats_retained),
    LEAF("tcache_parked", ctl_stats_tcache_parked), LEAF("tcache_parked_bytes", ctl_stats_tcache_parked_bytes),
    LEAF("committed", ctl_stats_committed),
    LEAF("dirty", ctl_stats_dirty),         LEAF("muzzy", ctl_stats_muzzy),
    LEAF("metadata_thp", ctl_stats_metadata_thp),
    NODE("background_thread", ctl_stats_bg_nodes), NODE("guard", ctl_stats_guard_nodes),
    INODE("arenas", ctl_sa_index), END};

static const ctl_node_t ctl_root_nodes[] = {
    LEAF("version", ctl_version),   LEAF("epoch", ctl_epoch_h),
    LEAF("background_thread", ctl_background_thread),
    LEAF("max_background_threads", ctl_max_background_threads), NODE("config", ctl_config_nodes),
    NODE("opt", ctl_opt_nodes),     NODE("thread", ctl_thread_nodes), NODE("tcache", ctl_tcache_nodes),
    NODE("arenas", ctl_arenas_nodes), INODE("arena", ctl_arena_index), NODE("stats", ctl_stats_nodes),
    NODE("prof", ctl_prof_nodes), END};
static const ctl_node_t ctl_root = NODE(NULL, ctl_root_nodes);

/* Whether the handlers under root child mib0 need ctl_mtx held: those that
 * use the snapshot or the namespace's own buffers. */
static bool ctl_root_locked(size_t mib0) {
  const ctl_node_t *n = &ctl_root_nodes[mib0];
  return n->handler == ctl_epoch_h || n->children == ctl_stats_nodes || n->children == ctl_opt_nodes;
}

/* ---- lookup ---- */

/* The child of node for MIB component c, or NULL. */
static const ctl_node_t *ctl_child(const ctl_node_t *node, size_t c) {
  if (node->index != NULL) return node->index(c);
  if (node->children == NULL) return NULL;
  for (size_t i = 0; node->children[i].name != NULL; i++)
    if (i == c) return &node->children[i];
  return NULL;
}

/*
 * Translate name into mib: at most *depth components (jemalloc: "the lesser
 * of the number of components in name and the input value", so a short
 * *depth gives a partial MIB the caller completes). *depth is set to the
 * number of components translated; returns the node reached, or NULL if a
 * component does not exist or a leaf is followed by more components.
 */
static const ctl_node_t *ctl_lookup(const char *name, size_t *mib, size_t *depth) {
  const ctl_node_t *node = &ctl_root;
  size_t k = 0;
  const char *p = name;
  if (name == NULL || *name == '\0') return NULL;
  while (k < *depth) {
    const char *e = strchr(p, '.');
    size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
    if (len == 0 || node->handler != NULL) return NULL;
    size_t c;
    if (node->index != NULL) {
      c = 0;
      for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9' || c > (SIZE_MAX - 9) / 10) return NULL;
        c = c * 10 + (size_t)(p[i] - '0');
      }
      if (len > 1 && p[0] == '0') return NULL;
    } else {
      if (node->children == NULL) return NULL;
      for (c = 0; node->children[c].name != NULL; c++)
        if (strlen(node->children[c].name) == len && memcmp(node->children[c].name, p, len) == 0) break;
      if (node->children[c].name == NULL) return NULL;
    }
    node = ctl_child(node, c);
    if (node == NULL) return NULL;
    mib[k++] = c;
    if (e == NULL) break;
    if (node->handler != NULL) return NULL; /* more components after a leaf */
    p = e + 1;
  }
  *depth = k;
  return node;
}

static void ctl_init(void) {
  if (!ctl_initialized) {
    ctl_initialized = true;
    ctl_refresh();
  }
}

/* Run node's handler (NULL or not a leaf: ENOENT); ctl_mtx is held on
 * entry and released on return, before the handler runs unless the
 * handler needs it. */
/* Release ctl_mtx; then give back what a refresh's drains freed. */
static void ctl_unlock(void) {
  bool flush = ctl_flush_pending;
  ctl_flush_pending = false;
  xmutex_unlock(&ctl_mtx);
  if (flush) arenas_chunks_flush();
}

static int ctl_call(const ctl_node_t *node, const size_t *mib, void *oldp, size_t *oldlenp, void *newp,
                    size_t newlen) {
  if (node == NULL || node->handler == NULL) {
    ctl_unlock();
    return ENOENT;
  }
  if (ctl_root_locked(mib[0])) {
    int err = node->handler(mib, oldp, oldlenp, newp, newlen);
    ctl_unlock();
    return err;
  }
  ctl_unlock();
  return node->handler(mib, oldp, oldlenp, newp, newlen);
}

int ctl_byname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  size_t mib[CTL_DEPTH_MAX], depth = CTL_DEPTH_MAX;
  xmutex_lock(&ctl_mtx);
  ctl_init();
  const ctl_node_t *node = ctl_lookup(name, mib, &depth);
  return ctl_call(node, mib, oldp, oldlenp, newp, newlen);
}

int ctl_nametomib(const char *name, size_t *mibp, size_t *miblenp) {
  if (mibp == NULL || miblenp == NULL) return EINVAL;
  size_t mib[CTL_DEPTH_MAX], depth = *miblenp < CTL_DEPTH_MAX ? *miblenp : CTL_DEPTH_MAX;
  xmutex_lock(&ctl_mtx);
  ctl_init();
  const ctl_node_t *node = ctl_lookup(name, mib, &depth);
  ctl_unlock();
  if (node == NULL) return ENOENT;
  memcpy(mibp, mib, depth * sizeof(size_t));
  *miblenp = depth;
  return 0;
}

int ctl_bymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp, size_t newlen) {
  if (mib == NULL || miblen == 0 || miblen > CTL_DEPTH_MAX) return ENOENT;
  xmutex_lock(&ctl_mtx);
  ctl_init();
  const ctl_node_t *node = &ctl_root;
  for (size_t k = 0; k < miblen && node != NULL; k++) node = node->handler != NULL ? NULL : ctl_child(node, mib[k]);
  return ctl_call(node, mib, oldp, oldlenp, newp, newlen);
}

void ctl_prefork(void) {
  xmutex_prefork(&ctl_mtx);
  xmutex_prefork(&ctl_destroyed_mtx);
}
void ctl_postfork_parent(void) {
  xmutex_postfork_parent(&ctl_destroyed_mtx);
  xmutex_postfork_parent(&ctl_mtx);
}
void ctl_postfork_child(void) {
  xmutex_postfork_child(&ctl_destroyed_mtx);
  xmutex_postfork_child(&ctl_mtx);
}
