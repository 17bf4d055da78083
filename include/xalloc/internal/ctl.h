/*
 * ctl: the mallctl namespace (see doc/API.md for every name). Names are
 * dot-separated paths in a static tree; a path component is a child's name
 * or, under indexed nodes (arena.<i>, arenas.bin.<i>, stats.arenas.<i>,
 * ...), a decimal index. A MIB is the same path as numbers: a child's
 * position, or the index. Errors are jemalloc's: ENOENT for a name (or
 * index) that does not exist, EINVAL for a wrong value length, EPERM for
 * writing a read-only name (or reading a write-only one), EFAULT for an
 * operation on an arena or cache that cannot take it, EAGAIN when
 * resources run out.
 *
 * Statistics under stats.* come from a snapshot refreshed by writing
 * "epoch" (as in jemalloc); everything else is read live. One lock
 * (ctl_mtx, taken before any other allocator lock) protects the snapshot
 * and the namespace's own state: it is held for the lookup and across the
 * epoch, stats.* and opt.* handlers, and released before any other handler
 * runs (those call into the arenas, and the user's extent hooks they reach
 * may call mallctl).
 */
#ifndef XALLOC_INTERNAL_CTL_H
#define XALLOC_INTERNAL_CTL_H

#include "xalloc/internal/util.h"

int ctl_byname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int ctl_nametomib(const char *name, size_t *mibp, size_t *miblenp);
int ctl_bymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

void ctl_prefork(void);
void ctl_postfork_parent(void);
void ctl_postfork_child(void);
#endif
