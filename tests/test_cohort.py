"""The cohort from small hand-made tables: every value below is read off the tables.

Calendar days: P1 transplant 2021-01-01 (01-31 = day 30, 04-01 = day 90);
P2 transplant 2021-03-15 (04-14 = day 30, 04-15 = day 31, 06-13 = day 90);
P3 transplant 2021-02-01, no samples.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pandas.testing import assert_frame_equal

from immunomon.clinical import read_clinical
from immunomon.cohort import Cohort, build, load, read_manifest
from immunomon.errors import ClinicalDataError

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
                 qc=QC, provenance={"template": "T tube", "template_version": "1.0",
                                    "input_hashes": {"a.fcs": "00"}})


def at(ds, var, **sel):
    return float(ds[var].sel(**sel))


# ----------------------------------------------------------------------------- manifest
def test_manifest_normalised(manifest, tmp_path):
    m = manifest
    assert m["kind"].tolist() == ["fcs"] * 5 + ["str"] * 3
    assert m["material"].tolist() == ["blood"] * 4 + ["marrow"] + ["blood"] * 3
    # blank lineage: whole material; "CD3+" -> CD3; "whole blood" -> WB; marrow -> BM
    assert m["lineage"].tolist() == ["WB", "WB", "WB", "WB", "BM", "WB", "CD3", "WB"]
    assert m["sample"].tolist() == ["P1_M1", "P1_M3", "P2_M1", "P2_M1_repeat", "P1_BM",
                                    "P1_M1_WB", "P1_M1_CD3", "P2_M3"]
    assert m["collection_date"].dtype == "datetime64[ns]"
    assert m["collection_date"].iloc[2] == pd.Timestamp("2021-04-14")
    assert m["source_line"].tolist() == list(range(2, 10))
    assert m["path"].iloc[0] == str(tmp_path / "fcs" / "P1_M1.fcs")


def test_manifest_base_dir(tmp_path):
    write(tmp_path, {"manifest.csv": MANIFEST})
    m = read_manifest(tmp_path / "manifest.csv", base_dir=tmp_path / "data")
    assert m["path"].iloc[5] == str(tmp_path / "data" / "str" / "P1_M1.txt")


HEADER = "file,kind,patient_id,visit,collection_date,material"


@pytest.mark.parametrize("text, where, words", [
    ("file,kind,patient_id,visit,material\na.fcs,fcs,P1,M1,blood\n",
     "row 1, column collection_date", "required column missing"),
    ("file,kind,patient,visit,collection_date,material\na.fcs,fcs,P1,M1,2021-01-01,blood\n",
     "row 1, column", "unknown manifest column"),
    (f"{HEADER}\na.fcs,fcs,P1,M1,2021-01-01,blood\nb.fcs,cytof,P1,M1,2021-01-01,blood\n",
     "row 3, column kind", "unknown value 'cytof'; expected one of: fcs, str"),
    (f"{HEADER}\na.fcs,fcs,P1,M1,2021-01-01,urine\n",
     "row 2, column material", "unknown value 'urine'; expected one of: blood, marrow"),
    (f"{HEADER}\na.fcs,fcs,P1,M1,2021-02-30,blood\n",
     "row 2, column collection_date", "not a real calendar date"),
    (f"{HEADER}\na.fcs,fcs,P1,M1,04/03/2021,blood\n",
     "row 2, column collection_date", "date_order"),
    (f"{HEADER}\na.fcs,fcs,,M1,2021-01-01,blood\n",
     "row 2, column patient_id", "a value is required"),
    (f"{HEADER}\na.fcs,fcs,P1,M1,2021-01-01,blood\nsub/a.fcs,fcs,P1,M3,2021-03-01,blood\n",
     "row 3, column sample", "already listed on row 2"),
    (f"{HEADER},sample\na.fcs,fcs,P1,M1,2021-01-01,blood,x\na.fcs,fcs,P1,M3,2021-03-01,blood,y\n",
     "row 3, column file", "already listed on row 2"),
])
def test_manifest_errors(tmp_path, text, where, words):
    from immunomon import ClinicalDataError
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ClinicalDataError) as err:
        read_manifest(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}, {where}")
    assert words in msg


def test_a_manifest_with_no_samples_is_named(tmp_path):
    from immunomon import ClinicalDataError
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "\n")
    with pytest.raises(ClinicalDataError, match=re.escape(f"{path}: the sample manifest lists "
                                                          "no samples")):
        read_manifest(path)


def test_manifest_dmy_dates(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\na.fcs,fcs,P1,M1,04/03/2021,blood\n")
    m = read_manifest(path, date_order="DMY")
    assert m["collection_date"].iloc[0] == pd.Timestamp("2021-03-04")


def test_manifest_patient_not_in_clinical(tmp_path, clinical):
    from immunomon import ClinicalDataError
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\na.fcs,fcs,P1,M1,2021-01-31,blood\nb.fcs,fcs,P9,M1,2021-01-31,blood\n")
    with pytest.raises(ClinicalDataError, match=r"row 3, column patient_id: patient 'P9'"):
        build(read_manifest(path), clinical=clinical)


def test_check_manifest_files(tmp_path, manifest):
    from immunomon.cohort import check_manifest_files
    for name in ("fcs/P1_M1.fcs", "fcs/P1_M3.fcs", "fcs/P2_M1.fcs", "fcs/extra.fcs",
                 "fcs/notes.docx", "str/P1_M1.txt", "str/P9_M1.txt", "fcs/.hidden.fcs"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    unlisted, missing = check_manifest_files(manifest)
    assert unlisted == [tmp_path / "fcs/extra.fcs", tmp_path / "str/P9_M1.txt"]
    assert missing == [tmp_path / "fcs/P1_BM.fcs", tmp_path / "fcs/P2_M1_repeat.fcs",
                       tmp_path / "str/P2_M3.txt"]
    unlisted, _ = check_manifest_files(manifest, [tmp_path / "str"])
    assert unlisted == [tmp_path / "str/P9_M1.txt"]


# ----------------------------------------------------------------------------- build
def test_dimensions_and_days(cohort):
    ds = cohort.dataset
    assert ds["patient"].values.tolist() == ["P1", "P2", "P3"]
    assert ds["timepoint"].values.tolist() == ["M1", "M3"]
    assert ds["population"].values.tolist() == ["Lymphocytes", "T cells", "NK cells"]
    assert ds["marker"].values.tolist() == ["CD3"]
    assert ds["lineage"].values.tolist() == ["WB", "CD3"]
    # the repeat of P2 M1 (day 31) is a duplicate: the visit's day stays 30
    np.testing.assert_array_equal(ds["day"].values, [[30, 90], [30, 90], [np.nan, np.nan]])
    np.testing.assert_array_equal(ds["median_day"].values, [30, 90])
    assert ds["collection_date"].sel(patient="P2", timepoint="M3").values == \
        np.datetime64("2021-06-13")
    assert np.isnat(ds["collection_date"].sel(patient="P3", timepoint="M1").values)


def test_population_values(cohort):
    ds = cohort.dataset
    assert at(ds, "count", patient="P1", timepoint="M1", population="T cells") == 700
    assert at(ds, "percent_of_parent", patient="P1", timepoint="M3",
              population="T cells") == 75.0
    assert at(ds, "cells_per_ul", patient="P2", timepoint="M1", population="Lymphocytes") == 600
    assert at(ds, "mfi", patient="P1", timepoint="M1", population="T cells", marker="CD3") == 900
    # first sample of the visit kept, not the repeat (9999)
    assert at(ds, "count", patient="P2", timepoint="M1", population="T cells") == 400


def test_missing_visits_are_nan_not_zero(cohort):
    ds = cohort.dataset
    assert np.isnan(at(ds, "count", patient="P1", timepoint="M1", population="NK cells"))
    assert ds["count"].sel(patient="P2", timepoint="M3").isnull().all()
    assert ds["count"].sel(patient="P3").isnull().all()
    assert ds["mfi"].sel(patient="P3").isnull().all()
    assert ds["donor_chimerism_percent"].sel(patient="P3").isnull().all()
    assert int(ds["count"].notnull().sum()) == 7
    assert (ds["count"].fillna(1) != 0).all()


def test_chimerism_lineages(cohort):
    ds = cohort.dataset
    assert at(ds, "donor_chimerism_percent", patient="P1", timepoint="M1", lineage="WB") == 98.5
    assert at(ds, "donor_chimerism_percent", patient="P1", timepoint="M1", lineage="CD3") == 91.2
    assert at(ds, "donor_chimerism_percent", patient="P2", timepoint="M3", lineage="WB") == 100
    assert np.isnan(at(ds, "donor_chimerism_percent", patient="P2", timepoint="M3",
                       lineage="CD3"))
    assert ds["chimerism_flags"].sel(patient="P1", timepoint="M1", lineage="CD3").item() == \
        "few_informative_loci"


def test_qc_flags(cohort):
    ds = cohort.dataset
    np.testing.assert_array_equal(ds["qc_flags"].values,
                                  [[1, 0], [2, np.nan], [np.nan, np.nan]])
    assert ds["qc_flag_text"].sel(patient="P2", timepoint="M1").item() == \
        "low count: NK cells; x"


def test_qc_status_is_the_worst_of_a_visits_samples(manifest, clinical):
    status = {"P1_M1": "warning", "P1_M3": "ok", "P2_M1": "failure"}
    ds = build(manifest, populations=POPULATIONS, clinical=clinical, qc_status=status).dataset
    assert ds["qc_status"].values.tolist() == [["warning", "ok"], ["failure", ""], ["", ""]]
    # P2 M1's duplicate (not kept) and P1's marrow sample (not placed) do not reach
    # their visits; a status gating never writes is not read
    status = {"P1_M1": "warning", "P1_M3": "ok", "P2_M1": "ok", "P2_M1_repeat": "failure",
              "P1_BM": "failure"}
    ds = build(manifest, populations=POPULATIONS, clinical=clinical, qc_status=status).dataset
    assert ds["qc_status"].values.tolist() == [["warning", "ok"], ["ok", ""], ["", ""]]
    status["P2_M1"] = "fine"
    ds = build(manifest, populations=POPULATIONS, clinical=clinical, qc_status=status).dataset
    assert ds["qc_status"].sel(patient="P2", timepoint="M1").item() == ""
    ds = build(manifest, populations=POPULATIONS, clinical=clinical).dataset
    assert (ds["qc_status"].values == "").all()


def test_show_names_the_visits_whose_gating_failed(manifest, clinical):
    from immunomon.cohort.summary import format_summary
    cohort = build(manifest, populations=POPULATIONS, clinical=clinical,
                   qc_status={"P1_M1": "warning", "P1_M3": "ok", "P2_M1": "failure"})
    assert cohort.summary()["qc_failures"] == ["P2 M1"]
    assert "Flow QC: 1 visit whose gating failed (P2 M1), left out of the GvM analysis" \
        in format_summary(cohort)
    cohort = build(manifest, populations=POPULATIONS, clinical=clinical)
    assert cohort.summary()["qc_failures"] == []
    assert "Flow QC" not in format_summary(cohort)


def test_patient_variables(cohort):
    ds = cohort.dataset
    assert ds["age"].values.tolist() == [58.0, 62.0, 49.0]
    assert ds["sex"].values.tolist() == ["M", "F", "M"]
    assert ds["diagnosis"].values.tolist() == ["multiple myeloma", "", "multiple myeloma"]
    assert ds["transplant_date"].values.tolist() == ["2021-01-01", "2021-03-15", "2021-02-01"]
    # endpoint columns on patient: P2 died of NRM on day 301; P1 acute GVHD grade II
    np.testing.assert_array_equal(ds["os_days"].values, [364, 301, 365])
    assert ds["os_event"].values.tolist() == [0, 1, 0]
    # the event codes travel with the numbers: a competing death is 2, not a relapse
    assert ds["os_event"].attrs["flag_meanings"] == "censored event"
    assert ds["relapse_event"].attrs["flag_values"].tolist() == [0, 1, 2]
    assert ds["relapse_event"].attrs["flag_meanings"] == "censored event competing_event"
    assert ds["relapse_event"].values.tolist()[1] == 2          # P2's NRM death
    assert ds["death_cause"].values.tolist() == ["", "nrm", ""]
    assert ds["agvhd_max_grade"].values.tolist() == [2, 0, 0]
    assert np.isnan(ds["agvhd_steroid_refractory"].values).all()


def test_units_and_provenance(cohort):
    ds = cohort.dataset
    assert ds["cells_per_ul"].attrs["units"] == "cells/uL"
    assert ds["percent_of_parent"].attrs["units"] == "%"
    assert ds["donor_chimerism_percent"].attrs["units"] == "%"
    assert ds["count"].attrs["units"] == "events"
    assert ds["day"].attrs["units"] == "days"
    assert ds.attrs["template"] == "T tube" and ds.attrs["template_version"] == "1.0"
    assert json.loads(ds.attrs["input_hashes"]) == {"a.fcs": "00"}
    assert ds.attrs["software_version"]
    assert ds.attrs["created"]


def test_duplicates_and_unplaced_reported(cohort):
    w = cohort.warnings
    assert any("row 5" in x and "'P2_M1_repeat' duplicates sample 'P2_M1' (row 4)" in x
               for x in w)
    assert any("row 6" in x and "'P1_BM'" in x and "not on the blood" in x for x in w)
    status = dict(zip(cohort.samples["sample"], cohort.samples["status"]))
    assert status["P2_M1_repeat"] == "duplicate"
    assert status["P1_BM"] == "not placed"
    assert status["P1_M1_CD3"] == "used"


def test_lineages_are_those_the_str_samples_name(tmp_path):
    """A study that types sorted T cells only has no empty whole-blood lineage; where
    whole blood is typed too it comes first."""
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER},lineage,sample\n"
                    "a.txt,str,P1,M1,2021-01-31,blood,CD33,a\n"
                    "b.txt,str,P1,M2,2021-03-01,blood,CD3,b\n")
    chim = pd.DataFrame({"sample": ["a", "b"], "percent_donor": [90.0, 50.0]})
    assert build(read_manifest(path), chimerism=chim).dataset["lineage"].values.tolist() \
        == ["CD33", "CD3"]
    with path.open("a") as f:
        f.write("c.txt,str,P1,M2,2021-03-01,blood,,c\n")
    assert build(read_manifest(path), chimerism=chim).dataset["lineage"].values.tolist() \
        == ["WB", "CD33", "CD3"]


def test_duplicate_chimerism_sample_first_kept(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER},lineage,sample\n"
                    "a.txt,str,P1,M1,2021-01-31,blood,CD3,a\n"
                    "b.txt,str,P1,M1,2021-02-01,blood,T cells,b\n"
                    "c.txt,str,P1,M2,2021-03-01,blood,,c\n")
    chim = pd.DataFrame({"sample": ["a", "b"], "percent_donor": [90.0, 50.0]})
    c = build(read_manifest(path), chimerism=chim)
    ds = c.dataset
    assert ds["lineage"].values.tolist() == ["WB", "CD3"]
    assert at(ds, "donor_chimerism_percent", patient="P1", timepoint="M1", lineage="CD3") == 90
    assert ds["donor_chimerism_percent"].sel(timepoint="M2").isnull().all()
    assert any("'b' duplicates sample 'a'" in x for x in c.warnings)
    assert any("no chimerism result for STR sample 'c'" in x for x in c.warnings)
    # without clinical data: visits in manifest order, no day coordinate
    assert ds["timepoint"].values.tolist() == ["M1", "M2"]
    assert "day" not in ds.coords


def test_tubes_share_a_visit(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER},tube\n"
                    "t.fcs,fcs,P1,M1,2021-01-31,blood,T\n"
                    "b.fcs,fcs,P1,M1,2021-01-31,blood,BNK\n")
    pops = pd.DataFrame({"sample": ["t", "t", "b", "b"],
                         "population": ["Lymphocytes", "Treg", "Lymphocytes", "NK cells"],
                         "count": [100, 5, 120, 30]})
    c = build(read_manifest(path), populations=pops)
    ds = c.dataset
    assert ds["count"].sel(patient="P1", timepoint="M1").values.tolist() == [100, 5, 30]
    # a table of counts alone: the variables it cannot fill are named, not left quietly NaN
    assert c.warnings == [f"the populations table has no {v!r} column: that variable is empty"
                          for v in ("percent_of_parent", "cells_per_ul")]


def test_result_tables_without_the_columns_they_are_read_by_are_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{HEADER}\nt.fcs,fcs,P1,M1,2021-01-31,blood\n")
    manifest = read_manifest(path)
    with pytest.raises(ClinicalDataError, match="populations table lacks column.s. population;"):
        build(manifest, populations=pd.DataFrame({"sample": ["t"], "count": [5]}))
    with pytest.raises(ClinicalDataError, match="count or percent_of_parent or cells_per_ul"):
        build(manifest, populations=pd.DataFrame({"sample": ["t"], "population": ["T"]}))
    with pytest.raises(ClinicalDataError, match="chimerism table lacks column.s. percent_donor"):
        build(manifest, chimerism=pd.DataFrame({"sample": ["t"], "donor": [95.0]}))
    with pytest.raises(ClinicalDataError, match="takes a DataFrame .*not str"):
        build(manifest, populations="results/gate/populations.csv")


def test_side_tables(cohort):
    ev = cohort.events
    assert ev.columns.tolist() == ["patient_id", "day", "event", "value"]
    p1 = ev[ev["patient_id"] == "P1"]
    # acute GVHD from day 20 (skin 1: grade I), worst grade II (skin 3 on day 30)
    assert list(zip(p1["day"], p1["event"], p1["value"])) == [
        (20, "agvhd_onset", "2"), (90, "drug_start", "lenalidomide"),
        (120, "drug_hold_start", "lenalidomide"), (126, "drug_hold_stop", "lenalidomide"),
        (180, "drug_stop", "lenalidomide"), (364, "last_followup", "")]
    assert ev[ev["patient_id"] == "P2"][["day", "event", "value"]].values.tolist() == \
        [[301, "death", "nrm"]]
    ep = cohort.endpoints.set_index("patient_id")
    assert ep.loc["P2", "os_event"] == 1 and ep.loc["P2", "os_days"] == 301
    assert cohort.adverse_events["grade"].tolist() == [3, 1]
    iv = cohort.intervals
    assert iv[iv["covariate"] == "on_lenalidomide"][["start", "stop"]].values.tolist() == \
        [[90, 119], [127, 180]]


# ----------------------------------------------------------------------------- storage
@pytest.mark.parametrize("name", ["cohort.nc", "cohort.zarr"])
def test_round_trip(cohort, tmp_path, name):
    path = cohort.save(tmp_path / "out" / name)
    back = load(path)
    assert isinstance(back, Cohort)
    xr.testing.assert_identical(back.dataset, cohort.dataset)
    for key, table in cohort.tables().items():
        assert_frame_equal(back.tables()[key], table)
    ds = back.dataset
    assert ds["cells_per_ul"].attrs["units"] == "cells/uL"
    assert np.isnan(at(ds, "count", patient="P3", timepoint="M1", population="T cells"))
    assert back.adverse_events["resolution_day"].isna().tolist() == [False, True]
    assert back.warnings == cohort.warnings
    assert [p.name for p in path.parent.iterdir()] == [name]     # no temporary left behind


@pytest.mark.parametrize("name", ["c.nc", "c.zarr"])
def test_round_trip_without_clinical_and_overwrite(tmp_path, manifest, name):
    c = build(manifest, populations=POPULATIONS)
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / name
    c.save(path)
    c.dataset["count"][:] = 1.0
    c.save(path)                                    # replaces the earlier one
    back = load(path)
    assert [p.name for p in path.parent.iterdir()] == [name]
    xr.testing.assert_identical(back.dataset, c.dataset)
    for key, table in c.tables().items():
        assert_frame_equal(back.tables()[key], table)
    assert back.endpoints.empty and "day" not in back.dataset.coords


def test_bad_extension_and_missing_file(cohort, tmp_path):
    from immunomon import ImmunomonError
    with pytest.raises(ImmunomonError, match=r"\.nc \(NetCDF\) or \.zarr"):
        cohort.save(tmp_path / "cohort.h5")
    with pytest.raises(ImmunomonError, match="no such cohort file"):
        load(tmp_path / "nothing.nc")
    xr.Dataset({"a": ("x", [1.0])}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ImmunomonError, match="not an immunomon cohort"):
        load(tmp_path / "other.nc")


def test_table_encoding_round_trip():
    from immunomon.cohort.store import dataset_to_table, table_to_dataset
    df = pd.DataFrame({
        "text": ["a", None, ""], "num": [1.5, np.nan, 3.0], "int": [1, 2, 3],
        "nint": pd.array([1, None, 3], dtype="Int64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "b": [True, False, True],
        "when": pd.to_datetime(["2021-01-01", None, "2021-03-01"]),
        "with space/slash": ["x", "y", "z"]})
    back = dataset_to_table(table_to_dataset(df))
    assert_frame_equal(back, df)
    assert back["text"].tolist() == ["a", None, ""]


@pytest.mark.parametrize("value, material, label", [
    ("", "blood", "WB"), (None, "blood", "WB"), ("Whole blood", "blood", "WB"),
    ("PB", "blood", "WB"), ("", "marrow", "BM"), ("CD3+", "blood", "CD3"),
    ("cd33", "blood", "CD33"), ("CD3pos", "blood", "CD3"), ("T cells", "blood", "CD3"),
    ("NK", "blood", "CD56"), ("granulocytes", "blood", "CD15"),
    ("CD34", "marrow", "BM_CD34"), ("PBMC", "blood", "PBMC"),
])
def test_lineage_labels(value, material, label):
    from immunomon.cohort import normalise_lineage
    assert normalise_lineage(value, material) == label


def test_in_memory_manifest_visit_order_and_keywords(clinical):
    frame = pd.DataFrame({
        "file": ["a.fcs", "b.fcs", "c.fcs"], "kind": ["fcs"] * 3,
        "patient_id": ["P1", "P1", "P2"], "visit": ["M3", "pre", "M1"],
        "collection_date": pd.to_datetime(["2021-04-01", "2020-12-25", "2021-04-14"]),
        "material": ["blood"] * 3, "lineage": ["WB"] * 3, "visit_order": [3, 0, 1]})
    pops = pd.DataFrame({"sample": ["a", "b", "c"], "population": ["T cells"] * 3,
                         "count": [10, 20, 30]})
    c = build(manifest=frame, populations=pops, clinical=clinical)
    ds = c.dataset
    assert ds["timepoint"].values.tolist() == ["pre", "M1", "M3"]
    np.testing.assert_array_equal(ds["day"].values,
                                  [[-7, np.nan, 90], [np.nan, 30, np.nan], [np.nan] * 3])
    np.testing.assert_array_equal(ds["count"].sel(population="T cells").values,
                                  [[20, np.nan, 10], [np.nan, 30, np.nan], [np.nan] * 3])
    assert c.samples["source_file"].iloc[0] == "<manifest table>"


def test_in_memory_manifest_errors_name_the_row():
    from immunomon import ClinicalDataError
    frame = pd.DataFrame({"file": ["a.fcs", "b.fcs"], "kind": ["fcs", "fcs"],
                          "patient_id": ["P1", "P1"], "visit": ["M1", "M2"],
                          "collection_date": ["2021-01-01", "2021-13-01"],
                          "material": ["blood", "blood"]})
    with pytest.raises(ClinicalDataError,
                       match=r"<manifest table>, row 3, column collection_date"):
        build(frame)


def test_chronic_gvhd_and_response_events(tmp_path):
    files = dict(CLINICAL)
    files["cgvhd.csv"] = """patient_id,date,skin,mouth,eyes,gi,liver,lungs,joints_fascia
