/* frag: fragmentation over time.  The live bytes stay at a fixed budget
 * (64 MiB by default) while the size distribution changes in phases:
 * small objects, then medium, then a wide mix, then large, then small
 * again with a few long-lived objects pinned from every phase.  Each step
 * frees a random live object and allocates new ones until the budget is
 * met again; every page is touched.  Time matters less here than peak RSS:
 * an allocator that cannot reuse memory freed in one phase for the sizes
 * of the next, or never returns it, shows a peak RSS well above the
 * budget. */
#include "common.h"

#define MAXOBJ (1 << 20)

typedef struct {
	void *p;
	uint32_t len;
	uint32_t pinned;
	uint64_t tag;
} obj_t;

static obj_t objs[MAXOBJ];
static long nobj;
static size_t live;

static const struct {
	const char *name;
	size_t lo, hi;
} phases[] = {
	{ "small 16..256", 16, 256 },
	{ "medium 1K..16K", 1024, 16384 },
	{ "mixed 32..64K", 32, 65536 },
	{ "large 64K..1M", 65536, 1 << 20 },
	{ "small again 16..512", 16, 512 },
	{ "medium again 512..8K", 512, 8192 },
};

static long vm_kib(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0) {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void add(rng_t *r, size_t lo, size_t hi)
{
	if (nobj == MAXOBJ)
		bench_fail("frag: too many objects");
	obj_t *o = &objs[nobj++];
	o->len = (uint32_t)rng_logsize(r, lo, hi);
	o->tag = rng_next(r);
	o->pinned = rng_below(r, 1000) == 0; /* 0.1% are long-lived */
	o->p = xmalloc(o->len);
	stamp(o->p, o->len, o->tag, 4096);
	live += o->len;
}

static uint64_t drop(long i)
{
	obj_t *o = &objs[i];
	check_or_die(o->p, o->len, o->tag, 4096, "frag");
	uint64_t l = o->len;
	free(o->p);
	live -= o->len;
	objs[i] = objs[--nobj];
	return l;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	size_t budget = (size_t)scaled(64L << 20, 1L << 20);
	/* bytes turned over per phase: 4x the budget */
	size_t turnover = budget * 4;
	rng_t r;
	rng_seed(&r, 7);
	uint64_t sum = 0;
	int np = (int)(sizeof phases / sizeof phases[0]);
	for (int ph = 0; ph < np; ph++) {
		size_t freed = 0;
		while (freed < turnover) {
			while (live < budget)
				add(&r, phases[ph].lo, phases[ph].hi);
			/* free a random unpinned object (pinned ones stay) */
			for (int tries = 0; tries < 8; tries++) {
				long i = (long)rng_below(&r, (uint64_t)nobj);
				if (!objs[i].pinned || tries == 7) {
					freed += drop(i);
					break;
				}
			}
		}
		sum += live + (uint64_t)nobj;
		fprintf(stderr, "frag: phase %d (%s): live %zu KiB in %ld objects, "
			"RSS %ld KiB, peak %ld KiB\n", ph, phases[ph].name,
			live >> 10, nobj, vm_kib("VmRSS"), vm_kib("VmHWM"));
	}
	while (nobj > 0)
		sum += drop(nobj - 1);
	printf("frag ok %" PRIu64 "\n", sum);
	return 0;
}
