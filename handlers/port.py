"""The chat port: the only things the handlers know about a chat platform.

Inbound, an adapter turns a platform event into an ``Incoming`` (a message) or a
``Press`` (a button). Outbound, it implements ``Messenger``. Every id is a string so
Telegram's ints, Discord's snowflakes and the console's counters fit alike. A delivery
after a restart uses only ids stored with the job (``ChatRef`` + status message id),
never a platform object or an interaction token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChatRef:
    platform: str  # "telegram" | "discord" | "console"
    chat_id: str
    # Telegram forum topic / Discord thread the conversation happens in.
    thread_id: str | None = None
    is_private: bool = True


@dataclass(frozen=True)
class UserRef:
    platform: str
    user_id: str
    display_name: str = ""
    # The user's client language ("en", "zh-hans", ...), used until they pick one with /lang.
    language_hint: str | None = None
    # A mention the adapter knows how to render ("@ann", "<@123>"); empty in private chats.
    mention: str = ""


@dataclass(frozen=True)
class MessageRef:
    chat: ChatRef
    message_id: str


@dataclass(frozen=True)
class Incoming:
    """A user's message, already stripped of platform details."""

    chat: ChatRef
    user: UserRef
    message_id: str
    # The text or caption, command included ("/imagine a fox --ar 3:2").
    text: str
    # Images attached to this message, downloaded by the adapter itself (bytes, never URLs).
    images: list[bytes] = field(default_factory=list)
    # The message this one replies to, if any, and the images it carries.
    reply_to_message_id: str | None = None
    reply_images: list[bytes] = field(default_factory=list)
    # An inpainting mask (white = repaint). Only the console sets it (--mask PATH) for now.
    mask: bytes | None = None
    # True when the chat admins may run admin commands for this chat (group settings).
    sender_is_chat_admin: bool = False


@dataclass(frozen=True)
class Button:
    label: str
    # Opaque to the adapter; at most 64 bytes (Telegram's callback_data limit).
    data: str


@dataclass(frozen=True)
class Press:
    """A button press on one of the bot's messages."""

    chat: ChatRef
    user: UserRef
    message_id: str
    data: str
    # The adapter's handle for answering this press (callback query id, interaction id).
    press_id: str


@dataclass(frozen=True)
class OutImage:
    png: bytes
    filename: str


class Messenger(Protocol):
    """What the handlers may do in a chat. Adapters own rate limits and retries."""

    platform: str

    async def send_text(
        self, chat: ChatRef, text: str, *, reply_to: str | None = None,
        buttons: list[list[Button]] | None = None,
    ) -> MessageRef: ...

    async def edit_text(
        self, message: MessageRef, text: str, *, preview: bytes | None = None,
        buttons: list[list[Button]] | None = None,
    ) -> MessageRef | None:
        """Edit a status message. May be dropped under flood pressure (progress is lossy).

        An adapter that had to replace the message (Telegram turns a text status into a
        photo to show a preview) returns the new one; the caller stores it with the job.
        """
        ...

    async def send_images(
        self, chat: ChatRef, images: list[OutImage], *, caption: str,
        buttons: list[list[Button]] | None = None, reply_to: str | None = None, as_files: bool = False,
    ) -> list[MessageRef]:
        """Deliver results. Never dropped: waits out flood limits and retries.

        ``as_files``: the user asked for originals (PNG documents, no recompression).
        """
        ...

    async def delete(self, message: MessageRef) -> None: ...

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None: ...
