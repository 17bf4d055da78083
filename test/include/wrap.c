/* Recording and failing wrappers for the unit tests (see wrap.h). */
#include "wrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
int __real_mprotect(void *addr, size_t len, int prot);

unsigned long wrap_nmmap, wrap_nmunmap, wrap_nmadvise, wrap_nmprotect;
unsigned long wrap_nmmap_none, wrap_nmmap_fixed;
wrap_range_t wrap_mmap_log[WRAP_LOG];
static unsigned wrap_log_pos;
unsigned long wrap_fail_mmap, wrap_fail_mmap_after;
unsigned long wrap_fail_munmap, wrap_fail_munmap_after;
unsigned long wrap_fail_madvise, wrap_fail_mprotect;

void wrap_reset(void) {
  wrap_fail_mmap = wrap_fail_mmap_after = 0;
  wrap_fail_munmap = wrap_fail_munmap_after = 0;
  wrap_fail_madvise = 0;
  wrap_fail_mprotect = 0;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  __atomic_fetch_add(&wrap_nmmap, 1, __ATOMIC_RELAXED);
  if (prot == PROT_NONE) __atomic_fetch_add(&wrap_nmmap_none, 1, __ATOMIC_RELAXED);
  if (flags & MAP_FIXED) __atomic_fetch_add(&wrap_nmmap_fixed, 1, __ATOMIC_RELAXED);
  if (wrap_fail_mmap > 0) {
    if (wrap_fail_mmap_after > 0) {
      wrap_fail_mmap_after--;
    } else {
      wrap_fail_mmap--;
      errno = ENOMEM;
      return MAP_FAILED;
    }
  }
  void *p = __real_mmap(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED) {
    unsigned i = __atomic_fetch_add(&wrap_log_pos, 1, __ATOMIC_RELAXED) % WRAP_LOG;
    wrap_mmap_log[i].addr = p;
    wrap_mmap_log[i].size = len;
  }
  return p;
}

int __wrap_munmap(void *addr, size_t len) {
  __atomic_fetch_add(&wrap_nmunmap, 1, __ATOMIC_RELAXED);
  if (wrap_fail_munmap > 0) {
    if (wrap_fail_munmap_after > 0) {
      wrap_fail_munmap_after--;
    } else {
      wrap_fail_munmap--;
      errno = ENOMEM;
      return -1;
    }
  }
  return __real_munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice) {
  __atomic_fetch_add(&wrap_nmadvise, 1, __ATOMIC_RELAXED);
  if (wrap_fail_madvise > 0) {
    wrap_fail_madvise--;
    errno = ENOMEM;
    return -1;
  }
  return __real_madvise(addr, len, advice);
}

int __wrap_mprotect(void *addr, size_t len, int prot) {
  __atomic_fetch_add(&wrap_nmprotect, 1, __ATOMIC_RELAXED);
  if (wrap_fail_mprotect > 0) {
    wrap_fail_mprotect--;
    errno = ENOMEM; /* as the commit limit refuses a commit */
    return -1;
  }
  return __real_mprotect(addr, len, prot);
}

/* Walk /proc/self/maps without stdio buffering surprises: read it whole
 * into a static buffer. */
static char maps_buf[1 << 24]; /* room for many thousands of mappings */

const char *maps_read(void) {
  int fd = open("/proc/self/maps", O_RDONLY);
  maps_buf[0] = '\0';
  if (fd < 0) return maps_buf;
  size_t n = 0;
  ssize_t r;
  while (n < sizeof(maps_buf) - 1 && (r = read(fd, maps_buf + n, sizeof(maps_buf) - 1 - n)) > 0) n += (size_t)r;
  close(fd);
  maps_buf[n] = '\0';
  return maps_buf;
}

/* Bytes of [a, a+size) covered by mappings. */
size_t maps_covered(uintptr_t a, size_t size) {
  size_t covered = 0;
  const char *line = maps_read();
  while (*line) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
      uintptr_t s = lo > a ? lo : a, e = hi < a + size ? hi : a + size;
      if (s < e) covered += e - s;
    }
    const char *nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return covered;
}

int maps_all_mapped(uintptr_t a, size_t size) { return maps_covered(a, size) == size; }
int maps_any_mapped(uintptr_t a, size_t size) { return maps_covered(a, size) != 0; }
