"""`immunomon batch`: registry, skip and redo, quarantine, lock, kill and resume, worker deaths."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import batch_helpers
from batch_helpers import (EVENTS, make_inbox, process_alive, registry_rows, wait_for,
                           write_sample)
from immunomon.batch.inbox import Stability, parse_fcs_date, read_manifest
from immunomon.batch.registry import BatchLocked, Registry, results_lock
from immunomon.batch.run import BatchOptions, retry_batch, run_batch
from immunomon.cli import main
from immunomon.errors import ImmunomonError

REPO = Path(__file__).resolve().parents[1]
FAST = dict(plots=False, anndata=False)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def by_rel(results) -> dict[str, dict]:
    return {r["relpath"]: r for r in registry_rows(results)}


def no_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    sims = make_inbox(root / "inbox")
    events = []
    summary = run_batch(root / "inbox", root / "results", BatchOptions(workers=2, **FAST),
                        progress=events.append)
    return root, sims, summary, events


def test_registry_records_every_file(first_run):
    root, sims, summary, _ = first_run
    rows = by_rel(root / "results")
    assert set(rows) == {*sims, "StudyB/truncated.fcs", "StudyB/notes.fcs"}
    assert summary.found == 8 and summary.done == 6 and summary.failed == 2
    for rel, sim in sims.items():
        r = rows[rel]
        assert r["status"] == "done" and r["attempts"] == 1
        assert r["sha256"] == sha256(root / "inbox" / rel)
        assert r["size"] == (root / "inbox" / rel).stat().st_size
        assert r["events"] == EVENTS
        assert r["instrument"] == sim.sample.keywords["$CYT"]
        assert r["software_version"] and r["template"] == "post-transplant"
        assert len(r["template_hash"]) == 64
        assert r["study"] == rel.split("/")[0]
        assert bool(r["control"]) == rel.startswith("StudyA/QC")
        outputs = json.loads(r["outputs"])
        assert all((root / "results" / o).is_file() for o in outputs)
        assert f"{r['output']}/populations.csv" in outputs
    assert rows["StudyA/P02_M1.fcs"]["acquired"] == "2024-03-02T09:30:00"
    assert rows["StudyA/P02_M1.fcs"]["patient"] == "UPN002"
    assert rows["StudyA/QC_1.fcs"]["patient"] == ""


def test_population_yields_come_back_to_the_registry(first_run):
    root, sims, _, _ = first_run
    import sqlite3
    conn = sqlite3.connect(root / "results" / "registry.sqlite")
    pops = pd.read_sql("SELECT f.relpath, f.output, p.* FROM populations p JOIN files f "
                       "ON f.id = p.file_id", conn)
    conn.close()
    for rel, sim in sims.items():
        mine = pops[pops["relpath"] == rel].set_index("population")
        folder = root / "results" / mine["output"].iloc[0]
        table = pd.read_csv(folder / "populations.csv").set_index("population")
        assert (mine["count"] == table.loc[mine.index, "count"]).all()
        # how much each count turns on its cut travels with it, unrounded
        np.testing.assert_allclose(mine["percent_near_cut"].astype(float),
                                   table.loc[mine.index, "percent_near_cut"], rtol=1e-12)
        assert mine["percent_near_cut"].notna().sum() > 10
        # the simulator's truth: gated lymphocytes within 10% of the true number
        truth = int(sim.mask("Lymphocytes").sum())
        assert abs(mine.loc["Lymphocytes", "count"] - truth) <= 0.1 * truth
    study = pd.read_csv(root / "results" / "StudyA" / "populations.csv")
    assert set(study["sample"]) == {"P01_M1", "P02_M1", "P03_M1", "QC_1", "QC_2"}
    assert study.loc[study["sample"] == "QC_1", "control"].all()
    assert study["percent_near_cut"].between(0, 100).any()


def test_bad_files_are_quarantined_and_the_batch_goes_on(first_run):
    root, _, summary, events = first_run
    rows = by_rel(root / "results")
    for name in ("truncated.fcs", "notes.fcs"):
        r = rows[f"StudyB/{name}"]
        assert r["status"] == "quarantined" and r["error_kind"] == "input"
        assert name in r["error"]
        link = root / "results" / "quarantine" / "StudyB" / f"StudyB__{name}"
        assert os.path.samefile(link, root / "inbox" / "StudyB" / name)
        reason = link.with_name(link.name + ".reason.txt").read_text()
        assert r["error"] in reason
    assert "truncat" in rows["StudyB/truncated.fcs"]["error"] or \
        "shorter" in rows["StudyB/truncated.fcs"]["error"]
    assert {e["event"] for e in events} >= {"queued", "started", "done", "quarantined"}
    assert not summary.ok
    assert len(summary.failures) == 2


def test_the_report_and_study_pages_are_written(first_run):
    root, sims, _, _ = first_run
    html = (root / "results" / "report.html").read_text()
    keys = re.findall(r"<th>% ([^<]+)</th>", html)
    assert "Lymphocytes" in keys and "T cells" in keys
    assert html.count("<svg") == len(keys)          # one Levey-Jennings chart each
    assert "2</b>controls" in html and "2</b>quarantined" in html
    assert "StudyB/notes.fcs" in html and "truncated.fcs" in html
    index = (root / "results" / "StudyA" / "index.html").read_text()
    assert index.count("<tr>") == 1 + 5 and "P02_M1/index.html" in index


def test_second_run_skips_and_changed_inputs_run_again(tmp_path):
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "a.fcs", seed=1)
    write_sample(inbox / "b.fcs", seed=2)
    (inbox / "notes.fcs").write_bytes(b"not FCS")
    one = FAST | {"workers": 1}
    first = run_batch(inbox, results, BatchOptions(**one))
    assert first.done == 2 and first.quarantined == 1
    before = by_rel(results)
    again = run_batch(inbox, results, BatchOptions(**one))
    assert again.done == 0 and again.skipped == 3 and again.failed == 0
    assert by_rel(results)["a.fcs"]["finished"] == before["a.fcs"]["finished"]

    # touched but unchanged: hashed again, not gated again
    os.utime(inbox / "a.fcs")
    touched = run_batch(inbox, results, BatchOptions(**one))
    assert touched.done == 0 and touched.skipped == 3
    assert by_rel(results)["a.fcs"]["attempts"] == 1

    # a changed file is processed again, and only it; a fixed file leaves the quarantine
    write_sample(inbox / "a.fcs", seed=77)
    write_sample(inbox / "notes.fcs", seed=5)
    changed = run_batch(inbox, results, BatchOptions(**one))
    assert changed.done == 2 and changed.skipped == 1
    rows = by_rel(results)
    assert rows["a.fcs"]["sha256"] == sha256(inbox / "a.fcs") != before["a.fcs"]["sha256"]
    assert rows["notes.fcs"]["status"] == "done"
    assert not (results / "quarantine" / "default" / "notes.fcs").exists()

    # a changed template runs everything again, into the same folders
    template = tmp_path / "panel.yaml"
    template.write_text((REPO / "gating" / "post-transplant.yaml").read_text()
                        + "\n# reviewed\n")
    redo = run_batch(inbox, results, BatchOptions(template=str(template), **one))
    assert redo.done == 3
    assert redo.warnings == ["the template differs from the one 3 done file(s) were gated "
                             "with: they are gated again, and their results replaced"]
    rows = by_rel(results)
    assert {r["template_hash"] for r in rows.values()} == {sha256(template)}
    assert sorted(r["output"] for r in rows.values()) == ["default/a", "default/b",
                                                          "default/notes"]
    assert no_temporaries(results) == []


def test_results_inside_the_inbox_are_outputs_not_uploads(tmp_path):
    # a results folder inside the inbox, with exported FCS files and a quarantine: its
    # FCS files were gated again as new samples on the next run
    inbox = tmp_path / "inbox"
    write_sample(inbox / "a.fcs", seed=1)
    (inbox / "bad.fcs").write_bytes(b"not FCS")
    results = inbox / "results"
    options = BatchOptions(**(FAST | {"workers": 1, "export_fcs": True}))
    first = run_batch(inbox, results, options)
    assert first.done == 1 and first.quarantined == 1
    assert list(results.rglob("*.fcs"))                 # exported and quarantined copies
    again = run_batch(inbox, results, options)
    assert (again.found, again.done, again.failed) == (2, 0, 0)
    assert sorted(by_rel(results)) == ["a.fcs", "bad.fcs"]


def test_a_study_whose_files_all_fail_since_keeps_no_old_table(tmp_path):
    # every file of a study re-uploaded broken: its populations table listed the results
    # the registry no longer holds, while the report said none was done
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "a.fcs", seed=1)
    options = BatchOptions(**(FAST | {"workers": 1}))
    assert run_batch(inbox, results, options).done == 1
    table = results / "default" / "populations.csv"
    assert table.is_file()
    good = (inbox / "a.fcs").read_bytes()
    (inbox / "a.fcs").write_bytes(b"FCS3.1    broken upload")
    assert run_batch(inbox, results, options).quarantined == 1
    assert not table.exists() and not table.with_suffix(".parquet").exists()
    assert "quarantined" in (results / "default" / "index.html").read_text()
    # the earlier content's results leave the study (a cohort built from its folders took
    # them), kept beside the quarantine link; a good upload brings the folder back
    from immunomon.cohort import read_gating_folder
    assert not (results / "default" / "a").exists()
    aside = results / "quarantine" / "default" / "a.fcs.previous-results"
    assert (aside / "summary.json").is_file()
    with pytest.raises(ImmunomonError):
        read_gating_folder(results / "default")
    (inbox / "a.fcs").write_bytes(good)
    assert run_batch(inbox, results, options).done == 1
    assert (results / "default" / "a" / "summary.json").is_file() and not aside.exists()
    assert table.is_file()


def test_a_study_folder_that_cannot_be_written_leaves_the_others_their_tables(
        tmp_path, monkeypatch):
    import errno
    from immunomon.batch import tables
    from immunomon.batch.registry import Registry
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "S1" / "a.fcs", seed=1)
    write_sample(inbox / "S2" / "b.fcs", seed=2)
    assert run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1}))).done == 2
    for study in ("S1", "S2"):
        (results / study / "populations.csv").unlink()
    real = tables._write_study

    def s1_read_only(folder, studies, *args):
        if "S1" in studies:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(folder, studies, *args)
    monkeypatch.setattr(tables, "_write_study", s1_read_only)
    problems = []
    reg = Registry.open(results, create=False)
    try:
        written = tables.write_study_tables(reg, results, problems=problems)
    finally:
        reg.close()
    assert written == [results / "S2"] and (results / "S2" / "populations.csv").is_file()
    assert problems == [f"{results / 'S1'}: the study's tables cannot be written "
                        "(Read-only file system)"]


def test_a_file_moved_within_the_inbox_is_one_file_not_two(tmp_path):
    # moved into a subfolder: the registry held 7 done files for 6 inputs, two folders and
    # two table rows of one tube
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "GVM" / "day1" / "tube.fcs", seed=1)
    options = BatchOptions(**(FAST | {"workers": 1}))
    assert run_batch(inbox, results, options).done == 1
    (inbox / "GVM" / "day1" / "sub").mkdir()
    (inbox / "GVM" / "day1" / "tube.fcs").rename(inbox / "GVM" / "day1" / "sub" / "tube.fcs")
    again = run_batch(inbox, results, options)
    assert (again.done, again.skipped) == (0, 1)
    assert sorted(by_rel(results)) == ["GVM/day1/sub/tube.fcs"]
    table = pd.read_csv(results / "GVM" / "populations.csv")
    assert table["sample"].nunique() == 1
    # a changed file under a new name is a new file
    write_sample(inbox / "GVM" / "day1" / "other.fcs", seed=2)
    assert run_batch(inbox, results, options).done == 1


def test_a_link_is_an_upload_where_it_lies_by_its_own_name(tmp_path):
    """An inbox of links to an instrument share: a link to a file outside the inbox was
    filed by its target, under study 'default' and the target's name, without a word."""
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(tmp_path / "share" / "0042.fcs", seed=1)
    (inbox / "GVM-01").mkdir(parents=True)
    (inbox / "GVM-01" / "P07_M3.fcs").symlink_to(tmp_path / "share" / "0042.fcs")
    events = []
    assert run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})),
                     progress=events.append).done == 1
    done = next(e for e in events if e["event"] == "done")
    assert done["upload"] == "GVM-01/P07_M3.fcs"          # what the progress line names
    row = next(iter(registry_rows(results)))
    assert (row["relpath"], row["study"], row["output"]) == \
        ("GVM-01/P07_M3.fcs", "GVM-01", "GVM-01/P07_M3")
    assert row["path"] == str((tmp_path / "share" / "0042.fcs").resolve())
    assert (results / "GVM-01" / "P07_M3").is_dir()


