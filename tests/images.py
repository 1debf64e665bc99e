"""Small pictures for tests, encoded as a client would upload them."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

Color = tuple[int, int, int] | str


def encoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    """``image`` saved as ``fmt`` (PIL save options pass through)."""
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def image_bytes(width: int = 64, height: int = 64, color: Color = (200, 30, 30), fmt: str = "PNG") -> bytes:
    """A plain RGB picture of one colour."""
    return encoded(Image.new("RGB", (width, height), color), fmt)


def png(size: tuple[int, int] = (64, 48), color: Color = (30, 90, 200)) -> bytes:
    """A plain RGB PNG of one colour."""
    return image_bytes(size[0], size[1], color)
