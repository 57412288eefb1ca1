"""The batch registry: one SQLite database per results folder, one row per input file.

It is the single source of truth for what was done. Only the coordinating
process writes it (workers return their results to it); ``batch status`` and
``batch report`` may read it at any time, as SQLite's write-ahead log lets
readers and the writer work at once. A file moves through the statuses

    pending -> running -> done | failed | quarantined

and turns ``done`` only in the same transaction that records its outputs,
after the coordinator has checked that they exist.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from ..errors import ImmunomonError

REGISTRY = "registry.sqlite"
SCHEMA_VERSION = 2
STATUSES = ("pending", "running", "done", "failed", "quarantined")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id               INTEGER PRIMARY KEY,
    path             TEXT NOT NULL UNIQUE,   -- absolute path of the input file
    relpath          TEXT NOT NULL,          -- relative to the inbox
    sha256           TEXT,
    size             INTEGER,
    mtime_ns         INTEGER,
    instrument       TEXT,
    acquired         TEXT,                   -- ISO date or date-time, from $DATE and $BTIM
    study            TEXT NOT NULL,
    patient          TEXT,
    sample           TEXT,
    control          INTEGER NOT NULL DEFAULT 0,
    alias            TEXT,                   -- the sample's name in the outputs
    patient_alias    TEXT,                   -- the patient's name in the outputs
    counting         TEXT,                   -- JSON: counting inputs from the manifest
    identifiers      TEXT,                   -- JSON: names and ids kept out of outputs
    status           TEXT NOT NULL CHECK (status IN
                         ('pending', 'running', 'done', 'failed', 'quarantined')),
    error            TEXT,
    error_kind       TEXT,                   -- input, internal, worker
    attempts         INTEGER NOT NULL DEFAULT 0,
    template         TEXT,
    template_hash    TEXT,
    settings_hash    TEXT,
    software_version TEXT,
    output           TEXT UNIQUE,            -- the sample folder, relative to the results
    outputs          TEXT,                   -- JSON: every output file, relative
    events           INTEGER,
    qc_status        TEXT,                   -- ok, warning or failure (the worst QC level)
    qc_flags         TEXT,                   -- JSON list
    seconds          TEXT,                   -- JSON: hash, read, gate, write, total
    peak_rss_mb      REAL,
    worker           TEXT,
    registered       TEXT NOT NULL,
    started          TEXT,
    finished         TEXT
);
CREATE INDEX IF NOT EXISTS files_status ON files(status);
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
CREATE TABLE IF NOT EXISTS populations (
    file_id            INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    population         TEXT NOT NULL,
    parent             TEXT,
    count              INTEGER,
    percent_of_parent  REAL,
    cells_per_ul       REAL,
    percent_near_cut   REAL,                 -- schema 2
    PRIMARY KEY (file_id, population)
);
"""

#: What brings a registry of each older schema to the next one. Only additions, so a
#: registry an older batch wrote keeps every row; values the older one did not record
#: stay empty until their files are processed again.
_MIGRATIONS = {
    1: "ALTER TABLE populations ADD COLUMN percent_near_cut REAL;",
}

#: The population columns kept for each done file, as its ``populations.csv`` names them.
POPULATION_COLUMNS = ("population", "parent", "count", "percent_of_parent", "cells_per_ul",
                      "percent_near_cut")


class BatchError(ImmunomonError):
    """A batch cannot run as asked (locked results, wrong settings, no registry)."""


