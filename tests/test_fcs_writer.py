"""Writing FCS 3.1: exact round trips, atomic writes, files other readers accept."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from immunomon import Channel, Sample, Spillover, read_fcs, write_fcs
from immunomon.fcs.text import SEGMENT_KEYWORDS
from immunomon.fcs import writer as writer_module

from fcsbuild import assemble, channel_keywords, pack_uint

RNG = np.random.default_rng(7)


def make_sample(n=1000, spill=True) -> Sample:
    names = ["FSC-A", "SSC-A", "FITC-A", "PE-A", "APC-A", "Time"]
    markers = [None, None, "CD3", "CD4/CD25", "CD8|x", None]
    events = RNG.normal(1000, 500, size=(n, len(names))).astype(np.float32)
    if n >= 5:  # extremes of float32 must survive bit for bit
        events[:5, 2] = [np.float32(1e-38), -0.0, 3.4e38, np.float32(np.pi), -1.5]
    channels = tuple(Channel(nm, mk, 262144.0, 1.0, (0.0, 0.0), "F", 32)
                     for nm, mk in zip(names, markers))
    keywords = {"$CYT": "Test cytometer", "$DATE": "24-NOV-2026", "OPERATOR": "Zoë /|\\ ∂",
                "$TIMESTEP": "0.01", "EMPTY-ISH": " ", "$FIL": "a/b|c.fcs"}
    spillover = Spillover(("FITC-A", "PE-A", "APC-A"),
                          np.array([[1, 0.1234567891234, 0], [0.02, 1, 0.3], [0, 1e-17, 1]])) \
        if spill else None
    return Sample(events=events, channel_info=channels, keywords=keywords, spillover=spillover)


def _user_keywords(kw):
    return {k: v for k, v in kw.items() if k not in SEGMENT_KEYWORDS}


def test_round_trip_is_exact(tmp_path):
    x = make_sample()
    path = write_fcs(tmp_path / "x.fcs", x)
    y = read_fcs(path)
    assert y.version == "3.1"
    np.testing.assert_array_equal(y.events.view(np.uint32), x.events.view(np.uint32))
    assert y.channels == x.channels and y.markers == x.markers
    assert y.spillover == x.spillover
    for key, value in x.keywords.items():
        assert y.keywords[key] == value
    assert y.warnings == []
    # Writing what was read gives back the same keywords exactly: a fixed point.
    z = read_fcs(write_fcs(tmp_path / "z.fcs", y))
    assert _user_keywords(z.keywords) == _user_keywords(y.keywords)
    assert z.keywords["$BEGINDATA"] == y.keywords["$BEGINDATA"]


def test_round_trip_without_spillover_and_without_events(tmp_path):
    x = make_sample(n=0, spill=False)
    y = read_fcs(write_fcs(tmp_path / "e.fcs", x))
    assert y.events.shape == (0, 6) and y.spillover is None


def test_integer_file_written_as_scale_values(tmp_path):
    raw = RNG.integers(0, 1024, size=(50, 2))
    kw = channel_keywords(["FSC-H", "FL1-H"], [16, 16], ranges=[1024, 1024], extra={
        "$DATATYPE": "I", "$TOT": "50", "$BYTEORD": "4,3,2,1", "$P1G": "2.5", "$P2E": "4,0",
        "$CYT": "FACSCalibur"})
    src = tmp_path / "src.fcs"
    src.write_bytes(assemble(kw, pack_uint(raw, 2, (2, 1)), version="2.0"))
    x = read_fcs(src)
    y = read_fcs(write_fcs(tmp_path / "out.fcs", x))
    np.testing.assert_array_equal(y.events, x.events)
    assert y.keywords["$CYT"] == "FACSCalibur"
    assert y.keywords["$P2R"] == "10000" and y.keywords["$P1G"] == "1"


def test_other_readers_accept_our_files(tmp_path):
    flowio = pytest.importorskip("flowio")
    x = make_sample()
    path = write_fcs(tmp_path / "x.fcs", x)
    theirs = flowio.FlowData(str(path))
    np.testing.assert_array_equal(
        theirs.as_array(preprocess=False).astype(np.float32), x.events)
    assert theirs.text["cyt"] == "Test cytometer"


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "keep.fcs"
    target.write_bytes(b"previous content")
    real = writer_module.write_bytes

    def fail_after_header(path, head, data):
        # HEADER and TEXT reach the temporary file, then the DATA write fails
        return real(path, head, _NotABuffer())

    monkeypatch.setattr(writer_module, "write_bytes", fail_after_header)
    with pytest.raises(TypeError):
        write_fcs(target, make_sample())
    assert target.read_bytes() == b"previous content"
    assert sorted(os.listdir(tmp_path)) == ["keep.fcs"]


class _NotABuffer:
    """Stands in for the DATA; it is no buffer, so writing it fails."""


def test_header_switches_to_text_offsets_above_99999999():
    head = writer_module._header(58, 1000, 100_000_000, 300_000_000)
    assert head[26:42] == b"       0       0"
    assert head[10:26] == b"      58    1000"


def test_replace_keeps_sample_valid(tmp_path):
    x = make_sample()
    y = replace(x, events=x.events[:10].copy())
    z = read_fcs(write_fcs(Path(tmp_path) / "small.fcs", y))
    assert z.n_events == 10 and z.keywords["$TOT"] == "10"
