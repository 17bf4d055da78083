/*
 * prof: the sampling heap profiler (prof:true; doc/PROFILING.md).
 *
 * Allocations are sampled by bytes (sample.h): on average one per
 * 2^lg_prof_sample bytes allocated, each with its call stack. A sample is
 * a record keyed by its address, in a striped hash table; its call stack
 * is a context, shared by every sample with the same stack, which counts
 * the live samples (and, with prof_accum, every sample ever made). Dumps
 * are jemalloc's heap_v2 text format (raw sampled counts; readers unbias
 * them as jeprof does), so jeprof and bin/xalloc-prof read them.
 *
 * Freeing a sample must remove its record, with no cost on the free fast
 * path: the page word (rtree.h) of a page holding a sample is set to 0
 * (the word of pages no fast free may touch), so every free in that page
 * takes the slow path, where prof_free_check finds the record; the word
 * comes back when the page's last sample is freed. Large and huge
 * allocations are always freed on the slow path.
 */
#ifndef XALLOC_INTERNAL_PROF_H
#define XALLOC_INTERNAL_PROF_H

#include "xalloc/internal/arena.h"
#include "xalloc/internal/tcache.h"

/* Mean bytes between two samples: 2^lg_prof_sample (prof.lg_sample). */
extern uint64_t prof_sample_mean_bytes;
static inline uint64_t prof_sample_mean(void) { return __atomic_load_n(&prof_sample_mean_bytes, __ATOMIC_RELAXED); }
/* Live samples (records) in the table. */
extern uint64_t prof_nlive;
static inline bool prof_live_any(void) { return __atomic_load_n(&prof_nlive, __ATOMIC_RELAXED) != 0; }

/* prof.active and the calling thread's thread.prof.active. */
bool prof_sampling(void);

bool prof_boot(void);
/* After initialization, malloc usable: load the unwinder, register the
 * exit dump and leak report. */
void prof_boot_late(void);
/* Record ptr (usize bytes, just allocated by the calling thread) as a
 * sample, with the calling thread's stack. No lock held. */
void prof_sample(void *ptr, size_t usize);
/* ptr is being freed: if it is a sample, forget it (and give its page
 * its word back). */
void prof_free_slow(const void *ptr);
static inline void prof_free_check(const void *ptr) {
  if (unlikely(prof_live_any())) prof_free_slow(ptr);
}
/* ptr was resized in place to usize: if it is a sample, its record
 * takes the new size (and the page word the resize wrote is saved, and
 * set to 0 again). */
void prof_resize_slow(const void *ptr, size_t usize);
static inline void prof_resize_check(const void *ptr, size_t usize) {
  if (unlikely(prof_live_any())) prof_resize_slow(ptr, usize);
}
/* ptr is a live sample (tests, diagnostics). */
bool prof_is_sample(const void *ptr);
/* Arena a is about to be reset or destroyed: forget its samples. */
void prof_arena_reset(arena_t *a);

/* Allocated bytes counted toward lg_prof_interval and the mapped-memory
 * high of prof_gdump: the sampler reports every batch (sample.c); when a
 * dump is due, SAMPLE_PROF_DUMP is set and prof_due_dump makes it (no
 * lock held). */
bool prof_count_bytes(uint64_t bytes);
void prof_due_dump(void);

/* The mallctl interface (ctl.c). Each returns 0 or an errno value. */
int prof_ctl_dump(const char *filename); /* NULL: the next PREFIX.PID.SEQ.mN.heap */
int prof_ctl_reset(size_t lg_sample);    /* (size_t)-1: keep the rate */
int prof_ctl_active(bool *oldp, const bool *newp);
int prof_ctl_gdump(bool *oldp, const bool *newp);
int prof_ctl_thread_active_init(bool *oldp, const bool *newp);
int prof_ctl_thread_active(bool *oldp, const bool *newp);
int prof_ctl_thread_name(const char **oldp, const char *const *newp);
uint64_t prof_interval_bytes(void); /* prof.interval: 0 if off */

/* Fork: the profiler's locks. */
void prof_prefork(void);
void prof_postfork_parent(void);
void prof_postfork_child(void);
#endif
