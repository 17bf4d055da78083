/*
 * tcache: per-thread caches of free objects, and the rest of the
 * per-thread state (tsd_t).
 *
 * Each thread has one tsd_t, reached through a single initial-exec TLS
 * pointer (tsd_tls). Before a thread's first call, and while its tsd_t is
 * being built or after it was torn down at thread exit, tsd_tls points to
 * a static sentinel whose bins are empty and can hold nothing, so the fast
 * paths always miss and fall into the slow path, which knows what to do.
 *
 * A bin is a stack of free objects of one size class: small classes and
 * large classes up to tcache_max. malloc pops; free pushes. An empty bin is
 * refilled with a batch from the thread's arena under one bin lock; a full
 * bin is flushed (its older half) back to the owning arenas, grouped by
 * arena: to the thread's own arena under one bin lock, to any other with
 * one atomic push onto the bin's remote stack (arena.h). Incremental GC flushes three
 * quarters of what a bin did not use since the last visit. When the thread
 * exits (a pthread key destructor) its cache is parked for the next new
 * thread to adopt, or flushed (tsd_park, below). Objects in a bin
 * are "allocated" as far as their runs know, and are checked against the
 * run metadata when they leave the cache.
 *
 * Fields are touched only by the owning thread, except the list links
 * (tsd_list_lock) and the call counters read for statistics, which the
 * owner writes with relaxed atomic stores and readers read with relaxed
 * atomic loads (tcache_requests).
 */
#ifndef XALLOC_INTERNAL_TCACHE_H
#define XALLOC_INTERNAL_TCACHE_H

#include "xalloc/internal/arena.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/tag.h"

#define TCACHE_NBINS_MAX SZ_NFAST /* small classes and large ones up to 1 MiB */
/* A small bin's capacity starts at twice its run's regions, at most
 * TCACHE_NSLOTS_SMALL_MAX, and may grow (tcache_dalloc_hard) to
 * TCACHE_GROW_BYTES' worth of objects, at most TCACHE_NSLOTS_GROW_MAX:
 * its stack has that many slots. */
#define TCACHE_NSLOTS_SMALL_MAX 200
#define TCACHE_GROW_BYTES 131072
#define TCACHE_NSLOTS_GROW_MAX 2048
#define TCACHE_GROW_BUDGET 131072 /* bytes of growth a thread's bins share */
#define TCACHE_GROW_MAXCLASS 128   /* the largest class whose bin may grow */
#define TCACHE_FLUSH_WINDOW 256 /* objects a flush handles at a time */
#define TCACHE_NSLOTS_LARGE 20
#define TCACHE_GC_INTERVAL 256 /* pops of a bin per GC step: the carry of its 8-bit counter */

enum { TSD_NOMINAL = 0, TSD_EMPTY = 1, TSD_BOOT = 2, TSD_EXITED = 3 };

/*
 * A bin: 32 bytes, at byte offset (class + 1) * 32 of its tsd_t (the page
 * words of rtree.h hold that offset, the size table tcache_size2bin an
 * eighth of it;
 * offset 0 is bin_none, which holds nothing). The stack's slots are in the
 * tsd's own block; top, low, full and the stack's start (in the bin's
 * tcache_bin_ext_t, which the malloc fast path reads only at a new low)
 * are byte offsets from the tsd, so the fast paths address a slot as
 * (char *)t + offset.
 *
 * The region-start test: x = ptr - run start is a multiple of the class
 * size iff (uint32_t)(x * magic) < TCACHE_REGION_BOUND, with magic =
 * ceil(2^32 / size) for a small class (multiples give x/size times a
 * remainder below size, which stays below 2^16 in a run of at most 16
 * pages; other offsets give at least magic > 2^18) and 2^16 for a large one
 * (page words are on first pages only, so x < PAGE, and only 0 passes).
 * Checked for every class and offset by test/unit/tcache.c.
 */
#define TCACHE_REGION_BOUND ((uint32_t)1 << 16)
typedef struct {
  uint64_t top;    /* the slot above the newest object (< 2^32) */
  uint32_t low;    /* low-water mark (>= the stack's start): a pop at or below it is a new low */
  uint32_t full;   /* the stack's end (its start if the bin caches nothing) */
  uint32_t magic;  /* the region-start test's multiplier (0 in bin_none) */
  uint8_t npop;    /* pops, mod 256; each carry adds 256 to npop_base and is a GC step */
  uint8_t lg_fill_div; /* refill ncached_max >> lg_fill_div objects */
  uint8_t npop_start; /* while sampling (sample.h): npop's value after the last carry */
  uint8_t refilled;   /* refilled since it last overflowed: it may grow */
  uint8_t pad[8];
} tcache_bin_t;

