"""ABIF .fsa metadata, on a small ABIF file built here byte by byte."""

import struct

import pytest

from immunomon.errors import ChimerismError

pytest.importorskip("Bio")

from immunomon.chimerism.abif import list_fsa_runs, read_fsa_metadata  # noqa: E402


def pstring(text):
    data = text.encode()
    return 18, 1, bytes([len(data)]) + data


def cstring(text):
    return 19, 1, text.encode() + b"\x00"


def abif(tags):
    """An ABIF file: 128-byte header, the tag data, then the directory.

    Each tag is (name, number, element type, element size, payload); data of 4 bytes
    or less is stored inside its directory entry, as the format requires.
    """
    data = b""
    entries = []
    for name, number, etype, esize, payload in tags:
        if len(payload) <= 4:
            offset_field = payload.ljust(4, b"\x00")
        else:
            offset_field = struct.pack(">I", 128 + len(data))
            data += payload
        entries.append(struct.pack(">4sIHHII", name.encode(), number, etype, esize,
                                   len(payload) // esize, len(payload))
                       + offset_field + b"\x00\x00\x00\x00")
    dir_offset = 128 + len(data)
    header = b"ABIF" + struct.pack(">H4sIHHIII", 101, b"tdir", 1, 1023, 28, len(entries),
                                   28 * len(entries), dir_offset) + b"\x00" * 4
    return header.ljust(128, b"\x00") + data + b"".join(entries)


def tag(name, number, kind):
    etype, esize, payload = kind
    return (name, number, etype, esize, payload)


FSA = abif([
    tag("SMPL", 1, pstring("P07_CD3_2024-05-02")),
    tag("TUBE", 1, pstring("B03")),
    tag("CTID", 1, cstring("PLATE-0042")),
    tag("MCHN", 1, pstring("3500xL-123")),
    tag("DySN", 1, pstring("J6")),
    tag("DyeN", 1, pstring("6-FAM")),
    tag("DyeN", 2, pstring("VIC")),
    ("RUND", 1, 10, 4, struct.pack(">hBB", 2024, 5, 2)),
    ("LANE", 1, 4, 2, struct.pack(">h", 11)),
    ("DATA", 1, 4, 2, struct.pack(">5h", 1, 2, 3, 4, 5)),
    ("DATA", 2, 4, 2, struct.pack(">5h", 1, 2, 3, 4, 5)),
])


def test_read_fsa_metadata(tmp_path):
    p = tmp_path / "P07_CD3.fsa"
    p.write_bytes(FSA)
    meta = read_fsa_metadata(p)
    assert meta["file"] == "P07_CD3.fsa"
    assert meta["sample"] == "P07_CD3_2024-05-02"
    assert meta["well"] == "B03" and meta["plate_id"] == "PLATE-0042"
    assert meta["instrument"] == "3500xL-123" and meta["dye_set"] == "J6"
    assert meta["run_date"] == "2024-05-02" and meta["capillary"] == 11
    assert meta["dyes"] == ["6-FAM", "VIC"] and meta["channels"] == 2
    table = list_fsa_runs([p, p])
    assert list(table["well"]) == ["B03", "B03"] and table.loc[0, "dyes"] == "6-FAM,VIC"


def test_malformed_fsa(tmp_path):
    p = tmp_path / "bad.fsa"
    p.write_bytes(b"NOPE" + FSA[4:])
    with pytest.raises(ChimerismError, match="not an ABIF file"):
        read_fsa_metadata(p)
    p.write_bytes(FSA[:140])
    with pytest.raises(ChimerismError, match="bad.fsa"):
        read_fsa_metadata(p)


def test_sequencing_trace_is_refused_by_name(tmp_path):
    # A Sanger .ab1 is the same container as an .fsa, with four base channels and base
    # calls (PBAS); it must be refused as such, not read as a 4-dye STR run.
    from immunomon.chimerism.trace import read_trace

    scans = struct.pack(">200h", *([100] * 200))
    channels = [(f"DATA", i, 4, 2, scans) for i in (1, 2, 3, 4)]
    fsa = abif(channels)
    path = tmp_path / "run.fsa"
    path.write_bytes(fsa)
    assert read_trace(path).data.shape == (4, 200)
    ab1 = tmp_path / "read.ab1"
    ab1.write_bytes(abif(channels + [tag("PBAS", 2, cstring("ACGTNACGT"))]))
    with pytest.raises(ChimerismError, match=r"read\.ab1: a sequencing trace") as err:
        read_trace(ab1)
    assert "\n" not in str(err.value)
