"""Peaks that are not DNA of the person: pull-up, spikes, broad blobs.

All functions look at the peaks of **one run** (one sample in one capillary: every dye),
as an analyst does when a peak in one colour sits exactly under a taller peak in another.

* **Pull-up** (spectral bleed-through): a peak at the same scan as a much taller peak in
  another dye. Same scan means the same data point when the export gives one, else the
  same size.
* **Spike** (an electrical or air-bubble artefact): peaks at the same scan in three or
  more dyes, of similar height.
* **Broad peak** (dye blob, or an overlapping artefact): a peak much wider, by area over
  height, than the run's peaks of the same size.

The functions return boolean masks and the partner peak, so the callers can report
exactly which peak explains an artefact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Coincidence:
    """For each peak: the tallest peak of another dye at the same scan, if any."""

    partner: np.ndarray      # row position of that peak, -1 when none
    ratio: np.ndarray        # height / partner height (inf when no partner)
    n_dyes: np.ndarray       # number of dyes with a peak at this scan (self included)
    spread: np.ndarray       # lowest / highest height among the peaks at this scan


def _positions(peaks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (peaks["data_point"].to_numpy(dtype=float), peaks["size"].to_numpy(dtype=float))


def same_scan(peaks: pd.DataFrame, *, scans: float = 3.0, bp: float = 0.2) -> np.ndarray:
    """Pairwise "same scan" matrix: data points within ``scans`` when both peaks have one,
    else sizes within ``bp``."""
    dp, size = _positions(peaks)
    with np.errstate(invalid="ignore"):
        by_dp = np.abs(dp[:, None] - dp[None, :]) <= scans
        by_size = np.abs(size[:, None] - size[None, :]) <= bp
    have_dp = np.isfinite(dp)[:, None] & np.isfinite(dp)[None, :]
    return np.where(have_dp, by_dp, by_size)


def coincidences(peaks: pd.DataFrame, *, scans: float = 3.0, bp: float = 0.2) -> Coincidence:
    """The tallest other-dye peak at the same scan as each peak."""
    n = len(peaks)
    if n == 0:
        return Coincidence(np.zeros(0, int), np.zeros(0), np.zeros(0, int), np.zeros(0))
    dye = peaks["dye"].fillna("?").to_numpy(dtype=object)
    height = peaks["height"].to_numpy(dtype=float)
    near = same_scan(peaks, scans=scans, bp=bp) & (dye[:, None] != dye[None, :])
    other = np.where(near, np.nan_to_num(height, nan=-1.0)[None, :], -np.inf)
    partner = np.argmax(other, axis=1) if n else np.zeros(0, int)
    has = near.any(axis=1)
    partner = np.where(has, partner, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(has, height / height[np.maximum(partner, 0)], np.inf)
    n_dyes = np.array([len(set(dye[near[i]])) + 1 for i in range(n)])
    group = near | np.eye(n, dtype=bool)
    h = np.nan_to_num(height, nan=0.0)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(group, h, np.inf).min(axis=1) / np.where(group, h, 0).max(axis=1)
    return Coincidence(partner, ratio, n_dyes, np.nan_to_num(spread))


def spike_mask(peaks: pd.DataFrame, coin: Coincidence, *, min_dyes: int = 3,
               spread: float = 3.0, narrow: float = 0.6) -> np.ndarray:
    """Peaks at one scan in ``min_dyes`` or more dyes whose heights all lie within a
    factor ``spread`` of each other: a spike, not pull-up from one tall peak. When
    areas are known a spike must also be narrow (under ``narrow`` times the run's median
    width), which tells it from a strong peak that pulls up into every other dye."""
    hit = (coin.n_dyes >= min_dyes) & (coin.spread >= 1.0 / spread)
    w = widths(peaks)
    ok = np.isfinite(w) & (w > 0)
    if ok.sum() >= 3:
        hit &= ~(w >= narrow * np.median(w[ok]))
    return hit


def pull_up_mask(coin: Coincidence, ratio: float) -> np.ndarray:
    """Peaks at most ``ratio`` times as tall as a peak in another dye at the same scan."""
    return coin.ratio <= ratio


def widths(peaks: pd.DataFrame) -> np.ndarray:
    """Peak width as area / height (scans when areas are in scans x RFU)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return peaks["area"].to_numpy(dtype=float) / peaks["height"].to_numpy(dtype=float)


def broad_mask(peaks: pd.DataFrame, factor: float = 2.0, *, min_peaks: int = 8) -> np.ndarray:
    """Peaks more than ``factor`` times wider than expected at their size.

    Peaks widen with fragment length, so the expected width is a robust (Theil-Sen)
    line of width against size over the run's labelled peaks. Needs heights, areas and
    ``min_peaks`` such peaks; otherwise nothing is flagged.
    """
    from scipy.stats import theilslopes

    w = widths(peaks)
    size = peaks["size"].to_numpy(dtype=float)
    labelled = peaks["allele"].fillna("").to_numpy(dtype=object) != ""
    ok = np.isfinite(w) & np.isfinite(size) & (w > 0) & labelled
    if ok.sum() < min_peaks:
        return np.zeros(len(peaks), dtype=bool)
    slope, intercept, _, _ = theilslopes(w[ok], size[ok])
    expected = np.maximum(intercept + slope * size, np.median(w[ok]) * 0.25)
    with np.errstate(invalid="ignore"):
        return np.isfinite(w) & (w > factor * expected)
