/* prodcons: producer/consumer hand-off.  NPROD producer threads allocate
 * batches of messages (16..2048 bytes, filled with data), push the batch
 * through a bounded queue, and NCONS consumer threads verify and free them.
 * Every free is remote (the object was allocated by another live thread).
 * Stresses remote-free paths and memory flowing one way between threads. */
#include "common.h"

#define NPROD 2
#define NCONS 2
#define BATCH 64
#define QCAP 64

typedef struct {
	void *msg[BATCH];
	uint32_t len[BATCH];
	uint64_t tag[BATCH];
} batch_t;

static batch_t *queue[QCAP];
static int qhead, qcount;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnotfull = PTHREAD_COND_INITIALIZER;
static pthread_cond_t qnotempty = PTHREAD_COND_INITIALIZER;
static long batches_per_producer;

static void push(batch_t *b)
{
	pthread_mutex_lock(&qlock);
	while (qcount == QCAP)
		pthread_cond_wait(&qnotfull, &qlock);
	queue[(qhead + qcount) % QCAP] = b;
	qcount++;
	pthread_cond_signal(&qnotempty);
	pthread_mutex_unlock(&qlock);
}

static batch_t *pop(void)
{
	pthread_mutex_lock(&qlock);
	while (qcount == 0)
		pthread_cond_wait(&qnotempty, &qlock);
	batch_t *b = queue[qhead];
	qhead = (qhead + 1) % QCAP;
	qcount--;
	pthread_cond_signal(&qnotfull);
	pthread_mutex_unlock(&qlock);
	return b;
}

static void *producer(void *arg)
{
	rng_t r;
	rng_seed(&r, 300 + (uint64_t)(uintptr_t)arg);
	for (long n = 0; n < batches_per_producer; n++) {
		batch_t *b = xmalloc(sizeof(*b));
		for (int i = 0; i < BATCH; i++) {
			b->len[i] = (uint32_t)rng_logsize(&r, 16, 2048);
			b->tag[i] = rng_next(&r);
			b->msg[i] = xmalloc(b->len[i]);
			stamp(b->msg[i], b->len[i], b->tag[i], 4096);
		}
		push(b);
	}
	return NULL;
}

static uint64_t consumed_sum[NCONS];

static void *consumer(void *arg)
{
	int id = (int)(uintptr_t)arg;
	uint64_t sum = 0;
	for (;;) {
		batch_t *b = pop();
		if (b == NULL)
			break;
		for (int i = 0; i < BATCH; i++) {
			check_or_die(b->msg[i], b->len[i], b->tag[i], 4096,
				     "prodcons");
			sum += b->len[i];
			free(b->msg[i]);
		}
		free(b);
	}
	consumed_sum[id] = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	batches_per_producer = scaled(40000, 10);
	pthread_t p[NPROD], c[NCONS];
	for (int i = 0; i < NCONS; i++)
		xpthread_create(&c[i], consumer, (void *)(uintptr_t)i);
	for (int i = 0; i < NPROD; i++)
		xpthread_create(&p[i], producer, (void *)(uintptr_t)i);
	for (int i = 0; i < NPROD; i++)
		pthread_join(p[i], NULL);
	for (int i = 0; i < NCONS; i++)
		push(NULL);
	for (int i = 0; i < NCONS; i++)
		pthread_join(c[i], NULL);

	/* recompute what the producers made and compare */
	uint64_t expect = 0, got = 0;
	for (int t = 0; t < NPROD; t++) {
		rng_t r;
		rng_seed(&r, 300 + (uint64_t)t);
		for (long n = 0; n < batches_per_producer; n++)
			for (int i = 0; i < BATCH; i++) {
				expect += rng_logsize(&r, 16, 2048);
				rng_next(&r);
			}
	}
	for (int i = 0; i < NCONS; i++)
		got += consumed_sum[i];
	if (got != expect)
		bench_fail("prodcons: consumed %" PRIu64 " bytes, produced %"
			   PRIu64, got, expect);
	printf("prodcons ok %" PRIu64 "\n", got);
	return 0;
}
