/* cfi: a DWARF call frame information unwinder for stack captures
 * (cfi.h). */
#include <dlfcn.h>
#include <ucontext.h>

#include "xalloc/internal/cfi.h"

#if defined(__x86_64__) && defined(DLFO_STRUCT_HAS_EH_DBASE)

bool cfi_available(void) { return true; }

/* A reader over [p, end): reading past end sets bad and yields 0. */
typedef struct {
  const uint8_t *p, *end;
  bool bad;
} cfi_rd_t;

static uint64_t cfi_fixed(cfi_rd_t *r, unsigned n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = true;
    return 0;
  }
  uint64_t v = 0;
  memcpy(&v, r->p, n); /* little endian */
  r->p += n;
  return v;
}

static uint8_t cfi_u8(cfi_rd_t *r) { return (uint8_t)cfi_fixed(r, 1); }

/* A LEB128 number, sign-extended if is_signed. */
static uint64_t cfi_leb(cfi_rd_t *r, bool is_signed) {
  uint64_t v = 0;
  unsigned s = 0;
  uint8_t b;
  do {
    b = cfi_u8(r);
    if (s < 64) v |= (uint64_t)(b & 0x7f) << s;
    s += 7;
  } while ((b & 0x80) && !r->bad);
  if (is_signed && s < 64 && (b & 0x40)) v |= ~(uint64_t)0 << s;
  return v;
}
static uint64_t cfi_uleb(cfi_rd_t *r) { return cfi_leb(r, false); }
static int64_t cfi_sleb(cfi_rd_t *r) { return (int64_t)cfi_leb(r, true); }

/* DW_EH_PE_* pointer encodings. */
#define CFI_PE_OMIT 0xff
#define CFI_PE_PCREL 0x10
#define CFI_PE_DATAREL 0x30

/* A value in encoding enc's format (its low four bits), not applied. */
static uint64_t cfi_format(cfi_rd_t *r, uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00: return cfi_fixed(r, 8); /* absptr */
    case 0x01: return cfi_uleb(r);
    case 0x02: return cfi_fixed(r, 2);
    case 0x03: return cfi_fixed(r, 4);
    case 0x04: return cfi_fixed(r, 8);
    case 0x09: return (uint64_t)cfi_sleb(r);
    case 0x0a: return (uint64_t)(int64_t)(int16_t)cfi_fixed(r, 2);
    case 0x0b: return (uint64_t)(int64_t)(int32_t)cfi_fixed(r, 4);
    case 0x0c: return cfi_fixed(r, 8);
    default: r->bad = true; return 0;
  }
}

/* A pointer in encoding enc, applied (pc-relative, or relative to
 * datarel); indirect pointers (personality routines) are not followed. */
static uintptr_t cfi_pointer(cfi_rd_t *r, uint8_t enc, uintptr_t datarel) {
  if (enc == CFI_PE_OMIT) return 0;
  uintptr_t at = (uintptr_t)r->p;
  uintptr_t v = (uintptr_t)cfi_format(r, enc);
  switch (enc & 0x70) {
    case 0x00: return v;
    case CFI_PE_PCREL: return v + at;
    case CFI_PE_DATAREL: return v + datarel;
    default: r->bad = true; return 0; /* textrel, funcrel, aligned: not emitted on x86-64 */
  }
}

/* The FDE whose range may cover pc, from its object's .eh_frame_hdr
 * search table; NULL if none. */
static const uint8_t *cfi_find_fde(uintptr_t pc) {
  struct dl_find_object fo;
  if (_dl_find_object((void *)pc, &fo) != 0 || fo.dlfo_eh_frame == NULL) return NULL;
  const uint8_t *hdr = fo.dlfo_eh_frame;
  /* version, eh_frame_ptr encoding, fde_count encoding, table encoding */
  if (hdr[0] != 1) return NULL;
  cfi_rd_t r = {hdr + 4, hdr + 4 + 16, false};
  (void)cfi_pointer(&r, hdr[1], (uintptr_t)hdr);
  uintptr_t count = cfi_pointer(&r, hdr[2], (uintptr_t)hdr);
  /* The linker's table: pairs of datarel sdata4 (start, FDE). */
  if (r.bad || hdr[3] != (CFI_PE_DATAREL | 0x0b) || count == 0) return NULL;
  const uint8_t *tab = r.p;
  size_t lo = 0, hi = count;
  int32_t e[2];
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    memcpy(e, tab + mid * 8, 4);
    if ((uintptr_t)hdr + (intptr_t)e[0] <= pc)
      lo = mid;
    else
      hi = mid;
  }
  memcpy(e, tab + lo * 8, 8);
  if ((uintptr_t)hdr + (intptr_t)e[0] > pc) return NULL;
  return hdr + (intptr_t)e[1];
}

