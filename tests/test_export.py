"""AnnData export: layout, values against an independent computation, h5ad round trip."""

from pathlib import Path

import anndata
import numpy as np
import pytest

from immunomon.errors import ImmunomonError
from immunomon.export import (applied_gates, decimal_strings, deidentify_keywords,
                              fcs_keywords, gate_membership, gate_to_dict, h5ad_safe,
                              to_anndata, write_gated_h5ad, write_h5ad)
from immunomon.gating import (BooleanGate, Dimension, Divider, EllipsoidGate, GateReference,
                              GatingStrategy, PolygonGate, Quadrant, QuadrantGate,
                              RectangleGate)
from immunomon.simulate import pbmc_sample
from immunomon.transforms import Arcsinh, Logicle

L = Logicle()


def fl(marker):
    return Dimension(marker, "FCS", L)


def build(sample):
    s = GatingStrategy()
    s.add(RectangleGate("Big", [Dimension("FSC-A")], [(30000, None)]))
    s.add(RectangleGate("CD45+", [fl("CD45")], [(0.55, None)], parent="Big"))
    s.add(PolygonGate("Low SSC", [Dimension("FSC-A"), Dimension("SSC-A")],
                      [(3e4, 0), (1e5, 0), (1e5, 3e4), (3e4, 3e4)], parent="CD45+"))
    s.add(EllipsoidGate("Blob", [Dimension("FSC-A"), Dimension("SSC-A")], [55000, 14000],
                        [[1e8, 2e7], [2e7, 2e7]], 4.0, parent="CD45+"))
    s.add(QuadrantGate("CD4/CD8", [Divider("d4", fl("CD4"), [0.6]),
                                   Divider("d8", fl("CD8"), [0.6])],
                       [Quadrant("CD4+/CD8-", {"d4": 1, "d8": 0}),
                        Quadrant("CD4-/CD8+", {"d4": 0, "d8": 1})], parent="Low SSC"))
    s.add(BooleanGate("Not blob", "and", [GateReference("Blob", True), "CD45+"]))
    return s.apply(sample)


@pytest.fixture()
def sim():
    sim = pbmc_sample(3000, seed=9)
    sim.sample.keywords.update({"PATIENT ID": "UPN-0042", "SAMPLE ID": "S-7", "$OP": "jdoe",
                                "$INST": "Some Hospital", "EXPORT USER NAME": "jdoe",
                                "A/B": "slash key", "Tube Name": "P0042 day 30"})
    sim.sample.path = Path("data") / "UPN-0042_day30.fcs"
    return sim


def compensated(sample):
    """Compensation computed here: solve observed = true @ spillover for true."""
    spill = sample.spillover
    idx = [sample.channels.index(d) for d in spill.detectors]
    raw = sample.events[:, idx].astype(np.float64)
    true = np.linalg.solve(spill.matrix.T, raw.T).T
    return dict(zip(spill.detectors, true.T))


def test_layout_and_values(sim):
    sample = sim.sample
    result = build(sample)
    a = to_anndata(result)
    assert a.shape == (3000, 18)
    assert a.X.dtype == np.float32 and a.layers["raw"].dtype == np.float32
    assert list(a.var_names) == list(sample.channels)
    assert a.var.loc["BV786-A", "marker"] == "CD3" and a.var.loc["FSC-A", "marker"] == ""
    assert list(a.obs_names[:3]) == ["0", "1", "2"]
    comp = compensated(sample)
    # a channel a gate transformed: compensated, then logicle
    j = sample.channels.index("BV510-A")
    assert np.allclose(a.X[:, j], L.apply(comp["BV510-A"]), rtol=1e-5, atol=1e-6)
    assert a.var.loc["BV510-A", "transform"] == "Logicle(T=262144, W=0.5, M=4.5, A=0)"
    # a detector no gate used: compensated, linear
    j = sample.channels.index("FITC-A")
    assert np.allclose(a.X[:, j], comp["FITC-A"], rtol=1e-5, atol=1e-2)
    assert a.var.loc["FITC-A", "transform"] == "" and a.var.loc["FITC-A", "compensated"]
    # scatter and time: as read
    for c in ("FSC-A", "Time"):
        assert np.array_equal(a.X[:, sample.channels.index(c)], sample[c])
        assert not a.var.loc[c, "compensated"]
    assert np.array_equal(a.layers["raw"], sample.events)
    assert np.shares_memory(a.layers["raw"], sample.events)      # no copy of the events


