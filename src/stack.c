/* stack: call stacks captured inside malloc (see stack.h). */
#include <dlfcn.h>
#include <execinfo.h>

#include "xalloc/internal/stack.h"

static __thread bool stack_in_capture __attribute__((tls_model("initial-exec")));

bool stack_busy(void) { return stack_in_capture; }

XA_NOINLINE unsigned stack_capture(void **frames, unsigned max, unsigned skip) {
  if (stack_in_capture || max == 0) return 0;
  stack_in_capture = true;
  void *buf[STACK_DEPTH_MAX + 16];
  unsigned want = max + skip + 1; /* + this frame */
  if (want > sizeof(buf) / sizeof(buf[0])) want = sizeof(buf) / sizeof(buf[0]);
  int n = backtrace(buf, (int)want);
  stack_in_capture = false;
  unsigned got = 0;
  for (int i = (int)skip + 1; i < n && got < max; i++) frames[got++] = buf[i];
  return got;
}

void stack_boot(void) {
  void *frames[4];
  (void)stack_capture(frames, 4, 0);
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
