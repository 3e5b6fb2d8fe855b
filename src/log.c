/* log.c: a whole event log in memory, for replaying it more than once.
 * It is the reader's streaming output collected into one array; it does not
 * sort (the reader enforces time order). */
#include "internal.h"

ic_status ic_log_load(ic_log *log, const char *path, const ic_config *cfg,
                      ic_bad_rows policy, ic_error *err)
{
    memset(log, 0, sizeof *log);
    log->names = ic_names_create();
    ic_reader *r;
    ic_status s = ic_reader_open(&r, path, cfg, policy, log->names, err);
    if (s != IC_OK) {
        ic_log_free(log);
        return s;
    }
    log->cap = 1 << 16;
    log->ev = ic__xmalloc(log->cap * sizeof *log->ev);
    int got;
    for (;;) {
        if (log->n == log->cap) {
            log->cap *= 2;
            log->ev = ic__xrealloc(log->ev, log->cap * sizeof *log->ev);
        }
        got = ic_reader_next(r, &log->ev[log->n], err);
        if (got <= 0) break;
        log->n++;
    }
    log->stats = *ic_reader_stats_get(r);
    ic_reader_close(r);
    if (got < 0) {
        ic_log_free(log);
        return (ic_status)got;
    }
    return IC_OK;
}

void ic_log_free(ic_log *log)
{
    if (!log) return;
    free(log->ev);
    ic_names_free(log->names);
    memset(log, 0, sizeof *log);
}
