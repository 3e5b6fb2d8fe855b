/* test_server.c: the HTTP server as a client sees it. Starts the real
 * binary ($ICLOCK_BIN serve --port 0, a temporary data dir), talks HTTP/1.1
 * to it over a socket (a tiny client below; no libcurl here), and checks
 * ranking, events and clocks, every kind of bad input, metrics, a clean
 * SIGTERM restart, and recovery after kill -9 (also with a torn journal
 * tail). Expected clocks are computed here from the events sent, with the
 * default config's weights (like 1, finish 1, skip -1, dislike -1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 1693526400LL /* 2023-09-01T00:00:00Z */
#define MAX_KIDS 8

/* ---- Servers ---------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
} server;

static pid_t kids[MAX_KIDS];
static char data_dir[64];

static const char *bin(void)
{
    const char *b = getenv("ICLOCK_BIN");
    if (!b) {
        fprintf(stderr, "test_server: ICLOCK_BIN is not set (make test sets it); skipping\n");
        skip();
    }
    return b;
}

/* Starts `iclock serve` on dir with up to two extra arguments (NULL for
 * none) and reads its "listening on ADDR:PORT" line. */
static server start_in(const char *dir, const char *a1, const char *a2)
{
    const char *b = bin();
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(b, b, "serve", "--data-dir", dir, "--port", "0", "--quiet",
              "--checkpoint-every", "0", a1, a2, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    for (int i = 0; i < MAX_KIDS; i++)
        if (!kids[i]) {
            kids[i] = pid;
            break;
        }
    char line[256] = {0};
    size_t n = 0;
    struct pollfd p = {fd[0], POLLIN, 0};
    while (n < sizeof line - 1 && !strchr(line, '\n')) {
        if (poll(&p, 1, 20000) != 1) break;
        ssize_t r = read(fd[0], line + n, sizeof line - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd[0]);
    server s = {pid, 0};
    const char *colon = strrchr(line, ':');
    assert_true(strncmp(line, "listening on 127.0.0.1:", 23) == 0 && colon);
    s.port = atoi(colon + 1);
    assert_true(s.port > 0);
    return s;
}

static server start(const char *a1, const char *a2) { return start_in(data_dir, a1, a2); }

/* Sends sig and returns the exit status (or 128 + signal). */
static int stop(server *s, int sig)
{
    kill(s->pid, sig);
    int st = 0;
    assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i] == s->pid) kids[i] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int setup(void **state)
{
    (void)state;
    snprintf(data_dir, sizeof data_dir, "/tmp/iclock-test-server-XXXXXX");
    return mkdtemp(data_dir) ? 0 : -1;
}

/* Kills what a failed test left running and removes the data dir. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_KIDS; i++)
        if (kids[i]) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
            kids[i] = 0;
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- A tiny HTTP/1.1 client ----------------------------------------------------- */

typedef struct {
    int status;
    char *head, *body; /* body NUL-terminated; head holds the headers */
    size_t body_len;
} response;

static void response_free(response *r)
{
    free(r->head);
    r->head = r->body = NULL;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return; /* the server may close early (413) */
        p += w, n -= (size_t)w;
    }
}

/* One request on a fresh connection (Connection: close); the reply is
 * read to EOF. content_length < 0: the body's length. */
static response http(int port, const char *method, const char *path, const char *body,
                     long content_length)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %ld\r\n\r\n",
                      method, path, content_length >= 0 ? content_length : (long)blen);
    send_all(fd, head, (size_t)hn);
    if (blen) send_all(fd, body, blen);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    response resp = {0};
    resp.head = buf;
    assert_true(sscanf(buf, "HTTP/1.1 %d", &resp.status) == 1);
    char *sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    *sep = '\0';
    resp.body = sep + 4;
    resp.body_len = n - (size_t)(resp.body - buf);
    return resp;
}

