/* rb: the red-black tree against a simple array model, and its validator. */
#include "xtest.h"

#include "xalloc/internal/rb.h"

typedef struct {
  rb_node_t link;
  long key;
  bool in;
} item_t;

static int item_cmp(const rb_node_t *a, const rb_node_t *b) {
  long x = rb_entry(a, item_t, link)->key, y = rb_entry(b, item_t, link)->key;
  return x < y ? -1 : x > y;
}

static long key_of(const rb_node_t *n) { return n ? rb_entry(n, item_t, link)->key : -1; }

/* Keys are even so that searches can also probe the odd gaps. */
#define NKEYS 512
static item_t items[NKEYS];

static void items_reset(void) {
  memset(items, 0, sizeof(items));
  for (long i = 0; i < NKEYS; i++) items[i].key = 2 * i;
}

static unsigned height(const rb_node_t *n) {
  if (!n) return 0;
  unsigned l = height(n->left), r = height(n->right);
  return 1 + (l > r ? l : r);
}

/* The model: items[i].in. Model answers for a probe key k (any integer). */
static long model_nsearch(long k) {
  for (long i = 0; i < NKEYS; i++)
    if (items[i].in && items[i].key >= k) return items[i].key;
  return -1;
}
static long model_psearch(long k) {
  for (long i = NKEYS - 1; i >= 0; i--)
    if (items[i].in && items[i].key <= k) return items[i].key;
  return -1;
}

/* Full comparison of the tree with the model. */
static void check_against_model(const rb_tree_t *t, size_t n) {
  assert_true(rb_validate(t));
  assert_int_equal(t->n, n);
  assert_int_equal(rb_empty(t), n == 0);
  /* Forward walk gives exactly the present keys in order. */
  const rb_node_t *node = rb_first(t);
  for (long i = 0; i < NKEYS; i++) {
    if (!items[i].in) continue;
    assert_non_null(node);
    assert_ptr_equal(node, &items[i].link);
    node = rb_next(node);
  }
  assert_null(node);
  /* Backward walk. */
  node = rb_last(t);
  for (long i = NKEYS - 1; i >= 0; i--) {
    if (!items[i].in) continue;
    assert_ptr_equal(node, &items[i].link);
    node = rb_prev(node);
  }
  assert_null(node);
  /* Balanced: height <= 2 log2(n + 1). */
  unsigned h = height(t->root), lg = 0;
  while (((size_t)1 << lg) < n + 1) lg++;
  assert_true(h <= 2 * lg);
}

static void check_searches(const rb_tree_t *t, uint64_t *seed, int nprobes) {
  for (int p = 0; p < nprobes; p++) {
    long k = (long)(xtest_rand(seed) % (2 * NKEYS + 4)) - 2;
    item_t probe = {.key = k};
    assert_int_equal(key_of(rb_nsearch(t, &probe.link)), model_nsearch(k));
    assert_int_equal(key_of(rb_psearch(t, &probe.link)), model_psearch(k));
    const rb_node_t *s = rb_search(t, &probe.link);
    bool present = k >= 0 && k % 2 == 0 && k / 2 < NKEYS && items[k / 2].in;
    if (present)
      assert_ptr_equal(s, &items[k / 2].link);
    else
      assert_null(s);
  }
}

static void test_empty(void **state) {
  (void)state;
  rb_tree_t t;
  rb_init(&t, item_cmp);
  items_reset();
  assert_true(rb_empty(&t));
  assert_true(rb_validate(&t));
  assert_null(rb_first(&t));
  assert_null(rb_last(&t));
  item_t probe = {.key = 5};
  assert_null(rb_nsearch(&t, &probe.link));
  assert_null(rb_psearch(&t, &probe.link));
  assert_null(rb_search(&t, &probe.link));
  /* One node. */
  rb_insert(&t, &items[3].link);
  items[3].in = true;
  check_against_model(&t, 1);
  assert_false(items[3].link.red);
  rb_remove(&t, &items[3].link);
  items[3].in = false;
  check_against_model(&t, 0);
  assert_null(t.root);
}

static void test_random_ops(void **state) {
  (void)state;
  for (uint64_t s = 1; s <= 60; s++) {
    uint64_t seed = s * 0x9E3779B97F4A7C15ULL;
    rb_tree_t t;
    rb_init(&t, item_cmp);
    items_reset();
    size_t n = 0;
    /* Vary the fill target so that trees grow, shrink and churn. */
    unsigned target = 1 + (unsigned)(xtest_rand(&seed) % NKEYS);
    for (int op = 0; op < 3000; op++) {
      long i = (long)(xtest_rand(&seed) % NKEYS);
      bool want_insert = n < target ? (xtest_rand(&seed) % 4 != 0) : (xtest_rand(&seed) % 4 == 0);
      if (op % 700 == 699) target = 1 + (unsigned)(xtest_rand(&seed) % NKEYS);
      if (want_insert && !items[i].in) {
        rb_insert(&t, &items[i].link);
        items[i].in = true;
        n++;
      } else if (!want_insert && items[i].in) {
        rb_remove(&t, &items[i].link);
        items[i].in = false;
        n--;
      } else {
        continue;
      }
      assert_true(rb_validate(&t));
      assert_int_equal(t.n, n);
      check_searches(&t, &seed, 2);
      if (op % 97 == 0) check_against_model(&t, n);
    }
    check_against_model(&t, n);
    check_searches(&t, &seed, 500);
    /* Drain in random order. */
    while (n > 0) {
      long i = (long)(xtest_rand(&seed) % NKEYS);
      if (!items[i].in) continue;
      rb_remove(&t, &items[i].link);
      items[i].in = false;
      n--;
      assert_true(rb_validate(&t));
      if (n % 37 == 0) check_against_model(&t, n);
    }
    assert_null(t.root);
    assert_true(rb_empty(&t));
  }
}

