"""Read GeneMapper, GeneMarker and Peak Scanner exports into one peak table.

Two layouts are recognised from the header:

* the **per-peak report**: one row per peak, columns such as ``Dye/Sample Peak``,
  ``Sample File Name``, ``Marker``, ``Allele``, ``Size``, ``Height``, ``Area``,
  ``Data Point``; size-standard and unlabelled peaks appear as rows too;
* the **wide genotype table**: one row per sample and marker, with numbered columns
  ``Allele 1..n``, ``Size 1..n``, ``Height 1..n``, ``Area 1..n``.

Both become a :data:`PEAK_COLUMNS` DataFrame with one row per peak. Tab, comma or
semicolon separated text is accepted, quoted or not. ``OL`` (off-ladder) alleles
are kept with their size; empty cells become NaN. A malformed cell raises
:class:`ChimerismError` naming the file, line and column.

We read with the ``csv`` module rather than ``pandas.read_csv`` because error
messages must give the true line number of the offending record.
"""

from __future__ import annotations

import csv
import io
import os
import re

import numpy as np
import pandas as pd

from ..errors import ChimerismError
from .kits import Kit, normalize_locus

PEAK_COLUMNS = ["sample", "marker", "locus", "allele", "size", "height", "area",
                "dye", "data_point", "file", "line"]

# Header aliases, compared by :func:`_key`: lower case, letters and digits only, so that
# the spellings of other exporters and of R's write.table ("SampleName", "Sample.Name",
# "Allele.1", "Allele#1", "Sample Filename", "Dye, Sample Peak") match GeneMapper's.
_SAMPLE_NAME = ("sample name", "sample")
_SAMPLE_FILE = ("sample file name", "sample file", "file name", "filename")
_AREA = ("area", "area in point", "area in points", "area (data point)", "area in bp",
         "area (base pairs)", "peak area")
_HEIGHT = ("height", "peak height")
_SIZE = ("size", "size (bp)", "peak size")
_DATA_POINT = ("data point", "datapoint", "scan")
_DYE = ("dye/sample peak", "dye", "color", "colour", "dye color")
# GeneMapper ID-X and Sinofiler write the wide table's amounts as "Peak Area 1"
_WIDE = re.compile(r"^(allele|size|height|area|peakheight|peakarea)(\d+)$")
_FILE_SUFFIX = re.compile(r"\.(fsa|hid|ab1|abi)$", re.IGNORECASE)
# Cells that mean "nothing here" (R writes NA into the empty slots of a wide table).
_EMPTY = ("", "-", "NA", "N/A", "nan", "NaN")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.strip().strip('"').lower())


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")   # Windows exports; every byte maps to a character


def _find(headers: list, names) -> int | None:
    for name in names:
        if _key(name) in headers:
            return headers.index(_key(name))
    return None


class _Table:
    """The rows of a delimited text file, with the line number of each record."""

    def __init__(self, path: str, text: str):
        self.path = path
        # Excel for Mac's "Tab-delimited text" and GeneMapper's own bin files end their
        # lines with a carriage return alone, which the csv reader refuses
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.splitlines()
        # lines of a comment before the header ("# exported by ...")
        comments = 0
        while comments < len(lines) and lines[comments].lstrip().startswith("#"):
            comments += 1
        if comments:                    # blanked, so that line numbers stay the file's
            text = "\n" * comments + text.split("\n", comments)[-1]
            lines = [""] * comments + lines[comments:]
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None:
            raise ChimerismError(f"{path}: the file is empty; export the peak table or "
                                 f"genotype table as tab-separated text")
        head = lines[first]
        delim = "\t" if "\t" in head else (";" if head.count(";") > head.count(",") else ",")
        reader = csv.reader(io.StringIO(text), delimiter=delim)
        self.header_line = 0
        self.raw_headers: list = []
        self.rows: list = []           # (line number, cells)
        try:
            for cells in reader:
                if not self.raw_headers:
                    if any(c.strip() for c in cells):
                        self.header_line = reader.line_num
                        self.raw_headers = [c.strip() for c in cells]
                    continue
                if any(c.strip() for c in cells):
                    self.rows.append((reader.line_num, cells))
        except csv.Error as exc:
            raise ChimerismError(f"{path}, line {reader.line_num}: {exc}; check for an "
                                 f"unclosed quote") from None
        while self.raw_headers and not self.raw_headers[-1]:
            self.raw_headers.pop()     # GeneMapper ends each line with a tab
        self.headers = [_key(h) for h in self.raw_headers]
        self.warnings: list = []

    def cell(self, line: int, cells: list, col: int | None) -> str:
        if col is None:
            return ""
        return cells[col].strip() if col < len(cells) else ""

    def check_width(self, line: int, cells: list):
        extra = [i for i in range(len(self.headers), len(cells)) if cells[i].strip()]
        if extra:
            raise ChimerismError(
                f"{self.path}, line {line}, column {extra[0] + 1}: the row has "
                f"{len(cells)} cells but the header on line {self.header_line} has "
                f"{len(self.headers)}; check for a stray separator in a name")

    def number(self, line: int, cells: list, col: int | None, *,
               flag: str | None = None) -> float:
        text = self.cell(line, cells, col)
        if flag and text.startswith(flag):
            text = text[len(flag):]    # a flag the exporter puts before the number
        if text in _EMPTY:
            return np.nan
        try:
            value = float(text)
        except ValueError:
            raise ChimerismError(
                f"{self.path}, line {line}, column {col + 1} "
                f"({self.raw_headers[col]!r}): {text!r} is not a number; export sizes, "
                f"heights and areas as plain numbers") from None
        if not np.isfinite(value) or value < 0:
            raise ChimerismError(
                f"{self.path}, line {line}, column {col + 1} "
                f"({self.raw_headers[col]!r}): {text!r} must be a finite number >= 0")
        return value

    def missing(self, what: str, names) -> ChimerismError:
        return ChimerismError(
            f"{self.path}, line {self.header_line}: no {what} column (expected one of "
            f"{', '.join(repr(n.title()) for n in names)}); found "
            f"{', '.join(repr(h) for h in self.raw_headers) or 'no columns'}")


