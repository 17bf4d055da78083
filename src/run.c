/* run: page runs in arena chunks -- descriptors, free runs, page state,
 * chunks of runs (see arena.h and run.h). */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/vg.h"

arena_run_t *arena_run_desc_alloc(arena_t *a, unsigned nwords) {
  arena_run_t *run = a->desc_cache[nwords];
  if (run != NULL) {
    a->desc_cache[nwords] = run->purge_next;
    a->ndesc_cache[nwords]--;
    memset(run, 0, sizeof(*run) + nwords * sizeof(uint64_t)); /* as base's pools give them */
  } else {
    run = base_pool_alloc(&arena_run_pools[nwords]);
    if (run == NULL) return NULL;
  }
  run->pool = (uint8_t)nwords;
  return run;
}

void arena_run_desc_free(arena_t *a, arena_run_t *run) {
  unsigned w = run->pool;
  if (a->ndesc_cache[w] < ARENA_DESC_CACHE) {
    run->purge_next = a->desc_cache[w];
    a->desc_cache[w] = run;
    a->ndesc_cache[w]++;
    return;
  }
  base_pool_free(&arena_run_pools[w], run);
}

/* For a chunk being made, with no lock held: straight from base. */
static arena_run_t *arena_run_desc_alloc_unlocked(void) {
  arena_run_t *run = base_pool_alloc(&arena_run_pools[0]);
  if (run != NULL) run->pool = 0;
  return run;
}

/* runs_avail and the purge engine's lists (dirty.h). Arena lock held. */
void arena_avail_insert(arena_t *a, arena_run_t *run) {
  rb_insert(&a->runs_avail, &run->link);
  dirty_add(&a->dirty, DIRTY_D, &run->dirty_link, run->ndirty);
  dirty_add(&a->dirty, DIRTY_M, &run->muzzy_link, run->nmuzzy);
}

void arena_avail_remove(arena_t *a, arena_run_t *run) {
  rb_remove(&a->runs_avail, &run->link);
  dirty_del(&a->dirty, DIRTY_D, &run->dirty_link, run->ndirty);
  dirty_del(&a->dirty, DIRTY_M, &run->muzzy_link, run->nmuzzy);
}

/* Set bits of map over pages [start, start+n). */
static size_t arena_bits_count(const uint64_t *map, size_t start, size_t n) {
  size_t count = 0;
  for (size_t i = start; i < start + n;) {
    uint64_t w = map[i >> 6] >> (i & 63);
    size_t take = 64 - (i & 63);
    if (take > start + n - i) take = start + n - i;
    if (take < 64) w &= ((uint64_t)1 << take) - 1;
    count += (size_t)__builtin_popcountll(w);
    i += take;
  }
  return count;
}

static void arena_bits_set(uint64_t *map, size_t start, size_t n, bool set) {
  for (size_t i = start; i < start + n;) {
    size_t take = 64 - (i & 63);
    if (take > start + n - i) take = start + n - i;
    uint64_t mask = (take < 64 ? ((uint64_t)1 << take) - 1 : ~(uint64_t)0) << (i & 63);
    if (set)
      map[i >> 6] |= mask;
    else
      map[i >> 6] &= ~mask;
    i += take;
  }
}

size_t arena_dirty_count(const arena_chunk_t *chunk, size_t start, size_t n) {
  return arena_bits_count(chunk->dirtymap, start, n);
}
size_t arena_muzzy_count(const arena_chunk_t *chunk, size_t start, size_t n) {
  return arena_bits_count(chunk->muzzymap, start, n);
}

/* Pages [start, start+n) of chunk become dirty (freed), muzzy (lazily
 * purged: dirty pages only) or clean (purged for good). */
static void arena_pages_set_dirty(arena_chunk_t *chunk, size_t start, size_t n) {
  arena_bits_set(chunk->dirtymap, start, n, true);
  arena_bits_set(chunk->muzzymap, start, n, false);
}
void arena_pages_set_clean(arena_chunk_t *chunk, size_t start, size_t n) {
  arena_bits_set(chunk->dirtymap, start, n, false);
  arena_bits_set(chunk->muzzymap, start, n, false);
}
void arena_pages_dirty_to_muzzy(arena_chunk_t *chunk, size_t start, size_t n) {
  for (size_t i = start; i < start + n;) {
    size_t take = 64 - (i & 63);
    if (take > start + n - i) take = start + n - i;
    uint64_t mask = (take < 64 ? ((uint64_t)1 << take) - 1 : ~(uint64_t)0) << (i & 63);
    chunk->muzzymap[i >> 6] |= chunk->dirtymap[i >> 6] & mask;
    chunk->dirtymap[i >> 6] &= ~mask;
    i += take;
  }
}

