#!/usr/bin/python3
"""torch_bench.py: iclock's ranking model in PyTorch (Debian's 1.13), fed the
exact samples the C model trains on, for the training-throughput comparison
in docs/PERFORMANCE.md ("Versus PyTorch"). Run with /usr/bin/python3.

Input: a directory written by `bench_train --dump DIR` (.npy files, see
bench/bench_train.c): the slice's events, field values and compact clock
views; the C model's initial state (dense block and the embedding rows it
will draw); a C model trained on the first batches, with its per-step
losses and its predictions on batch 0.

The network is the one of tools/reference/dcnv2_reference.py (the
independent implementation the C fixture test checks against), batched:
x0 = [user | item | genre | mood | lang | hour | dow | clock 0..2], three
full-rank cross layers, MLP 256-128-64 on x0 (parallel), heads on
[x_L | h], BCE summed over tasks with their weights. The Gaussian clock is
pooled the fast way: one weighted gather per table (EmbeddingBag, sum,
per-sample weights c_t * p), which equals the per-slot pooling.
Optimizers as the C model: Adam (torch.optim.Adam) on the dense tensors,
Adagrad (torch.optim.Adagrad, sparse gradients, eps 1e-10) on the
embedding rows with L2 on the rows a batch touched.

Before timing it checks, and exits 1 on failure:
  1. the reference (dcnv2_reference.forward, float64, per sample) and this
     batched model give the same probabilities on 8 samples (C's weights);
  2. this model with the C model's trained weights predicts C's
     probabilities on batch 0;
  3. trained from C's initial state on the same batches, it reproduces the
     C model's per-step losses.
Ids are mapped to row indices before timing (a fixed vocabulary, as a
PyTorch pipeline would have); the C step's hash lookups are timed on the
C side. Prints one JSON object per line.

Usage: torch_bench.py DUMP_DIR [--threads 1,2] [--reps 3] [--c-json FILE]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcnv2_reference as ref  # noqa: E402  (sets float64 as default; undone below)

torch.set_default_dtype(torch.float32)
HOURS = 24


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ---- the dump ----------------------------------------------------------------

class Dump:
    def __init__(self, d):
        self.dir = d
        with open(os.path.join(d, "meta.json")) as f:
            self.meta = json.load(f)
        for name in ["ts", "tz", "hour", "dow", "user", "item", "label", "fval_off", "fval",
                     "clock_cnt", "clock_off", "clock_val", "clock_score",
                     "check_losses", "check_probs"]:
            setattr(self, name, self.npy(name))
        m = self.meta
        self.F, self.d, self.B, self.n = m["n_fields"], m["dim"], m["batch"], m["n"]
        self.NC = len(m["clock_fields"])
        self.T = len(m["task_weights"])
        self.n_tab = 2 + self.F

    def npy(self, name):
        return np.load(os.path.join(self.dir, name + ".npy"))

    def case(self):
        """The configuration as a dcnv2_reference case; sets the reference
        module's constants (embedding dim, fields, MLP, tasks) to ours."""
        m = self.meta
        ref.D_EMB, ref.N_FIELDS, ref.CLOCK_FIELDS = self.d, self.F, list(m["clock_fields"])
        ref.MLP, ref.TASK_W, ref.TOP_K = list(m["mlp"]), list(m["task_weights"]), m["top_k"]
        return dict(clock=m["clock"], sigma=float(m["clock_sigma"]), learn=0, continuous=0,
                    pool="mean", layers=m["cross_layers"], rank=m["cross_rank"],
                    structure=m["structure"])

    def dense(self, prefix):
        """Dense tensors by name and shape (dcnv2_reference.shapes: the C
        block's names, out x in), read from prefix_<name>.npy."""
        _, shp = ref.shapes(self.case())
        return {name: self.npy(f"{prefix}_{name}").reshape(s) for name, s in shp}

    def tables(self, prefix):
        return [(self.npy(f"{prefix}_ids_{t}"), self.npy(f"{prefix}_rows_{t}"))
                for t in range(self.n_tab)]


class Vocab:
    """id -> row index in the C model's initial tables (its row order)."""

    def __init__(self, ids):
        self.order = np.argsort(ids)
        self.sorted = ids[self.order]

    def __call__(self, q):
        q = np.asarray(q, dtype=np.uint64)
        pos = np.searchsorted(self.sorted, q)
        pos = np.minimum(pos, len(self.sorted) - 1)
        if len(q) and not np.all(self.sorted[pos] == q):
            raise SystemExit("torch_bench: an id of the samples is not in the C model's tables")
        return self.order[pos]


