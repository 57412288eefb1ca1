"""The FCS reader against files built byte by byte, one quirk per test."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

import immunomon
from immunomon import FCSFormatError, read_fcs, read_fcs_metadata

from testdata import COMPLIANCE, REAL_FCS
from fcsbuild import assemble, channel_keywords, pack_bits, pack_rows, pack_uint

RNG = np.random.default_rng(20261124)


def write(tmp_path, blob: bytes, name="f.fcs") -> Path:
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def float_file(values, *, version="3.1", byteorder="<", extra=None, **kw):
    names = [f"FL{i}-A" for i in range(1, values.shape[1] + 1)]
    keywords = channel_keywords(names, [32] * values.shape[1], extra={
        "$BYTEORD": "1,2,3,4" if byteorder == "<" else "4,3,2,1", "$DATATYPE": "F",
        "$MODE": "L", "$TOT": str(values.shape[0]), "$NEXTDATA": "0", **(extra or {})})
    return assemble(keywords, pack_rows(values, ["f"] * values.shape[1], byteorder),
                    version=version, **kw)


# ----------------------------------------------------------------------------- versions and types
@pytest.mark.parametrize("version", ["2.0", "3.0", "3.1", "3.2"])
def test_every_version_reads_float_data(tmp_path, version):
    values = RNG.normal(1000, 300, size=(257, 5)).astype(np.float32)
    s = read_fcs(write(tmp_path, float_file(values, version=version)))
    assert s.version == version
    assert s.events.dtype == np.float32 and s.events.shape == (257, 5)
    np.testing.assert_array_equal(s.events, values)
    assert s.channels == ("FL1-A", "FL2-A", "FL3-A", "FL4-A", "FL5-A")


def test_big_endian_float(tmp_path):
    values = RNG.normal(0, 1e4, size=(100, 3)).astype(np.float32)
    s = read_fcs(write(tmp_path, float_file(values, byteorder=">")))
    np.testing.assert_array_equal(s.events, values)


@pytest.mark.parametrize("order", [">", "<"])
def test_double_data(tmp_path, order):
    values = RNG.normal(0, 1e5, size=(64, 4))
    kw = channel_keywords(list("ABCD"), [64] * 4, extra={
        "$BYTEORD": "1,2,3,4" if order == "<" else "4,3,2,1", "$DATATYPE": "D",
        "$TOT": "64"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_rows(values, ["d"] * 4, order))))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


def test_histogram_modes_are_refused_by_name(tmp_path):
    # $MODE C and U (FCS 2.0-3.0) store histograms: read as events they were numbers of
    # nothing; an unknown value is read as the list mode every instrument writes
    values = RNG.normal(1000, 300, size=(40, 3)).astype(np.float32)
    for mode, kind in (("C", "correlated"), ("U", "uncorrelated")):
        path = write(tmp_path, float_file(values, version="3.0", extra={"$MODE": mode}))
        with pytest.raises(FCSFormatError, match=f"MODE is '{mode}': its DATA segment holds "
                                                 f"{kind} histograms, not events"):
            read_fcs(path)
    odd = read_fcs(write(tmp_path, float_file(values, extra={"$MODE": "l"})))
    np.testing.assert_array_equal(odd.events, values)


def test_ascii_fixed_width(tmp_path):
    values = RNG.integers(0, 99999, size=(30, 3))
    data = b"".join(b"".join(f"{v:>6}".encode() for v in row) for row in values.tolist())
    kw = channel_keywords(["A", "B", "C"], [6, 6, 6], extra={"$DATATYPE": "A", "$TOT": "30",
                                                            "$BYTEORD": "1,2,3,4"})
    s = read_fcs(write(tmp_path, assemble(kw, data, version="2.0")))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


def test_ascii_delimited(tmp_path):
    values = RNG.integers(0, 5000, size=(20, 4))
    data = "\n".join(",".join(str(v) for v in row) for row in values.tolist()).encode()
    kw = channel_keywords(list("WXYZ"), ["*"] * 4, extra={"$DATATYPE": "A", "$TOT": "20",
                                                          "$BYTEORD": "1,2,3,4"})
    s = read_fcs(write(tmp_path, assemble(kw, data, version="2.0")))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


def test_fcs32_per_parameter_datatypes(tmp_path):
    n = 50
    ints = RNG.integers(0, 1024, size=n)
    floats = RNG.normal(0, 100, size=n).astype(np.float32)
    doubles = RNG.normal(0, 1e6, size=n)
    rows = np.empty(n, dtype=object)
    data = b"".join(struct.pack("<Hfd", int(a), float(b), float(c))
                    for a, b, c in zip(ints, floats, doubles))
    kw = channel_keywords(["I16", "F32", "D64"], [16, 32, 64], ranges=[1024, 262144, 262144],
                          extra={"$DATATYPE": "I", "$P2DATATYPE": "F", "$P3DATATYPE": "D",
                                 "$TOT": str(n), "$BYTEORD": "1,2,3,4"})
    s = read_fcs(write(tmp_path, assemble(kw, data, version="3.2")))
    np.testing.assert_array_equal(s.events[:, 0], ints.astype(np.float32))
    np.testing.assert_array_equal(s.events[:, 1], floats)
    np.testing.assert_array_equal(s.events[:, 2], doubles.astype(np.float32))
    assert [c.datatype for c in s.channel_info] == ["I", "F", "D"]
    del rows


# ----------------------------------------------------------------------------- integers
@pytest.mark.parametrize("bits", [8, 16, 24, 32, 64])
@pytest.mark.parametrize("order", [(1, 2, 3, 4), (4, 3, 2, 1)])
def test_integer_widths(tmp_path, bits, order):
    top = min(2 ** bits, 2 ** 24)   # stay exact in float32
    values = RNG.integers(0, top, size=(40, 3))
    kw = channel_keywords(["A", "B", "C"], [bits] * 3, ranges=[2 ** bits] * 3, extra={
        "$DATATYPE": "I", "$TOT": "40", "$BYTEORD": ",".join(map(str, order))})
    data = pack_uint(values, bits // 8, order)
    s = read_fcs(write(tmp_path, assemble(kw, data)))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


@pytest.mark.parametrize("order", [(3, 4, 1, 2), (2, 1, 4, 3)])
def test_odd_byte_orders(tmp_path, order):
    values = RNG.integers(0, 2 ** 24, size=(25, 2))
    kw = channel_keywords(["A", "B"], [32, 32], ranges=[2 ** 32] * 2, extra={
        "$DATATYPE": "I", "$TOT": "25", "$BYTEORD": ",".join(map(str, order))})
    s = read_fcs(write(tmp_path, assemble(kw, pack_uint(values, 4, order))))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


def test_odd_byte_order_float(tmp_path):
    values = RNG.normal(0, 100, size=(10, 2)).astype(np.float32)
    le = values.astype("<f4").view("<u4")
    kw = channel_keywords(["A", "B"], [32, 32], extra={
        "$DATATYPE": "F", "$TOT": "10", "$BYTEORD": "3,4,1,2"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_uint(le, 4, (3, 4, 1, 2)))))
    np.testing.assert_array_equal(s.events, values)


@pytest.mark.parametrize("order", ["1,2", "2,1"])
def test_two_byte_byteord_on_16_bit_data(tmp_path, order):
    values = RNG.integers(0, 65536, size=(33, 2))
    kw = channel_keywords(["A", "B"], [16, 16], ranges=[65536] * 2,
                          extra={"$DATATYPE": "I", "$TOT": "33", "$BYTEORD": order})
    data = pack_uint(values, 2, tuple(int(x) for x in order.split(",")))
    np.testing.assert_array_equal(read_fcs(write(tmp_path, assemble(kw, data))).events,
                                  values.astype(np.float32))


def test_16_bit_words_masked_to_10_bits(tmp_path):
    """FACSCalibur-style: $PnB 16, $PnR 1024, flags in the six high bits."""
    true = RNG.integers(0, 1024, size=(500, 4))
    flags = RNG.integers(0, 64, size=(500, 4)) << 10
    kw = channel_keywords(list("ABCD"), [16] * 4, ranges=[1024] * 4,
                          extra={"$DATATYPE": "I", "$TOT": "500", "$BYTEORD": "4,3,2,1"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_uint(true | flags, 2, (2, 1)), version="2.0")))
    np.testing.assert_array_equal(s.events, true.astype(np.float32))


def test_mask_uses_the_bits_range_needs(tmp_path):
    # $PnR 1000 is not a power of two: values need 10 bits, so the mask is 1023.
    values = RNG.integers(0, 1000, size=(50, 1)) | (1 << 12)
    kw = channel_keywords(["A"], [16], ranges=[1000],
                          extra={"$DATATYPE": "I", "$TOT": "50", "$BYTEORD": "1,2"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_uint(values, 2, (1, 2)))))
    np.testing.assert_array_equal(s.events[:, 0], (values[:, 0] & 1023).astype(np.float32))


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("widths", [[10, 10, 10], [12, 12], [10, 12, 7, 24], [24, 24]])
def test_bit_packed_integers(tmp_path, little, widths):
    n = 97  # odd count so the stream ends inside a byte
    values = np.column_stack([RNG.integers(0, 2 ** w, size=n) for w in widths])
    kw = channel_keywords([f"P{i}" for i in range(len(widths))], widths,
                          ranges=[2 ** w for w in widths],
                          extra={"$DATATYPE": "I", "$TOT": str(n),
                                 "$BYTEORD": "1,2,3,4" if little else "4,3,2,1"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_bits(values, widths, little), version="2.0")))
    np.testing.assert_array_equal(s.events, values.astype(np.float32))


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
@pytest.mark.parametrize("enddata_extra", [0, 1])
def test_odd_widths_stored_in_whole_bytes(tmp_path, order, enddata_extra):
    # Beckman Coulter CXP (Cytomics FC 500) .LMD files declare $PnB 10 but store
    # each value in a 16-bit word; the DATA segment's size shows it, and the
    # file's FCS 3.0 data set holds the same events at 20 bits.
    n = 101
    values = RNG.integers(0, 1024, size=(n, 4))
    stored = values | (RNG.integers(0, 64, size=(n, 4)) << 10)   # bits above $PnB: not data
    kw = channel_keywords(["FS Lin", "SS Lin", "FL1 Log", "FL2 Log"], [10] * 4,
                          ranges=[1024] * 4,
                          extra={"$DATATYPE": "I", "$TOT": str(n), "$SYS": "CXP V1.0",
                                 "$BYTEORD": ",".join(map(str, order))})
    blob = assemble(kw, pack_uint(stored, 2, order), version="2.0", header_data="header-only",
                    enddata_extra=enddata_extra)
    s = read_fcs(write(tmp_path, blob), scale=False)
    np.testing.assert_array_equal(s.events, values.astype(np.float32))
    assert any("sized for whole bytes" in w and "10-in-16" in w for w in s.warnings)
    assert [c.bits for c in s.channel_info] == [10] * 4


def test_odd_widths_bit_packed_stay_packed(tmp_path):
    # a stream that fits the packed size is read packed, with no warning about it
    n = 101
    values = RNG.integers(0, 1024, size=(n, 4))
    kw = channel_keywords(list("ABCD"), [10] * 4, ranges=[1024] * 4,
                          extra={"$DATATYPE": "I", "$TOT": str(n), "$BYTEORD": "1,2"})
    s = read_fcs(write(tmp_path, assemble(kw, pack_bits(values, [10] * 4, True),
                                          version="2.0")), scale=False)
    np.testing.assert_array_equal(s.events, values.astype(np.float32))
    assert s.warnings == []


def test_mixed_byte_widths(tmp_path):
    n = 60
    a, b, c = (RNG.integers(0, 2 ** w, size=n) for w in (8, 16, 32))
    data = b"".join(struct.pack(">BHI", int(x), int(y), int(z)) for x, y, z in zip(a, b, c))
    kw = channel_keywords(["A", "B", "C"], [8, 16, 32], ranges=[256, 65536, 2 ** 32],
                          extra={"$DATATYPE": "I", "$TOT": str(n), "$BYTEORD": "4,3,2,1"})
    s = read_fcs(write(tmp_path, assemble(kw, data)))
    np.testing.assert_array_equal(s.events, np.column_stack([a, b, c]).astype(np.float32))


# ----------------------------------------------------------------------------- scaling
def test_log_amplification_and_gain(tmp_path):
    raw = RNG.integers(0, 1024, size=(80, 3))
    kw = channel_keywords(["FSC-H", "FL1-H", "FL2-H"], [16] * 3, ranges=[1024] * 3, extra={
        "$DATATYPE": "I", "$TOT": "80", "$BYTEORD": "1,2", "$P1G": "3.67",
        "$P2E": "4,0", "$P3E": "4,0.5"})
    path = write(tmp_path, assemble(kw, pack_uint(raw, 2, (1, 2)), version="2.0"))
    s = read_fcs(path)
    expected = np.column_stack([raw[:, 0] / 3.67, 10 ** (4 * raw[:, 1] / 1024),
                                0.5 * 10 ** (4 * raw[:, 2] / 1024)])
    np.testing.assert_allclose(s.events, expected, rtol=1e-6)
    np.testing.assert_array_equal(read_fcs(path, scale=False).events, raw.astype(np.float32))
    assert s.channel_info[1].amplification == (4.0, 1.0)   # f2 = 0 means 1
    assert s.channel_info[0].gain == 3.67



def test_float_channels_under_a_log_pne(tmp_path):
    """Guava CytoSoft writes float HLog channels as log10 values (0..4) under $PnE 4,1,
    next to the same signal's linear HLin channel; a FACSDiva 4.1 export through flowCore
    writes float channels holding linear values under $PnE 4,0. The events tell which."""
    linear = RNG.uniform(1.0, 9000.0, size=200)
    values = np.column_stack([linear, np.log10(linear), RNG.uniform(1.0, 9000.0, 200),
                              RNG.uniform(-5.0, 3000.0, 200)]).astype(np.float32)
    path = write(tmp_path, float_file(values, extra={
        "$P1R": "10000", "$P2R": "10000", "$P2E": "4.0,1.0", "$P3R": "1024", "$P3E": "4,0",
        "$P4R": "10000", "$P4G": "2"}))
    s = read_fcs(path)
    stored = values.astype(np.float64)
    np.testing.assert_allclose(s.events[:, 1], 10.0 ** stored[:, 1], rtol=1e-6)
    np.testing.assert_allclose(s.events[:, 1], linear, rtol=1e-5)   # the HLin twin
    np.testing.assert_array_equal(s.events[:, [0, 2]], values[:, [0, 2]])
    np.testing.assert_allclose(s.events[:, 3], stored[:, 3] / 2, rtol=1e-6)
    np.testing.assert_array_equal(read_fcs(path, scale=False).events, values)
    assert s.channel_info[1].amplification == (4.0, 1.0)
    assert s.channel_info[1].top == 10_000.0
    assert s.channel_info[2].amplification == (0.0, 0.0)        # linear: its $PnR is its top
    assert s.channel_info[2].top == 1024.0
    note = [w for w in s.warnings if w.startswith("float channels under a log $PnE")]
    assert len(note) == 1 and "FL2-A hold log10 values" in note[0] \
        and "FL3-A hold linear values" in note[0]


def test_float_channels_holding_a_log_amplifiers_channel_numbers():
    """A MoFlo's 16-bit list mode re-saved as floats by flowCore (flowCHIC's example
    data): FS Log and FL 4 Log hold whole channel numbers 0..4,095 under $PnE 4,0 and
    $PnR 4096, which are converted as integer data are (flowio reads the same stored
    values); whole numbers beyond $PnR, or fractions, are linear values."""
    flowio = pytest.importorskip("flowio")
    path = REAL_FCS / "quirks" / "moflo_float_channels_subsample.fcs"
    stored = read_fcs(path, scale=False).events.astype(np.float64)
    other = flowio.FlowData(str(path))                       # an independent reader
    np.testing.assert_array_equal(np.reshape(other.events, (-1, other.channel_count)),
                                  stored)
    assert stored.max() == 4095 and np.all(stored == np.round(stored))
    s = read_fcs(path)
    np.testing.assert_allclose(s.events, 10.0 ** (4 * stored / 4096), rtol=1e-6)
    assert [c.amplification for c in s.channel_info] == [(4.0, 1.0)] * 2
    assert s.channel_info[0].top == 10_000.0
    (note,) = [w for w in s.warnings if w.startswith("float channels under a log $PnE")]
    assert "FS.Log, FL.4.Log hold whole channel numbers within 0..$PnR" in note
    from immunomon.fcs.reader import holds_channel_numbers
    assert not holds_channel_numbers(np.array([0.0, 17.0, 5000.0]), 4, 4096)   # past $PnR
    assert not holds_channel_numbers(np.array([0.0, 17.5, 300.0]), 4, 4096)   # fractions
    assert not holds_channel_numbers(np.array([0.0, 1.0, 3.0]), 4, 4096)       # log10 values


def test_timestep(tmp_path):
    values = np.column_stack([np.arange(10, dtype=np.float32), np.ones(10, np.float32)])
    blob = float_file(values, extra={"$TIMESTEP": "0.01"})
    s = read_fcs(write(tmp_path, blob))
    assert s.timestep == 0.01
    np.testing.assert_array_equal(s.events[:, 0], np.arange(10))   # stored units kept


def test_no_gain_on_the_clock(tmp_path):
    """A Time $PnG (FACSDiva's 0.01, an Aurora export's 1.8e-5) is no amplifier: the
    clock keeps its stored units, as flowio and FlowKit keep them, while a fluorescence
    channel's gain still divides its values."""
    values = np.column_stack([np.arange(10, dtype=np.float32) * 100,
                              np.full(10, 50, np.float32)])
    blob = float_file(values, extra={"$TIMESTEP": "0.01", "$P1N": "Time", "$P1G": "0.01",
                                     "$P1R": "1000", "$P2G": "2"})
    s = read_fcs(write(tmp_path, blob))
    np.testing.assert_array_equal(s.events[:, 0], values[:, 0])
    np.testing.assert_array_equal(s.events[:, 1], 25)
    assert s.channel_info[0].top == 1000 and s.seconds_per_time_unit(0) == 0.01


