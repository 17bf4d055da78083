/*
 * arena: small and large allocations, and the chunks they come from.
 *
 * An arena chunk is one chunk of memory whose pages are divided into runs.
 * Its descriptor (arena_chunk_t) lives in base memory, out of line, and
 * has one map entry per page:
 *   - every page of an allocated run (small or large) points to the run;
 *   - the first and the last page of a free run point to the free run, the
 *     pages between them are NULL.
 * Every run has a descriptor (arena_run_t), also out of line. A small run
 * holds nregs regions of one size class; its bitmap has a 1 for each free
 * region. A large run is one allocation of npages pages.
 *
 * Dirty pages: a free page is dirty (freed, may be resident, content
 * unknown), muzzy (purged with MADV_FREE: may still be resident, reads as
 * old data or zero) or clean (never touched or purged with MADV_DONTNEED:
 * reads as zero): one bit per page in the chunk's dirtymap and one in its
 * muzzymap, never both set. Only clean pages count as zeroed. A free run
 * counts its dirty and muzzy pages (ndirty, nmuzzy); the purge engine
 * (dirty.h, the same as the chunk level's) keeps runs with dirty pages on
 * the arena's dirty list, runs with muzzy pages on its muzzy list, oldest
 * first, with the totals. Decay (decay.h) says how many may stay: beyond
 * that the oldest dirty runs are purged lazily (they become muzzy) and the
 * oldest muzzy runs are purged for good (clean). Purging takes the runs
 * out of runs_avail under the arena lock (state RUN_PURGING, counted in
 * npurging), makes one madvise (or extent hook call) per run with no lock
 * held, and frees them again under the lock.
 *
 * Purging is triggered on the slow paths (arena_decay_tick: every
 * ARENA_DECAY_TICKS calls per thread, or every call when dirty_decay_ms is
 * 0), by the background thread, by arena_decay and by arena_purge_all.
 *
 * Lifecycle. An arena is live from arena_new until arena_destroy; its
 * arena_t (base memory) is never freed, so a pointer to it loaded before a
 * destroy stays safe to dereference. Three operations change what it holds
 * with locks dropped on the way, and never overlap on one arena: a purge
 * (run level, then the chunk level, as one operation), a reset and a
 * destroy. Each is bracketed by arena_op_begin/arena_op_end, which keep the
 * operation in flight (op, op_owner) under life_mtx, a short lock: no
 * operation holds it while it works, so the user's extent hooks it calls
 * run with no xalloc lock held. Rules:
 *   - one operation at a time: a purge that may wait (arena_decay,
 *     arena_purge_all) waits for a purge in flight; a decay tick does not
 *     (it gives up at once, also if life_mtx is busy); a reset or destroy
 *     waits for whatever is in flight;
 *   - a purger never touches an arena being reset or destroyed: it gives
 *     up (there is nothing of the old contents left to purge);
 *   - an operation asked for from inside another one on the same thread (a
 *     hook calling arena.<i>.purge on its own arena) gives up instead of
 *     waiting for itself;
 *   - destroy marks the arena retired first (arena_get returns NULL, no
 *     thread may move to it), then resets it, gives every free range back
 *     (chunk_arena_release) and marks it dead; a dead arena is skipped by
 *     every operation, and by the background thread and malloc_trim;
 *   - fork() waits for every operation in flight before it takes any other
 *     lock (arenas_prefork_ops: a hook the operation calls may allocate or
 *     call mallctl), and operations that start while a fork is pending
 *     give up (ticks) or wait until it is over. The child has none in
 *     flight.
 * Reset and destroy require what jemalloc requires: no thread allocates
 * from or frees into the arena meanwhile, and objects of the arena held in
 * thread caches have been flushed. Objects pending on its bins' remote
 * stacks are discarded with the runs (arena_bin_remote_discard).
 *
 * Locks: each bin's lock protects its runcur, its runs tree, the bitmaps
 * and nfree of its runs, and its stats, and is needed to take its remote
 * stack (pushing onto it takes no lock: see Remote frees below). The arena lock protects runs_avail,
 * the dirty list, page maps, spare, chunks_out and the large stats. Lock
 * order: life_mtx (never held while taking another lock), then bin, then
 * arena, then the arena's chunk mtx; the huge mtx nests inside none of
 * these. No chunk is taken from or given to the chunk layer under a bin or
 * arena lock: a new arena chunk is allocated with both dropped (then the
 * search is retried), and a wholly free chunk the arena lets go of (the
 * previous spare) is detached under the lock (chunks_out) and given back
 * once it is dropped (arena_chunks_flush). So no mmap, munmap or extent
 * hook call happens under either, and no hook runs with any xalloc lock
 * held (chunk.h).
 */
