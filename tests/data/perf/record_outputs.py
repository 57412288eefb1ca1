"""Record what ``immunomon gate`` writes for the committed fixtures, so that tests can
check that faster code writes the same outputs.

For each fixture file gated with the post-transplant template: every population's count,
percent of parent and a digest of its event membership (sha1 of the packed boolean mask),
read back from the files the gate job wrote (populations.csv and the .h5ad), plus the
concrete gates as Gating-ML and the names of the gate plots.

    python tests/data/perf/record_outputs.py     # rewrites gate_outputs.csv, gate_plots.csv
                                                 # and gates_*.xml

Run it again only when gating itself is meant to change (a method's defaults, a template).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = next(p for p in HERE.parents if (p / "pyproject.toml").is_file())
FIXTURES = REPO / "fixtures"
FILES = ("pbmc_01", "pbmc_02_shifted", "pbmc_03_clog")


def mask_digest(mask) -> str:
    return hashlib.sha1(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).hexdigest()[:16]


def membership(adata):
    """Population -> mask, from the current layout or the one before it."""
    try:
        from immunomon.export import gate_membership
    except ImportError:                      # obs columns, named in uns["populations"]
        pops = adata.uns["populations"]
        return {p: adata.obs[c].to_numpy() for p, c in zip(pops["id"], pops["column"])}
    frame = gate_membership(adata)
    return {p: frame[p].to_numpy() for p in frame.columns}


def main() -> None:
    import anndata
    from immunomon.gating.run import gate_files
    from immunomon.gating.template import load_template

    rows, plot_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run = gate_files([FIXTURES / f"{f}.fcs" for f in FILES], load_template("post-transplant"),
                         tmp)
        assert run.ok, run.samples
        for name in FILES:
            folder = Path(tmp) / name
            table = pd.read_csv(folder / "populations.csv")
            adata = anndata.read_h5ad(folder / f"{name}.h5ad")
            members = membership(adata)
            plot_rows += [{"sample": name, "file": p.name}
                          for p in sorted((folder / "plots").glob("*.png"))]
            for row in table.itertuples(index=False):
                mask = members[row.population]
                assert int(mask.sum()) == int(row.count)
                rows.append({"sample": name, "population": row.population,
                             "count": int(row.count),
                             "percent_of_parent": float(row.percent_of_parent),
                             "membership_sha1": mask_digest(mask)})
            shutil.copy(folder / "gates.xml", HERE / f"gates_{name}.xml")
    pd.DataFrame(rows).to_csv(HERE / "gate_outputs.csv", index=False)
    pd.DataFrame(plot_rows).to_csv(HERE / "gate_plots.csv", index=False)
    print(f"{len(rows)} populations recorded", file=sys.stderr)


if __name__ == "__main__":
    main()
