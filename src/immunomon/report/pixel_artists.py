"""An artist for pixels computed beforehand: the gate plots' densities and colour bar.

Importing this module imports matplotlib: import it where plots are made.
"""

from __future__ import annotations

from matplotlib.artist import Artist


class Pixels(Artist):
    """An RGBA image (rows x columns x 4 uint8, bottom row first) drawn unscaled with
    its lower left at figure pixel (x, y): no resampling, no colour mapping. ``rgba``
    may be swapped between draws; None draws nothing."""

    def __init__(self, x: int, y: int, rgba=None):
        super().__init__()
        self.x, self.y, self.rgba = int(x), int(y), rgba

    def draw(self, renderer):
        if not self.get_visible() or self.rgba is None:
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, self.x, self.y, self.rgba)
        gc.restore()
        self.stale = False
