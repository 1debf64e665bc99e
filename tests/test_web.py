"""The bot's web server (signed image links, vendor callbacks, health) and the CallbackHub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.web import WebServer, redact_path
from engine.vendors.callbacks import CallbackHub, callback_url
from storage.media import MediaStore
from tests.vendor_fakes import image_bytes


@pytest.fixture
async def server(tmp_path: Any) -> AsyncIterator[tuple[WebServer, MediaStore, CallbackHub, httpx.AsyncClient]]:
    media = MediaStore(tmp_path / "media", link_secret=b"web-test-secret")
    hub = CallbackHub()
    srv = WebServer(host="127.0.0.1", port=0, media=media, hub=hub)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    srv.add_route("POST", "/telegram/webhook", ping)
    await srv.start()
    media.public_base_url = srv.url
    async with httpx.AsyncClient() as client:
        yield srv, media, hub, client
    await srv.stop()


# --- signed media links -------------------------------------------------------------------


async def test_a_signed_link_serves_the_picture_with_its_type(server: Any) -> None:
    srv, media, _, client = server
    png = media.put(image_bytes(8, 8))
    jpg = media.put(image_bytes(8, 8, fmt="JPEG"))
    r = await client.get(media.public_url(png))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == media.read(png)
    r = await client.get(media.public_url(jpg))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert srv.port > 0 and srv.url.startswith("http://127.0.0.1:")


async def test_expired_tampered_and_unsigned_links_are_forbidden(server: Any) -> None:
    _, media, _, client = server
    key = media.put(image_bytes(8, 8))
    other = media.put(image_bytes(8, 8, (1, 1, 1)))
    good = media.public_url(key)
    expired = media.public_url(key, ttl_s=-10)
    tampered_sig = good[:-4] + ("0000" if not good.endswith("0000") else "1111")
    swapped_key = good.replace(key, other)
    later = good.replace("exp=", "exp=9")  # pushing the expiry breaks the signature
    for url in (expired, tampered_sig, swapped_key, later, f"{media.public_base_url}/media/{key}"):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert r.content != media.read(key)


async def test_unknown_and_malformed_keys_are_not_found(server: Any) -> None:
    srv, media, _, client = server
    missing = "ab" * 32 + ".png"
    # A validly signed link to a key that is not stored (deleted since).
    media._path(missing)  # the key is well formed
    signed = media.public_url(missing)
    assert (await client.get(signed)).status_code == 404
    for path in ("/media/..%2F..%2Fetc%2Fpasswd", "/media/%2e%2e", "/media/not-a-key.png", "/media/" + "A" * 64 + ".png"):
        r = await client.get(srv.url + path + "?exp=9999999999&sig=00")
        assert r.status_code == 404, path


# --- callbacks ------------------------------------------------------------------------------


async def test_a_callback_is_accepted_once_repeats_are_acknowledged_forgeries_refused(
        server: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    srv, _, hub, client = server
    token = hub.register("zhiqite", "job-7")
    url = callback_url(srv.url, "zhiqite", "job-7", token)
    payload = {"code": "200", "data": {"status": 2}}

    for _ in range(3):  # the vendor retries until it reads {"code": "200"}
        r = await client.post(url, json=payload)
        assert r.status_code == 200 and r.json()["code"] == "200"
    assert await hub.wait("zhiqite", "job-7", timeout=1) == payload
    with pytest.raises(TimeoutError):
        await hub.wait("zhiqite", "job-7", timeout=0.01)  # the repeats were not handed on

    assert (await client.post(url.replace(token, token[::-1]), json=payload)).status_code == 403
    assert (await client.post(callback_url(srv.url, "zhiqite", "job-8", token), json=payload)).status_code == 404
    assert (await client.post(url, content=b"{not json")).status_code == 400
    hub.unregister("zhiqite", "job-7")
    assert (await client.post(url, json=payload)).status_code == 200  # a late retry after the end
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("imagebot"))
    assert token not in ours  # (the test's own HTTP client may log it; the bot must not)
    assert "/callbacks/zhiqite/job-7/***" in ours  # the access log shows the redacted path


async def test_health_and_mounted_routes(server: Any) -> None:
    srv, _, _, client = server
    assert (await client.get(srv.url + "/healthz")).json() == {"ok": True}
    assert (await client.post(srv.url + "/telegram/webhook")).text == "pong"
    with pytest.raises(RuntimeError):
        srv.add_route("GET", "/late", lambda request: None)  # type: ignore[arg-type,return-value]


def test_paths_are_logged_without_tokens_or_queries() -> None:
    assert redact_path("/callbacks/zhiqite/job-1/s3cr3t") == "/callbacks/zhiqite/job-1/***"
    assert redact_path("/media/abc.png?exp=1&sig=2") == "/media/abc.png"
    assert redact_path("/healthz") == "/healthz"


# --- the hub alone --------------------------------------------------------------------------


async def test_hub_hands_distinct_payloads_on_in_order_and_resumes_with_a_saved_token() -> None:
    hub = CallbackHub()
    token = hub.register("v", "j")
    assert hub.register("v", "j") == token  # registering twice keeps the token
    waiter = asyncio.create_task(hub.wait("v", "j", timeout=5))
    assert hub.deliver("v", "j", token, {"status": 1})
    assert hub.deliver("v", "j", token, {"status": 2})
    assert await waiter == {"status": 1}
    assert await hub.wait("v", "j", timeout=1) == {"status": 2}
    assert not hub.deliver("v", "j", "wrong", {"status": 2})
    assert not hub.deliver("v", "other", token, {"status": 2})

    hub.unregister("v", "j", finished=False)  # the process went down mid-wait
    assert not hub.deliver("v", "j", token, {"status": 2})  # refused: the vendor will retry
    assert hub.register("v", "j", token=token) == token  # resumed from the checkpoint
    assert hub.deliver("v", "j", token, {"status": 2})
    assert await hub.wait("v", "j", timeout=1) == {"status": 2}
    assert "token" not in repr(hub) and token not in repr(hub)


def test_callback_urls_quote_their_parts() -> None:
    assert callback_url("https://bot.example.org/", "zhiqite", "a/b", "t-_") == \
        "https://bot.example.org/callbacks/zhiqite/a%2Fb/t-_"


# --- hostile callback bodies ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"[" * 100_000,  # the json module's recursion limit
    b'{"a":' * 50_000,
    ("[" * 40 + "]" * 40).encode(),  # valid JSON, but deeper than any vendor answer
    b'{"data": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
    b"[1, 2, 3]",  # not an object
    b"\xff\xfe not utf-8",
])
async def test_a_bad_callback_body_is_a_4xx_and_the_server_keeps_serving(server: Any, body: bytes) -> None:
    srv, _, hub, client = server
    token = hub.register("zhiqite", "job-deep")
    r = await client.post(callback_url(srv.url, "zhiqite", "job-deep", token), content=body)
    assert r.status_code == 400 and r.json()["code"] == "400"
    ok = await client.post(callback_url(srv.url, "zhiqite", "job-deep", token), json={"data": {"status": 2}})
    assert ok.status_code == 200
    assert await hub.wait("zhiqite", "job-deep", timeout=1) == {"data": {"status": 2}}


async def test_a_wrong_token_is_refused_before_the_body_is_parsed(server: Any) -> None:
    srv, _, hub, client = server
    token = hub.register("zhiqite", "job-9")
    forged = callback_url(srv.url, "zhiqite", "job-9", "x" * len(token))
    # Bodies the parser would refuse with 400: the token check answers first.
    for body in (b"{not json", b"[" * 100_000):
        assert (await client.post(forged, content=body)).status_code == 403
    assert (await client.post(callback_url(srv.url, "zhiqite", "job-nope", token), content=b"{")).status_code == 404
    assert hub.accepts("zhiqite", "job-9", token) and not hub.accepts("zhiqite", "job-9", token[::-1])
    with pytest.raises(TimeoutError):
        await hub.wait("zhiqite", "job-9", timeout=0.01)  # nothing was handed on


async def test_a_callback_larger_than_the_limit_is_refused(tmp_path: Any) -> None:
    media = MediaStore(tmp_path / "media", link_secret=b"web-test-secret")
    hub = CallbackHub()
    srv = WebServer(host="127.0.0.1", port=0, media=media, hub=hub, client_max_size=1024)
    await srv.start()
    try:
        token = hub.register("zhiqite", "job-big")
        async with httpx.AsyncClient() as client:
            r = await client.post(callback_url(srv.url, "zhiqite", "job-big", token),
                                  json={"data": "x" * 4096})
        assert r.status_code == 413
    finally:
        await srv.stop()
