"""Small self-contained HTML pages: one per sample, and an index over samples.

The pages carry their CSS inline and link their gate plots by *relative*
path (the PNGs sit next to the page in the output folder, so the folder can
be moved or zipped as a whole and the pages stay small); pass
``embed_images=True`` to inline them as base64 instead, for a page that
travels alone. Every text that comes from a file or a template (sample,
population, marker and keyword names, QC messages) is HTML-escaped, and
every link is percent-encoded. Pages are written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..atomic import write_text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:72em;
 color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
ul.tree,ul.tree ul{list-style:none;padding-left:1.2em;margin:0}
ul.tree li{margin:.1em 0}ul.tree li::before{content:"\\2514\\2500 ";color:#999}
.flags li{color:#a00}.warnings li{color:#8a5a00}.none{color:#2a7a2a}
.plots{display:flex;flex-wrap:wrap;gap:.8em}
figure{margin:0;border:1px solid #eee;padding:.3em}figcaption{font-size:.8em;color:#555}
img{max-width:100%;height:auto;display:block}h3{font-size:1em}p.note{font-size:.85em;color:#555}
.markers table{font-size:.78em}.markers th,.markers td{padding:.2em .35em}
.status-ok{color:#2a7a2a}.status-warning,.status-flagged{color:#8a5a00;font-weight:bold}
.status-failure,.status-failed{color:#a00;font-weight:bold}
.flags li.info{color:#555}.flags li.warning{color:#8a5a00}.flags li.failure{color:#a00;font-weight:bold}
.level{display:inline-block;min-width:4.5em;font-size:.8em;text-transform:uppercase}
"""


# -- pieces -------------------------------------------------------------------------
def esc(value) -> str:
    """HTML-escaped text (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def link(target, page_dir: Path) -> str:
    """A percent-encoded, escaped relative URL from ``page_dir`` to ``target``."""
    rel = os.path.relpath(Path(target), page_dir)
    return esc(quote(Path(rel).as_posix()))


def _image_src(path, page_dir: Path, embed: bool) -> str:
    if embed:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"
    return link(path, page_dir)


def _pairs(items) -> list[tuple]:
    return list(items.items()) if isinstance(items, Mapping) else [tuple(i) for i in items]


def hierarchy_html(hierarchy) -> str:
    """Nested ``<ul>`` of populations: ``hierarchy`` maps each population to
    its parent (None, or a parent not listed, for a top-level one), in the
    order to show them; a sequence of (population, parent) pairs also works."""
    pairs = _pairs(hierarchy)
    known = {p for p, _ in pairs}
    children: dict = {}
    for pop, parent in pairs:
        children.setdefault(parent if parent in known else None, []).append(pop)

    def branch(parent, seen) -> str:
        kids = [k for k in children.get(parent, []) if k not in seen]
        if not kids:
            return ""
        items = "".join(f"<li>{esc(k)}{branch(k, seen | {k})}</li>" for k in kids)
        return f"<ul>{items}</ul>"

    tree = branch(None, frozenset())
    return tree.replace("<ul>", '<ul class="tree">', 1) if tree else "<p>No populations.</p>"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if np.isnan(v):
            return ""
        return f"{v:,.0f}" if abs(v) >= 1e5 else f"{v:.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return esc(value)


def table_html(table, max_rows: int = 5000) -> str:
    """An HTML table from a pandas DataFrame (its columns, not its index) or
    a list of dicts; numbers formatted for reading, text escaped."""
    if table is None:
        return "<p>No table.</p>"
    columns, rows = _records(table)
    if not rows:
        return "<p>No rows.</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows[:max_rows])
    more = (f"<p>{len(rows) - max_rows:,} more rows are in the table files.</p>"
            if len(rows) > max_rows else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _list(items, css: str, empty: str) -> str:
    items = list(items or [])
    if not items:
        return f'<p class="none">{esc(empty)}</p>'
    return f'<ul class="{css}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def qc_html(flags) -> str:
    """QC flags as a list, failures first, each marked with its level; bare
    messages count as warnings."""
    from ..qc import LEVELS, as_flag

    flags = sorted((as_flag(f) for f in flags or ()), key=lambda f: -LEVELS.index(f.level))
    if not flags:
        return '<p class="none">No QC flags.</p>'
    return '<ul class="flags">' + "".join(
        f'<li class="{f.level}"><span class="level">{f.level}</span> {esc(f.message)}</li>'
        for f in flags) + "</ul>"


def _document(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary name next to ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, text)


MARKER_STATISTICS = ("median", "mean", "geometric_mean")
HEADERS = {"percent_of_parent": "% of parent", "percent_of_total": "% of total",
           "cells_per_ul": "cells/uL", "percent_near_cut": "% near its cut"}


def _records(table) -> tuple[list[str], list[dict]]:
    if hasattr(table, "to_dict"):
        rows = [{str(k): v for k, v in r.items()} for r in table.to_dict(orient="records")]
        return [str(c) for c in table.columns], rows
    rows = [dict(r) for r in table]
    return list(dict.fromkeys(k for r in rows for k in r)), rows


def _intensity(value):
    """Intensities to 3 significant digits (whole numbers from 100 up): enough to
    read, narrow enough for one column per marker."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return value
    if np.isnan(v):
        return None
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def population_tables(table) -> str:
    """The population table as two tables that fit a laptop screen: counts and
    percentages, then the median intensity per marker (one column per marker).
    Means and geometric means stay in the table files."""
    if table is None:
        return "<p>No table.</p>"
    columns, rows = _records(table)
    per_marker = {c: c.split(" ", 1) for c in columns if " " in c
                  and c.split(" ", 1)[0] in MARKER_STATISTICS}
    main = [c for c in columns if c not in per_marker]
    medians = [c for c, (stat, _) in per_marker.items() if stat == "median"]
    first = main[0] if main else None

    def renamed(cols, names, fmt=lambda v: v):
        return [{names.get(c, c): fmt(r.get(c)) if c != first else r.get(c) for c in cols}
                for r in rows]

    names = {c: HEADERS.get(c, c.replace("percent_of_", "% of ").replace("_", " "))
             for c in main}
    html_out = table_html(renamed(main, names))
    if medians:
        names = {c: per_marker[c][1] for c in medians}
        html_out += ('<h3>Median intensity per marker</h3><div class="markers">'
                     + table_html(renamed([first, *medians] if first else medians, names,
                                          _intensity)) + "</div>")
    if len(per_marker) > len(medians):
        html_out += ('<p class="note">Means and geometric means per marker are in the '
                     "population table files (CSV, Parquet).</p>")
    return html_out


