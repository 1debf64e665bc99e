"""Bot admins (IMAGEBOT_ADMINS): /grant, /stats, /pause, /resume."""

from __future__ import annotations

from engine.errors import UserFacingError
from handlers.context import Ctx
from handlers.port import Incoming
from handlers.router import Router

router = Router()


def _admins_only(ctx: Ctx) -> None:
    if not ctx.admin:
        raise UserFacingError("error-admin-only")


@router.command("grant")
async def grant(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    _admins_only(ctx)
    parts = rest.split()
    if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        raise UserFacingError("error-grant-usage")
    target, amount = parts[0], int(parts[1])
    platform, _, ext = target.rpartition(":")
    storage = ctx.services.storage
    user = await storage.user(platform or ctx.chat.platform, ext)
    await storage.grant(user.id, amount, note=f"by {ctx.user_ref.platform}:{ctx.user_ref.user_id}")
    balance = await storage.balance(user.id)
    await ctx.reply(ctx.t("grant-done", user=target, amount=amount, credits=balance.credits))


@router.command("stats")
async def stats(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    _admins_only(ctx)
    s = await ctx.services.storage.stats()
    lines = [ctx.t("stats", users=s.get("users", 0), queued=s.get("queued", 0), running=s.get("running", 0),
                   done=s.get("done", 0), failed=s.get("failed", 0), cancelled=s.get("cancelled", 0),
                   waiting=ctx.services.scheduler.queued)]
    for lane, (waiting, running, capacity) in sorted(ctx.services.scheduler.lanes().items()):
        lines.append(ctx.t("stats-lane", lane=lane, waiting=waiting, running=running, capacity=capacity))
    if ctx.services.fleet is not None:
        lines.extend(_workers(ctx, ctx.services.fleet.describe()))
    await ctx.reply("\n".join(lines))


def _workers(ctx: Ctx, workers: list[dict]) -> list[str]:  # type: ignore[type-arg]
    """The GPU workers behind the queue (see engine/workers/fleet.py ``describe``)."""
    if not workers:
        return [ctx.t("stats-workers-none")]
    return [ctx.t("stats-worker", name=w["name"], state="up" if w["up"] else "stopped" if w["stopped"] else "lost",
                  backends=", ".join(w["backends"]), loaded=", ".join(w["loaded"]) or "-", done=w["jobs_done"],
                  busy=w["busy"], slots=w["slots"], seen=w["last_seen_s"]) for w in workers]


@router.command("pause")
async def pause(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    _admins_only(ctx)
    ctx.services.paused = True
    await ctx.reply(ctx.t("paused"))


@router.command("resume")
async def resume(ctx: Ctx, rest: str, incoming: Incoming) -> None:
    _admins_only(ctx)
    ctx.services.paused = False
    await ctx.reply(ctx.t("resumed"))
