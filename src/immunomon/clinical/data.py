"""The ``ClinicalData`` container and ``read_clinical`` for a folder of CSV files."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from ..errors import ClinicalDataError
from .derive import derive_tables
from .tables import FILE_NAMES, SCHEMAS, TABLES, _typed, empty_table, read_table
from .validate import validate_tables

__all__ = ["ClinicalData", "read_clinical", "build_clinical"]


@dataclass(frozen=True)
class ClinicalData:
    """The normalised, validated clinical tables of one study (see docs/clinical.md).

    Each field is a DataFrame with the columns of its schema, the computed
    columns (days from transplant, grades, severities, IMWG responses) and
    ``source_file``/``source_line``. Build it with :func:`read_clinical`,
    :func:`~immunomon.clinical.read_redcap`, :func:`~immunomon.clinical.read_sdtm`
    or :func:`build_clinical`; endpoints come from
    :func:`~immunomon.clinical.endpoints`.
    """

    patients: pd.DataFrame
    treatments: pd.DataFrame
    agvhd: pd.DataFrame
    cgvhd: pd.DataFrame
    responses: pd.DataFrame
    adverse_events: pd.DataFrame
    labs: pd.DataFrame
    deaths: pd.DataFrame
    followup: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def endpoints(self, **kwargs) -> pd.DataFrame:
        """Per-patient endpoints; see :func:`immunomon.clinical.endpoints`."""
        from .endpoints import endpoints
        return endpoints(self, **kwargs)

    def intervals(self, **kwargs) -> pd.DataFrame:
        """Time-varying covariate intervals; see :func:`immunomon.clinical.intervals`."""
        from .endpoints import intervals
        return intervals(self, **kwargs)

    def lab_adverse_events(self, version="3.0", **kwargs) -> pd.DataFrame:
        """Adverse events from laboratory values; see
        :func:`immunomon.clinical.lab_adverse_events`."""
        from .labs import lab_adverse_events
        return lab_adverse_events(self, version, **kwargs)

    def graded_adverse_events(self, version="3.0", *, start_day=None,
                              window_days: float = 0) -> pd.DataFrame:
        """Reported and laboratory adverse events merged, each episode once; see
        :func:`immunomon.clinical.merge_adverse_events`."""
        from .labs import lab_adverse_events, merge_adverse_events
        lab = lab_adverse_events(self, version, start_day=start_day)
        return merge_adverse_events(self.adverse_events, lab, version,
                                    window_days=window_days)


def build_clinical(tables: Mapping[str, pd.DataFrame]) -> ClinicalData:
    """Validate normalised tables (missing ones are empty) and add the computed columns."""
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown clinical tables {sorted(unknown)}; expected {TABLES}")
    if "patients" not in tables:
        raise ClinicalDataError("a patients table is required")
    full = {name: tables.get(name, empty_table(name)) for name in TABLES}
    for name, table in list(full.items()):
        if "source_file" not in table.columns or "source_line" not in table.columns:
            # Tables built in memory: messages then name the table, without a row.
            table = table.copy()
            table["source_file"] = table.get("source_file", f"<{name} table>")
            table["source_line"] = table.get("source_line", pd.Series(
                [None] * len(table), index=table.index, dtype=object))
            full[name] = table
        optional = [c for c in SCHEMAS[name] if not c.required and c.name not in table.columns]
        if optional:
            # optional columns left out of an in-memory table are blank, as in a CSV
            table = table.copy()
            for c in optional:
                table[c.name] = _typed(["on" if c.name == "status" else None] * len(table),
                                       c).array
            full[name] = table
        missing = [c.name for c in SCHEMAS[name] if c.name not in table.columns]
        if missing:
            raise ValueError(f"table {name!r} lacks normalised columns {missing}; build it "
                             "with immunomon.clinical.tables.coerce_table")
    validate_tables(full)
    return ClinicalData(**derive_tables(full))


def read_clinical(folder, *, date_order: str | None = None) -> ClinicalData:
    """Read the documented CSV files of a folder into a :class:`ClinicalData`.

    ``patients.csv`` is required; ``treatments.csv``, ``agvhd.csv``,
    ``cgvhd.csv``, ``responses.csv``, ``adverse_events.csv``, ``labs.csv``,
    ``deaths.csv`` and ``followup.csv`` are read when present (an absent file is an empty
    table). ``date_order`` ("DMY" or "MDY") is needed only for dates written
    ``NN/NN/YYYY``.
    """
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise ClinicalDataError(f"{folder}: not a folder of clinical CSV files")
    patients = folder / FILE_NAMES["patients"]
    if not patients.is_file():
        raise ClinicalDataError(f"{patients}: the patients table is required "
                                "(see docs/clinical.md for its columns)")
    tables = {}
    for name, file in FILE_NAMES.items():
        path = folder / file
        if path.is_file():
            tables[name] = read_table(path, name, date_order=date_order)
    if tables["patients"].empty:        # else every other table's rows seem unknown
        raise ClinicalDataError(f"{patients}: the patients table lists no patients")
    return build_clinical(tables)
