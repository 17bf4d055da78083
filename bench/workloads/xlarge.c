/* xlarge: large objects handed between threads.  NTHREADS threads share
 * NSLOTS slots; each allocates objects of 1 KiB .. 1 MiB (log-uniform),
 * fills them, and swaps each into a random slot with one atomic exchange,
 * checking and freeing the object it takes out -- allocated, most of the
 * time, by another thread.  Stresses the large and huge paths across
 * threads (remote frees of large runs and huge ranges, page faults,
 * purging) and peak RSS.  Checksum: the bytes allocated, which depend only
 * on the scale. */
#include "common.h"

#define NTHREADS 8
#define NSLOTS 64
#define HDR 16

static void *slots[NSLOTS];
static long ops_per_thread;
static uint64_t freed_count[NTHREADS];

/* The object's size and tag are in its first 16 bytes; the rest is stamped. */
static void obj_check_free(void *p)
{
	if (p == NULL)
		return;
	uint64_t len = ((uint64_t *)p)[0], tag = ((uint64_t *)p)[1];
	check_or_die((char *)p + HDR, len - HDR, tag, 4096, "xlarge");
	free(p);
}

static void *worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	rng_t r;
	rng_seed(&r, 700 + (uint64_t)id);
	uint64_t nfreed = 0;
	for (long n = 0; n < ops_per_thread; n++) {
		uint64_t len = rng_logsize(&r, 1024, (size_t)1 << 20);
		uint64_t tag = rng_next(&r);
		size_t s = (size_t)(rng_next(&r) % NSLOTS);
		uint64_t *p = xmalloc(len);
		p[0] = len;
		p[1] = tag;
		stamp((char *)p + HDR, len - HDR, tag, 4096);
		void *old = __atomic_exchange_n(&slots[s], (void *)p, __ATOMIC_ACQ_REL);
		if (old != NULL) {
			obj_check_free(old);
			nfreed++;
		}
	}
	freed_count[id] = nfreed;
	return NULL;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	ops_per_thread = scaled(6000, 20);
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		xpthread_create(&t[i], worker, (void *)(uintptr_t)i);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	uint64_t nfreed = 0, left = 0;
	for (int i = 0; i < NTHREADS; i++)
		nfreed += freed_count[i];
	for (int s = 0; s < NSLOTS; s++) {
		if (slots[s] != NULL) {
			obj_check_free(slots[s]);
			left++;
		}
	}
	if (nfreed + left != (uint64_t)ops_per_thread * NTHREADS)
		bench_fail("xlarge: %" PRIu64 " objects freed, %ld made", nfreed + left,
			   ops_per_thread * NTHREADS);
	uint64_t bytes = 0;
	for (int i = 0; i < NTHREADS; i++) {
		rng_t r;
		rng_seed(&r, 700 + (uint64_t)i);
		for (long n = 0; n < ops_per_thread; n++) {
			bytes += rng_logsize(&r, 1024, (size_t)1 << 20);
			rng_next(&r);
			rng_next(&r);
		}
	}
	printf("xlarge ok %" PRIu64 "\n", bytes);
	return 0;
}
