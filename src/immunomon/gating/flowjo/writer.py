"""Writing FlowJo 10 workspaces, and turning immunomon gates into FlowJo ones.

``save_flowjo(workspace, path)`` writes any ``Workspace`` (read from FlowJo 9
or 10, or built here) as a FlowJo 10 ``.wsp``. ``workspace_from_results``
builds one from immunomon ``GatingResult`` objects (the concrete gates a
template found in each file), so a scientist can review them in FlowJo.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ...atomic import atomic_path
from ...errors import FlowJoError
from ..dimensions import FCS, UNCOMPENSATED, Dimension, SpectrumMatrix
from ..gates import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate
from ..gatingml import xml_number as _n
from .model import (SEP, Compensation, Population, WorkspaceSample, WspAxesEllipse,
                    WspBoolean, WspEllipse, WspPolygon, WspRectangle, axes_moments)
from .reader import Workspace
from .scales import (DISPLAY_BINS, FlowJoBiex, FlowJoLinear, FlowJoLog, FlowJoTable,
                     display_scale, fit_biex)

G = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
T = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
D = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"


def _sub(parent, tag, attrs=None, ns=None):
    name = f"{{{ns}}}{tag}" if ns else tag
    return ET.SubElement(parent, name, {k: str(v) for k, v in (attrs or {}).items()})


def _dim(parent, name, attrs=None):
    d = _sub(parent, "dimension", attrs, G)
    _sub(d, "fcs-dimension", {f"{{{D}}}name": name}, D)
    return d


def _vertices(parent, points, tag="vertex"):
    for p in points:
        v = _sub(parent, tag, None, G)
        for c in p:
            _sub(v, "coordinate", {f"{{{D}}}value": _n(c)}, G)


# ----------------------------------------------------------------------------- transforms
def _transform_element(parent, channel: str, t) -> None:
    from ...transforms import Asinh, Hyperlog, Linear, Log, Logicle
    if isinstance(t, Linear):
        t = FlowJoLinear(-t.A, t.T)
    elif isinstance(t, Log):
        t = FlowJoLog(t.T / 10.0 ** t.M, t.M)
    a = lambda k: f"{{{T}}}{k}"          # noqa: E731 - attribute in the transforms namespace
    if isinstance(t, FlowJoLinear):
        el = _sub(parent, "linear", {a("minRange"): _n(t.min_range),
                                     a("maxRange"): _n(t.max_range), "gain": "1"}, T)
    elif isinstance(t, FlowJoLog):
        el = _sub(parent, "log", {a("offset"): _n(t.offset), a("decades"): _n(t.decades)}, T)
    elif isinstance(t, FlowJoBiex):
        el = _sub(parent, "biex", {a("length"): "256", a("maxRange"): _n(t.max_range),
                                   a("neg"): _n(t.neg), a("width"): _n(t.width),
                                   a("pos"): _n(t.pos)}, T)
    elif isinstance(t, (Logicle, Hyperlog)):
        kind = "logicle" if isinstance(t, Logicle) else "hyperlog"
        el = _sub(parent, kind, {a("length"): "256", a("T"): _n(t.T), a("W"): _n(t.W),
                                 a("M"): _n(t.M), a("A"): _n(t.A)}, T)
    elif isinstance(t, Asinh):
        el = _sub(parent, "fasinh", {a("length"): "256", a("maxRange"): _n(t.T),
                                     a("T"): _n(t.T), a("M"): _n(t.M), a("A"): _n(t.A),
                                     a("W"): "0"}, T)
    else:
        raise FlowJoError(f"channel {channel!r}: a {type(t).__name__} transform has no FlowJo "
                          "form")
    _sub(el, "parameter", {f"{{{D}}}name": channel}, D)


# ----------------------------------------------------------------------------- gates
def _ellipse_display(sample: WorkspaceSample, g: WspAxesEllipse) -> WspEllipse:
    """A FlowJo 9 ellipse (axis ends, data units) as FlowJo 10 stores one."""
    dims = [sample.dimension(n) for n in g.dimensions]
    pts = np.column_stack([np.asarray(d.transform.apply(g.points[:, i]), dtype=np.float64)
                           if d.transform is not None else g.points[:, i]
                           for i, d in enumerate(dims)])
    mean, cov = axes_moments(pts)
    scale = np.array([DISPLAY_BINS / (display_scale(d.transform) if d.transform is not None
                                      else sample._linear_top(d)) for d in dims])
    return ellipse_from_moments(g.dimensions, mean * scale, cov * np.outer(scale, scale),
                                g.inside)


def ellipse_from_moments(dimensions, mean, cov, inside=True) -> WspEllipse:
    """FlowJo's foci and edge points of the ellipse ``(x-m)^T C^-1 (x-m) <= 1``."""
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    b2, a2 = values
    u, v = vectors[:, 1], vectors[:, 0]
    a, b = np.sqrt(a2), np.sqrt(b2)
    c = np.sqrt(max(a2 - b2, 0.0))
    m = np.asarray(mean, dtype=np.float64)
    foci = np.array([m - c * u, m + c * u])
    edge = np.array([m - a * u, m + a * u, m - b * v, m + b * v])
    return WspEllipse(tuple(dimensions), foci, edge, None, inside)