# ----------------------------------------------------------------------------- offsets
def _values():
    return RNG.normal(500, 100, size=(123, 4)).astype(np.float32)


@pytest.mark.parametrize("mode", ["zero", "blank"])
def test_header_data_offsets_zero_or_blank_use_text(tmp_path, mode):
    values = _values()
    s = read_fcs(write(tmp_path, float_file(values, header_data=mode)))
    np.testing.assert_array_equal(s.events, values)


def test_fcs20_without_text_offsets_uses_header(tmp_path):
    values = _values()
    s = read_fcs(write(tmp_path, float_file(values, version="2.0", header_data="header-only")))
    np.testing.assert_array_equal(s.events, values)


def test_header_and_text_disagree_consistent_one_wins(tmp_path):
    values = _values()
    blob = bytearray(float_file(values))
    # Corrupt the HEADER's DATA start so its length no longer matches $TOT.
    true_start = int(blob[26:34])
    blob[26:34] = f"{true_start - 16:>8}".encode()
    s = read_fcs(write(tmp_path, bytes(blob)))
    np.testing.assert_array_equal(s.events, values)
    assert any("disagree" in w and "TEXT" in w for w in s.warnings)


@pytest.mark.parametrize("wrong", ["HEADER", "TEXT"])
def test_data_offsets_inside_text_lose_though_their_length_fits(tmp_path, wrong):
    # An Accuri C6 file's $BEGINDATA/$ENDDATA point 434 bytes back, into its TEXT
    values = _values()
    blob = bytearray(float_file(values))
    start, end = int(blob[26:34]), int(blob[34:42])
    if wrong == "HEADER":
        blob[26:42] = f"{start - 40:>8}{end - 40:>8}".encode()
    else:
        for old in (start, end):
            blob = blob.replace(str(old).zfill(20).encode(), str(old - 40).zfill(20).encode(), 1)
    s = read_fcs(write(tmp_path, bytes(blob)))
    np.testing.assert_array_equal(s.events, values)
    right = "TEXT" if wrong == "HEADER" else "HEADER"
    assert any("disagree" in w and f"used the {right} offsets" in w for w in s.warnings)


