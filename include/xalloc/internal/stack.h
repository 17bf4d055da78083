/*
 * stack: call stacks captured inside malloc, for the heap profiler's
 * samples (prof.c) and for the reports that name where a block was
 * allocated or freed.
 *
 * Capture goes through the C library's unwinder (backtrace(3), which
 * reads the .eh_frame unwind tables libgcc_s interprets), so it works on
 * code built without frame pointers, Debian's default. Its first call
 * loads libgcc_s and allocates: stack_boot() makes that call once, after
 * initialization, and a per-thread flag turns every capture made while a
 * capture is in progress (the allocations of that first call, a signal
 * arriving during a capture) into an empty stack instead of a recursion.
 * Nothing here takes an allocator lock, and callers must hold none (the
 * unwinder takes the dynamic loader's lock).
 *
 * What is lost: frames of code without unwind information (hand-written
 * assembly, JIT-compiled code, some stripped libraries) end the stack
 * there; inlined functions appear as their caller.
 */
#ifndef XALLOC_INTERNAL_STACK_H
#define XALLOC_INTERNAL_STACK_H

#include "xalloc/internal/util.h"

/* Deepest stack kept (frames beyond it are dropped, the innermost kept). */
#define STACK_DEPTH_MAX 64

/*
 * Store the return addresses of the calling thread's stack in frames
 * (at most max), innermost first, skipping the innermost skip frames
 * (stack_capture's own frame is never included). Returns the number
 * stored: 0 while another capture runs on this thread.
 */
unsigned stack_capture(void **frames, unsigned max, unsigned skip);
/* Captures that fell back to backtrace(3) (tests). */
extern uint64_t stack_nbacktrace;
/*
 * The same for the caller of the allocator: the frames inside xalloc's
 * own shared object (the allocator's entry point and everything below
 * it) are dropped, so frames[0] is the return address into the function
 * that called malloc (or new, realloc, ...). Statically linked, xalloc's
 * frames cannot be told from the program's and are kept.
 */
unsigned stack_capture_caller(void **frames, unsigned max);
/* A capture is in progress on the calling thread (its allocations must
 * not be sampled). */
bool stack_busy(void);
/* Load the unwinder (the first backtrace call allocates): once, with
 * malloc usable and no allocator lock held. */
void stack_boot(void);
/*
 * Format frame pc as "0x<pc> <symbol>+0x<off> (<object>)" into buf (what
 * dladdr can name; without a symbol, "(<object>+0x<offset in it>)"), no
 * allocation. Returns the length written (buf always terminated).
 */
size_t stack_format_frame(char *buf, size_t size, const void *pc);
/* Write frames to fd, one "    #i <frame>" line each. */
void stack_write(int fd, void *const *frames, unsigned n);
#endif
