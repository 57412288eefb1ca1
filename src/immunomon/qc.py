"""Acquisition and gating quality control: time anomalies, margin events, low counts,
missing markers, gates that emptied their population.

Pure functions over a ``Sample`` (or plain numbers); nothing is plotted and
nothing is dropped. Each check returns what it found and, where events could
be excluded, a boolean mask and the number of events it would exclude, so the
caller decides and reports.

Every finding reported for a sample is a ``QCFlag`` with a level: ``info``
(worth knowing, nothing to do), ``warning`` (look at this sample before using
its numbers) or ``failure`` (a number of this sample is wrong or missing). A
sample's status is its worst level (``ok`` when it has no warning or failure),
so a scientist reviews the few samples that need it.

Time anomalies (clogs, bubbles, pressure changes) follow the idea shared by
flowAI, flowClean and PeacoQC, with one simple documented rule of our own:
cut the acquisition into equal time bins and compare the bins with each
other by robust z scores, ``(x - median) / sigma`` over bins, where ``sigma``
is the scaled median absolute deviation (1.4826 * MAD) with a floor (the
Poisson SD for an event count, a small change of level for a signal).
A channel's signal in a bin is the mean of ``asinh(value / (range / 1000))``
over its events: on that log-like scale a dimming of every event moves it,
while a small change in the mix of cell types moves it a little. (A bin's
median does not serve: in a channel whose positives are near half the events
the median sits in the valley and jumps from one peak to the other as the mix
wobbles.) A bin is bad when

- it lies in a *regime* of flow whose rate, by ``|z| > k``, is under
  ``1 / rate_factor`` or over ``rate_factor`` times the usual: a clog or a
  burst. A regime starts where the rate jumps, a bin beyond ``rate_factor`` of
  the few bins before it or after it, as a clog or a burst starts and ends at
  once; a rate drifting over many bins, as a tube's pressure settles or as it
  empties, stays one regime with the rest. The usual rate is the one most
  events were acquired at (the median over bins weighted by their events), and
  the z's sigma the Poisson SD where that is larger; or
- the *consensus shift* of its signal, the median over channels of each
  channel's z, has ``|z| > k``: a clog or a pressure drop dims every
  detector at once, while the mix of cell types wobbles from bin to bin on
  its own in one channel or another; or
- one channel's signal alone has ``|z| > k_channel`` (a large jump in one
  detector, e.g. a laser dropping). A channel's z is against the bins of
  usual flow.

An anomaly rarely starts and ends on a bin boundary: the bins beside a bad
regime are bad too where their rate lies beyond the square root of
``rate_factor`` with ``|z| > k_neighbour``, and bins next to a bad signal bin
whose statistic exceeds a looser limit (``k_neighbour`` for the consensus
shift, ``k_channel / 2`` for one channel).

On simulated samples (``immunomon.simulate.pbmc_sample``) the defaults flag
no bin in clean acquisitions and more than 99% of the events of a clog.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .columns import frame, rows as row_dicts
from .errors import ImmunomonError
from .fcs.channel_kinds import is_fluorescence, is_scatter, is_time
from .fcs.reader import MORE_THAN_TOT
from .fcs.sample import acquisition_seconds, data_tops
from .fcs.text import DAMAGED_TEXT
from .fmt import number, ratio_percent

MAD_SCALE = 1.4826     # MAD of a normal distribution -> its standard deviation

LEVELS = ("info", "warning", "failure")


@dataclass(frozen=True)
class QCFlag:
    """One finding about a sample: its level, what was found, and the population
    it concerns (None for the whole sample)."""

    level: str
    message: str
    population: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"QC level must be one of {', '.join(LEVELS)}, not {self.level!r}")

    def __str__(self) -> str:
        return self.message

    def __contains__(self, text: str) -> bool:
        """``"words" in flag`` looks in its message, as with a bare message."""
        return text in self.message

    def to_dict(self) -> dict:
        return {"level": self.level, "message": self.message, "population": self.population}


def as_flag(flag, level: str = "warning") -> QCFlag:
    """A ``QCFlag`` as it is, or a bare message at ``level``."""
    return flag if isinstance(flag, QCFlag) else QCFlag(level, str(flag))


def status(flags) -> str:
    """A sample's status from its flags: 'ok' (none, or information only),
    'warning' or 'failure' (the worst level present)."""
    worst = max((LEVELS.index(as_flag(f).level) for f in flags), default=0)
    return "ok" if worst == 0 else LEVELS[worst]


def leveled(messages, level: str, population: str | None = None) -> list[QCFlag]:
    return [QCFlag(level, str(m), population) for m in messages]


def reader_flags(warnings) -> list[QCFlag]:
    """The FCS reader's notes on a file as QC flags: information, but a warning where
    the DATA segment holds more events than $TOT declares (a damaged $TOT, $PAR or data
    type keyword reads the wrong numbers, or leaves events out) and where the TEXT
    segment is damaged (keywords the gates rely on may be missing or wrong)."""
    return [QCFlag("warning" if MORE_THAN_TOT in str(w) or DAMAGED_TEXT in str(w)
                   else "info", f"file: {w}") for w in warnings]


def identity_spillover_flag(sample) -> QCFlag | None:
    """A warning where the file's $SPILLOVER is the identity over two detectors or more:
    compensating with it changes nothing, so a multicolour tube's values stay as
    acquired (FlowJo and other programs write one where the compensation lives in a
    workspace instead; a real stimulated blood tube's MHC-II-bright cells lifted CD14
    through PerCP-Cy5.5's spill into PE-Cy7)."""
    spill = getattr(sample, "spillover", None)
    if spill is None or len(spill.detectors) < 2 or not spill.is_identity:
        return None
    return QCFlag("warning", f"the file's $SPILLOVER is the identity over its "
                             f"{len(spill.detectors)} detectors: compensating with it "
                             "changes nothing, so the values stay uncompensated; where the "
                             "matrix lives in a workspace, gate with that matrix")


# -- time anomalies --------------------------------------------------------------
@dataclass
class TimeQC:
    """Result of ``time_anomalies``.

    ``bins``: one row per time bin: ``start``, ``stop`` (seconds when the file
    gives $TIMESTEP, else Time units), ``events``, ``rate`` (events per
    second or per unit), ``rate_z``, ``shift_z`` (consensus shift over
    channels), ``channel_z`` (the largest |z| of any one channel's signal),
    ``bad_rate``, ``bad_signal``, ``bad``, and one
    ``signal:<channel>`` column per checked channel (the mean of
    ``asinh(value / (range / 1000))`` in the bin). ``good``: per event, False
    for events in bad bins. ``excluded``: events in bad bins. ``flags``:
    human-readable findings (empty when the acquisition looks stable).
    """

    flags: list[str]
    bin_columns: dict           # ``bins`` as columns (immunomon.columns)
    good: np.ndarray
    excluded: int
    unit: str = "s"
    channels: tuple[str, ...] = ()

    def said(self, excluded: bool) -> list[str]:
        """The findings to report: where the anomalous bins' events were excluded, without
        the line that says they can be (the gate says it as done)."""
        # with events in anomalous bins, the last finding is the one saying so
        return list(self.flags[:-1] if excluded and self.excluded else self.flags)

    @cached_property
    def bins(self):
        """One row per time bin (a DataFrame)."""
        return frame(self.bin_columns)

    @property
    def n_bad_bins(self) -> int:
        return int(np.count_nonzero(self.bin_columns["bad"]))


def robust_z(values: np.ndarray, floor: np.ndarray | float = 0.0,
             reference: np.ndarray | None = None) -> np.ndarray:
    """``(x - median) / max(1.4826 * MAD, floor)``, the median and MAD over the rows
    ``reference`` marks (all by default); NaNs are ignored and stay NaN."""
    x = np.asarray(values, dtype=np.float64)
    ref = x if reference is None else x[reference]
    center = np.nanmedian(ref, axis=0)
    mad = MAD_SCALE * np.nanmedian(np.abs(ref - center), axis=0)
    scale = np.maximum(mad, floor)
    scale = np.where(scale > 0, scale, np.inf)     # constant series: nothing is off
    return (x - center) / scale


def _event_median(values: np.ndarray, counts: np.ndarray) -> float:
    """The median of a per-bin statistic over the events, each bin weighted by its event
    count: the usual flow rate is the one most events were acquired at. (Over bins, a
    file whose events came in its first few bins and then trickled had those bins taken
    for the anomaly: 948 of a real file's 1,000 events.)"""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(counts[order])
    if cumulative[-1] == 0:
        return float(np.median(values))
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def _regimes(rate: np.ndarray, factor: float, width: int = 3) -> np.ndarray:
    """Each bin's regime of flow: a new one starts where the rate jumps, a bin's rate lying
    beyond ``factor`` of the median of the ``width`` bins before it, or the bin before it
    beyond that of the ``width`` bins from it on. A clog or a burst starts and ends at
    once; within a regime the rate may drift over many bins as a tube's pressure settles
    (a real LSR II file's first twenty seconds ran at twice its usual rate, falling bin by
    bin) or as it empties, which is no anomaly."""
    def beyond(r, m):
        return r > m * factor or r < m / factor

    starts = np.zeros(rate.size, dtype=int)
    for i in range(1, rate.size):
        starts[i] = (beyond(rate[i], np.median(rate[max(i - width, 0):i]))
                     or beyond(rate[i - 1], np.median(rate[i:i + width])))
    return np.cumsum(starts)


def _grow(seed: np.ndarray, loose: np.ndarray) -> np.ndarray:
    """Extend runs of ``seed`` bins into adjacent ``loose`` bins (hysteresis)."""
    out = seed.copy()
    while True:
        left = np.zeros_like(out)
        left[1:] = out[:-1]
        right = np.zeros_like(out)
        right[:-1] = out[1:]
        grown = out | ((left | right) & loose)
        if np.array_equal(grown, out):
            return out
        out = grown


def _runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True."""
    padded = np.concatenate([[False], bad, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _default_bins(n_events: int) -> int:
    # ~500 events per bin keeps Poisson noise of the rate near 4.5% while a
    # short clog still spans several bins; 10 to 200 bins.
    return int(np.clip(n_events // 500, 10, 200))


def time_anomalies(sample, *, time_channel: str = "Time", bin_seconds: float | None = None,
                   n_bins: int | None = None, channels=None, k: float = 5.0,
                   k_channel: float = 10.0, k_neighbour: float = 2.5,
                   min_bin_events: int = 20, rate_factor: float = 2.0,
                   signal_floor: float = 0.02) -> TimeQC:
    """Flag time bins where the flow rate or the signal jumps.

    ``bin_seconds`` (in seconds when the file has $TIMESTEP, else in Time
    units) or ``n_bins`` sets the bins; by default about 500 events per bin,
    10 to 200 bins. ``channels`` to check (names or markers): by default every
    channel except Time, on the sample's scale values (no compensation: a
    clog dims every detector alike). The rule, with its thresholds ``k``,
    ``k_channel``, ``k_neighbour`` and ``rate_factor``, is in the module
    docstring; the floor of a channel's sigma is ``signal_floor`` (on the
    asinh scale, about a 2% change of intensity).
    Bins with fewer than ``min_bin_events`` events are judged on their rate
    only.

    Without a Time channel, or with fewer than 3 bins' worth of time, the
    check is skipped with a flag saying so and every event is kept. On a
    coarse clock each bin holds whole clock ticks; events where the clock
    stopped at the top of its range are kept, outside the bins, with a flag.
    """
    n = sample.n_events
    clock = acquisition_clock(sample, time_channel)
    if clock is None:
        return _skipped(n, f"no time channel {time_channel!r}: acquisition over time not checked")
    t_idx, t, clock_cols = clock
    stopped = _stopped_clock(sample, t_idx, t, clock_cols, min_bin_events)
    step = sample.seconds_per_time_unit(t_idx, t)
    unit = "s" if step else "time units"
    t = t * (step or 1.0)
    # events at a stopped clock have no usable time: like events with a non-finite
    # time they are not placed in bins and stay good
    finite = np.isfinite(t) & ~stopped
    notes = [_stopped_message(sample, t_idx, stopped)] if stopped.any() else []
    if n == 0 or not finite.any():
        return _skipped(n, "no events with a finite time: acquisition over time not checked")
    t0, t1 = float(t[finite].min()), float(t[finite].max())
    if step and (mismatch := _clock_mismatch(sample, t_idx, t1 - t0)):
        notes.append(mismatch)
    if bin_seconds is not None:
        if not bin_seconds > 0:
            raise ImmunomonError(f"bin_seconds must be positive, got {bin_seconds!r}")
        n_bins = max(int(np.ceil((t1 - t0) / bin_seconds)), 1)
    elif n_bins is None:
        n_bins = _default_bins(n)
    n_bins = int(n_bins)
    if n < 3 * min_bin_events:
        return _skipped(n, f"only {n:,} event{'s' if n != 1 else ''}: too few to compare "
                           "acquisition time bins; not checked")
    if t1 <= t0:
        # e.g. a Partec CyFlow file whose Time channel is 0 for every event
        return _skipped(n, f"the clock ({sample.channels[t_idx]}) holds one value for every "
                           "event placed in time: acquisition over time not checked")
    if n_bins < 3:
        return _skipped(n, "acquisition too short to compare time bins: not checked")
    edges, widths = _bin_edges(t[finite], t0, t1, n_bins)
    if len(edges) < 4:
        return _skipped(n, f"the clock ({sample.channels[t_idx]}) counts too few ticks to "
                           "compare acquisition time bins: not checked")
    n_bins = len(edges) - 1
    # events with a non-finite time cannot be placed; they stay good
    b = np.clip(np.searchsorted(edges, np.where(finite, t, t0), side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(b[finite], minlength=n_bins)
    # the rate test compares counts per bin of the usual width (the last bin of a
    # coarse clock may be wider, see _bin_edges)
    rate_counts = counts * (np.median(widths) / widths)

    if channels is None:
        cols = [i for i in measured_columns(sample) if i not in clock_cols]
    else:
        cols = [sample.channel_index(c) for c in channels]
    names = [sample.channels[i] for i in cols]

    ranges = np.array([sample.channel_info[i].range or 0.0 for i in cols], dtype=np.float64)
    scales = np.maximum(ranges / 1000.0, 1.0)
    levels = _bin_signals(sample.events, cols, scales, b, finite, n_bins)
    levels[counts < min_bin_events] = np.nan

    usual = max(_event_median(rate_counts, counts), 1.0)
    sigma = max(MAD_SCALE * _event_median(np.abs(rate_counts - usual), counts), np.sqrt(usual))
    rate_z = (rate_counts - usual) / sigma

    def beyond(factor, rate=rate_counts):
        return (rate < usual / factor) | (rate > usual * factor)

    # a regime of flow whose rate lies beyond rate_factor of the usual one, and the bins
    # beside it that lie beyond its square root (a clog starts within a bin)
    regime = _regimes(rate_counts, rate_factor)
    level = np.array([np.median(rate_counts[regime == r]) for r in range(regime[-1] + 1)])
    off = (np.abs(level - usual) > k * sigma) & beyond(rate_factor, level)
    bad_regime = off[regime]
    beside = np.zeros_like(bad_regime)
    beside[1:] |= bad_regime[:-1]
    beside[:-1] |= bad_regime[1:]
    bad_rate = bad_regime | (beside & (np.abs(rate_z) > k_neighbour)
                             & beyond(np.sqrt(rate_factor)))

    if cols:
        # each channel's usual signal is that of the bins of usual flow: where most bins
        # are a trickle, the bins that hold most events are not a signal anomaly
        with warnings.catch_warnings():      # all-NaN bins (too few events) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            sig_z = robust_z(levels, floor=signal_floor,
                             reference=~bad_rate if (~bad_rate).any() else None)
            shift_z = np.nan_to_num(np.nanmedian(sig_z, axis=1), nan=0.0)
        sig_z = np.nan_to_num(sig_z, nan=0.0)
        abs_sig = np.abs(sig_z)
        channel_z = abs_sig.max(axis=1)
    else:
        sig_z = abs_sig = np.zeros((n_bins, 0))
        shift_z = channel_z = np.zeros(n_bins)

    signal = (np.abs(shift_z) > k) | (channel_z > k_channel)
    bad_signal = _grow(signal, (np.abs(shift_z) > k_neighbour) | (channel_z > k_channel / 2))
    bad = bad_rate | bad_signal

    good = ~(bad[b] & finite)
    excluded = int(n - np.count_nonzero(good))
    table = {
        "start": edges[:-1], "stop": edges[1:], "events": counts,
        "rate": counts / widths, "rate_z": rate_z, "shift_z": shift_z, "channel_z": channel_z,
        "bad_rate": bad_rate, "bad_signal": bad_signal, "bad": bad,
        **{f"signal:{name}": levels[:, j] for j, name in enumerate(names)},
    }
    # the messages name a channel by its marker too, as a scientist knows the panel
    labels = [f"{m} ({c})" if m and m.strip("- ") and m != c else c
              for c, m in zip(names, (sample.markers[i] for i in cols))]
    flags = notes + _time_flags(table, sig_z, labels, k, excluded, n, unit)
    return TimeQC(flags=flags, bin_columns=table, good=good, excluded=excluded, unit=unit,
                  channels=tuple(names))


def _bin_edges(t: np.ndarray, t0: float, t1: float, n_bins: int):
    """``(edges, widths)`` of ``n_bins`` equal bins from ``t0`` to ``t1``; on a coarse
    clock, of bins of whole ticks.

    A clock that counts few ticks over the acquisition (a FACSCanto export whose Time
    holds 9 values over 10,000 events) in bins narrower than a tick leaves most bins
    empty, and in bins of 1.5 ticks alternates one tick and two: every bin would look
    like a clog or a burst. There each bin holds the same whole number of ticks, the
    last also the final tick, which acquisition cut short: its width counts as half a
    tick, what such a tick lasts on average."""
    steps = np.diff(t)
    if steps.size and not (steps >= 0).all():      # not in acquisition order: sort
        steps = np.diff(np.unique(t))
    steps = steps[steps > 0]
    tick = float(steps.min()) if steps.size else 0.0
    if not tick > 0 or (t1 - t0) / tick >= 20 * n_bins:
        edges = np.linspace(t0, t1, n_bins + 1)
        return edges, np.diff(edges)
    whole = int(round((t1 - t0) / tick))          # ticks before the final one
    per_bin = max(1, int(round(whole / n_bins)))
    n = max(whole // per_bin, 1)
    edges = t0 - tick / 2 + np.arange(n + 1) * per_bin * tick
    edges[-1] = t1 + tick / 2
    widths = np.diff(edges)
    widths[-1] -= tick / 2
    return edges, widths


def _stopped_clock(sample, t_idx: int, t: np.ndarray, clock_cols, min_events: int) -> np.ndarray:
    """Events whose clock sits at the top of its range ($PnR - 1), where it stopped.

    A clock that reaches its range stays there (a Partec CyFlow's 12-bit Time holds
    4,095 for the last 40% of a long acquisition): those events were acquired at an
    unknown time after it stopped, and binned with the rest they would make the last
    bin look like a burst. Only a clock of one word, and only when at least
    ``min_events`` (and 1% of the) events sit there."""
    none = np.zeros(t.shape, dtype=bool)
    info = sample.channel_info[t_idx]
    if len(clock_cols) != 1 or not info.range or info.range <= 1:
        return none
    gain = info.gain or 1.0
    finite = t[np.isfinite(t)]
    if finite.size == 0:
        return none
    highest = float(finite.max())
    # a clock that runs past its $PnR (floating-point Time often does) never stopped
    if not (info.range - 1.0) / gain <= highest < info.range / gain:
        return none
    at_top = t == highest
    if np.count_nonzero(at_top) < max(min_events, 0.01 * t.size):
        return none
    return at_top


def _clock_mismatch(sample, t_idx: int, span: float) -> str | None:
    """Where the clock's span in seconds and the acquisition from ``$BTIM`` to ``$ETIM``
    lie more than tenfold apart, the words saying that the times shown are the clock's
    (a FlowJo export of a CyTOF file: Time x ``$TIMESTEP`` 7.6 s of a 33-minute run);
    bins still compare with each other. None where they agree or a time is missing."""
    duration = acquisition_seconds(sample.keywords.get("$BTIM"), sample.keywords.get("$ETIM"))
    if duration is None or not span > 0 or 0.1 <= span / duration <= 10:
        return None
    def seconds(x: float) -> str:
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
    return (f"the clock ({sample.channels[t_idx]}) spans {seconds(span)} s, the acquisition "
            f"from $BTIM to $ETIM {seconds(duration)} s: the times shown are the clock's; "
            "its bins still compare with each other")


def _stopped_message(sample, t_idx: int, stopped: np.ndarray) -> str:
    k, n = int(np.count_nonzero(stopped)), stopped.size
    info = sample.channel_info[t_idx]
    return (f"the clock ({info.name}) stopped at the top of its range ({number(info.range - 1)}) "
            f"for {k:,} of {n:,} events ({k / n:.1%}): their acquisition time is unknown, so "
            "the time check covers the others; these are kept")


def measured_columns(sample) -> list[int]:
    """Columns of the channels that measure the cells, scatter and fluorescence: not the
    clock, event counters or pulse-shape channels (``fcs.channel_kinds``)."""
    return [i for i, name in enumerate(sample.channels)
            if is_scatter(name) or is_fluorescence(name)]


def clock_columns(sample, time_channel: str = "Time") -> tuple[int, ...]:
    """The columns of the acquisition clock, () without one: ``time_channel`` (name or
    marker, any case), else by default the first channel ``is_time`` knows (a
    MACSQuant's "HDR-T"); with its high word where Beckman Coulter's CyAn and MoFlo
    split the clock in two, "Time LSW" (which wraps, every 3.9 s on a CyAn) and "Time
    MSW"."""
    try:
        t_idx = sample.channel_index(time_channel)
    except ImmunomonError:
        clocks = [i for i, name in enumerate(sample.channels) if is_time(name)]
        if time_channel != "Time" or not clocks:
            return ()
        t_idx = clocks[0]

    from .gating.template import spelling

    def says(i, word):
        info = sample.channel_info[i]
        return any(word in plain and "time" in plain
                   for plain in map(spelling, (info.name, info.marker or "")))

    if says(t_idx, "lsw"):
        msw = [i for i in range(len(sample.channels)) if i != t_idx and says(i, "msw")]
        if len(msw) == 1:
            return t_idx, msw[0]
    return (t_idx,)


def acquisition_clock(sample, time_channel: str = "Time"):
    """``(column, values, clock columns)`` of the acquisition clock (``clock_columns``),
    None without one; a clock in two words is MSW x the LSW's range + LSW, in float64."""
    columns = clock_columns(sample, time_channel)
    if not columns:
        return None
    t = sample.events[:, columns[0]].astype(np.float64)
    if len(columns) == 2:
        t += sample.events[:, columns[1]].astype(np.float64) * \
            float(sample.channel_info[columns[0]].range)
    return columns[0], t, columns


def _skipped(n: int, message: str) -> TimeQC:
    empty = {name: np.empty(0, dtype=bool if name.startswith("bad") else np.float64)
             for name in ("start", "stop", "events", "rate", "rate_z", "shift_z",
                          "channel_z", "bad_rate", "bad_signal", "bad")}
    return TimeQC(flags=[message], bin_columns=empty, good=np.ones(n, dtype=bool), excluded=0)


def _bin_signals(events: np.ndarray, cols: list[int], scales: np.ndarray, bins: np.ndarray,
                 finite: np.ndarray, n_bins: int) -> np.ndarray:
    """Per bin and channel, the mean of ``asinh(value / scale)`` over the events
    with a finite time and a finite value (NaN for empty bins). In float32 as the
    events are stored; events are sorted by bin when they are not already (they
    usually are, in acquisition order) and each bin is one block."""
    out = np.full((n_bins, len(cols)), np.nan)
    b = bins[finite]
    order = None
    if b.size > 1 and np.any(b[1:] < b[:-1]):
        order = np.argsort(b, kind="stable")
        b = b[order]
    counts = np.bincount(b, minlength=n_bins)
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        return out
    starts = np.searchsorted(b, filled)
    rows = np.flatnonzero(finite) if order is None else np.flatnonzero(finite)[order]
    everything = order is None and rows.size == events.shape[0]
    signals = _asinh_channels(events, None if everything else rows, cols, scales)
    for j, v in enumerate(signals):
        ok = np.isfinite(v)
        if ok.all():
            n = counts[filled]
        else:
            v = np.where(ok, v, 0)
            n = np.add.reduceat(ok, starts, dtype=np.int64)
        sums = np.add.reduceat(v, starts, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[filled, j] = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    return out


_ROWS = 8192               # events per block of the time check: temporaries stay in cache


def _asinh_channels(events: np.ndarray, rows: np.ndarray | None, cols: list[int],
                    scales: np.ndarray) -> np.ndarray:
    """``_asinh`` of the columns ``cols`` of the events ``rows`` (all when None), each
    column by its own scale: channels x events, each channel contiguous. Computed a
    block of events at a time over all the channels: reading one column of an
    events x channels matrix alone brings the whole matrix through the cache, once
    per channel. The result (one float32 copy of those channels) is freed once the
    bins are summed, before gating needs its memory."""
    n = events.shape[0] if rows is None else rows.size
    out = np.empty((len(cols), n), dtype=np.result_type(events.dtype, np.float32))
    for start in range(0, n, _ROWS):
        stop = min(start + _ROWS, n)
        block = events[start:stop] if rows is None else events[rows[start:stop]]
        out[:, start:stop] = _asinh(block[:, cols], scales).T
    return out


def _asinh(values: np.ndarray, scale) -> np.ndarray:
    """``asinh(values / scale)`` in float32 as ``log(|x| + hypot(x, 1))`` with the
    sign restored: less than half the time of numpy's arcsinh, and its error (under
    1e-6) is far below the 0.02 floor of a bin's signal. ``scale``: a number, or one
    per column of ``values``."""
    x = values / np.asarray(scale, dtype=np.float32)
    a = np.abs(x)
    out = _hypot1(a)
    out += a
    np.log(out, out=out)
    return np.copysign(out, x, out=out)


def _hypot1(a: np.ndarray) -> np.ndarray:
    """``np.hypot(a, 1)`` for non-negative ``a``. For float32, the square root of
    ``a * a + 1`` in float64 rounded to float32: how C libraries compute ``hypotf``
    (glibc's result, checked equal for every non-negative float32), in a third of
    the time numpy's call per value takes."""
    if a.dtype != np.float32:
        return np.hypot(a, 1.0)
    wide = a.astype(np.float64)
    wide *= wide                # exact: a float32 squared fits a float64's mantissa
    wide += 1.0
    np.sqrt(wide, out=wide)
    return wide.astype(np.float32)


def _time_flags(table, sig_z, names, k, excluded, n, unit) -> list[str]:
    flags = []
    for first, last in _runs(table["bad"]):
        rows = {name: column[first:last + 1] for name, column in table.items()}
        why = []
        if rows["bad_rate"].any():
            usual = _event_median(table["rate"], table["events"])
            why.append(f"flow rate {ratio_percent(np.median(rows['rate']), usual)}")
        if rows["bad_signal"].any():
            shift = rows["shift_z"]
            peak = shift[np.argmax(np.abs(shift))]
            # the channels that moved, those that moved most first, each by its own z
            run = sig_z[first:last + 1]
            strongest = run[np.argmax(np.abs(run), axis=0), np.arange(run.shape[1])] \
                if run.size else np.zeros(0)
            hit = np.flatnonzero(np.abs(strongest) > k)
            hit = hit[np.argsort(-np.abs(strongest[hit]), kind="stable")]
            shown = ", ".join(f"{names[j]} {strongest[j]:+.0f} SD" for j in hit[:4]) + (
                f" and {len(hit) - 4} more" if len(hit) > 4 else "")
            if abs(peak) > k:           # most detectors at once: a clog, a pressure drop
                why.append(f"signal {'drop' if peak < 0 else 'rise'} in most detectors "
                           f"(consensus z {peak:+.1f})" + (f", most in {shown}" if shown else ""))
            else:                       # one detector or a few: a laser, a filter, a spike
                why.append(f"signal jump in {len(hit)} of {len(names)} detectors: {shown}"
                           if shown else "signal jump next to one")
        if not why:
            why.append("next to an anomaly")
        flags.append(f"acquisition anomaly from {number(rows['start'][0])} to "
                     f"{number(rows['stop'][-1])} {unit} ({last - first + 1} time bins, "
                     f"{int(rows['events'].sum())} events): {'; '.join(why)}")
    if excluded:                        # last: TimeQC.said leaves it out once done
        flags.append(f"{excluded} of {n} events ({excluded / max(n, 1):.1%}) lie in "
                     "anomalous time bins and can be excluded")
    return flags


# -- margin events ---------------------------------------------------------------
@dataclass
class MarginQC:
    """Result of ``margin_events``.

    ``table``: one row per channel: ``channel``, ``marker``, ``top`` and
    ``bottom`` (event counts), ``top_fraction``, ``bottom_fraction``,
    ``flagged``. ``margin``: per event, True when it sits on a margin of any
    checked channel (nothing is excluded here; the mask is for the caller).
    ``shares``: the share of events each flag counts, in the flags' order; ``floors``:
    True where a flag is a fluorescence channel's lowest value; ``channels``: each
    flag's channel ($PnN).
    """

    flags: list[str]
    channel_columns: dict       # ``table`` as columns (immunomon.columns)
    margin: np.ndarray = field(repr=False)
    shares: list[float] = field(default_factory=list)
    floors: list[bool] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)

    @cached_property
    def table(self):
        """One row per channel (a DataFrame)."""
        return frame(self.channel_columns)

    @property
    def n_margin(self) -> int:
        return int(np.count_nonzero(self.margin))


_BLOCK = 65_536            # events per block of the margin check


def margin_events(sample, channels=None, fraction_limit: float = 0.02,
                  time_channel: str = "Time") -> MarginQC:
    """Events piled on the top or bottom of each channel's scale.

    Top: a value at or above the largest the channel can store, ``$PnR - 1`` on its
    scale (``Channel.saturation``: through its gain, or its log amplification), or,
    where the events overrun the declared range (``data_tops``), at or above the top
    they show less 1. Bottom: a value equal to the channel's lowest
    observed value; in continuous data only one event does so, so a large share means clipping
    at the low end (0 on scatter, an electronic floor on fluorescence). A
    channel is flagged when either share exceeds ``fraction_limit``. On a
    fluorescence channel the bottom is the floor below which a log amplifier or an
    instrument that stores no negative values puts every dimmer event (a
    FACSCalibur's channel 0 or 1, an Accuri's 0): unstained cells and debris, not
    lost measurements (``floors``; a threshold leaves such a pile out of its density
    unless it is most of the parent).
    ``channels`` (names or markers) defaults to the measured channels, scatter and
    fluorescence (``measured_columns``): a clock or an event counter starts at 0.
    """
    n = sample.n_events
    if channels is None:
        skip = clock_columns(sample, time_channel)
        cols = [i for i in measured_columns(sample) if i not in skip]
    else:
        cols = [sample.channel_index(c) for c in channels]
    if n == 0 or not cols:
        return MarginQC(flags=[], channel_columns={
            name: [] for name in ("channel", "marker", "top", "bottom", "top_fraction",
                                  "bottom_fraction", "flagged")},
            margin=np.zeros(n, dtype=bool))
    # blocks of events: no copy of the whole event matrix, no events x channels masks
    # a range the events overrun does not describe them (``data_tops``): no pile there
    tops = data_tops(sample)[cols]
    overrun = tops != np.array([sample.channel_info[c].top for c in cols])
    # the largest stored value on the channel's scale (a log channel's 9,910 of 10,000: its
    # range less 1, 1,023, had put every event above a thousand on the margin), a hair
    # lower for the float32 the events are held in
    saturation = np.array([sample.channel_info[c].saturation for c in cols])
    top_limit = np.where(overrun, tops - 1.0, saturation * (1 - 1e-6))
    low = np.full(len(cols), np.inf)
    for i in range(0, n, _BLOCK):            # fmin passes over NaN
        low = np.fmin(low, np.fmin.reduce(sample.events[i:i + _BLOCK, cols], axis=0))
    top = np.zeros(len(cols), dtype=np.int64)
    bottom = np.zeros(len(cols), dtype=np.int64)
    margin = np.empty(n, dtype=bool)
    for i in range(0, n, _BLOCK):
        x = sample.events[i:i + _BLOCK, cols]
        at_top, at_bottom = x >= top_limit, x <= low
        top += at_top.sum(axis=0)
        bottom += at_bottom.sum(axis=0)
        margin[i:i + _BLOCK] = (at_top | at_bottom).any(axis=1)
    table = {
        "channel": [sample.channels[i] for i in cols],
        "marker": [sample.markers[i] or "" for i in cols],
        "top": top, "bottom": bottom,
        "top_fraction": top / n, "bottom_fraction": bottom / n,
        "flagged": (top / n > fraction_limit) | (bottom / n > fraction_limit),
    }
    flags, shares, floors, channels = [], [], [], []
    for j, row in enumerate(row_dicts(table)):
        label = f"{row['channel']} ({row['marker']})" if row["marker"] else row["channel"]
        if row["top_fraction"] > fraction_limit:
            flags.append(f"{label}: {row['top']} events ({row['top_fraction']:.1%}) at the "
                         f"top of the scale")
            shares.append(float(row["top_fraction"]))
            floors.append(False)
            channels.append(row["channel"])
        if row["bottom_fraction"] > fraction_limit:
            floor = is_fluorescence(row["channel"])
            flags.append(f"{label}: {row['bottom']} events ({row['bottom_fraction']:.1%}) "
                         f"piled at the bottom value {float(low[j]):g}"
                         + (", the channel's floor, where every dimmer event lies"
                            if floor else ""))
            shares.append(float(row["bottom_fraction"]))
            floors.append(floor)
            channels.append(row["channel"])
    return MarginQC(flags=flags, channel_columns=table, margin=margin, shares=shares,
                    floors=floors, channels=channels)


# -- non-finite values ---------------------------------------------------------------
def non_finite_events(sample) -> tuple[np.ndarray, list[str]]:
    """Per event, True when every value is finite; and a flag naming how many events
    hold NaN or infinity, in which channels (none when all are finite).

    A float FCS file can hold NaN or +-inf (a corrupt DATA segment, a broken export);
    such an event has no place in a density, a mixture or a mean, so the caller
    leaves it out of gating and statistics.
    """
    events = sample.events
    # a float64 sum is finite exactly when every value summed is (float32 values
    # cannot overflow it): the total of all values clears a file in one fast pass;
    # only a file holding non-finite values is summed row by row
    if events.dtype.itemsize <= 4 and np.isfinite(events.sum(dtype=np.float64)):
        return np.ones(events.shape[0], dtype=bool), []
    finite = np.isfinite(events.sum(axis=1, dtype=np.float64))
    n_bad = int(events.shape[0] - np.count_nonzero(finite))
    if not n_bad:
        return finite, []
    per_channel = (~np.isfinite(events[~finite])).sum(axis=0)
    shown = [f"{sample.channels[j]} {int(per_channel[j]):,}"
             for j in np.argsort(-per_channel, kind="stable") if per_channel[j]]
    listed = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more channels"
                                     if len(shown) > 5 else "")
    return finite, [f"{n_bad:,} of {events.shape[0]:,} events ({n_bad / events.shape[0]:.2%}) "
                    f"hold non-finite values (NaN or infinity; {listed}); they were "
                    "excluded from gating and statistics"]


