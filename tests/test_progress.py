"""Per-file progress: one line per file in logs, a bar on terminals."""

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from immunomon.progress import FileProgress, file_line, is_terminal

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_file_line_parts():
    assert file_line("P01_M1", "flagged", 12345, 1.234, index=3, total=77) == \
        "3/77 P01_M1: flagged, 12,345 events, 1.2 s"
    assert file_line("x", "failed", None, None, message="not an FCS file") == \
        "x: failed, not an FCS file"


def test_lines_when_not_a_terminal():
    stream = io.StringIO()
    assert not is_terminal(stream)
    with FileProgress(3, "gate", stream=stream) as progress:
        progress.done("a", "ok", 1000, seconds=0.5)
        progress.done("b", "failed", None, seconds=0.25, message="truncated")
        progress.done("c", "flagged", 2_000_000)
    lines = stream.getvalue().splitlines()
    assert lines[:2] == ["gate 1/3 a: ok, 1,000 events, 0.5 s",
                         "gate 2/3 b: failed, 0.2 s, truncated"]
    assert re.fullmatch(r"gate 3/3 c: flagged, 2,000,000 events, \d+\.\d s", lines[2])
    assert progress.count == 3


def test_bar_on_a_terminal_and_nothing_when_disabled():
    stream = io.StringIO()
    with FileProgress(2, "gate", stream=stream, interactive=True) as progress:
        progress.done("a", "ok", 10)
        progress.done("b", "ok", 10)
    text = stream.getvalue()
    assert "gate" in text and "a: ok" not in text       # the bar, not the lines
    quiet = io.StringIO()
    with FileProgress(2, "gate", stream=quiet, enabled=False) as progress:
        progress.done("a", "ok", 10)
    assert quiet.getvalue() == "" and progress.count == 1


@pytest.mark.slow
def test_gate_command_logs_one_line_per_file(tmp_path):
    """stderr redirected to a file, as under a scheduler: one line per file."""
    files = sorted(FIXTURES.glob("pbmc_*.fcs"))
    assert len(files) == 3
    for f in files:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "broken.fcs").write_bytes(b"FCS3.1  not really")
    log = tmp_path / "log.txt"
    with open(log, "w") as err:
        res = subprocess.run([sys.executable, "-m", "immunomon", "gate", str(tmp_path),
                              "-o", str(tmp_path / "out"), "--no-plots", "--no-anndata"],
                             stdout=subprocess.PIPE, stderr=err, text=True, timeout=600)
    assert res.returncode == 1                      # one file failed
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("gate ")]
    assert len(lines) == 4
    names = {f.stem for f in files} | {"broken"}
    for line in lines:
        m = re.fullmatch(r"gate (\d)/4 (\S+): (ok|warning|failure|failed), (.*)", line)
        assert m and m.group(2) in names, line
        if m.group(3) != "failed":
            assert re.match(r"[\d,]+ events, \d+\.\d s$", m.group(4)), line
    assert "broken: failed" in log.read_text()


def test_each_line_gives_the_files_own_time_with_workers(tmp_path, monkeypatch):
    """With -j, files end close together: the time between two ends said 0.0 s for a
    50,000-event file; each line now gives the file's own read, gate and write time."""
    from click.testing import CliRunner

    import immunomon.gating.run as run
    from immunomon.cli import main

    def gate_files(files, template, out_dir, *, progress=None, **kwargs):
        for f in files:
            progress({"sample": Path(f).stem, "status": "ok", "events": 50_273, "flags": [],
                      "seconds": {"read": 0.4, "gate": 2.1, "write": 0.6}})
        return run.GateRun(samples=[], table_columns={}, out_dir=Path(out_dir))

    monkeypatch.setattr(run, "gate_files", gate_files)
    monkeypatch.setattr("immunomon.cli.is_terminal", lambda stream: False, raising=False)
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.fcs").write_bytes((FIXTURES / "pbmc_01.fcs").read_bytes())
    res = CliRunner().invoke(main, ["gate", str(tmp_path), "-o", str(tmp_path / "out"),
                                    "-t", "post-transplant", "-j", "2"])
    lines = [ln for ln in res.output.splitlines() if ln.startswith("gate ")]
    assert len(lines) == 4 and all(ln.endswith("50,273 events, 3.1 s") for ln in lines), \
        res.output
