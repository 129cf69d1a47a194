/*
 * weft/process.h — subprocesses: asyncio's create_subprocess_exec and
 * create_subprocess_shell in straight-line C. A child is started without a full
 * fork of this process (posix_spawn: clone with CLONE_VM | CLONE_VFORK, from a
 * short-lived thread, so the loop never waits for it), its pipes are weft streams,
 * and its end is waited for through a pidfd in the loop's poller: no SIGCHLD
 * handler, no polling.
 *
 *   asyncio                                         weft
 *   p = await create_subprocess_exec("ls", "-l",    p = weft_create_subprocess_exec(
 *           stdout=PIPE)                                (const char *[]){"ls", "-l", NULL},
 *                                                       &(weft_process_options){.out = WEFT_STDIO_PIPE})
 *   p = await create_subprocess_shell("ls | wc")    p = weft_create_subprocess_shell("ls | wc", &opts)
 *   out, err = await p.communicate(data)            weft_process_communicate(p, data, n, &out, &out_len,
 *                                                                            &err, &err_len)
 *   await p.stdout.readline()                       weft_stream_readline(weft_process_stdout(p), &line)
 *   p.stdin.write(b); await p.stdin.drain()         weft_stream_write(weft_process_stdin(p), b, n); ..._drain
 *   p.stdin.close()                                 weft_stream_close(weft_process_stdin(p))
 *   rc = await p.wait()                             weft_process_wait(p, &rc)
 *   p.returncode                                    weft_process_returncode(p, &rc)
 *   p.pid                                           weft_process_pid(p)
 *   p.send_signal(s); p.terminate(); p.kill()       weft_process_send_signal(p, s); ..._terminate(p); ..._kill(p)
 *   (the transport's close)                         weft_process_free(p)
 *
 * A process belongs to the loop that started it; its handle is checked as stream
 * handles are (a handle used after weft_process_free gives -ESTALE; another loop's,
 * WEFT_ESTATE). The returncode is asyncio's: the exit status, or -N when signal N
 * ended the child.
 *
 * Who closes what: the process owns its pipes' streams. Close the stdin stream
 * (weft_stream_close) to send the child end of file; close any of them early if you
 * like. weft_process_free aborts those still open, so their handles are then stale.
 *
 * What the child gets: the three descriptors asked for and no other (every other
 * descriptor is closed in the child, whether or not it is close-on-exec), an empty
 * signal mask, and SIGPIPE and SIGXFSZ at their default action even when this
 * process ignores them (Python's restore_signals).
 *
 * No zombie is left: a child is reaped as soon as it exits, whether or not a task
 * waits for it. A child still running when its handle is freed is killed (SIGKILL)
 * and reaped when it dies, as asyncio's transport close does. At weft_run's end, a
 * process whose handle was never freed is reported on stderr (as an unclosed stream
 * is), its pipes are closed, and a child still running is killed with SIGKILL and
 * reaped before weft_run returns; a start still under way (its task was cancelled)
 * is waited for, and its child killed and reaped, too.
 *
 * Linux only: waiting needs pidfd_open (Linux 5.3).
 * Do not let anything else reap this process's children (a SIGCHLD handler that
 * calls waitpid(-1, ...), or SIGCHLD set to SIG_IGN): weft then cannot learn the
 * status and reports the child's returncode as 255, with a line on stderr (asyncio
 * does the same).
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include "base.h"
#include "net.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_process weft_process;

/* What the child's stdin, stdout or stderr is. */
typedef enum weft_stdio {
    WEFT_STDIO_INHERIT = 0, /* this process's own descriptor (asyncio: None, the default) */
    WEFT_STDIO_PIPE,        /* a pipe; this end is a weft_stream (asyncio.subprocess.PIPE) */
    WEFT_STDIO_DEVNULL,     /* /dev/null (asyncio.subprocess.DEVNULL) */
    WEFT_STDIO_FD,          /* the descriptor in in_fd / out_fd / err_fd (asyncio: a file
                               descriptor); it stays the caller's (the child gets a copy),
                               and may be closed once the call returns */
    WEFT_STDIO_STDOUT,      /* stderr only: wherever the child's stdout goes
                               (asyncio.subprocess.STDOUT) */
} weft_stdio;

/* How a child is started; all zeros means asyncio's defaults (inherit all three,
 * this process's environment and working directory). */
