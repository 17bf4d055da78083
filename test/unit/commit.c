/*
 * The commit option in the default mode (commit:auto on a machine whose
 * vm.overcommit_memory is not 2, or commit:off): strict-mode decommit
 * costs nothing there. A workload of huge, large and small blocks, frees,
 * purges and in-place resizes makes no mprotect call, no PROT_NONE or
 * MAP_FIXED mapping, no commit or decommit; every kernel mapping that
 * overlaps xalloc's ranges is readable and writable; their number stays
 * within the O(K log N) bound of the reservations; usable sizes are the
 * classes. Any decommit in this mode would show up in each of these.
 */
#include "xtest.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>

#pragma GCC diagnostic ignored "-Wunused-function"
#include "owned.h"
#include "wrap.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/stats.h"
#include "xalloc/xalloc.h"

static int overcommit_mode(void) {
  int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY);
  if (fd < 0) return -1;
  char c = 0;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  return n == 1 ? c - '0' : -1;
}

static unsigned lg2(size_t x) {
  unsigned l = 0;
  while (x > 1) {
    x >>= 1;
    l++;
  }
  return l;
}

/* Kernel mappings overlapping xalloc's ranges; *none gets those that are
 * PROT_NONE. */
static size_t xalloc_maps(size_t *none) {
  owned_collect();
  size_t ne = maps_parse(), count = 0;
  *none = 0;
  for (size_t i = 0; i < ne; i++) {
    if (!owned_hit(maps_entries[i].lo, maps_entries[i].hi)) continue;
    count++;
    if (maps_entries[i].perms[0] == '-' && maps_entries[i].perms[1] == '-') (*none)++;
  }
  return count;
}

#define MiB ((size_t)1 << 20)

static void test_default_mode_no_extra_calls(void **state) {
  (void)state;
  free(malloc(1));
  if (opt_commit == COMMIT_AUTO && overcommit_mode() == 2) skip(); /* strict here: auto is on */
  assert_false(pages_strict);
  assert_int_equal(sz_page_min, SIZE_MAX);
  assert_int_equal(nallocx(100 << 10, 0), 112 << 10); /* the class */
  unsigned long mp0 = wrap_nmprotect, none0 = wrap_nmmap_none, fixed0 = wrap_nmmap_fixed, mm0 = wrap_nmmap;
  enum { NH = 120, NL = 1500, NS = 4000 };
  static void *h[NH], *l[NL], *s[NS];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < NH; i++) {
      h[i] = malloc(3 * MiB + (size_t)(i % 7) * 100000);
      assert_non_null(h[i]);
      memset(h[i], 1, 4096);
    }
    for (int i = 0; i < NL; i++) {
      l[i] = malloc(100 << 10);
      assert_non_null(l[i]);
      memset(l[i], 2, 4096);
    }
    for (int i = 0; i < NS; i++) {
      s[i] = malloc((size_t)(i % 900) + 1);
      assert_non_null(s[i]);
    }
    for (int i = 0; i < NH; i += 2) free(h[i]);
    for (int i = 1; i < NH; i += 2) {
      xallocx(h[i], 7 * MiB, 0, 0); /* grow in place where the neighbour was freed */
      xallocx(h[i], 2 * MiB + 300000, 0, 0);
      h[i] = realloc(h[i], 5 * MiB);
      assert_non_null(h[i]);
    }
    for (int i = 0; i < NL; i += 3) free(l[i]);
    malloc_trim(0); /* purges everything for good */
    for (int i = 1; i < NH; i += 2) free(h[i]);
    for (int i = 0; i < NL; i++)
      if (i % 3 != 0) free(l[i]);
    for (int i = 0; i < NS; i++) free(s[i]);
    malloc_trim(0);
  }
  pages_stats_t ps;
  pages_stats_get(&ps);
  stats_totals_t t;
  stats_totals(&t);
  size_t none = 0, entries = xalloc_maps(&none);
  size_t bound = 2 * (size_t)lg2(t.mapped >> 21) + 8; /* K = 2 reservations per size */
  print_message("%lu mmap calls, %zu xalloc maps entries (bound %zu), %zu PROT_NONE, %lu mprotect, "
                "%lu PROT_NONE mmap, %lu MAP_FIXED mmap, %llu commit, %llu decommit; committed %zu of %zu mapped\n",
                wrap_nmmap - mm0, entries, bound, none, wrap_nmprotect - mp0, wrap_nmmap_none - none0,
                wrap_nmmap_fixed - fixed0, (unsigned long long)ps.ncommit, (unsigned long long)ps.ndecommit,
                t.committed, t.mapped);
  assert_int_equal(wrap_nmprotect - mp0, 0);
  assert_int_equal(wrap_nmmap_none - none0, 0);
  assert_int_equal(wrap_nmmap_fixed - fixed0, 0);
  assert_int_equal(ps.ncommit, 0);
  assert_int_equal(ps.ndecommit, 0);
  assert_int_equal(none, 0);
  assert_true(entries <= bound);
  assert_int_equal(t.committed, t.mapped); /* nothing decommitted */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_mode_no_extra_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
