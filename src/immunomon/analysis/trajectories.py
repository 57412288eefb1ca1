"""Immune reconstitution over visits: mixed models, per-visit summaries, change from baseline.

Counts are analysed on the log10 scale (reconstitution is multiplicative and
counts are right-skewed). A count of zero has no logarithm, so zeros (and
anything below the floor) are set to a floor first: by default half the
smallest positive count in the data, which keeps zeros below every observed
value without inventing a detection limit. Pass ``floor=`` to use the assay's
real limit of detection.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ._checks import numeric, require_columns

__all__ = ["log_counts", "trajectories", "TrajectoryResult", "visit_summary",
           "change_from_baseline"]


def log_counts(values, floor: float | None = None) -> tuple[np.ndarray, float]:
    """log10 of counts with zeros raised to ``floor``; returns (logs, floor used)."""
    v = np.asarray(values, dtype=float)
    if (v[~np.isnan(v)] < 0).any():
        raise AnalysisError("log_counts: counts must be >= 0")
    if floor is None:
        positive = v[v > 0]
        if positive.size == 0:
            raise AnalysisError("log_counts: every count is zero; pass floor= (e.g. the "
                                "assay's limit of detection)")
        floor = float(positive.min()) / 2
    if floor <= 0:
        raise AnalysisError(f"log_counts: floor must be > 0, got {floor}")
    return np.log10(np.maximum(v, floor)), float(floor)


@dataclass(frozen=True)
class TrajectoryResult:
    """Linear mixed model fit: ``fixed`` has ``term``, ``estimate``, ``se``, ``z``,
    ``p_value``, ``lower``, ``upper``; variances of the random intercept and the
    residual; the (REML or ML) log-likelihood; the floor used for zeros."""
    fixed: pd.DataFrame
    intercept_variance: float
    residual_variance: float
    log_likelihood: float
    reml: bool
    n_patients: int
    n_observations: int
    floor: float | None
    formula: str


def _gls_covariance(X: np.ndarray, groups: np.ndarray, tau2: float,
                    sigma2: float) -> np.ndarray:
    """(X' V^-1 X)^-1 for a random-intercept model, the fixed-effect covariance
    lme4 reports. statsmodels inverts the joint Hessian of fixed effects and
    variance parameters instead, which differs slightly in unbalanced data."""
    xtvx = np.zeros((X.shape[1], X.shape[1]))
    for g in pd.unique(groups):
        xi = X[groups == g]
        # V_i^-1 = (I - tau2 / (sigma2 + n_i tau2) J) / sigma2
        total = xi.sum(axis=0)
        shrink = tau2 / (sigma2 + len(xi) * tau2)
        xtvx += (xi.T @ xi - shrink * np.outer(total, total)) / sigma2
    return np.linalg.inv(xtvx)


def trajectories(data: pd.DataFrame, value: str, *, patient: str = "patient",
                 visit: str = "visit", group: str | None = None,
                 visit_as: str = "categorical", log: bool = True,
                 floor: float | None = None, reml: bool = True,
                 conf_level: float = 0.95) -> TrajectoryResult:
    """Random-intercept linear mixed model of (log) counts over visits.

    Model: y_ij = x_ij' beta + u_i + e_ij, u_i ~ N(0, tau^2), e_ij ~ N(0, s^2),
    fitted by REML with statsmodels' MixedLM (as lme4::lmer). ``visit_as``:
    "categorical" (one mean per visit, no shape assumed) or "linear" (a slope
    per day). With ``group`` the visit effect may differ by group (interaction
    for categorical visits, main effect plus slope-by-group for linear).
    Patients with missing visits keep their other visits (no complete-case loss).
    Categorical visits may be labels ("pre", "M3"), taken in study order
    (``visits_in_study_order``); linear ones are numbers.
    """
    import statsmodels.formula.api as smf

    what = "trajectories"
    require_columns(data, [value, patient, visit, group], what)
    if visit_as not in ("categorical", "linear"):
        raise AnalysisError(f"{what}: visit_as must be 'categorical' or 'linear'")
    y = numeric(data, value, what)
    used_floor = None
    if log:
        y, used_floor = log_counts(y, floor)
    labels = pd.to_numeric(data[visit], errors="coerce").isna().any()
    if labels and visit_as == "linear":
        raise AnalysisError(f"{what}: visit_as='linear' needs visits as numbers (days, "
                            f"months); column {visit!r} holds labels")
    # labelled visits ("pre", "M3", as a cohort's long form has them) in study order,
    # the first one the reference
    visits = pd.Categorical(data[visit], categories=visits_in_study_order(data[visit])) \
        if labels else numeric(data, visit, what)
    frame = pd.DataFrame({"y": y, "patient": data[patient].to_numpy(), "visit": visits})
    v_term = "C(visit)" if visit_as == "categorical" else "visit"
    if group is not None:
        frame["group"] = data[group].to_numpy()
        g_term = "group" if pd.api.types.is_numeric_dtype(frame["group"]) else "C(group)"
        rhs = f"{v_term} * {g_term}" if visit_as == "categorical" else \
            f"{v_term} + {g_term}"
    else:
        rhs = v_term
    if frame["patient"].nunique() < 3:
        raise AnalysisError(f"{what}: column {patient!r} has fewer than 3 patients; a "
                            "random intercept cannot be estimated")
    formula = f"y ~ {rhs}"
    model = smf.mixedlm(formula, frame, groups=frame["patient"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # BFGS with a tight gradient tolerance reaches lme4's optimum to ~1e-6;
        # statsmodels' default L-BFGS stops earlier (variance off in the 4th digit).
        try:
            fit = model.fit(reml=reml, method=["bfgs"], gtol=1e-12)
        except np.linalg.LinAlgError:
            fit = model.fit(reml=reml, method=["powell", "lbfgs"])
    fe = fit.fe_params
    tau2, sigma2 = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    se = pd.Series(np.sqrt(np.diag(_gls_covariance(model.exog, frame["patient"].to_numpy(),
                                                    tau2, sigma2))), index=fe.index)
    z = stats.norm.ppf(0.5 + conf_level / 2)
    fixed = pd.DataFrame({"term": fe.index, "estimate": fe.to_numpy(), "se": se.to_numpy()})
    fixed["z"] = fixed["estimate"] / fixed["se"]
    fixed["p_value"] = 2 * stats.norm.sf(np.abs(fixed["z"]))
    fixed["lower"] = fixed["estimate"] - z * fixed["se"]
    fixed["upper"] = fixed["estimate"] + z * fixed["se"]
    return TrajectoryResult(
        fixed=fixed, intercept_variance=float(fit.cov_re.iloc[0, 0]),
        residual_variance=float(fit.scale), log_likelihood=float(fit.llf), reml=reml,
        n_patients=int(frame["patient"].nunique()), n_observations=len(frame),
        floor=used_floor, formula=formula)


def visits_in_study_order(values: pd.Series) -> list:
    """The visits in study order: numbers (days, months) by value; labels ("pre", "M1",
    "M3", "M12") by a categorical's order, else as they first appear (a cohort's long
    form lists them in its visit order), never alphabetically ("M12" before "M3")."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [c for c in values.cat.categories if c in set(values)]
    unique = pd.unique(values.dropna())
    numbers = pd.to_numeric(pd.Series(unique), errors="coerce")
    return sorted(unique) if numbers.notna().all() else list(unique)


