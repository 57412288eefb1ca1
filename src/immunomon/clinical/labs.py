"""Laboratory values become CTCAE-graded adverse events, merged with reported ones.

- :func:`grade_labs`: every laboratory value graded for every term its test can
  raise in one CTCAE version (potassium: hypo- and hyperkalemia), with the
  patient's baseline value;
- :func:`lab_adverse_events`: per patient and term, the episodes of
  treatment-emergent abnormal values: onset, worst grade, resolution;
- :func:`merge_adverse_events`: those episodes together with the
  clinician-reported adverse events, one event where both describe the same
  episode (same term, overlapping in time).

Definitions are in docs/clinical.md ("Adverse events from laboratory values").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ClinicalDataError
from .ctcae import analyte_for_test, grade_values, lab_terms, normalize_version, resolve_term
from .tables import clinical_error

__all__ = ["grade_labs", "lab_baselines", "lab_adverse_events", "merge_adverse_events",
           "AE_COLUMNS", "GRADES"]

GRADES = (1, 2, 3, 4, 5)
AE_COLUMNS = ["patient_id", "term", "term_key", "grade", "onset_date", "onset_day",
              "resolution_date", "resolution_day", *[f"grade_{g}_day" for g in GRADES],
              "relation", "action", "drug", "source", "test", "worst_value", "unit"]
_RELATION_ORDER = ["unrelated", "unlikely", "possible", "related", "probable", "definite"]
_ACTION_ORDER = ["not_applicable", "unknown", "none", "dose_increased", "dose_reduced",
                 "interrupted", "withdrawn"]


def lab_baselines(labs: pd.DataFrame, start_day: pd.Series | None = None) -> pd.DataFrame:
    """Each patient's baseline row per test: the row marked ``baseline=yes``, else the
    last value on or before the patient's ``start_day`` (day 0 when not given).

    Returns the baseline rows with ``_test`` (lower-cased test) added; patients
    without a value by then have no baseline (treated as normal).
    """
    t = labs.assign(_test=labs["test"].str.strip().str.lower())
    marked = t[t["baseline"].fillna(False).astype(bool)]
    start = t["patient_id"].map(start_day) if start_day is not None else \
        pd.Series(0.0, index=t.index)
    start = start.fillna(0.0)
    before = t[(t["day"].astype(float) <= start) & ~t.set_index(["patient_id", "_test"])
               .index.isin(marked.set_index(["patient_id", "_test"]).index)]
    last = before.sort_values(["patient_id", "_test", "day", "source_line"], kind="stable") \
        .groupby(["patient_id", "_test"], sort=False).tail(1)
    return pd.concat([marked, last]).reset_index(drop=True)


def grade_labs(labs: pd.DataFrame, version="3.0", *, start_day: pd.Series | None = None
               ) -> pd.DataFrame:
    """One row per laboratory value and CTCAE term its test can raise, graded.

    Columns: the laboratory columns, ``term_key``, ``term`` (the version's
    wording), ``grade`` (0-4), ``baseline_value``, ``baseline_day``,
    ``baseline_grade``. Tests that no CTCAE term grades (ferritin, M-protein)
    are left out. ``start_day``: per patient, the day up to which the last
    value is the baseline (the first dose of the study drug), when no row is
    marked ``baseline=yes``. A value that cannot be graded (missing ULN, unit
    that does not fit) raises :class:`~immunomon.ClinicalDataError` naming its
    file, row and column.
    """
    version = normalize_version(version)
    cols = list(labs.columns)
    empty = pd.DataFrame(columns=[*cols, "term_key", "term", "grade", "baseline_value",
                                  "baseline_day", "baseline_grade"])
    if labs.empty:
        return empty
    labs = labs.assign(_test=labs["test"].str.strip().str.lower())
    base = lab_baselines(labs.drop(columns="_test"), start_day)
    base = base.set_index(["patient_id", "_test"])
    key = pd.MultiIndex.from_frame(labs[["patient_id", "_test"]])
    labs["baseline_value"] = base["value"].reindex(key).to_numpy()
    labs["baseline_day"] = base["day"].astype(float).reindex(key).to_numpy()
    out = []
    for test, grp in labs.groupby("_test", sort=False):
        for spec in lab_terms(test, version):
            if spec.not_graded_by_value:
                continue
            for unit, part in grp.groupby(grp["unit"].fillna(""), sort=False):
                out.append(_grade_part(part, spec, unit or None))
    if not out:
        return empty
    graded = pd.concat(out).sort_values(["patient_id", "day", "term_key", "source_line"],
                                        kind="stable")
    return graded.drop(columns="_test").reset_index(drop=True)


def _grade_part(part: pd.DataFrame, spec, unit) -> pd.DataFrame:
    """Grade one term for rows of one test and unit; errors point at the row."""
    kwargs = dict(version=spec.version, unit=unit, uln=part["uln"].to_numpy(float),
                  lln=part["lln"].to_numpy(float))
    term = spec.key
    try:
        grade = grade_values(term, part["value"].to_numpy(float),
                             baseline=part["baseline_value"].to_numpy(float), **kwargs)
        # the baseline graded by the same rules (against itself where the version
        # grades multiples of an abnormal baseline)
        base = part["baseline_value"].fillna(part["value"]).to_numpy(float)
        base_grade = grade_values(term, base, baseline=base, **kwargs)
    except ClinicalDataError:
        _locate_error(part, spec, unit)
        raise
    base_grade = np.where(part["baseline_value"].isna(), 0, base_grade)
    return part.assign(term_key=spec.key, term=spec.term, grade=grade,
                       baseline_grade=base_grade)


def _locate_error(part: pd.DataFrame, spec, unit) -> None:
    """Re-grade row by row to raise the error at the first row that fails."""
    for _, row in part.iterrows():
        for value, baseline, what in ((row["value"], row["baseline_value"], "value"),
                                      (row["baseline_value"], np.nan, "baseline value")):
            if pd.isna(value):
                continue
            try:
                grade_values(spec.key, [value], version=spec.version, unit=unit,
                             uln=row["uln"], lln=row["lln"], baseline=baseline)
            except ClinicalDataError as exc:
                column = "unit" if "unit" in str(exc) else \
                    "uln" if "upper limit" in str(exc) else \
                    "lln" if "lower limit" in str(exc) else "value"
                where = "" if what == "value" else \
                    f" (this patient's baseline {row['test']}, day {row['baseline_day']:g})"
                raise clinical_error(row["source_file"], row["source_line"], column,
                                     f"{row['test']} {value:g}{where}: {exc}") from None


def _episodes(rows: pd.DataFrame) -> list[dict]:
    """Runs of consecutive emergent values (grade above the baseline grade) of one term."""
    out, cur = [], None
    for r in rows.itertuples(index=False):
        emergent = r.grade > r.baseline_grade
        if emergent:
            if cur is None:
                cur = {"onset_date": r.date, "onset_day": r.day, "grade": 0,
                       "worst_value": r.value, "unit": r.unit, "test": r.test,
                       **{f"grade_{g}_day": np.nan for g in GRADES}}
            if r.grade > cur["grade"]:
                cur["grade"], cur["worst_value"] = int(r.grade), r.value
            for g in range(1, int(r.grade) + 1):
                if np.isnan(cur[f"grade_{g}_day"]):
                    cur[f"grade_{g}_day"] = float(r.day)
        elif cur is not None:
            cur.update(resolution_date=r.date, resolution_day=r.day)
            out.append(cur)
            cur = None
    if cur is not None:
        cur.update(resolution_date=pd.NaT, resolution_day=np.nan)
        out.append(cur)
    return out


def lab_adverse_events(data, version="3.0", *, start_day: pd.Series | None = None
                       ) -> pd.DataFrame:
    """Adverse events from laboratory values: one row per episode (columns :data:`AE_COLUMNS`).

    An episode of a term starts at the first value after the baseline whose
    grade is above the baseline grade (treatment-emergent) and lasts while
    consecutive values stay above it; it resolves on the date of the first
    value back at or below the baseline grade (blank while still abnormal at
    the last value). ``grade`` is its worst grade; ``grade_<g>_day`` the first
    day it reached grade g or worse. Values on or before the baseline day, or
    on or before the patient's ``start_day`` (day 0 when not given), are never
    events. Several values of one term on one day count as their worst.
    """
    version = normalize_version(version)
    graded = grade_labs(data.labs, version, start_day=start_day)
    rows = []
    if len(graded):
        # treatment-emergent: after the baseline value and after the start day
        start = graded["patient_id"].map(start_day) if start_day is not None else \
            pd.Series(0.0, index=graded.index)
        after_day = np.fmax(graded["baseline_day"].to_numpy(float),
                            start.fillna(0.0).to_numpy(float))
        after = graded[graded["day"].to_numpy(float) > after_day]
        after = after.sort_values(["patient_id", "term_key", "day", "grade"],
                                  ascending=[True, True, True, False], kind="stable")
        after = after.drop_duplicates(["patient_id", "term_key", "day"])
        for (pid, key), grp in after.groupby(["patient_id", "term_key"], sort=False):
            term = grp["term"].iloc[0]
            for ep in _episodes(grp):
                rows.append({"patient_id": pid, "term": term, "term_key": key, **ep,
                             "relation": None, "action": None, "drug": None,
                             "source": "laboratory"})
    return _ae_frame(rows)


def _ae_frame(rows) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=AE_COLUMNS)
    out["grade"] = out["grade"].astype("int64")
    for c in ("onset_date", "resolution_date"):
        out[c] = pd.to_datetime(out[c])
    for c in ("onset_day", "resolution_day", "worst_value", *[f"grade_{g}_day" for g in GRADES]):
        out[c] = out[c].astype(float)
    return out.sort_values(["patient_id", "onset_day", "term"], kind="stable") \
        .reset_index(drop=True)


def _reported(adverse_events: pd.DataFrame, version: str) -> pd.DataFrame:
    """Clinician-reported events in the merged layout; lab terms in the version's words."""
    rows = []
    for r in adverse_events.itertuples(index=False):
        try:
            spec = resolve_term(r.term, version)
            term, key = spec.term, spec.key
        except ClinicalDataError:
            term, key = r.term, None
        g = int(r.grade)
        rows.append({
            "patient_id": r.patient_id, "term": term, "term_key": key, "grade": g,
            "onset_date": r.onset_date, "onset_day": float(r.onset_day),
            "resolution_date": r.resolution_date,
            "resolution_day": np.nan if pd.isna(r.resolution_day) else float(r.resolution_day),
            **{f"grade_{k}_day": float(r.onset_day) if k <= g else np.nan for k in GRADES},
            "relation": getattr(r, "relation", None), "action": getattr(r, "action", None),
            "drug": getattr(r, "drug", None), "source": "reported", "test": None,
            "worst_value": np.nan, "unit": None})
    return _ae_frame(rows)


