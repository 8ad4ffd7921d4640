"""Box-aware training augmentation: flips/transposes, the zoom and the mosaic keep every box on its object."""

import torch

from pixelmind.config import TrainConfig
from pixelmind.tasks.detect.data import DetectionDataset, flip_square, letterbox, load_detect_data, mosaic


def white_square_image(size: int = 40, box=(5, 10, 30, 18)):
    img = torch.zeros(3, size, size, dtype=torch.uint8)
    x0, y0, x1, y1 = box
    img[:, y0:y1, x0:x1] = 255
    return img, torch.tensor([list(map(float, box))])


def covered_by_white(canvas: torch.Tensor, boxes: torch.Tensor) -> list[float]:
    """Share of bright pixels inside each box (1.0 = the box lies on the object; resized edges blur; the mosaic canvas is grey 114)."""
    out = []
    for x0, y0, x1, y1 in boxes.round().int().tolist():
        crop = canvas[0, y0:y1, x0:x1]
        out.append(float((crop > 150).float().mean()) if crop.numel() else 0.0)
    return out


def test_flips_and_transposes_move_boxes_with_pixels():
    img, box = white_square_image()
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        out, moved = flip_square(img, box, d4=True)
        assert min(covered_by_white(out, moved)) > 0.95
        seen.add(tuple(moved[0].round().int().tolist()))
    assert len(seen) == 8  # all symmetries of the square occur
    torch.manual_seed(0)
    assert all(flip_square(img, box)[1][0, 1] == 10 for _ in range(10))  # y stays  # no vertical move without d4


def test_mosaic_boxes_stay_on_their_objects():
    for seed in range(20):
        torch.manual_seed(seed)
        parts = [(*white_square_image(40 + 8 * k), torch.tensor([k])) for k in range(4)]
        parts = [(im, b, lab) for im, b, lab in parts]
        canvas, boxes, labels = mosaic(parts, 64)
        assert canvas.shape == (3, 64, 64) and canvas.dtype == torch.uint8
        assert len(boxes) == len(labels) >= 1
        assert boxes.min() >= 0 and boxes.max() <= 64
        assert min(covered_by_white(canvas, boxes)) > 0.6
        # no object is lost unless most of it fell off the canvas
        visible = (canvas[0] > 150).sum().item()
        assert visible <= sum(((b[2] - b[0]) * (b[3] - b[1])).item() for b in boxes) / 0.2 + 1


def test_dataset_with_mosaic_on_shapes():
    bundle = load_detect_data(TrainConfig(task="detect", data="shapes", imgsz=64, limit=8, mosaic=1.0))
    torch.manual_seed(0)
    counts = [len(bundle.train[i][1]["boxes"]) for i in range(8)]
    plain = load_detect_data(TrainConfig(task="detect", data="shapes", imgsz=64, limit=8))
    torch.manual_seed(0)
    plain_counts = [len(plain.train[i][1]["boxes"]) for i in range(8)]
    assert sum(counts) > sum(plain_counts)  # four images' objects (minus those cut off) per sample


def test_letterbox_crops_a_zoomed_in_image_at_negative_offsets():
    img, _ = white_square_image(40, (0, 0, 40, 40))  # all white
    canvas, f = letterbox(img, 64, 2.0, (-16, -24))  # 128 x 128 resized, its rows 16.. and columns 24.. shown
    assert f == 3.2 and bool((canvas > 150).all())
    canvas, _ = letterbox(img, 64, 0.5, (40, 50))  # 32 x 32 placed at (40, 50): what passes the edge is cut
    assert int((canvas[0] > 150).sum()) == 24 * 14


def test_zoomed_in_training_samples_keep_boxes_on_their_objects_and_drop_cut_ones():
    img, box = white_square_image(40, (4, 4, 12, 12))  # one object near the top-left corner
    img[:, 20:36, 24:36] = 255  # and a second one further in
    two = torch.cat([box, torch.tensor([[24.0, 20, 36, 36]])])
    read = lambda i: (img.permute(1, 2, 0).numpy(), two.numpy(), [0, 1], [False, False])  # noqa: E731
    ds = DetectionDataset(1, read, 64, (0.0,) * 3, (1.0,) * 3, train=True, scale=(1.5, 1.5), colour=False)
    kinds = set()
    for seed in range(30):
        torch.manual_seed(seed)
        image, target = ds[0]
        canvas = (image * 255).round().to(torch.uint8)
        boxes = target["boxes"]
        assert boxes.shape[0] == len(target["labels"]) and bool((boxes >= 0).all() and (boxes <= 64).all())
        assert min(covered_by_white(canvas, boxes), default=1.0) > 0.9
        kinds.add(len(boxes))
    assert kinds >= {1, 2}  # crops that cut an object off (dropped) and crops that keep both
