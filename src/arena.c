/* arena: runs, bins, small and large allocations (see arena.h). */
#include <errno.h>
#include <sys/auxv.h>

#include "xalloc/internal/arena.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"
#include <stdlib.h>

arena_t *arenas[ARENAS_MAX];
unsigned narenas;
unsigned narenas_auto;
static xmutex_t arenas_lock = XMUTEX_INITIALIZER;

/* Run descriptors, one pool per bitmap size; chunk descriptors. */
static base_pool_t arena_run_pools[SZ_BITMAP_WORDS + 1];
static base_pool_t arena_chunk_pool;
static size_t arena_chunk_npages;
/* Slow-path calls left before this thread's next decay check. */
static __thread int32_t arena_decay_ticks __attribute__((tls_model("initial-exec")));
enum { ARENA_PURGE_LAZY = 1, ARENA_PURGE_FORCED = 2 };

static inline char *arena_run_addr(const arena_run_t *run) {
  return run->chunk->addr + ((size_t)run->pageind << LG_PAGE);
}

static int arena_cmp_avail(const rb_node_t *a, const rb_node_t *b) {
  const arena_run_t *x = rb_entry(a, arena_run_t, link);
  const arena_run_t *y = rb_entry(b, arena_run_t, link);
  if (x->npages != y->npages) return x->npages < y->npages ? -1 : 1;
  /* The search key has no chunk: it sorts before every run of its size. */
  uintptr_t xa = x->chunk ? (uintptr_t)arena_run_addr(x) : 0;
  uintptr_t ya = y->chunk ? (uintptr_t)arena_run_addr(y) : 0;
  return xa < ya ? -1 : xa > ya;
}

static int arena_cmp_addr(const rb_node_t *a, const rb_node_t *b) {
  uintptr_t xa = (uintptr_t)arena_run_addr(rb_entry(a, arena_run_t, link));
  uintptr_t ya = (uintptr_t)arena_run_addr(rb_entry(b, arena_run_t, link));
  return xa < ya ? -1 : xa > ya;
}

static int arena_cmp_huge(const rb_node_t *a, const rb_node_t *b) {
  const extent_node_t *x = rb_entry(a, extent_node_t, ad);
  const extent_node_t *y = rb_entry(b, extent_node_t, ad);
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int arena_cmp_chunk(const rb_node_t *a, const rb_node_t *b);

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

uintptr_t tcache_tag_key;

bool arena_boot(void) {
  /* The free tag key: the kernel's AT_RANDOM bytes, mixed with an address. */
  const void *rnd = (const void *)getauxval(AT_RANDOM);
  uint64_t r[2] = {0, 0};
  if (rnd != NULL) memcpy(r, rnd, sizeof(r)); /* 16 bytes, not always 8-aligned */
  uint64_t k = r[0] ^ (r[1] << 1);
  k ^= (uintptr_t)&tcache_tag_key * 0x9E3779B97F4A7C15ULL;
  tcache_tag_key = (uintptr_t)(k | 1);
  for (unsigned i = 0; i <= SZ_BITMAP_WORDS; i++) {
    arena_run_pools[i].size = sizeof(arena_run_t) + i * sizeof(uint64_t);
    arena_run_pools[i].free = NULL;
  }
  arena_chunk_npages = sz_chunksize >> LG_PAGE;
  arena_chunk_pool.size = sizeof(arena_chunk_t) + ALIGNMENT_CEILING(arena_chunk_npages, 8) * 2 +
                          arena_chunk_npages * sizeof(arena_run_t *) +
                          2 * ((arena_chunk_npages + 63) / 64) * sizeof(uint64_t);
  arena_chunk_pool.free = NULL;
  return false;
}

arena_t *arena_new(unsigned ind) {
  arena_t *a = base_alloc(sizeof(arena_t));
  if (a == NULL) return NULL;
  a->ind = ind;
  xmutex_init(&a->lock);
  rb_init(&a->runs_avail, arena_cmp_avail);
  arena_run_list_init(&a->dirty);
  arena_run_list_init(&a->muzzy);
  xmutex_init(&a->purge_mtx);
  uint64_t now = decay_now_ns();
  decay_init(&a->decay_dirty, opt_dirty_decay_ms, now);
  decay_init(&a->decay_muzzy, opt_muzzy_decay_ms, now);
  chunk_arena_init(&a->chunks);
  a->chunks.ind = ind;
  xmutex_init(&a->huge_mtx);
  rb_init(&a->huge, arena_cmp_huge);
  rb_init(&a->chunk_list, arena_cmp_chunk);
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    xmutex_init(&a->bins[i].lock);
    rb_init(&a->bins[i].runs, arena_cmp_addr);
  }
  return a;
}

/* Automatic arenas made so far: they are arenas[0..arenas_nauto). */
static unsigned arenas_nauto;

arena_t *arena_choose(void) {
  xmutex_lock(&arenas_lock);
  /* arenas[0] is made at initialization, outside this function. */
  while (arenas_nauto < narenas_auto && arenas[arenas_nauto] != NULL) arenas_nauto++;
  arena_t *best = NULL;
  for (unsigned i = 0; i < arenas_nauto; i++) {
    if (best == NULL || arenas[i]->nthreads < best->nthreads) best = arenas[i];
  }
  /* Spread first: a new arena while there is room and none is idle. */
  if ((best == NULL || best->nthreads > 0) && arenas_nauto < narenas_auto) {
    unsigned n = arenas_nauto;
    arena_t *a = arena_new(n);
    if (a != NULL) {
      __atomic_store_n(&arenas[n], a, __ATOMIC_RELEASE);
      arenas_nauto = n + 1;
      if (narenas < n + 1) __atomic_store_n(&narenas, n + 1, __ATOMIC_RELEASE);
      best = a;
    }
  }
  if (best != NULL) best->nthreads++;
  xmutex_unlock(&arenas_lock);
  return best;
}

arena_t *arena_create_explicit(extent_hooks_t *hooks) {
  xmutex_lock(&arenas_lock);
  unsigned n = narenas > narenas_auto ? narenas : narenas_auto;
  arena_t *a = n < ARENAS_MAX ? arena_new(n) : NULL;
  if (a != NULL) {
    if (hooks != NULL) chunk_arena_set_user_hooks(&a->chunks, hooks, n);
    __atomic_store_n(&arenas[n], a, __ATOMIC_RELEASE);
    __atomic_store_n(&narenas, n + 1, __ATOMIC_RELEASE);
  }
  xmutex_unlock(&arenas_lock);
  return a;
}

bool arena_is_auto(const arena_t *a) { return a->ind < narenas_auto; }

