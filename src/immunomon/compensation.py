"""Spillover matrices and their application to events.

Convention (that of the FCS ``$SPILLOVER`` keyword): ``matrix[i, j]`` is the
fraction of the dye read primarily in detector ``i`` that spills into detector
``j``, so ``observed = true @ matrix`` and ``compensated = observed @ inv(matrix)``.

The inverse is computed once in float64 and applied as one float32 matrix
product per block of rows: with the condition numbers of real spillover
matrices (below ~100) the float32 product adds an error of a few float32
roundings of the largest term, no more than storing the events as float32
already costs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from pathlib import Path

import numpy as np

from .errors import CompensationError
from .fcs.sample import Sample, Spillover
from .threads import single_threaded

__all__ = [
    "compensate", "compensate_array", "match_detectors", "read_spillover_csv",
    "read_flowjo_matrix", "MAX_CONDITION",
]

#: A matrix whose condition number exceeds this is refused: float32 results
#: would keep fewer than about two significant digits.
MAX_CONDITION = 1e6

_MAX_FILE_BYTES = 16 * 1024 * 1024     # a 500-detector matrix in text is ~3 MB
_ROW_BLOCK = 4096                      # rows per product: the block stays in cache


# --------------------------------------------------------------------------
# applying a matrix


def compensate(sample: Sample, spillover: Spillover | None = None) -> Sample:
    """A new Sample whose fluorescence channels are compensated.

    ``spillover`` defaults to the sample's own matrix (``$SPILLOVER``, ``$SPILL``
    or ``SPILL`` as read from the file). Detectors are mapped to channels by
    ``$PnN`` name (then ``$PnS``, then ignoring case, ``<>`` and a ``Comp-``
    prefix). Channels the matrix does not name are copied unchanged. Events of
    the result are float32.
    """
    where = str(sample.path) if sample.path is not None else "the sample"
    if spillover is None:
        spillover = sample.spillover
        if spillover is None:
            raise CompensationError(
                f"{where} carries no spillover matrix ($SPILLOVER, $SPILL or SPILL); "
                "pass one read with read_spillover_csv() or read_flowjo_matrix()")
        source = f"the spillover keyword of {where}"
    else:
        source = "the given spillover matrix"
    if not isinstance(spillover, Spillover):
        raise CompensationError(
            f"spillover must be an immunomon.Spillover, not {type(spillover).__name__}; "
            "read one with read_spillover_csv() or read_flowjo_matrix()")
    indices = match_detectors(sample, spillover.detectors, source=source)
    events = compensate_array(sample.events, indices, spillover.matrix, source=source)
    return dataclasses.replace(sample, events=events)


def match_detectors(sample_or_channels, detectors, *, source: str = "the spillover matrix"
                    ) -> list[int]:
    """Column index of each detector name in a Sample (or a sequence of $PnN names).

    Exact $PnN names win, then $PnS markers, then a loose match that ignores case,
    surrounding ``<>`` and whitespace, a ``Comp-`` prefix and "/" written as "_".
    """
    if isinstance(sample_or_channels, Sample):
        channels = sample_or_channels.channels
        markers = sample_or_channels.markers
        where = str(sample_or_channels.path) if sample_or_channels.path else "the sample"
    else:
        channels = tuple(sample_or_channels)
        markers = (None,) * len(channels)
        where = "the sample"
    loose = {}
    for i, name in enumerate(channels):
        loose.setdefault(_loose(name), i)
    indices, missing = [], []
    for det in detectors:
        if det in channels:
            indices.append(channels.index(det))
        elif det in markers:
            indices.append(markers.index(det))
        elif _loose(det) in loose:
            indices.append(loose[_loose(det)])
        else:
            missing.append(det)
    if missing:
        raise CompensationError(
            f"{source} names detector(s) {', '.join(map(repr, missing))} that {where} lacks; "
            f"its channels are: {', '.join(channels)}. Use a matrix made for this panel "
            "or rename the detectors to match")
    seen = {}
    for det, i in zip(detectors, indices):
        if i in seen:
            raise CompensationError(
                f"{source} maps detectors {seen[i]!r} and {det!r} to the same channel "
                f"{channels[i]!r}; each detector must appear once")
        seen[i] = det
    return indices


def _loose(name: str) -> str:
    # FlowJo writes a detector's "/" as "_" in a workspace's matrix (v-450_50-B-A)
    name = name.strip().strip("<>").strip().casefold().replace("/", "_")
    return name[5:] if name.startswith("comp-") else name


def compensate_array(events: np.ndarray, channel_indices, spillover_matrix, *,
                     dtype=np.float32, source: str = "the spillover matrix") -> np.ndarray:
    """Compensated copy of ``events`` (n_events x n_channels), as float32.

    ``channel_indices[k]`` is the column of the detector of row/column ``k`` of
    ``spillover_matrix``; the other columns are copied unchanged. With
    ``dtype=np.float64`` the product and the result are float64 (for exact
    comparisons with double-precision references; twice the memory).
    """
    events = np.asarray(events)
    if events.ndim != 2:
        raise CompensationError(f"events must be a 2-D array (events x channels), "
                                f"got shape {events.shape}")
    idx = np.asarray(channel_indices, dtype=np.int64).reshape(-1)
    inverse = spillover_inverse(spillover_matrix, source=source)
    k, n_ch = idx.size, events.shape[1]
    if inverse.shape[0] != k:
        raise CompensationError(
            f"{source} is {inverse.shape[0]}x{inverse.shape[0]} but {k} channel indices "
            "were given")
    if k and (idx.min() < 0 or idx.max() >= n_ch):
        raise CompensationError(f"channel indices {idx.tolist()} out of range for "
                                f"{n_ch} channels")
    if np.unique(idx).size != k:
        raise CompensationError(f"channel indices {idx.tolist()} repeat a channel")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise CompensationError(f"dtype must be float32 or float64, not {dtype}")
    if events.dtype != dtype:
        events = events.astype(dtype)
    out = np.empty(events.shape, dtype=dtype)
    if k == 0:
        out[...] = events
        return out
    # One product per block over the contiguous span of columns from the first to
    # the last compensated channel, with the inverse permuted to file order where
    # detectors meet and the identity elsewhere: no gather or scatter of columns.
    # Channels inside the span that are not compensated ("holes") are restored
    # afterwards, and rows where a hole is not finite (0 * inf would leak into the
    # compensated channels) are recomputed from the named columns alone.
    lo, hi = int(idx.min()), int(idx.max()) + 1
    span = np.eye(hi - lo)
    span[np.ix_(idx - lo, idx - lo)] = inverse
    span32 = span.astype(dtype)
    named = set(idx.tolist())
    holes = [c for c in range(lo, hi) if c not in named]
    inverse32 = inverse.astype(dtype)
    # NaN events are data: let them propagate quietly
    with single_threaded(), np.errstate(invalid="ignore"):
        for start in range(0, events.shape[0], _ROW_BLOCK):
            e = events[start:start + _ROW_BLOCK]
            o = out[start:start + _ROW_BLOCK]
            o[:, :lo] = e[:, :lo]
            o[:, hi:] = e[:, hi:]
            np.matmul(e[:, lo:hi], span32, out=o[:, lo:hi])
            for c in holes:
                column = e[:, c]
                o[:, c] = column
                if not np.isfinite(column).all():
                    rows = np.nonzero(~np.isfinite(column))[0]
                    o[np.ix_(rows, idx)] = e[np.ix_(rows, idx)] @ inverse32
    return out


def spillover_inverse(matrix, *, source: str = "the spillover matrix") -> np.ndarray:
    """float64 inverse of a spillover matrix, refusing malformed or singular ones."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise CompensationError(f"{source} is not square: shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise CompensationError(f"{source} holds values that are not finite numbers")
    if m.size == 0:
        return m.copy()
    cond = np.linalg.cond(m)
    if not cond <= MAX_CONDITION:
        raise CompensationError(
            f"{source} is singular or ill-conditioned (condition number {cond:.3g}, limit "
            f"{MAX_CONDITION:.0g}): check for a repeated or empty row or column, or a matrix "
            "made for other detectors")
    return np.linalg.inv(m)


