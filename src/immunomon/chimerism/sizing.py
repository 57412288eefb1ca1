"""Size standards and the scan -> base pair calibration of a run.

The fragments of the internal size standard are found among the peaks of its channel by
dynamic programming: the assignment of the standard's fragments (a contiguous run of
them, in order) to peaks (in scan order) whose migration rate, scans per bp between
neighbouring fragments, changes least. A stray peak, a missing fragment at either end
or a primer peak cannot fool it the way "take the N tallest peaks" can. The matched
fragments are then fitted with the Local Southern method (the GeneMapper default): a
scan between fragments i and i+1 is sized by averaging the two Southern curves
``bp = L0 + c / (scan - m0)`` through fragments (i-1, i, i+1) and (i, i+1, i+2).

A standard that cannot be fitted (too few fragments, a non-monotonic or poor fit)
raises :class:`ChimerismError` naming the file and what was found: that run cannot be
sized and must be re-injected or re-analysed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ChimerismError


@dataclass(frozen=True)
class SizeStandard:
    name: str
    sizes: tuple                 # bp of every fragment, ascending
    exclude: tuple = ()          # fragments found but left out of the fit (anomalous)
    bright: tuple = ()           # fragments about twice as tall as the others

    def relative_heights(self) -> np.ndarray:
        return np.where(np.isin(self.sizes, self.bright), 2.0, 1.0)


SIZE_STANDARDS = {
    # GeneScan 500 LIZ: the 250 bp fragment runs anomalously and is not used to size
    # (as in GeneMapper's GS500(-250) definition).
    "GS500 LIZ": SizeStandard("GS500 LIZ", (35, 50, 75, 100, 139, 150, 160, 200, 250, 300,
                                            340, 350, 400, 450, 490, 500), exclude=(250,)),
    "GS600 LIZ": SizeStandard("GS600 LIZ", (20, 40, 60, 80, 100, 114, 120, 140, 160, 180,
                                            200, 214, 220, 240, 250, 260, 280, 300, 314,
                                            320, 340, 360, 380, 400, 414, 420, 440, 460,
                                            480, 500, 514, 520, 540, 560, 580, 600)),
    # Promega ILS 600: every hundred is brighter (relative heights as listed in NCBI
    # OSIRIS's ILSAndLadderInfo.xml).
    "ILS 600": SizeStandard("ILS 600", (60, 80, 100, 120, 140, 160, 180, 200, 225, 250,
                                        275, 300, 325, 350, 375, 400, 425, 450, 475, 500,
                                        550, 600), bright=(100, 200, 300, 400, 500, 600)),
    "ILS 500": SizeStandard("ILS 500", (60, 65, 80, 100, 120, 140, 160, 180, 200, 225, 250,
                                        275, 300, 325, 350, 375, 400, 425, 450, 475, 500)),
}
_ALIASES = {"gs500": "GS500 LIZ", "gs500liz": "GS500 LIZ", "genescan500liz": "GS500 LIZ",
            "gs600": "GS600 LIZ", "gs600liz": "GS600 LIZ", "gs600lizv2": "GS600 LIZ",
            "genescan600liz": "GS600 LIZ", "ils600": "ILS 600",
            "internallanestandard600": "ILS 600", "ils500": "ILS 500",
            "wenils500": "ILS 500", "cc5ils500": "ILS 500"}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def load_size_standard(name_or_path) -> SizeStandard:
    """A built-in size standard by name, or a custom ladder file.

    A custom file is YAML (``name``, ``sizes``, optional ``exclude``) or plain text with
    one fragment size per line (or separated by commas or spaces).
    """
    text = os.fspath(name_or_path)
    key = _key(text)
    for name in SIZE_STANDARDS:
        if key == _key(name) or _ALIASES.get(key) == name:
            return SIZE_STANDARDS[name]
    if not os.path.exists(text):
        raise ChimerismError(f"unknown size standard {text!r}: use one of "
                             f"{', '.join(SIZE_STANDARDS)} or the path of a ladder file "
                             f"listing the fragment sizes")
    return _read_custom(text)


def _read_custom(path: str) -> SizeStandard:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            body = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ChimerismError(f"{path}: cannot read the size standard file ({exc})") from None
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError:
        data = None
    exclude: list = []
    name = os.path.splitext(os.path.basename(path))[0]
    if isinstance(data, dict):
        name = str(data.get("name") or name)
        sizes, exclude = data.get("sizes"), data.get("exclude") or []
    else:
        sizes = [t for t in re.split(r"[\s,;]+", body) if t]
    try:
        sizes = sorted(float(x) for x in sizes)
        exclude = [float(x) for x in exclude]
    except (TypeError, ValueError):
        raise ChimerismError(f"{path}: the size standard file must list fragment sizes in "
                             f"bp (numbers), one per line or as 'sizes: [...]'") from None
    if len(sizes) < 6 or len(set(sizes)) != len(sizes) or sizes[0] <= 0:
        raise ChimerismError(f"{path}: a size standard needs at least 6 distinct positive "
                             f"fragment sizes; found {len(sizes)}")
    return SizeStandard(name, tuple(sizes), tuple(exclude))


def guess_size_standard(label: str | None) -> SizeStandard | None:
    """The built-in standard a file's own label (ABIF ``StdF1``) names, if any, with the
    fragments outside a range the label gives left out of the fit: a 3130xl's
    ``GS500LIZ(75-450)`` says the lab sized on 75-450 bp, and its 35 and 50 bp fragments
    ran off the curve through the others (the run had been refused)."""
    standard = _named_standard(label)
    span = re.search(r"\((\d+)\s*-\s*(\d+)\)", label or "")
    if standard is None or span is None:
        return standard
    lo, hi = float(span.group(1)), float(span.group(2))
    if not lo < hi:
        return standard
    outside = tuple(s for s in standard.sizes if not lo <= s <= hi)
    if not outside or len(standard.sizes) - len(outside) < 6:
        return standard
    return SizeStandard(f"{standard.name} ({span.group(1)}-{span.group(2)})", standard.sizes,
                        tuple(sorted(set(standard.exclude) | set(outside))),
                        standard.bright)


def _named_standard(label: str | None) -> SizeStandard | None:
    if not label:
        return None
    key = _key(label)
    if "ils" in key and "600" in key:
        return SIZE_STANDARDS["ILS 600"]
    if "ils" in key and ("500" in key or "cc5" in key or "wen" in key):
        # Promega's CC5 and WEN lane standards are the 500-bp ones (a 3500 writes
        # "Promega_CC5_ILS" for PowerPlex Fusion's)
        return SIZE_STANDARDS["ILS 500"]
    if "600" in key:
        return SIZE_STANDARDS["GS600 LIZ"]
    if "500" in key:
        return SIZE_STANDARDS["GS500 LIZ"]
    return None


# --------------------------------------------------------------------------- matching
def match_fragments(scans, sizes, heights=None, *, reference_height: float | None = None,
                    relative=None, trim_penalty: float = 0.1, height_weight: float = 0.02,
                    min_rate: float = 2.0, max_rate: float = 60.0) -> np.ndarray:
    """Which peak carries each fragment: an array of peak indices, -1 where none.

    ``scans`` are the candidate peaks, ``sizes`` the standard's fragments. A contiguous
    run of fragments is matched to increasing peaks so that the migration rate (scans per
    bp between consecutive fragments) changes least, as the squared change of its
    logarithm; each fragment left unmatched at either end costs ``trim_penalty``; each
    matched peak costs ``height_weight`` x the squared log of its height over
    ``reference_height`` times the fragment's ``relative`` height (fragments of a standard
    are of similar height, or brighter ones twice as tall; primer peaks and noise are
    not); without a reference height, heights are not used. Rates outside
    ``min_rate``-``max_rate`` scans per bp are impossible.
    """
    x0 = np.asarray(scans, dtype=float)
    s = np.asarray(sizes, dtype=float)
    n, m = len(s), len(x0)
    out = np.full(n, -1)
    if n < 3 or m < 3:
        return out
    order = np.argsort(x0)
    x = x0[order]
    big = 1e9
    rel = np.ones(n) if relative is None else np.asarray(relative, dtype=float)
    if heights is None or not reference_height:
        hc = np.zeros((n, m))
    else:
        h = np.maximum(np.asarray(heights, dtype=float)[order], 1e-9)
        hc = height_weight * np.log(h[None, :] / (reference_height * rel[:, None])) ** 2
    dx = x[None, :] - x[:, None]                                  # [a, b]: x_b - x_a
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log(dx / (s[j + 1] - s[j])) for j in range(n - 1)]
    lo, hi = np.log(min_rate), np.log(max_rate)
    valid = [(dx > 0) & (lg >= lo) & (lg <= hi) for lg in logs]
    # costs[p][a, b]: best cost of a chain whose last pair is fragments (p, p+1) on
    # peaks (a, b); backs[p][a, b]: the peak of fragment p-1, or -1 if the chain starts.
    costs = [np.where(valid[0], hc[0][:, None] + hc[1][None, :], big)]
    backs = [np.full((m, m), -1)]
    for p in range(1, n - 1):
        with np.errstate(invalid="ignore"):
            step = (logs[p][None, :, :] - logs[p - 1][:, :, None]) ** 2   # [a, b, c]
        total = costs[-1][:, :, None] + np.where(np.isfinite(step), step, big)
        arg = np.argmin(total, axis=0)
        best = np.take_along_axis(total, arg[None], axis=0)[0] + hc[p + 1][None, :]
        start = trim_penalty * p + hc[p][:, None] + hc[p + 1][None, :]
        fresh = start < best
        costs.append(np.where(valid[p], np.where(fresh, start, best), big))
        backs.append(np.where(fresh, -1, arg))
    ends = [c.min() + trim_penalty * (n - 2 - p) for p, c in enumerate(costs)]
    p = int(np.argmin(ends))
    if costs[p].min() >= big:
        return out
    a, b = np.unravel_index(np.argmin(costs[p]), costs[p].shape)
    out[p + 1], out[p] = order[b], order[a]
    while p >= 1:
        prev = backs[p][a, b]
        if prev < 0:
            break
        out[p - 1] = order[prev]
        a, b, p = prev, a, p - 1
    return out


def match_cost(scans, heights, sizes, found, *, relative=None, trim_penalty: float = 0.1,
               height_weight: float = 0.02) -> float:
    """The cost :func:`match_fragments` minimises, of one assignment (``found`` marks the
    matched fragments; ``scans``/``heights`` are their peaks), the reference height being
    the median of the matched peaks."""
    found = np.asarray(found, dtype=bool)
    t, s, h = np.asarray(scans)[found], np.asarray(sizes, float)[found], \
        np.asarray(heights, dtype=float)[found]
    if len(t) < 3:
        return np.inf
    rates = np.log(np.diff(t) / np.diff(s))
    rel = np.ones(len(found)) if relative is None else np.asarray(relative, float)
    h = h / rel[found]
    ref = np.median(h)
    return float(np.sum(np.diff(rates) ** 2) + trim_penalty * (len(sizes) - len(t))
                 + height_weight * np.sum(np.log(np.maximum(h, 1e-9) / ref) ** 2))


# --------------------------------------------------------------------------- fitting
def _southern(t, s) -> np.ndarray:
    """Parameters (L0, c, m0) of ``bp = L0 + c / (scan - m0)`` through each consecutive
    triple of points: rows of a (k, 3) array."""
    rows = []
    for i in range(len(t) - 2):
        tt, ss = t[i:i + 3], s[i:i + 3]
        # s*t = m0*s + L0*t + K, with c = K + L0*m0
        a = np.column_stack([ss, tt, np.ones(3)])
        try:
            m0, l0, k = np.linalg.solve(a, ss * tt)
        except np.linalg.LinAlgError:
            m0, l0, k = np.nan, np.nan, np.nan
        rows.append((l0, k + l0 * m0, m0))
    return np.array(rows, dtype=float).reshape(-1, 3)


def _eval(params, t) -> np.ndarray:
    l0, c, m0 = params[..., 0], params[..., 1], params[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return l0 + c / (t - m0)


def local_southern(t_std, s_std, t) -> np.ndarray:
    """Local Southern sizing of scans ``t`` against standard points (``t_std``, ``s_std``)."""
    t_std = np.asarray(t_std, dtype=float)
    s_std = np.asarray(s_std, dtype=float)
    t = np.asarray(t, dtype=float)
    params = _southern(t_std, s_std)
    k = len(params)
    i = np.clip(np.searchsorted(t_std, t, side="right") - 1, 0, len(t_std) - 2)
    lo = np.clip(i - 1, 0, k - 1)        # triple (i-1, i, i+1)
    hi = np.clip(i, 0, k - 1)            # triple (i, i+1, i+2)
    a, b = _eval(params[lo], t), _eval(params[hi], t)
    both = (i - 1 >= 0) & (i <= k - 1)
    return np.where(both, (a + b) / 2, np.where(i - 1 >= 0, a, b))


@dataclass
class Calibration:
    """A run's sizing: matched size-standard fragments and the Local Southern curve."""

    standard: SizeStandard
    scans: np.ndarray            # scans of the fragments used in the fit
    sizes: np.ndarray            # their bp
    heights: np.ndarray
    residuals: np.ndarray        # leave-one-out error of each interior fragment, bp
    missing: tuple = ()          # fragments of the standard not found
    channel: int = -1
    _grid: tuple = field(default=(), repr=False)

    def size(self, scans) -> np.ndarray:
        """bp of scans; outside the standard's range the end curves extrapolate."""
        return local_southern(self.scans, self.sizes, scans)

    def scan(self, bp) -> np.ndarray:
        """Scans of sizes (the inverse of :meth:`size`, by interpolation)."""
        if not self._grid:
            grid = np.linspace(self.scans[0] - 200, self.scans[-1] + 200, 20001)
            sized = self.size(grid)
            ok = np.isfinite(sized)
            grid, sized = grid[ok], sized[ok]
            keep = np.concatenate([[True], np.diff(sized) > 0])
            self._grid = (sized[keep], grid[keep])
        return np.interp(np.asarray(bp, dtype=float), *self._grid)

    @property
    def max_residual(self) -> float:
        return float(np.nanmax(np.abs(self.residuals))) if len(self.residuals) else 0.0

    def summary(self) -> dict:
        return {"size_standard": self.standard.name, "fragments_used": int(len(self.sizes)),
                "fragments_missing": list(self.missing),
                "max_residual_bp": round(self.max_residual, 3),
                "first_bp": float(self.sizes[0]), "last_bp": float(self.sizes[-1])}


