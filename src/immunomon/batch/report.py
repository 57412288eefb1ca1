"""The batch QC report: one self-contained HTML page per results folder.

Like MultiQC for a sequencing core, it answers "which runs look wrong?":

- per file: events, instrument, acquisition date, QC flags and the yields of
  the key populations (% of parent), with values far from the rest of the
  batch highlighted (robust z-score, |z| > 3.5: Iglewicz and Hoaglin) and
  those that turn on where their cut lies underlined (``qc.NEAR_CUT``);
- per key population, a Levey-Jennings chart of the control samples in run
  order, with mean and 1, 2 and 3 SD lines and the Westgard rules each run
  breaks (1-3s, 2-2s, R-4s, 4-1s, 10-x);
- the samples to review first (QC failures and warnings, yields far from the batch), and
  every failure with its reason, grouped by what the reasons say.

Everything shown goes through ``tables.public_rows``, so a de-identified batch
gives a de-identified page.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from ..qc import NEAR_CUT
from ..report.pages import esc, link, table_html, write_text_atomic
from .registry import Registry
from .tables import open_pseudonyms, population_frame, public_rows

OUTLIER_Z = 3.5
YIELD_FLOOR = 0.5          # percentage points: the least spread a yield is judged against
EVENTS_FLOOR = 0.05        # of the median event count
#: Populations charted when none are named: the references and their children.
REFERENCE_POPULATIONS = ("Leukocytes", "Lymphocytes")
BASELINE_RUNS = 20

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;
 max-width:86em;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em}
th,td{border:1px solid #ddd;padding:.2em .45em;text-align:right;white-space:nowrap}
th{background:#f3f3f3;position:sticky;top:0}td.t,th.t{text-align:left}
td.msg{white-space:normal;text-align:left;max-width:48em}
.out{background:#fbd3d0;font-weight:bold}.warn{background:#fdebc8}
.near{text-decoration:underline dotted #8a5a00}
.failed,.quarantined,.failure{color:#a00;font-weight:bold}.flagged,.warning{color:#8a5a00}
.ok,.done{color:#2a7a2a}
.pending,.running{color:#555}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;padding:.5em 1em}
.card b{display:block;font-size:1.4em}
.charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0;border:1px solid #eee}
figcaption{font-size:.8em;color:#555;padding:.2em .4em}
.scroll{overflow-x:auto;max-height:40em}
details{margin:.3em 0}summary{cursor:pointer}
"""


# ----------------------------------------------------------------------------- statistics
def robust_z(values, floor: float = 0.0) -> np.ndarray:
    """Modified z-score 0.6745 (x - median) / max(MAD, floor) (Iglewicz and
    Hoaglin). The floor keeps a batch whose values are nearly all equal from
    flagging tiny differences; with a MAD and floor of 0 every z is 0. NaN
    stays NaN."""
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).any():
        return np.full_like(x, np.nan)
    med = np.nanmedian(x)
    scale = max(float(np.nanmedian(np.abs(x - med))), floor)
    if not scale > 0:
        return np.where(np.isnan(x), np.nan, 0.0)
    return 0.6745 * (x - med) / scale


def westgard(values, mean: float, sd: float) -> list[list[str]]:
    """The Westgard rules each run breaks, given the control's mean and SD.

    1-3s: this run beyond 3 SD. 2-2s: this and the previous run beyond 2 SD on
    the same side. R-4s: this and the previous run beyond 2 SD on opposite
    sides. 4-1s: this and the 3 previous runs beyond 1 SD on the same side.
    10-x: this and the 9 previous runs on the same side of the mean. NaN runs
    break nothing and break every run of consecutive values."""
    x = np.asarray(values, dtype=np.float64)
    rules: list[list[str]] = [[] for _ in x]
    if not sd > 0:
        return rules
    z = (x - mean) / sd
    for i, zi in enumerate(z):
        if np.isnan(zi):
            continue
        if abs(zi) > 3:
            rules[i].append("1-3s")
        prev = z[i - 1] if i >= 1 else np.nan
        if not np.isnan(prev):
            if (zi > 2 and prev > 2) or (zi < -2 and prev < -2):
                rules[i].append("2-2s")
            if (zi > 2 and prev < -2) or (zi < -2 and prev > 2):
                rules[i].append("R-4s")
        last4 = z[max(0, i - 3):i + 1]
        if len(last4) == 4 and (np.all(last4 > 1) or np.all(last4 < -1)):
            rules[i].append("4-1s")
        last10 = z[max(0, i - 9):i + 1]
        if len(last10) == 10 and (np.all(last10 > 0) or np.all(last10 < 0)):
            rules[i].append("10-x")
    return rules