/* What the fast paths need less often, at the same stride, in a parallel
 * array: a bin's extension is at a fixed distance from the bin. */
typedef struct {
  uint64_t szmin;  /* free_sized: sizes of this class are szmin .. szmin + szrange */
  uint64_t szrange;
  uint32_t base;   /* the stack's start */
  uint32_t pad[3];
} tcache_bin_ext_t;

typedef struct tsd_s tsd_t;
#define TSD_PW_NONE ((uintptr_t)1 << 63)
/* Counters of a live tsd that another thread reads (tcache_requests, for
 * the statistics) are stored by their thread, and read by the other, with
 * relaxed atomics: the snapshot may lag, but no read is torn. */
#define TSD_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define TSD_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
struct tsd_s {
  tcache_bin_t bin_none; /* where page words of pages no fast free may touch lead: holds nothing */
  tcache_bin_t bins[TCACHE_NBINS_MAX];
  tcache_bin_ext_t ext_none;
  tcache_bin_ext_t ext[TCACHE_NBINS_MAX];
  /* The free fast path's cache of the last grain it looked up: the page
   * number (addr >> LG_PAGE) of its first page (TSD_PW_NONE: none, so
   * that no page is within RTREE_PW_PER_GRAIN of it) and its page words
   * (rtree_pw_grain). A grain's page words never move, so this never goes
   * stale. Only the owner reads and writes them. */
  uintptr_t pw_first;
  uint64_t *pw_words;
  unsigned gc_next;     /* next bin the GC visits */
  unsigned gc_steps;    /* GC steps made */
  tcache_bin_t *gc_carry; /* the bin whose pop counter carried (for tcache_pop_carry) */
  uint8_t state;
  bool tcache_enabled;
  arena_t *arena;       /* the thread's arena */
  uint64_t allocated;   /* bytes allocated outside the bins */
  uint64_t deallocated; /* bytes freed outside the bins */
  uint64_t ndirect_malloc, ndirect_free; /* calls served outside the bins */
  /*
   * Per bin, objects that entered it from its arena (fills; large
   * allocations served through the bin), that left it for an arena
   * (flushes, and objects dropped as bad), and that were popped (npop_base
   * plus bins[i].npop). Frees are not counted: the objects pushed into
   * bin i are ncached + nflush + npop - nfill. Owner only.
   */
  uint64_t nfill[TCACHE_NBINS_MAX];
  uint64_t nflush[TCACHE_NBINS_MAX];
  uint64_t npop_base[TCACHE_NBINS_MAX];
  /* The bins' calls (pops, pushes) published for other threads
   * (tcache_requests): the sums of pub_pop and pub_push, each bin's counts
   * as of its last flush or the owner's last full publication (every 16th
   * GC step, a stats read). Owner writes; pub_nmalloc and pub_nfree are
   * read by others. */
  uint64_t pub_nmalloc, pub_nfree;
  uint64_t pub_pop[TCACHE_NBINS_MAX];
  uint64_t pub_push[TCACHE_NBINS_MAX];
  tsd_t *prev, *next;   /* all live tsds */
  /* thread.allocatedp / deallocatedp: copies of tsd_allocated and
   * tsd_deallocated, refreshed on this thread's slow paths once a pointer
   * to them was handed out (counters_published). */
  bool counters_published;
  uint64_t allocatedp, deallocatedp;
  /* Sampling (sample.h), owner only: bytes until the next heap profile
   * sample, allocations until the next guarded one, the random state, pops
   * toward the next GC step, and what the allocation being served is to
   * get (SAMPLE_PROF, SAMPLE_GUARD). */
  int64_t sample_bytes;
  int64_t sample_count;
  uint64_t sample_rng;
  uint32_t sample_gc;
  uint8_t sample_pending;
  /* Bytes the bins' capacities grew by (beyond their starting ones), at
   * most TCACHE_GROW_BUDGET. */
  uint64_t grown;
  /* While parked (its thread exited; tsd_park): when it was parked, and
   * the bytes its bins hold. */
  uint64_t parked_ns, parked_bytes;
};

_Static_assert(sizeof(tcache_bin_t) == 32 && offsetof(tsd_t, bins) == sizeof(tcache_bin_t) &&
                   sizeof(tcache_bin_ext_t) == sizeof(tcache_bin_t) &&
                   ((uint64_t)1 << RTREE_PW_CLASS_SHIFT) == ((uint64_t)sizeof(tcache_bin_t) << 32),
               "page words hold (class + 1) * sizeof(tcache_bin_t)");