def _gate_element(parent, pop: Population, sample: WorkspaceSample, gid: int) -> None:
    g = pop.gate
    if isinstance(g, WspAxesEllipse):
        g = _ellipse_display(sample, g)
    holder = _sub(parent, "Gate", {f"{{{G}}}id": f"ID{gid}"})
    common = {"eventsInside": "1" if g.inside else "0"}
    if isinstance(g, WspRectangle):
        el = _sub(holder, "RectangleGate", common, G)
        for name, (lo, hi) in zip(g.dimensions, g.bounds):
            b = {}
            if lo is not None:
                b[f"{{{G}}}min"] = _n(lo)
            if hi is not None:
                b[f"{{{G}}}max"] = _n(hi)
            _dim(el, name, b)
    elif isinstance(g, WspPolygon):
        el = _sub(holder, "PolygonGate", {**common, "gateResolution": "256"}, G)
        for name in g.dimensions:
            _dim(el, name)
        _vertices(el, g.vertices)
    else:
        el = _sub(holder, "EllipsoidGate", common, G)
        for name in g.dimensions:
            _dim(el, name)
        _vertices(_sub(el, "foci", None, G), g.foci)
        _vertices(_sub(el, "edge", None, G), g.edge)


def _densify(vertices: np.ndarray, old_x, old_y, new_x, new_y, points: int = 32) -> np.ndarray:
    """A polygon drawn on (old_x, old_y) display axes, as data-unit vertices that
    trace the same outline on (new_x, new_y): each edge becomes ``points``
    segments, straight on the old axes. Points on an end of an axis stay beyond
    that end, whatever the new transform."""
    if old_x is new_x and old_y is new_y:
        return vertices
    olds = (old_x, old_y)
    d = np.column_stack([v if t is None else np.asarray(t.apply(v), dtype=np.float64)
                         for t, v in zip(olds, vertices.T)])
    ends = np.roll(d, -1, axis=0)
    f = np.arange(points)[None, :, None] / points
    pts = (d[:, None, :] + f * (ends - d)[:, None, :]).reshape(-1, 2)
    cols = []
    for t, p in zip(olds, pts.T):
        if t is None:
            cols.append(p)
            continue
        data = np.asarray(t.inverse(p), dtype=np.float64)
        data[p <= 0] = -_BEYOND
        data[p >= display_scale(t)] = _BEYOND
        cols.append(data)
    return np.column_stack(cols)


_BEYOND = 1e12          # a data value past either end of any axis


