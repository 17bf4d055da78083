/*
 * chunk: chunk-aligned memory for one arena. Free ranges (multiples of the
 * chunk size, chunk aligned) are kept in two trees: by size then address
 * (best fit, lowest address first) and by address (coalescing with both
 * neighbours on free). New memory is reserved from the pages layer in
 * pieces that grow geometrically -- opt_retain_grow_k (K) reservations of
 * one size before the size doubles -- so that an arena makes O(K log N)
 * mappings for N bytes and the unused part of the reservations is at most
 * a (1+K)/K factor. With retain:false a reservation is exactly what was
 * asked for, and a free range is unmapped (or given to the dalloc hook)
 * when decay or the reuse window would purge it for good (a failed munmap
 * keeps the range, purged, as retained memory).
 *
 * A free range is in one of four states: dirty (freed, may be resident,
 * content unknown), muzzy (purged with MADV_FREE: may still be resident,
 * may read as old data or as zero), clean (purged with MADV_DONTNEED or
 * never touched: reads as zero) or retained (decommitted, only with
 * pages_strict: see "Commit" below; reads as zero once committed). Only clean ranges are "zeroed". Ranges
 * merge only with neighbours in the same state. Dirty and muzzy ranges are
 * on the purge engine's lists (dirty.h: the engine of the run level too),
 * oldest first, and decay (decay.h): dirty -> muzzy after
 * dirty_decay_ms, muzzy -> clean after muzzy_decay_ms (dirty -> clean
 * directly when muzzy_decay_ms is 0).
 *
 * Purging takes the ranges out of the trees under mtx (counted in
 * purging_bytes), makes the madvise calls with mtx released, and puts them
 * back. One purger at a time per chunk arena (the purging flag, under mtx:
 * no lock is held across the madvise or hook calls); chunk_arena_release
 * waits for it and keeps others off while it gives the ranges back; fork
 * waits for it.
 *
 * Extent hooks (doc/API.md): a chunk arena made with user hooks (hooks !=
 * NULL) gets every range from hooks->alloc, at exactly the size and
 * alignment it needs (no geometric reservations), and never holds a range
 * the hook did not return. Each free node and each allocated range is one
 * "hook range": xalloc asks split before cutting a free node and merge
 * before coalescing two (a refusal keeps them apart), purges through
 * purge_lazy / purge_forced (refused or NULL: the state is kept), gives
 * ranges back through dalloc (destroy if dalloc refuses) with retain:false
 * and at arena destroy. Every hook is called with no lock of xalloc's held
 * (the arena layer calls chunk_alloc and chunk_dalloc with none held):
 * alloc, dalloc and destroy outside mtx; purge_* with the ranges out of
 * the trees (purging_bytes); split and merge with mtx released and the
 * ranges involved taken out of the trees meanwhile (also counted in
 * purging_bytes), so the trees may change while a hook runs. So a hook may
 * allocate from other arenas and call mallctl. hooks == NULL: the pages
 * layer, as before.
 *
 * All of a chunk_arena_t is protected by its mtx. Lock order: arena lock,
 * then chunk mtx, then base and rtree locks.
 */
#ifndef XALLOC_INTERNAL_CHUNK_H
#define XALLOC_INTERNAL_CHUNK_H

#include "xalloc/internal/dirty.h"
#include "xalloc/internal/mutex.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/rb.h"
#include "xalloc/internal/util.h"
#include "xalloc/xalloc.h"

/* Reservations of one size before the size doubles (retain:true). */
#define CHUNK_GROW_K (opt_retain_grow_k)
/* Free range records a chunk arena keeps for reuse. */
#define CHUNK_NODE_CACHE 32
/* States of a free range. Retained: decommitted (pages_strict only; no
 * pages, no commit charge; reads as zero once committed again). */
enum { CHUNK_CLEAN = 0, CHUNK_MUZZY = 1, CHUNK_DIRTY = 2, CHUNK_RETAINED = 3, CHUNK_NSTATES = 4 };

/* Kinds of metadata that the radix tree points to (first byte of each). */
enum { META_NONE = 0, META_ARENA_CHUNK = 1, META_HUGE = 2, META_FREE = 3 };

typedef struct extent_node_s extent_node_t;
/*
 * A chunk-aligned range: a free range in a chunk_arena_t (kind META_FREE)
 * or a huge allocation (kind META_HUGE, see huge.h). For a free range,
 * szad and ad link it into the trees and dlink into the purge engine's
 * dirty or muzzy list (dirty.h; by its state). For a huge allocation, ad links
 * it into the arena's huge tree.
 */
