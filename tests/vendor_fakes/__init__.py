"""Fake vendor servers on 127.0.0.1, written from the seed documents, for tests.

Each fake is a real aiohttp server that CHECKS every request against its document
(method, path, content type, field names, types, ranges, signature) and answers a
violation in the vendor's own error format; ``violations`` records them so a test can
assert a client spoke the API correctly. Result pictures are served by the fake itself
under ``/files/...``. Faults are switched on by setting attributes:

    latency_s      sleep before answering an API call
    fail_5xx       the next N API calls answer HTTP 500
    fail_4xx       the next N API calls answer HTTP 400 (in the vendor's error format)
    malformed      API calls answer HTTP 200 with a body that is not JSON
    hang           API calls never answer (until the server closes)
    corrupt_files  /files/... answers bytes that are not an image

``calls`` counts API calls per path (file downloads are counted in ``file_fetches``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.images import image_bytes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeVendor:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.calls: Counter[str] = Counter()
        self.file_fetches = 0
        self.latency_s = 0.0
        self.fail_5xx = 0
        self.fail_4xx = 0
        self.malformed = False
        self.hang = False
        self.corrupt_files = False
        self.files: dict[str, tuple[bytes, str]] = {}
        self._release = asyncio.Event()
        self.app = web.Application(middlewares=[self._faults], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/files/{name}", self._serve_file)
        self._server: TestServer | None = None
        self.base_url = ""

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> FakeVendor:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        self.base_url = str(self._server.make_url("/"))
        return self

    async def close(self) -> None:
        self._release.set()  # let hanging handlers finish so the server can stop
        if self._server is not None:
            await self._server.close()

    async def __aenter__(self) -> FakeVendor:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- helpers for subclasses -------------------------------------------------------

    def violation(self, message: str) -> None:
        self.violations.append(message)

    def add_file(self, name: str, data: bytes, content_type: str = "image/png") -> str:
        """Serve ``data`` and return its absolute URL (with a signed-looking query, like the
        real vendors' expiring links)."""
        self.files[name] = (data, content_type)
        return f"{self.base_url}files/{name}?se=2099-01-01&sig=SECRET-SIGNATURE-{name}"

    def error_response(self, status: int, message: str) -> web.Response:
        """An HTTP error in the vendor's own format (subclasses override)."""
        return web.json_response({"error": message}, status=status)

    def check_content_type(self, request: web.Request, *accepted: str) -> bool:
        ctype = request.headers.get("Content-Type", "")
        if not any(ctype.replace(" ", "").lower().startswith(a) for a in accepted):
            self.violation(f"{request.path}: content type {ctype!r}, expected one of {accepted}")
            return False
        return True

    # --- plumbing -------------------------------------------------------------------

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/files/"):
            return await handler(request)
        self.calls[request.path] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.hang:
            await self._release.wait()
            return web.Response(status=503)
        if self.fail_5xx > 0:
            self.fail_5xx -= 1
            return web.Response(status=500, text="Internal Server Error")
        if self.fail_4xx > 0:
            self.fail_4xx -= 1
            return self.error_response(400, "bad request")
        if self.malformed:
            return web.Response(status=200, text='{"code": 1000, "data": ', content_type="application/json")
        return await handler(request)

    async def _serve_file(self, request: web.Request) -> web.Response:
        self.file_fetches += 1
        name = request.match_info["name"]
        if name not in self.files:
            return web.Response(status=404)
        if self.corrupt_files:
            return web.Response(body=b"<html>not a picture</html>", content_type="image/png")
        data, ctype = self.files[name]
        return web.Response(body=data, content_type=ctype)


__all__ = ["FakeVendor", "image_bytes"]
