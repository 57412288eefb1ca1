"""What an ABIF ``.fsa`` (or ``.hid``) run file contains: sample, well, plate, instrument, dyes.

Only the metadata is returned; chimerism is computed from the sizing exports.
Biopython reads the ABIF directory and is imported only when this is called.
"""

from __future__ import annotations

import io
import os
import struct

import pandas as pd

from ..errors import ChimerismError
from .trace import abif_directory

# ABIF tag -> our field name.
_TAGS = {
    "SMPL1": "sample", "TUBE1": "well", "CTID1": "plate_id", "CTNM1": "plate_name",
    "RunN1": "run_name", "MCHN1": "instrument", "MODL1": "model", "DySN1": "dye_set",
    "LANE1": "capillary", "RUND1": "run_date", "RUNT1": "run_time",
    "StdF1": "size_standard", "LIMS1": "lims_id",
}


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").rstrip("\x00").strip()
    return value


def read_fsa_metadata(path) -> dict:
    """The run metadata of one ``.fsa`` file as a dict (missing tags are None)."""
    path = os.fspath(path)
    try:
        from Bio import SeqIO
    except ImportError:
        raise ChimerismError("reading .fsa files needs Biopython: pip install biopython") \
            from None
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:4] != b"ABIF":
            raise ChimerismError(f"{path}: not an ABIF file (no 'ABIF' signature at "
                                 f"byte 0)")
        # An encrypted 3500 .hid is read from its unencrypted copy of the directory.
        raw, _ = abif_directory(raw)
        record = SeqIO.read(io.BytesIO(raw), "abi")
    except ChimerismError:
        raise
    except OSError as exc:
        raise ChimerismError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, struct.error, AssertionError, UnicodeDecodeError, EOFError) as exc:
        raise ChimerismError(f"{path}: truncated or malformed ABIF file ({exc})") from None
    raw = record.annotations.get("abif_raw", {})
    meta = {"file": os.path.basename(path)}
    for tag, field in _TAGS.items():
        meta[field] = _text(raw.get(tag))
    # 3500 runs keep the name in SpNm1 and the sample type ("Sample") in SMPL1
    meta["sample"] = _text(raw.get("SpNm1")) or meta["sample"]
    meta["dyes"] = [_text(raw[f"DyeN{i}"]) for i in range(1, 9) if f"DyeN{i}" in raw]
    meta["channels"] = sum(1 for k in raw if k in ("DATA1", "DATA2", "DATA3", "DATA4",
                                                   "DATA105", "DATA106"))
    return meta


def list_fsa_runs(paths) -> pd.DataFrame:
    """One row of metadata per ``.fsa`` file."""
    rows = [read_fsa_metadata(p) for p in paths]
    for row in rows:
        row["dyes"] = ",".join(d for d in row["dyes"] if d)
    return pd.DataFrame(rows)
