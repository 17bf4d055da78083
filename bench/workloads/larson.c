/* larson: a server simulation after Larson & Krishnan.  NGROUPS groups of
 * live objects (16..1024 bytes); in each epoch NTHREADS fresh threads are
 * started, each takes over a group last worked on by another thread and
 * replaces random objects in it (free the old one, allocate a new one).
 * So most frees are of objects another -- by now exited -- thread
 * allocated.  Stresses remote frees, thread start/exit (cache flush) and
 * arena sharing. */
#include "common.h"

#define NTHREADS 4
#define SLOTS 4000

typedef struct {
	void *ptr[SLOTS];
	uint32_t len[SLOTS];
	uint64_t tag[SLOTS];
	rng_t rng;
	uint64_t sum;
} group_t;

static group_t groups[NTHREADS];
static long steps_per_epoch;

static void *worker(void *arg)
{
	group_t *g = arg;
	uint64_t sum = 0;
	for (long s = 0; s < steps_per_epoch; s++) {
		size_t i = rng_below(&g->rng, SLOTS);
		if ((s & 15) == 0)
			check_or_die(g->ptr[i], g->len[i], g->tag[i], 4096,
				     "larson");
		sum += g->len[i];
		free(g->ptr[i]);
		g->len[i] = (uint32_t)(16 + rng_below(&g->rng, 1009));
		g->tag[i] = rng_next(&g->rng);
		g->ptr[i] = xmalloc(g->len[i]);
		stamp(g->ptr[i], g->len[i], g->tag[i], 4096);
	}
	g->sum += sum;
	return NULL;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	long epochs = scaled(40, 2);
	/* total replacements over all threads and epochs */
	steps_per_epoch = scaled(8000000, 2000) / epochs / NTHREADS;
	for (int t = 0; t < NTHREADS; t++) {
		group_t *g = &groups[t];
		rng_seed(&g->rng, 100 + (uint64_t)t);
		for (int i = 0; i < SLOTS; i++) {
			g->len[i] = (uint32_t)(16 + rng_below(&g->rng, 1009));
			g->tag[i] = rng_next(&g->rng);
			g->ptr[i] = xmalloc(g->len[i]);
			stamp(g->ptr[i], g->len[i], g->tag[i], 4096);
		}
	}
	for (long e = 0; e < epochs; e++) {
		pthread_t th[NTHREADS];
		/* rotate: group t is worked on by a different thread each
		 * epoch, and every thread is new */
		for (int t = 0; t < NTHREADS; t++)
			xpthread_create(&th[t], worker,
					&groups[(t + e) % NTHREADS]);
		for (int t = 0; t < NTHREADS; t++)
			pthread_join(th[t], NULL);
	}
	uint64_t sum = 0;
	for (int t = 0; t < NTHREADS; t++) {
		group_t *g = &groups[t];
		for (int i = 0; i < SLOTS; i++) {
			check_or_die(g->ptr[i], g->len[i], g->tag[i], 4096,
				     "larson final");
			free(g->ptr[i]);
		}
		sum += g->sum;
	}
	printf("larson ok %" PRIu64 "\n", sum);
	return 0;
}