def test_text_offsets_wrong_header_wins(tmp_path):
    values = _values()
    blob = float_file(values)
    start = int(blob[26:34])
    wrong = str(start + 8).zfill(20).encode()
    blob = blob.replace(str(start).zfill(20).encode(), wrong, 1)
    s = read_fcs(write(tmp_path, blob))
    np.testing.assert_array_equal(s.events, values)
    assert any("HEADER offsets" in w for w in s.warnings)


def test_accuri_enddata_one_byte_past(tmp_path):
    values = _values()
    s = read_fcs(write(tmp_path, float_file(values, enddata_extra=1)))
    np.testing.assert_array_equal(s.events, values)
    assert any("one byte past" in w for w in s.warnings)


def test_offsets_above_99999999_need_text_keywords(tmp_path):
    """A file whose DATA starts beyond 4 GB: HEADER fields 0, 64-bit $BEGINDATA."""
    values = _values()
    big = float_file(values, header_data="zero")
    start = int(big.split(b"$BEGINDATA/")[1].split(b"/")[0])
    shift = 5_000_000_000
    new_start = str(start + shift).zfill(20).encode()
    new_end = str(start + shift + values.nbytes - 1).zfill(20).encode()
    blob = big.replace(str(start).zfill(20).encode(), new_start, 1)
    blob = blob.replace(str(start + values.nbytes - 1).zfill(20).encode(), new_end, 1)
    path = tmp_path / "big.fcs"
    with open(path, "wb") as fh:
        fh.write(blob[:start])
        fh.seek(start + shift)
        fh.write(blob[start:])
    if os.stat(path).st_blocks * 512 > 100_000_000:  # no sparse files here: do not fill a disk
        path.unlink()
        pytest.skip("filesystem does not support sparse files")
    try:
        s = read_fcs(path)
        np.testing.assert_array_equal(s.events, values)
    finally:
        path.unlink()


