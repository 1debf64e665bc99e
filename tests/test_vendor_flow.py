"""Vendor backends behind the same /imagine path: chosen per job, charged per delivered
picture at their configured cost, refused or mapped before any call, refunded on failure,
falling back when configured, and resumed after a restart without a second submit."""

from __future__ import annotations

import asyncio

import pytest

from bot.settings import Settings
from bot.wiring import build_backends
from engine.local.backend import LocalDiffusersBackend
from engine.local.registry import ModelRegistry
from engine.vendors.jumdata import JumdataBackend
from engine.vendors.paint4 import Paint4Backend
from storage.media import MediaStore
from storage.records import JobState
from tests.chat_recorder import RecordingMessenger, demo_settings, say, started_runtime
from tests.vendor_fakes.jumdata import FakeJumdata
from tests.vendor_fakes.paint4 import FakePaint4

FAST = dict(retries=1, backoff_base_s=0.001, timeout_s=5)


@pytest.fixture
async def fakes():
    async with FakePaint4() as paint4, FakeJumdata() as jumdata:
        yield paint4, jumdata


def backends(settings: Settings, paint4: FakePaint4, jumdata: FakeJumdata) -> dict:
    return {
        "local": LocalDiffusersBackend(ModelRegistry(settings.models_dir), device="cpu", offline=True,
                                       default_model="demo"),
        "paint4": Paint4Backend(paint4.base_url, **FAST),
        "jumdata": JumdataBackend(jumdata.base_url, jumdata.app_id, jumdata.app_secret, task_timeout_s=30,
                                  poll_interval_s=0.01, poll_max_interval_s=0.02, **FAST),
    }


async def start(tmp_path, tiny_model_dir, paint4, jumdata, **overrides):
    settings = demo_settings(tmp_path, tiny_model_dir, backend_costs={"paint4": 2, "jumdata": 3}, **overrides)
    chat = RecordingMessenger()
    runtime = await started_runtime(settings, chat, backends=backends(settings, paint4, jumdata))
    return runtime, chat


async def _ledger(runtime, job_id):
    return [(e["entry"], e["amount"]) for e in await runtime.storage.ledger_of_job(job_id)]


