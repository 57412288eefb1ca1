"""De-identified batches: identifiers planted in file names, keywords and the manifest must
appear in no output byte; pseudonyms are stable per study; dates move by the patient's shift."""

from __future__ import annotations

import datetime as dt
import json
import stat

import anndata
import flowio
import pandas as pd
import pytest
from click.testing import CliRunner

from batch_helpers import registry_rows, write_sample
from immunomon import read_fcs
from immunomon.batch.deid import Pseudonymizer
from immunomon.batch.run import BatchOptions, run_batch
from immunomon.cli import main
from immunomon.export import deidentify_keywords, shift_dates

ACQUIRED = dt.datetime(2024, 4, 2, 10, 11, 12)
PLANTED = {
    "PATIENT NAME": "Jane Q. Doe",
    "PATIENT ID": "MRN-4417-0093",
    "$SRC": "Jane Q. Doe peripheral blood",
    "$CELLS": "Doe leukocytes, ward Obermeyer",
    "$OP": "Dr. Heinrich Obermeyer",
    "$COM": "Ward 7B, St. Swithin Hospital",
    "$INST": "St. Swithin Hospital",
    "$SMNO": "ACC-88231-77",
    "EXPORT TIME": "02-APR-2024-10:15:40",
    "BIRTHDATE": "1961-04-02",
    "REFERRING PHYSICIAN": "Dr. Amelia Stroud",
    "LAB NOTE": "call Amelia Stroud re MRN-4417-0093",
    "CUSTOM INFO": "drawn 2024-04-02 by Obermeyer",
    # a study keyword holding a name and a date: it named the study's folder and pages
    "$PROJ": "Obermeyer_20240402",
}
#: Strings that must not appear anywhere in the shareable outputs.
SECRETS = ["Jane Q. Doe", "Doe_Jane", "MRN-4417-0093", "Obermeyer", "20240402", "St. Swithin",
           "ACC-88231-77", "Amelia Stroud", "1961-04-02", "02-APR-2024", "2024-04-02",
           "Roe_Richard", "ROE-5512", "Ward 7B"]
INTERNAL = {"registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm",
            ".immunomon.lock"}


