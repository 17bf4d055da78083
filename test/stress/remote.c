/*
 * Remote frees under stress (make stress; doc/DESIGN.md, Remote frees):
 * NTHREADS threads, each on an explicit arena of its own, in a ring: each
 * allocates objects of small sizes, stamps them and sends them to the next
 * thread, which checks and frees them (every free is remote), and frees a
 * few of its own. Every GENERATION objects a thread exits and a new one
 * takes its place on the same arena (its cache is flushed onto the other
 * arenas' remote stacks before it exits, or every other time parked at
 * exit and adopted by a new thread: tcache_park). Runs for XALLOC_STRESS_SECONDS (default
 * 10). Fails on a corrupted object, an object handed out while live (the
 * stamp of the live copy would be overwritten), or a failed allocation;
 * afterwards the heap check passes on every arena and no small object
 * (and no page) is left allocated in the ring's arenas.
 */
#include "xtest.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "xalloc/xalloc.h"

enum { NTHREADS = 4, QCAP = 4096, GENERATION = 200000 };

typedef struct {
  pthread_mutex_t lock;
  void *q[QCAP];
  unsigned head, n;
  bool closed;
} queue_t;

static queue_t queues[NTHREADS];
static unsigned arena_of[NTHREADS];
static volatile int stop;
static int failures;
static unsigned long long nops[NTHREADS];

/* The first two words: size and a check value; then a byte pattern. */
static void stamp(uint64_t *p, size_t size, uint64_t serial) {
  p[0] = size;
  p[1] = serial ^ (uintptr_t)p;
  unsigned char *c = (unsigned char *)(p + 2);
  for (size_t i = 0; i + 16 < size; i++) c[i] = (unsigned char)(serial + i);
}
static bool stamped(const uint64_t *p) {
  size_t size = p[0];
  if (size < 16 || size > 4096) return false;
  uint64_t serial = p[1] ^ (uintptr_t)p;
  const unsigned char *c = (const unsigned char *)(p + 2);
  for (size_t i = 0; i + 16 < size; i++)
    if (c[i] != (unsigned char)(serial + i)) return false;
  return true;
}

static bool put(queue_t *q, void *p) {
  pthread_mutex_lock(&q->lock);
  bool room = q->n < QCAP;
  if (room) q->q[(q->head + q->n++) % QCAP] = p;
  pthread_mutex_unlock(&q->lock);
  return room;
}
static void *get(queue_t *q) {
  void *p = NULL;
  pthread_mutex_lock(&q->lock);
  if (q->n > 0) {
    p = q->q[q->head];
    q->head = (q->head + 1) % QCAP;
    q->n--;
  }
  pthread_mutex_unlock(&q->lock);
  return p;
}

static void stress_fail(const char *what) {
  fprintf(stderr, "remote stress: %s\n", what);
  __atomic_store_n(&failures, 1, __ATOMIC_RELAXED);
  stop = 1;
}

/* Check and free up to max objects from my queue. */
static void drain(unsigned me, unsigned max) {
  for (unsigned k = 0; k < max; k++) {
    uint64_t *p = get(&queues[me]);
    if (p == NULL) return;
    if (!stamped(p)) stress_fail("corrupted object (handed out twice, or written by the allocator)");
    free(p);
  }
}

static void *worker(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg, next = (me + 1) % NTHREADS;
  if (mallctl("thread.arena", NULL, NULL, &arena_of[me], sizeof(unsigned)) != 0) {
    stress_fail("thread.arena");
    return NULL;
  }
  uint64_t rng = 0x1234567ull * (me + 1) + (uint64_t)time(NULL);
  void *mine[64] = {NULL};
  for (unsigned long i = 0; i < GENERATION && !stop; i++) {
    uint64_t r = xtest_rand(&rng);
    size_t size = 16 + (size_t)(r % 1000);
    if ((r >> 20) % 64 == 0) size = 16 + (size_t)((r >> 30) % 4000);
    uint64_t *p = malloc(size);
    if (p == NULL) {
      stress_fail("malloc returned NULL");
      break;
    }
    stamp(p, size, r);
    if ((r >> 40) % 8 == 0) {
      /* Some stay here for a while and are freed by their own thread. */
      unsigned s = (unsigned)((r >> 44) % 64);
      if (mine[s] != NULL) {
        if (!stamped(mine[s])) stress_fail("corrupted own object");
        free(mine[s]);
      }
      mine[s] = p;
    } else {
      while (!put(&queues[next], p)) {
        drain(me, 64);
        if (stop) {
          free(p);
          break;
        }
        sched_yield();
      }
    }
    if ((i & 15) == 0) drain(me, 32);
    nops[me]++;
  }
  for (unsigned s = 0; s < 64; s++) free(mine[s]);
  drain(me, QCAP);
  /* Flushed: remote pushes; or left to be parked at exit. */
  if (rng & 1) mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  return NULL;
}

int main(void) {
  const char *env = getenv("XALLOC_STRESS_SECONDS");
  int seconds = env != NULL ? atoi(env) : 10;
  for (unsigned i = 0; i < NTHREADS; i++) {
    pthread_mutex_init(&queues[i].lock, NULL);
    size_t sz = sizeof(unsigned);
    if (mallctl("arenas.create", &arena_of[i], &sz, NULL, 0) != 0) {
      fprintf(stderr, "arenas.create failed\n");
      return 1;
    }
  }
  pthread_t th[NTHREADS];
  bool live[NTHREADS];
  for (unsigned i = 0; i < NTHREADS; i++) live[i] = pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0;
  time_t end = time(NULL) + seconds;
  unsigned long generations = 0;
  while (time(NULL) < end && !stop) {
    /* Replace threads that finished their generation. */
    for (unsigned i = 0; i < NTHREADS; i++) {
      if (live[i] && pthread_tryjoin_np(th[i], NULL) == 0) {
        live[i] = pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i) == 0;
        generations++;
      }
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  stop = 1;
  for (unsigned i = 0; i < NTHREADS; i++)
    if (live[i]) pthread_join(th[i], NULL);
  /* What is left in the queues. */
  for (unsigned i = 0; i < NTHREADS; i++) {
    uint64_t *p;
    while ((p = get(&queues[i])) != NULL) {
      if (!stamped(p)) stress_fail("corrupted object left in a queue");
      free(p);
    }
  }
  mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  malloc_trim(0); /* the exited threads' parked caches (tcache_park) */
  bool ok = false;
  size_t len = sizeof(ok);
  char name[96];
  snprintf(name, sizeof(name), "arena.%d.check", MALLCTL_ARENAS_ALL);
  if (mallctl(name, &ok, &len, NULL, 0) != 0 || !ok) stress_fail("heap check");
  uint64_t epoch = 1;
  mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch));
  for (unsigned i = 0; i < NTHREADS; i++) {
    size_t v = 1, sz = sizeof(v);
    snprintf(name, sizeof(name), "stats.arenas.%u.small.allocated", arena_of[i]);
    if (mallctl(name, &v, &sz, NULL, 0) != 0 || v != 0) stress_fail("small objects left allocated");
    snprintf(name, sizeof(name), "stats.arenas.%u.pactive", arena_of[i]);
    if (mallctl(name, &v, &sz, NULL, 0) != 0 || v != 0) stress_fail("pages left active");
  }
  unsigned long long total = 0;
  for (unsigned i = 0; i < NTHREADS; i++) total += nops[i];
  printf("remote stress: %llu objects, %lu thread generations, %d s: %s\n", total, generations, seconds,
         failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
