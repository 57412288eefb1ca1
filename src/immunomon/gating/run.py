"""Gating files with a template: the per-sample job behind ``immunomon gate``.

``gate_sample`` gates one in-memory sample and computes its tables, absolute
counts and QC (no files). ``write_sample`` writes one sample's outputs into
its own folder; ``gate_files`` runs both over many files, goes on past files
that fail, and writes the combined table and the index page. Every output is
written to a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir, atomic_path, folder_lock, write_text
from ..errors import GatingError, ImmunomonError
from ..fcs.channel_kinds import is_fluorescence
from ..fmt import NOT_UTF8, unencodable_name
from .. import columns as tables
from .. import populations as pops
from .. import __version__, qc
from ..threads import single_threaded
from .datadriven import BoundaryGate, FoundQuadrants
from .gates import distinct_dimensions
from .near_cut import near_cut_shares
from .strategy import GatingResult
from .template import Template, load_template

REFERENCES = ("Lymphocytes", "Leukocytes")
ANOMALY_WARNING = 0.05    # share of events in unstable time bins that makes a warning
MARGIN_WARNING = 0.05     # share of events on a channel's margin that makes a warning


COUNTING_COLUMNS = ("beads_per_test", "volume_ul", "lymphocytes_per_ul", "leukocytes_per_ul")


@dataclass
class CountingInputs:
    """What absolute counts need; any value may come from the command line,
    the template (a number or the name of an FCS keyword) or the manifest."""

    beads_per_test: float | None = None
    volume_ul: float | None = None
    lymphocytes_per_ul: float | None = None     # haematology analyser, dual platform
    leukocytes_per_ul: float | None = None

    def __post_init__(self):
        for name in COUNTING_COLUMNS:
            value = getattr(self, name)
            problem = None if value is None else pops.counting_input_problem(name, value)
            if problem:
                raise ImmunomonError(problem)
            if value is not None:
                setattr(self, name, float(value))


@dataclass
class SampleGating:
    """Everything ``immunomon gate`` reports about one sample."""

    name: str
    result: GatingResult
    table_columns: dict            # one row per population, as columns (immunomon.columns)
    statistics_columns: dict       # one row per population and marker, as columns
    counting: dict                 # method and inputs of the absolute counts
    qc_flags: list[qc.QCFlag]
    notes: list[str]
    time_qc: qc.TimeQC
    events_total: int
    events_excluded: int
    warnings: list[str] = field(default_factory=list)
    #: each gated event's number in the file (0-based), where events were left out
    #: (non-finite values, unstable acquisition time bins); None where all were gated
    event_numbers: np.ndarray | None = None

    @cached_property
    def table(self):
        """The population table (a DataFrame): what ``populations.csv`` holds."""
        return tables.frame(self.table_columns)

    @cached_property
    def statistics(self):
        """One row per population and marker (a DataFrame): ``statistics.csv``."""
        return tables.frame(self.statistics_columns)

    @property
    def status(self) -> str:
        """'ok', 'warning' or 'failure': the worst level among the QC flags."""
        return qc.status(self.qc_flags)

    def flags_at(self, *levels: str) -> list[str]:
        """The messages of the QC flags at the given levels."""
        return [f.message for f in map(qc.as_flag, self.qc_flags) if f.level in levels]


def safe_name(text: str) -> str:
    """A file-system-safe name (never a path) from a file name or keyword; letters of
    any script stay ("Größe" is not "Gr_e"), spaces and symbols become "_"."""
    text = unicodedata.normalize("NFC", Path(str(text)).name)   # a Mac's decomposed "ö"
    name = re.sub(r"[^\w.+-]+", "_", text).strip("._")
    return name[:120] or "sample"


# ----------------------------------------------------------------------------- one sample
def _counting_value(sample, name: str, given, spec) -> tuple[float | None, str | None]:
    """One input of the absolute counts: the value given (command line, sample info),
    else the template's number, else the FCS keyword the template names. Returns the
    value, or None and why there is none when a keyword was named but holds no
    plausible value (the sample's QC flags carry that)."""
    if given is not None:
        return float(given), None
    if spec is None:
        return None, None
    if isinstance(spec, (int, float)):
        return float(spec), None
    key = str(spec).upper()
    raw = sample.keywords.get(key)
    if raw is None:
        raw = next((v for k, v in sample.keywords.items() if k.upper() == key), None)
    if raw is None:
        return None, (f"FCS keyword {key!r} (the template's counting.{name}) is not in "
                      "this file")
    problem = pops.counting_input_problem(name, raw, f"FCS keyword {key!r} ({name})")
    if problem:
        return None, problem
    return float(raw), None


#: Bead events below which single-platform counts are a warning: every cells/uL is
#: divided by the bead count, whose Poisson CV is then over 3% (bead kits ask for 1,000
#: or more; a tube with 30 beads gave CD4 T 33,166 cells/uL, its 'ok' an info line)
MIN_BEAD_EVENTS = 1000


def _absolute_counts(table: dict, result: GatingResult, template: Template,
                     inputs: CountingInputs) -> tuple[np.ndarray, dict, list[str]]:
    """Cells per uL of every population, how they were counted, and QC flags."""
    sample = result.sample
    flags: list[str] = []
    beads = template.counting.get("beads")
    if beads and beads in result.gate_ids:
        per_test, p1 = _counting_value(sample, "beads_per_test", inputs.beads_per_test,
                                       template.counting.get("beads_per_test"))
        volume, p2 = _counting_value(sample, "volume_ul", inputs.volume_ul,
                                     template.counting.get("volume_ul"))
        problems = [p for p in (p1, p2) if p]
        bead_events = result.count(beads)
        if per_test and volume and not bead_events:
            problems.append(f"the bead population {beads!r} has no events")
        if per_test and volume and bead_events:
            values = pops.single_platform_per_ul(table["count"], bead_events, per_test, volume)
            values[np.asarray(table["population"], dtype=object) == beads] = np.nan
            if bead_events < MIN_BEAD_EVENTS:
                flags.append(f"absolute counts from {bead_events} bead events: their count "
                             f"alone varies by {100 / np.sqrt(bead_events):.0f}% (Poisson), "
                             f"and every cells/uL with it; acquire at least "
                             f"{MIN_BEAD_EVENTS:,} beads")
            unused = {k: v for k, v in (("lymphocytes_per_ul", inputs.lymphocytes_per_ul),
                                        ("leukocytes_per_ul", inputs.leukocytes_per_ul)) if v}
            return values, {
                "method": "single platform (counting beads)", "bead_population": beads,
                "bead_events": bead_events, "beads_per_test": per_test,
                "volume_ul": volume,
                **({"not_used": {**unused, "why": "the beads count instead"}}
                   if unused else {})}, flags
        flags += [f"no single-platform absolute counts: {p}" for p in problems]
    for ref, value in (("Lymphocytes", inputs.lymphocytes_per_ul),
                       ("Leukocytes", inputs.leukocytes_per_ul)):
        column = f"percent_of_{ref}"
        if value and column in table:
            values = pops.dual_platform_per_ul(table[column], value)
            values[np.asarray(table["population"], dtype=object) == ref] = value
            return values, {
                "method": f"dual platform (% of {ref.lower()} x analyser count)",
                "reference": ref, "reference_per_ul": value}, flags
    return np.full(tables.n_rows(table), np.nan), \
        {"method": "none (no beads or analyser count)"}, flags


WIDE_STATISTICS = ("median", "mean", "geometric_mean")


def _wide_statistics(stats: dict, n_populations: int) -> dict:
    """Columns such as 'median CD3', one row per population, from the statistics'
    rows (population by population, the same markers in each)."""
    per_population = len(stats["marker"]) // max(n_populations, 1)
    markers = [m for m in stats["marker"][:per_population] if m is not None]
    if not markers:
        return {}
    # two channels with one marker name (a file's typo) keep a column each
    labels = [m if markers.count(m) == 1 else f"{m} ({channel})"
              for m, channel in zip(markers, stats["channel"])]
    return {f"{stat} {label}": np.asarray(stats[stat]).reshape(n_populations, -1)[:, j]
            for stat in WIDE_STATISTICS for j, label in enumerate(labels)}


@single_threaded()        # the thread policy of the per-file job (immunomon.threads)
def gate_sample(sample, template: Template, *, name: str | None = None,
                overrides: dict | None = None, counting: CountingInputs | None = None,
                exclude_anomalies: bool = True, min_events: int | None = None
                ) -> SampleGating:
    """Gate one sample with a template; compute its tables, counts and QC.
    ``sample``: a ``Sample`` (``read_fcs``) or an FCS file's path; ``template``: a
    ``Template`` or a shipped template's name or a template file's path.
    ``min_events``: populations with fewer events are flagged (default: the
    template's ``qc.min_events``, else 200)."""
    if isinstance(sample, (str, os.PathLike)):
        from ..fcs.datasets import read_fcs_to_gate
        sample = read_fcs_to_gate(sample)
    if isinstance(template, (str, os.PathLike)):
        template = load_template(template)
    if not hasattr(sample, "events") or not isinstance(template, Template):
        raise ImmunomonError(
            "gate_sample takes a Sample (immunomon.read_fcs) or an FCS path, and a Template "
            f"(load_template) or a template's name or path; got {type(sample).__name__} and "
            f"{type(template).__name__}")
    name = name or safe_name(sample.path.stem if sample.path else "sample")
    counting = counting or CountingInputs()
    sample = _named_by_template(sample, template)
    # the template against the file's channels first: a file it cannot gate fails here
    strategy, notes = template.strategy_for(sample, overrides)
    match = template.match(sample)
    mismatch = match.qc_flag()
    flags: list[qc.QCFlag] = qc.leveled([mismatch] if mismatch else [],
                                        "failure" if match.mostly_left_out else "warning")
    flags += qc.reader_flags(sample.warnings)
    if template.compensation == "file" and (identity := qc.identity_spillover_flag(sample)):
        flags.append(identity)
    flags += qc.scale_flags(distinct_dimensions(d for g in strategy for d in g.dimensions),
                            sample)
    n_total = sample.n_events
    finite, finite_flags = qc.non_finite_events(sample)
    flags += qc.leveled(finite_flags, "warning")
    clean = sample if not finite_flags else replace(sample, events=sample.events[finite])
    kept = np.flatnonzero(finite) if finite_flags else None     # file numbers of the events
    if clean.n_events == 0:
        # every count would be zero: the sample is for review, not for the tables
        flags.append(qc.QCFlag("failure", "no events to gate: the file holds none" if not
                               n_total else f"no events to gate: all {n_total:,} hold "
                               "non-finite values"))
    time_qc = qc.time_anomalies(clean)
    # An unstable stretch costing a few percent of the events is worth knowing; more
    # is worth a look, because what remains may not represent the sample.
    unstable = time_qc.excluded / max(n_total, 1)
    flags += qc.leveled(time_qc.said(excluded=exclude_anomalies),
                        "warning" if unstable > ANOMALY_WARNING else "info")
    gated = clean
    if exclude_anomalies and time_qc.excluded:
        gated = replace(clean, events=clean.events[time_qc.good])
        good = np.flatnonzero(time_qc.good)
        kept = good if kept is None else kept[good]
        flags.append(qc.QCFlag("warning" if unstable > ANOMALY_WARNING else "info",
                               f"{time_qc.excluded} events in unstable acquisition time bins "
                               f"were excluded from gating ({100 * unstable:.1f}%)"))
    margins = qc.margin_events(gated)
    # each channel's own share decides its flag's level, as docs/templates.md says; a
    # fluorescence channel's floor holds the events dimmer than it, not lost measurements,
    # and a template's boundary gate leaves a pile out of its populations
    bounded = {getattr(d, "name", None): g.id for g in strategy if isinstance(g, BoundaryGate)
               for d in g.dimensions}
    for message, share, floor, channel in zip(margins.flags, margins.shares, margins.floors,
                                              margins.channels):
        by = bounded.get(channel)
        level = "info" if floor or by or share <= MARGIN_WARNING else "warning"
        flags.append(qc.QCFlag(level, message + (f" (left out by the gate {by!r})" if by
                                                 else "")))
    result = strategy.apply(gated)

    refs = [r for r in dict.fromkeys((*REFERENCES, *template.percent_of))
            if r in result.gate_ids]
    by_population = pops.count_columns(result, ancestors=refs)
    stats = pops.statistics_columns(result, ancestors=refs, counts=by_population,
                                    compensation=template.values_compensation)
    per_ul, counting_info, counting_flags = _absolute_counts(by_population, result, template,
                                                             counting)
    flags += qc.leveled(counting_flags, "warning")
    n_pops = tables.n_rows(by_population)
    near_cut = near_cut_shares(result)
    table = {"sample": [name] * n_pops, **by_population, "cells_per_ul": per_ul,
             "percent_near_cut": 100 * np.array([near_cut.get(p, np.nan)
                                                 for p in by_population["population"]]),
             **_wide_statistics(stats, n_pops)}

    gate_flags = qc.gate_flags(result)
    flags += gate_flags
    counts = dict(zip(table["population"], table["count"]))
    min_events = min_events or int(template.qc.get("min_events", 200))
    min_reportable = int(template.qc.get("min_reportable", qc.MIN_REPORTABLE))
    empty = {f.population for f in gate_flags if "is empty" in f.message}
    parents = {p: counts.get(par) for p, par in zip(table["population"], table["parent"])
               if par in counts}
    corners = {q.id for g in result.gates.values() for q in getattr(g, "quadrants", ())}
    limits = template.population_qc()
    flags += qc.count_flags(counts, min_events=min_events, min_reportable=min_reportable,
                            explained=empty, parents=parents, quadrants=corners,
                            limits=limits)
    flags += qc.expected_flags(dict(zip(table["population"], table["percent_of_parent"])),
                               dict(zip(table["population"], table["parent"])), limits)
    flags += qc.near_cut_flags(near_cut, counts, min_reportable=min_reportable)
    # each row carries its sample's QC status: a combined table handed on alone held a
    # failed sample's numbers beside good ones, with nothing to tell them apart
    table = {"sample": table["sample"], "qc_status": [qc.status(flags)] * n_pops,
             **{k: v for k, v in table.items() if k != "sample"}}
    return SampleGating(name=name, result=result, table_columns=table, statistics_columns=stats,
                        counting=counting_info, qc_flags=flags, notes=notes, time_qc=time_qc,
                        events_total=n_total, events_excluded=n_total - gated.n_events,
                        warnings=list(sample.warnings), event_numbers=kept)


def _named_by_template(sample, template: Template):
    """The sample with the template's marker names on the channels the file leaves
    unnamed (no $PnS, as many instruments write them), so that its tables, plots and
    AnnData say CD4 rather than Alexa Fluor 700-A; a $PnS the file has is kept."""
    found, _ = template.resolve_markers(sample)
    names = {channel: marker for marker, channel in found.items()}
    if not any(names.get(c.name) and not c.marker for c in sample.channel_info):
        return sample
    return replace(sample, channel_info=tuple(
        replace(c, marker=names[c.name]) if names.get(c.name) and not c.marker else c
        for c in sample.channel_info))


# ----------------------------------------------------------------------------- writing
def gatingml_id(name: str) -> str:
    """A valid XML id for a population name ('CD4+ T' -> 'CD4pos_T')."""
    text = name.replace("+", "pos").replace("-", "neg") if re.search(r"[+]", name) \
        else name
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "gate"
    return text if re.match(r"[A-Za-z_]", text) else f"_{text}"


def concrete_strategy(result: GatingResult):
    """The gates this sample was gated with, as a strategy with valid Gating-ML ids."""
    from .gates import BooleanGate, GateReference, Quadrant, QuadrantGate
    from .strategy import GatingStrategy

    ids: dict[str, str] = {}
    for pid in [*result.gates, *result.gate_ids]:
        if pid not in ids:
            candidate = gatingml_id(pid)
            while candidate in ids.values():
                candidate += "_"
            ids[pid] = candidate

    def renamed(gate):
        changes = {"id": ids[gate.id],
                   "parent": ids.get(gate.parent) if gate.parent is not None else None}
        if isinstance(gate, QuadrantGate):
            div = {d.id: gatingml_id(d.id) for d in gate.dividers}
            changes["dividers"] = tuple(replace(d, id=div[d.id]) for d in gate.dividers)
            changes["quadrants"] = tuple(
                Quadrant(ids[q.id], tuple((div[d], loc) for d, loc in q.positions))
                for q in gate.quadrants)
        if isinstance(gate, BooleanGate):
            changes["operands"] = tuple(GateReference(ids[o.ref], o.complement)
                                        for o in gate.operands)
        return replace(gate, **changes)

    gates = []
    for gate in result.gates.values():
        if isinstance(gate, FoundQuadrants) and gate.empty:
            # too few events to place its dividers: quadrants that hold nothing
            ids.pop(gate.id, None)
            gates += [renamed(q) for q in gate.absent_quadrants()]
        else:
            gates.append(renamed(gate))
    return GatingStrategy(gates), ids


def _atomic_frame(frame, path: Path) -> None:
    """Write a DataFrame (atomically): Parquet for a ``.parquet`` name, CSV otherwise."""
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


PLOT_LEVELS = ("none", "summary", "all")


def plot_level(plots) -> str:
    """'none', 'summary' (one overview image per sample) or 'all' (the overview and
    one image per gate); True means 'all' and False 'none'."""
    if plots is True or plots is False:
        return "all" if plots else "none"
    if plots not in PLOT_LEVELS:
        raise ImmunomonError(f"plots must be one of {', '.join(PLOT_LEVELS)}, not {plots!r}")
    return plots


def transforms_used(result) -> dict[str, dict | str]:
    """Each gated channel's transform and its parameters, as this file was gated
    (logicle widths measured in the file included): 'linear' when untransformed."""
    from ..export import channel_transforms

    return {name: "linear" if t is None else
            {t.gatingml_name or type(t).__name__.lower(): t.params}
            for name, t in channel_transforms(result).items()}


def compensation_used(result, template: Template) -> str:
    """How the fluorescence values were compensated, in words for the sample's record."""
    if template.compensation == "none":
        return "none (the template says the values are compensated already or need none)"
    matrix = result.values.matrix(template.values_compensation)
    if matrix is None:
        return "none (the file holds no spillover matrix)"
    kind = "the identity: nothing changed" if matrix.is_identity else \
        f"{len(matrix.detectors)} detectors"
    return f"the file's $SPILLOVER ({kind})"


def _counting_words(counting: dict) -> str:
    """The absolute-count method and its inputs, as the sample's page says them."""
    method = counting.get("method", "none")
    if "bead_events" in counting:
        return (f"{method}: {counting['bead_events']:,} bead events, "
                f"{counting['beads_per_test']:g} beads per test, "
                f"{counting['volume_ul']:g} uL")
    if "reference_per_ul" in counting:
        return f"{method}: {counting['reference_per_ul']:g} per uL"
    return method


def write_sample(gating: SampleGating, template: Template, out_dir: Path, *,
                 plots: str | bool = "all", anndata: bool = True, gatingml: bool = True,
                 deidentify: bool = False, fcs=None, provenance: dict | None = None) -> Path:
    """Write one sample's outputs into ``out_dir/<name>/`` (built beside it in a
    ``.<name>.*.tmp`` folder and renamed into place when complete); returns that
    folder. ``plots``: see ``plot_level``. ``fcs``: a ``Sample`` to export as
    ``<name>.fcs`` too (written with its keywords as they are, so de-identify it
    first if needed); ``provenance`` goes into ``summary.json``."""
    plots = plot_level(plots)
    final = Path(out_dir) / gating.name
    # The page links plots relative to itself, so the folder is built whole and moved.
    with atomic_dir(final) as work:
        tables.write(gating.table_columns, work / "populations.csv")
        tables.write(gating.table_columns, work / "populations.parquet")
        tables.write(gating.statistics_columns, work / "statistics.csv")
        if tables.n_rows(gating.time_qc.bin_columns):
            tables.write(gating.time_qc.bin_columns, work / "time_qc.csv")
        result = gating.result
        if anndata:
            from ..export import channel_transforms, write_gated_h5ad
            # the fluorescence channels no gate reads take the template's transform too
            gated = channel_transforms(result)
            ungated = [c for c in result.sample.channels
                       if is_fluorescence(c) and c not in gated]
            write_gated_h5ad(result, work / f"{gating.name}.h5ad", deidentify=deidentify,
                             event_numbers=gating.event_numbers,
                             transforms=template.channel_transforms(result.sample, ungated),
                             compensation=template.values_compensation,
                             template={"panel": template.panel, "version": template.version,
                                       "source": str(template.source)})
        if gatingml:
            from .gatingml import save_gatingml
            concrete, ids = concrete_strategy(result)
            save_gatingml(concrete, work / "gates.xml")
            tables.write({"population": list(ids), "gatingml_id": list(ids.values())},
                         work / "gates_ids.csv")
        if fcs is not None:
            from ..fcs import write_fcs
            write_fcs(work / f"{gating.name}.fcs", fcs)
        plot_files = {}
        if plots != "none":
            from ..report.gate_plots import plot_all, plot_summary
            overview = plot_summary(result, work / "overview.png")
            if overview is not None:
                plot_files["All gates"] = overview
        if plots == "all":
            (work / "plots").mkdir()
            plot_files.update(plot_all(result, work / "plots"))
        file = str(result.sample.path) if result.sample.path and not deidentify else None
        compensation = compensation_used(result, template)
        (work / "summary.json").write_text(json.dumps({
            "sample": gating.name, "status": gating.status, "file": file,
            "events": gating.events_total, "events_excluded": gating.events_excluded,
            "template": {"panel": template.panel, "version": template.version,
                         "digest": template.digest},
            "compensation": compensation, "immunomon_version": __version__,
            "counting": gating.counting, "qc_flags": [str(f) for f in gating.qc_flags],
            "qc": [qc.as_flag(f).to_dict() for f in gating.qc_flags], "notes": gating.notes,
            "warnings": gating.warnings, "transforms": transforms_used(result),
            **({"provenance": provenance} if provenance else {})}, indent=2, default=str))
        from ..report.pages import sample_page
        hierarchy = {pid: result.parent(pid) for pid in result.gate_ids}
        about = {"file": Path(file).name if file else "(not named: de-identified)",
                 "events": f"{gating.events_total:,}" + (
                     f", of which {gating.events_excluded:,} in unstable acquisition-time "
                     "bins left out" if gating.events_excluded else ""),
                 "compensation": compensation,
                 "absolute counts": _counting_words(gating.counting),
                 "template": f"{template.panel}, version {template.version} "
                             f"(digest {template.digest[:12]})",
                 "immunomon": __version__}
        sample_page(work / "index.html", sample_name=gating.name, hierarchy=hierarchy,
                    table=tables.rows({k: v for k, v in gating.table_columns.items()
                                       if k not in ("sample", "qc_status")}), plots=plot_files,
                    qc_flags=gating.qc_flags, warnings=gating.warnings + gating.notes,
                    subtitle=f"{template.panel} (template version {template.version})",
                    about=about)
    return final


def read_sample_info(path) -> dict[str, CountingInputs]:
    """Per-sample counting inputs from a CSV: a ``sample`` column (the FCS file name,
    with or without .fcs) and any of ``beads_per_test``, ``volume_ul`` (bead lot and
    stained volume), ``lymphocytes_per_ul``, ``leukocytes_per_ul`` (haematology
    analyser counts for dual-platform absolute counts). Empty cells are left unset."""
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ImmunomonError(f"{path}: cannot be read as CSV ({exc})") from None
    if "sample" not in table.columns:
        raise ImmunomonError(f"{path}: needs a 'sample' column (the FCS file name)")
    unknown = [c for c in table.columns if c != "sample" and c not in COUNTING_COLUMNS]
    if unknown:
        raise ImmunomonError(f"{path}: unknown column(s) {unknown}; known: sample, "
                             f"{', '.join(COUNTING_COLUMNS)}")
    info: dict[str, CountingInputs] = {}
    for line, row in enumerate(table.itertuples(index=False), start=2):
        values = {}
        for col in COUNTING_COLUMNS:
            text = getattr(row, col, "").strip() if col in table.columns else ""
            if not text:
                continue
            problem = pops.counting_input_problem(col, text, "the value")
            if problem:
                raise ImmunomonError(f"{path}, line {line}, column {col}: {problem}")
            values[col] = float(text)
        info[safe_name(Path(row.sample).stem if row.sample.lower().endswith(".fcs")
                       else row.sample)] = CountingInputs(**values)
    return info


def read_overrides(path) -> dict[str, dict]:
    """Per-sample gate overrides from YAML: ``{sample: {population: fixed gate}}``, with
    the fixed-gate syntax of templates (values in transformed units)."""
    from ..yamlio import load as load_yaml

    path = Path(path)
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ImmunomonError(f"{path}: cannot be read ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any YAML error becomes one message
        raise ImmunomonError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ImmunomonError(f"{path}: overrides map each sample to {{population: gate}}")
    return {safe_name(str(k)): dict(v) for k, v in doc.items()}


def find_fcs_files(inputs) -> list[Path]:
    """Files given, and the FCS files (.fcs, .lmd, or with no ending or a number for one
    and FCS inside: ``fcs.is_legacy_fcs``) inside folders given (sorted, recursive;
    hidden files and folders, such as uploads in progress named ``.x.fcs``, left out, as a
    batch leaves them; a link whose target is gone kept, so its error is said)."""
    from ..fcs import fcs_files_under

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += [q for q in fcs_files_under(p)
                      if q.is_file() or (q.is_symlink() and not q.exists())]
        else:
            files.append(p)
    return files


def _naming_file(path: Path, exc: Exception) -> str:
    """The error's message, starting with the file's path unless it names the file."""
    message = str(exc)
    return message if str(path) in message or path.name in message else f"{path}: {message}"


@dataclass
class GateRun:
    """The outcome of ``gate_files``."""

    samples: list[dict]            # one row per file: sample, file, status, message, ...
    table_columns: dict            # all samples' population rows, as columns
    out_dir: Path
    notes: list[str] = field(default_factory=list)      # the run's own: pooled gates
    warnings: list[str] = field(default_factory=list)   # inputs the run could not use

    @cached_property
    def table(self):
        """All samples' population rows (a DataFrame)."""
        return tables.frame(self.table_columns)

    @property
    def ok(self) -> bool:
        return all(s["status"] != "failed" for s in self.samples)


def _merged(general: CountingInputs | None, own: CountingInputs | None) -> CountingInputs:
    """A sample's own counting inputs, falling back to the run's."""
    general = general or CountingInputs()
    if own is None:
        return general
    return CountingInputs(*(getattr(own, c) or getattr(general, c) for c in COUNTING_COLUMNS))


def gate_file(path, template: Template, out_dir, *, name: str,
              counting: CountingInputs | None = None, overrides: dict | None = None,
              plots: str | bool = "all", anndata: bool = True, exclude_anomalies: bool = True,
              deidentify: bool = False, prepare=None, fcs: bool = False,
              provenance: dict | None = None) -> tuple[dict, dict | None]:
    """The per-file job of ``immunomon gate`` and ``immunomon batch``: read one
    FCS file, gate it and write its folder ``out_dir/<name>/``.

    Returns the file's row (sample, file, status, events, flags, page, message,
    ``error``: "" or "input" for bad input or "internal" for a defect, and
    ``seconds`` per step) and its population table as columns (None when it failed). A
    file that fails never raises. ``prepare(sample) -> sample`` runs right after
    reading (the batch de-identifies there); ``fcs`` exports the prepared
    sample as ``<name>.fcs`` beside the other outputs."""
    import time

    from ..fcs.datasets import read_fcs_to_gate

    path = Path(path)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step):
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 3)
        clock = now

    row = {"sample": name, "file": str(path), "status": "failed", "events": None,
           "flags": [], "page": None, "message": "", "error": "", "seconds": seconds}
    shown = unencodable_name(path)
    if shown is not None:           # nothing written could hold its name: refused alone
        return {**row, "file": shown, "message": f"{shown}: {NOT_UTF8}",
                "error": "input"}, None
    step = "read"
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        sample = read_fcs_to_gate(path)
        if prepare is not None:
            sample = prepare(sample)
        lap("read")
        gating = gate_sample(sample, template, name=name, counting=counting,
                             overrides=overrides, exclude_anomalies=exclude_anomalies)
        lap("gate")
        step = "write"
        folder = write_sample(gating, template, Path(out_dir), plots=plots, anndata=anndata,
                              deidentify=deidentify, fcs=sample if fcs else None,
                              provenance=provenance)
        lap("write")
    except ImmunomonError as exc:
        return {**row, "message": _naming_file(path, exc), "error": "input"}, None
    except OSError as exc:
        if step == "write":         # the output folder's fault (read-only, full), not the file's
            return {**row, "error": "output",
                    "message": f"{path}: its results cannot be written "
                               f"({exc.strerror or exc}: {exc.filename or out_dir})"}, None
        return {**row, "error": "internal",
                "message": f"{path}: internal error while gating "
                           f"({type(exc).__name__}: {exc}); please report it"}, None
    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop a batch
        return {**row, "error": "internal",
                "message": f"{path}: internal error while gating "
                           f"({type(exc).__name__}: {exc}); please report it"}, None
    return {**row, "status": gating.status, "events": gating.events_total,
            "flags": gating.flags_at("warning", "failure"),
            "page": str(folder / "index.html")}, gating.table_columns


