"""Kaplan-Meier, log-rank and reverse-KM follow-up against R's survival package.

Reference numbers: tests/reference/survival.R (R 4.2, survival 3.5-3), run on the
datasets in tests/reference/data (lifelines' Waltons flies; KMsurv's bone-marrow
transplant data, Klein and Moeschberger 2003).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import kaplan_meier, logrank, median_followup
from immunomon.errors import AnalysisError

DATA = Path(__file__).parent / "reference" / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def waltons():
    return pd.read_csv(DATA / "waltons.csv")


@pytest.fixture(scope="module")
def bmt():
    return pd.read_csv(DATA / "kmsurv_bmt.csv")


def test_km_at_times_matches_survfit_loglog(waltons):
    res = kaplan_meier(waltons, "T", "E", group="group", times=[10, 30, 50, 60])
    got = res.at_times.set_index(["group", "time"])
    # summary(survfit(..., conf.type="log-log"), times=...): n.risk, surv, std.err, lower, upper
    ref = {
        ("control", 10): (127, 0.9922480620155, 0.00772183325724, 0.94625211058914, 0.9989043865506),
        ("control", 30): (126, 0.9844350851492, 0.01092031865317, 0.93919920588101, 0.9960845048946),
        ("control", 50): (97, 0.7650764584659, 0.03752758409917, 0.68151323093192, 0.8294379926464),
        ("control", 60): (63, 0.3785945361481, 0.04305009830883, 0.29469924007432, 0.4620222923387),
        ("miR-137", 10): (30, 0.8823529411765, 0.05525508450751, 0.71626924310971, 0.9541389989021),
        ("miR-137", 30): (8, 0.2352941176471, 0.07274669910598, 0.11085714965490, 0.3860317880166),
        ("miR-137", 50): (2, 0.0588235294118, 0.04035260826883, 0.01052676442607, 0.1715789277680),
    }
    for key, (n, s, se, lo, hi) in ref.items():
        row = got.loc[key]
        assert row.n_risk == n
        np.testing.assert_allclose([row.survival, row.std_err, row.lower, row.upper],
                                   [s, se, lo, hi], atol=TOL)


def test_km_table_and_medians(waltons):
    res = kaplan_meier(waltons, "T", "E", group="group")
    ctrl = res.table[res.table.group == "control"].head(8)
    np.testing.assert_array_equal(ctrl.time, [7, 17, 32, 33, 38, 41, 45, 48])
    np.testing.assert_array_equal(ctrl.n_risk, [129, 127, 126, 125, 124, 122, 115, 105])
    np.testing.assert_array_equal(ctrl.n_event, [1, 1, 1, 1, 2, 7, 9, 8])
    np.testing.assert_allclose(
        ctrl.lower, [0.946252110589, 0.939199205881, 0.929275821332, 0.919031661668,
                     0.898761495783, 0.831612229893, 0.750883438495, 0.681513230932], atol=TOL)
    np.testing.assert_allclose(
        ctrl.upper, [0.998904386551, 0.996084504895, 0.992400061361, 0.988178309034,
                     0.978691239404, 0.939756373462, 0.883327395973, 0.829437992646], atol=TOL)
    med = res.medians.set_index("group")
    assert tuple(med.loc["control", ["n", "events", "median", "lower", "upper"]]) == (129, 122, 58, 56, 60)
    assert tuple(med.loc["miR-137", ["n", "events", "median", "lower", "upper"]]) == (34, 34, 26, 19, 29)


def test_km_three_groups_bmt(bmt):
    res = kaplan_meier(bmt, "t2", "d3", group="group", times=[100, 365, 730])
    got = res.at_times.set_index(["group", "time"])
    ref = {
        (1, 365): (20, 0.549199084668, 0.0812232143123, 0.378297251835, 0.691099756487),
        (2, 730): (33, 0.611111111111, 0.0663400779636, 0.468319293024, 0.726360134549),
        (3, 100): (32, 0.688888888889, 0.0690122352525, 0.531971966553, 0.802479787771),
        (3, 730): (11, 0.244444444444, 0.0640644394383, 0.131521254946, 0.375938810514),
    }
    for key, (n, s, se, lo, hi) in ref.items():
        row = got.loc[key]
        assert row.n_risk == n
        np.testing.assert_allclose([row.survival, row.std_err, row.lower, row.upper],
                                   [s, se, lo, hi], atol=TOL)
    med = res.medians.set_index("group")
    assert med.loc[1, "median"] == 418 and med.loc[1, "lower"] == 192
    assert np.isnan(med.loc[1, "upper"])
    assert tuple(med.loc[3, ["median", "lower", "upper"]]) == (183, 113, 390)


def test_median_is_midpoint_of_plateau_at_half():
    tiny = pd.DataFrame({"time": [1, 2, 3, 4, 5, 6], "event": [1, 1, 1, 0, 1, 0]})
    res = kaplan_meier(tiny, "time", "event", times=[0, 2.5, 5])
    med = res.medians.iloc[0]
    assert med["median"] == 4 and med["lower"] == 1 and np.isnan(med["upper"])
    np.testing.assert_allclose(res.at_times.survival, [1, 0.666666666667, 0.25], atol=TOL)
    np.testing.assert_allclose(res.at_times.lower, [1, 0.194616636806, 0.012309516475], atol=TOL)
    np.testing.assert_allclose(res.at_times.upper, [1, 0.904434164323, 0.645948537398], atol=TOL)
    np.testing.assert_array_equal(res.at_times.n_risk, [6, 4, 2])


def test_logrank_two_and_three_groups(waltons, bmt):
    res = logrank(waltons, "T", "E", "group")
    assert res.df == 1
    assert res.statistic == pytest.approx(122.2491255730, abs=TOL)
    np.testing.assert_allclose(res.groups.expected, [148.9244897, 7.0755103], atol=TOL)
    res = logrank(bmt, "t2", "d3", "group")
    assert res.df == 2
    assert res.statistic == pytest.approx(13.8037218872, abs=TOL)
    assert res.p_value == pytest.approx(0.0010059117, abs=TOL)
    np.testing.assert_array_equal(res.groups.observed, [24, 25, 34])
    np.testing.assert_allclose(res.groups.expected, [21.8517149088, 39.9661155064, 21.1821695848],
                               atol=TOL)


def test_median_followup_reverse_km(bmt):
    fu = median_followup(bmt, "t1", "d1")
    assert (fu.median, fu.lower, fu.upper) == (1499, 1363, 1674)


def test_errors_name_the_column(waltons):
    with pytest.raises(AnalysisError, match="'time'"):
        kaplan_meier(waltons, "time", "E")
    bad = waltons.assign(E=2)
    with pytest.raises(AnalysisError, match="0 .censored. or 1"):
        kaplan_meier(bad, "T", "E")
    with pytest.raises(AnalysisError, match="single group"):
        logrank(waltons.assign(g=1), "T", "E", "g")
