/* journal.c: the server's durability. An append-only event log in
 * segments (DIR/journal-NNNNNNNN.log) with group commit, its replay after a
 * crash, and the checkpoint directories (DIR/ckpt-NNNNNNNN, DIR/CURRENT)
 * with the server's own state file.
 *
 * The guarantee it gives the server: a record whose ic__journal_sync
 * returned is on disk and is replayed after any crash; a record cut short by
 * a crash (never acknowledged) is dropped on replay. Checkpoint N holds the
 * state after every segment below N, so recovery is: load CURRENT's
 * checkpoint, replay segments >= N. It does not know what a record means
 * (the server parses it) nor take the server's locks. */
#include "server_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define REC_HEAD 16          /* u32 len, u32 zero, u64 XXH64(payload) */
#define REC_MAX (64u << 20)  /* a longer length is damage, not a record */

struct ic__journal {
    char dir[512];
    uint64_t seg;
    int fd;
    pthread_mutex_t mu;      /* guards the fields below and fd for syncers */
    pthread_cond_t cv;
    uint64_t appended;       /* bytes written this run (all segments) */
    uint64_t synced;         /* bytes known durable */
    int syncing;             /* a caller is in fdatasync */
    int sync_errno;          /* a failed fdatasync: every later sync fails */
};

static void seg_path(const char *dir, uint64_t seg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/journal-%08llu.log", dir, (unsigned long long)seg);
}

/* fsync a directory, so a created or renamed entry in it survives a crash. */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static ic_status open_seg(const char *dir, uint64_t seg, int *fd, ic_error *err)
{
    char path[600];
    seg_path(dir, seg, path, sizeof path);
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (*fd < 0) return ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fsync_dir(dir) != 0)
        return ic__fail(err, IC_ERR_IO, "%s: cannot sync directory: %s", dir, strerror(errno));
    return IC_OK;
}

ic_status ic__journal_open(ic__journal **out, const char *dir, uint64_t seg, ic_error *err)
{
    *out = NULL;
    int fd;
    ic_status s = open_seg(dir, seg, &fd, err);
    if (s) return s;
    ic__journal *j = ic__xcalloc(1, sizeof *j);
    ic__strlcpy(j->dir, dir, sizeof j->dir);
    j->seg = seg;
    j->fd = fd;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    *out = j;
    return IC_OK;
}

