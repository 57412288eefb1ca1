"""FlowJo workspaces: read, apply to FCS files, compare counts, write back."""

from .apply import (AppliedSample, apply_sample, apply_workspace, compare_counts,
                    compare_template, f1_score, match_files)
from .model import (Compensation, Population, WorkspaceSample, WspBoolean, WspEllipse,
                    WspPolygon, WspRectangle)
from .reader import Workspace, load_flowjo
from .gml import gatingml_strategy, save_sample_gatingml
from .scales import FlowJoBiex, FlowJoLinear, FlowJoLog, FlowJoTable, biex_table
from .writer import save_flowjo, workspace_from_results

__all__ = [
    "load_flowjo", "Workspace", "WorkspaceSample", "Population", "Compensation",
    "WspRectangle", "WspPolygon", "WspEllipse", "WspBoolean",
    "FlowJoBiex", "FlowJoLog", "FlowJoLinear", "FlowJoTable", "biex_table",
    "save_flowjo", "workspace_from_results", "gatingml_strategy", "save_sample_gatingml",
    "AppliedSample", "apply_sample", "apply_workspace", "compare_counts", "compare_template",
    "match_files", "f1_score",
]
