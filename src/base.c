/*
 * base: metadata allocation. One lock; blocks grow from 64 KiB doubling to
 * 4 MiB so that metadata adds few kernel mappings.
 */
#include "xalloc/internal/base.h"
#include "xalloc/internal/pages.h"

#define BASE_BLOCK_MIN ((size_t)64 << 10)
#define BASE_BLOCK_MAX ((size_t)4 << 20)

static xmutex_t base_mtx = XMUTEX_INITIALIZER;
static char *base_next;     /* bump pointer in the current block */
static char *base_end;      /* end of the current block */
static size_t base_block_size = BASE_BLOCK_MIN;
static size_t base_mapped_bytes, base_allocated_bytes;
/* Every block, for base_blocks_foreach: a header at the start of each. */
typedef struct base_block_s {
  struct base_block_s *next;
  size_t size;
} base_block_t;
static base_block_t *base_blocks;

static void *base_alloc_locked(size_t size) {
  size_t align = size >= 64 ? 64 : 16;
  size = ALIGNMENT_CEILING(size, 16);
  char *p = (char *)ALIGNMENT_CEILING((uintptr_t)base_next, align);
  if (base_next == NULL || p + size > base_end) {
    size_t bsize = base_block_size;
    while (bsize < size + 64) bsize <<= 1; /* room for the header and alignment */
    bsize = PAGE_CEILING(bsize);
    char *block = pages_map(bsize);
    if (block == NULL) return NULL;
    if (base_block_size < BASE_BLOCK_MAX) base_block_size <<= 1;
    base_mapped_bytes += bsize;
    base_block_t *hdr = (base_block_t *)block;
    hdr->next = base_blocks;
    hdr->size = bsize;
    base_blocks = hdr;
    base_next = block + sizeof(base_block_t);
    base_end = block + bsize;
    p = (char *)ALIGNMENT_CEILING((uintptr_t)base_next, align);
  }
  base_next = p + size;
  base_allocated_bytes += size;
  return p; /* fresh mmap memory: already zero */
}

void *base_alloc(size_t size) {
  xmutex_lock(&base_mtx);
  void *p = base_alloc_locked(size);
  xmutex_unlock(&base_mtx);
  return p;
}

void *base_pool_alloc(base_pool_t *pool) {
  xmutex_lock(&base_mtx);
  void *p = pool->free;
  if (p != NULL) {
    pool->free = *(void **)p;
    memset(p, 0, pool->zero != 0 ? pool->zero : pool->size);
  } else {
    p = base_alloc_locked(pool->size);
  }
  if (p != NULL) pool->nlive++;
  xmutex_unlock(&base_mtx);
  return p;
}

void base_pool_free(base_pool_t *pool, void *obj) {
  xmutex_lock(&base_mtx);
  *(void **)obj = pool->free;
  pool->free = obj;
  pool->nlive--;
  xmutex_unlock(&base_mtx);
}

void base_blocks_foreach(void (*fn)(void *arg, void *addr, size_t size), void *arg) {
  xmutex_lock(&base_mtx);
  for (base_block_t *b = base_blocks; b != NULL; b = b->next) fn(arg, b, b->size);
  xmutex_unlock(&base_mtx);
}

void base_stats_get(base_stats_t *out) {
  xmutex_lock(&base_mtx);
  out->mapped = base_mapped_bytes;
  out->allocated = base_allocated_bytes;
  xmutex_unlock(&base_mtx);
}

void base_prefork(void) { xmutex_prefork(&base_mtx); }
void base_postfork_parent(void) { xmutex_postfork_parent(&base_mtx); }
void base_postfork_child(void) { xmutex_postfork_child(&base_mtx); }
