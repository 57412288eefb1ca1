"""Mixed models, per-visit summaries and change from baseline against R.

Reference numbers: tests/reference/trajectories.R (R 4.2, lme4 1.1-31): lmer on
lme4's sleepstudy (Belenky et al. 2003) and on a seeded 13-patient immune-count
table with zeros (data/immune_counts.csv); quantile(type = 7); wilcox.test(paired,
exact).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import change_from_baseline, log_counts, trajectories, visit_summary
from immunomon.errors import AnalysisError

DATA = Path(__file__).parent / "reference" / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def counts():
    return pd.read_csv(DATA / "immune_counts.csv")


def test_sleepstudy_reml_matches_lmer():
    s = pd.read_csv(DATA / "sleepstudy.csv")
    r = trajectories(s, "Reaction", patient="Subject", visit="Days", visit_as="linear",
                     log=False)
    np.testing.assert_allclose(r.fixed.estimate, [251.4051048485, 10.4672859596], atol=TOL)
    np.testing.assert_allclose(r.fixed.se, [9.7467162692, 0.8042214289], atol=TOL)
    # variances are large numbers: compare to 1e-4 relative to their size
    assert r.intercept_variance == pytest.approx(1378.1785138090, rel=1e-6)
    assert r.residual_variance == pytest.approx(960.4565785605, rel=1e-6)
    assert r.log_likelihood == pytest.approx(-893.2325426975, abs=TOL)


def test_immune_counts_visit_by_gvhd_reml(counts):
    r = trajectories(counts, "count", group="gvhd")
    assert r.floor == 3.0  # half the smallest positive count (6)
    np.testing.assert_allclose(
        r.fixed.estimate,
        [1.6917977952, 0.1808778057, -0.1355202397, 0.4274682414, 0.8048048898,
         0.2783542894, -0.2420628026, 0.3676250255, -0.0594160596, -0.4157842332], atol=TOL)
    np.testing.assert_allclose(
        r.fixed.se,
        [0.2689775669, 0.2643958201, 0.2773284939, 0.2643958201, 0.2643958201,
         0.3959242583, 0.3891801095, 0.3980792653, 0.4016038063, 0.4016038063], atol=TOL)
    assert r.intercept_variance == pytest.approx(0.2617744968, abs=TOL)
    assert r.residual_variance == pytest.approx(0.2446680239, abs=TOL)
    assert r.log_likelihood == pytest.approx(-56.1539340601, abs=TOL)
    assert r.n_patients == 13 and r.n_observations == 62


def test_immune_counts_linear_ml(counts):
    r = trajectories(counts, "count", group="gvhd", visit_as="linear", reml=False)
    np.testing.assert_allclose(r.fixed.estimate, [1.7186922620, 0.0018002057, 0.2020732566],
                               atol=TOL)
    np.testing.assert_allclose(r.fixed.se, [0.2075689883, 0.0004657059, 0.2919610403],
                               atol=TOL)
    assert r.intercept_variance == pytest.approx(0.2270106118, abs=TOL)
    assert r.log_likelihood == pytest.approx(-53.4682508387, abs=TOL)


def test_visit_summary_type7(counts):
    v = visit_summary(counts, "count").set_index("visit")
    ref = {0: (22, 61, 142), 30: (46, 63, 124), 90: (34.25, 74.5, 146.5),
           180: (62.75, 166.5, 332.5), 365: (130.25, 263.5, 628.5)}
    for visit, (q1, med, q3) in ref.items():
        np.testing.assert_allclose(v.loc[visit, ["q1", "median", "q3"]].to_numpy(float),
                                   [q1, med, q3], atol=TOL)


def test_change_from_baseline_exact_wilcoxon(counts):
    c = change_from_baseline(counts, "count").set_index("visit")
    for visit, n, stat, p, med in [(90, 12, 57, 0.1762695313, 0.1125934543),
                                   (365, 12, 68, 0.0209960938, 0.8331857787)]:
        row = c.loc[visit]
        assert row.n == n and row.statistic == stat and row.method == "exact"
        assert row.p_value == pytest.approx(p, abs=TOL)
        assert row.median_change == pytest.approx(med, abs=TOL)


def test_labelled_visits_keep_the_study_order_and_give_the_same_numbers(counts):
    # a cohort's long form names its visits ("pre", "M1", "M3", "M6", "M12"): they were
    # sorted as text (M1, M12, M3, ...), and change_from_baseline refused them
    names = {0: "pre", 30: "M1", 90: "M3", 180: "M6", 365: "M12"}
    labelled = counts.assign(visit=counts["visit"].map(names))
    by_label = visit_summary(labelled, "count")
    assert by_label["visit"].tolist() == ["pre", "M1", "M3", "M6", "M12"]
    by_day = visit_summary(counts, "count")
    np.testing.assert_allclose(by_label[["n", "q1", "median", "q3"]].to_numpy(float),
                               by_day[["n", "q1", "median", "q3"]].to_numpy(float))
    change = change_from_baseline(labelled, "count", baseline="pre")
    assert change["visit"].tolist() == ["M1", "M3", "M6", "M12"]
    numbered = change_from_baseline(counts, "count")
    np.testing.assert_allclose(change["p_value"].to_numpy(float),
                               numbered["p_value"].to_numpy(float))
    with pytest.raises(AnalysisError, match="the visits are: pre, M1, M3, M6, M12"):
        change_from_baseline(labelled, "count")


def test_log_counts_floor():
    logs, floor = log_counts([0, 10, 100], floor=1)
    np.testing.assert_allclose(logs, [0, 1, 2])
    assert floor == 1
    with pytest.raises(AnalysisError, match="every count is zero"):
        log_counts([0, 0])
    with pytest.raises(AnalysisError, match="baseline"):
        change_from_baseline(pd.DataFrame({"patient": [1], "visit": [5], "count": [3]}),
                             "count")


def test_trajectories_take_visit_labels_in_study_order():
    # a cohort's long form labels its visits ("pre", "M3"): the categorical model once
    # refused them ("column 'timepoint' must be numeric")
    rng = np.random.default_rng(1)
    steps = [("pre", 0), ("M1", 1), ("M3", 3), ("M12", 12)]
    rows = [{"patient": f"P{p}", "visit": label, "month": month,
             "count": 10 ** (base + 0.2 * i + rng.normal(0, 0.1))}
            for p, base in enumerate(rng.normal(2, 0.3, 8)) for i, (label, month) in
            enumerate(steps)]
    data = pd.DataFrame(rows)          # labels as they first appear: the study order
    by_label = trajectories(data, "count", visit="visit").fixed
    by_month = trajectories(data, "count", visit="month").fixed
    assert list(by_label["term"]) == ["Intercept", "C(visit)[T.M1]", "C(visit)[T.M3]",
                                      "C(visit)[T.M12]"]
    np.testing.assert_allclose(by_label["estimate"], by_month["estimate"], rtol=1e-8)
    with pytest.raises(AnalysisError, match="needs visits as numbers"):
        trajectories(data, "count", visit="visit", visit_as="linear")
