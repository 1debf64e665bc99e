"""Starting the Discord side of the bot: log in, sync the commands if they changed, connect.

discord.py has no per-client base URL: ``discord.http.Route.BASE`` (REST, interaction
callbacks and follow-up webhooks alike) and ``DiscordWebSocket.DEFAULT_GATEWAY`` are class
attributes, so the settings are assigned there before logging in. They are process-wide,
which is fine: one process runs one Discord client (Telegram and the console share the
runtime, not discord.py).

Intents are only what the bot needs: guilds (channels, threads, the bot's own permissions),
DMs (a prompt typed in a DM is a job; DM text needs no privileged intent), and, only with
``IMAGEBOT_DISCORD_MESSAGE_CONTENT``, server messages with their content, for replies to
results. No members, no presences.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from bot.discord import commands
from bot.discord.adapter import DiscordAdapter
from bot.discord.buttons import PayloadButton, PressCallback
from bot.discord.interactions import LiveInteractions
from bot.discord.messenger import DISCORD_LIMITS, DiscordMessenger, discord_policy
from bot.logs import redact_in_logs
from bot.outbound import Limits
from bot.wiring import ConfigurationError

log = logging.getLogger(__name__)

# A 429 asking to wait longer than this (the daily command-create budget says hours) is
# raised by discord.py instead of slept through; the outbound limiter then holds that chat.
MAX_RATELIMIT_WAIT_S = 60.0


def aim_discord_py(api_base: str, gateway_url: str) -> None:
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def intents_for(message_content: bool) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    if message_content:
        intents.guild_messages = True
        intents.message_content = True
    return intents


class ImagebotClient(discord.Client):
    """A plain client with a command tree; what it does is the adapter's."""

    def __init__(self, *, intents: discord.Intents, guild_ready_timeout: float) -> None:
        super().__init__(intents=intents, guild_ready_timeout=guild_ready_timeout,
                         max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S, chunk_guilds_at_startup=False)
        self.tree: app_commands.CommandTree[ImagebotClient] = app_commands.CommandTree(self)
        self.on_press: PressCallback | None = None  # read by the persistent buttons
        self.adapter: DiscordAdapter | None = None
        self.setup: Any = None
        self.ready = asyncio.Event()

    async def setup_hook(self) -> None:
        # Every button of every message, from any earlier run too.
        self.add_dynamic_items(PayloadButton)
        if self.setup is not None:
            await self.setup()

    async def on_ready(self) -> None:
        log.info("Discord: connected as %s in %d server(s)", self.user, len(self.guilds))
        self.ready.set()

    async def on_message(self, message: discord.Message) -> None:
        if self.adapter is not None:
            await self.adapter.on_message(message)


async def run_discord(runtime: Any, *, limits: Limits | None = None, guild_ready_timeout: float = 2.0,
                      ready: asyncio.Event | None = None) -> None:
    """Run the bot on Discord until cancelled. Starts the runtime (after attaching the
    messenger, so jobs recovered from a previous run are delivered) and stops nothing else:
    the caller owns ``runtime.stop()``. ``ready`` is set once the gateway is up."""
    settings = runtime.settings
    token = settings.discord_token.get_secret_value()
    if not token:
        raise ConfigurationError("IMAGEBOT_DISCORD_TOKEN is not set")
    redact_in_logs(token)
    aim_discord_py(settings.discord_api_base, settings.discord_gateway_url)
    limiter = runtime.outbound.platform("discord", limits or DISCORD_LIMITS, policy=discord_policy)
    live = LiveInteractions()
    client = ImagebotClient(intents=intents_for(settings.discord_message_content),
                            guild_ready_timeout=guild_ready_timeout)
    messenger = DiscordMessenger(client, limiter, live, language=settings.default_language)
    adapter = DiscordAdapter(runtime.app, messenger, client, live, storage=runtime.storage,
                             message_content=settings.discord_message_content)
    client.adapter, client.on_press = adapter, adapter.on_press
    await client.tree.set_translator(commands.FluentTranslator())
    commands.build(client.tree, adapter, backends=runtime.app.suggestions.backends(), guilds=settings.discord_guilds)

    async def setup() -> None:
        assert client.application_id is not None
        await commands.sync_if_changed(client.tree, runtime.storage, application_id=client.application_id,
                                       guilds=settings.discord_guilds)

    client.setup = setup
    runtime.app.attach(messenger)  # before start(): recovered jobs are delivered through it
    warming: asyncio.Task[None] | None = None
    connecting: asyncio.Task[None] | None = None
    try:
        try:
            await client.login(token)
        except discord.LoginFailure:
            raise ConfigurationError("Discord refused IMAGEBOT_DISCORD_TOKEN (reset it in the Developer Portal, "
                                     "Bot > Reset Token)") from None
        await runtime.start()
        warming = asyncio.create_task(runtime.app.suggestions.warm(), name="discord-suggestions")
        connecting = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        if ready is not None:
            waiting = asyncio.create_task(client.ready.wait())
            await asyncio.wait({connecting, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if client.ready.is_set():
                ready.set()
        try:
            await connecting
        except discord.PrivilegedIntentsRequired:
            raise ConfigurationError("Discord refused the Message Content intent: switch it on in the Developer "
                                     "Portal (Bot > Privileged Gateway Intents) or set "
                                     "IMAGEBOT_DISCORD_MESSAGE_CONTENT=false") from None
    finally:
        for task in (warming, connecting):
            if task is not None:
                task.cancel()
        await adapter.drain()
        await client.close()
        await limiter.close()
