"""The shipped templates' lymphocyte and granulocyte gates on real lysed whole blood.

The shipped templates (``gating/``) find lymphocytes and granulocytes as clusters on CD45 x
SSC-A among the leukocytes. Real blood holds eosinophils, the highest cloud in side
scatter and brighter in CD45 than the neutrophils, which the simulator's blood lacked
until its ``eosinophils`` stress scenario. The whole-blood
files of the optimalFlowData package (github.com/bioc/optimalFlowData,
``data/Cytometry<n>.RData``: 31 healthy donors and 6 lymphoma patients, every event of
the tube classified by hand; ``tests/data/real/make_real_data.py`` reads them, with the
``rdata`` package) carry CD45, forward and side scatter on Infinicyt's display scale.

The ``Lymphocytes`` and ``Granulocytes`` gates are read from the shipped template itself
(``--template``, default ``post-transplant``) and applied, as written, among each file's
CD45+ events (a `threshold` on CD45 with ``majority: true``: the files hold no beads and
their scale is not the shipped template's, so its own forward-scatter cut does not apply).
Scored against the expert's classes: lymphocytes are their T, B and NK cells,
granulocytes their neutrophils and eosinophils (F1), over every file with values.

    python benchmarks/whole_blood_scatter.py PATH/TO/optimalFlowData [--template NAME]
    python benchmarks/whole_blood_scatter.py PATH/TO/optimalFlowData --quick   # five files
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from immunomon.gating.flowjo.apply import f1_score
from immunomon.gating.run import gate_sample
from immunomon.gating.template import builtin_templates, parse_template

HERE = Path(__file__).resolve().parent
LST = runpy.run_path(str(HERE / "euroflow_lst.py"), run_name="immunomon_benchmark_lst")
DATA = LST["DATA"]
GATES = ("Lymphocytes", "Granulocytes")
EXPERT = {"Lymphocytes": ("CD4 T", "CD8 T", "TCRgd T", "B cells", "NK cells"),
          "Granulocytes": ("Neutrophils", "Eosinophils")}

HEAD = """
panel: shipped scatter gates on whole blood
version: "1"
markers: {CD45: [CD45]}
compensation: none
transforms: {fluorescence: linear, scatter: linear}
populations:
  - {name: Leukocytes, parent: root, dims: [CD45], method: threshold,
     args: {side: above, majority: true}}
"""


def scatter_template(name: str):
    """The shipped template's lymphocyte and granulocyte gates, among CD45+ events."""
    path = builtin_templates()[name] if name in builtin_templates() else Path(name)
    shipped = yaml.safe_load(path.read_text(encoding="utf-8"))["populations"]
    gates = [dict(p, parent="Leukocytes") for p in shipped if p["name"] in GATES]
    if len(gates) != len(GATES):
        raise SystemExit(f"{path} has no {' and '.join(GATES)} gates")
    doc = yaml.safe_load(HEAD)
    doc["populations"] += gates
    return parse_template(yaml.safe_dump(doc, sort_keys=False), f"{path.name} (scatter gates)")


def score(path: Path, template) -> list[dict]:
    sample, label = DATA.lst_file(path)
    classes = DATA.lst_labels(label, DATA.LST_WHOLE_CLASSES)
    gating = gate_sample(sample, template, exclude_anomalies=False)
    rows = []
    for gate in GATES:
        want = np.logical_or.reduce([classes[c] for c in EXPERT[gate]])
        got = gating.result.mask(gate)
        rows.append({"file": path.stem, "population": gate, "expert_events": int(want.sum()),
                     "gated": int(got.sum()), "f1": f1_score(want, got),
                     "status": gating.status})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path, help="a checkout of bioc/optimalFlowData")
    ap.add_argument("--template", default="post-transplant",
                    help="a shipped template's name or a path (default: post-transplant)")
    ap.add_argument("--csv", type=Path, help="also write every scored row to this CSV")
    ap.add_argument("--quick", action="store_true", help="the first five files")
    args = ap.parse_args(argv)
    files = sorted((args.checkout / "data").glob("Cytometry*.RData"),
                   key=lambda f: int(f.stem.removeprefix("Cytometry")))
    files = [f for f in files if f.name not in LST["COPIES"] and f.stat().st_size > 0]
    if not files:
        print(f"no Cytometry<n>.RData with values under {args.checkout / 'data'}",
              file=sys.stderr)
        return 2
    files = files[:5] if args.quick else files
    template = scatter_template(args.template)
    df = pd.DataFrame([row for f in files for row in score(f, template)])
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(f"{args.template}'s {' and '.join(GATES)} gates among the CD45+ events of "
          f"{df.file.nunique()} whole-blood files\n")
    print("| population | files | median F1 | lowest F1 | under 0.9 | files where it is empty |")
    print("|---|---:|---:|---:|---:|---:|")
    for pop, part in df.groupby("population", sort=False):
        print(f"| {pop} | {len(part)} | {part.f1.median():.3f} | {part.f1.min():.3f} | "
              f"{int((part.f1 < 0.9).sum())} | {int((part.gated == 0).sum())} |")
    low = df[df.f1 < 0.9]
    if len(low):
        print("\nunder 0.9:\n" + low.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