def flowjo10_sample(sample: WorkspaceSample) -> WorkspaceSample:
    """The sample as FlowJo 10 can hold it: calibration tables become fitted biex
    transforms, and polygons on those axes keep their outline (densified); FlowJo
    9 ellipses become FlowJo 10 ones."""
    from dataclasses import replace as _replace

    fitted: dict[bytes, FlowJoBiex] = {}        # channels often share one table
    new_t = {}
    for ch, t in sample.transforms.items():
        if isinstance(t, FlowJoTable):
            key = t.values.tobytes()
            if key not in fitted:
                fitted[key] = fit_biex(t)
            t = fitted[key]
        new_t[ch] = t
    if all(new_t[ch] is sample.transforms[ch] for ch in new_t) and not any(
            isinstance(p.gate, WspAxesEllipse) for p in sample.populations):
        return sample
    target = _replace(sample, transforms=new_t)
    pops = []
    for p in sample.populations:
        g = p.gate
        if isinstance(g, WspPolygon):
            old = [sample.transform_of(n) for n in g.dimensions]
            new = [target.transform_of(n) for n in g.dimensions]
            g = WspPolygon(g.dimensions, _densify(g.vertices, *old, *new), g.inside)
        elif isinstance(g, WspAxesEllipse):
            g = _ellipse_display(sample, g)
        pops.append(_replace(p, gate=g))
    return _replace(target, populations=pops)


def _uncompensated(channel: str, comp) -> str | None:
    """A compensated channel's plain name (``Comp-FITC-A`` -> ``FITC-A``), else None."""
    if comp is None:
        return None
    head, tail = comp.prefix or "", comp.suffix or ""
    if not (head or tail) or not channel.startswith(head) or not channel.endswith(tail):
        return None
    plain = channel[len(head):len(channel) - len(tail)]
    return plain or None


def _sample_element(parent, sample: WorkspaceSample) -> None:
    sample = flowjo10_sample(sample)
    el = _sub(parent, "Sample")
    _sub(el, "DataSet", {"uri": sample.uri or Path(sample.file_name).as_posix(),
                         "sampleID": sample.id})
    comp = sample.compensation
    if comp is not None:
        m = _sub(el, "spilloverMatrix", {"spectral": "0", "prefix": comp.prefix,
                                         "suffix": comp.suffix, "name": comp.name,
                                         f"{{{T}}}id": comp.id}, T)
        params = _sub(m, "parameters", None, D)
        dets = comp.matrix.detectors
        for d in dets:
            _sub(params, "parameter", {f"{{{D}}}name": d}, D)
        for i, row in enumerate(np.asarray(comp.matrix.matrix)):
            sp = _sub(m, "spillover", {f"{{{D}}}parameter": dets[i]}, T)
            for j, v in enumerate(row):
                _sub(sp, "coefficient", {f"{{{D}}}parameter": dets[j],
                                         f"{{{T}}}value": _n(v)}, T)
    xf = _sub(el, "Transformations")
    for channel, t in sample.transforms.items():
        _transform_element(xf, channel, t)
    # FlowJo lists a compensated channel's transform under its plain name too, and
    # readers (FlowKit) look it up there
    for channel, t in sample.transforms.items():
        plain = _uncompensated(channel, comp)
        if plain and plain not in sample.transforms:
            _transform_element(xf, plain, t)
    kw = _sub(el, "Keywords")
    for k, v in sample.keywords.items():
        _sub(kw, "Keyword", {"name": k, "value": v})
    node = _sub(el, "SampleNode", {"name": sample.name, "sampleID": sample.id,
                                   "count": -1 if sample.count is None else sample.count,
                                   "owningGroup": ""})
    subs = {(): _sub(node, "Subpopulations")}
    for k, pop in enumerate(sample.populations):
        parent_path = pop.path[:-1]
        if parent_path not in subs:
            raise FlowJoError(f"sample {sample.name!r}: population {pop.id!r} comes before "
                              "its parent")
        attrs = {"name": pop.name, "owningGroup": pop.owning_group,
                 "count": -1 if pop.flowjo_count is None else pop.flowjo_count}
        if isinstance(pop.gate, WspBoolean):
            p = _sub(subs[parent_path], pop.gate.operator.capitalize() + "Node", attrs)
            deps = _sub(p, "Dependents")
            for d in pop.gate.dependents:
                _sub(deps, "Dependent", {"name": d})
        else:
            p = _sub(subs[parent_path], "Population", attrs)
            _gate_element(p, pop, sample, k + 1)
        subs[pop.path] = _sub(p, "Subpopulations")


