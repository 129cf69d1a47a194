/*
 * trace.c — the timeline trace (WEFT_TRACE=FILE, weft_options.trace_file): records what
 * the loop does, each task's spawn, running steps, waits and what they wait on, wake-ups
 * and who made them, its end and outcome, and the loop's callbacks, and writes it as
 * Chrome trace-event JSON, which Perfetto (https://ui.perfetto.dev), chrome://tracing
 * and tools/weft-timeline read.
 *
 * The observer's hooks only append fixed-size binary records (a clock read and 32
 * bytes) to a per-loop buffer; JSON is made when the buffer is full, at least once a
 * second while the loop runs, and when the loop ends. Making it pairs the records into
 * slices on one lane per task: "ready" (queued, waiting for the loop to run it), "run"
 * (a step), and a wait named by its kind ("sleep", "lock", "thread pool call",
 * "descriptor", ...), from the step that suspended to the wake-up.
 *
 * One file per path per process. The first loop to trace to a path creates the file;
 * every loop tracing to it (at once, on other threads, or later in turn) writes its
 * events into the same array under a process-wide lock, each loop as its own process
 * ("pid" = the loop's serial number in this process, "weft loop N"); the closing "]}"
 * is written whenever no loop is tracing to it, and overwritten when another starts.
 * Real-time loops share one origin (the file's creation) so their lanes line up;
 * a virtual-time loop's lanes show its virtual clock from 0 (steps take no virtual
 * time there, so they are drawn as instants). A pipe or device as FILE gets its
 * closing "]}" at exit. Time a task spent ready under 1 µs is left out.
 *
 * Cost, measured on this project's 2-core VM (bench/w1_switch 2000000 on one core,
 * 4M switches, each a step's end and the next step's begin: 8M events): tracing off
 * 36.7 ms, as before the trace existed (the hooks only run while something watches);
 * tracing on 0.57 s, i.e. 66 ns an event, of which ~27 ns is the step timing any
 * observer does (two clock reads a switch) and ~39 ns the record, its JSON and the
 * write; 53 bytes of JSON an event. A spawn-bound loop (bench/w2_spawn 500000, 700
 * bytes of JSON a task: names, spawn flows, finish) costs ~330 ns an event, most of it
 * the page cache taking 360 MB and the task table outgrowing the caches.
 */
#include "debug/debug.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Records kept before they are turned into JSON: 1 MiB a loop. */
#define TRACE_RECORDS 32768
/* While the loop runs, its events reach the file at least this often, so that a
 * program that never ends, or crashes, still leaves most of its timeline. */
#define TRACE_FLUSH_NS ((int64_t)1000 * 1000 * 1000)

enum rec_kind {
    REC_SPAWN = 1,   /* other = parent task (0: none); detail = a copy of its name or 0; sub = main */
    REC_BEGIN,       /* a step starts */
    REC_END_WAIT,    /* the step ended in a wait; detail = the wait kind's `what` */
    REC_END_YIELD,   /* the step ended in a yield */
    REC_END_DONE,    /* the task returned; code = its outcome */
    REC_WOKEN,       /* other = the waking task (0: the loop); code = the wake reason */
    REC_CB_BEGIN,    /* detail = the callback's function */
    REC_CB_END,
    REC_FORGET,      /* the record is freed; detail = a copy of its name or 0 */
    REC_FLUSH,       /* the trace wrote itself out: ts to detail (its end) */
};

/* One event as the hooks record it. */
typedef struct trace_rec {
    int64_t ts;                  /* loop time, ns (virtual time in a virtual-time loop) */
    uintptr_t detail;
    uint32_t task;
    uint32_t other;
    int32_t code;
    uint8_t kind;
    uint8_t sub;
} trace_rec;

/* A file traced to, shared by every loop of the process tracing to the same path. */
typedef struct trace_file {
    struct trace_file *next;
    char *path;
    FILE *f;
    int users;                   /* loops tracing to it now */
    bool any;                    /* an event is in the array already: the next needs a comma */
    bool regular;                /* a regular file, where the tail can be rewritten */
    bool failed;                 /* a write failed: nobody writes to it any more */
    bool reported;               /* ... and a loop said so on stderr */
    int err;                     /* that failure's errno */
    long end;                    /* where the closing "]}" starts, while no loop traces to it */
    int64_t origin_ns;           /* real-time loops' time 0 */
} trace_file;

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static void files_at_exit(void);
static trace_file *files;
static unsigned loop_serial;

/* What the JSON maker knows of one task between flushes. */
enum { OPEN_NONE, OPEN_READY, OPEN_RUN, OPEN_WAIT };
typedef struct task_state {
    uint32_t id;                 /* 0: an empty slot */
    uint8_t open;                /* the slice the task is in */
    uint8_t main;
    int64_t since;               /* when that slice began */
    const char *what;            /* OPEN_WAIT: the wait's kind; OPEN_READY: after what */
    uint32_t by;                 /* OPEN_READY after a wake-up or spawn: who */
    int32_t reason;
    uint64_t flow;               /* a flow (spawn, wake) ending at its next step, or 0 */
    const char *flow_name;
    bool by_end;                 /* OPEN_WAIT: woken by the end of task `by` */
    char *name;                  /* its own name (weft_task_set_name), or NULL */
} task_state;

