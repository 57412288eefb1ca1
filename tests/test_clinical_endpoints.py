"""Endpoints and time-varying intervals on a small cohort, every day counted by hand.

Calendar days (2021 is not a leap year):
P1 transplant 2021-01-01: 01-21 = day 20, 01-31 = 30, 02-10 = 40, 03-01 = 59,
   04-01 = 90, 05-01 = 120, 05-07 = 126, 06-30 = 180, 07-01 = 181, 09-01 = 243.
P2 transplant 2021-03-15: 06-15 = 92, 09-15 = 184, 11-15 = 245, 2022-01-10 = 301.
P3 transplant 2021-02-01: 02-20 = 19, 03-01 = 28, 05-01 = 89, 06-01 = 120,
   2022-02-01 = 365.
"""

import numpy as np
import pandas as pd
import pytest

from immunomon.clinical import exposure_runs, read_clinical

FILES = {
    "patients.csv": """patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,stem_cell_source
P1,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC
P2,F,62,multiple myeloma,2021-03-15,related,10/10,RIC,PBSC
P3,M,49,multiple myeloma,2021-02-01,unrelated,9/10,RIC,PBSC
""",
    "agvhd.csv": """patient_id,date,skin,liver,upper_gi,lower_gi
P1,2021-01-21,1,0,0,0
P1,2021-01-31,3,0,0,0
P1,2021-02-10,2,2,0,0
P3,2021-02-20,0,0,1,0
P3,2021-03-01,0,0,1,4
""",
    "cgvhd.csv": """patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia,genital
P2,2021-09-15,1,1,0,0,0,0,0,
P2,2021-11-15,2,0,0,0,0,0,0,0
""",
    "treatments.csv": """patient_id,drug,start_date,stop_date,dose,dose_unit,status,reason
P1,methylprednisolone,2021-01-31,2021-03-01,2,mg/kg,on,aGVHD
P1,lenalidomide,2021-04-01,2021-06-30,10,mg,on,
P1,lenalidomide,2021-05-01,2021-05-07,,,held,neutropenia
P3,lenalidomide,2021-05-01,2021-06-01,10,mg,on,
P3,lenalidomide,2021-06-01,,5,mg,on,dose reduced
""",
    "responses.csv": """patient_id,date,baseline,category,serum_m_protein_g_dl
P1,2020-12-15,yes,,2.0
P1,2021-03-01,,,0.8
P1,2021-05-01,,,0.5
P1,2021-07-01,,,1.1
P2,2021-06-15,,CR,
""",
    "deaths.csv": """patient_id,date,cause,detail
P1,2021-09-01,relapse,
P2,2022-01-10,nrm,infection
""",
    "followup.csv": """patient_id,last_follow_up_date
P3,2022-02-01
""",
}


