"""The sample manifest: which FCS file or STR export belongs to which patient and visit.

One CSV row per file (per sample, for STR exports that hold several). Columns
(see ``docs/cohort.md``):

==================  ========  ===================================================
column              required  meaning
==================  ========  ===================================================
``file``            yes       path of the FCS file or STR export, relative to the
                              manifest's folder (or ``base_dir``)
``kind``            yes       ``fcs`` or ``str``
``patient_id``      yes       as in the clinical patients table
``visit``           yes       nominal visit label (``baseline``, ``M1``, ``D90``)
``collection_date`` yes       date the sample was drawn (strict date forms)
``material``        yes       ``blood`` or ``marrow``
``lineage``         no        sorted fraction (``CD3``, ``CD33``...); blank = whole
                              material (whole blood ``WB``, whole marrow ``BM``)
``sample``          no        sample name in the results; default: the file name
                              without extension (FCS: as ``immunomon gate`` names it)
``tube``            no        panel tube, for visits stained in several tubes
``visit_order``     no        a number giving the order of the visits (default:
                              order of first appearance)
==================  ========  ===================================================
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..clinical.dates import parse_date
from ..clinical.tables import clinical_error, read_csv_text
from ..errors import ClinicalDataError
from ..fcs import FCS_SUFFIXES

__all__ = ["MANIFEST_COLUMNS", "read_manifest", "manifest_from_frame", "check_manifest_files",
           "add_days", "normalise_lineage", "KINDS", "MATERIALS"]

REQUIRED = ("file", "kind", "patient_id", "visit", "collection_date", "material")
OPTIONAL = ("lineage", "sample", "tube", "visit_order")
MANIFEST_COLUMNS = REQUIRED + OPTIONAL
IGNORED = ("notes", "note", "comment", "comments")

KINDS = {"fcs": "fcs", "flow": "fcs", "str": "str", "chimerism": "str"}
MATERIALS = {"blood": "blood", "peripheral blood": "blood", "pb": "blood",
             "whole blood": "blood", "marrow": "marrow", "bone marrow": "marrow",
             "bm": "marrow"}

# Lineage spellings -> the label used on the cohort's ``lineage`` dimension.
_WHOLE = {"", "wb", "whole", "whole blood", "pb", "blood", "bm", "marrow", "whole marrow",
          "bone marrow"}
_LINEAGE_SYNONYMS = {"t": "CD3", "t cells": "CD3", "tcell": "CD3", "tcells": "CD3",
                     "b": "CD19", "b cells": "CD19", "bcell": "CD19", "bcells": "CD19",
                     "nk": "CD56", "nk cells": "CD56", "myeloid": "CD33", "gran": "CD15",
                     "granulocytes": "CD15"}
_MARKER = re.compile(r"^(cd\d+[a-z]?)(?:\+|pos| positive)?$")


def normalise_lineage(value, material: str = "blood") -> str:
    """Lineage label: whole blood ``WB``, whole marrow ``BM``; ``CD3+``/``T cells`` ->
    ``CD3``; a sorted marrow fraction gets a ``BM_`` prefix (``BM_CD34``)."""
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else re.sub(r"[\s_]+", " ", str(value).strip().lower())
    if text in _WHOLE:
        return "BM" if material == "marrow" else "WB"
    m = _MARKER.match(text.replace(" ", ""))
    label = m.group(1).upper() if m else _LINEAGE_SYNONYMS.get(text, str(value).strip())
    return f"BM_{label}" if material == "marrow" else label


def _default_sample(file: str, kind: str) -> str:
    stem = Path(file.replace("\\", "/")).stem
    if kind == "fcs":
        from ..gating.run import safe_name
        return safe_name(stem)
    return stem


def _choice(cell: str, choices: dict, file, line, column) -> str:
    value = choices.get(re.sub(r"[\s_\-]+", " ", cell.strip().lower()))
    if value is None:
        allowed = ", ".join(sorted(set(choices.values())))
        raise clinical_error(file, line, column,
                             f"unknown value {cell!r}; expected one of: {allowed}")
    return value


def read_manifest(path, *, base_dir=None, date_order: str | None = None) -> pd.DataFrame:
    """Read and validate a sample manifest CSV; one row per listed sample.

    Returns the columns of :data:`MANIFEST_COLUMNS` normalised (``kind`` ``fcs``/``str``,
    ``material`` ``blood``/``marrow``, ``lineage`` a cohort label such as ``WB`` or
    ``CD3``, ``sample`` filled in, ``collection_date`` as ``datetime64[ns]``,
    ``visit_order`` float, NaN when not given) plus ``path`` (the file resolved against
    ``base_dir``, default the manifest's folder), ``source_file`` and ``source_line``.
    Raises :class:`~immunomon.ClinicalDataError` naming file, row and column for a
    missing column, an unknown kind or material, a bad date, a blank required cell,
    or a sample or file listed twice.
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ClinicalDataError(f"{name}: the sample manifest does not exist")
    base = Path(base_dir) if base_dir is not None else Path(name).resolve().parent
    return _coerce(read_csv_text(name), name, base, date_order)


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) \
            or value is pd.NaT:
        return ""
    if isinstance(value, (pd.Timestamp, _dt.date)):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, np.datetime64):
        return "" if np.isnat(value) else str(value)[:10]
    return str(value)


def manifest_from_frame(frame: pd.DataFrame, *, base_dir=None,
                        date_order: str | None = None) -> pd.DataFrame:
    """Validate a manifest built in memory (same columns as the CSV; dates may be
    dates or text). Messages name the row it would have in a CSV (header = row 1)."""
    raw = pd.DataFrame({str(c).strip().lower(): [_cell(v) for v in frame[c]]
                        for c in frame.columns}, index=range(len(frame)), dtype=object)
    raw = raw.drop(columns=[c for c in ("path", "source_file", "source_line", "day",
                                        "status") if c in raw])
    raw["source_line"] = np.arange(2, len(frame) + 2, dtype=np.int64)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _coerce(raw, "<manifest table>", base, date_order)