def test_a_mended_upload_keeps_its_name_and_the_same_bytes_twice_are_said(tmp_path):
    """A tube still being written when the run started is quarantined, then gated once
    complete: its patient keyword now read, it was named as a second file ('_2', 'name
    taken'). The same bytes uploaded again under another name are each a sample, said."""
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "GVM" / "tube.fcs", seed=1, keywords={"PATIENT ID": "UPN001"})
    whole = (inbox / "GVM" / "tube.fcs").read_bytes()
    (inbox / "GVM" / "tube.fcs").write_bytes(whole[:len(whole) // 3])
    options = BatchOptions(**(FAST | {"workers": 1}))
    assert run_batch(inbox, results, options).quarantined == 1
    (inbox / "GVM" / "tube.fcs").write_bytes(whole)
    mended = run_batch(inbox, results, options)
    assert mended.done == 1 and mended.warnings == []
    assert by_rel(results)["GVM/tube.fcs"]["output"] == "GVM/tube"
    (inbox / "GVM" / "tube_again.fcs").write_bytes(whole)
    again = run_batch(inbox, results, options)
    assert again.done == 1
    assert again.warnings == ["GVM/tube.fcs, GVM/tube_again.fcs: the same bytes; one tube "
                              "uploaded 2 times? Each is a sample of the tables"]
    assert run_batch(inbox, results, options).warnings == []      # said once


def test_sample_names_that_clash_are_said(tmp_path):
    # "Müller A.fcs" and "Müller_A.fcs" are both "Müller_A" as folders: the second became
    # Müller_A_2 without a word, and the tables name folders (letters of any script stay:
    # Mäller and Müller once both became "M_ller")
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "Müller A.fcs", seed=1)
    write_sample(inbox / "Müller_A.fcs", seed=2)
    write_sample(inbox / "Mäller.fcs", seed=3)
    summary = run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    assert summary.done == 3
    assert summary.warnings == [f"{(inbox / 'Müller_A.fcs').resolve()}: sample name "
                                "'Müller_A' is taken; its results are 'default/Müller_A_2'"]
    assert (results / "default" / "Mäller").is_dir()


def test_the_upload_folder_names_the_study_before_an_instruments_keyword(tmp_path):
    """Instruments fill $PROJ themselves ('Project', a date, '1'): one facility folder of
    such files was split over three studies. The folder decides; the keyword names the
    study of a file at the inbox's top only."""
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "INSTR-QC" / "a.fcs", seed=1, keywords={"$PROJ": "Project"})
    write_sample(inbox / "INSTR-QC" / "b.fcs", seed=2, keywords={"$PROJ": "20190530_110743"})
    write_sample(inbox / "c.fcs", seed=3, keywords={"$PROJ": "Trial A"})
    assert run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1}))).done == 3
    assert {r["relpath"]: r["study"] for r in registry_rows(results)} == {
        "INSTR-QC/a.fcs": "INSTR-QC", "INSTR-QC/b.fcs": "INSTR-QC", "c.fcs": "Trial A"}


