/*
 * prof_int: what the profiler's two files share: prof.c (records,
 * contexts, threads, mallctl) and prof_dump.c (heap_v2 dumps, the leak
 * report at exit).
 */
#ifndef XALLOC_INTERNAL_PROF_INT_H
#define XALLOC_INTERNAL_PROF_INT_H

#include "xalloc/internal/mutex.h"
#include "xalloc/internal/prof.h"

#define PROF_NAME_MAX 64

/* A thread that sampled (or set its name or activity). Counters are
 * updated with atomics; name under prof_tdata_mtx. */
typedef struct prof_tdata_s prof_tdata_t;
struct prof_tdata_s {
  prof_tdata_t *next;
  uint64_t tid;
  bool active;
  uint64_t cur_objs, cur_bytes, accum_objs, accum_bytes;
  char name[PROF_NAME_MAX];
};
extern prof_tdata_t *prof_tdata_list;
extern xmutex_t prof_tdata_mtx;

/* A distinct call stack (innermost frame first) and its samples' counts
 * (prof_ctx_mtx). Never freed. */
typedef struct prof_ctx_s prof_ctx_t;
struct prof_ctx_s {
  prof_ctx_t *next;
  uint64_t hash;
  uint64_t cur_objs, cur_bytes, accum_objs, accum_bytes;
  unsigned nframes;
  void *frames[];
};
#define PROF_CTX_NBUCKETS 4096
extern prof_ctx_t *prof_ctx_table[PROF_CTX_NBUCKETS];
extern xmutex_t prof_ctx_mtx;
extern size_t prof_nctx;

extern bool prof_gdump_now;
extern bool prof_dump_pending, prof_gdump_pending;

/* Dump to the next PREFIX.PID.SEQ.<kind>[N].heap: 'f' (final), 'i'
 * (interval), 'm' (prof.dump), 'u' (gdump). */
int prof_dump_kind(char kind);
/* Dump to filename. 0, or EFAULT if it cannot be written. */
int prof_dump_file(const char *filename);
/* prof_leak: the summary and the largest leaking stacks on stderr. */
void prof_leak_report(void);
void prof_dump_prefork(void);
void prof_dump_postfork_parent(void);
void prof_dump_postfork_child(void);
#endif
