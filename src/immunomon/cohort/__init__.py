"""The longitudinal cohort: samples, populations, chimerism and clinical course in one
``xarray.Dataset`` (see ``docs/cohort.md``).

- :func:`read_manifest` reads and validates the sample manifest CSV;
  :func:`check_manifest_files` lists files on disk that it does not name and
  listed files that are missing.
- :func:`build` assembles a :class:`Cohort` from the manifest and the result
  tables; :func:`build_from_files` does it from the files and folders that
  ``immunomon gate``, ``immunomon chimerism`` and the clinical CSVs leave.
- :meth:`Cohort.save` / :func:`load` write and read one NetCDF (``.nc``) file
  or Zarr (``.zarr``) store holding the dataset and its side tables.
"""

from .build import PATIENT_VARIABLES, UNITS, build, event_table
from .inputs import (
    GatingOutputs, build_from_files, file_sha256, read_chimerism_folder, read_gating_folder,
)
from .manifest import (
    MANIFEST_COLUMNS, add_days, check_manifest_files, normalise_lineage, read_manifest,
)
from .model import TABLE_NAMES, Cohort
from .store import load, save
from .summary import format_summary, summarise

__all__ = [
    "Cohort", "build", "build_from_files", "load", "save",
    "read_manifest", "check_manifest_files", "add_days", "normalise_lineage",
    "read_gating_folder", "read_chimerism_folder", "GatingOutputs", "file_sha256",
    "event_table", "summarise", "format_summary",
    "MANIFEST_COLUMNS", "TABLE_NAMES", "UNITS", "PATIENT_VARIABLES",
]
