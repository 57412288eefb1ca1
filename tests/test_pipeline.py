"""Study pipelines: the YAML format, and `immunomon run` end to end on a tiny trial."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from immunomon import pipeline, simulate as sim
from immunomon.cli import main
from immunomon.pipeline import PipelineError, load_study, parse_study, run_pipeline

STUDY = """\
study: tiny
out: results
inputs:
  manifest: study/manifest.csv
  fcs: study/fcs
  template: post-transplant
  str: study/str
  references:
    donor: study/str/{patient}_donor.txt
    recipient: study/str/{patient}_recipient.txt
  kit: Identifiler
  clinical: study/clinical
stages:
  gate: {plots: false, anndata: false}
  chimerism: {quantity: area}
  cohort: {file: cohort.nc}
"""


# ----------------------------------------------------------------------------- the YAML
def test_paths_are_relative_to_the_study_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(STUDY)
    study = load_study(path)
    assert study.inputs["manifest"] == tmp_path / "sub" / "study" / "manifest.csv"
    assert study.out == tmp_path / "sub" / "results"
    assert study.inputs["template"] == "post-transplant"         # a built-in name
    assert study.inputs["references"]["donor"].endswith("study/str/{patient}_donor.txt")
    assert list(study.stages) == ["gate", "chimerism", "cohort"]


def test_shipped_demo_study_is_valid():
    study = load_study(pipeline.Path(__file__).parents[1] / "pipelines" / "demo.yaml")
    assert list(study.stages) == list(pipeline.STAGES)
    assert study.inputs["kit"] == "Identifiler"


def test_the_analysis_plan_comes_from_the_study_file():
    """A study of other visits and populations declares them; what it leaves out is the
    demo trial's plan, and the stage's seed is the plan's."""
    from immunomon.analysis.questions import Plan

    text = STUDY + ("  analysis:\n    seed: 7\n    baseline_visit: D30\n"
                    "    primary_visit: D90\n    populations: [CD4 T, CD8 T]\n"
                    "    shares: [[CD8 T, T cells]]\n    primary_counts: [CD8 T]\n"
                    "    primary_shares: [[CD4 T, T cells]]\n")
    study = parse_study(text, "s.yaml")
    plan = pipeline._analysis_plan(study.stages["analysis"])
    assert (plan.baseline_visit, plan.primary_visit, plan.seed) == ("D30", "D90", 7)
    assert plan.populations == ("CD4 T", "CD8 T")
    assert plan.shares == (("CD8 T", "T cells"),) and plan.primary_counts == ("CD8 T",)
    assert plan.landmark_day == Plan().landmark_day
    assert pipeline._analysis_plan({}) == Plan()


