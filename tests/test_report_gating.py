"""Gate plots (one PNG per gate type) and the per-sample and index HTML pages."""

import html
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from immunomon.gating import (BooleanGate, Dimension, Divider, EllipsoidGate, GateReference,
                              GatingStrategy, PolygonGate, Quadrant, QuadrantGate,
                              RectangleGate)
from immunomon.report import gate_plots, pages
from immunomon.report.gate_plots import (GATE_COLOUR, axis_label, ellipse_outline,
                                         find_gate, gate_title, limits, plot_all, plot_gate,
                                         plot_rows, safe_filename)
from immunomon.simulate import pbmc_sample
from immunomon.transforms import Logicle

HOSTILE = '<script>alert("x")</script> & $\\frac{1}{0}$'
L = Logicle()


def fl(marker):
    return Dimension(marker, "FCS", L)


@pytest.fixture(scope="module")
def result():
    sim = pbmc_sample(4000, seed=7)
    s = GatingStrategy()
    s.add(PolygonGate("Singlets", [Dimension("FSC-A"), Dimension("FSC-H")],
                      [(2e4, 1.5e4), (2.6e5, 2.1e5), (2.6e5, 2.5e5), (2e4, 2.2e4)]))
    s.add(RectangleGate("Leukocytes", [fl("CD45"), Dimension("SSC-A")],
                        [(0.55, None), (None, 2.0e5)], parent="Singlets"))
    s.add(EllipsoidGate("Lymphocytes", [Dimension("FSC-A"), Dimension("SSC-A")],
                        [55000, 14000], [[1e8, 2e7], [2e7, 2e7]], 4.0, parent="Leukocytes"))
    s.add(RectangleGate("T cells", [fl("CD3")], [(0.6, None)], parent="Lymphocytes"))
    s.add(QuadrantGate("CD4 vs CD8", [Divider("d4", fl("CD4"), [0.6]),
                                      Divider("d8", fl("CD8"), [0.6])],
                       [Quadrant("CD4+", {"d4": 1, "d8": 0}), Quadrant("CD8+", {"d4": 0, "d8": 1}),
                        Quadrant("DP", {"d4": 1, "d8": 1}), Quadrant("DN", {"d4": 0, "d8": 0})],
                       parent="T cells"))
    s.add(QuadrantGate("HLA-DR split", [Divider("dr", fl("HLA-DR"), [0.5])],
                       [Quadrant("DR+", {"dr": 1}), Quadrant("DR-", {"dr": 0})],
                       parent="CD4+"))
    s.add(EllipsoidGate("Blob3", [Dimension("FSC-A"), Dimension("SSC-A"), fl("CD45")],
                        [55000, 14000, 0.7], np.diag([1e8, 2e7, 0.01]), 9.0,
                        parent="Leukocytes"))
    s.add(EllipsoidGate("CD3 range", [fl("CD3")], [0.65], [[0.0025]], 4.0,
                        parent="Lymphocytes"))
    s.add(BooleanGate("non-T", "and", [GateReference("T cells", True), "Lymphocytes"]))
    s.add(RectangleGate(HOSTILE, [fl("CD19")], [(0.5, None)], parent="Lymphocytes"))
    return s.apply(sim.sample)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def gate_pixels(path) -> int:
    from matplotlib.image import imread
    rgb = (imread(path)[..., :3] * 255).round()
    target = np.array([int(GATE_COLOUR[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(rgb - target).max(axis=-1) <= 8))


# -- plots ----------------------------------------------------------------------------
@pytest.mark.parametrize("gate_id", ["Singlets", "Leukocytes", "Lymphocytes", "T cells",
                                     "CD4 vs CD8", "HLA-DR split", "Blob3", "CD3 range",
                                     HOSTILE])
def test_every_gate_type_gives_a_png_with_the_gate_drawn(result, gate_id, tmp_path):
    out = plot_gate(result, gate_id, tmp_path / "sub" / "g.png")
    assert out == tmp_path / "sub" / "g.png"
    assert png_size(out) == (460, 400)
    assert out.stat().st_size > 5000
    assert gate_pixels(out) > 50            # the gate outline is there
    assert [p.name for p in out.parent.iterdir()] == ["g.png"]   # no temporary left


def test_boolean_gate_has_no_plot(result, tmp_path):
    assert plot_gate(result, "non-T", tmp_path / "b.png") is None
    assert not (tmp_path / "b.png").exists()


def test_quadrant_population_finds_its_gate(result):
    gid, gate = find_gate(result, "DP")
    assert gid == "CD4 vs CD8" and isinstance(gate, QuadrantGate)
    with pytest.raises(Exception, match="no gate 'nope'"):
        find_gate(result, "nope")


def test_quadrant_dividers_are_drawn_where_their_quadrants_lie():
    """Full lines for a four-quadrant gate; a one-quadrant gate is outlined as its corner;
    and a y divider made for the events on one side of the x cut stops at that cut."""
    x, y = Divider("x", fl("CD127"), (0.4,)), Divider("y", fl("CD25"), (0.5,))
    corners = {"NN": (-1, -1), "NP": (-1, 1), "PN": (1, -1), "PP": (1, 1)}
    four = QuadrantGate("Q4", (x, y), tuple(Quadrant(q, (("x", 0.4 + a), ("y", 0.5 + b)))
                                               for q, (a, b) in corners.items()))
    lims = (0.0, 1.0)
    assert gate_plots.divider_span(four, x, lims) is None
    assert gate_plots.divider_span(four, y, lims) is None
    treg = QuadrantGate("Q1", (x, y), (Quadrant("Treg", (("x", -0.6), ("y", 1.5))),))
    assert gate_plots.divider_span(treg, x, lims) == (0.5, 1.0)      # above the CD25 cut
    assert gate_plots.divider_span(treg, y, lims) == (0.0, 0.4)      # left of the CD127 cut
    below = Divider("y.below", fl("CD25"), (0.3,))
    above = Divider("y.above", fl("CD25"), (0.6,))
    split = QuadrantGate("S", (x, below, above), (
        Quadrant("a", (("x", -0.6), ("y.below", 1.3))),
        Quadrant("b", (("x", -0.6), ("y.below", -0.7))),
        Quadrant("c", (("x", 1.4), ("y.above", 1.6))),
        Quadrant("d", (("x", 1.4), ("y.above", -0.4)))))
    assert gate_plots.plot_dimensions(split) == (fl("CD127"), fl("CD25"))
    assert gate_plots.divider_axes(split) == {"x": 0, "y.below": 1, "y.above": 1}
    assert gate_plots.divider_span(split, x, lims) is None
    assert gate_plots.divider_span(split, below, lims) == (0.0, 0.4)
    assert gate_plots.divider_span(split, above, lims) == (0.4, 1.0)
    assert gate_plots.gate_extent(split) == [[0.4], [0.3, 0.6]]


def test_a_quadrant_plot_counts_the_events_no_population_names(result, tmp_path,
                                                                 monkeypatch):
    """A quadrant gate naming some corners leaves the others' events in no table; its
    plot says how many (a docs-only template's CD123 cut ran through the mDC cloud and
    left 29 of them in the unnamed corner, which no page counted)."""
    said = []
    real = gate_plots._Panel.text
    monkeypatch.setattr(gate_plots._Panel, "text", lambda self, x, y, s, **k: (
        said.append(str(s)), real(self, x, y, s, **k))[1])
    plot_gate(result, "HLA-DR split", tmp_path / "all.png")
    assert not any("in no named quadrant" in s for s in said)     # both sides named
    s = GatingStrategy()
    s.add(QuadrantGate("CD4 vs CD8", [Divider("d4", fl("CD4"), [0.6]),
                                      Divider("d8", fl("CD8"), [0.6])],
                       [Quadrant("CD4+", {"d4": 1, "d8": 0}),
                        Quadrant("CD8+", {"d4": 0, "d8": 1})]))
    two = s.apply(result.sample)
    left = two.n_events - two.count("CD4+") - two.count("CD8+")
    plot_gate(two, "CD4 vs CD8", tmp_path / "two.png")
    assert left > 0 and any(f"in no named quadrant: {left:,} " in s for s in said)


def test_size_and_resolution_follow_arguments(result, tmp_path):
    out = plot_gate(result, "Lymphocytes", tmp_path / "l.png", figsize=(3, 2), dpi=80)
    assert png_size(out) == (240, 160)


def test_title_counts_match_an_independent_count(result):
    # Singlets: the polygon on raw FSC-A / FSC-H, counted here with matplotlib's Path
    from matplotlib.path import Path as MPath
    s = result.sample
    verts = result.gates["Singlets"].vertices
    inside = MPath(verts).contains_points(np.column_stack([s["FSC-A"], s["FSC-H"]]))
    title = gate_title(result, "Singlets")
    assert title == (f"Singlets: {inside.sum():,} events\n"
                     f"{100 * inside.sum() / s.n_events:.2f}% of all events")
    # T cells within lymphocytes, with a display label
    lym = result.mask("Lymphocytes")
    cd3 = L.apply(result.values.channel("CD3", "FCS"))
    t = np.count_nonzero(lym & (cd3 >= 0.6))
    title = gate_title(result, "T cells", labels={"T cells": "CD3+", "Lymphocytes": "Lym"})
    assert title == f"CD3+: {t:,} events\n{100 * t / lym.sum():.2f}% of Lym"
    assert gate_title(result, "CD4 vs CD8") == (
        f"CD4 vs CD8\nof T cells ({result.count('T cells'):,} events)")


def test_axis_labels_name_marker_and_channel(result):
    assert axis_label(result.sample, fl("CD3")) == "CD3 (BV786-A)"
    assert axis_label(result.sample, Dimension("FSC-A")) == "FSC-A"
    assert axis_label(result.sample, Dimension("FITC-A")) == "CD127 (FITC-A)"


def test_a_pile_of_tied_events_does_not_flatten_a_histogram():
    """A CyTOF channel's zero counts filled one bin with 9,054 of a CD3- CD14- parent's
    events and flattened its B cells to a sliver; a bin over four times the next highest
    is cut at twice that one (its count is written on it), others set the axis as before."""
    from immunomon.report.gate_plots import histogram_height

    counts = np.array([9054, 820, 400, 150, 60, 90, 180, 120, 30])
    height, cut = histogram_height(counts)
    assert cut == 0 and height == pytest.approx(2 * 820 * 1.05)
    even = np.array([300, 820, 400, 150])
    assert histogram_height(even) == (pytest.approx(820 * 1.05), None)
    assert histogram_height(np.array([5]))[1] is None
    assert histogram_height(np.zeros(4, int)) == (pytest.approx(1.05), None)


def test_ellipse_outline_lies_on_the_ellipse():
    mean = np.array([2.0, -1.0])
    cov = np.array([[4.0, 1.5], [1.5, 1.0]])
    pts = ellipse_outline(mean, cov, 2.5)
    d = pts - mean
    q = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    assert np.allclose(q, 2.5)
    # extreme x of the ellipse: mean +- sqrt(d * var_x)
    assert pts[:, 0].max() == pytest.approx(2.0 + np.sqrt(2.5 * 4.0), rel=1e-3)


def test_subsampling_and_limits():
    rows = np.arange(100_000)
    sub = plot_rows(rows, 1000)
    assert sub.size == 1000 and sub[0] == 0 and sub[-1] == 99_999
    assert np.all(np.diff(sub) > 0)
    assert plot_rows(rows[:10], 1000).size == 10
    lo, hi = limits(np.linspace(0, 1, 10_001), extra=[2.0, None])
    assert lo == pytest.approx(0.0005 - 0.05 * (2 - 0.0005))
    assert hi == pytest.approx(2.0 + 0.05 * (2 - 0.0005))
    assert limits(np.array([np.nan])) == (-0.05, 1.05)
    # a polygon's far vertices stop half the events' range beyond them (a hand-drawn
    # singlet band to the top of the scale left the events in a corner of the plot)
    lo, hi = limits(np.linspace(0, 1, 10_001), extra=[0.0, 26.0], reach=0.5)
    top = 0.9995 + 0.5 * (0.9995 - 0.0005)            # the vertex at 26 stops here
    assert (lo, hi) == (pytest.approx(-0.05 * top), pytest.approx(1.05 * top))
    # a few far events (over-compensated, 0.1% of them at -15) do not stretch the axis:
    # it stops half the central 98%'s width beyond it
    v = np.concatenate([np.linspace(0, 1, 20_000), np.full(20, -15.0)])
    lo, hi = limits(v)
    assert -0.8 < lo < -0.4 and hi < 1.1


def test_empty_parent_still_plots(tmp_path):
    sim = pbmc_sample(500, seed=1)
    s = GatingStrategy()
    s.add(RectangleGate("none", [Dimension("FSC-A")], [(1e9, None)]))
    s.add(RectangleGate("child", [Dimension("FSC-A"), Dimension("SSC-A")],
                        [(1, 2), (1, 2)], parent="none"))
    r = s.apply(sim.sample)
    out = plot_gate(r, "child", tmp_path / "c.png")
    assert png_size(out) == (460, 400)
    assert gate_title(r, "child").endswith("nan% of none")


def test_a_population_taken_as_absent_plots_without_warnings(tmp_path):
    # the gate of an absent population starts at +inf (granulocytes in a Ficoll sample):
    # nothing to draw, and no NaN geometry handed to matplotlib
    import warnings
    sim = pbmc_sample(2000, seed=1)
    s = GatingStrategy()
    s.add(RectangleGate("absent", [Dimension("FSC-A"), Dimension("SSC-A")],
                        [(np.inf, None), (np.inf, None)]))
    s.add(RectangleGate("absent 1-D", [Dimension("SSC-A")], [(np.inf, None)]))
    r = s.apply(sim.sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for gid in ("absent", "absent 1-D"):
            assert png_size(plot_gate(r, gid, tmp_path / f"{gid}.png")) == (460, 400)
        assert gate_plots.plot_summary(r, tmp_path / "overview.png").is_file()


def test_gate_plots_use_no_pyplot_state():
    src = Path(gate_plots.__file__).read_text()
    assert "import pyplot" not in src and "matplotlib.pyplot" not in src


# -- pages ------------------------------------------------------------------------------
def test_sample_page_escapes_everything(tmp_path):
    plot = tmp_path / 'plots' / 'a b&"<.png'
    plot.parent.mkdir()
    plot.write_bytes(b"\x89PNG fake")
    table = [{"population": HOSTILE, "parent": "Lymphocytes", "count": 1234,
              "percent_of_parent": 12.3456, "cells_per_ul": float("nan")}]
    out = pages.sample_page(
        tmp_path / "s.html", sample_name=f"patient {HOSTILE}",
        hierarchy={"Lymphocytes": None, HOSTILE: "Lymphocytes"},
        table=table, plots={HOSTILE: plot, "skipped": None},
        qc_flags=[f"flag {HOSTILE}"], warnings=["<b>w</b>"])
    text = out.read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>w</b>" not in text
    assert text.count(html.escape(HOSTILE, quote=True)) >= 5   # title, h1, tree, table, figure
    assert 'src="plots/a%20b%26%22%3C.png"' in text
    assert "1,234" in text and "12.35" in text
    assert "QC flags (1)" in text and "skipped" not in text
    assert {p.name for p in tmp_path.iterdir()} == {"plots", "s.html"}   # no temporary left


def test_sample_page_embeds_images_on_request(tmp_path):
    plot = tmp_path / "g.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\nabc")
    out = pages.sample_page(tmp_path / "s.html", sample_name="s", hierarchy={}, table=None,
                            plots=[("g", plot)], embed_images=True)
    assert 'src="data:image/png;base64,iVBORw0KGgphYmM="' in out.read_text()


def test_hierarchy_is_an_indented_tree():
    tree = pages.hierarchy_html({"Singlets": None, "Leukocytes": "Singlets",
                                 "Lymphocytes": "Leukocytes", "Monocytes": "Leukocytes",
                                 "Beads": "Singlets", "Orphan": "missing"})
    assert tree == ('<ul class="tree"><li>Singlets<ul><li>Leukocytes<ul><li>Lymphocytes</li>'
                    '<li>Monocytes</li></ul></li><li>Beads</li></ul></li>'
                    '<li>Orphan</li></ul>')


def test_table_from_dataframe():
    import pandas as pd
    df = pd.DataFrame({"population": ["A<"], "count": [5], "pct": [0.12345], "big": [123456.7],
                       "flag": [True]})
    t = pages.table_html(df)
    assert "<th>population</th>" in t and "<td>A&lt;</td>" in t
    assert "<td>5</td><td>0.1235</td><td>123,457</td><td>yes</td>" in t


def test_index_page_links_and_status(tmp_path):
    rows = [
        {"sample": "ok.fcs", "status": "ok", "page": tmp_path / "ok" / "index.html",
         "events": 50000, "flags": []},
        {"sample": HOSTILE, "status": "warning", "page": tmp_path / "x y" / "p.html",
         "events": 100, "flags": ["a", "b"]},
        {"sample": "bad.fcs", "status": "failed", "message": "bad <TEXT> segment"},
        {"sample": "empty.fcs", "status": "failure", "events": 900, "flags": ["c"]},
    ]
    out = pages.index_page(tmp_path / "index.html", rows)
    text = out.read_text()
    assert "<script>" not in text
    assert '<a href="ok/index.html">ok.fcs</a>' in text
    assert 'href="x%20y/p.html"' in text
    assert ("4 samples: 1 could not be gated, 1 gated with a QC failure, 1 gated with QC "
            "warnings, 1 ok.") in text
    assert "bad &lt;TEXT&gt; segment" in text
    assert re.search(r'status-warning">warning</td><td>100</td><td>2</td>', text)
    # the samples to review come first: failed, failure, warning, then ok
    order = [text.index(s) for s in ("bad.fcs", "empty.fcs", "x%20y", "ok.fcs")]
    assert order == sorted(order)


def test_plot_all_writes_safe_unique_names(result, tmp_path):
    out = plot_all(result, tmp_path, prefix="s1_")
    # every gate, the boolean non-T cells too: no rectangle, they are drawn as their own
    # events over all events, on CD3 and forward scatter (their operands' dimensions)
    assert list(out) == list(result.gates)
    assert out["non-T"].name == "s1_non-T.png"
    names = [p.name for p in out.values()]
    assert names[:2] == ["s1_Singlets.png", "s1_Leukocytes.png"]
    assert "s1_CD4_vs_CD8.png" in names
    assert all(p.parent == tmp_path for p in out.values())
    assert len(set(n.lower() for n in names)) == len(names)
    hostile = out[HOSTILE].name
    assert "/" not in hostile and "<" not in hostile and " " not in hostile
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "_.._etc_passwd"
    assert safe_filename("..") == "_"
    assert safe_filename("CD4+ T/Treg") == "CD4+_T_Treg"
    assert len(safe_filename("x" * 500)) == 80


# -- binned densities and the reused figure ----------------------------------------------
def test_density_2d_equals_numpy_histogram2d():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=50_000), rng.normal(size=50_000) * 2
    x[:10] = np.nan                          # not finite: left out, as outside the limits
    lims = [(-2.5, 2.5), (-3.0, 5.0)]
    ours = gate_plots.density_2d(x, y, lims, (50, 40))
    ok = np.isfinite(x)
    ref, _, _ = np.histogram2d(x[ok], y[ok], bins=(50, 40), range=lims)
    # numpy puts values equal to the upper edge in the last bin; none are here
    assert np.array_equal(ours, ref)


def test_bins_divide_the_pixels():
    assert gate_plots.aligned_bins(294, 200) == 147
    assert gate_plots.aligned_bins(288, 200) == 144
    assert gate_plots.aligned_bins(300, 64) == 60
    assert gate_plots.aligned_bins(97, 50) == 50          # a prime: nothing divides it


def test_a_reused_figure_draws_what_a_new_one_draws(result, tmp_path):
    from matplotlib.image import imread
    shared = gate_plots.GatePlotter()
    for gid in ("CD4 vs CD8", "T cells", "Blob3"):        # leave quadrants, lines, text
        shared.plot(result, gid, tmp_path / "before.png")
    reused = shared.plot(result, "Lymphocytes", tmp_path / "reused.png")
    fresh = plot_gate(result, "Lymphocytes", tmp_path / "fresh.png")
    assert np.array_equal(imread(reused), imread(fresh))


def test_summary_has_a_panel_per_gate(result, tmp_path):
    from matplotlib.image import imread
    out = gate_plots.plot_summary(result, tmp_path / "overview.png", columns=4)
    drawable = [g for g, gate in result.gates.items() if not isinstance(gate, BooleanGate)]
    rows = -(-len(drawable) // 4)
    assert png_size(out) == (4 * 200, rows * 200)
    assert gate_pixels(out) > 50 * len(drawable)          # every panel has its gate
    assert imread(out).shape[:2] == (rows * 200, 800)


def _gate_job_table(n_populations=32, markers=("CD127", "CD25", "CD123", "HLA-DR", "CD56",
                                                "FoxP3", "CD11c", "CD8", "CD4", "CD45",
                                                "CD16", "CD14", "CD19", "CD3")):
    """A population table with the gate job's columns: counts, percentages, absolute
    counts, then median, mean and geometric mean per marker (50 columns)."""
    import pandas as pd
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n_populations):
        row = {"population": f"Mononuclear CD3- CD19- subset {i}", "parent": "Lymphocytes",
               "count": int(rng.integers(0, 200_000)),
               "percent_of_parent": rng.uniform(0, 100), "percent_of_total": rng.uniform(0, 100),
               "percent_of_Lymphocytes": rng.uniform(0, 100),
               "percent_of_Leukocytes": rng.uniform(0, 100),
               "cells_per_ul": rng.uniform(0, 99_999)}
        for stat in ("median", "mean", "geometric_mean"):
            row.update({f"{stat} {m}": rng.uniform(-1000, 262_143) for m in markers})
        rows.append(row)
    return pd.DataFrame(rows)


def test_population_table_is_split_to_fit():
    table = _gate_job_table()
    text = pages.population_tables(table)
    assert text.count("<table>") == 2
    assert "<th>CD127</th>" in text and "median CD127" not in text and "mean CD3" not in text
    assert "<th>% of parent</th>" in text and "<th>cells/uL</th>" in text
    assert "Means and geometric means" in text
    v = table.loc[0, "median CD25"]
    assert f"<td>{v:,.0f}</td>" in text


@pytest.mark.slow
def test_sample_page_fits_a_laptop_window_in_headless_chromium(tmp_path):
    import browser
    binary = browser.chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    table = _gate_job_table()
    page = pages.sample_page(tmp_path / "index.html", sample_name="P01_M1",
                             hierarchy=dict(zip(table.population, table.parent)),
                             table=table, plots={})
    layout, stderr = browser.measure(binary, page, tmp_path, width=1400)
    assert len(layout["tables"]) == 2 and browser.console_errors(stderr) == []
    browser.assert_fits(layout, 1400)


def test_real_flowjo_sample_plots_every_gate(tmp_path):
    """Every gate of a real FlowJo 9 workspace applied to its file (flowWorkspaceData's
    A2004 tube: ellipses, polygons, rectangles on biex and linear scales) is drawn, on
    one reused figure and in the overview."""
    from testdata import DATA
    from immunomon.gating.flowjo import apply_workspace, load_flowjo

    ws = load_flowjo(DATA / "flowjo" / "A2004Analysis_A02.xml.gz")
    result = apply_workspace(ws, [DATA / "flowjo" / "a2004_O1T2pb05i_A2_A02.fcs"])[0].result
    drawable = [g for g, gate in result.gates.items()
                if not isinstance(gate, BooleanGate) and gate.dimensions]
    out = plot_all(result, tmp_path)
    assert list(out) == drawable and len(drawable) >= 9
    for path in out.values():
        assert png_size(path) == (460, 400) and gate_pixels(path) > 50, path.name
    overview = gate_plots.plot_summary(result, tmp_path / "overview.png")
    assert gate_pixels(overview) > 50 * len(drawable)


def test_overview_and_gate_plots_share_each_gates_events(result, tmp_path, monkeypatch):
    """plot_summary then plot_all (as the gate job calls them) gather and transform each
    parent's events once; another result gets views of its own, and a result no longer
    held takes its views with it."""
    import gc
    made = []
    real = gate_plots._make_view
    monkeypatch.setattr(gate_plots, "_make_view", lambda r, g, n: made.append(g) or real(r, g, n))
    gate_plots._forget_views(gate_plots._views[0])
    gate_plots.plot_summary(result, tmp_path / "overview.png")
    drawable = [g for g, gate in result.gates.items()
                if not isinstance(gate, BooleanGate) and gate.dimensions]
    assert len(made) == len(drawable)
    plot_all(result, tmp_path / "plots")
    assert len(made) == len(drawable) + 1          # and the axes of the boolean non-T
    # the overview bins fewer of the same events, within the same axis limits
    view = gate_plots.gate_view(result, "Lymphocytes", result.gates["Lymphocytes"])
    thin = view.thinned(500)
    assert thin.n_plotted == 500 and thin.lims == view.lims
    assert np.isin(thin.data[0], view.data[0]).all()
    other = pbmc_sample(1000, seed=2)
    s = GatingStrategy()
    s.add(RectangleGate("big", [Dimension("FSC-A")], [(5e4, None)]))
    again = s.apply(other.sample)
    plot_all(again, tmp_path / "other")
    assert len(made) == len(drawable) + 2
    del again
    gc.collect()
    assert gate_plots._views[0] is None and gate_plots._views[1] == {}


def test_limits_quantiles_equal_numpys():
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 2001, 50_000):
        x = rng.standard_cauchy(n)
        assert gate_plots._quantiles(x.copy(), (0.0005, 0.9995)) == pytest.approx(
            np.quantile(x, [0.0005, 0.9995]), rel=1e-12, abs=1e-12)


def test_a_population_is_coloured_over_its_parents_events_in_grey():
    """A boolean population drawn on its operands' axes: its bins coloured by their
    counts, its parent's other occupied bins grey, empty bins white."""
    population = np.array([[0.0, 5.0], [0.0, 0.0]])        # x bins x y bins
    parent = np.array([[3.0, 5.0], [0.0, 1.0]])
    cmap = gate_plots._viridis_white_under()
    pixels = gate_plots.density_pixels(population, cmap, 2, 2, parent)
    # rows bottom first: pixels[y, x]
    white, grey = (255, 255, 255, 255), gate_plots.BEHIND
    assert tuple(pixels[0, 0]) == grey                          # the parent's alone
    assert tuple(pixels[1, 1]) == grey
    assert tuple(pixels[0, 1]) == white                         # no event
    assert tuple(pixels[1, 0]) not in (white, grey)             # the population's
    assert np.array_equal(gate_plots.density_pixels(population, cmap, 2, 2)[0, 0], white)
