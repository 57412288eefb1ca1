"""Gate plots: the events of a gate's parent, as the gate saw them, with the gate on top.

Two dimensions: a 2-D histogram with a logarithmic colour scale (empty bins
left white); one dimension: a histogram. Values are those the gate was
applied to (compensated and transformed: ``result.values``), so the drawn
gate and the density share one coordinate system. Gates with more than two
dimensions are drawn in their first two (an ellipsoid as its projection).
Boolean gates have no geometry and get no plot.

matplotlib (Agg, no pyplot state) is imported inside the functions.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ImmunomonError
from ..gating import (BooleanGate, Dimension, EllipsoidGate, PolygonGate, QuadrantGate,
                      RectangleGate)
from ..gating.gates import distinct_dimensions
from ..gating.strategy import gating_result

GATE_COLOUR = "#e4002b"          # the gate outline: one colour, easy to spot on viridis
FIGSIZE = (4.6, 4.0)             # inches
DPI = 100


# -- pure helpers -------------------------------------------------------------------
def find_gate(result, gate_id: str):
    """(gate id, concrete gate) for a gate id, or for a quadrant's population id."""
    if gate_id in result.gates:
        return gate_id, result.gates[gate_id]
    for gid, gate in result.gates.items():
        if isinstance(gate, QuadrantGate) and any(q.id == gate_id for q in gate.quadrants):
            return gid, gate
    raise ImmunomonError(f"no gate {gate_id!r} in this result; gates are: "
                         f"{', '.join(result.gates) or 'none'}")


def axis_label(sample, dim) -> str:
    """``"CD3 (BV786-A)"``: the marker ($PnS) and the channel ($PnN); the
    channel alone when it has no marker; ratio dimensions by their ratio."""
    if not isinstance(dim, Dimension):
        ratio = getattr(dim, "ratio", dim)
        if hasattr(ratio, "numerator"):
            return f"ratio {ratio.numerator} / {ratio.denominator}"
        return f"ratio {ratio}"
    try:
        i = sample.channel_index(dim.name)
    except ImmunomonError:
        return dim.name            # a fluorochrome of a strategy matrix
    name, marker = sample.channels[i], sample.markers[i]
    return f"{marker} ({name})" if marker and marker != name else name


def plot_rows(rows: np.ndarray, max_points: int) -> np.ndarray:
    """An evenly spaced subset of ``rows`` (at most ``max_points``): events
    are in acquisition order, so this samples the whole run."""
    if rows.size <= max_points:
        return rows
    return rows[np.linspace(0, rows.size - 1, max_points).astype(np.int64)]


def limits(values: np.ndarray, extra=()) -> tuple[float, float]:
    """Axis limits: the central 99.9% of the finite values, widened to show
    the gate's finite coordinates ``extra``, plus 5% padding."""
    v = values[np.isfinite(values)]
    pts = [float(e) for e in extra if e is not None and np.isfinite(e)]
    if v.size:
        lo, hi = np.quantile(v, [0.0005, 0.9995])
        lo, hi = min([lo] + pts), max([hi] + pts)
    elif pts:
        lo, hi = min(pts), max(pts)
    else:
        lo, hi = 0.0, 1.0
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def ellipse_outline(mean, covariance, distance_square: float, n: int = 181) -> np.ndarray:
    """Points (n x 2) on the boundary of a 2-D ellipse ``(x-m)' C^-1 (x-m) = d``."""
    cov = np.asarray(covariance, dtype=np.float64)
    cov = (cov + cov.T) / 2            # documents may carry a slightly asymmetric matrix
    w, v = np.linalg.eigh(cov)
    theta = np.linspace(0.0, 2.0 * np.pi, n)
    circle = np.stack([np.cos(theta), np.sin(theta)])
    return (np.asarray(mean, dtype=np.float64)[:, None]
            + v @ (np.sqrt(np.maximum(w, 0.0) * distance_square)[:, None] * circle)).T