# --------------------------------------------------------------------------
# reading matrices


def _read_text(path) -> str:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise CompensationError(f"{path}: {size} bytes is too large for a compensation "
                                    f"matrix (limit {_MAX_FILE_BYTES})")
        raw = path.read_bytes()
    except OSError as exc:
        raise CompensationError(f"{path}: cannot read ({exc.strerror or exc})") from None
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise CompensationError(f"{path}: not a text file")  # pragma: no cover (latin-1 decodes all)


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _as_fractions(matrix: np.ndarray) -> np.ndarray:
    """A matrix written in percent (diagonal all 100) is scaled to fractions, as the FCS
    reader does for $SPILLOVER."""
    if matrix.size and np.allclose(np.diag(matrix), 100.0):
        return matrix / 100.0
    return matrix


def _table_to_spillover(rows: list[list[str]], path, header_line: int) -> Spillover:
    """Header of detector names, then one row per detector, optionally led by its name."""
    header = [c.strip() for c in rows[0]]
    body = [[c.strip() for c in r] for r in rows[1:]]
    lead_names = bool(body) and all(r and _number(r[0]) is None for r in body)
    detectors = header[1:] if lead_names and (header[0] == "" or len(header) == len(body[0])) \
        else header
    detectors = [d.strip("<>").strip() for d in detectors]
    if not detectors or any(d == "" for d in detectors):
        raise CompensationError(
            f"{path} (line {header_line}): the header must name every detector; got "
            f"{rows[0]!r}")
    if len(set(detectors)) != len(detectors):
        dup = sorted({d for d in detectors if detectors.count(d) > 1})
        raise CompensationError(f"{path} (line {header_line}): detector(s) named twice: "
                                f"{', '.join(dup)}")
    n = len(detectors)
    if len(body) != n:
        raise CompensationError(
            f"{path}: matrix is not square: {len(body)} rows of values for {n} detectors "
            f"({', '.join(detectors)})")
    matrix = np.empty((n, n))
    row_names = []
    for r, cells in enumerate(body):
        line = header_line + 1 + r
        if lead_names:
            row_names.append(cells[0].strip("<>").strip())
            cells = cells[1:]
        if len(cells) != n:
            raise CompensationError(
                f"{path} (line {line}): {len(cells)} values for {n} detectors; the matrix "
                "must be square")
        for c, cell in enumerate(cells):
            v = _number(cell)
            if v is None or not np.isfinite(v):
                raise CompensationError(
                    f"{path} (line {line}, column {detectors[c]!r}): {cell!r} is not a number")
            matrix[r, c] = v
    if row_names and row_names != detectors:
        if sorted(row_names) != sorted(detectors):
            raise CompensationError(
                f"{path}: row names {row_names} differ from the header's detectors {detectors}")
        order = [row_names.index(d) for d in detectors]
        matrix = matrix[order]
    return Spillover(tuple(detectors), _as_fractions(matrix))


