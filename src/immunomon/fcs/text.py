"""HEADER and TEXT segments: offsets and keyword/value pairs.

Pure functions over bytes; the reader does the file access. Keywords are
case-insensitive in every FCS version, so keys are returned upper-cased.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FCSFormatError

HEADER_LENGTH = 58
VERSIONS = ("FCS1.0", "FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2")

# Keywords that describe where segments are; a writer recomputes them.
SEGMENT_KEYWORDS = frozenset({
    "$BEGINDATA", "$ENDDATA", "$BEGINANALYSIS", "$ENDANALYSIS",
    "$BEGINSTEXT", "$ENDSTEXT", "$NEXTDATA",
})


@dataclass(frozen=True)
class Header:
    """The fixed-width HEADER of one data set. Offsets are absolute in the file;
    None where the field is blank or zero (allowed above 99,999,999 bytes)."""

    version: str
    start: int              # where this data set's HEADER begins
    text: tuple[int, int]
    data: tuple[int | None, int | None]
    analysis: tuple[int | None, int | None]


def parse_header(raw: bytes, path, start: int = 0) -> Header:
    """Parse the 58-byte HEADER found at ``start``."""
    if len(raw) < HEADER_LENGTH:
        if raw[:3] != b"FCS"[:len(raw[:3])]:            # a short file of something else
            raise FCSFormatError(path, f"not an FCS file: it is {len(raw)} bytes long and "
                                 f"starts with {raw[:12]!r}", offset=start)
        raise FCSFormatError(path, f"file ends after {len(raw)} bytes, inside the "
                             "58-byte HEADER; it is truncated or not an FCS file", offset=start)
    version = raw[:6].decode("ascii", "replace")
    if version not in VERSIONS:
        raise FCSFormatError(path, f"not an FCS file: it starts with {raw[:6]!r}, expected "
                             "'FCS2.0', 'FCS3.0', 'FCS3.1' or 'FCS3.2'", offset=start)

    def field(i: int) -> int | None:
        chunk = raw[10 + 8 * i: 18 + 8 * i]
        text = chunk.decode("ascii", "replace").strip()
        if not text:
            return None
        if not text.isdigit():
            raise FCSFormatError(path, f"HEADER offset field {i + 1} is {chunk!r}, not a "
                                 "number", offset=start + 10 + 8 * i)
        value = int(text)
        return value if value else None

    values = [field(i) for i in range(6)]
    text_begin, text_end = values[0], values[1]
    if text_begin is None or text_end is None or text_end < text_begin:
        raise FCSFormatError(path, f"HEADER gives no valid TEXT segment "
                             f"({text_begin}..{text_end})", offset=start + 10)
    return Header(
        version=version[3:],
        start=start,
        text=(start + text_begin, start + text_end),
        data=tuple(None if v is None else start + v for v in values[2:4]),
        analysis=tuple(None if v is None else start + v for v in values[4:6]),
    )


def _split_escaped(body: bytes, delim: bytes) -> list[bytes]:
    """Split on single delimiters; a doubled delimiter stands for one literal."""
    parts = body.split(delim)
    tokens: list[bytes] = []
    i, n = 0, len(parts)
    while i < n:
        token = parts[i]
        # Each empty part between two parts is one escaped delimiter pair.
        while i + 2 < n and parts[i + 1] == b"" and token != b"":
            token += delim + parts[i + 2]
            i += 2
        tokens.append(token)
        i += 1
    return tokens


def _pairs(tokens: list[bytes]) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Pair up key/value tokens. Returns the pairs and whether the layout looked sane."""
    if tokens and tokens[-1] == b"":
        tokens = tokens[:-1]            # the usual final delimiter
    sane = len(tokens) % 2 == 0
    pairs = [(tokens[i], tokens[i + 1] if i + 1 < len(tokens) else b"")
             for i in range(0, len(tokens), 2)]
    sane = sane and all(k.strip() for k, _ in pairs)
    return pairs, sane


def _decode(value: bytes) -> tuple[str, bool]:
    try:
        return value.decode("utf-8"), True
    except UnicodeDecodeError:
        return value.decode("latin-1"), False


