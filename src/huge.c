/* huge: allocations of a chunk or more (see huge.h). */
#include <errno.h>

#include "xalloc/internal/huge.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"

void *huge_malloc(arena_t *a, size_t usize, size_t alignment, bool zero) {
  size_t csize = sz_chunk_ceiling(usize);
  if (csize < usize) {
    errno = ENOMEM;
    return NULL;
  }
  extent_node_t *node = chunk_node_alloc(&a->chunks);
  if (node == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  bool zeroed;
  /* Committed up to the usable size (pages_strict; else all of it). */
  size_t commit = PAGE_CEILING(usize);
  char *addr = chunk_alloc_commit(&a->chunks, csize, alignment, &commit, &zeroed);
  if (addr == NULL) {
    chunk_node_free(&a->chunks, node);
    errno = ENOMEM;
    return NULL;
  }
  node->kind = META_HUGE;
  node->arena = a;
  node->addr = addr;
  node->size = csize;
  node->usize = usize;
  node->committed = commit;
  if (rtree_set_range((uintptr_t)addr, csize, node)) {
    chunk_dalloc_commit(&a->chunks, addr, csize, zeroed ? CHUNK_CLEAN : CHUNK_DIRTY, commit);
    chunk_node_free(&a->chunks, node);
    errno = ENOMEM;
    return NULL;
  }
  vg_noaccess(addr, csize);
  vg_undefined(addr, usize);
  if (commit < csize) chunk_holes_add(1);
  xmutex_lock(&a->huge_mtx);
  rb_insert(&a->huge, &node->ad);
  a->stats.nmalloc_huge++;
  a->stats.allocated_huge += usize;
  xmutex_unlock(&a->huge_mtx);
  if (zero && !zeroed) memset(addr, 0, usize);
  arena_decay_tick(a);
  return addr;
}

void huge_dalloc(extent_node_t *node, void *ptr) {
  arena_t *a = node->arena;
  xmutex_lock(&a->huge_mtx);
  /* Check under the lock: the node must still be this live allocation. */
  if (node->kind != META_HUGE || node->addr != ptr || rb_search(&a->huge, &node->ad) != &node->ad) {
    xmutex_unlock(&a->huge_mtx);
    report_bad("free", node->kind == META_HUGE ? BAD_INTERIOR : BAD_FREED, ptr,
               node->kind == META_HUGE ? node->usize : 0, a->ind, NULL);
    return;
  }
  rb_remove(&a->huge, &node->ad);
  report_freed_huge(a, ptr, node->usize);
  vg_freelike(ptr);
  if (unlikely(opt_junk)) {
    vg_undefined(ptr, node->usize);
    memset(ptr, JUNK_FREE, node->usize);
    tag_set(ptr);
    vg_noaccess(ptr, node->usize);
  }
  a->stats.ndalloc_huge++;
  a->stats.allocated_huge -= node->usize;
  node->kind = META_NONE;
  xmutex_unlock(&a->huge_mtx);
  rtree_set_range((uintptr_t)node->addr, node->size, NULL);
  if (node->committed < node->size) chunk_holes_add(-1);
  chunk_dalloc_commit(&a->chunks, node->addr, node->size, CHUNK_DIRTY, node->committed);
  chunk_node_free(&a->chunks, node);
  arena_decay_tick(a);
}

/*
 * The commit of a huge allocation (pages_strict: see chunk.h) follows its
 * usable size: [addr, addr + committed) is committed, the rest of its
 * last chunk decommitted. Changing the usable size commits or decommits
 * the difference.
 */
bool huge_ralloc_in_place(extent_node_t *node, void *ptr, size_t usize, bool zero) {
  arena_t *a = node->arena;
  chunk_arena_t *ca = &a->chunks;
  if (node->addr != ptr) return true;
  size_t csize = sz_chunk_ceiling(usize);
  if (csize < usize) return true;
  size_t oldsize = node->usize, oldcsize = node->size;
  size_t oldcommit = node->committed, commit = oldcommit, want = PAGE_CEILING(usize);
  char *p = ptr;
  if (csize == oldcsize) {
    if (want > oldcommit) {
      if (chunk_commit_pages(ca, p, csize, oldcommit, want - oldcommit)) return true;
      commit = want;
    } else if (want < oldcommit && chunk_decommit_ok(ca) &&
               !chunk_decommit_pages(ca, p, csize, want, oldcommit - want)) {
      commit = want;
    }
    /* Same chunks: only the usable size changes. Bytes past the old usable
     * size may hold old data if the range was recycled; zero on demand. */
    if (zero && usize > oldsize) memset(p + oldsize, 0, usize - oldsize);
  } else if (csize < oldcsize) {
    /* User hooks: the tail becomes a range of its own, if the hook agrees. */
    if (chunk_split_allocated(ca, ptr, oldcsize, csize)) return true;
    rtree_set_range((uintptr_t)ptr + csize, oldcsize - csize, NULL);
    /* oldcommit > oldcsize - chunk >= csize: the tail has committed pages. */
    chunk_dalloc_commit(ca, p + csize, oldcsize - csize, CHUNK_DIRTY, oldcommit - csize);
    commit = csize;
    if (want < csize && chunk_decommit_ok(ca) && !chunk_decommit_pages(ca, p, csize, want, csize - want))
      commit = want;
  } else {
    /* The new chunks, committed up to want; then the old last chunk
     * whole. */
    bool zeroed;
    size_t c = want - oldcsize;
    if (chunk_alloc_at_commit(ca, p + oldcsize, csize - oldcsize, &c, &zeroed)) return true;
    bool tail = oldcommit == oldcsize || !chunk_commit_pages(ca, p, oldcsize, oldcommit, oldcsize - oldcommit);
    if (!tail || rtree_set_range((uintptr_t)ptr + oldcsize, csize - oldcsize, node)) {
      chunk_dalloc_commit(ca, p + oldcsize, csize - oldcsize, zeroed ? CHUNK_CLEAN : CHUNK_DIRTY, c);
      /* Not grown: the old tail decommitted again if it can be. */
      if (tail && oldcommit < oldcsize && chunk_decommit_pages(ca, p, oldcsize, oldcommit, oldcsize - oldcommit)) {
        chunk_holes_add(-1);
        xmutex_lock(&a->huge_mtx);
        node->committed = oldcsize;
        xmutex_unlock(&a->huge_mtx);
      }
      return true;
    }
    commit = oldcsize + c;
    if (zero) {
      memset(p + oldsize, 0, oldcsize - oldsize);
      if (!zeroed) memset(p + oldcsize, 0, usize - oldcsize);
    }
  }
  chunk_holes_add((ssize_t)(commit < csize) - (ssize_t)(oldcommit < oldcsize));
  xmutex_lock(&a->huge_mtx);
  node->size = csize;
  node->usize = usize;
  node->committed = commit;
  a->stats.allocated_huge += usize;
  a->stats.allocated_huge -= oldsize;
  xmutex_unlock(&a->huge_mtx);
  return false;
}

void huge_reset(arena_t *a) {
  for (;;) {
    xmutex_lock(&a->huge_mtx);
    rb_node_t *r = rb_first(&a->huge);
    extent_node_t *node = r != NULL ? rb_entry(r, extent_node_t, ad) : NULL;
    xmutex_unlock(&a->huge_mtx);
    if (node == NULL) break;
    huge_dalloc(node, node->addr);
  }
}
