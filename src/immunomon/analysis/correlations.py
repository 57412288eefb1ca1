"""Small-sample association tests: Spearman with permutation p-values,
Benjamini-Hochberg within declared families, exact Fisher, exact Wilcoxon,
Clopper-Pearson intervals.

With 13 patients asymptotic p-values are unreliable and many correlations are
examined at once; every p-value here is exact or a permutation p-value at a
fixed seed (reproducible), and false discoveries are controlled within each
family of questions declared in advance rather than across everything looked at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ._checks import check_conf_level, numeric, require_columns

__all__ = ["SpearmanResult", "spearman", "benjamini_hochberg", "correlations",
           "FisherResult", "fisher_exact", "WilcoxonResult", "wilcoxon_rank_sum",
           "clopper_pearson"]

SEED = 20240607
EXACT_LIMIT = 50_000  # enumerate all n! pairings up to n = 8


@dataclass(frozen=True)
class SpearmanResult:
    rho: float
    p_value: float
    n: int
    method: str  # "exact permutation" or "Monte Carlo permutation (k resamples, seed s)"


def spearman(x, y, *, n_permutations: int = 9999, seed: int = SEED) -> SpearmanResult:
    """Spearman's rho with a two-sided permutation p-value.

    Pairs with a missing value are dropped. Up to n = 8 every pairing is
    enumerated (exact, equal to R's ``cor.test(method="spearman", exact=TRUE)``
    without ties); beyond, ``n_permutations`` random pairings at ``seed`` give
    p = (b + 1) / (n_permutations + 1) (Phipson and Smyth 2010). Ties get
    average ranks and the permutation distribution stays valid with them.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise AnalysisError("spearman: x and y must have the same length")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 3:
        raise AnalysisError(f"spearman: {n} complete pairs; at least 3 are needed")
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        raise AnalysisError("spearman: a variable is constant; its correlation is undefined")

    def rho(a, axis=-1):
        a = a - a.mean(axis=axis, keepdims=True)
        b = rx - rx.mean()
        return (a * b).sum(axis=axis) / np.sqrt((a ** 2).sum(axis=axis) * (b ** 2).sum())

    exact = math.factorial(n) <= EXACT_LIMIT
    res = stats.permutation_test(
        (ry,), rho, permutation_type="pairings", vectorized=True,
        n_resamples=np.inf if exact else n_permutations, alternative="two-sided",
        rng=np.random.default_rng(seed))
    method = ("exact permutation" if exact else
              f"Monte Carlo permutation ({n_permutations} resamples, seed {seed})")
    return SpearmanResult(float(res.statistic), float(min(res.pvalue, 1.0)), n, method)


def benjamini_hochberg(p_values, families=None) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), within each family.

    ``families``: labels of the same length (None: one family). NaN p-values
    stay NaN and do not count towards the number of tests.
    """
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if ((p[~np.isnan(p)] < 0) | (p[~np.isnan(p)] > 1)).any():
        raise AnalysisError("benjamini_hochberg: p-values must lie in [0, 1]")
    fam = np.zeros(len(p)) if families is None else np.asarray(families, dtype=object)
    if len(fam) != len(p):
        raise AnalysisError("benjamini_hochberg: families must match the p-values in length")
    q = np.full(len(p), np.nan)
    for f in pd.unique(fam):
        m = (fam == f) & ~np.isnan(p)
        if m.any():
            q[m] = multipletests(p[m], method="fdr_bh")[1]
    return q


def correlations(data: pd.DataFrame, pairs: Sequence[tuple[str, str]] | None = None, *,
                 families: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                 n_permutations: int = 9999, seed: int = SEED) -> pd.DataFrame:
    """Spearman correlations for declared pairs of columns, BH within families.

    Give either ``pairs`` (one family called "all") or ``families``: name ->
    list of (x, y) column pairs, declared before looking at the data. Returns
    ``family``, ``x``, ``y``, ``n``, ``rho``, ``p_value``, ``q_value``, ``method``.
    """
    what = "correlations"
    if (pairs is None) == (families is None):
        raise AnalysisError(f"{what}: give either pairs= or families=")
    declared = {"all": list(pairs)} if pairs is not None else dict(families)
    rows = []
    for fam, fam_pairs in declared.items():
        for x, y in fam_pairs:
            require_columns(data, [x, y], what)
            r = spearman(numeric(data, x, what, allow_nan=True),
                         numeric(data, y, what, allow_nan=True),
                         n_permutations=n_permutations, seed=seed)
            rows.append({"family": fam, "x": x, "y": y, "n": r.n, "rho": r.rho,
                         "p_value": r.p_value, "method": r.method})
    out = pd.DataFrame(rows)
    out.insert(6, "q_value", benjamini_hochberg(out["p_value"], out["family"]))
    return out


@dataclass(frozen=True)
class FisherResult:
    odds_ratio: float   # conditional maximum-likelihood estimate
    lower: float
    upper: float
    p_value: float
    conf_level: float


def fisher_exact(table, conf_level: float = 0.95) -> FisherResult:
    """Fisher's exact test on a 2x2 table with the conditional-MLE odds ratio.

    The conditional MLE (from the noncentral hypergeometric distribution) and
    its exact interval are what R's ``fisher.test`` reports; the sample odds
    ratio ad/bc is infinite whenever a cell is 0, which happens all the time
    with 13 patients. Uses scipy.stats.contingency.odds_ratio.
    """
    from scipy.stats.contingency import odds_ratio

    conf_level = check_conf_level(conf_level)
    t = np.asarray(table)
    if t.shape != (2, 2) or (t < 0).any() or (t != np.round(t)).any():
        raise AnalysisError("fisher_exact: expected a 2x2 table of non-negative counts")
    t = t.astype(int)
    res = odds_ratio(t, kind="conditional")
    ci = res.confidence_interval(confidence_level=conf_level)
    p = stats.fisher_exact(t).pvalue
    return FisherResult(float(res.statistic), float(ci.low), float(ci.high), float(p),
                        conf_level)


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float  # W (Mann-Whitney U of the first sample), as R reports
    p_value: float
    method: str


def wilcoxon_rank_sum(x, y) -> WilcoxonResult:
    """Two-sample Wilcoxon rank-sum test, exact without ties (as R's wilcox.test).

    With ties the exact null distribution of the plain statistic does not
    apply; the normal approximation with continuity correction is used and
    named in ``method``.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        raise AnalysisError("wilcoxon_rank_sum: each group needs at least one value")
    ties = len(np.unique(np.r_[x, y])) < len(x) + len(y)
    method = "asymptotic" if ties else "exact"
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method=method,
                             use_continuity=True)
    name = "normal approximation, continuity corrected" if ties else "exact"
    return WilcoxonResult(float(res.statistic), float(res.pvalue), name)


def clopper_pearson(successes: int, n: int, conf_level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a proportion, e.g. grade 3-4 GVHD in 13."""
    conf_level = check_conf_level(conf_level)
    if n <= 0 or not 0 <= successes <= n:
        raise AnalysisError(f"clopper_pearson: need 0 <= successes <= n and n > 0, got "
                            f"{successes}/{n}")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=conf_level,
                                                                 method="exact")
    return float(ci.low), float(ci.high)
