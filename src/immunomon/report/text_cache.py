"""Texts drawn once and stamped after: ``TextStamps``, an artist of texts placed on
figure pixels.

A run's gate plots repeat most of their text: tick labels, axis names and colour-bar
labels recur from plot to plot and file to file. A matplotlib ``Text`` lays itself out
anew at every draw (font lookup, metrics, alignment: about 0.3 ms even when its glyphs
are cached) before rendering every glyph. Here each distinct text (string and style:
size, alignment, rotation, colour, box) is drawn once by matplotlib's own ``Text``
into a small image, unhinted as matplotlib's image tests draw text, and that image is
drawn where the text goes, its anchor rounded to the whole pixel. Text looks as
matplotlib draws it (moved by under half a pixel); its layout is matplotlib's.

Importing this module imports matplotlib's Agg backend: import it where plots are made.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
from matplotlib import rcParams
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import RendererAgg

#: Texts kept per thread (a few kilobytes each).
MAX_TEXTS = 1024
#: Unhinted glyphs (as matplotlib's own image tests draw them) render in about half the
#: time of the default auto-hinted ones, and look the same at 100 dpi.
TEXT_STYLE = {"text.hinting": "none"}
_PAD = 8                            # pixels around a text in its own image

_local = threading.local()


def _cache() -> OrderedDict:
    cache = getattr(_local, "texts", None)
    if cache is None:
        cache = _local.texts = OrderedDict()
    return cache


def _frozen(value):
    """A hashable copy of a style value (a text's ``bbox`` is a dict)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


class Stamp:
    """A text drawn whole: ``image`` (RGBA, bottom row first) goes ``dx``, ``dy``
    pixels from the text's anchor (to its lower left, y upwards); ``extent``: the
    text's layout box (x0, y0, x1, y1) around the anchor, as matplotlib measures it."""

    __slots__ = ("image", "dx", "dy", "extent")

    def __init__(self, image, dx: int, dy: int, extent: tuple[float, float, float, float]):
        self.image, self.dx, self.dy, self.extent = image, dx, dy, extent


def rasterise(text: str, dpi: float, style: dict) -> Stamp | None:
    """The ``Stamp`` of a matplotlib ``Text`` of ``text`` and ``style`` (its keyword
    arguments: fontsize, ha, va, rotation, rotation_mode, color, alpha, bbox), drawn at
    a whole-pixel anchor; None when it draws nothing."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox, IdentityTransform

    figure, measurer = _scratch(dpi)
    artist = Text(0, 0, text, transform=IdentityTransform(), **style)
    artist.set_figure(figure)
    with _text_style():
        extent = artist.get_window_extent(measurer)         # around the anchor (0, 0)
        reach = extent
        patch = artist.get_bbox_patch()
        if patch is not None:
            artist.update_bbox_position_size(measurer)
            reach = Bbox.union([extent, patch.get_window_extent(measurer)])
        side = math.ceil(max(abs(reach.x0), abs(reach.x1), abs(reach.y0), abs(reach.y1)))
        anchor = side + _PAD
        own = RendererAgg(2 * anchor, 2 * anchor, dpi)
        artist.set_position((anchor, anchor))
        artist.draw(own)
    pixels = np.asarray(own.buffer_rgba())
    inked = pixels[..., 3] > 0
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if not rows.size:
        return None
    image = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1][::-1].copy()
    # rows count down from the top of the image; the anchor is ``anchor`` from its top
    return Stamp(image, int(cols[0]) - anchor, anchor - int(rows[-1]) - 1, tuple(extent.extents))


@contextmanager
def _text_style():
    """``TEXT_STYLE`` in force, as ``rc_context`` would (matplotlib's settings are
    global), without its copy of every setting: that copy cost as much as drawing."""
    saved = {key: rcParams[key] for key in TEXT_STYLE}
    try:
        rcParams.update(TEXT_STYLE)
        yield
    finally:
        rcParams.update(saved)


def _scratch(dpi: float):
    """This thread's figure (for the texts' dpi) and measuring renderer at ``dpi``."""
    found = getattr(_local, "scratch", None)
    if found is None:
        found = _local.scratch = {}
    if dpi not in found:
        from matplotlib.figure import Figure
        found[dpi] = (Figure(dpi=dpi), RendererAgg(1, 1, dpi))
    return found[dpi]


def stamp(text: str, dpi: float, **style) -> Stamp | None:
    """The cached ``Stamp`` of a text (see ``rasterise``), made on first use."""
    cache = _cache()
    key = (text, float(dpi), _frozen(style))
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    found = cache[key] = rasterise(text, dpi, style)
    while len(cache) > MAX_TEXTS:
        cache.popitem(last=False)
    return found


class TextStamps(Artist):
    """Texts at figure pixels (x right, y up from the lower left), each drawn from its
    cached ``Stamp``. ``add`` takes a ``Text``'s style keywords and an optional
    ``clip`` box (a ``Bbox`` in pixels)."""

    def __init__(self, dpi: float):
        super().__init__()
        self.dpi = dpi
        self.set_zorder(3)                          # where matplotlib draws text
        self._placed: list = []

    def clear(self) -> None:
        self._placed = []
        self.stale = True

    def add(self, text: str, x: float, y: float, *, clip=None, **style) -> Stamp | None:
        found = stamp(str(text), self.dpi, **style)
        if found is not None:
            self._placed.append((found, int(round(x)), int(round(y)), clip))
            self.stale = True
        return found

    def draw(self, renderer):
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        for found, x, y, clip in self._placed:
            gc.set_clip_rectangle(clip)
            renderer.draw_image(gc, x + found.dx, y + found.dy, found.image)
        gc.restore()
        self.stale = False
