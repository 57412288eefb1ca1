"""Competing risks: cumulative incidence, Gray's test, Fine-Gray and cause-specific Cox.

After transplant a patient can relapse or die of transplant-related causes
first; death removes the chance to relapse. One minus Kaplan-Meier, with
deaths censored, estimates the relapse probability in a world without
non-relapse mortality and overstates it. The Aalen-Johansen cumulative
incidence does not. Status coding everywhere: 0 censored, 1, 2, ... causes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ._checks import as_list, check_conf_level, numeric, require_columns, status_codes
from .timevarying import CoxResult, TestResult, _cox_fit

__all__ = ["CumulativeIncidenceResult", "GrayTestResult", "cumulative_incidence",
           "grays_test", "fine_gray", "finegray_expand", "cause_specific_cox", "crr_fit"]


def _cif_curve(t: np.ndarray, status: np.ndarray, cause: int):
    """Aalen-Johansen cumulative incidence of ``cause`` and its variance.

    The variance is the delta-method estimator with the tie correction used by
    Gray's cmprsk::cuminc: at each cause-specific event time s_j,
    Var F(t) = sum_j S(s_j-)^2 / n_j^2 * [ d1_j c1_j (1 - (F(t)-F(s_j))/S(s_j))^2
                                          + d2_j c2_j ((F(t)-F(s_j))/S(s_j))^2 ],
    with d1, d2 the events of this and of the other causes, c = 1-(d-1)/(n-1).
    It changes only at times where F jumps.
    """
    times = np.unique(t)
    n = np.array([(t >= s).sum() for s in times], dtype=float)
    d1 = np.array([((t == s) & (status == cause)).sum() for s in times], dtype=float)
    d2 = np.array([((t == s) & (status != 0) & (status != cause)).sum() for s in times],
                  dtype=float)
    surv = np.cumprod(1 - (d1 + d2) / n)          # S(s_j), all-cause KM
    surv_minus = np.r_[1.0, surv[:-1]]              # S(s_j-)
    cif = np.cumsum(surv_minus * d1 / n)
    keep = d1 + d2 > 0
    times, n, d1, d2, surv, surv_minus, cif = (a[keep] for a in
                                               (times, n, d1, d2, surv, surv_minus, cif))

    def tie(d):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 1, 1 - (d - 1) / (n - 1), 1.0)

    base = surv_minus ** 2 / n ** 2
    w1 = base * d1 * tie(d1)
    w2 = np.where(surv > 0, base * d2 * tie(d2), 0.0)
    inv_s = np.where(surv > 0, 1 / np.where(surv > 0, surv, 1), 0.0)
    var = np.full(len(times), np.nan)
    last = 0.0
    for k in range(len(times)):
        if d1[k] > 0:
            gap = (cif[k] - cif[: k + 1]) * inv_s[: k + 1]
            last = float((w1[: k + 1] * (1 - gap) ** 2 + w2[: k + 1] * gap ** 2).sum())
        var[k] = last
    return pd.DataFrame({"time": times, "n_risk": n.astype(int), "n_event": d1.astype(int),
                         "n_competing": d2.astype(int), "incidence": cif, "variance": var})


def _loglog_ci(f: np.ndarray, var: np.ndarray, z: float):
    """Interval on the log(-log) scale, kept inside (0, 1) (Choudhury 2002)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z * np.sqrt(var) / (f * np.log(f))
        lower = f ** np.exp(-half)
        upper = f ** np.exp(half)
    ok = (f > 0) & (f < 1)
    return np.where(ok, lower, np.nan), np.where(ok, upper, np.nan)


@dataclass(frozen=True)
class CumulativeIncidenceResult:
    """``table``: ``group``, ``cause``, ``time``, ``n_risk``, ``n_event``,
    ``n_competing``, ``incidence``, ``variance``, ``lower``, ``upper`` at every
    event time; ``at_times``: the same at the requested days (NaN past the
    last follow-up); ``tests``: Gray's test per cause when there are groups."""
    table: pd.DataFrame
    at_times: pd.DataFrame
    tests: pd.DataFrame | None
    conf_level: float


