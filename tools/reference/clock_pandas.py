#!/usr/bin/python3
"""clock_pandas.py: the Interest Clock features computed the straightforward
way with pandas, for the feature pipeline's ratio in docs/PERFORMANCE.md
("Feature pipeline"). Run with /usr/bin/python3.

For an event of user u at time t: take u's events with t - W <= ts < t
(W = window_days), score each (local hour of the event, clock field, value)
as the sum of the events' delta = sum_a weight_a * action_a (multi-valued
fields count each value), keep positive scores, and per (hour, field) the
top k by score (ties by value id, ascending), as src/clock.c defines the
clock. The log is read once, exploded to one row per (event, field, value)
and split by user; each query filters the user's frame by time and groups.

Input: a directory written by `bench_train --dump DIR` (log.csv, meta.json,
names.tsv, the slice's clock views). It first checks its clocks against the
C store's on a subsample of the dumped slice (exits 1 on a difference),
then times queries on a uniform subsample of the whole log (every k-th
event) because it is slow, and scales per event: estimated whole-log time =
load and split + per-query time x events. Prints one JSON object per line.

Usage: clock_pandas.py DUMP_DIR [--queries 2000] [--check 200] [--c-json FILE]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

HOURS = 24


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def prepare(d, meta):
    """The log as one row per (event, clock field, value), split by user."""
    df = pd.read_csv(os.path.join(d, "log.csv"), dtype={"user": str, "item": str})
    delta = sum(np.float64(w) * df[a].astype(np.float64) for a, w in meta["actions"].items())
    df["delta"] = delta.astype(np.float32).astype(np.float64)  # C: (float)(sum), then double sums
    df["hour"] = ((df["ts"] + df["tz"] * 60) % 86400) // 3600
    df["event"] = np.arange(len(df))
    names = pd.read_csv(os.path.join(d, "names.tsv"), sep="\t", header=None,
                        names=["id", "name"], dtype={"id": np.uint64, "name": str},
                        keep_default_na=False)
    ids = dict(zip(names["name"], names["id"]))
    parts = []
    for c, f in enumerate(meta["clock_fields"]):
        col = meta["fields"][f]
        p = df[["event", "user", "ts", "hour", "delta", col]].copy()
        p["value"] = p[col].astype(str).str.split("|")
        p = p.explode("value").drop(columns=[col])
        p = p[p["value"] != ""]
        p["field"] = c
        parts.append(p)
    long = pd.concat(parts, ignore_index=True)
    long["vid"] = long["value"].map(ids).astype(np.uint64)
    long = long.sort_values(["ts", "event"], kind="stable")
    by_user = {u: g.reset_index(drop=True) for u, g in long.groupby("user", sort=False)}
    return df, by_user


def clock_at(by_user, user, t, window_s, k):
    """{(hour, field): [(value id, score), ...]} of user at t."""
    g = by_user.get(user)
    if g is None:
        return {}
    w = g[(g["ts"] >= t - window_s) & (g["ts"] < t)]
    s = w.groupby(["hour", "field", "vid"], sort=False)["delta"].sum().reset_index()
    # Values rank by the score the clock shows: the float32 of the double sum.
    s["shown"] = s["delta"].astype(np.float32)
    s = s[s["shown"] > 0]
    s = s.sort_values(["hour", "field", "shown", "vid"], ascending=[True, True, False, True])
    top = s.groupby(["hour", "field"], sort=False).head(k)
    out = {}
    for h, f, v, sc in zip(top["hour"], top["field"], top["vid"], top["shown"]):
        out.setdefault((int(h), int(f)), []).append((int(v), float(sc)))
    return out


def c_clock(d, meta, j):
    """The C store's clock of slice sample j from the dump."""
    cnt = np.load(os.path.join(d, "clock_cnt.npy"), mmap_mode="r")
    off = np.load(os.path.join(d, "clock_off.npy"), mmap_mode="r")
    val = np.load(os.path.join(d, "clock_val.npy"), mmap_mode="r")
    sc = np.load(os.path.join(d, "clock_score.npy"), mmap_mode="r")
    NC, out, o = len(meta["clock_fields"]), {}, int(off[j])
    for t in range(HOURS):
        for c in range(NC):
            n = int(cnt[j, t * NC + c])
            if n:
                out[(t, c)] = [(int(val[o + i]), float(sc[o + i])) for i in range(n)]
            o += n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--check", type=int, default=200)
    ap.add_argument("--c-json", help="bench_train's output, for the ratio")
    a = ap.parse_args()
    with open(os.path.join(a.dump, "meta.json")) as f:
        meta = json.load(f)
    W, k = meta["window_days"] * 86400, meta["top_k"]
    l1 = load1()
    w0, c0 = time.perf_counter(), time.process_time()
    df, by_user = prepare(a.dump, meta)
    prep_w, prep_c = time.perf_counter() - w0, time.process_time() - c0
    users, ts = df["user"].to_numpy(), df["ts"].to_numpy()
    n = len(df)

    # the check: our clocks equal the C store's on samples of the dumped slice
    s0, ns = meta["s0"], meta["n"]
    bad, places = 0, 0
    picks = np.linspace(0, ns - 1, min(a.check, ns)).astype(int)
    for j in picks:
        i = s0 + j
        ours, theirs = clock_at(by_user, users[i], ts[i], W, k), c_clock(a.dump, meta, j)
        bad += ours != theirs
        places += sum(len(v) for v in theirs.values())
    print(json.dumps({"bench": "features_pandas_check", "queries_compared": len(picks),
                      "places_compared": places, "differences": int(bad)}), flush=True)
    if bad or not places:
        print("clock_pandas: clocks differ from the C store's", file=sys.stderr)
        return 1

    # the timing: a uniform subsample of the whole log
    q = np.linspace(0, n - 1, min(a.queries, n)).astype(int)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in q:
        clock_at(by_user, users[i], ts[i], W, k)
    qw, qc = time.perf_counter() - w0, time.process_time() - c0
    est_c = prep_c + qc / len(q) * n
    out = {"bench": "features_pandas", "pandas": pd.__version__, "events": n,
           "queries_timed": len(q), "subsample": f"every ~{n // len(q)}th event",
           "prepare_wall_seconds": round(prep_w, 2), "prepare_cpu_seconds": round(prep_c, 2),
           "query_cpu_seconds": round(qc, 2), "query_wall_seconds": round(qw, 2),
           "us_per_query_cpu": round(1e6 * qc / len(q), 1),
           "est_whole_log_cpu_seconds": round(est_c, 1),
           "est_events_per_s_cpu": round(n / est_c), "load1": l1}
    print(json.dumps(out), flush=True)
    if a.c_json:
        with open(a.c_json) as f:
            for line in f:
                if line.startswith("{") and '"features_c"' in line:
                    c = json.loads(line)
                    print(json.dumps({"bench": "c_vs_pandas_features", "basis": "cpu",
                                      "c_events_per_s": c["events_per_s_cpu"],
                                      "pandas_events_per_s": out["est_events_per_s_cpu"],
                                      "ratio": round(c["events_per_s_cpu"]
                                                     / out["est_events_per_s_cpu"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
