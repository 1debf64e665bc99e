"""Tiny tool models (random weights, real file formats) and a synthetic face Haar can see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.tools.backend import ToolModels, ToolsBackend
from engine.tools.demo_tools import build_demo_tools

GREEN = (40, 90, 60)  # RGB background of the synthetic pictures


def draw_face(
    size: int, skin: tuple[int, int, int] = (225, 190, 170), background: tuple[int, int, int] = GREEN
) -> np.ndarray:
    """An RGB cartoon face (oval, brows, dark eyes, nose, mouth) that OpenCV's frontal-face
    Haar cascade detects at sizes from about 100 to 400 px."""
    img = np.full((size, size, 3), background, np.uint8)
    c, s = size // 2, size / 256

    def p(v: float) -> int:
        return int(v * s)

    cv2.ellipse(img, (c, c), (p(80), p(105)), 0, 0, 360, skin, -1)
    for dx in (-35, 35):
        cv2.ellipse(img, (c + p(dx), c - p(38)), (p(22), p(6)), 0, 180, 360, (50, 40, 40), max(1, p(5)))
        cv2.ellipse(img, (c + p(dx), c - p(18)), (p(16), p(9)), 0, 0, 360, (30, 30, 40), -1)
    cv2.ellipse(img, (c, c + p(22)), (p(10), p(6)), 0, 0, 360, (170, 130, 110), -1)
    cv2.ellipse(img, (c, c + p(55)), (p(28), p(8)), 0, 0, 360, (140, 60, 60), -1)
    return cv2.GaussianBlur(img, (0, 0), 2 * s)


def face_picture(
    width: int = 480, height: int = 300, at: tuple[int, int] = (20, 40), size: int = 200, **face_args: object
) -> Image.Image:
    """A ``width`` x ``height`` green picture with one face of ``size`` px whose top-left is ``at``."""
    canvas = np.full((height, width, 3), GREEN, np.uint8)
    x, y = at
    canvas[y : y + size, x : x + size] = draw_face(size, **face_args)  # type: ignore[arg-type]
    return Image.fromarray(canvas, "RGB")


@pytest.fixture(scope="session")
def tiny_tool_models(tmp_path_factory: pytest.TempPathFactory) -> ToolModels:
    return build_demo_tools(tmp_path_factory.mktemp("tool-models"), seed=0)


@pytest.fixture(scope="session")
def tools_backend(tiny_tool_models: ToolModels) -> Iterator[ToolsBackend]:
    # Small tiles so even test-sized pictures go through the tiling path.
    backend = ToolsBackend(tiny_tool_models, device="cpu", tile=32, overlap=8)
    yield backend
    backend.shutdown()


@pytest.fixture
def with_tools(tmp_path: Path, tiny_tool_models: ToolModels) -> None:
    """The demo upscaler and face-swap models where the bot looks for them (``tmp_path/models``)."""
    models = tmp_path / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "demo-tools").symlink_to(tiny_tool_models.upscaler.parent.parent, target_is_directory=True)