static cJSON *http_json(int port, const char *method, const char *path, const char *body,
                        int want_status)
{
    response r = http(port, method, path, body, -1);
    if (r.status != want_status)
        fail_msg("%s %s: status %d, wanted %d: %s", method, path, r.status, want_status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    if (!j) fail_msg("%s %s: reply is not JSON: %s", method, path, r.body);
    response_free(&r);
    return j;
}

/* A 4xx reply with {"error": "..."} whose message contains want. */
static void expect_error(int port, const char *method, const char *path, const char *body,
                         int status, const char *want)
{
    cJSON *j = http_json(port, method, path, body, status);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    assert_true(cJSON_IsString(e));
    if (!strstr(e->valuestring, want))
        fail_msg("%s %s: error \"%s\" does not mention \"%s\"", method, path, e->valuestring, want);
    cJSON_Delete(j);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* ---- Events and expected clocks ---------------------------------------------------- */

static const char *const GENRES[3] = {"pop", "rock", "jazz"};
#define N_USERS 4

/* Expected scores per user, local hour (tz 0) and genre. */
typedef struct {
    double score[N_USERS][24][3];
    int n;
} expect;

/* Appends event k (deterministic) to buf as JSON and into e. */
static void make_event(int k, int64_t ts, expect *e, char *buf, size_t cap)
{
    int u = k % N_USERS, g = (k / N_USERS + k / 7) % 3;
    int finish = k % 3 != 0, like = k % 5 == 0, skip = !finish, dislike = k % 11 == 0;
    snprintf(buf, cap,
             "{\"ts\": %lld, \"user\": \"u%d\", \"item\": \"i%d\", \"tz\": 0, \"genre\": \"%s\", "
             "\"mood\": \"calm\", \"lang\": \"en\", \"finish\": %d, \"like\": %d, \"skip\": %d, "
             "\"dislike\": %d}",
             (long long)ts, u, k % 17, GENRES[g], finish, like, skip, dislike);
    int h = (int)((ts % 86400) / 3600);
    e->score[u][h][g] += like + finish - skip - dislike;
    e->n++;
}

/* Posts events k0..k1-1 at T0 + 97 s * k in one batch; all must be accepted. */
static void post_events(int port, int k0, int k1, expect *e)
{
    size_t cap = (size_t)(k1 - k0) * 256 + 16;
    char *body = malloc(cap), one[256];
    strcpy(body, "[");
    for (int k = k0; k < k1; k++) {
        make_event(k, T0 + 97LL * k, e, one, sizeof one);
        if (k > k0) strcat(body, ",");
        strcat(body, one);
    }
    strcat(body, "]");
    cJSON *j = http_json(port, "POST", "/v1/events", body, 200);
    assert_int_equal((int)num(j, "accepted"), k1 - k0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rejected")), 0);
    cJSON_Delete(j);
    free(body);
}

static cJSON *get_clock(int port, const char *user, int64_t at)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/users/%s/clock?at=%lld", user, (long long)at);
    return http_json(port, "GET", path, NULL, 200);
}

/* Every user's clock at `at` holds exactly the positive expected scores. */
static void check_clocks(int port, const expect *e, int64_t at)
{
    for (int u = 0; u < N_USERS; u++) {
        char user[16];
        snprintf(user, sizeof user, "u%d", u);
        cJSON *c = get_clock(port, user, at);
        const cJSON *hours = cJSON_GetObjectItem(c, "hours");
        assert_int_equal(cJSON_GetArraySize(hours), 24);
        for (int h = 0; h < 24; h++) {
            const cJSON *g = cJSON_GetObjectItem(cJSON_GetArrayItem(hours, h), "genre");
            int want = 0;
            for (int k = 0; k < 3; k++) want += e->score[u][h][k] > 0;
            assert_int_equal(cJSON_GetArraySize(g), want);
            for (const cJSON *x = g ? g->child : NULL; x; x = x->next) {
                const char *v = cJSON_GetObjectItem(x, "value")->valuestring;
                int k = 0;
                while (k < 3 && strcmp(v, GENRES[k])) k++;
                assert_true(k < 3);
                assert_true(fabs(num(x, "score") - e->score[u][h][k]) < 1e-9);
            }
        }
        cJSON_Delete(c);
    }
}

static double healthz(int port, const char *key)
{
    cJSON *j = http_json(port, "GET", "/healthz", NULL, 200);
    double v = num(j, key);
    cJSON_Delete(j);
    return v;
}

/* Waits (up to 20 s) for the trainer to drain its queue. */
static void wait_trained(int port)
{
    for (int i = 0; i < 400 && healthz(port, "train_queue") > 0; i++) usleep(50000);
    assert_true(healthz(port, "train_queue") == 0);
}

/* ---- Tests ------------------------------------------------------------------------- */

static const char *RANK =
    "{\"user\": \"%s\", \"time\": %lld, \"tz\": 0, \"items\": ["
    "{\"item\": \"i1\", \"genre\": \"pop\", \"mood\": \"calm\", \"lang\": \"en\"},"
    "{\"item\": \"new-item\", \"genre\": [\"rock\", \"jazz\"]},"
    "{\"item\": \"i2\", \"genre\": \"jazz|pop\", \"lang\": \"fr\"},"
    "{\"item\": \"i3\"}]}";

/* The order lists every item once, by the main task's score descending. */
static void check_ranking(const cJSON *j, int n)
{
    const cJSON *scores = cJSON_GetObjectItem(j, "scores"), *order = cJSON_GetObjectItem(j, "order");
    assert_int_equal(cJSON_GetArraySize(scores), n);
    assert_int_equal(cJSON_GetArraySize(order), n);
    double prev = INFINITY;
    int seen[16] = {0};
    for (const cJSON *o = order->child; o; o = o->next) {
        int found = -1, i = 0;
        for (const cJSON *s = scores->child; s; s = s->next, i++)
            if (!strcmp(cJSON_GetObjectItem(s, "item")->valuestring, o->valuestring) && !seen[i]) {
                found = i;
                break;
            }
        assert_true(found >= 0);
        seen[found] = 1;
        const cJSON *s = cJSON_GetArrayItem(scores, found);
        double p = num(s, "finish"), l = num(s, "like");
        assert_true(p > 0 && p < 1 && l > 0 && l < 1);
        assert_true(p <= prev);
        prev = p;
    }
}

static void test_rank_cold_start(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    char body[1024];
    snprintf(body, sizeof body, RANK, "nobody", T0);
    cJSON *j = http_json(s.port, "POST", "/v1/rank", body, 200);
    check_ranking(j, 4);
    /* A fresh model embeds unseen ids as zero: all four tie (test_metrics
     * checks the order with distinct scores). Request order is kept. */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "scores"), 1),
                                            "item")->valuestring, "new-item");
    cJSON_Delete(j);
    /* No time: now. No candidates: empty lists. */
    j = http_json(s.port, "POST", "/v1/rank", "{\"user\": \"x\", \"items\": []}", 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "order")), 0);
    cJSON_Delete(j);
    assert_int_equal(stop(&s, SIGTERM), 0);
}

