"""paint4.art (seed document 000): one synchronous call, one picture.

    POST /aipaint   Content-Type: application/json   {"desc": "a dog", "model": "Stable_Diffusion"}
    -> {"code": 1000, "msg": "success", "data": "<image url>"}

``code`` 1000 is success; any other code is a failure whose ``msg`` we show (sanitized,
truncated) inside ``error-paint4-failed``. The API takes no size, count, steps or seed:
``n`` images are ``n`` calls, the rest is ignored with a note.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import JobCancelled
from engine.vendors.common import LimitedBackend, VendorHttp, VendorLimits, sanitize_vendor_text

log = logging.getLogger("imagebot.vendors.paint4")

SUCCESS = 1000


class Paint4Backend(LimitedBackend):
    name = "paint4"

    def __init__(
        self,
        base_url: str,
        *,
        models: Sequence[str] = ("Stable_Diffusion",),
        timeout_s: float = 60.0,
        concurrency: int = 4,
        max_images: int = 4,
        retries: int = 2,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.limits = VendorLimits(
            backend=self.name, kinds=("txt2img",), max_n=max_images,
            models=tuple(models), default_model=models[0] if models else "",
        )
        self.http = VendorHttp(
            self.name, base_url, timeout_s=timeout_s, retries=retries, backoff_base_s=backoff_base_s,
            breaker_threshold=breaker_threshold, breaker_cooldown_s=breaker_cooldown_s, transport=transport,
        )

    @classmethod
    def configured(cls, settings: Any) -> bool:
        return bool(settings.paint4_base_url)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Paint4Backend:
        kwargs: dict[str, Any] = {
            "models": (settings.paint4_model,),
            "timeout_s": settings.vendor_timeout_s,
        }
        kwargs.update(overrides)
        return cls(settings.paint4_base_url, **kwargs)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=m, backend=self.name, title=f"paint4.art {m}", kinds=("txt2img",))
                for m in self.limits.models]

    async def _one(self, desc: str, model: str) -> bytes:
        answer = await self.http.json("POST", "/aipaint", json={"desc": desc, "model": model},
                                      idempotent=False)
        if not isinstance(answer, dict) or "code" not in answer:
            raise self.http.error("error-vendor-bad-answer")
        try:
            code = int(answer["code"])
        except (TypeError, ValueError):
            raise self.http.error("error-vendor-bad-answer") from None
        if code != SUCCESS:
            log.warning("paint4 answered code %s", code)
            raise self.http.error("error-paint4-failed", code=code,
                                  detail=sanitize_vendor_text(answer.get("msg")))
        url = answer.get("data")
        if not isinstance(url, str) or not url:
            raise self.http.error("error-vendor-bad-answer")
        return await self.http.download_image(url)

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        mapped, _notes = self.limits.check_or_map(work.spec)
        total = mapped.n
        yield Progress(0, total)
        images: list[ResultImage] = []
        for k in range(mapped.n):
            if work.cancel.cancelled:
                raise JobCancelled()
            png = await self._one(mapped.prompt, mapped.model)
            images.append(ResultImage(png=png, seed=None))  # the vendor reports no seed
            yield Progress(k + 1, total)
        yield Finished(images)

    async def close(self) -> None:
        await self.http.close()