static void test_sequential(void **state) {
  (void)state;
  /* Ascending and descending inserts, removals from both ends and the
   * root: the classic rebalancing worst cases. */
  rb_tree_t t;
  for (int mode = 0; mode < 4; mode++) {
    rb_init(&t, item_cmp);
    items_reset();
    for (long i = 0; i < NKEYS; i++) {
      long k = mode % 2 ? NKEYS - 1 - i : i;
      rb_insert(&t, &items[k].link);
      items[k].in = true;
      assert_true(rb_validate(&t));
    }
    check_against_model(&t, NKEYS);
    size_t n = NKEYS;
    while (n > 0) {
      rb_node_t *victim = mode < 2 ? (n % 2 ? rb_first(&t) : rb_last(&t)) : t.root;
      item_t *it = rb_entry(victim, item_t, link);
      rb_remove(&t, victim);
      it->in = false;
      n--;
      assert_true(rb_validate(&t));
      assert_int_equal(t.n, n);
    }
    check_against_model(&t, 0);
  }
}

static void build_tree(rb_tree_t *t, size_t n, uint64_t seed) {
  rb_init(t, item_cmp);
  items_reset();
  size_t have = 0;
  while (have < n) {
    long i = (long)(xtest_rand(&seed) % NKEYS);
    if (items[i].in) continue;
    rb_insert(t, &items[i].link);
    items[i].in = true;
    have++;
  }
  assert_true(rb_validate(t));
}

static void test_validator_catches_breakage(void **state) {
  (void)state;
  rb_tree_t t;
  build_tree(&t, 300, 7);
  /* Every single colour flip breaks a red-black tree: the root turns red,
   * or a black height changes, or two reds meet. */
  unsigned nred = 0;
  for (long i = 0; i < NKEYS; i++) {
    if (!items[i].in) continue;
    rb_node_t *n = &items[i].link;
    nred += n->red;
    n->red = !n->red;
    assert_false(rb_validate(&t));
    n->red = !n->red;
    assert_true(rb_validate(&t));
  }
  assert_true(nred > 0);
  /* Wrong count. */
  t.n++;
  assert_false(rb_validate(&t));
  t.n -= 2;
  assert_false(rb_validate(&t));
  t.n++;
  assert_true(rb_validate(&t));
  /* Local order: swap the keys of a node and its successor. */
  for (rb_node_t *n = rb_first(&t); n != NULL && rb_next(n) != NULL; n = rb_next(rb_next(n))) {
    item_t *a = rb_entry(n, item_t, link), *b = rb_entry(rb_next(n), item_t, link);
    long k = a->key;
    a->key = b->key;
    b->key = k;
    assert_false(rb_validate(&t));
    b->key = a->key;
    a->key = k;
    assert_true(rb_validate(&t));
  }
  /* Global order only: the largest key of the root's left subtree made
   * larger than the root (still larger than its own parent). */
  rb_node_t *root = t.root;
  assert_non_null(root->left);
  rb_node_t *x = root->left;
  while (x->right) x = x->right;
  assert_ptr_not_equal(x, root->left); /* deep enough that only the global check sees it */
  item_t *xi = rb_entry(x, item_t, link);
  long old = xi->key;
  xi->key = rb_entry(root, item_t, link)->key + 1; /* odd: unique */
  assert_false(rb_validate(&t));
  xi->key = old;
  assert_true(rb_validate(&t));
  /* Same on the right: smallest key of the right subtree below the root. */
  x = root->right;
  while (x->left) x = x->left;
  xi = rb_entry(x, item_t, link);
  old = xi->key;
  xi->key = rb_entry(root, item_t, link)->key - 1;
  assert_false(rb_validate(&t));
  xi->key = old;
  assert_true(rb_validate(&t));
  /* Broken parent pointers. */
  rb_node_t *leafish = rb_last(&t);
  rb_node_t *p = leafish->parent;
  leafish->parent = root == p ? root->left : root;
  assert_false(rb_validate(&t));
  leafish->parent = p;
  assert_true(rb_validate(&t));
  root->parent = root->left;
  assert_false(rb_validate(&t));
  root->parent = NULL;
  assert_true(rb_validate(&t));
  /* A node unlinked from the tree behind its back (count mismatch). */
  rb_node_t *drop = rb_first(&t);
  rb_node_t *dp = drop->parent;
  assert_null(drop->left);
  rb_node_t *saved_right = drop->right;
  if (saved_right) saved_right->parent = dp;
  dp->left = saved_right;
  assert_false(rb_validate(&t));
  dp->left = drop;
  if (saved_right) saved_right->parent = drop;
  assert_true(rb_validate(&t));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_random_ops),
      cmocka_unit_test(test_sequential),
      cmocka_unit_test(test_validator_catches_breakage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
