"""Shared fixtures. Model builders live in their own modules, loaded as plugins."""

import pytest

from tests.chat_recorder import RecordingMessenger, demo_settings, started_runtime

pytest_plugins = [
    "tests.fixtures_models",
    "tests.fixtures_tools",
]


@pytest.fixture
async def bot(tmp_path, tiny_model_dir):  # type: ignore[no-untyped-def]
    """The whole bot on the demo model, talking to a recording chat: (runtime, chat)."""
    chat = RecordingMessenger()
    runtime = await started_runtime(demo_settings(tmp_path, tiny_model_dir), chat)
    yield runtime, chat
    await runtime.stop()
