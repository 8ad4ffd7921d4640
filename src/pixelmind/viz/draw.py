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
