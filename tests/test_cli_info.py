"""`immunomon info`: text and JSON, bad files reported and skipped, honest exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from immunomon.cli import main

from testdata import COMPLIANCE
from fcsbuild import assemble, channel_keywords

DATA1 = COMPLIANCE / "data1.fcs"


def _good(tmp_path) -> Path:
    values = np.arange(30, dtype="<f4").reshape(10, 3)
    kw = channel_keywords(["FSC-A", "FITC-A", "PE-A"], [32] * 3, markers=[None, "CD3", "CD4"],
                          extra={"$DATATYPE": "F", "$TOT": "10", "$BYTEORD": "1,2,3,4",
                                 "$CYT": "Aurora", "$DATE": "01-JAN-2026", "$TR": "FSC-A,5000",
                                 "$SPILLOVER": "2,FITC-A,PE-A,1,0.1,0,1"})
    p = tmp_path / "good.fcs"
    p.write_bytes(assemble(kw, values.tobytes()))
    return p


def test_info_text(tmp_path):
    result = CliRunner().invoke(main, ["info", str(_good(tmp_path))])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "FCS 3.1" in out and "Aurora" in out and "01-JAN-2026" in out
    assert "events     : 10" in out and "spillover  : yes, 2 channels" in out
    assert "FITC-A  CD3" in out
    assert "range 262,144" in out         # the declared range, which T: auto reads
    assert "trigger    : FSC-A,5000" in out   # events a gate exported start far above it


def test_info_says_when_the_spillover_compensates_nothing(tmp_path):
    """A file whose $SPILLOVER is the identity (its compensation kept in a workspace)
    reads 'spillover: yes' and looked compensated; `info` says it changes nothing."""
    identity = _good(tmp_path).read_bytes().replace(b"1,0.1,0,1", b"1,0.0,0,1")
    path = tmp_path / "identity.fcs"
    path.write_bytes(identity)
    out = CliRunner().invoke(main, ["info", str(path)]).output
    assert "spillover  : yes, 2 channels, the identity: compensating with it changes " \
           "nothing" in out
    assert "the identity" not in CliRunner().invoke(main, ["info", str(_good(tmp_path))]).output
    record = json.loads(CliRunner().invoke(main, ["info", "--json", str(path)]).stdout)[0]
    assert record["spillover"] is True and record["spillover_identity"] is True


def test_info_json_and_bad_file_goes_on(tmp_path):
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"FCS3.1    garbage")
    result = CliRunner().invoke(main, ["info", "--json", str(bad), str(_good(tmp_path))])
    assert result.exit_code == 1
    records = json.loads(result.stdout)
    assert "error" in records[0] and "bad.fcs" in records[0]["error"]
    assert records[1]["events"] == 10 and records[1]["channels"][1]["marker"] == "CD3"
    assert records[1]["spillover"] is True


def test_info_on_real_instrument_file():
    result = CliRunner().invoke(main, ["info", "--json", str(DATA1)])
    assert result.exit_code == 0
    record = json.loads(result.stdout)[0]
    assert record["instrument"] == "FACSCalibur" and record["events"] == 13367
    assert record["fcs_version"] == "2.0" and record["datatype"] == "integer"


def test_no_traceback_from_the_real_command(tmp_path):
    bad = tmp_path / "trunc.fcs"
    bad.write_bytes(_good(tmp_path).read_bytes()[:200])
    proc = subprocess.run([sys.executable, "-m", "immunomon", "info", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "trunc.fcs" in proc.stderr and proc.stderr.count("\n") == 1


def test_info_scans_a_folder_as_gate_does(tmp_path):
    # `gate` and `batch` take folders; `info` refused one ("is a directory")
    folder = tmp_path / "run1" / "day1"
    folder.mkdir(parents=True)
    _good(folder)
    (folder / ".uploading.fcs").write_bytes(b"partial")           # hidden: left out
    (folder / "notes.txt").write_text("not an FCS file name")
    result = CliRunner().invoke(main, ["info", "--json", str(tmp_path / "run1")])
    assert result.exit_code == 0, result.output
    assert [Path(r["file"]).name for r in json.loads(result.stdout)] == ["good.fcs"]
    empty = CliRunner().invoke(main, ["info", str(tmp_path / "run1" / "none")])
    assert empty.exit_code != 0 and "Traceback" not in empty.output


def test_a_folder_with_no_fcs_files_is_named(tmp_path):
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "notes.txt").write_text("no data here\n")
    for command in (["info"], ["gate", "-o", str(tmp_path / "out")],
                    ["template", "check", "-t", "post-transplant", "-o", str(tmp_path / "chk")]):
        result = CliRunner().invoke(main, [*command, str(tmp_path / "run1")])
        assert result.exit_code == 2, command
        assert "no FCS files (.fcs, .lmd, or FCS named TUBE.001 or with no ending) found in " \
            f"{tmp_path / 'run1'}" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "chk").exists()


def test_info_says_what_kind_of_values_a_file_holds():
    """Which recipe of docs/recipes.md to start from, read off the channels' names and
    ranges: raw values of a digital cytometer, display values, an older analyser's
    channel numbers or log-amplified signal, mass cytometry."""
    from immunomon.fcs.info import describe_file, kind_of_file

    repo = Path(__file__).resolve().parent / "data"
    kinds = {name: describe_file(repo / name)["looks_like"]["recipe"] for name in (
        "real/canto_124500.fcs", "real/lyoplate_yale_1.fcs", "real/flowcap_gvhd_1.fcs",
        "real/deepcytof_multicentre_9.fcs", "batch/Sample_Well_A02.fcs",
        "fcs/quirks/macsquant_31.fcs")}
    assert kinds == {"real/canto_124500.fcs": "recipes 1 and 2",
                     "real/lyoplate_yale_1.fcs": "recipe 3, or lysed whole blood",
                     "real/flowcap_gvhd_1.fcs": "recipe 4",
                     "real/deepcytof_multicentre_9.fcs": "recipe 5",
                     "batch/Sample_Well_A02.fcs": "recipes 1 and 2",     # a FACSCalibur
                     # raw signal though its declared range is 1,000: area, height and
                     # width of each detector
                     "fcs/quirks/macsquant_31.fcs": "recipes 1 and 2"}
    assert "log-amplified" in describe_file(repo / "batch/Sample_Well_A02.fcs")[
        "looks_like"]["values"]
    flowjo = {"spillover": False, "channels": [
        {"name": "FSC-A", "range": 262144, "log_decades": 0},
        {"name": "Comp-FITC-A", "range": 262144, "log_decades": 0}]}
    assert "FlowJo" in kind_of_file(flowjo)[0]
    assert kind_of_file({"spillover": False, "channels": [
        {"name": "FSC-A", "range": 1024, "log_decades": 0}]}) is None    # scatter only
    # CyTOF software 5.1 names a channel after its marker, then the metal (the Nolan
    # lab's and a CyTOF workshop's files): 'CD19(Nd142)Di', 'CD123(Eu151)Dd'
    for names in (["Time", "Cell_length", "CD19(Nd142)Di", "CD4(Nd145)Di", "(Ir191)Di"],
                  ["Time", "Cell_length", "CD123(Eu151)Dd", "HLA-DR(Yb174)Dd", "BC1(Pd102)Dd"]):
        assert kind_of_file({"spillover": False, "channels": [
            {"name": n, "range": 1024, "log_decades": 0} for n in names]})[1] == "recipe 5"
    out = CliRunner().invoke(main, ["info", str(repo / "real/flowcap_gvhd_1.fcs")]).output
    assert "looks like : an older analyser's channel numbers (linear) (docs/recipes.md, " \
           "recipe 4)" in out
