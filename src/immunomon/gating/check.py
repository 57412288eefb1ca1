"""``immunomon template check``: what each data-driven gate found in a file, and why.

For every data-driven gate of a template applied to one file: the events of
its parent, the density of each dimension it cut (the same smoothed density
the methods use), the peaks found, the cut placed, the rule that placed it
(valley, end of a lone peak and on which side, a clipped bound) and the QC
level of what came out. A scientist writing a template for a new panel reads
this to see which gate needs an argument (``valley``, ``bounds``, ``expect``,
``components``) before gating a study with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from .. import qc
from . import methods
from .datadriven import FoundBand, FoundDiagonal
from .gates import EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate

#: fixed gates a check page draws
FIXED_SHAPES = (RectangleGate, PolygonGate, EllipsoidGate)


@dataclass
class Cut:
    """One dimension a gate cut: where, and what the density looked like."""

    dimension: object
    values: tuple[float, ...]           # the cut(s) placed in this dimension
    peaks: tuple[float, ...]            # modes the density method counts as populations
    centres: np.ndarray = field(repr=False)
    density: np.ndarray = field(repr=False)
    among: str = ""                     # the events the density is of, when not all:
                                        # "below" or "above" the other axis's cut
    applies_to: str = ""                # a quadrant's y cut for one side of its x cut:
                                        # "below" or "above" ("" where it crosses the plot)
    axis: str = "x"                     # a quadrant divider's axis: "x" or "y"
    #: where other settings would cut this density, with the setting (``methods.other_cuts``)
    others: tuple[tuple[float, str], ...] = ()
    marker: str = ""                    # the channel's $PnS, where the file names one
    #: one kernel bandwidth of the parent's values: events this close inside the cut are
    #: the ones its population's share near the cut counts (``near_cut``)
    near: float = 0.0

    @property
    def other_axis(self) -> str:
        return "x" if self.axis == "y" else "y"

    def label(self) -> str:
        """The dimension's name, and the side of the other axis's cut a per-side cut
        serves."""
        side = f" (events {self.applies_to} the {self.other_axis} cut)" if self.applies_to \
            else ""
        name = _dim_name(self.dimension)
        named = f"{self.marker} ({name})" if self.marker and self.marker != name else name
        return named + side


@dataclass
class GateCheck:
    """One data-driven gate as it was resolved in one file."""

    gate: str
    method: str
    parent: str | None
    parent_events: int
    populations: dict[str, int]         # population -> events
    notes: tuple[str, ...]
    fell_back: bool
    level: str                          # worst QC level of what this gate produced ("ok"
                                        # where it raised no flag)
    messages: tuple[str, ...]           # the QC messages of this gate
    cuts: list[Cut]

    def to_dict(self) -> dict:
        return {"gate": self.gate, "method": self.method, "parent": self.parent,
                "parent_events": self.parent_events, "populations": self.populations,
                "notes": list(self.notes), "fell_back": self.fell_back,
                "level": self.level, "messages": list(self.messages),
                "cuts": [{"dimension": _dim_name(c.dimension), "values": list(c.values),
                          "peaks": list(c.peaks), "among": c.among or "all",
                          "applies_to": c.applies_to or "all", "bandwidth": c.near,
                          "other_cuts": [{"value": v, "setting": how} for v, how in c.others]}
                         for c in self.cuts]}


def _dim_name(dimension) -> str:
    return str(getattr(dimension, "name", dimension))


def _marker(sample, dimension) -> str:
    """The $PnS of a dimension's channel, where the file names one ("" otherwise)."""
    name = _dim_name(dimension)
    return (sample.markers[sample.channels.index(name)] or "") \
        if name in sample.channels else ""


def _density_of(values: np.ndarray, args: dict, scale=None
                ) -> tuple[np.ndarray, np.ndarray, tuple, list]:
    """The density and peaks the threshold methods see for these values (events
    piled at a scale's end left out, as ``methods.density_on_scale`` leaves them), and
    where other settings would cut it (``methods.other_cuts``)."""
    raised = args.get("min_prominence", methods.MIN_PROMINENCE)
    try:
        x, _, centres, density, bandwidth, peaks, _ = methods.density_on_scale(
            values, adjust=args.get("adjust", 1.0), min_prominence=raised, scale=scale)
    except methods.TooFewEvents:
        return np.zeros(0), np.zeros(0), (), []
    others = methods.other_cuts(centres, density, peaks)
    if args.get("majority"):
        # a valley that leaves under half the events on the population's side is one
        # `majority` passes over: the dashed line there is no cut this gate would make
        side = args.get("side", "above")
        others = [(v, how + (f" (majority passes it over: under half the events lie "
                             f"{side} it)" if how.startswith("valley")
                             and methods.share_on_side(x, v, side) < 0.5 else ""))
                  for v, how in others]
    if raised > methods.MIN_PROMINENCE:
        # the valleys of the peaks a raised min_prominence hid, to compare with
        every = methods.find_peaks(centres, density, n_events=x.size, bandwidth=bandwidth)
        others += [(v, f"{how}, min_prominence: {methods.MIN_PROMINENCE:g}")
                   for v, how in methods.other_cuts(centres, density, every)
                   if how.startswith("valley") and all(abs(v - w) > 1e-12 for w, _ in others)]
    return centres, density, tuple(float(centres[i]) for i in peaks), sorted(others)


