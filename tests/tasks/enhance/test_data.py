"""Enhancement data layouts: clean folders, paired folders, the Set5 layout, bad files and sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.config import TrainConfig
from pixelmind.data.datasets import BadSample
from pixelmind.errors import DataError
from pixelmind.tasks.enhance.data import detect_channels, find_pairs, load_enhance_data, paired_scale


def _photo(path: Path, size=(40, 32), seed=0, grey=False) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0]) if grey else (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _cfg(data, **kw) -> TrainConfig:
    kw.setdefault("imgsz", 16)
    kw.setdefault("degradation", "sr")
    kw.setdefault("scale", 2)
    return TrainConfig(task="enhance", data=str(data), **kw)


def test_clean_folder_is_split_and_degraded_on_the_fly(tmp_path):
    for i in range(5):
        _photo(tmp_path / "sub" / f"p{i}.png", seed=i)
    b = load_enhance_data(_cfg(tmp_path, epoch_samples=12))
    assert len(b.train) == 12 and len(b.val) == 1  # 20 % of 5 images
    lq, hq = b.train[0]
    assert lq.shape == (3, 8, 8) and hq.shape == (3, 16, 16)
    vlq, vhq = b.val[0]
    assert vhq.shape == (3, 32, 40) and vlq.shape == (3, 16, 20)  # whole image, mod-cropped to the scale
    assert torch.equal(b.val[0][0], vlq)  # validation degradations are fixed
    assert b.meta_extra["degradation"] == "sr" and b.meta_extra["scale"] == 2 and b.meta_extra["channels"] == 3


def test_train_and_val_subfolders_are_used_as_given(tmp_path):
    for i in range(3):
        _photo(tmp_path / "train" / f"t{i}.png", seed=i)
    _photo(tmp_path / "val" / "v.png", size=(33, 35), seed=9)
    b = load_enhance_data(_cfg(tmp_path, degradation="denoise", scale=None, imgsz=16))
    assert len(b.val) == 1
    lq, hq = b.val[0]
    assert lq.shape == hq.shape == (3, 35, 33)  # restoration keeps the size, no mod-crop
    assert (lq - hq).std() > 0.05


def test_paired_folders_infer_the_scale_and_crop_aligned(tmp_path):
    for split in ("train", "val"):
        for i in range(2):
            lq = np.random.default_rng(i).integers(0, 256, (16, 24, 3), dtype=np.uint8)
            hq = lq.repeat(2, 0).repeat(2, 1)  # each LR pixel is a 2x2 HR block
            (tmp_path / split / "HR").mkdir(parents=True, exist_ok=True)
            (tmp_path / split / "LR").mkdir(parents=True, exist_ok=True)
            Image.fromarray(hq).save(tmp_path / split / "HR" / f"im{i}.png")
            Image.fromarray(lq).save(tmp_path / split / "LR" / f"im{i}.png")
    assert paired_scale(str(tmp_path)) == 2
    b = load_enhance_data(_cfg(tmp_path, imgsz=16, epoch_samples=4))
    lq, hq = b.train[0]
    assert lq.shape == (3, 8, 8) and hq.shape == (3, 16, 16)
    # aligned crops (and the same flips on both): every 2x2 HR block is still its LR pixel
    assert torch.equal(hq, lq.repeat_interleave(2, -2).repeat_interleave(2, -1))
    assert b.meta_extra["paired"] is True and len(b.val) == 2


def test_set5_layout_with_lr_hr_suffixes(tmp_path):
    for name in ("baby", "bird"):
        hq = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(hq).save(tmp_path / f"{name}_HR.png")
        Image.fromarray(hq[::4, ::4]).save(tmp_path / f"{name}_LR.png")
    pairs = find_pairs(tmp_path)
    assert [(a.name, b.name) for a, b in pairs["all"]] == [("baby_LR.png", "baby_HR.png"), ("bird_LR.png", "bird_HR.png")]
    b = load_enhance_data(_cfg(tmp_path, scale=4), evaluate_all=True)
    assert len(b.val) == 2  # a test set is evaluated whole


def test_pair_with_the_wrong_size_is_named_at_load_time(tmp_path):
    _photo(tmp_path / "hq" / "a.png", size=(32, 32))
    _photo(tmp_path / "lq" / "a.png", size=(16, 16))
    _photo(tmp_path / "hq" / "b.png", size=(32, 30))
    _photo(tmp_path / "lq" / "b.png", size=(16, 16))
    with pytest.raises(DataError, match=r"b\.png: 32x30 is not an integer multiple"):
        load_enhance_data(_cfg(tmp_path))


def test_missing_partner_and_asked_scale_mismatch_are_errors(tmp_path):
    _photo(tmp_path / "hq" / "a.png", size=(32, 32))
    _photo(tmp_path / "lq" / "a.png", size=(16, 16))
    _photo(tmp_path / "lq" / "orphan.png", size=(16, 16))
    with pytest.raises(DataError, match="orphan.png"):
        load_enhance_data(_cfg(tmp_path))
    (tmp_path / "lq" / "orphan.png").unlink()
    _photo(tmp_path / "hq" / "c.png", size=(32, 32))
    _photo(tmp_path / "lq" / "c.png", size=(16, 16))
    with pytest.raises(DataError, match="x2 but scale 4"):
        load_enhance_data(_cfg(tmp_path, scale=4, imgsz=16))


def test_corrupt_image_becomes_a_bad_sample_not_a_crash(tmp_path):
    for i in range(4):
        _photo(tmp_path / f"p{i}.png", seed=i)
    (tmp_path / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    b = load_enhance_data(_cfg(tmp_path, epoch_samples=8, val_fraction=0.25))
    items = [b.train[i] for i in range(len(b.train))] + [b.val[i] for i in range(len(b.val))]
    bad = [x for x in items if isinstance(x, BadSample)]
    assert bad and all("p1.png" in x.path and "corrupt" in x.reason for x in bad)


def test_greyscale_data_is_detected_and_loaded_as_one_channel(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"g{i}.png", seed=i, grey=True)
    assert detect_channels(str(tmp_path)) == 1
    _photo(tmp_path / "colour.png", seed=7)
    assert detect_channels(str(tmp_path)) == 3
    (tmp_path / "colour.png").unlink()
    b = load_enhance_data(_cfg(tmp_path, channels=1, val_fraction=0.34))
    lq, hq = b.train[0]
    assert lq.shape[0] == hq.shape[0] == 1


def test_small_images_are_padded_up_to_the_crop(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"s{i}.png", size=(10, 12), seed=i)
    b = load_enhance_data(_cfg(tmp_path, imgsz=32))
    lq, hq = b.train[0]
    assert hq.shape == (3, 32, 32) and lq.shape == (3, 16, 16)


def test_not_a_folder_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder of images"):
        load_enhance_data(_cfg(tmp_path / "missing"))
    with pytest.raises(DataError, match="need at least 2 images"):
        load_enhance_data(_cfg(tmp_path))


def test_builtin_photos():
    b = load_enhance_data(_cfg("photos", imgsz=24, epoch_samples=3))
    lq, hq = b.train[2]
    assert lq.shape == (3, 12, 12) and hq.shape == (3, 24, 24)
    assert len(b.val) >= 3 and b.summary["train_images"] >= 10
