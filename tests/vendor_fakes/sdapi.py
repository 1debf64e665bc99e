"""Fake "Stable Diffusion API Server" (seed 003): form-urlencoded /txt2img and /img2img.

The document's img2img body lists no width/height while txt2img does; this fake accepts
img2img with or without them (both forms), and txt2img only with them.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from aiohttp import web
from PIL import Image

from tests.vendor_fakes import FakeVendor, image_bytes

FORM = "application/x-www-form-urlencoded"
COMMON = {"prompt", "seed", "num_outputs", "num_inference_steps", "guidance_scale"}


class FakeSdApi(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, str]] = []
        self.refuse: str | None = None  # answer status "failed" with this message
        self.init_sizes: list[tuple[int, int]] = []
        self._n = 0
        self.app.router.add_route("*", "/txt2img", self._txt2img)
        self.app.router.add_route("*", "/img2img", self._img2img)

    def error_response(self, status: int, message: str) -> web.Response:
        return web.json_response({"status": "failed", "message": message}, status=status)

    def _bad(self, message: str) -> web.Response:
        self.violation(message)
        return self.error_response(400, message)

    def _int(self, form: dict[str, str], name: str, lo: int, hi: int, *, lo_open: bool) -> str | None:
        """An error message when ``form[name]`` is not an integer in the document's range."""
        raw = form.get(name)
        if raw is None:
            return f"{name} missing"
        try:
            value = int(raw)
        except ValueError:
            return f"{name} is not an integer: {raw!r}"
        if (value <= lo if lo_open else value < lo) or value > hi:
            return f"{name} out of range: {value}"
        return None

    async def _form(self, request: web.Request) -> dict[str, str] | web.Response:
        if request.method != "POST":
            return self._bad(f"method {request.method}")
        ctype = request.headers.get("Content-Type", "").replace(" ", "").lower()
        if not ctype.startswith(FORM) or "charset=utf-8" not in ctype:
            return self._bad(f"content type {ctype!r}, expected {FORM};charset=utf-8")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        for check in (
            ("seed", -1, 2**63 - 1, False),
            ("num_outputs", 1, 4, False),
            ("num_inference_steps", 0, 150, True),
            ("guidance_scale", 0, 20, True),  # the document says integer, (0, 20]
        ):
            error = self._int(form, check[0], check[1], check[2], lo_open=check[3])
            if error:
                return self._bad(error)
        if not form.get("prompt", "").strip():
            return self._bad("prompt missing")
        return form

    def _size_error(self, form: dict[str, str]) -> str | None:
        return self._int(form, "width", 0, 1024, lo_open=True) or self._int(form, "height", 0, 1024, lo_open=True)

    async def _txt2img(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        if set(form) - COMMON - {"width", "height"}:
            return self._bad(f"unknown fields {sorted(set(form) - COMMON - {'width', 'height'})}")
        error = self._size_error(form)
        if error:
            return self._bad(error)
        return self._result(form, int(form["width"]), int(form["height"]))

    async def _img2img(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        if isinstance(form, web.Response):
            return form
        allowed = COMMON | {"strength", "init_image", "width", "height"}
        if set(form) - allowed:
            return self._bad(f"unknown fields {sorted(set(form) - allowed)}")
        if "width" in form or "height" in form:
            error = self._size_error(form)
            if error:
                return self._bad(error)
        try:
            strength = float(form.get("strength", ""))
        except ValueError:
            return self._bad(f"strength is not a number: {form.get('strength')!r}")
        if not 0 < strength < 1:
            return self._bad(f"strength out of (0,1): {strength}")
        raw = form.get("init_image", "")
        if raw.startswith("data:"):
            raw = raw.partition(",")[2]
        try:
            with Image.open(io.BytesIO(base64.b64decode(raw, validate=True))) as init:
                size = init.size
        except (binascii.Error, ValueError, OSError):
            return self._bad("init_image is not a base64 picture")
        self.init_sizes.append(size)
        return self._result(form, *size)

    def _result(self, form: dict[str, str], width: int, height: int) -> web.Response:
        if self.refuse is not None:
            return web.json_response({"status": "failed", "message": self.refuse})
        images: list[dict[str, Any]] = []
        for k in range(int(form["num_outputs"])):
            self._n += 1
            url = self.add_file(f"sd{self._n}", image_bytes(width // 8, height // 8, (k * 40, 90, 10)))
            images.append({"image_url": url, "mime_type": "image/png", "seed": 3090352432285578 + k})
        return web.json_response({"images": images, "status": "success"})
