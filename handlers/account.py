"""What a user asks about their own account: /balance, /models, /cancel, /help."""

from __future__ import annotations

import asyncio

from handlers import admission
from handlers.context import Ctx
from handlers.port import Incoming
from handlers.router import Router
from storage.records import JobState

router = Router()


# Each platform attaches pictures its own way, so /help says it the platform's way.
HELP_KEYS = {"console": "help-console", "discord": "help-discord"}


@router.command("help", "start")
async def help_(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    key = HELP_KEYS.get(ctx.chat.platform, "help")
    await ctx.reply(ctx.t(key, daily=ctx.services.storage.daily_free))


@router.command("balance")
async def balance(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    storage = ctx.services.storage
    b = await storage.balance(ctx.user.id)
    open_jobs = await storage.open_jobs_of(ctx.user.id)
    text = ctx.t("balance", free=b.free_left_today, daily=b.daily_free, credits=b.credits,
                 reserved=b.reserved, jobs=len(open_jobs), admin="yes" if ctx.admin else "no")
    pool = await admission.chat_pool(ctx)
    if pool is not None:
        shared = await storage.balance(pool[0], daily_free=pool[1])
        text += "\n" + ctx.t("balance-chat-pool", free=shared.free_left_today, daily=pool[1])
    await ctx.reply(text)


PAGE = 30  # names per page of /models BACKEND
SUMMARY = 12  # names per backend in the /models overview


@router.command("models")
async def models(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    """``/models`` an overview; ``/models BACKEND [SEARCH] [page N]`` one backend, searchable,
    paged, with its LoRAs, VAEs and embeddings; models that cannot be had here say why."""
    words = rest.split()
    page = 1
    if len(words) >= 2 and words[-2].lower() == "page" and words[-1].isdigit():
        page, words = max(1, int(words[-1])), words[:-2]
    backends = admission.generator_backends(ctx.services)
    if words and words[0] in ctx.services.backends:
        await ctx.reply(await _one_backend(ctx, words[0], " ".join(words[1:]), page))
        return
    search = " ".join(words)
    lines = [ctx.t("models-header")]
    for name in backends:
        names = await _names(ctx, name, search)
        if not names:
            continue
        more = len(names) - SUMMARY
        shown = ", ".join(names[:SUMMARY]) + (" " + ctx.t("models-more", count=more, backend=name) if more > 0 else "")
        lines.append(ctx.t("models-line", backend=name, models=shown))
    if len(lines) == 1:
        lines.append(ctx.t("models-none", search=search or "-"))
    await ctx.reply("\n".join(lines))


async def _one_backend(ctx: Ctx, backend: str, search: str, page: int) -> str:
    names = await _names(ctx, backend, search)
    pages = max(1, -(-len(names) // PAGE))
    page = min(page, pages)
    lines = [ctx.t("models-backend-header", backend=backend, count=len(names), page=page, pages=pages)]
    lines.append(", ".join(names[(page - 1) * PAGE:page * PAGE]) or ctx.t("models-none", search=search or "-"))
    extras = getattr(ctx.services.backends[backend], "extras", None)
    if extras is not None:
        try:
            found = await extras()
        except Exception:
            found = {}
        for kind in ("lora", "vae", "embedding"):
            listed = [m.name for m in found.get(kind, []) if search.lower() in m.name.lower()]
            if listed:
                shown = ", ".join(listed[:PAGE]) + (" …" if len(listed) > PAGE else "")
                lines.append(ctx.t("models-extras", kind=kind, names=shown))
    if page < pages:
        lines.append(ctx.t("models-next-page", backend=backend, page=page + 1))
    return "\n".join(lines)


async def _names(ctx: Ctx, backend: str, search: str) -> list[str]:
    """The backend's model names containing ``search``, each marked when it cannot be had here."""
    found = [m for m in await admission.models_of(ctx.services, backend) if search.lower() in m.name.lower()]
    check = getattr(ctx.services.backends[backend], "unavailable", None)
    if check is None:
        return [m.name for m in found]
    reasons = await asyncio.to_thread(lambda: [check(m.name) for m in found])  # may ask the hub: off the loop
    return [m.name if reason is None else ctx.t("models-unavailable", model=m.name, reason=reason)
            for m, reason in zip(found, reasons, strict=True)]


@router.command("cancel")
async def cancel(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    jobs = await ctx.services.storage.open_jobs_of(ctx.user.id)
    wanted = rest.strip()
    if wanted:
        jobs = [j for j in jobs if j.id == wanted]
    jobs = [j for j in jobs if j.state in (JobState.QUEUED, JobState.RUNNING)]
    if not jobs:
        await ctx.reply(ctx.t("cancel-nothing"))
        return
    for job in jobs:
        await admission.cancel_job(ctx.services, job)
    await ctx.reply(ctx.t("cancel-done", count=len(jobs)))
