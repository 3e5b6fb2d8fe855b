/* event_json.c: the server's JSON in and out. Turns a JSON object into an
 * ic_event (a log event of /v1/events, or a rank candidate of /v1/rank),
 * checking every key and type and saying where a problem is
 * ("events[3].ts: expected ..."); and the small text buffer the replies are
 * written into. It does not parse the body text (cJSON does) nor decide
 * what an event means (the server and the clock store do).
 *
 * Ids and values are ic_hash of their strings, as the CSV reader makes them,
 * so a model trained offline scores the server's samples alike. */
#include "server_internal.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

/* ---- Text buffer -------------------------------------------------------- */

void ic__sb_printf(ic__sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        ic__sb_add(b, tmp, (size_t)n);
        return;
    }
    char *big = ic__xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ic__sb_add(b, big, (size_t)n);
    free(big);
}

void ic__sb_json_str(ic__sbuf *b, const char *s, size_t n)
{
    ic__sb_add(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed before an escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        ic__sb_add(b, s + i - run, run);
        run = 0;
        char esc[8];
        if (c == '"' || c == '\\') snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n') snprintf(esc, sizeof esc, "\\n");
        else snprintf(esc, sizeof esc, "\\u%04x", c);
        ic__sb_puts(b, esc);
    }
    ic__sb_add(b, s + n - run, run);
    ic__sb_add(b, "\"", 1);
}

void ic__sb_json_num(ic__sbuf *b, double x)
{
    if (!isfinite(x)) ic__sb_puts(b, "null");
    else ic__sb_printf(b, "%.9g", x);
}

void ic__json_where(const char *text, size_t n, size_t off, char *buf, size_t cap)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off && i < n; i++) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
    }
    snprintf(buf, cap, "line %zu, column %zu", line, col);
}

/* ---- Values --------------------------------------------------------------- */

/* A JSON type's name for messages. */
static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

#define MAX_TS 100000000000LL /* |ts| < 1e11 s (year 5138): keeps local time arithmetic exact */

/* A time: an integral JSON number, or a string of Unix seconds or ISO-8601. */
static ic_status read_time(const cJSON *v, const char *where, const char *key, int64_t *out,
                           ic_error *err)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != floor(d) || fabs(d) >= (double)MAX_TS)
            return ic__fail(err, IC_ERR_PARSE, "%s%s: %.17g is not a time in whole Unix seconds",
                            where, key, d);
        *out = (int64_t)d;
        return IC_OK;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        if (ic_time_parse(s, strlen(s), out) != 0 || *out <= -MAX_TS || *out >= MAX_TS)
            return ic__fail(err, IC_ERR_PARSE,
                            "%s%s: \"%.60s\" is not a time (Unix seconds or ISO-8601 with offset)",
                            where, key, s);
        return IC_OK;
    }
    return ic__fail(err, IC_ERR_PARSE, "%s%s: expected a time (Unix seconds or ISO-8601), got %s",
                    where, key, type_name(v));
}

static ic_status read_tz(const cJSON *v, const char *where, const char *key, int32_t *out,
                         ic_error *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 1440)
        return ic__fail(err, IC_ERR_PARSE,
                        "%s%s: expected a UTC offset in whole minutes in -1440..1440, got %s",
                        where, key, cJSON_IsNumber(v) ? "an out of range number" : type_name(v));
    *out = (int32_t)v->valuedouble;
    return IC_OK;
}

static ic_status read_id(const cJSON *v, const char *where, const char *key, uint64_t *out,
                         ic_error *err)
{
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return ic__fail(err, IC_ERR_PARSE, "%s%s: expected a non-empty string id, got %s%s", where,
                        key, cJSON_IsString(v) ? "an empty string" : type_name(v),
                        cJSON_IsNumber(v) ? " (send ids as strings)" : "");
    *out = ic_hash(v->valuestring, strlen(v->valuestring));
    return IC_OK;
}

/* A number or a boolean, finite and non-negative; labels must lie in [0, 1]. */
static ic_status read_float(const cJSON *v, const char *where, const char *key, int is_label,
                            float *out, ic_error *err)
{
    double d;
    if (cJSON_IsBool(v)) d = cJSON_IsTrue(v) ? 1 : 0;
    else if (cJSON_IsNumber(v)) d = v->valuedouble;
    else
        return ic__fail(err, IC_ERR_PARSE, "%s%s: expected a number, got %s", where, key,
                        type_name(v));
    if (!isfinite(d) || fabs(d) > 1e30)
        return ic__fail(err, IC_ERR_PARSE, "%s%s: %g is out of range", where, key, d);
    if (is_label && (d < 0 || d > 1))
        return ic__fail(err, IC_ERR_PARSE, "%s%s: a label must lie in [0, 1], got %g", where,
                        key, d);
    if (d < 0) /* as the CSV reader: actions count things */
        return ic__fail(err, IC_ERR_PARSE, "%s%s: an action must be non-negative, got %g", where,
                        key, d);
    *out = (float)d;
    return IC_OK;
}

