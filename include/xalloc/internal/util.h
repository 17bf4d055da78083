/*
 * util: the few things every layer shares -- branch hints, build switches
 * as constants, bit tricks, and error reporting that never allocates.
 */
#ifndef XALLOC_INTERNAL_UTIL_H
#define XALLOC_INTERNAL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "xalloc/internal/config.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define XA_EXPORT __attribute__((visibility("default")))
/* On a declaration: the symbol is this library's, so a -fPIC load of it is
 * direct (no GOT entry to go through). */
#define XA_HIDDEN __attribute__((visibility("hidden")))
#define XA_NOINLINE __attribute__((noinline))
#define XA_ALWAYS_INLINE static inline __attribute__((always_inline))
#define XA_COLD __attribute__((cold, noinline))

#ifdef XALLOC_DEBUG
static const bool config_debug = true;
#else
static const bool config_debug = false;
#endif
/* Free tags and the region-start check on the fast paths (on unless
 * ./configure --disable-heap-checks; the slow paths always check). */
#ifdef XALLOC_HEAP_CHECKS
static const bool config_heap_checks = true;
#else
static const bool config_heap_checks = false;
#endif

#define LG_PAGE XALLOC_LG_PAGE
#define PAGE ((size_t)1 << LG_PAGE)
#define PAGE_MASK (PAGE - 1)
#define PAGE_CEILING(s) (((s) + PAGE_MASK) & ~PAGE_MASK)
#define ALIGNMENT_CEILING(s, a) (((s) + ((a)-1)) & ~((a)-1))
#define ALIGNMENT_ADDR2BASE(p, a) ((void *)((uintptr_t)(p) & ~((uintptr_t)(a)-1)))
#define ALIGNMENT_ADDR2OFFSET(p, a) ((size_t)((uintptr_t)(p) & ((uintptr_t)(a)-1)))

/* Smallest object alignment (and smallest size class). */
#define LG_QUANTUM 4
#define QUANTUM ((size_t)1 << LG_QUANTUM)

static inline unsigned util_lg_floor(size_t x) { return (unsigned)(63 - __builtin_clzll(x)); }
static inline unsigned util_lg_ceil(size_t x) { return x <= 1 ? 0 : util_lg_floor(x - 1) + 1; }
static inline size_t util_pow2_ceil(size_t x) { return (size_t)1 << util_lg_ceil(x); }
static inline bool util_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/*
 * Reporting. All output goes through write(2) from a stack buffer: these
 * functions are safe to call with any allocator lock held. The format
 * supports %s, %d, %u, %zu, %zx, %p and %%.
 */
void util_write(const char *s);
/* Write to fd (util_write writes to stderr). */
void util_write_fd(int fd, const char *s);
size_t util_format(char *buf, size_t size, const char *fmt, ...);
#include <stdarg.h>
size_t util_vformat(char *buf, size_t size, const char *fmt, va_list ap);
void util_printf(const char *fmt, ...);
__attribute__((noreturn)) void util_fatal(const char *fmt, ...);
void util_warn(const char *fmt, ...);

#define xassert(e)                                                                     \
  do {                                                                                 \
    if (config_debug && unlikely(!(e)))                                                \
      util_fatal("xalloc: %s:%d: failed assertion: %s\n", __FILE__, __LINE__, #e);    \
  } while (0)

#define not_reached() util_fatal("xalloc: %s:%d: unreachable code\n", __FILE__, __LINE__)

#endif