def gate_extent(gate) -> list[list[float]]:
    """Finite coordinates of the gate per plotted dimension (for the axis limits)."""
    if isinstance(gate, RectangleGate):
        return [[b for b in pair if b is not None] for pair in gate.bounds[:2]]
    if isinstance(gate, PolygonGate):
        return [list(gate.vertices[:, 0]), list(gate.vertices[:, 1])]
    if isinstance(gate, EllipsoidGate):
        k = min(len(gate.dimensions), 2)
        half = np.sqrt(np.diag(gate.covariance)[:k] * gate.distance_square)
        return [[gate.mean[i] - half[i], gate.mean[i] + half[i]] for i in range(k)]
    if isinstance(gate, QuadrantGate):
        axes = divider_axes(gate)
        return [[v for d in gate.dividers if axes[d.id] == a for v in d.values]
                for a in range(len(plot_dimensions(gate)))][:2]
    return []


def plot_dimensions(gate) -> tuple:
    """The gate's dimensions, each once, in order (a quadrant gate may have two
    dividers on one dimension)."""
    return distinct_dimensions(gate.dimensions)


def divider_axes(gate) -> dict[str, int]:
    """The plot axis (0: x, 1: y) of each divider of a quadrant gate."""
    dims = plot_dimensions(gate)
    return {d.id: dims.index(d.dimension) for d in gate.dividers}


def divider_span(gate, divider, lims) -> tuple[float, float] | None:
    """Where along the other axis a divider applies: the interval of the other axis's
    divider that every quadrant naming it shares (a y cut made for the events below
    the x cut), within ``lims`` of that axis; None where it crosses the whole view."""
    axes = divider_axes(gate)
    other = {d.id: d for d in gate.dividers if axes[d.id] != axes[divider.id]}
    spans = set()
    for q in gate.quadrants:
        pos = dict(q.positions)
        if divider.id not in pos:
            continue
        named = [(pos[o], other[o]) for o in pos if o in other]
        if len(named) != 1:
            return None
        loc, div = named[0]
        spans.add(div.interval(loc))
    if len(spans) != 1:
        return None
    lo, hi = spans.pop()
    return (lims[0] if lo is None else max(lo, lims[0]),
            lims[1] if hi is None else min(hi, lims[1]))


def _cell(divider, location: float, lim: tuple[float, float]) -> float:
    """Middle (within the view) of the divider interval holding ``location``."""
    lo, hi = divider.interval(location)
    lo = lim[0] if lo is None else min(max(lo, lim[0]), lim[1])
    hi = lim[1] if hi is None else min(max(hi, lim[0]), lim[1])
    return (lo + hi) / 2


def _text(s) -> str:
    """Text for matplotlib: '$' would start mathtext."""
    return str(s).replace("$", r"\$")


def _name(pid, labels) -> str:
    return str((labels or {}).get(pid, pid))


def gate_title(result, gate_id: str, *, labels: dict | None = None) -> str:
    """"CD4 T: 1,234 events / 35.20% of T cells" (two lines); for a quadrant
    gate its id and its parent with the parent's count."""
    gid, gate = find_gate(result, gate_id)
    parent = gate.parent
    n_parent = result.n_events if parent is None else result.count(parent)
    parent_name = _name(parent, labels) if parent is not None else "all events"
    if isinstance(gate, QuadrantGate):
        return f"{_name(gid, labels)}\nof {parent_name} ({n_parent:,} events)"
    count = result.count(gid)
    pct = 100.0 * count / n_parent if n_parent else float("nan")
    return f"{_name(gid, labels)}: {count:,} events\n{pct:.2f}% of {parent_name}"