# ----------------------------------------------------------------------------- TEXT
@pytest.mark.parametrize("delim", [b"/", b"|", b"\\", b"\x0c", b"*", b"\t"])
def test_any_delimiter(tmp_path, delim):
    values = _values()
    s = read_fcs(write(tmp_path, float_file(values, delim=delim,
                                            extra={"$CYT": "Cyto", "NOTE": "a b c"})))
    np.testing.assert_array_equal(s.events, values)
    assert s.keywords["$CYT"] == "Cyto" and s.keywords["NOTE"] == "a b c"


def test_escaped_delimiters_in_values(tmp_path):
    s = read_fcs(write(tmp_path, float_file(_values(), extra={
        "$FIL": "C:/data/run 1/tube.fcs", "PATH//KEY": "x"})))
    assert s.keywords["$FIL"] == "C:/data/run 1/tube.fcs"


def test_empty_values_written_as_two_delimiters(tmp_path):
    values = _values()
    blob = float_file(values, escape=False, extra={"$SRC": "", "$CYT": "FACSCalibur",
                                                   "COMMENT": ""})
    s = read_fcs(write(tmp_path, blob))
    np.testing.assert_array_equal(s.events, values)
    assert s.keywords["$SRC"] == "" and s.keywords["COMMENT"] == ""
    assert s.keywords["$CYT"] == "FACSCalibur"


