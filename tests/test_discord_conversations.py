"""The bot on Discord, driven through discord.py against a fake Discord (real gateway and REST
protocols on 127.0.0.1), the real runtime, real SQLite and the tiny demo model: a server with
members in a channel and a thread, a DM, typed options and inline flags, attachments, context
menus, buttons, expired tokens, restarts, 429 storms, upload limits and bursts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord.gateway
import discord.http
import pytest

from bot.discord.messenger import DISCORD_LIMITS
from bot.discord.runner import run_discord
from bot.wiring import Runtime, build_runtime
from handlers.app import ADMIN_COMMANDS, MENU_COMMANDS
from handlers.flags import FLAGS, bounds
from locales import tr
from storage.records import JobState
from tests.chat_recorder import demo_settings
from tests.fake_discord import (
    OPT_ATTACHMENT,
    OPT_INTEGER,
    OPT_NUMBER,
    OPT_STRING,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    Intent,
    Perm,
)
from tests.fixtures_tools import face_picture
from tests.images import encoded, png

# Discord's limits on a clock ten times faster; the fake enforces the same shape.
FAST = DISCORD_LIMITS.scaled(0.1)
QUICK = {"steps": 2, "size": "64x64"}


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    channel: FakeChannel
    thread: FakeChannel
    ann: FakeUser  # may manage the server
    bob: FakeUser
    cat: FakeUser  # her Discord speaks Chinese

    def dm(self, user: FakeUser) -> FakeChannel:
        return self.fake.dm_channel(user)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord(message_limit=(5, 0.5)).start()
    yield server
    await server.close()
    assert not server.internal_errors


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Art club")
    channel = next(iter(guild.channels.values()))
    ann = fake.add_member(guild, fake.add_user("ann"), admin=True)
    bob = fake.add_member(guild, fake.add_user("bob"))
    cat = fake.add_member(guild, fake.add_user("cat", locale="zh-CN"))
    return World(fake, guild, channel, fake.add_thread(channel, "foxes"), ann, bob, cat)


@asynccontextmanager
async def running_bot(tmp_path, tiny_model_dir, fake: FakeDiscord, *, progress_interval_s: float = 0.2,
                      runtime: Runtime | None = None, **overrides: Any) -> AsyncIterator[Runtime]:
    """The bot process (runtime + Discord runner) against the fake, on the data in tmp_path."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    settings = demo_settings(tmp_path, tiny_model_dir, discord_token=fake.token, discord_api_base=fake.api_base,
                             discord_gateway_url=fake.gateway_url, platforms=["discord"], **overrides)
    runtime = runtime or await build_runtime(settings)
    runtime.runner.progress_interval_s = progress_interval_s
    ready = asyncio.Event()
    task = asyncio.create_task(run_discord(runtime, limits=FAST, guild_ready_timeout=0.05, ready=ready))
    waiting = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiting}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the runner failed to start: show why
        assert ready.is_set(), "the bot did not connect"
        yield runtime
    finally:
        waiting.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.stop()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


# --- reading what the channels show -------------------------------------------------------------

def _is_result(m: FakeMessage) -> bool:
    return any(a.filename != "preview.jpg" for a in m.attachments)


def results(fake: FakeDiscord, channel: FakeChannel) -> list[FakeMessage]:
    """The result messages there: pictures (not progress previews), for everyone to see."""
    return [m for m in fake.messages_in(channel, from_bot=True) if _is_result(m) and not m.ephemeral]


def statuses(fake: FakeDiscord, channel: FakeChannel) -> list[FakeMessage]:
    """Every status message the bot posted there, also those that made way for the results."""
    return [m for m in fake.messages_in(channel, include_deleted=True, from_bot=True)
            if not m.ephemeral and m.interaction_id is None and not _is_result(m)]


def personal(ix: FakeInteraction) -> list[str]:
    """What the user who interacted was told for their eyes only."""
    return [m.content for m in ix.messages if m.ephemeral and not m.loading]


