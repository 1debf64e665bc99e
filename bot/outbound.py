"""One outbound limiter for every platform: what the bot sends, paced per chat and overall.

Chat platforms limit how fast a bot may talk: Telegram about one message a second in a
private chat, twenty a minute in a group and thirty a second overall; Discord five
messages per five seconds per channel and fifty requests a second overall. Past that they
answer 429 with a ``retry_after``. Each platform's messenger hands its calls to this
limiter with its own ``Limits`` and an ``ErrorPolicy`` that reads its library's
exceptions; the limiter itself knows no platform.

- Budgets are leaky buckets (aiolimiter) taken at the moment a call is made, never booked
  ahead: a chat that waits holds no one else's budget. Each bucket runs a margin below the
  platform's stated limit, so jitter in arrival times (Telegram counts arrival) causes no 429.
- Every chat has its own queue and its own worker task: a busy group waits for its own
  budget while every other chat's calls go out at once.
- ``send`` (acknowledgements, replies, results, final status edits) is never dropped: it
  waits for budget, waits out ``retry_after``, retries transient network errors a few times.
- ``edit`` (progress) returns at once. Each message has at most one pending edit, the
  newest; an older one still waiting is dropped. Edits only take budget a send does not
  need: within a chat, sends always go first.
- After a 429, every call waiting for that chat waits until ``retry_after`` has passed.

There is one ``OutboundLimiter`` per process (the runtime holds it); each platform's
messenger gets its own view of it, ``limiter.platform("telegram", limits, policy)``, with
that platform's budgets. Chats of different platforms never share a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from aiolimiter import AsyncLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")
Call = Callable[[], Awaitable[Any]]


@dataclass(frozen=True)
class Budget:
    """A platform's stated limit: at most ``count`` calls in any ``window_s`` seconds."""

    count: int
    window_s: float

    def bucket(self, margin: float) -> AsyncLimiter:
        """A leaky bucket that stays ``margin`` below the limit in every window.

        A bucket of capacity B draining r per second admits at most B + floor(window * r)
        calls in a window, so B + window * r is kept at count * (1 - margin)."""
        usable = self.count * (1.0 - margin)
        burst = max(1, int(usable * 0.15))
        drain = usable - burst if usable - burst >= 1 else usable
        return AsyncLimiter(burst, burst * self.window_s / drain)


@dataclass(frozen=True)
class Limits:
    private: Budget = Budget(1, 1.0)  # per private chat / DM
    group: Budget = Budget(20, 60.0)  # per group / channel
    overall: Budget = Budget(30, 1.0)  # the whole bot
    margin: float = 0.1
    network_retries: int = 3
    max_retry_after_s: float = 3600.0

    def scaled(self, factor: float) -> Limits:
        """The same limits on a clock ``factor`` times faster (tests and benchmarks)."""
        from dataclasses import replace

        return replace(self, private=Budget(self.private.count, self.private.window_s * factor),
                       group=Budget(self.group.count, self.group.window_s * factor),
                       overall=Budget(self.overall.count, self.overall.window_s * factor))


@dataclass(frozen=True)
class SlowDown:
    """The platform asked to wait (HTTP 429). ``everywhere``: the whole bot, not one chat."""

    seconds: float
    everywhere: bool = False


TRANSIENT = "transient"  # a network hiccup or a 5xx: the same call may simply be tried again


class ErrorPolicy(Protocol):
    def __call__(self, error: BaseException) -> SlowDown | str | None:
        """SlowDown, TRANSIENT, or None when the error is the caller's to handle."""
        ...


def no_policy(error: BaseException) -> SlowDown | str | None:
    return None


@dataclass
class _Send:
    call: Call
    future: asyncio.Future[Any]
    cost: int = 1
    failures: int = 0


@dataclass
class _Chat:
    key: str
    bucket: AsyncLimiter
    sends: deque[_Send] = field(default_factory=deque)
    edits: dict[str, Call] = field(default_factory=dict)  # message key -> newest edit
    hold_until: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None


