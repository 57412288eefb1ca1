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
(``--template``, default ``post-transplant``; the split tubes' alike) and applied, as
written, among each file's CD45+ events (a `threshold` on CD45 with ``majority: true``: the files hold no beads and
their scale is not the shipped template's, so its own forward-scatter cut does not
apply), on the values as exported: the fluorescence is on Infinicyt's display scale
already, side scatter linear as the template's raw files hold it. (The template's own
side-scatter logicle, which expands negative values, makes a broad component of the
export's side-scatter values far below zero, down to -4,600 in some files, and the
lymphocytes' lowest-SSC pick takes it in four files, three of them left empty, a QC
failure.)
The gates below them that the tube's markers allow (T cells, CD4 and CD8 T cells, B
cells) are applied too. Scored against the expert's classes (F1): lymphocytes are their
T, B and NK cells, granulocytes their neutrophils and eosinophils, T cells their CD4,
CD8 and TCRgd T cells.

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

from immunomon.atomic import atomic_path
from immunomon.gating.flowjo.apply import f1_score
from immunomon.gating.run import gate_sample
from immunomon.gating.template import builtin_templates, load_template, parse_template

HERE = Path(__file__).resolve().parent
LST = runpy.run_path(str(HERE / "euroflow_lst.py"), run_name="immunomon_benchmark_lst")
DATA = LST["DATA"]
#: the shipped populations scored, and the expert's classes that make each
EXPERT = {"Lymphocytes": ("CD4 T", "CD8 T", "TCRgd T", "B cells", "NK cells"),
          "Granulocytes": ("Neutrophils", "Eosinophils"),
          "T cells": ("CD4 T", "CD8 T", "TCRgd T"), "CD4 T": ("CD4 T",),
          "CD8 T": ("CD8 T",), "B cells": ("B cells",)}
#: the tube's markers by the shipped templates' names (CD4 shares its colour with CD20,
#: CD8 with lambda, CD19 with TCRgd: each is read only among cells the other reagent does
#: not stain, T cells for CD4 and CD8, CD3- cells for CD19). CD56 is left out: the
#: shipped NK gate reads a lone CD56 peak by its place on a logicle scale, which these
#: display values, gated on a linear axis, do not give it
MARKERS = {"CD45": ["CD45"], "CD3": ["CD3"], "CD4": ["CD4"], "CD8": ["CD8"],
           "CD19": ["CD19"]}
SCATTER = {"FSC-A", "SSC-A"}

HEAD = """
panel: shipped gates on whole blood
version: "1"
compensation: none
populations:
  - {name: Leukocytes, parent: root, dims: [CD45], method: threshold,
     args: {side: above, majority: true}}
"""


def shipped_backbone(name: str):
    """The shipped template's gates below its leukocytes that the tube's markers allow,
    among CD45+ events, on the values as exported (linear axes). The template as read
    (``load_template``) says each population's parent, dimensions and operands; its
    YAML entries are carried over as written."""
    path = builtin_templates()[name] if name in builtin_templates() else Path(name)
    written = yaml.safe_load(path.read_text(encoding="utf-8"))["populations"]
    kept, gates = {"Leukocytes"}, []
    for spec, entry in zip(load_template(path).populations, written):
        operands = {r.lstrip("!") for r in spec.args.get("operands", ())}
        if spec.parent in kept and set(spec.dims) <= set(MARKERS) | SCATTER \
                and operands <= kept | {spec.parent}:
            gates.append(entry)
            kept |= {spec.name, *spec.args.get("quadrants", {})}
    if missing := {"Lymphocytes", "Granulocytes"} - kept:
        raise SystemExit(f"{path} gates no {' or '.join(sorted(missing))} on CD45 x SSC-A")
    doc = yaml.safe_load(HEAD)
    doc["markers"] = MARKERS
    doc["transforms"] = {"fluorescence": "linear", "scatter": "linear"}
    doc["populations"] += gates
    return parse_template(yaml.safe_dump(doc, sort_keys=False), f"{path.name} (whole blood)")


def score(path: Path, template) -> list[dict]:
    sample, label = DATA.lst_file(path)
    classes = DATA.lst_labels(label, DATA.LST_WHOLE_CLASSES)
    gating = gate_sample(sample, template, exclude_anomalies=False)
    rows = []
    for gate, made_of in EXPERT.items():
        if gate not in gating.result.gate_ids:
            continue                    # a tube without that gate (b-nk-tube: no T subsets)
        want = np.logical_or.reduce([classes[c] for c in made_of])
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
    template = shipped_backbone(args.template)
    df = pd.DataFrame([row for f in files for row in score(f, template)])
    if args.csv:
        with atomic_path(args.csv, suffix=".csv") as tmp:
            df.to_csv(tmp, index=False)
    print(f"{args.template}'s gates among the CD45+ events of {df.file.nunique()} "
          "whole-blood files\n")
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
