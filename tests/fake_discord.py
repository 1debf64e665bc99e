"""A stand-in for Discord on 127.0.0.1 that speaks the real gateway and REST protocols.

An unmodified discord.py 2 client (``discord.Client`` / ``commands.Bot`` with an
``app_commands.CommandTree``) logs in, syncs its commands, connects and answers
interactions against it, over real HTTP and a real WebSocket. Tests inject what users do
(slash commands, button presses, context menus, autocomplete, plain messages with
attachments) and read what each channel shows.

Pointing discord.py at the fake
-------------------------------
discord.py has exactly three base URLs, all class attributes read at call time, so they
can be assigned after import and before ``login()`` / ``connect()``:

* ``discord.http.Route.BASE = fake.api_base`` (``http://127.0.0.1:PORT/api/v10``). Every
  REST call goes through ``Route``: the bot-token client in ``discord/http.py`` *and* the
  interaction callbacks / follow-up webhooks in ``discord/webhook/async_.py``, which
  imports the same ``Route`` class (it has no base URL of its own).
* ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)``. It
  must be a ``yarl.URL`` (discord.py calls ``.with_query()`` on it), not a ``str``. A plain
  ``Client`` never calls ``GET /gateway/bot``; an ``AutoShardedClient`` does, and the fake
  answers it with the same URL. After READY discord.py resumes at ``resume_gateway_url``
  (the fake's ``resume_gateway_url``, a different path, so tests can tell the two apart).
* ``discord.asset.Asset.BASE = fake.cdn_base`` (optional): avatar / icon URLs. Attachment
  URLs come from the server's payloads, so they point at the fake's CDN anyway and
  ``Attachment.read()`` downloads from it.

``point_discord_py_at(fake)`` does all three and returns an undo callable.

What it models (checked against discord.py 2.7's source, not guessed)
--------------------------------------------------------------------
* Gateway: ``?v=10&encoding=json&compress=zlib-stream`` (zlib stream, ``Z_SYNC_FLUSH``,
  frames end in ``00 00 ff ff``; ``zstd-stream`` when the ``zstandard`` module is there),
  HELLO / IDENTIFY (wrong token: close 4004, privileged intents not enabled: 4014) /
  HEARTBEAT(_ACK) both ways / READY / GUILD_CREATE / RESUME with replay / RESUMED /
  RECONNECT / INVALID_SESSION / REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK, and the
  intents gating of MESSAGE_CREATE (content blanked without MESSAGE_CONTENT).
* REST under ``/api/v10``: login, application info, command sync (with Discord's daily
  command-create budget), messages (JSON or multipart ``payload_json`` + ``files[n]``),
  edits (attachments kept or replaced per the ``attachments`` array), DMs, typing,
  interaction callbacks (the 3 s rule: 10062, second callback: 40060; modals with text
  inputs and file uploads) and follow-up webhooks (15 min token: 50027; the first follow-up
  after a defer fills the "thinking" message and keeps the defer's ephemerality, as Discord
  does).
* Rate limits: per-route buckets with ``X-RateLimit-*`` headers, a per-channel message
  limit, a global limit, injectable 429 storms. Every 429 carries ``Via`` because
  discord.py treats a 429 *without* ``Via`` as a Cloudflare ban and raises instead of
  waiting.
* Uploads over the guild's limit: 413 ``{"code": 40005}``.

JSON bodies are sent as ``Content-Type: application/json`` exactly: discord.py's
``json_or_text`` compares that header for equality and would read aiohttp's default
``application/json; charset=utf-8`` as plain text.

discord.py behaviour worth knowing (2.7)
----------------------------------------
* Startup: ``GET /users/@me`` (401 -> ``LoginFailure``), ``GET /oauth2/applications/@me``,
  then ``setup_hook`` (where ``tree.sync()`` usually runs), then the gateway.
* ``on_ready`` fires ``guild_ready_timeout`` (default 2 s) after the *last* GUILD_CREATE;
  tests pass ``guild_ready_timeout=0.05`` to the client.
* Every IDENTIFY but the first sleeps 5 s in ``before_identify_hook``; RESUME does not.
* A request is tried at most 5 times: a storm of 5 or more 429s fails the call with
  ``HTTPException(429)``; 500/502/504 are retried after 1, 3, 5... seconds.
* ``InteractionResponse`` refuses a second response itself (``InteractionResponded``)
  before Discord could answer 40060; the 3 s and 15 min limits are not checked client-side.

Time: rate limits run on the real clock (discord.py sleeps real seconds); the 3 s
acknowledgement deadline and the 15 min token lifetime run on the fake's clock, which
``advance(seconds)`` moves forward. Snowflakes carry real timestamps, so discord.py's own
``Interaction.is_expired()`` does not see ``advance()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import io
import itertools
import json
import math
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

# zstd-stream is only needed when discord.py asks for it, which it does when it can decompress it
# (with the zstandard package, or Python 3.14's compression.zstd); the same modules serve here.
try:
    import zstandard  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None
try:
    from compression import zstd as stdlib_zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python < 3.14
    stdlib_zstd = None

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024  # discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES (premium tier 0 and 1, DMs)
PREMIUM_FILESIZE = {0: DEFAULT_FILESIZE_LIMIT, 1: DEFAULT_FILESIZE_LIMIT, 2: 50 * 1024 * 1024, 3: 100 * 1024 * 1024}


class Perm:
    """Permission bits (the ones the fake looks at, and what tests grant)."""

    ADMINISTRATOR = 1 << 3
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 53) - 1
    # What @everyone can do in a fresh server (the parts that matter here).
    EVERYONE = (VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS
                | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS)
    DM = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | ADD_REACTIONS


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = {"members": GUILD_MEMBERS, "presences": GUILD_PRESENCES, "message_content": MESSAGE_CONTENT}


# Application flags for an unverified bot whose privileged intents are switched on ("_LIMITED" variants).
_APP_FLAG_FOR_INTENT = {"presences": 1 << 13, "members": 1 << 15, "message_content": 1 << 19}

MSG_FLAG_EPHEMERAL = 1 << 6
MSG_FLAG_LOADING = 1 << 7

# Interaction types and callback types (Discord's numbers).
IX_COMMAND, IX_COMPONENT, IX_AUTOCOMPLETE, IX_MODAL_SUBMIT = 2, 3, 4, 5
CB_PONG, CB_MESSAGE, CB_DEFERRED, CB_DEFERRED_UPDATE, CB_UPDATE, CB_AUTOCOMPLETE, CB_MODAL = 1, 4, 5, 6, 7, 8, 9

# Command option types.
OPT_SUB, OPT_GROUP, OPT_STRING, OPT_INTEGER, OPT_BOOLEAN, OPT_USER, OPT_CHANNEL, OPT_ROLE = 1, 2, 3, 4, 5, 6, 7, 8
OPT_NUMBER, OPT_ATTACHMENT = 10, 11


def _snowflake_time_ms(snowflake: int) -> int:
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def _iso(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def _guess_filename(data: bytes, stem: str) -> str:
    for magic, ext in ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"GIF8", "gif"), (b"RIFF", "webp")):
        if data.startswith(magic):
            return f"{stem}.{ext}"
    return f"{stem}.bin"


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


# --- the world: users, guilds, channels, messages -------------------------------------------


@dataclass(eq=False)
class FakeUser:
    id: int
    username: str
    bot: bool = False
    locale: str = "en-US"
    global_name: str | None = None

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "username": self.username, "discriminator": "0",
                               "global_name": self.global_name or self.username, "avatar": None,
                               "public_flags": 0, "avatar_decoration_data": None, "primary_guild": None,
                               "collectibles": None}
        if self.bot:
            out["bot"] = True
        return out


@dataclass(eq=False)
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        return {"id": str(self.id), "name": self.name, "permissions": str(self.permissions), "position": self.position,
                "color": 0, "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                "hoist": False, "managed": self.managed, "mentionable": False, "icon": None, "unicode_emoji": None,
                "flags": 0}


@dataclass(eq=False)
class FakeChannel:
    """A text channel (type 0), public thread (type 11) or DM (type 1)."""

    id: int
    type: int
    name: str = ""
    guild: FakeGuild | None = None
    parent: FakeChannel | None = None  # threads: the text channel they hang off
    recipient: FakeUser | None = None  # DMs
    position: int = 0
    # target id -> (type 0 role / 1 member, allow, deny)
    overwrites: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    owner_id: int = 0  # threads

    @property
    def is_thread(self) -> bool:
        return self.type == 11

    @property
    def is_dm(self) -> bool:
        return self.type == 1

    def payload(self) -> dict[str, Any]:
        if self.is_dm:
            assert self.recipient is not None
            return {"id": str(self.id), "type": 1, "last_message_id": None, "flags": 0,
                    "recipients": [self.recipient.payload()]}
        assert self.guild is not None
        out: dict[str, Any] = {"id": str(self.id), "type": self.type, "guild_id": str(self.guild.id), "name": self.name,
                               "last_message_id": None, "rate_limit_per_user": 0, "flags": 0, "nsfw": False}
        if self.is_thread:
            assert self.parent is not None
            out.update(parent_id=str(self.parent.id), owner_id=str(self.owner_id), message_count=0, member_count=1,
                       total_message_sent=0, thread_metadata={
                           "archived": False, "auto_archive_duration": 1440, "locked": False,
                           "archive_timestamp": _iso(_snowflake_time_ms(self.id)),
                           "create_timestamp": _iso(_snowflake_time_ms(self.id))})
        else:
            out.update(position=self.position, parent_id=None, topic=None, default_auto_archive_duration=1440,
                       permission_overwrites=[{"id": str(t), "type": k, "allow": str(a), "deny": str(d)}
                                              for t, (k, a, d) in self.overwrites.items()])
        return out


@dataclass(eq=False)
class FakeGuild:
    id: int
    name: str
    owner: FakeUser
    premium_tier: int = 0
    filesize_limit: int = DEFAULT_FILESIZE_LIMIT
    locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids (not @everyone)
    channels: dict[int, FakeChannel] = field(default_factory=dict)  # text channels and threads

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]


@dataclass(eq=False)
class FakeAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    proxy_url: str
    description: str | None = None
    ephemeral: bool = False

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "filename": self.filename, "size": len(self.data), "url": self.url,
                               "proxy_url": self.proxy_url, "content_type": self.content_type,
                               "title": self.filename.rsplit(".", 1)[0]}
        size = _image_size(self.data) if self.content_type.startswith("image/") else None
        if size:
            out["width"], out["height"] = size
        if self.description is not None:
            out["description"] = self.description
        if self.ephemeral:
            out["ephemeral"] = True
        return out


def _walk_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component in tree order (pre-order): each one, then its ``components``, its
    ``component`` (a label's child) and its ``accessory`` (a section's)."""
    stack = list(reversed(components))
    while stack:
        c = stack.pop()
        yield c
        children = list(c.get("components", []))
        if "component" in c:
            children.append(c["component"])
        if "accessory" in c:
            children.append(c["accessory"])
        stack.extend(reversed(children))


