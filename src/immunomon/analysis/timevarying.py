"""Time-varying covariates: counting-process data, Cox models on it, landmarks.

GVHD, lenalidomide exposure and immune recovery all happen *after* day 0. A
patient must survive relapse-free until GVHD onset to be counted as "GVHD";
comparing ever-GVHD with never-GVHD patients credits that survival to GVHD
(immortal time bias). The remedy is to let the covariate switch on at onset,
i.e. split each patient's follow-up into (start, stop] rows, as R's
``survival::tmerge`` does, and fit the Cox model on those rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ._checks import as_list, check_conf_level, indicator, numeric, require_columns
from .firth import FirthFit, firth_cox
from .cox import efron_loglik, monotone_direction, nearly_separated, score_test

__all__ = ["counting_process", "cox_time_varying", "landmark", "CoxResult", "TestResult",
           "LandmarkResult"]


# ---------------------------------------------------------------------------
# counting_process


def _days(values: pd.Series, origin: pd.Series | None, what: str, column: str) -> np.ndarray:
    """Times as float days; dates are converted to days since the patient's origin."""
    if pd.api.types.is_datetime64_any_dtype(values):
        if origin is None:
            raise AnalysisError(
                f"{what}: column {column!r} holds dates; pass origin='<date column of the "
                "patients table>' (e.g. the transplant date) so they can become days")
        return ((values - origin).dt.total_seconds() / 86400.0).to_numpy(dtype=float)
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise AnalysisError(f"{what}: column {column!r} must hold days (numbers) or dates") \
            from None


def _long_table(table, id_col, needed, name, what):
    if not isinstance(table, pd.DataFrame):
        raise AnalysisError(f"{what}: {name!r} must be a DataFrame with columns {needed}")
    require_columns(table, [id_col, *needed], f"{what} ({name})")
    return table


def _step_value(change_times: np.ndarray, values: np.ndarray, at: np.ndarray,
                initial: float) -> np.ndarray:
    """Right-continuous step function: the last value whose time is <= ``at``."""
    if change_times.size == 0:
        return np.full(at.shape, initial, dtype=float)
    order = np.argsort(change_times, kind="stable")
    ct, cv = change_times[order], values[order]
    idx = np.searchsorted(ct, at, side="right") - 1
    out = np.where(idx >= 0, cv[np.clip(idx, 0, None)], initial)
    return out.astype(float)


