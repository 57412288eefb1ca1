"""Paths of the test data committed under tests/data (nothing outside the repository)."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
COMPLIANCE = DATA / "gatingml2-compliance"      # ISAC Gating-ML 2.0 suite (FlowKit copy)
REAL_FCS = DATA / "fcs"                          # small real files from other instruments


def unpacked(folder: Path, pattern: str, into: Path) -> dict:
    """The xz-compressed files of ``folder`` matching ``pattern`` (``*.fsa.xz``),
    decompressed into ``into``: name without suffixes -> path."""
    import lzma

    out = {}
    for packed in sorted(folder.glob(pattern)):
        path = into / packed.name[:-3]
        path.write_bytes(lzma.decompress(packed.read_bytes()))
        out[path.stem] = path
    return out
