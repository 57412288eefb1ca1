"""Mass cytometry: a CyTOF instrument's raw file, and ion counts gated on arcsinh axes.

`tests/data/fcs/catalyst_raw_01.fcs` is a whole raw file of a CyTOF 6 (normalisation beads
and cells, 40 channels of ion counts and Time); `tests/data/real/deepcytof_multicentre_9`
is an expert-gated CyTOF file of blood cells (SOURCES.md of each folder)."""

from pathlib import Path

import numpy as np

from immunomon import read_fcs
from immunomon.fcs.sample import data_tops
from immunomon.gating.run import gate_sample
from immunomon.gating.template import parse_template

from testdata import REAL_FCS

REAL = Path(__file__).resolve().parent / "data" / "real"
BEAD_CHANNELS = ("Ce140Di", "Eu151Di", "Eu153Di", "Ho165Di", "Lu175Di")

RAW_TEMPLATE = """
panel: CyTOF raw
version: "1"
markers: {Beads: [Ce140Di], DNA: [Ir191Di]}
compensation: none
transforms:
  fluorescence: {arcsinh: {cofactor: 5}}
populations:
  - {name: Beads, parent: root, dims: [Beads], method: threshold, args: {side: above}}
  - {name: Not beads, parent: root, gate: {not: Beads}}
  - {name: Cells, parent: Not beads, dims: [DNA], method: threshold, args: {side: above}}
"""


def f1(got, want) -> float:
    return 2.0 * np.count_nonzero(got & want) / (got.sum() + want.sum())


def test_a_cytof_instruments_raw_file_is_read_and_its_beads_and_cells_gated():
    """The guide's first gates for a raw CyTOF file: the normalisation beads on one bead
    channel, then nucleated cells on a DNA channel among the rest. Checked against rules
    on other channels: a bead is bright in all five bead channels, a cell in both DNA
    channels (the iridium intercalator's two isotopes)."""
    import flowio

    path = REAL_FCS / "catalyst_raw_01.fcs"
    sample = read_fcs(path)
    theirs = flowio.FlowData(str(path))
    assert np.array_equal(sample.events, np.reshape(theirs.events, (-1, theirs.channel_count)))
    assert sample.n_events == 679 and "Time" in sample.channels
    # the counts overrun the declared range of 1,024 of every channel: each is read to the
    # power of two above the largest value of those channels (14,237)
    at = sample.channel_index("Ce140Di")
    assert sample.channel_info[at].range == 1024 and data_tops(sample)[at] == 16384
    counts = np.arcsinh(sample.events / 5)
    beads = (counts[:, [sample.channel_index(c) for c in BEAD_CHANNELS]] > 4).all(axis=1)
    cells = ~beads & (counts[:, [sample.channel_index(c) for c in ("Ir191Di", "Ir193Di")]]
                      > 4).all(axis=1)
    gating = gate_sample(sample, parse_template(RAW_TEMPLATE, "raw.yaml"))
    assert gating.status == "ok"
    assert f1(gating.result.mask("Beads"), beads) > 0.98 and beads.sum() == 102
    assert f1(gating.result.mask("Cells"), cells) > 0.98


def test_a_gate_on_an_arcsinh_axis_knows_its_zero_and_top():
    """An arcsinh with a cofactor has no top of its own; a gate on it reads the channel's
    (as `T: auto` does), so a lone peak's place on the scale can say which population it
    is, as on a logicle."""
    from immunomon.gating.dimensions import Dimension, EventValues
    from immunomon.transforms import Arcsinh

    sample = read_fcs(REAL_FCS / "catalyst_raw_01.fcs")
    values = EventValues(sample)
    zero, top = values.signal_scale(Dimension("Ce140Di", transform=Arcsinh(5)))
    assert zero == 0.0 and np.isclose(top, np.arcsinh(16384 / 5))
    assert values.signal_scale(Dimension("Ce140Di")) is None        # untransformed


def test_a_cytof_channels_zero_counts_are_its_negative_population():
    """The multi-centre file thinned to 114 events, B cells gated on the dimmer of the two
    B-cell channels: 6 of the 34 CD3- CD14- cells had a count of 0, and left out of the
    density as a pile they left the B cells one peak, which `expect: mostly-negative`
    took for the negatives (B cells 0 of 15). At zero signal, below where that peak
    ends, the pile is the negative population."""
    text = (REAL / "cytof_pbmc.yaml").read_text().replace("dims: [CD20]", "dims: [CD19]")
    whole = read_fcs(REAL / "deepcytof_multicentre_9.fcs")
    keep = np.sort(np.random.default_rng(2).choice(whole.n_events, int(whole.n_events * 0.005),
                                                   replace=False))
    from dataclasses import replace
    small = replace(whole, events=np.ascontiguousarray(whole.events[keep]))
    expert = np.load(REAL / "deepcytof_multicentre_9.labels.npz")["B cells"][keep]
    result = gate_sample(small, parse_template(text, "cd19.yaml"),
                         exclude_anomalies=False).result
    assert expert.sum() == 15
    assert f1(result.mask("B cells"), expert) > 0.8
    assert "at zero signal kept in the density" in result.gates["B cells"].notes[0]


