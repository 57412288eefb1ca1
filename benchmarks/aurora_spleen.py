"""A spectral (Cytek Aurora) mouse spleen panel against an expert's published numbers.

Ferrer-Font et al., Cytometry A 2020 (doi 10.1002/cyto.a.24016) compared CyTOF and Aurora
on the same mouse spleens; github.com/SameOldSamOld/CyTOFAuroraComparison holds five
Aurora files (``data/AURORA_DS_PBS{1,2}_8.fcs``, ``PBS{1,2,3}_11.fcs``: day 8 and day 11,
about 20,000 events each, unmixed and exported by FlowJo as ``FJComp-<dye>-A`` channels
with no marker names) and ``data/percountCounts.csv``: the expert's manual gating of 11
populations as the percentage of all cells in each file, columns AURORA1..5 (and
CYTOF1..5 for the CyTOF files of the same spleens). The repository has no licence, so
nothing of it is committed here: give its checkout (a folder holding ``data/``) or its
bare git directory (blobs are read with ``git show HEAD:data/...``).

Each file is gated with ``benchmarks/templates/aurora-mouse-spleen.yaml`` and each
population is counted as a percentage of all events in the file and of ``Singlets`` (the
template's first gate: "all cells" may mean the events left after the first gates; the
files hold no debris and no dead cells, see the template; ``--live`` names another).

Which file is which column is not stated. The day-8 and day-11 groups differ in B cells
(expert 37-41% against 51-52%) and T cells (21-26% against 18-19%): AURORA1-2 are the
day-8 files and AURORA3-5 the day-11 ones, which our B-cell percentages confirm (printed).
Within a group the files are taken in their names' order (PBS1, PBS2, PBS3), an
assumption the data cannot settle (the best-matching order differs between template
drafts and moves the CCC by 0.001 or less): the script prints it. The
headline does not depend on it: each population's mean over the five files against the
expert's mean, and Lin's concordance correlation coefficient (CCC) over the 11 means. The
CCC over all 55 file-population pairs (with the name order) is printed beside the same
statistic between the expert's CyTOF and Aurora numbers, the between-technology
agreement the paper reports, as a yardstick.

    python benchmarks/aurora_spleen.py PATH/TO/CyTOFAuroraComparison [--template T] [--csv rows.csv]
"""

from __future__ import annotations

import argparse
import io
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from immunomon.atomic import atomic_path
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template

TEMPLATE = Path(__file__).resolve().parent / "templates" / "aurora-mouse-spleen.yaml"
#: column order of the expert's table: day 8 first (two files), then day 11 (three)
FILES = ("AURORA_DS_PBS1_8", "AURORA_DS_PBS2_8",
         "AURORA_DS_PBS1_11", "AURORA_DS_PBS2_11", "AURORA_DS_PBS3_11")
GROUPS = ((0, 1), (2, 3, 4))
#: the expert's rows (percountCounts.csv, spaces stripped) -> the template's populations
POPULATIONS = {
    "pcOfCD3Tcells": "T cells", "pcOfCD4Tcells": "CD4 T",
    "pcOfCD8TcellsinUngated": "CD8 T", "pcOfDNTcells": "DN T", "pcOfBcells": "B cells",
    "pcOfNKcells": "NK cells", "pcOfMonocytes": "Monocytes", "pcOfDCs": "DCs",
    "pcOfDC1": "DC1", "pcOfDC2": "DC2", "pcOfNeutrophils": "Neutrophils",
}
#: the first cells gate: the files are exported from a live-cells gate (no debris, no dead
#: cells), so the template starts with singlets only
LIVE = "Singlets"


