/*
 * prof: the sampling heap profiler (prof:true; doc/PROFILING.md). Sampled
 * allocations (sample.h) are recorded with their call stacks; dumps are
 * jemalloc's heap_v2 text format, read by jeprof and bin/xalloc-prof.
 */
#ifndef XALLOC_INTERNAL_PROF_H
#define XALLOC_INTERNAL_PROF_H

#include "xalloc/internal/tcache.h"

/* Mean bytes between two samples: 2^lg_prof_sample (prof.lg_sample). */
extern uint64_t prof_sample_mean_bytes;
static inline uint64_t prof_sample_mean(void) { return __atomic_load_n(&prof_sample_mean_bytes, __ATOMIC_RELAXED); }
/* prof.active and the thread's thread.prof.active. */
bool prof_sampling(const tsd_t *t);

bool prof_boot(void);
/* After initialization, malloc usable: load the unwinder, register the
 * exit dump. */
void prof_boot_late(void);
/* Record ptr (usize bytes, just allocated by the calling thread) as a
 * sample, with the calling thread's stack. No lock held. */
void prof_sample(void *ptr, size_t usize);
#endif
