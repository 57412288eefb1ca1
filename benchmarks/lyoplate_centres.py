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
    python benchmarks/lyoplate_centres.py PATH/TO/CytOpt --template another.yaml
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

REAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
TEMPLATE = REAL / "hipc_tcell.yaml"
MIN_EVENTS = 20
#: activated cells overlap the memory gates in the consortium's hierarchy: not scored
UNSCORED = ("CD4 Activated", "CD8 Activated")


def _data_script():
    """``tests/data/real/make_real_data.py``: how the committed lyoplate files were read
    and their classes named; the benchmark reads and names them the same way."""
    spec = importlib.util.spec_from_file_location("immunomon_make_real_data",
                                                  REAL / "make_real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DATA = _data_script()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def score(values: Path, template) -> list[dict]:
    sample, code = DATA.cytopt_file(values, {"$FIL": values.name})
    result = gate_sample(sample, template, exclude_anomalies=False).result
    centre, stem = values.parent.name, values.name.replace("_values.csv", "")
    return [{"centre": centre, "file": stem, "population": pop,
             "expert_events": int(want.sum()), "f1": f1_score(want, result.mask(pop))}
            for pop, want in DATA.lyoplate_labels(code).items()
            if pop not in UNSCORED and want.sum() >= MIN_EVENTS]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cytopt", type=Path, help="a checkout of Paul-Freulon/CytOpt")
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first file of each centre")
    ap.add_argument("--template", type=Path, default=TEMPLATE,
                    help="another template for the panel (default: hipc_tcell.yaml)")
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
    template = load_template(args.template)
    df = scored_rows(present, lambda values: score(values, template), args.csv)
    print(f"{args.template.name} held out on {_count(df.file.nunique(), 'file')} of "
          f"{_count(df.centre.nunique(), 'centre')} ({absent} listed "
          "without values skipped); F1 per population with 20+ expert events\n")
    print(scores_table(df))
    return 0


def scored_rows(paths, score_one, csv: Path | None = None) -> pd.DataFrame:
    """Every file's scored rows (``score_one(path)``, a list of dicts), a line on stderr
    as each is done, and all of them written to ``csv`` where it is given."""
    rows = []
    for path in paths:
        rows += score_one(path)
        print(f"  {path.parent.name}/{path.name} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    if csv:
        with atomic_path(csv, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    return df


def scores_table(df: pd.DataFrame, *, sort: bool = True) -> str:
    """Rows of file, population and F1 as people read them: the F1 of each population in
    each file, then per population the files, median, lowest and how many under 0.9,
    then all of them together."""
    wide = df.pivot_table(index="population", columns="file", values="f1")
    lines = [wide.round(2).to_string(na_rep="-"), "",
             "| population | files | median F1 | lowest F1 | under 0.9 |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {pop} | {v.size} | {v.median():.3f} | {v.min():.3f} | {(v < 0.9).sum()} |"
              for pop, v in df.groupby("population", sort=sort).f1]
    lines += ["", f"all: median F1 {df.f1.median():.3f}, lowest {df.f1.min():.3f}, "
                  f"{(df.f1 < 0.9).sum()} of {len(df)} under 0.9"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
