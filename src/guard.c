/* guard: the guarded pool (guard.h); the fault report is guard_report.c. */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/guard.h"
#include "xalloc/internal/mutex.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/report.h"
#include "xalloc/internal/tag.h"
#include "xalloc/internal/vg.h"

bool guard_on;
size_t guard_max;
uintptr_t guard_base;
size_t guard_size;
const uint8_t guard_meta = META_GUARD;

guard_slot_t *guard_slots;
size_t guard_nslots;
size_t guard_slot_size;
uint64_t guard_nfaults;

/*
 * The free slots, a queue (ring) of indices under guard_mtx: allocation
 * takes the oldest, free puts a slot at the end once it is inaccessible
 * again. Slot states change under the lock; the system calls and stack
 * captures are made with it released, the slot then being GUARD_BUSY
 * (owned by the thread at work on it).
 */
static xmutex_t guard_mtx = XMUTEX_INITIALIZER;
static uint32_t *guard_ring;
static size_t guard_ring_head, guard_ring_count;
static unsigned guard_flip; /* guard_underflow:alternate */

static size_t guard_in_use, guard_allocated;
static uint64_t guard_nmalloc, guard_ndalloc, guard_nexhausted;

#define GUARD_ADD(v, n) __atomic_fetch_add(&(v), (n), __ATOMIC_RELAXED)
#define GUARD_SUB(v, n) __atomic_fetch_sub(&(v), (n), __ATOMIC_RELAXED)

static uint32_t guard_tid(void) { return (uint32_t)syscall(SYS_gettid); }

bool guard_boot(void) {
  guard_max = opt_guard_max;
  guard_on = false;
  if (opt_guard_sample == 0 || vg_on()) return false;
  size_t slot = PAGE_CEILING(guard_max), n = opt_guard_slots;
  size_t size = PAGE + n * (slot + PAGE);
  void *p = pages_reserve(size);
  guard_slots = base_alloc(n * sizeof(guard_slot_t));
  guard_ring = base_alloc(n * sizeof(uint32_t));
  if (p == NULL || guard_slots == NULL || guard_ring == NULL) {
    if (p != NULL) pages_unmap(p, size);
    util_warn("xalloc: guard_sample: no room for the guarded pool (%zu bytes); guarded sampling is off\n", size);
    return false;
  }
  for (size_t i = 0; i < n; i++) guard_ring[i] = (uint32_t)i;
  guard_ring_head = 0;
  guard_ring_count = n;
  guard_slot_size = slot;
  guard_nslots = n;
  guard_size = size;
  __atomic_store_n(&guard_base, (uintptr_t)p, __ATOMIC_RELEASE);
  guard_report_install();
  guard_on = true;
  return false;
}

void guard_boot_late(void) { stack_boot(); }

long guard_slot_of(uintptr_t addr, long *before, long *after) {
  size_t off = addr - guard_base, stride = guard_slot_size + PAGE;
  *before = *after = -1;
  if (off < PAGE) {
    *after = 0;
    return -1;
  }
  off -= PAGE;
  size_t i = off / stride, w = off % stride;
  if (i >= guard_nslots) return -1;
  if (w < guard_slot_size) return (long)i;
  *before = (long)i;
  if (i + 1 < guard_nslots) *after = (long)i + 1;
  return -1;
}

/*
 * The bytes between a block's end and the next page (the alignment's
 * slack: up to 15 bytes for malloc; up to GUARD_SLACK_MAX of them are
 * checked) hold a pattern, checked at free: an overflow too small to reach
 * the guard page is reported then (guard_report_slack).
 */
#define GUARD_SLACK_MAX 64
static inline uint8_t guard_slack_byte(uintptr_t a) { return (uint8_t)(0xa7 ^ (a * 0x9d)); }
static size_t guard_slack_len(const guard_slot_t *s) {
  uintptr_t end = s->ptr + s->size, page_end = ALIGNMENT_CEILING(end, PAGE);
  size_t n = page_end - end;
  return n < GUARD_SLACK_MAX ? n : GUARD_SLACK_MAX;
}
static void guard_slack_fill(const guard_slot_t *s) {
  uint8_t *b = (uint8_t *)(s->ptr + s->size);
  for (size_t i = 0, n = guard_slack_len(s); i < n; i++) b[i] = guard_slack_byte((uintptr_t)(b + i));
}
/* The first slack byte written over, or 0. */
static uintptr_t guard_slack_check(const guard_slot_t *s) {
  const uint8_t *b = (const uint8_t *)(s->ptr + s->size);
  for (size_t i = 0, n = guard_slack_len(s); i < n; i++)
    if (b[i] != guard_slack_byte((uintptr_t)(b + i))) return (uintptr_t)(b + i);
  return 0;
}

