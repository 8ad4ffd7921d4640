"""Medical and scientific image files: DICOM, NIfTI volumes and multi-page TIFF, for the shared decoder.

- DICOM (pydicom): raw 12/16-bit values get the file's rescale slope/intercept (CT: Hounsfield units),
  then the intensity window (the file's WindowCenter/WindowWidth, or one given as ``"centre,width"``,
  e.g. ``"40,400"`` for CT soft tissue), and only then become 8-bit. MONOCHROME1 is inverted; colour
  DICOM is converted to RGB. Without a window anywhere, the image's own min..max is used.
- NIfTI (nibabel, ``.nii``/``.nii.gz``): each slice along the third axis is one image (rotated to the
  usual radiological view); without a window, the volume's 0.5..99.5 percentile range, so every
  slice of a volume shares one intensity scale. Label volumes give integer class masks.
- Multi-page TIFF and multi-frame DICOM: every page/frame is an image.

A page, frame or slice is named by the file path plus ``#k`` (0-based), e.g. ``scan.nii.gz#12``; an
existing file whose name really ends in ``#k`` is still that file.

Example:
    >>> parse_window("40,400"), parse_window(None)
    ((40.0, 400.0), None)
    >>> import os, tempfile
    >>> scan = os.path.join(tempfile.mkdtemp(), "scan.tif"); open(scan, "wb").close()
    >>> split_frame(scan + "#3")[1], split_frame("no-such.tif#3")[1]
    (3, None)
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.errors import ConfigError

DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_FRAME = re.compile(r"^(.*)#(\d+)$")
_window: tuple[float, float] | None = None  # the process-wide window (set_window); a model's config sets it


class MedicalDecodeError(ValueError):
    """A medical file cannot be used; ``load_image`` turns it into its one-line error."""


def parse_window(value: Any) -> tuple[float, float] | None:
    """``"centre,width"`` (or a pair) as floats; width must be positive."""
    if value is None or value == "":
        return None
    try:
        parts = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 2 or parts[1] <= 0:
        raise ConfigError(f"window: expected 'centre,width' with width > 0 (e.g. 40,400), got {value!r}")
    return parts[0], parts[1]


def set_window(value: Any) -> None:
    """Use this intensity window for DICOM and NIfTI images decoded from now on (None: from each file)."""
    global _window
    _window = parse_window(value)


def is_dicom(path: str | Path) -> bool:
    return str(path).lower().endswith(DICOM_SUFFIXES)


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def looks_like_dicom(data: bytes) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble (uploads have no file name)."""
    return data[128:132] == b"DICM"


def split_frame(path: str | Path) -> tuple[Path, int | None]:
    """``(file, k)`` for ``file#k`` when that file exists and the whole name does not; else ``(path, None)``."""
    path = Path(path)
    m = _FRAME.match(str(path))
    if m and not path.exists() and Path(m.group(1)).is_file():
        return Path(m.group(1)), int(m.group(2))
    return path, None


def frame_count(path: str | Path) -> int:
    """Pages of a TIFF, frames of a DICOM, slices of a NIfTI volume; 1 for anything else or unreadable."""
    try:
        if is_nifti(path):
            shape = _nifti(str(path)).shape
            return int(shape[2]) if len(shape) >= 3 else 1
        if is_dicom(path):
            import pydicom

            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
            return max(int(getattr(ds, "NumberOfFrames", 1) or 1), 1)
        if str(path).lower().endswith((".tif", ".tiff")):
            from PIL import Image

            with Image.open(path) as img:
                return max(int(getattr(img, "n_frames", 1)), 1)
    except Exception:  # noqa: BLE001 - unreadable files are reported when they are decoded
        return 1
    return 1


