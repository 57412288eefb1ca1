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
import weakref
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
PLOT_POINTS = 50_000             # parent events a gate plot bins, at most

_local = threading.local()      # per thread: its plotters, tick locator and formatter


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
    channel alone when it has no marker; ratio dimensions by their ratio; an axis a
    gate derives (a diagonal's x - y) by the name given."""
    if isinstance(dim, str):
        return dim
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


#: How far beyond the central 98% of the events, as a share of its width, the last
#: 0.95% on either side may stretch an axis: a few far events (over-compensated ones,
#: thousands of channels below zero) would press the cells into a sliver
FAR_EVENTS = 0.5


def limits(values: np.ndarray, extra=(), reach: float | None = None) -> tuple[float, float]:
    """Axis limits: the central 99.9% of the finite values, but no further than
    ``FAR_EVENTS`` of the central 98%'s width beyond it, widened to show the gate's
    finite coordinates ``extra`` (with ``reach``, at most that share of the values'
    range beyond either end), plus 5% padding."""
    v = values[np.isfinite(values)]
    pts = [float(e) for e in extra if e is not None and np.isfinite(e)]
    if v.size:
        lo, low, high, hi = _quantiles(v, (0.0005, 0.01, 0.99, 0.9995))
        far = FAR_EVENTS * (high - low)
        lo, hi = max(lo, low - far), min(hi, high + far)
        if reach is not None and hi > lo:
            far = reach * (hi - lo)
            pts = [min(max(p, lo - far), hi + far) for p in pts]
        lo, hi = min([lo] + pts), max([hi] + pts)
    elif pts:
        lo, hi = min(pts), max(pts)
    else:
        lo, hi = 0.0, 1.0
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _quantiles(v: np.ndarray, qs) -> list[float]:
    """``np.quantile(v, qs)`` (linear interpolation), found by one partial sort of ``v``
    in place (half the time of ``np.quantile``, which copies and checks first)."""
    pos = np.asarray(qs, dtype=np.float64) * (v.size - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, v.size - 1)
    v.partition(np.unique(np.concatenate([below, above])))
    return [float(v[b] + (p - b) * (v[a] - v[b])) for p, b, a in zip(pos, below, above)]


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
def histogram_height(counts: np.ndarray) -> tuple[float, int | None]:
    """The top of a 1-D gate histogram's count axis, and the bin it cuts short (None):
    a pile of events tied at one value (a mass cytometer's zero counts, an instrument's
    floor) can stand ten times above every other bin and flatten the populations the
    gate parts, so a bin over four times the next highest is cut at twice that one and
    its count written on it."""
    if counts.size < 2:
        return max(float(counts.max(initial=0)), 1.0) * 1.05, None
    order = np.argsort(counts)
    top, second = float(counts[order[-1]]), float(counts[order[-2]])
    if second > 0 and top > 4 * second:
        return 2.0 * second * 1.05, int(order[-1])
    return max(top, 1.0) * 1.05, None


def view_histogram(view, bins: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A one-dimensional view's histogram (counts, edges) and the axis limits it is drawn
    in, the count axis cut short above a pile (``histogram_height``)."""
    x = view.data[0]
    counts, edges = np.histogram(x[np.isfinite(x)], bins=bins, range=view.lims[0])
    return counts, edges, (view.lims[0], (0.0, histogram_height(counts)[0]))


def _draw_histogram(panel, counts, edges, fontsize: float) -> None:
    """The histogram as filled steps, with the count of a bin cut short written on it."""
    from matplotlib.patches import StepPatch

    panel.add_artist(StepPatch(counts, edges, fill=True, color="#4c72b0", alpha=0.8))
    at = histogram_height(counts)[1]
    if at is not None:
        panel.text(float(edges[at + 1]), panel.get_ylim()[1], f" {int(counts[at]):,}",
                   fontsize=fontsize, ha="left", va="top", color="#4c72b0")


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


# -- drawing on figure pixels ---------------------------------------------------------
# A gate plot has no matplotlib Axes: an Axes lays out and draws its ticks, tick labels
# and axis labels anew at every draw, and that was most of a plot's drawing. Here the
# boxes lie on whole pixels, the density is coloured into those pixels directly, ticks
# are one path and every text is a cached stamp (``text_cache``). The sizes follow
# matplotlib's defaults for an Axes, so the plots look as they did.
TICK_LENGTH = 3.5                # points, as matplotlib's major ticks
TICK_PAD = 3.5                   # points between a tick and its label
OFFSET_PAD = 3.0                 # points between tick labels and a "1e5" offset text
LINE_WIDTH = 0.8                 # points: frames and ticks
TITLE_PAD = 6.0                  # points between the plot box and its title
TICK_STEPS = (1, 2, 5, 10)


def density_pixels(h: np.ndarray, cmap, width: int, height: int,
                   behind: np.ndarray | None = None) -> np.ndarray:
    """RGBA pixels (``height`` x ``width``, bottom row first) of bin counts ``h`` (x bins
    x y bins): coloured by log10 of the count from 1 event up to the most in a bin (at
    least 10), empty bins white, or light grey where ``behind`` (counts on the same
    grid: the parent's events about a population) has events; each pixel shows the bin
    it lies in."""
    top = np.log10(max(float(h.max()), 10.0))
    with np.errstate(divide="ignore"):
        shade = np.ma.masked_invalid(np.log10(h.T) / top)
    colours = cmap(shade, bytes=True)
    if behind is not None:
        colours[(h.T == 0) & (behind.T > 0)] = BEHIND
    rows = np.arange(height) * h.shape[1] // height
    cols = np.arange(width) * h.shape[0] // width
    return colours[rows][:, cols]


#: the colour of a parent's events behind a population drawn over them
BEHIND = (215, 215, 215, 255)


def colour_bar_pixels(cmap, width: int, height: int) -> np.ndarray:
    """The colour map bottom to top as RGBA pixels (bottom row first)."""
    levels = np.arange(height) * cmap.N // height
    return np.repeat(cmap(levels, bytes=True)[:, None, :], width, axis=1)


def axis_ticks(lo: float, hi: float) -> tuple[list[float], list[str], str]:
    """Tick locations within ``[lo, hi]``, their labels, and the offset text ("1e5", or
    ""), as matplotlib's ``MaxNLocator`` (at most 5 intervals of 1, 2 or 5 times a
    power of ten) and ``ScalarFormatter`` (scientific notation outside 1e-3 to 1e4)
    make them for an axis of that range."""
    locator, formatter = _tickers()
    slack = 1e-10 * (hi - lo)
    locs = [float(v) for v in locator.tick_values(lo, hi) if lo - slack <= v <= hi + slack]
    formatter.axis.set_view_interval(lo, hi)
    return locs, list(formatter.format_ticks(locs)), formatter.get_offset()


def _tickers():
    """This thread's tick locator and formatter (building a formatter reads a dozen
    settings: it costs as much as formatting)."""
    found = getattr(_local, "tickers", None)
    if found is None:
        from matplotlib.ticker import MaxNLocator, ScalarFormatter

        formatter = ScalarFormatter()
        formatter.set_powerlimits((-3, 4))
        formatter.create_dummy_axis()
        found = _local.tickers = (MaxNLocator(5, steps=list(TICK_STEPS)), formatter)
    return found


class _Panel:
    """A rectangle of figure pixels in data coordinates, without an Axes: the few Axes
    methods the gate drawings use (``add_artist``, ``axvline``, ``axhline``,
    ``axvspan``, ``text``, ``get_ylim``), each adding an artist clipped to the
    rectangle, plus its frame, ticks and labels. ``box``: (left, bottom, width,
    height) in pixels; ``lims``: the data limits of the two axes; ``stamps``: the
    figure's ``TextStamps``. ``added`` lists the artists added (a reused figure
    removes them before its next plot)."""

    def __init__(self, fig, box, lims, stamps, *, clip_text: bool = True):
        from matplotlib.transforms import Affine2D, Bbox

        left, bottom, width, height = box
        (x0, x1), (y0, y1) = lims
        self.fig, self.box, self.lims, self.stamps = fig, box, lims, stamps
        self.transform = Affine2D().translate(-x0, -y0).scale(
            width / (x1 - x0), height / (y1 - y0)).translate(left, bottom)
        self.clip = Bbox.from_bounds(*box)
        self.clip_text = clip_text
        self.added: list = []
        self.pt = fig.dpi / 72                      # pixels per point

    def add_artist(self, artist):
        artist.set_transform(self.transform)
        artist.set_clip_box(self.clip)
        return self._add(artist)

    def _add(self, artist):
        self.fig.add_artist(artist)
        self.added.append(artist)
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
        px, py = self.transform.transform((x, y))
        return self.stamps.add(s, px, py, clip=self.clip if self.clip_text else None, **style)

    def frame(self, linewidth: float = LINE_WIDTH):
        self._add(frame(self.box, linewidth))

    def ticks(self, fontsize: float = 10):
        """Ticks and their labels below and left of the box, with an offset text
        ("1e5") where the labels need one, as an Axes draws them."""
        left, bottom, width, height = self.box
        reach = TICK_LENGTH * self.pt
        marks = []
        locs, labels, offset = axis_ticks(*self.lims[0])
        xs = self.transform.transform(np.column_stack([locs, np.full(len(locs), 0.0)]))[:, 0]
        low = bottom - reach - TICK_PAD * self.pt
        lowest = bottom                             # the tick labels' lower edge
        for x, label in zip(xs, labels):
            marks.append(((x, bottom), (x, bottom - reach)))
            placed = self.stamps.add(label, x, low, fontsize=fontsize, ha="center", va="top")
            if placed is not None:
                lowest = min(lowest, low + placed.extent[1])
        if offset:
            self.stamps.add(offset, left + width, lowest - OFFSET_PAD * self.pt,
                            fontsize=fontsize, ha="right", va="top")
        locs, labels, offset = axis_ticks(*self.lims[1])
        ys = self.transform.transform(np.column_stack([np.full(len(locs), 0.0), locs]))[:, 1]
        for y, label in zip(ys, labels):
            marks.append(((left, y), (left - reach, y)))
            self.stamps.add(label, left - reach - TICK_PAD * self.pt, y, fontsize=fontsize,
                            ha="right", va="center_baseline")
        if offset:
            self.stamps.add(offset, left, bottom + height + OFFSET_PAD * self.pt,
                            fontsize=fontsize, ha="left", va="baseline")
        self._add(tick_marks(marks))

    def label(self, text: str, where: str, *, fontsize: float, gap: float = 2.0):
        """A text centred above ("top"), below ("bottom") or left of ("left") the box,
        ``gap`` pixels from it."""
        left, bottom, width, height = self.box
        place = {"top": dict(x=left + width / 2, y=bottom + height + gap, ha="center",
                             va="bottom"),
                 "bottom": dict(x=left + width / 2, y=bottom - gap, ha="center", va="top"),
                 "left": dict(x=left - gap, y=bottom + height / 2, ha="right",
                              va="center", rotation=90)}[where]
        self.stamps.add(text, place.pop("x"), place.pop("y"), fontsize=fontsize, **place)


def frame(box, linewidth: float = LINE_WIDTH):
    """The black outline of a (left, bottom, width, height) box of pixels."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import IdentityTransform

    left, bottom, width, height = box
    return Rectangle((left, bottom), width, height, fill=False, edgecolor="black",
                     linewidth=linewidth, transform=IdentityTransform(), zorder=2.5)


