/*
 * unwind: a fast path for stack.c's captures on x86-64. A full unwinder
 * (xalloc's own, cfi.h; libgcc's behind backtrace(3) where that is not
 * available) reads the DWARF unwind tables of every frame, 1,500-2,000
 * instructions a frame. Most frames of a program compiled
 * without frame pointers find their caller's stack pointer at a fixed
 * distance above their own at each call site: the CFA (canonical frame
 * address, the stack pointer before the call) of the frame whose return
 * address is ip is its callee's CFA + a constant that depends on ip alone.
 * This cache learns that constant for each return address from full
 * unwinds (which give each frame's CFA), and a capture walks the stack
 * with it: read the return address at CFA - 8, add the cached constant,
 * repeat, until a return address the cache marks as the outermost frame.
 *
 * Safety: a walk reads only between its starting CFA and the highest CFA
 * a full unwind on this thread reached (memory of the thread's stack, so
 * mapped), with CFAs strictly increasing, and starts only within twice the
 * longest stretch a full unwind walked below that CFA (a capture on
 * another stack, a coroutine's or a signal stack, takes the full
 * unwinder); any return address not in the
 * cache ends the fast walk and the capture takes the full unwinder. A
 * function whose frame size varies at a call site (alloca, variable-length
 * arrays, dynamic realignment: its CFA is kept in rbp) gives different
 * constants for one return address: the first full unwind that sees a
 * second value marks the address as never cached, and one capture in 64
 * is made both ways and compared, marking the addresses where they differ.
 */
#ifndef XALLOC_INTERNAL_UNWIND_H
#define XALLOC_INTERNAL_UNWIND_H

#include "xalloc/internal/util.h"

/* Take libgcc's unwinder entry points if backtrace(3) loaded it (where
 * cfi.h's unwinder is not available). */
void unwind_boot(void);
/*
 * Capture from the frame whose CFA is cfa (the caller of the capture
 * function; frames[0] is the return address at cfa - 8) at most max return
 * addresses, skipping the first skip. Returns the number stored, or -1 if
 * the fast path cannot (a miss): the caller then uses unwind_full.
 */
int unwind_fast(uintptr_t cfa, void **frames, unsigned max, unsigned skip);
/*
 * The full unwind from the frame whose CFA is cfa (as above), learning the
 * cache from it. Returns the number stored, or -1 if no full unwinder is
 * there or the walk did not reach cfa (the caller then uses backtrace(3)).
 */
int unwind_full(uintptr_t cfa, void **frames, unsigned max, unsigned skip);
/* Captures made by the cache, and full unwinds (tests). */
extern uint64_t unwind_nfast, unwind_nfull;
#endif
