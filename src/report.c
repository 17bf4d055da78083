/* report: the one line printed for every bad call, and the rings of
 * recent large and huge frees that name a double free (report.h). */
#include <stdlib.h>

#include "xalloc/internal/report.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"

uint64_t report_count;
void (*report_hook)(const char *line);

/* Operations that free: a pointer freed already is a double free. */
static bool report_op_frees(const char *op) {
  return strncmp(op, "free", 4) == 0 || strcmp(op, "dallocx") == 0 || strcmp(op, "sdallocx") == 0;
}

void report_bad(const char *op, report_kind_t kind, const void *ptr, size_t size, unsigned arena_ind,
                const char *detail) {
  static const char *const reason[] = {
      [BAD_FREED] = "already freed",
      [BAD_INTERIOR] = "interior pointer",
      [BAD_FREE_RUN] = "pointer into a free run",
      [BAD_FREE_CHUNK] = "pointer into free chunk memory",
      [BAD_NOT_OURS] = "pointer not allocated by xalloc",
      [BAD_NOT_BLOCK] = "not an allocated block",
  };
  char buf[384];
  size_t n;
  switch (kind) {
  case BAD_FREED:
    n = report_op_frees(op) ? util_format(buf, sizeof(buf), "xalloc: double free")
                            : util_format(buf, sizeof(buf), "xalloc: invalid %s (%s)", op, reason[kind]);
    break;
  case BAD_TAG_LOST:
    n = util_format(buf, sizeof(buf), "xalloc: write after free (or double free) detected %s",
                    strcmp(op, "malloc") == 0        ? "at malloc"
                    : strcmp(op, "remote free") == 0 ? "on its way back from another thread"
                                                     : "leaving the thread cache");
    break;
  case BAD_SIZE: n = util_format(buf, sizeof(buf), "xalloc: mis-sized free"); break;
  case BAD_ALIGN: n = util_format(buf, sizeof(buf), "xalloc: mis-aligned free"); break;
  case BAD_TCACHE: n = util_format(buf, sizeof(buf), "xalloc: %s with a tcache that does not exist", op); break;
  default: n = util_format(buf, sizeof(buf), "xalloc: invalid %s (%s)", op, reason[kind]); break;
  }
  n += util_format(buf + n, sizeof(buf) - n, " of %p", ptr);
  if (size != 0 && arena_ind != ARENA_IND_NONE)
    n += util_format(buf + n, sizeof(buf) - n, " (size class %zu, arena %u)", size, arena_ind);
  else if (size != 0)
    n += util_format(buf + n, sizeof(buf) - n, " (size class %zu)", size);
  else if (arena_ind != ARENA_IND_NONE)
    n += util_format(buf + n, sizeof(buf) - n, " (arena %u)", arena_ind);
  if (n < sizeof(buf) && detail != NULL) n += util_format(buf + n, sizeof(buf) - n, ": %s", detail);
  if (n > sizeof(buf) - 2) n = sizeof(buf) - 2;
  buf[n] = '\n';
  buf[n + 1] = '\0';
  __atomic_fetch_add(&report_count, 1, __ATOMIC_RELAXED);
  if (report_hook != NULL)
    report_hook(buf);
  else
    util_write(buf);
  if (opt_abort) abort();
}

void report_bad_find(const char *op, report_kind_t kind, const void *ptr, const char *detail) {
  const uint8_t *meta = rtree_get((uintptr_t)ptr);
  size_t size = 0;
  unsigned ind = ARENA_IND_NONE;
  if (meta != NULL && *meta == META_ARENA_CHUNK) {
    const arena_chunk_t *chunk = (const arena_chunk_t *)meta;
    ind = chunk->arena->ind;
    size = arena_salloc(chunk, ptr);
  } else if (meta != NULL && *meta == META_HUGE) {
    const extent_node_t *node = (const extent_node_t *)meta;
    ind = ((const arena_t *)node->arena)->ind;
    size = node->usize;
  }
  report_bad(op, kind, ptr, size, ind, detail);
}

/* Remembered frees of large (arena lock) and huge (huge_mtx) allocations.
 * The address is stored xor the tag key: the ring holds no pointer into
 * the heap (for valgrind's leak check and conservative scanners). */
static void report_freed_record(arena_freed_t *ring, unsigned *next, const void *ptr, size_t usize) {
  arena_freed_t *e = &ring[*next % ARENA_FREED_RING];
  e->addr_x = (uintptr_t)ptr ^ tag_key;
  e->usize = usize;
  (*next)++;
}

static size_t report_freed_find(const arena_freed_t *ring, const void *ptr) {
  for (unsigned i = 0; i < ARENA_FREED_RING; i++)
    if (ring[i].usize != 0 && (ring[i].addr_x ^ tag_key) == (uintptr_t)ptr) return ring[i].usize;
  return 0;
}

void report_freed_large(arena_t *a, const void *ptr, size_t usize) {
  report_freed_record(a->freed_large, &a->freed_large_next, ptr, usize);
}

void report_freed_huge(arena_t *a, const void *ptr, size_t usize) {
  report_freed_record(a->freed_huge, &a->freed_huge_next, ptr, usize);
}

void report_unowned(const char *op, const void *ptr) {
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    if (a == NULL) continue;
    xmutex_lock(&a->huge_mtx);
    size_t usize = report_freed_find(a->freed_huge, ptr);
    xmutex_unlock(&a->huge_mtx);
    /* Still unowned (checked by the caller): nothing was allocated there
     * since it was freed. */
    if (usize != 0) {
      report_bad(op, BAD_FREED, ptr, usize, a->ind, NULL);
      return;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    if (a != NULL && chunk_contains(&a->chunks, ptr)) {
      report_bad(op, BAD_FREE_CHUNK, ptr, 0, a->ind, NULL);
      return;
    }
  }
  report_bad(op, BAD_NOT_OURS, ptr, 0, ARENA_IND_NONE, NULL);
}

/* Whether ptr's page can be read: not past an arena chunk's commit mark
 * (pages_strict: PROT_NONE there, and never handed out). */
static bool report_readable(const void *ptr) {
  const arena_chunk_t *chunk = rtree_get((uintptr_t)ptr);
  if (chunk == NULL || chunk->kind != META_ARENA_CHUNK) return true;
  size_t pageind = (size_t)((const char *)ptr - chunk->addr) >> LG_PAGE;
  return pageind < __atomic_load_n(&chunk->ncommitted, __ATOMIC_RELAXED);
}

void report_unallocated(arena_t *a, const void *ptr, const char *op) {
  if (report_readable(ptr) && tag_present_peek(ptr)) {
    xmutex_lock(&a->lock);
    size_t usize = report_freed_find(a->freed_large, ptr);
    xmutex_unlock(&a->lock);
    report_bad(op, BAD_FREED, ptr, usize, a->ind, NULL);
  } else {
    report_bad(op, BAD_FREE_RUN, ptr, 0, a->ind, NULL);
  }
}
