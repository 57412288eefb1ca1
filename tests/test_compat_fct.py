"""FlowCytometryTools compatibility: the examples of its tutorial on generated
plates, with every expected number worked out here from the data we wrote."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from immunomon import write_fcs
from immunomon.compat.fct import (CompositeGate, FCMeasurement, FCPlate, FCTError,
                                  IntervalGate, PolyGate, QuadGate, ThresholdGate, glog, hlog,
                                  hlog_inv, tlog)
from immunomon.fcs import Channel, Sample

RANGE = 2.0 ** 18

# well: (Y2-A values, B1-A values); V2-A is B1-A + 1
WELLS = {
    "A3": ([500.0, 999.0, 1000.0, 1500.0, 2500.0, 40000.0], [100.0, 2500.0, 1900.0, 2000.0,
                                                              3000.0, -50.0]),
    "B1": ([1000.0, 1000.0, 10.0, -20.0], [2000.0, 1999.0, 2000.0, 5000.0]),
    "C12": ([2000.0, 3000.0, 4000.0], [0.0, 0.0, 0.0]),
}


def _write(path, y2, b1, markers=None):
    events = np.column_stack([y2, b1, np.asarray(b1) + 1]).astype(np.float32)
    names = ["Y2-A", "B1-A", "V2-A"]
    chans = tuple(Channel(n, marker=(markers or {}).get(n), range=RANGE) for n in names)
    write_fcs(path, Sample(events=events, channel_info=chans,
                           keywords={"$SRC": path.stem.split("_")[-1]}))
    return path


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plate01")
    for well, (y2, b1) in WELLS.items():
        _write(folder / f"RFP_Well_{well}.fcs", y2, b1)
    (folder / "notes.txt").write_text("not an FCS file")
    return folder


# ----------------------------------------------------------------------------- transforms
def _hlog_reference(x, b, r, d):
    """FlowCytometryTools' definition: the root of hlog_inv(y) - x on [-2r, 2r]."""
    def inv(y):
        aux = d / r * y
        s = 1.0 if y >= 0 else -1.0
        return s * 10 ** (s * aux) + b * aux - s
    return np.array([brentq(lambda y: inv(y) - v, -2 * r, 2 * r, xtol=1e-12) for v in x])


@pytest.mark.parametrize("b", [500.0, 100.0, 5000.0])
def test_hlog_matches_its_definition(b):
    d = math.log10(RANGE)
    x = np.array([-1e5, -300.0, -1.0, 0.0, 0.5, 10.0, 499.0, 1e3, 5e4, RANGE])
    np.testing.assert_allclose(hlog(x, b=b, d=d), _hlog_reference(x, b, 1e4, d),
                               rtol=1e-9, atol=1e-7)
    # the top of the scale: hlog_inv(r) = 10**d + b d - 1 maps back to r
    assert hlog(10 ** d + b * d - 1, b=b, d=d) == pytest.approx(1e4, rel=1e-12)
    np.testing.assert_allclose(hlog_inv(hlog(x, b=b, d=d), b=b, d=d), x, rtol=1e-9,
                               atol=1e-9)


def test_tlog_and_glog():
    d = math.log10(RANGE)
    np.testing.assert_allclose(tlog([-5.0, 1.0, 10.0, RANGE], th=1, d=d),
                               [0.0, 0.0, 1e4 / d, 1e4])
    np.testing.assert_allclose(glog([0.0, 3.0], l=16.0), [math.log(4.0), math.log(8.0)])
    with pytest.raises(FCTError, match="positive"):
        tlog([1.0], th=0)


def test_measurement_transform_uses_the_channel_range(plate_dir):
    sample = FCMeasurement(ID="Test Sample", datafile=plate_dir / "RFP_Well_A3.fcs")
    tsample = sample.transform("hlog", channels=["Y2-A", "B1-A", "V2-A"], b=500.0)
    y2 = np.array(WELLS["A3"][0])
    d = math.log10(RANGE)
    np.testing.assert_allclose(tsample.data["Y2-A"], _hlog_reference(y2, 500.0, 1e4, d),
                               rtol=1e-9)
    # the original is untouched, untransformed channels are kept
    np.testing.assert_array_equal(sample.data["Y2-A"], y2)
    only = sample.transform("tlog", channels="B1-A", return_all=False, th=1)
    assert list(only.data.columns) == ["B1-A"]
    with pytest.raises(FCTError, match="no channel"):
        sample.transform("hlog", channels=["CD3"])
    with pytest.raises(FCTError, match="unknown transform"):
        sample.transform("logicle")


