"""Display transforms with Gating-ML 2.0 definitions, and their inverses.

Pure functions on numpy arrays of any shape: ``flin``, ``flog``, ``fasinh``,
``logicle``, ``hyperlog``, ``fratio`` and ``arcsinh`` (asinh with a cofactor),
each (except ``fratio``) with an ``*_inverse``. Inputs may be float32 or
float64; the maths is float64 and results are float64.

Logicle and hyperlog are defined implicitly: ``logicle(x) = y`` such that
``S(y) = x`` for the biexponential ``S`` of Moore & Parks (Cytometry A 2012,
81A:273) and ``hyperlog(x) = y`` such that ``EH(y) = x`` (Gating-ML 2.0,
section on hyperlog). Both functions are odd about ``x1 = (W + A)/(M + A)``:
``S(x1 + t) = -S(x1 - t)``. Writing ``t = y - x1`` they become

    logicle:  F(t) = P*expm1(b t) - Q*expm1(-d t)      (P = a e^(b x1), Q = c e^(-d x1))
    hyperlog: F(t) = P*expm1(b t) + c t

with ``|x| = F(|t|)``: both terms are non-negative for ``t >= 0``, so ``F`` is
evaluated without cancellation near zero, and ``F`` is convex and increasing
there, so Newton's method started above the root converges monotonically.

Evaluating the inverse of ``F`` per event by root finding costs a few
exponentials per value. Instead, ``F^-1`` is tabulated once per parameter set
on cells that are uniform in the bits of the float64 value (128 or more
cells per octave of ``|x|``) and interpolated by a cubic Hermite polynomial
built from exact values and slopes at the cell ends. The cell of a value is its exponent
and top mantissa bits, so finding it is a shift, not a search; the error is
about 1e-11 on the 0-1 scale for the parameter ranges Gating-ML allows (the
tests check it against an independent high-precision reference). Values
outside the table (non-finite, or beyond 2**40 times the top of scale) are
solved exactly.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from .errors import TransformError

__all__ = [
    "TransformError",
    "flin", "flin_inverse", "flog", "flog_inverse", "fasinh", "fasinh_inverse",
    "logicle", "logicle_inverse", "logicle_width", "hyperlog", "hyperlog_inverse", "fratio",
    "arcsinh", "arcsinh_inverse",
    "Transform", "Linear", "Log", "Asinh", "Logicle", "Hyperlog", "Arcsinh", "Ratio",
    "GATINGML_TRANSFORMS",
]

LN10 = math.log(10.0)


# --------------------------------------------------------------------------
# parameter checks


def _finite(name: str, value, transform: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TransformError(f"{transform}: parameter {name}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise TransformError(f"{transform}: parameter {name}={value!r} must be finite")
    return v


def _check_flin(T, A):
    T, A = _finite("T", T, "flin"), _finite("A", A, "flin")
    if T <= 0:
        raise TransformError(f"flin: T={T:g} must be > 0 (the top of scale)")
    if not 0 <= A <= T:
        raise TransformError(f"flin: A={A:g} must satisfy 0 <= A <= T={T:g}")
    return T, A


def _check_flog(T, M):
    T, M = _finite("T", T, "flog"), _finite("M", M, "flog")
    if T <= 0:
        raise TransformError(f"flog: T={T:g} must be > 0 (the top of scale)")
    if M <= 0:
        raise TransformError(f"flog: M={M:g} must be > 0 (the number of decades)")
    return T, M


def _check_fasinh(T, M, A):
    T, M, A = (_finite(n, v, "fasinh") for n, v in (("T", T), ("M", M), ("A", A)))
    if T <= 0:
        raise TransformError(f"fasinh: T={T:g} must be > 0 (the top of scale)")
    if M <= 0:
        raise TransformError(f"fasinh: M={M:g} must be > 0 (the number of decades)")
    if not 0 <= A <= M:
        raise TransformError(f"fasinh: A={A:g} must satisfy 0 <= A <= M={M:g}")
    return T, M, A


def _check_biex(kind, T, W, M, A):
    T, W, M, A = (_finite(n, v, kind) for n, v in (("T", T), ("W", W), ("M", M), ("A", A)))
    if T <= 0:
        raise TransformError(f"{kind}: T={T:g} must be > 0 (the top of scale)")
    if M <= 0:
        raise TransformError(f"{kind}: M={M:g} must be > 0 (the number of decades)")
    if kind == "hyperlog" and W <= 0:
        raise TransformError(f"hyperlog: W={W:g} must be > 0 (decades in the linear region)")
    if W < 0:
        raise TransformError(f"{kind}: W={W:g} must be >= 0 (decades in the linear region)")
    if W > M / 2:
        raise TransformError(f"{kind}: W={W:g} must be <= M/2={M / 2:g}; lower W or raise M")
    if not -W <= A <= M - 2 * W:
        raise TransformError(
            f"{kind}: A={A:g} must satisfy -W <= A <= M - 2W, here {-W:g} <= A <= {M - 2 * W:g}")
    return T, W, M, A


def _check_cofactor(cofactor):
    c = _finite("cofactor", cofactor, "arcsinh")
    if c <= 0:
        raise TransformError(f"arcsinh: cofactor={c:g} must be > 0")
    return c


def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------
# closed-form transforms


def flin(x, T, A):
    """Gating-ML 2.0 linear: ``(x + A) / (T + A)``; maps [-A, T] onto [0, 1]."""
    T, A = _check_flin(T, A)
    return (_f64(x) + A) / (T + A)


def flin_inverse(y, T, A):
    T, A = _check_flin(T, A)
    return _f64(y) * (T + A) - A


def flog(x, T, M):
    """Gating-ML 2.0 log: ``log10(x / T) / M + 1``; NaN where x <= 0 (undefined there)."""
    T, M = _check_flog(T, M)
    x = _f64(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log10(x / T) / M + 1.0
    return np.where(x > 0, y, np.nan)


def flog_inverse(y, T, M):
    T, M = _check_flog(T, M)
    return T * np.power(10.0, (_f64(y) - 1.0) * M)


def fasinh(x, T, M, A):
    """Gating-ML 2.0 asinh: ``(asinh(x sinh(M ln10) / T) + A ln10) / ((M + A) ln10)``."""
    T, M, A = _check_fasinh(T, M, A)
    return (np.arcsinh(_f64(x) * (math.sinh(M * LN10) / T)) + A * LN10) / ((M + A) * LN10)


def fasinh_inverse(y, T, M, A):
    T, M, A = _check_fasinh(T, M, A)
    return np.sinh(_f64(y) * ((M + A) * LN10) - A * LN10) * (T / math.sinh(M * LN10))


def fratio(x, y, A, B, C):
    """Gating-ML 2.0 ratio of two dimensions: ``A (x - B) / (y - C)``; inf/NaN where y == C."""
    A, B, C = (_finite(n, v, "fratio") for n, v in (("A", A), ("B", B), ("C", C)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return A * (_f64(x) - B) / (_f64(y) - C)


def arcsinh(x, cofactor):
    """``asinh(x / cofactor)``, the usual cytometry arcsinh (cofactor 150 or 5 for CyTOF)."""
    c = _check_cofactor(cofactor)
    return np.arcsinh(_f64(x) / c)


def arcsinh_inverse(y, cofactor):
    c = _check_cofactor(cofactor)
    return np.sinh(_f64(y)) * c


# --------------------------------------------------------------------------
# logicle and hyperlog: constants


@dataclass(frozen=True)
class _Biex:
    """Constants of S (logicle) or EH (hyperlog) in the odd form about x1."""

    kind: str
    x1: float
    b: float
    d: float        # logicle only (0 for hyperlog)
    P: float        # a e^(b x1)
    Q: float        # logicle: c e^(-d x1); hyperlog: c (slope of the linear term)

    def F(self, t):
        """|x| for t = |y - x1| >= 0 (array)."""
        if self.kind == "logicle":
            return self.P * np.expm1(self.b * t) - self.Q * np.expm1(-self.d * t)
        return self.P * np.expm1(self.b * t) + self.Q * t

    def dF(self, t):
        if self.kind == "logicle":
            return self.P * self.b * np.exp(self.b * t) + self.Q * self.d * np.exp(-self.d * t)
        return self.P * self.b * np.exp(self.b * t) + self.Q

    @property
    def slope0(self) -> float:
        """F'(0): dx/dy at x = 0."""
        if self.kind == "logicle":
            return self.P * self.b + self.Q * self.d
        return self.P * self.b + self.Q


