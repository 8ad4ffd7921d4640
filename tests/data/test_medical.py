"""DICOM, NIfTI, multi-page TIFF and 16-bit PNG through the shared decoder; the files are written here."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel
import numpy as np
import pytest
from medical_helpers import write_ct
from PIL import Image
from test_cli import last_json, ok, pixelmind

from pixelmind.data.decode import ImageDecodeError, load_image
from pixelmind.data.masks import find_semantic_data, read_mask
from pixelmind.data.medical import set_window
from pixelmind.data.sources import iter_sources


@pytest.fixture(autouse=True)
def no_window():
    set_window(None)
    yield
    set_window(None)


def hu_ramp(width: int = 64, height: int = 8) -> np.ndarray:
    """Stored values 0..4095, i.e. -1024..3071 HU, left to right."""
    return np.tile(np.linspace(0, 4095, width), (height, 1)).round()


def grey(path_or_bytes) -> np.ndarray:
    return np.asarray(load_image(path_or_bytes))[..., 0]


def test_dicom_window_from_the_file_then_from_the_setting(tmp_path):
    stored = np.array([[0, 1024 - 200 + 40, 1024 + 40, 1024 + 240, 4095]])  # -1024, -160, 40, 240, 3071 HU
    path = write_ct(tmp_path / "ct.dcm", stored, WindowCenter=40, WindowWidth=400)
    assert grey(path).tolist()[0] == [0, 0, 128, 255, 255]  # soft-tissue window: 40 HU is mid grey
    set_window("1000,4500")  # a wide window keeps the dark and bright ends apart
    wide = grey(path)[0]
    assert 0 < wide[0] < wide[1] < wide[2] < wide[3] < wide[4] < 255
    assert grey(path.read_bytes()).tolist() == grey(path).tolist()  # uploads are recognised by their DICM header


def test_dicom_without_window_uses_its_range_and_monochrome1_is_inverted(tmp_path):
    normal = grey(write_ct(tmp_path / "a.dcm", hu_ramp()))
    inverted = grey(write_ct(tmp_path / "b.dcm", hu_ramp(), photometric="MONOCHROME1"))
    assert normal[0, 0] == 0 and normal[0, -1] == 255
    assert (inverted == 255 - normal).all()
    assert load_image(tmp_path / "a.dcm").size == (64, 8)


def test_multi_frame_dicom_and_multi_page_tiff_yield_one_image_per_frame(tmp_path):
    write_ct(tmp_path / "cine.dcm", np.stack([hu_ramp(), hu_ramp()[:, ::-1], hu_ramp()]))
    pages = [Image.fromarray(np.full((6, 10), 20000 * k, np.uint16)) for k in range(3)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    found = [p.name for p in iter_sources(tmp_path)]
    assert found == ["cine.dcm#0", "cine.dcm#1", "cine.dcm#2", "stack.tif#0", "stack.tif#1", "stack.tif#2"]
    assert grey(tmp_path / "cine.dcm#1")[0, 0] == 255 and grey(tmp_path / "cine.dcm#0")[0, 0] == 0
    assert [int(grey(tmp_path / f"stack.tif#{k}")[0, 0]) for k in range(3)] == [0, 78, 156]  # 16-bit pages scaled
    with pytest.raises(ImageDecodeError, match=r"stack.tif#5: page 5 does not exist \(the file has 3\)"):
        load_image(tmp_path / "stack.tif#5")
    with pytest.raises(ImageDecodeError, match="frame 3 does not exist"):
        load_image(tmp_path / "cine.dcm#3")


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode.startswith("I;16")
    assert grey(tmp_path / "x.png").tolist() == [[0, 128, 255]]


def test_broken_medical_files_get_one_line_errors(tmp_path):
    data = write_ct(tmp_path / "ok.dcm", hu_ramp()).read_bytes()
    (tmp_path / "short.dcm").write_bytes(data[: len(data) - 500])
    (tmp_path / "text.dcm").write_text("not a scan")
    nibabel.save(nibabel.Nifti1Image(np.zeros((8, 8, 3), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    (tmp_path / "short.nii.gz").write_bytes((tmp_path / "v.nii.gz").read_bytes()[:60])
    cases = {"short.dcm": "cannot decode the DICOM pixel data", "text.dcm": "not a DICOM file",
             "short.nii.gz": "corrupt or truncated NIfTI", "v.nii.gz#9": "slice 9 does not exist"}  # fmt: skip
    for name, problem in cases.items():
        with pytest.raises(ImageDecodeError) as err:
            load_image(tmp_path / name)
        message = str(err.value)
        assert message.startswith(str(tmp_path / name)) and problem in message and "\n" not in message


def write_volumes(root: Path, cases: int = 3, depth: int = 4, size: int = 48) -> Path:
    """Medical Segmentation Decathlon layout: ``imagesTr/*.nii.gz`` CT volumes, ``labelsTr/*.nii.gz`` labels."""
    rng = np.random.default_rng(0)
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    for c in range(cases):
        ct = rng.normal(-800, 30, (size, size, depth)).astype(np.float32)  # air-like background (HU)
        label = np.zeros((size, size, depth), np.uint8)
        for k in range(depth):
            r = 6 + 2 * k + c
            disc = (yy - size // 2) ** 2 + (xx - size // 2 + c) ** 2 < r * r
            label[..., k][disc] = 1
            ct[..., k][disc] = rng.normal(60, 10, int(disc.sum()))  # soft tissue
        nibabel.save(nibabel.Nifti1Image(ct, np.eye(4)), root / "imagesTr" / f"case{c}.nii.gz")
        nibabel.save(nibabel.Nifti1Image(label, np.eye(4)), root / "labelsTr" / f"case{c}.nii.gz")
    return root


def test_nifti_volumes_become_slices_with_masks(tmp_path):
    root = write_volumes(tmp_path / "ct", cases=2, depth=3)
    data = find_semantic_data(root, val_fraction=0.5)
    items = data.train + data.val
    assert sorted(it.image.name for it in items) == [f"case{c}.nii.gz#{k}" for c in range(2) for k in range(3)]
    assert data.class_map.names == ["background", "foreground"]
    cases = [{it.image.name.split("#")[0] for it in part} for part in (data.train, data.val)]
    assert len(cases[0]) == len(cases[1]) == 1 and cases[0] != cases[1]  # a volume's slices stay in one split
    assert not any("masks have no image" in n for n in data.notes)
    item = next(it for it in items if it.image.name == "case1.nii.gz#2")
    image, mask = np.asarray(load_image(item.image)), read_mask(item, data.class_map)
    assert image.shape[:2] == mask.shape == (48, 48)
    assert image[mask == 1].mean() > image[mask == 0].mean() + 100  # tissue bright, air dark, same pixels
    (root / "labelsTr" / "case0.nii.gz").unlink()
    nibabel.save(nibabel.Nifti1Image(np.zeros((48, 48, 2), np.uint8), np.eye(4)), root / "labelsTr" / "case0.nii.gz")
    with pytest.raises(Exception, match="2 slices but its image"):
        find_semantic_data(root)


@pytest.mark.slow
def test_train_on_dicom_with_a_window_then_predict_skips_the_broken_file(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("val", 4)):
        for name, hu in (("fat", -100), ("bone", 700)):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                write_ct(folder / f"{i}.dcm", np.clip(rng.normal(hu + 1024, 40, (16, 16)), 0, 4095))
    proc = pixelmind("train", "--task", "classify", "--data", str(tmp_path / "data"), "--epochs", "2",
                     "--imgsz", "16", "--set", "window=300,1200", "--project", str(tmp_path / "runs"), "--json",
                     cwd=tmp_path)  # fmt: skip
    weights = Path(last_json(ok(proc))["run_dir"]) / "weights" / "best.safetensors"
    from pixelmind.engine.checkpoint import load_weights

    assert load_weights(weights)[1].extra["window"] == "300,1200"
    pool = tmp_path / "pool"
    pool.mkdir()
    write_ct(pool / "a.dcm", np.full((16, 16), 700 + 1024))
    (pool / "b.dcm").write_bytes((pool / "a.dcm").read_bytes()[:-300])
    proc = ok(pixelmind("predict", "--weights", str(weights), "--source", str(pool), "--out", str(tmp_path / "p"), cwd=tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "p" / "results.jsonl").read_text().splitlines()]
    assert [r["source"].rsplit("/", 1)[1] for r in rows] == ["a.dcm", "b.dcm"]
    assert rows[0]["label"] == "bone" and "cannot decode the DICOM pixel data" in rows[1]["error"]


@pytest.mark.slow
def test_segment_trains_on_nifti_volumes(tmp_path):
    root = write_volumes(tmp_path / "ct", cases=3, depth=4)
    proc = pixelmind("train", "--task", "segment", "--data", str(root), "--model", "unet_s", "--imgsz", "48",
                     "--batch", "4", "--workers", "0", "--epochs", "1", "--set", "window=40,400",
                     "--project", str(tmp_path / "runs"), "--json", cwd=tmp_path)  # fmt: skip
    metrics = last_json(ok(proc))
    assert "miou" in metrics and Path(metrics["run_dir"], "weights", "best.safetensors").is_file()
