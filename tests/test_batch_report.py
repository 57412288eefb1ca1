"""The batch QC report: Westgard rules, robust outliers and the page built from a registry."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from immunomon.batch.registry import Registry, now
from immunomon.batch.report import (build_report, control_limits, key_populations,
                                    reason_kind, robust_z, westgard, write_report)


def test_westgard_rules_on_hand_made_runs():
    # mean 10, SD 1; each run is placed to break exactly the rules expected of it
    z = [0.5, 3.5,                 # 1: 1-3s
         0.0, 2.5, 2.2,            # 4: 2-2s (runs 3 and 4 above +2 SD)
         -2.4,                     # 5: R-4s (above +2 SD, then below -2 SD)
         0.0, 1.2, 1.5, 1.1, 1.3,  # 10: 4-1s (runs 7-10 above +1 SD)
         0.2, 0.1, 0.3, 0.4, 0.2, 0.1,   # 16: 10-x (runs 7-16 above the mean)
         -0.5, np.nan, -3.2]       # a missing run breaks nothing; 19: 1-3s
    rules = westgard(10 + np.array(z), 10.0, 1.0)
    expected = {1: ["1-3s"], 4: ["2-2s"], 5: ["R-4s"], 10: ["4-1s"], 16: ["10-x"],
                19: ["1-3s"]}
    assert {i: r for i, r in enumerate(rules) if r} == expected
    assert westgard([1, 2, 3], 2.0, 0.0) == [[], [], []]


def test_control_limits_use_the_baseline_runs():
    values = list(range(1, 21)) + [100, 200]
    mean, sd, n = control_limits(values, baseline=20)
    assert n == 20 and mean == pytest.approx(10.5)
    assert sd == pytest.approx(np.std(np.arange(1, 21), ddof=1))
    assert control_limits([5.0], 20)[2] == 1 and np.isnan(control_limits([5.0], 20)[1])


def test_robust_z_is_the_modified_z_score():
    x = np.array([10, 11, 9, 10, 12, 50], dtype=float)
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    assert robust_z(x) == pytest.approx(0.6745 * (x - med) / mad)
    assert list(robust_z([3, 3, 3])) == [0, 0, 0]
    # a floor on the spread: equal values but one, judged against 5% of the median
    assert robust_z([100, 100, 100, 40], floor=5)[-1] == pytest.approx(0.6745 * -60 / 5)


def _registry(results, patients, controls):
    """A registry with done files and their yields, written as the coordinator would."""
    reg = Registry.open(results)
    reg.set_meta("mode", "identified")
    i = 0
    for name, lymph, control, day in [*patients, *controls]:
        i += 1
        file_id = reg.register({
            "path": f"/inbox/{name}.fcs", "relpath": f"{name}.fcs", "study": "S",
            "patient": "" if control else name[:3], "sample": name, "control": int(control),
            "instrument": "LSRFortessa", "acquired": f"2024-01-{day:02d}T09:00:00",
            "alias": name, "output": f"S/{name}", "registered": now()})
        reg.start(file_id)
        reg.finish(file_id, {"events": 50_000 if name != "P09" else 2_000, "qc_status": "ok",
                             "qc_flags": json.dumps([]), "outputs": json.dumps([]),
                             "seconds": json.dumps({"total": 2.0}), "peak_rss_mb": 300.0},
                   [("Leukocytes", None, 40000, 90.0, None, 1.0),
                    ("Lymphocytes", "Leukocytes", 12000, lymph, None, 3.0),
                    ("T cells", "Lymphocytes", 8000, 70.0, None,
                     25.0 if name == "P03" else 4.0)])
    failed = reg.register({"path": "/inbox/bad.fcs", "relpath": "bad.fcs", "study": "S",
                           "registered": now(), "output": "S/bad", "alias": "bad"})
    reg.fail(failed, "quarantined", "/inbox/bad.fcs: declares 3000 events but is truncated",
             "input")
    reg.close()


def test_report_highlights_outliers_and_control_violations(tmp_path):
    lymph = [30, 31, 29, 30, 32, 28, 30, 31, 29, 60]
    patients = [(f"P{i:02d}", v, False, i + 1) for i, v in enumerate(lymph)]
    # 22 control runs: a stable baseline, then run 21 far above it
    rng = np.random.default_rng(1)
    base = 25 + rng.normal(0, 0.5, 20)
    controls = [(f"QC_{j:02d}", float(v), True, j + 1) for j, v in
                enumerate([*base, 40.0, 25.0])]
    _registry(tmp_path, patients, controls)
    html = build_report(tmp_path)
    # the outlier is highlighted, with its robust z; nothing else in that column is
    cells = re.findall(r'<td class="out" title="robust z = ([-\d.]+)">([\d.]+)</td>', html)
    assert cells == [(f"{robust_z(np.array(lymph, float), 0.5)[-1]:.1f}", "60.0")]
    # P03's T cells, a quarter of them within a bandwidth of their cut, alone underlined
    near = re.findall(r'<td class="near" title="([^"]*)">([\d.]+)</td>', html)
    assert near == [("25% of its events near its cut", "70.0")]
    assert "1 underlined where 10% or more of the population lies" in html
    # P09's 2,000 events stand out against 50,000 elsewhere
    assert '<td class="out">2,000</td>' in html
    # one Levey-Jennings chart per key population, the 40% control run flagged 1-3s
    assert html.count("<svg") == 3
    assert "Westgard rule violations (1)" in html
    row = re.search(r"<tr><td>QC_20</td>.*?</tr>", html).group(0)
    assert "Lymphocytes" in row and "1-3s" in row
    assert "bad.fcs: declares 3000 events but is truncated" in html
    mean, sd, _ = control_limits([c[1] for c in controls])
    assert f"mean {mean:.2f}%, SD {sd:.2f} from 20 run(s)" in html
    path = write_report(tmp_path)
    assert path.read_text() == html or path.stat().st_size > 0


def test_failures_are_grouped_by_what_their_reasons_say_and_review_comes_first(tmp_path):
    """At a thousand uploads 590 tubes of other panels, one reason each, filled the page
    before the 14 samples to review; the same fault now reads as one folded line."""
    assert reason_kind("/in/a/x_u01.fcs (keyword $TOT): declares 19090 events (1145400 "
                       "bytes of DATA from byte 4203) but only 685563 bytes remain",
                       ("/in/a/x_u01.fcs",)) == \
        "(keyword $TOT): declares # events (# bytes of DATA from byte #) but only # bytes " \
        "remain"
    assert reason_kind("/in/c.fcs: template post-transplant.yaml (Post-transplant) cannot "
                       "gate this file: it lacks FSC-A; the file's channels are Time",
                       ("/in/c.fcs",)) == \
        "template post-transplant.yaml (Post-transplant) cannot gate this file"
    lymph = [30, 31, 29, 30, 32, 28, 30, 31, 29, 60]
    _registry(tmp_path, [(f"P{i:02d}", v, False, i + 1) for i, v in enumerate(lymph)], [])
    reg = Registry.open(tmp_path)
    for k in range(3):
        bad = reg.register({"path": f"/inbox/cut{k}.fcs", "relpath": f"cut{k}.fcs",
                            "study": "S", "registered": now(), "output": f"S/cut{k}",
                            "alias": f"cut{k}"})
        reg.fail(bad, "quarantined", f"/inbox/cut{k}.fcs: declares {3000 + k} events but "
                 "is truncated", "input")
    reg.close()
    html = build_report(tmp_path)
    assert html.index("<h2>To review</h2>") < html.index("<h2>Failures (4)</h2>")
    folds = re.findall(r"<summary><b>(\d+)</b> ([^<]+)</summary>", html)
    assert folds == [("4", "declares # events but is truncated")]
    review = html[html.index("<h2>To review</h2>"):html.index("<h2>Failures")]
    assert "yield outside the batch: Lymphocytes (robust z" in review and "P09 (S)" in review


def test_key_populations_default_and_named():
    import pandas as pd

    table = pd.DataFrame({"population": ["Singlets", "Leukocytes", "Lymphocytes", "T cells",
                                         "CD4 T"],
                          "parent": [None, "Singlets", "Leukocytes", "Lymphocytes", "T cells"]})
    assert key_populations(table) == ["Leukocytes", "Lymphocytes", "T cells"]
    assert key_populations(table, ["CD4 T", "NK"]) == ["CD4 T"]
