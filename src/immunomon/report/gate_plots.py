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
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import ImmunomonError
from ..gating import (BooleanGate, Dimension, EllipsoidGate, PolygonGate, QuadrantGate,
                      RectangleGate)
from ..gating.masks import divider_bins

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
        return [list(d.values) for d in gate.dividers[:2]]
    return []


def _cell(values: tuple[float, ...], location: float, lim: tuple[float, float]) -> float:
    """Middle (within the view) of the divider interval holding ``location``."""
    k = int(divider_bins(np.array([location]), values)[0])
    cuts = [lim[0]] + [min(max(v, lim[0]), lim[1]) for v in values] + [lim[1]]
    return (cuts[k] + cuts[k + 1]) / 2


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


# -- the plot -----------------------------------------------------------------------
def plot_gate(result, gate_id: str, path, *, labels: dict | None = None,
              max_points: int = 50_000, bins: int = 200, figsize=FIGSIZE,
              dpi: int = DPI) -> Path | None:
    """Write one PNG for a gate of ``result`` (a ``GatingResult``) to ``path``.

    ``gate_id``: a gate id (or a quadrant's population id: its quadrant gate
    is drawn). ``labels``: optional display names by population id, used in
    the title and quadrant annotations. At most ``max_points`` parent events
    (evenly spaced) make the density; the counts in the title use all events.
    Returns the path written, or None for a boolean gate (nothing to draw).
    The file is written under a temporary name and renamed when complete.
    """
    gid, gate = find_gate(result, gate_id)
    if isinstance(gate, BooleanGate) or not gate.dimensions:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    parent = gate.parent
    all_rows = (np.arange(result.n_events) if parent is None
                else np.flatnonzero(result.mask(parent)))
    rows = plot_rows(all_rows, max_points)
    dims = tuple(gate.dimensions)[:2]
    data = [np.asarray(result.values.values(d, rows), dtype=np.float64) for d in dims]
    extent = gate_extent(gate)
    lims = [limits(x, extent[i] if i < len(extent) else ()) for i, x in enumerate(data)]

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    # fixed axes rectangles: tight_layout would double the drawing time
    ax = fig.add_axes((0.16, 0.13, 0.64 if len(dims) == 2 else 0.79, 0.72))
    # a few hundred parent events would look like noise on a 200 x 200 grid
    nbins = int(min(bins, max(32, 1.5 * np.sqrt(rows.size))))
    if len(dims) == 2:
        _density(fig, ax, data[0], data[1], lims, nbins)
    else:
        _histogram(ax, data[0], lims[0], nbins)
    ax.ticklabel_format(style="sci", scilimits=(-3, 4))
    ax.set_xlim(*lims[0])
    ax.set_xlabel(_text(axis_label(result.sample, dims[0])))
    if len(dims) == 2:
        ax.set_ylim(*lims[1])
        ax.set_ylabel(_text(axis_label(result.sample, dims[1])))

    if isinstance(gate, QuadrantGate):
        _draw_quadrants(ax, gate, lims, len(dims), result, all_rows.size, labels)
    else:
        _draw_gate(ax, gate, lims, len(dims))
    title = gate_title(result, gid, labels=labels)
    ax.set_title(_text(title), fontsize=10)
    return _save(fig, Path(path))