def test_a_population_the_bounds_take_as_absent_is_information_not_a_failure():
    """A CyTOF file without monocytes (its CD14 stain empty): a gate whose bounds say
    where the population lies, with no peak there, is empty by the template's own rule.
    The sample's QC called that a failure ("empty although its parent holds 1611
    events") and the file's status with it; it is information now. Here the beads'
    channel among the cells of a raw file, where no bead lies."""
    text = RAW_TEMPLATE + ("  - {name: Bead-bright cells, parent: Cells, dims: [Beads], "
                           "method: threshold, args: {side: above, bounds: [4.0, 7.0]}}\n")
    gating = gate_sample(read_fcs(REAL_FCS / "catalyst_raw_01.fcs"),
                         parse_template(text, "raw.yaml"))
    assert gating.result.count("Bead-bright cells") == 0
    mine = [f for f in gating.qc_flags if f.population == "Bead-bright cells"]
    assert gating.status == "ok" and mine and {f.level for f in mine} == {"info"}
    assert any("taken as absent" in f.message for f in mine)
    # one bound only says where the cut may fall, not that the population may be absent
    lower = text.replace("bounds: [4.0, 7.0]", "bounds: [4.0, null]")
    assert gate_sample(read_fcs(REAL_FCS / "catalyst_raw_01.fcs"),
                       parse_template(lower, "raw.yaml")).status == "failure"
    # nor where the template says the population is most of its parent: its bounds then
    # do not fit the file (a LST file at half its voltage: CD4 T, expected mostly
    # positive, lay below their bounds, and were 'absent' with the sample 'ok')
    most = text.replace("side: above, bounds", "side: above, expect: mostly-positive, bounds")
    gating = gate_sample(read_fcs(REAL_FCS / "catalyst_raw_01.fcs"),
                         parse_template(most, "raw.yaml"))
    assert gating.status == "failure" and gating.result.count("Bead-bright cells") == 0
    assert any(f.level == "failure" and "do not fit this file" in f.message
               for f in gating.qc_flags if f.population == "Bead-bright cells")


def test_zero_counts_spread_below_zero_are_zero_counts():
    """Mass cytometry software spreads zero counts evenly over -1 to 0. On an arcsinh axis
    that is a block ending sharply at zero signal, and a lone negative peak's end fell on
    its edge: among the multi-centre file's T cells, with its zeros spread so, 97% were
    "CD14+" (0.7% with the zeros as recorded). Values within one count below zero are
    read as zero counts; compensated fluorescence, far further below zero, is not."""
    from dataclasses import replace

    from immunomon.gating.dimensions import Dimension, EventValues
    from immunomon.transforms import Arcsinh

    whole = read_fcs(REAL / "deepcytof_multicentre_9.fcs")
    events = whole.events.copy()
    zero = events == 0
    events[zero] = -np.random.default_rng(1).uniform(0, 1, zero.sum()).astype(np.float32)
    spread = replace(whole, events=events)
    text = (REAL / "cytof_pbmc.yaml").read_text() + (
        "  - {name: CD14 among T, parent: T cells, dims: [CD14], method: threshold, "
        "args: {side: above}}\n")
    template = parse_template(text, "cd14.yaml")
    for sample in (whole, spread):
        result = gate_sample(sample, template, exclude_anomalies=False).result
        assert result.count("CD14 among T") < 0.02 * result.count("T cells")
    values = EventValues(spread)
    cd14 = Dimension("Ch4Di", transform=Arcsinh(5))
    assert values.values(cd14).min() == 0.0
    compensated = replace(whole, events=whole.events - 50.0)         # far below zero
    assert EventValues(compensated).values(cd14).min() < -2


def test_a_stained_peak_keeps_no_event_at_zero_signal():
    """A lone broad peak taken for the population (`expect: mostly-positive`) whose flank
    reaches below zero signal kept the events with a count of 0 too (a CyTOF file's 81
    CD3- cells without a CD56 ion counted as NK cells); those carry none of the marker."""
    from immunomon.gating import methods

    rng = np.random.default_rng(3)
    stained = np.arcsinh(rng.gamma(2.0, 8.0, 1500) / 5)              # broad, from near 0
    x = np.concatenate([np.zeros(80), stained])
    scale = (0.0, float(np.arcsinh(4096 / 5)))
    t = methods.density_threshold(x, side="above", expect="mostly-positive", scale=scale)
    assert 0.0 < t.value < stained.min() + 0.5 and "zero signal" in t.note
    assert np.count_nonzero(x >= t.value) == np.count_nonzero(stained >= t.value)
