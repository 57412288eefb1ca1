"""Saving and loading a cohort: one NetCDF-4 file or one Zarr store with everything in it.

The dataset is the root group. Each side table is a group ``tables/<name>``
holding one variable per column on a ``row`` dimension: column ``k`` is the
variable ``c<k>`` with attributes ``name`` (the column name) and
``pandas_dtype``; a text or nullable column with missing values also has a
mask ``m<k>`` (1 = missing). So any NetCDF or Zarr reader sees plain arrays,
and :func:`load` restores the exact DataFrame. Writes go to a temporary name
beside the target and are renamed into place when complete.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..atomic import atomic_dir, atomic_path
from ..errors import ImmunomonError
from .model import TABLE_NAMES, Cohort

__all__ = ["save", "load", "table_to_dataset", "dataset_to_table", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_NC_ENGINE = "h5netcdf"


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".nc":
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    raise ImmunomonError(f"{path}: a cohort is saved as .nc (NetCDF) or .zarr (Zarr); "
                         "choose a file name with one of these extensions")


# ----------------------------------------------------------------------------- tables
def table_to_dataset(df: pd.DataFrame) -> xr.Dataset:
    """One DataFrame as a Dataset of plain arrays on ``row`` (see the module docstring)."""
    data = {}
    for k, col in enumerate(df.columns):
        s = df[col]
        dtype = str(s.dtype)
        null = s.isna().to_numpy()
        attrs = {"name": str(col), "pandas_dtype": dtype}
        if dtype.startswith("datetime64"):
            values = s.to_numpy(dtype="datetime64[ns]")
            null = np.zeros(len(s), dtype=bool)      # NaT is stored as such
        elif dtype == "bool":
            values = s.to_numpy(dtype=np.int8)
        elif s.dtype.kind in "iuf" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
            values = s.to_numpy()
            null = np.zeros(len(s), dtype=bool)      # NaN is stored as such
        elif dtype in ("Int64", "Int32", "Int16", "Int8", "Float64", "boolean"):
            values = s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        else:
            values = np.array(["" if n else str(v) for v, n in zip(s, null)], dtype=object) \
                if len(s) else np.array([], dtype=object)
        data[f"c{k}"] = ("row", values, attrs)
        if null.any():
            data[f"m{k}"] = ("row", null.astype(np.int8), {"mask_of": str(col)})
    return xr.Dataset(data, attrs={"columns": json.dumps([str(c) for c in df.columns])})


def dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    """The inverse of :func:`table_to_dataset`."""
    columns = json.loads(ds.attrs["columns"])
    out = {}
    for k, name in enumerate(columns):
        var = ds[f"c{k}"]
        dtype = var.attrs["pandas_dtype"]
        values = var.to_numpy()
        null = ds[f"m{k}"].to_numpy().astype(bool) if f"m{k}" in ds else \
            np.zeros(len(values), dtype=bool)
        if dtype.startswith("datetime64"):
            s = pd.Series(values.astype("datetime64[ns]")).astype(dtype)
        elif dtype == "bool":
            s = pd.Series(values.astype(bool))
        elif dtype in ("Int64", "Int32", "Int16", "Int8", "Float64", "boolean"):
            s = pd.Series(values.astype(float)).astype("Float64")
            s[null] = pd.NA
            s = s.astype(dtype)
        elif dtype == "object" or dtype == "str" or dtype == "string" or dtype == "category":
            s = pd.Series([None if n else str(v) for v, n in zip(values, null)], dtype=object)
            if dtype != "object":
                s = s.astype(dtype)
        else:
            s = pd.Series(values.astype(dtype))
        out[name] = s
    return pd.DataFrame(out, columns=columns) if columns else pd.DataFrame()


# ----------------------------------------------------------------------------- save
def _root(cohort: Cohort) -> xr.Dataset:
    ds = cohort.dataset.copy()
    ds.attrs["immunomon_cohort_format"] = FORMAT_VERSION
    ds.attrs["tables"] = json.dumps(list(TABLE_NAMES))
    return ds


def _write_netcdf(cohort: Cohort, target: str) -> None:
    _root(cohort).to_netcdf(target, mode="w", engine=_NC_ENGINE)
    for name, df in cohort.tables().items():
        table_to_dataset(df).to_netcdf(target, mode="a", engine=_NC_ENGINE,
                                       group=f"tables/{name}")


def _write_zarr(cohort: Cohort, target: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # Zarr 3 string/consolidation notes
        _root(cohort).to_zarr(target, mode="w", consolidated=False)
        for name, df in cohort.tables().items():
            table_to_dataset(df).to_zarr(target, mode="w", group=f"tables/{name}",
                                         consolidated=False)


def save(cohort: Cohort, path) -> Path:
    """Write the cohort to ``path`` (``.nc`` or ``.zarr``), replacing it only when complete."""
    path = Path(path)
    kind = _format(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if kind == "netcdf":
        with atomic_path(path) as tmp:
            _write_netcdf(cohort, tmp)
        return path
    with atomic_dir(path) as tmp:
        _write_zarr(cohort, str(tmp))
    return path


# ----------------------------------------------------------------------------- load
def _objects(ds: xr.Dataset) -> xr.Dataset:
    """Text arrays as object arrays of str, whichever format they came from."""
    def fix(var):
        kind = var.dtype.kind
        if kind in "UST" or (kind == "O"):
            return var.copy(data=np.array([str(v) for v in var.values.ravel()],
                                          dtype=object).reshape(var.shape))
        return var
    ds = ds.assign_coords({k: fix(v) for k, v in ds.coords.items()})
    return ds.assign({k: fix(v) for k, v in ds.data_vars.items()})


def _open(path: Path, kind: str, group: str | None) -> xr.Dataset:
    if kind == "netcdf":
        with xr.open_dataset(path, engine=_NC_ENGINE, group=group,
                             decode_timedelta=False) as ds:
            return ds.load()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with xr.open_zarr(path, group=group, consolidated=False,
                          decode_timedelta=False) as ds:
            return ds.load()


def load(path) -> Cohort:
    """Read a cohort written by :func:`save`."""
    path = Path(path)
    kind = _format(path)
    if not path.exists():
        raise ImmunomonError(f"{path}: no such cohort file")
    try:
        root = _open(path, kind, None)
    except (OSError, ValueError, KeyError) as exc:
        raise ImmunomonError(f"{path}: not a readable cohort ({exc})") from None
    if "immunomon_cohort_format" not in root.attrs:
        raise ImmunomonError(f"{path}: not an immunomon cohort (no immunomon_cohort_format "
                             "attribute); build one with `immunomon cohort build`")
    names = json.loads(root.attrs.get("tables", "[]"))
    tables = {}
    for name in TABLE_NAMES:
        tables[name] = dataset_to_table(_open(path, kind, f"tables/{name}")) \
            if name in names else pd.DataFrame()
    root = _objects(root)
    root.attrs.pop("immunomon_cohort_format")
    root.attrs.pop("tables", None)
    for var in root.variables.values():
        var.encoding = {}
    return Cohort(root, **tables)
