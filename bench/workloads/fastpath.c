/* fastpath: the malloc+free fast path, for instruction counting under
 * callgrind (bench/run --callgrind, or by hand:
 *   valgrind --tool=callgrind fastpath same32 1000000).
 * Variants:
 *   same32  N times p = malloc(32); free(p)
 *   mixed   N times p = malloc(size[i % 8]); free(p), sizes 8..1024
 *   batch32 N/64 times: 64 x malloc(32), then free them in reverse order
 *   calloc32 N times p = calloc(1, 32); free(p)
 *   sized32 N times p = malloc(32); free_sized(p, 32) -- or sdallocx(p, 32,
 *           0) where the allocator has no free_sized (looked up at run
 *           time: the peers' libraries differ); fails if it has neither
 *   large20k N times p = malloc(20480); free(p) (a large class that
 *           thread caches hold)
 *   memalign32 N times p = memalign(8 or 16, in turn, 32); free(p)
 *           (what rpmalloc's benchmark asks for)
 * Instructions per pair = (Ir(N2) - Ir(N1)) / (N2 - N1), which removes
 * start-up and exit costs.  Prints "fastpath ok <n>". */
#include "common.h"

#include <dlfcn.h>
#include <malloc.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

static const size_t mixed_sizes[8] = { 8, 24, 48, 96, 160, 320, 640, 1024 };

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s same32|mixed|batch32 N\n", argv[0]);
		return 2;
	}
	long n = atol(argv[2]);
	if (strcmp(argv[1], "same32") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = malloc(32);
			if (p == NULL)
				bench_fail("malloc");
			ESCAPE(p);
			free(p);
		}
	} else if (strcmp(argv[1], "mixed") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = malloc(mixed_sizes[i & 7]);
			if (p == NULL)
				bench_fail("malloc");
			ESCAPE(p);
			free(p);
		}
	} else if (strcmp(argv[1], "batch32") == 0) {
		void *p[64];
		if (n % 64 != 0)
			bench_fail("batch32: N must be a multiple of 64");
		for (long i = 0; i < n; i += 64) {
			for (int j = 0; j < 64; j++) {
				p[j] = malloc(32);
				if (p[j] == NULL)
					bench_fail("malloc");
				ESCAPE(p[j]);
			}
			for (int j = 63; j >= 0; j--)
				free(p[j]);
		}
	} else if (strcmp(argv[1], "calloc32") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = calloc(1, 32);
			if (p == NULL)
				bench_fail("calloc");
			ESCAPE(p);
			free(p);
		}
	} else if (strcmp(argv[1], "sized32") == 0) {
		void (*fsized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
		void (*sdx)(void *, size_t, int) = (void (*)(void *, size_t, int))dlsym(RTLD_DEFAULT, "sdallocx");
		if (fsized == NULL && sdx == NULL)
			bench_fail("sized32: neither free_sized nor sdallocx");
		/* Two loops, so that the choice is not made in every
		 * iteration: the pair then costs the same loop
		 * instructions as same32 (an indirect call instead of the
		 * PLT's call and jump, plus the size argument). */
		if (fsized != NULL) {
			for (long i = 0; i < n; i++) {
				void *p = malloc(32);
				if (p == NULL)
					bench_fail("malloc");
				ESCAPE(p);
				fsized(p, 32);
			}
		} else {
			for (long i = 0; i < n; i++) {
				void *p = malloc(32);
				if (p == NULL)
					bench_fail("malloc");
				ESCAPE(p);
				sdx(p, 32, 0);
			}
		}
	} else if (strcmp(argv[1], "memalign32") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = memalign(i & 1 ? 8 : 16, 32);
			if (p == NULL)
				bench_fail("memalign");
			ESCAPE(p);
			free(p);
		}
	} else if (strcmp(argv[1], "large20k") == 0) {
		for (long i = 0; i < n; i++) {
			void *p = malloc(20480);
			if (p == NULL)
				bench_fail("malloc");
			ESCAPE(p);
			free(p);
		}
	} else {
		fprintf(stderr, "unknown variant %s\n", argv[1]);
		return 2;
	}
	printf("fastpath ok %ld\n", n);
	return 0;
}
