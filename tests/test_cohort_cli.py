"""`immunomon cohort build` and `cohort show` end to end on files written here.

Populations, QC flags and chimerism are hand-written in the layout the gate and
chimerism commands leave; days: P1 transplant 2021-01-01 (01-31 = day 30,
04-01 = day 90), P2 transplant 2021-03-15 (04-14 = day 30).
"""

import json

import numpy as np
import pandas as pd
from click.testing import CliRunner

from immunomon.cli import main
from immunomon.cohort import load

PATIENTS = """patient_id,sex,age,diagnosis,transplant_date,donor_type,hla_match,conditioning,stem_cell_source
P1,M,58,multiple myeloma,2021-01-01,unrelated,10/10,RIC,PBSC
P2,F,62,multiple myeloma,2021-03-15,related,10/10,RIC,PBSC
"""
DEATHS = "patient_id,date,cause\nP1,2021-09-01,relapse\n"
FOLLOWUP = "patient_id,last_follow_up_date\nP2,2022-03-15\n"
MANIFEST = """file,kind,patient_id,visit,collection_date,material,lineage,sample
fcs/P1 M1.fcs,fcs,P1,M1,2021-01-31,blood,,
fcs/P1_M3.fcs,fcs,P1,M3,2021-04-01,blood,,
fcs/P2_M1.fcs,fcs,P2,M1,2021-04-14,blood,,
str/P1_M1_CD3.txt,str,P1,M1,2021-01-31,blood,CD3,
"""
POPS = {  # sample -> (population, parent, count, % of parent, cells/uL, median CD3)
    "P1_M1": [("Lymphocytes", "Leukocytes", 1000, 50.0, 1500.0, 100.0),
              ("T cells", "Lymphocytes", 700, 70.0, 1050.0, 900.0)],
    "P1_M3": [("Lymphocytes", "Leukocytes", 2000, 40.0, 2000.0, 110.0),
              ("T cells", "Lymphocytes", 1500, 75.0, 1500.0, 950.0)],
    "P2_M1": [("Lymphocytes", "Leukocytes", 800, 30.0, 600.0, 120.0)],
}
CHIMERISM = """sample,patient,lineage,date,percent_donor,percent_recipient,sd,cv,n_informative,n_used,reported,classification,flags
P1_M1_CD3,P1,CD3,2021-01-31,97.25,2.75,0.5,0.5,6,6,97.3,full donor,
"""