def _threshold_cuts(template_gate, found, columns, scales=()) -> list[Cut]:
    """Per cut dimension: the parent's density, its peaks and where the cut fell."""
    sides, axes = [""], ["x"]
    if isinstance(found, QuadrantGate):
        dims = [d.dimension for d in found.dividers]
        cuts = [tuple(d.values) for d in found.dividers]
        # each divider's axis and, where it was cut on each side of the other axis's
        # cut, its side: "<gate>.x", "<gate>.y.below", ...
        names = [d.id[len(found.id) + 1:].split(".") for d in found.dividers]
        axes = [n[0] for n in names]
        sides = [n[1] if len(n) > 1 else "" for n in names]
        args = [getattr(template_gate, f"{axis}_args", {}) for axis in axes]
    else:
        dims = list(found.dimensions)
        cuts = [tuple(v for v in b if v is not None and np.isfinite(v)) for b in found.bounds]
        args = [getattr(template_gate, "args", {})]
    # a quadrant divider may have been found among the events on one side of the other
    # axis's cut (the y cut for the x divider, the x cut for each y divider)
    found_in = getattr(found, "found_in", ("all", "all"))
    found_at = getattr(found, "found_at", ()) or \
        (tuple(cuts[1 - i][0] for i in range(2)) if len(cuts) == 2 else ())
    out = []
    for i, (dim, values, cut, a) in enumerate(zip(dims, columns, cuts, args)):
        values = np.asarray(values, dtype=np.float64)
        if i < len(found_in) and found_in[i] != "all" and len(columns) >= 2:
            # the other axis's events: the column of its first divider
            other = np.asarray(columns[next(j for j, axis in enumerate(axes)
                                            if axis != axes[i])], dtype=np.float64)
            at = found_at[i]
            values = values[other >= at] if found_in[i] == "above" else values[other < at]
        centres, density, peaks, others = _density_of(
            values, a, scales[i] if i < len(scales) else None)
        among = found_in[i] if i < len(found_in) and found_in[i] != "all" else ""
        out.append(Cut(dim, cut, peaks, centres, density, among,
                       sides[i] if i < len(sides) else "", axes[i] if i < len(axes) else "x",
                       tuple(others),
                       near=methods.kernel_bandwidth(np.asarray(columns[i], dtype=float))))
    return out


def _own_axis_cuts(result, found, rows) -> list[Cut]:
    """A singlet band's or a diagonal's one axis (each event's pulse ratio over the
    singlets' trend, x - y): its density, peaks and cuts, drawn as a threshold's are."""
    from .near_cut import cut_lines, own_axis

    values = own_axis(result, found, rows)
    values = values[np.isfinite(values)]
    lines = cut_lines(found)
    if values.size < 2 or not lines:
        return []
    first, second = (_marker(result.sample, d) or _dim_name(d) for d in found.dimensions)
    if isinstance(found, FoundBand):
        ratio = second if found.band.width else f"{first}/{second}"
        name = f"{ratio} over the singlets' trend"
    else:
        name = f"{first} - {second}"
    centres, density, peaks, _ = _density_of(values, {})
    return [Cut(name, tuple(v for _, _, v, _ in lines), peaks, centres, density,
                near=methods.kernel_bandwidth(values))]