_Static_assert(TCACHE_NBINS_MAX * sizeof(tcache_bin_t) / 8 < 256, "tcache_size2bin holds (class + 1) * 4");

/* The bin at byte offset off of t (off: (class + 1) * 32, or 0). */
static inline tcache_bin_t *tcache_bin_at(tsd_t *t, uintptr_t off) { return (tcache_bin_t *)((char *)t + off); }
static inline unsigned tcache_bin_off(unsigned ind) { return (ind + 1) * (unsigned)sizeof(tcache_bin_t); }
static inline void **tcache_slot(tsd_t *t, uint32_t off) { return (void **)((char *)t + off); }
/* The start of bin ind's stack; objects in it; its capacity. */
static inline uint32_t tcache_base(const tsd_t *t, unsigned ind) { return t->ext[ind].base; }
static inline tcache_bin_ext_t *tcache_ext(tcache_bin_t *b) {
  return (tcache_bin_ext_t *)((char *)b + offsetof(tsd_t, ext_none));
}
static inline uint32_t tcache_ncached(const tsd_t *t, unsigned ind) {
  return (uint32_t)(t->bins[ind].top - tcache_base(t, ind)) / 8;
}
/* Bin ind's starting capacity, and its stack's slots: what its capacity
 * may grow to (the slow paths only: a division). */
unsigned tcache_bin_cap0(unsigned ind);
unsigned tcache_bin_slots(unsigned ind);
static inline uint32_t tcache_ncached_max(const tsd_t *t, unsigned ind) {
  return (t->bins[ind].full - tcache_base(t, ind)) / 8;
}
/* Count a pop of b; true when the 8-bit counter carries (every 256th).
 * On x86-64 one add to memory whose carry flag is the answer (gcc would
 * load, add, store and test). */
static inline bool tcache_npop_inc(tcache_bin_t *b) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool carry;
  __asm__("addb $1, %0" : "+m"(b->npop), "=@ccc"(carry));
  return carry;
#else
  return ++b->npop == 0;
#endif
}
/* The object in t's slot at off, loaded into the register that returns
 * it (x86-64: in malloc gcc would load it elsewhere and copy it there). */
static inline void *tcache_slot_load(tsd_t *t, uint64_t off) {
#if defined(__x86_64__)
  void *v;
  __asm__("movq %1, %0" : "=a"(v) : "m"(*(void **)((char *)t + off)));
  return v;
#else
  return *(void **)((char *)t + off);
#endif
}
/* The top of the bin at byte offset 8 * off8 of t, and whether it is at
 * or below the bin's low-water mark (x86-64: addressed from t and off8,
 * as tcache_pop_commit). */
static inline bool tcache_top_at_low(tsd_t *t, uintptr_t off8, uint64_t *top) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool low;
  __asm__("movq (%[t],%[o],8), %[top]\n\tcmpl %k[top], %c[lw](%[t],%[o],8)"
          : [top] "=&r"(*top), "=@ccae"(low)
          : [t] "r"(t), [o] "r"(off8), [lw] "i"(offsetof(tcache_bin_t, low))
          : "memory");
  return low;
#else
  tcache_bin_t *b = tcache_bin_at(t, off8 * 8);
  *top = b->top;
  return (uint32_t)*top <= b->low;
#endif
}
/* The free fast path's accesses to the bin at byte offset off of t, on
 * x86-64 addressed from t and off (as above): whether x, an offset in a
 * run of the bin's class, is not a region's start (the region-start test
 * above); the bin's top, and whether it is full; the push (top up by one
 * slot). */
static inline bool tcache_not_region_start(tsd_t *t, uintptr_t off, uint32_t x) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool bad;
  __asm__("imull %c[mg](%[t],%[o]), %[x]\n\tcmpl %[bound], %[x]"
          : [x] "+r"(x), "=@cca"(bad)
          : [t] "r"(t), [o] "r"(off), [mg] "i"(offsetof(tcache_bin_t, magic)), [bound] "i"(TCACHE_REGION_BOUND - 1)
          : "memory");
  return bad;
#else
  return x * tcache_bin_at(t, off)->magic >= TCACHE_REGION_BOUND;
#endif
}
static inline bool tcache_top_at_full(tsd_t *t, uintptr_t off, uint64_t *top) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool full;
  __asm__("movq (%[t],%[o]), %[top]\n\tcmpl %c[fl](%[t],%[o]), %k[top]"
          : [top] "=&r"(*top), "=@ccae"(full)
          : [t] "r"(t), [o] "r"(off), [fl] "i"(offsetof(tcache_bin_t, full))
          : "memory");
  return full;
