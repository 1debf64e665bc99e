"""One outbound rate limiter for everything the bot sends to Telegram.

Telegram allows about one message a second in a private chat, twenty a minute in a
group (sends and edits together) and about thirty a second overall; past that it
answers 429 with ``retry_after``, sometimes minutes long, and aiogram does not retry.

- ``send`` (results, replies to commands): takes the chat's next slot and a global one,
  waits for it, honours ``retry_after`` and retries transient network errors. Never
  dropped.
- ``edit`` (progress): returns at once. Each message has at most one pending edit, the
  newest; an older one still waiting is dropped. A pending edit runs only when its chat
  has no send waiting, so results go first and progress takes the gaps. The last edit
  of a message (a final "failed" or "cancelled") is the newest, so it is never lost.
- ``call`` (deleting a message): only the global pace.

Clock and sleep are injectable so tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError

log = logging.getLogger(__name__)
T = TypeVar("T")
Call = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Limits:
    private_interval_s: float = 1.0  # one message a second per private chat
    group_interval_s: float = 3.0  # twenty a minute per group
    global_interval_s: float = 1 / 30  # thirty a second for the whole bot
    network_retries: int = 3
    max_retry_after_s: float = 3600.0


@dataclass
class _Chat:
    private: bool = True
    next_at: float = 0.0  # the chat's next free slot
    pending: dict[str, Call] = field(default_factory=dict)  # message key -> newest edit
    worker: asyncio.Task[None] | None = None


class OutboundLimiter:
    def __init__(self, limits: Limits | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._sleep = sleep
        self._chats: dict[str, _Chat] = {}
        self._global_next = 0.0
        self.dropped_edits = 0

    def _chat(self, chat_id: str, private: bool) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(private=private)
        return chat

    def _interval(self, chat: _Chat) -> float:
        return self.limits.private_interval_s if chat.private else self.limits.group_interval_s

    def _reserve(self, chat: _Chat) -> float:
        """Take the chat's next free slot (and a global one); return how long to wait for it."""
        now = self._clock()
        slot = max(now, chat.next_at, self._global_next)
        chat.next_at = slot + self._interval(chat)
        self._global_next = slot + self.limits.global_interval_s
        return slot - now

    def _push_back(self, chat: _Chat, seconds: float) -> None:
        chat.next_at = max(chat.next_at, self._clock() + seconds)

    def _retry_after(self, e: TelegramRetryAfter) -> float:
        return min(float(e.retry_after), self.limits.max_retry_after_s)

    # --- messages that must arrive ----------------------------------------------------

    async def send(self, chat_id: str, private: bool, call: Callable[[], Awaitable[T]]) -> T:
        chat = self._chat(chat_id, private)
        network_failures = 0
        while True:
            wait = self._reserve(chat)
            if wait > 0:
                await self._sleep(wait)
            try:
                return await call()
            except TelegramRetryAfter as e:
                log.warning("Telegram asked to slow down in a chat for %.0fs", self._retry_after(e))
                self._push_back(chat, self._retry_after(e))
            except (TelegramNetworkError, TelegramServerError) as e:
                network_failures += 1
                if network_failures > self.limits.network_retries:
                    raise
                log.warning("Telegram call failed (%s), retrying", type(e).__name__)
                await self._sleep(min(2.0 ** network_failures, 30.0))

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        network_failures = 0
        while True:
            now = self._clock()
            slot = max(now, self._global_next)
            self._global_next = slot + self.limits.global_interval_s
            if slot > now:
                await self._sleep(slot - now)
            try:
                return await call()
            except TelegramRetryAfter as e:
                await self._sleep(self._retry_after(e))
            except (TelegramNetworkError, TelegramServerError):
                network_failures += 1
                if network_failures > self.limits.network_retries:
                    raise
                await self._sleep(min(2.0 ** network_failures, 30.0))

    # --- progress: lossy ----------------------------------------------------------------

    def edit(self, chat_id: str, private: bool, key: str, call: Call) -> None:
        """Queue the newest edit of message ``key``; an older one still waiting is dropped."""
        chat = self._chat(chat_id, private)
        if key in chat.pending:
            self.dropped_edits += 1
        chat.pending[key] = call
        if chat.worker is None or chat.worker.done():
            chat.worker = asyncio.create_task(self._edits(chat), name=f"telegram-edits-{chat_id}")

    def forget(self, chat_id: str, key: str) -> None:
        """The message is gone (deleted): its waiting edit would only fail."""
        chat = self._chats.get(chat_id)
        if chat is not None and chat.pending.pop(key, None) is not None:
            self.dropped_edits += 1

    async def _edits(self, chat: _Chat) -> None:
        while chat.pending:
            # Only into a free slot: a send waiting in this chat (a result) goes first.
            wait = max(chat.next_at, self._global_next) - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            key = next(iter(chat.pending))
            call = chat.pending.pop(key)
            self._reserve(chat)
            try:
                await call()
            except TelegramRetryAfter as e:
                self._push_back(chat, self._retry_after(e))
                chat.pending.setdefault(key, call)  # still the newest unless one came meanwhile
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.dropped_edits += 1
                log.warning("progress edit failed: %s", type(e).__name__)

    async def idle(self) -> None:
        """Until every queued edit has run (tests; a clean shutdown)."""
        while True:
            workers = [c.worker for c in self._chats.values() if c.worker is not None and not c.worker.done()]
            if not workers:
                return
            await asyncio.gather(*workers, return_exceptions=True)

    async def close(self) -> None:
        for chat in self._chats.values():
            chat.pending.clear()
            if chat.worker is not None and not chat.worker.done():
                chat.worker.cancel()
        await asyncio.gather(*(c.worker for c in self._chats.values() if c.worker is not None),
                             return_exceptions=True)
