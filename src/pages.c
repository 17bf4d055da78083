/*
 * pages: every mmap, munmap, madvise and mprotect in xalloc is in this file.
 *
 * The aligned mapping (the third seed story): a first mmap of exactly size
 * bytes is kept if it happens to be aligned. Otherwise it is released and
 * size + alignment - PAGE bytes are mapped, which must contain an aligned
 * range of size bytes; the lead and the trail around it are unmapped, and
 * the function returns that range and nothing else. If trimming fails, the
 * untrimmed piece is purged and counted as stranded (mapped, not owned by
 * any caller), so pages_mapped() still equals what /proc/self/maps shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"

size_t pages_mapped_bytes;
static size_t pages_stranded_bytes;
static uint64_t pages_nmaps, pages_nunmaps, pages_nfailed, pages_nunmap_kept;
static uint64_t pages_npurge_lazy, pages_npurge_forced, pages_nprotect;
static bool pages_unmap_reported;
static uint64_t pages_ncommit, pages_ndecommit, pages_ncommit_failed;
bool pages_strict;
size_t pages_hole_budget = SIZE_MAX;

/* The number in a /proc/sys file, read with no allocation (this runs
 * inside malloc's initialization: open, read, close; no stdio). -1 if it
 * cannot be read. */
static long pages_read_sysctl(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  long v = 0;
  ssize_t i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
  return i == 0 ? -1 : v;
}

bool pages_as_limited(void) {
  static int limited = -1; /* not asked yet */
  int v = __atomic_load_n(&limited, __ATOMIC_RELAXED);
  if (v < 0) {
    struct rlimit rl;
    v = getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY;
    __atomic_store_n(&limited, v, __ATOMIC_RELAXED);
  }
  return v != 0;
}

void pages_boot(void) {
  bool on = opt_commit == COMMIT_ON;
  if (opt_commit == COMMIT_AUTO) on = pages_read_sysctl("/proc/sys/vm/overcommit_memory") == 2;
  if (on) {
    long maps = pages_read_sysctl("/proc/sys/vm/max_map_count");
    if (maps <= 0) maps = 65530;
    pages_hole_budget = (size_t)maps / 8 < 64 ? 64 : (size_t)maps / 8;
  }
  pages_strict = on;
}

#define PAGES_ADD(v, n) __atomic_fetch_add(&(v), (n), __ATOMIC_RELAXED)
#define PAGES_SUB(v, n) __atomic_fetch_sub(&(v), (n), __ATOMIC_RELAXED)

static void *pages_mmap_prot(size_t size, int prot) {
  void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    PAGES_ADD(pages_nfailed, 1);
    errno = ENOMEM;
    return NULL;
  }
  PAGES_ADD(pages_nmaps, 1);
  PAGES_ADD(pages_mapped_bytes, size);
  return p;
}

static void *pages_mmap(size_t size) { return pages_mmap_prot(size, PROT_READ | PROT_WRITE); }

void *pages_map(size_t size) {
  xassert(size != 0 && (size & PAGE_MASK) == 0);
  return pages_mmap(size);
}

bool pages_unmap(void *addr, size_t size) {
  xassert(((uintptr_t)addr & PAGE_MASK) == 0 && (size & PAGE_MASK) == 0);
  if (size == 0) return false;
  if (munmap(addr, size) != 0) {
    int err = errno;
    PAGES_ADD(pages_nfailed, 1);
    /* Keep the range: give its pages back, count it as stranded. */
    madvise(addr, size, MADV_DONTNEED);
    PAGES_ADD(pages_stranded_bytes, size);
    errno = err;
    return true;
  }
  PAGES_ADD(pages_nunmaps, 1);
  PAGES_SUB(pages_mapped_bytes, size);
  return false;
}

