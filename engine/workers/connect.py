"""One Redis client per process, and the queue URL shown without its password.

A ``redis://user:password@host:6379/0`` URL carries a secret: logs only ever see
``safe_url(url)`` (host, port and database), and the process registers ``url_secrets(url)``
with its log redaction (bot/logs.py) so a library that prints the URL prints no password.

The client keeps bytes as bytes (pictures travel through Redis), retries a command a few
times on a dropped connection (a Redis restart), and notices a silent peer through TCP
keepalive instead of hanging on a lost machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors that mean "Redis is not reachable right now" (restarting, network), not a bug.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)

# A lost Redis host (no reset, just silence) is noticed by TCP keepalive within about 25 s.
# Not by ``socket_timeout``: with it, redis-py wraps every read in a timeout that can
# swallow a task's cancellation on Python 3.11 (and redis-py 8 swallows it without one:
# see the pin in pyproject.toml), and a worker or a bot that cannot be cancelled cannot stop.
_KEEPALIVE = {opt: value for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
              if (opt := getattr(socket, name, None)) is not None}


def client(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=5.0,
        socket_keepalive=True,
        socket_keepalive_options=_KEEPALIVE,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


@contextlib.contextmanager
def ignoring_unreachable() -> Iterator[None]:
    """Go on without Redis (a lossy write, a best-effort clean-up), but not past a cancellation."""
    try:
        yield
    except UNREACHABLE:
        not_cancelled()


def not_cancelled() -> None:
    """Call where an UNREACHABLE error is caught to try again: if the task was cancelled
    meanwhile, stop now (a client error must never hide a cancellation)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()


def _before_retry(state: RetryCallState) -> None:
    not_cancelled()  # never retry past a cancellation that the client error may have hidden
    error = state.outcome.exception() if state.outcome is not None else None
    log.info("the queue is unreachable (%s); trying again", type(error).__name__)


async def until_reachable(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """A Redis call that waits out a Redis restart, backing off up to 2 s between tries; the
    caller's own deadline (a job's timeout) bounds it."""
    async for attempt in AsyncRetrying(retry=retry_if_exception_type(UNREACHABLE),
                                       wait=wait_exponential(multiplier=0.2, max=2.0),
                                       before_sleep=_before_retry, reraise=True):
        with attempt:
            return await fn(*args)
    raise AssertionError("unreachable")  # AsyncRetrying either returns or raises


def safe_url(url: str) -> str:
    """Where the queue is, for logs and errors: ``redis 10.0.0.5:6379/0`` (never the
    password; not the URL itself either, which the process redacts as a whole)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    where = f"{parts.hostname or parts.path or '?'}" + (f":{port}" if port else "")
    db = parts.path.strip("/") if parts.hostname else ""
    return f"{parts.scheme or 'redis'} {where}" + (f"/{db}" if db else "") + (" (with a password)" if parts.password else "")


def url_secrets(url: str) -> list[str]:
    """The parts of the URL that must never reach a log: the password (raw and decoded)."""
    password = urlsplit(url).password
    return [p for p in {password, unquote(password)} if p] if password else []
