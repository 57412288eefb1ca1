"""FlowJo workspaces: exact counts on a synthetic workspace, FlowJo's own
transform tables, real workspaces with FlowJo's stored counts, round trips and
errors."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

import flowjo_synthetic as syn
from immunomon.errors import FlowJoError, ImmunomonError
from immunomon.gating import load_gatingml
from immunomon.gating.flowjo import (FlowJoBiex, FlowJoLog, FlowJoTable, biex_table,
                                     compare_counts, load_flowjo, save_flowjo)
from immunomon.gating.flowjo.gml import save_sample_gatingml

DATA = syn.DATA
REAL = DATA.parent / "real"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flowjo")
    fcs = syn.write_fcs_file(folder / "synthetic.fcs")
    wsp = folder / "synthetic.wsp"
    wsp.write_text(syn.workspace_xml(), encoding="utf-8")
    return wsp, fcs


# ----------------------------------------------------------------------------- transforms
def test_biex_table_matches_flowjo_export():
    """FlowJo 10's exported biex table (width -7.94, neg 1): every channel's value."""
    ref = np.loadtxt(DATA / "flowjo_biex_l256_w-7.943282_n1_m4.41854_r262144.000029.csv",
                     delimiter=",", skiprows=1)
    ours = biex_table(1.0, -7.943282, 4.41854, 262144.000029)
    assert ours.size == 4097
    # FlowJo prints six significant digits
    np.testing.assert_allclose(ours[:4096], ref[:, 1], rtol=5e-6, atol=5e-4)


def test_biex_table_matches_flowjo9_calibration_table():
    """FlowJo 9 wrote its biex (width -10, 4.5 decades) as a calibration table."""
    ws = load_flowjo(DATA / "A2004Analysis_A02.xml.gz")
    table = ws.samples[0].transforms["FITC-A"]
    assert isinstance(table, FlowJoTable)
    assert table.name.startswith("InputParameterTransform")
    np.testing.assert_allclose(biex_table(0.0, -10.0, 4.5, 262144.0), table.values,
                               rtol=1e-6, atol=1e-3)


def test_biex_apply_and_inverse():
    t = FlowJoBiex(neg=0, width=-10, pos=4.5, max_range=262144)
    channels = np.array([0.0, 455.0, 1000.5, 4096.0])
    x = t.inverse(channels)
    assert x[1] == pytest.approx(0.0, abs=1e-9)        # zero sits on channel 455 here
    np.testing.assert_allclose(t.apply(x), channels, atol=1e-9)
    assert t.apply(np.array([-1e6, 1e9])).tolist() == [0.0, 4096.0]   # off scale: on the axes


def test_biex_is_flowjos_logicle():
    """FlowJo's biex is the logicle with T = maxRange, W = log10(-width)/2, A = neg."""
    t = FlowJoBiex(neg=1.0, width=-7.943282, pos=4.41854, max_range=262144.000029)
    lg = t.logicle()
    assert lg.W == pytest.approx(math.log10(7.943282) / 2) and lg.A == 1.0
    x = t.table
    assert np.abs(lg.apply(x) * 4097 - np.arange(4097)).max() < 0.5


def test_flowjo_log_puts_low_values_on_the_axis():
    t = FlowJoLog(offset=10, decades=4)
    np.testing.assert_allclose(t.apply([-5.0, 10.0, 1000.0, 1e5]), [0, 0, 0.5, 1.0])


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_counts_exact(synthetic):
    wsp, fcs = synthetic
    ws = load_flowjo(wsp)
    table = compare_counts(ws, [fcs])
    got = dict(zip(table["path"], table["count"]))
    assert got == syn.expected_counts()
    assert (table["difference"] == 0).all()
    assert set(table["population"]) >= {"Q1 or Q3", "not Ell", "hi", "Ell", "NotDebris"}


