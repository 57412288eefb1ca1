"""The protocol's primary endpoint, per patient, from criteria the study states.

The motivating trial's primary outcome is whether a patient had, within one
year of starting lenalidomide, an event that forces the drug to stop for good:
a CTCAE v3.0 grade 3-4 adverse event at the lowest dose level, steroid-
refractory acute or chronic GVHD, or a transplant-related death. Another
protocol states its own criteria, drug, dose levels, CTCAE version, origin and
horizon in the ``protocol`` section of its pipeline file (docs/pipelines.md);
:class:`Protocol` holds them and :func:`primary_endpoint` applies them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..errors import ClinicalDataError

__all__ = ["Protocol", "CRITERIA", "primary_endpoint", "PRIMARY_COLUMNS", "DEMO_CRITERIA"]

# criterion -> (description, option defaults)
CRITERIA = {
    "ae_at_lowest_dose": ("CTCAE grade {grades} adverse event at the lowest dose level",
                          {"grades": (3, 4), "related_only": False, "after_stop_days": 0}),
    "ae": ("CTCAE grade {grades} adverse event", {"grades": (3, 4), "related_only": False}),
    "stopped_for_toxicity": ("{drug} stopped for good for toxicity", {}),
    "steroid_refractory_agvhd": ("steroid-refractory acute GVHD", {}),
    "steroid_refractory_cgvhd": ("steroid-refractory chronic GVHD (NIH)", {}),
    "agvhd": ("acute GVHD grade {min_grade}-IV", {"min_grade": 3}),
    "transplant_related_death": ("transplant-related death", {}),
    "death": ("death from any cause", {}),
}
DEMO_CRITERIA = (("ae_at_lowest_dose", {}), ("steroid_refractory_agvhd", {}),
                 ("steroid_refractory_cgvhd", {}), ("transplant_related_death", {}))
PRIMARY_COLUMNS = ["patient_id", "treated", "origin_day", "horizon_day", "end_day", "met",
                   "criterion", "day", "day_from_origin", "all_criteria",
                   "followed_to_horizon", "note"]
_RELATED = {"possible", "probable", "definite", "related"}
_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True)
class Protocol:
    """A study's protocol settings for its endpoints (see docs/pipelines.md).

    ``drug`` and ``dose_levels`` (any order; the smallest is the lowest level),
    ``ctcae_version`` for grading laboratory values, ``origin``
    ("treatment_start": each patient's first dose of ``drug``; "transplant")
    and ``horizon_days`` for the primary endpoint and the outcome table,
    ``population`` ("treated": patients who took the drug; "all"), the
    primary ``criteria`` as (name, options) pairs in the order they are listed,
    ``merge_window_days`` for merging laboratory and reported adverse events,
    and ``stopping``: the safety monitoring rule (``p0``, ``threshold``,
    ``prior`` (a, b), ``max_patients``, ``min_patients``) or None.
    """

    drug: str = "lenalidomide"
    dose_levels: tuple[float, ...] = ()
    dose_unit: str = "mg"
    ctcae_version: str = "3.0"
    origin: str = "treatment_start"
    horizon_days: float = 365.0
    population: str = "treated"
    criteria: tuple = DEMO_CRITERIA
    merge_window_days: float = 0.0
    stopping: dict | None = field(default=None)

    def __post_init__(self):
        if self.origin not in ("treatment_start", "transplant"):
            raise ClinicalDataError(f"protocol origin must be treatment_start or transplant, "
                                    f"not {self.origin!r}")
        if self.population not in ("treated", "all"):
            raise ClinicalDataError(f"protocol population must be treated or all, not "
                                    f"{self.population!r}")
        if not self.horizon_days > 0:
            raise ClinicalDataError(f"protocol horizon_days must be positive, not "
                                    f"{self.horizon_days!r}")
        for name, options in self.criteria:
            if name not in CRITERIA:
                raise ClinicalDataError(f"unknown primary-endpoint criterion {name!r}; known: "
                                        f"{', '.join(CRITERIA)}")
            unknown = set(options) - set(CRITERIA[name][1])
            if unknown:
                raise ClinicalDataError(f"criterion {name}: unknown option(s) "
                                        f"{', '.join(sorted(unknown))}; known: "
                                        f"{', '.join(CRITERIA[name][1]) or 'none'}")
            if name == "ae_at_lowest_dose" and not self.dose_levels:
                raise ClinicalDataError("criterion ae_at_lowest_dose needs the protocol's "
                                        "dose_levels (e.g. [10, 5, 2.5])")

    @property
    def lowest_dose(self) -> float | None:
        return min(self.dose_levels) if self.dose_levels else None

    def options(self, name: str, given: dict) -> dict:
        return {**CRITERIA[name][1], **given}

    def describe(self, name: str, given: dict) -> str:
        o = self.options(name, given)
        grades = "-".join(str(g) for g in (min(o["grades"]), max(o["grades"]))) \
            if "grades" in o and len(set(o["grades"])) > 1 else \
            str(o["grades"][0]) if "grades" in o else ""
        text = CRITERIA[name][0].format(grades=grades, drug=self.drug,
                                        min_grade=_ROMAN.get(o.get("min_grade"), ""))
        if o.get("related_only"):
            text += f" related to {self.drug}"
        if name == "ae_at_lowest_dose":
            text += f" ({self.lowest_dose:g} {self.dose_unit} of {self.drug})"
        return text

    def as_dict(self) -> dict:
        d = asdict(self)
        d["criteria"] = [[n, dict(o)] for n, o in self.criteria]
        return d

    @classmethod
    def from_settings(cls, settings: dict) -> "Protocol":
        """A Protocol from the ``protocol`` mapping of a pipeline file.

        ``criteria`` is a list whose items are a criterion name or a one-key
        mapping ``{name: {option: value}}``; ``dose_levels`` a list of numbers;
        ``stopping`` a mapping with ``p0``, ``threshold``, ``prior`` [a, b],
        ``max_patients``, ``min_patients`` and ``rates`` (for the operating
        characteristics).
        """
        kw = dict(settings)
        if "dose_levels" in kw:
            kw["dose_levels"] = tuple(float(x) for x in kw["dose_levels"])
        if "ctcae_version" in kw:
            from .ctcae import normalize_version
            kw["ctcae_version"] = normalize_version(kw["ctcae_version"])
        for key in ("horizon_days", "merge_window_days"):
            if key in kw:
                kw[key] = float(kw[key])
        if "criteria" in kw:
            items = []
            for item in kw["criteria"]:
                if isinstance(item, str):
                    items.append((item, {}))
                elif isinstance(item, dict) and len(item) == 1:
                    name, options = next(iter(item.items()))
                    options = dict(options or {})
                    if "grades" in options:
                        options["grades"] = tuple(int(g) for g in options["grades"])
                    items.append((str(name), options))
                else:
                    raise ClinicalDataError(f"a criterion is a name or a one-key mapping "
                                            f"{{name: {{options}}}}, not {item!r}")
            kw["criteria"] = tuple(items)
        if kw.get("stopping") is not None:
            kw["stopping"] = dict(kw["stopping"])
        return cls(**kw)


def _first_doses(data, drug: str) -> pd.Series:
    from .exposure import drug_periods

    tr = drug_periods(data, drug)
    if tr.empty:
        return pd.Series(dtype=float)
    on = tr[tr["status"] == "on"]
    return on.groupby("patient_id")["start_day"].min().astype(float)


def _ae_hits(ae: pd.DataFrame, options: dict) -> pd.DataFrame:
    """Events reaching the criterion grades: patient_id, day (first day at the lowest of
    them), term."""
    grades = sorted(int(g) for g in options["grades"])
    lo, hi = grades[0], grades[-1]
    col = f"grade_{lo}_day"
    hit = ae[ae[col].notna() & (ae["grade"] >= lo)]
    if hi < 5:
        # an event first seen above the range (grade 5 at onset) is not "grade 3-4"
        hit = hit[~(hit[f"grade_{hi + 1}_day"] <= hit[col])]
    if options.get("related_only"):
        hit = hit[hit["relation"].isin(_RELATED)]
    return pd.DataFrame({"patient_id": hit["patient_id"], "day": hit[col].astype(float),
                         "term": hit["term"], "grade": hit["grade"]})


def primary_endpoint(data, protocol: Protocol, *, adverse_events: pd.DataFrame | None = None,
                     endpoints: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per patient of the protocol's population: met or not, which criterion, which day.

    Columns :data:`PRIMARY_COLUMNS`: ``origin_day`` and ``horizon_day`` (days
    from transplant; an event counts on days origin..horizon inclusive),
    ``end_day`` (end of follow-up), ``met``, ``criterion`` and ``day`` (the
    first criterion met, by day; on a tie the one listed first),
    ``day_from_origin``, ``all_criteria`` (every criterion met within the
    horizon with its day, e.g. "ae_at_lowest_dose day 212; transplant_related_
    death day 240"), ``followed_to_horizon`` (met, died, or followed to the
    horizon; a patient alive but followed for less counts as not met, and the
    note says so; a death that is not a criterion is noted with its cause).

    ``adverse_events``: the graded events (default: reported and laboratory
    events merged with the protocol's CTCAE version, baselines at the first
    dose); ``endpoints``: :func:`~immunomon.clinical.endpoints` (default: computed).
    """
    from .exposure import dose_days
    from .labs import lab_adverse_events, merge_adverse_events

    first_dose = _first_doses(data, protocol.drug)
    ep = endpoints if endpoints is not None else data.endpoints()
    ep = ep.set_index("patient_id")
    if adverse_events is None:
        lab = lab_adverse_events(data, protocol.ctcae_version, start_day=first_dose)
        adverse_events = merge_adverse_events(data.adverse_events, lab, protocol.ctcae_version,
                                              window_days=protocol.merge_window_days)
    ids = list(data.patients["patient_id"])
    treated = {p: p in first_dose.index for p in ids}
    if protocol.population == "treated":
        ids = [p for p in ids if treated[p]]
    if protocol.origin == "treatment_start":
        origin = {p: first_dose.get(p, np.nan) for p in ids}
    else:
        origin = dict.fromkeys(ids, 0.0)

    hits: dict[str, list[tuple[float, int, str, str]]] = {p: [] for p in ids}
    days = None
    for order, (name, given) in enumerate(protocol.criteria):
        o = protocol.options(name, given)
        found: list[tuple[str, float, str]] = []
        if name in ("ae", "ae_at_lowest_dose"):
            h = _ae_hits(adverse_events, o)
            if name == "ae_at_lowest_dose":
                if days is None:
                    days = dose_days(data, protocol.drug, protocol.dose_levels)
                h = _at_lowest(h, days, int(o["after_stop_days"]))
            found = [(p, d, f"{t} grade {g}") for p, d, t, g in
                     zip(h["patient_id"], h["day"], h["term"], h["grade"])]
        elif name in ("steroid_refractory_agvhd", "steroid_refractory_cgvhd"):
            kind = name.split("_")[-1]
            col = f"{kind}_steroid_refractory"
            sr = ep[ep[col].astype("boolean").fillna(False)]
            found = [(p, float(d), "") for p, d in sr[f"{col}_day"].items()]
        elif name == "agvhd":
            ag = data.agvhd
            g = ag[ag["grade_magic"] >= int(o["min_grade"])]
            found = [(p, float(d), f"grade {_ROMAN[int(gr)]}") for p, d, gr in
                     zip(g["patient_id"], g["day"], g["grade_magic"])]
        elif name in ("transplant_related_death", "death"):
            dd = data.deaths
            if name == "transplant_related_death":
                dd = dd[dd["cause"] == "nrm"]
            found = [(p, float(d), str(det) if isinstance(det, str) else "")
                     for p, d, det in zip(dd["patient_id"], dd["day"], dd["detail"])]
        elif name == "stopped_for_toxicity":
            from .exposure import exposure_summary
            s = exposure_summary(data, protocol.drug, protocol.dose_levels or
                                 _all_doses(data, protocol.drug))
            s = s[s["stop_reason"] == "toxicity"]
            found = [(p, float(d), "") for p, d in zip(s["patient_id"], s["stop_day"])]
        for p, d, what in found:
            if p in hits:
                hits[p].append((d, order, name, what))

    rows = []
    for p in ids:
        o_day = origin[p]
        end = float(ep.at[p, "end_day"])
        h_day = o_day + float(protocol.horizon_days) if not np.isnan(o_day) else np.nan
        inside = sorted((d, k, n, w) for d, k, n, w in hits[p]
                        if not np.isnan(o_day) and o_day <= d <= h_day)
        # one entry per criterion: its first day
        seen, listed = set(), []
        for d, _, n, w in inside:
            if n not in seen:
                seen.add(n)
                listed.append(f"{n} day {d:g}" + (f" ({w})" if w else ""))
        met = bool(inside)
        died = not np.isnan(float(ep.at[p, "death_day"]))
        note = ""
        if np.isnan(o_day):
            note = f"never took {protocol.drug}"
        elif not met and end < h_day and died:
            cause = ep.at[p, "death_cause"]
            note = f"died on day {end:g} ({'relapse/progression' if cause == 'relapse' else cause})"
        elif not met and end < h_day:
            note = f"followed to day {end:g} only (horizon day {h_day:g}); counted as not met"
        rows.append({
            "patient_id": p, "treated": treated[p], "origin_day": o_day, "horizon_day": h_day,
            "end_day": end, "met": met, "criterion": inside[0][2] if met else None,
            "day": inside[0][0] if met else np.nan,
            "day_from_origin": inside[0][0] - o_day if met else np.nan,
            "all_criteria": "; ".join(listed),
            "followed_to_horizon": met or end >= h_day or died,
            "note": note})
    return pd.DataFrame(rows, columns=PRIMARY_COLUMNS)


def _all_doses(data, drug) -> list[float]:
    tr = data.treatments
    on = tr[(tr["drug"].str.strip().str.lower() == drug.lower()) & (tr["status"] == "on")]
    return sorted(set(on["dose"].dropna().astype(float))) or [1.0]


def _at_lowest(hits: pd.DataFrame, days: pd.DataFrame, after_stop: int) -> pd.DataFrame:
    """Keep events whose qualifying day falls on a day assigned the lowest level
    (holds included), or within ``after_stop`` days after a definitive stop there."""
    if hits.empty or days.empty:
        return hits.iloc[0:0]
    low = days[days["lowest"]]
    keys = set(zip(low["patient_id"], low["day"].astype(int)))
    if after_stop > 0:
        last = days.groupby("patient_id").tail(1)
        for p, d, lowest in zip(last["patient_id"], last["day"].astype(int), last["lowest"]):
            if lowest:
                keys.update((p, d + k) for k in range(1, after_stop + 1))
    keep = [(p, int(d)) in keys for p, d in zip(hits["patient_id"], hits["day"])]
    return hits[np.asarray(keep, dtype=bool)]