@pytest.mark.parametrize("old,new,message", [
    ("  kit: Identifiler", "  kit: Identifiler\n  kits: x", "line 12: unknown field inputs.'kits'"),
    ("  chimerism: {quantity: area}", "  chimerism: {quantity: volume}",
     "line 15: stages.chimerism.quantity must be one of area, height"),
    ("  gate: {plots: false, anndata: false}", "  gate: {plots: 3}",
     "line 14: stages.gate.plots must be true or false"),
    ("    donor: study/str/{patient}_donor.txt", "    donor: study/str/donor.txt",
     "line 9: inputs.references.donor must contain {patient}"),
    ("  cohort: {file: cohort.nc}", "  cohorts: {}", "line 16: unknown stage 'cohorts'"),
    ("  fcs: study/fcs\n", "", "stage gate needs inputs.fcs"),
    ("stages:", "stages: [", "not valid YAML"),
    ("  cohort: {file: cohort.nc}", "  cohort: {file: cohort.csv}",
     "line 16: stages.cohort.file must end in .nc or .zarr"),
    ("  gate: {plots: false, anndata: false}", "  gate: {beads_per_test: -5}",
     "line 14: stages.gate.beads_per_test must be a number from 100"),
    ("  gate: {plots: false, anndata: false}", "  gate: {volume_ul: .inf}",
     "line 14: stages.gate.volume_ul must be a number from 1 to 1,000"),
    # a choice's allowed values are said as the file spells them (a traceback before)
    ("  gate: {plots: false, anndata: false}", "  gate: {plots: maybe}",
     "line 14: stages.gate.plots must be one of true, false, none, summary, all"),
    ("  gate: {plots: false, anndata: false}", "  gate: {workers: 0}",
     "line 14: stages.gate.workers must be 1 or more"),
    # the chimerism stage's ranges are checked before the gate stage runs
    ("  chimerism: {quantity: area}", "  chimerism: {full_donor: .nan}",
     "line 15: stages.chimerism.full_donor must be a number from 0 to 100"),
    # the analysis plan, declared in the study file, is checked before any stage runs
    ("  cohort: {file: cohort.nc}", "  cohort: {file: cohort.nc}\n  analysis:\n"
     "    landmark_day: -3", "line 18: stages.analysis: landmark_day must be a positive"),
    ("  cohort: {file: cohort.nc}", "  cohort: {file: cohort.nc}\n  analysis:\n"
     "    shares: [[CD4 T]]", "line 18: stages.analysis: shares must be a list of "
     "[population, parent] pairs"),
    ("  cohort: {file: cohort.nc}", "  cohort: {file: cohort.nc}\n  analysis:\n"
     "    populations: CD4 T", "line 18: stages.analysis.populations must be a list"),
])
def test_invalid_study_files_name_line_and_field(old, new, message):
    text = STUDY.replace(old, new)
    assert text != STUDY
    with pytest.raises(PipelineError, match="s.yaml") as err:
        parse_study(text, "s.yaml")
    assert message in str(err.value)


PROTOCOL = """\
protocol:
  drug: lenalidomide
  dose_levels: [10, 5, 2.5]
  ctcae_version: "3.0"
  horizon_days: 365
  criteria:
    - ae_at_lowest_dose: {grades: [3, 4]}
    - transplant_related_death
  stopping: {p0: 0.3, threshold: 0.9, prior: [0.6, 1.4], max_patients: 13}
"""


def test_protocol_section_is_read():
    study = parse_study(STUDY + PROTOCOL, "s.yaml")
    assert study.protocol["dose_levels"] == [10, 5, 2.5]
    from immunomon.clinical.protocol import Protocol
    p = Protocol.from_settings(study.protocol)
    assert p.lowest_dose == 2.5 and p.criteria[0] == ("ae_at_lowest_dose", {"grades": (3, 4)})
    demo = load_study(pipeline.Path(__file__).parents[1] / "pipelines" / "demo.yaml")
    assert [n for n, _ in Protocol.from_settings(demo.protocol).criteria] == [
        "ae_at_lowest_dose", "steroid_refractory_agvhd", "steroid_refractory_cgvhd",
        "transplant_related_death"]


@pytest.mark.parametrize("old,new,message", [
    ("  drug: lenalidomide", "  drugs: lenalidomide", "line 18: unknown field protocol.'drugs'"),
    ("    - transplant_related_death", "    - grade_5_ae",
     "unknown primary-endpoint criterion 'grade_5_ae'"),
    ("prior: [0.6, 1.4]", "prior: [0.6]", "line 25: protocol.stopping.prior must be [a, b]"),
    ("p0: 0.3", "p0: 1.3", "p0 must lie between 0 and 1"),
    ("  ctcae_version: \"3.0\"", "  ctcae_version: \"4.03\"",
     "CTCAE version '4.03' is not supported"),
    ("  dose_levels: [10, 5, 2.5]", "  dose_levels: [10, five]",
     "line 19: protocol.dose_levels must be a list of numbers"),
])
def test_invalid_protocol_sections_name_line_and_field(old, new, message):
    text = (STUDY + PROTOCOL).replace(old, new)
    assert text != STUDY + PROTOCOL
    with pytest.raises(PipelineError, match="s.yaml") as err:
        parse_study(text, "s.yaml")
    assert message in str(err.value)


def test_protocol_needs_the_clinical_tables():
    text = (STUDY + PROTOCOL).replace("  clinical: study/clinical\n", "")
    with pytest.raises(PipelineError, match="protocol section needs inputs.clinical"):
        parse_study(text, "s.yaml")


