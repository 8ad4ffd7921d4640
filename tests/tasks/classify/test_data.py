"""load_classification_data over every source kind, bad samples, and native_image_size."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from pixelmind.config import TrainConfig
from pixelmind.data.datasets import BadSample, SkipBadCollate
from pixelmind.errors import DataError
from pixelmind.tasks.classify.data import load_classification_data, native_image_size

IMGSZ = 12


def _cfg(data, **kw) -> TrainConfig:
    kw.setdefault("imgsz", IMGSZ)
    kw.setdefault("augment", "none")
    return TrainConfig(data=str(data), **kw)


def _png(path: Path, value: int, size=(10, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path)
    return path


def _folder(root: Path, per_class: dict[str, int], size=(10, 8)) -> Path:
    for ci, (cls, n) in enumerate(per_class.items()):
        for i in range(n):
            _png(root / cls / f"{cls}_{i}.png", 20 * ci + i, size)
    return root


def _idx(path: Path, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    data = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _paths(ds) -> list[str]:
    return [ds.base.samples[i][0] for i in ds.indices]


def _check_sample(sample, num_classes: int, dtype=torch.float32) -> None:
    """Training samples of in-memory data stay uint8: they are augmented as whole batches (ClassifyTask)."""
    image, label = sample
    assert isinstance(image, torch.Tensor) and image.dtype == dtype
    assert tuple(image.shape) == (3, IMGSZ, IMGSZ)
    assert 0 <= int(label) < num_classes


def test_digits():
    b = load_classification_data(_cfg("digits", val_fraction=0.25, seed=3))
    assert b.class_names == [str(i) for i in range(10)]
    assert len(b.train) + len(b.val) == 1797
    assert abs(len(b.val) - 0.25 * 1797) < 10
    assert b.meta_extra["hflip"] is False  # mirrored digits change meaning
    assert b.summary["image_size"] == "8x8" and b.summary["classes"] == 10
    assert set(b.val.targets) == set(range(10))
    _check_sample(b.train[0], 10, torch.uint8)
    _check_sample(b.val[len(b.val) - 1], 10)
    again = load_classification_data(_cfg("digits", val_fraction=0.25, seed=3))
    assert torch.equal(b.val.images, again.val.images)  # seeded split


def test_digits_limit():
    b = load_classification_data(_cfg("digits", limit=50))
    assert len(b.train) == 50 and len(b.val) > 300


def test_imagefolder_with_train_and_val(tmp_path):
    _folder(tmp_path / "train", {"cat": 3, "dog": 2, "emu": 2})
    _folder(tmp_path / "val", {"dog": 2})  # val may lack classes: indices still follow train
    b = load_classification_data(_cfg(tmp_path))
    assert b.class_names == ["cat", "dog", "emu"]
    assert len(b.train) == 7 and len(b.val) == 2
    assert b.val.targets == [1, 1]
    assert all("/val/dog/" in p.replace("\\", "/") for p in _paths(b.val))
    assert b.summary["per_class"]["dog"] == {"train": 2, "val": 2}
    _check_sample(b.val[0], 3)
    _check_sample(b.train[6], 3)


def test_imagefolder_valid_dir_name_and_unknown_val_class(tmp_path):
    _folder(tmp_path / "train", {"cat": 2, "dog": 2})
    _folder(tmp_path / "valid", {"cat": 1, "yak": 1})
    with pytest.raises(DataError, match="yak"):
        load_classification_data(_cfg(tmp_path))


def test_single_folder_split_by_val_fraction(tmp_path):
    _folder(tmp_path, {"a": 5, "b": 5, "c": 10})
    b = load_classification_data(_cfg(tmp_path, val_fraction=0.2, seed=0))
    assert b.class_names == ["a", "b", "c"]
    assert len(b.train) == 16 and len(b.val) == 4
    assert sorted(b.val.targets) == [0, 1, 2, 2]
    assert not set(_paths(b.train)) & set(_paths(b.val))
    again = load_classification_data(_cfg(tmp_path, val_fraction=0.2, seed=0))
    assert _paths(again.val) == _paths(b.val)
    _check_sample(b.train[0], 3)


def test_single_folder_with_too_few_images_has_no_val(tmp_path):
    _folder(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(DataError, match="no validation samples"):
        load_classification_data(_cfg(tmp_path))


def test_csv_manifest_with_split_column(tmp_path):
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png", 50 * i)
    (tmp_path / "m.csv").write_text(
        "path,label,split\nimg/0.png,cat,train\nimg/1.png,dog,train\nimg/2.png,dog,val\nimg/3.png,cat,test\n"
    )
    b = load_classification_data(_cfg(tmp_path / "m.csv"))
    assert b.class_names == ["cat", "dog"]
    # 'test' rows are the test split (val --split test), not more validation rows
    assert b.train.targets == [0, 1] and b.val.targets == [1]
    assert [Path(p).name for p in _paths(b.val)] == ["2.png"]
    _check_sample(b.val[0], 2)
    test = load_classification_data(_cfg(tmp_path / "m.csv").model_copy(update={"split": "test"}))
    assert [Path(p).name for p in _paths(test.val)] == ["3.png"] and test.val.targets == [0]


def test_csv_manifest_without_split_and_known_classes(tmp_path):
    lines = []
    for i in range(6):
        _png(tmp_path / f"{i}.png", 30 * i)
        lines.append(f"{i}.png,{'xy'[i % 2]}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    b = load_classification_data(_cfg(tmp_path / "m.csv", val_fraction=0.34))
    assert len(b.train) + len(b.val) == 6 and sorted(b.val.targets) == [0, 1]
    # evaluating existing weights: the model's class order is kept
    b2 = load_classification_data(_cfg(tmp_path / "m.csv"), class_names=["y", "x"])
    assert b2.class_names == ["y", "x"]
    assert all(t == (1 if Path(p).stem in "024" else 0) for p, t in b2.train.base.samples)
    with pytest.raises(DataError, match="not among the model's classes"):
        load_classification_data(_cfg(tmp_path / "m.csv"), class_names=["x", "z"])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    _idx(tmp_path / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (20, 6, 6)))
    _idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", np.arange(20) % 4)
    _idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (8, 6, 6)))
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.arange(8) % 4)
    b = load_classification_data(_cfg(tmp_path))
    assert b.class_names == ["0", "1", "2", "3"]
    assert len(b.train) == 20 and len(b.val) == 8  # t10k is the validation split
    assert b.val.targets == [0, 1, 2, 3, 0, 1, 2, 3]
    assert b.summary["image_size"] == "6x6"
    _check_sample(b.train[0], 4, torch.uint8)
    assert native_image_size(str(tmp_path)) == 6


def test_idx_folder_without_test_split_is_split(tmp_path):
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((10, 4, 4)))
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(10) % 2)
    b = load_classification_data(_cfg(tmp_path, val_fraction=0.2))
    assert len(b.train) == 8 and sorted(b.val.targets) == [0, 1]


def test_corrupt_image_is_a_bad_sample_and_skipped(tmp_path):
    _folder(tmp_path / "train", {"a": 2, "b": 2})
    _folder(tmp_path / "val", {"a": 1, "b": 1})
    bad = tmp_path / "val" / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    b = load_classification_data(_cfg(tmp_path))
    paths = _paths(b.val)
    assert str(bad) in paths
    samples = [b.val[i] for i in range(len(b.val))]  # never raises
    bad_samples = [s for s in samples if isinstance(s, BadSample)]
    assert len(bad_samples) == 1 and bad_samples[0].path == str(bad)
    assert "broken.png" in bad_samples[0].reason
    collate = SkipBadCollate(default_collate)
    batch, skipped = collate(samples)
    images, labels = batch
    assert tuple(images.shape) == (2, 3, IMGSZ, IMGSZ) and labels.tolist() == [0, 1]
    assert skipped == bad_samples
    assert collate([bad_samples[0]]) == (None, bad_samples)


def test_corrupt_image_through_a_dataloader(tmp_path):
    _folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "zz_bad.jpg").write_bytes(b"garbage")
    b = load_classification_data(_cfg(tmp_path, val_fraction=0.5))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.ConcatDataset([b.train, b.val]),
        batch_size=4,
        collate_fn=SkipBadCollate(default_collate),
    )
    seen, skipped = 0, []
    for batch, bad in loader:
        seen += 0 if batch is None else len(batch[1])
        skipped += bad
    assert seen == 6 and [Path(s.path).name for s in skipped] == ["zz_bad.jpg"]


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="no such file or folder") as info:
        load_classification_data(_cfg(tmp_path / "nothing"))
    assert "digits" in str(info.value)  # the message lists the built-in data sets
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a data set"):
        load_classification_data(_cfg(tmp_path / "x.txt"))


def test_native_image_size(tmp_path):
    assert native_image_size("digits") == 8
    assert native_image_size(str(tmp_path / "missing")) is None
    _folder(tmp_path / "f", {"a": 2, "b": 1}, size=(30, 14))
    _png(tmp_path / "f" / "b" / "odd.png", 1, size=(100, 90))
    (tmp_path / "f" / "a" / "bad.png").write_bytes(b"not an image")  # ignored
    assert native_image_size(str(tmp_path / "f")) == 14  # the median shorter side
    (tmp_path / "m.csv").write_text("f/b/odd.png,b\n")
    assert native_image_size(str(tmp_path / "m.csv")) == 90
    (tmp_path / "empty").mkdir()
    assert native_image_size(str(tmp_path / "empty")) is None


def test_train_folder_without_val_folder_is_split_by_class(tmp_path):
    _folder(tmp_path / "train", {"cat": 3, "dog": 3})
    b = load_classification_data(_cfg(tmp_path))
    assert b.class_names == ["cat", "dog"]


def test_csv_unknown_split_name_is_an_error(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", 10 * i)
    (tmp_path / "m.csv").write_text("0.png,a,train\n1.png,a,val\n2.png,b,training\n")
    with pytest.raises(DataError, match="training"):
        load_classification_data(_cfg(tmp_path / "m.csv"))
