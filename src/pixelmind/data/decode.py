"""Safe image decoding for every task.

Every image that enters pixelmind goes through :func:`load_image`: EXIF orientation is
applied, grey / RGBA / palette / CMYK / 16-bit images become 8-bit RGB, images over a pixel
limit are refused before their pixels are decoded (decompression bombs), and any corrupt
or truncated file raises :class:`ImageDecodeError` naming the file and the problem. DICOM, NIfTI
slices and TIFF pages (``file#k``) go through :mod:`pixelmind.data.medical` first.

Example:
    >>> from PIL import Image
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.new("LA", (4, 3)).save(p)
    >>> load_image(p).mode, load_image(p).size
    ('RGB', (4, 3))
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pixelmind.data.medical import MedicalDecodeError, is_dicom, is_nifti, looks_like_dicom, split_frame
from pixelmind.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".avif",
                    ".dcm", ".dicom", ".nii", ".nii.gz")  # fmt: skip
DEFAULT_MAX_PIXELS = 100_000_000


class ImageDecodeError(DataError):
    """An image file cannot be used; the message names the file and the problem."""


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, scaling 16/32-bit data rather than clipping it."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        else:
            arr = arr / hi * 255.0
        return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        # Composite over white: transparent regions in icons and scans are background.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Decode an image file or bytes into an upright 8-bit RGB PIL image.

    Args:
        source: a path or the file's bytes.
        max_pixels: images with more pixels are refused before decoding.
        name: how to call the image in errors (defaults to the path, or "<bytes>").

    Raises:
        ImageDecodeError: missing, corrupt, truncated, too large or not an image.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    frame = None
    if not isinstance(source, bytes):
        source, frame = split_frame(source)
    if is_nifti(source) or is_dicom(source) or (isinstance(source, bytes) and looks_like_dicom(source)):
        return _load_medical(source, frame, max_pixels, label)
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise ImageDecodeError(f"{label}: file not found") from None
    except OSError as err:
        raise ImageDecodeError(f"{label}: cannot open ({err.strerror or err})") from None
    with fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns on odd EXIF/ICC chunks; we report real failures only
        try:
            img = Image.open(fp)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageDecodeError(f"{label}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}")
            if frame is not None:  # a page of a multi-page TIFF
                pages = getattr(img, "n_frames", 1)
                if frame >= pages:
                    raise ImageDecodeError(f"{label}: page {frame} does not exist (the file has {pages})")
                img.seek(frame)
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
        except ImageDecodeError:
            raise
        except Image.DecompressionBombError:
            raise ImageDecodeError(f"{label}: too many pixels (decompression bomb guard)") from None
        except Image.UnidentifiedImageError:
            raise ImageDecodeError(f"{label}: not an image or an unsupported format") from None
        except Exception as err:  # noqa: BLE001 - any decoder failure is the file's fault
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ImageDecodeError(f"{label}: corrupt or truncated image ({reason})") from None


def _load_medical(source: Path | bytes, frame: int | None, max_pixels: int, label: str) -> Image.Image:
    from pixelmind.data.medical import nifti_slice, read_dicom

    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ImageDecodeError(f"{label}: file not found")
    try:
        arr = nifti_slice(source, frame, max_pixels) if is_nifti(source) else read_dicom(source, frame, max_pixels)
    except MedicalDecodeError as err:
        raise ImageDecodeError(f"{label}: {err}") from None
    return Image.fromarray(arr).convert("RGB")
