/* bin: small size-class bins, each fed by runs of regions (arena.h). */
#include <errno.h>

#include "xalloc/internal/run.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"

static inline void arena_bin_remote_drain(arena_t *a, arena_bin_t *bin, unsigned binind);

static void arena_run_expose(arena_run_t *run, const sz_bin_info_t *info, unsigned binind, size_t idx);

static void *arena_run_reg_alloc(arena_run_t *run, const sz_bin_info_t *info, unsigned binind) {
  for (unsigned w = 0; w < info->nwords; w++) {
    uint64_t bits = run->bitmap[w];
    if (bits != 0) {
      unsigned bit = (unsigned)__builtin_ctzll(bits);
      run->bitmap[w] = bits & (bits - 1);
      run->nfree--;
      size_t idx = (size_t)w * 64 + bit;
      if (unlikely(idx >= run->nexposed)) arena_run_expose(run, info, binind, idx);
      return arena_run_addr(run) + idx * info->reg_size;
    }
  }
  not_reached();
}

/*
 * Region idx of run is about to be taken, and starts in a page the run
 * has not used yet: use the pages through that one. Every region starting
 * in them gets its tag -- a free region must carry it, so that a free of a
 * region that is free in the bitmap is caught even on the fast path --
 * and their page words are set, which lets the fast path free there. Until
 * then a page is never touched (a new run faults in only what it hands
 * out) and its word is 0, so that the fast path cannot take a free of a
 * region there (never handed out, so never rightly freed: a stale or wild
 * pointer): the slow path finds it free in the bitmap and reports it.
 * Regions are taken lowest first, so the pages used are a prefix. Bin
 * lock held.
 */
XA_NOINLINE static void arena_run_expose(arena_run_t *run, const sz_bin_info_t *info, unsigned binind, size_t idx) {
  char *base = arena_run_addr(run);
  size_t reg = info->reg_size;
  size_t pend = ((idx * reg) >> LG_PAGE) + 1; /* through the page region idx starts in */
  size_t hi = ((pend << LG_PAGE) + reg - 1) / reg; /* the regions starting before it ends */
  if (hi >= info->nregs) {
    hi = info->nregs;
    pend = run->npages; /* and the pages after the last region start */
  }
  if (config_heap_checks) {
    char *from = base + (size_t)run->nexposed * reg;
    vg_undefined(from, (hi - run->nexposed) * reg);
    for (size_t i = run->nexposed; i < hi; i++) tag_set(base + i * reg);
    vg_noaccess(from, (hi - run->nexposed) * reg);
  }
  rtree_pw_set((uintptr_t)base + ((size_t)run->pexposed << LG_PAGE), pend - run->pexposed,
               rtree_pw_word(binind, (uintptr_t)base));
  run->pexposed = (uint8_t)pend;
  __atomic_store_n(&run->nexposed, (uint16_t)hi, __ATOMIC_RELAXED); /* read by frees without the lock */
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
  bool relieved = false;
  for (;;) {
    if (bin->runcur != NULL && bin->runcur->nfree > 0) return bin->runcur;
    rb_node_t *r = rb_first(&bin->runs);
    if (r != NULL) {
      rb_remove(&bin->runs, r);
      return rb_entry(r, arena_run_t, link);
    }
    unsigned need;
    xmutex_lock(&a->lock);
    run = arena_run_alloc(a, info->run_pages, PAGE, info->nwords, &need);
    if (run != NULL) {
      run->state = RUN_SMALL;
      run->binind = (uint16_t)binind;
      for (uint32_t i = 0; i < run->npages; i++) {
        run->chunk->map[run->pageind + i] = run; /* every page of a small run */
        run->chunk->binmap[run->pageind + i] = (uint16_t)(binind | (i << 8));
      }
      /* Its pages' words are set (and its regions tagged) as regions
       * are first taken from them: arena_run_expose. */
      run->pexposed = 0;
      run->nexposed = 0;
    }
    xmutex_unlock(&a->lock);
    if (run != NULL) break;
    if (need == ARENA_NEED_NONE || (need == ARENA_NEED_RELIEVE && relieved)) return NULL;
    xmutex_unlock(&bin->lock);
    bool err;
    if (need == ARENA_NEED_RELIEVE) {
      relieved = true; /* once: the commit limit */
      err = !arena_commit_relieve(a);
    } else {
      err = arena_chunk_add(a, info->run_pages);
    }
    xmutex_lock(&bin->lock);
    if (err) {
      errno = ENOMEM;
      return NULL;
    }
  }
  run->nfree = (uint16_t)info->nregs;
  for (unsigned w = 0; w < info->nwords; w++) {
    unsigned bits = info->nregs - w * 64;
    run->bitmap[w] = bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
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
    arena_bin_remote_drain(a, bin, binind);
    arena_run_t *run = bin->runcur;
    if (run == NULL || run->nfree == 0) {
      run = arena_bin_nonfull_run(a, bin, binind);
      if (run == NULL) {
        xmutex_unlock(&bin->lock);
        arena_chunks_flush(a);
        errno = ENOMEM;
        return NULL;
      }
      bin->runcur = run;
    }
    ret = arena_run_reg_alloc(run, info, binind);
    bin->stats.nmalloc++;
    bin->stats.curregs++;
    xmutex_unlock(&bin->lock);
    /* A free region must still hold its tag. One that lost it is reported
     * and stays allocated (leaked: it may be live, see tag.h). */
    if (likely(!tag_lost_peek(ret))) break;
    report_bad("malloc", BAD_TAG_LOST, ret, info->reg_size, a->ind, NULL);
  }
  arena_chunks_flush(a);
  vg_undefined(ret, info->reg_size);
  if (zero)
    memset(ret, 0, info->reg_size);
  else
    tag_clear(ret);
  arena_decay_tick(a);
  return ret;
}

