/* ffiprof's heap interposer: preloaded into the program `ffiprof memory` runs.
 *
 * Every call of the C allocator's entry points (malloc, calloc, realloc, reallocarray,
 * free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc) and of C++'s operator
 * new and delete is written to a log, one file per process, in the order the heap changed:
 * a free is logged before the block goes back to the allocator, an allocation after it
 * came out, so an address handed from one thread to another is never seen live twice.
 * Allocations (all of them, or about one per FFIPROF_HEAP_SAMPLE bytes) and frees carry
 * their stack, unwound here with the program's own unwind tables (walk.c, or libgcc's unwinder) and
 * kept once per distinct stack; every event carries its return address, from which
 * ffiprof tells Rust's allocator from C's and C++'s. Nothing is counted here: ffiprof
 * replays the log.
 *
 * No allocator call waits for another thread's: each thread writes its own chunks of the
 * log, every record numbered from one sequence (an atomic counter) that gives the log its
 * order; the blocks' states are kept in a bitmap changed with atomic operations; a stack is
 * looked up in the thread's own cache before the shared table. A lock is taken only on
 * rare paths: starting, a thread's first call, a stack the thread has not seen, the guard
 * pool, fork.
 *
 * The log is a file mapped shared: what was written stays in the page cache if the
 * process is killed, so a census of what was seen can still be made.
 *
 * With FFIPROF_HEAP_GUARD=N (`ffiprof lifetimes --guard N`) nothing is logged but about one
 * allocation in N, which is served from a pool of guard pages instead (the design of
 * GWP-ASan and Electric Fence): the block ends where its page ends and an inaccessible page
 * follows; once freed, its page is made inaccessible and kept so for a while (a
 * quarantine). A fault on them is logged with its stack, the page made accessible again,
 * and the program goes on as it would have; bytes written into the block's slack are
 * found at its free. Every other allocation goes straight to the allocator.
 *
 * Record layout (64-bit words, native order): a header word, `kind | words << 8 | flags
 * << 32`, written last, then the body. A zero header ends the log.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <ucontext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "walk.h"
#include <unwind.h>

#include <link.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern char **environ;

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))

enum kind { K_ALLOC = 1, K_FREE = 2, K_REALLOC = 3, K_STACK = 4, K_MAPS = 5, K_CMD = 6, K_SKIP = 7, K_END = 8, K_LOST = 9, K_FAULT = 10, K_SLACK = 11, K_MARK = 12 };
/* Event flags. */
enum { F_SAMPLED = 1, F_CXX = 2, F_DOUBLE_FREE = 4, F_NEVER_ALLOCATED = 8, F_MOVED = 16, F_GUARDED = 32, F_WRITE = 64 };

#define MAX_FRAMES 100
/* The log is written in chunks of this size, each a thread's own (see "the log"). */
#define CHUNK_BYTES (1u << 20)
#define CHUNK_WORDS (CHUNK_BYTES / 8)

static int state; /* 0 not started, 1 starting, 2 logging, 3 off */
static int log_fd = -1;
static double sample_bytes;
static uintptr_t self_lo, self_hi;

static TLS int in_hook;
/* This thread holds the interposer's lock (taken only on rare paths: starting, a stack
 * not seen before, a thread's first call, the guard pool, fork). */
static TLS int holding;
/* Set once a block could be neither logged nor marked: from then on a free of an unknown
 * address is not called one of what was never allocated. */
static int untracked;
static int follow_children;
static TLS int cxx_hint;
static TLS double countdown;
static TLS uint64_t rng;

/* The interposer's lock: held for a few dozen instructions, so a thread that finds it
 * taken spins (yielding after a while) rather than sleeping in the kernel. No allocator
 * call takes it but on the rare paths above. */
static int spin;

static void take(void) {
    /* `holding` is set before the lock is taken and cleared after it is given back, so a
     * signal handler on this thread never finds the lock this thread's without knowing. */
    holding = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (int tries = 0; __atomic_exchange_n(&spin, 1, __ATOMIC_ACQUIRE);) {
        while (__atomic_load_n(&spin, __ATOMIC_RELAXED)) {
            if (++tries > 200) { sched_yield(); tries = 0; }
            else __builtin_ia32_pause();
        }
    }
}

static void give(void) {
    __atomic_store_n(&spin, 0, __ATOMIC_RELEASE);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    holding = 0;
}

/* ---- the allocator that serves ---------------------------------------------------------
 * The next definitions after this library's (a user's LD_PRELOAD of jemalloc or tcmalloc,
 * or one the program links, keeps serving); glibc's own until they are found. */
static void *(*next_malloc)(size_t) = __libc_malloc;
static void (*next_free)(void *) = __libc_free;
static void *(*next_calloc)(size_t, size_t) = __libc_calloc;
static void *(*next_realloc)(void *, size_t) = __libc_realloc;
static void *(*next_memalign)(size_t, size_t) = __libc_memalign;
static void *(*next_valloc)(size_t) = __libc_valloc;
static void *(*next_pvalloc)(size_t) = __libc_pvalloc;

static void find_next_allocator(void) {
#define NEXT(var, name)                                 \
    do {                                                \
        void *f_ = dlsym(RTLD_NEXT, name);              \
        if (f_) *(void **)&var = f_;                    \
    } while (0)
    void *(*m)(size_t) = dlsym(RTLD_NEXT, "malloc");
    void (*f)(void *) = dlsym(RTLD_NEXT, "free");
    /* Only a whole allocator is taken: glibc's malloc with another's free would not do. */
    if (!m || !f || (m == __libc_malloc && f == __libc_free)) return;
    NEXT(next_calloc, "calloc");
    NEXT(next_realloc, "realloc");
    NEXT(next_memalign, "memalign");
    NEXT(next_valloc, "valloc");
    NEXT(next_pvalloc, "pvalloc");
    next_free = f;
    next_malloc = m;
#undef NEXT
}

/* ---- the log ----------------------------------------------------------------------
 * Each thread writes its own chunks of the file, so that no allocator call waits for
 * another thread's: a chunk is CHUNK_BYTES, the next one of the file claimed with an
 * atomic counter, and holds one thread's records (a thread that ends leaves its stream to
 * the next thread that starts). Every record's first body word is its number in one
 * sequence the process's threads share (an atomic counter): the log's order is the
 * sequence's, and ffiprof merges the chunks by it. A free takes its number before the block
 * goes back to the allocator, an allocation after it came out: an address handed from one
 * thread to another is never seen live twice. In a chunk, a zero header ends its records;
 * its last two words are kept for a record saying the log could not grow. */

#define STACK_CACHE 1024
/* A stack this thread has seen: its number, and where its addresses lie in the arena. */
struct scache { uint64_t hash, id, off, len; };

struct stream {
    uint64_t *chunk; /* NULL: none mapped yet */
    uint64_t pos;    /* words written in the chunk */
    /* Set while the thread writes a record (or between a realloc's two numbers): a signal
     * handler on the thread leaves its calls unlogged, and exit waits for it. */
    int busy;
    int used; /* a thread's */
    struct stream *next;
    struct scache cache[STACK_CACHE];
};

