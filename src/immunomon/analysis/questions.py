"""The pre-declared graft-versus-myeloma questions, answered from plain tables.

Each function takes long tables (the cohort's, or a simulated trial's true
values) and returns rows of one answer table with the columns in
:data:`COLUMNS`: the question, its method, the effect size with its interval,
the p-value and whether the question is primary or exploratory. The list of
questions and their settings (:class:`Plan`) is fixed before any data are
seen; nothing here chooses a test, a visit or a cut-off from the outcomes.

Inputs:

- ``immune``: patient_id, visit, day, population, cells_per_ul (one row per
  measured sample and population);
- ``chimerism``: patient_id, visit, day, lineage, percent_donor;
- ``endpoints``: one row per patient, the columns of
  ``immunomon.clinical.endpoints`` (``relapse_days``/``relapse_event`` 0/1/2,
  ``pfs_*``, ``os_*``, ``trm_*``, ``agvhd_2_4_*``, ``agvhd_steroid_refractory``);
- ``adverse_events``: patient_id, term, grade (CTCAE), action.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..qc import NEAR_CUT

__all__ = ["Plan", "COLUMNS", "answer_all", "gating_verdicts", "apply_gating_qc", "immune_change", "gvhd_outcomes",
           "timevarying_markers", "immune_correlations", "competing_risks", "safety",
           "hodges_lehmann", "visit_order", "primary_tests"]

POPULATIONS = ("Treg", "NK cells", "Activated T", "Dendritic cells")

COLUMNS = ["question", "number", "family", "label", "text", "outcome", "exposure", "method",
           "effect_measure", "estimator", "estimate", "lower", "upper", "estimate_ml",
           "p_value", "p_method", "q_value", "p_score", "p_firth", "n", "events", "separated",
           "gating_qc", "note"]


@dataclass(frozen=True)
class Plan:
    """The declared analysis plan: which visit is the baseline, which visit
    answers the primary immune question, the landmark day for the sensitivity
    and by-GVHD analyses, the day at which incidences are reported."""
    baseline_visit: str = "pre"
    primary_visit: str = "M3"
    landmark_day: float = 180.0
    horizon_day: float = 365.0
    populations: tuple[str, ...] = POPULATIONS
    shares: tuple[tuple[str, str], ...] = (("Treg", "CD4 T"), ("Activated T", "T cells"))
    # Primary immune tests. A single-arm trial cannot tell a drug effect on a
    # count from recovery after transplant, so Treg and activated T cells are
    # tested as shares of their parent; NK counts, which have recovered by the
    # first on-drug visits, as counts. Dendritic-cell change stays exploratory.
    primary_counts: tuple[str, ...] = ("NK cells",)
    primary_shares: tuple[tuple[str, str], ...] = (("Treg", "CD4 T"), ("Activated T", "T cells"))
    conf_level: float = 0.95
    # Counting limit: a population counted with fewer events in a sample has a
    # Poisson CV above 14% there. Questions on a population below the limit in
    # more than half its samples are not estimable; in fewer, they carry a caveat.
    min_events: int = 50
    # A flow sample whose gating failed QC (a gate emptied a population that holds most
    # of its parent, a panel the template hardly fits) counts wrong numbers: its
    # populations are left out of the immune questions, and the report names it.
    exclude_qc_failures: bool = True
    n_permutations: int = 9999
    seed: int = 0

    def __post_init__(self):
        for name in ("landmark_day", "horizon_day"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value > 0):
                raise AnalysisError(f"{name} must be a positive number of days, not {value!r}")
        if not isinstance(self.exclude_qc_failures, bool):
            raise AnalysisError(f"exclude_qc_failures must be true or false, not "
                                f"{self.exclude_qc_failures!r}")
        if not 0 < self.conf_level < 1:
            raise AnalysisError(f"conf_level must lie between 0 and 1, not {self.conf_level!r}")
        for name in ("min_events", "n_permutations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, np.integer))
                                               and value >= 1):
                raise AnalysisError(f"{name} must be an integer of at least 1, not {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def _row(**values) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update({"note": "", "separated": False, "p_method": "", "text": "", "gating_qc": ""})
    row.update(values)
    return row


def _error_row(exc: Exception, **values) -> dict:
    return _row(**values, note=f"not estimable: {exc}")


# ---------------------------------------------------------------------------
# small exact pieces


def _signed_rank_counts(n: int) -> np.ndarray:
    """Number of sign patterns giving each value of V = sum of positive ranks (0..n(n+1)/2)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for k in range(1, n + 1):
        shifted = np.zeros_like(counts)
        shifted[k:] = counts[:-k]
        counts = counts + shifted
    return counts


