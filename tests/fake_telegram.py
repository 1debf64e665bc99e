"""A stand-in for the Telegram Bot API on 127.0.0.1, speaking its real protocol.

``/bot<token>/<method>`` with JSON, urlencoded or multipart bodies (aiogram sends
multipart with ``attach://`` files); ``getUpdates`` long polling with offsets and
timeouts, or delivery to a webhook set with ``setWebhook`` (with the secret header);
``getFile`` + ``/file/bot<token>/<path>`` downloads; Telegram's own error texts
("message is not modified", "message to edit not found", "there is no text in the
message to edit", "Too Many Requests: retry after N" with ``parameters.retry_after``);
and Telegram's flood limits per chat and overall (windows scaled down by the test), so a
test can prove the bot's limiter keeps it happy.

Tests inject what users do (text, photo with caption, replies, button presses, forum
topics) and read what each chat shows. Bot messages get ids from 1000 up, users' below.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

BOT_ID = 123456  # a bot's id is the number its token starts with
BOT_USERNAME = "imagebot"
SENDING = ("sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "editMessageText", "editMessageCaption",
           "editMessageMedia")


@dataclass
class Sent:
    """A message as the chat shows it."""

    message_id: int
    chat_id: int
    kind: str  # text | photo | document
    text: str = ""
    reply_markup: dict[str, Any] | None = None
    files: list[bytes] = field(default_factory=list)
    thread_id: int | None = None
    reply_to: int | None = None
    media_group: str | None = None
    from_id: int = BOT_ID
    deleted: bool = False
    edits: int = 0

    @property
    def from_bot(self) -> bool:
        return self.from_id == BOT_ID

    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b["callback_data"]) for row in rows for b in row]


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-token-do-not-log", *, group_limit: tuple[int, float] = (20, 60.0),
                 private_limit: tuple[int, float] = (4, 1.0), global_limit: tuple[int, float] = (30, 1.0)) -> None:
        self.token = token
        self.group_limit = group_limit
        self.private_limit = private_limit
        self.global_limit = global_limit
        self.messages: dict[tuple[int, int], Sent] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[dict[str, Any]] = []
        self.flood_errors = 0
        self.fail_next: dict[str, int] = {}  # method -> retry_after to answer its next call with
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.admins: set[tuple[int, int]] = set()  # (chat_id, user_id)
        self.files: dict[str, bytes] = {}
        self.webhook: dict[str, Any] | None = None
        self.media_edits = True  # False: editMessageMedia refused, as older or local Bot API servers do
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._user_ids: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._bot_ids: dict[int, itertools.count[int]] = defaultdict(lambda: itertools.count(1000))
        self._file_ids = itertools.count(1)
        self._sent_times: dict[int, list[float]] = defaultdict(list)
        self._global_times: list[float] = []
        self._new_update = asyncio.Condition()
        self._changed = asyncio.Event()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/bot{token}/{method}", self._api)
        self.app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._server: TestServer | None = None
        self.base_url = ""

    async def start(self) -> FakeTelegram:
        self._server = TestServer(self.app, host="127.0.0.1")
        # No access log: it is Telegram's log, not the bot's (and it would show the token).
        await self._server.start_server(access_log=None)
        self.base_url = str(self._server.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    # --- what users do ------------------------------------------------------------------

    @staticmethod
    def user(user_id: int, name: str, lang: str = "en", *, username: bool = True) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": name, "language_code": lang}
        if username:
            user["username"] = name.lower()
        return user

    @staticmethod
    def chat(chat_id: int, *, forum: bool = True) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "User"}
        return {"id": chat_id, "type": "supergroup", "title": "Group", "is_forum": forum}

    def add_file(self, data: bytes) -> dict[str, Any]:
        file_id = f"file{next(self._file_ids)}"
        self.files[file_id] = data
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
        return {"file_id": file_id, "file_unique_id": file_id + "u", "width": w, "height": h, "file_size": len(data)}

    async def say(self, chat_id: int, user: dict[str, Any], text: str = "", *, photo: bytes | None = None,
                  document: bytes | None = None, reply_to: int | None = None, thread_id: int | None = None) -> int:
        """A user writes in a chat (text, or a photo / image document with a caption); returns its id."""
        message_id = next(self._user_ids[chat_id])
        picture = photo if photo is not None else document
        kind = "photo" if photo is not None else "document" if document is not None else "text"
        self.messages[(chat_id, message_id)] = Sent(message_id, chat_id, kind, text, files=[picture] if picture else [],
                                                    thread_id=thread_id, reply_to=reply_to, from_id=user["id"])
        msg = self._as_message(message_id, chat_id)
        msg["from"] = user
        if text.startswith("/"):
            key = "caption_entities" if picture else "entities"
            msg[key] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if reply_to is not None:
            msg["reply_to_message"] = self._as_message(reply_to, chat_id)
        await self._push({"message": msg})
        return message_id

    async def press(self, chat_id: int, user: dict[str, Any], message_id: int, data: str) -> str:
        """A user presses an inline button (``data`` as the button carries it, or forged)."""
        query_id = f"q{next(self._update_ids)}"
        await self._push({"callback_query": {"id": query_id, "from": user, "chat_instance": "ci", "data": data,
                                             "message": self._as_message(message_id, chat_id)}})
        return query_id

    # --- what chats show ----------------------------------------------------------------

    def seen(self, chat_id: int, *, kind: str | None = None, from_bot: bool = True) -> list[Sent]:
        out = [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and not m.deleted]
        if from_bot:
            out = [m for m in out if m.from_bot]
        return [m for m in out if kind is None or m.kind == kind]

    def answer_for(self, query_id: str) -> dict[str, Any] | None:
        return next((a for a in self.answers if a.get("callback_query_id") == query_id), None)

    def count(self, method: str, chat_id: int | None = None) -> int:
        return sum(1 for m, p in self.calls
                   if m == method and (chat_id is None or str(p.get("chat_id")) == str(chat_id)))

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Until ``predicate()`` holds, re-checked after every call the bot makes."""
        async def watch() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(watch(), timeout)
        except TimeoutError:
            raise AssertionError("timed out waiting for the bot") from None

    # --- protocol ---------------------------------------------------------------------------

    def _as_message(self, message_id: int, chat_id: int) -> dict[str, Any]:
        sent = self.messages[(chat_id, message_id)]
        sender = ({"id": BOT_ID, "is_bot": True, "first_name": "Imagebot", "username": BOT_USERNAME}
                  if sent.from_bot else self.user(sent.from_id, f"user{sent.from_id}"))
        msg: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "chat": self.chat(chat_id),
                               "from": sender}
        if sent.kind == "photo":
            msg["photo"] = [self.add_file(sent.files[0])]
        elif sent.kind == "document":
            info = self.add_file(sent.files[0])
            msg["document"] = {"file_id": info["file_id"], "file_unique_id": info["file_unique_id"],
                               "mime_type": "image/png", "file_size": info["file_size"]}
        if sent.kind == "text":
            msg["text"] = sent.text
        elif sent.text:
            msg["caption"] = sent.text
        if sent.thread_id is not None:
            msg["message_thread_id"] = sent.thread_id
            msg["is_topic_message"] = True
        if sent.media_group:
            msg["media_group_id"] = sent.media_group
        if sent.reply_markup:
            msg["reply_markup"] = sent.reply_markup
        return msg

    async def _push(self, update: dict[str, Any]) -> None:
        update = {"update_id": next(self._update_ids), **update}
        if self.webhook is not None:
            headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook.get("secret_token") or ""}
            async with aiohttp.ClientSession() as session:
                async with session.post(self.webhook["url"], json=update, headers=headers) as response:
                    self.webhook.setdefault("statuses", []).append(response.status)
            return
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str, **extra: Any) -> web.Response:
        return web.json_response({"ok": False, "error_code": code, "description": description, **extra}, status=code)

    def _too_many(self, retry_after: int) -> web.Response:
        self.flood_errors += 1
        return self._error(429, f"Too Many Requests: retry after {retry_after}", parameters={"retry_after": retry_after})

    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        files: dict[str, bytes] = {}
        params: dict[str, Any] = {}
        if request.content_type == "application/json":
            params = await request.json()
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                assert isinstance(part, aiohttp.BodyPartReader)
                if part.filename is not None:
                    files[part.name or ""] = bytes(await part.read())
                else:
                    params[part.name or ""] = await part.text()
        else:
            params = dict(await request.post())
        for key, value in list(params.items()):  # forms carry complex values JSON-encoded
            if isinstance(value, str) and value in ("true", "false"):
                params[key] = value == "true"
            elif isinstance(value, str) and value[:1] in "[{":
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass
        return params, files

    def _flooded(self, chat_id: int, cost: int = 1) -> int | None:
        """Telegram's flood control: a chat's (and the bot's) messages per window, counted
        when they arrive."""
        now = time.monotonic()
        limit, window = self.private_limit if chat_id > 0 else self.group_limit
        times = [t for t in self._sent_times[chat_id] if now - t < window]
        glimit, gwindow = self.global_limit
        self._global_times = [t for t in self._global_times if now - t < gwindow]
        self._sent_times[chat_id] = times
        if len(times) + cost > limit:
            return max(1, int(window - (now - times[0])) + 1) if times else 1
        if len(self._global_times) + cost > glimit:
            return 1
        times.extend([now] * cost)
        self._global_times.extend([now] * cost)
        return None

    async def _file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=404)
        data = self.files.get(request.match_info["path"].rsplit("/", 1)[-1])
        return web.Response(body=data, content_type="image/png") if data else web.Response(status=404)

    async def _api(self, request: web.Request) -> web.Response:
        try:
            return await self._dispatch(request)
        finally:
            self._changed.set()

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await self._params(request)
        self.calls.append((method, params))
        if method in self.fail_next:
            return self._too_many(self.fail_next.pop(method))
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        if method in SENDING:
            # Telegram counts every picture of an album against the chat's limit.
            cost = len(params["media"]) if method == "sendMediaGroup" else 1
            retry_after = self._flooded(int(params["chat_id"]), cost)
            if retry_after is not None:
                return self._too_many(retry_after)
        response: web.Response = await handler(params, files)
        return response

    def _new(self, params: dict[str, Any], kind: str, text: str, files: list[bytes],
             media_group: str | None = None) -> Sent:
        chat_id = int(params["chat_id"])
        message_id = next(self._bot_ids[chat_id])
        reply = params.get("reply_parameters") or {}
        thread = params.get("message_thread_id")
        sent = Sent(message_id, chat_id, kind, text, params.get("reply_markup"), files,
                    int(thread) if thread else None, reply.get("message_id"), media_group)
        self.messages[(chat_id, message_id)] = sent
        return sent

    @staticmethod
    def _file_of(value: Any, files: dict[str, bytes]) -> bytes:
        return files.get(str(value).removeprefix("attach://"), b"")

    def _result(self, sent: Sent) -> dict[str, Any]:
        return self._as_message(sent.message_id, sent.chat_id)

    @staticmethod
    def _caption_error(caption: str | None) -> web.Response | None:
        if len((caption or "").encode("utf-16-le")) // 2 > 1024:
            return FakeTelegram._error(400, "Bad Request: message caption is too long")
        return None

    @staticmethod
    def _photo_error(data: bytes) -> web.Response | None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Exception:
            return FakeTelegram._error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        if len(data) > 10 * 1024 * 1024 or w + h > 10_000 or max(w, h) / min(w, h) > 20:
            return FakeTelegram._error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        return None

    async def _m_getMe(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        return self._ok({"id": BOT_ID, "is_bot": True, "first_name": "Imagebot", "username": BOT_USERNAME})

    async def _m_getUpdates(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.webhook is not None:
            return self._error(409, "Conflict: can't use getUpdates method while webhook is active; "
                                    "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        async with self._new_update:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones go
            if not self._updates and timeout:
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
            return self._ok(list(self._updates))

    async def _m_setWebhook(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        return self._ok(True)

    async def _m_deleteWebhook(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        self.webhook = None
        return self._ok(True)

    async def _m_setMyCommands(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        self.commands[params.get("language_code") or ""] = params["commands"]
        return self._ok(True)

    async def _m_sendMessage(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        text = str(params.get("text", ""))
        if not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return self._error(400, "Bad Request: message is too long")
        return self._ok(self._result(self._new(params, "text", text, [])))

    async def _m_sendPhoto(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        data = self._file_of(params.get("photo"), files)
        error = self._photo_error(data) or self._caption_error(params.get("caption"))
        if error is not None:
            return error
        return self._ok(self._result(self._new(params, "photo", params.get("caption") or "", [data])))

    async def _m_sendDocument(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        error = self._caption_error(params.get("caption"))
        if error is not None:
            return error
        data = self._file_of(params.get("document"), files)
        return self._ok(self._result(self._new(params, "document", params.get("caption") or "", [data])))

    async def _m_sendMediaGroup(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        media = params["media"]
        if not 2 <= len(media) <= 10:
            return self._error(400, "Bad Request: wrong number of media")
        for item in media:
            error = self._caption_error(item.get("caption"))
            if error is None and item["type"] == "photo":
                error = self._photo_error(self._file_of(item["media"], files))
            if error is not None:
                return error
        group = f"g{len(self.calls)}"
        out = []
        for item in media:
            sent = self._new({**params, "reply_markup": None}, item["type"], item.get("caption") or "",
                             [self._file_of(item["media"], files)], group)
            out.append(self._result(sent))
        return self._ok(out)

    def _editable(self, params: dict[str, Any]) -> Sent | web.Response:
        sent = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if sent is None or sent.deleted:
            return self._error(400, "Bad Request: message to edit not found")
        if not sent.from_bot:
            return self._error(400, "Bad Request: message can't be edited")
        return sent

    _NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                     "exactly the same as a current content and reply markup of the message")

    async def _m_editMessageText(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        sent = self._editable(params)
        if isinstance(sent, web.Response):
            return sent
        if sent.kind != "text":
            return self._error(400, "Bad Request: there is no text in the message to edit")
        if sent.text == params["text"] and sent.reply_markup == params.get("reply_markup"):
            return self._error(400, self._NOT_MODIFIED)
        sent.text, sent.reply_markup, sent.edits = params["text"], params.get("reply_markup"), sent.edits + 1
        return self._ok(self._result(sent))

    async def _m_editMessageCaption(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        sent = self._editable(params)
        if isinstance(sent, web.Response):
            return sent
        if sent.kind == "text":
            return self._error(400, "Bad Request: there is no caption in the message to edit")
        error = self._caption_error(params.get("caption"))
        if error is not None:
            return error
        if sent.text == params.get("caption", "") and sent.reply_markup == params.get("reply_markup"):
            return self._error(400, self._NOT_MODIFIED)
        sent.text, sent.reply_markup, sent.edits = params.get("caption", ""), params.get("reply_markup"), sent.edits + 1
        return self._ok(self._result(sent))

    async def _m_editMessageMedia(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        # Also replaces a text message with media, as the Bot API allows.
        if not self.media_edits:
            return self._error(400, "Bad Request: MEDIA_EDIT_NOT_SUPPORTED")
        sent = self._editable(params)
        if isinstance(sent, web.Response):
            return sent
        media = params["media"]
        error = self._caption_error(media.get("caption"))
        if error is not None:
            return error
        sent.kind = "photo" if media["type"] == "photo" else "document"
        sent.files = [self._file_of(media["media"], files)]
        sent.text, sent.reply_markup, sent.edits = media.get("caption", ""), params.get("reply_markup"), sent.edits + 1
        return self._ok(self._result(sent))

    async def _m_deleteMessage(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        sent = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if sent is None or sent.deleted:
            return self._error(400, "Bad Request: message to delete not found")
        sent.deleted = True
        return self._ok(True)

    async def _m_answerCallbackQuery(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        if any(a["callback_query_id"] == params["callback_query_id"] for a in self.answers):
            return self._error(400, "Bad Request: query is too old and response timeout expired or query ID is "
                                    "invalid")
        self.answers.append(params)
        return self._ok(True)

    async def _m_getFile(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        file_id = params["file_id"]
        if file_id not in self.files:
            return self._error(400, "Bad Request: invalid file_id")
        if len(self.files[file_id]) > 20 * 1024 * 1024:
            return self._error(400, "Bad Request: file is too big")
        return self._ok({"file_id": file_id, "file_unique_id": file_id + "u", "file_size": len(self.files[file_id]),
                         "file_path": f"photos/{file_id}"})

    async def _m_getChatMember(self, params, files):  # type: ignore[no-untyped-def]  # noqa: N802
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": "U"}
        if chat_id > 0 or (chat_id, user_id) in self.admins:
            rights = {k: True for k in ("can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                                        "can_restrict_members", "can_change_info", "can_invite_users",
                                        "can_post_stories", "can_edit_stories", "can_delete_stories",
                                        "can_send_welcome_messages")}
            return self._ok({"status": "creator" if chat_id > 0 else "administrator", "user": user,
                             "is_anonymous": False, "can_be_edited": False, "can_promote_members": False, **rights})
        return self._ok({"status": "member", "user": user})
