"""A Messenger that records what a chat would show, for driving the handlers in tests.

It implements the same port the console, Telegram and Discord adapters implement; the
adapters have their own tests against real protocol servers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import Settings
from bot.wiring import Runtime, build_runtime
from handlers.port import Button, ChatRef, Delivered, Incoming, MessageRef, OutImage, Press, UserRef


@dataclass
class Shown:
    kind: str  # "text" | "edit" | "images" | "delete" | "answer"
    chat: str
    text: str
    message_id: str = ""
    images: list[OutImage] = field(default_factory=list)
    buttons: list[list[Button]] = field(default_factory=list)
    preview: bytes | None = None
    alert: bool = False
    as_files: bool = False
    personal: bool = False
    status: bool = False  # the job's status message (send_status / edit_status)
    final: bool = False


class RecordingMessenger:
    def __init__(self, platform: str = "console") -> None:
        self.platform = platform
        self.log: list[Shown] = []
        self._ids = itertools.count(100)
        self.changed = asyncio.Event()

    def _add(self, shown: Shown) -> None:
        self.log.append(shown)
        self.changed.set()

    async def send_text(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                        buttons: list[list[Button]] | None = None, personal: bool = False) -> MessageRef:
        mid = str(next(self._ids))
        self._add(Shown("text", chat.chat_id, text, mid, buttons=buttons or [], personal=personal))
        return MessageRef(chat, mid)

    async def edit_text(self, message: MessageRef, text: str, *, buttons: list[list[Button]] | None = None) -> None:
        self._add(Shown("edit", message.chat.chat_id, text, message.message_id, buttons=buttons or []))

    async def send_status(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                          buttons: list[list[Button]] | None = None) -> MessageRef:
        mid = str(next(self._ids))
        self._add(Shown("text", chat.chat_id, text, mid, buttons=buttons or [], status=True))
        return MessageRef(chat, mid)

    async def edit_status(self, status: MessageRef, text: str, *, preview: bytes | None = None,
                          buttons: list[list[Button]] | None = None, final: bool = False) -> None:
        self._add(Shown("edit", status.chat.chat_id, text, status.message_id, buttons=buttons or [],
                        preview=preview, status=True, final=final))

    async def send_images(self, chat: ChatRef, images: list[OutImage], *, caption: str,
                          buttons: list[list[Button]] | None = None, reply_to: str | None = None,
                          as_files: bool = False, status: MessageRef | None = None, notify: str = "") -> Delivered:
        mid = str(next(self._ids))
        self._add(Shown("images", chat.chat_id, caption, mid, images=images, buttons=buttons or [], as_files=as_files))
        return Delivered([MessageRef(chat, mid)])

    async def delete(self, message: MessageRef) -> None:
        self._add(Shown("delete", message.chat.chat_id, "", message.message_id))

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None:
        self._add(Shown("answer", press.chat.chat_id, text or "", press.message_id, alert=alert))

    # --- reading ------------------------------------------------------------------

    def of(self, kind: str) -> list[Shown]:
        return [s for s in self.log if s.kind == kind]

    async def wait_for(self, predicate, timeout: float = 60.0) -> Shown:  # type: ignore[no-untyped-def]
        async def look() -> Shown:
            while True:
                for s in self.log:
                    if predicate(s):
                        return s
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(look(), timeout)


def person(user_id: str = "ann", *, lang: str = "en", platform: str = "console") -> UserRef:
    return UserRef(platform=platform, user_id=user_id, display_name=user_id.title(), language_hint=lang,
                   mention=f"@{user_id}")


PRIVATE = ChatRef(platform="console", chat_id="local", is_private=True)
GROUP = ChatRef(platform="console", chat_id="group-1", is_private=False)

_counter = itertools.count(1)


def say(text: str, *, user: UserRef | None = None, chat: ChatRef = PRIVATE, images: list[bytes] | None = None,
        reply_images: list[bytes] | None = None, mask: bytes | None = None,
        reply_to: str | None = None) -> Incoming:
    return Incoming(chat=chat, user=user or person(), message_id=f"m{next(_counter)}", text=text,
                    images=images or [], reply_images=reply_images or [], mask=mask, reply_to_message_id=reply_to)


def press(data: str, *, user: UserRef | None = None, chat: ChatRef = PRIVATE, message_id: str = "1") -> Press:
    return Press(chat=chat, user=user or person(), message_id=message_id, data=data, press_id=f"p{next(_counter)}")


def demo_settings(data_dir: Path, tiny_model_dir: Path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    """Settings for a bot whose default model is the tiny demo model built by the fixtures."""
    models = data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (models / "demo").exists():
        os.symlink(tiny_model_dir, models / "demo", target_is_directory=True)
    values = {"data_dir": data_dir, "default_model": "demo", "hf_offline": True, "daily_free_images": 10,
              "platforms": ["console"], **overrides}
    return Settings(_env_file=None, **values)


async def started_runtime(settings: Settings, messenger: RecordingMessenger, **kwargs) -> Runtime:  # type: ignore[no-untyped-def]
    runtime = await build_runtime(settings, **kwargs)
    runtime.app.attach(messenger)
    runtime.runner.progress_interval_s = 0.0
    await runtime.start(web=False)
    return runtime