async def answered(fake: FakeDiscord, ix: FakeInteraction, timeout: float = 15.0) -> list[str]:
    await fake.wait_until(lambda: bool(personal(ix)), timeout=timeout)
    return personal(ix)


def option(command: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in command["options"] if o["name"] == name)


def command(fake: FakeDiscord, name: str, guild: FakeGuild | None = None) -> dict[str, Any]:
    return next(c for c in fake.registered(guild) if c["name"] == name)


# --- typed options, inline flags, channels, threads and DMs ----------------------------------------

async def test_imagine_in_a_channel_a_thread_and_a_dm_with_typed_options_and_inline_flags(
        tmp_path, tiny_model_dir, fake, world, caplog):
    caplog.set_level(logging.DEBUG)
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        slash = {c["name"] for c in fake.registered() if c["type"] == 1}
        assert slash == set(MENU_COMMANDS) | set(ADMIN_COMMANDS)  # every command the handlers have
        imagine = command(fake, "imagine")
        # The options are the flag table's: ranges from the job model, choices where it has them.
        for spec in FLAGS:
            if spec.console_only or spec.name == "scale":
                continue
            opt = option(imagine, "negative" if spec.name == "no" else spec.name)
            span = bounds(spec)
            if span:
                assert (opt["type"], opt["min_value"], opt["max_value"]) == (
                    OPT_INTEGER if spec.kind == "integer" else OPT_NUMBER, span[0], span[1])
            if spec.choices:
                assert [c["value"] for c in opt["choices"]] == list(spec.choices)
        assert option(imagine, "model")["autocomplete"] is True
        assert [c["value"] for c in option(imagine, "backend")["choices"]] == ["local"]
        assert (option(imagine, "prompt")["type"], option(imagine, "prompt")["required"]) == (OPT_STRING, True)
        assert {option(imagine, n)["type"] for n in ("image", "mask")} == {OPT_ATTACHMENT}
        with pytest.raises(ValueError, match="out of range"):  # Discord's client would not even send it
            await fake.slash(world.ann, world.channel, "imagine", {"prompt": "x", "n": 5})

        in_channel = await fake.slash(world.ann, world.channel, "imagine", {
            "prompt": "a red fox --seed 11 --no blurry", "n": 2, "cfg": 4.5, "size": "64x64", "steps": 2})
        # Bob names Cat in his prompt (Discord's client turns "@cat" into "<@id>").
        lighthouse = f"a lighthouse for <@{world.cat.id}>"
        in_thread = await fake.slash(world.bob, world.thread, "imagine", {"prompt": lighthouse, **QUICK})
        in_dm = await fake.slash(world.cat, world.dm(world.cat), "imagine", {"prompt": "一只猫", **QUICK})
        await fake.wait_until(lambda: all(results(fake, c) for c in (world.channel, world.thread,
                                                                       world.dm(world.cat))), timeout=30)
        await runtime.wait_idle()

        jobs = {j.spec.prompt: j for j in await runtime.storage.recent_jobs()}
        fox = jobs["a red fox"].spec
        assert (fox.seed, fox.negative_prompt, fox.n, fox.cfg, fox.width, fox.steps) == (11, "blurry", 2, 4.5, 64, 2)
        assert jobs[lighthouse].chat.chat_id == str(world.channel.id)  # the thread belongs to its channel
        assert jobs[lighthouse].chat.thread_id == str(world.thread.id)
        assert jobs["一只猫"].chat.is_private

    (result,) = results(fake, world.channel)
    assert result.content.startswith("a red fox\nseed 11") and f"<@{world.ann.id}>" in result.content
    assert [label for label, _ in result.buttons()] == ["U1", "U2", "V1", "V2", "🔄 Reroll"]
    assert len(result.attachments) == 2 and result.attachments[0].filename.endswith(".png")
    (status,) = statuses(fake, world.channel)
    assert status.deleted and status.edits >= 1  # queued, progress..., then it made way for the result
    # The "thinking…" only Ann saw now points at the status message.
    assert in_channel.ephemeral and in_channel.original is not None
    assert str(status.id) in in_channel.original.content and not in_channel.original.loading
    # Answers stay in the thread; the DM speaks Cat's language and mentions nobody.
    (thread_result,) = results(fake, world.thread)
    # The result notifies its requester only: a mention typed into a prompt pings nobody.
    assert result.pinged == {world.ann.id} and thread_result.pinged == {world.bob.id}
    assert lighthouse in thread_result.content and fake.messages_in(world.channel, from_bot=True, visible_to=world.bob) == [result]
    (dm_result,) = results(fake, world.dm(world.cat))
    assert "<@" not in dm_result.content and "已排队" in in_dm.original.content  # type: ignore[union-attr]
    assert in_thread.acked and all(ix.ack_latency_s < 1.0 for ix in (in_channel, in_thread, in_dm))  # type: ignore[operator]
    assert fake.token not in caplog.text
    assert not any(ix.token in caplog.text for ix in fake.interactions.values())


