"""The normalised clinical tables: their columns, and reading them from CSV.

Every table is a pandas DataFrame with the columns of :data:`SCHEMAS` (in that
order) plus ``source_file`` and ``source_line``: the file and 1-based line each
row came from, so that any later check can point back at it. Dates become
``datetime64[ns]`` at midnight, integers ``Int64``, numbers ``float64``,
categories their canonical spelling (see ``docs/clinical.md``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ClinicalDataError
from .dates import parse_date
from .gvhd import AGVHD_STAGE_MAX

__all__ = ["Column", "SCHEMAS", "FILE_NAMES", "TABLES", "clinical_error", "read_csv_text",
           "coerce_table", "read_table", "empty_table"]


def clinical_error(file, line, column, problem: str) -> ClinicalDataError:
    """The one message format: ``file, row N, column C: problem``."""
    where = [str(file) if file is not None else "<clinical data>"]
    if line is not None and not pd.isna(line):
        where.append(f"row {int(line)}")
    if column is not None:
        where.append(f"column {column}")
    return ClinicalDataError(f"{', '.join(where)}: {problem}")


def _key(text: str) -> str:
    """Spelling-insensitive key for category values: 'Dose_Reduced' == 'dose reduced'."""
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower())


def _choices(canonical: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    out = {}
    for value, synonyms in canonical.items():
        for s in (value, *synonyms):
            out[_key(s)] = value
    return out


SEX = _choices({"M": ("male",), "F": ("female",)})
DONOR_TYPE = _choices({
    "related": ("matched related", "sibling", "mrd"),
    "unrelated": ("matched unrelated", "mud", "mismatched unrelated", "mmud"),
    "haploidentical": ("haplo",),
    "syngeneic": ("twin",),
})
CONDITIONING = _choices({
    "MAC": ("myeloablative",),
    "RIC": ("reduced intensity", "reduced-intensity"),
    "NMA": ("non myeloablative", "nonmyeloablative"),
})
STEM_CELL_SOURCE = _choices({
    "PBSC": ("peripheral blood", "pb"), "BM": ("bone marrow", "marrow"),
    "CB": ("cord blood", "ucb", "cord"),
})
TREATMENT_STATUS = _choices({"on": ("given", "taken"), "held": ("interrupted", "hold")})
IMWG = _choices({c: () for c in ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")})
IFE = _choices({"positive": ("pos", "+"), "negative": ("neg", "-")})
PRESENCE = _choices({"present": ("yes", "detected"), "absent": ("no", "not detected")})
RELATION = _choices({
    "unrelated": ("not related",), "unlikely": ("unlikely related",),
    "possible": ("possibly related",), "probable": ("probably related",),
    "definite": ("definitely related",),
    "related": (),   # related, degree not stated (binary sponsor codelists)
})
ACTION = _choices({
    "none": ("dose not changed", "no action"), "dose_reduced": ("reduced",),
    "dose_increased": (), "interrupted": ("drug interrupted", "held"),
    "withdrawn": ("drug withdrawn", "discontinued"), "not_applicable": ("na",),
    "unknown": (),
})
STOP_REASON = _choices({
    "completed": ("completed protocol", "protocol completed", "end of treatment",
                  "planned end"),
    "toxicity": ("adverse event", "ae", "intolerance", "toxicity"),
    "progression": ("relapse", "disease progression", "pd", "relapse/progression"),
    "gvhd": ("acute gvhd", "chronic gvhd", "graft versus host disease"),
    "death": ("died",),
    "patient_decision": ("withdrawal", "consent withdrawn", "withdrawal of consent",
                         "patient request", "patient choice"),
    "physician_decision": ("investigator decision", "physician choice"),
    "other": (),
})
DEATH_CAUSE = _choices({
    "relapse": ("progression", "relapse/progression", "relapse or progression"),
    "nrm": ("non relapse", "non relapse mortality", "transplant related", "trm",
            "transplant related mortality"),
})


@dataclass(frozen=True)
class Column:
    """One column of a normalised table.

    ``required``: the column must be in the file; ``nullable``: a cell may be
    blank; ``lo``/``hi``: inclusive range of numbers; ``choices``: accepted
    spellings (compared case- and separator-insensitively) -> canonical value.
    """

    name: str
    kind: str  # id, text, date, int, float, enum, bool, hla
    required: bool = True
    nullable: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: Mapping[str, str] | None = None


def _stage(name: str, hi: int) -> Column:
    return Column(name, "int", lo=0, hi=hi)


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "patients": (
        Column("patient_id", "id"),
        Column("sex", "enum", nullable=True, choices=SEX),
        Column("age", "float", nullable=True, lo=0, hi=120),
        Column("diagnosis", "text", nullable=True),
        Column("transplant_date", "date"),
        Column("donor_type", "enum", nullable=True, choices=DONOR_TYPE),
        Column("hla_match", "hla", nullable=True),
        Column("conditioning", "enum", nullable=True, choices=CONDITIONING),
        Column("stem_cell_source", "enum", nullable=True, choices=STEM_CELL_SOURCE),
        Column("weight_kg", "float", required=False, nullable=True, lo=1, hi=400),
    ),
    "treatments": (
        Column("patient_id", "id"),
        Column("drug", "text"),
        Column("start_date", "date"),
        Column("stop_date", "date", nullable=True),
        Column("dose", "float", nullable=True, lo=0),
        Column("dose_unit", "text", nullable=True),
        Column("status", "enum", required=False, choices=TREATMENT_STATUS),
        Column("reason", "text", required=False, nullable=True),
        Column("stop_reason", "enum", required=False, nullable=True, choices=STOP_REASON),
    ),
    "agvhd": (
        Column("patient_id", "id"),
        Column("date", "date"),
        *(_stage(o, AGVHD_STAGE_MAX[o]) for o in ("skin", "liver", "upper_gi", "lower_gi")),
    ),
    "cgvhd": (
        Column("patient_id", "id"),
        Column("date", "date"),
        *(_stage(o, 3) for o in ("skin", "mouth", "eyes", "gi", "liver")),
        Column("lungs", "int", nullable=True, lo=0, hi=3),
        _stage("joints_fascia", 3),
        Column("genital", "int", required=False, nullable=True, lo=0, hi=3),
        Column("lung_fev1_pct", "float", required=False, nullable=True, lo=0, hi=200),
    ),
    "responses": (
        Column("patient_id", "id"),
        Column("date", "date"),
        Column("baseline", "bool", required=False, nullable=True),
        Column("category", "enum", required=False, nullable=True, choices=IMWG),
        Column("serum_m_protein_g_dl", "float", required=False, nullable=True, lo=0, hi=20),
        Column("urine_m_protein_mg_24h", "float", required=False, nullable=True, lo=0),
        Column("serum_ife", "enum", required=False, nullable=True, choices=IFE),
        Column("urine_ife", "enum", required=False, nullable=True, choices=IFE),
        Column("kappa_flc_mg_l", "float", required=False, nullable=True, lo=0),
        Column("lambda_flc_mg_l", "float", required=False, nullable=True, lo=0),
        Column("marrow_plasma_cells_pct", "float", required=False, nullable=True, lo=0,
               hi=100),
        Column("marrow_clonal_cells", "enum", required=False, nullable=True,
               choices=PRESENCE),
        Column("new_lesion", "bool", required=False, nullable=True),
    ),
    "adverse_events": (
        Column("patient_id", "id"),
        Column("term", "text"),
        Column("grade", "int", lo=1, hi=5),
        Column("onset_date", "date"),
        Column("resolution_date", "date", required=False, nullable=True),
        Column("relation", "enum", required=False, nullable=True, choices=RELATION),
        Column("action", "enum", required=False, nullable=True, choices=ACTION),
        Column("drug", "text", required=False, nullable=True),
    ),
    "labs": (
        Column("patient_id", "id"),
        Column("date", "date"),
        Column("test", "text"),
        Column("value", "float", lo=0),
        Column("unit", "text", required=False, nullable=True),
        Column("lln", "float", required=False, nullable=True, lo=0),
        Column("uln", "float", required=False, nullable=True, lo=0),
        Column("baseline", "bool", required=False, nullable=True),
    ),
    "deaths": (
        Column("patient_id", "id"),
        Column("date", "date"),
        Column("cause", "enum", choices=DEATH_CAUSE),
        Column("detail", "text", required=False, nullable=True),
    ),
    "followup": (
        Column("patient_id", "id"),
        Column("last_follow_up_date", "date"),
    ),
}
TABLES = tuple(SCHEMAS)
FILE_NAMES = {name: f"{name}.csv" for name in TABLES}
SOURCE_COLUMNS = ("source_file", "source_line")
# Free-text columns any file may carry; kept out of the normalised tables.
IGNORED_COLUMNS = ("notes", "comment", "comments")

_BLANK = {"", "na", "n/a", "."}
_TRUE = {"yes", "y", "true", "1"}
_FALSE = {"no", "n", "false", "0"}
_HLA = re.compile(r"^(\d{1,2})\s*/\s*(\d{1,2})$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_csv_text(path, *, text: str | None = None) -> pd.DataFrame:
    """All cells as stripped strings, headers lower-cased, plus ``source_line``.

    We read with the ``csv`` module, not ``pandas.read_csv``, so that each row
    keeps the true 1-based line where its record starts (quoted cells may span
    lines). Blank records are skipped; the delimiter may be ``,``, ``;`` or tab.
    """
    name = os.fspath(path)
    if text is None:
        try:
            with open(name, "rb") as fh:
                text = _decode(fh.read())
        except OSError as exc:
            raise clinical_error(name, None, None, f"cannot read the file ({exc.strerror})") \
                from None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise clinical_error(name, 1, None, "the file is empty; a header row is needed") \
            from None
    except csv.Error as exc:
        raise clinical_error(name, 1, None, f"malformed CSV ({exc})") from None
    columns = [h.strip().lower() for h in header]
    seen = set()
    for h in columns:
        if not h:
            raise clinical_error(name, 1, None, "a header cell is empty; name every column")
        if h in seen:
            raise clinical_error(name, 1, h, "the column appears twice in the header")
        seen.add(h)
    rows, lines = [], []
    start = reader.line_num + 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in record):
                continue
            if len(record) != len(columns):
                raise clinical_error(name, line, None,
                                     f"{len(record)} cells, but the header has {len(columns)}")
            rows.append([c.strip() for c in record])
            lines.append(line)
    except csv.Error as exc:
        raise clinical_error(name, start, None, f"malformed CSV ({exc})") from None
    out = pd.DataFrame(rows, columns=columns, dtype=object)
    out["source_line"] = np.asarray(lines, dtype=np.int64)
    return out


def _convert(cell: str, col: Column, file, line, date_order, label: str | None = None):
    """One cell to its typed value (None for a blank); raises with the location.

    ``label`` is the column's name in the source file when it differs.
    """
    name = label or col.name
    if cell is None or (isinstance(cell, float) and np.isnan(cell)) \
            or str(cell).strip().lower() in _BLANK:
        if not col.nullable:
            raise clinical_error(file, line, name, "a value is required here")
        return None
    s = str(cell).strip()
    kind = col.kind
    if kind in ("id", "text"):
        return s
    if kind == "date":
        try:
            return pd.Timestamp(parse_date(s, date_order=date_order))
        except ValueError as exc:
            raise clinical_error(file, line, name, str(exc)) from None
    if kind in ("int", "float"):
        if not _NUMBER.match(s):
            hint = " (use a point as decimal separator)" if re.match(r"^\d+,\d+$", s) else ""
            raise clinical_error(file, line, name, f"{s!r} is not a number{hint}")
        v = float(s)
        if kind == "int":
            if v != int(v):
                raise clinical_error(file, line, name, f"{s!r} is not a whole number")
            v = int(v)
        if (col.lo is not None and v < col.lo) or (col.hi is not None and v > col.hi):
            lo = "" if col.lo is None else f"{col.lo:g}"
            hi = "" if col.hi is None else f"{col.hi:g}"
            rng = f"{lo}-{hi}" if lo and hi else (f">= {lo}" if lo else f"<= {hi}")
            raise clinical_error(file, line, name, f"{s} is out of range ({rng})")
        return v
    if kind == "enum":
        value = col.choices.get(_key(s))
        if value is None:
            allowed = ", ".join(sorted(set(col.choices.values())))
            raise clinical_error(file, line, name,
                                 f"unknown value {s!r}; expected one of: {allowed}")
        return value
    if kind == "bool":
        low = s.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise clinical_error(file, line, name, f"{s!r} is not yes/no")
    if kind == "hla":
        m = _HLA.match(s)
        if not m or int(m[1]) > int(m[2]) or int(m[2]) == 0:
            raise clinical_error(file, line, name,
                                 f"{s!r} is not an HLA match such as 10/10 or 7/8")
        return f"{int(m[1])}/{int(m[2])}"
    raise AssertionError(kind)


def _typed(values: list, col: Column) -> pd.Series:
    if col.kind == "date":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ns]")
    if col.kind == "int":
        return pd.Series(values, dtype="Int64")
    if col.kind == "float":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if col.kind == "bool":
        return pd.Series(values, dtype="boolean")
    return pd.Series(values, dtype=object)


def empty_table(table: str) -> pd.DataFrame:
    """A normalised table with no rows (a file that was not supplied)."""
    data = {c.name: _typed([], c) for c in SCHEMAS[table]}
    data["source_file"] = pd.Series([], dtype=object)
    data["source_line"] = pd.Series([], dtype="int64")
    return pd.DataFrame(data)


def coerce_table(raw: pd.DataFrame, table: str, file, *, date_order: str | None = None,
                 strict_columns: bool = True, labels: Mapping[str, str] | None = None
                 ) -> pd.DataFrame:
    """Check and type a table of strings (with ``source_line``) into normalised form.

    ``strict_columns``: reject columns the schema does not know (a misspelt
    optional column would otherwise be dropped without a word). ``labels``
    maps schema columns to their names in the source file, for messages.
    """
    labels = labels or {}
    schema = SCHEMAS[table]
    known = {c.name for c in schema}
    if strict_columns:
        for name in raw.columns:
            if name not in known and name != "source_line" and name not in IGNORED_COLUMNS:
                raise clinical_error(
                    file, 1, name, f"unknown column for the {table} table; expected "
                    f"{', '.join(c.name for c in schema)}")
    for c in schema:
        if c.required and c.name not in raw.columns:
            raise clinical_error(file, 1, labels.get(c.name, c.name),
                                 f"required column missing from the {table} table")
    lines = raw["source_line"].to_numpy() if len(raw) else np.array([], dtype=np.int64)
    data = {}
    for c in schema:
        if c.name in raw.columns:
            cells = raw[c.name].tolist()
            values = [_convert(v, c, file, ln, date_order, labels.get(c.name))
                      for v, ln in zip(cells, lines)]
        elif c.name == "status":
            values = ["on"] * len(raw)
        else:
            values = [None] * len(raw)
        data[c.name] = _typed(values, c)
    out = pd.DataFrame(data)
    out["source_file"] = pd.Series([os.fspath(file)] * len(raw), dtype=object)
    out["source_line"] = pd.Series(lines, dtype="int64")
    # Source column names, so later cross-table checks can name them too.
    out.attrs["labels"] = {k: v for k, v in labels.items() if k != v}
    return out


def read_table(path, table: str, *, date_order: str | None = None) -> pd.DataFrame:
    """Read one of the documented CSV files (``table`` names its schema)."""
    if table not in SCHEMAS:
        raise ValueError(f"unknown clinical table {table!r}; one of {', '.join(TABLES)}")
    return coerce_table(read_csv_text(path), table, os.fspath(path), date_order=date_order)
