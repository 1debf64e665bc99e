"""Telegram updates in, neutral ``Incoming`` / ``Press`` values out, to the handlers.

The adapter downloads pictures itself (``getFile``, then the file into memory, capped):
a Telegram file URL contains the bot token, so no such URL leaves this module, and a
failed download is logged by exception type only (aiohttp's messages carry the URL).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery, Chat, InaccessibleMessage, Message, User

from handlers.flags import starts_with_flag
from handlers.port import ChatRef, DownloadRefused, Handlers, Incoming, Outcome, Press, UserRef
from locales import normalize_language, tr

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the cloud Bot API's getFile limit
DOWNLOAD_TIMEOUT_S = 60
ADMIN_CACHE_S = 60.0


def chat_ref(chat: Chat, message: Message | None = None) -> ChatRef:
    # Forum topics only: in other groups message_thread_id names a reply thread.
    thread = message.message_thread_id if message is not None and message.is_topic_message else None
    return ChatRef(platform="telegram", chat_id=str(chat.id), thread_id=str(thread) if thread else None,
                   is_private=chat.type == "private")


def user_ref(user: User, *, private: bool) -> UserRef:
    mention = "" if private else (f"@{user.username}" if user.username else user.full_name)
    return UserRef(platform="telegram", user_id=str(user.id), display_name=user.full_name,
                   language_hint=user.language_code, mention=mention)


def picture_of(message: Message | None) -> tuple[str, int | None] | None:
    """The file a message's picture is in: its largest photo size, or an image document."""
    if message is None:
        return None
    if message.photo:
        best = message.photo[-1]
        return best.file_id, best.file_size
    doc = message.document
    if doc is not None and (doc.mime_type or "").startswith("image/"):
        return doc.file_id, doc.file_size
    if message.sticker is not None and not (message.sticker.is_animated or message.sticker.is_video):
        return message.sticker.file_id, message.sticker.file_size
    return None


def command_of(text: str) -> tuple[str, str] | None:
    """``"/imagine@bot a fox"`` -> ``("imagine", "bot")``; None when it is no command."""
    if not text.startswith("/"):
        return None
    head = text.split(maxsplit=1)[0][1:]
    name, _, target = head.partition("@")
    return name.lower(), target


class TelegramAdapter:
    def __init__(self, app: Handlers, messenger: Any, bot: Bot, *, username: str = "",
                 max_download_bytes: int = MAX_DOWNLOAD_BYTES) -> None:
        self.app = app
        self.messenger = messenger
        self.bot = bot
        self.username = username
        self.max_download_bytes = max_download_bytes
        self._admins: dict[tuple[int, int], tuple[float, bool]] = {}
        self.router = Router(name="imagebot-telegram")
        # Text and captions, and in private chats a bare picture (the handlers offer what to do with it).
        self.router.message.register(self.on_message, F.text | F.caption | F.photo | F.document)
        self.router.callback_query.register(self.on_press)

    # --- pictures -------------------------------------------------------------------------

    async def download(self, file_id: str, size: int | None) -> bytes:
        limit = self.max_download_bytes
        if size is not None and size > limit:
            raise DownloadRefused("telegram-file-too-big")
        try:
            file = await self.bot.get_file(file_id)
            if file.file_size is not None and file.file_size > limit:
                raise DownloadRefused("telegram-file-too-big")
            if not file.file_path:
                raise DownloadRefused("telegram-download-failed")
            url = self.bot.session.api.file_url(self.bot.token, file.file_path)  # holds the token: stays here
            data = bytearray()
            async for chunk in self.bot.session.stream_content(url, timeout=DOWNLOAD_TIMEOUT_S):
                data += chunk
                if len(data) > limit:  # the size Telegram told may be missing or wrong
                    raise DownloadRefused("telegram-file-too-big")
            return bytes(data)
        except DownloadRefused:
            raise
        except Exception as e:
            log.warning("picture download failed: %s", type(e).__name__)
            raise DownloadRefused("telegram-download-failed") from None

    # --- who is asking ------------------------------------------------------------------------

    async def is_chat_admin(self, chat_id: int, user_id: int) -> bool:
        key = (chat_id, user_id)
        cached = self._admins.get(key)
        now = time.monotonic()
        if cached and now - cached[0] < ADMIN_CACHE_S:
            return cached[1]
        try:
            member = await self.bot.get_chat_member(chat_id=chat_id, user_id=user_id)
            admin = member.status in ("creator", "administrator")
        except Exception as e:
            log.info("chat member lookup failed: %s", type(e).__name__)
            admin = False
        if len(self._admins) > 10_000:
            self._admins.clear()
        self._admins[key] = (now, admin)
        return admin

    def _flags_for_us(self, message: Message, text: str) -> bool:
        """A reply to one of our messages with only flags ("--seed 9"): a re-run, also in groups."""
        replied = message.reply_to_message
        ours = replied is not None and replied.from_user is not None and replied.from_user.id == self.bot.id
        return ours and starts_with_flag(text.lstrip())

    def addressed_to_us(self, text: str) -> bool:
        """``/cmd@otherbot`` belongs to another bot in the group."""
        command = command_of(text)
        return command is None or not command[1] or command[1].lower() == self.username.lower()

    # --- updates --------------------------------------------------------------------------------

    async def on_message(self, message: Message) -> None:
        sender = message.from_user
        if sender is None or sender.is_bot:
            return
        text = message.text or message.caption or ""
        chat = chat_ref(message.chat, message)
        if not chat.is_private and command_of(text) is None and not self._flags_for_us(message, text):
            return  # in groups the bot answers commands, and flags sent in reply to its results
        if not self.addressed_to_us(text):
            return
        if not text.strip() and not (chat.is_private and picture_of(message)):
            return
        user = user_ref(sender, private=chat.is_private)
        try:
            images = await self._pictures(message)
            replied = message.reply_to_message
            reply_images = await self._pictures(replied) if replied is not None else []
        except DownloadRefused as e:
            lang = normalize_language(user.language_hint)
            await self.messenger.send_text(
                chat, tr(lang, e.key, mb=max(1, round(self.max_download_bytes / 2**20))), reply_to=str(message.message_id))
            return
        admin = chat.is_private or await self.is_chat_admin(message.chat.id, sender.id)
        incoming = Incoming(
            chat=chat, user=user, message_id=str(message.message_id), text=text, images=images,
            reply_to_message_id=str(replied.message_id) if replied is not None else None,
            reply_images=reply_images, sender_is_chat_admin=admin,
        )
        await self.app.handle_message(incoming, self.messenger)

    async def _pictures(self, message: Message) -> list[bytes]:
        found = picture_of(message)
        return [await self.download(*found)] if found else []

    async def on_press(self, query: CallbackQuery) -> None:
        message = query.message
        if message is None or not query.data:
            # An inline-mode message or a game: nothing of ours.
            await self.bot.answer_callback_query(query.id)
            return
        is_private = message.chat.type == "private"
        press = Press(
            chat=chat_ref(message.chat, message if isinstance(message, Message) else None),
            user=user_ref(query.from_user, private=is_private),
            message_id=str(message.message_id), data=query.data, press_id=query.id,
        )
        if isinstance(message, InaccessibleMessage):
            log.debug("press on a message too old to see; passing it on by id")
        outcome = Outcome()
        try:
            outcome = await self.app.handle_press(press, self.messenger)
        finally:
            # Every press is answered, or the user's button keeps spinning.
            if not outcome.answered:
                await self.messenger.answer_press(press)