# --- pictures: attachments and context menus ---------------------------------------------------------

async def test_attachments_repaint_and_inpaint_and_the_context_menus_work_on_any_picture(
        tmp_path, tiny_model_dir, with_tools, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        # Ann may manage the server: small pictures by default, for everyone in it.
        server = await fake.slash(world.ann, world.channel, "settings", {"change": "server side 96"})
        assert "Your settings" in (await answered(fake, server))[0]
        refused = await fake.slash(world.bob, world.thread, "settings", {"change": "server side 512"})
        assert "manage this server" in (await answered(fake, refused))[0]
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "watercolor", "steps": 2},
                         attachments={"image": png((96, 64))})
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "a hat", "steps": 2},
                         attachments={"image": png((64, 64)), "mask": png((64, 64), (255, 255, 255))})
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 2, timeout=30)

        # Bob's own message with a picture: the menus work on it, for anyone.
        posted = await fake.post(world.bob, world.channel, "my cat", attachments={"cat.png": png((64, 96))})
        upscale = await fake.context_menu(world.cat, posted, "Upscale")
        ask = await fake.context_menu(world.bob, posted, "Imagine from this")
        await ask.wait_acked()
        assert ask.modal is not None and ask.response_type == 9  # the modal is the first answer
        assert ask.modal["components"][0]["components"][0]["value"] == "my cat"  # prefilled from the message
        repaint = await fake.submit_modal(world.bob, ask, {"prompt": "my cat as a tiger --steps 2 --strength 0.7"})
        portrait = await fake.post(world.cat, world.thread, "me",
                                   attachments=[encoded(face_picture(200, 200, (0, 0)))])
        swap = await fake.context_menu(world.ann, portrait, "Swap face into this")
        await swap.wait_acked()
        face = encoded(face_picture(160, 160, at=(0, 0), size=160, skin=(200, 160, 140)))
        swapped = await fake.submit_modal(world.ann, swap, {}, files={"face": face})
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 4 and results(fake, world.thread),
                              timeout=60)
        await runtime.wait_idle()

        plain = await fake.post(world.bob, world.channel, "no picture here")
        nothing = await fake.context_menu(world.bob, plain, "Upscale")
        assert "no picture" in (await answered(fake, nothing))[0]

        jobs = {j.kind: j for j in await runtime.storage.recent_jobs()}
        assert set(jobs) == {"img2img", "inpaint", "upscale", "faceswap"}
        assert jobs["inpaint"].spec.width == jobs["inpaint"].spec.height == 96  # the server's default side
        repainted = [j for j in await runtime.storage.recent_jobs() if j.kind == "img2img"]
        tiger = next(j for j in repainted if j.spec.prompt == "my cat as a tiger")
        assert tiger.spec.width < tiger.spec.height and tiger.spec.strength == 0.7  # the cat's shape
        owners = {j.kind: (await runtime.storage.user_by_id(j.user_id)).ext_id for j in jobs.values()}  # type: ignore[union-attr]
        assert owners["upscale"] == str(world.cat.id) and owners["faceswap"] == str(world.ann.id)
        for ix in (upscale, repaint, swapped):
            assert ix.acked and ix.ephemeral
    (swap_result,) = results(fake, world.thread)  # the face went into Cat's picture, where she posted it
    assert swap_result.reply_to is None and f"<@{world.ann.id}>" in swap_result.content
    assert fake.downloads == 7  # every picture fetched once, by the bot, from the CDN


