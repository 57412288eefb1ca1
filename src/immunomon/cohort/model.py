"""The :class:`Cohort`: the dataset and the tables that travel with it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import pandas as pd
import xarray as xr

__all__ = ["Cohort", "TABLE_NAMES"]

TABLE_NAMES = ("endpoints", "intervals", "events", "adverse_events", "samples")


@dataclass
class Cohort:
    """A longitudinal cohort (see ``docs/cohort.md``).

    ``dataset``: the ``xarray.Dataset`` on ``patient x timepoint x population
    x marker x lineage``. Beside it, one row per patient (``endpoints``), per
    covariate interval (``intervals``: patient_id, start, stop, covariate,
    value), per clinical event (``events``: patient_id, day, event, value),
    per adverse event (``adverse_events``) and per manifest sample
    (``samples``, with ``day`` and ``status``: used, duplicate, no result, not
    placed).
    """

    dataset: xr.Dataset
    endpoints: pd.DataFrame
    intervals: pd.DataFrame
    events: pd.DataFrame
    adverse_events: pd.DataFrame
    samples: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ds(self) -> xr.Dataset:
        return self.dataset

    @property
    def warnings(self) -> list[str]:
        """What the build reported: duplicates, samples without results, ..."""
        return json.loads(self.dataset.attrs.get("warnings", "[]"))

    def tables(self) -> dict[str, pd.DataFrame]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dataset"}

    def save(self, path):
        """Write to ``.nc`` (NetCDF-4) or ``.zarr``, atomically; returns the path."""
        from .store import save
        return save(self, path)

    @classmethod
    def load(cls, path) -> "Cohort":
        from .store import load
        return load(path)

    def summary(self) -> dict:
        from .summary import summarise
        return summarise(self)
