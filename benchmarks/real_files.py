"""Gating accuracy on the real expert-labelled files, whole and thinned to small files.

Every file in tests/data/real/ (tests/data/real/SOURCES.md says where each came from) is
gated with its template, and each population of tests/data/real/scores.yaml is scored
against the expert's label of every event (F1). A file is also thinned at random to a
fraction of its events, as small as a tube of a few hundred to a few thousand cells, over
several seeds: the same template must not lose populations there. With
``--spillover-error SD`` each file is also compensated with its spillover values each
multiplied by its own log-normal error (SD on the log scale; 0.2 puts two values in three
within 20%), as a matrix measured on another day or from other controls would be.
With ``--gains F ...`` each whole file is also gated with every channel but time times
each factor, as the same panel acquired at other detector voltages or on another
instrument reads: a data-driven template must find the same populations there.
Populations with fewer than 20 expert events in a thinned file are left out of the
summary (no score to hold).

    python benchmarks/real_files.py                       # whole, 10% and 5%, 3 seeds
    python benchmarks/real_files.py --quick               # whole and 10%, 1 seed
    python benchmarks/real_files.py --fractions 1 0.25 --seeds 5 --csv rows.csv
    python benchmarks/real_files.py --fractions 1 --spillover-error 0.2 --seeds 5
    python benchmarks/real_files.py --fractions 1 --gains 0.5 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from immunomon import read_fcs
from immunomon.atomic import atomic_path
from immunomon.fcs.sample import Spillover
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

REAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
MIN_EVENTS = 20        # expert events a thinned population needs to be scored


def f1_score(got: np.ndarray, want: np.ndarray) -> float:
    total = int(got.sum()) + int(want.sum())
    return 2.0 * np.count_nonzero(got & want) / total if total else 1.0


def thinned(sample, fraction: float, seed: int) -> tuple[object, np.ndarray]:
    """The sample with a random ``fraction`` of its events (in acquisition order)."""
    if fraction >= 1.0:
        return sample, np.arange(sample.n_events)
    keep = np.sort(np.random.default_rng(seed).choice(
        sample.n_events, int(sample.n_events * fraction), replace=False))
    return dataclasses.replace(sample, events=np.ascontiguousarray(sample.events[keep])), keep


def miscompensated(sample, sd: float, seed: int):
    """The sample with each off-diagonal spillover value times its own log-normal error."""
    matrix = sample.spillover.matrix.copy()
    off = ~np.eye(len(matrix), dtype=bool)
    matrix[off] *= np.exp(np.random.default_rng([7, seed]).normal(0.0, sd, off.sum()))
    return dataclasses.replace(sample, spillover=Spillover(sample.spillover.detectors, matrix))


def with_gain(sample, gain: float):
    """The sample with every channel but time times ``gain`` (spillover, a ratio of
    detectors, holds as it is)."""
    events = sample.events.astype(np.float64)
    clock = [i for i, name in enumerate(sample.channels) if "time" in name.lower()]
    events[:, [i for i in range(events.shape[1]) if i not in clock]] *= gain
    return dataclasses.replace(sample, events=events.astype(sample.events.dtype))


def score_file(name: str, case: dict, fractions, seeds, spillover_error: float = 0.0,
               gains=()) -> list[dict]:
    sample = read_fcs(REAL / f"{name}.fcs")
    labels = np.load(REAL / f"{name}.labels.npz")
    template = load_template(REAL / case["template"])
    runs = [(f"{fraction:g}", fraction, seed, None, 1.0) for fraction in fractions
            for seed in (seeds if fraction < 1.0 else [0])]
    if spillover_error > 0 and sample.spillover is not None:
        runs += [(f"spillover x e^N(0, {spillover_error:g})", 1.0, seed, spillover_error, 1.0)
                 for seed in seeds]
    runs += [(f"gain x{gain:g}", 1.0, 0, None, gain) for gain in gains]
    rows = []
    for condition, fraction, seed, sd, gain in runs:
        small, keep = thinned(sample, fraction, seed)
        if sd is not None:
            small = miscompensated(small, sd, seed)
        if gain != 1.0:
            small = with_gain(small, gain)
        result = gate_sample(small, template, exclude_anomalies=False).result
        for pop, (expert, _) in case["populations"].items():
            want = labels[expert][keep]
            rows.append({"file": name, "condition": condition, "seed": seed,
                         "events": small.n_events, "population": pop,
                         "expert_events": int(want.sum()),
                         "f1": f1_score(result.mask(pop), want)})
    return rows


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    scored = df[df.expert_events >= MIN_EVENTS]
    return scored.groupby(["file", "condition"], sort=False).agg(
        events=("events", "median"), f1_median=("f1", "median"), f1_min=("f1", "min"),
        under_half=("f1", lambda v: int((v < 0.5).sum())), scored=("f1", "size")
    ).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1, 0.05])
    ap.add_argument("--seeds", type=int, default=3, help="thinnings per fraction (1..N)")
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="whole and 10%%, one seed")
    ap.add_argument("--spillover-error", type=float, default=0.0, metavar="SD",
                    help="also gate each whole file with its spillover values off by a "
                         "log-normal error of this SD, once per seed")
    ap.add_argument("--gains", type=float, nargs="+", default=[], metavar="F",
                    help="also gate each whole file with every channel but time times F")
    args = ap.parse_args(argv)
    if args.quick:
        args.fractions, args.seeds = [1.0, 0.1], 1
    with open(REAL / "scores.yaml", encoding="utf-8") as handle:
        cases = yaml.safe_load(handle)
    seeds = list(range(1, args.seeds + 1))
    rows = []
    for name, case in cases.items():
        rows += score_file(name, case, args.fractions, seeds, args.spillover_error,
                           args.gains)
        print(f"  {name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        with atomic_path(args.csv, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    table = summarise(df)
    print("Real expert-labelled files, whole and thinned at random "
          f"({args.seeds} seeds per fraction); populations with {MIN_EVENTS}+ expert events\n")
    print("| file | fraction or condition | events | median F1 | min F1 | F1 < 0.5 | scored |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in table.itertuples():
        print(f"| {r.file} | {r.condition} | {int(r.events):,} | {r.f1_median:.3f} | "
              f"{r.f1_min:.3f} | {r.under_half} | {r.scored} |")
    scored = df[df.expert_events >= MIN_EVENTS]
    bounded = scored[~scored.file.isin([n for n, c in cases.items()
                                        if c.get("benchmark_only")])]
    for label, part in (("all files", scored), ("files with test bounds", bounded)):
        print(f"\n{label}:")
        for condition, v in part.groupby("condition", sort=False).f1:
            print(f"{condition}: median F1 {v.median():.3f}, min {v.min():.3f}, "
                  f"{int((v < 0.5).sum())} of {v.size} scores under 0.5")
    whole = scored[scored.condition == "1"].set_index(["file", "population"]).f1
    for condition, part in scored[scored.condition.str.startswith("gain")].groupby(
            "condition", sort=False):
        drop = whole - part.set_index(["file", "population"]).f1
        print(f"\n{condition}, scores more than 0.1 under the file's own:")
        for (file, pop), d in drop[drop > 0.1].items():
            print(f"  {file} {pop}: {whole[file, pop]:.3f} -> {whole[file, pop] - d:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