def _prepare(data, time, status, group, what):
    require_columns(data, [time, status, group], what)
    if len(data) == 0:
        raise AnalysisError(f"{what}: the table has no rows")
    t = numeric(data, time, what, nonnegative=True)
    s = status_codes(data, status, what)
    if group is not None and data[group].isna().any():
        raise AnalysisError(f"{what}: group column {group!r} has missing values")
    g = np.zeros(len(data), dtype=object) if group is None else data[group].to_numpy()
    return t, s, g


def cumulative_incidence(data: pd.DataFrame, time: str, status: str, *,
                         group: str | None = None, causes: Sequence[int] | None = None,
                         times: Sequence[float] = (), conf_level: float = 0.95,
                         rho: float = 0.0) -> CumulativeIncidenceResult:
    """Aalen-Johansen cumulative incidence per cause (and group), as cmprsk::cuminc.

    ``status``: 0 censored, 1, 2, ... competing causes (e.g. 1 relapse, 2
    non-relapse death). With ``group``, Gray's test (weight (1-F)^rho) is run for
    each cause.
    """
    what = "cumulative_incidence"
    conf_level = check_conf_level(conf_level)
    t, s, g = _prepare(data, time, status, group, what)
    all_causes = sorted(int(c) for c in np.unique(s) if c != 0)
    causes = all_causes if causes is None else list(causes)
    if not causes:
        raise AnalysisError(f"{what}: column {status!r} has no events (all 0)")
    z = stats.norm.ppf(0.5 + conf_level / 2)
    levels = ["all"] if group is None else sorted(pd.unique(g), key=str)
    tables, at = [], []
    for level in levels:
        m = np.ones(len(t), bool) if group is None else (g == level)
        for cause in causes:
            cur = _cif_curve(t[m], s[m], cause)
            cur["lower"], cur["upper"] = _loglog_ci(cur["incidence"].to_numpy(),
                                                     cur["variance"].to_numpy(), z)
            cur.insert(0, "cause", cause)
            cur.insert(0, "group", level)
            tables.append(cur)
            ct = cur["time"].to_numpy()
            for day in times:
                idx = np.searchsorted(ct, day, side="right") - 1
                if day > t[m].max():
                    vals = (np.nan,) * 4
                elif idx < 0:
                    vals = (0.0, 0.0, np.nan, np.nan)
                else:
                    r = cur.iloc[idx]
                    vals = (r.incidence, r.variance, r.lower, r.upper)
                at.append((level, cause, float(day), *vals))
    at_df = pd.DataFrame(at, columns=["group", "cause", "time", "incidence", "variance",
                                      "lower", "upper"])
    tests = None
    if group is not None and len(levels) > 1:
        tests = pd.DataFrame([{"cause": c, **grays_test(data, time, status, group, cause=c,
                                                         rho=rho).__dict__}
                              for c in causes])
    return CumulativeIncidenceResult(pd.concat(tables, ignore_index=True), at_df, tests,
                                     conf_level)


@dataclass(frozen=True)
class GrayTestResult:
    statistic: float
    df: int
    p_value: float


