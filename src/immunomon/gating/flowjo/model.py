"""A FlowJo workspace in memory, and its translation into immunomon gates.

Gates are kept as FlowJo stores them (``WspRectangle``, ``WspPolygon``,
``WspEllipse``, ``WspBoolean``: coordinates in data units, ellipses in the
256-bin display space) so that a workspace is written back unchanged; each
sample turns them into a ``GatingStrategy`` with its own compensation and
transforms (``WorkspaceSample.strategy``).

Population ids are FlowJo gate paths, ``"Lymphocytes/CD3+/CD4+"``: a gate
reused under several parents is one population per parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...errors import FlowJoError, ImmunomonError
from ..dimensions import UNCOMPENSATED, Dimension, SpectrumMatrix
from ..gates import BooleanGate, EllipsoidGate, GateReference, PolygonGate, RectangleGate
from ..strategy import GatingStrategy
from .scales import DISPLAY_BINS, OnScale, display_scale, on_axis, skirted

SEP = "/"


# ----------------------------------------------------------------------------- gates
@dataclass(frozen=True, eq=False)
class WspRectangle:
    """Rectangle (one dimension: a range); ``None`` leaves that end open. Data units."""

    dimensions: tuple[str, ...]
    bounds: tuple[tuple[float | None, float | None], ...]
    inside: bool = True          # FlowJo eventsInside="0": the population is outside


@dataclass(frozen=True, eq=False)
class WspPolygon:
    """Polygon with vertices in data units, evaluated on the transformed axes."""

    dimensions: tuple[str, str]
    vertices: np.ndarray
    inside: bool = True


@dataclass(frozen=True, eq=False)
class WspEllipse:
    """Ellipse as FlowJo stores it: two foci and four edge points (major axis
    ends, then minor axis ends) in the 256-bin display space of the axes."""

    dimensions: tuple[str, str]
    foci: np.ndarray
    edge: np.ndarray
    distance: float | None = None
    inside: bool = True


@dataclass(frozen=True, eq=False)
class WspAxesEllipse:
    """Ellipse as FlowJo 9 stores it: the two ends of each axis (four points,
    data units), an ellipse on the transformed axes."""

    dimensions: tuple[str, str]
    points: np.ndarray
    inside: bool = True


@dataclass(frozen=True)
class WspBoolean:
    """FlowJo And/Or/Not node over other populations (FlowJo paths, '/'-separated)."""

    operator: str                # "and", "or", "not"
    dependents: tuple[str, ...]


@dataclass
class Population:
    """One node of a sample's gate tree."""

    path: tuple[str, ...]
    gate: WspRectangle | WspPolygon | WspEllipse | WspBoolean
    flowjo_count: int | None = None
    owning_group: str = ""

    @property
    def id(self) -> str:
        return SEP.join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def parent(self) -> str | None:
        return SEP.join(self.path[:-1]) if len(self.path) > 1 else None


@dataclass
class Compensation:
    """A sample's spillover matrix and the prefix/suffix FlowJo adds to the
    names of compensated channels (``Comp-`` in FlowJo 10, ``<`` ``>`` in 9)."""

    name: str
    matrix: SpectrumMatrix
    prefix: str = "Comp-"
    suffix: str = ""
    id: str = "flowjo"

    def channel(self, name: str) -> str | None:
        """The detector a compensated channel name stands for, or None."""
        if not (self.prefix or self.suffix):
            return name if name in self.matrix.detectors else None
        if name.startswith(self.prefix) and name.endswith(self.suffix):
            base = name[len(self.prefix):len(name) - len(self.suffix)]
            if base in self.matrix.detectors:
                return base
        return None


