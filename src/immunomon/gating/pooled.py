"""Pooled gates: one cut found on the events of every file of a run together.

A template population with ``pooled: true`` (a ``threshold`` or ``tail``) is found
once, on its parent's events from every file gated together, and that cut is applied
to each file as a fixed gate, as an expert draws one gate for a whole experiment
(openCyto's ``collapseDataForGating``). It suits a marker whose positives make no
peak of their own in every file: CD69 on T cells, where an unstimulated tube has one
peak and the lone-peak rule cuts each file at a different place. Each file's upstream
gates are its own; the pooled cut lies in each file's own transformed units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .gatingml import finite_bound
from .template import ROOT

#: Events of a pooled gate's parent taken from each file (evenly spread): every file
#: weighs about alike, and a million-event file does not swamp a small one
EVENTS_PER_FILE = 20_000


def pooled_populations(template) -> list[str]:
    """The template's populations marked ``pooled: true``, in template order."""
    return [p.name for p in template.populations if p.args.get("pooled") is True]


def pooled_gates(files, template, *, overrides: dict[str, dict] | None = None,
                 exclude_anomalies: bool = True, keep: dict | None = None
                 ) -> tuple[dict[str, dict], list[str]]:
    """The fixed gate of each pooled population, found on its parent's events from
    every file in ``files`` pooled (up to ``EVENTS_PER_FILE`` of each), as overrides
    (``{population: {rectangle: ..., note: ...}}``), and notes: each cut, and the
    populations no file gave events for (unreadable files are left to the run, which
    names them). A pooled population under another is found after it, with that one's
    pooled gate applied. ``overrides``: per-sample fixed gates (keyed by sample name),
    applied here too. ``keep``: a dict to fill with each pooled population's pooled
    values, template gate and found gate (for ``template check``'s figures)."""
    from ..fcs.datasets import read_fcs_to_gate
    from .run import gate_sample, safe_name

    wanted = pooled_populations(template)
    found: dict[str, dict] = {}
    notes: list[str] = []
    while len(found) < len(wanted):
        ready = [p for p in wanted if p not in found
                 and not any(a in wanted and a not in found for a in _ancestors(template, p))]
        pools: dict[str, list[np.ndarray]] = {p: [] for p in ready}
        gates, scales = {}, {}
        given = {p: spec for p, spec in found.items() if spec}
        for path in files:
            name = safe_name(Path(path).stem)
            try:
                sample = read_fcs_to_gate(path)
                gating = gate_sample(sample, template, name=name,
                                     overrides={**given, **(overrides or {}).get(name, {})},
                                     exclude_anomalies=exclude_anomalies)
            except Exception:  # noqa: BLE001 - the run gates and reports this file itself
                continue
            result = gating.result
            for p in ready:
                if p not in result.gate_ids:
                    continue              # a marker this file lacks
                gate = result.strategy.gate(p)
                parent = result.mask(gate.parent) if gate.parent else \
                    np.ones(result.n_events, dtype=bool)
                rows = np.flatnonzero(parent)
                rows = rows[::max(1, rows.size // EVENTS_PER_FILE)]
                pools[p].append(np.asarray(result.values.values(gate.dimensions[0], rows),
                                           dtype=np.float64))
                gates.setdefault(p, gate)
                scales.setdefault(p, result.values.signal_scale(gate.dimensions[0]))
        for p in ready:
            n_files = len(pools[p])
            if not n_files:
                notes.append(f"pooled population {p!r}: no file gave events for it; "
                             "each file is gated on its own")
                found[p] = {}
                continue
            values = np.concatenate(pools[p])
            cut = gates[p].resolve([values], scales=(scales[p],))
            if keep is not None:
                keep[p] = (values, gates[p], cut)
            found[p] = {"rectangle": {"bounds": [_finite(b) for b in cut.bounds]},
                        "note": f"gate found once on the pooled events of {n_files} "
                                f"file{'s' if n_files != 1 else ''} "
                                f"({values.size:,} events of {gates[p].parent!r}): "
                                + "; ".join(cut.notes or (cut.method,))}
            notes.append(f"pooled population {p!r}: {found[p]['note']}")
    return {p: spec for p, spec in found.items() if spec}, notes


def _ancestors(template, name: str) -> list[str]:
    parents = {p.name: p.parent for p in template.populations}
    out = []
    while parents.get(name) not in (None, ROOT):
        name = parents[name]
        out.append(name)
    return out


def _finite(bound) -> list:
    """A rectangle's [min, max] with an infinite end (a population taken as absent) as
    ``gatingml.finite_bound`` writes it, which a fixed gate takes."""
    return [None if v is None else finite_bound(v) for v in bound]
