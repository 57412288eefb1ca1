"""A CyTOF template on DeepCyTOF's sixteen expert-gated multi-centre files.

The DeepCyTOF article's data (a copy: github.com/lkshan/DeepCYTOF-with-Synthetic-gradient,
``Data/MultiCenter_16sample/sample<n>.csv`` and ``labels<n>.csv``) are mass cytometry of
blood mononuclear cells at several centres: eight channels of ion counts and the manual
gate of every event (B cells, CD4 T, CD8 T, monocytes; the rest none of them). Files 9-16
come from instruments with more background in every channel. ``make_real_data.py`` names
the channels from the populations' medians and writes the data as FCS files
(``deepcytof_file``). Gated by default with ``tests/data/real/cytof_pbmc.yaml``, written
from docs/templates.md; each population with 20 or more expert events is scored (F1).
``--thin`` keeps that fraction of each file's events, as small files hold them, over
``--seeds`` seeds.

    python benchmarks/cytof_multicentre.py PATH/TO/DeepCYTOF-with-Synthetic-gradient
    python benchmarks/cytof_multicentre.py CHECKOUT --template T --thin 0.01 --seeds 3
    python benchmarks/cytof_multicentre.py CHECKOUT --quick      # three files
"""

from __future__ import annotations

import argparse
import dataclasses
import runpy
import sys
from pathlib import Path

import numpy as np

from immunomon.gating.flowjo.apply import f1_score
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

HERE = Path(__file__).resolve().parent
REAL = HERE.parent / "tests" / "data" / "real"
MIN_EVENTS = 20


#: the lyoplate benchmark's table of F1 per file and its scored rows, and
#: ``make_real_data.py`` (which reads these files: ``deepcytof_file``), as it loads it
LYOPLATE = runpy.run_path(str(HERE / "lyoplate_centres.py"),
                          run_name="immunomon_benchmark_lyoplate_centres")
DATA = LYOPLATE["DATA"]


def score(root: Path, n: int, template, thin: float, seed: int) -> list[dict]:
    sample, labels = DATA.deepcytof_file(root, n)
    if thin < 1:
        keep = np.sort(np.random.default_rng(seed).choice(
            sample.n_events, int(sample.n_events * thin), replace=False))
        sample = dataclasses.replace(sample, events=np.ascontiguousarray(sample.events[keep]))
        labels = {pop: want[keep] for pop, want in labels.items()}
    result = gate_sample(sample, template, exclude_anomalies=False).result
    name = f"{n:02d}" if thin >= 1 else f"{n:02d}/{seed}"
    return [{"file": name, "population": pop, "expert_events": int(want.sum()),
             "gated": int(result.mask(pop).sum()), "f1": f1_score(want, result.mask(pop))}
            for pop, want in labels.items() if want.sum() >= MIN_EVENTS]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="a checkout holding Data/MultiCenter_16sample")
    ap.add_argument("--template", type=Path, default=REAL / "cytof_pbmc.yaml")
    ap.add_argument("--thin", type=float, default=1.0, help="fraction of events kept")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first three files")
    args = ap.parse_args(argv)
    folder = args.checkout / "Data" / "MultiCenter_16sample"
    files = sorted(int(f.stem.removeprefix("sample")) for f in folder.glob("sample*.csv"))
    if not files:
        print(f"no Data/MultiCenter_16sample/sample<n>.csv under {args.checkout}",
              file=sys.stderr)
        return 2
    template = load_template(args.template)
    files = files[:3] if args.quick else files
    runs = [(n, seed) for n in files for seed in range(args.seeds if args.thin < 1 else 1)]
    df = LYOPLATE["scored_rows"](
        [Path(f"{n:02d}") / str(seed) for n, seed in runs],
        lambda p: score(args.checkout, int(p.parent.name), template, args.thin, int(p.name)),
        args.csv)
    print(f"{args.template.name} on {len(files)} file{'s' if len(files) > 1 else ''}"
          + (f", {args.thin:g} of the events, {args.seeds} seeds" if args.thin < 1 else "")
          + "; F1 per population with 20+ expert events\n")
    per_file = df.groupby("file").f1.median()
    print(LYOPLATE["scores_table"](df, sort=False) + f"; per file, the leaves' median "
          f"{per_file.median():.3f} (lowest file {per_file.min():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
