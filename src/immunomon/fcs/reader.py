"""Reading FCS 2.0, 3.0, 3.1 and 3.2 files.

``read_fcs_metadata`` reads only HEADER and TEXT. ``read_fcs`` also reads the
DATA segment once, straight into the array it converts (float32 data in host
byte order is not copied at all), and turns stored channel values into scale
values as the standard describes: log-amplified integers ($PnE f1,f2 with f1 >
0) become f2 * 10^(f1 * x / $PnR), and linear channels are divided by their
gain $PnG. Pass ``scale=False`` for the stored channel values (still masked).

Everything a broken file can cause ends in ``FCSFormatError`` naming the file.
No allocation is sized from a count the file cannot back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import FCSFormatError, ImmunomonError
from .channel_kinds import is_fluorescence, is_time
from .data import (Layout, byte_aligned, decode_ascii, decode_bytes, decode_packed,
                   decode_uniform, _uniform_dtype, layout_from_keywords)
from .sample import Channel, ChannelNames, Sample, Spillover
from .spill import spillover_from_keywords
from .text import HEADER_LENGTH, Header, parse_header, parse_text

MAX_DATASETS = 10_000


@dataclass
class FCSMetadata(ChannelNames):
    """HEADER and TEXT of one data set, with the DATA segment located but not read."""

    path: Path
    version: str
    dataset: int
    header: Header
    keywords: dict[str, str]
    channel_info: tuple[Channel, ...]
    spillover: Spillover | None
    layout: Layout
    n_events: int
    data_start: int
    data_end: int            # inclusive, as in the standard
    raw_text: bytes
    warnings: list[str] = field(default_factory=list)
    n_datasets: int = 1
    spillover_error: str | None = None   # a spillover keyword was present but unreadable


# ----------------------------------------------------------------------------- helpers
def _int_keyword(kw: dict[str, str], key: str, path) -> int | None:
    value = kw.get(key)
    if value is None or not value.strip():
        return None
    try:
        number = int(value.strip())
    except ValueError:
        try:
            as_float = float(value.strip())
        except ValueError:
            raise FCSFormatError(path, f"{key} is {value!r}, not a whole number",
                                 keyword=key) from None
        if not as_float.is_integer():
            raise FCSFormatError(path, f"{key} is {value!r}, not a whole number",
                                 keyword=key) from None
        number = int(as_float)
    if number < 0:
        raise FCSFormatError(path, f"{key} is negative ({number})", keyword=key)
    return number


def _float_keyword(kw: dict[str, str], key: str, default: float, warnings: list[str]) -> float:
    value = kw.get(key, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        warnings.append(f"{key} is {value!r}, not a number; used {default}")
        return default
    if not np.isfinite(number):
        warnings.append(f"{key} is {value!r}; used {default}")
        return default
    return number


def _amplification(kw: dict[str, str], n: int, warnings: list[str]) -> tuple[float, float]:
    value = kw.get(f"$P{n}E", "").strip()
    if not value:
        return (0.0, 0.0)
    try:
        f1, f2 = (float(p) for p in value.split(","))
    except ValueError:
        warnings.append(f"$P{n}E is {value!r}; expected 'decades,offset'; read as linear")
        return (0.0, 0.0)
    if not (np.isfinite(f1) and np.isfinite(f2)) or f1 < 0 or f1 > 100:
        warnings.append(f"$P{n}E is {value!r}; read as linear")
        return (0.0, 0.0)
    if f1 > 0 and f2 == 0:
        f2 = 1.0  # the standard says 0 here means 1
    return (f1, f2)


def _channels(kw: dict[str, str], layout: Layout, path,
              warnings: list[str]) -> tuple[Channel, ...]:
    channels = []
    for n in range(1, layout.n_params + 1):
        name = kw.get(f"$P{n}N", "").strip()
        if not name:
            name = f"P{n}"
            warnings.append(f"$P{n}N is missing; named the channel {name!r}")
        marker = kw.get(f"$P{n}S", "").strip() or None
        rng = _float_keyword(kw, f"$P{n}R", 0.0, warnings)
        gain = _float_keyword(kw, f"$P{n}G", 1.0, warnings) or 1.0
        amp = _amplification(kw, n, warnings)
        kind = layout.kinds[n - 1]
        if amp[0] > 0 and kind == "A":
            warnings.append(f"$P{n}E is log amplification on ASCII data, which the "
                            "standard forbids; ignored it")
            amp = (0.0, 0.0)
        bits = layout.bits[n - 1]
        channels.append(Channel(name, marker, rng, gain, amp, kind, bits or 0))
    no_range = [f"$P{n}R ({c.name})" for n, c in enumerate(channels, start=1)
                if f"$P{n}R" not in kw]
    if no_range:
        warnings.append(f"{', '.join(no_range)} missing: the range of every channel is a "
                        "keyword the standard requires")
    float_logs = [c.name for c in channels if c.amplification[0] > 0 and c.datatype != "I"]
    if float_logs:
        warnings.append(f"$PnE declares log amplification on float channels "
                        f"({', '.join(float_logs)}), which the standard forbids; their "
                        "events decide whether they hold log10 values or linear ones")
    names = [c.name for c in channels]
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        warnings.append(f"channel names repeat: {', '.join(dupes)}; lookups find the first")
    return tuple(channels)


def _read_at(fh, offset: int, length: int, file_size: int, path, what: str) -> bytes:
    if offset < 0 or length < 0 or offset + length > file_size:
        raise FCSFormatError(path, f"{what} runs to byte {offset + length - 1}, beyond the end "
                             f"of the file ({file_size} bytes); the file is truncated or its "
                             "offsets are wrong", offset=offset)
    fh.seek(offset)
    return fh.read(length)


def _locate_data(header: Header, kw: dict[str, str], layout: Layout, n_events: int | None,
                 file_size: int, path, warnings: list[str]) -> tuple[int, int, int, Layout]:
    """Choose the DATA segment among HEADER and TEXT offsets; returns (start, end,
    events, layout), the layout corrected when the segment shows how values are stored.

    HEADER fields are blank or zero above 99,999,999 bytes; then $BEGINDATA and
    $ENDDATA (64-bit values in big files) are used. When the two disagree, the
    one that does not overlap TEXT wins, then the one whose length matches the
    declared events, then the HEADER. An $ENDDATA one byte
    past the data (written by Accuri cytometers) is accepted.
    """
    if n_events == 0:
        return header.text[1] + 1, header.text[1], 0, layout
    base = header.start
    begin_kw = _int_keyword(kw, "$BEGINDATA", path)
    end_kw = _int_keyword(kw, "$ENDDATA", path)
    candidates: list[tuple[str, int, int]] = []
    if header.data[0] is not None and header.data[1] is not None:
        candidates.append(("HEADER", header.data[0], header.data[1]))
    if begin_kw and end_kw:
        candidates.append(("TEXT", base + begin_kw, base + end_kw))
    if not candidates:
        raise FCSFormatError(path, "neither the HEADER nor $BEGINDATA/$ENDDATA locate the "
                             "DATA segment", keyword="$BEGINDATA")
    valid = [(src, b, e) for src, b, e in candidates if 0 <= b < file_size and e >= b - 1]
    if not valid:
        src, b, e = candidates[0]
        raise FCSFormatError(path, f"DATA segment {b}..{e} ({src}) lies beyond the end of the "
                             f"file ({file_size} bytes); the file is truncated or its offsets "
                             "are wrong", offset=b)

    if layout.packed and n_events:
        # $PnB such as 10 describes a bit stream, but Beckman Coulter's CXP software
        # writes such values in 16-bit words: the segment's size tells which it is.
        def fits(lay: Layout) -> bool:
            return any(0 <= (e - b + 1) - lay.data_bytes(n_events) <= 1 for _, b, e in valid)
        aligned = byte_aligned(layout)
        if fits(aligned) and not fits(layout):
            widths = sorted({f"{b}-in-{w}" for b, w in zip(layout.bits, aligned.bits)
                             if b != w})
            warnings.append(
                f"$PnB declares bit-packed values but the DATA segment is sized for whole "
                f"bytes; read each value from its own bytes, keeping the declared bits "
                f"({', '.join(widths)})")
            layout = aligned

    if n_events is None:  # FCS 2.0 may omit $TOT: derive it from the segment
        src, b, e = valid[0]
        e = min(e, file_size - 1)
        per_event = layout.data_bytes(1)
        if per_event is None:
            raise FCSFormatError(path, "$TOT is missing and delimited ASCII data cannot be "
                                 "counted without it", keyword="$TOT")
        n = (e - b + 1) * 8 // layout.event_bits if layout.kinds[0] == "I" else \
            (e - b + 1) // per_event
        warnings.append(f"$TOT is missing; the DATA segment holds {n} events")
        return b, e, n, layout

    expected = layout.data_bytes(n_events)
    if expected is None:  # delimited ASCII: trust the segment as given
        src, b, e = valid[0]
        return b, min(e, file_size - 1), n_events, layout

    if len(candidates) == 2 and (candidates[0][1:] != candidates[1][1:]):
        t0, t1 = header.text

        def rank(c):
            # DATA never overlaps TEXT: such offsets are wrong (an Accuri C6 file's
            # $BEGINDATA points into its TEXT) whatever their length says
            _, b, e = c
            return (b <= t1 and e >= t0, not 0 <= (e - b + 1) - expected <= 1, c[0] != "HEADER")
        order = sorted(valid, key=rank)
        chosen = order[0]
        warnings.append(
            f"HEADER and TEXT disagree on the DATA segment ({candidates[0][1]}..{candidates[0][2]}"
            f" vs {candidates[1][1]}..{candidates[1][2]}); used the {chosen[0]} offsets")
    else:
        chosen = valid[0]
    src, b, e = chosen
    length = e - b + 1
    if length != expected:
        if length == expected + 1:
            warnings.append(f"DATA segment ends one byte past its data ({src} offsets); "
                            "read the declared events")
        elif length > expected:
            spare = _events_in(layout, length) - n_events
            warnings.append(
                f"DATA segment is {length} bytes but {n_events} events need {expected}; "
                "read the declared events" + (
                    f", though the segment has room for {spare:,} {MORE_THAN_TOT} "
                    "($TOT, $PAR or a $PnB/$DATATYPE keyword may be wrong)" if spare > 0
                    else ""))
    if b + expected > file_size:
        available = max(0, file_size - b)
        if length >= expected:      # the segment's own offsets run past the end: cut short
            raise FCSFormatError(
                path, f"declares {n_events} events ({expected} bytes of DATA from byte {b}) "
                f"but only {available} bytes remain in the file; it is truncated",
                keyword="$TOT")
        raise FCSFormatError(
            path, f"$TOT declares more events than the file can hold: $TOT = {n_events:,} "
            f"needs {expected:,} bytes of DATA, but the DATA segment ({src} offsets "
            f"{b}..{e}) holds {length:,} bytes ({_events_in(layout, length):,} events) and "
            f"the file has {available:,} bytes ({_events_in(layout, available):,} events) "
            f"from byte {b} on; $TOT is wrong: correct it to the number of events the file "
            "holds", keyword="$TOT")
    if length < expected and length != expected - 1:
        warnings.append(f"DATA segment is {length} bytes but {n_events} events need "
                        f"{expected}; read the declared events, which the file holds")
    return b, b + expected - 1, n_events, layout


#: how a reader warning says the DATA segment holds events beyond $TOT (the QC of a
#: gated sample makes such a warning a warning level flag: ``qc.reader_flags``)
MORE_THAN_TOT = "more than $TOT declares"


def _events_in(layout, n_bytes: int) -> int:
    """How many whole events ``n_bytes`` of DATA can hold."""
    if n_bytes <= 0:
        return 0
    bits = n_bytes * (1 if layout.kinds[0] == "A" else 8)
    return bits // layout.event_bits


def _fluorescence_indices(channels: tuple[Channel, ...]) -> list[int]:
    return [i for i, c in enumerate(channels)
            if is_fluorescence(c.name)]


def _parse_dataset(fh, path: Path, file_size: int, start: int,
                   index: int) -> tuple[FCSMetadata, int | None]:
    """Parse HEADER and TEXT of the data set at ``start``; returns it and $NEXTDATA."""
    fh.seek(start)
    header = parse_header(fh.read(HEADER_LENGTH), path, start)
    t0, t1 = header.text
    raw_text = _read_at(fh, t0, t1 - t0 + 1, file_size, path, "TEXT segment")
    kw, warnings = parse_text(raw_text, path, t0)

    # Supplemental TEXT (FCS 3.0+): may be anything, so never fail on it.
    s0, s1 = kw.get("$BEGINSTEXT", "0").strip(), kw.get("$ENDSTEXT", "0").strip()
    if s0.isdigit() and s1.isdigit() and int(s0) and int(s1) >= int(s0):
        b, e = start + int(s0), start + int(s1)
        if e < file_size and not (t0 <= b <= t1):
            fh.seek(b)
            stext = fh.read(e - b + 1)
            try:
                # A TEXT segment opens with its delimiter, an ASCII character other
                # than a letter or digit. CyFlow Cube files store a ZIP archive here
                # ("PK..."), which would otherwise turn into scores of junk keywords.
                if not (1 <= stext[0] <= 126) or chr(stext[0]).isalnum():
                    raise FCSFormatError(path, f"it starts with {stext[:4]!r}, not a "
                                         "delimiter, so it holds no keywords", offset=b)
                extra, extra_warnings = parse_text(stext, path, b)
            except FCSFormatError as exc:
                warnings.append(f"supplemental TEXT could not be read ({exc.problem}); ignored")
            else:
                for key, value in extra.items():
                    kw.setdefault(key, value)
                warnings.extend(f"supplemental TEXT: {w}" for w in extra_warnings)
        elif e >= file_size:
            warnings.append("supplemental TEXT lies beyond the end of the file; ignored")

    n_params = _int_keyword(kw, "$PAR", path)
    if not n_params:
        raise FCSFormatError(path, "$PAR (the number of parameters) is missing or zero",
                             keyword="$PAR")
    if n_params > len(kw):
        raise FCSFormatError(path, f"$PAR is {n_params} but TEXT holds only {len(kw)} keywords",
                             keyword="$PAR")
    layout = layout_from_keywords(kw, n_params, path)
    channel_info = _channels(kw, layout, path, warnings)
    n_events = _int_keyword(kw, "$TOT", path)
    if n_events is None and header.version >= "3.0":
        raise FCSFormatError(path, "$TOT (the number of events) is missing", keyword="$TOT")
    d0, d1, n_events, layout = _locate_data(header, kw, layout, n_events, file_size, path,
                                            warnings)
    spill, spill_warnings, spill_error = spillover_from_keywords(
        kw, tuple(c.name for c in channel_info), tuple(c.marker for c in channel_info),
        _fluorescence_indices(channel_info), path)
    warnings.extend(spill_warnings)
    meta = FCSMetadata(path=path, version=header.version, dataset=index, header=header,
                       keywords=kw, channel_info=channel_info, spillover=spill,
                       spillover_error=spill_error, layout=layout,
                       n_events=n_events, data_start=d0, data_end=d1, raw_text=raw_text,
                       warnings=warnings)
    return meta, _int_keyword(kw, "$NEXTDATA", path)


def _next_start(fh, current: int, nextdata: int, file_size: int, path) -> int:
    """$NEXTDATA is relative to the current data set; some writers make it absolute."""
    for candidate in (current + nextdata, nextdata):
        if current < candidate <= file_size - HEADER_LENGTH:
            fh.seek(candidate)
            if fh.read(3) == b"FCS":
                return candidate
    raise FCSFormatError(path, f"$NEXTDATA points to byte {current + nextdata}, where no "
                         "data set begins", keyword="$NEXTDATA")


def _open_dataset(fh, path: Path, dataset: int) -> FCSMetadata:
    file_size = os.fstat(fh.fileno()).st_size
    if not isinstance(dataset, int) or dataset < 0:
        raise FCSFormatError(path, f"data set index must be 0 or more, not {dataset!r}")
    start, seen = 0, set()
    for index in range(MAX_DATASETS):
        meta, nextdata = _parse_dataset(fh, path, file_size, start, index)
        if index == dataset:
            count = index + 1
            while nextdata and count < MAX_DATASETS:  # count the rest for the caller
                seen.add(start)
                try:
                    start = _next_start(fh, start, nextdata, file_size, path)
                    if start in seen:
                        break
                    _, nextdata = _parse_dataset(fh, path, file_size, start, count)
                except FCSFormatError as exc:
                    meta.warnings.append(f"data set {count} after this one is unreadable: "
                                         f"{exc.problem}")
                    break
                count += 1
            meta.n_datasets = count
            return meta
        if not nextdata:
            held = index + 1
            raise FCSFormatError(path, f"data set {dataset} was asked for but the file holds "
                                 f"{held}, numbered from 0 ("
                                 f"{'data set 0' if held == 1 else f'0 to {held - 1}'})",
                                 keyword="$NEXTDATA")
        seen.add(start)
        start = _next_start(fh, start, nextdata, file_size, path)
        if start in seen:
            raise FCSFormatError(path, "$NEXTDATA loops back to an earlier data set",
                                 keyword="$NEXTDATA")
    raise FCSFormatError(path, f"more than {MAX_DATASETS} data sets", keyword="$NEXTDATA")


def _guard(path, func):
    """Run a parse step; any low-level failure becomes an FCSFormatError for the file."""
    try:
        return func()
    except FCSFormatError as exc:
        if exc.path is None:
            raise FCSFormatError(path, exc.problem, offset=exc.offset,
                                 keyword=exc.keyword) from None
        raise
    except (ValueError, IndexError, KeyError, OverflowError, TypeError, MemoryError,
            UnicodeError, EOFError) as exc:
        raise FCSFormatError(path, f"malformed file ({type(exc).__name__}: {exc})") from None


def _open(path):
    if not isinstance(path, (str, os.PathLike)):
        raise ImmunomonError(f"an FCS file is read from its path (a str or Path), not "
                             f"{type(path).__name__}")
    path = Path(path)
    try:
        return path, open(path, "rb")
    except FileNotFoundError:
        raise FCSFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise FCSFormatError(path, "is a folder, not an FCS file") from None
    except OSError as exc:
        raise FCSFormatError(path, f"cannot be opened: {exc.strerror}") from None


# ----------------------------------------------------------------------------- public
def read_fcs_metadata(path, dataset: int = 0) -> FCSMetadata:
    """Read HEADER and TEXT of one data set (no DATA): fast enough to scan thousands."""
    path, fh = _open(path)
    with fh:
        return _guard(path, lambda: _open_dataset(fh, path, dataset))


def _read_events(fh, meta: FCSMetadata) -> np.ndarray:
    layout, n = meta.layout, meta.n_events
    p = layout.n_params
    if n == 0:
        return np.empty((0, p), dtype=np.float32)
    dtype = _uniform_dtype(layout)
    if dtype is not None and dtype.kind == "f" and not dtype.isnative:
        return _read_swapped(meta, dtype, n * p).reshape(n, p).astype(np.float32, copy=False)
    if dtype is not None:
        # Straight from the path at an offset: the same single read as numpy's own.
        raw = np.fromfile(meta.path, dtype=dtype, count=n * p, offset=meta.data_start)
        if raw.size != n * p:
            raise FCSFormatError(meta.path, "DATA segment is shorter than the file size "
                                 "suggested; the file changed while it was read",
                                 offset=meta.data_start)
        return decode_uniform(raw, n, layout)
    nbytes = meta.data_end - meta.data_start + 1
    fh.seek(meta.data_start)
    raw = np.fromfile(fh, dtype=np.uint8, count=nbytes)
    if layout.kinds[0] == "A":
        return decode_ascii(raw, n, layout, meta.path)
    if layout.packed:
        return decode_packed(raw, n, layout)
    return decode_bytes(raw, n, layout)


_CHUNK = 1 << 22   # 4 MiB


def _read_swapped(meta: FCSMetadata, dtype: np.dtype, count: int) -> np.ndarray:
    """Read foreign-byte-order floats chunk by chunk, swapping each chunk in a
    second thread while the next one is read (the read releases the GIL), so the
    swap costs little beyond the read itself."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.empty(count, dtype=dtype.newbyteorder("="))
    buf = out.view(np.uint8)
    size = dtype.itemsize
    step = _CHUNK - _CHUNK % size
    with open(meta.path, "rb", buffering=0) as fh, ThreadPoolExecutor(1) as pool:
        fh.seek(meta.data_start)
        pos, swapped, pending = 0, 0, None
        while pos < buf.size:
            got = fh.readinto(buf[pos:pos + step])
            if not got:
                raise FCSFormatError(meta.path, "DATA segment is shorter than the file size "
                                     "suggested; the file changed while it was read",
                                     offset=meta.data_start + pos)
            pos += got
            whole = pos // size          # items complete so far
            if pending is not None:
                pending.result()
            pending = pool.submit(out[swapped:whole].byteswap, True)
            swapped = whole
        if pending is not None:
            pending.result()
    return out