#ifndef XALLOC_INTERNAL_ARENA_H
#define XALLOC_INTERNAL_ARENA_H

#include <pthread.h>

#include "xalloc/internal/chunk.h"
#include "xalloc/internal/dirty.h"
#include "xalloc/internal/mutex.h"
#include "xalloc/internal/rb.h"
#include "xalloc/internal/sz.h"

enum { RUN_FREE = 1, RUN_LARGE = 2, RUN_SMALL = 3, RUN_PURGING = 4 };
/* Lifecycle operations (arena_op_begin). */
enum { ARENA_OP_NONE = 0, ARENA_OP_PURGE = 1, ARENA_OP_RESET = 2, ARENA_OP_DESTROY = 3 };
/* Slow-path calls per thread between two decay checks. */
#define ARENA_DECAY_TICKS 64

typedef struct arena_s arena_t;
typedef struct arena_chunk_s arena_chunk_t;
typedef struct arena_run_s arena_run_t;

/* The run whose member (dirty_link or muzzy_link) is l. */
#define arena_run_of(l, member) rb_entry(l, arena_run_t, member)

struct arena_run_s {
  rb_node_t link;  /* free: arena->runs_avail; small and not full: bin->runs */
  arena_chunk_t *chunk;
  dirty_link_t dirty_link; /* free with dirty pages: on the arena's dirty list (dirty.h) */
  dirty_link_t muzzy_link; /* free with muzzy pages: on its muzzy list */
  arena_run_t *purge_next;              /* purging: the purger's list */
  uint32_t pageind; /* first page in the chunk */
  uint32_t npages;
  uint8_t state;    /* RUN_FREE, RUN_LARGE or RUN_SMALL */
  uint8_t pool;     /* descriptor pool (bitmap words) */
  bool zeroed;      /* allocated: its pages read as zero when allocated */
  uint32_t ndirty;  /* free: pages with their dirty bit set */
  uint32_t nmuzzy;  /* free: pages with their muzzy bit set */
  uint8_t purge_op; /* purging: the madvise to make, CHUNK_PURGE_LAZY or _FORCED (0 once it failed) */
  uint16_t binind;  /* small: size class */
  /* small: the run's pages in use so far, from its start (the pages a
   * region was taken from, and those before them): their regions carry
   * their tags when free and their page words are set; the pages after
   * them were never touched (their page words 0: a free there takes the
   * slow path, which finds the region free). nexposed: the regions
   * starting in those pages. */
  uint8_t pexposed;
  uint16_t nexposed;
  uint16_t nfree;   /* small: free regions */
  uint64_t bitmap[]; /* small: 1 = free region */
};

#define BININD_NONE 0x00ff
struct arena_chunk_s {
  uint8_t kind; /* META_ARENA_CHUNK */
  arena_t *arena;
  char *addr;
  rb_node_t link;     /* arena->chunk_list */
  arena_chunk_t *out_next; /* detached: arena->chunks_out, or a reset's list */
  uint8_t out_state;       /* detached: the chunk state to give it back in */
  /* Pages committed from the start (the commit high-water mark): all of
   * them except with pages_strict, where a chunk is committed as its runs
   * first reach its pages (arena_chunk_commit_to). Pages past it are free,
   * clean and never handed out; written under the arena lock. */
  uint32_t ncommitted;
  /* One per page (stored after binmap): the run of every page of a small
   * run; of the first and the last page of a large, free or purging run
   * (NULL between: O(1) per large allocation and free whatever its size;
   * arena_run_at finds the run of any page). */
  arena_run_t **map;
  /* One bit per page: set when a page was freed and may be resident, clear
   * when it was never touched or has been purged (so it reads as zero).
   * Meaningful for free pages only. */
  uint64_t *dirtymap;
  /* One bit per page: set when a free page was purged lazily (MADV_FREE)
   * and not since reused. Never set together with the dirty bit. */
  uint64_t *muzzymap;
  /* Per page: for a page of a small run, its size class in the low byte
   * and its index in the run in the high byte (so the run's start, and
   * whether a pointer is a region's start, follow without the run
   * descriptor); for the first page of a large run whose class a thread
   * cache may hold (index < SZ_NFAST), that class with page index 0, so
   * that the free fast path serves it too; BININD_NONE otherwise. Read
   * without a lock by the free fast path; written under the arena lock
   * when a run changes state or size. */
  uint16_t binmap[];
};