def make_inputs(root):
    (root / "clinical").mkdir()
    (root / "clinical" / "patients.csv").write_text(PATIENTS)
    (root / "clinical" / "deaths.csv").write_text(DEATHS)
    (root / "clinical" / "followup.csv").write_text(FOLLOWUP)
    (root / "manifest.csv").write_text(MANIFEST)
    for name in ("P1 M1.fcs", "P1_M3.fcs", "unlisted.fcs"):
        (root / "fcs").mkdir(exist_ok=True)
        (root / "fcs" / name).write_bytes(b"FCS3.1")
    (root / "str").mkdir()
    (root / "str" / "P1_M1_CD3.txt").write_text("Sample Name\tMarker\n")
    # the references the chimerism results were computed against: no manifest row names
    # them, and they are no unlisted data
    for person in ("donor", "recipient"):
        (root / "str" / f"P1_{person}.txt").write_text("Sample Name\tMarker\n")
    gate = root / "gate"
    for sample, rows in POPS.items():
        (gate / sample).mkdir(parents=True)
        table = pd.DataFrame(rows, columns=["population", "parent", "count",
                                            "percent_of_parent", "cells_per_ul", "median CD3"])
        table.insert(0, "sample", sample)
        table.to_csv(gate / sample / "populations.csv", index=False)
        flags = ["low count: T cells"] if sample == "P2_M1" else []
        (gate / sample / "summary.json").write_text(json.dumps({
            "sample": sample, "status": "warning" if flags else "ok", "qc_flags": flags,
            "template": {"panel": "T tube", "version": "1.0"}}))
    (root / "chim" / "P1").mkdir(parents=True)
    (root / "chim" / "P1" / "chimerism_samples.csv").write_text(CHIMERISM)
    (root / "chim" / "P1" / "chimerism_reference_calls.csv").write_text(
        "person,sample,file,locus,allele\n"
        f"donor,P1_donor,{root / 'str' / 'P1_donor.txt'},D8S1179,13\n"
        f"recipient,P1_recipient,{root / 'str' / 'P1_recipient.txt'},D8S1179,14\n")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_build_and_show(tmp_path):
    make_inputs(tmp_path)
    out = tmp_path / "cohort.nc"
    res = run("cohort", "build", "--manifest", tmp_path / "manifest.csv",
              "--clinical", tmp_path / "clinical", "--gating", tmp_path / "gate",
              "--chimerism", tmp_path / "chim", "--out", out)
    assert res.exit_code == 0, res.output
    assert f"not in the manifest: {tmp_path / 'fcs' / 'unlisted.fcs'}" in res.output
    assert "P1_donor.txt" not in res.output and "P1_recipient.txt" not in res.output
    assert f"listed in the manifest but not found: {tmp_path / 'fcs' / 'P2_M1.fcs'}" \
        in res.output
    assert "2 patients, 2 visits, 2 populations, 1 marker, 1 chimerism lineage" in res.output

    c = load(out)
    ds = c.dataset
    assert float(ds["count"].sel(patient="P1", timepoint="M1", population="T cells")) == 700
    assert float(ds["cells_per_ul"].sel(patient="P2", timepoint="M1",
                                        population="Lymphocytes")) == 600
    assert np.isnan(float(ds["count"].sel(patient="P2", timepoint="M3",
                                          population="Lymphocytes")))
    assert np.isnan(float(ds["count"].sel(patient="P2", timepoint="M1",
                                          population="T cells")))
    assert float(ds["donor_chimerism_percent"].sel(patient="P1", timepoint="M1",
                                                   lineage="CD3")) == 97.25
    assert ds["day"].values.tolist()[0] == [30.0, 90.0]
    assert ds["qc_flags"].sel(patient="P2", timepoint="M1").item() == 1
    assert ds["qc_flag_text"].sel(patient="P2", timepoint="M1").item() == "low count: T cells"
    assert ds["qc_status"].sel(patient="P2", timepoint="M1").item() == "warning"
    assert ds["qc_status"].sel(patient="P1").values.tolist() == ["ok", "ok"]
    assert ds.attrs["template"] == "T tube" and ds.attrs["template_version"] == "1.0"
    inputs = json.loads(ds.attrs["inputs"])
    roles = {i["role"] for i in inputs}
    assert {"manifest", "clinical", "gating", "chimerism", "fcs_data", "str_data"} <= roles
    hashes = json.loads(ds.attrs["input_hashes"])
    # sha256 of b"FCS3.1", computed independently
    import hashlib
    assert hashes[str(tmp_path / "fcs" / "P1_M3.fcs")] == hashlib.sha256(b"FCS3.1").hexdigest()
    assert hashes[str(tmp_path / "manifest.csv")] == \
        hashlib.sha256(MANIFEST.encode()).hexdigest()
    ep = c.endpoints.set_index("patient_id")
    assert ep.loc["P1", "os_days"] == 243 and ep.loc["P1", "os_event"] == 1

    res = run("cohort", "show", out)
    assert res.exit_code == 0, res.output
    assert "Patients:    P1, P2" in res.output
    assert "Endpoints: 1 death (relapse 1), 1 progression" in res.output
    lines = [ln.split() for ln in res.output.splitlines()]
    assert ["M1", "30", "2", "1"] in lines            # visit, median day, flow, CD3
    assert ["M3", "90", "1", "0"] in lines

    res = run("cohort", "show", out, "--json")
    summary = json.loads(res.output)
    assert summary["visits"] == ["M1", "M3"]
    assert summary["coverage"][0]["flow"] == 2
    assert summary["endpoints"]["deaths"] == 1


def test_build_zarr_without_clinical(tmp_path):
    make_inputs(tmp_path)
    out = tmp_path / "cohort.zarr"
    res = run("cohort", "build", "-m", tmp_path / "manifest.csv", "--gating", tmp_path / "gate",
              "--out", out, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["patients"] == ["P1", "P2"]
    assert summary["endpoints"] == {}
    assert load(out).dataset["lineage"].values.tolist() == ["CD3"]


def test_provenance_names_each_input_one_way(tmp_path, monkeypatch):
    """Inputs given through ``..`` (a study file's ``../fixtures``) or relative to the
    working folder are recorded absolute and normalised, so the analysis report can
    make them relative to the study folder."""
    make_inputs(tmp_path)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path / "pipelines")
    out = tmp_path / "cohort.nc"
    res = run("cohort", "build", "-m", "../manifest.csv", "--gating", tmp_path / "x" / ".." /
              "gate", "--out", out)
    assert res.exit_code == 0, res.output
    attrs = load(out).dataset.attrs
    assert str(tmp_path / "manifest.csv") in json.loads(attrs["input_hashes"])
    assert json.loads(attrs["input_folders"])["gating"] == str(tmp_path / "gate")
    assert all(".." not in i["path"] for i in json.loads(attrs["inputs"]))


def test_bad_manifest_is_a_clean_error(tmp_path):
    make_inputs(tmp_path)
    (tmp_path / "manifest.csv").write_text(MANIFEST.replace("2021-04-01", "2021-13-01"))
    res = run("cohort", "build", "-m", tmp_path / "manifest.csv", "--out", tmp_path / "c.nc")
    assert res.exit_code == 2
    assert f"{tmp_path / 'manifest.csv'}, row 3, column collection_date" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "c.nc").exists()


def test_show_rejects_other_files(tmp_path):
    (tmp_path / "x.nc").write_bytes(b"not netcdf")
    res = run("cohort", "show", tmp_path / "x.nc")
    assert res.exit_code == 2
    assert "not a readable cohort" in res.output
