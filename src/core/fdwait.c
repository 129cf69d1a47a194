/*
 * fdwait.c — tasks and callbacks waiting on descriptors: weft__fd (a watcher with
 * one waiting task per direction and the callbacks of add_reader/add_writer), the
 * loop's table of descriptors watched by number, and the public calls on it:
 * weft_fd_wait (straight-line: suspend until readable or writable),
 * weft_add_reader / weft_add_writer and their removal (asyncio's loop methods),
 * weft_fd_forget and weft_fd_close.
 *
 * Registrations persist (io.h): a task that reads, waits, is woken and waits again
 * costs no system call for its waiting, where a one-shot registration cost an add
 * and a delete per wait.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* The wake reason of a task whose descriptor was forgotten while it waited:
 * EBADFD, so that it is told apart from the poller refusing a closed descriptor
 * (EBADF); weft_fd_wait reports both as -EBADF, each with its own message. */
#define FD_FORGOTTEN (-EBADFD)

/* ------------------------------------------------------------------------ */
/* weft__fd                                                                 */
/* ------------------------------------------------------------------------ */

static unsigned fd_interest(const weft__fd *f)
{
    return (f->reader || f->on_read ? WEFT__POLL_IN : 0) | (f->writer || f->on_write ? WEFT__POLL_OUT : 0);
}

/* Interest only shrinks here (a waiter left or was woken), and a shrinking
 * change is queued, never refused. */
static void fd_update(weft_loop *L, weft__fd *f)
{
    (void)weft__watcher_want(&L->io, &f->w, fd_interest(f));
}

static void fd_ready(weft__watcher *w, unsigned events)
{
    weft_loop *L = weft__loop;
    weft__fd *f = WEFT__CONTAINER_OF(w, weft__fd, w);
    unsigned err = events & WEFT__POLL_ERR;
    unsigned rmask = (events & WEFT__POLL_IN) || err ? WEFT__POLL_IN | err : 0;
    unsigned wmask = (events & WEFT__POLL_OUT) || err ? WEFT__POLL_OUT | err : 0;
    weft_task *reader = rmask ? f->reader : NULL;
    weft_task *writer = wmask ? f->writer : NULL;
    if (reader == writer && reader) {
        /* One task waits for either direction: one wake-up with both. */
        f->reader = f->writer = NULL;
        weft__wake(reader, (int)(rmask | wmask));
    } else {
        if (reader) {
            f->reader = NULL;
            weft__wake(reader, (int)rmask);
        }
        if (writer) {
            f->writer = NULL;
            weft__wake(writer, (int)wmask);
        }
    }
    fd_update(L, f);
    /* Callbacks last: they may remove each other or forget f (whose record stays
     * until the loop ends, so reading it afterwards is safe). */
    if (rmask && f->on_read)
        f->on_read(f->read_arg);
    if (wmask && f->on_write)
        f->on_write(f->write_arg);
}

void weft__fd_init(weft__fd *f, int fd)
{
    *f = (weft__fd){0};
    weft__watcher_init(&f->w, fd, fd_ready);
}

/* The waiting task leaves (cancelled): it stops wanting its events. */
static void fd_unwait(weft_task *self, int reason)
{
    (void)reason;
    weft__fd *f = self->wait_obj;
    if (f->reader == self)
        f->reader = NULL;
    if (f->writer == self)
        f->writer = NULL;
    fd_update(weft__loop, f);
}

/* weft_dump: which descriptor, for what. */
static void fd_describe(const weft_task *self, char *buf, size_t size)
{
    const weft__fd *f = self->wait_obj;
    bool r = f->reader == self, w = f->writer == self;
    snprintf(buf, size, "fd %d, to %s", f->w.fd, r && w ? "read or write" : w ? "write" : "read");
}

static const weft__wait_kind fd_wait_kind = {"descriptor", fd_unwait, fd_describe};

int weft__fd_wait(weft_loop *L, weft__fd *f, unsigned events)
{
    weft_task *self = weft__current();
    if (self->cancelling)
        return -ECANCELED;
    if (((events & WEFT__POLL_IN) && (f->reader || f->on_read)) ||
        ((events & WEFT__POLL_OUT) && (f->writer || f->on_write)))
        return -EBUSY;
    if (events & WEFT__POLL_IN)
        f->reader = self;
    if (events & WEFT__POLL_OUT)
        f->writer = self;
    int rc = weft__watcher_want(&L->io, &f->w, fd_interest(f));
    if (rc != 0) {
        if (f->reader == self)
            f->reader = NULL;
        if (f->writer == self)
            f->writer = NULL;
        return rc;
    }
    return weft__wait(&fd_wait_kind, f);
}

void weft__fd_forget(weft_loop *L, weft__fd *f)
{
    weft_task *reader = f->reader, *writer = f->writer;
    f->reader = f->writer = NULL;
    f->on_read = f->on_write = NULL;
    weft__watcher_forget(&L->io, &f->w);
    if (reader)
        weft__wake(reader, FD_FORGOTTEN);
    if (writer && writer != reader)
        weft__wake(writer, FD_FORGOTTEN);
}

