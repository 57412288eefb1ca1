"""Hostile FCS files: mutated HEADERs, TEXT, offsets and lengths.

Whatever the mutation, reading either succeeds or raises FCSFormatError naming
the file, and never allocates more than a small multiple of the file's size
(measured with tracemalloc, which sees numpy's buffers; no clock involved).
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from immunomon import FCSFormatError, read_fcs, read_fcs_metadata

from fcsbuild import assemble, channel_keywords, pack_bits, pack_uint

RNG = np.random.default_rng(3)


def _bases() -> dict[str, bytes]:
    f = RNG.normal(100, 30, size=(40, 3)).astype("<f4")
    ints = RNG.integers(0, 1024, size=(40, 3))
    spill = "2,B,C,1,0.1,0.2,1"
    float_kw = channel_keywords(["A", "B", "C"], [32] * 3, markers=[None, "CD3", "CD4"], extra={
        "$DATATYPE": "F", "$TOT": "40", "$BYTEORD": "1,2,3,4", "$SPILLOVER": spill,
        "$NEXTDATA": "0"})
    int_kw = channel_keywords(["A", "B", "C"], [16] * 3, ranges=[1024] * 3, extra={
        "$DATATYPE": "I", "$TOT": "40", "$BYTEORD": "4,3,2,1", "$P2E": "4,0", "$P1G": "2"})
    packed_kw = channel_keywords(["A", "B", "C"], [10] * 3, ranges=[1024] * 3, extra={
        "$DATATYPE": "I", "$TOT": "40", "$BYTEORD": "1,2,3,4"})
    ascii_kw = channel_keywords(["A", "B", "C"], ["*"] * 3, extra={
        "$DATATYPE": "A", "$TOT": "40", "$BYTEORD": "1,2,3,4"})
    ascii_data = " ".join(str(v) for v in ints.ravel().tolist()).encode()
    second = assemble(float_kw, f.tobytes())
    first = assemble({**float_kw, "$NEXTDATA": str(0).zfill(10)}, f.tobytes())
    first = first.replace(b"$NEXTDATA/" + b"0" * 10, b"$NEXTDATA/" + str(len(first)).zfill(10)
                          .encode(), 1)
    return {
        "float": assemble(float_kw, f.tobytes()),
        "int16": assemble(int_kw, pack_uint(ints, 2, (2, 1)), version="2.0"),
        "packed": assemble(packed_kw, pack_bits(ints, [10] * 3, True), version="2.0"),
        "ascii": assemble(ascii_kw, ascii_data, version="2.0"),
        "multi": first + second,
    }


BASES = _bases()
KEYS = ["$TOT", "$PAR", "$P1B", "$P2B", "$BEGINDATA", "$ENDDATA", "$DATATYPE", "$BYTEORD",
        "$P1R", "$P2E", "$NEXTDATA", "$SPILLOVER", "$P1N", "$BEGINSTEXT", "$P3DATATYPE"]
NASTY = st.one_of(
    st.integers(-10, 10 ** 20).map(str),
    st.sampled_from(["", " ", "-1", "1e300", "nan", "inf", "*", "I", "F", "D", "A", "X",
                     "4,3,2,1", "1,2", "3,1", "0,0", "9,9", "1,2,3,4,5,6,7,8,9",
                     "99999999999999999999", "2,A,B,1", "3,A,B,C,1,2,3"]),
    st.text(max_size=12),
)


def _set_keyword(blob: bytes, key: str, value: str) -> bytes:
    pattern = re.compile(re.escape(key.encode()) + rb"/[^/]*/")
    return pattern.sub(lambda m: key.encode() + b"/" + value.encode("utf-8", "replace")
                       .replace(b"/", b"//") + b"/", blob, count=1)


@st.composite
def mutated(draw):
    blob = bytearray(BASES[draw(st.sampled_from(sorted(BASES)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "header", "keyword", "insert",
                                     "delete", "delimiter"]))
        if kind == "flip" and blob:
            i = draw(st.integers(0, len(blob) - 1))
            blob[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del blob[draw(st.integers(0, len(blob))):]
        elif kind == "header":
            field = draw(st.integers(0, 5))
            value = draw(st.one_of(st.integers(0, 99_999_999).map(lambda v: f"{v:>8}"),
                                   st.text(min_size=8, max_size=8).map(
                                       lambda t: t.encode("utf-8", "replace")[:8].decode(
                                           "utf-8", "replace").ljust(8)[:8])))
            raw = value.encode("utf-8", "replace")[:8].ljust(8)
            blob[10 + 8 * field: 18 + 8 * field] = raw
        elif kind == "keyword":
            blob = bytearray(_set_keyword(bytes(blob), draw(st.sampled_from(KEYS)),
                                          draw(NASTY)))
        elif kind == "insert":
            i = draw(st.integers(0, len(blob)))
            blob[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and blob:
            i = draw(st.integers(0, len(blob) - 1))
            del blob[i:i + draw(st.integers(1, 16))]
        elif kind == "delimiter" and len(blob) > 58:
            text_start = 58
            blob[text_start] = draw(st.integers(0, 255))
    return bytes(blob)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blob=mutated())
def test_mutated_files_raise_only_fcs_format_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "m.fcs"
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        for reader in (read_fcs_metadata, read_fcs):
            try:
                result = reader(path)
            except FCSFormatError as exc:
                assert str(path) in str(exc)
            else:
                if reader is read_fcs:
                    assert result.events.dtype == np.float32
                    assert result.events.shape[1] == len(result.channels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(blob) + 4_000_000, f"allocated {peak} bytes for a {len(blob)}-byte file"


@pytest.mark.parametrize("declared", ["40000000000", "999999999999999999"])
def test_declared_event_count_the_file_cannot_back(tmp_path, declared):
    blob = _set_keyword(BASES["float"], "$TOT", declared)
    path = tmp_path / "huge.fcs"
    path.write_bytes(blob)
    tracemalloc.start()
    with pytest.raises(FCSFormatError, match="declares more events than the file can hold") \
            as info:
        read_fcs(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_000_000
    message = str(info.value)
    assert "huge.fcs" in message and f"$TOT = {int(declared):,}" in message
    assert "truncated" not in message
    # what the DATA segment holds: 40 events of 3 float32 channels
    assert "holds 480 bytes (40 events)" in message


def test_clear_errors_for_common_failures(tmp_path):
    cases = {
        "empty.fcs": b"",
        "notfcs.fcs": b"PK\x03\x04" + b"\0" * 100,
        "cut.fcs": BASES["float"][:30],
        "note.fcs": b"this is wrong\n",       # shorter than a HEADER, and no FCS at all
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(FCSFormatError, match="truncated"):
        read_fcs(tmp_path / "empty.fcs")
    with pytest.raises(FCSFormatError, match="not an FCS file"):
        read_fcs(tmp_path / "notfcs.fcs")
    with pytest.raises(FCSFormatError, match="truncated"):
        read_fcs(tmp_path / "cut.fcs")
    with pytest.raises(FCSFormatError, match=r"not an FCS file: it is 14 bytes long and "
                                             r"starts with b'this is wron'"):
        read_fcs(tmp_path / "note.fcs")
    with pytest.raises(FCSFormatError, match="no such file"):
        read_fcs(tmp_path / "missing.fcs")
    with pytest.raises(FCSFormatError, match="folder"):
        read_fcs(tmp_path)
    bad_type = _set_keyword(BASES["float"], "$DATATYPE", "Q")
    (tmp_path / "q.fcs").write_bytes(bad_type)
    with pytest.raises(FCSFormatError, match=r"\$DATATYPE"):
        read_fcs(tmp_path / "q.fcs")
