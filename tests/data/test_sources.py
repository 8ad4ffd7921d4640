"""iter_sources: folder walking order (as sorted rglob), laziness on huge folders, .txt lists."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from pixelmind.data import sources
from pixelmind.data.decode import is_image_file
from pixelmind.data.sources import ResolvedPaths, iter_sources, walk_files


def touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_folder_order_is_the_old_sorted_rglob_order(tmp_path):
    touch(tmp_path, "a/x.png", "a/b/z.png", "a.png", "a-b.png", "a0/y.png", "b/c/d.png", "b/c.png",
          "B.png", "_.png", "notes.txt", "b/c/e.JPG")  # fmt: skip
    (tmp_path / "empty").mkdir()
    got = list(iter_sources(tmp_path))
    old = [p for p in sorted(tmp_path.rglob("*")) if p.is_file() and is_image_file(p)]
    assert got == old
    # spelled out: a directory's files come where its name sorts, name by name (not by the full path string)
    assert [p.relative_to(tmp_path).as_posix() for p in got] == [
        "B.png", "_.png", "a/b/z.png", "a/x.png", "a-b.png", "a.png", "a0/y.png", "b/c/d.png", "b/c/e.JPG", "b/c.png",
    ]  # fmt: skip


def test_symlinked_folders_are_not_entered_but_linked_files_are_listed(tmp_path):
    touch(tmp_path, "real/1.png", "other/2.png")
    (tmp_path / "real" / "link_dir").symlink_to(tmp_path / "other", target_is_directory=True)
    (tmp_path / "real" / "link.png").symlink_to(tmp_path / "other" / "2.png")
    got = list(walk_files(tmp_path / "real"))
    assert [p.name for p in got] == ["1.png", "link.png"]
    assert got == [p for p in sorted((tmp_path / "real").rglob("*")) if p.is_file()]


def test_a_huge_folder_is_walked_lazily_one_directory_at_a_time(tmp_path, monkeypatch):
    touch(tmp_path, "a/first.png")
    big = tmp_path / "b"
    big.mkdir()
    for i in range(2000):
        (big / f"{i:05d}.png").write_bytes(b"")
    listed: list[str] = []
    real_scandir = os.scandir

    def spy(path):
        listed.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", spy)
    monkeypatch.setattr(Path, "rglob", lambda *a, **k: pytest.fail("rglob materialises the tree"))
    stream = iter_sources(tmp_path)
    assert next(stream) == tmp_path / "a" / "first.png"
    assert listed == [".", "a"], "the big folder was listed before the first file was handed out"
    rest = list(itertools.islice(stream, 3))
    assert [p.name for p in rest] == ["00000.png", "00001.png", "00002.png"]
    assert listed == [".", "a", "b"]  # each folder is listed exactly once
    assert sum(1 for _ in stream) == 1997


def test_txt_lists_resolved_paths_and_suffixes(tmp_path):
    touch(tmp_path, "imgs/1.png", "imgs/2.pmc")
    (tmp_path / "list.txt").write_text(f"# a comment\nimgs/1.png\n\n{tmp_path / 'abs.png'}\r\n")
    assert list(iter_sources(tmp_path / "list.txt")) == [tmp_path / "imgs/1.png", tmp_path / "abs.png"]
    assert list(iter_sources(tmp_path / "imgs", suffixes=(".pmc",))) == [tmp_path / "imgs/2.pmc"]
    # already resolved paths are passed through untouched, missing ones included (predict reports them per file)
    assert list(iter_sources(ResolvedPaths(iter(["nope.png", tmp_path])))) == [Path("nope.png"), tmp_path]
