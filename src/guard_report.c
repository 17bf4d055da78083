/*
 * guard_report: the fault report of the guarded pool (guard.h).
 *
 * A SIGSEGV (or SIGBUS) handler is installed when the pool is set up,
 * remembering the disposition it replaces. A fault whose address is in the
 * pool is described from the slot records, without allocating and without
 * taking a lock:
 *
 *   xalloc: heap-buffer-overflow: write of 0x... 0 bytes right of a 24-byte block at 0x..., allocated by thread 12345 at:
 *       #0 0x... alloc_site+0x1c (prog)
 *   xalloc: use-after-free: read of 0x... 16 bytes inside a 96-byte block at 0x..., allocated by thread 12345 at:
 *       ...
 *   xalloc: the block was freed by thread 12345 at:
 *       ...
 *
 * (offsets as AddressSanitizer counts them: "0 bytes right" is the first
 * byte past the end, "1 bytes left" the byte before the start). Then,
 * for every fault, ours or not, the previous disposition runs: a handler
 * is called (with its flags' meaning: SA_SIGINFO, SA_RESETHAND, its
 * mask), SIG_DFL (and SIG_IGN, which the kernel does not honour for a
 * fault) is restored and the faulting access runs again, which kills the
 * process as it would have without xalloc (a signal sent with kill() is
 * raised again instead). A program that installs its own handler after
 * xalloc's replaces it: the pool's faults are then its to explain.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <ucontext.h>

#include "xalloc/internal/guard.h"

static struct sigaction guard_prev_segv, guard_prev_bus;
static uintptr_t guard_last_fault; /* reported once, even if the access runs again */
static __thread bool guard_in_report __attribute__((tls_model("initial-exec")));

/* Leading frames of xalloc's own code: in xalloc's object and named by no
 * exported symbol (the entry points, malloc, calloc, ..., are named and
 * kept). */
static unsigned guard_trim(void *const *frames, unsigned n) {
  Dl_info self, d;
  memset(&self, 0, sizeof(self));
  if (dladdr((const void *)guard_alloc, &self) == 0) return 0;
  unsigned i = 0;
  for (; i < n; i++) {
    memset(&d, 0, sizeof(d));
    if (dladdr((const char *)frames[i] - 1, &d) == 0 || d.dli_fbase != self.dli_fbase || d.dli_sname != NULL)
      break;
  }
  return i < n ? i : 0;
}

static void guard_write_stack(void *const *frames, unsigned n) {
  if (n == 0) {
    util_write("    (no stack)\n");
    return;
  }
  unsigned skip = guard_trim(frames, n);
  stack_write(2, frames + skip, n - skip);
}

/* The block a fault at addr is about: the slot holding addr, or, in a
 * guard page, the nearer of the blocks on either side. */
static const guard_slot_t *guard_pick(uintptr_t addr) {
  long before, after;
  long i = guard_slot_of(addr, &before, &after);
  if (i >= 0) return &guard_slots[i];
  const guard_slot_t *b = before >= 0 && guard_slots[before].ptr != 0 ? &guard_slots[before] : NULL;
  const guard_slot_t *a = after >= 0 && guard_slots[after].ptr != 0 ? &guard_slots[after] : NULL;
  if (b == NULL || a == NULL) return b != NULL ? b : a;
  size_t db = addr - (b->ptr + b->size), da = a->ptr - addr;
  return db <= da ? b : a;
}

