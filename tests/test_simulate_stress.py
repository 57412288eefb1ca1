"""Stress scenarios: determinism, truth consistent with the hierarchy, stated frequencies
realised, doublet geometry, spillover spreading as the noise model predicts, FCS round
trips with truth that lines up with the file's events, and a fast accuracy smoke test."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from immunomon import ImmunomonError, compensate, read_fcs, write_fcs
from immunomon import simulate
from immunomon.simulate import stress
from immunomon.simulate.blood import Pulse, _doublet_height

ROOT = Path(__file__).resolve().parents[1]
NAMES = tuple(stress.SCENARIOS)


def binomial_ok(k: int, n: int, p: float, z: float = 4.5) -> bool:
    """k successes out of n is within z standard errors of p."""
    return abs(k - n * p) <= z * np.sqrt(n * p * (1 - p)) + 1


@pytest.fixture(scope="module")
def small():
    """Every scenario at 4,000 events, seed 11."""
    return {name: stress.scenario(name, 4000, seed=11) for name in NAMES}


# -- determinism and variation ------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_sample_other_seed_other_draws(name, small):
    a = small[name]
    b = stress.scenario(name, 4000, seed=11)
    c = stress.scenario(name, 4000, seed=12)
    assert np.array_equal(a.sample.events, b.sample.events)
    assert np.array_equal(a.codes, b.codes) and a.settings == b.settings
    assert a.sample.keywords == b.sample.keywords
    assert not np.array_equal(a.sample.events[:100], c.sample.events[:100])
    # the scenario's own variation differs between seeds, not only the noise
    assert a.settings["frequencies"] != c.settings["frequencies"]
    assert a.settings["batch_shift"] != c.settings["batch_shift"]


def test_settings_stay_within_the_stated_ranges():
    for seed in range(1, 16):
        mp = stress.mostly_positive(300, seed).settings["frequencies"]
        assert 0.80 <= mp["T cells"] <= 0.95 and 0.75 <= mp["CD8 T"] <= 0.90
        mb = stress.minor_bright(300, seed).settings
        assert 0.5 <= mb["B cells % of CD3- lymphocytes"] <= 5.0
        assert 0.005 <= mb["frequencies"]["Treg"] <= 0.05
        ics = stress.ics(300, seed).settings
        assert 0.1 <= ics["CD4 responding %"] <= 3.0 and 0.1 <= ics["CD8 responding %"] <= 3.0
        for name in ("doublets", "ficoll_pbmc", "mouse_spleen"):
            s = stress.scenario(name, 300, seed).settings
            assert 0.02 <= s["frequencies"]["Doublets"] <= 0.05
            assert all(abs(v) <= 0.2 for v in s["batch_shift"].values())
            assert abs(s["drift"]) <= 0.05


def test_unknown_scenario_is_a_clear_error():
    with pytest.raises(ImmunomonError, match="unknown stress scenario 'nope'.*mostly_positive"):
        stress.scenario("nope")


# -- truth consistent with the hierarchy ----------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_truth_masks_nest_and_partition(name, small):
    sim = small[name]
    design = sim.design
    n = sim.sample.n_events
    assert sim.codes.shape == (n,) and sim.codes.max() < len(design.leaf_names)
    tops = [p for p, parent in design.hierarchy.items() if parent is None]
    assert sum(int(sim.mask(p).sum()) for p in tops) == n       # every event in one top
    for pop, parent in design.hierarchy.items():
        child = sim.mask(pop)
        if parent is not None:
            assert not np.any(child & ~sim.mask(parent)), f"{pop} outside {parent}"
        kids = design.children(pop)
        if kids:
            stacked = np.sum([sim.mask(k) for k in kids], axis=0)
            assert np.array_equal(stacked, child.astype(int)), f"children of {pop}"
    for group, members in design.groups.items():
        union = np.any([sim.mask(m) for m in members], axis=0)
        assert np.array_equal(sim.mask(group), union)
    counts = sim.counts()
    assert all(counts[p] == int(sim.mask(p).sum()) for p in design.leaves)


def test_designs_are_validated():
    with pytest.raises(ImmunomonError, match="'broken'.*no scatter for"):
        simulate.Design(name="broken", panel={"CD3": "A-A"}, detectors={"A-A": (488, 1, 1, 1, 1)},
                        spill={}, hierarchy={"Cells": None}, frequencies={"Cells": 1.0},
                        phenotypes={}, scatter={})
    with pytest.raises(ImmunomonError, match="phenotypes use markers that are not in the panel"):
        simulate.Design(name="broken", panel={"CD3": "A-A"}, detectors={"A-A": (488, 1, 1, 1, 1)},
                        spill={}, hierarchy={"Cells": None}, frequencies={"Cells": 1.0},
                        phenotypes={"Cells": {"CD4": (1, 1)}}, scatter={"Cells": (1, 1, 1, 1, 1)})


# -- stated frequencies are realised ----------------------------------------------------------
def test_minor_populations_and_doublets_are_realised():
    sim = stress.minor_bright(150_000, seed=4)
    s = sim.settings
    cd3_neg = sim.mask("Lymphocytes") & ~sim.mask("T cells")
    b = sim.mask("B cells")
    assert binomial_ok(int(b.sum()), int(cd3_neg.sum()), s["B cells % of CD3- lymphocytes"] / 100)
    cd4 = sim.mask("CD4 T")
    assert binomial_ok(int(sim.mask("Treg").sum()), int(cd4.sum()), s["frequencies"]["Treg"])
    assert binomial_ok(int(sim.mask("Doublets").sum()), 150_000, s["frequencies"]["Doublets"])
    lymph = sim.mask("Lymphocytes")
    assert binomial_ok(int(sim.mask("T cells").sum()), int(lymph.sum()),
                       s["frequencies"]["T cells"])


def test_mostly_positive_parents_are_mostly_positive():
    for seed in (1, 2):
        sim = stress.mostly_positive(40_000, seed)
        share = sim.mask("T cells").sum() / sim.mask("Lymphocytes").sum()
        want = sim.settings["frequencies"]["T cells"]
        assert 0.78 <= share <= 0.97 and abs(share - want) < 0.02


def test_cytokine_responders_are_realised():
    sim = stress.ics(200_000, seed=5)
    for prefix in ("CD4", "CD8"):
        parent = sim.mask(f"{prefix} T")
        resp = sim.mask(f"{prefix} responding")
        p = sim.settings[f"{prefix} responding %"] / 100
        assert binomial_ok(int(resp.sum()), int(parent.sum()), p)
    # IFNg+ CD4 T cells are the union of the profiles that make IFNg
    ifng = sim.mask("CD4 IFNg+")
    assert np.array_equal(ifng, sim.mask("CD4 IFNg+ TNFa+ IL-2+") | sim.mask("CD4 IFNg+ TNFa+")
                          | sim.mask("CD4 IFNg+ only"))


def test_enriched_samples_have_one_cluster_and_no_beads():
    for make in (stress.ficoll_pbmc, stress.lymphocyte_enriched):
        sim = make(30_000, seed=3)
        leuk = sim.mask("Leukocytes").sum()
        assert sim.mask("Beads").sum() == 0 and "BEADS PER TEST" not in sim.sample.keywords
        assert sim.mask("Granulocytes").sum() / leuk <= 0.035
    enriched = stress.lymphocyte_enriched(30_000, seed=3)
    assert enriched.mask("Lymphocytes").sum() / enriched.mask("Leukocytes").sum() >= 0.92


# -- doublet geometry ---------------------------------------------------------------------------
def test_two_gaussian_pulses_peak_where_the_formula_says():
    pulse = Pulse(separation=2.0)
    area = np.full(4, 52000.0)
    ratio = pulse.height(area) / area
    single = area * ratio
    # complete overlap: twice the height; 2 SDs apart: 2 exp(-1/2) at the midpoint;
    # far apart: one pulse's height (plus the other's negligible tail)
    where = np.array([0.0, 1.0, 0.0, 1.0])
    got = _doublet_height(pulse, area, ratio, area, ratio, where) / single
    assert got[0] == pytest.approx(2.0) and got[1] == pytest.approx(2 * np.exp(-0.5), rel=1e-4)
    far = _doublet_height(Pulse(separation=20.0), area[:1], ratio[:1], area[:1], ratio[:1],
                          np.ones(1)) / single[:1]
    assert far[0] == pytest.approx(1.0, abs=1e-3)
    # bigger cells have wider pulses, so a lower height/area ratio
    assert pulse.height(np.array([110000.0]))[0] / 110000 < ratio[0] < \
        pulse.height(np.array([20000.0]))[0] / 20000


def test_doublets_span_every_overlap():
    sim = stress.doublets(80_000, seed=2)
    e = sim.sample.events.astype(np.float64)
    ratio = e[:, 1] / e[:, 0]
    cells = sim.mask("Leukocytes")
    d = sim.mask("Doublets")
    assert 0.02 <= d.mean() <= 0.055
    low = np.quantile(ratio[cells], 0.005)
    below = np.mean(ratio[d] < low)
    assert 0.5 <= below <= 0.9               # most stand out, some hide among singlets
    # intermediate ratios, not only 'twice the area': no gap between half and full
    hist, _ = np.histogram(ratio[d] / np.median(ratio[cells]), bins=8, range=(0.55, 0.95))
    assert np.all(hist > 0.02 * d.sum())


# -- spillover spreading -------------------------------------------------------------------------
def test_spillover_spreading_follows_the_photon_noise_model():
    """After compensation, the HLA-DR noise of CD8 T cells (bright PE-Cy5) has the
    variance that error propagation predicts from the spillover matrix and each
    detector's noise, which grows with the signal it receives."""
    sim = stress.spillover_spread(60_000, seed=3)
    design = sim.design
    det = list(design.detector_names)
    i_dr = det.index("PerCP-Cy5-5-A")
    comp = compensate(sim.sample)
    residual = comp["HLA-DR"].astype(np.float64) - sim.true_signal[:, i_dr]
    S = design.spillover_matrix()
    weights = np.linalg.inv(S)[:, i_dr] ** 2
    electronic = np.array([design.detectors[d][3] for d in det]) ** 2
    per_pe = np.array([design.detectors[d][4] for d in det])
    detected = np.maximum(sim.true_signal.astype(np.float64) @ S, 0)
    expected = (electronic + per_pe * detected) @ weights
    cd8 = sim.mask("Resting CD8 T")
    cd8_signal = sim.true_signal[:, det.index("PE-Cy5-A")]
    edges = np.quantile(cd8_signal[cd8], [0, 0.33, 0.67, 1])
    for lo, hi in zip(edges[:-1], edges[1:]):
        b = cd8 & (cd8_signal >= lo) & (cd8_signal <= hi)
        assert residual[b].var() == pytest.approx(expected[b].mean(), rel=0.15)
    cd4 = sim.mask("Resting CD4 T")
    assert residual[cd8].std() > 2.5 * residual[cd4].std()