/* arena_bin_region, ptr in chunk (one of the arena's). */
XA_ALWAYS_INLINE int arena_bin_region_in(arena_chunk_t *chunk, unsigned binind, const void *ptr, arena_run_t **runp,
                                      size_t *idxp) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  size_t pageind = (size_t)((const char *)ptr - chunk->addr) >> LG_PAGE;
  arena_run_t *run = chunk->map[pageind];
  if (run == NULL || run->state != RUN_SMALL || run->binind != binind) return ARENA_REGION_NOT_RUN;
  size_t off = (size_t)((const char *)ptr - arena_run_addr(run));
  size_t idx = (size_t)((off * info->div_magic) >> 32);
  if (idx >= info->nregs || idx * info->reg_size != off) return ARENA_REGION_INTERIOR;
  *runp = run;
  *idxp = idx;
  return run->bitmap[idx >> 6] & ((uint64_t)1 << (idx & 63)) ? ARENA_REGION_FREE : ARENA_REGION_OK;
}

int arena_bin_region(arena_t *a, unsigned binind, const void *ptr, arena_run_t **runp, size_t *idxp) {
  arena_chunk_t *chunk = rtree_get((uintptr_t)ptr);
  if (chunk == NULL || chunk->kind != META_ARENA_CHUNK || chunk->arena != a) return ARENA_REGION_NOT_RUN;
  return arena_bin_region_in(chunk, binind, ptr, runp, idxp);
}

/* Region idx (at ptr) of run, allocated, becomes free; bin lock held. A
 * run that becomes wholly free goes back to the arena (chunks_out may get
 * a chunk: the caller calls arena_chunks_flush once it holds no lock). */
XA_ALWAYS_INLINE void arena_bin_region_free(arena_t *a, arena_bin_t *bin, const sz_bin_info_t *info, arena_run_t *run,
                                  size_t idx, void *ptr) {
  run->bitmap[idx >> 6] |= (uint64_t)1 << (idx & 63);
  vg_freelike(ptr);
  vg_undefined(ptr, info->reg_size);
  if (unlikely(opt_junk)) memset(ptr, JUNK_FREE, info->reg_size);
  tag_set(ptr);
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

/*
 * Free one small region of bin binind of arena a; the bin lock is held.
 * Everything is checked against the metadata first: the page must be in a
 * small run of this class, the pointer must be a region's start, and the
 * region must be allocated.
 */
static void arena_dalloc_small_locked(arena_t *a, arena_bin_t *bin, unsigned binind, arena_chunk_t *chunk,
                                      void *ptr) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  arena_run_t *run;
  size_t idx;
  switch (arena_bin_region_in(chunk, binind, ptr, &run, &idx)) {
  case ARENA_REGION_OK: arena_bin_region_free(a, bin, info, run, idx, ptr); return;
  case ARENA_REGION_NOT_RUN: report_unallocated(a, ptr, "free"); return;
  case ARENA_REGION_INTERIOR: report_bad("free", BAD_INTERIOR, ptr, info->reg_size, a->ind, NULL); return;
  default: report_bad("free", BAD_FREED, ptr, info->reg_size, a->ind, NULL); return;
  }
}