arena_t *arena_get(unsigned ind) {
  if (ind >= __atomic_load_n(&narenas, __ATOMIC_ACQUIRE)) return NULL;
  return __atomic_load_n(&arenas[ind], __ATOMIC_ACQUIRE);
}

bool arena_migrate(arena_t *from, unsigned ind, arena_t **to) {
  bool err = true;
  xmutex_lock(&arenas_lock);
  arena_t *a = ind < narenas ? arenas[ind] : NULL;
  if (a != NULL) {
    if (from != NULL) from->nthreads--;
    a->nthreads++;
    *to = a;
    err = false;
  }
  xmutex_unlock(&arenas_lock);
  return err;
}

bool arena_retire(arena_t *a) {
  bool err = true;
  xmutex_lock(&arenas_lock);
  if (a->nthreads == 0 && !arena_is_auto(a) && arenas[a->ind] == a) {
    __atomic_store_n(&arenas[a->ind], NULL, __ATOMIC_RELEASE);
    err = false;
  }
  xmutex_unlock(&arenas_lock);
  return err;
}

unsigned arena_nthreads(const arena_t *a) {
  xmutex_lock(&arenas_lock);
  unsigned n = a->nthreads;
  xmutex_unlock(&arenas_lock);
  return n;
}

void arena_unchoose(arena_t *a) {
  xmutex_lock(&arenas_lock);
  a->nthreads--;
  xmutex_unlock(&arenas_lock);
}

void arenas_prefork(void) {
  xmutex_prefork(&arenas_lock);
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_prefork(arenas[i]);
}

void arenas_postfork_parent(void) {
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_parent(arenas[i]);
  xmutex_postfork_parent(&arenas_lock);
}

void arenas_postfork_child(void) {
  for (unsigned i = 0; i < narenas; i++)
    if (arenas[i] != NULL) arena_postfork_child(arenas[i]);
  xmutex_postfork_child(&arenas_lock);
}

static arena_run_t *arena_run_desc_alloc(unsigned nwords) {
  arena_run_t *run = base_pool_alloc(&arena_run_pools[nwords]);
  if (run != NULL) run->pool = (uint8_t)nwords;
  return run;
}

static void arena_run_desc_free(arena_run_t *run) { base_pool_free(&arena_run_pools[run->pool], run); }

/* runs_avail and the dirty and muzzy lists. Arena lock held. */
static void arena_avail_insert(arena_t *a, arena_run_t *run) {
  rb_insert(&a->runs_avail, &run->link);
  if (run->ndirty != 0) {
    arena_run_list_append(&a->dirty, &run->dirty_link);
    a->ndirty += run->ndirty;
  }
  if (run->nmuzzy != 0) {
    arena_run_list_append(&a->muzzy, &run->muzzy_link);
    a->nmuzzy += run->nmuzzy;
  }
}

