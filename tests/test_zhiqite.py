"""The zhiqite backend against a fake of its document, over real HTTP.

Input pictures travel as signed links to the bot's real web server, which the fake really
fetches; results come by polling (with live previews) or by callback through the same
web server. Each test ends with no protocol violations unless it provokes one.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.web import WebServer
from engine.backend import CancelToken, Finished, Progress, Work
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import ControlNet, FaceSwap, Img2Img, Inpaint, LoraRef, Txt2Img, Upscale
from engine.vendors.callbacks import CallbackHub
from engine.vendors.zhiqite import WITHHELD_DELETED, WITHHELD_HIDDEN, ZhiqiteBackend, preview_jpeg
from locales import tr
from storage.media import MediaStore
from tests.backend_events import run, size_of
from tests.vendor_fakes import image_bytes
from tests.vendor_fakes.zhiqite import FakeZhiqite

KEY_ID = "AKID-zhiqite-test"
KEY_SECRET = "AKSECRET-zhiqite-test"
LINK_SECRET = b"link-secret-for-tests"


@dataclass
class Stack:
    hub: CallbackHub
    media: MediaStore
    web: WebServer
    fake: FakeZhiqite
    make: Callable[..., ZhiqiteBackend]


@pytest.fixture
async def stack(tmp_path: Any) -> AsyncIterator[Stack]:
    hub = CallbackHub()
    media = MediaStore(tmp_path / "media", link_secret=LINK_SECRET)
    web = WebServer(host="127.0.0.1", port=0, media=media, hub=hub)
    await web.start()
    media.public_base_url = web.url
    fake = FakeZhiqite(KEY_ID, KEY_SECRET, forbidden_in_links=(LINK_SECRET.decode(),))
    await fake.start()
    made: list[ZhiqiteBackend] = []

    def make(**kw: Any) -> ZhiqiteBackend:
        options: dict[str, Any] = dict(
            access_key_id=KEY_ID, access_key_secret=KEY_SECRET, hub=hub, public_base_url=web.url,
            use_callbacks=False, poll_interval_s=0.002, poll_max_interval_s=0.01, timeout_s=5,
            retries=2, backoff_base_s=0.001, task_timeout_s=20,
        )
        options.update(kw)
        backend = ZhiqiteBackend(fake.api_url, **options)
        made.append(backend)
        return backend

    yield Stack(hub, media, web, fake, make)
    for backend in made:
        await backend.close()
    await fake.close()
    await web.stop()


def work_for(stack: Stack, spec: Any, **kw: Any) -> Work:
    return Work(job_id=kw.pop("job_id", "job-1"), spec=spec, media=stack.media, **kw)


def last_submit(fake: FakeZhiqite) -> dict[str, Any]:
    return fake.submits[-1][1]


# --- generation ---------------------------------------------------------------------------


async def test_txt2img_by_polling_streams_previews_then_downloads_every_picture(stack: Stack) -> None:
    stack.fake.running_polls = 3
    backend = stack.make()
    saved: list[dict[str, Any]] = []

    async def save(cp: dict[str, Any]) -> None:
        saved.append(cp)

    spec = Txt2Img(prompt="a red fox in snow", negative_prompt="blurry", n=2, seed=42, steps=25, cfg=7.5)
    progress, finished = await run(backend, work_for(stack, spec, save_checkpoint=save))

    assert [size_of(i.png) for i in finished.images] == [(128, 128), (128, 128)]
    assert [i.seed for i in finished.images] == [1063029203, 1063029204]  # the vendor's seeds
    previews = [p.preview for p in progress if p.preview]
    assert len(previews) >= 3 and all(p.startswith(b"\xff\xd8") for p in previews)  # small JPEGs
    steps = [p.step for p in progress]
    assert steps == sorted(steps) and progress[-1].step == progress[-1].total
    body = last_submit(stack.fake)
    assert body["seed"] == "42" and body["batch_size"] * body["n_iter"] == 2
    assert body["prompt"] == "a red fox in snow" and body["negative_prompt"] == "blurry"
    assert body["cfg_scale"] == 7.5 and body["steps"] == 25 and "callbackUrl" not in body
    assert stack.fake.scripts_fields == ["alwayson_scripts"]
    task_id = body["alwayson_scripts"]["id_task"]
    assert saved[0]["task_id"] == task_id and saved[0]["submitted"] is False  # named before submit
    assert saved[-1]["submitted"] is True
    assert stack.fake.violations == []


async def test_a_size_above_1024_is_mapped_down_keeping_the_aspect_and_reported(stack: Stack) -> None:
    backend = stack.make()
    spec = Txt2Img(prompt="wide valley", width=2048, height=1024)
    notes = backend.check(spec)
    assert [(n.key, n.args["what"], n.args["used"]) for n in notes] == [("vendor-note-mapped", "size", "1024x512")]
    await run(backend, work_for(stack, spec))
    body = last_submit(stack.fake)
    assert (body["width"], body["height"]) == (1024, 512)
    assert stack.fake.violations == []


async def test_img2img_and_inpaint_send_signed_links_that_the_vendor_fetches(stack: Stack) -> None:
    backend = stack.make()
    init = stack.media.put(image_bytes(64, 64, (10, 20, 30)))
    mask = stack.media.put(image_bytes(64, 64, (255, 255, 255)))

    _, finished = await run(backend, work_for(stack, Img2Img(prompt="oil painting", init_image=init, strength=0.4)))
    assert len(finished.images) == 1
    body = last_submit(stack.fake)
    assert body["denoising_strength"] == 0.4
    assert body["alwayson_scripts"]["image_link"].startswith(f"{stack.web.url}/media/{init}?exp=")
    assert "mask_link" not in body["alwayson_scripts"]

    await run(backend, work_for(stack, Inpaint(prompt="a hat", init_image=init, mask_image=mask), job_id="job-2"))
    scripts = last_submit(stack.fake)["alwayson_scripts"]
    assert scripts["mask_link"].startswith(f"{stack.web.url}/media/{mask}?")
    assert stack.fake.calls_to("image2image") == 2
    # The fake downloaded all three links from the real web server.
    assert len(stack.fake.fetched_links) == 3
    assert all(u.startswith(f"{stack.web.url}/media/") for u in stack.fake.fetched_links)
    assert stack.fake.violations == []


async def test_controlnet_maps_the_control_type_to_the_documented_module_and_model(stack: Stack) -> None:
    backend = stack.make()
    control = stack.media.put(image_bytes(64, 64, (0, 0, 0)))
    spec = ControlNet(prompt="a house", control_image=control, control_type="depth", control_scale=0.7)
    _, finished = await run(backend, work_for(stack, spec))
    assert len(finished.images) == 1
    args = last_submit(stack.fake)["alwayson_scripts"]["controlnet"]["args"]
    assert (args[0]["module"], args[0]["model"], args[0]["weight"]) == ("depth_midas", "control_v11f1p_sd15_depth", 0.7)
    assert stack.fake.fetched_links == [args[0]["image_link"]]
    assert stack.fake.violations == []


async def test_the_scripts_object_spelling_is_switchable(stack: Stack) -> None:
    backend = stack.make(scripts_field="always_on_scripts")
    await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert stack.fake.scripts_fields == ["always_on_scripts"]
    assert stack.fake.violations == []


async def test_appcode_authentication_replaces_the_key_pair(stack: Stack) -> None:
    stack.fake.appcode = "APPCODE-VALUE-123"
    backend = stack.make(access_key_id="", access_key_secret="", appcode="APPCODE-VALUE-123")
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert len(finished.images) == 1 and stack.fake.violations == []


async def test_refused_credentials_tell_the_admin(stack: Stack) -> None:
    backend = stack.make(access_key_secret="wrong")
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert err.value.key == "error-zhiqite-auth" and err.value.args_["status"] == 401
    assert "wrong" not in str(err.value)


# --- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "as_string"), [("running12", False), ("success1", False), ("success1", True)])
async def test_face_swap_by_roop_reads_both_documented_status_schemes(stack: Stack, scheme: str, as_string: bool) -> None:
    stack.fake.tool_scheme = scheme
    stack.fake.tool_status_as_string = as_string
    backend = stack.make(use_callbacks=True)  # roop documents no callbackUrl: polled anyway
    face = stack.media.put(image_bytes(64, 64, (200, 150, 120)))
    target = stack.media.put(image_bytes(96, 80, (20, 40, 60)))
    _, finished = await run(backend, work_for(stack, FaceSwap(face_image=face, target_image=target)))
    assert size_of(finished.images[0].png) == (96, 80)
    body = last_submit(stack.fake)
    assert set(body) == {"sourceUrl", "targetUrl", "businessTaskId"}
    assert f"/media/{face}?" in body["sourceUrl"] and f"/media/{target}?" in body["targetUrl"]
    assert stack.fake.calls_to("queryTask") >= 1
    assert stack.fake.violations == []


async def test_upscale_by_enhance_asks_for_the_scale_in_both_documented_ways(stack: Stack) -> None:
    backend = stack.make()
    image = stack.media.put(image_bytes(64, 48, (1, 2, 3)))
    _, finished = await run(backend, work_for(stack, Upscale(image=image, scale=3)))
    assert size_of(finished.images[0].png) == (192, 144)
    body = last_submit(stack.fake)
    assert (body["resizeMode"], body["upscalingResize"]) == (0, 3)
    assert (body["upscalingResizeW"], body["upscalingResizeH"]) == (192, 144)
    assert stack.fake.violations == []


async def test_upscale_refuses_a_picture_above_1536_before_any_call(stack: Stack) -> None:
    backend = stack.make()
    image = stack.media.put(image_bytes(1600, 64))
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Upscale(image=image)))
    assert err.value.key == "error-zhiqite-input-too-large" and not err.value.retryable
    assert stack.fake.submits == []


def picture_jobs(stack: Stack) -> dict[str, Any]:
    key = stack.media.put(image_bytes())
    return {
        "img2img": Img2Img(prompt="x", init_image=key),
        "inpaint": Inpaint(prompt="x", init_image=key, mask_image=key),
        "controlnet": ControlNet(prompt="x", control_image=key, control_type="canny"),
        "faceswap": FaceSwap(face_image=key, target_image=key),
        "upscale": Upscale(image=key),
    }


@pytest.mark.parametrize("kind", ["img2img", "inpaint", "controlnet", "faceswap", "upscale"])
async def test_picture_jobs_without_a_public_address_are_refused_saying_why_before_any_call(
        stack: Stack, kind: str) -> None:
    backend = stack.make(public_base_url="")
    spec = picture_jobs(stack)[kind]
    assert backend.supports(spec)  # so that check() can say why, instead of a bare "cannot"
    with pytest.raises(BackendError) as err:
        backend.check(spec)
    assert err.value.key == "error-zhiqite-needs-public-url"
    assert err.value.retryable  # a fallback backend may still take the job
    assert tr("en", err.value.key, **err.value.args_) == (
        f"zhiqite can do {kind} jobs only when the bot has a public web address for the pictures "
        "(the IMAGEBOT_PUBLIC_BASE_URL setting). Please tell the bot's admin.")
    assert "IMAGEBOT_PUBLIC_BASE_URL" in tr("zh-CN", err.value.key, **err.value.args_)
    with pytest.raises(BackendError) as again:
        await run(backend, work_for(stack, spec))
    assert again.value.key == "error-zhiqite-needs-public-url"
    assert sum(stack.fake.calls.values()) == 0
    assert backend.check(Txt2Img(prompt="x")) == []  # txt2img needs no links


# --- the API gateway ----------------------------------------------------------------------


@pytest.mark.parametrize(("message", "key", "retryable", "says"), [
    ("Quota Exhausted", "error-zhiqite-quota", False, "used up the zhiqite calls it paid for"),
    ("Throttled by APP Flow Control", "error-zhiqite-throttled", True, "wait a little"),
    ("Throttled by API Flow Control", "error-zhiqite-throttled", True, "wait a little"),
    ("Invalid AppCode `not exists`", "error-zhiqite-auth", False, "credentials were refused"),
])
async def test_an_api_gateway_refusal_tells_quota_and_throttling_apart_from_bad_credentials(
        stack: Stack, caplog: pytest.LogCaptureFixture, message: str, key: str, retryable: bool,
        says: str) -> None:
    caplog.set_level(logging.WARNING)
    stack.fake.gateway_refusals = [message]
    backend = stack.make(default_model="photon_v1_84728.safetensors")  # the submit is the first call
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert (err.value.key, err.value.retryable, err.value.args_["status"]) == (key, retryable, 403)
    assert says in tr("en", key, **err.value.args_)
    assert tr("zh-CN", key, **err.value.args_) != tr("en", key, **err.value.args_)
    assert stack.fake.tasks == {} and stack.fake.calls_to("text2image") == 1
    assert message in caplog.text and KEY_SECRET not in caplog.text  # the operator reads why


async def test_a_throttled_submit_leaves_no_task_behind_for_a_rerun(stack: Stack) -> None:
    stack.fake.gateway_refusals = ["Throttled by APP Flow Control"]
    saved: dict[str, Any] = {}

    async def save(cp: dict[str, Any]) -> None:
        saved.update(cp)

    backend = stack.make(default_model="photon_v1_84728.safetensors")
    with pytest.raises(BackendError):
        await run(backend, work_for(stack, Txt2Img(prompt="cat"), save_checkpoint=save))
    assert saved["task_id"] is None  # the gateway refused it: nothing to resume


# --- polling through bad answers ------------------------------------------------------------


@pytest.mark.parametrize("faults", [
    ["not-json"],
    ["no-data", "no-status", "not-json"],
    ["5xx"] * 4,  # more than one query's retries
    ["throttled", "not-json", "throttled"],
])
async def test_unreadable_or_failed_polls_are_asked_again_and_the_job_still_finishes(
        stack: Stack, faults: list[str]) -> None:
    stack.fake.bad_queries = list(faults)
    backend = stack.make(default_model="photon_v1_84728.safetensors")
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert len(finished.images) == 1 and size_of(finished.images[0].png) == (128, 128)
    assert stack.fake.bad_queries == []  # every fault was answered
    assert stack.fake.calls_to("text2image") == 1  # and nothing was submitted twice
    assert stack.fake.violations == []


async def test_a_task_that_only_ever_answers_garbage_is_given_up_after_a_few_polls(stack: Stack) -> None:
    stack.fake.bad_queries = ["not-json"] * 50
    backend = stack.make(default_model="photon_v1_84728.safetensors")
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert err.value.key == "error-vendor-bad-answer" and not err.value.retryable
    assert stack.fake.calls_to("queryTaskInfo") == 6  # not one billed poll after another until the timeout
    assert stack.fake.calls_to("text2image") == 1


# --- callbacks ----------------------------------------------------------------------------


async def test_the_result_arrives_by_callback_once_and_forged_callbacks_are_refused(
        stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack.fake.hold_callbacks = asyncio.Event()
    stack.fake.duplicate_callbacks = 2
    # A slow safety poll: the result must come through the callback.
    backend = stack.make(use_callbacks=True, callback_poll_interval_s=60, callback_poll_max_interval_s=60)
    job = asyncio.create_task(run(backend, work_for(stack, Txt2Img(prompt="cat", n=2), job_id="job-cb")))
    await stack.fake.submitted.wait()

    cb_url = last_submit(stack.fake)["callbackUrl"]
    token = cb_url.rsplit("/", 1)[1]
    assert cb_url == f"{stack.web.url}/callbacks/zhiqite/job-cb/{token}" and len(token) >= 32
    forged = {"code": "200", "data": {"status": 2, "differentialImageRspList": [
        {"image_url": "http://127.0.0.1:1/evil.png", "image_status": 1, "img_audit_status": True}]}}
    async with httpx.AsyncClient() as client:
        wrong = await client.post(f"{stack.web.url}/callbacks/zhiqite/job-cb/{'x' * len(token)}", json=forged)
        unknown = await client.post(f"{stack.web.url}/callbacks/zhiqite/job-nope/{token}", json=forged)
    assert (wrong.status_code, unknown.status_code) == (403, 404)

    stack.fake.hold_callbacks.set()
    _, finished = await job
    await stack.fake.settle()
    assert [size_of(i.png) for i in finished.images] == [(128, 128), (128, 128)]
    assert stack.fake.calls_to("queryTaskInfo") == 0
    task_id = last_submit(stack.fake)["alwayson_scripts"]["id_task"]
    # The callback and its two repeats were all answered {"code": "200"}.
    assert stack.fake.callbacks_accepted[task_id] == 3
    assert all(a[2] == {"code": "200", "msg": "success"} for a in stack.fake.callback_attempts)
    assert stack.fake.violations == []
    for secret in (token, KEY_SECRET, LINK_SECRET.decode()):
        assert secret not in caplog.text


async def test_a_lost_callback_is_caught_by_the_safety_poll(stack: Stack) -> None:
    stack.fake.callback_schedule = ()  # the vendor never calls back
    backend = stack.make(use_callbacks=True, callback_poll_interval_s=0.005, callback_poll_max_interval_s=0.01)
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert len(finished.images) == 1
    assert stack.fake.calls_to("queryTaskInfo") >= 1


async def test_while_waiting_for_the_callback_progress_and_previews_are_polled(stack: Stack) -> None:
    stack.fake.hold_callbacks = asyncio.Event()
    stack.fake.running_polls = 20  # polls see the task running (with progress) until the callback comes
    backend = stack.make(use_callbacks=True, callback_poll_interval_s=0.005, callback_poll_max_interval_s=0.01)
    progress: list[Progress] = []
    finished: list[Finished] = []
    async for event in backend.run(work_for(stack, Txt2Img(prompt="cat"), job_id="job-cbp")):
        if isinstance(event, Finished):
            finished.append(event)
            continue
        progress.append(event)
        if len([p for p in progress if p.preview]) >= 2:
            stack.fake.hold_callbacks.set()  # now the vendor finishes and calls back
    await stack.fake.settle()
    assert len(finished) == 1 and len(finished[0].images) == 1
    previews = [p for p in progress if p.preview]
    assert previews and all(p.preview.startswith(b"\xff\xd8") for p in previews)
    middle = [p.step for p in progress[1:-1]]
    assert middle and all(0 < s < 100 for s in middle) and middle == sorted(middle)
    task_id = last_submit(stack.fake)["alwayson_scripts"]["id_task"]
    assert stack.fake.callbacks_accepted[task_id] == 1
    assert stack.fake.calls_to("text2image") == 1 and stack.fake.violations == []


def test_callback_mode_polls_for_progress_at_a_modest_rate_by_default() -> None:
    backend = ZhiqiteBackend("http://127.0.0.1:9/AIGCImgOpenServ", appcode="x")
    assert 2.0 <= backend.callback_poll_interval_s <= 10.0  # progress within seconds, not a 30 s silence
    assert backend.callback_poll_max_interval_s <= 60.0


async def test_enhance_results_come_by_callback_too(stack: Stack) -> None:
    backend = stack.make(use_callbacks=True, callback_poll_interval_s=60, callback_poll_max_interval_s=60)
    image = stack.media.put(image_bytes(32, 32))
    _, finished = await run(backend, work_for(stack, Upscale(image=image, scale=2)))
    assert size_of(finished.images[0].png) == (64, 64)
    assert stack.fake.calls_to("queryTask") == 0
    assert stack.fake.violations == []


# --- moderation, failures -----------------------------------------------------------------


async def test_moderated_pictures_are_withheld_with_a_reason_and_not_downloaded(stack: Stack) -> None:
    stack.fake.moderation = {1: "deleted", 2: "hidden"}
    backend = stack.make()
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat", n=3)))
    first, deleted, hidden = finished.images
    assert size_of(first.png) and first.withheld_reason is None
    assert (deleted.png, deleted.withheld_reason) == (b"", WITHHELD_DELETED)
    assert (hidden.png, hidden.withheld_reason) == (b"", WITHHELD_HIDDEN)
    assert stack.fake.file_fetches == 1
    assert "违反" in tr("zh-CN", WITHHELD_DELETED) and "content" in tr("en", WITHHELD_HIDDEN)


@pytest.mark.parametrize(("fault", "key"), [
    ("submit_code", "error-zhiqite-rejected"),
    ("fail_task", "error-zhiqite-failed"),
    ("query_code", "error-zhiqite-rejected"),
    ("malformed", "error-vendor-bad-answer"),
])
async def test_vendor_failures_end_the_job_with_a_localized_error(stack: Stack, fault: str, key: str) -> None:
    value: Any = "400" if fault.endswith("_code") else True
    setattr(stack.fake, fault, value)
    backend = stack.make()
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert err.value.key == key and not err.value.retryable
    assert tr("zh-CN", key, **err.value.args_)  # renders in Chinese with its arguments


async def test_a_5xx_on_submit_is_retried(stack: Stack) -> None:
    stack.fake.fail_5xx = 1
    backend = stack.make(default_model="photon_v1_84728.safetensors")  # no catalogue call first
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert len(finished.images) == 1 and stack.fake.calls_to("text2image") == 2
    assert stack.fake.violations == []


async def test_a_hung_task_is_given_up_after_the_task_timeout(stack: Stack) -> None:
    stack.fake.hang_task = True
    backend = stack.make(task_timeout_s=0.05)
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert err.value.key == "error-vendor-timeout" and not err.value.retryable


async def test_cancel_stops_waiting(stack: Stack) -> None:
    stack.fake.hang_task = True
    backend = stack.make()
    work = work_for(stack, Txt2Img(prompt="cat"), cancel=CancelToken())
    with pytest.raises(JobCancelled):
        async for event in backend.run(work):
            assert isinstance(event, Progress)
            work.cancel.cancel()


# --- restart ------------------------------------------------------------------------------


async def test_a_restarted_job_resumes_polling_its_task_without_a_second_submit(stack: Stack) -> None:
    stack.fake.running_polls = 3
    saved: dict[str, Any] = {}

    async def save(cp: dict[str, Any]) -> None:
        saved.clear()
        saved.update(cp)

    spec = Txt2Img(prompt="cat")
    first = stack.make()
    events = first.run(work_for(stack, spec, save_checkpoint=save))
    assert isinstance(await events.__anext__(), Progress)  # submitted; then the process dies
    await events.aclose()
    assert saved["submitted"] is True

    second = stack.make()
    _, finished = await run(second, work_for(stack, spec, checkpoint=dict(saved)))
    assert len(finished.images) == 1
    assert stack.fake.calls_to("text2image") == 1 and len(stack.fake.tasks) == 1
    assert stack.fake.violations == []


async def test_a_job_that_died_before_its_submit_arrived_submits_once_on_restart(stack: Stack) -> None:
    checkpoint = {"task_id": "ibjob1deadbeef", "task_backend": "zhiqite", "task_kind": "txt2img",
                  "callback_token": None, "submitted": False}
    backend = stack.make()
    _, finished = await run(backend, work_for(stack, Txt2Img(prompt="cat"), checkpoint=checkpoint))
    assert len(finished.images) == 1
    assert list(stack.fake.tasks) == ["ibjob1deadbeef"] and stack.fake.calls_to("text2image") == 1
    assert stack.fake.violations == []


async def test_a_job_whose_submit_did_arrive_is_not_submitted_again_though_the_check_answers_garbage_first(
        stack: Stack) -> None:
    stack.fake.running_polls = 3
    saved: dict[str, Any] = {}

    async def save(cp: dict[str, Any]) -> None:
        if not saved:  # the process dies after the submit reached zhiqite, before it was recorded
            saved.update(cp)

    spec = Txt2Img(prompt="cat")
    events = stack.make().run(work_for(stack, spec, save_checkpoint=save))
    assert isinstance(await events.__anext__(), Progress)
    await events.aclose()
    assert saved["submitted"] is False and stack.fake.calls_to("text2image") == 1

    stack.fake.bad_queries = ["not-json", "5xx", "throttled"]  # neither "it exists" nor "it does not"
    _, finished = await run(stack.make(), work_for(stack, spec, checkpoint=dict(saved)))
    assert len(finished.images) == 1
    assert stack.fake.calls_to("text2image") == 1  # paid once at zhiqite
    assert stack.fake.violations == []


async def test_a_restart_check_that_only_ever_answers_garbage_fails_the_job_rather_than_paying_twice(
        stack: Stack) -> None:
    checkpoint = {"task_id": "ibjob1deadbeef", "task_backend": "zhiqite", "task_kind": "txt2img",
                  "callback_token": None, "submitted": False}
    stack.fake.bad_queries = ["not-json"] * 50
    with pytest.raises(BackendError) as err:
        await run(stack.make(), work_for(stack, Txt2Img(prompt="cat"), checkpoint=checkpoint))
    assert err.value.key == "error-vendor-bad-answer"
    assert stack.fake.calls_to("text2image") == 0 and stack.fake.calls_to("queryTaskInfo") == 6


# --- catalogues, models -------------------------------------------------------------------


async def test_catalogues_are_cached_for_their_ttl(stack: Stack) -> None:
    now = [1000.0]
    backend = stack.make(catalogue_ttl_s=60, clock=lambda: now[0])
    models = await backend.models()
    assert [m.name for m in models] == ["photon_v1_84728.safetensors", "revAnimated_v122_7371.safetensors"]
    assert models[0].title == "Photon (SD 1.5)" and "canny" in models[0].control_types
    await backend.models()
    assert stack.fake.calls_to("queryModelList") == 1  # the second call made no request
    now[0] += 61
    await backend.models()
    assert stack.fake.calls_to("queryModelList") == 2
    assert await backend.loras() == ["hayasaka_ai_v10_26390", "film_grain_v2"]  # not the one taken offline
    assert await backend.embeddings() == ["FastNegativeV2", "bad-artist"]
    assert len(await backend.vaes()) == 2
    assert stack.fake.violations == []


async def test_model_choice_default_name_and_unknown(stack: Stack) -> None:
    backend = stack.make()
    await run(backend, work_for(stack, Txt2Img(prompt="cat")))
    assert last_submit(stack.fake)["alwayson_scripts"]["sd_model_checkpoint"] == "photon_v1_84728.safetensors"
    await run(backend, work_for(stack, Txt2Img(prompt="cat", model="ReV Animated"), job_id="job-2"))
    assert last_submit(stack.fake)["alwayson_scripts"]["sd_model_checkpoint"] == "revAnimated_v122_7371.safetensors"
    with pytest.raises(UserFacingError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat", model="nope"), job_id="job-3"))
    assert err.value.key == "error-vendor-cannot" and err.value.args_["reason"] == "model"
    assert stack.fake.calls_to("text2image") == 2

    preset = stack.make(default_model="revAnimated_v122_7371.safetensors")
    assert (await preset.models())[0].name == "revAnimated_v122_7371.safetensors"
    assert stack.fake.violations == []


def test_from_settings_reads_the_zhiqite_settings(tmp_path: Any) -> None:
    from bot.settings import Settings

    settings = Settings(_env_file=None, zhiqite_appcode="code-1", public_base_url="https://bot.example.org",
                        zhiqite_scripts_field="always_on_scripts", vendor_task_timeout_s=33)
    assert ZhiqiteBackend.configured(settings)
    assert not ZhiqiteBackend.configured(Settings(_env_file=None))
    backend = ZhiqiteBackend.from_settings(settings, media=None, hub=CallbackHub())
    assert backend.use_callbacks and backend.scripts_field == "always_on_scripts"
    assert backend.task_timeout_s == 33 and "code-1" not in repr(backend)


def test_previews_are_small_jpegs_and_garbage_is_ignored() -> None:
    import base64

    raw = base64.b64encode(image_bytes(800, 400)).decode()
    for b64 in (raw, "data:image/png;base64," + raw):
        jpeg = preview_jpeg(b64)
        assert jpeg is not None and jpeg.startswith(b"\xff\xd8")
        assert max(Image.open(io.BytesIO(jpeg)).size) <= 320
    assert preview_jpeg("not base64 at all!") is None
    assert preview_jpeg("") is None


async def test_a_callback_sent_while_the_bot_was_down_is_retried_until_the_resumed_job_takes_it(
        stack: Stack) -> None:
    stack.fake.hold_callbacks = asyncio.Event()
    stack.fake.callback_schedule = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0)  # stops once accepted
    saved: dict[str, Any] = {}

    async def save(cp: dict[str, Any]) -> None:
        saved.update(cp)

    options = dict(use_callbacks=True, callback_poll_interval_s=60, callback_poll_max_interval_s=60)
    spec = Txt2Img(prompt="cat")
    events = stack.make(**options).run(work_for(stack, spec, save_checkpoint=save))
    await events.__anext__()  # submitted with a callback URL; then the bot goes down
    await events.aclose()

    stack.fake.hold_callbacks.set()
    await stack.fake.callback_attempted.wait()
    assert stack.fake.callback_attempts[0][1] == 404  # nobody waits for it: the vendor retries

    _, finished = await run(stack.make(**options), work_for(stack, spec, checkpoint=dict(saved)))
    await stack.fake.settle()
    assert len(finished.images) == 1
    assert stack.fake.calls_to("text2image") == 1 and stack.fake.calls_to("queryTaskInfo") == 0
    assert stack.fake.callback_attempts[-1][1] == 200
    assert stack.fake.violations == []


async def test_a_query_that_keeps_failing_for_a_while_does_not_lose_the_task(stack: Stack) -> None:
    backend = stack.make(default_model="photon_v1_84728.safetensors")
    events = backend.run(work_for(stack, Txt2Img(prompt="cat")))
    assert isinstance(await events.__anext__(), Progress)  # submitted
    stack.fake.fail_5xx = 4  # more than one query's retries
    finished = [e async for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and len(finished[0].images) == 1
    assert stack.fake.calls_to("text2image") == 1


# --- LoRAs, VAEs, embeddings --------------------------------------------------------------


async def test_extras_list_the_lora_vae_and_embedding_catalogues_cached(stack: Stack) -> None:
    backend = stack.make()
    extras = await backend.extras()
    assert [m.name for m in extras["lora"]] == ["hayasaka_ai_v10_26390", "film_grain_v2"]
    assert extras["lora"][1].title == "Film Grain (SD 1.5)" and extras["lora"][1].backend == "zhiqite"
    assert [m.name for m in extras["vae"]] == ["k1F8Anime2_k1F8Anime2VAE.ckpt", "vae-ft-mse-840000-ema-pruned.ckpt"]
    assert [m.name for m in extras["embedding"]] == ["FastNegativeV2", "bad-artist"]
    await backend.extras()
    assert [stack.fake.calls_to(c) for c in ("queryLoraList", "queryVaeList", "queryEmbeddingList")] == [1, 1, 1]
    assert stack.fake.violations == []


async def test_loras_a_vae_and_embeddings_go_where_the_document_says(stack: Stack) -> None:
    backend = stack.make(default_model="photon_v1_84728.safetensors")
    spec = Txt2Img(prompt="a girl by the sea", negative_prompt="blurry",
                   loras=(LoraRef(name="Film Grain", weight=0.7), LoraRef(name="hayasaka_ai_v10_26390")),
                   vae="vae-ft-mse-840000-ema-pruned", embeddings=("FastNegativeV2.pt", "bad-artist"))
    _, finished = await run(backend, work_for(stack, spec))
    assert len(finished.images) == 1
    body = last_submit(stack.fake)
    assert body["prompt"] == "a girl by the sea <lora:film_grain_v2:0.7> <lora:hayasaka_ai_v10_26390:1>"
    assert body["negative_prompt"] == "blurry, FastNegativeV2, bad-artist"
    assert body["alwayson_scripts"]["sd_vae"] == "vae-ft-mse-840000-ema-pruned.ckpt"
    assert stack.fake.violations == []


@pytest.mark.parametrize(("field", "value", "what", "closest"), [
    ("loras", (LoraRef(name="film_grain"),), "lora", "film_grain_v2"),
    ("loras", (LoraRef(name="retired_style"),), "lora", "hayasaka_ai_v10_26390"),  # taken offline
    ("vae", "vae-ft-mse", "vae", "vae-ft-mse-840000-ema-pruned.ckpt"),
    ("embeddings", ("bad-artsit",), "embedding", "bad-artist"),
])
async def test_an_unknown_extra_is_refused_before_any_paid_call_naming_the_closest(
        stack: Stack, field: str, value: Any, what: str, closest: str) -> None:
    backend = stack.make(default_model="photon_v1_84728.safetensors")
    with pytest.raises(BackendError) as err:
        await run(backend, work_for(stack, Txt2Img(prompt="cat", **{field: value})))
    assert (err.value.key, err.value.args_["what"]) == ("error-extra-unknown", what)
    assert err.value.args_["choices"].split(", ")[0] == closest
    assert "retired_style" not in err.value.args_["choices"]
    assert closest in tr("en", err.value.key, **err.value.args_)
    assert closest in tr("zh-CN", err.value.key, **err.value.args_)
    assert stack.fake.submits == []


async def test_check_refuses_an_unknown_lora_at_once_when_the_catalogue_is_cached(stack: Stack) -> None:
    backend = stack.make()
    spec = Txt2Img(prompt="cat", loras=(LoraRef(name="no_such_lora"),))
    assert backend.check(spec) == []  # nothing cached: check() makes no call; run() will refuse
    assert sum(stack.fake.calls.values()) == 0
    await backend.extras()
    with pytest.raises(BackendError) as err:
        backend.check(spec)
    assert err.value.key == "error-extra-unknown"
    assert backend.check(Txt2Img(prompt="cat", loras=(LoraRef(name="film_grain_v2", weight=-0.5),))) == []

