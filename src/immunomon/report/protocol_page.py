"""The "Protocol endpoints" section of the report: tables, two figures, CSV files.

``write_protocol_outputs(results, out_dir)`` writes the CSV tables of
:class:`~immunomon.analysis.protocol.ProtocolResults` under ``out_dir/protocol``
and the figures under ``out_dir/figures``, and returns the section's content,
which the report page wraps with its title (``gvm_page.Section``). Every text
from the data is HTML-escaped.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text
from .pages import esc

__all__ = ["write_protocol_outputs", "protocol_html", "protocol_records", "CSV_FILES"]

# the page's style sheet belongs to the report; these rows carry their own colour
_ROW_STYLE = {"severe": "background:#fde8e4", "met": "background:#fff6e5"}
CSV_FILES = {
    "primary": "primary_endpoint.csv", "outcomes": "one_year_outcomes.csv",
    "ae_table": "adverse_event_table.csv", "adverse_events": "adverse_events.csv",
    "exposure": "exposure.csv", "boundaries": "stopping_boundaries.csv",
    "operating": "stopping_operating_characteristics.csv", "sequence": "stopping_sequence.csv",
}
_LEVEL_COLOURS = ("#2c7fb8", "#41b6c4", "#a1dab4", "#bcbddc", "#756bb1")
_LOWEST_COLOUR = "#f39c12"


def _num(v, digits: int = 3) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return esc(v)
    if np.isnan(x):
        return ""
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def _pct(v) -> str:
    return "" if v is None or np.isnan(float(v)) else f"{100 * float(v):.1f}%"


def _table(frame: pd.DataFrame, columns: dict, row_class=None, pct=(), one_decimal=()
           ) -> str:
    head = "".join(f"<th>{esc(label)}</th>" for label in columns.values())
    body = []
    for r in frame.to_dict("records"):
        klass = row_class(r) if row_class else ""
        cells = []
        for c in columns:
            v = r.get(c)
            if c in pct:
                cells.append(f"<td>{_pct(v)}</td>")
            elif c in one_decimal:
                cells.append(f"<td>{'' if pd.isna(v) else f'{float(v):.1f}'}</td>")
            elif isinstance(v, (bool, np.bool_)):
                cells.append(f"<td>{'yes' if v else 'no'}</td>")
            elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                cells.append(f"<td>{_num(v)}</td>")
            else:
                text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else v
                cells.append(f'<td style="text-align:left">{esc(text)}</td>')
        style = f' style="{_ROW_STYLE[klass]}"' if klass in _ROW_STYLE else ""
        body.append(f'<tr class="{klass}"{style}>' + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# ----------------------------------------------------------------------------- figures
def _stopping_figure(results, stem: Path):
    from .figures import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bnd = results.boundaries
    n = bnd["n"].to_numpy()
    stop = bnd["stop_at"].to_numpy(float)
    ax.step(n, stop, where="mid", color="#c0392b", label="stopping boundary")
    seq = results.sequence
    if seq is not None and len(seq):
        ax.plot(seq["n"], seq["events"], "o-", color="#2c7fb8", ms=4,
                label="observed events (cumulative)")
        hit = seq[seq["stop"]]
        if len(hit):
            ax.plot(hit["n"], hit["events"], "X", color="#c0392b", ms=10,
                    label="boundary reached")
    ax.set_xlabel("patients evaluated")
    ax.set_ylabel("patients with the primary event")
    ax.set_xlim(0.5, n.max() + 0.5)
    ax.set_ylim(-0.3, max(np.nanmax(stop) if np.isfinite(stop).any() else 1, 1) + 0.8)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    rule = results.stopping
    ax.set_title(f"Stop when P(rate > {rule.p0:g} | data) > {rule.threshold:g}; "
                 f"prior Beta({rule.prior[0]:g}, {rule.prior[1]:g})", fontsize=9)
    return _save(fig, stem)


def _dose_figure(results, days: pd.DataFrame, stem: Path):
    from .figures import _pyplot, _save

    plt = _pyplot()
    primary = results.primary
    ids = list(primary["patient_id"])
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * max(len(ids), 3) + 1.2))
    levels = sorted(set(results.protocol.dose_levels), reverse=True)
    origin = primary.set_index("patient_id")["origin_day"]
    for y, pid in enumerate(reversed(ids)):
        d = days[days["patient_id"] == pid]
        if d.empty:
            continue
        t = d["day"].to_numpy(float) - float(origin.get(pid, 0.0) or 0.0)
        lv = -d["level"].to_numpy(int)
        held = (d["state"] != "on").to_numpy()
        for k in range(len(levels)):
            m = (lv == k) & ~held
            if m.any():
                ax.broken_barh(_runs(t[m]), (y - 0.35, 0.7), color=_colour(k, len(levels)))
        if held.any():
            ax.broken_barh(_runs(t[held]), (y - 0.35, 0.7), color="#bbbbbb")
        row = primary[primary["patient_id"] == pid].iloc[0]
        if row["met"]:
            ax.plot(row["day_from_origin"], y, "X", color="#c0392b", ms=9)
    for k, lev in enumerate(levels):
        ax.plot([], [], "s", color=_colour(k, len(levels)),
                label=f"{lev:g} {results.protocol.dose_unit}"
                + (" (lowest)" if k == len(levels) - 1 else ""))
    ax.plot([], [], "s", color="#bbbbbb", label="held / off")
    ax.plot([], [], "X", color="#c0392b", label="primary endpoint met")
    ax.axvline(results.protocol.horizon_days, color="#777", ls=":", lw=1)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels(list(reversed(ids)), fontsize=8)
    since = "first dose" if results.protocol.origin == "treatment_start" else "transplant"
    ax.set_xlabel(f"days from {since}")
    ax.legend(frameon=False, fontsize=7, ncol=len(levels) + 2, loc="lower center",
              bbox_to_anchor=(0.5, 1.0))
    return _save(fig, stem)


def _colour(k: int, n: int) -> str:
    """Dose level k of n: blues and greens down to the lowest level, in orange."""
    return _LOWEST_COLOUR if k == n - 1 else _LEVEL_COLOURS[k % len(_LEVEL_COLOURS)]


def _runs(t: np.ndarray) -> list[tuple[float, float]]:
    """Consecutive days as (start, width) bars."""
    t = np.sort(t)
    cut = np.flatnonzero(np.diff(t) > 1) + 1
    return [(float(seg[0]), float(seg[-1] - seg[0] + 1)) for seg in np.split(t, cut)]


def _embed(name: str, png: Path, caption: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<figure class="fig" id="fig-{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)} (SVG: '
            f'figures/{esc(Path(png).with_suffix(".svg").name)})</figcaption></figure>')


# ----------------------------------------------------------------------------- html
def _criteria_text(protocol) -> str:
    parts = [protocol.describe(n, o) for n, o in protocol.criteria]
    return "; ".join(parts)


def protocol_html(results, figures: dict) -> str:
    """The section's HTML (figures embedded)."""
    p, s = results.protocol, results.summary
    origin = "the first dose of " + p.drug if p.origin == "treatment_start" else "transplant"
    levels = ", ".join(f"{x:g}" for x in sorted(p.dose_levels, reverse=True))
    out = [f'<p class="small">Primary endpoint: any of {esc(_criteria_text(p))}, within '
           f"{esc(f'{p.horizon_days:g}')} days of {esc(origin)}. Adverse events graded by "
           f"CTCAE v{esc(p.ctcae_version)} from laboratory values and merged with the "
           f"reported events. Population: {esc(p.population)} patients. Dose levels of "
           f"{esc(p.drug)}: {esc(levels)} "
           f"{esc(p.dose_unit)}.</p>",
           f'<p><b>{s["events"]} of {s["n"]} patients</b> met the primary '
           f"endpoint: {_pct(s['proportion'])} ({int(round(100 * s['conf_level']))}% exact "
           f"interval {_pct(s['lower'])} to {_pct(s['upper'])}).</p>"]
    if s["by_criterion"]:
        out.append("<p>First criterion met: " + esc(", ".join(
            f"{k} {v}" for k, v in s["by_criterion"].items())) + ".</p>")
    if s["censored_early"]:
        out.append(f'<p class="small">{s["censored_early"]} patient(s) without the endpoint '
                   "were followed for less than the horizon and count as not met.</p>")
    out.append("<h3>Per patient</h3>")
    since = "first dose" if p.origin == "treatment_start" else "transplant"
    out.append(_table(results.primary, {
        "patient_id": "patient", "met": "met", "criterion": "first criterion",
        "day": "day from transplant", "day_from_origin": f"day from {since}",
        "all_criteria": "all criteria met (days from transplant)", "note": "note"},
        row_class=lambda r: "met" if r["met"] else ""))
    out.append(f"<h3>Outcomes at day {p.horizon_days:g} from the {esc(since)}</h3>")
    out.append(_table(results.outcomes, {
        "outcome": "outcome", "method": "method", "competing": "competing events",
        "n": "n", "events": "events", "competing_events": "competing",
        "estimate": "estimate", "lower": "lower", "upper": "upper", "note": "note"},
        pct=("estimate", "lower", "upper")))
    out.append("<h3>Adverse events (patients with at least one, by worst grade)</h3>")
    out.append(_table(results.ae_table, {
        "term": "term", "patients": "patients", "percent": "%", "grade_1": "grade 1",
        "grade_2": "grade 2", "grade_3": "grade 3", "grade_4": "grade 4",
        "grade_5": "grade 5", "grade_3_5": "grade 3-5", "percent_grade_3_5": "% grade 3-5"},
        row_class=lambda r: "severe" if r["grade_3_5"] > 0 else "",
        one_decimal=("percent", "percent_grade_3_5")))
    out.append('<p class="small">Rows with grade 3-5 events are highlighted. Events with '
               "onset from each patient's origin to the horizon; one event per episode.</p>")
    if len(results.exposure):
        out.append(f"<h3>Exposure to {esc(p.drug)}</h3>")
        out.append(_table(results.exposure, {
            "patient_id": "patient", "start_dose": "start dose", "reductions": "reductions",
            "holds": "holds", "held_days": "days held", "days_on": "days on drug",
            "lowest_level_day": "lowest level from day", "last_dose": "last dose",
            "stop_day": "stopped on day", "stop_reason": "stop reason"}))
    if "doses" in figures:
        out.append(_embed("doses", figures["doses"][0],
                          "Dose level of each patient over time (grey: held), and the day "
                          "the primary endpoint was met."))
    if results.stopping is not None:
        r = results.stopping
        out.append("<h3>Safety stopping rule</h3>")
        out.append(f"<p>Continuous Bayesian monitoring of the primary event rate (Thall, "
                   f"Simon and Estey 1995): after each patient, stop if P(rate &gt; "
                   f"{r.p0:g} | data) &gt; {r.threshold:g} under a Beta({r.prior[0]:g}, "
                   f"{r.prior[1]:g}) prior; at most {r.max_patients} patients.</p>")
        b = results.boundaries.dropna(subset=["stop_at"])
        out.append(_table(b, {"n": "patients", "stop_at": "stop at events",
                              "posterior_at_stop": "P(rate > p0) at boundary",
                              "posterior_below": "one event fewer"}))
        out.append(_table(results.operating, {
            "true_rate": "true rate", "p_stop": "P(stop)", "p_stop_early":
            "P(stop before last patient)", "expected_n": "expected patients",
            "sim_p_stop": "simulated P(stop)", "sim_expected_n": "simulated expected"},
            pct=("true_rate", "p_stop", "p_stop_early", "sim_p_stop")))
        seq = results.sequence
        stopped = seq[seq["stop"]]
        verdict = (f"The boundary was reached at patient {int(stopped['n'].iloc[0])} "
                   f"({esc(stopped['patient_id'].iloc[0])}): the rule would have stopped "
                   "the trial there.") if len(stopped) else \
            "The observed sequence never reached the boundary."
        out.append(f"<p>{verdict}</p>")
        out.append(_table(seq, {"n": "n", "patient_id": "patient", "known_on": "outcome known",
                                "event": "event",
                                "events": "events so far", "posterior": "P(rate > p0)",
                                "stop_at": "boundary", "crossed": "boundary reached"},
                          row_class=lambda r: "severe" if r["crossed"] else ""))
        if "stopping" in figures:
            out.append(_embed("stopping", figures["stopping"][0],
                              "Stopping boundary and the observed cumulative events, in the "
                              "order the patients' outcomes became known."))
    return "".join(out)


