/* prof: the sampling heap profiler's records and contexts (prof.h); the
 * dumps are in prof_dump.c. */
#include <errno.h>
#include <stdlib.h>

#include "xalloc/internal/base.h"
#include "xalloc/internal/opts.h"
#include "xalloc/internal/pages.h"
#include "xalloc/internal/prof_int.h"
#include "xalloc/internal/rtree.h"
#include "xalloc/internal/stack.h"

uint64_t prof_sample_mean_bytes;
uint64_t prof_nlive;

static bool prof_active_now;
static bool prof_thread_active_init_now;
bool prof_gdump_now;

/* ---- threads ---- */

prof_tdata_t *prof_tdata_list;
xmutex_t prof_tdata_mtx = XMUTEX_INITIALIZER;
static uint64_t prof_tid_next;
static __thread prof_tdata_t *prof_td __attribute__((tls_model("initial-exec")));

/* The calling thread's record (created on first use; NULL if out of
 * metadata memory). Kept after the thread exits: dumps name it. */
static prof_tdata_t *prof_tdata_get(void) {
  prof_tdata_t *td = prof_td;
  if (likely(td != NULL)) return td;
  td = base_alloc(sizeof(*td));
  if (td == NULL) return NULL;
  td->active = __atomic_load_n(&prof_thread_active_init_now, __ATOMIC_RELAXED);
  xmutex_lock(&prof_tdata_mtx);
  td->tid = prof_tid_next++;
  td->next = prof_tdata_list;
  prof_tdata_list = td;
  xmutex_unlock(&prof_tdata_mtx);
  prof_td = td;
  return td;
}

bool prof_sampling(void) {
  if (!__atomic_load_n(&prof_active_now, __ATOMIC_RELAXED)) return false;
  prof_tdata_t *td = prof_td;
  return td == NULL ? __atomic_load_n(&prof_thread_active_init_now, __ATOMIC_RELAXED)
                    : __atomic_load_n(&td->active, __ATOMIC_RELAXED);
}

/* ---- contexts: one per distinct call stack ---- */

prof_ctx_t *prof_ctx_table[PROF_CTX_NBUCKETS];
xmutex_t prof_ctx_mtx = XMUTEX_INITIALIZER;
size_t prof_nctx;

static uint64_t prof_hash_frames(void *const *frames, unsigned n) {
  uint64_t h = 0xcbf29ce484222325ULL ^ n;
  for (unsigned i = 0; i < n; i++) {
    h ^= (uintptr_t)frames[i];
    h *= 0x100000001b3ULL;
    h ^= h >> 29;
  }
  return h;
}

/* The context of frames, created if new (prof_ctx_mtx held). */
static prof_ctx_t *prof_ctx_get(void *const *frames, unsigned n) {
  uint64_t h = prof_hash_frames(frames, n);
  prof_ctx_t **bucket = &prof_ctx_table[h & (PROF_CTX_NBUCKETS - 1)];
  for (prof_ctx_t *c = *bucket; c != NULL; c = c->next)
    if (c->hash == h && c->nframes == n && memcmp(c->frames, frames, n * sizeof(void *)) == 0) return c;
  prof_ctx_t *c = base_alloc(sizeof(prof_ctx_t) + n * sizeof(void *));
  if (c == NULL) return NULL;
  c->hash = h;
  c->nframes = n;
  memcpy(c->frames, frames, n * sizeof(void *));
  c->next = *bucket;
  *bucket = c;
  prof_nctx++;
  return c;
}

/* ---- records: one per live sample, hashed by page ---- */

typedef struct prof_rec_s prof_rec_t;
struct prof_rec_s {
  prof_rec_t *next;
  const void *ptr;
  size_t usize;
  prof_ctx_t *ctx;
  prof_tdata_t *td;
  uint64_t word;   /* the page's word before its first sample */
  bool word_saved; /* word is to be restored when the page's last sample goes */
};

