"""Acquisition QC against simulated clogs (truth: ``sim.anomaly``) and constructed data."""

import re
from pathlib import Path

import numpy as np
import pytest

from immunomon.fcs.sample import Channel, Sample
from immunomon.qc import (low_count_flags, margin_events, missing_markers, robust_z,
                          time_anomalies)
from immunomon.simulate import pbmc_sample

DATA = Path(__file__).parent / "data"
#: a template of one singlet gate on all events
SINGLETS_ONLY = """panel: scatter
version: "1"
markers: {}
compensation: none
transforms: {scatter: linear}
populations:
  - {name: Singlets, parent: root, dims: [FSC-A, FSC-H], method: singlet}
"""

def _sample(columns: dict, ranges=None, markers=None, keywords=None) -> Sample:
    names = list(columns)
    ranges = ranges or {}
    markers = markers or {}
    info = tuple(Channel(name=c, marker=markers.get(c), range=ranges.get(c, 1024.0))
                 for c in names)
    events = np.column_stack([np.asarray(columns[c], dtype=np.float32) for c in names])
    return Sample(events=events, channel_info=info, keywords=dict(keywords or {}))


# -- time anomalies -----------------------------------------------------------------
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_clog_events_are_flagged(seed):
    sim = pbmc_sample(20_000, seed=seed, clog=True)
    qc = time_anomalies(sim.sample)
    flagged = ~qc.good
    recall = np.count_nonzero(flagged & sim.anomaly) / np.count_nonzero(sim.anomaly)
    assert recall >= 0.9
    # and little else: at most two bins' worth of clean events
    wrong = np.count_nonzero(flagged & ~sim.anomaly)
    assert wrong <= 2 * sim.sample.n_events / len(qc.bins)
    assert qc.excluded == np.count_nonzero(flagged)
    assert any("acquisition anomaly" in f and "flow rate" in f for f in qc.flags)
    assert any(f"{qc.excluded} of 20000 events" in f for f in qc.flags)


@pytest.mark.parametrize("window", [(0.05, 0.12), (0.9, 1.0)])
def test_clog_at_other_times(window):
    sim = pbmc_sample(20_000, seed=3, clog=window)
    qc = time_anomalies(sim.sample)
    recall = np.count_nonzero(~qc.good & sim.anomaly) / np.count_nonzero(sim.anomaly)
    assert recall >= 0.9


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25, 26])
def test_clean_samples_flag_no_bins(seed):
    sim = pbmc_sample(20_000, seed=seed, batch_shift=0.2 * (seed % 3 - 1))
    qc = time_anomalies(sim.sample)
    assert qc.n_bad_bins == 0
    assert qc.good.all() and qc.excluded == 0
    assert qc.flags == []


def test_bins_table_counts_every_event_and_uses_seconds():
    sim = pbmc_sample(10_000, seed=5)
    qc = time_anomalies(sim.sample, bin_seconds=2.0)
    assert qc.bins["events"].sum() == 10_000
    assert qc.unit == "s"
    width = qc.bins["stop"] - qc.bins["start"]
    assert np.allclose(width, width.iloc[0]) and width.iloc[0] <= 2.0
    seconds = sim.sample.column("Time") * 0.01
    assert qc.bins["start"].iloc[0] == pytest.approx(seconds.min())
    assert qc.bins["stop"].iloc[-1] == pytest.approx(seconds.max())
    assert np.allclose(qc.bins["rate"], qc.bins["events"] / width)