def counting_process(patients: pd.DataFrame, *, id: str = "patient",
                     time: str = "time", event: str = "event", entry: str | None = None,
                     origin: str | None = None, baseline: Sequence[str] = (),
                     onsets: Mapping[str, str | pd.DataFrame] | None = None,
                     intervals: Mapping[str, pd.DataFrame] | None = None,
                     measurements: Mapping[str, pd.DataFrame] | None = None,
                     initial: float = np.nan) -> pd.DataFrame:
    """Split each patient's follow-up into (start, stop] rows with time-varying covariates.

    ``patients`` has one row per patient: ``id``, the end of follow-up ``time``,
    the ``event`` indicator at that time, optionally ``entry`` (delayed entry,
    default 0) and the ``baseline`` columns copied to every row.

    Time-varying covariates (the value switches at the given time and applies
    to the intervals that *start* then, so an event at the switch time still
    counts under the old value, exactly as ``tmerge``):

    - ``onsets``: name -> a column of ``patients`` with the onset day (NaN =
      never), or a DataFrame (``id``, ``time``); the covariate is 0 before the
      first onset and 1 from it on (GVHD from onset).
    - ``intervals``: name -> DataFrame (``id``, ``start``, ``stop``; NaN stop =
      still on); 1 inside any interval and 0 outside (on lenalidomide).
    - ``measurements``: name -> DataFrame (``id``, ``time``, ``value``); the last
      observed value carried forward, ``initial`` before the first one (log
      immune count, donor chimerism). Measurements at or before entry set the
      starting value.

    With ``origin`` (a date column of ``patients``) every time column may hold
    dates, converted to days since that patient's origin.

    Returns columns ``id``, ``start``, ``stop``, ``event`` (named as in
    ``patients``), the baseline columns
    and one column per time-varying covariate.
    """
    what = "counting_process"
    require_columns(patients, [id, time, event, entry, origin, *baseline], what)
    if patients[id].duplicated().any():
        dup = list(patients[id][patients[id].duplicated()].unique()[:5])
        raise AnalysisError(f"{what}: column {id!r} repeats patients {dup}; the patients "
                            "table needs one row per patient")
    org = patients.set_index(id)[origin] if origin is not None else None

    def origin_for(ids):
        return None if org is None else pd.Series(org.reindex(ids).to_numpy())

    ids = patients[id].to_numpy()
    stop_t = _days(patients[time], origin_for(ids), what, time)
    if np.isnan(stop_t).any():
        raise AnalysisError(f"{what}: column {time!r} has missing follow-up times")
    start_t = (np.zeros(len(patients)) if entry is None
               else _days(patients[entry], origin_for(ids), what, entry))
    if (stop_t <= start_t).any():
        bad = list(ids[stop_t <= start_t][:5])
        raise AnalysisError(f"{what}: patients {bad} have follow-up {time!r} not after "
                            "entry; every patient needs some time at risk")
    ev = indicator(patients, event, what)
    known = set(ids)

    # Each covariate becomes a per-patient list of (change time, value) pairs.
    changes: dict[str, tuple[dict, float]] = {}
    for name, spec in (onsets or {}).items():
        if isinstance(spec, str):
            require_columns(patients, [spec], f"{what} (onset {name!r})")
            t = _days(patients[spec], origin_for(ids), what, spec)
            table = pd.DataFrame({"id": ids, "t": t})
        else:
            spec = _long_table(spec, id, ["time"], name, what)
            table = pd.DataFrame({"id": spec[id].to_numpy(),
                                  "t": _days(spec["time"], origin_for(spec[id]), what, "time")})
        table = table.dropna()
        first = table.groupby("id")["t"].min()
        changes[name] = ({k: (np.array([v]), np.array([1.0])) for k, v in first.items()}, 0.0)
    for name, spec in (intervals or {}).items():
        spec = _long_table(spec, id, ["start", "stop"], name, what)
        s = _days(spec["start"], origin_for(spec[id]), what, "start")
        e = _days(spec["stop"], origin_for(spec[id]), what, "stop")
        if np.isnan(s).any():
            raise AnalysisError(f"{what}: interval table {name!r} has missing 'start' days")
        if (e[~np.isnan(e)] < s[~np.isnan(e)]).any():
            raise AnalysisError(f"{what}: interval table {name!r} has 'stop' before 'start'")
        per = {}
        for pid, grp in pd.DataFrame({"id": spec[id].to_numpy(), "s": s, "e": e}).groupby("id"):
            gs, ge = grp["s"].to_numpy(), grp["e"].fillna(np.inf).to_numpy()
            # Evaluate "inside any interval" at every boundary: handles overlaps.
            cuts = np.unique(np.concatenate([gs, ge[np.isfinite(ge)]]))
            on = ((gs[None, :] <= cuts[:, None]) & (cuts[:, None] < ge[None, :])).any(1)
            per[pid] = (cuts, on.astype(float))
        changes[name] = (per, 0.0)
    for name, spec in (measurements or {}).items():
        spec = _long_table(spec, id, ["time", "value"], name, what)
        t = _days(spec["time"], origin_for(spec[id]), what, "time")
        v = numeric(spec, "value", f"{what} ({name})", allow_nan=True)
        table = pd.DataFrame({"id": spec[id].to_numpy(), "t": t, "v": v}).dropna()
        changes[name] = ({pid: (g["t"].to_numpy(), g["v"].to_numpy())
                          for pid, g in table.groupby("id", sort=False)}, initial)
    for name, (per, _) in changes.items():
        unknown = set(per) - known
        if unknown:
            raise AnalysisError(f"{what}: covariate {name!r} mentions patients not in the "
                                f"patients table: {sorted(unknown, key=str)[:5]}")
        if name in (id, "start", "stop", event, *baseline):
            raise AnalysisError(f"{what}: covariate name {name!r} clashes with a column")

    pieces = []
    for i, pid in enumerate(ids):
        lo, hi = start_t[i], stop_t[i]
        cuts = [lo, hi]
        for per, _ in changes.values():
            if pid in per:
                ct = per[pid][0]
                cuts.extend(ct[(ct > lo) & (ct < hi)])
        cuts = np.unique(cuts)
        row = {id: pid, "start": cuts[:-1], "stop": cuts[1:],
               event: np.r_[np.zeros(len(cuts) - 2, int), ev[i]]}
        for b in baseline:
            row[b] = patients[b].iloc[i]
        for name, (per, init) in changes.items():
            ct, cv = per.get(pid, (np.array([]), np.array([])))
            row[name] = _step_value(ct, cv, cuts[:-1], init)
        pieces.append(pd.DataFrame(row))
    out = pd.concat(pieces, ignore_index=True)
    for name in (onsets or {}):
        out[name] = out[name].astype(int)
    for name in (intervals or {}):
        out[name] = out[name].astype(int)
    return out


