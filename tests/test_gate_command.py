"""`immunomon gate` end to end on the committed fixtures, against their simulated truth."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import anndata
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from immunomon.cli import main
from immunomon.gating.run import CountingInputs, gate_sample
from immunomon.gating.template import load_template
from immunomon import read_fcs

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
TRUTH = json.loads((FIXTURES / "simulated.json").read_text())


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gate")
    bad = out / "inputs"
    bad.mkdir()
    (bad / "broken.fcs").write_bytes(b"FCS3.1    not really")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"),
                                       str(FIXTURES / "pbmc_03_clog.fcs"),
                                       str(bad / "broken.fcs"), "--out", str(out / "res")])
    return out / "res", result


def test_exit_code_and_the_bad_file_is_reported(gated):
    out, result = gated
    assert result.exit_code == 1
    assert "broken.fcs" in result.output and "Traceback" not in result.output
    assert "2 of 3 files gated" in result.output
    assert not (out / "broken").exists()


def test_outputs_per_sample_and_combined(gated):
    out, _ = gated
    for name in ("pbmc_01", "pbmc_03_clog"):
        folder = out / name
        for f in ("populations.csv", "populations.parquet", "statistics.csv", "index.html",
                  "gates.xml", f"{name}.h5ad", "summary.json"):
            assert (folder / f).is_file(), f
        assert len(list((folder / "plots").glob("*.png"))) >= 15
        page = (folder / "index.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= 15
        assert all((folder / unquote(src)).is_file() for src in images), images
    combined = pd.read_csv(out / "populations.csv")
    assert set(combined["sample"]) == {"pbmc_01", "pbmc_03_clog"}
    assert (out / "index.html").read_text().count("pbmc_0") >= 2
    assert not list(out.glob(".*"))            # no temporary leftovers


@pytest.mark.parametrize("population", ["Lymphocytes", "T cells", "CD4 T", "CD8 T",
                                        "B cells", "NK cells", "Monocytes", "Granulocytes"])
def test_absolute_counts_match_the_simulated_truth(gated, population):
    out, _ = gated
    table = pd.read_csv(out / "pbmc_01" / "populations.csv").set_index("population")
    truth = TRUTH["pbmc_01"]["cells_per_ul"][population]
    assert table.loc[population, "cells_per_ul"] == pytest.approx(truth, rel=0.08)


def test_single_platform_formula_by_hand(gated):
    out, _ = gated
    table = pd.read_csv(out / "pbmc_01" / "populations.csv").set_index("population")
    beads = table.loc["Beads", "count"]
    for pop in ("T cells", "NK cells"):
        by_hand = table.loc[pop, "count"] / beads * 50_000 / 50.0
        assert table.loc[pop, "cells_per_ul"] == pytest.approx(by_hand, rel=1e-12)


def test_dual_platform_counts():
    sample = read_fcs(FIXTURES / "pbmc_01.fcs")
    template = load_template("post-transplant")
    template.counting = {}                      # no beads: use the analyser count
    g = gate_sample(sample, template, counting=CountingInputs(lymphocytes_per_ul=1500.0))
    t = g.table.set_index("population")
    expected = t.loc["T cells", "count"] / t.loc["Lymphocytes", "count"] * 1500.0
    assert t.loc["T cells", "cells_per_ul"] == pytest.approx(expected, rel=1e-12)
    assert "dual platform" in g.counting["method"]


def test_clog_is_flagged_and_excluded_events_counted(gated):
    out, _ = gated
    summary = json.loads((out / "pbmc_03_clog" / "summary.json").read_text())
    assert any("anomaly" in f for f in summary["qc_flags"])
    labels = pd.read_csv(FIXTURES / "pbmc_03_clog.labels.csv.gz")
    true_anomalous = int(labels["anomaly"].sum())
    assert summary["events_excluded"] == pytest.approx(true_anomalous, rel=0.25)
    clean = json.loads((out / "pbmc_01" / "summary.json").read_text())
    assert clean["events_excluded"] == 0
    assert not any("anomaly" in f for f in clean["qc_flags"])


def test_summary_records_each_dimension_transform_as_gated(gated):
    # the shipped template measures fluorescence logicle widths per file (W: auto); the
    # widths used are part of the record, like the gates in gates.xml
    out, _ = gated
    transforms = json.loads((out / "pbmc_01" / "summary.json").read_text())["transforms"]
    assert transforms["FSC-A"] == "linear"
    widths = {ch: t["logicle"]["W"] for ch, t in transforms.items()
              if isinstance(t, dict) and ch != "SSC-A"}
    assert len(widths) >= 10 and all(0.0 <= w <= 2.25 for w in widths.values())
    assert transforms["SSC-A"]["logicle"]["W"] == 0.5          # a fixed width stays


def test_anndata_follows_the_design(gated):
    out, _ = gated
    adata = anndata.read_h5ad(out / "pbmc_01" / "pbmc_01.h5ad")
    table = pd.read_csv(out / "pbmc_01" / "populations.csv").set_index("population")
    assert adata.n_obs == 40_000 and adata.X.dtype == np.float32
    assert "raw" in adata.layers and "marker" in adata.var
    assert adata.var.loc["BV786-A", "marker"] == "CD3"
    from immunomon.export import gate_membership
    assert int(gate_membership(adata, "T cells").sum()) == table.loc["T cells", "count"]
    assert adata.uns["template"]["panel"].startswith("Post-transplant")


def test_anndata_transforms_every_fluorescence_channel_as_the_template_says(tmp_path):
    """A marker no gate reads is in `.X` on the template's transform too, as the gated
    ones are (it had stayed linear: a scientist judging a CD45RA cut against CD45RO in
    the .h5ad had to compensate and transform CD45RO by hand); the clock stays linear."""
    (tmp_path / "t.yaml").write_text("""panel: T cells only
