"""A workspace sample's gates as Gating-ML 2.0.

Rectangles are written in data units (no transform: a monotone transform does
not change them). Polygons and ellipses keep their transform where Gating-ML
has it (logicle, fasinh, hyperlog) and otherwise use its nearest Gating-ML
form: FlowJo's biex becomes the logicle it tabulates (channel / 4097 within
half a channel, so only events on a polygon's edge can change side), FlowJo's
log becomes ``flog`` (identical above the offset) and FlowJo's linear
``flin``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import FlowJoError
from ..dimensions import Dimension
from ..gates import BooleanGate, EllipsoidGate, GateReference, PolygonGate
from ..strategy import GatingStrategy
from .model import WorkspaceSample
from .scales import BIEX_CHANNELS, FlowJoBiex, FlowJoTable, gatingml_equivalent


def _gml_id(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", text.replace("+", "pos")).strip("_") or "gate"
    if not re.match(r"[A-Za-z_]", base):
        base = "_" + base
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base}_{k}"
    taken.add(out)
    return out


def gatingml_strategy(sample: WorkspaceSample) -> tuple[GatingStrategy, dict[str, str]]:
    """The sample's gates with Gating-ML transforms and valid ids, and the map
    from FlowJo gate path to Gating-ML id."""
    source = sample.strategy()
    taken: set[str] = set()
    ids = {g.id: _gml_id(g.id, taken) for g in source.gates}
    out = GatingStrategy(compensations=dict(source.compensations))
    for gate in source.gates:
        changes = {"id": ids[gate.id], "parent": ids.get(gate.parent)}
        if isinstance(gate, BooleanGate):
            changes["operands"] = tuple(GateReference(ids[o.ref], o.complement)
                                        for o in gate.operands)
        elif isinstance(gate, (PolygonGate, EllipsoidGate)):
            dims, factors = [], []
            for d in gate.dimensions:
                gml = gatingml_equivalent(d.transform) if d.transform is not None else None
                if d.transform is not None and gml is None:
                    raise FlowJoError(f"sample {sample.name!r}, gate {gate.id!r}: the "
                                      f"{type(d.transform).__name__} of {d.name!r} has no "
                                      "Gating-ML 2.0 form")
                dims.append(Dimension(d.name, d.compensation, gml))
                inner = getattr(d.transform, "transform", d.transform)
                factors.append(1.0 / (BIEX_CHANNELS + 1)
                               if isinstance(inner, (FlowJoBiex, FlowJoTable)) else 1.0)
            changes["dimensions"] = tuple(dims)
            # FlowJo's scales are Gating-ML ones times a factor (biex: the channel is
            # logicle x 4097, to half a channel), so the geometry scales with them.
            f = np.array(factors)
            if isinstance(gate, PolygonGate):
                changes["vertices"] = gate.vertices * f
            else:
                changes["mean"] = gate.mean * f
                changes["covariance"] = gate.covariance * np.outer(f, f)
        out.add(replace(gate, **changes))
    return out, ids


def save_sample_gatingml(sample: WorkspaceSample, path) -> dict[str, str]:
    """Write one sample's gates as Gating-ML 2.0; returns FlowJo path -> Gating-ML id."""
    from ..gatingml import save_gatingml

    strategy, ids = gatingml_strategy(sample)
    save_gatingml(strategy, Path(path))
    return ids
