"""`immunomon template check`: per file and data-driven gate, the density, peaks, cut and rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from immunomon import read_fcs
from immunomon.cli import main
from immunomon.gating import methods
from immunomon.gating.check import check_result
from immunomon.gating.run import gate_sample
from immunomon.gating.template import load_template, parse_template

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "pbmc_01.fcs"
REAL = REPO / "tests" / "data" / "real"

PANEL = """\
panel: Check test
version: "1"
markers:
  CD3: [CD3]
  CD19: [CD19]
transforms:
  fluorescence: {logicle: {T: 262144, W: 0.5, M: 4.5, A: 0}}
populations:
  - name: Singlets
    parent: root
    dims: [FSC-A, FSC-H]
    method: singlet
  - name: T cells
    parent: Singlets
    dims: [CD3]
    method: threshold
  - name: Impossible
    parent: Singlets
    dims: [CD19]
    method: threshold
    args: {bounds: [3.0, null]}      # beyond the top of the logicle scale
"""


def test_check_result_describes_every_data_driven_gate():
    template = load_template("post-transplant")
    sample = read_fcs(FIXTURE)
    strategy, _ = template.strategy_for(sample)
    result = strategy.apply(sample)
    checks = {c.gate: c for c in check_result(result)}
    assert "Non-beads" not in checks                  # boolean gates are not data-driven
    t = checks["T cells"]
    assert t.method == "density threshold" and t.parent == "Lymphocytes"
    assert t.parent_events == result.count("Lymphocytes")
    assert t.populations == {"T cells": result.count("T cells")}
    (cut,) = t.cuts
    assert len(cut.peaks) == 2 and cut.values == (result.gates["T cells"].bounds[0][0],)
    assert cut.peaks[0] < cut.values[0] < cut.peaks[1]       # the cut lies in the valley
    quads = checks["T subsets"]
    assert set(quads.populations) == {"CD4 T", "CD8 T", "DN T", "DP T"}
    # one cut per divider: CD4, then CD8 (here one for each side of the CD4 cut)
    assert len(quads.cuts) == len(result.gates["T subsets"].dividers) >= 2
    assert [c.applies_to for c in quads.cuts][1:] in ([""], ["below", "above"])
    assert checks["Lymphocytes"].cuts == []                 # a cluster cuts no single axis


def _canto_fsc_check(args: str):
    """A FACSCanto tube and the check of one FSC-A threshold with these ``args``."""
    text = f"""
panel: debris
version: "1"
markers: {{CD3: [CD3]}}
compensation: none
transforms: {{scatter: linear}}
populations:
  - {{name: Cells, parent: root, dims: [FSC-A], method: threshold, args: {args}}}
"""
    sample = read_fcs(REAL / "canto_124500.fcs")
    strategy, _ = parse_template(text, "debris.yaml").strategy_for(sample)
    (check,) = check_result(strategy.apply(sample))
    return sample, check


def test_the_check_shows_the_peaks_the_gate_saw_not_saturated_events():
    """A FACSCanto tube's FSC-A holds events saturated at the top of the scale; the
    threshold leaves them out of its density, and the check showed a peak of them
    (262,243) that the gate never saw. Its peaks are the gate's now."""
    sample, check = _canto_fsc_check("{side: above, valley: first, majority: true}")
    (cut,) = check.cuts
    fsc = sample.events[:, sample.channel_index("FSC-A")]
    assert np.count_nonzero(fsc == fsc.max()) > 50           # saturated events
    assert max(cut.peaks) < 250_000 < fsc.max()             # none at the saturation value


def test_a_markers_cut_is_also_drawn_against_the_marker_that_made_its_parent():
    """Two docs-only trials judged TCRgd, NK1.1 and activation cuts against the marker
    of the parent (TCRgd against CD3 among T cells) and had to plot it themselves: the
    check page draws it, the nearest ancestor gate's first marker other than the cut's
    (a quadrant parent's x marker); none for a cut whose ancestors are scatter gates."""
    from immunomon.report.template_check import lineage_context

    template = load_template("post-transplant")
    sample = read_fcs(FIXTURE)
    strategy, _ = template.strategy_for(sample)
    result = strategy.apply(sample)
    names = lambda gates: [[d.name for d in g.dimensions] for g in gates]
    markers = {c: m for m, c in template.match(sample).channels.items()}
    (activated,) = names(lineage_context(result, "Activated CD4 T"))
    assert [markers[c] for c in activated] == ["HLA-DR", "CD4"]       # CD4 T: a quadrant's
    assert lineage_context(result, "T subsets") == []                 # two-dimensional
    assert lineage_context(result, "Leukocytes") == []                # a scatter cut
    from immunomon.gating.template import parse_template
    first = parse_template(PANEL, "p.yaml").strategy_for(sample)[0].apply(sample)
    assert lineage_context(first, "T cells") == []                    # its parent: singlets


