"""Gating templates: a panel's gating strategy as a YAML file.

A template names its markers (with aliases, resolved against each file's
$PnS, then $PnN), its compensation, its transforms and an ordered list of
populations, each with a parent, dimensions and either a fixed gate or a
data-driven method. Loading validates everything and reports the line and
field of each mistake. ``Template.strategy_for(sample)`` builds the concrete
``GatingStrategy`` for one file; populations whose markers the file lacks are
left out and reported.

See docs/templates.md for the format.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from ..errors import FCSFormatError, GatingError, TemplateError
from ..fcs.channel_kinds import is_scatter, is_time
from ..fcs.sample import data_tops
from ..populations import counting_input_problem
from ..yamlio import line_of
from ..yamlio import load as load_yaml
from ..transforms import Arcsinh, Linear, Logicle, logicle_width
from .datadriven import (BoundaryGate, ClusterGate, DiagonalGate, QuadrantThresholdGate,
                         SingletGate, ThresholdGate)
from .dimensions import FCS, UNCOMPENSATED, Dimension, EventValues
from .gates import (BooleanGate, EllipsoidGate, GateReference, PolygonGate, RectangleGate,
                    not_a_population)
from .methods import CLUSTER_QUANTILE
from .strategy import GatingStrategy

ROOT = "root"
_NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)", re.IGNORECASE)
# separators of words in a $PnS such as "CD4 FITC", or "CD4+CD20" (two antibodies, one colour)
_WORDS = re.compile(r"[\s;,/|+]+")
_PULSE = re.compile(r"[\s_-]+([AHW])$", re.IGNORECASE)   # "GFP-A": area, height, width
METHODS = ("singlet", "threshold", "tail", "cluster", "quadrant", "boundary", "diagonal")
FIXED = ("rectangle", "polygon", "ellipse", "and", "or", "not")


def spelling(label: str, keep: str = "") -> str:
    """A name without case, spaces or punctuation (but the characters in ``keep``):
    markers NK1.1, NK1/1 and NK1_1 agree; population names keep "+-", so FlowJo's
    "NK1_1+" is "NK1.1+" and not "NK1.1-"."""
    return "".join(ch for ch in label.casefold() if ch.isalnum() or ch in keep)


def _pulse(label: str) -> tuple[str, str]:
    """A $PnS or $PnN split into the marker or detector it names and its pulse
    measure: "GFP-A" -> ("gfp", "a"), as an Attune or Accuri names its channels;
    ("", "") without one."""
    found = _PULSE.search(label)
    return (spelling(label[:found.start()]), found.group(1).casefold()) if found else ("", "")


def _words(label: str) -> set[str]:
    """The words of a $PnS ("CD4 FITC", "CD21;FITC;530/30"), each also cut at its
    hyphens and underscores ("CD19-ECD", as Beckman Coulter's software writes marker and
    dye: cd19-ecd, cd19, ecd; "HLA-DR-PE": hla, hla-dr, dr-pe, pe; "CD3_FITC"), case
    aside."""
    out = set()
    for word in _WORDS.split(label.casefold()):
        cuts = [m.start() for m in re.finditer(r"[-_]", word)]
        out.update(w for w in [word] + [word[:c] for c in cuts] + [word[c + 1:] for c in cuts]
                   if w)
    return out


def _by_pulse(names, pulses, alias: str) -> list[str]:
    """The channels whose label ($PnS or $PnN, split by ``_pulse``) names ``alias``
    with a pulse measure: the area alone where it is measured as area and height (or
    width), as gates use it."""
    hits = [i for i, (marker, _) in enumerate(pulses) if marker and marker == alias]
    return [names[i] for i in _area_of(hits, pulses)]


def _area_of(hits: list[int], pulses) -> list[int]:
    """Of channels (indices) that name one marker, the area alone where it is measured as
    area and height (or width): A2004's `APC-A` and `APC-H`, both $PnS CD11c (``pulses``:
    each label split by ``_pulse``)."""
    area = [i for i in hits if pulses[i][1] == "a"]
    return area if len(area) == 1 else hits


_line = line_of


# ----------------------------------------------------------------------------- model
@dataclass(frozen=True)
class PopulationSpec:
    """One population of a template, as written."""

    name: str
    parent: str
    dims: tuple[str, ...]
    kind: str                 # a method name or a fixed gate kind
    args: dict
    line: int
    #: the template's ``qc`` lines for this population alone (a quadrant's: its corners')
    qc: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PanelMatch:
    """A template held against one file (see ``Template.match``)."""

    channels: dict[str, str]       # template marker -> the file's channel
    missing_markers: list[str]     # template markers the file does not have
    lacking: list[str]             # markers and channels whose absence left populations out
    kept: list[str]                # populations (gates) the file supports, in template order
    left_out: dict[str, str]       # population -> why it was left out
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # marker -> its channels
    n_populations: int = 0         # the template's populations, quadrants counted

    def describe_lacking(self) -> str:
        """What the file lacks, saying where a marker's name is on several channels."""
        return ", ".join(f"{m} (named on several channels: {', '.join(self.ambiguous[m])}; "
                         "add the one to use as an alias)" if m in self.ambiguous else m
                         for m in self.lacking)

    def qc_flag(self) -> str | None:
        """One line for the sample's QC flags, or None when nothing was left out."""
        if not self.left_out:
            return None
        names = list(self.left_out)
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        return (f"panel mismatch: the file lacks {self.describe_lacking()}; "
                f"{len(names)} population(s) left out: {shown}"
                + ("; it supports under half of the template's populations: a tube of "
                   "another panel, or markers named otherwise (add their names as aliases)"
                   if self.mostly_left_out else ""))

    @property
    def mostly_left_out(self) -> bool:
        """Whether the file supports under half of the template's populations: not a
        tube of this panel (a core facility's bead file, a mouse BAL tube and a DC
        stimulation tube gated with the post-transplant template kept 1-4 populations of
        37, 'done' with a warning beside the study's tubes)."""
        return 2 * len(self.left_out) > self.n_populations


