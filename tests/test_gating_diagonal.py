"""Light chains read as an expert reads them: each B cell on the side of the diagonal
through a population stained by neither (``method: diagonal``), on constructed data
with known answers."""

from __future__ import annotations

import numpy as np
import pytest

import immunomon
from immunomon.errors import TemplateError
from immunomon.fcs.sample import Channel, Sample
from immunomon.gating import methods
from immunomon.gating.run import gate_sample
from immunomon.gating.template import parse_template

TEMPLATE = """
panel: light chains
version: "1"
markers:
  CD3: [CD3]
  CD19: [CD19]
  IgK: [IgK]
  IgL: [IgL]
compensation: none
transforms: {fluorescence: linear, scatter: linear}
populations:
  - name: T cells
    parent: root
    dims: [CD3]
    method: threshold
    args: {side: above}
  - name: Non-T
    parent: root
    gate: {not: T cells}
  - name: B cells
    parent: Non-T
    dims: [CD19]
    method: threshold
    args: {side: above}
  - name: B kappa
    parent: B cells
    dims: [IgK, IgL]
    method: diagonal
    args: {side: above, negative: T cells}
  - name: B lambda
    parent: B cells
    gate: {not: B kappa}
"""


def blood(b_cells: list[tuple[int, float, float]], seed: int = 3):
    """A display export's events: 20,000 T cells stained by neither light chain (IgK
    about 2,000, IgL about 2,250), 8,000 other CD3- CD19- cells, and B cells of the
    given (count, IgK, IgL) groups, each spread by 350; returns the sample and each
    event's group (-1 the T cells, -2 the others)."""
    rng = np.random.default_rng(seed)
    n_t, n_o = 20_000, 8_000
    rows = [np.column_stack([rng.normal(6000, 400, n_t), rng.normal(2000, 300, n_t),
                             rng.normal(2000, 350, n_t), rng.normal(2250, 350, n_t)]),
            np.column_stack([rng.normal(2000, 300, n_o), rng.normal(2000, 300, n_o),
                             rng.normal(2600, 500, n_o), rng.normal(2400, 400, n_o)])]
    group = [np.full(n_t, -1), np.full(n_o, -2)]
    for k, (n, igk, igl) in enumerate(b_cells):
        rows.append(np.column_stack([rng.normal(2000, 300, n), rng.normal(6000, 400, n),
                                     rng.normal(igk, 350, n), rng.normal(igl, 350, n)]))
        group.append(np.full(n, k))
    channels = tuple(Channel(name=f"FL{i + 1}-A", marker=m, range=8192.0)
                     for i, m in enumerate(("CD3", "CD19", "IgK", "IgL")))
    sample = Sample(events=np.vstack(rows).astype(np.float32), channel_info=channels,
                    keywords={})
    return sample, np.concatenate(group)


def gated(sample):
    return gate_sample(sample, parse_template(TEMPLATE, "light.yaml"), exclude_anomalies=False)


def f1(got, want) -> float:
    return 2 * np.count_nonzero(got & want) / max(got.sum() + want.sum(), 1)


def test_polyclonal_b_cells_part_into_kappa_and_lambda():
    sample, group = blood([(3000, 6300, 3200), (2000, 3700, 6000)])
    result = gated(sample).result
    assert f1(result.mask("B kappa"), group == 0) > 0.99
    assert f1(result.mask("B lambda"), group == 1) > 0.99


@pytest.mark.parametrize("clone, restricted", [((4300, 2950), "B kappa"),
                                               ((2300, 3900), "B lambda")])
def test_a_dim_clone_goes_whole_to_its_light_chain(clone, restricted):
    """A lymphoma's clone is most of the B cells and a dim light chain its one peak: a
    threshold on either channel has a lone peak on a linear axis, whose side nothing
    says (an LST export's kappa clone went to neither light chain); against the T
    cells' diagonal it is brighter in one, and no part of it crosses to the other."""
    sample, group = blood([(30_000, *clone), (150, 6300, 3200), (100, 3700, 6000)])
    gating = gated(sample)
    got = gating.result.mask(restricted)
    assert np.mean(got[group == 0]) > 0.995
    assert not [f for f in gating.qc_flags if f.population in ("B kappa", "B lambda")
                and f.level != "info"]


def test_a_clone_brighter_in_neither_is_split_and_the_sample_says_so():
    sample, group = blood([(30_000, 2050, 2300)])
    gating = gated(sample)
    doubts = [f.message for f in gating.qc_flags if f.level == "warning"]
    assert any("brighter in neither channel" in m for m in doubts), doubts
    kappa = np.mean(gating.result.mask("B kappa")[group == 0])
    assert 0.2 < kappa < 0.8


