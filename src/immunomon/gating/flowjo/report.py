"""The workspace comparison behind ``immunomon gate --workspace``."""

from __future__ import annotations

import pandas as pd

from .apply import compare_counts, compare_template
from .reader import load_flowjo


def gate_with_workspace(workspace, inputs=None, template=None) -> pd.DataFrame:
    """Per sample and population: FlowJo's count, immunomon's, the difference;
    with a template also its count and per-event F1 against the manual gate
    for each population it shares by name with the workspace."""
    ws = load_flowjo(workspace)
    files = list(inputs) if inputs else None
    table = compare_counts(ws, files)
    if template is not None:
        scores = compare_template(ws, files, template)
        notes = list(dict.fromkeys(table.attrs.get("notes", []) +
                                   scores.attrs.get("notes", [])))
        table = table.merge(scores[["sample", "file", "path", "template_count", "f1"]],
                            on=["sample", "file", "path"], how="left")
        table.attrs["notes"] = notes
    counts = [c for c in ("flowjo_count", "count", "difference", "template_count")
              if c in table]
    table[counts] = table[counts].astype("Int64")       # whole events, missing where none
    return table


def _num(v, fmt="{:,}") -> str:
    if v is None or pd.isna(v):
        return "-"
    return fmt.format(int(v)) if fmt == "{:,}" else fmt.format(v)


def format_comparison(table: pd.DataFrame) -> str:
    """A plain-text table per sample: gate path, FlowJo, immunomon, difference."""
    lines = []
    scored = "f1" in table
    for (sample, _), rows in table.groupby(["sample", "file"], sort=False):
        lines.append(f"{sample}  ({rows['file'].iloc[0]})")
        width = max(len("population"), *(len(p) for p in rows["path"]))
        head = (f"  {'population':<{width}}  {'FlowJo':>9}  {'immunomon':>9}  {'diff':>7}  "
                f"{'diff %':>7}")
        if scored:
            head += f"  {'template':>9}  {'F1':>6}"
        lines.append(head)
        for r in rows.itertuples(index=False):
            line = (f"  {r.path:<{width}}  {_num(r.flowjo_count):>9}  {_num(r.count):>9}  "
                    f"{_num(r.difference, '{:+,.0f}'):>7}  "
                    f"{_num(r.difference_percent, '{:+.2f}'):>7}")
            if scored:
                line += f"  {_num(r.template_count):>9}  {_num(r.f1, '{:.3f}'):>6}"
            lines.append(line)
        lines.append("")
    return "\n".join(lines).rstrip()
