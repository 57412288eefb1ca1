"""Build FCS files byte by byte for tests, independently of immunomon's writer.

Every quirk test constructs its file here, with full control over the HEADER,
the TEXT bytes and the DATA encoding. Integer packing uses plain Python
integers, one value at a time, so it shares no code with the vectorised reader.
"""

from __future__ import annotations

import struct

import numpy as np


def text_bytes(keywords: dict[str, str], delim: bytes = b"/", *, final: bool = True,
               escape: bool = True, encoding: str = "utf-8") -> bytes:
    out = bytearray(delim)
    for i, (k, v) in enumerate(keywords.items()):
        kb, vb = k.encode(encoding), v.encode(encoding)
        if escape:
            kb, vb = kb.replace(delim, delim * 2), vb.replace(delim, delim * 2)
        out += kb + delim + vb
        if final or i < len(keywords) - 1:
            out += delim
    return bytes(out)


def header(version: str, text: tuple[int, int], data: tuple[int, int],
           analysis: tuple[int, int] = (0, 0), blank_data: bool = False) -> bytes:
    def f(v):
        return b" " * 8 if v is None else f"{v:>8}".encode()
    d = (None, None) if blank_data else data
    return (f"FCS{version}".encode() + b" " * 4 + f(text[0]) + f(text[1]) + f(d[0]) + f(d[1])
            + f(analysis[0]) + f(analysis[1]))


def channel_keywords(names, bits, ranges=None, markers=None, extra=None) -> dict[str, str]:
    kw = {"$PAR": str(len(names))}
    for n, name in enumerate(names, start=1):
        kw[f"$P{n}N"] = name
        kw[f"$P{n}B"] = str(bits[n - 1])
        kw[f"$P{n}R"] = str((ranges or [262144] * len(names))[n - 1])
        kw[f"$P{n}E"] = "0,0"
        if markers and markers[n - 1]:
            kw[f"$P{n}S"] = markers[n - 1]
    kw.update(extra or {})
    return kw


def assemble(keywords: dict[str, str], data: bytes, *, version: str = "3.1",
             delim: bytes = b"/", text_start: int = 58, header_data: str = "both",
             data_gap: int = 0, final_delim: bool = True, escape: bool = True,
             encoding: str = "utf-8", enddata_extra: int = 0, trailing: bytes = b"",
             stext: bytes | None = None, text_pad: bytes = b"") -> bytes:
    """A whole data set. ``header_data`` is 'both' (offsets in HEADER and TEXT),
    'zero' (HEADER fields 0, TEXT has them), 'blank' (HEADER fields blank) or
    'header-only' (FCS 2.0 style, no $BEGINDATA/$ENDDATA). ``text_pad`` follows the
    TEXT bytes inside the TEXT segment, as the padding some writers add."""
    kw = dict(keywords)
    if header_data != "header-only":
        kw["$BEGINDATA"] = "0" * 20
        kw["$ENDDATA"] = "0" * 20
    if stext is not None:
        kw["$BEGINSTEXT"] = "0" * 20
        kw["$ENDSTEXT"] = "0" * 20
    probe = text_bytes(kw, delim, final=final_delim, escape=escape, encoding=encoding) + text_pad
    text_end = text_start + len(probe) - 1
    stext_start = text_end + 1
    data_start = stext_start + (len(stext) if stext is not None else 0) + data_gap
    data_end = data_start + len(data) - 1 + enddata_extra
    if header_data != "header-only":
        kw["$BEGINDATA"] = str(data_start).zfill(20)
        kw["$ENDDATA"] = str(data_end).zfill(20)
    if stext is not None:
        kw["$BEGINSTEXT"] = str(stext_start).zfill(20)
        kw["$ENDSTEXT"] = str(stext_start + len(stext) - 1).zfill(20)
    text = text_bytes(kw, delim, final=final_delim, escape=escape, encoding=encoding) + text_pad
    assert len(text) == len(probe)
    hd = {"both": (data_start, data_end), "header-only": (data_start, data_end),
          "zero": (0, 0), "blank": (0, 0)}[header_data]
    head = header(version, (text_start, text_end), hd, blank_data=header_data == "blank")
    head = head + b" " * (text_start - len(head))
    return (head + text + (stext or b"") + b"\0" * data_gap + data
            + b"\0" * max(0, enddata_extra) + trailing)


# ----------------------------------------------------------------------------- DATA
def pack_bits(values: np.ndarray, widths: list[int], little: bool) -> bytes:
    """Pack an (events x params) integer matrix into a bit stream, one value at a time.

    Little-endian streams put each value's least significant bit first,
    big-endian streams its most significant bit first.
    """
    acc, nbits = 0, 0
    if little:
        for row in values.tolist():
            for v, w in zip(row, widths):
                acc |= (int(v) & ((1 << w) - 1)) << nbits
                nbits += w
        return acc.to_bytes((nbits + 7) // 8, "little")
    for row in values.tolist():
        for v, w in zip(row, widths):
            acc = (acc << w) | (int(v) & ((1 << w) - 1))
            nbits += w
    pad = (-nbits) % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")


def pack_rows(values: np.ndarray, formats: list[str], byteorder: str) -> bytes:
    """Byte-aligned data with struct, e.g. formats ['H', 'f', 'd'] and byteorder '<'."""
    fmt = byteorder + "".join(formats)
    return b"".join(struct.pack(fmt, *row) for row in values.tolist())


def pack_uint(values: np.ndarray, nbytes: int, order: tuple[int, ...]) -> bytes:
    """Integers of ``nbytes`` each, bytes stored in $BYTEORD ``order`` (1 = least significant)."""
    out = bytearray()
    for v in values.ravel().tolist():
        le = int(v).to_bytes(nbytes, "little")
        if len(order) == nbytes:
            out += bytes(le[order[i] - 1] for i in range(nbytes))
        elif order[0] < order[-1]:
            out += le
        else:
            out += le[::-1]
    return bytes(out)
