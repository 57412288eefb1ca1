"""Data-driven gating against the same template with fixed gates, on one large sample.

The template's data-driven gates are resolved once on the sample; the gates
they found then form a fixed strategy. Both strategies gate the same events
(compensation and transforms included); the ratio shows what finding the gates
costs. Target: data-driven at most 2x the fixed-gate time. Both run under the
per-file thread policy (``immunomon.threads``), as ``immunomon gate`` runs them;
a last row runs the data-driven gates with the BLAS and OpenMP pools at their
defaults, to show what the policy saves on this machine. Peak traced memory comes
from one more run of each.

    python benchmarks/bench_gate.py            # 1,000,000 events, 3 repeats
    python benchmarks/bench_gate.py --quick    # 200,000 events
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import tracemalloc

import numpy as np

from immunomon import simulate
from immunomon.gating import methods
from immunomon.gating.strategy import GatingStrategy
from immunomon.gating.template import load_template


def timed(func, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def peak_mb(func) -> float:
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--template", default="post-transplant")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.events = 200_000
    sample = simulate.pbmc_sample(args.events, seed=42).sample
    template = load_template(args.template)
    data_driven, _ = template.strategy_for(sample)
    try:
        from immunomon.threads import single_threaded
    except ImportError:             # code from before the thread policy
        single_threaded = contextlib.nullcontext

    def find_gates():
        methods._FITS.clear()       # every run fits its mixtures afresh
        return data_driven.apply(sample)

    find_gates()                    # imports and first-use costs
    with single_threaded():
        t_dd, result = timed(find_gates, args.repeats)
        fixed = GatingStrategy(list(result.gates.values()))
        t_fixed, fixed_result = timed(lambda: fixed.apply(sample), args.repeats)
        m_dd, m_fixed = peak_mb(find_gates), peak_mb(lambda: fixed.apply(sample))
    t_pools, _ = timed(find_gates, args.repeats)
    same = all(np.array_equal(result.mask(p), fixed_result.mask(p)) for p in result.gate_ids)
    events = sample.events.nbytes / 2**20
    print(f"Gating {args.events:,} events with template {args.template!r} "
          f"({len(result.gate_ids)} populations), median of {args.repeats}; event matrix "
          f"{events:.0f} MB; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print("| strategy | median s | ratio | peak traced MB |")
    print("|---|---:|---:|---:|")
    print(f"| fixed gates (the gates found, applied again) | {t_fixed:.3f} | 1.00 | "
          f"{m_fixed:.0f} |")
    print(f"| data-driven (finding the gates) | {t_dd:.3f} | {t_dd / t_fixed:.2f} | {m_dd:.0f} |")
    print(f"| data-driven, thread pools at their defaults | {t_pools:.3f} | "
          f"{t_pools / t_fixed:.2f} | |")
    print(f"\nsame memberships: {same}")


if __name__ == "__main__":
    main()
