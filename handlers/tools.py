"""/swap and /upscale: the image tools, on pictures attached or replied to."""

from __future__ import annotations

from engine.errors import UserFacingError
from engine.jobs import FaceSwap
from handlers import admission
from handlers.context import Ctx
from handlers.flags import parse_prompt
from handlers.port import Incoming
from handlers.requests import validate
from handlers.router import Router

router = Router()


@router.command("swap")
async def swap(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    parsed = parse_prompt(rest)
    admission.refuse_local_paths(parsed)
    # The attached photo gives the face; the picture replied to receives it.
    # With two attached photos: the first is the face, the second the picture.
    # With one: the face the user saved ("Use as face" under a picture) goes into it.
    pictures = list(incoming.images) + list(incoming.reply_images)
    saved_face = ctx.user.settings.get("face")
    if len(pictures) == 1 and saved_face and ctx.services.media.exists(saved_face):
        face_key = saved_face
        target_key, _ = await admission.store_upload(ctx, pictures[0], "image")
    elif len(pictures) < 2:
        raise UserFacingError("error-swap-needs-two")
    else:
        face_key, _ = await admission.store_upload(ctx, pictures[0], "face")
        target_key, _ = await admission.store_upload(ctx, pictures[1], "image")
    spec = FaceSwap(face_image=face_key, target_image=target_key)
    await admission.enqueue(ctx, spec, admission.tool_backend(ctx, parsed.flags))


@router.command("upscale")
async def upscale(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    parsed = parse_prompt(rest)
    admission.refuse_local_paths(parsed)
    pictures = list(incoming.images) + list(incoming.reply_images)
    if not pictures:
        raise UserFacingError("error-needs-image", command="/upscale")
    key, _ = await admission.store_upload(ctx, pictures[0], "image")
    spec = validate({"kind": "upscale", "image": key, "scale": parsed.flags.get("scale", 2)})
    await admission.enqueue(ctx, spec, admission.tool_backend(ctx, parsed.flags))