def _strongest(values, order):
    ranked = [v for v in values if isinstance(v, str) and v in order]
    return max(ranked, key=order.index) if ranked else None


def merge_adverse_events(reported: pd.DataFrame, laboratory: pd.DataFrame, version="3.0",
                         *, window_days: float = 0) -> pd.DataFrame:
    """Reported and laboratory events as one table, each episode counted once.

    Events of one patient and one CTCAE term (either version's wording or a
    synonym: "neutropenia" is "Neutrophil count decreased") are the same event
    when their periods overlap, or lie within ``window_days`` of each other; an
    event without a resolution date lasts to the end of follow-up. Merged: the
    first onset, the last resolution (blank if either is unresolved), the worst
    grade, the first day at each grade, the strongest relation and the most
    drastic action reported; ``source`` is ``reported``, ``laboratory`` or
    ``both``. Reported events whose term is not a laboratory term pass through.
    """
    version = normalize_version(version)
    rep = _reported(reported, version) if len(reported) else _ae_frame([])
    both = pd.concat([rep, laboratory], ignore_index=True) if len(laboratory) else rep
    if both.empty:
        return _ae_frame([])
    keyed = both[both["term_key"].notna()]
    other = both[both["term_key"].isna()]
    rows = other.to_dict("records")
    for _, grp in keyed.groupby(["patient_id", "term_key"], sort=False):
        grp = grp.sort_values("onset_day", kind="stable")
        start = grp["onset_day"].to_numpy(float)
        stop = grp["resolution_day"].to_numpy(float)
        stop = np.where(np.isnan(stop), np.inf, stop)
        # the running end of the events so far: a new group starts after a gap
        reach = np.maximum.accumulate(stop)
        new = np.r_[True, start[1:] > reach[:-1] + window_days]
        for idx in np.split(np.arange(len(grp)), np.flatnonzero(new)[1:]):
            rows.append(_combine(grp.iloc[idx]))
    return _ae_frame(rows)


