"""Counting-process data, time-varying Cox models and landmarks against R.

Reference numbers: tests/reference/timevarying.R (R 4.2, survival 3.5-3):
``tmerge`` for the counting-process rows (data/bmt_tmerge.csv) and
``coxph(Surv(start, stop, event) ~ ...)`` (Efron ties) for the models, on
KMsurv's bone-marrow transplant data (Klein and Moeschberger 2003) with seeded
visits and drug intervals, and on the Stanford heart transplant data
(lifelines.datasets.load_stanford_heart_transplants = R's survival::heart).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import counting_process, cox_time_varying, landmark
from immunomon.errors import AnalysisError

DATA = Path(__file__).parent / "reference" / "data"
TOL = 1e-4


@pytest.fixture(scope="module")
def bmt():
    b = pd.read_csv(DATA / "kmsurv_bmt.csv")
    b.insert(0, "id", np.arange(1, len(b) + 1))
    b["agvhd_day"] = np.where(b.da == 1, b.ta, np.nan)
    b["platelet_day"] = np.where(b.dp == 1, b.tp, np.nan)
    return b


@pytest.fixture(scope="module")
def bmt_rows(bmt):
    return counting_process(
        bmt, id="id", time="t2", event="d3", baseline=["group", "z1"],
        onsets={"agvhd": "agvhd_day", "platelet": "platelet_day"},
        intervals={"drug": pd.read_csv(DATA / "bmt_drug.csv")},
        measurements={"logcount": pd.read_csv(DATA / "bmt_visits.csv")})


def test_counting_process_equals_tmerge(bmt_rows):
    ref = pd.read_csv(DATA / "bmt_tmerge.csv")
    got = bmt_rows.rename(columns={"d3": "event"})
    assert len(got) == len(ref) == 783
    np.testing.assert_array_equal(got["id"], ref["id"])
    np.testing.assert_array_equal(got["start"], ref["tstart"])
    np.testing.assert_array_equal(got["stop"], ref["tstop"])
    for col in ["event", "group", "z1", "agvhd", "platelet", "drug"]:
        np.testing.assert_array_equal(got[col], ref[col], err_msg=col)
    np.testing.assert_allclose(got["logcount"], ref["logcount"], atol=1e-12)


def test_counting_process_with_dates_and_entry():
    day0 = pd.Timestamp("2024-01-10")
    patients = pd.DataFrame({"patient": ["A", "B"], "transplant": [day0, day0],
                             "last": [day0 + pd.Timedelta(days=100), day0 + pd.Timedelta(days=50)],
                             "relapse": [1, 0],
                             "gvhd": [day0 + pd.Timedelta(days=30), pd.NaT]})
    drug = pd.DataFrame({"patient": ["A", "A"], "start": [day0 + pd.Timedelta(days=10),
                                                         day0 + pd.Timedelta(days=60)],
                         "stop": [day0 + pd.Timedelta(days=40), pd.NaT]})
    rows = counting_process(patients, time="last", event="relapse", origin="transplant",
                            onsets={"gvhd": "gvhd"}, intervals={"len": drug})
    a = rows[rows.patient == "A"]
    np.testing.assert_array_equal(a.start, [0, 10, 30, 40, 60])
    np.testing.assert_array_equal(a.stop, [10, 30, 40, 60, 100])
    np.testing.assert_array_equal(a.gvhd, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(a.len, [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(a.relapse, [0, 0, 0, 0, 1])
    b = rows[rows.patient == "B"]
    assert list(b.start) == [0] and list(b.stop) == [50] and list(b.gvhd) == [0]


def _check_cox(res, coef, se, lower, upper, ll, lr, score, wald):
    t = res.coefficients
    np.testing.assert_allclose(t["coef"], coef, atol=TOL)
    np.testing.assert_allclose(t["se"], se, atol=TOL)
    np.testing.assert_allclose(t["hr_lower"], lower, atol=TOL)
    np.testing.assert_allclose(t["hr_upper"], upper, atol=TOL)
    np.testing.assert_allclose([res.log_likelihood_null, res.log_likelihood], ll, atol=TOL)
    assert res.likelihood_ratio.statistic == pytest.approx(lr, abs=TOL)
    assert res.score.statistic == pytest.approx(score, abs=TOL)
    assert res.wald.statistic == pytest.approx(wald, abs=TOL)


def test_cox_time_varying_gvhd(bmt_rows):
    res = cox_time_varying(bmt_rows, "agvhd", id="id", event="d3")
    _check_cox(res, [0.229387916311], [0.280057875269], [0.726500990343], [2.1777478913],
               [-373.2957496432, -372.9754704906], 0.6405583053, 0.6738207438, 0.6708809861)
    assert res.coefficients.p_wald[0] == pytest.approx(0.412744618245, abs=TOL)
    assert res.likelihood_ratio.p_value == pytest.approx(0.4235086990, abs=TOL)
    assert res.score.p_value == pytest.approx(0.4117226849, abs=TOL)
    assert not res.monotone_likelihood and res.converged
    assert res.n_events == 83 and res.n_patients == 137


def test_cox_time_varying_three_covariates(bmt_rows):
    res = cox_time_varying(bmt_rows, ["agvhd", "platelet", "drug"], id="id", event="d3")
    _check_cox(res, [0.021609475735, -1.288581434502, -0.127528169104],
               [0.291926328836, 0.345810575434, 0.339750415242],
               [0.576629337494, 0.139965724993, 0.452292245740],
               [1.810810556657, 0.542913560125, 1.713212749243],
               [-373.2957496432, -367.2655991445], 12.0603009974, 16.8136600517,
               15.2886470396)
    res = cox_time_varying(bmt_rows, "logcount", id="id", event="d3")
    assert res.coefficients.coef[0] == pytest.approx(0.00328060103394, abs=TOL)
    assert res.score.statistic == pytest.approx(0.0008970431, abs=TOL)


def test_cox_stanford_heart():
    from lifelines.datasets import load_stanford_heart_transplants
    h = load_stanford_heart_transplants()
    res = cox_time_varying(h, ["age", "year", "surgery", "transplant"], id="id")
    _check_cox(res, [0.0271666409577, -0.1463463456742, -0.6372098899670, -0.0102507724091],
               [0.0137141152103, 0.0704679795189, 0.3672259961803, 0.3137547983375],
               [1.000287510389, 0.752419663449, 0.257442311582, 0.535154987848],
               [1.055532958020, 0.991802143454, 1.086041936940, 1.830698031878],
               [-298.1213556730, -290.5656162185], 15.1114789090, 15.0341979130,
               14.4930452068)
    assert res.events_per_covariate == pytest.approx(75 / 4)


SEPARATED = pd.DataFrame({
    "patient": range(1, 14),
    "time": [40, 75, 120, 200, 365, 365, 90, 150, 365, 300, 365, 60, 250],
    "relapse": [1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0],
    "gvhd_day": [np.nan, np.nan, np.nan, np.nan, 30, 45, 100, np.nan, 60, np.nan, 25,
                 np.nan, 200]})


def test_separation_is_detected_and_wald_withheld():
    rows = counting_process(SEPARATED, event="relapse", onsets={"gvhd": "gvhd_day"})
    res = cox_time_varying(rows, "gvhd", event="relapse")
    assert res.monotone_likelihood and res.separated == ("gvhd",)
    assert not res.converged
    row = res.coefficients.iloc[0]
    assert row.hr == 0.0
    assert np.isnan(row.p_wald) and np.isnan(row.hr_upper) and np.isnan(res.wald.p_value)
    # R: coxph warns "beta may be infinite"; LR 10.3104330369, score 7.1759469719
    assert res.likelihood_ratio.statistic == pytest.approx(10.3104330369, abs=TOL)
    assert res.likelihood_ratio.p_value == pytest.approx(0.0013228024, abs=TOL)
    assert res.score.statistic == pytest.approx(7.1759469719, abs=TOL)
    assert res.score.p_value == pytest.approx(0.0073887437, abs=TOL)
    assert any("monotone likelihood" in n for n in res.notes)
    assert any("overfitted" in n for n in res.notes)  # 8 events, 1 covariate is still < 10


def test_no_separation_when_one_exposed_patient_relapses():
    data = SEPARATED.copy()
    data.loc[data.patient == 7, "gvhd_day"] = 50  # relapses on day 90 with GVHD
    rows = counting_process(data, event="relapse", onsets={"gvhd": "gvhd_day"})
    res = cox_time_varying(rows, "gvhd", event="relapse")
    assert not res.monotone_likelihood and np.isfinite(res.coefficients.p_wald[0])


def test_landmark_day_100(bmt):
    res = landmark(bmt, 100, id="id", time="t2", event="d3", onsets=["agvhd_day"])
    assert len(res.data) == 113 and res.n_excluded == 137 - 113
    _check_cox(res.cox, [0.0212671786036], [0.347106446154], [0.517343117362],
               [2.01694363148], [-257.3570189555, -257.3551507293], 0.0037364523,
               0.0037541398, 0.0037539985)
    assert res.logrank.statistic == pytest.approx(0.0035905488, abs=TOL)
    np.testing.assert_allclose(res.logrank.groups.expected, [49.1713503547, 9.8286496453],
                               atol=TOL)


def test_errors():
    with pytest.raises(AnalysisError, match="repeats patients"):
        counting_process(pd.concat([SEPARATED, SEPARATED]), event="relapse")
    with pytest.raises(AnalysisError, match="dates"):
        counting_process(SEPARATED.assign(time=pd.Timestamp("2024-01-01")), event="relapse")
    rows = counting_process(SEPARATED, event="relapse")
    with pytest.raises(AnalysisError, match="'gvhd'"):
        cox_time_varying(rows, "gvhd", event="relapse")


def test_a_landmark_with_no_event_after_it_says_so_in_the_analysts_words():
    """Four patients, the one relapse on day 136, a day-180 landmark: the message named an
    internal column; it now says the events lie before the landmark."""
    patients = pd.DataFrame({"patient": ["P01", "P02", "P03", "P04"],
                             "days": [373.0, 356.0, 136.0, 299.0], "relapse": [0, 0, 1, 0],
                             "agvhd": [np.nan, 23.0, np.nan, 25.0]})
    with pytest.raises(AnalysisError, match=r"landmark: no event in column 'relapse' after "
                                            r"day 180 \(1 on or before it"):
        landmark(patients, 180, time="days", event="relapse", id="patient", onsets=("agvhd",))