/* The rules kept: the CFA's, and those of rbp and of the return address
 * (the only registers a walk needs on x86-64). */
enum { CFI_SAME = 0, CFI_UNDEF, CFI_OFFSET, CFI_VALOFF, CFI_UNKNOWN };
#define CFI_RBP 6
#define CFI_RSP 7
typedef struct {
  uint64_t cfa_reg;
  int64_t cfa_off;
  bool cfa_expr;
  uint8_t rule[2]; /* [0] rbp, [1] return address */
  int64_t off[2];
} cfi_row_t;

typedef struct {
  uint64_t code_align;
  int64_t data_align;
  uint64_t ra_reg;
  uint8_t fde_enc;
  const cfi_row_t *init; /* the CIE's row, for DW_CFA_restore */
} cfi_cie_t;

/* The row's slot of register reg: 0 rbp, 1 the return address, -1 not kept. */
static int cfi_slot(const cfi_cie_t *c, uint64_t reg) { return reg == CFI_RBP ? 0 : reg == c->ra_reg ? 1 : -1; }

static void cfi_set(cfi_row_t *row, const cfi_cie_t *c, uint64_t reg, uint8_t rule, int64_t off) {
  int i = cfi_slot(c, reg);
  if (i < 0) return;
  row->rule[i] = rule;
  row->off[i] = off;
}

/* DW_CFA_restore: the rule the CIE's instructions gave. */
static void cfi_restore(cfi_row_t *row, const cfi_cie_t *c, uint64_t reg) {
  int i = cfi_slot(c, reg);
  if (i < 0 || c->init == NULL) return;
  cfi_set(row, c, reg, c->init->rule[i], c->init->off[i]);
}

#define CFI_STATES 8

/* Run the instructions of r until the location passes target (loc: the
 * location of the row). false if they cannot be followed. */
static bool cfi_run(cfi_rd_t *r, const cfi_cie_t *c, cfi_row_t *row, uintptr_t *loc, uintptr_t target) {
  cfi_row_t saved[CFI_STATES];
  unsigned nsaved = 0;
  while (r->p < r->end && !r->bad) {
    uint8_t op = cfi_u8(r);
    uint64_t reg, n;
    switch (op & 0xc0) {
      case 0x40: /* advance_loc */
        *loc += (op & 0x3f) * c->code_align;
        if (*loc > target) return true;
        continue;
      case 0x80: /* offset */
        cfi_set(row, c, op & 0x3f, CFI_OFFSET, (int64_t)cfi_uleb(r) * c->data_align);
        continue;
      case 0xc0: /* restore */
        cfi_restore(row, c, op & 0x3f);
        continue;
    }
    switch (op) {
      case 0x00: break; /* nop */
      case 0x01:        /* set_loc */
        *loc = cfi_pointer(r, c->fde_enc, 0);
        if (*loc > target) return !r->bad;
        break;
      case 0x02:
      case 0x03:
      case 0x04: /* advance_loc1, 2, 4 */
        *loc += cfi_fixed(r, op == 0x02 ? 1 : op == 0x03 ? 2 : 4) * c->code_align;
        if (*loc > target) return !r->bad;
        break;
      case 0x05: /* offset_extended */
        reg = cfi_uleb(r);
        cfi_set(row, c, reg, CFI_OFFSET, (int64_t)cfi_uleb(r) * c->data_align);
        break;
      case 0x06: /* restore_extended */
        cfi_restore(row, c, cfi_uleb(r));
        break;
      case 0x07: /* undefined */
        cfi_set(row, c, cfi_uleb(r), CFI_UNDEF, 0);
        break;
      case 0x08: /* same_value */
        cfi_set(row, c, cfi_uleb(r), CFI_SAME, 0);
        break;
      case 0x09: /* register */
        reg = cfi_uleb(r);
        (void)cfi_uleb(r);
        cfi_set(row, c, reg, CFI_UNKNOWN, 0);
        break;
      case 0x0a: /* remember_state */
        if (nsaved == CFI_STATES) return false;
        saved[nsaved++] = *row;
        break;
      case 0x0b: /* restore_state */
        if (nsaved == 0) return false;
        *row = saved[--nsaved];
        break;
      case 0x0c: /* def_cfa */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_off = (int64_t)cfi_uleb(r);
        row->cfa_expr = false;
        break;
      case 0x0d: /* def_cfa_register */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_expr = false;
        break;
      case 0x0e: /* def_cfa_offset */
        row->cfa_off = (int64_t)cfi_uleb(r);
        break;
      case 0x0f: /* def_cfa_expression */
        n = cfi_uleb(r);
        if (n > (uint64_t)(r->end - r->p)) return false;
        r->p += n;
        row->cfa_expr = true;
        break;
      case 0x10: /* expression */
      case 0x16: /* val_expression */
        reg = cfi_uleb(r);
        n = cfi_uleb(r);
        if (n > (uint64_t)(r->end - r->p)) return false;
        r->p += n;
        cfi_set(row, c, reg, CFI_UNKNOWN, 0);
        break;
      case 0x11: /* offset_extended_sf */
        reg = cfi_uleb(r);
        cfi_set(row, c, reg, CFI_OFFSET, cfi_sleb(r) * c->data_align);
        break;
      case 0x12: /* def_cfa_sf */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_off = cfi_sleb(r) * c->data_align;
        row->cfa_expr = false;
        break;
      case 0x13: /* def_cfa_offset_sf */
        row->cfa_off = cfi_sleb(r) * c->data_align;
        break;
      case 0x14: /* val_offset */
        reg = cfi_uleb(r);
        cfi_set(row, c, reg, CFI_VALOFF, (int64_t)cfi_uleb(r) * c->data_align);
        break;
      case 0x15: /* val_offset_sf */
        reg = cfi_uleb(r);
        cfi_set(row, c, reg, CFI_VALOFF, cfi_sleb(r) * c->data_align);
        break;
      case 0x2e: /* GNU_args_size */
        (void)cfi_uleb(r);
        break;
      case 0x2f: /* GNU_negative_offset_extended */
        reg = cfi_uleb(r);
        cfi_set(row, c, reg, CFI_OFFSET, -(int64_t)cfi_uleb(r) * c->data_align);
        break;
      default: return false;
    }
  }
  return !r->bad;
}

