"""Vendor callbacks: the web server hands a vendor's result to the backend that waits for it.

A backend that submits a task with a callback URL first ``register``s it and gets an
unguessable per-task token that goes into the URL::

    <public_base_url>/callbacks/<vendor>/<job_id>/<token>

The web server calls ``deliver`` with the path parts and the JSON body; the backend
``wait``s for it (with polling as its safety net). Vendors retry a callback until it is
answered, so the same payload may arrive many times, also after the task was finished:
such repeats are accepted (``True``) but handed on once. A wrong token or an unknown task
is refused (``False``). Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

log = logging.getLogger("imagebot.callbacks")

# Finished tasks whose late callback retries are still answered "accepted".
_RECENT_LIMIT = 2048


def callback_url(base_url: str, vendor: str, job_id: str, token: str) -> str:
    """The address a vendor posts the result of ``job_id`` to."""
    parts = (quote(vendor, safe=""), quote(job_id, safe=""), quote(token, safe=""))
    return f"{base_url.rstrip('/')}/callbacks/{parts[0]}/{parts[1]}/{parts[2]}"


def _fingerprint(payload: Any) -> str:
    try:
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        raw = repr(payload)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class _Pending:
    token: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    consumed: int = 0


class CallbackHub:
    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], _Pending] = {}
        # (vendor, job_id) -> token of tasks already finished: retries still get "accepted".
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()

    def register(self, vendor: str, job_id: str, token: str | None = None) -> str:
        """Expect a callback for ``job_id``; pass the saved ``token`` when resuming a task."""
        key = (vendor, job_id)
        entry = self._pending.get(key)
        if entry is not None and (token is None or hmac.compare_digest(entry.token, token)):
            return entry.token
        token = token or secrets.token_urlsafe(24)
        self._pending[key] = _Pending(token)
        self._recent.pop(key, None)
        return token

    def unregister(self, vendor: str, job_id: str, *, finished: bool = True) -> None:
        """Stop expecting a callback. ``finished``: the task is over, so late retries of its
        callback are still accepted (and dropped). Otherwise (the wait was abandoned, e.g. at
        shutdown) the task is forgotten: its callbacks are refused, the vendor retries them,
        and a resumed wait that registers again receives them."""
        entry = self._pending.pop((vendor, job_id), None)
        if entry is not None and finished:
            self._recent[(vendor, job_id)] = entry.token
            while len(self._recent) > _RECENT_LIMIT:
                self._recent.popitem(last=False)

    def knows(self, vendor: str, job_id: str) -> bool:
        key = (vendor, job_id)
        return key in self._pending or key in self._recent

    def _expected(self, vendor: str, job_id: str) -> tuple[_Pending | None, str | None]:
        """The task's entry if it is waited for, and its token (also of a recently finished
        task); None for a task this hub does not know."""
        key = (vendor, job_id)
        entry = self._pending.get(key)
        return entry, entry.token if entry is not None else self._recent.get(key)

    @staticmethod
    def _same(expected: str, token: str) -> bool:
        return hmac.compare_digest(expected.encode(), str(token).encode())  # constant time

    def accepts(self, vendor: str, job_id: str, token: str) -> bool:
        """Whether ``token`` is the one for this task (waited for, or recently finished):
        the web server asks before it reads a callback's body. Constant time; no logging."""
        _, expected = self._expected(vendor, job_id)
        return expected is not None and self._same(expected, token)

    def deliver(self, vendor: str, job_id: str, token: str, payload: dict[str, Any]) -> bool:
        """Called by the web server. True when the token is right (the vendor may stop
        retrying), False for an unknown task or a wrong token."""
        entry, expected = self._expected(vendor, job_id)
        if expected is None:
            log.info("callback for unknown task %s/%s refused", vendor, job_id)
            return False
        if not self._same(expected, token):
            log.warning("callback for %s/%s with a wrong token refused", vendor, job_id)
            return False
        if entry is None:
            log.debug("late callback for finished task %s/%s accepted", vendor, job_id)
            return True
        fp = _fingerprint(payload)
        if fp in entry.seen:
            log.debug("repeated callback for %s/%s accepted", vendor, job_id)
            return True
        entry.seen.add(fp)
        entry.payloads.append(payload)
        entry.event.set()
        return True

    async def wait(self, vendor: str, job_id: str, timeout: float | None) -> dict[str, Any]:  # noqa: ASYNC109
        """The next callback payload not handed out yet; TimeoutError after ``timeout``.

        Several different payloads (a progress callback, then the result) come out one
        after the other; a repeated one comes out once.
        """
        entry = self._pending.get((vendor, job_id))
        if entry is None:
            raise KeyError(f"no callback registered for {vendor}/{job_id}")
        if entry.consumed >= len(entry.payloads):
            entry.event.clear()
            async with asyncio.timeout(timeout):
                await entry.event.wait()
        payload = entry.payloads[entry.consumed]
        entry.consumed += 1
        return payload

    def __repr__(self) -> str:  # never the tokens
        return f"CallbackHub(pending={len(self._pending)})"


__all__ = ["CallbackHub", "callback_url"]
