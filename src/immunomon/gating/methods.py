"""Data-driven gate methods: pure functions that find a gate in one file's events.

Each takes the values of its dimensions inside the parent population (already
compensated and transformed) and returns what it found plus notes on how: a
method that could not do what it was asked falls back to a defined rule and
says so, so QC can flag it. No Python loop over events. Nothing slow to import:
thresholds find their peaks without ``scipy.signal`` (``peaks``) and clusters fit
their mixtures without scikit-learn (``mixture``), whose imports alone outlast
gating a small file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import GatingError
from ..fmt import position as _at
from .masks import mahalanobis_squared
from .mixture import chi2_probability, chi2_quantile, fit_mixture
from .peaks import gaussian_smooth, prominent_peaks
from .peaks import prominences as peak_prominences


class TooFewEvents(GatingError):
    """Too few usable events for a method: the gate leaves its population empty."""


N_BINS = 512


@dataclass(frozen=True)
class Threshold:
    """A 1-D cut found in the data."""

    value: float
    peaks: tuple[float, ...]        # modes of the smoothed density, by position
    fell_back: bool = False
    note: str = ""
    depth: float = 0.0              # 1 - valley / lower peak: how clearly the cut separates
    peak_end: bool = False          # the cut is where a lone peak's flank ends
    place: int = 0                  # a lone peak's side by its place on the scale (+1: the
                                    # negatives, -1: the positives), where the tails decided
                                    # against it; 0 otherwise
    placed: float | None = None     # the lone peak's place on the scale (0: zero signal,
                                    # 1: its top) where that place alone decided its side
    guessed: bool = False           # a lone peak's side came from a sign chance often
                                    # makes (a weak tail or lean) or from the default side
    absent: bool = False            # no peak beyond the near bound: the population was
                                    # taken as absent and the cut moved to the far bound
    pinned: tuple[float, float] | None = None   # the bounds moved the cut inside a
                                    # population: (the density there as a share of that
                                    # population's peak, the peak's place)
    passed_over: float | None = None  # ``majority`` passed over a valley between peaks
                                    # and kept them all: the share that valley left


#: how high on a peak's flank (a share of the peak's height) a cut the bounds moved may
#: stand before it counts as inside that population: a whole-blood file's CD45 bound,
#: read off another file, cut through its neutrophils (23% kept), the sample 'ok'
PINNED = 0.5
#: ... a peak at least this share of the highest one's height: a minor population the
#: template's bounds knowingly cut (the shipped templates' CD14 bound among lineage-
#: negative cells, through a CD14-dim bump beside the monocytes) is no sign of bounds
#: that do not fit the file
PINNED_MAJOR = 0.25


def _pinned(centres, density, peaks, value: float) -> tuple[float, float] | None:
    """Where a cut the bounds placed stands on the flank of the nearest peak, a major
    one (``PINNED_MAJOR``), at ``PINNED`` of its height or more: (that share, the peak's
    place); else None."""
    if not len(peaks) or not np.isfinite(value):
        return None
    peak = int(peaks[np.argmin(np.abs(centres[peaks] - value))])
    share = float(np.interp(value, centres, density) / density[peak])
    major = density[peak] >= PINNED_MAJOR * density[peaks].max()
    return (share, float(centres[peak])) if share >= PINNED and major else None


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def normal_tail(z: np.ndarray) -> np.ndarray:
    """The standard normal's upper tail beyond each ``z`` (numpy has no erfc, and
    scipy.special's import took a tenth of a small file's start)."""
    return 0.5 * _ERFC(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)).astype(np.float64)


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    ok = np.isfinite(x)
    return x if ok.all() else x[ok]      # no copy in the usual all-finite case


#: a mass cytometer records no ions as a count of exactly 0: a tenth of the events tied at
#: zero signal, below where the one peak of the rest ends, are the negative population
#: beside it, not a spike to leave out (``density_on_scale``)
FLOOR_POPULATION = 0.1


def on_scale(x) -> np.ndarray:
    """The finite values less any pile of events tied at the largest or the smallest
    value: events off the top of a channel's scale (saturated scatter, stored as
    $PnR - 1) or floored at its bottom (a BD Accuri C6 stores negative values as 0, a
    FACSCalibur's log channels as 1) have no measured value, and a few of them make a
    spike that a density takes for a population, or a tail that says where one lies.
    In an activation file thinned to 744 events, four saturated FSC-A events were the
    second peak of a `valley: first` cut, which kept 5 cells. The gate's cut still
    applies to them; only the density leaves them out (``piles`` says which)."""
    return piles(x)[0]


#: saturated pulses whose area a digital cytometer still computes are not tied at one
#: value: a FACSAria's 49 saturated FSC-A events lay between 262,125 and 262,143, its
#: declared range 262,207. Events within this share of the values' span below the largest,
#: SATURATION_SPIKE times as dense as the stretch ten times as wide below them, are a
#: pile too (the debris gate had taken those 49 for a second peak)
SATURATION_WIDTH = 0.001
SATURATION_SPIKE = 5.0


def _top_pile(x: np.ndarray) -> np.ndarray:
    """The events piled at the top: tied at the largest value, or, where no 3 are,
    crowded within SATURATION_WIDTH of the span below it (saturation)."""
    top = x.max()
    tied = x == top
    width = SATURATION_WIDTH * float(top - x.min())
    if width > 0 and np.count_nonzero(tied) < 3:
        near = x >= top - width
        below = np.count_nonzero((x >= top - 11 * width) & ~near)
        if np.count_nonzero(near) >= max(3, SATURATION_SPIKE * below / 10):
            return near
    return tied


def piles(x, keep_bottom: bool = False
          ) -> tuple[np.ndarray, dict[str, tuple[int, float]]]:
    """``on_scale``'s values, and the piles it left out: ``{"top" | "bottom": (events,
    the lowest value among them)}``; a pile is 3 events or more and under half of them,
    tied at the largest or the smallest value, or at the top crowded just below the
    largest (``_top_pile``). ``keep_bottom`` keeps the pile at the bottom in (and out of
    the dict)."""
    x = _finite(x)
    found: dict[str, tuple[int, float]] = {}
    if x.size < 3:
        return x, found
    keep = None
    for where in ("top", "bottom"):
        if where == "bottom" and keep_bottom:
            continue
        pile = _top_pile(x) if where == "top" else x == x.min()
        n = int(np.count_nonzero(pile))
        if 3 <= n < x.size // 2:
            keep = ~pile if keep is None else keep & ~pile
            found[where] = (n, float(x[pile].min()))
    return (x if keep is None else x[keep]), found


def _thin(x: np.ndarray, at_most: int = 100_000) -> np.ndarray:
    """An evenly strided subsample: order statistics of 100,000 values estimate a
    scale or a spread as well as a million do, at a tenth of the cost."""
    step = -(-x.size // at_most)
    return x[::step] if step > 1 else x


def _silverman(few: np.ndarray, q25: float, q75: float, n: int, fallback: float) -> float:
    """Silverman's rule on robust spread: the smaller of the SD and the IQR's."""
    sd = np.std(few)
    return 0.9 * (min(sd, (q75 - q25) / 1.349) or sd or fallback) * n ** -0.2


def kernel_bandwidth(x: np.ndarray) -> float:
    """The kernel width ``smoothed_density`` smooths ``x`` with (at ``adjust`` 1): the
    resolution at which a density method places a cut; 0 for fewer than two values."""
    x = _finite(x)
    if x.size < 2:
        return 0.0
    few = _thin(x)
    q25, q75 = np.quantile(few, [0.25, 0.75])
    return float(_silverman(few, q25, q75, x.size, (x.max() - x.min()) / 10))


def smoothed_density(x: np.ndarray, *, adjust: float = 1.0,
                     limits: tuple[float, float] | None = None):
    """A binned Gaussian kernel density: (bin centres, density, bandwidth).

    Binning then smoothing costs O(n + bins) whatever the event count. The
    bandwidth is Silverman's rule on robust spread, times ``adjust``. The grid
    spans the 0.01st to 99.99th percentiles plus a margin, so a population of
    0.5% at either end keeps its whole peak.
    """
    x = _finite(x)
    if x.size < 2:
        raise TooFewEvents(f"too few events ({x.size}) to estimate a density")
    few = _thin(x)
    ends = np.quantile(few, [0.0001, 0.25, 0.75, 0.9999])        # one selection pass
    q25, q75 = ends[1], ends[2]
    lo, hi = limits if limits is not None else (ends[0], ends[3])
    if not hi > lo:
        lo, hi = x.min() - 0.5, x.max() + 0.5
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    counts, edges = np.histogram(x, bins=N_BINS, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    bandwidth = _silverman(few, q25, q75, x.size, (hi - lo) / 10) * adjust
    sigma_bins = max(bandwidth / (edges[1] - edges[0]), 1.0)
    density = gaussian_smooth(counts, sigma_bins)
    return centres, density / (density.sum() * (edges[1] - edges[0])), \
        sigma_bins * (edges[1] - edges[0])


def valley_bottom(density: np.ndarray, window: np.ndarray) -> int:
    """The index of the density minimum over ``window`` (consecutive indices); where
    the bottom is flat, the middle of the flat stretch. Two populations with no event
    between them leave the smoothed density at zero across the gap (the kernel ends 4
    bandwidths out), and the first zero lies at the lower population's edge: in a
    HIPC file thinned to 1,699 events the CD4 cut fell there, 500 units below the
    middle of the gap, and took CD4- events into the CD4 side."""
    values = density[window]
    low = values <= values.min() + 1e-9 * max(float(density.max()), 1e-300)
    k = int(np.argmax(low))
    run = k + int(np.argmin(low[k:])) if not low[k:].all() else low.size
    return int(window[(k + run - 1) // 2])


#: The least prominence, as a share of the highest peak, a density mode needs to be a peak
#: (``find_peaks``); a template may raise it.
MIN_PROMINENCE = 0.002


def find_peaks(centres: np.ndarray, density: np.ndarray, *,
               min_prominence: float = MIN_PROMINENCE,
               n_events: int | None = None, bandwidth: float | None = None,
               z: float = 2.0, min_events: float = 10.0) -> np.ndarray:
    """Indices of density modes, sorted by position, that are real populations.

    A mode counts when its prominence is at least ``min_prominence`` of the
    highest point and, given the event count and bandwidth, at least ``z``
    standard errors of the kernel estimate at the mode, and it holds at least
    ``min_events`` events above the level it rises from: a minor population of
    0.5% forms a peak worth cutting at, a wiggle of sampling noise or a few far
    outliers do not.
    """
    padded = np.concatenate([[0.0], density, [0.0]])
    idx, prom = prominent_peaks(padded, min_prominence * density.max())
    idx = idx - 1
    if n_events and bandwidth and idx.size:
        # variance of a Gaussian-kernel density estimate: f / (2 sqrt(pi) n h)
        se = np.sqrt(density[idx] / (2 * np.sqrt(np.pi) * n_events * bandwidth))
        # a few isolated outliers pass the error test (three events far from the rest
        # stand out by two standard errors): a population also needs events of its own
        own = _bump_events(centres, density, idx, prom, n_events)
        keep = (prom >= z * se) & (own >= min_events)
        idx = idx[keep]
    return np.sort(idx)


def at_zero_signal(value: float, scale: tuple[float, float] | None) -> bool:
    """Whether ``value`` is zero signal on a display ``scale`` (zero signal, top)."""
    return scale is not None and bool(
        np.isclose(value, scale[0], rtol=0.0, atol=1e-9 * (scale[1] - scale[0])))


def density_on_scale(x, *, adjust: float = 1.0, min_prominence: float = MIN_PROMINENCE,
                     scale: tuple[float, float] | None = None):
    """The density a threshold reads and its peaks: (values, piles left out, centres,
    density, bandwidth, peaks, note). The piles at either end are left out (``piles``),
    except a pile at zero signal of a display ``scale`` (zero signal, top) that holds
    ``FLOOR_POPULATION`` of the events and lies below where the one peak of the rest
    ends: that pile is the negative population beside the peak. In a CyTOF file thinned
    to 114 events, 6 of its 34 CD3- CD14- cells had a B-cell count of 0; left out, they
    left the 15 B cells the one peak, `expect: mostly-negative` took it for the
    negatives, and the gate was empty. A pile at the bottom of channel numbers is not zero signal but
    the floor of a log amplifier, below the negatives' own peak: FlowCAP-I's T cells pile
    15% of their CD4 values at channel 0, and kept in, the pile took the CD4 valley."""
    x = _finite(x)
    kept, piled = piles(x)
    centres, density, bandwidth = smoothed_density(kept, adjust=adjust)
    peaks = find_peaks(centres, density, min_prominence=min_prominence, n_events=kept.size,
                       bandwidth=bandwidth)
    note = ""
    n, at = piled.get("bottom", (0, 0.0))
    if len(peaks) == 1 and n >= FLOOR_POPULATION * x.size and at_zero_signal(at, scale) \
            and (end := peak_end(centres, density, int(peaks[0]), -1)) is not None \
            and centres[end] > at:
        del piled["bottom"]
        kept = piles(x, keep_bottom=True)[0]
        centres, density, bandwidth = smoothed_density(kept, adjust=adjust)
        peaks = find_peaks(centres, density, min_prominence=min_prominence,
                           n_events=kept.size, bandwidth=bandwidth)
        note = (f"{n} events ({n / x.size:.0%}) at zero signal kept in the density: below "
                "where the one peak of the others ends, they are the population beside it; ")
    return kept, piled, centres, density, bandwidth, peaks, note


def _bump_events(centres, density, peaks, prominences, n_events: int) -> np.ndarray:
    """How many events each peak holds above the base its prominence stands on: the
    density above that level, over the stretch around the peak where it stays above."""
    dx = float(centres[1] - centres[0])
    out = np.empty(len(peaks))
    for k, (i, p) in enumerate(zip(peaks, prominences)):
        base = density[i] - p
        low = np.flatnonzero(density <= base)          # where the stretch ends either side
        lo = low[low < i].max(initial=-1)
        hi = low[low > i].min(initial=density.size)
        out[k] = float((density[lo + 1:hi] - base).sum() * dx * n_events)
    return out


def _prominences(density: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    padded = np.concatenate([[0.0], density, [0.0]])
    return peak_prominences(padded, peaks + 1)


def _most_prominent_two(density, peaks) -> np.ndarray:
    """The two most prominent of ``peaks`` (indices), by position."""
    return np.sort(peaks[np.argsort(_prominences(density, peaks))[-2:]])


#: How many times higher than the other of the two most prominent peaks a peak must be
#: to dominate its channel (``_beside_dominant``).
DOMINANT = 4.0


def _beside_dominant(density, peaks, top: np.ndarray) -> np.ndarray:
    """Where one of the two peaks ``top`` is ``DOMINANT`` times the other's height and
    smaller peaks lie between them, the dominant peak and its neighbour toward the
    other; otherwise ``top`` itself. The valley beside the dominant peak parts its
    population from all the others, where the lowest point between the two most
    prominent peaks fell among those others, splitting them: a COVID-19 ICS file's
    CD14-dim monocytes went with the CD14- cells (F1 0.85 -> 0.94), a CD8 memory
    quadrant's CD45RA cut split a lyoplate file's memory cells (central and effector
    memory 0.83 / 0.82 -> 0.90 / 0.90)."""
    between = peaks[(peaks > top[0]) & (peaks < top[1])]
    if between.size and density[top[1]] > DOMINANT * density[top[0]]:
        return np.array([between[-1], top[1]])
    if between.size and density[top[0]] > DOMINANT * density[top[1]]:
        return np.array([top[0], between[0]])
    return top


def _flank(density, peak: int, direction: int) -> np.ndarray:
    """The density from a peak outwards, in ``direction`` (+1 up, -1 down)."""
    return density[peak:] if direction > 0 else density[peak::-1]


def _first_rise(walk: np.ndarray) -> int | None:
    """Step of a flank (from ``_flank``) after which the density, once under 80% of
    the peak, rises again: where another population's bump begins (a wiggle on the
    peak's cap is not one); None if it never does."""
    rises = np.flatnonzero((np.diff(walk) > 0) & (walk[:-1] < 0.8 * walk[0]))
    return int(rises[0]) if rises.size else None