def test_template_check_cli_writes_pages_and_reports_failures(tmp_path):
    panel = tmp_path / "panel.yaml"
    panel.write_text(PANEL)
    out = tmp_path / "check"
    result = CliRunner().invoke(main, ["template", "check", str(FIXTURE), "-t", str(panel),
                                       "-o", str(out), "--json"])
    assert result.exit_code == 1, result.output          # the impossible gate is a failure
    (record,) = json.loads(result.output)
    assert json.loads((out / "check.json").read_text()) == [record]   # kept beside the pages
    assert record["status"] == "failure"
    gates = {g["gate"]: g for g in record["gates"]}
    assert gates["Impossible"]["level"] == "failure"
    assert gates["Impossible"]["populations"] == {"Impossible": 0}
    assert any("empty" in m for m in gates["Impossible"]["messages"])
    assert gates["T cells"]["level"] == "ok"                   # no QC flag at all
    assert len(gates["T cells"]["cuts"][0]["peaks"]) >= 2      # negatives, T cells (and beads)
    page = Path(record["page"])
    html = page.read_text()
    assert "template check" in html and "Impossible" in html
    pngs = sorted((page.parent / "plots").glob("*.png"))
    # 3 gate plots, 3 density plots (the singlet band's on its pulse ratio), and the 2
    # thresholds' cuts against FSC-A and, being markers' cuts, against SSC-A too
    assert len(pngs) == 10
    assert (page.parent / "plots" / "00_Singlets_density.png").is_file()
    assert [p.name for p in pngs if p.name.endswith("_context.png")] == [
        "01_T_cells_context.png", "02_Impossible_context.png"]
    assert [p.name for p in pngs if p.name.endswith("_context_side.png")] == [
        "01_T_cells_context_side.png", "02_Impossible_context_side.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    text = CliRunner().invoke(main, ["template", "check", str(FIXTURE), "-t", str(panel),
                                     "-o", str(out)])
    assert "failure  Impossible:" in text.output


