"""FlowCytometryTools-compatible API on immunomon's FCS reader.

FlowCytometryTools 0.5 no longer imports on Python 3.10+ or numpy 2. Change
``from FlowCytometryTools import ...`` to ``from immunomon.compat.fct import
...`` and a script keeps working::

    from immunomon.compat.fct import FCMeasurement, FCPlate, ThresholdGate, PolyGate

    sample = FCMeasurement(ID="Test Sample", datafile="RFP_Well_A3.fcs")
    tsample = sample.transform("hlog", channels=["Y2-A", "B1-A"], b=500.0)
    y2_gate = ThresholdGate(1000.0, ["Y2-A"], region="above")
    tsample.gate(y2_gate).counts

    plate = FCPlate.from_dir(ID="Demo Plate", path="plate01/", parser="name")
    plate.transform("hlog", channels=["Y2-A", "B1-A"]).gate(y2_gate).counts()

Behaviour follows FlowCytometryTools' documentation:

- ``data`` holds the values as stored in the file ($PnE and $PnG not applied),
  with columns named by ``$PnS`` when every channel has a distinct one, else
  by ``$PnN`` (``channel_naming="$PnN"`` forces the latter).
- ``hlog(x, b=500, r=10**4, d=log10(2**18))`` is the inverse of
  ``hlog_inv(y) = sign(y) 10^(sign(y) d y / r) + b d y / r - sign(y)``; with
  ``auto_range`` (the default) ``d`` is ``log10($PnR)`` of the channels.
  FlowCytometryTools evaluates it through a spline fitted on 1000 points;
  here it is solved exactly, per event.
- ``tlog(x, th=1, r=10**4, d=log10(2**18)) = r/d log10(max(x, th))``;
  ``glog(x, l) = ln(x + sqrt(x^2 + l))``.
- Gate boundaries: ``ThresholdGate`` 'above' keeps ``x >= t`` ('below' the
  rest); ``IntervalGate`` 'in' keeps ``lo <= x <= hi``; ``QuadGate`` puts
  ``x >= x0`` on the right and ``y >= y0`` at the top; ``PolyGate`` uses the
  even-odd rule. ``&``, ``|``, ``^`` and ``~`` combine gates.
"""

from __future__ import annotations

import copy as _copy
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ImmunomonError

__all__ = [
    "FCMeasurement", "FCPlate", "FCOrderedCollection", "FCTError",
    "ThresholdGate", "IntervalGate", "QuadGate", "PolyGate", "CompositeGate",
    "hlog", "hlog_inv", "tlog", "tlog_inv", "glog", "glog_inv", "linear",
]

_MACHINE_MAX = 2 ** 18
_DISPLAY_MAX = 10 ** 4
_L_MMAX = math.log10(_MACHINE_MAX)


class FCTError(ImmunomonError, ValueError):
    """Misuse of the FlowCytometryTools-compatible API (a ValueError, as there)."""


def _to_list(x):
    if x is None:
        return None
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        return [x]
    return list(x)


# ----------------------------------------------------------------------------- transforms
def linear(x, old_range, new_range):
    """Rescale: ``x / old_range * new_range``."""
    return np.asarray(x, dtype=np.float64) / old_range * new_range


def tlog(x, th=1, r=_DISPLAY_MAX, d=_L_MMAX):
    """Truncated log10: ``r/d log10(x)``, values at or below ``th`` at ``r/d log10(th)``."""
    if th <= 0:
        raise FCTError(f"tlog: threshold th={th} must be positive")
    x = np.asarray(x, dtype=np.float64)
    return np.log10(np.maximum(x, th)) * (r / d)


def tlog_inv(y, th=1, r=_DISPLAY_MAX, d=_L_MMAX):
    if th <= 0:
        raise FCTError(f"tlog_inv: threshold th={th} must be positive")
    return np.maximum(10.0 ** (np.asarray(y, dtype=np.float64) * d / r), th)


def glog(x, l):  # noqa: E741 - FlowCytometryTools' parameter name
    """Natural-base generalised log: ``ln(x + sqrt(x^2 + l))``."""
    x = np.asarray(x, dtype=np.float64)
    return np.log(x + np.sqrt(x * x + l))