/*
 * Walk a list of pending objects from p (bin lock held; see arena.h).
 * Every object is checked before anything is read from it (a region of
 * this bin, allocated) and before it is used (its free tag), and marked
 * taken. Good ones go to ptrs[n - 1 - *filled] while *filled < n (a refill:
 * handed out as they are, tagged); once the refill is full the walk stops
 * and returns the rest of the list, unchecked. Without ptrs (n == 0) every
 * good object goes back to its run. The walk also stops at an object met
 * before (pushed twice: a double free), at a link to something that is not
 * a pending object of this bin (the link was written over: a write after
 * free), and after curregs objects (no list is longer): what is left of the
 * list is reported and stays allocated. An object that lost its tag is
 * reported and stays allocated (it may be live: see tag.h), untouched.
 */
static void *arena_bin_remote_walk(arena_t *a, arena_bin_t *bin, unsigned binind, void *p, void **ptrs,
                                   unsigned n, unsigned *filled) {
  const sz_bin_info_t *info = &sz_bin_info[binind];
  const uintptr_t key = arena_remote_key();
  size_t budget = bin->stats.curregs;
  void *prev = NULL;
  /* The run of the previous object: a batch freed together mostly comes
   * from a few runs, and an object inside it needs no radix tree or page
   * map lookup (the bin lock keeps it a small run of this class until one
   * of its regions is freed into it and empties it). */
  arena_run_t *lrun = NULL;
  uintptr_t lbase = 0, lspan = 0;
  uint64_t nremote = 0;
  while (p != NULL) {
    if (n != 0 && *filled == n) break;
    arena_run_t *run;
    size_t idx;
    int st;
    if (unlikely(budget-- == 0)) {
      st = ARENA_REGION_NOT_RUN;
    } else if ((uintptr_t)p - lbase < lspan) {
      size_t off = (uintptr_t)p - lbase;
      run = lrun;
      idx = (size_t)((off * info->div_magic) >> 32);
      if (unlikely(idx * info->reg_size != off))
        st = ARENA_REGION_INTERIOR;
      else
        st = run->bitmap[idx >> 6] & ((uint64_t)1 << (idx & 63)) ? ARENA_REGION_FREE : ARENA_REGION_OK;
    } else {
      st = arena_bin_region(a, binind, p, &run, &idx);
      if (likely(st == ARENA_REGION_OK)) {
        lrun = run;
        lbase = (uintptr_t)arena_run_addr(run);
        lspan = (uintptr_t)info->nregs * info->reg_size;
      }
    }
    if (unlikely(st != ARENA_REGION_OK)) {
      if (st == ARENA_REGION_FREE)
        report_bad("free", BAD_FREED, p, info->reg_size, a->ind, NULL);
      else
        report_bad("remote free", BAD_TAG_LOST, prev != NULL ? prev : p, info->reg_size, a->ind,
                   "its link to the next object freed with it was overwritten (the rest stay allocated)");
      p = NULL;
      break;
    }
    uintptr_t *w = arena_remote_word(p);
    void *next = (void *)(*w ^ key);
    if (unlikely(tag_lost(p))) {
      /* Written after free while pending, or live: left alone. */
      report_bad("remote free", BAD_TAG_LOST, p, info->reg_size, a->ind, NULL);
    } else if (unlikely(*w == ARENA_REMOTE_TAKEN)) {
      /* Pushed twice (freed twice, its tag written over in between). */
      report_bad("free", BAD_FREED, p, info->reg_size, a->ind, NULL);
      p = NULL;
      break;
    } else {
      *w = ARENA_REMOTE_TAKEN;
      nremote++;
      if (n != 0) {
        /* Straight into the refilling cache: returned and handed out again. */
        ptrs[n - 1 - (*filled)++] = p;
      } else {
        if (run->nfree + 1u == info->nregs) lspan = 0; /* empties it: given back */
        arena_bin_region_free(a, bin, info, run, idx, p);
      }
    }
    prev = p;
    p = next;
  }
  bin->stats.nremote += nremote;
  if (n != 0) {
    bin->stats.ndalloc += nremote;
    bin->stats.nmalloc += nremote;
  }
  return p;
}

/*
 * Take the objects pending on bin (bin lock held): what a refill left last
 * time (remote_rest) first, then the stack, taken whole with one exchange.
 * A refill (n > 0) takes what fits and keeps the rest in remote_rest for
 * the next one (not in the runs: it would only take them out again); a
 * drain (n == 0) puts everything back into the runs.
 */