# -- counts and markers -------------------------------------------------------------
def expected_flags(percents: dict[str, float], parents: dict[str, str | None],
                   limits: dict) -> list[QCFlag]:
    """A warning for each population whose % of its parent lies outside the range its
    template expects (``qc: {expected: [low, high]}``): a gate that went wrong in this
    sample (a quadrant's CD4 T corner of 1 event in 7,085 T cells reads "rare or absent"
    by the counts alone), or biology far from the lab's usual; either way, the page."""
    flags = []
    for name, share in percents.items():
        bounds = limits.get(name, {}).get("expected")
        if bounds is None or not np.isfinite(share) or bounds[0] <= share <= bounds[1]:
            continue
        parent = parents.get(name)
        of = f"its parent {parent!r}" if parent else "the file's events"
        flags.append(QCFlag("warning", f"population {name!r}: {share:.3g}% of {of}, outside "
                                       f"the {bounds[0]:g}-{bounds[1]:g}% the template "
                                       "expects; look at its gate", name))
    return flags


def low_count_flags(counts: dict[str, int], min_events: int = 200) -> list[str]:
    """A flag for each population with fewer than ``min_events`` events, whose
    percentages are too unstable to report without a warning."""
    return [f"population {name!r}: {int(c)} events, fewer than {min_events}; its "
            "percentages are unstable"
            for name, c in counts.items() if int(c) < min_events]