void *guard_alloc(size_t size, size_t usize, size_t alignment, bool zero) {
  if (!guard_on || size == 0 || size > guard_max) return NULL;
  /* At least malloc's alignment (doc/API.md), as the size classes give
   * (memalign(4, 17) is 16-aligned too). */
  size_t align = size > 8 ? QUANTUM : 8;
  if (alignment > align) align = alignment;
  if (align > PAGE) return NULL; /* a slot is only page aligned */
  bool left = opt_guard_underflow == GUARD_UNDERFLOW_ALWAYS ||
              (opt_guard_underflow == GUARD_UNDERFLOW_ALTERNATE && (GUARD_ADD(guard_flip, 1) & 1) != 0);

  xmutex_lock(&guard_mtx);
  if (guard_ring_count == 0) {
    xmutex_unlock(&guard_mtx);
    GUARD_ADD(guard_nexhausted, 1);
    return NULL;
  }
  uint32_t i = guard_ring[guard_ring_head];
  guard_ring_head = (guard_ring_head + 1) % guard_nslots;
  guard_ring_count--;
  guard_slot_t *s = &guard_slots[i];
  uint8_t was = s->state;
  __atomic_store_n(&s->state, GUARD_BUSY, __ATOMIC_RELAXED);
  xmutex_unlock(&guard_mtx);

  char *slot = (char *)guard_slot_addr(i);
  if (pages_protect(slot, guard_slot_size, true)) {
    /* Back where it was, at the front of the queue. */
    xmutex_lock(&guard_mtx);
    guard_ring_head = (guard_ring_head + guard_nslots - 1) % guard_nslots;
    guard_ring[guard_ring_head] = i;
    guard_ring_count++;
    __atomic_store_n(&s->state, was, __ATOMIC_RELAXED);
    xmutex_unlock(&guard_mtx);
    GUARD_ADD(guard_nexhausted, 1);
    return NULL;
  }
  char *p = left ? slot : (char *)(((uintptr_t)slot + guard_slot_size - size) & ~(uintptr_t)(align - 1));
  s->ptr = (uintptr_t)p;
  s->size = size;
  s->usize = usize;
  s->alloc_tid = guard_tid();
  s->free_tid = 0;
  s->nfree = 0;
  s->nalloc = (uint8_t)stack_capture(s->alloc_frames, GUARD_DEPTH, 0);
  /* The slot's pages are fresh or were purged with MADV_DONTNEED: zero,
   * unless that purge failed. */
  if (zero)
    memset(p, 0, size);
  else if (unlikely(opt_junk))
    memset(p, JUNK_ALLOC, size);
  guard_slack_fill(s);
  GUARD_ADD(guard_nmalloc, 1);
  GUARD_ADD(guard_in_use, 1);
  GUARD_ADD(guard_allocated, size);
  __atomic_store_n(&s->state, GUARD_LIVE, __ATOMIC_RELEASE);
  return p;
}

/* The slot and the report for ptr if it is not a live block's start
 * (lock held). */
static guard_slot_t *guard_find(uintptr_t addr, report_kind_t *kind) {
  long before, after;
  long i = guard_slot_of(addr, &before, &after);
  if (i < 0) {
    *kind = BAD_NOT_BLOCK;
    return NULL;
  }
  guard_slot_t *s = &guard_slots[i];
  uint8_t st = __atomic_load_n(&s->state, __ATOMIC_RELAXED);
  bool inside = s->ptr != 0 && addr >= s->ptr && addr < s->ptr + s->size;
  if (st == GUARD_LIVE && addr == s->ptr) return s;
  if ((st == GUARD_FREED || st == GUARD_BUSY) && inside)
    *kind = BAD_FREED;
  else if (st == GUARD_LIVE && inside)
    *kind = BAD_INTERIOR;
  else
    *kind = BAD_NOT_BLOCK;
  return s;
}

static void guard_report_bad(const char *op, report_kind_t kind, const void *ptr, const guard_slot_t *s) {
  char detail[96];
  if (s != NULL && s->ptr != 0)
    util_format(detail, sizeof(detail), "%s guarded %zu-byte block at %p", kind == BAD_FREED ? "a freed" : "in a",
                s->size, (void *)s->ptr);
  else
    util_format(detail, sizeof(detail), "in the guarded pool, no block there");
  report_bad(op, kind, ptr, s != NULL && kind != BAD_NOT_BLOCK ? s->usize : 0, ARENA_IND_NONE, detail);
}

