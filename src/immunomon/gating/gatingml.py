"""Gating-ML 2.0 import and export.

Documents may come from anyone: they are parsed by defusedxml, so entity
declarations (billion laughs), external entities and DTD tricks are refused
with a ``GatingMLError`` naming the file.
"""

from __future__ import annotations

import math
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from ..atomic import atomic_path
from ..errors import GatingError, GatingMLError
from .dimensions import FCS, UNCOMPENSATED, Dimension, FRatio, RatioDimension, SpectrumMatrix
from .gates import (BooleanGate, Divider, EllipsoidGate, GateReference, PolygonGate, Quadrant,
                    QuadrantGate, RectangleGate, distinct_dimensions)
from .strategy import GatingStrategy

G = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
T = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
D = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
_PREFIX = {G: "gating", T: "transforms", D: "data-type"}

# Gating-ML transformation element -> (transforms class name, parameter names)
_TRANSFORMS = {
    "flin": ("Linear", ("T", "A")),
    "flog": ("Log", ("T", "M")),
    "fasinh": ("Asinh", ("T", "M", "A")),
    "logicle": ("Logicle", ("T", "W", "M", "A")),
    "hyperlog": ("Hyperlog", ("T", "W", "M", "A")),
}
_GATE_TAGS = {f"{{{G}}}{t}" for t in
              ("RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "BooleanGate")}


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


# --------------------------------------------------------------------------- reading
class _Reader:
    """Turns one parsed document into a strategy; every error names the file
    and the gate (or transformation) concerned."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise GatingMLError(f"{self.path}: {where}: {problem}")

    def attr(self, elem, ns, name, where, *, required=True):
        value = elem.get(_q(ns, name))
        if value is None:
            value = elem.get(name)          # tolerate unqualified attributes
        if value is None and required:
            self.fail(where, f"<{_local(elem.tag)}> lacks the attribute "
                             f"{_PREFIX[ns]}:{name}")
        return value

    def number(self, text, where, what):
        try:
            v = float(text)
        except (TypeError, ValueError):
            self.fail(where, f"{what} is {text!r}, not a number")
        if not np.isfinite(v):
            self.fail(where, f"{what} is {text!r}, not a finite number")
        return v

    def values(self, parent, tag, where, what):
        return [self.number(self.attr(e, D, "value", where), where, what)
                for e in parent.findall(_q(G, tag))]

    # -- transformations ---------------------------------------------------
    def transformation(self, elem):
        tid = self.attr(elem, T, "id", "a transformation")
        where = f"transformation {tid!r}"
        kids = [k for k in elem if k.tag.startswith(f"{{{T}}}")]
        if len(kids) != 1:
            self.fail(where, "must contain exactly one transformation element")
        kind = _local(kids[0].tag)
        if kind == "fratio":
            dims = kids[0].findall(_q(D, "fcs-dimension"))
            if len(dims) != 2:
                self.fail(where, f"fratio needs 2 fcs-dimensions, has {len(dims)}")
            names = [self.attr(d, D, "name", where) for d in dims]
            params = {p: self.number(self.attr(kids[0], T, p, where), where, p)
                      for p in ("A", "B", "C")}
            return tid, FRatio(names[0], names[1], **params)
        if kind not in _TRANSFORMS:
            self.fail(where, f"unsupported transformation <{kind}>; supported: "
                             f"{', '.join(_TRANSFORMS)}, fratio")
        cls_name, names = _TRANSFORMS[kind]
        params = {p: self.number(self.attr(kids[0], T, p, where), where, p) for p in names}
        from .. import transforms
        try:
            return tid, getattr(transforms, cls_name)(**params)
        except (ValueError, ArithmeticError, GatingError) as exc:
            self.fail(where, f"invalid parameters {params}: {exc}")

    def spectrum_matrix(self, elem):
        mid = self.attr(elem, T, "id", "a spectrumMatrix")
        where = f"spectrumMatrix {mid!r}"

        def names(tag):
            group = elem.find(_q(T, tag))
            if group is None:
                self.fail(where, f"lacks <transforms:{tag}>")
            return [self.attr(d, D, "name", where) for d in group.findall(_q(D, "fcs-dimension"))]

        fluor, det = names("fluorochromes"), names("detectors")
        rows = [[self.number(self.attr(c, T, "value", where), where, "a coefficient")
                 for c in s.findall(_q(T, "coefficient"))]
                for s in elem.findall(_q(T, "spectrum"))]
        if len(rows) != len(fluor) or any(len(r) != len(det) for r in rows):
            self.fail(where, f"needs {len(fluor)} spectra of {len(det)} coefficients")
        matrix = np.array(rows, dtype=np.float64).reshape(len(fluor), len(det))
        inverted = (elem.get(_q(T, "matrix-inverted-already")) or "false").lower() == "true"
        try:
            if inverted:
                matrix = np.linalg.inv(matrix)
            spectrum = SpectrumMatrix(fluor, det, matrix)
            spectrum.unmixing()
        except (np.linalg.LinAlgError, GatingError) as exc:
            self.fail(where, f"cannot be used for compensation: {exc}")
        return mid, spectrum

    # -- gates -------------------------------------------------------------
    def dimension(self, elem, where):
        comp = self.attr(elem, G, "compensation-ref", where, required=False) or UNCOMPENSATED
        transform = self.attr(elem, G, "transformation-ref", where, required=False)
        fcs = elem.find(_q(D, "fcs-dimension"))
        new = elem.find(_q(D, "new-dimension"))
        if fcs is not None:
            return Dimension(self.attr(fcs, D, "name", where), comp, transform)
        if new is not None:
            return RatioDimension(self.attr(new, D, "transformation-ref", where), comp,
                                  transform)
        self.fail(where, "a dimension names neither an fcs-dimension nor a new-dimension")

    def gate(self, elem):
        kind = _local(elem.tag)
        gid = self.attr(elem, G, "id", f"a {kind}")
        where = f"gate {gid!r}"
        parent = self.attr(elem, G, "parent_id", where, required=False)
        try:
            return getattr(self, "_" + kind)(elem, gid, parent, where)
        except GatingError as exc:
            if isinstance(exc, GatingMLError):
                raise
            self.fail(where, str(exc))

    def _dims(self, elem, where):
        dims = elem.findall(_q(G, "dimension"))
        if not dims:
            self.fail(where, "has no <gating:dimension>")
        return dims

    def _RectangleGate(self, elem, gid, parent, where):
        dims, bounds = [], []
        for d in self._dims(elem, where):
            lo = self.attr(d, G, "min", where, required=False)
            hi = self.attr(d, G, "max", where, required=False)
            if lo is None and hi is None:
                self.fail(where, "a dimension has neither gating:min nor gating:max")
            dims.append(self.dimension(d, where))
            bounds.append((None if lo is None else self.number(lo, where, "min"),
                           None if hi is None else self.number(hi, where, "max")))
        return RectangleGate(gid, dims, bounds, parent)

    def _PolygonGate(self, elem, gid, parent, where):
        dims = [self.dimension(d, where) for d in self._dims(elem, where)]
        verts = [self.values(v, "coordinate", where, "a vertex coordinate")
                 for v in elem.findall(_q(G, "vertex"))]
        if any(len(v) != len(dims) for v in verts):
            self.fail(where, f"every vertex needs {len(dims)} coordinates")
        return PolygonGate(gid, dims, np.array(verts, dtype=np.float64).reshape(-1, len(dims)),
                           parent)

    def _EllipsoidGate(self, elem, gid, parent, where):
        dims = [self.dimension(d, where) for d in self._dims(elem, where)]
        mean_el = elem.find(_q(G, "mean"))
        cov_el = elem.find(_q(G, "covarianceMatrix"))
        dist_el = elem.find(_q(G, "distanceSquare"))
        if mean_el is None or cov_el is None or dist_el is None:
            self.fail(where, "needs gating:mean, gating:covarianceMatrix and "
                             "gating:distanceSquare")
        mean = self.values(mean_el, "coordinate", where, "a mean coordinate")
        rows = [self.values(r, "entry", where, "a covariance entry")
                for r in cov_el.findall(_q(G, "row"))]
        if len(rows) != len(dims) or any(len(r) != len(dims) for r in rows):
            self.fail(where, f"the covariance matrix must be {len(dims)}x{len(dims)}")
        dist = self.number(self.attr(dist_el, D, "value", where), where, "distanceSquare")
        return EllipsoidGate(gid, dims, mean, rows, dist, parent)

    def _QuadrantGate(self, elem, gid, parent, where):
        dividers = []
        for d in elem.findall(_q(G, "divider")):
            did = self.attr(d, G, "id", where)
            vals = [self.number((v.text or "").strip(), where, f"divider {did!r} value")
                    for v in d.findall(_q(G, "value"))]
            dividers.append(Divider(did, self.dimension(d, where), vals))
        quadrants = []
        for q in elem.findall(_q(G, "Quadrant")):
            qid = self.attr(q, G, "id", where)
            pos = [(self.attr(p, G, "divider_ref", f"quadrant {qid!r}"),
                    self.number(self.attr(p, G, "location", f"quadrant {qid!r}"),
                                f"quadrant {qid!r}", "location"))
                   for p in q.findall(_q(G, "position"))]
            quadrants.append(Quadrant(qid, tuple(pos)))
        return QuadrantGate(gid, dividers, quadrants, parent)

    def _BooleanGate(self, elem, gid, parent, where):
        ops = [k for k in elem if _local(k.tag) in ("and", "or", "not") and
               k.tag.startswith(f"{{{G}}}")]
        if len(ops) != 1:
            self.fail(where, "needs exactly one of gating:and, gating:or, gating:not")
        refs = []
        for r in ops[0].findall(_q(G, "gateReference")):
            ref = self.attr(r, G, "ref", where)
            comp = (self.attr(r, G, "use-as-complement", where, required=False)
                    or "false").strip().lower()
            if comp not in ("true", "false", "1", "0"):
                self.fail(where, f"use-as-complement is {comp!r}, not true or false")
            refs.append(GateReference(ref, comp in ("true", "1")))
        return BooleanGate(gid, _local(ops[0].tag), refs, parent)

    # -- document ----------------------------------------------------------
    def strategy(self, root) -> GatingStrategy:
        if root.tag != _q(G, "Gating-ML"):
            self.fail("root element", f"is <{root.tag}>, not a Gating-ML 2.0 "
                                      "<gating:Gating-ML> document")
        strategy = GatingStrategy()
        try:
            for elem in root.iter(_q(T, "transformation")):
                strategy.add_transform(*self.transformation(elem))
            for elem in root.iter(_q(T, "spectrumMatrix")):
                strategy.add_compensation(*self.spectrum_matrix(elem))
            for elem in root.iter():
                if elem.tag in _GATE_TAGS:
                    strategy.add(self.gate(elem))
                elif elem.tag.startswith(f"{{{G}}}") and elem.tag.endswith("Gate"):
                    gid = elem.get(_q(G, "id"), "?")
                    self.fail(f"gate {gid!r}", f"<{_local(elem.tag)}> is not a Gating-ML 2.0 "
                                               "gate type (RectangleGate, PolygonGate, "
                                               "EllipsoidGate, QuadrantGate, BooleanGate)")
        except GatingError as exc:
            if isinstance(exc, GatingMLError):
                raise
            raise GatingMLError(f"{self.path}: {exc}") from None
        return strategy


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def check_references(strategy: GatingStrategy) -> None:
    """Every transformation, ratio and compensation a gate names exists, and
    parents and boolean operands form no cycle (raises ``GatingError``)."""
    for gate in strategy.gates:
        for dim in gate.dimensions:
            comp = dim.compensation
            if comp not in (UNCOMPENSATED, FCS) and comp not in strategy.compensations:
                raise GatingError(f"gate {gate.id!r}: unknown compensation-ref {comp!r}; "
                                  f"matrices are: {', '.join(strategy.compensations) or 'none'}")
            refs = [("transformation", dim.transform)]
            if isinstance(dim, RatioDimension):
                refs.append(("ratio transformation", dim.ratio))
            for what, ref in refs:
                if isinstance(ref, str) and ref not in strategy.transforms:
                    raise GatingError(f"gate {gate.id!r}: unknown {what} {ref!r}; "
                                      f"known: {', '.join(strategy.transforms) or 'none'}")
            if isinstance(dim, RatioDimension):
                ratio = strategy.transforms.get(dim.ratio, dim.ratio)
                if not isinstance(ratio, FRatio):
                    raise GatingError(f"gate {gate.id!r}: new-dimension {dim.ratio!r} is not "
                                      "an fratio transformation")
    strategy.evaluation_order()


def load_gatingml(path) -> GatingStrategy:
    """Read a Gating-ML 2.0 document into a ``GatingStrategy``."""
    path = Path(path)
    try:
        tree = SafeET.parse(path)
    except defusedxml.DefusedXmlException as exc:
        raise GatingMLError(f"{path}: refused: the document declares entities or external "
                            f"resources ({type(exc).__name__}); Gating-ML needs neither. "
                            "Remove the DOCTYPE/ENTITY declarations.") from None
    except ET.ParseError as exc:
        raise GatingMLError(f"{path}: not well-formed XML: {exc}") from None
    except OSError as exc:
        raise GatingMLError(f"{path}: cannot read: {exc.strerror or exc}") from None
    strategy = _Reader(path).strategy(tree.getroot())
    try:
        check_references(strategy)
    except GatingError as exc:
        raise GatingMLError(f"{path}: {exc}") from None
    return strategy


# --------------------------------------------------------------------------- writing
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _check_id(kind: str, value: str) -> str:
    """Gating-ML ids are XML ``xs:ID`` values: no spaces, '+' or leading digit."""
    if not _NCNAME.match(value):
        raise GatingMLError(f"{kind} id {value!r} is not a valid Gating-ML id (XML xs:ID: a "
                            "letter or '_' first, then letters, digits, '_', '-' or '.'); "
                            "rename it, e.g. 'CD4+ T' to 'CD4pos_T'")
    return value


def finite_bound(v: float) -> float:
    """An infinite gate bound (the gate of a population taken as absent starts at
    +inf) as the largest finite double of its sign: the same events inside, and a
    number every reader and fixed gate takes."""
    v = float(v)
    return math.copysign(sys.float_info.max, v) if math.isinf(v) else v


def xml_number(v: float) -> str:
    """A number as an XML attribute, round-tripping exactly; an infinite one as
    ``finite_bound`` (ours refuses a non-finite one, as strict xs:double readers refuse
    Python's 'inf')."""
    return repr(finite_bound(v))


def _sub(parent, ns, tag, attrs=None):
    """A child element; ``attrs`` maps (namespace, name) to the value."""
    return ET.SubElement(parent, _q(ns, tag),
                         {_q(a_ns, a): v for (a_ns, a), v in (attrs or {}).items()})


class _Writer:
    def __init__(self, strategy: GatingStrategy):
        self.strategy = strategy
        self.root = ET.Element(_q(G, "Gating-ML"))
        self.ids: dict[object, str] = {}       # transform object -> id written

    def transform_id(self, transform) -> str | None:
        if transform is None or isinstance(transform, str):
            return transform
        if transform not in self.ids:
            base = type(transform).__name__
            tid, k = base, 1
            taken = set(self.strategy.transforms) | set(self.ids.values())
            while tid in taken:
                k += 1
                tid = f"{base}_{k}"
            self.write_transform(tid, transform)
        return self.ids[transform]

    def write_transform(self, tid: str, transform) -> None:
        self.ids.setdefault(transform, tid)
        elem = _sub(self.root, T, "transformation", {(T, "id"): _check_id("transformation", tid)})
        if isinstance(transform, FRatio):
            r = _sub(elem, T, "fratio", {(T, p): xml_number(getattr(transform, p))
                                         for p in ("A", "B", "C")})
            for name in (transform.numerator, transform.denominator):
                _sub(r, D, "fcs-dimension", {(D, "name"): name})
            return
        from .. import transforms
        if isinstance(transform, transforms.Arcsinh):
            transform = transform.as_fasinh()       # the same function, by Gating-ML's name
        for kind, (cls_name, params) in _TRANSFORMS.items():
            if isinstance(transform, getattr(transforms, cls_name)):
                _sub(elem, T, kind, {(T, p): xml_number(getattr(transform, p)) for p in params})
                return
        raise GatingMLError(f"transformation {tid!r}: {type(transform).__name__} has no "
                            "Gating-ML 2.0 form")

    def write_matrix(self, mid: str, m: SpectrumMatrix) -> None:
        elem = _sub(self.root, T, "spectrumMatrix", {(T, "id"): _check_id("matrix", mid)})
        for tag, names in (("fluorochromes", m.fluorochromes), ("detectors", m.detectors)):
            group = _sub(elem, T, tag)
            for name in names:
                _sub(group, D, "fcs-dimension", {(D, "name"): name})
        for row in m.matrix:
            spec = _sub(elem, T, "spectrum")
            for v in row:
                _sub(spec, T, "coefficient", {(T, "value"): xml_number(v)})

    def dimension(self, parent, tag, dim, extra=None):
        attrs = {(G, "compensation-ref"): dim.compensation, **(extra or {})}
        tid = self.transform_id(dim.transform)
        if tid is not None:
            attrs[(G, "transformation-ref")] = tid
        elem = _sub(parent, G, tag, attrs)
        if isinstance(dim, RatioDimension):
            _sub(elem, D, "new-dimension", {(D, "transformation-ref"):
                                              self.transform_id(dim.ratio)})
        else:
            _sub(elem, D, "fcs-dimension", {(D, "name"): dim.name})
        return elem

    def gate(self, gate) -> None:
        if isinstance(gate, QuadrantGate) and \
                len(gate.dividers) > len(distinct_dimensions(gate.dimensions)):
            # A y cut made apart on each side of the x cut puts two dividers on one
            # dimension: valid Gating-ML, but readers that look dividers up by dimension
            # (FlowKit 1.3) cannot apply it, so each quadrant is written as a rectangle.
            for rectangle in gate.as_rectangles():
                self.gate(rectangle)
            return
        attrs = {(G, "id"): _check_id("gate", gate.id)}
        if gate.parent is not None:
            attrs[(G, "parent_id")] = gate.parent
        # Concrete gates found in data subclass the plain types; export them as those.
        kinds = (RectangleGate, PolygonGate, EllipsoidGate, QuadrantGate, BooleanGate)
        base = next((k for k in kinds if isinstance(gate, k)), None)
        if base is None:
            raise GatingMLError(f"gate {gate.id!r}: a {type(gate).__name__} has no Gating-ML "
                                "2.0 form; apply the strategy and export the gates it "
                                "resolved to")
        kind = base.__name__
        elem = _sub(self.root, G, kind, attrs)
        if isinstance(gate, RectangleGate):
            for dim, (lo, hi) in zip(gate.dimensions, gate.bounds):
                b = {}
                if lo is not None:
                    b[(G, "min")] = xml_number(lo)
                if hi is not None:
                    b[(G, "max")] = xml_number(hi)
                self.dimension(elem, "dimension", dim, b)
        elif isinstance(gate, PolygonGate):
            for dim in gate.dimensions:
                self.dimension(elem, "dimension", dim)
            for vertex in gate.vertices:
                v = _sub(elem, G, "vertex")
                for c in vertex:
                    _sub(v, G, "coordinate", {(D, "value"): xml_number(c)})
        elif isinstance(gate, EllipsoidGate):
            for dim in gate.dimensions:
                self.dimension(elem, "dimension", dim)
            mean = _sub(elem, G, "mean")
            for c in gate.mean:
                _sub(mean, G, "coordinate", {(D, "value"): xml_number(c)})
            cov = _sub(elem, G, "covarianceMatrix")
            for row in gate.covariance:
                r = _sub(cov, G, "row")
                for c in row:
                    _sub(r, G, "entry", {(D, "value"): xml_number(c)})
            _sub(elem, G, "distanceSquare", {(D, "value"): xml_number(gate.distance_square)})
        elif isinstance(gate, QuadrantGate):
            for div in gate.dividers:
                d = self.dimension(elem, "divider", div.dimension,
                                   {(G, "id"): _check_id("divider", div.id)})
                for v in div.values:
                    _sub(d, G, "value").text = xml_number(v)
            for quad in gate.quadrants:
                q = _sub(elem, G, "Quadrant", {(G, "id"): _check_id("quadrant", quad.id)})
                for div_id, loc in quad.positions:
                    _sub(q, G, "position", {(G, "divider_ref"): div_id,
                                            (G, "location"): xml_number(loc)})
        else:
            operator, operands = _within_parent(gate)
            op = _sub(elem, G, operator)
            for o in operands:
                a = {(G, "ref"): o.ref}
                if o.complement:
                    a[(G, "use-as-complement")] = "true"
                _sub(op, G, "gateReference", a)

    def document(self) -> ET.ElementTree:
        for tid, t in self.strategy.transforms.items():
            self.write_transform(tid, t)
        for mid, m in self.strategy.compensations.items():
            self.write_matrix(mid, m)
        for gate in self.strategy.gates:
            self.gate(gate)
        ET.indent(self.root)
        return ET.ElementTree(self.root)


def _within_parent(gate: BooleanGate) -> tuple[str, tuple]:
    """A boolean gate's operator and operands without an ``and`` operand that is its own
    parent: the gate holds only its parent's events anyway, and a reader that takes the
    references for the tree's edges (FlowKit 1.3) loses the parent edge with it
    (``CD56dim NK: {and: [NK cells, "!CD56bright NK"]}`` under NK cells is written as
    ``not CD56bright NK``). Kept where too little would remain."""
    if gate.operator != "and" or gate.parent is None:
        return gate.operator, tuple(gate.operands)
    rest = tuple(o for o in gate.operands if o.complement or o.ref != gate.parent)
    if len(rest) >= 2:
        return "and", rest
    if len(rest) == 1 and rest[0].complement:
        return "not", (GateReference(rest[0].ref),)
    return gate.operator, tuple(gate.operands)


def save_gatingml(strategy: GatingStrategy, path) -> Path:
    """Write a strategy as a Gating-ML 2.0 document (atomically: a temporary
    file in the same folder, renamed when complete)."""
    path = Path(path)
    check_references(strategy)
    for ns, prefix in _PREFIX.items():
        ET.register_namespace(prefix, ns)
    tree = _Writer(strategy).document()
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
    return path
