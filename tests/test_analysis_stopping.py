"""The Bayesian stopping rule against an independent computation in R.

tests/reference/stopping.R computes the boundary with pbeta and the operating
characteristics by enumerating all 2^N outcome sequences; the numbers below are
its output.
"""

import numpy as np
import pytest

from immunomon import AnalysisError
from immunomon.analysis.stopping import (StoppingRule, boundaries, monitor,
                                         operating_characteristics, posterior_probability)

DEMO = StoppingRule(p0=0.3, threshold=0.9, prior=(0.6, 1.4), max_patients=13)
# R: boundary(0.3, 0.9, 0.6, 1.4, 13)
DEMO_BOUNDARY = [np.nan, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7]
# R: n, stop_at, P(p > 0.3 | stop_at of n), P(p > 0.3 | stop_at - 1 of n)
DEMO_POSTERIORS = {2: (0.9279436189, 0.6292130219), 3: (0.9762001, 0.8383244398),
                   4: (0.9348374019, 0.7337687309), 7: (0.9014245198, 0.7170219686),
                   13: (0.9499852154, 0.8650637675)}
# R: oc_enum(boundary, 13, rate) -> P(stop), P(stop before patient 13), E[N]
DEMO_OC = {0.1: (0.01357482235, 0.01357482235, 12.86389617641),
           0.2: (0.07846107955, 0.07846107955, 12.31847103693),
           0.3: (0.2316582637, 0.2316582637, 11.1940697740),
           0.4: (0.4650400645, 0.4650400645, 9.5213248225),
           0.5: (0.7097167969, 0.7097167969, 7.5734863281)}
SECOND = StoppingRule(p0=0.2, threshold=0.8, prior=(1, 1), max_patients=10)
SECOND_BOUNDARY = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
SECOND_OC = {0.1: (0.3026431198, 0.2969035570, 7.7167989730),
             0.3: (0.7936201242, 0.7669373310, 4.2143149990)}


def test_boundaries_match_r():
    b = boundaries(DEMO)
    np.testing.assert_array_equal(b["stop_at"].to_numpy(), DEMO_BOUNDARY)
    for n, (at, below) in DEMO_POSTERIORS.items():
        row = b.set_index("n").loc[n]
        assert row["posterior_at_stop"] == pytest.approx(at, abs=1e-9)
        assert row["posterior_below"] == pytest.approx(below, abs=1e-9)
    np.testing.assert_array_equal(boundaries(SECOND)["stop_at"].to_numpy(), SECOND_BOUNDARY)
    # by hand: Beta(1,1) prior, 1 event in 1 patient -> Beta(2,1); P(p > 0.2) = 1 - 0.2^2
    assert posterior_probability(1, 1, SECOND) == pytest.approx(0.96, abs=1e-12)


@pytest.mark.parametrize("rule,expect", [(DEMO, DEMO_OC), (SECOND, SECOND_OC)])
def test_operating_characteristics_exact_and_simulated(rule, expect):
    oc = operating_characteristics(rule, sorted(expect), n_sim=20000, seed=1).set_index(
        "true_rate")
    for rate, (p_stop, p_early, en) in expect.items():
        row = oc.loc[rate]
        assert row["p_stop"] == pytest.approx(p_stop, abs=1e-9)
        assert row["p_stop_early"] == pytest.approx(p_early, abs=1e-9)
        assert row["expected_n"] == pytest.approx(en, abs=1e-8)
        # the simulation agrees within 4 binomial standard errors
        se = np.sqrt(p_stop * (1 - p_stop) / 20000)
        assert abs(row["sim_p_stop"] - p_stop) < 4 * se + 1e-12
        assert abs(row["sim_expected_n"] - en) < 0.1


def test_monitor_an_observed_sequence():
    # events at patients 2, 3 and 5: 2 of 3 by patient 3 (boundary 3): not yet;
    # 3 of 5 at patient 5 (boundary 4): not yet; 4 of 6 at patient 6: stop
    seq = monitor([0, 1, 1, 0, 1, 1, 0], DEMO, ids=list("ABCDEFG"))
    assert seq["events"].tolist() == [0, 1, 2, 2, 3, 4, 4]
    assert seq["crossed"].tolist() == [False, False, False, False, False, True, True]
    assert seq.loc[seq["stop"], "patient_id"].tolist() == ["F"]
    assert seq["posterior"].iloc[5] == pytest.approx(
        float(posterior_probability(4, 6, DEMO)), abs=1e-15)
    assert not monitor([0, 0, 0], DEMO)["stop"].any()


def test_bad_rules_are_refused():
    with pytest.raises(AnalysisError, match="p0"):
        StoppingRule(p0=1.2)
    with pytest.raises(AnalysisError, match="prior"):
        StoppingRule(prior=(0, 1))
    with pytest.raises(AnalysisError, match="0/1"):
        monitor([0, 2], DEMO)