def test_template_check_on_a_good_template_exits_zero(tmp_path):
    good = parse_template(PANEL.split("  - name: Impossible")[0], "good.yaml")
    assert [p.name for p in good.populations] == ["Singlets", "T cells"]
    panel = tmp_path / "good.yaml"
    panel.write_text(PANEL.split("  - name: Impossible")[0])
    result = CliRunner().invoke(main, ["template", "check", str(FIXTURE), "-t", str(panel),
                                       "-o", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert np.any([line.startswith("pbmc_01: ok") for line in result.output.splitlines()])


def test_a_check_of_several_files_shows_each_gate_across_them(tmp_path):
    """Docs-only scientists built montages of one gate across their files by hand; a
    check of several files writes gates.html: each gate, each file's plots of it."""
    import re
    from urllib.parse import unquote

    panel = tmp_path / "good.yaml"
    panel.write_text(PANEL.split("  - name: Impossible")[0])
    files = [FIXTURE, REPO / "fixtures" / "pbmc_02_shifted.fcs"]
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["template", "check", *map(str, files), "-t",
                                       str(panel), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"each gate across the files: {out / 'gates.html'}" in result.output
    page = (out / "gates.html").read_text(encoding="utf-8")
    assert re.findall(r'<h2 id="[^"]+">([^<]+)</h2>', page) == ["Singlets", "T cells"]
    images = re.findall(r'src="([^"]+)"', page)
    assert {i.split("/")[0] for i in images} == {"pbmc_01", "pbmc_02_shifted"}
    assert all((out / unquote(i)).is_file() for i in images)
    records = json.loads((out / "check.json").read_text())
    assert all(f.startswith(r["sample"] + "/plots/") for r in records
               for fs in r["figures"].values() for f in fs)
    # one file: no page of files side by side
    alone = tmp_path / "one"
    CliRunner().invoke(main, ["template", "check", str(FIXTURE), "-t", str(panel), "-o",
                              str(alone)])
    assert not (alone / "gates.html").exists()


def test_a_file_that_cannot_be_read_is_one_line_and_recorded(tmp_path):
    missing = tmp_path / "missing.fcs"
    out = tmp_path / "check"
    result = CliRunner().invoke(main, ["template", "check", str(missing), "-t",
                                       "post-transplant", "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"error: {missing}: no such file"]
    record, = json.loads((out / "check.json").read_text())
    assert record["status"] == "failed" and "no such file" in record["error"]


def test_the_check_lists_every_population_boolean_ones_too(tmp_path):
    from immunomon.gating.check import check_files
    from immunomon.gating.template import parse_template

    text = PANEL + "  - name: Not T\n    parent: Singlets\n    gate: {not: T cells}\n"
    (record,) = check_files([FIXTURE], parse_template(text, "p.yaml"), tmp_path)
    rows = {p["population"]: p for p in record["populations"]}
    assert list(rows) == ["Singlets", "T cells", "Impossible", "Not T"]
    assert rows["Not T"]["count"] + rows["T cells"]["count"] == rows["Singlets"]["count"]
    assert rows["Not T"]["parent"] == "Singlets" and rows["Singlets"]["parent"] is None
    assert rows["Not T"]["percent_of_parent"] == pytest.approx(
        100 * rows["Not T"]["count"] / rows["Singlets"]["count"])
    # the share near the cut, as `gate` has it: the singlet band's, a threshold's
    # population and the `not` of it (its operand's cut), each with the cuts above it
    assert rows["Not T"]["percent_near_cut"] is not None
    gating = gate_sample(read_fcs(FIXTURE), parse_template(text, "p.yaml"))
    assert rows["T cells"]["percent_near_cut"] == pytest.approx(
        gating.table.set_index("population").loc["T cells", "percent_near_cut"])
    # by hand: the singlet band's two cuts on each event's pulse ratio over its trend
    result = gating.result
    band = result.gates["Singlets"].band
    everyone = np.arange(result.n_events)
    area, height = (np.asarray(result.values.values(d, everyone))
                    for d in result.gates["Singlets"].dimensions)
    ratio = band.relative(area, height)
    width = methods.kernel_bandwidth(ratio)
    near_band = (np.abs(ratio - band.lo) < width) | (np.abs(ratio - band.hi) < width)
    singlets = result.mask("Singlets")
    assert 100 * np.count_nonzero(near_band & singlets) / singlets.sum() == pytest.approx(
        rows["Singlets"]["percent_near_cut"])
    # the band the page shades round the T cells' cut is the one that share counts in
    (cut,) = next(g for g in record["gates"] if g["gate"] == "T cells")["cuts"]
    parent = np.flatnonzero(singlets)
    cd3 = result.values.values(result.gates["T cells"].dimensions[0], parent)
    t_cells = result.mask("T cells")[parent]
    near = (np.abs(cd3 - cut["values"][0]) < cut["bandwidth"]) | near_band[parent]
    assert 100 * np.count_nonzero(near & t_cells) / t_cells.sum() == pytest.approx(
        rows["T cells"]["percent_near_cut"])
    assert 100 * np.count_nonzero(near & ~t_cells) / (~t_cells).sum() == pytest.approx(
        rows["Not T"]["percent_near_cut"])
    html = Path(record["page"]).read_text()
    assert "<h2>Populations</h2>" in html and "<td>Not T</td><td>Singlets</td>" in html
    assert "<td>Singlets</td><td>all events</td>" in html and "% near its cut" in html


def test_a_boolean_population_of_cuts_is_drawn_as_its_rectangle(tmp_path):
    """CD4 T cells as `and: [CD8-, CD4+]` (cuts on one parent): drawn on CD4 x CD8 of that
    parent, the rectangle holding exactly the population; an `or`, no rectangle, is drawn
    as its own events over its parent's on the dimensions its operands cut."""
    from immunomon.gating.check import check_files
    from immunomon.gating.template import parse_template
    from immunomon.report.template_check import boolean_rectangle

    text = """\
panel: Boolean check
version: "1"
markers: {CD3: [CD3], CD4: [CD4], CD8: [CD8]}
transforms:
  fluorescence: {logicle: {T: 262144, W: 0.5, M: 4.5, A: 0}}
populations:
  - {name: T cells, parent: root, dims: [CD3], method: threshold}
  - {name: CD8+, parent: T cells, dims: [CD8], method: threshold}
  - {name: CD8-, parent: T cells, gate: {not: CD8+}}
  - {name: CD4+, parent: T cells, dims: [CD4], method: threshold}
  - {name: CD4 T, parent: CD8-, gate: {and: [CD8-, CD4+]}}
  - {name: Either, parent: T cells, gate: {or: [CD8+, CD4+]}}
  - {name: CD4+ among CD8-, parent: CD8-, dims: [CD4], method: threshold}
  - {name: Per side, parent: T cells, gate: {and: [CD8-, CD4+ among CD8-]}}
  - {name: CD4+ CD8+, parent: CD8+, dims: [CD4], method: threshold}
  - {name: Nested, parent: T cells, gate: {and: [CD4+, CD4+ CD8+]}}
  - {name: Not per side, parent: T cells, gate: {not: CD4+ among CD8-}}
"""
    template = parse_template(text, "b.yaml")
    (record,) = check_files([FIXTURE], template, tmp_path)
    html = Path(record["page"]).read_text()
    assert "<h2>Boolean populations</h2>" in html and 'alt="CD4 T"' in html
    assert 'alt="Either"' in html
    from immunomon.gating.run import gate_sample
    result = gate_sample(read_fcs(FIXTURE), template).result
    rect = boolean_rectangle(result, "CD4 T")
    sample = result.sample
    assert rect.parent == "T cells"
    assert [sample.markers[sample.channel_index(d.name)] for d in rect.dimensions] \
        == ["CD8", "CD4"]
    rows = result.mask("T cells")
    columns = [np.asarray(result.values.values(d)) for d in rect.dimensions]
    inside = rect.contains(columns) & rows
    assert np.array_equal(inside, result.mask("CD4 T"))
    assert boolean_rectangle(result, "Either") is None
    assert boolean_rectangle(result, "CD4+") is None          # not a boolean population
    # a cut made within a narrower population (CD4 among CD8+ cells) that the gate does
    # not require is not a rectangle on CD4 alone: its drawing would hold CD8- events; a
    # cut per side of another (CD4 among the CD8- cells, and CD8-) is one
    assert boolean_rectangle(result, "Nested") is None
    # a `not` taken within another parent than its operand's (T cells less the CD4+ ones
    # among CD8- cells) is no rectangle on the operand's parent: its CD8+ cells lie outside
    assert boolean_rectangle(result, "Not per side") is None
    from immunomon.report.template_check import boolean_axes
    axes = boolean_axes(result, "Either")
    assert axes.parent == "T cells" and [sample.markers[sample.channel_index(d.name)]
                                          for d in axes.dimensions] == ["CD8", "CD4"]
    assert boolean_axes(result, "CD4+") is None                # not a boolean population
    # one dimension among its operands: nothing to draw it on
    assert boolean_axes(result, "CD8-") is None
    per_side = boolean_rectangle(result, "Per side")
    inside = per_side.contains([np.asarray(result.values.values(d))
                                for d in per_side.dimensions]) & rows
    assert per_side.parent == "T cells" and np.array_equal(inside, result.mask("Per side"))


def test_template_list_names_the_shipped_templates():
    result = CliRunner().invoke(main, ["template", "list"])
    assert result.exit_code == 0
    assert "post-transplant" in result.output and "dc-tube" in result.output


def test_template_show_prints_a_shipped_template_to_start_from():
    from immunomon.gating.template import builtin_templates, parse_template

    result = CliRunner().invoke(main, ["template", "show", "dc-tube"])
    assert result.exit_code == 0
    assert result.output == builtin_templates()["dc-tube"].read_text(encoding="utf-8")
    assert parse_template(result.output, "mine.yaml").populations
    unknown = CliRunner().invoke(main, ["template", "show", "dc"])
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    assert "no shipped template 'dc'; shipped templates are: " in unknown.output
    assert "dc-tube" in unknown.output


def test_density_axes_name_the_logicle_width():
    # with W: auto the width differs per file and shapes the negative peak beside the cut
    from immunomon.gating import Dimension
    from immunomon.report.template_check import _scale
    from immunomon.transforms import Hyperlog, Logicle
    assert _scale(Dimension("PE-A", transform=Logicle(262144, 0.85, 4.5, 0))) == \
        ", logicle W 0.85"
    assert _scale(Dimension("PE-A", transform=Hyperlog(262144, 1.0, 4.5, 0))) == \
        ", hyperlog W 1"
    assert _scale(Dimension("FSC-A")) == ""


def test_template_check_names_a_scale_that_does_not_fit_the_file(tmp_path):
    """A warning about the whole file (here: a logicle top far above the range of a file of
    display values) is printed and on the page, not only in the gate sample's summary."""
    text = (REAL / "hipc_tcell.yaml").read_text()
    wide = tmp_path / "wide.yaml"
    wide.write_text(text.replace("  fluorescence: linear", "  fluorescence: {logicle: "
                                 "{T: 262144, W: auto, M: 4.5, A: 0}}  #"))
    out, fcs = tmp_path / "check", str(REAL / "hipc_stanford_1228.fcs")
    result = CliRunner().invoke(main, ["template", "check", fcs, "-t", str(wide), "-o",
                                       str(out), "--json"])
    (record,) = json.loads(result.output)
    (flag,) = record["qc"]
    assert flag["level"] == "warning" and "top of scale is 262,144" in flag["message"]
    assert "top of scale is 262,144" in Path(record["page"]).read_text()
    text_run = CliRunner().invoke(main, ["template", "check", fcs, "-t", str(wide), "-o",
                                         str(out)])
    assert "  warning  CD4, CD8, CD45RA, CCR7: the values stop at 4,096" in text_run.output


def test_a_status_always_comes_with_its_reason(tmp_path):
    # a sample whose only warnings are small populations was "warning" with no line saying
    # why: every warning or failure no gate's record lists is among the file's own
    from immunomon.gating.check import check_files
    (record,) = check_files([REAL / "activation_1.fcs"],
                            load_template(REAL / "activation.yaml"), tmp_path)
    listed = [f["message"] for f in record["qc"]] + \
        [m for g in record["gates"] for m in g["messages"]]
    assert record["status"] == "warning"
    assert any("too few to report" in m for m in listed)


def test_a_check_of_several_files_previews_their_pooled_cut(tmp_path):
    from immunomon.gating.check import check_files
    text = (REAL / "activation.yaml").read_text(encoding="utf-8").replace(
        "args: {side: above, expect: mostly-negative}",
        "args: {side: above, expect: mostly-negative, pooled: true}")
    template = parse_template(text, str(REAL / "activation_pooled.yaml"))
    files = [REAL / "activation_8.fcs", REAL / "activation_23.fcs"]
    records = check_files(files, template, tmp_path)
    for record in records:
        assert len(record["pooled"]) == 2
        assert all("pooled events of 2 files" in n for n in record["pooled"])
    # each page shows each pooled gate once more, its density that of the pooled events
    # (a new user could only read its note), drawn once for all the pages, and beside it
    # this file's own density with the pooled cut (a docs-only scientist could not see
    # the one CD69 cut on an unstimulated well's events)
    from immunomon.gating.check import IN_THIS_FILE

    for record in records:
        pooled = [g for g in record["gates"] if g["method"].endswith(IN_THIS_FILE)]
        assert {g["gate"] for g in pooled} == {"CD69+ CD4 T", "CD69+ CD8 T"}
        own = {q["population"]: q["count"] for q in record["populations"]}
        for g in pooled:
            # the cut is the pooled events'; the counts and the density this file's (the
            # counts were the pooled ones, read as each file's)
            assert g["parent_events"] == own[g["parent"]] and len(g["cuts"]) == 1
            assert g["populations"] == {g["gate"]: own[g["gate"]]}
            assert f"{g['cuts'][0]['values'][0]:.4g}" in record["pooled"][
                0 if g["gate"] == "CD69+ CD4 T" else 1]
            assert len(g["cuts"][0]["peaks"]) >= 1 and g["cuts"][0]["bandwidth"] > 0
            assert record["figures"][g["gate"]][-1].endswith("_density_this_file.png")
    cut = {r["sample"]: next(g for g in r["gates"] if g["gate"] == "CD69+ CD4 T")["cuts"][0]
           for r in records}
    assert cut["activation_8"]["values"] == cut["activation_23"]["values"]   # one cut
    # each file's fitted widths, to fix one before pooling its channel
    assert {r["sample"]: r["transforms"]["7-AAD-A"]["logicle"]["W"] > 0 for r in records} \
        == {"activation_8": True, "activation_23": True}
    assert cut["activation_8"]["peaks"] != cut["activation_23"]["peaks"]     # two files
    assert sorted(p.name for p in (tmp_path / "pooled").iterdir()) == [
        "CD69+_CD4_T_density.png", "CD69+_CD8_T_density.png"]
    page = (tmp_path / "activation_8" / "check.html").read_text(encoding="utf-8")
    assert 'src="../pooled/CD69%2B_CD4_T_density.png"' in page
    assert 'src="plots/CD69%2B_CD4_T_density_this_file.png"' in page
    (alone,) = check_files(files[:1], template, tmp_path / "one")
    assert all("found on this file alone" in n for n in alone["pooled"])
    assert not any("(pooled" in g["method"] for g in alone["gates"])


def test_a_fixed_gate_is_drawn_on_the_check_page(tmp_path):
    """A singlet band drawn by hand as a polygon (the guide's advice where the `singlet`
    band cuts the monocytes) could not be seen on the check page; fixed rectangles,
    polygons and ellipses now get a gate plot and a row, boolean gates none."""
    from immunomon.gating.check import check_files
    text = """
panel: fixed
version: "1"
markers: {CD14: [CD14]}
compensation: file
transforms: {fluorescence: {logicle: {T: auto, W: auto, M: 4.5, A: 0}}, scatter: linear}
populations:
  - name: Singlets
    parent: root
    dims: [FSC-A, FSC-H]
    gate: {polygon: {vertices: [[0, 0], [262144, 163840], [262144, 262144], [209715, 262144]]}}
  - {name: CD14+, parent: Singlets, dims: [CD14], method: threshold, args: {side: above}}
  - {name: CD14-, parent: Singlets, gate: {not: CD14+}}
"""
    template = parse_template(text, "fixed.yaml")
    (record,) = check_files([REAL / "a2004_A2.fcs"], template, tmp_path)
    gates = {g["gate"]: g for g in record["gates"]}
    assert gates["Singlets"]["method"] == "fixed polygon" and "CD14-" not in gates
    assert gates["Singlets"]["populations"]["Singlets"] > 0.95 * 15_121
    assert (tmp_path / "a2004_A2" / "plots" / "00_Singlets_gate.png").is_file()


def test_template_check_keeps_unstable_time_bins_when_asked(tmp_path):
    """As `immunomon gate --keep-anomalies`: a clog's events are gated, not left out."""
    panel = tmp_path / "good.yaml"
    panel.write_text(PANEL.split("  - name: Impossible")[0])
    clog = REPO / "fixtures" / "pbmc_03_clog.fcs"
    parents = {}
    for flag in ([], ["--keep-anomalies"]):
        out = tmp_path / ("keep" if flag else "drop")
        result = CliRunner().invoke(main, ["template", "check", str(clog), "-t", str(panel),
                                           "-o", str(out), *flag])
        assert result.exit_code == 0, result.output
        record = json.loads((out / "check.json").read_text())[0]
        parents[bool(flag)] = record["gates"][0]["parent_events"]
        # the page and check.json say how many the time check left out, as `gate` does
        assert record["events"] - record["events_excluded"] == parents[bool(flag)]
        page = (out / "pbmc_03_clog" / "check.html").read_text()
        assert ("anomalous time bins and are left out of every gate" in page) != bool(flag)
    assert parents[True] == read_fcs(clog).n_events > parents[False]


def test_the_check_marks_where_other_settings_would_cut():
    """A FACSCanto tube's FSC-A: debris, a small bump and the cells. `valley: first`
    and the default cut below the bump; the check also marks the valley above it with
    the setting that picks it (`valley: last`), where the bump's foot lies above a floor
    of debris (`foot: upper`), and a lone peak's other end with the `expect` that picks
    it, so an author sees the choices without trying each."""
    _, check = _canto_fsc_check("{side: above}")
    (cut,) = check.cuts
    assert len(cut.peaks) == 3
    settings = dict((how, v) for v, how in cut.others)
    assert settings.pop("valley: deepest (the default), valley: first") == pytest.approx(
        cut.values[0])
    assert cut.values[0] < settings.pop("valley: last") < max(cut.peaks)
    # debris spreads from the valley to the bump: where the bump's foot would cut
    assert cut.values[0] < settings.pop("foot: upper") < sorted(cut.peaks)[1]
    assert not settings
    record = check.to_dict()["cuts"][0]["other_cuts"]
    assert [o["setting"] for o in record] == [how for _, how in cut.others]


def test_a_bump_too_small_to_count_is_marked_on_the_density():
    """A density titled '1 peak' over two visible bumps puzzled a docs-only scientist:
    a bump of a few events that the method does not count (under two standard errors)
    is marked hollow and counted apart in the title; a counted peak is not."""
    from immunomon.gating import methods
    from immunomon.report.template_check import uncounted_bumps

    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, 150), rng.normal(4, 0.5, 8)])
    _, _, centres, density, _, peaks, _ = methods.density_on_scale(x)
    assert len(peaks) == 1
    (bump,) = uncounted_bumps(centres, density, tuple(centres[peaks]))
    assert abs(bump - 4) < 0.3
    y = np.concatenate([rng.normal(0, 1, 1500), rng.normal(4, 0.5, 300)])
    _, _, centres, density, _, peaks, _ = methods.density_on_scale(y)
    assert len(peaks) == 2 and uncounted_bumps(centres, density, tuple(centres[peaks])) == []


def test_a_valley_majority_passes_over_is_marked_so():
    """A HIPC DC tube's forward scatter: debris, lymphocytes, monocytes. With `valley:
    first, majority: true` the cut goes below the lymphocytes; the dashed line at the
    lymphocyte/monocyte valley read 'valley: deepest (the default)', a setting a new user
    took for one that would cut there. `majority` passes that valley over, and says so."""
    text = ("panel: DC\nversion: '1'\nmarkers: {}\ncompensation: none\n"
            "transforms: {fluorescence: linear, scatter: linear}\npopulations:\n"
            "  - {name: On scale, parent: root, dims: [FSC-A, SSC-A], method: boundary}\n"
            "  - {name: Live, parent: On scale, dims: [FSC-A], method: threshold,\n"
            "     args: {side: above, valley: first, majority: true}}\n")
    sample = read_fcs(REAL / "opencyto_dc_1.fcs")
    strategy, _ = parse_template(text, "dc.yaml").strategy_for(sample)
    check = {c.gate: c for c in check_result(strategy.apply(sample))}["Live"]
    (cut,) = check.cuts
    passed = [v for v, how in cut.others if "majority passes it over" in how]
    assert len(passed) == 1 and passed[0] > 1.5 * cut.values[0]
    assert [how for v, how in cut.others if v == cut.values[0]] == ["valley: first"]


def test_other_cuts_name_the_setting_of_each_valley_and_lone_peak_end():
    from immunomon.gating import methods
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 20_000), rng.normal(5, 1, 4_000),
                        rng.normal(10, 1, 12_000), rng.normal(15, 0.8, 1_500)])
    centres, density, bandwidth = methods.smoothed_density(x)
    peaks = methods.find_peaks(centres, density, n_events=x.size, bandwidth=bandwidth)
    assert len(peaks) == 4
    others = methods.other_cuts(centres, density, peaks)
    (a, _), (b, _), (c, _) = others                              # each neighbours' valley
    assert 2 < a < 4 and 6 < b < 9 and 12 < c < 14
    # a fifth peak: the valley between the middle two is picked by bounds round it, and
    # its label says which bounds (from one of its peaks to the other)
    x5 = np.concatenate([x, rng.normal(7.5, 0.5, 2_500)])
    c5, d5, bw5 = methods.smoothed_density(x5)
    p5 = methods.find_peaks(c5, d5, n_events=x5.size, bandwidth=bw5)
    (cut, named), *_ = [o for o in methods.other_cuts(c5, d5, p5) if o[1].startswith("bounds")]
    lo, hi = (float(v) for v in named.removeprefix("bounds: [").rstrip("]").split(", "))
    assert 4 < lo < 8 and 7 < hi < 11
    assert methods.density_threshold(x5, bounds=(lo, hi)).value == pytest.approx(cut)
    # the two most prominent peaks, 0 and 10, part at the lowest point between them
    assert [how for _, how in others] == [
        "valley: first", "valley: deepest (the default)", "valley: last"]
    default = methods.density_threshold(x).value
    assert default == pytest.approx(others[1][0])
    assert methods.density_threshold(x, valley="last").value == pytest.approx(others[2][0])
    lone = rng.normal(0, 1, 5_000)
    centres, density, bandwidth = methods.smoothed_density(lone)
    peaks = methods.find_peaks(centres, density, n_events=lone.size, bandwidth=bandwidth)
    ends = dict((how, v) for v, how in methods.other_cuts(centres, density, peaks))
    assert 1.5 < ends["expect: mostly-negative"] < 3.5
    assert -3.5 < ends["expect: mostly-positive"] < -1.5


