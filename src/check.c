/* check: arena_validate and the heap check (arena.h). */
#include <stdarg.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"

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
    /* (Regions past nexposed were never touched: no tag yet.) */
    for (unsigned i = 0; i < run->nexposed; i++) {
      if (!(run->bitmap[i >> 6] & ((uint64_t)1 << (i & 63)))) continue;
      char *r = base + (size_t)i * info->reg_size;
      CHECK(vg_peek_word(r) == tag_of(r),
            "free region %p (size class %u) lost its free tag: written after free, or overrun by the "
            "region before it",
            r, info->reg_size);
    }
  }
  /* The regions in use are all in the pages used; those pages have their
   * words set, the others 0. */
  size_t tagged = (size_t)run->nexposed * info->reg_size;
  CHECK(run->pexposed <= run->npages && run->nexposed <= info->nregs &&
            (run->nexposed == info->nregs || tagged >= (size_t)run->pexposed << LG_PAGE),
        "small run at %p (size class %u): %u pages used, %u regions tagged", base, info->reg_size,
        (unsigned)run->pexposed, (unsigned)run->nexposed);
  for (unsigned i = run->nexposed; i < info->nregs; i++)
    CHECK(run->bitmap[i >> 6] & ((uint64_t)1 << (i & 63)),
          "small run at %p (size class %u): region %u is in use but in a page never used", base, info->reg_size, i);
  curregs[run->binind] += info->nregs - nfree;
  curruns[run->binind]++;
}

/*
 * The objects pending on bin i: left by a refill (remote_rest) and on its
 * remote stack (those pushed since the heap check took them, or all of them
 * for arena_validate). They are allocated as far as their runs know (the
 * bitmaps and curregs count them): each must be the start of an allocated
 * region of the bin, carry its free tag (contents), not be marked taken,
 * and the lists cannot be longer than the regions in use. Bin lock held: no
 * one else takes them, pushers only add on top of the stack loaded here,
 * so both hold still. True if all is well.
 */
static bool arena_check_remote(arena_checker_t *c, unsigned i, bool contents) {
  unsigned nbad = c->nbad;
  arena_bin_t *bin = &c->a->bins[i];
  const sz_bin_info_t *info = &sz_bin_info[i];
  const uintptr_t key = arena_remote_key();
  size_t n = 0;
  void *lists[2] = {bin->remote_rest, __atomic_load_n(&bin->remote, __ATOMIC_ACQUIRE)};
  for (unsigned l = 0; l < 2; l++) {
    for (void *p = lists[l]; p != NULL; n++) {
      arena_run_t *run;
      size_t idx;
      if (n == bin->stats.curregs) {
        arena_check_say(c, "bin %u (size class %u): more objects pending than the %zu regions in use", i,
                        info->reg_size, bin->stats.curregs);
        return false;
      }
      int st = arena_bin_region(c->a, i, p, &run, &idx);
      if (st != ARENA_REGION_OK) {
        arena_check_say(c, "bin %u (size class %u): %p pending on the remote stack is not %s", i,
                        info->reg_size, p, st == ARENA_REGION_FREE ? "allocated (freed twice)" : "a region of the bin");
        return false;
      }
      uintptr_t w = *arena_remote_word(p);
      if (contents && config_heap_checks && tag_lost(p)) {
        arena_check_say(c, "object %p (size class %u) pending on the remote stack lost its free tag: written after free",
                        p, info->reg_size);
      }
      if (w == ARENA_REMOTE_TAKEN) {
        arena_check_say(c, "bin %u (size class %u): %p pending on the remote stack was taken off it already", i,
                        info->reg_size, p);
        return false;
      }
      p = (void *)(w ^ key);
    }
  }
  return c->nbad == nbad;
}