#define PROF_REC_NBUCKETS 4096
#define PROF_REC_NLOCKS 64
static prof_rec_t *prof_rec_table[PROF_REC_NBUCKETS];
static xmutex_t prof_rec_mtx[PROF_REC_NLOCKS];
static base_pool_t prof_rec_pool = BASE_POOL_INITIALIZER(sizeof(prof_rec_t));

static inline uintptr_t prof_page(const void *ptr) { return (uintptr_t)ptr >> LG_PAGE; }
static inline unsigned prof_bucket(uintptr_t page) {
  return (unsigned)((page * 0x9E3779B97F4A7C15ULL) >> 52) & (PROF_REC_NBUCKETS - 1);
}
static inline xmutex_t *prof_bucket_mtx(unsigned b) { return &prof_rec_mtx[b & (PROF_REC_NLOCKS - 1)]; }

/* The fast free path's word of ptr's page, or NULL (not an arena page). */
static uint64_t *prof_word_of(const void *ptr) {
  uint64_t *words = rtree_pw_grain((uintptr_t)ptr);
  if (words == NULL) return NULL;
  return &words[prof_page(ptr) & (RTREE_PW_PER_GRAIN - 1)];
}

/* Another record in the bucket for the same page (bucket lock held). */
static prof_rec_t *prof_rec_same_page(prof_rec_t *head, uintptr_t page, const prof_rec_t *except) {
  for (prof_rec_t *r = head; r != NULL; r = r->next)
    if (r != except && prof_page(r->ptr) == page) return r;
  return NULL;
}

static void prof_ctx_count(prof_ctx_t *c, prof_tdata_t *td, size_t usize, bool add) {
  xmutex_lock(&prof_ctx_mtx);
  if (add) {
    c->cur_objs++;
    c->cur_bytes += usize;
    c->accum_objs++;
    c->accum_bytes += usize;
  } else {
    c->cur_objs--;
    c->cur_bytes -= usize;
  }
  xmutex_unlock(&prof_ctx_mtx);
  if (td != NULL) {
    __atomic_fetch_add(&td->cur_objs, add ? 1 : (uint64_t)-1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&td->cur_bytes, add ? usize : (uint64_t)0 - usize, __ATOMIC_RELAXED);
    if (add) {
      __atomic_fetch_add(&td->accum_objs, 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&td->accum_bytes, usize, __ATOMIC_RELAXED);
    }
  }
}

void prof_sample(void *ptr, size_t usize) {
  void *frames[STACK_DEPTH_MAX];
  unsigned n = stack_capture_caller(frames, STACK_DEPTH_MAX);
  prof_tdata_t *td = prof_tdata_get();
  prof_rec_t *r = base_pool_alloc(&prof_rec_pool);
  if (r == NULL) return;
  xmutex_lock(&prof_ctx_mtx);
  prof_ctx_t *c = prof_ctx_get(frames, n);
  xmutex_unlock(&prof_ctx_mtx);
  if (c == NULL) {
    base_pool_free(&prof_rec_pool, r);
    return;
  }
  r->ptr = ptr;
  r->usize = usize;
  r->ctx = c;
  r->td = td;
  uintptr_t page = prof_page(ptr);
  unsigned b = prof_bucket(page);
  xmutex_lock(prof_bucket_mtx(b));
  prof_rec_t *other = prof_rec_same_page(prof_rec_table[b], page, NULL);
  if (other != NULL) {
    r->word = other->word;
    r->word_saved = other->word_saved;
  } else {
    uint64_t *wp = prof_word_of(ptr);
    uint64_t w = wp != NULL ? __atomic_load_n(wp, __ATOMIC_RELAXED) : 0;
    r->word = w;
    r->word_saved = w != 0;
    /* From now on every free in this page takes the slow path. */
    if (w != 0) __atomic_store_n(wp, 0, __ATOMIC_RELEASE);
  }
  r->next = prof_rec_table[b];
  prof_rec_table[b] = r;
  __atomic_fetch_add(&prof_nlive, 1, __ATOMIC_RELAXED);
  /* Counted under the bucket's lock: the live counts are always those of
   * the records (a reset or free cannot slip in between). */
  prof_ctx_count(c, td, usize, true);
  xmutex_unlock(prof_bucket_mtx(b));
}

