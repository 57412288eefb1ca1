"""The batch coordinator: register files, hand jobs to workers, record what became of them.

Only this process writes the registry, and only while it holds the results
folder's lock. A file is ``done`` only once its outputs exist; a file whose
worker died is tried again up to ``max_attempts`` times; a file that cannot be
read or gated is quarantined (linked into ``RESULTS/quarantine/``) and the
batch goes on. Killed at any moment and run again, the batch adopts outputs
that were complete, redoes what was interrupted and removes temporary
folders, so every file ends processed once.

Results layout::

    RESULTS/registry.sqlite        the registry (one row per input file)
    RESULTS/<study>/<sample>/      one folder per file, as `immunomon gate` writes it
    RESULTS/<study>/populations.csv, .parquet, index.html   per-study tables
    RESULTS/report.html            the batch QC report
    RESULTS/quarantine/<study>/    links to files that failed, with the reason
    RESULTS/private/               the de-identification key (0600), if any
"""

from __future__ import annotations

import hashlib
import re
import json
import os
import shutil
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, asdict
from pathlib import Path

from ..errors import ImmunomonError
from ..fmt import NOT_UTF8, unencodable_name
from .registry import REGISTRY, BatchError, Registry, now, population_rows, results_lock

QUARANTINE = "quarantine"
PRIVATE = "private"
KEY_FILE = "deidentification-key.json"
REPORT = "report.html"
#: Top-level names in RESULTS that are not study folders.
RESERVED = {QUARANTINE, PRIVATE, REPORT, "index.html", "populations.csv",
            "populations.parquet", "registry.sqlite"}


@dataclass
class BatchOptions:
    """How to process a batch (the ``immunomon batch run`` options)."""

    template: str = "post-transplant"
    manifest: str | None = None
    workers: int = 1
    scheduler: str | None = None          # tcp://host:port of a Dask scheduler
    cluster: str | None = None            # local:N, a Dask LocalCluster
    deidentify: bool = False
    date_shift: int | None = None         # shift dates by up to this many days per patient
    key: str | None = None                # the key file (default RESULTS/private/...)
    drop_keywords: tuple = ()
    layout_keywords_only: bool = False    # de-identified: only the FCS layout keywords stay
    plots: str | bool = "all"             # none, summary or all (True: all, False: none)
    anndata: bool = True
    export_fcs: bool = False
    exclude_anomalies: bool = True
    max_attempts: int = 3
    counting: dict = field(default_factory=dict)   # counting inputs for every file
    flat: bool = False                    # sample folders directly in RESULTS (no study level)
    redo_on_upgrade: bool = False         # a new immunomon version processes done files again


@dataclass
class BatchSummary:
    """What one ``batch run`` (or retry, or watch round) did."""

    found: int = 0
    done: int = 0                # processed in this run
    skipped: int = 0             # already done with the same content and settings
    failed: int = 0              # failed or quarantined in this run
    quarantined: int = 0
    retried: int = 0             # worker deaths survived
    seconds: float = 0.0
    report: str = ""
    failures: list = field(default_factory=list)   # (path, error)
    warnings: list = field(default_factory=list)   # about the inputs (manifest rows)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def files_per_minute(self) -> float:
        return 60.0 * self.done / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "files_per_minute": round(self.files_per_minute, 2)}


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def safe_folder(text: str) -> str:
    """A folder name for a study or sample: path separators become underscores (an
    instrument's $PROJ of "2/25/2011 11:14 AM" is a name, not a path)."""
    from ..gating.run import safe_name

    name = safe_name(re.sub(r"[\\/]+", "_", str(text)))
    return f"{name}_" if name in RESERVED else name


