/* sizes: a sweep over size bands from 8 bytes to 1 MiB (one band per power
 * of two, each band a random replace-one-object loop over a live set whose
 * size shrinks as objects grow), followed by a phase that mixes all sizes
 * log-uniformly.  Every page of every object is touched.  Stresses every
 * size class, the small/large/huge boundaries and page-run management. */
#include "common.h"

#define MAXSLOTS 4096

static void *ptr[MAXSLOTS];
static size_t len[MAXSLOTS];
static uint64_t tag[MAXSLOTS];

static uint64_t run(rng_t *r, size_t lo, size_t hi, long slots, long steps,
		    uint64_t *next_tag)
{
	uint64_t sum = 0;
	for (long i = 0; i < slots; i++) {
		len[i] = rng_logsize(r, lo, hi);
		tag[i] = (*next_tag)++;
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (long s = 0; s < steps; s++) {
		size_t i = rng_below(r, (uint64_t)slots);
		check_or_die(ptr[i], len[i], tag[i], 4096, "sizes");
		sum += len[i];
		free(ptr[i]);
		len[i] = rng_logsize(r, lo, hi);
		tag[i] = (*next_tag)++;
		ptr[i] = xmalloc(len[i]);
		stamp(ptr[i], len[i], tag[i], 4096);
	}
	for (long i = 0; i < slots; i++) {
		check_or_die(ptr[i], len[i], tag[i], 4096, "sizes final");
		free(ptr[i]);
	}
	return sum;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	rng_t r;
	rng_seed(&r, 2);
	uint64_t sum = 0, next_tag = 1;
	for (long rep = 0; rep < 2; rep++) {
		for (size_t lo = 8; lo <= 512 * 1024; lo *= 2) {
			size_t hi = lo * 2;
			/* live set: at most 4096 objects, at most ~16 MiB */
			long slots = (long)((16u << 20) / hi);
			if (slots > MAXSLOTS)
				slots = MAXSLOTS;
			if (slots < 8)
				slots = 8;
			/* work per band: ~600k objects for tiny sizes,
			 * ~64 MiB of object bytes for big ones */
			long steps = (long)((64u << 20) / hi);
			if (steps > 600000)
				steps = 600000;
			steps = scaled(steps, 10);
			if (slots > steps)
				slots = steps;
			sum += run(&r, lo, hi, slots, steps, &next_tag);
		}
		sum += run(&r, 8, 1 << 20, 256, scaled(40000, 100), &next_tag);
	}
	printf("sizes ok %" PRIu64 "\n", sum);
	return 0;
}
