"""The "Protocol endpoints" section on the simulated demo trial, against its truth.

The simulator knows what happened to each patient (``Trial.course``): a
transplant-related death within a year of the first dose must meet the primary
endpoint; a patient whose lenalidomide was withdrawn for an adverse event was
first brought to the lowest dose level, so the withdrawing event (grade 3) is an
adverse event at the lowest level.
"""

import json
import re

import numpy as np
import pandas as pd
import pytest

from immunomon import simulate as sim
from immunomon.analysis.protocol import protocol_results
from immunomon.clinical.protocol import Protocol
from immunomon.report.protocol_page import CSV_FILES, write_protocol_outputs

DEMO = Protocol(drug="lenalidomide", dose_levels=(10, 5, 2.5), ctcae_version="3.0",
                stopping={"p0": 0.3, "threshold": 0.9, "prior": (0.6, 1.4),
                          "max_patients": 13})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    trial = sim.trial(0)
    results = protocol_results(trial.clinical, DEMO, n_sim=2000)
    out = tmp_path_factory.mktemp("protocol")
    html = write_protocol_outputs(results, out, clinical=trial.clinical)
    return trial, results, out, html


def test_primary_endpoint_follows_the_simulated_course(demo):
    trial, results, _, _ = demo
    course = trial.course.set_index("patient_id")
    pe = results.primary.set_index("patient_id")
    for pid, c in course.iterrows():
        horizon = c["len_start"] + 365
        if c["death_cause"] == "nrm" and c["death_day"] <= horizon:
            assert pe.loc[pid, "met"], pid
            assert pe.loc[pid, "day"] <= c["death_day"]
        if not np.isnan(c["withdraw_day"]) and c["len_stop_reason"] == "adverse event":
            assert pe.loc[pid, "met"], pid
            assert pe.loc[pid, "criterion"] == "ae_at_lowest_dose"
            assert pe.loc[pid, "day"] == c["withdraw_day"]
    # no patient meets it without one of the planted reasons: a refractory GVHD, a
    # transplant-related death, or an adverse event at 2.5 mg
    for pid in pe.index[pe["met"]]:
        assert pe.loc[pid, "criterion"] in ("ae_at_lowest_dose", "steroid_refractory_agvhd",
                                            "steroid_refractory_cgvhd",
                                            "transplant_related_death")
    s = results.summary
    assert s["events"] == int(pe["met"].sum()) and s["n"] == 13


def test_csv_tables_and_section(demo):
    _, results, out, html = demo
    for name in CSV_FILES.values():
        assert (out / "protocol" / name).is_file(), name
    primary = pd.read_csv(out / "protocol" / "primary_endpoint.csv")
    assert len(primary) == 13 and int(primary["met"].sum()) == results.summary["events"]
    seq = pd.read_csv(out / "protocol" / "stopping_sequence.csv")
    assert seq["events"].iloc[-1] == results.summary["events"]
    # outcomes of the sequence in the order they became known
    assert list(seq["known_on"]) == sorted(seq["known_on"])
    assert (out / "figures" / "stopping_rule.png").is_file()
    assert (out / "figures" / "dose_levels.svg").is_file()
    assert html.startswith('<p class="small">Primary endpoint: any of CTCAE grade 3-4')
    s = results.summary
    assert f"<b>{s['events']} of {s['n']} patients</b>" in html
    assert "Any adverse event" in html and 'class="severe"' in html
    assert "Lung infection" in html


def test_section_escapes_text_from_the_data(demo):
    from dataclasses import replace

    from immunomon.report.protocol_page import protocol_html
    _, results, _, _ = demo
    table = results.ae_table.copy()
    table.loc[1, "term"] = "<script>alert(1)</script>"
    html = protocol_html(replace(results, ae_table=table), {})
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_gvm_report_carries_the_section(demo, tmp_path):
    from test_analysis_report import small_cohort

    from immunomon.analysis.report import gvm_report
    _, results, _, _ = demo
    page = gvm_report(small_cohort(), tmp_path, protocol=results)
    text = page.read_text()
    assert '<section id="protocol-endpoints"><h2>Protocol endpoints</h2>' in text
    assert '<a href="#protocol-endpoints">' in text
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["protocol"]["summary"]["events"] == results.summary["events"]
    assert len(data["protocol"]["stopping"]["boundaries"]) == 13
    # the safety question now counts the graded events (laboratory and reported)
    answers = pd.read_csv(tmp_path / "questions.csv").set_index("question")
    worst = results.graded_adverse_events.groupby("patient_id")["grade"].max()
    assert answers.loc["5.ae_grade_3_5", "events"] == int((worst >= 3).sum())
    assert "laboratory values graded by CTCAE, merged" in answers.loc["5.ae_grade_3_5", "note"]
    assert re.search(r'id="fig-stopping"', text)
