"""The Messenger port on Discord (discord.py 2).

Two kinds of answer, for two lifetimes:

- What is *for the sender only* (``send_text(personal=True)``: refusals, errors, /balance,
  /settings, /help, and press answers) is an ephemeral follow-up of the interaction it
  answers, while that interaction's 15-minute token lives. Without one (a plain message,
  a token that died or was refused) it becomes a channel reply that mentions the sender.
- Everything that lasts (a job's status message, its progress, its results) is an
  ordinary channel message sent and edited with the bot token, by channel and message id
  alone (``PartialMessageable``): a job that waits an hour, or is delivered after a
  restart, updates and arrives the same way.

Progress edits are lossy and coalesced by the outbound limiter; a preview goes with them
as a small JPEG attachment. Results go out at most ten pictures a message with the
caption and the buttons; a picture over the chat's upload limit is re-encoded (off the
event loop) so it still arrives, and a 413 anyway shrinks the limit and tries again.
Every call goes through the bot's one outbound limiter (per channel, and overall), which
also waits out a 429 that discord.py gave up on.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from typing import Any, cast

import aiohttp
import discord

from bot.discord import uploads
from bot.discord.buttons import view_of
from bot.discord.interactions import Live, LiveInteractions
from bot.outbound import TRANSIENT, Budget, Limits, PlatformOutbound, SlowDown
from handlers.port import Button, ChatRef, Delivered, MessageRef, OutImage, Press
from locales import tr

log = logging.getLogger(__name__)

TEXT_LIMIT = 2000
FILES_PER_MESSAGE = 10
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # DMs and unboosted servers
UPLOAD_ATTEMPTS = 5

# Discord: 5 messages per 5 s per channel, 50 requests a second for the whole bot.
DISCORD_LIMITS = Limits(private=Budget(5, 5.0), group=Budget(5, 5.0), overall=Budget(50, 1.0))

# Prompts are user text: a mention typed into one ("a portrait of @ann") must not ping
# anybody, nor @everyone or a role, through the bot. Only the requester is notified.
NO_PINGS = discord.AllowedMentions.none()
_USER_MENTION = re.compile(r"<@!?(\d+)>")


def ping_only(mention: str) -> discord.AllowedMentions:
    """Mentions that notify exactly the user ``mention`` names ("<@123>"), and the author of
    the message replied to (the requester's own message); nobody when it names no one."""
    found = _USER_MENTION.fullmatch(mention.strip())
    users = [discord.Object(int(found.group(1)))] if found else []
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=True)


def discord_policy(error: BaseException) -> SlowDown | str | None:
    """How the limiter should take a discord.py error. discord.py itself waits out a 429 up
    to five times; past that (a storm) it raises, and the limiter holds the channel."""
    if isinstance(error, discord.RateLimited):
        return SlowDown(float(error.retry_after))
    if isinstance(error, discord.HTTPException):
        if error.status == 429:
            headers = getattr(error.response, "headers", {}) or {}
            wait = headers.get("X-RateLimit-Reset-After") or headers.get("Retry-After") or "1"
            try:
                seconds = float(wait)
            except ValueError:
                seconds = 1.0
            return SlowDown(seconds, everywhere=headers.get("X-RateLimit-Global") == "true")
        if error.status >= 500:
            return TRANSIENT
        return None
    if isinstance(error, aiohttp.ClientError | TimeoutError | ConnectionError):
        return TRANSIENT
    return None


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > limit * 0.6:
        head = head[:space]
    return head.rstrip() + "…"


def _or_missing(value: Any) -> Any:
    """discord.py's "not given" for an optional argument we do not have."""
    return discord.utils.MISSING if value is None else value


