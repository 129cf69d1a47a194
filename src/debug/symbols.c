/*
 * symbols.c — stacks and symbols for the debug layer: capturing the stack of this
 * thread, of an interrupted thread from its signal handler, or of a suspended task from
 * its saved registers (libunwind), and naming each frame's function, file and line,
 * inlined calls included, from the binary's debug information (libdw, elfutils).
 *
 * Capture is async-signal-safe (libunwind's local unwinder is, and the watchdog
 * interrupts the loop's thread to capture where it is stuck); symbolization is not
 * (libdw reads and caches debug information, allocating) and runs on whichever thread
 * reports, under one process-wide lock around one cached Dwfl session.
 *
 * Both libraries are loaded with dlopen the first time the debug layer needs them
 * (weft__symbols_load: when debug mode, the watchdog or a dump starts), never linked:
 * a weft program that does not look inside its loop loads neither (nor libdw's
 * libelf, libz, liblzma and libbz2), and its users link libweft alone. Their headers
 * are needed at build time only (libdw-dev, libunwind-dev). Without them at run time,
 * or in a build without their headers (WEFT_HAVE_LIBUNWIND / WEFT_HAVE_LIBDW unset:
 * the AArch64 cross build), the layer still works, with less: glibc's backtrace()
 * captures this thread's own stack, and dladdr() names exported functions only,
 * without lines; the reports say so.
 */
#include "debug/debug.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <execinfo.h>
#ifdef WEFT_HAVE_LIBUNWIND
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

#ifdef WEFT_HAVE_LIBDW
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <dwarf.h>
#endif

/* ------------------------------------------------------------------------ */
/* Loading libunwind and libdw                                              */
/* ------------------------------------------------------------------------ */

/* libunwind's calls are macros naming per-architecture symbols (unw_step is
 * _ULx86_64_step): their names are taken from the macros themselves. */
#define NAME_OF(x) NAME_OF_(x)
#define NAME_OF_(x) #x

#ifdef WEFT_HAVE_LIBUNWIND
#define UNWIND_CALLS(X) X(unw_tdep_getcontext) X(unw_init_local) X(unw_init_local2) X(unw_step) X(unw_get_reg) X(unw_backtrace)
#define DECLARE_POINTER(f) static __typeof__(f) *p_##f;
UNWIND_CALLS(DECLARE_POINTER)
#endif
#ifdef WEFT_HAVE_LIBDW
#define DW_CALLS(X)                                                                                           \
    X(dwfl_begin) X(dwfl_report_begin) X(dwfl_linux_proc_report) X(dwfl_report_end) X(dwfl_addrmodule)        \
    X(dwfl_module_info) X(dwfl_module_getelf) X(dwfl_module_addrname) X(dwfl_module_getsrc) X(dwfl_lineinfo) X(dwfl_module_addrdie) \
    X(dwfl_linux_proc_find_elf) X(dwfl_standard_find_debuginfo) X(dwarf_getscopes) X(dwarf_getscopes_die) X(dwarf_tag)              \
    X(dwarf_diename) X(dwarf_attr_integrate) X(dwarf_formref_die) X(dwarf_attr) X(dwarf_formudata)            \
    X(dwarf_getsrcfiles) X(dwarf_filesrc)
#ifndef DECLARE_POINTER
#define DECLARE_POINTER(f) static __typeof__(f) *p_##f;
#endif
DW_CALLS(DECLARE_POINTER)
#endif

/* 0: not tried; 1: loaded; -1: not available (the fallbacks run). Written once,
 * under load_lock; read without it after weft__symbols_load has returned. */
static _Atomic int unwind_state, dw_state;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

#if defined(WEFT_HAVE_LIBUNWIND) || defined(WEFT_HAVE_LIBDW)
/* Loads one library and every call the table lists; all or nothing. */
static int load_library(const char *soname, void **handle_out)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    *handle_out = h;
    return h ? 0 : -1;
}
#endif

