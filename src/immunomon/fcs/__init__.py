"""Reading and writing FCS 2.0-3.2 files."""

from .reader import FCSMetadata, read_fcs, read_fcs_metadata
from .sample import Channel, Sample, Spillover
from .writer import write_fcs

__all__ = ["Channel", "FCSMetadata", "Sample", "Spillover", "read_fcs",
           "read_fcs_metadata", "write_fcs"]
