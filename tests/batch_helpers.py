"""Shared pieces of the batch tests: simulated inboxes and jobs whose worker dies.

The jobs live in an importable module because worker processes (spawned, or
Dask workers) import the job function by name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path

from immunomon import write_fcs
from immunomon.simulate import pbmc_sample

EVENTS = 3000


def write_sample(path: Path, seed: int, *, n: int = EVENTS, keywords: dict | None = None,
                 start: dt.datetime | None = None):
    """A simulated blood sample written as FCS; returns the SimulatedSample."""
    sim = pbmc_sample(n, seed=seed, start=start)
    sim.sample.keywords.update(keywords or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_fcs(path, sim.sample)
    return sim


def make_inbox(root: Path, n_patients: int = 3, n_controls: int = 2, broken: bool = True):
    """StudyA: patients P01.. and control tubes QC_1..; StudyB: one patient and,
    with ``broken``, a truncated FCS file and a file that is not FCS at all."""
    sims = {}
    for i in range(1, n_patients + 1):
        sims[f"StudyA/P{i:02d}_M1.fcs"] = write_sample(
            root / "StudyA" / f"P{i:02d}_M1.fcs", seed=i, keywords={"PATIENT ID": f"UPN{i:03d}"},
            start=dt.datetime(2024, 3, i, 9, 30))
    for j in range(1, n_controls + 1):
        sims[f"StudyA/QC_{j}.fcs"] = write_sample(
            root / "StudyA" / f"QC_{j}.fcs", seed=100 + j, start=dt.datetime(2024, 3, j, 8, 0))
    sims["StudyB/P09_M3.fcs"] = write_sample(root / "StudyB" / "P09_M3.fcs", seed=9,
                                             keywords={"PATIENT ID": "UPN009"})
    if broken:
        good = (root / "StudyB" / "P09_M3.fcs").read_bytes()
        (root / "StudyB" / "truncated.fcs").write_bytes(good[: len(good) // 2])
        (root / "StudyB" / "notes.fcs").write_bytes(b"this is a text file, not FCS\n")
    return sims


def registry_rows(results: Path) -> list[dict]:
    """The registry's rows, read as another process would ([] before it exists)."""
    path = Path(results) / "registry.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM files ORDER BY id")]
    except sqlite3.OperationalError:          # not created yet
        return []
    finally:
        conn.close()


def wait_for(condition, *, step: float = 0.1, limit: int = 6000):
    """Poll until ``condition()`` is true (a generous bound keeps a broken
    test from hanging forever; it is not a speed requirement)."""
    for _ in range(limit):
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition never became true")


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


# -- jobs for worker-death tests -------------------------------------------------------
def die_on_poison(job):
    """The real job, except that a file named *poison* kills its worker every time."""
    from immunomon.batch.job import run_job

    if "poison" in Path(job.path).name:
        os._exit(7)
    return run_job(job)


def die_once(job):
    """The real job, except that the first try of a file named *flaky* kills its worker."""
    from immunomon.batch.job import run_job

    marker = Path(job.path).with_suffix(".died")
    if "flaky" in Path(job.path).name and not marker.exists():
        marker.write_text(json.dumps({"pid": os.getpid()}))
        os._exit(3)
    return run_job(job)
