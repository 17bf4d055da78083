/*
 * cxx: the C++ allocation operators -- every replaceable form of operator
 * new and operator delete (plain, array, sized, aligned, nothrow) -- under
 * their Itanium C++ ABI names, written in C. A C++ program linked with
 * -lxalloc or run under LD_PRELOAD then allocates through xalloc directly,
 * instead of through libstdc++'s operators, which call malloc and free
 * with two or three more calls on every new and delete (jemalloc, tcmalloc
 * and mimalloc export them too).
 *
 * The allocating forms take xalloc's malloc (or posix_memalign for the
 * aligned ones). When that fails, what happens next is the C++ library's:
 * the call goes to the next definition of the same operator
 * (dlsym(RTLD_NEXT), libstdc++'s), which runs the new_handler loop (its
 * retries come back to xalloc's malloc) and throws std::bad_alloc, or for
 * the nothrow forms returns a null pointer. Without a C++ library to hand
 * over to, a failed throwing new reports it and aborts (what C++ does with
 * an exception that nothing catches). Only that rare path calls dlsym.
 *
 * Every delete form is free: the size a sized delete passes is not used
 * (a mis-sized delete is then freed, not reported: sizes handed to sized
 * delete by the compiler through a base class without a virtual
 * destructor are common, and undefined, but must not kill a program that
 * ran under the C++ library's operators) and free finds the alignment of
 * an aligned allocation itself.
 *
 * A prefixed build (--with-prefix) replaces nothing of the C library's and
 * defines none of these.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

#include "xalloc/internal/util.h"
#include "xalloc/xalloc.h"

#if !XALLOC_PREFIXED

/* The next definition of the operator named name (the C++ library's), or
 * NULL; looked up once per operator, on its first failure. */
static void *cxx_next(const char *name, void **cache) {
  void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, name);
    if (f != NULL) __atomic_store_n(cache, f, __ATOMIC_RELEASE);
  }
  return f;
}

XA_NOINLINE static void cxx_no_handler(const char *name, size_t size) {
  util_warn("xalloc: out of memory in operator new (%s, %zu bytes) and no C++ library to throw "
            "std::bad_alloc; aborting\n",
            name, size);
  abort();
}

/* A throwing new that failed: the C++ library's loop and throw. The
 * operator's type is ftype. */
#define CXX_FAIL(ftype, name, size, ...)                                   \
  do {                                                                     \
    static void *next;                                                     \
    void *f = cxx_next(name, &next);                                       \
    if (f == NULL) cxx_no_handler(name, size);                             \
    return ((ftype)f)(__VA_ARGS__);                                        \
  } while (0)
typedef void *(*cxx_new_t)(size_t);
typedef void *(*cxx_new_al_t)(size_t, size_t);

static inline void *cxx_aligned(size_t size, size_t alignment) {
  void *p;
  if (alignment < sizeof(void *)) alignment = sizeof(void *);
  return posix_memalign(&p, alignment, size) == 0 ? p : NULL;
}

typedef struct {
  int unused;
} cxx_nothrow_t; /* const std::nothrow_t &: a pointer that is never read */

/* operator new(size_t), new[](size_t) */
XA_NOINLINE static void *cxx_new_fail(size_t n) { CXX_FAIL(cxx_new_t, "_Znwm", n, n); }
XA_NOINLINE static void *cxx_newa_fail(size_t n) { CXX_FAIL(cxx_new_t, "_Znam", n, n); }
XA_EXPORT void *_Znwm(size_t n) {
  void *p = malloc(n);
  return likely(p != NULL) ? p : cxx_new_fail(n);
}
XA_EXPORT void *_Znam(size_t n) {
  void *p = malloc(n);
  return likely(p != NULL) ? p : cxx_newa_fail(n);
}

