/*
 * report: the one way a bad call is reported. Every check that finds a
 * bad pointer (double, invalid, interior, foreign, mis-sized or
 * mis-aligned free; a free object written after free, found at malloc or
 * leaving a thread cache; a realloc, malloc_usable_size, sallocx ... of
 * such a pointer) ends in report_bad, which prints one line on stderr,
 *
 *   xalloc: <what> of <ptr> (size class N, arena I): <detail>
 *
 * (the parenthesis shows what is known; detail only if given), built on
 * the stack without allocating, then aborts, or, with abort:false,
 * returns so that the caller ignores the call and the heap stays
 * consistent. <what> follows from the kind and the operation, e.g.
 * "double free", "invalid realloc (interior pointer)".
 */
#ifndef XALLOC_INTERNAL_REPORT_H
#define XALLOC_INTERNAL_REPORT_H

#include "xalloc/internal/arena.h"

typedef enum {
  BAD_FREED,      /* freed already: "double free" for a freeing op */
  BAD_INTERIOR,   /* inside an allocation, not its start */
  BAD_FREE_RUN,   /* into pages of an arena chunk that hold no allocation */
  BAD_FREE_CHUNK, /* into free chunk memory */
  BAD_NOT_OURS,   /* not allocated by xalloc */
  BAD_NOT_BLOCK,  /* in a chunk of another arena's, or no block there */
  BAD_TAG_LOST,   /* a free object lost its tag (op: "malloc", "flush" or "remote free") */
  BAD_SIZE,       /* a sized free with the wrong size */
  BAD_ALIGN,      /* an aligned sized free with the wrong alignment */
  BAD_TCACHE,     /* MALLOCX_TCACHE(i) of a cache that does not exist */
} report_kind_t;

/* Report what is wrong with ptr, given to op ("free", "realloc", ...):
 * size (0: unknown) is its size class, arena_ind its arena. */
void report_bad(const char *op, report_kind_t kind, const void *ptr, size_t size, unsigned arena_ind,
                const char *detail);
/* The same, with the size class and arena read from the metadata. */
void report_bad_find(const char *op, report_kind_t kind, const void *ptr, const char *detail);
/* A pointer that no arena chunk or huge record maps to: a second free of
 * a huge allocation (if still remembered), a pointer into free chunk
 * memory, or not xalloc's at all. */
void report_unowned(const char *op, const void *ptr);
/* A pointer into pages of arena a that hold no allocation: a double free
 * if it still carries the tag its first free wrote (with its size if the
 * free is remembered), else a pointer into a free run. */
void report_unallocated(arena_t *a, const void *ptr, const char *op);

/* Remember a freed large (arena lock held) or huge (huge_mtx held)
 * allocation, so that a second free of it is named with its size. */
void report_freed_large(arena_t *a, const void *ptr, size_t usize);
void report_freed_huge(arena_t *a, const void *ptr, size_t usize);

/* Reports made so far; tests may divert the lines to a hook (which then
 * replaces the write to stderr). */
extern uint64_t report_count;
extern void (*report_hook)(const char *line);
#endif