def human_size(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{max(1, size // 1024)} KB"


def _too_large(error: discord.HTTPException) -> bool:
    return error.status == 413 or error.code == 40005


class DiscordMessenger:
    platform = "discord"

    def __init__(self, client: discord.Client, limiter: PlatformOutbound, live: LiveInteractions, *,
                 language: str = "en") -> None:
        self.client = client
        self.limiter = limiter
        self.live = live
        self.language = language
        # Upload limits the API told us (an interaction's attachment_size_limit), per guild;
        # lowered when a 413 says the guild's limit is smaller than we knew.
        self._upload_limits: dict[str, int] = {}
        self._previews: dict[str, bytes] = {}  # status message id -> newest preview not shown yet
        self._showing_preview: set[str] = set()  # status messages with a preview attached now
        self._no_previews: set[str] = set()  # channels where the bot may not attach files

    # --- where things go ------------------------------------------------------------------

    @staticmethod
    def channel_key(chat: ChatRef) -> str:
        """The Discord channel a chat's messages live in (a thread is a channel of its own)."""
        return chat.thread_id or chat.chat_id

    def _channel(self, chat: ChatRef) -> discord.PartialMessageable:
        guild_id = int(chat.space_id) if chat.space_id and chat.space_id.isdigit() else None
        return self.client.get_partial_messageable(int(self.channel_key(chat)), guild_id=guild_id)

    def _reference(self, chat: ChatRef, reply_to: str | None) -> discord.MessageReference | None:
        """A reply to a user's message; never to an interaction id (it is no message)."""
        if not reply_to or not reply_to.isdigit() or self.live.known(reply_to):
            return None
        return discord.MessageReference(message_id=int(reply_to), channel_id=int(self.channel_key(chat)),
                                        fail_if_not_exists=False)

    def learn_upload_limit(self, chat: ChatRef, limit: int | None) -> None:
        if limit and chat.space_id:
            self._upload_limits[chat.space_id] = int(limit)

    def upload_limit(self, chat: ChatRef) -> int:
        if not chat.space_id:
            return DEFAULT_UPLOAD_LIMIT
        known = self._upload_limits.get(chat.space_id)
        if known:
            return known
        guild = self.client.get_guild(int(chat.space_id)) if chat.space_id.isdigit() else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    # --- text -----------------------------------------------------------------------------

    async def send_text(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                        buttons: list[list[Button]] | None = None, personal: bool = False) -> MessageRef:
        live = self.live.get(reply_to)
        if personal and live is not None:
            sent = await self._follow_up(live, text, buttons)
            if sent is not None:
                return MessageRef(chat, sent)
        mention = self.live.mention_of(reply_to) if personal else ""
        if mention and mention not in text:
            text = f"{mention} {text}"
        return await self._post(chat, text, reply_to=reply_to, buttons=buttons,
                                mentions=ping_only(mention) if personal else NO_PINGS)

    async def _follow_up(self, live: Live, text: str, buttons: list[list[Button]] | None) -> str | None:
        """An ephemeral follow-up (the first one fills the "thinking…" message); None when
        Discord refused it (a token that died early does happen)."""
        view = view_of(buttons)
        try:
            message = await live.interaction.followup.send(
                cut(text), ephemeral=True, wait=True, allowed_mentions=NO_PINGS, view=_or_missing(view))
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as e:
            log.info("ephemeral follow-up refused (%s %s); answering in the channel",
                     type(e).__name__, getattr(e, "code", ""))
            return None
        live.filled = True
        self.live.may_edit(str(message.id), live)
        return str(message.id)

    async def _post(self, chat: ChatRef, text: str, *, reply_to: str | None, buttons: list[list[Button]] | None,
                    mentions: discord.AllowedMentions) -> MessageRef:
        channel = self._channel(chat)
        reference = self._reference(chat, reply_to)
        view = view_of(buttons)

        async def call() -> discord.Message:
            return await channel.send(cut(text), reference=cast(Any, reference), allowed_mentions=mentions,
                                      view=_or_missing(view))

        message = await self.limiter.send(self.channel_key(chat), chat.is_private, call)
        return MessageRef(chat, str(message.id))

    async def edit_text(self, message: MessageRef, text: str, *, buttons: list[list[Button]] | None = None) -> None:
        """An ephemeral message (a settings panel) can only be edited through an interaction:
        the press on it, or the one that sent it. Anything else is edited with the bot token."""
        view = view_of(buttons)
        editor = self.live.editor_of(message.message_id)
        if editor is not None:
            try:
                if editor.pressed == message.message_id:
                    await editor.interaction.edit_original_response(content=cut(text), view=view)
                else:
                    await editor.interaction.followup.edit_message(int(message.message_id), content=cut(text),
                                                                  view=view)
                return
            except (discord.HTTPException, aiohttp.ClientError) as e:
                log.info("edit through the interaction refused (%s); trying the bot token", type(e).__name__)
        chat = message.chat
        partial = self._channel(chat).get_partial_message(int(message.message_id))

        async def call() -> None:
            try:
                await partial.edit(content=cut(text), view=view)
            except discord.NotFound:
                log.info("message to edit is gone")

        await self.limiter.send(self.channel_key(chat), chat.is_private, call)

    # --- the status message ----------------------------------------------------------------

    async def send_status(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                          buttons: list[list[Button]] | None = None) -> MessageRef:
        ref = await self._post(chat, text, reply_to=reply_to, buttons=buttons, mentions=NO_PINGS)
        live = self.live.get(reply_to)
        if live is not None:
            live.status = ref  # the adapter points the sender's "thinking…" at it
        return ref

    async def edit_status(self, status: MessageRef, text: str, *, preview: bytes | None = None,
                          buttons: list[list[Button]] | None = None, final: bool = False) -> MessageRef | None:
        """Lossy unless ``final``. The newest preview waits here, so an edit without one that
        replaced it in the limiter's queue still shows it. The message keeps its id."""
        chat = status.chat
        key = status.message_id
        where = self.channel_key(chat)
        if preview is not None and where not in self._no_previews:
            self._previews[key] = preview
        partial = self._channel(chat).get_partial_message(int(key))

        async def call() -> None:
            picture = None if final else self._previews.pop(key, None)
            fields: dict[str, Any] = {"content": cut(text), "view": view_of(buttons)}
            if picture is not None:  # already a small JPEG (engine.backend.Progress.preview)
                fields["attachments"] = [discord.File(io.BytesIO(picture), "preview.jpg")]
            elif final and key in self._showing_preview:
                fields["attachments"] = []
            try:
                await partial.edit(**fields)
            except discord.NotFound:
                return  # a user deleted it: nothing left to edit
            except discord.Forbidden:
                if picture is None:
                    raise
                log.info("no previews in channel %s (the bot may not attach files there)", where)
                self._no_previews.add(where)
                fields.pop("attachments")
                await partial.edit(**fields)
                return
            if picture is not None:
                self._showing_preview.add(key)
            elif "attachments" in fields:
                self._showing_preview.discard(key)

        if final:
            self._previews.pop(key, None)
            await self.limiter.final_edit(where, chat.is_private, key, call)
        else:
            self.limiter.edit(where, chat.is_private, key, call)
        return None

    # --- results -----------------------------------------------------------------------------

    async def send_images(self, chat: ChatRef, images: list[OutImage], *, caption: str,
                          buttons: list[list[Button]] | None = None, reply_to: str | None = None,
                          as_files: bool = False, status: MessageRef | None = None, notify: str = "") -> Delivered:
        """New messages (so the result lands at the bottom and the mention in the caption
        notifies the requester); the status message makes way. ``as_files``: Discord never
        recompresses attachments, so originals are simply the PNGs."""
        if not images:
            return Delivered([])
        refs: list[MessageRef] = []
        for start in range(0, len(images), FILES_PER_MESSAGE):
            group = images[start:start + FILES_PER_MESSAGE]
            first = start == 0
            message = await self._send_pictures(chat, group, caption=caption if first else "",
                                                buttons=buttons if first else None,
                                                reply_to=reply_to if first else None,
                                                mentions=ping_only(notify) if first else NO_PINGS)
            refs.append(MessageRef(chat, str(message.id)))
        return Delivered(refs)

    async def _send_pictures(self, chat: ChatRef, images: list[OutImage], *, caption: str,
                             buttons: list[list[Button]] | None, reply_to: str | None,
                             mentions: discord.AllowedMentions) -> discord.Message:
        channel = self._channel(chat)
        reference = self._reference(chat, reply_to)
        view = view_of(buttons)
        limit = self.upload_limit(chat)

        def fit_all(limit: int) -> list[uploads.Fitted]:
            return [uploads.fit(i.png, i.filename, limit) for i in images]

        for attempt in range(UPLOAD_ATTEMPTS):
            fitted = await asyncio.to_thread(fit_all, limit)
            text = caption
            if any(f.reencoded for f in fitted):
                note = tr(self.language, "discord-reencoded", size=human_size(limit))
                text = f"{caption}\n{note}" if caption else note

            async def call(fitted: list[uploads.Fitted] = fitted, text: str = text) -> discord.Message:
                files = [discord.File(io.BytesIO(f.data), f.filename) for f in fitted]
                return await channel.send(cut(text) if text else None, files=files, reference=cast(Any, reference),
                                          allowed_mentions=mentions, view=_or_missing(view))

            try:
                return await self.limiter.send(self.channel_key(chat), chat.is_private, call)
            except discord.HTTPException as e:
                if not _too_large(e) or attempt == UPLOAD_ATTEMPTS - 1:
                    raise
                largest = max(len(f.data) for f in fitted)
                limit = max(2048, min(limit, largest) // 2)
                if chat.space_id:
                    self._upload_limits[chat.space_id] = limit
                log.info("upload refused as too large; shrinking pictures under %d bytes", limit)
        raise AssertionError("unreachable")

    async def delete(self, message: MessageRef) -> None:
        chat = message.chat
        self._previews.pop(message.message_id, None)
        self._showing_preview.discard(message.message_id)
        self.limiter.forget(self.channel_key(chat), message.message_id)
        partial = self._channel(chat).get_partial_message(int(message.message_id))

        async def call() -> None:
            try:
                await partial.delete()
            except discord.NotFound:
                pass

        # Deleting is not a message: it takes no slot in the channel's schedule.
        await self.limiter.call(call)

    # --- presses -------------------------------------------------------------------------------

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None:
        """The press was deferred at once; a text answer is an ephemeral follow-up (Discord
        has no alert: ephemeral is how only the presser sees it)."""
        if not text:
            return
        live = self.live.get(press.press_id)
        if live is None:
            log.info("press answered too late; dropped")
            return
        try:
            await live.interaction.followup.send(cut(text), ephemeral=True, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as e:
            log.info("press answer refused: %s", type(e).__name__)
