/*
 * util: reporting without allocating. Everything here formats into a
 * buffer on the stack and writes it with one write(2) call, so it is safe
 * from inside the allocator with locks held, and from signal handlers.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "xalloc/internal/util.h"

static size_t util_put_uint(char *buf, size_t size, size_t pos, uint64_t v, unsigned base) {
  char tmp[24];
  int n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v != 0);
  while (n > 0) {
    if (pos + 1 < size) buf[pos] = tmp[n - 1];
    pos++;
    n--;
  }
  return pos;
}

/* Format one conversion (spec is the conversion letter(s)) into tmp. */
static size_t util_conv(char *tmp, size_t size, const char **pp, va_list *ap, const char **sout) {
  const char *p = *pp;
  size_t n = 0;
  *sout = NULL;
  switch (*p) {
  case 's': {
    const char *s = va_arg(*ap, const char *);
    *sout = s == NULL ? "(null)" : s;
    n = strlen(*sout);
    break;
  }
  case 'd': {
    int v = va_arg(*ap, int);
    if (v < 0) {
      tmp[0] = '-';
      n = util_put_uint(tmp, size, 1, (uint64_t)(-(int64_t)v), 10);
    } else {
      n = util_put_uint(tmp, size, 0, (uint64_t)v, 10);
    }
    break;
  }
  case 'u':
    n = util_put_uint(tmp, size, 0, va_arg(*ap, unsigned), 10);
    break;
  case 'x':
    n = util_put_uint(tmp, size, 0, va_arg(*ap, unsigned), 16);
    break;
  case 'z':
    p++;
    n = util_put_uint(tmp, size, 0, va_arg(*ap, size_t), *p == 'u' ? 10 : 16);
    break;
  case 'l':
    p++;
    if (*p == 'l') p++;
    if (*p == 'u' || *p == 'x') {
      n = util_put_uint(tmp, size, 0, va_arg(*ap, unsigned long long), *p == 'u' ? 10 : 16);
    } else {
      long long v = va_arg(*ap, long long);
      if (v < 0) {
        tmp[0] = '-';
        n = util_put_uint(tmp, size, 1, (uint64_t)(-v), 10);
      } else {
        n = util_put_uint(tmp, size, 0, (uint64_t)v, 10);
      }
    }
    break;
  case 'p':
    tmp[0] = '0';
    tmp[1] = 'x';
    n = util_put_uint(tmp, size, 2, (uintptr_t)va_arg(*ap, void *), 16);
    break;
  case '%':
    tmp[0] = '%';
    n = 1;
    break;
  default:
    tmp[0] = '%';
    tmp[1] = *p;
    n = 2;
  }
  *pp = p;
  return n;
}

size_t util_vformat(char *buf, size_t size, const char *fmt, va_list ap0) {
  size_t pos = 0;
  va_list ap;
  va_copy(ap, ap0);
#define PUT(c)                          \
  do {                                  \
    if (pos + 1 < size) buf[pos] = (c); \
    pos++;                              \
  } while (0)
  for (const char *p = fmt; *p != '\0'; p++) {
    if (*p != '%') {
      PUT(*p);
      continue;
    }
    p++;
    bool left = false;
    size_t width = 0;
    if (*p == '-') {
      left = true;
      p++;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (size_t)(*p++ - '0');
    if (*p == '\0') break;
    char tmp[32];
    const char *str;
    size_t n = util_conv(tmp, sizeof(tmp), &p, &ap, &str);
    if (str == NULL) str = tmp;
    if (!left)
      for (size_t i = n; i < width; i++) PUT(' ');
    for (size_t i = 0; i < n; i++) PUT(str[i]);
    if (left)
      for (size_t i = n; i < width; i++) PUT(' ');
  }
#undef PUT
  va_end(ap);
  if (size > 0) buf[pos < size ? pos : size - 1] = '\0';
  return pos;
}

size_t util_format(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = util_vformat(buf, size, fmt, ap);
  va_end(ap);
  return n;
}

void util_write_fd(int fd, const char *s) {
  size_t len = strlen(s);
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n <= 0) return;
    s += n;
    len -= (size_t)n;
  }
}

void util_write(const char *s) { util_write_fd(STDERR_FILENO, s); }

void util_printf(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  util_vformat(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  util_write(buf);
}

void util_warn(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  util_vformat(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  util_write(buf);
}

void util_fatal(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  util_vformat(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  util_write(buf);
  abort();
}
