/* rtree: pointer -> chunk metadata, and the page words (see rtree.h). */
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/mutex.h"

rtree_t rtree_global;
rtree_pw_t rtree_pw_global;
static xmutex_t rtree_mtx = XMUTEX_INITIALIZER;

#define RTREE_LEAF_MASK (((uintptr_t)1 << RTREE_LEAF_BITS) - 1)

bool rtree_boot(unsigned lg_chunk) { return lg_chunk < RTREE_LG_GRAIN || lg_chunk >= RTREE_LG_VA; }

/* Returns the leaf for key, creating it; NULL on OOM. */
static void **rtree_leaf(uintptr_t key) {
  void ***slot = &rtree_global.root[key >> RTREE_LEAF_BITS];
  void **leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (leaf != NULL) return leaf;
  xmutex_lock(&rtree_mtx);
  leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (leaf == NULL) {
    leaf = base_alloc(sizeof(void *) << RTREE_LEAF_BITS);
    if (leaf != NULL) __atomic_store_n(slot, leaf, __ATOMIC_RELEASE);
  }
  xmutex_unlock(&rtree_mtx);
  return leaf;
}

/* The page words of grain key, created (zero) if needed; NULL on OOM. */
static uint64_t *rtree_pw_create(uintptr_t key) {
  uint64_t **slot = &rtree_pw_global.root[key >> RTREE_LEAF_BITS];
  uint64_t **leaf = (uint64_t **)__atomic_load_n(slot, __ATOMIC_ACQUIRE);
  uint64_t *words = leaf != NULL ? __atomic_load_n(&leaf[key & RTREE_LEAF_MASK], __ATOMIC_ACQUIRE) : NULL;
  if (words != NULL) return words;
  xmutex_lock(&rtree_mtx);
  leaf = (uint64_t **)__atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (leaf == NULL) {
    leaf = base_alloc(sizeof(uint64_t *) << RTREE_LEAF_BITS);
    if (leaf != NULL) {
      memset(leaf, 0, sizeof(uint64_t *) << RTREE_LEAF_BITS);
      __atomic_store_n(slot, (uint64_t *)leaf, __ATOMIC_RELEASE);
    }
  }
  if (leaf != NULL) {
    words = __atomic_load_n(&leaf[key & RTREE_LEAF_MASK], __ATOMIC_ACQUIRE);
    if (words == NULL) {
      words = base_alloc(RTREE_PW_PER_GRAIN * sizeof(uint64_t));
      if (words != NULL) {
        memset(words, 0, RTREE_PW_PER_GRAIN * sizeof(uint64_t));
        __atomic_store_n(&leaf[key & RTREE_LEAF_MASK], words, __ATOMIC_RELEASE);
      }
    }
  }
  xmutex_unlock(&rtree_mtx);
  return words;
}

void rtree_pw_set(uintptr_t addr, size_t npages, uint64_t word) {
  for (size_t i = 0; i < npages; i++, addr += PAGE) {
    uint64_t *words = rtree_pw_grain(addr);
    xassert(words != NULL);
    if (words != NULL) __atomic_store_n(&words[(addr >> LG_PAGE) & (RTREE_PW_PER_GRAIN - 1)], word, __ATOMIC_RELAXED);
  }
}

/* Map grain key (its leaf exists) to val. A grain whose record changes
 * from one to another (an arena chunk going away) is left with its page
 * words, if it has any, zero. */
static void rtree_store(uintptr_t key, void *val) {
  void **slot = &rtree_leaf(key)[key & RTREE_LEAF_MASK];
  void *old = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  uint64_t *words = old != NULL && old != val ? rtree_pw_grain(key << RTREE_LG_GRAIN) : NULL;
  if (words != NULL) {
    for (size_t i = 0; i < RTREE_PW_PER_GRAIN; i++) __atomic_store_n(&words[i], 0, __ATOMIC_RELAXED);
  }
  __atomic_store_n(slot, val, __ATOMIC_RELEASE);
}

static bool rtree_set_range_impl(uintptr_t addr, size_t size, void *val, bool pw);

bool rtree_set(uintptr_t addr, void *val) {
  return rtree_set_range_impl(addr & ~(((uintptr_t)1 << RTREE_LG_GRAIN) - 1), 1, val, false);
}
bool rtree_set_range(uintptr_t addr, size_t size, void *val) { return rtree_set_range_impl(addr, size, val, false); }
bool rtree_set_range_chunk(uintptr_t addr, size_t size, void *val) { return rtree_set_range_impl(addr, size, val, true); }

static bool rtree_set_range_impl(uintptr_t addr, size_t size, void *val, bool pw) {
  size_t grain = (size_t)1 << RTREE_LG_GRAIN;
  if (size == 0) return false;
  uintptr_t end = addr + size; /* exclusive */
  if (end < addr || ((end - 1) >> RTREE_LG_VA)) return true;
  uintptr_t first = addr & ~(uintptr_t)(grain - 1);
  /* Create every leaf (and page word array) first so that the stores
   * below cannot fail. */
  for (uintptr_t a = first; a < end; a += grain) {
    if (rtree_leaf(a >> RTREE_LG_GRAIN) == NULL) return true;
    if (pw && rtree_pw_create(a >> RTREE_LG_GRAIN) == NULL) return true;
  }
  for (uintptr_t a = first; a < end; a += grain) rtree_store(a >> RTREE_LG_GRAIN, val);
  return false;
}

void rtree_prefork(void) { xmutex_prefork(&rtree_mtx); }
void rtree_postfork_parent(void) { xmutex_postfork_parent(&rtree_mtx); }
void rtree_postfork_child(void) { xmutex_postfork_child(&rtree_mtx); }
