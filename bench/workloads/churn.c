/* churn: one thread, small objects (8..512 bytes, mostly tiny), a live set
 * of 20000 objects where each step frees a random one and allocates a
 * replacement of a random size.  Stresses the single-threaded small-object
 * fast path and size-class lookup. */
#include "common.h"

#define SLOTS 20000

static size_t pick_size(rng_t *r)
{
	uint64_t x = rng_below(r, 100);
	if (x < 60)
		return 8 + rng_below(r, 57);	/* 8..64 */
	if (x < 90)
		return 65 + rng_below(r, 192);	/* 65..256 */
	return 257 + rng_below(r, 256);		/* 257..512 */
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	long steps = scaled(15000000, 1000);
	void **ptr = xmalloc(SLOTS * sizeof(void *));
	size_t *len = xmalloc(SLOTS * sizeof(size_t));
	uint64_t *tag = xmalloc(SLOTS * sizeof(uint64_t));
	rng_t r;
	rng_seed(&r, 1);
	uint64_t sum = 0;

	for (long i = 0; i < SLOTS; i++) {
		len[i] = pick_size(&r);
		tag[i] = (uint64_t)i;
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (long s = 0; s < steps; s++) {
		size_t i = rng_below(&r, SLOTS);
		/* check one byte cheaply every step, fully every 64th */
		if ((s & 63) == 0)
			check_or_die(ptr[i], len[i], tag[i], 4096, "churn");
		sum += ((unsigned char *)ptr[i])[0];
		free(ptr[i]);
		len[i] = pick_size(&r);
		tag[i] = (uint64_t)s + SLOTS;
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (long i = 0; i < SLOTS; i++) {
		check_or_die(ptr[i], len[i], tag[i], 4096, "churn final");
		sum += len[i];
		free(ptr[i]);
	}
	free(ptr);
	free(len);
	free(tag);
	printf("churn ok %" PRIu64 "\n", sum);
	return 0;
}
