/* decay: the smoothstep decay curve (see decay.h). */
#include <time.h>

#include "xalloc/internal/decay.h"

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
