"""Starting the Telegram side of the bot: long polling by default, or a webhook.

The Bot API base URL is a setting: Telegram's own local Bot API server (which lifts the
upload limit to 2000 MB) and test stand-ins plug in there. The token comes from the
settings as a ``SecretStr`` and is unwrapped only to build the ``Bot``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand

from bot.logs import redact_in_logs
from bot.outbound import Limits
from bot.telegram.adapter import TelegramAdapter
from bot.telegram.messenger import TELEGRAM_LIMITS, TelegramMessenger, telegram_policy

log = logging.getLogger(__name__)

# The bot's languages -> the client language codes Telegram matches menus against
# (None: the default menu, for every other language).
MENU_LANGUAGES: dict[str, str | None] = {"en": None, "zh-CN": "zh", "ru": "ru"}
WEBHOOK_PREFIX = "/telegram/"


# --- the bot ---------------------------------------------------------------------------------

def make_bot(api_base: str, token: str) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base))
    return Bot(token=token, session=session)


async def register_commands(bot: Bot, app: Any) -> None:
    """The command menu, localized per client language (``setMyCommands``)."""
    for lang, code in MENU_LANGUAGES.items():
        commands = [BotCommand(command=name, description=desc[:256] or name) for name, desc in app.commands(lang)]
        try:
            await bot.set_my_commands(commands, language_code=code)
        except Exception as e:  # a menu is a convenience; the bot works without one
            log.warning("setMyCommands (%s) failed: %s", lang, type(e).__name__)


def webhook_path_and_secret(token: str) -> tuple[str, str]:
    """Derived from the token: unguessable, and the same after a restart."""
    digest = hashlib.sha256(f"imagebot-webhook:{token}".encode()).hexdigest()
    return WEBHOOK_PREFIX + digest[:32], digest[32:]


async def run_telegram(runtime: Any, *, limits: Limits | None = None, polling_timeout: int = 30) -> None:
    """Run the bot on Telegram until cancelled. Starts the runtime (after attaching the
    messenger, so jobs recovered from a previous run are delivered) and stops nothing
    else: the caller owns ``runtime.stop()``."""
    settings = runtime.settings
    token = settings.telegram_token.get_secret_value()
    if not token:
        raise RuntimeError("IMAGEBOT_TELEGRAM_TOKEN is not set")
    redact_in_logs(token)
    bot = make_bot(settings.telegram_api_base, token)
    limiter = runtime.outbound.platform("telegram", limits or TELEGRAM_LIMITS, policy=telegram_policy)
    messenger = TelegramMessenger(bot, limiter, language=settings.default_language)
    try:
        me = await bot.get_me()
        adapter = TelegramAdapter(runtime.app, messenger, bot, username=me.username or "")
        dispatcher = Dispatcher()
        dispatcher.include_router(adapter.router)
        runtime.app.attach(messenger)  # before start(): recovered jobs are delivered through it
        if settings.telegram_webhook:
            await _run_webhook(runtime, bot, dispatcher, token)
        else:
            await runtime.start()
            await register_commands(bot, runtime.app)
            await bot.delete_webhook(drop_pending_updates=False)
            log.info("Telegram: long polling as @%s", adapter.username)
            await poll_until_cancelled(dispatcher, bot, polling_timeout)
    finally:
        await limiter.close()
        await bot.session.close()


async def poll_until_cancelled(dispatcher: Dispatcher, bot: Bot, polling_timeout: int) -> None:
    """Long polling until cancelled. Cancelling ``start_polling`` itself would leave
    aiogram's inner polling task alive (still taking updates), so stop it properly."""
    polling = asyncio.create_task(dispatcher.start_polling(
        bot, handle_signals=False, close_bot_session=False, polling_timeout=polling_timeout))
    try:
        await asyncio.shield(polling)
    except asyncio.CancelledError:
        await _stop_polling(dispatcher, polling)
        raise


async def _stop_polling(dispatcher: Dispatcher, polling: asyncio.Task[None]) -> None:
    try:
        await dispatcher.stop_polling()
    except RuntimeError:  # not started yet
        polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)
    # Updates being handled finish against a runtime that is still up (the caller stops it).
    pending = [t for t in getattr(dispatcher, "_handle_update_tasks", ()) if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=10)


async def _run_webhook(runtime: Any, bot: Bot, dispatcher: Dispatcher, token: str) -> None:
    from aiogram.webhook.aiohttp_server import SimpleRequestHandler

    settings = runtime.settings
    if not settings.public_base_url or runtime.web is None:
        raise RuntimeError("webhook mode needs IMAGEBOT_PUBLIC_BASE_URL and the web server")
    path, secret = webhook_path_and_secret(token)
    # aiogram checks the X-Telegram-Bot-Api-Secret-Token header against ``secret``.
    handler = SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret)
    runtime.web.add_route("POST", path, handler.handle)
    await runtime.start(web=True)
    await register_commands(bot, runtime.app)
    await bot.set_webhook(url=settings.public_base_url.rstrip("/") + path, secret_token=secret,
                          drop_pending_updates=False)
    log.info("Telegram: webhook set on the public base URL")
    await asyncio.Event().wait()  # until cancelled; run_telegram closes the session
