/* realloc: string-builder growth.  NBUF buffers are grown side by side by
 * appending small random pieces (1..64 bytes) with realloc to the exact new
 * length, until each reaches its random target (up to 256 KiB); then all
 * are verified and freed, and the round repeats.  Neighbouring buffers grow
 * at the same time, so in-place growth is not free.  Stresses realloc's
 * in-place expansion, size-class steps, and copy cost. */
#include "common.h"

#define NBUF 256

static unsigned char byte_at(uint64_t seed, size_t j)
{
	return (unsigned char)(seed + j * 131 + (j >> 9));
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	long rounds = scaled(12, 1);
	rng_t r;
	rng_seed(&r, 5);
	uint64_t sum = 0;
	unsigned char *buf[NBUF];
	size_t len[NBUF], target[NBUF];
	uint64_t seed[NBUF];
	for (long round = 0; round < rounds; round++) {
		size_t live = NBUF;
		for (int i = 0; i < NBUF; i++) {
			buf[i] = NULL;
			len[i] = 0;
			target[i] = rng_logsize(&r, 64, 256 * 1024);
			if (bench_scale < 1)
				target[i] = (size_t)((double)target[i] * bench_scale) + 64;
			seed[i] = rng_next(&r);
		}
		while (live > 0) {
			for (int i = 0; i < NBUF; i++) {
				if (len[i] >= target[i])
					continue;
				size_t add = 1 + rng_below(&r, 64);
				size_t n = len[i] + add;
				unsigned char *p = realloc(buf[i], n);
				if (p == NULL)
					bench_fail("realloc(%zu) failed", n);
				/* spot-check what realloc carried over */
				if (len[i] > 0 &&
				    (p[0] != byte_at(seed[i], 0) ||
				     p[len[i] - 1] != byte_at(seed[i], len[i] - 1)))
					bench_fail("realloc lost data of buffer %d "
						   "at length %zu", i, len[i]);
				for (size_t j = len[i]; j < n; j++)
					p[j] = byte_at(seed[i], j);
				buf[i] = p;
				len[i] = n;
				if (len[i] >= target[i])
					live--;
			}
		}
		for (int i = 0; i < NBUF; i++) {
			for (size_t j = 0; j < len[i]; j += 61)
				if (buf[i][j] != byte_at(seed[i], j))
					bench_fail("buffer %d corrupted at %zu", i, j);
			sum += len[i];
			free(buf[i]);
		}
	}
	printf("realloc ok %" PRIu64 "\n", sum);
	return 0;
}
