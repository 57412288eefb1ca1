"""Writing FCS 3.1 files: float32 DATA, every keyword, markers and spillover.

The file is written under a temporary name beside the target and renamed
when complete, so a crash never leaves a half-written FCS file behind.

Events are written as the scale values the Sample holds, so the keywords that
describe the stored layout are the writer's: $DATATYPE F, $PnB 32, $PnE 0,0,
$PnG 1 (gains already applied), $BYTEORD 1,2,3,4, the segment offsets,
$SPILLOVER from ``sample.spillover``. Every other keyword is written as given.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..errors import FCSFormatError
from .sample import Sample
from .spill import SPILLOVER_KEYWORDS, format_spillover
from .text import HEADER_LENGTH, SEGMENT_KEYWORDS, encode_text

_LAYOUT_KEY = re.compile(r"^\$P\d+(N|S|B|E|R|G|DATATYPE)$")
_DELIMITERS = (b"|", b"/", b"\\", b"\x0c", b"\x1e", b"~", b"^")


def _layout_keywords(sample: Sample) -> dict[str, str]:
    kw = {"$BEGINANALYSIS": "0", "$ENDANALYSIS": "0", "$BEGINSTEXT": "0",
          "$ENDSTEXT": "0", "$BEGINDATA": "0", "$ENDDATA": "0",
          "$BYTEORD": "1,2,3,4", "$DATATYPE": "F", "$MODE": "L", "$NEXTDATA": "0",
          "$PAR": str(len(sample.channel_info)), "$TOT": str(sample.n_events)}
    for n, ch in enumerate(sample.channel_info, start=1):
        kw[f"$P{n}N"] = ch.name
        if ch.marker:
            kw[f"$P{n}S"] = ch.marker
        kw[f"$P{n}B"] = "32"
        kw[f"$P{n}E"] = "0,0"
        decades, offset = ch.amplification
        rng = offset * 10.0 ** decades if decades > 0 else ch.range
        kw[f"$P{n}R"] = _number(rng)
        kw[f"$P{n}G"] = "1"
    if sample.spillover is not None:
        kw["$SPILLOVER"] = format_spillover(sample.spillover)
    return kw


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def build_keywords(sample: Sample) -> dict[str, str]:
    """The TEXT keywords to write: the sample's own, with the layout made true."""
    drop = SEGMENT_KEYWORDS | set(SPILLOVER_KEYWORDS) | {"$BYTEORD", "$DATATYPE", "$MODE",
                                                         "$PAR", "$TOT"}
    own = {k.upper(): v for k, v in sample.keywords.items()
           if k.upper() not in drop and not _LAYOUT_KEY.match(k.upper())}
    return {**_layout_keywords(sample), **own}


def _pick_delimiter(keywords: dict[str, str]) -> bytes:
    blob = "".join(keywords).encode() + "".join(keywords.values()).encode()
    return next((d for d in _DELIMITERS if d not in blob), b"/")


def _header(text_begin: int, text_end: int, data_begin: int, data_end: int) -> bytes:
    def field(v: int) -> bytes:
        return f"{v if v <= 99_999_999 else 0:>8}".encode()
    if data_end > 99_999_999:
        data_begin = data_end = 0
    return (b"FCS3.1    " + field(text_begin) + field(text_end) + field(data_begin)
            + field(data_end) + field(0) + field(0))


def encode_fcs(sample: Sample) -> tuple[bytes, np.ndarray]:
    """HEADER + TEXT bytes, and the little-endian float32 DATA, for one sample."""
    keywords = build_keywords(sample)
    delim = _pick_delimiter(keywords)
    data = np.ascontiguousarray(sample.events, dtype="<f4")
    nbytes = data.nbytes
    text_begin = HEADER_LENGTH
    begin = 0
    for _ in range(10):  # offsets are written in TEXT, so iterate to a fixed point
        keywords["$BEGINDATA"] = str(begin)
        keywords["$ENDDATA"] = str(begin + nbytes - 1 if nbytes else begin)
        text = encode_text(keywords, delim)
        new_begin = text_begin + len(text)
        if new_begin == begin:
            break
        begin = new_begin
    else:  # pragma: no cover - the digits settle in two or three rounds
        raise FCSFormatError(None, "could not settle the DATA offsets")
    end = begin + nbytes - 1 if nbytes else begin
    head = _header(text_begin, text_begin + len(text) - 1, begin, end)
    return head + text, data


def write_fcs(path, sample: Sample) -> Path:
    """Write ``sample`` as an FCS 3.1 file at ``path`` (atomically); returns the path."""
    head, data = encode_fcs(sample)
    return write_bytes(path, head, memoryview(data).cast("B") if data.size else b"")
