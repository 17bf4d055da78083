// The C++ allocation operators go through xalloc (test/integration/cxx.sh):
// every form of new and delete; std::bad_alloc and the new_handler on
// failure; nothrow forms return nullptr; aligned forms honour the
// alignment; a double delete is caught by xalloc's checks (in a child).
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/wait.h>
#include <unistd.h>

// Weak: the plain build finds it in the preloaded libxalloc at run time.
extern "C" int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));
extern "C" size_t malloc_usable_size(void *ptr);

static int failures;
#define CHECK(c)                                                        \
  do {                                                                  \
    if (!(c)) {                                                         \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      failures++;                                                       \
    }                                                                   \
  } while (0)

// Bytes this thread has allocated through xalloc (jemalloc's counter).
static unsigned long long allocated() {
  unsigned long long v = 0;
  size_t sz = sizeof(v);
  if (mallctl == nullptr || mallctl("thread.allocated", &v, &sz, nullptr, 0) != 0) return 0;
  return v;
}

struct alignas(256) Wide {
  char b[300];
};

struct Counted {
  virtual ~Counted() {}
  char payload[40];
};

static int handler_calls;
static void handler() {
  handler_calls++;
  std::set_new_handler(nullptr); // next failure throws
}

int main() {
  // Plain, array, sized and nothrow forms, each seen by xalloc.
  unsigned long long a0 = allocated();
  char *p = new char[100000];
  std::memset(p, 1, 100000);
  CHECK(allocated() - a0 >= 100000);
  CHECK(malloc_usable_size(p) >= 100000);
  delete[] p;
  a0 = allocated();
  Counted *c = new Counted;
  CHECK(allocated() - a0 >= sizeof(Counted));
  delete c; // sized delete with -fsized-deallocation
  a0 = allocated();
  int *q = new (std::nothrow) int[1000];
  CHECK(q != nullptr && allocated() - a0 >= 4000);
  delete[] q;
  // Aligned forms.
  for (int i = 0; i < 100; i++) {
    Wide *w = new Wide;
    CHECK(reinterpret_cast<uintptr_t>(w) % 256 == 0);
    delete w;
    Wide *v = new Wide[3];
    CHECK(reinterpret_cast<uintptr_t>(v) % 256 == 0);
    delete[] v;
    void *r = ::operator new(5000, std::align_val_t(4096));
    CHECK(reinterpret_cast<uintptr_t>(r) % 4096 == 0 && malloc_usable_size(r) >= 5000);
    ::operator delete(r, std::align_val_t(4096));
    void *s = ::operator new(64, std::align_val_t(64), std::nothrow);
    CHECK(s != nullptr && reinterpret_cast<uintptr_t>(s) % 64 == 0);
    ::operator delete(s, 64, std::align_val_t(64));
  }
  // Failure: nothrow gives nullptr, throwing new calls the handler, then throws.
  size_t huge = (size_t)1 << 62;
  CHECK(::operator new(huge, std::nothrow) == nullptr);
  CHECK(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr);
  std::set_new_handler(handler);
  bool threw = false;
  try {
    void *x = ::operator new(huge);
    std::printf("unexpected %p\n", x);
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw && handler_calls == 1);
  threw = false;
  try {
    void *x = ::operator new[](huge, std::align_val_t(128));
    std::printf("unexpected %p\n", x);
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  // A double delete is caught (reported, abort:true aborts) in a child.
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    // (volatile: new/delete pairs may be elided by the compiler otherwise)
    char *volatile d = new char[64];
    char *volatile keep = new char[64];
    delete[] d;
    delete[] d;
    delete[] keep;
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
  if (failures == 0) std::printf("cxx_ops ok\n");
  return failures != 0;
}
