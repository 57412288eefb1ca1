"""The protocol's primary endpoint on hand-built patients, each answer worked out here.

Every patient is transplanted on 2021-01-01 (day 0); dates are written as days.
Lenalidomide levels 10, 5 and 2.5 mg (lowest 2.5); origin: first dose; horizon
365 days; CTCAE v3.0 with neutrophil LLN 1.8 x 10^9/L.

- A: 10 mg from day 60, 5 mg from day 100, 2.5 mg from day 150 to 400;
  neutrophils 0.9 (grade 3) on day 170, at 2.5 mg: met, ae_at_lowest_dose, day 170.
- B: 10 mg from day 60; neutrophils 0.4 (grade 4) on day 80 at 10 mg: not met.
- C: acute GVHD skin 3 on day 120, methylprednisolone from day 120, skin 4 on
  day 124 (progression 4 days in): met, steroid_refractory_agvhd, day 124.
- D: transplant-related death on day 300, within 60 + 365 = 425: met on day 300.
- E: transplant-related death on day 500, after the horizon (day 425): not met,
  followed past the horizon.
- F: never took lenalidomide: not in the treated population.
- G: followed to day 200 only, nothing happened: not met, censored early.
- H: 5 mg from day 60, 2.5 mg from day 150; neutrophils 0.9 on day 140 (at
  5 mg) and still 0.9 on day 155: one episode whose grade 3 began at 5 mg,
  not at the lowest level; back to 2.0 on day 170; 0.8 on day 200 at 2.5 mg
  is a new grade-3 episode: met on day 200.
- J: 10 mg from day 60 to 150, dies of progression on day 200: not met, and
  followed for what it could be (death ends follow-up).
- I: chronic GVHD (skin 1, mouth 1) on day 240 on prednisone 1 mg/kg/day from
  day 240; skin 2 on day 250: steroid-refractory chronic GVHD on day 250; a
  reported grade 3 "Platelet count decreased" at 2.5 mg on day 260: met on day
  250 by steroid_refractory_cgvhd, both criteria listed.

Met: A, C, D, H, I = 5 of the 9 treated; exact 95% interval from R,
binom.test(5, 9)$conf.int = 0.2120085068, 0.8630043377.
"""

import datetime as dt

import numpy as np
import pytest

from immunomon import ClinicalDataError
from immunomon.clinical import read_clinical
from immunomon.clinical.protocol import Protocol, primary_endpoint

T0 = dt.date(2021, 1, 1)


def d(day: int) -> str:
    return (T0 + dt.timedelta(days=day)).isoformat()


PATIENTS = "ABCDEFGHIJ"
ENDS = {"A": 500, "B": 500, "C": 500, "E": 500, "F": 500, "G": 200, "H": 500, "I": 500}


def _files() -> dict:
    pat = ["patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,"
           "stem_cell_source,weight_kg"]
    pat += [f"{p},M,55,MM,{d(0)},related,10/10,RIC,PBSC,70" for p in PATIENTS]
    tr = ["patient_id,drug,start_date,stop_date,dose,dose_unit,status,reason"]
    for p in "BCDEGJ":
        stop = {"G": 200, "D": 300, "J": 150}.get(p, 400)
        tr.append(f"{p},lenalidomide,{d(60)},{d(stop)},10,mg,on,")
    tr += [f"A,lenalidomide,{d(60)},{d(99)},10,mg,on,",
           f"A,lenalidomide,{d(100)},{d(149)},5,mg,on,dose reduced",
           f"A,lenalidomide,{d(150)},{d(400)},2.5,mg,on,dose reduced",
           f"H,lenalidomide,{d(60)},{d(149)},5,mg,on,",
           f"H,lenalidomide,{d(150)},{d(400)},2.5,mg,on,dose reduced",
           f"I,lenalidomide,{d(60)},{d(149)},5,mg,on,",
           f"I,lenalidomide,{d(150)},{d(400)},2.5,mg,on,dose reduced",
           f"C,methylprednisolone,{d(120)},{d(160)},2,mg/kg,on,aGVHD",
           f"I,prednisone,{d(240)},{d(300)},70,mg,on,cGVHD"]
    labs = ["patient_id,date,test,value,unit,lln,uln"]
    for p in "ABHI":
        labs.append(f"{p},{d(55)},ANC,2.5,10^9/L,1.8,7.5")
    labs += [f"A,{d(170)},ANC,0.9,10^9/L,1.8,7.5", f"B,{d(55)},ANC,2.5,10^9/L,1.8,7.5",
             f"B,{d(80)},ANC,0.4,10^9/L,1.8,7.5",
             f"H,{d(140)},ANC,0.9,10^9/L,1.8,7.5", f"H,{d(155)},ANC,0.9,10^9/L,1.8,7.5",
             f"H,{d(170)},ANC,2.0,10^9/L,1.8,7.5", f"H,{d(200)},ANC,0.8,10^9/L,1.8,7.5"]
    ae = ["patient_id,term,grade,onset_date,resolution_date,relation,action",
          f"I,Platelet count decreased,3,{d(260)},{d(270)},probable,interrupted"]
    ag = ["patient_id,date,skin,liver,upper_gi,lower_gi",
          f"C,{d(120)},3,0,0,0", f"C,{d(124)},4,0,0,0"]
    cg = ["patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia",
          f"I,{d(240)},1,1,0,0,0,0,0", f"I,{d(250)},2,1,0,0,0,0,0"]
    deaths = ["patient_id,date,cause,detail", f"D,{d(300)},nrm,infection",
              f"E,{d(500)},nrm,infection", f"J,{d(200)},relapse,myeloma"]
    fu = ["patient_id,last_follow_up_date"] + [f"{p},{d(e)}" for p, e in ENDS.items()
                                               if p != "E"]
    return {"patients.csv": pat, "treatments.csv": tr, "labs.csv": labs,
            "adverse_events.csv": ae, "agvhd.csv": ag, "cgvhd.csv": cg,
            "deaths.csv": deaths, "followup.csv": fu}


