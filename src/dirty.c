/* dirty: the purge engine of both levels of an arena (dirty.h). */
#include "xalloc/internal/dirty.h"
#include "xalloc/internal/chunk.h"

void dirty_init(dirty_t *d, ssize_t dirty_ms, ssize_t muzzy_ms, uint64_t now) {
  for (unsigned k = 0; k < DIRTY_NKINDS; k++) {
    d->list[k].prev = d->list[k].next = &d->list[k];
    d->npages[k] = 0;
  }
  decay_init(&d->decay[DIRTY_D], dirty_ms, now);
  decay_init(&d->decay[DIRTY_M], muzzy_ms, now);
}

void dirty_collect(dirty_t *d, size_t dirty_limit, size_t muzzy_limit, bool lazy, dirty_take_fn take, void *ctx) {
  const size_t limit[DIRTY_NKINDS] = {dirty_limit, muzzy_limit};
  for (unsigned k = 0; k < DIRTY_NKINDS; k++) {
    unsigned op = k == DIRTY_D && lazy ? CHUNK_PURGE_LAZY : CHUNK_PURGE_FORCED;
    while (d->npages[k] > limit[k] && !dirty_list_empty(d, k)) {
      size_t before[DIRTY_NKINDS] = {d->npages[DIRTY_D], d->npages[DIRTY_M]};
      take(ctx, d->list[k].next, k, op);
      /* The take function dirty_del-ed the item from each list it was on:
       * what left counts as removed, not as reused (decay.h). */
      for (unsigned j = 0; j < DIRTY_NKINDS; j++) decay_removed(&d->decay[j], before[j] - d->npages[j]);
    }
  }
}

void dirty_step(dirty_t *d, uint64_t now, dirty_take_fn take, void *ctx) {
  decay_t *dd = &d->decay[DIRTY_D], *dm = &d->decay[DIRTY_M];
  /* What the program did not reuse in the reuse window goes for good
   * first (decay.h), then the curve's share goes (lazily when the muzzy
   * decay time is not 0). */
  size_t idle_d = decay_idle(dd, now, d->npages[DIRTY_D]);
  size_t idle_m = decay_idle(dm, now, d->npages[DIRTY_M]);
  if (idle_d != 0 || idle_m != 0)
    dirty_collect(d, d->npages[DIRTY_D] - idle_d, d->npages[DIRTY_M] - idle_m, false, take, ctx);
  size_t dl = SIZE_MAX, ml = SIZE_MAX;
  bool ad = decay_advance(dd, now, d->npages[DIRTY_D], &dl);
  bool am = decay_advance(dm, now, d->npages[DIRTY_M], &ml);
  if (ad || am) dirty_collect(d, ad ? dl : SIZE_MAX, am ? ml : SIZE_MAX, dm->time_ms != 0, take, ctx);
}

void dirty_settle(dirty_t *d) {
  for (unsigned k = 0; k < DIRTY_NKINDS; k++) decay_purged(&d->decay[k], d->npages[k]);
}

uint64_t dirty_ns_until(const dirty_t *d, uint64_t now) {
  uint64_t t = UINT64_MAX, u;
  for (unsigned k = 0; k < DIRTY_NKINDS; k++) {
    if (d->npages[k] == 0) continue;
    if ((u = decay_ns_until_epoch(&d->decay[k], now)) < t) t = u;
    if ((u = decay_ns_until_step(&d->decay[k], now)) < t) t = u;
  }
  return t;
}

void dirty_set_decay(dirty_t *d, unsigned kind, ssize_t ms, uint64_t now) {
  decay_reset(&d->decay[kind], ms, now, d->npages[kind]);
}
