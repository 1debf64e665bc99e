"""Tiny randomly initialised diffusion models, built once per test session.

They are saved to disk and loaded through the same ``from_pretrained`` code the bot runs
for real models; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.local.demo_model import build_demo_model
from engine.local.registry import ModelRegistry


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("models") / "demo", seed=0)


@pytest.fixture(scope="session")
def local_registry(tiny_model_dir) -> ModelRegistry:
    # The registry looks for the demo model at <models_dir>/demo: point it at the built one.
    return ModelRegistry(tiny_model_dir.parent)


@pytest.fixture
async def local_backend(local_registry):
    from engine.local.backend import LocalDiffusersBackend

    backend = LocalDiffusersBackend(local_registry, device="cpu", offline=True, default_model="demo")
    yield backend
    await backend.close()
