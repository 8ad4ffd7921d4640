"""Semantic segmentation data: layouts, class maps, mask decoding and load-time validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.data.instances import InstanceItem, rle_from_mask, write_coco_instances
from pixelmind.data.masks import (
    VOC_CLASSES,
    ClassMap,
    MaskItem,
    find_semantic_data,
    masks_summary,
    pixel_counts,
    read_class_map,
    read_mask,
    voc_palette,
)
from pixelmind.errors import DataError

ISBI = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "segmentation" / "isbi_membrane"


def _image(path: Path, w: int = 8, h: int = 6, suffix_exif: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    if suffix_exif is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = suffix_exif
        img.save(path, exif=exif)
    return path


def _mask(path: Path, values: np.ndarray, mode: str | None = None, palette: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(values) if mode is None else Image.fromarray(values.astype(np.uint16)).convert(mode)
    if palette:
        img.putpalette([v for c in voc_palette() for v in c])  # L -> P, as VOC's masks are stored
    img.save(path)
    return path


def _stripes(w: int = 8, h: int = 6, values=(0, 1, 2)) -> np.ndarray:
    """Vertical stripes: column x holds values[x % len(values)]."""
    return np.tile(np.array([values[x % len(values)] for x in range(w)], np.uint8), (h, 1))


# ---------------------------------------------------------------- class maps


def test_voc_palette_and_class_map_defaults():
    pal = voc_palette()
    assert pal[:4] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)] and pal[15] == (192, 128, 128)
    assert len(set(pal)) == 256
    cm = ClassMap(["a", "b", "c"])
    assert cm.colors == pal[:3] and cm.ignore_index == 255
    with pytest.raises(DataError, match="ignore_index 1"):
        ClassMap(["a", "b"], ignore_index=1)  # inside the class range
    with pytest.raises(DataError, match="1 colors"):
        ClassMap(["a", "b"], colors=[(1, 2, 3)])


def test_read_class_map_forms_and_errors(tmp_path):
    p = tmp_path / "classes.yaml"
    p.write_text(
        "names: [sky, road, car]\ncolors: {0: [0, 0, 255], 1: '#808080', 2: [255, 0, 0]}\nignore_index: 9\n"
    )
    cm = read_class_map(p)
    assert (
        cm.names == ["sky", "road", "car"]
        and cm.colors[:2] == [(0, 0, 255), (128, 128, 128)]
        and cm.ignore_index == 9
    )
    p.write_text("- bg\n- fg\n")
    assert read_class_map(p).names == ["bg", "fg"]
    for text, message in [
        ("names: {0: a, 2: b}\n", "names must have indices 0..1"),
        ("names: [a, b]\ncolors: [[0, 0, 300], [1, 1, 1]]\n", "colors must be"),
        ("names: [a]\ncolors: [[0, 0, 0], [1, 1, 1]]\n", "2 colors"),
        ("nothing: here\n", "not a class map"),
        ("names: [a\n", "not a class map"),
    ]:
        p.write_text(text)
        with pytest.raises(DataError, match=message) as err:
            read_class_map(p)
        assert str(err.value).startswith(f"{p}: ") and "\n" not in str(err.value)


# ---------------------------------------------------------------- layouts


def test_folders_layout_with_classes_yaml_and_pixel_counts(tmp_path):
    for split, names in (("train", ["a", "b", "c"]), ("val", ["d"])):
        for n in names:
            _image(tmp_path / split / "images" / f"{n}.jpg")
            _mask(tmp_path / split / "masks" / f"{n}.png", _stripes())
    (tmp_path / "classes.yaml").write_text("names: [bg, road, car]\n")
    d = find_semantic_data(tmp_path)
    assert d.layout == "folders" and [it.image.stem for it in d.train] == ["a", "b", "c"] and len(d.val) == 1
    assert d.class_map.names == ["bg", "road", "car"]
    assert pixel_counts(d, "train").tolist() == [3 * 18, 3 * 18, 3 * 12] and pixel_counts(
        d, "val"
    ).tolist() == [18, 18, 12]
    m = read_mask(d.train[0], d.class_map, image_size=(8, 6))
    assert m.dtype == np.uint8 and np.array_equal(m, _stripes())
    with pytest.raises(DataError, match="mask is 8x6 but its image .* is 6x8"):
        read_mask(d.train[0], d.class_map, image_size=(6, 8))


def test_pairs_layout_isbi_style_binary_masks_seeded_split_and_unlabelled_test(tmp_path):
    for i in range(10):
        _image(tmp_path / "train" / "image" / f"{i}.png", 8, 6)
        _mask(tmp_path / "train" / "label" / f"{i}.png", _stripes(values=(0, 255)))
        _image(tmp_path / "test" / f"{i}.png")
    a, b = find_semantic_data(tmp_path, 0.2, seed=0), find_semantic_data(tmp_path, 0.2, seed=0)
    assert a.layout == "pairs" and len(a.train) == 8 and len(a.val) == 2
    assert [it.image for it in a.val] == [it.image for it in b.val]
    assert not {it.image for it in a.train} & {it.image for it in a.val}
    assert a.class_map.names == ["background", "foreground"] and a.class_map.remap == {255: 1}
    assert np.array_equal(
        read_mask(a.val[0], a.class_map), _stripes(values=(0, 1))
    )  # 255 is foreground, not ignore
    assert any("test" in n and "not used" in n for n in a.notes)
    assert find_semantic_data(tmp_path / "train").layout == "pairs"  # pointing at train/ itself works too


def test_binary_masks_with_a_two_class_yaml_read_255_as_the_second_class(tmp_path):
    _image(tmp_path / "images" / "a.png")
    _mask(tmp_path / "masks" / "a.png", _stripes(values=(0, 255)))
    (tmp_path / "classes.yaml").write_text("names: [cell, membrane]\n")
    d = find_semantic_data(tmp_path, val_fraction=0)
    assert d.class_map.remap == {255: 1} and any("255 read as class 1 (membrane)" in n for n in d.notes)
    assert np.array_equal(read_mask(d.train[0], d.class_map), _stripes(values=(0, 1)))


def test_pairs_at_the_root_with_missing_and_orphan_masks_and_suffixes(tmp_path):
    for n in ("a", "b", "c"):
        _image(tmp_path / "img" / f"{n}.jpg")
    _mask(tmp_path / "mask" / "a.png", _stripes(values=(0, 1)))
    _mask(tmp_path / "mask" / "b_mask.png", _stripes(values=(1, 0)))
    _mask(tmp_path / "mask" / "zzz.png", _stripes(values=(1, 0)))
    d = find_semantic_data(tmp_path, val_fraction=0.5, seed=0)
    items = {it.image.stem: it for it in d.train + d.val}
    assert items["b"].mask.name == "b_mask.png" and items["c"].mask is None
    assert items["c"] in d.train  # images without masks stay in train, reported by the summary
    s = masks_summary(d)
    assert s["without_mask"]["train"] == 1 and s["images"]["train"] + s["images"]["val"] == 3
    assert s["pixel_share"] == {"background": 0.5, "foreground": 0.5}
    assert any("1 masks have no image" in n for n in s["notes"])


def test_index_masks_infer_classes_with_255_as_ignore(tmp_path):
    for n in ("a", "b"):
        _image(tmp_path / "images" / f"{n}.png")
        _mask(tmp_path / "masks" / f"{n}.png", _stripes(values=(0, 3, 255)))
    d = find_semantic_data(tmp_path)
    assert (
        d.class_map.names == ["class_0", "class_1", "class_2", "class_3"] and d.class_map.ignore_index == 255
    )
    m = read_mask(d.train[0], d.class_map)
    assert set(np.unique(m).tolist()) == {0, 3, 255}
    assert (pixel_counts(d, "train") + pixel_counts(d, "val")).tolist() == [
        36,
        0,
        0,
        36,
    ]  # ignore not counted


def test_voc_layout_palette_masks_and_image_sets(tmp_path):
    mask = _stripes(values=(0, 15, 255))  # person and the 255 ignore border
    for n in ("2007_000001", "2007_000002", "2007_000003"):
        _image(tmp_path / "JPEGImages" / f"{n}.jpg")
        _mask(tmp_path / "SegmentationClass" / f"{n}.png", mask, palette=True)
    _image(tmp_path / "JPEGImages" / "2007_999999.jpg")  # detection-only image: not listed
    sets = tmp_path / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("2007_000001\n2007_000002\n")
    (sets / "val.txt").write_text("2007_000003\n")
    d = find_semantic_data(tmp_path)
    assert d.layout == "voc" and len(d.train) == 2 and len(d.val) == 1
    assert d.class_map.names == list(VOC_CLASSES) and Image.open(d.train[0].mask).mode == "P"
    assert np.array_equal(read_mask(d.val[0], d.class_map), mask)
    counts = pixel_counts(d, "train")
    assert counts[0] == counts[15] == 2 * 18 and counts.sum() == 4 * 18
    (sets / "val.txt").write_text("2007_000003\n2007_000004\n")
    with pytest.raises(DataError, match=r"val.txt:2: '2007_000004' has no image"):
        find_semantic_data(tmp_path)


def test_rgb_masks_use_the_class_colours(tmp_path):
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)
    _image(tmp_path / "images" / "a.png")
    _mask(tmp_path / "masks" / "a.png", colours[_stripes()])
    (tmp_path / "classes.yaml").write_text(
        "names: [bg, red, green]\ncolors: [[0, 0, 0], [255, 0, 0], '#00ff00']\n"
    )
    d = find_semantic_data(tmp_path, val_fraction=0)
    assert np.array_equal(read_mask(d.train[0], d.class_map), _stripes())
    bad = colours[_stripes()]
    bad[0, 0] = (1, 2, 3)
    _mask(tmp_path / "masks" / "a.png", bad)
    with pytest.raises(DataError, match=r"a.png: mask colours \['#010203'\] are not in the class map"):
        find_semantic_data(tmp_path)
    (tmp_path / "classes.yaml").unlink()
    with pytest.raises(DataError, match="colour masks need a classes.yaml"):
        find_semantic_data(tmp_path)


def test_16_bit_masks_are_read_as_values(tmp_path):
    _image(tmp_path / "images" / "a.png")
    _mask(tmp_path / "masks" / "a.png", _stripes(values=(0, 1, 2)).astype(np.uint16), mode="I;16")
    assert Image.open(tmp_path / "masks" / "a.png").mode.startswith("I")
    d = find_semantic_data(tmp_path, val_fraction=0)
    assert np.array_equal(read_mask(d.train[0], d.class_map), _stripes())


def test_mask_size_must_match_the_upright_image(tmp_path):
    _image(tmp_path / "images" / "a.jpg", 8, 6, suffix_exif=6)  # stored 8x6, shown 6x8
    _mask(tmp_path / "masks" / "a.png", np.zeros((8, 6), np.uint8))
    assert find_semantic_data(tmp_path, val_fraction=0).train[0].mask.name == "a.png"
    _mask(tmp_path / "masks" / "a.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(DataError, match=r"masks/a.png: mask is 8x6 but its image .*images/a.jpg is 6x8"):
        find_semantic_data(tmp_path)


def test_values_outside_the_class_map_name_the_file(tmp_path):
    _image(tmp_path / "images" / "a.png")
    _mask(tmp_path / "masks" / "a.png", _stripes(values=(0, 1, 5)))
    (tmp_path / "classes.yaml").write_text("names: [bg, fg]\n")
    with pytest.raises(DataError, match=r"masks/a.png: mask values \[5\] are not in the class map") as err:
        find_semantic_data(tmp_path)
    assert "\n" not in str(err.value)


def test_missing_folders_and_no_pairs_are_explained(tmp_path):
    with pytest.raises(DataError, match="no segmentation data"):
        find_semantic_data(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path / 'images'}: no image files"):
        find_semantic_data(tmp_path)
    _image(tmp_path / "images" / "a.png")
    _mask(tmp_path / "masks" / "b.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(DataError, match="no image has a mask of the same file name"):
        find_semantic_data(tmp_path)
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "masks").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match=r"val: expected images/ and masks/"):
        find_semantic_data(tmp_path)


def test_corrupt_mask_file_is_a_data_error(tmp_path):
    _image(tmp_path / "images" / "a.png")
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="masks/a.png: corrupt or unreadable mask"):
        find_semantic_data(tmp_path)
    with pytest.raises(DataError, match="has no mask"):
        read_mask(MaskItem(tmp_path / "x.png", None), ClassMap(["a"]))


def test_coco_instances_are_painted_into_class_masks(tmp_path):
    img = _image(tmp_path / "train" / "a.png", 20, 10)
    _image(tmp_path / "train" / "b.png", 20, 10)
    crowd = np.zeros((10, 20), bool)
    crowd[8:, :] = True
    big = [[0, 0, 12, 0, 12, 8, 0, 8]]  # class 1, drawn under the small one whatever the file order
    small = [[2, 2, 6, 2, 6, 6, 2, 6]]  # class 0
    item = InstanceItem(
        img,
        20,
        10,
        np.zeros((3, 4), np.float32),
        np.array([0, 1, 1]),
        [small, big, rle_from_mask(crowd)],
        np.array([False, False, True]),
    )
    empty = InstanceItem(
        tmp_path / "train" / "b.png", 20, 10, np.zeros((0, 4)), np.zeros(0), [], np.zeros(0, bool)
    )
    write_coco_instances([item, empty], ["cat", "dog"], tmp_path / "annotations" / "instances_train.json")
    d = find_semantic_data(tmp_path, val_fraction=0.5)
    assert d.layout == "coco" and d.class_map.names == ["background", "cat", "dog"]
    a = next(it for it in d.train + d.val if it.image.name == "a.png")
    m = read_mask(a, d.class_map)
    expected = np.zeros((10, 20), np.uint8)
    expected[0:8, 0:12] = 2
    expected[2:6, 2:6] = 1
    expected[8:, :] = 255
    assert np.array_equal(m, expected)
    total = pixel_counts(d, "train") + pixel_counts(d, "val")
    assert total.tolist() == [(200 - 96 - 40) + 200, 16, 96 - 16]  # crowd rows ignored; b.png all background


@pytest.mark.skipif(not ISBI.is_dir(), reason=f"real data set not present at {ISBI}")
def test_isbi_membrane_real_data():
    d = find_semantic_data(ISBI, val_fraction=0.2, seed=0)
    assert d.layout == "pairs" and len(d.train) == 24 and len(d.val) == 6
    assert d.class_map.names == ["background", "foreground"]
    m = read_mask(d.val[0], d.class_map)
    assert m.shape == (512, 512) and set(np.unique(m).tolist()) == {0, 1}
    share = masks_summary(d)["pixel_share"]
    assert 0.1 < share["background"] < 0.4  # membranes (value 0) are a minority of the pixels