def test_yaml_is_loaded_safely():
    with pytest.raises(PipelineError, match="not valid YAML"):
        parse_study("study: !!python/object/apply:os.system ['true']\n", "s.yaml")


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 patients, visits pre/M1/M2, 1,500 events per FCS file."""
    root = tmp_path_factory.mktemp("pipeline")
    trial = sim.trial(2, n_patients=3)
    keep = trial.manifest[trial.manifest["visit"].isin(["pre", "M1", "M2"])]
    trial = dataclasses.replace(trial, manifest=keep.reset_index(drop=True))
    sim.write_trial(trial, root / "study", events_per_sample=1500)
    (root / "tiny.yaml").write_text(STUDY)
    return root, trial


def _run(root, **kw):
    messages = []
    result = run_pipeline(root / "tiny.yaml", progress=lambda s, m: messages.append((s, m)),
                          **kw)
    return result, messages


@pytest.mark.slow
def test_pipeline_runs_skips_and_reruns_from_the_changed_stage(tiny):
    root, trial = tiny
    out = root / "results"
    first, messages = _run(root)
    assert first.ran == ["gate", "chimerism", "cohort"]
    assert ("gate", "running") in messages
    # one line per file: index, name, status, events, seconds
    per_file = [m for s, m in messages if s == "gate" and "/" in m and " events, " in m]
    assert len(per_file) == 9
    assert all(re.fullmatch(r"\d/9 P0\d_\w+: (ok|warning|failure), [\d,]+ events, \d+\.\d s", m)
               for m in per_file), per_file
    state = json.loads((out / ".pipeline.json").read_text())
    assert set(state["stages"]) == {"gate", "chimerism", "cohort"}

    from immunomon.cohort import load
    cohort = load(out / "cohort" / "cohort.nc")
    ds = cohort.dataset
    assert sorted(map(str, ds["patient"].values)) == ["P01", "P02", "P03"]
    # chimerism against the simulator's truth
    visits = ["pre", "M1", "M2"]
    for row in trial.chimerism[trial.chimerism["visit"].isin(visits)].itertuples():
        got = float(ds["donor_chimerism_percent"].sel(patient=row.patient_id,
                                                      timepoint=row.visit,
                                                      lineage=row.lineage))
        assert got == pytest.approx(row.percent_donor, abs=3.0)
    # gated lymphocytes against the true counts the files were drawn from
    truth = trial.immune[(trial.immune["population"] == "Lymphocytes")
                         & trial.immune["visit"].isin(visits)]
    for row in truth.itertuples():
        got = float(ds["cells_per_ul"].sel(patient=row.patient_id, timepoint=row.visit,
                                           population="Lymphocytes"))
        assert got == pytest.approx(row.cells_per_ul, rel=0.3)
    # how much each count turns on its cuts, from each sample's table: a small share for
    # the singlet band (a clear valley before the doublets), one for a threshold's
    near = ds["percent_near_cut"]
    assert near.attrs["units"] == "%"
    assert (near.sel(population="Singlets") < 5).all()
    assert float(near.sel(population="T cells").max()) >= 0
    table = pd.read_csv(out / "gate" / "P01_M1" / "populations.csv").set_index("population")
    assert float(near.sel(patient="P01", timepoint="M1", population="CD4 T")) == \
        pytest.approx(table.loc["CD4 T", "percent_near_cut"])

    second, messages = _run(root)
    assert second.ran == [] and second.skipped == ["gate", "chimerism", "cohort"]
    assert all("skipped" in m for _, m in messages)

    # a changed STR export: chimerism and cohort rerun, gating is kept
    export = root / "study" / keep_first_str(trial)
    export.write_text(export.read_text() + "\n")
    third, _ = _run(root)
    assert third.skipped == ["gate"] and third.ran == ["chimerism", "cohort"]

    # a clinical table with an error: the cohort stage fails, the others are kept
    ae = root / "study" / "clinical" / "adverse_events.csv"
    good = ae.read_text()
    lines = good.splitlines()
    cells = lines[1].split(",")
    cells[2] = "7"                                  # CTCAE grade 7 does not exist
    ae.write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    try:
        with pytest.raises(PipelineError) as err:
            _run(root)
        text = str(err.value)
        assert "stage cohort failed" in text and "adverse_events.csv" in text
        assert "row 2" in text and "grade" in text
        state = json.loads((out / ".pipeline.json").read_text())
        assert set(state["stages"]) == {"gate", "chimerism"}
        assert (out / "gate" / "populations.csv").is_file()
        assert (out / "chimerism").is_dir()
        assert (out / "cohort" / "cohort.nc").is_file()     # the last complete cohort
    finally:
        ae.write_text(good)
    fourth, _ = _run(root)
    assert fourth.ran == ["cohort"]

    # the command: skips everything, then --force reruns everything
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(root / "tiny.yaml"), "--json"])
    assert res.exit_code == 0, res.output
    stages = json.loads(res.output)["stages"]
    assert [s["status"] for s in stages] == ["skipped"] * 3
    res = runner.invoke(main, ["run", str(root / "tiny.yaml"), "--force",
                               "--out", str(root / "other")])
    assert res.exit_code == 0, res.output
    assert "cohort: ran" in res.output and (root / "other" / "cohort" / "cohort.nc").is_file()


def _patched_inputs(study):
    """The stages' inputs from the (monkeypatched) input functions, nothing checked."""
    return {name: pipeline._INPUT_FUNCS[name](study) for name in study.stages}


