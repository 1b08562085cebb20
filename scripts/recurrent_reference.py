#!/usr/bin/env python3
"""Reference values for dpcot's recurrent mixers, from their naive token-by-token recurrences.

The three recurrences are written here the way their small reference implementations write
them, in plain Python (no dependencies), independently of the Rust code:

- gated linear attention: flash-linear-attention's `naive_recurrent_gla`
  (S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t);
- DeltaNet: flash-linear-attention's `delta_rule_recurrence`
  (u_t = beta_t (v_t - S_{t-1}^T k_t), S_t = S_{t-1} + k_t u_t^T, o_t = S_t^T q_t);
- the selective scan: mamba-minimal's `selective_scan`
  (h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t h_t + D u_t).

Queries are given already scaled (the kernels take them so). The inputs are a fixed
deterministic function of their index, so the file is reproducible byte for byte:

    python3 scripts/recurrent_reference.py > crates/dpcot-attention/tests/fixtures/recurrent_reference.json

`cargo test -p dpcot-attention` (tests/suite/recurrent.rs) runs dpcot's parallel forms on the
same inputs and compares with a stated tolerance.
"""

import json
import math


def values(n, seed, scale=1.0):
    """n numbers in [-scale, scale), a fixed function of (seed, index)."""
    return [scale * math.sin(1.7 * i + 0.37 * seed + 0.1 * i * i % 3.1) for i in range(n)]


def reshape(flat, shape):
    if len(shape) == 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [reshape(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def flatten(x):
    if isinstance(x, list):
        return [v for item in x for v in flatten(item)]
    return [x]


def zeros(rows, cols):
    return [[0.0] * cols for _ in range(rows)]


def gla(q, k, v, g):
    """[b][h][l][d] each; g is the log-gate (<= 0)."""
    out = []
    for qb, kb, vb, gb in zip(q, k, v, g):
        heads = []
        for qh, kh, vh, gh in zip(qb, kb, vb, gb):
            dk, dv = len(kh[0]), len(vh[0])
            s = zeros(dk, dv)
            rows = []
            for qt, kt, vt, gt in zip(qh, kh, vh, gh):
                for i in range(dk):
                    decay = math.exp(gt[i])
                    for j in range(dv):
                        s[i][j] = s[i][j] * decay + kt[i] * vt[j]
                rows.append([sum(qt[i] * s[i][j] for i in range(dk)) for j in range(dv)])
            heads.append(rows)
        out.append(heads)
    return out


def delta_rule(q, k, v, beta):
    """[b][h][l][d] each; beta [b][h][l]."""
    out = []
    for qb, kb, vb, bb in zip(q, k, v, beta):
        heads = []
        for qh, kh, vh, bh in zip(qb, kb, vb, bb):
            dk, dv = len(kh[0]), len(vh[0])
            s = zeros(dk, dv)
            rows = []
            for qt, kt, vt, bt in zip(qh, kh, vh, bh):
                read = [sum(kt[i] * s[i][j] for i in range(dk)) for j in range(dv)]
                u = [bt * (vt[j] - read[j]) for j in range(dv)]
                for i in range(dk):
                    for j in range(dv):
                        s[i][j] += kt[i] * u[j]
                rows.append([sum(qt[i] * s[i][j] for i in range(dk)) for j in range(dv)])
            heads.append(rows)
        out.append(heads)
    return out


def selective_scan(u, delta, a, bm, cm, d):
    """u, delta [b][l][di]; a [di][n]; bm, cm [b][l][n]; d [di]."""
    out = []
    for ub, db, bb, cb in zip(u, delta, bm, cm):
        di, n = len(a), len(a[0])
        h = zeros(di, n)
        rows = []
        for ut, dt, bt, ct in zip(ub, db, bb, cb):
            y = []
            for c in range(di):
                for s in range(n):
                    h[c][s] = math.exp(dt[c] * a[c][s]) * h[c][s] + dt[c] * bt[s] * ut[c]
                y.append(sum(h[c][s] * ct[s] for s in range(n)) + d[c] * ut[c])
            rows.append(y)
        out.append(rows)
    return out


def unit_rows(x):
    """Normalise the last dimension to unit L2 norm (DeltaNet's keys)."""
    if isinstance(x[0], list):
        return [unit_rows(item) for item in x]
    norm = math.sqrt(sum(v * v for v in x))
    return [v / norm for v in x]


def main():
    b, h, l, d = 2, 2, 11, 4
    shape = [b, h, l, d]
    size = b * h * l * d
    q = reshape(values(size, 1, 0.5), shape)
    k = reshape(values(size, 2), shape)
    v = reshape(values(size, 3), shape)
    # Log-gates in (-3, 0]: from nearly no decay to strong decay.
    g = reshape([-1.5 * (1.0 + x) for x in values(size, 4)], shape)
    unit_k = unit_rows(k)
    beta = reshape([0.5 + 0.45 * x for x in values(b * h * l, 5)], [b, h, l])
    beta2 = reshape([1.0 + 0.95 * x for x in values(b * h * l, 6)], [b, h, l])

    di, n = 6, 3
    u = reshape(values(b * l * di, 7), [b, l, di])
    # Delta > 0, as after softplus; A < 0.
    delta = reshape([0.3 + 0.25 * x for x in values(b * l * di, 8)], [b, l, di])
    a = reshape([-(1.0 + (i % n)) * (1.0 + 0.2 * x) for i, x in enumerate(values(di * n, 9))], [di, n])
    bm = reshape(values(b * l * n, 10), [b, l, n])
    cm = reshape(values(b * l * n, 11), [b, l, n])
    dskip = values(di, 12)

    fixture = {
        "generator": "scripts/recurrent_reference.py",
        "gla": {
            "shape": shape,
            "q": flatten(q), "k": flatten(k), "v": flatten(v), "g": flatten(g),
            "out": flatten(gla(q, k, v, g)),
        },
        "delta_rule": {
            "shape": shape,
            "q": flatten(q), "k": flatten(unit_k), "v": flatten(v),
            "beta": flatten(beta), "out": flatten(delta_rule(q, unit_k, v, beta)),
            "beta_negative": flatten(beta2),
            "out_negative": flatten(delta_rule(q, unit_k, v, beta2)),
        },
        "selective_scan": {
            "shape": [b, l, di, n],
            "u": flatten(u), "delta": flatten(delta), "a": flatten(a),
            "b": flatten(bm), "c": flatten(cm), "d": dskip,
            "out": flatten(selective_scan(u, delta, a, bm, cm, dskip)),
        },
    }
    print(json.dumps(fixture, indent=1))


if __name__ == "__main__":
    main()
