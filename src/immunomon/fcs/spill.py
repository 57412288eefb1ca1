"""Spillover matrices stored in the TEXT segment ($SPILLOVER, SPILL, $SPILL, $COMP)."""

from __future__ import annotations

import numpy as np

from ..errors import FCSFormatError
from .sample import Spillover

SPILLOVER_KEYWORDS = ("$SPILLOVER", "$SPILL", "SPILL", "SPILLOVER", "$COMP")


def parse_spillover(value: str, path, keyword: str) -> tuple[int, list[str], np.ndarray]:
    """Parse 'n,name1,...,namen,v11,...,vnn'. $COMP in FCS 3.0 may omit the names."""
    parts = [p.strip() for p in value.split(",")]
    try:
        n = int(parts[0])
    except ValueError:
        raise FCSFormatError(path, f"spillover starts with {parts[0]!r}, not a channel count",
                             keyword=keyword) from None
    if n <= 0 or n > 10_000:
        raise FCSFormatError(path, f"spillover declares {n} channels", keyword=keyword)
    if len(parts) == 1 + n + n * n:
        names, numbers = parts[1:1 + n], parts[1 + n:]
    elif len(parts) == 1 + n * n:
        names, numbers = [], parts[1:]
    else:
        raise FCSFormatError(path, f"spillover declares {n} channels, so it needs "
                             f"{1 + n + n * n} values, but has {len(parts)}", keyword=keyword)
    try:
        matrix = np.array([float(v) for v in numbers], dtype=np.float64).reshape(n, n)
    except ValueError:
        raise FCSFormatError(path, "spillover holds a value that is not a number",
                             keyword=keyword) from None
    return n, names, matrix


def spillover_from_keywords(keywords: dict[str, str], channels: tuple[str, ...],
                            markers: tuple[str | None, ...], fluorescence: list[int],
                            path) -> tuple[Spillover | None, list[str], str | None]:
    """Find and parse the first readable spillover keyword; map its names to channels.

    Names are matched to $PnN first, then to $PnS (some software writes markers);
    names that are all parameter numbers, matching no name, are read as numbers.
    A matrix that names only some channels is kept for those channels; names that
    match no channel are dropped with a warning. A matrix in percent (diagonal
    100) is scaled to fractions.

    A spillover keyword that cannot be read (real instruments write matrices
    with fewer values than they declare) does not make the file unreadable: it
    is skipped with a warning, the next spillover keyword is tried, and the
    third value returned says what was wrong, so that gating which needs the
    file's matrix can refuse this file alone.
    """
    warnings: list[str] = []
    errors: list[str] = []
    for keyword in SPILLOVER_KEYWORDS:
        if keyword not in keywords or keywords[keyword].strip() in ("", "0"):
            continue
        try:
            spill, found = _spillover(keywords[keyword], keyword, channels, markers,
                                      fluorescence, path)
        except FCSFormatError as exc:
            errors.append(f"{keyword} cannot be read ({exc.problem})")
            warnings.append(f"{keyword} cannot be read ({exc.problem}); the events are read "
                            "without it")
            continue
        return spill, warnings + found, None
    return None, warnings, "; ".join(errors) or None


def _spillover(value: str, keyword: str, channels, markers, fluorescence, path):
    warnings: list[str] = []
    n, names, matrix = parse_spillover(value, path, keyword)
    if not names:
        if n > len(fluorescence):
            raise FCSFormatError(path, f"{keyword} has {n} unnamed rows but the file has only "
                                 f"{len(fluorescence)} fluorescence channels", keyword=keyword)
        names = [channels[i] for i in fluorescence[:n]]
        warnings.append(f"{keyword} names no channels; assumed the first {n} fluorescence "
                        "channels in file order")
    if (not any(name in channels or name in markers for name in names)
            and all(name.isdigit() and 1 <= int(name) <= len(channels) for name in names)):
        # Accuri C6 and Beckman Coulter Gallios files name parameters by number
        # ("2,3,4,..."), not by $PnN as the standard asks: $P3N is meant by "3".
        names = [channels[int(name) - 1] for name in names]
        warnings.append(f"{keyword} names its channels by parameter number; read them as "
                        f"{', '.join(names)}")
    resolved, keep, unknown = [], [], []
    for i, name in enumerate(names):
        if name in channels:
            resolved.append(name)
            keep.append(i)
        elif name in markers:
            resolved.append(channels[markers.index(name)])
            keep.append(i)
        else:
            unknown.append(name)
    if unknown:
        # One warning for all of them: a BD Influx writes its 24-detector SPILL
        # into files that record 4 of those detectors, which would otherwise be
        # 20 warnings saying the same thing.
        listed = ", ".join(repr(name) for name in unknown)
        warnings.append(f"{keyword} names {len(unknown)} detector(s) that are no channel of "
                        f"this file ({listed}); dropped their rows and columns")
    if not keep:
        return None, warnings
    matrix = matrix[np.ix_(keep, keep)]
    diag = np.diag(matrix)
    if np.allclose(diag, 100.0):
        matrix = matrix / 100.0
        warnings.append(f"{keyword} is in percent; converted to fractions")
    elif not np.allclose(diag, 1.0):
        warnings.append(f"{keyword} has diagonal values other than 1: {diag.round(4).tolist()}")
    return Spillover(tuple(resolved), matrix), warnings


def format_spillover(spill: Spillover) -> str:
    """The $SPILLOVER value for a matrix, with full float precision."""
    values = [repr(float(v)) for v in spill.matrix.ravel()]
    return ",".join([str(len(spill.detectors)), *spill.detectors, *values])
