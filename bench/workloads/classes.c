/* classes: 8 threads each allocate one object of every small size (8 B ..
 * 14 KiB, in steps like the size classes') and hold them while the others
 * do the same, then free them; repeated with new threads.  Little is
 * allocated: peak RSS shows what an allocator sets up per thread and per
 * class (runs, caches, metadata), and what its heap checks touch. */
#include "common.h"

#define NTHREADS 8
#define MAXOBJS 128

static pthread_barrier_t bar;
static uint64_t sums[NTHREADS];

static void *worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	void *p[MAXOBJS];
	size_t len[MAXOBJS];
	int n = 0;
	for (size_t s = 8; s <= 14336 && n < MAXOBJS; s += s < 128 ? 16 : s / 4) {
		p[n] = xmalloc(s);
		len[n] = s;
		stamp(p[n], s, (uint64_t)id * MAXOBJS + (uint64_t)n, 64);
		n++;
	}
	pthread_barrier_wait(&bar); /* all eight hold their objects */
	uint64_t sum = 0;
	for (int i = 0; i < n; i++) {
		check_or_die(p[i], len[i], (uint64_t)id * MAXOBJS + (uint64_t)i, 64, "classes");
		sum += len[i];
		free(p[i]);
	}
	sums[id] += sum;
	return NULL;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	long rounds = scaled(20, 1);
	uint64_t sum = 0;
	for (long r = 0; r < rounds; r++) {
		pthread_t th[NTHREADS];
		pthread_barrier_init(&bar, NULL, NTHREADS);
		for (int t = 0; t < NTHREADS; t++)
			xpthread_create(&th[t], worker, (void *)(uintptr_t)t);
		for (int t = 0; t < NTHREADS; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&bar);
	}
	for (int t = 0; t < NTHREADS; t++)
		sum += sums[t];
	printf("classes ok %" PRIu64 "\n", sum);
	return 0;
}