@dataclass
class Template:
    """A validated gating template."""

    panel: str
    version: str
    markers: dict[str, tuple[str, ...]]
    compensation: str
    transforms: dict[str, Any]           # 'fluorescence', 'scatter', and per-channel overrides
    populations: list[PopulationSpec]
    counting: dict = field(default_factory=dict)
    qc: dict = field(default_factory=dict)
    source: str = "<template>"
    #: populations each population below or within them gets a percentage of, as
    #: Lymphocytes and Leukocytes do (``percent_of_<name>`` in the tables)
    percent_of: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """A fingerprint of what the template gates (markers, compensation, transforms,
        populations, counting, QC), not of its comments, layout or file: two results
        folders gated with the same panel and version but different gates differ here."""
        import hashlib
        import json

        content = {"markers": self.markers, "compensation": self.compensation,
                   "transforms": self.transforms, "counting": self.counting, "qc": self.qc,
                   **({"percent_of": list(self.percent_of)} if self.percent_of else {}),
                   "populations": [[p.name, p.parent, list(p.dims), p.kind, p.args]
                                   + ([p.qc] if p.qc else []) for p in self.populations]}
        text = json.dumps(content, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def population_qc(self) -> dict[str, dict]:
        """Each population's own ``qc`` lines, by name (a quadrant gate's for each of its
        corners; its ``expected`` names each corner's)."""
        out = {}
        for p in self.populations:
            quadrant = p.kind == "quadrant"
            for name in (p.args["quadrants"] if quadrant else (p.name,)) if p.qc else ():
                own = {k: v for k, v in p.qc.items() if k != "expected"}
                expected = p.qc.get("expected")
                if expected is not None and (not quadrant or name in expected):
                    own["expected"] = tuple(expected[name] if quadrant else expected)
                if own:
                    out[name] = own
        return out

    # -- per sample -----------------------------------------------------------
    def resolve_markers(self, sample) -> tuple[dict[str, str], list[str]]:
        """Template marker -> channel name in this file, and the markers not found."""
        found, missing, _ = self._resolve(sample)
        return found, missing

    def _resolve(self, sample) -> tuple[dict[str, str], list[str], dict[str, list[str]]]:
        """Each template marker's channel: an alias equal to a $PnS (any case), else
        to a $PnN, else spelled like exactly one $PnS but for case, spaces and
        punctuation ("NK1.1" for "NK1/1" or "NK1_1", "HLA-DR" for "HLADR"), else
        like a $PnS, then a $PnN, that names the marker with its pulse measure
        ("GFP-A", "GFP-H": the area), else a word of exactly one $PnS ("CD4 FITC",
        "CD21;FITC;530/30", "Viability / CD14", "CD19-ECD", "CD4+CD20": ``_words``).
        Also returns the markers not found and, among them, those whose name, spelling or
        word appears on several channels (so no guess is made: a CyTOF panel named CD14 on
        two metals, and the first was taken without a word)."""
        found: dict[str, str] = {}
        ambiguous: dict[str, list[str]] = {}
        names = sample.channels
        labels = [(m or "") for m in sample.markers]
        words = [_words(m) for m in labels]
        spelled = [spelling(m) for m in labels]
        pulses = [_pulse(m) for m in labels]
        detectors = [_pulse(n) for n in names]
        for marker, aliases in self.markers.items():
            for alias in aliases:
                key = alias.casefold()
                hits = [i for i, m in enumerate(labels) if m.casefold() == key]
                hits = [names[i] for i in _area_of(hits, detectors)] or \
                    [n for n in names if n.casefold() == key]
                if len(hits) == 1:
                    found[marker] = hits[0]
                    break
                if hits:
                    ambiguous.setdefault(marker, hits)
            else:
                for alias in aliases:
                    hits = [names[i] for i, m in enumerate(spelled) if m and m == spelling(alias)]
                    hits = hits or _by_pulse(names, pulses, spelling(alias))
                    hits = hits or _by_pulse(names, detectors, spelling(alias))
                    hits = hits or [names[i] for i, w in enumerate(words) if alias.casefold() in w]
                    if len(hits) == 1:
                        found[marker] = hits[0]
                        break
                    if hits:
                        ambiguous.setdefault(marker, hits)
        missing = [m for m in self.markers if m not in found]
        return found, missing, {m: h for m, h in ambiguous.items() if m not in found}

    def _transform_for(self, channel: str, marker: str | None):
        for key in (marker, channel):
            if key is not None and key in self.transforms.get("channels", {}):
                return self.transforms["channels"][key]
        scatter = is_scatter(channel) or is_time(channel)
        return self.transforms.get("scatter" if scatter else "fluorescence")

    @property
    def values_compensation(self) -> str:
        """The compensation of the fluorescence values the gates read, and so of the
        statistics and the AnnData's ``.X``: the file's spillover, or none at all."""
        return UNCOMPENSATED if self.compensation == "none" else FCS

    def dimension(self, name: str, channels: dict[str, str],
                  fitted: "_FileLogicles | None" = None) -> Dimension:
        """The gate dimension for a template name (a marker or a channel name);
        ``fitted`` gives the logicle of ``T: auto`` or ``W: auto`` channels in the file."""
        channel = channels.get(name, name)
        marker = name if name in channels else None
        scatter = is_scatter(channel) or is_time(channel)
        comp = UNCOMPENSATED if scatter else self.values_compensation
        transform = self._transform_for(channel, marker)
        if isinstance(transform, AutoLogicle):
            if fitted is None:
                raise GatingError(f"the logicle of {channel} is fitted to each file "
                                  "(T or W: auto); build the dimension through "
                                  "strategy_for(file)")
            transform = fitted(channel, comp, transform)
        return Dimension(channel, comp, transform)

    def channel_transforms(self, sample, channels) -> dict[str, object]:
        """The transform this template gives each of these channels of a file (a marker's
        own, or the template's fluorescence or scatter transform; logicle widths
        measured in the file): for the AnnData's channels no gate reads."""
        found = self.match(sample).channels
        marker_of = {channel: marker for marker, channel in found.items()}
        fitted = _FileLogicles(sample)
        return {c: self.dimension(marker_of.get(c, c), found, fitted).transform
                for c in channels}

    def match(self, sample) -> PanelMatch:
        """Which populations of this template the file can support, and why not the others.

        A population is left out when a dimension it needs (a template marker or a
        channel name) is not in the file, when its parent or a population its boolean
        gate refers to was left out, or when it is a quadrant of a left-out quadrant gate.
        """
        channels, missing, ambiguous = self._resolve(sample)
        available = set(channels) | set(sample.channels)
        left_out: dict[str, str] = {}
        blocking: list[str] = []
        kept: list[str] = []
        for spec in self.populations:
            parent = None if spec.parent == ROOT else spec.parent
            lacking = [d for d in spec.dims if d not in available]
            refs = [r for r in _boolean_refs(spec) if r in left_out]
            if lacking:
                reason = f"needs {', '.join(lacking)}, which this file lacks"
                blocking += [d for d in lacking if d not in blocking]
            elif parent is not None and parent in left_out:
                reason = f"its parent {parent!r} was left out"
            elif refs:
                reason = f"refers to {', '.join(refs)}, left out"
            else:
                kept.append(spec.name)
                continue
            left_out[spec.name] = reason
            for quadrant in spec.args.get("quadrants", {}) if spec.kind == "quadrant" else ():
                left_out[quadrant] = f"its quadrant gate {spec.name!r} was left out"
        n = sum(1 + (len(spec.args.get("quadrants", {})) if spec.kind == "quadrant" else 0)
                for spec in self.populations)
        return PanelMatch(channels=channels, missing_markers=missing, lacking=blocking,
                          kept=kept, left_out=left_out, ambiguous=ambiguous, n_populations=n)

    def strategy_for(self, sample, overrides: dict | None = None
                     ) -> tuple[GatingStrategy, list[str]]:
        """The concrete strategy for one file, and notes on populations left out.

        ``overrides`` maps population names to fixed gate specifications (the
        same syntax as in a template) that replace the template's gate for
        this sample. A file that supports none of the template's populations
        raises a ``GatingError`` naming the file and what it lacks.
        """
        if self.compensation == "file" and sample.spillover is None \
                and getattr(sample, "spillover_error", None):
            raise FCSFormatError(sample.path, f"the template {self.panel!r} compensates with "
                                 f"the file's own spillover matrix, but {sample.spillover_error}; "
                                 "give this file a readable $SPILLOVER or gate it with a "
                                 "template that says 'compensation: none'")
        found = self.match(sample)
        problem = self._override_names_problem(overrides or {})
        if problem:
            raise TemplateError(f"{_file_label(sample)}: {problem}")
        if not found.kept:
            raise GatingError(f"{_file_label(sample)}: template {Path(self.source).name} "
                              f"({self.panel}) cannot gate this file: it lacks "
                              f"{found.describe_lacking()}; the file's channels are "
                              f"{_channel_list(sample)}. Use a template for this panel or "
                              "add the file's names as aliases under the template's markers")
        strategy = GatingStrategy()
        fitted = _FileLogicles(sample)
        notes = [f"marker {m} is not in this file" for m in found.missing_markers]
        notes += [f"population {name!r} left out: {reason}"
                  for name, reason in found.left_out.items()]
        for spec in self.populations:
            if spec.name not in found.kept:
                continue
            parent = None if spec.parent == ROOT else spec.parent
            dims = [self.dimension(d, found.channels, fitted) for d in spec.dims]
            if overrides and spec.name in overrides:
                override = _validated_override(self, spec, overrides[spec.name])
                gate = _build(override, dims, parent)
                if override.args.get("note"):
                    notes.append(f"population {spec.name!r}: {override.args['note']}")
            else:
                gate = _build(spec, dims, parent)
                if spec.args.get("pooled"):
                    notes.append(f"population {spec.name!r} is pooled in the template but "
                                 "was found on this file alone (files gated together by "
                                 "'immunomon gate' share one cut)")
            strategy.add(gate)
        return strategy, notes

    def _override_names_problem(self, overrides: dict) -> str:
        """What keeps a sample's overrides from naming populations they can replace
        ("" if nothing)."""
        quadrants = {q: p.name for p in self.populations if p.kind == "quadrant"
                     for q in p.args["quadrants"]}
        for name in overrides:
            gate = quadrants.get(name, name if name in quadrants.values() else None)
            if gate is not None:
                # one fixed gate cannot stand for a quadrant gate's several populations
                what = f"a quadrant of the gate {gate!r}" if gate != name else "a quadrant gate"
                return (f"the overrides name {name!r}, {what}; one fixed gate cannot replace "
                        "a quadrant gate's populations: override the populations under it "
                        "instead")
        unknown = [name for name in overrides if name not in {p.name for p in self.populations}]
        if unknown:
            return (f"the overrides name {', '.join(map(repr, unknown))}, which template "
                    f"{Path(self.source).name} does not define")
        return ""

    def check_overrides(self, overrides: dict[str, dict], source) -> None:
        """Every sample's overrides (``read_overrides``) checked against this template
        before any file is gated, naming the overrides file ``source`` and the sample."""
        specs = {p.name: p for p in self.populations}
        for sample, gates in overrides.items():
            problem = self._override_names_problem(gates)
            try:
                if problem:
                    raise TemplateError(problem)
                for name, gate in gates.items():
                    _validated_override(self, specs[name], gate)
            except TemplateError as exc:
                raise TemplateError(f"{source}, sample {sample!r}: {exc}") from None

    def required_markers(self) -> list[str]:
        return list(self.markers)


class _FileLogicles:
    """The logicles of one file's ``T: auto`` and ``W: auto`` channels: T the channel's
    top of scale (``data_tops``), W measured once from at most ``max_events`` events
    spread over the acquisition (compensated as the gates will see them)."""

    def __init__(self, sample, max_events: int = 200_000):
        self.sample, self.max_events = sample, max_events
        self._values: EventValues | None = None
        self._tops: np.ndarray | None = None
        self._found: dict[tuple, Logicle] = {}

    def __call__(self, channel: str, compensation: str, spec: AutoLogicle) -> Logicle:
        key = (channel, compensation, spec)
        if key not in self._found:
            T = spec.T
            if T is None:
                if self._tops is None:
                    self._tops = data_tops(self.sample)
                T = float(self._tops[self.sample.channel_index(channel)])
            width = spec.W
            if width is None:
                if self._values is None:
                    step = max(1, self.sample.n_events // self.max_events)
                    thin = self.sample if step == 1 else replace(
                        self.sample, events=self.sample.events[::step])
                    self._values = EventValues(thin)
                v = np.asarray(self._values.channel(channel, compensation), dtype=np.float64)
                width = logicle_width(v[np.isfinite(v)], T, spec.M, spec.A)
            try:
                self._found[key] = Logicle(T, spec.fallback if width is None else width,
                                           spec.M, spec.A)
            except ValueError as exc:
                raise GatingError(f"{_file_label(self.sample)}: channel {channel}: logicle "
                                  f"with T {T:g} (T: auto takes the channel's top of "
                                  f"scale): {exc}") from None
        return self._found[key]


def _file_label(sample) -> str:
    return str(sample.path) if getattr(sample, "path", None) else "<sample>"


def _channel_list(sample, limit: int = 20) -> str:
    names = [f"{c} ({m})" if m and m != c else c for c, m in zip(sample.channels, sample.markers)]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")


# ----------------------------------------------------------------------------- building gates
def _boolean_refs(spec: PopulationSpec) -> list[str]:
    if spec.kind not in ("and", "or", "not"):
        return []
    return [r.lstrip("!") for r in spec.args["operands"]]


@dataclass(frozen=True)
class AutoLogicle:
    """A logicle transform fitted to each file. ``T`` None (``T: auto``): the channel's
    top of scale as its keywords declare it (``Channel.top``), so one template serves
    instruments of any range (262,144 on most BD instruments, 4,194,304 on a Cytek
    Aurora). ``W`` None (``W: auto``): the width measured from the spread of the
    channel's compensated negative events (``transforms.logicle_width``), ``fallback``
    where too few events are negative."""

    T: float | None = 262144.0
    M: float = 4.5
    A: float = 0.0
    W: float | None = None
    fallback: float = 0.5


def _transform(spec, where: str):
    if spec in (None, "none", "linear"):
        return None
    if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in TRANSFORM_PARAMS:
        kind, params = next(iter(spec.items()))
        params = params or {}
        known = TRANSFORM_PARAMS[kind]
        if not isinstance(params, dict) or any(k not in known for k in params):
            raise TemplateError(f"{where}: {kind} takes {', '.join(known)}, not {params!r}")
        auto = {k for k in ("T", "W")
                if kind == "logicle" and str(params.get(k)).strip().casefold() == "auto"}
        wrong = {k: v for k, v in params.items() if not _is_number(v) and k not in auto}
        if wrong:
            raise TemplateError(f"{where}: {kind} parameters must be numbers"
                                f"{' (T and W may be auto)' if kind == 'logicle' else ''}, "
                                f"not {wrong!r}")
        try:
            if kind == "logicle":
                T, W, M, A = (float(params[k]) if k in params and k not in auto else d
                              for k, d in (("T", 262144.0), ("W", 0.5), ("M", 4.5),
                                           ("A", 0.0)))
                Logicle(T, W, M, A)         # the parameters a file's T or W is fitted within
                if auto:
                    return AutoLogicle(None if "T" in auto else T, M, A,
                                       None if "W" in auto else W)
                return Logicle(T, W, M, A)
            if kind == "arcsinh":
                return Arcsinh(float(params.get("cofactor", 150)))
            if kind == "scale":
                return Linear(float(params.get("T", 262144)), float(params.get("A", 0.0)))
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"{where}: {exc}") from None
    raise TemplateError(f"{where}: transform must be 'linear', {{logicle: {{T, W, M, A}}}}, "
                        f"{{arcsinh: {{cofactor}}}} or {{scale: {{T, A}}}}, not {spec!r}")


def _build(spec: PopulationSpec, dims, parent):
    a = spec.args
    name = spec.name
    if spec.kind == "singlet":
        # the band compares area with height (or width) as the instrument measured them:
        # on a logicle scale their ratio means nothing (a docs-only template with scatter
        # on a logicle got a band of 0.993..1.006), so its channels are read untransformed
        dims = [replace(d, transform=None) for d in dims]
        return SingletGate(name, dims, n_mad=float(a.get("n_mad", 4.0)), parent=parent)
    if spec.kind == "boundary":
        return BoundaryGate(name, dims, parent=parent)
    if spec.kind in ("threshold", "tail"):
        method = "density" if spec.kind == "threshold" else "tail"
        args = {k: a[k] for k in _THRESHOLD_ARGS[method] if k in a and k != "side"}
        if method == "tail":
            args["side"] = a.get("side", "above")   # the cut lies on the population's side
        if "bounds" in args:
            args["bounds"] = tuple(args["bounds"])
        return ThresholdGate(name, dims, side=a.get("side", "above"), method=method,
                             args=args, parent=parent)
    if spec.kind == "cluster":
        pick = [(direction, spec.dims.index(dim)) for direction, dim in a["pick"]]
        return ClusterGate(name, dims, pick, n_components=int(a.get("components", 3)),
                           quantile=float(a.get("quantile", CLUSTER_QUANTILE)),
                           min_weight=float(a.get("min_weight", 0.0)), parent=parent)
    if spec.kind == "diagonal":
        return DiagonalGate(name, dims, a["negative"], side=a.get("side", "above"),
                            parent=parent)
    if spec.kind == "quadrant":
        quads = {q: tuple(sides) for q, sides in a["quadrants"].items()}
        return QuadrantThresholdGate.build(
            name, dims, quads, parent,
            x_method="tail" if a.get("x_method") == "tail" else "density",
            y_method="tail" if a.get("y_method") == "tail" else "density",
            x_args=dict(a.get("x_args", {})), y_args=dict(a.get("y_args", {})),
            sequential=a.get("sequential"), y_by_side=bool(a.get("y_by_side", True)),
            x_by_side=bool(a.get("x_by_side", False)))
    if spec.kind == "rectangle":
        return RectangleGate(name, dims, [tuple(b) for b in a["bounds"]], parent)
    if spec.kind == "polygon":
        return PolygonGate(name, dims, a["vertices"], parent)
    if spec.kind == "ellipse":
        return EllipsoidGate(name, dims, a["mean"], a["covariance"],
                             float(a["distance_square"]), parent)
    operands = [GateReference(r.lstrip("!"), r.startswith("!")) for r in a["operands"]]
    return BooleanGate(name, spec.kind, operands, parent)


# ----------------------------------------------------------------------------- schema
# What a template may say, and what each value must be. Unknown keys and wrong types are
# errors at load, naming the file, line and field, so a typo never passes silently.
TOP_KEYS = ("panel", "version", "markers", "compensation", "transforms", "counting", "qc",
            "percent_of", "populations")
POPULATION_KEYS = ("name", "parent", "dims", "method", "gate", "args", "qc")
TRANSFORM_KEYS = ("fluorescence", "scatter", "channels")
TRANSFORM_PARAMS = {"logicle": ("T", "W", "M", "A"), "arcsinh": ("cofactor",),
                    "scale": ("T", "A")}
COUNTING_KEYS = ("beads", "beads_per_test", "volume_ul")
def _percent_range(v) -> str | None:
    """A check: [low, high], percentages of the parent with 0 <= low <= high <= 100."""
    ok = isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) \
        and 0 <= v[0] <= v[1] <= 100
    return None if ok else f"must be [low, high], percentages of the parent (0 to 100), not {v!r}"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(lo: float | None = None, hi: float | None = None, *, closed: bool = False,
            integer: bool = False):
    """A check: a finite number (an integer if asked) above ``lo`` (at least, if
    ``closed``) and below ``hi``; returns what is wrong, or None."""
    what = "an integer" if integer else "a number"
    if lo is not None and hi is not None:
        what += f" from {lo:g} to {hi:g}" if closed else f" between {lo:g} and {hi:g}"
    elif lo is not None:
        what += f" of at least {lo:g}" if closed else f" above {lo:g}"

    def check(v):
        ok = _is_number(v) and (not integer or float(v).is_integer())
        ok = ok and (lo is None or (v >= lo if closed else v > lo))
        ok = ok and (hi is None or (v <= hi if closed else v < hi))
        return None if ok else f"must be {what}, not {v!r}"
    return check