def gate_files(files, template: Template, out_dir, *, counting: CountingInputs | None = None,
               sample_info: dict[str, CountingInputs] | None = None,
               overrides: dict[str, dict] | None = None, plots: str | bool = "all",
               anndata: bool = True, exclude_anomalies: bool = True, deidentify: bool = False,
               progress=None, wait: bool = True, on_wait=None, workers: int = 1) -> GateRun:
    """Gate many files into ``out_dir``; a file that fails is recorded and the others go on.

    ``sample_info`` and ``overrides`` are keyed by sample name (the file name
    without .fcs, as ``safe_name`` makes it). The folder may hold the results of
    earlier runs with the same template: a sample gated again is replaced, and the
    combined table (``populations.csv``/``.parquet``), ``index.html`` and
    ``index.json`` list every sample in the folder. Results of another template
    are never mixed in: such a run stops before gating (``GatingError``). While it
    runs the folder is locked; a second run into it waits (``on_wait(holder)`` is
    called once) or, with ``wait=False``, stops with ``FolderInUseError``.
    ``GateRun.samples`` and ``GateRun.table`` are this run's files only.
    ``workers`` > 1 gates that many files at a time in separate processes (rows
    come back in the order the files were given). A template's pooled populations
    (``pooled: true``) are found first, once, on the events of all ``files`` together
    (``gating.pooled``), and applied to each as a fixed gate; a sample's own override
    of such a population wins."""
    from .pooled import pooled_gates, pooled_populations

    plots = plot_level(plots)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, wait=wait, on_wait=on_wait):
        _refuse_other_templates(out_dir, template)
        pooled, notes = pooled_gates(files, template, overrides=overrides,
                                     exclude_anomalies=exclude_anomalies) \
            if pooled_populations(template) and files else ({}, [])
        warnings = _run_warnings(files, out_dir, overrides, pooled, sample_info)
        rows, outputs = _gate_each(files, template, out_dir, counting=counting,
                                  sample_info=sample_info, overrides=overrides, plots=plots,
                                  anndata=anndata, exclude_anomalies=exclude_anomalies,
                                  deidentify=deidentify, progress=progress,
                                  workers=workers, pooled=pooled)
        write_combined(out_dir, template, rows, outputs)
    run = GateRun(rows, tables.concat(list(outputs.values())), out_dir, notes, warnings)
    # a gate that behaves otherwise in one file of the run shows in its shares beside
    # the other files' (an LST export's granulocytes: 2.5% of the leukocytes, 'ok')
    from .check import unlike_lines, unlike_the_others
    gated = {r["sample"] for r in rows if r.get("status") != "failed"}
    run.notes.extend(unlike_lines(unlike_the_others(_share_records(run.table_columns,
                                                                   gated))))
    return run


