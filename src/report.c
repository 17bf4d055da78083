/* report: one line for every bad call (double, invalid and mis-sized frees),
 * and the rings of recent large and huge frees that name them (arena.h). */
#include <stdlib.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/tag.h"

uint64_t arena_nreports;
void (*arena_report_hook)(const char *line);

void arena_report_ex(const char *what, const void *ptr, size_t size, unsigned arena_ind,
                     const char *detail) {
  char buf[384];
  size_t n = util_format(buf, sizeof(buf), "xalloc: %s of %p", what, ptr);
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
  __atomic_fetch_add(&arena_nreports, 1, __ATOMIC_RELAXED);
  if (arena_report_hook != NULL)
    arena_report_hook(buf);
  else
    util_write(buf);
  if (opt_abort) abort();
}

void arena_report(const char *what, const void *ptr, size_t size, unsigned arena_ind) {
  arena_report_ex(what, ptr, size, arena_ind, NULL);
}

void arena_report_bad(const char *op, int kind, const void *ptr, size_t size, unsigned arena_ind) {
  static const char *const reason[] = {"already freed", "interior pointer", "pointer into a free run",
                                       "pointer into free chunk memory",
                                       "pointer not allocated by xalloc"};
  char what[96];
  if (kind == BAD_FREED && strncmp(op, "free", 4) == 0)
    util_format(what, sizeof(what), "double free");
  else
    util_format(what, sizeof(what), "invalid %s (%s)", op, reason[kind]);
  arena_report(what, ptr, size, arena_ind);
}

/* Remembered frees of large (arena lock) and huge (huge_mtx) allocations. */
static void arena_freed_record(arena_freed_t *ring, unsigned *next, const void *ptr, size_t usize) {
  arena_freed_t *e = &ring[*next % ARENA_FREED_RING];
  e->addr_x = (uintptr_t)ptr ^ tcache_tag_key;
  e->usize = usize;
  (*next)++;
}

static size_t arena_freed_find(const arena_freed_t *ring, const void *ptr) {
  for (unsigned i = 0; i < ARENA_FREED_RING; i++)
    if (ring[i].usize != 0 && (ring[i].addr_x ^ tcache_tag_key) == (uintptr_t)ptr) return ring[i].usize;
  return 0;
}

void arena_freed_large(arena_t *a, const void *ptr, size_t usize) {
  arena_freed_record(a->freed_large, &a->freed_large_next, ptr, usize);
}

void arena_freed_huge(arena_t *a, const void *ptr, size_t usize) {
  arena_freed_record(a->freed_huge, &a->freed_huge_next, ptr, usize);
}

void arena_report_unowned(const char *op, const void *ptr) {
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arenas[i];
    if (a == NULL) continue;
    xmutex_lock(&a->huge_mtx);
    size_t usize = arena_freed_find(a->freed_huge, ptr);
    xmutex_unlock(&a->huge_mtx);
    /* Still unowned (checked by the caller): nothing was allocated there
     * since it was freed. */
    if (usize != 0) {
      arena_report_bad(op, BAD_FREED, ptr, usize, a->ind);
      return;
    }
  }
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arenas[i];
    if (a != NULL && chunk_contains(&a->chunks, ptr)) {
      arena_report_bad(op, BAD_FREE_CHUNK, ptr, 0, a->ind);
      return;
    }
  }
  arena_report_bad(op, BAD_NOT_OURS, ptr, 0, ARENA_IND_NONE);
}

/* A pointer into pages that hold no allocation: a double free if the
 * object still carries the tag its first free wrote (with its size if the
 * free is remembered), else a pointer into a free run. */
void arena_report_unallocated_op(arena_t *a, const void *ptr, const char *op) {
  if (tcache_tagged_peek(ptr)) {
    xmutex_lock(&a->lock);
    size_t usize = arena_freed_find(a->freed_large, ptr);
    xmutex_unlock(&a->lock);
    arena_report_bad(op, BAD_FREED, ptr, usize, a->ind);
  } else {
    arena_report_bad(op, BAD_FREE_RUN, ptr, 0, a->ind);
  }
}
