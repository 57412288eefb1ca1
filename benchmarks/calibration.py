"""Calibration of the GvM report's primary tests on simulated trials.

Power: on trials with the planted effects of ``immunomon.simulate.trial``
(lenalidomide lowers Treg and raises NK and activated T cells; acute GVHD
lowers the relapse hazard), the share of trials in which each primary test
rejects at the nominal level. False-positive rate: the same on null trials
(``null=True``: no drug effect, GVHD hazard ratio 1).

The tests run on each trial's true long tables (the counts the FCS files are
drawn from, and the clinical endpoints), exactly as the report computes them
(``immunomon.analysis.questions.primary_tests``), so the script takes minutes,
not the hours that gating every simulated FCS file would take.

    python benchmarks/calibration.py                   # 200 planted, 500 null trials
    python benchmarks/calibration.py --planted 50 --null 100 --jobs 2
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd


def one_trial(args) -> dict:
    """Primary p-values of one simulated trial (and whether GVHD-relapse separated)."""
    seed, null, n_patients = args
    from immunomon.analysis import questions as q
    from immunomon.simulate import trial

    tr = trial(seed, null=null, n_patients=n_patients)
    endpoints = tr.clinical.endpoints()
    plan = q.Plan()
    out = q.primary_tests(immune=tr.immune, endpoints=endpoints, plan=plan)
    # The exploratory tests at the same visit (counts that recovery confounds,
    # shares not declared primary), to show why they are not primary.
    for r in q.immune_change(tr.immune, plan, mixed=False):
        if r["label"] == "exploratory" and r["question"].endswith(f".{plan.primary_visit}") \
                and r["family"] in ("1 shares", "1 Wilcoxon by visit"):
            out[r["question"] + " (exploratory)"] = float(r["p_value"])
    rel = q.gvhd_outcomes(endpoints, plan, primary_only=True)[0]
    out["separated"] = bool(rel["separated"])
    out["estimable"] = not str(rel["note"]).startswith("not estimable")
    return out


def run(seeds, null: bool, n_patients: int, jobs: int) -> pd.DataFrame:
    work = [(int(s), null, n_patients) for s in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            rows = list(pool.map(one_trial, work, chunksize=4))
    else:
        rows = [one_trial(w) for w in work]
    return pd.DataFrame(rows)


def rejection_table(results: pd.DataFrame, alpha: float, planted: dict) -> pd.DataFrame:
    """Per primary test: trials, rejections at ``alpha`` and the rate with its
    exact (Clopper-Pearson) interval; a test that could not be computed (NaN p,
    e.g. no relapse or no GVHD in a trial) counts as not rejected."""
    from immunomon.analysis import clopper_pearson

    rows = []
    for test in [c for c in results.columns if c not in ("separated", "estimable")]:
        p = results[test].to_numpy(float)
        k, n = int(np.sum(p < alpha)), len(p)
        lo, hi = clopper_pearson(k, n)
        pop = test.split(".")[1].split(" % of ")[0]
        effect = planted.get("agvhd_relapse_hr" if test == "2.relapse" else pop, 1.0)
        rows.append({"test": test, "planted": effect, "trials": n,
                     "not computable": int(np.isnan(p).sum()), "rejected": k,
                     "rate": k / n, "95% CI": f"{lo:.3f}-{hi:.3f}"})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planted", type=int, default=200, help="trials with effects")
    parser.add_argument("--null", type=int, default=500, help="null trials")
    parser.add_argument("--patients", type=int, default=13)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    from immunomon.simulate import trial

    planted = trial(0).effects
    pd.set_option("display.width", 120)
    t0 = time.perf_counter()
    power = run(range(1, args.planted + 1), False, args.patients, args.jobs)
    t1 = time.perf_counter()
    print(f"Power at n={args.patients}, alpha={args.alpha}, {args.planted} trials with "
          f"planted effects {planted} ({t1 - t0:.0f} s)")
    print(rejection_table(power, args.alpha, planted).to_string(index=False))
    print(f"  GVHD-relapse model separated in {power['separated'].mean():.1%} of trials, "
          f"not computable in {1 - power['estimable'].mean():.1%}")
    print(flush=True)
    null = run(range(100_001, 100_001 + args.null), True, args.patients, args.jobs)
    t2 = time.perf_counter()
    print(f"False-positive rate at n={args.patients}, alpha={args.alpha}, {args.null} null "
          f"trials ({t2 - t1:.0f} s)")
    print(rejection_table(null, args.alpha, {}).to_string(index=False))
    print(f"  GVHD-relapse model separated in {null['separated'].mean():.1%} of trials, "
          f"not computable in {1 - null['estimable'].mean():.1%}")


if __name__ == "__main__":
    main()