# -- binned densities ---------------------------------------------------------------
def aligned_bins(pixels: int, wanted: int, smallest: int = 16) -> int:
    """The most bins, at most ``wanted``, that split ``pixels`` into whole pixels each
    (so every bin is drawn as a sharp block); ``wanted`` when none does."""
    for n in range(min(wanted, pixels), smallest - 1, -1):
        if pixels % n == 0:
            return n
    return max(1, min(wanted, pixels))


def density_2d(x: np.ndarray, y: np.ndarray, lims, bins: tuple[int, int]) -> np.ndarray:
    """Event counts on a ``bins`` grid over ``lims`` (x bins x y bins, float64);
    events outside the limits or not finite are left out. One ``bincount``, no
    Python loop over events."""
    (x0, x1), (y0, y1) = lims
    nx, ny = bins
    fx = (np.asarray(x, dtype=np.float64) - x0) * (nx / (x1 - x0))
    fy = (np.asarray(y, dtype=np.float64) - y0) * (ny / (y1 - y0))
    ok = (fx >= 0) & (fx < nx) & (fy >= 0) & (fy < ny)      # NaN compares False
    flat = fx[ok].astype(np.int64) * ny + fy[ok].astype(np.int64)
    return np.bincount(flat, minlength=nx * ny).reshape(nx, ny).astype(np.float64)


