/*
 * parallel — run many shell commands, at most N at a time (as `xargs -P N` does), print
 * each line of their output as it comes, prefixed with the command's number, and end
 * with a summary of how each one exited.
 *
 *   usage: parallel [-P N] [-t SECONDS] [COMMAND...]
 *
 * Each COMMAND is a line for /bin/sh -c; without any, the commands are read from
 * standard input, one per line (empty lines and lines starting with '#' skipped). A
 * command's stdout lines go to stdout and its stderr lines to stderr, each as "[3] the
 * line": whole lines only, never two commands' bytes in one line. With -t, a command
 * still running after SECONDS gets SIGTERM, and SIGKILL 2 s later if that did not end
 * it. Exit status: 0 when every command exited with status 0, 1 if any failed (an exit
 * status, a signal, a timeout, a command that could not start), 2 for bad usage. On
 * Ctrl-C the running commands are killed and parallel dies of SIGINT, as a shell
 * expects.
 *
 * The weft in it: main spawns a task per command into a task group once a semaphore
 * grants a permit (N permits: -P); the task starts the command with
 * weft_create_subprocess_shell, copies its two pipes line by line in two tasks of a
 * group of its own, and waits for it, all inside a timeout scope (-t).
 */
#define _GNU_SOURCE /* getline, strsignal, sysconf(_SC_NPROCESSORS_ONLN) */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#define KILL_AFTER 2.0 /* seconds between -t's SIGTERM and its SIGKILL */

/* What main() read from the command line and stdin. */
struct program {
    char **commands;
    int count;
    long limit;     /* -P */
    double timeout; /* -t, or 0 for none */
    int failed;     /* how many commands failed: the exit status */
};

struct run {
    weft_sem *slots; /* -P: a permit per command that may run now */
    double timeout;
};

/* One command, and what became of it. */
struct job {
    struct run *run;
    int number; /* 1-based: the prefix of its lines */
    const char *command;
    bool started, exited;
    int returncode;       /* once exited: the exit status, or -N for signal N */
    const char *timed_out; /* NULL, or how -t ended it: "SIGTERM" or "SIGKILL" */
    char error[256];       /* why it could not run, or "" */
};

/* A pipe of the child and where its lines go. */
struct relay {
    struct job *job;
    weft_stream *from;
    FILE *to;
};

/* Copies one pipe, a line at a time, each line prefixed and written whole. Our output
 * is line-buffered stdio on the loop's thread: a line is written before any other task
 * runs, so lines cannot mix; and if whoever reads our output is slow, the loop waits
 * for it, the pipes fill, and the commands wait too. */
static void *relay_lines(void *arg)
{
    struct relay *r = arg;
    char piece[4096];
    for (;;) {
        const char *line;
        ssize_t n = weft_stream_readline(r->from, &line);
        if (n == WEFT_ELIMIT) { /* longer than the stream's limit (64 KiB): pass it on in pieces */
            n = weft_stream_read(r->from, piece, sizeof piece);
            line = piece;
        }
        if (n == 0)
            return NULL;
        if (n < 0)
            return weft_fail((int)n, "reading its output: %s", weft_errmsg());
        fprintf(r->to, "[%d] ", r->job->number);
        fwrite(line, 1, (size_t)n, r->to);
        if (line[n - 1] != '\n') /* a last line without one, or a piece of a long line */
            fputc('\n', r->to);
    }
}

/* Relays stdout and stderr to their ends (two tasks, so neither pipe can fill up while
 * the other is read), then waits for the child to exit. */
static int relay_and_wait(struct job *job, weft_process *p)
{
    struct relay out = {job, weft_process_stdout(p), stdout};
    struct relay err = {job, weft_process_stderr(p), stderr};
    weft_group *g = weft_group_new();
    if (!g)
        return weft_errcode();
    int rc = 0;
    if (!weft_group_spawn(g, relay_lines, &out) || !weft_group_spawn(g, relay_lines, &err))
        rc = weft_errcode();
    /* Even when cancelled (-t, Ctrl-C), the group waits for both relays to end. */
    rc = weft_group_wait(g, rc);
    if (rc == WEFT_EGROUP) /* a relay failed; the message is its own */
        snprintf(job->error, sizeof job->error, "%s", weft_errgroup()->items[0].msg);
    weft_group_free(g);
    if (rc == 0)
        rc = weft_process_wait(p, &job->returncode);
    return rc;
}