# -- FCS files and truth files -------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fcs_round_trip_and_truth_lines_up(name, small, tmp_path):
    sim = small[name]
    path = write_fcs(tmp_path / f"{name}.fcs", sim.sample)
    truth = simulate.write_truth(tmp_path / f"{name}.labels.csv.gz", sim)
    back = read_fcs(path)
    labels, anomaly = simulate.read_truth(truth, design=sim.design)
    assert np.array_equal(back.events, sim.sample.events)
    assert back.channels == sim.design.channels
    assert [m for m in back.markers if m] == list(sim.design.markers)
    assert back.spillover == sim.sample.spillover
    assert back.ranges[3] == sim.design.range
    assert labels.shape == (back.n_events,) and np.array_equal(labels, sim.labels)
    # the labels describe these events: compensated, the stained populations carry their
    # markers (dead cells their viability dye) well above the rest
    comp = compensate(back)
    viability = {"mouse_spleen": "Live/Dead", "ics": "L/D Aqua"}.get(name)
    if viability:
        v = comp[viability]
        dead = labels == "Dead cells"
        assert np.median(v[dead]) > 10 * np.median(v[~dead & (labels != "Debris")])
    else:
        cd8 = comp["CD8"]
        is_cd8 = np.isin(labels, ["Resting CD8 T", "Activated CD8 T"])
        assert np.median(cd8[is_cd8]) > 20 * abs(np.median(cd8[labels == "Resting CD4 T"]))


