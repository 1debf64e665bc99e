"""Self-tests of tests/fake_discord.py: a plain discord.py client (not our bot) against the fake,
over real HTTP and a real WebSocket."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fake_discord import FakeChannel, FakeDiscord, FakeGuild, FakeUser, Perm, point_discord_py_at
from tests.images import image_bytes

MODELS = ["sdxl", "sd15", "flux"]


def png(color: str = "red") -> bytes:
    return image_bytes(8, 6, color)


class Upscale(discord.ui.DynamicItem[discord.ui.Button], template=r"upscale:(?P<job>[0-9]+)"):
    """A persistent button: it works after a restart because its state lives in the custom_id."""

    def __init__(self, job: int) -> None:
        super().__init__(discord.ui.Button(label="Upscale", style=discord.ButtonStyle.primary,
                                           custom_id=f"upscale:{job}"))
        self.job = job

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,  # type: ignore[override]
                             match: Any) -> Upscale:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        assert isinstance(interaction.client, Probe)
        interaction.client.seen["pressed"] = (self.job, interaction.user.id)
        await interaction.response.edit_message(content=f"upscaling job {self.job}")


class Feedback(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[Feedback] = discord.ui.TextInput(label="What went wrong?", custom_id="feedback-text")

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        assert isinstance(interaction.client, Probe)
        interaction.client.seen["feedback"] = self.text.value
        await interaction.response.send_message("thanks", ephemeral=True)


class Photo(discord.ui.Modal, title="Send a photo"):
    def __init__(self) -> None:
        super().__init__()
        self.photo: discord.ui.FileUpload[Photo] = discord.ui.FileUpload(custom_id="photo-file")
        self.add_item(discord.ui.Label(text="Your photo", component=self.photo))

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        assert isinstance(interaction.client, Probe)
        interaction.client.seen["photo"] = [await a.read() for a in self.photo.values]
        await interaction.response.send_message("got it", ephemeral=True)


class Probe(discord.Client):
    """A plain discord.py bot with one of each kind of application command."""

    def __init__(self, *, message_content: bool = True, members: bool = False) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        intents.members = members
        # guild_ready_timeout: discord.py waits that long after the last GUILD_CREATE before on_ready.
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.seen: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.received: list[discord.Message] = []
        self._add_commands()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(Upscale)
        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.command(description="Make a picture")
        @app_commands.choices(style=[app_commands.Choice(name="Photo", value="photo"),
                                     app_commands.Choice(name="Anime", value="anime")])
        async def imagine(interaction: discord.Interaction, prompt: str, style: app_commands.Choice[str],
                          n: app_commands.Range[int, 1, 4] = 1, image: discord.Attachment | None = None,
                          model: str | None = None, guidance: app_commands.Range[float, 0.0, 20.0] = 7.0) -> None:
            await interaction.response.defer(thinking=True)
            data = await image.read() if image is not None else png("blue")
            self.seen["imagine"] = {"prompt": prompt, "style": style.value, "n": n, "model": model, "image": data,
                                    "guidance": guidance,
                                    "user": interaction.user.id, "guild": interaction.guild_id,
                                    "member": isinstance(interaction.user, discord.Member)}
            await interaction.followup.send(f"{n} x {prompt} ({style.value})")
            view = discord.ui.View(timeout=None)
            view.add_item(Upscale(7))
            assert interaction.channel is not None and hasattr(interaction.channel, "send")
            await interaction.channel.send("done", file=discord.File(io.BytesIO(data), "result.png"), view=view)

        @imagine.autocomplete("model")
        async def model_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=m, value=m) for m in MODELS if current in m]

        @tree.context_menu(name="Upscale")
        async def upscale_menu(interaction: discord.Interaction, message: discord.Message) -> None:
            data = await message.attachments[0].read() if message.attachments else b""
            self.seen["menu"] = (message.id, data)
            await interaction.response.send_message(f"upscaling {message.id}", ephemeral=True)
            await message.reply("upscaled", mention_author=False)

        @tree.command(description="Answers only when the test opens the gate")
        async def slow(interaction: discord.Interaction) -> None:
            await self.gates["slow"].wait()
            try:
                await interaction.response.send_message("late")
            except discord.HTTPException as exc:
                self.errors["slow"] = exc

        @tree.command(description="Answers twice")
        async def twice(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("once")
            try:
                await interaction.response.send_message("twice")
            except discord.InteractionResponded as exc:
                self.errors["twice-local"] = exc
            try:  # a fresh InteractionResponse skips discord.py's own guard, so Discord has to say no
                await discord.InteractionResponse(interaction).send_message("twice")
            except discord.HTTPException as exc:
                self.errors["twice-remote"] = exc

        @tree.command(description="Defers, follows up when the test opens the gate")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await self.gates["later"].wait()
            try:
                await interaction.followup.send("too late")
            except discord.HTTPException as exc:
                self.errors["later"] = exc

        @tree.command(description="Posts messages to the channel")
        async def spam(interaction: discord.Interaction, count: int) -> None:
            await interaction.response.send_message("on it", ephemeral=True)
            assert interaction.channel is not None and hasattr(interaction.channel, "send")
            for i in range(count):
                await interaction.channel.send(f"message {i}")
            self.seen["spam"] = count

        @tree.command(description="Uploads a file of the given size")
        async def upload(interaction: discord.Interaction, size: int) -> None:
            await interaction.response.defer(ephemeral=True)
            assert interaction.channel is not None and hasattr(interaction.channel, "send")
            try:
                await interaction.channel.send(file=discord.File(io.BytesIO(b"x" * size), "big.bin"))
            except discord.HTTPException as exc:
                self.errors["upload"] = exc
            await interaction.followup.send("tried")

        @tree.command(description="Server settings")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def settings(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"admin={interaction.permissions.manage_guild}", ephemeral=True)

        @tree.command(description="Edits and deletes its own messages")
        async def edit(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("draft", file=discord.File(io.BytesIO(png("red")), "a.png"))
            original = await interaction.original_response()
            original = await original.edit(content="no picture", attachments=[])
            await original.edit(attachments=[discord.File(io.BytesIO(png("blue")), "b.png")])
            note = await interaction.followup.send("note", wait=True)
            await note.edit(content="note, edited")
            gone = await interaction.followup.send("gone", wait=True)
            await gone.delete()
            self.seen["edit"] = True

        @tree.command(description="Asks for feedback")
        async def feedback(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(Feedback())

        @tree.command(description="Asks for a photo")
        async def photo(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(Photo())

        queue = app_commands.Group(name="queue", description="The job queue")

        @queue.command(description="Empty the queue")
        async def clear(interaction: discord.Interaction, everything: bool = False) -> None:
            await interaction.response.send_message(f"cleared (everything={everything})")

        tree.add_command(queue)

        @tree.command(description="Pong")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"pong in {'a DM' if interaction.guild is None else 'a guild'}")


@dataclass
class World:
    guild: FakeGuild
    channel: FakeChannel
    thread: FakeChannel
    alice: FakeUser  # has Manage Server
    bob: FakeUser


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = await FakeDiscord(heartbeat_interval_ms=500, message_limit=(5, 0.5)).start()
    undo = point_discord_py_at(fake)
    try:
        yield fake
    finally:
        undo()
        await fake.close()
    assert not fake.internal_errors


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Art club")
    channel = next(iter(guild.channels.values()))
    alice = fake.add_member(guild, fake.add_user("alice"), admin=True)
    bob = fake.add_member(guild, fake.add_user("bob", locale="de"))
    return World(guild, channel, fake.add_thread(channel, "foxes"), alice, bob)


async def start(fake: FakeDiscord) -> tuple[Probe, asyncio.Task[None]]:
    client = Probe()
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), 5)
    return client, task


async def stop(client: Probe, task: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.wait_for(task, 5)


@pytest.fixture
async def probe(fake: FakeDiscord, world: World) -> AsyncIterator[Probe]:
    client, task = await start(fake)
    try:
        yield client
    finally:
        await stop(client, task)


# --- startup ----------------------------------------------------------------------------------


async def test_login_connect_and_sync_as_discord_py_does(fake: FakeDiscord, world: World) -> None:
    client, task = await start(fake)
    # What discord.py 2.7 calls before the gateway: no /gateway/bot for a plain Client.
    assert [r.route for r in fake.requests] == ["get_me", "get_application", "sync_global_commands"]
    conn = fake.connections[0]
    assert conn.path == "/gateway"
    # zlib-stream here; zstd-stream where discord.py can import a zstd decompressor (the fake serves both).
    expected = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    assert conn.query == {"v": "10", "encoding": "json", "compress": expected}
    assert fake.identifies[0]["intents"] == client.intents.value
    assert client.user is not None and client.user.id == fake.bot.id and client.application_id == fake.app_id
    guild = client.get_guild(world.guild.id)
    assert guild is not None and guild.name == "Art club" and guild.filesize_limit == world.guild.filesize_limit
    assert guild.get_channel(world.channel.id) is not None and guild.get_thread(world.thread.id) is not None
    assert {c["name"] for c in fake.registered()} == {"imagine", "Upscale", "slow", "twice", "later", "spam",
                                                      "upload", "settings", "edit", "feedback", "photo", "queue",
                                                      "ping"}
    created = fake.commands_created
    ids = {c["name"]: c["id"] for c in fake.registered()}
    await stop(client, task)

    # A restart syncs the same definitions: Discord creates nothing and keeps the ids.
    client, task = await start(fake)
    assert fake.count("sync_global_commands") == 2
    assert fake.commands_created == created == 13
    assert {c["name"]: c["id"] for c in fake.registered()} == ids
    assert len(fake.identifies) == 2 and fake.resumes == 0
    await stop(client, task)


async def test_guild_commands_take_precedence(fake: FakeDiscord, world: World, probe: Probe) -> None:
    guild = discord.Object(world.guild.id)
    probe.tree.copy_global_to(guild=guild)
    await probe.tree.sync(guild=guild)
    assert [c.name for c in await probe.tree.fetch_commands(guild=guild)] == [c["name"] for c in
                                                                               fake.registered(world.guild)]
    ix = await fake.slash(world.bob, world.channel, "ping")
    await ix.wait_acked()
    assert ix.data["guild_id"] == str(world.guild.id)
    assert ix.data["id"] != next(c["id"] for c in fake.registered() if c["name"] == "ping")


async def test_the_plain_channel_api(fake: FakeDiscord, world: World, probe: Probe) -> None:
    channel = await probe.fetch_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    async with channel.typing():
        sent = await channel.send("hello", embed=discord.Embed(title="Fox", description="a fox"))
    fetched = await channel.fetch_message(sent.id)
    assert fetched.content == "hello" and fetched.embeds[0].title == "Fox"
    await fetched.edit(content="hello again", embed=None)
    assert [m.content async for m in channel.history(limit=5)] == ["hello again"]
    shown = fake.messages_in(world.channel)[-1]
    assert shown.content == "hello again" and shown.embeds == [] and shown.edits == 1
    await fetched.delete()
    assert fake.messages_in(world.channel) == [] and fake.count("typing") == 1

    user = await probe.fetch_user(world.bob.id)
    dm = await user.create_dm()
    await dm.send("psst")
    assert [m.content for m in fake.messages_in(fake.dm_channel(world.bob))] == ["psst"]
    with pytest.raises(discord.NotFound) as missing:
        await channel.fetch_message(1)
    assert missing.value.code == 10008
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send("")
    assert empty.value.code == 50006


async def test_mentions_notify_as_allowed_mentions_say(fake: FakeDiscord, world: World, probe: Probe) -> None:
    channel = await probe.fetch_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    both = f"<@{world.alice.id}> and <@!{world.bob.id}>"
    await channel.send(both)  # no allowed_mentions: every mention notifies
    await channel.send(both, allowed_mentions=discord.AllowedMentions(users=[discord.Object(world.bob.id)]))
    await channel.send(both, allowed_mentions=discord.AllowedMentions.none())
    assert [m.pinged for m in fake.messages_in(world.channel)] == [{world.alice.id, world.bob.id}, {world.bob.id}, set()]


async def test_missing_permissions_are_403(fake: FakeDiscord, world: World, probe: Probe) -> None:
    fake.set_overwrite(world.channel, fake.bot, deny=Perm.ATTACH_FILES)
    ix = await fake.slash(world.bob, world.channel, "upload", {"size": 10})
    await fake.wait_until(lambda: len(ix.messages) == 1 and not ix.messages[0].loading)
    error = probe.errors["upload"]
    assert isinstance(error, discord.Forbidden) and error.code == 50013
    channel = probe.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    assert not channel.permissions_for(channel.guild.me).attach_files  # discord.py sees the same overwrite


# --- interactions -------------------------------------------------------------------------------


async def test_slash_defer_followup_file_and_a_persistent_button(fake: FakeDiscord, world: World,
                                                                 probe: Probe) -> None:
    picture = png("green")
    ix = await fake.slash(world.alice, world.channel, "imagine",
                          {"prompt": "a fox", "n": 2, "style": "anime", "guidance": 4.5}, attachments={"image": picture})
    await fake.wait_until(lambda: any(m.attachments for m in fake.messages_in(world.channel)))

    assert ix.delivered and ix.response_type == 5 and not ix.ephemeral
    assert probe.seen["imagine"] == {"prompt": "a fox", "style": "anime", "n": 2, "model": None, "image": picture,
                                     "guidance": 4.5, "user": world.alice.id, "guild": world.guild.id,
                                     "member": True}
    resolved = next(iter(ix.data["resolved"]["attachments"].values()))
    assert (resolved["width"], resolved["height"], resolved["content_type"]) == (8, 6, "image/png")
    # The first follow-up after the defer fills in the "thinking" message.
    assert ix.original is not None and not ix.original.loading and ix.original.content == "2 x a fox (anime)"
    assert ix.followups == [] and ix.original.edits == 0
    posted = fake.messages_in(world.channel)[-1]
    assert posted.content == "done" and posted.files == [picture]
    assert posted.attachments[0].filename == "result.png" and posted.buttons() == [("Upscale", "upscale:7")]

    press = await fake.press(world.bob, posted, "upscale:7")
    await press.wait_acked()
    assert press.response_type == 7 and probe.seen["pressed"] == (7, world.bob.id)
    assert posted.content == "upscaling job 7" and posted.edits == 1 and posted.files == [picture]


async def test_values_discords_client_would_not_send_are_refused(fake: FakeDiscord, world: World,
                                                                 probe: Probe) -> None:
    with pytest.raises(ValueError, match="out of range"):
        await fake.slash(world.alice, world.channel, "imagine", {"prompt": "x", "style": "anime", "n": 5})
    with pytest.raises(ValueError, match="requires"):
        await fake.slash(world.alice, world.channel, "imagine", {"style": "anime"})
    with pytest.raises(ValueError, match="not one of"):
        await fake.slash(world.alice, world.channel, "imagine", {"prompt": "x", "style": "oil"})
    with pytest.raises(PermissionError):  # /settings needs Manage Server; bob lacks it
        await fake.slash(world.bob, world.channel, "settings")
    with pytest.raises(PermissionError):  # and it is guild-only
        await fake.slash(world.alice, fake.dm_channel(world.alice), "settings")

    ix = await fake.slash(world.alice, world.thread, "settings")
    await ix.wait_acked()
    assert ix.ephemeral and ix.original is not None and ix.original.content == "admin=True"
    assert ix.original.visible_to == world.alice.id
    assert fake.messages_in(world.thread, visible_to=world.bob) == []


async def test_user_message_and_a_context_menu_on_it(fake: FakeDiscord, world: World, probe: Probe) -> None:
    picture = png("purple")
    message = await fake.post(world.alice, world.channel, "look", attachments={"cat.png": picture})
    await fake.wait_until(lambda: bool(probe.received))
    got = probe.received[0]
    assert got.content == "look" and got.author.id == world.alice.id and got.attachments[0].filename == "cat.png"
    assert await got.attachments[0].read() == picture  # served by the fake's CDN

    ix = await fake.context_menu(world.bob, message, "Upscale")
    await ix.wait_acked()
    assert ix.ephemeral and ix.original is not None and ix.original.content == f"upscaling {message.id}"
    await fake.wait_until(lambda: fake.messages_in(world.channel)[-1].content == "upscaled")
    assert probe.seen["menu"] == (message.id, picture)
    reply = fake.messages_in(world.channel)[-1]
    assert reply.reply_to == message.id and reply.type == 19 and not reply.ephemeral


async def test_edits_keep_or_replace_attachments_as_listed(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "edit")
    await fake.wait_until(lambda: "edit" in probe.seen)
    original, note, gone = ix.messages
    assert original.content == "no picture" and original.files == [png("blue")] and original.edits == 2
    assert original.attachments[0].filename == "b.png"
    assert note.content == "note, edited" and note.edits == 1 and gone.deleted
    assert [m.content for m in fake.messages_in(world.channel)] == ["no picture", "note, edited"]
    assert fake.count("get_original") == 1 and fake.count("delete_followup") == 1


async def test_a_modal_and_its_submission(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "feedback")
    await ix.wait_acked()
    assert ix.response_type == 9 and ix.modal is not None and ix.modal["title"] == "Feedback"
    submitted = await fake.submit_modal(world.bob, ix, {"feedback-text": "too blurry"})
    await submitted.wait_acked()
    assert probe.seen["feedback"] == "too blurry" and submitted.original is not None
    assert submitted.original.content == "thanks"


async def test_a_modal_with_a_file_upload(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "photo")
    await ix.wait_acked()
    assert ix.modal is not None and ix.modal["components"][0]["component"]["type"] == 19
    with pytest.raises(ValueError, match="takes 1 to 1 files"):
        await fake.submit_modal(world.bob, ix, {})
    submitted = await fake.submit_modal(world.bob, ix, {}, files={"photo-file": png("teal")})
    await submitted.wait_acked()
    assert probe.seen["photo"] == [png("teal")] and submitted.original is not None
    assert submitted.original.content == "got it"


async def test_subcommands(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.alice, world.channel, "queue clear", {"everything": True})
    await ix.wait_acked()
    assert ix.data["options"] == [{"type": 1, "name": "clear", "options": [
        {"type": 5, "name": "everything", "value": True}]}]
    assert ix.original is not None and ix.original.content == "cleared (everything=True)"


async def test_autocomplete_answer_is_recorded(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.autocomplete(world.bob, world.channel, "imagine", {"prompt": "a fox", "model": "sd"},
                                 focused="model")
    await ix.wait_acked()
    assert ix.response_type == 8
    assert ix.choices == [{"name": "sdxl", "value": "sdxl"}, {"name": "sd15", "value": "sd15"}]


async def test_dm_interactions_carry_a_user_not_a_member(fake: FakeDiscord, world: World, probe: Probe) -> None:
    dm = fake.dm_channel(world.bob)
    ix = await fake.slash(world.bob, dm, "imagine", {"prompt": "a dog", "style": "photo"})
    assert "user" in ix.payload and "member" not in ix.payload and ix.payload["context"] == 1
    await fake.wait_until(lambda: any(m.attachments for m in fake.messages_in(dm)))
    assert probe.seen["imagine"]["guild"] is None and probe.seen["imagine"]["member"] is False


# --- Discord's rules ------------------------------------------------------------------------


async def test_a_callback_after_three_seconds_is_unknown(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "slow")
    fake.advance(3.5)  # the bot "took" 3.5 s
    probe.gates["slow"].set()
    await fake.wait_until(lambda: "slow" in probe.errors)
    error = probe.errors["slow"]
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert not ix.acked and ix.errors == [("interaction_callback", 404, 10062)]
    assert [(c.type, c.status, c.code) for c in ix.callbacks] == [(4, 404, 10062)]


async def test_a_second_callback_is_refused(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "twice")
    await fake.wait_until(lambda: "twice-remote" in probe.errors)
    assert isinstance(probe.errors["twice-local"], discord.InteractionResponded)
    remote = probe.errors["twice-remote"]
    assert isinstance(remote, discord.HTTPException) and remote.status == 400 and remote.code == 40060
    assert [c.status for c in ix.callbacks] == [200, 400]
    assert [m.content for m in ix.messages] == ["once"]


async def test_the_token_expires_after_fifteen_minutes(fake: FakeDiscord, world: World, probe: Probe) -> None:
    ix = await fake.slash(world.bob, world.channel, "later")
    await ix.wait_acked()
    fake.advance(15 * 60 + 1)
    probe.gates["later"].set()
    await fake.wait_until(lambda: "later" in probe.errors)
    error = probe.errors["later"]
    assert isinstance(error, discord.HTTPException) and error.status == 401 and error.code == 50027
    assert ix.original is not None and ix.original.loading  # still "thinking", as the user would see it


async def test_discord_py_waits_out_a_429_storm(fake: FakeDiscord, world: World, probe: Probe) -> None:
    fake.storm("send_message", count=3, retry_after=0.05)
    ix = await fake.slash(world.bob, world.channel, "spam", {"count": 1})
    await fake.wait_until(lambda: probe.seen.get("spam") == 1)
    assert ix.acked and [m.content for m in fake.messages_in(world.channel, from_bot=True)] == ["on it", "message 0"]
    assert fake.rate_limited == 3 and fake.count("send_message") == 4 and fake.count("send_message", status=429) == 3


async def test_discord_py_keeps_to_the_channel_limit_from_the_headers(fake: FakeDiscord, world: World,
                                                                      probe: Probe) -> None:
    await fake.slash(world.bob, world.channel, "spam", {"count": 7})
    await fake.wait_until(lambda: probe.seen.get("spam") == 7)
    sends = [r for r in fake.requests if r.route == "send_message"]
    assert [r.status for r in sends] == [200] * 7 and fake.rate_limited == 0
    assert sends[5].at - sends[0].at >= 0.45  # the 6th waited for the 0.5 s window to reset


async def test_a_429_looks_like_discords(fake: FakeDiscord, world: World) -> None:
    url = f"{fake.api_base}/channels/{world.channel.id}/messages"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session:
        for i in range(5):
            async with session.post(url, json={"content": str(i)}, headers=headers) as response:
                assert response.status == 200
                assert response.headers["X-RateLimit-Remaining"] == str(4 - i)
                assert response.headers["Content-Type"] == "application/json"
        async with session.post(url, json={"content": "one too many"}, headers=headers) as response:
            assert response.status == 429
            body = await response.json()
            assert body["message"] == "You are being rate limited." and body["global"] is False
            assert 0 < body["retry_after"] <= 0.5
            assert response.headers["Retry-After"] == "1" and response.headers["X-RateLimit-Scope"] == "user"
            assert response.headers["Via"]  # without it discord.py would not wait but raise
        async with session.post(url, json={"content": "x"}) as response:
            assert response.status == 401
    assert fake.rate_limited == 1


async def test_an_upload_over_the_guild_limit_is_413(fake: FakeDiscord, world: World, probe: Probe) -> None:
    fake.set_filesize_limit(world.guild, 1000)
    ix = await fake.slash(world.bob, world.channel, "upload", {"size": 1001})
    await fake.wait_until(lambda: len(ix.messages) == 1 and not ix.messages[0].loading)
    error = probe.errors["upload"]
    assert isinstance(error, discord.HTTPException) and error.status == 413 and error.code == 40005


# --- the gateway --------------------------------------------------------------------------------


async def test_without_message_content_intent_guild_messages_arrive_blank(fake: FakeDiscord, world: World) -> None:
    client = Probe(message_content=False)
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)
        await fake.post(world.alice, world.channel, "secret", attachments=[png()])
        await fake.post(world.alice, world.channel, f"<@{fake.bot.id}> hello")
        await fake.post(world.alice, fake.dm_channel(world.alice), "in a DM")
        await fake.wait_until(lambda: len(client.received) == 3)
        assert [(m.content, len(m.attachments)) for m in client.received] == [
            ("", 0), (f"<@{fake.bot.id}> hello", 0), ("in a DM", 0)]
    finally:
        await client.close()
        await task


async def test_privileged_intents_not_enabled_close_with_4014() -> None:
    fake = await FakeDiscord(privileged_intents=()).start()
    undo = point_discord_py_at(fake)
    try:
        client = Probe(message_content=True)
        await client.login(fake.token)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.connect(), 5)
        await fake.wait_until(lambda: fake.close_codes == [4014])
    finally:
        undo()
        await fake.close()


async def test_members_intent_gets_every_member_and_member_queries(fake: FakeDiscord, world: World) -> None:
    client = Probe(members=True)
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)
        guild = client.get_guild(world.guild.id)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {"imagebot", "art-club-owner", "alice", "bob"}
        found = await guild.query_members("ali")  # op 8 REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK
        assert [m.id for m in found] == [world.alice.id]
        alice = guild.get_member(world.alice.id)
        assert alice is not None and alice.guild_permissions.manage_guild
        assert not guild.get_member(world.bob.id).guild_permissions.manage_guild  # type: ignore[union-attr]
    finally:
        await client.close()
        await task


async def test_an_auto_sharded_client_asks_for_the_gateway(fake: FakeDiscord, world: World) -> None:
    client = discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)
        assert fake.count("get_gateway_bot") == 1 and fake.identifies[0]["shard"] == [0, 1]
        assert client.get_guild(world.guild.id) is not None
    finally:
        await client.close()
        await task


async def test_a_guild_joined_while_connected_arrives(fake: FakeDiscord, world: World, probe: Probe) -> None:
    joined = fake.add_guild("Second server")
    await fake.wait_until(lambda: probe.get_guild(joined.id) is not None)
    thread = fake.add_thread(next(iter(joined.channels.values())), "late thread")
    await fake.wait_until(lambda: probe.get_guild(joined.id).get_thread(thread.id) is not None)  # type: ignore[union-attr]


async def test_an_invalid_session_makes_discord_py_identify_again(fake: FakeDiscord, world: World) -> None:
    class Impatient(Probe):
        async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
            pass  # the default sleeps 5 s before every IDENTIFY but the first

    client = Impatient()
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)
        await fake.invalidate_session(resumable=False)
        await fake.wait_until(lambda: len(fake.identifies) == 2)
        await fake.wait_for_client()  # READY and GUILD_CREATE of the new session are out
        ix = await fake.slash(world.bob, world.channel, "ping")
        await ix.wait_acked()
        assert fake.resumes == 0
    finally:
        await client.close()
        await task


async def test_reconnect_request_is_resumed(fake: FakeDiscord, world: World, probe: Probe) -> None:
    await fake.request_reconnect()  # op 7
    await fake.wait_until(lambda: fake.resumes == 1)
    ix = await fake.slash(world.bob, world.channel, "ping")
    await ix.wait_acked()
    assert len(fake.identifies) == 1


@pytest.mark.parametrize("code", [4000, None], ids=["close-4000", "tcp-cut"])
async def test_a_dropped_connection_is_resumed(fake: FakeDiscord, world: World, probe: Probe,
                                               code: int | None) -> None:
    await fake.drop_connection(code)
    # Dispatched while the bot may still be reconnecting: it must arrive through the replay.
    ix = await fake.slash(world.bob, world.channel, "ping")
    await ix.wait_acked()
    assert ix.original is not None and ix.original.content == "pong in a guild"
    assert fake.resumes == 1 and len(fake.identifies) == 1
    assert [c.path for c in fake.connections] == ["/gateway", "/gateway-resume"]  # READY's resume_gateway_url


async def test_heartbeats_both_ways(fake: FakeDiscord, world: World, probe: Probe) -> None:
    await fake.wait_until(lambda: fake.heartbeats >= 1)  # discord.py beats right after HELLO
    before = fake.heartbeats
    await fake.request_heartbeat()
    await fake.wait_until(lambda: fake.heartbeats > before, timeout=0.4)  # well before the next 0.5 s beat


async def test_raw_gateway_zlib_stream_and_a_wrong_token(fake: FakeDiscord) -> None:
    inflate = zlib.decompressobj()

    async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        msg = await ws.receive(timeout=2)
        assert msg.type is aiohttp.WSMsgType.BINARY and msg.data.endswith(b"\x00\x00\xff\xff")
        return json.loads(inflate.decompress(msg.data))

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{fake.gateway_url}?v=10&encoding=json&compress=zlib-stream") as ws:
            hello = await receive(ws)
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 500
            await ws.send_json({"op": 1, "d": None})
            assert (await receive(ws))["op"] == 11
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 513, "properties": {}}})
            msg = await ws.receive(timeout=2)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4004


async def test_ack_latency_percentiles(fake: FakeDiscord, world: World, probe: Probe) -> None:
    started = time.monotonic()
    for _ in range(10):
        ix = await fake.slash(world.bob, world.channel, "ping")
        await ix.wait_acked()
    p50, p99 = fake.ack_percentile(50), fake.ack_percentile(99)
    print(f"ack latency p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
          f"({len(fake.ack_latencies())} interactions in {time.monotonic() - started:.2f} s)")
    assert 0 < p50 <= p99 < 1.0


def test_component_ids_are_unique_across_labels_and_accessories() -> None:
    """Ids given inside a label's ``component`` or a section's ``accessory`` count as used:
    the ids Discord fills in never repeat them, in tree order."""
    numbered = FakeDiscord._number_components([
        {"type": 9, "components": [{"type": 10, "content": "hi"}],
         "accessory": {"type": 2, "style": 1, "label": "Go", "custom_id": "go", "id": 1}},
        {"type": 18, "label": "Photo", "component": {"type": 19, "custom_id": "photo", "id": 2}},
        {"type": 10, "content": "bye"},
    ])
    section, label, text = numbered
    ids = [section["id"], section["components"][0]["id"], section["accessory"]["id"],
           label["id"], label["component"]["id"], text["id"]]
    assert ids == [3, 4, 1, 5, 2, 6]