#define LOAD_POINTER(f)                                         \
    if (ok && !(p_##f = (__typeof__(p_##f))dlsym(handle, NAME_OF(f)))) \
        ok = false;

void weft__symbols_load(void)
{
    pthread_mutex_lock(&load_lock);
    void *handle;
    bool ok;
#ifdef WEFT_HAVE_LIBUNWIND
    if (unwind_state == 0) {
        /* libunwind.so.8 by name: libunwind.so.1 on Debian is LLVM's, another API. */
        ok = load_library("libunwind.so.8", &handle) == 0;
        UNWIND_CALLS(LOAD_POINTER)
        atomic_store(&unwind_state, ok ? 1 : -1);
    }
#endif
#ifdef WEFT_HAVE_LIBDW
    if (dw_state == 0) {
        ok = load_library("libdw.so.1", &handle) == 0;
        DW_CALLS(LOAD_POINTER)
        atomic_store(&dw_state, ok ? 1 : -1);
    }
#endif
    (void)handle;
    (void)ok;
    /* glibc's backtrace loads libgcc_s at its first call, which a signal handler
     * must not be the one to do. */
    void *warm[2];
    (void)backtrace(warm, 2);
    if (unwind_state == 0)
        unwind_state = -1;
    if (dw_state == 0)
        dw_state = -1;
    pthread_mutex_unlock(&load_lock);
}

#ifdef WEFT_HAVE_LIBUNWIND
/* Whether libunwind is loaded; `load`: try to load it first if nobody has (never
 * from a signal handler: dlopen is not async-signal-safe). */
static bool have_unwind(bool load)
{
    if (load && atomic_load_explicit(&unwind_state, memory_order_acquire) == 0)
        weft__symbols_load();
    return atomic_load_explicit(&unwind_state, memory_order_acquire) == 1;
}
#endif

static bool have_dw(void)
{
    if (atomic_load_explicit(&dw_state, memory_order_acquire) == 0)
        weft__symbols_load();
    return atomic_load_explicit(&dw_state, memory_order_acquire) == 1;
}

#ifndef WEFT__SOURCE_ROOT
#define WEFT__SOURCE_ROOT "" /* set by the build: weft's own src/ directory */
#endif

/* ------------------------------------------------------------------------ */
/* Capture                                                                  */
/* ------------------------------------------------------------------------ */

#ifdef WEFT_HAVE_LIBUNWIND
static int walk(unw_cursor_t *cursor, weft__backtrace *bt, int skip)
{
    int n = 0;
    do {
        unw_word_t ip = 0;
        if (p_unw_get_reg(cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        if (skip > 0) {
            skip--;
            continue;
        }
        bt->pcs[n++] = (uintptr_t)ip;
    } while (n < WEFT__FRAMES_MAX && p_unw_step(cursor) > 0);
    bt->count = n;
    return n;
}
#endif

/* glibc's unwinder, for this thread's own stack when libunwind is not there. */
static int backtrace_glibc(weft__backtrace *bt, int skip)
{
    void *pcs[WEFT__FRAMES_MAX + 8];
    int n = backtrace(pcs, WEFT__FRAMES_MAX + 8);
    int from = skip < n ? skip : n;
    bt->count = 0;
    for (int i = from; i < n && bt->count < WEFT__FRAMES_MAX; i++)
        bt->pcs[bt->count++] = (uintptr_t)pcs[i];
    return bt->count;
}

int weft__backtrace_here(weft__backtrace *bt, int skip)
{
    bt->first_is_return = 1; /* the capturing call's own return address comes first */
#ifdef WEFT_HAVE_LIBUNWIND
    if (have_unwind(true)) {
        unw_context_t uc;
        unw_cursor_t cursor;
        if (p_unw_tdep_getcontext(&uc) < 0 || p_unw_init_local(&cursor, &uc) < 0) {
            bt->count = 0;
            return 0;
        }
        /* This function's own frame is the first: always left out. */
        return walk(&cursor, bt, skip + 1);
    }
#endif
    return backtrace_glibc(bt, skip + 1);
}

int weft__backtrace_quick(weft__backtrace *bt, int skip)
{
#ifdef WEFT_HAVE_LIBUNWIND
    if (!have_unwind(true))
        return backtrace_glibc(bt, skip + 1);
    /* unw_backtrace's first entry is in this function: always left out. */
    void *pcs[WEFT__FRAMES_MAX + 8];
    int want = skip + 1 + WEFT__FRAMES_MAX;
    if (want > (int)(sizeof pcs / sizeof pcs[0]))
        want = (int)(sizeof pcs / sizeof pcs[0]);
    int n = p_unw_backtrace(pcs, want);
    bt->first_is_return = 1;
    bt->count = 0;
    for (int i = skip + 1; i < n && bt->count < WEFT__FRAMES_MAX; i++)
        bt->pcs[bt->count++] = (uintptr_t)pcs[i];
    return bt->count;
#else
    return weft__backtrace_here(bt, skip + 1);
#endif
}

int weft__backtrace_signal(weft__backtrace *bt, void *uc)
{
    bt->first_is_return = 0; /* the interrupted instruction itself */
#ifdef WEFT_HAVE_LIBUNWIND
    if (have_unwind(false)) {
        unw_cursor_t cursor;
        if (p_unw_init_local2(&cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0) {
            bt->count = 0;
            return 0;
        }
        return walk(&cursor, bt, 0);
    }
#endif
    (void)uc;
    /* Without libunwind: the handler's own stack, which runs through the signal
     * frame into the interrupted code (glibc's unwinder knows its trampoline). Not
     * async-signal-safe the first time (it loads libgcc_s): whoever arms a signal
     * calls weft__symbols_load, which warms it up. */
    bt->first_is_return = 1;
    return backtrace_glibc(bt, 2);
}

int weft__backtrace_task(const weft_task *t, weft__backtrace *bt, const char **why)
{
    bt->count = 0;
    bt->first_is_return = 1;
    *why = NULL;
    if (!t->stack) {
        *why = "it has no stack (it has not started, or it has finished)";
        return 0;
    }
    if ((WEFT__FLAGS(t) & WEFT__COMPACT) && weft__loop && weft__loop->shared_owner != t) {
        *why = "a compact task's frames are copied out of the shared stack while another runs (gdb's `weft bt` "
               "shows them)";
        return 0;
    }
#if defined(WEFT_HAVE_LIBUNWIND) && defined(__x86_64__) && !defined(WEFT_CTX_UCONTEXT)
    if (!have_unwind(true)) {
        *why = "reading a suspended task's stack needs libunwind (libunwind.so.8), which could not be loaded";
        return 0;
    }
    /* The layout ctx_x86_64.S keeps at the saved sp: MXCSR and the x87 control word,
     * r15 r14 r13 r12 rbx rbp, then the return address into the code that switched. */
    const uint64_t *sp = t->stack->ctx.sp;
    unw_context_t uc;
    if (p_unw_tdep_getcontext(&uc) < 0)
        return 0;
    mcontext_t *m = &uc.uc_mcontext;
    m->gregs[REG_R15] = (greg_t)sp[1];
    m->gregs[REG_R14] = (greg_t)sp[2];
    m->gregs[REG_R13] = (greg_t)sp[3];
    m->gregs[REG_R12] = (greg_t)sp[4];
    m->gregs[REG_RBX] = (greg_t)sp[5];
    m->gregs[REG_RBP] = (greg_t)sp[6];
    m->gregs[REG_RIP] = (greg_t)sp[7];
    m->gregs[REG_RSP] = (greg_t)(uintptr_t)(sp + 8);
    unw_cursor_t cursor;
    if (p_unw_init_local(&cursor, &uc) < 0)
        return 0;
    return walk(&cursor, bt, 0);
#else
    *why = "reading a suspended task's stack needs libunwind on x86-64 with weft's own context switch";
    return 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* Symbolization                                                            */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t symbols_lock = PTHREAD_MUTEX_INITIALIZER;

/* Names handed out live as long as the process: interned here, never freed (a
 * program has a bounded number of functions and files). */
typedef struct interned {
    struct interned *next;
    char text[];
} interned;
static interned *interned_list;

static const char *intern(const char *s)
{
    if (!s)
        return NULL;
    for (interned *i = interned_list; i; i = i->next)
        if (strcmp(i->text, s) == 0)
            return i->text;
    size_t len = strlen(s);
    interned *i = malloc(sizeof *i + len + 1);
    if (!i)
        return NULL;
    memcpy(i->text, s, len + 1);
    i->next = interned_list;
    interned_list = i;
    return i->text;
}

static const char *base_name(const char *path)
{
    if (!path)
        return NULL;
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool is_weft_path(const char *path)
{
    size_t n = strlen(WEFT__SOURCE_ROOT);
    return path && n > 0 && strncmp(path, WEFT__SOURCE_ROOT, n) == 0;
}

#ifdef WEFT_HAVE_LIBDW
static Dwfl *dwfl;
static Dwfl_Callbacks dwfl_callbacks; /* filled from libdw at the first session */

/* (Re)reads this process's mappings: at first use, and when a pc lies in none of
 * the modules known (a library loaded since). */
static void dwfl_refresh(void)
{
    if (!dwfl) {
        dwfl_callbacks.find_elf = p_dwfl_linux_proc_find_elf;
        dwfl_callbacks.find_debuginfo = p_dwfl_standard_find_debuginfo;
        dwfl = p_dwfl_begin(&dwfl_callbacks);
    }
    if (!dwfl)
        return;
    p_dwfl_report_begin(dwfl);
    if (p_dwfl_linux_proc_report(dwfl, getpid()) != 0) {
        p_dwfl_report_end(dwfl, NULL, NULL);
        return;
    }
    p_dwfl_report_end(dwfl, NULL, NULL);
}

static Dwfl_Module *module_of(Dwarf_Addr addr)
{
    if (!dwfl)
        dwfl_refresh();
    Dwfl_Module *mod = dwfl ? p_dwfl_addrmodule(dwfl, addr) : NULL;
    if (!mod && dwfl) {
        dwfl_refresh();
        mod = p_dwfl_addrmodule(dwfl, addr);
    }
    return mod;
}

/* The function a DIE (subprogram or inlined instance) is, by its name or that of the
 * abstract origin it was inlined from. */
static const char *die_function_name(Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    Dwarf_Die origin;
    const char *name = p_dwarf_diename(die);
    if (name)
        return name;
    if (p_dwarf_attr_integrate(die, DW_AT_abstract_origin, &attr) && p_dwarf_formref_die(&attr, &origin))
        return p_dwarf_diename(&origin);
    return NULL;
}

/* The file a call-site attribute (DW_AT_call_file) names, by the CU's file table. */
static const char *call_file(Dwarf_Die *cu, Dwarf_Die *inlined)
{
    Dwarf_Attribute attr;
    Dwarf_Word index;
    Dwarf_Files *files;
    size_t nfiles;
    if (!p_dwarf_attr(inlined, DW_AT_call_file, &attr) || p_dwarf_formudata(&attr, &index) != 0)
        return NULL;
    if (p_dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || index >= nfiles)
        return NULL;
    return p_dwarf_filesrc(files, index, NULL, NULL);
}

static int call_line(Dwarf_Die *inlined)
{
    Dwarf_Attribute attr;
    Dwarf_Word line;
    if (!p_dwarf_attr(inlined, DW_AT_call_line, &attr) || p_dwarf_formudata(&attr, &line) != 0)
        return 0;
    return (int)line;
}

static int symbolize_dw(uintptr_t pc, Dwarf_Addr lookup, weft__frame *out, int max, bool *system_object)
{
    Dwfl_Module *mod = module_of(lookup);
    if (!mod)
        return 0;
    const char *mod_file = NULL;
    Dwarf_Addr elf_bias;
    p_dwfl_module_getelf(mod, &elf_bias); /* the module's file name is known once its ELF is */
    p_dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, &mod_file, NULL);
    *system_object = mod_file && (strncmp(mod_file, "/lib", 4) == 0 || strncmp(mod_file, "/usr/lib", 8) == 0);
    const char *symbol = p_dwfl_module_addrname(mod, lookup);
    const char *path = NULL;
    int line = 0;
    Dwfl_Line *dl = p_dwfl_module_getsrc(mod, lookup);
    if (dl)
        path = p_dwfl_lineinfo(dl, NULL, &line, NULL, NULL, NULL);

    /* Inlined calls: the scopes at pc, innermost first. Each inlined instance is a
     * function of its own whose position is the line found (the innermost) or the
     * call site the instance inside it records. */
    int n = 0;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = p_dwfl_module_addrdie(mod, lookup, &bias);
    Dwarf_Die *scopes = NULL;
    int nscopes = cu ? p_dwarf_getscopes(cu, lookup - bias, &scopes) : 0;
    /* dwarf_getscopes continues past an inlined instance with the scopes of its
     * abstract definition, losing the functions it was inlined into; the scopes of
     * the innermost DIE itself follow the concrete tree (as eu-addr2line -i does). */
    if (nscopes > 0) {
        Dwarf_Die inner = scopes[0];
        Dwarf_Die *chain = NULL;
        int nchain = p_dwarf_getscopes_die(&inner, &chain);
        if (nchain > 0) {
            free(scopes);
            scopes = chain;
            nscopes = nchain;
        }
    }
    const char *at_path = path;
    int at_line = line;
    for (int i = 0; i < nscopes && n < max - 1; i++) {
        if (p_dwarf_tag(&scopes[i]) != DW_TAG_inlined_subroutine)
            continue;
        weft__frame *f = &out[n++];
        memset(f, 0, sizeof *f);
        f->pc = pc;
        f->function = intern(die_function_name(&scopes[i]));
        f->path = intern(at_path);
        f->line = at_line;
        f->inlined = 1;
        /* Its caller is at the call site it records. */
        at_path = call_file(cu, &scopes[i]);
        at_line = call_line(&scopes[i]);
    }
    free(scopes);
    weft__frame *f = &out[n++];
    memset(f, 0, sizeof *f);
    f->pc = pc;
    f->function = intern(symbol);
    f->path = intern(at_path);
    f->line = at_line;
    return n;
}
#endif

static int symbolize_dl(uintptr_t pc, uintptr_t lookup, weft__frame *out)
{
    Dl_info info;
    memset(out, 0, sizeof *out);
    out->pc = pc;
    if (dladdr((void *)lookup, &info) && info.dli_sname)
        out->function = intern(info.dli_sname);
    return 1;
}

int weft__symbolize(const weft__backtrace *bt, int i, weft__frame *out, int max)
{
    uintptr_t pc = bt->pcs[i];
    bool is_return = i > 0 || bt->first_is_return;
    uintptr_t lookup = is_return && pc > 0 ? pc - 1 : pc;
    int n = 0;
    bool system_object = false;
    pthread_mutex_lock(&symbols_lock);
#ifdef WEFT_HAVE_LIBDW
    if (have_dw())
        n = symbolize_dw(pc, (Dwarf_Addr)lookup, out, max, &system_object);
#else
    (void)max;
#endif
    if (n == 0)
        n = symbolize_dl(pc, lookup, out);
    /* Whose code each entry is: weft's own by its source path; a system library's
     * when it has no line information or comes from the system's library folders;
     * the user's otherwise. */
    if (!system_object) {
        /* Without libdw's module file (or without libdw): the object's own path. */
        Dl_info info;
        if (dladdr((void *)lookup, &info) && info.dli_fname)
            system_object = strncmp(info.dli_fname, "/lib", 4) == 0 || strncmp(info.dli_fname, "/usr/lib", 8) == 0 ||
                            strstr(info.dli_fname, "linux-vdso") || strstr(info.dli_fname, "linux-gate");
    }
    for (int k = 0; k < n; k++) {
        out[k].file = base_name(out[k].path);
        out[k].weft_own = is_weft_path(out[k].path);
        if (!out[k].weft_own && out[k].function && strncmp(out[k].function, "weft_", 5) == 0 &&
            !out[k].path)
            out[k].weft_own = 1;
        /* The program's own code without -g is still the user's: named by its symbol;
         * but not the C runtime's start code linked into it (_start, from crt1.o). */
        bool crt = out[k].function && !out[k].path &&
                   (strcmp(out[k].function, "_start") == 0 || strncmp(out[k].function, "__libc_start", 12) == 0);
        out[k].system = !out[k].weft_own && (system_object || crt || (!out[k].path && !out[k].function));
    }
    pthread_mutex_unlock(&symbols_lock);
    return n;
}

bool weft__symbols_have_lines(void)
{
    return have_dw();
}

void weft__frame_format(const weft__frame *f, char *buf, size_t size)
{
    const char *fn = f->function ? f->function : "??";
    if (f->file && f->line > 0)
        snprintf(buf, size, "%s at %s:%d", fn, f->file, f->line);
    else if (f->function && !f->system && !f->weft_own)
        snprintf(buf, size, "%s (0x%jx; build with -g for its line)", fn, (uintmax_t)f->pc);
    else if (f->function)
        snprintf(buf, size, "%s (0x%jx)", fn, (uintmax_t)f->pc);
    else
        snprintf(buf, size, "0x%jx", (uintmax_t)f->pc);
}

/* weft_sleep, not weft__wait or a static helper. */
static bool is_public_weft(const char *function)
{
    return function && strncmp(function, "weft_", 5) == 0 && function[5] != '_';
}

/* A sanitizer's wrapper around a libc call (ThreadSanitizer's __interceptor_sleep,
 * linked into the program with line information): neither the user's code nor the
 * call to name. */
static bool sanitizer_frame(const weft__frame *e)
{
    return (e->function && (strncmp(e->function, "__interceptor_", 14) == 0 ||
                            strncmp(e->function, "___interceptor_", 15) == 0)) ||
           (e->path && (strstr(e->path, "/libsanitizer/") || strstr(e->path, "/compiler-rt/")));
}

/* A libc name as the reader wrote it: "nanosleep", not "__nanosleep" or
 * "clock_nanosleep@GLIBC_2.2.5". */
static void plain_name(const char *fn, char *buf, size_t size)
{
    while (fn[0] == '_' && fn[1] != '\0' && fn[1] != '@')
        fn++;
    snprintf(buf, size, "%.*s", (int)strcspn(fn, "@"), fn);
}

int weft__backtrace_user_frame(const weft__backtrace *bt, weft__frame *at, weft__frame *callee, weft__frame *outer)
{
    weft__frame entries[8];
    weft__frame prev;
    bool have_prev = false;
    memset(callee, 0, sizeof *callee);
    if (outer)
        memset(outer, 0, sizeof *outer);
    for (int i = 0; i < bt->count; i++) {
        int n = weft__symbolize(bt, i, entries, 8);
        for (int k = 0; k < n; k++) {
            weft__frame *e = &entries[k];
            if (sanitizer_frame(e))
                continue;
            if (!e->weft_own && !e->system) {
                *at = *e;
                /* A call into weft is named only by its public name: a helper it
                 * tail-called (get_slow for weft_queue_get) would mean nothing to the
                 * reader, whom the wait's kind tells instead. */
                if (have_prev && !(prev.weft_own && !is_public_weft(prev.function)))
                    *callee = prev;
                if (outer && e->inlined && k + 1 < n)
                    *outer = entries[k + 1];
                return 0;
            }
            /* The callee named is the outermost of the non-user frames just inside
             * the user's: `sleep`, not the nanosleep it calls. */
            if (e->function) {
                prev = *e;
                have_prev = true;
            }
        }
    }
    return -1;
}

bool weft__backtrace_describe(const weft__backtrace *bt, bool with_callee, char *buf, size_t size)
{
    weft__frame at, callee, outer;
    if (bt->count == 0) {
        snprintf(buf, size, "(its stack could not be read)");
        return false;
    }
    if (weft__backtrace_user_frame(bt, &at, &callee, &outer) != 0) {
        weft__frame first;
        weft__symbolize(bt, 0, &first, 1);
        char where[256];
        weft__frame_format(&first, where, sizeof where);
        snprintf(buf, size, "in %s (no frame of the program's own code)", where);
        return false;
    }
    char where[256], in[256] = "", call[128] = "";
    weft__frame_format(&at, where, sizeof where);
    /* GCC may inline a function's body into its own out-of-line copy ("worker inlined
     * in worker"): true, and of no help to the reader. */
    if (outer.function && !(at.function && strcmp(outer.function, at.function) == 0)) {
        char caller[230];
        weft__frame_format(&outer, caller, sizeof caller);
        snprintf(in, sizeof in, ", inlined in %s", caller);
    }
    if (with_callee && callee.function) {
        char name[100];
        plain_name(callee.function, name, sizeof name);
        snprintf(call, sizeof call, "%s() called from ", name);
    }
    snprintf(buf, size, "%s%s%s", call, where, in);
    return true;
}

void weft__backtrace_print(FILE *out, const weft__backtrace *bt, const char *indent)
{
    weft__frame entries[8];
    char line[512];
    int shown = 0;
    for (int i = 0; i < bt->count; i++) {
        int n = weft__symbolize(bt, i, entries, 8);
        for (int k = 0; k < n; k++) {
            weft__frame_format(&entries[k], line, sizeof line);
            fprintf(out, "%s#%-2d %s%s\n", indent, shown++, line, entries[k].inlined ? " (inlined)" : "");
        }
    }
    if (bt->count == 0)
        fprintf(out, "%s(no frames)\n", indent);
}
