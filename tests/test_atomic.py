"""Atomic writes: complete files replace their target; failures leave nothing behind."""

from __future__ import annotations

import os

import pytest

from immunomon.atomic import atomic_path, write_bytes, write_text


def test_success_replaces_the_target(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"          # not replaced until complete
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_failure_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target, suffix=".png") as tmp:
            assert tmp.suffix == ".png"
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_helpers(tmp_path):
    assert write_bytes(tmp_path / "b", b"ab", memoryview(b"cd")).read_bytes() == b"abcd"
    assert write_text(tmp_path / "t", "Zoë").read_text(encoding="utf-8") == "Zoë"


def test_folder_replaced_whole_only_when_complete(tmp_path):
    from immunomon.atomic import atomic_dir

    target = tmp_path / "sample"
    target.mkdir()
    (target / "old.csv").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as work:
            (work / "new.csv").write_text("half")
            raise RuntimeError("plotting failed")
    assert os.listdir(tmp_path) == ["sample"] and os.listdir(target) == ["old.csv"]
    with atomic_dir(target) as work:
        (work / "new.csv").write_text("new")
        assert os.listdir(target) == ["old.csv"]        # not replaced until complete
    assert os.listdir(tmp_path) == ["sample"] and os.listdir(target) == ["new.csv"]


def test_a_missing_folder_is_named_with_the_file_asked_for(tmp_path):
    target = tmp_path / "nodir" / "x.fcs"
    with pytest.raises(FileNotFoundError, match="no folder .*nodir to write into") as info:
        with atomic_path(target):
            pass
    assert info.value.filename == str(target) and not (tmp_path / "nodir").exists()
