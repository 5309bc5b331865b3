/* The heap interposer's stack walker: the program's own unwind tables (.eh_frame), read
 * once per code address and kept as a rule, then applied frame by frame.
 *
 * libgcc's unwinder finds a frame's FDE and runs its CFA program for every frame of every
 * stack; on a program that allocates from many threads that was a third of its time. The
 * result of that work for one address is small: where the frame's CFA is (the stack
 * pointer or the frame pointer plus an offset), where the return address and the caller's
 * frame pointer were saved. This file works it out once per address, as the DWARF rules
 * say (DWARF 5, 6.4; the .eh_frame and .eh_frame_hdr layout of the LSB), keeps it in a
 * table shared by every thread without a lock, and walks a stack from those rules alone.
 *
 * It walks only what it can walk exactly: x86-64, a CFA on the stack or frame pointer, the
 * return address and the frame pointer saved at an offset or left alone. Anything else (a
 * signal frame, a CFA or register given by an expression, a 64-bit FDE, an address no
 * table covers, a table it cannot read) makes the walk give up, and the caller walks that
 * stack with libgcc instead: the same stacks, only slower. A library unloaded may leave
 * rules for addresses another one later takes: after a dlclose the table starts afresh
 * (the old one is kept, not freed, for threads still reading it), and after many the walk
 * is left to libgcc for good.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "walk.h"

#if defined(__x86_64__) && defined(DLFO_STRUCT_HAS_EH_DBASE)
#define FAST_UNWIND 1
#else
#define FAST_UNWIND 0
#endif

/* DWARF register numbers on x86-64. */
enum { REG_RBP = 6, REG_RSP = 7, REG_RA = 16 };

/* How a register is found in the caller: unchanged, at CFA + offset, or not at all (the
 * outermost frame's return address); anything else gives the walk up. */
enum { SAME = 0, AT = 1, UNDEFINED = 2, OTHER = 3 };

struct rule {
    int cfa_reg;     /* REG_RSP or REG_RBP; 0 while it is an expression */
    int64_t cfa_off;
    int rbp_how, ra_how;
    int64_t rbp_off, ra_off;
};

/* A rule packed in 63 bits (bit 63 set marks a slot written): what the table keeps.
 * Bits: 0 no rule here (walk with libgcc), 1 CFA on rbp, 2-3 rbp's how, 4-5 the return
 * address's how, 6-29 the CFA offset, 30-45 rbp's offset, 46-61 the return address's. */
#define PACKED_NONE 1ull
#define WRITTEN (1ull << 63)

static int fits(int64_t v, int bits) {
    return v >= -(1ll << (bits - 1)) && v < (1ll << (bits - 1));
}

static uint64_t field(int64_t v, int bits, int at) {
    return ((uint64_t)v & ((1ull << bits) - 1)) << at;
}

static int64_t unfield(uint64_t p, int bits, int at) {
    int64_t v = (int64_t)((p >> at) & ((1ull << bits) - 1));
    return v >= (1ll << (bits - 1)) ? v - (1ll << bits) : v;
}

static uint64_t pack(const struct rule *r) {
    if ((r->cfa_reg != REG_RSP && r->cfa_reg != REG_RBP) || r->rbp_how == OTHER ||
        r->ra_how == OTHER || !fits(r->cfa_off, 24) || !fits(r->rbp_off, 16) ||
        !fits(r->ra_off, 16))
        return WRITTEN | PACKED_NONE;
    return WRITTEN | (uint64_t)(r->cfa_reg == REG_RBP) << 1 | (uint64_t)r->rbp_how << 2 |
           (uint64_t)r->ra_how << 4 | field(r->cfa_off, 24, 6) | field(r->rbp_off, 16, 30) |
           field(r->ra_off, 16, 46);
}

/* ---- reading the tables -------------------------------------------------------------- */

struct reader { const uint8_t *p, *end; int bad; };

static uint8_t u8(struct reader *r) {
    if (r->p >= r->end) { r->bad = 1; return 0; }
    return *r->p++;
}

