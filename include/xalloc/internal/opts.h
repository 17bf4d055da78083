/*
 * opts: the one table of runtime options. Each row is
 *   X(kind, name, default, min, max, help)
 * with kind one of BOOL, UINT (unsigned), SSIZE (ssize_t). The table
 * generates the opt_<name> globals, the parser (conf.c), the statistics
 * header, and the table in doc/TUNING.md. Every layer may read opt_*
 * values; only conf.c writes them, once, at initialization.
 */
#ifndef XALLOC_INTERNAL_OPTS_H
#define XALLOC_INTERNAL_OPTS_H

#include <sys/types.h>

#include "xalloc/internal/util.h"

#define XALLOC_OPTIONS(X)                                                                      \
  X(BOOL, abort, true, 0, 1, "abort after reporting a double, invalid or mis-sized free")     \
  X(BOOL, abort_conf, false, 0, 1, "abort after reporting an invalid option")                 \
  X(UINT, lg_chunk, 21, 21, 30, "log2 of the chunk size (default 2 MiB)")                     \
  X(UINT, narenas, 0, 0, 4096, "arenas threads are spread over (0: four per CPU)")            \
  X(BOOL, tcache, true, 0, 1, "per-thread caches of small and large objects")                 \
  X(UINT, tcache_max, 32768, 0, 1048576, "largest size (bytes) kept in thread caches")       \
  X(BOOL, stats_print, false, 0, 1, "print statistics to stderr at exit")

#define OPT_CTYPE_BOOL bool
#define OPT_CTYPE_UINT unsigned
#define OPT_CTYPE_SSIZE ssize_t
#define OPT_DECLARE(kind, name, def, min, max, help) extern OPT_CTYPE_##kind opt_##name;
XALLOC_OPTIONS(OPT_DECLARE)
#undef OPT_DECLARE

#endif