#else
  tcache_bin_t *b = tcache_bin_at(t, off);
  *top = b->top;
  return (uint32_t)*top >= b->full;
#endif
}
static inline void tcache_push_commit(tsd_t *t, uintptr_t off) {
#if defined(__x86_64__)
  __asm__("addq $8, (%[t],%[o])" : : [t] "r"(t), [o] "r"(off) : "memory");
#else
  tcache_bin_at(t, off)->top += 8;
#endif
}
/* A pop from the bin at byte offset 8 * off8 of t: top down by one slot,
 * the pop counted; true when the counter carries. On x86-64 two adds to
 * memory addressed from t and off8 (gcc would first compute the bin's
 * address into a register). */
static inline bool tcache_pop_commit(tsd_t *t, uintptr_t off8) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool carry;
  __asm__("addq $-8, (%[t],%[o],8)\n\taddb $1, %c[np](%[t],%[o],8)"
          : "=@ccc"(carry)
          : [t] "r"(t), [o] "r"(off8), [np] "i"(offsetof(tcache_bin_t, npop))
          : "memory");
  return carry;
#else
  tcache_bin_t *b = tcache_bin_at(t, off8 * 8);
  b->top -= 8;
  return tcache_npop_inc(b);
#endif
}
static inline uint64_t tcache_npop(const tsd_t *t, unsigned ind) { return t->npop_base[ind] + t->bins[ind].npop; }

extern __thread tsd_t *tsd_tls __attribute__((tls_model("initial-exec")));

/* One more in a counter only its owner writes and others read. */
static inline uint64_t tsd_counter_inc(uint64_t *c) {
  uint64_t v = *c + 1;
  __atomic_store_n(c, v, __ATOMIC_RELAXED);
  return v;
}

/* (class + 1) * 4 of every size up to SZ_LOOKUP_MAX, indexed by the size
 * itself (no rounding: 4 KiB instead of 513 bytes, two instructions
 * fewer), an eighth of the class's bin offset: the malloc fast path's
 * table (0, bin_none, until the caches are set up). */
extern uint8_t tcache_size2bin[SZ_LOOKUP_MAX + 1];
/* The same for sizes above SZ_LOOKUP_MAX up to tcache_maxclass, indexed by
 * (size - 1) >> 10 (every class above 4 KiB is a multiple of 1 KiB, so
 * all sizes of one index have one class). */
#define TCACHE_LARGE2BIN_N (((size_t)1 << 20) >> 10)
extern uint8_t tcache_large2bin[TCACHE_LARGE2BIN_N];

extern unsigned tcache_nhbins;     /* bins in use: small + large up to tcache_max */
extern size_t tcache_maxclass;     /* largest cached size */
/* Threads' bins hold objects (tcache:true, and neither junk:true nor
 * valgrind, which route every call through the slow paths). */
extern bool tcache_active;

bool tcache_boot(void);
/* The calling thread's tsd, created if needed (never NULL: a sentinel with
 * the first arena while creating or after exit). */
tsd_t *tsd_fetch(void);
static inline bool tsd_nominal(const tsd_t *t) { return t->state == TSD_NOMINAL; }

/* Push ptr into bin ind, flushing half of a full bin first. */
void tcache_dalloc_hard(tsd_t *t, unsigned ind, void *ptr);
/* Flush bin ind down to rem objects. */
void tcache_flush_bin(tsd_t *t, unsigned ind, unsigned rem);
/* Flush every bin of t. */
void tcache_flush_all(tsd_t *t);
/* One GC step (called every TCACHE_GC_INTERVAL pops of a bin). */
void tcache_event(tsd_t *t);
/* Bin ind's pop counter carried: count the 256 pops, then a GC step. */
void tcache_pop_carry(tsd_t *t, tcache_bin_t *b);
/* Bytes this thread allocated / freed (thread.allocated). */
uint64_t tsd_allocated(const tsd_t *t);
uint64_t tsd_deallocated(const tsd_t *t);
/* Start keeping t->allocatedp and t->deallocatedp up to date (the first
 * read of thread.allocatedp or thread.deallocatedp). */