def _less_kernel(sd: float, bandwidth: float) -> float:
    """A smoothed peak's SD less the kernel's own width (in quadrature), at least half
    of it."""
    return float(np.sqrt(max(sd ** 2 - bandwidth ** 2, (0.5 * sd) ** 2)))


def _half_width(centres, density, peak: int, direction: int) -> float:
    """Distance from a peak to where its density first falls to half its height,
    walking in ``direction`` (+1 up, -1 down): a spread that the other side's
    populations cannot inflate."""
    walk = _flank(density, peak, direction)
    below = np.flatnonzero(walk < 0.5 * density[peak])
    steps = below[0] if below.size else walk.size - 1
    return max(steps, 1) * float(centres[1] - centres[0])


def peak_centre(centres, density, peak: int) -> tuple[int, float]:
    """The centre of a peak's cap (where it is within 5% of its height), as an
    index and a position: steadier than the single highest bin of a flat top."""
    cap = density >= 0.95 * density[peak]
    left = peak - int(np.argmin(cap[peak::-1])) + 1 if not cap[:peak + 1].all() else 0
    right = peak + int(np.argmin(cap[peak:])) - 1 if not cap[peak:].all() else cap.size - 1
    middle = (left + right) // 2
    return middle, float(0.5 * (centres[left] + centres[right]))


def peak_spread(centres, density, peak: int, direction: int, bandwidth: float = 0.0) -> float:
    """A standard deviation for one peak from its half width on one side
    (half width at half maximum / 1.1774 for a normal peak), less the kernel's
    own width (a smoothed peak is wider by the bandwidth, in quadrature)."""
    return _less_kernel(_half_width(centres, density, peak, direction) / 1.1774, bandwidth)


def tail_spread(centres, density, peak: int, direction: int, bandwidth: float = 0.0,
                *, level: float = 0.02) -> float:
    """A standard deviation for one peak from how far its flank reaches on one side:
    the width down to ``level`` of its height (or to the flank's lowest point, where
    another population makes the density rise first), as a normal peak of that width
    at that level would have it, less the kernel's width. Unlike the half width it
    sees a tail heavier than a normal peak's, which is what decides how many
    negatives lie beyond a cut 3 SDs out."""
    walk = _flank(density, peak, direction)
    under = np.flatnonzero(walk < level * walk[0])
    rise = _first_rise(walk)
    stop = min(under[0] if under.size else walk.size - 1,
               walk.size - 1 if rise is None else rise)
    if stop < 1:
        return peak_spread(centres, density, peak, direction, bandwidth)
    reached = max(float(walk[stop] / walk[0]), 1e-6)
    if reached >= 0.5:                     # a valley above half height: use the half width
        return peak_spread(centres, density, peak, direction, bandwidth)
    sd = stop * float(centres[1] - centres[0]) / np.sqrt(2 * np.log(1 / reached))
    return _less_kernel(sd, bandwidth)


def _steepest(density, peak: int, direction: int) -> int | None:
    """Index (from the peak, along ``direction``) of the steepest descent of the
    peak's own flank: before it falls below a fifth of the peak, and before the
    density, once under 80% of the peak, rises again (the far flank of a bump
    beyond, too small to count as a peak, is not this peak's; a wiggle on the
    peak's cap is not a bump)."""
    walk = _flank(density, peak, direction)
    if walk.size < 3:
        return None
    slope = np.diff(walk)
    own = np.flatnonzero(walk[1:] < 0.2 * walk[0])
    rise = _first_rise(walk)
    stop = min(own[0] + 1 if own.size else slope.size, slope.size if rise is None else rise)
    k = int(np.argmin(slope[:stop]))
    return k if slope[k] < 0 else None


def peak_end(centres, density, peak: int, direction: int, *, flat: float = 0.2) -> int | None:
    """Where a peak's flank ends, walking in ``direction``: past the steepest
    descent, the first point whose slope has eased to ``flat`` of that
    steepest slope. On a lone normal peak this is about 2.5 SD from the mode;
    where a dim population sits on the flank as a shoulder, it is near where
    the shoulder's own slow fall begins. None when the flank never eases
    inside the grid."""
    walk = _flank(density, peak, direction)
    steep = _steepest(density, peak, direction)
    if steep is None:
        return None
    slope = np.diff(walk)
    eased = np.flatnonzero(slope[steep:] > flat * slope[steep])
    if not eased.size:
        return None
    return peak + direction * (steep + int(eased[0]))


#: The height, as a share of a lone peak's, above which the place its flank eased is
#: said not to be where the peak ends
HIGH_END = 0.5


