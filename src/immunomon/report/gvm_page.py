"""The self-contained HTML page of the graft-versus-myeloma report.

Figures are embedded as base64 PNG, the CSS is inline and there is no script,
so the page can be mailed or archived alone. Every text from the data
(patient, population, lineage names, notes) is HTML-escaped. The page is
written under a temporary name and renamed when complete.

The page is a list of :class:`Section` objects; callers add their own (for
example protocol endpoints) through ``sections``, which are placed after the
answers to the declared questions and before the methods. Answer tables are
compact: a short method label (its full text in the legend under the table
and as a tooltip), estimate and interval in one cell, numbered notes below
the table instead of long text in a cell.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .pages import CSS, esc, write_text_atomic

__all__ = ["write_gvm_page", "gvm_html", "Section", "answers_table", "short_method",
           "gating_qc_table", "METHODS", "CAVEATS", "FIGURE_CAPTIONS"]

EXTRA_CSS = """
body{max-width:84em}
nav{font-size:.85em;margin:.4em 0 1em}nav a{margin-right:.9em}
table.answers{width:100%;table-layout:auto}
table.answers td{vertical-align:top}
table.answers td.q{text-align:left;max-width:24em}
table.answers td.eff{text-align:left;white-space:nowrap}
table.answers td.est,table.answers td.p{white-space:nowrap}
table.answers td.m{text-align:left;white-space:nowrap}
table.answers td.n{white-space:nowrap}
table.answers td.fn{text-align:left;white-space:nowrap}
tr.primary td{background:#fff6e5}tr.separated td.est{color:#8a3a00}
tr.gating td.est,tr.gating td.p{color:#8a5a00}
.qid{display:block;color:#888;font-size:.8em}
.sub{display:block;color:#666;font-size:.8em}
.badge{font-size:.7em;font-weight:bold;color:#8a3a00;margin-left:.3em}
ol.notes,dl.legend{font-size:.8em;color:#444;margin:.3em 0 1em}
dl.legend{display:grid;grid-template-columns:max-content auto;gap:.1em .8em}
dl.legend dt{font-weight:bold}dl.legend dd{margin:0}
.fig img{max-width:100%}.caveats li,.methods li{margin:.3em 0}
.small{font-size:.85em;color:#555}
"""

QUESTIONS = {
    1: "Change of regulatory T cells, NK cells, HLA-DR+ (activated) T cells and dendritic "
       "cells from the sample before lenalidomide to each later visit.",
    2: "Acute GVHD grade II-IV (as a time-varying exposure) and relapse/progression; the "
       "same for progression-free and overall survival.",
    3: "Immune counts and donor chimerism (time-varying, last value carried forward) with "
       "relapse and with the onset of acute GVHD; their correlations at the primary visit.",
    4: "Cumulative incidence of relapse and of non-relapse mortality, overall and by acute "
       "GVHD.",
    5: "Safety: adverse events by CTCAE grade, discontinuations, steroid-refractory GVHD, "
       "transplant-related deaths, with exact intervals.",
}

METHODS = [
    "Immune counts are analysed as log10 cells/uL; zeros are raised to half the smallest "
    "positive count of the population (stated in each row).",
    "Gating QC: a population counted with fewer events than the counting limit in a sample "
    "has an unstable count there. Questions on a population below the limit in most of its "
    "samples are not estimable (no estimate, no p-value); below it in some samples, the "
    "numbers carry that caveat.",
    "Change from baseline: exact Wilcoxon signed-rank test on each patient's paired log10 "
    "change (normal approximation with continuity correction when differences are tied or "
    "zero, as named in the row); the effect is the Hodges-Lehmann fold change with the "
    "exact interval that inverts the test.",
    "Trajectories: linear mixed model with a random intercept per patient (REML) and "
    "categorical visits; geometric mean ratios against baseline with Wald intervals.",
    "GVHD and outcomes: Cox models on counting-process data in which acute GVHD II-IV "
    "switches on at its onset day; immune counts and chimerism enter as the last measured "
    "value carried forward, patients entering the risk set at their first measurement. "
    "One covariate per model. p-values are likelihood-ratio tests (the score test is also "
    "given); intervals are Wald's for ordinary fits.",
    "Separation is detected exactly before fitting (a linear programme over the risk sets), "
    "and so is near-separation (one event from it). For such models the hazard ratio shown "
    "is Firth's penalised estimate (Heinze and Schemper 2001; Breslow ties, as R's coxphf) "
    "with its profile penalised-likelihood interval, marked F; the unpenalised estimate "
    "(0 or infinity under separation) is printed under it, and the penalised "
    "likelihood-ratio p-value next to the likelihood-ratio and score tests.",
    "Landmark analyses: exposure fixed at the landmark day, patients with an event or "
    "censored by then excluded, time restarted at the landmark.",
    "Competing risks: Aalen-Johansen cumulative incidence with log-log intervals (relapse "
    "and non-relapse mortality competing); Gray's test and the Fine-Gray subdistribution "
    "hazard ratio by GVHD status at the landmark.",
    "Correlations: Spearman rho with permutation p-values at a fixed seed.",
    "Safety: proportions of patients with exact Clopper-Pearson intervals.",
    "q-values: Benjamini-Hochberg within each family of questions; primary questions form "
    "their own families.",
]

CAVEATS = [
    "Immortal time: GVHD, immune recovery and lenalidomide exposure begin after day 0. "
    "Comparing patients who ever had GVHD with those who never did credits the GVHD group "
    "with the time they had to survive to develop it, and makes GVHD look protective "
    "even when it is not. Every GVHD and immune comparison here is time-varying or starts "
    "at a landmark; the colours of the trajectory plot (GVHD at any time) are for display "
    "only.",
    "Competing risks: a patient who dies without relapse can no longer relapse. One minus "
    "Kaplan-Meier with such deaths censored overstates relapse; the cumulative incidence "
    "is reported instead, and the cause-specific hazard ratio (relapse, deaths censored) "
    "answers a different question from the Fine-Gray ratio.",
    "Small sample: with about 13 patients every estimate is imprecise, a model with more "
    "than one covariate is overfitted (fewer than 10 events per covariate), and many "
    "exploratory p-values are expected to fall below 0.05 by chance. Only the questions "
    "labelled primary were declared to test the hypothesis.",
    "Separation: when no exposed patient has the event (for example no patient with GVHD "
    "relapses) the unpenalised hazard ratio is 0 or infinity and the Wald test is "
    "meaningless. The Firth estimate is finite but shrunk towards 1 and its interval is "
    "wide; the likelihood-ratio and score tests remain valid and are reported.",
    "Change from baseline in a single-arm trial: counts also change because the immune "
    "system is still recovering after transplant, so a change from the pre-lenalidomide "
    "sample is not by itself a drug effect. On simulated null trials with normal "
    "reconstitution the count tests of recovering populations reject far more often than "
    "5% (benchmarks/calibration.py); the composition rows (e.g. Treg as % of CD4 T "
    "cells) are not moved by the recovery of the whole compartment.",
    "Wald intervals of the mixed models and the Cox models are optimistic at this size; "
    "prefer the exact tests for inference.",
]

FIGURE_CAPTIONS = {
    "trajectories": "Counts per patient over time (log scale), coloured by acute GVHD II-IV "
                    "at any time (display only; see immortal time).",
    "chimerism": "Donor chimerism per lineage; dashed line: 95% (full donor).",
    "swimmer": "Each patient's course: follow-up, drug exposure, GVHD onset, responses, "
               "relapse/progression and death (arrow: alive at last follow-up).",
    "incidence": "Cumulative incidence of relapse and non-relapse mortality (left) and of "
                 "relapse by GVHD status at the landmark (right), with numbers at risk.",
    "survival": "Kaplan-Meier progression-free and overall survival with numbers at risk.",
    "forest": "Effect sizes with 95% intervals (log scale); open diamonds: Firth-penalised "
              "estimates of separated models; arrows: a limit at 0 or infinity.",
    "correlations": "Spearman correlations at the primary visit (blank: withdrawn by the "
                    "gating QC).",
}

# Short labels for the method column, first match wins; the full text goes to
# the legend. Unknown methods keep their first words.
METHOD_LABELS = (
    ("exact Wilcoxon", "Wilcoxon SR"),
    ("linear mixed model", "Mixed model"),
    ("landmark Cox", "Landmark Cox"),
    ("Cox model, GVHD switched on", "Cox, time-varying"),
    ("Cox model, last value carried", "Cox, LVCF"),
    ("Cox model", "Cox"),
    ("Spearman", "Spearman"),
    ("Aalen-Johansen", "Aalen-Johansen"),
    ("landmark at day", "Gray + Fine-Gray"),
    ("proportion of patients", "Clopper-Pearson"),
)

EFFECT_LABELS = (
    ("subdistribution hazard ratio", "sHR"),
    ("hazard ratio per 10-fold", "HR per 10x"),
    ("hazard ratio per 10%", "HR per 10% donor"),
    ("hazard ratio", "HR"),
    ("fold change", "fold change"),
    ("geometric mean ratio", "GM ratio"),
    ("Spearman rho", "rho"),
    ("cumulative incidence at day", "incidence d"),
    ("proportion of patients", "proportion"),
)

P_LABELS = (("likelihood ratio", "LR"), ("Gray", "Gray"), ("Wald", "Wald"),
            ("exact", "exact"), ("normal", "normal"), ("permutation", "perm."))


def _label(text: str, table, default_words: int = 3) -> str:
    text = str(text or "")
    for start, label in table:
        if start.lower() in text.lower():
            return label
    return " ".join(text.split()[:default_words])


def short_method(method: str) -> str:
    """A short label for a method description (the full text goes to a legend)."""
    return _label(method, METHOD_LABELS)


def _effect(measure: str) -> str:
    label = _label(measure, EFFECT_LABELS, 2)
    if label == "incidence d":
        return "incidence d" + str(measure).rsplit(" ", 1)[-1]
    return label


def _num(v) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return esc(v)
    if np.isnan(x):
        return ""
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


class _Notes:
    """Numbered notes shared by the rows of one table."""

    def __init__(self):
        self.items: dict[str, int] = {}

    def ref(self, text: str) -> str:
        text = str(text).strip()
        if not text:
            return ""
        number = self.items.setdefault(text, len(self.items) + 1)
        return f"[{number}]"

    def html(self) -> str:
        if not self.items:
            return ""
        return ('<ol class="notes">' + "".join(f"<li>{esc(t)}</li>" for t in self.items)
                + "</ol>")


def _estimate_cell(r) -> str:
    note = str(r.get("note") or "")
    if _missing(r.get("estimate")):
        return "not estimable" if note.startswith("not estimable") else ""
    text = _num(r["estimate"])
    if not (_missing(r.get("lower")) and _missing(r.get("upper"))):
        text += f" ({_num(r.get('lower'))}&ndash;{_num(r.get('upper'))})"
    if r.get("estimator") == "Firth":
        text += '<span class="badge" title="Firth-penalised estimate, profile penalised-' \
                'likelihood interval">F</span>'
        text += f'<span class="sub">unpenalised: {_num(r.get("estimate_ml"))}</span>'
    if r.get("gating_qc"):
        text += '<span class="badge" title="gating QC caveat">QC</span>'
    return text


def _p_cell(r) -> str:
    if _missing(r.get("p_value")):
        return ""
    text = f'{_num(r["p_value"])} <span class="sub" style="display:inline">' \
           f'{esc(_label(r.get("p_method", ""), P_LABELS, 1))}</span>'
    extra = []
    if not _missing(r.get("p_score")):
        extra.append(f"score {_num(r['p_score'])}")
    if r.get("estimator") == "Firth" and not _missing(r.get("p_firth")):
        extra.append(f"pen. LR {_num(r['p_firth'])}")
    if extra:
        text += f'<span class="sub">{" &middot; ".join(extra)}</span>'
    return text


def _n_cell(r) -> str:
    n, events = r.get("n"), r.get("events")
    if _missing(n):
        return ""
    return _num(n) + ("" if _missing(events) else f" ({_num(events)})")


HEAD = ("Question", "Effect", "Estimate (95% CI)", "p", "q", "n (events)", "Method", "Notes")


def answers_table(answers: pd.DataFrame, *, show_ids: bool = True) -> str:
    """The compact answer table, its numbered notes and its method legend."""
    notes = _Notes()
    legend: dict[str, str] = {}
    body = []
    for r in answers.to_dict("records"):
        r = {k: (None if _missing(v) else v) for k, v in r.items()}
        css = " ".join(c for c, on in (("primary", r.get("label") == "primary"),
                                       ("separated", bool(r.get("separated"))),
                                       ("gating", bool(r.get("gating_qc")))) if on)
        method = str(r.get("method") or "")
        short = short_method(method)
        if method:
            legend.setdefault(short, method)
        qid = f'<span class="qid">{esc(r.get("question", ""))}</span>' if show_ids else ""
        badge = '<span class="badge">primary</span>' if r.get("label") == "primary" else ""
        refs = " ".join(filter(None, [notes.ref(r.get("gating_qc") or ""),
                                      notes.ref(r.get("note") or "")]))
        cells = [
            f'<td class="q">{esc(r.get("text") or r.get("question", ""))}{badge}{qid}</td>',
            f'<td class="eff" title="{esc(r.get("effect_measure") or "")}">'
            f'{esc(_effect(r.get("effect_measure") or ""))}</td>',
            f'<td class="est">{_estimate_cell(r)}</td>',
            f'<td class="p">{_p_cell(r)}</td>',
            f'<td>{_num(r.get("q_value"))}</td>',
            f'<td class="n">{_n_cell(r)}</td>',
            f'<td class="m" title="{esc(method)}">{esc(short)}</td>',
            f'<td class="fn">{esc(refs)}</td>',
        ]
        body.append(f'<tr class="{css}">' + "".join(cells) + "</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in HEAD)
    legend_html = ('<dl class="legend">' + "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in legend.items()) + "</dl>")
    return (f'<table class="answers"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{notes.html()}{legend_html}")


def gating_qc_table(gating_qc: pd.DataFrame | None, min_events: int) -> str:
    """Per population: samples, samples below the counting limit, median events."""
    if gating_qc is None or len(gating_qc) == 0:
        return "<p>No gating counts in the cohort.</p>"
    rows = "".join(
        f"<tr><td>{esc(r.population)}</td><td>{_num(r.samples)}</td>"
        f"<td>{_num(r.below_limit)}</td><td>{_num(r.zero)}</td>"
        f"<td>{_num(r.median_events)}</td><td>{esc(r.verdict)}</td></tr>"
        for r in gating_qc.itertuples())
    head = "".join(f"<th>{h}</th>" for h in (
        "Population", "Samples", f"Below {min_events:,} events", "No events",
        "Median events", "Questions"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _left_out_html(left_out: pd.DataFrame | None) -> str:
    """The visits whose flow samples failed gating QC, left out of the immune questions."""
    if left_out is None or len(left_out) == 0:
        return ""
    visits = ", ".join(f"{r.patient_id} {r.visit}" for r in left_out.itertuples())
    return (f'<p class="small">{len(left_out)} visit{"s" if len(left_out) > 1 else ""} whose '
            f"flow samples failed gating QC {'are' if len(left_out) > 1 else 'is'} left out "
            f"of the immune questions: {esc(visits)} (their sample pages say why).</p>")


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    caption = FIGURE_CAPTIONS.get(name, name)
    return (f'<figure class="fig" id="fig-{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)} '
            f'(SVG: figures/{esc(Path(png).with_suffix(".svg").name)})</figcaption></figure>')


def _list(items) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


@dataclass(frozen=True)
class Section:
    """One titled part of the page; ``html`` is trusted markup (escape data first)."""
    id: str
    title: str
    html: str


def _provenance_html(provenance, provenance_link: str | None) -> str:
    if provenance_link:
        version = (provenance or {}).get("software_version", "")
        return (f'<p>Input files, their SHA-256 hashes, the template and the software '
                f'version{" (" + esc(version) + ")" if version else ""} are in '
                f'<a href="{esc(provenance_link)}">{esc(provenance_link)}</a>, with paths '
                "relative to the study folder.</p>")
    if provenance:
        rows = "".join(f"<tr><td>{esc(k)}</td><td class=\"text\">{esc(v)}</td></tr>"
                       for k, v in provenance.items())
        return f"<table><tbody>{rows}</tbody></table>"
    return "<p>No provenance recorded.</p>"


def gvm_html(*, title: str, answers: pd.DataFrame, plan, figures: dict,
             n_patients: int, provenance: dict | None = None,
             provenance_link: str | None = None, gating_qc: pd.DataFrame | None = None,
             left_out: pd.DataFrame | None = None, sections: Sequence[Section] = ()) -> str:
    primary = answers[answers["label"] == "primary"]
    separated = answers[answers["separated"].astype(bool)]
    min_events = getattr(plan, "min_events", 0)
    parts: list[Section] = []
    intro = (f'<p class="small">{n_patients} patients. Declared plan: baseline visit '
             f"{esc(plan.baseline_visit)}, primary visit {esc(plan.primary_visit)}, "
             f"landmark day {esc(f'{plan.landmark_day:g}')}, incidences at day "
             f"{esc(f'{plan.horizon_day:g}')}, counting limit {esc(f'{min_events:,}')} "
             f"events, permutation seed {esc(plan.seed)}. Primary rows are shaded.</p>")
    sep_note = ""
    if len(separated):
        sep_note = ('<p class="small">Separation (monotone likelihood) in: '
                    + esc(", ".join(separated["question"].astype(str)))
                    + ". Their unpenalised hazard ratios are 0 or infinity; the Firth "
                      "estimate (F) with its profile penalised-likelihood interval is shown, "
                      "next to the likelihood-ratio and score tests.</p>")
    parts.append(Section("primary", "Primary questions", answers_table(primary) + sep_note))
    if gating_qc is not None:
        marked = answers[answers.get("gating_qc", pd.Series("", index=answers.index))
                         .fillna("").astype(str) != ""]
        words = (f"<p class=\"small\">{len(marked)} answers carry a gating caveat or are "
                 "not estimable because their population was counted with too few events "
                 "(rows marked QC).</p>") + _left_out_html(left_out)
        parts.append(Section("gating-qc", "Gating QC",
                             gating_qc_table(gating_qc, min_events) + words))
    parts.append(Section("figures", "Figures", "".join(
        _figure(name, png) for name, (png, _svg) in figures.items())))
    for number, words in QUESTIONS.items():
        sub = answers[answers["number"] == number]
        parts.append(Section(f"q{number}", f"Question {number}",
                             f"<p>{esc(words)}</p>" + answers_table(sub)))
    parts += list(sections)
    parts += [Section("methods", "Methods", f'<div class="methods">{_list(METHODS)}</div>'),
              Section("caveats", "Caveats", f'<div class="caveats">{_list(CAVEATS)}</div>'),
              Section("provenance", "Provenance",
                      _provenance_html(provenance, provenance_link))]
    nav = "<nav>" + "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in parts) \
        + "</nav>"
    body = f"<h1>{esc(title)}</h1>{intro}{nav}" + "".join(
        f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.html}</section>' for s in parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width\">"
            f"<title>{esc(title)}</title><style>{CSS}{EXTRA_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def write_gvm_page(path, **kwargs) -> Path:
    """Write the report page atomically; returns its path."""
    return write_text_atomic(path, gvm_html(**kwargs))
