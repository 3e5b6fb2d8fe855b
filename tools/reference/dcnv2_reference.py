#!/usr/bin/python3
"""dcnv2_reference.py: an independent PyTorch (1.13) implementation of
iclock's ranking model, used to write the fixture that tests/test_model.c
checks the C model against.

It builds the same network from the same weights (drawn here, rounded to
float32), computes in float64 with autograd, and writes, per case: the
configuration, the inputs (a batch of B events with their clocks), every
weight and embedding row, the per-task probabilities, the loss, every
gradient (dense tensors and embedding rows), and the losses and final
dense weights of 5 training steps on the same batch (torch.optim.Adam on
the dense tensors; Adagrad, or Adam with a per-row step, on the rows the
batch touched, written out here because the C side updates rows sparsely).

A case with history = 1 also appends, per clock field, the plain mean of
the 24 slots' pooled values (the time-blind history block) to x0.

It shares no code with the C side: the clock is pooled the plain way (per
hour slot, then weighted over slots), local time is computed here, and the
layers are torch's. Run by `make fixtures`:

    /usr/bin/python3 tools/reference/dcnv2_reference.py tests/data/model_fixture.txt

Text format, one record a line: `key args... values...`; see write_case().
"""
import math
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

HOURS = 24
B = 8
D_EMB = 4
N_FIELDS = 3          # f0 single-valued, f1 multi-valued (0..3 values), f2 single
CLOCK_FIELDS = [0, 1]
TOP_K = 3
MLP = [16, 8]
TASK_W = [1.0, 0.5]
STEPS = 5

CASES = [
    dict(name="gaussian", clock="gaussian", sigma=1.0, learn=0, continuous=0, pool="mean",
         layers=2, rank=0, structure="parallel", emb_optim="adagrad"),
    dict(name="gaussian_learn", clock="gaussian", sigma=1.5, learn=1, continuous=1, pool="score",
         layers=2, rank=2, structure="stacked", emb_optim="adagrad"),
    dict(name="adaptive", clock="adaptive", sigma=1.0, learn=0, continuous=0, pool="mean",
         layers=2, rank=0, structure="parallel", emb_optim="adagrad"),
    dict(name="naive", clock="naive", sigma=1.0, learn=0, continuous=0, pool="score",
         layers=1, rank=3, structure="parallel", emb_optim="adagrad"),
    dict(name="none", clock="none", sigma=1.0, learn=0, continuous=0, pool="mean",
         layers=2, rank=0, structure="stacked", emb_optim="adam"),
    # history = 1: x0 also gets v_hist = (1/24) sum_t v_t per clock field
    dict(name="gaussian_history", clock="gaussian", sigma=1.0, learn=0, continuous=0, pool="mean",
         layers=2, rank=0, structure="parallel", emb_optim="adagrad", history=1),
    dict(name="none_history", clock="none", sigma=1.0, learn=0, continuous=0, pool="score",
         layers=2, rank=0, structure="parallel", emb_optim="adam", history=1),
    dict(name="naive_history", clock="naive", sigma=1.0, learn=0, continuous=0, pool="mean",
         layers=1, rank=3, structure="stacked", emb_optim="adagrad", history=1),
]
TRAIN = dict(lr=0.01, emb_lr=0.05, l2_emb=0.001, beta1=0.9, beta2=0.999, eps=1e-8)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


# ---- inputs -----------------------------------------------------------------

def make_batch(rs):
    """B events (ids, values, local time, labels) and their clocks."""
    vocab = {"user": [int(x) for x in rs.randint(1, 2**62, size=4)],
             "item": [int(x) for x in rs.randint(1, 2**62, size=6)]}
    sizes = [5, 6, 3]
    for f in range(N_FIELDS):
        vocab[f] = [int(x) for x in rs.randint(1, 2**62, size=sizes[f])]
    events = []
    for b in range(B):
        ev = {
            "ts": int(1693526400 + rs.randint(0, 14 * 86400)),
            "tz": int(rs.choice([-300, 0, 60, 480, 330])),
            "user": vocab["user"][rs.randint(4)],
            "item": vocab["item"][rs.randint(6)],
            "vals": [],
            "labels": [float(rs.randint(2)), float(rs.randint(2))],
        }
        for f in range(N_FIELDS):
            if f == 1:
                n = [0, 1, 2, 3][b % 4]  # sample 0 has an empty field
                ev["vals"].append([int(v) for v in rs.choice(vocab[f], size=n, replace=False)])
            else:
                ev["vals"].append([vocab[f][rs.randint(sizes[f])]])
        # clock: slot t, clock field c -> list of (value, score); sample 3 has none
        clock = None
        if b != 3:
            clock = {}
            h = local_hour(ev["ts"], ev["tz"])
            slots = set(int(t) for t in rs.choice(HOURS, size=7, replace=False))
            if b % 2 == 0:
                slots.add(h)  # the naive clock needs its own hour filled sometimes
            for t in sorted(slots):
                for c, f in enumerate(CLOCK_FIELDS):
                    n = int(rs.randint(0, TOP_K + 1))
                    vals = rs.choice(vocab[f], size=n, replace=False)
                    clock[(t, c)] = [(int(v), float(f32(rs.uniform(0.5, 4.0)))) for v in vals]
        ev["clock"] = clock
        events.append(ev)
    return vocab, events


