"""/settings and /lang: a user's defaults; a chat's (or a whole server's) defaults for admins."""

from __future__ import annotations

import logging
from typing import Any

from engine.errors import UserFacingError
from handlers import admission
from handlers.context import Ctx
from handlers.port import Button, Incoming, MessageRef
from handlers.requests import parse_aspect, validate
from handlers.router import Router
from locales import LANGUAGES, Translator, normalize_language

log = logging.getLogger(__name__)
router = Router()

ASPECTS = ("1:1", "3:2", "2:3", "16:9", "9:16")
USER_SETTINGS = ("model", "backend", "ar", "steps", "n", "cfg", "side", "originals", "negative")
# Settings a button may set (payload "s:KEY:VALUE").
PRESSABLE = ("ar", "n", "lang", "backend", "model")


@router.command("settings")
async def settings(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    words = rest.split()
    scope = "user"
    if not ctx.chat.is_private and words[:1] == ["chat"]:
        scope, words = "chat", words[1:]
        if not ctx.chat_admin:
            raise UserFacingError("error-chat-admin-only")
    elif ctx.chat.space_id and words[:1] in (["server"], ["guild"]):
        scope, words = "space", words[1:]
        if not ctx.space_admin:
            raise UserFacingError("error-space-admin-only")
    if words and words[0] == "reset":
        await _save(ctx, scope, {k: None for k in USER_SETTINGS + ("pool",)} if scope != "user"
                    else {k: None for k in USER_SETTINGS})
    elif len(words) >= 2:
        key, value = words[0].lower(), " ".join(words[1:])
        if key == "pool" and scope == "user":
            raise UserFacingError("error-chat-admin-only")
        await _save_setting(ctx, scope, key, await check_setting(ctx, key, value))
    elif words:
        raise UserFacingError("error-settings-usage")
    await ctx.reply(await settings_text(ctx), buttons=settings_buttons(ctx))


async def _save_setting(ctx: Ctx, scope: str, key: str, change: Any) -> None:
    """Save one checked setting: the language is always the user's own (and the answer is in
    it at once); any other setting goes to ``scope``."""
    if key == "lang":
        await ctx.services.storage.set_language(ctx.user.id, change)
        ctx.t = Translator(change)
        ctx.user = await ctx.services.storage.user(ctx.user.platform, ctx.user.ext_id)
    else:
        await _save(ctx, scope, {key: change})


async def _save(ctx: Ctx, scope: str, changes: dict[str, Any]) -> None:
    storage = ctx.services.storage
    if scope == "chat":
        await storage.update_chat_settings(ctx.chat.platform, ctx.chat.chat_id, changes)
    elif scope == "space":
        assert ctx.chat.space_id
        await storage.update_chat_settings(ctx.chat.platform, admission.space_key(ctx.chat.space_id), changes)
    else:
        await storage.update_user_settings(ctx.user.id, changes)
    ctx.user = await storage.user(ctx.user.platform, ctx.user.ext_id)


@router.command("lang")
async def lang(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    if rest.strip():
        code = await check_setting(ctx, "lang", rest.strip())
        await ctx.services.storage.set_language(ctx.user.id, code)
        await ctx.reply(Translator(code)("lang-set", lang=LANGUAGES[code]))
        return
    await ctx.reply(ctx.t("lang-choose"), buttons=[_language_row()])


@router.press("s")
async def setting_pressed(ctx: Ctx, kind: str, payload: str) -> None:
    assert ctx.press is not None
    key, _, value = payload.partition(":")
    if key not in PRESSABLE:
        raise UserFacingError("press-invalid")
    await _save_setting(ctx, "user", key, await check_setting(ctx, key, value))
    await ctx.answer(ctx.t("settings-saved"))
    try:
        await ctx.messenger.edit_text(MessageRef(ctx.press.chat, ctx.press.message_id), await settings_text(ctx),
                                      buttons=settings_buttons(ctx))
    except Exception:  # the panel may be gone; the setting is saved all the same
        log.debug("settings message not edited", exc_info=True)


async def check_setting(ctx: Ctx, key: str, value: str) -> Any:
    """The value to store for ``key``, or a localized refusal naming the choices."""
    if key == "lang":
        code = normalize_language(value)
        if value.lower() not in {c.lower() for c in LANGUAGES} and code == "en" and not value.lower().startswith("en"):
            raise UserFacingError("error-setting-value", key=key, value=value, choices=", ".join(LANGUAGES))
        return code
    if key == "ar":
        if parse_aspect(value) is None:
            raise UserFacingError("error-setting-value", key=key, value=value, choices=", ".join(ASPECTS))
        return value
    if key in ("steps", "n", "side"):
        try:
            number = int(value)
        except ValueError:
            raise UserFacingError("error-setting-value", key=key, value=value, choices="1, 2, 3…") from None
        probe = {"steps": {"steps": number}, "n": {"n": number}, "side": {"width": number // 8 * 8 or 8}}[key]
        validate({"kind": "txt2img", "prompt": "x", **probe})
        return number
    if key == "cfg":
        try:
            cfg = float(value)
        except ValueError:
            raise UserFacingError("error-setting-value", key=key, value=value, choices="0 … 30") from None
        validate({"kind": "txt2img", "prompt": "x", "cfg": cfg})
        return cfg
    if key == "backend":
        admission.known_backend(ctx.services, value)
        return value
    if key == "model":
        merged = await admission.defaults(ctx)
        backend = merged.get("backend") or ctx.services.config.default_backend
        return (await admission.model_for(ctx, backend, {"model": value}, merged)).name
    if key == "pool":
        if not value.isdigit() or int(value) > 100_000:
            raise UserFacingError("error-setting-value", key=key, value=value, choices="0 … 100000")
        return int(value)
    if key == "originals":
        return value.lower() in ("on", "yes", "true", "1")
    if key == "negative":
        return value[:500]
    raise UserFacingError("error-setting-unknown", key=key, choices=", ".join(USER_SETTINGS + ("lang",)))


async def settings_text(ctx: Ctx) -> str:
    merged = await admission.defaults(ctx)
    config = ctx.services.config
    backend = merged.get("backend") or config.default_backend
    model = merged.get("model") or admission.default_model_of(ctx.services, backend) or ""
    return ctx.t(
        "settings-show",
        backend=backend, model=model or "-", ar=merged.get("ar") or "1:1",
        steps=merged.get("steps") or "auto", n=merged.get("n") or 1,
        lang=LANGUAGES.get(ctx.t.lang, ctx.t.lang),
        originals=ctx.t("yes") if merged.get("originals") else ctx.t("no"),
    )


def settings_buttons(ctx: Ctx) -> list[list[Button]]:
    rows = [
        [Button(a, f"s:ar:{a}") for a in ASPECTS],
        [Button(f"n={n}", f"s:n:{n}") for n in (1, 2, 4)],
        _language_row(),
    ]
    backends = admission.generator_backends(ctx.services)
    if len(backends) > 1:
        rows.append([Button(b, f"s:backend:{b}") for b in backends[:5]])
    return rows


def _language_row() -> list[Button]:
    """One button per language (payload "s:lang:CODE"), for /lang and the /settings panel."""
    return [Button(name, f"s:lang:{code}") for code, name in LANGUAGES.items()]
