"""The whole /imagine path through the real parts: handlers, SQLite, scheduler, the tiny
diffusers model loaded from disk, progress, delivery, and the ledger."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from handlers.images import read_parameters
from storage.records import JobState
from tests.chat_recorder import GROUP, RecordingMessenger, demo_settings, person, press, say, started_runtime
from tests.images import image_bytes


async def _finished(runtime, chat, count=1):
    await chat.wait_for(lambda s: s.kind == "images" and len(chat.of("images")) >= count)
    await runtime.wait_idle()


async def test_imagine_queues_shows_progress_and_delivers_stamped_images(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a red fox in snow --ar 3:2 --n 2 --seed 7 --steps 4"), chat)
    await _finished(runtime, chat)
    assert chat.log[0].kind == "text" and "Queued" in chat.log[0].text
    assert any(s.kind == "edit" and "%" in s.text for s in chat.log)
    result = chat.of("images")[0]
    assert len(result.images) == 2
    assert "seed 7, 8" in result.text and "a red fox in snow" in result.text
    assert [b.label for b in result.buttons[0]] == ["U1", "U2"]
    with Image.open(io.BytesIO(result.images[0].png)) as im:
        assert im.size == (624, 416)  # 3:2 around the model's 512 side, multiples of 8
    assert "Seed: 7" in read_parameters(result.images[0].png)
    user = await runtime.storage.user("console", "ann")
    balance = await runtime.storage.balance(user.id)
    assert (balance.free_left_today, balance.reserved) == (8, 0)


async def test_same_seed_gives_the_same_image_bytes(bot):
    runtime, chat = bot
    for _ in range(2):
        await runtime.app.handle_message(say("/imagine a lighthouse --seed 42 --steps 3 --size 64x64"), chat)
    await _finished(runtime, chat, 2)
    first, second = chat.of("images")
    assert first.images[0].png == second.images[0].png


async def test_img2img_with_an_attached_picture_and_inpaint_with_a_mask(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine watercolor --steps 4 --seed 1", images=[image_bytes(96, 64)]),
                                     chat)
    await runtime.app.handle_message(
        say("/imagine a hat --steps 4 --seed 1", reply_images=[image_bytes(64, 64)],
            mask=image_bytes(64, 64, (255, 255, 255))),
        chat,
    )
    await _finished(runtime, chat, 2)
    jobs = await runtime.storage.recent_jobs()
    assert sorted(j.kind for j in jobs) == ["img2img", "inpaint"]
    img2img = next(j for j in jobs if j.kind == "img2img")
    assert img2img.spec.width > img2img.spec.height  # keeps the picture's shape


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/imagine", "describe the picture"),
        ("/imagine a cat --steps 500", "steps = 500 is too large"),
        ("/imagine a cat --chaos 3", "Unknown flag"),
        ("/imagine a cat --n 9", "n = 9 is too large"),
        ("/imagine a cat --model nope", "no model “nope”"),
        ("/imagine a cat --backend nope", "no backend called “nope”"),
        ("/imagine " + "x" * 1600, "prompt is too long"),
        ("/imagine a cat --image /etc/passwd", "only in the console"),
    ],
)
async def test_bad_requests_get_a_clear_answer_and_cost_nothing(bot, text, expected):
    runtime, chat = bot
    await runtime.app.handle_message(say(text), chat)
    assert expected in chat.log[-1].text
    assert await runtime.storage.recent_jobs() == []


async def test_corrupt_and_huge_uploads_are_refused_before_any_job(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a cat", images=[b"\x89PNG not really"]), chat)
    assert "cannot be read" in chat.log[-1].text
    await runtime.app.handle_message(say("/imagine a cat", images=[image_bytes(5000, 4000)]), chat)
    assert "too large" in chat.log[-1].text
    assert await runtime.storage.recent_jobs() == []


async def test_chinese_users_get_chinese_answers(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine 一只猫 --steps 0", user=person("li", lang="zh-hans")), chat)
    assert "太小" in chat.log[-1].text
    await runtime.app.handle_message(say("/imagine 雪地里的红狐狸 --steps 3 --size 64x64",
                                         user=person("li", lang="zh-hans")), chat)
    await _finished(runtime, chat)
    assert "种子" in chat.of("images")[0].text


async def test_over_quota_is_refused_with_the_numbers_in_pictures(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a cat --n 4 --steps 1 --size 64x64"), chat)
    await runtime.app.handle_message(say("/imagine a cat --n 4 --steps 1 --size 64x64"), chat)
    await runtime.app.handle_message(say("/imagine a cat --n 4"), chat)  # 8 of 10 free pictures are held
    assert "needs 4 of your free pictures and 2 are left today" in chat.log[-1].text  # no "credits" for free users
    await runtime.wait_idle()
    assert len(await runtime.storage.recent_jobs()) == 2


async def test_cancel_while_running_refunds_everything(tmp_path, tiny_model_dir):
    chat = RecordingMessenger()
    runtime = await started_runtime(demo_settings(tmp_path, tiny_model_dir), chat)
    try:
        await runtime.app.handle_message(say("/imagine slow --steps 100 --size 512x512 --n 2"), chat)
        await chat.wait_for(lambda s: s.kind == "edit" and "%" in s.text)
        await runtime.app.handle_message(say("/cancel"), chat)
        await runtime.wait_idle()
        job = (await runtime.storage.recent_jobs())[0]
        assert job.state is JobState.CANCELLED
        assert chat.of("images") == []
        user = await runtime.storage.user("console", "ann")
        assert (await runtime.storage.balance(user.id)).free_left_today == 10
    finally:
        await runtime.stop()


async def test_an_unavailable_model_fails_clearly_and_refunds(tmp_path, tiny_model_dir):
    chat = RecordingMessenger()
    settings = demo_settings(tmp_path, tiny_model_dir, default_model="sd-turbo")
    runtime = await started_runtime(settings, chat)
    try:
        await runtime.app.handle_message(say("/imagine a cat"), chat)
        await runtime.wait_idle()
        job = (await runtime.storage.recent_jobs())[0]
        assert job.state is JobState.FAILED and job.error_key == "error-model-unavailable"
        assert "demo" in chat.log[-1].text  # points the user at the demo model
        user = await runtime.storage.user("console", "ann")
        assert (await runtime.storage.balance(user.id)).free_left_today == 10
    finally:
        await runtime.stop()


async def test_group_buttons_reroll_for_anyone_cancel_only_for_the_owner(tmp_path, tiny_model_dir):
    chat = RecordingMessenger()
    runtime = await started_runtime(demo_settings(tmp_path, tiny_model_dir), chat)
    ann, bob = person("ann"), person("bob")
    try:
        await runtime.app.handle_message(say("/imagine@bot a castle --steps 100 --size 512x512", user=ann,
                                             chat=GROUP), chat)
        await chat.wait_for(lambda s: s.kind == "edit" and "%" in s.text)
        job = (await runtime.storage.recent_jobs())[0]
        await runtime.app.handle_press(press(f"x:{job.id}", user=bob, chat=GROUP), chat)
        assert chat.of("answer")[-1].text.startswith("Only the person")
        await runtime.app.handle_press(press(f"x:{job.id}", user=ann, chat=GROUP), chat)
        await runtime.wait_idle()
        assert (await runtime.storage.job(job.id)).state is JobState.CANCELLED

        await runtime.app.handle_message(say("/imagine a castle --steps 3 --size 64x64", user=ann, chat=GROUP), chat)
        await _finished(runtime, chat)
        result = chat.of("images")[-1]
        assert "@ann" in result.text
        reroll = result.buttons[-1][0].data
        await runtime.app.handle_press(press(reroll, user=bob, chat=GROUP), chat)
        await _finished(runtime, chat, 2)
        rerolled = (await runtime.storage.recent_jobs())[0]
        bob_user = await runtime.storage.user("console", "bob")
        assert rerolled.user_id == bob_user.id and rerolled.parent_job is not None
        assert (await runtime.storage.balance(bob_user.id)).free_left_today == 9  # on bob's quota
    finally:
        await runtime.stop()


async def test_forged_and_foreign_presses_change_nothing(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a cat --steps 3 --size 64x64"), chat)
    await _finished(runtime, chat)
    job = (await runtime.storage.recent_jobs())[0]
    for data in ("u:nosuchjob:0", f"u:{job.id}:7", f"v:{job.id}:x", "zz", f"r:{job.id}:extra:stuff"[:0] + "r:"):
        await runtime.app.handle_press(press(data), chat)
        assert chat.log[-1].kind == "answer" and chat.log[-1].alert
    await runtime.app.handle_press(press(f"r:{job.id}", chat=GROUP), chat)  # a press from another chat
    assert chat.log[-1].alert
    assert len(await runtime.storage.recent_jobs()) == 1


async def test_vary_and_upscale_buttons_start_new_jobs_from_the_chosen_picture(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a cat --steps 3 --size 64x64 --n 2"), chat)
    await _finished(runtime, chat)
    result = chat.of("images")[0]
    await runtime.app.handle_press(press(result.buttons[1][1].data), chat)  # V2
    await _finished(runtime, chat, 2)
    vary = (await runtime.storage.recent_jobs())[0]
    parent = await runtime.storage.job(vary.parent_job)
    assert vary.kind == "img2img" and vary.spec.init_image == parent.results[1].media_key
    await runtime.app.handle_press(press(result.buttons[0][0].data), chat)  # U1
    await runtime.wait_idle()
    upscale = (await runtime.storage.recent_jobs())[0]
    assert upscale.kind == "upscale" and upscale.spec.image == parent.results[0].media_key


async def test_reply_with_only_flags_reruns_the_result_with_changes(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/imagine a cat --steps 3 --size 64x64 --seed 5"), chat)
    await _finished(runtime, chat)
    result = chat.of("images")[0]
    await runtime.app.handle_message(say("/imagine --seed 9 --steps 2", reply_to=result.message_id), chat)
    await _finished(runtime, chat, 2)
    rerun = (await runtime.storage.recent_jobs())[0]
    assert (rerun.spec.prompt, rerun.spec.seed, rerun.spec.steps) == ("a cat", 9, 2)


async def test_settings_become_the_defaults_of_later_jobs(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/settings ar 16:9"), chat)
    await runtime.app.handle_message(say("/settings steps 3"), chat)
    assert "aspect: 16:9" in chat.log[-1].text
    await runtime.app.handle_message(say("/settings steps lots"), chat)
    assert "not a valid steps" in chat.log[-1].text
    await runtime.app.handle_message(say("/imagine a cat"), chat)
    await _finished(runtime, chat)
    job = (await runtime.storage.recent_jobs())[0]
    assert job.spec.steps == 3 and job.spec.width > job.spec.height
    await runtime.app.handle_message(say("/settings originals on"), chat)
    await runtime.app.handle_message(say("/imagine a cat"), chat)
    await _finished(runtime, chat, 2)
    assert chat.of("images")[0].as_files is False and chat.of("images")[1].as_files is True
    await runtime.app.handle_message(say("/lang zh-CN"), chat)
    await runtime.app.handle_message(say("/balance"), chat)
    assert "今日剩余免费张数" in chat.log[-1].text



async def test_lang_and_settings_offer_russian_and_speak_it(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/lang"), chat)
    assert [b.label for b in chat.log[-1].buttons[0]] == ["English", "简体中文", "Русский"]
    await runtime.app.handle_message(say("/settings"), chat)
    lang_row = next(row for row in chat.log[-1].buttons if any(b.data.startswith("s:lang:") for b in row))
    assert [b.data for b in lang_row] == ["s:lang:en", "s:lang:zh-CN", "s:lang:ru"]
    await runtime.app.handle_press(press("s:lang:ru", message_id=chat.log[-1].message_id), chat)
    await runtime.app.handle_message(say("/balance"), chat)
    assert "Бесплатных картинок на сегодня осталось" in chat.log[-1].text
    await runtime.app.handle_message(say("/lang en"), chat)
    # A client that says ru-RU is answered in Russian before choosing anything.
    await runtime.app.handle_message(say("/balance", user=person("ivan", lang="ru-RU")), chat)
    assert "Бесплатных картинок на сегодня осталось" in chat.log[-1].text

async def test_a_job_interrupted_by_a_restart_is_finished_once(tmp_path, tiny_model_dir):
    settings = demo_settings(tmp_path, tiny_model_dir)
    chat1 = RecordingMessenger()
    first = await started_runtime(settings, chat1)
    await first.app.handle_message(say("/imagine slow --steps 40 --size 320x320 --n 2 --seed 3"), chat1)
    await chat1.wait_for(lambda s: s.kind == "edit" and "%" in s.text)
    await first.scheduler.stop()  # the process dies: the job stays 'running' on disk
    await first.storage.close()
    job_id = (await asyncio.wait_for(_only_job(settings), 10)).id

    chat2 = RecordingMessenger()
    second = await started_runtime(settings, chat2)
    try:
        await chat2.wait_for(lambda s: s.kind == "images")
        await second.wait_idle()
        job = await second.storage.job(job_id)
        assert job.state is JobState.DONE and job.attempts == 2
        assert chat2.of("edit")[0].message_id == job.status_message_id  # the same status message continues
        entries = [(e["entry"], e["amount"]) for e in await second.storage.ledger_of_job(job_id)]
        assert entries == [("reserve", -2), ("commit", 1), ("commit", 1)]
    finally:
        await second.stop()


async def _only_job(settings):
    from storage.store import Storage

    storage = await Storage.open(settings.db_path)
    try:
        (job,) = await storage.recent_jobs()
        assert job.state is JobState.RUNNING
        return job
    finally:
        await storage.close()


async def test_group_admins_set_chat_defaults_and_a_shared_pool(bot):
    runtime, chat = bot
    admin_says = lambda text: say(text, user=person("ann"), chat=GROUP)  # noqa: E731
    await runtime.app.handle_message(admin_says("/settings chat pool 2"), chat)
    assert "Only the chat's admins" in chat.log[-1].text
    from dataclasses import replace

    incoming = replace(admin_says("/settings chat pool 2"), sender_is_chat_admin=True)
    await runtime.app.handle_message(incoming, chat)
    await runtime.app.handle_message(replace(admin_says("/settings chat ar 2:3"), sender_is_chat_admin=True), chat)
    await runtime.app.handle_message(say("/imagine a tower --steps 2 --n 2", user=person("bob"), chat=GROUP), chat)
    await _finished(runtime, chat)
    job = (await runtime.storage.recent_jobs())[0]
    assert job.spec.height > job.spec.width  # the chat's default aspect
    bob = await runtime.storage.user("console", "bob")
    assert (await runtime.storage.balance(bob.id)).free_left_today == 10  # paid by the pool
    await runtime.app.handle_message(say("/balance", user=person("bob"), chat=GROUP), chat)
    assert "shared pool: 0 of 2" in chat.log[-1].text


async def test_models_are_searchable_paged_and_say_which_cannot_be_had_here(bot):
    runtime, chat = bot
    await runtime.app.handle_message(say("/models"), chat)
    overview = chat.log[-1].text
    assert "demo" in overview and "sd-turbo (not downloaded, no internet here)" in overview
    await runtime.app.handle_message(say("/models local turbo"), chat)
    found = chat.log[-1].text
    assert "Models on local" in found and "sd-turbo" in found and "demo" not in found.split("\n", 1)[1]
    await runtime.app.handle_message(say("/models local page 9"), chat)
    assert "page 1 of 1" in chat.log[-1].text  # past the end: the last page
