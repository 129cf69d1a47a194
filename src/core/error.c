/*
 * error.c — error codes, their names and texts, and the messages that travel with
 * them: weft_fail's message for a task's outcome, weft's own explanations for the
 * errors its calls return, and the report of errors nobody retrieved.
 */
#include "core/core.h"

#include <pthread.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The latest error of this thread outside any task (a pool thread's blocking call,
 * weft_run's result), allocated on first use and freed when the thread exits by
 * the key's destructor. */
static WEFT__TLS weft__errstate *thread_state;
/* The code weft_fail recorded outside any task (a pool thread's blocking call),
 * until the pool takes it or weft_error_clear. */
static WEFT__TLS int thread_fail_code;
static pthread_key_t thread_state_key;
static pthread_once_t thread_state_once = PTHREAD_ONCE_INIT;

static void thread_state_free(void *p)
{
    weft__errstate_free(p);
    free(p);
}

static void thread_state_key_create(void)
{
    pthread_key_create(&thread_state_key, thread_state_free);
}

/* This thread's error state; NULL on ENOMEM (then messages are dropped). */
static weft__errstate *thread_errors(void)
{
    if (!thread_state) {
        pthread_once(&thread_state_once, thread_state_key_create);
        thread_state = calloc(1, sizeof *thread_state);
        if (thread_state)
            pthread_setspecific(thread_state_key, thread_state);
    }
    return thread_state;
}

void weft__errstate_free(weft__errstate *e)
{
    free(e->msg);
    free(e->fail_msg);
    for (int i = 0; i < WEFT__RETIRED; i++)
        free(e->retired[i]);
    *e = (weft__errstate){0};
}

/* Replaces the latest message, keeping the old one among the retired. */
void weft__errstate_set(weft__errstate *e, int code, char *msg)
{
    if (e->msg) {
        free(e->retired[e->next_retired]);
        e->retired[e->next_retired] = e->msg;
        e->next_retired = (uint8_t)((e->next_retired + 1) % WEFT__RETIRED);
    }
    e->msg = msg;
    e->code = code;
}

/* The current task's error state, or the thread's outside a task. */
static weft__errstate *current_errors(void)
{
    weft_task *t = weft__current();
    if (!t)
        return thread_errors();
    weft__task_extra *x = weft__extra(t);
    return x ? &x->es : NULL;
}

const char *weft_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define WEFT__ERRNO_TEXT(name, value, text) \
    case value:                             \
        return text;
        WEFT_ERRNO_MAP(WEFT__ERRNO_TEXT)
#undef WEFT__ERRNO_TEXT
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *s = strerrordesc_np(-code);
        if (s)
            return s;
    }
    return "unknown error";
}

const char *weft_errname(int code)
{
    switch (code) {
    case 0:
        return "0";
#define WEFT__ERRNO_NAME(name, value, text) \
    case value:                             \
        return #name;
        WEFT_ERRNO_MAP(WEFT__ERRNO_NAME)
#undef WEFT__ERRNO_NAME
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *s = strerrorname_np(-code);
        if (s)
            return s;
    }
    return "E?";
}