def tick_marks(segments, linewidth: float = LINE_WIDTH):
    """One path artist of tick marks: ((x0, y0), (x1, y1)) segments in pixels."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MPath
    from matplotlib.transforms import IdentityTransform

    vertices = [p for segment in segments for p in segment] or [(0, 0), (0, 0)]
    codes = [MPath.MOVETO, MPath.LINETO] * (len(vertices) // 2)
    return PathPatch(MPath(vertices, codes), fill=False, edgecolor="black",
                     linewidth=linewidth, capstyle="butt", transform=IdentityTransform(),
                     zorder=2.5)


# -- the plot -----------------------------------------------------------------------
class GatePlotter:
    """One figure reused for every gate plot of a run.

    The figure holds no Axes (see ``_Panel``): the density is coloured into whole
    pixels, one per bin or a block of them (the bins divide the box), so each bin is a
    sharp block at the size the PNG is written (``figsize`` x ``dpi``), the size the
    pages show it at. Per gate the plotter swaps the density's pixels and replaces
    the gate, ticks and texts. Not thread-safe: one plotter per thread.
    """

    def __init__(self, *, figsize=FIGSIZE, dpi: int = DPI):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from .pixel_artists import Pixels
        from .text_cache import TextStamps

        self.fig = fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(fig)
        width, height = fig.bbox.width, fig.bbox.height
        # whole-pixel rectangles: left, bottom, width, height
        self.box2 = (round(0.15 * width), round(0.13 * height),
                     round(0.64 * width), round(0.72 * height))
        self.box1 = (self.box2[0], self.box2[1], round(0.79 * width), self.box2[3])
        self.bar = (round(0.82 * width), self.box2[1], max(round(0.03 * width), 1),
                    self.box2[3])
        self.cmap = _viridis_white_under()
        self.density = fig.add_artist(Pixels(*self.box2[:2]))
        self.gradient = fig.add_artist(Pixels(
            *self.bar[:2], colour_bar_pixels(self.cmap, *self.bar[2:])))
        self.frames = {box: fig.add_artist(frame(box)) for box in (self.box1, self.box2,
                                                                  self.bar)}
        self.stamps = fig.add_artist(TextStamps(dpi))
        self._added: list = []

    # one plot ------------------------------------------------------------------------
    def plot(self, result, gate_id: str, path, *, labels: dict | None = None,
             max_points: int = PLOT_POINTS, bins: int = 200, gate=None,
             highlight: bool = False) -> Path | None:
        """Write the PNG of one gate (see ``plot_gate``); ``gate``: drawn instead of the
        result's gate of that id (the same cut seen against another axis). With
        ``highlight`` the population's own events are coloured over its parent's in grey
        and ``gate`` gives only the axes (a boolean population that is no rectangle)."""
        gid, gate = find_gate(result, gate_id) if gate is None else (gate_id, gate)
        if isinstance(gate, BooleanGate) or not gate.dimensions:
            return None
        view = gate_view(result, gid, gate, max_points=max_points)
        two = len(view.dims) == 2
        if highlight and not two:
            return None
        for artist in self._added:
            artist.remove()
        self.stamps.clear()
        self.density.set_visible(two)
        self.gradient.set_visible(two)
        for box, outline in self.frames.items():
            outline.set_visible(box in ((self.box2, self.bar) if two else (self.box1,)))
        # a few hundred parent events would look like noise on a fine grid
        wanted = int(min(bins, max(32, 1.5 * np.sqrt(view.n_plotted))))
        box = self.box2 if two else self.box1
        if two:
            grid = (aligned_bins(box[2], wanted), aligned_bins(box[3], wanted))
            h = density_2d(view.data[0], view.data[1], view.lims, grid)
            behind = None
            if highlight:
                rows, _ = _parent_rows(result, gate.parent, max_points)
                own = result.mask(gid)[rows]
                h, behind = density_2d(view.data[0][own], view.data[1][own], view.lims,
                                       grid), h
            self.density.rgba = density_pixels(h, self.cmap, box[2], box[3], behind)
            lims = view.lims
        else:
            counts, edges, lims = view_histogram(view, wanted)
        panel = _Panel(self.fig, box, lims, self.stamps, clip_text=False)
        if not two:
            _draw_histogram(panel, counts, edges, fontsize=8)
        if isinstance(gate, QuadrantGate):
            _draw_quadrants(panel, gate, lims, len(view.dims), result, view.n_parent, labels)
        elif not highlight:
            _draw_gate(panel, gate, lims, len(view.dims))
        panel.ticks()
        self._axis_labels(panel, result.sample, view.dims)
        title_at = box[1] + box[3] + 0.01 * box[3] + TITLE_PAD * panel.pt
        self.stamps.add(_text(gate_title(result, gid, labels=labels)), box[0] + box[2] / 2,
                        title_at, fontsize=10, ha="center", va="baseline")
        if two:
            self._colour_bar(panel, float(h.max()))
        self._added = panel.added
        return _save(self.fig, Path(path))

    def _axis_labels(self, panel, sample, dims):
        # where an Axes of the old layout put them: 10% of the box below, 15% of the
        # density box left
        left, bottom, width, height = panel.box
        self.stamps.add(_text(axis_label(sample, dims[0])), left + width / 2,
                        bottom - 0.1 * height, fontsize=10, ha="center", va="top")
        name = _text(axis_label(sample, dims[1])) if len(dims) == 2 else "events"
        self.stamps.add(name, left - 0.15 * self.box2[2], bottom + height / 2, fontsize=10,
                        ha="center", va="bottom", rotation=90, rotation_mode="anchor")

    def _colour_bar(self, panel, most: float):
        """The colour bar's frame, a tick and label per decade of events per bin."""
        left, bottom, width, height = self.bar
        top = np.log10(max(most, 10.0))
        reach = TICK_LENGTH * panel.pt
        marks = []
        for k in range(int(np.floor(top)) + 1):
            y = bottom + height * k / top
            marks.append(((left + width, y), (left + width + reach, y)))
            self.stamps.add(f"{10.0 ** k:g}", left + width + reach + TICK_PAD * panel.pt, y,
                            fontsize=7, ha="left", va="center_baseline")
        panel._add(tick_marks(marks))
        self.stamps.add("events per bin", left + 3.4 * width, bottom + height / 2, fontsize=8,
                        ha="center", va="top", rotation=90, rotation_mode="anchor")