def visit_summary(data: pd.DataFrame, value: str, *, visit: str = "visit",
                  group: str | None = None) -> pd.DataFrame:
    """Per-visit (and group) ``n``, ``median``, ``q1``, ``q3`` (linear interpolation,
    R's type 7), visits in study order (``visits_in_study_order``)."""
    what = "visit_summary"
    require_columns(data, [value, visit, group], what)
    keys = [visit] if group is None else [group, visit]
    frame = data[keys].copy()
    frame["_v"] = numeric(data, value, what, allow_nan=True)
    out = frame.groupby(keys, sort=False, observed=True)["_v"].agg(
        n="count", median="median", q1=lambda s: s.quantile(0.25),
        q3=lambda s: s.quantile(0.75)).reset_index()
    rank = {v: i for i, v in enumerate(visits_in_study_order(data[visit]))}
    out["_rank"] = out[visit].map(rank)
    return out.sort_values([*([group] if group else []), "_rank"], kind="stable") \
        .drop(columns="_rank").reset_index(drop=True)


def change_from_baseline(data: pd.DataFrame, value: str, *, patient: str = "patient",
                         visit: str = "visit", baseline: float | str = 0, log: bool = True,
                         floor: float | None = None) -> pd.DataFrame:
    """Paired change from the baseline visit at each later visit. Visits are numbers
    (days, months) or labels ("pre", "M3", as a cohort's long form has them; ``baseline``
    then names one), taken in study order (``visits_in_study_order``).

    Columns: ``visit``, ``n`` (patients with both visits), ``median_change``,
    ``statistic`` (Wilcoxon V, the sum of positive ranks), ``p_value``,
    ``method``. The signed-rank p-value is exact (the full permutation
    distribution) unless differences are tied or zero, where the normal
    approximation with continuity correction is used, as R does.
    """
    what = "change_from_baseline"
    require_columns(data, [value, patient, visit], what)
    y = numeric(data, value, what)
    if log:
        y, _ = log_counts(y, floor)
    # numbered visits (days, months) or labelled ones ("pre", "M3"), in study order
    labels = pd.to_numeric(data[visit], errors="coerce").isna().any()
    visits = data[visit].to_numpy() if labels else numeric(data, visit, what)
    order = visits_in_study_order(data[visit]) if labels else None
    wide = pd.DataFrame({"p": data[patient].to_numpy(), "v": visits,
                         "y": y}).pivot_table(index="p", columns="v", values="y")
    if baseline not in wide.columns:
        raise AnalysisError(f"{what}: no row has {visit!r} == {baseline!r} (the baseline "
                            "visit); set baseline= to the pre-treatment visit (a number, or "
                            f"a label such as 'pre'; the visits are: "
                            f"{', '.join(map(str, visits_in_study_order(data[visit])))})")
    rows = []
    for v in (order if labels else wide.columns):
        if v == baseline or v not in wide.columns:
            continue
        pair = wide[[baseline, v]].dropna()
        diff = (pair[v] - pair[baseline]).to_numpy()
        n = len(diff)
        nz = diff[diff != 0]
        if len(nz) == 0:
            rows.append((v, n, 0.0, np.nan, np.nan, "no change"))
            continue
        exact = len(nz) == n and len(np.unique(np.abs(nz))) == len(nz)
        method = "exact" if exact else "normal approximation, continuity corrected"
        res = stats.wilcoxon(diff, method="exact" if exact else "approx",
                             correction=not exact, zero_method="wilcox")
        ranks = stats.rankdata(np.abs(nz))
        v_stat = float(ranks[nz > 0].sum())
        rows.append((v, n, float(np.median(diff)), v_stat, float(res.pvalue), method))
    return pd.DataFrame(rows, columns=["visit", "n", "median_change", "statistic",
                                       "p_value", "method"])