def test_signal_drop_without_rate_change_is_flagged():
    # constant flow, but events 6000-6999 read at half intensity on every channel
    rng = np.random.default_rng(0)
    n = 10_000
    a = rng.lognormal(7, 0.3, n)
    b = rng.lognormal(6, 0.3, n)
    a[6000:7000] *= 0.5
    b[6000:7000] *= 0.5
    s = _sample({"A": a, "B": b, "Time": np.arange(n, dtype=float)},
                ranges={"A": 1e6, "B": 1e6})
    qc = time_anomalies(s, n_bins=20)
    assert not qc.bins["bad_rate"].any()
    assert qc.bins["bad_signal"].to_numpy().nonzero()[0].tolist() == [12, 13]
    assert np.array_equal(~qc.good, np.isin(np.arange(n) // 500, [12, 13]))
    assert any("signal drop" in f for f in qc.flags)
    assert qc.unit == "time units"


def test_a_jump_in_one_channel_is_flagged():
    rng = np.random.default_rng(1)
    n = 10_000
    cols = {f"C{i}": rng.lognormal(7, 0.3, n) for i in range(6)}
    cols["C2"][2000:2500] *= 2.0
    cols["Time"] = np.arange(n, dtype=float)
    qc = time_anomalies(_sample(cols, ranges={c: 1e6 for c in cols}), n_bins=20)
    assert np.flatnonzero(qc.bins["bad"]).tolist() == [4]
    assert any(re.search(r"signal jump in 1 of 6 detectors: C2 \+\d+ SD$", f)
               for f in qc.flags), qc.flags


def test_an_anomaly_names_the_channels_that_moved_most_first():
    # A pre-gated export's T-cell marker drops in one stretch, four earlier channels
    # dip a little: the message led with those four and hid the drop behind "...".
    rng = np.random.default_rng(2)
    n = 10_000
    cols = {f"C{i}": rng.lognormal(7, 0.3, n) for i in range(8)}
    for i in range(6):
        cols[f"C{i}"][6000:7000] *= 0.75
    cols["C7"][6000:7000] *= 0.2
    cols["Time"] = np.arange(n, dtype=float)
    qc = time_anomalies(_sample(cols, ranges={c: 1e6 for c in cols},
                                markers={"C7": "CD3", "C5": "-"}), n_bins=20)
    (flag,) = [f for f in qc.flags if "signal drop in most detectors" in f]
    # named by marker too, where the channel has one, with how far each moved
    assert re.search(r"most in CD3 \(C7\) -\d\d SD, C5 -\d+ SD, ", flag), flag
    assert flag.endswith(" and 3 more")


def test_a_coarse_clock_is_binned_by_whole_ticks():
    # A FACSCanto export whose Time counts 9 ticks over 10,000 events (the last cut
    # short), and a clock of 30 ticks that 20 bins would split into 1.5 ticks each:
    # a steady acquisition either way, not a burst in every other bin.
    rng = np.random.default_rng(3)
    canto = np.minimum(np.arange(10_000) // 1230, 8).astype(float)
    thirty = np.sort(rng.integers(0, 30, 10_000)).astype(float)
    for time, n_bins in ((canto, 8), (thirty, 29)):
        s = _sample({"A": rng.lognormal(7, 0.3, time.size), "Time": time},
                    ranges={"A": 1e6})
        qc = time_anomalies(s, n_bins=20)
        assert len(qc.bins) == n_bins
        assert qc.excluded == 0 and qc.flags == []
    one_tick = _sample({"A": rng.lognormal(7, 0.3, 1000), "Time": np.r_[[0.0] * 500, [1.0] * 500]},
                       ranges={"A": 1e6})
    assert "too few ticks" in time_anomalies(one_tick).flags[0]


def test_a_clock_stopped_at_the_top_of_its_range_is_kept_outside_the_bins():
    # a 12-bit clock that reaches 4,095 and stays there for the last 40% of the events
    rng = np.random.default_rng(4)
    n = 10_000
    time = np.minimum(np.arange(n) * 4095 / 6000, 4095).round()
    s = _sample({"A": rng.lognormal(7, 0.3, n), "Time": time}, ranges={"A": 1e6, "Time": 4096})
    qc = time_anomalies(s)
    assert qc.excluded == 0 and qc.good.all()
    assert int(qc.bins["events"].sum()) == np.count_nonzero(time < 4095)
    assert len(qc.flags) == 1
    assert "stopped at the top of its range (4,095)" in qc.flags[0]
    assert "4,000 of 10,000 events" in qc.flags[0]


def test_a_clock_that_never_ran_is_reported():
    s = _sample({"A": np.arange(1000.0), "Time": np.zeros(1000)})
    qc = time_anomalies(s)
    assert qc.good.all() and "holds one value for every event" in qc.flags[0]


def test_no_time_channel_is_reported_not_fatal():
    s = _sample({"A": np.arange(100.0)})
    qc = time_anomalies(s)
    assert qc.good.all() and qc.excluded == 0
    assert len(qc.flags) == 1 and "no time channel" in qc.flags[0]


def test_robust_z_uses_floor_for_constant_series():
    z = robust_z(np.array([10.0, 10, 10, 10, 20]), floor=2.0)
    assert z.tolist() == [0, 0, 0, 0, 5]
    assert np.all(robust_z(np.ones(5)) == 0)


# -- margins ------------------------------------------------------------------------
def test_margin_events_on_constructed_data():
    n = 1000
    rng = np.random.default_rng(2)
    fsc = rng.uniform(100, 900, n)
    fsc[:50] = 1023.0           # 5% at the top of a 1024 range
    ssc = rng.uniform(100, 900, n)
    ssc[:10] = 1023.0           # 1%: under the limit
    fl = rng.normal(300, 50, n)
    fl[100:130] = -111.0        # 3% clipped at an electronic floor
    s = _sample({"FSC-A": fsc, "SSC-A": ssc, "FL1-A": fl, "Time": np.arange(n, dtype=float)},
                markers={"FL1-A": "CD3"})
    m = margin_events(s)
    t = m.table.set_index("channel")
    assert list(t.index) == ["FSC-A", "SSC-A", "FL1-A"]
    assert t.loc["FSC-A", "top"] == 50 and t.loc["FSC-A", "top_fraction"] == 0.05
    assert t.loc["SSC-A", "top"] == 10
    assert t.loc["FL1-A", "bottom"] == 30 and t.loc["FL1-A", "top"] == 0
    assert t["flagged"].tolist() == [True, False, True]
    assert t.loc["FL1-A", "marker"] == "CD3"
    assert len(m.flags) == 2
    assert "FSC-A: 50 events (5.0%) at the top" in m.flags[0]
    assert "FL1-A (CD3): 30 events (3.0%)" in m.flags[1] and "-111" in m.flags[1]
    expected = np.zeros(n, dtype=bool)
    expected[:50] = True
    expected[100:130] = True
    expected[np.argmin(ssc)] = True
    expected[np.argmin(fsc[50:]) + 50] = True
    assert np.array_equal(m.margin, expected)
    assert m.n_margin == expected.sum()


def test_the_top_of_a_log_amplified_or_gained_channel_is_its_largest_stored_value():
    """The top margin is the largest value a channel can store, $PnR - 1, on its scale:
    10^(4 x 1023/1024) = 9,910 on a 4-decade, 1,024-channel log channel, 1,023/5 on a
    channel of gain 5. The range less 1 in scale units had put every log event above
    channel 768 on the margin (five real files of FlowCal's and a Partec PAS's: 11-63%
    'at the top') and missed a Gallios's 859 saturated events (gain 5) and a MoFlo
    XDP's 1,240 (5 decades)."""
    from immunomon.fcs.sample import Channel
    from immunomon import read_fcs

    log = Channel("FL1-H", range=1024, amplification=(4.0, 1.0))
    gained = Channel("SS INT LIN", range=1024, gain=5.0)
    assert log.saturation == pytest.approx(10 ** (4 * 1023 / 1024))
    assert gained.saturation == pytest.approx(1023 / 5)
    rng = np.random.default_rng(3)
    channel = np.r_[rng.integers(770, 1023, 900), np.full(40, 1023)]      # 40 saturated
    events = np.column_stack([10 ** (4 * channel / 1024), np.r_[rng.uniform(10, 200, 900),
                                                                np.full(40, 1023 / 5)]])
    sample = Sample(events=events.astype(np.float32), channel_info=(log, gained), keywords={})
    table = margin_events(sample).table.set_index("channel")
    assert table["top"].tolist() == [40, 40]
    # a real FACSCalibur file: its FL1-H never saturates (0 events at channel 1,023)
    real = margin_events(read_fcs(DATA / "batch" / "Sample_Well_A02.fcs"))
    assert not any("top of the scale" in f for f in real.flags), real.flags


def test_margin_limit_and_channel_choice():
    x = np.zeros(100)
    x[:3] = 1023
    a = np.linspace(5, 500, 100)
    a[:3] = 1023
    s = _sample({"A": a, "B": x})
    assert margin_events(s, channels=["A"], fraction_limit=0.02).flags[0].startswith("A: 3")
    assert margin_events(s, channels=["A"], fraction_limit=0.05).flags == []
    # B: 97 events tie at its lowest value (0)
    assert "piled at the bottom value 0" in margin_events(s, channels=["B"]).flags[-1]


def test_a_fluorescence_floor_is_told_apart_from_clipped_scatter():
    """Events at a fluorescence channel's lowest value are dimmer than its floor (a
    log amplifier's channel 0); at forward scatter's they were not measured."""
    low = np.r_[np.zeros(40), np.linspace(5, 500, 60)]
    m = margin_events(_sample({"FSC-A": low, "FL1-H": low}))
    assert m.floors == [False, True] and m.shares == [0.4, 0.4]
    assert m.flags[0] == "FSC-A: 40 events (40.0%) piled at the bottom value 0"
    assert m.flags[1].endswith("the channel's floor, where every dimmer event lies")


def test_margin_events_over_many_blocks_match_the_whole_matrix():
    """Events are checked a block at a time; counts and the per-event mask equal
    those computed on the whole matrix at once, whichever block holds a channel's
    lowest value, with NaN events and an all-NaN channel."""
    rng = np.random.default_rng(4)
    n = 200_003                                   # four blocks, the last one short
    a = rng.uniform(0, 1023, n).round()           # ties at 0 and 1023 in every block
    b = rng.normal(500, 100, n)
    b[150_000:150_100] = -50.0                    # the lowest value, in a late block
    b[rng.choice(n, 500, replace=False)] = np.nan
    s = _sample({"A": a, "B": b, "C": np.full(n, np.nan), "Time": np.arange(n, dtype=float)})
    m = margin_events(s)
    x = s.events[:, :3]
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        low = np.nanmin(x, axis=0)
    top, bottom = x >= s.ranges[:3] - 1.0, x <= low
    t = m.table.set_index("channel")
    assert t["top"].tolist() == top.sum(axis=0).tolist()
    assert t["bottom"].tolist() == bottom.sum(axis=0).tolist()
    assert t.loc["B", "bottom"] == 100 and t.loc["C", "top"] + t.loc["C", "bottom"] == 0
    assert np.array_equal(m.margin, (top | bottom).any(axis=1))


def test_bin_signals_are_means_of_asinh():
    """Each bin's signal is the mean of asinh(value / (range / 1000)) over its events,
    as numpy computes it, from values near zero to the top of a float scale."""
    rng = np.random.default_rng(5)
    n = 20_000
    a = rng.normal(0, 300, n)
    a[:20] = [0, 1e-3, -1e-3, 1e6, -1e6, 3e38, -3e38] + [5.0] * 13
    s = _sample({"A": a, "Time": np.arange(n, dtype=float)}, ranges={"A": 262_144})
    qc = time_anomalies(s, n_bins=10)
    values = np.arcsinh(s.events[:, 0].astype(np.float64) / 262.144)
    expected = values.reshape(10, -1).mean(axis=1)
    assert np.allclose(qc.bins["signal:A"], expected, rtol=0, atol=1e-5)


def test_hypot_of_float32_is_numpys():
    """The time check's hypot(a, 1) in float32 is numpy's, value for value, from
    zero through subnormals to infinity."""
    from immunomon.qc import _hypot1
    rng = np.random.default_rng(7)
    bits = np.concatenate([rng.integers(0, 0x7F800001, 2_000_000, dtype=np.uint32),
                           np.arange(0, 4096, dtype=np.uint32),
                           np.arange(0x7F800000 - 4096, 0x7F800001, dtype=np.uint32)])
    a = bits.view(np.float32)
    assert np.array_equal(_hypot1(a).view(np.uint32), np.hypot(a, np.float32(1)).view(np.uint32))
    wide = a[:1000].astype(np.float64)
    assert np.array_equal(_hypot1(wide), np.hypot(wide, 1.0))


def test_asinh_by_blocks_of_events_equals_one_channel_at_a_time():
    """Channels computed a block of events at a time, for all events or a reordered
    subset of them, are those of one channel at a time, bit for bit."""
    from immunomon.qc import _asinh, _asinh_channels
    rng = np.random.default_rng(3)
    events = rng.normal(0, 2000, (20_001, 5)).astype(np.float32)
    events[::97, 2] = np.nan
    events[5, 3] = np.inf
    scales = np.array([262.144, 1.0, 4.5, 1000.0])
    cols = [0, 2, 3, 4]
    for rows in (None, rng.permutation(20_001)[:15_000]):
        got = _asinh_channels(events, rows, cols, scales)
        picked = events if rows is None else events[rows]
        for j, (col, scale) in enumerate(zip(cols, scales)):
            want = _asinh(np.ascontiguousarray(picked[:, col]), scale)
            assert np.array_equal(got[j], want, equal_nan=True)


# -- counts and markers ---------------------------------------------------------------
def test_low_count_flags():
    flags = low_count_flags({"T cells": 5000, "pDC": 45, "mDC": 200}, min_events=200)
    assert len(flags) == 1
    assert "'pDC': 45 events, fewer than 200" in flags[0]
    assert low_count_flags({"pDC": 45}, min_events=40) == []


def test_missing_markers():
    s = _sample({"FL1-A": [1.0], "FL2-A": [1.0], "FL3-A": [1.0]},
                markers={"FL1-A": "CD3", "FL2-A": "CD4", "FL3-A": "CD4"})
    assert missing_markers(["CD3", "cd3", "FL2-A", "CD19", "CD4"], s) == ["CD19", "CD4"]


def test_events_out_of_time_order_give_the_same_bins():
    sim = pbmc_sample(8000, seed=4, clog=True)
    qc = time_anomalies(sim.sample)
    order = np.random.default_rng(0).permutation(8000)
    shuffled = Sample(events=sim.sample.events[order], channel_info=sim.sample.channel_info,
                      keywords=sim.sample.keywords)
    qs = time_anomalies(shuffled)
    # the same bins, up to the order in which each bin's values were summed
    assert qs.bins.columns.equals(qc.bins.columns)
    assert np.allclose(qs.bins.to_numpy(float), qc.bins.to_numpy(float), rtol=1e-9,
                       equal_nan=True)
    assert np.array_equal(qs.good, qc.good[order])
    # a bin's signal, computed here with numpy: the mean of asinh(value / (range / 1000))
    t = sim.sample["Time"] * 0.01
    edges = np.linspace(t.min(), t.max(), len(qc.bins) + 1)
    inside = (t >= edges[3]) & (t < edges[4])
    scale = sim.sample.channel_info[sim.sample.channel_index("SSC-A")].range / 1000
    expected = np.mean(np.arcsinh(sim.sample["SSC-A"][inside].astype(np.float64) / scale))
    assert qc.bins["signal:SSC-A"].iloc[3] == pytest.approx(expected, rel=1e-6)  # float32


# -- levels ---------------------------------------------------------------------------
def test_status_is_the_worst_level():
    from immunomon.qc import QCFlag, status
    assert status([]) == "ok"
    assert status([QCFlag("info", "a")]) == "ok"
    assert status([QCFlag("info", "a"), QCFlag("warning", "b")]) == "warning"
    assert status([QCFlag("failure", "c"), QCFlag("warning", "b")]) == "failure"
    assert status(["a bare message"]) == "warning"
    with pytest.raises(ValueError):
        QCFlag("bad", "x")


def test_count_levels():
    from immunomon.qc import count_flags
    flags = {f.population: f.level for f in count_flags({"big": 5000, "mid": 150, "tiny": 7})}
    assert flags == {"mid": "info", "tiny": "warning"}
    # one event is an event
    (one,) = count_flags({"CD4 Effector": 1})
    assert "'CD4 Effector': 1 event, fewer than 20" in one.message


def test_a_gate_that_keeps_its_one_peak_whole_as_the_template_says_is_information():
    """A second debris gate (`expect: mostly-positive`) on a clean file finds one peak
    and nothing beyond its end: keeping every event is what the template said, as a
    viability gate with no dead cells; it made 3 of 4 whole-blood samples warnings. A
    peak that the rule moved past (debris outnumbering the cells) still warns."""
    from immunomon.gating.datadriven import ThresholdGate
    from immunomon.gating.dimensions import Dimension
    from immunomon.gating.strategy import GatingStrategy
    from immunomon.qc import gate_flags, status

    rng = np.random.default_rng(5)
    x = rng.normal(4000, 300, 6000)
    x = x[x > 3400][:5000].astype(np.float32)     # the first debris gate's cut below them
    sample = Sample(events=x[:, None], channel_info=(Channel("CD45", None, 8192.0),),
                    keywords={})
    said = GatingStrategy([ThresholdGate("Cells", [Dimension("CD45")], args={
        "expect": "mostly-positive"})]).apply(sample)
    flags = gate_flags(said)
    assert said.count("Cells") == 5000 and status(flags) == "ok"
    assert any("every event kept: the template says" in f.message for f in flags)
    guessed = GatingStrategy([ThresholdGate("Cells", [Dimension("CD45")])]).apply(sample)
    assert guessed.count("Cells") < 5000 or status(gate_flags(guessed)) == "warning"


def test_bounds_that_put_the_cut_inside_a_major_population_say_so():
    """Bounds are values of the file they were read off: a whole-blood file's CD45
    bound, read off another file, cut through its neutrophils (23% kept), and the gate's
    note said only 'cut at 4392, within them'. A cut the bounds moved onto a major peak's
    flank, above half its height, says it lies inside a population (a note: templates cut
    some populations knowingly); the same bounds where they hold the cut in a valley do
    not."""
    from immunomon.gating.datadriven import ThresholdGate
    from immunomon.gating.dimensions import Dimension
    from immunomon.gating.strategy import GatingStrategy
    from immunomon.qc import gate_flags, status

    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(1000, 250, 1500),        # debris
                        rng.normal(4500, 300, 8000)]).astype(np.float32)   # neutrophils
    sample = Sample(events=x[:, None], channel_info=(Channel("CD45", None, 8192.0),),
                    keywords={})

    def flags_with(bounds):
        result = GatingStrategy([ThresholdGate("Cells", [Dimension("CD45")], args={
            "bounds": bounds})]).apply(sample)
        return result, gate_flags(result)

    inside, _ = flags_with((4400.0, None))
    assert inside.count("Cells") < 0.7 * 8000
    assert any("the bounds put the cut (4410) on the flank of the peak at 4484" in n
               and "inside a population" in n for n in inside.gates["Cells"].notes)
    fitting, flags = flags_with((2000.0, 3500.0))
    assert status(flags) == "ok" and fitting.count("Cells") > 0.99 * 8000
    assert not any("inside a population" in n for n in fitting.gates["Cells"].notes)


def test_a_gate_that_empties_a_large_parent_is_a_failure():
    from immunomon.gating.datadriven import ThresholdGate
    from immunomon.gating.dimensions import Dimension
    from immunomon.gating.strategy import GatingStrategy
    from immunomon.qc import gate_flags, status
    from immunomon.fcs.sample import Channel, Sample

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(100, 10, 900), rng.normal(400, 10, 100)]).astype(np.float32)
    sample = Sample(events=x[:, None], channel_info=(Channel("X", None, 1024.0),),
                    keywords={})
    ok = GatingStrategy([ThresholdGate("pos", [Dimension("X")])]).apply(sample)
    assert ok.count("pos") == 100 and status(gate_flags(ok)) == "ok"
    # bounds that put the cut beyond every event: the population is empty
    bad = GatingStrategy([ThresholdGate("pos", [Dimension("X")],
                                        args={"bounds": (1000.0, None)})]).apply(sample)
    flags = gate_flags(bad)
    assert bad.count("pos") == 0 and status(flags) == "failure"
    assert any(f.population == "pos" and "empty" in f.message for f in flags)


