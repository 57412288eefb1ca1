"""What the batch knows about a file before gating it: where it is, who it belongs to.

``scan_inbox`` finds FCS files; ``read_manifest`` reads the facility's
manifest; ``describe`` reads one file's HEADER and TEXT (no events) and works
out its instrument, acquisition date, study, patient and sample identifiers
(manifest first, then keywords, then the folder and file name); ``Stability``
tells ``batch watch`` when an upload is complete.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImmunomonError

COUNTING_COLUMNS = ("beads_per_test", "volume_ul", "lymphocytes_per_ul", "leukocytes_per_ul")
#: Manifest columns and the spellings accepted for them (others are ignored).
MANIFEST_ALIASES = {
    "file": ("file", "path", "filename", "fcs"),
    "study": ("study", "study_id", "project"),
    "patient": ("patient", "patient_id", "subject", "subject_id"),
    "sample": ("sample", "sample_id"),
    "control": ("control", "is_control", "qc_control"),
    **{c: (c,) for c in COUNTING_COLUMNS},
}
#: Keywords searched (in this order, case-insensitively) when the manifest says nothing.
STUDY_KEYWORDS = ("STUDY", "STUDY ID", "STUDY_ID", "$PROJ", "PROJECT")
PATIENT_KEYWORDS = ("PATIENT ID", "PATIENT_ID", "PATIENTID", "SUBJECT ID", "SUBJECT_ID",
                    "SUBJECT", "PATIENT")
SAMPLE_KEYWORDS = ("SAMPLE ID", "SAMPLE_ID", "SAMPLEID", "$SMNO")
CONTROL_KEYWORDS = ("CONTROL", "QC CONTROL", "SAMPLE TYPE")
#: File or sample names that mark a control sample (a stabilised-blood QC tube).
CONTROL_NAME = re.compile(r"(?i)(^|[^a-z])(qc|ctrl|control|cd-?chex|immuno-?trol)([^a-z]|$)")
TRUE = {"1", "yes", "y", "true", "t", "control", "qc"}
FALSE = {"", "0", "no", "n", "false", "f"}


class InboxError(ImmunomonError):
    """The inbox or the manifest cannot be used as given."""


def scan_inbox(inbox, *, exclude=(), dangling: list | None = None) -> list[Path]:
    """Every FCS file (``.fcs``, ``.lmd``, or with no ending or a number for one and FCS
    inside: ``fcs.is_legacy_fcs``) under ``inbox`` (recursive, sorted; hidden files and
    folders, such as uploads in progress named ``.x.fcs``, are left out, and so are
    the folders ``exclude``: a results folder inside the inbox, whose exported and
    quarantined FCS files are outputs, not uploads). ``dangling``: a list that gets a
    line for each FCS-named link whose file is gone (an upload moved or deleted behind
    its link), which no run can take."""
    from ..fcs import fcs_files_under

    inbox = Path(inbox)
    if not inbox.is_dir():
        raise InboxError(f"{inbox}: the inbox is not a folder")
    skip = [Path(e).resolve() for e in exclude]
    entries = [p for p in fcs_files_under(inbox)
               if not any(p.resolve().is_relative_to(e) for e in skip)]
    if dangling is not None:
        dangling += [f"{p}: a link to {os.readlink(p)}, which does not exist; left out"
                     for p in entries if p.is_symlink() and not p.exists()]
    return [p for p in entries if p.is_file()]


# ----------------------------------------------------------------------------- manifest
@dataclass
class ManifestRow:
    study: str = ""
    patient: str = ""
    sample: str = ""
    control: bool | None = None
    counting: dict = field(default_factory=dict)
    line: int = 0


@dataclass
class Manifest:
    """Rows by resolved path, and by bare file name for rows whose path was not found."""

    source: Path
    by_path: dict[Path, ManifestRow]
    by_name: dict[str, ManifestRow]

    def lookup(self, path: Path) -> ManifestRow | None:
        """The row of a file, by its path, its name or, for a link, its target's name."""
        given, target = Path(path), Path(path).resolve()
        return self.by_path.get(target) or self.by_name.get(given.name) \
            or self.by_name.get(target.name)

    def unmatched(self, files) -> list[str]:
        """A line for each row that names none of ``files`` (a file not uploaded, or
        misspelt): its settings would otherwise be dropped without a word."""
        paths = {Path(f).resolve() for f in files}
        names = {p.name for p in paths}
        rows = [(r.line, p.name) for p, r in self.by_path.items() if p not in paths]
        rows += [(r.line, n) for n, r in self.by_name.items() if n not in names]
        return [f"{self.source}, line {line}: {name!r} is no file of the inbox"
                for line, name in sorted(rows)]


