"""What every job-making command shares, ending in admission: the first half of the path.

    adapter -> handlers/app.py (router) -> handlers/imagine.py (or tools.py, presses.py)
      -> defaults, backend and model choice, uploads stored (off the event loop)
      -> enqueue(): storage.create_job = job row + quota reservation + admission to the
         scheduler's queue, in ONE transaction (a refused job is never written, never
         announced); only then the status message "Queued — position n" (the real place)
    (the scheduler then calls handlers.runner.JobRunner.execute: the compute stage)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine.backend import Backend, ModelInfo, preflight
from engine.errors import Problem, UserFacingError
from engine.jobs import GenerationBase, JobSpec
from engine.scheduler import QueueFull
from handlers.context import Ctx, Services
from handlers.flags import CONSOLE_ONLY_FLAGS, FlagError, ParsedPrompt
from handlers.images import load_upload, normalized_png
from handlers.presenting import cancel_buttons, status_queued
from handlers.requests import Defaults
from storage.records import ChatCoordinates, JobRecord
from storage.store import QuotaExceeded, TooManyQueued

log = logging.getLogger(__name__)


def space_key(space_id: str) -> str:
    """Where a space's (Discord guild's) defaults are kept among the chats' settings."""
    return f"space:{space_id}"


# --- defaults and choices ----------------------------------------------------------------

async def defaults(ctx: Ctx) -> Defaults:
    """The user's settings over the chat's defaults over the space's (guild's) defaults."""
    storage = ctx.services.storage
    if ctx.chat.is_private:
        return Defaults.merge({}, ctx.user.settings)
    space = {} if not ctx.chat.space_id else await storage.chat_settings(ctx.chat.platform, space_key(ctx.chat.space_id))
    chat = await storage.chat_settings(ctx.chat.platform, ctx.chat.chat_id)
    return Defaults.merge({**space, **chat}, ctx.user.settings)


def known_backend(services: Services, name: str) -> Backend:
    """The backend called ``name``, or a refusal that lists the backends there are."""
    backend = services.backends.get(name)
    if backend is None:
        raise UserFacingError("error-backend-unknown", backend=name, choices=", ".join(sorted(services.backends)))
    return backend


def generator_backends(services: Services) -> list[str]:
    """The backends that make pictures (every one but the tools), sorted by name."""
    return sorted(b for b in services.backends if b != services.config.tools_backend)


def backend_for(ctx: Ctx, flags: dict[str, Any], defaults: Defaults) -> str:
    name = flags.get("backend") or defaults.get("backend") or ctx.services.config.default_backend
    known_backend(ctx.services, name)
    return name


def tool_backend(ctx: Ctx, flags: dict[str, Any]) -> str:
    if "backend" in flags:
        return backend_for(ctx, flags, Defaults({}))
    return ctx.services.config.tools_backend


async def models_of(services: Services, backend_name: str) -> list[ModelInfo]:
    backend = services.backends.get(backend_name)
    if backend is None:
        return []
    try:
        return await backend.models()
    except UserFacingError:
        raise
    except Exception:
        log.warning("listing models of %s failed", backend_name, exc_info=True)
        return []


def default_model_of(services: Services, backend_name: str) -> str | None:
    """The model a backend uses when nobody chose one: its own, never another backend's."""
    backend = services.backends.get(backend_name)
    return str(getattr(backend, "default_model", "") or "") or None


async def model_for(ctx: Ctx, backend_name: str, flags: dict[str, Any], defaults: Defaults) -> ModelInfo:
    """The model asked for (flag, or the user's/chat's default for this backend), else the
    backend's own default model, else the first one it lists."""
    models = await models_of(ctx.services, backend_name)
    chosen_backend = defaults.get("backend", ctx.services.config.default_backend)
    asked = flags.get("model") or (defaults.get("model") if chosen_backend == backend_name else None)
    wanted = asked or default_model_of(ctx.services, backend_name)
    if wanted:
        for m in models:
            if m.name.lower() == str(wanted).lower():
                return m
        if asked and models:
            raise UserFacingError("error-model-unknown", model=wanted, backend=backend_name,
                                  choices=", ".join(m.name for m in models[:20]))
        if not models:
            return ModelInfo(name=str(wanted), backend=backend_name)
    return models[0] if models else ModelInfo(name="", backend=backend_name)


def refuse_local_paths(parsed: ParsedPrompt) -> None:
    # Only the console adapter turns --image/--mask/--face into attachments; anywhere else
    # they would name files on the server.
    for flag in CONSOLE_ONLY_FLAGS:
        if flag in parsed.flags:
            raise FlagError("error-flag-console-only", flag="--" + flag)


async def store_upload(ctx: Ctx, data: bytes, what: str, *, mode: str = "RGB") -> tuple[str, tuple[int, int]]:
    """Check, normalize and store an uploaded picture, off the event loop (a 4096² upload
    takes a second and a half to decode and re-encode)."""
    media = ctx.services.media

    def work() -> tuple[str, tuple[int, int]]:
        image = load_upload(data, what=what)
        return media.put(normalized_png(image, mode=mode)), image.size

    return await asyncio.to_thread(work)


async def chat_pool(ctx: Ctx) -> tuple[int, int] | None:
    """The shared daily pool that pays before members: the chat's own, else its space's."""
    if ctx.chat.is_private:
        return None
    storage = ctx.services.storage
    size = int((await storage.chat_settings(ctx.chat.platform, ctx.chat.chat_id)).get("pool") or 0)
    if size > 0:
        payer = await storage.user(f"{ctx.chat.platform}#chat", ctx.chat.chat_id, "chat pool")
        return payer.id, size
    if ctx.chat.space_id:
        size = int((await storage.chat_settings(ctx.chat.platform, space_key(ctx.chat.space_id))).get("pool") or 0)
        if size > 0:
            payer = await storage.user(f"{ctx.chat.platform}#space", ctx.chat.space_id, "server pool")
            return payer.id, size
    return None