@pytest.mark.parametrize("pad", [b" " * 9, b"\0\0"])
def test_text_padding_after_the_final_delimiter(tmp_path, pad):
    # An Applied Biosystems Attune file ends its TEXT "...$TR//$LOST//" and then
    # spaces up to the segment end: padding, not a keyword without a value, and the
    # empty values must still be read as such.
    values = _values()
    blob = float_file(values, escape=False, text_pad=pad,
                      extra={"$INST": "", "$EXP": "Admin", "$COM": "", "$LOST": ""})
    s = read_fcs(write(tmp_path, blob))
    np.testing.assert_array_equal(s.events, values)
    assert s.keywords["$EXP"] == "Admin"
    assert s.keywords["$INST"] == s.keywords["$COM"] == s.keywords["$LOST"] == ""
    assert not any("/" in k for k in s.keywords)
    assert not any("no value" in w for w in s.warnings)

    plain = read_fcs(write(tmp_path, float_file(values, text_pad=pad,
                                                extra={"$CYT": "Attune"}), "plain.fcs"))
    assert plain.keywords["$CYT"] == "Attune" and plain.warnings == []


def test_missing_final_delimiter(tmp_path):
    values = _values()
    s = read_fcs(write(tmp_path, float_file(values, final_delim=False,
                                            extra={"LAST": "value"})))
    assert s.keywords["LAST"] == "value"
    np.testing.assert_array_equal(s.events, values)