/* A free run's page counts from the maps. */
static void arena_run_count(arena_run_t *run) {
  run->ndirty = (uint32_t)arena_dirty_count(run->chunk, run->pageind, run->npages);
  run->nmuzzy = (uint32_t)arena_muzzy_count(run->chunk, run->pageind, run->npages);
}

static void arena_chunk_list_insert(arena_t *a, arena_chunk_t *chunk);

/*
 * pages_strict: an arena chunk is committed from its start up to a
 * high-water mark (chunk->ncommitted), raised when a run first reaches
 * past it, by at least ARENA_COMMIT_STEP pages (fewer commit calls for
 * small runs; at most that many pages committed and never used per
 * chunk). Pages past the mark are free, clean and uncharged. A chunk whose
 * mark is short of its end is one hole (chunk_nholes: it may split the
 * kernel mapping in two, like a huge allocation's decommitted tail).
 */
#define ARENA_COMMIT_STEP 16u

static uint32_t arena_commit_target(uint32_t mark, uint32_t end) {
  uint32_t to = mark + ARENA_COMMIT_STEP;
  if (to < end) to = end;
  if (to > arena_chunk_npages) to = (uint32_t)arena_chunk_npages;
  return to;
}

bool arena_chunk_commit_to(arena_t *a, arena_chunk_t *chunk, uint32_t end) {
  uint32_t mark = chunk->ncommitted;
  if (likely(end <= mark)) return false;
  uint32_t to = arena_commit_target(mark, end);
  if (chunk_commit_pages(&a->chunks, chunk->addr, sz_chunksize, (size_t)mark << LG_PAGE,
                         (size_t)(to - mark) << LG_PAGE)) {
    /* The commit limit: what the run needs only, if that is less. */
    if (to == end || chunk_commit_pages(&a->chunks, chunk->addr, sz_chunksize, (size_t)mark << LG_PAGE,
                                        (size_t)(end - mark) << LG_PAGE)) {
      errno = ENOMEM;
      return true;
    }
    to = end;
  }
  if (to == arena_chunk_npages) chunk_holes_add(-1);
  __atomic_store_n(&chunk->ncommitted, to, __ATOMIC_RELAXED);
  return false;
}

/* Give a detached chunk's memory back to the chunk trees in state (no lock
 * held); the descriptor is the caller's to free. */
static void arena_chunk_giveback(arena_t *a, arena_chunk_t *chunk, unsigned state) {
  size_t committed = (size_t)chunk->ncommitted << LG_PAGE;
  if (committed < sz_chunksize) chunk_holes_add(-1);
  chunk_dalloc_commit(&a->chunks, chunk->addr, sz_chunksize, state, committed);
}

void arena_chunks_giveback(arena_t *a, arena_chunk_t *list) {
  for (arena_chunk_t *chunk = list, *next; chunk != NULL; chunk = next) {
    next = chunk->out_next;
    arena_chunk_giveback(a, chunk, chunk->out_state);
    base_pool_free(&arena_chunk_pool, chunk);
  }
}

/*
 * A new arena chunk, one free run over all of it, not yet in the arena:
 * no lock held (the chunk layer may map memory or call the user's extent
 * hooks). hint: the pages of the run it is for (what pages_strict commits
 * at first). NULL with errno ENOMEM on failure.
 */
