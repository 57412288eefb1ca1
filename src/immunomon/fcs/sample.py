"""The in-memory form of one FCS data set."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ImmunomonError
from .channel_kinds import is_time


@dataclass(frozen=True)
class Channel:
    """What the TEXT segment says about one parameter ($Pn* keywords)."""

    name: str                      # $PnN
    marker: str | None = None      # $PnS
    range: float = 262144.0        # $PnR
    gain: float = 1.0              # $PnG
    amplification: tuple[float, float] = (0.0, 0.0)  # $PnE decades, offset
    datatype: str = "F"            # $DATATYPE or FCS 3.2 $PnDATATYPE
    bits: int = 32                 # $PnB

    @property
    def top(self) -> float:
        """The largest scale value the channel can hold, as its keywords declare it: for
        a log-amplified channel ($PnE f1,f2) f2 * 10^f1, else $PnR over its gain (the
        clock's own $PnR: the reader applies no gain to Time)."""
        decades, offset = self.amplification
        if decades > 0:
            return (offset if offset > 0 else 1.0) * 10.0 ** decades
        return self.range if is_time(self.name) else self.range / (self.gain or 1.0)

    @property
    def saturation(self) -> float:
        """The scale value of the largest value the channel can store, $PnR - 1: where its
        saturated events lie (a log-amplified channel's ``top`` is where its scale ends,
        which no stored value reaches: 9,910 of a 4-decade, 1,024-channel scale's 10,000)."""
        decades, offset = self.amplification
        if decades > 0:
            return (offset if offset > 0 else 1.0) * 10.0 ** (decades * (self.range - 1)
                                                               / self.range)
        return self.range - 1 if is_time(self.name) else (self.range - 1) / (self.gain or 1.0)


#: A floating-point channel's events overrun the range its keywords declare, and the
#: keyword does not describe them, when more than ``OVERRUN_SHARE`` of them lie above it
#: and they reach ``OVERRUN_REACH`` times past it: a data set written back as FCS with
#: $PnR 1,024 over values up to 262,143 (a published bone-marrow data set: 34-68% of
#: each channel's events above it), not a compensated export's bright events a little
#: past the top.
OVERRUN_SHARE, OVERRUN_REACH = 0.01, 2.0


def top_of_data(declared: float, datatype: str, n_above: int, n_events: int,
                largest: float) -> float:
    """A channel's top of scale: ``declared`` (``Channel.top``), unless the channel stores
    floating-point values that overrun it (``n_above`` of its ``n_events`` finite values
    above it, up to ``largest``); then the power of two at or above ``largest`` (262,144
    for an 18-bit analyser's values)."""
    if datatype not in ("F", "D") or n_above <= OVERRUN_SHARE * n_events \
            or not largest > OVERRUN_REACH * declared:
        return declared
    return float(2.0 ** math.ceil(math.log2(largest)))


#: each sample's ``data_tops``, found once: the logicle's ``T: auto``, the margin check
#: and the scale warnings of one gated file all read them
_TOPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def data_tops(sample) -> np.ndarray:
    """Each channel's top of scale (``top_of_data``), read-only, found once per sample."""
    try:
        tops = _TOPS.get(sample)
    except TypeError:                   # an object that takes no weak reference
        return _data_tops(sample)
    if tops is None:
        tops = _TOPS[sample] = _data_tops(sample)
        tops.setflags(write=False)
    return tops


def _data_tops(sample, max_events: int = 20_000) -> np.ndarray:
    """Each channel's top of scale (``top_of_data``), from at most ``max_events`` events
    spread over the file. One writer puts one range on all the channels, so where one
    channel's events overrun it, every floating-point channel declaring that range takes
    the largest top found among them (that data set's PI stays under 1,024)."""
    info = sample.channel_info
    tops = np.array([c.top for c in info], dtype=np.float64)
    if sample.n_events == 0:
        return tops
    events = sample.events[::max(1, sample.n_events // max_events)]
    finite = np.isfinite(events)
    n = finite.sum(axis=0)
    largest = np.where(finite, events, -np.inf).max(axis=0)
    above = (finite & (events > tops)).sum(axis=0)
    found = np.array([top_of_data(t, c.datatype, int(a), int(k), float(h))
                      for t, c, a, k, h in zip(tops, info, above, n, largest)])
    measured = [i for i, c in enumerate(info) if c.datatype in ("F", "D")
                and not is_time(c.name)]        # a clock counts on past any range
    for declared in {tops[i] for i in measured if found[i] != tops[i]}:
        group = [i for i in measured if tops[i] == declared]
        found[group] = found[group].max()
    return found


@dataclass(frozen=True, eq=False)
class Spillover:
    """A spillover matrix labelled by detector: ``matrix[i, j]`` is the share of
    the signal of the dye read in ``detectors[i]`` that spills into ``detectors[j]``."""

    detectors: tuple[str, ...]
    matrix: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        n = len(self.detectors)
        if m.shape != (n, n):
            raise ImmunomonError(
                f"spillover matrix is {m.shape[0]}x{m.shape[1] if m.ndim > 1 else 1} "
                f"but names {n} detectors")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "detectors", tuple(self.detectors))

    @property
    def is_identity(self) -> bool:
        """Whether compensating with this matrix changes nothing (no spill between any
        two detectors): written where the compensation lives in a workspace instead."""
        return bool(np.allclose(self.matrix, np.eye(len(self.detectors))))

    def __eq__(self, other):
        return (isinstance(other, Spillover) and self.detectors == other.detectors
                and np.array_equal(self.matrix, other.matrix))

    def __repr__(self):
        return f"Spillover({len(self.detectors)} detectors: {', '.join(self.detectors)})"


class ChannelNames:
    """``channels`` ($PnN) and ``markers`` ($PnS) derived from ``channel_info``."""

    channel_info: tuple[Channel, ...]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channel_info)

    @property
    def markers(self) -> tuple[str | None, ...]:
        return tuple(c.marker for c in self.channel_info)


@dataclass(eq=False)
class Sample(ChannelNames):
    """One FCS data set: events (float32, events x channels) and its metadata.

    Columns of ``events`` follow ``channels`` (the $PnN names in file order).
    ``read_fcs`` gives scale values, as the standard describes: log-amplified
    integer data ($PnE) converted to linear values and linear channels divided
    by their gain ($PnG); ``channel_info`` keeps the stored $PnE and $PnG.
    """

    events: np.ndarray
    channel_info: tuple[Channel, ...]
    keywords: dict[str, str]
    version: str = "3.1"
    spillover: Spillover | None = None
    path: Path | None = None
    dataset: int = 0
    warnings: list[str] = field(default_factory=list)
    raw_text: bytes | None = None     # the TEXT segment as stored, for non-UTF-8 values
    spillover_error: str | None = None  # why a spillover keyword present could not be read

    def __post_init__(self):
        if self.events.ndim != 2 or self.events.shape[1] != len(self.channel_info):
            raise ImmunomonError(
                f"events have shape {self.events.shape} but {len(self.channel_info)} channels "
                "are described")
        self.channel_info = tuple(self.channel_info)

    # -- channel metadata -------------------------------------------------------
    @property
    def ranges(self) -> np.ndarray:
        return np.array([c.range for c in self.channel_info], dtype=np.float64)

    @property
    def gains(self) -> np.ndarray:
        return np.array([c.gain for c in self.channel_info], dtype=np.float64)

    @property
    def n_events(self) -> int:
        return self.events.shape[0]

    @property
    def timestep(self) -> float | None:
        """The file's $TIMESTEP, when given (``seconds_per_time_unit`` checks it)."""
        value = self.keywords.get("$TIMESTEP")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def seconds_per_time_unit(self, time_index: int, clock=None) -> float | None:
        """Seconds per unit of the Time channel at column ``time_index``:
        ``$TIMESTEP``, checked against the file's own clock (``time_step``). ``clock``:
        the clock's values where they are not that column's alone (``qc.acquisition_clock``
        reads a clock split in two words)."""
        step = self.timestep
        if not step:
            return step
        t = self.events[:, time_index] if clock is None else np.asarray(clock)
        finite = t[np.isfinite(t)]
        span = float(finite.max() - finite.min()) if finite.size else 0.0
        return time_step(step, self.channel_info[time_index].gain, span,
                         self.keywords.get("$BTIM"), self.keywords.get("$ETIM"))

    def channel_index(self, name_or_marker: str) -> int:
        """Column of a channel given its $PnN name or its $PnS marker.

        Exact $PnN matches win, then exact markers, then case-insensitive
        matches of either, then a $PnN as FlowJo writes it in a workspace, with
        "/" made "_" (``v-450_50-B-A`` for ``v-450/50-B-A``). An ambiguous marker is
        an error naming the channels.
        """
        names = self.channels
        if name_or_marker in names:
            return names.index(name_or_marker)
        hits = [i for i, m in enumerate(self.markers) if m == name_or_marker]
        if not hits:
            key = name_or_marker.casefold()
            hits = [i for i, c in enumerate(self.channel_info)
                    if c.name.casefold() == key or (c.marker or "").casefold() == key]
        if not hits and "_" in name_or_marker:
            hits = [i for i, c in enumerate(names)
                    if "/" in c and c.replace("/", "_") == name_or_marker]
        if len(hits) == 1:
            return hits[0]
        where = f" in {self.path}" if self.path else ""
        if not hits:
            known = ", ".join(f"{c.name} ({c.marker})" if c.marker else c.name
                              for c in self.channel_info)
            raise ImmunomonError(
                f"no channel or marker named {name_or_marker!r}{where}; channels are: {known}")
        raise ImmunomonError(
            f"marker {name_or_marker!r} is on several channels{where}: "
            f"{', '.join(names[i] for i in hits)}; name the channel instead")

    def column(self, name_or_marker: str) -> np.ndarray:
        """The events of one channel (a view, float32)."""
        return self.events[:, self.channel_index(name_or_marker)]

    def __getitem__(self, name_or_marker: str) -> np.ndarray:
        if not isinstance(name_or_marker, str):
            raise ImmunomonError(f"a channel is named by its marker or channel name, not "
                                 f"{name_or_marker!r}; sample.events[:, i] gives column i")
        return self.column(name_or_marker)

    def __repr__(self):
        src = f" from {self.path.name}" if self.path else ""
        return (f"<Sample{src}: FCS {self.version}, {self.n_events} events x "
                f"{len(self.channel_info)} channels>")


def clock_seconds(text) -> float | None:
    """Seconds since midnight of an FCS time of day: hh:mm:ss, with optional
    hundredths after '.' (FCS 3) or ':' (FCS 2)."""
    parts = str(text or "").strip().replace(".", ":").split(":")
    try:
        h, m, sec = (float(x) for x in parts[:3])
        frac = float(f"0.{parts[3]}") if len(parts) > 3 and parts[3].isdigit() else 0.0
    except ValueError:
        return None
    return h * 3600 + m * 60 + sec + frac


def acquisition_seconds(btim, etim) -> float | None:
    """Seconds from ``$BTIM`` to ``$ETIM`` (an acquisition may pass midnight); None where
    either is missing or unreadable, or they are equal."""
    start, stop = clock_seconds(btim), clock_seconds(etim)
    if start is None or stop is None:
        return None
    return ((stop - start) % 86400) or None


def time_step(timestep: float, gain: float, span: float, btim, etim) -> float:
    """Seconds per unit of the Time channel's stored values: ``$TIMESTEP``, or
    ``$TIMESTEP`` times the Time channel's ``$PnG`` when the file's own clock says
    so: values times ``$TIMESTEP`` that span a hundred times the acquisition from
    ``$BTIM`` to ``$ETIM``, and times the gain span it (BD FACSDiva writes Time with
    ``$PnG`` 0.01, whose stored values times ``$TIMESTEP`` span the acquisition: the
    rule leaves them be). Without a usable clock, ``$TIMESTEP``."""
    duration = acquisition_seconds(btim, etim)
    if gain == 1.0 or not gain > 0 or span <= 0 or duration is None:
        return timestep
    plain, scaled = span * timestep / duration, span * timestep * gain / duration
    if plain > 10 and 0.5 <= scaled <= 2:
        return timestep * gain
    return timestep