static void test_events_change_clock(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    expect e = {0};
    cJSON *c = get_clock(s.port, "u1", T0 + 3600);
    assert_string_equal(cJSON_GetObjectItem(c, "mode")->valuestring, "realtime");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(
                         cJSON_GetArrayItem(cJSON_GetObjectItem(c, "hours"), 0), "genre")), 0);
    cJSON_Delete(c);
    post_events(s.port, 0, 40, &e);
    /* Seen at once, by the next request. */
    check_clocks(s.port, &e, T0 + 97LL * 40);

    /* ISO time and one out of order: accepted and rejected with a reason. */
    const char *mixed =
        "[{\"ts\": \"2023-09-01T03:30:00+01:00\", \"user\": \"u9\", \"item\": \"a\", \"genre\": \"pop\", \"like\": 1},"
        " {\"ts\": 1693526400, \"user\": \"u9\", \"item\": \"b\", \"genre\": \"rock\", \"like\": 1}]";
    cJSON *j = http_json(s.port, "POST", "/v1/events", mixed, 200);
    assert_int_equal((int)num(j, "accepted"), 1);
    const cJSON *rej = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rejected"), 0);
    assert_int_equal((int)num(rej, "index"), 1);
    assert_non_null(strstr(cJSON_GetObjectItem(rej, "error")->valuestring, "earlier than"));
    cJSON_Delete(j);
    /* An event far ahead of the server's clock would block every later one. */
    char future[200];
    snprintf(future, sizeof future, "[{\"ts\": %lld, \"user\": \"u9\", \"item\": \"c\"}]",
             (long long)time(NULL) + 3 * 86400);
    j = http_json(s.port, "POST", "/v1/events", future, 200);
    assert_int_equal((int)num(j, "accepted"), 0);
    rej = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rejected"), 0);
    assert_non_null(strstr(cJSON_GetObjectItem(rej, "error")->valuestring, "ahead of the server's clock"));
    cJSON_Delete(j);
    /* 02:30Z is local hour 2 at the default tz 0: pop 1 there, no rock. */
    c = get_clock(s.port, "u9", T0 + 9600);
    const cJSON *h1 = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "hours"), 2);
    const cJSON *g = cJSON_GetObjectItem(h1, "genre");
    assert_int_equal(cJSON_GetArraySize(g), 1);
    assert_string_equal(cJSON_GetObjectItem(g->child, "value")->valuestring, "pop");
    assert_true(num(g->child, "score") == 1);
    cJSON_Delete(c);
    /* The SVG dial answers too. */
    response r = http(s.port, "GET", "/v1/users/u9/clock?format=svg&at=1693536000", NULL, -1);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "image/svg+xml"));
    assert_non_null(strstr(r.body, "<svg"));
    response_free(&r);
    assert_int_equal(stop(&s, SIGTERM), 0);
}

