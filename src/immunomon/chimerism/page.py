"""The chimerism page: one self-contained HTML file a transplant laboratory can sign off.

Per sample: % donor, the loci used and every locus left out with the reason; the
reference genotypes with every peak that was not called an allele and why; the input
warnings; and, for raw traces, the electropherogram of each locus with the donor and
recipient alleles marked. Figures are embedded as PNG data, so the file stands alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
from importlib.metadata import PackageNotFoundError, version

import pandas as pd

from ..atomic import write_text
from .calculate import ChimerismResult

# What each flag means, for the legend (codes as they appear in the tables).
FLAG_MEANINGS = {
    "outlier": "left out of the mean: too far from the median of the loci (robust rule)",
    "excluded_locus": "left out of the mean by configuration (e.g. Amelogenin)",
    "not_computable": "informative, but no usable peak for the formula",
    "matched_by_size": "the allele was found through an unlabelled or off-ladder peak",
    "below_threshold": "the peak is under the detection threshold and not counted",
    "saturated": "the peak is at or above saturation: its amount is underestimated",
    "pull_up": "the peak sits under a much taller peak of another dye: not counted",
    "spike": "peaks at this scan in three or more dyes: a spike, not counted",
    "broad_peak": "the peak is much wider than the run's peaks (dye blob?): counted, check",
    "unknown_allele": "a called peak of nobody's genotype (contamination, mix-up?)",
    "reference_artefact": "a peak of nobody's genotype where a reference run had a "
                          "non-allele peak too (pull-up, minor or off-ladder): an artefact, "
                          "not counted",
    "identity_mismatch": "peaks of nobody's genotype at most loci: references of another "
                         "patient or another person's sample; not reported",
    "stutter_corrected": "in the major contributor's stutter position: stutter subtracted",
    "stutter_excluded": "in the major contributor's stutter position: left out",
    "stutter_position": "in the major contributor's stutter position: used as measured",
    "forward_stutter_corrected": "one repeat above a major allele: forward stutter "
                                 "subtracted",
    "dropout": "left out of the mean: an allele of a large contributor under the threshold",
    "unresolved": "reference: an off-ladder or unlabelled peak as tall as the alleles; "
                  "the locus is not typed",
    "quantity": "the export had no areas: heights were used",
    "no_heights": "the export had no heights: no RFU threshold, pull-up or spike check",
    "recipient_below_lod": "recipient share under the limit of detection",
    "donor_below_lod": "donor share under the limit of detection",
    "out_of_range": "the formula gave a value outside 0-100 %: clipped",
    "minor_peak": "reference: a peak under the allele-balance threshold, not an allele",
    "extra_peak": "reference: a third peak where only two alleles are called",
    "off_ladder": "reference: an off-ladder peak as tall as the alleles, not an allele",
    "unlabelled": "reference: an unlabelled peak as tall as the alleles, not an allele",
    "more_than_two_alleles": "reference: more than two allele-like peaks at the locus",
    "tri_allelic": "reference: three alleles accepted at this locus",
    "imbalanced": "reference: heterozygote balance under 60 %",
    "off_ladder_allele": "reference: an off-ladder peak accepted as an allele",
    "no_allele_above_threshold": "reference: no peak qualifies as an allele",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1300px;padding:0 1em;color:#222;line-height:1.35}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin-top:1.2em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.excluded td{color:#888;background:#fafafa}
.warn{background:#fff4e0;border:1px solid #f0c27b;padding:.5em 1em;border-radius:4px}
.small{font-size:.85em;color:#555}.flags{font-size:.85em;color:#555;max-width:40em}
img{max-width:100%}figure{margin:.4em 0 1em}figcaption{font-size:.85em;color:#555}
"""


