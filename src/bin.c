/* bin: small size-class bins, each fed by runs of regions (arena.h). */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"

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

/*
 * A run with a free region for bin (to become its runcur); bin lock held.
 * When the arena needs a new chunk, both the bin and the arena lock are
 * dropped while it is allocated (the chunk layer may mmap or call the
 * user's extent hooks), and the search starts again: meanwhile another
 * thread may have given the bin a run.
 */
static arena_run_t *arena_bin_nonfull_run(arena_t *a, arena_bin_t *bin, unsigned binind) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  arena_run_t *run;
  for (;;) {
    if (bin->runcur != NULL && bin->runcur->nfree > 0) return bin->runcur;
    rb_node_t *r = rb_first(&bin->runs);
    if (r != NULL) {
      rb_remove(&bin->runs, r);
      return rb_entry(r, arena_run_t, link);
    }
    bool need_chunk;
    xmutex_lock(&a->lock);
    run = arena_run_alloc(a, info->run_pages, PAGE, info->nwords, &need_chunk);
    if (run != NULL) {
      run->state = RUN_SMALL;
      run->binind = (uint16_t)binind;
      for (uint32_t i = 0; i < run->npages; i++)
        run->chunk->binmap[run->pageind + i] = (uint16_t)(binind | (i << 8));
    }
    xmutex_unlock(&a->lock);
    if (run != NULL) break;
    if (!need_chunk) return NULL;
    xmutex_unlock(&bin->lock);
    bool err = arena_chunk_add(a);
    xmutex_lock(&bin->lock);
    if (err) return NULL;
  }
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
  void *ret;
  for (;;) {
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
    ret = arena_run_reg_alloc(run, info);
    bin->stats.nmalloc++;
    bin->stats.curregs++;
    xmutex_unlock(&bin->lock);
    /* A free region must still hold its tag. One that lost it is reported
     * and stays allocated (leaked: it may be live, see tag.h). */
    if (likely(!tcache_tag_lost_peek(ret))) break;
    report_bad("malloc", BAD_TAG_LOST, ret, info->reg_size, a->ind, NULL);
  }
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
static void arena_dalloc_small_locked(arena_t *a, arena_bin_t *bin, unsigned binind,
                                      arena_chunk_t *chunk, void *ptr) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  size_t pageind = (size_t)((char *)ptr - chunk->addr) >> LG_PAGE;
  arena_run_t *run = chunk->map[pageind];
  if (run == NULL || run->state != RUN_SMALL || run->binind != binind) {
    report_unallocated(a, ptr, "free");
    return;
  }
  size_t off = (size_t)((char *)ptr - arena_run_addr(run));
  size_t idx = (size_t)((off * info->div_magic) >> 32);
  if (idx >= info->nregs || idx * info->reg_size != off) {
    report_bad("free", BAD_INTERIOR, ptr, info->reg_size, a->ind, NULL);
    return;
  }
  uint64_t mask = (uint64_t)1 << (idx & 63);
  if (run->bitmap[idx >> 6] & mask) {
    report_bad("free", BAD_FREED, ptr, info->reg_size, a->ind, NULL);
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

void arena_dalloc_small(arena_t *a, arena_chunk_t *chunk, arena_run_t *run, void *ptr) {
  unsigned binind = run->binind;
  if (binind >= SZ_NBINS) {
    report_bad("free", BAD_NOT_BLOCK, ptr, 0, a->ind, NULL);
    return;
  }
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  arena_dalloc_small_locked(a, bin, binind, chunk, ptr);
  xmutex_unlock(&bin->lock);
  arena_chunks_flush(a);
}

void arena_dalloc_small_batch(arena_t *a, unsigned binind, void **ptrs, unsigned n) {
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  for (unsigned i = 0; i < n; i++) {
    arena_chunk_t *chunk = rtree_get((uintptr_t)ptrs[i]);
    if (chunk == NULL || chunk->kind != META_ARENA_CHUNK || chunk->arena != a) {
      report_bad("free", BAD_NOT_BLOCK, ptrs[i], 0, a->ind, NULL);
      continue;
    }
    arena_dalloc_small_locked(a, bin, binind, chunk, ptrs[i]);
  }
  xmutex_unlock(&bin->lock);
  arena_chunks_flush(a);
  arena_decay_tick(a);
}

/* Regions that lost their tags, reported after the bin lock is dropped. */
#define ARENA_FILL_BAD_MAX 8

unsigned arena_fill_small(arena_t *a, unsigned binind, void **ptrs, unsigned n) {
  arena_bin_t *bin = &a->bins[binind];
  const sz_bin_info_t *info = &sz_bin_info[binind];
  unsigned filled = 0, nbad;
  void *bad[ARENA_FILL_BAD_MAX];
  do {
    unsigned start = filled;
    nbad = 0;
    xmutex_lock(&bin->lock);
    while (filled < n && nbad < ARENA_FILL_BAD_MAX) {
      arena_run_t *run = bin->runcur;
      if (run == NULL || run->nfree == 0) {
        run = arena_bin_nonfull_run(a, bin, binind);
        if (run == NULL) break;
        bin->runcur = run;
      }
      char *base = arena_run_addr(run);
      for (unsigned w = 0; w < info->nwords && filled < n && nbad < ARENA_FILL_BAD_MAX; w++) {
        uint64_t bits = run->bitmap[w];
        while (bits != 0 && filled < n && nbad < ARENA_FILL_BAD_MAX) {
          unsigned bit = (unsigned)__builtin_ctzll(bits);
          bits &= bits - 1;
          run->nfree--;
          char *r = base + (size_t)(w * 64 + bit) * info->reg_size;
          /* Regions in runs hold their tags (checked, not rewritten): one
           * that lost it is reported and stays allocated (leaked: it may
           * be live, see tag.h). */
          if (unlikely(tcache_tag_lost_peek(r)))
            bad[nbad++] = r;
          else
            ptrs[n - 1 - filled++] = r;
        }
        run->bitmap[w] = bits;
      }
    }
    bin->stats.nmalloc += filled - start + nbad;
    bin->stats.curregs += filled - start + nbad;
    xmutex_unlock(&bin->lock);
    for (unsigned i = 0; i < nbad; i++) report_bad("malloc", BAD_TAG_LOST, bad[i], info->reg_size, a->ind, NULL);
  } while (nbad == ARENA_FILL_BAD_MAX && filled < n);
  /* Filled from the top: move down so that ptrs[0..filled) hold them,
   * the lowest address last. */
  if (filled < n) memmove(ptrs, ptrs + (n - filled), filled * sizeof(void *));
  arena_decay_tick(a);
  return filled;
}