def glog_inv(y, l):  # noqa: E741
    ey = np.exp(np.asarray(y, dtype=np.float64))
    return (ey * ey - l) / (2 * ey)


def hlog_inv(y, b=500, r=_DISPLAY_MAX, d=_L_MMAX):
    """Inverse hyperlog: ``sign(y) 10^(sign(y) d y / r) + b d y / r - sign(y)``."""
    aux = np.asarray(y, dtype=np.float64) * (d / r)
    s = np.where(aux < 0, -1.0, 1.0)
    return s * 10.0 ** (s * aux) + b * aux - s


def hlog(x, b=500, r=_DISPLAY_MAX, d=_L_MMAX):
    """Base-10 hyperlog: the ``y`` with ``hlog_inv(y) = x``, solved per value.

    ``hlog_inv`` is odd, so ``|x| = f(a) = 10^a + b a - 1`` with ``a = d |y| / r``;
    ``f`` is convex and increasing from 0, so Newton's method started above
    the root (``f(a) >= (ln 10 + b) a`` and ``f(a) >= 10^a - 1``) descends onto it.
    """
    if b <= 0 or r <= 0 or d <= 0:
        raise FCTError(f"hlog: b={b}, r={r} and d={d} must be positive")
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    ln10 = math.log(10.0)
    with np.errstate(over="ignore", invalid="ignore"):
        a = np.minimum(ax / (ln10 + b), np.log10(ax + 1.0))
        for _ in range(100):
            step = (10.0 ** a + b * a - 1.0 - ax) / (ln10 * 10.0 ** a + b)
            step = np.where(np.isfinite(step) & (step > 0), step, 0.0)
            a -= step
            if not (step > 1e-15 * np.maximum(a, 1e-300)).any():
                break
    return np.copysign(a * (r / d), x)


_TRANSFORMS = {"hlog": (hlog, hlog_inv), "hyperlog": (hlog, hlog_inv),
               "tlog": (tlog, tlog_inv), "glog": (glog, glog_inv),
               "linear": (linear, linear), "lin": (linear, linear), "rescale": (linear, linear)}


def _transform_function(transform, direction):
    if callable(transform):
        return transform, None
    name = str(transform).lower()
    if name not in _TRANSFORMS:
        raise FCTError(f"unknown transform {transform!r}; use hlog, tlog, glog, linear or a "
                       "function")
    if direction not in ("forward", "inverse"):
        raise FCTError(f"direction must be 'forward' or 'inverse', not {direction!r}")
    canonical = "hlog" if name == "hyperlog" else "linear" if name in ("lin", "rescale") \
        else name
    return _TRANSFORMS[name][0 if direction == "forward" else 1], canonical


# ----------------------------------------------------------------------------- gates
class _Composable:
    def __and__(self, other):
        return CompositeGate(self, "and", other)

    def __or__(self, other):
        return CompositeGate(self, "or", other)

    def __xor__(self, other):
        return CompositeGate(self, "xor", other)

    def __invert__(self):
        return CompositeGate(self, "invert")

    def __call__(self, dataframe):
        """The rows of ``dataframe`` that pass the gate."""
        return dataframe[self._identify(dataframe)]


class Gate(_Composable):
    """Common base: vertices, channels, region and a name."""

    _regions: tuple[str, ...] = ()
    _unnamed = 1

    def __init__(self, vert, channels, region, name=None):
        self.vert = vert
        self.channels = _to_list(channels)
        if name is None:
            name = f"Unnamed Gate {Gate._unnamed}"
            Gate._unnamed += 1
        self.name = name
        self.region = region
        self._validate()

    @property
    def region(self) -> str:
        return self._region

    @region.setter
    def region(self, value):
        v = str(value).lower()
        if v not in self._regions:
            raise FCTError(f"{type(self).__name__} {getattr(self, 'name', '')!r}: region must "
                           f"be one of {self._regions}, not {value!r}")
        self._region = v

    def _validate(self):
        """A hook: each kind of gate checks its own arguments (thresholds, vertices)."""

    def _column(self, dataframe, channel) -> np.ndarray:
        if channel not in dataframe:
            raise FCTError(f"gate {self.name!r} uses channel {channel!r}, which the data "
                           f"lacks; its channels are: {', '.join(map(str, dataframe.columns))}")
        return np.asarray(dataframe[channel], dtype=np.float64)

    def __repr__(self):
        return (f"{type(self).__name__}(vert={self.vert!r}, channels={self.channels!r}, "
                f"region={self.region!r}, name={self.name!r})")

    def _orientation(self, ax_channels) -> bool:
        if ax_channels is None:
            return False
        ax_channels = _to_list(ax_channels)
        if self.channels[0] not in ax_channels or any(c not in ax_channels
                                                      for c in self.channels):
            raise FCTError(f"gate {self.name!r} is on {self.channels}, the axes show "
                           f"{ax_channels}")
        return ax_channels.index(self.channels[0]) != 0


