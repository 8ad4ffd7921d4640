"""Drawing results onto images.

Example:
    >>> from PIL import Image
    >>> draw_label_banner(Image.new("RGB", (320, 240)), ["cat 90.0%"]).size
    (320, 240)
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has a fixed-size default font
        return ImageFont.load_default()


def draw_label_banner(image: Image.Image, lines: Sequence[str]) -> Image.Image:
    """Write ``lines`` on a translucent banner at the top-left; small images are upscaled first."""
    img = image.convert("RGB")
    if min(img.size) < 160:
        scale = 160 / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.NEAREST)
    size = max(10, img.height // 18)
    font = _font(size)
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    pad = size // 3
    width = max(draw.textlength(t, font=font) for t in lines) + 2 * pad
    draw.rectangle([0, 0, width, len(lines) * (size + pad) + pad], fill=(0, 0, 0, 150))
    for i, text in enumerate(lines):
        draw.text((pad, pad + i * (size + pad)), text, fill=(255, 255, 255, 255), font=font)
    return Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")


def overlay_mask(image: Image.Image, mask, colors: Sequence[Sequence[int]], alpha: float = 0.5, skip: int | None = 0) -> Image.Image:
    """Blend a class-index mask over ``image`` in the class colours; class ``skip`` (background) stays clear.

    Example:
        >>> import numpy as np
        >>> out = overlay_mask(Image.new("RGB", (4, 2)), np.array([[0, 1, 1, 0], [0, 0, 1, 1]], np.uint8), [(0, 0, 0), (255, 0, 0)])
        >>> out.getpixel((1, 0)), out.getpixel((0, 0))
        ((128, 0, 0), (0, 0, 0))
    """
    import numpy as np

    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    index = np.asarray(mask)
    lut = np.zeros((256, 3), np.float32)
    n = min(len(colors), 256)
    lut[:n] = np.asarray(colors[:n], np.float32).reshape(n, 3)
    paint = np.ones(256, bool)
    if skip is not None and 0 <= skip < 256:
        paint[skip] = False
    a = np.where(paint[index], alpha, 0.0)[..., None].astype(np.float32)
    out = base * (1 - a) + lut[index] * a
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))


def draw_boxes(image: Image.Image, boxes: Sequence[Sequence[float]], labels: Sequence[str],
               colors: Sequence[Sequence[int]]) -> Image.Image:  # fmt: skip
    """Draw ``xyxy`` boxes with their labels (``"square 0.93"``) in the given colours.

    Example:
        >>> draw_boxes(Image.new("RGB", (64, 64)), [[4, 4, 30, 30]], ["circle 0.9"], [(255, 0, 0)]).size
        (64, 64)
    """
    img = image.convert("RGB")
    draw = ImageDraw.Draw(img)
    size = max(10, min(img.size) // 30)
    font = _font(size)
    width = max(1, min(img.size) // 200)
    for box, text, color in zip(boxes, labels, colors):
        color = tuple(int(c) for c in color)
        draw.rectangle([float(v) for v in box], outline=color, width=width)
        x0, y0 = float(box[0]), float(box[1])
        tw = draw.textlength(text, font=font)
        top = max(0.0, y0 - size - 2)
        draw.rectangle([x0, top, x0 + tw + 4, top + size + 2], fill=color)
        draw.text((x0 + 2, top + 1), text, fill=(255, 255, 255), font=font)
    return img


def neighbour_strip(query, neighbours: Sequence[tuple[str, float]], tile: int = 128) -> Image.Image:
    """The query image then its neighbours ``(path, score)`` in a row, each with its score under it.

    Unreadable neighbour files become grey tiles (the gallery may have changed since indexing).

    Example:
        >>> neighbour_strip(Image.new("RGB", (40, 30)), [("missing.jpg", 0.9)]).size
        (256, 148)
    """
    from pixelmind.data.decode import ImageDecodeError, load_image

    def thumb(item) -> Image.Image:
        try:
            im = item if isinstance(item, Image.Image) else load_image(item)
        except ImageDecodeError:
            return Image.new("RGB", (tile, tile), (128, 128, 128))
        im = im.convert("RGB")
        im.thumbnail((tile, tile))
        return im

    band = 20
    sheet = Image.new("RGB", ((len(neighbours) + 1) * tile, tile + band), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    for i, (item, label) in enumerate([(query, "query"), *[(p, f"{s:.3f}") for p, s in neighbours]]):
        im = thumb(item)
        sheet.paste(im, (i * tile + (tile - im.width) // 2, (tile - im.height) // 2))
        draw.text((i * tile + 4, tile + 3), label, fill=(0, 0, 0), font=font)
    return sheet


def contact_sheet(images: Sequence[Image.Image], tile: int = 160, columns: int = 6) -> Image.Image:
    """Images fitted into ``tile`` x ``tile`` cells, ``columns`` per row, on white (report thumbnails).

    Example:
        >>> contact_sheet([Image.new("RGB", (40, 20))] * 7, tile=32, columns=3).size
        (96, 96)
    """
    rows = max(1, -(-len(images) // columns))
    sheet = Image.new("RGB", (tile * min(columns, max(len(images), 1)), tile * rows), "white")
    for i, im in enumerate(images):
        im = im.convert("RGB")
        scale = (tile - 4) / max(im.size)  # small images (digits) scaled up with sharp pixels, large ones down
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
        x, y = (i % columns) * tile + (tile - im.width) // 2, (i // columns) * tile + (tile - im.height) // 2
        sheet.paste(im, (x, y))
    return sheet