def test_keywords_in_any_case(tmp_path):
    values = _values().astype("<f4")
    kw = {"$par": "4", "$tot": str(len(values)), "$datatype": "f", "$byteord": "1,2,3,4",
          "$mode": "L", **{f"$p{n}n": f"ch{n}" for n in range(1, 5)},
          **{f"$P{n}b": "32" for n in range(1, 5)}, **{f"$p{n}R": "1024" for n in range(1, 5)},
          "$p2s": "CD3"}
    s = read_fcs(write(tmp_path, assemble(kw, values.tobytes())))
    np.testing.assert_array_equal(s.events, values)
    assert s.channels[1] == "ch2" and s.markers[1] == "CD3"
    np.testing.assert_array_equal(s["cd3"], values[:, 1])


def test_non_utf8_text_is_decoded_leniently(tmp_path):
    blob = float_file(_values(), encoding="latin-1", extra={"OPERATOR": "Jörg Müller µ"})
    s = read_fcs(write(tmp_path, blob))
    assert s.keywords["OPERATOR"] == "Jörg Müller µ"
    assert "Jörg".encode("latin-1") in s.raw_text
    assert any("Latin-1" in w for w in s.warnings)


def test_supplemental_text_valid_and_binary(tmp_path):
    values = _values()
    stext = b"/EXTRA/from stext/$CYT/ignored/"
    s = read_fcs(write(tmp_path, float_file(values, stext=stext, extra={"$CYT": "Main"})))
    assert s.keywords["EXTRA"] == "from stext" and s.keywords["$CYT"] == "Main"
    garbage = bytes(RNG.integers(0, 256, size=300, dtype=np.uint8))
    s = read_fcs(write(tmp_path, float_file(values, stext=garbage), "g.fcs"))
    np.testing.assert_array_equal(s.events, values)


def test_supplemental_text_holding_an_archive_adds_no_keywords(tmp_path):
    # CyFlow Cube 8 files point $BEGINSTEXT/$ENDSTEXT at a ZIP archive of settings
    values = _values()
    archive = b"PK\x03\x04\x14\x00" + b"config/config_20.xsd/P/x/P" * 20
    blob = float_file(values, stext=archive, extra={"$CYT": "CyFlow Cube 8"})
    s = read_fcs(write(tmp_path, blob))
    np.testing.assert_array_equal(s.events, values)
    plain = read_fcs(write(tmp_path, float_file(values, extra={"$CYT": "CyFlow Cube 8"}), "p.fcs"))
    assert set(s.keywords) - set(plain.keywords) <= {"$BEGINSTEXT", "$ENDSTEXT"}
    assert any("supplemental TEXT" in w and "PK" in w for w in s.warnings)


def test_markers_and_lookup(tmp_path):
    values = _values()
    kw = channel_keywords(["FSC-A", "FITC-A", "PE-A", "APC-A"], [32] * 4,
                          markers=[None, "CD3", "CD4", "CD8"],
                          extra={"$DATATYPE": "F", "$TOT": str(len(values)),
                                 "$BYTEORD": "1,2,3,4"})
    s = read_fcs(write(tmp_path, assemble(kw, values.astype("<f4").tobytes())))
    assert s.markers == (None, "CD3", "CD4", "CD8")
    assert s.channel_index("CD4") == 2 and s.channel_index("PE-A") == 2
    np.testing.assert_array_equal(s["CD8"], values[:, 3])
    with pytest.raises(immunomon.ImmunomonError, match="CD19"):
        s.channel_index("CD19")


# ----------------------------------------------------------------------------- data sets
def test_several_data_sets(tmp_path):
    first, second = _values(), RNG.normal(size=(10, 4)).astype(np.float32)
    one = float_file(first, extra={"$NEXTDATA": "0" * 12, "$FIL": "one"})
    one = one.replace(b"$NEXTDATA/0/", b"$NEXTDATA/" + str(0).zfill(12).encode() + b"/") \
        if b"$NEXTDATA/0/" in one else one
    nextdata = str(len(one)).zfill(12).encode()
    one = one.replace(b"$NEXTDATA/" + b"0" * 12, b"$NEXTDATA/" + nextdata, 1)
    two = float_file(second, extra={"$FIL": "two"})
    path = write(tmp_path, one + two)
    a, b = read_fcs(path), read_fcs(path, dataset=1)
    np.testing.assert_array_equal(a.events, first)
    np.testing.assert_array_equal(b.events, second)
    assert (a.keywords["$FIL"], b.keywords["$FIL"]) == ("one", "two")
    assert read_fcs_metadata(path).n_datasets == 2
    with pytest.raises(FCSFormatError, match="holds 2"):
        read_fcs(path, dataset=2)


# ----------------------------------------------------------------------------- spillover
SPILL_NAMES = ["FITC-A", "PE-A", "APC-A"]
SPILL = np.array([[1, 0.2, 0.01], [0.05, 1, 0.1], [0, 0.03, 1]])


def _spill_file(key, value, names=("FSC-A", *SPILL_NAMES), markers=None):
    values = _values()
    kw = channel_keywords(list(names), [32] * 4, markers=markers, extra={
        "$DATATYPE": "F", "$TOT": str(len(values)), "$BYTEORD": "1,2,3,4", key: value})
    return assemble(kw, values.astype("<f4").tobytes())


def _spill_value(names, m):
    return ",".join([str(len(names)), *names, *(repr(float(v)) for v in m.ravel())])


