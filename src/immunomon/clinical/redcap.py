"""Flat REDCap exports (one wide CSV with repeating instruments) into ClinicalData.

Layout (REDCap "export records", raw field names, labels for choices):

- ``record_id``: the patient id (another name via ``id_field``);
- ``redcap_repeat_instrument`` / ``redcap_repeat_instance``: blank on the
  patient's non-repeating row(s), else the instrument of the row;
- ``redcap_event_name``, ``redcap_data_access_group`` and ``*_complete``
  form-status columns are ignored.

Non-repeating rows carry the patient fields under their table names
(``sex``, ``age``, ``diagnosis``, ``transplant_date``, ``donor_type``,
``hla_match``, ``conditioning``, ``stem_cell_source``) plus ``death_date``,
``death_cause``, ``death_detail`` and ``last_follow_up_date``. Each repeating
instrument fills one table, its fields named prefix + column:
:data:`INSTRUMENTS`.
"""

from __future__ import annotations

import os

import pandas as pd

from .data import ClinicalData, build_clinical
from .tables import SCHEMAS, clinical_error, coerce_table, read_csv_text

__all__ = ["read_redcap", "INSTRUMENTS", "PATIENT_FIELDS"]

# instrument name -> (table, field prefix)
INSTRUMENTS = {
    "treatment": ("treatments", "tx_"),
    "acute_gvhd": ("agvhd", "agvhd_"),
    "chronic_gvhd": ("cgvhd", "cgvhd_"),
    "response": ("responses", "resp_"),
    "adverse_event": ("adverse_events", "ae_"),
    "laboratory": ("labs", "lab_"),
}
# patient-level field -> (table, column)
PATIENT_FIELDS = {
    **{c.name: ("patients", c.name) for c in SCHEMAS["patients"] if c.name != "patient_id"},
    "death_date": ("deaths", "date"),
    "death_cause": ("deaths", "cause"),
    "death_detail": ("deaths", "detail"),
    "last_follow_up_date": ("followup", "last_follow_up_date"),
}
_REDCAP_META = ("redcap_repeat_instrument", "redcap_repeat_instance", "redcap_event_name",
                "redcap_data_access_group", "redcap_survey_identifier")


def read_redcap(path, *, id_field: str = "record_id", date_order: str | None = None,
                ignore: tuple[str, ...] = ()) -> ClinicalData:
    """Read a flat REDCap export into a validated :class:`ClinicalData`.

    Unknown columns are an error (a misspelt field would otherwise vanish);
    name extra project fields in ``ignore`` to skip them.
    """
    file = os.fspath(path)
    raw = read_csv_text(file)
    id_field = id_field.lower()
    skip = {c.lower() for c in ignore}
    if id_field not in raw.columns:
        raise clinical_error(file, 1, id_field, "the record id column is missing")
    if "redcap_repeat_instrument" not in raw.columns:
        raise clinical_error(file, 1, "redcap_repeat_instrument",
                             "column missing: this is not a flat REDCap export with "
                             "repeating instruments")

    field_owner: dict[str, tuple[str, str]] = {}   # column -> (instrument or "", our column)
    for col in raw.columns:
        if col in (id_field, "source_line") or col in _REDCAP_META or col in skip \
                or col.endswith("_complete"):
            continue
        if col in PATIENT_FIELDS:
            field_owner[col] = ("", col)
            continue
        for inst, (table, prefix) in INSTRUMENTS.items():
            name = col[len(prefix):]
            if col.startswith(prefix) and any(c.name == name for c in SCHEMAS[table]) \
                    and name != "patient_id":
                field_owner[col] = (inst, name)
                break
        else:
            raise clinical_error(file, 1, col, "unknown REDCap field; expected the patient "
                                 "fields or an instrument prefix (tx_, agvhd_, cgvhd_, resp_, "
                                 "ae_, lab_) plus a column name (see docs/clinical.md), or pass "
                                 "ignore=")

    inst_col = raw["redcap_repeat_instrument"].str.strip().str.lower()
    rows: dict[str, list[dict]] = {t: [] for t in SCHEMAS}
    patient_rows: dict[str, dict] = {}
    for i, rec in raw.iterrows():
        line = rec["source_line"]
        pid = rec[id_field]
        if not pid:
            raise clinical_error(file, line, id_field, "the record id is blank")
        inst = inst_col.iloc[i] if isinstance(inst_col.iloc[i], str) else ""
        if inst and inst not in INSTRUMENTS:
            raise clinical_error(file, line, "redcap_repeat_instrument",
                                 f"unknown instrument {rec['redcap_repeat_instrument']!r}; "
                                 f"expected one of {', '.join(INSTRUMENTS)}")
        for col, (owner, _) in field_owner.items():
            if rec[col] and owner != inst:
                where = f"instrument {owner!r}" if owner else "the non-repeating patient row"
                raise clinical_error(file, line, col,
                                     f"value {rec[col]!r} belongs to {where}, not this row")
        if inst:
            table = INSTRUMENTS[inst][0]
            out = {"patient_id": pid, "source_line": line}
            out.update({name: rec[col] for col, (owner, name) in field_owner.items()
                        if owner == inst})
            rows[table].append(out)
            continue
        merged = patient_rows.setdefault(pid, {"_line": line})
        for col, (owner, _) in field_owner.items():
            if owner or not rec[col]:
                continue
            if col in merged and merged[col][0] != rec[col]:
                raise clinical_error(file, line, col,
                                     f"{rec[col]!r} conflicts with {merged[col][0]!r} on row "
                                     f"{merged[col][1]} for record {pid!r}")
            merged.setdefault(col, (rec[col], line))

    present = {col for col, (owner, _) in field_owner.items() if not owner}
    for pid, fields_ in patient_rows.items():
        prow = {"patient_id": pid, "source_line": fields_["_line"]}
        for col in present:
            table, name = PATIENT_FIELDS[col]
            if table == "patients":
                prow[name] = fields_.get(col, ("", None))[0]
        rows["patients"].append(prow)
        if "death_date" in fields_ or "death_cause" in fields_:
            first = fields_.get("death_date", fields_.get("death_cause"))
            drow = {"patient_id": pid, "source_line": first[1]}
            for col in ("death_date", "death_cause", "death_detail"):
                if col in present:
                    drow[PATIENT_FIELDS[col][1]] = fields_.get(col, ("", None))[0]
            rows["deaths"].append(drow)
        if "last_follow_up_date" in fields_:
            value, ln = fields_["last_follow_up_date"]
            rows["followup"].append({"patient_id": pid, "source_line": ln,
                                     "last_follow_up_date": value})

    tables = {}
    for table, recs in rows.items():
        if not recs and table != "patients":
            continue
        frame = pd.DataFrame(recs)
        if frame.empty:
            frame = pd.DataFrame(columns=["patient_id", "source_line"])
        # A project may leave out fields that can be blank anyway.
        for c in SCHEMAS[table]:
            if c.nullable and c.name not in frame.columns:
                frame[c.name] = ""
        frame = frame.fillna("")
        tables[table] = coerce_table(frame, table, file, date_order=date_order,
                                     labels={**_labels(table), "patient_id": id_field})
    return build_clinical(tables)


def _labels(table: str) -> dict[str, str]:
    """Schema column -> REDCap field name, so messages name the export's column."""
    if table == "patients":
        return {}
    for _, (t, prefix) in INSTRUMENTS.items():
        if t == table:
            return {c.name: prefix + c.name for c in SCHEMAS[table] if c.name != "patient_id"}
    return {PATIENT_FIELDS[f][1]: f for f in PATIENT_FIELDS if PATIENT_FIELDS[f][0] == table}
