"""A EuroFlow Lymphoid Screening Tube template on optimalFlow's expert-classified files.

The optimalFlow data are blood stained with the EuroFlow LST (CD19 and TCRgd in PE-Cy7,
CD4 and CD20 in Pacific Blue, CD56 and Ig kappa in PE, CD8 and Ig lambda in FITC, CD3,
CD5, CD38, CD45), each file an expert's Infinicyt export on the software's display scale
with the class of every event, in two forms:

* the CytOpt article's repository (github.com/Paul-Freulon/CytOpt,
  ``Data/OF_Cytometry<n>.csv``): 16 healthy donors' CD45+ events in nine classes, gated
  by default with ``tests/data/real/euroflow_lst.yaml``;
* the optimalFlowData package (github.com/bioc/optimalFlowData,
  ``data/Cytometry<n>.RData``): the whole files, neutrophils, debris and doublets too, of
  31 healthy donors and 6 patients with a B-cell lymphoma (a clone of one light chain up
  to 80% of the events), classified by three hands; gated by default with
  ``tests/data/real/euroflow_lst_whole.yaml`` and scored on its 11 populations
  (``make_real_data.LST_WHOLE_CLASSES``). Reading them needs the ``rdata`` package.

Both templates were written from docs/templates.md without the classes. Each population
of a file with 20 or more expert events is scored (F1). Files 3 and 15 are the same file;
15 is left out. Files whose values a partial checkout lacks are skipped and counted.

    python benchmarks/euroflow_lst.py PATH/TO/CytOpt [--template T] [--csv rows.csv]
    python benchmarks/euroflow_lst.py PATH/TO/optimalFlowData [--template T]
    python benchmarks/euroflow_lst.py PATH/TO/CytOpt --quick     # three files
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from immunomon.gating.flowjo.apply import f1_score
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

HERE = Path(__file__).resolve().parent
REAL = HERE.parent / "tests" / "data" / "real"
MIN_EVENTS = 20
COPIES = {"OF_Cytometry15.csv", "Cytometry15.RData"}    # the same events as file 3


def _script(path: Path, name: str):
    """A script of the repository as a module, wherever this one is run from."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: ``make_real_data.py`` reads these files (``lst_file``); the lyoplate benchmark prints
#: the same table of F1 per file, from rows scored the same way
DATA = _script(REAL / "make_real_data.py", "immunomon_make_real_data")
LYOPLATE = _script(HERE / "lyoplate_centres.py", "immunomon_benchmark_lyoplate_centres")
scores_table, scored_rows = LYOPLATE.scores_table, LYOPLATE.scored_rows


#: each form's folder and file names, template and classes
FORMS = {"CytOpt": ("Data", "OF_Cytometry", ".csv", "LST_", "euroflow_lst.yaml",
                    DATA.LST_CLASSES),
         "optimalFlowData": ("data", "Cytometry", ".RData", "LSTW_",
                             "euroflow_lst_whole.yaml", DATA.LST_WHOLE_CLASSES)}


def score(path: Path, template, classes: dict, stem: str) -> list[dict]:
    sample, label = DATA.lst_file(path)
    labels = DATA.lst_labels(label, classes)
    result = gate_sample(sample, template, exclude_anomalies=False).result
    return [{"file": stem, "population": pop, "expert_events": int(want.sum()),
             "gated": int(result.mask(pop).sum()), "f1": f1_score(want, result.mask(pop))}
            for pop, want in labels.items()
            if want.sum() >= MIN_EVENTS and pop in result.gate_ids]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path,
                    help="a checkout of Paul-Freulon/CytOpt or of bioc/optimalFlowData")
    ap.add_argument("--template", type=Path, help="default: the form's template above")
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first three files")
    args = ap.parse_args(argv)
    for form, (folder, prefix, suffix, stem, default, classes) in FORMS.items():
        files = sorted((args.checkout / folder).glob(f"{prefix}*{suffix}"),
                       key=lambda f: int(f.stem.removeprefix(prefix)))
        if files:
            break
    else:
        print(f"no OF_Cytometry*.csv under {args.checkout / 'Data'} and no Cytometry*.RData "
              f"under {args.checkout / 'data'}", file=sys.stderr)
        return 2
    present = [f for f in files if f.name not in COPIES and f.stat().st_size > 0]
    absent = sum(1 for f in files if f.name not in COPIES and f.stat().st_size == 0)
    if args.quick:
        present = present[:3]
    args.template = args.template or REAL / default
    template = load_template(args.template)
    df = scored_rows(present, lambda path: score(path, template, classes,
                                                 path.stem.replace(prefix, stem)), args.csv)
    print(f"{args.template.name} on {df.file.nunique()} {form} files ({absent} without values "
          "skipped); F1 per population with 20+ expert events\n")
    per_file = df.groupby("file").f1.median()
    print(scores_table(df, sort=False) + f"; per file, the leaves' median "
          f"{per_file.median():.3f} (lowest file {per_file.min():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