def control_limits(values, baseline: int = BASELINE_RUNS) -> tuple[float, float, int]:
    """Mean and SD of a control from its first ``baseline`` runs (all runs
    when there are fewer): the established range the later runs are judged
    against. Returns (mean, sd, runs used)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    base = x[:baseline] if len(x) > baseline else x
    if len(base) < 2:
        return (float(base[0]) if len(base) else np.nan), np.nan, len(base)
    return float(base.mean()), float(base.std(ddof=1)), len(base)


def key_populations(table, named=None) -> list[str]:
    """The populations to chart and tabulate: ``named`` (those present), or the
    reference populations and their direct children, in table order."""
    present = list(dict.fromkeys(table["population"]))
    if named:
        return [p for p in named if p in present]
    parents = dict(zip(table["population"], table["parent"]))
    keys = [p for p in present if p in REFERENCE_POPULATIONS
            or parents.get(p) in REFERENCE_POPULATIONS]
    return keys or present[:6]


# ----------------------------------------------------------------------------- charts
def lj_chart_svg(labels, values, title: str, mean: float, sd: float, rules) -> str:
    """A Levey-Jennings chart as inline SVG text."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "immunomon"}):
        fig, ax = plt.subplots(figsize=(6.2, 2.8), dpi=100)
        try:
            x = np.arange(1, len(values) + 1)
            if np.isfinite(sd) and sd > 0:
                for k, style in ((0, "-"), (1, ":"), (2, "--"), (3, "-")):
                    for sign in ((1,) if k == 0 else (1, -1)):
                        ax.axhline(mean + sign * k * sd, color="#888" if k < 3 else "#c0392b",
                                   lw=0.8, ls=style)
            ax.plot(x, values, "-", color="#2c7fb8", lw=0.8)
            broken = np.array([bool(r) for r in rules], dtype=bool)
            ax.plot(x[~broken], np.asarray(values)[~broken], "o", color="#2c7fb8", ms=3.5)
            ax.plot(x[broken], np.asarray(values)[broken], "o", color="#c0392b", ms=5)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("control run", fontsize=8)
            ax.set_ylabel("% of parent", fontsize=8)
            ax.tick_params(labelsize=7)
            if len(x) <= 30:
                ax.set_xticks(x)
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        finally:
            plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


# ----------------------------------------------------------------------------- page
def reason_kind(error: str, names=(), *, numbers: bool = True) -> str:
    """What a failure's reason says, without the file it names and (``numbers``) its
    numbers, so that the same fault of many files reads as one line ("template
    post-transplant.yaml (...) cannot gate this file" for 590 uploads of other panels)."""
    text = str(error or "")
    for name in sorted((n for n in names if n), key=len, reverse=True):
        at = text.find(name)
        if at >= 0:
            text = text[at + len(name):]
            break
    text = text.lstrip(" :")
    if numbers:
        text = re.sub(r"\d[\d,.]*", "#", text)
    cut = text.find(": ", 20)
    text = text[:cut] if cut > 0 else text.split("; ")[0]
    return text.strip() or "no reason recorded"


def _failure_groups(bad: list[dict], deid: bool) -> str:
    """The failures grouped by what their reasons say, largest group first, each group's
    files behind a fold."""
    groups: dict[str, list[dict]] = {}
    for r in bad:
        groups.setdefault(reason_kind(r["error"], (r.get("file", ""), r["sample"])),
                          []).append(r)
    head = "<tr><th class='t'>sample</th>" + ("" if deid else "<th class='t'>file</th>") \
        + "<th class='t'>status</th><th>attempts</th><th class='t'>reason</th></tr>"
    parts = []
    for kind, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines = "".join(
            "<tr>" + f'<td class="t">{esc(r["sample"])}</td>'
            + ("" if deid else f'<td class="t">{esc(r.get("file", ""))}</td>')
            + _status_cell(r["status"]) + f"<td>{r['attempts']}</td>"
            + f'<td class="msg">{esc(r["error"])}</td></tr>' for r in members)
        parts.append(f"<details><summary><b>{len(members):,}</b> {esc(kind)}</summary>"
                     f'<div class="scroll"><table><thead>{head}</thead><tbody>{lines}'
                     "</tbody></table></div></details>")
    return "".join(parts)