/* Appends one value string's id (empty strings name no value). */
static ic_status add_value(ic_event *ev, int *nv, const char *s, size_t n, const char *where,
                           const char *key, ic__value_fn fn, void *ctx, ic_error *err)
{
    if (n == 0) return IC_OK;
    if (*nv >= IC_MAX_VALUES)
        return ic__fail(err, IC_ERR_PARSE, "%s%s: more than %d values in one event", where, key,
                        IC_MAX_VALUES);
    uint64_t id = ic_hash(s, n);
    ev->val[(*nv)++] = id;
    if (fn) fn(ctx, id, s, n);
    return IC_OK;
}

/* Field values: "a|b" (cfg->multi_sep), an array of strings, or null. */
static ic_status read_field(const cJSON *v, const ic_config *cfg, const char *where,
                            const char *key, ic__value_fn fn, void *ctx, ic_event *ev, int *nv,
                            ic_error *err)
{
    ic_status s = IC_OK;
    if (cJSON_IsNull(v)) return IC_OK;
    if (cJSON_IsString(v)) {
        /* As the CSV reader: "" holds no value, "a||b" is an error. */
        const char *p = v->valuestring;
        if (*p == '\0') return IC_OK;
        for (const char *q = p;; q++) {
            if (*q != cfg->multi_sep && *q != '\0') continue;
            if (q == p)
                return ic__fail(err, IC_ERR_PARSE, "%s%s: \"%.60s\" has an empty value", where,
                                key, v->valuestring);
            if ((s = add_value(ev, nv, p, (size_t)(q - p), where, key, fn, ctx, err))) return s;
            if (*q == '\0') return IC_OK;
            p = q + 1;
        }
    }
    if (!cJSON_IsArray(v))
        return ic__fail(err, IC_ERR_PARSE, "%s%s: expected a string or an array of strings, got %s",
                        where, key, type_name(v));
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        if (!cJSON_IsString(x))
            return ic__fail(err, IC_ERR_PARSE, "%s%s[%d]: expected a string, got %s", where, key,
                            i, type_name(x));
        s = add_value(ev, nv, x->valuestring, strlen(x->valuestring), where, key, fn, ctx, err);
        if (s) return s;
    }
    return IC_OK;
}

/* ---- Log events ------------------------------------------------------------ */

static int is_named(const char *key, const ic_named_weight *w, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(key, w[i].name)) return 1;
    return 0;
}

/* Is key one of the log format's columns? */
static int is_log_key(const char *key, const ic_config *cfg)
{
    if (!strcmp(key, cfg->time_col) || !strcmp(key, cfg->user_col) || !strcmp(key, cfg->item_col))
        return 1;
    if (cfg->tz_col[0] && !strcmp(key, cfg->tz_col)) return 1;
    return ic_config_field_index(cfg, key) >= 0 || is_named(key, cfg->action, cfg->n_actions) ||
           is_named(key, cfg->task, cfg->n_tasks);
}

static ic_status check_object(const cJSON *obj, const char *where, ic_error *err)
{
    if (!cJSON_IsObject(obj))
        return ic__fail(err, IC_ERR_PARSE, "%s: expected an object, got %s", where,
                        type_name(obj));
    return IC_OK;
}

static ic_status require(const cJSON *obj, const char *key, const char *where, const cJSON **out,
                         ic_error *err)
{
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*out) return ic__fail(err, IC_ERR_PARSE, "%s%s: missing", where, key);
    return IC_OK;
}

/* Actions and labels by name; absent ones are 0. One key may feed both. */
static ic_status read_outcomes(const cJSON *obj, const ic_config *cfg, const char *w,
                               ic_event *ev, ic_error *err)
{
    ic_status s;
    for (int a = 0; a < cfg->n_actions; a++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, cfg->action[a].name);
        if (v && (s = read_float(v, w, cfg->action[a].name, 0, &ev->action[a], err))) return s;
    }
    for (int t = 0; t < cfg->n_tasks; t++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, cfg->task[t].name);
        if (v && (s = read_float(v, w, cfg->task[t].name, 1, &ev->label[t], err))) return s;
    }
    return IC_OK;
}