@pytest.fixture(scope="module")
def deidentified(tmp_path_factory):
    root = tmp_path_factory.mktemp("deid")
    inbox = root / "inbox" / "GVM-01"
    write_sample(inbox / "Doe_Jane_1961-04-02_M1.fcs", seed=1, keywords=PLANTED, start=ACQUIRED)
    write_sample(inbox / "Doe_Jane_1961-04-02_M3.fcs", seed=2, start=ACQUIRED,
                 keywords={**PLANTED, "$SMNO": "ACC-88231-78"})
    # control runs months before the patient's: the controls' one random shift (up to 60
    # days either way) must not be able to land a control's date on the patient's secret
    # one (a run of 2024-04-01 moved by a day read as 2024-04-02, one batch in 120)
    for i in (1, 2):
        write_sample(inbox / f"QC_{i}.fcs", seed=10 + i,
                     start=dt.datetime(2023, 9, i, 8, 0), keywords={"$OP": "Obermeyer"})
    good = (inbox / "QC_1.fcs").read_bytes()
    (inbox / "Roe_Richard_M2.fcs").write_bytes(good[: len(good) // 3])
    (root / "manifest.csv").write_text(
        "file,patient,sample\n"
        "inbox/GVM-01/Doe_Jane_1961-04-02_M1.fcs,MRN-4417-0093,Doe_Jane_M1\n"
        "inbox/GVM-01/Doe_Jane_1961-04-02_M3.fcs,MRN-4417-0093,Doe_Jane_M3\n"
        "inbox/GVM-01/Roe_Richard_M2.fcs,ROE-5512,Roe_Richard_M2\n")
    results = root / "results"
    summary = run_batch(root / "inbox", results, BatchOptions(
        manifest=str(root / "manifest.csv"), deidentify=True, date_shift=60, plots=False,
        anndata=True, export_fcs=True, workers=2))
    return root, results, summary


def _texts(path):
    """Every byte of a file, plus the decoded cells of columnar files whose bytes
    may be compressed."""
    data = path.read_bytes()
    yield data
    if path.suffix == ".parquet":
        yield pd.read_parquet(path).to_csv().encode()


def test_no_identifier_in_any_output_byte(deidentified):
    root, results, summary = deidentified
    assert summary.done == 4 and summary.quarantined == 1
    scanned = 0
    for path in results.rglob("*"):
        rel = path.relative_to(results)
        if rel.parts[0] in ("private", "quarantine") or rel.name in INTERNAL:
            continue
        # nor in a folder's or file's name (a study keyword named the study's folder)
        assert not any(secret.lower() in str(rel).lower() for secret in SECRETS), rel
        if path.is_dir():
            continue
        for blob in _texts(path):
            low = blob.lower()
            for secret in SECRETS:
                assert secret.lower().encode() not in low, f"{secret!r} found in {rel}"
                assert secret.lower().encode("utf-16-le") not in low, f"{secret!r} in {rel}"
        scanned += 1
    kinds = {p.suffix for p in results.rglob("*") if p.is_file()}
    assert {".fcs", ".h5ad", ".csv", ".parquet", ".json", ".html", ".xml"} <= kinds
    assert scanned > 30
    # the report and the study index do show the failure, under its pseudonym
    report = (results / "report.html").read_text()
    assert "quarantined" in report and "truncated" in report


def test_pseudonyms_come_from_the_key(deidentified):
    root, results, _ = deidentified
    key_path = results / "private" / "deidentification-key.json"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    key = json.loads(key_path.read_text())
    patients = key["studies"]["GVM-01"]["patients"]
    doe = patients["MRN-4417-0093"]["pseudonym"]
    assert doe.startswith("P") and len(doe) == 9
    table = pd.read_csv(results / "GVM-01" / "populations.csv")
    assert set(table.loc[~table["control"], "patient"]) == {doe}
    assert all(s.startswith(doe + "_S") for s in table.loc[~table["control"], "sample"])
    folders = {r["output"] for r in registry_rows(results) if r["status"] == "done"}
    assert all((results / f / "summary.json").is_file() for f in folders)
    # stable: the same key gives the same pseudonyms; another study gets others
    again = Pseudonymizer(key_path)
    assert again.patient("GVM-01", "MRN-4417-0093") == doe
    assert again.patient("GVM-02", "MRN-4417-0093") != doe
    assert Pseudonymizer(root / "other-key.json").patient("GVM-01", "MRN-4417-0093") != doe


def test_dates_move_by_the_patients_shift(deidentified):
    root, results, _ = deidentified
    key = json.loads((results / "private" / "deidentification-key.json").read_text())
    shift = key["studies"]["GVM-01"]["patients"]["MRN-4417-0093"]["date_shift_days"]
    assert 1 <= abs(shift) <= 60
    expected = (ACQUIRED + dt.timedelta(days=shift)).strftime("%d-%b-%Y").upper()
    row = next(r for r in registry_rows(results) if r["relpath"].endswith("_M1.fcs"))
    folder = results / row["output"]
    # the exported FCS, read by an independent reader
    fcs = flowio.FlowData(str(folder / f"{folder.name}.fcs"))
    text = {k.upper().lstrip("$"): v for k, v in fcs.text.items()}
    assert text["DATE"] == expected
    assert "PATIENT ID" not in text and "SRC" not in text and "FIL" not in text
    assert "EXPORT TIME" in text and expected in text["EXPORT TIME"]
    assert fcs.event_count == 3000
    # the AnnData keywords and the study table carry the same shifted date
    adata = anndata.read_h5ad(folder / f"{folder.name}.h5ad")
    keywords = dict(zip(adata.uns["keywords"]["name"], adata.uns["keywords"]["value"]))
    assert keywords["$DATE"] == expected
    assert "PATIENT NAME" not in keywords and "$SRC" not in keywords
    table = pd.read_csv(results / "GVM-01" / "populations.csv")
    acquired = set(table.loc[table["sample"] == folder.name, "acquired"])
    assert acquired == {(ACQUIRED + dt.timedelta(days=shift)).isoformat()}


def test_deidentify_keywords_rules():
    kw = {"$DATE": "02-APR-2024", "$BTIM": "10:11:12", "$P1N": "FSC-A", "$P1S": "",
          "EXPORT TIME": "02-APR-2024-10:15:40", "$CYT": "LSRFortessa", "CST DATE": "03/04/2024",
          "TUBE NAME": "Doe 1", "WELL ID": "A07", "SHEATH FLUID": "water",
          "BEADS PER TEST": "50000", "FREE": "seen by Jane Roe", "$SPILLOVER": "1,FL1,1"}
    plain = deidentify_keywords(kw, identifiers=["Jane Roe"])
    assert plain == {"$BTIM": "10:11:12", "$P1N": "FSC-A", "$P1S": "", "$CYT": "LSRFortessa",
                     "SHEATH FLUID": "water", "BEADS PER TEST": "50000",
                     "$SPILLOVER": "1,FL1,1"}
    # a name dropped with one keyword takes other keywords that mention it along
    named = deidentify_keywords({"$OP": "Dr. Heinrich Obermeyer", "X": "by Obermeyer",
                                 "Y": "fine"})
    assert named == {"Y": "fine"}
    # a person by the words of the keyword's name, or by a title in its value (a
    # core facility's REFERRING DR of "Dr. House" was kept); whole words only
    people = deidentify_keywords({"REFERRING DR": "House", "WARD": "7B", "ADDRESS BOOK": "x",
                                  "REMARK2": "Dr. Cuddy", "REF": "see Prof Wilson",
                                  "DRAWER": "2", "TECHNIQUE": "lysis", "REMARK": "dry run"})
    assert people == {"DRAWER": "2", "TECHNIQUE": "lysis", "REMARK": "dry run"}
    moved = deidentify_keywords(kw, date_shift_days=-3)
    assert moved["$DATE"] == "30-MAR-2024"
    assert moved["EXPORT TIME"] == "30-MAR-2024-10:15:40"
    assert "CST DATE" not in moved                   # day/month order unknown: removed
    assert shift_dates("2024-03-01 and 28-Feb-2024", 1) == "2024-03-02 and 29-Feb-2024"


def test_layout_keywords_only_keeps_nothing_but_the_data_layout(tmp_path):
    """A keyword list can never know every instrument's free-text keywords: with
    ``layout_keywords_only`` the exported files keep only those the FCS standard
    defines for the layout and acquisition (and $DATE, shifted)."""
    kw = {"$DATE": "02-APR-2024", "$BTIM": "10:11:12", "$P1N": "FSC-A", "$CYT": "Aurora",
          "$SPILLOVER": "1,FL1,1", "SHEATH FLUID": "water", "REQ INFO": "for Mrs Stroud",
          "CASE NOTES": "x"}
    assert deidentify_keywords(kw, layout_only=True) == {
        "$BTIM": "10:11:12", "$P1N": "FSC-A", "$CYT": "Aurora", "$SPILLOVER": "1,FL1,1"}
    assert deidentify_keywords(kw, layout_only=True, date_shift_days=2)["$DATE"] == \
        "04-APR-2024"
    inbox = tmp_path / "inbox" / "S1"
    write_sample(inbox / "a.fcs", seed=1, keywords={"HOSPITAL BED": "12", "X NOTE": "Mrs Doe",
                                                    "LASER DELAY": "41.2", "FREE": "hello"})
    result = CliRunner().invoke(main, ["batch", "run", str(tmp_path / "inbox"), "-o",
                                       str(tmp_path / "out"), "--deidentify",
                                       "--layout-keywords-only", "--export-fcs",
                                       "--plots", "none", "--no-anndata"])
    assert result.exit_code == 0, result.output
    exported = next((tmp_path / "out").rglob("*.fcs"))
    keys = set(read_fcs(exported).keywords)
    assert keys and all(k.startswith("$") for k in keys), keys
    assert not {"LASER DELAY", "FREE", "HOSPITAL BED", "X NOTE"} & keys
    result = CliRunner().invoke(main, ["batch", "run", str(tmp_path / "inbox"), "-o",
                                       str(tmp_path / "out2"), "--layout-keywords-only"])
    assert result.exit_code == 2
    assert "--layout-keywords-only needs --deidentify" in result.output
