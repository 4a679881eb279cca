"""Atomic output: a failed write leaves the old file whole and no temporary file behind."""
import pytest

from dic.fileio import atomic_copy, atomic_output, atomic_write_text


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_successful_write_replaces_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "new")
    atomic_copy(target, tmp_path / "copy.txt")
    assert target.read_text() == "new" and (tmp_path / "copy.txt").read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