static void arena_bin_remote_take(arena_t *a, arena_bin_t *bin, unsigned binind, void **ptrs, unsigned n,
                                  unsigned *filled) {
  void *p = bin->remote_rest;
  bool took = p != NULL;
  if (p != NULL) {
    p = arena_bin_remote_walk(a, bin, binind, p, ptrs, n, filled);
    if (p != NULL || (n != 0 && *filled == n)) goto out; /* the refill is full */
  }
  p = __atomic_exchange_n(&bin->remote, NULL, __ATOMIC_ACQUIRE);
  if (p != NULL) {
    took = true;
    p = arena_bin_remote_walk(a, bin, binind, p, ptrs, n, filled);
  }
out:
  __atomic_store_n(&bin->remote_rest, p, __ATOMIC_RELAXED);
  if (took) __atomic_store_n(&bin->remote_ntakes, bin->remote_ntakes + 1, __ATOMIC_RELAXED);
}

/* Whether objects freed remotely are pending on bin (a hint without its
 * lock). */
static inline bool arena_bin_remote_pending(arena_bin_t *bin) {
  return __atomic_load_n(&bin->remote, __ATOMIC_RELAXED) != NULL ||
         __atomic_load_n(&bin->remote_rest, __ATOMIC_RELAXED) != NULL;
}

/* Take bin's remote stack into the runs; bin lock held. */
static inline void arena_bin_remote_drain(arena_t *a, arena_bin_t *bin, unsigned binind) {
  if (arena_bin_remote_pending(bin)) {
    unsigned none = 0;
    arena_bin_remote_take(a, bin, binind, NULL, 0, &none);
  }
}

void arena_bin_remote_take_locked(arena_t *a, unsigned binind) {
  arena_bin_remote_drain(a, &a->bins[binind], binind);
}

void arena_remote_drain(arena_t *a, bool stale) {
  for (unsigned i = 0; i < SZ_NBINS; i++) {
    arena_bin_t *bin = &a->bins[i];
    if (!arena_bin_remote_pending(bin)) continue;
    if (stale) {
      /* Taken since the last look: its owner is at work, leave it. */
      uint64_t n = __atomic_load_n(&bin->remote_ntakes, __ATOMIC_RELAXED);
      if (n != __atomic_load_n(&bin->remote_tick_seen, __ATOMIC_RELAXED)) {
        __atomic_store_n(&bin->remote_tick_seen, n, __ATOMIC_RELAXED);
        continue;
      }
    }
    xmutex_lock(&bin->lock);
    arena_bin_remote_drain(a, bin, i);
    xmutex_unlock(&bin->lock);
  }
  arena_chunks_flush(a);
}

void arena_bin_stats_read(arena_t *a, unsigned binind, arena_bin_stats_t *out, size_t *nonfull) {
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  arena_bin_remote_drain(a, bin, binind);
  *out = bin->stats;
  *nonfull = bin->runs.n + (bin->runcur != NULL && bin->runcur->nfree != 0);
  xmutex_unlock(&bin->lock);
}

void arena_dalloc_small(arena_t *a, arena_chunk_t *chunk, arena_run_t *run, void *ptr) {
  unsigned binind = run->binind;
  if (binind >= SZ_NBINS) {
    report_bad("free", BAD_NOT_BLOCK, ptr, 0, a->ind, NULL);
    return;
  }
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  arena_bin_remote_drain(a, bin, binind);
  arena_dalloc_small_locked(a, bin, binind, chunk, ptr);
  xmutex_unlock(&bin->lock);
  arena_chunks_flush(a);
}