static bool arena_check_impl(arena_t *a, bool verbose, bool contents) {
  arena_checker_t cc = {a, verbose, 0}, *c = &cc;
  for (unsigned i = 0; i < SZ_NBINS; i++) xmutex_lock(&a->bins[i].lock);
  /* The heap check takes the objects freed remotely back to their runs
   * (so that runs they empty are free), once it has checked them: a stack
   * with a bad object is left as it is, reported here as one line, and
   * reported again by whoever takes it. arena_validate leaves them. */
  bool remote_bad[SZ_NBINS] = {false};
  if (contents) {
    for (unsigned i = 0; i < SZ_NBINS; i++) {
      if (__atomic_load_n(&a->bins[i].remote, __ATOMIC_RELAXED) == NULL && a->bins[i].remote_rest == NULL) continue;
      if (arena_check_remote(c, i, true))
        arena_bin_remote_take_locked(a, i);
      else
        remote_bad[i] = true;
    }
  }
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
    CHECK(chunk->ncommitted >= 1 && chunk->ncommitted <= arena_chunk_npages &&
              (pages_strict || chunk->ncommitted == arena_chunk_npages),
          "chunk %p: commit mark %u", chunk->addr, (unsigned)chunk->ncommitted);
    if (chunk->ncommitted < arena_chunk_npages) {
      size_t nc = chunk->ncommitted, rest = arena_chunk_npages - nc;
      CHECK(arena_dirty_count(chunk, nc, rest) == 0 && arena_muzzy_count(chunk, nc, rest) == 0,
            "chunk %p: pages past its commit mark %zu are not clean", chunk->addr, nc);
    }
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
        /* A small run: every page maps to it; a large one: the first and
         * the last page, none between. */
        for (size_t q = p; q <= last; q++)
          CHECK(chunk->map[q] == ((run->state == RUN_SMALL || q == p || q == last) ? run : NULL),
                "page %zu of run at %p (state %u) has page map entry %p", q, raddr, (unsigned)run->state,
                (void *)chunk->map[q]);
        nactive += run->npages;
        prev_free = false;
        CHECK(last < chunk->ncommitted, "run at %p ends past the chunk's commit mark (page %u)", raddr,
              (unsigned)chunk->ncommitted);
        if (run->state == RUN_SMALL) {
          arena_check_small_run(c, chunk, run, contents, curregs, curruns);
        } else if (run->state == RUN_LARGE) {
          /* Its first page holds its class if the caches may hold it. */
          size_t lsize = (size_t)run->npages << LG_PAGE;
          unsigned lind = sz_size2index(lsize);
          uint16_t first = lind < SZ_NFAST && sz_index2size(lind) == lsize ? (uint16_t)lind : BININD_NONE;
          CHECK(chunk->binmap[p] == first, "first page of large run at %p has binmap entry %x, not %x", raddr,
                (unsigned)chunk->binmap[p], (unsigned)first);
          for (size_t q = p + 1; q <= last; q++)
            CHECK(chunk->binmap[q] == BININD_NONE, "page %zu of large run at %p has a size class", q, raddr);
        } else {
          arena_check_say(c, "run at %p has state %u", raddr, (unsigned)run->state);
        }
      }
      p = last + 1;
    }
  }
  CHECK(nactive == a->nactive, "%zu pages in allocated runs, nactive says %zu", nactive, a->nactive);
  CHECK(ndirty == a->dirty.npages[DIRTY_D], "%zu dirty pages in free runs, the purge engine says %zu", ndirty,
        a->dirty.npages[DIRTY_D]);
  CHECK(nmuzzy == a->dirty.npages[DIRTY_M], "%zu muzzy pages in free runs, the purge engine says %zu", nmuzzy,
        a->dirty.npages[DIRTY_M]);
  CHECK(npurging == a->npurging, "%zu pages out for purging, npurging says %zu", npurging, a->npurging);
  CHECK(nfree_runs == a->runs_avail.n, "%zu free runs in chunks, %zu in the free tree", nfree_runs,
        a->runs_avail.n);
  size_t listed = 0, mlisted = 0, nlisted = 0;
  for (const dirty_link_t *l = a->dirty.list[DIRTY_D].next; l != &a->dirty.list[DIRTY_D] && nlisted <= a->runs_avail.n;
       l = l->next, nlisted++) {
    const arena_run_t *run = arena_run_of(l, dirty_link);
    CHECK(run->ndirty != 0 && run->state == RUN_FREE, "run on the dirty list is not free and dirty");
    listed += run->ndirty;
  }
  CHECK(listed == ndirty, "dirty list holds %zu pages, free runs %zu", listed, ndirty);
  nlisted = 0;
  for (const dirty_link_t *l = a->dirty.list[DIRTY_M].next; l != &a->dirty.list[DIRTY_M] && nlisted <= a->runs_avail.n;
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
    /* What was pushed since it was taken (all of it for arena_validate). */
    if (!remote_bad[i]) arena_check_remote(c, i, contents);
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
  arena_chunks_flush(a); /* runs the stacks emptied may have freed a chunk */
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