class PlatformOutbound:
    """One platform's view of the limiter: its budgets, its error policy, its chats."""

    def __init__(self, limits: Limits | None = None, *, policy: ErrorPolicy = no_policy, name: str = "") -> None:
        self.limits = limits or Limits()
        self._policy = policy
        self._name = name
        self._overall = self.limits.overall.bucket(self.limits.margin)
        self._chats: dict[str, _Chat] = {}
        self._hold_until = 0.0  # a bot-wide 429
        self.dropped_edits = 0
        self.slowdowns = 0  # 429s the platform answered

    # --- the three kinds of call ------------------------------------------------------

    async def send(self, chat_id: str, private: bool, call: Callable[[], Awaitable[T]], *, cost: int = 1) -> T:
        """Make ``call`` in the chat's turn; never dropped. ``cost``: how many messages the
        platform counts for it (an album of ten pictures is ten)."""
        chat = self._chat(chat_id, private)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        chat.sends.append(_Send(call, future, max(1, cost)))
        self._wake(chat)
        return await future

    def edit(self, chat_id: str, private: bool, key: str, call: Call) -> None:
        """Queue the newest edit of message ``key``; an older one still waiting is dropped."""
        chat = self._chat(chat_id, private)
        if key in chat.edits:
            self.dropped_edits += 1
        chat.edits[key] = call
        self._wake(chat)

    async def final_edit(self, chat_id: str, private: bool, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """An edit that must arrive (a status that says failed or cancelled): it replaces any
        progress edit of the message still waiting and goes out as a send."""
        self.forget(chat_id, key)
        return await self.send(chat_id, private, call)

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """A call that is no message (deleting one, answering a button): overall budget only."""
        failures = 0
        while True:
            await self._wait_for_hold(0.0)
            await self._overall.acquire()
            try:
                return await call()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                delay = self._retry_in(None, e, failures)
                if delay is None:
                    raise
                if delay:
                    failures += 1
                    await asyncio.sleep(delay)

    def forget(self, chat_id: str, key: str) -> None:
        """The message is gone (deleted, or became the result): its waiting edit would only fail."""
        chat = self._chats.get(chat_id)
        if chat is not None and chat.edits.pop(key, None) is not None:
            self.dropped_edits += 1

    # --- the chat's worker ------------------------------------------------------------

    def _chat(self, chat_id: str, private: bool) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if len(self._chats) > 10_000:
                self._prune()
            budget = self.limits.private if private else self.limits.group
            chat = self._chats[chat_id] = _Chat(chat_id, budget.bucket(self.limits.margin))
        return chat

    def _wake(self, chat: _Chat) -> None:
        chat.arrived.set()
        if chat.worker is None or chat.worker.done():
            chat.worker = asyncio.create_task(self._serve(chat), name=f"outbound-{self._name}-{chat.key}")

    async def _serve(self, chat: _Chat) -> None:
        while chat.sends or chat.edits:
            chat.arrived.clear()
            await self._wait_for_hold(chat.hold_until)
            if chat.sends:
                await self._send_next(chat)
            else:
                await self._edit_next(chat)

    async def _send_next(self, chat: _Chat) -> None:
        item = chat.sends[0]
        if item.future.done():  # the caller gave up (cancelled)
            chat.sends.popleft()
            return
        for _ in range(item.cost):
            await chat.bucket.acquire()
        await self._overall.acquire()
        try:
            result = await item.call()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            delay = self._retry_in(chat, e, item.failures)
            if delay is not None:  # the item stays first in line
                if delay:
                    item.failures += 1
                    log.warning("outbound call failed (%s), retrying", type(e).__name__)
                    await asyncio.sleep(delay)
                return
            chat.sends.popleft()
            if not item.future.done():
                item.future.set_exception(e)
            return
        chat.sends.popleft()
        if not item.future.done():
            item.future.set_result(result)

    async def _edit_next(self, chat: _Chat) -> None:
        # Progress only takes budget that is free now, so a send arriving meanwhile never
        # waits behind it; otherwise look again when a token has dripped back (or a send came).
        if not (chat.bucket.has_capacity() and self._overall.has_capacity()):
            tick = min(1.0, max(0.01, chat.bucket.time_period / chat.bucket.max_rate))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await chat.arrived.wait()
            return
        key = next(iter(chat.edits))
        call = chat.edits.pop(key)
        await chat.bucket.acquire()
        await self._overall.acquire()
        try:
            await call()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # Progress is never retried after a network error (a newer edit will come): only a 429 keeps it.
            if self._retry_in(chat, e, self.limits.network_retries) is not None:
                chat.edits.setdefault(key, call)  # still the newest unless one came meanwhile
            else:
                self.dropped_edits += 1
                log.warning("progress edit failed: %s", type(e).__name__)

    # --- errors and 429s ---------------------------------------------------------------

    def _retry_in(self, chat: _Chat | None, error: Exception, failures: int) -> float | None:
        """What the platform's answer ``error`` means for a call that failed ``failures``
        times before: None, give up (the caller's error); 0.0, a 429 now holds the chat (or,
        with ``chat`` None, the whole bot) and the call goes again once the hold has passed;
        else the seconds to back off before a transient failure is tried again."""
        verdict = self._policy(error)
        if isinstance(verdict, SlowDown):
            self._slow_down(chat, verdict)
            return 0.0
        if verdict == TRANSIENT and failures < self.limits.network_retries:
            return min(2.0 ** (failures + 1), 30.0)
        return None

    def _slow_down(self, chat: _Chat | None, verdict: SlowDown) -> None:
        self.slowdowns += 1
        seconds = min(verdict.seconds, self.limits.max_retry_after_s)
        until = asyncio.get_running_loop().time() + seconds
        log.warning("platform asked to slow down for %.1fs (%s)", seconds,
                    "everywhere" if verdict.everywhere or chat is None else "one chat")
        if verdict.everywhere or chat is None:
            self._hold_until = max(self._hold_until, until)
        else:
            chat.hold_until = max(chat.hold_until, until)

    async def _wait_for_hold(self, chat_hold: float) -> None:
        loop = asyncio.get_running_loop()
        # A loop, not one sleep: another 429 may push the hold further while we wait.
        while (wait := max(chat_hold, self._hold_until) - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    # --- housekeeping -----------------------------------------------------------------

    def _prune(self) -> None:
        """Forget idle chats whose bucket has drained (they have nothing left to remember)."""
        for key, chat in list(self._chats.items()):
            idle = (chat.worker is None or chat.worker.done()) and not chat.sends and not chat.edits
            if idle and chat.bucket.has_capacity(chat.bucket.max_rate):
                del self._chats[key]

    def waiting(self, chat_id: str) -> int:
        chat = self._chats.get(chat_id)
        return len(chat.sends) if chat else 0

    async def idle(self) -> None:
        """Until every queued call and edit has run (tests; a clean shutdown)."""
        while True:
            workers = [c.worker for c in self._chats.values() if c.worker is not None and not c.worker.done()]
            if not workers:
                return
            await asyncio.gather(*workers, return_exceptions=True)

    async def close(self) -> None:
        for chat in self._chats.values():
            chat.edits.clear()
            if chat.worker is not None and not chat.worker.done():
                chat.worker.cancel()
            for item in chat.sends:
                if not item.future.done():
                    item.future.cancel()
            chat.sends.clear()
        await asyncio.gather(*(c.worker for c in self._chats.values() if c.worker is not None),
                             return_exceptions=True)


class OutboundLimiter:
    """The process's one outbound limiter: a view per platform, closed together."""

    def __init__(self) -> None:
        self._platforms: dict[str, PlatformOutbound] = {}

    def platform(self, name: str, limits: Limits | None = None, *, policy: ErrorPolicy = no_policy) -> PlatformOutbound:
        view = self._platforms.get(name)
        if view is None:
            view = self._platforms[name] = PlatformOutbound(limits, policy=policy, name=name)
        return view

    async def close(self) -> None:
        for view in list(self._platforms.values()):
            await view.close()
