/* tag: the free tags' per-process key (see tag.h). */
#include <sys/auxv.h>

#include "xalloc/internal/tag.h"

uintptr_t tag_key;

void tag_boot(void) {
  /* The kernel's AT_RANDOM bytes, mixed with an address. */
  const void *rnd = (const void *)getauxval(AT_RANDOM);
  uint64_t r[2] = {0, 0};
  if (rnd != NULL) memcpy(r, rnd, sizeof(r)); /* 16 bytes, not always 8-aligned */
  uint64_t k = r[0] ^ (r[1] << 1);
  k ^= (uintptr_t)&tag_key * 0x9E3779B97F4A7C15ULL;
  tag_key = (uintptr_t)(k | 1);
}
