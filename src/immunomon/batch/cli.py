"""``immunomon batch``: run, status, retry, report and watch (click commands)."""

from __future__ import annotations

import json
import math
import signal
import sys
import time

import click


class _Seconds(click.ParamType):
    """A finite number of seconds, above zero (or from zero, ``zero=True``)."""

    name = "seconds"

    def __init__(self, zero: bool = False):
        self.zero = zero

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(seconds) and (seconds >= 0 if self.zero else seconds > 0)):
            self.fail(f"{value!r} is not a number of seconds "
                      f"{'of 0 or more' if self.zero else 'above 0'}", param, ctx)
        return seconds


class _Progress:
    """Counts of done, failed and skipped files and the rate: a bar that
    rewrites itself on a terminal, one line per file otherwise (logs, in the
    form ``immunomon.progress.file_line`` gives every command)."""

    def __init__(self, quiet: bool = False):
        from ..progress import is_terminal

        self.tty = is_terminal(sys.stderr)
        self.quiet = quiet
        self.total = 0
        self.counts = {"done": 0, "failed": 0, "skipped": 0, "retried": 0}
        self.started = time.monotonic()
        self.gated: set = set()            # ids handed to a worker: counted in a queue
        self.queued = False                # a total is known once the first queue is

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "queued":
            self.total += event["total"]
            self.queued = True
        elif kind == "started":
            self.gated.add(event["id"])
        elif kind == "done":
            self.counts["done"] += 1
        elif kind in ("failed", "quarantined"):
            self.counts["failed"] += 1
            if event.get("id") is None or event["id"] not in self.gated:
                self.total += 1            # refused at registration, before any queue
        elif kind == "skipped":
            self.counts["skipped"] += 1
        elif kind == "retry":
            self.counts["retried"] += 1
        if self.quiet:
            return
        if self.tty:
            if kind not in ("started",):
                self._bar()
            if kind in ("failed", "quarantined"):
                click.echo(f"\nerror: {event['message']}", err=True)
        elif kind in ("done", "failed", "quarantined", "retry"):
            from ..progress import file_line

            finished = self.counts["done"] + self.counts["failed"]
            message = event.get("message")
            if message and message.startswith(event["path"] + ": "):
                message = message[len(event["path"]) + 2:]
            known = self.queued and self.total >= finished > 0
            name = event.get("upload") or event["path"]
            click.echo(file_line(name, event.get("status", kind), event.get("events"),
                                 event.get("seconds"), index=finished if known else None,
                                 total=self.total if known else None, message=message),
                       err=True)

    def _bar(self) -> None:
        c = self.counts
        minutes = max(time.monotonic() - self.started, 1e-9) / 60
        finished = c["done"] + c["failed"]
        width = 24
        filled = int(width * finished / self.total) if self.total else 0
        bar = "#" * filled + "-" * (width - filled)
        click.echo(f"\r[{bar}] {finished}/{self.total}  done {c['done']}, failed {c['failed']}, "
                   f"skipped {c['skipped']}  {c['done'] / minutes:.1f} files/min ",
                   err=True, nl=False)

    def close(self) -> None:
        if self.tty and not self.quiet and (self.total or self.counts["skipped"]):
            click.echo("", err=True)