def test_read_truth_checks_labels_against_the_design(small, tmp_path):
    truth = simulate.write_truth(tmp_path / "ics.labels.csv.gz", small["ics"])
    with pytest.raises(ImmunomonError, match="unknown labels"):
        simulate.read_truth(truth)               # the blood design has no 'Dead cells'


def test_compensation_recovers_bright_signals_in_another_scale(small):
    sim = stress.mouse_spleen(20_000, seed=2)
    comp = compensate(sim.sample)
    b = sim.mask("B cells")
    det = list(sim.design.detector_names)
    for marker in ("B220", "CD19", "MHCII"):
        true = sim.true_signal[b, det.index(sim.design.panel[marker])]
        assert np.median(comp[marker][b]) == pytest.approx(np.median(true), rel=0.03)
    assert sim.sample.events.max() > 262144        # a 20-bit scale, not an 18-bit one


# -- accuracy smoke test -------------------------------------------------------------------------
@functools.cache
def _accuracy():
    """benchmarks/accuracy.py, imported from its file."""
    name = "immunomon_benchmark_accuracy"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_accuracy_benchmark_runs_every_template_against_aligned_truth():
    """Whatever the gating methods do: every reported population is scored against a
    truth mask over the same events, F1 lies in [0, 1] and no 1-D gate beats the best
    single cut on its own parent."""
    acc = _accuracy()
    cases = [c for c in acc.CASES if c.name in ("mostly_positive", "mouse_spleen", "ics")]
    assert {c.name for c in acc.CASES} >= {"post_transplant", *NAMES}
    df = acc.run(cases, seeds=1, events=6000)
    for case in cases:
        rows = df[df.scenario == case.name]
        assert set(rows.population) == set(case.truth)
        sim = case.make(int(6000 * case.events_factor), 1)
        for r in rows.itertuples():
            assert r.truth == int(sim.mask(case.truth[r.population]).sum())
    assert df.f1.between(0, 1).all() and (df.count_error >= 0).all()
    one_d = df.dropna(subset=["ceiling"])
    assert (one_d.f1 <= one_d.ceiling + 0.02).all()
    table = acc.summarise(df)
    assert set(table.target) <= {"pass", "FAIL", "FAIL (ceiling)"} and len(table) == len(df)
    assert "| scenario | population |" in acc.markdown(table)


