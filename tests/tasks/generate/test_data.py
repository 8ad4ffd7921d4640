"""Generation data readers on real files: IDX (plain and gzipped, malformed), ImageFolder, flat folders, digits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.config import TrainConfig
from pixelmind.errors import DataError
from pixelmind.tasks.generate.data import load_generate_data, to_uint8


def write_idx(path: Path, arr: np.ndarray) -> Path:
    """An MNIST-style IDX file (unsigned bytes), gzipped when the name ends in .gz."""
    data = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def idx_folder(root: Path, n_train: int = 40, n_test: int = 12, size: int = 28, classes: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, size, size)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % classes)
    return root


def cfg(data, **kw) -> TrainConfig:
    return TrainConfig(task="generate", data=str(data), **{"imgsz": 32, **kw})


def test_idx_folder_keeps_splits_labels_and_scales_to_unit_range(tmp_path):
    root = idx_folder(tmp_path / "idx")
    b = load_generate_data(cfg(root))
    assert (len(b.train), len(b.val)) == (40, 12)  # t10k is the val split
    assert b.class_names == ["0", "1", "2", "3"] and b.meta_extra["channels"] == 1
    image, label = b.train[5]
    assert tuple(image.shape) == (1, 32, 32) and label == 1
    assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.5 < 0.5 < image.max()


def test_idx_round_trip_at_native_size_is_exact(tmp_path):
    root = idx_folder(tmp_path / "idx", size=28)
    raw = np.frombuffer(gzip.decompress((root / "train-images-idx3-ubyte.gz").read_bytes())[16:], np.uint8).reshape(40, 28, 28)
    image, _ = load_generate_data(cfg(root, imgsz=28)).train[3]
    assert np.array_equal(to_uint8(image)[0].numpy(), raw[3])


def test_single_idx_images_file_without_labels_is_unconditional(tmp_path):
    path = write_idx(tmp_path / "faces-images-idx3-ubyte", np.random.default_rng(1).integers(0, 256, (30, 28, 28)))
    b = load_generate_data(cfg(path, val_fraction=0.2))
    assert b.class_names == [] and (len(b.train), len(b.val)) == (24, 6)


def test_fashion_mnist_names_its_classes(tmp_path):
    root = idx_folder(tmp_path / "fashion-mnist", classes=10, n_train=20, n_test=10)
    assert load_generate_data(cfg(root)).class_names[0] == "t-shirt/top"


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_malformed_idx_is_one_line_naming_the_file(tmp_path, damage):
    root = idx_folder(tmp_path / "idx")
    bad = root / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    raw = b"\x12\x34" + raw[2:] if damage == "magic" else raw[: len(raw) // 2]
    bad.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError) as err:
        load_generate_data(cfg(root))
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_imagefolder_is_conditional_and_flat_folder_unconditional_with_bad_files_skipped(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        for i in range(5):
            (tmp_path / "cls" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "cls" / c / f"{i}.png")
    (tmp_path / "cls" / "dogs" / "broken.png").write_bytes(b"not a png")
    b = load_generate_data(cfg(tmp_path / "cls", val_fraction=0.3))
    assert b.class_names == ["cats", "dogs"] and b.meta_extra["channels"] == 3
    items = [b.train[i] for i in range(len(b.train))] + [b.val[i] for i in range(len(b.val))]
    bad = [s for s in items if not isinstance(s, tuple)]
    assert len(bad) == 1 and "broken.png" in bad[0].path  # skipped and counted by the engine, not fatal
    good = [s for s in items if isinstance(s, tuple)]
    assert {tuple(x.shape) for x, _ in good} == {(3, 32, 32)}

    (tmp_path / "flat" / "deeper").mkdir(parents=True)
    for i in range(6):  # images at any depth, no class folders: unconditional
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(tmp_path / "flat" / ("deeper" if i % 2 else "") / f"{i}.png")
    flat = load_generate_data(cfg(tmp_path / "flat"))
    assert flat.class_names == [] and flat.meta_extra["channels"] == 1 and tuple(flat.train[0][0].shape) == (1, 32, 32)


def test_digits_limit_and_val_cap(tmp_path):
    b = load_generate_data(cfg("digits", imgsz=28, limit=100, val_samples=50))
    assert (len(b.train), len(b.val)) == (100, 50) and len(b.class_names) == 10


def test_missing_source_is_a_data_error():
    with pytest.raises(DataError, match="no such file"):
        load_generate_data(cfg("/nonexistent/folder"))