def read_manifest(path, inbox=None) -> Manifest:
    """Read the batch manifest: a CSV with a ``file`` column (a path relative
    to the manifest's folder or the inbox, or a bare file name) and any of
    ``study``, ``patient``, ``sample``, ``control`` (yes/no) and the counting
    inputs ``beads_per_test``, ``volume_ul``, ``lymphocytes_per_ul``,
    ``leukocytes_per_ul``. Other columns (a cohort manifest's visit, date...)
    are ignored, so one manifest can serve both."""
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise InboxError(f"{path}: manifest not found") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InboxError(f"{path}: cannot be read as CSV ({exc})") from None
    lower = {c.strip().lower(): c for c in table.columns}
    columns = {}
    for name, spellings in MANIFEST_ALIASES.items():
        found = [lower[s] for s in spellings if s in lower]
        if len(found) > 1:
            raise InboxError(f"{path}: columns {found} all mean {name!r}; keep one")
        if found:
            columns[name] = found[0]
    if "file" not in columns:
        raise InboxError(f"{path}: needs a 'file' column (the FCS file's path or name); "
                         f"columns are {list(table.columns)}")
    bases = [path.parent] + ([Path(inbox)] if inbox is not None else [])
    by_path: dict[Path, ManifestRow] = {}
    by_name: dict[str, ManifestRow] = {}
    seen: dict[str, int] = {}
    for line, rec in enumerate(table.to_dict(orient="records"), start=2):
        def cell(name):
            return str(rec[columns[name]]).strip() if name in columns else ""
        file = cell("file")
        if not file:
            raise InboxError(f"{path}, line {line}, column file: empty")
        if file in seen:
            raise InboxError(f"{path}, line {line}: {file!r} is listed twice (first on line "
                             f"{seen[file]}); keep one row per file")
        seen[file] = line
        control_text = cell("control").lower()
        if control_text not in TRUE | FALSE:
            raise InboxError(f"{path}, line {line}, column control: {cell('control')!r} is "
                             "not yes or no")
        counting = {}
        for c in COUNTING_COLUMNS:
            text = cell(c)
            if not text:
                continue
            try:
                number = float(text)
            except ValueError:
                number = float("nan")
            if not 0 < number < float("inf"):
                raise InboxError(f"{path}, line {line}, column {c}: {text!r} is not a "
                                 "positive number")
            counting[c] = number
        row = ManifestRow(study=cell("study"), patient=cell("patient"), sample=cell("sample"),
                          control=(control_text in TRUE) if control_text else None,
                          counting=counting, line=line)
        target = next((b / file for b in bases if (b / file).is_file()), None)
        if target is not None:
            by_path[target.resolve()] = row
        else:
            by_name[Path(file).name] = row
    return Manifest(path, by_path, by_name)


# ----------------------------------------------------------------------------- one file
@dataclass
class FileInfo:
    """What registration records about a file (no events are read)."""

    path: Path
    relpath: str
    size: int
    mtime_ns: int
    instrument: str = ""
    acquired: str = ""          # ISO date or date-time, "" when the file has none
    study: str = ""
    patient: str = ""
    sample: str = ""
    control: bool = False
    counting: dict = field(default_factory=dict)
    sample_name: str = ""       # the output folder: the manifest's sample, else the file name
    identifiers: list[str] = field(default_factory=list)   # values to keep out of outputs
    error: str = ""             # set when HEADER/TEXT cannot be read


_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG",
                                       "SEP", "OCT", "NOV", "DEC"), start=1)}