def protocol_records(results) -> dict:
    """The section's numbers for results.json."""
    def recs(frame):
        if frame is None:
            return None
        return json.loads(frame.to_json(orient="records", date_format="iso"))
    return {"settings": results.protocol.as_dict(), "summary": results.summary,
            "primary": recs(results.primary), "outcomes": recs(results.outcomes),
            "adverse_event_table": recs(results.ae_table),
            "stopping": None if results.stopping is None else {
                "rule": results.stopping.as_dict(), "boundaries": recs(results.boundaries),
                "operating_characteristics": recs(results.operating),
                "sequence": recs(results.sequence)}}


def write_protocol_outputs(results, out_dir, *, clinical=None) -> str:
    """Write the CSV tables and figures; return the HTML section."""
    out = Path(out_dir)
    folder = out / "protocol"
    folder.mkdir(parents=True, exist_ok=True)
    for attr, name in CSV_FILES.items():
        frame = getattr(results, attr)
        if frame is not None and len(frame.columns):
            write_text(folder / name, frame.to_csv(index=False))
    figures = {}
    if results.stopping is not None:
        figures["stopping"] = _stopping_figure(results, out / "figures" / "stopping_rule")
    if clinical is not None and results.protocol.dose_levels:
        from ..clinical.exposure import dose_days
        days = dose_days(clinical, results.protocol.drug, results.protocol.dose_levels)
        if len(days):
            figures["doses"] = _dose_figure(results, days, out / "figures" / "dose_levels")
    return protocol_html(results, figures)
