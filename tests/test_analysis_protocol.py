"""The one-year outcome table and the adverse-event table on hand-built data.

Reference values from R (tests/reference/protocol.R): survfit with log-log
intervals and cmprsk::cuminc with the log-log interval. The GVHD rows need
relapse and death as competing events; the recoding is worked out per patient
below (times from the origin):

P1 aGVHD day 150 after progression on day 100: competing, (100, 2)
P2 aGVHD day 50: (50, 1)             P3 death on day 200 without GVHD: (200, 2)
P4 progression on day 120: (120, 2)  P5 nothing, followed to 300: (300, 0)
P6 aGVHD 60, progression 90: (60, 1) P7 aGVHD and progression on day 90: (90, 1)
P8 nothing, followed to 365: (365, 0)
"""

import numpy as np
import pandas as pd
import pytest

from immunomon.analysis.protocol import (adverse_event_table, gvhd_competing,
                                         outcome_table)

NAN = np.nan
IDS = [f"P{i}" for i in range(1, 9)]


def _endpoints(shift: float = 0.0) -> pd.DataFrame:
    ep = pd.DataFrame({
        "patient_id": IDS,
        "os_days": [100, 200, 300, 400, 500, 250, 600, 365],
        "os_event": [1, 0, 1, 0, 0, 1, 0, 0],
        "relapse_days": [100, 150, 300, 400, 500, 250, 90, 365],
        "relapse_event": [2, 1, 2, 0, 1, 2, 1, 0],
        "agvhd_2_4_days": [150, 50, 200, 500, 300, 60, 90, 365],
        "agvhd_2_4_event": [1, 1, 2, 0, 0, 1, 1, 0],
        "progression_day": [100, NAN, NAN, 120, NAN, 90, 90, NAN],
        "death_day": [NAN, NAN, 200, NAN, NAN, NAN, NAN, NAN],
        "end_day": [500, 400, 200, 500, 300, 600, 600, 365],
    })
    for col in ("os_days", "relapse_days", "agvhd_2_4_days", "progression_day", "death_day",
                "end_day"):
        ep[col] = ep[col] + shift
    return ep


def test_gvhd_recoded_with_relapse_and_death_competing():
    t, s = gvhd_competing(_endpoints(), "agvhd_2_4")
    assert t.tolist() == [100, 50, 200, 120, 300, 60, 90, 365]
    assert s.tolist() == [2, 1, 2, 2, 0, 1, 1, 0]


@pytest.mark.parametrize("shift", [0.0, 45.0])
def test_one_year_table_matches_r(shift):
    origin = pd.Series(shift, index=IDS) if shift else None
    tab = outcome_table(_endpoints(shift), horizon_days=365, origin=origin).set_index("outcome")
    os_ = tab.loc["Overall survival"]
    # R: summary(survfit(Surv(t, e) ~ 1, conf.type = "log-log"), times = 365)
    assert (os_["estimate"], os_["lower"], os_["upper"]) == pytest.approx(
        (0.5833333333, 0.180188891, 0.8440686917), abs=1e-8)
    assert os_["events"] == 3
    rel = tab.loc["Relapse or progression"]
    assert (rel["estimate"], rel["lower"], rel["upper"]) == pytest.approx(
        (0.25, 0.0289123181, 0.5813801415), abs=1e-8)
    assert (rel["events"], rel["competing_events"]) == (2, 3)
    ag = tab.loc["Acute GVHD grade II-IV"]
    assert (ag["estimate"], ag["lower"], ag["upper"]) == pytest.approx(
        (0.375, 0.07157251801, 0.6943269906), abs=1e-8)
    assert (ag["events"], ag["competing_events"]) == (3, 3)
    assert ag["competing"] == "relapse or death"


def test_adverse_event_table_by_hand():
    ae = pd.DataFrame({"patient_id": ["P1", "P1", "P2", "P2", "P3"],
                       "term": ["Neutrophil count decreased"] * 3 + ["Fatigue"] * 2,
                       "grade": [3, 4, 2, 1, 3]})
    tab = adverse_event_table(ae, 4)
    assert tab["term"].tolist() == ["Any adverse event", "Fatigue", "Neutrophil count decreased"]
    anyae = tab.iloc[0]
    assert anyae[["patients", "grade_1", "grade_2", "grade_3", "grade_4", "grade_3_5"]
                 ].tolist() == [3, 0, 1, 1, 1, 2]
    assert (anyae["percent"], anyae["percent_grade_3_5"]) == (75.0, 50.0)
    neut = tab.iloc[2]
    assert neut[["patients", "grade_2", "grade_4", "grade_3_5"]].tolist() == [2, 1, 1, 1]