#: how few events make a population's count too small to report (a template's
#: ``qc.min_reportable``)
MIN_REPORTABLE = 20


def _events(n: int) -> str:
    return f"{n:,} event" if n == 1 else f"{n:,} events"


def count_flags(counts: dict[str, int], *, min_events: int = 200,
                min_reportable: int = MIN_REPORTABLE, explained=(),
                parents: dict | None = None, quadrants=(),
                limits: dict | None = None) -> list[QCFlag]:
    """Small populations: ``info`` under ``min_events`` (a percentage from 200 events
    has a coefficient of variation of about 7%; from 20, over 20%), ``warning``
    under ``min_reportable``, where a count is too small to report. A
    population under 0.1% of a parent large enough that a population of 1%
    would have been counted (``min_reportable`` / 0.01 events) is rare or absent
    in this sample rather than undersampled: ``info``; so is a corner of a quadrant
    gate (``quadrants``) too small to report, as an empty one is (double positives may
    be absent: a tube's 3 DP T cells made its status a warning where 0 did not).
    ``parents`` maps populations to their parents' counts. Populations in
    ``explained`` (an empty quadrant, a gate's failure) already carry their own flag
    and get no second one. ``limits`` gives a population its own ``min_events`` and
    ``min_reportable`` (a template population's ``qc``; 0: no such flag), a helper
    population looked at and not reported (a review gate of 1-6 events had made three
    GvHD tubes warnings)."""
    flags = []
    parents = parents or {}
    limits = limits or {}
    for name, c in counts.items():
        if name in explained:
            continue
        unstable = limits.get(name, {}).get("min_events", min_events)
        reportable = limits.get(name, {}).get("min_reportable", min_reportable)
        c = int(c)
        parent = parents.get(name)
        if c < reportable and parent is not None and parent >= reportable / 0.01 \
                and c < 0.001 * parent:
            flags.append(QCFlag("info", f"population {name!r}: {_events(c)}, "
                                        f"{100 * c / parent:.2g}% of its parent's {parent:,}; "
                                        "rare or absent in this sample", name))
        elif c < reportable:
            corner = name in quadrants
            flags.append(QCFlag("info" if corner else "warning",
                                f"population {name!r}: {_events(c)}, fewer than "
                                f"{reportable}; too few to report"
                                + ("; a quadrant's corner, which may be absent from a "
                                   "sample (double positives)" if corner else ""), name))
        elif c < unstable:
            flags.append(QCFlag("info", f"population {name!r}: {_events(c)}, fewer than "
                                        f"{unstable}; its percentages are unstable", name))
    return flags


