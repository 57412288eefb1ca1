"""Gate types: thin, immutable descriptions over the pure functions in ``masks``.

Each geometric gate has an ``id``, a ``parent`` population id (or None for
all events), its ``dimensions`` and its parameters, and answers
``contains(columns)`` for one array of values per dimension. Quadrant gates
define one population per quadrant; boolean gates combine other populations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import GatingError
from . import masks
from .dimensions import AnyDimension, Dimension, RatioDimension


def distinct_dimensions(dimensions) -> tuple:
    """The dimensions, each once, in order (by equality: a dimension's transform need not
    be hashable). A quadrant gate with a y cut made apart on each side of its x cut has
    two dividers on one dimension."""
    out: list = []
    for d in dimensions:
        if d not in out:
            out.append(d)
    return tuple(out)


def _check_dimensions(gate_id: str, dims, n: int | None = None) -> tuple:
    dims = tuple(dims)
    if not dims:
        raise GatingError(f"gate {gate_id!r}: needs at least one dimension")
    for d in dims:
        if not isinstance(d, (Dimension, RatioDimension)):
            raise GatingError(f"gate {gate_id!r}: {d!r} is not a Dimension")
    if n is not None and len(dims) != n:
        raise GatingError(f"gate {gate_id!r}: needs {n} dimensions, got {len(dims)}")
    return dims


def _bound(gate_id: str, value) -> float | None:
    if value is None:
        return None
    v = float(value)
    if np.isnan(v):
        raise GatingError(f"gate {gate_id!r}: a bound is NaN")
    return v


@dataclass(frozen=True, eq=False)
class RectangleGate:
    """n-D rectangle (1-D: a range): ``lo <= x < hi`` on every dimension;
    ``None`` leaves that end open."""

    id: str
    dimensions: Sequence[AnyDimension]
    bounds: Sequence[tuple[float | None, float | None]]
    parent: str | None = None

    def __post_init__(self):
        dims = _check_dimensions(self.id, self.dimensions)
        bounds = tuple((_bound(self.id, lo), _bound(self.id, hi)) for lo, hi in self.bounds)
        if len(bounds) != len(dims):
            raise GatingError(f"gate {self.id!r}: {len(dims)} dimensions but "
                              f"{len(bounds)} (min, max) bounds")
        for d, (lo, hi) in zip(dims, bounds):
            if lo is None and hi is None:
                raise GatingError(f"gate {self.id!r}: dimension {dimension_label(d)} has "
                                  "neither min nor max")
            if lo is not None and hi is not None and not lo < hi:
                raise GatingError(f"gate {self.id!r}: dimension {dimension_label(d)} has "
                                  f"min {lo:g} not below max {hi:g}; swap them")
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "bounds", bounds)

    def contains(self, columns) -> np.ndarray:
        return masks.rectangle_mask(columns, self.bounds)


@dataclass(frozen=True, eq=False)
class PolygonGate:
    """2-D polygon, even-odd rule (self-intersecting polygons allowed)."""

    id: str
    dimensions: Sequence[AnyDimension]
    vertices: np.ndarray
    parent: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "dimensions", _check_dimensions(self.id, self.dimensions, 2))
        v = np.asarray(self.vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not np.isfinite(v).all():
            raise GatingError(f"gate {self.id!r}: a polygon needs at least 3 finite "
                              f"(x, y) vertices, got shape {v.shape}")
        object.__setattr__(self, "vertices", v)

    def contains(self, columns) -> np.ndarray:
        x, y = columns
        return masks.polygon_mask(x, y, self.vertices)


@dataclass(frozen=True, eq=False)
class EllipsoidGate:
    """n-D ellipsoid: Mahalanobis distance squared to ``mean`` under
    ``covariance`` at most ``distance_square``."""

    id: str
    dimensions: Sequence[AnyDimension]
    mean: np.ndarray
    covariance: np.ndarray
    distance_square: float
    parent: str | None = None

    def __post_init__(self):
        dims = _check_dimensions(self.id, self.dimensions)
        n = len(dims)
        mean = np.asarray(self.mean, dtype=np.float64)
        cov = np.asarray(self.covariance, dtype=np.float64)
        if mean.shape != (n,) or cov.shape != (n, n):
            raise GatingError(f"gate {self.id!r}: {n} dimensions need a mean of {n} "
                              f"coordinates and a {n}x{n} covariance matrix, got "
                              f"{mean.shape} and {cov.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(cov).all()):
            raise GatingError(f"gate {self.id!r}: mean and covariance must be finite")
        try:
            np.linalg.inv(cov)
        except np.linalg.LinAlgError:
            raise GatingError(f"gate {self.id!r}: the covariance matrix is singular") from None
        dist = float(self.distance_square)
        if not dist > 0:
            raise GatingError(f"gate {self.id!r}: distance square must be positive")
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", cov)
        object.__setattr__(self, "distance_square", dist)

    def contains(self, columns) -> np.ndarray:
        return masks.ellipsoid_mask(columns, self.mean, self.covariance,
                                    self.distance_square)


@dataclass(frozen=True, eq=False)
class Divider:
    """One axis of a quadrant gate, cut at one or more ``values``."""

    id: str
    dimension: AnyDimension
    values: Sequence[float]

    def __post_init__(self):
        vals = tuple(float(v) for v in self.values)
        if not vals or not all(np.isfinite(vals)):
            raise GatingError(f"divider {self.id!r}: needs at least one finite value")
        object.__setattr__(self, "values", tuple(sorted(vals)))

    def interval(self, location: float) -> tuple[float | None, float | None]:
        """The interval between cuts that holds ``location``: ``lo <= x < hi``, None
        for an open end (as ``masks.divider_bins`` numbers them)."""
        k = int(masks.divider_bins(np.array([location]), self.values)[0])
        cuts = (None, *self.values, None)
        return cuts[k], cuts[k + 1]


@dataclass(frozen=True)
class Quadrant:
    """One population of a quadrant gate: for each divider it names, the
    interval containing ``location``. Dividers it does not name are free."""

    id: str
    positions: tuple[tuple[str, float], ...]  # (divider id, location)

    def __post_init__(self):
        pos = self.positions.items() if isinstance(self.positions, dict) else self.positions
        object.__setattr__(self, "positions", tuple((str(d), float(v)) for d, v in pos))


@dataclass(frozen=True, eq=False)
class QuadrantGate:
    """Dividers on n dimensions, and the quadrants (populations) between them."""

    id: str
    dividers: Sequence[Divider]
    quadrants: Sequence[Quadrant]
    parent: str | None = None

    def __post_init__(self):
        dividers = tuple(self.dividers)
        quadrants = tuple(self.quadrants)
        if not dividers or not quadrants:
            raise GatingError(f"quadrant gate {self.id!r}: needs dividers and quadrants")
        ids = [d.id for d in dividers]
        if len(set(ids)) != len(ids):
            raise GatingError(f"quadrant gate {self.id!r}: divider ids repeat: {ids}")
        for q in quadrants:
            for div, _ in q.positions:
                if div not in ids:
                    raise GatingError(f"quadrant {q.id!r} of gate {self.id!r}: unknown "
                                      f"divider {div!r}; dividers are {', '.join(ids)}")
        object.__setattr__(self, "dividers", dividers)
        object.__setattr__(self, "quadrants", quadrants)

    @property
    def dimensions(self) -> tuple:
        return tuple(d.dimension for d in self.dividers)

    def as_rectangles(self) -> list[RectangleGate]:
        """Each quadrant as a rectangle gate of the same id and parent: the interval of
        every divider it names, on that divider's dimension (the same events wherever
        the values are finite)."""
        dividers = {d.id: d for d in self.dividers}
        out = []
        for q in self.quadrants:
            dims, bounds = [], []
            for div_id, location in q.positions:
                dims.append(dividers[div_id].dimension)
                bounds.append(dividers[div_id].interval(location))
            out.append(RectangleGate(q.id, dims, bounds, self.parent))
        return out

    def quadrant_masks(self, columns) -> dict[str, np.ndarray]:
        """Membership of every quadrant, given one column per divider."""
        bins = {d.id: masks.divider_bins(x, d.values)
                for d, x in zip(self.dividers, columns, strict=True)}
        n = len(columns[0])
        out = {}
        for q in self.quadrants:
            m = np.ones(n, dtype=bool)
            for div_id, location in q.positions:
                div = next(d for d in self.dividers if d.id == div_id)
                m &= bins[div_id] == masks.divider_bins(np.array([location]), div.values)[0]
            out[q.id] = m
        return out


@dataclass(frozen=True)
class GateReference:
    """An operand of a boolean gate: a population, or its complement."""

    ref: str
    complement: bool = False


@dataclass(frozen=True, eq=False)
class BooleanGate:
    """``and`` / ``or`` of populations, or ``not`` of one; operands may be
    complemented (Gating-ML ``use-as-complement``)."""

    id: str
    operator: str
    operands: Sequence[GateReference]
    parent: str | None = None

    def __post_init__(self):
        op = str(self.operator).lower()
        ops = tuple(GateReference(o) if isinstance(o, str) else o for o in self.operands)
        if op not in ("and", "or", "not"):
            raise GatingError(f"boolean gate {self.id!r}: operator must be and, or or not, "
                              f"not {self.operator!r}")
        if op == "not" and len(ops) != 1:
            raise GatingError(f"boolean gate {self.id!r}: 'not' takes exactly one operand, "
                              f"got {len(ops)}")
        if op != "not" and len(ops) < 2:
            raise GatingError(f"boolean gate {self.id!r}: '{op}' needs at least two "
                              f"operands, got {len(ops)}")
        object.__setattr__(self, "operator", op)
        object.__setattr__(self, "operands", ops)

    @property
    def dimensions(self) -> tuple:
        return ()

    def combine(self, operand_masks: Sequence[np.ndarray]) -> np.ndarray:
        """Combine the full masks of the operands (already complemented)."""
        if self.operator == "not":
            return ~operand_masks[0]
        func = np.logical_and if self.operator == "and" else np.logical_or
        out = operand_masks[0].copy()
        for m in operand_masks[1:]:
            func(out, m, out=out)
        return out


Gate = RectangleGate | PolygonGate | EllipsoidGate | QuadrantGate | BooleanGate


def populations_of(gate) -> tuple[str, ...]:
    """The population ids a gate defines (its quadrants for a quadrant gate)."""
    if isinstance(gate, QuadrantGate):
        return tuple(q.id for q in gate.quadrants)
    return (gate.id,)


def not_a_population(name: str, quadrants) -> str:
    """Why a quadrant gate cannot be named where a population is wanted."""
    return (f"{name!r} is a quadrant gate, not a population; name one of its quadrants: "
            f"{', '.join(quadrants)}")


def dimension_label(dim) -> str:
    """A dimension's name for messages: its channel, or the ratio it is."""
    return dim.name if isinstance(dim, Dimension) else f"ratio {dim.ratio!r}"
