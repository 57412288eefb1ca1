"""The caching canvas draws text as matplotlib's own Agg canvas does, once per text."""

from __future__ import annotations

import numpy as np

from immunomon.report import text_cache


def _figure(canvas_class):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.0), dpi=100)
    canvas_class(fig)
    ax = fig.add_axes((0.15, 0.13, 0.64, 0.72))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1000)
    ax.set_xlabel("CD16 (BV605-A)")
    ax.set_ylabel("CD56 (PE-Cy7-A)")                  # rotated by 90 degrees
    ax.set_title("CD56bright NK: 263 events\n27.63% of NK cells", fontsize=10)
    ax.text(0.3, 500, "pDC\n45 (22.0%)", fontsize=7, color="#e4002b", rotation=30,
            bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.75))
    ax.text(0.7, 200, r"$10^{3}$ events", fontsize=8)   # mathtext
    ax.text(0.05, 900, "faded", fontsize=12, alpha=0.4)  # its alpha applied once
    # clipped to a panel far from the figure's corner (as the overview's panel labels are):
    # drawn whole, then clipped where it is stamped
    panel = fig.add_axes((0.8, 0.86, 0.18, 0.12))
    panel.text(0.5, 0.5, "CD16+ CD56+\n1,242 (45.1%)", fontsize=6, clip_on=True,
               ha="center", va="center")
    ax.plot([0, 1], [0, 1000], color="#4c72b0")
    return fig


def _pixels(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).astype(int)


def test_text_is_drawn_as_matplotlib_draws_it():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    plain = _pixels(_figure(FigureCanvasAgg))
    cached = _pixels(_figure(text_cache.CachingCanvas))
    assert plain.shape == cached.shape
    # the same glyphs, each text's anchor moved to the whole pixel (under half a pixel):
    # about half the inked pixels change a little, nothing else does
    inked = (plain[..., :3].sum(axis=2) < 765) | (cached[..., :3].sum(axis=2) < 765)
    differs = np.abs(plain - cached).max(axis=2) > 0
    assert not (differs & ~inked).any()
    assert differs.mean() < 0.6 * inked.mean() and np.abs(plain - cached).mean() < 2
    # no text is lost, mirrored or moved: as much ink, agreeing row by row and column by
    # column, best matched with no shift
    ink = lambda p: (255 * 3 - p[..., :3].sum(axis=2)) / 765
    assert abs(ink(cached).sum() / ink(plain).sum() - 1) < 0.01
    for axis in (0, 1):
        a, b = ink(plain).sum(axis=axis), ink(cached).sum(axis=axis)
        assert np.corrcoef(a, b)[0, 1] > 0.98
        lags = np.correlate(a - a.mean(), b - b.mean(), "full")
        assert np.argmax(lags) == a.size - 1


def test_each_text_is_rasterised_once_and_the_cache_is_bounded(monkeypatch):
    text_cache._cache().clear()
    fig = _figure(text_cache.CachingCanvas)
    first = _pixels(fig)
    kept = len(text_cache._cache())
    assert kept >= 8                                   # ticks, labels, title lines, texts
    calls = []
    real = text_cache.rasterise
    monkeypatch.setattr(text_cache, "rasterise", lambda *a: calls.append(a) or real(*a))
    again = _pixels(fig)
    assert calls == [] and np.array_equal(first, again)
    monkeypatch.setattr(text_cache, "MAX_TEXTS", 3)
    fig.axes[0].set_title("another title")
    _pixels(fig)
    assert len(text_cache._cache()) == 3


def test_a_translucent_text_is_as_faint_as_matplotlib_draws_it():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def ink(canvas_class, alpha):
        fig = Figure(figsize=(2, 1), dpi=100)
        canvas_class(fig)
        fig.text(0.1, 0.4, "faded text", fontsize=14, alpha=alpha)
        return (765 - _pixels(fig)[..., :3].sum(axis=2)).sum()

    for alpha in (None, 0.4):
        plain, cached = ink(FigureCanvasAgg, alpha), ink(text_cache.CachingCanvas, alpha)
        assert abs(cached / plain - 1) < 0.02, alpha