def test_a_rare_population_in_a_large_parent_is_information_not_a_warning():
    from immunomon.qc import count_flags
    flags = {f.population: f for f in count_flags(
        {"DP T": 1, "pDC": 8, "Treg": 150},
        parents={"DP T": 11_654, "pDC": 200, "Treg": 3_744})}
    assert flags["DP T"].level == "info" and "rare or absent" in flags["DP T"].message
    assert flags["pDC"].level == "warning"          # its parent is too small to count it
    assert flags["Treg"].level == "info"            # countable, percentages unstable


def test_a_quadrant_corner_too_small_to_report_is_information_as_an_empty_one():
    """An empty quadrant is information (double positives may be absent); three events
    there made the sample's status a warning. A population other than a quadrant's
    corner stays a warning; a template's qc.min_reportable moves the line."""
    from immunomon.qc import count_flags
    flags = {f.population: f for f in count_flags(
        {"DP T": 3, "pDC": 8}, parents={"DP T": 500, "pDC": 200}, quadrants={"DP T"})}
    assert flags["DP T"].level == "info" and "too few to report" in flags["DP T"].message
    assert flags["pDC"].level == "warning"
    assert count_flags({"pDC": 8}, parents={"pDC": 200}, min_reportable=5)[0].level == "info"


def test_a_marker_near_half_positive_does_not_make_anomalies():
    # Half the events bright, half dim, in random order at a steady rate: the median of
    # a bin jumps between the two peaks as the mix wobbles; the bins' signal must not.
    rng = np.random.default_rng(7)
    n = 20_000
    bright = rng.random(n) < 0.5
    marker = np.where(bright, rng.lognormal(9.5, 0.3, n), rng.lognormal(5.5, 0.5, n))
    other = rng.lognormal(7, 0.3, n)
    s = _sample({"CD4": marker, "SSC-A": other, "Time": np.sort(rng.uniform(0, 100, n))},
                ranges={"CD4": 262144.0, "SSC-A": 262144.0}, keywords={"$TIMESTEP": "1"})
    qc = time_anomalies(s)
    assert qc.excluded == 0 and qc.flags == []


