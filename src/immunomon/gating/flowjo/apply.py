"""Applying a FlowJo workspace to its FCS files, and comparing counts.

``compare_counts(workspace, files)`` gates every file with its sample's gates
and returns, per population, FlowJo's stored count beside immunomon's and the
difference. ``compare_template`` also runs an immunomon template on the same
events and scores each population it shares (by name) with the workspace by
per-event F1 against the manual gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import FlowJoError, GatingError, ImmunomonError
from ..template import spelling
from .model import WorkspaceSample, _uri_path
from .reader import Workspace

COLUMNS = ["sample", "file", "population", "path", "parent", "flowjo_count", "count",
           "difference", "difference_percent"]


@dataclass
class AppliedSample:
    """One workspace sample gated on its FCS file."""

    sample: WorkspaceSample
    file: Path
    result: object                          # GatingResult, population ids are gate paths
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        rows = []
        for pop in self.sample.populations:
            count = self.result.count(pop.id)
            fj = pop.flowjo_count
            diff = None if fj is None else count - fj
            rows.append({"sample": self.sample.name, "file": str(self.file),
                         "population": pop.name, "path": pop.id, "parent": pop.parent or "",
                         "flowjo_count": fj, "count": count, "difference": diff,
                         "difference_percent": (0.0 if diff == 0 else 100.0 * diff / fj
                                                if fj else None)})
        return pd.DataFrame(rows, columns=COLUMNS)


def _key(name: str) -> str:
    return name.strip().casefold()


def _stem(name: str) -> str:
    n = _key(name)
    return n[:-4] if n.endswith(".fcs") else n


def match_files(ws: Workspace, files=None) -> list[tuple[WorkspaceSample, Path]]:
    """Pair samples with FCS files.

    With ``files`` (paths or folders), each file is matched to the sample whose
    recorded file name, ``$FIL`` keyword or name it carries; a file named in ``files``
    that no sample uses is an error, one found in a folder is skipped
    (``matched_files`` says which). Without, every sample's file is looked for at
    its recorded location and beside the workspace; a missing one is an error.
    """
    return matched_files(ws, files)[0]


def matched_files(ws: Workspace, files=None
                  ) -> tuple[list[tuple[WorkspaceSample, Path]], list[str]]:
    """``match_files``'s pairs, and a note for each file of a folder no sample uses (a
    run folder also holds compensation controls and tubes the workspace left out)."""
    if files is None:
        return [(s, locate(ws, s)) for s in ws.samples], []
    from ..run import find_fcs_files
    found = find_fcs_files(files)
    if not found:
        raise FlowJoError("no FCS files found in the inputs given: "
                          + ", ".join(str(f) for f in files))
    named = {Path(f) for f in files if not Path(f).is_dir()}
    pairs, skipped = [], []
    for path in map(Path, found):
        sample = sample_for_file(ws, path)
        if sample is not None:
            pairs.append((sample, path))
        elif path in named:
            raise FlowJoError(f"{path}: no sample of {ws.path} uses this file (by its file "
                              f"name, FlowJo's $FIL or the sample's name); {_samples(ws)}")
        else:
            skipped.append(path)
    if not pairs:
        raise FlowJoError(f"no FCS file in {', '.join(str(f) for f in files)} is used by a "
                          f"sample of {ws.path}; {_samples(ws)}")
    notes = [f"{path}: skipped, no sample of the workspace uses this file" for path in skipped]
    return pairs, notes


def _samples(ws: Workspace) -> str:
    """The workspace's samples and their files, as an error lists them."""
    def one(s):
        names = dict.fromkeys(n for n in (s.file_name, s.keywords.get("$FIL", "")) if n
                              and _key(n) != _key(s.name))
        return s.name + (f" ({', '.join(names)})" if names else "")
    return "its samples: " + (", ".join(one(s) for s in ws.samples) or "none")