def leave_one_out(t, s) -> np.ndarray:
    """For each interior fragment, its size predicted from the others minus its own."""
    out = np.full(len(t), np.nan)
    for i in range(1, len(t) - 1):
        keep = np.arange(len(t)) != i
        if keep.sum() < 3:
            continue
        out[i] = local_southern(t[keep], s[keep], t[i:i + 1])[0] - s[i]
    return out


def calibrate(scans, heights, standard: SizeStandard, *, saturated=None,
              source: str = "run", min_fraction: float = 0.75, max_residual: float = 1.0,
              channel: int = -1) -> Calibration:
    """Match the standard's fragments among the channel's peaks and fit the sizing.

    Raises :class:`ChimerismError` when fewer than ``min_fraction`` of the fragments (and
    at least 6) are found, or a fragment's size predicted from its neighbours is off by
    more than ``max_residual`` bp or 4 % of the gap between those neighbours.
    """
    scans = np.asarray(scans, dtype=float)
    heights = np.asarray(heights, dtype=float)
    sizes = np.asarray(standard.sizes, dtype=float)
    where = f"{source}: the size standard ({standard.name})"
    if len(scans) < 3:
        raise ChimerismError(f"{where} cannot be fitted: {len(scans)} peaks in its channel; "
                             f"check the injection, the dye set or --size-standard")
    # The fragments are among the taller peaks: keep a few times as many candidates.
    # Off-scale peaks are usually primer or dye front, but in a run without DNA the
    # standard itself can be off-scale: both candidate sets are tried, the better kept.
    best = None
    typical = float(np.median(heights))
    sat = np.zeros(len(scans), dtype=bool) if saturated is None else np.asarray(saturated)
    for usable in (np.ones(len(scans), dtype=bool), ~sat):
        if best is not None and usable.all():
            continue
        s_, h_ = scans[usable], heights[usable]
        keep = np.argsort(h_)[::-1][:min(len(s_), 3 * len(sizes), 90)]
        cand_s, cand_h = s_[keep], h_[keep]
        # First by migration alone, then again with the height of those fragments as
        # the height a fragment should have.
        match = match_fragments(cand_s, sizes)
        if (match >= 0).sum() < 3:
            continue
        rel = standard.relative_heights()
        ref = float(np.median(cand_h[match[match >= 0]] / rel[match >= 0]))
        match = match_fragments(cand_s, sizes, cand_h, reference_height=ref, relative=rel)
        cost = match_cost(cand_s[np.maximum(match, 0)], cand_h[np.maximum(match, 0)],
                          sizes, match >= 0, relative=rel)
        # Between the two candidate sets, prefer the one whose fragments stand out of
        # the channel (a standard run off-scale against one read from the noise).
        cost -= 0.05 * float(np.median(np.log(cand_h[match[match >= 0]] / typical)))
        if best is None or cost < best[0]:
            best = (cost, match, cand_s, cand_h)
    if best is None:
        raise ChimerismError(f"{where} cannot be fitted: no run of fragments found among "
                             f"the {len(scans)} peaks of its channel; check the injection, "
                             f"the dye set or --size-standard")
    _, match, cand_s, cand_h = best
    found = match >= 0
    need = max(6, int(np.ceil(min_fraction * len(sizes))))
    if found.sum() < need:
        raise ChimerismError(
            f"{where} cannot be fitted: {int(found.sum())} of its {len(sizes)} fragments "
            f"found ({len(scans)} peaks in the channel; {need} needed); check the "
            f"injection, the dye set or --size-standard")
    t = cand_s[match[found]]
    s = sizes[found]
    h = cand_h[match[found]]
    use = ~np.isin(s, standard.exclude)
    t, s, h = t[use], s[use], h[use]
    if np.any(np.diff(t) <= 0):
        raise ChimerismError(f"{where} cannot be fitted: the fragments are out of order")
    res = leave_one_out(t, s)
    # Predicting a fragment from its neighbours is as good as they are close: allow
    # 4 % of the gap between them, and at least max_residual.
    gap = np.full(len(s), np.inf)
    gap[1:-1] = s[2:] - s[:-2]
    allowed = np.maximum(max_residual, 0.04 * gap)
    ratio = np.where(np.isfinite(res), np.abs(res) / allowed, 0.0)
    worst = int(np.argmax(ratio))
    if ratio[worst] > 1.0:
        raise ChimerismError(
            f"{where} cannot be fitted: the {s[worst]:g} bp fragment lies "
            f"{abs(res[worst]):.2f} bp off the curve through its neighbours (at most "
            f"{allowed[worst]:.2f} allowed); check for a missing or extra fragment peak")
    missing = tuple(float(x) for x in sizes[~found])
    return Calibration(standard, t, s, h, res, missing, channel)
