"""Whole-batch augmentation of uint8 images (the in-memory fast path of classification)."""

import torch

from pixelmind.data.batch_transforms import BatchAugment, normalize_uint8

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _batch(b=6, size=12):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def test_normalize_matches_the_formula():
    x = _batch()
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(normalize_uint8(x, MEAN, STD), expected, atol=1e-6)


def test_no_crop_no_flip_is_the_identity():
    x = _batch()
    aug = BatchAugment(MEAN, STD, hflip=False, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(aug(x), normalize_uint8(x, MEAN, STD), atol=1e-5)


def test_flip_only_mirrors_some_samples_exactly():
    x = _batch(b=32)
    torch.manual_seed(1)
    out = BatchAugment(MEAN, STD, hflip=True, scale=(1.0, 1.0), ratio=(1.0, 1.0))(x)
    ref = normalize_uint8(x, MEAN, STD)
    same = [torch.allclose(o, r, atol=1e-5) for o, r in zip(out, ref)]
    mirrored = [torch.allclose(o, r.flip(-1), atol=1e-5) for o, r in zip(out, ref)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 0 < sum(mirrored) < 32


def test_crops_are_seeded_and_keep_the_shape():
    x = _batch()
    aug = BatchAugment(MEAN, STD, hflip=True)
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    b = aug(x)
    assert a.shape == (6, 3, 12, 12) and torch.equal(a, b)
    assert not torch.allclose(a, normalize_uint8(x, MEAN, STD))