# -- pages --------------------------------------------------------------------------
def sample_page(path, *, sample_name: str, hierarchy, table, plots, qc_flags=(),
                warnings=(), embed_images: bool = False, subtitle: str | None = None,
                about: Mapping | None = None) -> Path:
    """Write the HTML page of one sample and return its path.

    ``hierarchy``: population -> parent mapping (see ``hierarchy_html``).
    ``table``: the population table (DataFrame or list of dicts). ``plots``:
    gate id -> PNG path (or (caption, path) pairs), in display order; None
    paths are skipped. ``qc_flags`` and ``warnings``: lists of messages. ``about``:
    what the numbers come from (file, events, compensation, counting, template,
    version), label -> text. Images are linked relative to the page unless
    ``embed_images``.
    """
    path = Path(path)
    page_dir = path.parent.resolve()
    figures = "".join(
        f'<figure><img src="{_image_src(p, page_dir, embed_images)}" '
        f'alt="gate {esc(caption)}" loading="lazy"><figcaption>{esc(caption)}</figcaption>'
        "</figure>"
        for caption, p in _pairs(plots) if p is not None)
    from ..qc import status as qc_status

    qc_flags = list(qc_flags or [])
    state = qc_status(qc_flags)
    body = (f"<h1>{esc(sample_name)}</h1>"
            + (f"<p>{esc(subtitle)}</p>" if subtitle else "")
            + f"<p>QC status: <span class=\"status-{state}\">{esc(state)}</span></p>"
            + (table_html([{"": k, "value": v} for k, v in about.items()])
               if about else "")
            + f"<h2>QC flags ({len(qc_flags)})</h2>"
            + qc_html(qc_flags)
            + (f"<h2>Warnings</h2>{_list(warnings, 'warnings', '')}" if warnings else "")
            + f"<h2>Populations</h2>{hierarchy_html(hierarchy)}"
            + f"<h2>Population table</h2>{population_tables(table)}"
            + f"<h2>Gates</h2><div class=\"plots\">{figures or '<p>No plots.</p>'}</div>")
    return write_text_atomic(path, _document(f"{sample_name}: immunomon gate", body))


INDEX_COLUMNS = ("sample", "status", "events", "flags to review", "message")


def index_page(path, rows: Iterable[Mapping], *, title: str = "immunomon gate") -> Path:
    """Write an index over samples and return its path.

    Each row is a mapping with ``sample`` (name), ``status`` ("ok",
    "warning" or "failure" for a gated sample, "failed" for a file that could
    not be gated), optional ``page`` (path of the sample page, linked relative
    to the index), ``events`` (int), ``flags`` (list of the QC messages that
    need review, or their number), ``message`` (e.g. why a file failed) and
    ``unlike_the_others`` (populations whose share lies beyond the other samples').
    Samples needing review come first, those unlike the others before the rest of
    their status.
    """
    path = Path(path)
    page_dir = path.parent.resolve()
    order = {"failed": 0, "failure": 1, "warning": 2}
    rows = sorted(rows, key=lambda r: (order.get(str(r.get("status", "ok")), 3),
                                       not r.get("unlike_the_others")))
    counts: dict[str, int] = {}
    lines = []
    for r in rows:
        status = str(r.get("status", "ok"))
        counts[status] = counts.get(status, 0) + 1
        name = esc(r.get("sample", ""))
        if r.get("page"):
            name = f'<a href="{link(r["page"], page_dir)}">{name}</a>'
        flags = r.get("flags", ())
        n_flags = flags if isinstance(flags, (int, np.integer)) else len(list(flags))
        css = status if status in ("ok", "warning", "failure", "failed") else "warning"
        lines.append(f"<tr><td>{name}</td><td class=\"status-{css}\">{esc(status)}</td>"
                     f"<td>{_cell(r.get('events'))}</td><td>{_cell(int(n_flags))}</td>"
                     f"<td>{esc(r.get('message', ''))}</td></tr>")
    # 'failed' (no result: the file could not be gated) and 'failure' (a QC level of a
    # gated sample) read alike ('5 failed, 6 failure'): said in words
    words = {"failed": "could not be gated", "failure": "gated with a QC failure",
             "warning": "gated with QC warnings", "ok": "ok"}
    order = ("failed", "failure", "warning", "ok")
    rank = {s: i for i, s in enumerate(order)}
    summary = ", ".join(f"{counts[s]} {esc(words.get(s, s))}"
                        for s in sorted(counts, key=lambda s: (rank.get(s, len(order)), s))
                        ) or "no samples"
    head = "".join(f"<th>{esc(c)}</th>" for c in INDEX_COLUMNS)
    body = (f"<h1>{esc(title)}</h1><p>{len(rows)} samples: {summary}.</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")
    return write_text_atomic(path, _document(title, body))