void ic__journal_close(ic__journal *j)
{
    if (!j) return;
    if (j->fd >= 0) {
        fdatasync(j->fd);
        close(j->fd);
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

ic_status ic__journal_append(ic__journal *j, const char *const *rec, const size_t *len, size_t n,
                             uint64_t *lsn, ic_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += REC_HEAD + len[i];
    char *buf = ic__xmalloc(total ? total : 1), *p = buf;
    for (size_t i = 0; i < n; i++) {
        IC_ASSERT(len[i] < REC_MAX);
        uint32_t head[2] = {(uint32_t)len[i], 0};
        uint64_t sum = XXH64(rec[i], len[i], 0);
        memcpy(p, head, 8);
        memcpy(p + 8, &sum, 8);
        memcpy(p + REC_HEAD, rec[i], len[i]);
        p += REC_HEAD + len[i];
    }
    off_t before = lseek(j->fd, 0, SEEK_END);
    int rc = write_all(j->fd, buf, total);
    int e = errno;
    free(buf);
    if (rc != 0) {
        /* Nothing half-written may stay: a later record would follow garbage. */
        if (before >= 0 && ftruncate(j->fd, before) != 0) {
            /* the torn tail is cut on replay (it was never acknowledged) */
        }
        return ic__fail(err, IC_ERR_IO, "journal segment %llu: write failed: %s",
                        (unsigned long long)j->seg, strerror(e));
    }
    pthread_mutex_lock(&j->mu);
    j->appended += total;
    *lsn = j->appended;
    pthread_mutex_unlock(&j->mu);
    return IC_OK;
}

ic_status ic__journal_sync(ic__journal *j, uint64_t lsn, ic_error *err)
{
    pthread_mutex_lock(&j->mu);
    while (j->synced < lsn && !j->sync_errno) {
        if (j->syncing) {
            pthread_cond_wait(&j->cv, &j->mu);
            continue;
        }
        /* Sync for everyone who appended so far: the group commit. */
        j->syncing = 1;
        uint64_t target = j->appended;
        int fd = j->fd;
        pthread_mutex_unlock(&j->mu);
        int rc = fdatasync(fd), e = errno;
        pthread_mutex_lock(&j->mu);
        j->syncing = 0;
        if (rc != 0) j->sync_errno = e;
        else if (target > j->synced) j->synced = target;
        pthread_cond_broadcast(&j->cv);
    }
    int e = j->synced >= lsn ? 0 : j->sync_errno;
    pthread_mutex_unlock(&j->mu);
    if (e)
        return ic__fail(err, IC_ERR_IO, "journal: fdatasync failed: %s", strerror(e));
    return IC_OK;
}

ic_status ic__journal_rotate(ic__journal *j, uint64_t seg, ic_error *err)
{
    IC_ASSERT(seg > j->seg);
    int fd;
    ic_status s = open_seg(j->dir, seg, &fd, err);
    if (s) return s;
    pthread_mutex_lock(&j->mu);
    while (j->syncing) pthread_cond_wait(&j->cv, &j->mu);
    int rc = fdatasync(j->fd), e = errno;
    close(j->fd);
    j->fd = fd;
    j->seg = seg;
    if (rc != 0) j->sync_errno = e;
    else j->synced = j->appended;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (rc != 0) return ic__fail(err, IC_ERR_IO, "journal: fdatasync failed: %s", strerror(e));
    return IC_OK;
}

uint64_t ic__journal_segment(const ic__journal *j) { return j->seg; }

uint64_t ic__journal_bytes(const ic__journal *j)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)&j->mu;
    pthread_mutex_lock(mu);
    uint64_t n = j->appended;
    pthread_mutex_unlock(mu);
    return n;
}

/* ---- Replay -------------------------------------------------------------- */

/* Segment numbers >= from present in dir, sorted; returns the count. */
static size_t list_segments(const char *dir, uint64_t from, uint64_t **out)
{
    size_t n = 0, cap = 8;
    uint64_t *v = ic__xmalloc(cap * sizeof *v);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        unsigned long long seg;
        char tail[8];
        if (sscanf(e->d_name, "journal-%llu.%7s", &seg, tail) != 2 || strcmp(tail, "log")) continue;
        if (seg < from) continue;
        if (n == cap) v = ic__xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = seg;
    }
    if (d) closedir(d);
    for (size_t i = 1; i < n; i++) /* few segments: insertion sort */
        for (size_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
            uint64_t t = v[k];
            v[k] = v[k - 1], v[k - 1] = t;
        }
    *out = v;
    return n;
}

/* Reads one segment's records into fn; *good gets the end of the last whole
 * record. Returns IC_OK also when the segment ends in a damaged record. */
static ic_status replay_segment(FILE *f, const char *path, ic__record_fn fn, void *ctx,
                                uint64_t *good, ic_error *err)
{
    size_t cap = 4096;
    char *buf = ic__xmalloc(cap);
    ic_status s = IC_OK;
    *good = 0;
    for (;;) {
        unsigned char head[REC_HEAD];
        if (fread(head, 1, REC_HEAD, f) != REC_HEAD) break;
        uint32_t len;
        uint64_t sum;
        memcpy(&len, head, 4);
        memcpy(&sum, head + 8, 8);
        if (len >= REC_MAX || head[4] | head[5] | head[6] | head[7]) break;
        if (len + 1 > cap) buf = ic__xrealloc(buf, cap = len + 1);
        if (fread(buf, 1, len, f) != len || XXH64(buf, len, 0) != sum) break;
        buf[len] = '\0';
        if ((s = fn(ctx, buf, len, err)) != IC_OK) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
            s = ic__fail(err, s, "%s at byte %llu: %s", path, (unsigned long long)*good, msg);
            break;
        }
        *good += REC_HEAD + len;
    }
    free(buf);
    return s;
}