def test_studies_named_by_dates_keep_their_own_folders_and_tables(tmp_path):
    """An iCyt writes $PROJ as "2/25/2011 11:14 AM": a study name was cut at its last "/",
    so two days' studies shared one folder and the second's table replaced the first's
    (a file's yields in no table). Separators are now part of the name; names that a
    folder still cannot tell apart share one table that holds them all, with a warning."""
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "tube.fcs", seed=1, keywords={"$PROJ": "2/25/2011 11:14 AM"})
    write_sample(inbox / "tube2.fcs", seed=2, keywords={"$PROJ": "3/1/2011 11:14 AM"})
    write_sample(inbox / "x.fcs", seed=3, keywords={"$PROJ": "Trial A"})
    write_sample(inbox / "y.fcs", seed=4, keywords={"$PROJ": "Trial_A"})
    summary = run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    assert summary.done == 4
    for folder, sample in (("2_25_2011_11_14_AM", "tube"), ("3_1_2011_11_14_AM", "tube2")):
        table = pd.read_csv(results / folder / "populations.csv")
        assert set(table["sample"]) == {sample}
    shared = pd.read_csv(results / "Trial_A" / "populations.csv")
    assert set(zip(shared["study"], shared["sample"])) == {("Trial A", "x"), ("Trial_A", "y")}
    assert any("'Trial A', 'Trial_A' share this folder" in w for w in summary.warnings)


def test_a_file_name_that_is_not_utf8_is_one_failure_and_the_batch_goes_on(tmp_path):
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "a.fcs", seed=1)
    shutil.copy(inbox / "a.fcs", os.fsdecode(os.fsencode(inbox) + b"/caf\xe9.fcs"))
    summary = run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    assert (summary.found, summary.done, summary.failed) == (2, 1, 1)
    (path, error), = summary.failures
    assert path.endswith("caf\\xe9.fcs") and "not valid UTF-8" in error
    assert sorted(by_rel(results)) == ["a.fcs"] and (results / "report.html").is_file()
    gated = subprocess.run([sys.executable, "-m", "immunomon", "gate", str(inbox), "-o",
                            str(tmp_path / "g"), "--plots", "none", "--no-anndata"],
                           capture_output=True, text=True)
    assert gated.returncode == 1 and "Traceback" not in gated.stderr
    assert "caf\\xe9.fcs: the file name is not valid UTF-8" in gated.stderr
    assert (tmp_path / "g" / "index.html").is_file() and (tmp_path / "g" / "a").is_dir()


def test_manifest_gives_ids_and_counting_inputs(tmp_path):
    inbox = tmp_path / "inbox"
    write_sample(inbox / "tube1.fcs", seed=1)
    write_sample(inbox / "tube2.fcs", seed=2)
    (tmp_path / "m.csv").write_text(
        "file,study,patient_id,sample,control,beads_per_test,visit\n"
        "inbox/tube1.fcs,GVM-01,P07,P07-M3,no,40000,M3\n"
        "tube2.fcs,GVM-01,,QC-lot4,yes,,\n"
        "tube3.fcs,GVM-01,P08,P08-M3,no,,\n")
    summary = run_batch(inbox, tmp_path / "res", BatchOptions(manifest=str(tmp_path / "m.csv"),
                                                              **FAST))
    assert summary.done == 2
    # a row naming no uploaded file (not uploaded yet, or misspelt) is said, not dropped
    assert summary.warnings == [f"{tmp_path / 'm.csv'}, line 4: 'tube3.fcs' is no file of "
                                "the inbox"]
    rows = by_rel(tmp_path / "res")
    assert rows["tube1.fcs"]["study"] == "GVM-01" and rows["tube1.fcs"]["patient"] == "P07"
    assert rows["tube1.fcs"]["output"] == "GVM-01/P07-M3"
    assert rows["tube2.fcs"]["control"] == 1 and rows["tube2.fcs"]["output"] == "GVM-01/QC-lot4"
    assert json.loads(rows["tube1.fcs"]["counting"]) == {"beads_per_test": 40000.0}
    # 40,000 beads per test instead of the file's 50,000: every absolute count scales by 0.8
    own = pd.read_csv(tmp_path / "res" / "GVM-01" / "P07-M3" / "populations.csv")
    sim = write_sample(tmp_path / "again.fcs", seed=1)
    beads = int(sim.mask("Beads").sum())
    row = own.set_index("population").loc["Lymphocytes"]
    expected = row["count"] / own.set_index("population").loc["Beads", "count"] * 40000 / 50
    assert row["cells_per_ul"] == pytest.approx(expected, rel=1e-9)
    assert abs(own.set_index("population").loc["Beads", "count"] - beads) <= 0.05 * beads


