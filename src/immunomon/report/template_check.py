"""The ``immunomon template check`` page: one per file, every data-driven gate with the
density it cut, the peaks found, the cut and the rule that placed it.

matplotlib (Agg, no pyplot state) is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ImmunomonError
from ..fcs.channel_kinds import is_scatter, is_width
from .gate_plots import (GATE_COLOUR, GatePlotter, axis_label, find_gate, plot_gate,
                         safe_filename)
from .pages import _document, esc, link, write_text_atomic

LEVEL_COLOUR = {"ok": "#2a6a2a", "info": "#555", "warning": "#8a5a00", "failure": "#a00"}


def uncounted_bumps(centres, density, peaks, least: float = 0.05) -> list[float]:
    """Places of the density's local maxima that stand out by ``least`` of its highest
    point or more but are no peak the method counts (``peaks``: a bump must stand out by
    two standard errors of the density, which a few dozen events do not)."""
    from ..gating.peaks import prominent_peaks

    d = np.asarray(density, dtype=float)
    if d.size < 3 or not np.isfinite(d).all() or d.max() <= 0:
        return []
    tall, _ = prominent_peaks(d, least * d.max())
    step = float(centres[1] - centres[0])
    return [float(centres[i]) for i in tall
            if all(abs(centres[i] - p) > 3 * step for p in peaks)]


def density_figure(check, sample, path) -> Path | None:
    """The density of every dimension a threshold or quadrant gate cut (and, dotted,
    ten times higher), with the peaks (triangles), the cut (red line) in a band of one
    bandwidth either side (the events its population's share near the cut counts are
    those inside it) and where other settings would cut (dashed, labelled with the
    setting). None when the gate cut nothing one-dimensional (clusters, singlets)."""
    cuts = [c for c in check.cuts if c.centres.size]
    if not cuts:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * len(cuts), 2.6), dpi=100)
    FigureCanvasAgg(fig)
    for i, cut in enumerate(cuts):
        ax = fig.add_subplot(1, len(cuts), i + 1)
        ax.fill_between(cut.centres, cut.density, color="#9ab", alpha=0.6, linewidth=0)
        ax.plot(cut.centres, cut.density, color="#345", linewidth=1)
        # ten times higher, dotted: a plateau or bump of a few percent shows beside a peak
        peak = float(cut.density.max())
        ax.plot(cut.centres, np.minimum(10 * cut.density, 1.02 * peak), color="#345",
                linewidth=0.7, linestyle=":")
        ax.set_ylim(0, 1.05 * peak)
        ax.text(0.99, 0.97, "dotted: x10", transform=ax.transAxes, fontsize=6,
                color="#555", ha="right", va="top")
        for p in cut.peaks:
            ax.plot([p], [np.interp(p, cut.centres, cut.density)], marker="v", color="#222",
                    markersize=6)
        # bumps the eye sees that the method does not count (under two standard errors
        # of the density: a few dozen events), hollow: a '1 peak' title over two visible
        # bumps puzzled a docs-only scientist
        bumps = uncounted_bumps(cut.centres, cut.density, cut.peaks)
        for b in bumps:
            ax.plot([b], [np.interp(b, cut.centres, cut.density)], marker="v", color="#222",
                    markersize=6, markerfacecolor="none")
        span = float(cut.centres[-1] - cut.centres[0])
        for v, how in cut.others:       # where other settings would cut, dashed
            if any(abs(v - c) < 0.01 * span for c in cut.values):
                continue
            ax.axvline(v, color="#777", linewidth=0.8, linestyle="--")
            ax.text(v, 0.97 * peak, _short_setting(how), rotation=90, fontsize=6,
                    color="#555", ha="right", va="top")
        for v in cut.values:
            # the events within one bandwidth of the cut: those its population's share
            # near the cut counts
            ax.axvspan(v - cut.near, v + cut.near, color=GATE_COLOUR, alpha=0.12, linewidth=0)
            ax.axvline(v, color=GATE_COLOUR, linewidth=1.5)
        ax.set_xlabel(axis_label(sample, cut.dimension) + _scale(cut.dimension)
                      + (f"; the {cut.axis} cut for events {cut.applies_to} the "
                         f"{cut.other_axis} cut" if cut.applies_to else ""), fontsize=8)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
        # no finite cut: a population taken as absent, or one that keeps its parent whole
        kept_all = check.parent_events and sum(check.populations.values()) == check.parent_events
        where = (f"cut at {', '.join(f'{v:.4g}' for v in cut.values)}" if cut.values
                 else "no cut: every event kept" if kept_all else "no cut: nothing gated")
        pooled = check.method.endswith("(pooled)")
        here = check.method.endswith("(pooled, this file's events)")
        ax.set_title(f"{len(cut.peaks)} peak{'s' if len(cut.peaks) != 1 else ''}"
                     + (f" (+{len(bumps)} bump{'s' if len(bumps) != 1 else ''} too small to "
                        "count)" if bumps else "") + f"; {where}"
                     + (f" (density of the events {cut.among} the other cut)" if cut.among
                        else " (density of all events)" if cut.applies_to
                        else " (density of the files' pooled events)" if pooled
                        else " (this file's events; the cut of the pooled ones)" if here
                        else ""),
                     fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.98, bottom=0.2, top=0.86, wspace=0.15)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def _short_setting(setting: str) -> str:
    """A dashed line's label: the setting that would cut there, in a word or two."""
    for long, short in (("valley: ", ""), (" (the default)", ""), (" round it", ""),
                        ("expect: ", ""), ("min_prominence: ", "min_prom. ")):
        setting = setting.replace(long, short)
    return setting