def _share_records(columns: dict, gated: set) -> list[dict]:
    """Each of the ``gated`` samples of a population table (as columns) with its
    populations' shares of their parents, as ``check.unlike_the_others`` reads them
    (from the columns: no pandas)."""
    if len(gated) < 2 or not len(columns.get("sample", ())):
        return []
    by_sample: dict[str, list[dict]] = {}
    for sample, population, parent, share in zip(
            columns["sample"], columns["population"], columns["parent"],
            columns["percent_of_parent"]):
        if sample in gated:
            ok = share is not None and np.isfinite(share)
            by_sample.setdefault(sample, []).append(
                {"population": population, "parent": parent,
                 "percent_of_parent": float(share) if ok else None})
    return [{"sample": k, "status": "ok", "populations": v} for k, v in by_sample.items()]


def _run_warnings(files, out_dir: Path, overrides: dict | None, pooled: dict,
                  sample_info: dict | None = None) -> list[str]:
    """What a run should say before it gates: overrides or sample information for
    samples it does not gate (a misspelt name: 'pbmc-01' for pbmc_01 left that sample's
    bead count to its keyword, every cells/uL 2.4 times off, without a word), and pooled
    gates found on fewer files than the folder holds (the folder's other samples keep the
    cut of the run that gated them)."""
    names = {safe_name(Path(f).stem) for f in files}
    out = []
    for what, given in (("overrides", overrides), ("sample information", sample_info)):
        stray = sorted(set(given or {}) - names)
        if stray:
            out.append(f"the {what} name {len(stray)} sample(s) this run does not gate: "
                       f"{', '.join(stray)}; the names are the FCS file names without .fcs")
    others = sorted(f.name for f in sample_folders(out_dir) if f.name not in names)
    if pooled and others:
        out.append(f"pooled gates are found on this run's {len(names)} file(s) only; the "
                   f"folder's {len(others)} other sample(s) (e.g. {others[0]}) keep the cut of "
                   "the run that gated them; gate all the files together for one cut")
    return out