class Batch:
    """A results folder opened for processing. Create it with ``open_batch``."""

    def __init__(self, results: Path, options: BatchOptions, registry: Registry, *,
                 progress=None, job=None):
        from ..gating.template import load_template
        from .. import __version__

        self.results = results
        self.options = options
        self.registry = registry
        self.progress = progress or (lambda event: None)
        if job is None:
            from .job import run_job as job
        self.job = job
        self.version = __version__
        self.template = load_template(options.template)
        source = Path(self.template.source) if self.template.source else None
        text = source.read_bytes() if source is not None and source.is_file() else \
            repr(self.template).encode()
        self.template_name = str(options.template)
        self.template_hash = hashlib.sha256(text).hexdigest()
        self.pseudonyms = None
        self._check_settings()
        self.summary = BatchSummary()

    # -- settings that bind a results folder ----------------------------------------
    def _check_settings(self) -> None:
        o, reg = self.options, self.registry
        mode = "deidentified" if o.deidentify else "identified"
        recorded = reg.get_meta("mode")
        if recorded is not None and recorded != mode:
            raise BatchError(
                f"{self.results}: these results are {recorded}; a run "
                f"{'with' if o.deidentify else 'without'} --deidentify would mix identified "
                "and de-identified outputs. Use another results folder.")
        shift = str(o.date_shift or 0)
        if o.deidentify and reg.get_meta("date_shift") not in (None, shift):
            raise BatchError(f"{self.results}: these results shift dates by up to "
                             f"{reg.get_meta('date_shift')} days; --date-shift {shift} would "
                             "give the same patients other dates. Use the same value.")
        if o.deidentify:
            from .deid import Pseudonymizer

            key = Path(o.key) if o.key else self.results / PRIVATE / KEY_FILE
            fingerprint = reg.get_meta("key_fingerprint")
            if fingerprint is not None and not key.exists():
                raise BatchError(f"{key}: the de-identification key of these results is "
                                 "missing; restore it (without it the same patients would "
                                 "get new pseudonyms)")
            self.pseudonyms = Pseudonymizer(key, max_shift_days=o.date_shift or None)
            if fingerprint is not None and fingerprint != self.pseudonyms.fingerprint:
                raise BatchError(f"{key}: this is not the key these results were made with "
                                 f"(fingerprint {self.pseudonyms.fingerprint}, expected "
                                 f"{fingerprint})")
            self.pseudonyms.save()
            reg.set_meta("key_fingerprint", self.pseudonyms.fingerprint)
            reg.set_meta("date_shift", shift)
        reg.set_meta("mode", mode)

    def settings_hash(self, counting: dict) -> str:
        from ..gating.run import plot_level

        o = self.options
        return _sha256_text(json.dumps({
            "exclude_anomalies": o.exclude_anomalies, "plots": plot_level(o.plots),
            "anndata": o.anndata,
            "fcs": o.export_fcs, "deidentify": o.deidentify, "date_shift": o.date_shift,
            "drop": sorted(o.drop_keywords), "counting": counting,
            **({"layout_only": True} if o.layout_keywords_only else {}),
            **({"version": self.version} if o.redo_on_upgrade else {})}, sort_keys=True))

    # -- resume --------------------------------------------------------------------
    def recover(self) -> int:
        """After a crash: remove temporary outputs, adopt sample folders that
        were complete, and queue again the files that were running."""
        removed = 0
        for tmp in [*self.results.rglob(".*.tmp"), *self.results.rglob(".*.old")]:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed += 1
        for row in self.registry.rows("running"):
            if not self._adopt(row):
                self.registry.update(row["id"], status="pending")
        return removed

    def _adopt(self, row) -> bool:
        """A running file whose folder is complete and stamped with this very
        input and these settings is recorded as done without gating it again."""
        from .job import job_stamp, sha256_file

        if not row["output"]:
            return False
        folder = self.results / row["output"]
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
            sha = sha256_file(row["path"])
        except (OSError, ValueError):
            return False
        stamp = f"{row['template_hash']}:{row['settings_hash']}"
        if summary.get("provenance", {}).get("job") != job_stamp(sha, stamp):
            return False
        import pandas as pd

        try:
            table = pd.read_csv(folder / "populations.csv")
        except (OSError, ValueError):
            return False
        populations = population_rows({c: table[c].tolist() for c in table.columns})
        outputs = sorted(str(p.relative_to(self.results)) for p in folder.rglob("*")
                         if p.is_file())
        flags = [f["message"] for f in summary.get("qc", [])
                 if f.get("level") in ("warning", "failure")]
        self.registry.finish(row["id"], {
            "sha256": sha, "events": summary.get("events"),
            "qc_status": summary.get("status"), "qc_flags": json.dumps(flags),
            "outputs": json.dumps(outputs)}, populations)
        return True

    # -- registration ----------------------------------------------------------------
    def current(self, path: Path, manifest=None):
        """The registry row of ``path`` when it needs no work (done, failed or
        quarantined with the same size, time, template and settings), else None."""
        row = self.registry.get(path)
        if row is None or row["status"] in ("pending", "running"):
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        own = manifest.lookup(path) if manifest is not None else None
        settings = self.settings_hash(own.counting if own else {})
        if row["template_hash"] == self.template_hash and row["settings_hash"] == settings \
                and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            return row
        return None

    def _same_quarantined(self, path: Path, row, manifest=None) -> bool:
        """Whether ``path`` is a quarantined file copied again unchanged (a new time, the
        same bytes, template and settings): it would fail the same way, and a run that
        re-reads a re-copied inbox should not report its old failures as new ones."""
        if row is None or row["status"] != "quarantined" or not row["sha256"]:
            return False
        own = manifest.lookup(path) if manifest is not None else None
        if row["template_hash"] != self.template_hash or \
                row["settings_hash"] != self.settings_hash(own.counting if own else {}):
            return False
        return _content(path).get("sha256") == row["sha256"]

    def register(self, paths, inbox, manifest=None, *, force: bool = False) -> list[int]:
        """Register files found in the inbox; returns the ids to process
        (new, changed, or not finished; with ``force``, all), counting the
        others as skipped."""
        from .inbox import describe

        todo, regated = [], 0
        for given in paths:
            path = Path(given).resolve()
            if not path.is_file():
                continue                              # vanished since the scan
            row = self.registry.get(path)
            if row is not None and row["status"] in ("pending", "running"):
                todo.append(row["id"])
                continue
            if not force and self.current(path, manifest) is None \
                    and self._same_quarantined(path, row, manifest):
                # copied again unchanged: it stays quarantined, and is current again
                self.registry.update(row["id"], mtime_ns=path.stat().st_mtime_ns)
            if not force and self.current(path, manifest) is not None:
                self.summary.skipped += 1
                self.progress({"event": "skipped", "id": row["id"], "path": str(path)})
                continue
            info = describe(given, inbox, manifest, deidentify=self.options.deidentify)
            moved = None if row is not None or force or info.error else self._moved(info)
            if moved is not None:
                # the same bytes under a new path, the old one gone: one file, not two
                self.registry.update(moved["id"], path=str(path), relpath=info.relpath,
                                     mtime_ns=info.mtime_ns)
                self.summary.skipped += 1
                self.progress({"event": "skipped", "id": moved["id"], "path": str(path)})
                continue
            info.counting = {**self.options.counting, **info.counting}
            settings = self.settings_hash(info.counting)
            same_settings = row is not None and row["template_hash"] == self.template_hash \
                and row["settings_hash"] == settings
            fields = {
                "path": str(path), "relpath": info.relpath, "size": info.size,
                "mtime_ns": info.mtime_ns, "instrument": info.instrument,
                "acquired": info.acquired, "study": info.study, "patient": info.patient,
                "sample": info.sample, "control": int(info.control),
                "counting": json.dumps(info.counting, sort_keys=True),
                "identifiers": json.dumps(info.identifiers),
                "template": self.template_name, "template_hash": self.template_hash,
                "settings_hash": settings, "software_version": self.version}
            if row is None or not row["output"] or row["study"] != info.study or \
                    row["patient"] != info.patient:
                fields.update(self._names(info, own=row["output"] if row else None))
            regated += row is not None and row["status"] == "done" and \
                row["template_hash"] != self.template_hash
            file_id = self.registry.register(fields)
            self._known[file_id] = row["sha256"] if row is not None and same_settings and \
                row["status"] == "done" and not force else None
            if info.error:
                self._quarantine(file_id, info.error, "input", **_content(path))
                continue
            todo.append(file_id)
        if self.pseudonyms is not None:
            self.pseudonyms.save()
        if regated:
            self.summary.warnings.append(
                f"the template differs from the one {regated} done file(s) were gated "
                f"with: they are gated again, and their results replaced")
        return todo

    def _names(self, info, own: str | None = None) -> dict:
        """The sample's folder (unique in the results) and its names in the outputs; the
        file's ``own`` earlier folder is not taken (a quarantined upload mended, whose
        patient keyword now reads, was named as a second file)."""
        study = safe_folder(info.study)
        if self.pseudonyms is not None:
            patient = self.pseudonyms.patient(info.study, info.patient)
            sample = self.pseudonyms.sample(info.study, info.relpath)
            self.pseudonyms.date_shift(info.study, info.patient)     # recorded in the key
            alias = f"{patient}_{sample}" if patient else sample
        else:
            patient = info.patient
            alias = safe_folder(info.sample_name)
        taken = self.registry.outputs_taken() - {own}
        base = alias if self.options.flat else f"{study}/{alias}"
        output, n = base, 1
        while output in taken or output in RESERVED:
            n += 1
            output = f"{base}_{n}"
        if output != base and self.pseudonyms is None:
            # two files whose sample names clash (one manifest name twice, names that differ
            # only in characters a folder cannot hold): said, since the tables name the folder
            self.summary.warnings.append(f"{info.path}: sample name {info.sample_name!r} is "
                                         f"taken; its results are {output!r}")
        return {"output": output, "alias": output.rsplit("/", 1)[-1], "patient_alias": patient}

    def forget_except(self, paths) -> int:
        """Remove the rows, outputs and quarantine links of files not in ``paths``
        (a study pipeline's gate folder mirrors its current inputs)."""
        keep = {str(Path(p).resolve()) for p in paths}
        gone = 0
        for row in self.registry.rows():
            if row["path"] in keep:
                continue
            if row["output"]:
                shutil.rmtree(self.results / row["output"], ignore_errors=True)
            _unquarantine(self.results, row)
            with self.registry.transaction() as c:
                c.execute("DELETE FROM files WHERE id = ?", (row["id"],))
            gone += 1
        return gone

    # -- processing ------------------------------------------------------------------
    def _job(self, row):
        from .job import Job

        o = self.options
        deid = None
        if o.deidentify:
            identifiers = json.loads(row["identifiers"] or "[]") + [
                row["relpath"], row["patient"] or "", row["sample"] or ""]
            deid = {"date_shift_days": self.pseudonyms.date_shift(row["study"],
                                                                  row["patient"] or ""),
                    "identifiers": [i for i in identifiers if i],
                    "drop": tuple(o.drop_keywords), "layout_only": o.layout_keywords_only}
        return Job(file_id=row["id"], path=row["path"], results=str(self.results),
                   output=row["output"], template=self.template,
                   counting=json.loads(row["counting"] or "{}"), plots=o.plots,
                   anndata=o.anndata, fcs=o.export_fcs, exclude_anomalies=o.exclude_anomalies,
                   deidentify=deid, known_sha256=self._known.get(row["id"]),
                   stamp=f"{row['template_hash']}:{row['settings_hash']}")

    def process(self, ids, executor, *, idle_timeout: float | None = None) -> None:
        """Run the jobs of ``ids`` on ``executor`` until all are recorded."""
        queue = deque(dict.fromkeys(ids))
        inflight: set[int] = set()
        while queue or inflight:
            while queue and len(inflight) < executor.capacity:
                file_id = queue.popleft()
                if file_id in inflight:
                    continue
                row = self.registry.by_id(file_id)
                job = self._job(row)
                self.registry.start(file_id)
                worker = executor.submit(file_id, self.job, job)
                if worker:
                    self.registry.update(file_id, worker=worker)
                inflight.add(file_id)
                self.progress(_event("started", row))
            for outcome in executor.wait(idle_timeout):
                inflight.discard(outcome.key)
                if self._record(outcome):
                    queue.appendleft(outcome.key)       # a worker died: try again first

    def _record(self, outcome) -> bool:
        """Record one outcome; True when the file should be tried again."""
        from .pool import describe_death

        file_id = outcome.key
        row = self.registry.by_id(file_id)
        if outcome.kind == "died":
            why = (f"the worker process died while gating this file "
                   f"({describe_death(outcome.value)})" if outcome.value is not None else
                   "the worker process died while gating this file")
            if row["attempts"] < self.options.max_attempts:
                self.summary.retried += 1
                self.registry.fail(file_id, "pending", why, "worker")
                self.progress(_event("retry", row, message=why))
                return True
            self._quarantine(file_id, f"{why}, {row['attempts']} times; it was not tried "
                                      "again", "worker", worker=outcome.worker)
            return False
        if outcome.kind == "error":
            last = str(outcome.value).strip().splitlines()[-1] if outcome.value else "?"
            self._failed(file_id, f"{row['path']}: internal error ({last}); please report it",
                         "internal", worker=outcome.worker)
            return False
        result = outcome.value
        common = {"worker": result.get("worker", outcome.worker),
                  "peak_rss_mb": result.get("peak_rss_mb")}
        if "sha256" in result:
            common.update(sha256=result["sha256"], size=result["size"])
        status = result["status"]
        if status == "unchanged":                  # touched, not changed: nothing was redone
            self.registry.update(file_id, status="done", finished=now(),
                                 attempts=max(row["attempts"] - 1, 0),
                                 mtime_ns=os.stat(row["path"]).st_mtime_ns, **common)
            self.summary.skipped += 1
            self.progress(_event("skipped", row))
            return False
        if status == "failed":
            common["seconds"] = json.dumps(result.get("seconds", {}))
            if result.get("error") in ("internal", "output"):
                # the input is not at fault: failed (retried by `batch retry --failed`), not
                # quarantined
                self._failed(file_id, result["message"], result["error"], **common)
            else:
                self._quarantine(file_id, result["message"], "input", **common)
            return False
        missing = [p for p in result.get("outputs", []) if not (self.results / p).is_file()]
        if missing or not result.get("outputs"):
            self._failed(file_id, f"{row['path']}: outputs missing after gating "
                                  f"({', '.join(missing[:3]) or 'none written'})", "internal",
                         **common)
            return False
        self.registry.finish(file_id, {
            **common, "events": result["events"], "qc_status": status,
            "qc_flags": json.dumps(result["qc_flags"]), "outputs": json.dumps(result["outputs"]),
            "seconds": json.dumps(result["seconds"])}, result.get("populations", []))
        _unquarantine(self.results, row)
        self.summary.done += 1
        self.progress(_event("done", row, alias=row["alias"], status=status,
                             events=result["events"],
                             seconds=result["seconds"].get("total")))
        return False

    def _failed(self, file_id: int, error: str, kind: str, **fields) -> None:
        row = self.registry.by_id(file_id)
        _set_aside_previous(self.results, row)
        self.registry.fail(file_id, "failed", error, kind, **fields)
        self.summary.failed += 1
        self.summary.failures.append((row["path"], error))
        self.progress(_event("failed", row, message=error))

    def _quarantine(self, file_id: int, error: str, kind: str, **fields) -> None:
        row = self.registry.by_id(file_id)
        _set_aside_previous(self.results, row)
        self.registry.fail(file_id, "quarantined", error, kind, **fields)
        _link_into_quarantine(self.results, row, error)
        self.summary.failed += 1
        self.summary.quarantined += 1
        self.summary.failures.append((row["path"], error))
        self.progress(_event("quarantined", row, message=error))

    def _moved(self, info):
        """The done row of this file before it moved within the inbox: its old path is
        gone and its content (size, then SHA-256) and study are the same; else None."""
        from .job import sha256_file

        gone = [r for r in self.registry.done_like(info.size, info.study)
                if not Path(r["path"]).exists()]
        if not gone:
            return None
        digest = sha256_file(info.path)
        return next((r for r in gone if r["sha256"] == digest), None)

    def refuse_unencodable(self, files) -> list:
        """The files whose names the registry can store; each other one is a failure of
        this run, named in a printable form (it cannot be registered or quarantined)."""
        kept = []
        for path in files:
            shown = unencodable_name(path)
            if shown is None:
                kept.append(path)
                continue
            self.summary.failed += 1
            self.summary.failures.append((shown, NOT_UTF8))
            self.progress({"event": "failed", "id": None, "path": shown,
                           "message": f"{shown}: {NOT_UTF8}"})
        return kept

    # -- after a run -------------------------------------------------------------------
    def write_tables(self) -> None:
        """Per study: the population yields of every done file, and an index page."""
        from .tables import write_study_tables

        write_study_tables(self.registry, self.results, deidentified=self.options.deidentify,
                           pseudonyms=self.pseudonyms, problems=self.summary.warnings)