def workspace_xml(ws: Workspace) -> ET.ElementTree:
    for prefix, ns in (("gating", G), ("transforms", T), ("data-type", D)):
        ET.register_namespace(prefix, ns)
    root = ET.Element("Workspace", {"version": "20.0", "flowJoVersion": "10.6.2",
                                    "modDate": "", "curGroup": "All Samples"})
    groups = _sub(root, "Groups")
    group_map = dict(ws.groups)
    group_map.setdefault("All Samples", [s.id for s in ws.samples])
    present = {s.id for s in ws.samples}
    for name, ids in group_map.items():
        node = _sub(groups, "GroupNode", {"name": name, "owningGroup": name})
        grp = _sub(node, "Group", {"name": name})
        refs = _sub(grp, "SampleRefs")
        # an excerpt of a workspace may name samples it no longer holds; readers fail on them
        for sid in (i for i in ids if i in present):
            _sub(refs, "SampleRef", {"sampleID": sid})
    samples = _sub(root, "SampleList")
    for s in ws.samples:
        _sample_element(samples, s)
    ET.indent(root)
    return ET.ElementTree(root)


def save_flowjo(ws: Workspace, path) -> Path:
    """Write a workspace as a FlowJo 10 ``.wsp`` (atomically)."""
    path = Path(path)
    tree = workspace_xml(ws)
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="UTF-8", xml_declaration=True)
    return path


