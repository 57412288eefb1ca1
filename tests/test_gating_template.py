"""Gating templates: validation with line numbers, marker aliases, overrides, shipped templates."""

from __future__ import annotations

import numpy as np
import pytest

from immunomon import simulate
from immunomon.errors import TemplateError
from immunomon.gating.template import builtin_templates, load_template, parse_template

BASE = """\
panel: Test panel
version: "2"
markers:
  CD3: [CD3, Leu-4]
  CD4: [CD4]
populations:
  - name: T
    parent: root
    dims: [CD3]
    method: threshold
  - name: CD4 T
    parent: T
    dims: [CD4]
    method: threshold
"""


def error_of(text: str) -> str:
    with pytest.raises(TemplateError) as exc:
        parse_template(text, "panel.yaml")
    return str(exc.value)


def test_valid_template_loads():
    t = parse_template(BASE, "panel.yaml")
    assert t.panel == "Test panel" and t.version == "2"
    assert [p.name for p in t.populations] == ["T", "CD4 T"]
    assert t.markers["CD3"] == ("CD3", "Leu-4")


def test_undefined_parent_names_population_and_line():
    text = BASE.replace("    parent: T\n", "    parent: CD8\n")
    msg = error_of(text)
    assert "panel.yaml, line 12" in msg and "population 'CD4 T'" in msg
    assert "parent 'CD8' is not defined" in msg


@pytest.mark.parametrize("change, line, words", [
    (("method: threshold\n  - name: CD4 T", "method: magic\n  - name: CD4 T"), 10,
     "unknown method 'magic'"),
    (("dims: [CD4]", "dims: [CD8]"), 13, "dimension 'CD8' is neither a marker"),
    (("  - name: CD4 T", "  - name: T"), 11, "already used"),
    (("    dims: [CD4]\n    method: threshold\n", "    dims: [CD4]\n"), 11,
     "exactly one of 'method'"),
])
def test_mistakes_are_reported_with_line_and_field(change, line, words):
    msg = error_of(BASE.replace(*change))
    assert f"line {line}" in msg and words in msg


def test_not_yaml_and_missing_sections():
    assert "line 2" in error_of("panel: x\n  - : [\n")
    assert "'markers' is missing" in error_of("panel: x\nversion: 1\npopulations: []\n")


def test_boolean_and_cluster_arguments_are_checked():
    text = BASE + "  - name: Not T\n    parent: root\n    gate: {not: Tx}\n"
    assert "refers to 'Tx'" in error_of(text)
    text = BASE + ("  - name: C\n    parent: root\n    dims: [CD3, CD4]\n    method: cluster\n"
                   "    args: {pick: [[top, CD3]]}\n")
    assert "args.pick" in error_of(text)


def test_markers_resolve_by_alias_then_channel_name():
    sim = simulate.pbmc_sample(3000, seed=1)
    t = parse_template(BASE.replace("CD3: [CD3, Leu-4]", "CD3: [Leu-4, BV786-A]"), "p.yaml")
    channels, missing = t.resolve_markers(sim.sample)
    assert channels == {"CD3": "BV786-A", "CD4": "BV421-A"} and missing == []


def test_missing_marker_leaves_out_dependent_populations():
    sim = simulate.pbmc_sample(3000, seed=1)
    t = parse_template(BASE.replace("CD4: [CD4]", "CD4x: [CD4-nowhere]")
                       .replace("dims: [CD4]", "dims: [CD4x]"), "p.yaml")
    strategy, notes = t.strategy_for(sim.sample)
    assert [g.id for g in strategy.gates] == ["T"]
    assert any("CD4x" in n and "not in this file" in n for n in notes)
    assert any("'CD4 T' left out" in n for n in notes)


def test_override_replaces_a_data_driven_gate():
    sim = simulate.pbmc_sample(5000, seed=2)
    t = parse_template(BASE, "p.yaml")
    strategy, _ = t.strategy_for(sim.sample, overrides={"T": {"rectangle": {"bounds": [[0.9, None]]}}})
    result = strategy.apply(sim.sample)
    assert result.count("T") < 0.01 * sim.sample.n_events     # a deliberately odd cut
    # CD4 T inside an (almost) empty parent is empty and says why, not an error
    if result.count("T") < 10:
        assert result.count("CD4 T") == 0 and result.gates["CD4 T"].fell_back
    with pytest.raises(TemplateError, match="override"):
        t.strategy_for(sim.sample, overrides={"T": {"spline": {}}})


def test_shipped_templates_load_and_gate_the_simulated_panel():
    shipped = builtin_templates()
    assert {"post-transplant", "t-treg-tube", "b-nk-tube", "dc-tube"} <= set(shipped)
    sim = simulate.pbmc_sample(60_000, seed=5)
    checks = {"post-transplant": ("T cells", 0.97), "t-treg-tube": ("CD4 T", 0.97),
              "b-nk-tube": ("NK cells", 0.97), "dc-tube": ("Dendritic cells", 0.9)}
    for name, (population, bar) in checks.items():
        t = load_template(name)
        strategy, notes = t.strategy_for(sim.sample)
        assert notes == [], (name, notes)
        result = strategy.apply(sim.sample)
        got, truth = result.mask(population), sim.mask(population)
        f1 = 2 * np.sum(got & truth) / (got.sum() + truth.sum())
        assert f1 > bar, (name, population, f1)


def test_unknown_template_name_lists_the_shipped_ones():
    with pytest.raises(TemplateError, match="post-transplant"):
        load_template("no-such-panel")


def test_sample_without_debris_keeps_its_lymphocytes():
    # With no debris peak, the first FSC valley lies between lymphocytes and
    # granulocytes; the template's bound keeps the debris cut below every cell.
    sim = simulate.pbmc_sample(20_000, seed=9, frequencies={"Debris": 0.0})
    strategy, _ = load_template("post-transplant").strategy_for(sim.sample)
    result = strategy.apply(sim.sample)
    for population in ("Leukocytes", "Lymphocytes", "T cells"):
        got, truth = result.mask(population), sim.mask(population)
        f1 = 2 * np.sum(got & truth) / (got.sum() + truth.sum())
        assert f1 > 0.95, (population, f1)
