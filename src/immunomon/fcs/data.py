"""The DATA segment: its layout from the keywords, and decoding it to float32.

Everything here is vectorised over events; the only Python loops run over
parameters. Integer values are masked to the bits that $PnR allows, as the
standard asks (instruments such as the FACSCalibur store flags in the unused
high bits of 16-bit words).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import FCSFormatError

_LITTLE_HOST = sys.byteorder == "little"


@dataclass(frozen=True)
class Layout:
    """How one event is stored: per parameter its kind (I, F, D or A) and bit width
    (None for delimited ASCII), the byte order and the integer masks."""

    kinds: tuple[str, ...]
    bits: tuple[int | None, ...]
    byteord: tuple[int, ...]
    masks: tuple[int | None, ...]

    @property
    def n_params(self) -> int:
        return len(self.kinds)

    @property
    def delimited_ascii(self) -> bool:
        return any(b is None for b in self.bits)

    @property
    def packed(self) -> bool:
        """True when some width is not a whole number of bytes (an FCS 2.0 bit stream)."""
        return any(k == "I" and b % 8 for k, b in zip(self.kinds, self.bits))

    @property
    def event_bits(self) -> int:
        return sum(self.bits)  # type: ignore[arg-type]

    def data_bytes(self, n_events: int) -> int | None:
        """Bytes that n_events occupy (bit streams round up to a whole byte);
        None for delimited ASCII, whose size the keywords do not fix."""
        if self.delimited_ascii:
            return None
        if self.kinds[0] == "A":               # $PnB counts characters
            return n_events * self.event_bits
        return (n_events * self.event_bits + 7) // 8

    @property
    def little_endian(self) -> bool:
        return self.byteord[0] <= self.byteord[-1]


def parse_byteord(value: str, path) -> tuple[int, ...]:
    try:
        order = tuple(int(p) for p in value.replace(" ", "").split(",") if p)
    except ValueError:
        raise FCSFormatError(path, f"$BYTEORD is {value!r}; expected a list such as "
                             "'1,2,3,4' or '4,3,2,1'", keyword="$BYTEORD") from None
    if not order or sorted(order) != list(range(1, len(order) + 1)):
        raise FCSFormatError(path, f"$BYTEORD {value!r} is not a permutation of 1..n",
                             keyword="$BYTEORD")
    return order


def integer_mask(range_value: float, bits: int) -> int | None:
    """The mask for integer data: the bits needed to hold values below $PnR."""
    if not (range_value > 0) or not math.isfinite(range_value):
        return None
    needed = max(1, math.ceil(math.log2(range_value)))
    if needed >= bits:
        return None
    return (1 << needed) - 1


def byte_aligned(layout: Layout) -> Layout:
    """The layout with each integer width rounded up to whole bytes, each value
    masked to its declared $PnB bits (or $PnR, when that is narrower)."""
    bits = tuple(-(-b // 8) * 8 for b in layout.bits)  # type: ignore[operator]
    masks = tuple(m if m is not None else (1 << b) - 1 if b < w else None
                  for m, b, w in zip(layout.masks, layout.bits, bits))
    return Layout(layout.kinds, bits, layout.byteord, masks)


def layout_from_keywords(kw: dict[str, str], n_params: int, path) -> Layout:
    """Read $MODE (list mode only), $DATATYPE, $PnDATATYPE (FCS 3.2), $PnB, $PnR and $BYTEORD."""
    mode = kw.get("$MODE", "L").strip().upper()
    if mode in ("C", "U"):              # FCS 2.0-3.0 histogram modes, dropped in 3.1
        kind = "correlated" if mode == "C" else "uncorrelated"
        raise FCSFormatError(path, f"$MODE is {mode!r}: its DATA segment holds {kind} "
                                   "histograms, not events; only list mode ($MODE L) is read",
                             keyword="$MODE")
    datatype = kw.get("$DATATYPE", "").strip().upper()
    if datatype not in ("I", "F", "D", "A"):
        raise FCSFormatError(path, f"$DATATYPE is {datatype!r}; only I, F, D and A exist",
                             keyword="$DATATYPE")
    byteord = parse_byteord(kw.get("$BYTEORD", "1,2,3,4"), path)
    kinds, bits, masks = [], [], []
    for n in range(1, n_params + 1):
        kind = kw.get(f"$P{n}DATATYPE", datatype).strip().upper() or datatype
        if kind not in ("I", "F", "D", "A"):
            raise FCSFormatError(path, f"$P{n}DATATYPE is {kind!r}; only I, F, D and A exist",
                                 keyword=f"$P{n}DATATYPE")
        raw_bits = kw.get(f"$P{n}B", "").strip()
        if raw_bits == "*" and kind == "A":
            width = None
        else:
            try:
                width = int(raw_bits)
            except ValueError:
                if f"$P{n}B" not in kw and n > 1 and f"$P{n - 1}B" in kw:
                    # the parameters stop short of $PAR: $PAR is the likelier fault
                    raise FCSFormatError(
                        path, f"$PAR says {n_params} parameters but the TEXT describes only "
                        f"{n - 1} ($P{n}B and on are missing); $PAR may be wrong",
                        keyword="$PAR") from None
                raise FCSFormatError(path, f"$P{n}B is {raw_bits!r}, not a number of bits",
                                     keyword=f"$P{n}B") from None
            if kind == "F":
                if width != 32:
                    raise FCSFormatError(path, f"$P{n}B is {width} but float data is 32-bit",
                                         keyword=f"$P{n}B")
            elif kind == "D":
                if width != 64:
                    raise FCSFormatError(path, f"$P{n}B is {width} but double data is 64-bit",
                                         keyword=f"$P{n}B")
            elif kind == "I" and not 1 <= width <= 64:
                raise FCSFormatError(path, f"$P{n}B is {width}; integer widths run 1..64",
                                     keyword=f"$P{n}B")
            elif kind == "A" and not 1 <= width <= 64:
                raise FCSFormatError(path, f"$P{n}B is {width}; ASCII widths run 1..64 "
                                     "characters", keyword=f"$P{n}B")
        mask = None
        if kind == "I":
            try:
                rng = float(kw.get(f"$P{n}R", "0").strip() or 0)
            except ValueError:
                rng = 0.0
            mask = integer_mask(rng, width)
        kinds.append(kind)
        bits.append(width)
        masks.append(mask)
    if any(k == "A" for k in kinds) and len(set(kinds)) > 1:
        raise FCSFormatError(path, "ASCII parameters mixed with binary ones cannot be read",
                             keyword="$DATATYPE")
    return Layout(tuple(kinds), tuple(bits), byteord, tuple(masks))


# ----------------------------------------------------------------------------- decoding
def _uniform_dtype(layout: Layout) -> np.dtype | None:
    """A single numpy dtype for every parameter, when the layout allows one."""
    if layout.packed or layout.delimited_ascii or len(set(layout.kinds)) != 1:
        return None
    kind = layout.kinds[0]
    widths = {b // 8 for b in layout.bits}  # type: ignore[operator]
    if len(widths) != 1 or kind == "A":
        return None
    width = widths.pop()
    if width not in (1, 2, 4, 8):
        return None
    if width > 1 and len(layout.byteord) == width and layout.byteord not in (
            tuple(range(1, width + 1)), tuple(range(width, 0, -1))):
        return None  # an odd order such as 3,4,1,2 needs byte shuffling
    code = {"I": "u", "F": "f", "D": "f"}[kind]
    return np.dtype(f"{'<' if layout.little_endian else '>'}{code}{width}")


def decode_uniform(raw: np.ndarray, n_events: int, layout: Layout) -> np.ndarray:
    """Decode data whose parameters share one dtype; ``raw`` is that dtype, writable.

    Float32 data in host order is returned as is (no copy).
    """
    values = raw.reshape(n_events, layout.n_params)
    if values.dtype.kind == "f":
        if values.dtype.byteorder not in ("=", "|") and not values.dtype.isnative:
            values = values.byteswap(inplace=True).view(values.dtype.newbyteorder("="))
        return values if values.dtype == np.float32 else values.astype(np.float32)
    if any(m is not None for m in layout.masks):
        masks = np.array([m if m is not None else -1 for m in layout.masks],
                         dtype=np.int64).astype(values.dtype.newbyteorder("="))
        if not values.dtype.isnative:
            values = values.byteswap(inplace=True).view(values.dtype.newbyteorder("="))
        values &= masks
    return values.astype(np.float32)


def _reorder(block: np.ndarray, byteord: tuple[int, ...], little: bool) -> np.ndarray:
    """Turn a (n, width) uint8 block into little-endian byte order."""
    width = block.shape[1]
    if width == 1:
        return block
    if len(byteord) == width:
        # Stored byte i carries significance byteord[i] (1 = least significant).
        perm = np.argsort(np.asarray(byteord) - 1)
        return block[:, perm]
    return block if little else block[:, ::-1]


def _bytes_to_float(block: np.ndarray, kind: str, mask: int | None) -> np.ndarray:
    """Convert a little-endian (n, width) uint8 block to float32 values."""
    width = block.shape[1]
    if kind == "F":
        return np.ascontiguousarray(block).view("<f4")[:, 0].astype(np.float32)
    if kind == "D":
        return np.ascontiguousarray(block).view("<f8")[:, 0].astype(np.float32)
    if width in (1, 2, 4, 8):
        ints = np.ascontiguousarray(block).view(f"<u{width}")[:, 0]
    else:  # 3, 5, 6 or 7 bytes: widen to 8 with zero high bytes
        wide = np.zeros((block.shape[0], 8), dtype=np.uint8)
        wide[:, :width] = block
        ints = wide.view("<u8")[:, 0]
    if mask is not None:
        ints = ints & np.asarray(mask, dtype=ints.dtype)
    return ints.astype(np.float32)


def decode_bytes(raw: np.ndarray, n_events: int, layout: Layout) -> np.ndarray:
    """Decode any byte-aligned binary layout (mixed widths, odd byte orders)."""
    widths = [b // 8 for b in layout.bits]  # type: ignore[operator]
    event_bytes = sum(widths)
    rows = raw[: n_events * event_bytes].reshape(n_events, event_bytes)
    out = np.empty((n_events, layout.n_params), dtype=np.float32)
    start = 0
    for j, (kind, width, mask) in enumerate(zip(layout.kinds, widths, layout.masks)):
        block = _reorder(rows[:, start:start + width], layout.byteord, layout.little_endian)
        out[:, j] = _bytes_to_float(block, kind, mask)
        start += width
    return out


def decode_packed(raw: np.ndarray, n_events: int, layout: Layout) -> np.ndarray:
    """Decode integer parameters packed in a bit stream (widths that are not whole bytes).

    Little-endian files pack least significant bit first; big-endian files pack
    most significant bit first. Each value is read with one 8-byte window.
    """
    if set(layout.kinds) != {"I"} or max(layout.bits) > 56:  # type: ignore[type-var]
        raise FCSFormatError(None, "bit-packed data must be integers of at most 56 bits",
                             keyword="$PnB")
    padded = np.zeros(raw.size + 8, dtype=np.uint8)
    padded[: raw.size] = raw
    windows = as_strided(padded, shape=(raw.size + 1, 8), strides=(1, 1))
    event_bits = layout.event_bits
    out = np.empty((n_events, layout.n_params), dtype=np.float32)
    offset = 0
    little = layout.little_endian
    for j, (width, mask) in enumerate(zip(layout.bits, layout.masks)):
        pos = np.arange(n_events, dtype=np.int64) * event_bits + offset
        words = windows[pos >> 3].view("<u8" if little else ">u8")[:, 0]
        shift = (pos & 7).astype(np.uint64)
        if little:
            values = words >> shift
        else:
            values = words >> (np.uint64(64 - width) - shift)
        keep = (1 << width) - 1 if mask is None else mask
        out[:, j] = values & np.uint64(keep)
        offset += width
    return out


def decode_ascii(raw: np.ndarray, n_events: int, layout: Layout, path) -> np.ndarray:
    """Decode $DATATYPE/A/: fixed-width fields, or values separated by delimiters."""
    text = raw.tobytes()
    try:
        if layout.delimited_ascii:
            tokens = text.replace(b",", b" ").split()
            if len(tokens) < n_events * layout.n_params:
                raise FCSFormatError(path, f"ASCII DATA holds {len(tokens)} values, fewer "
                                     f"than {n_events} events x {layout.n_params} parameters")
            values = np.array(tokens[: n_events * layout.n_params], dtype=np.float64)
            return values.reshape(n_events, layout.n_params).astype(np.float32)
        widths = list(layout.bits)
        rows = raw[: n_events * sum(widths)].reshape(n_events, sum(widths))
        out = np.empty((n_events, layout.n_params), dtype=np.float32)
        start = 0
        for j, width in enumerate(widths):
            field = np.ascontiguousarray(rows[:, start:start + width]).view(f"S{width}")[:, 0]
            out[:, j] = np.char.strip(field).astype(np.float64)
            start += width
        return out
    except ValueError as exc:
        raise FCSFormatError(path, f"ASCII DATA holds a value that is not a number ({exc})") \
            from None