/* -t's end of a command: SIGTERM, and SIGKILL if it still runs KILL_AFTER seconds later. */
static void stop(struct job *job, weft_process *p)
{
    job->timed_out = "SIGTERM";
    (void)weft_process_terminate(p); /* -ESRCH if it has just exited: the wait sees it */
    weft_timeout *grace = weft_timeout_enter(KILL_AFTER);
    int rc = grace ? weft_timeout_exit(grace, weft_process_wait(p, &job->returncode)) : -ENOMEM;
    if (rc != 0 && rc != -ECANCELED) {
        job->timed_out = "SIGKILL";
        (void)weft_process_kill(p);
        rc = weft_process_wait(p, &job->returncode);
    }
    job->exited = rc == 0;
}

/* A task per command, spawned once it holds a permit: run the command, give the
 * permit back. */
static void *run_command(void *arg)
{
    struct job *job = arg;
    /* stdin is /dev/null: the commands must not read ours, which may hold the list of
     * commands. A command the shell cannot find is the shell's exit status 127. */
    weft_process_options opts = {.in = WEFT_STDIO_DEVNULL, .out = WEFT_STDIO_PIPE, .err = WEFT_STDIO_PIPE};
    weft_process *p = weft_create_subprocess_shell(job->command, &opts);
    if (!p) {
        if (weft_errcode() != -ECANCELED) /* Ctrl-C during the start, which kills its child */
            snprintf(job->error, sizeof job->error, "could not start: %s", weft_errmsg());
        weft_sem_release(job->run->slots);
        return NULL;
    }

    /* asyncio.timeout(t): at the deadline, whatever the task waits in gives -ECANCELED,
     * and leaving the scope turns that into -ETIMEDOUT. */
    weft_timeout *limit = weft_timeout_enter(job->run->timeout > 0 ? job->run->timeout : WEFT_FOREVER);
    int rc = limit ? weft_timeout_exit(limit, relay_and_wait(job, p)) : weft_errcode();
    if (rc == 0)
        job->exited = true;
    else if (rc == -ETIMEDOUT)
        stop(job, p);
    else if (rc != -ECANCELED && !job->error[0])
        snprintf(job->error, sizeof job->error, "%s", weft_errmsg());
    /* A command still running here (Ctrl-C, or a pipe that failed) is killed with
     * SIGKILL; weft reaps it, at the latest before weft_run returns. */
    weft_process_free(p);
    weft_sem_release(job->run->slots);
    return NULL;
}

/* How a command ended, in words, or NULL when it succeeded. */
static const char *failure(const struct job *job, double timeout, char *buf, size_t size)
{
    if (job->error[0])
        return job->error;
    if (!job->started)
        return "not started (Ctrl-C)";
    if (job->timed_out)
        snprintf(buf, size, "timed out after %g s: ended by %s", timeout, job->timed_out);
    else if (!job->exited)
        return "stopped (Ctrl-C)";
    else if (job->returncode < 0)
        snprintf(buf, size, "killed by signal %d (%s)", -job->returncode, strsignal(-job->returncode));
    else if (job->returncode == 127)
        snprintf(buf, size, "exit status 127 (command not found)");
    else if (job->returncode == 126)
        snprintf(buf, size, "exit status 126 (not executable)");
    else if (job->returncode > 0)
        snprintf(buf, size, "exit status %d", job->returncode);
    else
        return NULL;
    return buf;
}

/* The summary, on stderr; returns the number of commands that failed. */
static int summarize(const struct job *jobs, int count, double timeout)
{
    int failed = 0;
    char buf[160];
    for (int i = 0; i < count; i++)
        failed += failure(&jobs[i], timeout, buf, sizeof buf) != NULL;
    const char *s = count == 1 ? "" : "s";
    if (!failed) {
        fprintf(stderr, "parallel: %d command%s, all succeeded\n", count, s);
        return 0;
    }
    fprintf(stderr, "parallel: %d command%s: %d succeeded, %d failed:\n", count, s, count - failed, failed);
    for (int i = 0; i < count; i++) {
        const char *why = failure(&jobs[i], timeout, buf, sizeof buf);
        if (why)
            fprintf(stderr, "  [%d] %s: %.60s%s\n", jobs[i].number, why, jobs[i].command,
                    strlen(jobs[i].command) > 60 ? "..." : "");
    }
    return failed;
}

