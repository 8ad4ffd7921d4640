"""Tiny videos written with PyAV for the tests: a red square moving right over grey."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, frames: int = 30, size: int = 64, fps: int = 10) -> Path:
    """An H.264 MP4 with its index first (faststart), so a truncated copy still has readable frames."""
    import av

    container = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    for k in range(frames):
        a = np.random.default_rng(k).integers(30, 60, (size, size, 3), dtype=np.uint8)  # noise: real-sized frames
        x = (2 * k) % (size - 16)
        a[24:40, x : x + 16] = (220, 40, 40)
        for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path
