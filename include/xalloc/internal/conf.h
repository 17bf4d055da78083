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

/* The option table as data (one row per X() of opts.h, in that order),
 * for mallctl("opt.*") and the statistics header. */
enum { CONF_BOOL, CONF_UINT, CONF_SSIZE, CONF_ENUM, CONF_STR };
typedef struct {
  const char *name;
  int kind;
  void *ptr; /* &opt_<name> */
  long long min, max;
  const char *choices; /* ENUM: "a|b|c" */
  char *buf;           /* STR: storage */
  const char *help;
} conf_desc_t;
extern const conf_desc_t conf_table[];
extern const unsigned conf_nopts;
/* The option's current value as text (buf is used for numbers and enums). */
const char *conf_value_str(const conf_desc_t *d, char *buf, size_t size);
/* An ENUM option's current choice. */
const char *conf_enum_name(const conf_desc_t *d, char *buf, size_t size);

/* Parse every source; called once from initialization. */
void conf_init(void);
/* Parse one string; src names it in warnings. Returns the number of bad
 * pairs. */
unsigned conf_parse(const char *s, const char *src);
#endif
