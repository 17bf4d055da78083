/* unwind: the frame-size cache behind fast stack captures (unwind.h). */
#include <dlfcn.h>
#include <unwind.h>

#include "xalloc/internal/cfi.h"
#include "xalloc/internal/unwind.h"

#if defined(__x86_64__)

static _Unwind_Reason_Code (*unwind_bt)(_Unwind_Trace_Fn, void *);
static _Unwind_Ptr (*unwind_get_ip)(struct _Unwind_Context *);
static _Unwind_Word (*unwind_get_cfa)(struct _Unwind_Context *);
static _Unwind_Word (*unwind_get_gr)(struct _Unwind_Context *, int);
static bool unwind_ready;

void unwind_boot(void) {
  /* backtrace(3) has loaded libgcc_s (stack_boot): take it again without
   * loading anything. */
  void *h = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (h == NULL) return;
  unwind_bt = (_Unwind_Reason_Code(*)(_Unwind_Trace_Fn, void *))dlsym(h, "_Unwind_Backtrace");
  unwind_get_ip = (_Unwind_Ptr(*)(struct _Unwind_Context *))dlsym(h, "_Unwind_GetIP");
  unwind_get_cfa = (_Unwind_Word(*)(struct _Unwind_Context *))dlsym(h, "_Unwind_GetCFA");
  unwind_get_gr = (_Unwind_Word(*)(struct _Unwind_Context *, int))dlsym(h, "_Unwind_GetGR");
  if (unwind_bt != NULL && unwind_get_ip != NULL && unwind_get_cfa != NULL && unwind_get_gr != NULL)
    __atomic_store_n(&unwind_ready, true, __ATOMIC_RELEASE);
}

/*
 * The cache: open addressing, one 64-bit word per return address: the
 * address in the low 47 bits (user addresses are below 2^47), bit 47 set
 * once a second full unwind saw the same value, and in the high 16 bits
 * the CFA difference / 8, or UNWIND_LAST (the outermost frame: the walk
 * ends after it) or UNWIND_BAD (never cached: a second value was seen, or
 * the frame keeps its CFA in rbp). Only confirmed words are used. Words
 * are only ever set with a compare-and-swap; never cleared.
 */
#define UNWIND_SLOTS 8192
#define UNWIND_PROBE 8
#define UNWIND_LAST 0xffffu
#define UNWIND_BAD 0xfffeu
#define UNWIND_MISS 0x10000u
#define UNWIND_IP_MASK ((1ULL << 47) - 1)
#define UNWIND_CONFIRMED (1ULL << 47)
static uint64_t unwind_cache[UNWIND_SLOTS];
uint64_t unwind_nfast, unwind_nfull;

static inline unsigned unwind_hash(uintptr_t ip) {
  return (unsigned)((ip * 0x9E3779B97F4A7C15ULL) >> 51) & (UNWIND_SLOTS - 1);
}

/* The confirmed value of ip, or UNWIND_MISS. */
static inline unsigned unwind_lookup(uintptr_t ip) {
  unsigned h = unwind_hash(ip);
  for (unsigned i = 0; i < UNWIND_PROBE; i++) {
    uint64_t w = __atomic_load_n(&unwind_cache[(h + i) & (UNWIND_SLOTS - 1)], __ATOMIC_RELAXED);
    if (w == 0) return UNWIND_MISS;
    if ((w & UNWIND_IP_MASK) == ip) return (w & UNWIND_CONFIRMED) ? (unsigned)(w >> 48) : UNWIND_MISS;
  }
  return UNWIND_MISS;
}

/* Learn value v for ip: a new entry is tentative; the same value seen
 * again confirms it; a different one makes it UNWIND_BAD for good. */
