"""The self-contained HTML page of the graft-versus-myeloma report.

Figures are embedded as base64 PNG, the CSS is inline and there is no script,
so the page can be mailed or archived alone. Every text from the data
(patient, population, lineage names, notes) is HTML-escaped. The page is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd

from .pages import CSS, esc, write_text_atomic

__all__ = ["write_gvm_page", "gvm_html", "METHODS", "CAVEATS", "FIGURE_CAPTIONS"]

EXTRA_CSS = """
tr.primary td{background:#fff6e5}tr.separated td{color:#8a3a00}
td.text{text-align:left;max-width:26em}td.note{text-align:left;font-size:.8em;color:#555;
max-width:30em}.fig img{max-width:100%}.caveats li,.methods li{margin:.3em 0}
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
    "given); the interval is Wald's and is withheld when the likelihood is monotone.",
    "Separation is detected exactly before fitting (a linear programme over the risk "
    "sets); when it holds the hazard ratio is reported as 0 or infinity with no interval "
    "and only the likelihood-ratio and score tests.",
    "Landmark analyses: exposure fixed at the landmark day, patients with an event or "
    "censored by then excluded, time restarted at the landmark.",
    "Competing risks: Aalen-Johansen cumulative incidence with log-log intervals (relapse "
    "and non-relapse mortality competing); Gray's test and the Fine-Gray subdistribution "
    "hazard ratio by GVHD status at the landmark.",
    "Correlations: Spearman rho with permutation p-values at a fixed seed.",
    "Safety: proportions of patients with exact Clopper-Pearson intervals.",
    "q-values: Benjamini-Hochberg within each family of questions (column family); "
    "primary questions form their own families.",
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
    "relapses) the hazard ratio estimate is 0 or infinity and the Wald test is "
    "meaningless; the likelihood-ratio and score tests remain valid and are reported.",
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
    "forest": "Effect sizes with 95% intervals (log scale); arrows: estimate at 0 or "
              "infinity under separation.",
    "correlations": "Spearman correlations at the primary visit.",
}

SHOWN = ["question", "label", "text", "method", "effect_measure", "estimate", "lower",
         "upper", "p_value", "p_method", "q_value", "n", "events", "note"]


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


def answers_table(answers: pd.DataFrame) -> str:
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in SHOWN)
    body = []
    for r in answers.to_dict("records"):
        css = " ".join(c for c, on in (("primary", r["label"] == "primary"),
                                       ("separated", bool(r["separated"]))) if on)
        cells = []
        for c in SHOWN:
            v = r[c]
            if c in ("estimate", "lower", "upper", "p_value", "q_value", "n", "events"):
                cells.append(f"<td>{_num(v)}</td>")
            else:
                klass = ' class="note"' if c == "note" else \
                    ' class="text"' if c in ("text", "method") else ""
                text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else v
                cells.append(f"<td{klass}>{esc(text)}</td>")
        body.append(f'<tr class="{css}">' + "".join(cells) + "</tr>")
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table>")


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    caption = FIGURE_CAPTIONS.get(name, name)
    return (f'<figure class="fig" id="fig-{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)} '
            f'(SVG: figures/{esc(Path(png).with_suffix(".svg").name)})</figcaption></figure>')


def _list(items) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def gvm_html(*, title: str, answers: pd.DataFrame, plan, figures: dict,
             n_patients: int, provenance: dict | None = None) -> str:
    primary = answers[answers["label"] == "primary"]
    separated = answers[answers["separated"].astype(bool)]
    parts = [f"<h1>{esc(title)}</h1>",
             f'<p class="small">{n_patients} patients. Declared plan: baseline visit '
             f"{esc(plan.baseline_visit)}, primary visit {esc(plan.primary_visit)}, "
             f"landmark day {esc(f'{plan.landmark_day:g}')}, incidences at day "
             f"{esc(f'{plan.horizon_day:g}')}, permutation seed {esc(plan.seed)}. "
             "Primary rows are shaded.</p>",
             "<h2>Primary questions</h2>", answers_table(primary)]
    if len(separated):
        parts.append('<p class="small">Separation (monotone likelihood) in: '
                     + esc(", ".join(separated["question"].astype(str)))
                     + ". Their hazard ratios are 0 or infinity; read the likelihood-ratio "
                       "and score tests.</p>")
    parts.append("<h2>Figures</h2>")
    parts += [_figure(name, png) for name, (png, _svg) in figures.items()]
    for number, words in QUESTIONS.items():
        sub = answers[answers["number"] == number]
        parts += [f"<h2>Question {number}</h2>", f"<p>{esc(words)}</p>", answers_table(sub)]
    parts += ["<h2>Methods</h2>", f'<div class="methods">{_list(METHODS)}</div>',
              "<h2>Caveats</h2>", f'<div class="caveats">{_list(CAVEATS)}</div>']
    if provenance:
        rows = "".join(f"<tr><td>{esc(k)}</td><td class=\"text\">{esc(v)}</td></tr>"
                       for k, v in provenance.items())
        parts += ["<h2>Provenance</h2>", f"<table><tbody>{rows}</tbody></table>"]
    body = "".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}{EXTRA_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def write_gvm_page(path, **kwargs) -> Path:
    """Write the report page atomically; returns its path."""
    return write_text_atomic(path, gvm_html(**kwargs))
