"""The batch's job on a worker: hash one file, then the same per-file job as ``immunomon gate``.

The worker reads the file itself (only its path travels), writes the sample's
folder (atomically, by ``gating.run.write_sample``) and returns a small
``dict``: the file's hash, its status and QC flags, the population yields and
the list of outputs. It never touches the registry.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """Everything a worker needs for one file (small, picklable)."""

    file_id: int
    path: str
    results: str                 # the results folder
    output: str                  # the sample folder, relative to ``results``
    template: object             # a gating.template.Template
    counting: dict = field(default_factory=dict)
    plots: str | bool = "all"
    anndata: bool = True
    fcs: bool = False
    exclude_anomalies: bool = True
    deidentify: dict | None = None    # date_shift_days, identifiers, drop
    known_sha256: str | None = None   # content already done: hash, and stop if equal
    stamp: str = ""                   # template + settings fingerprint, for provenance


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def job_stamp(sha256: str, stamp: str) -> str:
    """What ``summary.json`` records of the input and settings: enough to
    recognise the job on resume, nothing that identifies the file."""
    return hashlib.sha256(f"{sha256}:{stamp}".encode()).hexdigest()[:32]


def _peak_rss_mb() -> float:
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def run_job(job: Job) -> dict:
    """Hash, read, gate and write one file; returns a small result dict."""
    import time

    from ..export import deidentify_sample
    from ..gating.run import CountingInputs, gate_file
    from .registry import population_rows

    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        sha = sha256_file(job.path)
    except OSError as exc:
        return {"file_id": job.file_id, "status": "failed", "error": "input", "worker": worker,
                "message": f"{job.path}: cannot be read ({exc.strerror or exc})",
                "peak_rss_mb": _peak_rss_mb()}
    hashed = round(time.perf_counter() - started, 3)
    base = {"file_id": job.file_id, "sha256": sha, "size": os.path.getsize(job.path),
            "worker": worker}
    if job.known_sha256 == sha:
        return {**base, "status": "unchanged", "peak_rss_mb": _peak_rss_mb()}
    folder = Path(job.results) / job.output
    folder.parent.mkdir(parents=True, exist_ok=True)
    prepare = None
    if job.deidentify is not None:
        prepare = partial(deidentify_sample, name=folder.name, **job.deidentify)
    row, table = gate_file(
        job.path, job.template, folder.parent, name=folder.name,
        counting=CountingInputs(**job.counting), plots=job.plots, anndata=job.anndata,
        exclude_anomalies=job.exclude_anomalies, deidentify=job.deidentify is not None,
        prepare=prepare, fcs=job.fcs,
        provenance={"job": job_stamp(sha, job.stamp)})
    seconds = {"hash": hashed, **row.get("seconds", {}),
               "total": round(time.perf_counter() - started, 3)}
    out = {**base, "status": row["status"], "error": row.get("error", ""),
           "message": row["message"], "events": row["events"], "qc_flags": row["flags"],
           "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
    if table is not None:
        out["populations"] = population_rows(table)
        out["outputs"] = sorted(str(p.relative_to(job.results)) for p in folder.rglob("*")
                                if p.is_file())
    return out
