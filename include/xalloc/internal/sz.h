/*
 * sz: size classes. Four classes per doubling -- 8, 16, 32, 48, 64, 80,
 * 96, 112, 128, 160, 192, 224, 256, 320, ... -- up to 2^62. A class is
 *   small  (index < sz_nbins):       up to 14 KiB, regions of runs;
 *   large  (index < sz_nlarge_end):  page multiples below the chunk size,
 *                                    page runs inside arena chunks;
 *   huge   (the rest):               one chunk and more, straight from the
 *                                    arena's chunk trees.
 * Requests up to SZ_LOOKUP_MAX map to a class through a table; the rest by
 * arithmetic on the leading bit (no division anywhere).
 */
#ifndef XALLOC_INTERNAL_SZ_H
#define XALLOC_INTERNAL_SZ_H

#include "xalloc/internal/util.h"

#define SZ_NCLASSES 229 /* 5 + (62 - 6) * 4 */
#define SZ_LOOKUP_MAX 4096
#define SZ_MAX ((size_t)1 << 62)
#define SZ_SMALL_MAX ((size_t)14336)
#define SZ_NBINS 36
/* Classes the free fast path knows from the page map: the small ones and
 * the large ones a thread cache may hold (up to 1 MiB, tcache.h). */
#define SZ_NFAST 61
#define SZ_MAX_NREGS ((PAGE / 8))
#define SZ_BITMAP_WORDS ((SZ_MAX_NREGS + 63) / 64)

typedef struct {
  uint32_t reg_size;
  uint32_t run_pages;   /* run size in pages */
  uint32_t nregs;       /* regions per run */
  uint32_t nwords;      /* bitmap words */
  uint64_t div_magic;   /* off / reg_size == (off * div_magic) >> 32 for multiples */
} sz_bin_info_t;

extern size_t sz_index2size_tab[SZ_NCLASSES];
extern uint8_t sz_size2index_tab[(SZ_LOOKUP_MAX >> 3) + 1];
extern sz_bin_info_t sz_bin_info[SZ_NBINS];
/* off / size == (off * sz_div_magic[i]) >> 32 for multiples off of the
 * class size (small classes: sz_bin_info[i].div_magic); for a large class,
 * only off 0 passes the region-start test below a page. */
extern uint32_t sz_div_magic[SZ_NFAST];
extern unsigned sz_nlarge_end; /* first huge index */
extern size_t sz_large_max;    /* largest large class */
extern size_t sz_chunksize;
extern unsigned sz_lg_chunk;
/*
 * Requests above sz_page_min get their size rounded up to a page, not to
 * a class (SIZE_MAX: never). Set at initialization when commit accounting
 * is strict (pages_strict): there every byte of a block's pages is charged
 * against the commit limit, and a class can be 25 % larger than the
 * request (a 100 KiB block in the 112 KiB class). It is at least the
 * largest class the thread caches hold, so cached blocks keep their
 * classes.
 */
extern size_t sz_page_min;

/* Set the chunk size (and with it the large/huge boundary); true if the
 * chunk size is out of range. */
bool sz_boot(unsigned lg_chunk);

static inline unsigned sz_size2index_compute(size_t size) {
  if (size <= 8) return 0;
  if (size <= 64) return (unsigned)((size + 15) >> 4);  /* 16,32,48,64 -> 1..4 */
  unsigned lg = util_lg_floor(size - 1);                 /* size in (2^lg, 2^(lg+1)] */
  unsigned k = (unsigned)(((size - 1 - ((size_t)1 << lg)) >> (lg - 2)) + 1);
  return 5 + (lg - 6) * 4 + k - 1;
}

/* Class index of size <= SZ_LOOKUP_MAX, from the table. The fast paths
 * read it before they know the allocator is initialized (a thread that
 * comes first finds its cache empty and initializes on the slow path): a
 * relaxed atomic read, which is the same instruction as a plain one. */
static inline unsigned sz_lookup(size_t size) {
  return __atomic_load_n(&sz_size2index_tab[(size + 7) >> 3], __ATOMIC_RELAXED);
}

/* Class index of size (size <= SZ_MAX). */
static inline unsigned sz_size2index(size_t size) {
  if (likely(size <= SZ_LOOKUP_MAX)) return sz_lookup(size);
  return sz_size2index_compute(size);
}
static inline size_t sz_index2size(unsigned ind) { return sz_index2size_tab[ind]; }
/* Usable size for a request of size bytes; 0 if too large. */
static inline size_t sz_s2u(size_t size) {
  if (unlikely(size > SZ_MAX)) return 0;
  if (unlikely(size > sz_page_min)) return PAGE_CEILING(size);
  return sz_index2size(sz_size2index(size));
}
/* Usable size for size bytes at alignment (a power of two); 0 if too large. */
size_t sz_sa2u(size_t size, size_t alignment);
static inline size_t sz_chunk_ceiling(size_t s) {
  return (s + sz_chunksize - 1) & ~(sz_chunksize - 1);
}
#endif