void tsd_publish_counters(tsd_t *t);
/* Count an allocation or free served outside the bins. */
void tsd_count_direct(tsd_t *t, bool is_malloc, size_t usize);
/*
 * Allocation and free calls of every thread, live or gone. Other threads'
 * counters are read while they run, so only counters that never go down
 * and that their owner stores whole are summed: ndirect_* (one store per
 * call) and the bins' counts as the owner last published them (pub_*: at
 * its flushes and every 16th GC step; the calling thread publishes its
 * own first). A reading never wraps, never goes below an earlier one, and
 * lags by what other threads' bins served since they published (a few
 * thousand calls per thread at most); a thread's exact counts join the
 * totals when it exits.
 */
void tcache_requests(uint64_t *nmalloc, uint64_t *nfree);

/* Pop an object of class ind (usize bytes; cached classes only) from t's
 * bin, refilling from arena if it is empty; NULL on OOM. */
void *tcache_alloc(tsd_t *t, arena_t *arena, unsigned ind, size_t usize);
/* Enable or disable t's cache (thread.tcache.enabled); flushes it. */
void tcache_set_enabled(tsd_t *t, bool enabled);
/* A resize in place, for thread.allocated / thread.deallocated. */
void tsd_count_resize(tsd_t *t, size_t oldsize, size_t newsize);

/*
 * Explicit caches (tcache.create, MALLOCX_TCACHE(i)): tsd_t's that belong
 * to no thread, in a table of TCACHE_EXPLICIT_MAX. As in jemalloc, one may
 * be used by one thread at a time; the caller keeps them apart. Their
 * calls are counted in the calling thread's counters (tsd_count_direct).
 */
#define TCACHE_EXPLICIT_MAX 4093 /* the 12-bit MALLOCX_TCACHE field, biased by 2 */
bool tcache_explicit_create(unsigned *ind);
tsd_t *tcache_explicit_get(unsigned ind); /* NULL if no such cache */
bool tcache_explicit_flush(unsigned ind);
bool tcache_explicit_destroy(unsigned ind);

/*
 * Parked caches (tcache_park): a thread that exits leaves its cache, objects
 * and all, for the next thread to adopt, instead of flushing it into the
 * runs and making the new thread fill its own from them again. At most
 * opt_tcache_park caches and TSD_PARK_BYTES of objects are parked; one not
 * adopted in time is flushed by the next thread exit, GC step or background
 * pass (tsd_park_expire), and tsd_park_flush flushes them all
 * (malloc_trim, arena.<i>.purge, arena.<i>.reset and destroy).
 */
#define TSD_PARK_BYTES ((uint64_t)8 << 20)
/* Caches parked now, and when the oldest is due to be flushed (UINT64_MAX:
 * none); read without the lock. */
extern unsigned tsd_nparked;
extern uint64_t tsd_park_due_ns;
void tsd_park_flush(void);
/* Caches parked now, and the bytes their bins hold. */
void tsd_park_stats(size_t *n, size_t *bytes);
/* Flush the parked caches that waited longer than reuse_window_ms (1 s
 * when it is 0) at now (decay_now_ns()). */
void tsd_park_expire(uint64_t now);
static inline void tsd_park_tick(uint64_t now) {
  if (unlikely(now >= __atomic_load_n(&tsd_park_due_ns, __ATOMIC_RELAXED))) tsd_park_expire(now);
}

/* ---- between tcache.c (the bins) and tsd.c (the lifecycle) ---- */
/* The tsd blocks (size: the tsd_t and its bins' slots). */
extern base_pool_t tsd_pool XA_HIDDEN;
/* Set up the tsd layer (after the bins' sizes are known); true on failure. */
bool tsd_boot_state(size_t size);
/* Give t's bins their stacks; they cache objects if enabled. */
void tcache_bins_init(tsd_t *t, bool enabled);
/* Bin ind (holding at most its starting capacity) back in its starting
 * stack, with that capacity. */
void tcache_bin_restart(tsd_t *t, unsigned ind);
/* Publish t's bins' call counts for other threads' readings (its own
 * thread only). */
void tsd_publish_calls(tsd_t *t);
/* The same for bin ind only (its flush), in O(1). */
void tsd_publish_bin(tsd_t *t, unsigned ind);
/* thread.allocatedp / deallocatedp, once handed out: refreshed on the slow
 * paths, so they trail the fast paths by at most what the cache served
 * since. */
void tsd_publish_slow(tsd_t *t);
#define TSD_PUBLISH(t)                                            \
  do {                                                            \
    if (unlikely((t)->counters_published)) tsd_publish_slow(t); \
  } while (0)
void tsd_prefork(void);
void tsd_postfork_parent(void);
void tsd_postfork_child(void);

void tcache_prefork(void);
void tcache_postfork_parent(void);
void tcache_postfork_child(void);
#endif