/* ------------------------------------------------------------------------ */
/* Descriptors watched by number                                            */
/* ------------------------------------------------------------------------ */

/* A descriptor watched by number. In Debug and sanitizer builds it remembers which
 * file it was registered for, so that a descriptor closed without weft_fd_forget
 * and reopened under the same number is reported instead of never waking. */
typedef struct fd_entry {
    weft__fd f;
#ifdef WEFT_ASSERTS
    dev_t dev;
    ino_t ino;
#endif
} fd_entry;

/* Debug builds: before a wait or callback that will not register again, checks
 * that the descriptor is still the file it was registered for. */
static void check_same_file(weft_loop *L, weft__fd *f, int fd)
{
#ifdef WEFT_ASSERTS
    fd_entry *e = WEFT__CONTAINER_OF(f, fd_entry, f);
    struct stat st;
    if (!f->w.registered) {
        if (fstat(fd, &st) == 0) {
            e->dev = st.st_dev;
            e->ino = st.st_ino;
        }
        return;
    }
    if (fstat(fd, &st) != 0) {
        /* Closed: let the registration be tried again, so the poller says EBADF. */
        weft__watcher_forget(&L->io, &f->w);
        return;
    }
    if (st.st_dev != e->dev || st.st_ino != e->ino) {
        weft__report("weft: descriptor %d was closed and opened again without weft_fd_forget (or weft_fd_close) "
                     "while weft watched it; the old registration is dropped now (in a release build this "
                     "descriptor might never have reported readiness)", fd);
        weft__watcher_forget(&L->io, &f->w);
        e->dev = st.st_dev;
        e->ino = st.st_ino;
    }
#else
    (void)L;
    (void)f;
    (void)fd;
#endif
}

/* The record of fd, made on first use; NULL on ENOMEM (no message set). */
static weft__fd *fd_record(weft_loop *L, int fd, bool create)
{
    struct weft__fd_table *tab = &L->fds;
    if ((size_t)fd >= tab->cap) {
        if (!create)
            return NULL;
        size_t cap = tab->cap ? tab->cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        weft__fd **rec = realloc(tab->rec, cap * sizeof *rec);
        if (!rec)
            return NULL;
        for (size_t i = tab->cap; i < cap; i++)
            rec[i] = NULL;
        tab->rec = rec;
        tab->cap = cap;
    }
    weft__fd *f = tab->rec[fd];
    if (!f && create) {
        fd_entry *e = calloc(1, sizeof *e);
        if (!e)
            return NULL;
        f = &e->f;
        weft__fd_init(f, fd);
        tab->rec[fd] = f;
    }
    return f;
}

static void fds_term(weft_loop *L)
{
    struct weft__fd_table *tab = &L->fds;
    for (size_t i = 0; i < tab->cap; i++) {
        if (tab->rec[i]) {
            weft__fd_forget(L, tab->rec[i]);
            free(WEFT__CONTAINER_OF(tab->rec[i], fd_entry, f));
        }
    }
    free(tab->rec);
    *tab = (struct weft__fd_table){0};
}

const weft__module weft__module_fds = {"descriptor table", NULL, NULL, fds_term};

static int fd_refused(const char *what, int fd, int rc)
{
    if (rc == -EPERM)
        return weft__set_errmsg(rc, "%s: descriptor %d cannot be watched: the kernel's poller refuses it, "
                                    "as it does regular files, directories and some devices (/dev/null), "
                                    "which are always ready; read it directly, or through weft_to_thread "
                                    "when it may be slow", what, fd);
    if (rc == -EBADF)
        return weft__set_errmsg(rc, "%s: %d is not an open descriptor", what, fd);
    return weft__set_errmsg(rc, "%s: could not watch descriptor %d: %s", what, fd, weft_strerror(rc));
}

static int check_fd(const char *what, int fd)
{
    if (!weft__loop)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "%s needs a running weft loop (start one with weft_run)", what);
    if (fd < 0)
        return weft__set_errmsg(-EBADF, "%s: %d is not a descriptor", what, fd);
    return 0;
}

