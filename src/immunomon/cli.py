"""The ``immunomon`` command group.

The CLI only composes library functions. Heavy modules are imported inside
each command so that ``immunomon --help`` stays fast. Every user-caused error
(an ``ImmunomonError``) is printed as one line, without a traceback, and the
command exits non-zero; so is a file or folder the system refuses to create, read or
write (an output folder under a file, a full disk, no permission).
"""

from __future__ import annotations

import json
import sys

import click

from .errors import ImmunomonError


class _Group(click.Group):
    """A click group that turns ImmunomonError into a clean message and exit code 2,
    and an operating-system error on a path into one naming the path (exit code 1)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ImmunomonError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except OSError as exc:
            if exc.filename is None:
                raise                       # not about a path: a bug, keep its traceback
            paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
            click.echo(f"error: {paths}: {exc.strerror or exc}", err=True)
            ctx.exit(1)


def _no_fcs(inputs) -> str:
    """The message for inputs that hold no FCS file, naming them."""
    return (f"no FCS files (.fcs, .lmd, or FCS named TUBE.001 or with no ending) found in "
            f"{', '.join(map(str, inputs))}")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="immunomon")
def main():
    """Transplant immunomonitoring: FCS files to populations, chimerism and GvM statistics.

    \b
    Examples:
      immunomon info fixtures/*.fcs
      immunomon gate fixtures/pbmc_*.fcs --template post-transplant --out results/
      immunomon template check fixtures/pbmc_01.fcs -t post-transplant -o check/
      immunomon run pipelines/demo.yaml --out results
    """


# --------------------------------------------------------------------------- info
@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(files, as_json):
    """Describe FCS files: version, instrument, date, events, channels, spillover,
    and what the values look like (the recipe of docs/recipes.md to start from).

    FILES are FCS files or folders (their .fcs and .lmd files, and FCS files named as
    older instruments name them, TUBE.001 or with no ending, recursively, as
    `immunomon gate` finds them). Only the HEADER and TEXT segments are read, so
    thousands of files scan quickly. A bad file prints a one-line error and the
    others go on; the exit code is 0 only when every file could be read.

    \b
    Example:
      immunomon info fixtures/*.fcs
      immunomon info --json run1/ > run1.json
    """
    from .fcs.info import describe_file, format_description
    from .gating.run import find_fcs_files

    paths = [str(p) for p in find_fcs_files(files)]
    if not paths:
        raise click.UsageError(_no_fcs(files))
    results, ok = [], True
    for path in paths:
        try:
            desc = describe_file(path)
        except ImmunomonError as exc:
            ok = False
            desc = {"file": path, "error": str(exc)}
            if not as_json:
                click.echo(f"error: {exc}", err=True)
        else:
            if not as_json:
                click.echo(format_description(desc))
        results.append(desc)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    sys.exit(0 if ok else 1)


# --------------------------------------------------------------------------- gate
@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--template", "-t", default="post-transplant", show_default=True,
              help="A built-in template name or the path of a template YAML file. With "
                   "--workspace only when given: its gates are then scored against the "
                   "manual ones.")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False),
              help="Folder for the results (one sub-folder per sample). Required unless "
                   "--workspace is given.")
@click.option("--workspace", "-w", type=click.Path(dir_okay=False),
              help="A FlowJo workspace (.wsp, or FlowJo 9 .xml): apply its gates to the files "
                   "and print FlowJo's count beside immunomon's; with --template also the "
                   "template's gates and their F1 against the manual ones.")
@click.option("--beads-per-test", type=float, help="Counting beads per tube (bead lot value).")
@click.option("--volume", "volume_ul", type=float, help="Blood volume stained per tube, uL.")
@click.option("--lymphocytes-per-ul", type=float,
              help="Haematology lymphocyte count for dual-platform absolute counts.")
@click.option("--leukocytes-per-ul", type=float,
              help="Haematology white cell count for dual-platform absolute counts.")
@click.option("--sample-info", type=click.Path(dir_okay=False),
              help="CSV of per-sample counting inputs: sample, beads_per_test, volume_ul, "
                   "lymphocytes_per_ul, leukocytes_per_ul.")
@click.option("--overrides", type=click.Path(dir_okay=False),
              help="YAML of per-sample fixed gates replacing data-driven ones: "
                   "{sample: {population: gate}}.")
@click.option("--keep-anomalies", is_flag=True,
              help="Gate events from unstable acquisition time bins too (they are flagged).")
@click.option("--plots", type=click.Choice(["none", "summary", "all"]), default="all",
              show_default=True,
              help="Gate plots: none, one overview image per sample (summary), or the "
                   "overview and one image per gate (all).")
@click.option("--no-plots", is_flag=True, help="Same as --plots none.")
@click.option("--no-anndata", is_flag=True, help="Skip the .h5ad files.")
@click.option("--deidentify", is_flag=True,
              help="Drop patient identifiers from the keywords stored in the AnnData files.")
@click.option("--no-wait", is_flag=True,
              help="If another run is writing into the output folder, stop instead of "
                   "waiting for it.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Gate this many files at a time, each in its own process.")
@click.option("--json", "as_json", is_flag=True, help="Print the combined table as JSON.")
def gate(inputs, template, out_dir, workspace, beads_per_test, volume_ul, lymphocytes_per_ul,
         leukocytes_per_ul, sample_info, overrides, keep_anomalies, plots, no_plots, no_anndata,
         deidentify, no_wait, workers, as_json):
    """Gate FCS files (or folders of them, searched recursively) with a panel template.

    Writes per sample: the population table (CSV and Parquet: counts, % of
    parent, % of lymphocytes and leukocytes, cells/uL, median/mean/geometric
    mean per marker), an AnnData .h5ad with gate membership per event, gate
    plots (an overview and one PNG per gate; see --plots), the concrete gates
    as Gating-ML and an HTML page; and across
    samples a combined table and an index page. A file that cannot be read or
    gated is reported and the others go on; the exit code is 0 only when every
    file was gated.

    The output folder may hold earlier results of the same template: samples
    gated again are replaced and the combined table and index list every sample
    in the folder. A run with another template stops before gating. Two runs
    into one folder never write at once: the second waits (or, with --no-wait,
    stops).

    \b
    Example:
      immunomon gate fixtures/pbmc_*.fcs --template post-transplant --out results/
      immunomon gate run1/*.fcs -t my-panel.yaml -o out/ --beads-per-test 50000 --volume 50
      immunomon gate run1/ -o out/ --sample-info counts.csv --overrides reviewed.yaml
      immunomon gate --workspace panel.wsp run1/ --json
      immunomon gate inbox/ -o out/ --plots summary     # one overview image per file
      immunomon gate run1/ -o out/ --workers 4
    """
    if workspace:
        _gate_workspace(workspace, inputs, template, out_dir, as_json)
        return
    if not out_dir:
        raise click.UsageError("--out is required (unless --workspace is given)")
    from .gating.run import (CountingInputs, find_fcs_files, gate_files, read_overrides,
                             read_sample_info)
    from .gating.template import load_template
    from .progress import FileProgress, is_terminal

    from .populations import counting_input_problem

    for option, name, value in (("--beads-per-test", "beads_per_test", beads_per_test),
                                ("--volume", "volume_ul", volume_ul),
                                ("--lymphocytes-per-ul", "lymphocytes_per_ul", lymphocytes_per_ul),
                                ("--leukocytes-per-ul", "leukocytes_per_ul", leukocytes_per_ul)):
        problem = None if value is None else counting_input_problem(name, value, option)
        if problem:
            raise ImmunomonError(problem)
    tmpl = load_template(template)
    if click.get_current_context().get_parameter_source("template") \
            == click.core.ParameterSource.DEFAULT:
        # a mouse or another lab's panel gated with the human trial panel gives tables
        # of left-out populations: say which template it was, once
        click.echo(f"note: no --template given: gating with the shipped {template!r} "
                   "template (immunomon template list names the others)", err=True)
    reviewed = read_overrides(overrides) if overrides else None
    if reviewed:
        tmpl.check_overrides(reviewed, overrides)
    files = find_fcs_files(inputs)
    if not files:
        raise click.UsageError(_no_fcs(inputs))
    counting = CountingInputs(beads_per_test, volume_ul, lymphocytes_per_ul, leukocytes_per_ul)

    def report(row):
        if row["status"] == "failed":
            click.echo(f"error: {row['message']}", err=True)
        elif not as_json and len(files) <= 3:
            n = len(row["flags"])
            click.echo(f"{row['sample']}: {row['status']}, {row['events']:,} events"
                       + (f", {n} QC warning{'' if n == 1 else 's'} or failure"
                          f"{'' if n == 1 else 's'}" if n else ""))

    kwargs = dict(counting=counting, plots="none" if no_plots else plots, anndata=not no_anndata,
                  sample_info=read_sample_info(sample_info) if sample_info else None,
                  overrides=reviewed,
                  exclude_anomalies=not keep_anomalies, deidentify=deidentify,
                  wait=not no_wait, on_wait=lambda holder: click.echo(
                      f"waiting: another immunomon run is writing into {out_dir} ({holder})",
                      err=True), workers=workers)
    # A bar on a terminal; one line per file in a log (stderr not a terminal).
    with FileProgress(len(files), "gate",
                      enabled=len(files) > 3 or not is_terminal(sys.stderr)) as progress:
        def step(row):
            report(row)             # a failure's reason is its "error:" line, said once
            # the file's own time: with workers, the time between two files' ends is not
            progress.done(row["sample"], row["status"], row.get("events"),
                          sum((row.get("seconds") or {}).values()) or None)
        run = gate_files(files, tmpl, out_dir, progress=step, **kwargs)
    for note in run.notes:
        click.echo(f"note: {note}", err=True)
    for warning in run.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        import json

        from .columns import records
        click.echo(json.dumps(records(run.table_columns), indent=2, default=str))
    else:
        done = sum(r["status"] != "failed" for r in run.samples)
        click.echo(f"{done} of {len(files)} files gated; results in {run.out_dir} "
                   f"(open {run.out_dir / 'index.html'})")
    sys.exit(0 if run.ok else 1)


def _gate_workspace(workspace, inputs, template, out_dir, as_json):
    """`gate --workspace`: FlowJo's gates on the files, counts side by side; exit 1
    where a file could not be gated (the others are)."""
    from .gating.flowjo.apply import NOT_GATED
    from .gating.flowjo.report import format_comparison, gate_with_workspace

    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("template") != click.core.ParameterSource.DEFAULT
    tmpl = None
    if explicit:
        from .gating.template import load_template
        tmpl = load_template(template)
    table = gate_with_workspace(workspace, inputs, tmpl)
    notes = table.attrs.get("notes", [])
    for note in notes:
        click.echo(f"error: {note[len(NOT_GATED):]}" if note.startswith(NOT_GATED)
                   else f"warning: {note}", err=True)
    if out_dir:
        from pathlib import Path

        from .atomic import atomic_path
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(out_dir) / "workspace_counts.csv") as tmp:
            table.to_csv(tmp, index=False)
    if as_json:          # through json, which leaves '/' in gate paths unescaped
        click.echo(json.dumps(json.loads(table.to_json(orient="records")), indent=2))
    else:
        click.echo(format_comparison(table))
    if any(note.startswith(NOT_GATED) for note in notes):
        sys.exit(1)


# --------------------------------------------------------------------------- template
@main.group()
def template():
    """Panel templates: list the shipped ones, check one on your own files.

    \b
    Examples:
      immunomon template list
      immunomon template show post-transplant > my-panel.yaml
      immunomon template check run1/*.fcs -t my-panel.yaml -o check/
    """


@template.command("list")
def template_list():
    """List the shipped templates with their panel names.

    \b
    Example:
      immunomon template list
    """
    from .gating.template import builtin_templates, load_template

    for name, path in builtin_templates().items():
        click.echo(f"{name:20s} {load_template(path).panel}")


@template.command("show")
@click.argument("name")
def template_show(name):
    """Print a shipped template, to start a template of your own from.

    \b
    Example:
      immunomon template show post-transplant > my-panel.yaml
    """
    from .gating.template import builtin_templates

    shipped = builtin_templates()
    if name not in shipped:
        raise click.UsageError(f"no shipped template {name!r}; shipped templates are: "
                               f"{', '.join(shipped) or 'none'}")
    click.echo(shipped[name].read_text(encoding="utf-8"), nl=False)


@template.command("check")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--template", "-t", "template_name", required=True,
              help="A built-in template name or the path of a template YAML file.")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for one check page per file.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the gate records as JSON (always written to OUT/check.json).")
@click.option("--keep-anomalies", is_flag=True,
              help="Gate events in unstable acquisition time bins too, as 'immunomon gate "
                   "--keep-anomalies' does.")
def template_check(inputs, template_name, out_dir, as_json, keep_anomalies):
    """Show what every data-driven gate of a template finds in each file.

    One page per file: for each data-driven gate, the density of its parent
    in the dimension it cut, the peaks found, the cut (also against forward
    and side scatter), the rule that placed it and the QC level of the result; and every
    population's count. Use it when writing a template for a new
    panel: a gate that needs an argument (valley, bounds, expect, components)
    shows it here. The exit code is 0 when every file was gated and no gate
    produced a QC failure.

    \b
    Example:
      immunomon template check run1/*.fcs -t my-panel.yaml -o check/
    """
    from . import qc
    from .gating.check import check_files, populations_across, unlike_lines, unlike_the_others
    from .gating.run import find_fcs_files
    from .gating.template import load_template

    tmpl = load_template(template_name)
    files = find_fcs_files(inputs)
    if not files:
        raise click.UsageError(_no_fcs(inputs))

    def report(record):
        if as_json:
            return
        if record["status"] == "failed":
            click.echo(f"error: {record['error']}", err=True)
            return
        click.echo(f"{record['sample']}: {record['status']} ({record['page']})")
        for flag in record["qc"]:
            click.echo(f"  {flag['level']:8s} {flag['message']}")
        for note in record["pooled"]:
            click.echo(f"  {'note':8s} {note}")
        # warnings and failures in full; gates whose cut a rule placed, not a valley, by
        # name on one line (their rules are on the page): a run of files stays readable
        ruled = []
        for g in record["gates"]:
            if g["level"] not in ("ok", "info"):
                why = "; ".join(g["messages"] or g["notes"])
                click.echo(f"  {g['level']:8s} {g['gate']}: {why}")
            elif g["fell_back"]:
                ruled.append(g["gate"])
        if ruled:
            click.echo(f"  {'info':8s} cut by a rule, not in a valley (see the page): "
                       + ", ".join(ruled))
        near = [f"{p['population']} ({p['percent_near_cut']:.0f}%)"
                for p in record["populations"] if p["count"] >= qc.MIN_REPORTABLE
                and (p["percent_near_cut"] or 0) >= 100 * qc.NEAR_CUT]
        if near:
            click.echo(f"  {'info':8s} counts that turn on where the cut lies (events near "
                       "it): " + ", ".join(near))

    records = check_files(files, tmpl, out_dir, progress=report,
                          exclude_anomalies=not keep_anomalies)
    # a gate that behaves otherwise in one file shows in its shares beside the others'
    unlike = unlike_the_others(records)
    for record in records:
        record["unlike_the_others"] = unlike.get(record["sample"], [])
    for line in [] if as_json else unlike_lines(unlike):
        click.echo(f"note: {line}")
    from pathlib import Path

    from .atomic import atomic_path
    Path(out_dir).mkdir(parents=True, exist_ok=True)     # no page made it when none was read
    with atomic_path(Path(out_dir) / "check.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(records, indent=2, default=str), encoding="utf-8")
    # each gate's plots of every file side by side, where the check holds several
    if sum(r["status"] != "failed" for r in records) > 1:
        from .report.template_check import gates_page
        gates = gates_page(Path(out_dir) / "gates.html", records,
                           f"{tmpl.panel} (version {tmpl.version})")
        if not as_json:
            click.echo(f"each gate across the files: {gates}")
    # every file's populations side by side: one gate across the run at a glance
    table = populations_across(records)
    if not table.empty:
        with atomic_path(Path(out_dir) / "populations.csv", suffix=".csv") as tmp:
            table.to_csv(tmp)
        if not as_json:
            click.echo("populations of every file, % of parent: "
                       f"{Path(out_dir) / 'populations.csv'}")
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
    sys.exit(0 if all(r["status"] in ("ok", "warning") for r in records) else 1)


# --------------------------------------------------------------------------- chimerism
@main.command()
@click.option("--donor", "donors", multiple=True, required=True,
              help="Donor pre-transplant export (FILE, or FILE::SAMPLE in a plate export); "
                   "give twice for a double donor.")
@click.option("--recipient", required=True, help="Recipient pre-transplant export.")
@click.argument("samples", nargs=-1, required=True, metavar="SAMPLE_EXPORT...",
                type=click.Path(dir_okay=False))
@click.option("--kit", default=None,
              help="Kit name (Identifiler, GlobalFiler, ...) or a kit YAML file.")
@click.option("--lineage", default=None, help="Lineage of every sample, e.g. CD3.")
@click.option("--manifest", default=None, type=click.Path(dir_okay=False),
              help="CSV with sample, patient, lineage, date columns.")
@click.option("--quantity", type=click.Choice(["area", "height"]), default="area",
              show_default=True, help="Peak amount used in the formulas.")
@click.option("--stutter", type=click.Choice(["correct", "exclude", "flag"]),
              default="correct", show_default=True,
              help="Minor-contributor alleles in a major allele's stutter position.")
@click.option("--stutter-ratio", type=float, default=0.10, show_default=True,
              help="Stutter ratio when the kit gives none for a locus.")
@click.option("--forward-stutter", type=float, default=0.0, show_default=True,
              help="Forward (n+1) stutter ratio also subtracted from minor-contributor "
                   "alleles one repeat above a major allele; 0 leaves them.")
@click.option("--tolerance", type=float, default=0.5, show_default=True,
              help="Size tolerance (bp) for matching peaks to alleles.")
@click.option("--lod", type=float, default=1.0, show_default=True,
              help="Limit of detection, % of the minor component.")
@click.option("--detection-threshold", type=float, default=50.0, show_default=True,
              help="RFU: sample peaks lower than this are not counted (flagged); the "
                   "analytical threshold the lab validated for its instrument.")
@click.option("--saturation", type=float, default=30000.0, show_default=True,
              help="RFU at or above which a peak is flagged saturated: about 30,000 on a "
                   "3500, 8,000-10,000 on a 3100 or 3130.")
@click.option("--full-donor", type=float, default=95.0, show_default=True,
              help="% donor at or above which a sample is full donor chimerism.")
@click.option("--full-recipient", type=float, default=5.0, show_default=True,
              help="% donor under which a sample is full recipient (the graft lost, or "
                   "autologous recovery); between the two it is mixed. 0: never.")
@click.option("--outlier-mad", type=float, default=3.5, show_default=True,
              help="Exclude loci this many robust SD (1.4826 x MAD) from the median of "
                   "the loci; 0 keeps all loci.")
@click.option("--allele-balance", type=float, default=0.5, show_default=True,
              help="Reference genotyping: a peak under this fraction of the locus's "
                   "tallest allele is not an allele.")
@click.option("--off-ladder-alleles", is_flag=True,
              help="Accept off-ladder (OL) peaks of the references as alleles (flagged).")
@click.option("--tri-allelic", "tri_allelic", multiple=True, metavar="LOCUS",
              help="A locus where a reference may carry three alleles (flagged).")
@click.option("--min-rise", type=float, default=2.0, show_default=True,
              help="Rise in % recipient between a patient's consecutive samples "
                   "flagged as rising recipient chimerism.")
@click.option("--fsa", "raw", is_flag=True,
              help="The inputs are raw ABIF traces (.fsa): size, call and compute without "
                   "GeneMapper (implied when every input is an .fsa file). Needs --kit.")
@click.option("--ladder", "ladders", multiple=True, type=click.Path(dir_okay=False),
              help="With --fsa: the allelic ladder run of the batch (repeatable); without "
                   "it alleles are called against the kit's own bins.")
@click.option("--size-standard", default=None, metavar="NAME|FILE",
              help="With --fsa: GS500 LIZ, GS600 LIZ, ILS 600, ILS 500 or a ladder file "
                   "of fragment sizes (default: the kit's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Write the CSV tables, chimerism.json and the chimerism.html page here.")
def chimerism(donors, recipient, samples, kit, lineage, manifest, quantity, stutter,
              stutter_ratio, forward_stutter, tolerance, lod, detection_threshold,
              saturation, full_donor, full_recipient, outlier_mad,
              allele_balance, off_ladder_alleles, tri_allelic, min_rise, raw, ladders,
              size_standard, as_json, out_dir):
    """STR donor chimerism from GeneMapper exports or raw .fsa traces.

    Genotypes the donor(s) and the recipient from their pre-transplant runs,
    then prints % donor per locus and per sample for every post-transplant
    sample in SAMPLE_EXPORT (a GeneMapper / GeneMarker / Peak Scanner per-peak
    report or genotype table; with --fsa, ABIF run files). Who is who comes from
    the option each file is given, never from sample names.

    \b
    Examples:
      immunomon chimerism --donor donor.txt --recipient recipient.txt \\
          P07_CD3_2024-05-02.txt --kit Identifiler --lineage CD3 --out results/
      immunomon chimerism --fsa --kit Identifiler --ladder LADDER.fsa \\
          --donor D.fsa --recipient R.fsa P07_CD3.fsa --out results/
    """
    from .chimerism import ChimerismSettings, chimerism_from_exports
    from .chimerism.report import format_text, to_json, write_outputs
    from .chimerism.workflow import chimerism_from_traces, is_trace

    option_of = {"stutter_ratio": "--stutter-ratio", "forward_stutter_ratio": "--forward-stutter",
                 "size_tolerance": "--tolerance", "lod": "--lod", "full_donor": "--full-donor",
                 "full_recipient": "--full-recipient",
                 "detection_threshold": "--detection-threshold", "saturation": "--saturation",
                 "outlier_mad": "--outlier-mad", "relative_threshold": "--allele-balance",
                 "min_rise": "--min-rise"}
    try:
        settings = ChimerismSettings(
            quantity=quantity, stutter=stutter, stutter_ratio=stutter_ratio,
            forward_stutter_ratio=forward_stutter,
            size_tolerance=tolerance, lod=lod, detection_threshold=detection_threshold,
            saturation=saturation, full_donor=full_donor, full_recipient=full_recipient,
            outlier_mad=outlier_mad if outlier_mad > 0 else None,
            relative_threshold=allele_balance, off_ladder_alleles=off_ladder_alleles,
            tri_allelic=tuple(tri_allelic), min_rise=min_rise)
    except ImmunomonError as exc:      # named by its option, as the command line says it
        field = str(exc).split(" ", 1)[0]
        raise click.BadParameter(str(exc), param_hint=option_of.get(field)) from None
    inputs = list(donors) + [recipient] + list(samples)
    if raw or all(is_trace(p) for p in inputs):
        result = chimerism_from_traces(list(donors), recipient, list(samples), kit=kit,
                                       ladders=list(ladders), size_standard=size_standard,
                                       settings=settings, lineage=lineage,
                                       manifest=manifest)
    else:
        if ladders or size_standard:
            raise click.UsageError("--ladder and --size-standard go with --fsa (raw traces)")
        result = chimerism_from_exports(list(donors), recipient, list(samples), kit=kit,
                                        settings=settings, lineage=lineage,
                                        manifest=manifest)
    if out_dir:
        write_outputs(result, out_dir)
    click.echo(to_json(result) if as_json else format_text(result))
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)


# --------------------------------------------------------------------------- cohort
@main.group()
def cohort():
    """Build and inspect the longitudinal cohort (patients x visits x populations).

    \b
    Example:
      immunomon cohort build --manifest samples.csv --clinical clinical/ \\
          --gating results/gate --chimerism results/chimerism --out cohort.nc
      immunomon cohort show cohort.nc
    """


@cohort.command("build")
@click.option("--manifest", "-m", required=True, type=click.Path(dir_okay=False),
              help="Sample manifest CSV (file, kind, patient_id, visit, collection_date, "
                   "material[, lineage, sample, tube]).")
@click.option("--clinical", type=click.Path(file_okay=False),
              help="Folder of clinical CSV files (patients.csv, agvhd.csv, ...).")
@click.option("--gating", type=click.Path(file_okay=False),
              help="An `immunomon gate --out` folder (populations.csv per sample).")
@click.option("--chimerism", type=click.Path(file_okay=False),
              help="An `immunomon chimerism --out` folder (chimerism_samples.csv; "
                   "searched recursively, so one sub-folder per patient works).")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=True),
              help="Cohort file to write: .nc (NetCDF) or .zarr (Zarr store).")
@click.option("--material", default="blood", show_default=True,
              type=click.Choice(["blood", "marrow"]),
              help="Whose flow samples fill the population variables.")
@click.option("--date-order", type=click.Choice(["DMY", "MDY"]), default=None,
              help="Order of dates written NN/NN/YYYY in the manifest and clinical files.")
@click.option("--data", "data_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Folder to search for FCS/STR files the manifest does not list "
                   "(default: the folders of the listed files). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def cohort_build(manifest, clinical, gating, chimerism, out, material, date_order,
                 data_dirs, as_json):
    """Combine populations, chimerism, clinical data and the manifest into one file.

    Files found beside the listed ones but not in the manifest, listed files
    that are missing, duplicate samples of one visit and samples without a
    result are printed as warnings; they do not stop the build.

    \b
    Example:
      immunomon cohort build --manifest samples.csv --clinical clinical/ \\
          --gating results/gate --chimerism results/chimerism --out cohort.nc
    """
    from .cohort import build_from_files, check_manifest_files, format_summary, read_manifest

    from .cohort.inputs import reference_files

    table = read_manifest(manifest, date_order=date_order)
    unlisted, missing = check_manifest_files(
        table, list(data_dirs) or None,
        known=reference_files(chimerism) if chimerism else ())
    notes = [f"not in the manifest: {p}" for p in unlisted]
    notes += [f"listed in the manifest but not found: {p}" for p in missing]
    result = build_from_files(manifest, clinical=clinical, gating=gating, chimerism=chimerism,
                              material=material, date_order=date_order)
    path = result.save(out)
    if as_json:
        summary = result.summary()
        summary["file_warnings"] = notes
        summary["out"] = str(path)
        click.echo(json.dumps(summary, indent=2))
    else:
        for note in notes:
            click.echo(f"warning: {note}", err=True)
        click.echo(format_summary(result, title=str(path)))


@cohort.command("show")
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def cohort_show(path, as_json):
    """Summarise a cohort file: patients, visits, populations, coverage, endpoints.

    \b
    Example:
      immunomon cohort show cohort.nc
      immunomon cohort show cohort.zarr --json
    """
    from .cohort import format_summary, load

    result = load(path)
    if as_json:
        click.echo(json.dumps(result.summary(), indent=2))
    else:
        click.echo(format_summary(result, title=str(path)))


@main.command()
@click.argument("cohort_path", metavar="COHORT", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for gvm_report.html, questions.csv, results.json, figures/.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the permutation p-values (same seed, same numbers).")
@click.option("--primary-visit", default="M3", show_default=True,
              help="Visit of the primary immune-change question (declare it in advance).")
@click.option("--baseline-visit", default="pre", show_default=True,
              help="The sample before treatment.")
@click.option("--landmark-day", type=float, default=180.0, show_default=True,
              help="Landmark day of the sensitivity and by-GVHD analyses.")
@click.option("--json", "as_json", is_flag=True, help="Print the answers as JSON.")
def analyze(cohort_path, out_dir, seed, primary_visit, baseline_visit, landmark_day,
            as_json):
    """Graft-versus-myeloma report: the declared questions, figures and one HTML page.

    Reads a cohort (.nc or .zarr from `immunomon cohort build`), answers the
    pre-declared questions (immune change from baseline, acute GVHD and
    relapse/PFS/OS with GVHD time-varying, immune counts and chimerism with
    relapse and GVHD, cumulative incidence of relapse and NRM, safety) and writes
    a self-contained page with the methods and caveats.

    \b
    Example:
      immunomon analyze study/cohort.nc --out study/report
    """
    from .analysis.questions import Plan
    from .analysis.report import gvm_report
    from .cohort import load

    try:
        plan = Plan(baseline_visit=baseline_visit, primary_visit=primary_visit,
                    landmark_day=landmark_day, seed=seed)
    except ImmunomonError as exc:
        raise click.BadParameter(str(exc), param_hint="--landmark-day") from None
    cohort = load(cohort_path)
    visits = [str(v) for v in cohort.dataset["timepoint"].values]
    for option, visit in (("--primary-visit", primary_visit),
                          ("--baseline-visit", baseline_visit)):
        if visit not in visits:        # a typo would answer every question "not estimable"
            raise click.BadParameter(f"{visit!r} is not a visit of {cohort_path}; its visits "
                                     f"are {', '.join(visits)}", param_hint=option)
    page = gvm_report(cohort, out_dir, seed=seed, plan=plan)
    results = json.loads((page.parent / "results.json").read_text(encoding="utf-8"))
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"report: {page}")
    for line in primary_lines(results["questions"]):
        click.echo(line)


def primary_lines(questions) -> list[str]:
    """One line per primary answer of results.json: estimate, interval (Firth's
    when the model is separated), p-value; or why it is not estimable."""
    lines = []
    for q in questions:
        if q["label"] != "primary":
            continue
        est = "" if q["estimate"] is None else f"{q['effect_measure']} {q['estimate']:.3g}"
        ci = "" if q["lower"] is None else f" ({q['lower']:.3g}-{q['upper']:.3g})"
        firth = ", Firth-penalised" if q.get("estimator") == "Firth" else ""
        p = "" if q["p_value"] is None else f", p = {q['p_value']:.3g}"
        if q["estimate"] is None and str(q.get("note") or "").startswith("not estimable"):
            est = str(q.get("gating_qc") or q["note"])
        lines.append(f"  {q['question']}: {est}{ci}{firth}{p}")
    return lines


# --------------------------------------------------------------------------- batch
from .batch.cli import batch as _batch  # noqa: E402 - click only; the work is imported lazily

main.add_command(_batch)


# --------------------------------------------------------------------------- run
#: warnings of a stage printed after its status line (``--json`` gives them all)
SHOWN_WARNINGS = 10


@main.command("run")
@click.argument("study", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Output folder (default: the study file's `out`).")
@click.option("--force", is_flag=True, help="Rerun every stage, even when nothing changed.")
@click.option("--json", "as_json", is_flag=True, help="Print what ran as JSON.")
def run(study, out_dir, force, as_json):
    """Run a study pipeline: gate -> chimerism -> cohort -> analysis.

    STUDY is a YAML file naming the inputs (FCS folder, template, manifest, STR
    exports and references, kit, clinical folder) and the stages to run; paths
    in it are relative to it. A stage whose inputs and settings have not
    changed since its last complete run is skipped. The run stops at the first
    stage that fails and keeps what the earlier stages wrote.

    \b
    Example:
      immunomon run pipelines/demo.yaml
      immunomon run pipelines/demo.yaml --out results --force
    """
    from .pipeline import run_pipeline

    def progress(stage, message):
        if not as_json:
            click.echo(f"[{stage}] {message}", err=True)

    result = run_pipeline(study, out_dir, force=force, progress=progress)
    if as_json:
        click.echo(json.dumps({"out": str(result.out_dir), "stages": [
            {"name": s.name, "status": s.status, "seconds": round(s.seconds, 2),
             "output": s.output, "details": s.details, "message": s.message}
            for s in result.stages]}, indent=2, default=str))
    else:
        for s in result.stages:
            click.echo(f"{s.name}: {s.status}" + (f" ({s.message})" if s.message else ""))
            said = (s.details or {}).get("warnings", []) if s.status == "ran" else []
            for w in said[:SHOWN_WARNINGS]:
                click.echo(f"  warning: {w}")
            if len(said) > SHOWN_WARNINGS:
                click.echo(f"  ... and {len(said) - SHOWN_WARNINGS} more warnings (--json "
                           "lists them all)")
        click.echo(f"results in {result.out_dir}")
