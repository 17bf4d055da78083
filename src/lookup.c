/* lookup: what a pointer into an arena chunk is -- its usable size, the
 * checks before it is used, and the free that dispatches to its run
 * (arena.h). */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/tag.h"

size_t arena_lookup(arena_chunk_t *chunk, const void *ptr, const char *op) {
  arena_t *a = chunk->arena;
  size_t pageind = (size_t)((const char *)ptr - chunk->addr) >> LG_PAGE;
  const arena_run_t *run = arena_run_at(chunk, pageind);
  uint8_t state = run != NULL ? run->state : RUN_FREE;
  if (state == RUN_SMALL && run->binind < SZ_NBINS) {
    const sz_bin_info_t *info = &sz_bin_info[run->binind];
    size_t off = (size_t)((const char *)ptr - arena_run_addr(run));
    size_t idx = (size_t)((off * info->div_magic) >> 32);
    if (idx >= info->nregs || idx * info->reg_size != off) {
      report_bad(op, BAD_INTERIOR, ptr, info->reg_size, a->ind, NULL);
      return 0;
    }
    if (tag_present_peek(ptr)) {
      report_bad(op, BAD_FREED, ptr, info->reg_size, a->ind, NULL);
      return 0;
    }
    return info->reg_size;
  }
  if (state == RUN_LARGE) {
    size_t size = (size_t)run->npages << LG_PAGE;
    if (arena_run_addr(run) != ptr) {
      report_bad(op, BAD_INTERIOR, ptr, size, a->ind, NULL);
      return 0;
    }
    if (tag_present_peek(ptr)) {
      report_bad(op, BAD_FREED, ptr, size, a->ind, NULL);
      return 0;
    }
    return size;
  }
  report_unallocated(a, ptr, op);
  return 0;
}

void arena_dalloc(arena_chunk_t *chunk, void *ptr) {
  arena_t *a = chunk->arena;
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  arena_run_t *run = arena_run_at(chunk, pageind);
  uint8_t state = run != NULL ? run->state : RUN_FREE;
  if (state == RUN_SMALL)
    arena_dalloc_small(a, chunk, run, ptr);
  else if (state == RUN_LARGE)
    arena_dalloc_large(a, chunk, ptr, pageind);
  else
    report_unallocated(a, ptr, "free");
  arena_decay_tick(a);
}

size_t arena_salloc(const arena_chunk_t *chunk, const void *ptr) {
  size_t pageind = (size_t)((const char *)ptr - chunk->addr) >> LG_PAGE;
  const arena_run_t *run = chunk->map[pageind];
  if (run == NULL) return 0;
  if (run->state == RUN_SMALL) return sz_bin_info[run->binind].reg_size;
  if (run->state == RUN_LARGE) return (size_t)run->npages << LG_PAGE;
  return 0;
}