@pytest.fixture
def cohort(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return read_clinical(tmp_path)


def test_computed_grades_and_days(cohort):
    ag = cohort.agvhd.sort_values(["patient_id", "date"])
    assert ag["day"].tolist() == [20, 30, 40, 19, 28]
    assert ag["grade_magic"].tolist() == [1, 2, 3, 2, 4]
    assert ag["grade_glucksberg"].tolist() == [1, 2, 3, 2, 3]
    assert cohort.cgvhd["nih_severity"].tolist() == ["mild", "moderate"]
    r = cohort.responses[cohort.responses["patient_id"] == "P1"]
    assert r["day"].tolist() == [-17, 59, 120, 181]
    # 2.0 -> 0.8 (60%), 0.5 (75%): PR; 1.1 is +0.6 over the nadir 0.5: PD
    assert r["response"].tolist() == [None, "PR", "PR", "PD"]


def test_endpoints(cohort):
    ep = cohort.endpoints().set_index("patient_id")
    expect = {
        #       os      pfs     relapse  trm     aGVHD2-4  aGVHD3-4  cGVHD    cGVHD mod-sev
        "P1": ((243, 1), (181, 1), (181, 1), (243, 2), (30, 1), (40, 1), (243, 2), (243, 2)),
        "P2": ((301, 1), (301, 1), (301, 2), (301, 1), (301, 2), (301, 2), (184, 1), (245, 1)),
        "P3": ((365, 0), (365, 0), (365, 0), (365, 0), (19, 1), (28, 1), (365, 0), (365, 0)),
    }
    names = ["os", "pfs", "relapse", "trm", "agvhd_2_4", "agvhd_3_4", "cgvhd", "cgvhd_modsev"]
    for pid, values in expect.items():
        for name, (days, event) in zip(names, values):
            assert (ep.at[pid, f"{name}_days"], ep.at[pid, f"{name}_event"]) == (days, event), \
                (pid, name)
    assert ep["progression_day"].tolist()[0] == 181
    assert np.isnan(ep.at["P2", "progression_day"])
    assert ep["agvhd_max_grade"].tolist() == [3, 0, 4]
    # P1: steroids from day 30 (skin 3); day 40 skin 2 but liver 2: no improvement
    # at the first assessment >= 7 days on steroids -> refractory.
    assert ep["agvhd_steroid_refractory"].tolist()[0] is True
    assert pd.isna(ep.at["P3", "agvhd_steroid_refractory"])   # no steroids given


def test_endpoints_glucksberg_grading(cohort):
    ep = cohort.endpoints(grading="glucksberg").set_index("patient_id")
    assert ep.at["P3", "agvhd_max_grade"] == 3     # gut stage 4 is grade III here
    assert (ep.at["P3", "agvhd_3_4_days"], ep.at["P3", "agvhd_3_4_event"]) == (28, 1)


def test_intervals(cohort):
    iv = cohort.intervals()
    got = {(r.patient_id, r.covariate): [] for r in iv.itertuples()}
    for r in iv.itertuples():
        got[(r.patient_id, r.covariate)].append((r.start, r.stop, r.value))
    assert got[("P1", "on_lenalidomide")] == [(90, 119, 1), (127, 180, 1)]   # days 120-126 held
    assert got[("P1", "lenalidomide_dose")] == [(90, 119, 10), (127, 180, 10)]
    assert got[("P1", "agvhd_2_4")] == [(30, 243, 1)]
    assert got[("P1", "agvhd_3_4")] == [(40, 243, 1)]
    assert got[("P1", "on_methylprednisolone")] == [(30, 59, 1)]
    assert got[("P2", "cgvhd")] == [(184, 301, 1)]
    assert got[("P2", "cgvhd_modsev")] == [(245, 301, 1)]
    # Dose change on 06-01 glues the two periods; ongoing runs to last follow-up.
    assert got[("P3", "on_lenalidomide")] == [(89, 365, 1)]
    assert got[("P3", "lenalidomide_dose")] == [(89, 120, 10), (120, 365, 5)]
    assert list(iv.columns) == ["patient_id", "start", "stop", "covariate", "value"]


def test_exposure_runs_glue_and_holds():
    assert exposure_runs([(0, 10, 1.0), (11, 20, 1.0)], []) == [(0, 20, 1.0)]
    assert exposure_runs([(0, 10, 1.0), (13, 20, 1.0)], []) == [(0, 10, 1.0), (13, 20, 1.0)]
    assert exposure_runs([(0, 20, 1.0)], [(0, 5)]) == [(6, 20, 1.0)]
    assert exposure_runs([(0, 20, 1.0)], [(15, 30)]) == [(0, 14, 1.0)]
    assert exposure_runs([(3, 3, 1.0)], []) == []


def test_intervals_feed_counting_process(cohort):
    from immunomon.analysis import counting_process
    ep = cohort.endpoints()
    iv = cohort.intervals()
    on = iv[iv["covariate"] == "on_lenalidomide"].rename(columns={"patient_id": "patient"})
    pts = ep.rename(columns={"patient_id": "patient", "pfs_days": "time",
                             "pfs_event": "event"})[["patient", "time", "event"]]
    cp = counting_process(pts, intervals={"len": on[["patient", "start", "stop"]]})
    p1 = cp[cp["patient"] == "P1"]
    assert p1[["start", "stop", "len"]].values.tolist() == [
        [0, 90, 0], [90, 119, 1], [119, 127, 0], [127, 180, 1], [180, 181, 0]]
    assert p1["event"].tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize("steroid,weight,expect", [
    # prednisone 70 mg/day for a 70 kg patient = 1 mg/kg/day from day 184 (09-15);
    # skin 1 -> 2 on 09-23 (day 192) after 8 days: refractory on day 192
    ("prednisone,2021-09-15,2021-12-31,70,mg", "70", (True, 192.0)),
    # methylprednisolone 0.8 mg/kg = prednisone 1.0 mg/kg
    ("methylprednisolone,2021-09-15,2021-12-31,0.8,mg/kg", "", (True, 192.0)),
    # 0.6 mg/kg/day: not the progression dose; 4 weeks later (10-13 = day 212)
    # skin is still 2: persistence without improvement, refractory on day 212
    ("prednisone,2021-09-15,2021-12-31,0.6,mg/kg/day", "", (True, 212.0)),
    # a dose in mg without the patient's weight cannot be judged
    ("prednisone,2021-09-15,2021-12-31,70,mg", "", (pd.NA, np.nan)),
])
def test_steroid_refractory_chronic_gvhd_in_endpoints(tmp_path, steroid, weight, expect):
    files = dict(FILES)
    files["patients.csv"] = FILES["patients.csv"].replace(
        "stem_cell_source\n", "stem_cell_source,weight_kg\n").replace(
        "PBSC\nP2", "PBSC,\nP2").replace("related,10/10,RIC,PBSC\nP3",
                                          f"related,10/10,RIC,PBSC,{weight}\nP3") \
        .replace("9/10,RIC,PBSC\n", "9/10,RIC,PBSC,\n")
    files["cgvhd.csv"] = ("patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia\n"
                          "P2,2021-09-15,1,1,0,0,0,0,0\nP2,2021-09-23,2,1,0,0,0,0,0\n"
                          "P2,2021-10-13,2,1,0,0,0,0,0\n")
    files["treatments.csv"] = FILES["treatments.csv"] + f"P2,{steroid},on,cGVHD\n"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    ep = read_clinical(tmp_path).endpoints().set_index("patient_id")
    flag, day = ep.at["P2", "cgvhd_steroid_refractory"], ep.at["P2", "cgvhd_steroid_refractory_day"]
    if expect[0] is pd.NA:
        assert pd.isna(flag) and np.isnan(day)
    else:
        assert (bool(flag), day) == expect
    assert pd.isna(ep.at["P1", "cgvhd_steroid_refractory"])     # no chronic GVHD
    assert ep.at["P1", "agvhd_steroid_refractory_day"] == 40


def test_an_unknown_grading_is_a_clinical_data_error():
    from immunomon import ClinicalDataError
    from immunomon.clinical.endpoints import _grade_col
    with pytest.raises(ClinicalDataError, match="grading must be one of .* not 'magik'"):
        _grade_col("magik")
