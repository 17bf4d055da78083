/*
 * huge: allocations of one chunk and more. Each takes a chunk-aligned range
 * of CHUNK_CEILING(usize) bytes straight from its arena's chunk trees, is
 * described by an extent_node_t (kind META_HUGE) that every chunk of the
 * range maps to in the radix tree, and is kept in the arena's huge tree.
 * The bytes past usize are never handed out.
 */
#ifndef XALLOC_INTERNAL_HUGE_H
#define XALLOC_INTERNAL_HUGE_H

#include "xalloc/internal/arena.h"

void *huge_malloc(arena_t *arena, size_t usize, size_t alignment, bool zero);
void huge_dalloc(extent_node_t *node, void *ptr);
/* Resize in place to usize (huge); true if it can't. */
bool huge_ralloc_in_place(extent_node_t *node, void *ptr, size_t usize, bool zero);
/* Free every huge allocation of the arena (arena.<i>.reset). */
void huge_reset(arena_t *arena);
#endif
