/*
 * decay: when freed pages are purged. A decay_t follows one kind of page
 * (dirty, or muzzy) of one arena or chunk arena, and says how many of them
 * may be kept now: pages freed in an epoch are purged progressively over
 * the decay time, on a smoothstep curve (like jemalloc's), not all at once
 * when the time is up.
 *
 * Time is cut into DECAY_NSTEPS epochs of time_ms / DECAY_NSTEPS. backlog[i]
 * holds the pages that became unpurged in an epoch, newest last; the number
 * of pages that may be kept is the sum of backlog[i] * h(i), where h falls
 * from 1 (this epoch) to 0 (time_ms ago) along a smoothstep. Purging
 * happens only when an epoch ends, so a caller asking more often than once
 * per epoch does nothing (and pays one clock read).
 *
 * time_ms 0: keep nothing (purge at once); -1: keep everything (never).
 * A decay_t is protected by the lock of the structure that holds it.
 *
 * The curve is an upper bound. Within it, pages the program does not reuse
 * go earlier: the reuse window (opt reuse_window_ms, W) is cut into
 * DECAY_REUSE_STEPS steps, and each step keeps the low-water mark of the
 * pages there were, counted as v = pages + removed (removed: the pages
 * purged so far, so that a purge does not look like reuse). The owner
 * notes the count each time it takes pages for an allocation
 * (decay_note); at a step's end, the pages that were there through the
 * whole last window and are still there (the lowest v of its steps, less
 * removed) were not asked for in W: decay_idle returns them, and the owner
 * purges them for good. A working set that keeps being reused dips to its
 * low every window and stays; memory freed and left alone goes between W
 * and W + W / DECAY_REUSE_STEPS after its free (given a decay check then:
 * the slow paths, the thread caches' GC steps, or the background thread).
 */
#ifndef XALLOC_INTERNAL_DECAY_H
#define XALLOC_INTERNAL_DECAY_H

#include <sys/types.h>

#include "xalloc/internal/util.h"

#define DECAY_NSTEPS 64
#define DECAY_REUSE_STEPS 4

typedef struct {
  ssize_t time_ms;
  uint64_t interval_ns; /* length of an epoch */
  uint64_t epoch_ns;    /* start of the current epoch */
  size_t nunpurged;     /* pages at the last epoch end, after purging */
  size_t backlog[DECAY_NSTEPS];
  /* The reuse window: step length (0: off), start of the current step,
   * pages removed so far, the low-water v of the last DECAY_REUSE_STEPS
   * steps and of the current one (last). */
  uint64_t reuse_step_ns;
  uint64_t reuse_epoch_ns;
  size_t removed;
  size_t reuse_low[DECAY_REUSE_STEPS + 1];
} decay_t;

/* npages pages of the kind are left after an allocation took some. */
static inline void decay_note(decay_t *d, size_t npages) {
  size_t v = npages + d->removed;
  if (v < d->reuse_low[DECAY_REUSE_STEPS]) d->reuse_low[DECAY_REUSE_STEPS] = v;
}
/* npages pages of the kind were taken out to be purged (or unmapped). */
static inline void decay_removed(decay_t *d, size_t npages) { d->removed += npages; }
/* At the end of a reuse step (else 0): the pages of the kind, of the
 * npages there are now, that stayed unused through the whole window: the
 * owner purges that many (oldest first) for good. */
size_t decay_idle(decay_t *d, uint64_t now, size_t npages);
/* ns from now until d's current reuse step ends; UINT64_MAX if off. */
uint64_t decay_ns_until_step(const decay_t *d, uint64_t now);

/* Monotonic clock, nanoseconds. */
uint64_t decay_now_ns(void);
void decay_init(decay_t *d, ssize_t time_ms, uint64_t now);
/* Give d the decay time time_ms, the npages pages of its kind there are
 * now counting as fully decayed: the next decay_advance lets none of them
 * stay (unless time_ms is -1). */
void decay_reset(decay_t *d, ssize_t time_ms, uint64_t now, size_t npages);
/* The longest decay time (ms) a decay_t takes: its epoch length in ns
 * must fit in 64 bits. */
#define DECAY_MS_MAX ((ssize_t)(INT64_MAX / 1000000))
/*
 * Advance d to now, npages being the pages of its kind that exist now.
 * Returns true if an epoch ended (or time_ms is 0), with *limit the pages
 * that may be kept; the caller purges the oldest beyond that and then
 * calls decay_purged with what is left. false: nothing to do now.
 */
bool decay_advance(decay_t *d, uint64_t now, size_t npages, size_t *limit);
void decay_purged(decay_t *d, size_t npages);
/* Pages that may be kept at d's last epoch (for tests and stats). */
size_t decay_limit(const decay_t *d);
/* ns from now until d's next epoch ends; UINT64_MAX if it never purges. */
uint64_t decay_ns_until_epoch(const decay_t *d, uint64_t now);
/* h(i) for i in [0, DECAY_NSTEPS), fixed point, 1.0 = 1 << DECAY_H_SHIFT. */
#define DECAY_H_SHIFT 24
uint64_t decay_h(unsigned i);
#endif
