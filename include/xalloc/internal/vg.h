/*
 * vg: valgrind client requests. In a build with valgrind support (the
 * default when valgrind/memcheck.h is found; ./configure --enable-valgrind
 * insists on it), a process that starts under valgrind sets vg_running:
 * thread caches then hold nothing, so that every allocation and free takes
 * the slow paths, which tell memcheck about each block (MALLOCLIKE /
 * FREELIKE) and keep free and never-allocated memory inaccessible. Off
 * valgrind, and in builds without support, every function here is a
 * no-op behind one test of a constant or a global, on slow paths only.
 */
#ifndef XALLOC_INTERNAL_VG_H
#define XALLOC_INTERNAL_VG_H

#include "xalloc/internal/util.h"

#ifdef XALLOC_VALGRIND
#include <valgrind/memcheck.h>
static const bool config_valgrind = true;
#else
static const bool config_valgrind = false;
#endif

/* Set once at initialization: running under valgrind (and built for it). */
extern bool vg_running;

static inline bool vg_on(void) { return config_valgrind && unlikely(vg_running); }

#ifdef XALLOC_VALGRIND
static inline void vg_malloclike(const void *p, size_t n, bool zeroed) {
  if (vg_on()) VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, zeroed);
}
static inline void vg_freelike(const void *p) {
  if (vg_on()) VALGRIND_FREELIKE_BLOCK(p, 0);
}
static inline void vg_noaccess(const void *p, size_t n) {
  if (vg_on()) VALGRIND_MAKE_MEM_NOACCESS(p, n);
}
static inline void vg_undefined(const void *p, size_t n) {
  if (vg_on()) VALGRIND_MAKE_MEM_UNDEFINED(p, n);
}
/* Read a word xalloc may look at although memcheck sees it as free, or
 * as allocated and never written (the free tag test on a live block): the
 * copy is marked defined, so testing it is no error of the program's. */
static inline uintptr_t vg_peek_word(const void *p) {
  if (!vg_on()) return *(const uintptr_t *)p;
  VALGRIND_DISABLE_ERROR_REPORTING;
  volatile uintptr_t v = *(const volatile uintptr_t *)p;
  VALGRIND_ENABLE_ERROR_REPORTING;
  VALGRIND_MAKE_MEM_DEFINED(&v, sizeof(v));
  return v;
}
/* Running under valgrind's memcheck (other tools, e.g. callgrind, keep
 * the fast paths): only memcheck answers its GET_VBITS request with 1. */
static inline bool vg_detect(void) {
  if (RUNNING_ON_VALGRIND == 0) return false;
  char probe = 0;
  unsigned char vbits = 0;
  return VALGRIND_GET_VBITS(&probe, &vbits, 1) == 1;
}
#else
static inline void vg_malloclike(const void *p, size_t n, bool zeroed) { (void)p, (void)n, (void)zeroed; }
static inline void vg_freelike(const void *p) { (void)p; }
static inline void vg_noaccess(const void *p, size_t n) { (void)p, (void)n; }
static inline void vg_undefined(const void *p, size_t n) { (void)p, (void)n; }
static inline uintptr_t vg_peek_word(const void *p) { return *(const uintptr_t *)p; }
static inline bool vg_detect(void) { return false; }
#endif
#endif