def _sample_name(table: _Table, line, cells, name_col, file_col) -> str:
    if name_col is None and file_col is None:
        # a one-sample export without a sample column (LRmix Studio's eDNA example): its
        # rows are one sample, named after the file; several runs in it are told apart
        # by their markers coming round again (``_split_runs``)
        name = _FILE_SUFFIX.sub("", os.path.splitext(os.path.basename(table.path))[0])
        said = f"{table.path}: no sample column: its rows are one sample, {name!r}"
        if said not in table.warnings:
            table.warnings.append(said)
        return name
    name = table.cell(line, cells, name_col)
    if not name:
        name = _FILE_SUFFIX.sub("", os.path.basename(table.cell(line, cells, file_col)))
    if not name:
        col = name_col if name_col is not None else file_col
        raise ChimerismError(f"{table.path}, line {line}, column {col + 1} "
                             f"({table.raw_headers[col]!r}): the sample name is empty")
    return name


def _normalize_allele(label: str) -> str:
    label = label.strip()
    if label in _EMPTY:
        return ""
    if label.upper().startswith("OL") or label == "?":
        return "OL"
    return label


def _marker_columns(norm: list) -> list[tuple[int, int]]:
    """(marker column, its Height column) of a table with one column per marker,
    each followed by a ``Height`` column, as GeneMapper can export the genotypes (and
    LRmix Studio reads them); [] for other layouts."""
    pairs = [(i - 1, i) for i, h in enumerate(norm) if h == "height" and i > 0
             and norm[i - 1] not in ("height", "") and _find([norm[i - 1]], _SAMPLE_NAME
                                                             + _SAMPLE_FILE) is None]
    return pairs if len(pairs) >= 3 else []


def detect_layout(headers: list) -> str | None:
    """'peaks' for the per-peak report, 'wide' for the genotype table, 'markers' for one
    column per marker, else None."""
    norm = [_key(h) for h in headers]
    if any(_WIDE.match(h) for h in norm):
        return "wide"
    if _marker_columns(norm):
        return "markers"
    if "allele" in norm or "dyesamplepeak" in norm or (
            _find(norm, _SIZE) is not None and _find(norm, _HEIGHT + _AREA) is not None):
        return "peaks"
    return None


