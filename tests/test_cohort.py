"""The cohort from small hand-made tables: every value below is read off the tables.

Calendar days: P1 transplant 2021-01-01 (01-31 = day 30, 04-01 = day 90);
P2 transplant 2021-03-15 (04-14 = day 30, 04-15 = day 31, 06-13 = day 90);
P3 transplant 2021-02-01, no samples.
"""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pandas.testing import assert_frame_equal

from immunomon.clinical import read_clinical
from immunomon.cohort import Cohort, build, load, read_manifest

CLINICAL = {
    "patients.csv": """patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,stem_cell_source
P1,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC
P2,F,62,,2021-03-15,related,10/10,RIC,PBSC
P3,M,49,multiple myeloma,2021-02-01,unrelated,9/10,RIC,
""",
    "agvhd.csv": """patient_id,date,skin,liver,upper_gi,lower_gi
P1,2021-01-21,1,0,0,0
P1,2021-01-31,3,0,0,0
""",
    "treatments.csv": """patient_id,drug,start_date,stop_date,dose,dose_unit,status,reason
P1,lenalidomide,2021-04-01,2021-06-30,10,mg,on,
P1,lenalidomide,2021-05-01,2021-05-07,,,held,neutropenia
""",
    "adverse_events.csv": """patient_id,term,grade,onset_date,resolution_date,relation,action,drug
P1,Neutrophil count decreased,3,2021-05-01,2021-05-07,probable,interrupted,lenalidomide
P2,Fatigue,1,2021-05-01,,unrelated,none,
""",
    "deaths.csv": """patient_id,date,cause,detail
P2,2022-01-10,nrm,infection
""",
    "followup.csv": """patient_id,last_follow_up_date
P1,2021-12-31
P3,2022-02-01
""",
}

MANIFEST = """file,kind,patient_id,visit,collection_date,material,lineage,sample
fcs/P1_M1.fcs,fcs,P1,M1,2021-01-31,blood,,
fcs/P1_M3.fcs,fcs,P1,M3,2021-04-01,blood,,
fcs/P2_M1.fcs,fcs,P2,M1,2021-04-14,blood,,
fcs/P2_M1_repeat.fcs,fcs,P2,M1,2021-04-15,blood,,
fcs/P1_BM.fcs,fcs,P1,M3,2021-04-01,marrow,,
str/P1_M1.txt,str,P1,M1,2021-01-31,blood,,P1_M1_WB
str/P1_M1.txt,str,P1,M1,2021-01-31,blood,CD3+,P1_M1_CD3
str/P2_M3.txt,str,P2,M3,2021-06-13,peripheral blood,whole blood,
"""

POPULATIONS = pd.DataFrame(
    [("P1_M1", "Lymphocytes", 1000, 50.0, 1500.0, 100.0),
     ("P1_M1", "T cells", 700, 70.0, 1050.0, 900.0),
     ("P1_M3", "Lymphocytes", 2000, 40.0, 2000.0, 110.0),
     ("P1_M3", "T cells", 1500, 75.0, 1500.0, 950.0),
     ("P1_M3", "NK cells", 200, 10.0, 200.0, 20.0),
     ("P2_M1", "Lymphocytes", 800, 30.0, 600.0, 120.0),
     ("P2_M1", "T cells", 400, 50.0, 300.0, 800.0),
     ("P2_M1_repeat", "Lymphocytes", 9999, 99.0, 9999.0, 999.0),
     ("P2_M1_repeat", "T cells", 9999, 99.0, 9999.0, 999.0)],
    columns=["sample", "population", "count", "percent_of_parent", "cells_per_ul",
             "median CD3"])
CHIMERISM = pd.DataFrame({
    "sample": ["P1_M1_WB", "P1_M1_CD3", "P2_M3"],
    "percent_donor": [98.5, 91.2, 100.0],
    "flags": ["", "few_informative_loci", ""]})
QC = {"P1_M1": ["margin events 2.0%"], "P1_M3": [], "P2_M1": ["low count: NK cells", "x"]}


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def clinical(tmp_path):
    return read_clinical(write(tmp_path / "clinical", CLINICAL))


@pytest.fixture
def manifest(tmp_path):
    write(tmp_path, {"manifest.csv": MANIFEST})
    return read_manifest(tmp_path / "manifest.csv")


@pytest.fixture
def cohort(manifest, clinical):
    return build(manifest, populations=POPULATIONS, chimerism=CHIMERISM, clinical=clinical,
                 qc=QC, provenance={"template_panel": "T tube", "template_version": "1.0",
                                    "inputs": [{"path": "a.fcs", "sha256": "00"}]})