/* A growable string: the JSON of one flush. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

struct weft__trace {
    trace_rec *recs;
    size_t n;
    bool off;                    /* writing failed: record nothing more */
    bool virtual_time;
    int thread_id;               /* the loop's thread (the kernel's id, as the watchdog names it) */
    unsigned pid;
    int64_t origin;              /* loop time 0 of the JSON */
    int64_t last_flush_mono;
    trace_file *file;
    char label[600];             /* "WEFT_TRACE=path" or "weft_options.trace_file \"path\"" */
    /* The JSON maker's state. */
    task_state *tasks;
    size_t tasks_cap, tasks_count;
    uint64_t next_flow;
    int64_t cb_since;            /* a callback running since (in the records), or -1 */
    uint32_t just_done;          /* the task whose end the records just showed, or 0 */
    uintptr_t cb_fn;
    struct { uintptr_t fn; char name[120]; } symcache[64];
    sbuf out;
};

/* ------------------------------------------------------------------------ */
/* Recording (the hooks)                                                    */
/* ------------------------------------------------------------------------ */

static void flush(weft__trace *tr, weft_loop *L, bool final);

static inline int64_t loop_time(const weft_loop *L, int64_t mono)
{
    return L->virtual_time ? L->now : mono;
}

static inline trace_rec *rec_new(weft__trace *tr, weft_loop *L)
{
    if (WEFT__UNLIKELY(tr->n == TRACE_RECORDS)) {
        flush(tr, L, false);
        if (tr->off)
            return NULL;
    }
    return &tr->recs[tr->n++];
}

static inline void rec_put(weft__trace *tr, weft_loop *L, int64_t ts, uint8_t kind, uint32_t task, uint32_t other,
                           int32_t code, uintptr_t detail, uint8_t sub)
{
    trace_rec *r = rec_new(tr, L);
    if (!r)
        return;
    r->ts = ts;
    r->detail = detail;
    r->task = task;
    r->other = other;
    r->code = code;
    r->kind = kind;
    r->sub = sub;
}

/* A copy of t's own name (not the default "Task-N"), or 0: the record may outlive t. */
static uintptr_t name_copy(const weft_task *t)
{
    if (!t->extra || !t->extra->name)
        return 0;
    return (uintptr_t)strdup(t->extra->name);
}

void weft__trace_spawned(weft__trace *tr, weft_loop *L, weft_task *t)
{
    if (tr->off)
        return;
    int64_t ts = weft__now(L);
    trace_rec *r = rec_new(tr, L);
    if (r)
        *r = (trace_rec){.ts = ts, .detail = name_copy(t), .task = t->id, .other = L->current ? L->current->id : 0,
                         .kind = REC_SPAWN, .sub = (WEFT__FLAGS(t) & WEFT__MAIN) != 0};
}

void weft__trace_step_begin(weft__trace *tr, weft_loop *L, weft_task *t, int64_t mono)
{
    if (tr->off)
        return;
    rec_put(tr, L, loop_time(L, mono), REC_BEGIN, t->id, 0, 0, 0, 0);
}

void weft__trace_step_end(weft__trace *tr, weft_loop *L, weft_task *t, int64_t mono)
{
    if (tr->off)
        return;
    int64_t ts = loop_time(L, mono);
    switch (WEFT__STATE(t)) {
    case WEFT__WAITING:
        rec_put(tr, L, ts, REC_END_WAIT, t->id, 0, 0, (uintptr_t)(t->wait_kind ? t->wait_kind->what : "parked"), 0);
        break;
    case WEFT__DONE:
        rec_put(tr, L, ts, REC_END_DONE, t->id, 0, t->err, 0, 0);
        break;
    default:
        rec_put(tr, L, ts, REC_END_YIELD, t->id, 0, 0, 0, 0);
        break;
    }
    if (WEFT__UNLIKELY(mono - tr->last_flush_mono > TRACE_FLUSH_NS) && !tr->off)
        flush(tr, L, false);
}

void weft__trace_woken(weft__trace *tr, weft_loop *L, weft_task *t, int reason)
{
    if (tr->off)
        return;
    rec_put(tr, L, weft__now(L), REC_WOKEN, t->id, L->current ? L->current->id : 0, reason, 0, 0);
}

void weft__trace_callback_begin(weft__trace *tr, weft_loop *L, weft_callback_fn cb, int64_t mono)
{
    if (tr->off)
        return;
    rec_put(tr, L, loop_time(L, mono), REC_CB_BEGIN, 0, 0, 0, (uintptr_t)cb, 0);
}