# ---- batches (built before timing) ----------------------------------------------------

def gaussian_table(sigma):
    """G[h, t]: the Gaussian clock weight of slot t at hour h (as nn_impl.h)."""
    g = np.zeros((HOURS, HOURS), dtype=np.float32)
    norm = np.float32(1.0 / (math.sqrt(2 * math.pi) * sigma))
    for h in range(HOURS):
        for t in range(HOURS):
            dl = min((t - h) % HOURS, (h - t) % HOURS)
            g[h, t] = norm * np.float32(math.exp(-dl * dl / (2 * sigma * sigma)))
    return torch.from_numpy(g)


def ranges(starts, lens):
    """The concatenation of arange(s, s + n) over (starts, lens)."""
    lens = np.asarray(lens, np.int64)
    total = int(lens.sum())
    if not total:
        return np.zeros(0, np.int64)
    first = np.cumsum(lens) - lens
    return np.repeat(np.asarray(starts, np.int64) - first, lens) + np.arange(total)


def make_batch(D, vocabs, i0, i1):
    """Tensors of samples i0..i1: per field table one EmbeddingBag input
    holding B bags of the field's values (weight 1/n) and then B bags per
    clock field on that table (occurrences: row, sample, slot, p = 1/n)."""
    B, F, NC = i1 - i0, D.F, D.NC
    b = {"B": B, "hour": torch.from_numpy(D.hour[i0:i1].astype(np.int64)),
         "dow": torch.from_numpy(D.dow[i0:i1].astype(np.int64)),
         "y": torch.from_numpy(D.label[i0:i1].copy()),
         "user": torch.from_numpy(vocabs[0](D.user[i0:i1])),
         "item": torch.from_numpy(vocabs[1](D.item[i0:i1])), "tabs": []}
    cnt = D.clock_cnt[i0:i1].astype(np.int64)                   # (B, 24 * NC), (t, c) order
    place = D.clock_off[i0:i1, None] + np.cumsum(cnt, axis=1) - cnt  # first place of (b, t, c)
    cnt, place = cnt.reshape(B, HOURS, NC), place.reshape(B, HOURS, NC)
    samples = np.arange(i0, i1)
    for f in range(F):
        st, en = D.fval_off[samples * F + f], D.fval_off[samples * F + f + 1]
        lens = en - st
        idx = [vocabs[2 + f](D.fval[ranges(st, lens)])]
        w = np.repeat(np.float32(1) / np.maximum(lens, 1).astype(np.float32), lens)
        bag_sizes = [lens]
        clocks = [c for c in range(NC) if D.meta["clock_fields"][c] == f]
        occ_b, occ_t, occ_p = [], [], []
        for c in clocks:
            n = cnt[:, :, c].ravel()                            # (B * 24), sample-major
            idx.append(vocabs[2 + f](D.clock_val[ranges(place[:, :, c].ravel(), n)]))
            occ_b.append(np.repeat(np.repeat(np.arange(B), HOURS), n))
            occ_t.append(np.repeat(np.tile(np.arange(HOURS), B), n))
            occ_p.append(np.repeat(np.float32(1) / np.maximum(n, 1).astype(np.float32), n))
            bag_sizes.append(cnt[:, :, c].sum(axis=1))
        sizes = np.concatenate(bag_sizes)
        cat = lambda xs, dt: torch.from_numpy(np.concatenate(xs).astype(dt) if xs
                                              else np.zeros(0, dt))
        b["tabs"].append({
            "idx": cat(idx, np.int64), "w_field": torch.from_numpy(w),
            "offsets": torch.from_numpy((np.cumsum(sizes) - sizes).astype(np.int64)),
            "clocks": clocks, "occ_b": cat(occ_b, np.int64), "occ_t": cat(occ_t, np.int64),
            "occ_p": cat(occ_p, np.float32),
        })
    return b


# ---- the model --------------------------------------------------------------------------

