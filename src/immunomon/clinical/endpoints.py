"""Per-patient endpoints and time-varying covariate intervals (days from transplant).

Definitions are written out in ``docs/clinical.md``; in short (day 0 = transplant):

- end of follow-up: the death date, else the last follow-up date;
- OS: death from any cause (1) or censored (0) at the end of follow-up;
- progression: the first response assessment recorded or derived as PD, or a
  death attributed to relapse/progression (at the death date) if none earlier;
- PFS: progression or death, whichever first (1), else censored (0);
- relapse with competing non-relapse mortality: 1 progression, 2 death
  without prior progression (NRM), 0 censored, at the first of them;
- TRM: death attributed to the transplant (cause ``nrm``) = 1, death from
  relapse/progression = 2 (competing), 0 alive;
- aGVHD II-IV / III-IV: first assessment with that overall grade (MAGIC by
  default) = 1, death before it = 2, else 0; cGVHD (any NIH severity above
  none) and moderate-severe cGVHD likewise.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import ClinicalDataError
from .gvhd import (
    PREDNISONE_EQUIVALENT, OrganScores, StageSet, steroid_refractory_chronic,
    steroid_refractory_day,
)
from .tables import clinical_error

__all__ = ["endpoints", "intervals", "STEROIDS", "covariate_name"]

STEROIDS = ("methylprednisolone", "prednisolone", "prednisone")
_GRADING = {"magic": "grade_magic", "glucksberg": "grade_glucksberg"}


def covariate_name(drug: str) -> str:
    """``on_<drug>`` name part: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", drug.strip().lower()).strip("_")


def _grade_col(grading: str) -> str:
    try:
        return _GRADING[grading]
    except KeyError:
        raise ClinicalDataError(f"grading must be one of {sorted(_GRADING)}, not "
                                f"{grading!r}") from None


def _first_day(table: pd.DataFrame, mask: pd.Series) -> pd.Series:
    """Per patient, the first ``day`` where ``mask`` holds."""
    hit = table[mask.fillna(False).astype(bool)]
    return hit.groupby("patient_id")["day"].min()


def _follow_up(data) -> pd.DataFrame:
    p = data.patients
    death = data.deaths.set_index("patient_id")
    fu = data.followup.set_index("patient_id")["day"]
    out = pd.DataFrame({"patient_id": p["patient_id"].to_numpy()})
    out["death_day"] = out["patient_id"].map(death["day"]).astype("float")
    out["death_cause"] = out["patient_id"].map(death["cause"])
    out["last_follow_up_day"] = out["patient_id"].map(fu).astype("float")
    end = out["death_day"].fillna(out["last_follow_up_day"])
    if end.isna().any():
        i = int(np.flatnonzero(end.isna().to_numpy())[0])
        row = p.iloc[i]
        raise clinical_error(row["source_file"], row["source_line"], "patient_id",
                             f"patient {row['patient_id']!r} has neither a death nor a last "
                             "follow-up date; add it to followup.csv")
    out["end_day"] = end
    return out