def test_the_cut_moves_off_a_lone_peak_the_line_crosses_and_stays_between_two():
    rng = np.random.default_rng(5)
    clone = rng.normal(900.0, 700.0, 20_000)     # the line at -300 crosses its flank
    t = methods.diagonal_cut(clone, -300.0)
    assert t.fell_back and t.value < -300.0 and np.mean(clone > t.value) > 0.99
    narrow = rng.normal(900.0, 300.0, 20_000)     # ends before the line: the line stays
    assert methods.diagonal_cut(narrow, -300.0).value == -300.0
    both = np.concatenate([rng.normal(3000, 500, 5000), rng.normal(-2500, 500, 3000)])
    assert methods.diagonal_cut(both, -300.0).value == -300.0


def test_a_negative_population_too_small_leaves_the_gate_empty(tmp_path):
    text = TEMPLATE.replace("negative: T cells", "negative: Tiny").replace(
        "  - name: Non-T", "  - name: Tiny\n    parent: T cells\n    dims: [CD3]\n"
        "    method: threshold\n    args: {side: above, bounds: [7900, null]}\n"
        "  - name: Non-T")
    sample, _ = blood([(3000, 6300, 3200)])
    gating = gate_sample(sample, parse_template(text, "light.yaml"), exclude_anomalies=False)
    assert gating.result.mask("B kappa").sum() == 0
    assert any("too few to place its diagonal" in f.message for f in gating.qc_flags)


def test_a_few_negatives_still_place_the_line_with_a_doubt():
    """A lymphoma whose clone is most of a small file leaves few T cells (8 in a
    whole-blood LST file thinned to 1,666 events, which left the clone out): their
    median places the line; under ten of them, the gate says so."""
    from immunomon.gating.datadriven import DiagonalGate
    from immunomon.gating.dimensions import Dimension
    rng = np.random.default_rng(9)
    clone = (rng.normal(6300, 350, 1300), rng.normal(3200, 350, 1300))   # kappa
    gate = DiagonalGate("B kappa", [Dimension("IgK"), Dimension("IgL")], negative="T cells",
                        parent="B cells")
    for n, doubted in ((8, True), (30, False)):
        t_cells = (rng.normal(2000, 350, n), rng.normal(2250, 350, n))
        found = gate.resolve(clone, reference=t_cells)
        assert found.contains(clone).mean() > 0.99
        assert any("events of 'T cells' alone" in d for d in found.doubts) is doubted
    found = gate.resolve(clone, reference=(t_cells[0][:2], t_cells[1][:2]))
    assert not found.contains(clone).any() and "too few to place" in found.notes[0]


@pytest.mark.parametrize("args, says", [
    ("{side: above}", "diagonal needs args.negative"),
    ("{side: above, negative: NK cells}", "diagonal needs args.negative"),
    ("{side: left, negative: T cells}", "side"),
])
def test_a_diagonal_without_a_known_negative_population_is_refused(args, says):
    text = TEMPLATE.replace("{side: above, negative: T cells}", args)
    with pytest.raises(TemplateError, match=says) as e:
        parse_template(text, "light.yaml")
    assert "light.yaml, line" in str(e.value)


def test_a_diagonal_takes_two_dimensions():
    text = TEMPLATE.replace("dims: [IgK, IgL]", "dims: [IgK]")
    with pytest.raises(TemplateError, match="uses 2 dimension"):
        parse_template(text, "light.yaml")


def test_gate_writes_a_diagonal_and_its_page(tmp_path):
    from click.testing import CliRunner

    from immunomon.cli import main

    sample, _ = blood([(3000, 6300, 3200), (2000, 3700, 6000)])
    immunomon.write_fcs(tmp_path / "b.fcs", sample)
    (tmp_path / "light.yaml").write_text(TEMPLATE)
    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["gate", str(tmp_path / "b.fcs"), "-t",
                                    str(tmp_path / "light.yaml"), "--out", str(out)])
    assert run.exit_code == 0, run.output
    check = CliRunner().invoke(main, ["template", "check", str(tmp_path / "b.fcs"), "-t",
                                      str(tmp_path / "light.yaml"), "-o", str(tmp_path / "c")])
    assert check.exit_code == 0, check.output
    assert "diagonal" in (tmp_path / "c" / "b" / "check.html").read_text()
