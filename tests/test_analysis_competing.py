"""Competing risks against R's cmprsk and survival packages.

Reference numbers: tests/reference/competing.R (R 4.2, cmprsk 2.2-11, survival 3.5-3)
on Scrucca, Santucci and Aversa (2007) bmt data (as shipped in scikit-survival,
data/scrucca_bmt.csv) and KMsurv's bone-marrow transplant data (relapse vs death
in remission).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import (cause_specific_cox, cumulative_incidence, fine_gray,
                                finegray_expand, grays_test)
from immunomon.errors import AnalysisError

DATA = Path(__file__).parent / "reference" / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def scrucca():
    return pd.read_csv(DATA / "scrucca_bmt.csv")


@pytest.fixture(scope="module")
def kmsurv():
    k = pd.read_csv(DATA / "kmsurv_bmt.csv")
    k["status"] = np.where(k.d2 == 1, 1, np.where(k.d1 == 1, 2, 0))
    k["aml_low"] = (k.group == 2).astype(int)
    k["aml_high"] = (k.group == 3).astype(int)
    return k


def test_cuminc_by_group_scrucca(scrucca):
    res = cumulative_incidence(scrucca, "ftime", "status", group="dis", times=[5, 10, 20, 40])
    got = res.at_times.set_index(["group", "cause", "time"])
    # timepoints(cuminc(ftime, status, dis), c(5, 10, 20, 40)): est and var
    est = {(0, 1): [0.1176470588235, 0.117647058824, 0.176470588235, 0.176470588235],
           (1, 1): [0.2951388888889, 0.368185763889, 0.368185763889, 0.368185763889],
           (0, 2): [0.2941176470588, 0.470588235294, 0.588235294118, 0.705882352941],
           (1, 2): [0.0555555555556, 0.205707465278, 0.205707465278, 0.205707465278]}
    var = {(0, 1): [0.00648981161092, 0.00648981161092, 0.00934416887232, 0.00934416887232],
           (1, 1): [0.01317537071660, 0.01601104600598, 0.01601104600598, 0.01601104600598],
           (0, 2): [0.01306141878383, 0.01595494992793, 0.01604647774514, 0.01458490635906],
           (1, 2): [0.00308641975309, 0.01335837935596, 0.01335837935596, 0.01335837935596]}
    for key in est:
        sub = got.loc[key]
        np.testing.assert_allclose(sub.incidence, est[key], atol=TOL)
        np.testing.assert_allclose(sub.variance, var[key], atol=TOL)
    tests = res.tests.set_index("cause")
    assert tests.loc[1, "statistic"] == pytest.approx(1.30163454362, abs=TOL)
    assert tests.loc[1, "p_value"] == pytest.approx(0.25391487115769, abs=TOL)
    assert tests.loc[2, "statistic"] == pytest.approx(7.08227802511, abs=TOL)


def test_cuminc_overall_and_log_log_interval(scrucca):
    res = cumulative_incidence(scrucca, "ftime", "status", times=[1, 3, 8, 13, 30])
    got = res.at_times.set_index(["cause", "time"])
    np.testing.assert_allclose(
        got.loc[1].incidence, [0.0571428571429, 0.145812807882, 0.237711636379,
                               0.272838987812, 0.272838987812], atol=TOL)
    np.testing.assert_allclose(
        got.loc[2].variance, [0.00158467794831, 0.00303080685843, 0.00618055151008,
                              0.00782134271776, 0.00860477637831], atol=TOL)
    # The interval is F^exp(+-z sd/(F log F)); check it at one point by hand.
    f, v = 0.237711636379, 0.00559737421329
    half = 1.959963984540054 * np.sqrt(v) / (f * np.log(f))
    row = got.loc[(1, 8)]
    assert row.lower == pytest.approx(f ** np.exp(-half), abs=TOL)
    assert row.upper == pytest.approx(f ** np.exp(half), abs=TOL)
    assert 0 < row.lower < f < row.upper < 1
    assert res.tests is None


def test_cuminc_three_groups_kmsurv(kmsurv):
    res = cumulative_incidence(kmsurv, "t2", "status", group="group", times=[100, 365, 1000])
    got = res.at_times.set_index(["group", "cause", "time"])
    np.testing.assert_allclose(got.loc[(1, 1)].incidence,
                               [0.0526315789474, 0.2379862700229, 0.324288983328], atol=TOL)
    np.testing.assert_allclose(got.loc[(3, 2)].incidence,
                               [0.1111111111111, 0.2666666666667, 0.288888888889], atol=TOL)
    np.testing.assert_allclose(got.loc[(3, 1)].variance,
                               [0.00365458208211, 0.00527396485742, 0.00579213656180], atol=TOL)
    np.testing.assert_allclose(got.loc[(2, 2)].variance,
                               [0.00186533094665, 0.00238525244825, 0.00346529988325], atol=TOL)
    tests = res.tests.set_index("cause")
    assert tests.loc[1, "statistic"] == pytest.approx(11.92288204859, abs=TOL)
    assert tests.loc[1, "df"] == 2
    assert tests.loc[2, "statistic"] == pytest.approx(0.13741078327, abs=TOL)


def test_grays_test_rho_and_strata(scrucca, kmsurv):
    r = grays_test(scrucca, "ftime", "status", "dis", cause=1, rho=1)
    assert r.statistic == pytest.approx(1.14643645169, abs=TOL)
    r = grays_test(scrucca, "ftime", "status", "dis", cause=2, rho=1)
    assert r.statistic == pytest.approx(6.44094489065, abs=TOL)
    assert r.p_value == pytest.approx(0.0111519312608, abs=TOL)
    r = grays_test(kmsurv, "t2", "status", "group", cause=1, strata="z8")
    assert r.statistic == pytest.approx(10.515070078546, abs=TOL)
    assert r.p_value == pytest.approx(0.00520812673719, abs=TOL)
    r = grays_test(kmsurv, "t2", "status", "group", cause=2, strata="z8")
    assert r.statistic == pytest.approx(0.124145555586, abs=TOL)


def test_fine_gray_matches_finegray_coxph(kmsurv):
    res = fine_gray(kmsurv, "t2", "status", ["aml_low", "aml_high", "z1"], cause=1,
                    method="finegray")
    t = res.coefficients
    # coxph(Surv(fgstart, fgstop, fgstatus) ~ ..., weights = fgwt, data = finegray(...))
    np.testing.assert_allclose(t.coef, [-0.8127903256, 0.4973316168, 0.0016902543], atol=TOL)
    np.testing.assert_allclose(t.se, [0.4508189338, 0.3799219093, 0.0164786992], atol=TOL)
    assert res.log_likelihood_null == pytest.approx(-199.2927831288, abs=TOL)
    assert res.log_likelihood == pytest.approx(-193.2106337423, abs=TOL)
    assert res.score.statistic == pytest.approx(12.2391371424, abs=TOL)


def test_fine_gray_matches_crr_with_its_sandwich_variance(kmsurv):
    """The default: cmprsk::crr's estimate and variance (competing.R, section 3:
    crr(k$t2, k$status, cbind(aml_low, aml_high, z1)), gtol 1e-10)."""
    res = fine_gray(kmsurv, "t2", "status", ["aml_low", "aml_high", "z1"], cause=1)
    t = res.coefficients
    np.testing.assert_allclose(t.coef, [-0.8130870159, 0.4964642595, 0.0017354494], atol=TOL)
    np.testing.assert_allclose(t.se, [0.4537010517, 0.4006341514, 0.0177838720], atol=TOL)
    z = 1.959963984540054
    np.testing.assert_allclose(t.hr_lower, np.exp(t.coef - z * t.se), rtol=1e-12)
    assert res.log_likelihood == pytest.approx(-193.2227088575, abs=TOL)
    assert res.log_likelihood_null == pytest.approx(-199.3001632361, abs=TOL)
    # crr(..., maxiter = 0): score' solve(inf, score) at 0
    assert res.score.statistic == pytest.approx(12.2276964561, abs=TOL)
    assert any("sandwich" in n for n in res.notes)


def test_fine_gray_scrucca(scrucca):
    res = fine_gray(scrucca, "ftime", "status", "dis", cause=1, method="finegray")
    assert res.coefficients.coef[0] == pytest.approx(0.7926407698, abs=TOL)
    assert res.coefficients.se[0] == pytest.approx(0.7117445915, abs=TOL)
    assert res.log_likelihood == pytest.approx(-29.6704485891, abs=TOL)
    assert res.score.statistic == pytest.approx(1.3038522306, abs=TOL)
    res = fine_gray(scrucca, "ftime", "status", "dis", cause=1)
    # crr(b$ftime, b$status, b$dis): coef, robust se, pseudo log-likelihoods
    assert res.coefficients.coef[0] == pytest.approx(0.7651702848, abs=TOL)
    assert res.coefficients.se[0] == pytest.approx(0.6987902101, abs=TOL)
    assert res.log_likelihood == pytest.approx(-29.8586520991, abs=TOL)
    assert res.log_likelihood_null == pytest.approx(-30.4724942778, abs=TOL)
    assert res.score.statistic == pytest.approx(1.2086651141, abs=TOL)


def test_fine_gray_method_is_checked(scrucca):
    with pytest.raises(AnalysisError, match="method"):
        fine_gray(scrucca, "ftime", "status", "dis", method="coxph")


def test_finegray_weights_follow_censoring_km():
    data = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6], "s": [2, 0, 1, 0, 1, 0]})
    ex = finegray_expand(data, "t", "s", cause=1)
    comp = ex[ex.fgid == 0]
    # G: censored at 2 (5 at risk) and 4 (3 at risk) -> G(2) = 4/5, G(4) = 4/5 * 2/3.
    np.testing.assert_allclose(comp.fgstart, [0, 2, 4])
    np.testing.assert_allclose(comp.fgstop, [1, 4, 6])
    np.testing.assert_allclose(comp.fgwt, [1, 0.8, 0.8 * 2 / 3])
    assert ex.fgstatus.sum() == 2


def test_cause_specific_cox(kmsurv):
    res = cause_specific_cox(kmsurv, "t2", "status", ["aml_low", "aml_high", "z1"], cause=1)
    np.testing.assert_allclose(res.coefficients.coef,
                               [-0.9032086018, 0.5964642400, 0.0016682050], atol=TOL)
    np.testing.assert_allclose(res.coefficients.se,
                               [0.4527547435, 0.3917082363, 0.0173973128], atol=TOL)
    assert res.log_likelihood == pytest.approx(-182.2869827250, abs=TOL)
    assert res.score.statistic == pytest.approx(16.5060364648, abs=TOL)


def test_errors(scrucca):
    with pytest.raises(AnalysisError, match="'status'"):
        cumulative_incidence(scrucca.assign(status=-1), "ftime", "status")
    with pytest.raises(AnalysisError, match="single group"):
        grays_test(scrucca.assign(g=1), "ftime", "status", "g")
    with pytest.raises(AnalysisError, match="no events of cause 3"):
        grays_test(scrucca, "ftime", "status", "dis", cause=3)


def test_fine_gray_without_events_of_its_cause_names_the_analysts_column():
    data = pd.DataFrame({"days": [100.0, 200.0, 300.0, 400.0], "status": [1, 0, 1, 0],
                         "x": [0, 1, 0, 1]})
    with pytest.raises(AnalysisError, match="fine_gray: no event of cause 2 in column "
                                            "'status'"):
        fine_gray(data, "days", "status", ["x"], cause=2)