def _logicle_d(b: float, w: float) -> float:
    """The d of Moore & Parks: root of 2 (ln d - ln b) + w (b + d) = 0 (d = b when w = 0)."""
    if w == 0:
        return b
    # h(u) = 2 (u - ln b) + w (b + e^u) is convex and increasing in u = ln d and
    # positive at u = ln b, so Newton from there descends monotonically to the root.
    u = math.log(b)
    for _ in range(200):
        h = 2.0 * (u - math.log(b)) + w * (b + math.exp(u))
        step = h / (2.0 + w * math.exp(u))
        u_new = u - step
        if not step > 4e-16 * max(1.0, abs(u)):
            u = u_new if step > 0 else u
            break
        u = u_new
    return math.exp(u)


@lru_cache(maxsize=64)
def _biex(kind: str, T: float, W: float, M: float, A: float) -> _Biex:
    T, W, M, A = _check_biex(kind, T, W, M, A)
    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * LN10
    if kind == "logicle":
        d = _logicle_d(b, w)
        c_a = math.exp(x0 * (b + d))
        mf_a = math.exp(b * x1) - c_a * math.exp(-d * x1)
        a = T / (math.exp(b) - mf_a - c_a * math.exp(-d))
        c = c_a * a
        return _Biex(kind, x1, b, d, a * math.exp(b * x1), c * math.exp(-d * x1))
    e0 = math.exp(b * x0)
    c_a = e0 / w
    f_a = math.exp(b * x1) + c_a * x1
    a = T / (math.exp(b) + c_a - f_a)
    return _Biex(kind, x1, b, 0.0, a * math.exp(b * x1), c_a * a)


