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
    # The space above the chat whose admins may set defaults for all its chats: a Discord
    # guild. Telegram and the console have none.
    space_id: str | None = None


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
    # True when the sender may change this chat's settings (a group admin; a Discord member
    # with Manage Channels for the channel).
    sender_is_chat_admin: bool = False
    # True when the sender may change the whole space's settings (Discord: Manage Server).
    sender_is_space_admin: bool = False


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


@dataclass(frozen=True)
class Delivered:
    """What delivering results left in the chat."""

    messages: list[MessageRef]
    # True when the adapter turned the status message itself into the result (one message
    # per job instead of two, where the platform can edit a text into a picture): the
    # caller must not delete it.
    status_used: bool = False


@dataclass(frozen=True)
class Outcome:
    """What handling one event did, for the adapter (it never peeks into a messenger)."""

    answered: bool = False  # something was said to the sender (a reply or a press answer)
    job_id: str | None = None  # a job was queued


class Messenger(Protocol):
    """What the handlers may do in a chat. Adapters own rate limits and retries.

    Messages have roles: an ordinary reply (``send_text``), which may be addressed to the
    sender alone (``personal``: Discord shows it to them only, elsewhere it is a plain
    reply); the status message of a job (``send_status`` / ``edit_status``), which shows
    the queue position and progress and ends as the result or as a final word; and the
    results (``send_images``).
    """

    platform: str

    async def send_text(
        self, chat: ChatRef, text: str, *, reply_to: str | None = None,
        buttons: list[list[Button]] | None = None, personal: bool = False,
    ) -> MessageRef:
        """``personal``: refusals, errors, balances, settings, help: for the sender's eyes."""
        ...

    async def edit_text(self, message: MessageRef, text: str, *, buttons: list[list[Button]] | None = None) -> None:
        """Edit an ordinary message of ours (a settings panel after a press). Never dropped."""
        ...

    async def send_status(
        self, chat: ChatRef, text: str, *, reply_to: str | None = None, buttons: list[list[Button]] | None = None,
    ) -> MessageRef:
        """Post a job's status message (the first answer to a request: "Queued")."""
        ...

    async def edit_status(
        self, status: MessageRef, text: str, *, preview: bytes | None = None,
        buttons: list[list[Button]] | None = None, final: bool = False,
    ) -> MessageRef | None:
        """Show progress. Lossy: coalesced with newer edits, dropped under flood pressure;
        ``final`` (failed, cancelled) is never dropped.

        An adapter that had to replace the message returns the new one; every later edit
        goes to that one (the caller keeps it with the job).
        """
        ...

    async def send_images(
        self, chat: ChatRef, images: list[OutImage], *, caption: str,
        buttons: list[list[Button]] | None = None, reply_to: str | None = None, as_files: bool = False,
        status: MessageRef | None = None, notify: str = "",
    ) -> Delivered:
        """Deliver results. Never dropped: waits out flood limits and retries.

        ``as_files``: the user asked for originals (PNG documents, no recompression).
        ``status``: the job's status message, which the adapter may turn into the result.
        ``notify``: the requester's mention in the caption (empty in private chats): the one
        mention a platform that pings (Discord) lets notify anybody; prompts are user text.
        """
        ...

    async def delete(self, message: MessageRef) -> None: ...

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None: ...


class Handlers(Protocol):
    """What an adapter calls: the product (``handlers.app.App``), one event at a time."""

    async def handle_message(self, incoming: Incoming, messenger: Messenger) -> Outcome: ...

    async def handle_press(self, press: Press, messenger: Messenger) -> Outcome: ...


class DownloadRefused(Exception):
    """An adapter would not fetch a user's picture (too big, failed); ``key`` says why."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