def test_a_small_peaks_alternative_is_the_large_peaks_end_with_the_setting_that_gives_it():
    """Beside a large peak, small bumps make the valleys; the check also marks where the
    large peak ends, with the `min_prominence` that hides the bumps and the `expect`
    that sends the cut that way: set so, the threshold cuts there."""
    from immunomon.gating import methods
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.2, 0.04, 20_000), rng.normal(0.42, 0.03, 250),
                        rng.normal(0.65, 0.03, 300)])
    centres, density, bandwidth = methods.smoothed_density(x)
    peaks = methods.find_peaks(centres, density, n_events=x.size, bandwidth=bandwidth)
    assert len(peaks) == 3
    (value, setting), = [o for o in methods.other_cuts(centres, density, peaks)
                         if o[1].startswith("min_prominence")]
    hide = float(setting.split(",")[0].split(": ")[1])
    assert 0 < hide < 0.2 and setting.endswith("expect: mostly-negative")
    cut = methods.density_threshold(x, min_prominence=hide, expect="mostly-negative")
    assert cut.value == pytest.approx(value) and len(cut.peaks) == 1


def test_valleys_a_raised_min_prominence_hid_stay_on_the_page_to_compare():
    """With `min_prominence` raised to hide small bumps, the check still marks the valleys
    those bumps made, with the default that finds them: an author comparing a draft with
    the one before sees both cuts on one page."""
    from immunomon.gating import methods
    from immunomon.gating.check import _density_of
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0.2, 0.04, 20_000), rng.normal(0.42, 0.03, 250),
                        rng.normal(0.65, 0.03, 300)])
    *_, plain = _density_of(x, {})
    *_, peaks, raised = _density_of(x, {"min_prominence": 0.1})
    assert len(peaks) == 1
    hidden = [(v, how) for v, how in raised if how.endswith("min_prominence: 0.002")]
    assert [v for v, _ in hidden] == [v for v, how in plain if how.startswith("valley")]
    default = methods.density_threshold(x).value
    assert any(v == pytest.approx(default) for v, _ in hidden)