def window_to_uint8(values: np.ndarray, window: tuple[float, float] | None, invert: bool = False) -> np.ndarray:
    """The DICOM linear VOI window (PS3.3 C.11.2.1.2) to 0..255; no window: the values' own range.

    Example:
        >>> window_to_uint8(np.array([-1000.0, 40.0, 1000.0]), (40, 400)).tolist()
        [0, 128, 255]
    """
    values = values.astype(np.float64, copy=False)
    if window is None:
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        scaled = (values - lo) / max(hi - lo, 1e-12)
    else:
        centre, width = window
        scaled = (values - (centre - 0.5)) / max(width - 1, 1e-12) + 0.5
    out = np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def _first(value: Any) -> float | None:
    """The first of a multi-valued DICOM attribute (WindowCenter may list several windows)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def read_dicom(source: str | Path | bytes, frame: int | None, max_pixels: int) -> np.ndarray:
    """An 8-bit ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) array of one DICOM frame."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except pydicom.errors.InvalidDicomError:
        raise MedicalDecodeError("not a DICOM file (no DICM header)") from None
    except Exception as err:  # noqa: BLE001 - truncated headers fail in many ways
        raise MedicalDecodeError(f"corrupt DICOM header ({_reason(err)})") from None
    if "PixelData" not in ds:
        raise MedicalDecodeError("DICOM file without pixel data (a report or structured document?)")
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if rows * cols > max_pixels:
        raise MedicalDecodeError(f"{cols}x{rows} = {rows * cols:,} pixels is over the limit of {max_pixels:,}")
    frames = max(int(getattr(ds, "NumberOfFrames", 1) or 1), 1)
    if frame is not None and not 0 <= frame < frames:
        raise MedicalDecodeError(f"frame {frame} does not exist (the file has {frames})")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - truncated pixel data, or a compression without its decoder
        raise MedicalDecodeError(f"cannot decode the DICOM pixel data ({_reason(err)})") from None
    if frames > 1:
        pixels = pixels[frame or 0]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:  # colour: RGB, or YBR that pydicom converts
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        return pixels.astype(np.uint8) if pixels.dtype == np.uint8 else window_to_uint8(pixels, None)
    values = apply_modality_lut(pixels, ds)  # stored values -> rescaled (e.g. HU), still full precision
    window = _window
    if window is None:
        centre, width = _first(getattr(ds, "WindowCenter", None)), _first(getattr(ds, "WindowWidth", None))
        window = (centre, width) if centre is not None and width and width > 0 else None
    return window_to_uint8(values, window, invert=photometric == "MONOCHROME1")


@lru_cache(maxsize=2)
def _nifti_cached(path: str, mtime_ns: int) -> Any:
    import nibabel

    return nibabel.load(path)


def _nifti(path: str) -> Any:
    return _nifti_cached(path, Path(path).stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _volume(path: str, mtime_ns: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The whole volume (decompressed once: slices of a .nii.gz are read many times) and its robust range."""
    data = np.asarray(_nifti(path).dataobj)
    lo, hi = np.percentile(data, [0.5, 99.5]) if data.size else (0.0, 1.0)
    return data, (float(lo), float(hi))


def nifti_slice(path: str | Path, k: int | None, max_pixels: int, as_mask: bool = False) -> np.ndarray:
    """Slice ``k`` (default 0) along the third axis: 8-bit windowed image, or integer mask values."""
    path = str(path)
    try:
        image = _nifti(path)
        shape = image.shape
        if len(shape) < 2:
            raise MedicalDecodeError(f"a {len(shape)}-D NIfTI array is not an image")
        if shape[0] * shape[1] > max_pixels:
            raise MedicalDecodeError(f"slices of {shape[0]}x{shape[1]} pixels are over the limit of {max_pixels:,}")
        depth = int(shape[2]) if len(shape) >= 3 else 1
        k = k or 0
        if not 0 <= k < depth:
            raise MedicalDecodeError(f"slice {k} does not exist (the volume has {depth})")
        data, (lo, hi) = _volume(path, Path(path).stat().st_mtime_ns)
    except MedicalDecodeError:
        raise
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds for bad headers and short files
        raise MedicalDecodeError(f"corrupt or truncated NIfTI file ({_reason(err)})") from None
    plane = data[:, :, k] if data.ndim >= 3 else data
    plane = np.rot90(plane[(slice(None), slice(None)) + (0,) * (plane.ndim - 2)])  # 4-D: first time point
    if as_mask:
        if not np.all(np.equal(np.mod(plane, 1), 0)):
            raise MedicalDecodeError("a label volume must hold whole numbers (class indices)")
        return np.ascontiguousarray(plane.astype(np.uint8 if plane.max(initial=0) < 256 and plane.min(initial=0) >= 0 else np.int64))
    window = _window or ((lo + hi) / 2, max(hi - lo, 1e-6))
    return np.ascontiguousarray(window_to_uint8(plane, window))


def frame_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of a DICOM or NIfTI image (or one of its frames) from the header."""
    path, _ = split_frame(path)
    if is_nifti(path):
        shape = _nifti(str(path)).shape
        return int(shape[0]), int(shape[1])  # rot90 swaps the two axes
    import pydicom

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    return int(ds.Columns), int(ds.Rows)


def _reason(err: BaseException) -> str:
    return (str(err) or type(err).__name__).splitlines()[0]