def holds_log10_values(column: np.ndarray, decades: float) -> bool:
    """Whether a float channel declared log-amplified ($PnE f1,f2, which the standard
    allows on integers only) stores log10 values: every finite value within 0..f1 and
    some above 0. Guava CytoSoft writes its HLog channels so (10^value is the HLin
    channel's value); float channels written with linear values under such a $PnE
    (FACSDiva 4.1 exports through flowCore) reach far beyond f1."""
    finite = column[np.isfinite(column)]
    if not finite.size:
        return False
    low, high = float(finite.min()), float(finite.max())
    return low >= 0.0 and 0.0 < high <= decades


def holds_channel_numbers(column: np.ndarray, decades: float, top: float) -> bool:
    """Whether a float channel declared log-amplified holds a log amplifier's channel
    numbers, as integer data would: every finite value a whole number within 0..$PnR,
    some above f1 (not log10 values). flowCore re-saves a MoFlo's 16-bit list mode so:
    FS Log 0..4,095 under $PnE 4,0 and $PnR 4096. Linear values written as floats
    (FACSDiva exports through flowCore, 1..10^f1) carry fractions."""
    finite = column[np.isfinite(column)]
    if not finite.size or not top > 0:
        return False
    return (float(finite.min()) >= 0.0 and decades < float(finite.max()) <= top
            and bool(np.all(finite == np.round(finite))))