def test_measurement_meta_and_names(plate_dir, tmp_path):
    sample = FCMeasurement(ID="A3", datafile=plate_dir / "RFP_Well_A3.fcs")
    assert sample.channel_names == ("Y2-A", "B1-A", "V2-A")
    assert sample.meta["$SRC"] == "A3" and sample.ID_from_data() == "A3"
    assert sample.channels["$PnR"].tolist() == [RANGE] * 3
    assert sample.counts == 6
    named = _write(tmp_path / "marked.fcs", [1.0], [2.0],
                   markers={"Y2-A": "RFP", "B1-A": "CFP", "V2-A": "BFP"})
    assert FCMeasurement("m", datafile=named).channel_names == ("RFP", "CFP", "BFP")
    by_pnn = FCMeasurement("m", datafile=named, readdata_kwargs={"channel_naming": "$PnN"})
    assert list(by_pnn.data.columns) == ["Y2-A", "B1-A", "V2-A"]


# ----------------------------------------------------------------------------- gates
def test_gate_boundary_conventions(plate_dir):
    sample = FCMeasurement(ID="A3", datafile=plate_dir / "RFP_Well_A3.fcs")
    y2_gate = ThresholdGate(1000.0, ["Y2-A"], region="above")
    # Y2-A = 500, 999, 1000, 1500, 2500, 40000: 'above' includes the threshold
    assert sample.gate(y2_gate).counts == 4
    assert sample.gate(~y2_gate).counts == 2
    assert sample.gate(ThresholdGate(1000.0, "Y2-A", region="below")).counts == 2
    # closed interval: 1000 and 2500 are in
    interval = IntervalGate((1000.0, 2500.0), ["Y2-A"], region="in")
    assert sample.gate(interval).counts == 3
    assert sample.gate(IntervalGate((1000.0, 2500.0), "Y2-A", region="out")).counts == 3
    # quadrants around (1000, 2000): x >= 1000 right, y >= 2000 top
    quads = {r: sample.gate(QuadGate((1000.0, 2000.0), ["Y2-A", "B1-A"], region=r)).counts
             for r in ("top left", "top right", "bottom left", "bottom right")}
    # (500,100) bl, (999,2500) tl, (1000,1900) br, (1500,2000) tr, (2500,3000) tr, (40000,-50) br
    assert quads == {"top left": 1, "top right": 2, "bottom left": 1, "bottom right": 2}
    b1_gate = ThresholdGate(2000.0, ["B1-A"], region="above")
    assert sample.gate(y2_gate & b1_gate).counts == 2
    assert sample.gate(y2_gate | b1_gate).counts == 5
    assert sample.gate(y2_gate ^ b1_gate).counts == 3
    assert sample.gate(CompositeGate(y2_gate, "invert")).counts == 2
    assert (y2_gate & b1_gate).name == f"{y2_gate.name} and {b1_gate.name}"


def test_poly_gate(plate_dir):
    sample = FCMeasurement(ID="A3", datafile=plate_dir / "RFP_Well_A3.fcs")
    # a quadrilateral holding (1500, 2000) and (2500, 3000) but not (999, 2500)
    poly = PolyGate([(1200.0, 1500.0), (3000.0, 1500.0), (3000.0, 4000.0), (1400.0, 2600.0)],
                    ["Y2-A", "B1-A"], region="in", name="quad")
    inside = sample.gate(poly).data
    assert sorted(inside["Y2-A"].tolist()) == [1500.0, 2500.0]
    assert sample.gate(PolyGate(poly.vert, ["Y2-A", "B1-A"], region="out")).counts == 4


def test_gate_errors(plate_dir):
    sample = FCMeasurement(ID="A3", datafile=plate_dir / "RFP_Well_A3.fcs")
    with pytest.raises(FCTError, match="region must be one of"):
        ThresholdGate(1.0, "Y2-A", region="inside")
    with pytest.raises(FCTError, match="max > min"):
        IntervalGate((5.0, 1.0), "Y2-A", region="in")
    with pytest.raises(FCTError, match="'FSC-A', which the data lacks"):
        sample.gate(ThresholdGate(1.0, "FSC-A", region="above"))
    with pytest.raises(ValueError):          # FlowCytometryTools raised ValueError here too
        QuadGate((1, 2), ["Y2-A", "B1-A"], region="middle")


# ----------------------------------------------------------------------------- plates
def test_plate_counts_like_the_tutorial(plate_dir):
    plate = FCPlate.from_dir(ID="Demo Plate", path=plate_dir, parser="name")
    assert sorted(plate) == ["A3", "B1", "C12"]
    assert plate.get_positions()["C12"] == ("C", 12)
    plate = plate.transform("hlog", channels=["Y2-A", "B1-A"])
    total = plate.counts()
    assert total.shape == (8, 12)
    assert total.loc["A", 3] == 6 and total.loc["B", 1] == 4 and total.loc["C", 12] == 3
    assert int(total.isna().sum().sum()) == 96 - 3
    # thresholds on hlog-transformed data: 1000 raw is hlog(1000) on the display scale
    d = math.log10(RANGE)
    y2_gate = ThresholdGate(float(_hlog_reference([1000.0], 500.0, 1e4, d)[0]) - 1e-6,
                            ["Y2-A"], region="above")
    gated = plate.gate(y2_gate).counts()
    assert (gated.loc["A", 3], gated.loc["B", 1], gated.loc["C", 12]) == (4, 2, 3)
    outside = plate.gate(~y2_gate).counts()
    assert (outside.loc["A", 3], outside.loc["B", 1], outside.loc["C", 12]) == (2, 2, 0)


