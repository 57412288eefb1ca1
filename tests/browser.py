"""Headless Chromium for the page tests: layout measured in the browser, screenshots.

``measure(page, width)`` loads a copy of the page with a small probe script in a
window ``width`` pixels wide and returns what the browser laid out: the
document's scroll width, each table's right edge and width, and how many images
decoded. ``screenshot`` writes a PNG of the page as a reader sees it.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  }
  var tables = [];
  var all = document.querySelectorAll('table');
  for (var j = 0; j < all.length; j++) {
    var r = all[j].getBoundingClientRect();
    tables.push({right: r.right, width: r.width, scroll: all[j].scrollWidth,
                 client: all[j].clientWidth});
  }
  var out = {viewport: window.innerWidth,
             scroll_width: document.documentElement.scrollWidth,
             body_right: document.body.getBoundingClientRect().right,
             images: imgs.length, images_loaded: ok, tables: tables};
  var pre = document.createElement('pre'); pre.id = 'layout-probe';
  pre.textContent = 'LAYOUT' + JSON.stringify(out) + 'END';
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run(binary, profile: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=180)


def measure(binary, page: Path, workdir: Path, width: int = 1400) -> tuple[dict, str]:
    """Layout of ``page`` in a ``width``-pixel window, and Chromium's stderr."""
    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        res = run(binary, workdir / "profile-measure", f"--window-size={width},1000",
                  "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r"LAYOUT(\{.*?\})END", res.stdout, re.S)
    assert found, res.stderr[-2000:]
    return json.loads(found.group(1)), res.stderr


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if re.search(r"CONSOLE\(\d+\)|Uncaught|Failed to load", line)]


def screenshot(binary, page: Path, shot: Path, width: int = 1400,
               height: int = 2000) -> tuple[int, int]:
    """Write a PNG screenshot of ``page``; returns its (width, height) in pixels."""
    res = run(binary, shot.parent / "profile-shot", f"--screenshot={shot}",
              f"--window-size={width},{height}", page.as_uri())
    assert shot.exists(), res.stderr[-2000:]
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def assert_fits(layout: dict, width: int) -> None:
    """Nothing wider than the window: no horizontal scrolling, no table past the edge."""
    assert layout["viewport"] == width, layout
    assert layout["scroll_width"] <= width, layout["scroll_width"]
    for i, t in enumerate(layout["tables"]):
        assert t["right"] <= width, (i, t)
        assert t["scroll"] <= t["client"] + 1, (i, t)
