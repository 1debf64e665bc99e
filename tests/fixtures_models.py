"""Tiny randomly initialised diffusion models, built once per test session.

They are saved to disk and loaded through the same ``from_pretrained`` code the bot runs
for real models; nothing is downloaded. Shared by the engine, Telegram and console tests:

- ``tiny_model_dir``: the demo model folder (SD1.5 layout + a canny ControlNet), session-wide
- ``local_registry``: a ModelRegistry whose ``demo`` entry is that folder
- ``local_backend``: a LocalDiffusersBackend on the CPU, offline, defaulting to ``demo``
- ``make_work(spec, media)`` and ``InMemoryMedia``: run a job without the scheduler
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from engine.backend import CancelToken, MediaReader, Work
from engine.jobs import JobSpec
from engine.local.backend import LocalDiffusersBackend
from engine.local.demo_model import build_demo_model
from engine.local.registry import ModelRegistry


class InMemoryMedia:
    """A MediaReader kept in a dict; ``put`` returns a key shaped like MediaStore's."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        key = f"{hashlib.sha256(data).hexdigest()}.png"
        self.blobs[key] = data
        return key

    def put_image(self, image: Image.Image) -> str:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return self.put(buf.getvalue())

    def read(self, key: str) -> bytes:
        try:
            return self.blobs[key]
        except KeyError:
            raise KeyError(f"media {key} is gone") from None

    def public_url(self, key: str) -> str:
        raise RuntimeError("in-memory media has no public links")


def make_work(spec: JobSpec, media: MediaReader, *, job_id: str = "job-1",
              cancel: CancelToken | None = None) -> Work:
    """A Work for ``backend.run`` (``media`` may be an InMemoryMedia or a storage MediaStore)."""
    return Work(job_id=job_id, spec=spec, media=media, cancel=cancel or CancelToken())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo", seed=0)


@pytest.fixture(scope="session")
def local_registry(tiny_model_dir: Path) -> ModelRegistry:
    # The registry looks for the demo model at <models_dir>/demo: point it at the built one.
    return ModelRegistry(tiny_model_dir.parent)


@pytest.fixture
async def local_backend(local_registry: ModelRegistry) -> AsyncIterator[LocalDiffusersBackend]:
    backend = LocalDiffusersBackend(local_registry, device="cpu", offline=True, default_model="demo")
    yield backend
    await backend.close()
