"""The test suite needs nothing outside the repository (a plain clone must pass)."""

from __future__ import annotations

import re
from pathlib import Path

from testdata import COMPLIANCE, DATA

TESTS = Path(__file__).resolve().parent
# Ways a test could reach outside its checkout: the folder above the repository (where a
# "shared" data folder once lived) or an absolute path on one machine. `.ci/run` proves the
# rest by running the suite in a clone with nothing beside it.
OUTSIDE = re.compile(r"""parents\[[2-9]\]|\.parent\s*/\s*["']shared|["']\.\./shared|"""
                     r"""REPO\.parent|["']/(work|home|Users|mnt)/""")


def test_no_test_module_reads_outside_the_repository():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line) and path.name != Path(__file__).name:
                offenders.append(f"{path.relative_to(TESTS)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_committed_test_data_is_inside_the_repository():
    repo = TESTS.parent
    assert DATA.is_relative_to(repo) and COMPLIANCE.is_relative_to(repo)
    assert (COMPLIANCE / "data1.fcs").stat().st_size == 216432
    assert len(list((COMPLIANCE / "truth").glob("Results_*.txt"))) == 51
    assert (COMPLIANCE / "LICENSE").is_file() and (COMPLIANCE / "SOURCES.md").is_file()
