"""Simulated samples: determinism, frequencies, spillover, clog, batch shift, truth masks,
and that simple gates on compensated data can find the populations."""

from __future__ import annotations

import re

import numpy as np
import pytest

from immunomon import ImmunomonError, read_fcs, write_fcs
from immunomon import simulate as sim

COFACTOR = 150.0


@pytest.fixture(scope="module")
def default():
    return sim.pbmc_sample(60_000, seed=7)


def compensated(s):
    """Fluorescence columns compensated with the inverse of the sample's own matrix."""
    cols = [s.channel_index(d) for d in s.spillover.detectors]
    return s.events[:, cols].astype(np.float64) @ np.linalg.inv(s.spillover.matrix)


def asinh_marker(s, comp, marker):
    return np.arcsinh(comp[:, list(s.spillover.detectors).index(sim.PANEL[marker])] / COFACTOR)


def above(value):
    return np.arcsinh(value / COFACTOR)


def f1(pred, truth):
    tp = np.count_nonzero(pred & truth)
    return 2.0 * tp / (np.count_nonzero(pred) + np.count_nonzero(truth))


# -- determinism -------------------------------------------------------------------------
def test_same_seed_same_sample_other_seed_other_sample():
    a = sim.pbmc_sample(5000, seed=42, clog=True, batch_shift=0.1)
    b = sim.pbmc_sample(5000, seed=42, clog=True, batch_shift=0.1)
    c = sim.pbmc_sample(5000, seed=43, clog=True, batch_shift=0.1)
    assert np.array_equal(a.sample.events, b.sample.events)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.anomaly, b.anomaly)
    assert a.sample.keywords == b.sample.keywords
    assert not np.array_equal(a.sample.events, c.sample.events)
    assert not np.array_equal(a.labels, c.labels)


# -- channels, keywords, scale -----------------------------------------------------------
def test_channels_markers_and_keywords(default):
    s = default.sample
    assert s.events.dtype == np.float32 and s.events.shape == (60_000, 18)
    assert s.channels[:3] == ("FSC-A", "FSC-H", "SSC-A") and s.channels[-1] == "Time"
    expected = {"CD45", "CD3", "CD4", "CD8", "CD19", "CD56", "CD16", "HLA-DR", "CD25",
                "CD127", "FoxP3", "CD11c", "CD123", "CD14"}
    assert {m for m in s.markers if m} == expected
    assert s.column("CD3") is not None and s.channels[s.channel_index("CD3")].endswith("-A")
    kw = s.keywords
    assert kw["$TOT"] == "60000" and kw["$PAR"] == "18"
    assert re.fullmatch(r"\d\d-[A-Z]{3}-\d{4}", kw["$DATE"])
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", kw["$BTIM"])
    assert kw["$CYT"] and float(kw["$TIMESTEP"]) == 0.01
    for i, ch in enumerate(s.channel_info, start=1):
        assert kw[f"$P{i}N"] == ch.name and float(kw[f"$P{i}R"]) == ch.range
        assert kw[f"$P{i}B"] == "32" and kw[f"$P{i}E"] == "0,0"
        if ch.marker:
            assert kw[f"$P{i}S"] == ch.marker
    assert int(kw[sim.BEADS_KEYWORD]) == 50_000 and float(kw[sim.BLOOD_VOLUME_KEYWORD]) == 50
    assert float(kw["$VOL"]) > 0
    # 18-bit scale: nothing above the top channel, scatter not negative
    assert s.events[:, :-1].max() <= 262143 and s.events[:, :3].min() >= 0
    assert all(r == 262144 for r in s.ranges[:-1])


def test_spillover_matrix_is_realistic(default):
    spill = default.sample.spillover
    m = spill.matrix
    assert set(spill.detectors) <= set(default.sample.channels) and len(spill.detectors) == 14
    assert np.allclose(np.diag(m), 1.0) and not np.allclose(m, m.T)
    d = {name: i for i, name in enumerate(spill.detectors)}
    for src, dst in [("FITC-A", "PE-A"), ("PE-A", "PE-CF594-A"), ("APC-A", "APC-R700-A")]:
        assert m[d[src], d[dst]] >= 0.15 and m[d[src], d[dst]] > m[d[dst], d[src]]
    assert np.count_nonzero(m - np.eye(len(m))) > 40   # many small spills, not a toy


