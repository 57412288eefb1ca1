"""Reading the documented CSV files: typing, strict dates, and validation messages.

Each bad input is written by the test; the message must name the file, the
1-based CSV line (header = line 1) and the column.
"""

import datetime as dt
import re

import pytest

from immunomon import ClinicalDataError
from immunomon.clinical import parse_date, read_clinical

PATIENTS = """patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,stem_cell_source
P1,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC
P2,female,62,multiple myeloma,2021-03-15,MRD,10/10,reduced intensity,peripheral blood
"""
DEATHS = "patient_id,date,cause\nP1,2021-09-01,relapse\n"
FOLLOWUP = "patient_id,last_follow_up_date\nP2,2022-03-15\n"


def write(folder, **files):
    base = {"patients": PATIENTS, "deaths": DEATHS, "followup": FOLLOWUP}
    base.update(files)
    for name, text in base.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text)
    return folder


def error_for(folder, **files):
    write(folder, **files)
    with pytest.raises(ClinicalDataError) as info:
        read_clinical(folder)
    return str(info.value)


def assert_where(message, file, row, column):
    assert re.search(rf"{re.escape(file)}, row {row}, column {re.escape(column)}: ", message), \
        message


# ------------------------------------------------------------------- dates
@pytest.mark.parametrize("text,expected", [
    ("2021-03-04", dt.date(2021, 3, 4)),
    ("2021-03-04T10:30", dt.date(2021, 3, 4)),
    ("2021-03-04T10:30:15+01:00", dt.date(2021, 3, 4)),
    ("20210304", dt.date(2021, 3, 4)),
    ("2021/03/04", dt.date(2021, 3, 4)),
    ("04.03.2021", dt.date(2021, 3, 4)),
    ("4-Mar-2021", dt.date(2021, 3, 4)),
    ("04 mar 2021", dt.date(2021, 3, 4)),
    ("04MAR2021", dt.date(2021, 3, 4)),
])
def test_parse_date_accepted_forms(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["04/03/2021", "13/03/2021", "03/13/2021"])
def test_slash_dates_are_never_guessed(text):
    with pytest.raises(ValueError, match="ambiguous"):
        parse_date(text)


def test_slash_dates_with_explicit_order():
    assert parse_date("04/03/2021", date_order="DMY") == dt.date(2021, 3, 4)
    assert parse_date("04/03/2021", date_order="MDY") == dt.date(2021, 4, 3)
    with pytest.raises(ValueError, match="calendar"):
        parse_date("13/03/2021", date_order="MDY")


@pytest.mark.parametrize("text", ["2021-02-30", "2021-03", "2021", "21-03-04", "04-Foo-2021",
                                  "yesterday", "2021-3-4"])
def test_bad_dates(text):
    with pytest.raises(ValueError):
        parse_date(text)


# ------------------------------------------------------------------- reading
def test_patients_are_normalised(tmp_path):
    data = read_clinical(write(tmp_path))
    p = data.patients
    assert p["sex"].tolist() == ["M", "F"]
    assert p["donor_type"].tolist() == ["unrelated", "related"]
    assert p["conditioning"].tolist() == ["RIC", "RIC"]
    assert p["stem_cell_source"].tolist() == ["PBSC", "PBSC"]
    assert p["transplant_date"].dt.strftime("%Y-%m-%d").tolist() == ["2021-01-01", "2021-03-15"]
    assert p["source_line"].tolist() == [2, 3]
    assert data.treatments.empty and data.agvhd.empty


def test_quoted_multiline_cell_keeps_true_line_numbers(tmp_path):
    ae = ('patient_id,term,grade,onset_date\n'
          'P1,"neutropenia\nfebrile",3,2021-02-01\n'
          'P1,rash,7,2021-02-02\n')
    msg = error_for(tmp_path, adverse_events=ae)
    assert_where(msg, "adverse_events.csv", 4, "grade")


def test_ambiguous_date_in_a_file(tmp_path):
    msg = error_for(tmp_path, agvhd="patient_id,date,skin,liver,upper_gi,lower_gi\n"
                                    "P1,04/03/2021,1,0,0,0\n")
    assert_where(msg, "agvhd.csv", 2, "date")
    assert "ambiguous" in msg
    data = read_clinical(tmp_path, date_order="DMY")
    assert data.agvhd["day"].tolist() == [62]   # 2021-01-01 -> 2021-03-04


# --------------------------------------------------------------- validation
AG_HEAD = "patient_id,date,skin,liver,upper_gi,lower_gi\n"