#: The share of a population's events within one kernel bandwidth of a cut found in its
#: file (``gating.near_cut.near_cut_shares``) from which its count is said to turn on where
#: that cut lies. On real expert-gated files, of the populations at or above it 167 of
#: 202 disagreed with the expert (F1 under 0.9): lyoplate T cells 41 of 47, EuroFlow LST
#: whole blood 89 of 94, LST exports 15 of 23, GvHD tubes 5 of 5, the other committed
#: files 17 of 33 (docs/validation.md).
NEAR_CUT = 0.10


def near_cut_flags(shares: dict[str, float], counts: dict[str, int], *,
                   min_reportable: int = MIN_REPORTABLE) -> list[QCFlag]:
    """``info`` for each population of ``min_reportable`` events or more with
    ``NEAR_CUT`` or more of its events within one bandwidth of a cut it was gated by:
    where the density gives no clear place for that cut (a continuum, a shallow valley),
    the count is as much the cut's as the sample's; check the cut on the gate's plot."""
    return [QCFlag("info", f"population {name!r}: {share:.0%} of its events lie within "
                           "one density bandwidth of a cut it was gated by; its count "
                           "turns on where the cut lies", name)
            for name, share in shares.items()
            if share >= NEAR_CUT and counts.get(name, 0) >= min_reportable]