def _choice(*allowed):
    def check(v):
        return None if v in allowed else \
            f"must be {' or '.join(map(repr, allowed))}, not {v!r}"
    return check


def _flag(v):
    """A yes or no: YAML's true or false (1 and 0 are numbers, not a yes or no)."""
    return None if isinstance(v, bool) else f"must be true or false, not {v!r}"


def _bounds(v):
    ok = isinstance(v, list) and len(v) == 2 and all(b is None or _is_number(b) for b in v)
    if ok and None not in v and not v[0] < v[1]:
        return f"must have min < max, not {v!r}"
    return None if ok else f"must be [min, max] (numbers, or null for an open end), not {v!r}"


_SIDE = _choice("above", "below")
_DENSITY_ARGS = {"side": _SIDE, "bounds": _bounds, "adjust": _number(0),
                 "min_prominence": _number(0, 1, closed=True), "fallback_sd": _number(0),
                 "valley": _choice("deepest", "first", "last"),
                 "expect": _choice("mostly-positive", "mostly-negative"),
                 "foot": _choice("upper", "lower"), "majority": _flag}
_TAIL_ARGS = {"side": _SIDE, "n_sd": _number(0), "quantile": _number(0, 1),
              "fdr": _number(0, 1)}
_THRESHOLD_ARGS = {"density": _DENSITY_ARGS, "tail": _TAIL_ARGS}
# The arguments of each data-driven method; None: checked with the dimensions in hand.
_POOLED = {"pooled": _flag}      # one cut for all the files gated together
METHOD_ARGS = {
    "singlet": {"n_mad": _number(0)},
    "boundary": {},
    "threshold": {**_DENSITY_ARGS, **_POOLED},
    "tail": {**_TAIL_ARGS, **_POOLED},
    "cluster": {"components": _number(1, 20, closed=True, integer=True), "pick": None,
                "quantile": _number(0, 1), "min_weight": _number(0, 1, closed=True)},
    "quadrant": {"quadrants": None, "x_method": _choice("density", "tail"),
                 "y_method": _choice("density", "tail"), "x_args": None, "y_args": None,
                 "sequential": _choice("above", "below", None),
                 "y_by_side": _flag, "x_by_side": _flag},
    "diagonal": {"side": _SIDE, "negative": None},
}