def ccc(x, y) -> float:
    """Lin's concordance correlation coefficient (population moments, as epiR's
    ``epi.ccc``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def _is_bare_git(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def _git_blob(git_dir: Path, name: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{name}"],
                          check=True, capture_output=True).stdout


def fetch(checkout: Path, workdir: Path) -> Path:
    """The folder holding ``data/``: the checkout itself, or a temporary copy of the
    needed blobs of a bare git directory."""
    if not _is_bare_git(checkout):
        return checkout
    (workdir / "data").mkdir()
    for name in [f"data/{f}.fcs" for f in FILES] + ["data/percountCounts.csv"]:
        (workdir / name).write_bytes(_git_blob(checkout, name))
    return workdir


def expert_table(root: Path) -> pd.DataFrame:
    text = (root / "data" / "percountCounts.csv").read_text(encoding="utf-8-sig")
    df = pd.read_csv(io.StringIO(text), index_col=0)
    df.index = df.index.str.strip()
    return df


def gate_files(root: Path, template, live: str = LIVE) -> pd.DataFrame:
    rows = []
    for stem in FILES:
        g = gate_sample(root / "data" / f"{stem}.fcs", template)
        res = g.result
        n_live = res.count(live) if live != "root" else g.events_total
        for row, pop in POPULATIONS.items():
            n = res.count(pop)
            rows.append({"file": stem, "row": row, "population": pop, "events": n,
                         "pct_all": 100 * n / g.events_total,
                         "pct_live": 100 * n / n_live if n_live else np.nan})
        rows.append({"file": stem, "row": "-", "population": live, "events": n_live,
                     "pct_all": 100 * n_live / g.events_total, "pct_live": 100.0})
        worst = max((f.level for f in g.qc_flags),
                    key=["info", "warning", "failure"].index, default="ok")
        print(f"  {stem}: {g.events_total:,} events, {n_live:,} in {live}, QC {worst}",
              file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def best_order(ours: np.ndarray, expert: np.ndarray) -> tuple[tuple[int, ...], float]:
    """The within-day-group order of the files that best matches the expert's columns
    (sum of squared differences); ``ours`` and ``expert`` are populations x files."""
    best = None
    for perms in itertools.product(*(itertools.permutations(g) for g in GROUPS)):
        order = tuple(i for p in perms for i in p)
        sse = float(((ours[:, order] - expert) ** 2).sum())
        if best is None or sse < best[1]:
            best = (order, sse)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", type=Path,
                    help="CyTOFAuroraComparison: a folder holding data/, or its bare git dir")
    ap.add_argument("--template", type=Path, default=TEMPLATE)
    ap.add_argument("--csv", type=Path, help="also write every gated row to this CSV")
    ap.add_argument("--live", default=LIVE,
                    help=f"the population the second percentage is of ({LIVE})")
    args = ap.parse_args(argv)
    template = load_template(args.template)
    with tempfile.TemporaryDirectory() as tmp:
        root = fetch(args.checkout, Path(tmp))
        expert = expert_table(root)
        df = gate_files(root, template, args.live)
    if args.csv:
        with atomic_path(args.csv, suffix=".csv") as out:
            df.to_csv(out, index=False)

    rows = list(POPULATIONS)
    aur = expert.loc[rows, [f"AURORA{i}" for i in range(1, 6)]].to_numpy(float)
    cyt = expert.loc[rows, [f"CYTOF{i}" for i in range(1, 6)]].to_numpy(float)
    sub = df[df.row != "-"]
    ours_all = sub.pivot(index="row", columns="file", values="pct_all").loc[rows, list(FILES)]
    ours_live = sub.pivot(index="row", columns="file", values="pct_live").loc[rows, list(FILES)]
    oa, ol = ours_all.to_numpy(float), ours_live.to_numpy(float)
    live = df[df.row == "-"].set_index("file").loc[list(FILES), "pct_all"]

    print(f"template {args.template.name} ({template.panel}, version {template.version})")
    print(f"{args.live} as % of all events: " + ", ".join(f"{f} {v:.1f}" for f, v in live.items()))
    b = rows.index("pcOfBcells")
    print("B cells, % of all events (day 8: PBS*_8, day 11: PBS*_11): " +
          ", ".join(f"{f.split('_', 2)[2]} {v:.1f}" for f, v in zip(FILES, oa[b])))
    day8, day11 = oa[b, list(GROUPS[0])], oa[b, list(GROUPS[1])]
    print(f"  expert AURORA1-2 {aur[b, :2].round(1).tolist()}, AURORA3-5 "
          f"{aur[b, 2:].round(1).tolist()}: the day groups "
          f"{'separate' if day8.max() < day11.min() else 'do NOT separate'} in our B cells")

    print(f"\nper population, mean of the five files (% of all events; ours also % of {args.live})")
    print(f"| population | expert Aurora | expert CyTOF | ours (% all) | difference "
          f"| ours (% {args.live}) | difference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, row in enumerate(rows):
        ea, ec = aur[i].mean(), cyt[i].mean()
        print(f"| {POPULATIONS[row]} | {ea:.2f} | {ec:.2f} | {oa[i].mean():.2f} | "
              f"{oa[i].mean() - ea:+.2f} | {ol[i].mean():.2f} | {ol[i].mean() - ea:+.2f} |")

    print("\nper file, % of all events (expert Aurora column in brackets; name order)")
    head = "| population | " + " | ".join(f"{f.split('_', 2)[2]} (AURORA{j + 1})"
                                           for j, f in enumerate(FILES)) + " |"
    print(head)
    print("|---|" + "---:|" * len(FILES))
    for i, row in enumerate(rows):
        print(f"| {POPULATIONS[row]} | " +
              " | ".join(f"{oa[i, j]:.2f} ({aur[i, j]:.2f})" for j in range(len(FILES))) + " |")

    ident = tuple(range(len(FILES)))
    order, _ = best_order(oa, aur)
    print("\nconcordance (Lin's CCC)")
    print(f"  means of 11 populations: ours (% all) {ccc(oa.mean(1), aur.mean(1)):.3f}, "
          f"ours (% {args.live}) {ccc(ol.mean(1), aur.mean(1)):.3f}; "
          f"expert CyTOF vs Aurora {ccc(cyt.mean(1), aur.mean(1)):.3f}")
    print(f"  55 file-population pairs, name order: ours (% all) {ccc(oa, aur):.3f}, "
          f"ours (% {args.live}) {ccc(ol, aur):.3f}; expert CyTOF vs Aurora, column by column "
          f"{ccc(cyt, aur):.3f}")
    if order != ident:
        print(f"  best within-group order {[FILES[i].split('_', 2)[2] for i in order]}: "
              f"ours (% all) {ccc(oa[:, order], aur):.3f} (the name order "
              f"{ccc(oa[:, ident], aur):.3f})")
    else:
        print("  the name order is also the best-matching within-group order")
    rel = np.abs(oa.mean(1) - aur.mean(1)) / aur.mean(1)
    relc = np.abs(cyt.mean(1) - aur.mean(1)) / aur.mean(1)
    print(f"  median relative difference of the means from the expert's Aurora: ours "
          f"{np.median(rel):.1%}, CyTOF {np.median(relc):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