def test_h5ad_round_trip_is_exact(sim, tmp_path):
    result = build(sim.sample)
    a = to_anndata(result, template={"name": "test panel", "version": "1.2",
                                     "markers": ["CD3", "CD45"], "note": None})
    out = write_h5ad(a, tmp_path / "out" / "s.h5ad")
    assert [p.name for p in out.parent.iterdir()] == ["s.h5ad"]
    b = anndata.read_h5ad(out)
    assert np.array_equal(b.X, a.X) and np.array_equal(b.layers["raw"], sim.sample.events)
    assert list(b.var_names) == list(a.var_names)
    assert list(b.var["marker"]) == list(a.var["marker"])
    # one boolean matrix, a column per population, equal to the gating masks
    pops = result.gate_ids
    assert b.obsm["gates"].dtype == bool and b.obsm["gates"].shape == (3000, len(pops))
    assert list(b.obs.columns) == []
    frame = gate_membership(b)
    assert list(frame.columns) == list(pops)
    for pid in pops:
        assert np.array_equal(gate_membership(b, pid), result.mask(pid))
        assert np.array_equal(frame[pid].to_numpy(), result.mask(pid))
    assert list(b.uns["populations"]["id"]) == list(pops)
    assert list(b.uns["populations"]["parent"]) == ["", "Big", "CD45+", "CD45+", "Low SSC",
                                                    "Low SSC", ""]
    assert list(b.uns["populations"]["count"]) == [result.count(p) for p in pops]
    # a mask checked against the raw data directly
    assert np.array_equal(gate_membership(b, "Big"), sim.sample["FSC-A"] >= 30000)
    with pytest.raises(ImmunomonError, match="no population 'nope'"):
        gate_membership(b, "nope")
    # a handful of datasets, however many populations, keywords and gates
    import h5py
    with h5py.File(out) as f:
        datasets = []
        f.visititems(lambda k, v: datasets.append(k) if isinstance(v, h5py.Dataset) else None)
    assert len(datasets) < 40, datasets
    assert b.uns["template"]["name"] == "test panel"
    assert list(b.uns["template"]["markers"]) == ["CD3", "CD45"]
    assert b.uns["template"]["note"] == ""
    assert b.uns["sample"]["file"] == "UPN-0042_day30.fcs"
    keywords = fcs_keywords(b)
    assert keywords == {k: str(v) for k, v in sim.sample.keywords.items()}
    assert keywords["PATIENT ID"] == "UPN-0042" and keywords["A/B"] == "slash key"
    assert b.uns["compensation"]["matrix"].shape == (14, 14)
    g = applied_gates(b)
    assert set(g) == {"Big", "CD45+", "Low SSC", "Blob", "CD4_CD8", "Not blob"}
    assert g["Big"]["type"] == "rectangle" and g["Big"]["min"][0] == 30000
    assert g["Big"]["max"][0] is None and g["Big"]["parent"] == ""
    assert g["Blob"]["distance_square"] == 4.0
    assert np.array_equal(g["Blob"]["covariance"], [[1e8, 2e7], [2e7, 2e7]])
    assert np.shape(g["Low SSC"]["vertices"]) == (4, 2)
    assert g["CD4_CD8"]["id"] == "CD4/CD8"
    assert list(g["CD4_CD8"]["quadrants"]["CD4+_CD8-"]["locations"]) == [1, 0]
    assert list(g["Not blob"]["complement"]) == [True, False]


def test_direct_writer_writes_what_to_anndata_holds(sim, tmp_path):
    """write_gated_h5ad (the gate job's writer, no AnnData in memory) reads back as
    the AnnData that to_anndata builds."""
    result = build(sim.sample)
    template = {"name": "test panel", "version": "1.2"}
    a = to_anndata(result, deidentify=True, template=template)
    out = write_gated_h5ad(result, tmp_path / "d" / "s.h5ad", deidentify=True,
                           template=template)
    assert [p.name for p in out.parent.iterdir()] == ["s.h5ad"]     # no temporary left
    b = anndata.read_h5ad(out)
    assert b.shape == a.shape and list(b.obs_names) == list(a.obs_names)
    assert b.X.dtype == np.float32 and np.array_equal(b.X, a.X)
    assert np.array_equal(b.layers["raw"], sim.sample.events)
    assert np.array_equal(b.obsm["gates"], a.obsm["gates"])
    for pid in result.gate_ids:
        assert np.array_equal(gate_membership(b, pid), result.mask(pid))
    assert list(b.var_names) == list(a.var_names)
    for col in a.var.columns:
        assert list(b.var[col]) == list(a.var[col]), col
    assert fcs_keywords(b) == fcs_keywords(a) and "PATIENT ID" not in fcs_keywords(b)
    assert applied_gates(b) == applied_gates(a)
    assert b.uns["template"]["name"] == "test panel"
    assert list(b.uns["populations"]["count"]) == [result.count(p) for p in result.gate_ids]
    _same(b.uns, a.uns)
    assert list(b.var.dtypes) == list(a.var.dtypes)