def test_a_moderate_change_of_flow_rate_is_not_an_anomaly():
    # the rate steps down to 65% for the last fifth of the acquisition (a tube running
    # low), signals unchanged: every event is still good; a clog (20%) is not
    rng = np.random.default_rng(8)
    first, last = 16_000, 2_600                  # 80 s at 200/s, then 20 s at 130/s
    time = np.sort(np.r_[rng.uniform(0, 80, first), rng.uniform(80, 100, last)])
    n = time.size
    s = _sample({"A": rng.lognormal(7, 0.3, n), "B": rng.lognormal(6, 0.3, n), "Time": time},
                ranges={"A": 1e6, "B": 1e6}, keywords={"$TIMESTEP": "1"})
    qc = time_anomalies(s)
    assert qc.bins["rate"].iloc[-3:].mean() < 0.7 * qc.bins["rate"].iloc[:3].mean()
    assert qc.excluded == 0


def test_a_rate_that_settles_over_many_bins_is_not_an_anomaly():
    """A real LSR II file (CytoExploreR's Activation_27) ran its first twenty seconds at
    twice its usual rate, falling bin by bin, with steady signals: pressure settling, not
    a clog; 31% of its events had been excluded. A burst that starts and ends at once,
    as fast, is an anomaly."""
    rng = np.random.default_rng(4)
    seconds = np.arange(100)
    settle = 1 + 1.3 * np.clip(1 - seconds / 25, 0, None)     # 2.3 times, falling to 1
    burst = np.where((seconds >= 50) & (seconds < 53), 2.3, 1.0)
    for rate, anomaly in ((settle, False), (burst, True)):
        counts = rng.poisson(400 * rate)
        time = np.concatenate([rng.uniform(t, t + 1, c) for t, c in zip(seconds, counts)])
        n = time.size
        s = _sample({"A": rng.lognormal(7, 0.3, n), "B": rng.lognormal(6, 0.3, n),
                     "Time": np.sort(time)}, ranges={"A": 1e6, "B": 1e6},
                    keywords={"$TIMESTEP": "1"})
        qc = time_anomalies(s)
        if anomaly:
            assert qc.excluded >= counts[50:53].sum() and qc.excluded < counts[49:54].sum()
            assert any("flow rate 2" in f for f in qc.flags), qc.flags
        else:
            assert qc.excluded == 0 and qc.flags == [], qc.flags