def read_spillover_csv(path) -> Spillover:
    """A spillover matrix from CSV: a header of detector names, one row per detector.

    A first column of row names is allowed (with an empty or any corner cell);
    rows are then put in header order. Comma, tab or semicolon separated. A
    matrix in percent (diagonal 100) is scaled to fractions.
    """
    text = _read_text(path)
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise CompensationError(f"{path}: empty; expected a header of detector names and one "
                                "row of values per detector")
    delim = _delimiter(lines[0][1])
    rows = list(csv.reader(io.StringIO("\n".join(ln for _, ln in lines)), delimiter=delim))
    return _table_to_spillover(rows, path, lines[0][0])


def read_flowjo_matrix(path) -> Spillover:
    """A compensation matrix exported by FlowJo.

    Reads both the text export (an optional name line, a tab- or comma-separated
    line of detector names, then one row of values per detector) and the XML
    ``.mtx`` file (``spilloverMatrix`` with ``spillover``/``coefficient`` elements).
    """
    text = _read_text(path)
    if text.lstrip().startswith("<"):
        return _read_mtx_xml(text, path)
    lines = [(i + 1, ln.strip("\r\n")) for i, ln in enumerate(text.splitlines())
             if ln.strip()]
    # the header is the first line of names followed by a line of numbers
    for pos in range(len(lines) - 1):
        _, head = lines[pos]
        delim = _delimiter(head)
        head_cells = [c.strip() for c in next(csv.reader([re.sub(r"^#\s*", "", head)],
                                                         delimiter=delim))]
        nxt = [c.strip() for c in next(csv.reader([lines[pos + 1][1]], delimiter=delim))]
        numeric_next = sum(_number(c) is not None for c in nxt)
        if len(head_cells) >= 1 and all(_number(c) is None for c in head_cells if c) \
                and numeric_next >= max(1, len(nxt) - 1):
            rows = [head_cells] + [
                [c.strip() for c in next(csv.reader([ln], delimiter=delim))]
                for _, ln in lines[pos + 1:]]
            return _table_to_spillover(rows, path, lines[pos][0])
    raise CompensationError(
        f"{path}: no header line of detector names followed by rows of numbers; expected a "
        "FlowJo compensation matrix export")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(elem, name: str):
    for key, value in elem.attrib.items():
        if _local(key) == name:
            return value
    return None


