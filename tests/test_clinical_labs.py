"""Laboratory tables become CTCAE-graded adverse events, merged with reported ones.

One patient, worked by hand (transplant 2021-01-01 = day 0; lenalidomide from
2021-03-01 = day 59):

- neutrophils (LLN 1.8 x 10^9/L): baseline 2.4 on 2021-02-25 (grade 0); 1.6 on
  03-15 (day 73, grade 1), 0.9 on 03-22 (day 80, grade 3), 0.4 on 03-29 (day 87,
  grade 4), 1.2 on 04-05 (day 94, grade 2), 2.0 on 04-12 (day 101, normal): one
  episode, onset day 73, worst grade 4, grade 3 first on day 80, resolved day 101.
  0.95 on 05-10 (day 129, grade 3) starts a second, unresolved episode.
- ALT (ULN 40 U/L): baseline 80 (2.0 x ULN: grade 1 in v3.0; abnormal in v5.0);
  110 on 03-20 (day 78): v3.0 2.75 x ULN grade 2, above the baseline grade, an
  event; v5.0 1.375 x baseline, below 1.5: no event. 130 on 04-01 (day 90):
  v3.0 3.25 x ULN grade 2; v5.0 1.625 x baseline grade 1. 60 on 04-20 (day 109):
  v3.0 grade 1 = the baseline grade: resolved; v5.0 below 1.5 x baseline.
- potassium (LLN 3.5 mmol/L): 3.2 on 04-01 (day 90): hypokalemia grade 1,
  resolved by 3.9 on 04-08 (day 97); hyperkalemia never.
- reported: neutropenia grade 3, 03-20 to 04-10, probable, interrupted (overlaps
  the first neutrophil episode: one event); fatigue grade 2 (not a lab term).
"""

import numpy as np
import pytest

from immunomon import ClinicalDataError
from immunomon.clinical import read_clinical, read_redcap, read_sdtm

PATIENTS = ("patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,"
            "conditioning,stem_cell_source\nP1,M,58,MM,2021-01-01,unrelated,10/10,RIC,PBSC\n")
LABS = """patient_id,date,test,value,unit,lln,uln,baseline
P1,2021-02-25,neutrophils,2.4,10^9/L,1.8,7.5,
P1,2021-03-15,neutrophils,1.6,10^9/L,1.8,7.5,
P1,2021-03-22,neutrophils,0.9,10^9/L,1.8,7.5,
P1,2021-03-29,neutrophils,0.4,10^9/L,1.8,7.5,
P1,2021-04-05,neutrophils,1.2,10^9/L,1.8,7.5,
P1,2021-04-12,neutrophils,2.0,10^9/L,1.8,7.5,
P1,2021-05-10,neutrophils,0.95,10^9/L,1.8,7.5,
P1,2021-02-25,ALT,80,U/L,,40,
P1,2021-03-20,ALT,110,U/L,,40,
P1,2021-04-01,ALT,130,U/L,,40,
P1,2021-04-20,ALT,60,U/L,,40,
P1,2021-04-01,K,3.2,mmol/L,3.5,5.1,
P1,2021-04-08,K,3.9,mmol/L,3.5,5.1,
P1,2021-04-08,ferritin,900,ug/L,,300,
"""
FILES = {
    "patients.csv": PATIENTS,
    "treatments.csv": "patient_id,drug,start_date,stop_date,dose,dose_unit\n"
                      "P1,lenalidomide,2021-03-01,2021-06-30,10,mg\n",
    "labs.csv": LABS,
    "adverse_events.csv": "patient_id,term,grade,onset_date,resolution_date,relation,action\n"
                          "P1,neutropenia,3,2021-03-20,2021-04-10,probable,interrupted\n"
                          "P1,Fatigue,2,2021-04-02,2021-04-20,possible,none\n",
    "followup.csv": "patient_id,last_follow_up_date\nP1,2021-06-30\n",
}
START = {"P1": 59}


def _write(folder, files):
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def clin(tmp_path):
    import pandas as pd
    data = read_clinical(_write(tmp_path / "c", FILES))
    return data, pd.Series(START)


def _events(frame):
    return {(r.term_key, r.onset_day): r for r in frame.itertuples()}