#: How unlikely, were the lone peak symmetric, the imbalance of its tails must be for
#: them to outweigh where the peak sits on the scale. In a parent of a hundred events,
#: nine spread below an unstained peak and one above happen by chance one time in a
#: hundred; fifteen below and none above, once in 30,000. A tail that is not clear
#: enough still decides where the place does not.
TAIL_P = 0.001


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exact (n is a count of tail events)."""
    return sum(math.comb(n, i) for i in range(max(k, 0), n + 1)) / 2 ** n


def _side_of_minority(centres, density, ends: dict[int, int | None], n_events: int
                      ) -> tuple[int | None, float]:
    """(+1, p) when clearly more events lie beyond the upper end of the lone peak than
    beyond its lower end (the minority is above it: at least 1% of the events and
    three times the other tail), (-1, p) the other way, (None, 1.0) when the tails do
    not say (a symmetric peak, or too few events beyond either end). ``p`` is how
    likely a symmetric peak would leave that imbalance (0 past a thousand tail events,
    where three to one is never chance)."""
    dx = float(centres[1] - centres[0])
    mass = {}
    for d, e in ends.items():
        if e is None:
            mass[d] = 0.0
        else:
            mass[d] = float(density[e:].sum() * dx) if d > 0 else float(density[:e + 1].sum() * dx)
    for d in (1, -1):
        if mass[d] >= 0.01 and mass[d] >= 3 * mass[-d]:
            ours, theirs = round(mass[d] * n_events), round(mass[-d] * n_events)
            total = ours + theirs
            return d, (0.0 if total > 1000 else _binomial_tail(ours, total))
    return None, 1.0


def tail_threshold(x, *, n_sd: float = 3.0, quantile: float | None = None,
                   side: str = "above", fdr: float | None = None) -> Threshold:
    """A cut beside the main peak: its mode + ``n_sd`` SDs (``side='above'``, for
    dim or rare positives), or its mode minus ``n_sd`` SDs (``side='below'``,
    for 'low' phenotypes such as CD127low). The SD comes from the half width of
    the peak on the side the other population does not reach, so neither that
    population nor a distant bump of artefacts inflates it. With ``quantile``,
    the cut is that quantile of the values instead.

    With ``fdr``, for rare positives (cytokine+ cells at 0.1% of their parent,
    where a fixed 3 SD leaves as many negatives beyond the cut as positives): the
    cut nearest the peak, and no nearer than ``n_sd`` SDs, beyond which a normal
    peak of that mode, with the SD its far flank shows (``tail_spread``: a negative
    spread wide below zero by compensation no longer pushes the cut out, a heavy upper
    tail no longer pulls it in) and as many events as the parent, would account for at
    most ``fdr`` of the events found there; where no cut meets it, none (the cut at
    infinity: no population stands out of the peak's own tail).
    """
    x = on_scale(x)
    if x.size < 10:
        raise TooFewEvents(f"too few events on the scale ({x.size}) for a tail threshold")
    if side not in ("above", "below"):
        raise GatingError(f"side must be 'above' or 'below', not {side!r}")
    if quantile is not None:
        value = float(np.quantile(x, quantile))
        return Threshold(value, (), note=f"{quantile:g} quantile")
    centres, density, bandwidth = smoothed_density(x)
    top, mode = peak_centre(centres, density, int(np.argmax(density)))
    sign = 1.0 if side == "above" else -1.0
    sd = peak_spread(centres, density, top, -int(sign), bandwidth)
    if fdr is not None:
        # rare positives leave the far flank to the peak's own tail: measure it there
        far = tail_spread(centres, density, top, int(sign), bandwidth)
        cut = _few_false_cut(x, mode, far, sign, fdr, start_sd=n_sd)
        if cut is None:
            # a step-up procedure with no discovery: n SDs out would count the peak's
            # own tail (0.1-0.4% of an unstimulated tube's T cells) as positives
            return Threshold(sign * np.inf, (mode,), note=(
                f"no cut {n_sd:g} or more SDs out leaves at most {fdr:g} of the events "
                f"beyond it to the peak's own tail (mode {_at(mode)}, SD {far:.3g} from its "
                f"far flank), with {FDR_MIN_EVENTS} or more there: none stand out of the "
                "peak; the population is empty"))
        k = abs(cut - mode) / far
        return Threshold(cut, (mode,), note=f"mode {_at(mode)} {'+' if sign > 0 else '-'} "
                         f"{k:.2f} x {far:.3g} (the SD its far flank shows): at most "
                         f"{fdr:g} of the events beyond it expected from the peak")
    return Threshold(mode + sign * n_sd * sd, (mode,),
                     note=f"mode {_at(mode)} {'+' if sign > 0 else '-'} {n_sd:g} x {sd:.3g}")


#: Events beyond an ``fdr`` tail cut, at the least: a handful of outliers is no population
FDR_MIN_EVENTS = 10


def _few_false_cut(x, mode: float, sd: float, sign: float, fdr: float,
                   start_sd: float = 2.0, min_events: int = FDR_MIN_EVENTS) -> float | None:
    """The cut nearest ``mode`` (at least ``start_sd`` SDs out, along ``sign``)
    beyond which the events a normal peak of ``mode`` and ``sd`` with ``x.size``
    events would leave are at most ``fdr`` of the events observed there, and those are
    ``min_events`` or more; None where no cut qualifies."""
    z = sign * (np.asarray(x, dtype=np.float64) - mode) / sd
    out = np.sort(z[z > start_sd])[::-1]             # outermost first
    if out.size == 0:
        return None
    expected = x.size * normal_tail(out)             # normal tail beyond each event
    observed = np.arange(1, out.size + 1)
    # a handful of outliers in a heavy tail is no population: at least min_events
    ok = np.flatnonzero((expected <= fdr * observed) & (observed >= min_events))
    if ok.size == 0:
        return None
    return float(mode + sign * out[ok[-1]] * sd)      # step-up: the nearest that holds


EXPECT = ("mostly-positive", "mostly-negative")

#: Where a lone peak sits on a fluorescence scale, as a fraction of the span from
#: zero signal to the top of scale: unstained cells (autofluorescence, spreading)
#: sit in the lowest 40% (up to about 10^3 on a 4.5-decade logicle of 262,144),
#: stained ones in the top 40%; between the two a tail that chance could make decides
#: first, and failing that the nearer end of the scale.
UNSTAINED_BELOW, STAINED_ABOVE = 0.4, 0.6


def scale_place(value: float, scale: tuple[float, float]) -> float:
    """Where ``value`` lies on a display ``scale`` (zero signal, top): 0 at zero signal,
    1 at the top."""
    zero, top = scale
    return (value - zero) / (top - zero)


def side_by_place(mode: float, scale: tuple[float, float] | None,
                  band: tuple[float, float] = (UNSTAINED_BELOW, STAINED_ABOVE)) -> int | None:
    """+1 when a lone peak at ``mode`` sits where unstained cells lie on the
    display ``scale`` (zero signal, top of scale: below ``band``), so it is the
    negative population and the cut belongs above it; -1 when it sits where stained
    cells lie (above ``band``); None without a scale or inside the band."""
    if scale is None:
        return None
    place = scale_place(mode, scale)
    if place >= band[1]:
        return -1
    if place <= band[0]:
        return 1
    return None


#: How far a lone peak's octile skewness must lie from zero, in standard errors of a
#: normal sample's (1.03 / sqrt(n)), for ``lean`` to read a side from it: one time in
#: a hundred by chance.
LEAN_Z = 2.6
#: The same for a cut with populations on both of its sides, where nothing else says
#: which side the lone peak's population is on: one time in ten by chance.
LEAN_WEAK_Z = 1.645


def lean(x: np.ndarray, z: float = LEAN_Z) -> int | None:
    """+1 when the events lean above their median (the 10-50-90% octile skewness is
    clearly positive: a population merged into the upper flank), -1 below, None when
    a symmetric peak could lean so by chance (``z`` standard errors)."""
    if x.size < 50:
        return None
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    if p90 <= p10:
        return None
    skew = (p90 + p10 - 2.0 * p50) / (p90 - p10)
    if abs(skew) < z * 1.03 / math.sqrt(x.size):
        return None
    return 1 if skew > 0 else -1


def _lean_cut(x, centres, main: int, ends: dict[int, int | None], z: float = LEAN_Z
              ) -> tuple[int, float] | None:
    """The side the events of a lone peak (mode at index ``main``) lean to (``lean``),
    and the cut there: the other population widens the flank it leans to, so that
    flank ends too far out, and the peak ends as far on that side as its clean flank
    does on the other (``ends``: each flank's end, from ``peak_end``). None where they
    do not lean or the clean flank never ends."""
    leaning = lean(x, z)
    if leaning is None or ends[-leaning] is None:
        return None
    return leaning, 2.0 * float(centres[main]) - float(centres[ends[-leaning]])


#: How far below zero signal (a share of the display scale) a peak's mode must lie to be
#: taken for over-compensated events rather than the unstained population.
BELOW_ZERO = 0.02


def below_zero_floor(centres, density, peaks, scale) -> float | None:
    """Where to leave out a peak of over-compensated events: the density minimum above
    the highest peak whose mode lies below zero signal (by ``BELOW_ZERO`` of the scale)
    while a peak at least as high lies nearer zero, where unstained cells lie
    (``UNSTAINED_BELOW``). No cell sits below zero signal; compensation that takes too
    much of another dye's signal pushes that dye's bright cells there, as a peak of their
    own beside the unstained cells. A spillover value 20% too high left such a peak in a
    real file's NK1.1 channel, and the deepest valley, between the two, made 66% of the
    cells NK1.1+ (5% in the file). With no unstained peak above it, the peak below zero
    is the unstained population itself, a little over-compensated as a whole (a
    FACSymphony export's CD3- cells, whose mode lay just below zero, beside the CD3+
    peak). None without a scale, or with no such peak."""
    if scale is None or len(peaks) < 2:
        return None
    zero, top = scale
    margin = BELOW_ZERO * (top - zero)
    below = [p for p in peaks if centres[p] < zero - margin]
    if not below:
        return None
    low = max(below)
    unstained = zero + UNSTAINED_BELOW * (top - zero)
    taller = [p for p in peaks if p > low and zero - margin <= centres[p] <= unstained
              and density[p] >= density[low]]
    if not taller:
        return None
    nxt = min(p for p in peaks if p > low)
    window = np.arange(low, nxt + 1)
    return float(centres[valley_bottom(density, window)])


def share_on_side(x: np.ndarray, cut: float, side: str) -> float:
    """The share of ``x`` on the ``side`` ('above' or 'below') of ``cut``."""
    above = np.count_nonzero(x > cut) / x.size if x.size else 0.0
    return above if side == "above" else 1.0 - above


def _bounded_valley(centres, density, a: int, b: int, lo: float, hi: float) -> int | None:
    """The index of the density minimum between peaks ``a`` and ``b`` within the
    bounds ``lo``..``hi``, or None where no bin between them lies within them."""
    between = np.arange(a, b + 1)
    window = between[(centres[between] >= lo) & (centres[between] <= hi)]
    return valley_bottom(density, window) if window.size else None


def _valley_keeping_majority(x, centres, density, peaks, lo, hi, side):
    """((peak, peak), cut index) of the valley between neighbouring peaks, within the
    bounds, that leaves most of ``x`` on ``side`` and lies furthest that way (the
    highest such cut for 'above'), or None."""
    found = []
    for a, b in zip(peaks[:-1], peaks[1:]):
        cut = _bounded_valley(centres, density, a, b, lo, hi)
        if cut is not None and share_on_side(x, float(centres[cut]), side) >= 0.5:
            found.append(((a, b), cut))
    if not found:
        return None
    return found[-1] if side == "above" else found[0]


#: The share of the parent from which a valley that ``majority`` passed over (keeping every
#: peak) left so nearly half on the population's side that the template's "most" may be
#: wrong for this file: a warning then. Two of a culture's 32 wells, dead cells 51% of the
#: single cells, had their live/dead valley passed over and the dead kept as live (F1
#: 0.63); a whole-blood lymphoma file's small cells, 51% of its mononuclear events, were
#: rightly kept so: near half, only the plot tells. A HIPC B tube's monocytes, 35% above
#: the valley between them and the lymphocytes, are the case ``majority`` is for.
NEAR_HALF = 0.4

#: Where the valley ``majority`` passed over left under this share of the parent on the
#: population's side, that side is a bump of the population's own extreme few, not the
#: population outnumbered: a FACSAria tube triggered above its debris, one peak of cells in
#: FSC-A and 0.5% large cells beyond a valley (the debris gate keeps both, no warning);
#: FlowCAP-I's GvHD tube 11, 95% debris, leaves its cells, 5%, beyond the valley (a
#: warning: debris outnumbering the cells)
FEW_BEYOND = 0.01

#: The least share of the events a shoulder beyond the outermost peak must hold to be
#: taken for the outermost population (``shoulder_beyond``): a lone normal peak leaves
#: 0.6% of its events beyond where its flank ends.
SHOULDER_SHARE = 0.01


def _flank_end(centres, density, peak: int, direction: int, flat: float
               ) -> tuple[int, float, float] | None:
    """Where ``peak``'s flank ends walking in ``direction`` (``peak_end``), the peak's SD
    on that side, and the share of the events a normal peak of that SD leaves beyond
    the end; None where the flank never ends or ends within 1.5 SD of the mode (a dip
    within the peak, a few events split by noise: a normal peak's flank ends 2.5 SD
    out)."""
    end = peak_end(centres, density, peak, direction, flat=flat)
    if end is None:
        return None
    sd = peak_spread(centres, density, peak, direction)
    reach = abs(centres[end] - centres[peak]) / sd
    if reach < 1.5:
        return None
    own = density[peak] * sd * np.sqrt(2 * np.pi) * normal_tail(np.array([reach]))[0]
    return end, sd, float(own)


def shoulder_beyond(centres, density, peak: int, direction: int, n_events: int, *,
                    min_events: float = 10.0, flat: float = 0.2) -> int | None:
    """Where the flank of ``peak`` ends, walking in ``direction``, when a population lies
    beyond it as a shoulder, too low beside the peak to count as a peak of its own; None
    otherwise. A shoulder starts where the flank ends, 1.5 SD or more from the mode;
    beyond, the density stays under half the peak's height and stops falling (it rises
    again to a mode of a tenth of the peak's height or more, or one SD further out it
    still stands at three quarters of its level), and it holds ``SHOULDER_SHARE`` of the
    events or more, ``min_events``, and three times what the peak, were it normal, would
    leave there. A viability dye's dead cells in a small tube: 100-200 dead among
    1,300-2,600 events make a shelf above the live monocytes' peak."""
    found = _flank_end(centres, density, peak, direction, flat)
    if found is None:
        return None
    end, sd, own = found
    walk = _flank(density, end, direction)
    dx = float(centres[1] - centres[0])
    if walk.max() > 0.5 * density[peak]:
        return None                     # a second peak, not a shoulder
    # a shoulder, unlike a tail, stops falling: it rises again to a mode of its own, or
    # one SD further out still stands at three quarters of where the peak ended
    rises = np.flatnonzero(np.diff(walk) > 0)
    mode = bool(rises.size) and walk[rises[0]:].max() >= 0.1 * density[peak]
    if not mode and walk[min(int(round(sd / dx)), walk.size - 1)] < 0.75 * walk[0]:
        return None
    held = float(walk.sum() * dx)
    # three times what the peak itself, were it normal, leaves there
    if held < max(SHOULDER_SHARE, 3 * own) or held * n_events < min_events:
        return None
    return end


#: Events a population beyond a shoulder must hold, as a share of its parent
#: (``beyond_shoulder``): FoxP3-bright Treg, 2-3% of CD4 T cells beyond the dim FoxP3 of
#: activated ones
BEYOND_SHARE = 0.005


def beyond_shoulder(centres, density, peak: int, direction: int, n_events: int, *,
                    min_events: float = 20.0, flat: float = 0.2) -> int | None:
    """Where a shoulder beside a lone ``peak`` ends, walking in ``direction``, when a
    population of its own lies beyond that shoulder; None otherwise. The shoulder
    (``shoulder_beyond``) rises to a mode of its own or stands as a shelf; its flank is
    taken from its highest point beyond the peak's end, and where that flank ends the
    events further out must hold ``BEYOND_SHARE`` of the parent and ``min_events``, and
    three times what the shoulder, were it normal, would leave there. With a third of a
    demo trial's CD4 T cells activated on lenalidomide, their dim FoxP3 made a shoulder
    that hid the FoxP3-bright Treg: a lone peak's end took the shoulder for the
    brightest population (3-10 times the Treg)."""
    start = shoulder_beyond(centres, density, peak, direction, n_events, flat=flat)
    if start is None:
        return None
    # the shoulder's own top: its mode, or on a shelf that never rises the flattest
    # point before the shelf has fallen to half its height
    walk = _flank(density, start, direction)
    high = walk >= 0.5 * walk[0]
    reach = int(np.argmin(high)) if not high.all() else walk.size
    if reach < 3:
        return None
    rise = int(np.argmax(walk[:reach]))
    top = start + direction * (rise if rise > 0 else int(np.argmax(np.diff(walk[:reach]))))
    found = _flank_end(centres, density, top, direction, flat)
    if found is None:
        return None
    end, _, own = found
    dx = float(centres[1] - centres[0])
    held = float(_flank(density, end, direction).sum() * dx)
    if held < max(BEYOND_SHARE, 3 * own) or held * n_events < min_events:
        return None
    return end


def _runs_off_scale(x, centres, density, bandwidth: float, end: int, direction: int,
                    piled: dict) -> bool:
    """Whether the shelf beyond ``end`` is the peak's own flank cut off by the end of
    the scale rather than a population beyond it: events pile at that end (saturated,
    ``piles``) and the density two bandwidths inside the outermost event still stands
    at half its level where the peak's flank ended. An LST export's eosinophils spread up to the top of
    side scatter, a fifth of them piled there, and the flank left above their peak
    looked like a shoulder: the cut went inside them (197 of 573 kept)."""
    if ("top" if direction > 0 else "bottom") not in piled or not x.size:
        return False
    # two bandwidths inside the outermost event: a density estimate halves at the edge
    # of its data, so the edge itself would understate how much still lies there
    inside = (x.max() - 2 * bandwidth) if direction > 0 else (x.min() + 2 * bandwidth)
    at = int(np.clip(np.searchsorted(centres, inside), 0, centres.size - 1))
    return direction * (at - end) > 0 and bool(density[at] >= 0.5 * density[end])


#: How many times the events beyond a valley a shoulder before it must hold for that
#: valley to part a broad population's brightest few from the rest (``shoulder_inside``)
#: however deep the valley: a COVID-19 ICS file's CD14 monocytes, 2,200 events in the
#: shoulder to 240 in the bump beyond. Between three and this many times, only a shallow
#: valley (``SHALLOW``) does: a lyoplate file's CD8 T cells' memory shoulder in CD45RA
#: fell to a bump of its dimmest 20% above the valley (3.8 times); a whole-blood LST
#: file's 4,700 B cells rose to a CD19 peak of their own, 64% above the valley, beyond
#: 15,400 CD19-dim myeloid cells (3.2 times).
SHOULDER_OVER_BEYOND = 5.0
#: A valley shallower than this (1 - its density over the peak beyond it) barely parts
#: the bump beyond from the shoulder before it
SHALLOW = 0.5


def shoulder_inside(centres, density, peak: int, cut: int, n_events: int, *,
                    min_events: float = 10.0, flat: float = 0.2) -> int | None:
    """Where ``peak``'s flank ends, walking toward the valley at ``cut``, when a
    population lies on that flank as a shoulder holding three times the events beyond
    the valley, and ``SHOULDER_OVER_BEYOND`` times them where the valley is not
    ``SHALLOW``; None otherwise. Such a valley parts the brightest few of a broad
    population from the rest of it (a COVID-19 ICS file's CD14 monocytes: 2,200 events
    falling slowly from where the CD14- peak ends to a bump of 240 at the top, the
    valley before that bump kept 15% of the expert's monocytes). A shoulder, unlike a
    tail, still stands at half its height two of the peak's SDs past the peak's end,
    and holds three times what the peak, were it normal, would leave there."""
    direction = 1 if cut > peak else -1
    found = _flank_end(centres, density, peak, direction, flat)
    if found is None or direction * (cut - found[0]) <= 2:
        return None
    end, sd, own = found
    dx = float(centres[1] - centres[0])
    two_sd = end + direction * max(int(round(2 * sd / dx)), 1)
    if direction * (cut - two_sd) <= 0 or density[two_sd] < 0.5 * density[end]:
        return None                     # a tail falling into the valley
    lo, hi = sorted((end, cut))
    held = float(density[lo:hi + 1].sum() * dx)
    past = density[cut:] if direction > 0 else density[:cut + 1]
    beyond = float(past.sum() * dx)
    if held < max(SHOULDER_SHARE, 3 * own, 3 * beyond) or held * n_events < min_events:
        return None
    if held < SHOULDER_OVER_BEYOND * beyond and density[cut] < (1 - SHALLOW) * past.max():
        return None                     # a population of its own beyond a deep valley
    return end


#: How far a peak's flank has eased, as a share of its steepest slope, where ``foot``
#: places its end: a floor of intermediate events beside the peak eases it further than
#: a valley does (``peak_end``'s 0.2); on fifteen lyoplate files of five centres this put
#: the CD8 T cells' CD45RA cut a median of 56 display units from the experts' (the
#: valley's lowest point: 302)
FOOT_FLAT = 0.05
FEET = ("upper", "lower")
#: The share of the events between a foot and the valley for `template check` to draw
#: that foot: across a clean gap the foot moves the cut over next to none
FLOOR_SHARE = 0.01


def foot_of(centres, density, peaks, top, cut: int, foot: str) -> int | None:
    """Where the ``foot`` ('upper' or 'lower') of the two peaks ``top`` ends, walking
    toward the valley at ``cut``, when that lies between the peak and the valley; None
    otherwise (the valley lies within the peak's flank, the flank never eases, or
    another of ``peaks`` lies between the peak and the valley). A floor of intermediate
    events between two peaks (CD8 T cells' memory cells at every CD45RA level up to the
    naive peak) puts the valley's lowest point anywhere on it; the foot gives that floor
    to the other peak's population."""
    peak, direction = (int(top[1]), -1) if foot == "upper" else (int(top[0]), 1)
    if np.any((direction * (np.asarray(peaks) - peak) > 0)
              & (direction * (cut - np.asarray(peaks)) > 0)):
        return None
    end = peak_end(centres, density, peak, direction, flat=FOOT_FLAT)
    if end is None or not 0 < direction * (end - peak) < direction * (cut - peak):
        return None
    return end


def other_cuts(centres, density, peaks, *, flat: float = 0.2) -> list[tuple[float, str]]:
    """Where the threshold's settings would cut this density, each with the setting that
    picks it: the valley between each two neighbouring peaks (the first two's with
    `valley: first`, the last two's with `valley: last`, the two most prominent peaks'
    by default, any other only with `bounds` round it), where either of the default
    valley's peaks ends before it (``foot``), or, with one peak, where it ends
    on either side (which `expect` picks). What `template check` draws beside the cut
    placed, so a template's author sees the choices a density offers."""
    peaks = np.sort(np.asarray(peaks, dtype=int))
    if peaks.size == 0:                 # too few events for a peak: no setting cuts
        return []
    if peaks.size == 1:
        out = []
        for direction, setting in ((1, "expect: mostly-negative"),
                                   (-1, "expect: mostly-positive")):
            end = peak_end(centres, density, int(peaks[0]), direction, flat=flat)
            if end is not None:
                out.append((float(centres[end]), setting))
        return out
    settings: dict[int, list[str]] = {}
    between: dict[int, str] = {}        # bounds from one of the valley's peaks to the other
    for k, (a, b) in enumerate(zip(peaks[:-1], peaks[1:])):
        cut = valley_bottom(density, np.arange(a, b + 1))
        labels = settings.setdefault(cut, [])
        labels += ["valley: first"] * (k == 0) + ["valley: last"] * (k == peaks.size - 2)
        between.setdefault(cut, f"bounds: [{centres[a]:.4g}, {centres[b]:.4g}]")   # YAML
    top = _beside_dominant(density, peaks, _most_prominent_two(density, peaks))
    deepest = valley_bottom(density, np.arange(top[0], top[1] + 1))
    settings.setdefault(deepest, []).insert(0, "valley: deepest (the default)")
    dx = float(centres[1] - centres[0])
    for foot in FEET:               # where the default valley lies on a floor of events
        ended = foot_of(centres, density, peaks, top, deepest, foot)
        if ended is not None and \
                density[min(ended, deepest):max(ended, deepest) + 1].sum() * dx >= FLOOR_SHARE:
            settings.setdefault(ended, []).append(f"foot: {foot}")
    out = [(float(centres[i]), ", ".join(labels) or between.get(i, "bounds round it"))
           for i, labels in sorted(settings.items())]
    # the highest peak alone, where the others are small: a min_prominence above theirs
    # hides them, and the cut goes where that peak ends on the side they lay
    highest = int(peaks[np.argmax(density[peaks])])
    others = _prominences(density, peaks)[peaks != highest] / density.max()
    if others.max() < 0.2:
        hide = math.ceil(others.max() * 100 + 1e-9) / 100
        for direction, expect in ((1, "mostly-negative"), (-1, "mostly-positive")):
            if np.any((peaks - highest) * direction > 0):
                end = peak_end(centres, density, highest, direction, flat=flat)
                if end is not None:
                    out.append((float(centres[end]),
                                f"min_prominence: {hide:g}, expect: {expect}"))
    return sorted(out)


def density_threshold(x, *, bounds: tuple[float | None, float | None] = (None, None),
                      adjust: float = 1.0, min_prominence: float = MIN_PROMINENCE,
                      fallback_sd: float = 3.0, valley: str = "deepest",
                      side: str = "above", expect: str | None = None,
                      majority: bool = False, flat: float = 0.2,
                      scale: tuple[float, float] | None = None,
                      both_sides: bool = False, foot: str | None = None) -> Threshold:
    """A density minimum between two peaks of ``x``, or the end of a lone peak.

    ``valley`` chooses the peaks: 'deepest' the two most prominent, 'first'
    the two lowest in value (negatives against the first positives, when
    positives come dim and bright), 'last' the two highest; with 'first' or
    'last', a shoulder beyond the outermost peak (``shoulder_beyond``) is the
    outermost population, and the cut goes where that peak ends. With 'deepest',
    a valley with under a fifth of the events beyond it that a shoulder on the larger
    peak's flank holds (a third, where the valley is shallow) parts a broad
    population's brightest few from the rest of it; the cut goes where that peak ends
    (``shoulder_inside``). ``bounds`` restricts
    where the cut may fall.

    With one peak the cut goes where that peak's flank ends (``peak_end``) on
    the side where the other population lies: above the peak when it holds
    the negatives, below it when the positives make up most of the parent.
    The side is decided from which tail holds more events, or from ``expect``
    ('mostly-positive': the peak is the positive population; 'mostly-negative'),
    or, with no tail and no hint, from where the peak sits on the display
    ``scale`` (zero signal, top of scale; ``side_by_place``: an unstained
    control's lone peak is negative), without a scale from the events' ``lean``
    (the cut then mirrors the end of the peak's clean flank), and failing that
    from ``side`` (the population asked for is taken to be the minority). Where
    populations lie on ``both_sides`` of the cut (a quadrant's divider), no side is the
    one asked for, and a weaker lean counts before a tail that chance could make. If the
    flank never ends, the cut is the mode +- ``fallback_sd`` SDs. The result says which
    rule placed the cut.

    ``majority``: the population (on ``side``) is most of the parent. A valley
    that would leave less than half of ``x`` on that side lies between two of
    its own peaks; the cut moves to the valley between neighbouring peaks that
    leaves most there and lies furthest toward ``side``, or, with none, to where
    the outermost peak ends (a lone peak is the population). With ``side='below'``
    and ``valley='last'`` (everything below the brightest population: a viability
    dye), a lone peak with no shoulder above it and no bounds keeps every event.
    """
    if valley not in ("deepest", "first", "last"):
        raise GatingError(f"valley must be 'deepest', 'first' or 'last', not {valley!r}")
    if expect is not None and expect not in EXPECT:
        raise GatingError(f"expect must be one of {', '.join(EXPECT)}, not {expect!r}")
    if foot is not None and foot not in FEET:
        raise GatingError(f"foot must be one of {', '.join(FEET)}, not {foot!r}")
    x, piled, centres, density, bandwidth, peaks, left_out = density_on_scale(
        x, adjust=adjust, min_prominence=min_prominence, scale=scale)
    # without a display scale (values kept as stored: display values, scatter), zero
    # signal is still 0 and the events' own top stands for the top of the scale
    floor = below_zero_floor(centres, density, peaks, scale if scale is not None else
                             (0.0, float(centres.max())) if centres.max() > 0 else None)
    if floor is not None:
        kept = x[x > floor]
        left_out += (f"{x.size - kept.size} events in a peak below zero signal (over-"
                     f"compensated) left out of the density below {_at(floor)}; ")
        x = kept
        centres, density, bandwidth = smoothed_density(x, adjust=adjust)
        peaks = find_peaks(centres, density, min_prominence=min_prominence, n_events=x.size,
                           bandwidth=bandwidth)
    lo = -np.inf if bounds[0] is None else bounds[0]
    hi = np.inf if bounds[1] is None else bounds[1]
    positions = tuple(float(centres[i]) for i in peaks)
    main = None                 # the peak a lone-peak rule cuts beside
    passed_over = None          # the share a valley left that majority passed over
    if len(peaks) >= 2:
        if valley == "first":
            top = peaks[:2]
        elif valley == "last":
            top = peaks[-2:]
        else:
            top = _most_prominent_two(density, peaks)
        note = "no density minimum between the peaks lies within the bounds"
        cut = _bounded_valley(centres, density, top[0], top[1], lo, hi)
        chosen = (top, cut) if cut is not None else None
        if valley in ("first", "last"):
            outer, outward = (top[1], 1) if valley == "last" else (top[0], -1)
            end = shoulder_beyond(centres, density, outer, outward, x.size)
            if end is not None and _runs_off_scale(x, centres, density, bandwidth, end,
                                                   outward, piled):
                end = None
            if end is not None and lo <= centres[end] <= hi and (
                    not majority or share_on_side(x, float(centres[end]), side) >= 0.5):
                depth = 1.0 - density[end] / _flank(density, end, outward).max()
                return Threshold(float(centres[end]), positions, fell_back=True,
                                 depth=float(depth), note=(
                    f"{left_out}a shoulder of events {'above' if outward > 0 else 'below'} "
                    f"the {valley} peak "
                    f"({_at(centres[outer])}) is the {valley} population: cut at "
                    f"{_at(centres[end])}, where that peak ends"))
        share = share_on_side(x, float(centres[chosen[1]]), side) if majority and chosen else 1.0
        if share < 0.5 - 1.0 / np.sqrt(x.size):
            # this valley lies between two of the population's own peaks (cells of two
            # kinds, no debris peak below them): the valley beyond them that leaves most
            # events in the population, else the cut goes where the outermost of its
            # peaks ends. Only under half by more than two binomial SEs: 49% of a
            # thinned file's 800 events does not show the population to be the minority
            how = (f"the valley between the peaks at {_at(centres[top[0]])} and "
                   f"{_at(centres[top[1]])} (at {_at(centres[chosen[1]])}) leaves {share:.0%} "
                   f"of the events {side} it, and the population is most of its parent "
                   "(majority; where the events it leaves out are debris outnumbering "
                   "the cells, leave majority out)")
            chosen = _valley_keeping_majority(x, centres, density, peaks, lo, hi, side)
            if chosen is None:
                note, passed_over = how, share
                main = int(peaks[0] if side == "above" else peaks[-1])
            else:
                left_out += (f"{how}; cut in the valley between the peaks at "
                             f"{_at(centres[chosen[0][0]])} and {_at(centres[chosen[0][1]])}; ")
        if chosen is not None:
            top, cut = chosen
            big = top[0] if density[top[0]] >= density[top[1]] else top[1]
            inner = shoulder_inside(centres, density, big, cut, x.size) \
                if valley == "deepest" and not majority and foot is None else None
            if inner is not None and lo <= centres[inner] <= hi:
                return Threshold(float(centres[inner]), positions, fell_back=True, note=(
                    f"{left_out}the valley at {_at(centres[cut])} has beyond it few of the "
                    f"events a shoulder on the flank of the peak at "
                    f"{_at(centres[big])} holds (the brightest few of a broad population): "
                    f"cut at {_at(centres[inner])}, where that peak ends"))
            beside = _beside_dominant(density, peaks, top) \
                if valley == "deepest" and not majority else top
            if beside is not top and (near := _bounded_valley(
                    centres, density, beside[0], beside[1], lo, hi)) is not None:
                left_out += (f"the peak at {_at(centres[big])} dominates: cut in its own "
                             f"valley, not at the lowest point between it and the peak at "
                             f"{_at(centres[top[0] if big == top[1] else top[1]])}; ")
                top, cut = beside, near
            depth = 1.0 - density[cut] / min(density[top[0]], density[top[1]])
            lowest = valley_bottom(density, np.arange(top[0], top[1] + 1))
            pinned = None
            if lowest != cut:           # the bounds keep the cut out of the valley's bottom
                left_out += (f"the valley's lowest point ({_at(centres[lowest])}) lies outside "
                             f"the bounds: cut at {_at(centres[cut])}, within them; ")
                pinned = _pinned(centres, density, peaks, float(centres[cut]))
            ended = foot_of(centres, density, peaks, top, cut, foot) if foot is not None else None
            if ended is not None and lo <= centres[ended] <= hi:
                peak = top[1] if foot == "upper" else top[0]
                left_out += (f"foot: {foot}: cut at {_at(centres[ended])}, where the {foot} "
                             f"peak ({_at(centres[peak])}) ends, not at the valley's lowest "
                             f"point ({_at(centres[cut])}); ")
                cut, pinned = ended, None
            return Threshold(float(centres[cut]), positions, depth=float(depth),
                             note=left_out.rstrip("; "), pinned=pinned)
    else:
        note = "one peak"
    if main is None:
        main = int(peaks[np.argmax(density[peaks])]) if len(peaks) else int(np.argmax(density))
    if (majority and valley == "last" and side == "below" and len(peaks) == 1
            and not (np.isfinite(lo) or np.isfinite(hi))
            and shoulder_beyond(centres, density, main, 1, x.size) is None):
        # the population is its parent's one peak and nothing is brighter (no peak, no
        # shoulder: no dead cells); where the peak ends lie live cells of the kinds
        # brighter in this channel (FlowSOM's 68983: 11% of the NK T cells)
        return Threshold(np.inf, positions, note=(
            f"{left_out}one peak ({_at(centres[main])}) and no peak or shoulder above it: "
            "nothing brighter to leave out, every event kept (majority, valley: last)"))
    ends = {d: peak_end(centres, density, main, d, flat=flat) for d in (1, -1)}
    against = 0                 # the place's side, where the tails decided the other way
    by_place = False            # the peak's place alone decided the side
    guessed = False             # a weak sign or the default decided it
    mirrored = None             # a cut mirrored from the peak's clean flank (``lean``)
    if majority:
        direction, why = (-1 if side == "above" else 1), "majority: the peak is the population"
    elif expect is not None:
        direction, why = (-1 if expect == "mostly-positive" else 1), f"expect: {expect}"
    else:
        tail, chance = _side_of_minority(centres, density, ends, x.size)
        direction = tail if chance < TAIL_P else None
        why = "the other population's tail lies on that side"
        if direction is not None and side_by_place(float(centres[main]), scale) == -direction:
            against = -direction
        if direction is None:
            direction = side_by_place(float(centres[main]), scale)
            place = {1: "low on the scale, where unstained cells lie",
                     -1: "high on the scale, where stained cells lie"}.get(direction)
            why = f"no clear tail on either side; the peak sits {place}"
            by_place = direction is not None
        if direction is None and both_sides and not (tail is not None and chance <= 0.05) \
                and (leaned := _lean_cut(x, centres, main, ends, LEAN_WEAK_Z)) is not None:
            # a quadrant's divider: neither side is the one asked for, and a lean that
            # chance makes one time in ten says more than a tail it makes more often (a
            # tail as unlikely as 5% still goes first; a thinned HIPC B tube's 177 B cells,
            # 16% IgD- along the IgD+ peak's lower flank, which then never ends: naive B
            # F1 0 -> 0.94)
            (direction, mirrored), guessed = leaned, True
            why = ("no clear tail, and no place on a scale that says; its events lean that "
                   "way, and populations lie on both sides of the cut")
        if direction is None and tail is not None:
            direction, guessed = tail, True
            why = ("the other population's tail lies on that side, though with so few "
                   "events beyond the peak that chance could make such a tail")
        if direction is None:
            # no tail at all: the nearer end of the scale (a FACSCanto file's 64 CD8+
            # cells, one CD3+ peak at 51% of it, were taken for negatives by `side`)
            direction = side_by_place(float(centres[main]), scale, band=(0.5, 0.5))
            why = {1: "no tail on either side; the peak sits in the lower half of the scale",
                   -1: "no tail on either side; the peak sits in the upper half of the "
                       "scale"}.get(direction)
            by_place = direction is not None
        if direction is None and (leaned := _lean_cut(x, centres, main, ends)) is not None:
            direction, mirrored = leaned
            why = ("no tail on either side and no scale to place the peak on; its events "
                   "lean that way, the other population widening that flank")
        if direction is None:
            direction, guessed = (1 if side == "above" else -1), True
            why = "no tail on either side; the population asked for is taken as the minority"
    mode = float(centres[main])
    end = ends[direction]
    if valley in ("first", "last") and not majority and end is not None and \
            direction == (1 if valley == "last" else -1) == (1 if side == "above" else -1):
        far = beyond_shoulder(centres, density, main, direction, x.size)
        if far is not None and lo <= centres[far] <= hi:
            return Threshold(float(centres[far]), positions, fell_back=True, peak_end=True,
                             note=(f"{left_out}one peak ({_at(mode)}); a shoulder of dimmer "
                                   f"events {'above' if direction > 0 else 'below'} it, and "
                                   f"a population beyond that shoulder: the {valley} "
                                   f"population, cut at {_at(centres[far])}, where the "
                                   "shoulder ends"))
    if mirrored is not None:
        value = float(mirrored)
        rule = (f"cut at {_at(value)}, as far {'above' if direction > 0 else 'below'} the "
                f"peak at {_at(mode)} as its other flank ends ({why})")
    elif end is not None:
        value = float(centres[end])
        rule = (f"cut at {_at(value)}, where the peak at {_at(mode)} ends "
                f"({'above' if direction > 0 else 'below'} it: {why})")
        if density[end] >= HIGH_END * density[main]:
            # a docs-only scientist read 'where the peak ends' of a cut at 85% of the
            # peak's height, on a wiggle that a small `adjust` had let through
            rule += (f"; the density there still stands at {density[end] / density[main]:.0%} "
                     "of the peak's height: the flank eased on a wiggle or a shoulder, not "
                     "where the peak ends (a larger `adjust` smooths wiggles away)")
    else:
        sd = peak_spread(centres, density, main, -direction, bandwidth)
        value = mode + direction * fallback_sd * sd
        rule = (f"cut at the mode {_at(mode)} {'+' if direction > 0 else '-'} {fallback_sd:g} x "
                f"{sd:.3g}: {_at(value)} (the peak's flank never levels off; {why})")
    floor = piled.get("bottom")
    if direction < 0 and floor is not None and value <= floor[1] \
            and at_zero_signal(floor[1], scale):
        # the peak is the population and its flank reaches below zero signal, where a
        # pile of events carries none of the marker (a count of 0): they are not of it
        value = float(np.nextafter(floor[1], np.inf))
        rule += (f"; the {floor[0]} events at zero signal ({_at(floor[1])}) below it carry "
                 "none of the marker: cut just above them")
    clipped = float(np.clip(value, lo, hi))
    # The bounds say where the population's edge lies. When no peak lies beyond the
    # near bound, the population is not in this file (beads a tube was run without),
    # wherever the flank of another population's peak put the cut: the cut goes to the
    # far bound, keeping only what lies beyond it, rather than handing that flank (or,
    # at the near bound, another population) to it.
    # (A quadrant's divider has populations on both sides: its bounds only clip.)
    beyond = [p for p in positions if (p >= lo if side == "above" else p <= hi)] \
        if not both_sides else positions
    if side == "above" and np.isfinite(lo) and np.isfinite(hi) and not beyond:
        clipped, rule = hi, rule + (f"; no peak above the lower bound, so no population of "
                                    f"its own: cut moved to the upper bound ({_at(hi)}), keeping "
                                    "only what lies beyond it (none where it is absent)")
    elif side == "below" and np.isfinite(lo) and np.isfinite(hi) and not beyond:
        clipped, rule = lo, rule + (f"; no peak below the upper bound, so no population of "
                                    f"its own: cut moved to the lower bound ({_at(lo)}), keeping "
                                    "only what lies beyond it (none where it is absent)")
    elif clipped != value:
        rule += f"; clipped to the bounds: cut at {_at(clipped)}"
    absent = bool(np.isfinite(lo) and np.isfinite(hi) and not beyond)
    pinned = _pinned(centres, density, peaks, clipped) \
        if clipped != value and not absent else None
    return Threshold(clipped, positions, fell_back=True,
                     note=f"{left_out}{note}; {rule}",
                     peak_end=end is not None and clipped == value, place=against,
                     placed=scale_place(mode, scale) if by_place else None, guessed=guessed,
                     absent=absent, pinned=pinned, passed_over=passed_over)


@dataclass(frozen=True)
class SingletBand:
    """Single cells lie in a band around the area/height (or width) relation:
    ``lo <= ratio / trend(area) <= hi``, where ``trend`` is the singlets' typical
    ratio at each area (pulse shapes change with size) and ``ratio`` is
    area/height, or the width itself for a width channel."""

    lo: float
    hi: float
    centre: float
    knots: tuple[float, ...] = ()       # areas where the trend is known
    trend: tuple[float, ...] = ()       # the singlets' median ratio there
    width: bool = False                 # second dimension is a pulse width

    def trend_at(self, area) -> np.ndarray:
        if not self.knots:
            return np.ones_like(np.asarray(area, dtype=np.float64))
        return np.interp(area, self.knots, self.trend)

    def relative(self, area, second) -> np.ndarray:
        """Each event's pulse ratio over the singlets' trend at its area, the scale
        ``lo`` and ``hi`` cut on; NaN where the area or the height (width) is not
        positive, a pulse the band was not fitted on and cannot place."""
        a = np.asarray(area, dtype=np.float64)
        b = np.asarray(second, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = (b if self.width else a / b) / self.trend_at(a)
        return np.where((a > 0) & (b > 0), q, np.nan)

    def polygon(self, area_min: float, area_max: float) -> list[tuple[float, float]]:
        """The band as a polygon in (area, height) or (area, width) coordinates."""
        inner = [k for k in self.knots if area_min < k < area_max]
        xs = np.array([area_min, *inner, area_max], dtype=np.float64)
        t = self.trend_at(xs)
        if self.width:                   # width = ratio: the band is lo*t .. hi*t
            low, high = xs * 0 + self.lo * t, xs * 0 + self.hi * t
        else:                            # height = area / ratio
            low, high = xs / (self.hi * t), xs / (self.lo * t)
        return [(float(x), float(y)) for x, y in zip(xs, high)] + \
               [(float(x), float(y)) for x, y in zip(xs[::-1], low[::-1])]


#: how far above the typical singlet's pulse ratio (area/height, or width) for its size a
#: single cell's may lie: large cells (activated T cells, dendritic cells) lie up to 10-20%
#: above, two cells in one pulse 50-100%. On real files the valley before the doublets lay
#: at 1.12-1.16 times the singlets, where the experts' singlet gates reach, and a sharp
#: singlet peak's 4 SDs (1.05-1.10) cut the large cells away
SINGLE_PULSE_SPREAD = 1.2

#: where, with no doublet peak, the singlet band's upper cut may go at the furthest: where
#: the density beyond the singlet peak falls to this share of its height. Larger single
#: cells of their own kind (monocytes, whose pulses run 10-20% longer than lymphocytes' of
#: their size) trail the peak as a heavy flank, not a peak, and where the peak's flank ends
#: lay among them: a stimulated blood tube's band kept half of its monocytes
SINGLET_FLANK = 0.02

#: how far (as a factor) the singlets' ratio may move from one area bin to the next: pulse
#: shapes change slowly with size; a doublet's area/height is 1.5-2 times a singlet's
RIDGE_STEP = 1.3


def _ratio_trend(area: np.ndarray, ratio: np.ndarray, bins: int = 12):
    """The singlets' typical ratio in area bins of equal counts (knots at the
    bins' median areas; between them it is interpolated, as the relation of
    FSC-H to FSC-A bends at both ends of the scale).

    The trend follows the singlets' ridge rather than each bin's median: where
    doublets outnumber the large single cells at twice the small cells' area
    (lymphocyte doublets in a spleen, beside few DCs and neutrophils) a bin's
    median lies among the doublets, and a band around it kept them and left out
    the large cells. Starting from the bin whose ratio peak is sharpest (the
    small cells' singlets), each next bin takes the peak of its log ratio
    nearest the ridge so far, within a factor ``RIDGE_STEP``, and the median of
    its events within that factor of the peak; a bin with no such peak keeps
    its neighbour's value.
    """
    if area.size < 20 * bins:
        return (), ()
    chunks = _area_bins(area, bins)
    bins = len(chunks)
    knots = tuple(float(np.median(area[c])) for c in chunks)
    logs = [np.log(ratio[c]) for c in chunks]
    found = [_log_ratio_peaks(x) for x in logs]
    start = int(np.argmax([height for _, _, height in found]))
    ridge = np.empty(bins)
    ridge[start] = _near_median(logs[start], found[start][1])
    for k in [*range(start + 1, bins), *range(start - 1, -1, -1)]:
        previous = ridge[k - 1 if k > start else k + 1]
        peaks = found[k][0]
        near = peaks[np.abs(peaks - previous) <= np.log(RIDGE_STEP)]
        ridge[k] = _near_median(logs[k], near[np.argmin(np.abs(near - previous))]) \
            if near.size else previous
    trend = np.exp(ridge)
    if trend[1] > trend[0] and knots[1] > knots[0] > float(area.min()):
        # below the first bin's middle the ratio goes on falling as it fell between the
        # first two bins (no further than one ridge step): FlowSOM's 68983, exported
        # from a lymphocyte gate, climbs from 0.84 at its smallest areas to 0.94 at the
        # first bin's middle, and a trend held level there put the smallest singlets,
        # 4.6% of the expert's, under the band
        slope = (trend[1] - trend[0]) / (knots[1] - knots[0])
        low = max(trend[0] - slope * (knots[0] - float(area.min())), trend[0] / RIDGE_STEP)
        knots, trend = (float(area.min()), *knots), np.concatenate([[low], trend])
    return knots, tuple(float(v) for v in trend)


def _area_bins(area: np.ndarray, bins: int, min_events: int = 50) -> list[np.ndarray]:
    """Events in ``bins`` area bins of equal counts, the last one split again at
    the top 1% of all events where that holds ``min_events``: the largest cells
    are often a minor population (granulocytes in a lymphocyte-enriched sample,
    DCs in a spleen) that a bin of a twelfth of the events buries among the
    small cells' doublets."""
    order = np.argsort(area, kind="stable")
    n = order.size
    cuts = [round(n * k / bins) for k in range(1, bins)]
    cuts += [c for c in (round(n * 0.99),) if n - c >= min_events]
    return np.split(order, sorted(set(cuts)))


def _log_ratio_peaks(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One bin's log ratios: the positions of their density peaks, the highest
    peak's position and its density (how sharp the bin's main peak is)."""
    centres, density, bandwidth = smoothed_density(x)
    peaks = find_peaks(centres, density, n_events=x.size, bandwidth=bandwidth)
    top = int(np.argmax(density))
    return (centres[peaks] if peaks.size else centres[[top]]), float(centres[top]), \
        float(density[top])


def _near_median(x: np.ndarray, peak: float) -> float:
    """The median of the log ratios within ``RIDGE_STEP`` of a peak."""
    near = x[np.abs(x - peak) <= np.log(RIDGE_STEP)]
    return float(np.median(near)) if near.size else peak


def singlet_band(area, second, *, n_mad: float = 4.0, width: bool = False) -> SingletBand:
    """The band of single cells from the FSC-A/FSC-H (or FSC-A/FSC-W) relation.

    Doublets have a larger area for their height (a longer pulse). The ratio
    is divided by its typical value at each area, then: the singlets' peak;
    its spread from the half width on its low side (doublets do not reach
    it); the upper cut in the valley before a doublet peak when there is one,
    up to ``n_mad`` SDs or ``SINGLE_PULSE_SPREAD`` times the peak, whichever
    is farther; else where the peak's density falls to ``SINGLET_FLANK`` of its height
    or its flank ends, whichever is farther, up to ``n_mad`` SDs or
    ``SINGLE_PULSE_SPREAD`` times the peak; never nearer than 3 SDs. The lower cut is
    ``n_mad`` SDs below the peak.
    """
    a = np.asarray(area, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    ok = (b > 0) & np.isfinite(a) & np.isfinite(b) & (a > 0)
    if ok.sum() < 10:
        what = "width" if width else "height"
        raise TooFewEvents(f"too few events with positive area and {what} ({int(ok.sum())}) "
                           "for a singlet gate")
    a, b = _thin(a[ok]), _thin(b[ok])
    ratio = b if width else a / b
    knots, trend = _ratio_trend(a, ratio)
    q = ratio / np.interp(a, knots, trend) if knots else ratio
    centres, density, bandwidth = smoothed_density(q)
    main = int(np.argmax(density))
    main, centre = peak_centre(centres, density, main)
    sd = peak_spread(centres, density, main, -1, bandwidth)
    peaks = find_peaks(centres, density, n_events=q.size, bandwidth=bandwidth)
    above = peaks[centres[peaks] > centre + sd]
    if above.size:              # a doublet peak: its valley, as far as single cells reach
        hi = float(centres[valley_bottom(density, np.arange(main, above[0] + 1))])
        reach = max(centre + n_mad * sd, SINGLE_PULSE_SPREAD * centre)
    else:
        # no doublet peak: the band reaches as far as a flank of larger single cells does
        # (no nearer than where the peak's own flank ends), up to how far single cells'
        # pulses reach (SINGLE_PULSE_SPREAD)
        end = peak_end(centres, density, main, 1)
        hi = float(centres[end]) if end is not None else centre + n_mad * sd
        low = np.flatnonzero(density[main:] < SINGLET_FLANK * density[main])
        if low.size:
            hi = max(hi, float(centres[main + low[0]]))
        reach = max(centre + n_mad * sd, SINGLE_PULSE_SPREAD * centre)
    hi = float(np.clip(hi, centre + 3 * sd, reach))
    lo = max(centre - n_mad * sd, 1e-9)
    return SingletBand(lo, hi, centre, knots, trend, width)


def diagonal_cut(d, centre: float, *, near: float = 0.5) -> Threshold:
    """A cut on the difference of two channels (``d`` = x - y) at ``centre``, the
    difference at the centre of a population stained by neither: on a kappa x lambda
    plot, the line at 45 degrees through the negatives, on either side of which the
    cells of each light chain lie (an expert's line on optimalFlow's LST files lies
    nearer it than the density's valley between the kappa and lambda B cells does).

    Where every peak of ``d`` lies on one side of the line (one population: a clone)
    and the line crosses that peak's flank, the population is not split: the cut
    moves to where the peak ends, on the line's side, and the whole of it goes to the
    side its mode lies on. A lone peak whose mode lies within ``near`` of its SDs of
    the line is brighter in neither channel: the cut stays on the line, and the result
    says so (``guessed``)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise TooFewEvents(f"too few finite events ({d.size}) for a diagonal cut")
    centres, density, bandwidth = smoothed_density(d)
    peaks = find_peaks(centres, density, n_events=d.size, bandwidth=bandwidth)
    positions = tuple(float(centres[i]) for i in peaks)
    line = f"the negatives' diagonal ({_at(centre)})"
    if np.any(centres[peaks] <= centre) and np.any(centres[peaks] > centre):
        return Threshold(float(centre), positions, note=f"cut on {line}, between the peaks")
    main = int(peaks[np.argmax(density[peaks])])
    mode = float(centres[main])
    toward = 1 if centre > mode else -1          # from the mode toward the line
    end = peak_end(centres, density, main, toward)
    if end is None or toward * (float(centres[end]) - centre) <= 0:
        return Threshold(float(centre), positions,
                         note=f"cut on {line}; every population lies on one side of it")
    sd = peak_spread(centres, density, main, toward, bandwidth)
    if abs(mode - centre) < near * sd:
        return Threshold(float(centre), positions, guessed=True, note=(
            f"cut on {line}: the one population's peak ({_at(mode)}) lies on it, "
            "brighter in neither channel than the negatives"))
    return Threshold(float(centres[end]), positions, fell_back=True, note=(
        f"{line} crosses the one population's peak ({_at(mode)}): cut at "
        f"{_at(centres[end])}, where that peak ends, so it is not split"))


@dataclass(frozen=True)
class Cluster:
    """One Gaussian component chosen from a mixture, as an ellipse."""

    mean: np.ndarray
    covariance: np.ndarray
    distance_squared: float
    weight: float
    n_components: int
    members: tuple[int, ...] = ()       # the mixture components it spans
    engulfed: tuple[int, ...] = ()      # centres of larger clusters inside it
    held: float = 1.0                   # share of it inside the ellipse, when a heavier
                                        # neighbour kept the ellipse under ``quantile``
    peaked: float = np.inf              # events per unit area within 1 SD of its centre
                                        # over those 2-3 SD out (``_peakedness``)
    engulfed_centres: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    main: bool = False                  # spans the mixture's heaviest component

    def holds(self, points: np.ndarray) -> bool:
        """Whether any of ``points`` (rows) lies inside the ellipse."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, len(self.mean))
        if not points.size:
            return False
        d2 = mahalanobis_squared(points.T, self.mean, self.covariance)
        return bool(np.any(d2 <= self.distance_squared))

    @property
    def distinct(self) -> bool:
        """Whether the ellipse is a cluster of its own. When the population a ranked
        pick asks for is missing from the sample, the pick lands on a fragment or a
        broad component of another cluster, and its ellipse holds the centre of a
        component whose own cluster outweighs it."""
        return not self.engulfed


def _peakedness(X: np.ndarray, mean, cov) -> float:
    """How much denser the events are within 1 SD of a component's centre than 2 to 3
    SD out (per unit area, Mahalanobis distances): about 16 for a lone normal cluster in
    two dimensions, under 1 for a broad component laid over scattered events."""
    d2 = mahalanobis_squared(X.T, mean, cov)
    core = np.count_nonzero(d2 <= 1.0)
    shell = np.count_nonzero((d2 > 4.0) & (d2 <= 9.0))
    p = X.shape[1]
    return core / max(shell / (3.0 ** p - 2.0 ** p), 1e-12)


def _engulfed(gmm, members: list[int], mean, cov, d2: float, weight: float
              ) -> tuple[int, ...]:
    """Components outside ``members`` whose means lie inside the ellipse of
    ``members`` (Mahalanobis distance squared <= ``d2``) and whose own cluster
    (``_merged_with``) is at least as heavy as theirs."""
    inv = np.linalg.inv(cov)
    inside = [j for j in range(len(gmm.weights)) if j not in members
              and float((gmm.means[j] - mean) @ inv @ (gmm.means[j] - mean)) <= d2]
    return tuple(j for j in inside if gmm.weights[_merged_with(gmm, j)].sum() >= weight)


def _best_reach(gmm, X: np.ndarray, members: list[int], mean, cov, d2: float) -> float:
    """The Mahalanobis distance squared (at most ``d2``) of the ellipse of ``members``
    that the mixture itself expects to classify best against heavier components:
    the fitted sample's events taken in order of distance, each counting as the
    cluster's by its posterior probability against the components that outweigh
    the cluster, the radius with the highest expected F1. A wide gate round a minor
    cluster (CD56bright NK beside CD56dim) stops where the large neighbour's tail
    would bring in more events than the cluster's edge adds; a major cluster, or one
    with no heavier neighbour, keeps ``d2``."""
    weight = gmm.weights[members].sum()
    heavier = [j for j in range(len(gmm.weights)) if j not in members
               and gmm.weights[_merged_with(gmm, j)].sum() > weight]
    if not heavier:
        return d2
    dist = mahalanobis_squared(X.T, mean, cov)
    order = np.argsort(dist)
    dist = dist[order]
    resp = gmm.predict_proba(X[order])
    ours = resp[:, members].sum(axis=1)
    rival = ours + resp[:, heavier].sum(axis=1)
    # an event neither explains belongs to a lighter component: not held against it
    own = np.divide(ours, rival, out=np.ones_like(ours), where=rival > 0)
    inside = dist <= d2
    if not inside.any():
        return d2
    tp = np.cumsum(own)[inside]
    f1 = 2 * tp / (np.arange(1, tp.size + 1) + own.sum())
    best = int(np.argmax(f1))
    if best == tp.size - 1:
        return d2
    # halfway to the next event, so the radius does not sit on a sampled point
    return float(0.5 * (dist[best] + dist[best + 1]))


def _score(means: np.ndarray, pick: list[tuple[str, int]]) -> np.ndarray:
    """Rank components by the pick criteria: ('max'|'min', dimension index)."""
    total = np.zeros(len(means))
    for direction, dim in pick:
        order = np.argsort(means[:, dim])
        ranks = np.empty(len(means))
        ranks[order] = np.arange(len(means))
        total += ranks if direction == "max" else -ranks
    return total


def _picked(means: np.ndarray, weights: np.ndarray, pick: list[tuple[str, int]],
            min_weight: float = 0.0) -> int:
    """The component ``pick`` ranks best; of equal summed ranks, the heavier (a
    population, not a broad component of scattered events that ranks as well)."""
    score = _score(means, pick)
    # a component holding no event (more components than distinct events) is no cluster
    score[(weights < min_weight) | (weights < 1e-9)] = -np.inf
    return int(np.lexsort((weights, score))[-1])


_FITS: dict = {}          # recent mixture fits, keyed by their input (bounded)


def _mixture(X: np.ndarray, n_components: int, seed: int):
    """Fit (or reuse) a Gaussian mixture: gates that cluster the same events in the
    same dimensions, picking different components, share one fit."""
    key = (X.shape, n_components, seed, hash(X.tobytes()))
    if key not in _FITS:
        if len(_FITS) > 32:
            _FITS.clear()
        _FITS[key] = fit_mixture(X, n_components, seed=seed, reg_covar=1e-6)
    return _FITS[key]


def _merged_with(gmm, best: int, *, dip: float = 0.9, reach: float = 3.0,
                 steps: int = 32) -> list[int]:
    """The components that form one cluster with ``best``: a mixture fitted with
    more components than the data has clusters splits a cluster in pieces. A
    piece is joined when the mixture density along the line between the two
    means never falls below ``dip`` of its lower end and each mean lies within
    ``reach`` standard deviations of the other component (Mahalanobis). Only
    direct neighbours of the picked component are joined, never a chain: two
    clusters bridged by a component between them stay apart."""
    members = [best]
    inv = np.linalg.inv(gmm.covariances)
    for j in range(len(gmm.weights)):
        if j == best:
            continue
        d = gmm.means[j] - gmm.means[best]
        near = max(float(d @ inv[best] @ d), float(d @ inv[j] @ d)) <= reach ** 2
        if not near:
            continue
        t = np.linspace(0.0, 1.0, steps)[:, None]
        dens = np.exp(gmm.score_samples(gmm.means[best] + t * d))
        if dens.min() >= dip * min(dens[0], dens[-1]):
            members.append(j)
    return sorted(members)


def _moments(gmm, members: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, covariance and weight of the union of mixture components."""
    w = gmm.weights[members]
    total = float(w.sum())
    mean = (w[:, None] * gmm.means[members]).sum(axis=0) / total
    cov = np.zeros_like(gmm.covariances[0])
    for k, wk in zip(members, w):
        d = gmm.means[k] - mean
        cov += wk * (gmm.covariances[k] + np.outer(d, d))
    return mean, cov / total, total


def _evened(X: np.ndarray, bins: int = 32) -> np.ndarray:
    """Sampling weights that even out the density: each event's weight is the inverse
    of the count in its histogram bin, so every occupied bin is equally likely and a
    cluster's share follows the area it covers, not how many events it holds."""
    cells = []
    for column in X.T:
        lo, hi = np.quantile(column, [0.001, 0.999])
        span = hi - lo if hi > lo else 1.0
        cells.append(np.clip(((column - lo) / span * bins).astype(np.int64), 0, bins - 1))
    flat = np.ravel_multi_index(cells, (bins,) * X.shape[1])
    weights = 1.0 / np.bincount(flat)[flat]
    return weights / weights.sum()


#: how much of its component a cluster gate's ellipse holds by default: a whole cloud of
#: cells (0.99 trims its edge, where a scatter cloud's larger cells lie)
CLUSTER_QUANTILE = 0.995


def cluster_gate(columns, *, n_components: int = 3, pick: list[tuple[str, int]],
                 quantile: float = CLUSTER_QUANTILE, max_events: int = 5_000, seed: int = 0,
                 min_weight: float = 0.0, merge: bool = True, even: bool = False) -> Cluster:
    """Fit a Gaussian mixture to the events (a subsample of at most ``max_events``)
    and return the component that ``pick`` ranks best, as an ellipse holding
    ``quantile`` of it (Mahalanobis distance squared <= the chi-square quantile).

    ``pick`` is a list such as ``[("min", 1)]`` (lowest mean in dimension 1)
    or ``[("max", 0), ("min", 1)]`` (best summed rank). Components lighter than
    ``min_weight`` are not picked. With ``merge``, components with no density
    valley between them and the picked one are taken as pieces of the same
    cluster (``components`` is then a ceiling, not a count the data must
    have), and the ellipse spans their union; ``Cluster.distinct`` then says
    whether that union is a cluster of its own or a fragment of a larger one.
    Beside a heavier cluster the ellipse may hold less than ``quantile``: it stops
    at the radius the mixture expects to classify best (``_best_reach``), and
    ``Cluster.held`` says how much of the cluster it holds.

    With ``even``, the subsample is drawn with less weight where events are dense
    (``_evened``), so a cluster of 0.5% beside one of 90% gets a component of its own.
    """
    # Thin first (evenly over the acquisition), so a million events are never stacked.
    step = max(1, len(columns[0]) // ((20 if even else 2) * max_events))
    X = np.column_stack([np.asarray(c[::step], dtype=np.float64) for c in columns])
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] < 10 * n_components:
        raise TooFewEvents(f"too few events ({X.shape[0]}) to fit {n_components} clusters")
    rng = np.random.default_rng(seed)
    thinned = X
    if X.shape[0] > max_events:
        weights = _evened(X) if even else None
        X = X[rng.choice(X.shape[0], max_events, replace=False, p=weights)]
    gmm = _mixture(X, n_components, seed)
    best = _picked(gmm.means, gmm.weights, pick, min_weight)
    members = _merged_with(gmm, best) if merge else [best]
    mean, cov, weight = _moments(gmm, members)
    d2 = chi2_quantile(quantile, X.shape[1])
    # without merging, the picked piece may lie inside its own cluster's other pieces
    # inside the gate's ellipse, but never wider than the 99.5% one: a gate drawn wide
    # (0.999) reaches the centre of a neighbouring cluster of its own
    core = min(d2, chi2_quantile(0.995, X.shape[1]))
    engulfed = _engulfed(gmm, members, mean, cov, core, weight) if merge else ()
    reach = _best_reach(gmm, X, members, mean, cov, d2)
    held = chi2_probability(reach, X.shape[1]) if reach < d2 else 1.0
    return Cluster(mean, cov, reach, weight, n_components, tuple(members), engulfed, held,
                   _peakedness(thinned, mean, cov), gmm.means[list(engulfed)],
                   main=int(np.argmax(gmm.weights)) in members)
