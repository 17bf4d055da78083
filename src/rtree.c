/* rtree: pointer -> chunk metadata (see rtree.h). */
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/base.h"
#include "xalloc/internal/mutex.h"

rtree_t rtree_global;
static xmutex_t rtree_mtx = XMUTEX_INITIALIZER;

bool rtree_boot(unsigned lg_chunk) {
  if (lg_chunk < RTREE_LG_VA - 2 * RTREE_ROOT_MAX_BITS || lg_chunk >= RTREE_LG_VA) return true;
  unsigned key_bits = RTREE_LG_VA - lg_chunk;
  rtree_global.lg_chunk = lg_chunk;
  rtree_global.leaf_bits = key_bits / 2;
  rtree_global.root_bits = key_bits - key_bits / 2;
  return false;
}

/* Returns the leaf for key, creating it; NULL on OOM. */
static void **rtree_leaf(uintptr_t key) {
  rtree_t *rt = &rtree_global;
  void ***slot = &rt->root[key >> rt->leaf_bits];
  void **leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (leaf != NULL) return leaf;
  xmutex_lock(&rtree_mtx);
  leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (leaf == NULL) {
    leaf = base_alloc(sizeof(void *) << rt->leaf_bits);
    if (leaf != NULL) __atomic_store_n(slot, leaf, __ATOMIC_RELEASE);
  }
  xmutex_unlock(&rtree_mtx);
  return leaf;
}

bool rtree_set(uintptr_t addr, void *val) {
  rtree_t *rt = &rtree_global;
  if (addr >> RTREE_LG_VA) return true;
  uintptr_t key = addr >> rt->lg_chunk;
  void **leaf = rtree_leaf(key);
  if (leaf == NULL) return true;
  __atomic_store_n(&leaf[key & (((uintptr_t)1 << rt->leaf_bits) - 1)], val, __ATOMIC_RELEASE);
  return false;
}

bool rtree_set_range(uintptr_t addr, size_t size, void *val) {
  size_t chunk = (size_t)1 << rtree_global.lg_chunk;
  /* Create every leaf first so that the stores below cannot fail. */
  for (uintptr_t a = addr; a < addr + size; a += chunk) {
    if ((a >> RTREE_LG_VA) || rtree_leaf(a >> rtree_global.lg_chunk) == NULL) return true;
  }
  for (uintptr_t a = addr; a < addr + size; a += chunk) rtree_set(a, val);
  return false;
}

void rtree_prefork(void) { xmutex_prefork(&rtree_mtx); }
void rtree_postfork_parent(void) { xmutex_postfork_parent(&rtree_mtx); }
void rtree_postfork_child(void) { xmutex_postfork_child(&rtree_mtx); }