/* operator new(size_t, const nothrow_t &), new[] */
XA_NOINLINE static void *cxx_new_nt_fail(size_t n, const cxx_nothrow_t *t) {
  static void *next;
  void *f = cxx_next("_ZnwmRKSt9nothrow_t", &next);
  return f != NULL ? ((void *(*)(size_t, const cxx_nothrow_t *))f)(n, t) : NULL;
}
XA_NOINLINE static void *cxx_newa_nt_fail(size_t n, const cxx_nothrow_t *t) {
  static void *next;
  void *f = cxx_next("_ZnamRKSt9nothrow_t", &next);
  return f != NULL ? ((void *(*)(size_t, const cxx_nothrow_t *))f)(n, t) : NULL;
}
XA_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const cxx_nothrow_t *t) {
  void *p = malloc(n);
  return likely(p != NULL) ? p : cxx_new_nt_fail(n, t);
}
XA_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const cxx_nothrow_t *t) {
  void *p = malloc(n);
  return likely(p != NULL) ? p : cxx_newa_nt_fail(n, t);
}

/* operator new(size_t, align_val_t), new[] */
XA_NOINLINE static void *cxx_new_al_fail(size_t n, size_t al) { CXX_FAIL(cxx_new_al_t, "_ZnwmSt11align_val_t", n, n, al); }
XA_NOINLINE static void *cxx_newa_al_fail(size_t n, size_t al) { CXX_FAIL(cxx_new_al_t, "_ZnamSt11align_val_t", n, n, al); }
XA_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al) {
  void *p = cxx_aligned(n, al);
  return likely(p != NULL) ? p : cxx_new_al_fail(n, al);
}
XA_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t al) {
  void *p = cxx_aligned(n, al);
  return likely(p != NULL) ? p : cxx_newa_al_fail(n, al);
}

/* operator new(size_t, align_val_t, const nothrow_t &), new[] */
XA_NOINLINE static void *cxx_new_al_nt_fail(size_t n, size_t al, const cxx_nothrow_t *t) {
  static void *next;
  void *f = cxx_next("_ZnwmSt11align_val_tRKSt9nothrow_t", &next);
  return f != NULL ? ((void *(*)(size_t, size_t, const cxx_nothrow_t *))f)(n, al, t) : NULL;
}
XA_NOINLINE static void *cxx_newa_al_nt_fail(size_t n, size_t al, const cxx_nothrow_t *t) {
  static void *next;
  void *f = cxx_next("_ZnamSt11align_val_tRKSt9nothrow_t", &next);
  return f != NULL ? ((void *(*)(size_t, size_t, const cxx_nothrow_t *))f)(n, al, t) : NULL;
}
XA_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const cxx_nothrow_t *t) {
  void *p = cxx_aligned(n, al);
  return likely(p != NULL) ? p : cxx_new_al_nt_fail(n, al, t);
}
XA_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const cxx_nothrow_t *t) {
  void *p = cxx_aligned(n, al);
  return likely(p != NULL) ? p : cxx_newa_al_nt_fail(n, al, t);
}

/* Every operator delete: free. */
XA_EXPORT void _ZdlPv(void *p) { free(p); }
XA_EXPORT void _ZdaPv(void *p) { free(p); }
XA_EXPORT void _ZdlPvm(void *p, size_t n) {
  (void)n;
  free(p);
}
XA_EXPORT void _ZdaPvm(void *p, size_t n) {
  (void)n;
  free(p);
}
XA_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const cxx_nothrow_t *t) {
  (void)t;
  free(p);
}
XA_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const cxx_nothrow_t *t) {
  (void)t;
  free(p);
}
XA_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al) {
  (void)al;
  free(p);
}
XA_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t al) {
  (void)al;
  free(p);
}
XA_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) {
  (void)n, (void)al;
  free(p);
}
XA_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) {
  (void)n, (void)al;
  free(p);
}
XA_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const cxx_nothrow_t *t) {
  (void)al, (void)t;
  free(p);
}
XA_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const cxx_nothrow_t *t) {
  (void)al, (void)t;
  free(p);
}

#endif