def test_the_usual_rate_is_the_one_most_events_came_at():
    """A real LSR II export (MetaCyto's, 1,000 events): 948 came in its first four of ten
    bins, then a trickle. Over bins the trickle's rate had been the usual one and the
    948 events the anomaly; now the 52 events of the trickle are."""
    from immunomon import read_fcs

    qc = time_anomalies(read_fcs(DATA / "fcs" / "quirks" / "metacyto_lsrii_trickle.fcs"))
    assert qc.excluded == 52, qc.flags
    assert qc.bins["events"].iloc[:4].sum() == 948 and qc.good.sum() == 948
    assert re.search(r"\(6 time bins, 52 events\): flow rate 0\.\d+% of the usual",
                     qc.flags[0]), qc.flags


def test_seconds_follow_the_files_own_clock():
    from immunomon.fcs.sample import time_step
    # BD FACSDiva: Time $PnG 0.01; 718,400 units x 0.01 s would be 2 hours of a 73 s run
    assert time_step(0.01, 0.01, 718_400, "00:29:01", "00:30:14") == 0.0001
    assert time_step(0.01, 1.0, 7_184, "00:29:01", "00:30:14") == 0.01
    assert time_step(0.01, 0.01, 718_400, None, "00:30:14") == 0.01   # no clock
    assert time_step(0.01, 0.01, 7_184, "00:29:01", "00:30:14") == 0.01  # agrees
    assert time_step(0.01, 0.01, 718_400, "23:59:30", "00:00:43") == 0.0001
    # the real FACSDiva file: its anomalies are placed within its 73 s
    from pathlib import Path
    from immunomon import read_fcs
    qc = time_anomalies(read_fcs(Path(__file__).parent / "data" / "real" / "68983.fcs"))
    assert qc.unit == "s" and qc.bins["stop"].max() == pytest.approx(71.84, abs=0.01)


def test_non_finite_values_do_not_move_a_bins_signal():
    rng = np.random.default_rng(9)
    n = 10_000
    a = rng.lognormal(7, 0.3, n)
    b = rng.lognormal(6, 0.3, n)
    a[rng.choice(n, 100, replace=False)] = np.inf
    b[rng.choice(n, 100, replace=False)] = np.nan
    s = _sample({"A": a, "B": b, "Time": np.arange(n, dtype=float)}, ranges={"A": 1e6, "B": 1e6})
    qc = time_anomalies(s, n_bins=20)
    assert qc.excluded == 0 and np.isfinite(qc.bins[["signal:A", "signal:B"]].to_numpy()).all()


def test_a_transform_whose_top_is_far_above_the_files_range_is_a_warning():
    """A template written for a 262,144 scale on a file of a few decades: the Gating-ML
    compliance file's FACSCalibur channels are log-amplified over 4 decades (0-10,000);
    linear channels of range 4,096 hold exported display values (tested on real ones in
    test_real_gating)."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.gating import Dimension
    from immunomon.qc import scale_flags
    from immunomon.transforms import Logicle

    calibur = read_fcs(Path(__file__).resolve().parent / "data" / "gatingml2-compliance"
                       / "data1.fcs")
    wide = Logicle(T=262144, W=0.5, M=4.5, A=0)
    assert calibur.channel_info[calibur.channel_index("FL1-H")].top == 10_000
    flags = scale_flags([Dimension("FL1-H", "uncompensated", wide),
                         Dimension("FL2-H", "uncompensated", wide),
                         Dimension("FSC-H", "uncompensated", None)], calibur)
    assert len(flags) == 1 and flags[0].level == "warning"
    assert flags[0].message.startswith("CD4 FITC, CD8 B PE: the values stop at 10,000")
    assert "logicle T: 10000" in flags[0].message
    fitting = Logicle(T=10_000, W=0.5, M=4, A=0)
    assert scale_flags([Dimension("FL1-H", "uncompensated", fitting)], calibur) == []
    from immunomon.gating import FRatio, RatioDimension
    ratio = RatioDimension(FRatio("FL1-H", "FL2-H"), "uncompensated", wide)
    assert scale_flags([ratio], calibur) == []                 # no channel range to compare
    # a 262,144 file with a dim marker: its range decides, not where the events lie
    sim = pbmc_sample(5_000, seed=1).sample
    assert scale_flags([Dimension(c, "FCS", wide) for c in sim.channels
                        if not c.startswith(("FSC", "SSC", "Time"))], sim) == []


def test_a_transform_top_below_the_range_the_cells_use_is_a_warning():
    """A template's logicle top of 262,144 on real files of wider range: the Attune NxT
    file's GFP reaches past it (range 1,048,576) and is named with T: auto as the
    remedy; the BD Accuri C6 file declares 16,777,216 but its cells stop near 25,000,
    a range they do not use, and is not flagged."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.gating import Dimension
    from immunomon.qc import scale_flags
    from immunomon.transforms import Logicle

    folder = Path(__file__).resolve().parent / "data" / "fcs"
    wide = Logicle(T=262144, W=0.5, M=4.5, A=0)
    for name, flagged in (("attune_G11_subsample.fcs", ["GFP-A"]), ("accuri_B01.fcs", [])):
        sample = read_fcs(folder / name)
        dims = [Dimension(c, "uncompensated", wide) for c in sample.channels
                if c.endswith("-A") and not c.startswith(("FSC", "SSC"))]
        flags = scale_flags(dims, sample)
        assert [f.message.split(":")[0] for f in flags] == flagged, name
        assert all("T: auto" in f.message and f.level == "warning" for f in flags)


