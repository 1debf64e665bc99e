"""Checking what users upload, and stamping what we deliver.

Uploads are decoded once with Pillow under a pixel bound (no decompression bombs), so a
corrupt or huge file becomes a clear message before any job exists. Results carry their
parameters in a PNG text chunk, the way A1111 and most tools read them back.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, PngImagePlugin

from engine.errors import UserFacingError
from engine.jobs import GenerationBase, JobSpec

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096


def load_upload(data: bytes, *, what: str = "image") -> Image.Image:
    """Decode an uploaded picture or raise a localized error naming what is wrong."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserFacingError("error-image-too-big", what=what, mb=MAX_UPLOAD_BYTES // (1024 * 1024))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > MAX_UPLOAD_PIXELS:
                    raise UserFacingError("error-image-too-many-pixels", what=what, width=width, height=height)
                probe.verify()
            image = Image.open(io.BytesIO(data))
            image.load()
    except UserFacingError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserFacingError("error-image-too-many-pixels", what=what, width="?", height="?") from None
    except Exception:
        raise UserFacingError("error-image-corrupt", what=what) from None
    return image


def normalized_png(image: Image.Image, *, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    image.convert(mode).save(buf, format="PNG")
    return buf.getvalue()


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
        info = PngImagePlugin.PngInfo()
        info.add_itxt("parameters", parameters)
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_parameters(png: bytes) -> str | None:
    with Image.open(io.BytesIO(png)) as image:
        return image.info.get("parameters")