ic_status ic__journal_replay(const char *dir, uint64_t from, ic__record_fn fn, void *ctx,
                             uint64_t *last, uint64_t *torn, ic_error *err)
{
    uint64_t *seg;
    size_t n = list_segments(dir, from, &seg);
    ic_status s = IC_OK;
    *last = n ? seg[n - 1] : from;
    *torn = 0;
    for (size_t i = 0; i < n && s == IC_OK; i++) {
        char path[600];
        seg_path(dir, seg[i], path, sizeof path);
        FILE *f = fopen(path, "rb");
        if (!f) {
            s = ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            break;
        }
        uint64_t good;
        s = replay_segment(f, path, fn, ctx, &good, err);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        if (s != IC_OK || size < 0 || (uint64_t)size == good) continue;
        if (i + 1 < n) {
            s = ic__fail(err, IC_ERR_CORRUPT, "%s: damaged record at byte %llu (not the last segment)",
                         path, (unsigned long long)good);
        } else if (truncate(path, (off_t)good) != 0) {
            s = ic__fail(err, IC_ERR_IO, "%s: cannot cut the torn tail: %s", path, strerror(errno));
        } else {
            *torn = (uint64_t)size - good;
        }
    }
    free(seg);
    return s;
}

void ic__journal_drop_before(const char *dir, uint64_t seg)
{
    uint64_t *v;
    size_t n = list_segments(dir, 0, &v);
    for (size_t i = 0; i < n && v[i] < seg; i++) {
        char path[600];
        seg_path(dir, v[i], path, sizeof path);
        unlink(path);
    }
    free(v);
}

/* ---- Checkpoint directories ---------------------------------------------- */

ic_status ic__ckpt_current(const char *dir, uint64_t *gen, ic_error *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/CURRENT", dir);
    *gen = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return IC_OK;
        return ic__fail(err, IC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    unsigned long long g = 0;
    int ok = fscanf(f, "ckpt-%llu", &g) == 1 && g > 0;
    fclose(f);
    if (!ok) return ic__fail(err, IC_ERR_CORRUPT, "%s: does not name a checkpoint", path);
    *gen = g;
    return IC_OK;
}

ic_status ic__ckpt_dir(const char *dir, uint64_t gen, int make, char *buf, size_t cap,
                       ic_error *err)
{
    snprintf(buf, cap, "%s/ckpt-%08llu", dir, (unsigned long long)gen);
    if (make && mkdir(buf, 0755) != 0 && errno != EEXIST)
        return ic__fail(err, IC_ERR_IO, "%s: cannot create: %s", buf, strerror(errno));
    return IC_OK;
}

/* Removes a checkpoint directory and the files in it (no subdirectories). */
static void remove_ckpt(const char *path)
{
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char f[1600];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        unlink(f);
    }
    if (d) closedir(d);
    rmdir(path);
}

ic_status ic__ckpt_publish(const char *dir, uint64_t gen, ic_error *err)
{
    char cdir[600], tmp[600], cur[600];
    ic__ckpt_dir(dir, gen, 0, cdir, sizeof cdir, NULL);
    if (fsync_dir(cdir) != 0)
        return ic__fail(err, IC_ERR_IO, "%s: cannot sync: %s", cdir, strerror(errno));
    snprintf(tmp, sizeof tmp, "%s/CURRENT.tmp", dir);
    snprintf(cur, sizeof cur, "%s/CURRENT", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) return ic__fail(err, IC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "ckpt-%08llu\n", (unsigned long long)gen);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, cur) != 0 || fsync_dir(dir) != 0)
        return ic__fail(err, IC_ERR_IO, "%s: cannot write: %s", cur, strerror(errno));
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        unsigned long long g;
        if (sscanf(e->d_name, "ckpt-%llu", &g) != 1 || g == gen) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        remove_ckpt(p);
    }
    if (d) closedir(d);
    return IC_OK;
}

/* ---- The server's state file ------------------------------------------------ */

