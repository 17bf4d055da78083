/*
 * run: page runs inside arena chunks, shared by the files of the arena
 * layer (arena.c, bin.c, large.c, purge.c, lookup.c, check.c). Not for the
 * layers above: they use arena.h.
 *
 * The descriptors and the page maps are described in arena.h. Every
 * function here is called with the arena lock held, except where it says
 * otherwise.
 */
#ifndef XALLOC_INTERNAL_RUN_H
#define XALLOC_INTERNAL_RUN_H

#include "xalloc/internal/arena.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/tag.h"

/* Run descriptors, one pool per bitmap size; chunk descriptors. */
extern base_pool_t arena_run_pools[SZ_BITMAP_WORDS + 1];
extern base_pool_t arena_chunk_pool;
/* Pages per chunk. */
extern size_t arena_chunk_npages;

static inline char *arena_run_addr(const arena_run_t *run) {
  return run->chunk->addr + ((size_t)run->pageind << LG_PAGE);
}

/* Orders of the trees of runs (bins: by address) and chunks. */
int arena_cmp_addr(const rb_node_t *a, const rb_node_t *b);
int arena_cmp_chunk(const rb_node_t *a, const rb_node_t *b);

/* Run descriptors with nwords bitmap words, from the arena's own cache
 * (base memory when it is empty or full): the global base lock is not
 * taken in the steady state. Arena lock held. */
arena_run_t *arena_run_desc_alloc(arena_t *a, unsigned nwords);
void arena_run_desc_free(arena_t *a, arena_run_t *run);
/* runs_avail and the dirty and muzzy lists. */
void arena_avail_insert(arena_t *a, arena_run_t *run);
void arena_avail_remove(arena_t *a, arena_run_t *run);
/* Dirty and muzzy pages of chunk in [start, start+n). */
size_t arena_dirty_count(const arena_chunk_t *chunk, size_t start, size_t n);
size_t arena_muzzy_count(const arena_chunk_t *chunk, size_t start, size_t n);
/* Pages [start, start+n) of chunk become clean (purged for good) or muzzy
 * (lazily purged: dirty pages only). */
void arena_pages_set_clean(arena_chunk_t *chunk, size_t start, size_t n);
void arena_pages_dirty_to_muzzy(arena_chunk_t *chunk, size_t start, size_t n);
/*
 * Take pages [fr->pageind + off, + npages) out of the free run fr. What is
 * left before and after stays free; spare is a descriptor to use if both
 * are left (set to NULL when used). Returns whether the pages read as zero.
 */
bool arena_pages_take(arena_t *a, arena_run_t *fr, uint32_t off, uint32_t npages, arena_run_t **spare);
/* Allocate a run of npages at alignment (a power of two >= PAGE) with a
 * descriptor of nwords bitmap words from the free runs. NULL on OOM, with
 * *need set to ARENA_NEED_CHUNK when no free run fits (then drop every
 * lock, call arena_chunk_add and try again) or to ARENA_NEED_RELIEVE when
 * the commit of the run's pages failed (pages_strict, the commit limit:
 * drop every lock, and try again once if arena_commit_relieve freed
 * anything). */
enum { ARENA_NEED_NONE = 0, ARENA_NEED_CHUNK, ARENA_NEED_RELIEVE };
arena_run_t *arena_run_alloc(arena_t *a, uint32_t npages, size_t alignment, unsigned nwords, unsigned *need);
/* Add a new chunk (one free run) to the arena, for a run of hint pages.
 * No lock held on entry or exit: the chunk is allocated with none held
 * (the chunk layer may mmap or call the user's extent hooks). True (errno
 * ENOMEM) if there is none. */
bool arena_chunk_add(arena_t *a, size_t hint);
/* pages_strict: commit chunk's pages up to page end at least (raising its
 * commit mark, chunk->ncommitted; nothing when end is below it, always so
 * in the default mode). true (errno ENOMEM) if the commit limit refused. */
bool arena_chunk_commit_to(arena_t *a, arena_chunk_t *chunk, uint32_t end);
/* A commit failed: give back the spare chunk and the chunk level's free
 * memory (chunk_relieve). No lock held. true if anything was freed. */
bool arena_commit_relieve(arena_t *a);
/* Give the detached chunks of list (out_next, each in its out_state) back
 * to the chunk trees and free their descriptors. No lock held. */
void arena_chunks_giveback(arena_t *a, arena_chunk_t *list);
/* Make the pages of run (already unlinked from any bin) free, merging with
 * free neighbours; a wholly free chunk becomes the spare, and the previous
 * spare is detached: the caller calls arena_chunks_flush once it holds no
 * lock. */
void arena_run_dalloc(arena_t *a, arena_run_t *run, bool dirty);
void arena_chunk_list_remove(arena_t *a, arena_chunk_t *chunk);

/*
 * Remote stacks (arena.h, bin.c). A pending object's second word is the
 * next one's address xor arena_remote_key() (0 ends the list);
 * ARENA_REMOTE_TAKEN, stored by the drain that took it, marks one that
 * must not be met again in a list.
 */
static inline uintptr_t arena_remote_key(void) {
  uintptr_t k = tag_key;
  return ((k << 23) | (k >> 41)) ^ (uintptr_t)0x9e3779b97f4a7c15ULL;
}
#define ARENA_REMOTE_TAKEN ((uintptr_t)1)
static inline uintptr_t *arena_remote_word(void *obj) { return (uintptr_t *)obj + 1; }

/* What ptr is to bin binind of arena a (bin lock held): the start of an
 * allocated region (ARENA_REGION_OK, with its run and index), or not.
 * Nothing is reported. */
enum { ARENA_REGION_OK = 0, ARENA_REGION_NOT_RUN, ARENA_REGION_INTERIOR, ARENA_REGION_FREE };
int arena_bin_region(arena_t *a, unsigned binind, const void *ptr, arena_run_t **runp, size_t *idxp);

/* Take bin binind's remote stack into the runs; its lock held, not the
 * arena lock (the caller calls arena_chunks_flush once it holds none). */
void arena_bin_remote_take_locked(arena_t *a, unsigned binind);

/* Free ptr, in run (small, bin.c) or at page pageind (large, large.c) of
 * chunk; no lock held. */
void arena_dalloc_small(arena_t *a, arena_chunk_t *chunk, arena_run_t *run, void *ptr);
void arena_dalloc_large(arena_t *a, arena_chunk_t *chunk, void *ptr, size_t pageind);

#endif
