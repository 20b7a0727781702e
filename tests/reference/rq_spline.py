#!/usr/bin/python3
"""Writes tests/fixtures/rq-spline.safetensors: the rational-quadratic spline
of Durkan et al. (2019), "Neural Spline Flows", computed in float64 from the
paper's formulas, at random inputs and parameters, for tests/test_spline.c.

    /usr/bin/python3 tests/reference/rq_spline.py           # write the fixture
    /usr/bin/python3 tests/reference/rq_spline.py --check   # regenerate in
        memory and compare byte for byte with the committed file

Needs numpy only. The parameterization is flowgrad's (tensor/tensor.h): per
element 3K - 1 raw values, K widths and K heights through a softmax floored
at MIN_BIN per bin, K - 1 inner derivatives MIN_DERIVATIVE + softplus(r + c)
with c such that r = 0 gives 1, end derivatives 1, identity outside
[-B, B]. The inverse here is not the closed form: it bisects the forward map
to float64 resolution, so the C inverse is checked against an independent
computation.

Tensors (M elements, Q = 3K - 1; inputs are float32, expectations float64):
  forward.v (M), forward.h (M, Q)   inputs of y = s(v)
  expect.forward.y, expect.forward.lad   s(v) and log s'(v)
  inverse.v (M), inverse.h (M, Q)   inputs of x = s^-1(v)
  expect.inverse.x, expect.inverse.lad   s^-1(v) and log s'(x)
  forward.kind, inverse.kind (M) I32: 0 inside a bin, 1 on a knot (the
    float32 nearest an inner knot), 2 in a tail or on +-B, 3 far out (1e6)
Metadata: bins, bound."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                       "rq-spline.safetensors")
BINS, BOUND = 8, 3.0
MIN_BIN, MIN_DERIVATIVE = 1e-3, 1e-3
M_PER_KIND = 64


def knots(raw, K, B):
    """Knot abscissae, ordinates and derivatives of one element."""
    def floored(u):
        p = np.exp(u - u.max())
        p = p / p.sum()
        return MIN_BIN + (1.0 - MIN_BIN * K) * p

    def positions(w):
        k = np.empty(K + 1)
        k[0] = -B
        k[1:] = -B + 2.0 * B * np.cumsum(w)
        k[K] = B
        return k

    shift = np.log(np.expm1(1.0 - MIN_DERIVATIVE))
    r = raw[2 * K:] + shift
    d = np.ones(K + 1)
    d[1:K] = MIN_DERIVATIVE + np.logaddexp(0.0, r)
    return positions(floored(raw[:K])), positions(floored(raw[K:2 * K])), d


def forward(x, raw, K, B):
    """s(x) and log s'(x) from eqs. (4) and (5) of the paper."""
    if x < -B or x > B:
        return x, 0.0
    xk, yk, d = knots(raw, K, B)
    k = min(int(np.searchsorted(xk, x, side="right")) - 1, K - 1)
    w, h = xk[k + 1] - xk[k], yk[k + 1] - yk[k]
    s = h / w
    xi = (x - xk[k]) / w
    denom = s + (d[k + 1] + d[k] - 2.0 * s) * xi * (1.0 - xi)
    y = yk[k] + h * (s * xi ** 2 + d[k] * xi * (1.0 - xi)) / denom
    slope = s ** 2 * (d[k + 1] * xi ** 2 + 2.0 * s * xi * (1.0 - xi)
                      + d[k] * (1.0 - xi) ** 2) / denom ** 2
    return y, float(np.log(slope))


def inverse(y, raw, K, B):
    """s^-1(y) by bisection of the monotonic forward map, and log s' there."""
    if y < -B or y > B:
        return y, 0.0
    lo, hi = -B, B
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if forward(mid, raw, K, B)[0] < y:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-16 * B:
            break
    x = 0.5 * (lo + hi)
    return x, forward(x, raw, K, B)[1]


def make_inputs(rng, K, B, side):
    """Inputs of each kind with their raw parameters; side 0 places knot
    inputs on x knots (forward), 1 on y knots (inverse)."""
    Q = 3 * K - 1
    values, params, kinds = [], [], []
    for kind in range(4):
        for i in range(M_PER_KIND):
            # Mostly moderate parameters, some large to make extreme bins.
            scale = 3.0 if i % 4 == 0 else 1.0
            raw = (rng.standard_normal(Q) * scale).astype(np.float32)
            r64 = raw.astype(np.float64)
            if kind == 0:
                v = rng.uniform(-B, B)
            elif kind == 1:
                at = knots(r64, K, B)[side]
                v = at[1 + i % (K - 1)]
            elif kind == 2:
                v = [-B, B][i % 2] if i % 4 < 2 else rng.choice([-1.0, 1.0]) * rng.uniform(B, 3 * B)
            else:
                v = [-1e6, 1e6][i % 2]
            values.append(np.float32(v))
            params.append(raw)
            kinds.append(kind)
    return (np.array(values, dtype=np.float32), np.stack(params),
            np.array(kinds, dtype=np.int32))


def build():
    rng = np.random.default_rng(20190610)
    K, B = BINS, BOUND
    tensors = {}
    for side, name in enumerate(["forward", "inverse"]):
        v, h, kinds = make_inputs(rng, K, B, side)
        fn = forward if side == 0 else inverse
        out = [fn(float(a), r.astype(np.float64), K, B) for a, r in zip(v, h)]
        tensors["%s.v" % name] = v
        tensors["%s.h" % name] = h
        tensors["%s.kind" % name] = kinds
        tensors["expect.%s.%s" % (name, "y" if side == 0 else "x")] = \
            np.array([o[0] for o in out], dtype=np.float64)
        tensors["expect.%s.lad" % name] = np.array([o[1] for o in out], dtype=np.float64)
    metadata = {"format": "flowgrad-rq-spline-fixture 1", "bins": str(K), "bound": repr(B)}
    return st.encode(list(tensors.items()), metadata)


def main():
    data = build()
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        with open(FIXTURE, "rb") as f:
            same = f.read() == data
        print("rq-spline.safetensors: %s" % ("matches" if same else "DIFFERS"))
        return 0 if same else 1
    with open(FIXTURE, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (FIXTURE, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
