"""Chimerism results as text tables, JSON and CSV files (written atomically)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict

import pandas as pd

from ..atomic import atomic_path
from .calculate import ChimerismResult

_LOCUS_COLUMNS = ["locus", "pattern", "alleles_used", "percent_donor", "reported", "used",
                  "exclusion", "flags"]
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
    calls = result.reference_calls_frame()
    notable = calls[(calls["call"] == "artefact")
                    & ~calls["reason"].isin(["unlabelled", "below_threshold"])]
    if len(notable):
        parts.append("Reference peaks not called as alleles (labelled, above threshold)")
        cols = ["person", "locus", "allele", "size", "height", "reason", "detail"]
        parts.append(notable[cols].map(_fmt).to_string(index=False))
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
    for key in ("exclude_loci", "tri_allelic"):
        settings[key] = list(settings[key])
    return json.dumps({
        "settings": settings,
        "warnings": list(result.warnings),
        "genotypes": _records(result.genotype_frame()),
        "reference_calls": _records(result.reference_calls_frame()),
        "loci": _records(result.loci_frame()),
        "samples": _records(result.summary_frame()),
        "runs": _records(result.runs_frame()),
    }, indent=2)


def write_csv_atomic(df: pd.DataFrame, path) -> None:
    """Write a CSV to a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        df.to_csv(fh, index=False)


def write_tables(result: ChimerismResult, out_dir) -> list:
    """chimerism_loci.csv, chimerism_samples.csv, chimerism_genotypes.csv and
    chimerism_reference_calls.csv (every reference peak, allele or artefact and why)."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, df in (("chimerism_loci.csv", result.loci_frame()),
                     ("chimerism_samples.csv", result.summary_frame()),
                     ("chimerism_genotypes.csv", result.genotype_frame()),
                     ("chimerism_reference_calls.csv", result.reference_calls_frame())):
        path = os.path.join(out_dir, name)
        write_csv_atomic(df, path)
        written.append(path)
    if result.runs:
        path = os.path.join(out_dir, "chimerism_runs.csv")
        write_csv_atomic(result.runs_frame(), path)
        written.append(path)
    return written


def write_outputs(result: ChimerismResult, out_dir) -> list:
    """The CSV tables, ``chimerism.json`` and the ``chimerism.html`` page in ``out_dir``."""
    from ..atomic import write_text
    from .page import write_page

    written = write_tables(result, out_dir)
    path = os.path.join(out_dir, "chimerism.json")
    write_text(path, to_json(result))
    written.append(path)
    written.append(os.fspath(write_page(result, os.path.join(out_dir, "chimerism.html"))))
    return written