def _e(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.2f}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, columns: dict, *, row_class=None, numeric=()) -> str:
    """An HTML table of ``df``'s ``columns`` (column -> header)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
    rows = []
    for _, r in df.iterrows():
        cls = row_class(r) if row_class else ""
        cells = "".join(
            f"<td class=\"num\">{_e(r[c])}</td>" if c in numeric else f"<td>{_e(r[c])}</td>"
            for c in columns)
        rows.append(f"<tr class=\"{cls}\">{cells}</tr>" if cls else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _version() -> str:
    try:
        return version("immunomon")
    except PackageNotFoundError:
        return "unknown"


def _summary(result: ChimerismResult) -> str:
    df = result.summary_frame()
    if df.empty:
        return "<p>No post-transplant sample.</p>"
    people = [g.person for g in result.references]
    cols = {"sample": "sample", "lineage": "lineage", "date": "date",
            "percent_donor": "% donor", "reported": "reported", "sd": "SD", "cv": "CV %",
            "n_used": "loci used", "n_informative": "informative loci",
            "classification": "classification", "flags": "flags"}
    if len(people) > 2:
        cols = {**{k: v for k, v in cols.items() if k != "flags"},
                **{f"percent_{p}": f"% {p}" for p in people}, "flags": "flags"}
    numeric = {"percent_donor", "sd", "cv"} | {f"percent_{p}" for p in people}
    df = df.assign(flags=df["flags"].str.replace(";", "; "))
    return _table(df, cols, numeric=numeric)


def _loci_table(result: ChimerismResult, sample) -> str:
    people = [g.person for g in result.references]
    df = result.loci_frame()
    df = df[df["sample"] == sample.sample].copy()
    df["status"] = [("used" if u else ("left out" if inf else "")) for u, inf in
                    zip(df["used"], df["informative"])]
    df["flags"] = df["flags"].str.replace(";", "; ")
    cols = {"locus": "locus", "pattern": "pattern",
            **{f"{p}_alleles": p for p in people},
            "alleles_used": "alleles used", "percent_donor": "% donor"}
    if len(people) > 2:
        cols.update({f"percent_{p}": f"% {p}" for p in people})
    cols.update({"status": "in mean", "exclusion": "why left out", "flags": "flags"})
    numeric = {"percent_donor"} | {f"percent_{p}" for p in people}
    return _table(df, cols, numeric=numeric,
                  row_class=lambda r: "" if r["used"] else "excluded")


def _references(result: ChimerismResult) -> str:
    parts = []
    geno = result.genotype_frame()
    if not geno.empty:
        wide = geno.groupby(["locus", "person"], sort=False)["allele"].agg(",".join)
        wide = wide.unstack("person").reindex(columns=[g.person for g in result.references])
        flags = geno.groupby(["locus", "person"], sort=False)["flags"].first()
        flags = flags[flags != ""]
        table = wide.reset_index().fillna("")
        table["flags"] = [
            "; ".join(f"{p}: {flags[(lo, p)].replace(';', ', ')}"
                      for p in wide.columns if (lo, p) in flags.index)
            for lo in table["locus"]]
        cols = {"locus": "locus", **{p: p for p in wide.columns}, "flags": "flags"}
        parts.append(_table(table, cols))
    calls = result.reference_calls_frame()
    if not calls.empty:
        notable = calls[(calls["call"] == "artefact")
                        & ~calls["reason"].isin(["unlabelled", "below_threshold"])]
        parts.append("<h3>Labelled reference peaks not called as alleles</h3>")
        if notable.empty:
            parts.append("<p>None.</p>")
        else:
            parts.append(_table(notable, {
                "person": "person", "locus": "locus", "allele": "label", "dye": "dye",
                "size": "size (bp)", "height": "height", "area": "area",
                "reason": "called", "detail": "why"}, numeric={"size", "height", "area"}))
        parts.append("<details><summary>Every reference peak "
                     f"({len(calls)} peaks)</summary>")
        parts.append(_table(calls, {
            "person": "person", "locus": "locus", "allele": "label", "dye": "dye",
            "size": "size (bp)", "height": "height", "area": "area", "call": "call",
            "reason": "reason", "detail": "detail"}, numeric={"size", "height", "area"}))
        parts.append("</details>")
    return "\n".join(parts)


def _settings(result: ChimerismResult) -> str:
    s = result.settings
    items = [
        f"amount: peak {s.quantity}", f"size tolerance {s.size_tolerance:g} bp",
        f"detection threshold {s.detection_threshold:g} RFU",
        f"stutter: {s.stutter} (ratio {s.stutter_ratio:g} unless the kit says)",
        f"LOD {s.lod:g} %", f"full donor at {s.full_donor:g} %",
        f"full recipient under {s.full_recipient:g} %",
        "outliers: none excluded" if s.outlier_mad is None else
        f"outliers: beyond {s.outlier_mad:g} robust SD of the median "
        f"(robust SD at least {s.outlier_floor:g} points)",
        f"reference alleles: at least {s.reference_min_height:g} RFU and "
        f"{s.relative_threshold:.0%} of the locus's tallest allele; stutter up to "
        f"{s.reference_stutter:.0%}; pull-up up to {s.pull_up_ratio:.0%}",
    ]
    return "<ul class=\"small\">" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + \
        "</ul>"


def _legend(result: ChimerismResult) -> str:
    used = set()
    frames = [result.loci_frame(), result.genotype_frame()]
    for df in frames:
        for text in df.get("flags", pd.Series(dtype=object)).fillna(""):
            for f in str(text).split(";"):
                code = f.split(":")[0]
                for person in [g.person for g in result.references]:
                    if code.startswith(person + "_"):
                        code = code[len(person) + 1:]
                used.add(code)
    rows = [(c, m) for c, m in FLAG_MEANINGS.items() if c in used]
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(c)}</td><td>{html.escape(m)}</td></tr>"
                   for c, m in rows)
    return ("<h2>Flags</h2><table><thead><tr><th>flag</th><th>meaning</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _traces(result: ChimerismResult, sample) -> str:
    """Per-locus electropherograms of a raw-trace sample, when the result carries them."""
    entry = result.traces.get(sample.sample)
    if not entry:
        return ""
    from .plots import locus_figures

    figs = locus_figures(entry, result, sample)
    out = []
    for locus, fig in figs:
        out.append(f"<figure><img alt=\"{html.escape(sample.sample)} {html.escape(locus)}\" "
                   f"src=\"{_png(fig)}\"><figcaption>{html.escape(locus)}</figcaption>"
                   "</figure>")
    return "<h3>Electropherograms</h3>" + "".join(out)


def chimerism_html(result: ChimerismResult, *, title: str = "STR donor chimerism") -> str:
    """The page as a string."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class=\"small\">immunomon {html.escape(_version())}; references: "
             + ", ".join(html.escape(f"{g.person} ({', '.join(str(s) for s in g.samples)})")
                         for g in result.references) + "</p>",
             _settings(result)]
    if result.warnings:
        parts.append("<div class=\"warn\"><strong>Input warnings</strong><ul>"
                     + "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
                     + "</ul></div>")
    parts.append("<h2>Samples</h2>")
    parts.append(_summary(result))
    for s in result.samples:
        label = ", ".join(f"{k} {v}" for k, v in (("patient", s.patient),
                                                  ("lineage", s.lineage),
                                                  ("date", s.date)) if v)
        parts.append(f"<h2>{html.escape(s.sample)}</h2>")
        value = s.reported if "LOD" in s.reported or not s.reported else \
            f"{s.reported} % donor"
        parts.append(f"<p><strong>{html.escape(value or 'not determined')}</strong> "
                     f"({html.escape(s.classification)}; {s.n_used} of "
                     f"{s.n_informative} informative loci used"
                     + (f"; {html.escape(label)}" if label else "")
                     + (f"; file {html.escape(s.file)}" if s.file else "") + ")</p>")
        if s.warnings:
            parts.append("<p class=\"warn\">" + "<br>".join(html.escape(w) for w in s.warnings)
                         + "</p>")
        parts.append(_loci_table(result, s))
        parts.append(_traces(result, s))
    if result.runs:
        parts.append("<h2>Runs and sizing</h2>")
        runs = result.runs_frame()
        parts.append(_table(runs, {
            "file": "file", "role": "role", "sample_name": "name in file",
            "size_standard": "size standard", "fragments_used": "fragments used",
            "fragments_missing": "fragments missing",
            "max_residual_bp": "leave-one-out error (bp)",
            "alleles_called_against": "alleles called against"},
            numeric={"fragments_used", "max_residual_bp"}))
    parts.append("<h2>Reference genotypes</h2>")
    parts.append(_references(result))
    parts.append(_legend(result))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_page(result: ChimerismResult, path, **kwargs):
    """Write :func:`chimerism_html` to ``path`` atomically; returns the path."""
    return write_text(path, chimerism_html(result, **kwargs))
