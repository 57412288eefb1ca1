"""Data-driven gating against the same template with fixed gates, on one large sample.

The template's data-driven gates are resolved once on the sample; the gates
they found then form a fixed strategy. Both strategies gate the same events
(compensation and transforms included); the ratio shows what finding the gates
costs. Target: data-driven at most 2x the fixed-gate time.

    python benchmarks/bench_gate.py            # 1,000,000 events, 3 repeats
    python benchmarks/bench_gate.py --quick    # 200,000 events
"""

from __future__ import annotations

import argparse
import time

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
    def find_gates():
        methods._FITS.clear()       # every run fits its mixtures afresh
        return data_driven.apply(sample)

    t_dd, result = timed(find_gates, args.repeats)
    fixed = GatingStrategy(list(result.gates.values()))
    t_fixed, fixed_result = timed(lambda: fixed.apply(sample), args.repeats)
    same = all(np.array_equal(result.mask(p), fixed_result.mask(p)) for p in result.gate_ids)
    print(f"Gating {args.events:,} events with template {args.template!r} "
          f"({len(result.gate_ids)} populations), median of {args.repeats}\n")
    print("| strategy | median s | ratio |")
    print("|---|---:|---:|")
    print(f"| fixed gates (the gates found, applied again) | {t_fixed:.3f} | 1.00 |")
    print(f"| data-driven (finding the gates) | {t_dd:.3f} | {t_dd / t_fixed:.2f} |")
    print(f"\nsame memberships: {same}")


if __name__ == "__main__":
    main()
