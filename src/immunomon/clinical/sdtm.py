"""CDISC SDTM domains DM, AE, RS, EX, DS and LB (as CSV) into ClinicalData.

Mapping (variable names as in the SDTM Implementation Guide; files ``dm.csv``,
``ae.csv``, ``rs.csv``, ``ex.csv``, ``ds.csv``, ``lb.csv`` in any letter case):

- DM -> patients: ``USUBJID`` id, ``SEX`` (``U`` = blank), ``AGE`` (``AGEU``
  must be YEARS when given), the transplant date from ``RFSTDTC`` (the study
  must define the reference start as the transplant; another DM date column
  via ``transplant_date=``), ``RFPENDTC`` -> last follow-up. The optional
  ``SUPPDM`` QNAMs ``DIAG``, ``DONORTYP``, ``HLAMATCH``, ``CONDIT``,
  ``SCSOURCE`` fill the other patient columns.
- DS -> deaths: records with ``DSDECOD`` = DEATH; date ``DSSTDTC``; the cause
  from ``DSTERM`` (relapse/progression or non-relapse spellings, or a
  ``cause_map`` you give); an unknown term is an error, never a guess.
- AE -> adverse events: ``AETERM``, ``AETOXGR``, ``AESTDTC``, ``AEENDTC``,
  ``AEREL``, ``AEACN``.
- RS -> responses: records with ``RSTESTCD`` = OVRLRESP; ``RSDTC``,
  ``RSSTRESC`` (sCR, CR, VGPR, PR, MR, SD, PD, NE).
- EX -> treatments: ``EXTRT``, ``EXSTDTC``, ``EXENDTC``, ``EXDOSE``,
  ``EXDOSU``, ``EXADJ``; a record with ``EXDOSE`` 0 is a hold.
- LB -> labs: ``LBTESTCD`` (or ``LBTEST`` when the code is not one we grade),
  ``LBDTC``, the standard result ``LBSTRESN``/``LBSTRESU`` with
  ``LBSTNRLO``/``LBSTNRHI`` when the file has them, else the original
  ``LBORRES``/``LBORRESU``/``LBORNRLO``/``LBORNRHI``; the baseline flag
  ``LBBLFL`` or ``LBLOBXFL`` = Y. Records without a result are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..errors import ClinicalDataError
from .data import ClinicalData, build_clinical
from .tables import DEATH_CAUSE, _key, clinical_error, coerce_table, read_csv_text

__all__ = ["read_sdtm", "SUPPDM_QNAMS"]

SUPPDM_QNAMS = {"DIAG": "diagnosis", "DONORTYP": "donor_type", "HLAMATCH": "hla_match",
                "CONDIT": "conditioning", "SCSOURCE": "stem_cell_source"}


def _find(folder: Path, domain: str) -> Path | None:
    for p in folder.iterdir():
        if p.is_file() and p.name.lower() == f"{domain}.csv":
            return p
    return None


def _need(frame: pd.DataFrame, file, columns) -> None:
    for c in columns:
        if c not in frame.columns:
            raise clinical_error(file, 1, c.upper(), "required SDTM variable missing")


def _get(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col] if col in frame.columns else pd.Series([""] * len(frame),
                                                             index=frame.index, dtype=object)


def read_sdtm(folder, *, transplant_date: str = "RFSTDTC",
              cause_map: Mapping[str, str] | None = None,
              date_order: str | None = None) -> ClinicalData:
    """Read SDTM domain CSVs from ``folder`` into a validated :class:`ClinicalData`.

    ``cause_map``: extra ``DSTERM`` -> "relapse" or "nrm" entries for death
    causes written in the study's own words.
    """
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise ClinicalDataError(f"{folder}: not a folder of SDTM CSV files")
    dm_path = _find(folder, "dm")
    if dm_path is None:
        raise ClinicalDataError(f"{folder}: dm.csv (the DM domain) is required")
    causes = dict(DEATH_CAUSE)
    for term, cause in (cause_map or {}).items():
        if cause not in ("relapse", "nrm"):
            raise ValueError(f"cause_map values must be 'relapse' or 'nrm', not {cause!r}")
        causes[_key(term)] = cause

    tables = {}
    dm = read_csv_text(dm_path)
    tx_col = transplant_date.lower()
    _need(dm, dm_path, ["usubjid", tx_col])
    if "ageu" in dm.columns:
        bad = dm[(dm["ageu"] != "") & (dm["ageu"].str.upper() != "YEARS")]
        if len(bad):
            raise clinical_error(dm_path, bad["source_line"].iloc[0], "AGEU",
                                 f"age unit {bad['ageu'].iloc[0]!r}; only YEARS is supported")
    patients = pd.DataFrame({
        "patient_id": dm["usubjid"], "sex": _get(dm, "sex").replace({"U": "", "u": ""}),
        "age": _get(dm, "age"), "transplant_date": dm[tx_col],
        "source_line": dm["source_line"]})
    labels = {"patient_id": "USUBJID", "sex": "SEX", "age": "AGE",
              "transplant_date": transplant_date.upper()}
    supp_path = _find(folder, "suppdm")
    if supp_path is not None:
        supp = read_csv_text(supp_path)
        _need(supp, supp_path, ["usubjid", "qnam", "qval"])
        for qnam, col in SUPPDM_QNAMS.items():
            part = supp[supp["qnam"].str.upper() == qnam]
            dup = part["usubjid"].duplicated()
            if dup.any():
                raise clinical_error(supp_path, part["source_line"][dup].iloc[0], "QVAL",
                                     f"{qnam} given twice for {part['usubjid'][dup].iloc[0]!r}")
            patients[col] = patients["patient_id"].map(part.set_index("usubjid")["qval"]) \
                .fillna("")
        unknown = set(supp["qnam"].str.upper()) - set(SUPPDM_QNAMS)
        if unknown:
            row = supp[supp["qnam"].str.upper().isin(unknown)].iloc[0]
            raise clinical_error(supp_path, row["source_line"], "QNAM",
                                 f"unknown QNAM {row['qnam']!r}; expected "
                                 f"{', '.join(SUPPDM_QNAMS)}")
    else:
        for col in SUPPDM_QNAMS.values():
            patients[col] = ""
    tables["patients"] = coerce_table(patients, "patients", os.fspath(dm_path),
                                      date_order=date_order, labels=labels)
    if "rfpendtc" in dm.columns:
        fu = dm[dm["rfpendtc"] != ""]
        tables["followup"] = coerce_table(pd.DataFrame({
            "patient_id": fu["usubjid"], "last_follow_up_date": fu["rfpendtc"],
            "source_line": fu["source_line"]}), "followup", os.fspath(dm_path),
            date_order=date_order, labels={"last_follow_up_date": "RFPENDTC"})

    ds_path = _find(folder, "ds")
    death_ids = set()
    if ds_path is not None:
        ds = read_csv_text(ds_path)
        _need(ds, ds_path, ["usubjid", "dsdecod", "dsterm", "dsstdtc"])
        d = ds[ds["dsdecod"].str.upper() == "DEATH"]
        cause = []
        for term, line in zip(d["dsterm"], d["source_line"]):
            c = causes.get(_key(term))
            if c is None:
                raise clinical_error(ds_path, line, "DSTERM",
                                     f"death cause {term!r} is neither a relapse/progression "
                                     "nor a non-relapse term; pass cause_map={term: 'relapse' "
                                     "or 'nrm'}")
            cause.append(c)
        tables["deaths"] = coerce_table(pd.DataFrame({
            "patient_id": d["usubjid"], "date": d["dsstdtc"], "cause": cause,
            "detail": d["dsterm"], "source_line": d["source_line"]}), "deaths",
            os.fspath(ds_path), date_order=date_order,
            labels={"patient_id": "USUBJID", "date": "DSSTDTC", "cause": "DSTERM"})
        death_ids = set(d["usubjid"])
    if "dthdtc" in dm.columns:
        missing = dm[(dm["dthdtc"] != "") & ~dm["usubjid"].isin(death_ids)]
        if len(missing):
            raise clinical_error(dm_path, missing["source_line"].iloc[0], "DTHDTC",
                                 "a death date without a DS record (DSDECOD = DEATH) giving "
                                 "its cause")

    ae_path = _find(folder, "ae")
    if ae_path is not None:
        ae = read_csv_text(ae_path)
        _need(ae, ae_path, ["usubjid", "aeterm", "aetoxgr", "aestdtc"])
        tables["adverse_events"] = coerce_table(pd.DataFrame({
            "patient_id": ae["usubjid"], "term": ae["aeterm"], "grade": ae["aetoxgr"],
            "onset_date": ae["aestdtc"], "resolution_date": _get(ae, "aeendtc"),
            "relation": _get(ae, "aerel"), "action": _get(ae, "aeacn"),
            "source_line": ae["source_line"]}), "adverse_events", os.fspath(ae_path),
            date_order=date_order,
            labels={"patient_id": "USUBJID", "term": "AETERM", "grade": "AETOXGR",
                    "onset_date": "AESTDTC", "resolution_date": "AEENDTC",
                    "relation": "AEREL", "action": "AEACN"})

    rs_path = _find(folder, "rs")
    if rs_path is not None:
        rs = read_csv_text(rs_path)
        _need(rs, rs_path, ["usubjid", "rstestcd", "rsstresc", "rsdtc"])
        r = rs[rs["rstestcd"].str.upper() == "OVRLRESP"]
        tables["responses"] = coerce_table(pd.DataFrame({
            "patient_id": r["usubjid"], "date": r["rsdtc"], "category": r["rsstresc"],
            "source_line": r["source_line"]}), "responses", os.fspath(rs_path),
            date_order=date_order,
            labels={"patient_id": "USUBJID", "date": "RSDTC", "category": "RSSTRESC"})

    ex_path = _find(folder, "ex")
    if ex_path is not None:
        ex = read_csv_text(ex_path)
        _need(ex, ex_path, ["usubjid", "extrt", "exstdtc"])
        dose = _get(ex, "exdose")
        held = dose.map(lambda v: v.strip() != "" and _is_zero(v))
        tables["treatments"] = coerce_table(pd.DataFrame({
            "patient_id": ex["usubjid"], "drug": ex["extrt"], "start_date": ex["exstdtc"],
            "stop_date": _get(ex, "exendtc"), "dose": dose.where(~held, ""),
            "dose_unit": _get(ex, "exdosu"), "status": held.map({True: "held", False: "on"}),
            "reason": _get(ex, "exadj"), "source_line": ex["source_line"]}),
            "treatments", os.fspath(ex_path), date_order=date_order,
            labels={"patient_id": "USUBJID", "drug": "EXTRT", "start_date": "EXSTDTC",
                    "stop_date": "EXENDTC", "dose": "EXDOSE", "dose_unit": "EXDOSU"})
    lb_path = _find(folder, "lb")
    if lb_path is not None:
        tables["labs"] = _labs(lb_path, date_order)
    return build_clinical(tables)


def _labs(path, date_order) -> pd.DataFrame:
    from .ctcae import analyte_for_test

    lb = read_csv_text(path)
    _need(lb, path, ["usubjid", "lbdtc"])
    if "lbtestcd" not in lb.columns and "lbtest" not in lb.columns:
        raise clinical_error(path, 1, "LBTESTCD", "required SDTM variable missing")
    std = "lbstresn" in lb.columns
    result, unit, lo, hi = (("lbstresn", "lbstresu", "lbstnrlo", "lbstnrhi") if std else
                            ("lborres", "lborresu", "lbornrlo", "lbornrhi"))
    _need(lb, path, [result])
    code, name = _get(lb, "lbtestcd"), _get(lb, "lbtest")
    test = code.where(code.map(lambda c: c != "" and analyte_for_test(c) is not None)
                      | (name == ""), name)
    flag = (_get(lb, "lbblfl").str.upper() == "Y") | (_get(lb, "lblobxfl").str.upper() == "Y")
    keep = lb[result] != ""
    frame = pd.DataFrame({
        "patient_id": lb["usubjid"], "date": lb["lbdtc"], "test": test, "value": lb[result],
        "unit": _get(lb, unit), "lln": _get(lb, lo), "uln": _get(lb, hi),
        "baseline": flag.map({True: "yes", False: ""}), "source_line": lb["source_line"]})[keep]
    return coerce_table(frame, "labs", os.fspath(path), date_order=date_order,
                        labels={"patient_id": "USUBJID", "date": "LBDTC", "test": "LBTESTCD",
                                "value": result.upper(), "unit": unit.upper(),
                                "lln": lo.upper(), "uln": hi.upper(), "baseline": "LBBLFL"})


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False
