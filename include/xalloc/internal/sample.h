/*
 * sample: which allocations the heap profiler (prof.h) records and which
 * the guarded pool (guard.h) serves, at no cost on the fast paths.
 *
 * The thread cache's pop counters already leave the fast path once per
 * 256 pops of a bin (the carry that runs a GC step). While sampling is on
 * (prof:true or guard_sample > 0), each carry sets the bin's counter to a
 * random value, so that the next carry comes after k pops, k random in
 * 1..kmax: every pop is equally likely to be a carry, whatever the
 * pattern of the program's allocations. At a carry the k pops of the batch
 * are counted against the thread's countdowns (k x the class size bytes
 * for the profiler, k allocations for the guard), and when one runs out,
 * the allocation that carried is the sample. kmax is chosen so that a
 * batch holds at most 1/32 of the mean sampling interval: for the
 * profiler, the chance that an object of usize bytes is sampled is then
 * 1 - exp(-usize / 2^lg_prof_sample) to within 1.5 %, as with jemalloc's
 * per-allocation countdown (what jeprof's scaling assumes). Allocations
 * not served by a bin (large and huge ones, tcache:false) are counted
 * one by one. GC steps keep their rate: one per 256 pops of the thread.
 *
 * Countdowns are exponential (profiler: mean 2^lg_prof_sample bytes) or
 * geometric (guard: mean guard_sample allocations), from a per-thread
 * random state.
 */
#ifndef XALLOC_INTERNAL_SAMPLE_H
#define XALLOC_INTERNAL_SAMPLE_H

#include "xalloc/internal/tcache.h"

/* What t->sample_pending asks for: record the allocation in the heap
 * profile, serve it from the guarded pool, make a profile dump that is due. */
enum { SAMPLE_PROF = 1, SAMPLE_GUARD = 2, SAMPLE_PROF_DUMP = 4 };

/* prof:true or guard_sample > 0: carries are randomised (set once, at
 * initialization, before any thread cache exists). */
extern bool sample_on;

void sample_boot(void);
/* Seed t's state (a new tsd or explicit cache). */
void sample_tsd_init(tsd_t *t);
/*
 * Bin ind of t carried after k pops: count them against t's countdowns
 * (setting t->sample_pending if the pop that carried is a sample) and
 * return the counter's next start value (256 - the next batch's length).
 */
unsigned sample_carry(tsd_t *t, unsigned ind, unsigned k);
/* One allocation of usize bytes not served by a bin. */
void sample_direct(tsd_t *t, size_t usize);
/* (What a pending sample gets is the API layer's: xa_sample_take in
 * xalloc.c serves it from the guarded pool and/or records it in the heap
 * profile.) */
/* exp(-x) for x >= 0 (no libm): the profiler's unbiasing,
 * 1 / (1 - exp(-usize / 2^lg_prof_sample)). */
double sample_exp_neg(double x);
#endif
