/* stack: call stacks captured inside malloc (see stack.h). */
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

#include "xalloc/internal/stack.h"
#include "xalloc/internal/unwind.h"

static __thread bool stack_in_capture __attribute__((tls_model("initial-exec")));
uint64_t stack_nbacktrace;

bool stack_busy(void) { return stack_in_capture; }

XA_NOINLINE unsigned stack_capture(void **frames, unsigned max, unsigned skip) {
  if (stack_in_capture || max == 0) return 0;
  stack_in_capture = true;
  /* The frame-size cache first (unwind.h), else the full unwinder
   * (xalloc's own on x86-64, cfi.h; elsewhere libgcc's), which teaches
   * the cache, else backtrace(3). */
  uintptr_t cfa = (uintptr_t)__builtin_dwarf_cfa();
  int got = unwind_fast(cfa, frames, max, skip);
  if (got < 0) got = unwind_full(cfa, frames, max, skip);
  if (got < 0) {
    void *buf[STACK_DEPTH_MAX + 16];
    unsigned want = max + skip + 1; /* + this frame */
    if (want > sizeof(buf) / sizeof(buf[0])) want = sizeof(buf) / sizeof(buf[0]);
    __atomic_fetch_add(&stack_nbacktrace, 1, __ATOMIC_RELAXED);
    int n = backtrace(buf, (int)want);
    got = 0;
    for (int i = (int)skip + 1; i < n && (unsigned)got < max; i++) frames[got++] = buf[i];
  }
  stack_in_capture = false;
  return (unsigned)got;
}

/* The executable segments of xalloc's own shared object (none when
 * linked into the program). */
#define STACK_OWN_MAX 4
static uintptr_t stack_own_lo[STACK_OWN_MAX], stack_own_hi[STACK_OWN_MAX];
static unsigned stack_own_n;

static int stack_own_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t self = (uintptr_t)arg;
  unsigned n = 0;
  uintptr_t lo[STACK_OWN_MAX], hi[STACK_OWN_MAX];
  bool mine = false;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (self >= a && self < b) mine = true;
    if (n < STACK_OWN_MAX) {
      lo[n] = a;
      hi[n] = b;
      n++;
    }
  }
  if (!mine) return 0;
  /* The program itself (the first object, named ""): xalloc is linked
   * in; its frames are the program's. */
  if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0') return 1;
  for (unsigned i = 0; i < n; i++) {
    stack_own_lo[i] = lo[i];
    stack_own_hi[i] = hi[i];
  }
  __atomic_store_n(&stack_own_n, n, __ATOMIC_RELEASE);
  return 1;
}

void stack_boot(void) {
  void *frames[4];
  /* Where xalloc's own unwinder works this loads nothing; elsewhere
   * backtrace(3) loads libgcc_s, which unwind_boot then takes. */
  (void)stack_capture(frames, 4, 0);
  unwind_boot();
  dl_iterate_phdr(stack_own_cb, (void *)(uintptr_t)&stack_capture);
}

static bool stack_own(uintptr_t pc) {
  unsigned n = __atomic_load_n(&stack_own_n, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++)
    if (pc >= stack_own_lo[i] && pc < stack_own_hi[i]) return true;
  return false;
}

XA_NOINLINE unsigned stack_capture_caller(void **frames, unsigned max) {
  void *buf[STACK_DEPTH_MAX + 16];
  if (max > STACK_DEPTH_MAX) max = STACK_DEPTH_MAX;
  unsigned n = stack_capture(buf, max + 16, 0);
  unsigned i = 0;
  while (i < n && stack_own((uintptr_t)buf[i])) i++;
  unsigned got = 0;
  for (; i < n && got < max; i++) frames[got++] = buf[i];
  return got;
}

size_t stack_format_frame(char *buf, size_t size, const void *pc) {
  Dl_info info;
  const char *obj = NULL;
  size_t n;
  memset(&info, 0, sizeof(info));
  /* A return address points after the call: look up pc - 1, so that a
   * call that ends a function is named for that function. */
  if (dladdr((const char *)pc - 1, &info) != 0) obj = info.dli_fname;
  if (obj != NULL) {
    const char *slash = strrchr(obj, '/');
    if (slash != NULL) obj = slash + 1;
  }
  if (info.dli_sname != NULL && info.dli_saddr != NULL)
    n = util_format(buf, size, "%p %s+0x%zx (%s)", pc, info.dli_sname,
                    (size_t)((const char *)pc - (const char *)info.dli_saddr), obj != NULL ? obj : "?");
  else if (obj != NULL && info.dli_fbase != NULL)
    n = util_format(buf, size, "%p (%s+0x%zx)", pc, obj, (size_t)((const char *)pc - (const char *)info.dli_fbase));
  else
    n = util_format(buf, size, "%p", pc);
  return n < size ? n : size - 1;
}

void stack_write(int fd, void *const *frames, unsigned n) {
  char line[512];
  for (unsigned i = 0; i < n; i++) {
    size_t k = util_format(line, sizeof(line), "    #%u ", i);
    k += stack_format_frame(line + k, sizeof(line) - k, frames[i]);
    if (k > sizeof(line) - 2) k = sizeof(line) - 2;
    line[k] = '\n';
    line[k + 1] = '\0';
    util_write_fd(fd, line);
  }
}