typedef struct weft_process_options {
    weft_stdio in, out, err;        /* the child's stdin, stdout, stderr */
    int in_fd, out_fd, err_fd;      /* with WEFT_STDIO_FD: the descriptor to give */
    /* NULL: this process's environment. Else the child's whole environment,
     * "NAME=value" strings ending with NULL; argv[0] is then searched in its PATH
     * (or "/bin:/usr/bin" when it has none), as Python's subprocess does. */
    const char *const *env;
    const char *cwd;                /* non-NULL: the child's working directory */
    weft_stream_options stream;     /* for the pipes' streams (limit, water marks) */
} weft_process_options;

/*
 * weft_create_subprocess_exec — start the program argv[0] with the arguments argv
 * (asyncio.create_subprocess_exec). A name without '/' is searched in the PATH of
 * the child's environment (this process's, or opts->env's), as Python's subprocess
 * does; with cwd set, a relative path is taken from there. The call returns once
 * the child has exec'd: a missing program is this call's error, not the child's.
 * The start runs on a short-lived thread of its own (all signals blocked), so the
 * loop runs on while the kernel makes the child and the child execs; the thread
 * exits when the child has. (A process pool refuses to be created while other
 * threads exist: create pools first, as chapter 12 of the guide says.)
 * Returns: the process (give it up with weft_process_free), or NULL with
 *   weft_errcode() saying why; weft_errmsg() names the program (and cwd when that
 *   was the trouble).
 * Suspends: from a task, until the child has exec'd (or failed to); from a
 *   callback, never: the loop's thread makes the child itself.
 * Errors: -ENOENT (no such program, or no such cwd), -EACCES (not executable, or a
 *   directory on the way not searchable), -ENOEXEC (not a format the kernel runs),
 *   -ENOTDIR, -E2BIG (arguments and environment too long), -ENOMEM, -EAGAIN (the
 *   process limit), -EMFILE / -ENFILE (no descriptor for a pipe or the pidfd);
 *   -EBADF (an in_fd / out_fd / err_fd not open); -EINVAL (argv NULL or empty, a
 *   weft_stdio value unknown, WEFT_STDIO_STDOUT for stdin or stdout, or stream
 *   options inconsistent); -ENOSYS (a kernel without pidfd_open: before Linux 5.3;
 *   no child is left running); -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns NULL with -ECANCELED; a child started meanwhile is killed
 *   (SIGKILL) and reaped in the background, and the pipes are closed.
 */
WEFT_API WEFT_WAIT weft_process *weft_create_subprocess_exec(const char *const argv[],
                                                             const weft_process_options *opts);

/*
 * weft_create_subprocess_shell — run cmd with /bin/sh -c (asyncio.
 * create_subprocess_shell). The shell's rules apply: quote what you pass it. A
 * command the shell cannot find is the child's exit status 127, not an error here.
 * Returns: as weft_create_subprocess_exec.
 * Suspends: as weft_create_subprocess_exec.
 * Errors: as weft_create_subprocess_exec; -EINVAL for a NULL cmd.
 * On cancel: as weft_create_subprocess_exec.
 */
WEFT_API WEFT_WAIT weft_process *weft_create_subprocess_shell(const char *cmd, const weft_process_options *opts);

/* weft_process_pid — the child's process id (Process.pid); still given after the
 * child was reaped (it may then name another process: signal through weft_process_*
 * calls, which never reach a recycled pid).
 * Returns: the pid (> 0), or an error.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE; -EINVAL (p NULL); WEFT_ENOTINLOOP. */
WEFT_API int weft_process_pid(weft_process *p);

/* weft_process_stdin / weft_process_stdout / weft_process_stderr — the stream of
 * the child's stdin (write to it), stdout or stderr (read from it) when that one was
 * asked for as WEFT_STDIO_PIPE (Process.stdin, .stdout, .stderr). The process owns
 * it; the handle is stale once it was closed or the process freed.
 * Returns: the stream, or NULL with weft_errcode() saying why.
 * Suspends: never.
 * Errors: WEFT_ESTATE (that descriptor is not a pipe: asyncio's None; or another
 *   loop's process); -ESTALE; -EINVAL (p NULL); WEFT_ENOTINLOOP. */
WEFT_API weft_stream *weft_process_stdin(weft_process *p);
WEFT_API weft_stream *weft_process_stdout(weft_process *p);
WEFT_API weft_stream *weft_process_stderr(weft_process *p);

