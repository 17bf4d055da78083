/* memidle: is freed memory given back, two seconds later, as top shows it?
 * (issue 12's first target).
 *
 *   memidle [load|idle] [SCALE [SAMPLE_MS [SECONDS]]]
 *
 * Allocates 1 GiB * SCALE in mixed sizes, sizes uniform within each band:
 * 3/8 of the bytes in 16 B .. 1 KiB, 3/8 in 1 .. 256 KiB, 1/4 in 256 KiB ..
 * 16 MiB (about 780 000 blocks at scale 1), in random order, writes every
 * byte, then frees every block in another random order. From the last
 * free (t = 0) it samples, every SAMPLE_MS ms (default 50) for SECONDS s
 * (default 4), the resident set two ways: plain RSS (/proc/self/statm, as
 * top shows it) and RSS minus LazyFree (/proc/self/smaps_rollup: pages
 * given back with MADV_FREE stay in RSS until the kernel needs them).
 *   load: meanwhile, every 10 ms, 500 malloc/free pairs of 16 B .. 1 KiB
 *         (each block written, then freed at once);
 *   idle: no allocation call at all after the last free.
 * Prints to stdout (figures in MiB above the same figure before the first
 * allocation):
 *   memidle mode=load scale=1 blocks=N bytes=N start_rss=.. start_nolazy=.. peak_rss=.. alloc_ms=.. free_ms=..
 *   at2s rss=.. nolazy=..
 *   series t_ms rss nolazy lazyfree
 *   <t_ms> <rss> <nolazy> <lazyfree>      (one line per sample)
 *   memidle ok <checksum>
 * The same binary for every allocator (LD_PRELOAD); only the standard
 * malloc API. Sampling reads /proc with open/read (no allocation). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static char procbuf[8192];

static ssize_t read_proc(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = 0, r;
	while (n < (ssize_t)sizeof(procbuf) - 1 &&
	       (r = read(fd, procbuf + n, sizeof(procbuf) - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	procbuf[n < 0 ? 0 : n] = '\0';
	return n;
}

/* kB value of "Key:" in procbuf, -1 if absent. */
static double rollup_kb(const char *key)
{
	size_t k = strlen(key);
	for (const char *p = procbuf; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, k) == 0 && p[k] == ':')
			return strtod(p + k + 1, NULL);
	return -1;
}

typedef struct {
	double rss, nolazy, lazy; /* MiB */
} sample_t;

static sample_t sample(void)
{
	sample_t s = {-1, -1, -1};
	if (read_proc("/proc/self/statm") > 0) {
		char *p = strchr(procbuf, ' ');
		if (p != NULL)
			s.rss = strtod(p + 1, NULL) * (double)sysconf(_SC_PAGESIZE) / MIB;
	}
	if (read_proc("/proc/self/smaps_rollup") > 0) {
		double rss = rollup_kb("Rss"), lazy = rollup_kb("LazyFree");
		if (rss >= 0 && lazy >= 0) {
			s.nolazy = (rss - lazy) / 1024.0;
			s.lazy = lazy / 1024.0;
		}
	}
	return s;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
	}
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [load|idle] [SCALE>0 [SAMPLE_MS>=10 [SECONDS>0]]]\n", prog);
	exit(2);
}

