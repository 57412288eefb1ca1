"""Pure membership functions: arrays of coordinates in, boolean masks out.

Every function takes one 1-D array per dimension (any float dtype, all the
same length) and returns a boolean array of that length. Thresholds are
compared in float64 so that a gate written in a document means the same
number whatever the dtype of the events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def range_mask(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Gating-ML interval: ``lo <= x < hi``; a missing end is open (unbounded)."""
    x = np.asarray(x)
    if lo is None and hi is None:
        return np.ones(x.shape[0], dtype=bool)
    # numpy scalars, not Python floats: a float32 column is then compared in
    # float64 instead of against the bound rounded to float32
    lo = None if lo is None else np.float64(lo)
    hi = None if hi is None else np.float64(hi)
    if lo is None:
        return x < hi
    if hi is None:
        return x >= lo
    return (x >= lo) & (x < hi)


def rectangle_mask(columns: Sequence[np.ndarray],
                   bounds: Sequence[tuple[float | None, float | None]]) -> np.ndarray:
    """n-D rectangle: every dimension inside its half-open interval."""
    mask = None
    for x, (lo, hi) in zip(columns, bounds, strict=True):
        m = range_mask(x, lo, hi)
        mask = m if mask is None else np.logical_and(mask, m, out=mask)
    if mask is None:
        raise ValueError("a rectangle needs at least one dimension")
    return mask


def polygon_mask(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd (crossing number) rule; self-intersecting polygons allowed.

    A horizontal ray from each point to +x crosses edge (a, b) when the edge
    straddles the point's y (one end ``<= y``, the other ``> y``: the half-open
    rule counts a vertex on the ray once) and the crossing lies strictly right
    of the point. The loop runs over edges, vectorised over events, and only
    over the events inside the polygon's bounding box: memory O(events).
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
        raise ValueError("a polygon needs at least 3 vertices of 2 coordinates")
    x = np.asarray(x)
    y = np.asarray(y)
    (xmin, ymin), (xmax, ymax) = v.min(axis=0), v.max(axis=0)
    box = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
    rows = np.flatnonzero(box)
    px = x[rows].astype(np.float64)
    py = y[rows].astype(np.float64)
    inside = np.zeros(rows.size, dtype=bool)
    below = v[0, 1] <= py                 # each vertex's comparison serves its two edges
    for (x1, y1), (x2, y2) in zip(v, np.roll(v, -1, axis=0)):
        below_next = y2 <= py
        if y1 != y2:                      # horizontal edges never straddle
            idx = np.flatnonzero(below != below_next)
            xcross = x1 + (py[idx] - y1) * ((x2 - x1) / (y2 - y1))
            inside[idx[px[idx] < xcross]] ^= True
        below = below_next
    mask = np.zeros(x.shape[0], dtype=bool)
    mask[rows] = inside
    return mask


def ellipsoid_mask(columns: Sequence[np.ndarray], mean: np.ndarray,
                   covariance: np.ndarray, distance_square: float) -> np.ndarray:
    """n-D ellipsoid: ``(x - mean)^T inv(covariance) (x - mean) <= distance_square``."""
    return mahalanobis_squared(columns, mean, covariance) <= distance_square


def mahalanobis_squared(columns: Sequence[np.ndarray], mean: np.ndarray,
                        covariance: np.ndarray) -> np.ndarray:
    """``(x - mean)^T inv(covariance) (x - mean)`` of every event.

    The inverse is used as given (Gating-ML documents may carry a matrix that
    is not exactly symmetric). Accumulated one term at a time to keep memory
    O(events) instead of materialising an events x n x n product.
    """
    mean = np.asarray(mean, dtype=np.float64)
    inv = np.linalg.inv(np.asarray(covariance, dtype=np.float64))
    d = [np.asarray(c, dtype=np.float64) - m for c, m in zip(columns, mean, strict=True)]
    total = np.zeros(d[0].shape[0], dtype=np.float64)
    for i, di in enumerate(d):
        for j, dj in enumerate(d):
            if inv[i, j] != 0.0:
                total += inv[i, j] * di * dj
    return total


def divider_bins(x: np.ndarray, values: Sequence[float]) -> np.ndarray:
    """Which interval of a quadrant divider each value falls in.

    Values ``v1 < v2 < ...`` cut the axis into ``(-inf, v1), [v1, v2), ...,
    [vk, inf)``, numbered 0..k: the same half-open rule as rectangles.
    """
    cuts = np.sort(np.asarray(values, dtype=np.float64))
    return np.searchsorted(cuts, np.asarray(x, dtype=np.float64), side="right")