# ---------------------------------------------------------------------------
# cox_time_varying


@dataclass(frozen=True)
class TestResult:
    statistic: float
    df: int
    p_value: float


@dataclass(frozen=True)
class CoxResult:
    """A Cox model fit, with the tests that remain valid under separation.

    ``coefficients``: ``covariate``, ``coef``, ``se``, ``hr``, ``hr_lower``,
    ``hr_upper``, ``z``, ``p_wald``. When the likelihood is monotone the
    coefficients of the separated covariates have no finite estimate: ``hr`` is
    0 or inf and ``se``, the interval, ``z`` and ``p_wald`` are NaN; use
    ``likelihood_ratio`` or ``score`` instead (``preferred_test`` says which).

    ``firth``: the Firth-penalised fit (Breslow ties, as R's ``coxphf``), fitted
    when the likelihood is monotone or one event away from it
    (``nearly_separated``), or when asked for; its finite hazard ratios,
    profile penalised-likelihood intervals and penalised likelihood-ratio
    p-values are also in ``coefficients`` (``hr_firth``, ``hr_firth_lower``,
    ``hr_firth_upper``, ``p_firth``; NaN when not fitted).
    """
    coefficients: pd.DataFrame
    likelihood_ratio: TestResult
    score: TestResult
    wald: TestResult
    log_likelihood: float
    log_likelihood_null: float
    n_patients: int
    n_rows: int
    n_events: int
    converged: bool
    monotone_likelihood: bool
    separated: tuple[str, ...]
    conf_level: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    nearly_separated: bool = False
    firth: FirthFit | None = None

    @property
    def events_per_covariate(self) -> float:
        return self.n_events / max(len(self.coefficients), 1)

    @property
    def preferred_test(self) -> TestResult:
        """The likelihood-ratio test: valid under separation, and better than Wald
        in small samples."""
        return self.likelihood_ratio


