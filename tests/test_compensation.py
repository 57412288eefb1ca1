"""Compensation: recovery of known true signals, agreement with flowutils, readers, errors."""

from __future__ import annotations

import numpy as np
import pytest

from immunomon import Channel, CompensationError, Sample, Spillover
from immunomon.compensation import (
    compensate,
    compensate_array,
    match_detectors,
    read_flowjo_matrix,
    read_spillover_csv,
)

EPS32 = float(np.finfo(np.float32).eps)
FLUOR = ["FITC-A", "PE-A", "PE-Cy5-A", "APC-A"]
SPILL = np.array([
    [1.0, 0.21, 0.03, 0.0],
    [0.01, 1.0, 0.32, 0.02],
    [0.0, 0.05, 1.0, 0.41],
    [0.0, 0.0, 0.12, 1.0],
])


def _true_events(n, k, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.lognormal(5, 1.5, (n, k)) * rng.choice([1, 1, 1, -0.02], (n, k))
    true[rng.random((n, k)) < 0.1] = 0.0
    return true


def _sample(events, names, spill=None, markers=None):
    markers = markers or [None] * len(names)
    return Sample(events=np.asarray(events, dtype=np.float32),
                  channel_info=tuple(Channel(n, m) for n, m in zip(names, markers)),
                  keywords={}, spillover=spill)


def _observed_sample(n=20000, seed=0):
    """FSC-A, SSC-A, four fluorescence channels, Time; observed = true @ S."""
    true = _true_events(n, 4, seed)
    rng = np.random.default_rng(seed + 1)
    scatter = rng.uniform(0, 2e5, (n, 2))
    time = np.arange(n, dtype=np.float64)[:, None] / 10
    observed = np.hstack([scatter, true @ SPILL, time])
    names = ["FSC-A", "SSC-A", *FLUOR, "Time"]
    return _sample(observed, names, Spillover(tuple(FLUOR), SPILL)), true


def _error_bound(observed, inverse):
    """A few float32 roundings of the terms of the product (plus the rounding of the input)."""
    return 8 * EPS32 * (np.abs(observed.astype(np.float64)) @ np.abs(inverse)) + 1e-30


def test_recovers_true_signal_to_float32_precision():
    sample, true = _observed_sample()
    out = compensate(sample)
    comp = out.events[:, 2:6].astype(np.float64)
    bound = _error_bound(sample.events[:, 2:6], np.linalg.inv(SPILL))
    assert np.all(np.abs(comp - true) <= bound)
    # and the bound is tight enough to mean something: uncompensated data fails it
    assert not np.all(np.abs(sample.events[:, 2:6] - true) <= bound)


def test_other_channels_untouched_and_new_sample():
    sample, _ = _observed_sample()
    before = sample.events.copy()
    out = compensate(sample)
    assert out is not sample and out.events.dtype == np.float32
    np.testing.assert_array_equal(out.events[:, [0, 1, 6]], sample.events[:, [0, 1, 6]])
    np.testing.assert_array_equal(sample.events, before)          # input not modified
    assert out.channels == sample.channels and out.spillover == sample.spillover


def test_detector_order_and_position_follow_names():
    """Matrix rows in another order than the file's columns, with a channel in between."""
    sample, true = _observed_sample(5000, seed=3)
    perm = [2, 0, 3, 1]
    shuffled = Spillover(tuple(FLUOR[i] for i in perm), SPILL[np.ix_(perm, perm)])
    np.testing.assert_array_equal(compensate(sample, shuffled).events, compensate(sample).events)
    # move Time between the fluorescence channels, with a non-finite value in it
    cols = [0, 1, 2, 3, 6, 4, 5]
    events = sample.events[:, cols].copy()
    events[10, 4] = np.inf
    events[11, 4] = np.nan
    names = [sample.channels[c] for c in cols]
    moved = compensate(_sample(events, names, sample.spillover))
    fluor = [2, 3, 5, 6]
    assert np.all(np.abs(moved.events[:, fluor] - true)
                  <= _error_bound(events[:, fluor], np.linalg.inv(SPILL)))
    np.testing.assert_array_equal(moved.events[:, [0, 1]], events[:, [0, 1]])
    np.testing.assert_array_equal(moved.events[:, 4], events[:, 4])


def test_agrees_with_flowutils():
    fc = pytest.importorskip("flowutils.compensate")
    sample, _ = _observed_sample(20000, seed=5)
    ours = compensate(sample).events
    theirs = fc.compensate(sample.events.astype(np.float64), SPILL, [2, 3, 4, 5])
    bound = _error_bound(sample.events[:, 2:6], np.linalg.inv(SPILL))
    assert np.all(np.abs(ours[:, 2:6] - theirs[:, 2:6]) <= bound)
    np.testing.assert_array_equal(ours[:, [0, 1, 6]], theirs[:, [0, 1, 6]])


def test_compensate_array_is_pure_and_blocks_do_not_matter():
    true = _true_events(10000, 4, seed=9)
    events = np.hstack([true @ SPILL, np.ones((10000, 1))]).astype(np.float32)
    copy = events.copy()
    out = compensate_array(events, [0, 1, 2, 3], SPILL)
    np.testing.assert_array_equal(events, copy)
    whole = events[:, :4].astype(np.float64) @ np.linalg.inv(SPILL)
    assert np.all(np.abs(out[:, :4] - whole) <= _error_bound(events[:, :4], np.linalg.inv(SPILL)))
    # float64 input gives float32 output, the same values
    np.testing.assert_array_equal(compensate_array(events.astype(np.float64), [0, 1, 2, 3], SPILL),
                                  out)
    assert compensate_array(events, [], np.zeros((0, 0))).tolist() == events.tolist()
    # float64 on request: agrees with the float64 product to double precision
    out64 = compensate_array(events, [0, 1, 2, 3], SPILL, dtype=np.float64)
    assert out64.dtype == np.float64
    np.testing.assert_allclose(out64[:, :4], whole, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(out64[:, 4], events[:, 4])


def test_matching_by_marker_and_loose_names():
    names = ["FSC-A", "FITC-A", "PE-A"]
    sample = _sample(np.zeros((3, 3)), names, markers=[None, "CD3", "CD19"])
    assert match_detectors(sample, ["PE-A", "FITC-A"]) == [2, 1]
    assert match_detectors(sample, ["CD19", "CD3"]) == [2, 1]
    assert match_detectors(sample, ["Comp-PE-A", "<fitc-a>"]) == [2, 1]
    assert match_detectors(names, ["FITC-A"]) == [1]


# --------------------------------------------------------------------------
# errors


def test_missing_detector_is_named():
    sample, _ = _observed_sample(100)
    spill = Spillover(("FITC-A", "PE-Cy7-A"), np.eye(2))
    with pytest.raises(CompensationError, match=r"'PE-Cy7-A'.*lacks; its channels are: FSC-A"):
        compensate(sample, spill)


def test_no_spillover_in_sample():
    sample = _sample(np.zeros((2, 2)), ["FSC-A", "FITC-A"])
    with pytest.raises(CompensationError, match=r"no spillover matrix.*read_spillover_csv"):
        compensate(sample)


def test_singular_and_ill_conditioned():
    sample, _ = _observed_sample(100)
    singular = SPILL.copy()
    singular[3] = singular[2]
    with pytest.raises(CompensationError, match=r"singular or ill-conditioned \(condition number"):
        compensate(sample, Spillover(tuple(FLUOR), singular))
    nearly = SPILL.copy()
    nearly[3] = nearly[2] + 1e-9
    with pytest.raises(CompensationError, match=r"condition number [0-9.e+]+, limit 1e\+06"):
        compensate(sample, Spillover(tuple(FLUOR), nearly))


def test_malformed_matrices():
    events = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(CompensationError, match="not square"):
        compensate_array(events, [0, 1, 2], np.ones((3, 4)))
    with pytest.raises(CompensationError, match="not finite"):
        compensate_array(events, [0, 1], [[1, np.nan], [0, 1]])
    with pytest.raises(CompensationError, match="2 channel indices"):
        compensate_array(events, [0, 1], np.eye(3))
    with pytest.raises(CompensationError, match="out of range"):
        compensate_array(events, [0, 9], np.eye(2))
    with pytest.raises(CompensationError, match="repeat"):
        compensate_array(events, [1, 1], np.eye(2))
    with pytest.raises(CompensationError, match="same channel"):
        match_detectors(["FITC-A", "PE-A"], ["FITC-A", "Comp-FITC-A"])


# --------------------------------------------------------------------------
# readers


def _csv(matrix, names, rownames=False, delim=","):
    lines = [delim.join(([""] if rownames else []) + names)]
    for name, row in zip(names, matrix):
        lines.append(delim.join(([name] if rownames else []) + [repr(float(v)) for v in row]))
    return "\n".join(lines) + "\n"


def test_read_spillover_csv_plain_and_with_row_names(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text(_csv(SPILL, FLUOR))
    s = read_spillover_csv(p)
    assert s.detectors == tuple(FLUOR)
    np.testing.assert_array_equal(s.matrix, SPILL)
    # row names in another order are put in header order; tab separated
    perm = [1, 3, 0, 2]
    lines = ["\t".join(["detector"] + FLUOR)]
    for i in perm:
        lines.append("\t".join([FLUOR[i]] + [str(v) for v in SPILL[i]]))
    p2 = tmp_path / "rows.tsv"
    p2.write_text("\n".join(lines))
    s2 = read_spillover_csv(p2)
    assert s2.detectors == tuple(FLUOR)
    np.testing.assert_array_equal(s2.matrix, SPILL)
    # a matrix in percent is scaled to fractions
    p3 = tmp_path / "percent.csv"
    p3.write_text(_csv(SPILL * 100, FLUOR, rownames=True))
    np.testing.assert_allclose(read_spillover_csv(p3).matrix, SPILL, rtol=1e-15)


def test_read_spillover_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("FITC-A,PE-A\n1,0.2\n0.1,abc\n")
    with pytest.raises(CompensationError, match=r"bad.csv \(line 3, column 'PE-A'\): 'abc'"):
        read_spillover_csv(p)
    p.write_text("FITC-A,PE-A,APC-A\n1,0.2,0\n0.1,1,0\n")
    with pytest.raises(CompensationError, match="not square: 2 rows of values for 3 detectors"):
        read_spillover_csv(p)
    p.write_text("FITC-A,FITC-A\n1,0\n0,1\n")
    with pytest.raises(CompensationError, match="named twice: FITC-A"):
        read_spillover_csv(p)
    p.write_text("")
    with pytest.raises(CompensationError, match="empty"):
        read_spillover_csv(p)
    with pytest.raises(CompensationError, match="cannot read"):
        read_spillover_csv(tmp_path / "absent.csv")


def test_read_flowjo_text_export(tmp_path):
    names = [f"<{n}>" for n in FLUOR]
    text = "Acquisition-defined\n" + "\t".join(names) + "\n" + "\n".join(
        "\t".join(str(v) for v in row) for row in SPILL) + "\n"
    p = tmp_path / "comp.txt"
    p.write_text(text)
    s = read_flowjo_matrix(p)
    assert s.detectors == tuple(FLUOR)
    np.testing.assert_array_equal(s.matrix, SPILL)
    sample, true = _observed_sample(2000, seed=11)
    np.testing.assert_array_equal(compensate(sample, s).events, compensate(sample).events)


def _mtx(matrix, names):
    rows = []
    for src, row in zip(names, matrix):
        coefs = "".join(f'<transforms:coefficient data-type:parameter="{dst}" '
                        f'transforms:value="{v!r}"/>' for dst, v in zip(names, row))
        rows.append(f'<transforms:spillover data-type:parameter="{src}">{coefs}'
                    "</transforms:spillover>")
    params = "".join(f'<data-type:parameter data-type:name="{n}"/>' for n in names)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gating:gatingML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
            'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
            'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">'
            '<transforms:spilloverMatrix prefix="Comp-" name="Comp">'
            f"<data-type:parameters>{params}</data-type:parameters>{''.join(rows)}"
            "</transforms:spilloverMatrix></gating:gatingML>")


def test_read_flowjo_mtx_xml(tmp_path):
    p = tmp_path / "comp.mtx"
    p.write_text(_mtx(SPILL.tolist(), FLUOR))
    s = read_flowjo_matrix(p)
    assert s.detectors == tuple(FLUOR)
    np.testing.assert_array_equal(s.matrix, SPILL)


def test_read_flowjo_mtx_rejects_hostile_and_incomplete(tmp_path):
    p = tmp_path / "evil.mtx"
    p.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
                 '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>')
    with pytest.raises(CompensationError, match="refused XML"):
        read_flowjo_matrix(p)
    p.write_text(_mtx([[1.0, 0.1]], ["FITC-A", "PE-A"]))
    with pytest.raises(CompensationError, match="no spillover row"):
        read_flowjo_matrix(p)
    p.write_text("just some words\nand more words\n")
    with pytest.raises(CompensationError, match="no header line of detector names"):
        read_flowjo_matrix(p)