def test_a_linear_axis_left_at_its_default_range(synthetic, tmp_path):
    """FlowJo 10 writes minRange = maxRange = 0 (or nothing) for a linear axis left at its
    default range; it reads as 0 to 262,144, gates on that axis included."""
    wsp, fcs = synthetic
    default = tmp_path / "default.wsp"
    default.write_text(wsp.read_text(encoding="utf-8").replace(
        'transforms:minRange="0" transforms:maxRange="262144"',
        'transforms:minRange="0" transforms:maxRange="0"'), encoding="utf-8")
    assert 'maxRange="0"' in default.read_text(encoding="utf-8")
    table = compare_counts(load_flowjo(default), [fcs])
    assert dict(zip(table["path"], table["count"])) == syn.expected_counts()
    # FlowJo 10.6 writes the same with no attributes at all
    bare = tmp_path / "bare.wsp"
    bare.write_text(wsp.read_text(encoding="utf-8").replace(
        'transforms:minRange="0" transforms:maxRange="262144" gain="1"', ""),
        encoding="utf-8")
    assert "<transforms:linear >" in bare.read_text(encoding="utf-8")
    table = compare_counts(load_flowjo(bare), [fcs])
    assert dict(zip(table["path"], table["count"])) == syn.expected_counts()


def test_gates_drawn_to_the_edge_of_the_axis(synthetic):
    """Cluster L lies beyond the top of FSC-A (1.5 x its range): FlowJo draws it on
    the axis's edge, so a range whose maximum is past the edge (1.3 x) and a
    polygon drawn along the edge both hold it, though its data values lie
    outside both."""
    from immunomon import read_fcs

    wsp, fcs = synthetic
    s = load_flowjo(wsp).samples[0]
    rng = s.population("FSC high").gate
    assert rng.bounds[0][1] < syn.to_data("FSC-A", 1.5)
    result = s.strategy().apply(read_fcs(fcs))
    assert result.count("FSC high") == result.count("Edge poly") == syn.CLUSTERS["L"][0]


def test_synthetic_reader_structure(synthetic):
    ws = load_flowjo(synthetic[0])
    s = ws.samples[0]
    assert s.file_name == "synthetic.fcs" and s.count == sum(c[0] for c in syn.CLUSTERS.values())
    assert s.compensation.prefix == "Comp-" and s.compensation.matrix.detectors == (
        "FL1-A", "FL2-A", "FL3-A")
    assert {k: type(v).__name__ for k, v in s.transforms.items()} == {
        "FSC-A": "FlowJoLinear", "SSC-A": "FlowJoLog", "FL1-A": "FlowJoBiex",
        "FL2-A": "Logicle", "FL3-A": "Asinh"}
    assert [p.id for p in s.populations if p.name == "hi"] == [
        "Cells/Lymph/CD3+/Q1: FL2-, FL3+/hi", "Cells/Lymph/CD3+/Q2: FL2+, FL3+/hi"]
    assert ws.groups == {"All Samples": ["1"]}


def test_polygons_are_evaluated_on_display_axes(synthetic):
    """Cluster B lies inside the triangle drawn through the data values of its
    vertices but outside it on FlowJo's log axis, where FlowJo draws it."""
    from immunomon import read_fcs
    from immunomon.gating import Dimension, GatingStrategy, PolygonGate

    wsp, fcs = synthetic
    lymph = load_flowjo(wsp).samples[0].population("Cells/Lymph").gate
    raw = GatingStrategy([PolygonGate("raw", [Dimension("FSC-A"), Dimension("SSC-A")],
                                      lymph.vertices)]).apply(read_fcs(fcs))
    cells = syn.expected_counts()
    in_triangle = sum(syn.CLUSTERS[c][0] for c in "CDEFGJK") + syn.CLUSTERS["B"][0]
    assert raw.count("raw") == in_triangle
    assert cells["Cells/Lymph"] == in_triangle - syn.CLUSTERS["B"][0]


def test_round_trip_wsp_immunomon_wsp(synthetic, tmp_path):
    from immunomon import read_fcs

    wsp, fcs = synthetic
    ws = load_flowjo(wsp)
    out = save_flowjo(ws, tmp_path / "again.wsp")
    again = load_flowjo(out)
    sample = read_fcs(fcs)
    first = ws.samples[0].strategy().apply(sample)
    second = again.samples[0].strategy().apply(sample)
    for pop in ws.samples[0].populations:
        assert np.array_equal(first.mask(pop.id), second.mask(pop.id)), pop.id
    assert [p.flowjo_count for p in again.samples[0].populations] == [
        p.flowjo_count for p in ws.samples[0].populations]
    assert again.samples[0].compensation.prefix == "Comp-"