class Model(torch.nn.Module):
    def __init__(self, D, dense, rows):
        super().__init__()
        m = D.meta
        self.F, self.NC, self.d, self.T = D.F, D.NC, D.d, D.T
        self.L, self.n_mlp = m["cross_layers"], len(m["mlp"])
        self.task_w = [float(np.float32(w)) for w in m["task_weights"]]
        self.G = gaussian_table(float(m["clock_sigma"]))
        P = lambda a: torch.nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32)))
        self.p = torch.nn.ParameterDict({k.replace(".", "_"): P(v) for k, v in dense.items()})
        self.tab = torch.nn.ParameterList([P(r) for r in rows])
        self.x_clock = 4 + self.F  # x0 segment of clock field 0

    def forward(self, b):
        B, d, p = b["B"], self.d, self.p
        seg = [None] * (4 + self.F + self.NC)
        seg[0] = Fn.embedding(b["user"], self.tab[0], sparse=True)
        seg[1] = Fn.embedding(b["item"], self.tab[1], sparse=True)
        for f, tb in enumerate(b["tabs"]):
            w = tb["w_field"]
            if tb["clocks"]:
                cw = self.G[b["hour"][tb["occ_b"]], tb["occ_t"]] * tb["occ_p"]
                w = torch.cat([w, cw])
            out = Fn.embedding_bag(tb["idx"], self.tab[2 + f], tb["offsets"], mode="sum",
                                   per_sample_weights=w, sparse=True)
            seg[2 + f] = out[:B]
            for j, c in enumerate(tb["clocks"]):
                seg[self.x_clock + c] = out[B * (j + 1):B * (j + 2)]
        seg[2 + self.F] = p["hour"][b["hour"]]
        seg[3 + self.F] = p["dow"][b["dow"]]
        x0 = torch.cat(seg, dim=1)
        x = x0
        for l in range(self.L):
            x = x0 * Fn.linear(x, p[f"cross_{l}_w"], p[f"cross_{l}_b"]) + x
        a = x0
        for i in range(self.n_mlp):
            a = torch.relu(Fn.linear(a, p[f"mlp_{i}_w"], p[f"mlp_{i}_b"]))
        return Fn.linear(torch.cat([x, a], dim=1), p["head_w"], p["head_b"])

    def loss(self, logits, y):
        return sum(self.task_w[t] * Fn.binary_cross_entropy_with_logits(logits[:, t], y[:, t])
                   for t in range(self.T))

    def dense_params(self):
        return list(self.p.values())


class Trainer:
    """Adam on the dense tensors, sparse Adagrad with L2 on the rows touched."""

    def __init__(self, model, meta, foreach):
        self.m, self.l2 = model, meta["l2_emb"]
        self.adam = torch.optim.Adam(model.dense_params(), lr=meta["lr"],
                                     betas=(meta["adam_beta1"], meta["adam_beta2"]),
                                     eps=meta["adam_eps"], foreach=foreach)
        self.adagrad = torch.optim.Adagrad(list(model.tab), lr=meta["emb_lr"], eps=1e-10,
                                           initial_accumulator_value=0.0)

    def step(self, b):
        self.adam.zero_grad(set_to_none=True)
        self.adagrad.zero_grad(set_to_none=True)
        loss = self.m.loss(self.m(b), b["y"])
        loss.backward()
        with torch.no_grad():
            for t in self.m.tab:
                g = t.grad.coalesce()
                i = g.indices()
                t.grad = torch.sparse_coo_tensor(i, g.values() + self.l2 * t[i[0]], g.shape)
        self.adam.step()
        self.adagrad.step()
        return loss.item()


# ---- checks -------------------------------------------------------------------------------

def full_rows(D, vocabs, tables):
    """Rows of a (trained) C table laid out in the initial tables' order;
    ids C never saw are zero (a cold start, as C predicts them)."""
    out = []
    for t, (ids, rows) in enumerate(tables):
        init_ids = D.npy(f"init_ids_{t}")
        full = np.zeros((len(init_ids), D.d), np.float32)
        full[vocabs[t](ids)] = rows
        out.append(full)
    return out


def ref_events(D, n):
    """The first n samples in dcnv2_reference's event format."""
    evs = []
    cnt = D.clock_cnt.reshape(D.n, HOURS, D.NC)
    for i in range(n):
        vals = [[int(v) for v in D.fval[D.fval_off[i * D.F + f]:D.fval_off[i * D.F + f + 1]]]
                for f in range(D.F)]
        clock, o = {}, D.clock_off[i]
        for t in range(HOURS):
            for c in range(D.NC):
                k = int(cnt[i, t, c])
                if k:
                    clock[(t, c)] = [(int(D.clock_val[o + j]), float(D.clock_score[o + j]))
                                     for j in range(k)]
                o += k
        evs.append({"ts": int(D.ts[i]), "tz": int(D.tz[i]), "user": int(D.user[i]),
                    "item": int(D.item[i]), "vals": vals,
                    "labels": [float(x) for x in D.label[i]], "clock": clock})
    return evs


