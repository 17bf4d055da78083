/* sample: the countdowns that choose profiled and guarded allocations (sample.h). */
#include <time.h>

#include "xalloc/internal/guard.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/prof.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/tag.h"

bool sample_on;

void sample_boot(void) { sample_on = opt_prof || opt_guard_sample != 0; }

/* A uniform 64-bit random number from t's state (xorshift64*). */
static uint64_t sample_random(tsd_t *t) {
  uint64_t x = t->sample_rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->sample_rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* -ln(u) for u uniform in (0, 1], from 53 random bits: the exponential
 * countdowns (no libm). */
static double sample_neg_log(uint64_t r) {
  /* u in (0, 1]: 53 bits, never 0. */
  double u = (double)((r >> 11) + 1) * (1.0 / 9007199254740992.0);
  /* u = m * 2^e, m in [1, 2): ln u = e ln 2 + ln m, and
   * ln m = 2 atanh(z), z = (m - 1) / (m + 1) <= 1/3. */
  uint64_t bits;
  memcpy(&bits, &u, sizeof(bits));
  int e = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((1ULL << 52) - 1)) | (1023ULL << 52);
  double m;
  memcpy(&m, &bits, sizeof(m));
  double z = (m - 1) / (m + 1), z2 = z * z;
  double lnm = 2 * z * (1 + z2 * (1.0 / 3 + z2 * (1.0 / 5 + z2 * (1.0 / 7 + z2 * (1.0 / 9 + z2 * (1.0 / 11 + z2 / 13))))));
  double ln = (double)e * 0.69314718055994530942 + lnm;
  return -ln;
}

double sample_exp_neg(double x) {
  if (!(x > 0)) return 1;
  if (x > 700) return 0;
  /* x = n ln 2 + r, 0 <= r < ln 2: exp(-x) = 2^-n exp(-r). */
  const double ln2 = 0.69314718055994530942;
  int n = (int)(x / ln2);
  double r = x - n * ln2, term = 1, sum = 1;
  for (int i = 1; i < 20; i++) {
    term *= -r / i;
    sum += term;
  }
  uint64_t bits = (uint64_t)(1023 - n) << 52; /* 2^-n, n < 1010 */
  double scale;
  memcpy(&scale, &bits, sizeof(scale));
  return sum * scale;
}

/* The next countdowns: exponential with mean 2^lg_prof_sample bytes, and
 * geometric with mean guard_sample allocations (at least 1). */
static int64_t sample_next_bytes(tsd_t *t) {
  double v = sample_neg_log(sample_random(t)) * (double)prof_sample_mean();
  return v >= 9.2e18 ? INT64_MAX : (int64_t)v;
}

static int64_t sample_next_count(tsd_t *t) {
  if (opt_guard_sample <= 1) return 1;
  double v = sample_neg_log(sample_random(t)) * (double)opt_guard_sample;
  return v >= 9.2e18 ? INT64_MAX : (int64_t)v + 1;
}

/* The length of the next batch of bin ind's pops: at most 1/32 of each
 * mean interval, 1..256 pops, random. */
static unsigned sample_next_start(tsd_t *t, unsigned ind);

void sample_tsd_init(tsd_t *t) {
  uint64_t seed = (uintptr_t)t ^ tag_key;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seed ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL;
  t->sample_rng = seed | 1;
  t->sample_pending = 0;
  t->sample_gc = 0;
  t->sample_bytes = sample_on ? sample_next_bytes(t) : INT64_MAX;
  t->sample_count = sample_on ? sample_next_count(t) : INT64_MAX;
  if (!sample_on) return;
  /* Each bin starts a batch of the right length for the rate now (a batch
   * of 256 pops of a large class would hold many mean intervals, and give
   * one sample). The bins' pop counts stay what they were. */
  for (unsigned i = 0; i < tcache_nhbins; i++) {
    tcache_bin_t *b = &t->bins[i];
    unsigned start = sample_next_start(t, i);
    t->npop_base[i] += (uint64_t)b->npop - start;
    b->npop = b->npop_start = (uint8_t)start;
  }
}

/* Whether the profiler samples on t now (prof.active, thread.prof.active). */
static inline bool sample_prof(void) { return opt_prof && prof_sampling(); }

static void sample_count(tsd_t *t, size_t usize, uint64_t n) {
  unsigned what = 0;
  if (sample_prof()) {
    uint64_t bytes = usize * n;
    if (unlikely(prof_count_bytes(bytes))) what |= SAMPLE_PROF_DUMP;
    if ((uint64_t)t->sample_bytes <= bytes) {
      what |= SAMPLE_PROF;
      t->sample_bytes = sample_next_bytes(t);
    } else {
      t->sample_bytes -= (int64_t)bytes;
    }
  }
  if (guard_on) {
    if ((uint64_t)t->sample_count > n) {
      t->sample_count -= (int64_t)n;
    } else if (usize <= guard_max) {
      what |= SAMPLE_GUARD;
      t->sample_count = sample_next_count(t);
    } else {
      t->sample_count = 0; /* due: the next allocation small enough */
    }
  }
  t->sample_pending = (uint8_t)what;
}

/* The counter's start value for bin ind's next batch: 256 - its length,
 * at most 1/32 of each mean interval, 1..256 pops. */
static unsigned sample_next_start(tsd_t *t, unsigned ind) {
  size_t usize = sz_index2size(ind);
  uint64_t kmax = 256;
  if (sample_prof()) {
    uint64_t m = (prof_sample_mean() >> 5) / usize;
    if (m < kmax) kmax = m;
  }
  if (guard_on) {
    uint64_t m = opt_guard_sample >> 5;
    if (m < kmax) kmax = m;
  }
  if (kmax == 0) kmax = 1;
  uint64_t next = 1 + sample_random(t) % kmax;
  return (unsigned)(256 - next);
}

unsigned sample_carry(tsd_t *t, unsigned ind, unsigned k) {
  sample_count(t, sz_index2size(ind), k);
  return sample_next_start(t, ind);
}

void sample_direct(tsd_t *t, size_t usize) { sample_count(t, usize, 1); }