def test_round_trip_wsp_gatingml(synthetic, tmp_path):
    from immunomon import read_fcs

    wsp, fcs = synthetic
    ws = load_flowjo(wsp)
    ids = save_sample_gatingml(ws.samples[0], tmp_path / "gates.xml")
    gml = load_gatingml(tmp_path / "gates.xml").apply(read_fcs(fcs))
    expected = syn.expected_counts()
    for path, gid in ids.items():
        if path in expected:
            assert gml.count(gid) == expected[path], path


def test_gatingml_export_validates_against_the_schema(synthetic, tmp_path):
    flowkit = pytest.importorskip("flowkit")
    ws = load_flowjo(synthetic[0])
    save_sample_gatingml(ws.samples[0], tmp_path / "gates.xml")
    flowkit.parse_gating_xml(str(tmp_path / "gates.xml"))


# ----------------------------------------------------------------------------- real data
REAL_A2004 = {    # FlowJo 9.2 (Mac) stored counts for a2004_O1T2pb05i_A2_A02.fcs
    "Live": 34469, "Live/APC": 2839, "Live/APC/B Cell": 1727, "Live/APC/mDC": 449,
    "Live/APC/pDC": 81, "Live/Monocytes": 1846, "Live/APC/mDC/TNFa+": 16,
    "Live/Monocytes/IL-6+": 72, "Live/Monocytes/TNFa+": 17,
}


def test_real_flowjo9_workspace_within_tolerance():
    """flowWorkspaceData's FlowJo 9 workspace on its FCS file (the gated channels)."""
    ws = load_flowjo(DATA / "A2004Analysis_A02.xml.gz")
    table = compare_counts(ws, [DATA / "a2004_O1T2pb05i_A2_A02.fcs"]).set_index("path")
    for path, fj in REAL_A2004.items():
        assert table.loc[path, "flowjo_count"] == fj
        tolerance = max(0.025 * fj, 5)         # 2.5%, or 5 events for small populations
        assert abs(table.loc[path, "count"] - fj) <= tolerance, path
    assert table.loc["Live/APC/mDC", "count"] == 449


def test_real_flowjo10_ellipse():
    """FlowKit's FlowJo 10 ellipse example: FlowJo counted 51 of 100 events."""
    ws = load_flowjo(DATA / "single_ellipse_51_events.wsp")
    table = compare_counts(ws, [DATA / "data_set_simple_line_100.fcs"])
    assert table["flowjo_count"].tolist() == [51] and table["count"].tolist() == [51]


def test_real_flowjo10_booleans_and_comp_prefix():
    """FlowKit's 8-colour ICS workspace: And/Or/Not nodes, Comp- channels, logicle."""
    ws = load_flowjo(DATA / "8_color_ICS_boolean_gate_testing.wsp.gz")
    assert len(ws.samples) == 3
    s = ws.sample("101_DEN084Y5_15_E01_008_clean.fcs")
    strategy = s.strategy()
    kinds = {p.id: type(p.gate).__name__ for p in s.populations}
    ops = {p.gate.operator for p in s.populations if kinds[p.id] == "WspBoolean"}
    assert ops == {"and", "or", "not"}
    cd4 = strategy.gate("Time/Singlets/aAmine-/CD3+/CD4+")
    assert {d.name for d in cd4.dimensions} == {"CD4 PE-Cy7 FLR-A", "CD8 PerCP-Cy55 FLR-A"}
    assert all(d.compensation == "flowjo" for d in cd4.dimensions)
    not_node = strategy.gate("Time/Singlets/aAmine-/CD3+/CD4+/IL2+-")
    assert not_node.operator == "not"
    assert [o.ref for o in not_node.operands] == ["Time/Singlets/aAmine-/CD3+/CD4+/IL2+"]


def test_a_template_name_may_be_the_workspace_parent_and_gate_names_together():
    # a template's names are unique, so the expert's IFNg+ under CD4+ and under CD8+ are
    # its "CD4 IFNg+" and "CD8 IFNg+"; a bare "IFNg+" names neither for sure
    from immunomon.gating.flowjo.apply import match_populations
    s = load_flowjo(DATA / "8_color_ICS_boolean_gate_testing.wsp.gz").samples[0]
    got = match_populations(s, [("CD4 IFNg+", "CD4 T"), ("CD8+ IFNg+", "CD8 T"),
                                ("CD8 CD107a+", "CD8 T"), ("IFNg+", None), ("CD4+", "T"),
                                ("CD4 IFNg-", "CD4 T")])
    base = "Time/Singlets/aAmine-/CD3+/"
    assert got == {"CD4 IFNg+": base + "CD4+/IFNg+", "CD8+ IFNg+": base + "CD8+/IFNg+",
                   "CD8 CD107a+": base + "CD8+/CD107a+", "CD4+": base + "CD4+"}


