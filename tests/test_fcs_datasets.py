"""Which data set of a multi-data-set file is gated: Beckman Coulter's .LMD files hold each
tube twice, an FCS 2.0 data set at 10 bits and an FCS 3.0 one at full resolution."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from fcsbuild import assemble, channel_keywords, pack_rows, pack_uint
from immunomon.batch.inbox import scan_inbox
from immunomon.cli import main
from immunomon.fcs import is_fcs_name, read_fcs
from immunomon.fcs.datasets import dataset_to_gate, read_fcs_to_gate
from immunomon.gating.run import find_fcs_files

RNG = np.random.default_rng(1206)


def _chained(*data_sets: bytes) -> bytes:
    """Data sets one after another, each $NEXTDATA pointing at the next."""
    out = b""
    for i, blob in enumerate(data_sets):
        last = i == len(data_sets) - 1
        nextdata = b"0" * 12 if last else str(len(blob)).zfill(12).encode()
        out += blob.replace(b"$NEXTDATA/" + b"0" * 12, b"$NEXTDATA/" + nextdata, 1)
    return out


def _fcs20_10bit(levels: np.ndarray, fl1_to_fl2: float = 0.0) -> bytes:
    """An FC500's FCS 2.0 data set: 10-bit channel numbers, stored in 16-bit words,
    compensated when acquired where ``fl1_to_fl2`` ($DFC1TO2, percent) is not 0."""
    n = levels.shape[0]
    kw = channel_keywords(["FS Lin", "SS Lin", "FL1 Log", "FL2 Log"], [16] * 4,
                          ranges=[1024] * 4, extra={
                              "$DATATYPE": "I", "$BYTEORD": "1,2", "$MODE": "L",
                              "$TOT": str(n), "$NEXTDATA": "0" * 12, "$CYT": "Gallios",
                              "$DATE": "28-Dec-10",
                              "$DFC1TO2": f"{fl1_to_fl2:.2f}", "$DFC2TO1": "0.00"})
    return assemble(kw, pack_uint(levels, 2, (1, 2)), version="2.0")


def _fcs30_full(values: np.ndarray, spillover: bool = False) -> bytes:
    """The FCS 3.0 copy, with no $CYT or $DATE (as a Gallios writes it)."""
    names = ["FS", "SS", "FL1", "FL2", "FL3", "TIME"][:values.shape[1]]
    extra = {"$SPILLOVER": "2,FL1,FL2,1,0.112,0.009,1"} if spillover else {}
    kw = channel_keywords(names, [32] * len(names), ranges=[1048576] * len(names), extra={
        "$DATATYPE": "F", "$BYTEORD": "1,2,3,4", "$MODE": "L",
        "$TOT": str(values.shape[0]), "$NEXTDATA": "0" * 12, **extra})
    return assemble(kw, pack_rows(values, ["f"] * values.shape[1], "<"), version="3.0")


def test_the_same_events_at_full_resolution_are_gated(tmp_path):
    full = RNG.uniform(0, 1048576, size=(300, 6)).astype(np.float32)
    levels = (full[:, :4] // 1024).astype(np.int64)
    path = tmp_path / "Tube 1.LMD"
    path.write_bytes(_chained(_fcs20_10bit(levels), _fcs30_full(full)))
    index, note = dataset_to_gate(path)
    assert index == 1 and "same 300 events as data set 0 (FCS 2.0, 4 channels)" in note
    sample = read_fcs_to_gate(path)
    np.testing.assert_array_equal(sample.events, full)
    assert sample.channels[:2] == ("FS", "SS") and note in sample.warnings
    assert (sample.keywords["$CYT"], sample.keywords["$DATE"]) == ("Gallios", "28-Dec-10")
    assert sample.keywords["$TOT"] == "300" and "$DFC1TO2" not in sample.keywords
    out = CliRunner().invoke(main, ["info", str(path)]).output
    assert "2 data sets (showing data set 1, the one gated)" in out and "TIME" in out
    desc = json.loads(CliRunner().invoke(main, ["info", "--json", str(path)]).output)[0]
    assert (desc["datasets"], desc["dataset"], desc["fcs_version"]) == (2, 1, "3.0")
    assert desc["instrument"] == "Gallios"


def test_events_compensated_when_acquired_stay_so_unless_the_copy_can_be_compensated(
        tmp_path):
    """An FC500 compensates its FCS 2.0 data set as it acquires ($DFC1TO2 11.2%) and
    writes the FCS 3.0 copy raw with no matrix: that copy cannot be compensated, so the
    first is gated. A Navios's FCS 3.0 copy carries $SPILLOVER: it is gated."""
    full = RNG.uniform(0, 1048576, size=(300, 6)).astype(np.float32)
    levels = (full[:, :4] // 1024).astype(np.int64)
    fc500 = tmp_path / "fc500.LMD"
    fc500.write_bytes(_chained(_fcs20_10bit(levels, 11.2), _fcs30_full(full)))
    index, note = dataset_to_gate(fc500)
    assert index == 0 and "compensated when acquired ($DFCiTOj)" in note
    assert read_fcs_to_gate(fc500).version == "2.0"
    navios = tmp_path / "navios.LMD"
    navios.write_bytes(_chained(_fcs20_10bit(levels, 11.2), _fcs30_full(full, spillover=True)))
    assert dataset_to_gate(navios)[0] == 1
    assert read_fcs_to_gate(navios).spillover is not None


def test_data_sets_of_other_events_leave_the_first_gated_and_are_named(tmp_path):
    first = RNG.uniform(0, 1048576, size=(200, 6)).astype(np.float32)
    second = RNG.uniform(0, 1048576, size=(150, 6)).astype(np.float32)
    path = tmp_path / "two tubes.fcs"
    path.write_bytes(_chained(_fcs30_full(first), _fcs30_full(second)))
    index, note = dataset_to_gate(path)
    assert index == 0 and "holds 2 data sets; 1 of other events are not gated" in note
    np.testing.assert_array_equal(read_fcs_to_gate(path).events, first)


def test_a_file_of_one_data_set_needs_no_note(tmp_path):
    path = tmp_path / "one.fcs"
    path.write_bytes(_fcs30_full(RNG.uniform(0, 1e6, size=(50, 6)).astype(np.float32)))
    assert dataset_to_gate(path) == (0, None)
    assert read_fcs_to_gate(path).warnings == []


def test_lmd_files_are_found_in_folders(tmp_path):
    for name in ("a.fcs", "b.LMD", "c.lmd", "d.txt", "e.fcs.done"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_fcs_files([tmp_path])] == ["a.fcs", "b.LMD", "c.lmd"]
    assert [p.name for p in scan_inbox(tmp_path)] == ["a.fcs", "b.LMD", "c.lmd"]
    assert is_fcs_name("X.FCS") and not is_fcs_name("x.fcs.done")


def test_fcs_files_named_as_older_instruments_name_them_are_found_by_their_header(tmp_path):
    """CellQuest names its files TUBE.001, a CyFlow 08.328 (flowPloidyData), some
    exports have no ending at all: found when their first bytes say FCS. A file of another
    kind so named is not, nor is an upload in progress, whatever it holds."""
    fcs = _fcs30_full(RNG.uniform(0, 1e6, size=(50, 6)).astype(np.float32))
    for name in ("TUBE.001", "08.328", "vac", "b.fcs"):
        (tmp_path / name).write_bytes(fcs)
    (tmp_path / "notes").write_text("FCS 3.1 notes")
    (tmp_path / "run.002").write_bytes(b"\x00" * 64)
    (tmp_path / "c.fcs.part").write_bytes(fcs)
    (tmp_path / "d.csv").write_bytes(fcs)
    found = ["08.328", "TUBE.001", "b.fcs", "vac"]
    assert [p.name for p in find_fcs_files([tmp_path])] == found
    assert [p.name for p in scan_inbox(tmp_path)] == found
    assert read_fcs(tmp_path / "TUBE.001").n_events == 50
