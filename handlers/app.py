"""The product: every command and button, written once for every platform.

The first half of the ``/imagine`` path lives here:

    adapter -> App.handle_message(Incoming) -> parse flags -> assemble + validate JobSpec
      -> storage.create_job (job row + quota reservation, one transaction)
      -> status message "queued #n" -> scheduler.submit
    (the scheduler then calls handlers.runner.JobRunner.execute: the second half)

Nothing here imports a chat library; platforms reach us through ``handlers.port``.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from engine.backend import Backend, ModelInfo
from engine.errors import Problem, UserFacingError
from engine.jobs import CONTROL_TYPES, FaceSwap, GenerationBase, Img2Img, JobSpec, Upscale
from engine.scheduler import QueueFull, Scheduler
from handlers.flags import FlagError, ParsedPrompt, parse_prompt, split_command
from handlers.images import load_upload, normalized_png
from handlers.port import Button, ChatRef, Incoming, MessageRef, Messenger, Press, UserRef
from handlers.presenting import cancel_buttons, status_queued
from handlers.requests import Defaults, InvalidRequest, build_generation, parse_aspect, validate, with_changes
from handlers.runner import JobRunner
from locales import LANGUAGES, Translator, normalize_language
from storage.media import MediaStore
from storage.records import ChatCoordinates, JobRecord, JobState, User
from storage.store import QuotaExceeded, Storage, TooManyQueued

log = logging.getLogger(__name__)

# Commands shown in menus, in order. Admin commands work but are not advertised.
MENU_COMMANDS = ("imagine", "swap", "upscale", "settings", "balance", "models", "lang", "cancel", "help")
ADMIN_COMMANDS = ("grant", "stats", "pause", "resume")
ASPECTS = ("1:1", "3:2", "2:3", "16:9", "9:16")
USER_SETTINGS = ("model", "backend", "ar", "steps", "n", "cfg", "side", "originals", "negative")


@dataclass
class AppConfig:
    default_backend: str = "local"
    default_model: str = "sd-turbo"
    tools_backend: str = "tools"
    default_language: str = "en"  # for users whose client tells no language
    max_queued_per_user: int = 3
    cost_of: Callable[[str], int] = lambda backend: 1
    is_admin: Callable[[str, str], bool] = lambda platform, user_id: False


@dataclass
class _Ctx:
    """One incoming event with everything a handler needs about its sender."""

    messenger: Messenger
    chat: ChatRef
    user_ref: UserRef
    user: User
    t: Translator
    message_id: str | None = None
    admin: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    async def reply(self, text: str, buttons: list[list[Button]] | None = None) -> MessageRef:
        return await self.messenger.send_text(self.chat, text, reply_to=self.message_id, buttons=buttons)


class App:
    def __init__(
        self,
        *,
        storage: Storage,
        media: MediaStore,
        scheduler: Scheduler,
        runner: JobRunner,
        backends: dict[str, Backend],
        config: AppConfig,
    ) -> None:
        self.storage = storage
        self.media = media
        self.scheduler = scheduler
        self.runner = runner
        self.backends = backends
        self.config = config
        self.paused = False
        self._commands: dict[str, Callable[[_Ctx, str, Incoming], Awaitable[None]]] = {
            "start": self._help,
            "help": self._help,
            "imagine": self._imagine,
            "swap": self._swap,
            "upscale": self._upscale,
            "settings": self._settings,
            "balance": self._balance,
            "models": self._models,
            "lang": self._lang,
            "cancel": self._cancel,
            "grant": self._grant,
            "stats": self._stats,
            "pause": self._pause,
            "resume": self._resume,
        }

    # --- wiring -------------------------------------------------------------------

    def attach(self, messenger: Messenger) -> None:
        """Register a platform's messenger so jobs (also recovered ones) can reach its chats."""
        self.runner.messengers[messenger.platform] = messenger

    def commands(self, lang: str | None) -> list[tuple[str, str]]:
        t = Translator(lang)
        return [(name, t(f"cmd-{name}")) for name in MENU_COMMANDS]

    async def _context(self, messenger: Messenger, chat: ChatRef, user_ref: UserRef,
                       message_id: str | None, chat_admin: bool = False) -> _Ctx:
        user = await self.storage.user(user_ref.platform, user_ref.user_id, user_ref.display_name)
        lang = user.language or normalize_language(user_ref.language_hint or self.config.default_language)
        admin = self.config.is_admin(user_ref.platform, user_ref.user_id)
        return _Ctx(messenger, chat, user_ref, user, Translator(lang), message_id, admin,
                    {"chat_admin": chat_admin or admin or chat.is_private})

    # --- inbound: messages -----------------------------------------------------------

    async def handle_message(self, incoming: Incoming, messenger: Messenger) -> None:
        command, rest = split_command(incoming.text)
        if command is None:
            # Plain text in a private chat is a prompt; in groups the bot only answers commands.
            if not incoming.chat.is_private or not rest:
                return
            command = "imagine"
        handler = self._commands.get(command)
        if handler is None:
            return
        ctx = await self._context(messenger, incoming.chat, incoming.user, incoming.message_id,
                                  incoming.sender_is_chat_admin)
        try:
            await handler(ctx, rest, incoming)
        except InvalidRequest as e:
            await ctx.reply("\n".join(ctx.t(p.key, **p.args) for p in e.problems))
        except UserFacingError as e:
            await ctx.reply(ctx.t(e.key, **e.args_))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("command /%s failed", command)
            await ctx.reply(ctx.t("error-internal"))

    async def _help(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        await ctx.reply(ctx.t("help", daily=self.storage.daily_free))

    # /imagine -------------------------------------------------------------------------

    async def _imagine(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        parsed = parse_prompt(rest)
        self._refuse_local_paths(parsed)
        replied = await self._replied_job(incoming)
        if replied is not None and not parsed.prompt and not incoming.images:
            # A reply to one of our results with only flags: run it again with those changes.
            await self._rerun_with_flags(ctx, incoming, replied, parsed)
            return
        if not parsed.prompt:
            raise UserFacingError("error-prompt-empty")
        init = incoming.images[0] if incoming.images else (incoming.reply_images[0] if incoming.reply_images else None)
        defaults = await self._defaults(ctx)
        backend_name = self._backend_for(parsed.flags, defaults)
        model = await self._model_for(backend_name, parsed.flags, defaults, ctx)
        images: dict[str, str] = {}
        image_size: tuple[int, int] | None = None
        kind = "txt2img"
        if "control" in parsed.flags:
            if parsed.flags["control"] not in CONTROL_TYPES:
                raise UserFacingError("error-control-type", value=parsed.flags["control"],
                                      choices=", ".join(CONTROL_TYPES))
            if init is None:
                raise UserFacingError("error-needs-image", command="/imagine --control")
            kind = "controlnet"
            images["control_image"], image_size = self._store_upload(init, "image")
        elif init is not None:
            kind = "img2img"
            images["init_image"], image_size = self._store_upload(init, "image")
            if incoming.mask is not None:
                kind = "inpaint"
                images["mask_image"], _ = self._store_upload(incoming.mask, "mask", mode="L")
        elif incoming.mask is not None:
            raise UserFacingError("error-needs-image", command="--mask")
        spec = build_generation(prompt=parsed.prompt, flags=parsed.flags, defaults=defaults, model=model,
                                kind=kind, images=images, image_size=image_size)
        await self.enqueue(ctx, spec, backend_name)

    async def _rerun_with_flags(self, ctx: _Ctx, incoming: Incoming, job: JobRecord, parsed: ParsedPrompt) -> None:
        if not isinstance(job.spec, GenerationBase):
            raise UserFacingError("error-rerun-not-generation")
        changes: dict[str, Any] = {}
        mapping = {"seed": "seed", "no": "negative_prompt", "n": "n", "steps": "steps", "cfg": "cfg",
                   "strength": "strength", "style": "style", "model": "model"}
        for flag, field_name in mapping.items():
            if flag in parsed.flags:
                changes[field_name] = parsed.flags[flag]
        if "seed" not in changes:
            changes["seed"] = _fresh_seed()
        if "ar" in parsed.flags or "size" in parsed.flags:
            from handlers.requests import size_for_aspect

            side = int((job.spec.width * job.spec.height) ** 0.5)
            w, h = parsed.flags.get("size") or size_for_aspect(parsed.flags["ar"], side)
            changes.update(width=w, height=h)
        backend = parsed.flags.get("backend", job.backend)
        spec = with_changes(job.spec, **changes)
        await self.enqueue(ctx, spec, backend, parent=job.id)

    # /swap and /upscale --------------------------------------------------------------

    async def _swap(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        parsed = parse_prompt(rest)
        self._refuse_local_paths(parsed)
        # The attached photo gives the face; the picture replied to receives it.
        # With two attached photos: the first is the face, the second the picture.
        pictures = list(incoming.images) + list(incoming.reply_images)
        if len(pictures) < 2:
            raise UserFacingError("error-swap-needs-two")
        face_key, _ = self._store_upload(pictures[0], "face")
        target_key, _ = self._store_upload(pictures[1], "image")
        backend = self._tool_backend(parsed.flags, FaceSwap(face_image=face_key, target_image=target_key))
        await self.enqueue(ctx, FaceSwap(face_image=face_key, target_image=target_key), backend)

    async def _upscale(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        parsed = parse_prompt(rest)
        self._refuse_local_paths(parsed)
        pictures = list(incoming.images) + list(incoming.reply_images)
        if not pictures:
            raise UserFacingError("error-needs-image", command="/upscale")
        key, _ = self._store_upload(pictures[0], "image")
        spec = validate({"kind": "upscale", "image": key, "scale": parsed.flags.get("scale", 2)})
        await self.enqueue(ctx, spec, self._tool_backend(parsed.flags, spec))

    # --- the shared enqueue step ---------------------------------------------------------

    async def enqueue(self, ctx: _Ctx, spec: JobSpec, backend_name: str, *, parent: str | None = None,
                      notes: list[Problem] | None = None,
                      on_accepted: Callable[[], Awaitable[None]] | None = None) -> JobRecord | None:
        if self.paused and not ctx.admin:
            raise UserFacingError("error-paused")
        backend = self.backends.get(backend_name)
        if backend is None:
            raise UserFacingError("error-backend-unknown", backend=backend_name,
                                  choices=", ".join(sorted(self.backends)))
        if not backend.supports(spec):
            raise UserFacingError("error-backend-cannot", backend=backend_name, kind=spec.kind)
        notes = list(notes or []) + _preflight(backend, spec)
        cost = 0 if ctx.admin else self.config.cost_of(backend_name)
        coords = ChatCoordinates(
            platform=ctx.chat.platform, chat_id=ctx.chat.chat_id, thread_id=ctx.chat.thread_id,
            is_private=ctx.chat.is_private, request_message_id=ctx.message_id,
            requester_mention="" if ctx.chat.is_private else ctx.user_ref.mention,
        )
        pool = await self._chat_pool(ctx)
        try:
            job = await self.storage.create_job(
                user_id=ctx.user.id, spec=spec, backend=backend_name, chat=coords, language=ctx.t.lang,
                cost_per_image=cost, parent_job=parent,
                notes=[{"key": n.key, "args": n.args} for n in notes],
                max_queued_per_user=None if ctx.admin else self.config.max_queued_per_user,
                pool=pool,
            )
        except QuotaExceeded as e:
            raise UserFacingError("error-quota", needed=e.needed, available=e.balance.available,
                                  daily=self.storage.daily_free) from None
        except TooManyQueued as e:
            raise UserFacingError("error-too-many-queued", count=e.open_jobs) from None
        if on_accepted is not None:
            await on_accepted()  # e.g. answer the button press now, before the chat's rate limit
        # The job is durable now; only then does the user hear that it is queued. The status
        # message id is stored before the job can start, so every progress edit finds it.
        if self.scheduler.queued >= self.scheduler.max_total:
            await self._refuse_queue_full(job)
        position = self.scheduler.estimate_position(str(ctx.user.id), backend_name)
        text = "\n".join([status_queued(ctx.t, position)] + [ctx.t(n.key, **n.args) for n in notes])
        status = await ctx.messenger.send_text(ctx.chat, text, reply_to=ctx.message_id,
                                               buttons=cancel_buttons(ctx.t, job.id))
        await self.storage.set_status_message(job.id, status.message_id)
        try:
            await self.scheduler.submit(job.id, str(ctx.user.id), backend_name)
        except QueueFull:
            await self._refuse_queue_full(job)
        return job

    async def _chat_pool(self, ctx: _Ctx) -> tuple[int, int] | None:
        """A group's shared daily pool, set by its admins with /settings chat pool N."""
        if ctx.chat.is_private:
            return None
        size = int((await self.storage.chat_settings(ctx.chat.platform, ctx.chat.chat_id)).get("pool") or 0)
        if size <= 0:
            return None
        payer = await self.storage.user(f"{ctx.chat.platform}#chat", ctx.chat.chat_id, "chat pool")
        return payer.id, size

    async def _refuse_queue_full(self, job: JobRecord) -> None:
        await self.storage.refund(job.id)
        await self.storage.set_state(job.id, JobState.FAILED, error_key="error-queue-full")
        raise UserFacingError("error-queue-full")

    # --- settings and friends -------------------------------------------------------

    async def _defaults(self, ctx: _Ctx) -> Defaults:
        chat = {} if ctx.chat.is_private else await self.storage.chat_settings(ctx.chat.platform, ctx.chat.chat_id)
        return Defaults.merge(chat, ctx.user.settings)

    def _backend_for(self, flags: dict[str, Any], defaults: Defaults) -> str:
        name = flags.get("backend") or defaults.get("backend") or self.config.default_backend
        if name not in self.backends:
            raise UserFacingError("error-backend-unknown", backend=name, choices=", ".join(sorted(self.backends)))
        return name

    def _tool_backend(self, flags: dict[str, Any], spec: JobSpec) -> str:
        if "backend" in flags:
            return self._backend_for(flags, Defaults({}))
        return self.config.tools_backend

    async def _models_of(self, backend_name: str) -> list[ModelInfo]:
        backend = self.backends.get(backend_name)
        if backend is None:
            return []
        try:
            return await backend.models()
        except UserFacingError:
            raise
        except Exception:
            log.warning("listing models of %s failed", backend_name, exc_info=True)
            return []

    async def _model_for(self, backend_name: str, flags: dict[str, Any], defaults: Defaults, ctx: _Ctx) -> ModelInfo:
        models = await self._models_of(backend_name)
        wanted = flags.get("model") or (defaults.get("model") if defaults.get("backend", backend_name) == backend_name
                                        else None)
        if not wanted:
            wanted = self.config.default_model if backend_name == self.config.default_backend else None
        if wanted:
            for m in models:
                if m.name.lower() == str(wanted).lower():
                    return m
            if models:
                raise UserFacingError("error-model-unknown", model=wanted, backend=backend_name,
                                      choices=", ".join(m.name for m in models[:20]))
            return ModelInfo(name=str(wanted), backend=backend_name)
        return models[0] if models else ModelInfo(name="", backend=backend_name)

    def _store_upload(self, data: bytes, what: str, *, mode: str = "RGB") -> tuple[str, tuple[int, int]]:
        image = load_upload(data, what=what)
        return self.media.put(normalized_png(image, mode=mode)), image.size

    def _refuse_local_paths(self, parsed: ParsedPrompt) -> None:
        # Only the console adapter turns --image/--mask/--face into attachments; anywhere else
        # they would name files on the server.
        for flag in ("image", "mask", "face"):
            if flag in parsed.flags:
                raise FlagError("error-flag-console-only", flag="--" + flag)

    async def _replied_job(self, incoming: Incoming) -> JobRecord | None:
        if not incoming.reply_to_message_id:
            return None
        return await self.storage.job_for_message(incoming.chat.platform, incoming.chat.chat_id,
                                                  incoming.reply_to_message_id)

    async def _settings(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        words = rest.split()
        group_scope = not ctx.chat.is_private and words[:1] == ["chat"]
        if group_scope:
            if not ctx.extra["chat_admin"]:
                raise UserFacingError("error-chat-admin-only")
            words = words[1:]
        if words and words[0] == "reset":
            if group_scope:
                await self.storage.update_chat_settings(ctx.chat.platform, ctx.chat.chat_id,
                                                        {k: None for k in USER_SETTINGS})
            else:
                await self.storage.update_user_settings(ctx.user.id, {k: None for k in USER_SETTINGS})
            ctx.user = await self.storage.user(ctx.user.platform, ctx.user.ext_id)
        elif len(words) >= 2:
            key, value = words[0].lower(), " ".join(words[1:])
            if key == "pool" and not group_scope:
                raise UserFacingError("error-chat-admin-only")
            change = await self._check_setting(key, value, ctx)
            if key == "lang":
                await self.storage.set_language(ctx.user.id, change)
                ctx.t = Translator(change)
            elif group_scope:
                await self.storage.update_chat_settings(ctx.chat.platform, ctx.chat.chat_id, {key: change})
            else:
                await self.storage.update_user_settings(ctx.user.id, {key: change})
            ctx.user = await self.storage.user(ctx.user.platform, ctx.user.ext_id)
        elif words:
            raise UserFacingError("error-settings-usage")
        await ctx.reply(await self._settings_text(ctx), buttons=self._settings_buttons(ctx))

    async def _check_setting(self, key: str, value: str, ctx: _Ctx) -> Any:
        if key == "lang":
            lang = normalize_language(value)
            if value.lower() not in {c.lower() for c in LANGUAGES} and lang == "en" and not value.lower().startswith("en"):
                raise UserFacingError("error-setting-value", key=key, value=value, choices=", ".join(LANGUAGES))
            return lang
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
            if value not in self.backends:
                raise UserFacingError("error-backend-unknown", backend=value, choices=", ".join(sorted(self.backends)))
            return value
        if key == "model":
            defaults = await self._defaults(ctx)
            backend = defaults.get("backend") or self.config.default_backend
            return (await self._model_for(backend, {"model": value}, defaults, ctx)).name
        if key == "pool":
            if not value.isdigit() or int(value) > 100_000:
                raise UserFacingError("error-setting-value", key=key, value=value, choices="0 … 100000")
            return int(value)
        if key == "originals":
            return value.lower() in ("on", "yes", "true", "1")
        if key == "negative":
            return value[:500]
        raise UserFacingError("error-setting-unknown", key=key, choices=", ".join(USER_SETTINGS + ("lang",)))

    async def _settings_text(self, ctx: _Ctx) -> str:
        defaults = await self._defaults(ctx)
        backend = defaults.get("backend") or self.config.default_backend
        model = defaults.get("model") or (self.config.default_model if backend == self.config.default_backend else "")
        return ctx.t(
            "settings-show",
            backend=backend, model=model or "-", ar=defaults.get("ar") or "1:1",
            steps=defaults.get("steps") or "auto", n=defaults.get("n") or 1,
            lang=LANGUAGES.get(ctx.t.lang, ctx.t.lang),
            originals=ctx.t("yes") if defaults.get("originals") else ctx.t("no"),
        )

    def _settings_buttons(self, ctx: _Ctx) -> list[list[Button]]:
        rows = [
            [Button(a, f"s:ar:{a}") for a in ASPECTS],
            [Button(f"n={n}", f"s:n:{n}") for n in (1, 2, 4)],
            [Button(name, f"s:lang:{code}") for code, name in LANGUAGES.items()],
        ]
        backends = sorted(b for b in self.backends if b != self.config.tools_backend)
        if len(backends) > 1:
            rows.append([Button(b, f"s:backend:{b}") for b in backends[:5]])
        return rows

    async def _balance(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        b = await self.storage.balance(ctx.user.id)
        open_jobs = await self.storage.open_jobs_of(ctx.user.id)
        text = ctx.t("balance", free=b.free_left_today, daily=b.daily_free, credits=b.credits,
                     reserved=b.reserved, jobs=len(open_jobs), admin="yes" if ctx.admin else "no")
        pool = await self._chat_pool(ctx)
        if pool is not None:
            shared = await self.storage.balance(pool[0], daily_free=pool[1])
            text += "\n" + ctx.t("balance-chat-pool", free=shared.free_left_today, daily=pool[1])
        await ctx.reply(text)

    async def _models(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        lines = [ctx.t("models-header")]
        for name in sorted(self.backends):
            models = await self._models_of(name)
            if not models:
                continue
            shown = ", ".join(m.name for m in models[:15]) + (" …" if len(models) > 15 else "")
            lines.append(ctx.t("models-line", backend=name, models=shown))
        await ctx.reply("\n".join(lines))

    async def _lang(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        if rest.strip():
            lang = await self._check_setting("lang", rest.strip(), ctx)
            await self.storage.set_language(ctx.user.id, lang)
            await ctx.reply(Translator(lang)("lang-set", lang=LANGUAGES[lang]))
            return
        buttons = [[Button(name, f"s:lang:{code}") for code, name in LANGUAGES.items()]]
        await ctx.reply(ctx.t("lang-choose"), buttons=buttons)

    async def _cancel(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        jobs = await self.storage.open_jobs_of(ctx.user.id)
        wanted = rest.strip()
        if wanted:
            jobs = [j for j in jobs if j.id == wanted]
        jobs = [j for j in jobs if j.state in (JobState.QUEUED, JobState.RUNNING)]
        if not jobs:
            await ctx.reply(ctx.t("cancel-nothing"))
            return
        for job in jobs:
            await self.cancel_job(job)
        await ctx.reply(ctx.t("cancel-done", count=len(jobs)))

    async def cancel_job(self, job: JobRecord) -> None:
        if await self.scheduler.remove(job.id):
            await self.runner.cancel_queued(job)
        else:
            self.runner.cancel_running(job.id)

    # --- admin ----------------------------------------------------------------------------

    async def _grant(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        if not ctx.admin:
            raise UserFacingError("error-admin-only")
        parts = rest.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UserFacingError("error-grant-usage")
        target, amount = parts[0], int(parts[1])
        platform, _, ext = target.rpartition(":")
        user = await self.storage.user(platform or ctx.chat.platform, ext)
        await self.storage.grant(user.id, amount, note=f"by {ctx.user_ref.platform}:{ctx.user_ref.user_id}")
        balance = await self.storage.balance(user.id)
        await ctx.reply(ctx.t("grant-done", user=target, amount=amount, credits=balance.credits))

    async def _stats(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        if not ctx.admin:
            raise UserFacingError("error-admin-only")
        s = await self.storage.stats()
        await ctx.reply(ctx.t("stats", users=s.get("users", 0), queued=s.get("queued", 0),
                              running=s.get("running", 0), done=s.get("done", 0), failed=s.get("failed", 0),
                              cancelled=s.get("cancelled", 0), waiting=self.scheduler.queued))

    async def _pause(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        if not ctx.admin:
            raise UserFacingError("error-admin-only")
        self.paused = True
        await ctx.reply(ctx.t("paused"))

    async def _resume(self, ctx: _Ctx, rest: str, incoming: Incoming) -> None:
        if not ctx.admin:
            raise UserFacingError("error-admin-only")
        self.paused = False
        await ctx.reply(ctx.t("resumed"))

    # --- inbound: button presses -------------------------------------------------------------

    async def handle_press(self, press: Press, messenger: Messenger) -> None:
        ctx = await self._context(messenger, press.chat, press.user, None)
        kind, _, payload = press.data.partition(":")
        try:
            if kind == "s":
                await self._press_setting(ctx, press, payload)
            elif kind in ("u", "v", "r", "x"):
                await self._press_job(ctx, press, kind, payload)
            else:
                await messenger.answer_press(press, ctx.t("press-invalid"), alert=True)
        except UserFacingError as e:
            await messenger.answer_press(press, ctx.t(e.key, **e.args_), alert=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("button %r failed", press.data[:16])
            await messenger.answer_press(press, ctx.t("error-internal"), alert=True)

    async def _press_setting(self, ctx: _Ctx, press: Press, payload: str) -> None:
        key, _, value = payload.partition(":")
        if key not in ("ar", "n", "lang", "backend", "model"):
            await ctx.messenger.answer_press(press, ctx.t("press-invalid"), alert=True)
            return
        change = await self._check_setting(key, value, ctx)
        if key == "lang":
            await self.storage.set_language(ctx.user.id, change)
            ctx.t = Translator(change)
        else:
            await self.storage.update_user_settings(ctx.user.id, {key: change})
        ctx.user = await self.storage.user(ctx.user.platform, ctx.user.ext_id)
        await ctx.messenger.answer_press(press, ctx.t("settings-saved"))
        try:
            await ctx.messenger.edit_text(MessageRef(press.chat, press.message_id), await self._settings_text(ctx),
                                          buttons=self._settings_buttons(ctx))
        except Exception:
            log.debug("settings message not edited", exc_info=True)

    async def _press_job(self, ctx: _Ctx, press: Press, kind: str, payload: str) -> None:
        job_id, _, index_text = payload.partition(":")
        job = await self.storage.job(job_id) if job_id else None
        # A press must name a job of this very chat; anything else is stale or forged.
        if job is None or job.chat.platform != press.chat.platform or job.chat.chat_id != press.chat.chat_id:
            await ctx.messenger.answer_press(press, ctx.t("press-invalid"), alert=True)
            return
        if kind == "x":
            if job.user_id != ctx.user.id:
                await ctx.messenger.answer_press(press, ctx.t("press-not-yours"), alert=True)
                return
            if job.state.finished or job.state is JobState.DELIVERING:
                await ctx.messenger.answer_press(press, ctx.t("cancel-too-late"))
                return
            await self.cancel_job(job)
            await ctx.messenger.answer_press(press, ctx.t("cancel-done", count=1))
            return
        # DELIVERING too: a quick press can land while the job is still being wrapped up.
        if job.state not in (JobState.DONE, JobState.DELIVERING) or not job.results \
                or not isinstance(job.spec, GenerationBase):
            await ctx.messenger.answer_press(press, ctx.t("press-invalid"), alert=True)
            return
        # Each press below is a new job on the presser's own quota. The press is answered once
        # the job is written (so a refusal, e.g. quota, still comes back as an alert on the
        # press) but before the status message, which may wait for the chat's rate limit.
        async def accepted() -> None:
            await ctx.messenger.answer_press(press, ctx.t("press-queued"))

        if kind == "r":
            spec = with_changes(job.spec, seed=_fresh_seed())
            await self.enqueue(ctx, spec, job.backend, parent=job.id, on_accepted=accepted)
            return
        if not index_text.isdigit() or int(index_text) >= len(job.results) or not job.results[int(index_text)].media_key:
            await ctx.messenger.answer_press(press, ctx.t("press-invalid"), alert=True)
            return
        source = job.results[int(index_text)].media_key
        if kind == "u":
            spec2: JobSpec = Upscale(image=source, scale=2)
            await self.enqueue(ctx, spec2, self.config.tools_backend, parent=job.id, on_accepted=accepted)
        else:  # vary: a light img2img of the chosen picture with a new seed, like Midjourney's V
            with Image.open(io.BytesIO(self.media.read(source))) as im:
                size = im.size
            data = job.spec.model_dump()
            data.update(kind="img2img", init_image=source, strength=0.55, seed=_fresh_seed(), n=job.spec.n,
                        width=size[0] // 8 * 8, height=size[1] // 8 * 8)
            for extra in ("mask_image", "control_image", "control_type", "control_scale"):
                data.pop(extra, None)
            spec3 = Img2Img.model_validate(data)
            backend = job.backend if self.backends[job.backend].supports(spec3) else self.config.default_backend
            await self.enqueue(ctx, spec3, backend, parent=job.id, on_accepted=accepted)


def _fresh_seed() -> int:
    import secrets

    from engine.jobs import MAX_SEED

    return secrets.randbelow(MAX_SEED + 1)


def _preflight(backend: Backend, spec: JobSpec) -> list[Problem]:
    """Ask a backend that can tell in advance whether it can honour ``spec`` as asked.

    Vendors map what they cannot do (a size, an image count) to their nearest valid value and
    say so, or refuse before any call; the notes end up in the result's caption.
    """
    check = getattr(backend, "check", None)
    if check is None:
        return []
    return list(check(spec))