#: how the reader says a TEXT segment was damaged (a QC warning, not a note)
DAMAGED_TEXT = "the TEXT segment looks damaged"


def parse_text(raw: bytes, path, offset: int = 0) -> tuple[dict[str, str], list[str]]:
    """Parse a TEXT (or supplemental TEXT) segment into upper-cased keywords.

    The first byte is the delimiter. Doubled delimiters inside values are
    unescaped. Files that write empty values as two adjacent delimiters (which
    the standard forbids, but some instruments do) are recognised because the
    escaped reading then leaves a key without a value; the reading that gives a
    consistent key/value layout wins, with a warning. A missing final delimiter
    is accepted, and so is padding (spaces or NULs) after the final delimiter.
    Bytes that are not UTF-8 are decoded as Latin-1, with a warning.
    """
    warnings: list[str] = []
    if len(raw) < 2:
        raise FCSFormatError(path, "TEXT segment is empty", offset=offset)
    delim = raw[:1]
    if delim.isalnum():
        warnings.append(f"TEXT delimiter is {delim!r}, a character the standard forbids")
    body = raw[1:]
    # Many writers pad TEXT to its segment end with spaces or NULs after the final
    # delimiter; the padding is no keyword, and left in it would hide the empty
    # values below (it makes both readings look broken).
    padded = body.rstrip(b" \x00") if delim not in b" \x00" else body
    if padded.endswith(delim) and len(padded) < len(body):
        body = padded

    pairs, sane = _pairs(_split_escaped(body, delim))
    dangling = False
    # An empty value written as two delimiters turns, in the escaped reading,
    # into a key that contains the delimiter: implausible, so try the plain one.
    if not sane or any(delim in k for k, _ in pairs):
        plain, plain_sane = _pairs(body.split(delim))
        if plain_sane:
            pairs = plain
            warnings.append("TEXT has empty keyword values written as two delimiters; "
                            "read them as empty values")
        elif not sane:
            warnings.append("TEXT ends with a keyword that has no value")
            dangling = True
    # a name left without a value at the end (bytes past the TEXT's last delimiter that
    # its end offset takes in) is said above, not as a padded name
    named = pairs[:-1] if dangling else pairs

    keywords: dict[str, str] = {}
    lossy = False
    padded_names = [key.strip() for key, _ in named if key.strip() != key]
    if padded_names:
        # a Partec CyFlow pads one keyword name with 200 spaces: read as its name, which
        # readers that take the name literally miss ($DATATYPE among them)
        shown = ", ".join(_decode(k)[0] for k in padded_names[:3]) + \
            (", ..." if len(padded_names) > 3 else "")
        warnings.append(f"keyword names padded with white space ({shown}): read without "
                        "it; other readers may not find them")
    for key, value in pairs:
        k, ok_k = _decode(key.strip())
        v, ok_v = _decode(value)
        lossy |= not (ok_k and ok_v)
        k = k.upper()
        if k in keywords and keywords[k] != v:
            warnings.append(f"keyword {k} appears twice; kept the first value")
            continue
        keywords.setdefault(k, v)
    if lossy:
        warnings.append("TEXT holds bytes that are not UTF-8; decoded them as Latin-1 "
                        "(the raw bytes are kept in Sample.raw_text)")
    garbled = [k for k in keywords if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in k)]
    if garbled:
        shown = ", ".join(repr(k) for k in garbled[:3]) + (", ..." if len(garbled) > 3 else "")
        warnings.append(f"keyword names hold control characters ({shown}): {DAMAGED_TEXT}, "
                        "and keywords may be missing")
    return keywords, warnings


def encode_text(keywords: dict[str, str], delim: bytes = b"/") -> bytes:
    """Serialise keywords as a TEXT segment, escaping delimiters by doubling.

    Empty values cannot be written unambiguously, so they become a single space.
    """
    out = [delim]
    doubled = delim + delim
    for key, value in keywords.items():
        value = value if value != "" else " "
        out.append(key.encode("utf-8").replace(delim, doubled))
        out.append(delim)
        out.append(value.encode("utf-8").replace(delim, doubled))
        out.append(delim)
    return b"".join(out)
