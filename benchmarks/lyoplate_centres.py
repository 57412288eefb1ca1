"""The HIPC lyoplate T-cell template on every centre's files, held out.

``tests/data/real/hipc_tcell.yaml`` was written for two Stanford files; the CytOpt
article's data (github.com/Paul-Freulon/CytOpt, ``Data/<centre>/<file>_values.csv`` and
``_clust.csv``: T cells on FlowJo's display scale, one class number per event, gated by
hand at each centre) hold the same panel from seven centres, nine files each. Every file
a checkout holds is gated with the template unchanged and each population with 20 or more
expert events is scored (F1); the class numbers are named as
``tests/data/real/make_real_data.py`` names them (activated cells, which overlap the
memory gates in the consortium's hierarchy, are not scored). Files whose values a shallow
or partial checkout lacks are skipped and counted.

    python benchmarks/lyoplate_centres.py PATH/TO/CytOpt [--csv rows.csv]
    python benchmarks/lyoplate_centres.py PATH/TO/CytOpt --quick    # one file per centre
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from immunomon.atomic import atomic_path
from immunomon.fcs.sample import Channel, Sample
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent / "tests" / "data" / "real" / "hipc_tcell.yaml"
MIN_EVENTS = 20
CLASSES = {1: "CD8 Effector", 2: "CD8 Naive", 3: "CD8 Central Memory",
           4: "CD8 Effector Memory", 6: "CD4 Effector", 7: "CD4 Naive",
           8: "CD4 Central Memory", 9: "CD4 Effector Memory"}


def f1_score(got: np.ndarray, want: np.ndarray) -> float:
    both = np.count_nonzero(got & want)
    total = np.count_nonzero(got) + np.count_nonzero(want)
    return 2.0 * both / total if total else 1.0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def read_file(values: Path) -> tuple[Sample, np.ndarray]:
    """One CytOpt file as a Sample (every channel on the 0-4,096 display scale) and
    its class number per event."""
    frame = pd.read_csv(values, index_col=0)
    code = pd.read_csv(values.with_name(values.name.replace("_values", "_clust")),
                       index_col=0)["x"].to_numpy()
    channels = tuple(Channel(name=c, marker=c, range=4096.0) for c in frame.columns)
    return Sample(events=frame.to_numpy(np.float32), channel_info=channels,
                  keywords={"$FIL": values.name}), code


def score(values: Path, template) -> list[dict]:
    sample, code = read_file(values)
    result = gate_sample(sample, template, exclude_anomalies=False).result
    labels = {name: code == k for k, name in CLASSES.items()}
    labels |= {"CD4 T": code >= 6, "CD8 T": (code >= 1) & (code <= 5)}
    centre, stem = values.parent.name, values.name.replace("_values.csv", "")
    return [{"centre": centre, "file": stem, "population": pop,
             "expert_events": int(want.sum()), "f1": f1_score(result.mask(pop), want)}
            for pop, want in labels.items() if want.sum() >= MIN_EVENTS]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cytopt", type=Path, help="a checkout of Paul-Freulon/CytOpt")
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first file of each centre")
    args = ap.parse_args(argv)
    files = sorted((args.cytopt / "Data").glob("*/*_values.csv"))
    present = [f for f in files if f.stat().st_size > 0 and
               f.with_name(f.name.replace("_values", "_clust")).exists()]
    absent = len(files) - len(present)
    if args.quick:
        present = [next(f for f in present if f.parent == centre)
                   for centre in dict.fromkeys(f.parent for f in present)]
    if not present:
        print(f"no lyoplate files under {args.cytopt / 'Data'}", file=sys.stderr)
        return 2
    template = load_template(TEMPLATE)
    rows = []
    for values in present:
        rows += score(values, template)
        print(f"  {values.parent.name}/{values.name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        with atomic_path(args.csv, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    print(f"hipc_tcell.yaml held out on {_count(df.file.nunique(), 'file')} of "
          f"{_count(df.centre.nunique(), 'centre')} ({absent} listed "
          "without values skipped); F1 per population with 20+ expert events\n")
    wide = df.pivot_table(index="population", columns="file", values="f1")
    print(wide.round(2).to_string(na_rep="-"))
    print("\n| population | files | median F1 | lowest F1 | under 0.9 |")
    print("|---|---:|---:|---:|---:|")
    for pop, v in df.groupby("population").f1:
        print(f"| {pop} | {v.size} | {v.median():.3f} | {v.min():.3f} | {(v < 0.9).sum()} |")
    print(f"\nall: median F1 {df.f1.median():.3f}, lowest {df.f1.min():.3f}, "
          f"{(df.f1 < 0.9).sum()} of {len(df)} under 0.9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