@pytest.mark.parametrize("rows,line,column,words", [
    ("P1,2021-02-01,5,0,0,0\n", 2, "skin", "out of range"),
    ("P1,2021-02-01,1,0,0,0\nP1,2021-02-02,0,0,2,0\n", 3, "upper_gi", "out of range"),
    ("P1,2021-02-01,1,0,0,x\n", 2, "lower_gi", "not a number"),
    ("P1,2021-02-01,1.5,0,0,0\n", 2, "skin", "whole number"),
    ("P1,2021-02-01,,0,0,0\n", 2, "skin", "required"),
    ("P1,2020-12-31,1,0,0,0\n", 2, "date", "before the transplant"),
    ("P1,2021-09-02,1,0,0,0\n", 2, "date", "after the patient's death"),
    ("P2,2022-03-16,1,0,0,0\n", 2, "date", "after the last follow-up"),
    ("P9,2021-02-01,1,0,0,0\n", 2, "patient_id", "not in the patients table"),
    ("P1,2021-02-01,1,0,0,0\nP1,2021-02-01,2,0,0,0\n", 3, "date", "duplicate"),
])
def test_agvhd_validation(tmp_path, rows, line, column, words):
    msg = error_for(tmp_path, agvhd=AG_HEAD + rows)
    assert_where(msg, "agvhd.csv", line, column)
    assert words in msg


@pytest.mark.parametrize("table,text,line,column,words", [
    ("adverse_events", "patient_id,term,grade,onset_date\nP1,rash,6,2021-02-01\n",
     2, "grade", "out of range"),
    ("adverse_events", "patient_id,term,grade,onset_date,relation\n"
     "P1,rash,2,2021-02-01,maybe\n", 2, "relation", "unknown value"),
    ("adverse_events", "patient_id,term,grade,onset_date,resolution_date\n"
     "P1,rash,2,2021-02-05,2021-02-01\n", 2, "resolution_date", "before onset_date"),
    ("adverse_events", "patient_id,term,grade,onset_date\nP1,rash,2,2021-10-01\n",
     2, "onset_date", "after the patient's death"),
    ("responses", "patient_id,date,category\nP1,2021-03-01,nCR\n", 2, "category",
     "unknown value"),
    ("responses", "patient_id,date,category\nP1,2020-12-01,PR\n", 2, "date",
     "baseline=yes"),
    ("responses", "patient_id,date,serum_m_protein_g_dl\nP1,2021-02-01,3,5\n", 2, None, None),
    ("cgvhd", "patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia\n"
     "P1,2021-06-01,4,0,0,0,0,0,0\n", 2, "skin", "out of range"),
    ("cgvhd", "patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia\n"
     "P1,2021-06-01,1,0,0,0,0,,0\n", 2, "lungs", "lung_fev1_pct"),
    ("deaths", "patient_id,date,cause\nP1,2021-09-01,relapse\nP1,2021-09-02,nrm\n", 3,
     "patient_id", "duplicate"),
    ("deaths", "patient_id,date,cause\nP1,2021-09-01,accident\n", 2, "cause",
     "expected one of: nrm, relapse"),
    ("patients", PATIENTS + "P1,M,50,MM,2021-01-01,,,,\n", 4, "patient_id",
     "duplicate patient id (first given on row 2)"),
    ("patients", PATIENTS.replace("10/10,RIC,PBSC\nP2", "11/10,RIC,PBSC\nP2"), 2,
     "hla_match", "HLA match"),
    ("patients", PATIENTS.replace("58", "5,8"), 2, None, None),
    ("patients", PATIENTS.replace("58", "58.5.1"), 2, "age", "not a number"),
    ("followup", "patient_id,last_follow_up_date\nP2,2021-03-01\n", 2,
     "last_follow_up_date", "before the transplant"),
    ("followup", "patient_id,last_follow_up_date\nP1,2021-10-01\n", 2,
     "last_follow_up_date", "after the patient's death"),
    ("treatments", "patient_id,drug,start_date,stop_date,dose,dose_unit\n"
     "P2,lenalidomide,2021-05-01,2021-05-20,10,mg\nP2,Lenalidomide,2021-05-10,,5,mg\n",
     3, "start_date", "overlaps the period on row 2"),
    ("treatments", "patient_id,drug,start_date,stop_date,dose,dose_unit\n"
     "P2,lenalidomide,2021-05-01,,10,mg\nP2,lenalidomide,2021-06-10,2021-07-01,5,mg\n",
     3, "start_date", "still running"),
    ("treatments", "patient_id,drug,start_date,stop_date,dose,dose_unit\n"
     "P2,lenalidomide,2021-05-10,2021-05-01,10,mg\n", 2, "stop_date", "before start_date"),
    ("treatments", "patient_id,drug,start_date,stop_date,dose,dose_unit,status\n"
     "P2,lenalidomide,2021-05-01,,10,mg,paused\n", 2, "status", "unknown value"),
    ("treatments", "patient_id,drug,start,stop_date,dose,dose_unit\n", 1, "start",
     "unknown column"),
    ("treatments", "patient_id,drug,stop_date,dose,dose_unit\n", 1, "start_date",
     "required column missing"),
])
def test_validation_messages(tmp_path, table, text, line, column, words):
    msg = error_for(tmp_path, **{table: text})
    if column is None:     # row-level problem, e.g. a stray comma making a cell too many
        assert f"{table}.csv, row {line}: " in msg and "cells" in msg, msg
        return
    assert_where(msg, f"{table}.csv", line, column)
    assert words in msg


