"""Built-in data sets that need no download: real images shipped inside installed packages.

Example:
    >>> images, labels, names = digits()
    >>> tuple(images.shape), len(names)
    ((1797, 1, 8, 8), 10)
"""

from __future__ import annotations

import torch


def digits() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels) as uint8 ``[N, 1, 8, 8]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round()).to(torch.uint8).unsqueeze(1)
    return images, torch.from_numpy(d.target).long(), [str(i) for i in range(10)]


#: built-in labelled data sets for classification
BUILTIN = {"digits": digits}


#: scikit-image's bundled natural photos (in its wheel; nothing is downloaded), for enhancement and compression.
PHOTO_NAMES = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "ihc", "moon", "motorcycle_left", "motorcycle_right", "page", "retina",
    "rocket", "text",
)  # fmt: skip


def photo_paths() -> list:
    """Paths of scikit-image's bundled photos (grey and colour, 0.1-1.4 megapixels each).

    Example:
        >>> len(photo_paths()) >= 15
        True
    """
    from pathlib import Path

    from pixelmind.errors import DataError

    try:
        import skimage.data
    except ImportError:
        raise DataError("photos: the built-in photos come with scikit-image (pip install scikit-image)") from None
    root = Path(skimage.data.__file__).parent
    paths = [p for name in PHOTO_NAMES for p in (root / f"{name}.png", root / f"{name}.jpg") if p.is_file()]
    if not paths:
        raise DataError(f"photos: no bundled photos found in {root}")
    return paths