PROTOCOL = Protocol(drug="lenalidomide", dose_levels=(10, 5, 2.5), ctcae_version="3.0",
                    origin="treatment_start", horizon_days=365)


@pytest.fixture(scope="module")
def clin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("protocol")
    for name, lines in _files().items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return read_clinical(folder)


EXPECT = {  # patient: (met, criterion, day)
    "A": (True, "ae_at_lowest_dose", 170), "B": (False, None, None),
    "C": (True, "steroid_refractory_agvhd", 124), "D": (True, "transplant_related_death", 300),
    "E": (False, None, None), "G": (False, None, None),
    "H": (True, "ae_at_lowest_dose", 200), "I": (True, "steroid_refractory_cgvhd", 250),
    "J": (False, None, None),
}


def test_primary_endpoint_per_patient(clin):
    pe = primary_endpoint(clin, PROTOCOL).set_index("patient_id")
    assert list(pe.index) == list("ABCDEGHIJ")              # F never treated
    for p, (met, crit, day) in EXPECT.items():
        row = pe.loc[p]
        assert (bool(row["met"]), row["criterion"]) == (met, crit), p
        if met:
            assert row["day"] == day and row["day_from_origin"] == day - 60, p
        else:
            assert np.isnan(row["day"]), p
    assert pe.loc["I", "all_criteria"].startswith("steroid_refractory_cgvhd day 250; "
                                                  "ae_at_lowest_dose day 260")
    assert pe.loc["E", "horizon_day"] == 425 and bool(pe.loc["E", "followed_to_horizon"])
    assert not pe.loc["G", "followed_to_horizon"] and "day 200 only" in pe.loc["G", "note"]
    assert pe.loc["J", "followed_to_horizon"]
    assert pe.loc["J", "note"] == "died on day 200 (relapse/progression)"


def test_primary_proportion_with_exact_interval(clin):
    from immunomon.analysis.protocol import primary_summary

    pe = primary_endpoint(clin, PROTOCOL)
    s = primary_summary(pe)
    assert (s["events"], s["n"], s["censored_early"]) == (5, 9, 1)     # G
    assert s["proportion"] == pytest.approx(5 / 9)
    # R: binom.test(5, 9)$conf.int
    assert s["lower"] == pytest.approx(0.2120085068, abs=1e-9)
    assert s["upper"] == pytest.approx(0.8630043377, abs=1e-9)
    assert s["by_criterion"] == {"ae_at_lowest_dose": 2, "steroid_refractory_agvhd": 1,
                                 "steroid_refractory_cgvhd": 1, "transplant_related_death": 1}


def test_other_protocols_state_their_own_criteria(clin):
    # any grade 3-4 event regardless of dose, from transplant, over 200 days
    other = Protocol(drug="lenalidomide", dose_levels=(10, 5, 2.5), origin="transplant",
                     horizon_days=200, population="all", criteria=(("ae", {}),))
    pe = primary_endpoint(clin, other)
    pe = pe.set_index("patient_id")
    assert len(pe) == 10
    # B's grade 4 on day 80 now counts; A day 170; H day 140 (first grade 3);
    # I's platelets on day 260 is past day 200
    met = pe[pe["met"]]
    assert met["day"].to_dict() == {"A": 170, "B": 80, "H": 140}
    with pytest.raises(ClinicalDataError, match="unknown primary-endpoint criterion"):
        Protocol(criteria=(("grade_3_ae", {}),))
    with pytest.raises(ClinicalDataError, match="needs the protocol's dose_levels"):
        Protocol(criteria=(("ae_at_lowest_dose", {}),))
    with pytest.raises(ClinicalDataError, match="unknown option"):
        Protocol(dose_levels=(10,), criteria=(("ae_at_lowest_dose", {"grade": 3}),))
