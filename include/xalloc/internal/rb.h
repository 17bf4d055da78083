/*
 * rb: an intrusive red-black tree with parent pointers, ordered by a
 * comparator. Used for the size/address-ordered trees of free chunks and
 * free runs, and for address-ordered sets. Not thread-safe: callers hold
 * the lock of the structure that owns the tree.
 *
 * Invariants (rb_validate checks them): the root is black, no red node has
 * a red child, every root-to-leaf path has the same number of black nodes,
 * an in-order walk is sorted by cmp, and t->n counts the nodes.
 */
#ifndef XALLOC_INTERNAL_RB_H
#define XALLOC_INTERNAL_RB_H

#include "xalloc/internal/util.h"

typedef struct rb_node_s {
  struct rb_node_s *left, *right, *parent;
  bool red;
} rb_node_t;

typedef int (*rb_cmp_t)(const rb_node_t *a, const rb_node_t *b);

typedef struct {
  rb_node_t *root;
  rb_cmp_t cmp;
  size_t n;
} rb_tree_t;

#define rb_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

void rb_init(rb_tree_t *t, rb_cmp_t cmp);
/* Insert n; n must not compare equal to a node already in the tree. */
void rb_insert(rb_tree_t *t, rb_node_t *n);
void rb_remove(rb_tree_t *t, rb_node_t *n);
rb_node_t *rb_first(const rb_tree_t *t);
rb_node_t *rb_last(const rb_tree_t *t);
rb_node_t *rb_next(const rb_node_t *n);
rb_node_t *rb_prev(const rb_node_t *n);
/* Smallest node >= key, or NULL. */
rb_node_t *rb_nsearch(const rb_tree_t *t, const rb_node_t *key);
/* Largest node <= key, or NULL. */
rb_node_t *rb_psearch(const rb_tree_t *t, const rb_node_t *key);
/* Node equal to key, or NULL. */
rb_node_t *rb_search(const rb_tree_t *t, const rb_node_t *key);
static inline bool rb_empty(const rb_tree_t *t) { return t->root == NULL; }
/* Check every invariant; returns false (and never crashes) if one fails. */
bool rb_validate(const rb_tree_t *t);
#endif
