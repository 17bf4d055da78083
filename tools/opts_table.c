/*
 * opts_table: prints the Markdown table of runtime options in
 * doc/TUNING.md, generated from the one option table (opts.h). Built by
 * the Makefile; `make doc` rewrites the table in doc/TUNING.md and
 * test/integration/tuning_doc.sh fails if the two differ.
 */
#include <stdio.h>
#include <string.h>

#include "xalloc/internal/opts.h"

static void row(const char *kind, const char *name, const char *def, long long min, long long max,
                const char *choices, const char *help) {
  const char *type = strcmp(kind, "BOOL") == 0    ? "bool"
                     : strcmp(kind, "UINT") == 0  ? "unsigned"
                     : strcmp(kind, "SSIZE") == 0 ? "ssize_t"
                     : strcmp(kind, "ENUM") == 0  ? "string (choice)"
                                                  : "string";
  char range[160] = "";
  if (strcmp(kind, "UINT") == 0 || strcmp(kind, "SSIZE") == 0) {
    snprintf(range, sizeof(range), "%lld..%lld", min, max);
  } else if (strcmp(kind, "ENUM") == 0) {
    /* "a|b|c" -> "a, b, c"; the default is the choice at index def. */
    size_t j = 0;
    for (const char *c = choices; *c != '\0' && j + 3 < sizeof(range); c++) {
      if (*c == '|') {
        range[j++] = ',';
        range[j++] = ' ';
      } else {
        range[j++] = *c;
      }
    }
    range[j] = '\0';
  } else if (strcmp(kind, "STR") == 0) {
    snprintf(range, sizeof(range), "at most 255 characters");
  }
  char defbuf[64];
  if (strcmp(kind, "ENUM") == 0) {
    unsigned idx = 0;
    sscanf(def, "%u", &idx);
    const char *c = choices;
    for (unsigned i = 0; i < idx && strchr(c, '|') != NULL; i++) c = strchr(c, '|') + 1;
    size_t n = strchr(c, '|') != NULL ? (size_t)(strchr(c, '|') - c) : strlen(c);
    snprintf(defbuf, sizeof(defbuf), "%.*s", (int)n, c);
  } else if (strcmp(kind, "STR") == 0) {
    /* def is the quoted literal from the table. */
    size_t n = strlen(def);
    if (n <= 2)
      snprintf(defbuf, sizeof(defbuf), "(empty)");
    else
      snprintf(defbuf, sizeof(defbuf), "`%.*s`", (int)(n - 2), def + 1);
  } else {
    snprintf(defbuf, sizeof(defbuf), "%s", def);
  }
  printf("| `%s` | %s | %s | %s | %s |\n", name, type, defbuf, range, help);
}

#define OPT_ROW(kind, name, def, min, max, choices, help) \
  row(#kind, #name, #def, (long long)(min), (long long)(max), choices, help);

int main(void) {
  printf("| option | type | default | range | meaning |\n");
  printf("| --- | --- | --- | --- | --- |\n");
  XALLOC_OPTIONS(OPT_ROW)
  return 0;
}