class GateView:
    """What a gate plot shows: the parent's events (at most ``max_points``) in the
    gate's first two dimensions, and the axis limits. Shared: read, never changed."""

    def __init__(self, dims, data, lims, n_parent: int, n_plotted: int):
        self.dims, self.data, self.lims = dims, data, lims
        self.n_parent, self.n_plotted = n_parent, n_plotted

    def thinned(self, max_points: int) -> "GateView":
        """The same view with at most ``max_points`` of its events, evenly spaced (the
        axis limits kept)."""
        if self.n_plotted <= max_points:
            return self
        keep = plot_rows(np.arange(self.n_plotted), max_points)
        return GateView(self.dims, [x[keep] for x in self.data], self.lims, self.n_parent,
                        keep.size)


def gate_view(result, gid, gate, *, max_points: int = PLOT_POINTS) -> GateView:
    """The ``GateView`` of a gate. The views of the result plotted last are kept, so the
    overview and the gate plots of one sample gather, transform and bound each parent's
    events once."""
    views = _views_of(result)
    key = (gid, id(gate), max_points)
    found = views.get(key)
    if found is None or found[0] is not gate:
        found = views[key] = (gate, _make_view(result, gate, max_points))
    return found[1]


def _make_view(result, gate, max_points: int) -> GateView:
    rows, n_parent = _parent_rows(result, gate.parent, max_points)
    dims = plot_dimensions(gate)[:2]
    # float32 is ample to bin and bound on screen, and halves what the views hold while
    # they are shared (the sample's plots would otherwise raise the job's memory peak)
    data = [np.asarray(result.values.values(d, rows), dtype=np.float32) for d in dims]
    # a diagonal's polygon is a half-plane reaching far beyond every event: its line
    # crosses whatever view the events make
    extent = [] if getattr(gate, "method", "") == "diagonal" else gate_extent(gate)
    # a polygon drawn by hand to the top of the scale, far beyond the events (a singlet
    # band through the origin), runs off the plot rather than pressing them into a
    # corner; a cut (a rectangle's bound, a divider) is always shown
    reach = 0.5 if isinstance(gate, PolygonGate) else None
    lims = [limits(x, extent[i] if i < len(extent) else (), reach) for i, x in enumerate(data)]
    return GateView(dims, data, lims, n_parent, rows.size)


