"""The GvM report on a small hand-made cohort, and the page in headless Chromium.

The cohort is built by hand so every answer can be checked against values
known without the code under test: exact p-values counted by hand, and
reference numbers from R (wilcox.test, binom.test) written in with their call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from immunomon.analysis.questions import (COLUMNS, Plan, answer_all, gvhd_outcomes,
                                          hodges_lehmann)
from immunomon.analysis.report import cohort_tables, gvm_report
from immunomon.errors import AnalysisError
from immunomon.report.gvm_page import gvm_html

import browser

PATIENTS = [f"P{i:02d}" for i in range(1, 11)]
VISITS = ["pre", "M1", "M3", "M6"]
VISIT_DAY = {"pre": 60, "M1": 95, "M3": 155, "M6": 245}
POPS = ["Treg", "NK cells", "Activated T", "Dendritic cells", "T cells", "CD4 T"]
# P01-P04: acute GVHD II at these days and none relapses; P05-P09 relapse;
# P10 dies without relapse (NRM) at day 120; the others are censored at day 365.
GVHD_DAY = {"P01": 30, "P02": 80, "P03": 120, "P04": 200}
RELAPSE_DAY = {"P05": 150, "P06": 200, "P07": 260, "P08": 300, "P09": 330}
# Treg ratio M3/pre per patient: every patient falls, by distinct amounts.
TREG_M3_RATIO = dict(zip(PATIENTS, [0.5, 0.6, 0.45, 0.7, 0.55, 0.35, 0.8, 0.65, 0.4, 0.3]))
# Worst adverse-event grade per patient (0: none); P03 and P07 stop the drug.
WORST_GRADE = dict(zip(PATIENTS, [3, 2, 4, 1, 0, 3, 2, 1, 5, 2]))


@dataclass
class SmallCohort:
    dataset: xr.Dataset
    endpoints: pd.DataFrame
    intervals: pd.DataFrame
    events: pd.DataFrame
    adverse_events: pd.DataFrame


def _endpoints(relapse_day=RELAPSE_DAY) -> pd.DataFrame:
    rows = []
    for p in PATIENTS:
        end = 120.0 if p == "P10" else 365.0
        dead = p == "P10"
        rel = relapse_day.get(p, np.nan)
        gv = GVHD_DAY.get(p, np.nan)
        rows.append({
            "patient_id": p, "end_day": end, "death_day": end if dead else np.nan,
            "death_cause": "nrm" if dead else None, "os_days": end, "os_event": int(dead),
            "progression_day": rel,
            "pfs_days": rel if rel == rel else end, "pfs_event": int(rel == rel or dead),
            "relapse_days": rel if rel == rel else end,
            "relapse_event": 1 if rel == rel else 2 if dead else 0,
            "trm_days": end, "trm_event": int(dead),
            "agvhd_2_4_days": gv if gv == gv else end,
            "agvhd_2_4_event": 1 if gv == gv else 2 if dead else 0,
            "agvhd_3_4_days": end, "agvhd_3_4_event": 2 if dead else 0,
            "agvhd_max_grade": 2 if gv == gv else 0,
            "agvhd_steroid_refractory": True if p == "P01" else pd.NA,
        })
    out = pd.DataFrame(rows)
    out["agvhd_steroid_refractory"] = out["agvhd_steroid_refractory"].astype("boolean")
    return out


def small_cohort(relapse_day=RELAPSE_DAY) -> SmallCohort:
    rng = np.random.default_rng(7)
    base = {"Treg": 20.0, "NK cells": 150.0, "Activated T": 60.0, "Dendritic cells": 12.0,
            "T cells": 800.0, "CD4 T": 400.0}
    counts = np.full((len(PATIENTS), len(VISITS), len(POPS)), np.nan)
    for i, p in enumerate(PATIENTS):
        level = {k: v * rng.uniform(0.6, 1.6) for k, v in base.items()}
        for j, v in enumerate(VISITS):
            if p == "P10" and v == "M6":
                continue  # died before
            for k, pop in enumerate(POPS):
                value = level[pop] * rng.uniform(0.8, 1.25)
                if pop == "Treg":
                    value = level[pop] * (TREG_M3_RATIO[p] if v == "M3" else
                                          rng.uniform(0.7, 1.3) if v != "pre" else 1.0)
                counts[i, j, k] = value
    # Events gated per sample: dendritic cells below the counting limit (50) in every
    # sample, NK cells in the M1 samples of P01-P03 only, the others well above it.
    events = np.where(np.isnan(counts), np.nan, 400.0)
    events[:, :, POPS.index("Dendritic cells")] = np.where(
        np.isnan(counts[:, :, POPS.index("Dendritic cells")]), np.nan, 12.0)
    events[:3, VISITS.index("M1"), POPS.index("NK cells")] = 30.0
    day = np.array([[VISIT_DAY[v] + (i % 3) for v in VISITS] for i in range(len(PATIENTS))],
                   dtype=float)
    day[PATIENTS.index("P10"), VISITS.index("M6")] = np.nan
    lineages = ["CD3", "CD33"]
    chim = np.clip(100 - rng.uniform(0, 20, (len(PATIENTS), len(VISITS), 2)), 0, 100)
    chim[PATIENTS.index("P10"), VISITS.index("M6")] = np.nan
    ds = xr.Dataset(
        {"cells_per_ul": (("patient", "timepoint", "population"), counts,
                          {"units": "cells/uL"}),
         "count": (("patient", "timepoint", "population"), events, {"units": "events"}),
         "donor_chimerism_percent": (("patient", "timepoint", "lineage"), chim,
                                     {"units": "%"})},
        coords={"patient": PATIENTS, "timepoint": VISITS, "population": POPS,
                "lineage": lineages, "day": (("patient", "timepoint"), day)},
        attrs={"software_version": "test", "template": "post-transplant",
               "input_hashes": json.dumps({"/data/study1/manifest.csv": "ab12",
                                           "/data/study1/fcs/P01_pre.fcs": "cd34"}),
               "inputs": json.dumps([{"role": "manifest", "path": "/data/study1/manifest.csv",
                                      "sha256": "ab12"}]),
               "input_folders": json.dumps({"gating": "/data/results/gate"})})
    ep = _endpoints(relapse_day)
    intervals = pd.DataFrame(
        [(p, 65.0, float(ep.set_index("patient_id").loc[p, "end_day"]), "on_lenalidomide",
          1.0) for p in PATIENTS], columns=["patient_id", "start", "stop", "covariate",
                                            "value"])
    events = pd.DataFrame(
        [(p, d, "agvhd_onset", "2") for p, d in GVHD_DAY.items()]
        + [(p, d, "relapse", "") for p, d in relapse_day.items()]
        + [("P10", 120, "death", "nrm"), ("P02", 100, "response", "VGPR")],
        columns=["patient_id", "day", "event", "value"])
    ae = pd.DataFrame(
        [(p, "Neutrophil count decreased", g, 80, "withdrawn" if p in ("P03", "P07")
          else "none") for p, g in WORST_GRADE.items() if g > 0]
        + [("P01", "Fatigue", 1, 90, "none")],
        columns=["patient_id", "term", "grade", "onset_day", "action"])
    return SmallCohort(ds, ep, intervals, events, ae)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gvm")
    page = gvm_report(small_cohort(), out, seed=0, plan=Plan(n_permutations=999))
    return out, page, pd.read_csv(out / "questions.csv")


def test_every_question_has_a_row_with_the_documented_columns(report):
    out, page, table = report
    assert list(table.columns) == COLUMNS
    assert set(table["number"]) == {1, 2, 3, 4, 5}
    for pop in ["Treg", "NK cells", "Activated T", "Dendritic cells"]:
        for visit in ["M1", "M3", "M6"]:
            assert f"1.{pop}.{visit}" in set(table["question"])
            assert f"1.{pop}.{visit}.mixed" in set(table["question"])
    for q in ["2.relapse", "2.pfs", "2.os", "2.relapse.landmark", "3.Treg.relapse",
              "3.chimerism CD3.agvhd", "4.relapse", "4.nrm", "4.relapse.gvhd",
              "5.ae_grade_3_5", "5.discontinuation", "5.trm", "5.steroid_refractory_agvhd"]:
        assert q in set(table["question"]), q
    assert set(table["label"]) == {"primary", "exploratory"}
    primary = set(table.loc[table["label"] == "primary", "question"])
    # Shares of the parent for Treg and activated T cells (recovery after
    # transplant confounds their counts), NK counts; dendritic cells exploratory.
    assert primary == {"1.Treg % of CD4 T.M3", "1.NK cells.M3", "1.Activated T % of T cells.M3",
                       "2.relapse", "5.ae_grade_3_5", "5.discontinuation", "5.trm"}
    results = json.loads((out / "results.json").read_text())
    assert len(results["questions"]) == len(table)
    assert results["plan"]["primary_visit"] == "M3"
    # the mixed model's Wald p-values say how many patients they rest on (a four-patient
    # study read "optimistic with 13 patients")
    mixed = table[table["question"].str.endswith(".mixed")]
    assert (mixed["p_method"] == [f"Wald z (optimistic with {int(n)} patients)"
                                  for n in mixed["n"]]).all()


def test_treg_fall_exact_wilcoxon_and_hodges_lehmann(report):
    table = report[2].set_index("question")
    row = table.loc["1.Treg.M3"]
    # All 10 patients fall by distinct amounts: V = 0 and the exact two-sided
    # p is 2 / 2^10.
    assert row["p_value"] == pytest.approx(2 / 1024, rel=1e-9)
    assert row["n"] == 10
    # R: wilcox.test(log10(r), conf.int=TRUE) with r the ratios below gives
    # (pseudo)median -0.292513326, 95% CI -0.3979400087 -0.1883753548.
    assert np.log10(row["estimate"]) == pytest.approx(-0.292513326, abs=1e-8)
    assert np.log10(row["lower"]) == pytest.approx(-0.3979400087, abs=1e-8)
    assert np.log10(row["upper"]) == pytest.approx(-0.1883753548, abs=1e-8)


def test_hodges_lehmann_matches_r_small_n():
    # R: wilcox.test(c(1.5, -0.3, 2.2, 0.8, 3.1), conf.int=TRUE)
    #   (pseudo)median 1.5, 95% CI -0.3 3.1 (qsignrank(0.025, 5) = 0 -> 1)
    est, lo, hi = hodges_lehmann([1.5, -0.3, 2.2, 0.8, 3.1])
    assert (est, lo, hi) == pytest.approx((1.5, -0.3, 3.1))


def test_separation_reported_when_no_gvhd_patient_relapses(report):
    table = report[2].set_index("question")
    row = table.loc["2.relapse"]
    assert bool(row["separated"]) is True
    assert row["estimate_ml"] == 0.0                     # the unpenalised fit
    # Firth's estimate instead. R (tests/reference/firth.R, case 6): coxphf gives
    # HR 0.0522607226, profile penalised-likelihood interval 0.0003862164 to
    # 0.5273551889, penalised LR p 0.0086814415.
    assert row["estimator"] == "Firth"
    assert row["estimate"] == pytest.approx(0.0522607226, rel=1e-4)
    assert row["lower"] == pytest.approx(0.0003862164, rel=1e-4)
    assert row["upper"] == pytest.approx(0.5273551889, rel=1e-4)
    assert row["p_firth"] == pytest.approx(0.0086814415, abs=1e-4)
    assert row["p_method"] == "likelihood ratio"
    assert 0 < row["p_value"] < 1 and 0 < row["p_score"] < 1
    assert "separation" in row["note"]
    # the reader is told why interval and p-value can disagree, and Firth's own p
    assert "Firth's penalised test gives p = 0.00868" in row["note"]
    page = report[1].read_text()
    assert "Separation (monotone likelihood) in: 2.relapse" in page
    assert "0.0523 (0.000386&ndash;0.527)" in page and "unpenalised: 0" in page


def test_no_separation_when_a_gvhd_patient_relapses():
    endpoints = small_cohort({**RELAPSE_DAY, "P02": 250}).endpoints
    row = gvhd_outcomes(endpoints, Plan(), primary_only=True)[0]
    assert row["question"] == "2.relapse"
    assert not row["separated"]
    assert 0 < row["estimate"] < np.inf and row["lower"] < row["estimate"] < row["upper"]


def test_safety_proportions_with_clopper_pearson(report):
    table = report[2].set_index("question")
    row = table.loc["5.ae_grade_3_5"]
    # 4 of 10 patients with grade >= 3. R: binom.test(4, 10)$conf.int
    assert (row["events"], row["n"]) == (4, 10)
    assert row["lower"] == pytest.approx(0.1215523, abs=1e-6)
    assert row["upper"] == pytest.approx(0.7376219, abs=1e-6)
    assert table.loc["5.discontinuation", "events"] == 2
    assert table.loc["5.trm", "events"] == 1
    assert table.loc["5.steroid_refractory_agvhd", "events"] == 1
    assert table.loc["5.ae_worst_grade_2", "events"] == 3
    # a cohort alone has no laboratory grading: the rows say whose events they count
    # (the same trial through `immunomon run` counts laboratory grades too)
    for q in ("5.ae_grade_3_5", "5.ae_worst_grade_2"):
        assert "reported adverse events only" in table.loc[q, "note"]


def test_gating_qc_marks_undercounted_populations(report):
    """Issue 18, case 7: the report carries the gating QC and never gives a bare
    p-value for a population counted with too few events."""
    out, page, table = report
    table = table.set_index("question")
    # Dendritic cells: 12 events in each of the 39 samples -> not estimable.
    for q in ["1.Dendritic cells.M3", "1.Dendritic cells.M3.mixed",
              "3.Dendritic cells.relapse"]:
        row = table.loc[q]
        assert np.isnan(row["p_value"]) and np.isnan(row["estimate"]), q
        assert np.isnan(row["q_value"]), q
        assert row["gating_qc"].startswith("not estimable: Dendritic cells counted with "
                                           "fewer than 50 events in 39 of 39 samples"), q
    corr = [q for q in table.index if q.startswith("3.corr.") and "Dendritic" in q]
    assert corr and table.loc[corr, "p_value"].isna().all()
    tables = cohort_tables(small_cohort())
    _, matrix = answer_all(immune=tables["immune"], chimerism=tables["chimerism"],
                           endpoints=tables["endpoints"], adverse_events=None,
                           plan=Plan(n_permutations=99), counts=tables["counts"])
    dc = "Dendritic cells (log10)"
    assert matrix.loc[dc].drop(dc).isna().all() and matrix.loc[dc, dc] == 1
    assert matrix.loc["Treg (log10)"].drop(dc).notna().all()
    # NK cells: 3 of 39 samples below the limit -> numbers kept, with the caveat.
    row = table.loc["1.NK cells.M3"]
    assert 0 < row["p_value"] < 1
    assert row["gating_qc"] == ("gating caveat: NK cells counted with fewer than 50 events "
                                "in 3 of 39 samples (median 400)")
    assert pd.isna(table.loc["1.Treg.M3", "gating_qc"])       # empty in the CSV
    results = json.loads((out / "results.json").read_text())
    qc = {r["population"]: r for r in results["gating_qc"]}
    assert (qc["Dendritic cells"]["below_limit"], qc["Dendritic cells"]["verdict"]) == \
        (39, "not estimable")
    assert (qc["NK cells"]["below_limit"], qc["NK cells"]["verdict"]) == (3, "caveat")
    assert qc["Treg"]["verdict"] == "ok"
    text = page.read_text()
    assert '<section id="gating-qc"><h2>Gating QC</h2>' in text


def test_populations_whose_counts_turn_on_their_cut_carry_a_caveat(tmp_path):
    """A cohort whose gating gave each count's share near its cut: Treg at 12-24% of
    their events within one bandwidth of the gate's cut (a continuum in CD25 and CD127),
    NK cells at 2%. The Treg answers keep their numbers, with the caveat; NK's do not
    get one."""
    cohort = small_cohort()
    ds = cohort.dataset
    near = np.full((len(PATIENTS), len(VISITS), len(POPS)), 2.0)
    near[:, :, POPS.index("Treg")] = np.linspace(12, 24, len(PATIENTS) * len(VISITS)
                                                 ).reshape(len(PATIENTS), len(VISITS))
    ds["percent_near_cut"] = (("patient", "timepoint", "population"), near)
    tables = cohort_tables(cohort)
    assert tables["counts"]["percent_near_cut"].notna().all()
    gvm_report(cohort, tmp_path, plan=Plan(n_permutations=99))
    answers = pd.read_csv(tmp_path / "questions.csv").set_index("question")
    row = answers.loc["1.Treg.M3"]
    assert 0 < row["p_value"] < 1
    assert row["gating_qc"] == ("gating caveat: Treg: a median 18% of its events lie within "
                                "one density bandwidth of a cut it was gated by (its counts "
                                "turn on where the cut lies)")
    assert pd.isna(answers.loc["1.NK cells.M3", "gating_qc"]) or \
        "cut" not in answers.loc["1.NK cells.M3", "gating_qc"]
    qc = {r["population"]: r for r in json.loads(
        (tmp_path / "results.json").read_text())["gating_qc"]}
    assert qc["Treg"]["verdict"] == "caveat" and round(qc["Treg"]["median_near_cut"]) == 18
    assert qc["T cells"]["verdict"] == "ok" and qc["T cells"]["median_near_cut"] == 2


def test_visits_whose_gating_failed_qc_are_left_out_and_named(tmp_path):
    cohort = small_cohort()
    status = np.full((len(PATIENTS), len(VISITS)), "ok", dtype=object)
    status[PATIENTS.index("P03"), VISITS.index("M3")] = "failure"
    status[PATIENTS.index("P05"), VISITS.index("M1")] = "warning"
    cohort.dataset["qc_status"] = (("patient", "timepoint"), status)
    tables = cohort_tables(cohort)
    assert tables["qc_failures"].to_dict("records") == [{"patient_id": "P03", "visit": "M3"}]
    for name in ("immune", "counts"):
        frame = tables[name]
        assert not ((frame.patient_id == "P03") & (frame.visit == "M3")).any(), name
        assert len(frame[(frame.patient_id == "P03")]) == 3 * len(POPS), name
        assert ((frame.patient_id == "P05") & (frame.visit == "M1")).sum() == len(POPS)
    kept = cohort_tables(cohort, exclude_qc_failures=False)
    assert len(kept["immune"]) == len(tables["immune"]) + len(POPS)
    assert kept["qc_failures"].empty
    # the M3 Treg question has one patient fewer, and the page and results say which
    page = gvm_report(cohort, tmp_path, plan=Plan(n_permutations=99))
    answers = pd.read_csv(tmp_path / "questions.csv").set_index("question")
    assert answers.loc["1.Treg.M3", "n"] == len(PATIENTS) - 1
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["qc_failures_left_out"] == [{"patient_id": "P03", "visit": "M3"}]
    assert ("1 visit whose flow samples failed gating QC is left out of the immune "
            "questions: P03 M3") in page.read_text()
    with pytest.raises(AnalysisError, match="exclude_qc_failures must be true or false"):
        Plan(exclude_qc_failures="yes")


def test_analyze_command_summary_of_primary_answers(report):
    from immunomon.cli import primary_lines
    out, _, _ = report
    questions = json.loads((out / "results.json").read_text())["questions"]
    lines = {line.split(":")[0].strip(): line for line in primary_lines(questions)}
    assert "Firth-penalised" in lines["2.relapse"] and "hazard ratio 0.0523" in \
        lines["2.relapse"]
    dc = dict(questions[0], label="primary", estimate=None, lower=None, upper=None,
              p_value=None, question="x", note="not estimable (gating QC)",
              gating_qc="not estimable: DC counted with fewer than 50 events")
    assert primary_lines([dc]) == ["  x: not estimable: DC counted with fewer than 50 "
                                   "events"]


def test_provenance_in_its_own_file_with_study_relative_paths(report):
    out, page, _ = report
    text = page.read_text()
    assert '<a href="provenance.json">' in text
    assert "/data/study1" not in text and "ab12" not in text
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["input_hashes"] == {"manifest.csv": "ab12", "fcs/P01_pre.fcs": "cd34"}
    assert prov["inputs"][0]["path"] == "manifest.csv"
    # an output folder outside the study: relative to the report folder
    assert not prov["input_folders"]["gating"].startswith("/")
    assert prov["input_folders"]["gating"].endswith("data/results/gate")
    assert json.loads((out / "results.json").read_text())["provenance"] == "provenance.json"


def test_competing_incidence_without_censoring_before_horizon(report):
    table = report[2].set_index("question")
    # Nobody is censored before day 365: the incidence is the crude proportion.
    assert table.loc["4.relapse", "estimate"] == pytest.approx(5 / 10)
    assert table.loc["4.nrm", "estimate"] == pytest.approx(1 / 10)


def test_page_is_self_contained_and_escaped(report):
    out, page, _ = report
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 7
    assert "<script" not in text and 'src="http' not in text
    for name in ["trajectories", "chimerism", "swimmer", "kaplan_meier",
                 "cumulative_incidence", "forest", "correlations"]:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    for caveat in ["Immortal time", "Competing risks", "Separation", "13 patients"]:
        assert caveat in text
    cohort = small_cohort()
    cohort.dataset = cohort.dataset.assign_coords(
        population=["Treg", "NK cells", "Activated T", "Dendritic cells", "<i>x</i>", "CD4 T"])
    tables = cohort_tables(cohort)
    answers, _ = answer_all(immune=tables["immune"], chimerism=tables["chimerism"],
                            endpoints=tables["endpoints"],
                            adverse_events=tables["adverse_events"],
                            plan=Plan(n_permutations=99, populations=("<i>x</i>",)))
    page2 = gvm_html(title="<b>t</b>", answers=answers, plan=Plan(), figures={},
                     n_patients=10, provenance={"<i>k</i>": "<i>v</i>"})
    assert "&lt;i&gt;x&lt;/i&gt;" in page2
    assert "<i>" not in page2 and "<b>" not in page2


# ---------------------------------------------------------------------------
# headless Chromium


@pytest.mark.slow
def test_page_fits_a_laptop_window_in_headless_chromium(report, tmp_path):
    """Measured in the browser: a 1400-pixel window, no horizontal scrolling, no
    table past the edge or scrolling inside, every image decoded, no console error."""
    binary = browser.chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    out, page, _ = report
    layout, stderr = browser.measure(binary, page, tmp_path, width=1400)
    assert (layout["images"], layout["images_loaded"]) == (7, 7)
    assert browser.console_errors(stderr) == []
    assert len(layout["tables"]) >= 7
    browser.assert_fits(layout, 1400)
    # narrower than the window: the body's max-width keeps lines readable
    assert layout["body_right"] < 1400
    size = browser.screenshot(binary, page, tmp_path / "gvm_report.png", width=1400)
    assert size == (1400, 2000)


def test_a_primary_question_without_data_at_its_visit_says_so():
    # flow data at baseline and M1 only: the primary rows at M3 were missing from the
    # table, the page and results.json, with nothing to say why
    from immunomon.analysis.questions import immune_change
    rng = np.random.default_rng(3)
    rows = [(p, v, pop, float(rng.uniform(50, 500)), d)
            for p in ["P01", "P02", "P03", "P04", "P05"]
            for v, d in (("pre", -5.0), ("M1", 30.0))
            for pop in ("NK cells", "Treg", "CD4 T", "Activated T", "T cells")]
    immune = pd.DataFrame(rows, columns=["patient_id", "visit", "population", "cells_per_ul",
                                         "day"])
    table = pd.DataFrame(immune_change(immune, Plan(), mixed=False)).set_index("question")
    for q in ("1.NK cells.M3", "1.Treg % of CD4 T.M3", "1.Activated T % of T cells.M3"):
        assert table.loc[q, "label"] == "primary" and np.isnan(table.loc[q, "p_value"])
        assert table.loc[q, "note"].startswith("not estimable: no patient has")
    assert table.loc["1.NK cells.M1", "label"] == "exploratory"
    assert not np.isnan(table.loc["1.NK cells.M1", "p_value"])


def test_a_change_row_says_zeros_were_floored_only_where_there_were_zeros():
    """Every NK row of the demo's report said 'zeros floored at 52.3 cells/uL' though no
    NK count was zero; the note now counts the zeros it floored."""
    from immunomon.analysis.questions import immune_change
    rng = np.random.default_rng(4)
    rows = [(p, v, pop, float(rng.uniform(50, 500)), d)
            for p in ["P01", "P02", "P03", "P04", "P05", "P06", "P07"]
            for v, d in (("pre", -5.0), ("M3", 90.0))
            for pop in ("NK cells", "Treg", "CD4 T", "Activated T", "T cells")]
    immune = pd.DataFrame(rows, columns=["patient_id", "visit", "population", "cells_per_ul",
                                         "day"])
    immune.loc[(immune.population == "Treg") & (immune.patient_id == "P01"),
               "cells_per_ul"] = 0.0
    table = pd.DataFrame(immune_change(immune, Plan(), mixed=False)).set_index("question")
    assert "floored" not in table.loc["1.NK cells.M3", "note"]
    assert table.loc["1.Treg.M3", "note"].startswith("2 zeros floored at ")


def test_every_declared_share_is_asked_and_a_missing_count_says_why():
    """A study's plan (docs/pipelines.md) whose primary share is not among its shares: the
    question was never asked, with no row to say so; and a tube without counting beads
    (events and percentages, no cells/uL) was "no counts", which the cohort has."""
    from immunomon.analysis.questions import immune_change
    rows = [(p, v, pop, np.nan, d)
            for p in ["P01", "P02", "P03", "P04"]
            for v, d in (("D30", 30.0), ("D90", 90.0))
            for pop in ("CD4 T", "CD8 T", "T cells")]
    immune = pd.DataFrame(rows, columns=["patient_id", "visit", "population", "cells_per_ul",
                                         "day"])
    plan = Plan(baseline_visit="D30", primary_visit="D90", populations=("CD8 T",),
                shares=(("CD8 T", "T cells"),), primary_counts=("CD8 T",),
                primary_shares=(("CD4 T", "T cells"),))
    table = pd.DataFrame(immune_change(immune, plan, mixed=False)).set_index("question")
    share = table.loc["1.CD4 T % of T cells.D90"]
    assert share["label"] == "primary" and np.isnan(share["p_value"])
    assert "no cells/uL of CD4 T and T cells at visit 'D30'" in share["note"]
    assert "counting beads" in share["note"]
    assert "no cells/uL of CD8 T at visit 'D30'" in table.loc["1.CD8 T", "note"]

    # with cells/uL the primary share is answered at its visit
    rng = np.random.default_rng(5)
    immune["cells_per_ul"] = rng.uniform(100, 900, len(immune))
    table = pd.DataFrame(immune_change(immune, plan)).set_index("question")
    assert table.loc["1.CD4 T % of T cells.D90", "label"] == "primary"
    assert not np.isnan(table.loc["1.CD4 T % of T cells.D90", "p_value"])
    # the mixed model's Wald p-values say how few patients they rest on, and the exact
    # test says it cannot reach 0.05 with four pairs
    assert table.loc["1.CD8 T.D90.mixed", "p_method"] == "Wald z (optimistic with 4 patients)"
    assert table.loc["1.CD8 T.D90", "p_value"] >= 0.125
    assert ("with 4 patients the exact test's smallest two-sided p-value is 0.125"
            in table.loc["1.CD8 T.D90", "note"])