/* Free ptrs[0..n) into bin binind; bin lock held. */
static void arena_dalloc_small_batch_locked(arena_t *a, arena_bin_t *bin, unsigned binind, void **ptrs,
                                            unsigned n) {
  arena_bin_remote_drain(a, bin, binind);
  const sz_bin_info_t *info = &sz_bin_info[binind];
  /* The run of the previous object, as in arena_bin_remote_walk: objects
   * flushed together mostly come from a few runs, and one inside the
   * previous object's run needs no radix tree or page map lookup (the bin
   * lock keeps it a small run of this class until a region freed into it
   * empties it). Its bitmap is still checked; anything odd takes the full
   * path, which reports it. */
  arena_run_t *lrun = NULL;
  uintptr_t lbase = 0, lspan = 0;
  for (unsigned i = 0; i < n; i++) {
    void *p = ptrs[i];
    uintptr_t off = (uintptr_t)p - lbase;
    if (off < lspan) {
      size_t idx = (size_t)((off * info->div_magic) >> 32);
      if (likely(idx * info->reg_size == off && !(lrun->bitmap[idx >> 6] & ((uint64_t)1 << (idx & 63))))) {
        if (lrun->nfree + 1u == info->nregs) lspan = 0; /* empties it: given back */
        arena_bin_region_free(a, bin, info, lrun, idx, p);
        continue;
      }
    }
    arena_chunk_t *chunk = rtree_get((uintptr_t)p);
    if (chunk == NULL || chunk->kind != META_ARENA_CHUNK || chunk->arena != a) {
      report_bad("free", BAD_NOT_BLOCK, p, 0, a->ind, NULL);
      continue;
    }
    arena_run_t *run;
    size_t idx;
    int st = arena_bin_region_in(chunk, binind, p, &run, &idx);
    if (likely(st == ARENA_REGION_OK)) {
      lrun = run;
      lbase = (uintptr_t)arena_run_addr(run);
      lspan = run->nfree + 1u == info->nregs ? 0 : (uintptr_t)info->nregs * info->reg_size;
      arena_bin_region_free(a, bin, info, run, idx, p);
    } else {
      arena_dalloc_small_locked(a, bin, binind, chunk, p); /* reports it */
    }
  }
}

void arena_dalloc_small_batch(arena_t *a, unsigned binind, void **ptrs, unsigned n) {
  arena_bin_t *bin = &a->bins[binind];
  xmutex_lock(&bin->lock);
  arena_dalloc_small_batch_locked(a, bin, binind, ptrs, n);
  xmutex_unlock(&bin->lock);
  arena_chunks_flush(a);
  arena_decay_tick(a);
}

void arena_dalloc_small_flush(arena_t *a, unsigned binind, void **ptrs, unsigned n, bool remote) {
  if (n == 0) return;
  arena_bin_t *bin = &a->bins[binind];
  if (sz_bin_info[binind].reg_size < ARENA_REMOTE_MIN) {
    arena_dalloc_small_batch(a, binind, ptrs, n);
    return;
  }
  if (!remote && xmutex_trylock(&bin->lock)) {
    arena_dalloc_small_batch_locked(a, bin, binind, ptrs, n);
    xmutex_unlock(&bin->lock);
    arena_chunks_flush(a);
  } else {
    /* One push: link the batch through the second words (the first keep
     * their tags), the last one to the current top, then swing the top. */
    const uintptr_t key = arena_remote_key();
    for (unsigned i = 0; i + 1 < n; i++) *arena_remote_word(ptrs[i]) = (uintptr_t)ptrs[i + 1] ^ key;
    uintptr_t *last = arena_remote_word(ptrs[n - 1]);
    void *top = __atomic_load_n(&bin->remote, __ATOMIC_RELAXED);
    do {
      *last = (uintptr_t)top ^ key;
    } while (!__atomic_compare_exchange_n(&bin->remote, &top, ptrs[0], true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  }
  arena_decay_tick(a);
}

/* Regions that lost their tags, reported after the bin lock is dropped. */
#define ARENA_FILL_BAD_MAX 8

unsigned arena_fill_small(arena_t *a, unsigned binind, void **ptrs, unsigned n, unsigned nmax) {
  arena_bin_t *bin = &a->bins[binind];
  const sz_bin_info_t *info = &sz_bin_info[binind];
  unsigned filled = 0, nbad;
  void *bad[ARENA_FILL_BAD_MAX];
  do {
    unsigned start = filled;
    nbad = 0;
    xmutex_lock(&bin->lock);
    /* Objects freed remotely first: straight into the cache (counted by
     * the drain). */
    if (arena_bin_remote_pending(bin)) {
      arena_bin_remote_take(a, bin, binind, ptrs, nmax, &filled);
      start = filled;
    }
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
          size_t idx = (size_t)w * 64 + bit;
          if (unlikely(idx >= run->nexposed)) arena_run_expose(run, info, binind, idx);
          char *r = base + idx * info->reg_size;
          /* Regions in runs hold their tags (checked, not rewritten): one
           * that lost it is reported and stays allocated (leaked: it may
           * be live, see tag.h). */
          if (unlikely(tag_lost_peek(r)))
            bad[nbad++] = r;
          else
            ptrs[nmax - 1 - filled++] = r;
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
  if (filled < nmax) memmove(ptrs, ptrs + (nmax - filled), filled * sizeof(void *));
  arena_chunks_flush(a);
  arena_decay_tick(a);
  return filled;
}