def keep_first_str(trial):
    return trial.manifest.loc[trial.manifest["kind"] == "str", "file"].iloc[0]


def test_every_missing_input_is_reported_before_any_stage_runs(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    with pytest.raises(PipelineError) as err:
        run_pipeline(tmp_path / "s.yaml")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 's.yaml'}: nothing was run")
    for key in ("manifest", "fcs", "str", "clinical"):
        assert f"inputs.{key}: {tmp_path / 'study'}" in message, key
    assert not (tmp_path / "results").exists()       # nothing run, nothing made
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and "nothing was run" in res.output


def test_a_missing_reference_of_a_later_stage_stops_the_run_before_gating(tmp_path,
                                                                            monkeypatch):
    trial = sim.trial(3, n_patients=2)
    sim.write_trial(trial, tmp_path / "study", events_per_sample=300)
    (tmp_path / "study" / "str" / "P02_donor.txt").unlink()
    (tmp_path / "s.yaml").write_text(STUDY)
    ran = []
    monkeypatch.setattr(pipeline, "_RUNNERS", {k: (lambda *a, k=k: ran.append(k))
                                               for k in pipeline._RUNNERS})
    with pytest.raises(PipelineError, match=r"stage chimerism: 1 input file\(s\) not found: "
                                            r".*P02_donor.txt") as err:
        run_pipeline(tmp_path / "s.yaml")
    assert ran == [] and "nothing was run" in str(err.value)


def test_unknown_template_stops_the_run_before_any_stage(tmp_path):
    trial = sim.trial(3, n_patients=1)
    sim.write_trial(trial, tmp_path / "study", events_per_sample=300)
    (tmp_path / "s.yaml").write_text(STUDY.replace("template: post-transplant",
                                                   "template: post-transplnt"))
    with pytest.raises(PipelineError, match="stage gate: no template named 'post-transplnt'"):
        run_pipeline(tmp_path / "s.yaml")


def test_a_new_immunomon_version_reruns_every_stage(tmp_path, monkeypatch):
    import immunomon
    text = STUDY.replace("  gate: {plots: false, anndata: false}\n", "") \
                .replace("  chimerism: {quantity: area}\n", "")
    (tmp_path / "s.yaml").write_text(text)
    ran = []

    def cohort(study, settings, work, progress):
        ran.append(immunomon.__version__)
        work.mkdir()
        return {}

    monkeypatch.setattr(pipeline, "_RUNNERS", {**pipeline._RUNNERS, "cohort": cohort})
    monkeypatch.setattr(pipeline, "_checked_inputs", lambda s: {"cohort": {"files": {}}})
    assert run_pipeline(tmp_path / "s.yaml").ran == ["cohort"]
    assert run_pipeline(tmp_path / "s.yaml").skipped == ["cohort"]
    monkeypatch.setattr(immunomon, "__version__", "99.0")
    assert run_pipeline(tmp_path / "s.yaml").ran == ["cohort"]
    state = json.loads((tmp_path / "results" / ".pipeline.json").read_text())
    assert state["stages"]["cohort"]["immunomon"] == "99.0"
    assert ran == [ran[0], "99.0"] and ran[0] != "99.0"


