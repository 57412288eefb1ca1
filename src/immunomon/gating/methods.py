"""Data-driven gate methods: pure functions that find a gate in one file's events.

Each takes the values of its dimensions inside the parent population (already
compensated and transformed) and returns what it found plus notes on how: a
method that could not do what it was asked falls back to a defined rule and
says so, so QC can flag it. No Python loop over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal, stats

from ..errors import GatingError

N_BINS = 512


@dataclass(frozen=True)
class Threshold:
    """A 1-D cut found in the data."""

    value: float
    peaks: tuple[float, ...]        # modes of the smoothed density, by position
    fell_back: bool = False
    note: str = ""


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    ok = np.isfinite(x)
    return x if ok.all() else x[ok]      # no copy in the usual all-finite case


def _thin(x: np.ndarray, at_most: int = 100_000) -> np.ndarray:
    """An evenly strided subsample: order statistics of 100,000 values estimate a
    scale or a spread as well as a million do, at a tenth of the cost."""
    step = -(-x.size // at_most)
    return x[::step] if step > 1 else x


def smoothed_density(x: np.ndarray, *, adjust: float = 1.0,
                     limits: tuple[float, float] | None = None):
    """A binned Gaussian kernel density: (bin centres, density).

    Binning then smoothing costs O(n + bins) whatever the event count. The
    bandwidth is Silverman's rule on robust spread, times ``adjust``.
    """
    x = _finite(x)
    if x.size < 2:
        raise GatingError(f"too few events ({x.size}) to estimate a density")
    few = _thin(x)
    lo, hi = limits if limits is not None else np.quantile(few, [0.001, 0.999])
    if not hi > lo:
        lo, hi = x.min() - 0.5, x.max() + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    counts, edges = np.histogram(x, bins=N_BINS, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    q75, q25 = np.quantile(few, [0.75, 0.25])
    sd = np.std(few)
    spread = min(sd, (q75 - q25) / 1.349) or sd or (hi - lo) / 10
    bandwidth = 0.9 * spread * x.size ** -0.2 * adjust
    sigma_bins = max(bandwidth / (edges[1] - edges[0]), 1.0)
    density = ndimage.gaussian_filter1d(counts.astype(np.float64), sigma_bins, mode="constant")
    return centres, density / (density.sum() * (edges[1] - edges[0]))


def find_peaks(centres: np.ndarray, density: np.ndarray, *,
               min_prominence: float = 0.05) -> np.ndarray:
    """Indices of density modes whose prominence is at least ``min_prominence`` of the
    highest point, sorted by position."""
    padded = np.concatenate([[0.0], density, [0.0]])
    idx, _ = signal.find_peaks(padded, prominence=min_prominence * density.max())
    return np.sort(idx - 1)


def tail_threshold(x, *, n_sd: float = 3.0, quantile: float | None = None,
                   side: str = "above") -> Threshold:
    """A cut beside the main peak: its mode + ``n_sd`` times the spread of its
    lower half (``side='above'``, for dim or rare positives), or its mode minus
    ``n_sd`` times the spread of its upper half (``side='below'``, for 'low'
    phenotypes such as CD127low). Each half-spread comes from the side the
    other population does not contaminate. With ``quantile``, the cut is that
    quantile of the values instead.
    """
    x = _finite(x)
    if x.size < 10:
        raise GatingError(f"too few events ({x.size}) for a tail threshold")
    if side not in ("above", "below"):
        raise GatingError(f"side must be 'above' or 'below', not {side!r}")
    if quantile is not None:
        value = float(np.quantile(x, quantile))
        return Threshold(value, (), note=f"{quantile:g} quantile")
    centres, density = smoothed_density(x)
    mode = float(centres[np.argmax(density)])
    half = x[x <= mode] - mode if side == "above" else x[x >= mode] - mode
    sd = float(np.sqrt(np.mean(half ** 2))) if half.size > 5 else float(np.std(x))
    sign = 1.0 if side == "above" else -1.0
    return Threshold(mode + sign * n_sd * sd, (mode,),
                     note=f"mode {mode:.4g} {'+' if sign > 0 else '-'} {n_sd:g} x {sd:.3g}")


def density_threshold(x, *, bounds: tuple[float | None, float | None] = (None, None),
                      adjust: float = 1.0, min_prominence: float = 0.05,
                      fallback_sd: float = 3.0, valley: str = "deepest") -> Threshold:
    """A density minimum between two peaks of ``x``.

    ``valley`` chooses the peaks: 'deepest' the two most prominent, 'first'
    the two lowest in value (negatives against the first positives, when
    positives come dim and bright), 'last' the two highest. ``bounds``
    restricts where the cut may fall. With only one peak the cut falls back
    to ``tail_threshold`` (mode + ``fallback_sd`` SD of its lower half),
    clipped to the bounds, and the result says it fell back.
    """
    if valley not in ("deepest", "first", "last"):
        raise GatingError(f"valley must be 'deepest', 'first' or 'last', not {valley!r}")
    x = _finite(x)
    centres, density = smoothed_density(x, adjust=adjust)
    peaks = find_peaks(centres, density, min_prominence=min_prominence)
    lo = -np.inf if bounds[0] is None else bounds[0]
    hi = np.inf if bounds[1] is None else bounds[1]
    positions = tuple(float(centres[i]) for i in peaks)
    if len(peaks) >= 2:
        if valley == "first":
            top = peaks[:2]
        elif valley == "last":
            top = peaks[-2:]
        else:
            top = np.sort(peaks[np.argsort(density[peaks])[-2:]])
        window = np.arange(top[0], top[1] + 1)
        window = window[(centres[window] >= lo) & (centres[window] <= hi)]
        if window.size:
            cut = window[np.argmin(density[window])]
            return Threshold(float(centres[cut]), positions)
        note = "no density minimum between the peaks lies within the bounds"
    else:
        note = "one peak only"
    fb = tail_threshold(x, n_sd=fallback_sd)
    value = float(np.clip(fb.value, lo, hi))
    return Threshold(value, positions, fell_back=True, note=f"{note}; fell back to {fb.note}")


@dataclass(frozen=True)
class SingletBand:
    """Singlets lie in a band of area/height ratios: ``lo <= area/height <= hi``."""

    lo: float
    hi: float
    centre: float

    def polygon(self, area_min: float, area_max: float) -> list[tuple[float, float]]:
        """The band as a polygon in (area, height) coordinates."""
        return [(area_min, area_min / self.lo), (area_max, area_max / self.lo),
                (area_max, area_max / self.hi), (area_min, area_min / self.hi)]


def singlet_band(area, height, *, n_mad: float = 4.0, upper_only: bool = False) -> SingletBand:
    """The ratio band of single cells from the FSC-A/FSC-H relation.

    Doublets have a larger area for their height. The band is the median ratio
    +- ``n_mad`` robust SDs (1.4826 x MAD), estimated on events with positive height.
    """
    a, h = np.asarray(area, dtype=np.float64), np.asarray(height, dtype=np.float64)
    ok = (h > 0) & np.isfinite(a) & np.isfinite(h) & (a > 0)
    if ok.sum() < 10:
        raise GatingError(f"too few events with positive height ({int(ok.sum())}) for a "
                          "singlet gate")
    ratio = _thin(a[ok] / h[ok])
    centre = float(np.median(ratio))
    sd = 1.4826 * float(np.median(np.abs(ratio - centre))) or 1e-3 * centre
    lo = 0.0 + 1e-9 if upper_only else centre - n_mad * sd
    return SingletBand(max(lo, 1e-9), centre + n_mad * sd, centre)


@dataclass(frozen=True)
class Cluster:
    """One Gaussian component chosen from a mixture, as an ellipse."""

    mean: np.ndarray
    covariance: np.ndarray
    distance_squared: float
    weight: float
    n_components: int


def _score(means: np.ndarray, pick: list[tuple[str, int]]) -> np.ndarray:
    """Rank components by the pick criteria: ('max'|'min', dimension index)."""
    total = np.zeros(len(means))
    for direction, dim in pick:
        order = np.argsort(means[:, dim])
        ranks = np.empty(len(means))
        ranks[order] = np.arange(len(means))
        total += ranks if direction == "max" else -ranks
    return total


_FITS: dict = {}          # recent mixture fits, keyed by their input (bounded)


def _mixture(X: np.ndarray, n_components: int, seed: int):
    """Fit (or reuse) a Gaussian mixture: gates that cluster the same events in the
    same dimensions, picking different components, share one fit."""
    from sklearn.mixture import GaussianMixture

    key = (X.shape, n_components, seed, hash(X.tobytes()))
    if key not in _FITS:
        if len(_FITS) > 32:
            _FITS.clear()
        _FITS[key] = GaussianMixture(n_components, covariance_type="full", n_init=1,
                                     random_state=seed, reg_covar=1e-6).fit(X)
    return _FITS[key]


def cluster_gate(columns, *, n_components: int = 3, pick: list[tuple[str, int]],
                 quantile: float = 0.99, max_events: int = 5_000, seed: int = 0,
                 min_weight: float = 0.0) -> Cluster:
    """Fit a Gaussian mixture to the events (a subsample of at most ``max_events``)
    and return the component that ``pick`` ranks best, as an ellipse holding
    ``quantile`` of it (Mahalanobis distance squared <= the chi-square quantile).

    ``pick`` is a list such as ``[("min", 1)]`` (lowest mean in dimension 1)
    or ``[("max", 0), ("min", 1)]`` (best summed rank). Components lighter than
    ``min_weight`` are not picked.
    """
    # Thin first (evenly over the acquisition), so a million events are never stacked.
    step = max(1, len(columns[0]) // (2 * max_events))
    X = np.column_stack([np.asarray(c[::step], dtype=np.float64) for c in columns])
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] < 10 * n_components:
        raise GatingError(f"too few events ({X.shape[0]}) to fit {n_components} clusters")
    rng = np.random.default_rng(seed)
    if X.shape[0] > max_events:
        X = X[rng.choice(X.shape[0], max_events, replace=False)]
    gmm = _mixture(X, n_components, seed)
    score = _score(gmm.means_, pick)
    score[gmm.weights_ < min_weight] = -np.inf
    best = int(np.argmax(score))
    d2 = float(stats.chi2.ppf(quantile, X.shape[1]))
    return Cluster(gmm.means_[best].copy(), gmm.covariances_[best].copy(), d2,
                   float(gmm.weights_[best]), n_components)
