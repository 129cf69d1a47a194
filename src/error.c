/*
 * error.c — error codes, their names and texts, and the messages that travel with
 * them: weft_fail's message for a task's outcome, weft's own explanations for the
 * errors its calls return, and the report of errors nobody retrieved.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The message of the latest error outside any task (and of weft_run's result). */
static WEFT__TLS char *thread_msg;

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
            return;
        }
    } else {
        free(thread_msg);
        thread_msg = msg;
        return;
    }
    free(msg);
}

void weft__set_thread_errmsg(const char *msg)
{
    free(thread_msg);
    thread_msg = msg ? strdup(msg) : NULL;
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
    weft__take_errmsg(msg);
    return NULL;
}

int weft_error(void)
{
    weft_task *t = weft__current();
    return t ? t->err : 0;
}

void weft_error_clear(void)
{
    weft_task *t = weft__current();
    if (t)
        t->err = 0;
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