# -- the plot -----------------------------------------------------------------------
class GatePlotter:
    """One figure reused for every gate plot of a run.

    Building a matplotlib figure, its axes and a colour bar costs more than drawing a
    density into it, so the plotter builds them once and, per gate, only swaps the
    image data, the limits, the labels and the gate outline. Text is what Agg draws
    slowest, so labels and titles sit at fixed places (matplotlib would otherwise lay
    out every tick label twice to place them), axes carry a few ticks, and each
    distinct text is rendered once and stamped after (``text_cache``). The density
    axes lie on whole pixels and the bins divide them, so each bin is a sharp block of
    pixels at the size the PNG is written (``figsize`` x ``dpi``), the size the pages
    show it at. Not thread-safe: one plotter per thread.
    """

    def __init__(self, *, figsize=FIGSIZE, dpi: int = DPI):
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        from .text_cache import CachingCanvas

        self.fig = fig = Figure(figsize=figsize, dpi=dpi)
        CachingCanvas(fig)
        width, height = fig.bbox.width, fig.bbox.height
        # whole-pixel rectangles: left, bottom, width, height
        self.px2 = (round(0.15 * width), round(0.13 * height),
                    round(0.64 * width), round(0.72 * height))
        px1 = (self.px2[0], self.px2[1], round(0.79 * width), self.px2[3])
        bar = (round(0.82 * width), self.px2[1], max(round(0.03 * width), 1), self.px2[3])
        to_fraction = lambda r: (r[0] / width, r[1] / height, r[2] / width, r[3] / height)
        self.ax2 = fig.add_axes(to_fraction(self.px2))
        self.ax1 = fig.add_axes(to_fraction(px1))
        self.cax = fig.add_axes(to_fraction(bar))
        for ax in (self.ax1, self.ax2):
            ax.ticklabel_format(style="sci", scilimits=(-3, 4))
            ax.xaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 5, 10]))
            ax.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 5, 10]))
            ax.xaxis.set_label_coords(0.5, -0.1)
            ax.yaxis.set_label_coords(-0.15 * 0.64 / (ax.get_position().width), 0.5)
        # colours follow log10(events per bin); the bar is a fixed gradient whose
        # axis is relabelled in events per bin
        self.norm = Normalize(0.0, 1.0)
        self.image = self.ax2.imshow(np.full((2, 2), np.nan), origin="lower", aspect="auto",
                                     cmap=_viridis_white_under(), norm=self.norm,
                                     interpolation="nearest", extent=(0, 1, 0, 1))
        self.bar = self.cax.imshow(np.linspace(0, 1, 256)[:, None], origin="lower",
                                   aspect="auto", cmap=self.image.get_cmap(),
                                   extent=(0, 1, 0, 1), interpolation="nearest")
        self.cax.set_xticks([])
        self.cax.yaxis.tick_right()
        self.cax.tick_params(labelsize=7)
        self.cax.yaxis.set_label_position("right")
        self.cax.set_ylabel("events per bin", fontsize=8)
        self.cax.yaxis.set_label_coords(3.4, 0.5)
        self._artists: list = []

    # one plot ------------------------------------------------------------------------
    def plot(self, result, gate_id: str, path, *, labels: dict | None = None,
             max_points: int = 50_000, bins: int = 200, gate=None) -> Path | None:
        """Write the PNG of one gate (see ``plot_gate``); ``gate``: drawn instead of the
        result's gate of that id (the same cut seen against another axis)."""
        from matplotlib.patches import StepPatch

        gid, gate = find_gate(result, gate_id) if gate is None else (gate_id, gate)
        if isinstance(gate, BooleanGate) or not gate.dimensions:
            return None
        view = gate_view(result, gid, gate, max_points=max_points)
        two = len(view.dims) == 2
        ax = self.ax2 if two else self.ax1
        self.ax2.set_visible(two)
        self.cax.set_visible(two)
        self.ax1.set_visible(not two)
        for artist in self._artists:
            artist.remove()
        # a few hundred parent events would look like noise on a fine grid
        wanted = int(min(bins, max(32, 1.5 * np.sqrt(view.n_plotted))))
        if two:
            grid = (aligned_bins(self.px2[2], wanted), aligned_bins(self.px2[3], wanted))
            h = density_2d(view.data[0], view.data[1], view.lims, grid)
            top = np.log10(max(float(h.max()), 10.0))
            with np.errstate(divide="ignore"):
                shade = np.log10(h.T)
            shade[~np.isfinite(shade)] = np.nan             # empty bins stay white
            self.image.set_data(shade)
            self.image.set_extent((*view.lims[0], *view.lims[1]))
            self.norm.vmin, self.norm.vmax = 0.0, top
            decades = np.arange(int(np.floor(top)) + 1)
            self.bar.set_extent((0, 1, 0, top))
            self.cax.set_ylim(0, top)
            self.cax.set_yticks(decades, [f"{10.0 ** k:g}" for k in decades])
            ax.set_ylim(*view.lims[1])
            ax.set_ylabel(_text(axis_label(result.sample, view.dims[1])))
        else:
            x = view.data[0]
            counts, edges = np.histogram(x[np.isfinite(x)], bins=wanted, range=view.lims[0])
            # add_artist, not stairs: the limits are set, so no data limits to update
            ax.add_artist(StepPatch(counts, edges, fill=True, color="#4c72b0", alpha=0.8))
            ax.set_ylim(0, max(counts.max(), 1) * 1.05)
            ax.set_ylabel("events")
        ax.set_xlim(*view.lims[0])
        ax.set_xlabel(_text(axis_label(result.sample, view.dims[0])))
        if isinstance(gate, QuadrantGate):
            _draw_quadrants(ax, gate, view.lims, len(view.dims), result, view.n_parent, labels)
        else:
            _draw_gate(ax, gate, view.lims, len(view.dims))
        # what this gate added, removed before the next one is drawn
        self._artists = [*ax.patches, *ax.lines, *ax.texts, *ax.artists]
        # a fixed title position spares matplotlib measuring the tick labels
        ax.set_title(_text(gate_title(result, gid, labels=labels)), fontsize=10, y=1.01)
        return _save(self.fig, Path(path))


class GateView:
    """What a gate plot shows: the parent's events (at most ``max_points``) in the
    gate's first two dimensions, and the axis limits."""

    def __init__(self, dims, data, lims, n_parent: int, n_plotted: int):
        self.dims, self.data, self.lims = dims, data, lims
        self.n_parent, self.n_plotted = n_parent, n_plotted


