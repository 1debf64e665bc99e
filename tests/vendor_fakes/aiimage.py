"""Fake AI-Image-Generate (seed 001): POST /get-image {prompt, n (string), size}."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.vendor_fakes import FakeVendor, image_bytes

SIZES = ("256x256", "512x512", "1024x1024")
SAFETY = "Your request was rejected as a result of our safety system."


class FakeAiImage(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.moderation = False  # answer the upstream content-policy refusal
        self._n = 0
        self.app.router.add_route("*", "/get-image", self._get_image)

    def error_response(self, status: int, message: str) -> web.Response:
        return self._error(message, status)

    def _error(self, message: str, status: int = 400) -> web.Response:
        return web.json_response({"urlResponse": None, "errorMessage": message}, status=status)

    def _bad(self, message: str) -> web.Response:
        self.violation(message)
        return self._error(message)

    async def _get_image(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._bad(f"method {request.method}")
        # The document marks Content-Type optional but the body is JSON.
        if not self.check_content_type(request, "application/json"):
            return self._error("body must be JSON")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self._bad("body is not JSON")
        if not isinstance(body, dict):
            return self._bad("body is not an object")
        self.requests.append(body)
        for name in ("prompt", "n", "size"):  # all three required, all strings
            if not isinstance(body.get(name), str):
                return self._bad(f"{name} missing or not a string: {body.get(name)!r}")
        if set(body) - {"prompt", "n", "size"}:
            return self._bad(f"unknown fields {sorted(set(body) - {'prompt', 'n', 'size'})}")
        if not body["prompt"].strip() or len(body["prompt"]) > 1000:
            return self._bad("prompt empty or longer than 1000 characters")
        if not body["n"].isdigit() or not 1 <= int(body["n"]) <= 10:
            return self._bad(f"n out of range: {body['n']!r}")
        if body["size"] not in SIZES:
            return self._bad(f"size not allowed: {body['size']!r}")
        if self.moderation:
            return self._error(SAFETY)
        side = int(body["size"].split("x")[0]) // 16  # small pictures keep the tests fast
        urls = []
        for _ in range(int(body["n"])):
            self._n += 1
            urls.append(self.add_file(f"img-{self._n}.png", image_bytes(side, side, (self._n, 100, 200))))
        return web.json_response({"urlResponse": {"urlList": urls}, "errorMessage": "OK"})