typedef struct {
  uint64_t nmalloc, ndalloc; /* regions handed out / returned */
  uint64_t nruns;            /* runs ever created */
  size_t curregs;            /* regions in use (objects pending on the remote stack included) */
  size_t curruns;            /* runs in use */
  uint64_t nremote;          /* regions that came back through the remote stack */
} arena_bin_stats_t;

/*
 * Remote frees. A thread cache that flushes objects of another arena (or
 * of its own arena while the bin lock is busy) does not take the bin lock:
 * it links the batch through the objects' second words and pushes it onto
 * the bin's remote stack with one compare-and-swap (release). The stack is
 * taken whole, with one exchange (acquire), only by a holder of the bin
 * lock: a refill (which hands the objects straight to the refilling cache,
 * filling all of it, and keeps what does not fit in remote_rest, for the
 * next refill: they never go back to their runs), a flush, a single free or
 * allocation, a purge or decay, the heap check, a stats read -- these put
 * them back into their runs -- and a decay tick, which only drains a bin
 * whose objects no one took since the previous tick looked (remote_ntakes,
 * remote_tick_seen: the owner's refills are left what they keep taking, an
 * idle arena's objects go back). A reset or destroy discards both. So the only writers
 * of a list below the top are pushers prepending to it, and a lock holder
 * sees a stable list under the top it loaded (no ABA: nothing is ever
 * popped one by one).
 *
 * Pending objects are allocated as far as their runs know (their bitmap
 * bits are clear, curregs counts them) and keep their free tag in the first
 * word (a free of one is a double free, caught as for a cached object).
 * Links are stored xor a key derived from the tag key; a drain checks every
 * object against the run metadata (this arena, a small run of this class,
 * a region's start, allocated), its tag, and marks it taken, so that a list
 * corrupted by a write after free or a double free is reported, not
 * followed: an object is never handed out twice. Only classes of at least
 * two words (ARENA_REMOTE_MIN) go through it; 8-byte regions are freed
 * under the bin lock as before.
 *
 * fork: pushes take no lock, so the prepare handler's bin locks do not
 * stop them; a push is one CAS of the top after the links are written, so
 * the child sees it done or not begun. A batch another thread was linking
 * at the fork is lost with that thread's cache: its objects stay allocated
 * in their runs (consistent, like the other threads' cached objects).
 *
 * remote sits on a cache line of its own: pushers never touch the line of
 * the bin lock, the runs or the stats.
 */
#define ARENA_REMOTE_MIN (2 * sizeof(void *))
typedef struct {
  xmutex_t lock;
  arena_run_t *runcur; /* run allocations come from, or NULL */
  rb_tree_t runs;      /* other runs with free regions, by address */
  arena_bin_stats_t stats;
  /* Pending objects a refill took off the stack and had no room for, for
   * the next one (unchecked yet, like the stack's); written under the
   * lock, read as a hint without it. */
  void *remote_rest;
  _Alignas(64) void *remote; /* atomic: top of the stack of objects freed remotely */
  uint64_t remote_ntakes;    /* atomic (written under the lock): takes that found objects */
  uint64_t remote_tick_seen; /* atomic: remote_ntakes when a decay tick last looked */
} arena_bin_t;

typedef struct {
  uint64_t nmalloc_large, ndalloc_large;
  size_t allocated_large;
  uint64_t nmalloc_huge, ndalloc_huge;
  size_t allocated_huge;
  uint64_t npurged_pages; /* pages purged (lazily or forced) */
  uint64_t nmadvise;      /* purge calls made */
} arena_stats_t;

/* A recently freed large or huge allocation (so that a second free of it
 * can be told from a wild free, with its size; see report.h). */
#define ARENA_FREED_RING 32
#define ARENA_DESC_CACHE 32
typedef struct {
  uintptr_t addr_x;
  size_t usize;
} arena_freed_t;

