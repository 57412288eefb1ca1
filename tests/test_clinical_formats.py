"""REDCap flat exports and CDISC SDTM domains read into the same tables as the CSV folder.

The same two-patient course is written three ways (documented CSVs, one REDCap
export, SDTM domains); the endpoints and intervals must agree, and equal the
days counted by hand: transplant 2021-01-01 (P1) and 2021-02-01 (P2);
P1 lenalidomide 2021-03-01 (day 59) to 2021-05-31 (day 150), held 2021-04-01
to 2021-04-07 (days 90-96); P1 progression 2021-06-01 (day 151); P1 dies
2021-08-01 (day 212) of relapse; P2 alive at 2022-02-01 (day 365).
"""

import pytest

from immunomon import ClinicalDataError
from immunomon.clinical import read_clinical, read_redcap, read_sdtm

CSV = {
    "patients.csv": "patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,"
                    "conditioning,stem_cell_source\n"
                    "P1,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC\n"
                    "P2,F,62,multiple myeloma,2021-02-01,related,10/10,RIC,PBSC\n",
    "treatments.csv": "patient_id,drug,start_date,stop_date,dose,dose_unit,status\n"
                      "P1,lenalidomide,2021-03-01,2021-05-31,10,mg,on\n"
                      "P1,lenalidomide,2021-04-01,2021-04-07,,,held\n",
    "responses.csv": "patient_id,date,category\nP1,2021-03-01,VGPR\nP1,2021-06-01,PD\n"
                     "P2,2021-05-01,CR\n",
    "adverse_events.csv": "patient_id,term,grade,onset_date,resolution_date,relation,action\n"
                          "P1,neutropenia,3,2021-04-01,2021-04-10,probable,interrupted\n",
    "deaths.csv": "patient_id,date,cause,detail\nP1,2021-08-01,relapse,progressive myeloma\n",
    "followup.csv": "patient_id,last_follow_up_date\nP2,2022-02-01\n",
}

REDCAP = """record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,stem_cell_source,death_date,death_cause,death_detail,last_follow_up_date,baseline_complete,tx_drug,tx_start_date,tx_stop_date,tx_dose,tx_dose_unit,tx_status,resp_date,resp_category,ae_term,ae_grade,ae_onset_date,ae_resolution_date,ae_relation,ae_action
P1,baseline_arm_1,,,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC,2021-08-01,relapse,progressive myeloma,,2,,,,,,,,,,,,,,
P1,baseline_arm_1,treatment,1,,,,,,,,,,,,,,lenalidomide,2021-03-01,2021-05-31,10,mg,on,,,,,,,,
P1,baseline_arm_1,treatment,2,,,,,,,,,,,,,,lenalidomide,2021-04-01,2021-04-07,,,held,,,,,,,,
P1,baseline_arm_1,response,1,,,,,,,,,,,,,,,,,,,,2021-03-01,VGPR,,,,,,
P1,baseline_arm_1,response,2,,,,,,,,,,,,,,,,,,,,2021-06-01,PD,,,,,,
P1,baseline_arm_1,adverse_event,1,,,,,,,,,,,,,,,,,,,,,,neutropenia,3,2021-04-01,2021-04-10,probable,interrupted
P2,baseline_arm_1,,,F,62,multiple myeloma,2021-02-01,related,10/10,RIC,PBSC,,,,2022-02-01,2,,,,,,,,,,,,,,
P2,baseline_arm_1,response,1,,,,,,,,,,,,,,,,,,,,2021-05-01,CR,,,,,,
"""