def _coerce(raw: pd.DataFrame, name: str, base: Path, date_order) -> pd.DataFrame:
    for col in raw.columns:
        if col not in MANIFEST_COLUMNS and col != "source_line" and col not in IGNORED:
            raise clinical_error(name, 1, col, "unknown manifest column; expected "
                                 f"{', '.join(MANIFEST_COLUMNS)}")
    for col in REQUIRED:
        if col not in raw.columns:
            hint = " (the patient column is called patient_id)" \
                if col == "patient_id" and "patient" in raw.columns else ""
            raise clinical_error(name, 1, col, f"required column missing from the sample "
                                 f"manifest{hint}")
    rows = []
    seen_sample: dict[tuple, int] = {}
    seen_file: dict[str, int] = {}
    for rec in raw.to_dict("records"):
        line = int(rec["source_line"])
        for col in REQUIRED:
            if not str(rec[col]).strip():
                raise clinical_error(name, line, col, "a value is required here")
        kind = _choice(rec["kind"], KINDS, name, line, "kind")
        material = _choice(rec["material"], MATERIALS, name, line, "material")
        try:
            date = pd.Timestamp(parse_date(rec["collection_date"], date_order=date_order))
        except ValueError as exc:
            raise clinical_error(name, line, "collection_date", str(exc)) from None
        order = (rec.get("visit_order") or "").strip()
        try:
            order = float(order) if order else np.nan
        except ValueError:
            raise clinical_error(name, line, "visit_order",
                                 f"{order!r} is not a number") from None
        file = rec["file"].strip()
        sample = (rec.get("sample") or "").strip() or _default_sample(file, kind)
        resolved = os.path.normpath(base / file)
        key = (kind, sample)
        if key in seen_sample:
            raise clinical_error(name, line, "sample",
                                 f"{kind} sample {sample!r} is already listed on row "
                                 f"{seen_sample[key]}; each sample appears once")
        seen_sample[key] = line
        if kind == "fcs":
            if resolved in seen_file:
                raise clinical_error(name, line, "file",
                                     f"{file!r} is already listed on row {seen_file[resolved]}")
            seen_file[resolved] = line
        rows.append({
            "file": file, "kind": kind, "patient_id": rec["patient_id"].strip(),
            "visit": rec["visit"].strip(), "collection_date": date, "material": material,
            "lineage": normalise_lineage(rec.get("lineage"), material), "sample": sample,
            "tube": (rec.get("tube") or "").strip(), "visit_order": order, "path": resolved,
            "source_file": name, "source_line": line})
    if not rows:
        raise ClinicalDataError(f"{name}: the sample manifest lists no samples")
    columns = list(MANIFEST_COLUMNS) + ["path", "source_file", "source_line"]
    out = pd.DataFrame(rows, columns=columns)
    out["collection_date"] = pd.to_datetime(out["collection_date"]).astype("datetime64[ns]")
    out["visit_order"] = out["visit_order"].astype("float64")
    out["source_line"] = out["source_line"].astype("int64")
    return out


def add_days(manifest: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``manifest`` with ``day``: days from the patient's transplant to collection.

    ``patients`` is the clinical patients table (``patient_id``, ``transplant_date``).
    A patient missing from it raises, naming the manifest row.
    """
    tx = patients.set_index("patient_id")["transplant_date"]
    out = manifest.copy()
    known = out["patient_id"].isin(tx.index)
    if not known.all():
        row = out[~known].iloc[0]
        raise clinical_error(row["source_file"], row["source_line"], "patient_id",
                             f"patient {row['patient_id']!r} is not in the clinical patients "
                             "table; add the patient there or correct the id")
    days = (out["collection_date"] - out["patient_id"].map(tx)).dt.days
    out["day"] = days.astype("float64")
    return out


def check_manifest_files(manifest: pd.DataFrame, folders=None, *,
                         known=()) -> tuple[list[Path], list[Path]]:
    """Files on disk not in the manifest, and manifest files not on disk.

    ``folders``: where to look for data files (searched recursively); default the
    folders that hold the listed files. A file counts as a data file when its
    extension is ``.fcs``, ``.lmd`` or one of the extensions of the listed STR exports.
    ``known``: other files the study uses (the donor and recipient reference exports
    the chimerism results name), not reported as unlisted.
    Returns ``(unlisted_files, missing_files)``, each a sorted list of paths.
    """
    paths = [Path(p) for p in manifest["path"]]
    listed = {os.path.normcase(os.path.abspath(p)) for p in [*paths, *known]}
    missing = sorted({p for p in paths if not p.is_file()})
    suffixes = set(FCS_SUFFIXES) | {Path(p).suffix.lower() for p, k in
                           zip(manifest["path"], manifest["kind"]) if k == "str"}
    suffixes.discard("")
    if folders is None:
        folders = sorted({p.parent for p in paths if p.parent.is_dir()})
    else:
        folders = [Path(f) for f in ([folders] if isinstance(folders, (str, os.PathLike))
                                     else folders)]
    sources = {os.path.normcase(os.path.abspath(s)) for s in manifest.get("source_file", [])}
    unlisted = set()
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for f in Path(folder).rglob("*"):
            if f.name.startswith(".") or f.suffix.lower() not in suffixes or not f.is_file():
                continue
            key = os.path.normcase(os.path.abspath(f))
            if key not in listed and key not in sources:
                unlisted.add(f)
    return sorted(unlisted), missing