def test_a_parent_too_small_for_a_peak_is_checked_without_other_cuts():
    """A gate's parent of a handful of events has no density peak; its check page drew
    nothing extra, and the other-cuts list must not fail it (it raised on no peaks)."""
    from immunomon.gating import methods
    from immunomon.gating.check import _density_of
    for seed in range(20):
        x = np.random.default_rng(seed).normal(0.0, 1.0, 5)
        centres, density, peaks, others = _density_of(x, {"min_prominence": 0.1})
        assert centres.size and isinstance(others, list)
    assert methods.other_cuts(np.linspace(0, 1, 10), np.zeros(10), []) == []


def test_a_file_whose_shares_are_unlike_the_others_is_named(tmp_path):
    """Four LST exports listed their channels out of order: gated by name, their T cells
    came out 44-64% DN T where the other files gave 0.2-5%, each 'ok'. A check of
    several files names the population and the file whose share of its parent lies far
    from the other files' (20 points and three times or a third of their median)."""
    from immunomon.gating.check import unlike_the_others
    from testdata import lst_files_one_swapped

    real = Path(__file__).resolve().parent / "data" / "real"
    lst_files_one_swapped(tmp_path)
    result = CliRunner().invoke(main, ["template", "check", str(tmp_path), "-t",
                                       str(real / "euroflow_lst.yaml"),
                                       "-o", str(tmp_path / "check")])
    notes = [ln for ln in result.output.splitlines() if ln.startswith("note: ")]
    assert notes and all(ln.startswith("note: swapped: ") for ln in notes), result.output
    assert any("DN T is" in ln and "the other files' median" in ln for ln in notes)
    records = json.loads((tmp_path / "check" / "check.json").read_text())
    # and every file's populations side by side, in the template's order
    import pandas as pd
    table = pd.read_csv(tmp_path / "check" / "populations.csv", index_col="population")
    assert list(table.columns) == ["parent", "lst_0", "lst_1", "lst_2", "lst_3", "swapped"]
    assert table.index[0] == "Eosinophils" and table.loc["Eosinophils", "parent"] == "(all events)"
    assert table.loc["DN T", "parent"] == "CD8- T"
    assert table.loc["DN T", "swapped"] > 5 * table.loc["DN T", "lst_0"]
    assert {r["sample"]: bool(r["unlike_the_others"]) for r in records} == {
        "lst_0": False, "lst_1": False, "lst_2": False, "lst_3": False, "swapped": True}
    # fewer than four files: no reference to stand against
    assert unlike_the_others(records[:3]) == {}
    # biology within the bounds (eosinophils 3-13% of events) is not named
    shares = [{"sample": str(k), "status": "ok", "populations": [
        {"population": "Eos", "parent": "Leukocytes", "percent_of_parent": p}]}
        for k, p in enumerate((3.0, 5.0, 8.0, 13.0, 4.0))]
    assert unlike_the_others(shares) == {}


