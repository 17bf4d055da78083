/*
 * guard: the guarded pool (guard_sample, guard_max; doc/SAFETY.md).
 * Sampled allocations (sample.h) of at most guard_max bytes are served
 * from slots with an inaccessible page after (or before) them.
 */
#ifndef XALLOC_INTERNAL_GUARD_H
#define XALLOC_INTERNAL_GUARD_H

#include "xalloc/internal/util.h"

/* guard_sample > 0 and the pool is set up. */
extern bool guard_on;
/* The largest size served (opt_guard_max). */
extern size_t guard_max;

bool guard_boot(void);
/* A guarded block of usize bytes (aligned to alignment if not 0, zeroed
 * if zero), or NULL: the caller serves it normally. */
void *guard_alloc(size_t usize, size_t alignment, bool zero);
#endif
