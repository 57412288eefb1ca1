"""Gaussian mixtures fitted in numpy (immunomon.gating.mixture), held to scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from immunomon.errors import GatingError
from immunomon.gating.mixture import chi2_probability, chi2_quantile, fit_mixture

sklearn_mixture = pytest.importorskip("sklearn.mixture")


def _clusters(seed: int):
    """Overlapping normal clusters of unequal size and spread, as scatter plots have."""
    rng = np.random.default_rng(seed)
    k, d = int(rng.integers(2, 6)), int(rng.integers(1, 4))
    centres = rng.normal(0.0, 3.0, (k + 1, d))
    sizes = rng.integers(50, 2_000, k + 1)
    X = np.concatenate([rng.normal(c, rng.uniform(0.3, 2.0), (n, d))
                        for c, n in zip(centres, sizes)])
    return X, k, int(rng.integers(0, 1_000))


@pytest.mark.parametrize("case", range(12))
def test_fit_is_scikit_learns_fit(case):
    X, k, seed = _clusters(case)
    theirs = sklearn_mixture.GaussianMixture(k, covariance_type="full", n_init=1,
                                             random_state=seed, reg_covar=1e-6).fit(X)
    ours = fit_mixture(X, k, seed=seed, reg_covar=1e-6)
    # the same k-means start and EM path: the same components in the same order
    np.testing.assert_allclose(ours.weights, theirs.weights_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.means, theirs.means_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.covariances, theirs.covariances_, rtol=0, atol=1e-9)
    assert ours.iterations == theirs.n_iter_
    assert ours.converged == theirs.converged_
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)


DUPLICATES = {
    "one point": np.column_stack([np.full(500, 3.0), np.full(500, 7.0)]),
    "two points": np.array([[0.0, 0.0]] * 40 + [[1.0, 1.0]] * 30),
    "a far single event": np.vstack([np.zeros((100, 2)), np.full((1, 2), 5.0)]),
    "six points": np.repeat(np.random.default_rng(0).normal(size=(6, 2)), 20, axis=0),
}


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")   # scikit-learn says so
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(DUPLICATES))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_more_components_than_distinct_events_fit_as_scikit_learn_does(name, k):
    # k-means++ seeds duplicates, whose clusters come out empty: refilled from the
    # farthest event, or placed on the largest cluster when every event sits on its centre
    X = DUPLICATES[name]
    for seed in (0, 1):
        theirs = sklearn_mixture.GaussianMixture(k, covariance_type="full", random_state=seed,
                                                 reg_covar=1e-6).fit(X)
        ours = fit_mixture(X, k, seed=seed)
        np.testing.assert_allclose(ours.weights, theirs.weights_, atol=1e-12)
        np.testing.assert_allclose(ours.means, theirs.means_, atol=1e-12)


def test_a_cluster_gate_never_picks_a_component_without_events():
    # every event the same: the other components hold nothing and sit at zero
    from immunomon.gating.methods import cluster_gate

    c = cluster_gate([np.full(500, 3.0), np.full(500, 7.0)], n_components=3,
                     pick=[("min", 1)])
    np.testing.assert_allclose(c.mean, [3.0, 7.0])
    assert c.weight == pytest.approx(1.0)


def test_too_few_events_is_a_gating_error():
    with pytest.raises(GatingError, match="too few events"):
        fit_mixture(np.zeros((2, 2)), 3)


def test_chi_square_helpers_are_scipy_stats():
    special = pytest.importorskip("scipy.special")
    for dims in (1, 2, 3, 4, 5, 6, 9):
        for q in (1e-6, 0.05, 0.5, 0.9, 0.99, 0.995, 0.999, 0.9999, 1 - 1e-9):
            want = 2.0 * special.gammaincinv(dims / 2.0, q)
            assert chi2_quantile(q, dims) == pytest.approx(want, rel=1e-12), (dims, q)
        for d2 in (1e-8, 0.1, 2.0, 9.21, 30.0, 80.0):
            want = special.gammainc(dims / 2.0, d2 / 2.0)
            assert chi2_probability(d2, dims) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert chi2_quantile(0.0, 3) == 0.0 and chi2_quantile(1.0, 3) == float("inf")
    assert chi2_probability(0.0, 2) == 0.0
    with pytest.raises(GatingError):
        chi2_quantile(1.5, 2)


def test_the_normal_tail_is_scipys():
    from immunomon.gating.methods import normal_tail
    special = pytest.importorskip("scipy.special")
    z = np.linspace(-6.0, 30.0, 721)
    np.testing.assert_allclose(normal_tail(z), special.ndtr(-z), rtol=1e-12, atol=0)
