/* oversub: oversubscribed threads.  ROUNDS rounds; each starts 64 threads
 * (32 in every other round) on a machine with far fewer CPUs, which swap
 * small and medium objects (16 .. 4096 bytes) through NSLOTS shared slots
 * with atomic exchanges -- objects migrate between threads -- then are
 * joined; new threads every round, so thread caches are made and torn
 * down all the time.  Checksum: the bytes allocated (scale only). */
#include "common.h"

#define MAXTHREADS 64
#define NSLOTS 4096
#define HDR 16

static void *slots[NSLOTS];
static long ops_per_thread;
static long rounds;

static void obj_check_free(void *p)
{
	if (p == NULL)
		return;
	uint64_t len = ((uint64_t *)p)[0], tag = ((uint64_t *)p)[1];
	check_or_die((char *)p + HDR, len - HDR, tag, 512, "oversub");
	free(p);
}

static uint64_t seed_of(long round, int id) { return 900 + (uint64_t)round * MAXTHREADS + (uint64_t)id; }

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	rng_t r;
	rng_seed(&r, seed);
	for (long n = 0; n < ops_per_thread; n++) {
		uint64_t len = rng_logsize(&r, 16 + HDR, 4096);
		uint64_t tag = rng_next(&r);
		size_t s = (size_t)(rng_next(&r) % NSLOTS);
		uint64_t *p = xmalloc(len);
		p[0] = len;
		p[1] = tag;
		stamp((char *)p + HDR, len - HDR, tag, 512);
		obj_check_free(__atomic_exchange_n(&slots[s], (void *)p, __ATOMIC_ACQ_REL));
	}
	return NULL;
}

static int nthreads_of(long round) { return round % 2 == 0 ? MAXTHREADS : MAXTHREADS / 2; }

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	rounds = scaled(40, 2);
	ops_per_thread = 2000;
	pthread_t t[MAXTHREADS];
	for (long k = 0; k < rounds; k++) {
		int n = nthreads_of(k);
		for (int i = 0; i < n; i++)
			xpthread_create(&t[i], worker, (void *)(uintptr_t)seed_of(k, i));
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
	}
	for (int s = 0; s < NSLOTS; s++)
		obj_check_free(slots[s]);
	uint64_t bytes = 0;
	for (long k = 0; k < rounds; k++)
		for (int i = 0; i < nthreads_of(k); i++) {
			rng_t r;
			rng_seed(&r, seed_of(k, i));
			for (long n = 0; n < ops_per_thread; n++) {
				bytes += rng_logsize(&r, 16 + HDR, 4096);
				rng_next(&r);
				rng_next(&r);
			}
		}
	printf("oversub ok %" PRIu64 "\n", bytes);
	return 0;
}