def gate_view(result, gid, gate, *, max_points: int = 50_000) -> GateView:
    parent = gate.parent
    n_parent = result.n_events if parent is None else result.count(parent)
    all_rows = (np.arange(result.n_events) if parent is None
                else np.flatnonzero(result.mask(parent)))
    rows = plot_rows(all_rows, max_points)
    dims = plot_dimensions(gate)[:2]
    data = [np.asarray(result.values.values(d, rows), dtype=np.float64) for d in dims]
    extent = gate_extent(gate)
    lims = [limits(x, extent[i] if i < len(extent) else ()) for i, x in enumerate(data)]
    return GateView(dims, data, lims, n_parent, rows.size)


def _viridis_white_under():
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="white")


def plot_gate(result, gate_id: str, path, *, labels: dict | None = None,
              max_points: int = 50_000, bins: int = 200, figsize=FIGSIZE,
              dpi: int = DPI, plotter: GatePlotter | None = None) -> Path | None:
    """Write one PNG for a gate of ``result`` (a ``GatingResult``) to ``path``.

    ``gate_id``: a gate id (or a quadrant's population id: its quadrant gate
    is drawn). ``labels``: optional display names by population id, used in
    the title and quadrant annotations. At most ``max_points`` parent events
    (evenly spaced) make the binned density (at most ``bins`` bins a side);
    the counts in the title use all events. ``plotter``: a ``GatePlotter`` to
    reuse (many plots), else one is made of ``figsize`` and ``dpi``.
    Returns the path written, or None for a boolean gate (nothing to draw).
    The file is written under a temporary name and renamed when complete.
    """
    result = gating_result(result)
    gid, gate = find_gate(result, gate_id)
    if isinstance(gate, BooleanGate) or not gate.dimensions:
        return None
    plotter = plotter or GatePlotter(figsize=figsize, dpi=dpi)
    return plotter.plot(result, gid, path, labels=labels, max_points=max_points, bins=bins)


def _draw_gate(ax, gate, lims, ndim, linewidth: float = 1.6):
    from matplotlib.patches import Polygon, Rectangle

    # add_artist, not add_patch: the limits are set, so no data limits to update
    style = dict(fill=False, edgecolor=GATE_COLOUR, linewidth=linewidth)
    if isinstance(gate, RectangleGate):
        # open ends reach past the view so that no edge is drawn there
        far = [(a - (b - a), b + (b - a)) for a, b in lims]
        # clipped to that reach: a gate of a population taken as absent starts at +inf
        box = [(max(far[i][0], -np.inf if lo is None else lo),
                min(far[i][1], np.inf if hi is None else hi))
               for i, (lo, hi) in enumerate(gate.bounds[:ndim])]
        if any(lo >= hi for lo, hi in box):
            return                                  # holds nothing in view
        if ndim == 1:
            (lo, hi), = box
            ax.axvspan(lo, hi, color=GATE_COLOUR, alpha=0.12, linewidth=0)
            for v in gate.bounds[0]:
                if v is not None:
                    ax.axvline(v, color=GATE_COLOUR, linewidth=linewidth)
        else:
            (x0, x1), (y0, y1) = box
            ax.add_artist(Rectangle((x0, y0), x1 - x0, y1 - y0, **style))
    elif isinstance(gate, PolygonGate):
        ax.add_artist(Polygon(gate.vertices, closed=True, **style))
    elif isinstance(gate, EllipsoidGate):
        if ndim == 1:
            half = np.sqrt(gate.covariance[0, 0] * gate.distance_square)
            ax.axvspan(gate.mean[0] - half, gate.mean[0] + half, color=GATE_COLOUR,
                       alpha=0.12, linewidth=0)
            for v in (gate.mean[0] - half, gate.mean[0] + half):
                ax.axvline(v, color=GATE_COLOUR, linewidth=linewidth)
        else:
            pts = ellipse_outline(gate.mean[:2], gate.covariance[:2, :2], gate.distance_square)
            ax.add_artist(Polygon(pts, closed=True, **style))


