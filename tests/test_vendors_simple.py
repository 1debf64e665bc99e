"""The four vendor backends (paint4, aiimage, sdapi, jumdata) against fake servers built
from their documents. The fakes check every request; each test ends with no violations
unless it provokes one on purpose."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine.backend import Backend, CancelToken, Finished, Progress, Work
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import Img2Img, Inpaint, Txt2Img
from engine.vendors.aiimage import AiImageBackend
from engine.vendors.jumdata import STYLES, JumdataBackend
from engine.vendors.paint4 import Paint4Backend
from engine.vendors.sdapi import SdApiBackend
from locales import tr
from tests.backend_events import run, size_of
from tests.fixtures_models import InMemoryMedia
from tests.vendor_fakes import image_bytes
from tests.vendor_fakes.aiimage import SAFETY, FakeAiImage
from tests.vendor_fakes.jumdata import FakeJumdata
from tests.vendor_fakes.paint4 import FakePaint4
from tests.vendor_fakes.sdapi import FakeSdApi

FAST = dict(retries=2, backoff_base_s=0.001)


def make_work(spec: Any, media: InMemoryMedia | None = None, **kw: Any) -> Work:
    return Work(job_id="job-1", spec=spec, media=media or InMemoryMedia(), **kw)





@pytest.fixture
async def paint4() -> AsyncIterator[tuple[FakePaint4, Paint4Backend]]:
    async with FakePaint4() as fake:
        backend = Paint4Backend(fake.base_url, timeout_s=5, **FAST)
        yield fake, backend
        await backend.close()


@pytest.fixture
async def aiimage() -> AsyncIterator[tuple[FakeAiImage, AiImageBackend]]:
    async with FakeAiImage() as fake:
        backend = AiImageBackend(fake.base_url, timeout_s=5, **FAST)
        yield fake, backend
        await backend.close()


@pytest.fixture
async def sdapi() -> AsyncIterator[tuple[FakeSdApi, SdApiBackend]]:
    async with FakeSdApi() as fake:
        backend = SdApiBackend(fake.base_url, timeout_s=5, **FAST)
        yield fake, backend
        await backend.close()


def jumdata_backend(fake: FakeJumdata, **kw: Any) -> JumdataBackend:
    opts: dict[str, Any] = dict(timeout_s=5, task_timeout_s=10, poll_interval_s=0.001,
                                poll_max_interval_s=0.002, **FAST)
    opts.update(kw)
    secret = opts.pop("app_secret", fake.app_secret)
    return JumdataBackend(fake.base_url, fake.app_id, secret, **opts)


@pytest.fixture
async def jumdata() -> AsyncIterator[tuple[FakeJumdata, JumdataBackend]]:
    async with FakeJumdata() as fake:
        backend = jumdata_backend(fake)
        yield fake, backend
        await backend.close()


# --- all four ---------------------------------------------------------------------------


async def test_each_backend_is_a_backend_with_models(paint4, aiimage, sdapi, jumdata):
    for _, backend in (paint4, aiimage, sdapi, jumdata):
        assert isinstance(backend, Backend)
        assert backend.concurrency >= 1
        assert backend.supports(Txt2Img(prompt="cat"))
        assert not backend.supports(Inpaint(prompt="cat", init_image="a" * 64 + ".png",
                                            mask_image="b" * 64 + ".png"))
        models = await backend.models()
        assert models and all(m.backend == backend.name for m in models)
    assert sdapi[1].supports(Img2Img(prompt="cat", init_image="a" * 64 + ".png"))
    assert not paint4[1].supports(Img2Img(prompt="cat", init_image="a" * 64 + ".png"))


# --- paint4 -----------------------------------------------------------------------------


async def test_paint4_makes_n_pictures_with_n_calls(paint4):
    fake, backend = paint4
    progress, done = await run(backend, make_work(Txt2Img(prompt="a dog", n=2)))
    assert [p.step for p in progress] == [0, 1, 2] and progress[-1].total == 2
    assert [size_of(i.png) for i in done.images] == [(96, 64), (96, 64)]  # JPEG in, PNG out
    assert fake.requests == [{"desc": "a dog", "model": "Stable_Diffusion"}] * 2
    assert fake.violations == []


async def test_paint4_failure_code_shows_the_vendor_message_cleaned(paint4):
    fake, backend = paint4
    fake.refuse_code, fake.refuse_msg = 1003, "<b>含有敏感词</b> https://x.example/?sig=SECRET"
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="a dog")))
    assert e.value.key == "error-paint4-failed" and not e.value.retryable
    assert e.value.args_["code"] == 1003 and e.value.args_["detail"] == "含有敏感词 [link]"
    assert fake.calls["/aipaint"] == 1


async def test_paint4_refuses_an_unknown_model_before_calling(paint4):
    fake, backend = paint4
    with pytest.raises(UserFacingError) as e:
        await run(backend, make_work(Txt2Img(prompt="a dog", model="dall-e-3")))
    assert e.value.key == "error-vendor-cannot" and e.value.args_["reason"] == "model"
    assert "Stable_Diffusion" in e.value.args_["choices"]
    assert sum(fake.calls.values()) == 0


async def test_paint4_notes_what_it_ignores(paint4):
    _, backend = paint4
    notes = backend.check(Txt2Img(prompt="a dog", width=768, steps=30, negative_prompt="blur"))
    assert {(p.key, p.args["what"]) for p in notes} == {
        ("vendor-note-ignored", "size"), ("vendor-note-ignored", "steps"),
        ("vendor-note-ignored", "negative_prompt")}


async def test_paint4_garbage_answer_is_a_bad_answer(paint4):
    fake, backend = paint4
    fake.malformed = True
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="a dog")))
    assert e.value.key == "error-vendor-bad-answer"


# --- aiimage ----------------------------------------------------------------------------


async def test_aiimage_sends_n_as_a_string_and_a_size_from_its_menu(aiimage):
    fake, backend = aiimage
    spec = Txt2Img(prompt="a cute cat", n=3, width=640, height=576)
    assert [(p.key, p.args) for p in backend.check(spec)] == [
        ("vendor-note-mapped", {"backend": "aiimage", "what": "size", "asked": "640x576", "used": "512x512"})]
    progress, done = await run(backend, make_work(spec))
    assert fake.requests == [{"prompt": "a cute cat", "n": "3", "size": "512x512"}]
    assert len(done.images) == 3 and progress[-1].step == progress[-1].total
    assert fake.file_fetches == 3 and fake.violations == []


async def test_aiimage_refuses_a_prompt_over_its_limit_before_calling(aiimage):
    fake, backend = aiimage
    with pytest.raises(UserFacingError) as e:
        await run(backend, make_work(Txt2Img(prompt="x" * 1001)))
    assert e.value.args_["reason"] == "prompt-too-long" and e.value.args_["limit"] == 1000
    assert sum(fake.calls.values()) == 0


async def test_aiimage_content_refusal_is_shown_and_final(aiimage):
    fake, backend = aiimage
    fake.moderation = True
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="something")))
    assert e.value.key == "error-aiimage-failed" and not e.value.retryable
    assert e.value.args_["detail"] == SAFETY
    assert fake.calls["/get-image"] == 1


async def test_aiimage_never_logs_its_signed_links(aiimage, caplog):
    caplog.set_level(logging.DEBUG)
    fake, backend = aiimage
    await run(backend, make_work(Txt2Img(prompt="a cute cat")))
    assert fake.file_fetches == 1
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")]
    assert not any("SECRET" in m or "sig=" in m for m in ours)


# --- sdapi ------------------------------------------------------------------------------


async def test_sdapi_txt2img_form_is_what_the_document_asks(sdapi):
    fake, backend = sdapi
    spec = Txt2Img(prompt="Anime girl", width=2048, height=1024, n=2, steps=30, cfg=7.5, seed=10086)
    progress, done = await run(backend, make_work(spec))
    assert fake.requests == [{"prompt": "Anime girl", "seed": "10086", "num_outputs": "2",
                              "num_inference_steps": "30", "guidance_scale": "8",
                              "width": "1024", "height": "512"}]
    assert [i.seed for i in done.images] == [3090352432285578, 3090352432285579]
    assert size_of(done.images[0].png) == (128, 64)
    assert [p.step for p in progress] == [0, 1, 2, 3] and fake.violations == []


async def test_sdapi_img2img_sends_the_resized_picture_inline(sdapi):
    fake, backend = sdapi
    media = InMemoryMedia()
    key = media.put(image_bytes(300, 200))
    spec = Img2Img(prompt="Anime girl", init_image=key, width=768, height=512, strength=1.0)
    notes = backend.check(spec)
    assert ("vendor-note-mapped", "strength") in {(p.key, p.args["what"]) for p in notes}
    _, done = await run(backend, make_work(spec, media))
    assert fake.init_sizes == [(768, 512)]
    assert fake.requests[0]["strength"] == "0.99" and "width" not in fake.requests[0]
    assert len(done.images) == 1 and fake.violations == []


async def test_sdapi_retries_5xx_and_then_succeeds(sdapi):
    fake, backend = sdapi
    fake.fail_5xx = 2
    _, done = await run(backend, make_work(Txt2Img(prompt="cat")))
    assert len(done.images) == 1 and fake.calls["/txt2img"] == 3


async def test_sdapi_does_not_retry_4xx(sdapi):
    fake, backend = sdapi
    fake.fail_4xx = 5
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-sdapi-failed" and not e.value.retryable
    assert fake.calls["/txt2img"] == 1


async def test_sdapi_5xx_every_time_is_unavailable_and_retryable(sdapi):
    fake, backend = sdapi
    fake.fail_5xx = 99
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-vendor-unavailable" and e.value.retryable
    assert fake.calls["/txt2img"] == 3


async def test_sdapi_hang_times_out(sdapi):
    fake, _ = sdapi
    fake.hang = True
    backend = SdApiBackend(fake.base_url, timeout_s=0.2, retries=0)
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-vendor-timeout" and e.value.retryable
    await backend.close()


async def test_sdapi_failed_status_is_shown(sdapi):
    fake, backend = sdapi
    fake.refuse = "CUDA out of memory"
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-sdapi-failed" and e.value.args_["detail"] == "CUDA out of memory"


async def test_sdapi_circuit_breaker_opens_on_a_dead_server(sdapi):
    fake, _ = sdapi
    fake.fail_5xx = 99
    backend = SdApiBackend(fake.base_url, retries=0, breaker_threshold=2, breaker_cooldown_s=3600)
    for _ in range(3):
        with pytest.raises(BackendError) as e:
            await run(backend, make_work(Txt2Img(prompt="cat")))
        assert e.value.key == "error-vendor-unavailable"
    assert fake.calls["/txt2img"] == 2
    await backend.close()


# --- jumdata ----------------------------------------------------------------------------


async def test_jumdata_submits_signed_then_polls_then_downloads(jumdata):
    fake, backend = jumdata
    saved: list[dict[str, Any]] = []

    async def save(checkpoint: dict[str, Any]) -> None:
        saved.append(checkpoint)

    spec = Txt2Img(prompt="一只猫", style="anime", width=512, height=768, n=3)
    progress, done = await run(backend, make_work(spec, save_checkpoint=save))
    submit = next(f for f in fake.forms if "text" in f)
    assert {k: submit[k] for k in ("text", "resolution", "style", "num")} == {
        "text": "一只猫", "resolution": "1024*1536", "style": "二次元", "num": "3"}
    assert submit["sign"] == hashlib.sha256(
        f"{fake.app_id}{fake.app_secret}{submit['timestamp']}".encode()).hexdigest()
    assert saved and saved[0]["task_id"] in fake.tasks
    assert fake.calls["/ai/draw/submit"] == 1 and fake.calls["/ai/draw/query"] == 3
    assert [p.step for p in progress] == [0, 1, 2, 3, 4, 5] and progress[0].total == 5
    assert [size_of(i.png) for i in done.images] == [(32, 48)] * 3
    assert fake.violations == []


async def test_jumdata_accepts_the_status_written_as_a_string(jumdata):
    fake, backend = jumdata
    fake.status_as_string = True
    _, done = await run(backend, make_work(Txt2Img(prompt="cat")))
    assert len(done.images) == 1 and fake.violations == []


@pytest.mark.parametrize(("options", "violation"), [
    ({"app_secret": "wrong-secret"}, "bad sign"),
    ({"app_id": "app-999"}, "unknown appId"),
    ({"clock_ms": lambda: 1_000}, "timestamp"),  # this server's clock is far off
])
async def test_jumdata_refused_credentials_are_told_as_a_misconfiguration_and_logged_for_the_admin(
        jumdata, caplog, options, violation):
    caplog.set_level(logging.INFO)
    fake, _ = jumdata
    app_id = options.pop("app_id", fake.app_id)
    secret = options.pop("app_secret", fake.app_secret)
    backend = JumdataBackend(fake.base_url, app_id, secret, retries=1, backoff_base_s=0.001, **options)
    try:
        with pytest.raises(BackendError) as e:
            await run(backend, make_work(Txt2Img(prompt="cat")))
    finally:
        await backend.close()
    assert e.value.key == "error-jumdata-misconfigured" and not e.value.retryable
    assert tr("en", e.value.key, **e.value.args_) == (
        "The bot is not set up correctly for jumdata (code 400). Please tell the bot's admin.")
    assert "管理员" in tr("zh-CN", e.value.key, **e.value.args_)
    assert fake.violations[0].startswith(violation) and fake.tasks == {}
    (warning,) = [r for r in caplog.records if r.name.startswith("imagebot") and r.levelno == logging.WARNING]
    assert "IMAGEBOT_JUMDATA_APP_SECRET" in warning.getMessage()
    sent = fake.forms[0]
    for secret_text in (secret, sent["sign"]):
        assert secret_text not in caplog.text


async def test_jumdata_other_bad_parameters_stay_user_errors(jumdata):
    fake, backend = jumdata
    fake.submit_code = 400
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-jumdata-bad-parameter"


async def test_jumdata_refuses_text_over_100_characters_before_calling(jumdata):
    fake, backend = jumdata
    with pytest.raises(UserFacingError) as e:
        await run(backend, make_work(Txt2Img(prompt="猫" * 101)))
    assert e.value.key == "error-vendor-cannot"
    assert e.value.args_ == {"backend": "jumdata", "reason": "prompt-too-long", "value": 101, "limit": 100}
    assert sum(fake.calls.values()) == 0


async def test_jumdata_refuses_an_unknown_style_with_the_list(jumdata):
    fake, backend = jumdata
    with pytest.raises(UserFacingError) as e:
        backend.check(Txt2Img(prompt="cat", style="gothic"))
    assert e.value.args_["reason"] == "style"
    assert all(s in e.value.args_["choices"] for s in STYLES)
    with pytest.raises(UserFacingError):
        await run(backend, make_work(Txt2Img(prompt="cat", style="gothic")))
    assert sum(fake.calls.values()) == 0


@pytest.mark.parametrize(("style", "sent"), [
    ("", "探索无限"), ("赛博朋克", "赛博朋克"), ("cyberpunk", "赛博朋克"), ("Watercolor", "水彩画"),
    ("low-poly", "low poly"), ("oil painting", "油画"), ("ukiyo-e", "浮世绘"),
])
async def test_jumdata_styles_by_chinese_name_or_english_alias(jumdata, style, sent):
    fake, backend = jumdata
    await run(backend, make_work(Txt2Img(prompt="cat", style=style)))
    assert fake.forms[0]["style"] == sent and fake.violations == []


CODES = [
    (201, "error-jumdata-task-unknown", False), (202, "error-jumdata-moderation", False),
    (400, "error-jumdata-bad-parameter", False), (404, "error-jumdata-wrong-path", False),
    (500, "error-jumdata-maintenance", True), (601, "error-jumdata-not-enabled", False),
    (602, "error-jumdata-account-disabled", False), (604, "error-jumdata-api-disabled", False),
    (606, "error-jumdata-quota", False), (607, "error-jumdata-ip-not-allowed", False),
    (609, "error-jumdata-too-frequent", True), (610, "error-jumdata-timeout", True),
    (999, "error-jumdata-other", False), (777, "error-jumdata-other", False),
]


@pytest.mark.parametrize(("code", "key", "retryable"), CODES)
async def test_jumdata_each_code_has_its_own_message(jumdata, code, key, retryable):
    fake, backend = jumdata
    fake.submit_code = code
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert (e.value.key, e.value.retryable, e.value.args_["code"]) == (key, retryable, code)
    assert fake.calls["/ai/draw/submit"] == 1  # a business code is an answer, not retried here


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_jumdata_code_messages_exist_in_both_languages(lang):
    from locales import tr
    texts = {tr(lang, key, backend="jumdata", code=606) for _, key, _ in CODES}
    assert len(texts) == len({key for _, key, _ in CODES})  # one distinct message per key
    assert not any(t.startswith("error-") or "{" in t for t in texts)


async def test_jumdata_moderation_while_polling(jumdata):
    fake, backend = jumdata
    fake.query_code = 202
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-jumdata-moderation"


async def test_jumdata_restart_resumes_polling_without_a_second_submit(jumdata):
    fake, backend = jumdata
    fake.pending_polls = 3
    stored: dict[str, Any] = {}

    async def save(checkpoint: dict[str, Any]) -> None:
        stored.clear()
        stored.update(checkpoint)

    spec = Txt2Img(prompt="cat", n=2)
    events = backend.run(make_work(spec, save_checkpoint=save))
    assert await anext(events) == Progress(0, 4)  # submitted
    await events.aclose()  # the process dies here
    await backend.close()
    assert fake.calls["/ai/draw/submit"] == 1 and "task_id" in stored

    restarted = jumdata_backend(fake)
    _, done = await run(restarted, make_work(spec, checkpoint=dict(stored)))
    assert len(done.images) == 2
    assert fake.calls["/ai/draw/submit"] == 1 and fake.calls["/ai/draw/query"] == 4
    assert fake.violations == []
    await restarted.close()


async def test_jumdata_ignores_a_task_id_saved_by_another_backend(jumdata):
    fake, backend = jumdata
    work = make_work(Txt2Img(prompt="cat"), checkpoint={"task_id": "zq-1", "task_backend": "zhiqite"})
    await run(backend, work)
    assert fake.calls["/ai/draw/submit"] == 1 and work.checkpoint["task_backend"] == "jumdata"


async def test_jumdata_gives_up_polling_after_the_task_timeout(jumdata):
    fake, _ = jumdata
    fake.pending_polls = 10**6
    backend = jumdata_backend(fake, task_timeout_s=0.05)
    with pytest.raises(BackendError) as e:
        await run(backend, make_work(Txt2Img(prompt="cat")))
    assert e.value.key == "error-vendor-timeout" and not e.value.retryable
    await backend.close()


async def test_jumdata_cancel_while_polling(jumdata):
    fake, backend = jumdata
    fake.pending_polls = 10**6
    cancel = CancelToken()
    events = backend.run(make_work(Txt2Img(prompt="cat"), cancel=cancel))
    assert (await anext(events)).step == 0
    assert (await anext(events)).step == 1  # running
    cancel.cancel()
    with pytest.raises(JobCancelled):
        await anext(events)


async def test_jumdata_query_5xx_is_retried(jumdata):
    fake, backend = jumdata
    fake.pending_polls = 0
    events = backend.run(make_work(Txt2Img(prompt="cat")))
    await anext(events)  # submitted
    fake.fail_5xx = 2
    rest = [e async for e in events]
    assert isinstance(rest[-1], Finished)
    assert fake.calls["/ai/draw/query"] == 3 and fake.calls["/ai/draw/submit"] == 1


def test_from_settings_takes_plain_secrets_and_never_shows_them():
    from pydantic import SecretStr

    from bot.settings import Settings

    settings = Settings(_env_file=None, jumdata_app_id="app", jumdata_app_secret=SecretStr("TOPSECRET"),
                        sdapi_base_url="http://127.0.0.1:1", aiimage_base_url="")
    backend = JumdataBackend.from_settings(settings)
    assert JumdataBackend.configured(settings) and "TOPSECRET" not in repr(backend)
    assert SdApiBackend.configured(settings) and not AiImageBackend.configured(settings)
    assert Paint4Backend.from_settings(settings).limits.models == ("Stable_Diffusion",)