def _gate_each(files, template: Template, out_dir: Path, *, counting, sample_info, overrides,
               plots, anndata, exclude_anomalies, deidentify, progress, workers: int = 1,
               pooled: dict | None = None) -> tuple[list[dict], dict[str, dict]]:
    """``gate_file`` on every file (in ``workers`` processes when more than one): the
    files' rows, and the population tables of those gated, by sample name."""
    jobs, used = [], set()
    for path in files:
        path = Path(path)
        # a folder already holding another file's results keeps them: two files of one
        # name (day1/tube.fcs, day2/tube.fcs) keep their names over runs of either alone
        name = free_name(safe_name(path.stem), lambda name: name in used
                         or _held_by_another_file(out_dir / name, path))
        used.add(name)
        jobs.append(dict(path=path, template=template, out_dir=out_dir, name=name,
                         counting=_merged(counting, (sample_info or {}).get(name)),
                         overrides={**(pooled or {}), **(overrides or {}).get(name, {})}
                         or None, plots=plots, anndata=anndata,
                         exclude_anomalies=exclude_anomalies, deidentify=deidentify))
    if workers > 1 and len(jobs) > 1:
        from ..batch.pool import map_jobs
        outcomes = map_jobs(gate_file, jobs, workers=workers, progress=progress)
    else:
        outcomes = []
        for job in jobs:
            outcomes.append(gate_file(**job))
            if progress is not None:
                progress(outcomes[-1][0])
    rows = [row for row, _ in outcomes]
    return rows, {row["sample"]: table for row, table in outcomes if table is not None}


