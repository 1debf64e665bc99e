"""What every handler gets: the bot's services, and the event's sender and chat (``Ctx``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.backend import Backend
from engine.scheduler import Scheduler
from handlers.port import Button, ChatRef, MessageRef, Messenger, Press, UserRef
from handlers.runner import JobRunner
from handlers.status import StatusBoard
from locales import Translator
from storage.media import MediaStore
from storage.records import User
from storage.store import Storage


@dataclass
class AppConfig:
    default_backend: str = "local"
    default_model: str = "sd-turbo"
    tools_backend: str = "tools"
    default_language: str = "en"  # for users whose client tells no language
    max_queued_per_user: int = 3
    cost_of: Callable[[str], int] = lambda backend: 1
    is_admin: Callable[[str, str], bool] = lambda platform, user_id: False


@dataclass
class Services:
    """The parts of the bot the handlers use, built once by bot/wiring.py."""

    storage: Storage
    media: MediaStore
    scheduler: Scheduler
    runner: JobRunner
    statuses: StatusBoard
    backends: dict[str, Backend]
    config: AppConfig
    paused: bool = False  # /pause: new jobs refused (admins excepted)
    # The GPU workers behind the queue when jobs go through Redis (None in one process):
    # anything with ``describe() -> list[dict]`` for /stats.
    fleet: Any = None


@dataclass
class Ctx:
    """One incoming event (a message or a press) with everything a handler needs about it."""

    services: Services
    messenger: Messenger
    chat: ChatRef
    user_ref: UserRef
    user: User
    t: Translator
    message_id: str | None = None
    admin: bool = False  # a bot admin (IMAGEBOT_ADMINS)
    chat_admin: bool = False  # may change this chat's settings
    space_admin: bool = False  # may change the whole space's (Discord guild's) settings
    press: Press | None = None
    # What happened, for the adapter (handlers.port.Outcome).
    answered: bool = False
    job_id: str | None = None

    async def reply(self, text: str, buttons: list[list[Button]] | None = None, *,
                    personal: bool = True) -> MessageRef:
        """Answer the sender. ``personal`` by default: refusals, settings, balances are theirs."""
        self.answered = True
        return await self.messenger.send_text(self.chat, text, reply_to=self.message_id, buttons=buttons,
                                              personal=personal)

    async def answer(self, text: str | None = None, *, alert: bool = False) -> None:
        """Answer the button press this event is."""
        assert self.press is not None
        self.answered = True
        await self.messenger.answer_press(self.press, text, alert=alert)
