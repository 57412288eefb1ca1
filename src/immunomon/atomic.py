"""Atomic writes: build a file under a temporary name beside its target, rename when complete.

A crash or an error mid-write never leaves a truncated output behind, and an
existing file is replaced only by a complete one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it onto
    ``path``, on failure remove it. ``suffix`` keeps an extension that a writer
    needs (e.g. ".h5ad", ".png")."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix,
                               dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, *chunks) -> Path:
    """Write byte chunks (bytes or buffers) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
