/* rb: red-black tree (see rb.h for the invariants). */
#include "xalloc/internal/rb.h"

void rb_init(rb_tree_t *t, rb_cmp_t cmp) {
  t->root = NULL;
  t->cmp = cmp;
  t->n = 0;
}

static void rb_rotate_left(rb_tree_t *t, rb_node_t *x) {
  rb_node_t *y = x->right;
  x->right = y->left;
  if (y->left) y->left->parent = x;
  y->parent = x->parent;
  if (!x->parent) t->root = y;
  else if (x == x->parent->left) x->parent->left = y;
  else x->parent->right = y;
  y->left = x;
  x->parent = y;
}

static void rb_rotate_right(rb_tree_t *t, rb_node_t *x) {
  rb_node_t *y = x->left;
  x->left = y->right;
  if (y->right) y->right->parent = x;
  y->parent = x->parent;
  if (!x->parent) t->root = y;
  else if (x == x->parent->right) x->parent->right = y;
  else x->parent->left = y;
  y->right = x;
  x->parent = y;
}

void rb_insert(rb_tree_t *t, rb_node_t *n) {
  rb_node_t *parent = NULL, **link = &t->root;
  while (*link) {
    parent = *link;
    int c = t->cmp(n, parent);
    xassert(c != 0);
    link = c < 0 ? &parent->left : &parent->right;
  }
  n->left = n->right = NULL;
  n->parent = parent;
  n->red = true;
  *link = n;
  t->n++;
  /* Fix a red node with a red parent. */
  while ((parent = n->parent) && parent->red) {
    rb_node_t *gp = parent->parent;
    if (parent == gp->left) {
      rb_node_t *uncle = gp->right;
      if (uncle && uncle->red) {
        parent->red = uncle->red = false;
        gp->red = true;
        n = gp;
        continue;
      }
      if (n == parent->right) {
        rb_rotate_left(t, parent);
        n = parent;
        parent = n->parent;
      }
      parent->red = false;
      gp->red = true;
      rb_rotate_right(t, gp);
    } else {
      rb_node_t *uncle = gp->left;
      if (uncle && uncle->red) {
        parent->red = uncle->red = false;
        gp->red = true;
        n = gp;
        continue;
      }
      if (n == parent->left) {
        rb_rotate_right(t, parent);
        n = parent;
        parent = n->parent;
      }
      parent->red = false;
      gp->red = true;
      rb_rotate_left(t, gp);
    }
  }
  t->root->red = false;
}

/* Replace subtree u by subtree v (v may be NULL). */
static void rb_transplant(rb_tree_t *t, rb_node_t *u, rb_node_t *v) {
  if (!u->parent) t->root = v;
  else if (u == u->parent->left) u->parent->left = v;
  else u->parent->right = v;
  if (v) v->parent = u->parent;
}

void rb_remove(rb_tree_t *t, rb_node_t *z) {
  rb_node_t *x, *xparent;
  bool removed_red;
  if (!z->left) {
    x = z->right;
    xparent = z->parent;
    removed_red = z->red;
    rb_transplant(t, z, z->right);
  } else if (!z->right) {
    x = z->left;
    xparent = z->parent;
    removed_red = z->red;
    rb_transplant(t, z, z->left);
  } else {
    rb_node_t *y = z->right;
    while (y->left) y = y->left;
    removed_red = y->red;
    x = y->right;
    if (y->parent == z) {
      xparent = y;
    } else {
      xparent = y->parent;
      rb_transplant(t, y, y->right);
      y->right = z->right;
      y->right->parent = y;
    }
    rb_transplant(t, z, y);
    y->left = z->left;
    y->left->parent = y;
    y->red = z->red;
  }
  t->n--;
  if (removed_red) return;
  /* x carries an extra black. */
  while (x != t->root && (!x || !x->red)) {
    if (x == xparent->left) {
      rb_node_t *w = xparent->right;
      if (w->red) {
        w->red = false;
        xparent->red = true;
        rb_rotate_left(t, xparent);
        w = xparent->right;
      }
      if ((!w->left || !w->left->red) && (!w->right || !w->right->red)) {
        w->red = true;
        x = xparent;
        xparent = x->parent;
      } else {
        if (!w->right || !w->right->red) {
          w->left->red = false;
          w->red = true;
          rb_rotate_right(t, w);
          w = xparent->right;
        }
        w->red = xparent->red;
        xparent->red = false;
        if (w->right) w->right->red = false;
        rb_rotate_left(t, xparent);
        x = t->root;
        break;
      }
    } else {
      rb_node_t *w = xparent->left;
      if (w->red) {
        w->red = false;
        xparent->red = true;
        rb_rotate_right(t, xparent);
        w = xparent->left;
      }
      if ((!w->right || !w->right->red) && (!w->left || !w->left->red)) {
        w->red = true;
        x = xparent;
        xparent = x->parent;
      } else {
        if (!w->left || !w->left->red) {
          w->right->red = false;
          w->red = true;
          rb_rotate_left(t, w);
          w = xparent->left;
        }
        w->red = xparent->red;
        xparent->red = false;
        if (w->left) w->left->red = false;
        rb_rotate_right(t, xparent);
        x = t->root;
        break;
      }
    }
  }
  if (x) x->red = false;
}

