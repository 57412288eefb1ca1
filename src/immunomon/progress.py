"""Per-file progress for commands that work through many files.

On a terminal a progress bar is the right thing; in a log (a scheduler, nohup,
CI) a bar shows nothing until the end, so each file gets one line instead:
name, status, events and seconds. Commands use :class:`FileProgress` and call
:meth:`FileProgress.done` once per file; :func:`file_line` is the line itself,
for callers that print through their own channel.
"""

from __future__ import annotations

import sys
import time

__all__ = ["FileProgress", "file_line", "is_terminal"]


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def file_line(name: str, status: str, events=None, seconds: float | None = None, *,
              index: int | None = None, total: int | None = None,
              message: str | None = None) -> str:
    """``3/77 P01_M1: flagged, 12,345 events, 1.2 s`` (the parts that are known)."""
    parts = [str(status)]
    if events is not None:
        try:
            parts.append(f"{int(events):,} events")
        except (TypeError, ValueError):
            pass
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    if message:
        parts.append(str(message))
    count = f"{index}/{total} " if index is not None and total is not None else ""
    return f"{count}{name}: " + ", ".join(parts)


class FileProgress:
    """A progress bar on a terminal, one line per file otherwise.

    ``with FileProgress(len(files), "gating") as progress: ... progress.done(name,
    status, events)``. Seconds are the time since the previous file finished
    (or since the start) unless given. ``stream`` defaults to stderr;
    ``interactive`` overrides the terminal check; ``enabled=False`` shows nothing.
    """

    def __init__(self, total: int, label: str, *, stream=None,
                 interactive: bool | None = None, enabled: bool = True):
        self.total = total
        self.enabled = enabled
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = is_terminal(self.stream) if interactive is None else interactive
        self.count = 0
        self._bar = None
        self._last = time.perf_counter()

    def __enter__(self) -> FileProgress:
        if self.enabled and self.interactive:
            import click
            self._bar = click.progressbar(length=self.total, label=self.label,
                                          file=self.stream)
            self._bar.__enter__()
        self._last = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def done(self, name: str, status: str, events=None, seconds: float | None = None,
             message: str | None = None) -> None:
        now = time.perf_counter()
        if seconds is None:
            seconds = now - self._last
        self._last = now
        self.count += 1
        if self._bar is not None:
            self._bar.update(1)
            return
        if not self.enabled:
            return
        line = file_line(name, status, events, seconds, index=self.count, total=self.total,
                         message=message)
        print(f"{self.label} {line}", file=self.stream, flush=True)
