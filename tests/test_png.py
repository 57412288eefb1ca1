"""The gate plots' PNG writer: what Pillow reads back is the image written."""

import io

import numpy as np
import pytest

from immunomon.report.png import png_bytes

Image = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (400, 460)])
def test_png_reads_back_as_written(shape):
    rng = np.random.default_rng(shape[1])
    rgba = rng.integers(0, 256, (*shape, 4), dtype=np.uint8)
    rgba[: shape[0] // 2, :, 3] = 255
    data = png_bytes(rgba, dpi=100, text={"Software": "immunomon test"})
    image = Image.open(io.BytesIO(data))
    image.load()                                    # checks every chunk's CRC
    assert image.mode == "RGBA" and image.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(image), rgba)
    assert image.info["Software"] == "immunomon test"
    assert np.allclose(image.info["dpi"], (100, 100), atol=0.01)


def test_png_needs_rgba_bytes():
    with pytest.raises(ValueError):
        png_bytes(np.zeros((2, 2, 3), dtype=np.uint8))


def test_gate_plot_pixels_are_matplotlibs(tmp_path):
    """A figure saved by the gate plots' writer has the pixels of savefig's PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from immunomon.report.gate_plots import _save

    fig = Figure(figsize=(2.3, 1.7), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(np.arange(12.0).reshape(3, 4))
    ax.set_title("CD4 T: 1,234 events")
    ours = _save(fig, tmp_path / "ours.png")
    fig.savefig(tmp_path / "theirs.png", format="png")
    a, b = Image.open(ours), Image.open(tmp_path / "theirs.png")
    assert a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))
    assert a.info["Software"] == b.info["Software"]
