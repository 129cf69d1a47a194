/*
 * tail_react — follow a growing file (as `tail -F` does) and the output of a command at
 * the same time, and print an alert for every line of either that matches a pattern.
 *
 *   usage: tail_react [-i SECONDS] [-t SECONDS] [-x] PATTERN FILE [COMMAND [ARG...]]
 *
 * PATTERN is a POSIX extended regular expression (as grep -E takes). FILE is read from
 * its current end: only lines added from now on count. A file that shrinks was
 * truncated and is read again from its start; a path that comes to name another file
 * was rotated: the old file's last lines are read, then the new file from its start.
 * COMMAND (run without a shell, its stdin /dev/null, its stderr ours) is read line by
 * line as it prints. Each match prints "ALERT file FILE: line" or "ALERT command
 * NAME: line" on stdout; notes (the command's exit, a rotation) go to stderr.
 *
 * It runs until Ctrl-C, or for -t SECONDS, or with -x until COMMAND has exited (FILE is
 * then read to its end once more). Either way a command still running gets SIGTERM,
 * and SIGKILL if it has not exited 2 s later, and is waited for. Exit status: 0, 1 when
 * FILE cannot be read or COMMAND cannot be started, 2 for bad usage; after Ctrl-C it
 * dies of SIGINT, as a shell expects (status 130).
 *
 * Two tasks in a task group, one per source; the file is polled with weft_file_*
 * calls, which run on weft's thread pool, so a slow disk never holds the loop.
 */
#define _GNU_SOURCE /* strsignal, and the rest of POSIX */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

#define KILL_AFTER 2.0 /* seconds between our SIGTERM and SIGKILL for the command */

struct watch {
    regex_t pattern;
    double interval; /* -i: seconds between looks at the file */
    double seconds;  /* -t, or 0: until Ctrl-C */
    bool until_exit; /* -x */
    /* The file, and how far it has been read. */
    const char *path;
    int fd;
    off_t offset;
    size_t have; /* bytes of a line begun in buf, not yet ended by '\n' */
    char buf[64 * 1024 + 1];
    /* The command. */
    char **argv;
    weft_process *proc;
    bool command_done;
};

/* The reaction: here an alert on stdout. */
static void react(struct watch *w, const char *kind, const char *source, const char *line)
{
    if (regexec(&w->pattern, line, 0, NULL, 0) == 0)
        printf("ALERT %s %s: %s\n", kind, source, line);
}

/* Closes a descriptor we only read from; a close that fails loses nothing, but say so. */
static void close_file(int fd)
{
    if (weft_file_close(fd) != 0)
        fprintf(stderr, "tail_react: %s\n", weft_errmsg());
}

/* Reads what the file gained since the last look and reacts to each whole line. A line
 * still being written waits in buf for its '\n'. */
static int read_new_lines(struct watch *w)
{
    for (;;) {
        ssize_t n = weft_file_pread(w->fd, w->buf + w->have, sizeof w->buf - 1 - w->have, w->offset);
        if (n <= 0)
            return (int)n; /* 0: nothing more for now */
        w->offset += n;
        w->have += (size_t)n;
        char *line = w->buf, *end = w->buf + w->have, *nl;
        while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
            *nl = '\0';
            react(w, "file", w->path, line);
            line = nl + 1;
        }
        w->have = (size_t)(end - line);
        memmove(w->buf, line, w->have);
        if (w->have == sizeof w->buf - 1) { /* a line longer than buf: take it as it is */
            w->buf[w->have] = '\0';
            react(w, "file", w->path, w->buf);
            w->have = 0;
        }
    }
}

/* tail -F's rules, checked between reads. A file smaller than what was read was
 * truncated (a truncation followed by more writes than were read before it is not seen,
 * as tail does not see it either). A path that names another file now was rotated. A
 * path that names nothing (mid-rotation) leaves the old file followed. */
static int check_rotation(struct watch *w)
{
    struct stat now, named;
    int rc = weft_file_fstat(w->fd, &now);
    if (rc != 0)
        return rc;
    if (now.st_size < w->offset) {
        fprintf(stderr, "tail_react: %s was truncated; reading it from the start\n", w->path);
        w->offset = 0;
        w->have = 0;
    }
    if (weft_file_stat(w->path, &named) != 0 || (named.st_dev == now.st_dev && named.st_ino == now.st_ino))
        return 0;
    if ((rc = read_new_lines(w)) != 0) /* the old file's last lines first */
        return rc;
    int fd = weft_file_open(w->path, O_RDONLY, 0);
    if (fd < 0)
        return 0; /* gone again already: look next time */
    close_file(w->fd);
    fprintf(stderr, "tail_react: %s was replaced; reading the new file from its start\n", w->path);
    w->fd = fd;
    w->offset = 0;
    w->have = 0;
    return 0;
}