async def test_a_vendor_job_is_delivered_and_charged_its_cost_per_picture(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata, daily_free_images=10)
    try:
        await runtime.app.handle_message(say("/imagine a dog --backend paint4 --n 2"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE and len(chat.of("images")[0].images) == 2
        assert await _ledger(runtime, job.id) == [("reserve", -4), ("commit", 2), ("commit", 2)]
        assert paint4.violations == []
    finally:
        await runtime.stop()


async def test_mapped_values_are_told_before_the_job_runs(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    try:
        await runtime.app.handle_message(say("/imagine 一只猫 --backend jumdata --style anime --size 1000x704"), chat)
        queued = chat.log[0].text
        assert "1536x1024" in queued  # the nearest resolution jumdata has
        await runtime.wait_idle()
        assert chat.of("images") and jumdata.violations == []
        assert jumdata.forms[0]["style"] == "二次元"
    finally:
        await runtime.stop()


async def test_what_a_vendor_cannot_do_is_refused_before_any_call(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    try:
        await runtime.app.handle_message(say("/imagine " + "long prompt " * 12 + "--backend jumdata"), chat)
        assert "100" in chat.log[-1].text
        await runtime.app.handle_message(say("/imagine a cat --backend jumdata --style nosuch"), chat)
        assert "二次元" in chat.log[-1].text  # lists the styles it has
        assert sum(jumdata.calls.values()) == 0
        assert await runtime.storage.recent_jobs() == []
    finally:
        await runtime.stop()


async def test_a_failing_vendor_refunds_and_says_why(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    paint4.fail_5xx = 100
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    try:
        await runtime.app.handle_message(say("/imagine a dog --backend paint4 --n 2"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.FAILED and job.error_key == "error-vendor-unavailable"
        assert "The 4 picture(s) it held went back to your quota" in chat.log[-1].text
        assert await _ledger(runtime, job.id) == [("reserve", -4), ("refund", 4)]
    finally:
        await runtime.stop()


async def test_a_temporary_vendor_failure_falls_back_to_the_next_backend(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    paint4.fail_5xx = 100
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata, fallback_backends=["local"])
    try:
        await runtime.app.handle_message(say("/imagine a dog --backend paint4 --steps 2"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE and len(chat.of("images")) == 1
    finally:
        await runtime.stop()


async def test_a_vendor_task_survives_a_restart_without_a_second_submit(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    jumdata.pending_polls = 10_000  # the vendor keeps the task running until we say so
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    await runtime.app.handle_message(say("/imagine a castle --backend jumdata --n 2"), chat)
    for _ in range(500):
        (job,) = await runtime.storage.recent_jobs()
        if job.checkpoint.get("task_id") and jumdata.calls["/ai/draw/query"] >= 2:
            break
        await asyncio.sleep(0.02)
    await runtime.scheduler.stop()  # the process dies while the vendor is still painting
    await runtime.storage.close()
    for task in jumdata.tasks.values():
        task.polls_left = 0

    second, chat2 = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    try:
        await chat2.wait_for(lambda s: s.kind == "images")
        await second.wait_idle()
        job = await second.storage.job(job.id)
        assert job.state is JobState.DONE
        assert jumdata.calls["/ai/draw/submit"] == 1
        assert await _ledger(second, job.id) == [("reserve", -6), ("commit", 3), ("commit", 3)]
    finally:
        await second.stop()


def test_vendors_are_enabled_by_their_settings(tmp_path):
    media = MediaStore(tmp_path / "media")
    none = build_backends(Settings(_env_file=None, data_dir=tmp_path), media)
    assert set(none) == {"local", "tools"}
    some = build_backends(Settings(_env_file=None, data_dir=tmp_path, paint4_base_url="http://127.0.0.1:9",
                                   jumdata_app_id="a", jumdata_app_secret="s", sdapi_base_url="http://127.0.0.1:9",
                                   zhiqite_appcode="code"), media)
    assert set(some) == {"local", "tools", "paint4", "jumdata", "sdapi", "zhiqite"}


async def test_notes_speak_only_of_what_the_user_chose(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata)
    try:
        await runtime.app.handle_message(say("/imagine a dog --backend paint4"), chat)
        plain = [s for s in chat.log if s.status and s.kind == "text"][-1]
        assert "Queued" in plain.text and "does not support" not in plain.text
        await runtime.app.handle_message(say("/imagine a dog --backend paint4 --seed 5 --steps 30"), chat)
        asked = [s for s in chat.log if s.status and s.kind == "text"][-1]
        assert "does not support seed" in asked.text and "does not support steps" in asked.text  # asked for
        await runtime.wait_idle()
        captions = [s.text for s in chat.of("images")]
        assert "does not support" not in captions[0] and "does not support seed" in captions[1]
    finally:
        await runtime.stop()


async def test_a_vendor_as_the_default_backend_paints_with_its_own_default_model(tmp_path, tiny_model_dir, fakes):
    paint4, jumdata = fakes
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata, default_backend="paint4")
    try:
        await runtime.app.handle_message(say("/imagine a harbour"), chat)  # no --model, no --backend
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE and job.backend == "paint4" and job.spec.model == "Stable_Diffusion"
        assert "There is no model" not in " ".join(s.text for s in chat.log)
    finally:
        await runtime.stop()


async def test_after_a_fallback_the_caption_and_the_price_are_the_backend_that_painted(tmp_path, tiny_model_dir,
                                                                                        fakes):
    paint4, jumdata = fakes
    paint4.fail_5xx = 100
    runtime, chat = await start(tmp_path, tiny_model_dir, paint4, jumdata, fallback_backends=["local"])
    try:
        await runtime.app.handle_message(say("/imagine a dog --backend paint4 --steps 2 --size 64x64"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE and job.backend == "local"
        assert "paint4" not in chat.of("images")[0].text
        assert await _ledger(runtime, job.id) == [("reserve", -2), ("commit", 1), ("refund", 1)]
    finally:
        await runtime.stop()
