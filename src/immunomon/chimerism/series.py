"""A patient's chimerism over time: full versus mixed, and rising recipient chimerism.

Rising recipient chimerism between consecutive samples of one patient and lineage is
the sign that often precedes relapse or graft loss; a rise counts only when it
exceeds the assay's variation between runs.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings

import numpy as np
import pandas as pd

from ..clinical.dates import parse_date
from ..errors import ChimerismError
from .calculate import FULL_DONOR, FULL_RECIPIENT, MIXED, NOT_DETERMINED, classify_sample


def classify_series(percent_donor, full_donor: float = 95.0,
                    full_recipient: float = 5.0) -> list:
    """Full donor / mixed / full recipient / not determined for each value."""
    return [classify_sample(float(v), full_donor, full_recipient) for v in percent_donor]


def flag_rising_recipient(summary: pd.DataFrame, *, min_rise: float = 2.0,
                          full_donor: float = 95.0, full_recipient: float = 5.0,
                          warn: bool = True) -> pd.DataFrame:
    """Add ``recipient_rise`` and ``rising_recipient`` to a per-sample table.

    ``summary`` needs ``patient``, ``date`` and ``percent_donor``; ``lineage`` is used
    when present (series are per patient and lineage). ``min_rise`` is the rise in
    percentage points of recipient chimerism, from one sample to the next, beyond
    which the change exceeds the assay's variation (STR: 2-5 points; ddPCR far less).
    Also flags ``lost_full_donor``: the previous sample was full donor, this one is mixed
    or full recipient (``classify_sample``).
    Samples without a date are not compared (False); ``warn`` says how many.
    """
    for col in ("patient", "date", "percent_donor"):
        if col not in summary:
            raise ChimerismError(f"the table needs a {col!r} column to follow a series")
    out = summary.copy()
    out["classification"] = classify_series(out["percent_donor"], full_donor, full_recipient)
    out["percent_recipient"] = 100.0 - out["percent_donor"].astype(float)
    out["_date"] = pd.to_datetime(out["date"], errors="coerce")
    out["recipient_rise"] = np.nan
    out["rising_recipient"] = False
    out["lost_full_donor"] = False
    keys = ["patient", "lineage"] if "lineage" in out else ["patient"]
    valid = out["_date"].notna() & out["percent_donor"].notna() & out["patient"].notna()
    undated = out["percent_donor"].notna() & out["_date"].isna()
    if warn and undated.any():
        # False there means "not compared", not "not rising": say so where it is read
        names = out.loc[undated, "sample"] if "sample" in out else out.index[undated]
        warnings.warn(f"{int(undated.sum())} sample(s) without a date were not compared in "
                      f"their series ({', '.join(map(str, list(names)[:5]))}"
                      f"{', ...' if undated.sum() > 5 else ''}); give dates in the sample "
                      "names or a manifest", UserWarning, stacklevel=2)
    for _, grp in out[valid].groupby(keys, dropna=False, sort=False):
        grp = grp.sort_values("_date")
        rise = grp["percent_recipient"].diff()
        out.loc[grp.index, "recipient_rise"] = rise
        out.loc[grp.index, "rising_recipient"] = (rise > min_rise).to_numpy()
        prev = grp["classification"].shift()
        lost = grp["classification"].isin((MIXED, FULL_RECIPIENT))
        out.loc[grp.index, "lost_full_donor"] = ((prev == FULL_DONOR) & lost).to_numpy()
    return out.drop(columns="_date")


# --------------------------------------------------------------------------- sample labels
_DATE = re.compile(r"(?<!\d)(\d{4})[-_.]?(\d{2})[-_.]?(\d{2})(?!\d)")
_LINEAGE = re.compile(r"(?i)(?<![A-Za-z0-9])(CD3|CD33|CD15|CD14|CD56|CD19|CD34|CD4|CD8|"
                      r"PBMC|WB|PB|BM|GRAN|MYELOID|TCELL|BCELL|NK)(?:\+|pos)?(?![A-Za-z0-9])")
_PATIENT = re.compile(r"(?i)(?<![A-Za-z0-9])((?:P|PT|UPN|PAT)[-_]?\d+)(?![0-9])")


def parse_sample_name(name: str) -> dict:
    """Patient, lineage and date from a sample name like ``P07_CD3_2023-05-04_A01``.

    Only what the name plainly carries is returned; the rest is None.
    """
    out = {"patient": None, "lineage": None, "date": None}
    m = _PATIENT.search(name)
    if m:
        out["patient"] = re.sub(r"[-_]", "", m.group(1)).upper()
    m = _LINEAGE.search(name)
    if m:
        out["lineage"] = m.group(1).upper()
    for m in _DATE.finditer(name):
        y, mo, d = (int(x) for x in m.groups())
        if 1990 <= y <= 2100 and 1 <= mo <= 12 and 1 <= d <= 31:
            out["date"] = f"{y:04d}-{mo:02d}-{d:02d}"
            break
    return out


def read_manifest(path) -> dict:
    """A sample manifest (CSV or TSV with ``sample`` and any of ``patient``, ``lineage``,
    ``date``, ``file``) as ``{sample: {...}}``; a row that names the export ``file`` the
    sample is in (relative to the manifest's folder) is keyed ``(file, sample)``, with
    the file as an absolute path, so that anonymised exports whose samples all carry one
    name can be told apart."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChimerismError(f"{path}: cannot read the manifest ({exc})") from None
    first = text.splitlines()[0] if text.strip() else ""
    reader = csv.reader(io.StringIO(text), delimiter="\t" if "\t" in first else ",")
    header = [h.strip().lower() for h in next(reader, [])]
    if "sample" not in header:
        raise ChimerismError(f"{path}, line 1: the manifest needs a 'sample' column")
    out = {}
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        where = f"{path}, line {reader.line_num}"
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise ChimerismError(f"{where}: {len(cells)} cells for {len(header)} columns "
                                 "(a value holding the delimiter needs quotes)")
        row = dict(zip(header, (c.strip() for c in cells)))
        sample = row.get("sample", "")
        if not sample:
            raise ChimerismError(f"{where}, column {header.index('sample') + 1}: empty "
                                 "sample name")
        file = row.get("file") or None
        key = (os.path.abspath(os.path.join(os.path.dirname(path), file)), sample) \
            if file else sample
        if key in out:
            raise ChimerismError(f"{where}: sample {sample!r} is listed twice"
                                 + (f" for {file}" if file else ""))
        meta = {k: (row.get(k) or None) for k in ("patient", "lineage", "date")}
        if meta["date"]:
            # the clinical tables' strict reading: 04.03.2021 is day-first, 04/03/2021
            # ambiguous (pandas took both month-first)
            try:
                meta["date"] = parse_date(meta["date"]).isoformat()
            except ValueError as exc:
                raise ChimerismError(f"{where}, column {header.index('date') + 1}: "
                                     f"{exc}") from None
        out[key] = meta
    return out


__all__ = ["FULL_DONOR", "FULL_RECIPIENT", "MIXED", "NOT_DETERMINED", "classify_series",
           "flag_rising_recipient", "parse_sample_name", "read_manifest"]