class ThresholdGate(Gate):
    """'above' keeps events with ``x >= threshold``; 'below' keeps the others."""

    _regions = ("above", "below")

    def __init__(self, threshold, channel, region, name=None):
        super().__init__(threshold, channel, region, name)

    def _identify(self, dataframe):
        above = self._column(dataframe, self.channels[0]) >= self.vert
        return above if self.region == "above" else ~above

    def plot(self, flip=False, ax_channels=None, ax=None, **kwargs):
        import matplotlib.pyplot as plt
        ax = ax or plt.gca()
        flip = self._orientation(ax_channels) if ax_channels is not None else flip
        kwargs.setdefault("color", "black")
        return (ax.axhline if flip else ax.axvline)(self.vert, **kwargs)


class IntervalGate(Gate):
    """'in' keeps events with ``lo <= x <= hi``; 'out' keeps the others."""

    _regions = ("in", "out")

    def __init__(self, vert, channel, region, name=None):
        super().__init__(tuple(vert), channel, region, name)

    def _validate(self):
        if not len(self.vert) == 2 or not self.vert[1] > self.vert[0]:
            raise FCTError(f"IntervalGate {self.name!r}: needs (min, max) with max > min, "
                           f"got {self.vert}")

    def _identify(self, dataframe):
        x = self._column(dataframe, self.channels[0])
        inside = (x >= self.vert[0]) & (x <= self.vert[1])
        return inside if self.region == "in" else ~inside

    def plot(self, flip=False, ax_channels=None, ax=None, **kwargs):
        import matplotlib.pyplot as plt
        ax = ax or plt.gca()
        flip = self._orientation(ax_channels) if ax_channels is not None else flip
        kwargs.setdefault("color", "black")
        line = ax.axhline if flip else ax.axvline
        return line(self.vert[0], **kwargs), line(self.vert[1], **kwargs)


class QuadGate(Gate):
    """One quadrant around ``(x0, y0)``: right is ``x >= x0``, top is ``y >= y0``."""

    _regions = ("top left", "top right", "bottom left", "bottom right")

    def __init__(self, vert, channels, region, name=None):
        super().__init__(tuple(vert), channels, region, name)

    def _validate(self):
        if len(self.channels) != 2 or len(self.vert) != 2:
            raise FCTError(f"QuadGate {self.name!r}: needs two channels and a centre (x, y)")

    def _identify(self, dataframe):
        right = self._column(dataframe, self.channels[0]) >= self.vert[0]
        top = self._column(dataframe, self.channels[1]) >= self.vert[1]
        if "left" in self.region:
            right = ~right
        if "bottom" in self.region:
            top = ~top
        return right & top

    def plot(self, flip=False, ax_channels=None, ax=None, **kwargs):
        import matplotlib.pyplot as plt
        ax = ax or plt.gca()
        flip = self._orientation(ax_channels) if ax_channels is not None else flip
        kwargs.setdefault("color", "black")
        x, y = self.vert[::-1] if flip else self.vert
        return ax.axvline(x, **kwargs), ax.axhline(y, **kwargs)


