"""From a raw trace to an allele-called peak table, like a GeneMapper sizing export.

For each run: the size-standard channel is calibrated (:mod:`.sizing`), the dye
channels are baseline-corrected and their peaks found (:mod:`.peaks`) and sized; then
each peak is given a locus and an allele designation against **bins**:

* the **allelic ladder** run in the same batch (``--ladder``): its peaks are recognised
  as the kit's ladder fragments (the kit lists each fragment's approximate size; each
  locus's list is matched to the dye's peaks near it like a size standard, by the
  spacing of the fragments, and moved onto the fragments found and matched again when
  some are missing), and each fragment's measured size becomes the centre of a
  +-0.5 bp bin;
* or, without a ladder, the kit's own bins (``bins`` in the kit file: measured on a
  public ladder run, see the kit file), flagged as such.

A peak inside a locus's range but in no bin is off-ladder (``OL``); a peak outside every
locus is unlabelled. The result has the columns of :data:`~.parsers.PEAK_COLUMNS`, plus
``artefact`` (``saturated`` for peaks the instrument marked off-scale) and ``width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ChimerismError
from .kits import Kit
from .peaks import corrected, find_peaks
from .sizing import Calibration, SizeStandard, calibrate, guess_size_standard, \
    load_size_standard
from .trace import Trace, read_trace

DEFAULT_DYES = {4: ("B", "G", "Y", "R"), 5: ("B", "G", "Y", "R", "O"),
                6: ("B", "G", "Y", "R", "O", "P")}
BIN_HALF_WIDTH = 0.5


@dataclass
class SizedRun:
    """A run, calibrated and with its peaks found and sized."""

    trace: Trace
    calibration: Calibration
    dyes: tuple                       # dye letter of each channel
    signal: np.ndarray                # baseline-corrected channels
    peaks: pd.DataFrame               # channel, scan, height, area, width, saturated, size, dye
    warnings: list = field(default_factory=list)

    @property
    def bp(self) -> np.ndarray:
        return self.calibration.size(np.arange(self.trace.n_scans, dtype=float))


def channel_dyes(trace: Trace, kit: Kit | None) -> tuple:
    """The dye letter of each channel: from the kit, else by channel count."""
    n = trace.data.shape[0]
    if kit is not None and kit.channels:
        if len(kit.channels) != n:
            raise ChimerismError(f"{trace.path}: the run has {n} dye channels but kit "
                                 f"{kit.name} has {len(kit.channels)}; check --kit")
        return kit.channels
    if n not in DEFAULT_DYES:
        raise ChimerismError(f"{trace.path}: {n} dye channels; give --kit to say which dye "
                             f"each carries")
    return DEFAULT_DYES[n]


def standard_for(trace: Trace, kit: Kit | None, size_standard) -> SizeStandard:
    """The size standard: as given, else the kit's usual one, else the file's own label."""
    if size_standard is not None:
        return size_standard if isinstance(size_standard, SizeStandard) else \
            load_size_standard(size_standard)
    if kit is not None and kit.size_standard:
        return load_size_standard(kit.size_standard)
    guess = guess_size_standard(trace.size_standard)
    if guess is None:
        raise ChimerismError(f"{trace.path}: the size standard is not known (the file says "
                             f"{trace.size_standard!r}); give --size-standard or --kit")
    return guess


def size_run(trace: Trace, kit: Kit | None = None, size_standard=None, *,
             min_height: float = 20.0) -> SizedRun:
    """Calibrate a run on its size standard and find and size the peaks of every dye."""
    dyes = channel_dyes(trace, kit)
    ss_dye = (kit.size_standard_dye if kit is not None and kit.size_standard_dye
              else dyes[-1] if len(dyes) == 4 else "O")
    if ss_dye not in dyes:
        raise ChimerismError(f"{trace.path}: no {ss_dye} channel for the size standard")
    channel = dyes.index(ss_dye)
    standard = standard_for(trace, kit, size_standard)
    signal = corrected(trace.data)
    ss_peaks = find_peaks(signal[channel], min_height=max(min_height, 30.0),
                          offscale=trace.offscale, channel=channel)
    fallback_warning = None
    try:
        cal = calibrate(ss_peaks["scan"].to_numpy(), ss_peaks["height"].to_numpy(), standard,
                        saturated=ss_peaks["saturated"].to_numpy(), source=trace.path,
                        channel=channel)
    except ChimerismError as exc:
        # The kit's usual standard did not fit. A lab may run the kit with another one
        # (Identifiler with GS600 LIZ on a 3500); the label the run file carries is then
        # the better guess. The label alone is not trusted first: 3100 runs of
        # PowerPlex 16 with ILS 600 carry the instrument's default "GSLIZ500" label.
        named = guess_size_standard(trace.size_standard)
        if size_standard is not None or named is None or named.name == standard.name:
            raise
        try:
            cal = calibrate(ss_peaks["scan"].to_numpy(), ss_peaks["height"].to_numpy(),
                            named, saturated=ss_peaks["saturated"].to_numpy(),
                            source=trace.path, channel=channel)
        except ChimerismError:
            raise ChimerismError(f"{exc} (nor does {named.name}, the standard the file "
                                 f"names: {trace.size_standard!r})") from None
        fallback_warning = (f"{trace.path}: sized with {named.name}, the size standard "
                            f"the file names ({trace.size_standard!r}); the kit's usual "
                            f"{standard.name} could not be fitted")
    start = int(cal.scans[0] - 0.5 * (cal.scans[1] - cal.scans[0]))
    frames = [find_peaks(signal[c], min_height=min_height, offscale=trace.offscale,
                         start=max(start, 0), channel=c)
              for c in range(len(dyes)) if c != channel]
    peaks = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(
        len(f) for f in frames) else pd.DataFrame(columns=["channel", "scan", "height",
                                                           "area", "width", "saturated"])
    peaks["size"] = cal.size(peaks["scan"].to_numpy(dtype=float))
    peaks["dye"] = [dyes[int(c)] for c in peaks["channel"]]
    run = SizedRun(trace, cal, dyes, signal, peaks)
    if fallback_warning:
        run.warnings.append(fallback_warning)
    beyond = peaks["size"] > cal.sizes[-1] + 10
    if beyond.any() and (peaks.loc[beyond, "height"] > 100).any():
        run.warnings.append(f"{trace.path}: peaks beyond the last size-standard fragment "
                            f"({cal.sizes[-1]:g} bp) are sized by extrapolation")
    return run


# --------------------------------------------------------------------------- bins
@dataclass
class Bins:
    """Allele bins: locus -> {allele: centre bp}, and where they came from."""

    centres: dict
    source: str                      # "ladder: <files>" or "kit bins"
    ranges: dict = field(default_factory=dict)   # locus -> (dye, low bp, high bp)
    warnings: list = field(default_factory=list)


def _match_ladder_locus(nominal: dict, sizes: np.ndarray, heights: np.ndarray,
                        search: float = 12.0) -> dict:
    """Measured size of each ladder fragment of one locus among one dye's peaks.

    The ladder is matched like a size standard (:func:`~.sizing.match_fragments`): the
    kit's approximate fragment sizes to the peaks within ``search`` bp of them, so that
    the ratio of measured to listed spacing (near 1) changes least from fragment to
    fragment and the fragments are of similar height. Listed sizes may be off by several
    bp and sizing is not quite linear, so absolute positions are not trusted.

    When the listed sizes are off by nearly ``search`` or more, the window cuts off the
    fragments at the far end of the locus. If fragments are missing, the list is moved by
    the median offset of the fragments found and matched again; the second match is
    kept if it finds more fragments and puts the ones found the first time on the same
    peaks.
    """
    got = _match_ladder_window(nominal, sizes, heights, search)
    if got and len(got) < len(nominal):
        shift = float(np.median([got[a] - nominal[a] for a in got]))
        moved = {a: v + shift for a, v in nominal.items()}
        again = _match_ladder_window(moved, sizes, heights, search)
        if len(again) > len(got) and all(
                a in again and abs(again[a] - v) < 1e-9 for a, v in got.items()):
            got = again
    return got


def _match_ladder_window(nominal: dict, sizes: np.ndarray, heights: np.ndarray,
                         search: float) -> dict:
    """One match of :func:`_match_ladder_locus`, among the peaks within ``search`` bp
    of the listed sizes."""
    from .sizing import match_fragments

    names = list(nominal)
    nom = np.array([nominal[a] for a in names])
    window = (sizes >= nom.min() - search) & (sizes <= nom.max() + search)
    s, h = sizes[window], heights[window]
    if len(s) < 2:
        return {}
    # Only the ladder's own peaks, not their stutter: at least a fifth of the locus's
    # typical fragment height.
    tall = h >= 0.2 * np.median(np.sort(h)[::-1][:len(nom)])
    s, h = s[tall], h[tall]
    kw = dict(min_rate=0.8, max_rate=1.25)
    if len(nom) < 3:           # two fragments (Amelogenin): the tallest well-spaced pair
        best = None
        for i in range(len(s)):
            for j in range(i + 1, len(s)):
                ratio = (s[j] - s[i]) / (nom[-1] - nom[0]) if len(nom) == 2 else 1.0
                if 0.8 <= ratio <= 1.25 and (best is None or h[i] + h[j] > best[0]):
                    best = (h[i] + h[j], i, j)
        if best is None:
            return {}
        return dict(zip(names, (float(s[best[1]]), float(s[best[2]]))))
    match = match_fragments(s, nom, **kw)
    if (match >= 0).sum() >= 2:
        ref = float(np.median(h[match[match >= 0]]))
        match = match_fragments(s, nom, h, reference_height=ref, **kw)
    return {name: float(s[j]) for name, j in zip(names, match) if j >= 0}


def ladder_bins(runs: list, kit: Kit) -> Bins:
    """Bins from allelic ladder runs (several are averaged)."""
    if not kit.ladder:
        raise ChimerismError(f"kit {kit.name} lists no allelic ladder fragments; allele "
                             f"calls from a ladder run need them in the kit file")
    found: dict = {}
    warnings = []
    for run in runs:
        for locus, nominal in kit.ladder.items():
            lo = kit.loci[locus]
            p = run.peaks[run.peaks["dye"] == lo.dye]
            got = _match_ladder_locus(nominal, p["size"].to_numpy(dtype=float),
                                      p["height"].to_numpy(dtype=float))
            if len(got) < max(2, 0.5 * len(nominal)):
                raise ChimerismError(
                    f"{run.trace.path}: the allelic ladder of {lo.name} was not recognised "
                    f"({len(got)} of its {len(nominal)} fragments found); is this the "
                    f"{kit.name} ladder, sized with the right size standard?")
            if len(got) < len(nominal):
                warnings.append(f"{run.trace.path}: ladder {lo.name}: "
                                f"{len(nominal) - len(got)} of {len(nominal)} fragments "
                                f"not found ({', '.join(a for a in nominal if a not in got)})")
            for allele, size in got.items():
                found.setdefault(locus, {}).setdefault(allele, []).append(size)
    centres = {locus: {a: float(np.mean(v)) for a, v in alleles.items()}
               for locus, alleles in found.items()}
    files = ", ".join(r.trace.name for r in runs)
    return Bins(centres, f"allelic ladder {files}", _ranges(centres, kit), warnings)


def kit_bins(kit: Kit) -> Bins:
    """The kit's own bins, when the kit file carries them."""
    if not kit.bins:
        raise ChimerismError(
            f"kit {kit.name} has no bins of its own: give the allelic ladder run of the "
            f"batch with --ladder")
    return Bins(dict(kit.bins), f"kit bins ({kit.bins_source or kit.name})",
                _ranges(kit.bins, kit),
                [f"no allelic ladder in the batch: alleles were called against the "
                 f"{kit.name} kit bins ({kit.bins_source}); run the ladder for exact "
                 f"designations"])