def check_figures(result, checks, directory) -> dict[str, list[Path]]:
    """Per gate: its density figure, its gate plot (the parent's events with the
    gate drawn) and, for a one-dimensional gate, the same cut against forward scatter
    and, for a marker's cut, against side scatter too (``context_gates``), written into
    ``directory``."""
    directory = Path(directory)
    out: dict[str, list[Path]] = {}
    plotter = None
    for i, check in enumerate(checks):
        stem = f"{i:02d}_{safe_filename(check.gate)}"
        files = [density_figure(check, result.sample, directory / f"{stem}_density.png")]
        if check.parent_events:
            plotter = plotter or GatePlotter()
            files.append(plot_gate(result, check.gate, directory / f"{stem}_gate.png",
                                   plotter=plotter))
            for suffix, context in [*zip(("context", "context_side"),
                                         context_gates(result, check.gate)),
                                    *(("context_lineage", g)
                                      for g in lineage_context(result, check.gate))]:
                files.append(plotter.plot(result, check.gate,
                                          directory / f"{stem}_{suffix}.png", gate=context))
        out[check.gate] = [f for f in files if f is not None]
    return out


def boolean_rectangle(result, gate_id: str):
    """A boolean population as the rectangle it is, where it is one: an ``and`` of
    one-dimensional cuts (thresholds, found or fixed, each perhaps complemented, or a
    ``not`` of one) on at most two dimensions, drawn on the events of its operands'
    common parent (CD4 T cells as ``and: [CD8- T, CD4+ T]`` on CD4 x CD8 of all T
    cells); None for any other (an ``or``, a polygon, a cut on both ends complemented),
    and where the rectangle, drawn on that parent's events, would not hold exactly the
    population's: a cut made within a narrower population (monocytes as ``and: [MHCII+,
    MHCII+ CD11c+ CD14+]`` drawn on MHCII x CD14 of the live cells showed 23 CD11c- events
    inside their rectangle), a ``not`` taken within another parent than its operand's
    (classical monocytes as monocytes but the CD16+ ones)."""
    from ..gating import RectangleGate
    from ..gating.gates import BooleanGate, dimension_label

    def parent_of(ref):
        return result.strategy.gate(ref).parent

    leaves: list[str] = []              # the cuts' own populations
    met: set[str] = set()               # populations the and-gates require

    def cuts(ref, complement=False):
        """{(dimension name, compensation): (dimension, [lo, hi])} of a population, open
        ends infinite, or None."""
        gate = result.gates.get(ref)
        if isinstance(gate, BooleanGate):
            if gate.operator == "not":            # not X' is X' complemented once more
                op = gate.operands[0]
                return cuts(op.ref, complement == op.complement)
            if gate.operator != "and" or complement:
                return None
            out: dict = {}
            met.update(op.ref for op in gate.operands if not op.complement)
            for op in gate.operands:              # and: each dimension's intervals met
                part = cuts(op.ref, op.complement)
                if part is None:
                    return None
                for key, (dim, (lo, hi)) in part.items():
                    old = out.get(key, (dim, (-np.inf, np.inf)))[1]
                    out[key] = (dim, (max(lo, old[0]), min(hi, old[1])))
            return out
        if not isinstance(gate, RectangleGate) or len(gate.dimensions) != 1:
            return None
        leaves.append(ref)
        dim, (lo, hi) = gate.dimensions[0], gate.bounds[0]
        lo, hi = (-np.inf if lo is None else lo), (np.inf if hi is None else hi)
        if complement:
            if np.isfinite(lo) and np.isfinite(hi):
                return None                   # outside an interval: two pieces
            lo, hi = (-np.inf, lo) if np.isfinite(lo) else (hi, np.inf)
        return {(dimension_label(dim), getattr(dim, "compensation", "")): (dim, (lo, hi))}

    gate = result.gates.get(gate_id)
    if not isinstance(gate, BooleanGate):
        return None
    found = cuts(gate_id)
    if not found or len(found) > 2 or any(not lo < hi for _, (lo, hi) in found.values()):
        return None
    # the operands' common parent when they share one (all the T cells), else its own
    operands = [op.ref for op in gate.operands]
    while len(operands) == 1 and isinstance(result.gates.get(operands[0]), BooleanGate):
        operands = [op.ref for op in result.gates[operands[0]].operands]
    parents = {parent_of(op) for op in operands}
    parent = parents.pop() if len(parents) == 1 else gate.parent
    # each cut made on the events drawn, on a population holding them, or on one the gate
    # requires anyway (CD4 among CD8- T cells, and CD8-): one made within another,
    # narrower population carries that population's conditions too, which no rectangle
    # on these axes shows
    holding = {None, parent, *(result.ancestors(parent) if parent is not None else ()), *met}
    if any(parent_of(leaf) not in holding for leaf in leaves):
        return None
    dims, bounds = zip(*found.values())
    rect = RectangleGate(gate_id, dims, [tuple(None if np.isinf(v) else float(v) for v in b)
                                         for b in bounds], parent)
    # and drawn only where it holds the population exactly among the events drawn
    drawn = result.mask(parent) if parent is not None else np.ones(result.n_events, bool)
    inside = rect.contains([np.asarray(result.values.values(d)) for d in dims]) & drawn
    return rect if np.array_equal(inside, result.mask(gate_id)) else None