class PolyGate(Gate):
    """Events inside ('in') or outside ('out') a polygon, even-odd rule."""

    _regions = ("in", "out")

    def __init__(self, vert, channels, region="in", name=None):
        super().__init__(np.asarray(vert, dtype=np.float64), channels, region, name)

    def _validate(self):
        v = self.vert
        if len(self.channels) != 2 or v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise FCTError(f"PolyGate {self.name!r}: needs two channels and 3 or more (x, y) "
                           "vertices")

    def _identify(self, dataframe):
        from ..gating.masks import polygon_mask
        inside = polygon_mask(self._column(dataframe, self.channels[0]),
                              self._column(dataframe, self.channels[1]), self.vert)
        return inside if self.region == "in" else ~inside

    def plot(self, flip=False, ax_channels=None, ax=None, **kwargs):
        import matplotlib.pyplot as plt
        from matplotlib.patches import Polygon
        ax = ax or plt.gca()
        flip = self._orientation(ax_channels) if ax_channels is not None else flip
        kwargs.setdefault("fill", False)
        kwargs.setdefault("color", "black")
        return ax.add_patch(Polygon(self.vert[:, ::-1] if flip else self.vert, **kwargs))


class CompositeGate(_Composable):
    """``and``, ``or``, ``xor`` of two gates, or ``invert`` of one."""

    def __init__(self, gate1, how, gate2=None):
        if how not in ("and", "or", "xor", "invert"):
            raise FCTError(f"CompositeGate: how must be and, or, xor or invert, not {how!r}")
        if (how == "invert") != (gate2 is None):
            raise FCTError("CompositeGate: 'invert' takes one gate, the others two")
        self.gates = [gate1] if gate2 is None else [gate1, gate2]
        self.how = how

    @property
    def name(self) -> str:
        if self.how == "invert":
            return f"~{self.gates[0].name}"
        return f"{self.gates[0].name} {self.how} {self.gates[1].name}"

    @property
    def channels(self) -> list:
        return list(dict.fromkeys(c for g in self.gates for c in g.channels))

    def _identify(self, dataframe):
        masks = [np.asarray(g._identify(dataframe)) for g in self.gates]
        if self.how == "invert":
            return ~masks[0]
        return {"and": np.logical_and, "or": np.logical_or,
                "xor": np.logical_xor}[self.how](*masks)

    def plot(self, flip=False, ax_channels=None, ax=None, **kwargs):
        return [g.plot(flip=flip, ax_channels=ax_channels, ax=ax, **kwargs) for g in self.gates]

    def __str__(self):
        return self.name


