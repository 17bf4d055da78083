/*
 * holdmax: hold as many blocks of one size as the allocator can get, and
 * print how much that was. Under vm.overcommit_memory=2 (strict commit
 * accounting) or `ulimit -v` this is what a program can keep before
 * malloc returns NULL: it shows what the allocator's own overhead costs
 * against the limit (reservations, size-class rounding, unused tails).
 *
 *   holdmax SIZE [MAX_GIB]
 *
 * SIZE in bytes, or with a K, M or G suffix (KiB...). MAX_GIB (default
 * unlimited) stops earlier, for a run that must not take all memory.
 * Each block's first byte is written (a block is usable, and the process
 * does not need the RAM for all of them). Prints one line:
 *
 *   holdmax size=102400 blocks=N held_gib=X strict_charge_gib=Y ratio=Y/X vm_gib=Z stop=enomem|cap
 *
 * strict_charge is what vm.overcommit_memory=2 would charge for the
 * process's mappings now, read from /proc/self/smaps: the sizes of the
 * private writable mappings (strict mode charges each of them whole,
 * touched or not, and ignores MAP_NORESERVE), less the same at the start.
 * Under heuristic overcommit it predicts the charge of an allocator whose
 * behaviour does not depend on the mode (glibc; xalloc with commit:on);
 * allocators that change behaviour when they detect strict mode (jemalloc,
 * xalloc's commit:auto) must be measured in strict mode (strict.sh).
 * vm is VmSize from /proc/self/status (what RLIMIT_AS counts).
 *
 * The block pointers are kept in a mapping of this program's own (made
 * before the start figure, touched as needed), not in malloc'ed memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end) {
  case 'k': case 'K': v *= 1024; break;
  case 'm': case 'M': v *= 1024 * 1024; break;
  case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
  case '\0': break;
  default: fprintf(stderr, "holdmax: bad size %s\n", s); exit(2);
  }
  return (size_t)v;
}

/* Private writable mappings (bytes), from smaps; the read buffer is static. */
static size_t strict_charge(void) {
  static char buf[1 << 16], line[4096];
  int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0, total = 0, size_kb = 0;
  int writable_private = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] != '\n') {
        if (len < sizeof(line) - 1) line[len++] = buf[i];
        continue;
      }
      line[len] = '\0';
      len = 0;
      /* A mapping's first line: "lo-hi perms offset dev inode path". */
      char *sp = strchr(line, ' ');
      if (sp != NULL && sp > line && strchr(line, '-') != NULL && strchr(line, '-') < sp && sp[1] != '\0' &&
          sp[5] == ' ' && (sp[4] == 'p' || sp[4] == 's')) {
        writable_private = sp[2] == 'w' && sp[4] == 'p';
      } else if (strncmp(line, "Size:", 5) == 0) {
        size_kb = strtoul(line + 5, NULL, 10);
      } else if (strncmp(line, "VmFlags:", 8) == 0) {
        if (writable_private) total += size_kb << 10;
      }
    }
  }
  close(fd);
  return total;
}

static size_t vm_size(void) {
  static char buf[8192];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  char *p = strstr(buf, "VmSize:");
  return p != NULL ? strtoul(p + 7, NULL, 10) << 10 : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SIZE [MAX_GIB]\n", argv[0]);
    return 2;
  }
  size_t size = parse_size(argv[1]);
  double max_gib = argc > 2 ? strtod(argv[2], NULL) : 1e9;
  if (size == 0) return 2;
  /* Room for the pointers: enough for 64 GiB of blocks (or of 4 KiB). */
  size_t maxblocks = ((size_t)64 << 30) / (size < 4096 ? 4096 : size);
  void **ptrs = mmap(NULL, maxblocks * sizeof(void *), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ptrs == MAP_FAILED) {
    perror("holdmax: mmap");
    return 1;
  }
  free(malloc(1)); /* the allocator initialized */
  size_t charge0 = strict_charge();
  size_t n = 0;
  const char *stop = "enomem";
  for (;;) {
    if ((double)(n + 1) * (double)size > max_gib * (double)(1ul << 30)) {
      stop = "cap";
      break;
    }
    if (n == maxblocks) {
      stop = "slots";
      break;
    }
    char *p = malloc(size);
    if (p == NULL) break;
    p[0] = (char)n;
    ptrs[n++] = p;
  }
  size_t charge = strict_charge();
  size_t grown = charge > charge0 ? charge - charge0 : 0;
  double held = (double)n * (double)size;
  printf("holdmax size=%zu blocks=%zu held_gib=%.3f strict_charge_gib=%.3f ratio=%.4f vm_gib=%.3f stop=%s\n", size, n,
         held / (1ul << 30), (double)grown / (1ul << 30), held > 0 ? (double)grown / held : 0.0,
         (double)vm_size() / (1ul << 30), stop);
  fflush(stdout);
  for (size_t i = 0; i < n; i++)
    if (((char *)ptrs[i])[0] != (char)i) {
      fprintf(stderr, "holdmax: block %zu corrupted\n", i);
      return 1;
    }
  for (size_t i = 0; i < n; i++) free(ptrs[i]);
  return 0;
}