def _review(done: list[dict], z: dict, z_events: dict) -> str:
    """The samples to look at first: QC failures, then warnings, then yields far from the
    batch; samples of one status whose first flags say the same are one line (186 tubes
    of another panel, each a failure for it)."""
    groups: dict[tuple, list[str]] = {}
    for r in done:
        status = r["qc_status"] or "ok"
        far = [f"{p} (robust z {zs[r['output']]:.1f})" for p, zs in z.items()
               if np.isfinite(zs.get(r["output"], np.nan))
               and abs(zs[r["output"]]) > OUTLIER_Z]
        ze = z_events.get(r["output"], np.nan)
        if not r["control"] and np.isfinite(ze) and ze < -OUTLIER_Z:
            far.append(f"events (robust z {ze:.1f})")
        flags = r["qc_flags"] or []
        if status != "ok" and flags:
            why = reason_kind(flags[0], numbers=False)
        elif far:
            why = "yield outside the batch: " + ", ".join(far)
        else:
            continue
        rank = {"failure": 0, "warning": 1}.get(status, 2)
        groups.setdefault((rank, status, why), []).append(f"{r['sample']} ({r['study']})")
    if not groups:
        return '<p class="ok">No sample needs review.</p>'
    rows = [{"samples": len(names), "QC": status, "first reason": why,
             "which": ", ".join(names[:5]) + (f", and {len(names) - 5} more"
                                              if len(names) > 5 else "")}
            for (_, status, why), names in sorted(groups.items(),
                                                  key=lambda kv: (kv[0][0], -len(kv[1])))]
    return table_html(rows)


