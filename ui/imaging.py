"""Batch previews as one image, so a preview area has a single fixed-size picture."""
from __future__ import annotations

import math

from PIL import Image


def enlarge(image: Image.Image, longest: int) -> Image.Image:
    """Scale a small preview up (never down) so its longest side is `longest`, for display."""
    scale = longest / max(image.size)
    if scale <= 1:
        return image
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def contact_sheet(images, gap: int = 4, longest: int = 0) -> Image.Image | None:
    """Tile images (same size) in a near-square grid; None for no images; one image as is.

    longest: enlarge each small image to this longest side first (0: keep sizes).
    """
    images = [enlarge(image, longest) if longest else image for image in images]
    if not images:
        return None
    if len(images) == 1:
        return images[0]
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    sheet = Image.new("RGB", (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap), "white")
    for k, image in enumerate(images):
        sheet.paste(image, ((k % columns) * (width + gap), (k // columns) * (height + gap)))
    return sheet