def _event(kind: str, row, **fields) -> dict:
    """A progress event for one registered file: ``path`` is where it was read, ``upload``
    its name in the inbox (a link's own name, not its target's)."""
    return {"event": kind, "id": row["id"], "path": row["path"], "upload": row["relpath"],
            **fields}


def _content(path: Path) -> dict:
    """The file's size and SHA-256 for the registry, or nothing where it cannot be read."""
    from .job import sha256_file

    try:
        return {"size": path.stat().st_size, "sha256": sha256_file(path)}
    except OSError:
        return {}


def _quarantine_path(results: Path, row) -> Path:
    flat = row["relpath"].replace("/", "__")
    return results / QUARANTINE / safe_folder(row["study"]) / flat


def _link_into_quarantine(results: Path, row, error: str) -> None:
    """A link to the failed input (a hard link keeps the bytes even if the inbox
    is cleaned; a symbolic link across file systems) and the reason beside it."""
    from ..atomic import write_text

    link = _quarantine_path(results, row)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    try:
        os.link(row["path"], link)
    except OSError:
        try:
            os.symlink(row["path"], link)
        except OSError:
            pass
    write_text(link.with_name(link.name + ".reason.txt"),
               f"{row['path']}\n{now()}\n{error}\n")


def _unquarantine(results: Path, row) -> None:
    link = _quarantine_path(results, row)
    link.unlink(missing_ok=True)
    link.with_name(link.name + ".reason.txt").unlink(missing_ok=True)
    shutil.rmtree(link.with_name(link.name + PREVIOUS), ignore_errors=True)