# --- buttons ---------------------------------------------------------------------------------------

def button(message: FakeMessage, label: str) -> str:
    return next(cid for text, cid in message.buttons() if text == label and cid)


async def test_anyone_may_press_u_v_reroll_on_their_own_quota_only_the_owner_cancels_forgeries_change_nothing(
        tmp_path, tiny_model_dir, with_tools, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "a castle", "steps": 60, "size": "256x256"})
        await fake.wait_until(lambda: any(m.buttons() for m in statuses(fake, world.channel)))
        (status,) = statuses(fake, world.channel)
        bobs_try = await fake.press(world.bob, status, button(status, "✖ Cancel"))
        assert (await answered(fake, bobs_try)) == ["Only the person who asked for this picture can do that."]
        anns = await fake.press(world.ann, status, button(status, "✖ Cancel"))
        assert (await answered(fake, anns)) == ["Cancelled 1 job(s)."]
        await runtime.wait_idle()
        assert status.content.startswith("🚫 Cancelled") and status.buttons() == [] and not status.deleted

        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "a fox", "n": 2, **QUICK})
        await fake.wait_until(lambda: bool(results(fake, world.channel)))
        (result,) = results(fake, world.channel)
        reroll = await fake.press(world.bob, result, button(result, "🔄 Reroll"))
        upscale = await fake.press(world.cat, result, button(result, "U2"))
        assert (await answered(fake, reroll)) == ["On it!"] and (await answered(fake, upscale)) == ["马上处理！"]
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 3, timeout=30)
        await runtime.wait_idle()
        storage = runtime.storage
        for user, left in ((world.ann, 8), (world.bob, 8), (world.cat, 9)):  # the cancelled job was refunded
            account = await storage.user("discord", str(user.id))
            assert (await storage.balance(account.id)).free_left_today == left, user.username
        jobs = await storage.recent_jobs()
        assert sorted(j.kind for j in jobs) == ["txt2img", "txt2img", "txt2img", "upscale"]

        # A message carrying buttons that name no job of this chat, or no picture, or nothing at all.
        rows = result.components[0]["components"]
        job_id = rows[0]["custom_id"].split(":")[1]
        for c, forged in zip(rows, ("u:AAAAAAAAAAAA:0", f"v:{job_id}:9", "rm -rf"), strict=False):
            c["custom_id"] = forged
            ix = await fake.press(world.bob, result, forged)
            assert (await answered(fake, ix)) == ["This button is no longer valid here."]
        assert len(await storage.recent_jobs()) == 4

        # A settings panel is ephemeral: its buttons edit it through the press.
        panel_ix = await fake.slash(world.bob, world.thread, "settings")
        await answered(fake, panel_ix)
        (panel,) = [m for m in panel_ix.messages if m.ephemeral]
        pressed = await fake.press(world.bob, panel, button(panel, "3:2"))
        assert (await answered(fake, pressed)) == ["Saved."]
        await fake.wait_until(lambda: "aspect: 3:2" in panel.content)
        assert panel.edits == 1 and panel.buttons()


# --- lifetimes: the 15-minute token, a restart ---------------------------------------------------------

