"""Atomic writes: build a file or folder under a temporary name beside its target,
rename it onto the target when complete.

A crash or an error mid-write never leaves a truncated output behind, and an
existing output is replaced only by a complete one.

Permissions: every temporary file and folder is created the way ``open(path, "w")``
and ``mkdir`` create a new one, so what lands in place has the mode the user's
umask gives (0644 files and 0755 folders under umask 0022, 0640/0750 under 0027),
ready for a lab group or a web server. ``tempfile.mkstemp``/``mkdtemp`` are not
used for outputs because they create 0600 files and 0700 folders whatever the
umask. Secrets written on purpose (a de-identification key) pass
``private=True`` and get 0600 (owner read and write only) whatever the umask.

``folder_lock`` keeps two runs from writing into one output folder at once: the
second waits for the first (or stops with a message naming it).
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ImmunomonError

PRIVATE_MODE = 0o600          # secrets: owner read/write only, whatever the umask
_FILE_MODE = 0o666            # as open(path, "w"): the umask takes its bits away
_DIR_MODE = 0o777             # as mkdir


def _new_name(parent: Path, prefix: str, suffix: str, create: Callable[[Path], None]) -> Path:
    """Create a new entry with a random name in ``parent`` (never an existing one)."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: could not create a temporary name {prefix}*{suffix}")


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def temporary_file(parent, prefix: str = ".", suffix: str = ".tmp", *,
                   private: bool = False) -> Path:
    """A new empty file in ``parent`` with the mode ``open(path, "w")`` gives
    under the current umask (0600 with ``private``)."""
    mode = PRIVATE_MODE if private else _FILE_MODE

    def create(p: Path) -> None:
        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        if private:
            os.chmod(p, PRIVATE_MODE)   # a umask cannot add bits, but be explicit
    return _new_name(Path(parent), prefix, suffix, create)


def temporary_dir(parent, prefix: str = ".", suffix: str = ".tmp") -> Path:
    """A new empty folder in ``parent`` with the mode ``mkdir`` gives under the
    current umask."""
    return _new_name(Path(parent), prefix, suffix, lambda p: os.mkdir(p, _DIR_MODE))


@contextmanager
def atomic_path(path, suffix: str = ".tmp", *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it onto
    ``path``, on failure remove it. ``suffix`` keeps an extension that a writer
    needs (e.g. ".h5ad", ".png"). The file exists (empty) when yielded, with the
    umask's mode, or 0600 with ``private``; writers that truncate it keep that mode."""
    path = Path(path)
    if not _parent(path).is_dir():
        # named by the file asked for, not by the hidden temporary one beside it
        raise FileNotFoundError(errno.ENOENT, f"no folder {_parent(path)} to write into",
                                str(path))
    tmp = temporary_file(_parent(path), prefix=f".{path.name}.", suffix=suffix,
                         private=private)
    try:
        yield tmp
        if private:
            os.chmod(tmp, PRIVATE_MODE)   # in case the writer replaced the file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_path(work, final) -> None:
    """Put ``work`` (a complete file or folder) in place of ``final``, which may
    be missing, a file or a folder. A folder is moved aside first and removed
    afterwards, so ``final`` is missing for only the moment between two renames."""
    work, final = Path(work), Path(final)
    if final.is_dir() and not final.is_symlink():
        old = temporary_dir(_parent(final), prefix=f".{final.name}.", suffix=".old")
        os.replace(final, old / "previous")
        os.replace(work, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, final)


@contextmanager
def atomic_dir(path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a new empty folder beside ``path`` (with the umask's mode); on
    success it replaces ``path`` (see ``replace_path``), on failure it is removed."""
    path = Path(path)
    work = temporary_dir(_parent(path), prefix=f".{path.name}.", suffix=suffix)
    try:
        yield work
        replace_path(work, path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def write_bytes(path, *chunks, private: bool = False) -> Path:
    """Write byte chunks (bytes or buffers) to ``path`` atomically."""
    with atomic_path(path, private=private) as tmp, open(tmp, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
    return Path(path)


def write_text(path, text: str, *, private: bool = False) -> Path:
    """Write UTF-8 text to ``path`` atomically; ``private=True`` for secrets (0600)."""
    with atomic_path(path, private=private) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# ----------------------------------------------------------------------------- folder lock
LOCK_NAME = ".immunomon.lock"


class FolderInUseError(ImmunomonError):
    """Another immunomon run is writing into the output folder."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def folder_in_use(folder) -> bool:
    """Whether a run holds ``folder``'s lock now (read-only: nothing is created, and a
    lock file a killed run left behind reads as free)."""
    import fcntl

    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)            # closing releases a lock taken here
    return False


@contextmanager
def folder_lock(folder, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
                poll: float = 0.2) -> Iterator[None]:
    """Hold ``folder``'s lock (``.immunomon.lock`` inside it) while the block runs.

    If another run holds it, wait until it is released (``on_wait(holder)`` is
    called once, e.g. to print that we are waiting), or with ``wait=False`` raise
    ``FolderInUseError`` naming the holder (process, host, start time). The lock
    is the operating system's (``flock``): a run that crashes releases it, so a
    stale lock file never blocks anyone. The file is removed on release.
    """
    import fcntl

    folder = Path(folder)
    path = folder / LOCK_NAME
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            if not wait:
                raise FolderInUseError(
                    f"{folder}: another immunomon run is writing into this folder ({holder}); "
                    "wait for it to finish, or write into another folder") from None
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(poll)
            continue
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            break
        os.close(fd)            # the previous holder removed this file: lock the new one
    try:
        since = _dt.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {since}".encode(), 0)
        yield
    finally:
        Path(path).unlink(missing_ok=True)      # still held: nobody else owns this file
        os.close(fd)
