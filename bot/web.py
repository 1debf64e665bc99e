"""The bot's small web server: signed image links for vendors, vendor callbacks, health.

    GET  /media/{key}?exp=&sig=            a stored image, for a valid unexpired signature
    POST /callbacks/{vendor}/{job_id}/{token}   a vendor's result -> CallbackHub.deliver
    GET  /healthz

A callback's token is checked before its body is read: an unknown task is 404, a wrong
token 403, and neither costs a JSON parse. A body that is not a JSON object, is nested
deeper than ``MAX_CALLBACK_DEPTH`` or is larger than ``client_max_size`` is a 4xx, never
a 500. Large bodies are parsed off the event loop.

Other parts (the Telegram webhook) mount their routes with ``add_route`` before
``start()``. The access log never shows a callback token or a link signature: paths are
redacted before they are logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from storage.media import MediaStore

log = logging.getLogger("imagebot.web")

_KEY_RE = re.compile(r"^[a-f0-9]{64}\.(png|jpg|webp)$")
_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
MAX_CALLBACK_BYTES = 8 * 1024 * 1024
# No vendor's answer nests deeper than a handful of levels; this bounds what a hostile body
# can make every reader of the payload (the hub's fingerprint, the backend) walk through.
MAX_CALLBACK_DEPTH = 32
_PARSE_IN_THREAD_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def redact_path(path: str) -> str:
    """A request path as it may be logged: no callback token, no query string."""
    path = path.split("?", 1)[0]
    m = re.match(r"^(/callbacks/[^/]+/[^/]+)/[^/]+/?$", path)
    if m:
        return m.group(1) + "/***"
    if path.startswith("/telegram/"):
        return "/telegram/***"  # the webhook path is a secret too
    return path


class _RedactingAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s -> %d (%.3fs)", request.method, redact_path(request.path),
                         response.status, time)


class WebServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        media: MediaStore,
        hub: Any = None,
        client_max_size: int = MAX_CALLBACK_BYTES,
    ) -> None:
        self.host = host
        self._port = port
        self.media = media
        self.hub = hub
        self.app = web.Application(client_max_size=client_max_size)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/media/{key}", self._media)
        self.app.router.add_post("/callbacks/{vendor}/{job_id}/{token}", self._callback)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.bound_port: int | None = None

    # --- lifecycle --------------------------------------------------------------------

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Mount another handler (the Telegram webhook); only before ``start()``."""
        if self._runner is not None:
            raise RuntimeError("routes must be added before the web server starts")
        self.app.router.add_route(method, path, handler)

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log_class=_RedactingAccessLogger,
                                     access_log=logging.getLogger("imagebot.web.access"))
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self._port)
        await self._site.start()
        addresses = self._runner.addresses  # the bound socket tells the real port when port=0
        self.bound_port = int(addresses[0][1]) if addresses else self._port
        log.info("web server listening on %s:%s", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._site = None

    @property
    def port(self) -> int:
        return self.bound_port if self.bound_port is not None else self._port

    @property
    def url(self) -> str:
        """The local address (http://host:port), e.g. for tests with port 0."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # --- handlers -------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _media(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if not _KEY_RE.match(key):
            raise web.HTTPNotFound()
        exp = request.query.get("exp", "")
        sig = request.query.get("sig", "")
        # The signature first, so an unsigned request learns nothing about which keys exist.
        if not exp or not sig or not self.media.verify_link(key, exp, sig):
            raise web.HTTPForbidden()
        try:
            data = await asyncio.to_thread(self.media.read, key)
        except Exception:
            raise web.HTTPNotFound() from None
        ext = key.rsplit(".", 1)[1]
        return web.Response(
            body=data,
            content_type=_CONTENT_TYPES[ext],
            headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    async def _callback(self, request: web.Request) -> web.Response:
        vendor = request.match_info["vendor"]
        job_id = request.match_info["job_id"]
        token = request.match_info["token"]
        if self.hub is None or not self.hub.knows(vendor, job_id):
            raise web.HTTPNotFound()
        if not self.hub.accepts(vendor, job_id, token):
            log.warning("callback for %s/%s with a wrong token refused", vendor, job_id)
            raise web.HTTPForbidden()  # before reading the body: a forger gets no parse
        raw = await request.read()  # bounded by client_max_size (413 beyond it)
        try:
            if len(raw) > _PARSE_IN_THREAD_BYTES:
                payload = await asyncio.to_thread(parse_callback_body, raw)
            else:
                payload = parse_callback_body(raw)
        except ValueError as e:
            log.warning("callback for %s/%s refused: %s", vendor, job_id, e)
            return web.json_response({"code": "400", "msg": str(e)}, status=400)
        if not self.hub.deliver(vendor, job_id, token, payload):
            raise web.HTTPForbidden()
        return web.json_response({"code": "200", "msg": "success"})


def parse_callback_body(raw: bytes) -> dict[str, Any]:
    """A callback body as a JSON object nested at most ``MAX_CALLBACK_DEPTH`` deep, or a
    ``ValueError`` that says (in a few words, for the log and the vendor) what is wrong."""
    try:
        payload = json.loads(raw)
    except RecursionError:
        raise ValueError("body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body is not JSON") from None
    if not isinstance(payload, dict):
        raise ValueError("body is not a JSON object")
    if _depth(payload, MAX_CALLBACK_DEPTH) > MAX_CALLBACK_DEPTH:
        raise ValueError("body is nested too deeply")
    return payload


def _depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (a scalar is 0), counting no further than ``limit`` + 1."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        if level > limit:
            return level
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


__all__ = ["MAX_CALLBACK_DEPTH", "WebServer", "parse_callback_body", "redact_path"]