def free_name(name: str, taken) -> str:
    """``name``, or ``name`` with "_" added until ``taken(name)`` is false: two files of
    one name in a run (day1/tube.fcs, day2/tube.fcs) get a folder each."""
    while taken(name):
        name += "_"
    return name


def _held_by_another_file(folder: Path, path: Path) -> bool:
    """Whether ``folder`` holds the results of an FCS file other than ``path`` (by the
    file its ``summary.json`` names; a de-identified summary names none)."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        recorded = summary.get("file")
    except (OSError, ValueError, AttributeError):
        return False
    if not recorded:
        return False
    recorded = Path(recorded)
    try:
        if recorded.exists():
            return not recorded.samefile(path)
    except OSError:
        return False
    # recorded from another working folder: the same file by its own and folder's name
    return recorded.parts[-2:] != path.parts[-2:]


# ----------------------------------------------------------------------------- the folder
def sample_folders(out_dir) -> list[Path]:
    """The sample folders of an ``immunomon gate`` output folder, by name."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "summary.json").is_file())


def _summary(folder: Path) -> dict:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GatingError(f"{folder / 'summary.json'}: cannot be read ({exc}); remove the "
                          "folder or gate its file again") from None
    return summary if isinstance(summary, dict) else {}


def _earlier_table(path: Path) -> dict:
    """An earlier run's population table, for the combined one."""
    try:
        return tables.read_parquet(path)
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise GatingError(f"{path}: cannot be read ({exc}); remove the folder or gate its "
                          "file again") from None