static void *parallel_main(void *arg)
{
    struct program *prog = arg;
    struct run run = {.slots = weft_sem_new(prog->limit), .timeout = prog->timeout};
    struct job *jobs = calloc((size_t)prog->count, sizeof *jobs);
    weft_group *g = run.slots && jobs ? weft_group_new() : NULL;
    if (!g) {
        weft_sem_free(run.slots);
        free(jobs);
        return weft_fail(-ENOMEM, "parallel: out of memory for %d commands", prog->count);
    }
    /* A command's task is spawned once a permit is free (asyncio's `async with sem:`
     * in a loop), so only N tasks exist at a time, however many commands there are. */
    for (int i = 0; i < prog->count; i++)
        jobs[i] = (struct job){.run = &run, .number = i + 1, .command = prog->commands[i]};
    int rc = 0;
    for (int i = 0; i < prog->count && rc == 0; i++) {
        rc = weft_sem_acquire(run.slots); /* -ECANCELED on Ctrl-C */
        if (rc == 0 && !weft_group_spawn(g, run_command, &jobs[i]))
            rc = weft_errcode();
        jobs[i].started = rc == 0;
    }
    /* Waits for the commands still running; on Ctrl-C (rc or this wait -ECANCELED) it
     * cancels them first, and still waits for their tasks to end. */
    rc = weft_group_wait(g, rc);
    weft_group_free(g);
    prog->failed = summarize(jobs, prog->count, prog->timeout);
    free(jobs);
    weft_sem_free(run.slots);
    if (rc != 0)
        return weft_fail(rc, "parallel: %s", weft_errmsg());
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: parallel [-P N] [-t SECONDS] [COMMAND...]\n"
                "  Runs each COMMAND with /bin/sh -c, at most N at a time, and prints their output\n"
                "  line by line, each line prefixed with its command's number: \"[3] ...\".\n"
                "  Without COMMANDs, reads them from standard input, one per line.\n"
                "  -P N        run at most N commands at once (default: the number of CPUs)\n"
                "  -t SECONDS  end a command that runs longer: SIGTERM, then SIGKILL 2 s later\n"
                "  Exit status: 0 if every command succeeded, 1 if any failed, 2 for bad usage.\n");
}

/* The commands of standard input, one per line, read before the loop starts: nothing
 * else would run meanwhile, and a Ctrl-C at a terminal still ends the program. */
static int read_commands(struct program *prog)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t n;
    int room = 0;
    while ((n = getline(&line, &size, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if (prog->count == room) {
            room = room ? 2 * room : 64;
            char **more = realloc(prog->commands, (size_t)room * sizeof *more);
            if (!more)
                break;
            prog->commands = more;
        }
        if (!(prog->commands[prog->count] = strdup(line)))
            break;
        prog->count++;
    }
    int err = ferror(stdin) ? errno : n >= 0 ? ENOMEM : 0;
    free(line);
    return err;
}

static void free_commands(struct program *prog)
{
    for (int i = 0; i < prog->count; i++)
        free(prog->commands[i]);
    free(prog->commands);
}

int main(int argc, char **argv)
{
    struct program prog = {.limit = sysconf(_SC_NPROCESSORS_ONLN)};
    if (prog.limit < 1)
        prog.limit = 1;
    int option;
    /* '+': options stop at the first command, whose own words may start with '-'. */
    while ((option = getopt(argc, argv, "+P:t:h")) != -1) {
        char *end;
        switch (option) {
        case 'P':
            errno = 0;
            prog.limit = strtol(optarg, &end, 10);
            if (end == optarg || *end || errno || prog.limit < 1 || prog.limit > 100000) {
                fprintf(stderr, "parallel: -P wants a number of commands from 1 up, not '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 't':
            errno = 0;
            prog.timeout = strtod(optarg, &end);
            if (end == optarg || *end || errno || !isfinite(prog.timeout) || prog.timeout <= 0) {
                fprintf(stderr, "parallel: -t wants seconds above 0 (such as 2.5), not '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    bool from_stdin = optind == argc;
    if (from_stdin) {
        int err = read_commands(&prog);
        if (err) {
            fprintf(stderr, "parallel: reading the commands from standard input: %s\n", strerror(err));
            free_commands(&prog);
            return 1;
        }
    } else {
        prog.commands = argv + optind;
        prog.count = argc - optind;
    }
    /* Line by line even into a pipe or a file: the lines are the point. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    int rc = 0;
    if (prog.count == 0)
        fprintf(stderr, "parallel: no commands\n");
    else
        rc = weft_run(parallel_main, &prog, NULL);
    if (from_stdin)
        free_commands(&prog);
    if (rc == WEFT_EINTERRUPTED)
        weft_exit_interrupted(); /* dies of SIGINT, so a script running it stops too */
    if (rc != 0) {
        fprintf(stderr, "%s\n", weft_errmsg());
        return 1;
    }
    return prog.failed ? 1 : 0;
}