def _check_mapping(source: str, mapping, known, where: str, line: int = 0) -> dict:
    """``mapping`` must be a mapping whose keys are in ``known`` (a tuple, or a dict
    of checks); each check that is not None is applied to its value."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        _fail(source, _line(mapping) or line, f"{where} must be a mapping, not {mapping!r}")
    for key, value in mapping.items():
        if key not in known:
            _fail(source, _line(mapping, key) or line,
                  f"{where}: unknown field {key!r}; known fields: {', '.join(map(str, known))}")
        check = known.get(key) if isinstance(known, dict) else None
        problem = check(value) if check is not None else None
        if problem:
            _fail(source, _line(mapping, key) or line, f"{where}.{key} {problem}")
    return mapping


# ----------------------------------------------------------------------------- validation
def _fail(source: str, line: int, message: str):
    where = f"{source}, line {line}" if line else source
    raise TemplateError(f"{where}: {message}")


def _population(source: str, raw, index: int, known: dict[str, int],
                dims_known: set[str]) -> PopulationSpec:
    line = _line(raw)
    if not isinstance(raw, dict):
        _fail(source, line, f"population {index + 1} must be a mapping with name, parent, "
                            "dims and a method or gate")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail(source, _line(raw, "name"), f"population {index + 1}: 'name' is missing "
                                          "(or not text)")
    label = f"population {name!r}"
    _check_mapping(source, raw, POPULATION_KEYS, label)
    if name in known or name == ROOT:
        _fail(source, _line(raw, "name"), f"{label}: the name is already used "
                                          f"(line {known.get(name, 0)})")
    parent = raw.get("parent", ROOT)
    if not isinstance(parent, str):
        _fail(source, _line(raw, "parent"), f"{label}: parent must be a population name "
                                            f"(or root), not {parent!r}")
    if parent != ROOT and parent not in known:
        _fail(source, _line(raw, "parent"), f"{label}: parent {parent!r} is not defined "
                                            "above it")
    dims = raw.get("dims", [])
    if isinstance(dims, str):
        dims = [dims]
    if not isinstance(dims, list) or not all(isinstance(d, str) for d in dims):
        _fail(source, _line(raw, "dims"), f"{label}: dims must be a list of marker or "
                                          "channel names")
    for d in dims:
        if d not in dims_known and not (is_scatter(d) or is_time(d)):
            _fail(source, _line(raw, "dims"), f"{label}: dimension {d!r} is neither a "
                                              "marker of the template nor a scatter channel")
    twice = sorted({d for d in dims if dims.count(d) > 1})
    if twice:
        _fail(source, _line(raw, "dims"), f"{label}: dimension {twice[0]!r} is named twice "
                                          "in dims")
    # a population's own QC lines (0: none), a helper population looked at, not reported;
    # the share of its parent the lab expects (a quadrant gate's, corner by corner)
    count = _number(0, closed=True, integer=True)
    own_qc = dict(_check_mapping(source, raw.get("qc"),
                                 {"min_events": count, "min_reportable": count,
                                  "expected": None}, f"{label}: qc", _line(raw, "qc")))
    if "expected" in own_qc:
        quads = (raw.get("args") or {}).get("quadrants") if raw.get("method") == "quadrant" \
            else None
        ranges = own_qc["expected"] if quads is not None else {name: own_qc["expected"]}
        if not isinstance(ranges, dict) or (quads is not None and not set(ranges) <= set(quads)):
            _fail(source, _line(raw, "qc"), f"{label}: qc.expected of a quadrant gate maps "
                                            "its corners to [low, high], e.g. {CD4 T: [30, 80]}")
        for corner, bounds in ranges.items():
            if problem := _percent_range(bounds):
                _fail(source, _line(raw, "qc"), f"{label}: qc.expected {problem}")
    has_method, has_gate = "method" in raw, "gate" in raw
    if has_method == has_gate:
        _fail(source, line, f"{label}: give exactly one of 'method' (data-driven) or "
                            "'gate' (fixed)")
    if has_gate and "args" in raw:
        _fail(source, _line(raw, "args"), f"{label}: args belong to data-driven methods; a "
                                          "fixed gate takes its parameters inside 'gate'")
    if has_method:
        kind = raw["method"]
        if kind not in METHODS:
            _fail(source, _line(raw, "method"), f"{label}: unknown method {kind!r}; "
                                                f"methods are {', '.join(METHODS)}")
        args = _check_mapping(source, raw.get("args"), METHOD_ARGS[kind], f"{label}: args",
                              _line(raw, "args"))
        need = {"singlet": 2, "threshold": 1, "tail": 1, "quadrant": 2,
                "diagonal": 2}.get(kind)
        if need is not None and len(dims) != need:
            _fail(source, _line(raw, "dims"), f"{label}: method {kind!r} uses {need} "
                                              f"dimension(s), got {len(dims)}")
        if kind in ("cluster", "boundary") and not dims:
            _fail(source, _line(raw, "dims") or line, f"{label}: method {kind!r} needs at "
                                                      "least one dimension")
        if kind == "cluster":
            pick = args.get("pick")
            ok = isinstance(pick, list) and pick and all(
                isinstance(p, list) and len(p) == 2 and p[0] in ("min", "max") and p[1] in dims
                for p in pick)
            if not ok:
                _fail(source, _line(raw, "args"), f"{label}: cluster needs args.pick, a list "
                                                  "of [min|max, dimension], e.g. [[min, SSC-A]]")
            named = [p[1] for p in pick]
            if twice := sorted({d for d in named if named.count(d) > 1}):
                _fail(source, _line(raw, "args"), f"{label}: cluster's args.pick names "
                                                  f"{', '.join(twice)} twice; each dimension "
                                                  "ranks the components once")
        if kind == "diagonal":
            negative = args.get("negative")
            if not isinstance(negative, str) or negative not in known:
                _fail(source, _line(raw, "args"), f"{label}: diagonal needs args.negative, a "
                                                  "population defined above it that neither "
                                                  f"marker stains (e.g. 'T cells'), not "
                                                  f"{negative!r}")
        if kind == "quadrant":
            quads = args.get("quadrants")
            ok = isinstance(quads, dict) and quads and all(
                isinstance(s, list) and len(s) == 2 and set(s) <= {"above", "below"}
                for s in quads.values())
            if not ok:
                _fail(source, _line(raw, "args"), f"{label}: quadrant needs args.quadrants "
                                                  "mapping names to [x side, y side], each "
                                                  "'above' or 'below'")
            for q in quads:
                if q in known:
                    _fail(source, _line(raw, "args"), f"{label}: quadrant name {q!r} is "
                                                      "already used")
                if q == name:
                    # a child naming it as parent could mean the gate or the quadrant
                    _fail(source, _line(raw, "args"), f"{label}: a quadrant has the gate's "
                                                      "own name; name the gate apart from "
                                                      "its quadrants (e.g. 'T subsets')")
            for axis in ("x", "y"):
                method = args.get(f"{axis}_method") or "density"
                _check_mapping(source, args.get(f"{axis}_args"), _THRESHOLD_ARGS[method],
                               f"{label}: args.{axis}_args ({method})", _line(raw, "args"))
        return PopulationSpec(name, parent, tuple(dims), kind, args, line, own_qc)
    gate = raw["gate"]
    if not isinstance(gate, dict) or len(gate) != 1 or next(iter(gate)) not in FIXED:
        _fail(source, _line(raw, "gate"), f"{label}: gate must be one of "
                                          f"{', '.join(FIXED)} with its parameters")
    kind, params = next(iter(gate.items()))
    spec = _fixed_spec(source, _line(raw, "gate"), label, name, parent, dims, kind, params,
                       known)
    return PopulationSpec(name, parent, tuple(dims), kind, spec, line, own_qc)


def _fixed_spec(source, line, label, name, parent, dims, kind, params, known) -> dict:
    if kind in ("and", "or", "not"):
        ops = params if isinstance(params, list) else [params]
        if not all(isinstance(o, str) for o in ops):
            _fail(source, line, f"{label}: {kind} takes population names ('!name' for the "
                                "complement)")
        for o in ops:
            if o.lstrip("!") not in known:
                _fail(source, line, f"{label}: {kind} refers to {o.lstrip('!')!r}, which is "
                                    "not defined above it")
        if (kind == "not") != (len(ops) == 1):
            _fail(source, line, f"{label}: 'not' takes one population, 'and'/'or' several"
                  + ("" if kind == "not" else " (an 'and' or 'or' of one population is that "
                     "population: to give it another name, rename the gate that makes it)"))
        return {"operands": ops}
    if not isinstance(params, dict):
        _fail(source, line, f"{label}: {kind} parameters must be a mapping")
    fields = {"rectangle": ("bounds",), "polygon": ("vertices",),
              "ellipse": ("mean", "covariance", "distance_square")}[kind]
    _check_mapping(source, params, fields, f"{label}: {kind}", line)
    for key in fields:
        if key not in params:
            _fail(source, line, f"{label}: {kind} needs {key}")
    if kind == "rectangle":
        bounds = params["bounds"]
        if not (isinstance(bounds, list) and len(bounds) == len(dims)
                and all(_bounds(b) is None for b in bounds)):
            _fail(source, line, f"{label}: rectangle bounds must be one [min, max] per "
                                f"dimension (numbers, null for an open end; min < max), not "
                                f"{bounds!r}")
        if [None, None] in bounds:
            # Gating-ML's rectangles bound every dimension they name, at one end at least
            _fail(source, line, f"{label}: rectangle bounds [null, null] leave dimension "
                                f"{dims[bounds.index([None, None])]!r} open at both ends; "
                                "give it a min or a max, or leave it out of dims")
        return {"bounds": bounds}
    if kind == "polygon":
        v = params["vertices"]
        if not (isinstance(v, list) and len(v) >= 3 and len(dims) == 2 and all(
                isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in v)):
            _fail(source, line, f"{label}: polygon needs two dims and at least 3 vertices "
                                f"[x, y] of numbers, not {v!r}")
        return {"vertices": v}
    n = len(dims)
    mean, cov, d2 = params["mean"], params["covariance"], params["distance_square"]
    if not (isinstance(mean, list) and len(mean) == n and all(map(_is_number, mean))):
        _fail(source, line, f"{label}: ellipse mean must be {n} numbers, not {mean!r}")
    if not (isinstance(cov, list) and len(cov) == n and all(
            isinstance(r, list) and len(r) == n and all(map(_is_number, r)) for r in cov)):
        _fail(source, line, f"{label}: ellipse covariance must be {n} rows of {n} numbers, "
                            f"not {cov!r}")
    # Gating-ML reads any invertible matrix (its compliance suite has a 3-D one that is
    # neither symmetric nor definite); a template's ellipse is one a scientist drew
    c = np.asarray(cov, dtype=np.float64)
    if not (np.allclose(c, c.T) and np.linalg.eigvalsh(c).min() > 1e-12 * np.abs(c).max()):
        _fail(source, line, f"{label}: ellipse covariance {cov!r} must be symmetric and "
                            "positive definite (a negative definite one holds every event)")
    problem = _number(0)(d2)
    if problem:
        _fail(source, line, f"{label}: ellipse distance_square {problem}")
    return dict(params)


def _validated_override(template: Template, spec: PopulationSpec, gate: dict) -> PopulationSpec:
    """A fixed gate replacing a population's for one sample; ``note`` (optional) says
    where it came from, among the sample's notes."""
    label = f"override for population {spec.name!r}"
    note = gate.get("note") if isinstance(gate, dict) else None
    gate = {k: v for k, v in gate.items() if k != "note"} if isinstance(gate, dict) else gate
    if not isinstance(gate, dict) or len(gate) != 1 or next(iter(gate)) not in FIXED[:3] \
            or not isinstance(note, (str, type(None))):
        raise TemplateError(f"{label}: give one fixed gate (rectangle, polygon or ellipse) "
                            "and, if you like, a note saying where it came from (text)")
    kind, params = next(iter(gate.items()))
    args = _fixed_spec(template.source, 0, label, spec.name, spec.parent, list(spec.dims),
                       kind, params, {})
    return PopulationSpec(spec.name, spec.parent, spec.dims, kind,
                          {**args, **({"note": note} if note else {})}, spec.line, spec.qc)


