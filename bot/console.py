"""The console: a chat in the terminal, the first platform and the one that needs no token.

It is a thin adapter like Telegram's: lines typed (or piped) on standard input become
``Incoming`` messages; the ``Messenger`` port prints text, redraws a progress bar, and
saves images as PNG files whose paths it prints. Local files can be attached with
``--image PATH`` (the picture to work on), ``--mask PATH`` (inpainting) and
``--face PATH`` (the face for /swap). Typing a button's label (``U1``, ``V2``,
``reroll``) presses it on the latest result. On end of input it waits for every
job to finish, so ``echo "/imagine a fox" | python -m bot console`` works in scripts.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import os
import re
import shlex
import sys
import threading
from pathlib import Path
from typing import TextIO

from bot.wiring import Runtime
from handlers.flags import FLAG_DASH_PATTERN
from handlers.port import Button, ChatRef, Delivered, Incoming, MessageRef, OutImage, Press, UserRef
from locales import Translator

_FILE_FLAG = re.compile(FLAG_DASH_PATTERN + r"(image|img|mask|face)\s+(\"[^\"]+\"|'[^']+'|\S+)")


class ConsoleMessenger:
    platform = "console"

    def __init__(self, out: TextIO, output_dir: Path, *, interactive: bool) -> None:
        self.out = out
        self.output_dir = output_dir
        self.interactive = interactive
        self._ids = itertools.count(1)
        self._live_line: str | None = None  # the message id whose progress line is on screen
        # The label -> (message, data) map of the most recent buttons, so typing "U1" presses it.
        self.buttons: dict[str, tuple[str, str]] = {}

    def _print(self, text: str) -> None:
        if self._live_line is not None and self.interactive:
            self.out.write("\n")
        self._live_line = None
        if self.interactive:
            self.out.write("\r\x1b[2K")  # over the "> " prompt
        self.out.write(text + "\n")
        if self.interactive:
            self.out.write("> ")  # the prompt again, since output arrives between inputs
        self.out.flush()

    def _remember_buttons(self, message_id: str, buttons: list[list[Button]] | None) -> str:
        if not buttons:
            return ""
        labels = []
        for row in buttons:
            for b in row:
                self.buttons[b.label.lower()] = (message_id, b.data)
                labels.append(f"[{b.label}]")
        return " ".join(labels)

    async def send_text(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                        buttons: list[list[Button]] | None = None, personal: bool = False) -> MessageRef:
        mid = str(next(self._ids))
        hint = self._remember_buttons(mid, buttons)
        self._print(text + (f"\n  {hint}" if hint else ""))
        return MessageRef(chat, mid)

    async def edit_text(self, message: MessageRef, text: str, *, buttons: list[list[Button]] | None = None) -> None:
        hint = self._remember_buttons(message.message_id, buttons)
        self._print(text + (f"\n  {hint}" if hint else ""))

    async def send_status(self, chat: ChatRef, text: str, *, reply_to: str | None = None,
                          buttons: list[list[Button]] | None = None) -> MessageRef:
        mid = str(next(self._ids))
        self._remember_buttons(mid, buttons)
        if self.interactive:
            self._print_live(mid, text)
        else:
            self._print(text)
        return MessageRef(chat, mid)

    def _print_live(self, mid: str, text: str) -> None:
        # Redraw one line in place on a terminal: the progress bar of the running job.
        if self._live_line is not None and self._live_line != mid:
            self.out.write("\n")
        self.out.write("\r\x1b[2K" + text.replace("\n", " "))
        self.out.flush()
        self._live_line = mid

    async def edit_status(self, status: MessageRef, text: str, *, preview: bytes | None = None,
                          buttons: list[list[Button]] | None = None, final: bool = False) -> None:
        self._remember_buttons(status.message_id, buttons)
        if self.interactive and not final:
            self._print_live(status.message_id, text)
        else:
            self._print(text)

    async def send_images(self, chat: ChatRef, images: list[OutImage], *, caption: str,
                          buttons: list[list[Button]] | None = None, reply_to: str | None = None,
                          as_files: bool = False, status: MessageRef | None = None, notify: str = "") -> Delivered:
        mid = str(next(self._ids))
        lines = [caption]
        paths = await asyncio.to_thread(self._save, images)  # disk writes off the event loop
        lines.extend(f"  🖼  {path}" for path in paths)
        hint = self._remember_buttons(mid, buttons)
        if hint:
            lines.append(f"  {hint}")
        self._print("\n".join(lines))
        return Delivered([MessageRef(chat, mid)])

    def _save(self, images: list[OutImage]) -> list[Path]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for image in images:
            path = self.output_dir / image.filename
            path.write_bytes(image.png)
            paths.append(path)
        return paths

    async def delete(self, message: MessageRef) -> None:
        if self._live_line == message.message_id:
            if self.interactive:
                self.out.write("\r\x1b[2K")
                self.out.flush()
            self._live_line = None
            if self.interactive:
                self.out.write("> ")
                self.out.flush()

    async def answer_press(self, press: Press, text: str | None = None, *, alert: bool = False) -> None:
        if text:
            self._print(("⚠️ " if alert else "") + text)


async def _say_if_the_default_model_is_missing(runtime: Runtime, messenger: ConsoleMessenger, t: Translator) -> None:
    """At once, not after the first job was queued and started: the default model cannot be
    had on this machine (offline, not downloaded), and what to do about it."""
    config = runtime.app.services.config
    local = runtime.backends.get("local")
    check = getattr(local, "unavailable", None)
    if config.default_backend != "local" or check is None:
        return
    reason = await asyncio.to_thread(check)
    if reason == "not-downloaded":
        messenger._print(t("console-default-model-missing", model=config.default_model))


def console_user() -> UserRef:
    try:
        name = getpass.getuser()
    except Exception:
        name = "me"
    lang = os.environ.get("IMAGEBOT_CONSOLE_LANG") or os.environ.get("LANG", "en").split(".")[0]
    return UserRef(platform="console", user_id=name, display_name=name, language_hint=lang)


CONSOLE_CHAT = ChatRef(platform="console", chat_id="local", is_private=True)


def _read_files(text: str, t: Translator) -> tuple[str, dict[str, bytes]] | str:
    """Take ``--image/--mask/--face PATH`` out of the text and read the files."""
    files: dict[str, bytes] = {}
    for m in _FILE_FLAG.finditer(text):
        name = "image" if m.group(1) == "img" else m.group(1)
        raw = m.group(2)
        path = Path(shlex.split(raw)[0] if raw[0] in "\"'" else raw).expanduser()
        try:
            files[name] = path.read_bytes()
        except OSError:
            return t("error-file-not-found", path=str(path))
    return _FILE_FLAG.sub("", text), files


async def _lines(stream: TextIO) -> asyncio.Queue[str | None]:
    """Read standard input on a thread so the event loop keeps running jobs meanwhile.

    A daemon thread, not the loop's executor: a read blocked on the terminal must not keep
    the process alive after /quit or Ctrl-C."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def put(item: str | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: the console has ended
            pass

    def pump() -> None:
        try:
            for line in stream:
                put(line.rstrip("\n"))
        finally:
            put(None)

    threading.Thread(target=pump, name="console-stdin", daemon=True).start()
    return queue