async def test_a_job_that_outlives_the_interaction_token_still_updates_its_status_and_arrives(
        tmp_path, tiny_model_dir, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "a slow one", "steps": 40, "size": "192x192"})
        await fake.wait_until(lambda: any("%" in m.content for m in statuses(fake, world.channel)))
        patient = await fake.slash(world.bob, world.channel, "imagine", {"prompt": "a patient one", "steps": 20,
                                                                         "size": "128x128"})
        # Bob's "thinking…" is resolved at once, pointing at his status in the channel.
        await fake.wait_until(lambda: patient.original is not None and not patient.original.loading)
        bobs_status = statuses(fake, world.channel)[1]
        assert bobs_status.content.startswith("⏳ Queued")
        edits_then = bobs_status.edits
        fake.advance(16 * 60)  # Bob's interaction token is dead from now on
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 2, timeout=60)
        await runtime.wait_idle()
    assert bobs_status.edits > edits_then and bobs_status.deleted  # progress went on, then the result came
    assert "a patient one" in results(fake, world.channel)[1].content
    assert all(not ix.errors for ix in fake.interactions.values())  # nothing ever went through a dead token


async def test_a_restart_mid_job_continues_the_same_status_delivers_once_charges_once_and_skips_the_sync(
        tmp_path, tiny_model_dir, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake) as first:
        created = fake.commands_created
        await fake.slash(world.ann, world.thread, "imagine", {"prompt": "a slow one", "steps": 30, "size": "192x192",
                                                             "n": 2})
        await fake.wait_until(lambda: any("%" in m.content for m in statuses(fake, world.thread)))
        await first.scheduler.stop()  # the process dies in the middle of the job
    (status,) = statuses(fake, world.thread)
    edits_before = status.edits
    async with running_bot(tmp_path, tiny_model_dir, fake) as second:
        await fake.wait_until(lambda: bool(results(fake, world.thread)), timeout=60)
        await second.wait_idle()
        (job,) = await second.storage.recent_jobs()
        assert job.state is JobState.DONE and job.status_message_id == str(status.id)
        assert status.edits > edits_before and status.deleted  # the same message went on, then made way
        ledger = [(e["entry"], e["amount"]) for e in await second.storage.ledger_of_job(job.id)]
        assert ledger == [("reserve", -2), ("commit", 1), ("commit", 1)]
        (result,) = results(fake, world.thread)
        assert len(result.attachments) == 2
        press = await fake.press(world.bob, result, button(result, "V1"))  # a button from before the restart
        assert (await answered(fake, press)) == ["On it!"]
        await fake.wait_until(lambda: len(results(fake, world.thread)) == 2, timeout=30)
        await second.wait_idle()
    assert len(fake.identifies) == 2
    # Unchanged definitions: the second start synced nothing and created nothing.
    assert fake.count("sync_global_commands") == 1 and fake.commands_created == created == 16


# --- Discord pushing back: 429 storms, upload limits ---------------------------------------------------

async def test_a_429_storm_and_a_tiny_upload_limit_lose_no_result(tmp_path, tiny_model_dir, fake, world):
    fake.set_filesize_limit(world.guild, 40_000)
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        fake.storm("send_message", count=7, retry_after=0.05)  # more than discord.py's five tries
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "noise", "steps": 2, "size": "256x256"})
        await fake.wait_until(lambda: bool(results(fake, world.channel)), timeout=40)
        (first,) = results(fake, world.channel)
        assert first.attachments[0].filename.endswith((".webp", ".jpg")) and len(first.files[0]) <= 40_000
        assert "re-encoded to fit this chat's upload limit of 39 KB" in first.content

        # The limit drops after the bot learnt it: Discord answers 413, the bot shrinks and retries.
        late = await fake.slash(world.bob, world.channel, "imagine", {"prompt": "more noise", "steps": 2,
                                                                      "size": "256x256"})
        await late.wait_acked()
        fake.set_filesize_limit(world.guild, 12_000)
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 2, timeout=40)
        await runtime.wait_idle()
        assert [j.state for j in await runtime.storage.recent_jobs()] == [JobState.DONE, JobState.DONE]
    second = results(fake, world.channel)[1]
    assert len(second.files[0]) <= 12_000 and fake.count("send_message", status=413) >= 1
    assert fake.count("send_message", status=429) == 7
    print(f"429s received: {fake.rate_limited}, 413s: {fake.count('send_message', status=413)}")