int pages_unmap_or_keep(void *addr, size_t size) {
  xassert(((uintptr_t)addr & PAGE_MASK) == 0 && (size & PAGE_MASK) == 0);
  if (size == 0) return PAGES_UNMAPPED;
  if (munmap(addr, size) == 0) {
    PAGES_ADD(pages_nunmaps, 1);
    PAGES_SUB(pages_mapped_bytes, size);
    return PAGES_UNMAPPED;
  }
  PAGES_ADD(pages_nfailed, 1);
  PAGES_ADD(pages_nunmap_kept, 1);
  /* Only a purge that worked makes the range read as zero. */
  bool purged = !pages_purge_forced(addr, size);
  if (!__atomic_exchange_n(&pages_unmap_reported, true, __ATOMIC_RELAXED))
    util_write("xalloc: munmap failed (vm.max_map_count reached?); freed memory is kept mapped, "
               "purged, and reused (reported once)\n");
  errno = ENOMEM;
  return purged ? PAGES_KEPT_CLEAN : PAGES_KEPT;
}

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
/*
 * The over-mapping failed under a finite RLIMIT_AS (where size +
 * alignment does not fit but size does). The first try landed at p, in a
 * gap the kernel chose: try the aligned addresses just below and just
 * above it, exactly size bytes, without replacing anything (a kernel that
 * does not know MAP_FIXED_NOREPLACE takes the address as a hint: a
 * mapping elsewhere is given back).
 */
static void *pages_map_at_hint(void *p, size_t size, size_t alignment, int prot) {
  uintptr_t hints[2] = {(uintptr_t)ALIGNMENT_ADDR2BASE(p, alignment),
                        ALIGNMENT_CEILING((uintptr_t)p, alignment)};
  for (unsigned i = 0; i < 2; i++) {
    if (hints[i] == 0 || hints[i] + size < hints[i]) continue;
    void *q = mmap((void *)hints[i], size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (q == MAP_FAILED) continue;
    if ((uintptr_t)q != hints[i]) {
      munmap(q, size);
      continue;
    }
    PAGES_ADD(pages_nmaps, 1);
    PAGES_ADD(pages_mapped_bytes, size);
    return q;
  }
  PAGES_ADD(pages_nfailed, 1);
  errno = ENOMEM;
  return NULL;
}

static void *pages_map_aligned_prot(size_t size, size_t alignment, int prot) {
  xassert(util_is_pow2(alignment) && alignment >= PAGE);
  xassert(size != 0 && (size & PAGE_MASK) == 0);
  void *p = pages_mmap_prot(size, prot);
  if (p == NULL || ALIGNMENT_ADDR2OFFSET(p, alignment) == 0) return p;
  /* Not aligned: release it (ignoring a failure, which strands it) and
   * over-map. */
  pages_unmap(p, size);
  size_t alloc_size = size + alignment - PAGE;
  if (alloc_size < size) {
    errno = ENOMEM;
    return NULL;
  }
  char *raw = pages_mmap_prot(alloc_size, prot);
  if (raw == NULL) return pages_as_limited() ? pages_map_at_hint(p, size, alignment, prot) : NULL;
  char *ret = (char *)ALIGNMENT_CEILING((uintptr_t)raw, alignment);
  size_t lead = (size_t)(ret - raw);
  size_t trail = alloc_size - lead - size;
  /* A failed trim strands that piece (accounted in pages_unmap). The
   * returned range is [ret, ret+size) either way. */
  if (lead != 0) pages_unmap(raw, lead);
  if (trail != 0) pages_unmap(ret + size, trail);
  return ret;
}

void *pages_map_aligned(size_t size, size_t alignment) {
  return pages_map_aligned_prot(size, alignment, PROT_READ | PROT_WRITE);
}

void *pages_reserve_aligned(size_t size, size_t alignment) {
  return pages_map_aligned_prot(size, alignment, PROT_NONE);
}

bool pages_commit(void *addr, size_t size) {
  xassert(((uintptr_t)addr & PAGE_MASK) == 0 && (size & PAGE_MASK) == 0);
  if (size == 0) return false;
  if (mprotect(addr, size, PROT_READ | PROT_WRITE) == 0) {
    PAGES_ADD(pages_ncommit, 1);
    return false;
  }
  PAGES_ADD(pages_ncommit_failed, 1);
  /* mprotect may have changed some of the range's mappings before it
   * failed: make all of it decommitted again (best effort). */
  pages_decommit(addr, size);
  errno = ENOMEM;
  return true;
}

/* Replace [addr, addr+size) by a fresh PROT_NONE mapping (its pages
 * discarded) with extra mmap flags; true on failure (the range may then be
 * unmapped). */
static bool pages_remap_none(void *addr, size_t size, int flags) {
  xassert(((uintptr_t)addr & PAGE_MASK) == 0 && (size & PAGE_MASK) == 0);
  if (mmap(addr, size, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0) == MAP_FAILED) {
    PAGES_ADD(pages_nfailed, 1);
    return true;
  }
  return false;
}

bool pages_decommit(void *addr, size_t size) {
  if (size == 0) return false;
  if (pages_remap_none(addr, size, 0)) {
    errno = ENOMEM;
    return true;
  }
  PAGES_ADD(pages_ndecommit, 1);
  /* A new mapping: the thp hint of the old one is gone. */
  pages_set_thp(addr, size);
  return false;
}

bool pages_discard_inaccessible(void *addr, size_t size) {
  /* The flags of pages_reserve's mapping: the new one merges back into
   * its neighbours (no mapping added). */
  if (pages_remap_none(addr, size, MAP_NORESERVE)) return true;
  PAGES_ADD(pages_nprotect, 1);
  return false;
}

bool pages_purge_lazy(void *addr, size_t size) {
#ifdef MADV_FREE
  if (madvise(addr, size, MADV_FREE) == 0) {
    PAGES_ADD(pages_npurge_lazy, 1);
    return false;
  }
#endif
  return pages_purge_forced(addr, size);
}

bool pages_purge_forced(void *addr, size_t size) {
  if (madvise(addr, size, MADV_DONTNEED) == 0) {
    PAGES_ADD(pages_npurge_forced, 1);
    return false;
  }
  PAGES_ADD(pages_nfailed, 1);
  return true;
}

bool pages_huge(void *addr, size_t size) {
#ifdef MADV_HUGEPAGE
  return madvise(addr, size, MADV_HUGEPAGE) != 0;
#else
  (void)addr, (void)size;
  return true;
#endif
}

bool pages_nohuge(void *addr, size_t size) {
#ifdef MADV_NOHUGEPAGE
  return madvise(addr, size, MADV_NOHUGEPAGE) != 0;
#else
  (void)addr, (void)size;
  return true;
#endif
}

void pages_set_thp(void *addr, size_t size) {
  if (opt_thp == THP_ALWAYS)
    pages_huge(addr, size);
  else if (opt_thp == THP_NEVER)
    pages_nohuge(addr, size);
}

void *pages_reserve(size_t size) {
  xassert(size != 0 && (size & PAGE_MASK) == 0);
  void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    PAGES_ADD(pages_nfailed, 1);
    errno = ENOMEM;
    return NULL;
  }
  PAGES_ADD(pages_nmaps, 1);
  PAGES_ADD(pages_mapped_bytes, size);
  return p;
}

