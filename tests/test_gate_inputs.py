"""`immunomon gate` on the inputs labs really have: files from other panels and instruments,
bad counting inputs, non-finite events, repeated and concurrent runs into one folder.

Expected outcomes for the real files were worked out by hand from each file's channels
(tests/data/fcs/SOURCES.md) and each template's populations, not by running this code.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from immunomon import ImmunomonError, read_fcs, write_fcs
from immunomon.cli import main
from immunomon.gating.run import gate_files, gate_sample
from immunomon.gating.template import load_template

from testdata import COMPLIANCE, REAL_FCS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TEMPLATES = ("post-transplant", "t-treg-tube", "b-nk-tube", "dc-tube")
FIRST = ["Singlets", "Beads", "Non-beads", "Leukocytes"]

# file -> template -> the populations it supports (in template order), or the channel
# whose absence makes the file ungateable (every template's first gate is FSC-A x FSC-H).
EXPECTED = {
    "data1.fcs": "FSC-A",                              # FACSCalibur: FSC-H, SSC-H, FL1-4
    "cyflow_cube_8.fcs": "FSC-A",                      # CyFlow: FSC, SSC, FL1-6
    "catalyst_raw_01.fcs": "FSC-A",                    # CyTOF: ion counts, no scatter
    "facsdiva_test_subsample.fcs": "FSC-H",            # FACSDiva: FSC-A, FSC-W, no FSC-H
    "accuri_B01.fcs": {t: ["Singlets"] for t in TEMPLATES},   # scatter only
    "attune_G11_subsample.fcs": {t: ["Singlets"] for t in TEMPLATES},
    # CD19 from "CD19;APC-H7;780/60@640/A": the B/NK tube's bead channel
    "aria3_index_sorted.fcs": {"post-transplant": ["Singlets"], "t-treg-tube": ["Singlets"],
                               "b-nk-tube": FIRST, "dc-tube": ["Singlets"]},
    # CD3 CD4 CD8 CD19 CD127 and "VIVID / CD14", no CD45: nothing below Leukocytes (the
    # lymphocyte and granulocyte clusters need CD45, monocytes are found among non-granulocytes)
    "aria_100715_subsample.fcs": {"post-transplant": FIRST, "t-treg-tube": FIRST,
                                  "b-nk-tube": FIRST,
                                  "dc-tube": ["Singlets"]},     # its beads need CD11c
}


def _real_files() -> list[Path]:
    files = sorted(REAL_FCS.glob("*.fcs")) + [COMPLIANCE / "data1.fcs"]
    assert {f.name for f in files} == set(EXPECTED)
    return files


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_against_files_from_other_panels_and_instruments(template, tmp_path):
    files = _real_files()
    heavy = template == "post-transplant"          # plots and AnnData for one template
    run = gate_files(files, load_template(template), tmp_path, plots=heavy, anndata=heavy)
    rows = {Path(r["file"]).name: r for r in run.samples}
    for name, expected in EXPECTED.items():
        row = rows[name]
        assert "internal error" not in row["message"], row["message"]
        if isinstance(expected, str):                  # nothing to gate: a one-line error
            message = row["message"]
            assert row["status"] == "failed" and "\n" not in message
            assert message.startswith(str(row["file"])), message
            assert f"it lacks {expected}" in message and "cannot gate this file" in message
            assert not (tmp_path / Path(name).stem).exists()
            continue
        want = expected[template]
        got = run.table.loc[run.table["sample"] == Path(name).stem, "population"].tolist()
        assert got == want, (name, got)
        summary = json.loads((tmp_path / Path(name).stem / "summary.json").read_text())
        flag = next(f for f in summary["qc_flags"] if f.startswith("panel mismatch"))
        left_out = len(load_template(template).match(read_fcs(row["file"])).left_out)
        assert f"{left_out} population(s) left out" in flag
    combined = pd.read_csv(tmp_path / "populations.csv")
    assert set(combined["sample"]) == {Path(n).stem for n, e in EXPECTED.items()
                                       if not isinstance(e, str)}
    if heavy:
        assert (tmp_path / "aria_100715_subsample" / "aria_100715_subsample.h5ad").is_file()


def test_a_file_lacking_what_the_first_gate_needs_is_one_line_on_the_command_line(tmp_path):
    data1 = COMPLIANCE / "data1.fcs"
    result = CliRunner().invoke(main, ["gate", str(data1), "-o", str(tmp_path / "o"),
                                       "--no-plots", "--no-anndata"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(data1) in errors[0] and "FSC-A" in errors[0]
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "0 of 1 files gated" in result.output


@pytest.fixture(scope="module")
def without_cd45(tmp_path_factory):
    """pbmc_01 with its CD45 channel relabelled, and both files gated."""
    folder = tmp_path_factory.mktemp("relabel")
    sample = read_fcs(FIXTURES / "pbmc_01.fcs")
    i = sample.markers.index("CD45")
    channels = list(sample.channel_info)
    channels[i] = replace(channels[i], marker="PTPRC-x")
    keywords = {**sample.keywords, f"$P{i + 1}S": "PTPRC-x"}
    relabelled = write_fcs(folder / "no_cd45.fcs",
                           replace(sample, channel_info=tuple(channels), keywords=keywords))
    template = load_template("post-transplant")
    return (gate_sample(sample, template), gate_sample(read_fcs(relabelled), template))


def test_a_missing_marker_leaves_out_what_needs_it_and_nothing_else(without_cd45):
    full, partial = without_cd45
    kept = partial.table["population"].tolist()
    # Lymphocytes and Granulocytes use CD45; everything below them (T, B, NK) and what is
    # found among non-granulocytes (monocytes, dendritic cells) go with them.
    assert kept == ["Singlets", "Beads", "Non-beads", "Leukocytes"]
    both = full.table.set_index("population").loc[kept, "count"]
    assert partial.table.set_index("population")["count"].equals(both)
    flag = next(f for f in map(str, partial.qc_flags) if f.startswith("panel mismatch"))
    assert "lacks CD45" in flag and "Lymphocytes" in flag
    assert not any("refers to" in f for f in map(str, partial.qc_flags))
    # 4 populations of 37: not a tube of this panel (or CD45 named otherwise), a failure,
    # where a file lacking one marker of a few populations is a warning
    mismatch = next(f for f in partial.qc_flags if f.message.startswith("panel mismatch"))
    assert mismatch.level == "failure" and "under half of the template's" in mismatch.message


def test_a_file_lacking_a_marker_of_a_few_populations_is_a_warning(tmp_path):
    sample = read_fcs(FIXTURES / "pbmc_01.fcs")
    i = sample.markers.index("FoxP3")
    channels = list(sample.channel_info)
    channels[i] = replace(channels[i], marker="unused")
    without = replace(sample, channel_info=tuple(channels))
    gating = gate_sample(without, load_template("post-transplant"))
    (mismatch,) = [f for f in gating.qc_flags if f.message.startswith("panel mismatch")]
    assert mismatch.level == "warning" and "FoxP3+ Treg" in mismatch.message
    assert "under half" not in mismatch.message


def test_overrides_for_a_population_the_template_lacks_are_an_error(tmp_path):
    sample = read_fcs(FIXTURES / "pbmc_01.fcs")
    with pytest.raises(ImmunomonError, match="pbmc_01.fcs: the overrides name 'T-cells'"):
        gate_sample(sample, load_template("post-transplant"),
                    overrides={"T-cells": {"rectangle": {"bounds": [[0.5, None]]}}})


@pytest.mark.parametrize("gates, words", [
    ({"T-cells": {"rectangle": {"bounds": [[0.5, None]]}}}, "the overrides name 'T-cells'"),
    ({"T cells": {"rectangle": {"bounds": [[0.5]]}}}, "rectangle bounds must be one [min, max]"),
])
def test_the_gate_command_checks_overrides_before_gating_and_names_their_file(tmp_path, gates,
                                                                             words):
    # they were checked file by file, after the run had begun, and named the FCS file
    import yaml
    reviewed = tmp_path / "reviewed.yaml"
    reviewed.write_text(yaml.safe_dump({"pbmc_01": gates}))
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-o",
                                       str(tmp_path / "o"), "--overrides", str(reviewed)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{reviewed}, sample 'pbmc_01': " in result.output and words in result.output
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- counting inputs
@pytest.mark.parametrize("options, words", [
    (["--beads-per-test", "-5", "--volume", "0"], "--beads-per-test must be a number from 100"),
    (["--beads-per-test", "1e308"], "not 1e+308"),
    (["--volume", "inf"], "--volume must be a number from 1 to 1,000 (uL of sample stained), "
                          "not inf"),
    (["--volume", "nan"], "not nan"),
    (["--leukocytes-per-ul", "5.2"], "a count in 10^9/L times 1,000 gives cells per uL"),
    (["--lymphocytes-per-ul", "-1"], "--lymphocytes-per-ul must be a number"),
])
def test_bad_counting_options_stop_the_command_before_any_gating(options, words, tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-o", str(out),
                                       *options])
    assert result.exit_code == 2 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("cell, words", [
    ("nan", "not nan"), ("inf", "not inf"), ("-50", "not -50"), ("1e308", "not 1e+308"),
    ("0", "not 0"), ("lots", "not 'lots'"),
])
def test_bad_sample_info_values_name_file_line_and_column(cell, words, tmp_path):
    info = tmp_path / "counts.csv"
    info.write_text(f"sample,beads_per_test,volume_ul\npbmc_01,50000,50\npbmc_02,{cell},50\n")
    result = CliRunner().invoke(main, ["gate", str(FIXTURES / "pbmc_01.fcs"), "-o",
                                       str(tmp_path / "o"), "--sample-info", str(info)])
    assert result.exit_code == 2
    assert f"{info}, line 3, column beads_per_test: the value must be a number from 100" \
        in result.output and words in result.output, result.output


@pytest.fixture(scope="module")
def simulated():
    from immunomon import simulate
    return simulate.pbmc_sample(20_000, seed=11)


@pytest.mark.parametrize("value", ["1e308", "nan", "-inf", "-5", "0", "fifty thousand", ""])
def test_an_implausible_bead_keyword_is_a_flag_and_no_absolute_counts(simulated, value):
    sample = replace(simulated.sample,
                     keywords={**simulated.sample.keywords, "BEADS PER TEST": value})
    gating = gate_sample(sample, load_template("post-transplant"))
    assert gating.table["cells_per_ul"].isna().all()
    assert gating.counting["method"].startswith("none")
    flag = next(f for f in map(str, gating.qc_flags) if f.startswith("no single-platform"))
    assert "FCS keyword 'BEADS PER TEST' (beads_per_test) must be a number from 100" in flag


def test_a_plausible_bead_keyword_gives_the_single_platform_formula(simulated):
    gating = gate_sample(simulated.sample, load_template("post-transplant"))
    t = gating.table.set_index("population")
    assert gating.counting["beads_per_test"] == 50_000 and gating.counting["volume_ul"] == 50
    by_hand = t.loc["T cells", "count"] / t.loc["Beads", "count"] * 50_000 / 50
    assert t.loc["T cells", "cells_per_ul"] == pytest.approx(by_hand, rel=1e-12)
    assert not any(f.startswith("no single-platform") for f in map(str, gating.qc_flags))


def test_a_missing_volume_keyword_falls_back_to_the_analyser_count(simulated):
    keywords = {k: v for k, v in simulated.sample.keywords.items() if k != "SAMPLE VOLUME UL"}
    from immunomon.gating.run import CountingInputs
    gating = gate_sample(replace(simulated.sample, keywords=keywords),
                         load_template("post-transplant"),
                         counting=CountingInputs(lymphocytes_per_ul=1800))
    t = gating.table.set_index("population")
    assert gating.counting["method"].startswith("dual platform")
    assert t.loc["Lymphocytes", "cells_per_ul"] == 1800
    assert any("'SAMPLE VOLUME UL'" in f and "not in this file" in f for f in map(str, gating.qc_flags))


def test_counting_inputs_from_python_are_checked_too():
    from immunomon.gating.run import CountingInputs
    with pytest.raises(ImmunomonError, match="volume_ul must be a number"):
        CountingInputs(beads_per_test=50_000, volume_ul=float("inf"))


# ----------------------------------------------------------------------------- non-finite events
def test_non_finite_events_are_counted_flagged_and_left_out(simulated):
    sample = simulated.sample
    rng = np.random.default_rng(7)
    n = sample.n_events
    bead_channel = sample.channel_index("CD127")
    rows_inf = rng.choice(n, n // 100, replace=False)            # 1% inf in the bead channel
    rest = np.setdiff1d(np.arange(n), rows_inf)
    rows_nan = rng.choice(rest, 37, replace=False)                # and a few NaN elsewhere
    events = sample.events.copy()
    events[rows_inf, bead_channel] = np.inf
    events[rows_nan, sample.channel_index("CD3")] = np.nan
    corrupted = replace(sample, events=events)
    keep = np.ones(n, dtype=bool)
    keep[rows_inf] = keep[rows_nan] = False
    template = load_template("post-transplant")

    got = gate_sample(corrupted, template)
    # ground truth: the same file without those events, which hold only finite values
    want = gate_sample(replace(sample, events=sample.events[keep]), template)
    bad = len(rows_inf) + len(rows_nan)
    assert got.events_excluded - want.events_excluded == bad
    pd.testing.assert_frame_equal(got.table, want.table)
    filled = got.table[got.table["count"] > 0]
    means = [c for c in got.table if c.startswith(("mean ", "median "))]
    assert len(means) == 28 and np.isfinite(filled[means].to_numpy()).all()
    flag = next(f for f in map(str, got.qc_flags) if "non-finite" in f)
    assert flag.startswith(f"{bad:,} of {n:,} events") and "FITC-A 200" in flag
    assert "BV786-A 37" in flag
    truth_beads = int(simulated.mask("Beads")[keep].sum())
    assert got.table.set_index("population").loc["Beads", "count"] == \
        pytest.approx(truth_beads, rel=0.02)


# ----------------------------------------------------------------------------- messages, help
def test_a_ten_event_file_gets_messages_rounded_for_people(tmp_path):
    import re
    from immunomon import simulate
    sample = simulate.pbmc_sample(10, seed=0).sample
    gating = gate_sample(sample, load_template("post-transplant"))
    assert not [f for f in map(str, gating.qc_flags) if re.search(r"\d{8,}", f)], gating.qc_flags
    assert any(f.startswith("only 10 events: too few to compare acquisition time bins")
               for f in map(str, gating.qc_flags))


@pytest.mark.parametrize("events", ["none", "all NaN"])
def test_a_file_with_no_events_to_gate_is_a_failure_for_review(simulated, events):
    sample = simulated.sample
    empty = replace(sample, events=sample.events[:0] if events == "none" else
                    np.full_like(sample.events[:50], np.nan))
    gating = gate_sample(empty, load_template("post-transplant"))
    assert gating.status == "failure"
    assert [str(f) for f in gating.flags_at("failure")] == [
        "no events to gate: " + ("the file holds none" if events == "none"
                                 else "all 50 hold non-finite values")]
    assert (gating.table["count"] == 0).all()


def test_a_tot_keyword_damaged_smaller_is_a_warning_not_a_quiet_loss(small_files, tmp_path):
    # $TOT 2500 -> 2000 in place: the DATA segment holds 500 events more than declared;
    # the file is read as declared, and the sample's QC says what may be wrong
    import re
    files, _ = small_files
    data = files[0].read_bytes()
    match = re.search(rb"\$TOT(.)2500\1", data)
    damaged = tmp_path / "damaged.fcs"
    damaged.write_bytes(data[:match.start()] + match.group(0).replace(b"2500", b"2000")
                        + data[match.end():])
    gating = gate_sample(read_fcs(damaged), load_template("post-transplant"))
    assert gating.events_total == 2000 and gating.status in ("warning", "failure")
    warned = [str(f) for f in gating.flags_at("warning") if str(f).startswith("file: ")]
    assert len(warned) == 1 and "room for 500 more than $TOT declares" in warned[0]
    intact = gate_sample(read_fcs(files[0]), load_template("post-transplant"))
    assert not [f for f in intact.qc_flags if str(f).startswith("file: ")]


def test_the_library_takes_paths_names_and_gate_samples_result_as_given(small_files, tmp_path):
    # an analyst's first calls: a path and a template name; the SampleGating handed on
    # to the AnnData and plot functions (they raised AttributeError)
    from immunomon import to_anndata
    from immunomon.report.gate_plots import plot_gate, plot_summary
    files, _ = small_files
    by_path = gate_sample(str(files[0]), "post-transplant")
    by_objects = gate_sample(read_fcs(files[0]), load_template("post-transplant"))
    pd.testing.assert_frame_equal(by_path.table, by_objects.table)
    adata = to_anndata(by_path)
    assert adata.n_obs == 2500 and adata.obsm["gates"].shape[1] == len(by_path.result.gate_ids)
    assert plot_summary(by_path, tmp_path / "all.png").is_file()
    assert plot_gate(by_path, "Lymphocytes", tmp_path / "lymph.png").is_file()
    with pytest.raises(ImmunomonError, match="gate_sample takes a Sample .* got DataFrame"):
        gate_sample(pd.DataFrame({"CD3": [1.0]}), "post-transplant")
    with pytest.raises(ImmunomonError, match="no template named 'post-transplnt'"):
        gate_sample(files[0], "post-transplnt")
    # the other first mistakes name what is wanted
    with pytest.raises(ImmunomonError, match="read from its path .* not DataFrame"):
        read_fcs(pd.DataFrame())
    with pytest.raises(ImmunomonError, match="read from its path .* not NoneType"):
        read_fcs(None)
    with pytest.raises(ImmunomonError, match="a template is a shipped template's name"):
        load_template(read_fcs(files[0]))
    with pytest.raises(ImmunomonError, match=r"sample.events\[:, i\] gives column i"):
        read_fcs(files[0])[0]
    assert load_template(load_template("post-transplant")).panel


def test_an_output_folder_that_cannot_be_written_is_not_called_an_internal_error(
        small_files, tmp_path, monkeypatch):
    # a read-only or full results folder: "internal error ... please report it" sent a
    # facility to report its own disk
    import errno
    from immunomon.gating import run
    files, _ = small_files

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "out" / "S0"))
    monkeypatch.setattr(run, "write_sample", read_only)
    row, table = run.gate_file(files[0], load_template("post-transplant"), tmp_path / "out",
                               name="S0")
    assert table is None and row["error"] == "output"
    assert row["message"] == (f"{files[0]}: its results cannot be written (Read-only file "
                              f"system: {tmp_path / 'out' / 'S0'})")


def test_flow_rate_against_a_zero_usual_rate_is_plain_words():
    from immunomon.fmt import number, ratio_percent
    assert ratio_percent(7e6, 1e-300) == "7,000,000 against a usual 1e-300"
    assert ratio_percent(7, 0) == "7 against a usual 0"
    assert ratio_percent(45, 100) == "45% of the usual"
    assert ratio_percent(1234.5, 1) == "1,234 times the usual"
    assert number(50000.0) == "50,000" and number(1e308) == "1e+308"


def test_a_place_on_a_scatter_scale_reads_without_an_exponent():
    """A forward-scatter cut in a gate's note read '1.066e+05'; four significant digits
    stay, the exponent goes."""
    from immunomon.fmt import position
    assert position(106_612.3) == "106,600" and position(-25_049.9) == "-25,050"
    assert position(0.45303) == "0.453" and position(2.5e-5) == "2.5e-05"
    assert position(4095.6) == "4096" and position(float("inf")) == "inf"


@pytest.mark.parametrize("command", [[], ["gate"]])
def test_the_help_example_gates_the_three_fixture_files(command):
    import glob
    import shlex
    from immunomon.gating.run import find_fcs_files
    text = CliRunner().invoke(main, [*command, "--help"]).output
    example = next(line.strip() for line in text.splitlines()
                   if line.strip().startswith("immunomon gate fixtures"))
    args = shlex.split(example)[2:]
    inputs = [a for a in args[:args.index("--template")]]
    root = FIXTURES.parent
    files = find_fcs_files([p for a in inputs for p in sorted(glob.glob(str(root / a)))])
    assert [f.name for f in files] == ["pbmc_01.fcs", "pbmc_02_shifted.fcs", "pbmc_03_clog.fcs"]


# ---------------------------------------------------------------------------- one folder, many runs
@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """Four small simulated tubes of the 14-colour panel, and a broken file."""
    from immunomon import simulate
    folder = tmp_path_factory.mktemp("small")
    files = [write_fcs(folder / f"S{i}.fcs", simulate.pbmc_sample(2500, seed=20 + i).sample)
             for i in range(4)]
    (folder / "broken.fcs").write_bytes(b"FCS3.1    not an FCS file")
    return files, folder / "broken.fcs"


def _gate(files, out, template="post-transplant", **kw):
    return gate_files(files, load_template(template), out, plots=False, anndata=False, **kw)


def _listed(out) -> tuple[list[str], list[str], dict[str, str]]:
    table = pd.read_csv(out / "populations.csv")
    index = json.loads((out / "index.json").read_text())
    return (sorted(set(table["sample"])), [r["sample"] for r in index],
            {r["sample"]: r["status"] for r in index})


def test_repeated_runs_into_one_folder_list_every_sample(small_files, tmp_path):
    files, broken = small_files
    out = tmp_path / "out"
    _gate(files[:2], out)
    _gate(files[2:3], out)                                        # a second run, another file
    samples, index, _ = _listed(out)
    assert samples == index == ["S0", "S1", "S2"]
    page = (out / "index.html").read_text()
    assert all(f">{s}</a>" in page for s in samples) and "3 samples" in page
    per_sample = sum(len(pd.read_csv(out / s / "populations.csv")) for s in samples)

    _gate([files[0], broken], out)                                # S0 again, and a bad file
    samples, index, status = _listed(out)
    assert samples == ["S0", "S1", "S2"] and index == ["S0", "S1", "S2", "broken"]
    assert len(pd.read_csv(out / "populations.csv")) == per_sample   # S0 replaced, not doubled
    assert status["broken"] == "failed"
    _gate(files[3:], out)                                         # the failure is remembered
    samples, index, status = _listed(out)
    assert samples == ["S0", "S1", "S2", "S3"] and status["broken"] == "failed"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_two_files_of_one_name_keep_their_own_folders_over_runs(small_files, tmp_path):
    # day1/tube.fcs and day2/tube.fcs gated together are "tube" and "tube_"; gating day2
    # again alone once wrote its results into "tube", and day1's were gone
    import shutil
    files, _ = small_files
    day1, day2 = tmp_path / "day1" / "tube.fcs", tmp_path / "day2" / "tube.fcs"
    for src, dst in ((files[0], day1), (files[1], day2)):
        dst.parent.mkdir()
        shutil.copy(src, dst)
    out = tmp_path / "out"
    _gate([day1, day2], out)
    first = {s: pd.read_csv(out / s / "populations.csv") for s in ("tube", "tube_")}
    _gate([day2], out)
    _gate([day1], out)
    samples, index, _ = _listed(out)
    assert samples == index == ["tube", "tube_"]
    for s, table in first.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / s / "populations.csv"), table)
    assert json.loads((out / "tube" / "summary.json").read_text())["file"] == str(day1)


def test_a_run_with_another_template_is_refused_and_changes_nothing(small_files, tmp_path):
    files, _ = small_files
    out = tmp_path / "out"
    _gate(files[:1], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ImmunomonError) as err:
        _gate(files[1:2], out, template="t-treg-tube")
    message = str(err.value)
    assert message.startswith(f"{out}: holds results gated with template 'Post-transplant")
    assert "this run uses 'T and regulatory T cells tube'" in message
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    result = CliRunner().invoke(main, ["gate", str(files[1]), "-t", "t-treg-tube", "-o",
                                       str(out), "--no-plots", "--no-anndata"])
    assert result.exit_code == 2 and "never combined" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_a_template_edited_under_the_same_version_is_refused(small_files, tmp_path):
    """Same panel and version, other gates: the folder would mix two templates' results.
    Comments and layout are not gates."""
    from immunomon.gating.template import builtin_templates
    files, _ = small_files
    text = builtin_templates()["post-transplant"].read_text(encoding="utf-8")
    commented, edited = tmp_path / "commented.yaml", tmp_path / "edited.yaml"
    commented.write_text("# our copy\n" + text.replace("args: {n_mad: 4}",
                                                        "args: {n_mad: 4}   # singlets"))
    edited.write_text(text.replace("args: {n_mad: 4}", "args: {n_mad: 5}"))
    assert load_template(commented).digest == load_template("post-transplant").digest
    assert load_template(edited).digest != load_template("post-transplant").digest
    out = tmp_path / "out"
    _gate(files[:1], out)
    _gate(files[1:2], out, template=commented)                    # the same gates
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ImmunomonError) as err:
        _gate(files[2:3], out, template=edited)
    assert str(err.value).startswith(
        f"{out}: holds results gated with template 'Post-transplant")
    assert "before its gates were edited (2 sample(s)" in str(err.value)
    assert "new version" in str(err.value) and "never combined" in str(err.value)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_second_run_waits_for_the_folder_or_stops_with_a_message(small_files, tmp_path):
    from contextlib import ExitStack
    from immunomon.atomic import folder_lock
    files, _ = small_files
    out = tmp_path / "out"
    out.mkdir()
    held = ExitStack()
    held.enter_context(folder_lock(out))                      # a first run, in progress
    result = CliRunner().invoke(main, ["gate", str(files[0]), "-o", str(out), "--no-plots",
                                       "--no-anndata", "--no-wait"])
    assert result.exit_code == 2, result.output
    assert f"{out}: another immunomon run is writing into this folder (pid " in result.output
    assert not (out / "S0").exists()
    waited = []

    def first_run_finishes(holder):                           # called while the run waits
        waited.append(holder)
        held.close()

    run = _gate(files[:1], out, on_wait=first_run_finishes)
    assert run.ok and len(waited) == 1 and waited[0].startswith("pid ")
    assert _listed(out)[1] == ["S0"]


def test_concurrent_runs_into_one_folder(small_files, tmp_path):
    import subprocess
    import sys
    files, _ = small_files
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "immunomon", "gate", *map(str, part),
                               "-o", str(out), "--no-plots", "--no-anndata"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for part in (files[:2], files[2:])]
    outputs = [p.communicate() for p in procs]
    for proc, (stdout, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr
        assert "internal error" not in stderr and "Traceback" not in stderr
    samples, index, _ = _listed(out)
    assert samples == index == ["S0", "S1", "S2", "S3"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_folder_with_a_dangling_link_and_an_upload_in_progress(tmp_path):
    # a core facility's trial: a link whose upload was moved was left out without a
    # word, and a hidden upload still being copied (.x.fcs) was gated, unlike in a batch
    from immunomon.batch.inbox import scan_inbox
    from immunomon.gating.run import find_fcs_files
    from immunomon.simulate import pbmc_sample

    inbox = tmp_path / "inbox"
    (inbox / "P01").mkdir(parents=True)
    write_fcs(inbox / "P01" / "tube.fcs", pbmc_sample(300, seed=1).sample)
    (inbox / "P01" / ".tube2.fcs").write_bytes((inbox / "P01" / "tube.fcs").read_bytes())
    (inbox / "P01" / "moved.fcs").symlink_to(tmp_path / "elsewhere.fcs")
    assert [p.name for p in find_fcs_files([inbox])] == ["moved.fcs", "tube.fcs"]
    dangling: list = []
    assert [p.name for p in scan_inbox(inbox, dangling=dangling)] == ["tube.fcs"]
    assert dangling == [f"{inbox / 'P01' / 'moved.fcs'}: a link to "
                        f"{tmp_path / 'elsewhere.fcs'}, which does not exist; left out"]
    result = CliRunner().invoke(main, ["gate", str(inbox), "-o", str(tmp_path / "out"),
                                       "--no-plots", "--no-anndata"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "moved.fcs" in result.output
    assert (tmp_path / "out" / "tube" / "populations.csv").is_file()
    assert not (tmp_path / "out" / "tube2").exists()
