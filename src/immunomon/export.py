"""One gated sample as AnnData (scverse conventions), written to ``.h5ad`` atomically.

Layout (see DESIGN.md and docs/performance.md):

- ``.X``: events x channels, float32: compensated (the file's spillover by
  default) and transformed as the gates saw each channel, or as ``transforms``
  says; channels no gate used and ``transforms`` does not name stay linear
  (``immunomon gate`` names every fluorescence channel no gate reads, with the
  template's transform for it).
- ``.layers["raw"]``: the sample's scale values (float32), as read (the
  sample's own array, not a copy).
- ``.var``: indexed by channel name ($PnN); columns ``marker`` ($PnS, "" when
  none), ``transform`` (a description such as "Logicle(T=262144, W=0.5,
  M=4.5, A=0)", "" for linear), ``compensated`` (bool) and ``range`` ($PnR).
- ``.obs``: indexed by event number ("0", "1", ...).
- ``.obsm["gates"]``: gate membership, one boolean matrix (events x
  populations), one column per population in the order of
  ``.uns["populations"]["id"]``: one dataset in the file, however many
  populations. ``gate_membership(adata, "T cells")`` gives one column,
  ``gate_membership(adata)`` all of them as a DataFrame.
- ``.uns``: ``populations`` (``id``, ``parent``, ``count`` arrays), ``gates``
  (every gate applied, a JSON document of plain dicts: see ``gate_to_dict``;
  ``applied_gates(adata)`` reads it), ``keywords`` (the TEXT segment as
  ``name`` and ``value`` arrays, de-identified on request; ``fcs_keywords(adata)``
  gives the dict), ``sample`` (events, FCS version, file name unless
  de-identified), ``compensation`` (matrix and detectors, when applied),
  ``template`` (when given) and ``immunomon_version``.

Why arrays and documents rather than a dataset per item: HDF5 creates each
dataset at a cost of about a millisecond, and a file with a column per population,
a dataset per keyword and several per gate held hundreds of them.

h5ad stores no None: an absent parent is "" and an open bound is NaN (null in the
gates document).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImmunomonError

# -- de-identification ------------------------------------------------------------
#: Keywords dropped by ``deidentify_keywords`` (compared case-insensitively).
DEIDENTIFY_KEYWORDS = frozenset({
    "$SRC", "$CELLS", "$FIL", "$OP", "$INST", "$SMNO", "$COM", "$EXP", "$PROJ", "$PLATEID",
    "$PLATENAME", "$WELLID", "$DATE", "$LAST_MODIFIED", "$LAST_MODIFIER", "$CSVBITS",
    "GUID", "$GUID", "FILENAME", "ORIGINAL FILENAME", "ORIGINALGUID", "$ORIGINALITY",
})
#: Keywords whose name contains one of these (case-insensitive) are dropped too:
#: patient and sample identifiers, people, places and dates, whatever the vendor's spelling.
DEIDENTIFY_PATTERNS = (
    "PATIENT", "SUBJECT", "DONOR", "SAMPLE ID", "SAMPLE_ID", "SAMPLEID", "SAMPLE NAME",
    "SPECIMEN", "NAME", "USER", "OPERATOR", "BIRTH", "DOB", "MRN", "DATE", "ADDRESS",
    "PHONE", "EMAIL", "INSTITUT", "HOSPITAL", "COMMENT", "OWNER", "PHYSICIAN", "DOCTOR",
    "CLINIC", "ACCESSION", "BARCODE", "REQUEST", "CASE", "WELL", "PLATE", "FILE", "NOTE",
)
#: Keywords describing the data layout; never dropped and never searched for dates.
_LAYOUT = re.compile(r"^\$(P\d+[A-Z]+|PAR|TOT|MODE|DATATYPE|BYTEORD|NEXTDATA|BEGIN\w*|END\w*|"
                     r"SPILLOVER|COMP|TIMESTEP|BTIM|ETIM|CYT|CYTSN|VOL|TR|ABRT|LOST)$|^SPILL$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MON = "|".join(_MONTHS)
_YEAR = r"(?:19|20)\d\d"
#: Dates that can be shifted: day-month name-year as FCS writes $DATE (2- or 4-digit
#: year), year-month name-day (MACSQuant), ISO year-month-day. Digits may touch letters
#: or underscores (file names such as EY_2013-07-19_PBS), not other digits.
_SHIFTABLE_DATE = re.compile(
    rf"(?i)(?<!\d)(?P<d>\d{{1,2}})(?P<s>[-/ ])(?P<m>{_MON})(?P=s)(?P<y>{_YEAR}|\d\d)(?!\d)"
    rf"|(?<!\d)(?P<ny>{_YEAR})(?P<ns>[-/ ])(?P<nm>{_MON})(?P=ns)(?P<nd>\d{{1,2}})(?!\d)"
    rf"|(?<!\d)(?P<iy>{_YEAR})-(?P<im>\d{{2}})-(?P<id>\d{{2}})(?!\d)")
#: Dates whose day and month order is ambiguous: dropped, never guessed.
_OTHER_DATE = re.compile(rf"(?<!\d)\d{{1,2}}[/.]\d{{1,2}}[/.](?:{_YEAR}|\d\d)(?!\d)")


_ID_WORDS = frozenset({"ID", "IDS", "GUID", "UUID", "UID", "PID", "SID"})
#: Words of a keyword's name that say a person or a place is in its value (whole words:
#: "DR" in REFERRING DR, not in ADDRESS): a REFERRING DR of "Dr. House" was kept
_PERSON_WORDS = frozenset({"DR", "MD", "RN", "PI", "DOC", "REFERRING", "REFERRER",
                           "PRESCRIBER", "CONSULTANT", "PROVIDER", "ORDERING", "ORDERED",
                           "NURSE", "TECHNICIAN", "TECH", "WARD", "BED", "ROOM", "SITE",
                           "LOCATION", "CONTACT", "SIGNED", "REVIEWER", "APPROVER"})
#: A value that names someone by title ("Dr. House", "Prof Schmidt") drops its keyword
#: whatever the keyword is called
_TITLED_NAME = re.compile(r"\b(?:Dr|Prof|Mr|Mrs|Ms|Miss|Sr|Sra)\.?\s+[A-Z][\w'-]+")


def _identifying_name(key: str) -> bool:
    k = key.strip().upper()
    words = set(re.split(r"[^A-Z0-9]+", k))
    return (k in DEIDENTIFY_KEYWORDS or any(p in k for p in DEIDENTIFY_PATTERNS)
            or bool(words & _ID_WORDS) or bool(words & _PERSON_WORDS))


def identifying_values(keywords: dict[str, str]) -> dict[str, str]:
    """The keywords ``deidentify_keywords`` drops for their name (with their values)."""
    return {k: v for k, v in keywords.items()
            if not _LAYOUT.match(k.strip().upper()) and _identifying_name(k)}


def identifiers_from(values) -> list[str]:
    """Strings to keep out of outputs, from identifying values: each value, and
    each capitalised word of 4 letters or more in it ("Dr. Heinrich Obermeyer"
    gives "Heinrich" and "Obermeyer"), so a name is caught when it turns up
    alone in some other keyword or message."""
    out = set()
    for value in values:
        text = str(value).strip()
        if len(text) >= 3:
            out.add(text)
        out.update(w for w in re.findall(r"[A-Za-z]{4,}", text) if w[0].isupper())
    return sorted(out, key=lambda t: (-len(t), t))


def shift_dates(text: str, days: int) -> str:
    """``text`` with every date ``_SHIFTABLE_DATE`` finds moved by ``days``, written
    back in its own format (month-name case, 2- or 4-digit year); impossible
    dates are left alone."""
    import datetime as dt

    def month_name(number: int, like: str) -> str:
        name = _MONTHS[number - 1]
        return name if like.isupper() else name.capitalize() if like[0].isupper() \
            else name.lower()

    def moved(m):
        try:
            if m.group("iy"):
                day = dt.date(int(m.group("iy")), int(m.group("im")), int(m.group("id")))
                return (day + dt.timedelta(days=days)).isoformat()
            if m.group("ny"):
                day = dt.date(int(m.group("ny")), _MONTHS.index(m.group("nm").upper()) + 1,
                              int(m.group("nd"))) + dt.timedelta(days=days)
                sep = m.group("ns")
                return f"{day.year}{sep}{month_name(day.month, m.group('nm'))}{sep}" \
                       f"{day.day:0{len(m.group('nd'))}d}"
            year = int(m.group("y"))
            short = len(m.group("y")) == 2
            year += (2000 if year < 70 else 1900) if short else 0
            day = dt.date(year, _MONTHS.index(m.group("m").upper()) + 1,
                          int(m.group("d"))) + dt.timedelta(days=days)
        except ValueError:
            return m.group(0)
        sep = m.group("s")
        shown = f"{day.year % 100:02d}" if short else str(day.year)
        return f"{day.day:02d}{sep}{month_name(day.month, m.group('m'))}{sep}{shown}"

    return _SHIFTABLE_DATE.sub(moved, text)


def _contains(text: str, identifiers) -> bool:
    low = text.casefold()
    return any(i.casefold() in low for i in identifiers)


def deidentify_keywords(keywords: dict[str, str], *, date_shift_days: int | None = None,
                        identifiers=(), drop=(), layout_only: bool = False) -> dict[str, str]:
    """The keywords without patient and sample identifiers.

    Drops every keyword in ``DEIDENTIFY_KEYWORDS`` ($SRC, $CELLS, $FIL, $OP,
    $INST, $SMNO, $COM, $EXP, $PROJ, plate and well ids, $DATE, $LAST_MODIFIED,
    $LAST_MODIFIER, GUIDs, file names), every keyword whose name contains one of
    ``DEIDENTIFY_PATTERNS`` (PATIENT ID, SAMPLE ID, EXPORT USER NAME, TUBE NAME,
    any ...DATE...), an ``ID`` word or a word naming a person or a place (REFERRING DR,
    WARD), the keywords named in ``drop``, any whose value names someone by title
    ("Dr. House"), and any
    keyword whose value contains one of ``identifiers`` (ids or names known
    from elsewhere) or a value or name dropped above (``identifiers_from``;
    compared case-insensitively). Dates anywhere in the values
    (an EXPORT TIME such as 16-JAN-2024-12:05:33 too) are removed with their
    keyword or, when ``date_shift_days`` is given, moved by that many days
    ($DATE and other dd-MMM-yyyy or yyyy-mm-dd dates; dates with an ambiguous
    day/month order are always removed). Times of day ($BTIM, $ETIM), the data
    layout and instrument settings stay, as they identify no one. With ``layout_only``
    nothing else stays: the keywords the FCS standard defines for the data layout and
    acquisition (``_LAYOUT``), and $DATE when shifted.
    """
    drop = {d.strip().upper() for d in drop}

    def is_date_key(k: str) -> bool:
        return "DATE" in k or k == "$LAST_MODIFIED"

    def by_name(k: str) -> bool:
        """Dropped for its name (a date keyword is kept to be shifted, when shifting)."""
        return k in drop or (_identifying_name(k) and not (is_date_key(k) and date_shift_days))

    named = [v for k, v in keywords.items()
             if not _LAYOUT.match(k.strip().upper())
             and (by_name(k.strip().upper()) or _TITLED_NAME.search(str(v)))]
    identifiers = [i for i in [*identifiers, *identifiers_from(named)]
                   if len(str(i).strip()) >= 3]
    out = {}
    for key, value in keywords.items():
        k = key.strip().upper()
        if _LAYOUT.match(k):
            out[key] = value
            continue
        text = str(value)
        if by_name(k) or _OTHER_DATE.search(text) or _TITLED_NAME.search(text):
            continue
        if _SHIFTABLE_DATE.search(text):
            if not date_shift_days:
                continue
            text = shift_dates(text, date_shift_days)
        elif is_date_key(k):
            continue                      # a date keyword we cannot shift
        if identifiers and _contains(text, identifiers):
            continue
        if layout_only and k != "$DATE":
            continue
        out[key] = text
    return out


class DeidentifiedKeywords(dict):
    """Keywords that ``deidentify_sample`` already cleaned (perhaps with shifted
    dates), so later de-identification keeps them as they are."""


def scrub_text(text: str, identifiers, replacement: str = "[removed]") -> str:
    """``text`` with every occurrence of ``identifiers`` (case-insensitive,
    longest first) replaced: for messages that may quote a path or an id."""
    for ident in sorted({str(i) for i in identifiers if len(str(i).strip()) >= 3}, key=len,
                        reverse=True):
        text = re.sub(re.escape(ident), replacement, text, flags=re.IGNORECASE)
    return text


def deidentify_sample(sample, *, name: str, date_shift_days: int | None = None,
                      identifiers=(), drop=(), layout_only: bool = False):
    """A copy of ``sample`` that carries no identifier: keywords de-identified
    (``deidentify_keywords``), the path replaced by ``<name>.fcs``, the raw
    TEXT segment gone and the reader's warnings scrubbed of ``identifiers``
    and the original path. Events are shared, not copied."""
    from dataclasses import replace

    identifiers = list(identifiers) + identifiers_from(identifying_values(sample.keywords)
                                                       .values())
    if sample.path is not None:
        identifiers += [str(sample.path), sample.path.name, sample.path.stem]
    keywords = deidentify_keywords(sample.keywords, date_shift_days=date_shift_days,
                                   identifiers=identifiers, drop=drop, layout_only=layout_only)
    return replace(sample, keywords=DeidentifiedKeywords(keywords), path=Path(f"{name}.fcs"),
                   raw_text=None,
                   warnings=[scrub_text(w, identifiers, name) for w in sample.warnings])


# -- h5ad-safe values ----------------------------------------------------------------
def h5ad_key(name) -> str:
    """A name HDF5 accepts as a key: '/' becomes '_'; empty becomes '_'."""
    return str(name).replace("/", "_") or "_"


def _unique_keys(names) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        base = key = h5ad_key(name)
        i = 1
        while key in seen:
            i += 1
            key = f"{base}_{i}"
        seen.add(key)
        out.append(key)
    return out


def h5ad_safe(obj):
    """Turn plain Python data into what ``.uns`` can store in h5ad: dicts
    with safe string keys, numpy arrays for lists of numbers, strings or
    booleans, strings for anything else; None becomes "" (h5ad has no null).
    A list of dicts becomes a dict keyed "0", "1", ..."""
    if obj is None:
        return ""
    if isinstance(obj, dict):
        return {k: h5ad_safe(v) for k, v in zip(_unique_keys(obj), obj.values())}
    if isinstance(obj, (str, bool, np.bool_)):
        return obj
    if isinstance(obj, (int, float, np.integer, np.floating)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.astype(str) if obj.dtype == object else obj
    if isinstance(obj, (list, tuple)):
        items = list(obj)
        if any(isinstance(i, (dict, list, tuple, np.ndarray)) for i in items):
            return {str(i): h5ad_safe(v) for i, v in enumerate(items)}
        if items and all(isinstance(i, (bool, np.bool_)) for i in items):
            return np.array(items, dtype=bool)
        if items and all(isinstance(i, (int, float, np.integer, np.floating))
                         and not isinstance(i, bool) for i in items):
            return np.array(items, dtype=np.float64)
        return np.array(["" if i is None else str(i) for i in items], dtype=str)
    return str(obj)


# -- gates as plain dicts ----------------------------------------------------------------
def describe_transform(transform) -> str:
    """"Logicle(T=262144, W=0.5, M=4.5, A=0)"; "" for none."""
    if transform is None:
        return ""
    params = getattr(transform, "params", None)
    if isinstance(params, dict):
        inner = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float, np.number)) else f"{k}={v}"
                          for k, v in params.items())
        return f"{type(transform).__name__}({inner})"
    return str(transform)


def _dims(dims, values) -> dict:
    names, comps, trans = [], [], []
    for d in dims:
        ratio = getattr(d, "ratio", None)
        if ratio is not None:
            r = values.resolve_transform(ratio) if values is not None else ratio
            names.append(f"ratio:{getattr(r, 'numerator', r)}/{getattr(r, 'denominator', '')}")
        else:
            names.append(str(d.name))
        comps.append(str(d.compensation))
        t = values.resolve_transform(d.transform) if values is not None else d.transform
        trans.append(describe_transform(t))
    return {"dimensions": np.array(names, dtype=str), "compensation": np.array(comps, dtype=str),
            "transform": np.array(trans, dtype=str)}


def gate_to_dict(gate, values=None) -> dict:
    """A concrete gate as a plain dict that h5ad (and JSON, after
    ``tolist()``) can store: ``type`` (rectangle, polygon, ellipsoid,
    quadrant, boolean), ``id``, ``parent`` ("" at the root), the dimension
    names with their compensation and transform, and the parameters
    (``min``/``max`` with NaN for an open end; ``vertices``; ``mean``,
    ``covariance``, ``distance_square``; ``dividers`` (each with its dimension) and
    ``quadrants``;
    ``operator``, ``operands``, ``complement``). ``values`` (an
    ``EventValues``) resolves transforms given by id."""
    from .gating import BooleanGate, EllipsoidGate, PolygonGate, QuadrantGate, RectangleGate

    out = {"id": str(gate.id), "parent": "" if gate.parent is None else str(gate.parent)}
    if isinstance(gate, RectangleGate):
        out["type"] = "rectangle"
        out.update(_dims(gate.dimensions, values))
        out["min"] = np.array([np.nan if lo is None else lo for lo, _ in gate.bounds])
        out["max"] = np.array([np.nan if hi is None else hi for _, hi in gate.bounds])
    elif isinstance(gate, PolygonGate):
        out["type"] = "polygon"
        out.update(_dims(gate.dimensions, values))
        out["vertices"] = np.asarray(gate.vertices, dtype=np.float64)
    elif isinstance(gate, EllipsoidGate):
        out["type"] = "ellipsoid"
        out.update(_dims(gate.dimensions, values))
        out["mean"] = np.asarray(gate.mean, dtype=np.float64)
        out["covariance"] = np.asarray(gate.covariance, dtype=np.float64)
        out["distance_square"] = float(gate.distance_square)
    elif isinstance(gate, QuadrantGate):
        out["type"] = "quadrant"
        out.update(_dims(gate.dimensions, values))
        # one dimension per divider: a y divider of its own on each side of x names its
        # channel twice in ``dimensions``, so each divider says which is its own
        out["dividers"] = {k: {"id": d.id, "dimension": name,
                               "values": np.array(d.values, dtype=np.float64)}
                           for k, d, name in zip(_unique_keys(d.id for d in gate.dividers),
                                                 gate.dividers, out["dimensions"])}
        out["quadrants"] = {k: {"id": q.id,
                                "dividers": np.array([p[0] for p in q.positions], dtype=str),
                                "locations": np.array([p[1] for p in q.positions],
                                                      dtype=np.float64)}
                            for k, q in zip(_unique_keys(q.id for q in gate.quadrants),
                                            gate.quadrants)}
    elif isinstance(gate, BooleanGate):
        out["type"] = "boolean"
        out["operator"] = gate.operator
        out["operands"] = np.array([o.ref for o in gate.operands], dtype=str)
        out["complement"] = np.array([o.complement for o in gate.operands], dtype=bool)
    else:
        out["type"] = type(gate).__name__
    return out


# -- the export ---------------------------------------------------------------------------
def channel_transforms(result, transforms: dict | None = None) -> dict[str, object]:
    """Transform per channel name: the one the gates applied to that channel
    (first gate wins), overridden by ``transforms`` (channel name or marker
    -> transform object, or None for linear)."""
    sample = result.sample
    out: dict[str, object] = {}
    for gate in result.gates.values():
        for d in getattr(gate, "dimensions", ()):
            if not hasattr(d, "name"):
                continue
            try:
                name = sample.channels[sample.channel_index(d.name)]
            except ImmunomonError:
                continue                  # a fluorochrome of a strategy matrix
            out.setdefault(name, result.values.resolve_transform(d.transform))
    for key, t in (transforms or {}).items():
        out[sample.channels[sample.channel_index(key)]] = t
    return out


def _plain(obj):
    """``gate_to_dict`` output as JSON-ready data (arrays to lists, NaN to None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def _parts(result, *, populations=None, deidentify: bool = False,
           transforms: dict | None = None, compensation: str = "FCS",
           template: dict | None = None) -> dict:
    """What ``to_anndata`` and ``write_gated_h5ad`` store, built once: the columns
    of ``.X`` (as dimensions of the gating's values, for ``_x_rows``), ``.var``, the
    populations of the membership matrix (for ``_membership_rows``), ``.uns`` and
    the raw events (the sample's own array)."""
    import json

    from . import __version__
    from .gating.dimensions import Dimension

    sample = result.sample
    values = result.values
    n = sample.events.shape[0]
    per_channel = channel_transforms(result, transforms)
    matrix = values.matrix(compensation)
    # an identity matrix (a file whose compensation lives in a workspace) compensates nothing
    detectors = set(matrix.detectors) if matrix is not None and not matrix.is_identity \
        else set()
    columns = [Dimension(name, compensation, per_channel.get(name)) for name in sample.channels]

    var = {     # columns; the index is the channel names
        "marker": np.array([m or "" for m in sample.markers], dtype=object),
        "transform": np.array([describe_transform(per_channel.get(c))
                               for c in sample.channels], dtype=object),
        "compensated": np.array([c in detectors for c in sample.channels], dtype=bool),
        "range": np.asarray(sample.ranges),
    }

    pops = list(result.gate_ids if populations is None else populations)

    keywords = dict(sample.keywords)
    if deidentify and not isinstance(sample.keywords, DeidentifiedKeywords):
        keywords = deidentify_keywords(keywords)
    gates = {k: _plain(gate_to_dict(g, values))
             for k, g in zip(_unique_keys(result.gates), result.gates.values())}
    uns = {
        # HDF5 strings cannot hold NUL; a few instruments write binary keywords
        "keywords": {"name": np.array([_no_nul(k) for k in keywords], dtype=str),
                     "value": np.array([_no_nul(v) for v in keywords.values()], dtype=str)},
        "gates": json.dumps(gates, allow_nan=False),
        "populations": {
            "id": np.array(pops, dtype=str),
            "parent": np.array(["" if result.parent(pid) is None else result.parent(pid)
                                for pid in pops], dtype=str),
            "count": np.array([result.count(pid) for pid in pops], dtype=np.int64),
        },
        "sample": h5ad_safe({
            "n_events": int(n), "fcs_version": str(sample.version),
            "dataset": int(sample.dataset), "deidentified": bool(deidentify),
            **({} if deidentify or sample.path is None else {"file": Path(sample.path).name}),
        }),
        "immunomon_version": __version__,
    }
    if matrix is not None:
        uns["compensation"] = {"id": compensation,
                               "detectors": np.array(matrix.detectors, dtype=str),
                               "fluorochromes": np.array(matrix.fluorochromes, dtype=str),
                               "matrix": np.asarray(matrix.matrix, dtype=np.float64)}
    if template is not None:
        uns["template"] = h5ad_safe(template)
    raw = sample.events if sample.events.dtype == np.float32 else \
        sample.events.astype(np.float32)
    return {"n": n, "values": values, "columns": columns, "var": var,
            "channels": np.array([str(c) for c in sample.channels], dtype=object),
            "populations": pops, "uns": uns, "raw": raw}


def _x_rows(values, columns, start: int, stop: int, out: np.ndarray | None = None
            ) -> np.ndarray:
    """Rows ``start:stop`` of ``.X`` (float32) from its columns (dimensions of
    ``values``, an ``EventValues``)."""
    out = np.empty((stop - start, len(columns)), dtype=np.float32) if out is None else out
    for j, dim in enumerate(columns):
        out[:, j] = values.values(dim, slice(start, stop))
    return out


def _membership_rows(result, populations, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``.obsm["gates"]``: events x populations, boolean."""
    out = np.empty((stop - start, len(populations)), dtype=bool)
    for k, pid in enumerate(populations):
        out[:, k] = result.mask(pid)[start:stop]
    return out


def to_anndata(result, *, populations=None, deidentify: bool = False,
               transforms: dict | None = None, compensation: str = "FCS",
               template: dict | None = None, event_numbers=None):
    """An ``anndata.AnnData`` of one gated sample (layout in the module docstring).

    ``result``: a ``GatingResult``. ``populations``: ids to put in
    ``.obsm["gates"]`` (default: all, in strategy order). ``deidentify``: drop
    identifying keywords (``deidentify_keywords``) and the file name.
    ``transforms``: per-channel overrides for ``.X`` (see ``channel_transforms``).
    ``compensation``: "FCS" (the file's spillover), "uncompensated", or the
    id of a strategy matrix. ``template``: plain data describing the template
    (name, version, path, ...), stored under ``.uns["template"]``. ``event_numbers``:
    each event's number in its file, the ``.obs`` index (``SampleGating.event_numbers``:
    where gating left events out; default 0, 1, ...).
    ``write_gated_h5ad`` writes the same to a file without building it in memory.
    """
    import anndata
    import pandas as pd

    from .gating.strategy import gating_result

    result = gating_result(result)
    parts = _parts(result, populations=populations, deidentify=deidentify,
                   transforms=transforms, compensation=compensation, template=template)
    n = parts["n"]
    numbers = np.arange(n) if event_numbers is None else np.asarray(event_numbers)
    obs = pd.DataFrame(index=pd.Index(numbers.astype(str)))
    with anndata.settings.override(check_uniqueness=False):     # unique by construction
        return anndata.AnnData(X=_x_rows(parts["values"], parts["columns"], 0, n), obs=obs,
                               var=pd.DataFrame(parts["var"],
                                                index=pd.Index(parts["channels"])),
                               uns=parts["uns"],
                               obsm={"gates": _membership_rows(result, parts["populations"],
                                                               0, n)},
                               layers={"raw": parts["raw"]})


_BLOCK = 65_536          # events per slab of .X written at once


def decimal_strings(start: int, stop: int, width: int) -> np.ndarray:
    """The numbers ``start`` to ``stop - 1`` as ASCII strings of ``width`` bytes (numpy
    ``S``, NUL-padded), equal to ``np.arange(start, stop).astype(f"S{width}")`` at a
    fraction of its cost (numpy formats every number alone). Numbers with the same
    count of digits are one block of rows, written a digit place at a time: in
    consecutive numbers the digit at place 10**k runs 0-9 in turn, each 10**k times,
    so a place takes one digit per 10**k numbers, repeated over its run (cut to the
    block at either end), and no division per number."""
    chars = np.zeros((max(stop - start, 0), width), dtype=np.uint8)
    for length in range(1, width + 1):
        lo = max(start, 0 if length == 1 else 10 ** (length - 1))
        hi = min(stop, 10 ** length)
        if lo >= hi:
            continue
        block = chars[lo - start:hi - start]
        for place in range(length):
            step = 10 ** place
            first, last = lo // step, (hi - 1) // step
            digits = (np.arange(first, last + 1) % 10 + 48).astype(np.uint8)
            if step > 1:
                runs = np.diff(np.clip(np.arange(first, last + 2) * step, lo, hi))
                digits = np.repeat(digits, runs)
            block[:, length - 1 - place] = digits
    return chars.view(f"S{width}").ravel()


def event_number_strings(numbers: np.ndarray, width: int) -> np.ndarray:
    """Increasing non-negative integers as ``decimal_strings`` writes them, equal to
    ``numbers.astype(f"S{width}")``: each run of consecutive numbers (the events kept
    between stretches that gating left out) by ``decimal_strings``, and numpy's own
    formatting where the runs are too many to be worth it."""
    numbers = np.asarray(numbers, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    if numbers.size == 0 or breaks.size > _MANY_RUNS:
        return numbers.astype(f"S{width}")
    bounds = zip(np.r_[0, breaks], np.r_[breaks, numbers.size])
    return np.concatenate([decimal_strings(int(numbers[a]), int(numbers[b - 1]) + 1, width)
                           for a, b in bounds])


_MANY_RUNS = 256         # runs in a slab beyond which numpy's formatting costs less


def write_gated_h5ad(result, path, *, event_numbers=None, **kwargs) -> Path:
    """Write ``to_anndata(result, **kwargs)`` to ``path`` (atomically) without
    building the AnnData: ``.X``, the membership matrix and the event-number index
    are written in slabs of events (``.X`` transformed slab by slab from the
    gating's compensated channels), the index as fixed-width ASCII, which anndata
    reads as its usual string index, rather than a million Python strings.
    ``event_numbers``: as ``to_anndata``'s. ``anndata.read_h5ad`` reads back what
    ``to_anndata`` builds."""
    import h5py

    from .gating.strategy import gating_result

    result = gating_result(result)
    parts = _parts(result, **kwargs)
    n, columns = parts["n"], parts["columns"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = {"encoding-type": "array", "encoding-version": "0.2.0"}
    last = n - 1 if event_numbers is None else int(np.max(event_numbers, initial=0))
    width = len(str(max(last, 0)))
    pops = parts["populations"]
    with atomic_path(path, suffix=".h5ad") as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        # the event-sized elements are written a slab of events at a time, so no copy
        # of them is ever whole in memory
        x = f.create_dataset("X", shape=(n, len(columns)), dtype=np.float32)
        x.attrs.update(array)
        obs = f.create_group("obs")
        obs.attrs.update({"_index": "_index", "column-order": np.array([], dtype=np.float64),
                          "encoding-type": "dataframe", "encoding-version": "0.2.0"})
        index = obs.create_dataset("_index", shape=(n,), dtype=f"S{width}")
        index.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
        _write_elem(f, "obsm", {})
        gates = f["obsm"].create_dataset("gates", shape=(n, len(pops)), dtype=bool)
        gates.attrs.update(array)
        slab = np.empty((min(_BLOCK, n), len(columns)), dtype=np.float32)
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            x[start:stop] = _x_rows(parts["values"], columns, start, stop,
                                    slab[:stop - start])
            index[start:stop] = decimal_strings(start, stop, width) if event_numbers is None \
                else event_number_strings(event_numbers[start:stop], width)
            gates[start:stop] = _membership_rows(result, pops, start, stop)
        _write_frame(f, "var", parts["var"], parts["channels"])
        _write_elem(f, "layers", {"raw": parts["raw"]})
        for empty in ("obsp", "varm", "varp"):
            _write_elem(f, empty, {})
        _write_elem(f, "uns", parts["uns"])
    return path


# The elements of anndata's on-disk format (its "encoding-type" and "encoding-version"
# attributes) that the gated file holds, written with h5py alone: importing anndata to
# write them cost more than writing a small file's events (it imports dask.array when
# dask is installed). ``anndata.read_h5ad`` reads them back (tests/test_export.py).
_DICT = {"encoding-type": "dict", "encoding-version": "0.1.0"}


def _encoded(dataset, kind: str):
    dataset.attrs.update({"encoding-type": kind, "encoding-version": "0.2.0"})
    return dataset


def _write_elem(group, key: str, value) -> None:
    """A dict (group), string, number or array of ``.uns``/``.layers`` as anndata
    writes it."""
    import h5py

    if isinstance(value, dict):
        sub = group.create_group(key)
        sub.attrs.update(_DICT)
        for k, v in value.items():
            _write_elem(sub, str(k), v)
    elif isinstance(value, str):
        _encoded(group.create_dataset(key, data=value, dtype=h5py.string_dtype()), "string")
    elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        _encoded(group.create_dataset(key, data=np.asarray(value)), "numeric-scalar")
    else:
        array = np.asarray(value)
        if array.dtype.kind in "USO":
            _encoded(group.create_dataset(key, data=array.astype(object),
                                          dtype=h5py.string_dtype()), "string-array")
        else:
            _encoded(group.create_dataset(key, data=array), "array")


def _write_frame(group, key: str, columns: dict, index) -> None:
    """A data frame of string, boolean and numeric columns (and its string index),
    as anndata writes one."""
    import h5py

    sub = group.create_group(key)
    sub.attrs.update({"_index": "_index",
                      "column-order": np.array(list(columns), dtype=h5py.string_dtype()),
                      "encoding-type": "dataframe", "encoding-version": "0.2.0"})
    _write_elem(sub, "_index", np.asarray(index, dtype=object))
    for name, column in columns.items():
        _write_elem(sub, str(name), np.asarray(column))


# -- reading the layout back ----------------------------------------------------------
def gate_membership(adata, population: str | None = None):
    """Gate membership from an AnnData written by ``to_anndata``: the boolean
    mask (one value per event) of ``population``, or, without one, a DataFrame
    with one boolean column per population (in strategy order)."""
    import pandas as pd

    ids = [str(i) for i in adata.uns["populations"]["id"]]
    if "gates" in adata.obsm:
        matrix = np.asarray(adata.obsm["gates"], dtype=bool)
        columns = {pid: matrix[:, k] for k, pid in enumerate(ids)}
    else:                                   # files written before the matrix layout
        names = adata.uns["populations"]["column"]
        columns = {pid: adata.obs[str(c)].to_numpy(dtype=bool) for pid, c in zip(ids, names)}
    if population is None:
        return pd.DataFrame(columns, index=adata.obs_names)
    if population not in columns:
        raise ImmunomonError(f"no population {population!r} in this AnnData; populations "
                             f"are: {', '.join(ids) or 'none'}")
    return columns[population]


def applied_gates(adata) -> dict:
    """The gates applied, by gate id, as plain dicts (see ``gate_to_dict``; an
    open rectangle bound is None)."""
    import json

    gates = adata.uns["gates"]
    return json.loads(gates) if isinstance(gates, str) else dict(gates)


def _no_nul(text) -> str:
    return str(text).replace("\x00", "\\x00")


def fcs_keywords(adata) -> dict[str, str]:
    """The FCS keywords stored in ``.uns["keywords"]``, as a dict."""
    kw = adata.uns["keywords"]
    if set(kw) == {"name", "value"}:
        return dict(zip(map(str, kw["name"]), map(str, kw["value"])))
    return {str(k): str(v) for k, v in kw.items()}


def write_h5ad(adata, path) -> Path:
    """Write ``adata`` to ``path`` through a temporary file renamed when
    complete, so a crash never leaves a truncated ``.h5ad`` behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return path
