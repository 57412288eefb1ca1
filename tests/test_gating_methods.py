"""Data-driven gate methods on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from immunomon.errors import GatingError
from immunomon.gating import methods
from immunomon.gating.datadriven import (ClusterGate, QuadrantThresholdGate, SingletGate,
                                         ThresholdGate)
from immunomon.gating.dimensions import Dimension

RNG = np.random.default_rng(11)
D = Dimension("x")


def bimodal(n_neg=20_000, n_pos=5_000, mu=(0.2, 0.7), sd=(0.05, 0.06)):
    return np.concatenate([RNG.normal(mu[0], sd[0], n_neg), RNG.normal(mu[1], sd[1], n_pos)])


def true_valley(mu, sd, w):
    """Where the two weighted normal densities cross: the optimal cut, by root finding."""
    from scipy.optimize import brentq
    f = lambda x: w[0] * stats.norm.pdf(x, mu[0], sd[0]) - w[1] * stats.norm.pdf(x, mu[1], sd[1])
    return brentq(f, mu[0], mu[1])


def test_density_threshold_finds_the_valley():
    x = bimodal()
    t = methods.density_threshold(x)
    assert not t.fell_back and len(t.peaks) == 2
    expected = true_valley((0.2, 0.7), (0.05, 0.06), (0.8, 0.2))
    assert abs(t.value - expected) < 0.03
    assert abs(t.peaks[0] - 0.2) < 0.02 and abs(t.peaks[1] - 0.7) < 0.02


def test_density_threshold_one_peak_falls_back_and_says_so():
    x = RNG.normal(0.3, 0.05, 10_000)
    t = methods.density_threshold(x)
    assert t.fell_back and "one peak" in t.note
    assert abs(t.value - (0.3 + 3 * 0.05)) < 0.02        # mode + 3 SD of the lower half


def test_density_threshold_bounds_clip_the_fallback():
    x = RNG.normal(0.3, 0.05, 10_000)
    t = methods.density_threshold(x, bounds=(0.6, 0.9))
    assert t.fell_back and t.value == pytest.approx(0.6)


def test_valley_choice_with_dim_and_bright_positives():
    # negatives, dim positives (the biggest group) and a bright subset
    x = np.concatenate([RNG.normal(0.15, 0.04, 6000), RNG.normal(0.58, 0.04, 9000),
                        RNG.normal(0.75, 0.03, 3000)])
    first = methods.density_threshold(x, valley="first")
    last = methods.density_threshold(x, valley="last")
    assert 0.25 < first.value < 0.48      # negatives | all positives
    assert 0.62 < last.value < 0.72       # dim | bright
    with pytest.raises(GatingError):
        methods.density_threshold(x, valley="middle")


def test_tail_threshold_both_sides_and_quantile():
    neg = RNG.normal(0.3, 0.04, 50_000)
    x = np.concatenate([neg, RNG.normal(0.6, 0.03, 500)])
    up = methods.tail_threshold(x, n_sd=3)
    assert up.value == pytest.approx(0.3 + 3 * 0.04, abs=0.015)
    low = methods.tail_threshold(np.concatenate([neg, RNG.normal(0.1, 0.02, 500)]),
                                 n_sd=2, side="below")
    assert low.value == pytest.approx(0.3 - 2 * 0.04, abs=0.015)
    q = methods.tail_threshold(neg, quantile=0.9)
    assert q.value == pytest.approx(np.quantile(neg, 0.9))


def test_singlet_band_separates_doublets():
    height = RNG.uniform(20_000, 120_000, 20_000)
    area_single = height * RNG.normal(1.15, 0.02, height.size)
    d_height = RNG.uniform(30_000, 110_000, 1_000)
    area_double = d_height * RNG.normal(1.9, 0.1, d_height.size)
    area = np.concatenate([area_single, area_double])
    h = np.concatenate([height, d_height])
    truth = np.r_[np.ones(height.size, bool), np.zeros(d_height.size, bool)]
    found = SingletGate("S", [Dimension("FSC-A"), Dimension("FSC-H")]).resolve([area, h])
    got = found.contains([area, h])
    assert np.mean(got[truth]) > 0.99 and np.mean(got[~truth]) < 0.01
    assert found.method == "singlet band"


def test_cluster_gate_picks_the_requested_component():
    blobs = [RNG.multivariate_normal(m, np.diag([0.0016, 0.0016]), n)
             for m, n in (((0.2, 0.2), 3000), ((0.7, 0.3), 4000), ((0.5, 0.8), 2000))]
    X = np.vstack(blobs)
    truth = np.r_[np.zeros(3000, bool), np.zeros(4000, bool), np.ones(2000, bool)]
    gate = ClusterGate("top", [Dimension("a"), Dimension("b")], pick=[("max", 1)],
                       n_components=3, quantile=0.999)
    found = gate.resolve([X[:, 0], X[:, 1]])
    got = found.contains([X[:, 0], X[:, 1]])
    f1 = 2 * np.sum(got & truth) / (got.sum() + truth.sum())
    assert f1 > 0.99
    np.testing.assert_allclose(found.mean, (0.5, 0.8), atol=0.01)
    few = gate.resolve([X[:5, 0], X[:5, 1]])            # too few for three components
    assert few.fell_back and not few.contains([X[:, 0], X[:, 1]]).any()
    assert found.distance_square == pytest.approx(stats.chi2.ppf(0.999, 2))


def test_threshold_gate_resolves_to_a_range_and_records_fallback():
    gate = ThresholdGate("pos", [D], side="above")
    found = gate.resolve([bimodal()])
    assert found.bounds[0][1] is None and 0.3 < found.bounds[0][0] < 0.6
    assert not found.fell_back
    one = gate.resolve([RNG.normal(0.3, 0.05, 5000)])
    assert one.fell_back and one.notes
    below = ThresholdGate("neg", [D], side="below").resolve([bimodal()])
    assert below.bounds[0][0] is None
    few = gate.resolve([np.array([0.1, 0.2])])
    assert few.fell_back and "left empty" in few.notes[0]
    assert not few.contains([np.array([0.1, 0.2, 5.0])]).any()


def test_quadrant_thresholds_assign_every_event_to_its_quadrant():
    n = 4000
    centres = {"++": (0.7, 0.7), "+-": (0.7, 0.2), "-+": (0.2, 0.7), "--": (0.2, 0.2)}
    X = np.vstack([RNG.normal(c, 0.04, (n, 2)) for c in centres.values()])
    labels = np.repeat(list(centres), n)
    gate = QuadrantThresholdGate.build(
        "Q", [Dimension("a"), Dimension("b")],
        {"PP": ("above", "above"), "PN": ("above", "below"), "NP": ("below", "above"),
         "NN": ("below", "below")})
    found = gate.resolve([X[:, 0], X[:, 1]])
    masks = found.quadrant_masks([X[:, 0], X[:, 1]])
    for q, key in (("PP", "++"), ("PN", "+-"), ("NP", "-+"), ("NN", "--")):
        assert np.mean(masks[q][labels == key]) > 0.999
        assert masks[q][labels != key].sum() == 0
    few = gate.resolve([X[:3, 0], X[:3, 1]])
    assert few.fell_back and not any(m.any() for m in few.quadrant_masks([X[:, 0], X[:, 1]]).values())