def _ranges(centres: dict, kit: Kit) -> dict:
    """Each locus's size range: its bins widened by 1.5 repeats, cut at the midpoint to
    the next locus of the same dye."""
    out = {}
    for locus, alleles in centres.items():
        lo = kit.loci[locus]
        pad = 1.5 * (lo.repeat or 4)
        out[locus] = [lo.dye, min(alleles.values()) - pad, max(alleles.values()) + pad]
    by_dye: dict = {}
    for locus, (dye, a, b) in out.items():
        by_dye.setdefault(dye, []).append(locus)
    for loci in by_dye.values():
        loci.sort(key=lambda k: out[k][1])
        for left, right in zip(loci[:-1], loci[1:]):
            top = max(centres[left].values())
            bottom = min(centres[right].values())
            if out[left][2] > out[right][1]:
                mid = (top + bottom) / 2
                out[left][2], out[right][1] = mid, mid
    return {k: tuple(v) for k, v in out.items()}


#: Of a run's loci with a peak, the share whose tallest peak falls in no bin of the kit's
#: own bins from which the bins are said not to fit the run (another instrument or
#: polymer): a 3130xl run called against Identifiler bins measured on a 3100 had 12 of
#: its 16 loci off-ladder, and a D18S51 15 typed 14.2, with only the general note that
#: no ladder was run.
OFF_LADDER_SHARE = 0.25