static void unwind_learn(uintptr_t ip, unsigned v) {
  if (ip == 0 || (ip & ~UNWIND_IP_MASK) != 0) return;
  if (v != UNWIND_BAD && cfi_sigreturn(ip)) v = UNWIND_BAD;
  unsigned h = unwind_hash(ip);
  for (unsigned i = 0; i < UNWIND_PROBE; i++) {
    uint64_t *slot = &unwind_cache[(h + i) & (UNWIND_SLOTS - 1)];
    uint64_t w = __atomic_load_n(slot, __ATOMIC_RELAXED);
    for (;;) {
      uint64_t nw;
      if (w == 0)
        nw = ((uint64_t)v << 48) | (v == UNWIND_BAD ? UNWIND_CONFIRMED : 0) | ip;
      else if ((w & UNWIND_IP_MASK) != ip)
        break; /* another address's: probe on */
      else if ((unsigned)(w >> 48) == UNWIND_BAD || (w & UNWIND_CONFIRMED && (unsigned)(w >> 48) == v))
        return;
      else if ((unsigned)(w >> 48) == v)
        nw = w | UNWIND_CONFIRMED;
      else
        nw = ((uint64_t)UNWIND_BAD << 48) | UNWIND_CONFIRMED | ip;
      if (__atomic_compare_exchange_n(slot, &w, nw, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return;
      /* Lost a race: w is the slot's new value; decide again. */
    }
  }
  /* The probe window is full: ip stays uncached (full unwinds). */
}

/* The highest CFA a full unwind on this thread reached: the fast walk
 * reads below it only. */
static __thread uintptr_t unwind_hi __attribute__((tls_model("initial-exec")));
/* The longest stretch (outermost CFA - starting CFA) a full unwind on
 * this thread walked: a fast walk must start within twice that (+ 64 KiB)
 * below unwind_hi, so that a capture on another stack (a coroutine's, a
 * signal stack) takes the full unwinder. */
static __thread uintptr_t unwind_span __attribute__((tls_model("initial-exec")));
static __thread unsigned unwind_ncapture __attribute__((tls_model("initial-exec")));

int unwind_fast(uintptr_t cfa, void **frames, unsigned max, unsigned skip) {
  uintptr_t hi = unwind_hi;
  if (hi == 0 || cfa >= hi || hi - cfa > 2 * unwind_span + 65536) return -1;
  /* One capture in 64 takes the full path, which checks the cache. */
  if ((++unwind_ncapture & 63) == 0) return -1;
  unsigned n = 0, seen = 0;
  for (;;) {
    uintptr_t ip = *(const uintptr_t *)(cfa - 8);
    if (seen++ >= skip) {
      if (n == max) {
        __atomic_fetch_add(&unwind_nfast, 1, __ATOMIC_RELAXED);
        return (int)n;
      }
      frames[n++] = (void *)ip;
    }
    unsigned v = unwind_lookup(ip);
    if (v == UNWIND_LAST) {
      __atomic_fetch_add(&unwind_nfast, 1, __ATOMIC_RELAXED);
      return (int)n;
    }
    if (v >= UNWIND_BAD) return -1; /* a miss, or never cached */
    uintptr_t next = cfa + ((uintptr_t)v << 3);
    if (next <= cfa || next > hi) return -1;
    cfa = next;
  }
}

typedef struct {
  cfi_frame_t f[128];
  unsigned n, max;
} unwind_walk_t;

static _Unwind_Reason_Code unwind_cb(struct _Unwind_Context *ctx, void *arg) {
  unwind_walk_t *w = arg;
  if (w->n >= w->max) return _URC_NORMAL_STOP;
  w->f[w->n].ip = (uintptr_t)unwind_get_ip(ctx);
  w->f[w->n].cfa = (uintptr_t)unwind_get_cfa(ctx);
  w->f[w->n].rbp = (uintptr_t)unwind_get_gr(ctx, 6); /* DWARF register 6 */
  w->n++;
  return _URC_NO_REASON;
}

XA_NOINLINE int unwind_full(uintptr_t cfa, void **frames, unsigned max, unsigned skip) {
  unwind_walk_t w;
  w.n = 0;
  w.max = 128;
  bool complete;
  if (cfi_available()) {
    /* xalloc's own unwinder (cfi.h): nothing to load. */
    __atomic_fetch_add(&unwind_nfull, 1, __ATOMIC_RELAXED);
    int got = cfi_walk(w.f, w.max, &complete);
    w.n = got > 0 ? (unsigned)got : 0;
  } else {
    if (!__atomic_load_n(&unwind_ready, __ATOMIC_ACQUIRE)) return -1;
    __atomic_fetch_add(&unwind_nfull, 1, __ATOMIC_RELAXED);
    _Unwind_Reason_Code rc = unwind_bt(unwind_cb, &w);
    complete = rc == _URC_END_OF_STACK && w.n < w.max;
  }
  /* The walk may end with a frame whose return address is 0 (past _start,
   * or a thread's start): the one before it is the outermost. */
  for (unsigned i = 0; i < w.n; i++)
    if (w.f[i].ip == 0) {
      w.n = i;
      complete = true;
      break;
    }
  /* The walk reports each frame (as libgcc does) as its return address ip[i] with cfa[i],
   * the stack pointer at that call site (the CFA of the frame called
   * there): ip[i] is read at cfa[i] - 8, and the frame's own CFA is
   * cfa[i + 1]. Find the entry whose cfa is the capture function's: the
   * frames wanted start there. */
  unsigned k = 0;
  while (k < w.n && w.f[k].cfa != cfa) k++;
  if (k == w.n) return -1;
  /* Learn: the frame of return address ip[i] has its CFA cfa[i + 1] -
   * cfa[i] above the call site's stack pointer; the outermost is marked. */
  for (unsigned i = k; i < w.n; i++) {
    if (i + 1 == w.n) {
      if (complete) unwind_learn(w.f[i].ip, UNWIND_LAST);
      break;
    }
    uintptr_t d = w.f[i + 1].cfa - w.f[i].cfa;
    /* A frame whose CFA is its rbp + 16 may keep its CFA in rbp (its size
     * at this call may vary): never cached. */
    bool rbp_based = w.f[i].rbp + 16 == w.f[i + 1].cfa;
    if (w.f[i + 1].cfa > w.f[i].cfa && (d & 7) == 0 && (d >> 3) < UNWIND_BAD && !rbp_based)
      unwind_learn(w.f[i].ip, (unsigned)(d >> 3));
    else
      unwind_learn(w.f[i].ip, UNWIND_BAD);
  }
  if (complete && w.n > 0) {
    if (w.f[w.n - 1].cfa > unwind_hi) unwind_hi = w.f[w.n - 1].cfa;
    if (w.f[w.n - 1].cfa - cfa > unwind_span) unwind_span = w.f[w.n - 1].cfa - cfa;
  }
  unsigned n = 0;
  for (unsigned i = k + skip; i < w.n && n < max; i++) frames[n++] = (void *)w.f[i].ip;
  return (int)n;
}

#else

void unwind_boot(void) {}
int unwind_fast(uintptr_t cfa, void **frames, unsigned max, unsigned skip) {
  (void)cfa, (void)frames, (void)max, (void)skip;
  return -1;
}
int unwind_full(uintptr_t cfa, void **frames, unsigned max, unsigned skip) {
  (void)cfa, (void)frames, (void)max, (void)skip;
  return -1;
}

#endif