/*
 * weft_process_wait — wait for the child to exit (Process.wait). Any number of
 * tasks may wait for one process. It does not read the pipes: a child that writes
 * more than a pipe holds (64 KiB) to a pipe nobody reads never exits; use
 * weft_process_communicate, or read them in other tasks.
 * Returns: 0, with the returncode in *returncode (which may be NULL): the exit
 *   status, or -N when signal N ended the child.
 * Suspends: until the child has exited and been reaped; returns at once when it
 *   already has.
 * Errors: -ESTALE; WEFT_ESTATE; -EINVAL (p NULL); -ECANCELED; WEFT_ENOTINLOOP
 *   (also from a callback when the child is still running: only a task can wait).
 * On cancel: returns -ECANCELED and the child runs on, still watched: it is reaped
 *   when it exits and a later wait or weft_process_returncode gives its status.
 */
WEFT_API WEFT_WAIT int weft_process_wait(weft_process *p, int *returncode);

/* weft_process_returncode — the returncode once the child has exited
 * (Process.returncode, which is None while it runs). Looks at the child without
 * waiting, so it is exact even before the loop has polled.
 * Returns: 1 with *returncode set (returncode may be NULL) when the child has
 *   exited; 0 while it runs.
 * Suspends: never.
 * Errors: -ESTALE; WEFT_ESTATE; -EINVAL (p NULL); WEFT_ENOTINLOOP. */
WEFT_API int weft_process_returncode(weft_process *p, int *returncode);

/*
 * weft_process_send_signal — send signal sig to the child (Process.send_signal),
 * through its pidfd (pidfd_send_signal), so never to another process that reuses
 * the pid. weft_process_terminate sends SIGTERM, weft_process_kill SIGKILL.
 * Returns: 0 once the signal was sent.
 * Suspends: never.
 * Errors: -ESRCH once the child has exited (it is looked at first, and reaped if
 *   it just did; asyncio's ProcessLookupError): nothing is sent, and
 *   weft_process_returncode gives its status; -EINVAL (not a signal number, or p NULL);
 *   -EPERM; -ESTALE; WEFT_ESTATE; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_process_send_signal(weft_process *p, int sig);
WEFT_API int weft_process_terminate(weft_process *p);
WEFT_API int weft_process_kill(weft_process *p);

/*
 * weft_process_communicate — write input to the child's stdin and close it, read
 * its stdout and stderr to end of file, and wait for it to exit
 * (Process.communicate). The three run concurrently (a task for each pipe), so no
 * size of input or output can deadlock it; a child that exits or closes its stdin
 * before taking all the input (EPIPE) does not fail it: the rest is dropped, as
 * asyncio does. A pipe's stdin is closed even with no input (input NULL, len 0).
 * The input is copied into stdin's stream before the call first suspends, so it
 * may live anywhere, a compact task's stack included.
 * Returns: 0 once the child has exited (weft_process_returncode then gives its
 *   status). *out / *err are malloc'd, NUL-terminated beyond the length, freed by
 *   the caller; NULL with length 0 for a descriptor that is not a pipe. Any of out,
 *   out_len, err, err_len may be NULL: that output is still read, and dropped.
 * Suspends: until both outputs have ended and the child has exited.
 * Errors: -EINVAL (input given but stdin is not a pipe; p NULL); -EBUSY (another
 *   task reads one of the pipes); WEFT_ECLOSED (weft_process_free from another task
 *   meanwhile); a pipe's read error; -ENOMEM (nothing is returned); -ESTALE;
 *   WEFT_ESTATE; -ECANCELED; WEFT_ENOTINLOOP.
 * On cancel: returns -ECANCELED after its pipe tasks have been cancelled and have
 *   finished; what was read is dropped, stdin is closed (unsent input dropped), the
 *   outputs stay open and the child runs on (weft_process_free kills it).
 */
WEFT_API WEFT_WAIT int weft_process_communicate(weft_process *p, const void *input, size_t len, char **out,
                                                size_t *out_len, char **err, size_t *err_len);

/*
 * weft_process_free — give up the handle (asyncio's transport close): the pipes'
 * streams still open are aborted (unsent stdin bytes dropped), and a child still
 * running is killed with SIGKILL; it is reaped when it dies, in the background. A
 * task waiting in weft_process_wait then gets the child's status (-9). NULL does
 * nothing.
 * Returns: 0.
 * Suspends: never.
 * Errors: -ESTALE (already freed); WEFT_ESTATE; WEFT_ENOTINLOOP.
 */
WEFT_API int weft_process_free(weft_process *p);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PROCESS_H */
