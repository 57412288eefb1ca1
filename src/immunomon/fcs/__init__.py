"""Reading and writing FCS 2.0-3.2 files."""

import re
from pathlib import Path

from .reader import FCSMetadata, read_fcs, read_fcs_metadata
from .sample import Channel, Sample, Spillover
from .writer import write_fcs

#: Endings of FCS files' names: Beckman Coulter analysers (FC500, Gallios, Navios) write
#: their FCS files as list-mode data, ".LMD".
FCS_SUFFIXES = (".fcs", ".lmd")

#: an FCS file's first bytes: the version of its HEADER
_FCS_HEADER = re.compile(rb"FCS\d\.\d")


def is_fcs_name(path) -> bool:
    """Whether a file's name says it holds FCS data (case aside)."""
    return Path(path).suffix.lower() in FCS_SUFFIXES


def is_legacy_fcs(path) -> bool:
    """A file named as older instruments and programs name theirs, with no ending or a
    number for one (CellQuest's ``TUBE.001``, a CyFlow's ``08.328``), whose first bytes
    say FCS. Other endings are never opened: an upload in progress named ``x.fcs.part``
    is not taken."""
    path = Path(path)
    if path.suffix and not path.suffix[1:].isdigit():
        return False
    try:
        with open(path, "rb") as handle:
            return _FCS_HEADER.fullmatch(handle.read(6)) is not None
    except OSError:
        return False


def fcs_files_under(folder) -> list[Path]:
    """Every entry under ``folder`` whose name says FCS (recursive, sorted: files, links,
    even a folder so named, for the caller to sort out) or that is a file of FCS named as
    older instruments name theirs (``is_legacy_fcs``), hidden files and folders left out:
    an upload in progress written as ``.x.fcs`` and renamed when complete."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and (is_fcs_name(p) or (p.is_file() and is_legacy_fcs(p))))


__all__ = ["Channel", "FCSMetadata", "FCS_SUFFIXES", "Sample", "Spillover", "fcs_files_under",
           "is_fcs_name", "is_legacy_fcs",
           "read_fcs", "read_fcs_metadata", "write_fcs"]
