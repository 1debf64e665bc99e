"""The Messenger port on Telegram (aiogram 3).

Status messages start as text. In a private chat, a progress edit that carries a preview
turns the very same message into a photo (``editMessageMedia`` may replace a text message
with media), so the status keeps its id for the whole job, across restarts too; later
edits change its caption. A single result picture takes the status message's place the
same way (one message per job, which matters in a group's 20 a minute). Several go out as
an album followed by a short message holding the buttons (albums cannot carry inline
keyboards). Pictures beyond Telegram's photo limits, or for users who asked for originals,
go out as PNG documents. Every call goes through the bot's one outbound limiter.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from PIL import Image

from bot.outbound import TRANSIENT, Budget, Limits, PlatformOutbound, SlowDown
from handlers.port import Button, ChatRef, Delivered, MessageRef, OutImage, Press
from locales import tr

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024  # in UTF-16 code units, as Telegram counts
TEXT_LIMIT = 4096
ALBUM_LIMIT = 10
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20

# Telegram's Bot FAQ: about one message a second per chat, twenty a minute per group,
# thirty a second overall (edits count too).
TELEGRAM_LIMITS = Limits(private=Budget(1, 1.0), group=Budget(20, 60.0), overall=Budget(30, 1.0))


def telegram_policy(error: BaseException) -> SlowDown | str | None:
    """How the limiter should take an aiogram error."""
    if isinstance(error, TelegramRetryAfter):
        return SlowDown(float(error.retry_after))
    if isinstance(error, TelegramNetworkError | TelegramServerError):
        return TRANSIENT
    return None


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def cut_utf16(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-16 units (Telegram's measure): at a word boundary when
    one is near, never inside a character, marked with an ellipsis."""
    if utf16_len(text) <= limit:
        return text
    room = limit - 1  # the ellipsis
    units = 0
    end = 0
    for end, ch in enumerate(text):  # noqa: B007
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > room:
            break
    head = text[:end]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > len(head) * 0.6:
        head = head[:space]
    return head.rstrip() + "…"


def fits_as_photo(png: bytes) -> bool:
    """Telegram's sendPhoto limits: 10 MB, width + height <= 10000, ratio <= 20."""
    if len(png) > PHOTO_MAX_BYTES:
        return False
    try:
        with Image.open(io.BytesIO(png)) as im:
            w, h = im.size
    except Exception:
        return False
    return w + h <= PHOTO_MAX_SIDES_SUM and max(w, h) / max(1, min(w, h)) <= PHOTO_MAX_RATIO