/* Unlink r from bucket b (its lock held), restoring the page's word if r
 * was the page's last sample. */
static void prof_rec_unlink(unsigned b, prof_rec_t **link, prof_rec_t *r) {
  *link = r->next;
  if (r->word_saved && prof_rec_same_page(prof_rec_table[b], prof_page(r->ptr), NULL) == NULL) {
    uint64_t *wp = prof_word_of(r->ptr);
    if (wp != NULL) __atomic_store_n(wp, r->word, __ATOMIC_RELEASE);
  }
  __atomic_fetch_sub(&prof_nlive, 1, __ATOMIC_RELAXED);
}

void prof_free_slow(const void *ptr) {
  uintptr_t page = prof_page(ptr);
  unsigned b = prof_bucket(page);
  xmutex_lock(prof_bucket_mtx(b));
  prof_rec_t **link = &prof_rec_table[b], *r;
  while ((r = *link) != NULL && r->ptr != ptr) link = &r->next;
  if (r == NULL) {
    xmutex_unlock(prof_bucket_mtx(b));
    return;
  }
  prof_rec_unlink(b, link, r);
  prof_ctx_count(r->ctx, r->td, r->usize, false);
  xmutex_unlock(prof_bucket_mtx(b));
  base_pool_free(&prof_rec_pool, r);
}

void prof_resize_slow(const void *ptr, size_t usize) {
  uintptr_t page = prof_page(ptr);
  unsigned b = prof_bucket(page);
  xmutex_lock(prof_bucket_mtx(b));
  prof_rec_t *r = prof_rec_table[b];
  while (r != NULL && r->ptr != ptr) r = r->next;
  if (r == NULL) {
    xmutex_unlock(prof_bucket_mtx(b));
    return;
  }
  size_t old = r->usize;
  r->usize = usize;
  /* A large run's first page holds only this block, and a resize writes
   * its word afresh (the new class's, or 0 for a class no cache holds):
   * that is the word to give back at the free. (A huge block's is 0.) */
  uint64_t *wp = prof_word_of(ptr);
  uint64_t w = wp != NULL ? __atomic_load_n(wp, __ATOMIC_RELAXED) : 0;
  r->word = w;
  r->word_saved = w != 0;
  if (w != 0) __atomic_store_n(wp, 0, __ATOMIC_RELEASE);
  prof_ctx_t *c = r->ctx;
  prof_tdata_t *td = r->td;
  xmutex_lock(&prof_ctx_mtx);
  c->cur_bytes += usize - old;
  c->accum_bytes += usize > old ? usize - old : 0;
  xmutex_unlock(&prof_ctx_mtx);
  if (td != NULL) __atomic_fetch_add(&td->cur_bytes, usize - old, __ATOMIC_RELAXED);
  xmutex_unlock(prof_bucket_mtx(b));
}

bool prof_is_sample(const void *ptr) {
  unsigned b = prof_bucket(prof_page(ptr));
  xmutex_lock(prof_bucket_mtx(b));
  prof_rec_t *r = prof_rec_table[b];
  while (r != NULL && r->ptr != ptr) r = r->next;
  xmutex_unlock(prof_bucket_mtx(b));
  return r != NULL;
}

/* The arena ptr (a live allocation) belongs to. */
static arena_t *prof_arena_of(const void *ptr) {
  uint8_t *meta = rtree_get((uintptr_t)ptr);
  if (meta == NULL) return NULL;
  if (*meta == META_ARENA_CHUNK) return ((arena_chunk_t *)meta)->arena;
  if (*meta == META_HUGE) return (arena_t *)((extent_node_t *)meta)->arena;
  return NULL;
}

