"""Checking what users upload, and stamping what we deliver.

Uploads are decoded once with Pillow under a pixel bound (no decompression bombs), so a
corrupt, huge or impossibly thin file becomes a clear message before any job exists.
``load_upload`` hands back the picture *upright*: the EXIF orientation a phone writes
instead of rotating the pixels is applied at intake, so what is stored (and its size)
is what the user saw. ``normalized_png`` then writes it as a plain 8-bit PNG: 16-bit and
float greyscale are scaled down (not clipped to white), transparency is flattened onto
white for pictures and onto black ("keep") for masks, CMYK becomes RGB.

Results carry their parameters in a PNG text chunk, the way A1111 and most tools read
them back.

These functions decode and encode pictures: they belong in a worker thread, not on the
event loop.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image, ImageOps

from engine.errors import UserFacingError
from engine.jobs import GenerationBase, JobSpec
from engine.png import png_bytes

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
# Longest side over shortest side. Beyond this no engine can paint on the picture at a
# size within the job limits (64..2048 on a side).
MAX_UPLOAD_RATIO = 8
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


def load_upload(data: bytes, *, what: str = "image") -> Image.Image:
    """Decode an uploaded picture, upright, or raise a localized error naming what is wrong."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserFacingError("error-image-too-big", what=what, mb=MAX_UPLOAD_BYTES // (1024 * 1024))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                _check_shape(probe, what)
                probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
    except UserFacingError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        width, height = header_size(data) or ("?", "?")
        raise UserFacingError("error-image-too-many-pixels", what=what, width=str(width), height=str(height)) from None
    except Exception:
        raise UserFacingError("error-image-corrupt", what=what) from None
    return _upright(image)


def _shown_size(image: Image.Image) -> tuple[int, int]:
    """The size as a viewer shows it: swapped when the EXIF orientation turns it a quarter."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # a broken EXIF block is no reason to refuse the picture
        orientation = None
    return (height, width) if orientation in _ROTATED else (width, height)


def _check_shape(probe: Image.Image, what: str) -> None:
    """Refuse a picture too large or too thin to work with, naming its size as the user sees
    it. Reads only the header (``verify`` must still be able to follow)."""
    width, height = probe.size
    if width < 1 or height < 1:
        raise UserFacingError("error-image-corrupt", what=what)
    key = ""
    if width * height > MAX_UPLOAD_PIXELS:
        key = "error-image-too-many-pixels"
    elif max(width, height) > MAX_UPLOAD_RATIO * min(width, height):
        key = "error-image-too-thin"
    if key:
        shown_w, shown_h = _shown_size(probe)
        # Sizes as strings: Fluent would group the digits of a number ("40,000").
        raise UserFacingError(key, what=what, width=str(shown_w), height=str(shown_h), ratio=MAX_UPLOAD_RATIO)


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height as the file's header declares them, without Pillow's pixel bound
    (which ``Image.open`` applies before anyone can ask): for telling a user how big a
    refused picture is. Nothing is decoded."""
    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(prefix):
            continue
        try:
            image = factory(io.BytesIO(data), "")
        except Exception:  # not this format (the plugins raise all sorts)
            continue
        width, height = image.size
        return (width, height) if width > 0 and height > 0 else None
    return None


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation to the pixels (and drop the tag), in place."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # unreadable EXIF: keep the pixels as they are
        log.debug("EXIF orientation not applied", exc_info=True)
    return image


def normalized_png(image: Image.Image, *, mode: str = "RGB") -> bytes:
    """``image`` upright, as a plain 8-bit PNG in ``mode`` ("RGB" for pictures, "L" for masks)."""
    buf = io.BytesIO()
    flat(_upright(image.copy()), mode).save(buf, format="PNG")
    return buf.getvalue()


def flat(image: Image.Image, mode: str = "RGB") -> Image.Image:
    """``image`` in ``mode`` without surprises: high bit depths scaled to 8 bits, transparency
    composited (onto white for a picture, onto black for a mask: transparent = keep)."""
    image = _eight_bit(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if mode != "L" else (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # CMYK, YCbCr, palettes, bilevel...
    return image if image.mode == mode else image.convert(mode)


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "a" in image.getbands() or "transparency" in image.info


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale as 8-bit "L", scaled by the range the data uses:
    a straight ``convert`` clips every value above 255, and a 16-bit photo turns white."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16"):
        scaled = values / 257.0  # the full 16-bit range onto 0..255
    elif low >= 0.0 and high <= 1.0 and image.mode == "F":
        scaled = values * 255.0  # a 0..1 float image
    elif low >= 0.0 and high <= 255.0:
        scaled = values
    elif low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0  # 16-bit data in a 32-bit container ("I" from older decoders)
    else:
        scaled = (values - low) * (255.0 / max(high - low, 1e-9))  # anything else: stretch what is there
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # uint8, 2-D: mode "L"


def parameters_text(spec: JobSpec, *, seed: int | None, backend: str) -> str:
    """A1111-style ``parameters`` text: prompt, negative prompt, then one line of settings."""
    if isinstance(spec, GenerationBase):
        lines = [spec.prompt]
        if spec.negative_prompt:
            lines.append(f"Negative prompt: {spec.negative_prompt}")
        fields = [
            f"Steps: {spec.steps}",
            f"CFG scale: {spec.cfg:g}",
            f"Seed: {seed if seed is not None else spec.seed}",
            f"Size: {spec.width}x{spec.height}",
            f"Model: {spec.model}",
            f"Backend: {backend}",
            f"Job: {spec.kind}",
        ]
        strength = getattr(spec, "strength", None)
        if strength is not None:
            fields.append(f"Denoising strength: {strength:g}")
        lines.append(", ".join(fields))
        return "\n".join(lines)
    return f"Job: {spec.kind}, Backend: {backend}"


def stamp_png(png: bytes, parameters: str) -> bytes:
    """Re-save ``png`` with a ``parameters`` text chunk (iTXt, so any language survives)."""
    with Image.open(io.BytesIO(png)) as image:
        return png_bytes(image, parameters)


def read_parameters(png: bytes) -> str | None:
    with Image.open(io.BytesIO(png)) as image:
        return image.info.get("parameters")
