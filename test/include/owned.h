/*
 * Unit-test helpers: the exact set of address ranges xalloc owns (base
 * blocks; per arena of arenas[]: free chunk ranges, arena chunks, huge
 * allocations), and what /proc/self/maps and mincore say about them.
 * Call with no other thread allocating.
 */
#ifndef XALLOC_TEST_OWNED_H
#define XALLOC_TEST_OWNED_H

#include "wrap.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xalloc/internal/arena.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/pages.h"

typedef struct {
  uintptr_t lo, hi;
  int kind; /* 0 base, 1 free chunk range, 2 arena chunk, 3 huge */
  bool clean;
} owned_t;

#define OWNED_MAX 65536
static owned_t owned[OWNED_MAX];
static size_t nowned;

static void owned_add(uintptr_t lo, size_t size, int kind, bool clean) {
  if (nowned < OWNED_MAX) owned[nowned++] = (owned_t){lo, lo + size, kind, clean};
}
static void owned_base_cb(void *arg, void *addr, size_t size) {
  (void)arg;
  owned_add((uintptr_t)addr, size, 0, false);
}
static int owned_cmp(const void *a, const void *b) {
  const owned_t *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Collect and sort; returns the total bytes. */
static size_t owned_collect(void) {
  nowned = 0;
  base_blocks_foreach(owned_base_cb, NULL);
  for (unsigned i = 0; i < narenas; i++) {
    arena_t *a = arenas[i];
    if (a == NULL) continue;
    xmutex_lock(&a->lock);
    for (rb_node_t *r = rb_first(&a->chunk_list); r != NULL; r = rb_next(r))
      owned_add((uintptr_t)rb_entry(r, arena_chunk_t, link)->addr, sz_chunksize, 2, false);
    xmutex_unlock(&a->lock);
    xmutex_lock(&a->chunks.mtx);
    for (rb_node_t *r = rb_first(&a->chunks.ad); r != NULL; r = rb_next(r)) {
      extent_node_t *n = rb_entry(r, extent_node_t, ad);
      owned_add((uintptr_t)n->addr, n->size, 1, n->zeroed);
    }
    xmutex_unlock(&a->chunks.mtx);
    xmutex_lock(&a->huge_mtx);
    for (rb_node_t *r = rb_first(&a->huge); r != NULL; r = rb_next(r)) {
      extent_node_t *n = rb_entry(r, extent_node_t, ad);
      owned_add((uintptr_t)n->addr, n->size, 3, false);
    }
    xmutex_unlock(&a->huge_mtx);
  }
  qsort(owned, nowned, sizeof(owned_t), owned_cmp);
  size_t total = 0;
  for (size_t i = 0; i < nowned; i++) total += owned[i].hi - owned[i].lo;
  return total;
}

/* /proc/self/maps, parsed. */
typedef struct {
  uintptr_t lo, hi;
  char perms[5];
} maps_entry_t;
#define MAPS_MAX 200000
static maps_entry_t maps_entries[MAPS_MAX];

static size_t maps_parse(void) {
  size_t ne = 0;
  for (const char *line = maps_read(); *line && ne < MAPS_MAX;) {
    unsigned long lo, hi;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3) {
      maps_entries[ne].lo = lo;
      maps_entries[ne].hi = hi;
      memcpy(maps_entries[ne].perms, perms, 5);
      ne++;
    }
    const char *nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return ne;
}

static bool owned_hit(uintptr_t lo, uintptr_t hi) {
  /* binary search for an owned range overlapping [lo, hi) */
  size_t a = 0, b = nowned;
  while (a < b) {
    size_t m = (a + b) / 2;
    if (owned[m].hi <= lo)
      a = m + 1;
    else
      b = m;
  }
  return a < nowned && owned[a].lo < hi;
}

/* Bytes of owned ranges covered by maps entries. */
static size_t owned_bytes_in_maps(void) {
  size_t ne = maps_parse(), covered = 0, j = 0;
  for (size_t i = 0; i < nowned; i++) {
    while (j > 0 && maps_entries[j - 1].hi > owned[i].lo) j--;
    for (; j < ne && maps_entries[j].lo < owned[i].hi; j++) {
      uintptr_t s = maps_entries[j].lo > owned[i].lo ? maps_entries[j].lo : owned[i].lo;
      uintptr_t e = maps_entries[j].hi < owned[i].hi ? maps_entries[j].hi : owned[i].hi;
      if (s < e) covered += e - s;
    }
  }
  return covered;
}

/*
 * The maps entries xalloc itself accounts for: entries that overlap its
 * ranges, not counting PROT_NONE entries (the application's guard pages)
 * nor the extra entry each guard page strictly inside a mapping causes.
 */
static size_t owned_maps_entries(void) {
  size_t ne = maps_parse(), count = 0;
  for (size_t i = 0; i < ne; i++) {
    if (!owned_hit(maps_entries[i].lo, maps_entries[i].hi)) continue;
    if (maps_entries[i].perms[0] == '-') continue; /* guard */
    /* Continues a mapping split by a guard page: not a new one. */
    if (i >= 2 && maps_entries[i - 1].perms[0] == '-' && maps_entries[i - 1].lo == maps_entries[i - 2].hi &&
        maps_entries[i - 1].hi == maps_entries[i].lo && maps_entries[i - 2].perms[0] != '-' &&
        owned_hit(maps_entries[i - 2].lo, maps_entries[i - 2].hi))
      continue;
    count++;
  }
  return count;
}

/* Resident pages of [lo, hi) by mincore. */
static size_t mincore_pages(uintptr_t lo, uintptr_t hi) {
  static unsigned char vec[1 << 16];
  size_t n = 0;
  for (uintptr_t a = lo; a < hi;) {
    size_t len = hi - a < sizeof(vec) * PAGE ? hi - a : sizeof(vec) * PAGE;
    if (mincore((void *)a, len, vec) != 0) return (size_t)-1;
    for (size_t i = 0; i < len / PAGE; i++) n += vec[i] & 1;
    a += len;
  }
  return n;
}
#endif
