/*
 * opts: the one table of runtime options. Each row is
 *   X(kind, name, default, min, max, choices, help)
 * with kind one of BOOL, UINT (unsigned), SSIZE (ssize_t), ENUM (unsigned
 * index into choices, a '|'-separated list) or STR (a string of at most
 * CONF_STR_MAX - 1 bytes). The table
 * generates the opt_<name> globals, the parser (conf.c), the statistics
 * header, and the table in doc/TUNING.md. Every layer may read opt_*
 * values; only conf.c writes them, once, at initialization.
 */
#ifndef XALLOC_INTERNAL_OPTS_H
#define XALLOC_INTERNAL_OPTS_H

#include <sys/types.h>

#include "xalloc/internal/util.h"

#define XALLOC_OPTIONS(X)                                                                          \
  X(BOOL, abort, true, 0, 1, NULL, "abort after reporting a double, invalid or mis-sized free")       \
  X(BOOL, abort_conf, false, 0, 1, NULL, "abort after reporting an invalid option")                   \
  X(UINT, lg_chunk, 21, 21, 30, NULL, "log2 of the chunk size (default 2 MiB)")                       \
  X(UINT, narenas, 0, 0, 4096, NULL, "arenas threads are spread over (0: four per CPU)")              \
  X(UINT, narenas_large, 0, 0, 4096, NULL,                                                            \
    "arenas that serve the automatic arenas' blocks above tcache_max (0: one per CPU)")               \
  X(BOOL, tcache, true, 0, 1, NULL, "per-thread caches of small and large objects")                   \
  X(UINT, tcache_max, 32768, 0, 1048576, NULL, "largest size (bytes) kept in thread caches")         \
  X(UINT, tcache_park, 8, 0, 4096, NULL,                                                             \
    "caches of exited threads kept (up to 8 MiB of objects) for new threads to adopt; 0 none")        \
  X(SSIZE, dirty_decay_ms, 10000, -1, 86400000, NULL,                                                 \
    "ms before freed pages are purged lazily (MADV_FREE); 0 at once, -1 never")                       \
  X(SSIZE, muzzy_decay_ms, 10000, -1, 86400000, NULL,                                                 \
    "ms before lazily purged pages are purged for good (MADV_DONTNEED); 0 at once, -1 never")         \
  X(SSIZE, reuse_window_ms, 600, 0, 86400000, NULL,                                                 \
    "ms a freed page may stay unused before it is purged for good, within the decay times; 0: decay only") \
  X(BOOL, retain, true, 0, 1, NULL, "keep freed chunk memory mapped (purged) instead of unmapping")  \
  X(UINT, retain_grow_k, 2, 1, 64, NULL, "reservations of one size before the reservation size doubles") \
  X(ENUM, commit, 0, 0, 2, "auto|on|off",                                                          \
    "decommit unused chunk memory (strict overcommit); auto: when vm.overcommit_memory is 2")     \
  X(BOOL, background_thread, false, 0, 1, NULL, "purge from a background thread while idle")         \
  X(ENUM, thp, 0, 0, 2, "default|always|never", "transparent huge pages for chunk memory")          \
  X(BOOL, junk, false, 0, 1, NULL, "fill new memory with 0xa5 and freed memory with 0x5a")            \
  X(BOOL, zero, false, 0, 1, NULL, "zero all new memory")                                            \
  X(BOOL, stats_print, false, 0, 1, NULL, "print statistics to stderr at exit")                       \
  X(STR, stats_print_opts, "", 0, 0, NULL, "options for the statistics printed at exit (as malloc_stats_print)") \
  X(UINT, stats_interval_ms, 0, 0, 86400000, NULL,                                                     \
    "write a line of memory figures (RSS, dirty, muzzy, retained, ...) every this many ms; 0 off")   \
  X(STR, stats_log, "", 0, 0, NULL, "file the stats_interval_ms lines are appended to (empty: stderr)") \
  X(BOOL, prof, false, 0, 1, NULL, "heap profiler: sample allocations with their call stacks (doc/PROFILING.md)") \
  X(BOOL, prof_active, true, 0, 1, NULL, "profiler sampling on at start (mallctl prof.active turns it on and off)") \
  X(BOOL, prof_thread_active_init, true, 0, 1, NULL, "new threads sample (thread.prof.active)")  \
  X(STR, prof_prefix, "jeprof", 0, 0, NULL, "profile dumps are PREFIX.PID.SEQ.KIND.heap")            \
  X(UINT, lg_prof_sample, 19, 0, 62, NULL, "log2 of the mean bytes allocated between two samples (19: 512 KiB)") \
  X(SSIZE, lg_prof_interval, -1, -1, 62, NULL, "dump a profile every 2^N bytes allocated; -1 never")    \
  X(BOOL, prof_gdump, false, 0, 1, NULL, "dump a profile each time mapped memory reaches a new high")     \
  X(BOOL, prof_final, false, 0, 1, NULL, "dump a profile at exit")                                    \
  X(BOOL, prof_leak, false, 0, 1, NULL, "report the sampled allocations still live at exit, by call stack") \
  X(BOOL, prof_accum, false, 0, 1, NULL, "profiles also count every sampled allocation ever made, freed or not") \
  X(UINT, guard_sample, 0, 0, 1000000000, NULL,                                                      \
    "serve one allocation in N (random) from the guarded pool (doc/SAFETY.md); 0 off")               \
  X(UINT, guard_max, 4096, 1, 65536, NULL, "largest size (bytes) the guarded pool serves")              \
  X(UINT, guard_slots, 256, 1, 16384, NULL, "slots of the guarded pool (guarded blocks live at once, plus the freed ones kept inaccessible)") \
  X(ENUM, guard_underflow, 0, 0, 2, "off|alternate|always",                                          \
    "guarded blocks placed against the start of their slot, to catch underflows: never, every other one, all")

#define OPT_CTYPE_BOOL bool
#define OPT_CTYPE_UINT unsigned
#define OPT_CTYPE_SSIZE ssize_t
#define OPT_CTYPE_ENUM unsigned
#define OPT_CTYPE_STR const char *
#define OPT_DECLARE(kind, name, def, min, max, choices, help) extern OPT_CTYPE_##kind opt_##name;
XALLOC_OPTIONS(OPT_DECLARE)
#undef OPT_DECLARE

/* Values of the thp option. */
enum { THP_DEFAULT = 0, THP_ALWAYS = 1, THP_NEVER = 2 };
/* Values of the commit option. */
enum { COMMIT_AUTO = 0, COMMIT_ON = 1, COMMIT_OFF = 2 };
/* Values of the guard_underflow option. */
enum { GUARD_UNDERFLOW_OFF = 0, GUARD_UNDERFLOW_ALTERNATE = 1, GUARD_UNDERFLOW_ALWAYS = 2 };

#endif
