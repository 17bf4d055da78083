/*
 * leaky: a small program with a leak, for doc/PROFILING.md.
 *
 * It "serves requests": each request parses a header into a few strings
 * (freed at the end of the request), renders a response into a buffer
 * (freed), and remembers the session in a cache that is never trimmed
 * (the leak). Session records and their names are kept for ever, and a
 * log line is appended to a history that nobody reads.
 *
 *   cc -O1 -g -o leaky doc/examples/leaky.c
 *   XALLOC_CONF=prof:true,prof_final:true,prof_prefix:/tmp/leaky \
 *     LD_PRELOAD=$PWD/lib/libxalloc.so.0 ./leaky
 *   bin/xalloc-prof /tmp/leaky.<pid>.0.f.heap
 *   bin/xalloc-prof --svg leaky.svg /tmp/leaky.<pid>.0.f.heap
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct session {
  char *name;
  char *token;
  unsigned char state[1800];
  struct session *next;
};

static struct session *cache;      /* grows for ever */
static char **history;             /* and so does this */
static size_t nhistory, cap_history;

__attribute__((noinline)) static char *copy_field(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) exit(1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

__attribute__((noinline)) static void parse_header(const char *line, char **fields, int nfields) {
  for (int i = 0; i < nfields; i++) fields[i] = copy_field(line, 40 + (size_t)i * 24);
}

__attribute__((noinline)) static char *render_response(int id) {
  char *buf = malloc(16384);
  if (buf == NULL) exit(1);
  snprintf(buf, 16384, "<html>request %d</html>", id);
  return buf;
}

__attribute__((noinline)) static struct session *session_new(int id, char **fields) {
  struct session *s = calloc(1, sizeof(*s));
  if (s == NULL) exit(1);
  s->name = copy_field(fields[0], 64);
  s->token = copy_field(fields[1], 200);
  s->state[0] = (unsigned char)id;
  return s;
}

__attribute__((noinline)) static void cache_remember(int id, char **fields) {
  struct session *s = session_new(id, fields);
  s->next = cache;
  cache = s;
}

__attribute__((noinline)) static void log_request(int id) {
  if (nhistory == cap_history) {
    cap_history = cap_history ? 2 * cap_history : 64;
    history = realloc(history, cap_history * sizeof(*history));
    if (history == NULL) exit(1);
  }
  char line[96];
  int n = snprintf(line, sizeof(line), "request %d served", id);
  history[nhistory++] = copy_field(line, (size_t)n);
}

__attribute__((noinline)) static void handle_request(int id) {
  static const char header[512] = "GET /index.html HTTP/1.1 Host: example.org";
  char *fields[6];
  parse_header(header, fields, 6);
  char *out = render_response(id);
  if (id % 3 == 0) cache_remember(id, fields); /* the leak */
  log_request(id);
  free(out);
  for (int i = 0; i < 6; i++) free(fields[i]);
}

__attribute__((noinline)) static void serve(int n) {
  for (int i = 0; i < n; i++) handle_request(i);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 120000;
  serve(n);
  printf("served %d requests, %zu sessions cached\n", n, (size_t)(n + 2) / 3);
  return 0;
}
