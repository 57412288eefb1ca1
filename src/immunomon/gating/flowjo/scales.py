"""FlowJo's own transforms, and the scale each FlowJo transform displays on.

FlowJo stores rectangle and polygon coordinates in data units and evaluates
them on the transformed (display) axes, so a polygon's straight edges are
straight on the transformed scale. Three transforms have no exact Gating-ML
2.0 counterpart:

- ``FlowJoBiex``: FlowJo's biexponential. It is the logicle function (Moore &
  Parks) with FlowJo's parameterisation (``neg``, ``width`` basis, ``pos``
  decades, ``maxRange``), tabulated at 4097 channels (0..4096) and interpolated
  linearly between them, as FlowJo does. The channel is its display scale.
- ``FlowJoLog``: ``log10(x / offset) / decades``, with values below ``offset``
  shown at the offset (FlowJo puts them on the axis instead of dropping them).
- ``FlowJoLinear``: ``(x - minRange) / (maxRange - minRange)``.

Logicle, fasinh and hyperlog are the Gating-ML 2.0 transforms of
``immunomon.transforms`` on their 0-1 scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from ...errors import TransformError
from ...transforms import Asinh, Hyperlog, Linear, Log, Logicle, Transform, _logicle_d

BIEX_CHANNELS = 4096        # FlowJo's biex display scale: channels 0..4096
DISPLAY_BINS = 256          # FlowJo's gate display resolution (ellipse coordinates)


def _finite(kind: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TransformError(f"{kind}: {name}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise TransformError(f"{kind}: {name}={value!r} must be finite")
    return v


@lru_cache(maxsize=64)
def biex_table(neg: float, width: float, pos: float, max_range: float,
               channels: int = BIEX_CHANNELS) -> np.ndarray:
    """Data value at each channel 0..channels of FlowJo's biex (read-only array).

    The curve is ``m (e^(b y) - s e^(-d y)) - f`` on ``y = channel / (channels + 1)``
    with ``b`` the positive decades times ln 10, ``d`` the logicle root of
    ``2 (ln d - ln b) + w (b + d) = 0``, and ``s`` and ``f`` chosen so that the
    zero channel maps to 0; below the zero channel the curve is mirrored.
    The zero channel is rounded down to a whole channel and the decades
    stretched to put zero exactly there, as FlowJo does.
    """
    width_decades = math.log10(-width)
    decades = pos - width_decades / 2
    extra = max(neg, 0.0) + width_decades / 2
    zero = min(int(extra * channels / (extra + decades)), channels // 2)
    if zero > 0:
        decades = extra * channels / zero
    w = width_decades / (2 * decades)
    b = math.log(10.0) * decades
    d = _logicle_d(b, w)
    n = channels + 1
    y = np.arange(n) / n
    rising = np.exp(b * y)
    falling = np.exp(-d * y) * math.exp((b + d) * (w + extra / decades))
    values = (max_range / math.exp(b)) * (rising - falling - (rising[zero] - falling[zero]))
    below = np.arange(zero)
    values[below] = -values[2 * zero - below]
    values.setflags(write=False)
    return values


@dataclass(frozen=True)
class FlowJoBiex(Transform):
    """FlowJo's biexponential (``transforms:biex``), onto channels 0..4096."""

    neg: float = 0.0
    width: float = -10.0
    pos: float = 4.418539922
    max_range: float = 262144.0
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("neg", "width", "pos", "max_range")
    scale: ClassVar[float] = float(BIEX_CHANNELS)

    def __post_init__(self):
        values = {f: _finite("FlowJo biex", f, getattr(self, f)) for f in self._fields}
        if not values["width"] < 0:
            raise TransformError(f"FlowJo biex: width basis {values['width']:g} must be "
                                 "negative (FlowJo offers -1 to -1000)")
        if values["pos"] <= 0 or values["max_range"] <= 0 or values["neg"] < 0:
            raise TransformError(f"FlowJo biex: pos and maxRange must be positive and neg "
                                 f"non-negative, got {values}")
        if math.log10(-values["width"]) / 2 >= values["pos"]:
            raise TransformError(f"FlowJo biex: width basis {values['width']:g} is too wide "
                                 f"for {values['pos']:g} positive decades")
        for f, v in values.items():
            object.__setattr__(self, f, v)

    @property
    def table(self) -> np.ndarray:
        return biex_table(self.neg, self.width, self.pos, self.max_range)

    def apply(self, x):
        t = self.table
        return np.interp(np.asarray(x, dtype=np.float64), t, np.arange(t.size, dtype=np.float64))

    def inverse(self, y):
        t = self.table
        return np.interp(np.asarray(y, dtype=np.float64), np.arange(t.size, dtype=np.float64), t)

    def logicle(self) -> Logicle:
        """The Gating-ML logicle this biex approximates (channel / 4097 within
        half a channel): T = maxRange, W = log10(-width)/2, A = neg and M + A the
        decades FlowJo stretched to put zero on a whole channel."""
        wd = math.log10(-self.width) / 2
        extra = self.neg + wd
        decades = self.pos - wd
        zero = min(int(extra * BIEX_CHANNELS / (extra + decades)), BIEX_CHANNELS // 2)
        total = extra * BIEX_CHANNELS / zero if zero > 0 else decades + extra
        return Logicle(T=self.max_range, W=wd, M=total - self.neg, A=self.neg)


@dataclass(frozen=True)
class FlowJoLog(Transform):
    """FlowJo's log (``transforms:log``): ``log10(max(x, offset) / offset) / decades``."""

    offset: float = 1.0
    decades: float = 4.5
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("offset", "decades")
    scale: ClassVar[float] = 1.0

    def __post_init__(self):
        off = _finite("FlowJo log", "offset", self.offset)
        dec = _finite("FlowJo log", "decades", self.decades)
        if off <= 0 or dec <= 0:
            raise TransformError(f"FlowJo log: offset {off:g} and decades {dec:g} must be "
                                 "positive")
        object.__setattr__(self, "offset", off)
        object.__setattr__(self, "decades", dec)

    def as_gatingml(self) -> Log:
        return Log(T=self.offset * 10.0 ** self.decades, M=self.decades)

    def apply(self, x):
        return self.as_gatingml().apply(np.maximum(np.asarray(x, dtype=np.float64), self.offset))

    def inverse(self, y):
        return self.as_gatingml().inverse(y)


@dataclass(frozen=True)
class FlowJoLinear(Transform):
    """FlowJo's linear (``transforms:linear``): ``(x - minRange) / (maxRange - minRange)``."""

    min_range: float = 0.0
    max_range: float = 262144.0
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("min_range", "max_range")
    scale: ClassVar[float] = 1.0

    def __post_init__(self):
        lo = _finite("FlowJo linear", "minRange", self.min_range)
        hi = _finite("FlowJo linear", "maxRange", self.max_range)
        if not lo < hi:
            raise TransformError(f"FlowJo linear: minRange {lo:g} must be below maxRange {hi:g}")
        object.__setattr__(self, "min_range", lo)
        object.__setattr__(self, "max_range", hi)

    def as_gatingml(self) -> Linear | None:
        """Gating-ML flin when its constraint (0 <= A <= T) allows, else None."""
        if self.min_range <= 0 and -self.min_range <= self.max_range:
            return Linear(T=self.max_range, A=-self.min_range)
        return None

    def apply(self, x):
        x = np.asarray(x, dtype=np.float64)
        return (x - self.min_range) / (self.max_range - self.min_range)

    def inverse(self, y):
        return np.asarray(y, dtype=np.float64) * (self.max_range - self.min_range) + self.min_range


@dataclass(frozen=True, eq=False)
class FlowJoTable(Transform):
    """A transform FlowJo 9 wrote out as a calibration table: the data value at
    each display channel, interpolated linearly (FlowJo 9 derives the biex of
    each compensated channel from its data and stores only the table)."""

    name: str
    values: np.ndarray
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("name",)

    def __post_init__(self):
        v = np.array(self.values, dtype=np.float64)
        if v.ndim != 1 or v.size < 2 or not np.isfinite(v).all() or not (np.diff(v) > 0).all():
            raise TransformError(f"FlowJo calibration table {self.name!r}: needs increasing "
                                 "finite values, one per channel")
        v.setflags(write=False)
        object.__setattr__(self, "values", v)

    @property
    def scale(self) -> float:
        return float(self.values.size - 1)

    def apply(self, x):
        return np.interp(np.asarray(x, dtype=np.float64), self.values,
                         np.arange(self.values.size, dtype=np.float64))

    def inverse(self, y):
        return np.interp(np.asarray(y, dtype=np.float64),
                         np.arange(self.values.size, dtype=np.float64), self.values)


@lru_cache(maxsize=64)
def fit_biex(table: FlowJoTable) -> FlowJoBiex:
    """The FlowJo biex closest to a FlowJo 9 calibration table (FlowJo 9 derived
    one biex per compensated channel and stored only its table)."""
    from scipy.optimize import minimize

    channels = np.arange(table.values.size, dtype=np.float64) * (4096.0 / (table.values.size - 1))
    top = 262144.0                       # FlowJo 9's tables end just below 2**18

    def worst(p):
        neg, log_width, pos = p
        try:
            biex = FlowJoBiex(max(neg, 0.0), -10.0 ** log_width, pos, top)
        except TransformError:
            return 1e9
        return float(np.abs(biex.apply(table.values) - channels).max())

    # the width basis decides most of the shape: start from the best on a grid
    start = min(((0.0, lw, 4.5) for lw in np.linspace(0.0, 3.0, 31)), key=worst)
    fit = minimize(worst, start, method="Nelder-Mead",
                   options={"xatol": 1e-5, "fatol": 1e-4, "maxiter": 400})
    neg, log_width, pos = fit.x if fit.fun < worst(start) else start
    return FlowJoBiex(max(neg, 0.0), -10.0 ** log_width, pos, top)


@dataclass(frozen=True)
class OnScale(Transform):
    """A transform as FlowJo displays it: values beyond either end of the axis
    are drawn on that end (FlowJo's 'margin' events)."""

    transform: Transform
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("transform",)

    @property
    def scale(self) -> float:
        return display_scale(self.transform)

    def apply(self, x):
        return np.clip(np.asarray(self.transform.apply(x), dtype=np.float64), 0.0, self.scale)

    def inverse(self, y):
        return self.transform.inverse(y)


def on_axis(transform, value: float) -> int:
    """-1 when a data value is drawn at or below the bottom of a FlowJo axis,
    +1 at or beyond its top, 0 inside."""
    y = float(np.asarray(transform.apply(np.array([value], dtype=np.float64)))[0])
    top = display_scale(transform)
    return -1 if not y > 0.0 else 1 if not y < top else 0


def skirted(vertices: np.ndarray, edges, reach: float = 1e6) -> np.ndarray:
    """A polygon whose edges along an axis end (both vertices at or beyond it)
    get a skirt reaching ``reach`` further out: events drawn on that end of the
    axis fall inside, and the outline within the axes is unchanged.
    ``edges[k]`` is (bottom, top) of axis k, or None for an axis without ends."""
    out = []
    n = len(vertices)
    for i in range(n):
        a, b = vertices[i], vertices[(i + 1) % n]
        out.append(a)
        for k, ends in enumerate(edges):
            if ends is None:
                continue
            lo, hi = ends
            for beyond, far in ((a[k] <= lo and b[k] <= lo, lo - reach),
                                (a[k] >= hi and b[k] >= hi, hi + reach)):
                if beyond:
                    pa, pb = a.copy(), b.copy()
                    pa[k] = pb[k] = far
                    out += [pa, pb]
    return np.array(out)


def display_scale(transform) -> float:
    """Width of a transform's display axis in its own units: 4096 for biex,
    1 for the 0-1 scales (linear, log, logicle, fasinh, hyperlog)."""
    return float(getattr(transform, "scale", 1.0))


def gatingml_equivalent(transform):
    """A Gating-ML 2.0 transform giving the same gate memberships (``FlowJoBiex``
    and FlowJo 9 tables: the logicle they approximate, channel / 4097), or the
    transform itself when it is one already."""
    if isinstance(transform, OnScale):
        return gatingml_equivalent(transform.transform)
    if isinstance(transform, FlowJoBiex):
        return transform.logicle()
    if isinstance(transform, FlowJoTable):
        return fit_biex(transform).logicle()
    if isinstance(transform, (FlowJoLog, FlowJoLinear)):
        return transform.as_gatingml()
    if isinstance(transform, (Linear, Log, Asinh, Logicle, Hyperlog)):
        return transform
    return None
