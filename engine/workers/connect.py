"""One Redis client per process, and the queue URL shown without its password.

A ``redis://user:password@host:6379/0`` URL carries a secret: logs only ever see
``safe_url(url)`` (host, port and database), and the process registers ``url_secrets(url)``
with its log redaction (bot/logs.py) so a library that prints the URL prints no password.

The client keeps bytes as bytes (pictures travel through Redis), retries a command a few
times on a dropped connection (a Redis restart), and gives up on a silent peer after a
bounded time instead of hanging on a lost machine.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Errors that mean "Redis is not reachable right now" (restarting, network), not a bug.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
# Longer than any blocking read we issue (at most a second), short enough to notice a lost host.
SOCKET_TIMEOUT_S = 15.0


def client(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=5.0,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


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
