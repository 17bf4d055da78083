/* decay: the smoothstep decay curve (see decay.h). */
#include <time.h>

#include "xalloc/internal/decay.h"
#include "xalloc/internal/opts.h"

uint64_t decay_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* smoothstep((i + 1) / N) = 3x^2 - 2x^3, in fixed point, computed exactly
 * in integers: (3 (i+1)^2 N - 2 (i+1)^3) / N^3. */
uint64_t decay_h(unsigned i) {
  uint64_t x = (uint64_t)i + 1, n = DECAY_NSTEPS;
  uint64_t num = 3 * x * x * n - 2 * x * x * x;
  return (num << DECAY_H_SHIFT) / (n * n * n);
}

void decay_init(decay_t *d, ssize_t time_ms, uint64_t now) {
  memset(d, 0, sizeof(*d));
  d->time_ms = time_ms;
  if (time_ms > 0) {
    d->interval_ns = (uint64_t)time_ms * 1000000u / DECAY_NSTEPS;
    if (d->interval_ns == 0) d->interval_ns = 1;
  }
  d->epoch_ns = now;
  /* No reuse window when the curve never purges (-1) or purges at once. */
  if (time_ms > 0 && opt_reuse_window_ms > 0) {
    d->reuse_step_ns = (uint64_t)opt_reuse_window_ms * 1000000u / DECAY_REUSE_STEPS;
    if (d->reuse_step_ns == 0) d->reuse_step_ns = 1;
  }
  d->reuse_epoch_ns = now;
  /* (removed 0, every low 0: nothing was there before now.) */
}

size_t decay_idle(decay_t *d, uint64_t now, size_t npages) {
  if (d->reuse_step_ns == 0) return 0;
  decay_note(d, npages);
  if (now < d->reuse_epoch_ns) d->reuse_epoch_ns = now;
  uint64_t steps = (now - d->reuse_epoch_ns) / d->reuse_step_ns;
  if (steps == 0) return 0;
  const unsigned S = DECAY_REUSE_STEPS;
  size_t *low = d->reuse_low, cur = low[S];
  /* The current step closes; the steps that passed with no call get its
   * low too (the lowest since it began: it may be lower than theirs, so
   * this purges less, never more). */
  unsigned k = steps > S ? S : (unsigned)steps;
  memmove(low, low + k, (S + 1 - k) * sizeof(size_t));
  for (unsigned i = S + 1 - k; i < S; i++) low[i] = cur;
  low[S] = npages + d->removed;
  d->reuse_epoch_ns += steps * d->reuse_step_ns;
  size_t m = low[0];
  for (unsigned i = 1; i < S; i++)
    if (low[i] < m) m = low[i];
  size_t idle = m > d->removed ? m - d->removed : 0;
  return idle < npages ? idle : npages;
}

uint64_t decay_ns_until_step(const decay_t *d, uint64_t now) {
  if (d->reuse_step_ns == 0) return UINT64_MAX;
  uint64_t end = d->reuse_epoch_ns + d->reuse_step_ns;
  return end > now ? end - now : 0;
}

void decay_reset(decay_t *d, ssize_t time_ms, uint64_t now, size_t npages) {
  decay_init(d, time_ms, now);
  if (time_ms > 0) {
    /* An epoch that ends now, with nothing in the backlog: the pages there
     * are now add nothing (nunpurged), so the limit is 0. */
    d->epoch_ns = now >= d->interval_ns ? now - d->interval_ns : 0;
    d->nunpurged = npages;
  }
}

size_t decay_limit(const decay_t *d) {
  if (d->time_ms < 0) return SIZE_MAX;
  if (d->time_ms == 0) return 0;
  uint64_t sum = 0;
  for (unsigned i = 0; i < DECAY_NSTEPS; i++) sum += (uint64_t)d->backlog[i] * decay_h(i);
  return (size_t)(sum >> DECAY_H_SHIFT);
}

bool decay_advance(decay_t *d, uint64_t now, size_t npages, size_t *limit) {
  if (d->time_ms < 0) return false;
  if (d->time_ms == 0) {
    *limit = 0;
    return npages != 0;
  }
  if (now < d->epoch_ns) d->epoch_ns = now; /* never happens with a monotonic clock */
  if (now - d->epoch_ns < d->interval_ns) return false;
  uint64_t nadvance = (now - d->epoch_ns) / d->interval_ns;
  if (nadvance >= DECAY_NSTEPS) {
    memset(d->backlog, 0, sizeof(d->backlog));
  } else {
    unsigned k = (unsigned)nadvance;
    memmove(d->backlog, d->backlog + k, (DECAY_NSTEPS - k) * sizeof(size_t));
    memset(d->backlog + DECAY_NSTEPS - k, 0, k * sizeof(size_t));
  }
  d->backlog[DECAY_NSTEPS - 1] = npages > d->nunpurged ? npages - d->nunpurged : 0;
  d->epoch_ns += nadvance * d->interval_ns;
  d->nunpurged = npages;
  *limit = decay_limit(d);
  return true;
}

void decay_purged(decay_t *d, size_t npages) { d->nunpurged = npages; }

uint64_t decay_ns_until_epoch(const decay_t *d, uint64_t now) {
  if (d->time_ms < 0) return UINT64_MAX;
  if (d->time_ms == 0) return 0;
  uint64_t end = d->epoch_ns + d->interval_ns;
  return end > now ? end - now : 0;
}
