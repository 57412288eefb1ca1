"""A EuroFlow Lymphoid Screening Tube template on optimalFlow's expert-classified files.

The CytOpt article's repository (github.com/Paul-Freulon/CytOpt, ``Data/OF_Cytometry<n>.csv``)
holds the optimalFlow data: blood stained with the EuroFlow LST (CD19 and TCRgd in
PE-Cy7, CD4 and CD20 in Pacific Blue, CD56 and Ig kappa in PE, CD8 and Ig lambda in
FITC, CD3, CD5, CD38, CD45), each file an expert's Infinicyt export of the CD45+ events
classified into nine populations, on the software's display scale, with the class of
every event. Every file a checkout holds is gated with the template (by default
``tests/data/real/euroflow_lst.yaml``, written from docs/templates.md without the
classes) and each of its populations with 20 or more expert events is scored (F1). Files 3 and
15 are the same file; 15 is left out. Files whose values a partial checkout lacks are
skipped and counted.

    python benchmarks/euroflow_lst.py PATH/TO/CytOpt [--template T] [--csv rows.csv]
    python benchmarks/euroflow_lst.py PATH/TO/CytOpt --quick     # three files
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

from immunomon.atomic import atomic_path
from immunomon.gating.flowjo.apply import f1_score
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

HERE = Path(__file__).resolve().parent
REAL = HERE.parent / "tests" / "data" / "real"
TEMPLATE = REAL / "euroflow_lst.yaml"
MIN_EVENTS = 20
COPIES = {"OF_Cytometry15.csv"}          # the same events as OF_Cytometry3.csv


def _script(path: Path, name: str):
    """A script of the repository as a module, wherever this one is run from."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: ``make_real_data.py`` reads these files (``lst_file``); the lyoplate benchmark prints
#: the same table of F1 per file
DATA = _script(REAL / "make_real_data.py", "immunomon_make_real_data")
scores_table = _script(HERE / "lyoplate_centres.py",
                       "immunomon_benchmark_lyoplate_centres").scores_table


def score(path: Path, template) -> list[dict]:
    sample, labels = DATA.lst_file(path)
    result = gate_sample(sample, template, exclude_anomalies=False).result
    stem = path.stem.replace("OF_Cytometry", "LST_")
    return [{"file": stem, "population": pop, "expert_events": int(want.sum()),
             "gated": int(result.mask(pop).sum()), "f1": f1_score(want, result.mask(pop))}
            for pop, want in labels.items()
            if want.sum() >= MIN_EVENTS and pop in result.gate_ids]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cytopt", type=Path, help="a checkout of Paul-Freulon/CytOpt")
    ap.add_argument("--template", type=Path, default=TEMPLATE)
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first three files")
    args = ap.parse_args(argv)
    files = sorted((args.cytopt / "Data").glob("OF_Cytometry*.csv"),
                   key=lambda f: int(f.stem.replace("OF_Cytometry", "")))
    present = [f for f in files if f.name not in COPIES and f.stat().st_size > 0]
    absent = sum(1 for f in files if f.name not in COPIES and f.stat().st_size == 0)
    if args.quick:
        present = present[:3]
    if not present:
        print(f"no OF_Cytometry files under {args.cytopt / 'Data'}", file=sys.stderr)
        return 2
    template = load_template(args.template)
    rows = []
    for path in present:
        rows += score(path, template)
        print(f"  {path.name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        with atomic_path(args.csv, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    print(f"{args.template.name} on {df.file.nunique()} files ({absent} without values "
          "skipped); F1 per population with 20+ expert events\n")
    per_file = df.groupby("file").f1.median()
    print(scores_table(df, sort=False) + f"; per file, the leaves' median "
          f"{per_file.median():.3f} (lowest file {per_file.min():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