ic_status ic__event_from_json(const cJSON *obj, const ic_config *cfg, const char *where,
                              ic__value_fn fn, void *ctx, ic_event *ev, ic_error *err)
{
    memset(ev, 0, sizeof *ev); /* also the padding: events are saved as bytes */
    ic_status s = check_object(obj, where, err);
    if (s) return s;
    char w[96];
    snprintf(w, sizeof w, "%s.", where);
    for (const cJSON *x = obj->child; x; x = x->next)
        if (!is_log_key(x->string, cfg))
            return ic__fail(err, IC_ERR_PARSE, "%s%s: unknown key (not a column of the config)",
                            w, x->string);
    const cJSON *v;
    if ((s = require(obj, cfg->time_col, w, &v, err)) || (s = read_time(v, w, cfg->time_col, &ev->ts, err)))
        return s;
    if ((s = require(obj, cfg->user_col, w, &v, err)) || (s = read_id(v, w, cfg->user_col, &ev->user, err)))
        return s;
    if ((s = require(obj, cfg->item_col, w, &v, err)) || (s = read_id(v, w, cfg->item_col, &ev->item, err)))
        return s;
    ev->tz_min = cfg->tz_default_min;
    v = cfg->tz_col[0] ? cJSON_GetObjectItemCaseSensitive(obj, cfg->tz_col) : NULL;
    if (v && !cJSON_IsNull(v) && (s = read_tz(v, w, cfg->tz_col, &ev->tz_min, err))) return s;
    int nv = 0;
    for (int f = 0; f < cfg->n_fields; f++) {
        ev->voff[f] = (uint8_t)nv;
        v = cJSON_GetObjectItemCaseSensitive(obj, cfg->field[f]);
        if (v && (s = read_field(v, cfg, w, cfg->field[f], fn, ctx, ev, &nv, err))) return s;
    }
    ev->voff[cfg->n_fields] = (uint8_t)nv;
    return read_outcomes(obj, cfg, w, ev, err);
}

/* ---- Rank requests ---------------------------------------------------------- */

ic_status ic__rank_request_from_json(const cJSON *req, const ic_config *cfg, int64_t now,
                                     ic_event *base, const cJSON **items, ic_error *err)
{
    memset(base, 0, sizeof *base);
    if (!cJSON_IsObject(req))
        return ic__fail(err, IC_ERR_PARSE, "request: expected an object, got %s", type_name(req));
    for (const cJSON *x = req->child; x; x = x->next) {
        const char *k = x->string;
        if (strcmp(k, "user") && strcmp(k, "time") && strcmp(k, "tz") && strcmp(k, "items") &&
            ic_config_field_index(cfg, k) < 0)
            return ic__fail(err, IC_ERR_PARSE,
                            "%s: unknown key (expected user, time, tz, items or a field)", k);
    }
    ic_status s;
    const cJSON *v;
    if ((s = require(req, "user", "", &v, err)) || (s = read_id(v, "", "user", &base->user, err)))
        return s;
    base->ts = now;
    v = cJSON_GetObjectItemCaseSensitive(req, "time");
    if (v && !cJSON_IsNull(v) && (s = read_time(v, "", "time", &base->ts, err))) return s;
    base->tz_min = cfg->tz_default_min;
    v = cJSON_GetObjectItemCaseSensitive(req, "tz");
    if (v && !cJSON_IsNull(v) && (s = read_tz(v, "", "tz", &base->tz_min, err))) return s;
    if ((s = require(req, "items", "", items, err))) return s;
    if (!cJSON_IsArray(*items))
        return ic__fail(err, IC_ERR_PARSE, "items: expected an array of objects, got %s",
                        type_name(*items));
    return IC_OK;
}

ic_status ic__candidate_from_json(const cJSON *req, const cJSON *item, int i,
                                  const ic_config *cfg, const ic_event *base, ic_event *ev,
                                  ic_error *err)
{
    char w[64], obj_where[48];
    snprintf(obj_where, sizeof obj_where, "items[%d]", i);
    snprintf(w, sizeof w, "items[%d].", i);
    *ev = *base;
    ic_status s = check_object(item, obj_where, err);
    if (s) return s;
    for (const cJSON *x = item->child; x; x = x->next)
        if (strcmp(x->string, "item") && ic_config_field_index(cfg, x->string) < 0)
            return ic__fail(err, IC_ERR_PARSE, "%s%s: unknown key (expected item or a field)", w,
                            x->string);
    const cJSON *v;
    if ((s = require(item, "item", w, &v, err)) || (s = read_id(v, w, "item", &ev->item, err)))
        return s;
    int nv = 0;
    for (int f = 0; f < cfg->n_fields; f++) {
        ev->voff[f] = (uint8_t)nv;
        const char *where = w;
        v = cJSON_GetObjectItemCaseSensitive(item, cfg->field[f]);
        if (!v) v = cJSON_GetObjectItemCaseSensitive(req, cfg->field[f]), where = "";
        if (v && (s = read_field(v, cfg, where, cfg->field[f], NULL, NULL, ev, &nv, err))) return s;
    }
    ev->voff[cfg->n_fields] = (uint8_t)nv;
    return IC_OK;
}