@dataclass
class WorkspaceSample:
    """One sample of a workspace: its file, keywords, compensation, transforms
    (channel name -> transform) and gate tree (parents before children)."""

    id: str
    name: str
    uri: str | None = None
    keywords: dict[str, str] = field(default_factory=dict)
    compensation: Compensation | None = None
    transforms: dict[str, object] = field(default_factory=dict)
    populations: list[Population] = field(default_factory=list)
    count: int | None = None
    workspace: Path | None = None
    #: why a channel's transform could not be read, raised only where a gate uses it
    #: (FlowJo keeps one for every parameter, a clock's too)
    transform_errors: dict[str, str] = field(default_factory=dict)
    #: the $PnN names of the file being gated, where known (``strategy(channels=)``)
    file_channels: tuple[str, ...] = ()

    def population(self, path: str) -> Population:
        for p in self.populations:
            if p.id == path:
                return p
        raise FlowJoError(f"{self.workspace}: sample {self.name!r} has no population "
                          f"{path!r}; it has: {', '.join(p.id for p in self.populations)}")

    @property
    def file_name(self) -> str:
        """The FCS file name FlowJo recorded (from the data set URI, $FIL or the name)."""
        if self.uri:
            return re.split(r"[\\/]", _uri_path(self.uri))[-1]
        return self.keywords.get("$FIL", "").strip() or self.name

    # -- translation into immunomon gates -----------------------------------
    def dimension(self, name: str, *, transformed: bool = True,
                  on_scale: bool = False) -> Dimension:
        """The immunomon dimension for a FlowJo axis name ('Comp-CD3 FITC-A'). A name
        the file has as a channel of its own is that channel as stored: an export
        compensated or unmixed before FlowJo names its channels 'Comp-BUV661-A'."""
        base, comp = self._channel(name)
        transform = self.transform_of(name) if transformed else None
        if on_scale and transform is not None:
            transform = OnScale(transform)
        return Dimension(base, comp, transform)

    def _channel(self, name: str) -> tuple[str, str]:
        """(channel, compensation) a FlowJo axis name reads."""
        if name in self.file_channels:
            return name, UNCOMPENSATED
        if self.compensation is not None:
            detector = self.compensation.channel(name)
            return (detector, self.compensation.id) if detector is not None \
                else (name, UNCOMPENSATED)
        if name.startswith("Comp-") or (name.startswith("<") and name.endswith(">")):
            raise FlowJoError(f"{self.workspace}: sample {self.name!r}: a gate uses the "
                              f"compensated channel {name!r} but the sample has no "
                              "compensation matrix (nor the file a channel of that name)")
        return name, UNCOMPENSATED

    def transform_of(self, name: str):
        """The transform of a gate's axis: its own, or its detector's (a compensated
        channel's is listed under the plain name too); raises where it was unreadable."""
        names = [name]
        if name not in self.transforms and self.compensation is not None:
            names.append(self.compensation.channel(name))
        for n in names:
            if n in self.transform_errors:
                raise FlowJoError(self.transform_errors[n])
            if n in self.transforms:
                return self.transforms[n]
        return None

    def strategy(self, channels=None) -> GatingStrategy:
        """This sample's gates as a strategy; population ids are gate paths.
        ``channels``: the $PnN names of the file it will gate (``dimension``)."""
        if channels is not None and tuple(channels) != self.file_channels:
            return replace(self, file_channels=tuple(channels)).strategy()
        s = GatingStrategy(compensations=(
            {self.compensation.id: self.compensation.matrix} if self.compensation else {}))
        ids = {p.id for p in self.populations}
        for pop in self.populations:
            try:
                for gate in self._gates(pop, ids):
                    s.add(gate)
            except FlowJoError:
                raise
            except (ImmunomonError, ValueError, ArithmeticError) as exc:
                raise FlowJoError(f"{self.workspace}: sample {self.name!r}, gate "
                                  f"{pop.id!r}: {exc}") from None
        return s

    def _gates(self, pop: Population, ids: set[str]) -> list:
        g, pid, parent = pop.gate, pop.id, pop.parent
        if isinstance(g, WspBoolean):
            refs = [GateReference(self.resolve(d, pop, ids)) for d in g.dependents]
            return [BooleanGate(pid, g.operator, refs, parent)]
        shape_id = pid if g.inside else f"{pid} (outside of)"
        if isinstance(g, WspRectangle):
            # A monotone transform keeps every comparison: test data units directly.
            # A bound at or beyond the end of FlowJo's axis takes in everything
            # drawn on that end, so it is open.
            dims = [self.dimension(n, transformed=False) for n in g.dimensions]
            bounds = [self._on_scale_bounds(n, lo, hi) for n, (lo, hi) in
                      zip(g.dimensions, g.bounds)]
            shape = RectangleGate(shape_id, dims, bounds, parent)
        elif isinstance(g, WspPolygon):
            # events are drawn on the axis ends, the polygon is not cut by them
            dims = [self.dimension(n, on_scale=True) for n in g.dimensions]
            verts = np.column_stack([_forward(_inner(d.transform), g.vertices[:, i])
                                     for i, d in enumerate(dims)])
            edges = [None if d.transform is None else (0.0, d.transform.scale) for d in dims]
            shape = PolygonGate(shape_id, dims, skirted(verts, edges), parent)
        elif isinstance(g, WspAxesEllipse):
            dims = [self.dimension(n, on_scale=True) for n in g.dimensions]
            pts = np.column_stack([_forward(_inner(d.transform), g.points[:, i])
                                   for i, d in enumerate(dims)])
            shape = EllipsoidGate(shape_id, dims, *axes_moments(pts), 1.0, parent)
        else:
            dims = [self.dimension(n, on_scale=True) for n in g.dimensions]
            mean, cov = ellipse_moments(g.foci, g.edge)
            scale = np.array([display_scale(d.transform) / DISPLAY_BINS if d.transform
                              is not None else self._linear_top(d) / DISPLAY_BINS
                              for d in dims])
            shape = EllipsoidGate(shape_id, dims, mean * scale, cov * np.outer(scale, scale),
                                  1.0, parent)
        if g.inside:
            return [shape]
        return [shape, BooleanGate(pid, "not", [GateReference(shape_id)], parent)]

    def _on_scale_bounds(self, name, lo, hi):
        t = self.transform_of(name)
        if t is not None:
            lo = None if lo is not None and on_axis(t, lo) < 0 else lo
            hi = None if hi is not None and on_axis(t, hi) > 0 else hi
        if lo is None and hi is None:
            return (-np.inf, None)                 # the whole axis
        return (lo, hi)

    def _linear_top(self, dim: Dimension) -> float:
        """Top of a linear axis without a transform: its $PnR, else 262144."""
        for k, v in self.keywords.items():
            if k.upper().endswith("N") and k.upper().startswith("$P") and v == dim.name:
                try:
                    return float(self.keywords.get(k[:-1] + "R", "262144"))
                except ValueError:
                    break
        return 262144.0

    def resolve(self, dependent: str, pop: Population, ids: set[str]) -> str:
        """The population a boolean node names: a full path, a path relative to
        the node's parent, or a population name found once in the tree."""
        dep = dependent.strip().strip(SEP)
        candidates = [dep]
        if pop.parent:
            candidates.append(pop.parent + SEP + dep)
        for c in candidates:
            if c in ids:
                return c
        named = [p.id for p in self.populations if p.name == dep.split(SEP)[-1]
                 and p.id.endswith(dep)]
        if len(named) == 1:
            return named[0]
        raise FlowJoError(f"{self.workspace}: sample {self.name!r}: boolean gate {pop.id!r} "
                          f"refers to {dependent!r}, which is "
                          f"{'ambiguous' if named else 'not a population of this sample'}")


