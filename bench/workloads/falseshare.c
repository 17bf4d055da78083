/* falseshare: false sharing induced by the allocator (after Hoard's
 * cache-thrash and cache-scratch).  Phase "thrash": each of NTHREADS
 * threads repeatedly allocates a small object, writes it many times and
 * frees it; an allocator that hands neighbouring bytes of one cache line to
 * different threads makes the cores fight over that line.  Phase
 * "scratch": the main thread allocates NTHREADS small objects back to back
 * and gives one to each thread, which frees it and then does the same
 * allocate/write/free loop; an allocator that recycles the freed (shared
 * line) object for the thread keeps the false sharing going.  The cost is
 * mostly in the writes, so this measures object placement, not malloc
 * speed. */
#include "common.h"

#define NTHREADS 4
#define OBJSIZE 8

static long iters, writes;
static void *handed[NTHREADS];
static uint64_t sums[NTHREADS];

static void *worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	uint64_t sum = 0;
	if (handed[id] != NULL) {
		check_or_die(handed[id], OBJSIZE, (uint64_t)id, 4096,
			     "falseshare handed");
		free(handed[id]);
	}
	for (long it = 0; it < iters; it++) {
		volatile unsigned char *p = xmalloc(OBJSIZE);
		for (int k = 0; k < OBJSIZE; k++)
			p[k] = 0;
		for (long w = 0; w < writes; w++)
			for (int k = 0; k < OBJSIZE; k++)
				p[k] = (unsigned char)(p[k] + 1 + k);
		/* byte k must now hold (1+k)*writes mod 256, unless another
		 * thread's object overlaps ours */
		for (int k = 0; k < OBJSIZE; k++) {
			if (p[k] != (unsigned char)((1 + k) * writes))
				bench_fail("falseshare: object %p byte %d is %u",
					   (void *)p, k, p[k]);
			sum += p[k];
		}
		free((void *)p);
	}
	sums[id] = sum;
	return NULL;
}

static uint64_t phase(int scratch)
{
	pthread_t th[NTHREADS];
	for (int t = 0; t < NTHREADS; t++) {
		handed[t] = NULL;
		if (scratch) {
			handed[t] = xmalloc(OBJSIZE);
			stamp(handed[t], OBJSIZE, (uint64_t)t, 4096);
		}
	}
	for (int t = 0; t < NTHREADS; t++)
		xpthread_create(&th[t], worker, (void *)(uintptr_t)t);
	uint64_t sum = 0;
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		sum += sums[t];
	}
	return sum;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	iters = scaled(30000, 10);
	writes = 500;
	uint64_t sum = phase(0) + phase(1);
	printf("falseshare ok %" PRIu64 "\n", sum);
	return 0;
}