@dataclass(eq=False)
class FakeMessage:
    """A message as its channel shows it."""

    id: int
    channel_id: int
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    reply_to: int | None = None
    type: int = 0
    interaction_id: int | None = None  # set on interaction responses and follow-ups
    visible_to: int | None = None  # ephemeral messages: the only user who sees them
    edits: int = 0
    deleted: bool = False
    edited_ms: float | None = None
    # The users this message notified when it was sent (Discord's allowed_mentions rules).
    pinged: set[int] = field(default_factory=set)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MSG_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred "Bot is thinking..." message not filled in yet."""
        return bool(self.flags & MSG_FLAG_LOADING)

    @property
    def files(self) -> list[bytes]:
        return [a.data for a in self.attachments]

    def buttons(self) -> list[tuple[str, str | None]]:
        """(label, custom_id) of every button, in order (link buttons have no custom_id)."""
        return [(c.get("label", ""), c.get("custom_id")) for c in self._walk() if c.get("type") == 2]

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self._walk() if "custom_id" in c]

    def _walk(self) -> Iterable[dict[str, Any]]:
        return _walk_components(self.components)


@dataclass
class Callback:
    """One interaction callback the bot made (accepted or refused)."""

    type: int
    data: dict[str, Any]
    latency_s: float  # real seconds since the interaction was dispatched
    status: int
    code: int | None = None


@dataclass(eq=False)
class FakeInteraction:
    """What the fake dispatched for one user action, and what the bot answered."""

    id: int
    token: str
    type: int
    user: FakeUser
    channel: FakeChannel
    data: dict[str, Any]
    payload: dict[str, Any]
    created_at: float  # fake clock
    created_real: float  # time.monotonic()
    message: FakeMessage | None = None  # the message the pressed component is on
    target: FakeMessage | None = None  # the message a context-menu command was used on
    delivered: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    errors: list[tuple[str, int, int]] = field(default_factory=list)  # (route, status, code) the fake refused
    _acked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def acked(self) -> bool:
        return any(c.status < 300 for c in self.callbacks)

    @property
    def response_type(self) -> int | None:
        return next((c.type for c in self.callbacks if c.status < 300), None)

    @property
    def ack_latency_s(self) -> float | None:
        return next((c.latency_s for c in self.callbacks if c.status < 300), None)

    @property
    def ephemeral(self) -> bool:
        cb = next((c for c in self.callbacks if c.status < 300), None)
        return bool(cb and int((cb.data or {}).get("flags") or 0) & MSG_FLAG_EPHEMERAL)

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """The autocomplete answer (type 8), if the bot gave one."""
        cb = next((c for c in self.callbacks if c.status < 300 and c.type == CB_AUTOCOMPLETE), None)
        return None if cb is None else list(cb.data.get("choices", []))

    @property
    def modal(self) -> dict[str, Any] | None:
        cb = next((c for c in self.callbacks if c.status < 300 and c.type == CB_MODAL), None)
        return None if cb is None else cb.data

    @property
    def messages(self) -> list[FakeMessage]:
        """The original response (if it is a message of its own) and every follow-up."""
        first = [self.original] if self.original is not None and self.original is not self.message else []
        return first + self.followups

    async def wait_acked(self, timeout: float = 5.0) -> Callback:
        try:
            await asyncio.wait_for(self._acked.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"interaction {self.id} was not acknowledged; callbacks={self.callbacks}") from None
        return next(c for c in self.callbacks if c.status < 300)


@dataclass
class RequestLog:
    route: str
    method: str
    path: str
    status: int
    code: int | None
    channel_id: int | None
    at: float  # time.monotonic()


# --- gateway sessions ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    path: str
    query: dict[str, str]
    compress: str | None
    session: _Session | None = None
    _zlib: Any = None
    _zstd: Any = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sent_times: list[float] = field(default_factory=list)
    closed_by_fake: bool = False
    close_code: int | None = None  # the code the fake closed with, else the client's

    def __post_init__(self) -> None:
        if self.compress == "zlib-stream":
            self._zlib = zlib.compressobj()
        elif self.compress == "zstd-stream" and zstandard is not None:
            self._zstd = zstandard.ZstdCompressor().compressobj()
        elif self.compress == "zstd-stream" and stdlib_zstd is not None:
            self._zstd = stdlib_zstd.ZstdCompressor()

    @property
    def open(self) -> bool:
        return not self.ws.closed

    async def close(self, code: int, reason: bytes = b"") -> None:
        """A close the fake starts. (aiohttp then reports the client's reply, often 1000, as
        ``close_code``, which must not read as the client ending its session.)"""
        self.closed_by_fake, self.close_code = True, code
        await self.ws.close(code=code, message=reason)

    async def send(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame, separators=(",", ":")).encode()
        async with self._lock:  # the compression stream must see frames in the order they go out
            if self._zlib is not None:
                # Discord's zlib-stream: one shared context, each frame flushed with Z_SYNC_FLUSH,
                # which ends it in 00 00 ff ff (discord.py waits for that suffix).
                await self.ws.send_bytes(self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
            elif self._zstd is not None:
                # One zstd stream per connection, each frame flushed to a block boundary, so the
                # client's streaming decompressor gets exactly one gateway message per frame.
                if zstandard is not None:
                    out = self._zstd.compress(data) + self._zstd.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
                else:
                    out = self._zstd.compress(data, mode=stdlib_zstd.ZstdCompressor.FLUSH_BLOCK)
                await self.ws.send_bytes(out)
            else:
                await self.ws.send_str(data.decode())


@dataclass(eq=False)
class _Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    conn: _Connection | None = None
    resumable: bool = True
    guilds_sent: bool = False  # READY and every GUILD_CREATE have gone out
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# --- REST plumbing --------------------------------------------------------------------------------


class _Refused(Exception):
    """Raised inside a handler: answer with this Discord error."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None, *,
                 extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors
        self.extra, self.headers = extra or {}, headers or {}


_USER_MENTION = re.compile(r"<@!?(\d+)>")


def _pinged_users(content: str, allowed: dict[str, Any] | None) -> set[int]:
    """Who a message's user mentions notify: all of them without ``allowed_mentions``;
    with it, those of ``users`` or every one when ``parse`` holds "users" (Discord refuses
    both at once)."""
    mentioned = {int(m) for m in _USER_MENTION.findall(content)}
    if allowed is None:
        return mentioned
    parse = allowed.get("parse") or []
    users = {int(u) for u in allowed.get("users") or []}
    if "users" in parse and users:
        raise _form_error("allowed_mentions", "MUTUALLY_EXCLUSIVE",
                          "parse:[\"users\"] and users: [ids] are mutually exclusive.")
    return mentioned if "users" in parse else mentioned & users


