"""The shared vendor layer: retries, circuit breaker, timeouts, image download, mapping, polling.

Everything goes over real HTTP to a tiny aiohttp server on 127.0.0.1; backoffs are a
millisecond and the breaker's clock is a variable the test moves, so nothing sleeps long.
"""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from aiohttp import web
from PIL import Image

from engine.backend import CancelToken
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import Img2Img, Txt2Img
from engine.vendors.common import (
    Pending,
    VendorHttp,
    VendorLimits,
    clamp,
    clamp_int,
    fit_size,
    fit_within,
    poll_until,
    sanitize_vendor_text,
    to_png,
)
from locales import tr
from tests.vendor_fakes import FakeVendor, image_bytes


class EchoVendor(FakeVendor):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/ok", self._ok)
        self.app.router.add_post("/reject", self._reject)
        self.app.router.add_post("/busy", self._busy)
        self.app.router.add_get("/files-stream/big.png", self._stream)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        # Chunked, no Content-Length: the client must count while it reads.
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(64):
            await resp.write(b"\0" * 4096)
        await resp.write_eof()
        return resp

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "got": await request.json()})

    async def _reject(self, request: web.Request) -> web.Response:
        return web.json_response({"code": 400, "msg": "bad"}, status=400)

    async def _busy(self, request: web.Request) -> web.Response:
        return web.Response(status=429)


@pytest.fixture
async def fake():
    async with EchoVendor() as f:
        yield f


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(fake: FakeVendor, **kw) -> VendorHttp:
    opts = dict(timeout_s=5.0, retries=3, backoff_base_s=0.001, breaker_threshold=100)
    opts.update(kw)
    return VendorHttp("testvendor", fake.base_url, **opts)


# --- requests, retries, errors ----------------------------------------------------------


async def test_a_healthy_call_returns_json(fake):
    http = client(fake)
    assert await http.json("POST", "/ok", json={"a": 1}) == {"ok": True, "got": {"a": 1}}
    assert fake.calls["/ok"] == 1
    await http.close()


async def test_5xx_is_retried_until_it_succeeds(fake):
    fake.fail_5xx = 2
    http = client(fake, retries=3)
    assert (await http.json("POST", "/ok", json={}))["ok"] is True
    assert fake.calls["/ok"] == 3
    await http.close()


async def test_5xx_every_time_ends_unavailable_and_retryable_after_all_attempts(fake):
    fake.fail_5xx = 99
    http = client(fake, retries=2)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-unavailable"
    assert e.value.retryable and e.value.backend == "testvendor"
    assert fake.calls["/ok"] == 3
    await http.close()


async def test_4xx_is_never_retried(fake):
    http = client(fake, retries=3)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/reject", json={})
    assert e.value.key == "error-vendor-rejected"
    assert e.value.args_["status"] == 400 and not e.value.retryable
    assert fake.calls["/reject"] == 1
    await http.close()


async def test_4xx_with_a_json_body_can_be_passed_to_the_vendor_code(fake):
    http = client(fake)
    assert await http.json("POST", "/reject", json={}, pass_4xx=True) == {"code": 400, "msg": "bad"}
    await http.close()


async def test_429_is_rate_limited_retryable_but_not_retried_here(fake):
    http = client(fake)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/busy", json={})
    assert e.value.key == "error-vendor-rate-limited" and e.value.retryable
    assert fake.calls["/busy"] == 1
    await http.close()


async def test_a_hanging_vendor_times_out_retryable_after_retries(fake):
    fake.hang = True
    http = client(fake, timeout_s=0.2, retries=1)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-timeout" and e.value.retryable
    assert fake.calls["/ok"] == 2
    await http.close()


async def test_a_billed_call_that_timed_out_is_not_sent_twice(fake):
    fake.hang = True
    http = client(fake, timeout_s=0.2, retries=3)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={}, idempotent=False)
    assert e.value.key == "error-vendor-timeout"
    assert fake.calls["/ok"] == 1
    await http.close()


async def test_malformed_json_is_a_bad_answer(fake):
    fake.malformed = True
    http = client(fake)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-bad-answer" and not e.value.retryable
    await http.close()


