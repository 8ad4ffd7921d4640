"""load_image: every Pillow mode becomes upright 8-bit RGB; every bad file is one clear ImageDecodeError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pixelmind.data.decode import ImageDecodeError, is_image_file, load_image
from pixelmind.errors import DataError


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _expect_error(source, fragment: str, **kwargs) -> str:
    """load_image must raise ImageDecodeError, one line, naming the file (``fragment``)."""
    with pytest.raises(ImageDecodeError) as info:
        load_image(source, **kwargs)
    msg = str(info.value)
    assert fragment in msg, msg
    assert "\n" not in msg and "\r" not in msg, msg
    assert isinstance(info.value, DataError)  # the CLI prints every DataError as one line
    return msg


# ---------------------------------------------------------------- good images


def test_png_roundtrip_keeps_pixels(tmp_path):
    img = _noise(7, 5)
    p = tmp_path / "a.png"
    img.save(p)
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (7, 5)
    assert np.array_equal(np.asarray(out), np.asarray(img))


def test_jpeg_is_rgb_and_close(tmp_path):
    img = Image.new("RGB", (16, 12), (200, 40, 90))
    p = tmp_path / "a.jpg"
    img.save(p, quality=95)
    out = load_image(str(p))  # str paths work as well as Path
    assert out.mode == "RGB" and out.size == (16, 12)
    assert np.abs(np.asarray(out, dtype=int) - [200, 40, 90]).max() <= 4


def test_grey_becomes_three_equal_channels(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(np.array([[0, 77], [200, 255]], dtype=np.uint8)).save(p)
    out = np.asarray(load_image(p))
    assert out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 77], [200, 255]]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_la_transparent_is_white_and_opaque_keeps_grey(tmp_path):
    p = tmp_path / "la.png"
    img = Image.new("LA", (2, 1), (0, 0))  # black but fully transparent
    img.putpixel((1, 0), (50, 255))  # opaque dark grey
    img.save(p)
    out = np.asarray(load_image(p))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [50, 50, 50]


def test_rgba_is_composited_over_white(tmp_path):
    p = tmp_path / "a.png"
    img = Image.new("RGBA", (3, 1), (255, 0, 0, 0))  # transparent red -> white
    img.putpixel((1, 0), (0, 0, 255, 255))  # opaque blue stays blue
    img.putpixel((2, 0), (0, 0, 0, 128))  # half-transparent black -> mid grey
    img.save(p)
    out = np.asarray(load_image(p))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 0, 255]
    assert all(abs(int(v) - 127) <= 1 for v in out[0, 2])


def test_palette_with_transparency(tmp_path):
    p = tmp_path / "p.png"
    img = Image.new("P", (2, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))  # index 0 red, index 1 blue
    img.putpixel((0, 0), 1)
    img.save(p, transparency=0)  # index 0 (red) is transparent
    assert Image.open(p).mode == "P"
    out = np.asarray(load_image(p))
    assert out[0, 0].tolist() == [0, 0, 255]  # the opaque blue pixel
    assert out[1, 1].tolist() == [255, 255, 255]  # transparent red became white background, not red


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "c.jpg"
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    assert Image.open(p).mode == "CMYK"
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (6, 4)
    r, g, b = (int(v) for v in np.asarray(out)[0, 0])
    assert r > 230 and g < 30 and b < 30


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "g16.png"
    arr = np.array([[0, 65535, 25700], [32768, 1000, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I;16")
    out = np.asarray(load_image(p))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    # 65535 -> 255 and proportional values in between; clipping would give 255 for all non-zero values
    assert out[..., 0].tolist() == [[0, 255, 100], [128, 4, 255]]


def test_exif_orientation_is_applied(tmp_path):
    p = tmp_path / "rot.jpg"
    img = Image.new("RGB", (20, 10), (10, 20, 30))
    img.paste((250, 250, 250), (0, 0, 5, 5))  # a bright top-left corner to follow the rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    img.save(p, exif=exif.tobytes(), quality=95)
    assert Image.open(p).size == (20, 10)
    out = load_image(p)
    assert out.size == (10, 20)
    arr = np.asarray(out, dtype=int)
    # after a 90 degree clockwise turn the stored top-left corner is at the top right
    assert arr[1, -2].min() > 200 and arr[1, 1].max() < 100


def test_bytes_input(tmp_path):
    buf = io.BytesIO()
    _noise(9, 4).save(buf, format="PNG")
    out = load_image(buf.getvalue())
    assert out.mode == "RGB" and out.size == (9, 4)


def test_image_at_the_pixel_limit_is_accepted(tmp_path):
    p = tmp_path / "ok.png"
    _noise(10, 10).save(p)
    assert load_image(p, max_pixels=100).size == (10, 10)


def test_is_image_file():
    assert is_image_file("a/B.JPG") and is_image_file("x.png") and is_image_file("x.webp")
    assert not is_image_file("labels.csv") and not is_image_file("png")


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png")])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_files(tmp_path, fmt, ext, keep):
    buf = io.BytesIO()
    _noise(64, 64).save(buf, format=fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut_{int(keep * 100)}.{ext}"
    p.write_bytes(data[: int(len(data) * keep)])
    _expect_error(p, p.name)


def test_header_only_png(tmp_path):
    buf = io.BytesIO()
    _noise(8, 8).save(buf, format="PNG")
    p = tmp_path / "head.png"
    p.write_bytes(buf.getvalue()[:30])
    _expect_error(p, "head.png")


def test_random_garbage(tmp_path):
    p = tmp_path / "garbage.jpg"
    p.write_bytes(np.random.default_rng(0).bytes(2000))
    _expect_error(p, "garbage.jpg")


def test_text_file_with_image_extension(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("line one\nline two\n")
    _expect_error(p, "notes.png")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _expect_error(p, "empty.png")


def test_missing_file(tmp_path):
    msg = _expect_error(tmp_path / "nope.png", "nope.png")
    assert "not found" in msg


def test_directory_is_not_an_image(tmp_path):
    d = tmp_path / "folder.png"
    d.mkdir()
    _expect_error(d, "folder.png")


def test_over_max_pixels_is_refused(tmp_path):
    p = tmp_path / "big.png"
    _noise(20, 20).save(p)
    msg = _expect_error(p, "big.png", max_pixels=100)
    assert "400" in msg and "100" in msg


def test_bad_bytes_use_the_given_name_or_a_placeholder():
    _expect_error(b"\x89PNG\r\n\x1a\n broken", "upload.png", name="upload.png")
    _expect_error(b"", "<bytes>")


def test_corrupt_inner_data_with_valid_header(tmp_path):
    # keep the header and the end of the file but scramble the compressed data in between
    buf = io.BytesIO()
    _noise(32, 32).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[60:-20] = np.random.default_rng(1).bytes(len(data) - 80)
    p = tmp_path / "scrambled.png"
    p.write_bytes(bytes(data))
    _expect_error(p, "scrambled.png")