def _gray_scores(t, s, g, levels, cause, rho):
    """Score vector (first K-1 groups) and its variance for one stratum (Gray 1988).

    Each group's subdistribution hazard of ``cause`` is compared with the pooled
    one; the weighted differences are summed over event times. The variance
    follows the martingale representation of the paper, with the tie
    correction of cmprsk.
    """
    k = len(levels)
    gi = np.searchsorted(levels, g)
    rs = np.bincount(gi, minlength=k).astype(float)
    skmm = np.ones(k)    # all-cause KM per group, left limit
    f1m = np.zeros(k)    # cumulative incidence per group, left limit
    fm = 0.0             # pooled subdistribution estimate, left limit
    score = np.zeros(k - 1)
    var = np.zeros((k - 1, k - 1))
    c = np.zeros((k, k))
    v2 = np.zeros((k - 1, k))
    v3 = np.zeros(k)
    for time in np.unique(t):
        at = t == time
        d1 = np.bincount(gi[at & (s == cause)], minlength=k).astype(float)
        d2 = np.bincount(gi[at & (s != cause) & (s != 0)], minlength=k).astype(float)
        nd1, nd2 = d1.sum(), d2.sum()
        if nd1 or nd2:
            live = rs > 0
            safe_rs = np.where(live, rs, 1.0)
            skm = np.where(live, skmm * (rs - d1 - d2) / safe_rs, skmm)
            f1 = np.where(live, f1m + skmm * d1 / safe_rs, f1m)
            h = np.where(live, rs / skmm, 0.0)          # R_r / S_r(t-)
            tr = h.sum()
            tq = (h * (1 - f1m)).sum()
            f = fm + nd1 / tr
            fb = (1 - fm) ** rho
            a = -fb * np.outer(h, h) / tr
            np.fill_diagonal(a, fb * h * (1 - h / tr))
            c += a * nd1 / (tr * (1 - fm))
            score += (fb * (d1 - nd1 * h * (1 - f1m) / tq) * live)[: k - 1]
            if nd1 > 0:
                for j in np.nonzero(live)[0]:
                    t4 = 1 - (1 - f) / skm[j] if skm[j] > 0 else 1.0
                    t5 = 1 - (nd1 - 1) / (tr * skmm[j] - 1) if nd1 > 1 else 1.0
                    t3 = t5 * skmm[j] * nd1 / (tr * rs[j])
                    v3[j] += t4 * t4 * t3
                    b = a[: k - 1, j] - t4 * c[: k - 1, j]
                    v2[:, j] += b * t4 * t3
                    var += np.outer(b, b) * t3
            if nd2 > 0:
                for j in np.nonzero((skm > 0) & (d2 > 0))[0]:
                    t4 = (1 - f) / skm[j]
                    t5 = 1 - (d2[j] - 1) / (rs[j] - 1) if d2[j] > 1 else 1.0
                    t3 = t5 * skmm[j] ** 2 * d2[j] / rs[j] ** 2
                    v3[j] += t4 * t4 * t3
                    b = t4 * c[: k - 1, j]
                    v2[:, j] -= b * t4 * t3
                    var += np.outer(b, b) * t3
            fm, f1m, skmm = f, f1, skm
        rs -= np.bincount(gi[at], minlength=k)
    cc = c[: k - 1]
    var += (cc * v3) @ cc.T + cc @ v2.T + v2 @ cc.T
    return score, var


def grays_test(data: pd.DataFrame, time: str, status: str, group: str, *, cause: int = 1,
               strata: str | None = None, rho: float = 0.0) -> GrayTestResult:
    """Gray's K-sample test for equal cumulative incidence of ``cause``.

    Compares subdistribution hazards with weight (1 - F(t-))^rho (rho = 0: the
    log-rank analogue). Chi-square on K-1 degrees of freedom (Gray 1988).
    """
    what = "grays_test"
    require_columns(data, [strata], what)
    t, s, g = _prepare(data, time, status, group, what)
    levels = np.array(sorted(pd.unique(g), key=str), dtype=object)
    if len(levels) < 2:
        raise AnalysisError(f"{what}: column {group!r} has a single group")
    if not (s == cause).any():
        raise AnalysisError(f"{what}: no events of cause {cause} in column {status!r}")
    order = np.argsort(t, kind="stable")
    t, s, g = t[order], s[order], g[order]
    st = np.zeros(len(t)) if strata is None else data[strata].to_numpy()[order]
    # levels are sorted, so searchsorted needs comparable keys: map to codes.
    codes = np.array([np.nonzero(levels == x)[0][0] for x in g])
    score = np.zeros(len(levels) - 1)
    var = np.zeros((len(levels) - 1,) * 2)
    for stratum in pd.unique(st):
        m = st == stratum
        sc, v = _gray_scores(t[m], s[m], codes[m], np.arange(len(levels)), cause, rho)
        score += sc
        var += v
    stat = float(score @ np.linalg.solve(var, score))
    df = len(levels) - 1
    return GrayTestResult(stat, df, float(stats.chi2.sf(stat, df)))