def check_reference(D, dense, tables, probs_batched):
    """dcnv2_reference.forward (float64, per sample) on the first 8 samples."""
    case = D.case()
    W = {k: torch.tensor(v, dtype=torch.float64) for k, v in dense.items()}
    rows = {t: ([int(x) for x in ids], torch.tensor(r, dtype=torch.float64))
            for t, (ids, r) in enumerate(tables)}
    torch.set_default_dtype(torch.float64)
    try:
        with torch.no_grad():
            p, _ = ref.forward(case, W, rows, ref_events(D, 8))
    finally:
        torch.set_default_dtype(torch.float32)
    return float(np.max(np.abs(p.numpy() - probs_batched[:8].astype(np.float64))))


def checks(D, vocabs, batches, foreach):
    dense, tables = D.dense("trained"), D.tables("trained")
    model = Model(D, dense, full_rows(D, vocabs, tables))
    with torch.no_grad():
        probs = torch.sigmoid(model(batches[0])).numpy()
    d_c = float(np.max(np.abs(probs - D.check_probs)))
    d_ref = check_reference(D, dense, tables, probs)
    model = Model(D, D.dense("init"), [r for _, r in D.tables("init")])
    tr = Trainer(model, D.meta, foreach)
    losses = np.array([tr.step(batches[k]) for k in range(len(D.check_losses))])
    d_loss = float(np.max(np.abs(losses - D.check_losses) / np.abs(D.check_losses)))
    ok = d_c < 1e-5 and d_ref < 1e-5 and d_loss < 1e-4
    print(json.dumps({"bench": "torch_check", "max_abs_diff_probs_vs_c": d_c,
                      "max_abs_diff_probs_vs_dcnv2_reference": d_ref,
                      "steps": len(losses), "max_rel_diff_losses_vs_c": d_loss,
                      "loss_first": float(losses[0]), "loss_last": float(losses[-1]),
                      "ok": ok}), flush=True)
    return ok


# ---- timing --------------------------------------------------------------------------------

def run(D, batches, threads, rep, foreach):
    torch.set_num_threads(threads)
    model = Model(D, D.dense("init"), [r for _, r in D.tables("init")])
    tr = Trainer(model, D.meta, foreach)
    l1 = load1()
    w0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    lsum, n = 0.0, 0
    for b in batches:
        lsum += tr.step(b) * b["B"]
        n += b["B"]
    w, c, p = time.perf_counter() - w0, time.thread_time() - c0, time.process_time() - p0
    out = {"bench": "torch_train_step", "threads": threads, "rep": rep, "samples": n,
           "adam_foreach": foreach, "wall_seconds": round(w, 3), "thread_cpu_seconds": round(c, 3),
           "process_cpu_seconds": round(p, 3), "samples_per_s_wall": round(n / w),
           "samples_per_s_thread_cpu": round(n / c), "mean_loss": round(lsum / n, 5),
           "load1": l1}
    print(json.dumps(out), flush=True)
    return out


def c_medians(path):
    """The C model step's median samples/s per thread count from bench_train's output."""
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            j = json.loads(line)
            if j.get("bench") == "train_model_step":
                runs.setdefault(j["threads"], []).append(j)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--c-json", help="bench_train's output, for the ratio")
    ap.add_argument("--foreach", type=int, default=1, help="Adam(foreach=...) (1.13 default: 0)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    D = Dump(a.dump)
    vocabs = [Vocab(ids) for ids, _ in D.tables("init")]
    t0 = time.perf_counter()
    batches = [make_batch(D, vocabs, i, min(i + D.B, D.n)) for i in range(0, D.n, D.B)]
    print(json.dumps({"bench": "torch_setup", "torch": torch.__version__,
                      "samples": D.n, "batches": len(batches),
                      "batch_build_seconds_untimed": round(time.perf_counter() - t0, 2),
                      "blas": "see torch.__config__", "load1": load1()}), flush=True)
    if not checks(D, vocabs, batches, bool(a.foreach)):
        print("torch_bench: check failed", file=sys.stderr)
        return 1
    res = {}
    for th in [int(x) for x in a.threads.split(",")]:
        res[th] = [run(D, batches, th, k, bool(a.foreach)) for k in range(a.reps)]
    if a.c_json:
        c = c_medians(a.c_json)
        for th, runs in res.items():
            if th not in c:
                continue
            key = "samples_per_s_thread_cpu" if th == 1 else "samples_per_s_wall"
            cs = float(np.median([r[key] for r in c[th]]))
            ts = float(np.median([r[key] for r in runs]))
            print(json.dumps({"bench": "c_vs_torch_train", "threads": th,
                              "basis": key.replace("samples_per_s_", ""),
                              "c_samples_per_s": round(cs), "torch_samples_per_s": round(ts),
                              "ratio": round(cs / ts, 2), "target_ratio": 2.0,
                              "met": cs / ts >= 2.0}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
