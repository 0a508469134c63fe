"""Folders written whole or not at all: staged beside their place, then renamed in."""

import os

import pytest

from workbench.fsutil import default_mode, publish_dir, staged_dir


def fill(folder, text):
    (folder / "file.txt").write_text(text)


def test_a_published_folder_replaces_the_old_one_whole_and_reads_like_mkdir(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    fill(target, "old")
    (target / "stale.txt").write_text("only in the old one")
    with staged_dir(target) as staging:
        fill(staging, "new")
        assert publish_dir(staging, target, replace=True)
    assert (target / "file.txt").read_text() == "new"
    assert not (target / "stale.txt").exists()
    assert os.stat(target).st_mode & 0o777 == default_mode(directory=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no staging, no .old-


def test_without_replace_a_filled_target_is_kept_and_the_staging_removed(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    fill(target, "first")
    with staged_dir(target, ".converting-") as staging:
        fill(staging, "second")
        assert not publish_dir(staging, target, replace=False)
    assert (target / "file.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]

    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is taken, not kept
    with staged_dir(empty) as staging:
        fill(staging, "x")
        assert publish_dir(staging, empty, replace=False)
    assert (empty / "file.txt").read_text() == "x"


def test_a_failure_while_filling_leaves_nothing_behind(tmp_path):
    target = tmp_path / "nested" / "out"
    with pytest.raises(RuntimeError):
        with staged_dir(target) as staging:
            fill(staging, "half")
            raise RuntimeError("disk full")
    assert not target.exists()
    assert list((tmp_path / "nested").iterdir()) == []
