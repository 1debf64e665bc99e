"""/imagine: a prompt (with flags) becomes a generation job; a reply with only flags re-runs one."""

from __future__ import annotations

from typing import Any

from engine.errors import UserFacingError
from engine.jobs import CONTROL_TYPES, GenerationBase
from handlers import admission
from handlers.context import Ctx
from handlers.flags import ParsedPrompt, parse_prompt
from handlers.port import Incoming
from handlers.requests import build_generation, extras_from_flags, fresh_seed, size_for_aspect, with_changes
from handlers.router import Router
from storage.records import JobRecord

router = Router()

# Flags a re-run may change, and the job field each one sets (one table, beside chosen_fields).
RERUN_FIELDS = admission.RERUN_FIELDS


@router.command("imagine")
async def imagine(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    parsed = parse_prompt(rest)
    admission.refuse_local_paths(parsed)
    replied = await replied_job(ctx, incoming)
    if replied is not None and not parsed.prompt and not incoming.images:
        # A reply to one of our results with only flags: run it again with those changes.
        await rerun_with_flags(ctx, replied, parsed)
        return
    if not parsed.prompt:
        raise UserFacingError("error-prompt-empty")
    init = incoming.images[0] if incoming.images else (incoming.reply_images[0] if incoming.reply_images else None)
    defaults = await admission.defaults(ctx)
    backend_name = admission.backend_for(ctx, parsed.flags, defaults)
    model = await admission.model_for(ctx, backend_name, parsed.flags, defaults)
    images: dict[str, str] = {}
    image_size: tuple[int, int] | None = None
    kind = "txt2img"
    if "control" in parsed.flags:
        if parsed.flags["control"] not in CONTROL_TYPES:
            raise UserFacingError("error-control-type", value=parsed.flags["control"], choices=", ".join(CONTROL_TYPES))
        if init is None:
            raise UserFacingError("error-needs-image", command="/imagine --control")
        if model.name and parsed.flags["control"] not in model.control_types:
            # Said now, before a job exists: not after it was queued and started.
            raise UserFacingError("error-control-not-on-model", model=model.name, value=parsed.flags["control"],
                                  choices=", ".join(model.control_types) or "-")
        kind = "controlnet"
        images["control_image"], image_size = await admission.store_upload(ctx, init, "image")
    elif init is not None:
        kind = "img2img"
        images["init_image"], image_size = await admission.store_upload(ctx, init, "image")
        if incoming.mask is not None:
            kind = "inpaint"
            images["mask_image"], _ = await admission.store_upload(ctx, incoming.mask, "mask", mode="L")
    elif incoming.mask is not None:
        raise UserFacingError("error-needs-image", command="--mask")
    spec = build_generation(prompt=parsed.prompt, flags=parsed.flags, defaults=defaults, model=model,
                            kind=kind, images=images, image_size=image_size)
    await admission.enqueue(ctx, spec, backend_name, notes=list(parsed.notes),
                            chosen=admission.chosen_fields(parsed.flags, defaults))


async def replied_job(ctx: Ctx, incoming: Incoming) -> JobRecord | None:
    if not incoming.reply_to_message_id:
        return None
    return await ctx.services.storage.job_for_message(incoming.chat.platform, incoming.chat.chat_id,
                                                      incoming.reply_to_message_id)


async def rerun_with_flags(ctx: Ctx, job: JobRecord, parsed: ParsedPrompt) -> None:
    if not isinstance(job.spec, GenerationBase):
        raise UserFacingError("error-rerun-not-generation")
    changes: dict[str, Any] = {field: parsed.flags[flag] for flag, field in RERUN_FIELDS.items() if flag in parsed.flags}
    changes.setdefault("seed", fresh_seed())
    if "ar" in parsed.flags or "size" in parsed.flags:
        side = int((job.spec.width * job.spec.height) ** 0.5)
        w, h = parsed.flags.get("size") or size_for_aspect(parsed.flags["ar"], side)
        changes.update(width=w, height=h)
    changes.update(extras_from_flags(parsed.flags))
    backend = parsed.flags.get("backend", job.backend)
    await admission.enqueue(ctx, with_changes(job.spec, **changes), backend, parent=job.id, notes=list(parsed.notes),
                            chosen=admission.chosen_fields(parsed.flags, admission.Defaults({})))
