"""Input checks shared by the analysis modules.

Every failure a user can cause becomes an ``AnalysisError`` naming the column
and what would fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError


def require_columns(data: pd.DataFrame, columns: Iterable[str | None], what: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise AnalysisError(f"{what}: expected a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c is not None and c not in data.columns]
    if missing:
        raise AnalysisError(
            f"{what}: column(s) {', '.join(map(repr, missing))} not found; "
            f"available columns are {', '.join(map(repr, data.columns))}")


def numeric(data: pd.DataFrame, column: str, what: str, *, nonnegative: bool = False,
            allow_nan: bool = False) -> np.ndarray:
    """Column as float64, refusing text, missing values and (optionally) negatives."""
    try:
        values = pd.to_numeric(data[column], errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise AnalysisError(f"{what}: column {column!r} must be numeric ({exc})") from None
    if not allow_nan and np.isnan(values).any():
        rows = list(data.index[np.isnan(values)][:5])
        raise AnalysisError(
            f"{what}: column {column!r} has missing values (rows {rows}); "
            "drop those rows or fill them in")
    if nonnegative and (values[~np.isnan(values)] < 0).any():
        rows = list(data.index[values < 0][:5])
        raise AnalysisError(
            f"{what}: column {column!r} has negative values (rows {rows}); times are "
            "counted from day 0 (transplant) and must be >= 0")
    return values


def indicator(data: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """A 0/1 event indicator (bools accepted)."""
    values = numeric(data, column, what)
    if not np.isin(values, (0.0, 1.0)).all():
        bad = sorted(set(values[~np.isin(values, (0.0, 1.0))]))[:5]
        raise AnalysisError(
            f"{what}: column {column!r} must be 0 (censored) or 1 (event); found {bad}")
    return values.astype(int)


def status_codes(data: pd.DataFrame, column: str, what: str) -> np.ndarray:
    """Integer status for competing risks: 0 censored, 1, 2, ... event causes."""
    values = numeric(data, column, what)
    if (values != np.round(values)).any() or (values < 0).any():
        raise AnalysisError(
            f"{what}: column {column!r} must hold 0 for censored and positive integers "
            "for event causes")
    return values.astype(int)


def check_conf_level(conf_level: float) -> float:
    if not 0 < conf_level < 1:
        raise AnalysisError(f"conf_level must be between 0 and 1, got {conf_level}")
    return float(conf_level)


def as_list(columns: str | Sequence[str] | None) -> list[str]:
    if columns is None:
        return []
    if isinstance(columns, str):
        return [columns]
    return list(columns)
