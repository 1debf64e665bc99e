"""jumdata AI绘画 (seed document 004): signed submit, then poll the task.

Every call is a form POST carrying appId, timestamp (ms) and
sign = sha256(appId + appSecret + timestamp) as lower-case hex.

    /ai/draw/submit  text (<= 100 characters), resolution (1024*1024 | 1024*1536 | 1536*1024),
                     style (one of 17 names), num (1-6, billed per image)  -> data.taskId
    /ai/draw/query   taskId  -> data.status 0 queued/running, 1 done; data.imgUrls[].image, data.img

Every answer carries code/msg/taskNo/charge; each documented code has its own message
key. The task id is checkpointed right after submit, so a restarted job polls the same
task instead of paying for a second one.

The document gives no code of its own for a refused signature: it answers 400
"parameter error" with a ``msg`` that names the sign, the appId or the timestamp. That is
the operator's mistake (a wrong app secret or id, a server clock that is off), not the
user's: it becomes ``error-jumdata-misconfigured`` ("ask the admin") and a WARNING that
says which setting to check (never the secret or the signature).

The document calls the body "application/form-data" (not a real media type); we send
``application/x-www-form-urlencoded`` and the fake accepts that and multipart alike. It
writes the query status both as a number and as a quoted "1"; both are accepted.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import JobCancelled
from engine.vendors.common import LimitedBackend, Pending, VendorHttp, VendorLimits, polling

log = logging.getLogger("imagebot.vendors.jumdata")

SUBMIT = "/ai/draw/submit"
QUERY = "/ai/draw/query"
FORM = "application/x-www-form-urlencoded;charset=utf-8"

RESOLUTIONS: tuple[tuple[int, int], ...] = ((1024, 1024), (1024, 1536), (1536, 1024))
MAX_TEXT_CHARS = 100
MAX_NUM = 6
STYLES: tuple[str, ...] = (
    "探索无限", "古风", "二次元", "写实风格", "浮世绘", "low poly", "未来主义", "像素风格", "概念艺术",
    "赛博朋克", "洛丽塔风格", "巴洛克风格", "超现实主义", "水彩画", "蒸汽波艺术", "油画", "卡通画",
)
DEFAULT_STYLE = "探索无限"
# English names users may type (lower-case, without spaces, "-" or "_").
STYLE_ALIASES: dict[str, str] = {
    "default": "探索无限", "explore": "探索无限", "infinite": "探索无限", "any": "探索无限",
    "ancient": "古风", "chinese": "古风", "guofeng": "古风", "traditional": "古风",
    "anime": "二次元", "manga": "二次元", "acg": "二次元",
    "realistic": "写实风格", "realism": "写实风格", "photo": "写实风格", "photorealistic": "写实风格",
    "ukiyoe": "浮世绘",
    "lowpoly": "low poly",
    "futurism": "未来主义", "futuristic": "未来主义",
    "pixel": "像素风格", "pixelart": "像素风格",
    "concept": "概念艺术", "conceptart": "概念艺术",
    "cyberpunk": "赛博朋克",
    "lolita": "洛丽塔风格",
    "baroque": "巴洛克风格",
    "surreal": "超现实主义", "surrealism": "超现实主义",
    "watercolor": "水彩画", "watercolour": "水彩画",
    "vaporwave": "蒸汽波艺术", "steamwave": "蒸汽波艺术",
    "oil": "油画", "oilpainting": "油画",
    "cartoon": "卡通画",
}

# Documented codes -> (message key, retryable). 500 maintenance, 609 too frequent and
# 610 timeout pass; the rest will not get better by asking again.
CODES: dict[int, tuple[str, bool]] = {
    201: ("error-jumdata-task-unknown", False),
    202: ("error-jumdata-moderation", False),
    400: ("error-jumdata-bad-parameter", False),
    404: ("error-jumdata-wrong-path", False),
    500: ("error-jumdata-maintenance", True),
    601: ("error-jumdata-not-enabled", False),
    602: ("error-jumdata-account-disabled", False),
    604: ("error-jumdata-api-disabled", False),
    606: ("error-jumdata-quota", False),
    607: ("error-jumdata-ip-not-allowed", False),
    609: ("error-jumdata-too-frequent", True),
    610: ("error-jumdata-timeout", True),
    999: ("error-jumdata-other", False),
}
OK = 200
BAD_PARAMETER = 400
# What a 400 answer's msg says when the common parameters (our credentials) were refused.
_CREDENTIAL_WORDS = ("sign", "签名", "appid", "app_id", "timestamp", "时间戳")


def sign(app_id: str, app_secret: str, timestamp: str) -> str:
    return hashlib.sha256(f"{app_id}{app_secret}{timestamp}".encode()).hexdigest()


def _names_credentials(msg: Any) -> bool:
    """Whether a 400 answer's msg is about the common parameters (sign, appId, timestamp)."""
    text = str(msg or "").lower().replace(" ", "")
    return any(word in text for word in _CREDENTIAL_WORDS)