def test_summary_marks_rows_whose_best_cut_misses_the_targets():
    import pandas as pd
    acc = _accuracy()
    rows = []
    # (population, F1 per seed, ceiling per seed) -> expected verdict
    cases = {"met": ([0.97, 0.96, 0.95], [0.99, 0.99, 0.99], "pass"),
             "method": ([0.93, 0.92, 0.91], [0.98, 0.97, 0.99], "FAIL"),
             "low ceiling": ([0.93, 0.92, 0.91], [0.94, 0.94, 0.93], "FAIL (ceiling)"),
             "one seed": ([0.96, 0.96, 0.85], [0.97, 0.97, 0.86], "FAIL (ceiling)"),
             "cluster gate": ([0.93, 0.92, 0.91], [np.nan] * 3, "FAIL")}
    for pop, (f1s, ceilings, _) in cases.items():
        rows += [{"scenario": "s", "seed": i, "population": pop, "truth": 100, "gated": 100,
                  "f1": f, "count_error": 0.0, "ceiling": c}
                 for i, (f, c) in enumerate(zip(f1s, ceilings))]
    table = acc.summarise(pd.DataFrame(rows)).set_index("population")
    assert {pop: table.loc[pop, "target"] for pop in cases} == \
        {pop: want for pop, (_, _, want) in cases.items()}


def test_best_cut_scores_are_exact_on_a_known_case():
    acc = _accuracy()
    x = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    inside = np.array([False, False, True, True, True, False])
    # best cut above 0.25: 3 of 4 gated are true, all 3 true gated -> F1 6/7
    assert acc.best_cut_f1(x, inside, 3, "above") == pytest.approx(6 / 7)
    # one true member outside the parent lowers the best F1: 2 x 3 / (4 + 4)
    assert acc.best_cut_f1(x, inside, 4, "above") == pytest.approx(6 / 8)
    assert acc.best_cut_f1(-x, inside, 3, "below") == pytest.approx(6 / 7)
    y = np.array([0.9, 0.8, 0.2, 0.1, 0.3, 0.2])
    # x above and y below: the event at (0.9, 0.2) cannot be left out without (0.8, 0.3)
    assert acc.best_quadrant_f1(x, y, inside, 3, ("above", "below"), bins=6) == pytest.approx(6 / 7)
    y[5] = 0.5
    assert acc.best_quadrant_f1(x, y, inside, 3, ("above", "below"), bins=6) == pytest.approx(1.0)
    assert acc.best_quadrant_f1(-x, -y, inside, 3, ("below", "above"), bins=6) == pytest.approx(1.0)


def test_a_cluster_gates_ceiling_is_the_best_mixture_boundary():
    """Two normal clusters in two dimensions, 2.5 SDs apart along one axis: the best
    boundary is a line across that axis, and its F1 follows from the normal tails; the
    ceiling finds it from the labels."""
    acc = _accuracy()
    rng = np.random.default_rng(4)
    big = rng.normal([0.0, 0.0], 1.0, (20_000, 2))
    small = rng.normal([2.5, 0.0], 1.0, (4_000, 2))
    X = np.vstack([big, small])
    inside = np.r_[np.zeros(len(big), bool), np.ones(len(small), bool)]
    from scipy import stats
    cuts = np.linspace(0.0, 3.0, 3001)
    tp = 4_000 * stats.norm.sf(cuts - 2.5)
    best = float(np.max(2 * tp / (tp + 20_000 * stats.norm.sf(cuts) + 4_000)))
    assert acc.best_mixture_f1(X, inside, 4_000) == pytest.approx(best, abs=0.01)
    assert acc.best_mixture_f1(X, inside, 0) == 1.0