def test_plate_apply_like_the_tutorial(plate_dir):
    plate = FCPlate.from_dir(ID="Demo Plate", path=plate_dir, parser="name")

    def count_events(well):
        return well.get_data().shape[0]

    def calculate_median_rfp(well):
        return well.get_data()["Y2-A"].median()

    assert count_events(plate["A3"]) == 6 and plate["A3"].apply(count_events) == 6
    counts = plate.apply(count_events)
    assert counts.loc["B", 1] == 4 and np.isnan(counts.loc["A", 1])
    medians = plate.apply(calculate_median_rfp)
    assert medians.loc["A", 3] == pytest.approx((1000.0 + 1500.0) / 2)
    assert medians.loc["B", 1] == pytest.approx((10.0 + 1000.0) / 2)
    assert medians.loc["C", 12] == pytest.approx(3000.0)
    y2_gate = ThresholdGate(1000.0, ["Y2-A"], region="above")
    gated = plate.gate(y2_gate).apply(calculate_median_rfp)
    assert gated.loc["A", 3] == pytest.approx((1500.0 + 2500.0) / 2)
    assert plate.apply(count_events, output_format="dict") == {"A3": 6, "B1": 4, "C12": 3}
    compact = plate.apply(count_events, dropna=True)
    assert compact.shape == (3, 3)
    with pytest.raises(FCTError, match="output_format"):
        plate.apply(count_events, output_format="xml")


def test_plate_positions_and_errors(plate_dir, tmp_path):
    well = FCMeasurement(ID="A1", datafile=plate_dir / "RFP_Well_A3.fcs")
    plate = FCPlate("plate", measurements={"A1": well}, position_mapper="name")
    assert plate.layout.loc["A", 1] == "A1"
    with pytest.raises(FCTError, match="not on a 8x12 plate"):
        FCPlate("plate", measurements={"Z99": well}, position_mapper="name")
    numbered = FCPlate("plate", measurements={13: well}, position_mapper="row_first_enumerator")
    assert numbered.get_positions()[13] == ("E", 2)     # column-major: 13th well is E2
    with pytest.raises(FCTError, match="not a folder"):
        FCPlate.from_dir("p", tmp_path / "absent")
    (tmp_path / "Well_A1.fcs").write_bytes((plate_dir / "RFP_Well_A3.fcs").read_bytes())
    (tmp_path / "x_Well_A1.fcs").write_bytes((plate_dir / "RFP_Well_A3.fcs").read_bytes())
    with pytest.raises(FCTError, match="both give the well ID 'A1'"):
        FCPlate.from_dir("p", tmp_path)


def test_plot_draws_data_and_gates(plate_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = FCMeasurement(ID="A3", datafile=plate_dir / "RFP_Well_A3.fcs")
    fig, ax = plt.subplots()
    counts, edges, _ = sample.plot(["Y2-A"], bins=4, ax=ax,
                                   gates=[ThresholdGate(1000.0, "Y2-A", region="above")])
    assert counts.sum() == 6 and len(edges) == 5
    assert [line.get_xdata()[0] for line in ax.lines] == [1000.0]
    fig2, ax2 = plt.subplots()
    sample.plot(["Y2-A", "B1-A"], kind="scatter", ax=ax2,
                gates=QuadGate((1000.0, 2000.0), ["B1-A", "Y2-A"], region="top left"))
    # the gate is on (B1-A, Y2-A), the axes on (Y2-A, B1-A): drawn flipped
    assert ax2.lines[0].get_xdata()[0] == 2000.0 and ax2.lines[1].get_ydata()[0] == 1000.0
    plt.close("all")


def test_migration_guide_script_runs(plate_dir, tmp_path, monkeypatch):
    """The 'after' script of docs/migrating-from-flowcytometrytools.md runs unchanged."""
    import re
    import shutil
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = Path(__file__).parents[1] / "docs"
    guide = (docs / "migrating-from-flowcytometrytools.md").read_text(encoding="utf-8")
    after = guide[guide.index("## After"):]
    script = re.search(r"```python\n(.*?)```", after, re.S).group(1)
    assert "from immunomon.compat.fct import" in script
    shutil.copytree(plate_dir, tmp_path / "data" / "plate01")
    monkeypatch.chdir(tmp_path)
    exec(compile(script, "migration-guide", "exec"), {})
    plt.close("all")