def check_result(result, *, skip=()) -> list[GateCheck]:
    """A ``GateCheck`` for every data-driven gate of a ``GatingResult``, in order, and
    for every fixed rectangle, polygon or ellipse (a singlet band drawn by hand, an
    override), so that the page draws it on its parent's events; none for boolean gates
    or the populations in ``skip``."""
    flags = qc.gate_flags(result)
    checks = []
    for gid, found in result.gates.items():
        method = getattr(found, "method", "")
        if gid in skip:
            continue
        if not method:
            if not isinstance(found, FIXED_SHAPES):
                continue                              # boolean gates
            method = f"fixed {type(found).__name__.removesuffix('Gate').lower()}"
        template_gate = result.strategy.gate(gid)
        parent = template_gate.parent
        rows = (np.arange(result.n_events) if parent is None
                else np.flatnonzero(result.mask(parent)))
        if isinstance(found, QuadrantGate):
            pops = {q.id: result.count(q.id) for q in found.quadrants}
            dims = [d.dimension for d in found.dividers]
        else:
            pops = {gid: result.count(gid)}
            dims = list(found.dimensions)
        columns = [np.asarray(result.values.values(d, rows)) for d in dims]
        threshold = "threshold" in method or method == "quadrant thresholds"
        scales = [result.values.signal_scale(d) for d in dims]
        if not rows.size:
            cuts = []
        elif threshold:
            cuts = _threshold_cuts(template_gate, found, columns, scales)
        elif isinstance(found, (FoundBand, FoundDiagonal)):
            cuts = _own_axis_cuts(result, found, rows)
        else:
            cuts = []
        for cut in cuts:
            cut.marker = _marker(result.sample, cut.dimension)
        mine = [f for f in flags if f.population in (gid, *pops)]
        level = qc.LEVELS[max(qc.LEVELS.index(f.level) for f in mine)] if mine else "ok"
        checks.append(GateCheck(gid, method, parent, int(rows.size), pops,
                                tuple(getattr(found, "notes", ()) or ()),
                                bool(getattr(found, "fell_back", False)), level,
                                tuple(f.message for f in mine), cuts))
    return checks


def _pooled_check(name: str, values: np.ndarray, gate, found) -> GateCheck:
    """A pooled gate as one check: found once, on the pooled events of its parent."""
    inside = int(np.count_nonzero(found.contains([values])))
    return GateCheck(name, f"{getattr(found, 'method', '')} (pooled)", gate.parent,
                     int(values.size), {name: inside}, tuple(getattr(found, "notes", ())),
                     bool(getattr(found, "fell_back", False)), "ok", (),
                     _threshold_cuts(gate, found, [values]))


#: how a pooled gate's check on one file's page is named (``GateCheck.method``)
IN_THIS_FILE = "(pooled, this file's events)"


def _in_file(check: GateCheck, result) -> GateCheck:
    """A pooled gate's check on one file's page: its cut that of the pooled events (the
    page's notes say how many), its counts and density this file's: the pooled counts
    had been read as the file's own (a check of two tubes listed 3,095 CD16+ CD56+ cells
    in each, which held 1,557 and 1,538), and a docs-only scientist could not see the
    run's one CD69 cut on an unstimulated well's events beside a stimulated one's."""
    parent = result.count(check.parent) if check.parent else result.n_events
    gate = result.gates[check.gate]             # the pooled cut, as a fixed rectangle
    rows = (np.arange(result.n_events) if check.parent is None
            else np.flatnonzero(result.mask(check.parent)))
    values = np.asarray(result.values.values(gate.dimensions[0], rows), dtype=np.float64)
    cuts = _threshold_cuts(None, gate, [values], (result.values.signal_scale(
        gate.dimensions[0]),)) if rows.size else []
    for cut in cuts:
        cut.marker = _marker(result.sample, cut.dimension)
    method = check.method.removesuffix("(pooled)") + IN_THIS_FILE
    return replace(check, method=method, parent_events=parent, cuts=cuts,
                   populations={p: result.count(p) for p in check.populations})


def _file_density(check: GateCheck, sample, directory):
    """A pooled gate's density on one file's events, with the pooled cut."""
    from ..report.gate_plots import safe_filename
    from ..report.template_check import density_figure

    return density_figure(check, sample,
                          directory / f"{safe_filename(check.gate)}_density_this_file.png")


def _pooled_figures(checks, sample, directory) -> dict[str, list]:
    """Each pooled gate's density figure, drawn once for every page of a check."""
    from ..report.gate_plots import safe_filename
    from ..report.template_check import density_figure

    out = {}
    for c in checks:
        figure = density_figure(c, sample, directory / f"{safe_filename(c.gate)}_density.png")
        out[c.gate] = [figure] if figure else []
    return out