def _inner(transform):
    return getattr(transform, "transform", transform)


def _forward(transform, values):
    v = np.asarray(values, dtype=np.float64)
    return v if transform is None else np.asarray(transform.apply(v), dtype=np.float64)


def ellipse_moments(foci, edge) -> tuple[np.ndarray, np.ndarray]:
    """Centre and 'covariance' (``(x-m)^T C^-1 (x-m) <= 1`` inside) of a FlowJo
    ellipse. The semi-major axis is the mean distance of the two major edge
    points from the centre; the semi-minor axis follows from the foci
    (``b^2 = a^2 - c^2``), which FlowJo stores exactly, whereas it rounds the
    edge points to whole display bins."""
    foci = np.asarray(foci, dtype=np.float64)
    edge = np.asarray(edge, dtype=np.float64)
    centre = foci.mean(axis=0)
    half_focal = np.linalg.norm(foci[1] - foci[0]) / 2
    a = float(np.mean(np.linalg.norm(edge[:2] - centre, axis=1)))
    if half_focal > 0:
        u = (foci[1] - foci[0]) / (2 * half_focal)
    else:                                        # a circle: any direction
        u = np.array([1.0, 0.0])
    b2 = a * a - half_focal * half_focal
    if not b2 > 0:
        raise FlowJoError(f"ellipse with foci {foci.tolist()} and edge {edge.tolist()}: the "
                          "edge points lie inside the foci")
    v = np.array([-u[1], u[0]])
    cov = a * a * np.outer(u, u) + b2 * np.outer(v, v)
    return centre, cov


def axes_moments(points) -> tuple[np.ndarray, np.ndarray]:
    """Centre and 'covariance' of the ellipse whose axes end at ``points[0:2]``
    and ``points[2:4]``."""
    p = np.asarray(points, dtype=np.float64)
    centre = p.mean(axis=0)
    major = (p[0] - p[1]) / 2
    a = float(np.linalg.norm(major))
    b = float(np.linalg.norm(p[2] - p[3]) / 2)
    if not (a > 0 and b > 0):
        raise FlowJoError(f"ellipse with axis ends {p.tolist()} is flat")
    u = major / a
    v = np.array([-u[1], u[0]])
    return centre, a * a * np.outer(u, u) + b * b * np.outer(v, v)


def _uri_path(uri: str) -> str:
    """The path part of a FlowJo data set URI ('file:/C:/data/x.fcs' or a path)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme in ("file", ""):
        return unquote(parsed.path or uri)
    if len(parsed.scheme) == 1:                 # a Windows drive letter, 'C:\data\x.fcs'
        return uri
    return unquote(parsed.path)