def sample_for_file(ws: Workspace, path: Path) -> WorkspaceSample | None:
    name = _key(Path(path).name)
    for attr in (lambda s: s.file_name, lambda s: s.keywords.get("$FIL", ""),
                 lambda s: s.name):
        found = [s for s in ws.samples if _key(attr(s)) == name]
        if len(found) == 1:
            return found[0]
    found = [s for s in ws.samples if _stem(s.name) == _stem(name)]
    return found[0] if len(found) == 1 else None


def locate(ws: Workspace, sample: WorkspaceSample) -> Path:
    """The FCS file of a sample: where the workspace recorded it, else beside the
    workspace (also in a sub-folder) under its recorded file name, its ``$FIL`` or the
    sample's name, else an error naming it."""
    looked = []
    if sample.uri:
        recorded = Path(_uri_path(sample.uri))
        looked.append(str(recorded))
        if recorded.is_file():
            return recorded
    folder = ws.path.parent
    names = [n for n in dict.fromkeys((sample.file_name, sample.keywords.get("$FIL", ""),
                                       sample.name, f"{_stem(sample.name)}.fcs"))
             if n and Path(n).name == n]
    for name in names:
        for candidate in [folder / name, *sorted(folder.rglob(name))]:
            if candidate.is_file():
                return candidate
    looked += [str(folder / n) for n in names]
    raise FlowJoError(f"{ws.path}: sample {sample.name!r}: FCS file {sample.file_name!r} not "
                      f"found (looked at {', '.join(looked)}); put it beside the workspace "
                      "or pass the files explicitly")


def apply_sample(ws: Workspace, sample: WorkspaceSample, path) -> AppliedSample:
    """Gate one FCS file with one sample's gates."""
    from ...fcs import read_fcs

    path = Path(path)
    if not path.is_file():
        raise FlowJoError(f"{ws.path}: sample {sample.name!r}: FCS file {path} not found")
    try:
        fcs = read_fcs(path)
        result = sample.strategy(channels=fcs.channels).apply(fcs)
    except FlowJoError:
        raise
    except (GatingError, ImmunomonError) as exc:
        raise FlowJoError(f"{ws.path}: sample {sample.name!r} on {path}: {exc}") from None
    notes = []
    if sample.count is not None and sample.count != fcs.n_events:
        notes.append(f"{path.name}: {fcs.n_events} events, but FlowJo recorded {sample.count} "
                     "for this sample; is it the same file?")
    return AppliedSample(sample, path, result, notes)


def apply_workspace(ws: Workspace, files=None) -> list[AppliedSample]:
    """Every matched file gated with its sample's gates; the first file that cannot
    be gated raises."""
    return _applied(ws, files, strict=True)[0]


#: how a note of ``compare_counts`` begins for a file that could not be gated
NOT_GATED = "not gated: "


def _applied(ws: Workspace, files=None, *, strict: bool = False
             ) -> tuple[list[AppliedSample], list[str]]:
    """Every matched file gated with its sample's gates, and notes: the files a folder
    held that no sample uses, and each file that could not be gated, with why (the
    others are still gated, one bad file among 48 no longer leaving no row for any;
    with none gated, or ``strict``, the first file's error is raised)."""
    pairs, notes = matched_files(ws, files)
    applied, failed = [], []
    for sample, path in pairs:
        try:
            applied.append(apply_sample(ws, sample, path))
        except FlowJoError as exc:
            if strict:
                raise
            failed.append(exc)
    if failed and not applied:
        raise failed[0]
    return applied, notes + [f"{NOT_GATED}{exc}" for exc in failed]


def compare_counts(ws: Workspace, files=None) -> pd.DataFrame:
    """Per sample and population: FlowJo's count, immunomon's, the difference.
    ``table.attrs["notes"]`` lists files whose event count differs from the one
    FlowJo recorded (a sign of a different or re-exported file) and files that could
    not be gated (``NOT_GATED``, then why)."""
    applied, notes = _applied(ws, files)
    tables = [a.table() for a in applied]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
    table.attrs["notes"] = notes + [n for a in applied for n in a.notes]
    return table