@pytest.mark.parametrize("text, message", [
    ("name,study\na.fcs,X\n", "needs a 'file' column"),
    ("file,control\na.fcs,maybe\n", "line 2, column control"),
    ("file,volume_ul\na.fcs,-3\n", "line 2, column volume_ul"),
    ("file\na.fcs\na.fcs\n", "listed twice"),
])
def test_manifest_errors_name_line_and_column(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(Exception) as err:
        read_manifest(tmp_path / "m.csv")
    assert message in str(err.value) and "m.csv" in str(err.value)


def test_fcs_dates():
    assert parse_fcs_date("05-MAR-2024", "13:04:59") == "2024-03-05T13:04:59"
    assert parse_fcs_date("2024-03-05") == "2024-03-05"
    assert parse_fcs_date("05-Mar-24") == "2024-03-05"
    assert parse_fcs_date("31-FEB-2024") == "" and parse_fcs_date(None) == ""
    # numbers only, where the order shows (Cytek Aurora, Partec); not guessed otherwise
    assert parse_fcs_date("06_27_2018", "13:17:20.07") == "2018-06-27T13:17:20"
    assert parse_fcs_date("28-06-2006") == "2006-06-28"
    assert parse_fcs_date("03-07-2024") == "" and parse_fcs_date("31_31_2020") == ""


def test_stability_waits_for_a_quiet_file_or_its_marker(tmp_path):
    clock = [0.0]
    wall = [2e9]                                    # files look freshly written
    watch = Stability(settle=5, marker=".done", clock=lambda: clock[0],
                      wall_clock=lambda: wall[0])
    f = tmp_path / "up.fcs"
    f.write_bytes(b"x" * 10)
    os.utime(f, ns=(int(wall[0] * 1e9), int(wall[0] * 1e9)))
    assert not watch.ready(f)
    clock[0] = 4
    assert not watch.ready(f)
    f.write_bytes(b"x" * 20)                        # still growing
    os.utime(f, ns=(int(wall[0] * 1e9), int(wall[0] * 1e9) + 1))
    clock[0] = 6
    assert not watch.ready(f)
    clock[0] = 10
    assert not watch.ready(f)
    clock[0] = 11.5
    assert watch.ready(f)
    g = tmp_path / "other.fcs"
    g.write_bytes(b"y")
    os.utime(g, ns=(int(wall[0] * 1e9), int(wall[0] * 1e9)))
    assert not watch.ready(g)
    (tmp_path / "other.fcs.done").write_text("")
    assert watch.ready(g)
    old = tmp_path / "old.fcs"
    old.write_bytes(b"z")
    os.utime(old, ns=(int((wall[0] - 60) * 1e9),) * 2)
    assert watch.ready(old)                         # written a minute ago


# ----------------------------------------------------------------------------- lock
def test_two_batches_on_one_results_folder(tmp_path):
    inbox = tmp_path / "inbox"
    for i in range(4):
        write_sample(inbox / f"s{i}.fcs", seed=i)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "immunomon", "batch", "run", str(inbox), "--out",
           str(results), "--no-plots", "--no-anndata"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(r["status"] == "running" for r in registry_rows(results))
                 or first.poll() is not None)
        assert first.poll() is None, "the first batch ended before the second started"
        second = subprocess.run(cmd, capture_output=True, text=True)
        assert second.returncode == 2
        assert "another immunomon run is writing into this folder" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        out, err = first.communicate()
    assert first.returncode == 0, err
    rows = registry_rows(results)
    assert len(rows) == 4 and all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    assert len([p for p in results.iterdir() if p.is_dir()]) == 1      # one study folder


def test_lock_is_released_by_a_killed_holder(tmp_path):
    results = tmp_path / "results"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from immunomon.batch.registry import "
                               "results_lock\nwith results_lock(sys.argv[1]):\n"
                               "    print('held', flush=True); time.sleep(600)",
                               str(results)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(BatchLocked):
        with results_lock(results):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with results_lock(results) as path:
        assert f"pid {os.getpid()}" in path.read_text()


# ----------------------------------------------------------------------------- kill and resume
def _children(pid: int) -> set[int]:
    """The child processes of ``pid``, as each of its threads lists those it started.
    A thread that ends while being read is passed over, not the others' lists with it
    (the workers may be listed by a thread after it)."""
    out = set()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:                 # the process ended
        return out
    for task in tasks:
        try:
            out |= {int(t) for t in (task / "children").read_text().split()}
        except OSError:             # this thread ended while being read
            continue
    return out