@pytest.mark.parametrize("key", ["$SPILLOVER", "SPILL", "$SPILL"])
def test_spillover_keywords(tmp_path, key):
    s = read_fcs(write(tmp_path, _spill_file(key, _spill_value(SPILL_NAMES, SPILL))))
    assert s.spillover.detectors == tuple(SPILL_NAMES)
    np.testing.assert_array_equal(s.spillover.matrix, SPILL)


def test_spillover_naming_only_some_or_unknown_channels(tmp_path):
    names = ["PE-A", "BV421-A", "APC-A"]
    s = read_fcs(write(tmp_path, _spill_file("$SPILLOVER", _spill_value(names, SPILL))))
    assert s.spillover.detectors == ("PE-A", "APC-A")
    np.testing.assert_array_equal(s.spillover.matrix, SPILL[np.ix_([0, 2], [0, 2])])
    assert any("BV421-A" in w for w in s.warnings)


def test_spillover_of_a_larger_instrument_warns_once(tmp_path):
    # A BD Influx writes its whole detector list into SPILL, here 5 detectors
    # of which the file records 3: one warning names the 2 missing ones.
    names = ["FSC PAR", *SPILL_NAMES, "PMT 24"]
    matrix = np.eye(5)
    matrix[1:4, 1:4] = SPILL
    s = read_fcs(write(tmp_path, _spill_file("SPILL", _spill_value(names, matrix))))
    assert s.spillover.detectors == tuple(SPILL_NAMES)
    np.testing.assert_array_equal(s.spillover.matrix, SPILL)
    dropped = [w for w in s.warnings if "no channel of this file" in w]
    assert len(dropped) == 1
    assert "2 detector(s)" in dropped[0] and "'FSC PAR'" in dropped[0] and "'PMT 24'" in dropped[0]


def test_spillover_by_marker_name_and_percent(tmp_path):
    blob = _spill_file("SPILL", _spill_value(["CD3", "CD4", "CD8"], SPILL * 100),
                       markers=[None, "CD3", "CD4", "CD8"])
    s = read_fcs(write(tmp_path, blob))
    assert s.spillover.detectors == tuple(SPILL_NAMES)
    np.testing.assert_allclose(s.spillover.matrix, SPILL)


def test_spillover_naming_parameters_by_number(tmp_path):
    # Accuri C6 and Gallios files write "$SPILLOVER/8,3,4,5,6,9,10,11,12,..."
    s = read_fcs(write(tmp_path, _spill_file("$SPILLOVER", _spill_value(["2", "3", "4"], SPILL))))
    assert s.spillover.detectors == tuple(SPILL_NAMES)
    np.testing.assert_array_equal(s.spillover.matrix, SPILL)
    assert any("by parameter number" in w for w in s.warnings)


def test_spillover_numbers_that_are_channel_names_stay_names(tmp_path):
    blob = _spill_file("$SPILLOVER", _spill_value(["2", "3", "4"], SPILL),
                       names=("FSC-A", "4", "3", "2"))
    s = read_fcs(write(tmp_path, blob))
    assert s.spillover.detectors == ("2", "3", "4")   # the channels named so, not $P2N..


def test_comp_without_names(tmp_path):
    value = ",".join(["3", *(repr(float(v)) for v in SPILL.ravel())])
    s = read_fcs(write(tmp_path, _spill_file("$COMP", value)))
    assert s.spillover.detectors == tuple(SPILL_NAMES)
    np.testing.assert_array_equal(s.spillover.matrix, SPILL)


def test_a_short_spillover_does_not_make_the_file_unreadable(tmp_path):
    # MACSQuant FCS 3.1 files declare more spillover values than they hold
    short = ",".join(["3", *SPILL_NAMES, *(repr(float(v)) for v in SPILL.ravel()[:7])])
    blob = _spill_file("$SPILLOVER", short)
    path = write(tmp_path, blob)
    s = read_fcs(path)
    data = np.frombuffer(blob[-123 * 4 * 4:], dtype="<f4").reshape(123, 4)
    np.testing.assert_array_equal(s.events, data)
    assert s.spillover is None and "$SPILLOVER cannot be read" in s.spillover_error
    assert any("$SPILLOVER cannot be read" in w and "without it" in w for w in s.warnings)
    assert read_fcs_metadata(path).spillover_error == s.spillover_error


def test_a_readable_spill_keyword_is_used_when_spillover_is_broken(tmp_path):
    short = ",".join(["3", *SPILL_NAMES, "1", "0.2"])
    blob = _spill_file("$SPILLOVER", short)
    good = _spill_value(SPILL_NAMES, SPILL)
    blob = _spill_file("$SPILLOVER", short).replace(b"/$TOT/", f"/SPILL/{good}/$TOT/".encode())
    s = read_fcs(write(tmp_path, blob))
    assert s.spillover is not None and s.spillover_error is None
    np.testing.assert_array_equal(s.spillover.matrix, SPILL)


# ----------------------------------------------------------------------------- metadata only
def test_metadata_reads_no_data(tmp_path):
    values = _values()
    blob = float_file(values)
    start = int(blob[26:34])
    path = write(tmp_path, blob[:start])  # DATA cut off: metadata still fine, events not
    with pytest.raises(FCSFormatError, match="truncated|beyond"):
        read_fcs(path)
    path = write(tmp_path, blob, "whole.fcs")
    meta = read_fcs_metadata(path)
    assert meta.n_events == 123 and meta.channels[0] == "FL1-A"