def _form_error(path: str, code: str, message: str) -> _Refused:
    """Discord's 50035 Invalid Form Body, with the nested ``errors`` object it uses."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return _Refused(400, 50035, "Invalid Form Body", errors)


@dataclass
class _Call:
    request: web.Request
    route: str
    params: dict[str, str]
    payload: dict[str, Any]
    files: dict[int, tuple[str, bytes]]  # index n of files[n] -> (filename, bytes)


@dataclass
class _Bucket:
    """A Discord rate-limit bucket: ``limit`` requests per window of ``per`` seconds."""

    limit: int
    per: float
    count: int = 0
    reset_at: float = 0.0  # time.monotonic()

    def take(self, now: float) -> float | None:
        """Count one request; if over the limit, return how long until the window resets."""
        if now >= self.reset_at:
            self.count, self.reset_at = 0, now + self.per
        if self.count >= self.limit:
            return self.reset_at - now
        self.count += 1
        return None

    def headers(self, now: float, bucket_hash: str) -> dict[str, str]:
        reset_after = max(0.0, self.reset_at - now)
        # Round up: a client that wakes up a millisecond early would earn a 429.
        reset_after = math.ceil(reset_after * 1000) / 1000
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(0, self.limit - self.count)),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}", "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": bucket_hash}


@dataclass
class _Fault:
    """An injected failure: the next ``count`` requests matching ``target`` get it."""

    target: str | int  # a route name, or a channel id
    count: int
    status: int
    retry_after: float = 0.0
    scope: str = "shared"
    is_global: bool = False
    code: int = 0
    message: str = ""


# (method, path template, route name). Templates use discord.py's own parameter names.
_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/gateway", "get_gateway"),
    ("GET", "/gateway/bot", "get_gateway_bot"),
    ("GET", "/users/@me", "get_me"),
    ("POST", "/users/@me/channels", "create_dm"),
    ("GET", "/users/{user_id}", "get_user"),
    ("GET", "/oauth2/applications/@me", "get_application"),
    ("GET", "/applications/@me", "get_application"),
    ("GET", "/applications/{application_id}/commands", "get_global_commands"),
    ("PUT", "/applications/{application_id}/commands", "sync_global_commands"),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "get_guild_commands"),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", "sync_guild_commands"),
    ("GET", "/guilds/{guild_id}", "get_guild"),
    ("GET", "/guilds/{guild_id}/channels", "get_guild_channels"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
    ("GET", "/channels/{channel_id}", "get_channel"),
    ("GET", "/channels/{channel_id}/messages", "get_messages"),
    ("POST", "/channels/{channel_id}/messages", "send_message"),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "get_message"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message"),
    ("POST", "/channels/{channel_id}/typing", "typing"),
    ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback"),
    ("POST", "/webhooks/{application_id}/{token}", "followup"),
    ("GET", "/webhooks/{application_id}/{token}/messages/@original", "get_original"),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/@original", "edit_original"),
    ("DELETE", "/webhooks/{application_id}/{token}/messages/@original", "delete_original"),
    ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", "get_followup"),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", "edit_followup"),
    ("DELETE", "/webhooks/{application_id}/{token}/messages/{message_id}", "delete_followup"),
]
_COMPILED = [(m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", t) + "$"), n) for m, t, n in _ROUTES]
_TEMPLATES = {n: t for _, t, n in _ROUTES}
# Routes reached with the interaction token, not the bot token: no Authorization, not in the global limit.
_TOKEN_ROUTES = {"interaction_callback", "followup", "get_original", "edit_original", "delete_original",
                 "get_followup", "edit_followup", "delete_followup"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": see the module docstring.
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json",
                        headers=headers)


class FakeDiscord:
    """Discord on 127.0.0.1. ``await FakeDiscord().start()``, build the world, point discord.py at it."""

    def __init__(self, token: str = "MTIzNDU2Nzg5.fake.bot-token-do-not-log", *, bot_name: str = "imagebot",
                 heartbeat_interval_ms: int = 41_250, message_limit: tuple[int, float] = (5, 5.0),
                 route_limit: tuple[int, float] = (50, 1.0), webhook_limit: tuple[int, float] = (50, 1.0),
                 global_limit: tuple[int, float] = (50, 1.0), ack_deadline_s: float = 3.0,
                 token_ttl_s: float = 15 * 60.0, daily_command_creates: int = 200,
                 privileged_intents: Iterable[str] = ("members", "presences", "message_content")) -> None:
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.message_limit = message_limit
        self.route_limit = route_limit
        self.webhook_limit = webhook_limit
        self.global_limit = global_limit
        self.ack_deadline_s = ack_deadline_s
        self.token_ttl_s = token_ttl_s
        self.daily_command_creates = daily_command_creates
        self.privileged_intents = set(privileged_intents)

        self._last_snowflake = 0
        self._increment = itertools.count()
        self.bot = FakeUser(self._snowflake(), bot_name, bot=True)
        self.app_id = self.bot.id  # a bot's application id is its user id
        self.app_owner = FakeUser(self._snowflake(), "app-owner")

        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        # scope (None = global, else guild id) -> name/type key -> stored command
        self.commands: dict[int | None, dict[tuple[str, int], dict[str, Any]]] = {}
        self.commands_created = 0  # commands Discord counted against the daily create budget
        self._creates_today: list[float] = []

        # Counters and logs for tests.
        self.requests: list[RequestLog] = []
        self.rate_limited = 0  # 429s sent
        self.connections: list[_Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes = 0
        self.heartbeats = 0
        self.presences: list[dict[str, Any]] = []
        self.close_codes: list[int | None] = []  # how each finished gateway connection ended (None: TCP cut)
        self.downloads = 0
        self.internal_errors: list[str] = []  # bugs in the fake itself; a test can assert there are none

        self._offset = 0.0
        self._faults: list[_Fault] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._global_bucket = _Bucket(*global_limit)
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None
        self._changed = asyncio.Event()

        self.app = web.Application(client_max_size=256 * 1024 * 1024)
        self.app.router.add_get("/gateway", self._gateway)
        self.app.router.add_get("/gateway-resume", self._gateway)
        self.app.router.add_get("/cdn/{kind}/{a}/{b}/{filename}", self._cdn)
        self.app.router.add_get("/media/{kind}/{a}/{b}/{filename}", self._cdn)
        self.app.router.add_route("*", "/api/v{version}/{path:.*}", self._api)
        self._server: TestServer | None = None
        self.base_url = ""

    # --- lifecycle and addresses ----------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server(access_log=None)  # no access log: URLs carry interaction tokens
        self.base_url = str(self._server.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        for conn in list(self.connections):
            if conn.open:
                with contextlib.suppress(Exception):
                    await conn.close(1001)
        if self._server is not None:
            await self._server.close()

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/gateway-resume"

    @property
    def cdn_base(self) -> str:
        return f"{self.base_url}/cdn"

    # --- clock --------------------------------------------------------------------------------

    def now(self) -> float:
        """The fake's clock (monotonic seconds), which ``advance`` moves forward."""
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for acknowledgement deadlines, token lifetimes and the daily budget."""
        self._offset += seconds

    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (next(self._increment) & 0xFFF)
        self._last_snowflake = value = max(value, self._last_snowflake + 1)
        return value

    # --- building the world -------------------------------------------------------------------

    def add_user(self, username: str, *, locale: str = "en-US", bot: bool = False) -> FakeUser:
        user = FakeUser(self._snowflake(), username, bot=bot, locale=locale)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Guild", *, owner: FakeUser | None = None, premium_tier: int = 0,
                  filesize_limit: int | None = None, locale: str = "en-US",
                  channel: str | None = "general") -> FakeGuild:
        """A server with @everyone, the bot's managed role, the bot and its owner as members and
        (unless ``channel=None``) one text channel. Add it before the bot connects, or it arrives
        as a join (GUILD_CREATE) on the live session."""
        owner = owner or self.add_user(f"{name.lower().replace(' ', '-')}-owner")
        guild = FakeGuild(self._snowflake(), name, owner, premium_tier,
                          filesize_limit if filesize_limit is not None else PREMIUM_FILESIZE[premium_tier], locale)
        guild.roles[guild.id] = FakeRole(guild.id, "@everyone", Perm.EVERYONE)
        bot_role = FakeRole(self._snowflake(), self.bot.username, Perm.EVERYONE, position=1, managed=True)
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot.id] = [bot_role.id]
        guild.members[owner.id] = []
        self.guilds[guild.id] = guild
        if channel is not None:
            self._new_channel(guild, channel)
        self._later(self._dispatch("GUILD_CREATE", self._guild_create(guild), intent=Intent.GUILDS))
        return guild

    def add_channel(self, guild: FakeGuild, name: str) -> FakeChannel:
        channel = self._new_channel(guild, name)
        self._later(self._dispatch("CHANNEL_CREATE", channel.payload(), intent=Intent.GUILDS))
        return channel

    def add_thread(self, parent: FakeChannel, name: str, *, owner: FakeUser | None = None) -> FakeChannel:
        """A public thread (type 11) under a text channel."""
        assert parent.guild is not None and parent.type == 0, "threads hang off guild text channels"
        thread = FakeChannel(self._snowflake(), 11, name, parent.guild, parent=parent,
                             owner_id=(owner or parent.guild.owner).id)
        parent.guild.channels[thread.id] = thread
        self.channels[thread.id] = thread
        self._later(self._dispatch("THREAD_CREATE", {**thread.payload(), "newly_created": True}, intent=Intent.GUILDS))
        return thread

    def add_member(self, guild: FakeGuild, user: FakeUser, *, admin: bool = False,
                   roles: Iterable[FakeRole] = ()) -> FakeUser:
        """``admin=True`` gives the member a role with Manage Server (what the bot calls a guild admin)."""
        role_ids = [r.id for r in roles]
        if admin:
            role_ids.append(self.admin_role(guild).id)
        guild.members[user.id] = role_ids
        self._later(self._dispatch("GUILD_MEMBER_ADD", {**self._member(guild, user), "guild_id": str(guild.id)},
                                   intent=Intent.GUILD_MEMBERS))
        return user

    def admin_role(self, guild: FakeGuild) -> FakeRole:
        role = next((r for r in guild.roles.values() if r.name == "Admin"), None)
        if role is None:
            role = self.add_role(guild, "Admin", Perm.EVERYONE | Perm.MANAGE_GUILD)
        return role

    def add_role(self, guild: FakeGuild, name: str, permissions: int) -> FakeRole:
        role = FakeRole(self._snowflake(), name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        self._later(self._dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()},
                                   intent=Intent.GUILDS))
        return role

    def set_overwrite(self, channel: FakeChannel, target: FakeUser | FakeRole, *, allow: int = 0,
                      deny: int = 0) -> None:
        """A channel permission overwrite (e.g. ``deny=Perm.ATTACH_FILES`` for the bot)."""
        assert channel.guild is not None and not channel.is_thread, "overwrites live on guild text channels"
        kind = 0 if isinstance(target, FakeRole) else 1
        channel.overwrites[target.id] = (kind, allow, deny)
        self._later(self._dispatch("CHANNEL_UPDATE", channel.payload(), intent=Intent.GUILDS))

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The bot's DM channel (type 1) with ``user``."""
        channel = next((c for c in self.channels.values() if c.is_dm and c.recipient is user), None)
        if channel is None:
            channel = FakeChannel(self._snowflake(), 1, recipient=user)
            self.channels[channel.id] = channel
        return channel

    def _new_channel(self, guild: FakeGuild, name: str) -> FakeChannel:
        channel = FakeChannel(self._snowflake(), 0, name, guild,
                              position=sum(1 for c in guild.channels.values() if c.type == 0))
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    # --- permissions ----------------------------------------------------------------------------

    def guild_permissions(self, guild: FakeGuild, user: FakeUser) -> int:
        if user.id == guild.owner.id:
            return Perm.ALL
        perms = guild.everyone.permissions
        for role_id in guild.members.get(user.id, []):
            perms |= guild.roles[role_id].permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel, user: FakeUser) -> int:
        """Discord's permission computation: roles, then @everyone / role / member overwrites."""
        if channel.guild is None:
            return Perm.DM
        guild = channel.guild
        perms = self.guild_permissions(guild, user)
        if perms == Perm.ALL:
            return perms
        source = channel.parent if channel.is_thread and channel.parent is not None else channel
        ow = source.overwrites
        if guild.id in ow:
            _, allow, deny = ow[guild.id]
            perms = (perms & ~deny) | allow
        allow = deny = 0
        for role_id in guild.members.get(user.id, []):
            if role_id in ow:
                allow, deny = allow | ow[role_id][1], deny | ow[role_id][2]
        perms = (perms & ~deny) | allow
        if user.id in ow:
            _, allow, deny = ow[user.id]
            perms = (perms & ~deny) | allow
        return perms if perms & Perm.VIEW_CHANNEL else 0

    def is_admin(self, guild: FakeGuild, user: FakeUser) -> bool:
        return bool(self.guild_permissions(guild, user) & Perm.MANAGE_GUILD)

    # --- what users do --------------------------------------------------------------------------

    async def post(self, user: FakeUser, channel: FakeChannel, content: str = "", *,
                   attachments: dict[str, bytes] | list[bytes] | None = None,
                   reply_to: FakeMessage | None = None) -> FakeMessage:
        """A user writes a message (optionally with files); the bot gets MESSAGE_CREATE per its intents."""
        message = FakeMessage(self._snowflake(), channel.id, user, content, reply_to=reply_to.id if reply_to else None,
                              type=19 if reply_to else 0)
        items = attachments.items() if isinstance(attachments, dict) else \
            ((_guess_filename(d, f"file{i}"), d) for i, d in enumerate(attachments or []))
        message.attachments = [self._store_attachment(channel, name, data) for name, data in items]
        self.messages[message.id] = message
        await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def slash(self, user: FakeUser, channel: FakeChannel, command: str, options: dict[str, Any] | None = None,
                    *, attachments: dict[str, bytes | tuple[str, bytes]] | None = None,
                    locale: str | None = None) -> FakeInteraction:
        """A user runs ``/command`` (``"group sub"`` for subcommands) with option values by name.

        Option types come from what the bot registered; values are checked the way Discord's
        client checks them (required, choices, ranges), so an impossible call raises ValueError,
        and a user who could not see the command raises PermissionError."""
        cmd, guild_scoped = self._find_command(channel, command.split()[0], 1)
        self._check_can_use(cmd, user, channel)
        resolved: dict[str, Any] = {}
        values = dict(options or {})
        for name, value in (attachments or {}).items():
            values[name] = value
        opts = self._build_options(cmd, command.split()[1:], values, channel, resolved, focused=None)
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if guild_scoped:
            data["guild_id"] = cmd["guild_id"]
        return await self._interact(IX_COMMAND, user, channel, data, locale=locale)

    async def autocomplete(self, user: FakeUser, channel: FakeChannel, command: str, options: dict[str, Any],
                           *, focused: str, locale: str | None = None) -> FakeInteraction:
        """A user types into an autocomplete option; ``options[focused]`` is what they typed so far."""
        cmd, guild_scoped = self._find_command(channel, command.split()[0], 1)
        self._check_can_use(cmd, user, channel)
        opts = self._build_options(cmd, command.split()[1:], dict(options), channel, {}, focused=focused)
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": opts}
        if guild_scoped:
            data["guild_id"] = cmd["guild_id"]
        return await self._interact(IX_AUTOCOMPLETE, user, channel, data, locale=locale)

    async def context_menu(self, user: FakeUser, message: FakeMessage, command: str,
                           *, locale: str | None = None) -> FakeInteraction:
        """A user picks Apps > ``command`` on a message (a MESSAGE command, type 3)."""
        channel = self.channels[message.channel_id]
        if message.deleted or (message.visible_to is not None and message.visible_to != user.id):
            raise ValueError("the user cannot see that message")
        cmd, guild_scoped = self._find_command(channel, command, 3)
        self._check_can_use(cmd, user, channel)
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 3, "target_id": str(message.id),
                                "resolved": {"messages": {str(message.id): self._message_payload(message)}}}
        if guild_scoped:
            data["guild_id"] = cmd["guild_id"]
        return await self._interact(IX_COMMAND, user, channel, data, target=message, locale=locale)

    async def press(self, user: FakeUser, message: FakeMessage, custom_id: str, *, values: list[str] | None = None,
                    locale: str | None = None) -> FakeInteraction:
        """A user presses the button with ``custom_id`` on ``message`` (it must be there and enabled),
        or picks ``values`` in the select menu with that custom_id."""
        if message.deleted:
            raise ValueError("that message is deleted")
        if message.visible_to is not None and message.visible_to != user.id:
            raise ValueError("only the user who ran the command sees that ephemeral message")
        button = next((c for c in message._walk() if c.get("custom_id") == custom_id), None)
        if button is None:
            raise ValueError(f"no component {custom_id!r} on that message; it has {message.custom_ids()}")
        if button.get("disabled"):
            raise ValueError(f"button {custom_id!r} is disabled")
        data = {"custom_id": custom_id, "component_type": button["type"], "id": button.get("id")}
        if button["type"] in (3, 5, 6, 7, 8):  # select menus send the picked values
            data["values"] = list(values or [])
        return await self._interact(IX_COMPONENT, user, self.channels[message.channel_id], data, message=message,
                                    locale=locale)

    async def submit_modal(self, user: FakeUser, shown_by: FakeInteraction, values: dict[str, str], *,
                           files: dict[str, bytes | tuple[str, bytes] | list[bytes]] | None = None) -> FakeInteraction:
        """A user fills in the modal the bot answered ``shown_by`` with: text inputs by custom_id,
        and file uploads (type 19, inside a label) by custom_id, uploaded as ephemeral attachments
        and resolved in the submission the way Discord sends them."""
        modal = shown_by.modal
        if modal is None:
            raise ValueError("the bot did not answer that interaction with a modal")
        resolved: dict[str, Any] = {}

        def upload(custom_id: str, component: dict[str, Any]) -> list[str]:
            given = (files or {}).get(custom_id)
            items = given if isinstance(given, list) else [] if given is None else [given]
            required = component.get("required") is not False  # discord.py sends null for defaults
            low = component.get("min_values")
            low = max(int(low) if low is not None else 0, 1 if required else 0)
            high = int(component.get("max_values") or 1)
            if not low <= len(items) <= high:
                raise ValueError(f"file upload {custom_id!r} takes {low} to {high} files, not {len(items)}")
            ids = []
            for i, item in enumerate(items):
                filename, data = item if isinstance(item, tuple) else (_guess_filename(item, f"upload{i}"), item)
                att = self._store_attachment(shown_by.channel, filename, data, ephemeral=True)
                resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
                ids.append(str(att.id))
            return ids

        def fill(component: dict[str, Any]) -> dict[str, Any]:
            if component.get("type") == 4:
                return {"type": 4, "id": component.get("id"), "custom_id": component["custom_id"],
                        "value": values.get(component["custom_id"], component.get("value", ""))}
            if component.get("type") == 19:  # file upload
                return {"type": 19, "id": component.get("id"), "custom_id": component["custom_id"],
                        "values": upload(component["custom_id"], component)}
            if component.get("type") == 18:  # label wrapping one component
                return {"type": 18, "id": component.get("id"), "component": fill(component["component"])}
            return {"type": component.get("type"), "id": component.get("id"),
                    "components": [fill(c) for c in component.get("components", [])]}

        data: dict[str, Any] = {"custom_id": modal["custom_id"],
                                "components": [fill(c) for c in modal.get("components", [])]}
        if resolved:
            data["resolved"] = resolved
        return await self._interact(IX_MODAL_SUBMIT, user, shown_by.channel, data, message=shown_by.message)

    # --- what channels show -----------------------------------------------------------------------

    def messages_in(self, channel: FakeChannel | int, *, include_deleted: bool = False,
                    from_bot: bool | None = None, visible_to: FakeUser | None = None) -> list[FakeMessage]:
        """The channel's messages, oldest first. Ephemeral ones are included (``.ephemeral``)
        unless ``visible_to`` names a user who would not see them."""
        channel_id = channel if isinstance(channel, int) else channel.id
        out = [m for m in sorted(self.messages.values(), key=lambda m: m.id) if m.channel_id == channel_id]
        if not include_deleted:
            out = [m for m in out if not m.deleted]
        if from_bot is not None:
            out = [m for m in out if (m.author is self.bot) == from_bot]
        if visible_to is not None:
            out = [m for m in out if m.visible_to in (None, visible_to.id)]
        return out

    def count(self, route: str, *, channel_id: int | None = None, status: int | None = None) -> int:
        """How many requests hit ``route`` (a name from ``_ROUTES``, e.g. ``"send_message"``)."""
        return sum(1 for r in self.requests if r.route == route and (channel_id is None or r.channel_id == channel_id)
                   and (status is None or r.status == status))

    def ack_latencies(self) -> list[float]:
        """Dispatch-to-first-accepted-callback time of every acknowledged interaction, in seconds."""
        return [ix.ack_latency_s for ix in self.interactions.values() if ix.ack_latency_s is not None]

    def ack_percentile(self, p: float) -> float:
        values = sorted(self.ack_latencies())
        if not values:
            raise ValueError("no interaction was acknowledged")
        return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]

    def registered(self, guild: FakeGuild | None = None) -> list[dict[str, Any]]:
        """The command definitions the bot synced (global, or for one guild)."""
        return list(self.commands.get(guild.id if guild else None, {}).values())

    @property
    def session_live(self) -> bool:
        s = self._session
        return s is not None and s.conn is not None and s.conn.open

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``predicate()`` holds; re-checked after every request and gateway message."""
        async def watch() -> None:
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)  # also re-check now and then

        try:
            await asyncio.wait_for(watch(), timeout)
        except TimeoutError:
            raise AssertionError("timed out waiting for the bot") from None

    async def wait_for_client(self, timeout: float = 10.0) -> None:
        """Until a bot has identified and been sent READY and its guilds."""
        await self.wait_until(lambda: self._session is not None and self._session.conn is not None
                              and self._session.guilds_sent, timeout)

    # --- fault injection and gateway control -----------------------------------------------------

    def storm(self, target: str | int | FakeChannel, count: int, retry_after: float = 0.05, *,
              scope: str = "shared", is_global: bool = False) -> None:
        """The next ``count`` requests to ``target`` (a route name, or a channel) get 429.

        discord.py retries a request at most 5 times, so ``count`` >= 5 makes one call fail."""
        key = target.id if isinstance(target, FakeChannel) else target
        self._faults.append(_Fault(key, count, 429, retry_after, scope, is_global))

    def fail(self, target: str | int | FakeChannel, status: int = 500, count: int = 1, *, code: int = 0,
             message: str = "Internal Server Error") -> None:
        """The next ``count`` requests to ``target`` get ``status`` (discord.py retries 500/502/504
        after 1 s, 3 s, ...: use sparingly)."""
        key = target.id if isinstance(target, FakeChannel) else target
        self._faults.append(_Fault(key, count, status, code=code, message=message))

    def set_filesize_limit(self, guild: FakeGuild, limit: int) -> None:
        guild.filesize_limit = limit

    async def drop_connection(self, code: int | None = 4000) -> None:
        """Close the bot's gateway socket: with ``code`` (4000 = unknown error, resumable), or with
        ``code=None`` by cutting the TCP connection. discord.py then RESUMEs."""
        session = self._session
        if session is None or session.conn is None:
            raise RuntimeError("no bot is connected")
        conn = session.conn
        if code is None:
            conn.closed_by_fake = True
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
        else:
            await conn.close(code, b"dropped by the test")

    async def request_heartbeat(self) -> None:
        """Discord may ask for a heartbeat with op 1; the client must answer at once."""
        await self._send_op(1, None)

    async def request_reconnect(self) -> None:
        """op 7 RECONNECT: the client closes and resumes."""
        await self._send_op(7, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """op 9 INVALID_SESSION. Not resumable: discord.py closes and IDENTIFYs again, after its
        ``before_identify_hook`` has slept 5 s (it does that for every identify but the first)."""
        if self._session is not None:
            self._session.resumable = resumable
        await self._send_op(9, resumable)

    async def _send_op(self, op: int, data: Any) -> None:
        session = self._session
        if session is None or session.conn is None:
            raise RuntimeError("no bot is connected")
        await session.conn.send({"op": op, "d": data})

    # --- interactions ----------------------------------------------------------------------------

    def _find_command(self, channel: FakeChannel, name: str, type_: int) -> tuple[dict[str, Any], bool]:
        if channel.guild is not None:
            cmd = self.commands.get(channel.guild.id, {}).get((name, type_))
            if cmd is not None:
                return cmd, True
        cmd = self.commands.get(None, {}).get((name, type_))
        if cmd is None:
            known = [n for scope in self.commands.values() for (n, t) in scope if t == type_]
            raise ValueError(f"no command {name!r} of type {type_} registered (known: {known})")
        return cmd, False

    def _check_can_use(self, cmd: dict[str, Any], user: FakeUser, channel: FakeChannel) -> None:
        """Discord's client only offers a command where its contexts and default permissions allow."""
        context = 1 if channel.is_dm else 0
        contexts = cmd.get("contexts")
        if contexts is not None and context not in contexts:
            raise PermissionError(f"/{cmd['name']} is not available in {'DMs' if context else 'servers'}")
        if contexts is None and channel.is_dm and cmd.get("dm_permission") is False:
            raise PermissionError(f"/{cmd['name']} is guild-only")
        required = cmd.get("default_member_permissions")
        if channel.guild is not None and required is not None:
            perms = self.guild_permissions(channel.guild, user)
            needed = int(required)
            if perms != Perm.ALL and (needed == 0 or perms & needed != needed):
                raise PermissionError(f"{user.username} lacks the permissions {needed} that /{cmd['name']} needs")

    def _build_options(self, cmd: dict[str, Any], path: list[str], values: dict[str, Any], channel: FakeChannel,
                       resolved: dict[str, Any], *, focused: str | None) -> list[dict[str, Any]]:
        defs: list[dict[str, Any]] = cmd.get("options", [])
        if path:  # subcommand (group) path: nest the leaf options inside it
            head = next((o for o in defs if o["name"] == path[0] and o["type"] in (OPT_SUB, OPT_GROUP)), None)
            if head is None:
                raise ValueError(f"/{cmd['name']} has no subcommand {path[0]!r}")
            inner = self._build_options(head, path[1:], values, channel, resolved, focused=focused)
            return [{"type": head["type"], "name": head["name"], "options": inner}]
        if any(o["type"] in (OPT_SUB, OPT_GROUP) for o in defs):
            raise ValueError(f"/{cmd['name']} needs a subcommand: {[o['name'] for o in defs]}")
        by_name = {o["name"]: o for o in defs}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(f"/{cmd['name']} has no options {sorted(unknown)}; it has {sorted(by_name)}")
        if focused is None:
            missing = [o["name"] for o in defs if o.get("required") and o["name"] not in values]
            if missing:
                raise ValueError(f"/{cmd['name']} requires {missing}")
        out = []
        for name, value in values.items():
            spec = by_name[name]
            if name == focused:
                if not spec.get("autocomplete"):
                    raise ValueError(f"option {name!r} of /{cmd['name']} has no autocomplete")
                # Discord sends what the user has typed so far, unchecked.
                out.append({"type": spec["type"], "name": name, "value": value, "focused": True})
                continue
            out.append({"type": spec["type"], "name": name,
                        "value": self._option_value(spec, value, channel, resolved, cmd["name"])})
        return out

    def _option_value(self, spec: dict[str, Any], value: Any, channel: FakeChannel, resolved: dict[str, Any],
                      command: str) -> Any:
        kind, name = spec["type"], spec["name"]
        where = f"option {name!r} of /{command}"
        if kind == OPT_STRING:
            if not isinstance(value, str):
                raise ValueError(f"{where} takes a string")
            if not spec.get("min_length", 0) <= len(value) <= spec.get("max_length", 6000):
                raise ValueError(f"{where}: length {len(value)} is out of range")
        elif kind == OPT_INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where} takes an integer")
        elif kind == OPT_NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where} takes a number")
            value = float(value)
        elif kind == OPT_BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError(f"{where} takes a boolean")
        elif kind == OPT_ATTACHMENT:
            filename, data = value if isinstance(value, tuple) else (_guess_filename(value, name), value)
            att = self._store_attachment(channel, filename, data, ephemeral=True)
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return str(att.id)
        elif kind == OPT_USER:
            if not isinstance(value, FakeUser):
                raise ValueError(f"{where} takes a FakeUser")
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            if channel.guild is not None and value.id in channel.guild.members:
                member = self._member(channel.guild, value)
                member.pop("user")
                member["permissions"] = str(self.permissions_in(channel, value))
                resolved.setdefault("members", {})[str(value.id)] = member
            return str(value.id)
        elif kind == OPT_CHANNEL:
            if not isinstance(value, FakeChannel):
                raise ValueError(f"{where} takes a FakeChannel")
            payload = value.payload()
            payload["permissions"] = str(self.permissions_in(value, self.bot))
            resolved.setdefault("channels", {})[str(value.id)] = payload
            return str(value.id)
        elif kind == OPT_ROLE:
            if not isinstance(value, FakeRole):
                raise ValueError(f"{where} takes a FakeRole")
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        else:
            raise ValueError(f"{where}: option type {kind} is not modelled")
        if kind in (OPT_INTEGER, OPT_NUMBER) and not (
                spec.get("min_value", -math.inf) <= value <= spec.get("max_value", math.inf)):
            raise ValueError(f"{where}: {value} is out of range")
        choices = spec.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise ValueError(f"{where}: {value!r} is not one of {[c['value'] for c in choices]}")
        return value

    async def _interact(self, type_: int, user: FakeUser, channel: FakeChannel, data: dict[str, Any], *,
                        message: FakeMessage | None = None, target: FakeMessage | None = None,
                        locale: str | None = None) -> FakeInteraction:
        if channel.guild is not None and user.id not in channel.guild.members:
            raise ValueError(f"{user.username} is not a member of {channel.guild.name}")
        ix = FakeInteraction(self._snowflake(), "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(60), type_, user, channel,
                             data, {}, self.now(), time.monotonic(), message=message)
        guild = channel.guild
        payload: dict[str, Any] = {
            "id": str(ix.id), "application_id": str(self.app_id), "type": type_, "data": data, "token": ix.token,
            "version": 1, "channel_id": str(channel.id), "channel": channel.payload(),
            "locale": locale or user.locale, "app_permissions": str(self.permissions_in(channel, self.bot)),
            "entitlements": [],
            "attachment_size_limit": guild.filesize_limit if guild else DEFAULT_FILESIZE_LIMIT,
            # A guild-installed app: the owner is the guild, or "0" in the bot's DMs.
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 1 if channel.is_dm else 0,
        }
        if guild is not None:
            member = self._member(guild, user)
            member["permissions"] = str(self.permissions_in(channel, user))
            payload.update(guild_id=str(guild.id), guild_locale=guild.locale, member=member,
                           guild={"id": str(guild.id), "locale": guild.locale, "features": []})
        else:
            payload["user"] = user.payload()
        if message is not None:
            payload["message"] = self._message_payload(message)
        ix.payload = payload
        ix.target = target
        self.interactions[ix.id] = ix
        ix.delivered = await self._dispatch("INTERACTION_CREATE", payload)
        return ix

    def _interaction_for(self, call: _Call) -> FakeInteraction:
        """The interaction a follow-up webhook call (``/webhooks/{app}/{token}...``) is about."""
        token = call.params["token"]
        ix = next((i for i in self.interactions.values() if i.token == token), None)
        if ix is None or call.params["application_id"] != str(self.app_id):
            raise _Refused(404, 10015, "Unknown Webhook")
        if self.now() - ix.created_at > self.token_ttl_s:
            raise _Refused(401, 50027, "Invalid Webhook Token")
        if not ix.acked:  # the webhook only exists once the interaction has been acknowledged
            raise _Refused(404, 10015, "Unknown Webhook")
        return ix

    # --- gateway ----------------------------------------------------------------------------------

    def _later(self, coro: Any) -> None:
        """Run a dispatch from synchronous setup code (only matters while a bot is connected)."""
        if self._session is None:
            coro.close()
            return
        asyncio.get_running_loop().create_task(coro)

    async def _dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> bool:
        """Send a DISPATCH (op 0) to the current session; while it is disconnected it is logged
        and replayed on RESUME. Returns whether a session took it."""
        session = self._session
        if session is None or not session.resumable:
            return False
        if intent is not None and not session.intents & intent:
            return True
        async with session.lock:
            session.seq += 1
            frame = {"op": 0, "t": event, "s": session.seq, "d": data}
            session.log.append(frame)
            if session.conn is not None and session.conn.open:
                with contextlib.suppress(ConnectionError, RuntimeError):  # a dying socket: replayed on resume
                    await session.conn.send(frame)
        self._changed.set()
        return True

    async def _dispatch_message(self, event: str, message: FakeMessage) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE, gated by intents like Discord: GUILD_MESSAGES or
        DIRECT_MESSAGES to get it at all, MESSAGE_CONTENT to see content, embeds, attachments and
        components (except in DMs, the bot's own messages, and messages that mention it)."""
        if message.visible_to is not None:
            return  # ephemeral: nobody else is told
        session = self._session
        if session is None:
            return
        channel = self.channels[message.channel_id]
        if not session.intents & (Intent.DIRECT_MESSAGES if channel.is_dm else Intent.GUILD_MESSAGES):
            return
        payload = self._message_payload(message, gateway=True)
        mentioned = f"<@{self.bot.id}>" in message.content
        if not (session.intents & Intent.MESSAGE_CONTENT or channel.is_dm or message.author is self.bot or mentioned):
            payload.update(content="", embeds=[], attachments=[], components=[])
        await self._dispatch(event, payload)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        query = dict(request.query)
        conn = _Connection(ws, request, request.path, query, query.get("compress"))
        self.connections.append(conn)
        self._changed.set()
        try:
            if query.get("v") != str(API_VERSION) or query.get("encoding", "json") != "json":
                await conn.close(4012 if query.get("v") != str(API_VERSION) else 4002, b"Invalid API version")
                return ws
            if conn.compress == "zstd-stream" and zstandard is None and stdlib_zstd is None:
                raise RuntimeError("the client asked for zstd-stream but the fake has no zstd module")
            await conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms,
                                             "_trace": ["[\"fake-gateway\"]"]}})
            async for msg in ws:
                self._changed.set()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                now = time.monotonic()
                conn.sent_times = [t for t in conn.sent_times if now - t < 60] + [now]
                if len(conn.sent_times) > 120:
                    await conn.close(4008, b"Rate limited.")
                    break
                if len(msg.data) > 4096:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, b"Error while decoding payload.")
                    break
                await self._on_op(conn, frame)
        except ConnectionError:
            pass  # the socket went away while we answered (a drop, or the client closing)
        finally:
            if not conn.closed_by_fake:
                conn.close_code = ws.close_code
            self.close_codes.append(conn.close_code)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                # A client that closes with 1000/1001 ends its session; anything else can resume.
                if ws.close_code in (1000, 1001) and not conn.closed_by_fake:
                    session.resumable = False
            self._changed.set()
        return ws

    async def _on_op(self, conn: _Connection, frame: dict[str, Any]) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            self.heartbeats += 1
            await conn.send({"op": 11})
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            await self._resume(conn, d or {})
        elif conn.session is None:
            await conn.close(4003, b"Not authenticated.")
        elif op == 3:
            self.presences.append(d or {})
        elif op == 8:
            await self._members_chunk(d or {})
        elif op == 4:
            pass  # voice state: not modelled
        else:
            await conn.close(4001, b"Unknown opcode.")

    async def _identify(self, conn: _Connection, d: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.close(4005, b"Already authenticated.")
            return
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await conn.close(4013, b"Invalid intent(s).")
            return
        allowed = sum(bit for name, bit in Intent.PRIVILEGED.items() if name in self.privileged_intents)
        privileged = sum(Intent.PRIVILEGED.values())
        if intents & privileged & ~allowed:
            await conn.close(4014, b"Disallowed intent(s).")
            return
        self.identifies.append(d)
        if self._session is not None:
            self._session.resumable = False  # a new session replaces the old one
        session = _Session(secrets.token_hex(16), intents, d.get("shard"))
        session.conn = conn
        conn.session = session
        self._sessions[session.id] = session
        self._session = session
        ready = {"v": API_VERSION, "user": {**self.bot.payload(), "verified": True, "mfa_enabled": False,
                                            "flags": 0, "email": None},
                 "session_id": session.id, "session_type": "normal", "resume_gateway_url": self.resume_gateway_url,
                 "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                 "application": {"id": str(self.app_id), "flags": self._app_flags()},
                 "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                 "geo_ordered_rtc_regions": [], "user_settings": {}, "auth": {},
                 "_trace": ["[\"fake-gateway\"]"]}
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._dispatch("READY", ready)
        for guild in list(self.guilds.values()):
            await self._dispatch("GUILD_CREATE", self._guild_create(guild), intent=Intent.GUILDS)
        session.guilds_sent = True
        self._changed.set()

    async def _resume(self, conn: _Connection, d: dict[str, Any]) -> None:
        if d.get("token") != self.token:
            await conn.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(d.get("session_id") or "")
        if session is None or not session.resumable or session is not self._session:
            await conn.send({"op": 9, "d": False})
            return
        self.resumes += 1
        old = session.conn
        if old is not None and old is not conn and old.open:
            with contextlib.suppress(Exception):
                await old.close(4000)
        seq = d.get("seq") or 0
        async with session.lock:  # nothing new goes out while the missed events are replayed
            session.conn = conn
            conn.session = session
            for frame in session.log:
                if frame["s"] > seq:
                    await conn.send(frame)
            session.seq += 1
            frame = {"op": 0, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["[\"fake-gateway\"]"]}}
            session.log.append(frame)
            await conn.send(frame)
        self._changed.set()

    async def _members_chunk(self, d: dict[str, Any]) -> None:
        guild = self.guilds.get(int(d.get("guild_id") or 0))
        if guild is None:
            return
        query = (d.get("query") or "").lower()
        user_ids = {int(u) for u in d.get("user_ids") or []}
        members = [self._member(guild, self.users[uid]) for uid in guild.members
                   if (not user_ids or uid in user_ids) and self.users[uid].username.lower().startswith(query)]
        if d.get("limit"):
            members = members[: d["limit"]]
        chunk: dict[str, Any] = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1,
                                 "not_found": [str(u) for u in user_ids if u not in guild.members]}
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        await self._dispatch("GUILD_MEMBERS_CHUNK", chunk)

    def _app_flags(self) -> int:
        return sum(bit for name, bit in _APP_FLAG_FOR_INTENT.items() if name in self.privileged_intents)

    def _member(self, guild: FakeGuild, user: FakeUser) -> dict[str, Any]:
        joined = _iso(_snowflake_time_ms(guild.id))
        return {"user": user.payload(), "roles": [str(r) for r in guild.members.get(user.id, [])], "nick": None,
                "avatar": None, "banner": None, "joined_at": joined, "premium_since": None, "deaf": False,
                "mute": False, "pending": False, "flags": 0, "communication_disabled_until": None}

    def _guild_create(self, guild: FakeGuild) -> dict[str, Any]:
        session = self._session
        everyone = bool(session and session.intents & Intent.GUILD_MEMBERS)
        # Without the privileged members intent Discord sends only the bot itself.
        member_ids = list(guild.members) if everyone else [self.bot.id]
        channels = [c for c in guild.channels.values() if not c.is_thread]
        threads = [c for c in guild.channels.values() if c.is_thread]
        return {
            "id": str(guild.id), "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
            "banner": None, "description": None, "owner_id": str(guild.owner.id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "features": [],
            "roles": [r.payload() for r in guild.roles.values()], "emojis": [], "stickers": [],
            "system_channel_id": str(channels[0].id) if channels else None, "system_channel_flags": 0,
            "rules_channel_id": None, "public_updates_channel_id": None, "safety_alerts_channel_id": None,
            "vanity_url_code": None, "premium_tier": guild.premium_tier, "premium_subscription_count": 0,
            "preferred_locale": guild.locale, "max_members": 500000, "max_video_channel_users": 25,
            "premium_progress_bar_enabled": False, "application_id": None, "incidents_data": None,
            "joined_at": _iso(_snowflake_time_ms(guild.id)), "large": len(guild.members) >= 250,
            "unavailable": False, "member_count": len(guild.members),
            "members": [self._member(guild, self.users[uid]) for uid in member_ids],
            "channels": [c.payload() for c in channels], "threads": [t.payload() for t in threads],
            "presences": [], "voice_states": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "embedded_activities": [],
        }

    def _message_payload(self, message: FakeMessage, *, gateway: bool = False) -> dict[str, Any]:
        channel = self.channels[message.channel_id]
        out: dict[str, Any] = {
            "id": str(message.id), "channel_id": str(message.channel_id), "type": message.type,
            "author": message.author.payload(), "content": message.content,
            "timestamp": _iso(_snowflake_time_ms(message.id)),
            "edited_timestamp": _iso(message.edited_ms) if message.edited_ms else None,
            "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [], "pinned": False,
            "attachments": [a.payload() for a in message.attachments], "embeds": list(message.embeds),
            "components": list(message.components), "flags": message.flags,
        }
        if message.interaction_id is not None:
            ix = self.interactions[message.interaction_id]
            meta: dict[str, Any] = {"id": str(ix.id), "type": ix.type, "user": ix.user.payload(),
                                    "authorizing_integration_owners": ix.payload["authorizing_integration_owners"]}
            if ix.target is not None:
                meta["target_message_id"] = str(ix.target.id)
            if ix.message is not None:
                meta["interacted_message_id"] = str(ix.message.id)
            if message in ix.followups and ix.original is not None and ix.original is not ix.message:
                meta["original_response_message_id"] = str(ix.original.id)
            out.update(webhook_id=str(self.app_id), application_id=str(self.app_id), interaction_metadata=meta)
        if message.reply_to is not None:
            ref = self.messages.get(message.reply_to)
            out["message_reference"] = {"type": 0, "message_id": str(message.reply_to),
                                        "channel_id": str(message.channel_id)}
            if channel.guild is not None:
                out["message_reference"]["guild_id"] = str(channel.guild.id)
            out["referenced_message"] = None if ref is None or ref.deleted else self._message_payload(ref)
        if gateway and channel.guild is not None:
            out["guild_id"] = str(channel.guild.id)
            member = self._member(channel.guild, message.author) if message.author.id in channel.guild.members else None
            if member is not None:
                member.pop("user")
                out["member"] = member
        return out

    # --- CDN ---------------------------------------------------------------------------------

    def _store_attachment(self, channel: FakeChannel, filename: str, data: bytes, *, description: str | None = None,
                          ephemeral: bool = False) -> FakeAttachment:
        att_id = self._snowflake()
        kind = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"{kind}/{channel.id}/{att_id}/{filename}"
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        att = FakeAttachment(att_id, filename, data, content_type, f"{self.base_url}/cdn/{path}",
                             f"{self.base_url}/media/{path}", description, ephemeral)
        self.attachments[att_id] = att
        return att

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        att = self.attachments.get(int(request.match_info["b"])) if request.match_info["b"].isdigit() else None
        if att is None or att.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        self.downloads += 1
        self._changed.set()
        return web.Response(body=att.data, content_type=att.content_type)

    # --- REST dispatch -----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._handle(request)
        finally:
            self._changed.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        route, params = next(((n, m.groupdict()) for meth, rx, n in _COMPILED
                              if meth == request.method and (m := rx.match(path))), ("", {}))
        channel_id = int(params["channel_id"]) if params.get("channel_id", "").isdigit() else None

        def log(status: int, code: int | None) -> None:
            self.requests.append(RequestLog(route or "unknown", request.method, path, status, code, channel_id,
                                            time.monotonic()))

        if request.match_info["version"] != str(API_VERSION):
            log(400, 50041)
            return _json({"message": "Invalid API version", "code": 50041}, 400)
        if not route:
            log(404, 0)
            return _json({"message": "404: Not Found", "code": 0}, 404)
        if route not in _TOKEN_ROUTES and request.headers.get("Authorization") != f"Bot {self.token}":
            log(401, 0)
            return _json({"message": "401: Unauthorized", "code": 0}, 401)

        now = time.monotonic()
        bucket, bucket_hash = self._bucket_for(route, params)
        fault = self._take_fault(route, channel_id)
        if fault is not None:
            log(fault.status, fault.code or None)
            if fault.status == 429:
                return self._too_many(fault.retry_after, fault.scope, fault.is_global, bucket, bucket_hash, now)
            return _json({"message": fault.message, "code": fault.code}, fault.status)
        if route not in _TOKEN_ROUTES:  # interaction endpoints are outside the global limit
            wait = self._global_bucket.take(now)
            if wait is not None:
                log(429, None)
                return self._too_many(wait, "global", True, None, bucket_hash, now)
        wait = bucket.take(now)
        if wait is not None:
            log(429, None)
            return self._too_many(wait, "user", False, bucket, bucket_hash, now)
        headers = bucket.headers(now, bucket_hash)

        try:
            payload, files = await self._read_body(request)
            handler = getattr(self, f"_r_{route}")
            response: web.Response = await handler(_Call(request, route, params, payload, files))
        except _Refused as refused:
            body: dict[str, Any] = {"message": refused.message, "code": refused.code, **refused.extra}
            if refused.errors is not None:
                body["errors"] = refused.errors
            log(refused.status, refused.code)
            ix_token = params.get("token")
            if ix_token:
                ix = next((i for i in self.interactions.values() if i.token == ix_token), None)
                if ix is not None:
                    ix.errors.append((route, refused.status, refused.code))
            if refused.status == 429:
                self.rate_limited += 1
            return _json(body, refused.status, {**headers, **refused.headers})
        except Exception as exc:  # a bug in the fake: fail fast (a 500 would make discord.py retry for seconds)
            self.internal_errors.append(f"{route}: {exc!r}")
            log(400, 0)
            return _json({"message": f"fake_discord internal error: {exc!r}", "code": 0}, 400)
        log(response.status, None)
        response.headers.update(headers)
        return response

    def _bucket_for(self, route: str, params: dict[str, str]) -> tuple[_Bucket, str]:
        if route == "send_message":
            limit, major = self.message_limit, params["channel_id"]
        elif route in _TOKEN_ROUTES:
            limit, major = self.webhook_limit, params.get("token", "")
        else:
            limit, major = self.route_limit, params.get("channel_id") or params.get("guild_id") or ""
        key = (route, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(*limit)
        return bucket, hashlib.sha1(route.encode()).hexdigest()[:16]

    def _take_fault(self, route: str, channel_id: int | None) -> _Fault | None:
        for fault in self._faults:
            if fault.target == route or (channel_id is not None and fault.target == channel_id):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _too_many(self, retry_after: float, scope: str, is_global: bool, bucket: _Bucket | None, bucket_hash: str,
                  now: float) -> web.Response:
        self.rate_limited += 1
        retry_after = math.ceil(retry_after * 1000) / 1000
        # "Via" is what tells discord.py this 429 came from Discord and not from Cloudflare.
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))), "X-RateLimit-Scope": scope, "Via": "1.1 google"}
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        elif bucket is not None:
            headers.update(bucket.headers(now, bucket_hash))
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset-After"] = f"{retry_after:.3f}"
        return _json({"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global},
                     429, headers)

    async def _read_body(self, request: web.Request) -> tuple[dict[str, Any], dict[int, tuple[str, bytes]]]:
        files: dict[int, tuple[str, bytes]] = {}
        payload: dict[str, Any] = {}
        if request.content_type == "application/json":
            body = await request.read()
            if body:
                try:
                    payload = json.loads(body)
                except ValueError:
                    raise _Refused(400, 50109, "The request body contains invalid JSON.") from None
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                assert isinstance(part, aiohttp.BodyPartReader)
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(await part.text())
                elif m := re.fullmatch(r"files\[(\d+)\]", name):
                    files[int(m.group(1))] = (part.filename or f"file{m.group(1)}", bytes(await part.read()))
                else:
                    raise _form_error(name, "UNKNOWN_FIELD", f"Unknown multipart field {name!r}")
        return payload, files

    # --- REST handlers: session and application ------------------------------------------------

    async def _r_get_gateway(self, call: _Call) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _r_get_gateway_bot(self, call: _Call) -> web.Response:
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 1000 - len(self.identifies), "reset_after": 86_400_000,
            "max_concurrency": 1}})

    async def _r_get_me(self, call: _Call) -> web.Response:
        return _json({**self.bot.payload(), "verified": True, "mfa_enabled": False, "flags": 0, "email": None,
                      "locale": "en-US", "banner": None, "accent_color": None})

    async def _r_get_user(self, call: _Call) -> web.Response:
        user = self.users.get(int(call.params["user_id"])) if call.params["user_id"].isdigit() else None
        if user is None:
            raise _Refused(404, 10013, "Unknown User")
        return _json(user.payload())

    async def _r_get_application(self, call: _Call) -> web.Response:
        return _json({"id": str(self.app_id), "name": self.bot.username, "icon": None, "description": "",
                      "summary": "", "type": None, "bot_public": True, "bot_require_code_grant": False,
                      "verify_key": "0" * 64, "owner": self.app_owner.payload(), "team": None,
                      "flags": self._app_flags(), "bot": self.bot.payload(), "interactions_endpoint_url": None,
                      "redirect_uris": [], "approximate_guild_count": len(self.guilds),
                      "integration_types_config": {"0": {}}, "tags": []})

    async def _r_get_guild(self, call: _Call) -> web.Response:
        guild = self._guild(call)
        data = self._guild_create(guild)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                    "member_count", "unavailable"):
            data.pop(key, None)
        return _json(data)

    async def _r_get_guild_channels(self, call: _Call) -> web.Response:
        guild = self._guild(call)
        return _json([c.payload() for c in guild.channels.values() if not c.is_thread])

    async def _r_get_member(self, call: _Call) -> web.Response:
        guild = self._guild(call)
        user_id = int(call.params["user_id"]) if call.params["user_id"].isdigit() else 0
        if user_id not in guild.members:
            raise _Refused(404, 10007, "Unknown Member")
        return _json(self._member(guild, self.users[user_id]))

    def _guild(self, call: _Call) -> FakeGuild:
        guild = self.guilds.get(int(call.params["guild_id"])) if call.params["guild_id"].isdigit() else None
        if guild is None:
            raise _Refused(404, 10004, "Unknown Guild")
        return guild

    # --- REST handlers: commands ---------------------------------------------------------------

    async def _r_get_global_commands(self, call: _Call) -> web.Response:
        self._check_app(call)
        return _json(list(self.commands.get(None, {}).values()))

    async def _r_get_guild_commands(self, call: _Call) -> web.Response:
        self._check_app(call)
        return _json(list(self.commands.get(self._guild(call).id, {}).values()))

    async def _r_sync_global_commands(self, call: _Call) -> web.Response:
        self._check_app(call)
        return _json(self._bulk_overwrite(None, call.payload))

    async def _r_sync_guild_commands(self, call: _Call) -> web.Response:
        self._check_app(call)
        return _json(self._bulk_overwrite(self._guild(call).id, call.payload))

    def _check_app(self, call: _Call) -> None:
        if call.params["application_id"] != str(self.app_id):
            raise _Refused(403, 50001, "Missing Access")

    def _bulk_overwrite(self, scope: int | None, definitions: Any) -> list[dict[str, Any]]:
        """PUT .../commands replaces the whole set. Commands whose (name, type) already existed keep
        their id and cost nothing; new ones count against the daily create budget (Discord's is
        200 a day per scope; here one budget covers all scopes)."""
        if not isinstance(definitions, list):
            raise _form_error("_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        old = self.commands.get(scope, {})
        seen: set[tuple[str, int]] = set()
        for i, d in enumerate(definitions):
            self._validate_command(i, d)
            key = (d["name"], d.get("type", 1))
            if key in seen:
                raise _form_error(str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
            seen.add(key)
        new_keys = [k for k in seen if k not in old]
        day = 86_400.0
        self._creates_today = [t for t in self._creates_today if self.now() - t < day]
        if len(self._creates_today) + len(new_keys) > self.daily_command_creates:
            retry = day - (self.now() - self._creates_today[0]) if self._creates_today else day
            # A real 429 (with Via), so discord.py sleeps retry_after, i.e. hours, unless the client
            # was built with max_ratelimit_timeout.
            raise _Refused(429, 30034, f"Max number of daily application command creates has been reached "
                                       f"({self.daily_command_creates})", extra={"retry_after": retry, "global": False},
                           headers={"Retry-After": str(math.ceil(retry)), "X-RateLimit-Scope": "user",
                                    "Via": "1.1 google"})
        stored: dict[tuple[str, int], dict[str, Any]] = {}
        for d in definitions:
            key = (d["name"], d.get("type", 1))
            previous = old.get(key)
            cmd = {"id": previous["id"] if previous else str(self._snowflake()), "application_id": str(self.app_id),
                   "version": str(self._snowflake()), "type": key[1], "name": d["name"],
                   "description": d.get("description", ""),
                   "default_member_permissions": None if d.get("default_member_permissions") is None
                   else str(d["default_member_permissions"]), "dm_permission": d.get("dm_permission", True),
                   "nsfw": d.get("nsfw", False), "contexts": d.get("contexts"),
                   "integration_types": d.get("integration_types") or [0], "options": d.get("options", [])}
            for extra in ("name_localizations", "description_localizations"):
                if d.get(extra):
                    cmd[extra] = d[extra]
            if scope is not None:
                cmd["guild_id"] = str(scope)
                cmd.pop("dm_permission")
            if previous is not None and _same_definition(previous, cmd):
                cmd["version"] = previous["version"]
            stored[key] = cmd
        for _ in new_keys:
            self._creates_today.append(self.now())
        self.commands_created += len(new_keys)
        self.commands[scope] = stored
        return list(stored.values())

    @staticmethod
    def _validate_command(index: int, d: Any) -> None:
        if not isinstance(d, dict) or "name" not in d:
            raise _form_error(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
        kind = d.get("type", 1)
        name = d["name"]
        if kind == 1:
            if not re.fullmatch(r"[-_'\w]{1,32}", name) or name != name.lower():
                raise _form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            if not 1 <= len(d.get("description") or "") <= 100:
                raise _form_error(f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        elif not 1 <= len(name) <= 32:
            raise _form_error(f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        options = d.get("options") or []
        if len(options) > 25:
            raise _form_error(f"{index}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        optional_seen = False
        for j, o in enumerate(options):
            if o.get("type") in (OPT_SUB, OPT_GROUP):
                continue
            if o.get("required") and optional_seen:
                raise _form_error(f"{index}.options.{j}.required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                                  "Required options must be placed before non-required options")
            optional_seen = optional_seen or not o.get("required")
            if len(o.get("choices") or []) > 25:
                raise _form_error(f"{index}.options.{j}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")

    # --- REST handlers: channels and messages ----------------------------------------------------

    def _channel(self, call: _Call) -> FakeChannel:
        raw = call.params["channel_id"]
        channel = self.channels.get(int(raw)) if raw.isdigit() else None
        if channel is None:
            raise _Refused(404, 10003, "Unknown Channel")
        if channel.guild is not None and not self.permissions_in(channel, self.bot) & Perm.VIEW_CHANNEL:
            raise _Refused(403, 50001, "Missing Access")
        return channel

    def _message(self, channel: FakeChannel, raw_id: str) -> FakeMessage:
        message = self.messages.get(int(raw_id)) if raw_id.isdigit() else None
        if message is None or message.deleted or message.channel_id != channel.id or message.visible_to is not None:
            raise _Refused(404, 10008, "Unknown Message")
        return message

    async def _r_get_channel(self, call: _Call) -> web.Response:
        return _json(self._channel(call).payload())

    async def _r_typing(self, call: _Call) -> web.Response:
        self._channel(call)
        return web.Response(status=204)

    async def _r_create_dm(self, call: _Call) -> web.Response:
        raw = str(call.payload.get("recipient_id", ""))
        user = self.users.get(int(raw)) if raw.isdigit() else None
        if user is None:
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", f"Value \"{raw}\" is not snowflake.")
        return _json(self.dm_channel(user).payload())

    async def _r_get_messages(self, call: _Call) -> web.Response:
        channel = self._channel(call)
        query = call.request.query
        limit = min(100, int(query.get("limit", 50)))
        messages = [m for m in self.messages_in(channel) if m.visible_to is None]
        if "before" in query:
            messages = [m for m in messages if m.id < int(query["before"])]
        if "after" in query:
            messages = [m for m in messages if m.id > int(query["after"])][:limit]
        messages = sorted(messages, key=lambda m: -m.id)[:limit]  # newest first, as Discord returns them
        return _json([self._message_payload(m) for m in messages])

    async def _r_get_message(self, call: _Call) -> web.Response:
        channel = self._channel(call)
        return _json(self._message_payload(self._message(channel, call.params["message_id"])))

    async def _r_send_message(self, call: _Call) -> web.Response:
        channel = self._channel(call)
        if channel.guild is not None:
            perms = self.permissions_in(channel, self.bot)
            needed = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
            if not perms & needed or (call.files and not perms & Perm.ATTACH_FILES):
                raise _Refused(403, 50013, "Missing Permissions")
        message = self._new_message(channel, call, type_=0)
        ref = call.payload.get("message_reference")
        if ref:
            target = self.messages.get(int(ref.get("message_id") or 0))
            if target is None or target.deleted or target.channel_id != channel.id:
                if ref.get("fail_if_not_exists", True):
                    raise _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            else:
                message.reply_to, message.type = target.id, 19
        self.messages[message.id] = message
        await self._dispatch_message("MESSAGE_CREATE", message)
        return _json(self._message_payload(message))

    async def _r_edit_message(self, call: _Call) -> web.Response:
        channel = self._channel(call)
        message = self._message(channel, call.params["message_id"])
        if message.author is not self.bot:
            raise _Refused(403, 50005, "Cannot edit a message authored by another user")
        await self._edit(message, call)
        return _json(self._message_payload(message))

    async def _r_delete_message(self, call: _Call) -> web.Response:
        channel = self._channel(call)
        message = self._message(channel, call.params["message_id"])
        if message.author is not self.bot and not self.permissions_in(channel, self.bot) & Perm.MANAGE_MESSAGES:
            raise _Refused(403, 50013, "Missing Permissions")
        await self._delete(message)
        return web.Response(status=204)

    def _new_message(self, channel: FakeChannel, call: _Call, *, type_: int, author: FakeUser | None = None,
                     interaction: FakeInteraction | None = None, payload: dict[str, Any] | None = None,
                     allow_empty: bool = False) -> FakeMessage:
        """Validate a message body the way Discord does and build it (not stored yet)."""
        body = call.payload if payload is None else payload
        self._validate_body(body, call.files, channel)
        message = FakeMessage(self._snowflake(), channel.id, author or self.bot, str(body.get("content") or ""),
                              embeds=list(body.get("embeds") or []),
                              components=self._number_components(body.get("components") or []),
                              flags=int(body.get("flags") or 0) & (MSG_FLAG_EPHEMERAL | 4 | 4096 | 32768),
                              type=type_, interaction_id=interaction.id if interaction else None)
        if not allow_empty:
            self._check_not_empty(body, call.files)
        message.attachments = self._attachments_from(channel, body, call.files, keep=[])
        message.pinged = _pinged_users(message.content, body.get("allowed_mentions"))
        return message

    @staticmethod
    def _check_not_empty(body: dict[str, Any], files: dict[int, tuple[str, bytes]]) -> None:
        if not (body.get("content") or body.get("embeds") or files or body.get("components")
                or body.get("sticker_ids") or body.get("poll")):
            raise _Refused(400, 50006, "Cannot send an empty message")

    def _validate_body(self, body: dict[str, Any], files: dict[int, tuple[str, bytes]], channel: FakeChannel) -> None:
        limit = channel.guild.filesize_limit if channel.guild else DEFAULT_FILESIZE_LIMIT
        if any(len(data) > limit for _, data in files.values()):
            raise _Refused(413, 40005, "Request entity too large")
        if len(files) > 10:
            raise _form_error("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        content = body.get("content")
        if content is not None and len(str(content)) > 2000:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = sum(len(str(e.get("title", ""))) + len(str(e.get("description", "")))
                    + sum(len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in e.get("fields", []))
                    + len(str((e.get("footer") or {}).get("text", ""))) + len(str((e.get("author") or {}).get("name", "")))
                    for e in embeds)
        if total > 6000:
            raise _form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        for i, e in enumerate(embeds):
            if len(str(e.get("description", ""))) > 4096:
                raise _form_error(f"embeds.{i}.description", "BASE_TYPE_MAX_LENGTH", "Must be 4096 or fewer in length.")
            if len(str(e.get("title", ""))) > 256:
                raise _form_error(f"embeds.{i}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
        rows = body.get("components") or []
        if not int(body.get("flags") or 0) & 32768:  # classic action rows (not Components V2)
            if len(rows) > 5:
                raise _form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
            ids: set[str] = set()
            for i, row in enumerate(rows):
                children = row.get("components") or []
                if row.get("type") != 1 or not 1 <= len(children) <= 5:
                    raise _form_error(f"components.{i}", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
                for j, c in enumerate(children):
                    where = f"components.{i}.components.{j}"
                    cid = c.get("custom_id")
                    if c.get("type") == 2 and c.get("style") != 5 and cid is None and c.get("style") != 6:
                        raise _form_error(f"{where}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
                    if cid is not None:
                        if len(cid) > 100:
                            raise _form_error(f"{where}.custom_id", "BASE_TYPE_MAX_LENGTH",
                                              "Must be 100 or fewer in length.")
                        if cid in ids:
                            raise _form_error(f"{where}.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED",
                                              "Component custom id cannot be duplicated")
                        ids.add(cid)
                    if len(str(c.get("label", ""))) > 80:
                        raise _form_error(f"{where}.label", "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
        for ref in body.get("attachments") or []:
            if isinstance(ref.get("id"), int) and ref["id"] not in files:
                raise _form_error("attachments", "ATTACHMENT_NOT_FOUND", f"Attachment {ref['id']} not found")

    @staticmethod
    def _number_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Discord fills in each component's numeric ``id`` (1, 2, ... in tree order) when omitted."""
        components = json.loads(json.dumps(components))
        used = {c["id"] for c in _walk_components(components) if "id" in c}
        counter = itertools.count(1)
        for c in _walk_components(components):
            if "id" not in c:
                c["id"] = next(i for i in counter if i not in used)
        return components

    def _attachments_from(self, channel: FakeChannel, body: dict[str, Any], files: dict[int, tuple[str, bytes]],
                          keep: list[FakeAttachment]) -> list[FakeAttachment]:
        """Discord's rule: with an ``attachments`` array, the message ends up with exactly the
        existing attachments it lists (by snowflake id) plus the new files it lists (by files[n]
        index); without one, existing attachments stay and every uploaded file is added."""
        listed = body.get("attachments")
        if listed is None:
            new = [self._store_attachment(channel, name, data) for _, (name, data) in sorted(files.items())]
            return keep + new
        by_id = {str(a.id): a for a in keep}
        out: list[FakeAttachment] = []
        for ref in listed:
            ref_id = ref.get("id")
            if str(ref_id) in by_id:
                out.append(by_id[str(ref_id)])
            elif isinstance(ref_id, int | str) and str(ref_id).isdigit() and int(ref_id) in files:
                name, data = files[int(ref_id)]
                out.append(self._store_attachment(channel, ref.get("filename") or name, data,
                                                  description=ref.get("description")))
        return out

    async def _edit(self, message: FakeMessage, call: _Call, body: dict[str, Any] | None = None, *,
                    fills_placeholder: bool = False) -> None:
        """PATCH semantics: fields present replace, absent ones stay. ``fills_placeholder``: this
        turns a deferred "thinking" message into the answer, which users do not see as an edit."""
        body = call.payload if body is None else body
        channel = self.channels[message.channel_id]
        self._validate_body(body, call.files, channel)
        if "content" in body:
            message.content = str(body["content"] or "")
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = self._number_components(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            # Only SUPPRESS_EMBEDS can change on an edit; ephemeral / loading stay what they were.
            message.flags = (message.flags & ~4) | (int(body["flags"]) & 4)
        if "attachments" in body or call.files:
            message.attachments = self._attachments_from(channel, body, call.files, keep=message.attachments)
        if fills_placeholder:
            message.flags &= ~MSG_FLAG_LOADING
        else:
            message.edits += 1
            message.edited_ms = time.time() * 1000
        await self._dispatch_message("MESSAGE_UPDATE", message)

    async def _delete(self, message: FakeMessage) -> None:
        message.deleted = True
        if message.visible_to is None:
            channel = self.channels[message.channel_id]
            data = {"id": str(message.id), "channel_id": str(channel.id)}
            if channel.guild is not None:
                data["guild_id"] = str(channel.guild.id)
            await self._dispatch("MESSAGE_DELETE", data,
                                 intent=Intent.DIRECT_MESSAGES if channel.is_dm else Intent.GUILD_MESSAGES)

    # --- REST handlers: interactions ----------------------------------------------------------

    async def _r_interaction_callback(self, call: _Call) -> web.Response:
        raw_id = call.params["interaction_id"]
        ix = self.interactions.get(int(raw_id)) if raw_id.isdigit() else None
        if ix is None or ix.token != call.params["token"]:
            raise _Refused(404, 10062, "Unknown interaction")
        latency = time.monotonic() - ix.created_real
        kind = call.payload.get("type")
        data = call.payload.get("data") or {}
        try:
            if self.now() - ix.created_at > self.ack_deadline_s:
                raise _Refused(404, 10062, "Unknown interaction")
            if ix.acked:
                raise _Refused(400, 40060, "Interaction has already been acknowledged.")
            response = await self._callback(ix, kind, data, call)
        except _Refused as refused:
            ix.callbacks.append(Callback(int(kind or 0), data, latency, refused.status, refused.code))
            raise
        ix.callbacks.append(Callback(int(kind or 0), data, latency, 200 if response else 204))
        ix._acked.set()
        return response or web.Response(status=204)

    async def _callback(self, ix: FakeInteraction, kind: Any, data: dict[str, Any], call: _Call) -> web.Response | None:
        allowed = {IX_COMMAND: (CB_MESSAGE, CB_DEFERRED, CB_MODAL),
                   IX_COMPONENT: (CB_MESSAGE, CB_DEFERRED, CB_DEFERRED_UPDATE, CB_UPDATE, CB_MODAL),
                   IX_AUTOCOMPLETE: (CB_AUTOCOMPLETE,),
                   IX_MODAL_SUBMIT: (CB_MESSAGE, CB_DEFERRED, CB_DEFERRED_UPDATE, CB_UPDATE)}[ix.type]
        if kind not in allowed:
            raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type")
        ephemeral = bool(int(data.get("flags") or 0) & MSG_FLAG_EPHEMERAL)
        message: FakeMessage | None = None
        if kind == CB_AUTOCOMPLETE:
            if len(data.get("choices") or []) > 25:
                raise _form_error("data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        elif kind == CB_MODAL:
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                raise _form_error("data", "BASE_TYPE_REQUIRED", "A modal needs custom_id, title and components")
        elif kind in (CB_MESSAGE, CB_DEFERRED):
            type_ = 20 if ix.type == IX_COMMAND and ix.data.get("type") == 1 else \
                23 if ix.type == IX_COMMAND else 0
            message = self._new_message(ix.channel, call, type_=type_, interaction=ix, payload=data,
                                        allow_empty=kind == CB_DEFERRED)
            if kind == CB_DEFERRED:
                message.flags |= MSG_FLAG_LOADING
            if ephemeral:
                message.visible_to = ix.user.id
            ix.original = message
            self.messages[message.id] = message
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind in (CB_DEFERRED_UPDATE, CB_UPDATE):
            if ix.message is None:
                raise _form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "No message to update")
            ix.original = message = ix.message
            if kind == CB_UPDATE:
                await self._edit(message, call, data)
        if call.request.query.get("with_response") not in ("1", "true", "True"):
            return None
        interaction: dict[str, Any] = {"id": str(ix.id), "type": ix.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            interaction.update(response_message_id=str(message.id), response_message_loading=message.loading,
                               response_message_ephemeral=message.ephemeral)
            resource["message"] = self._message_payload(message)
        return _json({"interaction": interaction, "resource": resource})

    async def _r_followup(self, call: _Call) -> web.Response:
        ix = self._interaction_for(call)
        if ix.type == IX_AUTOCOMPLETE:
            raise _Refused(404, 10015, "Unknown Webhook")
        original = ix.original
        if original is not None and original.loading and original is not ix.message:
            # The first follow-up after a "thinking" defer replaces that message, and keeps the
            # defer's ephemerality whatever flags the follow-up asks for.
            body = {k: v for k, v in call.payload.items() if k != "flags"}
            self._check_not_empty(body, call.files)
            await self._edit(original, call, body, fills_placeholder=True)
            return _json(self._message_payload(original))
        type_ = original.type if original is not None and original is not ix.message else 0
        message = self._new_message(ix.channel, call, type_=type_, interaction=ix)
        if message.ephemeral:
            message.visible_to = ix.user.id
        ix.followups.append(message)
        self.messages[message.id] = message
        await self._dispatch_message("MESSAGE_CREATE", message)
        if call.request.query.get("wait") in ("0", "false", "False"):
            return web.Response(status=204)
        return _json(self._message_payload(message))

    def _webhook_message(self, call: _Call, ix: FakeInteraction) -> FakeMessage:
        if "message_id" not in call.params:  # @original
            if ix.original is None or ix.original.deleted:
                raise _Refused(404, 10008, "Unknown Message")
            return ix.original
        raw = call.params["message_id"]
        message = next((m for m in ix.followups if str(m.id) == raw and not m.deleted), None)
        if message is None:
            raise _Refused(404, 10008, "Unknown Message")
        return message

    async def _r_get_original(self, call: _Call) -> web.Response:
        ix = self._interaction_for(call)
        return _json(self._message_payload(self._webhook_message(call, ix)))

    async def _r_edit_original(self, call: _Call) -> web.Response:
        ix = self._interaction_for(call)
        message = self._webhook_message(call, ix)
        await self._edit(message, call, fills_placeholder=message.loading)
        return _json(self._message_payload(message))

    async def _r_delete_original(self, call: _Call) -> web.Response:
        ix = self._interaction_for(call)
        await self._delete(self._webhook_message(call, ix))
        return web.Response(status=204)

    _r_get_followup = _r_get_original
    _r_edit_followup = _r_edit_original
    _r_delete_followup = _r_delete_original


def _same_definition(a: dict[str, Any], b: dict[str, Any]) -> bool:
    skip = {"id", "version"}
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def point_discord_py_at(fake: FakeDiscord) -> Callable[[], None]:
    """Aim discord.py's base URLs at ``fake``; returns a callable that puts them back."""
    import discord.asset
    import discord.gateway
    import discord.http
    import yarl

    saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE)
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    discord.asset.Asset.BASE = fake.cdn_base

    def undo() -> None:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE = saved

    return undo