def test_a_population_on_all_events_far_from_the_other_files_is_named():
    """A lineage quadrant on the whole file whose CD8+ side took a CD4 cut of its own
    under 15 far events left one centre's CD8 T cells 0.07% of the events, the other
    centres' 24-52%, and the check named only a memory subset under them."""
    from immunomon.gating.check import unlike_the_others

    records = [{"sample": name, "status": "ok", "populations": [
        {"population": "CD8 T", "parent": None, "percent_of_parent": share}]}
        for name, share in (("A", 49.6), ("B", 52.3), ("C", 0.07), ("D", 24.4))]
    found = unlike_the_others(records)
    assert list(found) == ["C"] and found["C"][0]["population"] == "CD8 T"


def test_two_files_of_one_name_get_a_page_and_a_column_each(tmp_path):
    """A check over two folders holding a file of one name (cyflow_cube_8.fcs in both
    of the repository's instrument folders) wrote both pages into one folder and then
    failed on the table of every file's populations, with a traceback; each now gets its
    own name, as `immunomon gate` gives it."""
    import pandas as pd

    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "tube.fcs").write_bytes(FIXTURE.read_bytes())
    panel = tmp_path / "panel.yaml"
    panel.write_text(PANEL)
    result = CliRunner().invoke(main, ["template", "check", str(tmp_path / "day1"),
                                       str(tmp_path / "day2"), "-t", str(panel),
                                       "-o", str(tmp_path / "check")])
    assert isinstance(result.exception, SystemExit), result.exception   # no ValueError
    records = json.loads((tmp_path / "check" / "check.json").read_text())
    assert [r["sample"] for r in records] == ["tube", "tube_"]
    assert all(Path(r["page"]).is_file() for r in records)
    table = pd.read_csv(tmp_path / "check" / "populations.csv", index_col="population")
    assert list(table.columns) == ["parent", "tube", "tube_"]