def test_a_plural_template_name_matches_the_experts_singular():
    # the A2004 expert's FlowJo 9 gate is "B Cell"; a template says "B cells"
    from immunomon.gating.flowjo.apply import match_populations
    s = load_flowjo(DATA / "A2004Analysis_A02.xml.gz").samples[0]
    got = match_populations(s, [("B cells", "APC"), ("Monocytes", "Live"), ("mDCs", "APC")])
    assert got == {"B cells": "Live/APC/B Cell", "Monocytes": "Live/Monocytes",
                   "mDCs": "Live/APC/mDC"}


def test_a_workspace_run_on_a_folder_without_fcs_files_is_an_error(tmp_path):
    ws = load_flowjo(DATA / "single_ellipse_51_events.wsp")
    with pytest.raises(FlowJoError, match="no FCS files found"):
        compare_counts(ws, [tmp_path])


# ----------------------------------------------------------------------------- errors
def test_missing_fcs_file_is_named(synthetic, tmp_path):
    wsp = tmp_path / "lonely.wsp"
    wsp.write_text(syn.workspace_xml("nowhere.fcs"), encoding="utf-8")
    with pytest.raises(FlowJoError, match="nowhere.fcs.*not found"):
        compare_counts(load_flowjo(wsp))


def test_a_file_beside_the_workspace_under_the_samples_name_is_found(tmp_path):
    """68983.wsp records its file as lymphocytes.fcs on another machine; the sample is
    68983.fcs, and a file of that name beside the workspace is its file."""
    import shutil
    for name in ("68983.wsp", "68983.fcs"):
        shutil.copy(REAL / name, tmp_path / name)
    ws = load_flowjo(tmp_path / "68983.wsp")
    assert ws.samples[0].file_name == "lymphocytes.fcs"
    assert ws.sample("68983") is ws.sample("68983.fcs") is ws.samples[0]
    table = compare_counts(ws)
    assert set(table["file"]) == {str(tmp_path / "68983.fcs")}
    assert table["difference"].abs().max() <= 13


def test_file_no_sample_uses(synthetic, tmp_path):
    other = tmp_path / "other.fcs"
    other.write_bytes(synthetic[1].read_bytes())
    with pytest.raises(FlowJoError, match="other.fcs: no sample"):
        compare_counts(load_flowjo(synthetic[0]), [other])


def test_unknown_transform_is_named(tmp_path):
    wsp = tmp_path / "odd.wsp"
    wsp.write_text(syn.workspace_xml(transforms=(
        '<transforms:miltenyi transforms:x="1"><data-type:parameter data-type:name="FL1-A" />'
        "</transforms:miltenyi>")), encoding="utf-8")
    (sample,) = load_flowjo(wsp).samples          # read: no gate has used FL1-A yet
    with pytest.raises(FlowJoError, match=r"transformation of 'FL1-A'.*unknown transformation"
                                          r" <miltenyi>"):
        sample.strategy()                           # its gates on FL1-A do


def test_channel_the_file_lacks_is_named(synthetic, tmp_path):
    wsp = tmp_path / "cd19.wsp"
    cd19 = ('<Population name="CD19+" owningGroup="" count="-1"><Gate gating:id="g">'
            '<gating:RectangleGate eventsInside="1"><gating:dimension gating:min="1000.0">'
            '<data-type:fcs-dimension data-type:name="FL9-A" /></gating:dimension>'
            "</gating:RectangleGate></Gate></Population>")
    wsp.write_text(syn.workspace_xml(extra_gate=cd19), encoding="utf-8")
    with pytest.raises(FlowJoError, match="synthetic.fcs.*FL9-A"):
        compare_counts(load_flowjo(wsp), [synthetic[1]])


def test_hostile_and_broken_xml(tmp_path):
    bomb = tmp_path / "bomb.wsp"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaa">]><Workspace>&a;'
                    "</Workspace>")
    with pytest.raises(FlowJoError, match="refused"):
        load_flowjo(bomb)
    broken = tmp_path / "broken.wsp.gz"
    broken.write_bytes(gzip.compress(b"<Workspace><SampleList>"))
    with pytest.raises(FlowJoError, match="not well-formed"):
        load_flowjo(broken)
    with pytest.raises(FlowJoError, match="cannot read"):
        load_flowjo(tmp_path / "absent.wsp")
    assert issubclass(FlowJoError, ImmunomonError)


