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

/* The message of the latest error outside any task (and of weft_run's result). */
static WEFT__TLS char *thread_msg;

/* A thread's last message is freed when the thread exits: a key whose destructor
 * frees its value, kept equal to thread_msg. */
static pthread_key_t thread_msg_key;
static pthread_once_t thread_msg_once = PTHREAD_ONCE_INIT;

static void thread_msg_key_create(void)
{
    pthread_key_create(&thread_msg_key, free);
}

static void set_thread_msg(char *msg)
{
    free(thread_msg);
    thread_msg = msg;
    pthread_once(&thread_msg_once, thread_msg_key_create);
    pthread_setspecific(thread_msg_key, msg);
}
/* The error a plain thread (a pool worker running a blocking call) recorded with
 * weft_fail; the pool takes it with weft__thread_error_take after the call. */
static WEFT__TLS int thread_err;

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

void weft__take_errmsg(char *msg)
{
    weft_task *t = weft__current();
    if (t) {
        weft__task_extra *x = weft__extra(t);
        if (x) {
            free(x->msg);
            x->msg = msg;
            /* A new error: the group of the previous one no longer applies. */
            weft__errgroup_free(x->group);
            x->group = NULL;
            return;
        }
    } else {
        set_thread_msg(msg);
        return;
    }
    free(msg);
}

void weft__set_thread_errmsg(const char *msg)
{
    set_thread_msg(msg ? strdup(msg) : NULL);
}

int weft__set_errmsg(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft__take_errmsg(vformat(fmt, ap));
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
    if (t)
        t->err = code;
    else
        thread_err = code;
    /* Passing a received group on (`return weft_fail(rc, "%s", weft_errmsg())`)
     * keeps the group with the error. */
    weft_error_group *keep = NULL;
    if (t && code == WEFT_EGROUP && t->extra) {
        keep = t->extra->group;
        t->extra->group = NULL;
    }
    weft__take_errmsg(msg);
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
    return t ? t->err : thread_err;
}

void weft_error_clear(void)
{
    weft_task *t = weft__current();
    if (t)
        t->err = 0;
    else
        thread_err = 0;
}

const char *weft__task_errmsg(weft_task *t)
{
    return t && t->extra && t->extra->msg ? t->extra->msg : "";
}

const char *weft_errmsg(void)
{
    weft_task *t = weft__current();
    if (t)
        return weft__task_errmsg(t);
    return thread_msg ? thread_msg : "";
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
}

int weft__thread_error_take(char **msg)
{
    int code = thread_err;
    thread_err = 0;
    if (msg) {
        *msg = code ? thread_msg : NULL;
        if (code) {
            thread_msg = NULL; /* now the caller's */
            pthread_once(&thread_msg_once, thread_msg_key_create);
            pthread_setspecific(thread_msg_key, NULL);
        }
    }
    return code;
}