#: beside a quarantined file: the results of its earlier content, set aside
PREVIOUS = ".previous-results"


def _set_aside_previous(results: Path, row) -> None:
    """Move the results of a file's earlier content out of its study when the file now
    fails (a broken re-upload, or a template it cannot be gated with): the study's folders
    then hold what the registry lists, and a cohort built from them cannot take results
    the file no longer has. They are kept beside its quarantine link."""
    folder = results / row["output"] if row["output"] else None
    if folder is None or not (folder / "summary.json").is_file():
        return
    aside = _quarantine_path(results, row)
    aside = aside.with_name(aside.name + PREVIOUS)
    try:
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(folder, aside)
    except OSError:
        pass            # a folder that cannot be written keeps them; the registry says why


# ----------------------------------------------------------------------------- entry points
def _check_executor(options: BatchOptions) -> None:
    """The executor's options, checked before a results folder is touched."""
    if options.scheduler and options.cluster:
        raise BatchError("give --scheduler or --cluster, not both")
    if options.cluster:
        from .dask import parse_cluster
        parse_cluster(options.cluster)


def make_executor(options: BatchOptions, jobs: int | None = None):
    """Local worker processes (no more than ``jobs``), or a Dask cluster when
    asked for one."""
    _check_executor(options)
    if options.scheduler or options.cluster:
        from .dask import DaskExecutor, parse_cluster

        n = parse_cluster(options.cluster) if options.cluster else None
        return DaskExecutor(options.scheduler, local_workers=n)
    from .pool import LocalPool

    n = max(1, int(options.workers))
    return LocalPool(min(n, jobs) if jobs else n)


