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


BUILTIN = {"digits": digits}