def boolean_axes(result, gate_id: str):
    """The axes a boolean population that is no rectangle is seen on: an open rectangle
    (it cuts nothing) on the first two dimensions its operands were cut on, found
    through nested booleans, on the population's parent (CD8 T cells as CD8+ CD4- and
    CD8b+ T cells, seen on CD4 x CD8 of the T cells); None for other gates or where the
    operands hold fewer than two dimensions."""
    from ..gating import RectangleGate
    from ..gating.gates import BooleanGate

    gate = result.gates.get(gate_id)
    if not isinstance(gate, BooleanGate):
        return None
    dims: dict = {}

    def gather(ref, seen):
        if ref in seen:
            return
        seen.add(ref)
        try:
            _, operand = find_gate(result, ref)
        except ImmunomonError:
            return
        if isinstance(operand, BooleanGate):
            for op in operand.operands:
                gather(op.ref, seen)
            return
        for d in getattr(operand, "dimensions", ()):
            dims.setdefault(str(getattr(d, "name", d)), d)

    for op in gate.operands:
        gather(op.ref, set())
    if len(dims) < 2:
        return None
    chosen = list(dims.values())[:2]
    return RectangleGate(gate_id, chosen, [(-np.inf, None)] * 2, gate.parent)


def boolean_figures(result, directory, start: int = 0) -> dict[str, Path]:
    """Each boolean population drawn on its operands' common parent, written into
    ``directory``: a rectangle where it is one (``boolean_rectangle``), else its own
    events over its parent's on two of the dimensions its operands cut
    (``boolean_axes``)."""
    directory = Path(directory)
    out, plotter = {}, None
    for gid in result.gates:
        rect = boolean_rectangle(result, gid)
        axes = boolean_axes(result, gid) if rect is None else None
        if rect is None and axes is None:
            continue
        plotter = plotter or GatePlotter()
        name = f"{start + len(out):02d}_{safe_filename(gid)}_gate.png"
        path = plotter.plot(result, gid, directory / name, gate=rect or axes,
                            highlight=rect is None)
        if path is not None:
            out[gid] = path
    return out


