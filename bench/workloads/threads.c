/* threads: NTHREADS (8) threads, each with its own live set of small
 * objects (8..256 bytes), replacing random ones; no sharing at all.
 * Stresses scalability of the thread-local fast path and contention on
 * shared arenas/bins when there are more threads than cores. */
#include "common.h"

#define NTHREADS 8
#define SLOTS 2000

static long steps;
static uint64_t sums[NTHREADS];

static void *worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	void **ptr = xmalloc(SLOTS * sizeof(void *));
	uint32_t *len = xmalloc(SLOTS * sizeof(uint32_t));
	uint64_t *tag = xmalloc(SLOTS * sizeof(uint64_t));
	rng_t r;
	rng_seed(&r, 400 + (uint64_t)id);
	uint64_t sum = 0;
	for (int i = 0; i < SLOTS; i++) {
		len[i] = (uint32_t)(8 + rng_below(&r, 249));
		tag[i] = rng_next(&r);
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (long s = 0; s < steps; s++) {
		size_t i = rng_below(&r, SLOTS);
		if ((s & 31) == 0)
			check_or_die(ptr[i], len[i], tag[i], 4096, "threads");
		sum += len[i];
		free(ptr[i]);
		len[i] = (uint32_t)(8 + rng_below(&r, 249));
		tag[i] = rng_next(&r);
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (int i = 0; i < SLOTS; i++) {
		check_or_die(ptr[i], len[i], tag[i], 4096, "threads final");
		free(ptr[i]);
	}
	free(ptr);
	free(len);
	free(tag);
	sums[id] = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	steps = scaled(16000000, 8000) / NTHREADS;
	pthread_t th[NTHREADS];
	for (int t = 0; t < NTHREADS; t++)
		xpthread_create(&th[t], worker, (void *)(uintptr_t)t);
	uint64_t sum = 0;
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		sum += sums[t];
	}
	printf("threads ok %" PRIu64 "\n", sum);
	return 0;
}
