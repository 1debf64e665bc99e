"""The core under load, seen by the neighbours: a flooded group and a private chat alongside,
a burst at the global cap, an upscale and a diffusion on one GPU, the money after many jobs,
and a DEBUG log read for secrets."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from bot.outbound import Budget, Limits
from bot.telegram.messenger import TELEGRAM_LIMITS
from bot.telegram.runner import run_telegram
from bot.wiring import build_runtime
from storage.records import JobState
from storage.store import Storage
from tests.chat_recorder import RecordingMessenger, demo_settings, person, say, started_runtime
from tests.fake_telegram import FakeTelegram
from tests.images import png

SCALE = 0.05  # Telegram's own flood limits on a clock twenty times faster
GROUP_ID = -100777
DAN = FakeTelegram.user(401, "Dan")


async def test_a_flooded_group_delays_no_other_chat_and_every_result_arrives_once(tmp_path, tiny_model_dir):
    real = TELEGRAM_LIMITS.scaled(SCALE)
    fake = await FakeTelegram(group_limit=(20, 60.0 * SCALE), private_limit=(1, 1.0 * SCALE),
                              global_limit=(30, 1.0 * SCALE)).start()
    settings = demo_settings(tmp_path, tiny_model_dir, telegram_token=fake.token, telegram_api_base=fake.base_url,
                             platforms=["telegram"])
    runtime = await build_runtime(settings)
    task = asyncio.create_task(run_telegram(runtime, limits=real, polling_timeout=1))
    try:
        await fake.wait_until(lambda: fake.count("getUpdates") > 0)
        members = [FakeTelegram.user(500 + k, f"Member{k}") for k in range(25)]
        for member in members:  # 25 /imagine@bot in one group, as fast as people can type them
            await fake.say(GROUP_ID, member, "/imagine@imagebot a crowded harbour --steps 2 --size 64x64")
        await fake.wait_until(lambda: len(fake.seen(GROUP_ID)) >= 3)  # the flood is under way

        loop = asyncio.get_running_loop()
        asked = loop.time()
        await fake.say(DAN["id"], DAN, "/imagine a quiet lighthouse --steps 2 --size 64x64")
        await fake.wait_until(lambda: len(fake.seen(DAN["id"])) >= 1, timeout=10)
        first_reply_s = loop.time() - asked
        stored_at: list[float] = []

        async def watch_compute() -> None:  # when the engine had the private picture ready
            while not stored_at:
                jobs = [j for j in await runtime.storage.recent_jobs(50) if j.chat.chat_id == str(DAN["id"])]
                if jobs and jobs[0].state in (JobState.DELIVERING, JobState.DONE):
                    stored_at.append(loop.time())
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_compute())
        await fake.wait_until(lambda: len(fake.seen(DAN["id"], kind="photo")) == 1, timeout=30)
        delivered_at = loop.time()
        await asyncio.wait_for(watcher, 5)
        group_left = 25 - len(fake.seen(GROUP_ID, kind="photo"))

        assert first_reply_s < 1.0  # "Queued" at once, though 25 jobs wait in the group
        assert delivered_at - stored_at[0] < 2.0  # picture ready -> in the private chat
        assert group_left > 5  # ...while the group was still waiting for its own slots

        await fake.wait_until(lambda: len(fake.seen(GROUP_ID, kind="photo")) == 25, timeout=60)
        await runtime.wait_idle()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.stop()
        await fake.close()
    assert fake.flood_errors == 0  # not one 429 in the whole run
    captions = Counter(m.text.split("\n")[0] for m in fake.seen(GROUP_ID, kind="photo"))
    assert captions == {"a crowded harbour": 25}
    # One message per job in the group: each status became its result.
    assert fake.count("sendMessage", GROUP_ID) == 25 and fake.count("sendPhoto", GROUP_ID) == 0
    storage = await Storage.open(settings.db_path)
    try:
        jobs = await storage.recent_jobs(50)
        assert len(jobs) == 26 and all(j.state is JobState.DONE for j in jobs)
        for job in jobs:
            entries = [e["entry"] for e in await storage.ledger_of_job(job.id)]
            assert entries.count("commit") == 1  # delivered once, charged once
    finally:
        await storage.close()


async def test_a_burst_at_the_global_cap_announces_only_admitted_jobs_with_their_real_places(
        tmp_path, tiny_model_dir):
    settings = demo_settings(tmp_path, tiny_model_dir, max_queued_total=20)
    runtime = await build_runtime(settings)
    chat = RecordingMessenger()
    runtime.app.attach(chat)  # not started: nothing leaves the queue while the burst arrives
    try:
        await asyncio.gather(*(runtime.app.handle_message(say("/imagine a crowd", user=person(f"u{k}")), chat)
                               for k in range(100)))
        queued = [s for s in chat.log if s.status]
        refused = [s for s in chat.log if "queue is full" in s.text]
        assert len(queued) == 20 and len(refused) == 80
        places = sorted(int(s.text.rsplit(" ", 1)[1]) for s in queued)
        assert places == list(range(1, 21))  # each told its own place, none "position 1" by mistake
        assert all(s.buttons for s in queued) and not any(s.buttons for s in refused)
        jobs = await runtime.storage.recent_jobs(200)
        assert len(jobs) == 20 and {j.state for j in jobs} == {JobState.QUEUED}  # refused ones were never written
        for k in range(100):
            user = await runtime.storage.user("console", f"u{k}")
            assert (await runtime.storage.balance(user.id)).reserved in (0, 1)
    finally:
        await runtime.stop()


async def test_an_upscale_and_a_diffusion_take_turns_on_one_gpu(tmp_path, tiny_model_dir, with_tools):
    settings = demo_settings(tmp_path, tiny_model_dir)
    chat = RecordingMessenger()
    runtime = await started_runtime(settings, chat)
    try:
        lanes = runtime.scheduler.lanes()
        assert runtime.scheduler.lane_of("local") == runtime.scheduler.lane_of("tools")
        assert lanes[runtime.scheduler.lane_of("local")][2] == 1  # one slot for both
        picture = png((96, 96), (10, 200, 30))
        busy: list[int] = []

        async def sample() -> None:
            while True:
                busy.append(runtime.scheduler.lanes()[runtime.scheduler.lane_of("local")][1])
                await asyncio.sleep(0.002)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(
            runtime.app.handle_message(say("/imagine a field --steps 8 --size 128x128"), chat),
            runtime.app.handle_message(say("/upscale", user=person("bob"), images=[picture]), chat),
        )
        await runtime.wait_idle()
        sampler.cancel()
        assert len(chat.of("images")) == 2
        assert max(busy) == 1  # never both at once
    finally:
        await runtime.stop()


async def test_vendor_concurrency_comes_from_the_settings(tmp_path, tiny_model_dir):
    from engine.vendors.paint4 import Paint4Backend

    settings = demo_settings(tmp_path, tiny_model_dir, backend_concurrency={"paint4": 200})
    runtime = await build_runtime(settings, backends={"paint4": Paint4Backend("http://127.0.0.1:9")})
    try:
        assert runtime.scheduler.lanes()["paint4"][2] == 200
    finally:
        await runtime.stop()


@pytest.mark.parametrize("level", ["DEBUG"])
async def test_no_secret_reaches_the_log_at_debug(tmp_path, tiny_model_dir, caplog, level):
    """A DEBUG run of Telegram with a job whose status and result go through the limiter,
    and the SQL of the ledger: neither the bot token nor any link signature shows up."""
    from bot.logs import setup_logging
    from storage.media import MediaStore

    caplog.set_level(getattr(logging, level))
    fake = await FakeTelegram().start()
    vendor_secret = "zq-secret-" + "s" * 20
    settings = demo_settings(tmp_path, tiny_model_dir, telegram_token=fake.token, telegram_api_base=fake.base_url,
                             platforms=["telegram"], public_base_url="http://bot.example", log_level=level,
                             zhiqite_access_key_secret=vendor_secret)
    setup_logging(settings, quiet=False)  # as `python -m bot` does: every secret registered, noisy loggers held
    runtime = await build_runtime(settings)
    task = asyncio.create_task(run_telegram(runtime, limits=Limits(private=Budget(4, 1.0)), polling_timeout=1))
    try:
        await fake.wait_until(lambda: fake.count("getUpdates") > 0)
        await fake.say(DAN["id"], DAN, "/imagine a secret harbour --steps 2 --size 64x64")
        await fake.wait_until(lambda: len(fake.seen(DAN["id"], kind="photo")) == 1)
        await runtime.wait_idle()
        media: MediaStore = runtime.media
        key = media.put(b"\x89PNG fake")
        link = media.public_url(key)
        logging.getLogger("engine.vendors.somewhere").debug("fetching %s", link)
        logging.getLogger("bot.web").info("callback at /callbacks/zhiqite/%s", "tok_" + "x" * 30)
        logging.getLogger("engine.vendors.zhiqite").debug("signing with %s", vendor_secret)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.stop()
        await fake.close()
    text = caplog.text
    signature = link.split("sig=", 1)[1]
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # the run was logged at DEBUG
    assert fake.token not in text and fake.token.split(":", 1)[1] not in text
    assert vendor_secret not in text
    assert signature not in text and "x" * 30 not in text
    assert "aiosqlite" not in text  # no SQL with its parameters