/* The row of the frame whose pc is pc (a return address less one, but for
 * the first frame). false if there is none, or it cannot be read. */
static bool cfi_row(uintptr_t pc, cfi_row_t *row) {
  const uint8_t *fde = cfi_find_fde(pc);
  if (fde == NULL) return false;
  uint32_t len, cie_off, clen, id;
  memcpy(&len, fde, 4);
  memcpy(&cie_off, fde + 4, 4);
  if (len == 0 || len == 0xffffffffu || cie_off == 0) return false;
  const uint8_t *fde_end = fde + 4 + len, *cie = fde + 4 - cie_off;
  memcpy(&clen, cie, 4);
  memcpy(&id, cie + 4, 4);
  if (clen == 0 || clen == 0xffffffffu || id != 0) return false;
  cfi_rd_t r = {cie + 8, cie + 4 + clen, false};
  uint8_t version = cfi_u8(&r);
  const char *aug = (const char *)r.p;
  size_t alen = strnlen(aug, (size_t)(r.end - r.p));
  if (r.bad || (version != 1 && version != 3 && version != 4) || alen == (size_t)(r.end - r.p)) return false;
  r.p += alen + 1;
  if (aug[0] != '\0' && aug[0] != 'z') return false; /* "eh" and older forms */
  if (version == 4) r.p += 2;                          /* address and segment sizes */
  cfi_cie_t c = {.fde_enc = 0, .init = NULL};
  c.code_align = cfi_uleb(&r);
  c.data_align = cfi_sleb(&r);
  c.ra_reg = version == 1 ? cfi_u8(&r) : cfi_uleb(&r);
  if (aug[0] == 'z') {
    uint64_t n = cfi_uleb(&r);
    if (r.bad || n > (uint64_t)(r.end - r.p)) return false;
    const uint8_t *aend = r.p + n;
    for (const char *a = aug + 1; *a != '\0' && !r.bad; a++) {
      if (*a == 'R') {
        c.fde_enc = cfi_u8(&r);
      } else if (*a == 'P') {
        uint8_t e = cfi_u8(&r);
        (void)cfi_pointer(&r, (uint8_t)(e & 0x7f), 0);
      } else if (*a == 'L') {
        (void)cfi_u8(&r);
      } else if (*a != 'S' && *a != 'B') {
        break; /* unknown: the length says where the data end */
      }
    }
    r.p = aend;
  }
  if (r.bad) return false;
  memset(row, 0, sizeof(*row));
  uintptr_t loc = 0;
  if (!cfi_run(&r, &c, row, &loc, UINTPTR_MAX)) return false;
  cfi_row_t init = *row;
  c.init = &init;
  /* The FDE: its range, then its instructions from its start. */
  cfi_rd_t f = {fde + 8, fde_end, false};
  uintptr_t begin = cfi_pointer(&f, c.fde_enc, 0);
  uintptr_t range = (uintptr_t)cfi_format(&f, c.fde_enc);
  if (f.bad || pc < begin || pc - begin >= range) return false;
  if (aug[0] == 'z') {
    uint64_t n = cfi_uleb(&f);
    if (f.bad || n > (uint64_t)(f.end - f.p)) return false;
    f.p += n;
  }
  loc = begin;
  return cfi_run(&f, &c, row, &loc, pc);
}

