/* rtree: pointer -> chunk metadata (see rtree.h). */
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/mutex.h"

rtree_t rtree_global;
static xmutex_t rtree_mtx = XMUTEX_INITIALIZER;

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

bool rtree_set(uintptr_t addr, void *val) {
  if (addr >> RTREE_LG_VA) return true;
  uintptr_t key = addr >> RTREE_LG_GRAIN;
  void **leaf = rtree_leaf(key);
  if (leaf == NULL) return true;
  __atomic_store_n(&leaf[key & (((uintptr_t)1 << RTREE_LEAF_BITS) - 1)], val, __ATOMIC_RELEASE);
  return false;
}

bool rtree_set_range(uintptr_t addr, size_t size, void *val) {
  size_t grain = (size_t)1 << RTREE_LG_GRAIN;
  if (size == 0) return false;
  uintptr_t end = addr + size; /* exclusive */
  if (end < addr || ((end - 1) >> RTREE_LG_VA)) return true;
  uintptr_t first = addr & ~(uintptr_t)(grain - 1);
  /* Create every leaf first so that the stores below cannot fail. */
  for (uintptr_t a = first; a < end; a += grain)
    if (rtree_leaf(a >> RTREE_LG_GRAIN) == NULL) return true;
  for (uintptr_t a = first; a < end; a += grain) rtree_set(a, val);
  return false;
}

void rtree_prefork(void) { xmutex_prefork(&rtree_mtx); }
void rtree_postfork_parent(void) { xmutex_postfork_parent(&rtree_mtx); }
void rtree_postfork_child(void) { xmutex_postfork_child(&rtree_mtx); }