struct arena_s {
  unsigned ind;
  unsigned nthreads;       /* threads using this arena (arenas_lock) */
  xmutex_t lock;
  rb_tree_t runs_avail;    /* free runs by (npages, address) */
  dirty_t dirty;           /* free runs with dirty or muzzy pages, their counts, decay (arena lock) */
  size_t npurging;         /* pages in runs being purged (RUN_PURGING) */
  uint64_t decay_next_ns;  /* atomic: when arena_decay_event looks next */
  /* Lifecycle (see the top of this file), under life_mtx: */
  xmutex_t life_mtx;
  pthread_cond_t life_cond; /* op became ARENA_OP_NONE */
  uint8_t op;               /* ARENA_OP_*: the operation in flight */
  bool dead;                /* destroyed: no operation runs on it again */
  pthread_t op_owner;       /* the thread running op */
  bool retired;             /* atomic: destroyed or being destroyed */
  arena_chunk_t *chunks_out; /* wholly free chunks detached, to give back (arena lock) */
  size_t nactive;          /* pages in allocated runs */
  size_t nchunks;          /* arena chunks */
  arena_chunk_t *spare;    /* a wholly free chunk kept for reuse */
  arena_stats_t stats;
  chunk_arena_t chunks;
  xmutex_t huge_mtx;
  rb_tree_t huge;          /* huge allocations by address */
  rb_tree_t chunk_list;    /* arena chunks by address */
  /* Free run descriptors kept for reuse, per bitmap size (arena lock):
   * linked through their purge_next, at most ARENA_DESC_CACHE each. */
  arena_run_t *desc_cache[SZ_BITMAP_WORDS + 1];
  uint8_t ndesc_cache[SZ_BITMAP_WORDS + 1];
  arena_freed_t freed_large[ARENA_FREED_RING]; /* arena lock */
  arena_freed_t freed_huge[ARENA_FREED_RING];  /* huge_mtx */
  unsigned freed_large_next, freed_huge_next;
  arena_t *recycle_next;   /* destroyed, waiting for arenas.create (arenas_lock) */
  uint64_t create_ns;      /* when it was made (or recycled), decay_now_ns() */
  arena_bin_t bins[SZ_NBINS];
};

#define ARENAS_MAX 4096
/* The highest arena index: MALLOCX_ARENA(i) stores i + 1 in 12 bits. */
#define ARENA_IND_MAX (ARENAS_MAX - 2)
extern arena_t *arenas[ARENAS_MAX];
extern unsigned narenas;      /* arenas created (arenas[0..narenas) ) */
extern unsigned narenas_auto; /* arenas threads are spread over */

/*
 * Blocks of a class no thread cache holds (large ones above tcache_max,
 * and huge ones) that a thread of automatic arena a asks for without
 * naming an arena come from arena a->ind % narenas_large instead (option
 * narenas_large; one per CPU by default, at most narenas_auto): such
 * blocks are few and each costs far more than a lock, while spreading
 * them over four arenas per CPU keeps four times the free runs and spare
 * chunks, each arena's reused only by its own threads (bench xlarge: 8
 * threads, 1 KiB-1 MiB blocks freed by other threads: peak RSS 208 -> 80
 * MiB). Explicit arenas (arenas.create, MALLOCX_ARENA) are never routed.
 */
extern unsigned narenas_large;
static inline arena_t *arena_large(arena_t *a) {
  if (a->ind >= narenas_auto || a->ind < narenas_large) return a;
  arena_t *b = __atomic_load_n(&arenas[a->ind % narenas_large], __ATOMIC_ACQUIRE);
  return b != NULL ? b : a;
}

bool arena_boot(void);
arena_t *arena_new(unsigned ind);
/* The least loaded automatic arena (created on demand), with its thread
 * count raised; NULL on OOM. */
arena_t *arena_choose(void);
void arena_unchoose(arena_t *arena);
/* A new explicit arena (arenas.create): a destroyed one recycled (its index
 * and metadata, newest first), else one at the next index past the
 * automatic ones, up to ARENA_IND_MAX; never chosen for threads
 * automatically. NULL if none can be made. */
arena_t *arena_create_explicit(extent_hooks_t *hooks);
/* Whether the arena is one threads are spread over. */
bool arena_is_auto(const arena_t *arena);
/* arenas[ind], or NULL if there is no such arena (or it is retired:
 * destroyed or being destroyed). */