def parse_fcs_date(date: str | None, time: str | None = None) -> str:
    """ISO text from ``$DATE`` (dd-mmm-yyyy, as FCS 3.x writes it; also
    dd-mmm-yy, yyyy-mmm-dd, yyyy-mm-dd, and day and month in numbers before a four-digit
    year where the order shows: a Cytek Aurora's "06_27_2018", a Partec's "28-06-2006")
    and ``$BTIM``; "" when it cannot be read (or "03-07-2024": March or July)."""
    text = (date or "").strip()
    day = None
    m = re.fullmatch(r"(\d{1,2})[-/ ]([A-Za-z]{3})[-/ ](\d{2}|\d{4})", text)
    if m and m.group(2).upper() in _MONTHS:
        year = int(m.group(3))
        year += 2000 if year < 70 else 1900 if year < 100 else 0
        try:
            day = _dt.date(year, _MONTHS[m.group(2).upper()], int(m.group(1)))
        except ValueError:
            day = None
    m = re.fullmatch(r"(\d{4})[-/ ]([A-Za-z]{3})[-/ ](\d{1,2})", text)       # MACSQuant
    if m and m.group(2).upper() in _MONTHS:
        try:
            day = _dt.date(int(m.group(1)), _MONTHS[m.group(2).upper()], int(m.group(3)))
        except ValueError:
            day = None
    m = re.fullmatch(r"(\d{1,2})[-/_. ](\d{1,2})[-/_. ](\d{4})", text)
    if m:
        first, second = int(m.group(1)), int(m.group(2))
        if first > 12 >= second or second > 12 >= first:   # the one above 12 is the day
            month, dom = (second, first) if first > 12 else (first, second)
            try:
                day = _dt.date(int(m.group(3)), month, dom)
            except ValueError:
                day = None
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if m:
        try:
            day = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            day = None
    if day is None:
        return ""
    t = re.match(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", (time or "").strip())
    if t and int(t.group(1)) < 24 and int(t.group(2)) < 60 and int(t.group(3) or 0) < 60:
        return _dt.datetime(day.year, day.month, day.day, int(t.group(1)), int(t.group(2)),
                            int(t.group(3) or 0)).isoformat()
    return day.isoformat()


def _keyword(keywords: dict, names) -> str:
    upper = {k.strip().upper(): v for k, v in keywords.items()}
    for name in names:
        value = str(upper.get(name, "")).strip()
        if value:
            return value
    return ""


def describe(path, inbox, manifest: Manifest | None = None, *,
             deidentify: bool = False) -> FileInfo:
    """Registration facts for one file; ``error`` is set (and nothing raised)
    when its HEADER or TEXT cannot be read. With ``deidentify`` a study is named by the
    manifest or the upload folder only: a file's study keyword may hold a date or a name
    (an Accuri's $PROJ of '20190530_110743' named a study folder of de-identified
    results)."""
    from ..export import identifiers_from, identifying_values
    from ..fcs import read_fcs_metadata

    # A link is an upload where it lies, by its own name (an inbox of links to an
    # instrument share), and read where it points.
    given = Path(os.path.abspath(path))
    target = Path(path).resolve()
    rel = None
    for place, root in ((given, Path(os.path.abspath(inbox))), (target, Path(inbox).resolve())):
        try:
            rel = place.relative_to(root)
            break
        except ValueError:
            continue
    rel = rel if rel is not None else Path(given.name)
    path, stem = target, Path(rel.name).stem
    st = path.stat()
    info = FileInfo(path=path, relpath=rel.as_posix(), size=st.st_size, mtime_ns=st.st_mtime_ns)
    row = manifest.lookup(given) if manifest is not None else None
    keywords: dict = {}
    try:
        meta = read_fcs_metadata(path)
        keywords = dict(meta.keywords)
    except ImmunomonError as exc:
        info.error = str(exc)
    info.instrument = _keyword(keywords, ("$CYT",))
    info.acquired = parse_fcs_date(keywords.get("$DATE"), keywords.get("$BTIM"))
    folder = rel.parts[0] if len(rel.parts) > 1 else ""
    from_keyword = "" if deidentify else _keyword(keywords, STUDY_KEYWORDS)
    # the facility's folder before a keyword instruments fill themselves ($PROJ: a
    # date, 'Project', an experiment's name, which split one folder over three studies)
    info.study = (row.study if row and row.study else "") or folder or from_keyword or "default"
    info.patient = (row.patient if row and row.patient else "") or \
        _keyword(keywords, PATIENT_KEYWORDS)
    info.sample = (row.sample if row and row.sample else "") or \
        _keyword(keywords, SAMPLE_KEYWORDS) or stem
    info.sample_name = row.sample if row and row.sample else stem
    if row is not None and row.control is not None:
        info.control = row.control
    else:
        flag = _keyword(keywords, CONTROL_KEYWORDS).lower()
        info.control = flag in TRUE or bool(CONTROL_NAME.search(path.stem))
    info.counting = dict(row.counting) if row else {}
    # Everything that could name a person: ids, the file and folder names, and
    # the values of identifying keywords. De-identified outputs never contain them.
    names = [info.patient, row.sample if row else "", stem, rel.name, path.stem, path.name]
    names += [p for p in rel.parts[1:-1]]            # sub-folders below the study folder
    names += identifiers_from(identifying_values(keywords).values())
    info.identifiers = sorted({n.strip() for n in names if len(n.strip()) >= 3}, key=len,
                              reverse=True)
    return info


# ----------------------------------------------------------------------------- watch
class Stability:
    """Decides when an upload is complete: a sidecar marker (``<file><suffix>``,
    e.g. ``tube.fcs.done``) exists, or the file was last modified ``settle``
    seconds ago or more, or its size and modification time have not changed
    while this watcher looked at it for ``settle`` seconds (for file systems
    whose clocks disagree with ours)."""

    def __init__(self, settle: float = 30.0, marker: str | None = ".done", clock=None,
                 wall_clock=None):
        import time

        self.settle = settle
        self.marker = marker
        self._clock = clock or time.monotonic
        self._wall = wall_clock or time.time
        self._seen: dict[Path, tuple[int, int, float]] = {}

    def ready(self, path: Path) -> bool:
        path = Path(path)
        if self.marker and path.with_name(path.name + self.marker).exists():
            return True
        try:
            st = path.stat()
        except OSError:
            self._seen.pop(path, None)
            return False
        if self._wall() - st.st_mtime_ns / 1e9 >= self.settle:
            return True
        now = self._clock()
        state = (st.st_size, st.st_mtime_ns)
        last = self._seen.get(path)
        if last is None or last[:2] != state:
            self._seen[path] = (*state, now)
            return False
        return now - last[2] >= self.settle

    def forget(self, path: Path) -> None:
        self._seen.pop(Path(path), None)