/* The file's task: read, sleep, look for truncation and rotation, again. */
static void *follow_file(void *arg)
{
    struct watch *w = arg;
    for (;;) {
        /* Noted before the read: whatever the command wrote before it exited is read. */
        bool last = w->until_exit && w->command_done;
        int rc = read_new_lines(w);
        if (rc == 0 && last)
            return NULL;
        if (rc == 0)
            rc = weft_sleep(w->interval);
        if (rc == 0)
            rc = check_rotation(w);
        if (rc == -ECANCELED)
            return NULL; /* Ctrl-C, -t, or the other source failed */
        if (rc != 0)
            return weft_fail(rc, "following %s: %s", w->path, weft_errmsg());
    }
}

/* The command's task: react to each line of its stdout as it comes, then say how it
 * ended. */
static void *follow_command(void *arg)
{
    struct watch *w = arg;
    char text[4096 + 1];
    for (;;) {
        const char *line;
        ssize_t n = weft_stream_readline(weft_process_stdout(w->proc), &line);
        if (n == WEFT_ELIMIT) { /* longer than the stream's limit (64 KiB): in pieces */
            n = weft_stream_read(weft_process_stdout(w->proc), text, sizeof text - 1);
            line = text;
        }
        if (n == 0)
            break;
        if (n == -ECANCELED)
            return NULL;
        if (n < 0)
            return weft_fail((int)n, "reading the output of %s: %s", w->argv[0], weft_errmsg());
        /* The line is in the stream's buffer, without a NUL: copy it for regexec. */
        size_t len = (size_t)n < sizeof text - 1 ? (size_t)n : sizeof text - 1;
        memmove(text, line, len);
        text[len > 0 && text[len - 1] == '\n' ? len - 1 : len] = '\0';
        react(w, "command", w->argv[0], text);
    }
    /* End of its output; it has exited, or soon will. */
    int status;
    int rc = weft_process_wait(w->proc, &status);
    if (rc == -ECANCELED)
        return NULL;
    if (rc != 0)
        return weft_fail(rc, "waiting for %s: %s", w->argv[0], weft_errmsg());
    if (status >= 0)
        fprintf(stderr, "tail_react: %s exited with status %d\n", w->argv[0], status);
    else
        fprintf(stderr, "tail_react: %s was killed by signal %d (%s)\n", w->argv[0], -status, strsignal(-status));
    w->command_done = true;
    return NULL;
}

/* SIGTERM, then SIGKILL if the command still runs KILL_AFTER seconds later; waits for
 * it either way. */
static void stop_command(struct watch *w)
{
    int status;
    if (weft_process_returncode(w->proc, &status) == 1)
        return; /* it has exited already */
    (void)weft_process_terminate(w->proc);
    weft_timeout *grace = weft_timeout_enter(KILL_AFTER);
    int rc = grace ? weft_timeout_exit(grace, weft_process_wait(w->proc, &status)) : -ENOMEM;
    if (rc != 0) {
        (void)weft_process_kill(w->proc);
        rc = weft_process_wait(w->proc, &status);
    }
    if (rc == 0 && status < 0)
        fprintf(stderr, "tail_react: stopped %s (pid %d): %s\n", w->argv[0], weft_process_pid(w->proc),
                strsignal(-status));
    else if (rc == 0)
        fprintf(stderr, "tail_react: stopped %s (pid %d): it exited with status %d\n", w->argv[0],
                weft_process_pid(w->proc), status);
}

/* Opens FILE at its end and starts COMMAND. A failure is recorded with weft_fail
 * (the program's error) and returned. */
static int start(struct watch *w)
{
    struct stat st;
    w->fd = weft_file_open(w->path, O_RDONLY, 0);
    if (w->fd < 0) {
        weft_fail(w->fd, "tail_react: %s", weft_errmsg());
        return w->fd;
    }
    int rc = weft_file_fstat(w->fd, &st);
    if (rc == 0)
        w->offset = st.st_size; /* new lines only, as tail -n 0 -F */
    if (rc == 0 && w->argv) {
        weft_process_options opts = {.in = WEFT_STDIO_DEVNULL, .out = WEFT_STDIO_PIPE};
        w->proc = weft_create_subprocess_exec((const char *const *)w->argv, &opts);
        if (!w->proc) /* a missing program is this call's -ENOENT, naming it */
            rc = weft_errcode();
    }
    if (rc != 0) {
        weft_fail(rc, "tail_react: %s", weft_errmsg());
        close_file(w->fd);
        return rc;
    }
    if (w->proc)
        fprintf(stderr, "tail_react: following %s from byte %lld, and %s (pid %d)\n", w->path,
                (long long)w->offset, w->argv[0], weft_process_pid(w->proc));
    else
        fprintf(stderr, "tail_react: following %s from byte %lld\n", w->path, (long long)w->offset);
    return 0;
}

