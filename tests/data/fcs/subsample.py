"""Make the subsampled real files of this folder from their originals (see SOURCES.md).

    python subsample.py ORIGINAL.fcs OUT.fcs STEP COUNT

keeps every STEP-th event (acquisition order, first COUNT of them) and leaves the
instrument's HEADER and TEXT as they were, byte for byte, except the numbers that
describe the shorter DATA segment: $TOT, $ENDDATA, the ANALYSIS and supplemental-TEXT
offsets and $NEXTDATA, each rewritten zero-padded to its original width, and the
HEADER's DATA/ANALYSIS offsets. Anything after the DATA segment is dropped. Needs a
fixed-width list-mode file ($MODE L, every $PnB a multiple of 8).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _keywords(text: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    delim = text[:1]
    parts = text[1:].split(delim)
    return delim, {parts[i].upper(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}


def _set(text: bytes, delim: bytes, key: bytes, value: int) -> bytes:
    pattern = re.compile(re.escape(delim + key + delim) + rb"(\s*\d+\s*)" + re.escape(delim),
                         re.IGNORECASE)
    match = pattern.search(text)
    if match is None:
        return text
    width = len(match.group(1))
    new = str(value).zfill(width).encode()
    if len(new) != width:
        raise SystemExit(f"{key.decode()}: {value} does not fit in {width} characters")
    return text[:match.start(1)] + new + text[match.end(1):]


def subsample(original: Path, out: Path, step: int, count: int) -> int:
    blob = original.read_bytes()
    header = bytearray(blob[:58])
    offsets = [int(header[10 + 8 * i:18 + 8 * i] or b"0") for i in range(6)]
    text_begin, text_end = offsets[0], offsets[1]
    text = blob[text_begin:text_end + 1]
    delim, kw = _keywords(text)
    if kw.get(b"$MODE", b"L").strip() != b"L":
        raise SystemExit("only list-mode files")
    n_par, total = int(kw[b"$PAR"]), int(kw[b"$TOT"])
    widths = [int(kw[b"$P%dB" % (i + 1)]) for i in range(n_par)]
    if any(w % 8 for w in widths):
        raise SystemExit("only byte-aligned parameters")
    row = sum(widths) // 8
    begin = offsets[2] or int(kw[b"$BEGINDATA"])
    data = blob[begin:begin + total * row]
    rows = [data[i * row:(i + 1) * row] for i in range(0, total, step)][:count]
    kept = len(rows)
    end = begin + kept * row - 1
    text = _set(text, delim, b"$TOT", kept)
    text = _set(text, delim, b"$ENDDATA", end)
    for key in (b"$BEGINANALYSIS", b"$ENDANALYSIS", b"$BEGINSTEXT", b"$ENDSTEXT", b"$NEXTDATA"):
        text = _set(text, delim, key, 0)
    if offsets[2]:
        header[34:42] = str(end).rjust(8).encode() if end < 10 ** 8 else b"       0"
    header[42:58] = b"       0       0"
    head = bytes(header) + blob[58:text_begin] + text + blob[text_end + 1:begin]
    out.write_bytes(head + b"".join(rows))
    return kept


if __name__ == "__main__":
    src, dst, step, count = sys.argv[1:5]
    print(subsample(Path(src), Path(dst), int(step), int(count)), "events")