SDTM = {
    "DM.csv": "STUDYID,DOMAIN,USUBJID,RFSTDTC,RFPENDTC,DTHDTC,DTHFL,AGE,AGEU,SEX\n"
              "S1,DM,P1,2021-01-01,2021-08-01,2021-08-01,Y,58,YEARS,M\n"
              "S1,DM,P2,2021-02-01,2022-02-01,,,62,YEARS,F\n",
    "SUPPDM.csv": "STUDYID,RDOMAIN,USUBJID,QNAM,QLABEL,QVAL\n"
                  "S1,DM,P1,DIAG,Diagnosis,multiple myeloma\n"
                  "S1,DM,P1,DONORTYP,Donor type,unrelated\n"
                  "S1,DM,P1,HLAMATCH,HLA match,10/10\n"
                  "S1,DM,P1,CONDIT,Conditioning,RIC\n"
                  "S1,DM,P1,SCSOURCE,Stem cell source,PBSC\n"
                  "S1,DM,P2,DIAG,Diagnosis,multiple myeloma\n"
                  "S1,DM,P2,DONORTYP,Donor type,related\n"
                  "S1,DM,P2,HLAMATCH,HLA match,10/10\n"
                  "S1,DM,P2,CONDIT,Conditioning,RIC\n"
                  "S1,DM,P2,SCSOURCE,Stem cell source,PBSC\n",
    "DS.csv": "STUDYID,DOMAIN,USUBJID,DSSEQ,DSTERM,DSDECOD,DSCAT,DSSTDTC\n"
              "S1,DS,P1,1,COMPLETED,COMPLETED,DISPOSITION EVENT,2021-06-01\n"
              "S1,DS,P1,2,PROGRESSIVE MYELOMA,DEATH,DISPOSITION EVENT,2021-08-01T09:00\n",
    "AE.csv": "STUDYID,DOMAIN,USUBJID,AESEQ,AETERM,AEDECOD,AETOXGR,AESTDTC,AEENDTC,AEREL,AEACN\n"
              "S1,AE,P1,1,neutropenia,Neutrophil count decreased,3,2021-04-01,2021-04-10,"
              "PROBABLY RELATED,DRUG INTERRUPTED\n",
    "RS.csv": "STUDYID,DOMAIN,USUBJID,RSSEQ,RSTESTCD,RSTEST,RSORRES,RSSTRESC,RSDTC\n"
              "S1,RS,P1,1,OVRLRESP,Overall Response,VGPR,VGPR,2021-03-01\n"
              "S1,RS,P1,2,SPEP,Serum M-protein,0.2,0.2,2021-03-01\n"
              "S1,RS,P1,3,OVRLRESP,Overall Response,PD,PD,2021-06-01\n"
              "S1,RS,P2,1,OVRLRESP,Overall Response,CR,CR,2021-05-01\n",
    "EX.csv": "STUDYID,DOMAIN,USUBJID,EXSEQ,EXTRT,EXDOSE,EXDOSU,EXSTDTC,EXENDTC,EXADJ\n"
              "S1,EX,P1,1,LENALIDOMIDE,10,mg,2021-03-01,2021-05-31,\n"
              "S1,EX,P1,2,LENALIDOMIDE,0,mg,2021-04-01,2021-04-07,ADVERSE EVENT\n",
}


def _write(folder, files):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def three(tmp_path):
    csv = read_clinical(_write(tmp_path / "csv", CSV))
    (tmp_path / "export.csv").write_text(REDCAP)
    redcap = read_redcap(tmp_path / "export.csv")
    sdtm = read_sdtm(_write(tmp_path / "sdtm", SDTM), cause_map={"PROGRESSIVE MYELOMA": "relapse"})
    return csv, redcap, sdtm


HAND = {  # (days, event) by hand, see module docstring
    "P1": {"os": (212, 1), "pfs": (151, 1), "relapse": (151, 1), "trm": (212, 2)},
    "P2": {"os": (365, 0), "pfs": (365, 0), "relapse": (365, 0), "trm": (365, 0)},
}


@pytest.mark.parametrize("which", [0, 1, 2], ids=["csv", "redcap", "sdtm"])
def test_endpoints_by_hand(three, which):
    ep = three[which].endpoints().set_index("patient_id")
    for pid, expect in HAND.items():
        for name, (days, event) in expect.items():
            assert (ep.at[pid, f"{name}_days"], ep.at[pid, f"{name}_event"]) == (days, event)


@pytest.mark.parametrize("which", [1, 2], ids=["redcap", "sdtm"])
def test_same_tables_as_csv(three, which):
    csv, other = three[0], three[which]
    cols = ["patient_id", "sex", "age", "diagnosis", "transplant_date", "donor_type",
            "hla_match", "conditioning", "stem_cell_source"]
    assert other.patients[cols].equals(csv.patients[cols])
    assert other.responses[["patient_id", "day", "response"]].values.tolist() == \
        csv.responses[["patient_id", "day", "response"]].values.tolist()
    ae_cols = ["patient_id", "grade", "onset_day", "resolution_day", "relation", "action"]
    assert other.adverse_events[ae_cols].values.tolist() == \
        csv.adverse_events[ae_cols].values.tolist()
    assert other.deaths[["patient_id", "day", "cause"]].values.tolist() == [["P1", 212, "relapse"]]
    iv = other.intervals()
    on = iv[iv["covariate"] == "on_lenalidomide"]
    # days 59..150 minus the hold on days 90..96
    assert on[["start", "stop"]].values.tolist() == [[59, 89], [97, 150]]
    assert iv.equals(csv.intervals())