def _censoring_km(t: np.ndarray, s: np.ndarray):
    """Kaplan-Meier of the censoring distribution, events before censoring at ties."""
    ctimes = np.unique(t[s == 0])
    n = np.array([(t > c).sum() + ((t == c) & (s == 0)).sum() for c in ctimes], float)
    d = np.array([((t == c) & (s == 0)).sum() for c in ctimes], float)
    return ctimes, np.cumprod(1 - d / n)


def finegray_expand(data: pd.DataFrame, time: str, status: str, *, cause: int = 1,
                    id: str | None = None) -> pd.DataFrame:
    """Censoring-weighted data set for the Fine-Gray model (as survival::finegray).

    A patient with a competing event at X stays in the risk set after X with
    weight G(t-)/G(X-), G the censoring Kaplan-Meier (Fine and Gray 1999;
    Geskus 2011). Rows are (``fgstart``, ``fgstop``] with ``fgstatus`` (1 =
    event of ``cause``) and ``fgwt``, plus every column of ``data``.
    """
    what = "finegray_expand"
    t, s, _ = _prepare(data, time, status, None, what)
    ctimes, G = _censoring_km(t, s)
    max_t = t.max()
    event_times = np.unique(t[s == cause])

    def G_at(x, left):
        idx = np.searchsorted(ctimes, x, side="left" if left else "right") - 1
        return np.where(idx >= 0, G[np.clip(idx, 0, None)], 1.0)

    # Follow-up starts at 0, or just before it when some time is 0 (as finegray).
    origin = 0.0 if t.min() > 0 else -1.0
    rows = []
    for i in range(len(t)):
        rows.append((i, origin, t[i], int(s[i] == cause), 1.0))
        if s[i] != 0 and s[i] != cause and t[i] < max_t:
            g0 = float(G_at(t[i], left=True))
            cuts = np.r_[t[i], ctimes[(ctimes >= t[i]) & (ctimes < max_t)], max_t]
            cuts = np.unique(cuts)
            weights = G_at(cuts[:-1], left=False) / g0
            # Only intervals holding an event of interest enter the likelihood.
            lo = np.searchsorted(event_times, cuts[:-1], side="right")
            hi = np.searchsorted(event_times, cuts[1:], side="right")
            for a, b, w, used in zip(cuts[:-1], cuts[1:], weights, hi > lo):
                if w > 0 and used:
                    rows.append((i, a, b, 0, float(w)))
    idx, start, stop, st, wt = map(np.array, zip(*rows))
    out = data.iloc[idx].reset_index(drop=True)
    if id is None:
        out["fgid"] = idx
    out["fgstart"], out["fgstop"], out["fgstatus"], out["fgwt"] = start, stop, st, wt
    return out


def _crr_censoring_km(t: np.ndarray, s: np.ndarray):
    """Kaplan-Meier of censoring as crr takes it (``survfit`` on the censoring
    indicator: failures at a censoring time stay in its risk set): times,
    numbers at risk, censorings, values."""
    ctimes = np.unique(t[s == 0])
    at_risk = (t[None, :] >= ctimes[:, None]).sum(axis=1).astype(float)
    censored = ((t[None, :] == ctimes[:, None]) & (s[None, :] == 0)).sum(axis=1)
    return ctimes, at_risk, censored, np.cumprod(1 - censored / at_risk)