# ----------------------------------------------------------------------------- measurements
class FCMeasurement:
    """One FCS file (a well or a tube): ``data`` (a DataFrame), ``meta`` and methods
    that return new measurements (``transform``, ``gate``, ``subsample``)."""

    def __init__(self, ID, datafile=None, readdata=False, readdata_kwargs=None,
                 readmeta=True, readmeta_kwargs=None, data=None, meta=None):
        self.ID = ID
        self.datafile = None if datafile is None else str(datafile)
        self.readdata_kwargs = dict(readdata_kwargs or {})
        self.readmeta_kwargs = dict(readmeta_kwargs or {})
        self._data = data
        self._meta = meta
        self.position = {}
        if readmeta and meta is None and datafile is not None:
            self._meta = self.read_meta()
        if readdata and data is None and datafile is not None:
            self._data = self.read_data()

    # -- reading -----------------------------------------------------------
    def _naming(self) -> str:
        naming = self.readdata_kwargs.get("channel_naming", "$PnS")
        if naming not in ("$PnS", "$PnN"):
            raise FCTError(f"channel_naming must be '$PnS' or '$PnN', not {naming!r}")
        return naming

    def _names(self, channel_info) -> tuple[str, ...]:
        pnn = tuple(c.name for c in channel_info)
        pns = tuple(c.marker for c in channel_info)
        if self._naming() == "$PnS" and all(pns) and len(set(pns)) == len(pns):
            return pns
        return pnn

    def read_meta(self, **kwargs) -> dict:
        """Keywords of the TEXT segment plus ``_channels_`` (a table of $PnN, $PnS,
        $PnR, $PnB, $PnE, $PnG per channel) and ``_channel_names_``."""
        import pandas as pd

        from ..fcs import read_fcs_metadata
        if self.datafile is None:
            raise FCTError(f"measurement {self.ID!r} has no data file")
        md = read_fcs_metadata(self.datafile)
        meta = dict(md.keywords)
        rows = [{"$PnN": c.name, "$PnS": c.marker or "", "$PnR": c.range, "$PnB": c.bits,
                 "$PnE": f"{c.amplification[0]:g},{c.amplification[1]:g}", "$PnG": c.gain}
                for c in md.channel_info]
        meta["_channels_"] = pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1,
                                                                    name="Channel Number"))
        meta["_channel_names_"] = self._names(md.channel_info)
        return meta

    def read_data(self, **kwargs):
        """The events as stored in the file, one column per channel."""
        import pandas as pd

        from ..fcs import read_fcs
        if self.datafile is None:
            raise FCTError(f"measurement {self.ID!r} has no data file")
        sample = read_fcs(self.datafile, scale=False)
        return pd.DataFrame(np.asarray(sample.events), columns=list(
            self._names(sample.channel_info)))

    @property
    def data(self):
        if self._data is None and self.datafile is not None:
            self._data = self.read_data()
        return self._data

    @data.setter
    def data(self, value):
        self._data = value

    @property
    def meta(self):
        if self._meta is None and self.datafile is not None:
            self._meta = self.read_meta()
        return self._meta

    @meta.setter
    def meta(self, value):
        self._meta = value

    def get_data(self, **kwargs):
        return self.data

    def get_meta(self, **kwargs):
        return self.meta

    def set_data(self, data=None, **kwargs):
        self._data = self.read_data() if data is None else data

    def set_meta(self, meta=None, **kwargs):
        self._meta = self.read_meta() if meta is None else meta

    def get_meta_fields(self, fields, kwargs=None) -> dict:
        meta = self.meta or {}
        return {f: meta.get(f) for f in _to_list(fields)}

    def ID_from_data(self, ID_field="$SRC"):
        value = (self.meta or {}).get(ID_field)
        if value is None:
            raise FCTError(f"{self.datafile}: no keyword {ID_field!r} to take an ID from")
        return value

    @property
    def channels(self):
        return None if self.meta is None else self.meta["_channels_"]

    @property
    def channel_names(self) -> tuple:
        if self.meta is not None:
            return tuple(self.meta["_channel_names_"])
        return tuple(self.data.columns) if self.data is not None else ()

    @property
    def counts(self) -> int:
        return 0 if self.data is None else int(self.data.shape[0])

    @property
    def shape(self):
        return None if self.data is None else self.data.shape

    def copy(self, deep=True):
        new = _copy.copy(self)
        if deep and self._data is not None:
            new._data = self._data.copy()
        return new

    def __repr__(self):
        return f"<FCMeasurement {self.ID!r}: {self.datafile or 'in memory'}>"

    # -- verbs -------------------------------------------------------------
    def apply(self, func, applyto="measurement", noneval=np.nan, setdata=False):
        applyto = applyto.lower()
        if applyto == "measurement":
            return func(self)
        if applyto == "data":
            if self._data is None and self.datafile is None:
                return noneval
            data = self.data if (setdata or self._data is not None) else self.read_data()
            return func(data)
        raise FCTError(f"applyto must be 'measurement' or 'data', not {applyto!r}")

    def transform(self, transform, direction="forward", channels=None, return_all=True,
                  auto_range=True, use_spln=True, get_transformer=False, ID=None,
                  apply_now=True, args=(), **kwargs):
        """A new measurement with ``channels`` (all by default) transformed.

        ``transform`` is 'hlog', 'tlog', 'glog', 'linear' or a function; keyword
        arguments go to it. With ``auto_range`` the range ``d`` of hlog and tlog
        is ``log10($PnR)`` of the channels (which must share one $PnR).
        ``use_spln`` is accepted and ignored: transforms are exact here.
        """
        func, name = _transform_function(transform, direction)
        data = self.data
        channels = list(data.columns) if channels is None else _to_list(channels)
        missing = [c for c in channels if c not in data.columns]
        if missing:
            raise FCTError(f"{self.datafile or self.ID}: no channel(s) {missing}; channels "
                           f"are: {', '.join(map(str, data.columns))}")
        if auto_range and name in ("hlog", "tlog") and "d" not in kwargs \
                and self.meta is not None:
            ranges = {float(self.meta["_channels_"]["$PnR"].iloc[list(self.channel_names)
                                                                 .index(c)]) for c in channels}
            if len(ranges) > 1:
                raise FCTError(f"{self.datafile}: channels {channels} have different ranges "
                               f"({sorted(ranges)}); transform them one at a time")
            kwargs["d"] = math.log10(ranges.pop())
        new = self.copy()
        out = data.copy() if return_all else data[channels].copy()
        for c in channels:
            out[c] = func(np.asarray(data[c], dtype=np.float64), *args, **kwargs)
        new._data = out
        if ID is not None:
            new.ID = ID
        if get_transformer:
            return new, (lambda x: func(x, *args, **kwargs))
        return new

    def gate(self, gate, apply_now=True):
        """A new measurement holding only the events that pass ``gate``."""
        new = self.copy(deep=False)
        new._data = gate(self.data)
        return new

    def subsample(self, key, order="random", auto_resize=False):
        data = self.data
        n = data.shape[0]
        if isinstance(key, float):
            if not 0.0 <= key <= 1.0:
                raise FCTError("a float subsample key must be between 0.0 and 1.0")
            key = int(n * key)
        if isinstance(key, tuple):
            key = slice(int(n * key[0]), int(n * key[1]))
        if isinstance(key, slice):
            rows = data.iloc[key]
        elif isinstance(key, int):
            key = min(key, n) if auto_resize else key
            if key > n:
                raise FCTError(f"cannot take {key} of {n} events; use auto_resize=True")
            if order == "random":
                rng = np.random.default_rng()
                rows = data.iloc[np.sort(rng.choice(n, size=key, replace=False))]
            elif order == "start":
                rows = data.iloc[:key]
            elif order == "end":
                rows = data.iloc[n - key:]
            else:
                raise FCTError("order must be 'random', 'start' or 'end'")
        else:
            raise FCTError("key must be an int, a float, a (start, stop) tuple or a slice")
        new = self.copy(deep=False)
        new._data = rows
        return new

    def plot(self, channel_names, kind="histogram", gates=None, gate_colors=None,
             gate_lw=1, ax=None, autolabel=True, colorbar=True, **kwargs):
        """1-D histogram of one channel, or 2-D histogram ('histogram') or
        scatter ('scatter') of two; ``gates`` are drawn on top."""
        import itertools

        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm

        channels = _to_list(channel_names)
        ax = ax or plt.gca()
        data = self.data
        if len(channels) == 1:
            kwargs.setdefault("bins", 200)
            kwargs.setdefault("histtype", "stepfilled")
            out = ax.hist(np.asarray(data[channels[0]]), **kwargs)
        elif len(channels) == 2:
            x, y = (np.asarray(data[c]) for c in channels)
            if kind == "scatter":
                kwargs.setdefault("edgecolor", "none")
                out = ax.scatter(x, y, **kwargs)
            elif kind == "histogram":
                kwargs.setdefault("bins", 200)
                kwargs.setdefault("cmin", 1)
                kwargs.setdefault("norm", LogNorm())
                out = ax.hist2d(x, y, **kwargs)
                if colorbar:
                    plt.colorbar(out[3], ax=ax)
            else:
                raise FCTError(f"kind must be 'histogram' or 'scatter', not {kind!r}")
        else:
            raise FCTError(f"plot one or two channels, not {len(channels)}")
        if autolabel:
            ax.set_xlabel(channels[0])
            if len(channels) == 2:
                ax.set_ylabel(channels[1])
        if gates is not None:
            colors = gate_colors or itertools.cycle(("b", "g", "r", "m", "c", "y"))
            widths = itertools.cycle(_to_list(gate_lw))
            for g, c, lw in zip(_to_list(gates), colors, widths):
                g.plot(ax=ax, ax_channels=channels, color=c, lw=lw)
        return out


