"""zhiqite behind the /imagine path: what a user reads when the bot has no public address,
and a throttled zhiqite handing the job to the configured fallback."""

from __future__ import annotations

from engine.local.backend import LocalDiffusersBackend
from engine.local.registry import ModelRegistry
from engine.vendors.zhiqite import ZhiqiteBackend
from storage.records import JobState
from tests.chat_recorder import RecordingMessenger, demo_settings, say, started_runtime
from tests.images import image_bytes
from tests.vendor_fakes.zhiqite import FakeZhiqite

KEY_ID, KEY_SECRET = "AKID-zhiqite-test", "AKSECRET-zhiqite-test"


async def start(tmp_path, tiny_model_dir, fake: FakeZhiqite, **overrides):  # type: ignore[no-untyped-def]
    settings = demo_settings(tmp_path, tiny_model_dir, **overrides)
    backends = {
        "local": LocalDiffusersBackend(ModelRegistry(settings.models_dir), device="cpu", offline=True,
                                       default_model="demo"),
        "zhiqite": ZhiqiteBackend(fake.api_url, access_key_id=KEY_ID, access_key_secret=KEY_SECRET,
                                  default_model="photon_v1_84728.safetensors", use_callbacks=False,
                                  retries=0, timeout_s=5, poll_interval_s=0.005, poll_max_interval_s=0.01),
    }
    chat = RecordingMessenger()
    return await started_runtime(settings, chat, backends=backends), chat


async def test_a_photo_job_without_a_public_address_is_refused_saying_what_the_admin_must_set(
        tmp_path, tiny_model_dir) -> None:
    async with FakeZhiqite(KEY_ID, KEY_SECRET) as fake:
        runtime, chat = await start(tmp_path, tiny_model_dir, fake)
        try:
            photo = image_bytes(64, 64, (90, 120, 30), "JPEG")
            await runtime.app.handle_message(say("/imagine a watercolour --backend zhiqite", images=[photo]), chat)
            assert "IMAGEBOT_PUBLIC_BASE_URL" in chat.log[-1].text and "admin" in chat.log[-1].text
            assert await runtime.storage.recent_jobs() == []  # refused before a job (or a charge) existed
            assert fake.submits == [] and fake.tasks == {}  # (only the model list was read, for --model)
        finally:
            await runtime.stop()


async def test_a_throttled_zhiqite_hands_the_job_to_the_fallback_backend(tmp_path, tiny_model_dir) -> None:
    async with FakeZhiqite(KEY_ID, KEY_SECRET) as fake:
        runtime, chat = await start(tmp_path, tiny_model_dir, fake, fallback_backends=["local"])
        try:
            await runtime.backends["zhiqite"].models()  # the catalogue is cached: the submit is the next call
            fake.gateway_refusals = ["Throttled by APP Flow Control"]
            await runtime.app.handle_message(say("/imagine a lighthouse --backend zhiqite --steps 2 --size 64x64"),
                                             chat)
            await runtime.wait_idle()
            (job,) = await runtime.storage.recent_jobs()
            assert job.state is JobState.DONE and len(chat.of("images")) == 1
            assert fake.tasks == {}  # zhiqite never took (or billed) the task
        finally:
            await runtime.stop()