async def test_where_the_bot_may_not_post_pictures_it_says_so_and_queues_nothing(tmp_path, tiny_model_dir, fake,
                                                                                 world):
    fake.set_overwrite(world.channel, fake.bot, deny=Perm.ATTACH_FILES)
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        ix = await fake.slash(world.bob, world.thread, "imagine", {"prompt": "a fox", **QUICK})
        assert "cannot post pictures in this channel" in (await answered(fake, ix))[0]
        balance = await fake.slash(world.bob, world.thread, "balance")  # what needs no posting still works
        assert "Free pictures left today: 10 of 10" in (await answered(fake, balance))[0]
        assert await runtime.storage.recent_jobs() == []

# --- commands: localized, synced where configured, autocomplete from the cache -----------------------

async def test_commands_are_localized_synced_to_the_configured_guild_and_autocomplete_answers_from_the_cache(
        tmp_path, tiny_model_dir, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake, discord_guilds=[world.guild.id],
                           admins=[f"discord:{world.ann.id}"]) as runtime:
        assert fake.registered() == []  # IMAGEBOT_DISCORD_GUILDS: nothing global, all in the guild at once
        imagine = command(fake, "imagine", world.guild)
        assert imagine["name_localizations"] == {"zh-CN": "画图", "ru": "нарисовать"}
        assert imagine["description_localizations"]["zh-CN"] == tr("zh-CN", "cmd-imagine")
        assert option(imagine, "seed")["description_localizations"]["zh-CN"] == tr("zh-CN", "flag-seed")
        menus = {c["name"]: c for c in fake.registered(world.guild) if c["type"] == 3}
        assert set(menus) == {"Imagine from this", "Upscale", "Swap face into this"}
        assert menus["Upscale"]["name_localizations"] == {"zh-CN": "放大", "ru": "Увеличить"}
        for admin_only in ("grant", "stats", "pause", "resume"):
            assert command(fake, admin_only, world.guild)["default_member_permissions"] == str(1 << 5)
        with pytest.raises(PermissionError):  # hidden from members who may not manage the server
            await fake.slash(world.bob, world.channel, "stats")
        owner = await fake.slash(world.guild.owner, world.channel, "stats")
        assert "Only bot admins" in (await answered(fake, owner))[0]  # the handlers check IMAGEBOT_ADMINS too
        granted = await fake.slash(world.ann, world.channel, "grant", {"user": world.bob, "amount": 5})
        assert "5" in (await answered(fake, granted))[0]
        bob = await runtime.storage.user("discord", str(world.bob.id))
        assert (await runtime.storage.balance(bob.id)).credits == 5

        await runtime.app.suggestions.warm()
        typed = await fake.autocomplete(world.bob, world.channel, "imagine", {"prompt": "a fox", "model": "de"},
                                        focused="model")
        await typed.wait_acked()
        assert typed.choices is not None and typed.choices[0]["value"] == "demo"
        assert typed.ack_latency_s is not None and typed.ack_latency_s < 0.5
        # Cat's Discord speaks Chinese: the bot answers her in Chinese until she picks another language.
        balance = await fake.slash(world.cat, world.channel, "balance", locale="zh-CN")
        assert "今日剩余免费张数" in (await answered(fake, balance))[0]

        # Discord sometimes refuses a live token's follow-up: the answer comes as a reply in the
        # channel that mentions the one who asked, and the "thinking…" is cleared away.
        fake.fail("followup", 404, code=10015, message="Unknown Webhook")
        refused = await fake.slash(world.bob, world.channel, "balance")
        await fake.wait_until(lambda: refused.original is not None and refused.original.deleted)
        reply = fake.messages_in(world.channel, from_bot=True, visible_to=world.ann)[-1]
        assert reply.content.startswith(f"<@{world.bob.id}> 💳") and not reply.ephemeral