# ----------------------------------------------------------------------------- independent reader
def test_agrees_with_flowio_on_compliance_file():
    flowio = pytest.importorskip("flowio")
    path = COMPLIANCE / "data1.fcs"
    assert path.exists(), f"compliance data missing at {path}"
    ours = read_fcs(path, scale=False)
    theirs = flowio.FlowData(str(path)).as_array(preprocess=False)
    np.testing.assert_array_equal(ours.events, theirs.astype(np.float32))
    scaled = flowio.FlowData(str(path)).as_array(preprocess=True)
    np.testing.assert_allclose(read_fcs(path).events[:, :7], scaled[:, :7], rtol=2e-7)
    assert ours.n_events == 13367 and ours.channels[2] == "FL1-H"
    assert ours.markers[2] == "CD4 FITC"


def test_a_real_macsquant_file_with_a_short_spillover_is_read():
    """Miltenyi's MACSQuant writes a $SPILLOVER with fewer values than it declares: the
    events are read (the same values fcsparser reads), the matrix is left out with a
    warning, and gating that needs the file's matrix refuses this file alone."""
    from dataclasses import replace

    from immunomon.errors import FCSFormatError
    from immunomon.gating.template import parse_template

    path = REAL_FCS / "quirks" / "macsquant_31.fcs"
    s = read_fcs(path, scale=False)
    assert s.keywords["$CYT"] == "MACSQuant" and s.n_events == 10_000
    assert s.spillover is None and "43 values, but has 7" in s.spillover_error
    assert any("$SPILLOVER cannot be read" in w for w in s.warnings)
    fcsparser = pytest.importorskip("fcsparser")
    _, frame = fcsparser.parse(str(path), reformat_meta=True)
    np.testing.assert_array_equal(s.events, frame.to_numpy(dtype=np.float32))
    channel = s.channels[8]
    text = ("panel: P\nversion: \"1\"\nmarkers: {X: [" + channel + "]}\n{comp}populations:\n"
            "  - name: X+\n    parent: root\n    dims: [X]\n    method: threshold\n")
    with pytest.raises(FCSFormatError, match="macsquant_31.fcs.*spillover"):
        parse_template(text.replace("{comp}", ""), "p.yaml").strategy_for(s)
    none = parse_template(text.replace("{comp}", "compensation: none\n"), "p.yaml")
    assert len(none.strategy_for(replace(s))[0]) == 1


def test_a_par_larger_than_the_parameters_described_names_par(tmp_path):
    # a damaged $PAR (16 -> 17) read as "$P17B is '', not a number of bits"
    import re
    from testdata import REAL_FCS
    data = (REAL_FCS / "aria_100715_subsample.fcs").read_bytes()
    m = re.search(rb"\$PAR(.)16\1", data)
    damaged = tmp_path / "par.fcs"
    damaged.write_bytes(data[:m.start()] + m.group(0).replace(b"16", b"17") + data[m.end():])
    with pytest.raises(FCSFormatError, match=r"\(keyword \$PAR\): \$PAR says 17 parameters but "
                                             r"the TEXT describes only 16"):
        read_fcs(damaged)


def test_damaged_text_and_a_missing_range_are_said(tmp_path):
    # bytes overwritten inside TEXT (an upload damaged in transit) merged "$P3R" into a
    # garbled keyword name: the file was read and gated with only a note about Latin-1
    from immunomon import qc, write_fcs
    from immunomon.simulate import pbmc_sample

    src = tmp_path / "ok.fcs"
    sample = pbmc_sample(500, seed=1).sample
    write_fcs(src, sample)
    data = bytearray(src.read_bytes())
    at = data.index(b"$P3R")
    data[at + 3:at + 4] = b"\x9f"           # "$P3R" becomes a garbled name
    bad = tmp_path / "damaged.fcs"
    bad.write_bytes(bytes(data))
    warnings = read_fcs(bad).warnings
    assert any("control characters" in w and "looks damaged" in w for w in warnings)
    assert any(w.startswith("$P3R (") and "missing" in w for w in warnings)
    assert "warning" in {f.level for f in qc.reader_flags(warnings)}
    assert not [w for w in read_fcs(src).warnings if "damaged" in w or "missing" in w]


def test_a_keyword_name_padded_with_spaces_is_read_and_said():
    """Partec FloMax pads the TEXT after $ENDTEXT with 200 spaces, which then begin the
    next keyword's name ($DATATYPE); flowio, FlowKit and fcsparser miss that keyword."""
    from immunomon.fcs.text import parse_text

    keywords, warnings = parse_text(b"/$TOT/10/" + b" " * 200 + b"$DATATYPE/F/$PAR/2/", "p.fcs")
    assert keywords == {"$TOT": "10", "$DATATYPE": "F", "$PAR": "2"}
    assert warnings == ["keyword names padded with white space ($DATATYPE): read without "
                        "it; other readers may not find them"]