# ----------------------------------------------------------------------------- immunomon -> FlowJo
def _random_sample(n=4000, seed=3):
    from immunomon.fcs import Channel, Sample, Spillover

    rng = np.random.default_rng(seed)
    ev = np.column_stack([rng.uniform(0, 250000, n), rng.uniform(0, 250000, n),
                          10 ** rng.uniform(-1, 5, n) * rng.choice([-0.05, 1], n),
                          10 ** rng.uniform(0, 5, n), rng.normal(2000, 3000, n)])
    chans = tuple(Channel(c, marker=m, range=262144.0) for c, m in
                  [("FSC-A", None), ("SSC-A", None), ("FL1-A", "CD3"), ("FL2-A", "CD4"),
                   ("FL3-A", "CD8")])
    spill = Spillover(("FL1-A", "FL2-A", "FL3-A"),
                      np.array([[1, 0.1, 0.0], [0.02, 1, 0.05], [0.0, 0.2, 1]]))
    return Sample(events=ev.astype(np.float32), channel_info=chans, keywords={},
                  spillover=spill)


def test_immunomon_gates_export_to_flowjo_and_back(tmp_path):
    """Every gate type, on logicle, arcsinh, Gating-ML linear and raw axes, with
    compensation: the exported workspace gives FlowJo's reading of the same
    memberships."""
    from immunomon.gating import (FCS, BooleanGate, Dimension, Divider, EllipsoidGate,
                                  GateReference, GatingStrategy, PolygonGate, Quadrant,
                                  QuadrantGate, RectangleGate)
    from immunomon.gating.flowjo import workspace_from_results
    from immunomon.transforms import Arcsinh, Linear, Logicle

    lg = Logicle(262144, 0.5, 4.5, 0)
    cd3, cd4 = Dimension("CD3", FCS, lg), Dimension("CD4", FCS, lg)
    cd8 = Dimension("CD8", FCS, Arcsinh(150))
    fsc, ssc = Dimension("FSC-A"), Dimension("SSC-A", transform=Linear(262144, 0))
    strategy = GatingStrategy([
        PolygonGate("Cells", [fsc, ssc], [(2e4, 0.04), (2.4e5, 0.08), (2.2e5, 0.92),
                                          (3e4, 0.6)]),
        RectangleGate("T cells", [cd3], [(0.45, None)], parent="Cells"),
        QuadrantGate("Q", [Divider("d4", cd4, [0.6]), Divider("d8", cd8, [3.0])],
                     [Quadrant("CD4+", {"d4": 1, "d8": 0}), Quadrant("CD8+", {"d4": 0, "d8": 5}),
                      Quadrant("DP", {"d4": 1, "d8": 5}), Quadrant("DN", {"d4": 0, "d8": 0})],
                     parent="T cells"),
        EllipsoidGate("Blob", [cd4, ssc], [0.7, 0.5], [[0.01, 0.004], [0.004, 0.03]], 4.0,
                      parent="Cells"),
        PolygonGate("Wedge", [cd3, cd8], [(0.3, 0.0), (0.9, 2.0), (0.5, 7.0)], parent="Cells"),
        BooleanGate("Blob not T", "and", [GateReference("Blob"),
                                          GateReference("T cells", complement=True)],
                    parent="Cells"),
        BooleanGate("Not wedge", "not", ["Wedge"], parent="Cells"),
    ])
    sample = _random_sample()
    result = strategy.apply(sample)
    ws = workspace_from_results([result], names=["tube"])
    path = save_flowjo(ws, tmp_path / "review.wsp")
    back = load_flowjo(path).samples[0]
    assert type(back.transforms["Comp-FL1-A"]).__name__ == "Logicle"
    again = back.strategy().apply(sample)
    for pop in back.populations:
        if pop.name in result.gate_ids:
            assert np.array_equal(result.mask(pop.name), again.mask(pop.id)), pop.id
            assert pop.flowjo_count == result.count(pop.name)
    counts = {g: result.count(g) for g in result.gate_ids}
    assert all(n > 20 for n in counts.values()), counts      # every gate holds events
    assert counts["Blob not T"] < counts["Blob"]
    assert {p.name for p in back.populations} >= {"not T cells", "CD8+", "Blob", "Wedge"}


