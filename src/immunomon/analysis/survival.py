"""Kaplan-Meier estimates, the log-rank test and median follow-up.

Each function takes a plain DataFrame and column names, so the cohort (or an
analyst) can call it on any patient table. Times are days from transplant.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ._checks import check_conf_level, indicator, numeric, require_columns

__all__ = ["KaplanMeierResult", "LogrankResult", "FollowUpResult",
           "kaplan_meier", "logrank", "median_followup"]


@dataclass(frozen=True)
class KaplanMeierResult:
    """Kaplan-Meier curves, one per group (a single group is called ``"all"``).

    ``table``: one row per distinct time with an event or censoring: ``group``,
    ``time``, ``n_risk``, ``n_event``, ``n_censor``, ``survival``, ``std_err``
    (Greenwood, on the survival scale), ``lower``/``upper`` (log-log interval).
    ``at_times``: the same quantities at the requested days (NaN past the last
    observation). ``medians``: ``group``, ``n``, ``events``, ``median``,
    ``lower``, ``upper``.
    """
    table: pd.DataFrame
    at_times: pd.DataFrame
    medians: pd.DataFrame
    conf_level: float


def _km_curve(time: np.ndarray, event: np.ndarray, z: float) -> pd.DataFrame:
    """Product-limit estimate with Greenwood variance and the log-log interval."""
    # lifelines computes the same estimate; the Greenwood sum is kept here
    # because the log-log interval and the standard error are both built on it.
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(time, event)
    et = kmf.event_table
    et = et[(et["observed"] > 0) | (et["censored"] > 0)]
    t = et.index.to_numpy(dtype=float)
    n = et["at_risk"].to_numpy(dtype=float)
    d = et["observed"].to_numpy(dtype=float)
    surv = kmf.survival_function_.loc[t].to_numpy(dtype=float).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.cumsum(np.where(d > 0, d / (n * (n - d)), 0.0))
        se_log = np.sqrt(greenwood)  # standard error of log S
        loglog = np.log(-np.log(surv))
        half = z * se_log / np.log(surv)
        lower = np.exp(-np.exp(loglog - half))
        upper = np.exp(-np.exp(loglog + half))
    # S = 1 (no event yet): the interval is the point; S = 0: undefined (as R).
    lower = np.where(surv == 1, 1.0, lower)
    upper = np.where(surv == 1, 1.0, upper)
    lower = np.where(surv == 0, np.nan, lower)
    upper = np.where(surv == 0, np.nan, upper)
    return pd.DataFrame({
        "time": t, "n_risk": n.astype(int), "n_event": d.astype(int),
        "n_censor": et["censored"].to_numpy(dtype=int), "survival": surv,
        "std_err": surv * se_log, "lower": lower, "upper": upper,
    })


def _step_quantile(t: np.ndarray, s: np.ndarray, p: float = 0.5) -> float:
    """Smallest time at which the curve ``s`` falls to ``p`` or below.

    When the curve sits exactly at ``p`` over an interval the midpoint of that
    interval is returned, the convention of R's ``survfit`` (and of Brookmeyer
    and Crowley), which matters with a handful of patients.
    """
    ok = ~np.isnan(s)
    t, s = t[ok], s[ok]
    below = np.nonzero(s <= p + 1e-12)[0]
    if below.size == 0:
        return float("nan")
    i = below[0]
    if abs(s[i] - p) < 1e-12:
        later = np.nonzero(s < p - 1e-12)[0]
        if later.size == 0:
            return float("nan") if i == len(s) - 1 else float(t[i])
        return float((t[i] + t[later[0]]) / 2)
    return float(t[i])


def _at(curve: pd.DataFrame, times: np.ndarray) -> pd.DataFrame:
    """Curve values at given days (right-continuous step function)."""
    t = curve["time"].to_numpy()
    rows = []
    for day in times:
        idx = np.searchsorted(t, day, side="right") - 1
        n_risk = int(curve["n_risk"].to_numpy()[t >= day][0]) if (t >= day).any() else 0
        if day > t.max():
            rows.append((day, 0, np.nan, np.nan, np.nan, np.nan))
        elif idx < 0:
            rows.append((day, n_risk, 1.0, 0.0, 1.0, 1.0))
        else:
            r = curve.iloc[idx]
            rows.append((day, n_risk, r.survival, r.std_err, r.lower, r.upper))
    return pd.DataFrame(rows, columns=["time", "n_risk", "survival", "std_err",
                                       "lower", "upper"])


def _groups(data: pd.DataFrame, group: str | None):
    if group is None:
        yield "all", np.ones(len(data), dtype=bool)
        return
    if data[group].isna().any():
        raise AnalysisError(f"group column {group!r} has missing values; drop or fill them")
    for g in sorted(data[group].unique(), key=str):
        yield g, (data[group] == g).to_numpy()


def kaplan_meier(data: pd.DataFrame, time: str, event: str, *, group: str | None = None,
                 times: Sequence[float] = (), conf_level: float = 0.95) -> KaplanMeierResult:
    """Kaplan-Meier survival with log-log confidence intervals.

    The log-log ("exponential Greenwood") interval stays inside [0, 1] and has
    better coverage than the plain interval in small samples (Borgan and
    Liestol 1990); R's ``survfit(conf.type="log-log")`` gives the same numbers.
    """
    what = "kaplan_meier"
    require_columns(data, [time, event, group], what)
    conf_level = check_conf_level(conf_level)
    if len(data) == 0:
        raise AnalysisError(f"{what}: the table has no rows")
    t_all = numeric(data, time, what, nonnegative=True)
    e_all = indicator(data, event, what)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    tables, at_tables, medians = [], [], []
    wanted = np.asarray(times, dtype=float)
    for g, mask in _groups(data, group):
        curve = _km_curve(t_all[mask], e_all[mask], z)
        tt = curve["time"].to_numpy()
        medians.append({
            "group": g, "n": int(mask.sum()), "events": int(e_all[mask].sum()),
            "median": _step_quantile(tt, curve["survival"].to_numpy()),
            "lower": _step_quantile(tt, curve["lower"].to_numpy()),
            "upper": _step_quantile(tt, curve["upper"].to_numpy()),
        })
        curve.insert(0, "group", g)
        tables.append(curve)
        at = _at(curve, wanted)
        at.insert(0, "group", g)
        at_tables.append(at)
    return KaplanMeierResult(
        table=pd.concat(tables, ignore_index=True),
        at_times=pd.concat(at_tables, ignore_index=True),
        medians=pd.DataFrame(medians), conf_level=conf_level)


@dataclass(frozen=True)
class LogrankResult:
    """K-sample log-rank test: ``groups`` has ``group``, ``n``, ``observed``,
    ``expected``; ``statistic`` is chi-square on ``df`` degrees of freedom."""
    groups: pd.DataFrame
    statistic: float
    df: int
    p_value: float


def logrank(data: pd.DataFrame, time: str, event: str, group: str) -> LogrankResult:
    """Log-rank test across the levels of ``group`` (R's ``survdiff``, rho = 0)."""
    from lifelines.statistics import multivariate_logrank_test

    what = "logrank"
    require_columns(data, [time, event, group], what)
    t = numeric(data, time, what, nonnegative=True)
    e = indicator(data, event, what)
    if data[group].isna().any():
        raise AnalysisError(f"{what}: group column {group!r} has missing values")
    labels = data[group].to_numpy()
    levels = sorted(pd.unique(labels), key=str)
    if len(levels) < 2:
        raise AnalysisError(f"{what}: column {group!r} has a single group ({levels}); "
                            "the log-rank test compares two or more groups")
    if e.sum() == 0:
        raise AnalysisError(f"{what}: no events in column {event!r}; nothing to compare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = multivariate_logrank_test(t, labels, e)
    # Observed and expected events per group, as survdiff prints them.
    event_times = np.unique(t[e == 1])
    at_risk_all = (t[None, :] >= event_times[:, None])
    deaths_all = (t[None, :] == event_times[:, None]) & (e[None, :] == 1)
    n_t = at_risk_all.sum(1)
    d_t = deaths_all.sum(1)
    rows = []
    for g in levels:
        m = labels == g
        rows.append({"group": g, "n": int(m.sum()), "observed": int(e[m].sum()),
                     "expected": float((d_t * at_risk_all[:, m].sum(1) / n_t).sum())})
    return LogrankResult(pd.DataFrame(rows), float(res.test_statistic),
                         int(res.degrees_of_freedom), float(res.p_value))


@dataclass(frozen=True)
class FollowUpResult:
    """Median follow-up by reverse Kaplan-Meier, with its confidence interval."""
    median: float
    lower: float
    upper: float
    n: int


def median_followup(data: pd.DataFrame, time: str, event: str,
                    conf_level: float = 0.95) -> FollowUpResult:
    """Median potential follow-up by the reverse Kaplan-Meier method.

    Censoring is treated as the event and events as censoring (Schemper and
    Smith 1996), so a patient who died early does not shorten the follow-up
    the study would have had; the crude median of observed times does.
    """
    what = "median_followup"
    require_columns(data, [time, event], what)
    flipped = pd.DataFrame({"t": numeric(data, time, what, nonnegative=True),
                            "c": 1 - indicator(data, event, what)})
    if flipped["c"].sum() == 0:
        raise AnalysisError(f"{what}: every patient in {event!r} had the event, so no one "
                            "was censored and reverse Kaplan-Meier follow-up is undefined")
    km = kaplan_meier(flipped, "t", "c", conf_level=conf_level).medians.iloc[0]
    return FollowUpResult(float(km["median"]), float(km["lower"]), float(km["upper"]),
                          int(km["n"]))