def _draw_quadrants(ax, gate, lims, ndim, result, n_parent, labels, fontsize: float = 7,
                    linewidth: float = 1.6):
    from matplotlib.lines import Line2D

    axes = divider_axes(gate)
    dividers = [d for d in gate.dividers if axes[d.id] < ndim]
    for div in dividers:
        axis = axes[div.id]
        span = divider_span(gate, div, lims[1 - axis]) if ndim == 2 else None
        for v in div.values:
            if span is None:
                (ax.axvline if axis == 0 else ax.axhline)(v, color=GATE_COLOUR,
                                                          linewidth=linewidth)
            else:               # a cut for the events on one side of the other axis's cut
                ends = ([v, v], list(span)) if axis == 0 else (list(span), [v, v])
                ax.add_artist(Line2D(*ends, color=GATE_COLOUR, linewidth=linewidth))
    for q in gate.quadrants:
        pos = dict(q.positions)
        xy = []
        for axis in range(ndim):
            lim = lims[axis]
            named = [d for d in dividers if axes[d.id] == axis and d.id in pos]
            xy.append(_cell(named[0], pos[named[0].id], lim) if named
                      else (lim[0] + lim[1]) / 2)
        count = result.count(q.id)
        pct = 100.0 * count / n_parent if n_parent else float("nan")
        y = xy[1] if ndim == 2 else ax.get_ylim()[1] * 0.9
        ax.text(xy[0], y, _text(f"{_name(q.id, labels)}\n{count:,} ({pct:.1f}%)"),
                ha="center", va="center", fontsize=fontsize, color="black",
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.75,
                          edgecolor="none"))


# Unhinted glyphs (as matplotlib's own image tests draw them) render in about half the
# time of the default auto-hinted ones, and text is most of a gate plot's drawing.
_TEXT_STYLE = {"text.hinting": "none"}


def _save(fig, path: Path) -> Path:
    import io

    import matplotlib
    from matplotlib import rc_context

    from .png import png_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    # savefig draws the figure as it saves it (its facecolor, its dpi) and hands back
    # the pixels; our writer encodes them (zlib level 1, rows unfiltered: a third of
    # Pillow's time, files no larger)
    raw = io.BytesIO()
    with rc_context(_TEXT_STYLE):
        fig.savefig(raw, format="rgba", dpi="figure")
    width, height = (int(v) for v in fig.canvas.get_width_height(physical=True))
    pixels = np.frombuffer(raw.getbuffer(), dtype=np.uint8).reshape(height, width, 4)
    software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
    with atomic_path(path, suffix=".png") as tmp:
        Path(tmp).write_bytes(png_bytes(pixels, dpi=fig.dpi, text={"Software": software}))
    return path


# -- every gate in one image ---------------------------------------------------------
SUMMARY_PANEL = 2.0              # inches a side per gate
SUMMARY_COLUMNS = 5