def off_ladder_loci(calls: pd.DataFrame) -> tuple[list[str], int]:
    """The loci whose tallest peak is off-ladder, and the number of loci with a peak."""
    peaks = calls[(calls["locus"] != "") & np.isfinite(calls["height"])]
    if peaks.empty:
        return [], 0
    tallest = peaks.loc[peaks.groupby("locus")["height"].idxmax()]
    return sorted(tallest.loc[tallest["allele"] == "OL", "marker"]), len(tallest)


def bins_misfit(calls: pd.DataFrame, bins: Bins, path) -> str | None:
    """A warning where a run called against the kit's own bins has its tallest peak off
    the ladder at ``OFF_LADDER_SHARE`` of its loci or more (None otherwise): the bins do
    not fit the run, and its in-bin calls may be a bin off too."""
    if not bins.source.startswith("kit bins"):
        return None
    off, n = off_ladder_loci(calls)
    if len(off) < 2 or len(off) < OFF_LADDER_SHARE * n:
        return None
    return (f"{path}: the tallest peak of {len(off)} of its {n} loci lies in no bin of "
            f"the kit's ({', '.join(off[:6])}{', ...' if len(off) > 6 else ''}): the "
            "kit's bins do not fit this run (another instrument, polymer or run "
            "module), and alleles called in a bin may be a bin off; run the allelic "
            "ladder of the batch (--ladder)")