#: Axes a one-dimensional gate is seen against, in order of preference: cell size first
#: (large cells dimly bright for a viability dye, debris low in every channel).
CONTEXT_AXES = ("FSC-A", "FSC-H", "FSC", "SSC-A", "SSC-H", "SSC")


def _forward(name: str) -> bool:
    return is_scatter(name) and name.lstrip().upper().startswith("F")


def context_gates(result, gate_id: str) -> list:
    """A one-dimensional threshold's cut as two-dimensional gates, open along a scatter
    axis: against forward scatter (side scatter for a forward-scatter cut, or where the
    file has no forward scatter) and, for a marker's cut, against side scatter too
    (CD45 x SSC-A is how a cytometrist reads blood: granulocytes, monocytes and
    lymphocytes apart); each axis as the template transforms it where a gate uses it,
    else as stored. None (an empty list) for other gates or a file without scatter."""
    from dataclasses import replace

    from ..gating import Dimension, RectangleGate

    gate = result.gates.get(gate_id)
    if not isinstance(gate, RectangleGate) or len(gate.dimensions) != 1:
        return []
    cut = gate.dimensions[0]
    cut_name = str(getattr(cut, "name", ""))
    used = {getattr(d, "name", None): d for g in result.gates.values()
            for d in getattr(g, "dimensions", ())}
    # a forward-scatter cut is seen against side scatter, the usual scatter plot; other
    # instruments' scatter names (Beckman Coulter's "FS INT", "SS Log") after BD's
    axes = list(CONTEXT_AXES) + [c for c in result.sample.channels if is_scatter(c)
                                 and not is_width(c) and c not in CONTEXT_AXES]
    present = [a for a in sorted(axes, key=lambda a: _forward(cut_name) and _forward(a))
               if a in result.sample.channels and a != cut_name]
    if not present:
        return []
    chosen = present[:1]
    if not is_scatter(cut_name):
        chosen += [a for a in present if not _forward(a) and _forward(chosen[0])][:1]
    return [replace(gate, dimensions=(cut, used.get(a, Dimension(a))),
                    bounds=(gate.bounds[0], (-np.inf, None))) for a in chosen]


def lineage_context(result, gate_id: str) -> list:
    """A one-dimensional marker cut against the marker that made its parent, the nearest
    ancestor gate's first marker other than its own, as an expert reads it (TCRgd against
    CD3 among T cells, NK1.1 against CD3): one gate, open along that axis, or none (a
    scatter cut, other gates, no such ancestor)."""
    from dataclasses import replace

    from ..gating import RectangleGate

    gate = result.gates.get(gate_id)
    if not isinstance(gate, RectangleGate) or len(gate.dimensions) != 1:
        return []
    cut = gate.dimensions[0]
    if is_scatter(str(getattr(cut, "name", ""))):
        return []
    for ancestor in result.ancestors(gate_id):
        owner = result.gates.get(result.strategy.owner(ancestor))
        dims = [getattr(d, "dimension", d) for d in getattr(owner, "dividers", ())] \
            or list(getattr(owner, "dimensions", ()))
        marker = next((d for d in dims if hasattr(d, "name") and d.name != cut.name
                       and not is_scatter(d.name)), None)
        if marker is not None:
            return [replace(gate, dimensions=(cut, marker),
                            bounds=(gate.bounds[0], (-np.inf, None)))]
    return []