version: "1"
markers:
  CD3: [CD3]
  CD4: [CD4]
compensation: file
transforms:
  fluorescence: {logicle: {T: auto, W: auto, M: 4.5, A: 0}}
  scatter: linear
  channels:
    CD4: {arcsinh: {cofactor: 150}}
populations:
  - {name: T cells, parent: root, dims: [CD3], method: threshold, args: {side: above}}
""", encoding="utf-8")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-t",
                                       str(tmp_path / "t.yaml"), "-o", str(tmp_path / "out"),
                                       "--no-plots"])
    assert result.exit_code == 0, result.output
    var = anndata.read_h5ad(tmp_path / "out" / "pbmc_01" / "pbmc_01.h5ad").var
    by_marker = var.reset_index().set_index("marker")
    assert by_marker.loc["CD3", "transform"].startswith("Logicle(")          # gated
    assert by_marker.loc["CD8", "transform"].startswith("Logicle(")          # not gated
    assert by_marker.loc["CD4", "transform"] == "Arcsinh(cofactor=150)"      # its own
    assert var.loc["Time", "transform"] == "" and var.loc["FSC-A", "transform"] == ""


def test_gatingml_of_the_concrete_gates_reproduces_the_counts(gated):
    from immunomon.gating import load_gatingml
    out, _ = gated
    ids = pd.read_csv(out / "pbmc_01" / "gates_ids.csv")
    strategy = load_gatingml(out / "pbmc_01" / "gates.xml")
    result = strategy.apply(read_fcs(FIXTURES / "pbmc_01.fcs"))
    table = pd.read_csv(out / "pbmc_01" / "populations.csv").set_index("population")
    checked = 0
    for pop, gid in zip(ids["population"], ids["gatingml_id"]):
        if pop in table.index:               # quadrant gates are not populations
            assert result.count(gid) == table.loc[pop, "count"], pop
            checked += 1
    assert checked == len(table)


def test_an_arcsinh_template_gates_and_its_gatingml_reproduces_the_counts(tmp_path):
    # the guide's `arcsinh: {cofactor}` has no Gating-ML name; gates.xml holds the fasinh
    # that is the same function (it failed every file), and gives the same counts
    from immunomon.gating import load_gatingml
    template = (REPO / "gating" / "post-transplant.yaml").read_text(encoding="utf-8")
    fluorescence = re.search(r"^  fluorescence: .*$", template, re.M).group(0)
    (tmp_path / "arcsinh.yaml").write_text(template.replace(
        fluorescence, "  fluorescence: {arcsinh: {cofactor: 150}}"), encoding="utf-8")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-t",
                                       str(tmp_path / "arcsinh.yaml"), "-o",
                                       str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "pbmc_01"
    assert "fasinh" in (out / "gates.xml").read_text(encoding="utf-8")
    again = load_gatingml(out / "gates.xml").apply(read_fcs(FIXTURES / "pbmc_01.fcs"))
    table = pd.read_csv(out / "populations.csv").set_index("population")
    ids = pd.read_csv(out / "gates_ids.csv")
    pairs = [(p, g) for p, g in zip(ids["population"], ids["gatingml_id"]) if p in table.index]
    assert len(pairs) == len(table) and table["count"].sum() > 0
    assert all(again.count(g) == table.loc[p, "count"] for p, g in pairs)


def test_json_output_and_no_traceback_on_a_bad_template(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "immunomon", "gate",
                           str(FIXTURES / "pbmc_01.fcs"), "-t", "nope", "-o", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no template named 'nope'" in proc.stderr
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "--json",
                                       "--no-plots", "--no-anndata", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["population"] for r in rows} >= {"T cells", "Treg", "pDC"}


def test_per_sample_counting_inputs_and_overrides(tmp_path):
    info = tmp_path / "counts.csv"
    info.write_text("sample,beads_per_test,volume_ul\npbmc_01.fcs,100000,\n")
    overrides = tmp_path / "reviewed.yaml"
    overrides.write_text("pbmc_01:\n  B cells: {rectangle: {bounds: [[0.95, null]]}}\n")
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "--no-plots",
                                       "--no-anndata", "-o", str(out), "--sample-info",
                                       str(info), "--overrides", str(overrides)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "pbmc_01" / "populations.csv").set_index("population")
    beads = table.loc["Beads", "count"]
    # this sample's bead lot (100,000 per test) with the file's volume (50 uL)
    by_hand = table.loc["T cells", "count"] / beads * 100_000 / 50.0
    assert table.loc["T cells", "cells_per_ul"] == pytest.approx(by_hand, rel=1e-12)
    truth_b = TRUTH["pbmc_01"]["counts"]["B cells"]
    assert table.loc["B cells", "count"] < 0.05 * truth_b      # the reviewed gate was used


def test_few_bead_events_are_a_warning_and_an_unused_analyser_count_is_recorded(tmp_path):
    """A tube with 30 beads gave CD4 T 33,166 cells/uL with an info line about
    percentages; an analyser count given beside beads was dropped without a trace."""
    import dataclasses

    from immunomon import write_fcs
    from immunomon.gating.run import MIN_BEAD_EVENTS

    sample = read_fcs(FIXTURES / "pbmc_01.fcs")
    beads = np.flatnonzero(gate_sample(sample, "post-transplant").result.mask("Beads"))
    keep = np.ones(sample.n_events, dtype=bool)
    keep[beads] = False
    keep[beads[::20]] = True                     # one bead in 20, all through the run
    few = tmp_path / "in" / "few_beads.fcs"
    few.parent.mkdir()
    events = np.ascontiguousarray(sample.events[keep])
    write_fcs(few, dataclasses.replace(sample, events=events))
    result = CliRunner().invoke(main, ["gate", str(few), "--no-plots", "--no-anndata", "-o",
                                       str(tmp_path / "o"), "--lymphocytes-per-ul", "1500"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "few_beads" / "summary.json").read_text())
    assert summary["counting"]["bead_events"] < MIN_BEAD_EVENTS
    assert summary["counting"]["not_used"]["lymphocytes_per_ul"] == 1500
    warned = [f["message"] for f in summary["qc"] if f["level"] == "warning"]
    assert any(m.startswith(f"absolute counts from {summary['counting']['bead_events']} bead "
                            "events") for m in warned), warned


def test_the_sample_page_says_what_its_numbers_come_from(tmp_path):
    """A clinical lab files the page: it named no FCS file, events, compensation,
    counting inputs, template digest or software version, and said the same time
    exclusion twice ('can be excluded', then 'were excluded')."""
    import immunomon

    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_03_clog.fcs"),
                                       "--no-plots", "--no-anndata", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "pbmc_03_clog" / "summary.json").read_text())
    assert summary["compensation"] == "the file's $SPILLOVER (14 detectors)"
    assert summary["immunomon_version"] == immunomon.__version__
    page = unquote((tmp_path / "pbmc_03_clog" / "index.html").read_text())
    for text in ("pbmc_03_clog.fcs", "30,000, of which 995 in unstable acquisition-time bins",
                 "$SPILLOVER (14 detectors)", f"{summary['counting']['bead_events']:,} bead "
                 "events, 50000 beads per test, 50 uL", summary["template"]["digest"][:12]):
        assert text in page, text
    assert not any("can be excluded" in m for m in summary["qc_flags"])
    # every row of the tables carries the sample's status
    table = pd.read_csv(tmp_path / "pbmc_03_clog" / "populations.csv")
    assert list(table.columns[:2]) == ["sample", "qc_status"]
    assert set(table["qc_status"]) == {summary["status"]}
    combined = pd.read_csv(tmp_path / "populations.csv")
    assert set(combined["qc_status"]) == {summary["status"]}
    assert sum("were excluded from gating" in m for m in summary["qc_flags"]) == 1


def test_sample_information_for_no_sample_of_the_run_is_said(tmp_path):
    """'pbmc-01' typed for pbmc_01: the sample took its bead count from its keyword, and
    every cells/uL was 2.4 times off, without a word."""
    info = tmp_path / "counts.csv"
    info.write_text("sample,beads_per_test,volume_ul\npbmc-01,60000,25\n")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "--no-plots",
                                       "--no-anndata", "-o", str(tmp_path / "o"),
                                       "--sample-info", str(info)])
    assert result.exit_code == 0, result.output
    assert "the sample information name 1 sample(s) this run does not gate: pbmc-01" \
        in result.stderr


def test_bad_sample_info_names_line_and_column(tmp_path):
    info = tmp_path / "counts.csv"
    info.write_text("sample,lymphocytes_per_ul\npbmc_01,lots\n")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-o",
                                       str(tmp_path / "o"), "--sample-info", str(info)])
    assert result.exit_code == 2
    assert "line 2, column lymphocytes_per_ul" in result.output


@pytest.mark.parametrize("name", ["pbmc_01", "pbmc_03_clog"])
def test_outputs_equal_those_recorded_before_the_speed_work(gated, name):
    """Counts, percentages, per-event membership (read back from the .h5ad) and the
    plotted gates are those the gate job wrote before plots, AnnData and threads were
    made faster (tests/data/perf/record_outputs.py)."""
    import hashlib

    from immunomon.export import gate_membership

    out, _ = gated
    recorded = REPO / "tests" / "data" / "perf"
    ref = pd.read_csv(recorded / "gate_outputs.csv")
    ref = ref[ref["sample"] == name].set_index("population")
    table = pd.read_csv(out / name / "populations.csv").set_index("population")
    assert list(table.index) == list(ref.index)
    assert table["count"].tolist() == ref["count"].tolist()
    assert np.allclose(table["percent_of_parent"], ref["percent_of_parent"], rtol=1e-12,
                       equal_nan=True)
    members = gate_membership(anndata.read_h5ad(out / name / f"{name}.h5ad"))
    digests = [hashlib.sha1(np.packbits(members[p].to_numpy()).tobytes()).hexdigest()[:16]
               for p in ref.index]
    assert digests == ref["membership_sha1"].tolist()
    plots = pd.read_csv(recorded / "gate_plots.csv")
    assert sorted(p.name for p in (out / name / "plots").glob("*.png")) == \
        plots.loc[plots["sample"] == name, "file"].tolist()
    assert (out / name / "overview.png").is_file()


@pytest.mark.parametrize("flags, overview, per_gate", [
    (["--plots", "summary"], True, False),
    (["--plots", "none"], False, False),
    (["--no-plots"], False, False),
])
def test_plot_levels(tmp_path, flags, overview, per_gate):
    fcs = FIXTURES / "pbmc_02_shifted.fcs"
    result = CliRunner().invoke(main, ["gate", str(fcs), "--no-anndata", "-o",
                                       str(tmp_path), *flags])
    assert result.exit_code == 0, result.output
    folder = tmp_path / fcs.stem
    assert (folder / "overview.png").is_file() == overview
    assert (folder / "plots").exists() == per_gate
    page = (folder / "index.html").read_text()
    assert ('src="overview.png"' in page) == overview


def test_bad_plot_level_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-o",
                                       str(tmp_path), "--plots", "some"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'some' is not one of 'none', 'summary', 'all'" in result.output


def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path):
    """An output folder under a file (or on a full or read-only disk) is named in one
    line, with the system's reason, for gate and template check alike."""
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    for command in (["gate", "-t", "post-transplant", "--no-plots", "--no-anndata"],
                    ["template", "check", "-t", "post-transplant"]):
        proc = subprocess.run([sys.executable, "-m", "immunomon", *command,
                               str(FIXTURES / "pbmc_01.fcs"), "-o", str(blocker / "out")],
                              capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.startswith("error: ") and "results.txt" in proc.stderr
        assert "Not a directory" in proc.stderr
    assert blocker.read_text() == "not a folder"


def test_gating_with_the_default_template_says_so(tmp_path):
    """A docs-only scientist gated a mouse file without -t and got the human trial panel's
    left-out populations with no word of which template it was: a note names it."""
    args = ["gate", str(FIXTURES / "pbmc_01.fcs"), "--no-plots", "--no-anndata"]
    default = CliRunner().invoke(main, args + ["-o", str(tmp_path / "a")])
    assert default.exit_code == 0, default.output
    assert "note: no --template given: gating with the shipped 'post-transplant'" \
        in default.output
    named = CliRunner().invoke(main, args + ["-o", str(tmp_path / "b"), "-t",
                                             "post-transplant"])
    assert named.exit_code == 0 and "no --template given" not in named.output


def test_a_run_names_the_file_whose_shares_are_unlike_the_others(tmp_path):
    """A run of an LST tube over 36 files gated one file's granulocytes at 2.5% of the
    leukocytes where the others gave about 60%, and every file said 'ok'. As ``template
    check`` does, ``gate`` names a file whose share of a population's parent lies
    beyond the other files' (four or more); here four copies of a real export and one
    with two channels' names swapped, which makes its T cells mostly DN T."""
    from testdata import lst_files_one_swapped

    real = Path(__file__).resolve().parent / "data" / "real"
    lst_files_one_swapped(tmp_path)
    result = CliRunner().invoke(main, ["gate", *sorted(map(str, tmp_path.glob("*.fcs"))),
                                       "-t", str(real / "euroflow_lst.yaml"),
                                       "--out", str(tmp_path / "out"), "--no-plots"])
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.output.splitlines() if ln.startswith("note: ")]
    assert notes and all(ln.startswith("note: swapped: ") for ln in notes), result.output
    assert any("DN T is" in ln for ln in notes)
    # and the folder's index names it, first among the files of its status
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    marked = {r["sample"]: r.get("message", "") for r in index}
    assert marked["swapped"].startswith("unlike the other files: ") and "DN T" in marked["swapped"]
    assert not any(marked[f"lst_{k}"] for k in range(4))
    page = (tmp_path / "out" / "index.html").read_text()
    status = {r["sample"]: r["status"] for r in index}
    first = min((page.index(f">{name}<"), name) for name in status
                if status[name] == status["swapped"])[1]
    assert first == "swapped"
