"""What a user asks about their own account: /balance, /models, /cancel, /help."""

from __future__ import annotations

from handlers import admission
from handlers.context import Ctx
from handlers.port import Incoming
from handlers.router import Router
from storage.records import JobState

router = Router()


@router.command("help", "start")
async def help_(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    key = "help-console" if ctx.chat.platform == "console" else "help"
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


@router.command("models")
async def models(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    lines = [ctx.t("models-header")]
    for name in sorted(ctx.services.backends):
        found = await admission.models_of(ctx.services, name)
        if not found:
            continue
        shown = ", ".join(m.name for m in found[:15]) + (" …" if len(found) > 15 else "")
        lines.append(ctx.t("models-line", backend=name, models=shown))
    await ctx.reply("\n".join(lines))


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
