"""Stamped texts are drawn as matplotlib's own Text draws them, each rasterised once."""

from __future__ import annotations

import numpy as np
import pytest

from immunomon.report import text_cache

# (text, x, y in pixels, style): the kinds of text the gate plots draw
TEXTS = [
    ("CD56bright NK: 263 events\n27.63% of NK cells", 150, 180,
     dict(fontsize=10, ha="center", va="baseline")),                   # a two-line title
    ("CD56 (PE-Cy7-A)", 25, 100,
     dict(fontsize=10, ha="center", va="bottom", rotation=90, rotation_mode="anchor")),
    ("0.4", 120, 40, dict(fontsize=10, ha="center", va="top")),           # tick labels
    ("\N{MINUS SIGN}0.2", 60, 70, dict(fontsize=10, ha="right", va="center_baseline")),
    ("pDC\n45 (22.0%)", 200, 120,
     dict(fontsize=7, ha="center", va="center", color="black",
          bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.75,
                    edgecolor="none"))),
    (r"$10^{3}$ events", 90, 150, dict(fontsize=8)),                      # mathtext
    ("faded", 30, 20, dict(fontsize=12, alpha=0.4)),                      # its alpha once
]


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).astype(int)


def _figure(underlay: bool = True):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(2.6, 2.0), dpi=100)
    FigureCanvasAgg(fig)
    if underlay:            # something under the texts, so that their blending shows
        fig.add_artist(Rectangle((0.55, 0.45), 0.4, 0.3, color="#4c72b0"))
    return fig


def test_stamped_text_is_drawn_as_matplotlib_draws_it():
    from matplotlib import rc_context
    from matplotlib.transforms import IdentityTransform

    plain = _figure()
    for text, x, y, style in TEXTS:
        plain.text(x, y, text, transform=IdentityTransform(), **style)
    with rc_context(text_cache.TEXT_STYLE):
        expected = _pixels(plain)
    stamped = _figure()
    stamps = stamped.add_artist(text_cache.TextStamps(stamped.dpi))
    for text, x, y, style in TEXTS:
        stamps.add(text, x, y, **style)
    got = _pixels(stamped)
    assert got.shape == expected.shape
    # whole-pixel anchors: the same glyphs on the same pixels, up to the rounding of
    # blending a text onto its box before the box onto the figure
    assert np.abs(got - expected).max() <= 3
    assert (expected[..., :3] < 128).sum() > 500                   # there is text to compare


def test_a_text_anchored_between_pixels_moves_by_under_half_a_pixel():
    from matplotlib import rc_context
    from matplotlib.transforms import IdentityTransform

    ink = lambda p: (765 - p[..., :3].sum(axis=2)) / 765
    plain = _figure()
    plain.text(40.4, 60.3, "CD4 (BV421-A)", transform=IdentityTransform(), fontsize=10)
    with rc_context(text_cache.TEXT_STYLE):
        a = ink(_pixels(plain))
    stamped = _figure()
    stamped.add_artist(text_cache.TextStamps(stamped.dpi)).add("CD4 (BV421-A)", 40.4, 60.3,
                                                               fontsize=10)
    b = ink(_pixels(stamped))
    assert abs(b.sum() / a.sum() - 1) < 0.02
    for axis in (0, 1):                      # best matched with no shift, row and column
        x, y = a.sum(axis=axis), b.sum(axis=axis)
        lags = np.correlate(x - x.mean(), y - y.mean(), "full")
        assert np.argmax(lags) == x.size - 1


def test_a_stamp_is_clipped_where_it_is_drawn():
    from matplotlib.transforms import Bbox

    fig = _figure(underlay=False)
    stamps = fig.add_artist(text_cache.TextStamps(fig.dpi))
    stamps.add("CD16+ CD56+", 200, 150, clip=Bbox.from_bounds(200, 0, 60, 200), fontsize=10,
               ha="center", va="center")
    inked = _pixels(fig)[..., :3].sum(axis=2) < 600
    rows, cols = np.nonzero(inked)
    assert cols.size and cols.min() >= 200            # the left half is cut away
    assert 150 - 10 < fig.bbox.height - rows.mean() < 150 + 10


def test_each_text_is_rasterised_once_and_the_cache_is_bounded(monkeypatch):
    text_cache._cache().clear()
    fig = _figure()
    stamps = fig.add_artist(text_cache.TextStamps(fig.dpi))
    for text, x, y, style in TEXTS:
        stamps.add(text, x, y, **style)
    first = _pixels(fig)
    assert len(text_cache._cache()) == len(TEXTS)
    calls = []
    real = text_cache.rasterise
    monkeypatch.setattr(text_cache, "rasterise", lambda *a: calls.append(a) or real(*a))
    stamps.clear()
    for text, x, y, style in TEXTS:
        stamps.add(text, x, y, **style)
    assert calls == [] and np.array_equal(first, _pixels(fig))
    monkeypatch.setattr(text_cache, "MAX_TEXTS", 3)
    stamps.add("another text", 10, 10, fontsize=9)
    assert len(calls) == 1 and len(text_cache._cache()) == 3


@pytest.mark.parametrize("text", ["", " "])
def test_an_empty_text_draws_nothing(text):
    fig = _figure()
    before = _pixels(fig)
    stamps = fig.add_artist(text_cache.TextStamps(fig.dpi))
    assert stamps.add(text, 50, 50, fontsize=10) is None
    assert np.array_equal(before, _pixels(fig))