def _cox_fit(rows: pd.DataFrame, covariates: list[str], *, start: str, stop: str, event: str,
             id: str | None, weights: str | None, conf_level: float,
             what: str, firth: bool | str = "auto") -> CoxResult:
    from lifelines import CoxTimeVaryingFitter
    from lifelines.exceptions import ConvergenceError

    require_columns(rows, [start, stop, event, id, weights, *covariates], what)
    if not covariates:
        raise AnalysisError(f"{what}: give at least one covariate")
    t0 = numeric(rows, start, what)
    t1 = numeric(rows, stop, what)
    if (t1 <= t0).any():
        raise AnalysisError(f"{what}: rows with {stop!r} <= {start!r}; intervals are (start, "
                            "stop] with stop > start")
    e = indicator(rows, event, what)
    X = np.column_stack([numeric(rows, c, what) for c in covariates])
    w = None if weights is None else numeric(rows, weights, what, nonnegative=True)
    n_events = int(e.sum()) if w is None else int((e == 1).sum())
    if n_events == 0:
        raise AnalysisError(f"{what}: no events in column {event!r}; a Cox model needs events")
    const = [c for c, col in zip(covariates, X.T) if np.ptp(col) == 0]
    if const:
        raise AnalysisError(f"{what}: covariate(s) {const} do not vary; drop them")

    direction = monotone_direction(X, t0, t1, e)
    separated = () if direction is None else tuple(
        c for c, d in zip(covariates, direction) if abs(d) > 1e-8)
    near = not separated and nearly_separated(X, t0, t1, e)

    frame = pd.DataFrame(X, columns=covariates)
    frame["_start"], frame["_stop"], frame["_event"] = t0, t1, e
    frame["_id"] = rows[id].to_numpy() if id is not None else np.arange(len(rows))
    if w is not None:
        frame["_w"] = w
    fitter = CoxTimeVaryingFitter(alpha=1 - conf_level)
    converged = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitter.fit(frame, event_col="_event", start_col="_start", stop_col="_stop",
                       id_col="_id", weights_col="_w" if w is not None else None)
        except ConvergenceError as exc:
            if direction is None:
                raise AnalysisError(f"{what}: the Cox fit did not converge ({exc})") from None
            fitter = None
    if any("convergence" in str(c.message).lower() for c in caught):
        converged = False
    stat0, ll0 = score_test(X, t0, t1, e, w)
    p = len(covariates)
    z_crit = stats.norm.ppf(0.5 + conf_level / 2)
    cov = None
    singular = False
    if fitter is not None:
        coef = fitter.summary["coef"].to_numpy()
        ll = float(fitter.log_likelihood_)
        if not separated:
            # One Newton step from lifelines' solution and the information at the
            # final estimate: lifelines reports the Hessian of its previous
            # iterate, which moves the Wald statistic in the fourth decimal.
            try:
                ll1, u, info = efron_loglik(coef, X, t0, t1, e, w)
                coef1 = coef + np.linalg.solve(info, u)
                ll1, _, info = efron_loglik(coef1, X, t0, t1, e, w)
                cov = np.linalg.inv(info)
                coef, ll = coef1, ll1
            except np.linalg.LinAlgError:
                singular = True      # the information cannot be inverted: no Wald test
        se = (np.sqrt(np.diag(cov)) if cov is not None else
              np.full(p, np.nan) if singular else fitter.summary["se(coef)"].to_numpy())
    else:
        coef = np.full(p, np.nan)
        se = np.full(p, np.nan)
        ll = np.nan
    with np.errstate(over="ignore"):  # separated fits: exp of huge bounds
        table = pd.DataFrame({"covariate": covariates, "coef": coef, "se": se,
                              "hr": np.exp(coef), "hr_lower": np.exp(coef - z_crit * se),
                              "hr_upper": np.exp(coef + z_crit * se), "z": coef / se})
    table["p_wald"] = 2 * stats.norm.sf(np.abs(table["z"]))
    notes = []
    if separated:
        converged = False
        mask = table["covariate"].isin(separated).to_numpy()
        limit = np.where(np.nan_to_num(coef) < 0, 0.0, np.inf)
        if fitter is None:
            limit = np.where(direction < 0, 0.0, np.inf)
        table.loc[mask, "hr"] = limit[mask]
        table.loc[mask, ["se", "hr_lower", "hr_upper", "z", "p_wald"]] = np.nan
        notes.append(
            "monotone likelihood (separation) in " + ", ".join(separated) + ": the hazard "
            "ratio estimate is at 0 or infinity and the Wald test is meaningless; report the "
            "likelihood-ratio and score tests")
        if fitter is None:
            notes.append("lifelines could not iterate towards the infinite estimate; the "
                         "likelihood-ratio test is unavailable, use the score test")
        wald = TestResult(np.nan, p, np.nan)
    elif singular:
        notes.append("the information matrix is singular at the estimate (the data cannot "
                     "identify every coefficient): no standard errors or Wald test; report the "
                     "likelihood-ratio and score tests")
        wald = TestResult(np.nan, p, np.nan)
    else:
        wstat = float(coef @ np.linalg.solve(cov, coef))
        wald = TestResult(wstat, p, float(stats.chi2.sf(wstat, p)))
    if not converged and not separated:
        notes.append("the Newton-Raphson fit did not converge; estimates are unreliable")
    lr = 2 * (ll - ll0)
    if n_events / p < 10:
        notes.append(f"{n_events} events for {p} covariate(s): fewer than 10 events per "
                     "covariate, the model is likely overfitted; prefer one covariate at a time")
    fitted = None
    if firth is True or (firth == "auto" and (separated or near)):
        fitted = firth_cox(X, t0, t1, e, w, conf_level=conf_level)
        notes.append("Firth-penalised estimate (Breslow ties, as R's coxphf) with profile "
                     "penalised-likelihood interval and penalised likelihood-ratio test")
        if not fitted.converged:
            notes.append("the Firth fit did not converge; its estimate is unreliable")
        with np.errstate(over="ignore"):
            table["hr_firth"] = np.exp(fitted.coef)
            table["hr_firth_lower"] = np.exp(fitted.lower)
            table["hr_firth_upper"] = np.exp(fitted.upper)
        table["p_firth"] = fitted.p_penalised
    else:
        table[["hr_firth", "hr_firth_lower", "hr_firth_upper", "p_firth"]] = np.nan
    if near:
        notes.append("nearly separated: one event less and the likelihood would be monotone")
    ids = frame["_id"]
    return CoxResult(
        coefficients=table,
        likelihood_ratio=TestResult(float(lr), p, float(stats.chi2.sf(lr, p))),
        score=TestResult(stat0, p, float(stats.chi2.sf(stat0, p))),
        wald=wald, log_likelihood=float(ll), log_likelihood_null=float(ll0),
        n_patients=int(ids.nunique()), n_rows=len(frame), n_events=n_events,
        converged=converged, monotone_likelihood=bool(separated), separated=separated,
        conf_level=conf_level, notes=tuple(notes), nearly_separated=bool(near),
        firth=fitted)


