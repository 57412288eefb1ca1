"""Firth-penalised Cox regression against R.

Reference numbers: tests/reference/firth.R (R 4.2, survival 3.5-3, coxphf 1.13.4).
Each case was computed twice in R, by ``coxphf::coxphf`` (convergence tightened to
1e-10) and by an independent penalised partial likelihood built on
``survival::coxph`` (Breslow ties) with ``optim``/``uniroot``; the two agree to
1e-8 and the numbers below are coxphf's (the weighted case, which coxphf cannot
fit, is the independent implementation's). Limits and coefficients are on the
log hazard ratio scale; ``chisq`` is the penalised likelihood-ratio statistic of
each coefficient, ``lr`` the one of the whole model.

The breast-cancer data are Heinze and Schemper's (2001) example, shipped with
coxphf (tests/data/firth/SOURCES.md).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis import counting_process, cox_time_varying
from immunomon.analysis.firth import firth_cox

DATA = Path(__file__).parent / "data" / "firth"
REF = Path(__file__).parent / "reference" / "data"
TOL = 1e-4


def _check(fit, coef, se, lower, upper, chisq, lr):
    np.testing.assert_allclose(fit.coef, coef, atol=TOL)
    np.testing.assert_allclose(fit.se, se, atol=TOL)
    np.testing.assert_allclose(fit.lower, lower, atol=TOL)
    np.testing.assert_allclose(fit.upper, upper, atol=TOL)
    np.testing.assert_allclose(fit.chi2, chisq, atol=TOL)
    assert fit.lr == pytest.approx(lr, abs=TOL)
    assert fit.converged


@pytest.fixture(scope="module")
def breast():
    return pd.read_csv(DATA / "breast.csv")


def test_breast_cancer_four_covariates(breast):
    # coxphf(Surv(TIME, CENS) ~ T + N + G + CD, data = breast)
    fit = firth_cox(breast[["T", "N", "G", "CD"]], np.zeros(len(breast)), breast["TIME"],
                    breast["CENS"])
    _check(fit, [1.2244388071, 0.9188881955, 2.4244141441, 0.3971180994],
           [0.4916044309, 0.4225733553, 1.4735463514, 0.4418553990],
           [0.3095018902, 0.1137350559, 0.3823107773, -0.4670204307],
           [2.2483595199, 1.7635077517, 7.2806599618, 1.2561240680],
           [6.9837727477, 5.0044092586, 6.0906542333, 0.8223209766], 35.9514203582)
    # coxphf's printed penalised log-likelihoods (standardised covariates)
    assert fit.loglik_penalised_null == pytest.approx(-107.2782236600, abs=TOL)
    assert fit.loglik_penalised == pytest.approx(-89.3025134809, abs=TOL)
    np.testing.assert_allclose(fit.p_penalised, [0.008225203505, 0.025282830500,
                                                 0.013589875707, 0.364502439660], atol=TOL)


def test_breast_cancer_one_covariate(breast):
    fit = firth_cox(breast[["CD"]], np.zeros(len(breast)), breast["TIME"], breast["CENS"])
    _check(fit, [1.1700101969], [0.3937299227], [0.4107880240], [1.9435205138],
           [8.9310154875], 8.9310154875)
    assert fit.loglik_penalised == pytest.approx(-107.6012415818, abs=TOL)


def test_counting_process_with_tied_stop_times():
    # coxphf's own example 'test2': delayed entry and three events tied at t = 9
    start = [1, 2, 5, 2, 1, 7, 3, 4, 8, 8]
    stop = [2, 3, 6, 7, 8, 9, 9, 9, 14, 17]
    event = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    x = np.array([[1, 0, 0, 1, 0, 1, 1, 1, 0, 0]]).T
    fit = firth_cox(x, start, stop, event)
    _check(fit, [-0.1213110702], [0.7920055509], [-1.5940189158], [1.4381607310],
           [0.0262119041], 0.0262119041)
    assert fit.loglik_penalised_null == pytest.approx(-8.5275426225, abs=TOL)


SEPARATED = pd.DataFrame({
    "patient": range(1, 14),
    "time": [40, 75, 120, 200, 365, 365, 90, 150, 365, 300, 365, 60, 250],
    "relapse": [1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0],
    "gvhd_day": [np.nan, np.nan, np.nan, np.nan, 30, 45, 100, np.nan, 60, np.nan, 25,
                 np.nan, 200],
    "age": [55, 61, 48, 66, 59, 52, 63, 47, 58, 60, 64, 51, 57]})


@pytest.fixture(scope="module")
def separated_rows():
    return counting_process(SEPARATED, event="relapse", onsets={"gvhd": "gvhd_day"},
                            baseline=["age"])


def test_separated_trial_through_cox_time_varying(separated_rows):
    """13 patients, no relapse after GVHD onset: the ML estimate is at 0, Firth's is not."""
    res = cox_time_varying(separated_rows, "gvhd", event="relapse")
    assert res.monotone_likelihood and res.firth is not None
    _check(res.firth, [-2.9732502923], [1.6443373673], [-7.8731925328], [-0.7380011300],
           [7.9294780318], 7.9294780318)
    assert res.firth.loglik_penalised_null == pytest.approx(-16.5451229421, abs=TOL)
    assert res.firth.loglik_penalised == pytest.approx(-12.5803839262, abs=TOL)
    row = res.coefficients.iloc[0]
    assert row.hr == 0.0                                   # the unpenalised fit, unchanged
    assert row.hr_firth == pytest.approx(np.exp(-2.9732502923), rel=TOL)
    assert row.hr_firth_lower == pytest.approx(np.exp(-7.8731925328), rel=TOL)
    assert row.hr_firth_upper == pytest.approx(np.exp(-0.7380011300), rel=TOL)
    assert row.p_firth == pytest.approx(0.0048637, abs=TOL)  # chi2 7.92943 on 1 df
    # the LR test of the unpenalised fit is still reported (R: 10.3104330369)
    assert res.likelihood_ratio.statistic == pytest.approx(10.3104330369, abs=TOL)