def test_fcs_round_trip_keeps_everything(tmp_path):
    simd = sim.pbmc_sample(3000, seed=3)
    path = write_fcs(tmp_path / "s.fcs", simd.sample)
    back = read_fcs(path)
    assert np.array_equal(back.events, simd.sample.events)
    assert back.channels == simd.sample.channels and back.markers == simd.sample.markers
    assert back.spillover == simd.sample.spillover
    for key in ("$CYT", "$DATE", "$BTIM", "$ETIM", "$TIMESTEP", "$VOL", sim.BEADS_KEYWORD):
        assert back.keywords[key] == simd.sample.keywords[key]


def test_truth_file_round_trip(tmp_path):
    simd = sim.pbmc_sample(2000, seed=4, clog=True)
    path = sim.write_truth(tmp_path / "s.labels.csv.gz", simd)
    labels, anomaly = sim.read_truth(path)
    assert np.array_equal(labels, simd.labels) and np.array_equal(anomaly, simd.anomaly)
    assert path.read_bytes() == sim.write_truth(tmp_path / "again.csv.gz", simd).read_bytes()


# -- frequencies ---------------------------------------------------------------------------
def test_default_fractions_multiply_down_the_tree():
    absolute = sim.absolute_frequencies(sim.resolve_frequencies())
    # hand-computed: singlets 0.97 x leukocytes 0.78 x lymphocytes 0.18 x T 0.55 x CD4 0.35
    assert absolute["Lymphocytes"] == pytest.approx(0.97 * 0.78 * 0.18)
    assert absolute["CD4 T"] == pytest.approx(0.97 * 0.78 * 0.18 * 0.55 * 0.35)
    assert sum(absolute[leaf] for leaf in sim.LEAF_NAMES) == pytest.approx(1.0)
    dc = absolute["mDC"] + absolute["pDC"]
    assert 0.001 <= absolute["pDC"] / absolute["Lymphocytes"] <= 0.01
    assert 0.001 <= dc / absolute["Lymphocytes"] <= 0.01


