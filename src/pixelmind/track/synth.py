"""A seeded moving-shapes video and its MOT ground truth, for tests and demos of tracking.

Squares, discs and triangles of distinct colours move at constant speed and bounce off the borders;
objects cross each other, so a tracker must keep ids through overlaps.

Example:
    >>> frames, truth = moving_shapes(frames=3, objects=2, size=64, seed=0)
    >>> len(frames), sorted(truth), [tid for tid, _ in truth[1]]
    (3, [1, 2, 3], [1, 2])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(230, 60, 60), (60, 200, 80), (70, 110, 240), (240, 200, 40), (200, 80, 220), (40, 210, 210)]


def moving_shapes(frames: int = 60, objects: int = 4, size: int = 128, seed: int = 0) -> tuple[list[Image.Image], dict]:
    """``(frames as RGB images, {frame (1-based): [(id, xyxy)]})``."""
    rng = np.random.default_rng(seed)
    side = rng.uniform(0.12, 0.2, objects) * size
    pos = rng.uniform(0, size - side[:, None], (objects, 2))
    vel = rng.uniform(1.0, 3.0, (objects, 2)) * rng.choice([-1, 1], (objects, 2)) * size / 128
    kinds = rng.integers(0, 3, objects)
    out, truth = [], {}
    for k in range(frames):
        img = Image.fromarray(rng.integers(20, 50, (size, size, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        rows = []
        for i in range(objects):
            x, y = pos[i]
            box = [float(x), float(y), float(x + side[i]), float(y + side[i])]
            colour = COLOURS[i % len(COLOURS)]
            if kinds[i] == 0:
                draw.rectangle(box, fill=colour)
            elif kinds[i] == 1:
                draw.ellipse(box, fill=colour)
            else:
                draw.polygon([(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])], fill=colour)
            rows.append((i + 1, [round(v, 2) for v in box]))
        out.append(img)
        truth[k + 1] = rows
        pos += vel
        for d in range(2):  # bounce off the borders
            hit = (pos[:, d] < 0) | (pos[:, d] > size - side)
            vel[hit, d] *= -1
            pos[:, d] = np.clip(pos[:, d], 0, size - side)
    return out, truth


def save_moving_shapes(folder: str | Path, frames: int = 60, objects: int = 4, size: int = 128, seed: int = 0, fps: int = 10) -> tuple[Path, Path]:
    """``folder/shapes.mp4`` and ``folder/gt.txt`` (MOT format)."""
    from pixelmind.track.mot import write_mot
    from pixelmind.video.io import VideoWriter

    folder = Path(folder)
    images, truth = moving_shapes(frames, objects, size, seed)
    writer = VideoWriter(folder / "shapes.mp4", fps)
    for image in images:
        writer.write(image)
    writer.close()
    write_mot(folder / "gt.txt", [(f, tid, box, 1.0, 0) for f, rows in truth.items() for tid, box in rows])
    return folder / "shapes.mp4", folder / "gt.txt"
