/* experiment.c: the paper's offline comparison (its Table 2). Runs each
 * variant (baseline, naive, adaptive and Gaussian clocks, and the extras)
 * with several seeds over one in-memory log, two runs at a time on this
 * two-core machine, and reduces the test-period figures to mean and
 * standard deviation. It prints nothing but progress; tools format tables. */
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

int ic_experiment_variants(const ic_config *base, int extras, ic_variant *out, int cap)
{
    static const struct {
        const char *name;
        ic_clock_kind clock;
        int sigma_learn, continuous, pool_score, extra;
    } table[] = {
        {"baseline", IC_CLOCK_NONE, 0, 0, 0, 0},
        {"naive", IC_CLOCK_NAIVE, 0, 0, 0, 0},
        {"adaptive", IC_CLOCK_ADAPTIVE, 0, 0, 0, 0},
        {"gaussian", IC_CLOCK_GAUSSIAN, 0, 0, 0, 0},
        {"gaussian_learned_sigma", IC_CLOCK_GAUSSIAN, 1, 0, 0, 1},
        {"gaussian_continuous", IC_CLOCK_GAUSSIAN, 0, 1, 0, 1},
        {"gaussian_score_pool", IC_CLOCK_GAUSSIAN, 0, 0, 1, 1},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0] && n < cap; i++) {
        if (table[i].extra && !extras) continue;
        ic_variant *v = &out[n++];
        ic__strlcpy(v->name, table[i].name, sizeof v->name);
        v->cfg = *base;
        v->cfg.clock = table[i].clock;
        v->cfg.clock_sigma_learn = table[i].sigma_learn;
        v->cfg.clock_continuous = table[i].continuous;
        v->cfg.clock_pool = table[i].pool_score ? IC_POOL_SCORE : IC_POOL_MEAN;
    }
    return n;
}

typedef struct {
    const ic_log *log;
    const ic_variant *v;
    int nv, seeds, progress;
    atomic_int next;
    int total;
    atomic_int done;
    double t0;
    pthread_mutex_t lock;  /* guards the fields below and stderr */
    ic_replay_result *res; /* (nv * seeds) */
    ic_status status;
    ic_error err;
} job_queue;


static void run_one(job_queue *q, int j)
{
    const ic_variant *v = &q->v[j / q->seeds];
    int seed_ix = j % q->seeds;
    ic_config cfg = v->cfg;
    cfg.seed = v->cfg.seed + (uint64_t)seed_ix;
    ic_error err = {{0}};
    ic_engine *e = NULL;
    ic_replay_opts o;
    ic_replay_opts_default(&o);
    ic_status s = ic_engine_create(&e, &cfg, NULL, NULL, &err);
    if (s == IC_OK) s = ic_replay(e, q->log, &o, &q->res[j], &err);
    ic_engine_free(e);
    pthread_mutex_lock(&q->lock);
    if (s != IC_OK && q->status == IC_OK) {
        q->status = s;
        /* the run's message, prefixed with which run it was (cut to fit) */
        int k = snprintf(q->err.msg, sizeof q->err.msg, "%s (seed %llu): ", v->name,
                         (unsigned long long)cfg.seed);
        ic__strlcpy(q->err.msg + k, err.msg, sizeof q->err.msg - (size_t)k);
    }
    int done = atomic_fetch_add(&q->done, 1) + 1;
    if (q->progress && s == IC_OK) {
        const ic_metrics *m = &q->res[j].m[IC_PHASE_TEST][0];
        double el = ic__now_s() - q->t0;
        fprintf(stderr, "[%2d/%d] %-24s seed %llu  test AUC %.4f  UAUC %.4f  (%.1f s; ETA %.0f s)\n",
                done, q->total, v->name, (unsigned long long)cfg.seed, m->auc, m->uauc,
                q->res[j].seconds, el / done * (q->total - done));
    }
    pthread_mutex_unlock(&q->lock);
}

static void *worker(void *arg)
{
    job_queue *q = arg;
    for (;;) {
        int j = atomic_fetch_add(&q->next, 1);
        if (j >= q->total) break;
        pthread_mutex_lock(&q->lock);
        int failed = q->status != IC_OK;
        pthread_mutex_unlock(&q->lock);
        if (failed) break;
        run_one(q, j);
    }
    return NULL;
}

static void mean_std(const double *x, int n, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = n > 1 ? sqrt(ss / (n - 1)) : 0.0; /* sample standard deviation */
}

static void reduce(const job_queue *q, int vi, ic_variant_result *r)
{
    memset(r, 0, sizeof *r);
    ic__strlcpy(r->name, q->v[vi].name, sizeof r->name);
    r->seeds = q->seeds;
    double gauc[64], ll[64];
    for (int s = 0; s < q->seeds; s++) {
        const ic_replay_result *res = &q->res[vi * q->seeds + s];
        const ic_metrics *m = &res->m[IC_PHASE_TEST][0];
        r->auc_seed[s] = m->auc;
        r->uauc_seed[s] = m->uauc;
        gauc[s] = m->gauc;
        ll[s] = m->logloss;
        r->seconds += res->seconds;
    }
    mean_std(r->auc_seed, q->seeds, &r->auc, &r->auc_std);
    mean_std(r->uauc_seed, q->seeds, &r->uauc, &r->uauc_std);
    mean_std(gauc, q->seeds, &r->gauc, &r->gauc_std);
    mean_std(ll, q->seeds, &r->logloss, &r->logloss_std);
}

ic_status ic_experiment_run(const ic_log *log, const ic_variant *v, int nv, int seeds, int jobs,
                            int progress, ic_variant_result *out, ic_error *err)
{
    if (nv < 1 || seeds < 1 || seeds > 64)
        return ic__fail(err, IC_ERR_ARG, "experiment: need 1..%d variants and 1..64 seeds",
                        IC_MAX_VARIANTS);
    job_queue q = {.log = log, .v = v, .nv = nv, .seeds = seeds, .progress = progress,
                   .total = nv * seeds, .t0 = ic__now_s()};
    atomic_init(&q.next, 0);
    atomic_init(&q.done, 0);
    pthread_mutex_init(&q.lock, NULL);
    q.res = ic__xcalloc((size_t)q.total, sizeof *q.res);
    if (jobs < 1) jobs = 1;
    if (jobs > q.total) jobs = q.total;
    /* Runs in parallel each get one BLAS thread; a single run may use more. */
    if (jobs > 1) openblas_set_num_threads(1);
    pthread_t th[16];
    if (jobs > 16) jobs = 16;
    for (int i = 0; i < jobs; i++) pthread_create(&th[i], NULL, worker, &q);
    for (int i = 0; i < jobs; i++) pthread_join(th[i], NULL);
    ic_status s = q.status;
    if (s != IC_OK) {
        if (err) *err = q.err;
    } else {
        for (int i = 0; i < nv; i++) reduce(&q, i, &out[i]);
    }
    free(q.res);
    pthread_mutex_destroy(&q.lock);
    return s;
}
