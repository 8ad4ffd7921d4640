"""Format readers: ImageFolder, CSV manifests, IDX files and the stratified split."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pixelmind.data.formats import (
    csv_samples,
    find_idx_split,
    imagefolder_samples,
    read_idx,
    stratified_split,
)
from pixelmind.errors import DataError


def _touch_images(root: Path, layout: dict[str, list[str]]) -> None:
    for cls, files in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / cls / f).write_bytes(b"")  # readers only list files; decoding happens later


def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


# ---------------------------------------------------------------- ImageFolder


def test_imagefolder_classes_sorted_and_files_filtered(tmp_path):
    _touch_images(
        tmp_path, {"zebra": ["1.png", "2.JPG"], "ant": ["b.png", "a.jpeg", "notes.txt"], ".hidden": ["x.png"]}
    )
    (tmp_path / "ant" / "sub").mkdir()
    (tmp_path / "ant" / "sub" / "deep.png").write_bytes(b"")
    (tmp_path / "readme.md").write_text("not a class")
    samples, names = imagefolder_samples(tmp_path)
    assert names == ["ant", "zebra"]
    rel = [(p.relative_to(tmp_path).as_posix(), y) for p, y in samples]
    assert rel == [
        ("ant/a.jpeg", 0),
        ("ant/b.png", 0),
        ("ant/sub/deep.png", 0),
        ("zebra/1.png", 1),
        ("zebra/2.JPG", 1),
    ]


def test_imagefolder_class_names_fix_the_index_order(tmp_path):
    _touch_images(tmp_path, {"cat": ["1.png"], "dog": ["1.png"]})
    samples, names = imagefolder_samples(tmp_path, class_names=["dog", "cat", "bird"])
    assert names == ["dog", "cat", "bird"]
    assert {p.parent.name: y for p, y in samples} == {"cat": 1, "dog": 0}


def test_imagefolder_unknown_val_class(tmp_path):
    _touch_images(tmp_path, {"cat": ["1.png"], "horse": ["1.png"]})
    with pytest.raises(DataError, match=r"horse.*not among the training classes") as info:
        imagefolder_samples(tmp_path, class_names=["cat", "dog"])
    assert str(tmp_path) in str(info.value)


def test_imagefolder_without_class_folders_or_images(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        imagefolder_samples(tmp_path)
    _touch_images(tmp_path, {"cat": ["a.txt"]})
    with pytest.raises(DataError, match="no image files"):
        imagefolder_samples(tmp_path)


# ---------------------------------------------------------------- CSV


def test_csv_with_header_comments_and_blank_lines(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("path,label\n# a comment\nimgs/a.png, cat \n\n  ,\nimgs/b.png,dog\n")
    rows, splits = csv_samples(f)
    assert rows == [(tmp_path / "imgs/a.png", "cat"), (tmp_path / "imgs/b.png", "dog")]
    assert splits is None


def test_csv_without_header(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("a.png,1\nb.png,2\n")
    rows, _ = csv_samples(f)
    assert [(p.name, y) for p, y in rows] == [("a.png", "1"), ("b.png", "2")]


def test_csv_header_after_a_comment_is_not_a_sample(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("# exported by a tool\npath,label\na.png,cat\n")
    rows, _ = csv_samples(f)
    assert [(p.name, y) for p, y in rows] == [("a.png", "cat")]


def test_csv_with_utf8_bom_header(tmp_path):
    f = tmp_path / "m.csv"
    f.write_bytes("path,label\na.png,cat\n".encode("utf-8-sig"))
    rows, _ = csv_samples(f)
    assert [(p.name, y) for p, y in rows] == [("a.png", "cat")]


def test_csv_split_column(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("path,label,split\na.png,cat,train\nb.png,dog, VAL\nc.png,cat,test\n")
    rows, splits = csv_samples(f)
    assert len(rows) == 3
    assert splits == ["train", "val", "test"]


@pytest.mark.parametrize(
    "body,line",
    [
        ("a.png,cat\nb.png\n", 2),  # one column
        ("path,label\na.png,cat\n\nb.png,dog,train,extra\n", 4),  # four columns
        ("a.png,cat\n,dog\n", 2),  # empty path
        ("# c\na.png,\n", 2),  # empty label
    ],
)
def test_csv_malformed_line_names_file_and_line(tmp_path, body, line):
    f = tmp_path / "labels.csv"
    f.write_text(body)
    with pytest.raises(DataError) as info:
        csv_samples(f)
    msg = str(info.value)
    assert f"{f}:{line}:" in msg and "\n" not in msg


def test_csv_mixed_split_column_and_empty(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("a.png,cat,train\nb.png,dog\n")
    with pytest.raises(DataError, match="some rows have a split column"):
        csv_samples(f)
    f.write_text("path,label\n# nothing\n")
    with pytest.raises(DataError, match="no samples"):
        csv_samples(f)


def test_csv_binary_file_is_a_data_error(tmp_path):
    f = tmp_path / "m.csv"
    f.write_bytes(b"\xff\xfe\x00\x00garbage\x00\x80\x81")
    with pytest.raises(DataError) as info:
        csv_samples(f)
    assert "m.csv" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    (tmp_path / name).write_bytes(gzip.compress(_idx_bytes(arr)) if gz else _idx_bytes(arr))
    out = read_idx(tmp_path / name)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    assert np.array_equal(out, arr)
    labels = np.array([3, 7], dtype=np.uint8)
    (tmp_path / "t.idx1").write_bytes(_idx_bytes(labels))
    assert read_idx(tmp_path / "t.idx1").tolist() == [3, 7]


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    data = _idx_bytes(np.ones((4, 5, 5), dtype=np.uint8))[:-7]
    p = tmp_path / ("x.gz" if gz else "x")
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(p)
    assert str(p) in str(info.value)


def test_read_idx_bad_files(tmp_path):
    wrong_magic = tmp_path / "magic"
    wrong_magic.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 1) + b"\0\0\0\0")  # float IDX
    with pytest.raises(DataError, match="not an unsigned-byte IDX"):
        read_idx(wrong_magic)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00")
    with pytest.raises(DataError, match="tiny"):
        read_idx(tiny)
    short_header = tmp_path / "short"
    short_header.write_bytes(struct.pack(">HBB", 0, 8, 3) + b"\0\0\0\2")  # says 3 dims, gives 1
    with pytest.raises(DataError, match="short"):
        read_idx(short_header)
    cut_gzip = tmp_path / "cut.gz"
    cut_gzip.write_bytes(gzip.compress(_idx_bytes(np.zeros((50, 50), np.uint8)))[:20])
    with pytest.raises(DataError, match="cut.gz"):
        read_idx(cut_gzip)
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(_idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(DataError, match="plain.gz"):
        read_idx(not_gzip)
    with pytest.raises(DataError, match="missing"):
        read_idx(tmp_path / "missing")


def test_find_idx_split(tmp_path):
    assert find_idx_split(tmp_path, "train") is None
    for n in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / n).write_bytes(b"")
    assert find_idx_split(tmp_path, "train") == (
        tmp_path / "train-images-idx3-ubyte.gz",
        tmp_path / "train-labels-idx1-ubyte.gz",
    )
    assert find_idx_split(tmp_path, "test") == (
        tmp_path / "t10k-images-idx3-ubyte",
        tmp_path / "t10k-labels-idx1-ubyte",
    )


# ---------------------------------------------------------------- stratified split


def test_stratified_split_keeps_shares_and_covers_all():
    labels = ["a"] * 50 + ["b"] * 20 + ["c"] * 2 + ["d"] * 1 + ["e"] * 3
    train, val = stratified_split(labels, 0.2, seed=0)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(labels)))
    assert train == sorted(train) and val == sorted(val)
    val_counts = Counter(labels[i] for i in val)
    assert val_counts["a"] == 10 and val_counts["b"] == 4
    assert val_counts["c"] == 1 and val_counts["e"] == 1  # every class with >= 2 samples is validated
    assert val_counts["d"] == 0  # a single sample stays in train
    train_counts = Counter(labels[i] for i in train)
    assert all(train_counts[c] >= 1 for c in "abcde")  # and every class keeps a training sample


def test_stratified_split_is_seeded_and_deterministic():
    labels = [i % 3 for i in range(60)]
    a = stratified_split(labels, 0.25, seed=1)
    assert a == stratified_split(labels, 0.25, seed=1)
    assert a != stratified_split(labels, 0.25, seed=2)
    assert len(a[1]) == 15


def test_stratified_split_large_fraction_keeps_one_in_train():
    train, val = stratified_split([0, 0, 1, 1, 1], 0.9, seed=0)
    assert Counter([0, 0, 1, 1, 1][i] for i in train) == {0: 1, 1: 1}
    assert len(val) == 3
