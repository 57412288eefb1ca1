"""immunomon: transplant immunomonitoring from FCS files to graft-versus-myeloma statistics.

The public API is what ``__all__`` lists; everything else is internal.
Stage modules (``immunomon.compensation``, ``immunomon.transforms``,
``immunomon.gating``, ``immunomon.chimerism``, ...) are imported on first use
so that ``import immunomon`` stays fast.
"""

from __future__ import annotations

import importlib

from .errors import (
    AnalysisError,
    ChimerismError,
    ClinicalDataError,
    CompensationError,
    FCSFormatError,
    GatingError,
    GatingMLError,
    ImmunomonError,
    TemplateError,
)
from .fcs import Channel, Sample, Spillover, read_fcs, read_fcs_metadata, write_fcs

__version__ = "0.1.0"

_SUBMODULES = {
    "analysis", "chimerism", "clinical", "cohort", "compensation", "fcs", "gating",
    "populations", "qc", "simulate", "transforms",
}

__all__ = [
    "__version__",
    # errors
    "ImmunomonError", "FCSFormatError", "CompensationError", "GatingError",
    "GatingMLError", "TemplateError", "ChimerismError", "ClinicalDataError",
    "AnalysisError",
    # FCS
    "Sample", "Channel", "Spillover", "read_fcs", "read_fcs_metadata", "write_fcs",
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'immunomon' has no attribute {name!r}")