@pytest.fixture(scope="module")
def flowjo9():
    from immunomon import read_fcs

    ws = load_flowjo(DATA / "A2004Analysis_A02.xml.gz")
    fcs = read_fcs(DATA / "a2004_O1T2pb05i_A2_A02.fcs")
    return ws, fcs, ws.samples[0].strategy().apply(fcs)


def _mismatches(sample, ids, first, second):
    return {p.id: int(np.count_nonzero(first.mask(p.id) != second.mask(ids.get(p.id, p.id))))
            for p in sample.populations}


def test_flowjo9_workspace_saved_as_flowjo10(flowjo9, tmp_path):
    """FlowJo 9's calibration tables become fitted FlowJo 10 biex transforms and its
    polygons keep their outline: every polygon and range keeps its events; the
    ellipse (redrawn in FlowJo 10's form) moves by a few edge events."""
    ws, fcs, first = flowjo9
    saved = save_flowjo(ws, tmp_path / "a2004_flowjo10.wsp")
    back = load_flowjo(saved).samples[0]
    assert all(isinstance(t, FlowJoBiex) for t in back.transforms.values())
    # the excerpt's group still names the sample left out of it; the copy does not
    assert '<SampleRef sampleID="1"' not in saved.read_text()
    assert f'<SampleRef sampleID="{back.id}"' in saved.read_text()
    fitted = back.transforms["<FITC-A>"]
    table = ws.samples[0].transforms["<FITC-A>"]
    assert np.abs(fitted.apply(table.values) - np.arange(4097)).max() < 1.5   # channels
    second = back.strategy().apply(fcs)
    bad = _mismatches(ws.samples[0], {}, first, second)
    ellipse = "Live/CD14-MHC2-"
    assert {k: v for k, v in bad.items() if k != ellipse and v} == {}
    assert bad[ellipse] <= 0.001 * first.count(ellipse)


def test_flowjo9_workspace_to_gatingml(flowjo9, tmp_path):
    """Events FlowJo piles on the axis stay inside polygons drawn along it."""
    ws, fcs, first = flowjo9
    ids = save_sample_gatingml(ws.samples[0], tmp_path / "a2004.xml")
    second = load_gatingml(tmp_path / "a2004.xml").apply(fcs)
    bad = _mismatches(ws.samples[0], ids, first, second)
    assert bad["Live/APC/B Cell"] == 0 and bad["Live/APC/pDC"] == 0 and bad["Live"] == 0
    for path, n in bad.items():
        assert n <= max(2, 0.001 * first.count(path)), path