static void arena_avail_remove(arena_t *a, arena_run_t *run) {
  rb_remove(&a->runs_avail, &run->link);
  if (run->ndirty != 0) {
    arena_run_list_remove(&run->dirty_link);
    a->ndirty -= run->ndirty;
  }
  if (run->nmuzzy != 0) {
    arena_run_list_remove(&run->muzzy_link);
    a->nmuzzy -= run->nmuzzy;
  }
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

static inline size_t arena_dirty_count(const arena_chunk_t *chunk, size_t start, size_t n) {
  return arena_bits_count(chunk->dirtymap, start, n);
}
static inline size_t arena_muzzy_count(const arena_chunk_t *chunk, size_t start, size_t n) {
  return arena_bits_count(chunk->muzzymap, start, n);
}

/* Pages [start, start+n) of chunk become dirty (freed), muzzy (lazily
 * purged: dirty pages only) or clean (purged for good). */
static void arena_pages_set_dirty(arena_chunk_t *chunk, size_t start, size_t n) {
  arena_bits_set(chunk->dirtymap, start, n, true);
  arena_bits_set(chunk->muzzymap, start, n, false);
}
static void arena_pages_set_clean(arena_chunk_t *chunk, size_t start, size_t n) {
  arena_bits_set(chunk->dirtymap, start, n, false);
  arena_bits_set(chunk->muzzymap, start, n, false);
}
static void arena_pages_dirty_to_muzzy(arena_chunk_t *chunk, size_t start, size_t n) {
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
static void arena_chunk_list_remove(arena_t *a, arena_chunk_t *chunk);

/* A new arena chunk: one free run over all of it. Arena lock held. */
static arena_chunk_t *arena_chunk_alloc(arena_t *a) {
  bool zeroed;
  char *addr = chunk_alloc(&a->chunks, sz_chunksize, sz_chunksize, &zeroed);
  if (addr == NULL) return NULL;
  arena_chunk_t *chunk = base_pool_alloc(&arena_chunk_pool);
  arena_run_t *run = arena_run_desc_alloc(0);
  if (chunk == NULL || run == NULL) goto fail;
  chunk->kind = META_ARENA_CHUNK;
  chunk->arena = a;
  chunk->addr = addr;
  chunk->map = (arena_run_t **)(chunk->binmap + ALIGNMENT_CEILING(arena_chunk_npages, 8));
  chunk->dirtymap = (uint64_t *)(chunk->map + arena_chunk_npages);
  chunk->muzzymap = chunk->dirtymap + (arena_chunk_npages + 63) / 64;
  /* A range that is not clean may hold anything: dirty. */
  if (zeroed)
    arena_pages_set_clean(chunk, 0, arena_chunk_npages);
  else
    arena_pages_set_dirty(chunk, 0, arena_chunk_npages);
  for (size_t i = 0; i < arena_chunk_npages; i++) chunk->binmap[i] = BININD_NONE;
  run->chunk = chunk;
  run->pageind = 0;
  run->npages = (uint32_t)arena_chunk_npages;
  run->state = RUN_FREE;
  run->ndirty = zeroed ? 0 : (uint32_t)arena_chunk_npages;
  run->nmuzzy = 0;
  chunk->map[0] = run;
  chunk->map[arena_chunk_npages - 1] = run;
  if (rtree_set_range((uintptr_t)addr, sz_chunksize, chunk)) goto fail;
  vg_noaccess(addr, sz_chunksize);
  arena_avail_insert(a, run);
  arena_chunk_list_insert(a, chunk);
  a->nchunks++;
  return chunk;
fail:
  if (chunk != NULL) base_pool_free(&arena_chunk_pool, chunk);
  if (run != NULL) arena_run_desc_free(run);
  chunk_dalloc(&a->chunks, addr, sz_chunksize, !zeroed);
  errno = ENOMEM;
  return NULL;
}

/* Give a wholly free chunk back to the chunk trees. Arena lock held. */
static void arena_chunk_dalloc(arena_t *a, arena_chunk_t *chunk) {
  arena_run_t *run = chunk->map[0];
  xassert(run->state == RUN_FREE && run->npages == arena_chunk_npages);
  arena_avail_remove(a, run);
  unsigned state = run->ndirty != 0 ? CHUNK_DIRTY : run->nmuzzy != 0 ? CHUNK_MUZZY : CHUNK_CLEAN;
  arena_run_desc_free(run);
  rtree_set_range((uintptr_t)chunk->addr, sz_chunksize, NULL);
  arena_chunk_list_remove(a, chunk);
  a->nchunks--;
  chunk_dalloc_state(&a->chunks, chunk->addr, sz_chunksize, state);
  base_pool_free(&arena_chunk_pool, chunk);
}

/*
 * Take pages [fr->pageind + off, + npages) out of the free run fr. What is
 * left before and after stays free; spare is a descriptor to use if both
 * are left (set to NULL when used). Returns whether the pages read as zero.
 */
static bool arena_pages_take(arena_t *a, arena_run_t *fr, uint32_t off, uint32_t npages,
                             arena_run_t **spare) {
  arena_chunk_t *chunk = fr->chunk;
  arena_avail_remove(a, fr);
  uint32_t start = fr->pageind, lead = off, trail = fr->npages - off - npages;
  bool zeroed = arena_dirty_count(chunk, start + lead, npages) == 0 &&
                arena_muzzy_count(chunk, start + lead, npages) == 0;
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
    arena_run_desc_free(fr);
  }
  if (lr != NULL) {
    lr->pageind = start;
    lr->npages = lead;
    arena_run_count(lr);
    chunk->map[start] = lr;
    chunk->map[start + lead - 1] = lr;
    arena_avail_insert(a, lr);
  }
  if (tr != NULL) {
    tr->chunk = chunk;
    tr->state = RUN_FREE;
    tr->pageind = start + lead + npages;
    tr->npages = trail;
    arena_run_count(tr);
    chunk->map[tr->pageind] = tr;
    chunk->map[tr->pageind + trail - 1] = tr;
    arena_avail_insert(a, tr);
  }
  return zeroed;
}

/*
 * Allocate a run of npages at alignment (a power of two >= PAGE) with a
 * descriptor of nwords bitmap words. Arena lock held. NULL on OOM.
 */
static arena_run_t *arena_run_alloc(arena_t *a, uint32_t npages, size_t alignment, unsigned nwords) {
  uint32_t need = npages + (uint32_t)((alignment >> LG_PAGE) - 1);
  if (need > arena_chunk_npages) return NULL;
  arena_run_t key = {0};
  key.npages = need;
  key.chunk = NULL;
  rb_node_t *r = rb_nsearch(&a->runs_avail, &key.link);
  if (r == NULL) {
    if (arena_chunk_alloc(a) == NULL) return NULL;
    r = rb_nsearch(&a->runs_avail, &key.link);
    if (r == NULL) return NULL;
  }
  arena_run_t *fr = rb_entry(r, arena_run_t, link);
  arena_run_t *run = arena_run_desc_alloc(nwords);
  arena_run_t *spare = arena_run_desc_alloc(0);
  if (run == NULL || spare == NULL) {
    if (run != NULL) arena_run_desc_free(run);
    if (spare != NULL) arena_run_desc_free(spare);
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t addr = (uintptr_t)arena_run_addr(fr);
  uint32_t off = (uint32_t)((ALIGNMENT_CEILING(addr, alignment) - addr) >> LG_PAGE);
  arena_chunk_t *chunk = fr->chunk;
  run->chunk = chunk;
  run->pageind = fr->pageind + off;
  run->npages = npages;
  run->zeroed = arena_pages_take(a, fr, off, npages, &spare);
  for (uint32_t i = 0; i < npages; i++) chunk->map[run->pageind + i] = run;
  a->nactive += npages;
  if (spare != NULL) arena_run_desc_free(spare);
  return run;
}

/*
 * Make the pages of run (already unlinked from any bin) free, merging with
 * free neighbours; a wholly free chunk becomes the spare, and the previous
 * spare goes back to the chunk trees. Arena lock held.
 */
static void arena_run_dalloc(arena_t *a, arena_run_t *run, bool dirty) {
  arena_chunk_t *chunk = run->chunk;
  for (uint32_t i = 0; i < run->npages; i++) chunk->map[run->pageind + i] = NULL;
  if (run->state == RUN_SMALL)
    for (uint32_t i = 0; i < run->npages; i++) chunk->binmap[run->pageind + i] = BININD_NONE;
  run->state = RUN_FREE;
  if (dirty) arena_pages_set_dirty(chunk, run->pageind, run->npages);
  arena_run_count(run);
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
      arena_run_desc_free(prev);
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
      arena_run_desc_free(next);
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

/*
 * Take free runs out for purging, oldest first: runs with dirty pages while
 * the arena has more than dirty_limit of them (lazily if lazy, else
 * forced), then runs with muzzy pages while it has more than muzzy_limit
 * (forced). Arena lock held; returns the list (purge_next).
 */
static arena_run_t *arena_purge_collect(arena_t *a, size_t dirty_limit, size_t muzzy_limit, bool lazy) {
  arena_run_t *list = NULL, **tail = &list;
  while (a->ndirty > dirty_limit && a->dirty.next != &a->dirty) {
    arena_run_t *run = arena_run_of(a->dirty.next, dirty_link);
    arena_avail_remove(a, run);
    run->purge_op = lazy ? ARENA_PURGE_LAZY : ARENA_PURGE_FORCED;
    *tail = run;
    tail = &run->purge_next;
  }
  while (a->nmuzzy > muzzy_limit && a->muzzy.next != &a->muzzy) {
    arena_run_t *run = arena_run_of(a->muzzy.next, muzzy_link);
    arena_avail_remove(a, run);
    run->purge_op = ARENA_PURGE_FORCED;
    *tail = run;
    tail = &run->purge_next;
  }
  *tail = NULL;
  for (arena_run_t *run = list; run != NULL; run = run->purge_next) {
    /* Neither allocatable nor mergeable while out. */
    run->state = RUN_PURGING;
    a->npurging += run->npages;
    if (a->spare == run->chunk) a->spare = NULL;
  }
  return list;
}

/* madvise each run of list (no lock held), then free them again under the
 * arena lock in their new state. */
static void arena_purge_finish(arena_t *a, arena_run_t *list) {
  if (list == NULL) return;
  uint64_t ncalls = 0;
  for (arena_run_t *run = list; run != NULL; run = run->purge_next) {
    char *addr = arena_run_addr(run);
    size_t size = (size_t)run->npages << LG_PAGE;
    unsigned done = chunk_purge_pages(&a->chunks, run->chunk->addr, sz_chunksize, (size_t)(addr - run->chunk->addr),
                                      size, run->purge_op == ARENA_PURGE_LAZY);
    ncalls++;
    run->purge_op = done == CHUNK_PURGE_LAZY ? ARENA_PURGE_LAZY : done == CHUNK_PURGE_FORCED ? ARENA_PURGE_FORCED : 0;
  }
  xmutex_lock(&a->lock);
  a->stats.nmadvise += ncalls;
  for (arena_run_t *run = list, *next; run != NULL; run = next) {
    next = run->purge_next;
    run->purge_next = NULL;
    arena_chunk_t *chunk = run->chunk;
    if (run->purge_op != 0) {
      a->stats.npurged_pages += run->purge_op == ARENA_PURGE_LAZY ? run->ndirty : run->ndirty + run->nmuzzy;
      if (run->purge_op == ARENA_PURGE_LAZY)
        arena_pages_dirty_to_muzzy(chunk, run->pageind, run->npages);
      else
        arena_pages_set_clean(chunk, run->pageind, run->npages);
    }
    run->purge_op = 0;
    a->npurging -= run->npages;
    /* Free again (coalescing, spare); a failed run keeps its pages' state
     * and goes to the tail of its lists. */
    arena_run_dalloc(a, run, false);
  }
  decay_purged(&a->decay_dirty, a->ndirty);
  decay_purged(&a->decay_muzzy, a->nmuzzy);
  xmutex_unlock(&a->lock);
}

static void arena_decay_impl(arena_t *a, bool wait) {
  if (wait)
    xmutex_lock(&a->purge_mtx);
  else if (!xmutex_trylock(&a->purge_mtx))
    return;
  uint64_t now = decay_now_ns();
  xmutex_lock(&a->lock);
  size_t dl = SIZE_MAX, ml = SIZE_MAX;
  bool d = decay_advance(&a->decay_dirty, now, a->ndirty, &dl);
  bool m = decay_advance(&a->decay_muzzy, now, a->nmuzzy, &ml);
  arena_run_t *list = NULL;
  if (d || m) list = arena_purge_collect(a, d ? dl : SIZE_MAX, m ? ml : SIZE_MAX, opt_muzzy_decay_ms != 0);
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, list);
  xmutex_unlock(&a->purge_mtx);
  chunk_decay(&a->chunks, now, wait);
}

void arena_decay(arena_t *a) { arena_decay_impl(a, true); }

void (*arena_tick_hook)(void);

void arena_decay_tick(arena_t *a) {
  if (unlikely(arena_tick_hook != NULL)) arena_tick_hook();
  if (opt_dirty_decay_ms != 0 && --arena_decay_ticks > 0) return;
  arena_decay_ticks = ARENA_DECAY_TICKS;
  if (opt_dirty_decay_ms < 0 && opt_muzzy_decay_ms < 0) return;
  arena_decay_impl(a, false);
}

uint64_t arena_decay_ns_until(arena_t *a, uint64_t now) {
  uint64_t t = UINT64_MAX, u;
  xmutex_lock(&a->lock);
  if (a->ndirty != 0 && (u = decay_ns_until_epoch(&a->decay_dirty, now)) < t) t = u;
  if (a->nmuzzy != 0 && (u = decay_ns_until_epoch(&a->decay_muzzy, now)) < t) t = u;
  xmutex_unlock(&a->lock);
  u = chunk_decay_ns_until(&a->chunks, now);
  return u < t ? u : t;
}

void arena_purge_all(arena_t *a) {
  xmutex_lock(&a->purge_mtx);
  xmutex_lock(&a->lock);
  arena_run_t *list = arena_purge_collect(a, 0, 0, false);
  xmutex_unlock(&a->lock);
  arena_purge_finish(a, list);
  xmutex_unlock(&a->purge_mtx);
  chunk_purge_all(&a->chunks);
}

void arena_reset(arena_t *a) {
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_lock(&a->bins[i].lock);
  xmutex_lock(&a->lock);
  rb_node_t *r;
  while ((r = rb_first(&a->chunk_list)) != NULL) {
    arena_chunk_t *chunk = rb_entry(r, arena_chunk_t, link);
    /* The first page of every run, free or allocated, maps to it. */
    for (size_t p = 0; p < arena_chunk_npages;) {
      arena_run_t *run = chunk->map[p];
      size_t n = run->npages;
      if (run->state == RUN_FREE) arena_avail_remove(a, run);
      arena_run_desc_free(run);
      p += n;
    }
    rtree_set_range((uintptr_t)chunk->addr, sz_chunksize, NULL);
    arena_chunk_list_remove(a, chunk);
    a->nchunks--;
    chunk_dalloc(&a->chunks, chunk->addr, sz_chunksize, true);
    base_pool_free(&arena_chunk_pool, chunk);
  }
  xassert(a->ndirty == 0 && a->runs_avail.n == 0);
  a->nactive = 0;
  a->spare = NULL;
  a->stats.ndalloc_large = a->stats.nmalloc_large;
  a->stats.allocated_large = 0;
  xmutex_unlock(&a->lock);
  for (unsigned i = SZ_NBINS; i-- > 0;) {
    arena_bin_t *bin = &a->bins[i];
    bin->runcur = NULL;
    rb_init(&bin->runs, arena_cmp_addr);
    bin->stats.ndalloc = bin->stats.nmalloc;
    bin->stats.curregs = 0;
    bin->stats.curruns = 0;
    xmutex_unlock(&bin->lock);
  }
}

/* ---- small ---- */

static void *arena_run_reg_alloc(arena_run_t *run, const sz_bin_info_t *info) {
  for (unsigned w = 0; w < info->nwords; w++) {
    uint64_t bits = run->bitmap[w];
    if (bits != 0) {
      unsigned bit = (unsigned)__builtin_ctzll(bits);
      run->bitmap[w] = bits & (bits - 1);
      run->nfree--;
      return arena_run_addr(run) + (size_t)(w * 64 + bit) * info->reg_size;
    }
  }
  not_reached();
}

/* A run with a free region for bin; bin lock held. */
static arena_run_t *arena_bin_nonfull_run(arena_t *a, arena_bin_t *bin, unsigned binind) {
  rb_node_t *r = rb_first(&bin->runs);
  if (r != NULL) {
    rb_remove(&bin->runs, r);
    return rb_entry(r, arena_run_t, link);
  }
  const sz_bin_info_t *info = &sz_bin_info[binind];
  xmutex_lock(&a->lock);
  arena_run_t *run = arena_run_alloc(a, info->run_pages, PAGE, info->nwords);
  if (run != NULL) {
    run->state = RUN_SMALL;
    run->binind = (uint16_t)binind;
    for (uint32_t i = 0; i < run->npages; i++)
      run->chunk->binmap[run->pageind + i] = (uint16_t)(binind | (i << 8));
  }
  xmutex_unlock(&a->lock);
  if (run == NULL) return NULL;
  run->nfree = (uint16_t)info->nregs;
  for (unsigned w = 0; w < info->nwords; w++) {
    unsigned bits = info->nregs - w * 64;
    run->bitmap[w] = bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
  }
  if (config_heap_checks) {
    /* Every free region carries its tag, so that a free of a region that
     * is free in the bitmap is caught even on the fast path. */
    char *base = arena_run_addr(run);
    vg_undefined(base, (size_t)run->npages << LG_PAGE);
    for (unsigned i = 0; i < info->nregs; i++) tcache_set_tag(base + (size_t)i * info->reg_size);
    vg_noaccess(base, (size_t)run->npages << LG_PAGE);
  }
  bin->stats.nruns++;
  bin->stats.curruns++;
  return run;
}

void *arena_malloc_small(arena_t *a, unsigned binind, bool zero) {
  arena_bin_t *bin = &a->bins[binind];
  const sz_bin_info_t *info = &sz_bin_info[binind];
  xmutex_lock(&bin->lock);
  arena_run_t *run = bin->runcur;
  if (run == NULL || run->nfree == 0) {
    run = arena_bin_nonfull_run(a, bin, binind);
    if (run == NULL) {
      xmutex_unlock(&bin->lock);
      errno = ENOMEM;
      return NULL;
    }
    bin->runcur = run;
  }
  void *ret = arena_run_reg_alloc(run, info);
  bin->stats.nmalloc++;
  bin->stats.curregs++;
  xmutex_unlock(&bin->lock);
  vg_undefined(ret, info->reg_size);
  if (zero)
    memset(ret, 0, info->reg_size);
  else
    tcache_clear_tag(ret);
  arena_decay_tick(a);
  return ret;
}

/*
 * Free one small region of bin binind of arena a; the bin lock is held.
 * Everything is checked against the metadata first: the page must be in a
 * small run of this class, the pointer must be a region's start, and the
 * region must be allocated.
 */
static void arena_report_unallocated(arena_t *a, void *ptr);

static void arena_dalloc_small_locked(arena_t *a, arena_bin_t *bin, unsigned binind,
                                      arena_chunk_t *chunk, void *ptr) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  arena_run_t *run = chunk->map[pageind];
  if (run == NULL || run->state != RUN_SMALL || run->binind != binind) {
    arena_report_unallocated(a, ptr);
    return;
  }
  size_t off = (size_t)((char *)ptr - arena_run_addr(run));
  size_t idx = (size_t)((off * info->div_magic) >> 32);
  if (idx >= info->nregs || idx * info->reg_size != off) {
    arena_report("invalid free (interior pointer)", ptr, info->reg_size, a->ind);
    return;
  }
  uint64_t mask = (uint64_t)1 << (idx & 63);
  if (run->bitmap[idx >> 6] & mask) {
    arena_report("double free", ptr, info->reg_size, a->ind);
    return;
  }
  run->bitmap[idx >> 6] |= mask;
  vg_freelike(ptr);
  vg_undefined(ptr, info->reg_size);
  if (unlikely(opt_junk)) memset(ptr, JUNK_FREE, info->reg_size);
  tcache_set_tag(ptr);
  vg_noaccess(ptr, info->reg_size);
  run->nfree++;
  bin->stats.ndalloc++;
  bin->stats.curregs--;
  if (run->nfree == info->nregs) {
    /* Empty: give the pages back to the arena. */
    if (run == bin->runcur)
      bin->runcur = NULL;
    else if (info->nregs > 1)
      rb_remove(&bin->runs, &run->link);
    bin->stats.curruns--;
    xmutex_lock(&a->lock);
    a->nactive -= run->npages;
    arena_run_dalloc(a, run, true);
    xmutex_unlock(&a->lock);
  } else if (run->nfree == 1 && run != bin->runcur) {
    /* Was full: it has a free region again. Prefer low addresses. */
    arena_run_t *cur = bin->runcur;
    if (cur != NULL && cur->nfree > 0 && arena_run_addr(run) < arena_run_addr(cur)) {
      rb_insert(&bin->runs, &cur->link);
      bin->runcur = run;
    } else {
      rb_insert(&bin->runs, &run->link);
    }
  }
}

static void arena_dalloc_small(arena_t *a, arena_chunk_t *chunk, arena_run_t *run, void *ptr) {
  unsigned binind = run->binind;
  if (binind >= SZ_NBINS) {
    arena_report("invalid free (not an allocated block)", ptr, 0, a->ind);
    return;
  }
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  arena_dalloc_small_locked(a, bin, binind, chunk, ptr);
  xmutex_unlock(&bin->lock);
}

void arena_dalloc_small_batch(arena_t *a, unsigned binind, void **ptrs, unsigned n) {
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  for (unsigned i = 0; i < n; i++) {
    arena_chunk_t *chunk = rtree_get((uintptr_t)ptrs[i]);
    if (chunk == NULL || chunk->kind != META_ARENA_CHUNK || chunk->arena != a) {
      arena_report("invalid free (not an allocated block)", ptrs[i], 0, a->ind);
      continue;
    }
    arena_dalloc_small_locked(a, bin, binind, chunk, ptrs[i]);
  }
  xmutex_unlock(&bin->lock);
  arena_decay_tick(a);
}

unsigned arena_fill_small(arena_t *a, unsigned binind, void **ptrs, unsigned n) {
  arena_bin_t *bin = &a->bins[binind];
  const sz_bin_info_t *info = &sz_bin_info[binind];
  unsigned filled = 0;
  xmutex_lock(&bin->lock);
  while (filled < n) {
    arena_run_t *run = bin->runcur;
    if (run == NULL || run->nfree == 0) {
      run = arena_bin_nonfull_run(a, bin, binind);
      if (run == NULL) break;
      bin->runcur = run;
    }
    char *base = arena_run_addr(run);
    for (unsigned w = 0; w < info->nwords && filled < n; w++) {
      uint64_t bits = run->bitmap[w];
      while (bits != 0 && filled < n) {
        unsigned bit = (unsigned)__builtin_ctzll(bits);
        bits &= bits - 1;
        ptrs[n - 1 - filled] = base + (size_t)(w * 64 + bit) * info->reg_size;
        filled++;
        run->nfree--;
      }
      run->bitmap[w] = bits;
    }
  }
  bin->stats.nmalloc += filled;
  bin->stats.curregs += filled;
  xmutex_unlock(&bin->lock);
  /* Filled from the top: move down so that ptrs[0..filled) hold them,
   * the lowest address last. */
  if (filled < n) memmove(ptrs, ptrs + (n - filled), filled * sizeof(void *));
  arena_decay_tick(a);
  return filled;
}

/* ---- large ---- */

void *arena_malloc_large(arena_t *a, size_t usize, size_t alignment, bool zero) {
  xassert((usize & PAGE_MASK) == 0 && usize <= sz_large_max);
  if (alignment < PAGE) alignment = PAGE;
  xmutex_lock(&a->lock);
  arena_run_t *run = arena_run_alloc(a, (uint32_t)(usize >> LG_PAGE), alignment, 0);
  if (run == NULL) {
    xmutex_unlock(&a->lock);
    errno = ENOMEM;
    return NULL;
  }
  run->state = RUN_LARGE;
  bool zeroed = run->zeroed;
  a->stats.nmalloc_large++;
  a->stats.allocated_large += usize;
  xmutex_unlock(&a->lock);
  void *ret = arena_run_addr(run);
  vg_undefined(ret, usize);
  if (zero && !zeroed)
    memset(ret, 0, usize);
  else if (!zeroed)
    tcache_clear_tag(ret);
  arena_decay_tick(a);
  return ret;
}

static void arena_dalloc_large(arena_t *a, arena_chunk_t *chunk, void *ptr, size_t pageind) {
  xmutex_lock(&a->lock);
  arena_run_t *run = chunk->map[pageind];
  if (run == NULL || run->state != RUN_LARGE || arena_run_addr(run) != ptr) {
    xmutex_unlock(&a->lock);
    if (run != NULL && run->state == RUN_LARGE)
      arena_report("invalid free (interior pointer)", ptr, (size_t)run->npages << LG_PAGE, a->ind);
    else
      arena_report_unallocated(a, ptr);
    return;
  }
  size_t size = (size_t)run->npages << LG_PAGE;
  vg_freelike(ptr);
  vg_undefined(ptr, size);
  if (unlikely(opt_junk)) memset(ptr, JUNK_FREE, size);
  tcache_set_tag(ptr);
  vg_noaccess(ptr, size);
  arena_freed_record(a->freed_large, &a->freed_large_next, ptr, size);
  a->stats.ndalloc_large++;
  a->stats.allocated_large -= size;
  a->nactive -= run->npages;
  arena_run_dalloc(a, run, true);
  xmutex_unlock(&a->lock);
}

/* A pointer into pages that hold no allocation: a double free if the
 * object still carries the tag its first free wrote (with its size if the
 * free is remembered), else a pointer into a free run. */
static void arena_report_unallocated_op(arena_t *a, const void *ptr, const char *op) {
  if (tcache_tagged_peek(ptr)) {
    xmutex_lock(&a->lock);
    size_t usize = arena_freed_find(a->freed_large, ptr);
    xmutex_unlock(&a->lock);
    arena_report_bad(op, BAD_FREED, ptr, usize, a->ind);
  } else {
    arena_report_bad(op, BAD_FREE_RUN, ptr, 0, a->ind);
  }
}

static void arena_report_unallocated(arena_t *a, void *ptr) { arena_report_unallocated_op(a, ptr, "free"); }

size_t arena_lookup(arena_chunk_t *chunk, const void *ptr, const char *op) {
  arena_t *a = chunk->arena;
  size_t pageind = (size_t)((const char *)ptr - chunk->addr) >> LG_PAGE;
  const arena_run_t *run = __atomic_load_n(&chunk->map[pageind], __ATOMIC_ACQUIRE);
  uint8_t state = run != NULL ? run->state : RUN_FREE;
  if (state == RUN_SMALL && run->binind < SZ_NBINS) {
    const sz_bin_info_t *info = &sz_bin_info[run->binind];
    size_t off = (size_t)((const char *)ptr - arena_run_addr(run));
    size_t idx = (size_t)((off * info->div_magic) >> 32);
    if (idx >= info->nregs || idx * info->reg_size != off) {
      arena_report_bad(op, BAD_INTERIOR, ptr, info->reg_size, a->ind);
      return 0;
    }
    if (tcache_tagged_peek(ptr)) {
      arena_report_bad(op, BAD_FREED, ptr, info->reg_size, a->ind);
      return 0;
    }
    return info->reg_size;
  }
  if (state == RUN_LARGE) {
    size_t size = (size_t)run->npages << LG_PAGE;
    if (arena_run_addr(run) != ptr) {
      arena_report_bad(op, BAD_INTERIOR, ptr, size, a->ind);
      return 0;
    }
    if (tcache_tagged_peek(ptr)) {
      arena_report_bad(op, BAD_FREED, ptr, size, a->ind);
      return 0;
    }
    return size;
  }
  arena_report_unallocated_op(a, ptr, op);
  return 0;
}

void arena_dalloc(arena_chunk_t *chunk, void *ptr) {
  arena_t *a = chunk->arena;
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  arena_run_t *run = __atomic_load_n(&chunk->map[pageind], __ATOMIC_ACQUIRE);
  uint8_t state = run != NULL ? run->state : RUN_FREE;
  if (state == RUN_SMALL)
    arena_dalloc_small(a, chunk, run, ptr);
  else if (state == RUN_LARGE)
    arena_dalloc_large(a, chunk, ptr, pageind);
  else
    arena_report_unallocated(a, ptr);
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
    arena_run_t *tail = arena_run_desc_alloc(0);
    if (tail == NULL) goto out;
    tail->chunk = chunk;
    tail->pageind = run->pageind + new_np;
    tail->npages = old_np - new_np;
    run->npages = new_np;
    a->nactive -= tail->npages;
    a->stats.allocated_large -= oldsize - usize;
    arena_run_dalloc(a, tail, true);
    err = false;
  } else {
    uint32_t next_ind = run->pageind + old_np, extra = new_np - old_np;
    if (next_ind >= arena_chunk_npages) goto out;
    arena_run_t *fr = chunk->map[next_ind];
    if (fr == NULL || fr->state != RUN_FREE || fr->npages < extra) goto out;
    arena_run_t *spare = arena_run_desc_alloc(0);
    if (spare == NULL) goto out;
    bool zeroed = arena_pages_take(a, fr, 0, extra, &spare);
    if (spare != NULL) arena_run_desc_free(spare);
    for (uint32_t i = old_np; i < new_np; i++) chunk->map[run->pageind + i] = run;
    run->npages = new_np;
    a->nactive += extra;
    a->stats.allocated_large += usize - oldsize;
    xmutex_unlock(&a->lock);
    if (zero && !zeroed) memset((char *)ptr + oldsize, 0, usize - oldsize);
    return false;
  }
out:
  xmutex_unlock(&a->lock);
  return err;
}

