"""Gaussian mixtures with full covariances, fitted by expectation-maximisation in numpy.

The fit takes scikit-learn's ``GaussianMixture(covariance_type="full", n_init=1)`` path
step for step (k-means++ seeding and Lloyd's iterations on the centred events, drawn from
the same ``RandomState``, then EM until the mean log-likelihood changes by less than
``tol``), so a seed gives the mixture scikit-learn gives, to rounding
(tests/test_gating_mixture.py holds the two together). Importing scikit-learn loads
``scipy.stats`` and took longer than gating a small file (docs/performance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import GatingError

_LOG_2PI = np.log(2.0 * np.pi)


@dataclass(frozen=True, eq=False)
class Mixture:
    """A fitted mixture: ``weights`` (k,), ``means`` (k, d), ``covariances`` (k, d, d)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    converged: bool
    iterations: int

    @cached_property
    def _factors(self) -> np.ndarray:
        """The covariances' precision factors, computed once per fit."""
        return _precision_cholesky(self.covariances)

    def weighted_log_densities(self, X: np.ndarray) -> np.ndarray:
        """log(weight_k * N(x | mean_k, covariance_k)) for every event and component."""
        return _log_gaussian(X, self.means, self._factors) + np.log(self.weights)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """The mixture's log density at every event."""
        return _logsumexp(self.weighted_log_densities(X))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Each component's posterior probability for every event (rows sum to 1)."""
        weighted = self.weighted_log_densities(X)
        return np.exp(weighted - _logsumexp(weighted)[:, None])


def chi2_probability(d2: float, dims: int) -> float:
    """The share of a Gaussian in ``dims`` dimensions within squared Mahalanobis radius
    ``d2`` (the chi-square distribution function). Written out, with `chi2_quantile`,
    because scipy.special took a tenth of a small file's start to import."""
    return _chi2_head(d2, dims) if d2 < dims + 2 else 1.0 - _chi2_tail(d2, dims)


def _chi2_head(d2: float, dims: int) -> float:
    """P(a, h), the regularised lower incomplete gamma function at a = dims/2 and
    h = d2/2, by its series h^a e^-h / Gamma(a + 1) * sum_n h^n / ((a + 1)...(a + n)),
    whose terms are all positive (no digits lost however small P is)."""
    h = _half(d2, dims)
    if h == 0.0:
        return 0.0
    a = dims / 2.0
    term = total = 1.0
    n = 0
    while term > 1e-17 * total:
        n += 1
        term *= h / (a + n)
        total += term
    return min(math.exp(a * math.log(h) - h - math.lgamma(a + 1.0)) * total, 1.0)


def _chi2_tail(d2: float, dims: int) -> float:
    """Q(a, h) = 1 - P(a, h) for whole degrees of freedom in closed form, a sum of
    positive terms (no digits lost near P = 1): Q(1/2, h) = erfc(sqrt h) or
    Q(1, h) = e^-h, then Q(a + 1, h) = Q(a, h) + h^a e^-h / Gamma(a + 1)."""
    h = _half(d2, dims)
    if h == 0.0:
        return 1.0
    a, p = (0.5, math.erfc(math.sqrt(h))) if dims % 2 else (1.0, math.exp(-h))
    while a < dims / 2.0:
        p += math.exp(a * math.log(h) - h - math.lgamma(a + 1.0))
        a += 1.0
    return min(p, 1.0)


def _half(d2: float, dims: int) -> float:
    if dims < 1:
        raise GatingError(f"a chi-square needs at least 1 degree of freedom, not {dims}")
    return d2 / 2.0 if d2 > 0 else 0.0


def chi2_quantile(q: float, dims: int) -> float:
    """The squared Mahalanobis radius of the ellipse holding ``q`` of a Gaussian in
    ``dims`` dimensions (the chi-square quantile), by bisection to the last bit (in
    closed form for two dimensions, the cluster gates' usual case)."""
    if not 0.0 <= q <= 1.0:
        raise GatingError(f"a quantile lies between 0 and 1, not {q}")
    if q in (0.0, 1.0):
        return 0.0 if q == 0.0 else math.inf
    if dims == 2:
        return -2.0 * math.log1p(-q)
    # below the median compare P with q, above it the tail with 1 - q (exact in floating
    # point there), so neither loses digits to cancellation
    upper = q > 0.5
    target = 1.0 - q if upper else q

    def short(x: float) -> bool:         # x lies below the quantile
        return _chi2_tail(x, dims) > target if upper else _chi2_head(x, dims) < target

    lo, hi = 0.0, float(dims)
    while short(hi):
        lo, hi = hi, 2.0 * hi
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            return hi
        lo, hi = (mid, hi) if short(mid) else (lo, mid)


