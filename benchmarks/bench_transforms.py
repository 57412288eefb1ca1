"""Logicle, hyperlog and compensation: immunomon against flowutils on the same events.

    python benchmarks/bench_transforms.py            # 1,000,000 events x 14 channels
    python benchmarks/bench_transforms.py --quick    # 50,000 x 14

Times are medians over --repeats runs. Errors are the largest absolute
difference on the 0-1 scale from a float64 bisection of the Gating-ML
definitions (run to the last bit) on a sample of the values plus a log grid.
Peak memory is what tracemalloc sees numpy allocate during one call.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import tracemalloc

import numpy as np

from immunomon import transforms as tr
from immunomon.compensation import compensate_array

LN10 = math.log(10.0)


def reference(kind, x, T, W, M, A):
    """The Gating-ML definition, inverted by bisection in float64 until the bracket stops."""
    w, x2 = W / (M + A), A / (M + A)
    x1, x0, b = x2 + w, x2 + 2 * w, (M + A) * LN10
    if kind == "logicle":
        lo_d, hi_d = 1e-300, b
        d = b
        while w > 0:
            d = 0.5 * (lo_d + hi_d)
            if d in (lo_d, hi_d):
                break
            if 2 * (math.log(d) - math.log(b)) + w * (b + d) > 0:
                hi_d = d
            else:
                lo_d = d
        ca = math.exp(x0 * (b + d))
        mfa = math.exp(b * x1) - ca * math.exp(-d * x1)
        a = T / (math.exp(b) - mfa - ca * math.exp(-d))

        def upper(y):
            return a * np.exp(b * y) - ca * a * np.exp(-d * y) - mfa * a
    else:
        ca = math.exp(b * x0) / w
        fa = math.exp(b * x1) + ca * x1
        a = T / (math.exp(b) + ca - fa)

        def upper(y):
            return a * np.exp(b * y) + ca * a * y - fa * a

    def S(y):
        above = y >= x1
        with np.errstate(over="ignore"):
            s = upper(np.where(above, y, 2 * x1 - y))
        return np.where(above, s, -s)

    x = np.asarray(x, dtype=np.float64)
    hi = np.ones_like(x)
    while (short := S(hi) < np.abs(x)).any():
        hi[short] *= 2
    lo = 2 * x1 - hi
    while True:
        mid = 0.5 * (lo + hi)
        if np.all((mid == lo) | (mid == hi)):
            return mid
        up = S(mid) >= x
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_mb(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def make_events(n, k, seed=0):
    """Cytometry-like float32 values: log-normal positives, a compensation-spread of
    negatives, exact zeros, a few values far beyond the top of scale."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(6.5, 2.0, (n, k))
    x *= rng.choice([1.0, 1.0, 1.0, -0.05], (n, k))
    x[rng.random((n, k)) < 0.02] = 0.0
    x[rng.random((n, k)) < 1e-4] *= 100
    return x.astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 events instead of 1,000,000")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--channels", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.events or (50_000 if args.quick else 1_000_000)
    k = args.channels

    import flowutils.compensate as fu_comp
    import flowutils.transforms as fu_tr

    events = make_events(n, k)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n:,} events x {k} channels; {os.cpu_count()} CPUs (shared machine, load "
          f"{load:.2f}); median of {args.repeats}")

    rng = np.random.default_rng(1)
    probe = np.concatenate([rng.choice(events.ravel(), 200_000).astype(np.float64),
                            np.logspace(-4, 10, 5000), -np.logspace(-4, 10, 5000)])
    rows = []
    params = (262144.0, 0.5, 4.5, 0.0)
    for kind in ("logicle", "hyperlog"):
        ours = getattr(tr, kind)
        T, W, M, A = params
        ours(events[:10], *params)            # build the table once, as any later call reuses it
        ev64 = events.astype(np.float64)      # flowutils wants float64 and works in place
        t_ours = timed(lambda: ours(events, *params), args.repeats)
        t_fu = timed(lambda: getattr(fu_tr, kind)(ev64.copy(), None, t=T, m=M, w=W, a=A),
                     args.repeats)
        ref = reference(kind, probe, *params)
        e_ours = np.max(np.abs(ours(probe, *params) - ref))
        e_fu = np.max(np.abs(getattr(fu_tr, kind)(probe.copy(), None, t=T, m=M, w=W, a=A) - ref))
        m_ours = peak_mb(lambda: ours(events, *params))
        m_fu = peak_mb(lambda: getattr(fu_tr, kind)(ev64.copy(), None, t=T, m=M, w=W, a=A))
        rows.append((f"{kind}{params}", t_ours, t_fu, f"{e_ours:.1e}", f"{e_fu:.1e}",
                     m_ours, m_fu))

    # compensation: scatter, k fluorescence channels, Time; observed = true @ S
    rng = np.random.default_rng(2)
    spill = np.eye(k) + rng.uniform(0, 0.25, (k, k)) * (rng.random((k, k)) < 0.4)
    np.fill_diagonal(spill, 1.0)
    full = np.hstack([rng.uniform(0, 2e5, (n, 3)).astype(np.float32),
                      (events.astype(np.float64) @ spill).astype(np.float32),
                      np.arange(n, dtype=np.float32)[:, None]])
    idx = list(range(3, 3 + k))
    t_ours = timed(lambda: compensate_array(full, idx, spill), args.repeats)
    t_fu = timed(lambda: fu_comp.compensate(full, spill, idx), args.repeats)
    ours_c = compensate_array(full, idx, spill)
    inv = np.linalg.inv(spill)
    exact = full[:, idx].astype(np.float64) @ inv
    scale = np.abs(full[:, idx]).astype(np.float64) @ np.abs(inv)
    e_ours = np.max(np.abs(ours_c[:, idx] - exact) / scale) / np.finfo(np.float32).eps
    fu_c = fu_comp.compensate(full, spill, idx)
    e_fu = np.max(np.abs(fu_c[:, idx] - exact) / scale) / np.finfo(np.float32).eps
    m_ours = peak_mb(lambda: compensate_array(full, idx, spill))
    m_fu = peak_mb(lambda: fu_comp.compensate(full, spill, idx))
    rows.append((f"compensate ({k}x{k})", t_ours, t_fu, f"{e_ours:.1f} eps32",
                 f"{e_fu:.1f} eps32", m_ours, m_fu))

    head = ("operation", "immunomon", "flowutils", "speed-up", "max err ours", "max err fu",
            "peak MB ours", "peak MB fu")
    print(f"{head[0]:<34}{head[1]:>11}{head[2]:>11}{head[3]:>10}{head[4]:>14}{head[5]:>14}"
          f"{head[6]:>14}{head[7]:>12}")
    for name, t1, t2, e1, e2, m1, m2 in rows:
        print(f"{name:<34}{t1 * 1e3:>9.1f}ms{t2 * 1e3:>9.1f}ms{t2 / t1:>9.1f}x{e1:>14}{e2:>14}"
              f"{m1:>14.0f}{m2:>12.0f}")
    print("errors: transforms on the 0-1 scale vs the bisection reference; compensation "
          "relative to |observed| @ |inverse|, in float32 epsilons")


if __name__ == "__main__":
    main()