def test_lab_events_v3_by_hand(clin):
    data, start = clin
    ev = data.lab_adverse_events("3.0", start_day=start)
    got = _events(ev)
    n1 = got[("neutrophil_count_decreased", 73)]
    assert (n1.grade, n1.resolution_day, n1.grade_3_day, n1.grade_4_day) == (4, 101, 80, 87)
    assert n1.term == "Neutrophils/granulocytes (ANC/AGC)" and n1.worst_value == 0.4
    n2 = got[("neutrophil_count_decreased", 129)]
    assert n2.grade == 3 and np.isnan(n2.resolution_day)
    alt = got[("alanine_aminotransferase_increased", 78)]
    assert (alt.grade, alt.resolution_day, alt.grade_2_day) == (2, 109, 78)
    k = got[("hypokalemia", 90)]
    assert (k.grade, k.resolution_day) == (1, 97)
    assert len(ev) == 4                     # no hyperkalemia, ferritin not graded
    assert set(ev["source"]) == {"laboratory"}


def test_lab_events_v5_use_the_abnormal_baseline(clin):
    data, start = clin
    ev = data.lab_adverse_events("5.0", start_day=start)
    alt = ev[ev["term_key"] == "alanine_aminotransferase_increased"]
    assert alt[["onset_day", "grade", "resolution_day"]].values.tolist() == [[90, 1, 109]]
    assert alt["term"].iloc[0] == "Alanine aminotransferase increased"


def test_merge_counts_each_episode_once(clin):
    data, start = clin
    merged = data.graded_adverse_events("3.0", start_day=start)
    neut = merged[merged["term_key"] == "neutrophil_count_decreased"].sort_values("onset_day")
    first = neut.iloc[0]
    # lab episode days 73-101 and the report (days 78-99) are one event
    assert (first.onset_day, first.resolution_day, first.grade, first.source) == \
        (73, 101, 4, "both")
    assert (first.relation, first.action, first.grade_3_day) == ("probable", "interrupted", 78)
    assert neut.iloc[1].source == "laboratory" and len(neut) == 2
    fatigue = merged[merged["term"] == "Fatigue"]
    assert fatigue[["grade", "source"]].values.tolist() == [[2, "reported"]]
    assert len(merged) == 5
    # per patient and term, the worst grade
    worst = merged.groupby("term_key")["grade"].max()
    assert worst["neutrophil_count_decreased"] == 4


def test_an_unresolved_report_absorbs_later_episodes():
    import pandas as pd

    from immunomon.clinical.labs import _ae_frame, merge_adverse_events

    reported = pd.DataFrame({
        "patient_id": ["P1"], "term": ["Platelet count decreased"], "grade": [2],
        "onset_date": pd.to_datetime(["2021-02-01"]), "onset_day": [31],
        "resolution_date": [pd.NaT], "resolution_day": [np.nan], "relation": ["possible"],
        "action": ["none"], "drug": ["lenalidomide"]})
    lab = _ae_frame([{"patient_id": "P1", "term": "Platelets",
                      "term_key": "platelet_count_decreased", "grade": 3,
                      "onset_date": pd.Timestamp("2021-03-01"), "onset_day": 59.0,
                      "resolution_date": pd.Timestamp("2021-03-10"), "resolution_day": 68.0,
                      **{f"grade_{g}_day": 59.0 if g <= 3 else np.nan for g in range(1, 6)},
                      "source": "laboratory", "test": "PLAT", "worst_value": 40.0,
                      "unit": "10^9/L"}])
    out = merge_adverse_events(reported, lab, "3.0")
    assert out[["grade", "onset_day", "source"]].values.tolist() == [[3, 31, "both"]]
    assert np.isnan(out["resolution_day"].iloc[0])
    assert out["term"].iloc[0] == "Platelets"            # the v3.0 wording
    # a gap larger than the window keeps them apart
    reported["resolution_date"] = pd.to_datetime(["2021-02-20"])
    reported["resolution_day"] = [50]
    assert len(merge_adverse_events(reported, lab, "3.0")) == 2
    assert len(merge_adverse_events(reported, lab, "3.0", window_days=9)) == 1


