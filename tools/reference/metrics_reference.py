#!/usr/bin/python3
"""metrics_reference.py: writes tests/data/metrics_fixture.txt, the expected
metrics of src/metrics.c computed independently with sklearn and numpy.

Run from the project root with Debian's python (sklearn, numpy):
    /usr/bin/python3 tools/reference/metrics_reference.py [out_path]

Definitions (docs/METRICS.md): AUC = sklearn.metrics.roc_auc_score on labels
binarised at 0.5; NaN when a class is missing (sklearn raises there). UAUC =
mean over users with both classes of each user's AUC; GAUC = the same
weighted by the user's sample count. logloss = sklearn.metrics.log_loss with
eps=1e-7 for 0/1 labels, and the numpy formula (clip p to [1e-7, 1-1e-7])
for soft labels (sklearn treats soft labels as classes); both are
cross-checked against each other on 0/1 labels. calibration = mean pred /
mean label (NaN when the mean label is 0); pos_rate = mean label.

Format, one case after another:
    case <name> <n>
    expect <auc> <uauc> <gauc> <auc_users> <logloss> <calibration> <pos_rate>
    <pred> <label> <user>          (n lines; pred, label float32 as %.9g)
    end
Predictions and labels are float32 (what the C code sees) and are widened
exactly to float64 for sklearn. The generator is seeded: output is stable.
"""
import sys

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

EPS = 1e-7


def auc_or_nan(y, p):
    yb = (y >= 0.5).astype(np.int64)
    if yb.min() == yb.max():
        return float("nan")
    return float(roc_auc_score(yb, p))


def user_aucs(y, p, u):
    aucs, counts = [], []
    for uid in np.unique(u):
        m = u == uid
        a = auc_or_nan(y[m], p[m])
        if not np.isnan(a):
            aucs.append(a)
            counts.append(int(m.sum()))
    if not aucs:
        return float("nan"), float("nan"), 0
    aucs, counts = np.array(aucs), np.array(counts, dtype=np.float64)
    return float(np.mean(aucs)), float(np.sum(aucs * counts) / np.sum(counts)), len(aucs)


def numpy_logloss(y, p):
    c = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(c) + (1 - y) * np.log1p(-c)))


def logloss(y, p):
    ref = numpy_logloss(y, p)
    if np.all((y == 0) | (y == 1)):
        sk = float(log_loss(y, p, eps=EPS, labels=[0, 1]))
        assert abs(sk - ref) <= 1e-12 * max(1.0, abs(ref)), (sk, ref)
        return sk
    return ref


def expected(p32, y32, u):
    p, y = p32.astype(np.float64), y32.astype(np.float64)
    uauc, gauc, users = user_aucs(y, p, u)
    my = float(np.mean(y))
    calib = float(np.mean(p) / my) if my > 0 else float("nan")
    return [auc_or_nan(y, p), uauc, gauc, users, logloss(y, p), calib, my]


def write_case(f, name, p, y, u):
    p = np.asarray(p, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    u = np.asarray(u, dtype=np.uint64)
    assert p.shape == y.shape == u.shape
    e = expected(p, y, u)
    f.write("case %s %d\n" % (name, len(p)))
    f.write("expect %.17g %.17g %.17g %d %.17g %.17g %.17g\n" % tuple(e))
    for pi, yi, ui in zip(p, y, u):
        f.write("%.9g %.9g %d\n" % (pi, yi, ui))
    f.write("end\n")


def bern(rng, n, rate):
    return (rng.random(n) < rate).astype(np.float32)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/metrics_fixture.txt"
    rng = np.random.default_rng(20240714)
    with open(out, "w") as f:
        f.write("# metrics fixture: written by tools/reference/metrics_reference.py\n")

        n = 200  # continuous scores with some signal
        y = bern(rng, n, 0.3)
        write_case(f, "random", rng.random(n) * 0.5 + 0.3 * y, y, rng.integers(1, 11, n))

        n = 300  # five score levels: large tie groups across classes
        y = bern(rng, n, 0.4)
        p = np.round(np.clip(rng.random(n) * 0.6 + 0.3 * y, 0, 1) * 4) / 4
        write_case(f, "many_ties", p, y, rng.integers(1, 16, n))

        n = 50  # every prediction equal: AUC and every user AUC are 1/2
        write_case(f, "all_equal", np.full(n, 0.5), bern(rng, n, 0.5), rng.integers(1, 6, n))

        n = 1000  # scores quantized to 2 decimals
        y = bern(rng, n, 0.35)
        p = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0.001, 0.999), 2)
        write_case(f, "quantized", p, y, rng.integers(1, 41, n))

        # users 1-10 all positive, 11-20 all negative, 21-30 mixed
        u = rng.integers(1, 31, 400)
        y = np.where(u <= 10, 1.0, np.where(u <= 20, 0.0, bern(rng, 400, 0.5)))
        write_case(f, "one_class_users", rng.random(400), y, u)

        # 150 users with one sample each, 5 users with 30 each
        u = np.concatenate([np.arange(100, 250), np.repeat(np.arange(1, 6), 30)])
        rng.shuffle(u)
        y = bern(rng, len(u), 0.4)
        write_case(f, "single_sample_users", rng.random(len(u)) + 0.2 * y, y, u)

        n = 2000  # 2% positives
        y = bern(rng, n, 0.02)
        write_case(f, "imbalanced", rng.beta(1, 20, n) + 0.05 * y, y, rng.integers(1, 51, n))

        # predictions at 0 and 1 and beyond the clip, including confident misses
        p = np.array([0, 1, 0, 1, 1e-9, 1 - 1e-9, 0.5, 0.3, 0.7, 1e-7, 2e-7, 0.9999999])
        y = np.array([0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0])
        write_case(f, "clip", p, y, np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]))

        n = 300  # soft labels (label >= 0.5 positive for AUC)
        y = np.round(rng.random(n), 3)
        write_case(f, "soft_labels", np.clip(y * 0.5 + rng.random(n) * 0.5, 0, 1), y,
                   rng.integers(1, 9, n))

        # scores outside [0, 1] and signed zeros that must tie
        p = np.array([-0.0, 0.0, -0.0, 0.0, -1.5, 2.5, -1.5, 3.0, 0.0, -0.0])
        y = np.array([1, 0, 0, 1, 0, 1, 1, 0, 1, 0])
        write_case(f, "signed_scores", p, y, np.array([1, 1, 2, 2, 1, 2, 1, 2, 3, 3]))

        # no user has both classes: uauc, gauc NaN
        write_case(f, "no_mixed_user", [0.2, 0.8, 0.4, 0.6], [0, 1, 0, 1], [1, 2, 1, 2])

        # one class globally: auc NaN, calibration NaN (mean label 0)
        write_case(f, "all_negative", [0.1, 0.4, 0.3], [0, 0, 0], [1, 1, 2])

        # large: ~5000 samples, 200 users of Zipf-like sizes, half quantized
        n = 5000
        w = 1.0 / np.arange(1, 201) ** 0.8
        u = rng.choice(np.arange(1, 201), size=n, p=w / w.sum()) * 7919 + 2**40
        y = bern(rng, n, 0.25)
        p = 1 / (1 + np.exp(-(rng.normal(-1.2, 1.0, n) + 1.0 * y)))
        q = rng.random(n) < 0.5
        p[q] = np.round(p[q], 2)
        write_case(f, "large", p, y, u)


if __name__ == "__main__":
    main()
