"""The product's front door: every command and button, for every platform, through one router.

    adapter -> App.handle_message(Incoming) / App.handle_press(Press)
      -> the sender's context (user, language, rights)
      -> the feature that registered the command or button:
           imagine.py (imagine, rerun with flags) · tools.py (swap, upscale)
           pictures.py (a bare picture: what to do with it)
           settings.py (settings, lang) · account.py (balance, models, cancel, help)
           admin.py (grant, stats, pause, resume) · presses.py (U/V/🔄/✖ buttons)
      -> errors meant for the user are rendered here, and only here
    and returns an ``Outcome`` (answered? which job was queued?) to the adapter.

Nothing here imports a chat library; platforms reach us through ``handlers.port``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from engine.errors import UserFacingError
from handlers import account, admin, imagine, pictures, presses, settings, tools
from handlers.context import AppConfig, Ctx, Services
from handlers.flags import split_command, starts_with_flag
from handlers.port import ChatRef, Incoming, Messenger, Outcome, Press, UserRef
from handlers.requests import InvalidRequest
from handlers.router import Router
from handlers.suggest import Suggestions
from locales import Translator, normalize_language

log = logging.getLogger(__name__)

__all__ = ["App", "AppConfig", "MENU_COMMANDS", "ADMIN_COMMANDS"]

# Commands shown in menus, in order. Admin commands work but are not advertised.
MENU_COMMANDS = ("imagine", "swap", "upscale", "settings", "balance", "models", "lang", "cancel", "help")
ADMIN_COMMANDS = ("grant", "stats", "pause", "resume")


class App:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.router = Router().include(imagine.router, tools.router, pictures.router, settings.router,
                                       account.router, admin.router, presses.router)
        # What a user may pick while typing (Discord autocomplete), always answered from a cache.
        self.suggestions = Suggestions(services)

    # --- wiring -------------------------------------------------------------------

    def attach(self, messenger: Messenger) -> None:
        """Register a platform's messenger so jobs (also recovered ones) can reach its chats."""
        self.services.statuses.messengers[messenger.platform] = messenger

    def commands(self, lang: str | None, *, admin: bool = False) -> list[tuple[str, str]]:
        """(name, description) of the menu commands (and the admin ones) in ``lang``."""
        t = Translator(lang)
        names = MENU_COMMANDS + (ADMIN_COMMANDS if admin else ())
        return [(name, t(f"cmd-{name}")) for name in names]

    @property
    def paused(self) -> bool:
        return self.services.paused

    # --- inbound ---------------------------------------------------------------------

    async def handle_message(self, incoming: Incoming, messenger: Messenger) -> Outcome:
        command, rest = split_command(incoming.text)
        if command is None:
            command = self._implied_command(incoming, rest)
            if command is None:
                return Outcome()
        handler = self.router.commands.get(command)
        if handler is None:
            return Outcome()
        ctx = await self._render_errors(
            messenger, incoming.chat, incoming.user, incoming.message_id, None,
            lambda ctx: handler(ctx, rest, incoming), what=f"command /{command}",
            chat_admin=incoming.sender_is_chat_admin, space_admin=incoming.sender_is_space_admin)
        return Outcome(answered=ctx.answered, job_id=ctx.job_id)

    async def handle_press(self, press: Press, messenger: Messenger) -> Outcome:
        kind, _, payload = press.data.partition(":")
        handler = self.router.presses.get(kind)

        async def run(ctx: Ctx) -> None:
            if handler is None:
                raise UserFacingError("press-invalid")
            await handler(ctx, kind, payload)

        ctx = await self._render_errors(messenger, press.chat, press.user, None, press, run,
                                        what=f"button {press.data[:16]!r}")
        return Outcome(answered=ctx.answered, job_id=ctx.job_id)

    @staticmethod
    def _implied_command(incoming: Incoming, rest: str) -> str | None:
        """What a message without a command means: plain text in a private chat is a prompt;
        only flags in reply to one of our results re-run it (groups too); a bare picture in a
        private chat asks what to do with it. Other chatter in groups is not for us."""
        flags_only = starts_with_flag(rest)
        if incoming.reply_to_message_id and flags_only:
            return "imagine"
        if not incoming.chat.is_private:
            return None
        if rest:
            return "imagine"
        return "picture" if incoming.images else None

    # --- the one place user-facing errors are rendered -----------------------------------

    async def _render_errors(self, messenger: Messenger, chat: ChatRef, user_ref: UserRef, message_id: str | None,
                             press: Press | None, run, *, what: str,  # type: ignore[no-untyped-def]
                             chat_admin: bool = False, space_admin: bool = False) -> Ctx:
        ctx = Ctx(self.services, messenger, chat, user_ref, user=None, t=Translator(  # type: ignore[arg-type]
            normalize_language(user_ref.language_hint or self.services.config.default_language)),
            message_id=message_id, press=press)
        try:
            await self._know_sender(ctx, chat_admin=chat_admin, space_admin=space_admin)
            await run(ctx)
        except InvalidRequest as e:
            await self._tell(ctx, "\n".join(ctx.t(p.key, **p.args) for p in e.problems))
        except UserFacingError as e:
            await self._tell(ctx, ctx.t(e.key, **e.args_))
        except asyncio.CancelledError:
            raise
        except sqlite3.OperationalError:
            # Another process held the database longer than the busy timeout: say sorry, lose nothing.
            log.warning("%s: the database stayed busy", what, exc_info=True)
            await self._tell(ctx, ctx.t("error-storage-busy"))
        except Exception:
            log.exception("%s failed", what)
            await self._tell(ctx, ctx.t("error-internal"))
        return ctx

    async def _know_sender(self, ctx: Ctx, *, chat_admin: bool, space_admin: bool) -> None:
        config = self.services.config
        u = ctx.user_ref
        ctx.user = await self.services.storage.user(u.platform, u.user_id, u.display_name)
        ctx.t = Translator(ctx.user.language or normalize_language(u.language_hint or config.default_language))
        ctx.admin = config.is_admin(u.platform, u.user_id)
        ctx.space_admin = space_admin or ctx.admin
        ctx.chat_admin = chat_admin or ctx.space_admin or ctx.chat.is_private

    async def _tell(self, ctx: Ctx, text: str) -> None:
        try:
            if ctx.press is not None:
                await ctx.answer(text, alert=True)
            else:
                await ctx.reply(text)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not tell the sender what went wrong", exc_info=True)