async def run_console(runtime: Runtime, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = stdin.isatty() and stdout.isatty()
    messenger = ConsoleMessenger(stdout, runtime.settings.output_dir, interactive=interactive)
    runtime.app.attach(messenger)
    user = console_user()
    t = Translator(user.language_hint)
    messenger._print(t("console-welcome", backends=", ".join(sorted(runtime.backends)) or "-", user=user.user_id))
    await _say_if_the_default_model_is_missing(runtime, messenger, t)
    resumed = await runtime.start()
    if resumed:
        messenger._print(t("console-resumed", count=resumed))
    queue = await _lines(stdin)
    counter = itertools.count(1)
    while True:
        line = await queue.get()
        if line is None:
            break
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("/quit", "/exit"):
            return  # at once: running jobs stay recorded and resume at the next start
        pressed = messenger.buttons.get(text.lower())
        if pressed is not None:
            press = Press(chat=CONSOLE_CHAT, user=user, message_id=pressed[0], data=pressed[1],
                          press_id=str(next(counter)))
            await runtime.app.handle_press(press, messenger)
            continue
        read = _read_files(text, t)
        if isinstance(read, str):
            messenger._print(read)
            continue
        text, files = read
        incoming = Incoming(
            chat=CONSOLE_CHAT, user=user, message_id=f"in{next(counter)}", text=text,
            images=[files["face"]] if "face" in files else [],
            reply_images=[files["image"]] if "image" in files else [],
            mask=files.get("mask"),
        )
        # Each line is handled in order (so scripts read predictably); a command only
        # enqueues, and generation goes on in the background while the next line is read.
        await runtime.app.handle_message(incoming, messenger)
    await runtime.wait_idle()
