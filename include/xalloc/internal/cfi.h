/*
 * cfi: xalloc's own DWARF call frame information unwinder, x86-64 only,
 * for stack captures (unwind.c) without loading libgcc_s: programs that
 * do not link it (most C programs) would otherwise map it, and the pages
 * of libc that load it, only because a heap profile or guarded sampling
 * asked for stacks.
 *
 * It reads what the compiler emits for every function (.eh_frame, with
 * the .eh_frame_hdr binary search table the linker adds), found with
 * glibc's lock-free _dl_find_object: for each frame, the CIE and FDE
 * covering its pc, their instructions run up to the pc, giving the rule of
 * the CFA (a register, rsp or rbp, plus an offset), of the return address
 * and of rbp (saved at an offset from the CFA, or kept); a signal handler's
 * caller, the kernel's signal return trampoline, continues in the context
 * saved in its signal frame, as libgcc does. Anything else --
 * a CFA computed by a DWARF expression (stack realignment),
 * a 64-bit length, a table encoding other than the linker's -- ends the
 * walk as incomplete, and the caller falls back (backtrace(3)). The walk
 * reads only the unwind tables of loaded objects and, on the stack,
 * addresses the tables name between the starting stack pointer and the
 * CFAs it computes (each above the last).
 */
#ifndef XALLOC_INTERNAL_CFI_H
#define XALLOC_INTERNAL_CFI_H

#include "xalloc/internal/util.h"

/* A frame as libgcc's _Unwind_Backtrace reports it: the return address
 * ip into the frame, the CFA of the frame it called (the stack pointer at
 * the call: ip was read at cfa - 8), and the frame's rbp at the call. */
typedef struct {
  uintptr_t ip, cfa, rbp;
} cfi_frame_t;

/* Walk the calling thread's stack from the caller of cfi_walk: at most max
 * frames into out. Returns the number stored; *complete is true when the
 * walk reached the outermost frame (its return address undefined, or 0),
 * false when it stopped early (max reached, a frame it cannot unwind). */
int cfi_walk(cfi_frame_t *out, unsigned max, bool *complete);
/* Whether ip is the kernel's signal return trampoline (mov $15, %rax;
 * syscall: a signal handler's return address), as libgcc tests it. */
bool cfi_sigreturn(uintptr_t ip);
/* Whether cfi_walk works here (x86-64 with _dl_find_object). */
bool cfi_available(void);
#endif
