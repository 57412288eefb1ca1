"""`immunomon gate --workspace`: FlowJo's counts beside immunomon's, and a
template's gates scored against the manual ones."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import flowjo_synthetic as syn
from immunomon.cli import main

TEMPLATE = """\
panel: FlowJo check
version: "1"
markers:
  FL1: [FL1-A]
compensation: none
transforms:
  fluorescence: linear
  scatter: linear
populations:
  - name: Cells
    parent: root
    dims: [FSC-A]
    gate: {rectangle: {bounds: [[131072, null]]}}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    fcs = syn.write_fcs_file(folder / "synthetic.fcs")
    wsp = folder / "synthetic.wsp"
    wsp.write_text(syn.workspace_xml(), encoding="utf-8")
    tmpl = folder / "check.yaml"
    tmpl.write_text(TEMPLATE, encoding="utf-8")
    return wsp, fcs, tmpl


def test_gate_workspace_json(files, tmp_path):
    wsp, fcs, _ = files
    result = CliRunner().invoke(main, ["gate", "--workspace", str(wsp), str(fcs), "--json",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert "\\/" not in result.stdout                 # gate paths as written
    assert all(type(r["count"]) is int for r in records)
    by_path = {r["path"]: r for r in records}
    expected = syn.expected_counts()
    assert set(by_path) == set(expected)
    for path, n in expected.items():
        r = by_path[path]
        assert (r["flowjo_count"], r["count"], r["difference"]) == (n, n, 0)
        assert r["sample"] == "synthetic.fcs" and r["population"] == path.split("/")[-1]
    assert (tmp_path / "out" / "workspace_counts.csv").is_file()


def test_gate_workspace_text_and_template_f1(files):
    wsp, fcs, tmpl = files
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(fcs), "-t", str(tmpl)])
    assert result.exit_code == 0, result.output
    assert "Cells/Lymph/CD3+/Q1 or Q3" in result.output and "F1" in result.output
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(fcs), "-t", str(tmpl),
                                       "--json"])
    cells = next(r for r in json.loads(result.stdout) if r["path"] == "Cells")
    # manual Cells: clusters B-K; the template keeps FSC-A >= half scale: B E G H I J K L
    n = {c: v[0] for c, v in syn.CLUSTERS.items()}
    tp = sum(n[c] for c in "BEGHIJK")
    fn = sum(n[c] for c in "CDF")
    fp = n["L"]
    assert cells["template_count"] == tp + fp
    assert cells["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_gate_workspace_errors(files, tmp_path):
    wsp, fcs, _ = files
    other = tmp_path / "stranger.fcs"
    other.write_bytes(fcs.read_bytes())
    result = CliRunner().invoke(main, ["gate", "--workspace", str(wsp), str(other)])
    assert result.exit_code == 2
    assert "stranger.fcs: no sample" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["gate", str(fcs)])
    assert result.exit_code == 2 and "--out is required" in result.output


def test_gate_workspace_warns_when_the_file_has_other_events(files, tmp_path):
    """A file with fewer events than FlowJo recorded is compared, with a warning."""
    from immunomon import read_fcs, write_fcs

    wsp, fcs, _ = files
    sample = read_fcs(fcs)
    short = tmp_path / "synthetic.fcs"
    write_fcs(short, type(sample)(events=sample.events[:-5], channel_info=sample.channel_info,
                                  keywords=dict(sample.keywords)))
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(short), "--json"])
    assert result.exit_code == 0
    assert f"{sum(c[0] for c in syn.CLUSTERS.values())} for this sample" in result.stderr


def test_two_files_of_one_sample_get_a_block_each(files, tmp_path):
    """day1/tube.fcs and day2/tube.fcs both match the workspace's sample: each file's rows
    stand under its own header (they stood under the first file's)."""
    wsp, fcs, tmpl = files
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        (tmp_path / day / fcs.name).write_bytes(fcs.read_bytes())
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path), "-t", str(tmpl)])
    assert result.exit_code == 0, result.output
    heads = [line for line in result.output.splitlines() if line.startswith("synthetic.fcs")]
    assert heads == [f"synthetic.fcs  ({tmp_path / 'day1' / fcs.name})",
                     f"synthetic.fcs  ({tmp_path / 'day2' / fcs.name})"]
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path), "-t", str(tmpl),
                                       "--json"])
    records = json.loads(result.stdout)
    assert len(records) == 2 * len(syn.expected_counts())     # no rows crossed in the merge
    assert {r["file"] for r in records if r["path"] == "Cells" and r["f1"] is not None} == \
        {str(tmp_path / d / fcs.name) for d in ("day1", "day2")}


def test_a_folder_file_no_sample_uses_is_skipped_with_a_note(files, tmp_path):
    """A run folder also holds compensation controls and tubes the workspace left out:
    they are skipped, named; a file given by name that no sample uses stays an error."""
    wsp, fcs, _ = files
    (tmp_path / fcs.name).write_bytes(fcs.read_bytes())
    (tmp_path / "comp_FITC.fcs").write_bytes(fcs.read_bytes())
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert {r["file"] for r in json.loads(result.stdout)} == {str(tmp_path / fcs.name)}
    assert f"{tmp_path / 'comp_FITC.fcs'}: skipped, no sample of the workspace uses this " \
        "file" in result.stderr
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path / "comp_FITC.fcs")])
    assert result.exit_code == 2
    assert "comp_FITC.fcs: no sample of" in result.output and "its samples: " in result.output
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "comp_PE.fcs").write_bytes(fcs.read_bytes())
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(alone)])
    assert result.exit_code == 2 and "no FCS file in" in result.output


def test_a_file_that_cannot_be_gated_leaves_the_others_their_rows(files, tmp_path):
    """One bad file among a run's (48 of a lab's, one channel renamed) left no row for
    any: the others are compared, the bad one is named, and the exit code is 1."""
    wsp, fcs, _ = files
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
    (tmp_path / "day1" / fcs.name).write_bytes(fcs.read_bytes())
    (tmp_path / "day2" / fcs.name).write_bytes(fcs.read_bytes()[:3000])      # cut short
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path), "--json",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    records = json.loads(result.stdout)
    assert {r["file"] for r in records} == {str(tmp_path / "day1" / fcs.name)}
    assert len(records) == len(syn.expected_counts())
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert str(tmp_path / "day2" / fcs.name) in error
    assert (tmp_path / "out" / "workspace_counts.csv").is_file()
    # every file bad: the first one's error, as before
    result = CliRunner().invoke(main, ["gate", "-w", str(wsp), str(tmp_path / "day2")])
    assert result.exit_code == 2 and "Traceback" not in result.output
