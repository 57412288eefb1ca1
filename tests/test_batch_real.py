"""The batch on real files from five instruments (tests/data/batch, tests/data/flowjo):
registration reads each vendor's keywords, a broken file is quarantined, and a
de-identified run leaves none of the real operator names, sample names, GUIDs or dates in
any output while the exported FCS files keep every event."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import flowio
import numpy as np
import pytest

from batch_helpers import registry_rows
from immunomon import read_fcs
from immunomon.batch.run import BatchOptions, run_batch

DATA = Path(__file__).parent / "data"
REAL = {
    "FCS_3.0_Fortessa_PBS_Specimen_001_A1_A01.fcs": ("LSRII", "2013-02-28"),
    "Sample_Well_A02.fcs": ("FACSCalibur", "2013-09-22"),
    "FCS3.0_Custom_Compatible.fcs": ("MACSQuant", "2013-07-19"),
    "cyflow_cube_8.fcs": ("Cube_15", "2017-11-02"),
    "a2004_O1T2pb05i_A2_A02.fcs": ("LSRII", "2007-10-30"),
}
# identifying values these files really carry ($OP, EXPORT USER NAME, LOGIN NAME, $SRC,
# $FIL, EXPERIMENT NAME, FILE GUID, $INST) and their acquisition dates as written
REAL_IDENTIFIERS = ["EugeneYurtsev", "Eugene Yurtsev", "Manoshi Datta", "Specimen_001",
                    "132209_c_100", "9FF0B5CA-239B-11E3", "EY_2013-07-19", "jnc3",
                    "a2004_O1T2pb05i", "a2004_&_a2005", "Background 1", "28-FEB-2013",
                    "22-Sep-13", "2013-Jul-19", "02-Nov-2017", "30-OCT-2007", "2013-02-28",
                    "2007-10-30"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    inbox = root / "inbox" / "core"
    inbox.mkdir(parents=True)
    for name in REAL:
        source = DATA / ("flowjo" if name.startswith("a2004") else "batch") / name
        shutil.copy(source, inbox / name)
    shutil.copy(DATA / "batch" / "corrupted.fcs", inbox / "corrupted.fcs")
    results = root / "results"
    summary = run_batch(root / "inbox", results, BatchOptions(
        template=str(DATA / "batch" / "scatter.yaml"), deidentify=True, date_shift=45,
        export_fcs=True, plots="none", workers=2))
    return inbox, results, summary


def test_real_files_are_registered_gated_and_the_broken_one_quarantined(real_run):
    inbox, results, summary = real_run
    rows = {Path(r["relpath"]).name: r for r in registry_rows(results)}
    assert rows["corrupted.fcs"]["status"] == "quarantined"
    assert "not an FCS file: it is 10 bytes long" in rows["corrupted.fcs"]["error"]
    for name, (instrument, date) in REAL.items():
        r = rows[name]
        assert r["status"] == "done", r["error"]
        assert r["instrument"].startswith(instrument)
        assert r["acquired"][:10] == date
        assert r["events"] == read_fcs(inbox / name).n_events
    assert summary.done == 5 and summary.quarantined == 1


def test_no_real_identifier_in_any_output(real_run):
    inbox, results, _ = real_run
    internal = {"registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm",
                ".immunomon.lock"}
    for path in results.rglob("*"):
        rel = path.relative_to(results)
        if path.is_dir() or rel.parts[0] in ("private", "quarantine") or rel.name in internal:
            continue
        blob = path.read_bytes().lower()
        for value in REAL_IDENTIFIERS:
            assert value.lower().encode() not in blob, f"{value!r} found in {rel}"


def test_exports_keep_every_event_and_shift_the_dates(real_run):
    inbox, results, _ = real_run
    key = json.loads((results / "private" / "deidentification-key.json").read_text())
    assert key["studies"]["core"].get("patients", {}) == {}   # no patients: one study shift
    rows = {Path(r["relpath"]).name: r for r in registry_rows(results)}
    shifts = set()
    for name, (_, date) in REAL.items():
        folder = results / rows[name]["output"]
        exported = folder / f"{folder.name}.fcs"
        original = read_fcs(inbox / name)
        again = read_fcs(exported)
        assert np.array_equal(again.events, original.events)
        flow = flowio.FlowData(str(exported))                # an independent reader
        assert flow.event_count == original.n_events
        text = {k.lower().lstrip("$"): v for k, v in flow.text.items()}
        for gone in ("op", "src", "fil", "export user name", "login name", "tube name",
                     "experiment name", "file guid", "inst"):
            assert gone not in text, (name, gone)
        shifted = again.keywords.get("$DATE")
        if shifted is not None:
            from immunomon.batch.inbox import parse_fcs_date
            moved = dt.date.fromisoformat(parse_fcs_date(shifted)[:10])
            shifts.add((moved - dt.date.fromisoformat(date)).days)
    assert len(shifts) == 1 and 1 <= abs(shifts.pop()) <= 45
