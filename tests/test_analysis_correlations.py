"""Spearman permutation tests, BH, Fisher, Wilcoxon and Clopper-Pearson against R.

Reference numbers: tests/reference/correlations.R (R 4.2, stats): cor.test
(spearman, exact), p.adjust("BH"), fisher.test, wilcox.test(exact), binom.test,
and the exact Fisher interval solved to full precision in R (fisher.test's own
uniroot stops at ~1e-4 on the log scale).
"""

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import (benjamini_hochberg, clopper_pearson, correlations,
                                fisher_exact, spearman, wilcoxon_rank_sum)
from immunomon.errors import AnalysisError

TOL = 1e-4
X = [12.1, 3.4, 8.8, 15.0, 6.2, 9.9, 1.7, 4.4]
Y = [80.5, 20.2, 70.1, 60.3, 40.9, 95.0, 10.4, 35.5]
Y2 = [30.5, 20.2, 70.1, 10.3, 40.9, 95.0, 60.4, 35.5]


def test_spearman_exact_permutation_equals_cor_test():
    r = spearman(X, Y)
    assert r.rho == pytest.approx(0.8333333333, abs=TOL)
    assert r.p_value == pytest.approx(0.0153769841, abs=TOL)
    assert r.method == "exact permutation"
    r = spearman(X, Y2)
    assert r.rho == pytest.approx(-0.1904761905, abs=TOL)
    assert r.p_value == pytest.approx(0.6645833333, abs=TOL)


def test_spearman_monte_carlo_is_reproducible_and_close():
    rng = np.random.default_rng(1)
    x = rng.normal(size=13)
    y = x + rng.normal(size=13)
    a = spearman(x, y)
    b = spearman(x, y)
    assert a.p_value == b.p_value and "seed" in a.method
    # the t approximation is a sanity check only (not a reference)
    from scipy.stats import spearmanr
    assert a.p_value == pytest.approx(spearmanr(x, y).pvalue, abs=0.03)


def test_benjamini_hochberg_within_families():
    pv = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    np.testing.assert_allclose(
        benjamini_hochberg(pv),
        [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.1057142857, 0.216, 0.216, 0.216], atol=TOL)
    np.testing.assert_allclose(
        benjamini_hochberg(pv, ["a"] * 4 + ["b"] * 6),
        [0.004, 0.016, 0.041, 0.041, 0.148, 0.148, 0.148, 0.216, 0.216, 0.216], atol=TOL)


def test_correlations_table():
    data = pd.DataFrame({"treg": X, "nk": Y, "chimerism": Y2})
    out = correlations(data, families={"immune": [("treg", "nk"), ("treg", "chimerism")]})
    assert list(out.columns) == ["family", "x", "y", "n", "rho", "p_value", "q_value", "method"]
    np.testing.assert_allclose(out.p_value, [0.0153769841, 0.6645833333], atol=TOL)
    np.testing.assert_allclose(out.q_value, [0.0307539683, 0.6645833333], atol=TOL)


@pytest.mark.parametrize("table, ref", [
    ([[3, 1], [1, 3]], (6.4083088670, 0.2117355954, 626.2435305888, 0.4857142857)),
    ([[1, 5], [6, 1]], (0.0506371658, 0.0006077269, 1.0010332806, 0.0291375291)),
    ([[0, 6], [5, 2]], (0.0, 0.0, 0.8257555395, 0.0209790210)),
    ([[10, 2], [3, 15]], (21.3053312750, 2.7533827882, 301.4623379715, 0.0005367241)),
])
def test_fisher_conditional_mle_and_exact_ci(table, ref):
    r = fisher_exact(table)
    est, lo, hi, p = ref
    assert r.odds_ratio == pytest.approx(est, abs=TOL, rel=1e-5)
    assert r.lower == pytest.approx(lo, abs=TOL)
    assert r.upper == pytest.approx(hi, rel=1e-6)
    assert r.p_value == pytest.approx(p, abs=TOL)


def test_wilcoxon_rank_sum_exact():
    a = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
    b = [0.878, 0.647, 0.598, 2.05, 1.07, 1.27, 1.06, 3.14, 1.31]
    r = wilcoxon_rank_sum(a, b)
    assert r.statistic == 57 and r.method == "exact"
    assert r.p_value == pytest.approx(0.1614973262, abs=TOL)


@pytest.mark.parametrize("k, n, lo, hi", [(0, 13, 0.0, 0.2470526380),
                                          (3, 13, 0.0503810735, 0.5381315392),
                                          (13, 13, 0.7529473620, 1.0),
                                          (7, 20, 0.1539092048, 0.5921885345)])
def test_clopper_pearson(k, n, lo, hi):
    np.testing.assert_allclose(clopper_pearson(k, n), [lo, hi], atol=TOL)


def test_errors():
    with pytest.raises(AnalysisError, match="2x2"):
        fisher_exact([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(AnalysisError, match="constant"):
        spearman([1, 1, 1, 1], [1, 2, 3, 4])
    with pytest.raises(AnalysisError):
        clopper_pearson(5, 3)