def _refuse_other_templates(out_dir: Path, template: Template) -> None:
    """Stop before gating when the folder holds results of another template: another
    panel or version, or the same ones with other gates (edited since, by its digest;
    results written before digests were recorded are compared by panel and version)."""
    ours = (template.panel, template.version)
    others: dict[tuple, list[str]] = {}
    edited: list[str] = []
    for folder in sample_folders(out_dir):
        used = _summary(folder).get("template") or {}
        key = (str(used.get("panel")), str(used.get("version")))
        if key != ours:
            others.setdefault(key, []).append(folder.name)
        elif used.get("digest") not in (None, template.digest):
            edited.append(folder.name)
    if others:
        (panel, version), names = next(iter(others.items()))
        raise GatingError(
            f"{out_dir}: holds results gated with template {panel!r} version {version} "
            f"({len(names)} sample(s), e.g. {names[0]}); this run uses {template.panel!r} "
            f"version {template.version}. Gate into another folder (--out), or remove "
            "those results first; results of two templates are never combined")
    if edited:
        raise GatingError(
            f"{out_dir}: holds results gated with template {template.panel!r} version "
            f"{template.version} as it was before its gates were edited ({len(edited)} "
            f"sample(s), e.g. {edited[0]}). Give the edited template a new version and gate "
            "into another folder (--out), or remove those results first; results of two "
            "templates are never combined")