def _same(got, want, where="uns"):
    """Equal nested dicts of strings, numbers and arrays, type for type."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            _same(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, np.ndarray):
        text = "USO"                        # read back, strings come as objects
        assert isinstance(got, np.ndarray), where
        assert got.dtype.kind == want.dtype.kind or {got.dtype.kind, want.dtype.kind} <= \
            set(text), where
        assert np.array_equal(got.astype(str) if got.dtype.kind in text else got,
                              want.astype(str) if want.dtype.kind in text else want), where
    else:
        assert type(got) is type(want) or (np.isscalar(got) and got == want), where
        assert got == want, where


def test_direct_writer_encodes_elements_as_anndata_does(sim, tmp_path):
    """The gated file's .var, .layers and .uns, written with h5py alone, carry the
    encodings, dtypes and values anndata's own writer gives the same elements."""
    import h5py
    try:
        from anndata.io import write_elem
    except ImportError:                     # anndata < 0.11
        from anndata.experimental import write_elem

    result = build(sim.sample)
    a = to_anndata(result, template={"name": "p", "version": "1", "n": 3, "on": True})
    ours = write_gated_h5ad(result, tmp_path / "ours.h5ad",
                            template={"name": "p", "version": "1", "n": 3, "on": True})
    with h5py.File(tmp_path / "theirs.h5", "w") as f:
        write_elem(f, "var", a.var)
        write_elem(f, "layers", {"raw": a.layers["raw"]})
        write_elem(f, "uns", a.uns)
    with h5py.File(ours) as mine, h5py.File(tmp_path / "theirs.h5") as theirs:
        def compare(name, theirs_obj):
            obj = mine[name]
            assert dict(obj.attrs).keys() == dict(theirs_obj.attrs).keys(), name
            for k, v in theirs_obj.attrs.items():
                assert np.array_equal(np.asarray(obj.attrs[k]), np.asarray(v)), (name, k)
            if isinstance(theirs_obj, h5py.Dataset):
                assert obj.dtype == theirs_obj.dtype and obj.shape == theirs_obj.shape, name
                assert h5py.check_string_dtype(obj.dtype) == \
                    h5py.check_string_dtype(theirs_obj.dtype), name
                assert np.array_equal(obj[()], theirs_obj[()]), name
        theirs.visititems(compare)