def test_touching_periods_and_holds_are_not_overlaps(tmp_path):
    tr = ("patient_id,drug,start_date,stop_date,dose,dose_unit,status\n"
          "P2,lenalidomide,2021-05-01,2021-05-20,10,mg,on\n"
          "P2,lenalidomide,2021-05-20,2021-06-20,5,mg,on\n"
          "P2,lenalidomide,2021-06-01,2021-06-05,,,held\n")
    data = read_clinical(write(tmp_path, treatments=tr))
    assert data.treatments["status"].tolist() == ["on", "on", "held"]


def test_patient_with_no_follow_up_cannot_have_endpoints(tmp_path):
    data = read_clinical(write(tmp_path, followup="patient_id,last_follow_up_date\n"))
    with pytest.raises(ClinicalDataError) as info:
        data.endpoints()
    assert_where(str(info.value), "patients.csv", 3, "patient_id")
    assert "P2" in str(info.value)


def test_missing_patients_file(tmp_path):
    with pytest.raises(ClinicalDataError, match="patients table is required"):
        read_clinical(tmp_path)


def test_a_patients_table_with_no_patients_is_named(tmp_path):
    # with a header only, the follow-up table's rows were blamed for naming unknown patients
    msg = error_for(tmp_path, patients=PATIENTS.splitlines()[0] + "\n")
    assert msg.endswith("patients.csv: the patients table lists no patients")


def test_lab_rows_need_measurable_baseline(tmp_path):
    resp = ("patient_id,date,baseline,serum_m_protein_g_dl\n"
            "P1,2020-12-20,yes,0.4\nP1,2021-03-01,,0.2\n")
    msg = error_for(tmp_path, responses=resp)
    assert_where(msg, "responses.csv", 2, "serum_m_protein_g_dl")
    assert "measurable" in msg


def test_response_row_needs_category_or_labs(tmp_path):
    msg = error_for(tmp_path, responses="patient_id,date,category,serum_m_protein_g_dl\n"
                                        "P1,2021-03-01,,\n")
    assert_where(msg, "responses.csv", 2, "category")


def test_examples_in_the_docs_read_cleanly(tmp_path):
    """Every CSV example in docs/clinical.md is valid input, and they fit together."""
    from pathlib import Path

    from immunomon.clinical import SCHEMAS, read_redcap

    doc = (Path(__file__).parent.parent / "docs" / "clinical.md").read_text()
    blocks, current, lang = [], None, None
    for line in doc.splitlines():
        if line.startswith("```"):
            if current is None:
                current, lang = [], line[3:].strip()
            else:
                if not lang:
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    found = {}
    for block in blocks:
        header = set(block.splitlines()[0].split(","))
        if "record_id" in header:
            (tmp_path / "export.csv").write_text(block)
            assert len(read_redcap(tmp_path / "export.csv").treatments) == 1
            continue
        for table, schema in SCHEMAS.items():
            required = {c.name for c in schema if c.required}
            if required <= header <= {c.name for c in schema}:
                found[table] = block
    assert set(found) == set(SCHEMAS)
    for table, block in found.items():
        (tmp_path / f"{table}.csv").write_text(block)
    data = read_clinical(tmp_path)
    assert len(data.patients) == 3
    assert data.responses.set_index("date")["response"].dropna().tolist() == ["PR", "PD", "CR"]


def test_build_clinical_from_tables_in_memory():
    import pandas as pd

    from immunomon.clinical import build_clinical

    patients = pd.DataFrame({
        "patient_id": ["P1"], "sex": ["M"], "age": [50.0], "diagnosis": ["MM"],
        "transplant_date": pd.to_datetime(["2021-01-01"]), "donor_type": ["related"],
        "hla_match": ["10/10"], "conditioning": ["RIC"], "stem_cell_source": ["PBSC"]})
    agvhd = pd.DataFrame({"patient_id": ["P1"], "date": pd.to_datetime(["2020-12-01"]),
                          "skin": [1], "liver": [0], "upper_gi": [0], "lower_gi": [0]})
    with pytest.raises(ClinicalDataError, match=r"^<agvhd table>, column date: .*before"):
        build_clinical({"patients": patients, "agvhd": agvhd})
    agvhd["date"] = pd.to_datetime(["2021-01-15"])
    data = build_clinical({"patients": patients, "agvhd": agvhd})
    assert data.agvhd["day"].tolist() == [14]
    assert data.agvhd["grade_magic"].tolist() == [1]
