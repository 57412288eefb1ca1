"""Numbers in messages, rounded for people: 50,000 not 50000.0; 1e+308 not 300 digits."""

from __future__ import annotations

import math
import os


def number(x) -> str:
    """A number as people read it: 50,000; 12.5; 0.0042; 1.23e+12; nan; inf."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e9 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.4g}"


def position(x) -> str:
    """A place on a channel's scale in a gate's note: four significant digits, with no
    exponent where a scatter channel's values run to hundreds of thousands (106,600, not
    1.066e+05); 0.4531 and 2.5e-05 as ``.4g`` gives them."""
    x = float(x)
    if not math.isfinite(x) or abs(x) < 1e4 or abs(x) >= 1e9:
        return f"{x:.4g}"
    return f"{float(f'{x:.4g}'):,.0f}"


def counted(n: int, noun: str) -> str:
    """``n`` of ``noun``, plural unless one: 1 marker, 2 markers."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def ratio_percent(part, whole) -> str:
    """``part`` as a percentage of ``whole`` (3 significant digits at most), or a
    plain statement when ``whole`` is zero or not finite."""
    part, whole = float(part), float(whole)
    value = 100.0 * part / whole if whole > 0 and math.isfinite(whole) else math.inf
    if not (math.isfinite(part) and math.isfinite(value)):
        return f"{number(part)} against a usual {number(whole)}"
    if value >= 1e4:
        return f"{number(value / 100)} times the usual"
    return f"{value:.3g}% of the usual"


def unencodable_name(path) -> str | None:
    """A printable form of ``path`` when its name holds bytes that are not UTF-8 (a file
    copied from a system with another encoding: Python keeps them as lone surrogates,
    which no text file, table or database can store), else None."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    return None


NOT_UTF8 = ("the file name is not valid UTF-8 (bytes of another system's encoding); "
            "rename the file to process it")
