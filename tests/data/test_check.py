"""pixelmind check: corrupt files, exact duplicates and train/val leakage in an ImageFolder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from pixelmind.data.check import check_classification, dhash


def _blocks(seed: int, cell: int = 8) -> Image.Image:
    """9x8 cells, each column brighter or darker than the last in every row: a dhash that survives resizing."""
    rng = np.random.default_rng(seed)
    walk = np.concatenate([[0], np.cumsum(rng.choice([-1, 1], 8))])
    profile = (walk - walk.min()) / max(np.ptp(walk), 1)
    grey = (20 + 215 * profile[None, :] * rng.uniform(0.7, 1.0, (8, 1))).round().astype(np.uint8)
    rgb = np.stack([grey, grey, 255 - grey], axis=-1)
    return Image.fromarray(rgb).resize((9 * cell, 8 * cell), Image.Resampling.NEAREST)


def _save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def test_dhash_is_stable_under_resize_and_differs_between_images():
    a, b = _blocks(0), _blocks(1)
    assert dhash(a) == dhash(a.resize((36, 32), Image.Resampling.BILINEAR))
    assert dhash(a) != dhash(b)
    seeds = [0, 1, 2, 3, 4, *range(10, 16)]  # the images the tests below use are all different
    assert len({dhash(_blocks(s)) for s in seeds}) == len(seeds)
    assert 0 <= dhash(a) < 2**64


def test_leakage_duplicates_and_corrupt_files(tmp_path):
    root = tmp_path / "ds"
    a1 = _save(_blocks(0), root / "train" / "cat" / "a1.png")
    _save(_blocks(1), root / "train" / "cat" / "a2.png")
    b1 = _save(_blocks(2), root / "train" / "dog" / "b1.png")
    _save(_blocks(3), root / "train" / "dog" / "b2.png")
    (root / "val" / "cat").mkdir(parents=True)
    shutil.copyfile(a1, root / "val" / "cat" / "copy_of_a1.png")
    _save(Image.open(b1).resize((36, 32), Image.Resampling.BILINEAR), root / "val" / "dog" / "small_b1.png")
    _save(_blocks(4), root / "val" / "dog" / "fresh.png")
    corrupt = root / "val" / "dog" / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 definitely broken")

    out = tmp_path / "report"
    r = check_classification(str(root), out=out)
    assert r["classes"] == 2 and r["train"] == 4 and r["val"] == 4
    assert r["per_class"] == {"cat": {"train": 2, "val": 1}, "dog": {"train": 2, "val": 3}}
    assert list(r["corrupt"]) == [str(corrupt)]
    assert "broken.png" in r["corrupt"][str(corrupt)]
    assert r["duplicates_exact"] == 1  # a1 and its byte copy
    assert r["leakage_exact"] == 1
    assert r["leakage_perceptual"] == 2  # the byte copy and the resized copy
    leaked = {frozenset(Path(p).name for p in g) for g in r["examples"]["leakage"]}
    assert leaked == {frozenset({"a1.png", "copy_of_a1.png"}), frozenset({"b1.png", "small_b1.png"})}
    assert r["image_size"] == {"min": [36, 32], "max": [72, 64]}
    saved = json.loads((out / "check.json").read_text())
    assert saved["leakage_exact"] == 1 and "text" not in saved
    assert (out / "report.md").read_text().startswith("# Data check")
    assert (out / "image_megapixels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "corrupt files: 1" in r["text"]


def test_clean_data_set_has_no_findings(tmp_path):
    root = tmp_path / "clean"
    for i in range(6):
        _save(_blocks(10 + i), root / ("x" if i % 2 else "y") / f"{i}.png")
    r = check_classification(str(root), out=tmp_path / "out", val_fraction=0.34)
    assert r["corrupt"] == {}
    assert r["duplicates_exact"] == 0 and r["leakage_exact"] == 0 and r["leakage_perceptual"] == 0
    assert r["train"] + r["val"] == 6


def test_digits_in_memory_arrays(tmp_path):
    r = check_classification("digits", out=tmp_path / "digits")
    assert r["classes"] == 10 and r["train"] + r["val"] == 1797
    assert r["corrupt"] == {}
    assert r["image_size"] == {"min": [8, 8], "max": [8, 8]}
    # sklearn's digits hold a few byte-identical images; some land on both sides of the split
    assert r["duplicates_exact"] >= r["leakage_exact"] >= 0


def test_idx_arrays_are_checked_at_their_own_size(tmp_path):
    import struct

    def idx(path: Path, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
        path.write_bytes(
            struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
        )

    root = tmp_path / "idx"
    root.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (20, 12, 12))
    images[7] = images[3]  # one exact duplicate
    idx(root / "train-images-idx3-ubyte", images)
    idx(root / "train-labels-idx1-ubyte", np.arange(20) % 2)
    r = check_classification(str(root), out=tmp_path / "out")
    assert r["image_size"] == {"min": [12, 12], "max": [12, 12]}  # not the size of some resize
    assert r["train"] + r["val"] == 20 and r["corrupt"] == {}
    assert r["duplicates_exact"] == 1