def gate_flags(result, *, min_parent: int = 100) -> list[QCFlag]:
    """What each data-driven gate of a ``GatingResult`` says about itself.

    A gate that fell back to a rule (one peak, a parent too small to fit) is
    ``info`` with its reason. A gate whose rule (anything but a valley between
    two peaks) left its population empty, from a parent of at least
    ``min_parent`` events, is a ``failure``: the rule, not the biology, most
    likely emptied it, and the population and all under it are wrong for
    this sample; so is one whose cut lies above the top of the display scale.
    Emptied otherwise (a tail cut on a rare population), it is a ``warning``, as
    is one that kept every such event while falling back; one that kept every event by
    design (a viability dye showing no dead cells) is ``info``, with its reason. A cluster
    the mixture found absent is a ``warning`` (granulocytes of a Ficoll sample), or a
    ``failure`` where the template gates populations within it (lymphocytes, whose T, B
    and NK cells are then all empty). A quadrant left empty
    is ``info`` (double positives may be absent), or a ``warning`` when its
    dividers fell back to a rule. One the template's bounds took as absent (no peak
    between them) is ``info``. What a gate doubts of itself (a lone peak taken for
    its population from the tails beside it, against its place on the scale) is a
    ``warning``.
    """
    flags = []
    nesting = {result.parent(pid) for pid in result.gate_ids}
    for gid, gate in result.gates.items():
        if not getattr(gate, "method", None):
            continue                      # fixed and boolean gates say nothing
        parent = result.strategy.gate(gid).parent
        n_parent = result.count(parent) if parent is not None else result.n_events
        of_parent = f"its parent {parent!r}" if parent is not None else "the file"
        notes = "; ".join(getattr(gate, "notes", ()) or ())
        quadrants = [q.id for q in getattr(gate, "quadrants", ())]
        fell_back = bool(getattr(gate, "fell_back", False))
        for pid in quadrants or [gid]:
            n = result.count(pid)
            if n_parent < min_parent:
                continue
            if n == 0 and quadrants:
                flags.append(QCFlag("warning" if fell_back else "info",
                                    f"gate {gid!r}: quadrant {pid!r} is empty", pid))
            elif n == 0 and getattr(gate, "absent", False):
                # the template's bounds say where the population lies, and nothing peaks
                # there: absent by the template's own rule (monocytes a CyTOF file lost)
                flags.append(QCFlag("info", f"gate {gid!r}: population {pid!r} is empty, "
                                    "taken as absent: no peak lies between the template's "
                                    "bounds", pid))
            elif n == 0:
                beyond = _cut_above_the_scale(result, gate)
                # a cluster the mixture found absent may be biology (granulocytes of a
                # Ficoll sample), but not one the template gates further populations in
                lost = ("; every population gated within it is empty too"
                        if gate.method == "gaussian mixture" and pid in nesting else "")
                flags.append(QCFlag("failure" if fell_back or beyond or lost else "warning",
                                    f"gate {gid!r}: population {pid!r} is empty although "
                                    f"{of_parent} holds {n_parent} events "
                                    f"({notes or gate.method}){beyond}{lost}; check the "
                                    "template and the plot", pid))
            elif n == n_parent and not quadrants and (fell_back or notes):
                # the rule's note is this line's reason: not said again below. By design
                # (a viability dye with one peak and nothing above it) it is only said, so
                # that a population at 100% of its parent comes with its reason
                flags.append(QCFlag("warning" if fell_back else "info",
                                    f"population {pid!r} kept every event of {of_parent} "
                                    f"({notes})", pid))
                continue
        if fell_back and notes and (quadrants or result.count(gid) != n_parent):
            flags.append(QCFlag("info", f"gate {gid!r}: {notes}", gid))
        flags += [QCFlag("warning", f"gate {gid!r}: {doubt}", gid)
                  for doubt in getattr(gate, "doubts", ())]
    return flags