def test_redcap_rejects_field_on_wrong_instrument(tmp_path):
    bad = REDCAP.replace("P1,baseline_arm_1,response,1,,,,,,,,,,,,,,,,,,,,2021-03-01,VGPR,,,,,,",
                         "P1,baseline_arm_1,response,1,,,,,,,,,,,,,,morphine,,,,,,2021-03-01,"
                         "VGPR,,,,,,")
    (tmp_path / "e.csv").write_text(bad)
    with pytest.raises(ClinicalDataError, match=r"e\.csv, row 5, column tx_drug: .*treatment"):
        read_redcap(tmp_path / "e.csv")


def test_redcap_unknown_instrument_and_field(tmp_path):
    (tmp_path / "e.csv").write_text(REDCAP.replace("adverse_event,1", "toxicity,1"))
    with pytest.raises(ClinicalDataError,
                       match=r"row 7, column redcap_repeat_instrument: unknown instrument"):
        read_redcap(tmp_path / "e.csv")
    (tmp_path / "f.csv").write_text(REDCAP.replace("ae_action", "ae_acton"))
    with pytest.raises(ClinicalDataError, match=r"row 1, column ae_acton: unknown REDCap field"):
        read_redcap(tmp_path / "f.csv")
    ok = read_redcap(tmp_path / "f.csv", ignore=("ae_acton",))
    assert ok.adverse_events["action"].isna().all()


def test_redcap_errors_name_export_columns(tmp_path):
    (tmp_path / "e.csv").write_text(REDCAP.replace("neutropenia,3,", "neutropenia,7,"))
    with pytest.raises(ClinicalDataError, match=r"e\.csv, row 7, column ae_grade: .*range"):
        read_redcap(tmp_path / "e.csv")
    (tmp_path / "f.csv").write_text(REDCAP.replace("2021-04-01,2021-04-07",
                                                   "2020-04-01,2021-04-07"))
    with pytest.raises(ClinicalDataError,
                       match=r"f\.csv, row 4, column tx_start_date: .*before the transplant"):
        read_redcap(tmp_path / "f.csv")


def test_redcap_conflicting_patient_rows(tmp_path):
    extra = "P2,month_3_arm_1,,,M,,,,,,,,,,,,2,,,,,,,,,,,,,,\n"
    (tmp_path / "e.csv").write_text(REDCAP + extra)
    with pytest.raises(ClinicalDataError, match=r"row 10, column sex: 'M' conflicts with 'F'"):
        read_redcap(tmp_path / "e.csv")


def test_sdtm_unknown_death_term_is_not_guessed(tmp_path):
    folder = _write(tmp_path / "sdtm", SDTM)
    with pytest.raises(ClinicalDataError,
                       match=r"DS\.csv, row 3, column DSTERM: .*PROGRESSIVE MYELOMA.*cause_map"):
        read_sdtm(folder)


def test_sdtm_errors_name_sdtm_variables(tmp_path):
    files = dict(SDTM)
    files["AE.csv"] = files["AE.csv"].replace(",3,2021-04-01", ",3,2020-04-01")
    folder = _write(tmp_path / "sdtm", files)
    with pytest.raises(ClinicalDataError,
                       match=r"AE\.csv, row 2, column AESTDTC: .*before the transplant"):
        read_sdtm(folder, cause_map={"PROGRESSIVE MYELOMA": "relapse"})


def test_sdtm_death_without_ds_record(tmp_path):
    files = dict(SDTM)
    files["DS.csv"] = "STUDYID,DOMAIN,USUBJID,DSSEQ,DSTERM,DSDECOD,DSCAT,DSSTDTC\n"
    folder = _write(tmp_path / "sdtm", files)
    with pytest.raises(ClinicalDataError, match=r"DM\.csv, row 2, column DTHDTC"):
        read_sdtm(folder)


def test_sdtm_partial_date_rejected(tmp_path):
    files = dict(SDTM)
    files["RS.csv"] = files["RS.csv"].replace("PD,PD,2021-06-01", "PD,PD,2021-06")
    folder = _write(tmp_path / "sdtm", files)
    with pytest.raises(ClinicalDataError, match=r"RS\.csv, row 4, column RSDTC: .*partial"):
        read_sdtm(folder, cause_map={"PROGRESSIVE MYELOMA": "relapse"})