/* Forget every sample for which drop(r, arg) holds. */
static void prof_rec_drop_if(bool (*drop)(const prof_rec_t *, void *), void *arg) {
  for (unsigned b = 0; b < PROF_REC_NBUCKETS; b++) {
    prof_rec_t *gone = NULL;
    xmutex_lock(prof_bucket_mtx(b));
    prof_rec_t **link = &prof_rec_table[b], *r;
    while ((r = *link) != NULL) {
      if (drop(r, arg)) {
        prof_rec_unlink(b, link, r);
        prof_ctx_count(r->ctx, r->td, r->usize, false);
        r->next = gone;
        gone = r;
      } else {
        link = &r->next;
      }
    }
    xmutex_unlock(prof_bucket_mtx(b));
    while (gone != NULL) {
      prof_rec_t *next = gone->next;
      base_pool_free(&prof_rec_pool, gone);
      gone = next;
    }
  }
}

static bool prof_rec_in_arena(const prof_rec_t *r, void *a) { return prof_arena_of(r->ptr) == (arena_t *)a; }
static bool prof_rec_any(const prof_rec_t *r, void *arg) {
  (void)r;
  (void)arg;
  return true;
}

void prof_arena_reset(arena_t *a) {
  if (opt_prof && prof_live_any()) prof_rec_drop_if(prof_rec_in_arena, a);
}

/* ---- counting toward interval dumps and gdump ---- */

static uint64_t prof_interval; /* 0: off */
static uint64_t prof_interval_acc;
static size_t prof_gdump_high;

uint64_t prof_interval_bytes(void) { return prof_interval; }

bool prof_count_bytes(uint64_t bytes) {
  bool due = false;
  if (prof_interval != 0) {
    uint64_t before = __atomic_fetch_add(&prof_interval_acc, bytes, __ATOMIC_RELAXED);
    if (before / prof_interval != (before + bytes) / prof_interval) due = true;
  }
  if (__atomic_load_n(&prof_gdump_now, __ATOMIC_RELAXED)) {
    size_t m = pages_mapped(), high = __atomic_load_n(&prof_gdump_high, __ATOMIC_RELAXED);
    if (m > high) {
      __atomic_store_n(&prof_gdump_high, m, __ATOMIC_RELAXED);
      __atomic_store_n(&prof_gdump_pending, true, __ATOMIC_RELAXED);
      due = true;
    }
  }
  if (due) __atomic_store_n(&prof_dump_pending, true, __ATOMIC_RELAXED);
  return due;
}

bool prof_dump_pending, prof_gdump_pending;

void prof_due_dump(void) {
  if (__atomic_exchange_n(&prof_gdump_pending, false, __ATOMIC_RELAXED)) prof_dump_kind('u');
  if (__atomic_exchange_n(&prof_dump_pending, false, __ATOMIC_RELAXED) && prof_interval != 0) prof_dump_kind('i');
}

/* ---- boot, reset, mallctl ---- */

bool prof_boot(void) {
  prof_sample_mean_bytes = (uint64_t)1 << opt_lg_prof_sample;
  prof_active_now = opt_prof && opt_prof_active;
  prof_thread_active_init_now = opt_prof_thread_active_init;
  prof_gdump_now = opt_prof && opt_prof_gdump;
  prof_interval = opt_prof && opt_lg_prof_interval >= 0 ? (uint64_t)1 << opt_lg_prof_interval : 0;
  for (unsigned i = 0; i < PROF_REC_NLOCKS; i++) xmutex_init(&prof_rec_mtx[i]);
  return false;
}

static void prof_exit(void) {
  if (opt_prof_final) prof_dump_kind('f');
  if (opt_prof_leak) prof_leak_report();
}

void prof_boot_late(void) {
  stack_boot();
  prof_gdump_high = pages_mapped();
  if (opt_prof_final || opt_prof_leak) atexit(prof_exit);
}