# --------------------------------------------------------------------------
# logicle and hyperlog: exact root finding (table nodes and out-of-table values)


def _solve_t(p: _Biex, ax: np.ndarray) -> np.ndarray:
    """t >= 0 with F(t) = ax for finite ax >= 0, to float64 convergence.

    Starts from an upper bound of the root (F is convex with F(0) = 0, so
    F(t) >= F'(0) t, and F(t) >= P expm1(b t)); Newton then decreases
    monotonically onto the root and stops when rounding ends the descent.
    """
    ax = np.asarray(ax, dtype=np.float64)
    t = np.minimum(ax / p.slope0, np.log1p(ax / p.P) / p.b)
    active = np.nonzero((ax > 0) & np.isfinite(ax))[0]     # t(inf) = inf already
    for _ in range(200):
        if active.size == 0:
            break
        ta = t[active]
        # near the largest double (a bound written for "no end") F overflows; the start,
        # log1p(ax / P) / b, is then the root to rounding, and the NaN step keeps it
        with np.errstate(over="ignore", invalid="ignore"):
            step = (p.F(ta) - ax[active]) / p.dF(ta)
        moving = step > 0
        after = ta - step
        t[active[moving]] = after[moving]
        # converged when the step is negligible, rounding turned it around, or the
        # step no longer changes t (a node near x = 450 at T = 262,144 stalled there
        # for the 200 rounds, a tenth of the table's cost)
        active = active[moving & (step > 1e-16 * ta) & (after != ta)]
    return t


def _exact(p: _Biex, x: np.ndarray) -> np.ndarray:
    """The transform of x (float64 array) by exact root finding."""
    x = np.asarray(x, dtype=np.float64)
    y = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    xf = x[finite]
    y[finite] = p.x1 + np.copysign(_solve_t(p, np.abs(xf)), xf)
    inf = np.isinf(x)
    y[inf] = np.copysign(np.inf, x[inf])
    return y


def _biex_inverse(p: _Biex, y) -> np.ndarray:
    t = _f64(y) - p.x1
    with np.errstate(over="ignore", invalid="ignore"):
        return np.copysign(p.F(np.abs(t)), t)


# --------------------------------------------------------------------------
# logicle and hyperlog: the table

_MANT_BITS = 7                  # at least 2**7 cells per octave of |x|
# The interpolation error on the 0-1 scale is about _ERR_SCALE / b / 16**bits, where
# b = (M + A) ln 10: few decades (small b) stretch the scale and need finer cells.
_ERR_SCALE = 0.02
_ERR_TARGET = 1e-11
_OCTAVES_BELOW = 24             # table starts 2**24 below the linear-region scale
_OCTAVES_ABOVE_T = 40           # and ends 2**40 above the top of scale


