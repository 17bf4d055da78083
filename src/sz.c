/* sz: size class tables (see sz.h). */
#include "xalloc/internal/sz.h"

size_t sz_index2size_tab[SZ_NCLASSES];
uint8_t sz_size2index_tab[(SZ_LOOKUP_MAX >> 3) + 1];
sz_bin_info_t sz_bin_info[SZ_NBINS];
uint32_t sz_div_magic[SZ_NFAST];
unsigned sz_nlarge_end;
size_t sz_large_max;
size_t sz_chunksize;
unsigned sz_lg_chunk;
size_t sz_page_min = SIZE_MAX;

/* Smallest run (in pages) that holds regions of reg_size with no waste, or
 * failing that the one with the least waste, up to 16 pages. */
static uint32_t sz_run_pages(size_t reg_size) {
  uint32_t best = 1;
  size_t best_waste = PAGE;
  for (uint32_t p = 1; p <= 16; p++) {
    size_t run = (size_t)p << LG_PAGE;
    if (run / reg_size > SZ_MAX_NREGS) break;
    size_t waste = run % reg_size;
    if (waste == 0) return p;
    /* compare waste fractions: waste/run < best_waste/best_run */
    if (waste * ((size_t)best << LG_PAGE) < best_waste * run) {
      best = p;
      best_waste = waste;
    }
  }
  return best;
}

bool sz_boot(unsigned lg_chunk) {
  if (lg_chunk < LG_PAGE + 2 || lg_chunk > 30) return true;
  sz_lg_chunk = lg_chunk;
  sz_chunksize = (size_t)1 << lg_chunk;
  static const size_t first[5] = {8, 16, 32, 48, 64};
  unsigned i;
  for (i = 0; i < 5; i++) sz_index2size_tab[i] = first[i];
  for (unsigned lg = 6; i < SZ_NCLASSES; lg++) {
    for (unsigned k = 1; k <= 4 && i < SZ_NCLASSES; k++)
      sz_index2size_tab[i++] = ((size_t)1 << lg) + ((size_t)k << (lg - 2));
  }
  for (size_t s = 0; s <= SZ_LOOKUP_MAX; s += 8)
    __atomic_store_n(&sz_size2index_tab[s >> 3], (uint8_t)sz_size2index_compute(s), __ATOMIC_RELAXED);
  for (i = 0; i < SZ_NBINS; i++) {
    sz_bin_info_t *b = &sz_bin_info[i];
    b->reg_size = (uint32_t)sz_index2size_tab[i];
    b->run_pages = sz_run_pages(b->reg_size);
    b->nregs = (uint32_t)(((size_t)b->run_pages << LG_PAGE) / b->reg_size);
    b->nwords = (b->nregs + 63) / 64;
    b->div_magic = (((uint64_t)1 << 32) + b->reg_size - 1) / b->reg_size;
    sz_div_magic[i] = (uint32_t)b->div_magic;
  }
  for (; i < SZ_NFAST; i++)
    sz_div_magic[i] = (uint32_t)((((uint64_t)1 << 32) + sz_index2size_tab[i] - 1) / sz_index2size_tab[i]);
  if (sz_index2size_tab[SZ_NBINS - 1] != SZ_SMALL_MAX) return true;
  /* Large classes: page multiples strictly below the chunk size. */
  for (i = SZ_NBINS; i < SZ_NCLASSES && sz_index2size_tab[i] < sz_chunksize; i++)
    ;
  sz_nlarge_end = i;
  sz_large_max = sz_index2size_tab[i - 1];
  return false;
}

size_t sz_sa2u(size_t size, size_t alignment) {
  if (size == 0) size = 1;
  if (alignment <= QUANTUM || (alignment <= PAGE && size <= SZ_SMALL_MAX)) {
    /* A small class whose size is a multiple of the alignment has aligned
     * regions (runs are page aligned). */
    if (size > SZ_MAX) return 0;
    unsigned ind = sz_size2index(size);
    while (ind < SZ_NBINS && (sz_index2size(ind) & (alignment - 1)) != 0) ind++;
    if (ind < SZ_NBINS || alignment <= QUANTUM) return sz_index2size(ind);
  }
  /* Large or huge: page multiples, aligned by placement. */
  if (alignment > SZ_MAX || size > SZ_MAX - alignment) return 0;
  size_t usize = sz_s2u(size <= SZ_SMALL_MAX ? SZ_SMALL_MAX + 1 : size);
  if (usize == 0) return 0;
  /* A large run at a big alignment would need too much slack: go huge. */
  if (usize <= sz_large_max && alignment > PAGE && usize + alignment - PAGE > sz_large_max)
    usize = sz_chunksize;
  return usize;
}