static void test_bad_input(void **state)
{
    (void)state;
    server s = start("--max-body=4096", "--max-candidates=3");
    int p = s.port;
    expect e = {0};
    post_events(p, 0, 8, &e);
    double applied = healthz(p, "events_applied");

    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"items\": [", 400, "malformed JSON at line 1");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\"} x", 400, "unexpected text");
    expect_error(p, "POST", "/v1/rank", "", 400, "empty body");
    expect_error(p, "POST", "/v1/rank", "[1]", 400, "expected an object");
    expect_error(p, "POST", "/v1/rank", "{\"items\": []}", 400, "user: missing");
    expect_error(p, "POST", "/v1/rank", "{\"user\": 7, \"items\": []}", 400, "send ids as strings");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\"}", 400, "items: missing");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"items\": {}}", 400, "items: expected an array");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"items\": [{\"item\": \"a\"}, {\"genre\": \"pop\"}]}",
                 400, "items[1].item: missing");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"items\": [{\"item\": \"a\", \"genre\": 3}]}",
                 400, "items[0].genre: expected a string or an array");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"items\": [{\"item\": \"a\", \"gnre\": \"x\"}]}",
                 400, "items[0].gnre: unknown key");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"time\": \"soon\", \"items\": []}", 400,
                 "time: \"soon\" is not a time");
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"tz\": 5000, \"items\": []}", 400, "tz:");
    expect_error(p, "POST", "/v1/rank",
                 "{\"user\": \"u\", \"items\": [{\"item\": \"a\"}, {\"item\": \"b\"}, {\"item\": \"c\"}, {\"item\": \"d\"}]}",
                 400, "4 candidates, more than the limit of 3");
    /* The store keeps one day of history: older requests are refused, not crashes. */
    expect_error(p, "POST", "/v1/rank", "{\"user\": \"u\", \"time\": 1000, \"items\": [{\"item\": \"a\"}]}",
                 400, "more than a day before");
    expect_error(p, "GET", "/v1/users/u1/clock?at=1000", NULL, 400, "more than a day before");
    expect_error(p, "GET", "/v1/users/u1/clock?format=png", NULL, 400, "format");

    expect_error(p, "POST", "/v1/events", "{\"ts\": 1}", 400, "expected a JSON array");
    expect_error(p, "POST", "/v1/events",
                 "[{\"ts\": 1693600000, \"user\": \"u1\", \"item\": \"a\"}, {\"user\": \"u1\", \"item\": \"b\"}]",
                 400, "events[1].ts: missing");
    expect_error(p, "POST", "/v1/events", "[{\"ts\": 1693600000, \"user\": \"u1\", \"item\": \"a\", \"like\": \"yes\"}]",
                 400, "events[0].like: expected a number");
    expect_error(p, "POST", "/v1/events", "[{\"ts\": 1693600000, \"user\": \"u1\", \"item\": \"a\", \"finish\": 2}]",
                 400, "events[0].finish: a label must lie in [0, 1]");
    expect_error(p, "POST", "/v1/events", "[{\"ts\": 1693600000.5, \"user\": \"u1\", \"item\": \"a\"}]",
                 400, "events[0].ts:");
    expect_error(p, "POST", "/v1/events", "[{\"ts\": 1693600000, \"user\": \"u1\", \"item\": \"a\", \"genre\": \"a||b\"}]",
                 400, "empty value");
    /* A malformed batch is refused whole: nothing of it was applied. */
    assert_true(healthz(p, "events_applied") == applied);

    char *big = malloc(6000);
    memset(big, ' ', 5999);
    big[5999] = '\0';
    big[0] = '[', big[5998] = ']';
    expect_error(p, "POST", "/v1/events", big, 413, "larger than the limit of 4096");
    free(big);

    expect_error(p, "GET", "/v2/rank", NULL, 404, "no such endpoint");
    expect_error(p, "GET", "/v1/users//clock", NULL, 404, "no such endpoint");
    expect_error(p, "GET", "/v1/rank", NULL, 405, "use POST");
    expect_error(p, "DELETE", "/v1/events", NULL, 405, "use POST");
    expect_error(p, "POST", "/healthz", "{}", 405, "use GET");
    response r = http(p, "PUT", "/metrics", NULL, -1);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.head, "Allow: GET"));
    response_free(&r);

    /* Still up, state intact. */
    assert_true(healthz(p, "events_applied") == applied);
    check_clocks(p, &e, T0 + 97LL * 8);
    assert_int_equal(stop(&s, SIGTERM), 0);
}