def unlike_the_others(records, *, points: float = 20.0, factor: float = 3.0,
                      least: int = 4, fence: float = 1.5) -> dict[str, list[dict]]:
    """Per file of a check, the populations whose share of their parent lies far from
    the other files': ``points`` percentage points or more from the median of the
    others, ``factor`` times it or a ``factor``-th of it (shares under 1% counted as
    1%), and beyond the others' own spread (Tukey's fences: ``fence`` interquartile
    ranges past their quartiles), where ``least`` files or more were gated. A gate that
    behaves otherwise in one file (channels named in another order, a lone peak taken
    for the other population) shows there, as biology that differs this much also
    does: worth a look either way. Four LST exports whose channels were listed out of
    order gave DN T 64% of the T cells where the other files gave 0.2-5%, and 'ok'.
    The fences keep files of two kinds apart from notes: two healthy donors' and two
    lymphoma patients' whole-blood LST files drew some thirty notes, each file's share
    far from a median that the other kind made."""
    gated = [r for r in records if r.get("status") != "failed" and r.get("populations")]
    if len(gated) < least:
        return {}
    shares: dict[str, dict[str, float]] = {}
    for r in gated:
        for p in r["populations"]:
            # a population on all events too: a lineage gate on the whole file (a quadrant
            # whose CD8+ side took a CD4 cut under 15 far events: CD8 T 0.07%, the other
            # files 24-52%) shows there first
            if p["percent_of_parent"] is not None:
                shares.setdefault(p["population"], {})[r["sample"]] = p["percent_of_parent"]
    found: dict[str, list[dict]] = {}
    for population, by_file in shares.items():
        if len(by_file) < least:
            continue
        names, values = list(by_file), np.array(list(by_file.values()), dtype=float)
        # past 50 files one file moves the others' median and quartiles by next to
        # nothing: all the files' serve, once (a folder of thousands stays linear)
        whole = np.percentile(values, [50, 25, 75]) if values.size >= 50 else None
        for k, (sample, share) in enumerate(zip(names, values)):
            others, q1, q3 = whole if whole is not None else np.percentile(
                np.delete(values, k), [50, 25, 75])
            others, share = float(others), float(share)
            spread = fence * (q3 - q1)
            ratio = max(share, 1.0) / max(others, 1.0)
            if (abs(share - others) >= points and not 1 / factor < ratio < factor
                    and not q1 - spread <= share <= q3 + spread):
                found.setdefault(sample, []).append(
                    {"population": population, "percent_of_parent": share,
                     "others_median": others})
    return found


def unlike_lines(found: dict[str, list[dict]]) -> list[str]:
    """``unlike_the_others``'s findings as the lines ``template check`` and ``gate``
    print, one per file and population."""
    return [f"{sample}: {u['population']} is {u['percent_of_parent']:.1f}% of its parent, "
            f"the other files' median {u['others_median']:.1f}%: look at its page"
            for sample, rows in found.items() for u in rows]


def populations_across(records):
    """The populations of every file of a check side by side: one row per population
    (its parent beside it, in the template's order), one column per file, the
    population's percentage of its parent (a population the file cannot have, or whose
    parent is empty, blank)."""
    import pandas as pd

    rows = [{"population": p["population"], "parent": p["parent"], "sample": r["sample"],
             "percent_of_parent": p["percent_of_parent"]}
            for r in records if r.get("populations") for p in r["populations"]]
    if not rows:
        return pd.DataFrame()
    long = pd.DataFrame(rows)
    order = list(dict.fromkeys(long["population"]))
    wide = long.pivot(index="population", columns="sample", values="percent_of_parent")
    wide = wide.reindex(order).astype(float).round(2)
    parents = long.drop_duplicates("population").set_index("population")["parent"]
    wide.insert(0, "parent", parents.reindex(order).fillna("(all events)"))
    wide.columns.name = None
    return wide