def cox_time_varying(rows: pd.DataFrame, covariates: str | Sequence[str], *,
                     start: str = "start", stop: str = "stop", event: str = "event",
                     id: str | None = "patient", weights: str | None = None,
                     conf_level: float = 0.95, firth: bool | str = "auto") -> CoxResult:
    """Cox proportional-hazards model on counting-process rows (Efron ties).

    Fitted by lifelines' ``CoxTimeVaryingFitter``; reports Wald, likelihood-ratio
    and score tests and checks for a monotone likelihood before trusting the
    Wald numbers. ``rows`` is typically the output of :func:`counting_process`.
    ``weights`` are case weights (as ``coxph(weights=)``); standard errors are
    model-based (inverse information), not the sandwich estimator.
    ``firth``: "auto" adds the Firth-penalised fit when the model is separated or
    nearly so, True always, False never.
    """
    conf_level = check_conf_level(conf_level)
    if firth not in (True, False, "auto"):
        raise AnalysisError(f"cox_time_varying: firth must be True, False or 'auto', "
                            f"not {firth!r}")
    return _cox_fit(rows, as_list(covariates), start=start, stop=stop, event=event, id=id,
                    weights=weights, conf_level=conf_level,
                    what="cox_time_varying", firth=firth)


# ---------------------------------------------------------------------------
# landmark


@dataclass(frozen=True)
class LandmarkResult:
    """A landmark analysis: who was included, their status at the landmark, the
    Cox model from the landmark on, and the Kaplan-Meier/log-rank comparison of
    the first covariate's groups when it is binary."""
    landmark_day: float
    data: pd.DataFrame
    n_excluded: int
    cox: CoxResult
    kaplan_meier: object | None
    logrank: object | None


def landmark(patients: pd.DataFrame, landmark_day: float, *, time: str = "time",
             event: str = "event", id: str = "patient",
             onsets: Sequence[str] = (), covariates: Sequence[str] = (),
             measurements: Mapping[str, pd.DataFrame] | None = None,
             conf_level: float = 0.95) -> LandmarkResult:
    """The question asked at a fixed day: status at the landmark -> outcome after it.

    Patients whose follow-up ends at or before ``landmark_day`` (event or
    censoring) are excluded; for the rest, each ``onsets`` column (day of
    onset, NaN = never) becomes 1 if the onset was on or before the landmark
    and 0 otherwise (later onsets count as unexposed: only what is known at the
    landmark is used), each ``measurements`` table gives the last value on or
    before the landmark, and time restarts at the landmark (Anderson, Cain and
    Gelber 1983).
    """
    from .survival import kaplan_meier, logrank

    what = "landmark"
    require_columns(patients, [id, time, event, *onsets, *covariates], what)
    conf_level = check_conf_level(conf_level)
    t = numeric(patients, time, what, nonnegative=True)
    keep = t > landmark_day
    data = patients.loc[keep, [id, time, event, *covariates]].copy()
    data[time] = t[keep] - landmark_day
    for c in onsets:
        onset = numeric(patients, c, what, allow_nan=True)[keep]
        data[c] = (onset <= landmark_day).astype(int)
    for name, table in (measurements or {}).items():
        require_columns(table, [id, "time", "value"], f"{what} ({name})")
        known = table[pd.to_numeric(table["time"]) <= landmark_day].sort_values("time")
        last = known.groupby(id)["value"].last()
        data[name] = data[id].map(last).to_numpy(dtype=float)
        if data[name].isna().any():
            missing = list(data.loc[data[name].isna(), id][:5])
            raise AnalysisError(f"{what}: no {name!r} measurement on or before day "
                                f"{landmark_day} for patients {missing}; drop them or "
                                "choose a later landmark")
    if len(data) == 0:
        raise AnalysisError(f"{what}: no patient is followed beyond day {landmark_day}")
    if not (indicator(data, event, what) == 1).any():
        before = int((indicator(patients, event, what)[~keep] == 1).sum())
        raise AnalysisError(f"{what}: no event in column {event!r} after day {landmark_day}"
                            + (f" ({before} on or before it, left out with their patients)"
                               if before else "") + "; a Cox model needs events")
    terms = [*onsets, *(measurements or {}), *covariates]
    rows = data.assign(_start=0.0)
    cox = _cox_fit(rows, terms, start="_start", stop=time, event=event, id=id, weights=None,
                   conf_level=conf_level, what=what)
    km = lr = None
    first = terms[0]
    if data[first].nunique() == 2:
        km = kaplan_meier(data, time, event, group=first, conf_level=conf_level)
        lr = logrank(data, time, event, first)
    return LandmarkResult(landmark_day, data.reset_index(drop=True), int((~keep).sum()),
                          cox, km, lr)