bool cfi_sigreturn(uintptr_t ip) {
  static const unsigned char code[9] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
  return memcmp((const void *)ip, code, sizeof(code)) == 0;
}

/* A frame's CFA is at most this far above the stack pointer. */
#define CFI_FRAME_MAX ((uintptr_t)1 << 24)

XA_NOINLINE int cfi_walk(cfi_frame_t *out, unsigned max, bool *complete) {
  uintptr_t pc, sp, bp;
  __asm__ volatile("leaq 0(%%rip), %0\n\tmovq %%rsp, %1\n\tmovq %%rbp, %2" : "=r"(pc), "=r"(sp), "=r"(bp));
  bool bp_known = true, exact = true; /* pc is not a return address */
  unsigned n = 0;
  *complete = false;
  while (n < max) {
    if (!exact && cfi_sigreturn(pc)) {
      /* A signal handler returned here: the interrupted context is the
       * ucontext at the stack pointer (the kernel's signal frame); its pc
       * is where it was interrupted, not a return address. */
      const ucontext_t *uc = (const ucontext_t *)sp;
      pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
      sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
      bp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
      bp_known = true;
      exact = true;
      out[n].ip = pc;
      out[n].cfa = sp;
      out[n].rbp = bp;
      n++;
      if (pc == 0) {
        *complete = true;
        return (int)n;
      }
      continue;
    }
    cfi_row_t row;
    /* A return address is past its call: the row is that of the call. */
    if (!cfi_row(exact ? pc : pc - 1, &row) || row.cfa_expr) return (int)n;
    exact = false;
    uintptr_t base;
    if (row.cfa_reg == CFI_RSP)
      base = sp;
    else if (row.cfa_reg == CFI_RBP && bp_known)
      base = bp;
    else
      return (int)n;
    uintptr_t cfa = base + (uintptr_t)row.cfa_off;
    if (cfa <= sp || cfa - sp > CFI_FRAME_MAX || (cfa & 7) != 0) return (int)n;
    if (row.rule[1] == CFI_UNDEF) {
      *complete = true; /* the outermost frame */
      return (int)n;
    }
    if (row.rule[1] != CFI_OFFSET) return (int)n;
    uintptr_t at = cfa + (uintptr_t)row.off[1];
    if (at < sp || at + 8 > cfa || (at & 7) != 0) return (int)n;
    uintptr_t ra = *(const uintptr_t *)at;
    if (row.rule[0] == CFI_OFFSET) {
      uintptr_t b = cfa + (uintptr_t)row.off[0];
      if (b < sp || b + 8 > cfa || (b & 7) != 0) return (int)n;
      bp = *(const uintptr_t *)b;
    } else if (row.rule[0] == CFI_VALOFF) {
      bp = cfa + (uintptr_t)row.off[0];
    } else if (row.rule[0] != CFI_SAME) {
      bp_known = false;
    }
    out[n].ip = ra;
    out[n].cfa = cfa;
    out[n].rbp = bp_known ? bp : 0;
    n++;
    if (ra == 0) {
      *complete = true; /* past a thread's start */
      return (int)n;
    }
    pc = ra;
    sp = cfa;
  }
  return (int)n;
}

#else

bool cfi_available(void) { return false; }
bool cfi_sigreturn(uintptr_t ip) {
  (void)ip;
  return false;
}
int cfi_walk(cfi_frame_t *out, unsigned max, bool *complete) {
  (void)out, (void)max;
  *complete = false;
  return -1;
}

#endif