@dataclass(frozen=True)
class _Table:
    """Piecewise cubic for |y - x1| as a function of u = |x| + off.

    The offset lifts zero and tiny values into the first octave, so every finite
    value below the top of the table has a cell and no value needs a branch.
    """

    off: float                  # 2**e_lo, the start of the table in u
    shift: int                  # 52 - mantissa bits per cell index
    mask: np.int64              # clears the bits below the cell
    base: int                   # bits(off) >> shift: the index of the first cell
    coef: np.ndarray            # (cells + 1, 4): c3, c2, c1, c0 in d = u - (left end of cell);
    x1: float                   # the last row is NaN, for values beyond the table


@lru_cache(maxsize=64)
def _table(kind: str, T: float, W: float, M: float, A: float) -> _Table:
    p = _biex(kind, T, W, M, A)
    scale = p.slope0 / p.b                      # |x| at which the curve bends
    e_lo = math.floor(math.log2(scale)) - _OCTAVES_BELOW
    e_hi = max(math.ceil(math.log2(T)), e_lo + _OCTAVES_BELOW + 1) + _OCTAVES_ABOVE_T
    mant_bits = max(_MANT_BITS, math.ceil(math.log2(_ERR_SCALE / (p.b * _ERR_TARGET)) / 4))
    mant_bits = min(mant_bits, 12)
    shift = 52 - mant_bits
    per = 1 << mant_bits
    exps = np.arange(e_lo, e_hi, dtype=np.float64)
    frac = 1.0 + np.arange(per, dtype=np.float64) / per
    nodes = np.append((np.exp2(exps)[:, None] * frac[None, :]).ravel(), 2.0 ** e_hi)
    off = 2.0 ** e_lo
    g = _solve_t(p, nodes - off)                # cell j spans nodes[j] .. nodes[j + 1] in u
    dg = 1.0 / p.dF(g)                          # d|y|/d|x| = 1 / F'(t)
    h = np.diff(nodes)
    slope = np.diff(g) / h
    coef = np.empty((h.size + 1, 4))
    coef[:-1, 3] = g[:-1]
    coef[:-1, 2] = dg[:-1]
    coef[:-1, 1] = (3 * slope - 2 * dg[:-1] - dg[1:]) / h
    coef[:-1, 0] = (dg[:-1] + dg[1:] - 2 * slope) / (h * h)
    coef[-1] = np.nan
    return _Table(off=off, shift=shift, mask=np.int64(~((1 << shift) - 1)),
                  base=int(np.array(off).view(np.int64)) >> shift,
                  coef=coef, x1=p.x1)