@contextmanager
def _scheduler_first(options: BatchOptions, executor=None):
    """The executor to use: the one given, or, for a remote Dask scheduler, a connection
    made now, so that a wrong address is refused before a file is registered or a
    results folder made (local workers start only when there is work)."""
    if executor is not None or not options.scheduler:
        yield executor
        return
    with make_executor(options) as reached:
        yield reached


class open_batch:
    """``with open_batch(results, options) as batch:`` locks the results folder,
    opens the registry and recovers from an interrupted run."""

    def __init__(self, results, options: BatchOptions | None = None, *, progress=None,
                 job=None, command: str = "immunomon batch run"):
        self.results = Path(results)
        self.options = options or BatchOptions()
        self._kw = {"progress": progress, "job": job}
        self._command = command

    def __enter__(self) -> Batch:
        made = not self.results.exists()
        fresh = not (self.results / REGISTRY).exists()
        self._lock = results_lock(self.results, self._command)
        self._lock.__enter__()
        self.registry = None
        try:
            self.registry = Registry.open(self.results, migrate=True)
            batch = Batch(self.results, self.options, self.registry, **self._kw)
            batch._known = {}
            batch.recover()
        except BaseException:
            # refused before any file (a bad template or key): leave no new registry or
            # folder behind, as if the command had not run
            if self.registry is not None:
                self.registry.close()
            if fresh:
                for name in (REGISTRY, f"{REGISTRY}-wal", f"{REGISTRY}-shm"):
                    (self.results / name).unlink(missing_ok=True)
            self._lock.__exit__(None, None, None)
            if made and not any(self.results.iterdir()):
                self.results.rmdir()
            raise
        self.batch = batch
        return batch

    def __exit__(self, *exc):
        try:
            # anything still marked running was interrupted: it runs again next time
            if exc[0] is not None:
                for row in self.registry.rows("running"):
                    self.registry.update(row["id"], status="pending")
            self.registry.close()
        finally:
            self._lock.__exit__(None, None, None)