async def test_a_burst_of_fifty_commands_is_acknowledged_within_three_seconds(tmp_path, tiny_model_dir, fake, world):
    members = [fake.add_member(world.guild, fake.add_user(f"member{i}")) for i in range(10)]
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        started = time.monotonic()
        burst: list[FakeInteraction] = []
        for i in range(50):
            where = world.thread if i % 2 else world.channel
            if i % 5 in (0, 1):  # twenty jobs, two per member, while the rest ask about their accounts
                jobs = sum(1 for ix in burst if ix.data["name"] == "imagine")
                burst.append(await fake.slash(members[jobs % 10], where, "imagine",
                                              {"prompt": f"burst {i}", "steps": 1, "size": "64x64"}))
            else:
                burst.append(await fake.slash(members[i % 10], where, ("balance", "help", "models")[i % 3]))
        await fake.wait_until(lambda: all(ix.acked for ix in burst), timeout=10)
        acked_in = time.monotonic() - started
        await fake.wait_until(lambda: len(results(fake, world.channel)) + len(results(fake, world.thread)) == 20,
                              timeout=60)
        await runtime.wait_idle()
    p50, p99 = fake.ack_percentile(50), fake.ack_percentile(99)
    print(f"ack latency over {len(burst)} commands: p50={p50 * 1000:.0f} ms p99={p99 * 1000:.0f} ms "
          f"(all acknowledged {acked_in:.2f} s after the first); 429s: {fake.rate_limited}")
    assert all(ix.errors == [] for ix in burst)
    assert p99 < 3.0 and max(fake.ack_latencies()) < 3.0


# --- plain messages: DMs always, server replies with the message-content intent ----------------------------

async def test_dms_take_plain_prompts_and_replies_with_flags_without_any_privileged_intent(
        tmp_path, tiny_model_dir, fake, world):
    dm = world.dm(world.ann)
    async with running_bot(tmp_path, tiny_model_dir, fake) as runtime:
        intents = fake.identifies[-1]["intents"]
        assert intents & Intent.GUILDS and not intents & (Intent.MESSAGE_CONTENT | Intent.GUILD_MEMBERS
                                                         | Intent.GUILD_PRESENCES | Intent.GUILD_MESSAGES)
        await fake.post(world.ann, dm, "a cat --steps 2 --size 64x64 --seed 1")
        await fake.wait_until(lambda: bool(results(fake, dm)), timeout=30)
        (first,) = results(fake, dm)
        await fake.post(world.ann, dm, "--seed 99", reply_to=first)
        asked = await fake.post(world.ann, dm, "/balance")
        await fake.wait_until(lambda: len(results(fake, dm)) == 2, timeout=30)
        await runtime.wait_idle()
        rerun = next(j for j in await runtime.storage.recent_jobs() if j.parent_job)
        assert (rerun.spec.prompt, rerun.spec.seed) == ("a cat", 99)
        # No interaction to be ephemeral in: a personal reply is a reply to the message.
        (reply,) = [m for m in fake.messages_in(dm, from_bot=True) if m.reply_to == asked.id]
        assert "Free pictures left today" in reply.content and not reply.ephemeral
        # In the server, without the intent, the bot does not even receive plain messages.
        await fake.post(world.bob, world.channel, "a dog", reply_to=first)
        assert len(await runtime.storage.recent_jobs()) == 2


