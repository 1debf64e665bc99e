"""A self-hosted "Stable Diffusion API Server" (seed document 003): synchronous, form data.

    POST /txt2img   Content-Type: application/x-www-form-urlencoded;charset=utf-8
        prompt, seed (int), num_outputs [1,4], width/height (0,1024],
        num_inference_steps (0,150], guidance_scale (0,20] (an integer, says the document)
    POST /img2img   prompt, seed, num_outputs, num_inference_steps, guidance_scale,
        strength (0,1), init_image (base64 of the picture)
    -> {"images": [{"image_url", "mime_type", "seed"}, ...], "status": "success"}

The img2img body in the document has no width/height (only txt2img lists them), so the
init image itself is resized to the asked size before it is encoded; the fake server
accepts both a body with and one without width/height.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from PIL import Image

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import JobCancelled
from engine.vendors.common import LimitedBackend, Mapped, VendorHttp, VendorLimits, sanitize_vendor_text

log = logging.getLogger("imagebot.vendors.sdapi")

FORM = "application/x-www-form-urlencoded;charset=utf-8"
# Open intervals in the document: (0,1) for strength, (0,20] for guidance, (0,150] steps.
LIMITS: dict[str, Any] = dict(max_n=4, max_side=1024, steps_range=(1, 150), cfg_range=(1.0, 20.0), cfg_integer=True,
                              strength_range=(0.01, 0.99), seed=True)


def _resized_png(data: bytes, width: int, height: int) -> bytes:
    with Image.open(io.BytesIO(data)) as src:
        img = src.convert("RGB")
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, format="PNG")
        return out.getvalue()


class SdApiBackend(LimitedBackend):
    name = "sdapi"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 120.0,
        concurrency: int = 1,
        retries: int = 2,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.limits = VendorLimits(backend=self.name, kinds=("txt2img", "img2img"), **LIMITS)
        self.http = VendorHttp(
            self.name, base_url, timeout_s=timeout_s, retries=retries, backoff_base_s=backoff_base_s,
            breaker_threshold=breaker_threshold, breaker_cooldown_s=breaker_cooldown_s, transport=transport,
        )

    @classmethod
    def configured(cls, settings: Any) -> bool:
        return bool(settings.sdapi_base_url)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SdApiBackend:
        kwargs: dict[str, Any] = {"timeout_s": settings.vendor_timeout_s}
        kwargs.update(overrides)
        return cls(settings.sdapi_base_url, **kwargs)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=self.name, backend=self.name, title="Stable Diffusion API Server",
                          kinds=self.limits.kinds, default_steps=30, default_cfg=7.0)]

    async def _form(self, work: Work, m: Mapped) -> tuple[str, dict[str, str]]:
        form = {
            "prompt": m.prompt,
            "seed": str(m.seed),
            "num_outputs": str(m.n),
            "num_inference_steps": str(m.steps),
            "guidance_scale": str(int(m.cfg)),
        }
        spec = work.spec
        if spec.kind == "img2img":
            raw = work.media.read(spec.init_image)
            png = await asyncio.to_thread(_resized_png, raw, m.width, m.height)
            form["strength"] = f"{m.strength:g}"
            form["init_image"] = base64.b64encode(png).decode("ascii")
            return "/img2img", form
        form["width"] = str(m.width)
        form["height"] = str(m.height)
        return "/txt2img", form

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        m, _notes = self.limits.check_or_map(work.spec)
        total = m.n + 1
        yield Progress(0, total)
        path, form = await self._form(work, m)
        # A self-hosted server bills nobody, so a lost answer may be asked again.
        answer = await self.http.json("POST", path, data=form, headers={"Content-Type": FORM},
                                      pass_4xx=True)
        entries = self._entries(answer)
        yield Progress(1, total)
        images: list[ResultImage] = []
        for k, entry in enumerate(entries[: m.n]):
            if work.cancel.cancelled:
                raise JobCancelled()
            png = await self.http.download_image(entry["image_url"])
            seed = entry.get("seed")
            images.append(ResultImage(png=png, seed=int(seed) if isinstance(seed, (int, float)) else None))
            yield Progress(2 + k, total)
        yield Finished(images)

    def _entries(self, answer: Any) -> list[dict[str, Any]]:
        if not isinstance(answer, dict):
            raise self.http.error("error-vendor-bad-answer")
        if answer.get("status") != "success":
            log.warning("sdapi answered status %r", sanitize_vendor_text(answer.get("status"), 40))
            detail = answer.get("message") or answer.get("error") or answer.get("detail") or answer.get("status")
            raise self.http.error("error-sdapi-failed", detail=sanitize_vendor_text(detail))
        images = answer.get("images")
        if (not isinstance(images, list) or not images
                or not all(isinstance(e, dict) and isinstance(e.get("image_url"), str) for e in images)):
            raise self.http.error("error-vendor-bad-answer")
        return images

    async def close(self) -> None:
        await self.http.close()