def float_log_channels(events: np.ndarray, channels: tuple[Channel, ...]) -> dict[int, str]:
    """Columns of float channels with a $PnE whose events are log-amplified: 'log10'
    where they hold log10 values, 'channels' where they hold channel numbers."""
    out = {}
    for j, ch in enumerate(channels):
        decades = ch.amplification[0]
        if decades > 0 and ch.datatype in ("F", "D"):
            if holds_log10_values(events[:, j], decades):
                out[j] = "log10"
            elif holds_channel_numbers(events[:, j], decades, ch.range):
                out[j] = "channels"
    return out


def scale_events(events: np.ndarray, channels: tuple[Channel, ...]) -> dict[int, str]:
    """Stored channel values to scale values, in place ($PnE anti-log, $PnG gain).

    Returns the float channels read as log-amplified (``float_log_channels``): f2 *
    10^value for log10 values, f2 * 10^(f1 * value / $PnR) for channel numbers, as for
    integer data. Other float channels under a $PnE hold linear values and keep them."""
    decade_columns = float_log_channels(events, channels)
    for j, ch in enumerate(channels):
        decades, offset = ch.amplification
        if decades > 0 and (ch.datatype == "I" or decade_columns.get(j) == "channels"):
            column = events[:, j].astype(np.float64)
            # an absurd $PnE overflows to infinity; gating counts and flags such events
            with np.errstate(over="ignore", invalid="ignore"):
                events[:, j] = offset * np.power(10.0, decades * column / (ch.range or 1.0))
        elif j in decade_columns:
            events[:, j] = offset * np.power(10.0, events[:, j].astype(np.float64))
        elif ch.gain != 1.0 and not is_time(ch.name):
            # no amplifier acts on the clock: a Time $PnG (an Aurora export's 1.8e-5, a
            # FACSDiva file's 0.01) is not a gain, and the Time channel keeps its stored
            # units, as flowio and FlowKit keep them
            events[:, j] = events[:, j].astype(np.float64) / ch.gain
    return decade_columns


