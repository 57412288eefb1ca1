"""Reading and writing FCS 2.0-3.2 files."""

from pathlib import Path

from .reader import FCSMetadata, read_fcs, read_fcs_metadata
from .sample import Channel, Sample, Spillover
from .writer import write_fcs

#: Endings of FCS files' names: Beckman Coulter analysers (FC500, Gallios, Navios) write
#: their FCS files as list-mode data, ".LMD".
FCS_SUFFIXES = (".fcs", ".lmd")


def is_fcs_name(path) -> bool:
    """Whether a file's name says it holds FCS data (case aside)."""
    return Path(path).suffix.lower() in FCS_SUFFIXES


def fcs_names_under(folder) -> list[Path]:
    """Every entry under ``folder`` whose name says FCS (recursive, sorted: files, links,
    even a folder so named, for the caller to sort out), hidden files and folders left
    out: an upload in progress written as ``.x.fcs`` and renamed when complete."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if is_fcs_name(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


__all__ = ["Channel", "FCSMetadata", "FCS_SUFFIXES", "Sample", "Spillover", "fcs_names_under",
           "is_fcs_name",
           "read_fcs", "read_fcs_metadata", "write_fcs"]