def test_a_folder_of_many_files_names_its_outliers_from_all_the_files_at_once():
    """Past 50 files the other files' median and quartiles are all the files' (one
    file moves them by next to nothing): one outlier among 60 is named, and two kinds of
    30 files each are not named against each other."""
    from immunomon.gating.check import unlike_the_others

    rng = np.random.default_rng(3)

    def records(shares):
        return [{"sample": f"s{k}", "status": "ok", "populations": [
            {"population": "Granulocytes", "parent": "Leukocytes", "percent_of_parent": v}]}
            for k, v in enumerate(shares)]

    one = list(rng.uniform(55.0, 70.0, 60))
    one[17] = 2.5
    found = unlike_the_others(records(one))
    assert list(found) == ["s17"] and found["s17"][0]["others_median"] > 55
    two = list(rng.uniform(55.0, 70.0, 30)) + list(rng.uniform(5.0, 15.0, 30))
    assert unlike_the_others(records(two)) == {}


def test_the_terminal_names_the_counts_that_turn_on_their_cut(tmp_path):
    """Miami's lyoplate file: its CD8 central memory cells, 55% of them within one
    bandwidth of the CCR7 cut (F1 0.04 against the expert), are named on the file's
    lines, with the share; populations under 20 events are not."""
    out = tmp_path / "check"
    result = CliRunner().invoke(main, ["template", "check", str(REAL / "lyoplate_miami_1.fcs"),
                                       "-t", str(REAL / "hipc_tcell.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    (line,) = [s for s in result.output.splitlines() if "turn on where the cut" in s]
    assert "CD8 Central Memory (55%)" in line and "CD4 T " not in line
    record, = json.loads((out / "check.json").read_text())
    named = {p["population"] for p in record["populations"]
             if p["count"] >= 20 and p["percent_near_cut"] is not None
             and p["percent_near_cut"] >= 10}
    assert named == {n.rsplit(" (", 1)[0] for n in line.split(": ", 1)[1].split(", ")}


def test_a_singlet_band_and_a_diagonal_are_drawn_on_the_axis_they_cut():
    """A singlet band cuts each event's pulse ratio over the singlets' trend, a diagonal
    x - y: the check gives each that axis's density, its cuts and one bandwidth, as it
    gives a threshold's, so the page shows where they fell and the events near them."""
    from immunomon.gating.near_cut import own_axis
    from light_chains import TEMPLATE, light_chain_sample

    result = gate_sample(read_fcs(FIXTURE), parse_template(PANEL, "p.yaml")).result
    (band,) = next(c for c in check_result(result) if c.gate == "Singlets").cuts
    found = result.gates["Singlets"]
    assert band.dimension == "FSC-A/FSC-H over the singlets' trend"
    assert band.values == (found.band.lo, found.band.hi)
    ratio = own_axis(result, found, np.arange(result.n_events))
    assert band.near == methods.kernel_bandwidth(ratio) > 0
    # the singlets' peak lies between the cuts, on the axis's scale
    assert len(band.peaks) >= 1 and found.band.lo < band.peaks[0] < found.band.hi

    sample = light_chain_sample(np.random.default_rng(3), 250, n_t=2000, n_b=3000)
    template = parse_template(TEMPLATE, "l.yaml")
    result = gate_sample(sample, template, exclude_anomalies=False).result
    (line,) = next(c for c in check_result(result) if c.gate == "B kappa").cuts
    assert line.dimension == "IgK - IgL" and line.values == (result.gates["B kappa"].offset,)
    assert len(line.peaks) == 2 and line.peaks[0] < line.values[0] < line.peaks[1]