def _parent_rows(result, parent, max_points: int) -> tuple[np.ndarray, int]:
    """The rows a parent's plots show (``plot_rows``) and its event count, kept with the
    result's views: gates of one parent share them."""
    views = _views_of(result)
    key = ("rows", parent, max_points)
    if key not in views:
        all_rows = (np.arange(result.n_events) if parent is None
                    else np.flatnonzero(result.mask(parent)))
        rows = plot_rows(all_rows, max_points)
        views[key] = (rows.astype(np.int32) if result.n_events < 2**31 else rows,
                      all_rows.size)
    return views[key]


# the views of one result (a weak reference to it, views by gate): dropped with the result
# or when another result is plotted, so at most one sample's views are held (a few MB)
_views: list = [None, {}]
_views_lock = threading.Lock()


def _views_of(result) -> dict:
    with _views_lock:
        held = _views[0]
        if held is None or held() is not result:
            _views[0], _views[1] = weakref.ref(result, _forget_views), {}
        return _views[1]


def _forget_views(ref) -> None:
    with _views_lock:
        if _views[0] is ref:
            _views[0], _views[1] = None, {}


def _viridis_white_under():
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="white")


def plot_gate(result, gate_id: str, path, *, labels: dict | None = None,
              max_points: int = PLOT_POINTS, bins: int = 200, figsize=FIGSIZE,
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
    # the corners no population names hold events too: a cut that runs through a cloud
    # leaves part of it there, in no table (a docs-only DC template's 29 mDC)
    unnamed = n_parent - sum(result.count(q.id) for q in gate.quadrants) if n_parent else 0
    if unnamed > 0:
        (x0, x1), (y0, y1) = lims[0], (lims[1] if ndim == 2 else ax.get_ylim())
        ax.text(x1 - 0.01 * (x1 - x0), y0 + 0.01 * (y1 - y0),
                _text(f"in no named quadrant: {unnamed:,} ({100.0 * unnamed / n_parent:.1f}%)"),
                ha="right", va="bottom", fontsize=fontsize - 1, color="dimgray")


def _save(fig, path: Path) -> Path:
    import matplotlib

    from .png import png_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    # the canvas draws the figure at its own size and hands back the pixels (savefig
    # would copy them through a file object); our writer encodes them (zlib level 1,
    # rows unfiltered: a third of Pillow's time, files no larger)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
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

    Like the gate plots, the panels are not matplotlib Axes (``_Panel``): each
    density is coloured into the figure's pixels, and the gate, the frame and the
    texts are drawn in the panel's own coordinates."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .pixel_artists import Pixels
    from .text_cache import TextStamps

    result = gating_result(result)

    gates = [(gid, g) for gid, g in result.gates.items()
             if not isinstance(g, BooleanGate) and g.dimensions]
    if not gates:
        return None
    columns = max(1, min(columns, len(gates)))
    rows = -(-len(gates) // columns)
    fig = Figure(figsize=(columns * panel, rows * panel), dpi=dpi)
    FigureCanvasAgg(fig)
    stamps = fig.add_artist(TextStamps(dpi))
    cmap = _viridis_white_under()
    side = panel * dpi
    size = round(0.7 * side)
    for k, (gid, gate) in enumerate(gates):
        r, c = divmod(k, columns)
        # whole-pixel panels, room below and left for the axis names, above for the title
        left, bottom = round(c * side + 0.1 * side), round((rows - 1 - r) * side + 0.1 * side)
        # the gate plots' view (its events and axis limits), fewer of its events binned
        view = gate_view(result, gid, gate, max_points=max(max_points, PLOT_POINTS))
        view = view.thinned(max_points)
        wanted = int(min(bins, max(24, 1.5 * np.sqrt(view.n_plotted))))
        if len(view.dims) == 2:
            n = aligned_bins(size, wanted)
            h = density_2d(view.data[0], view.data[1], view.lims, (n, n))
            fig.add_artist(Pixels(left, bottom, density_pixels(h, cmap, size, size)))
            lims = view.lims
        else:
            counts, edges, lims = view_histogram(view, wanted)
        ax = _Panel(fig, (left, bottom, size, size), lims, stamps)
        if len(view.dims) == 1:
            _draw_histogram(ax, counts, edges, fontsize=4.5)
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
    path; a boolean gate is drawn where it is a rectangle of cuts on its operands'
    parent (``template_check.boolean_rectangle``: mDC as CD11c+ and not CD123+, the
    population a scientist reports), else as its own events over its parent's on the
    first two dimensions its operands were cut on (``template_check.boolean_axes``).
    ``kwargs`` go to ``plot_gate``."""
    from .template_check import boolean_axes, boolean_rectangle

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
        if path is None and (rect := boolean_rectangle(result, gid)) is not None:
            path = kwargs["plotter"].plot(result, gid, directory / f"{stem}.png",
                                          labels=labels, gate=rect)
        elif path is None and (axes := boolean_axes(result, gid)) is not None:
            path = kwargs["plotter"].plot(result, gid, directory / f"{stem}.png",
                                          labels=labels, gate=axes, highlight=True)
        if path is not None:
            out[gid] = path
    return out