bool pages_protect(void *addr, size_t size, bool access) {
  xassert(((uintptr_t)addr & PAGE_MASK) == 0 && (size & PAGE_MASK) == 0);
  if (mprotect(addr, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0) {
    PAGES_ADD(pages_nprotect, 1);
    return false;
  }
  PAGES_ADD(pages_nfailed, 1);
  return true;
}

void pages_stats_get(pages_stats_t *out) {
  out->mapped = __atomic_load_n(&pages_mapped_bytes, __ATOMIC_RELAXED);
  out->stranded = __atomic_load_n(&pages_stranded_bytes, __ATOMIC_RELAXED);
  out->nmaps = __atomic_load_n(&pages_nmaps, __ATOMIC_RELAXED);
  out->nunmaps = __atomic_load_n(&pages_nunmaps, __ATOMIC_RELAXED);
  out->nfailed = __atomic_load_n(&pages_nfailed, __ATOMIC_RELAXED);
  out->nunmap_kept = __atomic_load_n(&pages_nunmap_kept, __ATOMIC_RELAXED);
  out->npurge_lazy = __atomic_load_n(&pages_npurge_lazy, __ATOMIC_RELAXED);
  out->npurge_forced = __atomic_load_n(&pages_npurge_forced, __ATOMIC_RELAXED);
  out->ncommit = __atomic_load_n(&pages_ncommit, __ATOMIC_RELAXED);
  out->ndecommit = __atomic_load_n(&pages_ndecommit, __ATOMIC_RELAXED);
  out->ncommit_failed = __atomic_load_n(&pages_ncommit_failed, __ATOMIC_RELAXED);
  out->nprotect = __atomic_load_n(&pages_nprotect, __ATOMIC_RELAXED);
}
