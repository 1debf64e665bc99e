"""Suggestions while a user types (Discord autocomplete): answered at once, from a cache.

An autocomplete answer must come within Discord's deadline (3 s, in practice much less),
and a vendor's catalogue may take longer than that to fetch. So the answer always comes
from what is cached; a cache older than ``ttl_s`` (or empty) is refreshed in the background
for the next keystroke.
"""

from __future__ import annotations

import asyncio
import logging
import time

from handlers.admission import generator_backends, models_of
from handlers.context import Services

log = logging.getLogger(__name__)

LIMIT = 25  # Discord shows at most 25 choices


class Suggestions:
    def __init__(self, services: Services, *, ttl_s: float = 300.0) -> None:
        self.services = services
        self.ttl_s = ttl_s
        self._models: dict[str, tuple[float, list[str]]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def models(self, backend: str | None, typed: str) -> list[str]:
        """Model names of ``backend`` (the default one when None) that contain ``typed``."""
        name = backend if backend in self.services.backends else self.services.config.default_backend
        cached = self._models.get(name)
        if cached is None or time.monotonic() - cached[0] > self.ttl_s:
            self._refresh(name)
        names = cached[1] if cached else []
        needle = typed.strip().lower()
        found = [n for n in names if needle in n.lower()] if needle else names
        found.sort(key=lambda n: (not n.lower().startswith(needle), n.lower()))
        return found[:LIMIT]

    def backends(self, typed: str = "") -> list[str]:
        names = generator_backends(self.services)
        return [b for b in names if typed.lower() in b.lower()][:LIMIT]

    async def warm(self) -> None:
        """Fill the cache for every backend now (at start-up, so the first answer has names)."""
        await asyncio.gather(*(self._fetch(name) for name in self.services.backends), return_exceptions=True)

    def _refresh(self, backend: str) -> None:
        task = self._refreshing.get(backend)
        if task is None or task.done():
            self._refreshing[backend] = asyncio.create_task(self._fetch(backend), name=f"suggest-{backend}")

    async def _fetch(self, backend: str) -> None:
        try:
            names = [m.name for m in await models_of(self.services, backend)]
        except Exception:
            log.info("model list of %s not refreshed", backend, exc_info=True)
            return
        self._models[backend] = (time.monotonic(), names)