# ----------------------------------------------------------------------------- plates
def get_tag_value(string, pre, post, tagtype=str):
    """The text between ``pre`` and the first of ``post`` (regular expressions)."""
    post = "|".join(_to_list(post))
    m = re.search(f"{pre}(.*?)(?={post})", string)
    return None if m is None else tagtype(m.group(1))


def _row_labels(n):
    import string
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26] for i in range(n)]


class FCPlate(Mapping):
    """Measurements laid out on a plate (8 x 12 by default), keyed by ID, each at
    a (row label, column label) position."""

    def __init__(self, ID, measurements, position_mapper="name", shape=(8, 12),
                 positions=None, row_labels=None, col_labels=None):
        self.ID = ID
        if isinstance(measurements, Mapping):
            self._wells = dict(measurements)
        else:
            self._wells = {m.ID: m for m in measurements}
        self.row_labels = list(row_labels) if row_labels is not None else _row_labels(shape[0])
        self.col_labels = list(col_labels) if col_labels is not None else \
            list(range(1, shape[1] + 1))
        self._positions: dict = {}
        self.set_positions(positions, position_mapper=position_mapper)

    # -- construction --------------------------------------------------------
    @classmethod
    def from_files(cls, ID, datafiles, parser="name", position_mapper=None,
                   readdata_kwargs=None, readmeta_kwargs=None, ID_kwargs=None, **kwargs):
        ids = {}
        for f in datafiles:
            key = cls._parse_id(str(f), parser, ID_kwargs or {}, readmeta_kwargs)
            if key is None:
                raise FCTError(f"{f}: no well ID found in the file name (parser {parser!r})")
            if key in ids:
                raise FCTError(f"{f} and {ids[key]} both give the well ID {key!r}")
            ids[key] = f
        wells = {k: FCMeasurement(ID=k, datafile=f, readdata_kwargs=readdata_kwargs,
                                  readmeta_kwargs=readmeta_kwargs) for k, f in ids.items()}
        if position_mapper is None:
            position_mapper = "name" if parser == "name" else "row_first_enumerator"
        return cls(ID, wells, position_mapper=position_mapper, **kwargs)

    @classmethod
    def from_dir(cls, ID, path, parser="name", position_mapper=None, pattern="*.fcs",
                 recursive=False, readdata_kwargs=None, readmeta_kwargs=None, ID_kwargs=None,
                 **kwargs):
        folder = Path(path)
        if not folder.is_dir():
            raise FCTError(f"{folder}: not a folder")
        files = sorted(folder.rglob(pattern) if recursive else folder.glob(pattern))
        return cls.from_files(ID, files, parser=parser, position_mapper=position_mapper,
                              readdata_kwargs=readdata_kwargs, readmeta_kwargs=readmeta_kwargs,
                              ID_kwargs=ID_kwargs, **kwargs)

    @staticmethod
    def _parse_id(path, parser, kwargs, readmeta_kwargs):
        if isinstance(parser, Mapping):
            return parser.get(path)
        if callable(parser):
            return parser(path, **kwargs)
        if parser == "name":
            kw = {"pre": "Well_", "post": ["_", r"\.", "$"], "tagtype": str, **kwargs}
            return get_tag_value(Path(path).name, **kw)
        if parser == "number":
            return int(path.split(".")[-2])
        if parser == "read":
            return FCMeasurement(ID="temporary", datafile=path).ID_from_data(**kwargs)
        raise FCTError(f"unknown parser {parser!r}; use 'name', 'number', 'read', a mapping "
                       "or a function")

    def _mapper(self, position_mapper):
        if callable(position_mapper):
            return position_mapper
        if isinstance(position_mapper, Mapping):
            return position_mapper.__getitem__
        if position_mapper == "name":
            def by_name(key):
                m = re.fullmatch(r"([A-Za-z]+)0*(\d+)", str(key))
                if m is None:
                    raise FCTError(f"well ID {key!r} is not a plate position like 'A3'")
                return m.group(1).upper(), int(m.group(2))
            return by_name
        if position_mapper in ("row_first_enumerator", "number", "col_first_enumerator"):
            order = "C" if position_mapper == "col_first_enumerator" else "F"

            def by_number(key):
                i, j = np.unravel_index(int(key) - 1, self.shape, order=order)
                return self.row_labels[i], self.col_labels[j]
            return by_number
        raise FCTError(f"unknown position_mapper {position_mapper!r}")

    def set_positions(self, positions=None, position_mapper="name", ids=None):
        if positions is None:
            mapper = self._mapper(position_mapper)
            positions = {k: mapper(k) for k in (self._wells if ids is None else _to_list(ids))}
        merged = {**self._positions, **positions}
        if len(set(merged.values())) != len(merged):
            raise FCTError(f"plate {self.ID!r}: two measurements share a position")
        for k, (row, col) in positions.items():
            if row not in self.row_labels or col not in self.col_labels:
                raise FCTError(f"plate {self.ID!r}: position {(row, col)} of {k!r} is not on "
                               f"a {len(self.row_labels)}x{len(self.col_labels)} plate")
            self._positions[k] = (row, col)
            self._wells[k].position = {self.ID: (row, col)}

    # -- mapping -----------------------------------------------------------------
    def __getitem__(self, key):
        return self._wells[key]

    def __iter__(self):
        return iter(self._wells)

    def __len__(self):
        return len(self._wells)

    def __repr__(self):
        return f"<FCPlate {self.ID!r}: {len(self)} wells>"

    @property
    def shape(self):
        return len(self.row_labels), len(self.col_labels)

    def get_positions(self, copy=True):
        return dict(self._positions) if copy else self._positions

    def _layout(self, results: dict, noneval=np.nan, dropna=False):
        import pandas as pd
        frame = pd.DataFrame(noneval, index=self.row_labels, columns=self.col_labels,
                             dtype=object)
        for k, v in results.items():
            row, col = self._positions[k]
            frame.loc[row, col] = v
        try:
            frame = frame.astype(float)
        except (TypeError, ValueError):
            pass
        if dropna:
            frame = frame.dropna(axis=0, how="all").dropna(axis=1, how="all")
        return frame

    @property
    def layout(self):
        return self._layout({k: m.ID for k, m in self._wells.items()}, noneval=np.nan)

    def _new(self, wells: dict, ID=None):
        new = _copy.copy(self)
        new.ID = self.ID if ID is None else ID
        new._wells = wells
        new._positions = {k: self._positions[k] for k in wells}
        return new

    # -- verbs -----------------------------------------------------------------
    def apply(self, func, ids=None, applyto="measurement", output_format="DataFrame",
              noneval=np.nan, setdata=False, dropna=False, ID=None):
        """``func`` on every well (or ``ids``): a DataFrame laid out like the plate,
        a dict, or a new plate ('collection') when ``func`` returns measurements."""
        keys = list(self._wells) if ids is None else _to_list(ids)
        results = {k: self._wells[k].apply(func, applyto=applyto, noneval=noneval,
                                           setdata=setdata) for k in keys}
        fmt = output_format.lower()
        if fmt == "dict":
            return results
        if fmt == "collection":
            return self._new(results, ID)
        if fmt == "dataframe":
            return self._layout(results, noneval, dropna)
        raise FCTError(f"output_format must be 'DataFrame', 'dict' or 'collection', not "
                       f"{output_format!r}")

    def transform(self, transform, direction="forward", share_transform=True,
                  channels=None, return_all=True, auto_range=True, use_spln=True,
                  get_transformer=False, ID=None, apply_now=True, args=(), **kwargs):
        """A new plate with every well transformed (see ``FCMeasurement.transform``)."""
        return self._new({k: m.transform(transform, direction=direction, channels=channels,
                                          return_all=return_all, auto_range=auto_range,
                                          args=args, **kwargs)
                          for k, m in self._wells.items()}, ID)

    def gate(self, gate, ID=None, apply_now=True):
        """A new plate with every well gated."""
        return self._new({k: m.gate(gate) for k, m in self._wells.items()}, ID)

    def counts(self, ids=None, setdata=False, output_format="DataFrame"):
        """Events per well, laid out like the plate."""
        return self.apply(lambda m: m.counts, ids=ids, output_format=output_format)

    def subsample(self, key, order="random", auto_resize=False, ID=None):
        return self._new({k: m.subsample(key, order, auto_resize)
                          for k, m in self._wells.items()}, ID)


FCOrderedCollection = FCPlate
