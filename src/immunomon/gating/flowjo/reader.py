"""Reading FlowJo workspaces: FlowJo 10 ``.wsp`` (and FlowJo 7-9 for Windows,
which share its layout) and FlowJo 9 for Mac XML workspaces (version 2.0).

Elements and attributes are matched by their local names, so the Gating-ML
1.5 and 2.0 namespaces of the different FlowJo versions read alike. XML is
parsed with defusedxml: entity declarations and external references are
refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import FlowJoError, ImmunomonError
from ..dimensions import SpectrumMatrix
from .model import (SEP, Compensation, Population, WorkspaceSample, WspAxesEllipse, WspBoolean,
                    WspEllipse, WspPolygon, WspRectangle)
from .scales import FlowJoBiex, FlowJoLinear, FlowJoLog, FlowJoTable

_MAX_BYTES = 512 * 1024 * 1024


class _TransformError(FlowJoError):
    """A channel's transform that cannot be read; ``channel`` names it."""

    def __init__(self, message: str, channel: str):
        super().__init__(message)
        self.channel = channel


@dataclass
class Workspace:
    """A FlowJo workspace: its samples (in file order) and groups (name -> sample ids)."""

    path: Path
    version: str
    flowjo_version: str
    samples: list[WorkspaceSample]
    groups: dict[str, list[str]] = field(default_factory=dict)

    def sample(self, name_or_id: str) -> WorkspaceSample:
        """A sample by its id, its name, its FCS file name or that name's stem."""
        for s in self.samples:
            if name_or_id in (s.id, s.name, s.file_name):
                return s
        stems = [s for s in self.samples
                 if name_or_id in (Path(s.name).stem, Path(s.file_name).stem)]
        if len(stems) == 1:
            return stems[0]
        raise FlowJoError(f"{self.path}: no sample {name_or_id!r}; samples: "
                          f"{', '.join(s.name for s in self.samples) or 'none'}")

    def group_of(self, sample: WorkspaceSample) -> list[str]:
        return [g for g, ids in self.groups.items() if sample.id in ids]

    def __repr__(self):
        return (f"<FlowJo workspace {self.path.name}: FlowJo {self.flowjo_version or '?'}, "
                f"{len(self.samples)} samples, {len(self.groups)} groups>")


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _attr(elem, name: str, default=None):
    for key, value in elem.attrib.items():
        if _local(key) == name:
            return value
    return default


def _children(elem, name: str) -> list:
    return [c for c in elem if _local(c.tag) == name]


def _child(elem, name: str):
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