def _cut_above_the_scale(result, gate) -> str:
    """Where a one-dimensional gate's lower cut lies above the top of its dimension's
    display scale, where no stained cell lies (a `tail` cut 3 SDs of a broad negative
    peak out: 1.65 on a 0-1 logicle scale), the words saying so; else ""."""
    dims, bounds = getattr(gate, "dimensions", ()), getattr(gate, "bounds", ())
    if len(dims) != 1 or len(bounds) != 1 or bounds[0][0] is None:
        return ""
    scale = result.values.signal_scale(dims[0])
    cut = float(bounds[0][0])
    if scale is None or not np.isfinite(cut) or not cut > scale[1]:
        return ""
    return f"; its cut ({cut:.4g}) lies above the top of the scale ({scale[1]:.4g})"


#: The largest range of a linear channel that may hold display (channel) values exported
#: from analysis software (FlowJo writes 0-1,024 or 0-4,096), and the share of it the
#: events' median must exceed: raw linear data put their negative cells near zero.
DISPLAY_RANGE, DISPLAY_MEDIAN = 4096.0, 0.125


def _scale_misfit(transform, channel, values, top: float, *, factor: float, below: float,
                  quantile: float) -> str | None:
    """How a log-like transform's top fits a channel whose top of scale is ``top``
    (``data_tops``): 'above' (T more than ``factor`` times that top and the events'
    ``quantile``), 'below' (the channel holds values more than ``below`` times T and its
    events reach past T), 'display' (a linear channel of a small range whose events sit
    high on it: display values, which a second log-like scale compresses again), or
    None."""

    def high() -> float:         # asked only where T lies far from the channel's top
        return float(np.quantile(values, quantile))

    if transform.T > factor * top and high() * factor < transform.T:
        return "above"
    if transform.T * below < top and high() > transform.T:
        return "below"
    if channel.amplification[0] == 0 and top <= DISPLAY_RANGE \
            and float(np.median(values)) > DISPLAY_MEDIAN * top:
        return "display"
    return None


