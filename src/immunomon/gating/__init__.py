"""Gates, gating hierarchies and Gating-ML 2.0 import/export.

Build a strategy in Python::

    from immunomon.gating import GatingStrategy, RectangleGate, Dimension
    s = GatingStrategy()
    s.add(RectangleGate("T_cells", [Dimension("CD3", "FCS")], [(1000, None)]))
    result = s.apply(sample)
    result.mask("T_cells"), result.count("T_cells")

or read one with ``load_gatingml(path)`` and write it with ``save_gatingml``.
FlowJo workspaces: ``load_flowjo(path)``, ``compare_counts(workspace, files)``,
``save_flowjo(workspace, path)`` (see ``immunomon.gating.flowjo``).
"""

from .dimensions import (FCS, UNCOMPENSATED, Dimension, EventValues, FRatio, RatioDimension,
                         SpectrumMatrix)
from .gatingml import load_gatingml, save_gatingml
from .gates import (BooleanGate, Divider, EllipsoidGate, GateReference, PolygonGate, Quadrant,
                    QuadrantGate, RectangleGate)
from .masks import divider_bins, ellipsoid_mask, polygon_mask, range_mask, rectangle_mask
from .strategy import GatingResult, GatingStrategy

__all__ = [
    "GatingStrategy", "GatingResult", "load_gatingml", "save_gatingml",
    "RectangleGate", "PolygonGate", "EllipsoidGate", "QuadrantGate", "Divider", "Quadrant",
    "BooleanGate", "GateReference",
    "Dimension", "RatioDimension", "FRatio", "SpectrumMatrix", "EventValues",
    "UNCOMPENSATED", "FCS",
    "range_mask", "rectangle_mask", "polygon_mask", "ellipsoid_mask", "divider_bins",
    "load_flowjo", "save_flowjo", "compare_counts", "workspace_from_results",
    "FlowJoBiex", "FlowJoLog", "FlowJoLinear",
]

# FlowJo support imports pandas: loaded on first use
_FLOWJO = {"load_flowjo", "save_flowjo", "compare_counts", "workspace_from_results",
           "FlowJoBiex", "FlowJoLog", "FlowJoLinear"}


def __getattr__(name):
    if name in _FLOWJO:
        from . import flowjo
        return getattr(flowjo, name)
    raise AttributeError(f"module 'immunomon.gating' has no attribute {name!r}")