rb_node_t *rb_first(const rb_tree_t *t) {
  rb_node_t *n = t->root;
  if (n)
    while (n->left) n = n->left;
  return n;
}

rb_node_t *rb_last(const rb_tree_t *t) {
  rb_node_t *n = t->root;
  if (n)
    while (n->right) n = n->right;
  return n;
}

rb_node_t *rb_next(const rb_node_t *n) {
  if (n->right) {
    n = n->right;
    while (n->left) n = n->left;
    return (rb_node_t *)n;
  }
  while (n->parent && n == n->parent->right) n = n->parent;
  return n->parent;
}

rb_node_t *rb_prev(const rb_node_t *n) {
  if (n->left) {
    n = n->left;
    while (n->right) n = n->right;
    return (rb_node_t *)n;
  }
  while (n->parent && n == n->parent->left) n = n->parent;
  return n->parent;
}

rb_node_t *rb_nsearch(const rb_tree_t *t, const rb_node_t *key) {
  rb_node_t *n = t->root, *best = NULL;
  while (n) {
    int c = t->cmp(key, n);
    if (c == 0) return n;
    if (c < 0) {
      best = n;
      n = n->left;
    } else {
      n = n->right;
    }
  }
  return best;
}

rb_node_t *rb_psearch(const rb_tree_t *t, const rb_node_t *key) {
  rb_node_t *n = t->root, *best = NULL;
  while (n) {
    int c = t->cmp(key, n);
    if (c == 0) return n;
    if (c > 0) {
      best = n;
      n = n->right;
    } else {
      n = n->left;
    }
  }
  return best;
}

rb_node_t *rb_search(const rb_tree_t *t, const rb_node_t *key) {
  rb_node_t *n = t->root;
  while (n) {
    int c = t->cmp(key, n);
    if (c == 0) return n;
    n = c < 0 ? n->left : n->right;
  }
  return NULL;
}

/* Returns the black height, or -1 if a rule is broken below n. */
static int rb_validate_node(const rb_tree_t *t, const rb_node_t *n, size_t *count) {
  if (!n) return 1;
  (*count)++;
  if (n->red && ((n->left && n->left->red) || (n->right && n->right->red))) return -1;
  if (n->left && (n->left->parent != n || t->cmp(n->left, n) >= 0)) return -1;
  if (n->right && (n->right->parent != n || t->cmp(n->right, n) <= 0)) return -1;
  int l = rb_validate_node(t, n->left, count);
  int r = rb_validate_node(t, n->right, count);
  if (l < 0 || r < 0 || l != r) return -1;
  return l + (n->red ? 0 : 1);
}

bool rb_validate(const rb_tree_t *t) {
  if (t->root && (t->root->red || t->root->parent)) return false;
  size_t count = 0;
  if (rb_validate_node(t, t->root, &count) < 0) return false;
  if (count != t->n) return false;
  /* Global order (the local parent/child checks do not imply it). */
  const rb_node_t *prev = NULL;
  for (const rb_node_t *n = rb_first(t); n; n = rb_next(n)) {
    if (prev && t->cmp(prev, n) >= 0) return false;
    prev = n;
  }
  return true;
}
