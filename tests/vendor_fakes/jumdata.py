"""Fake jumdata AI绘画 (seed 004): signed form POSTs to /ai/draw/submit and /ai/draw/query.

The document says "application/form-data" (not a real type): this fake takes both
application/x-www-form-urlencoded and multipart/form-data. It writes the query status as
a number; ``status_as_string`` makes it answer the quoted "1" the document also shows.

A wrong sign, an unknown appId or a stale timestamp is answered the way the document's
failure example answers a bad parameter: code 400 with a ``msg`` naming the parameter
("签名错误", "appId不存在", "timestamp已过期"), and recorded as a violation.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.vendor_fakes import FakeVendor, image_bytes

STYLES = ("探索无限", "古风", "二次元", "写实风格", "浮世绘", "low poly", "未来主义", "像素风格", "概念艺术",
          "赛博朋克", "洛丽塔风格", "巴洛克风格", "超现实主义", "水彩画", "蒸汽波艺术", "油画", "卡通画")
RESOLUTIONS = ("1024*1024", "1024*1536", "1536*1024")
MESSAGES = {200: "成功", 201: "taskId不存在", 202: "文本黄反拦截", 400: "参数错误", 404: "接口地址不正确",
            500: "系统维护,请稍候再试", 601: "接口未开通", 602: "账号停用", 604: "接口停用",
            606: "调用超限,请稍候再试", 607: "ip不在白名单", 609: "请求过于频繁,请稍候再试",
            610: "请求超时", 999: "其他"}


@dataclass
class Task:
    text: str
    resolution: str
    style: str
    num: int
    polls_left: int


class FakeJumdata(FakeVendor):
    def __init__(self, app_id: str = "app-123", app_secret: str = "s3cret-app-secret") -> None:
        super().__init__()
        self.app_id = app_id
        self.app_secret = app_secret
        self.tasks: dict[str, Task] = {}
        self.pending_polls = 2  # queries answering status 0 before a task is done
        self.status_as_string = False
        self.submit_code: int | None = None  # answer submits with this code
        self.query_code: int | None = None  # answer queries with this code
        self.forms: list[dict[str, str]] = []
        self.app.router.add_route("*", "/ai/draw/submit", self._submit)
        self.app.router.add_route("*", "/ai/draw/query", self._query)

    def _answer(self, code: int, data: Any = None, *, charge: bool = False, msg: str = "") -> web.Response:
        body: dict[str, Any] = {"code": code, "msg": msg or MESSAGES.get(code, "其他"),
                                "taskNo": uuid.uuid4().hex[:24], "charge": charge}
        if data is not None:
            body["data"] = data
        return web.json_response(body)

    def error_response(self, status: int, message: str) -> web.Response:
        return web.json_response({"code": status, "msg": message, "taskNo": uuid.uuid4().hex[:24],
                                  "charge": False}, status=status)

    def _bad(self, message: str) -> web.Response:
        self.violation(message)
        return self._answer(400, msg=message)

    async def _common(self, request: web.Request, fields: set[str]) -> dict[str, str] | web.Response:
        """Method, content type, appId/timestamp/sign; then no unknown fields."""
        if request.method != "POST":
            return self._bad(f"method {request.method}")
        if not self.check_content_type(request, "application/x-www-form-urlencoded", "multipart/form-data"):
            return self._answer(400, msg="content type")
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        for name in ("appId", "timestamp", "sign"):
            if not form.get(name):
                return self._bad(f"{name} missing")
        if form["appId"] != self.app_id:
            self.violation("unknown appId")
            return self._answer(400, msg="appId不存在")
        if not form["timestamp"].isdigit() or abs(int(form["timestamp"]) - time.time() * 1000) > 10 * 60_000:
            self.violation(f"timestamp is not the current time in ms: {form['timestamp']!r}")
            return self._answer(400, msg="timestamp已过期")
        expected = hashlib.sha256(f"{self.app_id}{self.app_secret}{form['timestamp']}".encode()).hexdigest()
        if form["sign"] != expected:
            self.violation("bad sign")
            return self._answer(400, msg="签名错误")
        unknown = set(form) - {"appId", "timestamp", "sign"} - fields
        if unknown:
            return self._bad(f"unknown fields {sorted(unknown)}")
        return form

    async def _submit(self, request: web.Request) -> web.Response:
        form = await self._common(request, {"text", "resolution", "style", "num"})
        if isinstance(form, web.Response):
            return form
        text = form.get("text", "")
        if not text.strip() or len(text) > 100:
            return self._bad(f"text empty or longer than 100 characters ({len(text)})")
        if form.get("resolution") not in RESOLUTIONS:
            return self._bad(f"resolution {form.get('resolution')!r}")
        if form.get("style") not in STYLES:
            self.violation(f"style {form.get('style')!r}")
            return self._answer(400, msg="风格值不正确")  # the document's own failure example
        num = form.get("num", "1")
        if not num.isdigit() or not 1 <= int(num) <= 6:
            return self._bad(f"num {num!r}")
        if self.submit_code is not None:
            return self._answer(self.submit_code)
        task_id = uuid.uuid4().hex
        self.tasks[task_id] = Task(text, form["resolution"], form["style"], int(num), self.pending_polls)
        return self._answer(200, {"taskId": task_id}, charge=True)

    async def _query(self, request: web.Request) -> web.Response:
        form = await self._common(request, {"taskId"})
        if isinstance(form, web.Response):
            return form
        if not form.get("taskId"):
            return self._bad("taskId不能为空")
        if self.query_code is not None:
            return self._answer(self.query_code)
        task = self.tasks.get(form["taskId"])
        if task is None:
            return self._answer(201)
        created = "2023-09-21 22:15:41"
        if task.polls_left > 0:
            task.polls_left -= 1
            return self._answer(200, {"img": "", "imgUrls": [], "createTime": created,
                                      "status": "0" if self.status_as_string else 0})
        w, h = (int(v) // 32 for v in task.resolution.split("*"))
        urls = [self.add_file(f"{form['taskId']}-{k}.png", image_bytes(w, h, (k * 30, 50, 150)))
                for k in range(task.num)]
        return self._answer(200, {"img": urls[0], "imgUrls": [{"image": u} for u in urls],
                                  "createTime": created, "status": "1" if self.status_as_string else 1})