static uint64_t uleb(struct reader *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = u8(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t sleb(struct reader *r) {
    int64_t v = 0;
    int shift = 0;
    uint8_t b;
    do {
        b = u8(r);
        v |= (int64_t)(b & 0x7f) << shift;
        shift += 7;
    } while ((b & 0x80) && shift < 64 && !r->bad);
    if (shift < 64 && (b & 0x40)) v |= -((int64_t)1 << shift);
    return v;
}

static uint64_t fixed(struct reader *r, int bytes) {
    if (r->end - r->p < bytes) { r->bad = 1; return 0; }
    uint64_t v = 0;
    memcpy(&v, r->p, bytes);
    r->p += bytes;
    return v;
}

/* A pointer in the encoding `enc` (DW_EH_PE_*): absolute, or relative to where it is
 * (pcrel) or to `data` (datarel); indirect ones and others give up. */
static uint64_t encoded(struct reader *r, uint8_t enc, uintptr_t data) {
    if (enc == 0xff) return 0; /* omit */
    uintptr_t at = (uintptr_t)r->p;
    uint64_t v;
    switch (enc & 0x0f) {
    case 0x00: v = fixed(r, 8); break;                      /* absptr */
    case 0x01: v = uleb(r); break;                          /* uleb128 */
    case 0x02: v = fixed(r, 2); break;                      /* udata2 */
    case 0x03: v = fixed(r, 4); break;                      /* udata4 */
    case 0x04: v = fixed(r, 8); break;                      /* udata8 */
    case 0x09: v = (uint64_t)sleb(r); break;                /* sleb128 */
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)fixed(r, 2); break; /* sdata2 */
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)fixed(r, 4); break; /* sdata4 */
    case 0x0c: v = fixed(r, 8); break;                      /* sdata8 */
    default: r->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += at; break;   /* pcrel */
    case 0x30: v += data; break; /* datarel */
    default: r->bad = 1; return 0;
    }
    if (enc & 0x80) r->bad = 1; /* indirect */
    return v;
}

/* The register rules at `pc`, from the CIE's and the FDE's instructions; 0 where they
 * cannot be read or say what the walk does not follow. */
struct cie { uint64_t code_align; int64_t data_align; uint64_t ra_reg; uint8_t fde_enc;
             const uint8_t *insns, *end; int signal, z; };

static int run_cfa(struct rule *row, const struct rule *initial, const uint8_t *p,
                   const uint8_t *end, const struct cie *cie, uint64_t loc, uint64_t pc) {
    struct rule saved[8];
    int depth = 0;
    struct reader r = {p, end, 0};
    while (r.p < r.end && !r.bad) {
        uint8_t op = u8(&r);
        uint64_t reg = op & 0x3f;
        int64_t off;
        switch (op & 0xc0) {
        case 0x40: /* advance_loc */
            loc += reg * cie->code_align;
            if (loc > pc) return 1;
            continue;
        case 0x80: /* offset */
            off = (int64_t)uleb(&r) * cie->data_align;
            goto set_at;
        case 0xc0: /* restore */
            goto restore;
        }
        switch (op) {
        case 0x00: continue; /* nop */
        case 0x02: loc += fixed(&r, 1) * cie->code_align; if (loc > pc) return 1; continue;
        case 0x03: loc += fixed(&r, 2) * cie->code_align; if (loc > pc) return 1; continue;
        case 0x04: loc += fixed(&r, 4) * cie->code_align; if (loc > pc) return 1; continue;
        case 0x05: reg = uleb(&r); off = (int64_t)uleb(&r) * cie->data_align; goto set_at;
        case 0x11: reg = uleb(&r); off = sleb(&r) * cie->data_align; goto set_at;
        case 0x06: reg = uleb(&r); goto restore;
        case 0x07: /* undefined */
            reg = uleb(&r);
            if (reg == REG_RA) row->ra_how = UNDEFINED;
            else if (reg == REG_RBP) row->rbp_how = OTHER;
            continue;
        case 0x08: /* same_value */
            reg = uleb(&r);
            if (reg == REG_RA) row->ra_how = OTHER;
            else if (reg == REG_RBP) row->rbp_how = SAME;
            continue;
        case 0x09: /* register */
            reg = uleb(&r);
            uleb(&r);
            goto set_other;
        case 0x0a: /* remember_state */
            if (depth == 8) return 0;
            saved[depth++] = *row;
            continue;
        case 0x0b: /* restore_state: the whole row, the CFA's rule too (as libgcc and
                    * LLVM's libunwind do: an epilogue's `ret` is bracketed by the two) */
            if (depth == 0) return 0;
            *row = saved[--depth];
            continue;
        case 0x0c: row->cfa_reg = (int)uleb(&r); row->cfa_off = (int64_t)uleb(&r); continue;
        case 0x12:
            row->cfa_reg = (int)uleb(&r);
            row->cfa_off = sleb(&r) * cie->data_align;
            continue;
        case 0x0d: row->cfa_reg = (int)uleb(&r); continue;
        case 0x0e: row->cfa_off = (int64_t)uleb(&r); continue;
        case 0x13: row->cfa_off = sleb(&r) * cie->data_align; continue;
        case 0x0f: /* def_cfa_expression */
            r.p += uleb(&r);
            row->cfa_reg = 0;
            continue;
        case 0x10: case 0x16: /* expression, val_expression */
            reg = uleb(&r);
            r.p += uleb(&r);
            goto set_other;
        case 0x14: case 0x15: /* val_offset(_sf) */
            reg = uleb(&r);
            if (op == 0x14) uleb(&r); else sleb(&r);
            goto set_other;
        case 0x2e: uleb(&r); continue; /* GNU_args_size */
        default: return 0;             /* set_loc, GNU_negative_offset_extended, others */
        }
    set_at:
        if (reg == REG_RA) { row->ra_how = AT; row->ra_off = off; }
        else if (reg == REG_RBP) { row->rbp_how = AT; row->rbp_off = off; }
        continue;
    set_other:
        if (reg == REG_RA) row->ra_how = OTHER;
        else if (reg == REG_RBP) row->rbp_how = OTHER;
        continue;
    restore:
        if (!initial) return 0; /* restore inside the CIE's own instructions */
        if (reg == REG_RA) { row->ra_how = initial->ra_how; row->ra_off = initial->ra_off; }
        else if (reg == REG_RBP) { row->rbp_how = initial->rbp_how; row->rbp_off = initial->rbp_off; }
        continue;
    }
    return !r.bad;
}

