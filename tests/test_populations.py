"""Population statistics against numpy/scipy computed independently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import gmean

from immunomon import GatingError, Sample
from immunomon.compensation import compensate
from immunomon.fcs import Channel, Spillover
from immunomon.gating import BooleanGate, Dimension, GatingStrategy, RectangleGate
from immunomon.populations import (bucket_histograms, large_order_statistics, masked_sums,
                                   medians, order_statistics, population_counts,
                                   population_statistics, quantiles)


def awkward_values(rng, n, m=5):
    v = rng.lognormal(4, 2, size=(m, n)).astype(np.float32)
    v[0] -= 200                                   # many negatives
    v[1, : n // 3] = 0.0                          # ties at zero, of both signs
    v[1, n // 3: n // 2] = -0.0
    v[2] = np.round(v[2])                         # integer-like ties
    v[3, ::7] = np.float32(1e-40)                 # subnormals
    return v


@pytest.mark.parametrize("n, frac", [(1, 1.0), (2, 1.0), (3, 0.7), (1000, 0.5),
                                     (100_000, 0.3), (200_000, 0.3), (400_000, 0.7)])
def test_order_statistics_equal_sorting(n, frac):
    rng = np.random.default_rng(n)
    v = awkward_values(rng, n)
    rows = np.flatnonzero(rng.random(n) < frac) if frac < 1 else np.arange(n)
    if rows.size == 0:
        rows = np.array([0])
    ranks = np.unique(np.r_[0, rows.size - 1, rng.integers(0, rows.size, 6)])
    expected = np.sort(v[:, rows], axis=1)[:, ranks]
    assert np.array_equal(order_statistics(v, rows, ranks), expected)
    assert np.array_equal(order_statistics(v[:, rows], None, ranks), expected)


@pytest.mark.parametrize("frac", [0.51, 0.9, 0.999])
def test_large_populations_counted_through_their_complement(frac):
    rng = np.random.default_rng(int(frac * 1000))
    n = 100_000
    v = awkward_values(rng, n)
    rows = np.flatnonzero(rng.random(n) < frac)
    ranks = np.unique(np.r_[0, rows.size - 1, rng.integers(0, rows.size, 6)])
    got = order_statistics(v, rows, ranks, histograms=bucket_histograms(v))
    assert np.array_equal(got, np.sort(v[:, rows], axis=1)[:, ranks])


def test_several_large_populations_at_once():
    rng = np.random.default_rng(3)
    n = 100_000
    v = awkward_values(rng, n)
    masks = [rng.random(n) < f for f in (0.51, 0.8, 0.999)]
    masks.append(masks[1] & (rng.random(n) < 0.9))            # nested in another
    ranks = [np.unique(np.r_[0, m.sum() - 1, rng.integers(0, m.sum(), 6)]) for m in masks]
    got = large_order_statistics(v, masks, ranks, bucket_histograms(v))
    for g, m, r in zip(got, masks, ranks):
        assert np.array_equal(g, np.sort(v[:, m], axis=1)[:, r])


def test_nested_large_populations_counted_between_each_other():
    """Singlets > leukocytes > granulocytes: each complement is counted from the one
    before it; an equal mask and one holding none of the others are counted alone."""
    rng = np.random.default_rng(11)
    n = 60_000
    v = awkward_values(rng, n)
    u = rng.random(n)
    masks = [u < 0.6, u < 0.95, u < 0.8, u < 0.8, rng.random(n) < 0.7]
    ranks = [np.unique(np.r_[0, m.sum() - 1, m.sum() // 2, rng.integers(0, m.sum(), 6)])
             for m in masks]
    got = large_order_statistics(v, masks, ranks, bucket_histograms(v))
    for g, m, r in zip(got, masks, ranks):
        assert np.array_equal(g, np.sort(v[:, m], axis=1)[:, r])


@pytest.mark.parametrize("n", [1, 2, 5, 1000, 100_001])
def test_medians_and_percentiles_agree_with_numpy(n):
    rng = np.random.default_rng(n + 1)
    v = awkward_values(rng, n)
    rows = np.arange(n) if n < 10 else np.flatnonzero(rng.random(n) < 0.6)
    ref = v[:, rows].astype(np.float64)
    assert np.array_equal(medians(v, rows), np.median(ref, axis=1))
    q = quantiles(v, rows, [15.87 / 100, 84.13 / 100, 0.0, 1.0])
    assert np.array_equal(q, np.percentile(ref, [15.87, 84.13, 0, 100], axis=1).T)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 300),
              elements=st.floats(-2.0 ** 100, 2.0 ** 100, width=32, allow_nan=False,
                        allow_subnormal=True)),
       st.floats(0, 1))
def test_quantiles_property(x, q):
    v = x[None, :]
    assert np.array_equal(medians(v, None), np.median(x.astype(np.float64), keepdims=True))
    np.testing.assert_allclose(quantiles(v, None, [q])[0, 0],
                               np.quantile(x.astype(np.float64), q), rtol=1e-12, atol=0)


def test_masked_sums():  # noqa: D103
    rng = np.random.default_rng(5)
    v = awkward_values(rng, 300_000, m=4)
    masks = [rng.random(300_000) < 0.4, np.zeros(300_000, bool), np.ones(300_000, bool),
             rng.random(300_000) < 0.01]                  # summed over its own events
    total, logs, positive = masked_sums(v, masks, block=50_000)
    for k, m in enumerate(masks):
        x = v[:, m].astype(np.float64)
        np.testing.assert_allclose(total[k], x.sum(axis=1), rtol=1e-12)
        assert np.array_equal(positive[k], (x > 0).sum(axis=1))
        np.testing.assert_allclose(logs[k], np.where(x > 0, np.log(np.where(x > 0, x, 1)),
                                                     0).sum(axis=1), rtol=1e-6)


@pytest.fixture
def gated():
    rng = np.random.default_rng(9)
    n = 20_000
    true = np.c_[rng.uniform(0, 1000, n), rng.lognormal(6, 1, n), rng.normal(300, 200, n)]
    spill = np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.2], [0.05, 0.0, 1.0]])
    events = np.c_[rng.uniform(0, 1, n), true @ spill].astype(np.float32)
    chans = (Channel("FSC-A"), Channel("FL1-A", "CD3"), Channel("FL2-A", "CD4"),
             Channel("FL3-A", "CD8"))
    smp = Sample(events, chans, {}, spillover=Spillover(("FL1-A", "FL2-A", "FL3-A"), spill))
    s = GatingStrategy([
        RectangleGate("cells", [Dimension("FSC-A")], [(0.1, None)]),
        RectangleGate("T", [Dimension("CD3", "FCS")], [(200, None)], parent="cells"),
        RectangleGate("CD4+", [Dimension("CD4", "FCS")], [(500, None)], parent="T"),
        RectangleGate("none", [Dimension("CD4", "FCS")], [(1e9, None)], parent="T"),
        BooleanGate("CD4-", "not", ["CD4+"], parent="T"),
    ])
    return smp, s.apply(smp)


def test_population_counts_and_percentages(gated):
    smp, res = gated
    table = population_counts(res, ancestors=["cells"]).set_index("population")
    cells, t, cd4 = (res.mask(p).sum() for p in ("cells", "T", "CD4+"))
    assert table.loc["CD4+", "count"] == cd4
    assert table.loc["CD4+", "parent"] == "T"
    assert table.loc["CD4+", "percent_of_parent"] == pytest.approx(100 * cd4 / t)
    assert table.loc["CD4+", "percent_of_cells"] == pytest.approx(100 * cd4 / cells)
    assert table.loc["cells", "percent_of_parent"] == pytest.approx(100 * cells / smp.n_events)
    assert np.isnan(table.loc["cells", "percent_of_cells"])     # not below itself
    assert table.loc["CD4-", "count"] + table.loc["CD4+", "count"] == t
    with pytest.raises(GatingError, match="nope"):
        population_counts(res, ancestors=["nope"])


def test_a_share_of_a_union_named_as_a_reference_is_given_outside_its_subtree(gated):
    """A template that gates the lineages on all events and names their union
    ``Leukocytes`` left every population's % of leukocytes empty (and its dual-platform
    count), though each lineage is made of leukocytes: a population wholly within the
    reference counts as a share of it; one with events outside it, or none, does not."""
    smp, _ = gated
    s = GatingStrategy([
        RectangleGate("T", [Dimension("CD3", "FCS")], [(200, None)]),
        RectangleGate("CD4+", [Dimension("CD4", "FCS")], [(500, None)], parent="T"),
        RectangleGate("big", [Dimension("FSC-A")], [(0.5, None)]),
        RectangleGate("none", [Dimension("FSC-A")], [(2.0, None)]),
        BooleanGate("Leukocytes", "or", ["T", "big"]),
    ])
    res = s.apply(smp)
    table = population_counts(res, ancestors=["Leukocytes"]).set_index("population")
    leuk = res.mask("Leukocytes").sum()
    for pop in ("T", "CD4+", "big"):
        assert table.loc[pop, "percent_of_Leukocytes"] == pytest.approx(
            100 * res.mask(pop).sum() / leuk)
    assert np.isnan(table.loc["Leukocytes", "percent_of_Leukocytes"])
    assert np.isnan(table.loc["none", "percent_of_Leukocytes"])        # empty
    outside = GatingStrategy([RectangleGate("low", [Dimension("FSC-A")], [(None, 0.2)]),
                              *s]).apply(smp)
    assert np.isnan(population_counts(outside, ancestors=["Leukocytes"])
                    .set_index("population").loc["low", "percent_of_Leukocytes"])


def test_population_statistics_match_numpy(gated):
    smp, res = gated
    table = population_statistics(res, ancestors=["cells"])
    assert set(table["marker"]) == {"CD3", "CD4", "CD8"}
    assert len(table) == 5 * 3
    # the statistics are those of the float32 compensated events ...
    x = compensate(smp).events[res.mask("CD4+"), 3].astype(np.float64)
    # ... which agree with a float64 compensation to float32 precision
    exact = smp.events[:, 1:].astype(np.float64) @ np.linalg.inv(smp.spillover.matrix)
    np.testing.assert_allclose(x, exact[res.mask("CD4+"), 2], rtol=1e-5, atol=1e-3)
    row = table.set_index(["population", "marker"]).loc[("CD4+", "CD8")]
    # float32 products may round differently in the last bit from one BLAS to another
    assert row["median"] == pytest.approx(np.median(x), rel=1e-6)
    assert row["mean"] == pytest.approx(x.mean(), rel=1e-6)
    assert row["geometric_mean"] == pytest.approx(gmean(x[x > 0]), rel=1e-6)
    assert row["n_positive"] == (x > 0).sum() < x.size         # negatives were excluded
    p16, p84 = np.percentile(x, [15.87, 84.13])
    assert row["rcv"] == pytest.approx(100 * 0.5 * (p84 - p16) / np.median(x), rel=1e-5)
    assert row["percent_of_cells"] == pytest.approx(
        100 * res.count("CD4+") / res.count("cells"))
    empty = table[table["population"] == "none"]
    assert (empty["count"] == 0).all() and empty["median"].isna().all()
    assert empty["mean"].isna().all()


def test_population_statistics_the_same_through_complements(gated, monkeypatch):
    """Large files count their largest populations through their complements; the
    statistics are those of sorting each population's events."""
    import immunomon.populations as populations

    _, res = gated
    assert 2 * res.count("cells") > res.n_events
    sorted_each = population_statistics(res, ancestors=["cells"])
    monkeypatch.setattr(populations, "_COMPLEMENTS", 0)
    through_complements = population_statistics(res, ancestors=["cells"])
    pd.testing.assert_frame_equal(sorted_each, through_complements)


def test_population_statistics_uncompensated_and_unknown_marker(gated):
    smp, res = gated
    table = population_statistics(res, ["CD3"], compensation="uncompensated")
    x = smp.events[res.mask("T"), 1].astype(np.float64)
    assert table.set_index("population").loc["T", "median"] == np.median(x)
    with pytest.raises(GatingError, match="CD99"):
        population_statistics(res, ["CD99"])


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_event_samples(gated, n):
    smp, res = gated
    small = Sample(smp.events[:n].copy(), smp.channel_info, {}, spillover=smp.spillover)
    table = population_statistics(res.strategy.apply(small))
    assert len(table) == 5 * 3
    assert (table["count"] <= n).all()
    members = table[table["count"] == 1]
    assert members["median"].notna().all()
    assert (members["median"] == members["mean"]).all()
    assert (members["rcv"] == 0).all()
    assert table.loc[table["count"] == 0, "median"].isna().all()