struct extent_node_s {
  uint8_t kind;
  bool dirty;  /* free: dirty (may be resident, content unknown) */
  bool muzzy;  /* free: lazily purged (may be resident, not zero) */
  bool zeroed; /* free: clean, reads as zero (neither dirty nor muzzy) */
  bool retained; /* free: decommitted (then zeroed too) */
  uint8_t purge_op; /* while being purged: the madvise to make */
  void *arena;
  char *addr;
  size_t size;  /* bytes, a multiple of the chunk size */
  size_t usize; /* huge: usable size */
  size_t committed; /* huge: bytes committed from addr (the rest decommitted) */
  rb_node_t szad;
  rb_node_t ad;
  dirty_link_t dlink;  /* free, dirty or muzzy: on the list of its kind */
  extent_node_t *next; /* in the node cache, or in a purger's batch */
};

typedef struct {
  xmutex_t mtx;
  rb_tree_t szad[CHUNK_NSTATES]; /* free ranges by (size, address), per state */
  rb_tree_t ad;
  dirty_t dirty;       /* dirty and muzzy ranges in the trees, their pages, decay (dirty.h) */
  size_t free_bytes;   /* bytes in the trees */
  size_t purging_bytes; /* bytes out of the trees being purged or unmapped */
  size_t reserved;     /* bytes reserved from the pages layer and not unmapped */
  size_t decommitted;  /* of which decommitted (atomic): retained ranges, huge tails */
  size_t grow_size;    /* size of the next reservation */
  unsigned grow_count; /* reservations made at grow_size */
  uint64_t npurged;    /* bytes purged (lazily or forced) */
  uint64_t nmadvise;   /* purge calls made */
  uint64_t nunmapped;  /* bytes unmapped (retain:false) */
  uint64_t nunmap_kept; /* munmaps that failed; the range was kept */
  bool purging;          /* a purge (or a release) is in flight */
  pthread_cond_t purge_cond; /* purging became false */
  extent_hooks_t *hooks; /* user hooks (atomic); NULL: the pages layer */
  unsigned ind;          /* arena index passed to the hooks */
  uint64_t nhook_alloc;  /* successful hooks->alloc calls */
  uint64_t nhook_dalloc; /* ranges given back (dalloc or destroy) */
  uint64_t nhook_refused; /* split/merge/purge/dalloc calls the hook refused */
  xmutex_t node_mtx;     /* the node cache: a leaf lock */
  extent_node_t *node_cache; /* free records, linked through next */
  unsigned nnode_cache;
} chunk_arena_t;

static inline size_t chunk_dirty_bytes(const chunk_arena_t *ca) { return ca->dirty.npages[DIRTY_D] << LG_PAGE; }
static inline size_t chunk_muzzy_bytes(const chunk_arena_t *ca) { return ca->dirty.npages[DIRTY_M] << LG_PAGE; }

/* Purge operations (results of chunk_purge_pages; a purge batch's ops). */
enum { CHUNK_PURGE_NONE = 0, CHUNK_PURGE_LAZY = 1, CHUNK_PURGE_FORCED = 2, CHUNK_PURGE_UNMAPPED = 3,
       CHUNK_PURGE_DECOMMIT = 4 };

/*
 * Commit (pages_strict, arenas without user hooks; see pages.h). A free
 * range is committed (dirty, muzzy, clean) or not (retained); reservations
 * start retained. chunk_alloc_commit commits what it hands out up to the
 * length the caller asks for and leaves (or makes) the rest of the range
 * decommitted; purges for good decommit; a clean range given back is
 * decommitted. chunk_nholes counts the decommitted pieces that may split
 * a kernel mapping (retained free ranges and huge allocations with a
 * decommitted tail); past pages_hole_budget nothing more is decommitted
 * (purges fall back to MADV_DONTNEED, tails stay committed), which bounds
 * the mappings strict mode adds. Without pages_strict none of this runs.
 */
extern size_t chunk_nholes;
static inline void chunk_holes_add(ssize_t n) {
  __atomic_fetch_add(&chunk_nholes, (size_t)n, __ATOMIC_RELAXED);
}
/* Whether ca should decommit what it does not use now. */
bool chunk_decommit_ok(chunk_arena_t *ca);
/* Commit / decommit [base+off, base+off+len) of the range [base,
 * base+bsize) through the arena's hooks (chunk_hooks_default.commit /
 * .decommit for the pages layer); true if refused or failed. */
bool chunk_commit_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len);
bool chunk_decommit_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len);
/* chunk_alloc, committing *commit bytes (a page multiple, at most size)
 * from the start at least; on return *commit is what is committed (size
 * when the tail could not, or should not, be decommitted). */
void *chunk_alloc_commit(chunk_arena_t *ca, size_t size, size_t alignment, size_t *commit, bool *zeroed);
/* chunk_alloc_at, with *commit as for chunk_alloc_commit. */
bool chunk_alloc_at_commit(chunk_arena_t *ca, void *addr, size_t size, size_t *commit, bool *zeroed);
/* chunk_dalloc_state of a range of which only the first committed bytes
 * are committed: a clean one has its head decommitted (retained); else its
 * tail is committed again (then it is state), or else all of it
 * decommitted (retained). */
