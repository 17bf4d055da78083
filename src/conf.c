/* conf: the option parser (see conf.h and opts.h). */
#include <limits.h>
#include <stdlib.h>

#include "xalloc/internal/conf.h"
#include "xalloc/xalloc.h" /* malloc_conf is PFXmalloc_conf in a prefixed build */

#define OPT_DEFINE(kind, name, def, min, max, choices, help) OPT_CTYPE_##kind opt_##name = def;
XALLOC_OPTIONS(OPT_DEFINE)
#undef OPT_DEFINE

/* Storage for string options (the parser runs before any allocation). */
#define CONF_STR_MAX 256
#define OPT_STRBUF_STR(name) static char conf_buf_##name[CONF_STR_MAX];
#define OPT_STRBUF_BOOL(name)
#define OPT_STRBUF_UINT(name)
#define OPT_STRBUF_SSIZE(name)
#define OPT_STRBUF_ENUM(name)
#define OPT_STRBUF(kind, name, def, min, max, choices, help) OPT_STRBUF_##kind(name)
XALLOC_OPTIONS(OPT_STRBUF)
#undef OPT_STRBUF

/* An application may define this (as with jemalloc). */
extern const char *malloc_conf __attribute__((weak));

#define CONF_KIND_BOOL CONF_BOOL
#define CONF_KIND_UINT CONF_UINT
#define CONF_KIND_SSIZE CONF_SSIZE
#define CONF_KIND_ENUM CONF_ENUM
#define CONF_KIND_STR CONF_STR
#define CONF_BUF_STR(name) conf_buf_##name
#define CONF_BUF_BOOL(name) NULL
#define CONF_BUF_UINT(name) NULL
#define CONF_BUF_SSIZE(name) NULL
#define CONF_BUF_ENUM(name) NULL