def test_the_time_channel_is_left_out_of_the_margin_check_whatever_its_case():
    """A Partec CyFlow Cube names its time channel "TIME": the time check found it (any
    case), the margin check did not and reported 32 events "piled at the bottom" of it."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.qc import margin_events

    sample = read_fcs(Path(__file__).resolve().parent / "data" / "fcs" / "cyflow_cube_8.fcs")
    assert "TIME" in sample.channels
    margins = margin_events(sample)
    assert "TIME" not in set(margins.table["channel"])
    assert not any(f.startswith("TIME") for f in margins.flags)


def test_a_clock_split_in_two_words_is_read_whole():
    """Beckman Coulter's CyAn and MoFlo store the clock as "Time LSW", which wraps every
    65,536 units (3.9 s on a CyAn), and "Time MSW". Read alone, the low word stacked the
    whole acquisition into one wrap: a clog went unseen and the margin check called the
    high word's zeros "piled at the bottom". Whole, the clock finds the clog as it does
    in the file with one Time channel, and neither word is checked as a signal."""
    from dataclasses import replace

    from immunomon.fcs.sample import Channel
    from immunomon.qc import acquisition_clock

    sim = pbmc_sample(20_000, seed=11, clog=True)
    s = sim.sample
    t_idx = s.channel_index("Time")
    ticks = np.round(s.events[:, t_idx].astype(np.float64) * 4000)   # 30 wraps
    events = np.column_stack([s.events, np.zeros(s.n_events, np.float32)])
    events[:, t_idx] = ticks % 65536
    events[:, -1] = ticks // 65536
    info = list(s.channel_info)
    info[t_idx] = Channel(name="TIME", marker="Time LSW", range=65536.0, bits=16)
    info.append(Channel(name="Time MSW", marker="Time MSW", range=65536.0, bits=16))
    cyan = replace(s, events=events, channel_info=tuple(info), keywords={})
    column, clock, words = acquisition_clock(cyan)
    assert column == t_idx and words == (t_idx, len(info) - 1)
    np.testing.assert_array_equal(clock, ticks)
    split = time_anomalies(cyan)
    whole = time_anomalies(replace(s, keywords={}))
    np.testing.assert_array_equal(split.good, whole.good)
    assert np.count_nonzero(~split.good & sim.anomaly) >= 0.9 * np.count_nonzero(sim.anomaly)
    assert "Time MSW" not in split.channels and "TIME" not in split.channels
    assert not any("Time MSW" in f for f in margin_events(cyan).flags)


def test_a_macsquant_clock_is_found_by_its_name():
    """A MACSQuant names its clock "HDR-T" (no "Time" channel or marker): the time check
    was skipped on every such file; it now bins by that clock."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.qc import acquisition_clock

    sample = read_fcs(Path(__file__).resolve().parent / "data" / "batch"
                      / "FCS3.0_Custom_Compatible.fcs")
    column, clock, words = acquisition_clock(sample)
    assert sample.channels[column] == "HDR-T" and words == (column,)
    check = time_anomalies(sample)
    assert len(check.bins) >= 3 and not any("no time channel" in f for f in check.flags)
    assert "HDR-T" not in check.channels


def test_each_margin_flag_has_the_level_of_its_own_share():
    """One channel with 10% of its events at the top made every margin flag of the sample a
    warning, one at 3% too; docs/templates.md says under 5% is information."""
    from dataclasses import replace

    from immunomon.gating.run import gate_sample

    sim = pbmc_sample(20_000, seed=5)
    events = sim.sample.events.copy()
    for name, share in (("FITC-A", 0.10), ("PE-A", 0.03)):
        j = sim.sample.channel_index(name)
        events[: int(share * len(events)), j] = sim.sample.channel_info[j].range
    gated = gate_sample(replace(sim.sample, events=events), "post-transplant",
                        exclude_anomalies=False)
    levels = {f.message.split(" ")[0]: f.level for f in gated.qc_flags
              if "at the top of the scale" in f.message}
    assert levels == {"FITC-A": "warning", "PE-A": "info"}


def test_an_identity_spillover_matrix_is_named():
    """A2004's file carries a $SPILLOVER that is the identity over 8 detectors (the
    expert's compensation lives in the FlowJo workspace): compensating with it changes
    nothing, and a template saying `compensation: file` gets a warning saying so; a
    measured matrix (the FACSCanto file's) gets none."""
    from pathlib import Path

    from immunomon import read_fcs
    from immunomon.qc import identity_spillover_flag

    real = Path(__file__).resolve().parent / "data" / "real"
    flag = identity_spillover_flag(read_fcs(real / "a2004_A2.fcs"))
    assert flag.level == "warning"
    assert flag.message.startswith("the file's $SPILLOVER is the identity over its 8 detectors")
    assert identity_spillover_flag(read_fcs(real / "canto_124500.fcs")) is None


# -- a declared range the events overrun -----------------------------------------------
def _overrun_file(n=20_000, seed=5) -> Sample:
    """A data set written back as FCS with $PnR 1,024 on every channel over raw values up
    to 262,143 (as a published bone-marrow data set is): PI stays under the range."""
    rng = np.random.default_rng(seed)
    return _sample({"FSC-A": rng.uniform(40_000, 262_143, n),
                    "CD34": np.exp(rng.normal(7.5, 1.2, n)).clip(0, 262_143),
                    "PI": rng.normal(130, 60, n).clip(-50, 1000),
                    "Time": np.linspace(0, 36_000, n)},
                   markers={"CD34": "CD34", "PI": "PI"})


