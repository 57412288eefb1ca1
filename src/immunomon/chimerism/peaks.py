"""Baseline and peak detection in the dye channels of a raw trace (scipy.signal).

The baseline is a running low percentile (the 20th, over about twenty peak widths) of
the signal, smoothed by a running mean: it follows the slow drift and the dye front but
neither the peaks (narrow and sparse) nor the negative dips that spectral correction
leaves under strong peaks of other dyes, which a running minimum would follow. Peaks
are local maxima of the baseline-corrected signal (scipy.signal ``find_peaks``) with a
height and a prominence above ``min_height``; each is described
by its apex scan (refined by a parabola through the three top scans), height, area
(between the points where it falls to 5 % of its height, or the valleys to its
neighbours) and width, and whether the instrument marked any of its scans off-scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PEAK_FIELDS = ["channel", "scan", "height", "area", "width", "saturated"]


def baseline(signal, window: int = 301) -> np.ndarray:
    """Running 20th percentile over ``window`` scans, smoothed by a running mean."""
    from scipy.ndimage import percentile_filter, uniform_filter1d

    x = np.asarray(signal, dtype=float)
    return uniform_filter1d(percentile_filter(x, 20, size=window, mode="nearest"),
                            window // 3, mode="nearest")


def corrected(data, window: int = 301) -> np.ndarray:
    """Every channel of a trace with its baseline removed."""
    data = np.asarray(data, dtype=float)
    return np.vstack([c - baseline(c, window) for c in data])


def find_peaks(signal, *, min_height: float = 20.0, offscale=(), start: int = 0,
               channel: int = 0) -> pd.DataFrame:
    """Peaks of one baseline-corrected channel as a table of :data:`PEAK_FIELDS`."""
    from scipy.signal import find_peaks as _find, peak_widths

    x = np.asarray(signal, dtype=float)
    idx, props = _find(x, height=min_height, prominence=min_height / 2, distance=3)
    idx = idx[idx >= start]
    if len(idx) == 0:
        return pd.DataFrame(columns=PEAK_FIELDS)
    # Apex by a parabola through the top three scans.
    left = np.clip(idx - 1, 0, len(x) - 1)
    right = np.clip(idx + 1, 0, len(x) - 1)
    y0, y1, y2 = x[left], x[idx], x[right]
    denom = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, 0.5 * (y0 - y2) / denom, 0.0)
    apex = idx + np.clip(shift, -0.5, 0.5)
    # Area between the points where the peak falls to 5 % of its height above the
    # baseline, cut at the valleys to the neighbours, and width at half that height. Not
    # fractions of its prominence: that is measured from the lowest point before a taller
    # peak, often a spectral-correction dip far away, below the noise, so the window would
    # run over hundreds of scans of noise (a weak peak's area would carry more noise than
    # signal, and its width would make it a broad blob).
    valleys = [int(np.argmin(x[a:b + 1])) + a for a, b in zip(idx[:-1], idx[1:])]
    vleft = np.array([0] + valleys)
    vright = np.array(valleys + [len(x) - 1])
    above_baseline = (x[idx], vleft, vright)
    _, _, hlo, hhi = peak_widths(x, idx, rel_height=0.5, prominence_data=above_baseline)
    _, _, lo, hi = peak_widths(x, idx, rel_height=0.95, prominence_data=above_baseline)
    a = np.maximum(np.floor(lo).astype(int), vleft)
    b = np.minimum(np.ceil(hi).astype(int), vright)
    cum = np.concatenate([[0.0], np.cumsum(np.clip(x, 0, None))])
    area = cum[b + 1] - cum[a]
    off = np.zeros(len(x) + 1, dtype=bool)
    if len(offscale):
        off[np.asarray(offscale, dtype=int)] = True
    offcum = np.concatenate([[0], np.cumsum(off[:-1])])
    saturated = (offcum[b + 1] - offcum[a]) > 0
    return pd.DataFrame({"channel": channel, "scan": apex, "height": x[idx], "area": area,
                         "width": hhi - hlo, "saturated": saturated})
