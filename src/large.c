/* large: allocations of whole pages, as runs (arena.h). */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"

/* The page map entry of a large run's first page: its class if a thread
 * cache may hold that class (the free fast path then finds it there),
 * else none. Arena lock held. */
static void arena_large_mark(arena_run_t *run) {
  size_t size = (size_t)run->npages << LG_PAGE;
  unsigned ind = sz_size2index(size);
  bool fast = ind < SZ_NFAST && sz_index2size(ind) == size;
  __atomic_store_n(&run->chunk->binmap[run->pageind], (uint16_t)(fast ? ind : BININD_NONE), __ATOMIC_RELAXED);
  rtree_pw_set((uintptr_t)arena_run_addr(run), 1, fast ? rtree_pw_word(ind, (uintptr_t)arena_run_addr(run)) : 0);
}

void *arena_malloc_large(arena_t *a, size_t usize, size_t alignment, bool zero) {
  xassert((usize & PAGE_MASK) == 0 && usize <= sz_large_max);
  if (alignment < PAGE) alignment = PAGE;
  xmutex_lock(&a->lock);
  arena_run_t *run;
  bool relieved = false;
  for (;;) {
    unsigned need;
    run = arena_run_alloc(a, (uint32_t)(usize >> LG_PAGE), alignment, 0, &need);
    if (run != NULL || need == ARENA_NEED_NONE || (need == ARENA_NEED_RELIEVE && relieved)) break;
    /* A new chunk, or (the commit limit refused the run's pages) memory
     * given back once, with the arena lock dropped; then search again. */
    xmutex_unlock(&a->lock);
    bool err;
    if (need == ARENA_NEED_RELIEVE) {
      relieved = true;
      err = !arena_commit_relieve(a);
    } else {
      err = arena_chunk_add(a, usize >> LG_PAGE); /* at its page 0: aligned */
    }
    xmutex_lock(&a->lock);
    if (err) break;
  }
  if (run == NULL) {
    xmutex_unlock(&a->lock);
    errno = ENOMEM;
    return NULL;
  }
  run->state = RUN_LARGE;
  arena_large_mark(run);
  bool zeroed = run->zeroed;
  a->stats.nmalloc_large++;
  a->stats.allocated_large += usize;
  xmutex_unlock(&a->lock);
  void *ret = arena_run_addr(run);
  vg_undefined(ret, usize);
  if (zero && !zeroed)
    memset(ret, 0, usize);
  else if (!zeroed)
    tag_clear(ret);
  arena_decay_tick(a);
  return ret;
}

void arena_dalloc_large(arena_t *a, arena_chunk_t *chunk, void *ptr, size_t pageind) {
  xmutex_lock(&a->lock);
  arena_run_t *run = arena_run_at(chunk, pageind);
  if (run == NULL || run->state != RUN_LARGE || arena_run_addr(run) != ptr) {
    xmutex_unlock(&a->lock);
    if (run != NULL && run->state == RUN_LARGE)
      report_bad("free", BAD_INTERIOR, ptr, (size_t)run->npages << LG_PAGE, a->ind, NULL);
    else
      report_unallocated(a, ptr, "free");
    return;
  }
  size_t size = (size_t)run->npages << LG_PAGE;
  vg_freelike(ptr);
  vg_undefined(ptr, size);
  if (unlikely(opt_junk)) memset(ptr, JUNK_FREE, size);
  tag_set(ptr);
  vg_noaccess(ptr, size);
  report_freed_large(a, ptr, size);
  a->stats.ndalloc_large++;
  a->stats.allocated_large -= size;
  a->nactive -= run->npages;
  arena_run_dalloc(a, run, true);
  xmutex_unlock(&a->lock);
  arena_chunks_flush(a);
}

bool arena_ralloc_large_in_place(arena_chunk_t *chunk, void *ptr, size_t oldsize, size_t usize,
                                 bool zero) {
  arena_t *a = chunk->arena;
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  uint32_t new_np = (uint32_t)(usize >> LG_PAGE);
  bool err = true;
  xmutex_lock(&a->lock);
  arena_run_t *run = chunk->map[pageind];
  if (run == NULL || run->state != RUN_LARGE || arena_run_addr(run) != ptr ||
      ((size_t)run->npages << LG_PAGE) != oldsize)
    goto out;
  uint32_t old_np = run->npages;
  if (new_np == old_np) {
    err = false;
  } else if (new_np < old_np) {
    arena_run_t *tail = arena_run_desc_alloc(a, 0);
    if (tail == NULL) goto out;
    tail->chunk = chunk;
    tail->pageind = run->pageind + new_np;
    tail->npages = old_np - new_np;
    run->npages = new_np;
    /* Page maps: the run's new last page; the tail's last page (the run's
     * old last) maps to the tail until arena_run_dalloc clears it. */
    chunk->map[run->pageind + new_np - 1] = run;
    chunk->map[tail->pageind + tail->npages - 1] = tail;
    arena_large_mark(run);
    tail->state = RUN_LARGE;
    a->nactive -= tail->npages;
    a->stats.allocated_large -= oldsize - usize;
    arena_run_dalloc(a, tail, true);
    err = false;
  } else {
    uint32_t next_ind = run->pageind + old_np, extra = new_np - old_np;
    if (next_ind >= arena_chunk_npages) goto out;
    arena_run_t *fr = chunk->map[next_ind];
    if (fr == NULL || fr->state != RUN_FREE || fr->npages < extra) goto out;
    /* pages_strict: the new pages committed (else the caller moves it). */
    if (arena_chunk_commit_to(a, chunk, run->pageind + new_np)) goto out;
    arena_run_t *spare = arena_run_desc_alloc(a, 0);
    if (spare == NULL) goto out;
    bool zeroed = arena_pages_take(a, fr, 0, extra, &spare);
    if (spare != NULL) arena_run_desc_free(a, spare);
    /* Page maps: the free run's first page (now inside the run) and the
     * run's old last page are cleared, its new last page set. */
    chunk->map[next_ind] = NULL;
    if (old_np > 1) chunk->map[run->pageind + old_np - 1] = NULL;
    chunk->map[run->pageind + new_np - 1] = run;
    run->npages = new_np;
    arena_large_mark(run);
    a->nactive += extra;
    a->stats.allocated_large += usize - oldsize;
    xmutex_unlock(&a->lock);
    if (zero && !zeroed) memset((char *)ptr + oldsize, 0, usize - oldsize);
    return false;
  }
out:
  xmutex_unlock(&a->lock);
  arena_chunks_flush(a);
  return err;
}
