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


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")   # scikit-learn says so
def test_more_components_than_distinct_events_fit_as_scikit_learn_does():
    # two distinct points, three components: k-means++ seeds a duplicate, whose cluster
    # comes out empty and is refilled; EM leaves that component with no weight
    X = np.array([[0.0, 0.0]] * 40 + [[1.0, 1.0]] * 30)
    theirs = sklearn_mixture.GaussianMixture(3, covariance_type="full", random_state=0,
                                             reg_covar=1e-6).fit(X)
    ours = fit_mixture(X, 3, seed=0)
    np.testing.assert_allclose(ours.weights, theirs.weights_, atol=1e-12)
    np.testing.assert_allclose(ours.means, theirs.means_, atol=1e-12)
    assert np.isclose(ours.weights.sum(), 1.0)


def test_too_few_events_is_a_gating_error():
    with pytest.raises(GatingError, match="too few events"):
        fit_mixture(np.zeros((2, 2)), 3)


def test_chi_square_helpers_are_scipy_stats():
    chi2 = pytest.importorskip("scipy.stats").chi2
    for dims in (1, 2, 3, 5):
        for q in (0.5, 0.9, 0.99, 0.995, 0.999):
            assert chi2_quantile(q, dims) == pytest.approx(chi2.ppf(q, dims), rel=1e-12)
        for d2 in (0.1, 2.0, 9.21):
            assert chi2_probability(d2, dims) == pytest.approx(chi2.cdf(d2, dims), rel=1e-12)