async def _know_extras(backend: Backend, spec: JobSpec) -> None:
    """A job naming LoRAs, a VAE or embeddings: fetch (or take from cache) the backend's
    catalogues first, so the preflight below can refuse an unknown name before queueing."""
    extras = getattr(backend, "extras", None)
    used = spec.extras_used() if isinstance(spec, GenerationBase) else []
    if extras is None or not used:
        return
    try:
        await extras()
    except UserFacingError:
        raise
    except Exception:  # the run itself checks again before any paid call
        log.warning("catalogues of %s could not be fetched", getattr(backend, "name", "?"), exc_info=True)


# Flags a re-run may change (a reply with only flags, handlers/imagine.py), and the job field
# each one sets.
RERUN_FIELDS = {"seed": "seed", "no": "negative_prompt", "n": "n", "steps": "steps", "cfg": "cfg",
                "strength": "strength", "style": "style", "model": "model"}
# Which job fields a flag or a setting chooses: a vendor's note about a field is shown only
# when the user chose it ("paint4 ignores the seed" to someone who gave none is noise).
_CHOSEN_BY = {**RERUN_FIELDS, "negative": "negative_prompt", "size": "size", "ar": "size", "side": "size"}
_FIELD_NOTES = ("vendor-note-ignored", "vendor-note-mapped")


def chosen_fields(flags: dict[str, Any], defaults: Defaults) -> set[str]:
    """The job fields this user chose, by a flag now or by a saved setting."""
    names = set(flags) | {k for k, v in defaults.values.items() if v not in (None, "")}
    return {_CHOSEN_BY[n] for n in names if n in _CHOSEN_BY}


# --- admission -------------------------------------------------------------------------------

async def enqueue(ctx: Ctx, spec: JobSpec, backend_name: str, *, parent: str | None = None,
                  notes: list[Problem] | None = None, chosen: set[str] | None = None) -> JobRecord:
    """Write the job with its reservation and admit it to the queue in one step, then say so.

    ``chosen``: the fields the user chose (chosen_fields); a backend's notes about other
    fields are not shown. A job made by a button press answers the press ("press-queued")
    once the job is durable and before the status message, which may wait for the chat's
    rate limit; a refusal before that (quota, say) comes back as an alert on the press."""
    s = ctx.services
    if s.paused and not ctx.admin:
        raise UserFacingError("error-paused")
    backend = known_backend(s, backend_name)
    if not backend.supports(spec):
        raise UserFacingError("error-backend-cannot", backend=backend_name, kind=spec.kind)
    await _know_extras(backend, spec)
    # Vendors map what they cannot do (a size, an image count) to their nearest valid value and
    # say so, or refuse before any call; the notes end up in the result's caption.
    notes = list(notes or []) + [n for n in preflight(backend, spec)
                                 if n.key not in _FIELD_NOTES or n.args.get("what") in (chosen or set())]
    cost = 0 if ctx.admin else s.config.cost_of(backend_name)
    coords = ChatCoordinates(
        platform=ctx.chat.platform, chat_id=ctx.chat.chat_id, thread_id=ctx.chat.thread_id,
        is_private=ctx.chat.is_private, request_message_id=ctx.message_id,
        requester_mention="" if ctx.chat.is_private else ctx.user_ref.mention, space_id=ctx.chat.space_id,
    )
    pool = await chat_pool(ctx)
    place = 0

    async def admit(job_id: str) -> None:
        nonlocal place
        place = s.scheduler.admit(job_id, str(ctx.user.id), backend_name)  # QueueFull rolls the job back
        s.statuses.posting(job_id)

    try:
        job = await s.storage.create_job(
            user_id=ctx.user.id, spec=spec, backend=backend_name, chat=coords, language=ctx.t.lang,
            cost_per_image=cost, parent_job=parent, notes=[{"key": n.key, "args": n.args} for n in notes],
            max_queued_per_user=None if ctx.admin else s.config.max_queued_per_user, pool=pool, admit=admit,
        )
    except QuotaExceeded as e:
        raise UserFacingError("error-quota", needed=e.needed, available=e.balance.available,
                              free=e.balance.free_left_today, credits=e.balance.credits,
                              daily=s.storage.daily_free) from None
    except TooManyQueued as e:
        raise UserFacingError("error-too-many-queued", count=e.open_jobs) from None
    except QueueFull:
        raise UserFacingError("error-queue-full") from None
    ctx.job_id = job.id
    status = None
    try:
        if ctx.press is not None:
            await ctx.answer(ctx.t("press-queued"))
        text = "\n".join([status_queued(ctx.t, place)] + [ctx.t(n.key, **n.args) for n in notes])
        status = await ctx.messenger.send_status(ctx.chat, text, reply_to=ctx.message_id,
                                                 buttons=cancel_buttons(ctx.t, job.id))
        ctx.answered = True
    finally:
        await s.statuses.posted(job.id, status)
    return job


async def cancel_job(services: Services, job: JobRecord) -> None:
    """Take a job out of the queue, or stop it at its next step if it is running."""
    if await services.scheduler.remove(job.id):
        await services.runner.cancel_queued(job)
    else:
        services.runner.cancel_running(job.id)