static void guard_report(uintptr_t addr, void *ctx) {
  const char *access = "access";
#if defined(__x86_64__)
  const ucontext_t *uc = ctx;
  access = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0 ? "write" : "read";
#else
  (void)ctx;
#endif
  char line[384];
  const guard_slot_t *s = guard_pick(addr);
  __atomic_fetch_add(&guard_nfaults, 1, __ATOMIC_RELAXED);
  if (s == NULL || s->ptr == 0) {
    util_format(line, sizeof(line), "xalloc: wild-access: %s of %p in the guarded pool, no block nearby\n", access,
                (void *)addr);
    util_write(line);
    return;
  }
  uint8_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
  bool freed = st != GUARD_LIVE;
  uintptr_t start = s->ptr, end = s->ptr + s->size;
  const char *kind, *where;
  size_t off;
  if (addr >= start && addr < end) {
    kind = freed ? "use-after-free" : "invalid-access";
    where = "inside";
    off = addr - start;
  } else if (addr >= end) {
    kind = freed ? "use-after-free" : "heap-buffer-overflow";
    where = "right of";
    off = addr - end;
  } else {
    kind = freed ? "use-after-free" : "heap-buffer-underflow";
    where = "left of";
    off = start - addr;
  }
  util_format(line, sizeof(line), "xalloc: %s: %s of %p %zu bytes %s a %s%zu-byte block at %p, allocated by thread %u at:\n",
              kind, access, (void *)addr, off, where, freed ? "freed " : "", s->size, (void *)start, s->alloc_tid);
  util_write(line);
  guard_write_stack(s->alloc_frames, s->nalloc);
  if (freed) {
    util_format(line, sizeof(line), "xalloc: the block was freed by thread %u at:\n", s->free_tid);
    util_write(line);
    guard_write_stack(s->free_frames, s->nfree);
  }
}

void guard_report_slack(const guard_slot_t *s, uintptr_t bad) {
  char line[384];
  __atomic_fetch_add(&guard_nfaults, 1, __ATOMIC_RELAXED);
  util_format(line, sizeof(line),
              "xalloc: heap-buffer-overflow: write of %p %zu bytes right of a %zu-byte block at %p, found at its free "
              "(the alignment's slack was written over), allocated by thread %u at:\n",
              (void *)bad, (size_t)(bad - (s->ptr + s->size)), s->size, (void *)s->ptr, s->alloc_tid);
  util_write(line);
  guard_write_stack(s->alloc_frames, s->nalloc);
  util_format(line, sizeof(line), "xalloc: the block was freed by thread %u at:\n", s->free_tid);
  util_write(line);
  guard_write_stack(s->free_frames, s->nfree);
}

/* The disposition guard_handler replaced. */
static void guard_chain(int sig, siginfo_t *info, void *ctx) {
  struct sigaction *prev = sig == SIGSEGV ? &guard_prev_segv : &guard_prev_bus;
  struct sigaction act = *prev;
  bool user = info == NULL || info->si_code <= 0; /* sent by kill(), sigqueue() ... */
  bool is_default = (act.sa_flags & SA_SIGINFO) == 0 && act.sa_handler == SIG_DFL;
  bool is_ignore = (act.sa_flags & SA_SIGINFO) == 0 && act.sa_handler == SIG_IGN;
  if (is_ignore && user) return;
  if (is_default || is_ignore) {
    /* Default again, and the access runs again: the process dies of it
     * as without xalloc (core dump included). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (user) raise(sig);
    return;
  }
  if (act.sa_flags & SA_RESETHAND) {
    memset(prev, 0, sizeof(*prev));
    prev->sa_handler = SIG_DFL;
  }
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &act.sa_mask, &old);
  if (act.sa_flags & SA_SIGINFO)
    act.sa_sigaction(sig, info, ctx);
  else
    act.sa_handler(sig);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void guard_handler(int sig, siginfo_t *info, void *ctx) {
  int err = errno;
  uintptr_t addr = (uintptr_t)info->si_addr;
  if (info->si_code > 0 && guard_contains((const void *)addr) && !guard_in_report &&
      __atomic_exchange_n(&guard_last_fault, addr, __ATOMIC_ACQ_REL) != addr) {
    guard_in_report = true;
    guard_report(addr, ctx);
    guard_in_report = false;
  }
  errno = err;
  guard_chain(sig, info, ctx);
}

bool guard_report_install(void) {
  struct sigaction act;
  memset(&act, 0, sizeof(act));
  act.sa_sigaction = guard_handler;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&act.sa_mask);
  bool bad = sigaction(SIGSEGV, &act, &guard_prev_segv) != 0;
  bad |= sigaction(SIGBUS, &act, &guard_prev_bus) != 0;
  return bad;
}
