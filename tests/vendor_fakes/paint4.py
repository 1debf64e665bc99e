"""Fake paint4.art (seed 000): POST /aipaint, JSON {desc, model} -> {code, msg, data}."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.vendor_fakes import FakeVendor, image_bytes

SUCCESS = 1000
BAD_REQUEST = 4000  # the document lists no failure codes; any code but 1000 is one


class FakePaint4(FakeVendor):
    def __init__(self, models: tuple[str, ...] = ("Stable_Diffusion",)) -> None:
        super().__init__()
        self.models = models
        self.requests: list[dict[str, Any]] = []
        # Set to make the next generations fail with this code and message.
        self.refuse_code: int | None = None
        self.refuse_msg = ""
        self._n = 0
        self.app.router.add_route("*", "/aipaint", self._aipaint)

    def _answer(self, code: int, msg: str, data: str = "") -> web.Response:
        return web.json_response({"code": code, "msg": msg, "data": data})

    def _bad(self, message: str) -> web.Response:
        self.violation(message)
        return self._answer(BAD_REQUEST, f"参数错误: {message}")

    async def _aipaint(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._bad(f"method {request.method}")
        if not self.check_content_type(request, "application/json"):
            return self._answer(BAD_REQUEST, "Content-Type must be application/json")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self._bad("body is not JSON")
        if not isinstance(body, dict):
            return self._bad("body is not an object")
        self.requests.append(body)
        for name in ("desc", "model"):  # both required strings
            if not isinstance(body.get(name), str) or not body[name].strip():
                return self._bad(f"{name} missing or not a non-empty string")
        extra = set(body) - {"desc", "model"}
        if extra:
            return self._bad(f"unknown fields {sorted(extra)}")
        if body["model"] not in self.models:
            return self._bad(f"unknown model {body['model']!r}")
        if self.refuse_code is not None:
            return self._answer(self.refuse_code, self.refuse_msg)
        self._n += 1
        # The document's example link is a .jpg: serve JPEG so the client must convert.
        url = self.add_file(f"p{self._n}.jpg", image_bytes(96, 64, (10, 20 * self._n % 255, 90), "JPEG"),
                            "image/jpeg")
        return self._answer(SUCCESS, "success", url)