def plot_summary(result, path, *, labels: dict | None = None, max_points: int = 20_000,
                 bins: int = 100, columns: int = SUMMARY_COLUMNS,
                 panel: float = SUMMARY_PANEL, dpi: int = DPI) -> Path | None:
    """One PNG with every gate of ``result`` (strategy order, boolean gates left
    out) as a small panel: the parent's binned density, the gate, and the
    population's count and percentage of its parent. A sample at a glance, for
    reviewing many files; ``plot_gate`` draws the same panel large, with axes.
    Returns the path written, or None when no gate has geometry.

    The panels are not matplotlib Axes (building two dozen of them cost more than
    drawing everything else): each density is an image placed on the figure's
    pixels, and the gate, the frame and the texts are artists in the panel's own
    coordinates (``_Panel``)."""
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from .text_cache import CachingCanvas

    result = gating_result(result)

    gates = [(gid, g) for gid, g in result.gates.items()
             if not isinstance(g, BooleanGate) and g.dimensions]
    if not gates:
        return None
    columns = max(1, min(columns, len(gates)))
    rows = -(-len(gates) // columns)
    fig = Figure(figsize=(columns * panel, rows * panel), dpi=dpi)
    CachingCanvas(fig)
    cmap = _viridis_white_under()
    side = panel * dpi
    size = round(0.7 * side)
    for k, (gid, gate) in enumerate(gates):
        r, c = divmod(k, columns)
        # whole-pixel panels, room below and left for the axis names, above for the title
        left, bottom = round(c * side + 0.1 * side), round((rows - 1 - r) * side + 0.1 * side)
        view = gate_view(result, gid, gate, max_points=max_points)
        wanted = int(min(bins, max(24, 1.5 * np.sqrt(view.n_plotted))))
        if len(view.dims) == 2:
            n = aligned_bins(size, wanted)
            h = density_2d(view.data[0], view.data[1], view.lims, (n, n))
            with np.errstate(divide="ignore"):
                shade = np.ma.masked_invalid(np.log10(h.T))      # empty bins stay white
            colours = cmap(Normalize(0.0, np.log10(max(float(h.max()), 10.0)))(shade),
                           bytes=True)
            at = np.arange(size) * n // size                     # bin of each pixel
            fig.figimage(colours[at][:, at], xo=left, yo=bottom, origin="lower")
            lims = view.lims
        else:
            x = view.data[0]
            counts, edges = np.histogram(x[np.isfinite(x)], bins=wanted, range=view.lims[0])
            lims = (view.lims[0], (0.0, max(counts.max(), 1) * 1.05))
        ax = _Panel(fig, (left, bottom, size), lims)
        if len(view.dims) == 1:
            from matplotlib.patches import StepPatch
            ax.add_artist(StepPatch(counts, edges, fill=True, color="#4c72b0", alpha=0.8))
        ax.frame()
        if isinstance(gate, QuadrantGate):
            _draw_quadrants(ax, gate, lims, len(view.dims), result, view.n_parent,
                            labels, fontsize=4.5, linewidth=1.0)
            title = f"{_name(gid, labels)}\nof {view.n_parent:,}"
        else:
            _draw_gate(ax, gate, lims, len(view.dims), linewidth=1.0)
            count = result.count(gid)
            pct = 100.0 * count / view.n_parent if view.n_parent else float("nan")
            title = f"{_name(gid, labels)}\n{count:,} ({pct:.1f}%)"
        ax.label(_text(title), "top", fontsize=6.5)
        ax.label(_text(_short_label(result.sample, view.dims[0])), "bottom", fontsize=6)
        if len(view.dims) == 2:
            ax.label(_text(_short_label(result.sample, view.dims[1])), "left", fontsize=6)
    return _save(fig, Path(path))


class _Panel:
    """A square of a figure in data coordinates, without an Axes: the few Axes
    methods the gate drawings use (``add_artist``, ``axvline``, ``axhline``,
    ``axvspan``, ``text``, ``get_ylim``), each adding an artist clipped to the
    square, plus a frame and labels around it. ``box``: (left, bottom, size) in
    pixels; ``lims``: the data limits of the two axes."""

    def __init__(self, fig, box, lims):
        from matplotlib.transforms import Affine2D, Bbox, TransformedBbox

        left, bottom, size = box
        (x0, x1), (y0, y1) = lims
        width, height = fig.bbox.width, fig.bbox.height
        self.fig, self.lims = fig, lims
        self.box = (left / width, bottom / height, size / width, size / height)
        l, b, w, h = self.box
        self.transform = Affine2D().translate(-x0, -y0).scale(
            w / (x1 - x0), h / (y1 - y0)).translate(l, b) + fig.transFigure
        self.clip = TransformedBbox(Bbox.from_bounds(*self.box), fig.transFigure)

    def add_artist(self, artist):
        artist.set_transform(self.transform)
        artist.set_clip_box(self.clip)
        self.fig.add_artist(artist)
        return artist

    def get_ylim(self):
        return self.lims[1]

    def axvline(self, x, **style):
        from matplotlib.lines import Line2D
        return self.add_artist(Line2D([x, x], self.lims[1], **style))

    def axhline(self, y, **style):
        from matplotlib.lines import Line2D
        return self.add_artist(Line2D(self.lims[0], [y, y], **style))

    def axvspan(self, lo, hi, **style):
        from matplotlib.patches import Rectangle
        y0, y1 = self.lims[1]
        return self.add_artist(Rectangle((lo, y0), hi - lo, y1 - y0, **style))

    def text(self, x, y, s, **style):
        from matplotlib.text import Text
        return self.add_artist(Text(x, y, s, **style))

    def frame(self):
        from matplotlib.patches import Rectangle
        self.fig.add_artist(Rectangle(self.box[:2], *self.box[2:], fill=False,
                                      edgecolor="black", linewidth=0.8,
                                      transform=self.fig.transFigure))

    def label(self, text: str, where: str, *, fontsize: float):
        """A text centred above ("top"), below ("bottom") or left of ("left") the panel."""
        l, b, w, h = self.box
        pad = 2 / self.fig.bbox.height
        place = {"top": dict(x=l + w / 2, y=b + h + pad, ha="center", va="bottom"),
                 "bottom": dict(x=l + w / 2, y=b - pad, ha="center", va="top"),
                 "left": dict(x=l - 2 / self.fig.bbox.width, y=b + h / 2, ha="right",
                              va="center", rotation=90)}[where]
        self.fig.text(s=text, fontsize=fontsize, **place)


def _short_label(sample, dim) -> str:
    """The marker alone (or the channel, or the ratio): room is short in a panel."""
    label = axis_label(sample, dim)
    return label.split(" (")[0] if " (" in label else label


# -- every gate of a result -----------------------------------------------------------
def safe_filename(name: str, max_length: int = 80) -> str:
    """A file name made from a gate or sample name that may come from an
    untrusted template or file: letters, digits, '.', '-', '_' and '+' kept,
    anything else (path separators, spaces, control characters) made '_';
    never empty, never starting with '.', at most ``max_length`` characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)).lstrip(".")[:max_length]
    return cleaned or "_"


_local = threading.local()


def shared_plotter(figsize=FIGSIZE, dpi: int = DPI) -> GatePlotter:
    """This thread's plotter of that size, made on first use and kept, so a run
    over many files builds its figure once."""
    cache = _local.__dict__.setdefault("plotters", {})
    key = (tuple(figsize), dpi)
    if key not in cache:
        cache[key] = GatePlotter(figsize=figsize, dpi=dpi)
    return cache[key]


def plot_all(result, directory, *, labels: dict | None = None, prefix: str = "",
             figsize=FIGSIZE, dpi: int = DPI, **kwargs) -> dict[str, Path]:
    """Plot every gate of ``result`` (strategy order) into ``directory`` as
    ``<prefix><gate>.png`` with names from ``safe_filename`` (made unique
    with a numeric suffix), all with one reused figure. Returns gate id ->
    path; boolean gates are left out. ``kwargs`` go to ``plot_gate``."""
    directory = Path(directory)
    result = gating_result(result)
    kwargs["plotter"] = shared_plotter(figsize, dpi)
    out: dict[str, Path] = {}
    used: set[str] = set()
    for gid in result.gates:
        stem = base = safe_filename(prefix + gid)
        i = 1
        while stem.lower() in used:           # case-insensitive file systems
            i += 1
            stem = f"{base}_{i}"
        used.add(stem.lower())
        path = plot_gate(result, gid, directory / f"{stem}.png", labels=labels, **kwargs)
        if path is not None:
            out[gid] = path
    return out