def _competing(first_event: pd.Series, out: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Event at its day (1), else death (2), else censored at end of follow-up (0)."""
    t = out["patient_id"].map(first_event).astype(float).to_numpy()
    dead = out["death_day"].notna().to_numpy()
    has = ~np.isnan(t)
    time = np.where(has, t, out["end_day"].to_numpy())
    code = np.where(has, 1, np.where(dead, 2, 0))
    return time, code


def endpoints(data, *, grading: str = "magic", steroids=STEROIDS) -> pd.DataFrame:
    """One row per patient with the endpoints of the module docstring.

    Columns: ``patient_id``, ``end_day``, ``death_day``, ``death_cause``,
    ``os_days``/``os_event``, ``progression_day``, ``pfs_days``/``pfs_event``,
    ``relapse_days``/``relapse_event`` (0/1/2), ``trm_days``/``trm_event``
    (0/1/2), ``agvhd_2_4_days``/``_event``, ``agvhd_3_4_days``/``_event``,
    ``cgvhd_days``/``_event``, ``cgvhd_modsev_days``/``_event`` (all 0/1/2 with
    death competing), ``agvhd_max_grade``, ``agvhd_steroid_refractory``
    (see :func:`~immunomon.clinical.gvhd.steroid_refractory`; <NA> when no
    steroids were given for acute GVHD or the course cannot be judged) and
    ``agvhd_steroid_refractory_day`` (the assessment that shows it),
    ``cgvhd_steroid_refractory``/``_day`` (NIH definition,
    :func:`~immunomon.clinical.gvhd.steroid_refractory_chronic`, from the
    systemic steroid doses given from chronic GVHD onset on; <NA> without
    steroids, or when a dose is in mg and the patient's weight is unknown).
    ``grading``: "magic" or "glucksberg" for the acute GVHD grade.
    """
    gcol = _grade_col(grading)
    out = _follow_up(data)
    dead = out["death_day"].notna().to_numpy()
    end = out["end_day"].to_numpy()

    out["os_days"] = end
    out["os_event"] = dead.astype(int)

    resp = data.responses
    pd_day = _first_day(resp, resp["progression"]) if len(resp) else pd.Series(dtype=float)
    prog = out["patient_id"].map(pd_day).astype(float)
    relapse_death = (out["death_cause"] == "relapse").to_numpy()
    prog = prog.where(prog.notna() | ~pd.Series(relapse_death), out["death_day"])
    out["progression_day"] = prog
    has_prog = prog.notna().to_numpy()
    out["pfs_days"] = np.where(has_prog, prog, end)
    out["pfs_event"] = (has_prog | dead).astype(int)
    out["relapse_days"] = out["pfs_days"]
    out["relapse_event"] = np.where(has_prog, 1, np.where(dead, 2, 0))
    out["trm_days"] = end
    out["trm_event"] = np.where(~dead, 0, np.where(out["death_cause"] == "nrm", 1, 2))

    ag, cg = data.agvhd, data.cgvhd
    for name, table, mask in (
            ("agvhd_2_4", ag, ag[gcol] >= 2),
            ("agvhd_3_4", ag, ag[gcol] >= 3),
            ("cgvhd", cg, cg["nih_severity"] != "none"),
            ("cgvhd_modsev", cg, cg["nih_severity"].isin(["moderate", "severe"]))):
        first = _first_day(table, mask) if len(table) else pd.Series(dtype=float)
        out[f"{name}_days"], out[f"{name}_event"] = _competing(first, out)

    maxg = ag.groupby("patient_id")[gcol].max() if len(ag) else pd.Series(dtype="Int64")
    out["agvhd_max_grade"] = out["patient_id"].map(maxg).fillna(0).astype("Int64")
    out["agvhd_steroid_refractory"], out["agvhd_steroid_refractory_day"] = \
        _steroid_flags(data, out, gcol, steroids)
    out["cgvhd_steroid_refractory"], out["cgvhd_steroid_refractory_day"] = \
        _chronic_steroid_flags(data, out)
    return out


def _steroid_flags(data, out, gcol, steroids) -> tuple[pd.Series, pd.Series]:
    """Steroid start: the first systemic steroid period starting on or after the first
    assessment with acute GVHD grade >= I (any organ involved)."""
    names = {s.lower() for s in steroids}
    tr = data.treatments
    st = tr[tr["drug"].str.lower().isin(names) & (tr["status"] == "on")] if len(tr) else tr
    flags, days = [], []
    for pid in out["patient_id"]:
        a = data.agvhd[data.agvhd["patient_id"] == pid].sort_values("day")
        onset = a.loc[a[gcol] >= 1, "day"]
        s = st[st["patient_id"] == pid] if len(st) else st
        starts = s.loc[s["start_day"] >= onset.iloc[0], "start_day"] \
            if not (onset.empty or s.empty) else pd.Series(dtype=float)
        if starts.empty:
            flags.append(pd.NA)
            days.append(np.nan)
            continue
        seq = [StageSet(int(r["day"]), int(r["skin"]), int(r["liver"]), int(r["upper_gi"]),
                        int(r["lower_gi"])) for _, r in a.iterrows()]
        flag, day = steroid_refractory_day(seq, int(starts.min()))
        flags.append(pd.NA if flag is None else flag)
        days.append(np.nan if day is None else float(day))
    return (pd.Series(flags, index=out.index, dtype="boolean"),
            pd.Series(days, index=out.index, dtype=float))


def steroid_doses(data, pid, end_day: float | None = None
                  ) -> list[tuple[int, int, float]] | None:
    """A patient's systemic steroid periods as prednisone mg/kg/day (first, last, dose).

    Doses in mg/kg (per day) are used as they are; doses in mg need the
    patient's ``weight_kg``. Returns None when a dose cannot be converted (no
    weight, no dose, another unit), so refractoriness is not judged on part of
    the steroids. A period still running lasts to ``end_day``.
    """
    tr = data.treatments
    if tr.empty:
        return []
    rows = tr[(tr["patient_id"] == pid) & (tr["status"] == "on")
              & tr["drug"].str.lower().isin(PREDNISONE_EQUIVALENT)]
    weight = data.patients.set_index("patient_id")["weight_kg"].get(pid) \
        if "weight_kg" in data.patients else None
    out = []
    for r in rows.itertuples():
        unit = re.sub(r"\s+", "", str(r.dose_unit or "")).lower()
        if pd.isna(r.dose):
            return None
        if unit in ("mg/kg", "mg/kg/day", "mg/kg/d"):
            mgkg = float(r.dose)
        elif unit in ("mg", "mg/day", "mg/d") and weight is not None and not pd.isna(weight):
            mgkg = float(r.dose) / float(weight)
        else:
            return None
        stop = r.stop_day if not pd.isna(r.stop_day) else \
            (end_day if end_day is not None else r.start_day)
        out.append((int(r.start_day), int(stop),
                    mgkg * PREDNISONE_EQUIVALENT[r.drug.strip().lower()]))
    return out


def _chronic_steroid_flags(data, out) -> tuple[pd.Series, pd.Series]:
    """NIH steroid-refractory chronic GVHD per patient, and its day (see gvhd.py)."""
    flags, days = [], []
    cg = data.cgvhd
    for pid, end in zip(out["patient_id"], out["end_day"]):
        a = cg[cg["patient_id"] == pid].sort_values("day") if len(cg) else cg
        onset = a.loc[a["nih_severity"] != "none", "day"] if len(a) else a
        doses = steroid_doses(data, pid, end)
        if len(onset) == 0 or not doses:
            flags.append(pd.NA)
            days.append(np.nan)
            continue
        first = onset.iloc[0]
        doses = [(max(s, int(first)), min(e, int(end)), d) for s, e, d in doses
                 if min(e, int(end)) >= max(s, int(first))]
        seq = [OrganScores(int(r.day), int(r.skin), int(r.mouth), int(r.eyes), int(r.gi),
                           int(r.liver), int(r.lung_score), int(r.joints_fascia),
                           None if pd.isna(r.lung_fev1_pct) else float(r.lung_fev1_pct))
               for r in a[a["day"] >= first].itertuples()]
        flag, day = steroid_refractory_chronic(seq, doses) if doses else (None, None)
        flags.append(pd.NA if flag is None else flag)
        days.append(np.nan if day is None else float(day))
    return (pd.Series(flags, index=out.index, dtype="boolean"),
            pd.Series(days, index=out.index, dtype=float))


# ---------------------------------------------------------------------------
# time-varying intervals


def _subtract(run: tuple[int, int], holds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive day run minus inclusive held runs."""
    pieces = [run]
    for hs, he in holds:
        nxt = []
        for a, b in pieces:
            if he < a or hs > b:
                nxt.append((a, b))
                continue
            if a < hs:
                nxt.append((a, hs - 1))
            if he < b:
                nxt.append((he + 1, b))
        pieces = nxt
    return pieces


def exposure_runs(periods: list[tuple[int, int, float]], holds: list[tuple[int, int]]
                  ) -> list[tuple[int, int, float]]:
    """Drug periods (first day, last day, value) minus holds -> (start, stop, value) intervals.

    Days are inclusive day numbers; the result uses the counting-process
    convention (start, stop]: a value begins at the first day of its period
    (an event on that day still counts under the previous value) and lasts
    through the last day. Periods whose days touch or follow each other
    (a dose change) are glued into one exposure with the value switching at
    the new period's first day; a hold of days h1..h2 leaves the exposure
    ``(start, h1 - 1]`` and ``(h2 + 1, stop]``. Zero-length results are dropped.
    """
    pieces = sorted((a, b, v) for s, e, v in periods for a, b in _subtract((s, e), holds))
    out: list[tuple[int, int, float]] = []
    i = 0
    while i < len(pieces):
        group = [pieces[i]]
        hi = pieces[i][1]
        i += 1
        while i < len(pieces) and pieces[i][0] <= hi + 1:
            group.append(pieces[i])
            hi = max(hi, pieces[i][1])
            i += 1
        for k, (a, _, v) in enumerate(group):
            start = a
            stop = group[k + 1][0] if k + 1 < len(group) else hi
            if stop <= start:
                continue
            if out and out[-1][1] == start and out[-1][2] == v:
                out[-1] = (out[-1][0], stop, v)
            else:
                out.append((start, stop, v))
    return out


def intervals(data, *, grading: str = "magic") -> pd.DataFrame:
    """Time-varying covariates as tidy intervals: patient_id, start, stop, covariate, value.

    Each row says the covariate has ``value`` on (start, stop] (days from
    transplant); outside its rows a covariate is 0. Covariates:

    - ``agvhd_2_4``, ``agvhd_3_4``, ``cgvhd``, ``cgvhd_modsev``: 1 from the
      onset day (as in :func:`endpoints`) to the end of follow-up;
    - ``on_<drug>``: 1 while on the drug, periods glued and holds removed as in
      :func:`exposure_runs`; an ongoing period runs to the end of follow-up;
    - ``<drug>_dose``: the dose of the period (periods without a dose are left out).

    Select one covariate and pass ``patient_id, start, stop`` rows to a
    counting-process builder such as ``immunomon.analysis.counting_process``.
    """
    ep = endpoints(data, grading=grading)
    end = ep.set_index("patient_id")["end_day"]
    rows = []
    for name in ("agvhd_2_4", "agvhd_3_4", "cgvhd", "cgvhd_modsev"):
        hit = ep[ep[f"{name}_event"] == 1]
        for pid, day, stop in zip(hit["patient_id"], hit[f"{name}_days"], hit["end_day"]):
            if day < stop:
                rows.append((pid, float(day), float(stop), name, 1.0))
    tr = data.treatments
    if len(tr):
        tr = tr.assign(_cov=tr["drug"].map(covariate_name))
        for (pid, cov), grp in tr.groupby(["patient_id", "_cov"], sort=True):
            last = int(end[pid])
            holds = [(int(r.start_day), int(r.stop_day) if not pd.isna(r.stop_day) else last)
                     for r in grp[grp["status"] == "held"].itertuples()]
            on = grp[grp["status"] == "on"]
            spans = [(int(r.start_day), int(r.stop_day) if not pd.isna(r.stop_day) else last,
                      r.dose) for r in on.itertuples()]
            for s, e, _ in exposure_runs([(a, b, 1.0) for a, b, _ in spans], holds):
                rows.append((pid, float(s), float(e), f"on_{cov}", 1.0))
            dosed = [(a, b, float(d)) for a, b, d in spans if not pd.isna(d)]
            for s, e, v in exposure_runs(dosed, holds):
                rows.append((pid, float(s), float(e), f"{cov}_dose", v))
    out = pd.DataFrame(rows, columns=["patient_id", "start", "stop", "covariate", "value"])
    return out.sort_values(["patient_id", "covariate", "start"], kind="stable") \
        .reset_index(drop=True)
