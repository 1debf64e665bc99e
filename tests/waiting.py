"""Polling until something is true, for tests that watch another task or process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], timeout: float = 5.0, *, what: str = "a condition",
                every: float = 0.05) -> Any:
    """Call ``check`` (plain or async) every ``every`` seconds until it returns something true,
    and return that; an AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