#: How far below zero, as a share of a channel's top of scale, an event lies for the
#: sample to say it is over-compensated, and the share of the events that must lie there:
#: of 1,010 real and simulated files (a core facility's inbox of 14 instruments and
#: exports, and the tests' files) only Miami's lyoplate file has such a channel (CD8,
#: 10.2% of its events under -410 of 4,096, down to -19,299)
FAR_BELOW = 0.1
FAR_BELOW_SHARE = 0.01


def scale_flags(dimensions, sample, *, factor: float = 10.0, below: float = 2.0,
                quantile: float = 0.999) -> list[QCFlag]:
    """Warnings for a log-like transform (logicle, hyperlog, log, arcsinh with a top)
    whose top of scale ``T`` does not fit the channel (``_scale_misfit``).

    Above: every population sits in the lowest part of the scale, where peaks merge and
    data-driven cuts fail; a log-amplified channel ($PnE) of a few decades wants its own
    top as ``T``. Below (a template written for a 262,144 scale on a Cytek Aurora's
    4,194,304): the logicle width measured against ``T`` widens and peaks merge (a real
    file's B cells F1 0.80 -> 0.29 at 16 times); a range the cells do not use (a BD
    Accuri C6 declares 16,777,216) is not flagged. ``T: auto`` fits both. Display
    values (a linear 0-4,096 channel exported from FlowJo, log-like already) want
    'linear', whatever ``T``: a real file's leaves fell to a median F1 0.41 under
    ``T: auto``. One warning per kind, transform top and channel range, naming the
    channels. Besides: an info finding naming the channels whose events overrun the range
    the file declares (``top_of_data``), read on the scale the events show, and one for
    each fluorescence channel with ``FAR_BELOW_SHARE`` of its events or more below
    ``-FAR_BELOW`` of its top (over-compensated)."""
    checked = []                        # (transform, column) of each channel's dimension
    for dim in dimensions:
        if not hasattr(dim, "name"):
            continue                    # a ratio of channels
        try:
            checked.append((getattr(dim, "transform", None), sample.channel_index(dim.name)))
        except ImmunomonError:
            continue
    # every checked channel's sampled events in one pass over the event matrix
    columns = sorted({i for _, i in checked})
    sampled = dict(zip(columns, sample.events[::max(1, sample.n_events // 100_000)]
                       [:, columns].T))
    found: dict[tuple, list[str]] = {}
    overrun: dict[tuple, list[str]] = {}
    under: dict[str, str] = {}          # channel -> what lies far below zero in it
    tops = data_tops(sample) if checked else None
    for transform, i in checked:
        channel = sample.channel_info[i]
        values = sampled[i]
        values = values[np.isfinite(values)]
        if not values.size:
            continue
        name = sample.markers[i] or sample.channels[i]
        top = float(tops[i])
        far = values < -FAR_BELOW * top
        if is_fluorescence(sample.channels[i]) and far.mean() >= FAR_BELOW_SHARE:
            lowest = np.nanmin(sample.events[:, i])      # every event's, not the sample's
            under[name] = (f"{far.mean():.1%} of the events lie far below zero (under "
                           f"{-FAR_BELOW * top:,.0f}, down to {lowest:,.0f})")
        if top != channel.top and name not in overrun.setdefault((channel.top, top), []):
            overrun[(channel.top, top)].append(name)
        if transform is None or getattr(transform, "T", None) is None \
                or transform.signal_scale() is None:
            continue                    # linear or untransformed
        kind = _scale_misfit(transform, channel, values, top, factor=factor, below=below,
                             quantile=quantile)
        if kind is None:
            continue
        key = (kind, float(transform.T), top, channel.amplification[0] > 0)
        if name not in found.setdefault(key, []):
            found[key].append(name)
    return ([QCFlag("info", f"{', '.join(names)}: the file declares a range of "
                    f"{declared:,.0f}, which its events overrun; read on a scale to "
                    f"{top:,.0f} (T: auto and the margins)")
             for (declared, top), names in overrun.items()]
            + [QCFlag("info", f"{name}: {what}: over-compensated, by a spillover value set "
                      "too high or compensation applied twice; a threshold leaves a peak "
                      "of them out of its density, but check the compensation")
               for name, what in under.items()]
            + [QCFlag("warning", _scale_message(*key, names)) for key, names in found.items()])


def _scale_message(kind: str, T: float, top: float, log_amplified: bool, names) -> str:
    listed = ", ".join(names)
    display = (f"values on a linear 0-{top:,.0f} scale are display (channel) values exported "
               "from analysis software, log-like already: gate them with 'linear'")
    if kind == "below":
        return (f"{listed}: the channels hold values up to {top:,.0f} (the file's range), "
                f"{top / T:.3g} times the transform's top of scale {T:,.0f}, so bright "
                "populations run off the top of the scale and a measured width comes out "
                "too wide (peaks merge); 'T: auto' takes each channel's own top")
    if kind == "display":
        return (f"{listed}: most events lie high on a linear 0-{top:,.0f} scale, as display "
                "values do, and a log-like transform compresses them a second time; "
                f"{display}")
    remedy = (f"give the transform the channels' top (logicle T: {top:g}, or T: auto)"
              if log_amplified else display)
    return (f"{listed}: the values stop at {top:,.0f} (the file's range) but the transform's "
            f"top of scale is {T:,.0f}, so every population sits low on the scale, where "
            f"peaks merge; {remedy}")


def missing_markers(required, sample) -> list[str]:
    """The entries of ``required`` (markers or channel names) that the sample
    cannot resolve to exactly one channel: absent, or on several channels."""
    missing = []
    for name in required:
        try:
            sample.channel_index(name)
        except ImmunomonError:
            missing.append(name)
    return missing