const conf_desc_t conf_table[] = {
#define OPT_ROW(kind, name, def, min, max, choices, help) \
  {#name, CONF_KIND_##kind, &opt_##name, min, max, choices, CONF_BUF_##kind(name), help},
    XALLOC_OPTIONS(OPT_ROW)
#undef OPT_ROW
};
const unsigned conf_nopts = sizeof(conf_table) / sizeof(conf_table[0]);

const char *conf_enum_name(const conf_desc_t *d, char *buf, size_t size) {
  unsigned v = *(const unsigned *)d->ptr;
  const char *c = d->choices;
  for (unsigned i = 0; i < v && strchr(c, '|') != NULL; i++) c = strchr(c, '|') + 1;
  size_t n = strchr(c, '|') != NULL ? (size_t)(strchr(c, '|') - c) : strlen(c);
  if (n >= size) n = size - 1;
  memcpy(buf, c, n);
  buf[n] = '\0';
  return buf;
}

const char *conf_value_str(const conf_desc_t *d, char *buf, size_t size) {
  switch (d->kind) {
  case CONF_BOOL:
    return *(const bool *)d->ptr ? "true" : "false";
  case CONF_UINT:
    util_format(buf, size, "%u", *(const unsigned *)d->ptr);
    return buf;
  case CONF_SSIZE: {
    ssize_t v = *(const ssize_t *)d->ptr;
    util_format(buf, size, "%s%zu", v < 0 ? "-" : "", (size_t)(v < 0 ? -v : v));
    return buf;
  }
  case CONF_ENUM:
    return conf_enum_name(d, buf, size);
  default:
    return *(const char *const *)d->ptr;
  }
}

static void conf_warn(const char *what, const char *k, size_t klen, const char *v, size_t vlen,
                      const char *src, const char *expect) {
  char name[64], val[64];
  if (klen >= sizeof(name)) klen = sizeof(name) - 1;
  if (vlen >= sizeof(val)) vlen = sizeof(val) - 1;
  memcpy(name, k, klen);
  name[klen] = '\0';
  memcpy(val, v, vlen);
  val[vlen] = '\0';
  if (expect != NULL)
    util_warn("xalloc: %s '%s' for option '%s' in %s (expected %s); option unchanged\n", what, val,
              name, src, expect);
  else
    util_warn("xalloc: %s '%s' in %s; ignored\n", what, name, src);
}

/* Parse a decimal integer from [v, v+len); false if malformed. */
static bool conf_parse_int(const char *v, size_t len, long long *out) {
  bool neg = false;
  size_t i = 0;
  unsigned long long x = 0;
  if (len > 0 && (v[0] == '-' || v[0] == '+')) {
    neg = v[0] == '-';
    i++;
  }
  if (i == len) return false;
  for (; i < len; i++) {
    if (v[i] < '0' || v[i] > '9') return false;
    if (__builtin_mul_overflow(x, 10ULL, &x) || __builtin_add_overflow(x, (unsigned long long)(v[i] - '0'), &x) ||
        x > (unsigned long long)LLONG_MAX)
      return false;
  }
  *out = neg ? -(long long)x : (long long)x;
  return true;
}

static bool conf_set(const conf_desc_t *d, const char *v, size_t vlen, const char *src) {
  char expect[96];
  if (d->kind == CONF_BOOL) {
    if (vlen == 4 && memcmp(v, "true", 4) == 0) *(bool *)d->ptr = true;
    else if (vlen == 5 && memcmp(v, "false", 5) == 0) *(bool *)d->ptr = false;
    else {
      conf_warn("invalid value", d->name, strlen(d->name), v, vlen, src, "true or false");
      return false;
    }
    return true;
  }
  if (d->kind == CONF_STR) {
    if (vlen >= CONF_STR_MAX) {
      util_format(expect, sizeof(expect), "at most %u characters", (unsigned)(CONF_STR_MAX - 1));
      conf_warn("invalid value", d->name, strlen(d->name), v, vlen, src, expect);
      return false;
    }
    memcpy(d->buf, v, vlen);
    d->buf[vlen] = '\0';
    *(const char **)d->ptr = d->buf;
    return true;
  }
  if (d->kind == CONF_ENUM) {
    const char *c = d->choices;
    for (unsigned i = 0; *c != '\0'; i++) {
      const char *e = strchr(c, '|');
      size_t n = e != NULL ? (size_t)(e - c) : strlen(c);
      if (n == vlen && memcmp(c, v, vlen) == 0) {
        *(unsigned *)d->ptr = i;
        return true;
      }
      c += n + (e != NULL);
    }
    util_format(expect, sizeof(expect), "one of %s", d->choices);
    conf_warn("invalid value", d->name, strlen(d->name), v, vlen, src, expect);
    return false;
  }
  long long x;
  util_format(expect, sizeof(expect), "an integer from %s%zu to %zu", d->min < 0 ? "-" : "",
              (size_t)(d->min < 0 ? -d->min : d->min), (size_t)d->max);
  if (!conf_parse_int(v, vlen, &x) || x < d->min || x > d->max) {
    conf_warn("invalid value", d->name, strlen(d->name), v, vlen, src, expect);
    return false;
  }
  if (d->kind == CONF_UINT) *(unsigned *)d->ptr = (unsigned)x;
  else *(ssize_t *)d->ptr = (ssize_t)x;
  return true;
}

unsigned conf_parse(const char *s, const char *src) {
  unsigned bad = 0;
  if (s == NULL) return 0;
  while (*s != '\0') {
    const char *k = s;
    while (*s != '\0' && *s != ':' && *s != ',') s++;
    size_t klen = (size_t)(s - k);
    if (*s != ':') {
      if (klen != 0) {
        conf_warn("malformed option (no ':value')", k, klen, "", 0, src, NULL);
        bad++;
      }
      if (*s == ',') s++;
      continue;
    }
    s++;
    const char *v = s;
    while (*s != '\0' && *s != ',') s++;
    size_t vlen = (size_t)(s - v);
    if (*s == ',') s++;
    const conf_desc_t *d = NULL;
    for (size_t i = 0; i < sizeof(conf_table) / sizeof(conf_table[0]); i++) {
      if (strlen(conf_table[i].name) == klen && memcmp(conf_table[i].name, k, klen) == 0) d = &conf_table[i];
    }
    if (d == NULL) {
      conf_warn("unknown option", k, klen, "", 0, src, NULL);
      bad++;
      continue;
    }
    if (!conf_set(d, v, vlen, src)) bad++;
  }
  return bad;
}

void conf_init(void) {
  unsigned bad = conf_parse(XALLOC_CONF_DEFAULT, "the build default");
  if (&malloc_conf != NULL) bad += conf_parse(malloc_conf, "malloc_conf");
  bad += conf_parse(getenv("XALLOC_CONF"), "XALLOC_CONF");
  /* jemalloc's name; in a prefixed build it belongs to the process's malloc. */
  if (!XALLOC_PREFIXED) bad += conf_parse(getenv("MALLOC_CONF"), "MALLOC_CONF");
  if (bad != 0 && opt_abort_conf) util_fatal("xalloc: aborting on invalid options (abort_conf:true)\n");
}