def _float_log_note(channels: tuple[Channel, ...], decade_columns: dict[int, str]
                    ) -> str | None:
    """What reading the float channels under a $PnE decided, for the sample's warnings."""
    logs = [c for c in channels if c.amplification[0] > 0 and c.datatype in ("F", "D")]
    if not logs:
        return None
    as_log = [channels[j].name for j, kind in decade_columns.items() if kind == "log10"]
    as_numbers = [channels[j].name for j, kind in decade_columns.items() if kind == "channels"]
    as_linear = [c.name for c in logs if c.name not in as_log + as_numbers]
    parts = []
    if as_log:
        parts.append(f"{', '.join(as_log)} hold log10 values (within 0..$PnE decades): "
                     "converted to linear, $PnE offset x 10^value")
    if as_numbers:
        parts.append(f"{', '.join(as_numbers)} hold whole channel numbers within 0..$PnR "
                     "(a log amplifier's, saved as floats): converted as integer data are, "
                     "$PnE offset x 10^(decades x value / $PnR)")
    if as_linear:
        parts.append(f"{', '.join(as_linear)} hold linear values: kept as stored "
                     "(divided by $PnG)")
    return "float channels under a log $PnE: " + "; ".join(parts)


def _linear_where_stored(channels: tuple[Channel, ...],
                         decade_columns: dict[int, str]) -> tuple[Channel, ...]:
    """Float channels under a $PnE that hold linear values lose the $PnE, so that
    their top of scale is their $PnR over $PnG, as for any linear channel."""
    keep = set(decade_columns)
    return tuple(replace(c, amplification=(0.0, 0.0))
                 if c.amplification[0] > 0 and c.datatype in ("F", "D") and j not in keep
                 else c for j, c in enumerate(channels))


