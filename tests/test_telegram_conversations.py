"""The bot on Telegram, driven over real HTTP through aiogram against a fake Bot API server:
private chats, groups, photos and replies, buttons, floods, and a restart mid-job."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import pytest

from bot.outbound import Budget, Limits
from bot.telegram.runner import run_telegram
from bot.wiring import build_runtime
from storage.records import JobState
from tests.chat_recorder import demo_settings
from tests.fake_telegram import FakeTelegram
from tests.images import png

ANN = FakeTelegram.user(101, "Ann")
BOB = FakeTelegram.user(102, "Bob")
CAT = FakeTelegram.user(103, "Cat", lang="zh-hans")
GROUP = -100500
# Telegram's limits scaled down so tests run in seconds; the fake enforces the same shape.
FAST = Limits(private=Budget(4, 1.0), group=Budget(20, 2.0), overall=Budget(1000, 1.0))


@pytest.fixture
async def fake():
    server = await FakeTelegram(group_limit=(20, 2.0), private_limit=(4, 1.0)).start()
    yield server
    await server.close()


@asynccontextmanager
async def running_bot(tmp_path, tiny_model_dir, fake, *, wait_for: str = "getUpdates", progress_interval_s: float = 0.2,
                      **overrides):
    """The bot process (runtime + Telegram runner) against the fake, on the data in tmp_path."""
    settings = demo_settings(tmp_path, tiny_model_dir, telegram_token=fake.token, telegram_api_base=fake.base_url,
                             platforms=["telegram"], **overrides)
    runtime = await build_runtime(settings)
    runtime.runner.progress_interval_s = progress_interval_s
    task = asyncio.create_task(run_telegram(runtime, limits=FAST, polling_timeout=1))
    try:
        calls_before = fake.count(wait_for)
        await fake.wait_until(lambda: fake.count(wait_for) > calls_before or task.done())
        if task.done():
            task.result()  # the runner failed to start: show why
        yield runtime
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.stop()


async def test_private_imagine_shows_progress_then_photo_with_buttons(tmp_path, tiny_model_dir, fake, caplog):
    caplog.set_level(logging.DEBUG)
    # Every progress event goes to the messenger: its limiter alone keeps the chat within limits.
    async with running_bot(tmp_path, tiny_model_dir, fake, progress_interval_s=0.0) as runtime:
        await fake.say(ANN["id"], ANN, "/imagine a red fox --steps 12 --size 256x256 --seed 3")
        await fake.wait_until(lambda: any(m.kind == "photo" and m.buttons() for m in fake.seen(ANN["id"])))
        await runtime.wait_idle()
    result = [m for m in fake.seen(ANN["id"]) if m.buttons() and m.kind == "photo"][-1]
    assert "a red fox" in result.text and "seed 3" in result.text
    assert [label for label, _ in result.buttons()] == ["U1", "V1", "🔄 Reroll"]
    status = fake.messages[(ANN["id"], 1000)]  # the first thing the bot said
    assert fake.count("editMessageMedia") >= 2 and status.kind == "photo"  # previews in place, then the result
    assert result.message_id == status.message_id and not status.deleted  # one message for the whole job
    assert [m.kind for m in fake.seen(ANN["id"])] == ["photo"]
    assert {"", "zh"} <= set(fake.commands)  # menus registered in both languages
    assert fake.flood_errors == 0
    assert fake.token not in caplog.text


async def test_plain_text_in_private_is_a_prompt_n_gives_an_album_and_a_429_is_waited_out(tmp_path, tiny_model_dir,
                                                                                           fake):
    fake.fail_next["sendMediaGroup"] = 1  # Telegram says "retry after 1" to the results
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(ANN["id"], ANN, "a lighthouse --n 3 --steps 2 --size 64x64")
        await fake.wait_until(lambda: fake.count("sendMediaGroup") == 2 and any(
            m.buttons() for m in fake.seen(ANN["id"], kind="text")))
        await runtime.wait_idle()
    photos = fake.seen(ANN["id"], kind="photo")
    assert len(photos) == 3 and len({p.media_group for p in photos}) == 1
    holder = [m for m in fake.seen(ANN["id"], kind="text") if m.buttons()][-1]
    assert [label for label, _ in holder.buttons()][:3] == ["U1", "U2", "U3"]
    assert fake.flood_errors == 1  # the injected one only


async def test_group_members_reroll_on_their_own_quota_but_only_the_owner_cancels(tmp_path, tiny_model_dir, fake):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(GROUP, ANN, "/imagine@imagebot a castle --steps 60 --size 512x512", thread_id=7)
        await fake.say(GROUP, BOB, "/imagine@otherbot not for us")
        await fake.say(GROUP, BOB, "just chatting")
        await fake.wait_until(lambda: any(m.buttons() for m in fake.seen(GROUP)))
        status = next(m for m in fake.seen(GROUP) if m.buttons())
        assert status.thread_id == 7  # answers stay in the forum topic
        cancel_data = status.buttons()[0][1]
        query = await fake.press(GROUP, BOB, status.message_id, cancel_data)
        await fake.wait_until(lambda: fake.answer_for(query) is not None)
        assert "Only the person" in fake.answer_for(query)["text"]
        query = await fake.press(GROUP, ANN, status.message_id, cancel_data)
        await fake.wait_until(lambda: fake.answer_for(query) is not None)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.CANCELLED and job.chat.thread_id == "7"

        await fake.say(GROUP, ANN, "/imagine a castle --steps 2 --size 64x64", thread_id=7)
        await fake.wait_until(lambda: any(m.kind == "photo" for m in fake.seen(GROUP)))
        result = next(m for m in fake.seen(GROUP) if m.kind == "photo")
        assert "@ann" in result.text
        reroll = dict(result.buttons())["🔄 Reroll"]
        query = await fake.press(GROUP, CAT, result.message_id, reroll)
        await fake.wait_until(lambda: len(fake.seen(GROUP, kind="photo")) == 2)
        await runtime.wait_idle()
        assert fake.answer_for(query)["text"] == "马上处理！"  # answered in Cat's language
        cat = await runtime.storage.user("telegram", str(CAT["id"]))
        assert (await runtime.storage.balance(cat.id)).free_left_today == 9
        assert len(await runtime.storage.recent_jobs()) == 3  # "@otherbot" and chatter were ignored
    assert fake.flood_errors == 0


async def test_a_forged_press_gets_a_clear_answer_and_changes_nothing(tmp_path, tiny_model_dir, fake):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(ANN["id"], ANN, "/imagine a cat --steps 2 --size 64x64")
        await fake.wait_until(lambda: any(m.kind == "photo" for m in fake.seen(ANN["id"])))
        await runtime.wait_idle()
        photo = fake.seen(ANN["id"], kind="photo")[0]
        for data in ("u:AAAAAAAAAAAA:0", "v:" + photo.buttons()[0][1].split(":")[1] + ":9", "rm -rf"):
            query = await fake.press(ANN["id"], ANN, photo.message_id, data)
            await fake.wait_until(lambda q=query: fake.answer_for(q) is not None)
            answer = fake.answer_for(query)
            assert answer["show_alert"] in (True, "true") and "no longer valid" in answer["text"]
        assert len(await runtime.storage.recent_jobs()) == 1


async def test_img2img_by_photo_caption_and_by_reply_to_a_photo(tmp_path, tiny_model_dir, fake, caplog):
    caplog.set_level(logging.DEBUG)
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(ANN["id"], ANN, "/imagine watercolor --steps 4", photo=png((96, 64)))
        photo_id = await fake.say(ANN["id"], ANN, "", photo=png((64, 96)))
        await fake.say(ANN["id"], ANN, "/imagine oil painting --steps 4", reply_to=photo_id)
        await fake.wait_until(lambda: len(fake.seen(ANN["id"], kind="photo")) == 2, timeout=90)
        # The bare photo got its own answer: what can be done with it.
        await fake.wait_until(lambda: any(m.buttons() and "/imagine" in m.text
                                          for m in fake.seen(ANN["id"], kind="text")))
        await runtime.wait_idle()
        jobs = await runtime.storage.recent_jobs()
        assert sorted(j.kind for j in jobs) == ["img2img", "img2img"]
        shapes = {j.spec.prompt: j.spec.width > j.spec.height for j in jobs}
        assert shapes == {"watercolor": True, "oil painting": False}  # each keeps its photo's shape
    assert fake.count("getFile") == 3  # the bare photo too: the bot offered what to do with it
    assert fake.token not in caplog.text


async def test_a_reply_with_only_flags_reruns_a_result_and_originals_come_as_png_files(tmp_path, tiny_model_dir,
                                                                                       fake):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(ANN["id"], ANN, "/imagine a cat --steps 2 --size 64x64 --seed 1")
        await fake.say(BOB["id"], BOB, "/settings originals on")
        await fake.say(BOB["id"], BOB, "/imagine a dog --steps 2 --size 64x64")
        await fake.wait_until(lambda: len(fake.seen(ANN["id"], kind="photo")) == 1)
        result = fake.seen(ANN["id"], kind="photo")[0]
        await fake.say(ANN["id"], ANN, "/imagine --seed 99", reply_to=result.message_id)
        await fake.wait_until(lambda: len(fake.seen(ANN["id"], kind="photo")) == 2
                              and len(fake.seen(BOB["id"], kind="document")) == 1)
        await runtime.wait_idle()
        newest = next(j for j in await runtime.storage.recent_jobs() if j.spec.prompt == "a cat" and j.parent_job)
        assert (newest.spec.seed, newest.kind) == (99, "txt2img")
    document = fake.seen(BOB["id"], kind="document")[0]
    assert document.files[0].startswith(b"\x89PNG") and b"parameters" in document.files[0]


@pytest.mark.parametrize("chat_id", [GROUP, ANN["id"]], ids=["group", "private"])
async def test_a_restart_mid_job_continues_the_same_status_message_and_charges_once(tmp_path, tiny_model_dir,
                                                                                   fake, chat_id):
    async with running_bot(tmp_path, tiny_model_dir, fake) as first:
        await fake.say(chat_id, ANN, "/imagine a slow one --steps 20 --size 256x256 --n 2")
        await fake.wait_until(lambda: any("%" in m.text for m in fake.seen(chat_id)))
        await first.scheduler.stop()  # the process dies in the middle of the job
    (status,) = fake.seen(chat_id)
    edits_before = status.edits
    async with running_bot(tmp_path, tiny_model_dir, fake) as second:
        await fake.wait_until(lambda: len(fake.seen(chat_id, kind="photo")) == 2, timeout=120)
        await second.wait_idle()
        (job,) = await second.storage.recent_jobs()
        assert job.state is JobState.DONE and job.status_message_id == str(status.message_id)
        assert status.edits > edits_before and status.deleted  # the same message went on, then made way
        ledger = [(e["entry"], e["amount"]) for e in await second.storage.ledger_of_job(job.id)]
        assert ledger == [("reserve", -2), ("commit", 1), ("commit", 1)]
        holder = [m for m in fake.seen(chat_id, kind="text") if m.buttons()][-1]
        presser = BOB if chat_id == GROUP else ANN
        query = await fake.press(chat_id, presser, holder.message_id, dict(holder.buttons())["V1"])
        await fake.wait_until(lambda: fake.answer_for(query) is not None)
        assert fake.answer_for(query).get("text") == "On it!"  # buttons from before the restart work
        await second.wait_idle()
    assert fake.flood_errors == 0


async def test_webhook_mode_takes_updates_only_with_the_secret(tmp_path, tiny_model_dir, fake, unused_tcp_port,
                                                               caplog):
    import aiohttp

    caplog.set_level(logging.INFO)
    base = f"http://127.0.0.1:{unused_tcp_port}"
    async with running_bot(tmp_path, tiny_model_dir, fake, telegram_webhook=True, web_port=unused_tcp_port,
                           public_base_url=base, wait_for="setWebhook") as runtime:
        assert fake.webhook is not None and fake.webhook["url"].startswith(base + "/telegram/")
        assert fake.token not in fake.webhook["url"] and len(fake.webhook["secret_token"]) >= 32
        await fake.say(ANN["id"], ANN, "/imagine a harbour --steps 2 --size 64x64")
        await fake.wait_until(lambda: len(fake.seen(ANN["id"], kind="photo")) == 1)
        await runtime.wait_idle()
        forged = {"update_id": 999, "message": {"message_id": 50, "date": 0, "chat": fake.chat(ANN["id"]),
                                                "from": ANN, "text": "/imagine forged"}}
        async with aiohttp.ClientSession() as session:
            async with session.post(fake.webhook["url"], json=forged) as response:
                assert response.status == 401
            async with session.post(fake.webhook["url"], json=forged,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}) as response:
                assert response.status == 401
        assert len(await runtime.storage.recent_jobs()) == 1
    assert fake.count("getUpdates") == 0 and fake.token not in caplog.text


async def test_in_a_group_a_reply_with_only_flags_reruns_the_result(tmp_path, tiny_model_dir, fake):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(GROUP, ANN, "/imagine@imagebot a cat --steps 2 --size 64x64 --seed 1")
        await fake.wait_until(lambda: len(fake.seen(GROUP, kind="photo")) == 1)
        result = fake.seen(GROUP, kind="photo")[0]
        await fake.say(GROUP, BOB, "--seed 9 --steps 2", reply_to=result.message_id)  # no command: a re-run
        await fake.say(GROUP, BOB, "nice one", reply_to=result.message_id)  # chatter stays unanswered
        await fake.wait_until(lambda: len(fake.seen(GROUP, kind="photo")) == 2)
        await runtime.wait_idle()
        rerun = next(j for j in await runtime.storage.recent_jobs() if j.parent_job)
        assert (rerun.spec.prompt, rerun.spec.seed) == ("a cat", 9)
        assert len(await runtime.storage.recent_jobs()) == 2


async def test_a_bare_photo_in_private_offers_upscale_and_use_as_face(tmp_path, tiny_model_dir, with_tools, fake):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.say(ANN["id"], ANN, photo=png((64, 64)))
        await fake.wait_until(lambda: any(m.buttons() for m in fake.seen(ANN["id"], kind="text")))
        offer = next(m for m in fake.seen(ANN["id"], kind="text") if m.buttons())
        assert "/imagine" in offer.text and [b for b, _ in offer.buttons()] == ["⬆️ Upscale", "🙂 Use as face"]
        query = await fake.press(ANN["id"], ANN, offer.message_id, dict(offer.buttons())["⬆️ Upscale"])
        await fake.wait_until(lambda: fake.answer_for(query) is not None and
                              len(fake.seen(ANN["id"], kind="photo")) == 1)
        await runtime.wait_idle()
        upscaled = fake.seen(ANN["id"], kind="photo")[0]
        assert [b for b, _ in upscaled.buttons()] == ["U1", "V1"]  # an upscale can be upscaled again
        face = await fake.press(ANN["id"], ANN, offer.message_id, dict(offer.buttons())["🙂 Use as face"])
        await fake.wait_until(lambda: fake.answer_for(face) is not None)
        assert "face" in fake.answer_for(face)["text"]
        user = await runtime.storage.user("telegram", str(ANN["id"]))
        assert user.settings.get("face")
        forged = await fake.press(ANN["id"], BOB, offer.message_id, "p:u:" + "0" * 16)
        await fake.wait_until(lambda: fake.answer_for(forged) is not None)
        assert fake.answer_for(forged)["show_alert"] is True


async def test_without_media_edits_progress_falls_back_to_text(tmp_path, tiny_model_dir, fake):
    fake.media_edits = False  # an older or local Bot API server
    async with running_bot(tmp_path, tiny_model_dir, fake, progress_interval_s=0.0) as runtime:
        await fake.say(ANN["id"], ANN, "/imagine a slow fox --steps 40 --size 256x256")
        await fake.wait_until(lambda: len(fake.seen(ANN["id"], kind="photo")) == 1)
        await runtime.wait_idle()
    assert fake.count("editMessageMedia", ANN["id"]) == 1  # refused once, then not asked again
    assert fake.count("editMessageText", ANN["id"]) >= 2  # progress still shown, as text
    assert fake.flood_errors == 0