void weft__trace_callback_end(weft__trace *tr, weft_loop *L, int64_t mono)
{
    if (tr->off)
        return;
    rec_put(tr, L, loop_time(L, mono), REC_CB_END, 0, 0, 0, 0, 0);
}

void weft__trace_forget(weft__trace *tr, weft_loop *L, weft_task *t)
{
    if (tr->off)
        return;
    int64_t ts = weft__now(L);
    trace_rec *r = rec_new(tr, L);
    if (r)
        *r = (trace_rec){.ts = ts, .detail = name_copy(t), .task = t->id, .kind = REC_FORGET};
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

static void sb_grow(sbuf *b, size_t more)
{
    if (b->oom)
        return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static inline void sb_reserve(sbuf *b, size_t more)
{
    if (WEFT__UNLIKELY(b->len + more + 1 > b->cap))
        sb_grow(b, more);
}

static void sb_printf(sbuf *b, const char *fmt, ...) WEFT_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 3 && !b->oom; tries++) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = b->cap ? vsnprintf(b->p + b->len, room, fmt, ap) : -2;
        va_end(ap);
        if (n == -1) {
            b->oom = true;
            return;
        }
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        sb_reserve(b, n > 0 ? (size_t)n + 1 : 256);
    }
}

/* The appenders the events use: no printf, which costs more than the rest of an
 * event's formatting (floating-point conversion above all). */