def _status_cell(status: str) -> str:
    return f'<td class="t {esc(status)}">{esc(status)}</td>'


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def build_report(results, *, key: list[str] | None = None, baseline: int = BASELINE_RUNS,
                 title: str | None = None) -> str:
    """The report's HTML for a results folder (see the module docstring)."""
    import pandas as pd

    results = Path(results)
    registry = Registry.open(results, create=False, readonly=True)
    try:
        pseudonyms = open_pseudonyms(results, registry)
        rows = public_rows(registry, results, pseudonyms)
        table = population_frame(registry, rows)
        deid = registry.get_meta("mode") == "deidentified"
    finally:
        registry.close()
    page_dir = results.resolve()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    done = [r for r in rows if r["status"] == "done"]
    flagged = sum((r["qc_status"] or "ok") != "ok" for r in done)
    keys = key_populations(table, key) if len(table) else []
    pct, near = (table.pivot_table(index="output", columns="population", values=column,
                                   aggfunc="first") if len(table) else pd.DataFrame()
                 for column in ("percent_of_parent", "percent_near_cut"))
    by_output = {r["output"]: r for r in done}

    # outliers among patient samples (controls are judged by their own chart)
    patients = [r["output"] for r in done if not r["control"]]
    z = {}
    for p in keys:
        if p in pct:
            col = pct[p].reindex(patients)
            z[p] = dict(zip(patients, robust_z(col.to_numpy(), YIELD_FLOOR)))
    events = np.array([by_output[s]["events"] for s in patients], dtype=float)
    z_events = dict(zip(patients, robust_z(events, EVENTS_FLOOR * np.nanmedian(events)
                                           if len(events) else 0.0)))

    cards = "".join(f'<div class="card"><b>{n:,}</b>{esc(label)}</div>' for label, n in (
        ("files", len(rows)), ("done", counts.get("done", 0)),
        ("QC warnings or failures", flagged), ("failed", counts.get("failed", 0)),
        ("quarantined", counts.get("quarantined", 0)),
        ("pending", counts.get("pending", 0) + counts.get("running", 0)),
        ("controls", sum(r["control"] for r in done))))

    # per-file table
    head = ["sample", "study", "patient", "instrument", "acquired", "status", "events",
            "QC flags"] + [f"% {k}" for k in keys]
    lines = []
    n_out = n_near = 0
    for r in sorted(done, key=lambda r: (r["study"], r["acquired"] or "", r["sample"])):
        name = esc(r["sample"])
        if r["page"]:
            name = f'<a href="{link(r["page"], page_dir)}">{name}</a>'
        flags = r["qc_flags"] or []
        ze = z_events.get(r["output"], np.nan)
        ev_cls = ' class="out"' if not r["control"] and np.isfinite(ze) and ze < -OUTLIER_Z \
            else ""
        cells = [f'<td class="t">{name}{" (control)" if r["control"] else ""}</td>',
                 f'<td class="t">{esc(r["study"])}</td>', f'<td class="t">{esc(r["patient"])}</td>',
                 f'<td class="t">{esc(r["instrument"])}</td>',
                 f'<td class="t">{esc((r["acquired"] or "")[:16].replace("T", " "))}</td>',
                 _status_cell(r["qc_status"] or "ok"),
                 f'<td{ev_cls}>{_num(r["events"])}</td>',
                 f'<td title="{esc(chr(10).join(flags))}">{len(flags)}</td>']
        for k in keys:
            value = pct[k].get(r["output"], np.nan) if k in pct else np.nan
            zk = z.get(k, {}).get(r["output"], np.nan)
            share = near[k].get(r["output"], np.nan) if k in near else np.nan
            classes, titles = [], []
            if np.isfinite(zk) and abs(zk) > OUTLIER_Z:
                n_out += 1
                classes.append("out")
                titles.append(f"robust z = {zk:.1f}")
            if share >= 100 * NEAR_CUT:
                n_near += 1
                classes.append("near")
                titles.append(f"{share:.0f}% of its events near its cut")
            attrs = (f' class="{" ".join(classes)}" title="{esc("; ".join(titles))}"'
                     if classes else "")
            cells.append(f"<td{attrs}>{_num(value)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    file_table = ('<div class="scroll"><table><thead><tr>'
                  + "".join(f'<th class="t">{esc(h)}</th>' if i < 6 else f"<th>{esc(h)}</th>"
                            for i, h in enumerate(head))
                  + f"</tr></thead><tbody>{''.join(lines)}</tbody></table></div>"
                  if lines else "<p>No file has been processed yet.</p>")

    # Levey-Jennings charts of the controls
    controls = sorted((r for r in done if r["control"]),
                      key=lambda r: (r["acquired"] or "", r["id"]))
    charts, violations = [], []
    if controls and keys:
        for k in keys:
            values = [float(pct[k].get(r["output"], np.nan)) if k in pct else np.nan
                      for r in controls]
            mean, sd, n_base = control_limits(values, baseline)
            rules = westgard(values, mean, sd)
            svg = lj_chart_svg([r["sample"] for r in controls], values, k, mean, sd, rules)
            charts.append(f"<figure>{svg}<figcaption>{esc(k)}: mean {_num(mean, 2)}%, SD "
                          f"{_num(sd, 2)} from {n_base} run(s)</figcaption></figure>")
            for r, v, broken in zip(controls, values, rules):
                if broken:
                    violations.append({"control run": r["sample"], "instrument": r["instrument"],
                                       "acquired": (r["acquired"] or "")[:10],
                                       "population": k, "% of parent": v,
                                       "rules": ", ".join(broken)})
    lj = ("<p>No control samples in this batch. Mark them in the manifest (control: yes) "
          "or name them QC_..., CTRL_... or ..._control.</p>" if not controls else
          f'<div class="charts">{"".join(charts)}</div>'
          + (f"<h3>Westgard rule violations ({len(violations)})</h3>{table_html(violations)}"
             if violations else "<p>No control run breaks a Westgard rule.</p>"))

    # failures, grouped by what their reasons say
    bad = [r for r in rows if r["status"] in ("failed", "quarantined")]
    failures = _failure_groups(bad, deid) if bad else '<p class="ok">No failures.</p>'
    review = _review(done, z, z_events)

    seconds = [r["seconds"].get("total") for r in done if r["seconds"].get("total")]
    speed = (f"<p>Median {np.median(seconds):.1f} s per file on a worker; peak worker memory "
             f"{max((r['peak_rss_mb'] or 0) for r in done):,.0f} MB.</p>" if seconds else "")
    title = title or f"Batch QC report: {results.name}"
    body = (f"<h1>{esc(title)}</h1>"
            f"<p>{len(rows):,} files{' (de-identified)' if deid else ''}; "
            f"{n_out} yields outside the batch (|robust z| &gt; {OUTLIER_Z}) highlighted; "
            f"{n_near} underlined where {NEAR_CUT:.0%} or more of the population lies within "
            "one density bandwidth of a cut it was gated by (its count turns on where that "
            "cut lies: check it on the sample's page).</p>"
            f'<div class="cards">{cards}</div>{speed}'
            f"<h2>To review</h2>{review}"
            f"<h2>Failures ({len(bad)})</h2>{failures}"
            f"<h2>Control samples: Levey-Jennings charts</h2>{lj}"
            f"<h2>Files ({len(done)})</h2>{file_table}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def write_report(results, path=None, **kwargs) -> Path:
    """Write the batch QC report (default ``RESULTS/report.html``); returns its path."""
    from .run import REPORT

    path = Path(path) if path is not None else Path(results) / REPORT
    return write_text_atomic(path, build_report(results, **kwargs))
