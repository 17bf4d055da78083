/* Shared helpers for the xalloc benchmark workloads.
 *
 * Every workload takes one optional argument, a scale factor (default 1.0):
 * the amount of work is multiplied by it, so `prog 0.01` is a quick smoke
 * run for CI.  Workloads use only the standard malloc API and pthreads, and
 * verify what they wrote: a broken allocator makes them fail (exit 1 with a
 * message on stderr) instead of looking fast.  On success each prints one
 * line "<name> ok <checksum>"; the checksum depends only on the scale, so the
 * runner can also compare it across allocators. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double bench_scale = 1.0;

static inline void bench_init(int argc, char **argv)
{
	if (argc > 1) {
		char *end;
		bench_scale = strtod(argv[1], &end);
		if (*end != '\0' || !(bench_scale > 0)) {
			fprintf(stderr, "usage: %s [scale>0]\n", argv[0]);
			exit(2);
		}
	}
}

/* n * scale, at least `min`. */
static inline long scaled(long n, long min)
{
	double v = (double)n * bench_scale;
	return v < (double)min ? min : (long)v;
}

static inline __attribute__((noreturn, format(printf, 1, 2))) void
bench_fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL)
		bench_fail("malloc(%zu) returned NULL", n);
	return p;
}

/* xorshift64* -- small, fast, deterministic. */
typedef struct { uint64_t s; } rng_t;
static inline void rng_seed(rng_t *r, uint64_t seed)
{
	r->s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
	if (r->s == 0)
		r->s = 1;
}
static inline uint64_t rng_next(rng_t *r)
{
	uint64_t x = r->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 0x2545F4914F6CDD1Dull;
}
/* uniform in [0, n) */
static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}
/* roughly log-uniform in [lo, hi] */
static inline size_t rng_logsize(rng_t *r, size_t lo, size_t hi)
{
	int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
	int b = lb + (int)rng_below(r, (uint64_t)(hb - lb + 1));
	size_t base = (size_t)1 << b;
	size_t s = base + (size_t)rng_below(r, base);
	if (s < lo)
		s = lo;
	if (s > hi)
		s = hi;
	return s;
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Objects over 256 bytes: a word every `stride` bytes plus the last word.
 * Kept out of line so the compiler does not warn about (dead) large-object
 * code inlined where it can prove objects are small. */
static __attribute__((noinline, unused)) void stamp_large(void *p, size_t n,
						  uint64_t tag, size_t stride)
{
	unsigned char *c = p;
	for (size_t off = 0; off + 8 <= n; off += stride) {
		uint64_t v = tag ^ (off * 0x9E3779B97F4A7C15ull);
		memcpy(c + off, &v, 8);
	}
	memcpy(c + n - 8, &tag, 8);
}

static __attribute__((noinline, unused)) int check_large(const void *p, size_t n,
						 uint64_t tag, size_t stride)
{
	const unsigned char *c = p;
	uint64_t w;
	memcpy(&w, c + n - 8, 8);
	if (w != tag)
		return -1;
	for (size_t off = 0; off + 8 <= n - 8; off += stride) {
		uint64_t v = tag ^ (off * 0x9E3779B97F4A7C15ull);
		memcpy(&w, c + off, 8);
		if (w != v)
			return -1;
	}
	return 0;
}

/* Stamp an object so that overlap with another live object, or corruption
 * by the allocator, is detected by check().  Objects up to 256 bytes are
 * filled completely; larger ones get a word at the start, at the end and
 * every `stride` bytes in between (stride 4096 touches every page, which
 * makes the object count fully in RSS). */
static inline void stamp(void *p, size_t n, uint64_t tag, size_t stride)
{
	unsigned char *c = p;
	if (n < 8) {
		memset(c, (int)(tag & 0xff) | 1, n);
		return;
	}
	if (n <= 256) {
		uint64_t v = mix64(tag);
		size_t i;
		for (i = 0; i + 8 <= n; i += 8) {
			memcpy(c + i, &v, 8);
			v += 0x9E3779B97F4A7C15ull;
		}
		for (; i < n; i++)	/* tail bytes */
			c[i] = (unsigned char)(tag >> ((i & 7) * 8));
		return;
	}
	stamp_large(p, n, tag, stride);
}

/* Returns 0 if the object still holds its stamp. */
static inline int check(const void *p, size_t n, uint64_t tag, size_t stride)
{
	const unsigned char *c = p;
	if (n < 8) {
		for (size_t i = 0; i < n; i++)
			if (c[i] != ((tag & 0xff) | 1))
				return -1;
		return 0;
	}
	if (n <= 256) {
		uint64_t v = mix64(tag), w;
		size_t i;
		for (i = 0; i + 8 <= n; i += 8) {
			memcpy(&w, c + i, 8);
			if (w != v)
				return -1;
			v += 0x9E3779B97F4A7C15ull;
		}
		for (; i < n; i++)
			if (c[i] != (unsigned char)(tag >> ((i & 7) * 8)))
				return -1;
		return 0;
	}
	return check_large(p, n, tag, stride);
}

static inline void check_or_die(const void *p, size_t n, uint64_t tag,
				size_t stride, const char *what)
{
	if (check(p, n, tag, stride) != 0)
		bench_fail("%s: object %p (%zu bytes, tag %" PRIx64
			   ") was corrupted", what, p, n, tag);
}

static inline void xpthread_create(pthread_t *t, void *(*fn)(void *), void *a)
{
	int e = pthread_create(t, NULL, fn, a);
	if (e != 0)
		bench_fail("pthread_create: %s", strerror(e));
}

#endif