/* ---- chunk list (for validation) ---- */

static int arena_cmp_chunk(const rb_node_t *a, const rb_node_t *b) {
  uintptr_t x = (uintptr_t)rb_entry(a, arena_chunk_t, link)->addr;
  uintptr_t y = (uintptr_t)rb_entry(b, arena_chunk_t, link)->addr;
  return x < y ? -1 : x > y;
}

static void arena_chunk_list_insert(arena_t *a, arena_chunk_t *chunk) { rb_insert(&a->chunk_list, &chunk->link); }
static void arena_chunk_list_remove(arena_t *a, arena_chunk_t *chunk) { rb_remove(&a->chunk_list, &chunk->link); }

/* ---- validation and the heap check ---- */

typedef struct {
  arena_t *a;
  bool verbose;
  unsigned nbad;
} arena_checker_t;

#define ARENA_CHECK_MAX_LINES 64

static void arena_check_say(arena_checker_t *c, const char *fmt, ...) {
  c->nbad++;
  if (!c->verbose || c->nbad > ARENA_CHECK_MAX_LINES) return;
  char buf[320];
  size_t n = util_format(buf, sizeof(buf), "xalloc: arena %u check: ", c->a->ind);
  va_list ap;
  va_start(ap, fmt);
  n += util_vformat(buf + n, sizeof(buf) - n, fmt, ap);
  va_end(ap);
  if (n > sizeof(buf) - 2) n = sizeof(buf) - 2;
  buf[n] = '\n';
  buf[n + 1] = '\0';
  util_write(buf);
}

