"""AI-Image-Generate (seed document 001): a DALL-E style proxy, synchronous, n images.

    POST /get-image   {"prompt": "...", "n": "2", "size": "1024x1024"}   (all three required;
                      ``n`` is a STRING on the wire)
    -> {"urlResponse": {"urlList": ["<signed url>", ...]}, "errorMessage": "OK"}

The URLs are short-lived signed blob links, so each is downloaded at once and never
logged. The document shows only ``1024x1024``; the service behind it (DALL-E 2, judging
by the blob host) also takes ``256x256`` and ``512x512``, so those three are the menu
and every other size maps to the nearest one. Prompts are bounded at DALL-E 2's 1000
characters. Steps, cfg, seed and negative prompts do not exist here (ignored, noted).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import JobCancelled
from engine.vendors.common import LimitedBackend, VendorHttp, VendorLimits, sanitize_vendor_text

log = logging.getLogger("imagebot.vendors.aiimage")

SIZES: tuple[tuple[int, int], ...] = ((256, 256), (512, 512), (1024, 1024))
MAX_PROMPT_CHARS = 1000
OK = "OK"


class AiImageBackend(LimitedBackend):
    name = "aiimage"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 90.0,
        concurrency: int = 4,
        sizes: Sequence[tuple[int, int]] = SIZES,
        max_n: int = 4,
        max_prompt_chars: int = MAX_PROMPT_CHARS,
        retries: int = 2,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.limits = VendorLimits(
            backend=self.name, kinds=("txt2img",), max_n=max_n, sizes=tuple(sizes),
            max_prompt_chars=max_prompt_chars,
        )
        self.http = VendorHttp(
            self.name, base_url, timeout_s=timeout_s, retries=retries, backoff_base_s=backoff_base_s,
            breaker_threshold=breaker_threshold, breaker_cooldown_s=breaker_cooldown_s, transport=transport,
        )

    @classmethod
    def configured(cls, settings: Any) -> bool:
        return bool(settings.aiimage_base_url)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> AiImageBackend:
        kwargs: dict[str, Any] = {"timeout_s": settings.vendor_timeout_s}
        kwargs.update(overrides)
        return cls(settings.aiimage_base_url, **kwargs)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=self.name, backend=self.name, title="AI-Image-Generate",
                          kinds=("txt2img",), default_size=1024)]

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        m, _notes = self.limits.check_or_map(work.spec)
        total = m.n + 1
        yield Progress(0, total)
        body = {"prompt": m.prompt, "n": str(m.n), "size": f"{m.width}x{m.height}"}
        answer = await self.http.json("POST", "/get-image", json=body, idempotent=False, pass_4xx=True)
        urls = self._urls(answer)
        yield Progress(1, total)
        images: list[ResultImage] = []
        for k, url in enumerate(urls[: m.n]):
            if work.cancel.cancelled:
                raise JobCancelled()
            images.append(ResultImage(png=await self.http.download_image(url), seed=None))
            yield Progress(2 + k, total)
        yield Finished(images)

    def _urls(self, answer: Any) -> list[str]:
        if not isinstance(answer, dict):
            raise self.http.error("error-vendor-bad-answer")
        message = answer.get("errorMessage")
        if message != OK:
            # The proxy passes the upstream refusal (content policy, bad size...) through here.
            log.warning("aiimage refused the request")
            raise self.http.error("error-aiimage-failed", detail=sanitize_vendor_text(message))
        response = answer.get("urlResponse")
        urls = response.get("urlList") if isinstance(response, dict) else None
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
            raise self.http.error("error-vendor-bad-answer")
        return urls

    async def close(self) -> None:
        await self.http.close()