def _read_mtx_xml(text: str, path) -> Spillover:
    from defusedxml import ElementTree as SafeET
    from defusedxml.common import DefusedXmlException

    try:
        root = SafeET.fromstring(text)
    except DefusedXmlException as exc:
        raise CompensationError(f"{path}: refused XML ({type(exc).__name__}): entity "
                                "declarations and external references are not allowed") from None
    except SafeET.ParseError as exc:
        raise CompensationError(f"{path}: not well-formed XML ({exc})") from None
    rows: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for sp in root.iter():
        if _local(sp.tag) != "spillover":
            continue
        src = _attr(sp, "parameter")
        if not src:
            raise CompensationError(f"{path}: a spillover element has no parameter attribute")
        if src in rows:
            raise CompensationError(f"{path}: detector {src!r} has two spillover rows")
        order.append(src)
        rows[src] = {}
        for co in sp:
            if _local(co.tag) != "coefficient":
                continue
            dst, value = _attr(co, "parameter"), _attr(co, "value")
            v = _number(value) if value is not None else None
            if not dst or v is None or not np.isfinite(v):
                raise CompensationError(
                    f"{path}: coefficient of {src!r} -> {dst!r} has value {value!r}, "
                    "not a number")
            rows[src][dst] = v
    if not order:
        raise CompensationError(f"{path}: no spillover elements; expected a FlowJo .mtx "
                                "compensation matrix")
    n = len(order)
    matrix = np.zeros((n, n))
    for i, src in enumerate(order):
        extra = set(rows[src]) - set(order)
        if extra:
            raise CompensationError(f"{path}: {src!r} spills into {sorted(extra)}, which "
                                    "have no spillover row; the matrix must be square")
        for j, dst in enumerate(order):
            if dst not in rows[src]:
                raise CompensationError(f"{path}: no coefficient for {src!r} -> {dst!r}; "
                                        "the matrix must be square")
            matrix[i, j] = rows[src][dst]
    return Spillover(tuple(order), _as_fractions(matrix))