/* The value of a metric line "name value" (name includes labels), or NaN. */
static double metric(const char *text, const char *name)
{
    char key[256];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static void test_metrics(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    expect e = {0};
    post_events(s.port, 0, 300, &e);
    char body[1024];
    snprintf(body, sizeof body, RANK, "u1", T0 + 97LL * 300);
    wait_trained(s.port);
    for (int i = 0; i < 5; i++) {
        cJSON *j = http_json(s.port, "POST", "/v1/rank", body, 200);
        check_ranking(j, 4);
        /* Trained on i1 and i2: the scores differ, so the order means something. */
        const cJSON *sc = cJSON_GetObjectItem(j, "scores");
        assert_true(num(cJSON_GetArrayItem(sc, 0), "finish") != num(cJSON_GetArrayItem(sc, 2), "finish"));
        cJSON_Delete(j);
    }
    expect_error(s.port, "POST", "/v1/rank", "{", 400, "malformed");
    response r = http(s.port, "GET", "/metrics", NULL, -1);
    assert_int_equal(r.status, 200);
    const char *m = r.body;
    assert_true(metric(m, "iclock_http_requests_total{endpoint=\"rank\",code=\"2xx\"}") == 5);
    assert_true(metric(m, "iclock_http_requests_total{endpoint=\"rank\",code=\"4xx\"}") == 1);
    assert_true(metric(m, "iclock_http_request_duration_seconds_count{endpoint=\"rank\"}") == 6);
    assert_true(metric(m, "iclock_http_request_duration_seconds_bucket{endpoint=\"rank\",le=\"+Inf\"}") == 6);
    assert_true(metric(m, "iclock_http_request_duration_seconds_sum{endpoint=\"rank\"}") > 0);
    assert_true(metric(m, "iclock_http_requests_total{endpoint=\"events\",code=\"2xx\"}") == 1);
    assert_true(metric(m, "iclock_events_applied_total") == 300);
    assert_true(metric(m, "iclock_training_samples_total") == 300);
    assert_true(metric(m, "iclock_train_queue_depth") == 0);
    double auc = metric(m, "iclock_online_auc{task=\"finish\"}");
    assert_true(auc >= 0 && auc <= 1);
    double loss = metric(m, "iclock_train_loss_recent");
    assert_true(loss > 0 && isfinite(loss));
    assert_true(metric(m, "iclock_checkpoints_total") >= 1);
    response_free(&r);
    assert_int_equal(stop(&s, SIGTERM), 0);
}

static void test_sigterm_restart(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    expect e = {0};
    post_events(s.port, 0, 200, &e);
    wait_trained(s.port);
    char body[1024];
    snprintf(body, sizeof body, RANK, "u2", T0 + 97LL * 200);
    response before = http(s.port, "POST", "/v1/rank", body, -1);
    assert_int_equal(before.status, 200);
    cJSON *c = get_clock(s.port, "u2", T0 + 97LL * 200);
    char *clock_before = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    assert_int_equal(stop(&s, SIGTERM), 0);

    s = start(NULL, NULL);
    /* The trained model and the clock store come back as they were. */
    response after = http(s.port, "POST", "/v1/rank", body, -1);
    assert_string_equal(after.body, before.body);
    c = get_clock(s.port, "u2", T0 + 97LL * 200);
    char *clock_after = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    assert_string_equal(clock_after, clock_before);
    assert_true(healthz(s.port, "events_applied") == 200);
    /* And it goes on from there. */
    post_events(s.port, 200, 260, &e);
    check_clocks(s.port, &e, T0 + 97LL * 260);
    assert_int_equal(stop(&s, SIGINT), 0);
    free(clock_before), free(clock_after);
    response_free(&before), response_free(&after);
}

/* --model M starts an empty data dir from a trained model. */
static void test_model_option(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    expect e = {0};
    post_events(s.port, 0, 300, &e);
    wait_trained(s.port);
    assert_int_equal(stop(&s, SIGTERM), 0);
    /* The final checkpoint's model; "nobody" has no clock anywhere, so the
     * scores depend on the model alone. */
    char model[128], cmd[300], other[128];
    snprintf(cmd, sizeof cmd, "cp %s/ckpt-*/model.bin %s/trained.bin", data_dir, data_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(model, sizeof model, "%s/trained.bin", data_dir);
    snprintf(other, sizeof other, "%s/other", data_dir);
    char body[1024];
    snprintf(body, sizeof body, RANK, "nobody", T0 + 97LL * 300);

    s = start(NULL, NULL);
    response trained = http(s.port, "POST", "/v1/rank", body, -1);
    assert_int_equal(stop(&s, SIGTERM), 0);
    s = start_in(other, "--model", model);
    response loaded = http(s.port, "POST", "/v1/rank", body, -1);
    assert_int_equal(loaded.status, 200);
    assert_string_equal(loaded.body, trained.body);
    assert_int_equal(stop(&s, SIGTERM), 0);
    /* A fresh model scores otherwise (so the comparison above means something). */
    snprintf(cmd, sizeof cmd, "rm -rf %s", other);
    assert_int_equal(system(cmd), 0);
    s = start_in(other, NULL, NULL);
    response fresh = http(s.port, "POST", "/v1/rank", body, -1);
    assert_string_not_equal(fresh.body, trained.body);
    assert_int_equal(stop(&s, SIGTERM), 0);
    response_free(&trained), response_free(&loaded), response_free(&fresh);
}

static void test_kill9_recovery(void **state)
{
    (void)state;
    server s = start(NULL, NULL);
    expect e = {0};
    for (int b = 0; b < 25; b++) post_events(s.port, b * 40, (b + 1) * 40, &e);
    /* kill -9 right after the last acknowledgement: no checkpoint since start. */
    assert_int_equal(stop(&s, SIGKILL), 128 + SIGKILL);
    /* A write cut short by the crash: garbage after the last record. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "printf 'xxxxxxxxxxxxxxxxxxxxxxx' >> \"$(ls %s/journal-*.log | tail -1)\"", data_dir);
    assert_int_equal(system(cmd), 0);

    s = start(NULL, NULL);
    assert_true(healthz(s.port, "events_applied") == 1000);
    check_clocks(s.port, &e, T0 + 97LL * 1000);
    /* Then again with a checkpoint in between: checkpoint + journal tail. */
    assert_int_equal(stop(&s, SIGTERM), 0);
    s = start(NULL, NULL);
    post_events(s.port, 1000, 1100, &e);
    assert_int_equal(stop(&s, SIGKILL), 128 + SIGKILL);
    s = start(NULL, NULL);
    assert_true(healthz(s.port, "events_applied") == 1100);
    check_clocks(s.port, &e, T0 + 97LL * 1100);
    /* Events keep their order across the crash: an older one is refused. */
    char old[256];
    snprintf(old, sizeof old, "[{\"ts\": %lld, \"user\": \"u0\", \"item\": \"z\"}]", T0 + 97LL * 1098);
    cJSON *j = http_json(s.port, "POST", "/v1/events", old, 200);
    assert_int_equal((int)num(j, "accepted"), 0);
    cJSON_Delete(j);
    wait_trained(s.port);
    assert_int_equal(stop(&s, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rank_cold_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_change_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_model_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_recovery, setup, teardown),
    };
    return cmocka_run_group_tests_name("server", tests, NULL, NULL);
}
