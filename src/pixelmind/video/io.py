"""Reading frames from video files and streams, and writing annotated videos, with PyAV.

A video that cannot be opened, or breaks part way (truncated file, dropped stream), ends with one
:class:`VideoDecodeError` naming the source, the frames read before it and the problem, after those
frames; it never hangs on a dead stream (PyAV's open and read timeouts).

Example:
    >>> is_video("clip.MP4"), is_video("a.png"), is_video("rtsp://cam/1")
    (True, False, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pixelmind.data.decode import ImageDecodeError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
URL_SCHEMES = ("rtsp", "rtmp", "http", "https", "udp", "tcp")
_COLLAPSED = re.compile(rf"^({'|'.join(URL_SCHEMES)}):/(?!/)")  # what pathlib makes of "rtsp://host"
TIMEOUT_S = 10.0


class VideoDecodeError(ImageDecodeError):
    """A video (or the rest of it) cannot be read; the message names it and what was read before."""


def as_source(path: str | Path) -> str:
    """The string to open: a URL that went through ``pathlib`` gets its ``//`` back."""
    return _COLLAPSED.sub(r"\1://", str(path))


def is_video(path: str | Path) -> bool:
    text = as_source(path)
    return text.lower().endswith(VIDEO_SUFFIXES) or text.split("://", 1)[0].lower() in URL_SCHEMES and "://" in text


def iter_frames(source: str | Path, stride: int = 1, max_pixels: int = 100_000_000) -> Iterator[tuple[str, Image.Image | Exception]]:
    """``(name, frame)`` for every ``stride``-th frame, ``name`` = ``source#frame=K``; a failure comes last, as the frame.

    Each frame's ``info`` holds ``video`` (the source), ``frame`` (K), ``time`` (seconds) and ``fps`` (of
    the frames kept), which ``--save`` uses to write the annotated video.
    """
    import av

    text = as_source(source)
    if "://" not in text and not Path(text).is_file():
        yield text, VideoDecodeError(f"{text}: file not found")
        return
    read = declared = 0
    try:
        container = av.open(text, timeout=TIMEOUT_S if "://" in text else None)
    except Exception as err:  # noqa: BLE001 - PyAV raises one error class per ffmpeg error code
        yield text, VideoDecodeError(f"{text}: not a readable video ({_reason(err)})")
        return
    try:
        if not container.streams.video:
            yield text, VideoDecodeError(f"{text}: no video stream (a truncated MP4 loses its index, kept at the end of the file)")
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.width * stream.height > max_pixels:
            yield text, VideoDecodeError(f"{text}: {stream.width}x{stream.height} frames are over the limit of {max_pixels:,} pixels")
            return
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        declared = int(stream.frames or 0)
        for k, frame in enumerate(container.decode(stream)):
            read += 1
            if k % stride:
                continue
            image = frame.to_image()  # RGB
            seconds = float(frame.time) if frame.time is not None else k / rate
            image.info.update(video=text, frame=k, time=round(seconds, 4), fps=rate / stride)
            yield f"{text}#frame={k}", image
    except Exception as err:  # noqa: BLE001 - a broken packet part way: report after the frames we have
        yield text, VideoDecodeError(f"{text}: stopped after {read} frames ({_reason(err)})")
    finally:
        container.close()
    if read == 0:
        yield text, VideoDecodeError(f"{text}: no frame could be decoded")
    elif declared > read:  # ffmpeg ends a cut file quietly: the header knows how many frames there were
        yield text, VideoDecodeError(f"{text}: ended after {read} of its {declared} frames (truncated?)")


class VideoWriter:
    """Frames (PIL, any size: the first one fixes it) into an H.264 MP4 (yuv420p, even sides)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.pix_fmt = "yuv420p"
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: Image.Image) -> None:
        import av

        if self.size is None:
            self.size = (image.width - image.width % 2, image.height - image.height % 2)
            self.stream.width, self.stream.height = self.size
        if image.size != self.size:
            image = image.resize(self.size)
        frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB")), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class VideoSaver:
    """One annotated video per source video in ``out_dir`` (``<name>.annotated.mp4``), closed when the next starts."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir, self.current, self.writer = Path(out_dir), None, None

    def add(self, image: Image.Image, rendered: Image.Image) -> Path:
        video = image.info["video"]
        if video != self.current:
            self.close()
            name = re.sub(r"[^\w.-]+", "_", Path(video).name) or "stream"
            self.current, self.writer = video, VideoWriter(self.out_dir / f"{name}.annotated.mp4", image.info["fps"])
        self.writer.write(rendered)
        return self.writer.path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.current, self.writer = None, None


def _reason(err: BaseException) -> str:
    return (str(err) or type(err).__name__).splitlines()[0][:160]