def _combine(group: pd.DataFrame) -> dict:
    first = group.iloc[0].to_dict()
    if len(group) == 1:
        return first
    sources = set(group["source"])
    unresolved = group["resolution_day"].isna().any()
    worst = group.loc[group["grade"].idxmax()]
    lab = group[group["source"] != "reported"]
    rep = group[group["source"] != "laboratory"]
    return {
        **first,
        "grade": int(group["grade"].max()),
        "onset_date": group["onset_date"].min(), "onset_day": group["onset_day"].min(),
        "resolution_date": pd.NaT if unresolved else group["resolution_date"].max(),
        "resolution_day": np.nan if unresolved else group["resolution_day"].max(),
        **{f"grade_{g}_day": group[f"grade_{g}_day"].min() for g in GRADES},
        "relation": _strongest(rep["relation"], _RELATION_ORDER),
        "action": _strongest(rep["action"], _ACTION_ORDER),
        "drug": next((d for d in rep["drug"] if isinstance(d, str)), None),
        "source": "both" if "both" in sources or {"reported", "laboratory"} <= sources
        else sources.pop(),
        "test": next((t for t in lab["test"] if isinstance(t, str)), None),
        "worst_value": worst["worst_value"] if not pd.isna(worst["worst_value"]) else
        (lab.loc[lab["grade"].idxmax(), "worst_value"] if len(lab) else np.nan),
        "unit": next((u for u in lab["unit"] if isinstance(u, str)), None),
    }


def analytes_of(labs: pd.DataFrame) -> pd.Series:
    """The analyte key of each laboratory row (None for a test no CTCAE term grades)."""
    keys = {t: (a.key if (a := analyte_for_test(t)) else None) for t in labs["test"].unique()}
    return labs["test"].map(keys)
