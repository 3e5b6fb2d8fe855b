/* cmd_serve.c: `iclock serve`: runs the HTTP server (src/server.c) until
 * SIGTERM or SIGINT, checkpointing every --checkpoint-every seconds and
 * once more on the way out. The signal handler only writes to a pipe; the
 * main thread does the work, so nothing runs inside the library from a
 * handler. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void help(FILE *out)
{
    fputs("usage: iclock serve --data-dir DIR [options]\n"
          "\n"
          "Serves ranking over HTTP while it learns from the events posted to it\n"
          "(docs/SERVING.md):\n"
          "  POST /v1/rank              {\"user\", \"time\", \"tz\", \"items\": [{\"item\", fields}]}\n"
          "  POST /v1/events            [events of the log format]\n"
          "  GET  /v1/users/ID/clock    ?at=TIME&tz=MIN&format=json|svg\n"
          "  GET  /healthz, /metrics    (Prometheus text format)\n"
          "Acknowledged events are fsync'd to a journal under DIR first; DIR also\n"
          "holds checkpoints. A restart (also after kill -9) recovers everything.\n"
          "\n"
          "  --data-dir DIR          state directory (created if missing)\n"
          "  --config CFG            configuration (default: DIR/config.ini if present,\n"
          "                          else M.ini of --model, else built-in)\n"
          "  --model M               start from this trained model when DIR is empty\n"
          "  --port P                TCP port (default 8080; 0 = any free port)\n"
          "  --bind ADDR             address to listen on (default 127.0.0.1)\n"
          "  --max-body BYTES        request body limit (default 1048576)\n"
          "  --max-candidates N      items per rank request (default 1000)\n"
          "  --checkpoint-every S    seconds between checkpoints (default 60; 0 = only at exit)\n"
          "  --threads N             HTTP worker threads (default 4)\n"
          "  --quiet                 no notes on stderr\n"
          "\n"
          "The first line on stdout is \"listening on ADDR:PORT\". SIGTERM or SIGINT:\n"
          "a final checkpoint, then exit 0.\n",
          out);
}

typedef struct {
    const char *config, *model;
    ic_server_opts o;
    long checkpoint_every;
} serve_args;

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || errno || v < lo || v > hi)
        return cli_usage_error("serve", "%s: '%s' is not in %ld..%ld", opt, s, lo, hi);
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, serve_args *a)
{
    enum { O_DIR = 256, O_PORT, O_BIND, O_BODY, O_CAND, O_CKPT, O_THREADS, O_QUIET };
    static const struct option opts[] = {
        {"data-dir", required_argument, 0, O_DIR},   {"config", required_argument, 0, 'c'},
        {"model", required_argument, 0, 'm'},        {"port", required_argument, 0, O_PORT},
        {"bind", required_argument, 0, O_BIND},      {"max-body", required_argument, 0, O_BODY},
        {"max-candidates", required_argument, 0, O_CAND},
        {"checkpoint-every", required_argument, 0, O_CKPT},
        {"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    ic_server_opts_default(&a->o);
    a->o.port = 8080;
    a->checkpoint_every = 60;
    int c, rc = 0;
    long v = 0;
    while (!rc && (c = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (c) {
        case O_DIR: a->o.data_dir = optarg; break;
        case 'c': a->config = optarg; break;
        case 'm': a->model = optarg; break;
        case O_PORT: rc = parse_long("--port", optarg, 0, 65535, &v), a->o.port = (int)v; break;
        case O_BIND: a->o.bind = optarg; break;
        case O_BODY:
            rc = parse_long("--max-body", optarg, 64, 1L << 30, &v), a->o.max_body = (size_t)v;
            break;
        case O_CAND:
            rc = parse_long("--max-candidates", optarg, 1, 1000000, &v), a->o.max_candidates = (int)v;
            break;
        case O_CKPT: rc = parse_long("--checkpoint-every", optarg, 0, 86400 * 365, &a->checkpoint_every); break;
        case O_THREADS: rc = parse_long("--threads", optarg, 1, 256, &v), a->o.threads = (int)v; break;
        case O_QUIET: a->o.quiet = 1; break;
        case 'h': help(stdout); return -1;
        default: return cli_usage_error("serve", "unknown option");
        }
    }
    if (rc) return rc;
    if (optind < argc) return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (!a->o.data_dir) return cli_usage_error("serve", "--data-dir DIR is required");
    a->o.model = a->model;
    return 0;
}

/* --config, else the data dir's own config.ini, else the model's M.ini. */
static const char *config_path(const serve_args *a, char *buf, size_t cap)
{
    if (a->config) return a->config;
    snprintf(buf, cap, "%s/config.ini", a->o.data_dir);
    if (access(buf, R_OK) == 0) return buf;
    if (a->model) {
        snprintf(buf, cap, "%s.ini", a->model);
        if (access(buf, R_OK) == 0) return buf;
    }
    return NULL;
}

/* SIGTERM and SIGINT write their number into a pipe that the main thread
 * polls. A handler, not a blocked mask and sigwait: threads that exist
 * before main runs (OpenBLAS starts its pool in a constructor) do not
 * inherit a mask, and a process signal may land on any of them. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    if (write(sig_pipe[1], &b, 1) < 0) { /* the pipe is full: a signal is pending anyway */ }
    errno = saved;
}

static int catch_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Waits for SIGTERM/SIGINT, checkpointing every `every` seconds meanwhile.
 * Returns the signal. */
static int wait_for_signal(ic_server *s, long every, int quiet)
{
    for (;;) {
        struct pollfd p = {sig_pipe[0], POLLIN, 0};
        long ms = every > 0 ? every * 1000 : 3600 * 1000;
        int rc = poll(&p, 1, (int)(ms > INT_MAX ? INT_MAX : ms));
        unsigned char b;
        if (rc > 0 && read(sig_pipe[0], &b, 1) == 1) return b;
        if (rc == 0 && every > 0) {
            ic_error err = {{0}};
            if (ic_server_checkpoint(s, &err) != IC_OK)
                fprintf(stderr, "iclock serve: checkpoint failed (will retry): %s\n", err.msg);
            else if (!quiet)
                fprintf(stderr, "iclock serve: checkpoint written\n");
        }
    }
}

int cmd_serve(int argc, char **argv)
{
    serve_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    char buf[1024];
    ic_config cfg;
    if ((rc = cli_load_config("serve", config_path(&a, buf, sizeof buf), &cfg))) return rc;
    openblas_set_num_threads(1); /* requests and the trainer are the parallelism */

    if (catch_signals() != 0) {
        fprintf(stderr, "iclock serve: cannot install signal handlers: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }

    ic_error err = {{0}};
    ic_server *s = NULL;
    ic_status st = ic_server_start(&s, &cfg, &a.o, &err);
    if (st != IC_OK) return cli_fail("serve", st, &err);
    printf("listening on %s%s%s:%d\n", strchr(a.o.bind, ':') ? "[" : "", a.o.bind,
           strchr(a.o.bind, ':') ? "]" : "", ic_server_port(s));
    fflush(stdout);

    int sig = wait_for_signal(s, a.checkpoint_every, a.o.quiet);
    if (!a.o.quiet) fprintf(stderr, "iclock serve: %s: checkpointing and stopping\n", strsignal(sig));
    st = ic_server_stop(s, &err);
    if (st != IC_OK) return cli_fail("serve", st, &err);
    return EXIT_OK;
}
