/*
 * commit:on (the strict overcommit behaviour, forced so that it can be
 * tested on a machine with vm.overcommit_memory 0 or 1): what the kernel
 * charges against the commit limit for xalloc's memory stays close to what
 * the program holds.
 *
 * The charge is read from /proc/self/smaps: every mapping whose VmFlags
 * has "ac" (VM_ACCOUNT) is charged for its whole size under
 * vm.overcommit_memory=2, whether it was touched or not. The test compares
 * the growth of that sum since the start with the bytes the program asked
 * for (which, with commit on, are the usable sizes rounded to pages): 100
 * KiB blocks, 3 MiB blocks, everything freed and
 * purged, huge blocks grown and shrunk in place (xallocx), and the
 * committed statistic (stats.committed) against smaps.
 *
 * Without decommit, 100 KiB blocks are charged 112 KiB each and whole
 * arena chunks, 3 MiB blocks 4 MiB each, and the unused part of every
 * reservation and every freed range stays charged.
 */
#include "xtest.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include "xalloc/xalloc.h"

const char *malloc_conf = "commit:on";

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Sum of the sizes of the accountable (charged) mappings, from smaps,
 * read with a fixed buffer (no allocation while reading). */
static size_t charged_bytes(void) {
  int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  static char buf[1 << 16];
  static char line[4096];
  size_t len = 0, total = 0, size_kb = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < r; i++) {
      char c = buf[i];
      if (c != '\n') {
        if (len < sizeof(line) - 1) line[len++] = c;
        continue;
      }
      line[len] = '\0';
      len = 0;
      if (strncmp(line, "Size:", 5) == 0) {
        size_kb = strtoul(line + 5, NULL, 10);
      } else if (strncmp(line, "VmFlags:", 8) == 0) {
        const char *f = line + 8;
        for (; *f; f++)
          if (f[0] == 'a' && f[1] == 'c' && f[-1] == ' ' && (f[2] == ' ' || f[2] == '\0')) {
            total += size_kb * KiB;
            break;
          }
      }
    }
  }
  close(fd);
  return total;
}

static size_t base_charged;

static void purge_all(void) {
  /* malloc_trim(0) purges every arena for good (decommits, here). */
  malloc_trim(0);
}

static size_t committed_stat(void) {
  uint64_t e = 1;
  size_t sz = sizeof(e);
  assert_int_equal(mallctl("epoch", &e, &sz, &e, sizeof(e)), 0);
  size_t v = 0;
  sz = sizeof(v);
  assert_int_equal(mallctl("stats.committed", &v, &sz, NULL, 0), 0);
  return v;
}

/* The charge since the start is at most held * (1 + rel) + slack. */
static void check_charge(const char *what, size_t held, double rel, size_t slack) {
  size_t now = charged_bytes();
  size_t grown = now > base_charged ? now - base_charged : 0;
  double limit = (double)held * (1.0 + rel) + (double)slack;
  print_message("%s: holds %.1f MiB, charged +%.1f MiB (limit %.1f MiB)\n", what, (double)held / MiB,
                (double)grown / MiB, limit / MiB);
  if ((double)grown > limit)
    fail_msg("%s: charged +%zu bytes for %zu bytes held (limit %.0f)", what, grown, held, limit);
}

#define SLACK (8 * MiB) /* metadata, one spare arena chunk, the thread caches */

static void test_opt(void **state) {
  (void)state;
  const char *v = NULL;
  size_t sz = sizeof(v);
  assert_int_equal(mallctl("opt.commit", &v, &sz, NULL, 0), 0);
  assert_string_equal(v, "on");
}

static void test_100k(void **state) {
  (void)state;
  enum { N = 1500 };
  static void *p[N];
  size_t held = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(100 * KiB);
    assert_non_null(p[i]);
    memset(p[i], 1, 100 * KiB);
    assert_int_equal(malloc_usable_size(p[i]), 100 * KiB); /* a page multiple, not the 112 KiB class */
    held += 100 * KiB;
  }
  check_charge("1500 x 100 KiB", held, 0.035, SLACK);
  /* Half freed, purged: the charge follows what is held. Arena chunks stay
   * charged while any of their runs is live, so free whole ones: the
   * upper half of the allocations. */
  held = 0;
  for (int i = 0; i < N; i++) {
    if (i >= N / 2) {
      free(p[i]);
      p[i] = NULL;
    } else {
      held += 100 * KiB;
    }
  }
  purge_all();
  check_charge("750 x 100 KiB after frees and a purge", held, 0.05, SLACK);
  for (int i = 0; i < N; i++) free(p[i]);
  purge_all();
  check_charge("100 KiB blocks all freed and purged", 0, 0, SLACK);
}

