/*
 * prof_dump: heap profile dumps in jemalloc's heap_v2 text format, and
 * the leak report at exit (prof.h). Written with write(2) from a buffer
 * on the stack: nothing is allocated, so a dump may run in any thread
 * while others allocate.
 *
 *   heap_v2/<mean bytes between samples>
 *     t*: <live samples>: <their bytes> [<samples ever>: <their bytes>]
 *     t<thread>: ... (one line per thread)
 *   @ 0x<pc> 0x<pc> ...             (a call stack, innermost first)
 *     t*: <live samples>: <bytes> [<ever>: <bytes>]
 *   ...
 *
 *   MAPPED_LIBRARIES:
 *   <a copy of /proc/self/maps>
 *
 * The counts are of samples, not unbiased: readers scale each line by
 * 1 / (1 - exp(-(bytes / count) / mean)), as jeprof does. The "ever"
 * columns are 0 unless prof_accum:true.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "xalloc/internal/opts.h"
#include "xalloc/internal/prof_int.h"
#include "xalloc/internal/sample.h"
#include "xalloc/internal/stack.h"

/* One dump at a time (its sequence numbers, and the table walk). */
static xmutex_t prof_dump_mtx = XMUTEX_INITIALIZER;
static uint64_t prof_dump_seq, prof_dump_iseq, prof_dump_mseq, prof_dump_useq;

typedef struct {
  int fd;
  bool failed;
  size_t len;
  char buf[4096];
} prof_out_t;

static void prof_out_flush(prof_out_t *o) {
  size_t off = 0;
  while (off < o->len && !o->failed) {
    ssize_t n = write(o->fd, o->buf + off, o->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) o->failed = true;
    else off += (size_t)n;
  }
  o->len = 0;
}

