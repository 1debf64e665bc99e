"""Running a backend to its end in tests, and reading what it produced."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from engine.backend import Finished, Progress, Work


async def run(backend: Any, work: Work) -> tuple[list[Progress], Finished]:
    """All Progress events and the one Finished; nothing may follow Finished."""
    progress: list[Progress] = []
    finished: list[Finished] = []
    async for event in backend.run(work):
        assert not finished, "nothing may follow Finished"
        if isinstance(event, Progress):
            progress.append(event)
        else:
            finished.append(event)
    assert len(finished) == 1
    return progress, finished[0]


def size_of(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG")
    return Image.open(io.BytesIO(png)).size
