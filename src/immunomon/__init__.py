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
    FlowJoError,
    GatingError,
    GatingMLError,
    ImmunomonError,
    TemplateError,
    TransformError,
)
from .fcs import Channel, Sample, Spillover, read_fcs, read_fcs_metadata, write_fcs

__version__ = "0.1.0"

_SUBMODULES = {
    "analysis", "chimerism", "clinical", "cohort", "compat", "compensation", "export", "fcs",
    "gating", "pipeline", "populations", "qc", "report", "simulate", "transforms",
}

# Public functions of the stage modules, importable from the top level; each
# module is imported on first use.
_LAZY = {
    "compensate": "compensation",
    "load_template": "gating.template", "gate_sample": "gating.run",
    "gate_files": "gating.run", "load_gatingml": "gating", "save_gatingml": "gating",
    "load_flowjo": "gating.flowjo", "save_flowjo": "gating.flowjo",
    "population_statistics": "populations",
    "read_clinical": "clinical", "ClinicalData": "clinical",
    "chimerism_from_exports": "chimerism", "compute_chimerism": "chimerism",
    "ddpcr_chimerism": "chimerism", "qpcr_chimerism": "chimerism",
    "to_anndata": "export",
}

__all__ = [
    "__version__",
    # errors
    "ImmunomonError", "FCSFormatError", "CompensationError", "GatingError",
    "GatingMLError", "FlowJoError", "TemplateError", "ChimerismError", "ClinicalDataError",
    "AnalysisError", "TransformError",
    # FCS
    "Sample", "Channel", "Spillover", "read_fcs", "read_fcs_metadata", "write_fcs",
    # stages
    *_LAZY,
]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'immunomon' has no attribute {name!r}")


def __dir__():
    # the lazy names and stage modules too: dir(immunomon) and tab completion list
    # gate_sample, which an analyst looking for it had not found there
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
