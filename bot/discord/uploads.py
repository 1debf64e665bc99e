"""Pictures that fit under Discord's upload limit.

Discord refuses an attachment larger than the limit it states for the chat (the
interaction's ``attachment_size_limit``, which follows the server's boost level; 10 MiB in
DMs) with ``413 Payload Too Large`` (40005). A result picture over that limit is
re-encoded rather than lost: WebP at high quality, then JPEG, then smaller sizes, until it
fits. The caption still carries the parameters (a re-encoded file loses its PNG text chunk).

These functions decode and encode pictures: they belong in a worker thread
(``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image

log = logging.getLogger(__name__)

# Room left under the limit for the multipart framing of each file.
HEADROOM_BYTES = 1024
_SHRINK = 0.8  # each step down in size keeps this share of each side
_SMALLEST_SIDE = 16


@dataclass(frozen=True)
class Fitted:
    data: bytes
    filename: str
    reencoded: bool = False


def fit(data: bytes, filename: str, limit: int) -> Fitted:
    """``data`` itself when it fits under ``limit`` bytes, else the best re-encoding that does
    (or the smallest one tried, when nothing does: the caller's 413 retry shrinks further)."""
    budget = max(1, limit - HEADROOM_BYTES)
    if len(data) <= budget:
        return Fitted(data, filename)
    stem = filename.rsplit(".", 1)[0]
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    best: tuple[bytes, str] | None = None
    for encoded, ext in _encodings(image):
        if best is None or len(encoded) < len(best[0]):
            best = (encoded, ext)
        if len(encoded) <= budget:
            return Fitted(encoded, f"{stem}.{ext}", reencoded=True)
    assert best is not None
    log.info("a picture could not be made smaller than %d bytes (limit %d)", len(best[0]), limit)
    return Fitted(best[0], f"{stem}.{best[1]}", reencoded=True)


def _encodings(image: Image.Image):  # type: ignore[no-untyped-def]
    """Ever smaller encodings of ``image``: full size at high quality first."""
    yield _encode(image, "WEBP", quality=95), "webp"
    yield _encode(image, "JPEG", quality=92), "jpg"
    width, height = image.size
    while min(width, height) > _SMALLEST_SIDE:
        width, height = max(1, int(width * _SHRINK)), max(1, int(height * _SHRINK))
        yield _encode(image.resize((width, height), Image.Resampling.LANCZOS), "JPEG", quality=85), "jpg"


def _encode(image: Image.Image, fmt: str, *, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=quality)
    return buf.getvalue()