static const char STATE_MAGIC[8] = "ICSRVST1";
#define STATE_VERSION 1

ic_status ic__serve_state_save(const ic__serve_state *st, const char *path, ic_error *err)
{
    ic_bwriter w;
    ic_status s = ic__bw_open(&w, path, STATE_MAGIC, STATE_VERSION, err);
    if (s) return s;
    uint64_t nv = st->n_values, np = st->n_pending;
    uint32_t ev_size = (uint32_t)sizeof(ic_event);
    ic__bw_write(&w, &st->last_ts, 8);
    ic__bw_write(&w, &st->events_applied, 8);
    ic__bw_write(&w, &st->train_samples, 8);
    ic__bw_write(&w, &nv, 8);
    for (size_t i = 0; i < st->n_values; i++) {
        uint32_t len = (uint32_t)strlen(st->value_str[i]);
        ic__bw_write(&w, &st->value_id[i], 8);
        ic__bw_write(&w, &len, 4);
        ic__bw_write(&w, st->value_str[i], len);
    }
    ic__bw_write(&w, &ev_size, 4);
    ic__bw_write(&w, &np, 8);
    ic__bw_write(&w, st->pending, np * sizeof *st->pending);
    return ic__bw_commit(&w, err);
}

static ic_status load_values(ic_breader *r, ic__serve_state *st, ic_error *err)
{
    uint64_t nv;
    ic_status s = ic__br_read(r, &nv, 8, err);
    if (s) return s;
    if (nv > ic__br_left(r) / 12)
        return ic__fail(err, IC_ERR_CORRUPT, "%s: %llu values cannot fit", r->path,
                        (unsigned long long)nv);
    st->value_id = ic__xcalloc(nv, sizeof *st->value_id);
    st->value_str = ic__xcalloc(nv, sizeof *st->value_str);
    for (uint64_t i = 0; i < nv; i++) {
        uint32_t len;
        if ((s = ic__br_read(r, &st->value_id[i], 8, err)) || (s = ic__br_read(r, &len, 4, err)))
            return s;
        if (len > ic__br_left(r))
            return ic__fail(err, IC_ERR_CORRUPT, "%s: value string runs past the end", r->path);
        st->value_str[i] = ic__xmalloc((size_t)len + 1);
        st->n_values = i + 1;
        if ((s = ic__br_read(r, st->value_str[i], len, err))) return s;
        st->value_str[i][len] = '\0';
    }
    return IC_OK;
}

ic_status ic__serve_state_load(ic__serve_state *st, const char *path, ic_error *err)
{
    memset(st, 0, sizeof *st);
    ic_breader r;
    ic_status s = ic__br_open(&r, path, STATE_MAGIC, STATE_VERSION, err);
    if (s) return s;
    uint32_t ev_size = 0;
    uint64_t np = 0;
    if ((s = ic__br_read(&r, &st->last_ts, 8, err)) || (s = ic__br_read(&r, &st->events_applied, 8, err)) ||
        (s = ic__br_read(&r, &st->train_samples, 8, err)) || (s = load_values(&r, st, err)) ||
        (s = ic__br_read(&r, &ev_size, 4, err)) || (s = ic__br_read(&r, &np, 8, err)))
        goto done;
    if (ev_size != sizeof(ic_event) || np != ic__br_left(&r) / sizeof(ic_event) ||
        ic__br_left(&r) % sizeof(ic_event)) {
        s = ic__fail(err, IC_ERR_CORRUPT, "%s: pending events do not match this build's layout", path);
        goto done;
    }
    st->pending = ic__xmalloc(np ? np * sizeof *st->pending : 1);
    st->n_pending = (size_t)np;
    s = ic__br_read(&r, st->pending, np * sizeof *st->pending, err);
done:
    ic__br_close(&r);
    if (s) ic__serve_state_free(st);
    return s;
}

void ic__serve_state_free(ic__serve_state *st)
{
    for (size_t i = 0; i < st->n_values; i++) free(st->value_str[i]);
    free(st->value_id);
    free(st->value_str);
    free(st->pending);
    memset(st, 0, sizeof *st);
}
