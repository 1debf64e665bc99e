"""The Telegram adapter over real HTTP: aiogram talks to a fake Bot API server on 127.0.0.1.

Updates must reach the handlers as neutral ``Incoming`` / ``Press`` values (a recording
stand-in plays the handlers here), and what the handlers send must reach the chat the
way Telegram wants it: within its limits, flood-safe, with no token in any log.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage
from PIL import Image

from bot.logs import redact_in_logs
from bot.outbound import Budget, Limits, OutboundLimiter, PlatformOutbound
from bot.telegram.adapter import TelegramAdapter
from bot.telegram.messenger import (
    CAPTION_LIMIT,
    TelegramMessenger,
    cut_utf16,
    fits_as_photo,
    telegram_policy,
    utf16_len,
)
from bot.telegram.runner import make_bot, poll_until_cancelled
from handlers.port import Button, ChatRef, Incoming, Messenger, Outcome, OutImage, Press
from tests.fake_telegram import BOT_USERNAME, FakeTelegram
from tests.images import png

ANN = FakeTelegram.user(101, "Ann")
BOB = FakeTelegram.user(102, "Bob", lang="zh-hans")
NONAME = FakeTelegram.user(103, "Cat", username=False)
GROUP = -100500
# The fake's limits below (4 a second in private, 20 per second in a group): the limiter
# keeps its margin under them, as under Telegram's real ones.
FAST = Limits(private=Budget(4, 1.0), group=Budget(20, 1.0), overall=Budget(1000, 1.0))


class RecordingApp:
    """Stands in for handlers.app.App: records what the adapter hands over."""

    def __init__(self) -> None:
        self.incoming: list[Incoming] = []
        self.presses: list[Press] = []
        self.on_press: Callable[[Press, Messenger], Awaitable[None]] | None = None
        self.changed = asyncio.Event()

    async def handle_message(self, incoming: Incoming, messenger: Messenger) -> Outcome:
        self.incoming.append(incoming)
        self.changed.set()
        return Outcome()

    async def handle_press(self, press: Press, messenger: Messenger) -> Outcome:
        self.presses.append(press)
        answered = False
        if self.on_press is not None:
            await self.on_press(press, messenger)
            answered = True
        self.changed.set()
        return Outcome(answered=answered)

    async def wait(self, predicate: Callable[[], bool]) -> None:
        async def watch() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(watch(), 10)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram(group_limit=(20, 1.0), private_limit=(4, 1.0)).start()
    yield server
    await server.close()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(fake.base_url, fake.token)
    yield bot
    await bot.session.close()


def telegram_limiter(limits: Limits = FAST) -> PlatformOutbound:
    return OutboundLimiter().platform("telegram", limits, policy=telegram_policy)


@pytest.fixture
async def limiter() -> AsyncIterator[PlatformOutbound]:
    limiter = telegram_limiter()
    yield limiter
    await limiter.close()


@pytest.fixture
def messenger(bot: Bot, limiter: PlatformOutbound) -> TelegramMessenger:
    return TelegramMessenger(bot, limiter)


@pytest.fixture
async def app(fake: FakeTelegram, bot: Bot, messenger: TelegramMessenger) -> AsyncIterator[RecordingApp]:
    """The adapter polling the fake, handing updates to a recording App."""
    app = RecordingApp()
    adapter = TelegramAdapter(app, messenger, bot, username=BOT_USERNAME, max_download_bytes=200_000)
    dispatcher = Dispatcher()
    dispatcher.include_router(adapter.router)
    task = asyncio.create_task(poll_until_cancelled(dispatcher, bot, polling_timeout=1))
    yield app
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# --- updates in -------------------------------------------------------------------------------


async def test_private_text_reaches_the_handlers_as_a_private_incoming(fake, app):
    await fake.say(ANN["id"], ANN, "a red fox --ar 3:2")
    await app.wait(lambda: len(app.incoming) == 1)
    (incoming,) = app.incoming
    assert incoming.text == "a red fox --ar 3:2"
    assert incoming.chat == ChatRef("telegram", "101", None, is_private=True)
    assert incoming.user.user_id == "101" and incoming.user.language_hint == "en"
    assert incoming.user.mention == ""  # nobody to mention in a private chat
    assert incoming.sender_is_chat_admin and incoming.images == [] and incoming.reply_to_message_id is None


async def test_in_groups_only_commands_for_this_bot_arrive_with_topic_and_mention(fake, app):
    fake.admins.add((GROUP, BOB["id"]))
    await fake.say(GROUP, ANN, "just chatting", thread_id=7)
    await fake.say(GROUP, ANN, "/imagine@otherbot not ours", thread_id=7)
    await fake.say(GROUP, ANN, "/imagine@ImageBot a castle", thread_id=7)
    await fake.say(GROUP, BOB, "/settings chat pool 5")
    await fake.say(GROUP, NONAME, "/balance")
    await app.wait(lambda: len(app.incoming) == 3)
    castle, settings, balance = sorted(app.incoming, key=lambda i: int(i.message_id))
    assert castle.text == "/imagine@ImageBot a castle"
    assert castle.chat == ChatRef("telegram", str(GROUP), "7", is_private=False)
    assert castle.user.mention == "@ann" and not castle.sender_is_chat_admin
    assert settings.sender_is_chat_admin and settings.user.language_hint == "zh-hans"
    assert settings.chat.thread_id is None
    assert balance.user.mention == "Cat"  # no username: the name


async def test_a_photo_with_a_caption_command_brings_the_photo_bytes(fake, app):
    picture = png((96, 64))
    await fake.say(ANN["id"], ANN, "/imagine watercolor", photo=picture)
    await app.wait(lambda: len(app.incoming) == 1)
    assert app.incoming[0].text == "/imagine watercolor" and app.incoming[0].images == [picture]


async def test_a_reply_to_a_photo_brings_the_replied_photo_and_an_attached_one(fake, app):
    target, face = png((64, 96)), png((32, 32), (200, 10, 10))
    photo_id = await fake.say(GROUP, BOB, "", photo=target)
    await fake.say(GROUP, ANN, "/swap", document=face, reply_to=photo_id)
    await app.wait(lambda: len(app.incoming) == 1)
    (incoming,) = app.incoming
    assert incoming.reply_to_message_id == str(photo_id)
    assert incoming.reply_images == [target] and incoming.images == [face]
    assert fake.count("getFile") == 2


async def test_a_bare_photo_reaches_the_handlers_in_private_and_is_not_even_downloaded_in_groups(fake, app):
    await fake.say(GROUP, ANN, "", photo=png())  # group chatter: not for us
    await fake.say(ANN["id"], ANN, "", photo=png())  # in private: the handlers offer what to do with it
    await fake.say(ANN["id"], ANN, "/help")
    await app.wait(lambda: len(app.incoming) == 2)
    bare = next(i for i in app.incoming if not i.text)
    assert (len(bare.images), bare.chat.is_private) == (1, True) and {i.text for i in app.incoming} == {"", "/help"}
    assert fake.count("getFile") == 1


async def test_a_huge_file_is_refused_with_a_message_in_the_users_language(fake, app):
    noise = Image.effect_noise((400, 400), 100).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    assert len(buf.getvalue()) > 200_000  # the adapter's cap in this test
    await fake.say(BOB["id"], BOB, "/imagine big", photo=buf.getvalue())
    await fake.wait_until(lambda: bool(fake.seen(BOB["id"])))
    (refusal,) = fake.seen(BOB["id"])
    assert "MB" in refusal.text and "文件" in refusal.text and refusal.reply_to == 1
    assert app.incoming == [] and fake.count("getFile") == 0


async def test_a_press_reaches_the_handlers_and_is_answered_even_when_they_stay_silent(fake, app, messenger):
    status = await messenger.send_text(ChatRef("telegram", str(GROUP), "7", is_private=False), "⏳",
                                       buttons=[[Button("Cancel", "x:job1")]])
    query = await fake.press(GROUP, BOB, int(status.message_id), "x:job1")
    await app.wait(lambda: len(app.presses) == 1)
    await fake.wait_until(lambda: fake.answer_for(query) is not None)
    (press,) = app.presses
    assert (press.data, press.press_id, press.message_id) == ("x:job1", query, status.message_id)
    assert press.chat == ChatRef("telegram", str(GROUP), "7", is_private=False)
    assert press.user.user_id == str(BOB["id"])
    assert fake.count("answerCallbackQuery") == 1


async def test_a_press_answered_by_the_handlers_is_answered_once(fake, app, messenger):
    async def answer(press: Press, m: Messenger) -> None:
        await m.answer_press(press, "Only the person who asked can cancel", alert=True)

    app.on_press = answer
    status = await messenger.send_text(ChatRef("telegram", "101"), "⏳", buttons=[[Button("Cancel", "x:j")]])
    query = await fake.press(ANN["id"], ANN, int(status.message_id), "x:j")
    await app.wait(lambda: len(app.presses) == 1)
    assert fake.answer_for(query)["show_alert"] is True
    assert fake.count("answerCallbackQuery") == 1


# --- messages out ---------------------------------------------------------------------------


async def test_several_images_go_out_as_an_album_with_the_buttons_in_a_message_under_it(fake, messenger):
    chat = ChatRef("telegram", str(GROUP), "7", is_private=False)
    buttons = [[Button(f"U{k}", f"u:j:{k}") for k in range(3)], [Button("🔄", "r:j")]]
    delivered = await messenger.send_images(chat, [OutImage(png(), f"{k}.png") for k in range(3)],
                                            caption="a fox\nseed 1", buttons=buttons, reply_to="5")
    refs = delivered.messages
    photos = fake.seen(GROUP, kind="photo")
    holder = fake.seen(GROUP, kind="text")[0]
    assert len(photos) == 3 and len({p.media_group for p in photos}) == 1
    assert photos[0].text == "a fox\nseed 1" and photos[0].reply_to == 5
    assert all(p.thread_id == 7 for p in photos + [holder])
    assert holder.buttons()[:3] == [("U0", "u:j:0"), ("U1", "u:j:1"), ("U2", "u:j:2")]
    assert holder.reply_to == photos[0].message_id
    assert [int(r.message_id) for r in refs] == [m.message_id for m in photos + [holder]]


async def test_one_image_is_one_photo_carrying_its_buttons_and_a_cut_caption(fake, messenger):
    caption = "a fox " * 300 + "🦊" * 10
    await messenger.send_images(ChatRef("telegram", "101"), [OutImage(png(), "1.png")], caption=caption,
                                buttons=[[Button("U1", "u:j:0")]])
    (photo,) = fake.seen(ANN["id"])
    assert photo.kind == "photo" and photo.buttons() == [("U1", "u:j:0")]
    assert utf16_len(photo.text) <= CAPTION_LIMIT and photo.text.endswith("…")
    assert caption.startswith(photo.text[:-1]) and caption[len(photo.text) - 1] == " "  # cut between words


def test_captions_are_cut_in_telegrams_utf16_units_at_a_word_boundary():
    assert cut_utf16("short", 1024) == "short"
    emoji = "🦊" * 600  # 1200 UTF-16 units in 600 characters
    cut = cut_utf16(emoji, CAPTION_LIMIT)
    assert utf16_len(cut) <= CAPTION_LIMIT and cut.endswith("…") and "\ud83e" not in cut
    words = cut_utf16("一只狐狸 " * 400, CAPTION_LIMIT)
    assert utf16_len(words) <= CAPTION_LIMIT and words.endswith("狐狸…")


async def test_pictures_beyond_telegrams_photo_limits_or_asked_as_files_go_out_as_documents(fake, messenger):
    too_long = png((4000, 150))  # ratio above 20
    assert not fits_as_photo(too_long) and fits_as_photo(png((2000, 1000)))
    chat = ChatRef("telegram", "101")
    await messenger.send_images(chat, [OutImage(too_long, "long.png")], caption="long")
    await messenger.send_images(chat, [OutImage(png(), "a.png"), OutImage(png(), "b.png")], caption="originals",
                                as_files=True)
    docs = fake.seen(ANN["id"], kind="document")
    assert len(docs) == 3 and docs[0].files[0] == too_long
    assert fake.count("sendPhoto") == 0 and fake.flood_errors == 0


async def test_a_status_becomes_a_photo_in_place_and_not_modified_is_no_error(fake, messenger, limiter, caplog):
    chat = ChatRef("telegram", "101")
    status = await messenger.send_text(chat, "queued #1", buttons=[[Button("Cancel", "x:j")]])
    await messenger.edit_status(status, "queued #1", buttons=[[Button("Cancel", "x:j")]])  # not modified
    await limiter.idle()
    await messenger.edit_status(status, "25%", preview=png((32, 32)), buttons=[[Button("Cancel", "x:j")]])
    await limiter.idle()
    await messenger.edit_status(status, "50%", buttons=[[Button("Cancel", "x:j")]])
    await limiter.idle()
    (shown,) = fake.seen(ANN["id"])
    assert shown.message_id == int(status.message_id)  # the same message all along
    assert (shown.kind, shown.text, shown.edits) == ("photo", "50%", 2)
    assert "failed" not in caplog.text and limiter.dropped_edits == 0


async def test_after_a_restart_a_photo_status_is_recognised_and_its_caption_edited(fake, bot, limiter):
    chat = ChatRef("telegram", "101")
    before = TelegramMessenger(bot, limiter)
    status = await before.send_text(chat, "queued")
    await before.edit_status(status, "10%", preview=png((32, 32)))
    await limiter.idle()
    after = TelegramMessenger(bot, limiter)  # a new process knows nothing of it
    await after.edit_status(status, "failed: out of memory")
    await limiter.idle()
    assert fake.seen(ANN["id"])[0].text == "failed: out of memory"


async def test_group_statuses_get_no_previews(fake, messenger, limiter):
    status = await messenger.send_text(ChatRef("telegram", str(GROUP), is_private=False), "queued")
    await messenger.edit_status(status, "25%", preview=png((32, 32)))
    await limiter.idle()
    assert fake.seen(GROUP)[0].kind == "text" and fake.count("editMessageMedia") == 0


async def test_edits_of_a_deleted_status_are_harmless(fake, messenger, limiter):
    chat = ChatRef("telegram", "101")
    status = await messenger.send_text(chat, "queued")
    await messenger.delete(status)
    await messenger.delete(status)  # already gone
    await messenger.edit_status(status, "50%")
    await limiter.idle()
    assert fake.seen(ANN["id"]) == [] and limiter.dropped_edits == 0


async def test_a_429_is_honoured_and_the_result_still_arrives(fake, messenger):
    fake.fail_next["sendPhoto"] = 1
    await messenger.send_images(ChatRef("telegram", "101"), [OutImage(png(), "1.png")], caption="fox")
    assert fake.count("sendPhoto") == 2 and fake.flood_errors == 1
    assert len(fake.seen(ANN["id"], kind="photo")) == 1


async def test_a_burst_stays_within_the_groups_limit_results_all_arrive_edits_coalesce(fake, messenger, limiter):
    chat = ChatRef("telegram", str(GROUP), is_private=False)
    status = await messenger.send_text(chat, "⏳")
    for k in range(30):  # progress far faster than a group may be edited
        await messenger.edit_status(status, f"🎨 {k}%")
    results = [messenger.send_text(chat, f"result {k}") for k in range(25)]  # more than 20 per window
    await asyncio.gather(*results)
    await limiter.idle()
    texts = [m.text for m in fake.seen(GROUP, kind="text")]
    assert [t for t in texts if t.startswith("result")] == [f"result {k}" for k in range(25)]  # none dropped
    assert fake.flood_errors == 0
    assert fake.count("editMessageText") < 5 and limiter.dropped_edits >= 25
    assert texts[0] == "🎨 29%"  # the newest progress won


async def test_the_token_and_file_urls_never_reach_a_log(fake, bot, caplog):
    caplog.set_level(logging.DEBUG)
    redact_in_logs(fake.token)
    app = RecordingApp()
    adapter = TelegramAdapter(app, TelegramMessenger(bot, telegram_limiter()), bot, username=BOT_USERNAME)
    fake.files["file1"] = png()
    with pytest.raises(Exception):  # noqa: B017
        await adapter.download("missing", None)
    logging.getLogger("somewhere").info("a url %s", bot.session.api.file_url(bot.token, "photos/x.jpg"))
    try:
        raise RuntimeError(bot.session.api.api_url(bot.token, "getMe"))
    except RuntimeError:
        logging.getLogger("somewhere").exception("boom")
    assert await adapter.download("file1", None) == png()
    assert "boom" in caplog.text and "<redacted>" in caplog.text
    assert fake.token not in caplog.text
    assert all(fake.token not in r.getMessage() and fake.token not in (r.exc_text or "") for r in caplog.records)


# --- the limiter ------------------------------------------------------------------------------


def _retry_after(seconds: int) -> TelegramRetryAfter:
    return TelegramRetryAfter(method=SendMessage(chat_id=1, text="x"), message="Too Many Requests",
                              retry_after=seconds)


async def test_the_limiter_spaces_a_groups_messages_and_honours_retry_after():
    # Telegram's own group limit, on a clock 30 times faster: 20 messages per 2 s.
    limiter = telegram_limiter(Limits(group=Budget(20, 2.0)))
    loop = asyncio.get_running_loop()
    times: list[float] = []
    flooded = [True]

    async def send() -> str:
        if flooded[0]:
            flooded[0] = False
            raise _retry_after(1)
        times.append(loop.time())
        return "ok"

    started = loop.time()
    results = await asyncio.gather(*(limiter.send("-1", False, send) for _ in range(24)))
    assert results == ["ok"] * 24 and limiter.slowdowns == 1
    assert times[0] - started >= 1.0  # waited out Telegram's retry_after
    # In any 2 s window, fewer than 20 went out (the margin), however many were waiting.
    assert all(sum(1 for t in times if a <= t < a + 2.0) <= 18 for a in times)


async def test_after_a_429_every_send_waiting_in_that_chat_waits_out_retry_after():
    limiter = telegram_limiter(Limits(private=Budget(50, 1.0)))
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    flooded = [True]

    async def send() -> None:
        if flooded[0]:
            flooded[0] = False
            raise _retry_after(1)
        sent.append(loop.time())

    started = loop.time()
    await asyncio.gather(*(limiter.send("7", True, send) for _ in range(5)))
    assert len(sent) == 5 and min(sent) - started >= 1.0  # none slipped out before retry_after


async def test_a_flooded_group_holds_up_no_other_chat():
    limiter = telegram_limiter(Limits(group=Budget(20, 60.0)))  # Telegram's real group limit
    loop = asyncio.get_running_loop()
    waiting = [asyncio.ensure_future(limiter.send("-100", False, lambda: asyncio.sleep(0))) for _ in range(25)]
    await asyncio.sleep(0.05)
    started = loop.time()
    await limiter.send("42", True, lambda: asyncio.sleep(0))  # a private chat alongside
    assert loop.time() - started < 0.1  # it did not wait behind the group's 25
    assert limiter.waiting("-100") > 20
    for task in waiting:
        task.cancel()
    await limiter.close()


async def test_private_chats_get_about_a_message_a_second_and_other_chats_are_not_held_up():
    limiter = telegram_limiter(Limits())  # Telegram's real limits
    loop = asyncio.get_running_loop()
    log: list[tuple[str, float]] = []

    def sender(chat: str) -> Callable[[], Awaitable[Any]]:
        async def call() -> None:
            log.append((chat, loop.time()))
        return call

    await limiter.send("1", True, sender("1"))
    await limiter.send("1", True, sender("1"))
    await limiter.send("2", True, sender("2"))
    assert 1.05 <= log[1][1] - log[0][1] <= 1.3  # a margin over Telegram's one a second: no 429 from jitter
    assert log[2][1] - log[1][1] < 0.1  # a second chat only waits for the overall pace


async def test_progress_takes_only_the_budget_results_leave_free():
    limiter = telegram_limiter(Limits(private=Budget(5, 1.0)))
    order: list[str] = []

    def call(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            order.append(name)
        return run

    first = asyncio.ensure_future(limiter.send("9", True, call("result 0")))
    await asyncio.sleep(0)
    for k in range(10):  # progress arrives while the chat's budget is spent: coalesced, newest kept
        limiter.edit("9", True, "status", call(f"edit {k}"))
    await asyncio.sleep(0.05)
    later = [asyncio.ensure_future(limiter.send("9", True, call(f"result {k}"))) for k in range(1, 4)]
    await asyncio.gather(first, *later)
    await limiter.idle()
    assert order == ["result 0", "result 1", "result 2", "result 3", "edit 9"]  # results first
    assert limiter.dropped_edits == 9
