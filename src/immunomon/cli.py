"""The ``immunomon`` command group.

The CLI only composes library functions. Heavy modules are imported inside
each command so that ``immunomon --help`` stays fast. Every user-caused error
(an ``ImmunomonError``) is printed as one line, without a traceback, and the
command exits non-zero.
"""

from __future__ import annotations

import json
import sys

import click

from .errors import ImmunomonError


class _Group(click.Group):
    """A click group that turns ImmunomonError into a clean message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ImmunomonError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="immunomon")
def main():
    """Transplant immunomonitoring: FCS files to populations, chimerism and GvM statistics.

    \b
    Example:
      immunomon info fixtures/*.fcs
    """


# --------------------------------------------------------------------------- info
@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def info(files, as_json):
    """Describe FCS files: version, instrument, date, events, channels, spillover.

    Only the HEADER and TEXT segments are read, so thousands of files scan
    quickly. A bad file prints a one-line error and the others go on; the exit
    code is 0 only when every file could be read.

    \b
    Example:
      immunomon info fixtures/*.fcs
      immunomon info --json run1/*.fcs > run1.json
    """
    from .fcs.info import describe_file, format_description

    results, ok = [], True
    for path in files:
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