class BatchLocked(BatchError):
    """Another batch process holds the results folder."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- lock
@contextmanager
def results_lock(results, command: str = "immunomon batch"):
    """Hold the results folder for this process (the shared ``atomic.folder_lock``,
    so a batch, ``immunomon gate`` and a pipeline never write into one folder at
    once), or raise ``BatchLocked`` naming the process that holds it. The lock
    goes with its process, so a killed batch never leaves a stale lock."""
    from ..atomic import LOCK_NAME, FolderInUseError, folder_lock

    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    lock = folder_lock(results, wait=False)
    try:
        lock.__enter__()
    except FolderInUseError as exc:
        raise BatchLocked(f"{exc} ({command} stopped: two runs on one results folder would "
                          "process files twice)") from None
    try:
        yield results / LOCK_NAME
    finally:
        lock.__exit__(None, None, None)


# ----------------------------------------------------------------------------- registry
class Registry:
    """The registry of one results folder. Open it with ``Registry.open``."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, results, *, create: bool = True, readonly: bool = False,
             migrate: bool = False) -> "Registry":
        """The registry of ``results``. An older schema is brought up to date only with
        ``migrate``, which only a process holding the results folder (``results_lock``)
        may ask: a batch an older immunomon is still running writes rows of the schema
        it began with."""
        path = Path(results) / REGISTRY
        existed = path.exists()
        if not existed and not create:
            raise BatchError(f"{results}: no batch registry here ({REGISTRY}); run "
                             "`immunomon batch run INBOX --out RESULTS` first")
        # SQLite's -wal and -shm files that opening a file it then refuses may leave
        sidecars = [side for side in (path.with_name(f"{path.name}-{end}")
                                      for end in ("wal", "shm")) if not side.exists()]
        conn = None
        try:
            conn = _read_only(path) if readonly else \
                sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            reg = cls(conn, path)
            # an existing file is ours before anything is written to it: a damaged or
            # foreign one (an empty file, another program's database) is refused as it is
            version = reg.get_meta("schema_version") if existed else None
            if existed and version is None:
                raise sqlite3.DatabaseError("it records no registry schema")
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            for sidecar in sidecars:         # a refused file is left as it was found
                sidecar.unlink(missing_ok=True)
            raise BatchError(f"{path}: not a usable batch registry ({exc})") from None
        if version is None:
            reg.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) > SCHEMA_VERSION:
            conn.close()
            raise BatchError(f"{path}: registry schema {version}, this immunomon reads "
                             f"{SCHEMA_VERSION} and older; use the immunomon version that "
                             "wrote it")
        elif int(version) < SCHEMA_VERSION and migrate and not readonly:
            reg._migrate(int(version))
        return reg

    def _migrate(self, version: int) -> None:
        """Bring the schema from ``version`` to ``SCHEMA_VERSION``, all in one
        transaction (a registry is never left half migrated)."""
        with self.transaction() as c:
            for step in range(version, SCHEMA_VERSION):
                c.execute(_MIGRATIONS[step])
            c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                      (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta ------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- rows ------------------------------------------------------------------
    def get(self, path) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM files WHERE path = ?",
                                 (str(path),)).fetchone()

    def by_id(self, file_id: int) -> sqlite3.Row:
        return self.conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()

    def rows(self, *statuses: str) -> list[sqlite3.Row]:
        if statuses:
            marks = ",".join("?" * len(statuses))
            return self.conn.execute(f"SELECT * FROM files WHERE status IN ({marks}) "
                                     "ORDER BY id", statuses).fetchall()
        return self.conn.execute("SELECT * FROM files ORDER BY id").fetchall()

    def done_like(self, size: int, study: str) -> list[sqlite3.Row]:
        """Done files of this size in this study (where a moved file is looked for)."""
        return self.conn.execute("SELECT * FROM files WHERE status = 'done' AND size = ? "
                                 "AND study = ? ORDER BY id", (size, study)).fetchall()

    def same_bytes(self, ids) -> list[str]:
        """A warning for each done file of ``ids`` whose bytes another done file holds (the
        same tube uploaded again under another name: both are in the tables)."""
        ids = set(ids)
        rows = self.conn.execute(
            "SELECT id, relpath, sha256 FROM files WHERE status = 'done' AND sha256 IN "
            "(SELECT sha256 FROM files WHERE status = 'done' AND sha256 IS NOT NULL "
            "GROUP BY sha256 HAVING count(*) > 1) ORDER BY id").fetchall()
        groups: dict[str, list] = {}
        for r in rows:
            groups.setdefault(r["sha256"], []).append(r)
        return [f"{', '.join(r['relpath'] for r in group)}: the same bytes; one tube uploaded "
                f"{len(group)} times? Each is a sample of the tables"
                for group in groups.values() if ids & {r["id"] for r in group}]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self.conn.execute("SELECT status, count(*) FROM files GROUP BY status"):
            out[status] = n
        return out

    def outputs_taken(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT output FROM files WHERE output "
                                                "IS NOT NULL")}

    def register(self, fields: dict) -> int:
        """Insert a file as pending, or set an existing row (same path) back to
        pending with new facts. Returns its id."""
        fields = {**fields, "status": "pending", "error": None, "error_kind": None}
        existing = self.get(fields["path"])
        with self.transaction() as c:
            if existing is None:
                fields.setdefault("registered", now())
                cols = ", ".join(fields)
                c.execute(f"INSERT INTO files ({cols}) VALUES ({','.join('?' * len(fields))})",
                          list(fields.values()))
                return c.execute("SELECT id FROM files WHERE path = ?",
                                 (fields["path"],)).fetchone()[0]
            self._update(c, existing["id"], fields)
            return existing["id"]

    @staticmethod
    def _update(c, file_id: int, fields: dict) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        c.execute(f"UPDATE files SET {sets} WHERE id = ?", [*fields.values(), file_id])

    def update(self, file_id: int, **fields) -> None:
        with self.transaction() as c:
            self._update(c, file_id, fields)

    def start(self, file_id: int, worker: str = "") -> None:
        with self.transaction() as c:
            c.execute("UPDATE files SET status = 'running', attempts = attempts + 1, "
                      "started = ?, worker = ? WHERE id = ?", (now(), worker, file_id))

    def finish(self, file_id: int, fields: dict, populations=()) -> None:
        """Mark a file done with its outputs and population rows, in one transaction."""
        with self.transaction() as c:
            self._update(c, file_id, {**fields, "status": "done", "error": None,
                                      "error_kind": None, "finished": now()})
            c.execute("DELETE FROM populations WHERE file_id = ?", (file_id,))
            c.executemany(f"INSERT INTO populations (file_id, {', '.join(POPULATION_COLUMNS)}) "
                          f"VALUES (?{', ?' * len(POPULATION_COLUMNS)})",
                          [(file_id, *p) for p in populations])

    def fail(self, file_id: int, status: str, error: str, kind: str, **fields) -> None:
        assert status in ("failed", "quarantined", "pending")
        with self.transaction() as c:
            self._update(c, file_id, {**fields, "status": status, "error": error,
                                      "error_kind": kind, "finished": now()})
            c.execute("DELETE FROM populations WHERE file_id = ?", (file_id,))

    def requeue(self, *statuses: str, reset_attempts: bool = False) -> int:
        marks = ",".join("?" * len(statuses))
        extra = ", attempts = 0" if reset_attempts else ""
        with self.transaction() as c:
            cur = c.execute(f"UPDATE files SET status = 'pending'{extra} "
                            f"WHERE status IN ({marks})", statuses)
            return cur.rowcount

    def populations(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM populations ORDER BY file_id").fetchall()


def population_rows(table) -> list[tuple]:
    """A sample's population table (a mapping of columns) as the registry's rows, in
    ``POPULATION_COLUMNS`` order: a missing value (None, NaN, a column the table
    lacks) is None."""
    from ..columns import select

    kinds = (str, str, int, float, float, float)

    def value(v, kind):
        return None if v is None or v != v else kind(v)

    part = select(table, POPULATION_COLUMNS)
    return [tuple(map(value, values, kinds)) for values in zip(*part.values())]


def row_dict(row: sqlite3.Row) -> dict:
    """A registry row as a plain dict, JSON columns decoded."""
    out = dict(row)
    for key in ("counting", "identifiers", "outputs", "qc_flags", "seconds"):
        if out.get(key):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    out["control"] = bool(out.get("control"))
    return out


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. In a folder this process cannot write (a results folder
    shared read-only), SQLite cannot make the shared-memory file a WAL reader needs: the
    file is then read as it stands (``immutable``), which a finished run leaves complete."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
