"""Treatment exposure by dose level: every treatment day with its dose and level.

A study names its drug and the protocol's dose levels (for the demo trial,
lenalidomide 10, 5 and 2.5 mg); :func:`dose_days` turns the treatments table
into one row per patient and day from the first dose to the definitive stop,
and :func:`exposure_summary` into one row per patient (start dose, reductions,
holds, definitive stop and its reason). Definitions: docs/clinical.md,
"Treatment exposure and dose levels".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ClinicalDataError
from .tables import clinical_error

__all__ = ["dose_days", "exposure_summary", "DAY_COLUMNS", "SUMMARY_COLUMNS"]

DAY_COLUMNS = ["patient_id", "day", "state", "dose", "assigned_dose", "level", "lowest"]
SUMMARY_COLUMNS = ["patient_id", "drug", "first_dose_day", "start_dose", "start_level",
                   "last_dose", "last_level", "lowest_level_day", "reductions", "escalations",
                   "holds", "held_days", "days_on", "stop_day", "stop_reason", "ongoing"]


def _levels(levels: Sequence[float]) -> np.ndarray:
    lv = np.array(sorted({float(x) for x in levels}, reverse=True))
    if len(lv) == 0 or (lv <= 0).any():
        raise ClinicalDataError(f"dose levels must be positive numbers, not {list(levels)!r}")
    return lv


def drug_periods(data, drug: str) -> pd.DataFrame:
    """The treatment rows of ``drug`` (case and spaces aside). A drug the treatments do
    not name is an error naming those they do: a misspelt drug would otherwise give
    empty exposures and a primary endpoint that no patient reaches."""
    tr = data.treatments
    if tr.empty:
        return tr
    names = tr["drug"].str.strip().str.lower()
    if not (names == drug.strip().lower()).any():
        known = ", ".join(sorted(set(names)))
        raise ClinicalDataError(f"no treatment of drug {drug!r} in the clinical data; the "
                                f"treatments name: {known}")
    return tr[names == drug.strip().lower()]


def _end_days(data) -> pd.Series:
    """Per patient, the last day of follow-up (death, else last follow-up)."""
    death = data.deaths.set_index("patient_id")["day"]
    fu = data.followup.set_index("patient_id")["day"]
    ids = data.patients["patient_id"]
    return ids.map(death).fillna(ids.map(fu)).set_axis(ids).astype(float)


def dose_days(data, drug: str, levels: Sequence[float]) -> pd.DataFrame:
    """One row per patient and day from the first dose to the definitive stop.

    Columns: ``patient_id``, ``day`` (from transplant), ``state`` ("on": the
    drug was taken; "held": inside a hold; "off": a gap between periods with no
    hold recorded), ``dose`` (taken that day, 0 when held or off),
    ``assigned_dose`` (the dose level in force, kept through holds and gaps),
    ``level`` (0 = the starting level of the protocol, -1 the first reduction,
    ...), ``lowest`` (the assigned dose is the protocol's lowest level).

    A dose change is a new period; on a day where two periods meet the later
    one's dose applies. A period still running lasts to the end of follow-up.
    A dose that is not one of ``levels`` raises
    :class:`~immunomon.ClinicalDataError` naming its row.
    """
    lv = _levels(levels)
    tr = drug_periods(data, drug)
    end = _end_days(data)
    frames = []
    for pid, grp in tr.groupby("patient_id", sort=False):
        on = grp[grp["status"] == "on"].sort_values(["start_day", "source_line"])
        if on.empty:
            continue
        for r in on.itertuples():
            if pd.isna(r.dose):
                raise clinical_error(r.source_file, r.source_line, "dose",
                                     f"the dose of {r.drug} is needed to know its dose level")
            if not np.isclose(lv, float(r.dose), rtol=1e-9, atol=0).any():
                shown = ", ".join(f"{x:g}" for x in lv)
                raise clinical_error(r.source_file, r.source_line, "dose",
                                     f"{r.dose:g} {r.dose_unit or ''} is not one of the dose "
                                     f"levels of {r.drug} in the study settings ({shown})")
        stop = on["stop_day"].astype(float).fillna(end.get(pid, np.nan))
        first, last = int(on["start_day"].min()), int(stop.max())
        n = last - first + 1
        assigned = np.full(n, np.nan)
        for a, b, dose in zip(on["start_day"].astype(int), stop.astype(int), on["dose"]):
            assigned[a - first:b - first + 1] = float(dose)
        state = np.where(np.isnan(assigned), "off", "on").astype(object)
        # through a gap the last level stays assigned
        assigned = pd.Series(assigned).ffill().to_numpy()
        for h in grp[grp["status"] == "held"].itertuples():
            hs = int(h.start_day)
            he = int(h.stop_day) if not pd.isna(h.stop_day) else last
            lo, hi = max(hs, first), min(he, last)
            if lo <= hi:
                state[lo - first:hi - first + 1] = "held"
        index = np.argmin(np.abs(lv[None, :] - assigned[:, None]), axis=1)
        frames.append(pd.DataFrame({
            "patient_id": pid, "day": np.arange(first, last + 1, dtype=float),
            "state": state, "dose": np.where(state == "on", assigned, 0.0),
            "assigned_dose": assigned, "level": -index, "lowest": index == len(lv) - 1}))
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=object if c in ("patient_id", "state")
                                          else float) for c in DAY_COLUMNS})
    return pd.concat(frames, ignore_index=True)[DAY_COLUMNS]


def exposure_summary(data, drug: str, levels: Sequence[float]) -> pd.DataFrame:
    """One row per patient who took ``drug``: the course of its dose levels.

    ``first_dose_day``, ``start_dose``/``start_level``, ``last_dose``/
    ``last_level`` (the level in force at the stop), ``lowest_level_day`` (first
    day assigned the lowest level; NaN if never), ``reductions``/``escalations``
    (changes of the assigned level), ``holds`` (recorded holds) and
    ``held_days``, ``days_on`` (days the drug was taken), ``stop_day`` (the
    definitive stop: the last day of the last period; NaN while ongoing) with
    ``stop_reason`` (that period's ``stop_reason``), ``ongoing``.
    """
    days = dose_days(data, drug, levels)
    tr = drug_periods(data, drug)
    rows = []
    for pid, d in days.groupby("patient_id", sort=False):
        level = d["level"].to_numpy()
        change = np.diff(level)
        p = tr[tr["patient_id"] == pid]
        on = p[p["status"] == "on"].sort_values(["start_day", "source_line"])
        last = on.iloc[-1]
        ongoing = pd.isna(last["stop_day"])
        low = d.loc[d["lowest"], "day"]
        rows.append({
            "patient_id": pid, "drug": drug, "first_dose_day": float(d["day"].iloc[0]),
            "start_dose": float(d["assigned_dose"].iloc[0]), "start_level": int(level[0]),
            "last_dose": float(d["assigned_dose"].iloc[-1]), "last_level": int(level[-1]),
            "lowest_level_day": float(low.iloc[0]) if len(low) else np.nan,
            "reductions": int((change < 0).sum()), "escalations": int((change > 0).sum()),
            "holds": int((p["status"] == "held").sum()),
            "held_days": int((d["state"] == "held").sum()),
            "days_on": int((d["state"] == "on").sum()),
            "stop_day": np.nan if ongoing else float(last["stop_day"]),
            "stop_reason": None if ongoing or pd.isna(last.get("stop_reason")) else
            last["stop_reason"], "ongoing": bool(ongoing)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