def check_files(files, template, out_dir, *, progress=None,
                exclude_anomalies: bool = True) -> list[dict]:
    """Gate each file as ``immunomon gate`` would (a template's pooled gates found on
    all the files together; ``exclude_anomalies`` as its ``--keep-anomalies`` says) and
    write its check page into
    ``out_dir/<sample>/check.html``; returns one record per file (``sample``,
    ``file``, ``status``, ``page``, ``qc``: the warnings and failures no gate's record
    lists (the whole file's, small populations'), ``gates``: ``GateCheck.to_dict``
    records, ``pooled``: the pooled gates' notes, ``populations``: every population's
    parent, count and percentage of its parent, ``transforms``: each channel's transform
    as gated (its fitted logicle width), or ``error``). A file that cannot be
    read or gated is recorded and the others go on."""
    from pathlib import Path

    from ..columns import rows
    from ..errors import ImmunomonError
    from ..fcs.datasets import read_fcs_to_gate
    from ..report.template_check import boolean_figures, check_figures, check_page
    from .pooled import pooled_gates, pooled_populations
    from .run import free_name, gate_sample, safe_name, transforms_used

    out_dir = Path(out_dir)
    files = [Path(f) for f in files]
    # pooled gates as `immunomon gate` finds them on these files together (a preview of
    # the cut a run of them shares; each page's notes give it)
    pooled_names = pooled_populations(template)
    seen: dict = {}
    pooled = (pooled_gates(files, template, keep=seen, exclude_anomalies=exclude_anomalies)[0]
              if len(files) > 1 and pooled_names else None)
    # each pooled gate as one more check on every page, its density that of the pooled
    # events (drawn once, with the first file gated)
    pooled_checks = [_pooled_check(p, *seen[p]) for p in pooled_names if p in seen]
    pooled_figures: dict[str, list] = {}
    records, used = [], set()
    for path in files:
        name = free_name(safe_name(path.stem), used.__contains__)     # one page each
        used.add(name)
        try:
            gating = gate_sample(read_fcs_to_gate(path), template, name=name,
                                 overrides=pooled, exclude_anomalies=exclude_anomalies)
            own = check_result(gating.result, skip=pooled_names if pooled else ())
            checks = own + [_in_file(c, gating.result) for c in pooled_checks]
            if pooled_checks and not pooled_figures:
                pooled_figures = _pooled_figures(pooled_checks, gating.result.sample,
                                                 out_dir / "pooled")
            # the warnings and failures no gate's record lists: what concerns the whole
            # file (a scale that does not fit it, markers it lacks, unstable acquisition)
            # and small populations, so that a status always comes with its reason
            listed = {m for c in checks for m in c.messages}
            sample_qc = [f for f in map(qc.as_flag, gating.qc_flags)
                         if f.level != "info" and f.message not in listed]
            folder = out_dir / name
            figures = {**check_figures(gating.result, own, folder / "plots"), **pooled_figures}
            for c in checks[len(own):]:        # beside the pooled density, this file's
                mine = _file_density(c, gating.result.sample, folder / "plots")
                figures[c.gate] = figures.get(c.gate, []) + ([mine] if mine else [])
            # every population, fixed and boolean ones too (APC as HLA-DR+ not monocytes);
            # a top-level population's parent is all events (None), an empty parent's
            # percentage none (None)
            populations = [{"population": str(r["population"]),
                            "parent": r["parent"] if isinstance(r["parent"], str) else None,
                            "count": int(r["count"]),
                            "percent_of_parent": float(r["percent_of_parent"])
                            if np.isfinite(r["percent_of_parent"]) else None,
                            "percent_near_cut": float(r["percent_near_cut"])
                            if np.isfinite(r["percent_near_cut"]) else None}
                           for r in rows(gating.table_columns)]
            # events the time check left out of every gate (information when few, so
            # not in ``sample_qc``): the page says how many, as `gate` does
            left_out = [f"{gating.events_excluded:,} of {gating.events_total:,} events "
                        f"({gating.events_excluded / gating.events_total:.1%}) lie in "
                        "anomalous time bins and are left out of every gate "
                        "(--keep-anomalies keeps them)"] if gating.events_excluded else []
            page = check_page(folder / "check.html", sample_name=name,
                              template=f"{template.panel} (version {template.version})",
                              checks=checks, figures=figures,
                              warnings=left_out + [f.message for f in sample_qc]
                              + gating.warnings + gating.notes, populations=populations,
                              booleans=boolean_figures(gating.result, folder / "plots",
                                                       start=len(own)))
            records.append({"sample": name, "file": str(path), "status": gating.status,
                            "page": str(page), "events": gating.events_total,
                            "events_excluded": gating.events_excluded,
                            "qc": [f.to_dict() for f in sample_qc],
                            "gates": [c.to_dict() for c in checks],
                            "pooled": [n for n in gating.notes if any(
                                n.startswith(f"population {q!r}") for q in pooled_names)],
                            "populations": populations,
                            # each channel's transform as this file was gated with it (a
                            # `W: auto` width, to fix before pooling a channel), as
                            # summary.json has it
                            "transforms": transforms_used(gating.result),
                            # the plots of each gate, relative to the check's folder
                            "figures": {g: [Path(os.path.relpath(f, out_dir)).as_posix()
                                            for f in fs] for g, fs in figures.items()}})
        except ImmunomonError as exc:
            records.append({"sample": name, "file": str(path), "status": "failed",
                            "error": str(exc)})
        if progress is not None:
            progress(records[-1])
    return records