static struct stream *streams; /* every stream, newest first (lock held to change) */
static TLS struct stream *me;
static uint64_t next_chunk; /* the file's next chunk (atomic) */
static uint64_t next_seq = 1; /* the sequence (atomic) */
static pthread_key_t stream_key;
static int stream_key_made;

/* Maps a new chunk of the log for `s`, its blocks reserved first: a file that cannot grow
 * (a full disk or tmpfs, the process's file size limit) is refused here, never met as a
 * SIGBUS or SIGXFSZ inside the program's malloc. */
static int map_chunk(struct stream *s) {
    uint64_t index = __atomic_fetch_add(&next_chunk, 1, __ATOMIC_RELAXED);
    uint64_t end = (index + 1) * (uint64_t)CHUNK_BYTES;
    struct rlimit limit;
    if (getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && end > limit.rlim_cur)
        return -1;
    if (posix_fallocate(log_fd, (off_t)(index * (uint64_t)CHUNK_BYTES), CHUNK_BYTES) != 0) return -1;
    void *m = mmap(NULL, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd,
                   (off_t)(index * (uint64_t)CHUNK_BYTES));
    if (m == MAP_FAILED) return -1;
    if (s->chunk) munmap(s->chunk, CHUNK_BYTES);
    s->chunk = m;
    s->pos = 0;
    return 0;
}

/* Begins a record of thread stream `s`: its number in the sequence, or 0 where logging
 * stopped. The stream is busy until end(). The counter's atomic add orders the busy flag
 * before the check of the state, as exit's change of the state comes before its look at
 * the flags: a record is either written whole before the end or not begun. */
static uint64_t begin(struct stream *s) {
    __atomic_store_n(&s->busy, 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    uint64_t seq = __atomic_fetch_add(&next_seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&state, __ATOMIC_SEQ_CST) != 2) {
        __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
        return 0;
    }
    return seq;
}

static void end(struct stream *s) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
}

/* Writes a record to `s` (between begin and end): body first, header last; body[0] is the
 * record's number. Where no chunk can be had, the log says it was lost from here on and
 * logging stops. */
static void put(struct stream *s, unsigned kind, uint64_t flags, const uint64_t *body, uint64_t n) {
    uint64_t words = n + 1;
    if (words > CHUNK_WORDS - 2) return;
    if (!s->chunk || s->pos + words > CHUNK_WORDS - 2) {
        uint64_t *old = s->chunk, old_pos = s->pos;
        if (map_chunk(s) != 0) {
            if (old) {
                old[old_pos + 1] = body[0];
                __atomic_store_n(&old[old_pos], (uint64_t)K_LOST | (2ull << 8), __ATOMIC_RELEASE);
            }
            __atomic_store_n(&state, 3, __ATOMIC_RELEASE);
            return;
        }
    }
    memcpy(&s->chunk[s->pos + 1], body, n * 8);
    __atomic_store_n(&s->chunk[s->pos], (uint64_t)kind | (words << 8) | (flags << 32), __ATOMIC_RELEASE);
    s->pos += words;
}

/* A record on its own: numbered, written. */
static void record(struct stream *s, unsigned kind, uint64_t flags, uint64_t *body, uint64_t n) {
    uint64_t seq = begin(s);
    if (!seq) return;
    body[0] = seq;
    put(s, kind, flags, body, n);
    end(s);
}

/* Writes `len` bytes as a record of `kind` (lock held: one buffer serves every thread). */
static void record_bytes(struct stream *s, unsigned kind, const char *bytes, uint64_t len) {
    static uint64_t words[CHUNK_WORDS - 8];
    if (len > sizeof words - 24) len = sizeof words - 24;
    words[1] = len;
    memset(&words[2 + len / 8], 0, 8);
    memcpy(&words[2], bytes, len);
    record(s, kind, 0, words, 2 + (len + 7) / 8);
}

static void *pages(uint64_t bytes);

static void stream_release(void *v);

/* A stream for this thread (lock held): one a thread that ended left, or a new one. */
static struct stream *stream_locked(void) {
    struct stream *s = streams;
    while (s && s->used) s = s->next;
    if (!s) {
        s = pages(sizeof *s);
        if (!s) return NULL;
        s->next = streams;
        __atomic_store_n(&streams, s, __ATOMIC_RELEASE);
    }
    s->used = 1;
    /* A thread cancelled while it wrote a record left its stream busy; its unfinished
     * record (header unwritten) is written over. */
    s->busy = 0;
    me = s;
    /* Given back when the thread ends (keys below 32 need no allocation). */
    if (stream_key_made) pthread_setspecific(stream_key, s);
    return s;
}

static struct stream *stream_get(void) {
    take();
    struct stream *s = stream_locked();
    give();
    return s;
}

/* The thread ends: its stream serves the next thread that starts. A later call on this
 * thread (another key's destructor) takes one again. */
static void stream_release(void *v) {
    struct stream *s = v;
    if (me == s) me = NULL;
    take();
    s->used = 0;
    give();
}

/* ---- where code is mapped --------------------------------------------------------- */

#define MAX_RANGES 4096
static uintptr_t ranges[MAX_RANGES][2];
static int n_ranges;

static uint64_t read_file(const char *path, char *buf, uint64_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    uint64_t len = 0;
    for (ssize_t got; len < cap && (got = read(fd, buf + len, cap - len)) > 0;) len += (uint64_t)got;
    close(fd);
    return len;
}