def binomial_ok(count, n, p, z=4.5):
    return abs(count - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1


def test_label_frequencies_match_defaults(default):
    absolute = sim.absolute_frequencies(sim.resolve_frequencies())
    n = default.labels.size
    for leaf in sim.LEAF_NAMES:
        assert binomial_ok(np.count_nonzero(default.labels == leaf), n, absolute[leaf]), leaf


def test_overridden_frequencies_are_honoured():
    freqs = {"B cells": 0.20, "pDC/Lymphocytes": 0.005, "Beads": 0.05, "CD56bright NK": 0.6}
    simd = sim.pbmc_sample(60_000, seed=11, frequencies=freqs)
    lym = simd.mask("Lymphocytes")
    nk = simd.mask("NK cells")
    n_lym = np.count_nonzero(lym)
    assert binomial_ok(np.count_nonzero(simd.mask("B cells")), n_lym, 0.20)
    assert binomial_ok(np.count_nonzero(simd.mask("pDC")), n_lym, 0.005)
    assert binomial_ok(np.count_nonzero(simd.mask("CD56bright NK")), np.count_nonzero(nk), 0.6)
    assert binomial_ok(np.count_nonzero(simd.mask("Beads")),
                       np.count_nonzero(simd.mask("Singlets")), 0.05)
    # siblings keep their relative sizes: T:NK as in the defaults (0.55:0.35)
    t, k = np.count_nonzero(simd.mask("T cells")), np.count_nonzero(nk)
    assert t / k == pytest.approx(0.55 / 0.35, rel=0.1)


def test_no_beads():
    simd = sim.pbmc_sample(3000, seed=1, beads=False)
    assert not simd.mask("Beads").any() and sim.BEADS_KEYWORD not in simd.sample.keywords


@pytest.mark.parametrize("kwargs", [
    {"frequencies": {"Nonsense": 0.1}},
    {"frequencies": {"B cells": 1.5}},
    {"frequencies": {"mDC": 0.7, "pDC": 0.7}},
    {"frequencies": {"pDC/Monocytes": 0.01}},
    {"clog": (0.8, 0.2)},
    {"clog": "yes"},
    {"batch_shift": {"CD999": 0.2}},
    {"batch_shift": -1.5},
    {"n_events": 0},
])
def test_bad_arguments_raise_immunomon_errors(kwargs):
    kwargs = {"n_events": 100, **kwargs}
    with pytest.raises(ImmunomonError):
        sim.pbmc_sample(**kwargs)


# -- hierarchy ---------------------------------------------------------------------------------
def test_masks_nest_and_children_partition_parents(default):
    n = default.labels.size
    top = [p for p, parent in sim.HIERARCHY.items() if parent is None]
    assert sum(np.count_nonzero(default.mask(p)) for p in top) == n
    for pop, parent in sim.HIERARCHY.items():
        m = default.mask(pop)
        if parent is not None:
            assert not np.any(m & ~default.mask(parent)), pop
        kids = [c for c, p in sim.HIERARCHY.items() if p == pop]
        if kids:
            union = np.zeros(n, dtype=bool)
            for k in kids:
                assert not np.any(union & default.mask(k)), k   # disjoint siblings
                union |= default.mask(k)
            assert np.array_equal(union, m), pop
        else:
            assert np.array_equal(m, default.labels == pop)
    assert set(np.unique(default.labels)) <= set(sim.LEAF_NAMES)
    assert np.array_equal(default.mask("Activated T"),
                          default.mask("Activated CD4 T") | default.mask("Activated CD8 T"))
    with pytest.raises(ImmunomonError):
        default.mask("Unicorns")


# -- compensation ----------------------------------------------------------------------------
def test_compensation_recovers_signal_and_raw_data_shows_the_spill(default):
    s = default.sample
    comp = compensated(s)
    true = default.true_signal.astype(np.float64)
    unclipped = (s.events[:, 3:-1] < 262143).all(axis=1)
    resid = np.abs(comp - true)[unclipped]
    # within instrument noise (tens to ~150 units at the median), in every detector
    assert np.all(np.median(resid, axis=0) < 200)
    det = list(s.spillover.detectors)
    raw = s.events[:, 3:-1].astype(np.float64)
    for src, dst in [("FITC-A", "PE-A"), ("PE-A", "PE-CF594-A"), ("APC-A", "APC-R700-A")]:
        i, j = det.index(src), det.index(dst)
        bright = unclipped & (true[:, i] > 2000) & (true[:, j] < 300) & default.mask("Leukocytes")
        assert np.count_nonzero(bright) > 50
        spilled = np.median(raw[bright, j] - true[bright, j])
        assert spilled > 0.1 * np.median(true[bright, i])          # the raw data shows it
        assert abs(np.median(comp[bright, j] - true[bright, j])) < 0.1 * spilled
    # compensated negatives spread around zero: every detector but CD45's (stained on every
    # cell) has values below zero and, where autofluorescence is low, a good share of the dim
    # events read negative
    below = (comp < 0).sum(axis=0)
    assert all(below[j] > 20 for j in range(len(det)) if det[j] != sim.PANEL["CD45"])
    dim = true < 100
    negative_share = np.array([(comp[dim[:, j], j] < 0).mean() for j in range(len(det))])
    assert np.count_nonzero(negative_share > 0.1) >= 10


def test_no_spillover_option_gives_pure_signals():
    simd = sim.pbmc_sample(4000, seed=2, spillover=False)
    assert simd.sample.spillover is None
    raw = simd.sample.events[:, 3:-1].astype(np.float64)
    assert np.all(np.median(np.abs(raw - simd.true_signal), axis=0) < 150)


# -- acquisition: time, clog -----------------------------------------------------------------
def test_time_is_monotone_at_the_requested_rate(default):
    s = default.sample
    t = s.column("Time").astype(np.float64) * s.timestep
    assert np.all(np.diff(t) >= 0)
    assert len(t) / t[-1] == pytest.approx(600.0, rel=0.05)


def test_clog_lowers_the_rate_and_shifts_intensities():
    simd = sim.pbmc_sample(60_000, seed=5, clog=(0.4, 0.6))
    s = simd.sample
    t = s.column("Time").astype(np.float64) * s.timestep
    inside = simd.anomaly
    assert 0.02 < inside.mean() < 0.2
    # the window is one contiguous stretch of the acquisition
    assert np.all(np.diff(np.flatnonzero(inside)) == 1)
    rate_in = inside.sum() / (t[inside].max() - t[inside].min())
    outside = ~inside
    rate_out = outside.sum() / (t[-1] - (t[inside].max() - t[inside].min()))
    assert rate_in < 0.4 * rate_out
    lym = simd.mask("Lymphocytes")
    cd45 = s.column("CD45")
    assert np.median(cd45[lym & inside]) < 0.85 * np.median(cd45[lym & outside])
    ssc = s.column("SSC-A")
    assert np.median(ssc[lym & inside]) < 0.9 * np.median(ssc[lym & outside])
    assert not sim.pbmc_sample(2000, seed=5).anomaly.any()


# -- batch shift ---------------------------------------------------------------------------------
def test_batch_shift_moves_medians_by_the_requested_fraction():
    base = sim.pbmc_sample(30_000, seed=9)
    up = sim.pbmc_sample(30_000, seed=9, batch_shift={"CD3": 0.3, "HLA-DR": -0.2})
    down = sim.pbmc_sample(30_000, seed=9, batch_shift=-0.25)
    t = base.mask("T cells")
    b = base.mask("B cells")
    cb, cu, cd = compensated(base.sample), compensated(up.sample), compensated(down.sample)
    det = list(base.sample.spillover.detectors)

    def med(c, marker, m):
        return np.median(c[m, det.index(sim.PANEL[marker])])

    assert med(cu, "CD3", t) / med(cb, "CD3", t) == pytest.approx(1.3, abs=0.03)
    assert med(cu, "HLA-DR", b) / med(cb, "HLA-DR", b) == pytest.approx(0.8, abs=0.03)
    assert med(cu, "CD4", t) / med(cb, "CD4", t) == pytest.approx(1.0, abs=0.02)
    assert med(cd, "CD19", b) / med(cb, "CD19", b) == pytest.approx(0.75, abs=0.03)
    assert med(cd, "CD45", t) / med(cb, "CD45", t) == pytest.approx(0.75, abs=0.03)


# -- absolute counts ------------------------------------------------------------------------------
def test_bead_count_gives_the_designed_leukocyte_concentration(default):
    # hand-computed: 0.78 leukocytes / 0.16 beads x 50,000 beads / 50 uL = 4875 per uL
    assert default.cells_per_ul("Leukocytes") == pytest.approx(4875, rel=0.05)
    assert default.cells_per_ul("Lymphocytes") == pytest.approx(4875 * 0.18, rel=0.06)


def test_beads_are_tight_and_bright_everywhere(default):
    s = default.sample
    beads = default.mask("Beads")
    fl = s.events[beads, 3:-1]
    assert np.all(np.median(fl, axis=0) > 20_000)
    others = s.events[default.mask("Leukocytes"), 3:-1]
    assert np.all(np.median(fl, axis=0) > np.percentile(others, 99, axis=0))
    fsc = s.column("FSC-A")[beads]
    assert np.std(fsc) / np.mean(fsc) < 0.06


# -- gateability --------------------------------------------------------------------------------
def test_simple_gates_on_compensated_asinh_data_find_the_populations():
    simd = sim.pbmc_sample(80_000, seed=21)
    s = simd.sample
    comp = compensated(s)

    def a(m):
        return asinh_marker(s, comp, m)

    lym = simd.mask("Lymphocytes")
    t_truth = simd.mask("T cells")
    cd3 = a("CD3") > above(1000)
    assert f1(cd3[lym], t_truth[lym]) > 0.95
    b = (a("CD19") > above(1000)) & ~cd3
    assert f1(b[lym], simd.mask("B cells")[lym]) > 0.95
    nk = (a("CD56") > above(800)) & ~cd3
    assert f1(nk[lym], simd.mask("NK cells")[lym]) > 0.95
    cd4 = a("CD4") > above(2000)
    cd8 = a("CD8") > above(2000)
    assert f1(cd4[t_truth], simd.mask("CD4 T")[t_truth]) > 0.95
    assert f1(cd8[t_truth], simd.mask("CD8 T")[t_truth]) > 0.95
    nk_truth = simd.mask("NK cells")
    bright = a("CD56") > above(9000)
    assert f1(bright[nk_truth], simd.mask("CD56bright NK")[nk_truth]) > 0.85
    c8 = simd.mask("CD8 T")
    dr = a("HLA-DR") > above(500)
    assert f1(dr[c8], simd.mask("Activated CD8 T")[c8]) > 0.9
    c4 = simd.mask("CD4 T")
    treg = (a("CD25") > above(1000)) & (a("CD127") < above(600))
    assert f1(treg[c4], simd.mask("Treg")[c4]) > 0.8
    # ... but CD25 alone is not enough: the panel needs CD127 for Tregs, as in real blood
    assert f1((a("CD25") > above(1200))[c4], simd.mask("Treg")[c4]) < 0.85

    # dendritic cells: lineage-negative, HLA-DR+, then CD11c vs CD123
    lin_neg = (~cd3 & (a("CD19") < 2) & (a("CD56") < 2.5) & (a("CD16") < 2.5)
               & (a("CD14") < 2.5) & (a("HLA-DR") > above(1000)))
    pdc = lin_neg & (a("CD123") > above(3000)) & (a("CD11c") < 2)
    mdc = lin_neg & (a("CD11c") > above(2000)) & (a("CD123") < above(3000))
    for gate, name in [(pdc, "pDC"), (mdc, "mDC")]:
        truth = simd.mask(name)[lym]
        assert truth.sum() >= 15
        assert f1(gate[lym], truth) > 0.85
        assert gate[lym].sum() == pytest.approx(truth.sum(), rel=0.2)

    # scatter: singlets on FSC-H/FSC-A, lymphocytes on scatter and CD45
    ratio = s.column("FSC-H") / np.maximum(s.column("FSC-A"), 1)
    singlets = simd.mask("Singlets")
    assert 0.95 < f1(ratio > 0.78, singlets) < 0.999     # some doublets overlap fully
    lym_gate = ((s.column("SSC-A") < 30_000) & (s.column("FSC-A") > 30_000)
                & (s.column("FSC-A") < 90_000) & (a("CD45") > above(4000)))
    assert f1(lym_gate, lym) > 0.95
    beads = (s.column("SSC-A") > 60_000) & (s.column("FSC-A") < 50_000) & (a("CD45") > above(20_000))
    assert f1(beads, simd.mask("Beads")) > 0.97


# -- committed fixtures ------------------------------------------------------------------------
def test_committed_fixtures_are_what_the_script_makes(tmp_path):
    import importlib.util
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    spec = importlib.util.spec_from_file_location("make_fixtures", fixtures / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name = "pbmc_03_clog"
    module.make(name, module.SAMPLES[name], out=tmp_path)
    committed, fresh = read_fcs(fixtures / f"{name}.fcs"), read_fcs(tmp_path / f"{name}.fcs")
    assert np.array_equal(committed.events, fresh.events)
    assert committed.spillover == fresh.spillover
    labels, anomaly = sim.read_truth(fixtures / f"{name}.labels.csv.gz")
    fresh_labels, fresh_anomaly = sim.read_truth(tmp_path / f"{name}.labels.csv.gz")
    assert np.array_equal(labels, fresh_labels) and np.array_equal(anomaly, fresh_anomaly)
    assert labels.size == committed.n_events and anomaly.any()