static arena_chunk_t *arena_chunk_new(arena_t *a, size_t hint) {
  bool zeroed;
  size_t commit = (size_t)arena_commit_target(0, (uint32_t)(hint < 1 ? 1 : hint)) << LG_PAGE;
  char *addr = chunk_alloc_commit(&a->chunks, sz_chunksize, sz_chunksize, &commit, &zeroed);
  if (addr == NULL) return NULL;
  arena_chunk_t *chunk = base_pool_alloc(&arena_chunk_pool);
  arena_run_t *run = arena_run_desc_alloc_unlocked();
  if (chunk == NULL || run == NULL) goto fail;
  chunk->kind = META_ARENA_CHUNK;
  chunk->arena = a;
  chunk->addr = addr;
  chunk->map = (arena_run_t **)(chunk->binmap + ALIGNMENT_CEILING(arena_chunk_npages, 8));
  chunk->dirtymap = (uint64_t *)(chunk->map + arena_chunk_npages);
  chunk->muzzymap = chunk->dirtymap + (arena_chunk_npages + 63) / 64;
  chunk->ncommitted = (uint32_t)(commit >> LG_PAGE);
  /* A range that is not clean may hold anything: dirty; but not its
   * decommitted tail (reads as zero once committed). */
  uint32_t ndirty = zeroed ? 0 : chunk->ncommitted;
  arena_pages_set_clean(chunk, 0, arena_chunk_npages);
  if (ndirty != 0) arena_pages_set_dirty(chunk, 0, ndirty);
  for (size_t i = 0; i < arena_chunk_npages; i++) chunk->binmap[i] = BININD_NONE;
  run->chunk = chunk;
  run->pageind = 0;
  run->npages = (uint32_t)arena_chunk_npages;
  run->state = RUN_FREE;
  run->ndirty = ndirty;
  run->nmuzzy = 0;
  chunk->map[0] = run;
  chunk->map[arena_chunk_npages - 1] = run;
  /* Its pages are free: a lookup of a pointer into it finds no allocation. */
  if (rtree_set_range_chunk((uintptr_t)addr, sz_chunksize, chunk)) goto fail;
  if (commit < sz_chunksize) chunk_holes_add(1);
  vg_noaccess(addr, sz_chunksize);
  return chunk;
fail:
  if (chunk != NULL) base_pool_free(&arena_chunk_pool, chunk);
  if (run != NULL) base_pool_free(&arena_run_pools[0], run);
  chunk_dalloc_commit(&a->chunks, addr, sz_chunksize, zeroed ? CHUNK_CLEAN : CHUNK_DIRTY, commit);
  errno = ENOMEM;
  return NULL;
}

bool arena_chunk_add(arena_t *a, size_t hint) {
  arena_chunk_t *chunk = arena_chunk_new(a, hint);
  if (chunk == NULL) return true;
  xmutex_lock(&a->lock);
  arena_avail_insert(a, chunk->map[0]);
  arena_chunk_list_insert(a, chunk);
  a->nchunks++;
  xmutex_unlock(&a->lock);
  return false;
}

/* Detach a wholly free chunk from the arena, to be given back to the chunk
 * trees by arena_chunks_flush once the locks are dropped. Arena lock held. */
static void arena_chunk_dalloc(arena_t *a, arena_chunk_t *chunk) {
  arena_run_t *run = chunk->map[0];
  xassert(run->state == RUN_FREE && run->npages == arena_chunk_npages);
  arena_avail_remove(a, run);
  /* Its pages leave the arena's count (to the chunk level's): not reuse. */
  dirty_removed(&a->dirty, DIRTY_D, run->ndirty);
  dirty_removed(&a->dirty, DIRTY_M, run->nmuzzy);
  chunk->out_state = run->ndirty != 0 ? CHUNK_DIRTY : run->nmuzzy != 0 ? CHUNK_MUZZY : CHUNK_CLEAN;
  arena_run_desc_free(a, run);
  rtree_set_range((uintptr_t)chunk->addr, sz_chunksize, NULL);
  arena_chunk_list_remove(a, chunk);
  a->nchunks--;
  chunk->out_next = a->chunks_out;
  __atomic_store_n(&a->chunks_out, chunk, __ATOMIC_RELAXED);
}

void arena_chunks_flush(arena_t *a) {
  if (likely(__atomic_load_n(&a->chunks_out, __ATOMIC_RELAXED) == NULL)) return;
  xmutex_lock(&a->lock);
  arena_chunk_t *list = a->chunks_out;
  __atomic_store_n(&a->chunks_out, NULL, __ATOMIC_RELAXED);
  xmutex_unlock(&a->lock);
  arena_chunks_giveback(a, list);
}

bool arena_commit_relieve(arena_t *a) {
  /* The spare (wholly free) chunk's committed pages first. */
  xmutex_lock(&a->lock);
  bool spare = a->spare != NULL;
  if (spare) {
    arena_chunk_dalloc(a, a->spare);
    a->spare = NULL;
  }
  xmutex_unlock(&a->lock);
  arena_chunks_flush(a);
  return chunk_relieve(&a->chunks) || spare;
}

arena_run_t *arena_run_at(const arena_chunk_t *chunk, size_t pageind) {
  arena_run_t *run = __atomic_load_n(&chunk->map[pageind], __ATOMIC_ACQUIRE);
  for (size_t p = pageind; run == NULL && p-- > 0;) run = __atomic_load_n(&chunk->map[p], __ATOMIC_ACQUIRE);
  if (run == NULL || pageind < run->pageind || pageind >= (size_t)run->pageind + run->npages) return NULL;
  return run;
}