static uintptr_t hex(const char **p) {
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* Reads /proc/self/maps into the log and the executable ranges (lock held). */
static void log_maps(struct stream *st) {
    static char buf[1 << 20];
    uint64_t len = read_file("/proc/self/maps", buf, sizeof buf - 1);
    buf[len] = 0;
    n_ranges = 0;
    for (const char *p = buf; *p && n_ranges < MAX_RANGES;) {
        uintptr_t lo = hex(&p);
        p++;
        uintptr_t hi = hex(&p);
        if (p[1] && p[2] && p[3] == 'x') {
            ranges[n_ranges][0] = lo;
            ranges[n_ranges][1] = hi;
            n_ranges++;
        }
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    record_bytes(st, K_MAPS, buf, len);
}

static int mapped(uintptr_t ip) {
    for (int i = 0; i < n_ranges; i++)
        if (ip >= ranges[i][0] && ip < ranges[i][1]) return 1;
    return 0;
}

/* A definition after this library's, looked up with the hooks passing straight through. */
static void *next_symbol_early(const char *name) {
    in_hook++;
    void *f = dlsym(RTLD_NEXT, name);
    in_hook--;
    return f;
}

/* ---- tables (memory from mmap, never from the allocator being watched) ----------- */

static void *pages(uint64_t bytes) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* Blocks: address -> state, four bits per 8 bytes of address space (every allocator
 * aligns its blocks to 8 bytes at least), in a leaf per 4 GiB mapped when first written
 * and touched only where blocks are: no lock, no table to grow, and a signal handler may
 * read and write it. An address keeps its state once freed, so a second free of it is told
 * from a free of what was never allocated. */
enum { B_LIVE = 1, B_FREED = 2, B_UNLOGGED = 4, B_FOREIGN = 8 };
#define LEAF_SHIFT 32
#define LEAVES (1u << (47 - LEAF_SHIFT))
#define LEAF_BYTES ((1ull << LEAF_SHIFT) / 16)
static uint8_t *leaves[LEAVES];

static uint8_t *leaf(uint64_t ptr, int make) {
    uint64_t i = ptr >> LEAF_SHIFT;
    if (i >= LEAVES) return NULL;
    uint8_t *l = __atomic_load_n(&leaves[i], __ATOMIC_ACQUIRE);
    if (l || !make) return l;
    uint8_t *m = pages(LEAF_BYTES);
    if (!m) {
        __atomic_store_n(&untracked, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    if (__atomic_compare_exchange_n(&leaves[i], &l, m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return m;
    munmap(m, LEAF_BYTES); /* another thread's came first */
    return l;
}

static void block_set(uint64_t ptr, uint64_t st) {
    uint8_t *l = leaf(ptr, 1);
    if (!l) return;
    uint8_t *byte = &l[(ptr & ((1ull << LEAF_SHIFT) - 1)) >> 4];
    unsigned shift = (ptr & 8) ? 4 : 0;
    uint8_t was = __atomic_load_n(byte, __ATOMIC_RELAXED), now;
    do now = (uint8_t)((was & ~(0xfu << shift)) | (st << shift));
    while (!__atomic_compare_exchange_n(byte, &was, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static uint64_t block_get(uint64_t ptr) {
    uint8_t *l = leaf(ptr, 0);
    if (!l) return 0;
    uint8_t byte = __atomic_load_n(&l[(ptr & ((1ull << LEAF_SHIFT) - 1)) >> 4], __ATOMIC_RELAXED);
    return (byte >> ((ptr & 8) ? 4 : 0)) & 0xf;
}

/* Stacks: distinct return-address lists, numbered from 1 in the order first seen. Each
 * thread looks a stack up in its own cache first; the shared table is searched, and
 * grown, under the lock only for a stack the thread has not seen. Addresses kept in the
 * arena never move. */
struct stack { uint64_t hash, id, off, len; };
static struct stack *stacks;
static uint64_t stacks_cap, stacks_len;
static uint64_t *arena;
static uint64_t arena_len;
#define ARENA_WORDS (1ull << 27) /* 1 GiB reserved */

static struct stack *stack_slot(struct stack *table, uint64_t cap, uint64_t hash, const uint64_t *ips, uint64_t n) {
    uint64_t i = hash & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        struct stack *s = &table[i];
        if (!s->id) return s;
        if (s->hash == hash && s->len == n && memcmp(&arena[s->off], ips, n * 8) == 0) return s;
    }
}

static int stacks_grow(void) {
    uint64_t cap = stacks_cap ? stacks_cap * 2 : (1u << 14);
    struct stack *table = pages(cap * sizeof *table);
    if (!table) return -1;
    for (uint64_t i = 0; i < stacks_cap; i++)
        if (stacks[i].id) {
            uint64_t j = stacks[i].hash & (cap - 1);
            while (table[j].id) j = (j + 1) & (cap - 1);
            table[j] = stacks[i];
        }
    if (stacks) munmap(stacks, stacks_cap * sizeof *stacks);
    stacks = table;
    stacks_cap = cap;
    return 0;
}

/* The stack's entry in the shared table, logged (with the mappings, if one of its
 * addresses is new) the first time (lock held); NULL where it cannot be kept. */
static const struct stack *stack_locked(struct stream *st, uint64_t hash, const uint64_t *ips, uint64_t n) {
    if (!arena && !(arena = pages(ARENA_WORDS * 8))) return NULL;
    if ((stacks_len + 1) * 2 > stacks_cap && stacks_grow() != 0) return NULL;
    struct stack *s = stack_slot(stacks, stacks_cap, hash, ips, n);
    if (s->id) return s;
    if (arena_len + n > ARENA_WORDS) return NULL;
    for (uint64_t i = 0; i < n; i++)
        if (!mapped((uintptr_t)ips[i])) { log_maps(st); break; }
    memcpy(&arena[arena_len], ips, n * 8);
    *s = (struct stack){hash, ++stacks_len, arena_len, n};
    arena_len += n;
    uint64_t body[MAX_FRAMES + 2];
    body[1] = s->id;
    memcpy(&body[2], ips, n * 8);
    record(st, K_STACK, 0, body, n + 2);
    return s;
}

/* The stack's number (0: none). */
static uint64_t stack_id(struct stream *st, const uint64_t *ips, uint64_t n) {
    if (n == 0) return 0;
    uint64_t hash = n;
    for (uint64_t i = 0; i < n; i++) hash = mix(hash ^ ips[i]);
    hash |= 1;
    struct scache *c = &st->cache[(hash >> 7) & (STACK_CACHE - 1)];
    if (c->hash == hash && c->len == n && memcmp(&arena[c->off], ips, n * 8) == 0) return c->id;
    take();
    const struct stack *s = stack_locked(st, hash, ips, n);
    if (s) *c = (struct scache){hash, s->id, s->off, n};
    uint64_t id = s ? s->id : 0;
    give();
    return id;
}

/* ---- unwinding ---------------------------------------------------------------------- */

struct walk { uint64_t *ips; uint64_t n, max; };

static _Unwind_Reason_Code on_frame(struct _Unwind_Context *ctx, void *arg) {
    struct walk *w = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0) return _URC_END_OF_STACK;
    if (ip >= self_lo && ip < self_hi) return _URC_NO_REASON; /* the interposer's own */
    w->ips[w->n++] = ip;
    return w->n == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

/* A free's stack says who freed and the Rust code above: its first frames. */
#define FREE_FRAMES 24

/* Stacks are walked from cached unwind rules (walk.c), or by libgcc where those give up
 * or FFIPROF_HEAP_UNWIND=libgcc says so. FFIPROF_HEAP_UNWIND=check walks every stack both
 * ways and says at exit, on stderr, how many were walked each way and how many differed:
 * a test's view, never a user's. */
static int fast_unwind, check_unwind;
static uint64_t walked_fast, walked_libgcc, walked_differently;

static uint64_t libgcc_unwind(uint64_t *ips, uint64_t max) {
    struct walk w = {ips, 0, max};
    _Unwind_Backtrace(on_frame, &w);
    return w.n;
}

static uint64_t unwind(uint64_t *ips, uint64_t max) {
    int64_t n = fast_unwind ? ffiprof_fast_unwind(ips, max, self_lo, self_hi) : -1;
    if (n < 0) {
        if (check_unwind) __atomic_fetch_add(&walked_libgcc, 1, __ATOMIC_RELAXED);
        return libgcc_unwind(ips, max);
    }
    if (check_unwind) {
        __atomic_fetch_add(&walked_fast, 1, __ATOMIC_RELAXED);
        uint64_t theirs[MAX_FRAMES];
        uint64_t m = libgcc_unwind(theirs, max);
        if (m != (uint64_t)n || memcmp(theirs, ips, m * 8) != 0)
            __atomic_fetch_add(&walked_differently, 1, __ATOMIC_RELAXED);
    }
    return (uint64_t)n;
}

static void say_walks(void) __attribute__((destructor(102)));
static void say_walks(void) {
    if (!check_unwind) return;
    char line[200];
    int len = snprintf(line, sizeof line,
                       "ffiprof-heap: stacks walked from cached rules %llu, by libgcc %llu, "
                       "differing %llu\n",
                       (unsigned long long)walked_fast, (unsigned long long)walked_libgcc,
                       (unsigned long long)walked_differently);
    if (len > 0) (void)!write(2, line, (size_t)len);
}

/* ---- starting ----------------------------------------------------------------------- */

static void anchor(void) {}

static void find_self(void) {
    Dl_info info;
    if (!dladdr((void *)anchor, &info)) return;
    /* The interposer's code: from its load address to the end of this file's text is
     * enough for the unwinder's test, bounded by the next mapping. */
    char buf[1 << 16];
    uint64_t len = read_file("/proc/self/maps", buf, sizeof buf - 1);
    buf[len] = 0;
    uintptr_t me = (uintptr_t)anchor;
    for (const char *p = buf; *p;) {
        uintptr_t lo = hex(&p);
        p++;
        uintptr_t hi = hex(&p);
        if (me >= lo && me < hi) { self_lo = lo; self_hi = hi; return; }
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
}

/* Takes the interposer out of LD_PRELOAD, in place, where children are not followed. */
static void unpreload(const char *self) {
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) continue;
        char *v = *e + 11, *at = strstr(v, self);
        if (!at) return;
        char *end = at + strlen(self);
        while (*end == ':' || *end == ' ') end++;
        memmove(at, end, strlen(end) + 1);
        return;
    }
}

static int open_log(void) {
    const char *dir = getenv("FFIPROF_HEAP_DIR");
    if (!dir) return -1;
    char path[4096];
    /* A program an exec started keeps the pid: each image logs to a file of its own,
     * numbered in the order they ran. */
    for (int image = 0; image < 1000; image++) {
        snprintf(path, sizeof path, "%s/heap.%d.%d.log", dir, (int)getpid(), image);
        log_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (log_fd >= 0 || errno != EEXIST) break;
    }
    if (log_fd < 0) return -1;
    /* The first chunk is this thread's (lock held). */
    struct stream *s = stream_locked();
    if (!s || map_chunk(s) != 0) return -1;
    state = 2;
    static char cmd[1 << 16];
    record_bytes(s, K_CMD, cmd, read_file("/proc/self/cmdline", cmd, sizeof cmd));
    log_maps(s);
    return 0;
}

/* A forked child starts a log of its own: the parent's threads, streams and stacks are
 * not its (lock held). */
static void forget_log(void) {
    for (struct stream *s = streams, *next; s; s = next) {
        next = s->next;
        if (s->chunk) munmap(s->chunk, CHUNK_BYTES);
        munmap(s, sizeof *s);
    }
    streams = NULL;
    me = NULL;
    /* The thread's end must not give back a stream no longer mapped. */
    if (stream_key_made) pthread_setspecific(stream_key, NULL);
    next_chunk = 0;
    next_seq = 1;
    if (stacks) munmap(stacks, stacks_cap * sizeof *stacks);
    if (arena) munmap(arena, ARENA_WORDS * 8);
    stacks = NULL;
    arena = NULL;
    stacks_cap = stacks_len = arena_len = 0;
    close(log_fd);
    log_fd = -1;
}

/* fork() from a signal handler that interrupted this thread inside the interposer: the
 * lock is already this thread's, and the tables may be half-written; the child does not
 * log. */
static TLS int fork_nested;
static void before_fork(void) {
    fork_nested = holding || (me && me->busy);
    if (!fork_nested) take();
}
static void after_fork_parent(void) {
    if (!fork_nested) give();
}
static void after_fork_child(void) {
    if (fork_nested) {
        state = 3;
        return;
    }
    /* Children are followed only when asked (--trace-children). A followed child logs to a
     * file of its own; the blocks it inherits stay known, so their frees are not taken for
     * invalid ones. */
    if (state == 2 && !follow_children) state = 3;
    if (state == 2) {
        forget_log();
        if (open_log() != 0) state = 3;
    }
    give();
}

static void guard_start(const char *every);

/* Starts logging on the first call (lock held): constructors of other libraries may
 * allocate before this library's would run. */
static void start(void) {
    state = 1;
    find_self();
    find_next_allocator();
    const char *every = getenv("FFIPROF_HEAP_SAMPLE");
    sample_bytes = every ? strtod(every, NULL) : 0;
    const char *self = getenv("FFIPROF_HEAP_LIB");
    const char *children = getenv("FFIPROF_HEAP_CHILDREN");
    follow_children = children && children[0] == '1';
    if (self && !follow_children) unpreload(self);
    const char *walk = getenv("FFIPROF_HEAP_UNWIND");
    check_unwind = walk && strcmp(walk, "check") == 0;
    if (!(walk && strcmp(walk, "libgcc") == 0)) fast_unwind = ffiprof_fast_unwind_start();
    if (open_log() != 0) state = 3;
    const char *guard = getenv("FFIPROF_HEAP_GUARD");
    if (state == 2 && guard) guard_start(guard);
}

static void finish(void) __attribute__((destructor(101)));
static void finish(void) {
    /* exit() called by a signal handler that interrupted this thread inside the
     * interposer: the lock is this thread's own, and what it was writing is unfinished;
     * the log stops here, without its end, as a program killed would leave it. */
    if (holding || (me && me->busy)) {
        __atomic_store_n(&state, 3, __ATOMIC_RELEASE);
        return;
    }
    /* Nothing after the end: other threads go on unlogged until the process is gone. No
     * record begins from here; those begun are waited for (a while: a thread stopped
     * inside the allocator is not waited for forever), so that every record numbered
     * before the end is whole. */
    if (__atomic_exchange_n(&state, 3, __ATOMIC_SEQ_CST) != 2) return;
    in_hook++;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (struct stream *s = __atomic_load_n(&streams, __ATOMIC_ACQUIRE); s; s = s->next)
        for (int tries = 0; __atomic_load_n(&s->busy, __ATOMIC_SEQ_CST);) {
            if (++tries < 200) { __builtin_ia32_pause(); continue; }
            tries = 0;
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > 100000000L) goto late;
        }
late:;
    struct stream *s = me ? me : stream_get();
    if (s) {
        __atomic_store_n(&s->busy, 1, __ATOMIC_RELAXED);
        uint64_t body[1] = {__atomic_fetch_add(&next_seq, 1, __ATOMIC_SEQ_CST)};
        put(s, K_END, 0, body, 1);
        end(s);
    }
    in_hook--;
}

/* ---- sampling ----------------------------------------------------------------------- */

static double next_gap(void) {
    if (!rng) rng = mix((uint64_t)(uintptr_t)&rng ^ (uint64_t)getpid() << 32) | 1;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    double u = ((rng >> 11) + 0.5) / 9007199254740992.0;
    return -log(u) * sample_bytes;
}

/* True where the allocation of `size` bytes is one to keep a stack for. */
static int sampled(size_t size) {
    if (sample_bytes <= 0) return 1;
    if (countdown == 0) countdown = next_gap();
    countdown -= (double)size;
    if (countdown > 0) return 0;
    while (countdown <= 0) countdown += next_gap();
    return 1;
}

/* ---- the hooks ---------------------------------------------------------------------- */

/* Enters a hook: false where the call is the interposer's own (nested) or logging is off;
 * then the allocator is called directly and the block kept out of the log. True: `me` is
 * this thread's stream. */
static int enter(void) {
    /* A signal handler run while this thread holds the lock (or waits for it, or is
     * between fork's prepare and parent handlers), or writes a record, must not wait for
     * either: unlogged. */
    if (in_hook || holding) return 0;
    struct stream *s = me;
    if (s && __atomic_load_n(&s->busy, __ATOMIC_RELAXED)) return 0;
    int now = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (now == 3) return 0;
    if (now != 2) {
        in_hook = 1;
        take();
        if (state == 0) start();
        give();
        in_hook = 0;
        if (state != 2) return 0;
    }
    in_hook = 1;
    if (!me && !stream_get()) {
        in_hook = 0;
        return 0;
    }
    return 1;
}

static void leave(void) { in_hook = 0; }

/* A block kept out of the log: its free is then no surprise. */
static void note_unlogged(void *p) {
    if (p && state == 2) block_set((uint64_t)(uintptr_t)p, B_LIVE | B_UNLOGGED);
}

/* Allocations this thread logged: an operator new that logged none served its block
 * from an allocator of its own (tcmalloc's, jemalloc's). */
static TLS uint64_t logged_allocs;

static void logged_block(void *p, size_t size, uint64_t ip, uint64_t state_bits) {
    uint64_t ips[MAX_FRAMES], n = 0;
    int keep = sampled(size);
    if (keep) n = unwind(ips, MAX_FRAMES);
    uint64_t flags = (keep ? F_SAMPLED : 0) | (cxx_hint ? F_CXX : 0);
    struct stream *s = me;
    uint64_t body[5] = {0, (uint64_t)(uintptr_t)p, size ? size : 1, stack_id(s, ips, n), ip};
    block_set(body[1], B_LIVE | state_bits);
    record(s, K_ALLOC, flags, body, 5);
    logged_allocs++;
}

static void logged_alloc(void *p, size_t size, uint64_t ip) { logged_block(p, size, ip, 0); }

/* ---- guard pages (FFIPROF_HEAP_GUARD=N) ------------------------------------------------
 * A pool of slots, each a data page and an inaccessible page after it; a guarded block
 * ends where its data page ends (rounded up to malloc's 16-byte alignment: the bytes
 * between its end and the page's, and those before it, are slack filled with a pattern).
 * A freed block's page is made inaccessible and the slot waits in a quarantine before it
 * serves again. */

#define GUARD_PAGE 4096u
#define GUARD_SLOTS (1u << 16)
#define GUARD_QUARANTINE (1u << 12)
#define GUARD_POOL ((uint64_t)GUARD_SLOTS * 2 * GUARD_PAGE)
#define SLACK 0xA5

enum { G_FREE = 0, G_LIVE = 1, G_QUARANTINED = 2 };
struct gslot { uint64_t size; uint32_t state; uint32_t opened; };

static uint64_t guard_every; /* 0: off */
static char *pool;
static struct gslot *gslots;
static uint32_t *gfree, n_gfree;
static uint32_t *gquar, gquar_head, gquar_len;
static TLS uint64_t guard_left;

static void logged_free(void *p, uint64_t ip, int full_stack);
/* Flags the next logged free carries (F_MOVED: a realloc moved the block). */
static TLS uint64_t free_flags;

static int in_pool(const void *p) {
    return pool && (const char *)p >= pool && (const char *)p < pool + GUARD_POOL;
}

static uint64_t rounded16(uint64_t size) { return (size + 15) & ~15ull; }

static uint64_t next_random(void) {
    if (!rng) rng = mix((uint64_t)(uintptr_t)&rng ^ (uint64_t)getpid() << 32) | 1;
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* True about once in guard_every calls (evenly spread gaps averaging it; every call for 1). */
static int guard_due(void) {
    if (guard_every <= 1) return 1;
    if (guard_left == 0) guard_left = 1 + next_random() % (2 * guard_every - 1);
    if (--guard_left) return 0;
    guard_left = 1 + next_random() % (2 * guard_every - 1);
    return 1;
}

/* A slot for `size` bytes, or NULL (too big, or the pool is full: the allocator serves). */
static void *guard_take(uint64_t size) {
    if (size == 0) size = 1;
    uint64_t r = rounded16(size);
    if (r > GUARD_PAGE) return NULL;
    take();
    uint32_t slot;
    if (n_gfree) slot = gfree[--n_gfree];
    else if (gquar_len) {
        slot = gquar[gquar_head];
        gquar_head = (gquar_head + 1) % GUARD_QUARANTINE;
        gquar_len--;
    } else { give(); return NULL; }
    struct gslot *g = &gslots[slot];
    g->state = G_LIVE;
    g->size = size;
    uint32_t opened = g->opened;
    g->opened = 0;
    give();
    char *data = pool + (uint64_t)slot * 2 * GUARD_PAGE;
    if (opened & 2) mprotect(data + GUARD_PAGE, GUARD_PAGE, PROT_NONE);
    if (mprotect(data, GUARD_PAGE, PROT_READ | PROT_WRITE) != 0) return NULL;
    char *p = data + GUARD_PAGE - r;
    memset(data, SLACK, GUARD_PAGE - r);
    memset(p + size, SLACK, r - size);
    return p;
}

/* The first byte of a guarded block's slack that is not the pattern: its offset from the
 * block's start (negative before it), or 0 where all is intact. */
static int64_t slack_written(const char *p, uint64_t size) {
    const char *data = (const char *)((uintptr_t)p & ~(uintptr_t)(GUARD_PAGE - 1));
    for (const char *q = p + size; q < data + GUARD_PAGE; q++)
        if ((unsigned char)*q != SLACK) return q - p;
    for (const char *q = p - 1; q >= data; q--)
        if ((unsigned char)*q != SLACK) return q - p;
    return 0;
}

/* Gives a guarded block back: its slack checked, its page made inaccessible, its slot to
 * the quarantine (the oldest there to the free slots). */
static void guard_release(void *p, uint64_t ip, int logging) {
    uint64_t slot = (uint64_t)((char *)p - pool) / (2 * GUARD_PAGE);
    struct gslot *g = &gslots[slot];
    take();
    int live = g->state == G_LIVE;
    if (live) g->state = G_QUARANTINED;
    give();
    if (!live) return;
    int64_t at = slack_written(p, g->size);
    if (at != 0 && logging) {
        uint64_t ips[MAX_FRAMES];
        uint64_t n = unwind(ips, FREE_FRAMES);
        uint64_t body[6] = {0, (uint64_t)(uintptr_t)p, g->size, (uint64_t)at, stack_id(me, ips, n), ip};
        record(me, K_SLACK, 0, body, 6);
    }
    char *data = pool + slot * 2 * GUARD_PAGE;
    mprotect(data, GUARD_PAGE, PROT_NONE);
    take();
    if (gquar_len == GUARD_QUARANTINE) {
        uint32_t oldest = gquar[gquar_head];
        gquar_head = (gquar_head + 1) % GUARD_QUARANTINE;
        gquar_len--;
        gslots[oldest].state = G_FREE;
        gfree[n_gfree++] = oldest;
    }
    gquar[(gquar_head + gquar_len) % GUARD_QUARANTINE] = (uint32_t)slot;
    gquar_len++;
    give();
}

/* A guarded block for `size` bytes, logged with its stack; NULL where none can be had. */
static void *guarded_alloc(uint64_t size, int zero, uint64_t ip) {
    if (in_hook || holding || !guard_due()) return NULL;
    if (!enter()) return NULL;
    void *p = guard_take(size);
    if (p) {
        if (zero) memset(p, 0, size);
        logged_block(p, size, ip, 0);
    }
    leave();
    return p;
}

/* Frees a guarded block (moved: realloc moved it), logged where logging is on. */
static void guarded_free(void *p, uint64_t ip, int moved) {
    if (!enter()) {
        guard_release(p, ip, 0);
        return;
    }
    free_flags = F_GUARDED | (moved ? F_MOVED : 0);
    logged_free(p, ip, 1);
    free_flags = 0;
    guard_release(p, ip, 1);
    leave();
}

/* The program's own action for SIGSEGV, kept here while the interposer's handler is the
 * one installed: its sigaction() and signal() calls for SIGSEGV read and set this. */
static struct sigaction user_segv;
static int guard_handler_on;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void find_sigaction(void) {
    if (!real_sigaction) real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))next_symbol_early("sigaction");
}

/* A fault on the pool: logged with the stack from the faulting instruction, and the page
 * opened, so the access is done as it would have been without ffiprof. */
static void guard_fault(uintptr_t address, ucontext_t *uc) {
    uint64_t off = address - (uintptr_t)pool, slot = off / (2 * GUARD_PAGE);
    int in_guard = off % (2 * GUARD_PAGE) >= GUARD_PAGE;
    char *data = pool + slot * 2 * GUARD_PAGE;
    struct gslot *g = &gslots[slot];
    uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    uint64_t write = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? F_WRITE : 0;
    struct stream *st = me;
    if (!holding && state == 2 && !(st && st->busy) && (st || (st = stream_get()))) {
        int nested = in_hook;
        in_hook = 1;
        /* From the faulting instruction on, which stands as a return address would (one
         * past it: readers look up the byte before a return address). */
        uint64_t ips[MAX_FRAMES], n = unwind(ips, MAX_FRAMES), from = n;
        for (uint64_t i = 0; i < n; i++)
            if (ips[i] == rip) { from = i; break; }
        if (from == n) { from = 0; n = 1; }
        ips[from] = rip + 1;
        uint64_t block = (uint64_t)(uintptr_t)(data + GUARD_PAGE - rounded16(g->size));
        uint64_t body[6] = {0, address, block, g->size, stack_id(st, ips + from, n - from), rip + 1};
        record(st, K_FAULT, write, body, 6);
        in_hook = nested;
    }
    mprotect(in_guard ? data + GUARD_PAGE : data, GUARD_PAGE, PROT_READ | PROT_WRITE);
    __atomic_fetch_or(&g->opened, in_guard ? 2u : 1u, __ATOMIC_RELAXED);
}

/* Any other SIGSEGV is the program's: its handler runs as the kernel would have run it;
 * with none, the default action is restored and the fault happens again, unhandled. */
static void on_fault(int sig, siginfo_t *si, void *ucv) {
    if (si && si->si_code > 0 && in_pool(si->si_addr)) {
        guard_fault((uintptr_t)si->si_addr, ucv);
        return;
    }
    struct sigaction u = user_segv;
    if (u.sa_flags & SA_RESETHAND) {
        memset(&user_segv, 0, sizeof user_segv);
        user_segv.sa_handler = SIG_DFL;
    }
    if ((u.sa_flags & SA_SIGINFO) && u.sa_sigaction) {
        u.sa_sigaction(sig, si, ucv);
        return;
    }
    if (!(u.sa_flags & SA_SIGINFO) && u.sa_handler != SIG_DFL && u.sa_handler != SIG_IGN) {
        u.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    find_sigaction();
    if (real_sigaction) real_sigaction(sig, &dfl, NULL);
    /* Sent, not a fault: it would not come again by itself. */
    if (!si || si->si_code <= 0) raise(sig);
}

/* Starts guarding (lock held, from start()). */
static void guard_start(const char *every) {
    uint64_t n = strtoull(every, NULL, 10);
    if (n == 0) return;
    void *m = mmap(NULL, GUARD_POOL, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    gslots = pages(GUARD_SLOTS * sizeof *gslots);
    gfree = pages(GUARD_SLOTS * sizeof *gfree);
    gquar = pages(GUARD_QUARANTINE * sizeof *gquar);
    find_sigaction();
    if (m == MAP_FAILED || !gslots || !gfree || !gquar || !real_sigaction) return;
    for (uint32_t i = 0; i < GUARD_SLOTS; i++) gfree[i] = GUARD_SLOTS - 1 - i;
    n_gfree = GUARD_SLOTS;
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_fault;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    if (real_sigaction(SIGSEGV, &ours, &user_segv) != 0) return;
    pool = m;
    guard_handler_on = 1;
    guard_every = n;
    sample_bytes = 0;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    find_sigaction();
    if (sig == SIGSEGV && guard_handler_on) {
        if (old) *old = user_segv;
        if (act) user_segv = *act;
        return 0;
    }
    if (!real_sigaction) { errno = ENOSYS; return -1; }
    return real_sigaction(sig, act, old);
}

EXPORT sighandler_t signal(int sig, sighandler_t handler) {
    if (sig == SIGSEGV && guard_handler_on) {
        sighandler_t was = (user_segv.sa_flags & SA_SIGINFO) ? (sighandler_t)(void *)user_segv.sa_sigaction : user_segv.sa_handler;
        memset(&user_segv, 0, sizeof user_segv);
        user_segv.sa_handler = handler;
        user_segv.sa_flags = SA_RESTART;
        return was;
    }
    /* Anything else is the C library's own signal(), as without ffiprof. */
    static sighandler_t (*next)(int, sighandler_t);
    if (!next) next = (sighandler_t (*)(int, sighandler_t))next_symbol_early("signal");
    if (!next) { errno = ENOSYS; return SIG_ERR; }
    return next(sig, handler);
}

EXPORT size_t malloc_usable_size(void *p) {
    if (p && in_pool(p)) return gslots[((char *)p - pool) / (2 * GUARD_PAGE)].size;
    static size_t (*next)(void *);
    if (!next) next = (size_t (*)(void *))next_symbol_early("malloc_usable_size");
    return next ? next(p) : 0;
}

/* Whether allocations are guarded (logging started first, where it has not). */
static int guarding(void) {
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) < 2 && !in_hook && !holding) {
        if (enter()) leave();
    }
    return guard_every != 0;
}

#define ALLOC_HOOK(call, size)                                                  \
    do {                                                                         \
        if (guard_every) return (call);                                          \
        if (!enter()) { void *p_ = (call); note_unlogged(p_); return p_; } \
        void *p_ = (call);                                                       \
        if (p_) logged_alloc(p_, (size), (uint64_t)(uintptr_t)__builtin_return_address(0)); \
        leave();                                                                 \
        return p_;                                                               \
    } while (0)

EXPORT void *malloc(size_t size) {
    if (guarding()) {
        void *p = guarded_alloc(size, 0, (uint64_t)(uintptr_t)__builtin_return_address(0));
        return p ? p : next_malloc(size);
    }
    ALLOC_HOOK(next_malloc(size), size);
}

EXPORT void *calloc(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    if (guarding()) {
        void *p = guarded_alloc(total, 1, (uint64_t)(uintptr_t)__builtin_return_address(0));
        return p ? p : next_calloc(n, size);
    }
    ALLOC_HOOK(next_calloc(n, size), total);
}

EXPORT void *memalign(size_t align, size_t size) { ALLOC_HOOK(next_memalign(align, size), size); }
EXPORT void *aligned_alloc(size_t align, size_t size) { ALLOC_HOOK(next_memalign(align, size), size); }
EXPORT void *valloc(size_t size) { ALLOC_HOOK(next_valloc(size), size); }
EXPORT void *pvalloc(size_t size) { ALLOC_HOOK(next_pvalloc(size), size); }

EXPORT int posix_memalign(void **out, size_t align, size_t size) {
    if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
    void *p;
    if (guard_every) {
        p = next_memalign(align, size);
    } else if (!enter()) {
        p = next_memalign(align, size);
        note_unlogged(p);
    } else {
        p = next_memalign(align, size);
        if (p) logged_alloc(p, size, (uint64_t)(uintptr_t)__builtin_return_address(0));
        leave();
    }
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

/* Logs a free (or the release of a block by realloc) before the block goes back. */
static void logged_free(void *p, uint64_t ip, int full_stack) {
    uint64_t ptr = (uint64_t)(uintptr_t)p;
    uint64_t ips[MAX_FRAMES], n = 0;
    if (full_stack) n = unwind(ips, FREE_FRAMES);
    uint64_t st = block_get(ptr);
    if (st & B_UNLOGGED) {
        block_set(ptr, B_FREED | B_UNLOGGED);
        return;
    }
    uint64_t flags = (cxx_hint ? F_CXX : 0) | free_flags;
    if (!(st & B_LIVE)) {
        if (st & B_FREED) flags |= F_DOUBLE_FREE;
        else if (!__atomic_load_n(&untracked, __ATOMIC_RELAXED)) flags |= F_NEVER_ALLOCATED;
        /* Sampling keeps no free's stack but an invalid one's. */
        if (!full_stack && (flags & (F_DOUBLE_FREE | F_NEVER_ALLOCATED))) n = unwind(ips, FREE_FRAMES);
    }
    struct stream *s = me;
    uint64_t body[4] = {0, ptr, stack_id(s, ips, n), ip};
    record(s, K_FREE, flags, body, 4);
    if (st & B_LIVE) block_set(ptr, B_FREED);
}

static void free_hook(void *p, uint64_t ip) {
    if (!p) return;
    if (in_pool(p)) { guarded_free(p, ip, 0); return; }
    if (guard_every) { next_free(p); return; }
    if (!enter()) {
        if (state == 2 && (block_get((uint64_t)(uintptr_t)p) & B_UNLOGGED))
            block_set((uint64_t)(uintptr_t)p, B_FREED | B_UNLOGGED);
        next_free(p);
        return;
    }
    logged_free(p, ip, sample_bytes <= 0);
    leave();
    next_free(p);
}

EXPORT void free(void *p) { free_hook(p, (uint64_t)(uintptr_t)__builtin_return_address(0)); }
EXPORT void cfree(void *p) { free_hook(p, (uint64_t)(uintptr_t)__builtin_return_address(0)); }

/* realloc of a guarded block: always moved (a new block, guarded or not), as memcheck's
 * realloc moves every block, so a pointer kept into the old one is found. */
static void *guarded_realloc(void *old, size_t size, uint64_t ip) {
    if (size == 0) { guarded_free(old, ip, 0); return NULL; }
    uint64_t slot = (uint64_t)((char *)old - pool) / (2 * GUARD_PAGE);
    uint64_t had = gslots[slot].size;
    void *p = guarded_alloc(size, 0, ip);
    if (!p) p = next_malloc(size);
    if (!p) return NULL;
    memcpy(p, old, had < size ? had : size);
    guarded_free(old, ip, 1);
    return p;
}

static void *realloc_hook(void *old, size_t size, uint64_t ip) {
    if (old && in_pool(old)) return guarded_realloc(old, size, ip);
    if (guarding()) {
        if (old) return next_realloc(old, size);
        void *p = guarded_alloc(size, 0, ip);
        return p ? p : next_malloc(size);
    }
    if (!old) {
        if (!enter()) { void *p = next_malloc(size); note_unlogged(p); return p; }
        void *p = next_malloc(size);
        if (p) logged_alloc(p, size, ip);
        leave();
        return p;
    }
    if (size == 0) { /* glibc frees the block and returns NULL */
        free_hook(old, ip);
        return NULL;
    }
    if (!enter()) return next_realloc(old, size);
    uint64_t from = (uint64_t)(uintptr_t)old;
    uint64_t st = block_get(from);
    if (st & B_UNLOGGED) {
        void *p = next_realloc(old, size);
        if (p) {
            block_set(from, B_FREED | B_UNLOGGED);
            block_set((uint64_t)(uintptr_t)p, B_LIVE | B_UNLOGGED);
        }
        leave();
        return p;
    }
    /* Two numbers: the old block's release, taken before the call (its address may be
     * handed to another thread the moment it is released, and that thread's log must come
     * after), and the new block's, taken after it (its address may have been freed by
     * another thread just before). The stream stays busy between them, so that this
     * thread's records keep their order. */
    struct stream *s = me;
    uint64_t released = begin(s);
    if (!released) {
        leave();
        return next_realloc(old, size);
    }
    if (st & B_LIVE) block_set(from, B_FREED);
    void *p = next_realloc(old, size);
    if (!p) {
        if (st & B_LIVE) block_set(from, st);
        end(s);
        leave();
        return NULL;
    }
    block_set((uint64_t)(uintptr_t)p, B_LIVE);
    uint64_t taken = __atomic_fetch_add(&next_seq, 1, __ATOMIC_SEQ_CST);
    uint64_t flags = (st & B_LIVE) ? 0 : (st & B_FREED) ? F_DOUBLE_FREE : F_NEVER_ALLOCATED;
    uint64_t body[6] = {released, from, (uint64_t)(uintptr_t)p, size, taken, ip};
    put(s, K_REALLOC, flags, body, 6);
    end(s);
    leave();
    return p;
}

EXPORT void *realloc(void *old, size_t size) {
    return realloc_hook(old, size, (uint64_t)(uintptr_t)__builtin_return_address(0));
}

EXPORT void *reallocarray(void *old, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    return realloc_hook(old, total, (uint64_t)(uintptr_t)__builtin_return_address(0));
}

/* ---- C++ ------------------------------------------------------------------------------
 * operator new is libstdc++'s own (its new-handler and bad_alloc stay), called with the
 * hint that the malloc it makes is C++'s; operator delete is free with the same hint. */

static void *next_symbol(const char *name) {
    in_hook++;
    void *f = dlsym(RTLD_NEXT, name);
    in_hook--;
    return f;
}

/* The operator where it is not in the global scope: a C host that dlopens a C++ library
 * RTLD_LOCAL binds that library's operators here, while libstdc++ came in with it,
 * local. Any loaded object but this one that defines the name will do. */
struct lookup { const char *name; void *found; };

static int look_in(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    struct lookup *l = arg;
    if (!info->dlpi_name || !info->dlpi_name[0]) return 0;
    void *h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return 0;
    void *f = dlsym(h, l->name);
    dlclose(h);
    if (f && !((uintptr_t)f >= self_lo && (uintptr_t)f < self_hi)) {
        l->found = f;
        return 1;
    }
    return 0;
}

static void *operator_symbol(const char *name) {
    void *f = next_symbol(name);
    if (f) return f;
    struct lookup l = {name, NULL};
    in_hook++;
    dl_iterate_phdr(look_in, &l);
    in_hook--;
    return l.found;
}

/* Undoes the hint when operator new returns or throws (bad_alloc through here: this file
 * is built with -fexceptions, so the unwinder runs the cleanup). */
static void cxx_done(int *unused) {
    (void)unused;
    cxx_hint--;
}

/* operator new is the next definition's (libstdc++'s: its new-handler and bad_alloc stay),
 * called with the hint that the malloc it makes is C++'s. Where none can be found, it is
 * malloc's, as libstdc++'s own is, with nothing thrown. */
#define NEW_HOOK(mangled, params, args, fallback)                                  \
    EXPORT void *mangled params {                                                   \
        static void *(*real) params;                                                \
        if (!real) real = (void *(*) params)operator_symbol(#mangled);              \
        int hint __attribute__((cleanup(cxx_done))) = cxx_hint++;                   \
        (void)hint;                                                                 \
        if (!real) return (fallback);                                               \
        uint64_t before = logged_allocs;                                            \
        void *p = real args;                                                        \
        if (p && logged_allocs == before) foreign_new(p, n, RETURN_ADDRESS);        \
        return p;                                                                   \
    }

#define RETURN_ADDRESS ((uint64_t)(uintptr_t)__builtin_return_address(0))

/* A block an operator new served from its own allocator, logged as C++'s. */
static void foreign_new(void *p, size_t n, uint64_t ip) {
    if (guard_every || !enter()) return;
    logged_block(p, n, ip, B_FOREIGN);
    leave();
}

NEW_HOOK(_Znwm, (size_t n), (n), malloc(n ? n : 1))
NEW_HOOK(_Znam, (size_t n), (n), malloc(n ? n : 1))
NEW_HOOK(_ZnwmSt11align_val_t, (size_t n, size_t a), (n, a), aligned_alloc(a, (n + a - 1) / a * a))
NEW_HOOK(_ZnamSt11align_val_t, (size_t n, size_t a), (n, a), aligned_alloc(a, (n + a - 1) / a * a))

/* operator delete: a block this interposer's malloc handed out is freed here, with the
 * hint; one another allocator's operator new served (tcmalloc's, jemalloc's) is logged
 * freed and goes to the next definition, as does any other, as it would without ffiprof. */
static uint64_t block_state(void *p) {
    if (!p || state != 2) return B_LIVE;
    return block_get((uint64_t)(uintptr_t)p);
}

#define DELETE_HOOK(mangled, params, args)                                          \
    EXPORT void mangled params {                                                    \
        static void (*real) params;                                                 \
        uint64_t st = block_state(p);                                               \
        if (!(st & B_LIVE) || (st & B_FOREIGN)) {                                   \
            if (!real) real = (void (*) params)operator_symbol(#mangled);           \
            if (real) {                                                             \
                if ((st & B_FOREIGN) && enter()) {                                  \
                    cxx_hint++;                                                     \
                    logged_free(p, RETURN_ADDRESS, sample_bytes <= 0);              \
                    cxx_hint--;                                                     \
                    leave();                                                        \
                }                                                                   \
                real args;                                                          \
                return;                                                             \
            }                                                                       \
        }                                                                           \
        cxx_hint++;                                                                 \
        free_hook(p, RETURN_ADDRESS);                                               \
        cxx_hint--;                                                                 \
    }

DELETE_HOOK(_ZdlPv, (void *p), (p))
DELETE_HOOK(_ZdaPv, (void *p), (p))
DELETE_HOOK(_ZdlPvm, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdaPvm, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdlPvSt11align_val_t, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdaPvSt11align_val_t, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t a), (p, n, a))
DELETE_HOOK(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t a), (p, n, a))

/* A library unloaded takes its code's addresses with it, and one loaded later may take
 * them: the stack walker's rules for them may no longer hold (walk.c). */
EXPORT int dlclose(void *handle) {
    static int (*next_dlclose)(void *);
    if (!next_dlclose) next_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    int closed = next_dlclose ? next_dlclose(handle) : -1;
    ffiprof_fast_unwind_forget();
    return closed;
}

/* A mark in the log (`ffiprof __count-allocations` bounds each batch it runs with two):
 * the events between two marks are the batch's. */
EXPORT void ffiprof_heap_mark(uint64_t id) {
    if (!enter()) return;
    uint64_t body[2] = {0, id};
    record(me, K_MARK, 0, body, 2);
    leave();
}

/* fork keeps the log consistent: registered once, at load. */
static void setup(void) __attribute__((constructor(101)));
static void setup(void) {
    in_hook++;
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    stream_key_made = pthread_key_create(&stream_key, stream_release) == 0;
    in_hook--;
}