int weft_fd_wait(int fd, unsigned events)
{
    weft_loop *L = weft__loop;
    weft_task *self = weft__current();
    if (!self)
        return weft__set_errmsg(WEFT_ENOTINLOOP, "weft_fd_wait must be called from a task of a running weft "
                                                 "loop (a callback uses weft_add_reader / weft_add_writer)");
    if (fd < 0)
        return weft__set_errmsg(-EBADF, "weft_fd_wait: %d is not a descriptor", fd);
    if (events == 0 || (events & ~(unsigned)(WEFT_READABLE | WEFT_WRITABLE)))
        return weft__set_errmsg(-EINVAL, "weft_fd_wait: events must be WEFT_READABLE, WEFT_WRITABLE or both "
                                         "(got %#x)", events);
    if (self->cancelling)
        return weft__cancelled_errmsg(self);
    weft__fd *f = fd_record(L, fd, true);
    if (!f)
        return weft__set_errmsg(-ENOMEM, "weft_fd_wait: out of memory for descriptor %d's record", fd);
    unsigned want = ((events & WEFT_READABLE) ? WEFT__POLL_IN : 0) | ((events & WEFT_WRITABLE) ? WEFT__POLL_OUT : 0);
    check_same_file(L, f, fd);
    int rc = weft__fd_wait(L, f, want);
    if (rc > 0)
        return ((rc & WEFT__POLL_IN) ? WEFT_READABLE : 0) | ((rc & WEFT__POLL_OUT) ? WEFT_WRITABLE : 0) |
               ((rc & WEFT__POLL_ERR) ? WEFT_FD_ERROR : 0);
    if (rc == -ECANCELED)
        return weft__cancelled_errmsg(self);
    if (rc == -EBUSY) {
        bool reading = (want & WEFT__POLL_IN) && (f->reader || f->on_read);
        weft_task *other = reading ? f->reader : f->writer;
        return weft__set_errmsg(-EBUSY, "weft_fd_wait: descriptor %d already has a %s: %s%s (one task or "
                                        "callback per direction)", fd, reading ? "reader" : "writer",
                                other ? "task " : "a callback set with ", other ? weft_task_name(other)
                                : reading ? "weft_add_reader" : "weft_add_writer");
    }
    if (rc == FD_FORGOTTEN)
        return weft__set_errmsg(-EBADF, "weft_fd_wait: descriptor %d was forgotten (weft_fd_forget or "
                                        "weft_fd_close) while %s waited on it", fd, weft_task_name(self));
    return fd_refused("weft_fd_wait", fd, rc);
}

static int add_callback(const char *what, int fd, weft_callback_fn cb, void *arg, bool reading)
{
    int rc = check_fd(what, fd);
    if (rc != 0)
        return rc;
    if (!cb)
        return weft__set_errmsg(-EINVAL, "%s: the callback is NULL", what);
    weft_loop *L = weft__loop;
    weft__fd *f = fd_record(L, fd, true);
    if (!f)
        return weft__set_errmsg(-ENOMEM, "%s: out of memory for descriptor %d's record", what, fd);
    if (reading ? f->reader != NULL : f->writer != NULL)
        return weft__set_errmsg(-EBUSY, "%s: %s is waiting in weft_fd_wait for descriptor %d to be %s", what,
                                weft_task_name(reading ? f->reader : f->writer), fd,
                                reading ? "readable" : "writable");
    check_same_file(L, f, fd);
    weft_callback_fn *slot_cb = reading ? &f->on_read : &f->on_write;
    void **slot_arg = reading ? &f->read_arg : &f->write_arg;
    weft_callback_fn old_cb = *slot_cb;
    void *old_arg = *slot_arg;
    /* As asyncio: a second add replaces the first. */
    *slot_cb = cb;
    *slot_arg = arg;
    rc = weft__watcher_want(&L->io, &f->w, fd_interest(f));
    if (rc != 0) {
        *slot_cb = old_cb;
        *slot_arg = old_arg;
        return fd_refused(what, fd, rc);
    }
    return 0;
}

static bool remove_callback(int fd, bool reading)
{
    weft_loop *L = weft__loop;
    weft__fd *f = L && fd >= 0 ? fd_record(L, fd, false) : NULL;
    if (!f || !(reading ? f->on_read : f->on_write))
        return false;
    if (reading)
        f->on_read = NULL;
    else
        f->on_write = NULL;
    if (fd_interest(f) == 0) {
        /* Nothing wants it any more: the kernel forgets it now, not at the next
         * poll, so that asyncio's habit (remove_reader, then close) is safe. */
        weft__watcher_forget(&L->io, &f->w);
    } else {
        fd_update(L, f);
    }
    return true;
}

int weft_add_reader(int fd, weft_callback_fn cb, void *arg)
{
    return add_callback("weft_add_reader", fd, cb, arg, true);
}

int weft_add_writer(int fd, weft_callback_fn cb, void *arg)
{
    return add_callback("weft_add_writer", fd, cb, arg, false);
}

bool weft_remove_reader(int fd)
{
    return remove_callback(fd, true);
}

bool weft_remove_writer(int fd)
{
    return remove_callback(fd, false);
}

bool weft_fd_forget(int fd)
{
    weft_loop *L = weft__loop;
    weft__fd *f = L && fd >= 0 ? fd_record(L, fd, false) : NULL;
    if (!f)
        return false;
    bool known = f->w.registered || f->reader || f->writer || f->on_read || f->on_write;
    weft__fd_forget(L, f);
    return known;
}

int weft_fd_close(int fd)
{
    weft_fd_forget(fd);
    if (close(fd) < 0) {
        int rc = -errno;
        return weft__set_errmsg(rc, "weft_fd_close: close(%d): %s", fd, weft_strerror(rc));
    }
    return 0;
}
