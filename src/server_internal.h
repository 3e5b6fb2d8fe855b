/* server_internal.h: what the server's files share (server.c, journal.c,
 * event_json.c); not part of the public API. Names are ic__.
 *
 *   event_json.c  a JSON object -> ic_event (log events, rank candidates),
 *                 with "where: what" messages for the client
 *   journal.c     the append-only event log (segments, group commit,
 *                 replay) and the checkpoint directories
 *   server.c      HTTP (libmicrohttpd), the locks, the trainer thread,
 *                 metrics, recovery */
#ifndef IC_SERVER_INTERNAL_H
#define IC_SERVER_INTERNAL_H

#include "internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>

/* ---- Replies: an ic__sbuf (internal.h) with printf and JSON ---------------- */

void ic__sb_printf(ic__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a JSON string literal, quotes included. */
void ic__sb_json_str(ic__sbuf *b, const char *s, size_t n);
/* Appends a JSON number (%.9g), or null for NaN and infinities. */
void ic__sb_json_num(ic__sbuf *b, double x);

/* ---- JSON -> ic_event (event_json.c) ----------------------------------- */

/* Called for every categorical value string read, so the server can keep
 * the id -> string map its clock replies print. */
typedef void (*ic__value_fn)(void *ctx, uint64_t id, const char *s, size_t n);

/* Reads a log event from a JSON object whose keys are the configuration's
 * columns: time (required; Unix seconds as an integer, or a string with
 * Unix seconds or ISO-8601), user and item (required strings), tz (minutes;
 * optional, cfg->tz_default_min), every field (optional; "a|b" or an array
 * of strings), actions and labels (optional numbers or booleans, default
 * 0; labels in [0, 1]). Unknown keys are errors (a typo would otherwise be
 * a silent zero). where prefixes messages ("events[3]"). fn may be NULL.
 * Errors: IC_ERR_PARSE, err = "events[3].ts: expected ...". */
ic_status ic__event_from_json(const cJSON *obj, const ic_config *cfg, const char *where,
                              ic__value_fn fn, void *ctx, ic_event *ev, ic_error *err);

/* A ranking request: {"user", "time" (optional: now), "tz" (optional),
 * fields as defaults for every candidate, "items": [{"item", fields}]}.
 * Reads the top level into base (user, ts, tz; no item, no values) and
 * returns the items array in *items. Errors as above ("time: ..."). */
ic_status ic__rank_request_from_json(const cJSON *req, const ic_config *cfg, int64_t now,
                                     ic_event *base, const cJSON **items, ic_error *err);

/* Candidate i: base's user and time, item and fields from the item object
 * (a field it lacks is taken from the request's top level, if there). */
ic_status ic__candidate_from_json(const cJSON *req, const cJSON *item, int i,
                                  const ic_config *cfg, const ic_event *base, ic_event *ev,
                                  ic_error *err);

/* "line L, column C" of byte offset off in text[0..n), into buf. */
void ic__json_where(const char *text, size_t n, size_t off, char *buf, size_t cap);

/* ---- The journal (journal.c) -------------------------------------------- *
 * DIR/journal-NNNNNNNN.log segments of records: u32 length | u32 zero | u64
 * XXH64 of the payload | payload (one event as compact JSON). Appends are
 * write()s under the caller's ingest lock; ic__journal_sync makes them
 * durable with one fdatasync per group of waiting callers. */
typedef struct ic__journal ic__journal;

/* Opens segment seg of dir for appending (created if missing). */
ic_status ic__journal_open(ic__journal **out, const char *dir, uint64_t seg, ic_error *err);
void ic__journal_close(ic__journal *j);
/* Appends n records with one write(). *lsn gets the journal's byte count
 * (over all segments of this run) after them, for ic__journal_sync. On a
 * failed write the segment is truncated back: nothing was appended. One
 * appender at a time (the caller's lock). */
ic_status ic__journal_append(ic__journal *j, const char *const *rec, const size_t *len, size_t n,
                             uint64_t *lsn, ic_error *err);
/* Returns once every byte up to lsn is on disk (group commit: one caller
 * syncs for all the others waiting). Thread safe. */
ic_status ic__journal_sync(ic__journal *j, uint64_t lsn, ic_error *err);
/* Syncs the current segment and continues in segment seg (> current).
 * Under the caller's ingest lock. */
ic_status ic__journal_rotate(ic__journal *j, uint64_t seg, ic_error *err);
uint64_t ic__journal_segment(const ic__journal *j);
/* Bytes appended in this run. */
uint64_t ic__journal_bytes(const ic__journal *j);

/* Called per record in replay; return 0 to go on, a negative status to stop. */
typedef ic_status (*ic__record_fn)(void *ctx, const char *rec, size_t len, ic_error *err);

/* Replays every segment >= from in order. A torn tail of the last segment
 * (the records of a crash that were never acknowledged) is cut off; damage
 * anywhere else is IC_ERR_CORRUPT. *last gets the highest segment found
 * (from if none). *torn gets the bytes cut. */
ic_status ic__journal_replay(const char *dir, uint64_t from, ic__record_fn fn, void *ctx,
                             uint64_t *last, uint64_t *torn, ic_error *err);
/* Deletes the segments below seg. */
void ic__journal_drop_before(const char *dir, uint64_t seg);

/* ---- Checkpoints (journal.c) ---------------------------------------------
 * DIR/ckpt-NNNNNNNN/{model.bin, clock.bin, state.bin, config.ini}; DIR/CURRENT
 * names the latest complete one. Checkpoint N holds the state after every
 * journal segment below N: recovery loads it and replays segments >= N. */

/* The generation CURRENT names, or 0 when there is none (a fresh dir).
 * Errors: IC_ERR_CORRUPT for an unreadable CURRENT. */
ic_status ic__ckpt_current(const char *dir, uint64_t *gen, ic_error *err);
/* The directory of generation gen, into buf; creates it if make. */
ic_status ic__ckpt_dir(const char *dir, uint64_t gen, int make, char *buf, size_t cap,
                       ic_error *err);
/* fsyncs the generation's directory, then points CURRENT at it atomically,
 * then removes the other checkpoint directories. */
ic_status ic__ckpt_publish(const char *dir, uint64_t gen, ic_error *err);

/* The server's own part of a checkpoint (state.bin). */
typedef struct {
    int64_t last_ts;          /* latest applied event time, INT64_MIN if none */
    uint64_t events_applied;  /* over the server's lifetime */
    uint64_t train_samples;
    size_t n_values;          /* categorical value strings seen */
    uint64_t *value_id;       /* (n_values) */
    char **value_str;         /* (n_values), NUL-terminated */
    size_t n_pending;         /* applied to the clock but not trained yet */
    ic_event *pending;        /* (n_pending) */
} ic__serve_state;

ic_status ic__serve_state_save(const ic__serve_state *st, const char *path, ic_error *err);
/* Allocates the arrays; free with ic__serve_state_free. */
ic_status ic__serve_state_load(ic__serve_state *st, const char *path, ic_error *err);
void ic__serve_state_free(ic__serve_state *st);

#endif