def _left_limit(ctimes: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A right-continuous step function (1 before its first step) just before x."""
    idx = np.searchsorted(ctimes, x, side="left") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0)


def crr_fit(t, s, X, *, tol: float = 1e-10, max_iter: int = 100) -> dict:
    """Fine and Gray's (1999) estimator and sandwich variance, as ``cmprsk::crr``.

    ``s``: 1 event of interest, 2 competing event, 0 censored. At each event
    time tau (Breslow ties) the risk set holds everyone still followed, with
    weight 1, and everyone whose competing event came earlier, with weight
    G(tau-)/G(T_i-), G the censoring Kaplan-Meier. The variance is
    H^-1 [sum_i (eta_i + psi_i)(eta_i + psi_i)'] H^-1: eta_i the score
    residual of the weighted partial likelihood, psi_i the term for having
    estimated G (Fine and Gray 1999, section 3). Returns coef, var, var_model
    (H^-1), loglik, loglik_null, score test at 0 and convergence.
    """
    t, s, X = np.asarray(t, float), np.asarray(s, int), np.asarray(X, float)
    n, p = X.shape
    ctimes, y_c, n_c, G = _crr_censoring_km(t, s)
    g_left = _left_limit(ctimes, G, t)
    tau = np.unique(t[s == 1])
    g_tau = _left_limit(ctimes, G, tau)
    deaths = ((t[None, :] == tau[:, None]) & (s[None, :] == 1)).sum(axis=1).astype(float)
    W = (t[None, :] >= tau[:, None]) + ((t[None, :] < tau[:, None]) & (s[None, :] == 2)) \
        * (g_tau[:, None] / g_left[None, :])
    xx = (X[:, :, None] * X[:, None, :]).reshape(n, p * p)

    def moments(beta):
        r = np.exp(X @ beta)
        A = W * r[None, :]
        s0 = A.sum(axis=1)
        mean = (A @ X) / s0[:, None]
        e2 = ((A @ xx) / s0[:, None]).reshape(-1, p, p)
        info = np.einsum("k,kjl->jl", deaths, e2 - mean[:, :, None] * mean[:, None, :])
        loglik = float((X[s == 1] @ beta).sum() - deaths @ np.log(s0))
        score = X[s == 1].sum(axis=0) - deaths @ mean
        return r, s0, mean, loglik, score, info

    beta = np.zeros(p)
    _, _, _, ll0, u0, i0 = moments(beta)
    converged = False
    for _ in range(max_iter):
        *_, ll, u, info = moments(beta)
        step = np.linalg.solve(info, u)
        beta = beta + step
        if np.abs(step).max() < tol:
            converged = True
            break
    r, s0, mean, ll, u, info = moments(beta)
    # eta_i: the event's own term, minus its share of every risk set it is in.
    share = deaths[:, None] * W * r[None, :] / s0[:, None]          # event times x rows
    eta = share.T @ mean - share.sum(axis=0)[:, None] * X
    events = s == 1
    eta[events] += X[events] - mean[np.searchsorted(tau, t[events])]
    # psi_i: q(u) at each censoring time u, from the competing events before u.
    cw = np.where(s == 2, r / g_left, 0.0)
    before = t[None, :] < ctimes[:, None]                            # censoring times x rows
    a = before @ cw
    b = before @ (cw[:, None] * X)
    later = (tau[None, :] >= ctimes[:, None]) * (deaths * g_tau / s0)[None, :]
    q = later.sum(axis=1)[:, None] * b - a[:, None] * (later @ mean)
    cumulative = np.cumsum(-(n_c / y_c ** 2)[:, None] * q, axis=0)
    idx = np.searchsorted(ctimes, t, side="right") - 1
    psi = np.where(idx[:, None] >= 0, cumulative[np.clip(idx, 0, None)], 0.0)
    cens = np.flatnonzero(s == 0)
    at = np.searchsorted(ctimes, t[cens])
    psi[cens] += q[at] / y_c[at][:, None]
    h_inv = np.linalg.inv(info)
    resid = eta + psi
    return {"coef": beta, "var": h_inv @ (resid.T @ resid) @ h_inv, "var_model": h_inv,
            "loglik": ll, "loglik_null": ll0,
            "score": float(u0 @ np.linalg.solve(i0, u0)), "converged": converged}


def fine_gray(data: pd.DataFrame, time: str, status: str, covariates: str | Sequence[str],
              *, cause: int = 1, conf_level: float = 0.95,
              method: str = "crr") -> CoxResult:
    """Fine-Gray subdistribution hazards model.

    ``method="crr"`` (default): Fine and Gray's estimator with their sandwich
    variance, which also accounts for estimating the censoring distribution, as
    R's ``cmprsk::crr`` (Breslow ties); standard errors, intervals and the Wald
    tests use that variance; the likelihood-ratio test is crr's pseudo
    likelihood ratio and the score test is at 0 with crr's information.
    ``method="finegray"``: the data expanded with :func:`finegray_expand` and a
    weighted Cox model (Efron ties, model-based variance), as
    ``coxph(..., weights = fgwt)`` on ``survival::finegray`` output.

    Both check separation on the expanded rows; a separated or nearly
    separated model gets the Firth-penalised estimate on those weighted rows
    (Breslow) and keeps the expanded fit's tests.
    """
    conf_level = check_conf_level(conf_level)
    cov = as_list(covariates)
    require_columns(data, [time, status, *cov], "fine_gray")
    if method not in ("crr", "finegray"):
        raise AnalysisError(f"fine_gray: method must be 'crr' or 'finegray', not {method!r}")
    if not (pd.to_numeric(data[status], errors="coerce") == cause).any():
        raise AnalysisError(f"fine_gray: no event of cause {cause} in column {status!r}; a "
                            "model of its subdistribution hazard needs events")
    expanded = finegray_expand(data, time, status, cause=cause)
    fit = _cox_fit(expanded, cov, start="fgstart", stop="fgstop", event="fgstatus",
                   id="fgid", weights="fgwt", conf_level=conf_level, what="fine_gray")
    if method == "finegray" or fit.monotone_likelihood:
        return fit
    t, s, _ = _prepare(data, time, status, None, "fine_gray")
    X = np.column_stack([numeric(data, c, "fine_gray") for c in cov])
    crr = crr_fit(t, np.where(s == cause, 1, np.where(s == 0, 0, 2)), X)
    coef, var = crr["coef"], crr["var"]
    se = np.sqrt(np.diag(var))
    z_crit = stats.norm.ppf(0.5 + conf_level / 2)
    table = fit.coefficients.copy()
    table["coef"], table["se"], table["z"] = coef, se, coef / se
    table["hr"] = np.exp(coef)
    table["hr_lower"], table["hr_upper"] = np.exp(coef - z_crit * se), np.exp(coef + z_crit * se)
    table["p_wald"] = 2 * stats.norm.sf(np.abs(table["z"]))
    p = len(cov)
    wald = float(coef @ np.linalg.solve(var, coef))
    lr = 2 * (crr["loglik"] - crr["loglik_null"])
    notes = [*fit.notes, "cmprsk::crr estimator (Breslow ties) with Fine and Gray's sandwich "
             "variance, which accounts for estimating the censoring distribution"]
    if not crr["converged"]:
        notes.append("the crr Newton-Raphson fit did not converge; estimates are unreliable")
    return replace(fit, coefficients=table,
                   wald=TestResult(wald, p, float(stats.chi2.sf(wald, p))),
                   likelihood_ratio=TestResult(float(lr), p, float(stats.chi2.sf(lr, p))),
                   score=TestResult(crr["score"], p, float(stats.chi2.sf(crr["score"], p))),
                   log_likelihood=crr["loglik"], log_likelihood_null=crr["loglik_null"],
                   converged=fit.converged and crr["converged"], notes=tuple(notes))


def cause_specific_cox(data: pd.DataFrame, time: str, status: str,
                       covariates: str | Sequence[str], *, cause: int = 1,
                       start: str | None = None, id: str | None = None,
                       conf_level: float = 0.95) -> CoxResult:
    """Cox model for the hazard of ``cause``, other causes censored.

    Works on one row per patient (``start`` None) or on counting-process rows.
    """
    what = "cause_specific_cox"
    cov = as_list(covariates)
    require_columns(data, [time, status, start, id, *cov], what)
    s = status_codes(data, status, what)
    rows = data.assign(_event=(s == cause).astype(int))
    if start is None:
        rows = rows.assign(_start=0.0)
    return _cox_fit(rows, cov, start=start or "_start", stop=time, event="_event", id=id,
                    weights=None, conf_level=check_conf_level(conf_level),
                    what=what)