def run_batch(inbox, results, options: BatchOptions | None = None, *, progress=None,
              job=None, report: bool = True, executor=None) -> BatchSummary:
    """Process every FCS file under ``inbox`` into ``results``; see the module docstring.

    ``progress(event)`` receives a dict per step (``event``: queued, started,
    done, skipped, retry, failed, quarantined). ``executor``: a ``LocalPool``
    or ``DaskExecutor`` to use (and leave open) instead of one made from the
    options; ``job`` replaces the per-file job (it must be importable by the
    workers)."""
    from .inbox import read_manifest, scan_inbox
    from .pool import refuse_while_bootstrapping

    refuse_while_bootstrapping()
    options = options or BatchOptions()
    _check_executor(options)
    started = time.monotonic()
    dangling: list[str] = []
    files = scan_inbox(inbox, exclude=[results], dangling=dangling)
    manifest = read_manifest(options.manifest, inbox) if options.manifest else None
    with _scheduler_first(options, executor) as executor, \
            open_batch(results, options, progress=progress, job=job) as batch:
        batch.summary.found = len(files)
        batch.summary.warnings += dangling
        if manifest is not None:
            batch.summary.warnings += manifest.unmatched(files)
        files = batch.refuse_unencodable(files)
        todo = batch.register(files, inbox, manifest)
        _process(batch, todo, executor)
        batch.summary.warnings += batch.registry.same_bytes(todo)
        batch.summary.seconds = round(time.monotonic() - started, 2)
        batch.write_tables()
        if report:
            batch.summary.report = str(_report(batch))
        return batch.summary