void arenas_chunks_flush(void) {
  unsigned n = __atomic_load_n(&narenas, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++) {
    arena_t *a = arena_get(i);
    if (a != NULL) arena_chunks_flush(a);
  }
}

/*
 * Take pages [fr->pageind + off, + npages) out of the free run fr. What is
 * left before and after stays free; spare is a descriptor to use if both
 * are left (set to NULL when used). Returns whether the pages read as zero.
 */
static bool arena_pages_take_impl(arena_t *a, arena_run_t *fr, uint32_t off, uint32_t npages,
                                  arena_run_t **spare) {
  arena_chunk_t *chunk = fr->chunk;
  arena_avail_remove(a, fr);
  uint32_t start = fr->pageind, lead = off, trail = fr->npages - off - npages;
  /* Counted: the pages taken and the lead (usually none); the trail's
   * counts are what is left of fr's (no count over the rest of the run:
   * O(what is taken), not O(the free run)). */
  size_t td = arena_dirty_count(chunk, start + lead, npages), tm = arena_muzzy_count(chunk, start + lead, npages);
  size_t ld = lead != 0 ? arena_dirty_count(chunk, start, lead) : 0;
  size_t lm = lead != 0 ? arena_muzzy_count(chunk, start, lead) : 0;
  uint32_t trail_d = (uint32_t)(fr->ndirty - td - ld), trail_m = (uint32_t)(fr->nmuzzy - tm - lm);
  bool zeroed = td == 0 && tm == 0;
  if (a->spare == chunk) a->spare = NULL;
  arena_run_t *lr = NULL, *tr = NULL;
  if (lead != 0 && trail != 0) {
    lr = fr;
    tr = *spare;
    *spare = NULL;
  } else if (lead != 0) {
    lr = fr;
  } else if (trail != 0) {
    tr = fr;
  } else {
    arena_run_desc_free(a, fr);
  }
  if (lr != NULL) {
    lr->pageind = start;
    lr->npages = lead;
    lr->ndirty = (uint32_t)ld;
    lr->nmuzzy = (uint32_t)lm;
    chunk->map[start] = lr;
    chunk->map[start + lead - 1] = lr;
    arena_avail_insert(a, lr);
  }
  if (tr != NULL) {
    tr->chunk = chunk;
    tr->state = RUN_FREE;
    tr->pageind = start + lead + npages;
    tr->npages = trail;
    tr->ndirty = trail_d;
    tr->nmuzzy = trail_m;
    chunk->map[tr->pageind] = tr;
    chunk->map[tr->pageind + trail - 1] = tr;
    arena_avail_insert(a, tr);
  }
  return zeroed;
}

bool arena_pages_take(arena_t *a, arena_run_t *fr, uint32_t off, uint32_t npages, arena_run_t **spare) {
  bool zeroed = arena_pages_take_impl(a, fr, off, npages, spare);
  /* Reuse (decay.h): what is left after an allocation took pages. */
  dirty_note(&a->dirty);
  return zeroed;
}

/*
 * Allocate a run of npages at alignment (a power of two >= PAGE) with a
 * descriptor of nwords bitmap words from the arena's free runs. Arena lock
 * held. NULL on OOM, with *need saying what the caller does next (run.h).
 */
arena_run_t *arena_run_alloc(arena_t *a, uint32_t npages, size_t alignment, unsigned nwords, unsigned *need) {
  *need = ARENA_NEED_NONE;
  uint32_t span = npages + (uint32_t)((alignment >> LG_PAGE) - 1);
  if (span > arena_chunk_npages) return NULL;
  arena_run_t key = {0};
  key.npages = span;
  key.chunk = NULL;
  rb_node_t *r = rb_nsearch(&a->runs_avail, &key.link);
  if (r == NULL) {
    *need = ARENA_NEED_CHUNK;
    return NULL;
  }
  arena_run_t *fr = rb_entry(r, arena_run_t, link);
  uintptr_t addr = (uintptr_t)arena_run_addr(fr);
  uint32_t off = (uint32_t)((ALIGNMENT_CEILING(addr, alignment) - addr) >> LG_PAGE);
  arena_chunk_t *chunk = fr->chunk;
  /* pages_strict: the run's pages committed (the commit call is made with
   * the arena lock held: one mprotect of pages with no content). */
  if (unlikely(fr->pageind + off + npages > chunk->ncommitted) &&
      arena_chunk_commit_to(a, chunk, fr->pageind + off + npages)) {
    *need = ARENA_NEED_RELIEVE;
    return NULL;
  }
  arena_run_t *run = arena_run_desc_alloc(a, nwords);
  arena_run_t *spare = arena_run_desc_alloc(a, 0);
  if (run == NULL || spare == NULL) {
    if (run != NULL) arena_run_desc_free(a, run);
    if (spare != NULL) arena_run_desc_free(a, spare);
    errno = ENOMEM;
    return NULL;
  }
  run->chunk = chunk;
  run->pageind = fr->pageind + off;
  run->npages = npages;
  run->zeroed = arena_pages_take(a, fr, off, npages, &spare);
  /* First and last page (a small run's others: arena_bin_nonfull_run). */
  chunk->map[run->pageind] = run;
  chunk->map[run->pageind + npages - 1] = run;
  a->nactive += npages;
  if (spare != NULL) arena_run_desc_free(a, spare);
  return run;
}