def call_alleles(run: SizedRun, bins: Bins, kit: Kit, *, label: str | None = None,
                 tolerance: float = BIN_HALF_WIDTH) -> pd.DataFrame:
    """The run's peaks as a peak table with locus and allele calls."""
    p = run.peaks
    loci = np.full(len(p), "", dtype=object)
    markers = np.full(len(p), "", dtype=object)
    alleles = np.full(len(p), "", dtype=object)
    sizes = p["size"].to_numpy(dtype=float)
    dyes = p["dye"].to_numpy(dtype=object)
    for locus, (dye, low, high) in bins.ranges.items():
        inside = (dyes == dye) & (sizes >= low) & (sizes <= high)
        if not inside.any():
            continue
        loci[inside] = locus
        markers[inside] = kit.loci[locus].name
        names = list(bins.centres[locus])
        centres = np.array([bins.centres[locus][a] for a in names])
        d = np.abs(sizes[inside][:, None] - centres[None, :])
        nearest = d.argmin(axis=1)
        ok = d[np.arange(len(nearest)), nearest] <= tolerance
        alleles[inside] = np.where(ok, np.array(names, dtype=object)[nearest], "OL")
    # One peak per bin, as GeneMapper has it: the apexes of a split or flat-topped
    # (off-scale) peak are one peak, at the tallest apex, with their areas added.
    heights = p["height"].to_numpy(dtype=float)
    areas = p["area"].to_numpy(dtype=float).copy()
    keep = np.ones(len(p), dtype=bool)
    labelled = (alleles != "") & (alleles != "OL")
    for key in set(zip(loci[labelled], alleles[labelled])):
        same = np.flatnonzero(labelled & (loci == key[0]) & (alleles == key[1]))
        if len(same) > 1:
            top = same[np.argmax(heights[same])]
            areas[top] = areas[same].sum()
            keep[same[same != top]] = False
    name = label or run.trace.name
    out = pd.DataFrame({
        "sample": name, "marker": markers, "locus": loci, "allele": alleles,
        "size": sizes, "height": heights, "area": areas, "dye": dyes,
        "data_point": p["scan"].to_numpy(dtype=float), "file": run.trace.path,
        "line": math.nan, "width": p["width"].to_numpy(dtype=float),
        "artefact": np.where(p["saturated"].to_numpy(dtype=bool), "saturated", ""),
        "artefact_detail": np.where(p["saturated"].to_numpy(dtype=bool),
                                    "marked off-scale by the instrument", "")})
    out = out[keep]
    return out.sort_values(["dye", "size"], kind="stable").reset_index(drop=True)


def read_and_size(source, kit: Kit | None, size_standard=None) -> SizedRun:
    """Size a run given as a path or an already read :class:`~.trace.Trace`."""
    trace = source if isinstance(source, Trace) else read_trace(source)
    return size_run(trace, kit, size_standard)