def test_writing_the_gated_file_imports_no_anndata(tmp_path):
    """anndata imports dask.array where dask is installed: seconds a small file
    should not pay."""
    import subprocess
    import sys
    code = ("import sys\n"
            "from immunomon.simulate import pbmc_sample\n"
            "from immunomon.export import write_gated_h5ad\n"
            "from immunomon.gating import Dimension, GatingStrategy, RectangleGate\n"
            "s = GatingStrategy([RectangleGate('Big', [Dimension('FSC-A')], [(3e4, None)])])\n"
            "sample = pbmc_sample(2000, seed=1).sample\n"
            f"write_gated_h5ad(s.apply(sample), {str(tmp_path / 'a.h5ad')!r})\n"
            "print(sorted(m for m in ('anndata', 'dask') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
    assert anndata.read_h5ad(tmp_path / "a.h5ad").n_obs == 2000


def test_direct_writer_over_several_slabs_of_events(tmp_path):
    """Events are written a slab of 65,536 at a time: across slab boundaries .X, the
    membership matrix and the event names are those of the AnnData built whole."""
    result = build(pbmc_sample(140_000, seed=3).sample)
    a = to_anndata(result)
    b = anndata.read_h5ad(write_gated_h5ad(result, tmp_path / "s.h5ad"))
    assert np.array_equal(b.X, a.X) and np.array_equal(b.obsm["gates"], a.obsm["gates"])
    assert list(b.obs_names) == list(a.obs_names) == [str(i) for i in range(140_000)]


def test_deidentify(sim, tmp_path):
    a = to_anndata(build(sim.sample), deidentify=True)
    b = anndata.read_h5ad(write_h5ad(a, tmp_path / "d.h5ad"))
    kw = fcs_keywords(b)
    for gone in ("PATIENT ID", "SAMPLE ID", "$OP", "$INST", "EXPORT USER NAME", "$FIL",
                 "$SRC", "$DATE", "$SMNO", "$COM", "Tube Name"):
        assert gone not in kw
    for kept in ("$CYT", "$TIMESTEP", "$BTIM", "$P1N", "$SPILLOVER", "BEADS PER TEST",
                 "SAMPLE VOLUME UL", "$VOL"):
        assert kept in kw
    assert "file" not in b.uns["sample"] and b.uns["sample"]["deidentified"]
    text = repr(kw) + repr(dict(b.uns["sample"]))
    assert "UPN-0042" not in text and "jdoe" not in text and "Hospital" not in text


def test_deidentify_keywords_is_case_insensitive():
    kw = {"$fil": "a.fcs", "patient_id": "1", "Date of Birth": "x", "$P1N": "FSC-A"}
    assert deidentify_keywords(kw) == {"$P1N": "FSC-A"}


def test_populations_and_transform_overrides(sim):
    result = build(sim.sample)
    a = to_anndata(result, populations=["CD45+", "Blob"],
                   transforms={"CD127": Arcsinh(150.0), "CD45": None},
                   compensation="uncompensated")
    assert list(gate_membership(a).columns) == ["CD45+", "Blob"]
    assert np.array_equal(gate_membership(a, "Blob"), result.mask("Blob"))
    j = sim.sample.channels.index("FITC-A")
    assert np.allclose(a.X[:, j], np.arcsinh(sim.sample["FITC-A"] / 150.0), rtol=1e-6)
    assert a.var.loc["FITC-A", "transform"] == "Arcsinh(cofactor=150)"
    k = sim.sample.channels.index("BV510-A")
    assert np.array_equal(a.X[:, k], sim.sample["BV510-A"])
    assert not a.var["compensated"].any() and "compensation" not in a.uns


def test_an_identity_spillover_leaves_the_channels_uncompensated(sim):
    """A file's $SPILLOVER that is the identity compensates nothing: `.var` says the
    channels are not compensated (it said they were)."""
    import dataclasses

    spill = sim.sample.spillover
    eye = dataclasses.replace(spill, matrix=np.eye(len(spill.detectors)))
    sample = dataclasses.replace(sim.sample, spillover=eye)
    a = to_anndata(build(sample))
    assert not a.var["compensated"].any()
    assert to_anndata(build(sim.sample)).var["compensated"].any()


def test_failed_write_leaves_nothing(tmp_path):
    class Broken:
        def write_h5ad(self, path):
            Path(path).write_bytes(b"partial")
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_h5ad(Broken(), tmp_path / "x.h5ad")
    assert list(tmp_path.iterdir()) == []


def test_h5ad_safe_values():
    out = h5ad_safe({"a/b": None, "n": [1, 2.5], "s": ["x", None], "b": [True, False],
                     "nested": [{"k": 1}], "o": object})
    assert out["a_b"] == ""
    assert out["n"].dtype == np.float64 and list(out["s"]) == ["x", ""]
    assert out["b"].dtype == bool and out["nested"] == {"0": {"k": 1}}
    assert isinstance(out["o"], str)


def test_gate_dict_of_open_rectangle():
    d = gate_to_dict(RectangleGate("r", [Dimension("A"), Dimension("B")],
                                   [(None, 5), (1, None)], parent="p"))
    assert d["type"] == "rectangle" and d["parent"] == "p"
    assert np.isnan(d["min"][0]) and d["max"][0] == 5 and d["min"][1] == 1
    assert list(d["dimensions"]) == ["A", "B"] and list(d["transform"]) == ["", ""]


def test_real_flowjo_sample_round_trips(tmp_path):
    """A real file (flowWorkspaceData's A2004 tube) gated with its FlowJo 9 workspace:
    the .h5ad holds every population's events as the gating found them."""
    from testdata import DATA
    from immunomon.gating.flowjo import load_flowjo
    from immunomon.gating.flowjo.apply import apply_workspace

    ws = load_flowjo(DATA / "flowjo" / "A2004Analysis_A02.xml.gz")
    applied, = apply_workspace(ws, [DATA / "flowjo" / "a2004_O1T2pb05i_A2_A02.fcs"])
    result = applied.result
    b = anndata.read_h5ad(write_gated_h5ad(result, tmp_path / "a2004.h5ad"))
    assert b.n_obs == result.n_events and b.obsm["gates"].shape[1] == len(result.gate_ids)
    for pid in result.gate_ids:
        assert np.array_equal(gate_membership(b, pid), result.mask(pid)), pid
    live = int(gate_membership(b, "Live").sum())
    assert abs(live - 34469) <= 0.025 * 34469                      # FlowJo's stored count
    assert np.array_equal(b.layers["raw"], result.sample.events)


@pytest.mark.parametrize("start, stop", [(0, 0), (0, 1), (0, 10), (0, 11), (5, 105),
                                         (999, 1001), (65_536, 131_072), (0, 123_457)])
def test_event_numbers_as_strings_equal_numpys(start, stop):
    width = len(str(max(stop - 1, 0)))
    expected = np.arange(start, stop).astype(f"S{width}")
    got = decimal_strings(start, stop, width)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_events_left_out_of_gating_keep_their_file_numbers(tmp_path):
    # a clog's unstable time bins are left out of gating: the .h5ad holds the events
    # gated, each under its number in the file (it once numbered them 0, 1, ... again,
    # so a row no longer named its event and matching by number scored the wrong cells)
    from immunomon.export import event_number_strings
    from immunomon.gating.run import gate_sample, write_sample
    from immunomon.gating.template import load_template

    sim = pbmc_sample(20_000, seed=3, clog=True)
    template = load_template("post-transplant")
    gating = gate_sample(sim.sample, template, name="clogged")
    kept = gating.event_numbers
    assert gating.events_excluded > 0 and kept is not None
    assert kept.size == gating.result.n_events == 20_000 - gating.events_excluded
    folder = write_sample(gating, template, tmp_path, plots="none")
    adata = anndata.read_h5ad(folder / "clogged.h5ad")
    assert list(adata.obs_names) == [str(k) for k in kept]
    np.testing.assert_array_equal(adata.layers["raw"], sim.sample.events[kept])
    assert sim.anomaly[kept].mean() < sim.anomaly.mean()      # the clog's events left out
    # all gated: the usual 0, 1, ...
    assert gate_sample(pbmc_sample(2_000, seed=1).sample, template).event_numbers is None
    numbers = np.array([0, 7, 10, 99, 100, 12345])
    assert (event_number_strings(numbers, 5) == numbers.astype("S5")).all()


def test_a_template_without_compensation_writes_uncompensated_tables_and_x(tmp_path):
    # `compensation: none` gates the values as stored; the statistics and the AnnData's
    # .X once took the file's spillover all the same, so a PE median differed from the
    # gate's own values (a core facility's 293 against the 374 it gated on)
    import pandas as pd

    from immunomon.gating.run import gate_sample, write_sample
    from immunomon.gating.template import parse_template

    sim = pbmc_sample(5_000, seed=2)
    assert sim.sample.spillover is not None
    template = parse_template("""
panel: stored values
version: "1"
markers: {CD3: [CD3]}
compensation: none
transforms: {fluorescence: linear, scatter: linear}
populations:
  - name: All
    parent: root
    dims: [FSC-A]
    gate: {rectangle: {bounds: [[-1e9, null]]}}
""", "none.yaml")
    gating = gate_sample(sim.sample, template, name="s", exclude_anomalies=False)
    folder = write_sample(gating, template, tmp_path, plots="none", gatingml=False)
    stats = pd.read_csv(folder / "statistics.csv")
    cd3 = sim.sample.channel_index("CD3")
    name = sim.sample.channels[cd3]
    row = stats[(stats.population == "All") & (stats.channel == name)].iloc[0]
    raw = sim.sample.events[:, cd3]
    assert row["median"] == pytest.approx(float(np.median(raw)), rel=1e-5)
    compensated = gate_sample(sim.sample, template.__class__(
        **{**template.__dict__, "compensation": "file"}), exclude_anomalies=False)
    other = pd.DataFrame(compensated.statistics_columns)
    assert other[(other.population == "All") & (other.channel == name)]["median"].iloc[0] \
        != pytest.approx(row["median"], rel=1e-3)
    adata = anndata.read_h5ad(folder / "s.h5ad")
    assert not adata.var["compensated"].any()
    np.testing.assert_array_equal(adata.X, adata.layers["raw"])


def test_a_divider_of_its_own_on_each_side_names_its_dimension():
    """CCR7 cut once below and once above the CD45RA cut: ``dimensions`` lists CCR7
    twice (one per divider), and each divider names its own."""
    gate = QuadrantGate("M", [Divider("M.x", fl("CD45RA"), [0.5]),
                              Divider("M.y.below", fl("CCR7"), [0.4]),
                              Divider("M.y.above", fl("CCR7"), [0.6])],
                        [Quadrant("CM", {"M.x": 0, "M.y.below": 1}),
                         Quadrant("Naive", {"M.x": 1, "M.y.above": 1})])
    out = gate_to_dict(gate)
    assert list(out["dimensions"]) == ["CD45RA", "CCR7", "CCR7"]
    assert {k: d["dimension"] for k, d in out["dividers"].items()} == \
        {"M.x": "CD45RA", "M.y.below": "CCR7", "M.y.above": "CCR7"}