P2,2021-09-15,1,1,0,0,0,0,0
P2,2021-10-15,2,0,0,0,0,0,0
P2,2021-11-15,0,0,0,0,0,0,0
"""
    files["responses.csv"] = """patient_id,date,category
P3,2021-05-02,VGPR
P3,2021-08-01,PD
"""
    clinical = read_clinical(write(tmp_path / "clin", files))
    write(tmp_path, {"m.csv": f"{HEADER}\na.fcs,fcs,P3,M1,2021-03-03,blood\n"})
    c = build(read_manifest(tmp_path / "m.csv"), clinical=clinical)
    ev = c.events
    # P2: 09-15 = day 184 mild (skin 1, mouth 1), 10-15 = 214 moderate (skin 2), gone 11-15
    assert ev[ev["event"] == "cgvhd_onset"][["patient_id", "day", "value"]].values.tolist() \
        == [["P2", 184, "moderate"]]
    # P3 transplant 02-01: 05-02 = day 90, 08-01 = day 181
    p3 = ev[ev["patient_id"] == "P3"]
    assert list(zip(p3["day"], p3["event"], p3["value"])) == [
        (90, "response", "VGPR"), (181, "response", "PD"), (181, "relapse", ""),
        (365, "last_followup", "")]
    assert c.warnings == []        # no population table given: nothing to report missing


def test_median_follow_up_is_reverse_kaplan_meier():
    # two early deaths do not shorten the follow-up the study had: censoring at 400,
    # 500, 600 days (reverse KM median 500), where the crude median of end days is 400
    from immunomon.cohort.summary import _endpoints

    ep = pd.DataFrame({"patient_id": list("ABCDE"), "end_day": [100, 200, 400, 500, 600],
                       "os_event": [1, 1, 0, 0, 0], "progression_day": [None] * 5})
    assert _endpoints(ep)["median_follow_up_days"] == 500
    everyone = ep.assign(os_event=1)                 # no one censored: the crude median
    assert _endpoints(everyone)["median_follow_up_days"] == 400


def test_analyze_refuses_a_visit_the_cohort_does_not_have(cohort, tmp_path):
    # `--primary-visit M5` on a cohort without M5 once answered every question "not
    # estimable" and exited 0
    from click.testing import CliRunner

    from immunomon.cli import main

    path = cohort.save(tmp_path / "c.nc")
    result = CliRunner().invoke(main, ["analyze", str(path), "--out", str(tmp_path / "r"),
                                       "--primary-visit", "M5"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'M5' is not a visit" in result.output and "--primary-visit" in result.output
    assert not (tmp_path / "r").exists()
    # a landmark before transplant (or none) once wrote a full report
    for day in ("-10", "nan"):
        result = CliRunner().invoke(main, ["analyze", str(path), "--out",
                                           str(tmp_path / "r"), "--landmark-day", day])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "landmark_day must be a positive number of days" in result.output
        assert not (tmp_path / "r").exists()