def _terminate_as_interrupt():
    """SIGTERM (a scheduler stopping the job) ends the batch like Ctrl-C: workers
    stop and files in flight go back to pending."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _options(*, template, manifest, workers, scheduler, cluster, deidentify, date_shift, key,
             drop_keyword, layout_keywords_only, plots, no_plots, no_anndata, export_fcs,
             keep_anomalies, max_attempts):
    """The run options of `batch run` and `batch watch` (``_run_options``), checked."""
    from .run import BatchOptions

    if date_shift and not deidentify:
        raise click.UsageError("--date-shift needs --deidentify")
    if key and not deidentify:
        raise click.UsageError("--key needs --deidentify")
    if layout_keywords_only and not deidentify:
        raise click.UsageError("--layout-keywords-only needs --deidentify")
    return BatchOptions(template=template, manifest=manifest, workers=workers,
                        scheduler=scheduler, cluster=cluster, deidentify=deidentify,
                        date_shift=date_shift, key=key, drop_keywords=tuple(drop_keyword),
                        layout_keywords_only=layout_keywords_only,
                        plots="none" if no_plots else plots, anndata=not no_anndata,
                        export_fcs=export_fcs,
                        exclude_anomalies=not keep_anomalies, max_attempts=max_attempts)


def _run_options(f):
    """The options shared by `batch run` and `batch watch`."""
    options = [
        click.option("--out", "-o", "results", required=True, type=click.Path(file_okay=False),
                     help="Results folder (registry, per-sample folders, report)."),
        click.option("--template", "-t", default="post-transplant", show_default=True,
                     help="A built-in template name or a template YAML file."),
        click.option("--manifest", "-m", type=click.Path(dir_okay=False),
                     help="CSV: file, and any of study, patient, sample, control, "
                          "beads_per_test, volume_ul, lymphocytes_per_ul, leukocytes_per_ul."),
        click.option("--workers", "-j", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Local worker processes."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="A Dask scheduler to send the work to, e.g. tcp://10.0.0.5:8786."),
        click.option("--cluster", metavar="local:N",
                     help="Start a Dask LocalCluster of N worker processes."),
        click.option("--deidentify", is_flag=True,
                     help="Pseudonyms for patients and samples, no identifying keywords, "
                          "paths or dates in any output."),
        click.option("--date-shift", type=click.IntRange(min=1), metavar="DAYS",
                     help="With --deidentify: shift dates by up to DAYS per patient instead "
                          "of removing them."),
        click.option("--key", type=click.Path(dir_okay=False),
                     help="De-identification key file (default RESULTS/private/"
                          "deidentification-key.json, mode 0600)."),
        click.option("--drop-keyword", multiple=True, metavar="KEYWORD",
                     help="With --deidentify: also drop this keyword (repeatable)."),
        click.option("--layout-keywords-only", is_flag=True,
                     help="With --deidentify: keep only the keywords the FCS standard defines "
                          "for the data layout and acquisition ($P<n>N, $PAR, $SPILLOVER, "
                          "$BTIM, $CYT, ...); every other keyword is dropped."),
        click.option("--plots", type=click.Choice(["none", "summary", "all"]), default="all",
                     show_default=True,
                     help="Gate plots: none, one overview image per sample (summary), or the "
                          "overview and one image per gate (all)."),
        click.option("--no-plots", is_flag=True, help="Same as --plots none."),
        click.option("--no-anndata", is_flag=True, help="Skip the .h5ad files."),
        click.option("--export-fcs", is_flag=True,
                     help="Also write each sample as FCS (de-identified with --deidentify)."),
        click.option("--keep-anomalies", is_flag=True,
                     help="Gate events from unstable acquisition time bins too."),
        click.option("--max-attempts", type=click.IntRange(min=1), default=3,
                     show_default=True,
                     help="Tries per file when its worker dies (crash, out of memory)."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _finish(summary, as_json: bool, progress: _Progress) -> None:
    progress.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        for warning in summary.warnings:
            click.echo(f"warning: {warning}", err=True)
        # the registry calls a file whose input is at fault 'quarantined', and one that
        # failed otherwise 'failed': said apart here too (it read '11 failed (11
        # quarantined)' beside a status of 0 failed, 11 quarantined)
        failed = summary.failed - summary.quarantined
        click.echo(f"{summary.done} processed, {summary.skipped} skipped (already done), "
                   f"{summary.quarantined} quarantined, {failed} failed"
                   + (f", {summary.retried} worker deaths survived" if summary.retried else "")
                   + f" in {summary.seconds:.0f} s"
                   + (f" ({summary.files_per_minute:.1f} files/min)" if summary.done else ""))
        if summary.report:
            click.echo(f"report: {summary.report}")
    sys.exit(0 if summary.ok else 1)


@click.group()
def batch():
    """Core-facility batches: many FCS files, resumable, with a registry and a QC report.

    \b
    Examples:
      immunomon batch run inbox/ --out results/ --workers 4
      immunomon batch status results/
      immunomon batch retry results/ --failed
      immunomon batch report results/
      immunomon batch watch inbox/ --out results/ --workers 4
    """


@batch.command("run")
@click.argument("inbox", type=click.Path(file_okay=False))
@_run_options
def run_cmd(inbox, results, as_json, **run_options):
    """Gate every FCS file under INBOX that is new or changed, into RESULTS.

    Files already done with the same content, template and settings are
    skipped; files that cannot be read or gated are quarantined and the
    batch goes on. Killed at any moment, the same command resumes. Exit code
    0 only when no file failed.

    \b
    Examples:
      immunomon batch run inbox/ --out results/ --workers 4
      immunomon batch run inbox/ -o results/ -m manifest.csv --deidentify --date-shift 180
      immunomon batch run inbox/ -o results/ --cluster local:8
      immunomon batch run /shared/inbox -o /shared/results --scheduler tcp://head:8786
    """
    from .run import run_batch

    options = _options(**run_options)
    _terminate_as_interrupt()
    progress = _Progress(quiet=as_json)
    try:
        summary = run_batch(inbox, results, options, progress=progress)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: said as such (click's 'Aborted!', exit 1, read as a failed
        # file), with how to go on
        progress.close()
        click.echo(f"interrupted: the files done are kept in {results}; the same command "
                   "goes on from there", err=True)
        sys.exit(130)
    _finish(summary, as_json, progress)


@batch.command("watch")
@click.argument("inbox", type=click.Path(file_okay=False))
@_run_options
@click.option("--settle", type=_Seconds(zero=True), default=30.0, show_default=True,
              help="Seconds a file must stay unchanged before it is taken.")
@click.option("--marker", default=".done", show_default=True,
              help="Sidecar suffix that says an upload is complete (tube.fcs.done); "
                   "'' for none.")
@click.option("--interval", type=_Seconds(), default=10.0, show_default=True,
              help="Seconds between looks at the inbox.")
def watch_cmd(inbox, results, as_json, settle, marker, interval, **run_options):
    """Process uploads to INBOX as they arrive, until interrupted (Ctrl-C or SIGTERM).

    A file is taken when it has stopped growing for --settle seconds or when
    its sidecar marker appears. Tables and the report are refreshed after
    each round that processed something.

    \b
    Example:
      immunomon batch watch /data/inbox --out /data/results --workers 4 --settle 60
    """
    from .run import watch_inbox

    options = _options(**run_options)
    _terminate_as_interrupt()
    progress = _Progress(quiet=as_json)
    try:
        summary = watch_inbox(inbox, results, options, settle=settle, marker=marker or None,
                              interval=interval, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        click.echo("stopped; files in flight will be processed by the next run", err=True)
        sys.exit(0)
    _finish(summary, as_json, progress)


@batch.command("retry")
@click.argument("results", type=click.Path(file_okay=False, exists=True))
@click.option("--failed", is_flag=True,
              help="Also retry failed and quarantined files (attempts start again).")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--scheduler", metavar="ADDRESS", help="A Dask scheduler address.")
@click.option("--cluster", metavar="local:N", help="Start a Dask LocalCluster.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def retry_cmd(results, failed, workers, scheduler, cluster, as_json):
    """Finish RESULTS' unfinished files from the registry (no inbox scan).

    Pending and interrupted files run again with the settings the results were
    made with; --failed re-queues failed and quarantined files too (after the
    file or the template was fixed, or when the failure was transient).

    \b
    Example:
      immunomon batch retry results/ --failed --workers 4
    """
    from .run import BatchOptions, retry_batch

    _terminate_as_interrupt()
    progress = _Progress(quiet=as_json)
    summary = retry_batch(results, BatchOptions(workers=workers, scheduler=scheduler,
                                                cluster=cluster),
                          failed=failed, progress=progress)
    _finish(summary, as_json, progress)


@batch.command("status")
@click.argument("results", type=click.Path(file_okay=False, exists=True))
@click.option("--all", "show_all", is_flag=True, help="List done files too.")
@click.option("--json", "as_json", is_flag=True, help="Print every file's row as JSON.")
def status_cmd(results, show_all, as_json):
    """Counts per status and the files that need attention (read-only; safe
    while a batch runs).

    \b
    Example:
      immunomon batch status results/
      immunomon batch status results/ --json > status.json
    """
    from ..atomic import folder_in_use
    from .registry import Registry, row_dict

    reg = Registry.open(results, create=False, readonly=True)
    try:
        counts = reg.counts()
        rows = [row_dict(r) for r in reg.rows()]
    finally:
        reg.close()
    if counts.get("running") and not folder_in_use(results):
        # files a killed run left 'running': no run holds the folder, and the next one
        # gates them again (they read as still running after a kill)
        click.echo(f"no run is active in {results}: the {counts['running']} file(s) shown "
                   "'running' were left by a run that stopped, and the next run gates them "
                   "again", err=True)
    if as_json:
        click.echo(json.dumps({"counts": counts, "files": rows}, indent=2, default=str))
        return
    click.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))
    shown = rows if show_all else [r for r in rows if r["status"] != "done"]
    if not shown:
        return
    width = min(60, max(len(r["relpath"]) for r in shown))
    click.echo(f"{'file':<{width}}  {'status':<11} {'tries':>5}  {'events':>10}  detail")
    for r in shown:
        detail = r["error"] or (f"{len(r['qc_flags'] or [])} QC flags"
                                if r["status"] == "done" else "")
        detail = detail.splitlines()[0] if detail else ""
        if detail.startswith(r["path"]):        # the file is named in the first column
            detail = detail[len(r["path"]):].lstrip(" :")
        events = f"{r['events']:,}" if r["events"] else ""
        name = r["relpath"] if len(r["relpath"]) <= width else "…" + r["relpath"][1 - width:]
        click.echo(f"{name:<{width}}  {r['status']:<11} {r['attempts']:>5}  "
                   f"{events:>10}  {detail}")


@batch.command("report")
@click.argument("results", type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out_path", type=click.Path(dir_okay=False),
              help="Where to write the page (default RESULTS/report.html).")
@click.option("--population", "populations", multiple=True,
              help="Key population to tabulate and chart (repeatable; default: the "
                   "reference populations and their children).")
@click.option("--baseline", type=click.IntRange(min=2), default=20, show_default=True,
              help="Control runs that set the Levey-Jennings mean and SD.")
def report_cmd(results, out_path, populations, baseline):
    """Write the batch QC report: per-file QC and yields, outliers, Levey-Jennings
    charts of the control samples and every failure with its reason. The
    per-study tables and index pages are written again from the registry too.

    \b
    Example:
      immunomon batch report results/
    """
    from .report import write_report
    from .tables import rebuild_tables

    rebuild_tables(results)
    path = write_report(results, out_path, key=list(populations) or None, baseline=baseline)
    click.echo(f"report: {path}")