def _read_peak_report(table: _Table) -> list:
    h = table.headers
    name_col, file_col = _find(h, _SAMPLE_NAME), _find(h, _SAMPLE_FILE)
    size_col = _find(h, _SIZE)
    if size_col is None:
        raise table.missing("size", _SIZE)
    height_col, area_col = _find(h, _HEIGHT), _area_column(table)
    if height_col is None and area_col is None:
        raise table.missing("height or area", _HEIGHT + _AREA)
    marker_col, allele_col = _find(h, ("marker", "locus")), _find(h, ("allele",))
    dye_col, dp_col = _find(h, _DYE), _find(h, _DATA_POINT)
    if marker_col is None:
        if dye_col is None:
            raise ChimerismError(
                f"{table.path}, line {table.header_line}: no Marker column and no Dye "
                f"column, so the locus of a peak cannot be inferred; export the Marker "
                f"(and Allele) columns, or at least 'Dye/Sample Peak'")
        table.warnings.append(
            f"{table.path}: no Marker column: each peak's locus was inferred from its dye "
            f"and size (the reference allele of that dye within the size tolerance)")
    records = []
    for line, cells in table.rows:
        table.check_width(line, cells)
        dye = table.cell(line, cells, dye_col)[:1].upper() or None
        marker = table.cell(line, cells, marker_col)
        records.append({
            "sample": _sample_name(table, line, cells, name_col, file_col),
            "marker": marker,
            "locus": normalize_locus(marker) if marker else "",
            "allele": _normalize_allele(table.cell(line, cells, allele_col)),
            # Peak Scanner stars the size-standard fragments' sizes ("*100.00")
            "size": table.number(line, cells, size_col, flag="*"),
            "height": table.number(line, cells, height_col),
            "area": table.number(line, cells, area_col),
            "dye": dye,
            "data_point": table.number(line, cells, dp_col),
            "line": line,
        })
    return records


def _read_marker_columns(table: _Table) -> list:
    """One column per marker, its alleles joined by commas, and a Height column after it
    holding their heights the same way (``12, 13, 14, , ,``)."""
    h = table.headers
    name_col, file_col = _find(h, _SAMPLE_NAME), _find(h, _SAMPLE_FILE)
    records = []
    for line, cells in table.rows:
        table.check_width(line, cells)
        sample = _sample_name(table, line, cells, name_col, file_col)
        for marker_col, height_col in _marker_columns(h):
            marker = table.raw_headers[marker_col]
            alleles = [a.strip() for a in table.cell(line, cells, marker_col).split(",")]
            heights = [x.strip() for x in table.cell(line, cells, height_col).split(",")]
            heights += [""] * (len(alleles) - len(heights))
            for allele, height in zip(alleles, heights):
                if not allele or allele in _EMPTY:
                    continue
                try:
                    value = float(height) if height and height not in _EMPTY else np.nan
                except ValueError:
                    raise ChimerismError(
                        f"{table.path}, line {line}, column {height_col + 1} ('Height' of "
                        f"{marker}): {height!r} is not a number") from None
                records.append({
                    "sample": sample, "marker": marker, "locus": normalize_locus(marker),
                    "allele": _normalize_allele(allele), "size": np.nan, "height": value,
                    "area": np.nan, "dye": None, "data_point": np.nan, "line": line})
    return records


def _area_column(table: _Table) -> int | None:
    """The area column to read: the first of the aliases' columns that holds a non-zero
    value. Peak Scanner fills "Area (Base Pairs)" and writes 0.00 into every row of "Area
    (Data Point)": read as areas, every sample came out not determined. A table whose
    only area column holds zeros reads as having none (heights are used, with a
    warning)."""
    columns = [table.headers.index(k) for k in dict.fromkeys(map(_key, _AREA))
               if k in table.headers]

    def values(col):
        return [table.number(line, cells, col) for line, cells in table.rows]

    for n, col in enumerate(columns):
        if any(np.isfinite(v) and v != 0 for v in values(col)):
            if n:
                table.warnings.append(
                    f"{table.path}: the {table.raw_headers[columns[0]]!r} column holds only "
                    f"zeros: areas read from {table.raw_headers[col]!r}")
            return col
    if columns and any(np.isfinite(v) for v in values(columns[0])):
        table.warnings.append(f"{table.path}: the {table.raw_headers[columns[0]]!r} column "
                              "holds only zeros: no areas")
    return None


def _read_wide_table(table: _Table) -> list:
    h = table.headers
    name_col, file_col = _find(h, _SAMPLE_NAME), _find(h, _SAMPLE_FILE)
    marker_col = _find(h, ("marker", "locus"))
    if marker_col is None:
        raise table.missing("marker", ("marker", "locus"))
    dye_col = _find(h, _DYE[1:])
    numbered: dict = {}
    for col, name in enumerate(h):
        m = _WIDE.match(name)
        if m:
            numbered.setdefault(int(m.group(2)), {})[m.group(1).removeprefix("peak")] = col
    records, named = [], []
    for line, cells in table.rows:
        table.check_width(line, cells)
        marker = table.cell(line, cells, marker_col)
        if not marker:
            continue                   # size-standard or summary rows carry no marker
        sample = _sample_name(table, line, cells, name_col, file_col)
        named.append(sample)
        dye = table.cell(line, cells, dye_col)[:1].upper() or None
        for n in sorted(numbered):
            cols = numbered[n]
            allele = _normalize_allele(table.cell(line, cells, cols.get("allele")))
            size = table.number(line, cells, cols.get("size"))
            if not allele and np.isnan(size):
                continue               # empty slot: fewer alleles than columns
            records.append({
                "sample": sample, "marker": marker, "locus": normalize_locus(marker),
                "allele": allele, "size": size,
                "height": table.number(line, cells, cols.get("height")),
                "area": table.number(line, cells, cols.get("area")),
                "dye": dye, "data_point": np.nan, "line": line,
            })
    called = {r["sample"] for r in records}
    empty = [s for s in dict.fromkeys(named) if s not in called]
    if empty:
        # a negative control, or a run that failed: said, not silently gone
        table.warnings.append(f"{table.path}: no allele at any marker for "
                              f"{', '.join(map(repr, empty))}: not a sample to compute")
    return records