def test_a_declared_range_the_events_overrun_is_read_as_the_events_show():
    from immunomon.fcs.sample import data_tops, top_of_data
    from immunomon.gating import Dimension
    from immunomon.qc import scale_flags
    from immunomon.transforms import Logicle

    sample = _overrun_file()
    tops = dict(zip(sample.channels, data_tops(sample)))
    # one writer, one wrong range: PI, under 1,024 itself, takes its fellows' top;
    # the clock keeps its own
    assert tops == {"FSC-A": 262_144, "CD34": 262_144, "PI": 262_144, "Time": 65_536}
    assert margin_events(sample).flags == []                 # no pile at a false top
    flags = scale_flags([Dimension(c, "uncompensated", Logicle(262_144, 0.5, 4.5, 0))
                         for c in ("CD34", "PI")], sample)
    assert [f.level for f in flags] == ["info"]              # not "display values"
    assert flags[0].message.startswith("CD34, PI: the file declares a range of 1,024")
    # a compensated export's bright events a little past the top, or a few far past it,
    # leave the declared range standing; integers cannot overrun theirs
    assert top_of_data(262_144, "F", 300, 10_000, 300_000) == 262_144
    assert top_of_data(262_144, "F", 50, 10_000, 2e6) == 262_144
    assert top_of_data(1024, "I", 5_000, 10_000, 262_143) == 1024
    assert top_of_data(1024, "F", 5_000, 10_000, 262_143) == 262_144


def test_t_auto_takes_the_top_the_events_show():
    from immunomon.gating.template import parse_template

    template = parse_template("""
panel: overrun
version: "1"
markers: {CD34: [CD34]}
compensation: none
transforms:
  fluorescence: {logicle: {T: auto, W: auto, M: 4.5, A: 0}}
populations:
  - {name: CD34+, parent: root, dims: [CD34], method: threshold, args: {side: above}}
""")
    strategy, _ = template.strategy_for(_overrun_file())
    assert [d.transform.T for g in strategy for d in g.dimensions] == [262_144]


def test_a_clock_the_acquisition_times_disagree_with_is_said():
    """A FlowJo export of a CyTOF file: Time x $TIMESTEP spans 7.6 s of an acquisition
    that $BTIM and $ETIM put at 33 minutes, and the anomaly it flagged was "from 7.384 to
    7.631 s". Tenfold apart or more, the time check says the times are the clock's."""
    rng = np.random.default_rng(2)
    n = 6000
    columns = {"A": rng.lognormal(7, 0.3, n), "Time": np.sort(rng.uniform(0, 125, n))}
    clock = {"$TIMESTEP": "0.06107", "$BTIM": "18:48:54", "$ETIM": "19:22:15"}
    qc = time_anomalies(_sample(columns, ranges={"A": 1e6}, keywords=clock))
    said = [f for f in qc.flags if "clock" in f]
    assert said == ["the clock (Time) spans 7.63 s, the acquisition from $BTIM to $ETIM "
                    "2,001 s: the times shown are the clock's; its bins still compare with "
                    "each other"]
    agreeing = {**clock, "$TIMESTEP": "16"}                       # 2,000 s of 2,001
    assert not [f for f in time_anomalies(_sample(columns, ranges={"A": 1e6},
                                                  keywords=agreeing)).flags if "clock" in f]


# -- counts that turn on a cut ------------------------------------------------------
def test_the_share_near_a_cut_grows_as_two_populations_overlap():
    """5,000 negatives and 5,000 positives, from a clean gap to a shallow valley: the
    share of the positives within one bandwidth of the cut grows as they overlap, as the
    cut's agreement with the truth falls (from none to 8%, F1 1.0 to 0.89)."""
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template

    template = parse_template("""panel: one marker
version: "1"
markers: {CD45RA: [CD45RA]}
compensation: none
transforms: {fluorescence: linear}
populations:
  - {name: CD45RA+, parent: root, dims: [CD45RA], method: threshold, args: {side: above}}
""")
    rng = np.random.default_rng(4)
    truth = np.arange(10_000) >= 5_000
    shares, scores = [], []
    for low, high in (((100, 10), (300, 15)), ((100, 30), (220, 35)),
                      ((100, 30), (200, 35)), ((100, 30), (180, 35))):
        values = np.concatenate([rng.normal(*low, 5_000), rng.normal(*high, 5_000)])
        gating = gate_sample(_sample({"CD45RA": values}), template, exclude_anomalies=False)
        shares.append(float(gating.table.set_index("population")
                            .loc["CD45RA+", "percent_near_cut"]))
        got = gating.result.mask("CD45RA+")
        scores.append(2 * np.count_nonzero(got & truth) / (got.sum() + truth.sum()))
        said = [f for f in gating.qc_flags if "turns on where the cut lies" in f.message]
        assert bool(said) == (shares[-1] >= 10)
    assert shares[0] < 1 and np.all(np.diff(shares) > 1), shares
    assert np.all(np.diff(scores) < 0) and scores[-1] < 0.9, scores


def test_the_share_near_the_singlet_band_grows_as_doublets_close_in():
    """9,000 single cells and 1,000 doublets whose pulses run from 1.8 times as long (a
    clear valley) to 1.18 (merging into the singlets' flank): the singlets' share within
    one bandwidth of the band's cuts grows as its agreement with the truth falls. A
    large population cut in its tail: the share stays far below ``qc.NEAR_CUT``."""
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template

    template = parse_template(SINGLETS_ONLY)
    rng = np.random.default_rng(5)
    truth = np.arange(10_000) < 9_000
    shares, scores = [], []
    for doublet in (1.8, 1.35, 1.25, 1.18):
        height = rng.normal(50_000, 12_000, 10_000).clip(5_000)
        ratio = np.where(truth, rng.normal(1.0, 0.04, 10_000),
                         rng.normal(doublet, 0.08, 10_000))
        gating = gate_sample(_sample({"FSC-A": height * ratio, "FSC-H": height},
                                     ranges={"FSC-A": 262_144, "FSC-H": 262_144}),
                             template, exclude_anomalies=False)
        shares.append(float(gating.table.set_index("population")
                            .loc["Singlets", "percent_near_cut"]))
        got = gating.result.mask("Singlets")
        scores.append(2 * np.count_nonzero(got & truth) / (got.sum() + truth.sum()))
    assert shares[0] < 0.1 and np.all(np.diff(shares) > 0) and shares[-1] < 5, shares
    assert scores[0] > 0.99 and np.all(np.diff(scores) <= 0) and scores[-1] < 0.98, scores


