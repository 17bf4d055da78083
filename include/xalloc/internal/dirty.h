/*
 * dirty: the purge engine, one for both levels of an arena -- its free
 * runs (arena.h, run.c) and its free chunk ranges (chunk.h, chunk.c).
 *
 * A dirty_t is a level's record of its free memory that is not clean: the
 * free items (runs, ranges) holding dirty pages on one list and those
 * holding muzzy pages on another, each oldest first; how many pages of each
 * kind there are; and each kind's decay curve and reuse window (decay.h).
 * An item is on the list of each kind of page it holds (a run may hold
 * both, a range holds one kind), and the level says how many pages of the
 * kind it adds or takes away (dirty_add, dirty_del), so the counts are the
 * sums over the lists and nothing else records them.
 *
 * The engine decides what goes, and when: at a decay step (dirty_step)
 * the pages the reuse window found unused go for good first, then the
 * share the curve no longer keeps; dirty_collect takes the oldest items of
 * each kind out through the level's take function until what is left is
 * within the limits, and counts what left as purged for the curves. The
 * level makes the madvise calls (chunk_purge_pages, with its lock
 * released), puts the items back in their new state (a level's own rule:
 * runs coalesce by the chunk's page maps, ranges by address in the trees)
 * and then calls dirty_settle. dirty_ns_until says when the next step has
 * something to do.
 *
 * Protected by the level's lock (the arena's lock, the chunk arena's mtx).
 */
#ifndef XALLOC_INTERNAL_DIRTY_H
#define XALLOC_INTERNAL_DIRTY_H

#include "xalloc/internal/decay.h"

/* The kinds of page that are not clean. */
enum { DIRTY_D = 0, DIRTY_M = 1, DIRTY_NKINDS = 2 };

/* A link in one of the lists: circular, doubly linked, the head a bare
 * link in the dirty_t. */
typedef struct dirty_link_s dirty_link_t;
struct dirty_link_s {
  dirty_link_t *prev, *next;
};

typedef struct {
  dirty_link_t list[DIRTY_NKINDS]; /* items holding pages of the kind, oldest first */
  size_t npages[DIRTY_NKINDS];     /* pages of the kind on the list */
  decay_t decay[DIRTY_NKINDS];
} dirty_t;

/* The level's take function: take the item that l (on the list of kind)
 * links out of the level's structures for purging with op
 * (CHUNK_PURGE_LAZY or CHUNK_PURGE_FORCED), dirty_del-ing it from each
 * list it is on, and queue it in ctx. */
typedef void (*dirty_take_fn)(void *ctx, dirty_link_t *l, unsigned kind, unsigned op);

void dirty_init(dirty_t *d, ssize_t dirty_ms, ssize_t muzzy_ms, uint64_t now);

/* Append l, an item holding npages pages of kind, to the kind's list (its
 * newest end); take it off again. npages may be 0: nothing is done. */
static inline void dirty_add(dirty_t *d, unsigned kind, dirty_link_t *l, size_t npages) {
  if (npages == 0) return;
  dirty_link_t *head = &d->list[kind];
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
  d->npages[kind] += npages;
}
static inline void dirty_del(dirty_t *d, unsigned kind, dirty_link_t *l, size_t npages) {
  if (npages == 0) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = NULL;
  d->npages[kind] -= npages;
}
static inline bool dirty_list_empty(const dirty_t *d, unsigned kind) {
  return d->list[kind].next == &d->list[kind];
}

/* Reuse (decay.h): an allocation just took pages of the level. */
static inline void dirty_note(dirty_t *d) {
  decay_note(&d->decay[DIRTY_D], d->npages[DIRTY_D]);
  decay_note(&d->decay[DIRTY_M], d->npages[DIRTY_M]);
}
/* npages pages of kind left the level for good outside dirty_collect (a
 * wholly free chunk given back, say): they are not reuse either. */
static inline void dirty_removed(dirty_t *d, unsigned kind, size_t npages) {
  decay_removed(&d->decay[kind], npages);
}

/* Take items out, oldest first, while the dirty pages exceed dirty_limit
 * (purged lazily if lazy, else forced), then while the muzzy pages exceed
 * muzzy_limit (forced). */
void dirty_collect(dirty_t *d, size_t dirty_limit, size_t muzzy_limit, bool lazy, dirty_take_fn take, void *ctx);
/* The decay step at now: collect what the reuse window and the curves
 * let go. */
void dirty_step(dirty_t *d, uint64_t now, dirty_take_fn take, void *ctx);
/* The collected items are back (in their new state or their old one):
 * what is left now is what the curves start from. Only after a batch (a
 * call with nothing collected would make pages freed since the epoch
 * began look old). */
void dirty_settle(dirty_t *d);
/* ns from now until a step would have something to do; UINT64_MAX if
 * never (nothing to purge, or curves that keep everything). */
uint64_t dirty_ns_until(const dirty_t *d, uint64_t now);
/* kind's decay time becomes ms; its pages there now count as fully
 * decayed (decay_reset). */
void dirty_set_decay(dirty_t *d, unsigned kind, ssize_t ms, uint64_t now);
static inline ssize_t dirty_decay_ms(const dirty_t *d, unsigned kind) {
  return __atomic_load_n(&d->decay[kind].time_ms, __ATOMIC_RELAXED);
}
#endif
