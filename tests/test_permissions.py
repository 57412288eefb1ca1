"""Outputs get the modes the user's umask gives (as open() and mkdir do); secrets stay 0600.

Each writer runs under umask 0022 and 0027 and every file and folder it leaves is
checked: 0644/0755 and 0640/0750, never the 0600/0700 of a temporary file.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from immunomon import read_fcs, simulate as sim, write_fcs
from immunomon.atomic import atomic_dir, atomic_path, write_bytes, write_text
from immunomon.gating.run import gate_files
from immunomon.gating.template import parse_template
from immunomon.pipeline import run_pipeline

UMASKS = [0o022, 0o027]

SMALL_TEMPLATE = """\
panel: small
version: "1"
markers: {CD45: [CD45], CD3: [CD3]}
populations:
  - {name: Singlets, parent: root, dims: [FSC-A, FSC-H], method: singlet}
  - name: Lymphocytes
    parent: Singlets
    dims: [CD45, SSC-A]
    gate: {rectangle: {bounds: [[0.5, null], [null, 0.6]]}}
  - {name: T cells, parent: Lymphocytes, dims: [CD3], method: threshold}
"""

STUDY = """\
study: modes
out: results
inputs:
  manifest: study/manifest.csv
  fcs: study/fcs
  template: small.yaml
  str: study/str
  references:
    donor: study/str/{patient}_donor.txt
    recipient: study/str/{patient}_recipient.txt
  kit: Identifiler
  clinical: study/clinical
stages:
  gate: {plots: false, anndata: true}
  chimerism: {quantity: area}
  cohort: {file: cohort.zarr}
  analysis: {}
"""


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes_under(root: Path) -> dict[str, int]:
    """Permission bits of everything below ``root`` (pytest makes ``root`` itself 0700)."""
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")}


def assert_umask_modes(root: Path, mask: int) -> None:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    wrong = {name: oct(mode) for name, mode in modes_under(root).items()
             if mode != (want_dir if (root / name).is_dir() else want_file)}
    assert not wrong, f"expected {oct(want_file)} files, {oct(want_dir)} folders: {wrong}"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """2 simulated patients, visits pre and M3, 1,000 events per FCS file."""
    root = tmp_path_factory.mktemp("modes")
    trial = sim.trial(5, n_patients=2)
    keep = trial.manifest[trial.manifest["visit"].isin(["pre", "M3"])]
    trial = dataclasses.replace(trial, manifest=keep.reset_index(drop=True))
    sim.write_trial(trial, root / "study", events_per_sample=1000)
    (root / "small.yaml").write_text(SMALL_TEMPLATE)
    return root


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=["umask022", "umask027"])
def test_atomic_helpers_follow_the_umask_and_keep_secrets_private(tmp_path, umask):
    write_text(tmp_path / "page.html", "<p>ok</p>")
    write_bytes(tmp_path / "table.bin", b"\x00\x01")
    with atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        tmp.write_bytes(b"png")
    with atomic_dir(tmp_path / "folder") as work:
        (work / "inner").mkdir()
        (work / "inner" / "a.csv").write_text("a\n1\n")
    with atomic_dir(tmp_path / "folder") as work:            # replaces the first one
        (work / "b.csv").write_text("b\n2\n")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["b.csv"]
    assert_umask_modes(tmp_path, umask)

    key = write_text(tmp_path / "key.txt", "secret", private=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    write_text(key, "new secret", private=True)               # a rewrite stays private
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == "new secret"
    assert sorted(os.listdir(tmp_path)) == ["folder", "key.txt", "page.html", "plot.png",
                                            "table.bin"]     # no temporary left


@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=["umask022", "umask027"])
def test_fcs_export_and_gate_outputs_follow_the_umask(study, tmp_path, umask):
    source = sorted((study / "study" / "fcs").rglob("*.fcs"))[0]
    (tmp_path / "export").mkdir()
    exported = write_fcs(tmp_path / "export" / "copy.fcs", read_fcs(source))
    assert read_fcs(exported).n_events == 1000
    template = parse_template(SMALL_TEMPLATE, "small.yaml")
    run = gate_files([source], template, tmp_path / "gate", plots=True, anndata=True)
    assert run.ok, run.samples
    sample = tmp_path / "gate" / source.stem
    for name in ("populations.csv", "populations.parquet", "gates.xml", "index.html",
                 "summary.json", f"{source.stem}.h5ad"):
        assert (sample / name).is_file(), name
    assert list((sample / "plots").glob("*.png"))
    assert (tmp_path / "gate" / "populations.csv").is_file()
    assert_umask_modes(tmp_path, umask)


@pytest.mark.slow
@pytest.mark.parametrize("umask", UMASKS, indirect=True, ids=["umask022", "umask027"])
def test_study_pipeline_outputs_follow_the_umask(study, tmp_path, umask):
    out = tmp_path / "results"
    (study / "modes.yaml").write_text(STUDY)
    result = run_pipeline(study / "modes.yaml", out)
    assert result.ran == ["gate", "chimerism", "cohort", "analysis"]
    assert (out / "cohort" / "cohort.zarr").is_dir()
    assert (out / ".pipeline.json").is_file()
    assert list((out / "analysis").rglob("*.html"))
    from immunomon.cohort import load
    load(out / "cohort" / "cohort.zarr").save(tmp_path / "copy" / "cohort.nc")  # NetCDF/HDF5
    assert_umask_modes(tmp_path, umask)