static void prof_out(prof_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prof_out(prof_out_t *o, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  size_t n = util_vformat(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n >= sizeof(line)) n = sizeof(line) - 1;
  if (o->len + n > sizeof(o->buf)) prof_out_flush(o);
  memcpy(o->buf + o->len, line, n);
  o->len += n;
}

static void prof_out_maps(prof_out_t *o) {
  prof_out_flush(o);
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (;;) {
    ssize_t n = read(fd, o->buf, sizeof(o->buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    o->len = (size_t)n;
    prof_out_flush(o);
  }
  close(fd);
}

static bool prof_write(int fd) {
  prof_out_t o;
  o.fd = fd;
  o.failed = false;
  o.len = 0;
  uint64_t co = 0, cb = 0, ao = 0, ab = 0;
  xmutex_lock(&prof_tdata_mtx);
  for (prof_tdata_t *td = prof_tdata_list; td != NULL; td = td->next) {
    co += __atomic_load_n(&td->cur_objs, __ATOMIC_RELAXED);
    cb += __atomic_load_n(&td->cur_bytes, __ATOMIC_RELAXED);
    ao += __atomic_load_n(&td->accum_objs, __ATOMIC_RELAXED);
    ab += __atomic_load_n(&td->accum_bytes, __ATOMIC_RELAXED);
  }
  bool accum = opt_prof_accum;
  prof_out(&o, "heap_v2/%llu\n  t*: %llu: %llu [%llu: %llu]\n", (unsigned long long)prof_sample_mean(),
           (unsigned long long)co, (unsigned long long)cb, (unsigned long long)(accum ? ao : 0),
           (unsigned long long)(accum ? ab : 0));
  for (prof_tdata_t *td = prof_tdata_list; td != NULL; td = td->next) {
    uint64_t o1 = __atomic_load_n(&td->cur_objs, __ATOMIC_RELAXED);
    uint64_t a1 = __atomic_load_n(&td->accum_objs, __ATOMIC_RELAXED);
    if (o1 == 0 && (!accum || a1 == 0) && td->name[0] == '\0') continue;
    prof_out(&o, "  t%llu: %llu: %llu [%llu: %llu]%s%s\n", (unsigned long long)td->tid, (unsigned long long)o1,
             (unsigned long long)__atomic_load_n(&td->cur_bytes, __ATOMIC_RELAXED),
             (unsigned long long)(accum ? a1 : 0),
             (unsigned long long)(accum ? __atomic_load_n(&td->accum_bytes, __ATOMIC_RELAXED) : 0),
             td->name[0] != '\0' ? " " : "", td->name);
  }
  xmutex_unlock(&prof_tdata_mtx);
  xmutex_lock(&prof_ctx_mtx);
  for (unsigned i = 0; i < PROF_CTX_NBUCKETS; i++) {
    for (prof_ctx_t *c = prof_ctx_table[i]; c != NULL; c = c->next) {
      if (c->cur_objs == 0 && (!accum || c->accum_objs == 0)) continue;
      prof_out(&o, "@");
      for (unsigned f = 0; f < c->nframes; f++) prof_out(&o, " %p", c->frames[f]);
      prof_out(&o, "\n  t*: %llu: %llu [%llu: %llu]\n", (unsigned long long)c->cur_objs,
               (unsigned long long)c->cur_bytes, (unsigned long long)(accum ? c->accum_objs : 0),
               (unsigned long long)(accum ? c->accum_bytes : 0));
    }
  }
  xmutex_unlock(&prof_ctx_mtx);
  prof_out(&o, "\nMAPPED_LIBRARIES:\n");
  prof_out_maps(&o);
  prof_out_flush(&o);
  return !o.failed;
}

static int prof_dump_locked(const char *filename) {
  int fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return EFAULT;
  bool ok = prof_write(fd);
  if (close(fd) != 0) ok = false;
  return ok ? 0 : EFAULT;
}

int prof_dump_file(const char *filename) {
  if (!opt_prof) return ENOENT;
  xmutex_lock(&prof_dump_mtx);
  int err = prof_dump_locked(filename);
  xmutex_unlock(&prof_dump_mtx);
  return err;
}

int prof_dump_kind(char kind) {
  if (!opt_prof) return ENOENT;
  char name[320]; /* prof_prefix: at most 255 characters */
  char kstr[2] = {kind, '\0'};
  xmutex_lock(&prof_dump_mtx);
  uint64_t *vseq = kind == 'i' ? &prof_dump_iseq : kind == 'm' ? &prof_dump_mseq : kind == 'u' ? &prof_dump_useq : NULL;
  if (vseq != NULL)
    util_format(name, sizeof(name), "%s.%d.%llu.%s%llu.heap", opt_prof_prefix, (int)getpid(),
                (unsigned long long)prof_dump_seq, kstr, (unsigned long long)*vseq);
  else
    util_format(name, sizeof(name), "%s.%d.%llu.%s.heap", opt_prof_prefix, (int)getpid(),
                (unsigned long long)prof_dump_seq, kstr);
  prof_dump_seq++;
  if (vseq != NULL) (*vseq)++;
  int err = prof_dump_locked(name);
  xmutex_unlock(&prof_dump_mtx);
  if (err != 0 && kind != 'm') util_warn("xalloc: cannot write the heap profile %s\n", name);
  return err;
}

int prof_ctl_dump(const char *filename) {
  if (!opt_prof) return ENOENT;
  return filename != NULL ? prof_dump_file(filename) : prof_dump_kind('m');
}

/* The unbiased estimate of a line: count and bytes scaled by
 * 1 / (1 - exp(-(bytes / count) / mean)). */
static void prof_unbias(uint64_t n, uint64_t bytes, double *on, double *ob) {
  if (n == 0) {
    *on = *ob = 0;
    return;
  }
  double ratio = ((double)bytes / (double)n) / (double)prof_sample_mean();
  double scale = 1.0 / (1.0 - sample_exp_neg(ratio));
  *on = (double)n * scale;
  *ob = (double)bytes * scale;
}

#define PROF_LEAK_TOP 8

void prof_leak_report(void) {
  /* The PROF_LEAK_TOP contexts with the most (estimated) live bytes. */
  prof_ctx_t *top[PROF_LEAK_TOP];
  double top_bytes[PROF_LEAK_TOP], top_objs[PROF_LEAK_TOP];
  unsigned ntop = 0;
  double bytes = 0, objs = 0;
  size_t nctx = 0;
  xmutex_lock(&prof_ctx_mtx);
  for (unsigned i = 0; i < PROF_CTX_NBUCKETS; i++) {
    for (prof_ctx_t *c = prof_ctx_table[i]; c != NULL; c = c->next) {
      if (c->cur_objs == 0) continue;
      double n, b;
      prof_unbias(c->cur_objs, c->cur_bytes, &n, &b);
      objs += n;
      bytes += b;
      nctx++;
      /* Insert into the sorted top list (largest first). */
      unsigned k = ntop;
      if (k == PROF_LEAK_TOP) {
        if (b <= top_bytes[PROF_LEAK_TOP - 1]) continue;
        k = PROF_LEAK_TOP - 1;
      } else {
        ntop++;
      }
      while (k > 0 && top_bytes[k - 1] < b) {
        top[k] = top[k - 1];
        top_bytes[k] = top_bytes[k - 1];
        top_objs[k] = top_objs[k - 1];
        k--;
      }
      top[k] = c;
      top_bytes[k] = b;
      top_objs[k] = n;
    }
  }
  xmutex_unlock(&prof_ctx_mtx);
  if (nctx == 0) return;
  util_printf("xalloc: leak approximation summary: ~%llu bytes, ~%llu objects, >= %zu contexts\n",
              (unsigned long long)(bytes + 0.5), (unsigned long long)(objs + 0.5), nctx);
  for (unsigned i = 0; i < ntop; i++) {
    util_printf("xalloc: leak %u of %u: ~%llu bytes in ~%llu objects, allocated at:\n", i + 1, (unsigned)nctx,
                (unsigned long long)(top_bytes[i] + 0.5), (unsigned long long)(top_objs[i] + 0.5));
    /* Contexts are never freed: the frames stay valid without the lock. */
    stack_write(STDERR_FILENO, top[i]->frames, top[i]->nframes > 16 ? 16 : top[i]->nframes);
  }
  if (opt_prof_final)
    util_printf("xalloc: run jeprof (or bin/xalloc-prof) on the final dump, %s.%d.*.f.heap, for leak detail\n",
                opt_prof_prefix, (int)getpid());
}

void prof_dump_prefork(void) { xmutex_prefork(&prof_dump_mtx); }
void prof_dump_postfork_parent(void) { xmutex_postfork_parent(&prof_dump_mtx); }
void prof_dump_postfork_child(void) { xmutex_postfork_child(&prof_dump_mtx); }