int main(int argc, char **argv)
{
	bool idle = false;
	double scale = 1.0, seconds = 4.0;
	long sample_ms = 50;
	char *end;
	if (argc > 1) {
		if (strcmp(argv[1], "idle") == 0)
			idle = true;
		else if (strcmp(argv[1], "load") != 0)
			usage(argv[0]);
	}
	if (argc > 2 && (scale = strtod(argv[2], &end), *end != '\0' || !(scale > 0)))
		usage(argv[0]);
	if (argc > 3 && (sample_ms = strtol(argv[3], &end, 10), *end != '\0' || sample_ms < 10))
		usage(argv[0]);
	if (argc > 4 && (seconds = strtod(argv[4], &end), *end != '\0' || !(seconds > 0)))
		usage(argv[0]);
	if (argc > 5)
		usage(argv[0]);

	/* The blocks' sizes, band by band, then shuffled. */
	size_t total = (size_t)(scale * (double)(1u << 30));
	struct {
		size_t lo, hi, bytes;
	} band[3] = {{16, 1024, total / 8 * 3}, {1024, 256 << 10, total / 8 * 3}, {256 << 10, 16 << 20, total / 4}};
	rng_t r;
	rng_seed(&r, 12);
	size_t cap = (size_t)(scale * 800000.0) + 1000, n = 0;
	uint32_t *size = xmalloc(cap * sizeof(*size));
	for (int b = 0; b < 3; b++) {
		size_t got = 0;
		while (got < band[b].bytes) {
			size_t s = band[b].lo + (size_t)rng_below(&r, band[b].hi - band[b].lo + 1);
			if (s > band[b].bytes - got)
				s = band[b].bytes - got < band[b].lo ? band[b].lo : band[b].bytes - got;
			if (n == cap) {
				cap *= 2;
				size = realloc(size, cap * sizeof(*size));
				if (size == NULL)
					bench_fail("realloc of the size table");
			}
			size[n++] = (uint32_t)s;
			got += s;
		}
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rng_below(&r, i + 1);
		uint32_t t = size[i];
		size[i] = size[j];
		size[j] = t;
	}
	char **ptr = xmalloc(n * sizeof(*ptr));
	size_t *order = xmalloc(n * sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rng_below(&r, i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	memset(ptr, 0, n * sizeof(*ptr));
	size_t nsamples = (size_t)(seconds * 1000.0 / (double)sample_ms) + 1;
	sample_t *series = xmalloc(nsamples * sizeof(*series));
	memset(series, 0, nsamples * sizeof(*series));
	printf("memidle mode=%s", idle ? "idle" : "load"); /* stdout's buffer, now */

	sample_t start = sample();
	uint64_t t0 = now_ns(), sum = 0, bytes = 0;
	for (size_t i = 0; i < n; i++) {
		ptr[i] = xmalloc(size[i]);
		memset(ptr[i], (int)(i & 0x7f) | 1, size[i]);
		sum += size[i] * (i + 1);
		bytes += size[i];
	}
	uint64_t t1 = now_ns();
	sample_t peak = sample();
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		char want = (char)((i & 0x7f) | 1);
		if (ptr[i][0] != want || ptr[i][size[i] - 1] != want)
			bench_fail("block %zu (%u bytes) was corrupted", i, size[i]);
		free(ptr[i]);
	}
	uint64_t t2 = now_ns(); /* t = 0: the last free */

	/* Every 10 ms (load: 500 pairs first), and a sample every sample_ms. */
	uint64_t tick = 10u * 1000000u, next = t2;
	size_t s = 0;
	void *pairs_check = NULL;
	while (s < nsamples) {
		uint64_t now = now_ns();
		if (now >= t2 + (uint64_t)s * (uint64_t)sample_ms * 1000000u) {
			series[s++] = sample();
			continue;
		}
		if (!idle && now >= next) {
			for (int k = 0; k < 500; k++) {
				size_t len = 16 + (size_t)rng_below(&r, 1009);
				char *q = xmalloc(len);
				q[0] = (char)len;
				q[len - 1] = (char)k;
				pairs_check = q;
				free(q);
			}
			next += tick;
			continue;
		}
		uint64_t wake = t2 + (uint64_t)s * (uint64_t)sample_ms * 1000000u;
		if (!idle && next < wake)
			wake = next;
		sleep_until(wake);
	}
	(void)pairs_check;

	size_t at2 = (size_t)(2000.0 / (double)sample_ms + 0.5);
	if (at2 >= nsamples)
		at2 = nsamples - 1;
	printf(" scale=%g blocks=%zu bytes=%" PRIu64 " start_rss=%.1f start_nolazy=%.1f peak_rss=%.1f alloc_ms=%.0f "
	       "free_ms=%.0f\n",
	       scale, n, bytes, start.rss, start.nolazy, peak.rss - start.rss, (double)(t1 - t0) / 1e6,
	       (double)(t2 - t1) / 1e6);
	printf("at2s t_ms=%zu rss=%.1f nolazy=%.1f\n", at2 * (size_t)sample_ms, series[at2].rss - start.rss,
	       series[at2].nolazy - start.nolazy);
	printf("series t_ms rss nolazy lazyfree\n");
	for (size_t i = 0; i < nsamples; i++)
		printf("%zu %.1f %.1f %.1f\n", i * (size_t)sample_ms, series[i].rss - start.rss,
		       series[i].nolazy - start.nolazy, series[i].lazy);
	free(series);
	free(order);
	free(ptr);
	free(size);
	printf("memidle ok %" PRIu64 "\n", sum);
	return 0;
}