REDCAP = """\
record_id,redcap_repeat_instrument,redcap_repeat_instance,sex,transplant_date,\
last_follow_up_date,lab_date,lab_test,lab_value,lab_unit,lab_lln,lab_uln,lab_baseline
P1,,,M,2021-01-01,2021-06-30,,,,,,,
P1,laboratory,1,,,,2021-02-25,neutrophils,2.4,10^9/L,1.8,7.5,yes
P1,laboratory,2,,,,2021-03-22,neutrophils,0.9,10^9/L,1.8,7.5,
"""
SDTM = {
    "dm.csv": "USUBJID,RFSTDTC,RFPENDTC,SEX\nP1,2021-01-01,2021-06-30,M\n",
    "lb.csv": "USUBJID,LBTESTCD,LBTEST,LBORRES,LBORRESU,LBSTRESN,LBSTRESU,LBSTNRLO,LBSTNRHI,"
              "LBDTC,LBBLFL,LBSTAT\n"
              "P1,NEUT,Neutrophils,2400,/uL,2.4,10^9/L,1.8,7.5,2021-02-25,Y,\n"
              "P1,NEUT,Neutrophils,900,/uL,0.9,10^9/L,1.8,7.5,2021-03-22T08:30,,\n"
              "P1,NEUT,Neutrophils,,,,,,,2021-03-29,,NOT DONE\n"
              "P1,XYZ,Ferritin,900,ug/L,900,ug/L,,300,2021-03-22,,\n",
}


def test_redcap_and_sdtm_labs(tmp_path):
    (tmp_path / "export.csv").write_text(REDCAP)
    rc = read_redcap(tmp_path / "export.csv")
    sd = read_sdtm(_write(tmp_path / "sdtm", SDTM))
    for data in (rc, sd):
        neut = data.labs[data.labs["test"].str.lower().isin(["neutrophils", "neut"])]
        neut = neut.assign(baseline=neut["baseline"].fillna(False).astype(bool))
        assert neut[["day", "value", "lln", "baseline"]].values.tolist() == \
            [[55, 2.4, 1.8, True], [80, 0.9, 1.8, False]]
        ev = data.lab_adverse_events("5.0")
        assert ev[["term", "grade", "onset_day"]].values.tolist() == \
            [["Neutrophil count decreased", 3, 80]]
    assert "Ferritin" in set(sd.labs["test"])           # kept, not graded


@pytest.mark.parametrize("labs,line,column,words", [
    ("P1,2021-03-22,neutrophils,0.9,mg/dL,1.8,7.5,\n", 2, "unit", "does not fit"),
    ("P1,2021-03-22,neutrophils,1.6,10^9/L,,7.5,\n", 2, "lln", "lower limit of normal"),
    ("P1,2021-03-22,ALT,90,U/L,,,\n", 2, "uln", "upper limit of normal"),
    ("P1,2021-02-22,K,4.0,mmol/L,3.5,5.1,yes\nP1,2021-02-23,K,4.1,mmol/L,3.5,5.1,yes\n", 3,
     "baseline", "second baseline"),
])
def test_lab_errors_name_file_row_and_column(tmp_path, labs, line, column, words):
    files = dict(FILES, **{"labs.csv": LABS.splitlines()[0] + "\n" + labs})
    with pytest.raises(ClinicalDataError) as err:
        data = read_clinical(_write(tmp_path / "c", files))
        data.lab_adverse_events("3.0")
    msg = str(err.value)
    assert f"labs.csv, row {line}, column {column}:" in msg and words in msg, msg


def test_stop_reason_needs_a_stop(tmp_path):
    files = dict(FILES, **{"treatments.csv": "patient_id,drug,start_date,stop_date,dose,"
                                             "dose_unit,stop_reason\n"
                                             "P1,lenalidomide,2021-03-01,,10,mg,toxicity\n"})
    with pytest.raises(ClinicalDataError, match=r"treatments.csv, row 2, column stop_reason"):
        read_clinical(_write(tmp_path / "c", files))
    files["treatments.csv"] = files["treatments.csv"].replace(",,10", ",2021-04-01,10") \
        .replace("toxicity", "adverse event")
    data = read_clinical(_write(tmp_path / "d", files))
    assert data.treatments["stop_reason"].tolist() == ["toxicity"]