def _split_runs(records: list, table: _Table, *, by_marker: bool) -> None:
    """Tell apart runs a table gives one name (a re-injection under the sample's name): a
    name that comes back after another sample's rows, or (``by_marker``, one row per
    marker) whose marker comes round again on a later row, starts a new run, read as
    ``name #2`` with a warning. strvalidator's example export holds two positive
    controls of one name, whose peaks had been pooled into one sample."""
    runs: dict[str, int] = {}           # name -> its runs so far
    markers: dict[str, set] = {}        # the current run's markers, per name
    row: dict[str, int] = {}            # the current run's last row, per name
    last = None
    for r in records:
        name = r["sample"]
        again = name in runs and (last != name or (
            by_marker and r["line"] != row[name] and r["marker"] in markers[name]))
        if name not in runs or again:
            runs[name] = runs.get(name, 0) + 1
            markers[name] = set()
            if again:
                table.warnings.append(
                    f"{table.path}, line {r['line']}: a second run named {name!r} (its "
                    f"first is earlier in the table): read as {f'{name} #{runs[name]}'!r}; "
                    "name one with FILE::SAMPLE")
        markers[name].add(r["marker"])
        row[name], last = r["line"], name
        if runs[name] > 1:
            r["sample"] = f"{name} #{runs[name]}"


def _drop_size_standard(df: pd.DataFrame, kit: Kit | None) -> pd.DataFrame:
    """Remove size-standard peaks: rows in a dye that carries no locus."""
    if df.empty or df["dye"].isna().all():
        return df
    if kit is not None and kit.dyes:
        locus_dyes = kit.dyes
    else:
        locus_dyes = set(df.loc[df["locus"] != "", "dye"].dropna())
        if not locus_dyes:
            return df
    keep = df["dye"].isna() | df["dye"].isin(locus_dyes)
    return df.loc[keep].reset_index(drop=True)


def read_export(path, *, kit: Kit | None = None) -> pd.DataFrame:
    """Read one export (either layout) into a peak table with :data:`PEAK_COLUMNS`.

    ``df.attrs["layout"]`` is ``"peaks"``, ``"wide"`` or ``"markers"``.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ChimerismError(f"{path}: cannot read ({exc.strerror})") from None
    if b"\x00" in raw[:4096]:
        raise ChimerismError(f"{path}: this is a binary file, not a text export; export "
                             f"the sizing or genotype table from GeneMapper as text")
    table = _Table(path, _decode(raw))
    layout = detect_layout(table.raw_headers)
    if layout is None:
        raise ChimerismError(
            f"{path}, line {table.header_line}: not a recognised export; the header needs "
            f"'Allele 1..n' columns (genotype table) or 'Size' with 'Height' or 'Area' "
            f"(per-peak report)")
    read = {"peaks": _read_peak_report, "wide": _read_wide_table,
            "markers": _read_marker_columns}[layout]
    records = read(table)
    _split_runs(records, table, by_marker=layout != "peaks")
    df = pd.DataFrame.from_records(records, columns=[c for c in PEAK_COLUMNS if c != "file"])
    df.insert(PEAK_COLUMNS.index("file"), "file", path)
    df = df[PEAK_COLUMNS]
    df = _drop_size_standard(df, kit)
    df.attrs["layout"] = layout
    df.attrs["file"] = path
    df.attrs["warnings"] = table.warnings
    df.attrs["has_marker"] = layout != "peaks" or _find(table.headers, ("marker", "locus")) \
        is not None
    return df


def read_exports(paths, *, kit: Kit | None = None) -> pd.DataFrame:
    """Several exports as one peak table; ``attrs["file_warnings"]`` maps each file to
    the notes its reading raised (e.g. a missing Marker column)."""
    frames = [read_export(p, kit=kit) for p in paths]
    if not frames:
        return pd.DataFrame(columns=PEAK_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"file_warnings": {f.attrs["file"]: list(f.attrs["warnings"])
                                   for f in frames if f.attrs["warnings"]}}
    return out
