/*
 * idle_conns.c — bytes per idle connection of a weft server (issue 12): a server whose
 * N connections (default 10,000) each have a handler task waiting in weft_stream_read,
 * measured as the growth of the server process's VmRSS from before the clients connect
 * to when every handler is waiting, divided by N. Run for default tasks and for compact
 * tasks (weft_server_options.task.compact = 1), each in a fresh process.
 * usage: idle_conns [N]
 * prints: idle_conns weft|weft-compact conns=N rss_before_kb=.. rss_after_kb=.. bytes_per_conn=..
 *
 * The clients live in a forked child (plain blocking sockets), so the server's RSS holds
 * only the server side; kernel socket buffers are not in RSS. RLIMIT_NOFILE is raised to
 * its hard limit first: N connections need N descriptors on each side.
 */
#define _DEFAULT_SOURCE /* kill, for the client child */
#include "bench_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

static long conns;
static long waiting; /* handlers started and not returned */
static int compact;

static long vm_rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* The client child: N blocking connects, then it waits to be killed. */
static void clients(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("idle_conns client");
            _exit(1);
        }
    }
    pause();
    _exit(0);
}

static void *handler(weft_stream *s, void *arg) {
    (void)arg;
    char buf[64];
    waiting++;
    ssize_t n;
    do
        n = weft_stream_read(s, buf, sizeof buf);
    while (n > 0);
    waiting--;
    if (weft_stream_close(s) != 0)
        return NULL;
    return NULL;
}

static void *bench_main(void *arg) {
    const char *prog = arg;
    weft_server_options opts = {.backlog = 1024};
    opts.task.compact = compact;
    weft_server *srv = weft_start_server(handler, NULL, "127.0.0.1", 0, &opts);
    if (!srv)
        bench_die(prog, "weft_start_server: %s", weft_errmsg());
    long before = vm_rss_kb();
    pid_t child = fork();
    if (child == 0)
        clients(weft_server_port(srv));
    if (child < 0)
        bench_die(prog, "fork failed");
    double deadline = bench_now() + 120;
    while (waiting < conns && bench_now() < deadline)
        if (weft_sleep(0.01) != 0)
            break;
    long after = vm_rss_kb();
    long reached = waiting;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    weft_server_close(srv);
    if (weft_server_wait_closed(srv) != 0)
        bench_die(prog, "weft_server_wait_closed: %s", weft_errmsg());
    if (reached != conns)
        bench_die(prog, "only %ld of %ld connections reached their handler", reached, conns);
    printf("idle_conns %s conns=%ld rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
           compact ? "weft-compact" : "weft", conns, before, after, (double)(after - before) * 1024 / (double)conns);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv) {
    bench_stdout_setup();
    conns = bench_arg_n(argc, argv, 10000, 1000000L);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Each kind in a fresh process, so neither inherits the other's pools. */
    for (compact = 0; compact <= 1; compact++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int err = weft_run(bench_main, argv[0], NULL);
            if (err != 0)
                bench_die(argv[0], "weft_run: %s (%s)", weft_errname(err), weft_errmsg());
            exit(0);
        }
        int status = 1;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    return 0;
}
