"""Cross-table checks; each failure names file, row (1-based CSV line) and column."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from .tables import clinical_error

__all__ = ["validate_tables", "DATE_COLUMNS"]

# The date columns of each table that must fall inside a patient's follow-up.
DATE_COLUMNS = {
    "treatments": ("start_date", "stop_date"),
    "agvhd": ("date",),
    "cgvhd": ("date",),
    "responses": ("date",),
    "adverse_events": ("onset_date", "resolution_date"),
    "labs": ("date",),
    "deaths": ("date",),
    "followup": ("last_follow_up_date",),
}


def _fail(row, column, problem, table=None):
    """Raise at ``row``; ``table`` supplies the column's name in its source file."""
    labels = table.attrs.get("labels", {}) if table is not None else {}
    raise clinical_error(row["source_file"], row["source_line"], labels.get(column, column),
                         problem)


def _dup(table: pd.DataFrame, keys: list[str], what: str) -> None:
    if table.empty:
        return
    dup = table.duplicated(keys, keep="first")
    if dup.any():
        row = table[dup].iloc[0]
        first = table[(table[keys] == row[keys]).all(axis=1)].iloc[0]
        _fail(row, keys[-1], f"duplicate {what} (first given on row {first['source_line']})",
              table)


def _day(d) -> str:
    return d.strftime("%Y-%m-%d")


def validate_tables(tables: Mapping[str, pd.DataFrame]) -> None:
    """Raise :class:`~immunomon.ClinicalDataError` at the first inconsistency.

    Checks, in order: duplicate ids and assessments; patients missing from the
    patients table; dates before transplant (laboratory values and a response
    baseline may predate it), after death or after the last follow-up; stop
    before start; overlapping treatment periods of one drug; a stop reason only
    on a period that stops; at most one baseline value per patient and test;
    at most one response baseline per patient; a lung score or FEV1 on every
    chronic GVHD assessment.
    """
    patients = tables["patients"]
    _dup(patients, ["patient_id"], "patient id")
    _dup(tables["deaths"], ["patient_id"], "death for this patient")
    _dup(tables["followup"], ["patient_id"], "last follow-up for this patient")
    for name in ("agvhd", "cgvhd", "responses"):
        _dup(tables[name], ["patient_id", "date"], "assessment for this patient and date")

    known = set(patients["patient_id"])
    pfile = patients["source_file"].iloc[0] if len(patients) else "the patients table"
    for name, table in tables.items():
        if name == "patients" or table.empty:
            continue
        unknown = ~table["patient_id"].isin(known)
        if unknown.any():
            row = table[unknown].iloc[0]
            _fail(row, "patient_id", f"patient {row['patient_id']!r} is not in the patients "
                  f"table ({pfile})", table)

    transplant = patients.set_index("patient_id")["transplant_date"]
    death = tables["deaths"].set_index("patient_id")["date"]
    last_fu = tables["followup"].set_index("patient_id")["last_follow_up_date"]

    for name, columns in DATE_COLUMNS.items():
        table = tables[name]
        if table.empty:
            continue
        tx = table["patient_id"].map(transplant)
        dd = table["patient_id"].map(death)
        fu = table["patient_id"].map(last_fu)
        for col in columns:
            d = table[col]
            before = d < tx
            if name == "labs":
                before &= False     # screening laboratory values may predate the transplant
            if name == "responses":
                # A pre-transplant disease assessment may serve as the baseline.
                before &= ~table["baseline"].fillna(False).astype(bool)
            if before.any():
                i = before.to_numpy().nonzero()[0][0]
                row = table.iloc[i]
                hint = " (mark a pre-transplant baseline with baseline=yes)" \
                    if name == "responses" else ""
                _fail(row, col, f"{_day(d.iloc[i])} is before the transplant on "
                      f"{_day(tx.iloc[i])}{hint}", table)
            if name != "deaths":
                after = d > dd
                if after.any():
                    i = after.to_numpy().nonzero()[0][0]
                    _fail(table.iloc[i], col, f"{_day(d.iloc[i])} is after the patient's "
                          f"death on {_day(dd.iloc[i])}", table)
            if name not in ("deaths", "followup"):
                after = d > fu
                if after.any():
                    i = after.to_numpy().nonzero()[0][0]
                    _fail(table.iloc[i], col, f"{_day(d.iloc[i])} is after the last "
                          f"follow-up on {_day(fu.iloc[i])}", table)

    for name, a, b in (("treatments", "start_date", "stop_date"),
                       ("adverse_events", "onset_date", "resolution_date")):
        table = tables[name]
        bad = table[b] < table[a]
        if bad.any():
            row = table[bad].iloc[0]
            _fail(row, b, f"{_day(row[b])} is before {a} {_day(row[a])}", table)

    _check_overlaps(tables["treatments"])
    tr = tables["treatments"]
    if not tr.empty and "stop_reason" in tr:
        bad = tr["stop_reason"].notna() & tr["stop_date"].isna()
        if bad.any():
            _fail(tr[bad].iloc[0], "stop_reason", "a period without a stop date cannot have a "
                  "stop reason; give the stop date, or leave the reason blank", tr)
        held = tr["stop_reason"].notna() & (tr["status"] == "held")
        if held.any():
            _fail(tr[held].iloc[0], "stop_reason", "a hold has no stop reason; give the reason "
                  "of the hold in the reason column", tr)

    labs = tables["labs"]
    if not labs.empty:
        marked = labs[labs["baseline"].fillna(False).astype(bool)].assign(
            _test=lambda t: t["test"].str.lower())
        dup = marked.duplicated(["patient_id", "_test"])
        if dup.any():
            row = marked[dup].iloc[0]
            first = marked[(marked["patient_id"] == row["patient_id"])
                           & (marked["_test"] == row["_test"])].iloc[0]
            _fail(row, "baseline", f"a second baseline {row['test']} for patient "
                  f"{row['patient_id']!r} (the first is on row {first['source_line']})", labs)

    resp = tables["responses"]
    if not resp.empty:
        marked = resp[resp["baseline"].fillna(False).astype(bool)]
        marked.attrs = resp.attrs
        _dup(marked, ["patient_id"], "baseline for this patient")

    cg = tables["cgvhd"]
    if not cg.empty:
        missing = cg["lungs"].isna() & cg["lung_fev1_pct"].isna()
        if missing.any():
            _fail(cg[missing].iloc[0], "lungs",
                  "give the lung symptom score or lung_fev1_pct (FEV1 % predicted)", cg)


def _check_overlaps(treatments: pd.DataFrame) -> None:
    """Periods of one drug and one status may touch (stop == next start) but not overlap.

    A held period lies inside a given period by design, so "on" and "held"
    rows are checked separately.
    """
    if treatments.empty:
        return
    t = treatments.assign(_drug=treatments["drug"].str.lower())
    for _, grp in t.groupby(["patient_id", "_drug", "status"], sort=False):
        grp = grp.sort_values(["start_date", "source_line"])
        prev = None
        for _, row in grp.iterrows():
            if prev is not None:
                open_ended = pd.isna(prev["stop_date"])
                if open_ended or row["start_date"] < prev["stop_date"]:
                    until = "still running" if open_ended else f"until {_day(prev['stop_date'])}"
                    _fail(row, "start_date",
                          f"{row['drug']} period starting {_day(row['start_date'])} overlaps "
                          f"the period on row {prev['source_line']} ({until})", treatments)
            prev = row