def test_analysis_stage_is_skipped_with_a_note_when_unavailable(tmp_path, monkeypatch):
    text = STUDY.replace("  gate: {plots: false, anndata: false}\n", "") \
                .replace("  chimerism: {quantity: area}\n", "").replace(
        "  cohort: {file: cohort.nc}", "  cohort: {file: cohort.nc}\n  analysis: {seed: 1}")
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.setattr(pipeline, "_analysis_available", lambda: False)
    monkeypatch.setattr(pipeline, "_INPUT_FUNCS", {**pipeline._INPUT_FUNCS,
                                                   "cohort": lambda s: {}})
    monkeypatch.setattr(pipeline, "_RUNNERS", {**pipeline._RUNNERS,
                                               "cohort": lambda s, st, w, p: w.mkdir() or {}})
    monkeypatch.setattr(pipeline, "_checked_inputs", _patched_inputs)
    result = run_pipeline(tmp_path / "s.yaml")
    assert [(s.name, s.status) for s in result.stages] == [("cohort", "ran"),
                                                           ("analysis", "unavailable")]
    assert "not installed" in result.stages[1].message


def test_state_file_is_rewritten_after_each_stage(tmp_path, monkeypatch):
    """A stage that fails after another completed leaves the first one's state."""
    text = STUDY.replace("  gate: {plots: false, anndata: false}\n", "")
    (tmp_path / "s.yaml").write_text(text)
    calls = []

    def ok(study, settings, work, progress):
        calls.append("chimerism")
        (work / "P01").mkdir()
        return {"samples": 0}

    def boom(study, settings, work, progress):
        raise PipelineError("no cohort today")

    monkeypatch.setattr(pipeline, "_INPUT_FUNCS", {**pipeline._INPUT_FUNCS,
                                                   "chimerism": lambda s: {"x": 1},
                                                   "cohort": lambda s: {"y": 2}})
    monkeypatch.setattr(pipeline, "_RUNNERS", {**pipeline._RUNNERS, "chimerism": ok,
                                               "cohort": boom})
    monkeypatch.setattr(pipeline, "_checked_inputs", _patched_inputs)
    with pytest.raises(PipelineError, match="stage cohort failed: no cohort today"):
        run_pipeline(tmp_path / "s.yaml")
    state = json.loads((tmp_path / "results" / ".pipeline.json").read_text())
    assert list(state["stages"]) == ["chimerism"]
    assert (tmp_path / "results" / "chimerism" / "P01").is_dir()
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(PipelineError):
        run_pipeline(tmp_path / "s.yaml")
    assert calls == ["chimerism"]                  # the second run skipped it


# ----------------------------------------------------------------------------- simulated inputs
SIMULATED = STUDY + "simulate:\n  trial: {seed: 5, events_per_sample: 1000}\n"


