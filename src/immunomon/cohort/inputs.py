"""Reading the result folders of ``immunomon gate`` and ``immunomon chimerism``.

``build_from_files`` is what ``immunomon cohort build`` (and a study pipeline)
calls: it reads the manifest, the clinical folder, every gated sample and every
chimerism table, records the SHA-256 of each input and builds the cohort.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ImmunomonError
from .build import QC_STATUSES, build
from .manifest import read_manifest
from .model import Cohort

__all__ = ["GatingOutputs", "read_gating_folder", "read_chimerism_folder", "file_sha256",
           "build_from_files"]

CHIMERISM_SAMPLES = "chimerism_samples.csv"


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class GatingOutputs:
    """What a gate output folder holds: population rows, QC flags, templates used."""

    populations: pd.DataFrame
    qc: dict[str, list[str]] = field(default_factory=dict)
    templates: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)   # sample -> ok, warning, failure


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ImmunomonError(f"{path}: cannot read the table ({exc})") from None


def read_gating_folder(folder) -> GatingOutputs:
    """Every gated sample under ``folder`` (searched recursively).

    A sample folder holds ``populations.csv`` and ``summary.json`` (QC flags,
    template); when none is found, the combined ``populations.csv`` files
    (for example one written by hand) are used instead.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImmunomonError(f"{folder}: not a folder of `immunomon gate` results")
    summaries = sorted(folder.rglob("summary.json"))
    tables, qc, status, templates, files = [], {}, {}, [], []
    for summary in summaries:
        table_path = summary.parent / "populations.csv"
        if not table_path.is_file():
            continue
        try:
            info = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ImmunomonError(f"{summary}: cannot read the sample summary ({exc})") \
                from None
        table = _read_csv(table_path)
        tables.append(table)
        name = str(info.get("sample", table_path.parent.name))
        # the flags that need review (warnings and failures); older summaries list all
        leveled = info.get("qc")
        flags = ([f["message"] for f in leveled if f.get("level") != "info"]
                 if isinstance(leveled, list) else [str(f) for f in info.get("qc_flags", [])])
        qc.setdefault(name, flags)
        if info.get("status") in QC_STATUSES:
            status.setdefault(name, info["status"])
        tmpl = info.get("template")
        if isinstance(tmpl, dict) and tmpl not in templates:
            templates.append(tmpl)
        files += [table_path, summary]
    if not tables:
        for table_path in sorted(folder.rglob("populations.csv")):
            tables.append(_read_csv(table_path))
            files.append(table_path)
    if not tables:
        raise ImmunomonError(f"{folder}: no populations.csv found; run `immunomon gate "
                             f"... --out {folder}` first")
    for t, path in zip(tables, [f for f in files if f.name == "populations.csv"]):
        for col in ("sample", "population", "count"):
            if col not in t.columns:
                raise ImmunomonError(f"{path}: column {col!r} missing from the population "
                                     "table")
    populations = pd.concat(tables, ignore_index=True)
    populations["sample"] = populations["sample"].astype(str)
    return GatingOutputs(populations, qc, templates, files, status)


def read_chimerism_folder(folder) -> tuple[pd.DataFrame, list[Path]]:
    """All ``chimerism_samples.csv`` tables under ``folder`` (searched recursively)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImmunomonError(f"{folder}: not a folder of `immunomon chimerism` results")
    paths = sorted(folder.rglob(CHIMERISM_SAMPLES))
    if not paths:
        raise ImmunomonError(f"{folder}: no {CHIMERISM_SAMPLES} found; run `immunomon "
                             f"chimerism ... --out {folder}` first")
    tables = []
    for path in paths:
        t = _read_csv(path)
        for col in ("sample", "percent_donor"):
            if col not in t.columns:
                raise ImmunomonError(f"{path}: column {col!r} missing from the chimerism "
                                     "table")
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    table["sample"] = table["sample"].astype(str)
    if "flags" in table:
        table["flags"] = table["flags"].fillna("").astype(str)
    return table, paths


def reference_files(folder) -> list[Path]:
    """The donor and recipient reference exports that the ``immunomon chimerism``
    results under ``folder`` were computed against (their ``file`` column)."""
    files: set = set()
    for path in sorted(Path(folder).rglob("chimerism_reference_calls.csv")):
        try:
            calls = pd.read_csv(path, usecols=["file"], dtype=str)
        except (OSError, ValueError):
            continue                # an older or damaged table: nothing to exempt
        files.update(f for f in calls["file"].dropna() if f)
    return sorted(Path(f) for f in files)


def _place(path) -> str:
    """A path as provenance records it: absolute, without ``..`` (a study file's
    ``../fixtures/...`` named one file two ways)."""
    return os.path.normpath(os.path.abspath(path))


def _inputs(role: str, paths) -> list[dict]:
    out = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.append({"role": role, "path": _place(p), "sha256": file_sha256(p)})
    return out


def build_from_files(manifest, *, clinical=None, gating=None, chimerism=None,
                     material: str = "blood", date_order: str | None = None) -> Cohort:
    """Build a cohort from files: manifest CSV, clinical folder, gate and chimerism folders.

    Provenance attributes: ``input_hashes`` (JSON, path -> SHA-256 of the
    manifest, the clinical CSVs, the result tables and the listed FCS/STR files
    that exist), ``inputs`` (JSON, the same with each file's role), and
    ``template``/``template_version`` (the gating templates' panels and versions).
    """
    from ..clinical import read_clinical

    table = read_manifest(manifest, date_order=date_order)
    inputs = _inputs("manifest", [manifest])
    clin = None
    if clinical is not None:
        clin = read_clinical(clinical, date_order=date_order)
        inputs += _inputs("clinical", sorted(Path(clinical).glob("*.csv")))
    gate = read_gating_folder(gating) if gating is not None else None
    chim, chim_files = read_chimerism_folder(chimerism) if chimerism is not None else (None, [])
    if gate is not None:
        inputs += _inputs("gating", gate.files)
    inputs += _inputs("chimerism", chim_files)
    for kind, path in zip(table["kind"], table["path"]):
        inputs += _inputs(f"{kind}_data", [path])
    provenance = {"input_hashes": {i["path"]: i["sha256"] for i in inputs},
                  "inputs": inputs, "input_folders": {
        "clinical": _place(clinical) if clinical is not None else "",
        "gating": _place(gating) if gating is not None else "",
        "chimerism": _place(chimerism) if chimerism is not None else ""}}
    if gate is not None and gate.templates:
        provenance["template"] = "; ".join(str(t.get("panel")) for t in gate.templates)
        provenance["template_version"] = "; ".join(str(t.get("version"))
                                                   for t in gate.templates)
    return build(table, populations=gate.populations if gate else None, chimerism=chim,
                 clinical=clin, qc=gate.qc if gate else None,
                 qc_status=gate.status if gate else None, material=material,
                 provenance=provenance)