static void *tail_react_main(void *arg)
{
    struct watch *w = arg;
    int rc = start(w);
    if (rc != 0)
        return NULL; /* start recorded the error */

    /* The two sources run side by side in a group; -t bounds the whole of it. */
    weft_timeout *deadline = weft_timeout_enter(w->seconds > 0 ? w->seconds : WEFT_FOREVER);
    weft_group *g = deadline ? weft_group_new() : NULL;
    if (g) {
        rc = weft_group_spawn(g, follow_file, w) ? 0 : weft_errcode();
        if (rc == 0 && w->proc && !weft_group_spawn(g, follow_command, w))
            rc = weft_errcode();
        /* Ctrl-C or -t: the wait cancels both tasks, waits for them, and returns
         * -ECANCELED; -t's scope turns its own into -ETIMEDOUT. */
        rc = weft_group_wait(g, rc);
    } else {
        rc = weft_errcode();
    }
    char why[512] = "";
    if (rc == WEFT_EGROUP) /* a source failed (and the other was cancelled) */
        snprintf(why, sizeof why, "%s", weft_errgroup()->items[0].msg);
    weft_group_free(g);
    if (deadline)
        rc = weft_timeout_exit(deadline, rc);

    /* Ctrl-C left main cancelled: every wait would return -ECANCELED at once. Take the
     * cancellation back to stop the command and wait for it, then end cancelled, so
     * that weft_run still says WEFT_EINTERRUPTED. */
    bool interrupted = rc == -ECANCELED;
    if (interrupted)
        weft_uncancel();
    if (w->proc)
        stop_command(w);
    weft_process_free(w->proc);
    close_file(w->fd);
    if (interrupted)
        return weft_fail(-ECANCELED, "tail_react: interrupted");
    if (rc != 0 && rc != -ETIMEDOUT) /* -t's end is a normal one */
        return weft_fail(rc, "tail_react: %s", why[0] ? why : weft_errmsg());
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: tail_react [-i SECONDS] [-t SECONDS] [-x] PATTERN FILE [COMMAND [ARG...]]\n"
                "  Follows FILE (from its end, through truncation and rotation) and the output of\n"
                "  COMMAND, and prints an alert for each line that matches PATTERN (grep -E's).\n"
                "  -i SECONDS  how often to look at FILE (default 0.25)\n"
                "  -t SECONDS  stop after this long (default: run until Ctrl-C)\n"
                "  -x          stop once COMMAND has exited and FILE has been read to its end\n");
}

/* Seconds above 0, or -1. */
static double parse_seconds(const char *text)
{
    char *end;
    errno = 0;
    double s = strtod(text, &end);
    return end == text || *end || errno || !isfinite(s) || s <= 0 ? -1 : s;
}

int main(int argc, char **argv)
{
    static struct watch w = {.interval = 0.25, .fd = -1};
    int option;
    /* '+': options stop at PATTERN, so that COMMAND's own options stay its own. */
    while ((option = getopt(argc, argv, "+i:t:xh")) != -1) {
        switch (option) {
        case 'i':
        case 't':
            if (parse_seconds(optarg) < 0) {
                fprintf(stderr, "tail_react: -%c wants seconds above 0 (such as 0.5), not '%s'\n", option, optarg);
                usage(stderr);
                return 2;
            }
            *(option == 'i' ? &w.interval : &w.seconds) = parse_seconds(optarg);
            break;
        case 'x':
            w.until_exit = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind < 2 || (w.until_exit && argc - optind < 3)) {
        if (w.until_exit && argc - optind == 2)
            fprintf(stderr, "tail_react: -x needs a COMMAND to wait for\n");
        usage(stderr);
        return 2;
    }
    int err = regcomp(&w.pattern, argv[optind], REG_EXTENDED | REG_NOSUB);
    if (err) {
        char msg[256];
        regerror(err, &w.pattern, msg, sizeof msg);
        fprintf(stderr, "tail_react: bad pattern '%s': %s\n", argv[optind], msg);
        return 2;
    }
    w.path = argv[optind + 1];
    w.argv = argc - optind > 2 ? argv + optind + 2 : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0); /* alerts as they happen, even into a pipe */

    int rc = weft_run(tail_react_main, &w, NULL);
    regfree(&w.pattern);
    if (rc == WEFT_EINTERRUPTED)
        weft_exit_interrupted(); /* dies of SIGINT: status 130 in a shell */
    if (rc != 0) {
        fprintf(stderr, "%s\n", weft_errmsg());
        return 1;
    }
    return 0;
}