def test_separated_with_a_second_covariate(separated_rows):
    res = cox_time_varying(separated_rows, ["gvhd", "age"], event="relapse")
    assert res.separated == ("gvhd",)
    _check(res.firth, [-2.9966246015, -0.0342465993], [1.6584514252, 0.0586367574],
           [-7.8999146174, -0.1482039807], [-0.7498321175, 0.0774520787],
           [7.9647486649, 0.3782928161], 8.4436179593)


def test_weighted_rows_against_the_independent_r_fit():
    rows = pd.read_csv(REF / "firth_separated_rows.csv")
    fit = firth_cox(rows[["gvhd"]], rows["tstart"], rows["tstop"], rows["relapse"],
                    rows["w"])
    _check(fit, [WEIGHTED["coef"]], [WEIGHTED["se"]], [WEIGHTED["lower"]],
           [WEIGHTED["upper"]], [WEIGHTED["chisq"]], WEIGHTED["chisq"])


# firth_ref() with weights = w (tests/reference/firth.R, case 5)
WEIGHTED = {"coef": -2.5916828733, "se": 1.7561898906, "lower": -7.5178096962,
            "upper": -0.2063941793, "chisq": 4.6727372211}


def test_firth_only_where_needed_and_on_request(separated_rows):
    data = SEPARATED.copy()
    data.loc[data.patient == 7, "gvhd_day"] = 50     # one relapse with GVHD: not separated
    rows = counting_process(data, event="relapse", onsets={"gvhd": "gvhd_day"})
    near = cox_time_varying(rows, "gvhd", event="relapse")
    # censor that one relapse and the likelihood is monotone again: nearly separated
    assert not near.monotone_likelihood and near.nearly_separated
    assert near.firth is not None and np.isfinite(near.coefficients.hr.iloc[0])
    data.loc[data.patient.isin([1, 2]), "gvhd_day"] = [20, 30]   # two more relapses
    rows = counting_process(data, event="relapse", onsets={"gvhd": "gvhd_day"})
    plain = cox_time_varying(rows, "gvhd", event="relapse")
    assert not plain.nearly_separated and plain.firth is None
    assert np.isnan(plain.coefficients.hr_firth.iloc[0])
    asked = cox_time_varying(rows, "gvhd", event="relapse", firth=True)
    assert asked.firth is not None
    # Firth shrinks towards 0 relative to the ML estimate, never past it
    ml, pen = asked.coefficients.coef.iloc[0], asked.firth.coef[0]
    assert abs(pen) < abs(ml) and np.sign(pen) == np.sign(ml)


def test_a_fit_whose_newton_steps_overshoot_converges_to_the_analytic_maximum():
    """One event among four patients, two exposed: the penalised partial likelihood is
    0.5 beta - 2 log(1 + e^beta) + const, maximal at beta = -ln 3. Newton steps on the
    information overshot and came back for 100 iterations, ending 1.8e-4 short and
    unconverged; the step is now cut where the penalised score crosses zero."""
    X = np.array([[0.0], [1.0], [0.0], [1.0]])
    fit = firth_cox(X, np.zeros(4), np.array([373.0, 356.0, 136.0, 299.0]),
                    np.array([0, 0, 1, 0]))
    assert fit.converged
    assert fit.coef[0] == pytest.approx(-np.log(3.0), abs=1e-8)
