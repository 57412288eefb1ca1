"""The gating hierarchy (an ordered collection of gates with parents) and
the result of applying it to one sample."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import numpy as np

from ..errors import GatingError
from .dimensions import EventValues, SpectrumMatrix
from .gates import BooleanGate, QuadrantGate, not_a_population, populations_of


class GatingStrategy:
    """Gates in order, each with an optional parent population, plus the
    transformations and compensation matrices their dimensions refer to by id.

    A population is a gate id, or a quadrant id for a quadrant gate. A gate
    may provide ``resolve(columns) -> gate`` to choose its parameters from the
    events inside its parent (data-driven gates); the resolved gate is what
    ``GatingResult.gates`` records.
    """

    def __init__(self, gates: Iterable = (), *, transforms: dict | None = None,
                 compensations: dict | None = None):
        self._gates: dict[str, object] = {}
        self._owner: dict[str, str] = {}     # population id -> gate id
        self.transforms: dict[str, object] = {}
        self.compensations: dict[str, SpectrumMatrix] = {}
        for tid, t in (transforms or {}).items():
            self.add_transform(tid, t)
        for cid, m in (compensations or {}).items():
            self.add_compensation(cid, m)
        for g in gates:
            self.add(g)

    # -- building -------------------------------------------------------------
    def add(self, gate):
        """Append a gate; its id and population ids must be new."""
        for pid in (gate.id,) + populations_of(gate):
            if pid in self._gates or pid in self._owner:
                raise GatingError(f"gate {gate.id!r}: id {pid!r} is already used in this "
                                  "strategy; ids must be unique")
        self._gates[gate.id] = gate
        for pid in populations_of(gate):
            self._owner[pid] = gate.id
        return gate

    def add_transform(self, transform_id: str, transform) -> None:
        if transform_id in self.transforms:
            raise GatingError(f"transformation id {transform_id!r} is already used")
        self.transforms[transform_id] = transform

    def add_compensation(self, matrix_id: str, matrix: SpectrumMatrix) -> None:
        if matrix_id in ("uncompensated", "FCS") or matrix_id in self.compensations:
            raise GatingError(f"compensation id {matrix_id!r} is reserved or already used")
        self.compensations[matrix_id] = matrix

    # -- structure ------------------------------------------------------------
    @property
    def gates(self) -> tuple:
        return tuple(self._gates.values())

    def gate(self, gate_id: str):
        try:
            return self._gates[gate_id]
        except KeyError:
            raise GatingError(f"no gate {gate_id!r} in this strategy") from None

    @property
    def population_ids(self) -> tuple[str, ...]:
        return tuple(self._owner)

    def parent(self, population_id: str) -> str | None:
        return self._gates[self._owner_of(population_id)].parent

    def owner(self, population_id: str) -> str:
        """The id of the gate that makes a population (a quadrant gate's for its corners)."""
        return self._owner_of(population_id)

    def _owner_of(self, population_id: str) -> str:
        if population_id in self._owner:
            return self._owner[population_id]
        if isinstance(self._gates.get(population_id), QuadrantGate):
            raise GatingError(not_a_population(population_id,
                                               populations_of(self._gates[population_id])))
        raise GatingError(f"no population {population_id!r}; populations are: "
                          f"{', '.join(self._owner) or 'none'}")

    def _dependencies(self, gate) -> list[str]:
        refs = [gate.parent] if gate.parent is not None else []
        if isinstance(gate, BooleanGate):
            refs += [o.ref for o in gate.operands]
        if getattr(gate, "negative", None) is not None:     # a diagonal's reference
            refs.append(gate.negative)
        deps = []
        for ref in refs:
            try:
                deps.append(self._owner_of(ref))
            except GatingError as exc:
                raise GatingError(f"gate {gate.id!r}: refers to {ref!r}: {exc}") from None
        return deps

    def evaluation_order(self) -> list[str]:
        """Gate ids, each after the gates it depends on; raises on unknown
        references and on cycles (naming the gates of the cycle)."""
        order: list[str] = []
        state: dict[str, int] = {}          # 1 visiting, 2 done
        for root in self._gates:
            if state.get(root) == 2:
                continue
            stack = [(root, iter(self._dependencies(self._gates[root])))]
            state[root] = 1
            path = [root]
            while stack:
                gid, deps = stack[-1]
                for dep in deps:
                    if state.get(dep) == 1:
                        cycle = path[path.index(dep):] + [dep]
                        raise GatingError(f"gate {gid!r}: parents and references form a "
                                          f"cycle: {' -> '.join(cycle)}")
                    if state.get(dep) is None:
                        state[dep] = 1
                        path.append(dep)
                        stack.append((dep, iter(self._dependencies(self._gates[dep]))))
                        break
                else:
                    state[gid] = 2
                    order.append(gid)
                    stack.pop()
                    path.pop()
        return order

    # -- applying -------------------------------------------------------------
    def apply(self, sample) -> "GatingResult":
        """Gate every event of ``sample``; each population is computed once."""
        order = self.evaluation_order()
        values = EventValues(sample, self.transforms, self.compensations)
        n = sample.n_events
        found: dict[str, np.ndarray] = {}
        applied: dict[str, object] = {}
        inside: dict[tuple, np.ndarray | None] = {}      # parent's rows, shared by siblings
        for gid in order:
            gate = self._gates[gid]
            parent_mask = found[gate.parent] if gate.parent is not None else None
            try:
                if isinstance(gate, BooleanGate):
                    operands = [~found[o.ref] if o.complement else found[o.ref]
                                for o in gate.operands]
                    m = gate.combine(operands)
                    if parent_mask is not None:
                        m &= parent_mask
                    found[gid] = m
                    applied[gid] = gate
                    continue
                key = (gate.parent, hasattr(gate, "resolve"))
                if key not in inside:
                    inside[key] = _rows_inside(parent_mask, data_driven=key[1])
                rows = inside[key]
                columns = [values.values(d, rows) for d in gate.dimensions]
                reference = None
                if getattr(gate, "negative", None) is not None:
                    negatives = np.flatnonzero(found[gate.negative])
                    reference = [values.values(d, negatives) for d in gate.dimensions]
                concrete = _resolve(gate, columns, values, reference) \
                    if hasattr(gate, "resolve") else gate
                applied[gid] = concrete
                if isinstance(concrete, QuadrantGate):
                    if tuple(concrete.dimensions) != tuple(gate.dimensions):
                        # a found quadrant gate may cut one axis apart on each side: its
                        # dividers reuse the columns of the gate's own dimensions
                        dims = list(gate.dimensions)
                        columns = [columns[dims.index(d)] for d in concrete.dimensions]
                    sub = concrete.quadrant_masks(columns)
                else:
                    sub = {gid: concrete.contains(columns)}
            except GatingError as exc:
                if str(exc).startswith(f"gate {gid!r}"):
                    raise
                raise GatingError(f"gate {gid!r}: {exc}") from None
            for pid, m in sub.items():
                if rows is not None:
                    full = np.zeros(n, dtype=bool)
                    full[rows] = m
                    m = full
                elif parent_mask is not None:
                    m &= parent_mask
                found[pid] = m
        masks = {pid: found[pid] for pid in self._owner}
        return GatingResult(self, sample, masks, applied, values)

    def __len__(self) -> int:
        return len(self._gates)

    def __iter__(self):
        return iter(self._gates.values())

    def __contains__(self, gate_or_population_id) -> bool:
        return gate_or_population_id in self._gates or gate_or_population_id in self._owner

    def __repr__(self):
        return f"<GatingStrategy: {len(self._gates)} gates, {len(self._owner)} populations>"


def _resolve(gate, columns, values: EventValues, reference=None):
    """A data-driven gate found in these events; gates that take ``scales`` also
    learn where zero signal and the top of scale lie on each of their axes, and a
    diagonal gets its negative population's events (``reference``)."""
    takes = inspect.signature(gate.resolve).parameters
    if "scales" in takes:
        return gate.resolve(columns, scales=[values.signal_scale(d) for d in gate.dimensions])
    if "reference" in takes:
        return gate.resolve(columns, reference=reference)
    return gate.resolve(columns)


def _rows_inside(parent_mask, data_driven: bool):
    """The events a gate is evaluated on: all (None) at the top level; inside
    the parent otherwise. A fixed gate under a parent holding most events is
    cheaper to test on every event and then intersect with the parent (the
    same membership); a data-driven gate always sees only its parent's events."""
    if parent_mask is None:
        return None
    if not data_driven and 2 * np.count_nonzero(parent_mask) > parent_mask.size:
        return None
    return np.flatnonzero(parent_mask)


def gating_result(obj):
    """The ``GatingResult`` in ``obj``: ``gate_sample``'s ``SampleGating`` holds one as
    ``.result``; a ``GatingResult`` is itself."""
    inner = getattr(obj, "result", None)
    return inner if isinstance(inner, GatingResult) else obj


class GatingResult:
    """Membership of every event in every population of one sample."""

    def __init__(self, strategy: GatingStrategy, sample, masks: dict, gates: dict,
                 values: EventValues):
        self.strategy = strategy
        self.sample = sample
        self._masks = masks
        self.gates = gates          # gate id -> the gate actually applied
        self.values = values        # the dimension values computed for this sample
        self._counts: dict[str, int] = {}

    @property
    def gate_ids(self) -> tuple[str, ...]:
        """Population ids in strategy order (quadrants by their own ids)."""
        return tuple(self._masks)

    @property
    def n_events(self) -> int:
        return self.sample.n_events

    def mask(self, gate_id: str) -> np.ndarray:
        """Boolean membership of every event of the sample."""
        if gate_id not in self._masks:
            self.strategy._owner_of(gate_id)   # raises a helpful error
        return self._masks[gate_id]

    def count(self, gate_id: str) -> int:
        """Events in the population; counted once (tables, QC, plots and the
        AnnData all ask, and each count reads every event's membership)."""
        if gate_id not in self._counts:
            self._counts[gate_id] = int(np.count_nonzero(self.mask(gate_id)))
        return self._counts[gate_id]

    def parent(self, gate_id: str) -> str | None:
        self.mask(gate_id)
        return self.strategy.parent(gate_id)

    def ancestors(self, gate_id: str) -> tuple[str, ...]:
        """Parent, grandparent, ... up to a root population."""
        out = []
        p = self.parent(gate_id)
        while p is not None:
            out.append(p)
            p = self.strategy.parent(p)
        return tuple(out)

    def __repr__(self):
        return f"<GatingResult: {len(self._masks)} populations over {self.n_events} events>"