/*
 * Make the pages of run (already unlinked from any bin) free, merging with
 * free neighbours; a wholly free chunk becomes the spare, and the previous
 * spare is detached (the caller gives it back with arena_chunks_flush once
 * it has dropped its locks). Arena lock held.
 */
void arena_run_dalloc(arena_t *a, arena_run_t *run, bool dirty) {
  arena_chunk_t *chunk = run->chunk;
  if (run->state == RUN_SMALL) {
    /* Every page of a small run maps to it and has its class. */
    for (uint32_t i = 0; i < run->npages; i++) {
      chunk->map[run->pageind + i] = NULL;
      chunk->binmap[run->pageind + i] = BININD_NONE;
    }
    rtree_pw_set((uintptr_t)arena_run_addr(run), run->npages, 0);
  } else {
    /* Others: the first and last page only (a large run's class is on
     * its first page). */
    chunk->map[run->pageind] = NULL;
    chunk->map[run->pageind + run->npages - 1] = NULL;
    if (run->state == RUN_LARGE) {
      chunk->binmap[run->pageind] = BININD_NONE;
      rtree_pw_set((uintptr_t)arena_run_addr(run), 1, 0);
    }
  }
  run->state = RUN_FREE;
  if (dirty) {
    arena_pages_set_dirty(chunk, run->pageind, run->npages);
    run->ndirty = run->npages;
    run->nmuzzy = 0;
  } else {
    arena_run_count(run);
  }
  if (run->pageind > 0) {
    arena_run_t *prev = chunk->map[run->pageind - 1];
    if (prev != NULL && prev->state == RUN_FREE) {
      arena_avail_remove(a, prev);
      chunk->map[prev->pageind] = NULL;
      chunk->map[run->pageind - 1] = NULL;
      run->pageind = prev->pageind;
      run->npages += prev->npages;
      run->ndirty += prev->ndirty;
      run->nmuzzy += prev->nmuzzy;
      arena_run_desc_free(a, prev);
    }
  }
  uint32_t next_ind = run->pageind + run->npages;
  if (next_ind < arena_chunk_npages) {
    arena_run_t *next = chunk->map[next_ind];
    if (next != NULL && next->state == RUN_FREE) {
      arena_avail_remove(a, next);
      chunk->map[next_ind] = NULL;
      chunk->map[next_ind + next->npages - 1] = NULL;
      run->npages += next->npages;
      run->ndirty += next->ndirty;
      run->nmuzzy += next->nmuzzy;
      arena_run_desc_free(a, next);
    }
  }
  chunk->map[run->pageind] = run;
  chunk->map[run->pageind + run->npages - 1] = run;
  arena_avail_insert(a, run);
  if (run->npages == arena_chunk_npages) {
    if (a->spare != NULL && a->spare != chunk) arena_chunk_dalloc(a, a->spare);
    a->spare = chunk;
  }
}

int arena_cmp_chunk(const rb_node_t *a, const rb_node_t *b) {
  uintptr_t x = (uintptr_t)rb_entry(a, arena_chunk_t, link)->addr;
  uintptr_t y = (uintptr_t)rb_entry(b, arena_chunk_t, link)->addr;
  return x < y ? -1 : x > y;
}

static void arena_chunk_list_insert(arena_t *a, arena_chunk_t *chunk) { rb_insert(&a->chunk_list, &chunk->link); }
void arena_chunk_list_remove(arena_t *a, arena_chunk_t *chunk) { rb_remove(&a->chunk_list, &chunk->link); }