arena_t *arena_get(unsigned ind);
/* Move a thread from arena from (may be NULL) to arenas[ind] (an automatic
 * arena not made yet is made); true (and nothing changed) if there is no
 * such arena. */
bool arena_migrate(arena_t *from, unsigned ind, arena_t **to);
/* Hand a destroyed arena (emptied and released by arena_destroy) to the
 * next arenas.create: its index and its arena_t are reused. */
void arena_recycle(arena_t *arena);
unsigned arena_nthreads(const arena_t *arena);
/* arenas.dirty_decay_ms / muzzy_decay_ms ([0] dirty, [1] muzzy): the decay
 * times arenas start with when they are made (opt.* at start; atomic). */
extern ssize_t arenas_decay_ms[2];
/* arena.<i>.dirty_decay_ms / muzzy_decay_ms: the arena's decay time for
 * dirty (muzzy false) or muzzy pages, in its runs and its chunk ranges. */
ssize_t arena_decay_ms_get(arena_t *arena, bool muzzy);
/* Set it (-1 .. DECAY_MS_MAX); as jemalloc, the pages of that kind free
 * now count as fully decayed, so they are purged at once (unless -1). */
void arena_decay_ms_set(arena_t *arena, bool muzzy, ssize_t ms);

/* Start lifecycle operation op (ARENA_OP_*) on the arena; false if it may
 * not run now (see the rules at the top of this file): dead, a reset or
 * destroy in flight (for a purge), the calling thread's own operation in
 * flight, or with wait false anything in flight or a fork pending. With
 * wait, waits for an operation in flight (and for a pending fork). */
bool arena_op_begin(arena_t *arena, unsigned op, bool wait);
/* End it; dead: the arena was destroyed. */
void arena_op_end(arena_t *arena, bool dead);
/* Give back the chunks detached under the arena lock (chunks_out) to the
 * chunk trees; no lock held. Cheap when there are none. */
void arena_chunks_flush(arena_t *arena);
/* The run page pageind of chunk belongs to (allocated, free or purging),
 * or NULL: map[pageind], or for a page inside a large or free run the
 * nearest entry before it (a scan: for reports, not for the fast paths).
 * Read without the arena lock by the lookups. */
arena_run_t *arena_run_at(const arena_chunk_t *chunk, size_t pageind);
/* The same for every arena. */
void arenas_chunks_flush(void);


/* Up to n regions of bin binind into ptrs (lowest address last, so that it
 * is handed out first); returns the number filled. Objects freed remotely
 * and pending on the bin's stack come first, and up to nmax (>= n) of them
 * are taken (ptrs has room for nmax). */
unsigned arena_fill_small(arena_t *arena, unsigned binind, void **ptrs, unsigned n, unsigned nmax);
/* Free a batch of small regions of class binind that all belong to arena
 * (under one bin lock). Bad pointers are reported one by one. */
void arena_dalloc_small_batch(arena_t *arena, unsigned binind, void **ptrs, unsigned n);
/*
 * A thread cache's flush of n regions of class binind of arena, each
 * holding its free tag. Of a class of at least ARENA_REMOTE_MIN bytes
 * they are handed over without a lock (pushed onto the bin's remote stack)
 * if remote (the arena is not the flushing thread's) or if the bin lock is
 * busy; otherwise, and for smaller classes, freed under the bin lock.
 */
void arena_dalloc_small_flush(arena_t *arena, unsigned binind, void **ptrs, unsigned n, bool remote);
/* Take every bin's remote stack back into the runs (each bin lock taken
 * in turn; no lock held on entry). With stale, only the stacks no one took
 * since the previous such call looked (a decay tick: a stack its owner's
 * refills keep taking is left to them, an idle arena's is taken). */
void arena_remote_drain(arena_t *arena, bool stale);
/* The stats of bin binind, its remote stack drained first. A chunk the
 * drain frees stays detached (chunks_out): giving it back may call the
 * dalloc hook, and a statistics reader may hold ctl's lock. The reader
 * calls arena_chunks_flush (or arenas_chunks_flush) once it holds none. */
void arena_bin_stats_read(arena_t *arena, unsigned binind, arena_bin_stats_t *out, size_t *nonfull);
/* Forget bin's remote stack (reset and destroy: every run goes anyway);
 * bin lock held. */