def f1_score(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Per-event F1 of a gate against a reference gate (1 when both are empty)."""
    tp = np.count_nonzero(truth & predicted)
    fp = np.count_nonzero(~truth & predicted)
    fn = np.count_nonzero(truth & ~predicted)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def match_populations(sample: WorkspaceSample, names) -> dict[str, str]:
    """Template population name -> workspace gate path, matched by name
    (case, spaces and punctuation aside, but not the signs: "NK1.1+" is
    FlowJo's "NK1_1+", not "NK1_1-"); a name held by several workspace
    populations is matched only if exactly one of them has the same parent
    name. A name that matches none may be the workspace's parent and gate
    names together, the parent's own sign optional: a template's names are
    unique, so its "CD4 IFNg+" is the workspace's "CD4+/IFNg+" beside
    "CD8+/IFNg+". Last, a plural matches its singular ("B cells", "B Cell")."""
    def norm(s):
        return spelling(s, keep="+-")

    def qualified(p) -> set[str]:
        parent = p.parent.split("/")[-1] if p.parent else ""
        return {norm(parent) + norm(p.name), norm(parent.rstrip("+-")) + norm(p.name)} \
            if parent else set()

    out = {}
    for name, parent in names:
        hits = [p for p in sample.populations if norm(p.name) == norm(name)]
        if len(hits) > 1 and parent:
            hits = [p for p in hits if p.parent and norm(p.parent.split("/")[-1]) == norm(parent)]
        if not hits:
            hits = [p for p in sample.populations if norm(name) in qualified(p)]
        if not hits:        # one name plural, the other not: "B cells" is FlowJo's "B Cell"
            hits = [p for p in sample.populations
                    if norm(p.name).rstrip("s") == norm(name).rstrip("s")]
        if len(hits) == 1:
            out[name] = hits[0].id
    return out


def compare_template(ws: Workspace, files, template) -> pd.DataFrame:
    """The template's gates beside the workspace's manual ones, on the same events:
    per shared population, the manual count (FlowJo's and immunomon's), the
    template's count and the per-event F1 of the template against the manual gate."""
    from ...fcs import read_fcs

    samples, notes = _applied(ws, files)
    rows = []
    for applied in samples:
        fcs = read_fcs(applied.file)
        strategy, left_out = template.strategy_for(fcs)
        # the template's own gaps in this file (a marker it cannot find, the
        # populations that need it), so a population with no F1 says why
        notes += [f"{applied.sample.name}: template: {n}" for n in left_out]
        auto = strategy.apply(fcs)
        names = [(p, auto.parent(p)) for p in auto.gate_ids]
        matched = match_populations(applied.sample, names)
        if not matched:
            notes.append(f"{applied.sample.name}: no population of the template "
                         "has the name of a workspace population, so none is scored")
        else:
            unmatched = [p for p, _ in names if p not in matched]
            if unmatched:
                notes.append(f"{applied.sample.name}: not scored, no workspace population "
                             f"(or parent and population) of their name, or several: "
                             f"{', '.join(unmatched)}")
        for name, path in matched.items():
            manual = applied.result.mask(path)
            mine = auto.mask(name)
            pop = applied.sample.population(path)
            rows.append({"sample": applied.sample.name, "file": str(applied.file),
                         "population": name, "path": path,
                         "flowjo_count": pop.flowjo_count,
                         "count": int(np.count_nonzero(manual)),
                         "template_count": int(np.count_nonzero(mine)),
                         "f1": f1_score(manual, mine)})
    table = pd.DataFrame(rows, columns=["sample", "file", "population", "path", "flowjo_count",
                                        "count", "template_count", "f1"])
    table.attrs["notes"] = notes
    return table
