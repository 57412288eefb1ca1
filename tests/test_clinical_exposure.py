"""Dose levels day by day, counted by hand.

P1 (transplant 2021-01-01): lenalidomide 10 mg 03-01..04-11 (days 59-100), held
03-22..03-28 (days 80-86), 5 mg 04-12..05-31 (days 101-150), 2.5 mg
06-01..07-20 (days 151-200), stopped for toxicity. P2 (transplant 2021-01-01):
10 mg from 03-01 (day 59) with no stop, followed to 2021-04-30 (day 119); a gap
without a hold between 03-11 (day 69) and 03-15 (day 73) when the period
03-01..03-10 and the one from 03-16 (day 74) are both 10 mg.
"""

import numpy as np
import pytest

from immunomon import ClinicalDataError
from immunomon.clinical import read_clinical
from immunomon.clinical.exposure import dose_days, exposure_summary

LEVELS = [10, 5, 2.5]
FILES = {
    "patients.csv": "patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,"
                    "conditioning,stem_cell_source\n"
                    "P1,M,58,MM,2021-01-01,unrelated,10/10,RIC,PBSC\n"
                    "P2,F,60,MM,2021-01-01,related,10/10,RIC,PBSC\n",
    "treatments.csv": "patient_id,drug,start_date,stop_date,dose,dose_unit,status,reason,"
                      "stop_reason\n"
                      "P1,lenalidomide,2021-03-01,2021-04-11,10,mg,on,,\n"
                      "P1,Lenalidomide,2021-03-22,2021-03-28,,,held,neutropenia,\n"
                      "P1,lenalidomide,2021-04-12,2021-05-31,5,mg,on,dose reduced,\n"
                      "P1,lenalidomide,2021-06-01,2021-07-20,2.5,mg,on,dose reduced,adverse event\n"
                      "P2,lenalidomide,2021-03-01,2021-03-10,10,mg,on,,\n"
                      "P2,lenalidomide,2021-03-16,,10,mg,on,,\n",
    "followup.csv": "patient_id,last_follow_up_date\nP1,2021-12-31\nP2,2021-04-30\n",
}


@pytest.fixture
def clin(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return read_clinical(tmp_path)


def test_dose_days_by_hand(clin):
    d = dose_days(clin, "lenalidomide", LEVELS)
    p1 = d[d["patient_id"] == "P1"].set_index("day")
    assert (p1.index.min(), p1.index.max(), len(p1)) == (59, 200, 142)
    assert p1.loc[79, ["state", "dose", "level"]].tolist() == ["on", 10, 0]
    assert p1.loc[80, ["state", "dose", "assigned_dose"]].tolist() == ["held", 0, 10]
    assert p1.loc[101, ["dose", "level", "lowest"]].tolist() == [5, -1, False]
    assert p1.loc[151, ["dose", "level", "lowest"]].tolist() == [2.5, -2, True]
    assert int(p1["lowest"].sum()) == 50                      # days 151-200
    p2 = d[d["patient_id"] == "P2"].set_index("day")
    assert (p2.index.min(), p2.index.max()) == (59, 119)       # ongoing: to last follow-up
    assert p2.loc[69:73, "state"].tolist() == ["off"] * 5
    assert p2.loc[69:73, "assigned_dose"].tolist() == [10] * 5


def test_exposure_summary_by_hand(clin):
    s = exposure_summary(clin, "lenalidomide", LEVELS).set_index("patient_id")
    assert s.loc["P1", ["first_dose_day", "start_dose", "last_dose", "last_level",
                        "lowest_level_day", "reductions", "escalations", "holds",
                        "held_days", "days_on", "stop_day", "stop_reason", "ongoing"]
                 ].tolist() == [59, 10, 2.5, -2, 151, 2, 0, 1, 7, 135, 200, "toxicity", False]
    assert s.loc["P2", "ongoing"] and np.isnan(s.loc["P2", "stop_day"])
    assert s.loc["P2", ["days_on", "reductions"]].tolist() == [56, 0]


def test_a_dose_off_the_protocol_levels_is_named(clin, tmp_path):
    with pytest.raises(ClinicalDataError, match=r"treatments.csv, row 4, column dose: 5 mg "
                                                r"is not one of the dose levels"):
        dose_days(clin, "lenalidomide", [10, 7.5, 2.5])


def test_a_drug_the_treatments_do_not_name_is_an_error_not_an_empty_exposure(clin):
    from immunomon.clinical.protocol import Protocol, primary_endpoint
    for call in (lambda: dose_days(clin, "lenalidomid", LEVELS),
                 lambda: exposure_summary(clin, "lenalidomid", LEVELS),
                 lambda: primary_endpoint(clin, Protocol(drug="lenalidomid",
                                                         dose_levels=tuple(LEVELS)))):
        with pytest.raises(ClinicalDataError, match="no treatment of drug 'lenalidomid' in "
                                                    "the clinical data; the treatments name: "
                                                    "lenalidomide"):
            call()
    assert len(dose_days(clin, " Lenalidomide ", LEVELS))        # case and spaces aside