weft__task_extra *weft__extra(weft_task *t)
{
    if (!t->extra)
        t->extra = calloc(1, sizeof *t->extra);
    return t->extra;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

void weft__take_errmsg(int code, char *msg)
{
    weft_task *t = weft__current();
    weft__errstate *e = current_errors();
    if (!e) {
        free(msg);
        return;
    }
    weft__errstate_set(e, code, msg);
    if (t) {
        /* A new error: the group of the previous one no longer applies. */
        weft__errgroup_free(t->extra->group);
        t->extra->group = NULL;
    }
}

void weft__clear_thread_error(void)
{
    weft__errstate *e = thread_errors();
    if (e)
        weft__errstate_set(e, 0, NULL);
}

int weft__set_errmsg(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft__take_errmsg(code, vformat(fmt, ap));
    va_end(ap);
    return code;
}

void *weft_fail(int code, const char *fmt, ...)
{
    if (code > 0)
        code = -code;
    if (code == 0)
        code = -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *msg = fmt ? vformat(fmt, ap) : NULL;
    va_end(ap);
    weft_task *t = weft__current();
    /* Passing a received group on (`return weft_fail(rc, "%s", weft_errmsg())`)
     * keeps the group with the error. */
    weft_error_group *keep = NULL;
    if (t && code == WEFT_EGROUP && t->extra) {
        keep = t->extra->group;
        t->extra->group = NULL;
    }
    weft__errstate *e = current_errors();
    if (t)
        t->err = code;
    if (e) {
        /* The failure keeps its own copy of the message: a later failing call
         * replaces the latest message, never what the task failed with. */
        free(e->fail_msg);
        e->fail_msg = msg ? strdup(msg) : NULL;
    }
    weft__take_errmsg(code, msg);
    if (!t && e)
        thread_fail_code = code;
    weft__take_errgroup(keep);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Error groups                                                             */
/* ------------------------------------------------------------------------ */

/* One allocation per group: the header, the items, then the strings. */
weft_error_group *weft__errgroup_new(const weft_error_item *items, size_t count)
{
    size_t bytes = sizeof(weft_error_group) + count * sizeof(weft_error_item);
    for (size_t i = 0; i < count; i++)
        bytes += strlen(items[i].msg ? items[i].msg : "") + 1 + strlen(items[i].task ? items[i].task : "") + 1;
    weft_error_group *g = malloc(bytes);
    if (!g) {
        for (size_t i = 0; i < count; i++)
            weft__errgroup_free((weft_error_group *)items[i].nested);
        return NULL;
    }
    weft_error_item *out = (weft_error_item *)(g + 1);
    char *text = (char *)(out + count);
    for (size_t i = 0; i < count; i++) {
        out[i].code = items[i].code;
        out[i].nested = items[i].nested;
        size_t len = strlen(items[i].msg ? items[i].msg : "") + 1;
        memcpy(text, items[i].msg ? items[i].msg : "", len);
        out[i].msg = text;
        text += len;
        len = strlen(items[i].task ? items[i].task : "") + 1;
        memcpy(text, items[i].task ? items[i].task : "", len);
        out[i].task = text;
        text += len;
    }
    g->count = count;
    g->items = out;
    return g;
}

void weft__errgroup_free(weft_error_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++)
        weft__errgroup_free((weft_error_group *)g->items[i].nested);
    free(g);
}

weft_error_group *weft__errgroup_copy(const weft_error_group *g)
{
    if (!g)
        return NULL;
    weft_error_item *items = calloc(g->count ? g->count : 1, sizeof *items);
    if (!items)
        return NULL;
    for (size_t i = 0; i < g->count; i++) {
        items[i] = g->items[i];
        items[i].nested = weft__errgroup_copy(g->items[i].nested);
    }
    weft_error_group *copy = weft__errgroup_new(items, g->count);
    free(items);
    return copy;
}

void weft__take_errgroup(weft_error_group *g)
{
    weft_task *t = weft__current();
    weft__task_extra *x = t ? weft__extra(t) : NULL;
    if (!x) {
        weft__errgroup_free(g); /* outside a task a group cannot be kept */
        return;
    }
    weft__errgroup_free(x->group);
    x->group = g;
}

const weft_error_group *weft_errgroup(void)
{
    weft_task *t = weft__current();
    return t && t->extra ? t->extra->group : NULL;
}

int weft_error(void)
{
    weft_task *t = weft__current();
    return t ? t->err : thread_fail_code;
}

int weft_errcode(void)
{
    weft_task *t = weft__current();
    if (t)
        return t->extra ? t->extra->es.code : 0;
    return thread_state ? thread_state->code : 0;
}

void weft_error_clear(void)
{
    weft_task *t = weft__current();
    weft__errstate *e = t ? (t->extra ? &t->extra->es : NULL) : thread_state;
    if (t)
        t->err = 0;
    else
        thread_fail_code = 0;
    if (e) {
        free(e->fail_msg);
        e->fail_msg = NULL;
    }
}

const char *weft__task_errmsg(weft_task *t)
{
    return t && t->extra && t->extra->es.msg ? t->extra->es.msg : "";
}

const char *weft_errmsg(void)
{
    weft_task *t = weft__current();
    if (t)
        return weft__task_errmsg(t);
    return thread_state && thread_state->msg ? thread_state->msg : "";
}

void weft__report(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void weft__task_report_unretrieved(weft_task *t, const char *why)
{
    const char *msg = weft__task_errmsg(t);
    weft__report("weft: %s failed with %s (%s)%s%s (%s)", weft_task_name(t), weft_errname(t->err),
                 weft_strerror(t->err), *msg ? ": " : "", msg, why);
    weft__task_reported(t);
}

void weft__task_reported(const weft_task *t)
{
    weft_loop *L = weft__loop;
    if (L && L->observer)
        L->observer->reported(L, t);
}

int weft__thread_error_take(char **msg)
{
    int code = thread_fail_code;
    thread_fail_code = 0;
    char *fail = thread_state ? thread_state->fail_msg : NULL;
    if (thread_state)
        thread_state->fail_msg = NULL;
    if (msg && code)
        *msg = fail;
    else
        free(fail);
    if (msg && !code)
        *msg = NULL;
    return code;
}