static inline void arena_bin_remote_discard(arena_bin_t *bin) {
  __atomic_store_n(&bin->remote, NULL, __ATOMIC_RELAXED);
  __atomic_store_n(&bin->remote_rest, NULL, __ATOMIC_RELAXED);
}

void *arena_malloc_small(arena_t *arena, unsigned binind, bool zero);
void *arena_malloc_large(arena_t *arena, size_t usize, size_t alignment, bool zero);
/* Free ptr, which lies in chunk. Reports invalid and double frees. */
void arena_dalloc(arena_chunk_t *chunk, void *ptr);
/* Usable size of ptr in chunk; 0 if ptr is not an allocated region. */
size_t arena_salloc(const arena_chunk_t *chunk, const void *ptr);
/* Resize a large allocation in place to usize (large); true if it can't. */
bool arena_ralloc_large_in_place(arena_chunk_t *chunk, void *ptr, size_t oldsize, size_t usize,
                                 bool zero);
/* Purge every dirty and muzzy page of the arena (runs and free chunk
 * ranges) now, with MADV_DONTNEED. */
void arena_purge_all(arena_t *arena);
/* Purge what the decay curves say is due now (runs and free chunk
 * ranges), waiting for a purge in flight. */
void arena_decay(arena_t *arena);
/* Amortized decay, from the slow paths with no lock held. */
void arena_decay_tick(arena_t *arena);
/* The same from a thread cache's GC step (fast paths only: no slow-path
 * call to tick): a clock read, and a decay check when one is due, of the
 * caller's arena and of one other arena in turn. */
uint64_t arena_decay_event(arena_t *arena); /* returns the clock it read (decay_now_ns) */
#define ARENA_DECAY_EVENT_NS 100000000u /* the longest wait between two looks */
/* Called on every tick when set (the background thread's lazy start). */
extern void (*arena_tick_hook)(void);
/* ns until the arena has something to purge (UINT64_MAX: nothing). */
uint64_t arena_decay_ns_until(arena_t *arena, uint64_t now);
/* arena.<i>.reset: discard every allocation of the arena (small, large and
 * huge); its chunks go back to the arena's chunk trees. Waits for a purge
 * in flight; purgers leave the arena alone meanwhile. Objects of the arena
 * still held in thread caches must have been flushed. True (nothing done)
 * if the arena is dead or the caller is inside an operation on it. */
bool arena_reset(arena_t *arena);
/* arena.<i>.destroy: retire an explicit arena no thread uses (its index
 * stays taken, arena_get returns NULL for it), reset it and give every free
 * range back to the pages layer or the extent hooks. True (nothing done) if
 * it is automatic, in use by a thread, or already retired. */
bool arena_destroy(arena_t *arena);
/* Check every structural invariant of the arena's metadata (page maps,
 * run descriptors, bitmaps, counters, trees, huge records); false if
 * broken. Silent. */
bool arena_validate(arena_t *arena);
/*
 * The heap check: everything arena_validate checks, and the contents the
 * checks rely on (every free region of a small run still holds its free
 * tag: a lost tag means the region was written after free, or overrun by
 * its neighbour). With verbose, each inconsistency is printed as one line
 * on stderr ("xalloc: arena 3 check: ..."). False if anything is wrong.
 * Takes every lock of the arena; objects in thread caches are "allocated"
 * for this check. Reached through malloc_info() (see doc/SAFETY.md), and
 * meant for mallctl("arena.<i>.check").
 */
bool arena_check(arena_t *arena, bool verbose);

/* fork, first step: wait for every lifecycle operation in flight, and
 * hold new ones off until arenas_postfork_*; before any lock is taken. */
void arenas_prefork_ops(void);
void arenas_prefork(void);
void arenas_postfork_parent(void);
void arenas_postfork_child(void);
void arena_prefork(arena_t *arena);
void arena_postfork_parent(arena_t *arena);
void arena_postfork_child(arena_t *arena);

#define ARENA_IND_NONE (~0u) /* no arena (in reports) */
/* The usable size of ptr (which lies in chunk) if it is the start of a
 * live object; otherwise report what is wrong, as a bad op, and return 0. */
size_t arena_lookup(arena_chunk_t *chunk, const void *ptr, const char *op);
#endif