def check_page(path, *, sample_name: str, template: str, checks, figures,
               warnings=(), populations=(), booleans=None) -> Path:
    """Write the check page of one file and return its path. ``populations``: one
    record (population, parent, count, percent_of_parent) per population;
    ``booleans``: boolean populations' figures by population (``boolean_figures``)."""
    path = Path(path)
    page_dir = path.parent.resolve()
    rows = []
    for c in checks:
        pops = "; ".join(f"{esc(p)}: {n:,} ({100 * n / c.parent_events:.1f}%)"
                         if c.parent_events else f"{esc(p)}: {n:,}"
                         for p, n in c.populations.items())
        cuts = "; ".join(f"{esc(cut.label())}: " + ", ".join(f"{v:.4g}" for v in cut.values)
                         for cut in c.cuts) or "-"
        rows.append(f'<tr><td><a href="#{esc(safe_filename(c.gate))}">{esc(c.gate)}</a></td>'
                    f"<td>{esc(c.method)}</td><td>{esc(c.parent or 'all events')}</td>"
                    f"<td>{c.parent_events:,}</td><td>{pops}</td><td>{cuts}</td>"
                    f'<td style="color:{LEVEL_COLOUR[c.level]}">{esc(c.level)}'
                    f"{' (rule)' if c.fell_back else ''}</td></tr>")
    sections = []
    for c in checks:
        imgs = "".join(f'<img src="{link(f, page_dir)}" alt="{esc(c.gate)}" loading="lazy">'
                       for f in figures.get(c.gate, ()))
        notes = "".join(f"<li>{esc(n)}</li>" for n in c.notes)
        msgs = "".join(f'<li style="color:{LEVEL_COLOUR[c.level]}">{esc(m)}</li>'
                       for m in c.messages if m not in c.notes)
        sections.append(f'<h3 id="{esc(safe_filename(c.gate))}">{esc(c.gate)} '
                        f"<small>({esc(c.method)})</small></h3>"
                        + (f"<ul>{notes}{msgs}</ul>" if notes or msgs else
                           "<p class=\"none\">A valley between two peaks placed the cut.</p>"
                           if c.cuts else "")
                        + f'<div class="plots">{imgs}</div>')
    if booleans:
        sections.append("<h2>Boolean populations</h2><p>Each drawn as the rectangle its "
                         "cuts make, on its operands' common parent.</p>" + "".join(
                             f'<h3 id="{esc(safe_filename(gid))}">{esc(gid)}</h3><div '
                             f'class="plots"><img src="{link(f, page_dir)}" alt="{esc(gid)}" '
                             'loading="lazy"></div>' for gid, f in booleans.items()))
    warn = "".join(f"<li>{esc(w)}</li>" for w in warnings)
    body = (f"<h1>{esc(sample_name)}: template check</h1><p>Template: {esc(template)}. "
            "Each data-driven gate below shows the density of its parent in the dimension "
            "it cut, the peaks found (triangles; hollow: bumps too small to count), the cut "
            "(red) and the rule that placed it; "
            "dashed lines mark where other settings would cut (the valley between other "
            "peaks, with the <code>valley</code> that picks it; a lone peak's other end, "
            "with its <code>expect</code>). "
            "A gate that needs an argument shows it here first: see the template guide "
            "(valley, bounds, expect, components). Fixed gates (rectangles, polygons, "
            "ellipses) are drawn on their parent's events.</p>"
            + (f"<h2>File notes</h2><ul class=\"warnings\">{warn}</ul>" if warn else "")
            + "<h2>Gates</h2><table><thead><tr><th>gate</th><th>method</th><th>parent</th>"
              "<th>parent events</th><th>populations</th><th>cuts</th><th>QC</th></tr></thead>"
            + f"<tbody>{''.join(rows)}</tbody></table>" + _population_table(populations)
            + "".join(sections))
    img_css = "<style>.plots img{max-width:100%}</style>"
    return write_text_atomic(path, _document(f"{sample_name}: template check", body)
                             .replace("</head>", img_css + "</head>", 1))