def parse_template(text: str, source: str = "<template>") -> Template:
    """Validate a template given as YAML text."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        _fail(source, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")
    if not isinstance(doc, dict):
        _fail(source, 1, "a template is a mapping with panel, version, markers and populations")
    _check_mapping(source, doc, TOP_KEYS, "template")
    for key in ("panel", "version", "markers", "populations"):
        if key not in doc:
            _fail(source, _line(doc), f"'{key}' is missing")
    for key in ("panel", "version"):
        if not isinstance(doc[key], (str, int, float)) or isinstance(doc[key], bool):
            _fail(source, _line(doc, key), f"{key} must be text, not {doc[key]!r}")
    markers_raw = doc["markers"]
    if not isinstance(markers_raw, dict):      # empty for a template of scatter gates only
        _fail(source, _line(doc, "markers"), "markers must map each marker to its aliases")
    markers = {}
    for m, aliases in markers_raw.items():
        if not isinstance(m, str):
            _fail(source, _line(markers_raw, m), f"marker {m!r}: names must be text")
        aliases = [aliases] if isinstance(aliases, str) else (aliases or [])
        if not all(isinstance(a, str) for a in aliases):
            _fail(source, _line(markers_raw, m), f"marker {m!r}: aliases must be text")
        markers[str(m)] = tuple(dict.fromkeys([str(m), *aliases]))
    comp = doc.get("compensation", "file")
    if comp not in ("file", "none"):
        _fail(source, _line(doc, "compensation"), "compensation must be 'file' (the FCS "
                                                  "file's own spillover) or 'none'")
    tr_raw = _check_mapping(source, doc.get("transforms"), TRANSFORM_KEYS, "transforms",
                            _line(doc, "transforms"))
    if not isinstance(tr_raw.get("channels") or {}, dict):
        _fail(source, _line(tr_raw, "channels"), "transforms.channels must map channel or "
                                                 "marker names to transforms")
    transforms = {
        "fluorescence": _transform(tr_raw.get("fluorescence", {"logicle": {}}),
                                   f"{source}, line {_line(tr_raw, 'fluorescence')}: "
                                   "transforms.fluorescence"),
        "scatter": _transform(tr_raw.get("scatter", "linear"),
                              f"{source}, line {_line(tr_raw, 'scatter')}: transforms.scatter"),
        "channels": {k: _transform(v, f"{source}, line {_line(tr_raw.get('channels'), k)}: "
                                      f"transforms.channels.{k}")
                     for k, v in (tr_raw.get("channels") or {}).items()},
    }
    pops_raw = doc["populations"]
    if not isinstance(pops_raw, list) or not pops_raw:
        _fail(source, _line(doc, "populations"), "populations must be a non-empty list")
    known: dict[str, int] = {}
    quadrant_gates: dict[str, list[str]] = {}
    populations = []
    for i, raw in enumerate(pops_raw):
        spec = _population(source, raw, i, known, set(markers))
        if spec.parent in quadrant_gates:
            _fail(source, _line(raw, "parent"), f"population {spec.name!r}: parent "
                  + not_a_population(spec.parent, quadrant_gates[spec.parent]))
        populations.append(spec)
        known[spec.name] = spec.line
        if spec.kind == "quadrant":
            quadrant_gates[spec.name] = list(spec.args["quadrants"])
            for q in spec.args["quadrants"]:
                known[q] = spec.line
    counting = _check_mapping(source, doc.get("counting"), COUNTING_KEYS, "counting",
                              _line(doc, "counting"))
    if counting and counting.get("beads") not in known:
        _fail(source, _line(doc, "counting"), f"counting.beads names {counting.get('beads')!r}, "
                                              "which is no population of the template")
    counting = dict(counting)
    for key in ("beads_per_test", "volume_ul"):
        value = counting.get(key)
        if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
            value = counting[key] = float(value)       # YAML reads 5e4 as text
        problem = None if value is None or isinstance(value, str) else \
            counting_input_problem(key, value)
        if problem:
            _fail(source, _line(doc["counting"], key), f"counting.{problem} (or the name of "
                                                       "the FCS keyword that holds it)")
    count = _number(1, closed=True, integer=True)
    qc = _check_mapping(source, doc.get("qc"), {"min_events": count, "min_reportable": count},
                        "qc", _line(doc, "qc"))
    percent_of = doc.get("percent_of") or []
    percent_of = [percent_of] if isinstance(percent_of, str) else percent_of
    if not isinstance(percent_of, list) or not all(isinstance(p, str) for p in percent_of):
        _fail(source, _line(doc, "percent_of"), "percent_of must list population names")
    for name in percent_of:
        if name not in known:
            _fail(source, _line(doc, "percent_of"), f"percent_of names {name!r}, which is no "
                                                    "population of the template")
    return Template(panel=str(doc["panel"]), version=str(doc["version"]), markers=markers,
                    compensation=comp, transforms=transforms, populations=populations,
                    counting=counting, qc=qc, source=source,
                    percent_of=tuple(dict.fromkeys(percent_of)))


def builtin_templates() -> dict[str, Path]:
    """Templates shipped with immunomon, by name (file name without .yaml)."""
    found: dict[str, Path] = {}
    candidates = [Path(__file__).resolve().parents[3] / "gating"]  # a source checkout
    try:
        candidates.append(Path(str(resources.files("immunomon") / "templates")))
    except (ModuleNotFoundError, TypeError):
        pass
    for folder in candidates:
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")):
                found.setdefault(p.stem, p)
    return found


def load_template(name_or_path) -> Template:
    """Load a template by built-in name or by path, or from a mapping of the YAML's
    keys (a notebook's dict: checked as a file is; its errors name no line)."""
    if isinstance(name_or_path, Template):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        try:
            text = yaml.safe_dump(dict(name_or_path), sort_keys=False)
        except yaml.YAMLError as exc:
            raise TemplateError(f"a template mapping holds values YAML cannot write "
                                f"(lists, mappings, text and numbers only): {exc}") from None
        return parse_template(text, "<template mapping>")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TemplateError(f"a template is a shipped template's name, a YAML file's path or "
                            f"a mapping of its keys, not {type(name_or_path).__name__}")
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        shipped = builtin_templates()
        if str(name_or_path) not in shipped:
            raise TemplateError(f"no template named {str(name_or_path)!r}; built-in templates "
                                f"are: {', '.join(shipped) or 'none'}; or give a path")
        path = shipped[str(name_or_path)]
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such template file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot be read ({exc})") from None
    return parse_template(text, str(path))