def test_sigkill_mid_run_then_resume_processes_every_file_once(tmp_path):
    inbox = tmp_path / "inbox"
    names = [f"P{i:02d}.fcs" for i in range(6)]
    for i, name in enumerate(names):
        write_sample(inbox / name, seed=i)
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "immunomon", "batch", "run", str(inbox), "--out",
           str(results), "--workers", "2", "--no-plots"]
    killed_while_running = 0
    for _ in range(2):
        # killed once this run has finished a file of its own (not counting the files an
        # earlier run finished, which a fast machine may have done before its kill landed),
        # with the workers it was seen to start
        before = sum(r["status"] == "done" for r in registry_rows(results))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: set[int] = set()

        def progressed() -> bool:
            if proc.poll() is not None:
                return True
            seen.update(_children(proc.pid))
            # a file done while this run's workers were seen: a resume may take at once,
            # before any worker starts, a file whose outputs the killed run had finished
            return bool(seen) and sum(r["status"] == "done"
                                      for r in registry_rows(results)) > before

        wait_for(progressed)
        assert proc.poll() is None, "the batch finished before it could be killed"
        workers = seen | _children(proc.pid)
        running = [r for r in registry_rows(results) if r["status"] == "running"]
        killed_while_running += len(running)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert workers, "no worker processes were seen"
        wait_for(lambda: not any(process_alive(w) for w in workers))
    assert killed_while_running > 0
    done_before = {r["relpath"]: r["finished"] for r in registry_rows(results)
                   if r["status"] == "done"}

    final = subprocess.run(cmd, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    rows = registry_rows(results)
    assert sorted(r["relpath"] for r in rows) == sorted(names)
    assert all(r["status"] == "done" for r in rows)
    for r in rows:
        if r["relpath"] in done_before:                  # finished before a kill: kept as is
            assert r["finished"] == done_before[r["relpath"]]
    # every output listed exists, is complete, and there is nothing else
    listed = set()
    for r in rows:
        outputs = json.loads(r["outputs"])
        listed |= set(outputs)
        folder = results / r["output"]
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["events"] == EVENTS == r["events"]
        table = pd.read_csv(folder / "populations.csv")
        assert len(table) > 10 and table["count"].notna().all()
        adata = anndata.read_h5ad(folder / f"{folder.name}.h5ad")
        assert adata.n_obs == EVENTS
        assert pd.read_parquet(folder / "populations.parquet")["count"].tolist() == \
            table["count"].tolist()
    samples = {p for p in (results / "default").iterdir() if p.is_dir()}
    assert {p.name for p in samples} == {Path(n).stem for n in names}
    on_disk = {str(p.relative_to(results)) for s in samples for p in s.rglob("*") if p.is_file()}
    assert on_disk == listed
    assert no_temporaries(results) == []
    # the same numbers as gating each file once, in this process
    from immunomon.gating.run import gate_file
    from immunomon.gating.template import load_template

    template = load_template("post-transplant")
    for name in names:
        stem = Path(name).stem
        _, table = gate_file(inbox / name, template, tmp_path / "clean", name=stem,
                             plots=False, anndata=False)
        got = pd.read_csv(results / "default" / stem / "populations.csv")
        pd.testing.assert_frame_equal(got[["population", "count", "cells_per_ul"]],
                                      pd.DataFrame(table)[["population", "count",
                                                          "cells_per_ul"]],
                                      check_dtype=False)


# ----------------------------------------------------------------------------- worker deaths
def test_a_worker_that_dies_is_replaced_and_its_file_retried(tmp_path):
    inbox = tmp_path / "inbox"
    for name, seed in (("a.fcs", 1), ("flaky.fcs", 2), ("poison.fcs", 3), ("b.fcs", 4)):
        write_sample(inbox / name, seed=seed)
    events = []
    summary = run_batch(inbox, tmp_path / "res", BatchOptions(workers=2, max_attempts=2, **FAST),
                        job=batch_helpers.die_on_poison, progress=events.append)
    rows = by_rel(tmp_path / "res")
    assert rows["poison.fcs"]["status"] == "quarantined"
    assert rows["poison.fcs"]["attempts"] == 2 and rows["poison.fcs"]["error_kind"] == "worker"
    assert "worker process died" in rows["poison.fcs"]["error"]
    assert "exit code 7" in rows["poison.fcs"]["error"]
    assert all(rows[n]["status"] == "done" for n in ("a.fcs", "flaky.fcs", "b.fcs"))
    assert summary.retried == 1 and summary.done == 3 and summary.quarantined == 1

    again = run_batch(inbox, tmp_path / "res2", BatchOptions(workers=2, **FAST),
                      job=batch_helpers.die_once)
    rows = by_rel(tmp_path / "res2")
    assert again.retried == 1 and again.done == 4
    assert rows["flaky.fcs"]["status"] == "done" and rows["flaky.fcs"]["attempts"] == 2
    assert rows["a.fcs"]["attempts"] == 1


@pytest.mark.parametrize("entry", ["batch", "dask", "pipeline"])
def test_an_unguarded_script_stops_with_the_reason_and_quarantines_nothing(tmp_path, entry):
    # each spawned worker imports the script again: unguarded, the batch's workers once
    # ran the batch too, met its lock and died, and 92 good files of a facility's trial
    # were quarantined as files that killed their worker; the pipeline's waited on the
    # lock its parent held, and the run hung
    inbox = tmp_path / "inbox"
    for name, seed in (("a.fcs", 1), ("b.fcs", 2)):
        write_sample(inbox / name, seed=seed)
    script = tmp_path / "script.py"
    if entry in ("batch", "dask"):
        pool = "workers=2" if entry == "batch" else "cluster='local:2'"
        script.write_text(
            "from immunomon.batch.run import BatchOptions, run_batch\n"
            f"run_batch({str(inbox)!r}, {str(tmp_path / 'res')!r}, "
            f"BatchOptions({pool}, plots=False, anndata=False))\n")
    else:
        (tmp_path / "study.yaml").write_text(
            f"study: unguarded\nout: {tmp_path / 'res'}\ninputs:\n  fcs: {inbox}\n"
            "  template: post-transplant\nstages:\n  gate: {workers: 2}\n")
        script.write_text("from immunomon.pipeline import run_pipeline\n"
                          f"run_pipeline({str(tmp_path / 'study.yaml')!r})\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr.splitlines()[-1]
    assert not [r for r in registry_rows(tmp_path / "res") if r["status"] == "quarantined"]


def test_an_interrupted_run_says_how_to_go_on(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM ended `batch run` with click's 'Aborted!' and exit code 1, the
    code of a failed file, with nothing about resuming."""
    import immunomon.batch.run as batch_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(batch_run, "run_batch", interrupted)
    (tmp_path / "inbox").mkdir()
    res = CliRunner().invoke(main, ["batch", "run", str(tmp_path / "inbox"), "-o",
                                    str(tmp_path / "res")])
    assert res.exit_code == 130 and "Aborted" not in res.output
    assert "interrupted: the files done are kept" in res.output
    assert "the same command goes on from there" in res.output


def test_retry_failed_and_status(first_run, tmp_path):
    root, _, _, _ = first_run
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    runner = CliRunner()
    status = runner.invoke(main, ["batch", "status", str(results), "--json"])
    assert status.exit_code == 0
    doc = json.loads(status.output)
    assert doc["counts"]["done"] == 6 and doc["counts"]["quarantined"] == 2
    text = runner.invoke(main, ["batch", "status", str(results)])
    assert "quarantined: 2" in text.output and "StudyB/notes.fcs" in text.output
    # the reason without the path the first column already gives
    line = next(ln for ln in text.output.splitlines() if ln.startswith("StudyB/notes.fcs"))
    assert str(root) not in line and "not an FCS file" in line
    # fix the broken upload in place, then retry the failed files from the registry alone
    write_sample(root / "inbox" / "StudyB" / "notes.fcs", seed=11)
    try:
        summary = retry_batch(results, BatchOptions(workers=1), failed=True)
        rows = by_rel(results)
        assert rows["StudyB/notes.fcs"]["status"] == "done"
        assert rows["StudyB/truncated.fcs"]["status"] == "quarantined"
        assert summary.done == 1 and summary.failed == 1
        # the settings the results were made with: no AnnData, no plots
        folder = results / rows["StudyB/notes.fcs"]["output"]
        assert not list(folder.glob("*.h5ad")) and not (folder / "plots").exists()
        res = runner.invoke(main, ["batch", "retry", str(results)])
        assert res.exit_code == 0 and "0 processed" in res.output
    finally:
        (root / "inbox" / "StudyB" / "notes.fcs").write_bytes(b"this is a text file, not FCS\n")


def test_status_says_when_running_files_were_left_by_a_stopped_run(first_run, tmp_path):
    """After a kill, `batch status` listed files as running for a run that no longer
    existed; it now says no run is active and the next one gates them again."""
    import sqlite3

    from immunomon.atomic import LOCK_NAME, folder_in_use, folder_lock

    root, _, _, _ = first_run
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    with sqlite3.connect(results / "registry.sqlite") as conn:
        conn.execute("UPDATE files SET status = 'running' WHERE id = (SELECT MIN(id) FROM "
                     "files WHERE status = 'done')")
    (results / LOCK_NAME).write_text("pid 1 on a host that stopped")   # a stale lock file
    assert not folder_in_use(results)
    res = CliRunner().invoke(main, ["batch", "status", str(results)])
    assert res.exit_code == 0 and "running: 1" in res.output
    assert "no run is active" in res.output and "the next run gates them again" in res.output
    with folder_lock(results, wait=False):           # a run holds the folder: no such line
        assert folder_in_use(results)
        held = CliRunner().invoke(main, ["batch", "status", str(results)])
        assert "no run is active" not in held.output
    assert not folder_in_use(results)


def test_retry_finds_a_template_given_by_a_relative_path_from_anywhere(tmp_path):
    from immunomon.gating.template import builtin_templates
    write_sample(tmp_path / "inbox" / "one.fcs", seed=1)
    (tmp_path / "panels").mkdir()
    shutil.copy(builtin_templates()["post-transplant"], tmp_path / "panels" / "panel.yaml")
    run = subprocess.run([sys.executable, "-m", "immunomon", "batch", "run", "inbox", "-o",
                          "results", "-t", "panels/panel.yaml", "--no-plots", "--no-anndata"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (tmp_path / "elsewhere").mkdir()
    retry = subprocess.run([sys.executable, "-m", "immunomon", "batch", "retry",
                            str(tmp_path / "results"), "--failed"],
                           capture_output=True, text=True, cwd=tmp_path / "elsewhere")
    assert retry.returncode == 0 and "0 processed" in retry.stdout, retry.stderr


def test_status_reads_a_registry_in_a_folder_it_cannot_write(tmp_path, monkeypatch):
    # a read-only results folder: SQLite cannot make the WAL reader's shared-memory file,
    # and `batch status` said "not a usable batch registry"
    import sqlite3
    from immunomon.batch import registry as reg_module
    write_sample(tmp_path / "inbox" / "one.fcs", seed=1)
    results = tmp_path / "results"
    run_batch(tmp_path / "inbox", results, BatchOptions(**(FAST | {"workers": 1})))
    real = sqlite3.connect

    class NoSharedMemory:           # what a mode=ro reader gets in a read-only folder
        def execute(self, *args):
            raise sqlite3.OperationalError("unable to open database file")

        def close(self):
            pass

    def no_shm(database, *args, **kwargs):
        if "mode=ro" in str(database):
            return NoSharedMemory()
        return real(database, *args, **kwargs)
    monkeypatch.setattr(reg_module.sqlite3, "connect", no_shm)
    monkeypatch.setattr(reg_module.os, "access", lambda path, mode: mode != os.W_OK)
    status = CliRunner().invoke(main, ["batch", "status", str(results), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["counts"]["done"] == 1
    monkeypatch.setattr(reg_module.os, "access", lambda path, mode: True)
    refused = CliRunner().invoke(main, ["batch", "status", str(results)])
    assert refused.exit_code != 0 and "unable to open database file" in refused.output


def test_cli_run_summary_and_exit_code(tmp_path):
    inbox = tmp_path / "inbox"
    write_sample(inbox / "one.fcs", seed=1)
    (inbox / "bad.fcs").write_bytes(b"FCS3.1    nope")
    res = subprocess.run([sys.executable, "-m", "immunomon", "batch", "run", str(inbox),
                          "-o", str(tmp_path / "r"), "--no-plots", "--no-anndata", "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["done"] == 1 and doc["failed"] == 1 and doc["quarantined"] == 1
    assert "Traceback" not in res.stderr
    # the line says quarantined and failed apart, as the registry does
    text = subprocess.run([sys.executable, "-m", "immunomon", "batch", "run", str(inbox),
                           "-o", str(tmp_path / "r3"), "--no-plots", "--no-anndata"],
                          capture_output=True, text=True)
    assert "1 processed, 0 skipped (already done), 1 quarantined, 0 failed" in text.stdout
    res = subprocess.run([sys.executable, "-m", "immunomon", "batch", "run", str(inbox),
                          "-o", str(tmp_path / "r"), "--no-plots", "--no-anndata"],
                         capture_output=True, text=True)
    assert res.returncode == 0                        # nothing failed in this run
    assert "0 processed, 2 skipped" in res.stdout
    res = subprocess.run([sys.executable, "-m", "immunomon", "batch", "run",
                          str(tmp_path / "nowhere"), "-o", str(tmp_path / "r2")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "the inbox is not a folder" in res.stderr


def test_results_modes_do_not_mix(tmp_path):
    inbox = tmp_path / "inbox"
    write_sample(inbox / "one.fcs", seed=1)
    run_batch(inbox, tmp_path / "r", BatchOptions(**FAST))
    with pytest.raises(Exception) as err:
        run_batch(inbox, tmp_path / "r", BatchOptions(deidentify=True, **FAST))
    assert "identified" in str(err.value) and "another results folder" in str(err.value)


@pytest.mark.parametrize("option, value, words", [
    ("--interval", "0", "is not a number of seconds above 0"),
    ("--settle", "-1", "is not a number of seconds of 0 or more"),
    ("--settle", "nan", "is not a number of seconds of 0 or more"),
])
def test_watch_refuses_timings_that_never_settle_or_never_rest(tmp_path, option, value, words):
    # --interval 0 looked at the inbox without pause, --settle -1 took files mid-upload
    result = CliRunner().invoke(main, ["batch", "watch", str(tmp_path / "inbox"), "-o",
                                       str(tmp_path / "res"), "-t", "post-transplant",
                                       option, value])
    assert result.exit_code == 2 and words in result.output
    assert not (tmp_path / "res").exists()


def test_watch_takes_complete_uploads_until_interrupted(tmp_path):
    inbox, staging, results = tmp_path / "inbox", tmp_path / "staging", tmp_path / "results"
    inbox.mkdir()
    for name, seed in (("a.fcs", 1), ("b.fcs", 2), ("c.fcs", 3)):
        write_sample(staging / name, seed=seed)
    proc = subprocess.Popen([sys.executable, "-m", "immunomon", "batch", "watch", str(inbox),
                             "-o", str(results), "--no-plots", "--no-anndata",
                             "--settle", "100000", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def done():
            return {r["relpath"]: r for r in registry_rows(results) if r["status"] == "done"}

        # a complete upload, with its marker, is taken
        shutil.copy(staging / "a.fcs", inbox / "a.fcs")
        (inbox / "a.fcs.done").touch()
        wait_for(lambda: "a.fcs" in done())
        # half an upload without its marker is left alone while a later one goes through
        data = (staging / "b.fcs").read_bytes()
        (inbox / "b.fcs").write_bytes(data[: len(data) // 2])
        shutil.copy(staging / "c.fcs", inbox / "c.fcs")
        (inbox / "c.fcs.done").touch()
        wait_for(lambda: "c.fcs" in done())
        assert "b.fcs" not in {r["relpath"] for r in registry_rows(results)}
        # once complete and marked, it is taken whole
        with open(inbox / "b.fcs", "ab") as fh:
            fh.write(data[len(data) // 2:])
        (inbox / "b.fcs.done").touch()
        rows = wait_for(lambda: done() if "b.fcs" in done() else None)
        assert rows["b.fcs"]["events"] == EVENTS and rows["b.fcs"]["attempts"] == 1
        workers = _children(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert workers
    wait_for(lambda: not any(process_alive(w) for w in workers))
    assert (results / "report.html").is_file()
    assert len(pd.read_csv(results / "default" / "populations.csv")["sample"].unique()) == 3


# ----------------------------------------------------------------------------- gate --workers
def test_gate_workers_gives_the_serial_results(tmp_path):
    files = [tmp_path / f"s{i}.fcs" for i in range(3)]
    for i, f in enumerate(files):
        write_sample(f, seed=i)
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"FCS3.1    nope")
    runner = CliRunner()
    serial = runner.invoke(main, ["gate", *map(str, files), str(bad), "-o",
                                  str(tmp_path / "s"), "--no-plots", "--no-anndata"])
    parallel = subprocess.run([sys.executable, "-m", "immunomon", "gate", *map(str, files),
                               str(bad), "-o", str(tmp_path / "p"), "--no-plots",
                               "--no-anndata", "--workers", "2"], capture_output=True, text=True)
    assert serial.exit_code == parallel.returncode == 1
    assert "bad.fcs" in parallel.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s" / "populations.csv"),
                                  pd.read_csv(tmp_path / "p" / "populations.csv"))


# ----------------------------------------------------------------------------- study pipeline
GATE_ONLY = """study: killed
out: results
inputs:
  fcs: fcs
  template: post-transplant
stages:
  gate: {plots: false, anndata: false}
"""


def test_pipeline_gate_stage_resumes_file_by_file_after_sigkill(tmp_path):
    names = [f"P{i:02d}_M1.fcs" for i in range(6)]
    for i, name in enumerate(names):
        write_sample(tmp_path / "fcs" / name, seed=i)
    (tmp_path / "s.yaml").write_text(GATE_ONLY)
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "immunomon", "run", str(tmp_path / "s.yaml")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: sum(r["status"] == "done" for r in registry_rows(out / "gate")) >= 2
             or proc.poll() is not None)
    assert proc.poll() is None, "the pipeline finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {r["output"]: (out / "gate" / r["output"] / "summary.json").stat().st_mtime_ns
            for r in registry_rows(out / "gate") if r["status"] == "done"}
    assert len(kept) >= 2

    res = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert [s["status"] for s in json.loads(res.stdout)["stages"]] == ["ran"]
    rows = registry_rows(out / "gate")
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    for output, mtime in kept.items():            # gated before the kill: not gated again
        assert (out / "gate" / output / "summary.json").stat().st_mtime_ns == mtime
    assert [p for p in out.iterdir() if p.name.startswith(".gate.")] == []
    assert no_temporaries(out) == []
    table = pd.read_csv(out / "gate" / "populations.csv")
    assert sorted(table["sample"].unique()) == sorted(Path(n).stem for n in names)
    again = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    assert [s["status"] for s in json.loads(again.stdout)["stages"]] == ["skipped"]


def test_a_quarantined_file_copied_again_unchanged_is_not_a_new_failure(tmp_path):
    # a facility copied its inbox again (the same bytes, new times): the done files were
    # skipped, but every quarantined one was read, reported and counted as failed again
    inbox = tmp_path / "inbox"
    write_sample(inbox / "good.fcs", seed=1)
    good = (inbox / "good.fcs").read_bytes()
    (inbox / "cut.fcs").write_bytes(good[: len(good) // 2])
    (inbox / "notes.fcs").write_bytes(b"not an FCS file\n")
    first = run_batch(inbox, tmp_path / "res", BatchOptions(**FAST))
    assert (first.done, first.quarantined) == (1, 2)
    for p in inbox.iterdir():                                   # copied again
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    again = run_batch(inbox, tmp_path / "res", BatchOptions(**FAST))
    assert (again.done, again.failed, again.skipped) == (0, 0, 3)
    assert {r["relpath"]: r["status"] for r in registry_rows(tmp_path / "res")} == {
        "good.fcs": "done", "cut.fcs": "quarantined", "notes.fcs": "quarantined"}
    (inbox / "cut.fcs").write_bytes(good)                       # the upload mended
    mended = run_batch(inbox, tmp_path / "res", BatchOptions(**FAST))
    assert (mended.done, mended.failed, mended.skipped) == (1, 0, 2)


def test_progress_lines_count_files_refused_before_the_queue(capsys):
    # a file refused at registration (unreadable, or a name the registry cannot store) is
    # reported before the queue's size is known: it gets no count of its own, and every
    # later line counts it among the files of the run (was 2/2, then no count at all)
    from immunomon.batch.cli import _Progress

    progress = _Progress()
    progress({"event": "failed", "id": None, "path": "caf\\xe9.fcs", "message": "not UTF-8"})
    progress({"event": "quarantined", "id": 3, "path": "bad.fcs", "message": "bad.fcs: truncated"})
    progress({"event": "queued", "total": 2})
    for file_id, name in ((1, "a.fcs"), (2, "b.fcs")):
        progress({"event": "started", "id": file_id, "path": name})
        progress({"event": "done", "id": file_id, "path": name, "status": "ok"})
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["caf\\xe9.fcs: failed, not UTF-8", "bad.fcs: quarantined, truncated",
                     "3/4 a.fcs: ok", "4/4 b.fcs: ok"]


@pytest.mark.parametrize("damage", ["empty", "foreign"])
def test_a_damaged_or_foreign_registry_is_refused_and_left_as_it_is(tmp_path, damage):
    # `batch retry` and `batch report` took an empty file or another program's database
    # for a registry, wrote their tables into it and said "0 processed"
    import sqlite3
    results = tmp_path / "results"
    results.mkdir()
    path = results / "registry.sqlite"
    if damage == "empty":
        path.write_bytes(b"")
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t(a)")
    before = path.read_bytes()
    for args in (["retry", str(results)], ["report", str(results)], ["status", str(results)],
                 ["run", str(tmp_path / "inbox"), "-o", str(results), "-t", "post-transplant"]):
        (tmp_path / "inbox").mkdir(exist_ok=True)
        result = CliRunner().invoke(main, ["batch", *args])
        assert result.exit_code != 0 and "Traceback" not in result.output, args
        assert "registry.sqlite: not a usable batch registry" in result.output, args
        assert path.read_bytes() == before, args
        assert sorted(p.name for p in results.iterdir()) == ["registry.sqlite"], args


def test_a_run_refused_before_any_file_leaves_no_registry_or_folder(tmp_path):
    # a template that cannot be read once left a new results folder with an empty registry
    write_sample(tmp_path / "inbox" / "one.fcs", seed=1)
    (tmp_path / "bad.yaml").write_text("panel: [\n")
    result = CliRunner().invoke(main, ["batch", "run", str(tmp_path / "inbox"), "-o",
                                       str(tmp_path / "results"), "-t",
                                       str(tmp_path / "bad.yaml")])
    assert result.exit_code != 0 and "bad.yaml" in result.output
    assert not (tmp_path / "results").exists()
    # into an existing folder of results, the registry is left as it was
    run_batch(tmp_path / "inbox", tmp_path / "results", BatchOptions(**(FAST | {"workers": 1})))
    before = sorted(p.name for p in (tmp_path / "results").iterdir())
    result = CliRunner().invoke(main, ["batch", "run", str(tmp_path / "inbox"), "-o",
                                       str(tmp_path / "results"), "-t",
                                       str(tmp_path / "bad.yaml")])
    assert result.exit_code != 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == before
    assert Registry.open(tmp_path / "results", create=False).rows("done")


@pytest.mark.parametrize("command", [["run", "{inbox}", "--cluster", "local:x"],
                                     ["watch", "{tmp}/no-inbox"]])
def test_options_and_inboxes_are_checked_before_the_results_folder_is_made(tmp_path, command):
    write_sample(tmp_path / "inbox" / "one.fcs", seed=1)
    args = [a.format(inbox=tmp_path / "inbox", tmp=tmp_path) for a in command]
    result = CliRunner().invoke(main, ["batch", *args, "-o", str(tmp_path / "results"),
                                       "-t", "post-transplant"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert ("give local:N" in result.output or "the inbox is not a folder" in result.output)
    assert not (tmp_path / "results").exists()


def test_a_truncated_registry_is_refused_and_nothing_is_left_beside_it(tmp_path):
    # `batch status` on a registry cut short left SQLite's -wal and -shm files behind
    write_sample(tmp_path / "inbox" / "one.fcs", seed=1)
    results = tmp_path / "results"
    run_batch(tmp_path / "inbox", results, BatchOptions(**(FAST | {"workers": 1})))
    path = results / "registry.sqlite"
    path.write_bytes(path.read_bytes()[:3000])
    before = sorted(p.name for p in results.iterdir())
    for command in (["status", str(results)], ["retry", str(results)]):
        result = CliRunner().invoke(main, ["batch", *command])
        assert result.exit_code != 0 and "not a usable batch registry" in result.output
        assert sorted(p.name for p in results.iterdir()) == before, command


def _as_schema_1(results: Path) -> None:
    """Turn a registry into what a batch of schema 1 wrote: no share near the cut."""
    import sqlite3
    with sqlite3.connect(results / "registry.sqlite") as conn:
        conn.execute("ALTER TABLE populations DROP COLUMN percent_near_cut")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()


def test_a_registry_an_older_batch_wrote_is_read_and_carried_forward(tmp_path):
    # a core facility's results folder outlives the immunomon that began it: the newer
    # one reads it as it is, and its next run adds the new column without losing a row
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "old.fcs", seed=1)
    run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    _as_schema_1(results)
    before = (results / "registry.sqlite").read_bytes()

    # status and report read it as it stands: an older batch may still be running
    for command in ("status", "report"):
        result = CliRunner().invoke(main, ["batch", command, str(results)])
        assert result.exit_code == 0, result.output
        assert (results / "registry.sqlite").read_bytes() == before, command
    assert "0 underlined" in (results / "report.html").read_text()

    write_sample(inbox / "new.fcs", seed=2)
    summary = run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    assert (summary.done, summary.skipped) == (1, 1)
    reg = Registry.open(results, create=False, readonly=True)
    try:
        assert reg.get_meta("schema_version") == "2"
        rows = {r["relpath"]: r for r in reg.rows("done")}
        pops = pd.DataFrame([dict(p) for p in reg.populations()])
    finally:
        reg.close()
    assert set(rows) == {"old.fcs", "new.fcs"}
    old, new = (pops[pops["file_id"] == rows[n]["id"]] for n in ("old.fcs", "new.fcs"))
    assert len(old) == len(new) > 10 and old["count"].notna().all()
    assert old["percent_near_cut"].isna().all()          # not recorded then, not made up
    assert new["percent_near_cut"].notna().sum() > 10
    table = pd.read_csv(results / "default" / "populations.csv")
    assert table.groupby("sample")["percent_near_cut"].count().to_dict() == \
        {"new": new["percent_near_cut"].notna().sum(), "old": 0}


def test_a_registry_of_a_newer_schema_is_refused_and_left_as_it_is(tmp_path):
    import sqlite3
    inbox, results = tmp_path / "inbox", tmp_path / "results"
    write_sample(inbox / "one.fcs", seed=1)
    run_batch(inbox, results, BatchOptions(**(FAST | {"workers": 1})))
    with sqlite3.connect(results / "registry.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    before = (results / "registry.sqlite").read_bytes()
    for args in (["status", str(results)], ["retry", str(results)]):
        result = CliRunner().invoke(main, ["batch", *args])
        assert result.exit_code != 0 and "Traceback" not in result.output, args
        assert "registry schema 9, this immunomon reads 2 and older" in result.output, args
    assert (results / "registry.sqlite").read_bytes() == before
