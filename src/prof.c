/* prof: the sampling heap profiler (prof.h). */
#include "xalloc/internal/opts.h"
#include "xalloc/internal/prof.h"

uint64_t prof_sample_mean_bytes;

bool prof_sampling(const tsd_t *t) {
  (void)t;
  return false;
}

bool prof_boot(void) {
  prof_sample_mean_bytes = (uint64_t)1 << opt_lg_prof_sample;
  return false;
}

void prof_boot_late(void) {}

void prof_sample(void *ptr, size_t usize) {
  (void)ptr;
  (void)usize;
}
