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


def lst_files_one_swapped(folder: Path) -> None:
    """Four copies of the committed EuroFlow LST export (``lst_0`` .. ``lst_3``) and one,
    ``swapped``, whose CD4+CD20 and CD38 channels trade names, as four exports whose
    channels were listed out of order did: gated by name, its T cells come out mostly
    DN T."""
    import dataclasses

    import immunomon

    sample = immunomon.read_fcs(DATA / "real" / "euroflow_lst_3.fcs")
    for k in range(4):
        immunomon.write_fcs(folder / f"lst_{k}.fcs", sample)
    channels = list(sample.channel_info)
    cd4, cd38 = (next(i for i, c in enumerate(channels) if c.marker == m)
                 for m in ("CD4+CD20", "CD38"))
    channels[cd4], channels[cd38] = (
        dataclasses.replace(channels[cd4], name=channels[cd38].name, marker="CD38"),
        dataclasses.replace(channels[cd38], name=channels[cd4].name, marker="CD4+CD20"))
    immunomon.write_fcs(folder / "swapped.fcs",
                        dataclasses.replace(sample, channel_info=tuple(channels)))