static void test_3m(void **state) {
  (void)state;
  enum { N = 64 };
  static void *p[N];
  size_t held = 0;
  for (int i = 0; i < N; i++) {
    p[i] = malloc(3 * MiB);
    assert_non_null(p[i]);
    memset(p[i], 1, 3 * MiB);
    held += malloc_usable_size(p[i]);
  }
  check_charge("64 x 3 MiB", held, 0.01, SLACK);
  /* Freed and allocated again (the freed ranges are reused). */
  for (int i = 0; i < N; i += 2) free(p[i]);
  for (int i = 0; i < N; i += 2) {
    p[i] = malloc(3 * MiB);
    assert_non_null(p[i]);
    memset(p[i], 2, 3 * MiB);
  }
  purge_all();
  check_charge("64 x 3 MiB, half of them freed and allocated again", held, 0.01, SLACK);
  for (int i = 0; i < N; i++) free(p[i]);
  purge_all();
  check_charge("3 MiB blocks all freed and purged", 0, 0, SLACK);
}

static void test_huge_resize(void **state) {
  (void)state;
  enum { N = 24 };
  static void *p[N], *spacer[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(3 * MiB);
    spacer[i] = malloc(9 * MiB);
    assert_non_null(p[i]);
    assert_non_null(spacer[i]);
    memset(p[i], 3, 3 * MiB);
  }
  for (int i = 0; i < N; i++) free(spacer[i]);
  purge_all();
  size_t held = 0;
  for (int i = 0; i < N; i++) held += malloc_usable_size(p[i]);
  check_charge("24 x 3 MiB, spacers freed", held, 0.01, SLACK);
  /* Grow in place into the freed (decommitted) spacers. */
  unsigned grown = 0;
  held = 0;
  for (int i = 0; i < N; i++) {
    size_t u = xallocx(p[i], 7 * MiB, 0, 0);
    if (u >= 7 * MiB) {
      grown++;
      memset(p[i], 4, u);
    }
    held += malloc_usable_size(p[i]);
  }
  print_message("%u of %d grown in place\n", grown, N);
  assert_true(grown >= N / 2);
  check_charge("grown to 7 MiB in place", held, 0.01, SLACK);
  /* Shrink in place: to 5 MiB (a chunk given back, the tail of the new
   * last chunk decommitted), then within the same chunks to 4.5 MiB. */
  held = 0;
  for (int i = 0; i < N; i++) {
    xallocx(p[i], 5 * MiB, 0, 0);
    xallocx(p[i], 4 * MiB + 512 * KiB, 0, 0);
    held += malloc_usable_size(p[i]);
  }
  purge_all();
  check_charge("shrunk to 4.5 MiB in place", held, 0.01, SLACK);
  /* Grow within the same chunks again (the tail is committed again). */
  held = 0;
  for (int i = 0; i < N; i++) {
    size_t u = xallocx(p[i], 5 * MiB + 768 * KiB, 0, 0);
    memset(p[i], 5, u);
    held += malloc_usable_size(p[i]);
  }
  check_charge("grown to 5.75 MiB in place", held, 0.01, SLACK);
  /* realloc too (2.3 MiB: the class would be 2.5 MiB). */
  held = 0;
  for (int i = 0; i < N; i++) {
    p[i] = realloc(p[i], 2 * MiB + 300 * KiB);
    assert_non_null(p[i]);
    assert_int_equal(malloc_usable_size(p[i]), 2 * MiB + 300 * KiB);
    held += 2 * MiB + 300 * KiB;
  }
  purge_all();
  check_charge("realloc to 2.3 MiB", held, 0.01, SLACK);
  for (int i = 0; i < N; i++) free(p[i]);
  purge_all();
  check_charge("resized blocks all freed and purged", 0, 0, SLACK);
}