class _Reader:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise FlowJoError(f"{self.path}: {where}: {problem}")

    def number(self, text, where: str, what: str) -> float:
        try:
            v = float(str(text).strip())
        except (TypeError, ValueError):
            self.fail(where, f"{what} is {text!r}, not a number")
        if not np.isfinite(v):
            self.fail(where, f"{what} is {text!r}, not a finite number")
        return v

    # -- document ----------------------------------------------------------
    def workspace(self, root) -> Workspace:
        if _local(root.tag) != "Workspace":
            self.fail("root element", f"is <{_local(root.tag)}>, not a FlowJo <Workspace>")
        version = _attr(root, "version", "")
        fj_version = _attr(root, "flowJoVersion", "")
        sample_list = _child(root, "SampleList")
        if sample_list is None:
            self.fail("workspace", "has no <SampleList>")
        mac = version.startswith("2.")
        matrices = self.mac_matrices(root) if mac else []
        prefs = _child(root, "Preferences") if mac else None
        tables = self.mac_tables(root) if mac else []
        samples = [self.mac_sample(el, matrices, prefs, tables) if mac else self.sample(el)
                   for el in _children(sample_list, "Sample")]
        groups: dict[str, list[str]] = {}
        groups_el = _child(root, "Groups")
        for node in (_children(groups_el, "GroupNode") if groups_el is not None else []):
            group = _child(node, "Group")
            refs = _child(group, "SampleRefs") if group is not None else None
            groups[_attr(node, "name", "")] = [
                _attr(r, "sampleID", "") for r in
                (_children(refs, "SampleRef") if refs is not None else [])]
        return Workspace(self.path, version, fj_version, samples, groups)

    # -- FlowJo 10 (and 7-9 for Windows) samples -----------------------------
    def sample(self, el) -> WorkspaceSample:
        node = _child(el, "SampleNode")
        if node is None:
            self.fail("a <Sample>", "has no <SampleNode>")
        dataset = _child(el, "DataSet")
        sid = _attr(node, "sampleID") or (_attr(dataset, "sampleID", "")
                                          if dataset is not None else "")
        name = _attr(node, "name", sid)
        where = f"sample {name!r}"
        s = WorkspaceSample(id=sid, name=name, workspace=self.path,
                            uri=_attr(dataset, "uri") if dataset is not None else None,
                            keywords=self.keywords(el), count=self.count(node))
        matrices = [c for c in el if _local(c.tag) == "spilloverMatrix"]
        if len(matrices) > 1:
            self.fail(where, f"has {len(matrices)} spillover matrices; FlowJo applies one")
        if matrices:
            s.compensation = self.spillover_matrix(matrices[0], where)
        xforms = _child(el, "Transformations")
        for t in (list(xforms) if xforms is not None else []):
            try:
                channel, transform = self.transform(t, where)
            except _TransformError as exc:
                # FlowJo keeps an axis for every parameter: one no gate uses (a clock's
                # linear range stored backwards) must not refuse the whole workspace
                s.transform_errors[exc.channel] = str(exc)
                continue
            s.transforms[channel] = transform
        subpops = _child(node, "Subpopulations")
        if subpops is not None:
            self.subpopulations(subpops, (), s.populations, where)
        return s

    def keywords(self, el) -> dict[str, str]:
        kw = _child(el, "Keywords")
        return {} if kw is None else {
            _attr(k, "name", ""): _attr(k, "value", "") for k in _children(kw, "Keyword")}

    def count(self, node) -> int | None:
        c = _attr(node, "count")
        try:
            return int(float(c)) if c is not None and float(c) >= 0 else None
        except ValueError:
            return None

    def spillover_matrix(self, el, where) -> Compensation:
        name = _attr(el, "name", "") or _attr(el, "id", "compensation")
        where = f"{where}, spillover matrix {name!r}"
        if _attr(el, "spectral") == "1":
            self.fail(where, "spectral unmixing matrices are not supported; export the "
                             "unmixed FCS files and a conventional matrix")
        params = _child(el, "parameters")
        detectors = [_attr(p, "name") for p in (params if params is not None else [])]
        rows = {}
        for sp in _children(el, "spillover"):
            src = _attr(sp, "parameter")
            rows[src] = {_attr(c, "parameter"): self.number(_attr(c, "value"), where,
                                                            "a coefficient")
                         for c in _children(sp, "coefficient")}
        if not detectors:
            detectors = list(rows)
        try:
            matrix = np.array([[rows[r][c] for c in detectors] for r in detectors])
        except KeyError as exc:
            self.fail(where, f"no coefficient for detector {exc.args[0]!r}; the matrix must "
                             "be square")
        return Compensation(name, SpectrumMatrix(detectors, detectors, matrix),
                            _attr(el, "prefix", "Comp-") or "", _attr(el, "suffix", "") or "")

    def transform(self, t, where):
        kind = _local(t.tag)
        param = _child(t, "parameter")
        channel = _attr(param, "name") if param is not None else None
        if not channel:
            self.fail(where, f"a <{kind}> transformation names no channel")
        where = f"{where}, transformation of {channel!r}"
        try:
            return channel, self._transform(t, kind, where)
        except FlowJoError as exc:
            raise _TransformError(str(exc), channel) from None

    def _transform(self, t, kind: str, where: str):
        """One <transforms:...> element as a transform."""

        def num(name, default=None):
            v = _attr(t, name)
            if v is None:
                if default is None:
                    self.fail(where, f"<{kind}> lacks the attribute {name}")
                return default
            return self.number(v, where, name)

        from ...transforms import Asinh, Hyperlog, Logicle
        try:
            if kind == "linear":
                lo, hi = num("minRange", 0.0), num("maxRange", 0.0)
                if lo == hi == 0:
                    # FlowJo 10 writes a linear axis left at its default range (0 to
                    # 262,144) with both ends 0 or with no attributes at all; refusing
                    # it refused whole workspaces
                    return FlowJoLinear()
                return FlowJoLinear(lo, hi)
            if kind == "log":
                return FlowJoLog(num("offset"), num("decades"))
            if kind == "biex":
                length = num("length", 256.0)
                if length != 256:
                    self.fail(where, f"biex length {length:g} is not supported (FlowJo "
                                     "writes 256)")
                return FlowJoBiex(num("neg"), num("width"), num("pos"),
                                           num("maxRange"))
            if kind == "logicle":
                return Logicle(num("T"), num("W"), num("M"), num("A"))
            if kind == "hyperlog":
                return Hyperlog(num("T"), num("W"), num("M"), num("A"))
            if kind in ("fasinh", "arcsinh"):
                return Asinh(num("T"), num("M"), num("A"))
        except ImmunomonError as exc:
            if isinstance(exc, FlowJoError):
                raise
            self.fail(where, str(exc))
        self.fail(where, f"unknown transformation <{kind}>; supported: linear, log, biex, "
                         "logicle, hyperlog, fasinh. Re-save the axis in FlowJo as one of "
                         "them")

    # -- gate tree -----------------------------------------------------------
    def subpopulations(self, el, path, out: list, where):
        for node in el:
            kind = _local(node.tag)
            if kind not in ("Population", "AndNode", "OrNode", "NotNode"):
                continue
            name = _attr(node, "name")
            if not name:
                self.fail(where, f"a <{kind}> under {SEP.join(path) or 'the sample'} has no name")
            here = path + (name,)
            gwhere = f"{where}, gate {SEP.join(here)!r}"
            if kind == "Population":
                gate_el = _child(node, "Gate")
                shapes = [c for c in (gate_el if gate_el is not None else [])]
                if len(shapes) != 1:
                    self.fail(gwhere, "a population needs one gate inside <Gate>")
                gate = self.gate(shapes[0], gwhere)
            else:
                deps = _child(node, "Dependents")
                names = tuple(_attr(d, "name", "") for d in
                              (_children(deps, "Dependent") if deps is not None else []))
                op = kind[:-4].lower()
                if (op == "not" and len(names) != 1) or (op != "not" and len(names) < 2):
                    self.fail(gwhere, f"a {kind} needs {'one' if op == 'not' else 'two or more'}"
                                      f" dependents, has {len(names)}")
                gate = WspBoolean(op, names)
            out.append(Population(here, gate, self.count(node), _attr(node, "owningGroup", "")))
            sub = _child(node, "Subpopulations")
            if sub is not None:
                self.subpopulations(sub, here, out, where)

    def dims(self, el, where) -> tuple[str, ...]:
        names = []
        for d in _children(el, "dimension"):
            fcs = _child(d, "fcs-dimension")
            if fcs is None or not _attr(fcs, "name"):
                self.fail(where, "a gate dimension names no channel (ratio dimensions are not "
                                 "FlowJo gates)")
            names.append(_attr(fcs, "name"))
        if not names:
            self.fail(where, "the gate has no dimensions")
        return tuple(names)

    def vertices(self, el, where, n_dims: int) -> np.ndarray:
        verts = [[self.number(_attr(c, "value"), where, "a vertex coordinate")
                  for c in _children(v, "coordinate")] for v in _children(el, "vertex")]
        if not verts or any(len(v) != n_dims for v in verts):
            self.fail(where, f"every vertex needs {n_dims} coordinates")
        return np.array(verts, dtype=np.float64)

    def gate(self, el, where):
        kind = _local(el.tag)
        inside = _attr(el, "eventsInside", "1") != "0"
        if kind == "RectangleGate":
            bounds, names = [], []
            for d, name in zip(_children(el, "dimension"), self.dims(el, where)):
                lo, hi = _attr(d, "min"), _attr(d, "max")
                bounds.append((None if lo is None else self.number(lo, where, "min"),
                               None if hi is None else self.number(hi, where, "max")))
                names.append(name)
            for name, (lo, hi) in zip(names, bounds):
                if lo is None and hi is None:
                    self.fail(where, f"dimension {name!r} has neither min nor max")
                if lo is not None and hi is not None and not lo < hi:
                    self.fail(where, f"dimension {name!r} has min {lo:g} not below max {hi:g}")
            return WspRectangle(tuple(names), tuple(bounds), inside)
        if kind == "PolygonGate":
            names = self.dims(el, where)
            if len(names) != 2:
                self.fail(where, f"a polygon needs 2 dimensions, has {len(names)}")
            v = self.vertices(el, where, 2)
            if len(v) < 3:
                self.fail(where, f"a polygon needs at least 3 vertices, has {len(v)}")
            return WspPolygon(names, v, inside)
        if kind == "EllipsoidGate":
            names = self.dims(el, where)
            foci_el, edge_el = _child(el, "foci"), _child(el, "edge")
            if len(names) != 2 or foci_el is None or edge_el is None:
                self.fail(where, "a FlowJo ellipse needs 2 dimensions, <foci> and <edge>")
            foci, edge = self.vertices(foci_el, where, 2), self.vertices(edge_el, where, 2)
            if len(foci) != 2 or len(edge) != 4:
                self.fail(where, "a FlowJo ellipse needs 2 foci and 4 edge points")
            dist = _attr(el, "distance")
            return WspEllipse(names, foci, edge,
                              None if dist is None else self.number(dist, where, "distance"),
                              inside)
        if kind == "QuadrantGate":
            self.fail(where, "Gating-ML quadrant gates inside FlowJo workspaces are written "
                             "by FlowJo as four rectangles; this one is not supported")
        self.fail(where, f"unknown gate type <{kind}>; supported: RectangleGate, "
                         "PolygonGate, EllipsoidGate and And/Or/Not nodes")

    # -- FlowJo 9 for Mac (workspace version 2.0) ----------------------------
    def mac_matrices(self, root) -> list[Compensation]:
        out = []
        holder = _child(root, "CompensationMatrices")
        for m in (_children(holder, "CompensationMatrix") if holder is not None else []):
            name = _attr(m, "name", "compensation")
            where = f"compensation matrix {name!r}"
            rows = {_attr(ch, "name"): {_attr(v, "name"): self.number(_attr(v, "value"), where,
                                                                       "a coefficient")
                                        for v in _children(ch, "ChannelValue")}
                    for ch in _children(m, "Channel")}
            dets = list(rows)
            try:
                matrix = np.array([[rows[r][c] for c in dets] for r in dets])
            except KeyError as exc:
                self.fail(where, f"no coefficient for {exc.args[0]!r}; must be square")
            out.append(Compensation(name, SpectrumMatrix(dets, dets, matrix),
                                    _attr(m, "prefix", "<") or "", _attr(m, "suffix", ">") or ""))
        return out

    def mac_sample(self, el, matrices, prefs, tables) -> WorkspaceSample:
        node = _child(el, "SampleNode")
        if node is None:
            self.fail("a <Sample>", "has no <SampleNode>")
        sid = _attr(el, "sampleID") or _attr(node, "sampleID", "")
        name = _attr(node, "name", sid)
        where = f"sample {name!r}"
        s = WorkspaceSample(id=sid, name=name, workspace=self.path, keywords=self.keywords(el),
                            count=self.count(node))
        comp_id = _attr(el, "compensationID", "0")
        try:
            k = int(comp_id)
        except ValueError:
            k = 0
        if k > 0:
            if k > len(matrices):
                self.fail(where, f"uses compensation matrix {k}, but the workspace has "
                                 f"{len(matrices)}")
            s.compensation = matrices[k - 1]
        s.transforms = self.mac_transforms(el, prefs, tables, s.compensation, where)
        self.mac_populations(node, (), s.populations, where)
        return s

    def mac_tables(self, root) -> list:
        """FlowJo 9's calibration tables (channel, value pairs), in file order."""
        holder = _child(root, "CalibrationTables")
        out = []
        for t in (_children(holder, "Table") if holder is not None else []):
            name = _attr(t, "name", "")
            try:
                pairs = np.array([float(v) for v in (t.text or "").replace("\n", "").split(",")
                                  if v.strip()]).reshape(-1, 2)
                out.append(FlowJoTable(name, pairs[np.argsort(pairs[:, 0]), 1]))
            except (ValueError, ImmunomonError) as exc:
                self.fail(f"calibration table {name!r}", f"cannot be read ({exc})")
        return out

    def mac_transforms(self, el, prefs, tables, comp, where) -> dict:
        """FlowJo 9 shows 'log' parameters through its calibration tables: a
        parameter names its table by number, a compensated parameter's table is
        named after the matrix and the parameter ('M <FITC-A>'). Without tables,
        the biex of the preferences (custom width, extra and positive decades)."""
        def pref(name, default):
            v = _attr(prefs, name) if prefs is not None else None
            return default if v is None else self.number(v, "preferences", name)
        biex = FlowJoBiex(pref("DT_32BitCustomExtra", 0.0), pref("DT_32BitCustomWidth", -10.0),
                          pref("DT_32BitCustomDecades", 4.5), 262144.0)
        by_name = {t.name: t for t in tables}
        out = {}
        for p in _children(el, "Parameter"):
            name = _attr(p, "name")
            if not name or _attr(p, "log", "0") != "1":
                continue
            try:
                k = int(_attr(p, "calibrationIndex", "0"))
            except ValueError:
                k = 0
            out[name] = tables[k - 1] if 0 < k <= len(tables) else biex
            if comp is not None and name in comp.matrix.detectors:
                shown = f"{comp.prefix}{name}{comp.suffix}"
                out[shown] = by_name.get(f"{comp.name} {shown}", out[name])
        return out

    def mac_populations(self, el, path, out, where):
        for node in el:
            kind = _local(node.tag)
            if kind not in ("Population", "NotNode", "AndNode", "OrNode"):
                continue
            name = _attr(node, "name")
            here = path + (name,)
            gwhere = f"{where}, gate {SEP.join(here)!r}"
            if kind == "Population":
                gate_el = _child(node, "PolygonGate")
                if gate_el is None:
                    self.fail(gwhere, "a FlowJo 9 population needs a <PolygonGate>")
                gate = self.mac_gate(gate_el, gwhere)
            else:
                deps = _child(node, "Dependents")
                names = tuple(_attr(d, "name", "") for d in
                              (_children(deps, "Dependent") if deps is not None else []))
                gate = WspBoolean(kind[:-4].lower(), names)
            out.append(Population(here, gate, self.count(node), _attr(node, "owningGroup", "")))
            self.mac_populations(node, here, out, where)

    def mac_gate(self, el, where):
        shape = next((c for c in el if _local(c.tag) in ("Polygon", "PolyRect", "Range",
                                                          "Rectangle", "Ellipse")), None)
        if shape is None:
            self.fail(where, "the gate holds no Polygon, PolyRect, Range, Rectangle or Ellipse")
        kind = _local(shape.tag)
        x, y = _attr(shape, "xAxisName"), _attr(shape, "yAxisName")
        poly = _child(shape, "Polygon")
        verts = np.array([[self.number(_attr(v, "x"), where, "x"),
                           self.number(_attr(v, "y", "0"), where, "y")]
                          for v in (_children(poly, "Vertex") if poly is not None else [])])
        if kind == "Range":
            if len(verts) < 2 or not x:
                self.fail(where, "a range needs an x axis and two vertices")
            lo, hi = float(verts[:, 0].min()), float(verts[:, 0].max())
            return WspRectangle((x,), ((lo, hi),))
        if kind == "Rectangle":
            lo, hi = verts.min(axis=0), verts.max(axis=0)
            return WspRectangle((x, y), ((lo[0], hi[0]), (lo[1], hi[1])))
        if kind in ("Polygon", "PolyRect"):
            if len(verts) < 3 or not (x and y):
                self.fail(where, "a polygon needs x and y axes and 3 or more vertices")
            return WspPolygon((x, y), verts)
        if len(verts) != 4 or not (x and y):
            self.fail(where, "a FlowJo 9 ellipse needs x and y axes and the 4 ends of its axes")
        return WspAxesEllipse((x, y), verts)


def load_flowjo(path) -> Workspace:
    """Read a FlowJo workspace (FlowJo 10 ``.wsp``, FlowJo 9 XML; ``.gz`` too)."""
    import gzip
    import io

    import defusedxml
    import defusedxml.ElementTree as SafeET
    from xml.etree.ElementTree import ParseError

    path = Path(path)
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read(_MAX_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise FlowJoError(f"{path}: more than {_MAX_BYTES} bytes is too large for a FlowJo "
                              "workspace")
        root = SafeET.parse(io.BytesIO(data), forbid_dtd=False).getroot()
    except defusedxml.DefusedXmlException as exc:
        raise FlowJoError(f"{path}: refused: the workspace declares entities or external "
                          f"resources ({type(exc).__name__}); FlowJo writes neither") from None
    except ParseError as exc:
        raise FlowJoError(f"{path}: not well-formed XML ({exc}); is it a FlowJo workspace?") \
            from None
    except (OSError, EOFError) as exc:
        raise FlowJoError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") \
            from None
    return _Reader(path).workspace(root)
