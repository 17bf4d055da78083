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
#include <sys/mman.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"

size_t pages_mapped_bytes;
static size_t pages_stranded_bytes;
static uint64_t pages_nmaps, pages_nunmaps, pages_nfailed, pages_nunmap_kept;
static uint64_t pages_npurge_lazy, pages_npurge_forced, pages_nprotect;
static bool pages_unmap_reported;

#define PAGES_ADD(v, n) __atomic_fetch_add(&(v), (n), __ATOMIC_RELAXED)
#define PAGES_SUB(v, n) __atomic_fetch_sub(&(v), (n), __ATOMIC_RELAXED)

static void *pages_mmap(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    PAGES_ADD(pages_nfailed, 1);
    errno = ENOMEM;
    return NULL;
  }
  PAGES_ADD(pages_nmaps, 1);
  PAGES_ADD(pages_mapped_bytes, size);
  return p;
}

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

void *pages_map_aligned(size_t size, size_t alignment) {
  xassert(util_is_pow2(alignment) && alignment >= PAGE);
  xassert(size != 0 && (size & PAGE_MASK) == 0);
  void *p = pages_mmap(size);
  if (p == NULL || ALIGNMENT_ADDR2OFFSET(p, alignment) == 0) return p;
  /* Not aligned: release it (ignoring a failure, which strands it) and
   * over-map. */
  pages_unmap(p, size);
  size_t alloc_size = size + alignment - PAGE;
  if (alloc_size < size) {
    errno = ENOMEM;
    return NULL;
  }
  char *raw = pages_mmap(alloc_size);
  if (raw == NULL) return NULL;
  char *ret = (char *)ALIGNMENT_CEILING((uintptr_t)raw, alignment);
  size_t lead = (size_t)(ret - raw);
  size_t trail = alloc_size - lead - size;
  /* A failed trim strands that piece (accounted in pages_unmap). The
   * returned range is [ret, ret+size) either way. */
  if (lead != 0) pages_unmap(raw, lead);
  if (trail != 0) pages_unmap(ret + size, trail);
  return ret;
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
  out->nprotect = __atomic_load_n(&pages_nprotect, __ATOMIC_RELAXED);
}