/*
 * Arena chunks are committed as their runs reach their pages: 100 KiB
 * blocks are 25-page runs, 20 to a 512-page chunk, and the 12 pages left
 * at each chunk's end are never committed (committed whole, they cost
 * 2.3 %). Many blocks (so that the fixed costs are small against 1 %),
 * each written at its first and last byte (its pages are usable); the
 * charge of the second half alone too (the fixed costs cancel); then
 * stats.committed against smaps.
 */
static void test_100k_chunk_tails(void **state) {
  (void)state;
  enum { N = 6000 };
  static void *p[N];
  size_t c0 = committed_stat(), s0 = charged_bytes(), s_half = 0, c_half = 0;
  for (int i = 0; i < N; i++) {
    if (i == N / 2) {
      check_charge("3000 x 100 KiB", (size_t)i * 100 * KiB, 0.01, SLACK);
      s_half = charged_bytes();
      c_half = committed_stat();
    }
    p[i] = malloc(100 * KiB);
    assert_non_null(p[i]);
    ((char *)p[i])[0] = 1;
    ((char *)p[i])[100 * KiB - 1] = 1;
  }
  size_t held = (size_t)N * 100 * KiB;
  size_t s1 = charged_bytes(), c1 = committed_stat();
  double ratio = (double)(s1 - s_half) / (double)(held / 2);
  print_message("second half: %.4f charged per byte held; stats.committed +%zu, smaps +%zu\n", ratio, c1 - c0,
                s1 - s0);
  assert_true(ratio <= 1.01);
  check_charge("6000 x 100 KiB", held, 0.01, SLACK);
  /* stats.committed follows the commits exactly; smaps has the metadata
   * (base memory) besides. */
  assert_true(c1 - c0 <= s1 - s0 + MiB && s1 - s0 <= c1 - c0 + 4 * MiB);
  assert_true(c1 - c_half <= s1 - s_half + MiB && s1 - s_half <= c1 - c_half + 4 * MiB);
  /* Freed in address order of the blocks, but every other one first: the
   * chunks' runs are free, coalesced, then whole chunks given back. */
  for (int i = 0; i < N; i += 2) free(p[i]);
  for (int i = 0; i < N; i += 2) {
    p[i] = malloc(100 * KiB);
    assert_non_null(p[i]);
    ((char *)p[i])[100 * KiB - 1] = 2;
  }
  check_charge("6000 x 100 KiB, half freed and allocated again", held, 0.01, SLACK);
  for (int i = 0; i < N; i++) free(p[i]);
  purge_all();
  size_t c2 = committed_stat(), s2 = charged_bytes();
  print_message("after free and purge: committed %zd, smaps %zd from the start of the test\n", (ssize_t)(c2 - c0),
                (ssize_t)(s2 - s0));
  /* At most the spare chunk (kept wholly free) and metadata. */
  assert_true(c2 <= c0 + 2 * MiB);
  assert_true(s2 <= s0 + 4 * MiB);
}

/* stats.committed says what smaps says, within the allocator's other
 * charged memory (the library's data segment is not counted by it). */
static void test_committed_stat(void **state) {
  (void)state;
  enum { N = 40 };
  static void *p[N];
  size_t c0 = committed_stat(), s0 = charged_bytes();
  for (int i = 0; i < N; i++) {
    p[i] = malloc(3 * MiB + 100 * KiB);
    assert_non_null(p[i]);
  }
  size_t c1 = committed_stat(), s1 = charged_bytes();
  print_message("committed +%zu, smaps +%zu\n", c1 - c0, s1 - s0);
  size_t dc = c1 - c0, ds = s1 - s0;
  assert_true(dc <= ds + MiB && ds <= dc + MiB);
  for (int i = 0; i < N; i++) free(p[i]);
  purge_all();
  size_t c2 = committed_stat(), s2 = charged_bytes();
  print_message("after free and purge: committed %zd, smaps %zd from the start\n", (ssize_t)(c2 - c0),
                (ssize_t)(s2 - s0));
  assert_true(c2 <= c0 + MiB);
  assert_true(s2 <= s0 + MiB);
}

int main(void) {
  free(malloc(1)); /* initialized before the baseline */
  base_charged = charged_bytes();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opt),        cmocka_unit_test(test_100k),
      cmocka_unit_test(test_3m),         cmocka_unit_test(test_huge_resize),
      cmocka_unit_test(test_committed_stat), cmocka_unit_test(test_100k_chunk_tails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
