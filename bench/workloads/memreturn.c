/* memreturn: memory given back. Allocates about 1 GiB (scaled) of mixed
 * sizes (16 B .. 8 MiB, log-uniform), touches every page, frees it all,
 * then keeps a light load (every 10 ms: 16 allocations of 64 KiB, freed)
 * and samples RSS (/proc/self/statm) until it is back within 10 % of the
 * memory added (RSS - start <= 0.10 * (peak - start)), or a 30 s deadline. Prints to stderr:
 *   memreturn: start <MiB> peak <MiB> after-free <MiB> returned-in <ms> final <MiB>
 * (returned-in -1: not within 10 % by the deadline). Stresses purging. */
#include "common.h"

#include <time.h>
#include <unistd.h>

static double rss_mib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
		fclose(f);
	}
	return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	size_t target = (size_t)scaled(1024, 8) << 20;
	size_t cap = 1 << 20;
	void **ptr = xmalloc(cap * sizeof(void *));
	size_t n = 0, total = 0;
	rng_t r;
	rng_seed(&r, 11);
	double start = rss_mib();
	uint64_t sum = 0;
	while (total < target && n < cap) {
		size_t len = rng_logsize(&r, 16, 8 << 20);
		char *p = xmalloc(len);
		for (size_t off = 0; off < len; off += 4096) p[off] = (char)len;
		p[len - 1] = (char)len;
		ptr[n++] = p;
		total += len;
		sum += len;
	}
	double peak = rss_mib();
	for (size_t i = 0; i < n; i++) free(ptr[i]);
	double t0 = now_ms(), after = rss_mib(), rss = after, returned = -1;
	while (now_ms() - t0 < 30000) {
		if (rss - start <= 0.10 * (peak - start)) {
			returned = now_ms() - t0;
			break;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		for (int k = 0; k < 16; k++) {
			char *q = xmalloc(64 << 10);
			q[0] = 1;
			free(q);
		}
		rss = rss_mib();
	}
	fprintf(stderr, "memreturn: start %.1f peak %.1f after-free %.1f returned-in %.0f final %.1f\n", start, peak,
		after, returned, rss);
	free(ptr);
	printf("memreturn ok %" PRIu64 "\n", sum);
	return 0;
}
