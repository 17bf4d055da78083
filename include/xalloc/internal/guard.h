/*
 * guard: the guarded pool (guard_sample, guard_max, guard_slots,
 * guard_underflow; doc/SAFETY.md, "Guarded sampling").
 *
 * Sampled allocations (sample.h) of at most guard_max bytes are served
 * from a pool of guard_slots slots in one reservation made at start:
 *
 *   [guard][slot 0][guard][slot 1][guard] ... [slot n-1][guard]
 *
 * A slot is PAGE_CEILING(guard_max) bytes; everything is PROT_NONE except
 * the slots of live blocks. A block is placed against the end of its slot
 * at the alignment malloc guarantees (16 bytes, 8 for 8 bytes or less) or
 * the one asked for: its end is the slot's end when its size is a multiple
 * of the alignment, else the alignment's slack (up to alignment - 1 bytes)
 * lies between them, filled with a pattern that free checks (an overflow
 * into it is reported at the free). With guard_underflow it is placed
 * against the slot's start instead. Freeing makes the slot
 * inaccessible again (mprotect, and MADV_DONTNEED: its page goes back to
 * the kernel) and puts it at the end of the queue of free slots, which are
 * reused oldest first: a freed slot stays inaccessible while every other
 * free slot is used, and its record (size, allocating and freeing stacks)
 * stays for the fault report (guard_report.c) until then. A full pool
 * serves nothing (the allocation is served normally).
 *
 * Kernel mappings: the reservation is one mapping; each live slot splits
 * it into at most two more (a live slot's neighbours are guard pages,
 * which never merge with it), so the pool never has more than
 * 2 * guard_slots + 1.
 */
#ifndef XALLOC_INTERNAL_GUARD_H
#define XALLOC_INTERNAL_GUARD_H

#include "xalloc/internal/stack.h"
#include "xalloc/internal/util.h"

/* guard_sample > 0 and the pool is set up. */
extern bool guard_on;
/* The largest size served (opt_guard_max). */
extern size_t guard_max;
/* The reservation: [guard_base, guard_base + guard_size), 0 while none. */
extern uintptr_t guard_base;
extern size_t guard_size;

/* What xa_meta (xalloc.c) returns for a pointer into the pool: a byte
 * that is none of the chunk layer's META_* kinds. */
enum { META_GUARD = 0x47 };
extern const uint8_t guard_meta;

/* ptr is in the pool (a block, a slot's slack, a guard page). */
static inline bool guard_contains(const void *ptr) { return (uintptr_t)ptr - guard_base < guard_size; }

/* At initialization: reserve the pool and install the fault handler (if
 * guard_sample > 0 and not under valgrind). True on failure. */
bool guard_boot(void);
/* Once initialization is over (may allocate): load the unwinder. */
void guard_boot_late(void);
/*
 * A guarded block of size bytes (the request; usize is what the normal
 * allocation would have had, for the sized frees' check), aligned to
 * alignment if not 0 (else to the natural alignment of size: the largest
 * power of two dividing it, at most 16), zeroed. NULL if it does not fit
 * a slot or the pool is full: the caller serves it normally.
 */
void *guard_alloc(size_t size, size_t usize, size_t alignment, bool zero);
/* The exact size of the live guarded block ptr; 0 (reported, as for op)
 * if ptr is not one. */
size_t guard_usable(const void *ptr, const char *op);
/* The usable size the live guarded block ptr would have had if served
 * normally (what a sized free is checked against). */
size_t guard_usize(const void *ptr);
/* Free ptr, in the pool (a double, interior or invalid free is reported
 * as for op, and ignored with abort:false). */
void guard_free(void *ptr, const char *op);

void guard_prefork(void);
void guard_postfork_parent(void);
void guard_postfork_child(void);

typedef struct {
  size_t slots;        /* slots in the pool */
  size_t slot_size;    /* bytes of each slot (guard pages not counted) */
  size_t mapped;       /* bytes of the reservation */
  size_t in_use;       /* slots holding a live block */
  size_t allocated;    /* bytes requested by the live blocks */
  size_t resident;     /* bytes of the live slots' pages */
  uint64_t nmalloc;    /* blocks served */
  uint64_t ndalloc;    /* blocks freed */
  uint64_t nexhausted; /* sampled allocations served normally: no free slot */
  uint64_t nfaults;    /* faults in the pool reported */
} guard_stats_t;
void guard_stats_get(guard_stats_t *out);

/* ---- what the pool and the fault report (guard_report.c) share ---- */

#define GUARD_DEPTH 30
enum { GUARD_EMPTY = 0, GUARD_LIVE = 1, GUARD_FREED = 2, GUARD_BUSY = 3 };
typedef struct {
  uintptr_t ptr;        /* the block (0: the slot never held one) */
  size_t size;          /* requested */
  size_t usize;         /* its usable size if served normally */
  uint32_t alloc_tid, free_tid;
  uint8_t state;        /* GUARD_* (atomic) */
  uint8_t nalloc, nfree; /* frames stored */
  void *alloc_frames[GUARD_DEPTH];
  void *free_frames[GUARD_DEPTH];
} guard_slot_t;

extern guard_slot_t *guard_slots;
extern size_t guard_nslots;
extern size_t guard_slot_size; /* PAGE_CEILING(guard_max) */
extern uint64_t guard_nfaults;
/* The slot whose pages hold addr (guard_contains(addr)), or -1 for a
 * guard page; *before and *after are the slots around a guard page. */
long guard_slot_of(uintptr_t addr, long *before, long *after);
static inline uintptr_t guard_slot_addr(size_t i) { return guard_base + PAGE + i * (guard_slot_size + PAGE); }

/* guard_report.c: the SIGSEGV and SIGBUS handler; the report of an
 * overflow into a block's slack found at its free (bad: the first byte
 * written over). */
bool guard_report_install(void);
void guard_report_slack(const guard_slot_t *s, uintptr_t bad);
#endif