def local_seconds(ts, tz):
    return ts + tz * 60


def local_hour(ts, tz):
    return (local_seconds(ts, tz) % 86400) // 3600


def local_dow(ts, tz):
    return (local_seconds(ts, tz) // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0


def local_hour_frac(ts, tz):
    return (local_seconds(ts, tz) % 86400) / 3600.0


# ---- the network ---------------------------------------------------------------

def shapes(case):
    """Named dense tensors in the C parameter block order (out x in)."""
    nclock = 0 if case["clock"] == "none" else len(CLOCK_FIELDS)
    nhist = len(CLOCK_FIELDS) if case.get("history") else 0
    D = (4 + N_FIELDS + nclock + nhist) * D_EMB
    out = [("hour", (HOURS, D_EMB)), ("dow", (7, D_EMB))]
    if case["clock"] == "adaptive":
        out.append(("clock.A", (HOURS, HOURS)))
    if case["clock"] == "gaussian" and case["learn"]:
        out.append(("clock.log_sigma", (1,)))
    r = case["rank"]
    for l in range(case["layers"]):
        if r == 0:
            out.append((f"cross.{l}.w", (D, D)))
        else:
            out.append((f"cross.{l}.v", (r, D)))
            out.append((f"cross.{l}.u", (D, r)))
        out.append((f"cross.{l}.b", (D,)))
    fan = D
    for i, h in enumerate(MLP):
        out.append((f"mlp.{i}.w", (h, fan)))
        out.append((f"mlp.{i}.b", (h,)))
        fan = h
    S = D + MLP[-1] if case["structure"] == "parallel" else MLP[-1]
    out.append(("head.w", (len(TASK_W), S)))
    out.append(("head.b", (len(TASK_W),)))
    return D, out


def init_weights(case, rs):
    D, shp = shapes(case)
    W = {}
    for name, s in shp:
        if name == "clock.log_sigma":
            v = np.array([math.log(case["sigma"]) + 0.1])
        elif name in ("hour", "dow"):
            v = rs.normal(0, 0.3, size=s)
        elif name.endswith(".b") or name == "clock.A":
            v = rs.normal(0, 0.3, size=s)
        else:
            fan_in, fan_out = (s[1], s[0])
            a = math.sqrt(6.0 / (fan_in + fan_out))
            v = rs.uniform(-a, a, size=s)
        W[name] = torch.tensor(f32(v), requires_grad=True)
    return W


def tables_of(vocab):
    """Table index -> list of ids: 0 user, 1 item, 2 + f field f."""
    return {0: vocab["user"], 1: vocab["item"], **{2 + f: vocab[f] for f in range(N_FIELDS)}}


def init_rows(vocab, rs):
    rows = {}
    for tab, ids in tables_of(vocab).items():
        rows[tab] = (list(ids), torch.tensor(f32(rs.normal(0, 0.3, size=(len(ids), D_EMB))),
                                             requires_grad=True))
    return rows


def emb(rows, tab, v):
    ids, t = rows[tab]
    return t[ids.index(v)]


def clock_weights(case, W, h, hf):
    if case["clock"] == "naive":
        return torch.tensor([1.0 if t == h else 0.0 for t in range(HOURS)])
    if case["clock"] == "adaptive":
        return torch.softmax(W["clock.A"][h], dim=0)
    sigma = torch.exp(W["clock.log_sigma"][0]) if case["learn"] else torch.tensor(case["sigma"])
    out = []
    for t in range(HOURS):
        if case["continuous"]:
            x = abs(hf - (t + 0.5)) % 24.0
            delta = min(x, 24.0 - x)
        else:
            delta = min((t - h) % 24, (h - t) % 24)
        out.append(torch.exp(-delta ** 2 / (2 * sigma ** 2)) / (math.sqrt(2 * math.pi) * sigma))
    return torch.stack(out)


def slot_value(case, rows, slot, f):
    """v_t^f: the (mean or score-weighted) pool of one slot's values."""
    # the slot's pooling weights, rounded as the C side computes them
    # (float32 sum, float32 division), so the double paths agree
    total = np.float32(0)
    for _, s in slot:
        total = np.float32(total + np.float32(s))
    vt = torch.zeros(D_EMB)
    for v, s in slot:
        if case["pool"] == "score":
            p = float(np.float32(np.float32(s) / total))
        else:
            p = float(np.float32(1.0) / np.float32(len(slot)))
        vt = vt + p * emb(rows, 2 + f, v)
    return vt


def clock_embedding(case, W, rows, ev):
    """v_clock: per slot the (mean or score-weighted) pool of its values,
    then the clock-weighted sum over the 24 slots; per clock field."""
    h, hf = local_hour(ev["ts"], ev["tz"]), local_hour_frac(ev["ts"], ev["tz"])
    cw = clock_weights(case, W, h, hf)
    parts = []
    for c, f in enumerate(CLOCK_FIELDS):
        acc = torch.zeros(D_EMB)
        for t in range(HOURS):
            slot = (ev["clock"] or {}).get((t, c), [])
            if not slot:
                continue
            acc = acc + cw[t] * slot_value(case, rows, slot, f)
        parts.append(acc)
    return parts


def history_embedding(case, rows, ev):
    """v_hist: the plain mean of the 24 slots' pooled values (an empty slot
    counts as zero), per clock field; blind to the current time."""
    parts = []
    for c, f in enumerate(CLOCK_FIELDS):
        acc = torch.zeros(D_EMB)
        for t in range(HOURS):
            slot = (ev["clock"] or {}).get((t, c), [])
            if slot:
                acc = acc + slot_value(case, rows, slot, f)
        parts.append(acc / HOURS)
    return parts


def forward(case, W, rows, events):
    xs = []
    for ev in events:
        parts = [emb(rows, 0, ev["user"]), emb(rows, 1, ev["item"])]
        for f in range(N_FIELDS):
            vals = ev["vals"][f]
            if vals:  # mean pool, with C's float32 weight 1/n
                parts.append(torch.stack([emb(rows, 2 + f, v) for v in vals]).sum(0)
                             * float(f32(1.0 / len(vals))))
            else:
                parts.append(torch.zeros(D_EMB))
        parts.append(W["hour"][local_hour(ev["ts"], ev["tz"])])
        parts.append(W["dow"][local_dow(ev["ts"], ev["tz"])])
        if case["clock"] != "none":
            parts += clock_embedding(case, W, rows, ev)
        if case.get("history"):
            parts += history_embedding(case, rows, ev)
        xs.append(torch.cat(parts))
    x0 = torch.stack(xs)
    x = x0
    for l in range(case["layers"]):
        if case["rank"] == 0:
            z = x @ W[f"cross.{l}.w"].T + W[f"cross.{l}.b"]
        else:
            z = (x @ W[f"cross.{l}.v"].T) @ W[f"cross.{l}.u"].T + W[f"cross.{l}.b"]
        x = x0 * z + x
    a = x0 if case["structure"] == "parallel" else x
    for i in range(len(MLP)):
        a = torch.relu(a @ W[f"mlp.{i}.w"].T + W[f"mlp.{i}.b"])
    shared = torch.cat([x, a], dim=1) if case["structure"] == "parallel" else a
    logits = shared @ W["head.w"].T + W["head.b"]
    y = torch.tensor([ev["labels"] for ev in events])
    loss = sum(float(f32(TASK_W[t])) *
               torch.nn.functional.binary_cross_entropy_with_logits(logits[:, t], y[:, t])
               for t in range(len(TASK_W)))
    return torch.sigmoid(logits), loss


def touched(case, events):
    """(table, id) of every row the C model reads for this batch: the naive
    clock reads only the current hour's slot; a history block, all slots."""
    out = set()
    for ev in events:
        out.add((0, ev["user"]))
        out.add((1, ev["item"]))
        for f in range(N_FIELDS):
            for v in ev["vals"][f]:
                out.add((2 + f, v))
        if (case["clock"] == "none" and not case.get("history")) or not ev["clock"]:
            continue
        h = local_hour(ev["ts"], ev["tz"])
        for (t, c), slot in ev["clock"].items():
            if case["clock"] == "naive" and t != h and not case.get("history"):
                continue
            for v, _ in slot:
                out.add((2 + CLOCK_FIELDS[c], v))
    return out


def train(case, W, rows, events):
    """STEPS steps on the same batch; returns the loss before each update."""
    opt = torch.optim.Adam(list(W.values()), lr=TRAIN["lr"],
                           betas=(TRAIN["beta1"], TRAIN["beta2"]), eps=TRAIN["eps"])
    state = {tab: (torch.zeros_like(t), torch.zeros_like(t), [0] * len(ids))
             for tab, (ids, t) in rows.items()}
    hit = touched(case, events)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        for _, t in rows.values():
            t.grad = None
        _, loss = forward(case, W, rows, events)
        loss.backward()
        losses.append(loss.item())
        opt.step()
        with torch.no_grad():
            for tab, (ids, t) in rows.items():
                s1, s2, steps = state[tab]
                for i, v in enumerate(ids):
                    if (tab, v) not in hit:
                        continue
                    g = t.grad[i] + TRAIN["l2_emb"] * t[i]
                    if case["emb_optim"] == "adagrad":
                        s1[i] += g * g
                        t[i] -= TRAIN["emb_lr"] * g / (torch.sqrt(s1[i]) + 1e-10)
                    else:
                        steps[i] += 1
                        b1, b2 = TRAIN["beta1"], TRAIN["beta2"]
                        s1[i] = b1 * s1[i] + (1 - b1) * g
                        s2[i] = b2 * s2[i] + (1 - b2) * g * g
                        bc1, bc2 = 1 - b1 ** steps[i], 1 - b2 ** steps[i]
                        t[i] -= TRAIN["emb_lr"] / bc1 * s1[i] / (torch.sqrt(s2[i]) / math.sqrt(bc2)
                                                                 + TRAIN["eps"])
    return losses


# ---- output ---------------------------------------------------------------------

def fmt(vals):
    return " ".join(repr(float(v)) for v in vals)


def write_case(out, case, seed):
    rs = np.random.RandomState(seed)
    vocab, events = make_batch(rs)
    W = init_weights(case, rs)
    rows = init_rows(vocab, rs)
    w = out.write
    w(f"case {case['name']}\n")
    cfg = dict(dim=D_EMB, fields=N_FIELDS, clock=case["clock"], clock_fields=" ".join(map(str, CLOCK_FIELDS)),
               top_k=TOP_K, clock_sigma=case["sigma"], clock_sigma_learn=case["learn"],
               clock_continuous=case["continuous"], clock_pool=case["pool"],
               cross_layers=case["layers"], cross_rank=case["rank"], mlp=" ".join(map(str, MLP)),
               structure=case["structure"], tasks=" ".join(repr(t) for t in TASK_W),
               emb_optim=case["emb_optim"], batch=B, **TRAIN)
    if case.get("history"):  # only when on: the older cases' text stays as it was
        cfg["history"] = case["history"]
    for k, v in cfg.items():
        w(f"cfg {k} {v}\n")
    # inputs
    for b, ev in enumerate(events):
        w(f"event {b} {ev['ts']} {ev['tz']} {ev['user']} {ev['item']} {fmt(ev['labels'])}\n")
        for f in range(N_FIELDS):
            w(f"values {b} {f} {len(ev['vals'][f])} {' '.join(map(str, ev['vals'][f]))}\n")
        if ev["clock"] is None:
            w(f"noclock {b}\n")
        else:
            for (t, c), slot in sorted(ev["clock"].items()):
                if slot:
                    w(f"slot {b} {t} {c} {len(slot)} "
                      + " ".join(f"{v} {repr(s)}" for v, s in slot) + "\n")
    for name, t in W.items():
        w(f"param {name} {t.numel()} {fmt(t.detach().flatten().tolist())}\n")
    for tab, (ids, t) in rows.items():
        for i, v in enumerate(ids):
            w(f"row {tab} {v} {fmt(t[i].tolist())}\n")
    # forward and gradients
    probs, loss = forward(case, W, rows, events)
    loss.backward()
    w(f"probs {probs.numel()} {fmt(probs.detach().flatten().tolist())}\n")
    w(f"loss {repr(loss.item())}\n")
    for name, t in W.items():
        w(f"grad {name} {t.numel()} {fmt(t.grad.flatten().tolist())}\n")
    hit = touched(case, events)
    for tab, (ids, t) in rows.items():
        for i, v in enumerate(ids):
            if (tab, v) in hit:
                w(f"rowgrad {tab} {v} {fmt(t.grad[i].tolist())}\n")
    # training
    for t in W.values():
        t.grad = None
    losses = train(case, W, rows, events)
    w(f"steploss {len(losses)} {fmt(losses)}\n")
    for name, t in W.items():
        w(f"final {name} {t.numel()} {fmt(t.detach().flatten().tolist())}\n")
    for tab, (ids, t) in rows.items():
        for i, v in enumerate(ids):
            w(f"finalrow {tab} {v} {fmt(t[i].tolist())}\n")
    w("end\n")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/model_fixture.txt"
    with open(path, "w") as out:
        out.write("# written by tools/reference/dcnv2_reference.py (make fixtures); do not edit\n")
        for i, case in enumerate(CASES):
            write_case(out, case, 1000 + i)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
