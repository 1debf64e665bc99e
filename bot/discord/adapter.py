"""Discord events in, neutral ``Incoming`` / ``Press`` values out, to the handlers.

Every interaction is acknowledged first, before any download, database or vendor work:
Discord gives three seconds, and a busy SQLite or a slow catalogue must never turn into
"The application did not respond". Commands and menus get an ephemeral "thinking…"
(personal replies then fill it), button presses a deferred update (nothing shows unless
the handlers answer). Once the handlers are done, a "thinking…" nobody filled is turned
into a short line pointing at the job's status message, or deleted.

Where things are: a guild channel is the chat and the guild its space; a thread is the
chat of its parent channel with ``thread_id`` set, so answers stay in the thread while the
channel's defaults apply to it; a DM is a private chat. The sender's rights come from the
permissions in the interaction payload (no API call): Manage Server makes a space admin,
Manage Channels a chat admin.

Pictures users give (attachment options, a context menu's target message, a message's
attachments) are downloaded here, capped, into bytes for the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import aiohttp
import discord

from bot.discord.interactions import Live, LiveInteractions
from handlers import port
from handlers.images import MAX_UPLOAD_BYTES
from handlers.port import ChatRef, DownloadRefused, Incoming, Press, UserRef
from locales import normalize_language, tr

log = logging.getLogger(__name__)

PLATFORM = "discord"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
PROMPT_LIMIT = 1000
_MENTION = re.compile(r"<@[!&]?\d+>")
# What makes a job, whose status and pictures the bot posts in the channel itself.
JOB_COMMANDS = ("/imagine", "/swap", "/upscale")
JOB_PRESSES = ("u", "v", "r")


class Handlers(port.Handlers, Protocol):
    """The part of ``handlers.app.App`` this adapter calls: the port's, and the suggestions
    that answer autocomplete."""

    suggestions: Any


# --- who and where ---------------------------------------------------------------------------------

def chat_ref(channel: Any, channel_id: int | None, guild_id: int | None) -> ChatRef:
    if guild_id is None:
        return ChatRef(platform=PLATFORM, chat_id=str(channel_id), is_private=True)
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return ChatRef(platform=PLATFORM, chat_id=str(channel.parent_id), thread_id=str(channel.id),
                       is_private=False, space_id=str(guild_id))
    return ChatRef(platform=PLATFORM, chat_id=str(channel_id), is_private=False, space_id=str(guild_id))


def user_ref(user: discord.abc.User, *, private: bool, locale: str | None) -> UserRef:
    return UserRef(platform=PLATFORM, user_id=str(user.id), display_name=user.display_name,
                   language_hint=locale, mention="" if private else user.mention)


def rights(permissions: discord.Permissions) -> tuple[bool, bool]:
    """(chat admin, space admin): Manage Channels for this channel, Manage Server for the guild."""
    space = permissions.administrator or permissions.manage_guild
    return space or permissions.manage_channels, space


def cannot_post(interaction: discord.Interaction) -> bool:
    """Whether the bot lacks what posting a job's status and pictures takes in this channel
    (the interaction says what the bot may do there, no API call needed)."""
    if interaction.guild_id is None:
        return False
    perms = interaction.app_permissions
    speak = perms.send_messages_in_threads if isinstance(interaction.channel, discord.Thread) else perms.send_messages
    return not (perms.view_channel and speak and perms.attach_files)


def pictures_of(message: discord.Message | None) -> list[discord.Attachment]:
    if message is None:
        return []
    return [a for a in message.attachments
            if (a.content_type or "").startswith("image/") or a.filename.lower().endswith(IMAGE_SUFFIXES)]


def prompt_of(message: discord.Message) -> str:
    """A starting prompt from a message's text: our results start with the prompt's line."""
    first = (message.content or "").strip().split("\n", 1)[0]
    return " ".join(_MENTION.sub("", first).split())[:PROMPT_LIMIT]


def jump_url(ref_chat: ChatRef, message_id: str) -> str:
    where = ref_chat.space_id or "@me"
    return f"https://discord.com/channels/{where}/{ref_chat.thread_id or ref_chat.chat_id}/{message_id}"


# --- the adapter -------------------------------------------------------------------------------------

class DiscordAdapter:
    def __init__(self, app: Handlers, messenger: Any, client: discord.Client, live: LiveInteractions, *,
                 storage: Any, message_content: bool = False, max_download_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.app = app
        self.messenger = messenger
        self.client = client
        self.live = live
        self.storage = storage
        self.message_content = message_content
        self.max_download_bytes = max_download_bytes
        self._busy: set[asyncio.Task[Any]] = set()

    # --- acknowledging -----------------------------------------------------------------------------

    async def _defer(self, interaction: discord.Interaction, *, thinking: bool) -> bool:
        """The first answer, at once. False when Discord would not take it (too late)."""
        try:
            if thinking:
                await interaction.response.defer(ephemeral=True, thinking=True)
            else:
                await interaction.response.defer()
        except discord.InteractionResponded:
            pass
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as e:
            log.warning("an interaction could not be acknowledged (%s %s)", type(e).__name__, getattr(e, "code", ""))
            return False
        return True

    def _begin(self, interaction: discord.Interaction) -> tuple[Live, ChatRef, UserRef, bool, bool]:
        chat = chat_ref(interaction.channel, interaction.channel_id, interaction.guild_id)
        user = user_ref(interaction.user, private=chat.is_private, locale=str(interaction.locale))
        live = self.live.add(interaction, mention=user.mention)
        self.messenger.learn_upload_limit(chat, getattr(interaction, "filesize_limit", None))
        chat_admin, space_admin = rights(interaction.permissions) if not chat.is_private else (True, False)
        return live, chat, user, chat_admin, space_admin

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """Handlers in flight, so a shutdown can let them finish against a live runtime."""
        task = asyncio.current_task()
        if task is not None:
            self._busy.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._busy.discard(task)

    async def drain(self, grace_s: float = 10.0) -> None:
        pending = [t for t in self._busy if not t.done() and t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=grace_s)

    # --- commands and menus --------------------------------------------------------------------------

    async def command(self, interaction: discord.Interaction, text: str, *,
                      images: Sequence[discord.Attachment] = (), mask: discord.Attachment | None = None,
                      reply_images: Sequence[discord.Attachment] = (), reply_to: str | None = None) -> None:
        """A slash command, a context menu or a modal, as the text command it stands for."""
        with self._working():
            if not await self._defer(interaction, thinking=True):
                return
            live, chat, user, chat_admin, space_admin = self._begin(interaction)
            try:
                if text.split(maxsplit=1)[0] in JOB_COMMANDS and cannot_post(interaction):
                    # A job here could never show its status or deliver: say so before queueing it.
                    line = tr(await self._language(user), "discord-cannot-post")
                    await self.messenger.send_text(chat, line, reply_to=live.key, personal=True)
                    return
                try:
                    got = [await self._download(a) for a in images]
                    got_mask = await self._download(mask) if mask is not None else None
                    got_replied = [await self._download(a) for a in reply_images]
                except DownloadRefused as e:
                    await self._refuse_download(e, chat, user, reply_to=live.key)
                    return
                incoming = Incoming(chat=chat, user=user, message_id=live.key, text=text, images=got,
                                    reply_to_message_id=reply_to, reply_images=got_replied, mask=got_mask,
                                    sender_is_chat_admin=chat_admin, sender_is_space_admin=space_admin)
                await self.app.handle_message(incoming, self.messenger)
            finally:
                await self._settle(live, user)

    async def _settle(self, live: Live, user: UserRef) -> None:
        """The "thinking…" no personal reply filled: point it at the job's status, or remove it."""
        if live.filled:
            return
        try:
            if live.status is not None:
                line = tr(await self._language(user), "discord-queued",
                          link=jump_url(live.status.chat, live.status.message_id))
                await live.interaction.edit_original_response(content=line)
            else:
                await live.interaction.delete_original_response()
        except Exception as e:  # a courtesy: the job, if any, goes on regardless
            log.info("the deferred answer was not resolved (%s)", type(e).__name__)

    async def imagine_from(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Apps > Imagine from this: a modal asks for the prompt (prefilled from the message's
        text); submitting it repaints the message's picture (a reply with only flags to one
        of our results re-runs it, as a typed reply would)."""
        if (picture := await self._picture_of(interaction, message)) is not None:
            await self._open_modal(interaction, ImagineModal, message, picture)

    async def upscale_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if (picture := await self._picture_of(interaction, message)) is not None:
            await self.command(interaction, "/upscale", reply_images=[picture], reply_to=str(message.id))

    async def swap_into(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Apps > Swap face into this: the message's picture receives the face from the photo
        the user uploads in the modal that opens."""
        if (picture := await self._picture_of(interaction, message)) is not None:
            await self._open_modal(interaction, SwapModal, message, picture)

    async def _picture_of(self, interaction: discord.Interaction, message: discord.Message) -> discord.Attachment | None:
        """The message's first picture; None, once the user has been told it has none."""
        pictures = pictures_of(message)
        if pictures:
            return pictures[0]
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.send_message(tr(str(interaction.locale), "discord-no-picture"), ephemeral=True)
        return None

    async def _open_modal(self, interaction: discord.Interaction, modal: type[ImagineModal | SwapModal],
                          message: discord.Message, picture: discord.Attachment) -> None:
        lang = normalize_language(str(interaction.locale))
        await interaction.response.send_modal(modal(self, message, picture, lang))

    def models_for(self, backend: str | None, typed: str) -> list[str]:
        """Autocomplete: from the cache, at once (Discord's deadline is short)."""
        return list(self.app.suggestions.models(backend, typed))

    # --- presses ----------------------------------------------------------------------------------

    async def on_press(self, interaction: discord.Interaction, data: str) -> None:
        with self._working():
            if not await self._defer(interaction, thinking=False):
                return
            message = interaction.message
            if message is None:
                return
            live, chat, user, _, _ = self._begin(interaction)
            live.pressed = str(message.id)
            self.live.may_edit(live.pressed, live)
            press = Press(chat=chat, user=user, message_id=live.pressed, data=data, press_id=live.key)
            if data.split(":", 1)[0] in JOB_PRESSES and cannot_post(interaction):
                await self.messenger.answer_press(press, tr(await self._language(user), "discord-cannot-post"))
                return
            await self.app.handle_press(press, self.messenger)
            # Not answered: the deferred update stands (the button simply stops spinning).

    # --- plain messages ---------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """DMs (their text needs no privileged intent): a prompt, or a reply with flags. In
        servers, only with the message-content intent, and only replies to our messages."""
        if message.author.bot or self.client.user is None:
            return
        private = message.guild is None
        if not private and not self.message_content:
            return
        reference = message.reference
        replied = reference.resolved if reference is not None and isinstance(reference.resolved,
                                                                                discord.Message) else None
        if not private and (replied is None or replied.author.id != self.client.user.id):
            return
        text = (message.content or "").strip()
        if not text and not message.attachments:
            return
        if not private and not text.startswith("/"):
            text = f"/imagine {text}"
        with self._working():
            chat = chat_ref(message.channel, message.channel.id, message.guild.id if message.guild else None)
            user = user_ref(message.author, private=private, locale=None)
            try:
                images = [await self._download(a) for a in pictures_of(message)]
                reply_images = [await self._download(a) for a in pictures_of(replied)]
            except DownloadRefused as e:
                await self._refuse_download(e, chat, user, reply_to=str(message.id))
                return
            chat_admin = space_admin = False
            if not private and isinstance(message.author, discord.Member) and hasattr(message.channel,
                                                                                    "permissions_for"):
                chat_admin, space_admin = rights(message.channel.permissions_for(message.author))  # type: ignore[union-attr]
            reply_to = str(reference.message_id) if reference is not None and reference.message_id else None
            incoming = Incoming(chat=chat, user=user, message_id=str(message.id), text=text, images=images,
                                reply_to_message_id=reply_to, reply_images=reply_images,
                                sender_is_chat_admin=chat_admin or private, sender_is_space_admin=space_admin)
            await self.app.handle_message(incoming, self.messenger)

    # --- helpers ---------------------------------------------------------------------------------------

    async def _refuse_download(self, refused: DownloadRefused, chat: ChatRef, user: UserRef, *, reply_to: str) -> None:
        """Tell the sender, alone, why a picture they gave was not taken."""
        line = tr(await self._language(user), refused.key, size=f"{self.max_download_bytes // 2**20} MB")
        await self.messenger.send_text(chat, line, reply_to=reply_to, personal=True)

    async def _download(self, attachment: discord.Attachment) -> bytes:
        """Into memory, capped; an attachment URL is signed, so only the error type is logged."""
        if attachment.size > self.max_download_bytes:
            raise DownloadRefused("discord-file-too-big")
        try:
            data = await attachment.read()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as e:
            log.warning("attachment download failed: %s", type(e).__name__)
            raise DownloadRefused("discord-download-failed") from None
        if len(data) > self.max_download_bytes:
            raise DownloadRefused("discord-file-too-big")
        return data

    async def _language(self, user: UserRef) -> str:
        """The user's /lang choice, else their Discord language: for the adapter's own lines."""
        known = await self.storage.find_user(PLATFORM, user.user_id)
        return known.language if known is not None and known.language else normalize_language(user.language_hint)


# --- the modals behind two context menus ----------------------------------------------------------

MODAL_TIMEOUT_S = 15 * 60.0


class ImagineModal(discord.ui.Modal):
    def __init__(self, adapter: DiscordAdapter, message: discord.Message, picture: discord.Attachment,
                 lang: str) -> None:
        super().__init__(title=tr(lang, "discord-modal-imagine")[:45], timeout=MODAL_TIMEOUT_S,
                         custom_id=f"imagine-from:{message.id}")
        self.adapter, self.message, self.picture = adapter, message, picture
        self.prompt: discord.ui.TextInput[ImagineModal] = discord.ui.TextInput(
            label=tr(lang, "discord-modal-prompt")[:45], placeholder=tr(lang, "discord-modal-prompt-hint")[:100],
            default=prompt_of(message) or None, style=discord.TextStyle.paragraph, max_length=PROMPT_LIMIT,
            custom_id="prompt")
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        prompt = " ".join(self.prompt.value.split())
        await self.adapter.command(interaction, f"/imagine {prompt}", reply_images=[self.picture],
                                   reply_to=str(self.message.id))


class SwapModal(discord.ui.Modal):
    def __init__(self, adapter: DiscordAdapter, message: discord.Message, picture: discord.Attachment,
                 lang: str) -> None:
        super().__init__(title=tr(lang, "discord-modal-swap")[:45], timeout=MODAL_TIMEOUT_S,
                         custom_id=f"swap-into:{message.id}")
        self.adapter, self.message, self.picture = adapter, message, picture
        self.face: discord.ui.FileUpload[SwapModal] = discord.ui.FileUpload(custom_id="face", min_values=1,
                                                                          max_values=1, required=True)
        self.add_item(discord.ui.Label(text=tr(lang, "discord-modal-face")[:45], component=self.face))

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        await self.adapter.command(interaction, "/swap", images=self.face.values[:1], reply_images=[self.picture],
                                   reply_to=str(self.message.id))