void chunk_dalloc_commit(chunk_arena_t *ca, void *addr, size_t size, unsigned state, size_t committed);
/* Out of memory (a reservation or a commit failed; pages_strict or a
 * finite RLIMIT_AS only): decommit ca's dirty and muzzy ranges, unmap its
 * clean and retained ones. No lock held. true if anything was freed. */
bool chunk_relieve(chunk_arena_t *ca);

/* The table arena.<i>.extent_hooks reads for an arena without user hooks:
 * working functions over the pages layer (a user hook may call them). */
extern extent_hooks_t chunk_hooks_default;
/* Make ca use the user hooks h (before the arena is published). h must not
 * be NULL or &chunk_hooks_default. */
void chunk_arena_set_user_hooks(chunk_arena_t *ca, extent_hooks_t *h, unsigned ind);
static inline bool chunk_hooked(chunk_arena_t *ca) {
  return __atomic_load_n(&ca->hooks, __ATOMIC_ACQUIRE) != NULL;
}
/* The hooks table of ca (chunk_hooks_default when none). */
extent_hooks_t *chunk_hooks_get(chunk_arena_t *ca);
/* arena.<i>.extent_hooks write: 0, EINVAL (NULL table or NULL alloc), or
 * EPERM (switching between the pages layer and user hooks). */
int chunk_hooks_set(chunk_arena_t *ca, extent_hooks_t *h);
/* Purge [base+off, base+off+len) inside the allocated range [base,
 * base+bsize): lazily if lazy (falling back to forced for user hooks that
 * refuse), else forced. Returns the purge made, CHUNK_PURGE_NONE if none. */
unsigned chunk_purge_pages(chunk_arena_t *ca, void *base, size_t bsize, size_t off, size_t len, bool lazy);
/* Before giving back the tail of the allocated range [addr, addr+size)
 * from addr+size_a on: ask the hooks to split it. true if refused. */
bool chunk_split_allocated(chunk_arena_t *ca, void *addr, size_t size, size_t size_a);

void chunk_arena_init(chunk_arena_t *ca);
/* Make the released chunk arena ca (chunk_arena_release: nothing free,
 * nothing reserved) as new, for a recycled arena: counters zero, decay
 * times dirty_ms and muzzy_ms, hooks (NULL: the pages layer). Its locks are
 * kept (and taken). */
void chunk_arena_renew(chunk_arena_t *ca, extent_hooks_t *hooks, ssize_t dirty_ms, ssize_t muzzy_ms);
/*
 * Allocate size bytes (a chunk multiple) at alignment (a power of two >=
 * chunk size). *zeroed tells whether the range reads as zero. NULL with
 * errno ENOMEM when the OS refuses memory. No lock held (it may mmap, or
 * call the user's alloc and split hooks).
 */
void *chunk_alloc(chunk_arena_t *ca, size_t size, size_t alignment, bool *zeroed);
/* Give [addr, addr+size) back to the arena's trees, dirty or clean. No
 * lock held (retain:false may munmap, user hooks are called). */
void chunk_dalloc(chunk_arena_t *ca, void *addr, size_t size, bool dirty);
/* The same with a state (CHUNK_CLEAN, CHUNK_MUZZY or CHUNK_DIRTY; a
 * committed range). A clean range is decommitted when chunk_decommit_ok. */
void chunk_dalloc_state(chunk_arena_t *ca, void *addr, size_t size, unsigned state);
/* Take the free range [addr, addr+size) if it is wholly free; true if not. */
bool chunk_alloc_at(chunk_arena_t *ca, void *addr, size_t size, bool *zeroed);
/* Purge all dirty and muzzy free ranges now (MADV_DONTNEED). */
void chunk_purge_all(chunk_arena_t *ca);
/* Unmap every free range, or give it back to the hooks (arena.<i>.destroy,
 * when nothing is allocated): waits for a purge in flight, and gives the
 * ranges back with no lock held. */
void chunk_arena_release(chunk_arena_t *ca);
/* Purge what the decay curves say is due at time now (decay_now_ns()).
 * If wait is false and another thread is purging, return at once. */
void chunk_decay(chunk_arena_t *ca, uint64_t now, bool wait);
/* ns until the next decay epoch of ca ends; UINT64_MAX if none pending. */
uint64_t chunk_decay_ns_until(chunk_arena_t *ca, uint64_t now);
/* Whether addr lies in a free range of the trees (for error reports). */
bool chunk_contains(chunk_arena_t *ca, const void *addr);
/* Check the trees (order, coalescing, counters); false if broken. */
bool chunk_validate(chunk_arena_t *ca);
/* Range records (free ranges, huge allocations), from the chunk arena's
 * own cache (a leaf lock of its own: any other lock may be held), base
 * memory when it is empty or full: the global base lock is not taken in
 * the steady state. */
extent_node_t *chunk_node_alloc(chunk_arena_t *ca);
void chunk_node_free(chunk_arena_t *ca, extent_node_t *node);

void chunk_prefork(chunk_arena_t *ca);
void chunk_postfork_parent(chunk_arena_t *ca);
void chunk_postfork_child(chunk_arena_t *ca);
#endif