async def test_with_the_message_content_intent_a_reply_with_flags_reruns_a_result_in_a_server(
        tmp_path, tiny_model_dir, fake, world):
    async with running_bot(tmp_path, tiny_model_dir, fake, discord_message_content=True) as runtime:
        assert fake.identifies[-1]["intents"] & Intent.MESSAGE_CONTENT
        await fake.slash(world.ann, world.channel, "imagine", {"prompt": "a harbour", "seed": 5, **QUICK})
        await fake.wait_until(lambda: bool(results(fake, world.channel)), timeout=30)
        (result,) = results(fake, world.channel)
        await fake.post(world.bob, world.channel, "hello everyone")  # not for the bot
        await fake.post(world.bob, world.channel, "--seed 9 --steps 3", reply_to=result)
        await fake.wait_until(lambda: len(results(fake, world.channel)) == 2, timeout=30)
        await runtime.wait_idle()
        jobs = await runtime.storage.recent_jobs()
        rerun = next(j for j in jobs if j.parent_job)
        assert (rerun.spec.prompt, rerun.spec.seed, rerun.spec.steps) == ("a harbour", 9, 3) and len(jobs) == 2
        bob = await runtime.storage.user("discord", str(world.bob.id))
        assert rerun.user_id == bob.id  # on Bob's quota
    rerun_result = results(fake, world.channel)[1]
    assert rerun_result.reply_to is not None and f"<@{world.bob.id}>" in rerun_result.content


# --- Discord and Telegram in one process --------------------------------------------------------------

async def test_discord_and_telegram_in_one_process_share_one_queue(tmp_path, tiny_model_dir, fake, world):
    from bot.outbound import Budget, Limits
    from bot.telegram.runner import run_telegram
    from tests.fake_telegram import FakeTelegram

    telegram = await FakeTelegram(private_limit=(4, 1.0)).start()
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    settings = demo_settings(tmp_path, tiny_model_dir, platforms=["telegram", "discord"],
                             telegram_token=telegram.token, telegram_api_base=telegram.base_url,
                             discord_token=fake.token, discord_api_base=fake.api_base,
                             discord_gateway_url=fake.gateway_url)
    runtime = await build_runtime(settings)
    runtime.runner.progress_interval_s = 0.2
    ready = asyncio.Event()
    tasks = [asyncio.create_task(run_telegram(runtime, limits=Limits(private=Budget(4, 1.0)), polling_timeout=1)),
             asyncio.create_task(run_discord(runtime, limits=FAST, guild_ready_timeout=0.05, ready=ready))]
    try:
        await asyncio.wait_for(ready.wait(), 20)
        await telegram.wait_until(lambda: telegram.count("getUpdates") > 0)
        tom = FakeTelegram.user(201, "Tom")
        await telegram.say(tom["id"], tom, "/imagine from telegram --steps 30 --size 192x192")
        await telegram.wait_until(lambda: any("%" in m.text for m in telegram.seen(tom["id"])))
        # Telegram's job holds the one lane: the Discord job waits its turn behind it.
        await fake.slash(world.bob, world.channel, "imagine", {"prompt": "from discord", **QUICK})
        await fake.wait_until(lambda: bool(statuses(fake, world.channel)))
        assert statuses(fake, world.channel)[0].content == "⏳ Queued — position 1"
        assert (1, 1, 1) in runtime.scheduler.lanes().values()  # one lane: one running, one waiting
        await fake.wait_until(lambda: bool(results(fake, world.channel)), timeout=60)
        await telegram.wait_until(lambda: bool(telegram.seen(tom["id"], kind="photo")), timeout=10)
        await runtime.wait_idle()
        jobs = await runtime.storage.recent_jobs()
        assert sorted((j.chat.platform, j.state) for j in jobs) == [("discord", JobState.DONE),
                                                                    ("telegram", JobState.DONE)]
        assert len({j.user_id for j in jobs}) == 2  # two people, one quota ledger
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.stop()
        await telegram.close()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
