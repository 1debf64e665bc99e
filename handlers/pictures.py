"""A picture sent without a word (private chats): say what can be done with it, as buttons.

The picture is stored at once; the buttons carry a short reference to it (a button payload
holds 64 bytes, a media key is longer), kept with the chat so a press from another chat
names nothing. "Use as face" keeps it as the user's face for a later /swap with one picture.
"""

from __future__ import annotations

from engine.errors import UserFacingError
from engine.jobs import Upscale
from handlers import admission
from handlers.context import Ctx
from handlers.port import Button, Incoming
from handlers.router import Router

router = Router()

REF_CHARS = 16  # of the media key's sha256: unguessable enough, short enough for a payload


def _ref_key(ctx: Ctx, ref: str) -> str:
    return f"upload:{ctx.chat.platform}:{ctx.chat.chat_id}:{ref}"


@router.command("picture")
async def picture(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    if not incoming.images:
        raise UserFacingError("error-needs-image", command="/upscale")
    key, _ = await admission.store_upload(ctx, incoming.images[0], "image")
    ref = key[:REF_CHARS]
    await ctx.services.storage.set_meta(_ref_key(ctx, ref), key)
    buttons = [[Button(ctx.t("button-upscale"), f"p:u:{ref}"), Button(ctx.t("button-use-as-face"), f"p:f:{ref}")]]
    await ctx.reply(ctx.t("picture-options"), buttons=buttons, personal=False)


@router.press("p")
async def picture_pressed(ctx: Ctx, kind: str, payload: str) -> None:
    action, _, ref = payload.partition(":")
    key = await ctx.services.storage.meta(_ref_key(ctx, ref)) if ref else None
    if key is None or action not in ("u", "f") or not ctx.services.media.exists(key):
        raise UserFacingError("press-invalid")
    if action == "f":
        await ctx.services.storage.update_user_settings(ctx.user.id, {"face": key})
        await ctx.answer(ctx.t("face-saved"))
        return
    await admission.enqueue(ctx, Upscale(image=key, scale=2), ctx.services.config.tools_backend)