def gates_page(path, records, template: str) -> Path:
    """One page for a check of several files: each gate, then each file's plots of it
    side by side (its density, the cut on its parent, the scatter views), with the file's
    count, % of parent and QC level, so one gate is read across the run as a scientist
    reads a montage (docs-only scientists made their own). ``records``: ``check_files``'s,
    with each file's ``figures`` (gate -> paths relative to the check's folder, where the
    page is written)."""
    path = Path(path)
    page_dir = path.parent.resolve()
    read = [r for r in records if r.get("status") != "failed"]
    order = list(dict.fromkeys(g["gate"] for r in read for g in r["gates"]))
    sections = []
    for gate in order:
        rows = []
        for r in read:
            record = next((g for g in r["gates"] if g["gate"] == gate), None)
            if record is None:
                continue
            counts = "; ".join(
                f"{esc(p)} {n:,}" + (f" ({100 * n / record['parent_events']:.1f}%)"
                                     if record["parent_events"] else "")
                for p, n in record["populations"].items())
            imgs = "".join(f'<img src="{link(page_dir / f, page_dir)}" alt="{esc(gate)}" '
                           'loading="lazy">' for f in r.get("figures", {}).get(gate, ()))
            page = link(Path(r["page"]), page_dir)
            rows.append(f'<div class="file"><p><a href="{page}#{esc(safe_filename(gate))}">'
                        f'{esc(r["sample"])}</a>: {counts} <span style="color:'
                        f'{LEVEL_COLOUR[record["level"]]}">{esc(record["level"])}</span></p>'
                        f'<div class="plots">{imgs}</div></div>')
        sections.append(f'<h2 id="{esc(safe_filename(gate))}">{esc(gate)}</h2>' + "".join(rows))
    toc = " &middot; ".join(f'<a href="#{esc(safe_filename(g))}">{esc(g)}</a>' for g in order)
    body = (f"<h1>Each gate across the files</h1><p>Template: {esc(template)}; "
            f"{len(read)} files. Each file's page has the rules and notes.</p>"
            f"<p>{toc}</p>" + "".join(sections))
    css = "<style>.plots img{max-width:32%;margin-right:0.5%}.file{margin-bottom:1em}</style>"
    return write_text_atomic(path, _document("template check: each gate across the files",
                                             body).replace("</head>", css + "</head>", 1))


def _population_table(populations) -> str:
    """Every population with its count, boolean and fixed gates' ones too."""
    if not populations:
        return ""
    rows = "".join(f"<tr><td>{esc(p['population'])}</td>"
                   f"<td>{esc(p['parent'] or 'all events')}</td><td>{p['count']:,}</td>"
                   f"<td>{_percent(p['percent_of_parent'])}</td>"
                   f"<td>{_percent(p.get('percent_near_cut'))}</td></tr>" for p in populations)
    return ("<h2>Populations</h2><table><thead><tr><th>population</th><th>parent</th>"
            "<th>events</th><th>% of parent</th><th>% near its cut</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>% near its cut: the share of the population's "
            "events within one density bandwidth of a cut found in this file; from 10% its "
            "count turns on where the cut lies (see the gate's density).</p>")


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _scale(dim) -> str:
    """", logicle W 0.85": the width of a logicle (or hyperlog) axis, measured per file
    with W: auto, which shapes the negative peak the cut was found beside."""
    transform = getattr(dim, "transform", None)
    w = getattr(transform, "W", None)
    return f", {transform.gatingml_name} W {w:g}" if w is not None else ""