def test_simulated_fcs_files_are_written_on_first_use_and_reused(tmp_path):
    import hashlib

    trial = sim.trial(5)
    sim.write_trial(trial, tmp_path / "study", fcs=False)
    path = tmp_path / "s.yaml"
    path.write_text(SIMULATED)
    study = load_study(path)
    assert study.simulate == {"trial": {"seed": 5, "events_per_sample": 1000}}
    messages = []
    written = pipeline.simulated_inputs(study, lambda stage, m: messages.append(m))
    listed = trial.manifest.loc[trial.manifest["kind"] == "fcs", "file"]
    assert sorted(p.relative_to(tmp_path / "study").as_posix() for p in written) == \
        sorted(listed)
    assert "writing 77 simulated FCS files (1,000 events each)" in messages[0]
    first = tmp_path / "study" / listed.iloc[0]
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert pipeline.simulated_inputs(study) == []             # cached: nothing to write
    first.unlink()
    assert pipeline.simulated_inputs(study) == [first]        # only the missing file
    assert hashlib.sha256(first.read_bytes()).hexdigest() == digest
    # the same file as the whole-trial writer makes
    other = sim.write_trial_fcs(trial, tmp_path / "again", events_per_sample=1000)
    assert other[0].read_bytes() == first.read_bytes()
    # files written by other settings (or another immunomon) are written again, all of them
    path.write_text(SIMULATED.replace("events_per_sample: 1000", "events_per_sample: 1200"))
    again = pipeline.simulated_inputs(load_study(path))
    assert len(again) == len(listed) and first.read_bytes() != other[0].read_bytes()
    stamp = json.loads((tmp_path / "study" / "fcs" / pipeline.SIMULATED_STAMP).read_text())
    assert stamp["events_per_sample"] == 1200 and stamp["seed"] == 5


@pytest.mark.parametrize("old,new,message", [
    ("events_per_sample: 1000", "events_per_sample: 10", "must lie between 1,000"),
    ("{seed: 5, events_per_sample: 1000}", "{seed: 5}", "simulate.trial.events_per_sample "
                                                         "is missing"),
    ("  fcs: study/fcs", "  fcs: elsewhere", "inputs.fcs must name that folder"),
    ("  trial: {", "  trials: {", "unknown field simulate.'trials'"),
])
def test_invalid_simulate_settings(old, new, message):
    with pytest.raises(PipelineError, match="s.yaml") as err:
        parse_study(SIMULATED.replace(old, new), "s.yaml")
    assert message in str(err.value)


def test_anonymised_str_exports_reach_the_cohort_under_the_manifests_names(tmp_path):
    """Rchimerism's real exports call every sample "xxxxxxxxxxxxxxxxx": each manifest row
    names its export file and a sample name of its own, which the chimerism results and
    the cohort then carry; a row the exports do not hold is named in the run's output."""
    import shutil

    real = Path(__file__).parent / "data" / "chimerism" / "rchimerism" / "single"
    study = tmp_path / "study"
    shutil.copytree(real, study / "str")
    for person, name in (("donor", "ddata.txt"), ("recipient", "rdata.txt")):
        shutil.copy(real / name, study / "str" / f"P01_{person}.txt")
    rows = [("08_22_19/cd3_SELECT/sdata.txt", "D60", "CD3", "P01_CD3_D60"),
            ("08_22_19/cd33_SELECT/sdata.txt", "D60", "CD33", "P01_CD33_D60")]
    lines = ["file,kind,patient_id,visit,collection_date,material,lineage,sample"]
    lines += [f"str/{f},str,P01,{v},2019-08-22,blood,{lin},{s}" for f, v, lin, s in rows]
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.yaml").write_text(
        "study: anonymised\nout: results\ninputs:\n  manifest: study/manifest.csv\n"
        "  str: study/str\n  references:\n    donor: study/str/{patient}_donor.txt\n"
        "    recipient: study/str/{patient}_recipient.txt\n  kit: PowerPlex 16\n"
        "stages:\n  chimerism: {quantity: area}\n  cohort: {file: cohort.nc}\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml")])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output

    from immunomon.cohort import load
    ds = load(tmp_path / "results" / "cohort" / "cohort.nc").dataset
    got = {lin: float(ds["donor_chimerism_percent"].sel(patient="P01", timepoint="D60",
                                                        lineage=lin)) for lin in ("CD3", "CD33")}
    assert got["CD3"] == pytest.approx(52.9, abs=0.5)      # Rchimerism: 52.5
    assert got["CD33"] == pytest.approx(99.9, abs=0.5)     # Rchimerism: 99.9

    # a row naming a sample its plate-sized export does not hold: said after the stage
    lines.append("str/08_22_19/cd3_SELECT/sdata.txt,str,P01,D90,2019-09-22,blood,CD3,"
                 "P01_CD3_D90")
    (study / "manifest.csv").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml")])
    assert res.exit_code == 0, res.output
    assert "'P01_CD3_D90'" in res.output and "  warning: " in res.output