def retry_batch(results, options: BatchOptions | None = None, *, failed: bool = False,
                progress=None, job=None, report: bool = True) -> BatchSummary:
    """Finish the registry's unfinished files (pending, interrupted) without
    scanning the inbox; with ``failed``, failed and quarantined files too."""
    results = Path(results)
    Registry.open(results, create=False).close()
    options = _recorded_options(results, options or BatchOptions())
    _check_executor(options)
    started = time.monotonic()
    with _scheduler_first(options) as executor, \
            open_batch(results, options, progress=progress, job=job,
                       command="immunomon batch retry") as batch:
        if failed:
            batch.registry.requeue("failed", "quarantined", reset_attempts=True)
        todo = [r["id"] for r in batch.registry.rows("pending")]
        for row in batch.registry.rows("pending"):
            if not Path(row["path"]).is_file():
                batch._quarantine(row["id"], f"{row['path']}: the file is gone from the "
                                             "inbox", "input")
                todo.remove(row["id"])
        batch.summary.found = len(todo)
        _process(batch, todo, executor)
        batch.summary.seconds = round(time.monotonic() - started, 2)
        batch.write_tables()
        if report:
            batch.summary.report = str(_report(batch))
        return batch.summary


def _recorded_options(results: Path, options: BatchOptions) -> BatchOptions:
    """Retry with the settings the results were made with (template, mode)."""
    reg = Registry.open(results, create=False)
    try:
        recorded = reg.get_meta("options")
    finally:
        reg.close()
    if recorded is None:
        return options
    data = json.loads(recorded)
    keep = {k: getattr(options, k) for k in ("workers", "scheduler", "cluster", "max_attempts")}
    data["drop_keywords"] = tuple(data.get("drop_keywords", ()))
    data = {k: v for k, v in data.items() if k in BatchOptions.__dataclass_fields__}
    return BatchOptions(**{**data, **keep})


