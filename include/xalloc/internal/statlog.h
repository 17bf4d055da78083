/*
 * statlog: memory over time (stats_interval_ms:N, stats_log:PATH). A
 * thread of its own writes one line every N ms, so that a person (or
 * bench/memidle.py) can watch an idle process give memory back:
 *
 *   xalloc-stats: pid=4242 time=1764590400.123 elapsed_ms=500 event=interval
 *     rss=... rss_nolazy=... lazyfree=... allocated=... active=...
 *     resident=... dirty=... muzzy=... retained=... mapped=... metadata=...
 *
 * (one line; every figure in bytes). rss is the kernel's resident set
 * (/proc/self/statm, what top shows); rss_nolazy is Rss minus LazyFree of
 * /proc/self/smaps_rollup (pages purged with MADV_FREE still count in RSS
 * until the kernel takes them); the others are xalloc's own figures
 * (stats_totals, doc/STATS.md). A figure that cannot be read is "-".
 *
 * The lines go to a copy of stderr taken when the thread starts, or,
 * with stats_log:PATH, to PATH, opened O_APPEND (created 0644 if absent;
 * several processes may share it: each line is one write and names its
 * pid). A PATH that cannot be opened is reported once and the lines go to
 * stderr instead.
 *
 * Start: lazily, once xalloc is initialized AND the library constructor
 * has run (so never during early initialization, never before libc is
 * set up), from whichever of the two comes last: the tail of the first
 * allocation's initialization (no lock held), or the constructor. A
 * process that never allocates never starts it. The thread blocks every
 * signal, never allocates, and holds its own lock only while it sleeps:
 * the figures are read with no lock held (stats_totals).
 *
 * fork: the child has no thread and does not start one (its copy of the
 * log descriptor is closed); a child that execs reads XALLOC_CONF again
 * and logs by itself. Exit (the library destructor): the thread is asked
 * to stop, writes a last line (event=exit) and is joined; if it does not
 * finish within STATLOG_EXIT_WAIT_MS (stuck in a user's extent hook, say)
 * it is detached and exit goes on.
 */
#ifndef XALLOC_INTERNAL_STATLOG_H
#define XALLOC_INTERNAL_STATLOG_H

#include <stdbool.h>
#include <stdint.h>

#define STATLOG_EXIT_WAIT_MS 1000

/* Initialization is over (called with no lock held): start if the
 * constructor ran. */
void statlog_boot(void);
/* The library constructor: start if initialization is over. */
void statlog_ctor(void);
/* At exit: stop the thread (a last line), join it (bounded wait). */
void statlog_stop(void);
/* Whether the thread runs, and the lines it wrote (for tests). */
bool statlog_running(void);
uint64_t statlog_nlines(void);

void statlog_prefork(void);
void statlog_postfork_parent(void);
void statlog_postfork_child(void);
#endif
