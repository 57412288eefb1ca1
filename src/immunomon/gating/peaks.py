"""Smoothing and peaks of a binned density, in numpy alone.

A threshold gate smooths a 512-bin histogram and looks for its modes; these
functions compute what ``scipy.ndimage.gaussian_filter1d`` (zero padding),
``scipy.signal.find_peaks`` and ``scipy.signal.peak_prominences`` compute for such
an array (the tests hold them to scipy's results). Importing ``scipy.signal`` costs
more than gating a small file, so the gates do without it.
"""

from __future__ import annotations

import numpy as np


def gaussian_smooth(values: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``values`` convolved with a normalised Gaussian of ``sigma`` (in samples),
    cut at ``truncate`` sigmas, zero beyond both ends."""
    values = np.asarray(values, dtype=np.float64)
    radius = int(truncate * float(sigma) + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    return np.convolve(values, kernel)[radius:radius + values.size]


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of the local maxima of ``x``: samples higher than both neighbours;
    a flat top counts once, at its middle (rounded down); the first and last
    samples never count, nor a flat top that reaches either end."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 3:
        return np.empty(0, dtype=np.intp)
    # runs of equal values: first index and last index of each
    first = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    last = np.concatenate((first[1:], [x.size])) - 1
    level = x[first]
    inner = np.arange(1, level.size - 1)
    top = inner[(level[inner - 1] < level[inner]) & (level[inner + 1] < level[inner])]
    return (first[top] + last[top]) // 2


def prominences(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """How far each peak rises above the higher of its two bases: the lowest point
    on each side before the signal climbs above the peak (or the array ends)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(len(peaks))
    for k, i in enumerate(np.asarray(peaks, dtype=np.intp)):
        higher = np.flatnonzero(x > x[i])
        lo = higher[higher < i].max(initial=-1) + 1
        hi = higher[higher > i].min(initial=x.size)
        out[k] = x[i] - max(x[lo:i + 1].min(), x[i:hi].min())
    return out


def prominent_peaks(x: np.ndarray, min_prominence: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The local maxima of ``x`` whose prominence is at least ``min_prominence``,
    and those prominences."""
    peaks = local_maxima(x)
    prom = prominences(x, peaks)
    keep = prom >= min_prominence
    return peaks[keep], prom[keep]