def read_fcs(path, dataset: int = 0, *, scale: bool = True) -> Sample:
    """Read one data set of an FCS file into a ``Sample``.

    ``dataset`` picks a data set of a multi-data-set file ($NEXTDATA), from 0.
    With ``scale`` (the default), log-amplified integer channels are converted to
    linear values and linear channels divided by their gain ($PnG); the Time
    channel stays in its stored units (``Sample.timestep`` gives seconds per unit, as
    $TIMESTEP says).
    """
    path, fh = _open(path)
    with fh:
        def run():
            meta = _open_dataset(fh, path, dataset)
            return meta, _read_events(fh, meta)
        meta, events = _guard(path, run)
    warnings = list(meta.warnings)
    channel_info = meta.channel_info
    if scale:
        decade_columns = scale_events(events, channel_info)
        channel_info = _linear_where_stored(channel_info, decade_columns)
    else:
        decade_columns = float_log_channels(events, channel_info)
    note = _float_log_note(meta.channel_info, decade_columns)
    if note:
        warnings.append(note)
    return Sample(events=events, channel_info=channel_info, keywords=meta.keywords,
                  version=meta.version, spillover=meta.spillover,
                  spillover_error=meta.spillover_error, path=path, dataset=dataset,
                  warnings=warnings, raw_text=meta.raw_text)