def test_gate_job_result_exports_to_flowjo(tmp_path):
    """The gate job's concrete gates for one demo file (post-transplant template:
    singlet polygon, thresholds, cluster ellipses, quadrants, booleans with
    complements) read back from the FlowJo workspace with every membership."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.gating.flowjo import workspace_from_results
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import load_template

    fcs = Path(__file__).parents[1] / "fixtures" / "pbmc_03_clog.fcs"
    gating = gate_sample(read_fcs(fcs), load_template("post-transplant"))
    result = gating.result
    path = save_flowjo(workspace_from_results([result]), tmp_path / "pbmc_03_clog.wsp")
    back = load_flowjo(path).samples[0]
    again = back.strategy().apply(result.sample)
    kinds = {type(p.gate).__name__ for p in back.populations}
    assert kinds == {"WspPolygon", "WspRectangle", "WspEllipse", "WspBoolean"}
    assert {p.name for p in back.populations} >= set(result.gate_ids)
    for pop in back.populations:
        if pop.name in result.gate_ids:
            assert np.array_equal(result.mask(pop.name), again.mask(pop.id)), pop.id


def test_an_exported_workspace_reads_in_flowkit_as_in_flowjo(tmp_path):
    """Two forms FlowJo writes and FlowKit relies on: a compensated channel's transform is
    listed under its plain name too, and a linear axis reaches at least twice as far
    above 0 as below it (FlowKit reads minRange as flin's A: (x + min) / (max + min) ran
    a display export's axis, -19,299 below a top of 4,097, backwards)."""
    import xml.etree.ElementTree as ET

    from immunomon.fcs.sample import Channel, Sample, Spillover
    from immunomon.gating import FCS, Dimension, GatingStrategy, RectangleGate
    from immunomon.gating.flowjo import workspace_from_results
    from immunomon.transforms import Logicle

    rng = np.random.default_rng(3)
    n = 4000
    ev = np.column_stack([rng.uniform(0, 4000, n), rng.normal(1500, 6000, n),
                          rng.uniform(0, 2e5, n), rng.uniform(0, 2e5, n)]).astype(np.float32)
    chans = (Channel("FSC-A", range=4096.0), Channel("FL3-A", marker="CD8", range=4096.0),
             Channel("FL1-A", marker="CD3", range=262144.0),
             Channel("FL2-A", marker="CD4", range=262144.0))
    spill = Spillover(("FL1-A", "FL2-A"), np.array([[1, 0.1], [0.02, 1]]))
    sample = Sample(events=ev, channel_info=chans, keywords={"$FIL": "tube.fcs"},
                    spillover=spill)
    lg = Logicle(262144, 0.5, 4.5, 0)
    strategy = GatingStrategy([
        RectangleGate("CD8+", [Dimension("FL3-A")], [(2400.0, None)]),
        RectangleGate("CD3+", [Dimension("CD3", FCS, lg)], [(0.5, None)], parent="CD8+")])
    result = strategy.apply(sample)
    path = save_flowjo(workspace_from_results([result], names=["tube.fcs"]),
                       tmp_path / "tube.wsp")
    xf = {}                                  # channel -> its transform element
    for el in ET.parse(path).getroot().iter():
        if el.tag.split("}")[-1] in ("linear", "logicle", "biex", "log"):
            param = next(c for c in el if c.tag.endswith("}parameter"))
            xf[next(v for k, v in param.attrib.items() if k.endswith("}name"))] = el
    assert {"Comp-FL1-A", "FL1-A", "FL3-A"} <= set(xf)
    assert xf["FL1-A"].attrib == xf["Comp-FL1-A"].attrib
    lo, hi = (float(next(v for k, v in xf["FL3-A"].attrib.items() if k.endswith(key)))
              for key in ("minRange", "maxRange"))
    assert lo <= float(ev[:, 1].min()) and hi >= -2 * lo
    back = load_flowjo(path).samples[0].strategy().apply(sample)
    for pop in ("CD8+", "CD3+"):
        assert np.array_equal(back.mask(pop if pop == "CD8+" else "CD8+/CD3+"),
                              result.mask(pop))
    flowkit = pytest.importorskip("flowkit")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fcs = tmp_path / "tube.fcs"
        from immunomon import write_fcs
        write_fcs(fcs, sample)
        fk = flowkit.Workspace(str(path), fcs_samples=str(fcs), filename_as_id=True)
        sid = fk.get_sample_ids()[0]
        fk.analyze_samples(sample_id=sid)
        counts = {r.gate_name: r["count"] for _, r in
                  fk.get_gating_results(sid).report.iterrows()}
    assert counts == {"CD8+": result.count("CD8+"), "CD3+": result.count("CD3+")}


def test_flowkit_reads_the_synthetic_workspace_alike(synthetic):
    """An independent reader (FlowKit) gets the designed counts from the synthetic
    workspace too, except for the gates drawn to the axis edge, whose FlowJo
    reading FlowKit does not follow (its issue #280)."""
    import warnings

    flowkit = pytest.importorskip("flowkit")
    wsp, fcs = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fk = flowkit.Workspace(str(wsp), fcs_samples=str(fcs))
        fk.analyze_samples()
        report = fk.get_analysis_report()
    theirs = {"/".join([*r.gate_path[1:], r.gate_name]): r.count
              for r in report.itertuples()}
    expected = syn.expected_counts()
    for path in ("FSC high", "Edge poly"):
        expected.pop(path)
        theirs.pop(path)
    assert theirs == expected


def test_a_quadrant_gate_too_small_to_place_is_empty_in_both_exports(tmp_path):
    # a parent of 6 events: no dividers can be found and the quadrants hold nothing;
    # Gating-ML's and FlowJo's quadrants share out every event of their parent, so the
    # exports write rectangles that hold none (the placeholder dividers put all 6 in one)
    from immunomon import simulate
    from immunomon.gating.flowjo import workspace_from_results
    from immunomon.gating.gatingml import load_gatingml, save_gatingml
    from immunomon.gating.run import concrete_strategy, gate_sample
    from immunomon.gating.template import parse_template

    sample = simulate.pbmc_sample(5_000, seed=1).sample
    fsc = sample.events[:, sample.channel_index("FSC-A")]
    lo = float(np.sort(fsc[fsc < 262_000])[-6])
    template = parse_template(
        "panel: few\nversion: '1'\nmarkers: {CD4: [CD4], CD8: [CD8]}\ncompensation: file\n"
        "transforms: {fluorescence: {logicle: {T: 262144, W: 0.5, M: 4.5, A: 0}}, "
        "scatter: linear}\npopulations:\n"
        f"  - name: Few\n    parent: root\n    dims: [FSC-A]\n"
        f"    gate: {{rectangle: {{bounds: [[{lo}, 262000]]}}}}\n"
        "  - name: T subsets\n    parent: Few\n    dims: [CD4, CD8]\n    method: quadrant\n"
        "    args:\n      quadrants: {CD4 T: [above, below], CD8 T: [below, above], "
        "DN T: [below, below], DP T: [above, above]}\n", "few.yaml")
    result = gate_sample(sample, template, exclude_anomalies=False).result
    quadrants = ("CD4 T", "CD8 T", "DN T", "DP T")
    assert result.count("Few") == 6 and all(result.count(q) == 0 for q in quadrants)
    concrete, ids = concrete_strategy(result)
    save_gatingml(concrete, tmp_path / "gates.xml")
    again = load_gatingml(tmp_path / "gates.xml").apply(sample)
    assert all(again.count(ids[q]) == 0 for q in quadrants) and "T subsets" not in ids
    back = load_flowjo(save_flowjo(workspace_from_results([result]), tmp_path / "few.wsp"))
    flowjo = back.samples[0].strategy().apply(sample)
    for pop in back.samples[0].populations:
        if pop.name in quadrants:
            assert flowjo.count(pop.id) == 0 and pop.flowjo_count == 0


# Three FlowJo 10 workspaces of other labs that once stopped the replay outright, each
# with the one file it gates (tests/data/flowjo/SOURCES.md); FlowJo's own counts stored
# in them, FlowKit's the same.
OTHER_LABS = {
    # FlowJo writes the channel v-450/50-B-A as v-450_50-B-A in gates, matrix and keywords
    "fcexpr_slash": {"RPTECs": 475, "RPTECs/DAPI-": 422, "RPTECs/DAPI-/GFP+": 212},
    # a linear range stored backwards on Time, an axis no gate uses
    "coereba_time_range": {"Vd2": 47},
    # an unmixed Aurora export whose channels are named Comp-BUV661-A, with no matrix
    "coereba_comp_names": {"Vd2": 52},
}


@pytest.mark.parametrize("case", sorted(OTHER_LABS))
def test_other_labs_workspaces_replay_flowjos_counts(case):
    folder = DATA / case
    ws = load_flowjo(next(folder.glob("*.wsp")))
    table = compare_counts(ws, [next(folder.glob("*.fcs"))]).set_index("path")
    assert table.attrs["notes"] == []
    for path, fj in OTHER_LABS[case].items():
        assert table.loc[path, "flowjo_count"] == fj
        assert abs(table.loc[path, "count"] - fj) <= 1, path   # an event on an edge


def test_an_unreadable_transform_is_an_error_only_where_a_gate_uses_it():
    ws = load_flowjo(next((DATA / "coereba_time_range").glob("*.wsp")))
    (sample,) = ws.samples
    assert "Time" not in sample.transforms and "minRange 0.133 must be below maxRange " \
        "0.051" in sample.transform_errors["Time"]
    with pytest.raises(FlowJoError, match="transformation of 'Time'"):
        sample.dimension("Time")


def test_a_channel_named_comp_is_compensated_only_where_the_file_lacks_that_name():
    ws = load_flowjo(next((DATA / "coereba_comp_names").glob("*.wsp")))
    (sample,) = ws.samples
    assert sample.compensation is None
    with pytest.raises(FlowJoError, match="has no compensation matrix"):
        sample.dimension("Comp-BUV661-A")           # the file's channels unknown
    strategy = sample.strategy(channels=("Time", "Comp-BUV661-A"))
    (dim,) = [d for g in strategy.gates if hasattr(g, "dimensions") for d in g.dimensions
              if d.name == "Comp-BUV661-A"][:1]
    assert dim.compensation == "uncompensated"