async def test_nothing_listening_is_unavailable_and_retryable():
    http = VendorHttp("gone", "http://127.0.0.1:9", timeout_s=2.0, retries=1, backoff_base_s=0.001)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-unavailable" and e.value.retryable
    await http.close()


# --- circuit breaker --------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures_and_stops_calling(fake):
    clock = Clock()
    fake.fail_5xx = 99
    http = client(fake, retries=0, breaker_threshold=2, breaker_cooldown_s=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendError):
            await http.json("POST", "/ok", json={})
    assert fake.calls["/ok"] == 2 and http.breaker.state == "open"

    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-unavailable" and e.value.retryable
    assert fake.calls["/ok"] == 2  # refused without a call
    await http.close()


async def test_breaker_half_opens_after_cooldown_reopens_on_failure_closes_on_success(fake):
    clock = Clock()
    fake.fail_5xx = 99
    http = client(fake, retries=0, breaker_threshold=2, breaker_cooldown_s=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(BackendError):
            await http.json("POST", "/ok", json={})

    clock.now += 31
    assert http.breaker.state == "half-open"
    with pytest.raises(BackendError):  # the one trial call goes through, fails
        await http.json("POST", "/ok", json={})
    assert fake.calls["/ok"] == 3 and http.breaker.state == "open"
    with pytest.raises(BackendError):
        await http.json("POST", "/ok", json={})
    assert fake.calls["/ok"] == 3

    fake.fail_5xx = 0
    clock.now += 31
    assert (await http.json("POST", "/ok", json={}))["ok"] is True
    assert http.breaker.state == "closed"
    assert (await http.json("POST", "/ok", json={}))["ok"] is True
    assert fake.calls["/ok"] == 5
    await http.close()


async def test_breaker_stops_retries_midway(fake):
    fake.fail_5xx = 99
    http = client(fake, retries=5, breaker_threshold=2)
    with pytest.raises(BackendError) as e:
        await http.json("POST", "/ok", json={})
    assert e.value.key == "error-vendor-unavailable"
    assert fake.calls["/ok"] == 2
    await http.close()


async def test_4xx_does_not_count_towards_the_breaker(fake):
    http = client(fake, retries=0, breaker_threshold=1)
    for _ in range(3):
        with pytest.raises(BackendError):
            await http.json("POST", "/reject", json={})
    assert http.breaker.state == "closed" and fake.calls["/reject"] == 3
    await http.close()


# --- images ---------------------------------------------------------------------------


async def test_download_converts_to_png(fake):
    url = fake.add_file("a.jpg", image_bytes(40, 30, fmt="JPEG"), "image/jpeg")
    http = client(fake)
    png = await http.download_image(url)
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size == (40, 30)
    await http.close()


async def test_download_rejects_bytes_that_are_not_an_image(fake):
    url = fake.add_file("a.png", image_bytes())
    fake.corrupt_files = True
    http = client(fake)
    with pytest.raises(BackendError) as e:
        await http.download_image(url)
    assert e.value.key == "error-vendor-bad-image"
    await http.close()


async def test_download_bounds_the_size(fake):
    url = fake.add_file("big.png", image_bytes(300, 300))
    http = client(fake, max_image_bytes=100)
    with pytest.raises(BackendError) as e:
        await http.download_image(url)
    assert e.value.key == "error-vendor-image-too-large"
    await http.close()


async def test_download_bounds_the_size_of_a_chunked_answer(fake):
    http = client(fake, max_image_bytes=10_000)
    with pytest.raises(BackendError) as e:
        await http.download_image(fake.base_url + "files-stream/big.png")
    assert e.value.key == "error-vendor-image-too-large" and not e.value.retryable
    await http.close()


async def test_download_refuses_other_schemes(fake):
    http = client(fake)
    with pytest.raises(BackendError) as e:
        await http.download_image("file:///etc/passwd")
    assert e.value.key == "error-vendor-bad-answer"
    await http.close()


def test_to_png_refuses_decompression_bombs():
    with pytest.raises(BackendError) as e:
        to_png(image_bytes(100, 100), max_pixels=50 * 50)
    assert e.value.key == "error-vendor-image-too-large"


async def test_logs_and_errors_never_carry_signed_query_strings(fake, caplog):
    caplog.set_level(logging.DEBUG)
    url = fake.add_file("x.png", image_bytes())
    fake.files.clear()  # the link now answers 404
    http = client(fake, retries=1)
    with pytest.raises(BackendError) as e:
        await http.download_image(url)
    fake.fail_5xx = 1
    await http.json("POST", "/ok?token=SECRET-TOKEN", json={})
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")]  # not the fake's
    assert ours and not any("SECRET" in m for m in ours)
    assert "SECRET" not in str(e.value) and e.value.__cause__ is None
    await http.close()


# --- sizes and limits -------------------------------------------------------------------

JUMDATA_SIZES = [(1024, 1024), (1024, 1536), (1536, 1024)]


def test_fit_size_prefers_the_aspect_ratio_then_the_area():
    assert fit_size(512, 512, JUMDATA_SIZES) == (1024, 1024)
    assert fit_size(512, 768, JUMDATA_SIZES) == (1024, 1536)
    assert fit_size(1000, 704, JUMDATA_SIZES) == (1536, 1024)
    assert fit_size(1024, 960, JUMDATA_SIZES) == (1024, 1024)
    assert fit_size(600, 600, [(256, 256), (512, 512), (1024, 1024)]) == (512, 512)
    assert fit_size(2048, 2048, [(256, 256), (512, 512), (1024, 1024)]) == (1024, 1024)


def test_fit_within_scales_down_keeping_the_aspect_on_multiples_of_8():
    assert fit_within(2048, 1024, 1024) == (1024, 512)
    assert fit_within(512, 768, 1024) == (512, 768)
    assert fit_within(1536, 1000, 1024) == (1024, 664)


def test_clamps():
    assert clamp(25.0, 1.0, 20.0) == 20.0 and clamp(0.0, 0.01, 0.99) == 0.01
    assert clamp_int(7.6, 1, 20) == 8 and clamp_int(200, 1, 150) == 150


def test_limits_map_values_and_report_each_change():
    limits = VendorLimits("v", kinds=("txt2img", "img2img"), max_n=2, max_side=1024, steps_range=(1, 50),
                          cfg_range=(1.0, 20.0), cfg_integer=True, strength_range=(0.01, 0.99), seed=True)
    spec = Img2Img(prompt="cat", width=2048, height=1024, n=4, steps=80, cfg=7.5, strength=1.0,
                   init_image="a" * 64 + ".png", negative_prompt="blurry")
    mapped, notes = limits.check_or_map(spec)
    assert (mapped.width, mapped.height, mapped.n, mapped.steps, mapped.cfg, mapped.strength) == (
        1024, 512, 2, 50, 8.0, 0.99)
    changed = {(p.key, p.args["what"]): p.args for p in notes}
    assert changed[("vendor-note-mapped", "size")]["used"] == "1024x512"
    assert changed[("vendor-note-mapped", "n")] == {"backend": "v", "what": "n", "asked": "4", "used": "2"}
    assert ("vendor-note-mapped", "steps") in changed and ("vendor-note-mapped", "cfg") in changed
    assert ("vendor-note-mapped", "strength") in changed
    assert ("vendor-note-ignored", "negative_prompt") in changed


def test_limits_say_nothing_about_values_left_at_their_defaults():
    _, notes = VendorLimits("v").check_or_map(Txt2Img(prompt="cat"))
    assert notes == []


def test_limits_refuse_a_long_prompt_before_any_call():
    limits = VendorLimits("jumdata", max_prompt_chars=100)
    with pytest.raises(UserFacingError) as e:
        limits.check_or_map(Txt2Img(prompt="x" * 101))
    assert e.value.key == "error-vendor-cannot"
    assert e.value.args_ == {"backend": "jumdata", "reason": "prompt-too-long", "value": 101, "limit": 100}


def test_limits_refuse_a_kind_they_do_not_have():
    with pytest.raises(UserFacingError) as e:
        VendorLimits("v").check_or_map(Img2Img(prompt="cat", init_image="a" * 64 + ".png"))
    assert e.value.args_["reason"] == "kind"


def test_styles_by_name_alias_or_refused_with_the_list():
    limits = VendorLimits("v", styles=("二次元", "low poly"), style_aliases={"anime": "二次元"},
                          default_style="二次元")
    assert limits.resolve_style("") == "二次元"
    assert limits.resolve_style("Anime") == "二次元"
    assert limits.resolve_style("Low-Poly") == "low poly"
    with pytest.raises(UserFacingError) as e:
        limits.resolve_style("gothic")
    assert e.value.args_["reason"] == "style" and "二次元" in e.value.args_["choices"]


def test_sanitize_vendor_text():
    text = "<b>敏感词</b>\n see https://x.example/a?sig=SECRET\x00 " + "z" * 300
    clean = sanitize_vendor_text(text, limit=60)
    assert "<b>" not in clean and "SECRET" not in clean and "\x00" not in clean
    assert clean.startswith("敏感词 see [link]") and len(clean) == 60 and clean.endswith("…")


# --- polling --------------------------------------------------------------------------


async def test_poll_until_returns_the_value_and_reports_pending_states():
    answers = iter([Pending("queued"), Pending("running"), "done"])
    seen: list[str] = []

    async def poll():
        return next(answers)

    async def on_pending(p: Pending) -> None:
        seen.append(p.state)

    result = await poll_until(poll, interval_s=0.001, max_interval_s=0.002, timeout_s=5,
                              on_pending=on_pending)
    assert result == "done" and seen == ["queued", "running"]


async def test_poll_until_gives_up_with_a_final_timeout():
    async def never():
        return Pending()

    with pytest.raises(BackendError) as e:
        await poll_until(never, interval_s=0.001, max_interval_s=0.005, timeout_s=0.05, backend="v")
    assert e.value.key == "error-vendor-timeout" and not e.value.retryable and e.value.backend == "v"


async def test_poll_until_stops_on_cancel():
    cancel = CancelToken()
    polls = 0

    async def poll():
        nonlocal polls
        polls += 1
        if polls == 2:
            cancel.cancel()
        return Pending()

    with pytest.raises(JobCancelled):
        await poll_until(poll, interval_s=0.001, max_interval_s=0.001, timeout_s=5, cancel=cancel)
    assert polls == 2


# --- messages -------------------------------------------------------------------------

# (key, args); messages that name their vendor in the text carry no $backend.
MESSAGES = [
    ("error-vendor-timeout", {}), ("error-vendor-unavailable", {}), ("error-vendor-rejected", {"status": 403}),
    ("error-vendor-rate-limited", {}), ("error-vendor-bad-answer", {}), ("error-vendor-bad-image", {}),
    ("error-vendor-image-too-large", {"limit": 10}),
    ("error-vendor-cannot", {"reason": "prompt-too-long", "value": 120, "limit": 100}),
    ("error-vendor-cannot", {"reason": "style", "value": "gothic", "choices": "a, b"}),
    ("error-vendor-cannot", {"reason": "model", "value": "x", "choices": "a, b"}),
    ("error-vendor-cannot", {"reason": "kind", "value": "inpaint"}),
    ("vendor-note-mapped", {"what": "size", "asked": "1000x704", "used": "1536x1024"}),
    ("vendor-note-ignored", {"what": "negative_prompt"}),
    ("error-paint4-failed", {"code": 1003, "detail": "x"}), ("error-aiimage-failed", {"detail": "x"}),
    ("error-sdapi-failed", {"detail": "x"}),
]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize(("key", "args"), MESSAGES)
def test_every_message_renders_in_both_languages(lang, key, args):
    text = tr(lang, key, backend="jumdata", **args)
    assert text != key and "{" not in text
    if not key.startswith(("error-paint4", "error-aiimage", "error-sdapi")):
        assert "jumdata" in text


async def test_fake_hang_releases_on_close():
    f = await EchoVendor().start()
    f.hang = True
    http = client(f, timeout_s=0.1, retries=0)
    with pytest.raises(BackendError):
        await http.json("POST", "/ok", json={})
    await asyncio.wait_for(f.close(), 5)
    await http.close()