def _remember_options(batch: Batch) -> None:
    recorded = {k: v for k, v in asdict(batch.options).items()
                if k not in ("workers", "scheduler", "cluster", "max_attempts")}
    # a template or manifest file by its absolute path: a retry may start anywhere
    for key in ("template", "manifest"):
        if recorded.get(key) and Path(recorded[key]).is_file():
            recorded[key] = str(Path(recorded[key]).resolve())
    batch.registry.set_meta("options", json.dumps(recorded, default=list))


def _process(batch: Batch, todo, executor=None) -> None:
    _remember_options(batch)
    batch.progress({"event": "queued", "total": len(todo)})
    if not todo:
        return
    if executor is not None:
        batch.process(todo, executor)
        return
    with make_executor(batch.options, len(todo)) as executor:
        batch.process(todo, executor)


def _report(batch: Batch) -> Path:
    from .report import write_report

    return write_report(batch.results)


def watch_inbox(inbox, results, options: BatchOptions | None = None, *, settle: float = 30.0,
                marker: str | None = ".done", interval: float = 10.0, progress=None,
                job=None, rounds: int | None = None) -> BatchSummary:
    """Process uploads as they arrive until interrupted (or ``rounds`` polls).

    A file is taken once it has stopped changing for ``settle`` seconds, or
    as soon as its sidecar marker (``<file><marker>``) exists. The workers stay
    up between polls; tables and the report are refreshed after each round
    that processed something."""
    from .inbox import Stability, read_manifest, scan_inbox

    options = options or BatchOptions()
    stability = Stability(settle, marker)
    _check_executor(options)
    scan_inbox(inbox, exclude=[results])        # not a folder: refused before anything
    # the workers (or a remote scheduler) first: one that cannot start or be reached
    # leaves no results folder behind
    with make_executor(options) as executor, \
            open_batch(results, options, progress=progress, job=job,
                       command="immunomon batch watch") as batch:
        n = 0
        _remember_options(batch)
        pending = [r["id"] for r in batch.registry.rows("pending")]
        written = (0, 0)
        refused: set = set()
        try:
            while rounds is None or n < rounds:
                n += 1
                manifest = read_manifest(options.manifest, inbox) if options.manifest else None
                new = [p for p in scan_inbox(inbox, exclude=[results]) if p not in refused]
                named = batch.refuse_unencodable(new)       # each reported once
                refused.update(set(new) - set(named))
                ready = [p for p in named if batch.current(p.resolve(), manifest)
                         is None and stability.ready(p)]
                todo = pending + batch.register(ready, inbox, manifest)
                pending = []
                if todo:
                    batch.progress({"event": "queued", "total": len(todo)})
                    batch.process(todo, executor)
                if (batch.summary.done, batch.summary.failed) != written:
                    batch.write_tables()
                    batch.summary.report = str(_report(batch))
                    written = (batch.summary.done, batch.summary.failed)
                if rounds is None or n < rounds:
                    time.sleep(interval)
        except KeyboardInterrupt:
            # stopped: the tables and the report still show every file that was done
            if (batch.summary.done, batch.summary.failed) != written:
                batch.write_tables()
                _report(batch)
            raise
        return batch.summary


__all__ = ["BatchOptions", "BatchSummary", "Batch", "open_batch", "run_batch", "retry_batch",
           "watch_inbox", "make_executor", "ImmunomonError"]