def write_combined(out_dir, template: Template, rows: list[dict] = (),
                   gated: dict[str, dict] | None = None) -> dict:
    """Write the combined table, ``index.html`` and ``index.json`` over every sample
    folder in ``out_dir``, with the failures of ``rows`` (this run) and of earlier
    runs whose files have no results yet. ``gated``: this run's population tables
    by sample name (the others are read from their folders). Returns the combined
    table as columns."""
    from ..report.pages import index_page

    out_dir = Path(out_dir)
    record = out_dir / "index.json"
    known: dict[str, dict] = {}
    if record.is_file():
        try:
            known = {r["sample"]: r for r in json.loads(record.read_text(encoding="utf-8"))}
        except (OSError, ValueError, KeyError, TypeError):
            known = {}                     # unreadable: rebuilt from the folders below
    known.update({r["sample"]: r for r in rows})
    index, parts = [], []
    for folder in sample_folders(out_dir):
        summary = _summary(folder)
        row = known.pop(folder.name, {})
        if row.get("status") == "failed":  # gated before; failed this time
            kept = " (the results of an earlier run are kept)"
            row = {**row, "page": str(folder / "index.html"),
                   "message": row["message"] if row["message"].endswith(kept)
                   else row["message"] + kept}
        else:
            row = {"sample": folder.name, "file": summary.get("file", row.get("file", "")),
                   "status": summary.get("status", "ok"), "events": summary.get("events"),
                   "flags": summary.get("qc_flags", []),
                   "page": str(folder / "index.html"), "message": ""}
        index.append(row)
        table_path = folder / "populations.parquet"
        if folder.name in (gated or {}):
            parts.append(gated[folder.name])
        elif table_path.is_file():
            parts.append(_earlier_table(table_path))
    index += [r for r in known.values() if r.get("status") == "failed"]
    index.sort(key=lambda r: r["sample"])
    table = tables.concat(parts)
    if parts:
        tables.write(table, out_dir / "populations.csv")
        tables.write(table, out_dir / "populations.parquet")
    _mark_unlike(index, table)
    write_text(record, json.dumps([{**r, "page": _relative(r.get("page"), out_dir)}
                                   for r in index], indent=2, default=str))
    index_page(out_dir / "index.html", index, title=f"immunomon gate: {template.panel}")
    return table


def _mark_unlike(index: list[dict], table: dict) -> None:
    """Give each sample of a folder's index whose share of a population's parent lies
    beyond the other samples' (``check.unlike_the_others``, four samples or more) those
    populations, in ``unlike_the_others`` and its message: a gate that behaved otherwise
    in one file shows in the index, though every QC rule passed."""
    from .check import unlike_the_others

    gated = {r["sample"] for r in index if r.get("status") != "failed"}
    found = unlike_the_others(_share_records(table, gated))
    for r in index:
        if r["sample"] in found:
            r["unlike_the_others"] = found[r["sample"]]
            said = "; ".join(f"{u['population']} {u['percent_of_parent']:.1f}% of its parent "
                             f"(the other files' median {u['others_median']:.1f}%)"
                             for u in found[r["sample"]])
            r["message"] = "; ".join(m for m in (r.get("message"), "unlike the other files: "
                                                 + said) if m)


def _relative(page, out_dir: Path):
    if not page:
        return None
    try:
        return str(Path(page).relative_to(out_dir))
    except ValueError:
        return str(page)
