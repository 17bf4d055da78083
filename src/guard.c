/* guard: the guarded pool (guard.h). */
#include "xalloc/internal/guard.h"
#include "xalloc/internal/opts.h"

bool guard_on;
size_t guard_max;

bool guard_boot(void) {
  guard_max = opt_guard_max;
  guard_on = false; /* the pool is not built yet */
  return false;
}

void *guard_alloc(size_t usize, size_t alignment, bool zero) {
  (void)usize;
  (void)alignment;
  (void)zero;
  return NULL;
}