_CHUNK = 1 << 14                # values per block: the temporaries stay in the L2 cache
_PARALLEL_MIN = 1 << 18         # below this, threads cost more than they save
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> int:
    """Threads for large arrays: IMMUNOMON_THREADS if set (batch workers set 1),
    else the CPUs this process may run on, at most 8."""
    env = os.environ.get("IMMUNOMON_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads(), thread_name_prefix="immunomon-transform")
        return _pool


def _table_block(tab: _Table, x: np.ndarray, out: np.ndarray) -> bool:
    """out[:] = transform of x (1-D float32 or float64 blocks of equal length).

    Returns whether some values fell outside the table (their result is NaN).
    """
    x = x.astype(np.float64, copy=False)
    u = np.abs(x)
    u += tab.off
    bits = u.view(np.int64)
    idx = bits >> tab.shift                     # exponent and top mantissa bits: the cell
    idx -= tab.base
    left = bits & tab.mask                      # u with the bits below the cell cleared
    d = left.view(np.float64)
    np.subtract(u, d, out=d)
    # mode="clip": values beyond the table (and NaN) land in the NaN row
    c = np.take(tab.coef, idx, axis=0, mode="clip")
    y = c[:, 0] * d
    y += c[:, 1]
    y *= d
    y += c[:, 2]
    y *= d
    y += c[:, 3]
    np.copysign(y, x, out=y)
    np.add(y, tab.x1, out=out)
    return bool(np.isnan(y).any())


def _tabulated(kind: str, x, T, W, M, A) -> np.ndarray:
    T, W, M, A = _check_biex(kind, T, W, M, A)
    tab = _table(kind, T, W, M, A)
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float64, copy=False)
    shape = x.shape
    flat = np.ascontiguousarray(x).reshape(-1)   # float32 blocks are widened one at a time
    out = np.empty(flat.shape, dtype=np.float64)
    n = flat.size

    def run(lo, hi):
        missed = []
        with np.errstate(invalid="ignore"):     # inf - inf for infinite input: re-solved below
            for start in range(lo, hi, _CHUNK):
                stop = min(start + _CHUNK, hi)
                if _table_block(tab, flat[start:stop], out[start:stop]):
                    missed.append((start, stop))
        return missed

    workers = _threads() if n >= _PARALLEL_MIN else 1
    if workers == 1:
        missed = run(0, n)
    else:
        # numpy releases the GIL inside each operation: one contiguous share per thread
        share = -(-n // (workers * _CHUNK)) * _CHUNK
        futures = [_executor().submit(run, lo, min(lo + share, n)) for lo in range(0, n, share)]
        missed = [block for f in futures for block in f.result()]
    for start, stop in missed:                  # NaN, infinite or beyond 2**40 T: solve exactly
        part = out[start:stop]
        bad = np.isnan(part)
        part[bad] = _exact(_biex(kind, T, W, M, A), flat[start:stop][bad])
    return out.reshape(shape)


def logicle_width(values, T: float = 262144.0, M: float = 4.5, A: float = 0.0, *,
                  quantile: float = 0.05, step: float = 0.05, min_negative: int = 100
                  ) -> float | None:
    """The logicle width W for these (compensated) values, by Parks et al.'s rule
    (Cytometry A 2006; flowCore's ``estimateLogicle``): W = (M - log10(T / |r|)) / 2,
    ``r`` the ``quantile`` of the negative values. The near-linear region then spans
    the spread compensation gives unstained events, which a narrower one splits into
    two humps either side of zero (a valley inside one population). Rounded up to
    ``step`` (files of one batch share a handful of widths), within the widths a
    logicle allows: [max(0, -A), (M - A) / 2]. None when fewer than ``min_negative``
    values are negative: nothing to measure."""
    x = np.asarray(values, dtype=np.float64)
    negative = x[x < 0]
    if negative.size < min_negative:
        return None
    r = float(np.quantile(negative, quantile))
    width = (M - math.log10(T / abs(r))) / 2
    width = round(math.ceil(round(width / step, 6)) * step, 6)
    return float(min(max(width, 0.0, -A), (M - A) / 2))


def logicle(x, T, W, M, A):
    """Gating-ML 2.0 logicle: the y with S(y; T, W, M, A) = x (Moore & Parks 2012).

    T top of scale, W decades of the near-linear region (0 <= W <= M/2), M decades
    at the top, A extra negative decades (-W <= A <= M - 2W). T maps to 1 and
    0 to (W + A)/(M + A); values beyond T and below zero are defined too.
    """
    return _tabulated("logicle", x, T, W, M, A)


def logicle_inverse(y, T, W, M, A):
    """S(y; T, W, M, A), the data value at scale position y."""
    return _biex_inverse(_biex("logicle", *_check_biex("logicle", T, W, M, A)), y)


def hyperlog(x, T, W, M, A):
    """Gating-ML 2.0 hyperlog: the y with EH(y; T, W, M, A) = x (0 < W <= M/2)."""
    return _tabulated("hyperlog", x, T, W, M, A)


def hyperlog_inverse(y, T, W, M, A):
    """EH(y; T, W, M, A), the data value at scale position y."""
    return _biex_inverse(_biex("hyperlog", *_check_biex("hyperlog", T, W, M, A)), y)


# --------------------------------------------------------------------------
# thin objects for gating: validated parameters, apply/inverse, Gating-ML name


class Transform:
    """Base of the transform objects: ``apply``, ``inverse`` and ``params``."""

    gatingml_name: ClassVar[str | None] = None
    _fields: ClassVar[tuple[str, ...]] = ()

    @property
    def params(self) -> dict[str, float]:
        """Parameters by their Gating-ML attribute names, in attribute order."""
        return {f: getattr(self, f) for f in self._fields}

    def signal_scale(self) -> tuple[float, float] | None:
        """Where zero signal and the top of scale ``T`` fall after the transform,
        for the log-like display scales that map ``T`` to 1; None for the others
        (linear, or arcsinh with a cofactor and no top)."""
        return None


def _freeze(obj, values):
    for name, v in zip(obj._fields, values):
        object.__setattr__(obj, name, v)


@dataclass(frozen=True)
class Linear(Transform):
    T: float
    A: float = 0.0
    gatingml_name: ClassVar[str] = "flin"
    _fields: ClassVar[tuple[str, ...]] = ("T", "A")

    def __post_init__(self):
        _freeze(self, _check_flin(self.T, self.A))

    def apply(self, x):
        return flin(x, self.T, self.A)

    def inverse(self, y):
        return flin_inverse(y, self.T, self.A)


@dataclass(frozen=True)
class Log(Transform):
    T: float
    M: float
    gatingml_name: ClassVar[str] = "flog"
    _fields: ClassVar[tuple[str, ...]] = ("T", "M")

    def __post_init__(self):
        _freeze(self, _check_flog(self.T, self.M))

    def apply(self, x):
        return flog(x, self.T, self.M)

    def signal_scale(self):
        return 0.0, 1.0              # zero signal is off scale: the bottom of the decades

    def inverse(self, y):
        return flog_inverse(y, self.T, self.M)


@dataclass(frozen=True)
class Asinh(Transform):
    T: float
    M: float
    A: float = 0.0
    gatingml_name: ClassVar[str] = "fasinh"
    _fields: ClassVar[tuple[str, ...]] = ("T", "M", "A")

    def __post_init__(self):
        _freeze(self, _check_fasinh(self.T, self.M, self.A))

    def apply(self, x):
        return fasinh(x, self.T, self.M, self.A)

    def signal_scale(self):
        return float(self.apply(np.zeros(1))[0]), 1.0

    def inverse(self, y):
        return fasinh_inverse(y, self.T, self.M, self.A)


@dataclass(frozen=True)
class Logicle(Transform):
    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    gatingml_name: ClassVar[str] = "logicle"
    _fields: ClassVar[tuple[str, ...]] = ("T", "W", "M", "A")

    def __post_init__(self):
        _freeze(self, _check_biex("logicle", self.T, self.W, self.M, self.A))

    def apply(self, x):
        return logicle(x, self.T, self.W, self.M, self.A)

    def signal_scale(self):
        return float(self.apply(np.zeros(1))[0]), 1.0

    def inverse(self, y):
        return logicle_inverse(y, self.T, self.W, self.M, self.A)


@dataclass(frozen=True)
class Hyperlog(Transform):
    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    gatingml_name: ClassVar[str] = "hyperlog"
    _fields: ClassVar[tuple[str, ...]] = ("T", "W", "M", "A")

    def __post_init__(self):
        _freeze(self, _check_biex("hyperlog", self.T, self.W, self.M, self.A))

    def apply(self, x):
        return hyperlog(x, self.T, self.W, self.M, self.A)

    def signal_scale(self):
        return float(self.apply(np.zeros(1))[0]), 1.0

    def inverse(self, y):
        return hyperlog_inverse(y, self.T, self.W, self.M, self.A)


@dataclass(frozen=True)
class Arcsinh(Transform):
    """``asinh(x / cofactor)``. Not a Gating-ML transform by name (``gatingml_name`` is
    None), but the same function as one: ``as_fasinh``."""

    cofactor: float = 150.0
    gatingml_name: ClassVar[None] = None
    _fields: ClassVar[tuple[str, ...]] = ("cofactor",)

    def __post_init__(self):
        _freeze(self, (_check_cofactor(self.cofactor),))

    def as_fasinh(self) -> Asinh:
        """Gating-ML's ``fasinh`` that is this transform: with A = 0 it is
        ``asinh(x sinh(M ln10) / T) / (M ln10)``, which M = 1 / ln10 and
        T = cofactor sinh(1) make ``asinh(x / cofactor)`` (to 1e-15)."""
        return Asinh(T=self.cofactor * math.sinh(1.0), M=1.0 / LN10, A=0.0)

    def apply(self, x):
        return arcsinh(x, self.cofactor)

    def inverse(self, y):
        return arcsinh_inverse(y, self.cofactor)


@dataclass(frozen=True)
class Ratio(Transform):
    """Gating-ML ``fratio`` of two dimensions: ``A (x - B) / (y - C)``."""

    A: float = 1.0
    B: float = 0.0
    C: float = 0.0
    gatingml_name: ClassVar[str] = "fratio"
    _fields: ClassVar[tuple[str, ...]] = ("A", "B", "C")

    def __post_init__(self):
        _freeze(self, tuple(_finite(n, getattr(self, n), "fratio") for n in self._fields))

    def apply(self, x, y):
        return fratio(x, y, self.A, self.B, self.C)


#: Gating-ML 2.0 transformation element name -> transform class (``Ratio`` takes two dimensions).
GATINGML_TRANSFORMS: dict[str, type[Transform]] = {
    "flin": Linear, "flog": Log, "fasinh": Asinh, "logicle": Logicle, "hyperlog": Hyperlog,
    "fratio": Ratio,
}