# ----------------------------------------------------------------------------- from immunomon
class _SampleBuilder:
    """Turns the concrete gates of one GatingResult into FlowJo gates."""

    def __init__(self, result, name: str, sample_id: str):
        self.result = result
        self.fcs = result.sample
        self.transforms: dict[str, object] = {}
        self.shaped: set[str] = set()            # channels a polygon or ellipse pins
        self.matrix: SpectrumMatrix | None = None
        self.comp_ref: str | None = None
        self.paths: dict[str, tuple[str, ...]] = {}
        self.counts: dict[str, int] = {}          # populations the result does not hold
        self.name, self.sample_id = name, sample_id

    def fail(self, gate_id, problem):
        raise FlowJoError(f"sample {self.name!r}, gate {gate_id!r}: {problem}")

    def channel(self, gate_id, dim) -> str:
        if not isinstance(dim, Dimension):
            self.fail(gate_id, "ratio dimensions have no FlowJo form")
        if dim.compensation == UNCOMPENSATED:
            return self.fcs.channels[self.fcs.channel_index(dim.name)]
        matrix = self.result.values.matrix(dim.compensation)
        if matrix is None:                       # 'FCS' on a file without spillover
            return self.fcs.channels[self.fcs.channel_index(dim.name)]
        if self.comp_ref not in (None, dim.compensation):
            self.fail(gate_id, "FlowJo applies one compensation matrix per sample; this "
                               f"strategy uses {self.comp_ref!r} and {dim.compensation!r}")
        self.comp_ref, self.matrix = dim.compensation, matrix
        return "Comp-" + self._detector(dim.name, matrix)

    def _detector(self, name, matrix) -> str:
        if name in matrix.detectors:
            return name
        i = self.fcs.channel_index(name)
        from ...compensation import match_detectors
        idx = match_detectors(self.fcs, matrix.detectors)
        return matrix.detectors[idx.index(i)] if i in idx else self.fcs.channels[i]

    def flowjo_transform(self, gate_id, dim, channel, shaped: bool):
        """The gate's transform of an axis, and the affine map (a, b) from its
        units to those of the FlowJo transform recorded for the channel."""
        from ...transforms import Arcsinh, Asinh
        t = self.result.values.resolve_transform(dim.transform)
        a, b = 1.0, 0.0
        if t is None:                   # data units: a linear axis wide enough for every event
            lo, hi = self.data_range(dim)
            fj, a, b = FlowJoLinear(lo, hi), 1.0 / (hi - lo), -lo / (hi - lo)
        elif isinstance(t, Arcsinh):    # asinh(x / c) is an affine image of this fasinh
            m = 4.5
            fj = Asinh(T=t.cofactor * np.sinh(m * np.log(10)), M=m, A=0.0)
            a = 1.0 / (m * np.log(10))
        else:
            fj = t
        known = self.transforms.get(channel)
        if known is None:
            self.transforms[channel] = fj
        elif known != fj and (shaped or channel in self.shaped):
            self.fail(gate_id, f"channel {channel!r} is shown on two scales ({known} and "
                               f"{fj}); FlowJo has one per channel")
        if shaped:
            self.shaped.add(channel)
        return t, a, b

    def data_range(self, dim) -> tuple[float, float]:
        """(min, max) of a linear FlowJo axis showing every event of a channel: from
        0 (or the lowest value) to $PnR (or the highest), and at least twice as far above
        0 as below it. FlowJo reads the axis as (x - min) / (max - min); FlowKit 1.3 as
        (x + min) / (max + min), which runs backwards, or divides by 0, where max <= -min
        (a display export's -19,299 below a top of 4,097 flipped a CD8 cut), and orders
        events as FlowJo does where max > -min."""
        x = self.result.values.channel(dim.name, dim.compensation)
        finite = x[np.isfinite(x)]
        top = float(self.fcs.channel_info[self.fcs.channel_index(dim.name)].range)
        lo = min(0.0, float(finite.min())) if finite.size else 0.0
        hi = max(top, float(finite.max())) if finite.size else top
        lo, hi = float(np.floor(lo)), float(np.ceil(hi)) + 1.0
        return lo, max(hi, -2.0 * lo)

    def gates(self, gate) -> list[tuple[str, object]]:
        """(population id, FlowJo gate) for one immunomon gate."""
        gid = gate.id
        if isinstance(gate, BooleanGate):
            return self.boolean(gate)
        if isinstance(gate, QuadrantGate):
            return self.quadrants(gate)
        dims = list(gate.dimensions)
        channels = [self.channel(gid, d) for d in dims]
        shaped = not isinstance(gate, RectangleGate)
        maps = [self.flowjo_transform(gid, d, c, shaped) for d, c in zip(dims, channels)]
        if isinstance(gate, RectangleGate):
            bounds = tuple(tuple(None if v is None else float(_raw(t, v)) for v in pair)
                           for (t, _, _), pair in zip(maps, gate.bounds))
            return [(gid, WspRectangle(tuple(channels), bounds))]
        if isinstance(gate, PolygonGate):
            verts = np.column_stack([_raw(t, gate.vertices[:, i])
                                     for i, (t, _, _) in enumerate(maps)])
            return [(gid, WspPolygon(tuple(channels), verts))]
        if isinstance(gate, EllipsoidGate):
            if len(dims) != 2:
                self.fail(gid, "FlowJo ellipses have two dimensions")
            a = np.array([m[1] for m in maps])
            b = np.array([m[2] for m in maps])
            fj = [self.transforms[c] for c in channels]
            s = np.array([DISPLAY_BINS / display_scale(t) for t in fj]) * a
            mean = gate.mean * s + b * s / a
            cov = gate.covariance * np.outer(s, s) * gate.distance_square
            return [(gid, ellipse_from_moments(channels, mean, cov))]
        self.fail(gid, f"a {type(gate).__name__} has no FlowJo form")

    def boolean(self, gate: BooleanGate):
        """FlowJo nodes cannot complement an operand: a complemented operand
        becomes a Not node beside the boolean gate (both are restricted to the
        same parent, so the membership is the same)."""
        out, refs = [], []
        parent = () if gate.parent is None else self.paths[gate.parent]
        for o in gate.operands:
            path = SEP.join(self.paths[o.ref])
            if o.complement:
                aux = f"not {o.ref}"
                if aux not in self.paths:
                    mask = ~self.result.mask(o.ref)
                    if gate.parent is not None:
                        mask &= self.result.mask(gate.parent)
                    self.paths[aux] = parent + (aux,)
                    self.counts[aux] = int(mask.sum())
                    out.append((aux, WspBoolean("not", (path,))))
                path = SEP.join(self.paths[aux])
            refs.append(path)
        return out + [(gate.id, WspBoolean(gate.operator, tuple(refs)))]

    def quadrants(self, gate: QuadrantGate):
        if getattr(gate, "empty", False):    # too few events to place the dividers
            return [pair for q in gate.absent_quadrants() for pair in self.gates(q)]
        out = []
        for q in gate.quadrants:
            names, bounds = [], []
            for div_id, loc in q.positions:
                div = next(d for d in gate.dividers if d.id == div_id)
                channel = self.channel(gate.id, div.dimension)
                t, _, _ = self.flowjo_transform(gate.id, div.dimension, channel, False)
                lo, hi = div.interval(loc)
                names.append(channel)
                bounds.append((None if lo is None else float(_raw(t, lo)),
                               None if hi is None else float(_raw(t, hi))))
            out.append((q.id, WspRectangle(tuple(names), tuple(bounds))))
        return out

    def sample(self) -> WorkspaceSample:
        pops = []
        for gid in self.result.strategy.evaluation_order():
            gate = self.result.gates[gid]
            for pid, wsp in self.gates(gate):
                if SEP in pid:
                    self.fail(pid, f"population names cannot contain {SEP!r} in FlowJo")
                if pid not in self.paths:
                    parent = () if gate.parent is None else self.paths[gate.parent]
                    self.paths[pid] = parent + (pid,)
                count = self.counts[pid] if pid in self.counts else self.result.count(pid)
                pops.append(Population(self.paths[pid], wsp, count, ""))
        comp = None
        if self.matrix is not None:
            comp = Compensation(self.comp_ref if self.comp_ref != FCS else "Acquisition-defined",
                                self.matrix, "Comp-", "", "immunomon")
        path = self.fcs.path
        return WorkspaceSample(
            id=self.sample_id, name=path.name if path else self.name,
            uri=path.resolve().as_uri() if path else None,
            keywords=dict(self.fcs.keywords), compensation=comp, transforms=self.transforms,
            populations=_parents_first(pops), count=self.fcs.n_events)


def _raw(transform, values):
    v = np.asarray(values, dtype=np.float64)
    return v if transform is None else np.asarray(transform.inverse(v), dtype=np.float64)


def _parents_first(pops: list[Population]) -> list[Population]:
    """Depth-first order of the tree (FlowJo nests children in their parent)."""
    children: dict[tuple, list[Population]] = {}
    for p in pops:
        children.setdefault(p.path[:-1], []).append(p)
    out: list[Population] = []

    def walk(path):
        for p in children.get(path, []):
            out.append(p)
            walk(p.path)
    walk(())
    return out


def workspace_from_results(results, names=None) -> Workspace:
    """A FlowJo workspace holding the concrete gates of immunomon GatingResults
    (one sample each), with immunomon's counts as the stored counts."""
    samples = []
    for k, result in enumerate(results, start=1):
        name = (names[k - 1] if names else
                result.sample.path.stem if result.sample.path else f"sample{k}")
        samples.append(_SampleBuilder(result, name, str(k)).sample())
    return Workspace(Path("immunomon.wsp"), "20.0", "10.6.2", samples,
                     {"All Samples": [s.id for s in samples]})
