"""Chimerism results as text tables, JSON and CSV files (written atomically)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict

import pandas as pd

from ..atomic import atomic_path
from .calculate import ChimerismResult

_LOCUS_COLUMNS = ["locus", "pattern", "alleles_used", "percent_donor", "reported", "flags"]
_SUMMARY_COLUMNS = ["sample", "lineage", "date", "percent_donor", "sd", "cv",
                    "n_informative", "n_used", "classification", "reported", "flags"]


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.2f}"
    return "" if v is None else str(v)


def format_text(result: ChimerismResult) -> str:
    """Per-locus tables for each sample, then the per-sample summary."""
    loci = result.loci_frame()
    parts = []
    for s in result.samples:
        label = ", ".join(f"{k} {v}" for k, v in (("patient", s.patient),
                                                  ("lineage", s.lineage),
                                                  ("date", s.date)) if v)
        parts.append(f"Sample {s.sample}" + (f" ({label})" if label else ""))
        rows = loci[loci["sample"] == s.sample]
        extra = [c for c in rows.columns if c.startswith("percent_donor") and c != "percent_donor"]
        cols = _LOCUS_COLUMNS[:4] + extra + _LOCUS_COLUMNS[4:]
        parts.append(rows[cols].map(_fmt).to_string(index=False))
        parts.append("")
    summary = result.summary_frame()
    if summary.empty:
        parts.append("No post-transplant sample found in the sample exports.")
    else:
        cols = [c for c in _SUMMARY_COLUMNS if c in summary] + \
            [c for c in summary if c.startswith("percent_donor") and c != "percent_donor"]
        parts.append("Summary")
        parts.append(summary[cols].map(_fmt).to_string(index=False))
    return "\n".join(parts)


def _records(df: pd.DataFrame) -> list:
    # to_json turns NaN into null, which json.dumps would write as NaN (not JSON).
    return json.loads(df.to_json(orient="records")) if not df.empty else []


def to_json(result: ChimerismResult) -> str:
    settings = asdict(result.settings)
    settings["exclude_loci"] = list(settings["exclude_loci"])
    return json.dumps({
        "settings": settings,
        "genotypes": _records(result.genotype_frame()),
        "loci": _records(result.loci_frame()),
        "samples": _records(result.summary_frame()),
    }, indent=2)


def write_csv_atomic(df: pd.DataFrame, path) -> None:
    """Write a CSV to a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, index=False)


def write_tables(result: ChimerismResult, out_dir) -> list:
    """chimerism_loci.csv, chimerism_samples.csv and chimerism_genotypes.csv in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, df in (("chimerism_loci.csv", result.loci_frame()),
                     ("chimerism_samples.csv", result.summary_frame()),
                     ("chimerism_genotypes.csv", result.genotype_frame())):
        path = os.path.join(out_dir, name)
        write_csv_atomic(df, path)
        written.append(path)
    return written
