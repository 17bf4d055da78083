/*
 * conf: reads the options (opts.h) from, in order, the build default
 * (--with-malloc-conf), the application's malloc_conf symbol, XALLOC_CONF
 * and MALLOC_CONF; later sources win. The format is name:value pairs
 * separated by commas. A bad pair prints one warning naming the option and
 * the source and leaves the option as it was.
 */
#ifndef XALLOC_INTERNAL_CONF_H
#define XALLOC_INTERNAL_CONF_H

#include "xalloc/internal/opts.h"

/* Parse every source; called once from initialization. */
void conf_init(void);
/* Parse one string; src names it in warnings. Returns the number of bad
 * pairs. */
unsigned conf_parse(const char *s, const char *src);
#endif