static int read_cie(const uint8_t *at, struct cie *cie) {
    struct reader r = {at, at + 16, 0};
    uint32_t len = (uint32_t)fixed(&r, 4);
    if (len == 0 || len == 0xffffffffu) return 0;
    r.end = at + 4 + len;
    if (fixed(&r, 4) != 0) return 0; /* a CIE's id */
    uint8_t version = u8(&r);
    if (version != 1 && version != 3) return 0;
    const char *aug = (const char *)r.p;
    size_t aug_len = strnlen(aug, (size_t)(r.end - r.p));
    r.p += aug_len + 1;
    cie->code_align = uleb(&r);
    cie->data_align = sleb(&r);
    cie->ra_reg = version == 1 ? u8(&r) : uleb(&r);
    cie->fde_enc = 0; /* absptr */
    cie->signal = 0;
    cie->z = aug_len > 0;
    if (aug_len > 0) {
        if (aug[0] != 'z') return 0;
        uint64_t n = uleb(&r);
        const uint8_t *after = r.p + n;
        for (size_t i = 1; i < aug_len && !r.bad; i++) {
            switch (aug[i]) {
            case 'R': cie->fde_enc = u8(&r); break;
            case 'P': encoded(&r, u8(&r) & 0x7f, 0); break; /* skipped: never followed */
            case 'L': u8(&r); break;
            case 'S': cie->signal = 1; break;
            default: r.p = after; i = aug_len; break; /* the length says where data ends */
            }
        }
        r.p = after;
    }
    cie->insns = r.p;
    cie->end = r.end;
    return !r.bad && r.p <= r.end && cie->ra_reg == REG_RA;
}

#if FAST_UNWIND
/* The rule for code address `pc`, packed, from the tables of the object that holds it. */
static uint64_t rule_for(uintptr_t pc) {
    struct dl_find_object found;
    if (_dl_find_object((void *)pc, &found) != 0 || !found.dlfo_eh_frame) return WRITTEN | PACKED_NONE;
    const uint8_t *hdr = found.dlfo_eh_frame;
    struct reader r = {hdr, hdr + 4096, 0};
    uint8_t version = u8(&r), frame_enc = u8(&r), count_enc = u8(&r), table_enc = u8(&r);
    if (version != 1 || table_enc != 0x3b) return WRITTEN | PACKED_NONE; /* datarel sdata4 */
    encoded(&r, frame_enc, (uintptr_t)hdr);
    uint64_t count = encoded(&r, count_enc, (uintptr_t)hdr);
    if (r.bad || count == 0) return WRITTEN | PACKED_NONE;
    const int32_t *table = (const int32_t *)r.p;
    /* The last entry whose start is at or below pc. */
    uint64_t lo = 0, hi = count;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)hdr + table[2 * mid] <= pc) lo = mid;
        else hi = mid;
    }
    if ((uintptr_t)hdr + table[2 * lo] > pc) return WRITTEN | PACKED_NONE;
    const uint8_t *fde = hdr + table[2 * lo + 1];
    struct reader f = {fde, fde + 8, 0};
    uint32_t len = (uint32_t)fixed(&f, 4);
    if (len == 0 || len == 0xffffffffu) return WRITTEN | PACKED_NONE;
    f.end = fde + 4 + len;
    const uint8_t *id_at = f.p;
    uint32_t cie_off = (uint32_t)fixed(&f, 4);
    struct cie cie;
    if (cie_off == 0 || !read_cie(id_at - cie_off, &cie) || cie.signal) return WRITTEN | PACKED_NONE;
    uint64_t begin = encoded(&f, cie.fde_enc, 0);
    uint64_t range = encoded(&f, cie.fde_enc & 0x0f, 0);
    if (f.bad || pc < begin || pc >= begin + range) return WRITTEN | PACKED_NONE;
    struct rule initial = {0, 0, SAME, SAME, 0, 0};
    if (!run_cfa(&initial, NULL, cie.insns, cie.end, &cie, begin, (uint64_t)-1))
        return WRITTEN | PACKED_NONE;
    struct rule row = initial;
    /* The FDE's augmentation data, where the CIE's augmentation starts with 'z': skipped
     * by its length. */
    if (cie.z) f.p += uleb(&f);
    if (f.bad || !run_cfa(&row, &initial, f.p, f.end, &cie, begin, pc)) return WRITTEN | PACKED_NONE;
    if (row.ra_how == SAME) return WRITTEN | PACKED_NONE;
    return pack(&row);
}
#endif

