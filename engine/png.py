"""The one place a result picture becomes PNG bytes, with its A1111-style ``parameters``
text when it is known (an iTXt chunk, so any language survives; ``read_parameters`` in
handlers/images.py reads it back). A backend that encodes the PNG itself writes the text
in at once, so nothing has to decode and re-encode the picture later."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin


def png_bytes(image: Image.Image, parameters: str | None = None) -> bytes:
    """``image`` saved as PNG, carrying ``parameters`` when given."""
    info = None
    if parameters is not None:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


__all__ = ["png_bytes"]