static inline void sb_mem(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* weft's own strings, which need no escaping. */
static inline void sb_str(sbuf *b, const char *s)
{
    sb_mem(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char tmp[20];
    size_t i = sizeof tmp;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        tmp[--i] = pairs[2 * d + 1];
        tmp[--i] = pairs[2 * d];
    }
    if (v >= 10) {
        tmp[--i] = pairs[2 * v + 1];
        tmp[--i] = pairs[2 * v];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    sb_mem(b, tmp + i, sizeof tmp - i);
}

/* ns as microseconds with three decimals, as the format's "ts" and "dur" are. */
static void sb_us(sbuf *b, int64_t ns)
{
    if (ns < 0) {
        sb_mem(b, "-", 1);
        ns = -ns;
    }
    sb_u64(b, (uint64_t)ns / 1000);
    uint64_t frac = (uint64_t)ns % 1000;
    char f[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
    sb_mem(b, f, 4);
}

/* Appends s as the contents of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD. */
static void sb_json_str(sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        sb_reserve(b, 8);
        if (b->oom)
            return;
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = (char)c;
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            b->len += (size_t)snprintf(b->p + b->len, 8, "\\u%04x", c);
            p++;
        } else if (c < 0x80) {
            b->p[b->len++] = (char)c;
            p++;
        } else {
            int n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            int ok = n;
            for (int i = 1; i < n && ok; i++)
                if ((p[i] & 0xc0) != 0x80)
                    ok = 0;
            if (ok) {
                memcpy(b->p + b->len, p, (size_t)n);
                b->len += (size_t)n;
                p += n;
            } else {
                memcpy(b->p + b->len, "\\ufffd", 6);
                b->len += 6;
                p++;
            }
        }
    }
}

/* ---- the tasks' slices ---- */

/* Task ids count up from 1. Multiplied by an odd number, any run of `cap` consecutive
 * ids still lands on `cap` different slots, but scattered: taken as they are, they
 * would make one long cluster, and removing an entry from it (backward shift) would
 * walk all of it. */
static size_t slot_of(uint32_t id, size_t cap)
{
    return (size_t)(id * 2654435761u) & (cap - 1);
}

static task_state *task_find(weft__trace *tr, uint32_t id)
{
    if (!tr->tasks_cap)
        return NULL;
    for (size_t i = slot_of(id, tr->tasks_cap);; i = (i + 1) & (tr->tasks_cap - 1)) {
        if (tr->tasks[i].id == id)
            return &tr->tasks[i];
        if (tr->tasks[i].id == 0)
            return NULL;
    }
}

static task_state *task_add(weft__trace *tr, uint32_t id)
{
    task_state *found = task_find(tr, id);
    if (found)
        return found;
    if ((tr->tasks_count + 1) * 2 > tr->tasks_cap) {
        size_t cap = tr->tasks_cap ? tr->tasks_cap * 2 : 64;
        task_state *tasks = calloc(cap, sizeof *tasks);
        if (!tasks)
            return NULL;
        for (size_t i = 0; i < tr->tasks_cap; i++) {
            if (!tr->tasks[i].id)
                continue;
            size_t j = slot_of(tr->tasks[i].id, cap);
            while (tasks[j].id)
                j = (j + 1) & (cap - 1);
            tasks[j] = tr->tasks[i];
        }
        free(tr->tasks);
        tr->tasks = tasks;
        tr->tasks_cap = cap;
    }
    size_t i = slot_of(id, tr->tasks_cap);
    while (tr->tasks[i].id)
        i = (i + 1) & (tr->tasks_cap - 1);
    tr->tasks[i] = (task_state){.id = id};
    tr->tasks_count++;
    return &tr->tasks[i];
}

/* Removes an entry, moving later ones of its probe run back (no tombstones). */
static void task_remove(weft__trace *tr, task_state *s)
{
    free(s->name);
    size_t mask = tr->tasks_cap - 1;
    size_t i = (size_t)(s - tr->tasks);
    tr->tasks[i] = (task_state){.id = 0};
    tr->tasks_count--;
    for (size_t j = (i + 1) & mask; tr->tasks[j].id; j = (j + 1) & mask) {
        size_t home = slot_of(tr->tasks[j].id, tr->tasks_cap);
        /* j's entry may move to the hole at i when its home is not in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            tr->tasks[i] = tr->tasks[j];
            tr->tasks[j] = (task_state){.id = 0};
            i = j;
        }
    }
}

/* Writes the display name of task id into buf (of 32 bytes at least). */
static const char *task_label(weft__trace *tr, uint32_t id, char *buf, size_t size)
{
    (void)size;
    task_state *s = task_find(tr, id);
    if (s && s->name)
        return s->name;
    /* "Task-N" as weft_task_name says it, without printf: one per spawn. */
    char digits[12];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    memcpy(buf, "Task-", 5);
    size_t len = 5;
    while (n)
        buf[len++] = digits[--n];
    if (s && s->main) {
        memcpy(buf + len, " (main)", 7);
        len += 7;
    }
    buf[len] = '\0';
    return buf;
}

static void ev_head(weft__trace *tr, const char *ph, uint32_t tid, int64_t ts)
{
    sbuf *b = &tr->out;
    sb_str(b, ",\n{\"ph\":\"");
    sb_str(b, ph);
    sb_str(b, "\",\"pid\":");
    sb_u64(b, tr->pid);
    sb_str(b, ",\"tid\":");
    sb_u64(b, tid);
    sb_str(b, ",\"ts\":");
    sb_us(b, ts - tr->origin);
}

/* A complete event: name, cat, from `since` to ts; args is a JSON object or NULL. */
static void ev_slice(weft__trace *tr, uint32_t tid, const char *cat, const char *name, int64_t since, int64_t ts)
{
    ev_head(tr, "X", tid, since);
    int64_t dur = ts > since ? ts - since : 0;
    sbuf *b = &tr->out;
    sb_str(b, ",\"dur\":");
    sb_us(b, dur);
    sb_str(b, ",\"cat\":\"");
    sb_str(b, cat);
    sb_str(b, "\",\"name\":\"");
    sb_json_str(b, name);
    sb_str(b, "\"");
}

static void ev_name(weft__trace *tr, uint32_t tid, const char *name)
{
    sbuf *b = &tr->out;
    sb_str(b, ",\n{\"ph\":\"M\",\"pid\":");
    sb_u64(b, tr->pid);
    sb_str(b, ",\"tid\":");
    sb_u64(b, tid);
    sb_str(b, ",\"name\":\"thread_name\",\"args\":{\"name\":\"");
    sb_json_str(b, name);
    /* Lanes in the order the tasks were spawned, not by name (Task-10 after Task-9). */
    sb_str(b, "\"}},\n{\"ph\":\"M\",\"pid\":");
    sb_u64(b, tr->pid);
    sb_str(b, ",\"tid\":");
    sb_u64(b, tid);
    sb_str(b, ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":");
    sb_u64(b, tid);
    sb_str(b, "}}");
}

static void ev_flow(weft__trace *tr, const char *ph, uint32_t tid, int64_t ts, uint64_t id, const char *name)
{
    ev_head(tr, ph, tid, ts);
    sb_str(&tr->out, ",\"id\":");
    sb_u64(&tr->out, id);
    sb_str(&tr->out, ",\"cat\":\"flow\",\"name\":\"");
    sb_str(&tr->out, name);
    sb_str(&tr->out, ph[0] == 'f' ? "\",\"bp\":\"e\"}" : "\"}");
}

static const char *reason_name(int32_t reason)
{
    switch (reason) {
    case 0:
        return "woken";
    case -ECANCELED:
        return "cancelled";
    case -ETIMEDOUT:
        return "timed out";
    default:
        /* A positive reason is what a descriptor wait saw (the events ready). */
        return reason > 0 ? "ready" : weft_errname(reason);
    }
}

static const char *callback_name(weft__trace *tr, uintptr_t fn)
{
    size_t i = (fn >> 4) % (sizeof tr->symcache / sizeof tr->symcache[0]);
    if (tr->symcache[i].fn != fn) {
        weft__backtrace bt = {.pcs = {fn}, .count = 1, .first_is_return = 0};
        weft__frame f;
        weft__symbolize(&bt, 0, &f, 1);
        if (f.function)
            snprintf(tr->symcache[i].name, sizeof tr->symcache[i].name, "callback %s", f.function);
        else
            snprintf(tr->symcache[i].name, sizeof tr->symcache[i].name, "callback %#lx", (unsigned long)fn);
        tr->symcache[i].fn = fn;
    }
    return tr->symcache[i].name;
}

/* Whether a wait of this kind ends when a task ends (await, gather, TaskGroup...). */
static bool waits_for_a_task(const char *what)
{
    static const char *const kinds[] = {"awaited task", "gather", "task group's children", "weft_wait",
                                        "as_completed", "shielded task", "task to finish", "wait_for"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(what, kinds[i]) == 0)
            return true;
    return false;
}

/* Ends the slice s is in at ts, writing it; a step's args say what came next:
 * run_then, followed by then_what when not NULL. */
static void close_slice(weft__trace *tr, task_state *s, int64_t ts, const char *run_then, const char *then_what)
{
    char buf[64];
    switch (s->open) {
    case OPEN_READY:
        /* A task ready for less than a microsecond was not kept waiting: no slice,
         * which halves the trace of a loop that does little but switch. */
        if (ts - s->since < 1000)
            break;
        ev_slice(tr, s->id, "ready", "ready", s->since, ts);
        sb_str(&tr->out, ",\"args\":{\"after\":\"");
        sb_str(&tr->out, s->what ? s->what : "?");
        sb_str(&tr->out, "\"");
        if (s->what && strcmp(s->what, "yield") != 0) {
            sb_str(&tr->out, ",\"by\":\"");
            sb_json_str(&tr->out, s->by                                ? task_label(tr, s->by, buf, sizeof buf)
                                  : s->main && strcmp(s->what, "spawn") == 0 ? "weft_run"
                                                                            : "the loop");
            sb_str(&tr->out, "\"");
        }
        sb_str(&tr->out, "}}");
        break;
    case OPEN_RUN:
        ev_slice(tr, s->id, "run", "run", s->since, ts);
        sb_str(&tr->out, ",\"args\":{\"then\":\"");
        sb_str(&tr->out, run_then);
        if (then_what)
            sb_str(&tr->out, then_what);
        sb_str(&tr->out, "\"}}");
        break;
    case OPEN_WAIT:
        ev_slice(tr, s->id, "wait", s->what, s->since, ts);
        sb_str(&tr->out, ",\"args\":{\"ended\":\"");
        sb_str(&tr->out, run_then);
        sb_str(&tr->out, "\"");
        if (s->by || s->reason == 0) {
            sb_str(&tr->out, ",\"by\":\"");
            if (s->by == UINT32_MAX) {
                sb_json_str(&tr->out, "a loop callback");
            } else if (s->by) {
                sb_json_str(&tr->out, task_label(tr, s->by, buf, sizeof buf));
                if (s->by_end)
                    sb_str(&tr->out, ", its end");
            } else {
                sb_json_str(&tr->out, "the loop (a timer, I/O or another thread)");
            }
            sb_str(&tr->out, "\"");
        }
        sb_str(&tr->out, "}}");
        break;
    default:
        break;
    }
    s->open = OPEN_NONE;
}

static void format_rec(weft__trace *tr, trace_rec *r)
{
    char buf[64];
    task_state *s = r->task ? task_find(tr, r->task) : NULL;
    uint32_t just_done = tr->just_done;
    tr->just_done = 0;
    switch (r->kind) {
    case REC_SPAWN:
        s = task_add(tr, r->task);
        if (!s) {
            tr->out.oom = true;
            free((char *)r->detail);
            return;
        }
        s->main = r->sub;
        s->name = (char *)r->detail;
        s->open = OPEN_READY;
        s->since = r->ts;
        s->what = "spawn";
        s->by = r->other;
        ev_name(tr, r->task, task_label(tr, r->task, buf, sizeof buf));
        if (r->other) {
            s->flow = ++tr->next_flow;
            s->flow_name = "spawn";
            ev_flow(tr, "s", r->other, r->ts, s->flow, "spawn");
        }
        break;
    case REC_BEGIN:
        if (!s)
            return;
        close_slice(tr, s, r->ts, "", NULL);
        s->open = OPEN_RUN;
        s->since = r->ts;
        if (s->flow) {
            ev_flow(tr, "f", s->id, r->ts, s->flow, s->flow_name);
            s->flow = 0;
        }
        break;
    case REC_END_WAIT:
    case REC_END_YIELD:
        if (!s)
            return;
        if (r->kind == REC_END_WAIT) {
            close_slice(tr, s, r->ts, "waits: ", (const char *)r->detail);
            s->open = OPEN_WAIT;
            s->what = (const char *)r->detail;
            s->by = 0;
            s->reason = 0;
        } else {
            close_slice(tr, s, r->ts, "yields", NULL);
            s->open = OPEN_READY;
            s->what = "yield";
            s->by = 0;
        }
        s->since = r->ts;
        break;
    case REC_END_DONE:
        if (!s)
            return;
        close_slice(tr, s, r->ts, r->code ? "fails" : "returns", NULL);
        ev_head(tr, "i", s->id, r->ts);
        sb_str(&tr->out, ",\"s\":\"t\",\"cat\":\"task\",\"name\":\"finish\",\"args\":{\"outcome\":\"");
        sb_json_str(&tr->out, r->code ? weft_errname(r->code) : "ok");
        sb_str(&tr->out, "\"}}");
        tr->just_done = s->id;
        break;
    case REC_WOKEN:
        if (!s)
            return;
        /* A wake-up by the loop itself: as a task it awaited ended (the scheduler
         * finishes a task right after its last step, waking its awaiter then), in a
         * callback, or from a timer or the poller. */
        if (!r->other && just_done && !(r->code == 0 && s->open == OPEN_WAIT && waits_for_a_task(s->what)))
            just_done = 0;
        tr->just_done = just_done;
        s->by_end = !r->other && just_done;
        s->by = r->other ? r->other : just_done ? just_done : tr->cb_since >= 0 ? UINT32_MAX : 0;
        s->reason = r->code;
        close_slice(tr, s, r->ts, reason_name(r->code), NULL);
        s->open = OPEN_READY;
        s->since = r->ts;
        s->what = r->code == 0 ? "wake-up" : reason_name(r->code);
        s->by = r->other ? r->other : s->by == UINT32_MAX ? 0 : s->by;
        if (r->other) {
            s->flow = ++tr->next_flow;
            s->flow_name = "wake";
            ev_flow(tr, "s", r->other, r->ts, s->flow, "wake");
        }
        break;
    case REC_CB_BEGIN:
        tr->cb_since = r->ts;
        tr->cb_fn = r->detail;
        break;
    case REC_CB_END:
        if (tr->cb_since >= 0) {
            ev_slice(tr, 0, "callback", callback_name(tr, tr->cb_fn), tr->cb_since, r->ts);
            sb_str(&tr->out, "}");
        }
        tr->cb_since = -1;
        break;
    case REC_FORGET: {
        char *name = (char *)r->detail;
        if (s) {
            if (s->open == OPEN_READY) {
                /* Cancelled before it ever ran. */
                close_slice(tr, s, r->ts, "", NULL);
                ev_head(tr, "i", s->id, r->ts);
                sb_printf(&tr->out, ",\"s\":\"t\",\"cat\":\"task\",\"name\":\"finish\",\"args\":{\"outcome\":"
                                    "\"cancelled before it ran\"}}");
            } else {
                close_slice(tr, s, r->ts, "freed", NULL);
            }
            if (name && (!s->name || strcmp(name, s->name) != 0))
                ev_name(tr, s->id, name);
            task_remove(tr, s);
        }
        free(name);
        break;
    }
    case REC_FLUSH:
        ev_slice(tr, 0, "trace", "writing the trace (weft)", r->ts, (int64_t)r->detail);
        sb_str(&tr->out, "}");
        break;
    default:
        break;
    }
}

/* Frees the names the records still own (records dropped unformatted). */
static void drop_records(weft__trace *tr)
{
    for (size_t i = 0; i < tr->n; i++)
        if ((tr->recs[i].kind == REC_SPAWN || tr->recs[i].kind == REC_FORGET) && tr->recs[i].detail)
            free((char *)tr->recs[i].detail);
    tr->n = 0;
}

/* Writes buf to the shared file, under files_lock; a failure marks the file failed. */
static void file_write(trace_file *tf, const char *buf, size_t len)
{
    if (len == 0)
        return;
    /* Every event starts with ",\n"; the array's first does not. */
    if (!tf->any) {
        buf += 2;
        len -= 2;
    }
    errno = 0;
    if (fwrite(buf, 1, len, tf->f) != len || fflush(tf->f) != 0) {
        tf->failed = true;
        tf->err = errno ? errno : EIO;
        return;
    }
    tf->any = true;
}

/* Turns the records into JSON and writes them (and, when final, the loop's last
 * slices and its name). On a write error: says so once and records nothing more. */
static void flush(weft__trace *tr, weft_loop *L, bool final)
{
    int64_t start = weft__mono_ns();
    tr->out.len = 0;
    tr->out.oom = false;
    for (size_t i = 0; i < tr->n; i++)
        format_rec(tr, &tr->recs[i]);
    tr->n = 0;
    if (final) {
        int64_t end = loop_time(L, weft__mono_ns());
        for (size_t i = 0; i < tr->tasks_cap; i++)
            if (tr->tasks[i].id)
                close_slice(tr, &tr->tasks[i], end, "the loop ended", NULL);
        sb_printf(&tr->out, ",\n{\"ph\":\"M\",\"pid\":%u,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":"
                            "\"weft loop %u (thread %d)%s\"}}", tr->pid, tr->pid, tr->thread_id,
                  tr->virtual_time ? " (virtual time)" : "");
        sb_printf(&tr->out, ",\n{\"ph\":\"M\",\"pid\":%u,\"tid\":0,\"name\":\"process_sort_index\",\"args\":"
                            "{\"sort_index\":%u}}", tr->pid, tr->pid);
        ev_name(tr, 0, "loop callbacks");
    }
    if (tr->out.oom) {
        weft__report("weft: %s: no memory to write the trace; tracing stopped", tr->label);
        tr->off = true;
        return;
    }
    trace_file *tf = tr->file;
    pthread_mutex_lock(&files_lock);
    if (!tf->failed)
        file_write(tf, tr->out.p, tr->out.len);
    bool failed = tf->failed, say = failed && !tf->reported;
    tf->reported |= failed;
    int err = tf->err;
    pthread_mutex_unlock(&files_lock);
    if (failed) {
        /* Once per file, whichever loop finds it. */
        if (say)
            weft__report("weft: %s: writing the trace failed: %s; tracing stopped (the file holds the events "
                         "written before)", tr->label, strerror(err));
        tr->off = true;
        return;
    }
    int64_t done = weft__mono_ns();
    tr->last_flush_mono = done;
    if (!final) {
        /* The time spent here shows on the timeline, so it is not taken for the task's. */
        trace_rec *r = &tr->recs[tr->n++];
        *r = (trace_rec){.ts = loop_time(L, start), .detail = (uintptr_t)loop_time(L, done), .kind = REC_FLUSH};
    }
}

/* ------------------------------------------------------------------------ */
/* The file and the loop's trace                                            */
/* ------------------------------------------------------------------------ */

static const char HEAD[] = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"weft (WEFT_TRACE)\","
                           "\"lanes\":\"one per task: ready, run and waits named by kind\"},\"traceEvents\":[\n";
static const char TAIL[] = "\n]}\n";

static trace_file *file_find(const char *path)
{
    for (trace_file *tf = files; tf; tf = tf->next)
        if (strcmp(tf->path, path) == 0)
            return tf;
    return NULL;
}

/* Opens the file at path for writing without truncating it, and takes its lock: one
 * process writes a trace file (another that inherited WEFT_TRACE, a program weft
 * started, would interleave its bytes). Returns the descriptor, or a negative errno
 * with the message set. A pipe or device is not locked. */
static int open_locked(const char *path, const char *label)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        return weft__set_errmsg(-e, "weft_run: %s: cannot open %s for writing: %s", label, path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return weft__set_errmsg(-EBUSY, "weft_run: %s: another process is writing its trace to %s (a program "
                                            "it started, which inherited WEFT_TRACE?); give each process its own "
                                            "file with %%p in the name, which becomes the process id "
                                            "(WEFT_TRACE=trace.%%p.json)", label, path);
        return weft__set_errmsg(-e, "weft_run: %s: cannot lock %s: %s", label, path, strerror(e));
    }
    return fd;
}

int weft__trace_check(const char *path, const char *label)
{
    /* Under files_lock, so that another loop of this process taking the file at the
     * same moment is not taken for another process. */
    pthread_mutex_lock(&files_lock);
    bool known = file_find(path) != NULL;
    int fd = known ? -1 : open_locked(path, label);
    if (fd >= 0)
        close(fd); /* with its flock, before another loop looks: file_take takes it again */
    pthread_mutex_unlock(&files_lock);
    return known || fd >= 0 ? 0 : fd;
}

/* Takes a user of the file at path, opening (truncating) it if no loop of the
 * process has traced to it, or reopening its array. Under files_lock. */
static int file_take(const char *label, const char *path, trace_file **out)
{
    trace_file *tf = file_find(path);
    if (tf && tf->failed && tf->users == 0) {
        /* Start over on a file that failed, when nobody writes to it. */
        trace_file **pp = &files;
        while (*pp != tf)
            pp = &(*pp)->next;
        *pp = tf->next;
        fclose(tf->f);
        free(tf->path);
        free(tf);
        tf = NULL;
    }
    if (tf) {
        if (tf->users++ == 0 && tf->regular && !tf->failed && fseek(tf->f, tf->end, SEEK_SET) != 0) {
            tf->failed = true;
            tf->err = errno;
        }
        *out = tf;
        return 0;
    }
    /* Files no loop traces to any more are finished: close them. */
    for (trace_file **pp = &files; *pp;) {
        trace_file *old = *pp;
        if (old->users == 0) {
            *pp = old->next;
            fclose(old->f);
            free(old->path);
            free(old);
        } else {
            pp = &old->next;
        }
    }
    tf = calloc(1, sizeof *tf);
    char *copy = strdup(path);
    if (!tf || !copy) {
        free(copy);
        free(tf);
        return weft__set_errmsg(-ENOMEM, "weft_run: %s: no memory to open %s", label, path);
    }
    /* Locked before it is truncated: another process's trace is refused, not erased.
     * The lock lasts as long as the file is open, until no loop writes to it. */
    int fd = open_locked(path, label);
    struct stat st0;
    if (fd >= 0 && fstat(fd, &st0) == 0 && S_ISREG(st0.st_mode) && ftruncate(fd, 0) != 0) {
        int e = errno;
        close(fd);
        fd = weft__set_errmsg(-e, "weft_run: %s: cannot empty %s: %s", label, path, strerror(e));
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int rc = fd;
        if (fd >= 0) {
            rc = weft__set_errmsg(-errno, "weft_run: %s: cannot open %s for writing: %s", label, path,
                                  strerror(errno));
            close(fd);
        }
        free(copy);
        free(tf);
        return rc;
    }
    static bool at_exit_set;
    if (!at_exit_set)
        at_exit_set = atexit(files_at_exit) == 0;
    struct stat st;
    tf->regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    tf->path = copy;
    tf->f = f;
    tf->users = 1;
    tf->origin_ns = weft__mono_ns();
    errno = 0;
    if (fputs(HEAD, f) == EOF || fflush(f) != 0) {
        tf->failed = true;
        tf->err = errno ? errno : EIO;
    }
    tf->next = files;
    files = tf;
    *out = tf;
    return 0;
}

/* At exit: the array of a pipe or device (which cannot be rewritten when a later
 * loop adds to it) is closed now. */
static void files_at_exit(void)
{
    /* exit() called on a loop's thread (from a task or a callback): that loop never
     * reaches its end, so its trace is written here, as far as it got. (Loops of other
     * threads, still running, cannot be written from this one: what they had not
     * written yet, up to a second of it, is lost.) */
    weft_loop *L = weft__loop;
    weft__debug *d = L ? weft__debug_of(L) : NULL;
    if (d && d->trace)
        weft__trace_close(L, d);
    pthread_mutex_lock(&files_lock);
    for (trace_file *tf = files; tf; tf = tf->next)
        if (!tf->regular && !tf->failed && tf->users == 0)
            if (fputs(TAIL, tf->f) != EOF)
                fflush(tf->f);
    pthread_mutex_unlock(&files_lock);
}

/* Gives the file back; the last loop writing to it closes the array (a regular
 * file's at once, so that it can be read as soon as weft_run returns; a pipe's at
 * exit). Under files_lock. */
static void file_give(trace_file *tf)
{
    if (--tf->users > 0 || tf->failed || !tf->regular)
        return;
    tf->end = ftell(tf->f);
    errno = 0;
    if (tf->end < 0 || fputs(TAIL, tf->f) == EOF || fflush(tf->f) != 0 ||
        ftruncate(fileno(tf->f), tf->end + (long)sizeof TAIL - 1) != 0) {
        tf->failed = true;
        tf->err = errno ? errno : EIO;
        if (!tf->reported) {
            tf->reported = true;
            weft__report("weft: trace %s: writing the end of the trace failed: %s", tf->path, strerror(tf->err));
        }
    }
}

int weft__trace_open(weft_loop *L, weft__debug *d)
{
    const char *label = d->set.trace_label;
    weft__trace *tr = calloc(1, sizeof *tr);
    trace_rec *recs = tr ? malloc(TRACE_RECORDS * sizeof *recs) : NULL;
    if (!recs) {
        free(tr);
        return weft__set_errmsg(-ENOMEM, "weft_run: %s: no memory for the trace's buffer", label);
    }
    tr->recs = recs;
    snprintf(tr->label, sizeof tr->label, "%s", label);
    tr->cb_since = -1;
    pthread_mutex_lock(&files_lock);
    int rc = file_take(label, d->set.trace_file, &tr->file);
    if (rc == 0)
        tr->pid = ++loop_serial;
    pthread_mutex_unlock(&files_lock);
    if (rc != 0) {
        free(recs);
        free(tr);
        return rc;
    }
    tr->virtual_time = L->virtual_time;
    tr->thread_id = (int)syscall(SYS_gettid);
    tr->origin = L->virtual_time ? L->now : tr->file->origin_ns;
    tr->last_flush_mono = weft__mono_ns();
    d->trace = tr;
    return 0;
}

void weft__trace_close(weft_loop *L, weft__debug *d)
{
    weft__trace *tr = d->trace;
    if (!tr)
        return;
    if (!tr->off)
        flush(tr, L, true);
    drop_records(tr);
    for (size_t i = 0; i < tr->tasks_cap; i++)
        if (tr->tasks[i].id)
            free(tr->tasks[i].name);
    pthread_mutex_lock(&files_lock);
    file_give(tr->file);
    pthread_mutex_unlock(&files_lock);
    free(tr->tasks);
    free(tr->out.p);
    free(tr->recs);
    free(tr);
    d->trace = NULL;
}