int prof_ctl_reset(size_t lg_sample) {
  if (!opt_prof) return ENOENT;
  if (lg_sample != (size_t)-1) {
    if (lg_sample > 62) return EINVAL;
    __atomic_store_n(&prof_sample_mean_bytes, (uint64_t)1 << lg_sample, __ATOMIC_RELAXED);
  }
  /* Dropping the records brings the live counts to 0 (they are always
   * the records'); the counts of all samples ever made start again. */
  prof_rec_drop_if(prof_rec_any, NULL);
  xmutex_lock(&prof_ctx_mtx);
  for (unsigned i = 0; i < PROF_CTX_NBUCKETS; i++)
    for (prof_ctx_t *c = prof_ctx_table[i]; c != NULL; c = c->next) c->accum_objs = c->accum_bytes = 0;
  xmutex_unlock(&prof_ctx_mtx);
  xmutex_lock(&prof_tdata_mtx);
  for (prof_tdata_t *td = prof_tdata_list; td != NULL; td = td->next) {
    __atomic_store_n(&td->accum_objs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&td->accum_bytes, 0, __ATOMIC_RELAXED);
  }
  xmutex_unlock(&prof_tdata_mtx);
  return 0;
}

static int prof_ctl_bool(bool *var, bool *oldp, const bool *newp) {
  if (!opt_prof) return ENOENT;
  bool old = newp != NULL ? __atomic_exchange_n(var, *newp, __ATOMIC_RELAXED) : __atomic_load_n(var, __ATOMIC_RELAXED);
  if (oldp != NULL) *oldp = old;
  return 0;
}

int prof_ctl_active(bool *oldp, const bool *newp) { return prof_ctl_bool(&prof_active_now, oldp, newp); }
int prof_ctl_gdump(bool *oldp, const bool *newp) { return prof_ctl_bool(&prof_gdump_now, oldp, newp); }
int prof_ctl_thread_active_init(bool *oldp, const bool *newp) {
  return prof_ctl_bool(&prof_thread_active_init_now, oldp, newp);
}

int prof_ctl_thread_active(bool *oldp, const bool *newp) {
  if (!opt_prof) return ENOENT;
  prof_tdata_t *td = prof_tdata_get();
  if (td == NULL) return EAGAIN;
  return prof_ctl_bool(&td->active, oldp, newp);
}

int prof_ctl_thread_name(const char **oldp, const char *const *newp) {
  if (!opt_prof) return ENOENT;
  prof_tdata_t *td = prof_tdata_get();
  if (td == NULL) return EAGAIN;
  if (oldp != NULL) *oldp = td->name;
  if (newp != NULL) {
    const char *name = *newp;
    if (name == NULL) return EINVAL;
    size_t len = strlen(name);
    if (len >= PROF_NAME_MAX) return EINVAL;
    /* Printable characters only: a name goes on one line of a dump. */
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) return EFAULT;
    xmutex_lock(&prof_tdata_mtx);
    memcpy(td->name, name, len + 1);
    xmutex_unlock(&prof_tdata_mtx);
  }
  return 0;
}

/* ---- fork ---- */

/* The profiler's lock order: a dump's lock, then a bucket's, then the
 * contexts', then the threads' (base's after all of them). */
void prof_prefork(void) {
  if (!opt_prof) return;
  prof_dump_prefork();
  for (unsigned i = 0; i < PROF_REC_NLOCKS; i++) xmutex_prefork(&prof_rec_mtx[i]);
  xmutex_prefork(&prof_ctx_mtx);
  xmutex_prefork(&prof_tdata_mtx);
}

void prof_postfork_parent(void) {
  if (!opt_prof) return;
  xmutex_postfork_parent(&prof_tdata_mtx);
  xmutex_postfork_parent(&prof_ctx_mtx);
  for (unsigned i = 0; i < PROF_REC_NLOCKS; i++) xmutex_postfork_parent(&prof_rec_mtx[i]);
  prof_dump_postfork_parent();
}

void prof_postfork_child(void) {
  if (!opt_prof) return;
  xmutex_postfork_child(&prof_tdata_mtx);
  xmutex_postfork_child(&prof_ctx_mtx);
  for (unsigned i = 0; i < PROF_REC_NLOCKS; i++) xmutex_postfork_child(&prof_rec_mtx[i]);
  prof_dump_postfork_child();
}