def hodges_lehmann(diff, conf_level: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann (pseudo)median of paired differences and the exact interval
    that inverts the Wilcoxon signed-rank test (Walsh averages; as R's
    ``wilcox.test(conf.int=TRUE)`` in the exact case)."""
    d = np.asarray(diff, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return np.nan, np.nan, np.nan
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    estimate = float(np.median(walsh))
    cdf = np.cumsum(_signed_rank_counts(n)) / 2.0 ** n
    qu = int(np.searchsorted(cdf, (1 - conf_level) / 2 * (1 - 1e-12)))  # qsignrank
    qu = max(qu, 1)
    ql = n * (n + 1) // 2 - qu
    return estimate, float(walsh[qu - 1]), float(walsh[ql])


def visit_order(table: pd.DataFrame, baseline: str) -> list[str]:
    """Visits ordered by their median day, the baseline first."""
    med = table.groupby("visit", sort=False)["day"].median()
    order = [v for v in med.sort_values(kind="stable").index if v != baseline]
    return [baseline, *order] if baseline in set(table["visit"]) else order


def _log10(values, floor: float | None = None) -> tuple[np.ndarray, float]:
    from .trajectories import log_counts
    return log_counts(values, floor)


# ---------------------------------------------------------------------------
# 1. immune change from the pre-lenalidomide sample


def immune_change(immune: pd.DataFrame, plan: Plan, *, mixed: bool = True) -> list[dict]:
    """Question 1: change of each population from the baseline visit to each visit.

    Exact Wilcoxon signed-rank on log10 values with the Hodges-Lehmann fold
    change and its exact interval, for counts and for the declared shares
    (``plan.shares``, e.g. Treg as % of CD4 T cells), plus a random-intercept
    mixed model with categorical visits (exploratory). The primary tests, at
    ``plan.primary_visit``, are the counts in ``plan.primary_counts`` and the
    shares in ``plan.primary_shares``: in a single-arm trial a count's change
    from baseline mixes any drug effect with recovery after transplant, which
    a share of the parent population largely cancels.
    """
    from .trajectories import trajectories

    rows: list[dict] = []
    order = visit_order(immune, plan.baseline_visit)
    for pop in plan.populations:
        sub = immune[immune["population"] == pop].dropna(subset=["cells_per_ul"])
        base = dict(number=1, outcome=f"{pop} (cells/uL, log10)", exposure="lenalidomide",
                    _populations=(pop,))
        if sub.empty or plan.baseline_visit not in set(sub["visit"]):
            rows.append(_row(**base, question=f"1.{pop}", family="1 change",
                             label="primary" if pop in plan.primary_counts else "exploratory",
                             text=f"Change of {pop} from baseline",
                             method="exact Wilcoxon signed-rank",
                             note=f"not estimable: no cells/uL of {pop} at visit "
                                  f"{plan.baseline_visit!r}{_NO_ABSOLUTE}"))
            continue
        frame, found = _wilcoxon_rows(sub, pop, "cells/uL", plan, order,
                                      primary=pop in plan.primary_counts,
                                      family="1 Wilcoxon by visit")
        rows += [_row(**base, **r) for r in found]
        if not mixed:
            continue
        try:
            fit = trajectories(frame, "y", patient="patient", visit="visit", log=False,
                               conf_level=plan.conf_level)
        except (AnalysisError, ValueError, np.linalg.LinAlgError) as exc:
            rows.append(_error_row(exc, **base, question=f"1.{pop}.mixed",
                                   family="1 mixed model", label="exploratory",
                                   text=f"Trajectory of {pop}", method="linear mixed model"))
            continue
        for f in fit.fixed.itertuples():
            if not f.term.startswith("C(visit)[T."):
                continue
            visit = order[int(float(f.term[len("C(visit)[T."):-1]))]
            rows.append(_row(
                **base, question=f"1.{pop}.{visit}.mixed", family="1 mixed model",
                label="exploratory",
                text=f"Mean change of {pop} from {plan.baseline_visit} to {visit}",
                method="linear mixed model, random intercept per patient (REML), "
                       "categorical visits",
                effect_measure=f"geometric mean ratio {plan.baseline_visit} to {visit}",
                estimate=10 ** f.estimate, lower=10 ** f.lower, upper=10 ** f.upper,
                p_value=f.p_value,
                p_method=f"Wald z (optimistic with {fit.n_patients} patients)",
                n=fit.n_patients))
    # every declared share is asked, a primary one even where ``shares`` leaves it out
    for num, den in dict.fromkeys((*plan.shares, *plan.primary_shares)):
        share = _share_table(immune, num, den)
        name = f"{num} % of {den}"
        if share.empty or plan.baseline_visit not in set(share["visit"]):
            if (num, den) in plan.primary_shares:   # a declared question is always answered
                rows.append(_row(number=1, outcome=f"{name} (log10)", exposure="lenalidomide",
                                 _populations=(num, den),
                                 question=f"1.{name}.{plan.primary_visit}", family="1 primary",
                                 label="primary", text=f"Change of {name}",
                                 method="exact Wilcoxon signed-rank",
                                 note=f"not estimable: no cells/uL of {num} and {den} at "
                                      f"visit {plan.baseline_visit!r}{_NO_ABSOLUTE}"))
            continue
        _, found = _wilcoxon_rows(share, name, "%", plan, order,
                                  primary=(num, den) in plan.primary_shares, family="1 shares")
        rows += [_row(number=1, outcome=f"{name} (log10)", exposure="lenalidomide",
                      _populations=(num, den), **r) for r in found]
    return rows


#: why a cohort may hold event counts and percentages but no cells/uL
_NO_ABSOLUTE = (" (cells/uL need counting beads in the tube or a reference lymphocyte or "
                "leukocyte count per sample: docs/templates.md, per-sample inputs)")


def _floored(zeros: int, floor: float, unit: str, n: int) -> str:
    """A change row's note: how many zeros were raised to the floor before the logs, where
    there were any (every NK row said 'zeros floored' with none), and what ``n`` pairs
    cannot show (``_few_pairs``)."""
    few = _few_pairs(n)
    if not zeros:
        return few.removeprefix("; ")
    return f"{zeros} zero{'s' if zeros != 1 else ''} floored at {floor:.3g} {unit}{few}"


def _few_pairs(n: int, alpha: float = 0.05) -> str:
    """What a note says where the exact signed-rank test of ``n`` pairs cannot reach
    ``alpha`` at all: its smallest two-sided p-value is 2 / 2^n (0.125 for 4 patients)."""
    smallest = 2.0 / 2 ** n if n > 0 else 1.0
    if smallest <= alpha:
        return ""
    return (f"; with {n} patients the exact test's smallest two-sided p-value is "
            f"{min(smallest, 1.0):.3g}, so it cannot find a change at {alpha:g}")


def _share_table(immune: pd.DataFrame, num: str, den: str) -> pd.DataFrame:
    """``num`` as a percentage of ``den`` per sample, in the cells_per_ul column."""
    keys = ["patient_id", "visit", "day"]
    a = immune[immune["population"] == num].set_index(keys)["cells_per_ul"]
    b = immune[immune["population"] == den].set_index(keys)["cells_per_ul"]
    ratio = (100 * a / b.where(b > 0)).dropna()
    return ratio.rename("cells_per_ul").reset_index()


def _wilcoxon_rows(sub: pd.DataFrame, name: str, unit: str, plan: Plan, order: list[str],
                   *, primary: bool, family: str) -> tuple[pd.DataFrame, list[dict]]:
    """Exact Wilcoxon signed-rank change from baseline at each visit, with the
    Hodges-Lehmann fold change; returns the (patient, visit index, log10) frame
    and the rows."""
    from .trajectories import change_from_baseline

    index = {v: k for k, v in enumerate(order)}
    logs, floor = _log10(sub["cells_per_ul"].to_numpy())
    zeros = int(np.count_nonzero(sub["cells_per_ul"].to_numpy() == 0))
    frame = pd.DataFrame({"patient": sub["patient_id"].to_numpy(),
                          "visit": sub["visit"].map(index).to_numpy(), "y": logs})
    frame = frame.groupby(["patient", "visit"], as_index=False)["y"].mean()
    wide = frame.pivot(index="patient", columns="visit", values="y")
    tests = change_from_baseline(frame, "y", patient="patient", visit="visit",
                                 baseline=0, log=False)
    rows = []
    for t in tests.itertuples():
        visit = order[int(t.visit)]
        is_primary = primary and visit == plan.primary_visit
        pair = wide[[0, t.visit]].dropna()
        est, lo, hi = hodges_lehmann(pair[t.visit] - pair[0], plan.conf_level)
        rows.append(dict(
            question=f"1.{name}.{visit}",
            family="1 primary" if is_primary else family,
            label="primary" if is_primary else "exploratory",
            text=f"Change of {name} from {plan.baseline_visit} to {visit}",
            method="exact Wilcoxon signed-rank on log10 values; Hodges-Lehmann "
                   "estimate with exact interval",
            effect_measure=f"fold change {plan.baseline_visit} to {visit}",
            estimate=10 ** est, lower=10 ** lo, upper=10 ** hi, p_value=t.p_value,
            p_method=f"Wilcoxon signed-rank ({t.method})", n=int(t.n),
            note=_floored(zeros, floor, unit, int(t.n))))
    if primary and not any(r["label"] == "primary" for r in rows):
        # a declared primary question is always answered, if only to say it cannot be
        visit = plan.primary_visit
        rows.append(dict(
            question=f"1.{name}.{visit}", family="1 primary", label="primary",
            text=f"Change of {name} from {plan.baseline_visit} to {visit}",
            method="exact Wilcoxon signed-rank on log10 values",
            effect_measure=f"fold change {plan.baseline_visit} to {visit}", n=0,
            note=f"not estimable: no patient has {name} at both {plan.baseline_visit!r} "
                 f"and {visit!r}"))
    return frame, rows


# ---------------------------------------------------------------------------
# 2. acute GVHD (time-varying) and relapse, PFS, OS


OUTCOMES = (("relapse", "relapse_days", "relapse_event", "relapse/progression "
             "(non-relapse deaths censored: cause-specific)"),
            ("pfs", "pfs_days", "pfs_event", "progression-free survival"),
            ("os", "os_days", "os_event", "overall survival"))


def gvhd_onset(endpoints: pd.DataFrame) -> pd.Series:
    """Day of acute GVHD grade II-IV onset per patient (NaN: never)."""
    ep = endpoints
    return ep["agvhd_2_4_days"].where(ep["agvhd_2_4_event"] == 1).astype(float)


def _outcome_table(endpoints, days, event) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": endpoints["patient_id"].to_numpy(),
                         "time": endpoints[days].to_numpy(dtype=float),
                         "event": (endpoints[event].to_numpy() == 1).astype(int),
                         "onset": gvhd_onset(endpoints).to_numpy()})


def _cox_row(fit, covariate: str, **values) -> dict:
    """One answer row from a Cox fit. Where the model is separated or one event
    from it, the estimate is Firth's (finite, with its profile penalised-likelihood
    interval); the unpenalised estimate stays in ``estimate_ml`` and the
    likelihood-ratio test of the unpenalised fit stays the p-value."""
    c = fit.coefficients.set_index("covariate").loc[covariate]
    use_firth = fit.firth is not None and (fit.monotone_likelihood or fit.nearly_separated)
    if use_firth:
        estimate = dict(estimator="Firth", estimate=float(c["hr_firth"]),
                        lower=float(c["hr_firth_lower"]), upper=float(c["hr_firth_upper"]))
    else:
        estimate = dict(estimator="ML", estimate=float(c["hr"]), lower=float(c["hr_lower"]),
                        upper=float(c["hr_upper"]))
    notes = list(fit.notes)
    if use_firth:       # the interval and the p-value come from two likelihoods
        notes.append(f"the interval is Firth's (penalised likelihood), the p-value the "
                     f"unpenalised likelihood-ratio test, so they can disagree; Firth's "
                     f"penalised test gives p = {float(c['p_firth']):.3g}")
    fitted = dict(effect_measure="hazard ratio", **estimate, estimate_ml=float(c["hr"]),
                  p_value=fit.likelihood_ratio.p_value, p_method="likelihood ratio",
                  p_score=fit.score.p_value, p_firth=float(c["p_firth"]),
                  n=fit.n_patients, events=fit.n_events,
                  separated=bool(fit.monotone_likelihood), note="; ".join(notes))
    return _row(**{**fitted, **values})


def gvhd_cox(endpoints: pd.DataFrame, days: str, event: str):
    """Cox model of an outcome on acute GVHD II-IV as a time-varying covariate."""
    from .timevarying import counting_process, cox_time_varying

    table = _outcome_table(endpoints, days, event)
    rows = counting_process(table, id="patient_id", time="time", event="event",
                            onsets={"agvhd": "onset"})
    return cox_time_varying(rows, "agvhd", id="patient_id")


def gvhd_outcomes(endpoints: pd.DataFrame, plan: Plan, *,
                  primary_only: bool = False) -> list[dict]:
    """Question 2: acute GVHD II-IV (switched on at onset) and relapse, PFS, OS;
    the landmark analysis at ``plan.landmark_day`` as sensitivity."""
    from .timevarying import landmark

    rows = []
    for name, days, event, words in OUTCOMES:
        primary = name == "relapse"
        if primary_only and not primary:
            continue
        base = dict(number=2, outcome=words, exposure="acute GVHD II-IV (time-varying)")
        try:
            fit = gvhd_cox(endpoints, days, event)
            rows.append(_cox_row(
                fit, "agvhd", **base, question=f"2.{name}",
                family="2 primary" if primary else "2 time-varying",
                label="primary" if primary else "exploratory",
                text=f"Acute GVHD II-IV and {words}",
                method="Cox model, GVHD switched on at onset (counting process), "
                       "separation checked"))
        except (AnalysisError, np.linalg.LinAlgError) as exc:
            rows.append(_error_row(exc, **base, question=f"2.{name}",
                                   family="2 primary" if primary else "2 time-varying",
                                   label="primary" if primary else "exploratory",
                                   text=f"Acute GVHD II-IV and {words}",
                                   method="Cox model (counting process)"))
        if primary_only:
            continue
        table = _outcome_table(endpoints, days, event)
        lm_base = dict(number=2, outcome=words,
                       exposure=f"acute GVHD II-IV by day {plan.landmark_day:g}",
                       question=f"2.{name}.landmark", family="2 landmark",
                       label="exploratory",
                       text=f"Acute GVHD II-IV by day {plan.landmark_day:g} and {words} "
                            "after it (sensitivity)",
                       method=f"landmark Cox model at day {plan.landmark_day:g}")
        try:
            lm = landmark(table, plan.landmark_day, id="patient_id", onsets=["onset"])
            row = _cox_row(lm.cox, "onset", **lm_base)
            row["note"] = "; ".join(filter(None, [
                f"{lm.n_excluded} patients excluded (event or censored by the landmark)",
                row["note"]]))
            rows.append(row)
        except (AnalysisError, np.linalg.LinAlgError) as exc:
            rows.append(_error_row(exc, **lm_base))
    return rows


# ---------------------------------------------------------------------------
# 3. immune counts and chimerism (time-varying) with relapse and with GVHD onset


def _measurement_tables(immune, chimerism, plan) -> dict[str, tuple[pd.DataFrame, str, str]]:
    """name -> (patient_id/time/value table, unit words, label)."""
    out = {}
    for pop in plan.populations:
        sub = immune[immune["population"] == pop].dropna(subset=["cells_per_ul", "day"])
        if sub.empty:
            continue
        logs, _ = _log10(sub["cells_per_ul"].to_numpy())
        out[pop] = (pd.DataFrame({"patient_id": sub["patient_id"].to_numpy(),
                                  "time": sub["day"].to_numpy(float), "value": logs}),
                    "hazard ratio per 10-fold higher count", f"{pop} (log10 cells/uL)")
    if chimerism is not None and len(chimerism):
        for lin in sorted(chimerism["lineage"].dropna().unique()):
            sub = chimerism[chimerism["lineage"] == lin].dropna(subset=["percent_donor",
                                                                        "day"])
            if sub.empty:
                continue
            out[f"chimerism {lin}"] = (
                pd.DataFrame({"patient_id": sub["patient_id"].to_numpy(),
                              "time": sub["day"].to_numpy(float),
                              "value": sub["percent_donor"].to_numpy(float) / 10}),
                "hazard ratio per 10% more donor", f"donor chimerism {lin} (%)")
    return out


def marker_cox(endpoints: pd.DataFrame, measurement: pd.DataFrame, days: str,
               event: str, *, exclude_prior_onset: bool = False):
    """Cox model of an outcome on the last measured value (carried forward).

    Patients enter the risk set at their first measurement (delayed entry);
    the value changes at the day of each new measurement, never before.
    """
    from .timevarying import counting_process, cox_time_varying

    table = _outcome_table(endpoints, days, event).drop(columns="onset")
    rows = counting_process(table, id="patient_id", time="time", event="event",
                            measurements={"x": measurement})
    rows = rows.dropna(subset=["x"])
    if rows.empty:
        raise AnalysisError("no follow-up after the first measurement")
    return cox_time_varying(rows, "x", id="patient_id")


def timevarying_markers(endpoints, immune, chimerism, plan: Plan) -> list[dict]:
    """Question 3: each immune count and chimerism lineage (last value carried
    forward, one covariate per model) with relapse and with acute GVHD onset."""
    rows = []
    targets = (("relapse", "relapse_days", "relapse_event", "relapse/progression"),
               ("agvhd", "agvhd_2_4_days", "agvhd_2_4_event", "acute GVHD II-IV onset"))
    for name, (table, measure, words) in _measurement_tables(immune, chimerism,
                                                              plan).items():
        for target, days, event, outcome in targets:
            base = dict(number=3, question=f"3.{name}.{target}", family=f"3 {target}",
                        _populations=(name,) if name in plan.populations else (),
                        label="exploratory", outcome=outcome, exposure=words,
                        text=f"{words} (time-varying) and {outcome}",
                        method="Cox model, last value carried forward, delayed entry at "
                               "first measurement, separation checked",
                        effect_measure=measure)
            try:
                fit = marker_cox(endpoints, table, days, event)
                rows.append(_cox_row(fit, "x", **base))
            except (AnalysisError, np.linalg.LinAlgError) as exc:
                rows.append(_error_row(exc, **base))
    return rows


def landmark_values(immune, chimerism, visit: str, plan: Plan) -> pd.DataFrame:
    """Per patient, log10 counts and % donor at one visit (wide)."""
    cols = {}
    sub = immune[(immune["visit"] == visit) & immune["population"].isin(plan.populations)]
    if len(sub):
        sub = sub.assign(v=_log10(sub["cells_per_ul"].to_numpy())[0])
        cols.update({f"{p} (log10)": s for p, s in
                     sub.pivot_table(index="patient_id", columns="population",
                                     values="v").items()})
    if chimerism is not None and len(chimerism):
        ch = chimerism[chimerism["visit"] == visit]
        cols.update({f"donor % {lin}": s for lin, s in
                     ch.pivot_table(index="patient_id", columns="lineage",
                                    values="percent_donor").items()})
    return pd.DataFrame(cols)


def immune_correlations(immune, chimerism, plan: Plan) -> tuple[list[dict], pd.DataFrame]:
    """Spearman correlations between immune counts and chimerism at the primary
    visit (permutation p, BH within the family); also returns the rho matrix."""
    from .correlations import spearman

    wide = landmark_values(immune, chimerism, plan.primary_visit, plan)
    names = [c for c in wide.columns if wide[c].notna().sum() >= 3 and wide[c].nunique() > 1]
    pops = {f"{p} (log10)": p for p in plan.populations}
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    rows = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            x, y = names[a], names[b]
            base = dict(number=3, question=f"3.corr.{x}~{y}", family="3 correlations",
                        _populations=tuple(pops[c] for c in (x, y) if c in pops),
                        label="exploratory", outcome=y, exposure=x,
                        text=f"Correlation of {x} and {y} at {plan.primary_visit}",
                        method="Spearman, permutation p-value",
                        effect_measure="Spearman rho")
            try:
                r = spearman(wide[x].to_numpy(), wide[y].to_numpy(),
                             n_permutations=plan.n_permutations, seed=20240607 + plan.seed)
            except (AnalysisError, np.linalg.LinAlgError) as exc:
                rows.append(_error_row(exc, **base))
                matrix.loc[x, y] = matrix.loc[y, x] = np.nan
                continue
            matrix.loc[x, y] = matrix.loc[y, x] = r.rho
            rows.append(_row(**base, estimate=r.rho, p_value=r.p_value,
                             p_method=r.method, n=r.n))
    return rows, matrix


# ---------------------------------------------------------------------------
# 4. cumulative incidence of relapse and NRM, overall and by GVHD


def landmark_competing(endpoints: pd.DataFrame, landmark_day: float) -> pd.DataFrame:
    """Patients still at risk at the landmark, time restarted there, GVHD by then."""
    ep = endpoints
    keep = ep["relapse_days"].to_numpy(float) > landmark_day
    onset = gvhd_onset(ep).to_numpy()
    return pd.DataFrame({
        "patient_id": ep["patient_id"].to_numpy()[keep],
        "time": ep["relapse_days"].to_numpy(float)[keep] - landmark_day,
        "status": ep["relapse_event"].to_numpy(int)[keep],
        "gvhd": np.where(onset[keep] <= landmark_day, "GVHD by landmark", "no GVHD")})


def competing_risks(endpoints: pd.DataFrame, plan: Plan) -> list[dict]:
    """Question 4: Aalen-Johansen incidence of relapse (1) and non-relapse
    mortality (2) at the horizon; by GVHD at the landmark with Gray's test and
    the Fine-Gray subdistribution hazard ratio."""
    from .competing import cumulative_incidence, fine_gray, grays_test

    rows = []
    names = {1: "relapse/progression", 2: "non-relapse mortality"}
    data = pd.DataFrame({"time": endpoints["relapse_days"].to_numpy(float),
                         "status": endpoints["relapse_event"].to_numpy(int)})
    h = plan.horizon_day
    try:
        ci = cumulative_incidence(data, "time", "status", causes=[1, 2], times=[h],
                                  conf_level=plan.conf_level)
        at = ci.at_times.set_index("cause")
    except AnalysisError:
        at = None
    for cause, words in names.items():
        base = dict(number=4, question=f"4.{'relapse' if cause == 1 else 'nrm'}",
                    family="4 incidence", label="exploratory", outcome=words,
                    exposure="none", text=f"Cumulative incidence of {words} at day {h:g}",
                    method="Aalen-Johansen, competing risks, log-log interval",
                    effect_measure=f"cumulative incidence at day {h:g}",
                    n=len(data), events=int((data["status"] == cause).sum()))
        if at is None or cause not in at.index:
            rows.append(_row(**base, estimate=0.0,
                             note="no events of this cause"))
            continue
        r = at.loc[cause]
        rows.append(_row(**base, estimate=r["incidence"], lower=r["lower"], upper=r["upper"]))
    lm = landmark_competing(endpoints, plan.landmark_day)
    for cause, words in names.items():
        base = dict(number=4, question=f"4.{'relapse' if cause == 1 else 'nrm'}.gvhd",
                    family="4 by GVHD", label="exploratory", outcome=words,
                    exposure=f"acute GVHD II-IV by day {plan.landmark_day:g}",
                    text=f"Incidence of {words} after day {plan.landmark_day:g} by acute "
                         "GVHD II-IV by then",
                    method=f"landmark at day {plan.landmark_day:g}: Gray's test; Fine-Gray "
                           "subdistribution hazard ratio",
                    effect_measure="subdistribution hazard ratio", n=len(lm),
                    events=int((lm["status"] == cause).sum()))
        try:
            if lm["gvhd"].nunique() < 2:
                raise AnalysisError("everyone is in one GVHD group at the landmark")
            gray = grays_test(lm, "time", "status", "gvhd", cause=cause)
            fg_data = lm.assign(x=(lm["gvhd"] != "no GVHD").astype(int))
            fg = fine_gray(fg_data, "time", "status", "x", cause=cause)
            row = _cox_row(fg, "x", **base)
            row.update(p_value=gray.p_value, p_method="Gray's test", p_score=np.nan)
            rows.append(row)
        except (AnalysisError, np.linalg.LinAlgError) as exc:
            rows.append(_error_row(exc, **base))
    return rows


# ---------------------------------------------------------------------------
# 5. safety


def _proportion_row(k: int, n: int, plan: Plan, **values) -> dict:
    from .correlations import clopper_pearson

    lo, hi = clopper_pearson(k, n, plan.conf_level) if n > 0 else (np.nan, np.nan)
    return _row(number=5, family="5 safety", exposure="treatment",
                method="proportion of patients, exact Clopper-Pearson interval",
                effect_measure="proportion of patients", estimate=k / n if n else np.nan,
                lower=lo, upper=hi, n=n, events=k, **values)


def safety(endpoints: pd.DataFrame, adverse_events: pd.DataFrame, plan: Plan) -> list[dict]:
    """Question 5: adverse events by worst CTCAE grade, grade 3-5, discontinuation
    for toxicity, steroid-refractory acute GVHD, transplant-related death."""
    n = len(endpoints)
    ae = adverse_events if adverse_events is not None else pd.DataFrame()
    if len(ae) and "grade" in ae:
        worst = ae.groupby("patient_id")["grade"].max()
    else:
        worst = pd.Series(dtype=float)
    rows = [_proportion_row(int((worst >= 3).sum()), n, plan, question="5.ae_grade_3_5",
                            label="primary", outcome="adverse event CTCAE grade 3-5",
                            text="Patients with an adverse event of grade 3 or worse")]
    for g in range(1, 6):
        rows.append(_proportion_row(int((worst == g).sum()), n, plan,
                                    question=f"5.ae_worst_grade_{g}", label="exploratory",
                                    outcome=f"worst adverse event grade {g}",
                                    text=f"Patients whose worst adverse event is grade {g}"))
    stopped = set()
    if len(ae) and "action" in ae:
        stopped = set(ae.loc[ae["action"].astype(str) == "withdrawn", "patient_id"])
    rows.append(_proportion_row(len(stopped), n, plan, question="5.discontinuation",
                                label="primary", outcome="drug withdrawn for an adverse event",
                                text="Patients who stopped treatment for an adverse event"))
    sr = endpoints.get("agvhd_steroid_refractory")
    k_sr = int((sr.astype("boolean").fillna(False)).sum()) if sr is not None else 0
    rows.append(_proportion_row(k_sr, n, plan, question="5.steroid_refractory_agvhd",
                                label="exploratory", outcome="steroid-refractory acute GVHD",
                                text="Patients with steroid-refractory acute GVHD"))
    for col, q, words in (("agvhd_2_4_event", "5.agvhd_2_4", "acute GVHD grade II-IV"),
                          ("agvhd_3_4_event", "5.agvhd_3_4", "acute GVHD grade III-IV")):
        if col in endpoints:
            rows.append(_proportion_row(int((endpoints[col] == 1).sum()), n, plan,
                                        question=q, label="exploratory", outcome=words,
                                        text=f"Patients with {words} (crude proportion)"))
    rows.append(_proportion_row(int((endpoints["trm_event"] == 1).sum()), n, plan,
                                question="5.trm", label="primary",
                                outcome="transplant-related death",
                                text="Patients who died of transplant-related causes"))
    return rows


# ---------------------------------------------------------------------------
# all together


def gating_verdicts(counts: pd.DataFrame | None, plan: Plan) -> pd.DataFrame:
    """Per population: samples, samples below ``plan.min_events``, samples with no
    event, the median count, the median share of its events near the cuts it was gated
    by, and the verdict for the questions about it ("not estimable", "caveat" or "ok").
    ``counts``: patient_id, visit, population, count (one row per gated sample and
    population), and where the gating gave it ``percent_near_cut``: a population whose
    samples have a median of ``qc.NEAR_CUT`` or more of their events within one density
    bandwidth of those cuts is a caveat (its counts turn on where the cuts lie)."""
    columns = ["population", "samples", "below_limit", "zero", "median_events",
               "median_near_cut", "verdict"]
    if counts is None or len(counts) == 0:
        return pd.DataFrame(columns=columns)
    c = counts.dropna(subset=["count"])
    if "percent_near_cut" not in c:
        c = c.assign(percent_near_cut=np.nan)
    out = c.groupby("population", sort=False).agg(
        samples=("count", "size"),
        below_limit=("count", lambda v: int((v < plan.min_events).sum())),
        zero=("count", lambda v: int((v == 0).sum())), median_events=("count", "median"),
        median_near_cut=("percent_near_cut", "median")).reset_index()
    turns = out["median_near_cut"].fillna(0) >= 100 * NEAR_CUT
    out["verdict"] = np.where(out["below_limit"] * 2 > out["samples"], "not estimable",
                              np.where((out["below_limit"] > 0) | turns, "caveat", "ok"))
    return out[columns]


def apply_gating_qc(rows: list[dict], verdicts: pd.DataFrame, plan: Plan) -> list[dict]:
    """Mark the answers about populations counted with too few events, or whose counts
    turn on where the cuts they were gated by lie.

    Not estimable (the population is below the counting limit in most samples):
    estimate, interval and p-values are withdrawn and the note says why. A
    caveat (below the limit in some samples, or a median share near the cut of
    ``qc.NEAR_CUT`` or more): the numbers stay, with the caveat in ``gating_qc``."""
    if verdicts is None or len(verdicts) == 0:
        return rows
    table = verdicts.set_index("population")
    for row in rows:
        worst, words = "ok", []
        for pop in row.get("_populations", ()):
            if pop not in table.index:
                continue
            v = table.loc[pop]
            if v["verdict"] == "ok":
                continue
            if v["below_limit"] > 0:
                words.append(f"{pop} counted with fewer than {plan.min_events} events in "
                             f"{int(v['below_limit'])} of {int(v['samples'])} samples "
                             f"(median {v['median_events']:g})")
            if v["median_near_cut"] >= 100 * NEAR_CUT:
                words.append(f"{pop}: a median {v['median_near_cut']:.0f}% of its events "
                             "lie within one density bandwidth of a cut it was gated by (its "
                             "counts turn on where the cut lies)")
            if v["verdict"] == "not estimable" or worst == "ok":
                worst = v["verdict"]
        if worst == "not estimable":
            for key in ("estimate", "lower", "upper", "estimate_ml", "p_value", "p_score",
                        "p_firth"):
                row[key] = np.nan
            row["gating_qc"] = "not estimable: " + "; ".join(words)
            row["note"] = "; ".join(filter(None, ["not estimable (gating QC)", row["note"]]))
        elif worst == "caveat":
            row["gating_qc"] = "gating caveat: " + "; ".join(words)
    return rows


def answer_all(*, immune: pd.DataFrame, chimerism: pd.DataFrame | None,
               endpoints: pd.DataFrame, adverse_events: pd.DataFrame | None,
               plan: Plan = Plan(), counts: pd.DataFrame | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every declared question; returns (answers with q-values, correlation matrix).

    ``counts`` (patient_id, visit, population, count: the events gated per
    sample) marks the answers on populations below the counting limit
    (:func:`apply_gating_qc`)."""
    from .correlations import benjamini_hochberg

    corr_rows, matrix = immune_correlations(immune, chimerism, plan)
    rows = [*immune_change(immune, plan), *gvhd_outcomes(endpoints, plan),
            *timevarying_markers(endpoints, immune, chimerism, plan), *corr_rows,
            *competing_risks(endpoints, plan), *safety(endpoints, adverse_events, plan)]
    verdicts = gating_verdicts(counts, plan)
    rows = apply_gating_qc(rows, verdicts, plan)
    # The heatmap shows no correlation the gating QC withdrew.
    withdrawn = {f"{p} (log10)" for p in verdicts.loc[verdicts["verdict"] == "not estimable",
                                                      "population"]}
    for name in withdrawn & set(matrix.index):
        keep = matrix.loc[name, name]
        matrix.loc[name, :] = np.nan
        matrix.loc[:, name] = np.nan
        matrix.loc[name, name] = keep
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy(float),
                                          table["family"].to_numpy())
    return table, matrix


def primary_tests(*, immune: pd.DataFrame, endpoints: pd.DataFrame,
                  plan: Plan = Plan()) -> dict[str, float]:
    """p-values of the primary tests only (question -> p), for calibration."""
    rows = [r for r in immune_change(immune, plan, mixed=False) if r["label"] == "primary"]
    rows += gvhd_outcomes(endpoints, plan, primary_only=True)
    return {r["question"]: float(r["p_value"]) for r in rows}
