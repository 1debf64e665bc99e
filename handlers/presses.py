"""The buttons under a result and on a status: U (upscale), V (vary), 🔄 (reroll), ✖ (cancel).

Payloads are ``u:JOB:k``, ``v:JOB:k``, ``r:JOB`` and ``x:JOB``: opaque to the platforms, checked
against the database on every press, so a button works after a restart and months later,
and a forged, stale or foreign one changes nothing. Anyone in the chat may press U/V/🔄 (a
new job on their own quota); only the requester may cancel.
"""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from engine.backend import accepts
from engine.errors import UserFacingError
from engine.jobs import GenerationBase, Img2Img, JobSpec, Upscale
from handlers import admission
from handlers.context import Ctx
from handlers.requests import fresh_seed, with_changes, within_limits
from handlers.router import Router
from storage.records import JobState

router = Router()


@router.press("u", "v", "r", "x")
async def job_pressed(ctx: Ctx, kind: str, payload: str) -> None:
    assert ctx.press is not None
    job_id, _, index_text = payload.partition(":")
    storage = ctx.services.storage
    job = await storage.job(job_id) if job_id else None
    # A press must name a job of this very chat; anything else is stale or forged.
    if job is None or job.chat.platform != ctx.press.chat.platform or job.chat.chat_id != ctx.press.chat.chat_id:
        raise UserFacingError("press-invalid")
    if kind == "x":
        if job.user_id != ctx.user.id:
            raise UserFacingError("press-not-yours")
        if job.state.finished or job.state is JobState.DELIVERING:
            await ctx.answer(ctx.t("cancel-too-late"))
            return
        await admission.cancel_job(ctx.services, job)
        await ctx.answer(ctx.t("cancel-done", count=1))
        return
    # DELIVERING too: a quick press can land while the job is still being wrapped up.
    if job.state not in (JobState.DONE, JobState.DELIVERING) or not job.results or not _pressable(job.spec):
        raise UserFacingError("press-invalid")

    # Each press below is a new job on the presser's own quota; enqueue answers the press once
    # the job is written (so a refusal, e.g. quota, still comes back as an alert on the press).
    if kind == "r":
        assert isinstance(job.spec, GenerationBase)
        spec = with_changes(job.spec, seed=fresh_seed())
        await admission.enqueue(ctx, spec, job.backend, parent=job.id)
        return
    if not index_text.isdigit() or int(index_text) >= len(job.results) or not job.results[int(index_text)].media_key:
        raise UserFacingError("press-invalid")
    source = job.results[int(index_text)].media_key
    if kind == "u":
        spec2: JobSpec = Upscale(image=source, scale=2)
        await admission.enqueue(ctx, spec2, ctx.services.config.tools_backend, parent=job.id)
        return
    # Vary: a light img2img of the chosen picture with a new seed, like Midjourney's V.
    base = job.spec if isinstance(job.spec, GenerationBase) else await _generation_above(ctx, job.parent_job)
    if base is None:  # an upscale of an uploaded picture: there is no prompt to vary it with
        raise UserFacingError("press-invalid")
    size = await asyncio.to_thread(_size_of, ctx.services.media.read, source)
    data = base.model_dump()
    n = base.n if base is job.spec else 1
    width, height = within_limits(*size)  # a picture larger than a job may be: scaled down, same shape
    data.update(kind="img2img", init_image=source, strength=0.55, seed=fresh_seed(), n=n, width=width, height=height)
    for extra in ("mask_image", "control_image", "control_type", "control_scale", "image", "scale"):
        data.pop(extra, None)
    spec3 = Img2Img.model_validate(data)
    backends = ctx.services.backends
    # A backend that cannot take the variation (zhiqite without a public address for the
    # picture, say) hands it to the default backend rather than refusing the press.
    backend = job.backend if job.backend in backends and accepts(backends[job.backend], spec3) \
        else ctx.services.config.default_backend
    if backend != job.backend and isinstance(job.spec, Upscale):
        spec3 = spec3.model_copy(update={"model": ""})  # the tool's model means nothing to a generator
    await admission.enqueue(ctx, spec3, backend, parent=job.id)


async def _generation_above(ctx: Ctx, job_id: str | None) -> GenerationBase | None:
    """The generation an upscaled picture came from (its prompt is what V varies)."""
    parent = await ctx.services.storage.job(job_id) if job_id else None
    return parent.spec if parent is not None and isinstance(parent.spec, GenerationBase) else None


def _pressable(spec: JobSpec) -> bool:
    return isinstance(spec, GenerationBase | Upscale)


def _size_of(read, key: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with Image.open(io.BytesIO(read(key))) as im:
        return im.size
