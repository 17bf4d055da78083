/* large: allocations from 64 KiB to 64 MiB (log-uniform), a live window of
 * 8 objects, each replaced at random; the first and last page and every
 * 16th page of each object are written and checked.  Stresses the
 * large/huge path: mmap/munmap vs. reuse, purging, chunk trees and page
 * faults. */
#include "common.h"

#define SLOTS 8
#define STRIDE (64 * 1024)

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	long steps = scaled(3000, 20);
	void *ptr[SLOTS];
	size_t len[SLOTS];
	uint64_t tag[SLOTS];
	rng_t r;
	rng_seed(&r, 6);
	uint64_t sum = 0;
	for (int i = 0; i < SLOTS; i++) {
		len[i] = rng_logsize(&r, 64 * 1024, 64 * 1024 * 1024);
		tag[i] = rng_next(&r);
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], STRIDE);
	}
	for (long s = 0; s < steps; s++) {
		size_t i = rng_below(&r, SLOTS);
		check_or_die(ptr[i], len[i], tag[i], STRIDE, "large");
		sum += len[i];
		free(ptr[i]);
		len[i] = rng_logsize(&r, 64 * 1024, 64 * 1024 * 1024);
		tag[i] = rng_next(&r);
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], STRIDE);
	}
	for (int i = 0; i < SLOTS; i++) {
		check_or_die(ptr[i], len[i], tag[i], STRIDE, "large final");
		free(ptr[i]);
	}
	printf("large ok %" PRIu64 "\n", sum);
	return 0;
}