#define CHECK(cond, ...)                                \
  do {                                                  \
    if (unlikely(!(cond))) arena_check_say(c, __VA_ARGS__); \
  } while (0)

/* One small run: bitmap against nfree, binmap, and (contents) the free
 * tags of its free regions. Bin lock held. */
static void arena_check_small_run(arena_checker_t *c, arena_chunk_t *chunk, arena_run_t *run,
                                  bool contents, size_t *curregs, size_t *curruns) {
  if (run->binind >= SZ_NBINS) {
    arena_check_say(c, "small run at %p has size class index %u", arena_run_addr(run), run->binind);
    return;
  }
  const sz_bin_info_t *info = &sz_bin_info[run->binind];
  char *base = arena_run_addr(run);
  unsigned nfree = 0;
  for (unsigned w = 0; w < info->nwords; w++) nfree += (unsigned)__builtin_popcountll(run->bitmap[w]);
  CHECK(run->npages == info->run_pages, "small run at %p (size class %u) has %u pages, not %u", base,
        info->reg_size, run->npages, info->run_pages);
  CHECK(nfree == run->nfree, "small run at %p (size class %u): bitmap has %u free regions, nfree says %u",
        base, info->reg_size, nfree, (unsigned)run->nfree);
  CHECK(nfree != info->nregs, "small run at %p (size class %u) is wholly free but still allocated", base,
        info->reg_size);
  for (uint32_t i = 0; i < run->npages && i < info->run_pages; i++)
    CHECK(chunk->binmap[run->pageind + i] == (uint16_t)(run->binind | (i << 8)),
          "page %u of small run at %p (size class %u) has binmap entry %x", i, base, info->reg_size,
          (unsigned)chunk->binmap[run->pageind + i]);
  if (contents && config_heap_checks && run->npages == info->run_pages) {
    for (unsigned i = 0; i < info->nregs; i++) {
      if (!(run->bitmap[i >> 6] & ((uint64_t)1 << (i & 63)))) continue;
      char *r = base + (size_t)i * info->reg_size;
      CHECK(vg_peek_word(r) == tcache_tag(r),
            "free region %p (size class %u) lost its free tag: written after free, or overrun by the "
            "region before it",
            r, info->reg_size);
    }
  }
  curregs[run->binind] += info->nregs - nfree;
  curruns[run->binind]++;
}