def fit_mixture(X: np.ndarray, n_components: int, *, seed: int = 0,
                reg_covar: float = 1e-6, tol: float = 1e-3, max_iter: int = 100) -> Mixture:
    """Fit ``n_components`` Gaussians to the rows of ``X`` (events x dimensions),
    starting from a k-means partition seeded by ``seed``. ``reg_covar`` is added to
    every variance so a component over a few tied events stays invertible."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] < max(2, n_components):
        raise GatingError(f"too few events ({X.shape[0]}) to fit {n_components} clusters")
    labels = kmeans_labels(X, n_components, np.random.RandomState(seed))
    resp = np.zeros((X.shape[0], n_components))
    resp[np.arange(X.shape[0]), labels] = 1.0
    weights, means, covariances = _gaussian_parameters(X, resp, reg_covar)
    weights = weights / X.shape[0]
    bound, converged, iteration = -np.inf, False, 0
    for iteration in range(1, max_iter + 1):
        previous = bound
        # E step with the current parameters, then the M step from its responsibilities
        weighted = _log_gaussian(X, means, _precision_cholesky(covariances)) + np.log(weights)
        norm = _logsumexp(weighted)
        bound = float(norm.mean())
        resp = np.exp(weighted - norm[:, None])
        weights, means, covariances = _gaussian_parameters(X, resp, reg_covar)
        weights = weights / weights.sum()
        if abs(bound - previous) < tol:
            converged = True
            break
    return Mixture(weights, means, covariances, converged, iteration)


def kmeans_labels(X: np.ndarray, k: int, rng: np.random.RandomState, *,
                  max_iter: int = 300, tol: float = 1e-4) -> np.ndarray:
    """Lloyd's k-means from k-means++ seeds, on the events centred on their mean; stops
    when no label changes or the centres move (summed squared shift) by less than
    ``tol`` of the mean variance. Returns each event's cluster."""
    X = X - X.mean(axis=0)
    norms = np.einsum("ij,ij->i", X, X)
    centers = _kmeans_plusplus(X, k, rng, norms)
    tol = float(np.mean(np.var(X, axis=0))) * tol
    labels_old = np.full(X.shape[0], -1)
    for _ in range(max_iter):
        labels = _nearest(X, centers)
        new = _centroids(X, labels, centers)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if np.array_equal(labels, labels_old):
            return labels
        if shift <= tol:
            break
        labels_old = labels
    return _nearest(X, centers)


def _kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.RandomState,
                     norms: np.ndarray) -> np.ndarray:
    """Greedy k-means++: each new seed is the best of 2 + log(k) candidates drawn in
    proportion to the squared distance to the nearest seed so far."""
    n = X.shape[0]
    trials = 2 + int(np.log(k))
    centers = np.empty((k, X.shape[1]))
    first = rng.choice(n, p=np.full(n, 1.0 / n))
    centers[0] = X[first]
    closest = _squared_distances(X[[first]], X, norms)[0]
    potential = closest.sum()
    for c in range(1, k):
        draws = rng.uniform(size=trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        distances = np.minimum(closest, _squared_distances(X[candidates], X, norms))
        potentials = distances.sum(axis=1)
        best = int(np.argmin(potentials))
        potential, closest = potentials[best], distances[best]
        centers[c] = X[candidates[best]]
    return centers


def _squared_distances(A: np.ndarray, X: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances from each row of ``A`` to each event (|a|^2 - 2a.x +
    |x|^2, floored at zero)."""
    d = -2.0 * (A @ X.T)
    d += np.einsum("ij,ij->i", A, A)[:, None]
    d += x_norms[None, :]
    return np.maximum(d, 0.0, out=d)


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Each event's nearest centre (|c|^2 - 2c.x: |x|^2 is the same for every centre)."""
    return np.argmin(np.einsum("ij,ij->i", centers, centers)[None, :] - 2.0 * (X @ centers.T),
                     axis=1)


def _centroids(X: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The mean of each cluster's events, as scikit-learn's Lloyd step has it: a
    cluster left empty takes the event farthest from its own centre (unless every
    event sits on its centre: more clusters than distinct events), and one still
    empty sits on the largest cluster's centre."""
    k = len(centers)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, X)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        distances = ((X - centers[labels]) ** 2).sum(axis=1)
        if distances.max() > 0:
            far = np.argpartition(distances, -empty.size)[:-empty.size - 1:-1]
            for new, i in zip(empty, far):
                sums[labels[i]] -= X[i]
                counts[labels[i]] -= 1
                sums[new], counts[new] = X[i], 1
    means = np.divide(sums, counts[:, None], out=np.zeros_like(sums),
                      where=counts[:, None] > 0)
    means[counts == 0] = means[np.argmax(counts)]
    return means


def _gaussian_parameters(X: np.ndarray, resp: np.ndarray, reg_covar: float):
    """Summed responsibilities, means and covariances (plus ``reg_covar`` on the
    diagonal) of every component: the M step."""
    nk = resp.sum(axis=0) + 10.0 * np.finfo(resp.dtype).eps
    means = (resp.T @ X) / nk[:, None]
    covariances = np.empty((len(nk), X.shape[1], X.shape[1]))
    for k in range(len(nk)):
        diff = X - means[k]
        covariances[k] = (resp[:, k] * diff.T) @ diff / nk[k]
        covariances[k].flat[:: X.shape[1] + 1] += reg_covar
    return nk, means, covariances


def _precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """For each covariance S = L L^T, the upper factor of its inverse, (L^-1)^T."""
    d = covariances.shape[1]
    out = np.empty_like(covariances)
    for k, cov in enumerate(covariances):
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise GatingError("a mixture component collapsed onto too few distinct events "
                              "to have a covariance; fewer components may fit") from None
        out[k] = np.linalg.solve(chol, np.eye(d)).T
    return out


def _log_gaussian(X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray) -> np.ndarray:
    """log N(x | mean_k, covariance_k) for every event and component."""
    n, d = X.shape
    out = np.empty((n, len(means)))
    for k, (mu, pc) in enumerate(zip(means, prec_chol)):
        y = X @ pc - mu @ pc
        out[:, k] = np.einsum("ij,ij->i", y, y)
    log_det = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    return -0.5 * (d * _LOG_2PI + out) + log_det


def _logsumexp(a: np.ndarray) -> np.ndarray:
    """log(sum(exp(a))) over each row, without overflow."""
    top = a.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - top[:, None]).sum(axis=1)) + top