@pytest.mark.parametrize("small, clumps, said", [
    (0.00, 0.04, False),       # doublets at a real rate
    (0.10, 0.05, False),       # and some debris at the trigger: 15% left out
    (0.45, 0.03, True),        # most events too small for the area channel to measure
    (0.00, 0.35, True),        # a clumped sample
])
def test_a_singlet_band_that_leaves_out_many_events_is_a_warning(small, clumps, said):
    """A singlet band leaves out under 12% of nine in ten real files; one that leaves out
    more than a quarter (events whose area is at or below zero, or clumps) is a warning
    that says where the events went."""
    from immunomon.gating.datadriven import SINGLETS_LOST
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template

    template = parse_template(SINGLETS_ONLY)
    rng = np.random.default_rng(9)
    n = 20_000
    kind = rng.choice(3, n, p=[1 - small - clumps, small, clumps])
    height = np.where(kind == 1, rng.uniform(200, 600, n), rng.normal(50_000, 12_000, n))
    ratio = np.select([kind == 0, kind == 2], [rng.normal(1.0, 0.04, n),
                                               rng.normal(1.9, 0.15, n)], 0.0)
    area = np.where(kind == 1, rng.normal(0, 80, n), height.clip(5_000) * ratio)
    gating = gate_sample(_sample({"FSC-A": area, "FSC-H": height.clip(1)},
                                 ranges={"FSC-A": 262_144, "FSC-H": 262_144}),
                         template, exclude_anomalies=False)
    flags = [f for f in gating.qc_flags if "singlet band left out" in f.message]
    lost = 1 - gating.result.count("Singlets") / n
    assert bool(flags) == said == (lost > SINGLETS_LOST), (lost, flags)
    if said:
        assert flags[0].level == "warning" and f"left out {lost:.0%}" in flags[0].message
        first = flags[0].message.split("events (")[1]       # the largest share first
        assert re.match(r"\d+% with no positive FSC-A" if small else r"\d+% above it",
                        first), flags[0].message


@pytest.mark.parametrize("name, said", [
    ("quirks/flowcal_aria_particles_subsample.fcs", True),     # small particles
    ("aria_100715_subsample.fcs", False),              # human T cells on a FACSAria
    ("attune_G11_subsample.fcs", False),
])
def test_the_singlet_band_warns_on_a_real_file_of_particles_too_small_for_fsc_a(name, said):
    """FlowCal's FACSAria file of small particles (its lab's reporter cultures, with an
    FSC PMT): half its events have an FSC-A at or below zero, the area channel not
    measuring them (the trigger was on FSC PMT and SSC too). The band keeps 40%, and
    says so."""
    from immunomon import read_fcs
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template

    template = parse_template(SINGLETS_ONLY)
    gating = gate_sample(read_fcs(DATA / "fcs" / name), template, exclude_anomalies=False)
    flags = [f for f in gating.qc_flags if "singlet band left out" in f.message]
    assert bool(flags) == said, flags
    if said:
        assert re.search(r"left out (5\d|6\d)% of its parent's events \(4\d% with no "
                         r"positive FSC-A or FSC-H", flags[0].message), flags[0].message


def test_the_share_near_a_diagonal_is_of_its_one_line():
    """Kappa and lambda B cells either side of the negatives' diagonal, from two clouds
    far from the line to two that meet on it: the share of the kappa cells within one
    bandwidth of x - y = the line grows as they meet, and is the one counted by hand."""
    from immunomon.gating import methods
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template
    from light_chains import TEMPLATE, light_chain_sample

    template = parse_template(TEMPLATE)
    rng = np.random.default_rng(6)
    shares = []
    for apart in (300, 120, 60):
        gating = gate_sample(light_chain_sample(rng, apart), template,
                             exclude_anomalies=False)
        result = gating.result
        found = result.gates["B kappa"]
        b_rows = np.flatnonzero(result.mask("B cells"))
        d = np.asarray(result.values.values(found.dimensions[0], b_rows)) - \
            np.asarray(result.values.values(found.dimensions[1], b_rows))
        near = np.abs(d - found.offset) < methods.kernel_bandwidth(d)
        members = result.mask("B kappa")[b_rows]
        t_rows = np.flatnonzero(result.mask("T cells"))
        cd3 = np.asarray(result.values.values(result.gates["T cells"].dimensions[0],
                                              np.arange(result.n_events)))
        assert t_rows.size and members.any()
        share = float(gating.table.set_index("population").loc["B kappa", "percent_near_cut"])
        # by hand, with the CD3 cut above (B cells are `not: T cells`)
        cd3_cut = result.gates["T cells"].bounds[0][0]
        above = np.abs(cd3 - cd3_cut) < methods.kernel_bandwidth(cd3)
        assert share == pytest.approx(
            100 * np.count_nonzero((near | above[b_rows]) & members) / members.sum())
        shares.append(share)
    assert shares[0] < 1 and np.all(np.diff(shares) > 0), shares


def test_majority_passing_over_a_valley_near_half_is_a_warning():
    """`majority` on a viability dye says live cells are most of the single cells. In a
    culture with as many dead cells as live (two of the activation files' 32 wells: 51%
    dead), the live/dead valley leaves 49% below it; `majority` passes it over and keeps
    every peak, dead cells as live. Near half only the plot can tell (a whole-blood file's
    small lymphoma cells were rightly kept so): a warning says which way to read it. A
    clear minority (monocytes, 35%, beside the lymphocytes) is what `majority` is for:
    nothing said."""
    from immunomon.gating.run import gate_sample
    from immunomon.gating.template import parse_template

    template = parse_template("""panel: viability
version: "1"
markers: {Dye: [Dye]}
compensation: none
transforms: {fluorescence: linear}
populations:
  - {name: Live, parent: root, dims: [Dye], method: threshold,
     args: {side: below, valley: last, majority: true}}
""")
    rng = np.random.default_rng(8)
    for live_share, warned in ((0.49, True), (0.35, False)):
        n_live = int(40_000 * live_share)
        values = np.concatenate([rng.normal(200, 40, n_live),
                                 rng.normal(700, 50, 40_000 - n_live)])
        gating = gate_sample(_sample({"Dye": values}), template, exclude_anomalies=False)
        assert gating.result.count("Live") > 0.99 * 40_000     # every peak kept
        said = [f for f in gating.qc_flags if "majority passed over" in f.message]
        assert [f.level for f in said] == (["warning"] if warned else []), live_share
        if warned:
            assert "49% of the events below it" in said[0].message
            assert gating.status == "warning"