def keyboard(buttons: list[list[Button]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    rows = [[InlineKeyboardButton(text=b.label, callback_data=b.data) for b in row] for row in buttons if row]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _text_of(e: TelegramBadRequest) -> str:
    return str(e.message).lower()


def _not_modified(e: TelegramBadRequest) -> bool:
    return "message is not modified" in _text_of(e)


def _gone(e: TelegramBadRequest) -> bool:
    """The message is no longer there (a user deleted it): nothing left to edit or delete."""
    text = _text_of(e)
    return any(s in text for s in ("message to edit not found", "message to delete not found",
                                   "message can't be deleted", "message can't be edited"))


def _is_media(e: TelegramBadRequest) -> bool:
    return "there is no text in the message to edit" in _text_of(e)


class TelegramMessenger:
    platform = "telegram"

    def __init__(self, bot: Bot, limiter: PlatformOutbound, *, language: str = "en") -> None:
        self.bot = bot
        self.limiter = limiter
        self.language = language
        # Status messages known to be photos now. Lost on restart, and relearned from
        # Telegram's "there is no text in the message to edit".
        self._photos: set[tuple[str, str]] = set()
        self._previews: dict[tuple[str, str], bytes] = {}  # newest preview not shown yet
        # False once the server refused editMessageMedia (older or local Bot API servers):
        # previews are then left out and progress stays a text edit.
        self._media_edits = True

    @staticmethod
    def _thread(chat: ChatRef) -> int | None:
        return int(chat.thread_id) if chat.thread_id and chat.thread_id.lstrip("-").isdigit() else None

    @staticmethod
    def _reply(reply_to: str | None) -> ReplyParameters | None:
        if not reply_to or not reply_to.isdigit():
            return None
        return ReplyParameters(message_id=int(reply_to), allow_sending_without_reply=True)

    # --- text -------------------------------------------------------------------------------

    async def send_text(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                        buttons: list[list[Button]] | None = None, personal: bool = False) -> MessageRef:
        # ``personal`` has no Telegram form: a reply to the sender is what everyone sees.
        message = await self.limiter.send(chat.chat_id, chat.is_private, lambda: self.bot.send_message(
            chat_id=int(chat.chat_id), text=cut_utf16(text, TEXT_LIMIT), message_thread_id=self._thread(chat),
            reply_parameters=self._reply(reply_to), reply_markup=keyboard(buttons),
        ))
        return MessageRef(chat, str(message.message_id))

    async def edit_text(self, message: MessageRef, text: str, *, buttons: list[list[Button]] | None = None) -> None:
        chat = message.chat

        async def call() -> Any:
            try:
                return await self.bot.edit_message_text(chat_id=int(chat.chat_id), message_id=int(message.message_id),
                                                        text=cut_utf16(text, TEXT_LIMIT), reply_markup=keyboard(buttons))
            except TelegramBadRequest as e:
                if _not_modified(e) or _gone(e):
                    return None
                raise

        await self.limiter.send(chat.chat_id, chat.is_private, call)

    # --- the status message -------------------------------------------------------------------

    async def send_status(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                          buttons: list[list[Button]] | None = None) -> MessageRef:
        return await self.send_text(chat, text, reply_to=reply_to, buttons=buttons)

    async def edit_status(self, status: MessageRef, text: str, *, preview: bytes | None = None,
                          buttons: list[list[Button]] | None = None, final: bool = False) -> MessageRef | None:
        """Lossy unless ``final``: coalesced with newer edits of the same message, dropped under
        pressure. The message keeps its id (``None`` is returned: nothing was replaced)."""
        chat = status.chat
        key = (chat.chat_id, status.message_id)
        cid, mid = int(chat.chat_id), int(status.message_id)
        markup = keyboard(buttons)
        # Previews are for private chats: in groups they would cost the chat's scarce edits.
        # The newest one waits here, so an edit without one that replaces it in the queue
        # still shows it.
        if preview is not None and chat.is_private and self._media_edits:
            self._previews[key] = preview

        async def as_caption() -> Any:
            return await self.bot.edit_message_caption(chat_id=cid, message_id=mid,
                                                       caption=cut_utf16(text, CAPTION_LIMIT), reply_markup=markup)

        async def with_preview(picture: bytes) -> Any:
            try:
                result = await self.bot.edit_message_media(
                    chat_id=cid, message_id=mid, reply_markup=markup,
                    media=InputMediaPhoto(media=BufferedInputFile(picture, "preview.jpg"),
                                          caption=cut_utf16(text, CAPTION_LIMIT)))
            except TelegramRetryAfter:
                self._previews.setdefault(key, picture)  # the retry shows it
                raise
            except TelegramBadRequest as e:
                if _not_modified(e) or _gone(e):
                    return None
                log.info("editMessageMedia refused (%s): progress without previews from now on", type(e).__name__)
                self._media_edits = False
                self._previews.clear()
                return await as_text()
            self._photos.add(key)
            return result

        async def as_text() -> Any:
            if key in self._photos:
                return await as_caption()
            try:
                return await self.bot.edit_message_text(chat_id=cid, message_id=mid,
                                                        text=cut_utf16(text, TEXT_LIMIT), reply_markup=markup)
            except TelegramBadRequest as e:
                if not _is_media(e):
                    raise
                self._photos.add(key)  # a photo status from before a restart
                return await as_caption()

        async def call() -> Any:
            try:
                picture = self._previews.pop(key, None)
                return await (with_preview(picture) if picture is not None else as_text())
            except TelegramBadRequest as e:
                if _not_modified(e) or _gone(e):
                    return None
                raise

        if final:
            self._previews.pop(key, None)
            await self.limiter.final_edit(chat.chat_id, chat.is_private, status.message_id, call)
        else:
            self.limiter.edit(chat.chat_id, chat.is_private, status.message_id, call)
        return None

    # --- results ------------------------------------------------------------------------------

    async def send_images(self, chat: ChatRef, images: list[OutImage], *, caption: str,
                          buttons: list[list[Button]] | None = None, reply_to: str | None = None,
                          as_files: bool = False, status: MessageRef | None = None, notify: str = "") -> Delivered:
        if not images:
            return Delivered([])
        caption = cut_utf16(caption, CAPTION_LIMIT)
        documents = as_files or not all(fits_as_photo(i.png) for i in images)
        markup = keyboard(buttons)
        if len(images) == 1:
            if status is not None and await self._into_status(status, images[0], documents, caption, markup):
                return Delivered([status], status_used=True)
            sent = await self._send_one(chat, images[0], documents, caption=caption, markup=markup,
                                        reply=self._reply(reply_to))
            return Delivered([MessageRef(chat, str(sent.message_id))])

        refs: list[MessageRef] = []
        first_id: int | None = None
        for start in range(0, len(images), ALBUM_LIMIT):
            chunk = images[start:start + ALBUM_LIMIT]
            text = caption if start == 0 else None
            reply = self._reply(reply_to) if start == 0 else None
            if len(chunk) == 1:  # an album needs two; a lone leftover goes out on its own
                album = [await self._send_one(chat, chunk[0], documents, caption=text, reply=reply)]
            else:
                album = await self._send_album(chat, chunk, documents, caption=text, reply=reply)
            first_id = first_id or album[0].message_id
            refs.extend(MessageRef(chat, str(m.message_id)) for m in album)
        if markup is not None and first_id is not None:
            # An album cannot carry buttons: they come in a message of their own right under it.
            holder_reply = ReplyParameters(message_id=first_id, allow_sending_without_reply=True)
            holder = await self.limiter.send(chat.chat_id, chat.is_private, lambda: self.bot.send_message(
                chat_id=int(chat.chat_id), text=tr(self.language, "telegram-buttons-under-album"),
                reply_markup=markup, message_thread_id=self._thread(chat), reply_parameters=holder_reply))
            refs.append(MessageRef(chat, str(holder.message_id)))
        return Delivered(refs)

    async def _into_status(self, status: MessageRef, image: OutImage, document: bool, caption: str,
                           markup: InlineKeyboardMarkup | None) -> bool:
        """Turn the status message into the result picture; False when Telegram will not."""
        chat = status.chat
        key = (chat.chat_id, status.message_id)
        self._previews.pop(key, None)
        self.limiter.forget(chat.chat_id, status.message_id)  # a waiting progress edit would undo it
        upload = BufferedInputFile(image.png, image.filename)
        media: Any = (InputMediaDocument(media=upload, caption=caption) if document
                      else InputMediaPhoto(media=upload, caption=caption))

        async def call() -> bool:
            try:
                await self.bot.edit_message_media(chat_id=int(chat.chat_id), message_id=int(status.message_id),
                                                  media=media, reply_markup=markup)
            except TelegramBadRequest as e:
                # Gone (a user deleted it), or a server without media edits: send it anew.
                log.info("status not turned into the result (%s)", type(e).__name__)
                return False
            self._photos.discard(key)
            return True

        if not self._media_edits:
            return False
        return await self.limiter.send(chat.chat_id, chat.is_private, call)

    async def _send_one(self, chat: ChatRef, image: OutImage, document: bool, *, caption: str | None,
                        reply: ReplyParameters | None, markup: InlineKeyboardMarkup | None = None) -> Message:
        upload = BufferedInputFile(image.png, image.filename)
        cid, thread = int(chat.chat_id), self._thread(chat)

        async def call() -> Message:
            if document:
                return await self.bot.send_document(
                    chat_id=cid, document=upload, caption=caption, reply_markup=markup, message_thread_id=thread,
                    reply_parameters=reply, disable_content_type_detection=True)
            return await self.bot.send_photo(chat_id=cid, photo=upload, caption=caption, reply_markup=markup,
                                             message_thread_id=thread, reply_parameters=reply)

        return await self.limiter.send(chat.chat_id, chat.is_private, call)

    async def _send_album(self, chat: ChatRef, images: list[OutImage], documents: bool, *, caption: str | None,
                          reply: ReplyParameters | None) -> list[Message]:
        media: list[Any] = []
        for k, image in enumerate(images):
            upload = BufferedInputFile(image.png, image.filename)
            text = caption if k == 0 else None
            media.append(InputMediaDocument(media=upload, caption=text) if documents
                         else InputMediaPhoto(media=upload, caption=text))
        cid, thread = int(chat.chat_id), self._thread(chat)
        # Telegram counts every picture of an album against the chat's limit.
        return await self.limiter.send(chat.chat_id, chat.is_private, lambda: self.bot.send_media_group(
            chat_id=cid, media=media, message_thread_id=thread, reply_parameters=reply), cost=len(images))

    async def delete(self, message: MessageRef) -> None:
        chat = message.chat
        self._photos.discard((chat.chat_id, message.message_id))
        self._previews.pop((chat.chat_id, message.message_id), None)
        self.limiter.forget(chat.chat_id, message.message_id)
        try:
            # Deleting is not a message: it takes no slot in the chat's schedule.
            await self.limiter.call(lambda: self.bot.delete_message(
                chat_id=int(chat.chat_id), message_id=int(message.message_id)))
        except TelegramBadRequest as e:
            if not _gone(e):
                raise

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None:
        # Not in the chat's schedule: answers are not messages, and the spinner must stop now.
        try:
            await self.bot.answer_callback_query(callback_query_id=press.press_id,
                                                 text=cut_utf16(text, 200) if text else None, show_alert=alert)
        except (TelegramBadRequest, TelegramForbiddenError) as e:
            # "query is too old": the press was answered late; nothing else to do.
            log.info("callback answer not accepted: %s", type(e).__name__)
