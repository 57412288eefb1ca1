"""The trial's own endpoints: the primary proportion, the one-year outcome table,
the adverse-event table and the safety stopping rule, as plain tables.

:func:`protocol_results` computes everything from a
:class:`~immunomon.clinical.ClinicalData` and a
:class:`~immunomon.clinical.protocol.Protocol`; the pieces are usable alone:

- :func:`primary_summary`: the proportion meeting the primary endpoint with its
  exact (Clopper-Pearson) interval;
- :func:`outcome_table`: overall and progression-free survival (Kaplan-Meier),
  relapse/progression and transplant-related mortality (cumulative incidence,
  competing risks), acute GVHD II-IV and III-IV and chronic GVHD (cumulative
  incidence with death and relapse competing), each at the horizon with its
  interval;
- :func:`adverse_event_table`: patients with at least one event by term and
  worst CTCAE grade.

Definitions and the reasons for them: docs/analysis.md, "Protocol endpoints".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError

__all__ = ["primary_summary", "outcome_table", "gvhd_competing", "adverse_event_table",
           "ProtocolResults", "protocol_results", "OUTCOME_COLUMNS", "AE_TABLE_COLUMNS"]

OUTCOME_COLUMNS = ["outcome", "method", "competing", "n", "events", "competing_events",
                   "at_day", "estimate", "lower", "upper", "note"]
AE_TABLE_COLUMNS = ["term", "patients", "percent", "grade_1", "grade_2", "grade_3",
                    "grade_4", "grade_5", "grade_3_5", "percent_grade_3_5"]


def primary_summary(primary: pd.DataFrame, conf_level: float = 0.95) -> dict:
    """The proportion of patients meeting the primary endpoint, exact interval.

    Returns ``events``, ``n``, ``proportion``, ``lower``, ``upper``,
    ``conf_level``, ``method``, ``by_criterion`` (patients per first criterion
    met) and ``censored_early`` (not met and not followed to the horizon).
    """
    from .correlations import clopper_pearson

    n = int(len(primary))
    if n == 0:
        raise AnalysisError("primary endpoint: no patient in the protocol's population")
    k = int(primary["met"].astype(bool).sum())
    lo, hi = clopper_pearson(k, n, conf_level)
    by = primary.loc[primary["met"].astype(bool), "criterion"].value_counts()
    return {"events": k, "n": n, "proportion": k / n, "lower": lo, "upper": hi,
            "conf_level": conf_level, "method": "exact (Clopper-Pearson) interval",
            "by_criterion": {str(c): int(v) for c, v in sorted(by.items())},
            "censored_early": int((~primary["followed_to_horizon"].astype(bool)).sum())}


def gvhd_competing(endpoints: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """GVHD onset (1) with relapse/progression or death, whichever first, competing (2).

    ``name``: ``agvhd_2_4``, ``agvhd_3_4``, ``cgvhd`` or ``cgvhd_modsev`` (the
    columns of :func:`immunomon.clinical.endpoints`, where only death competes).
    GVHD on the day of relapse counts as GVHD.
    """
    gvhd = np.where(endpoints[f"{name}_event"].to_numpy(int) == 1,
                    endpoints[f"{name}_days"].to_numpy(float), np.nan)
    comp = np.fmin(endpoints["progression_day"].to_numpy(float),
                   endpoints["death_day"].to_numpy(float))
    end = endpoints["end_day"].to_numpy(float)
    first = ~np.isnan(gvhd) & ~(comp < gvhd)
    time = np.where(first, gvhd, np.where(~np.isnan(comp), comp, end))
    status = np.where(first, 1, np.where(~np.isnan(comp), 2, 0))
    return time, status


_OUTCOMES = [
    # label, kind, time/status source, competing events
    ("Overall survival", "km", ("os_days", "os_event"), ""),
    ("Progression-free survival", "km", ("pfs_days", "pfs_event"), ""),
    ("Relapse or progression", "ci", ("relapse_days", "relapse_event"),
     "death without prior progression"),
    ("Transplant-related mortality", "ci", ("trm_days", "trm_event"),
     "death from relapse or progression"),
    ("Acute GVHD grade II-IV", "ci", "agvhd_2_4", "relapse or death"),
    ("Acute GVHD grade III-IV", "ci", "agvhd_3_4", "relapse or death"),
    ("Chronic GVHD", "ci", "cgvhd", "relapse or death"),
    ("Chronic GVHD, moderate or severe", "ci", "cgvhd_modsev", "relapse or death"),
]


def outcome_table(endpoints: pd.DataFrame, *, horizon_days: float = 365.0,
                  origin: pd.Series | None = None, conf_level: float = 0.95) -> pd.DataFrame:
    """Each outcome at ``horizon_days`` from the origin, with its interval.

    ``endpoints``: one row per patient as :func:`immunomon.clinical.endpoints`
    (times from transplant); ``origin``: per patient (indexed by patient id) the
    day from transplant that is time 0 (the first dose); default transplant.
    Events before a patient's origin count at time 0 (the note gives how many).
    Survival is Kaplan-Meier with log-log intervals; incidences are
    Aalen-Johansen with log-log intervals, as R's survfit and cmprsk::cuminc.
    """
    from .competing import cumulative_incidence
    from .survival import kaplan_meier

    ep = endpoints.reset_index(drop=True)
    shift = np.zeros(len(ep)) if origin is None else \
        ep["patient_id"].map(origin).to_numpy(float)
    if np.isnan(shift).any():
        raise AnalysisError("outcome table: some patients have no origin day (never "
                            "treated?); leave them out of the endpoints table")
    h = float(horizon_days)
    rows = []
    for label, kind, source, competing in _OUTCOMES:
        if isinstance(source, tuple):
            if source[0] not in ep:
                continue
            time = ep[source[0]].to_numpy(float)
            status = ep[source[1]].to_numpy(int)
        else:
            if f"{source}_event" not in ep:
                continue
            time, status = gvhd_competing(ep, source)
        t = time - shift
        before = int((t < 0).sum())
        t = np.maximum(t, 0.0)
        within = t <= h
        base = {"outcome": label, "competing": competing, "n": len(ep), "at_day": h,
                "events": int(((status == 1) & within).sum()),
                "competing_events": int(((status == 2) & within).sum()) if kind == "ci" else 0,
                "note": f"{before} patient(s) with the event before the origin, counted at "
                        "time 0" if before else ""}
        frame = pd.DataFrame({"time": t, "status": status})
        if kind == "km":
            base["method"] = "Kaplan-Meier, log-log interval"
            frame["event"] = (status == 1).astype(int)
            at = kaplan_meier(frame, "time", "event", times=[h],
                              conf_level=conf_level).at_times.iloc[0]
            est, lo, hi = at["survival"], at["lower"], at["upper"]
        else:
            base["method"] = "cumulative incidence (Aalen-Johansen), log-log interval"
            if not (status == 1).any():
                rows.append({**base, "estimate": 0.0, "lower": np.nan, "upper": np.nan,
                             "note": (base["note"] + "; " if base["note"] else "") +
                             "no event"})
                continue
            res = cumulative_incidence(frame, "time", "status", causes=[1], times=[h],
                                       conf_level=conf_level)
            at = res.at_times.iloc[0]
            est, lo, hi = at["incidence"], at["lower"], at["upper"]
        if np.isnan(est):
            base["note"] = (base["note"] + "; " if base["note"] else "") + \
                f"no patient followed to day {h:g}"
        rows.append({**base, "estimate": est, "lower": lo, "upper": hi})
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)


def adverse_event_table(adverse_events: pd.DataFrame, n_patients: int) -> pd.DataFrame:
    """Patients with at least one event, by term and by worst grade.

    One row per term (the first row: any adverse event), with the number of
    patients having it, the number whose worst grade of it is 1..5, those at
    grade 3-5 and both percentages of ``n_patients``. Sorted by grade 3-5,
    then by any grade, then by term.
    """
    if n_patients <= 0:
        raise AnalysisError("adverse-event table: no patients")
    ae = adverse_events
    rows = []

    def row(term, worst: pd.Series):
        counts = {f"grade_{g}": int((worst == g).sum()) for g in range(1, 6)}
        severe = int((worst >= 3).sum())
        return {"term": term, "patients": int(len(worst)),
                "percent": 100.0 * len(worst) / n_patients, **counts,
                "grade_3_5": severe, "percent_grade_3_5": 100.0 * severe / n_patients}

    rows.append(row("Any adverse event", ae.groupby("patient_id")["grade"].max()
                    if len(ae) else pd.Series(dtype=int)))
    terms = [row(term, grp.groupby("patient_id")["grade"].max())
             for term, grp in ae.groupby("term", sort=False)] if len(ae) else []
    terms.sort(key=lambda r: (-r["grade_3_5"], -r["patients"], str(r["term"]).lower()))
    return pd.DataFrame(rows + terms, columns=AE_TABLE_COLUMNS)


@dataclass(frozen=True)
class ProtocolResults:
    """Everything the "Protocol endpoints" section reports (see :func:`protocol_results`)."""

    protocol: object
    primary: pd.DataFrame            # per patient
    summary: dict                    # proportion with its interval
    outcomes: pd.DataFrame           # one-year outcome table
    adverse_events: pd.DataFrame     # graded events within the window, merged
    graded_adverse_events: pd.DataFrame   # all graded events of every patient, merged
    ae_table: pd.DataFrame
    exposure: pd.DataFrame           # per patient dose-level course
    boundaries: pd.DataFrame | None
    operating: pd.DataFrame | None
    sequence: pd.DataFrame | None
    stopping: object | None


def protocol_results(data, protocol, *, conf_level: float = 0.95, seed: int = 0,
                     n_sim: int = 10000) -> ProtocolResults:
    """The primary endpoint, the one-year table, the adverse events and the stopping
    rule of ``protocol`` on the clinical data ``data``.

    The population is the protocol's (treated patients by default); the
    adverse-event table counts graded events (reported and laboratory, merged)
    with onset from each patient's origin to the horizon. The stopping rule is
    applied to the primary outcomes in the order they became known (the date the
    endpoint was met, else the date the horizon or the end of follow-up was
    reached).
    """
    from ..clinical.exposure import exposure_summary
    from ..clinical.labs import lab_adverse_events, merge_adverse_events
    from ..clinical.protocol import _first_doses, primary_endpoint
    from .stopping import StoppingRule, boundaries, monitor, operating_characteristics

    first = _first_doses(data, protocol.drug)
    lab = lab_adverse_events(data, protocol.ctcae_version, start_day=first)
    ae = merge_adverse_events(data.adverse_events, lab, protocol.ctcae_version,
                              window_days=protocol.merge_window_days)
    endpoints = data.endpoints()
    primary = primary_endpoint(data, protocol, adverse_events=ae, endpoints=endpoints)
    summary = primary_summary(primary, conf_level)
    ids = primary["patient_id"]
    origin = primary.set_index("patient_id")["origin_day"]
    known = origin.notna()
    ep = endpoints[endpoints["patient_id"].isin(ids[known.to_numpy()])]
    outcomes = outcome_table(ep, horizon_days=protocol.horizon_days,
                             origin=origin[known], conf_level=conf_level)
    win = primary.set_index("patient_id")[["origin_day", "horizon_day"]]
    a = ae[ae["patient_id"].isin(ids)].join(win, on="patient_id")
    a = a[(a["onset_day"] >= a["origin_day"]) & (a["onset_day"] <= a["horizon_day"])]
    a = a.drop(columns=["origin_day", "horizon_day"]).reset_index(drop=True)
    ae_table = adverse_event_table(a, len(primary))
    exposure = exposure_summary(data, protocol.drug, protocol.dose_levels) \
        if protocol.dose_levels else pd.DataFrame()
    bnd = oc = seq = rule = None
    if protocol.stopping:
        settings = dict(protocol.stopping)
        rates = tuple(settings.pop("rates", (0.1, 0.2, 0.3, 0.4, 0.5)))
        if "prior" in settings:
            settings["prior"] = tuple(settings["prior"])
        rule = StoppingRule(**settings)
        bnd = boundaries(rule)
        oc = operating_characteristics(rule, rates, n_sim=n_sim, seed=seed)
        # each patient counts when the outcome is known: the day the endpoint was met,
        # else the horizon (or the end of follow-up, if earlier)
        tx = data.patients.set_index("patient_id")["transplant_date"]
        known_day = primary["day"].where(primary["met"].astype(bool),
                                         primary[["horizon_day", "end_day"]].min(axis=1))
        order = primary.assign(_when=primary["patient_id"].map(tx)
                               + pd.to_timedelta(known_day.fillna(0), unit="D"))
        order = order.sort_values(["_when", "patient_id"], kind="stable")
        seq = monitor(order["met"].astype(int).to_numpy(), rule, ids=order["patient_id"])
        seq.insert(2, "known_on", order["_when"].dt.strftime("%Y-%m-%d").to_numpy())
    return ProtocolResults(protocol, primary, summary, outcomes, a, ae, ae_table, exposure,
                           bnd, oc, seq, rule)