/* ---- the table and the walk ---------------------------------------------------------- */

#define SLOTS (1u << 16)
#define PROBES 16
#define MAX_TABLES 64

struct slot { uint64_t pc, packed; };
static struct slot *table;
static int tables_made, given_up;

int ffiprof_fast_unwind_start(void) {
    if (!FAST_UNWIND) return 0;
    void *t = mmap(NULL, SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) return 0;
    __atomic_store_n(&table, (struct slot *)t, __ATOMIC_RELEASE);
    return 1;
}

void ffiprof_fast_unwind_forget(void) {
    /* Called after a dlclose: rules for the addresses it freed may no longer hold. */
    if (!__atomic_load_n(&table, __ATOMIC_ACQUIRE)) return;
    if (__atomic_fetch_add(&tables_made, 1, __ATOMIC_ACQ_REL) >= MAX_TABLES) {
        __atomic_store_n(&given_up, 1, __ATOMIC_RELEASE);
        return;
    }
    ffiprof_fast_unwind_start();
}

static uint64_t mixed(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

#if FAST_UNWIND
/* The packed rule for `pc`, from the table or worked out and put there. */
static uint64_t lookup(struct slot *t, uint64_t pc) {
    uint64_t h = mixed(pc);
    for (int i = 0; i < PROBES; i++) {
        struct slot *s = &t[(h + i) & (SLOTS - 1)];
        uint64_t key = __atomic_load_n(&s->pc, __ATOMIC_ACQUIRE);
        if (key == pc) {
            uint64_t p = __atomic_load_n(&s->packed, __ATOMIC_ACQUIRE);
            if (p & WRITTEN) return p;
            break; /* being written: work it out here too */
        }
        if (key == 0) {
            uint64_t p = rule_for((uintptr_t)pc);
            uint64_t none = 0;
            if (__atomic_compare_exchange_n(&s->pc, &none, pc, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                __atomic_store_n(&s->packed, p, __ATOMIC_RELEASE);
            return p;
        }
    }
    return rule_for((uintptr_t)pc);
}
#endif

__attribute__((noinline)) int64_t ffiprof_fast_unwind(uint64_t *ips, uint64_t max,
                                                      uintptr_t skip_lo, uintptr_t skip_hi) {
#if FAST_UNWIND
    struct slot *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (!t || __atomic_load_n(&given_up, __ATOMIC_ACQUIRE)) return -1;
    /* This function keeps its frame pointer (built with -fno-omit-frame-pointer): its
     * caller's registers as they are once it returns. */
    uintptr_t *fp = __builtin_frame_address(0);
    uint64_t ip = (uint64_t)(uintptr_t)__builtin_return_address(0);
    uint64_t rsp = (uint64_t)(uintptr_t)(fp + 2);
    uint64_t rbp = fp[0];
    uint64_t n = 0;
    while (ip != 0) {
        if (ip < skip_lo || ip >= skip_hi) {
            ips[n++] = ip;
            if (n == max) return (int64_t)n;
        }
        /* A return address is just past its call: the call's own rule is one byte back. */
        uint64_t p = lookup(t, ip - 1);
        if (p & PACKED_NONE) return -1;
        int64_t cfa_off = unfield(p, 24, 6);
        uint64_t cfa = ((p >> 1) & 1 ? rbp : rsp) + (uint64_t)cfa_off;
        int rbp_how = (int)((p >> 2) & 3), ra_how = (int)((p >> 4) & 3);
        if (ra_how == UNDEFINED) return (int64_t)n; /* the outermost frame */
        if (cfa == 0 || (cfa & 7) != 0) return -1;
        uint64_t next_ip = *(const uint64_t *)(uintptr_t)(cfa + (uint64_t)unfield(p, 16, 46));
        if (rbp_how == AT) rbp = *(const uint64_t *)(uintptr_t)(cfa + (uint64_t)unfield(p, 16, 30));
        if (cfa <= rsp) return -1; /* a stack grows down: its callers' frames lie above */
        rsp = cfa;
        ip = next_ip;
    }
    return (int64_t)n;
#else
    (void)ips; (void)max; (void)skip_lo; (void)skip_hi;
    return -1;
#endif
}