def _density(fig, ax, x, y, lims, bins):
    from matplotlib.colors import LogNorm

    ok = np.isfinite(x) & np.isfinite(y)
    h, xe, ye = np.histogram2d(x[ok], y[ok], bins=bins, range=lims)
    if h.max() > 0:
        image = ax.imshow(np.ma.masked_equal(h.T, 0), origin="lower", aspect="auto",
                          extent=(xe[0], xe[-1], ye[0], ye[-1]), cmap="viridis",
                          norm=LogNorm(vmin=1, vmax=max(h.max(), 10)),
                          interpolation="nearest")
        from matplotlib.ticker import FuncFormatter

        bar = fig.colorbar(image, cax=fig.add_axes((0.82, 0.13, 0.03, 0.72)),
                           format=FuncFormatter(lambda v, _: f"{v:g}"))
        bar.set_label("events per bin", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _histogram(ax, x, lim, bins):
    x = x[np.isfinite(x)]
    ax.hist(x, bins=bins, range=lim, histtype="stepfilled", color="#4c72b0", alpha=0.8)
    ax.set_ylabel("events")


def _draw_gate(ax, gate, lims, ndim):
    from matplotlib.patches import Polygon, Rectangle

    style = dict(fill=False, edgecolor=GATE_COLOUR, linewidth=1.6)
    if isinstance(gate, RectangleGate):
        # open ends reach past the view so that no edge is drawn there
        far = [(a - (b - a), b + (b - a)) for a, b in lims]
        box = [(far[i][0] if lo is None else lo, far[i][1] if hi is None else hi)
               for i, (lo, hi) in enumerate(gate.bounds[:ndim])]
        if ndim == 1:
            (lo, hi), = box
            ax.axvspan(lo, hi, color=GATE_COLOUR, alpha=0.12, linewidth=0)
            for v in gate.bounds[0]:
                if v is not None:
                    ax.axvline(v, color=GATE_COLOUR, linewidth=1.6)
        else:
            (x0, x1), (y0, y1) = box
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, **style))
    elif isinstance(gate, PolygonGate):
        ax.add_patch(Polygon(gate.vertices, closed=True, **style))
    elif isinstance(gate, EllipsoidGate):
        if ndim == 1:
            half = np.sqrt(gate.covariance[0, 0] * gate.distance_square)
            ax.axvspan(gate.mean[0] - half, gate.mean[0] + half, color=GATE_COLOUR,
                       alpha=0.12, linewidth=0)
            for v in (gate.mean[0] - half, gate.mean[0] + half):
                ax.axvline(v, color=GATE_COLOUR, linewidth=1.6)
        else:
            pts = ellipse_outline(gate.mean[:2], gate.covariance[:2, :2], gate.distance_square)
            ax.add_patch(Polygon(pts, closed=True, **style))


def _draw_quadrants(ax, gate, lims, ndim, result, n_parent, labels):
    dividers = gate.dividers[:ndim]
    for axis, div in enumerate(dividers):
        for v in div.values:
            (ax.axvline if axis == 0 else ax.axhline)(v, color=GATE_COLOUR, linewidth=1.6)
    for q in gate.quadrants:
        pos = dict(q.positions)
        xy = []
        for axis, div in enumerate(dividers):
            lim = lims[axis]
            xy.append(_cell(div.values, pos[div.id], lim) if div.id in pos
                      else (lim[0] + lim[1]) / 2)
        count = result.count(q.id)
        pct = 100.0 * count / n_parent if n_parent else float("nan")
        y = xy[1] if ndim == 2 else ax.get_ylim()[1] * 0.9
        ax.text(xy[0], y, _text(f"{_name(q.id, labels)}\n{count:,} ({pct:.1f}%)"),
                ha="center", va="center", fontsize=7, color="black",
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.75,
                          edgecolor="none"))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


# -- every gate of a result -----------------------------------------------------------
def safe_filename(name: str, max_length: int = 80) -> str:
    """A file name made from a gate or sample name that may come from an
    untrusted template or file: letters, digits, '.', '-', '_' and '+' kept,
    anything else (path separators, spaces, control characters) made '_';
    never empty, never starting with '.', at most ``max_length`` characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)).lstrip(".")[:max_length]
    return cleaned or "_"


def plot_all(result, directory, *, labels: dict | None = None, prefix: str = "",
             **kwargs) -> dict[str, Path]:
    """Plot every gate of ``result`` (strategy order) into ``directory`` as
    ``<prefix><gate>.png`` with names from ``safe_filename`` (made unique
    with a numeric suffix). Returns gate id -> path; boolean gates are left
    out. ``kwargs`` go to ``plot_gate``."""
    directory = Path(directory)
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