static bool arena_check_impl(arena_t *a, bool verbose, bool contents) {
  arena_checker_t cc = {a, verbose, 0}, *c = &cc;
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_lock(&a->bins[i].lock);
  xmutex_lock(&a->lock);
  size_t nactive = 0, ndirty = 0, nmuzzy = 0, npurging = 0, nfree_runs = 0;
  size_t curregs[SZ_NBINS] = {0}, curruns[SZ_NBINS] = {0};
  rb_tree_t *t = &a->chunk_list;
  CHECK(t->n == a->nchunks, "%zu chunks listed, nchunks says %zu", t->n, a->nchunks);
  CHECK(rb_validate(&a->runs_avail), "the tree of free runs is broken");
  for (rb_node_t *r = rb_first(t); r != NULL; r = rb_next(r)) {
    arena_chunk_t *chunk = rb_entry(r, arena_chunk_t, link);
    if (chunk->kind != META_ARENA_CHUNK || chunk->arena != a) {
      arena_check_say(c, "chunk descriptor %p is not one of this arena's chunks", (void *)chunk);
      continue;
    }
    CHECK(rtree_get((uintptr_t)chunk->addr) == chunk, "chunk %p is not mapped to its descriptor",
          chunk->addr);
    bool prev_free = false;
    for (size_t p = 0; p < arena_chunk_npages;) {
      arena_run_t *run = chunk->map[p];
      if (run == NULL || run->chunk != chunk || run->pageind != p || run->npages == 0 ||
          p + run->npages > arena_chunk_npages) {
        arena_check_say(c, "chunk %p page %zu: map entry %p does not describe a run starting there",
                        chunk->addr, p, (void *)run);
        break; /* the rest of this chunk's map cannot be walked */
      }
      size_t last = p + run->npages - 1;
      char *raddr = chunk->addr + (p << LG_PAGE);
      /* A page is never both dirty and muzzy. */
      for (size_t q = p; q <= last; q++)
        CHECK(!((chunk->dirtymap[q >> 6] & chunk->muzzymap[q >> 6]) & ((uint64_t)1 << (q & 63))),
              "page %zu of chunk %p is both dirty and muzzy", q, chunk->addr);
      if (run->state == RUN_PURGING) {
        /* Out for purging: first and last page point to it. */
        CHECK(chunk->map[last] == run, "run at %p out for purging: its last page does not map to it", raddr);
        for (size_t q = p + 1; q < last; q++)
          CHECK(chunk->map[q] == NULL, "page %zu inside run at %p out for purging is mapped", q, raddr);
        npurging += run->npages;
        prev_free = false;
      } else if (run->state == RUN_FREE) {
        CHECK(!prev_free, "free run at %p follows a free run (not coalesced)", raddr);
        CHECK(chunk->map[last] == run, "free run at %p: its last page does not map to it", raddr);
        CHECK(rb_search(&a->runs_avail, &run->link) == &run->link, "free run at %p is not in the free tree",
              raddr);
        for (size_t q = p + 1; q < last; q++)
          CHECK(chunk->map[q] == NULL, "page %zu inside free run at %p is mapped", q, raddr);
        for (size_t q = p; q <= last; q++)
          CHECK(chunk->binmap[q] == BININD_NONE, "page %zu of free run at %p has a size class", q, raddr);
        nfree_runs++;
        size_t nd = arena_dirty_count(chunk, p, run->npages);
        size_t nm = arena_muzzy_count(chunk, p, run->npages);
        CHECK(run->ndirty == nd, "free run at %p: %zu dirty pages, ndirty says %u", raddr, nd, run->ndirty);
        CHECK(run->nmuzzy == nm, "free run at %p: %zu muzzy pages, nmuzzy says %u", raddr, nm, run->nmuzzy);
        ndirty += run->ndirty;
        nmuzzy += run->nmuzzy;
        prev_free = true;
      } else {
        for (size_t q = p; q <= last; q++)
          CHECK(chunk->map[q] == run, "page %zu of run at %p does not map to it", q, raddr);
        nactive += run->npages;
        prev_free = false;
        if (run->state == RUN_SMALL) {
          arena_check_small_run(c, chunk, run, contents, curregs, curruns);
        } else if (run->state == RUN_LARGE) {
          for (size_t q = p; q <= last; q++)
            CHECK(chunk->binmap[q] == BININD_NONE, "page %zu of large run at %p has a size class", q, raddr);
        } else {
          arena_check_say(c, "run at %p has state %u", raddr, (unsigned)run->state);
        }
      }
      p = last + 1;
    }
  }
  CHECK(nactive == a->nactive, "%zu pages in allocated runs, nactive says %zu", nactive, a->nactive);
  CHECK(ndirty == a->ndirty, "%zu dirty pages in free runs, ndirty says %zu", ndirty, a->ndirty);
  CHECK(nmuzzy == a->nmuzzy, "%zu muzzy pages in free runs, nmuzzy says %zu", nmuzzy, a->nmuzzy);
  CHECK(npurging == a->npurging, "%zu pages out for purging, npurging says %zu", npurging, a->npurging);
  CHECK(nfree_runs == a->runs_avail.n, "%zu free runs in chunks, %zu in the free tree", nfree_runs,
        a->runs_avail.n);
  size_t listed = 0, mlisted = 0, nlisted = 0;
  for (const arena_run_link_t *l = a->dirty.next; l != &a->dirty && nlisted <= a->runs_avail.n;
       l = l->next, nlisted++) {
    const arena_run_t *run = arena_run_of(l, dirty_link);
    CHECK(run->ndirty != 0 && run->state == RUN_FREE, "run on the dirty list is not free and dirty");
    listed += run->ndirty;
  }
  CHECK(listed == ndirty, "dirty list holds %zu pages, free runs %zu", listed, ndirty);
  nlisted = 0;
  for (const arena_run_link_t *l = a->muzzy.next; l != &a->muzzy && nlisted <= a->runs_avail.n;
       l = l->next, nlisted++) {
    const arena_run_t *run = arena_run_of(l, muzzy_link);
    CHECK(run->nmuzzy != 0 && run->state == RUN_FREE, "run on the muzzy list is not free and muzzy");
    mlisted += run->nmuzzy;
  }
  CHECK(mlisted == nmuzzy, "muzzy list holds %zu pages, free runs %zu", mlisted, nmuzzy);
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    arena_bin_t *bin = &a->bins[i];
    CHECK(bin->stats.curregs == curregs[i], "bin %u (size class %u): %zu regions in use, stats say %zu", i,
          sz_bin_info[i].reg_size, curregs[i], bin->stats.curregs);
    CHECK(bin->stats.curruns == curruns[i], "bin %u (size class %u): %zu runs, stats say %zu", i,
          sz_bin_info[i].reg_size, curruns[i], bin->stats.curruns);
    if (!rb_validate(&bin->runs)) {
      arena_check_say(c, "bin %u: the tree of non-full runs is broken", i);
      continue;
    }
    for (rb_node_t *r = rb_first(&bin->runs); r != NULL; r = rb_next(r)) {
      arena_run_t *run = rb_entry(r, arena_run_t, link);
      CHECK(run->state == RUN_SMALL && run->binind == i && run->nfree != 0 && run != bin->runcur,
            "bin %u: run %p in the tree of non-full runs is not a non-full run of the bin", i,
            (void *)run);
    }
  }
  xmutex_unlock(&a->lock);
  for (unsigned i = SZ_NBINS; i-- > 0;) xmutex_unlock(&a->bins[i].lock);
  /* Huge allocations: records mapped from every chunk they cover. */
  xmutex_lock(&a->huge_mtx);
  CHECK(rb_validate(&a->huge), "the tree of huge allocations is broken");
  for (rb_node_t *r = rb_first(&a->huge); r != NULL; r = rb_next(r)) {
    extent_node_t *n = rb_entry(r, extent_node_t, ad);
    CHECK(n->kind == META_HUGE && n->arena == a && n->usize <= n->size && n->usize > sz_large_max,
          "huge record for %p is inconsistent", n->addr);
    for (size_t off = 0; off < n->size; off += sz_chunksize)
      CHECK(rtree_get((uintptr_t)n->addr + off) == n, "chunk %p of huge allocation %p is not mapped to it",
            n->addr + off, n->addr);
  }
  xmutex_unlock(&a->huge_mtx);
  CHECK(chunk_validate(&a->chunks), "the free chunk trees are broken");
  if (verbose && cc.nbad > ARENA_CHECK_MAX_LINES)
    util_printf("xalloc: arena %u check: %u more problems not shown\n", a->ind, cc.nbad - ARENA_CHECK_MAX_LINES);
  return cc.nbad == 0;
}
#undef CHECK

bool arena_validate(arena_t *a) { return arena_check_impl(a, false, false); }

bool arena_check(arena_t *a, bool verbose) { return arena_check_impl(a, verbose, true); }

void arena_prefork(arena_t *a) {
  xmutex_prefork(&a->purge_mtx);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_prefork(&a->bins[i].lock);
  xmutex_prefork(&a->lock);
  chunk_prefork(&a->chunks);
  xmutex_prefork(&a->huge_mtx);
}

void arena_postfork_parent(arena_t *a) {
  xmutex_postfork_parent(&a->huge_mtx);
  chunk_postfork_parent(&a->chunks);
  xmutex_postfork_parent(&a->lock);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_postfork_parent(&a->bins[i].lock);
  xmutex_postfork_parent(&a->purge_mtx);
}

void arena_postfork_child(arena_t *a) {
  xmutex_postfork_child(&a->huge_mtx);
  chunk_postfork_child(&a->chunks);
  xmutex_postfork_child(&a->lock);
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_postfork_child(&a->bins[i].lock);
  xmutex_postfork_child(&a->purge_mtx);
}