size_t guard_usable(const void *ptr, const char *op) {
  report_kind_t kind;
  xmutex_lock(&guard_mtx);
  guard_slot_t *s = guard_find((uintptr_t)ptr, &kind);
  if (s != NULL && __atomic_load_n(&s->state, __ATOMIC_RELAXED) == GUARD_LIVE && s->ptr == (uintptr_t)ptr) {
    size_t size = s->size;
    xmutex_unlock(&guard_mtx);
    return size;
  }
  guard_slot_t copy;
  if (s != NULL) copy = *s;
  xmutex_unlock(&guard_mtx);
  guard_report_bad(op, kind, ptr, s != NULL ? &copy : NULL);
  return 0;
}

size_t guard_usize(const void *ptr) {
  long before, after;
  long i = guard_slot_of((uintptr_t)ptr, &before, &after);
  return i < 0 ? 0 : guard_slots[i].usize;
}

void guard_free(void *ptr, const char *op) {
  report_kind_t kind;
  xmutex_lock(&guard_mtx);
  guard_slot_t *s = guard_find((uintptr_t)ptr, &kind);
  if (s == NULL || __atomic_load_n(&s->state, __ATOMIC_RELAXED) != GUARD_LIVE || s->ptr != (uintptr_t)ptr) {
    guard_slot_t copy;
    if (s != NULL) copy = *s;
    xmutex_unlock(&guard_mtx);
    guard_report_bad(op, kind, ptr, s != NULL ? &copy : NULL);
    return;
  }
  __atomic_store_n(&s->state, GUARD_BUSY, __ATOMIC_RELAXED);
  xmutex_unlock(&guard_mtx);

  s->free_tid = guard_tid();
  s->nfree = (uint8_t)stack_capture(s->free_frames, GUARD_DEPTH, 0);
  uintptr_t bad = guard_slack_check(s);
  if (unlikely(bad != 0)) {
    /* Reported (and with abort:true the process ends here); the slot is
     * freed as usual. */
    guard_report_slack(s, bad);
    if (opt_abort) abort();
  }
  size_t i = (size_t)(s - guard_slots);
  char *slot = (char *)guard_slot_addr(i);
  /* Inaccessible (a later access faults) and the page back to the
   * kernel, in one system call (each one takes the address space's lock
   * and, with threads on other CPUs, flushes their TLBs). If that fails,
   * mprotect and madvise; if mprotect fails too, the slot may no longer
   * be mapped (the failed MAP_FIXED mapping may have removed it): it is
   * never used again. A slot left accessible is reused, its use after
   * free just goes unnoticed. */
  bool lost = false;
  if (pages_discard_inaccessible(slot, guard_slot_size)) {
    lost = pages_protect(slot, guard_slot_size, false);
    if (!lost) pages_purge_forced(slot, guard_slot_size);
  }
  GUARD_ADD(guard_ndalloc, 1);
  GUARD_SUB(guard_in_use, 1);
  GUARD_SUB(guard_allocated, s->size);

  xmutex_lock(&guard_mtx);
  __atomic_store_n(&s->state, GUARD_FREED, __ATOMIC_RELEASE);
  if (!lost) {
    guard_ring[(guard_ring_head + guard_ring_count) % guard_nslots] = (uint32_t)i;
    guard_ring_count++;
  }
  xmutex_unlock(&guard_mtx);
}

void guard_prefork(void) { xmutex_prefork(&guard_mtx); }
void guard_postfork_parent(void) { xmutex_postfork_parent(&guard_mtx); }
/* A slot that another thread of the parent was allocating or freeing
 * (GUARD_BUSY) stays so in the child: out of use, never reported on. */
void guard_postfork_child(void) { xmutex_postfork_child(&guard_mtx); }

void guard_stats_get(guard_stats_t *out) {
  memset(out, 0, sizeof(*out));
  if (!guard_on) return;
  out->slots = guard_nslots;
  out->slot_size = guard_slot_size;
  out->mapped = guard_size;
  out->in_use = __atomic_load_n(&guard_in_use, __ATOMIC_RELAXED);
  out->allocated = __atomic_load_n(&guard_allocated, __ATOMIC_RELAXED);
  out->resident = out->in_use * guard_slot_size;
  out->nmalloc = __atomic_load_n(&guard_nmalloc, __ATOMIC_RELAXED);
  out->ndalloc = __atomic_load_n(&guard_ndalloc, __ATOMIC_RELAXED);
  out->nexhausted = __atomic_load_n(&guard_nexhausted, __ATOMIC_RELAXED);
  out->nfaults = __atomic_load_n(&guard_nfaults, __ATOMIC_RELAXED);
}
