"""What the outputs may say about each file: the registry seen through de-identification.

``public_rows`` turns registry rows into the rows that tables, index pages and
the report show. In a de-identified batch they carry pseudonyms instead of
names and ids, no paths, dates shifted per patient (or none at all), and
error messages with every known identifier scrubbed out.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .registry import POPULATION_COLUMNS, Registry, row_dict


def _shift(iso: str, days: int | None) -> str:
    if not iso or days is None:
        return ""
    try:
        moment = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return ""
    moved = moment + _dt.timedelta(days=days)
    return moved.date().isoformat() if len(iso) == 10 else moved.isoformat()


def open_pseudonyms(results: Path, registry: Registry):
    """The key of a de-identified results folder (None for an identified one)."""
    if registry.get_meta("mode") != "deidentified":
        return None
    from .deid import Pseudonymizer
    from .run import KEY_FILE, PRIVATE

    options = json.loads(registry.get_meta("options") or "{}")
    key = Path(options.get("key") or Path(results) / PRIVATE / KEY_FILE)
    shift = int(registry.get_meta("date_shift") or 0)
    return Pseudonymizer(key, max_shift_days=shift or None)


def public_rows(registry: Registry, results: Path, pseudonyms=None) -> list[dict]:
    """One dict per file: sample, study, patient, control, acquired, instrument,
    status, events, qc_status, qc_flags, error, attempts, seconds, peak_rss_mb,
    output, page (and file, sha256 when not de-identified)."""
    from ..export import scrub_text

    deid = registry.get_meta("mode") == "deidentified"
    out = []
    for row in registry.rows():
        r = row_dict(row)
        item = {k: r.get(k) for k in ("study", "control", "instrument", "status", "events",
                                      "qc_status", "attempts", "peak_rss_mb", "output",
                                      "error_kind", "worker", "finished")}
        item["seconds"] = r.get("seconds") or {}
        flags = r.get("qc_flags") or []
        error = r.get("error") or ""
        if deid:
            alias = r.get("alias") or "sample"
            ids = list(r.get("identifiers") or []) + [r["path"], r["relpath"],
                                                      Path(r["path"]).name, Path(r["path"]).stem,
                                                      r.get("patient") or "",
                                                      r.get("sample") or ""]
            days = pseudonyms.date_shift(r["study"], r.get("patient") or "") \
                if pseudonyms is not None else None
            item.update(sample=alias, patient=r.get("patient_alias") or "",
                        acquired=_shift(r.get("acquired") or "", days),
                        qc_flags=[scrub_text(f, ids, alias) for f in flags],
                        error=scrub_text(error, ids, alias),
                        worker="")
        else:
            item.update(sample=r.get("alias") or r.get("sample") or Path(r["path"]).stem,
                        patient=r.get("patient") or "", acquired=r.get("acquired") or "",
                        qc_flags=flags, error=error, file=r["path"], sha256=r.get("sha256"))
        item["id"] = r["id"]
        page = Path(results) / r["output"] / "index.html" if r.get("output") else None
        item["page"] = str(page) if page is not None and r["status"] == "done" else None
        out.append(item)
    return out


def population_frame(registry: Registry, rows: list[dict]):
    """Long table: one row per done file and population, with the file's facts."""
    import pandas as pd

    pops = pd.DataFrame([dict(p) for p in registry.populations()],
                        columns=["file_id", *POPULATION_COLUMNS])
    columns = ["id", "output", "study", "sample", "patient", "control", "acquired",
               "instrument", "events", "qc_status"]
    facts = pd.DataFrame([{k: r.get(k) for k in columns} for r in rows
                          if r["status"] == "done"], columns=columns)
    table = facts.merge(pops, left_on="id", right_on="file_id", how="inner", sort=False)
    return table.drop(columns=["id", "file_id"])


def write_study_tables(registry: Registry, results, *, deidentified: bool = False,
                       pseudonyms=None, problems: list | None = None) -> list[Path]:
    """Per study folder: ``populations.csv``/``.parquet`` (one row per done
    file and population) and ``index.html`` (every file, failures with their
    reason). Returns the study folders written. A study folder that cannot be written
    (read-only, full) is skipped, with a line in ``problems`` when given (else raised):
    the other studies still get theirs."""
    from .run import safe_folder

    results = Path(results)
    rows = public_rows(registry, results, pseudonyms)
    table = population_frame(registry, rows)
    if deidentified and not (pseudonyms is not None and pseudonyms.max_shift_days):
        table = table.drop(columns=["acquired"])
    written = []
    folders: dict[str, list[str]] = {}
    for study in sorted({r["study"] for r in rows}):
        folders.setdefault(safe_folder(study), []).append(study)
    for name, studies in folders.items():
        folder = results / name
        if len(studies) > 1 and problems is not None:
            # names that differ only in characters a folder cannot hold: one folder, one
            # table holding every study's files (each row names its study), never one
            # study's table written over another's
            problems.append(f"{folder}: studies {', '.join(map(repr, studies))} share this "
                            "folder (their names differ only in characters a folder cannot "
                            "hold); its tables hold them all")
        try:
            _write_study(folder, studies, table, rows)
        except OSError as exc:
            if problems is None:
                raise
            problems.append(f"{folder}: the study's tables cannot be written "
                            f"({exc.strerror or exc})")
            continue
        written.append(folder)
    return written


def _write_study(folder: Path, studies: list[str], table, rows) -> None:
    """The ``populations.csv``/``.parquet`` and ``index.html`` of the studies of one
    folder (one, but for names a folder cannot tell apart)."""
    from ..atomic import atomic_path
    from ..report.pages import index_page

    folder.mkdir(parents=True, exist_ok=True)
    part = table[table["study"].isin(studies)]
    part = part.drop(columns=["output"] + (["study"] if len(studies) == 1 else []))
    if len(part):
        with atomic_path(folder / "populations.csv") as tmp:
            part.to_csv(tmp, index=False)
        with atomic_path(folder / "populations.parquet") as tmp:
            part.to_parquet(tmp, index=False)
    else:
        # no file of the study is done now (all failed or quarantined since): tables
        # of earlier results would list what the registry no longer holds
        for name in ("populations.csv", "populations.parquet"):
            (folder / name).unlink(missing_ok=True)
    index_page(folder / "index.html", [
        {"sample": r["sample"], "status": r["qc_status"] if r["status"] == "done"
         else r["status"], "events": r["events"], "flags": r["qc_flags"],
         "page": r["page"], "message": r["error"]}
        for r in rows if r["study"] in studies], title=f"immunomon batch: {' + '.join(studies)}")


def rebuild_tables(results) -> list[Path]:
    """Write every study's tables and index again from the registry alone (read as it
    stands: a batch may be running)."""
    results = Path(results)
    registry = Registry.open(results, create=False, readonly=True)
    try:
        pseudonyms = open_pseudonyms(results, registry)
        return write_study_tables(registry, results, pseudonyms=pseudonyms,
                                  deidentified=registry.get_meta("mode") == "deidentified")
    finally:
        registry.close()
