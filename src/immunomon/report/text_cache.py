"""An Agg canvas that rasterises each distinct text once and stamps it after.

A run's gate plots repeat most of their text: tick labels, axis names and colour-bar
labels recur from plot to plot and file to file, and matplotlib lays out and renders
every glyph of every one anew (about 2 ms a text in matplotlib 3.11, most of a gate
plot's drawing). ``CachingCanvas`` draws a text once into a small image of its own, keyed
by everything that decides its pixels (string, font, size, angle, colour, hinting), and
later draws that image where the text goes, rounded to the whole pixel. Text looks the
same (its anchor moves by under half a pixel); layout is matplotlib's as before.

Importing this module imports matplotlib's Agg backend: import it where plots are made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg

#: Texts kept per thread (a few kilobytes each).
MAX_TEXTS = 1024
_PAD = 8                            # pixels around a text in its own image

_local = threading.local()


def _cache() -> OrderedDict:
    cache = getattr(_local, "texts", None)
    if cache is None:
        cache = _local.texts = OrderedDict()
    return cache


def _key(gc, s, prop, angle, ismath, mtext, dpi) -> tuple:
    """Everything that decides a text's pixels, but where it goes."""
    font = (tuple(prop.get_family()), prop.get_style(), prop.get_variant(), prop.get_weight(),
            prop.get_stretch(), prop.get_size_in_points(), prop.get_math_fontfamily(),
            prop.get_file())
    shaping = None
    if mtext is not None and hasattr(mtext, "get_fontfeatures"):
        features = mtext.get_fontfeatures()
        shaping = (tuple(features) if features else None, mtext.get_language())
    rc = matplotlib.rcParams
    return (s, font, float(angle), ismath, float(dpi), tuple(gc.get_rgb()), gc.get_alpha(),
            gc.get_forced_alpha(), gc.get_antialiased(), shaping, rc["text.hinting"],
            rc["text.hinting_factor"], rc["text.antialiased"])


def rasterise(gc, s, prop, angle, ismath, mtext, dpi):
    """(RGBA image, bottom row first; left and top offsets from the anchor in pixels,
    y downwards) of a text drawn at a whole-pixel anchor, or None for an empty one."""
    width, height, _ = RendererAgg.get_text_width_height_descent(_measurer(dpi), s, prop,
                                                                   ismath)
    side = 2 * int(np.ceil(max(width, height))) + 2 * _PAD
    own = RendererAgg(side, side, dpi)
    anchor = side // 2
    # the text whole: its clipping belongs to where it is stamped, not to this image
    whole = own.new_gc()
    whole.copy_properties(gc)
    whole.set_clip_rectangle(None)
    whole.set_clip_path(None)
    RendererAgg.draw_text(own, whole, anchor, anchor, s, prop, angle, ismath, mtext)
    whole.restore()
    pixels = np.asarray(own.buffer_rgba())
    inked = pixels[..., 3] > 0
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if not rows.size:
        return None
    image = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1][::-1].copy()
    return image, int(cols[0]) - anchor, int(rows[0]) - anchor


def _measurer(dpi) -> RendererAgg:
    measurers = getattr(_local, "measurers", None)
    if measurers is None:
        measurers = _local.measurers = {}
    if dpi not in measurers:
        measurers[dpi] = RendererAgg(1, 1, dpi)
    return measurers[dpi]


class CachingRenderer(RendererAgg):
    """``RendererAgg`` whose ``draw_text`` stamps a cached image of the text."""

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath == "TeX":
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        cache = _cache()
        key = _key(gc, s, prop, angle, ismath, mtext, self.dpi)
        if key in cache:
            cache.move_to_end(key)
        else:
            cache[key] = rasterise(gc, s, prop, angle, ismath, mtext, self.dpi)
            while len(cache) > MAX_TEXTS:
                cache.popitem(last=False)
        found = cache[key]
        if found is None:
            return None
        image, left, top = found
        # x, y: the anchor, y downwards; draw_image takes the image's lower left, y upwards
        row = int(round(y)) + top
        self.draw_image(gc, int(round(x)) + left, self.height - row - image.shape[0], image)
        return None


class CachingCanvas(FigureCanvasAgg):
    """``FigureCanvasAgg`` drawing with a ``CachingRenderer``."""

    def get_renderer(self):
        width, height = self.get_width_height(physical=True)
        key = (width, height, self.figure.dpi)
        if getattr(self, "_caching_key", None) != key:
            self.renderer = CachingRenderer(width, height, self.figure.dpi)
            self._caching_key = key
        return self.renderer
