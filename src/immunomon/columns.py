"""Tables as columns: the per-file job's tables without pandas.

A table here is a dict of equal-length columns (numpy arrays or lists) in column
order. The per-file job of ``immunomon gate`` builds, writes and returns its tables
in this form because pandas takes longer to import (about half a second) than a
small file takes to gate; a DataFrame is built only for a caller that asks for one
(``frame``). CSV is written as pandas writes it; Parquet through pyarrow, with Arrow
arrays built from and read back from their buffers, because pyarrow's own converters
import pandas.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_path

Columns = Mapping[str, Sequence]


def n_rows(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _plain(value):
    """A numpy scalar as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


def rows(columns: Columns) -> list[dict]:
    """One dict per row, with Python values (NaN stays NaN)."""
    names = list(columns)
    return [dict(zip(names, map(_plain, values))) for values in zip(*columns.values())]


def records(columns: Columns) -> list[dict]:
    """One dict per row for JSON: NaN as None."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in rows(columns)]


def frame(columns: Columns):
    """The table as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame({k: v if isinstance(v, np.ndarray) else list(v)
                         for k, v in columns.items()}, columns=list(columns))


def select(columns: Columns, names: Iterable[str]) -> dict:
    """The named columns, in that order; a name the table lacks is a column of None."""
    n = n_rows(columns)
    return {name: columns[name] if name in columns else [None] * n for name in names}


def concat(tables: Sequence[Columns]) -> dict:
    """The rows of every table, one after another; columns in order of first
    appearance, and a column a table lacks is None in its rows."""
    names = list(dict.fromkeys(name for table in tables for name in table))
    out: dict[str, list] = {name: [] for name in names}
    for table in tables:
        n = n_rows(table)
        for name in names:
            out[name].extend(map(_plain, table[name]) if name in table else [None] * n)
    return out


def _cell(value) -> str:
    """One CSV cell as pandas writes it: '' for a missing value, a float's shortest
    round-trip digits, True/False."""
    value = _plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _cells(values) -> list[str]:
    """A column's CSV cells (``_cell`` of each value); a numpy column converted to
    Python values at once, as a statistics table's thousands of numbers are."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return ["" if v != v else repr(v) for v in values.tolist()]     # NaN != NaN
    if isinstance(values, np.ndarray) and values.dtype.kind in "biu":
        return list(map(str, values.tolist()))
    return list(map(_cell, values))


def csv_text(columns: Columns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*map(_cells, columns.values())))
    return buffer.getvalue()


def _validity(valid: np.ndarray):
    """An Arrow validity bitmap (None when every value is valid)."""
    import pyarrow as pa

    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _arrow_array(values):
    """One column as an Arrow array, built from its buffers: pyarrow's own
    constructors import pandas to look for pandas objects, which would cost more
    than the rest of a small file's job. Numbers become float64 (missing and NaN
    as null, as pandas writes them) or int64, booleans bool (None as null),
    anything else strings (None as null)."""
    import pyarrow as pa

    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.dtype == object:
        plain = [_plain(v) for v in values]
        present = [v for v in plain if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            bits = np.packbits(np.array([v is True for v in plain]), bitorder="little")
            valid = np.array([v is not None for v in plain])
            return pa.Array.from_buffers(pa.bool_(), len(plain),
                                         [_validity(valid), pa.py_buffer(bits)])
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in plain):
            array = np.array(plain, dtype=np.int64)
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             for v in present):
            array = np.array([np.nan if v is None else v for v in plain], dtype=np.float64)
        else:
            return _string_array(plain)
    n = len(array)
    if array.dtype.kind == "b":
        bits = pa.py_buffer(np.packbits(array, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [None, bits])
    if array.dtype.kind in "iu":
        data = np.ascontiguousarray(array, dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(data)])
    if array.dtype.kind == "f":
        data = np.ascontiguousarray(array, dtype=np.float64)
        return pa.Array.from_buffers(pa.float64(), n,
                                     [_validity(~np.isnan(data)), pa.py_buffer(data)])
    return _string_array([_plain(v) for v in array])


def _string_array(values: list):
    import pyarrow as pa

    encoded = [b"" if v is None else str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.array([v is not None for v in values], dtype=bool)
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [_validity(valid), pa.py_buffer(offsets),
                                  pa.py_buffer(b"".join(encoded))])


def _arrow_table(columns: Columns):
    import pyarrow as pa

    return pa.Table.from_arrays([_arrow_array(v) for v in columns.values()],
                                names=list(columns))


def write(columns: Columns, path) -> Path:
    """Write the table to ``path`` (atomically): Parquet for a ``.parquet`` name,
    CSV otherwise."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(_arrow_table(columns), tmp)
        else:
            tmp.write_text(csv_text(columns), encoding="utf-8")
    return path


_NUMBERS = {"double": np.float64, "float": np.float32, "int64": np.int64, "int32": np.int32,
            "int16": np.int16, "int8": np.int8, "uint64": np.uint64, "uint32": np.uint32,
            "uint16": np.uint16, "uint8": np.uint8}


def _bits(buffer, offset: int, n: int) -> np.ndarray:
    packed = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(packed, count=offset + n, bitorder="little")[offset:].astype(bool)


def _python_values(array) -> list:
    """An Arrow array's values as Python values (None for null), read from its
    buffers as ``_arrow_array`` writes them: pyarrow's own converters import pandas.
    Types a population table never holds go through pyarrow."""
    kind, n, offset = str(array.type), len(array), array.offset
    validity, *data = array.buffers()
    if kind in ("string", "large_string"):
        ends = np.frombuffer(data[0], dtype=np.int32 if kind == "string" else np.int64)
        ends = ends[offset:offset + n + 1]
        raw = data[1].to_pybytes() if data[1] is not None else b""
        values = [raw[a:b].decode("utf-8") for a, b in zip(ends[:-1], ends[1:])]
    elif kind == "bool":
        values = _bits(data[0], offset, n).tolist()
    elif kind in _NUMBERS:
        values = np.frombuffer(data[0], dtype=_NUMBERS[kind])[offset:offset + n].tolist()
    elif kind == "null":
        return [None] * n
    else:
        return array.to_pylist()
    if validity is None or array.null_count == 0:
        return values
    return [v if ok else None for v, ok in zip(values, _bits(validity, offset, n))]


def read_parquet(path) -> dict:
    """A Parquet file's columns, as lists of Python values (None for null)."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read()
    return {name: [v for chunk in column.chunks for v in _python_values(chunk)]
            for name, column in zip(table.column_names, table.columns)}