class JumdataBackend(LimitedBackend):
    name = "jumdata"

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        *,
        timeout_s: float = 30.0,
        task_timeout_s: float = 600.0,
        poll_interval_s: float = 2.0,
        poll_max_interval_s: float = 10.0,
        concurrency: int = 10,
        retries: int = 2,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.concurrency = concurrency
        self._app_id = app_id
        self._app_secret = app_secret
        self._clock_ms = clock_ms
        self.task_timeout_s = task_timeout_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.limits = VendorLimits(
            backend=self.name, kinds=("txt2img",), max_n=MAX_NUM, sizes=RESOLUTIONS,
            max_prompt_chars=MAX_TEXT_CHARS, styles=STYLES, style_aliases=STYLE_ALIASES,
            default_style=DEFAULT_STYLE,
        )
        self.http = VendorHttp(
            self.name, base_url, timeout_s=timeout_s, retries=retries, backoff_base_s=backoff_base_s,
            breaker_threshold=breaker_threshold, breaker_cooldown_s=breaker_cooldown_s, transport=transport,
        )

    def __repr__(self) -> str:  # never the secret
        return f"JumdataBackend(app_id={self._app_id!r})"

    @classmethod
    def configured(cls, settings: Any) -> bool:
        return bool(settings.jumdata_app_id and settings.jumdata_app_secret.get_secret_value())

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> JumdataBackend:
        kwargs: dict[str, Any] = {
            "timeout_s": settings.vendor_timeout_s,
            "task_timeout_s": settings.vendor_task_timeout_s,
        }
        kwargs.update(overrides)
        return cls(settings.jumdata_base_url, settings.jumdata_app_id,
                   settings.jumdata_app_secret.get_secret_value(), **kwargs)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=self.name, backend=self.name, title="jumdata AI绘画", kinds=("txt2img",),
                          default_size=1024)]

    # --- wire -----------------------------------------------------------------------

    async def _call(self, path: str, fields: dict[str, str], *, idempotent: bool) -> dict[str, Any]:
        timestamp = str(self._clock_ms())
        form = {"appId": self._app_id, "timestamp": timestamp,
                "sign": sign(self._app_id, self._app_secret, timestamp), **fields}
        answer = await self.http.json("POST", path, data=form, headers={"Content-Type": FORM},
                                      idempotent=idempotent, pass_4xx=True)
        if not isinstance(answer, dict) or "code" not in answer:
            raise self.http.error("error-vendor-bad-answer")
        try:
            code = int(answer["code"])
        except (TypeError, ValueError):
            raise self.http.error("error-vendor-bad-answer") from None
        if code != OK:
            task_no = str(answer.get("taskNo", ""))[:40]
            if code == BAD_PARAMETER and _names_credentials(answer.get("msg")):
                log.warning("jumdata %s: the request signature was refused (code %d, taskNo %s): check "
                            "IMAGEBOT_JUMDATA_APP_ID, IMAGEBOT_JUMDATA_APP_SECRET and this server's clock",
                            path, code, task_no)
                raise self.http.error("error-jumdata-misconfigured", code=code)
            key, retryable = CODES.get(code, CODES[999])
            # taskNo identifies the request to jumdata support; msg is theirs, not shown.
            log.warning("jumdata %s: code %d (taskNo %s, charged %s)", path, code, task_no, answer.get("charge"))
            raise self.http.error(key, retryable=retryable, code=code)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise self.http.error("error-vendor-bad-answer")
        return data

    async def _query(self, task_id: str) -> Any:
        data = await self._call(QUERY, {"taskId": task_id}, idempotent=True)
        # The document writes status as 1 and as "1": take both.
        status = str(data.get("status", "")).strip()
        if status == "0":
            return Pending("running")
        if status != "1":
            raise self.http.error("error-vendor-bad-answer")
        urls = [e["image"] for e in data.get("imgUrls") or []
                if isinstance(e, dict) and isinstance(e.get("image"), str) and e["image"]]
        if not urls and isinstance(data.get("img"), str) and data["img"]:
            urls = [data["img"]]  # "img" is the first picture when the list is missing
        if not urls:
            raise self.http.error("error-vendor-bad-answer")
        return urls

    # --- the job --------------------------------------------------------------------

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        m, _notes = self.limits.check_or_map(work.spec)
        total = m.n + 2  # submitted, running, then one step per downloaded picture
        task_id = work.checkpoint.get("task_id")
        if not isinstance(task_id, str) or work.checkpoint.get("task_backend", self.name) != self.name:
            task_id = None
        if task_id is None:
            if work.cancel.cancelled:
                raise JobCancelled()
            data = await self._call(SUBMIT, {
                "text": m.prompt,
                "resolution": f"{m.width}*{m.height}",
                "style": m.style,
                "num": str(m.n),
            }, idempotent=False)
            task_id = data.get("taskId")
            if not isinstance(task_id, str) or not task_id:
                raise self.http.error("error-vendor-bad-answer")
            await work.remember(task_id=task_id, task_backend=self.name)
            log.info("jumdata job %s: task submitted", work.job_id)
        else:
            log.info("jumdata job %s: resuming the saved task", work.job_id)
        yield Progress(0, total)

        urls: list[str] = []
        running_reported = False
        async for answer in polling(lambda: self._query(task_id), interval_s=self.poll_interval_s,
                                    max_interval_s=self.poll_max_interval_s,
                                    timeout_s=self.task_timeout_s, cancel=work.cancel, backend=self.name):
            if isinstance(answer, Pending):
                if not running_reported:
                    running_reported = True
                    yield Progress(1, total)
            else:
                urls = answer
        yield Progress(2, total)

        images: list[ResultImage] = []
        for k, url in enumerate(urls[: m.n]):
            if work.cancel.cancelled:
                raise JobCancelled()
            images.append(ResultImage(png=await self.http.download_image(url), seed=None))
            yield Progress(3 + k, total)
        yield Finished(images)

    async def close(self) -> None:
        await self.http.close()
