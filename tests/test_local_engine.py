"""The local diffusers backend, on a tiny random model loaded from disk like a real one."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from engine.backend import CancelToken, Finished, Progress, Work
from engine.errors import JobCancelled, ModelUnavailable
from engine.jobs import ControlNet, Img2Img, Inpaint, Txt2Img
from engine.local.backend import LocalDiffusersBackend, canny_map
from engine.local.registry import ModelRegistry
from storage.media import MediaStore


@pytest.fixture
def media(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def picture(media: MediaStore, color=(180, 40, 40), size=(64, 64), mode="RGB") -> str:
    buf = io.BytesIO()
    image = Image.new(mode, size, color if mode == "RGB" else 255)
    image.paste(Image.new(mode, (size[0] // 2, size[1] // 2), (20, 200, 20) if mode == "RGB" else 0))
    image.save(buf, format="PNG")
    return media.put(buf.getvalue())


async def run(backend, spec, media, cancel: CancelToken | None = None):
    events = [e async for e in backend.run(Work(job_id="j", spec=spec, media=media, cancel=cancel or CancelToken()))]
    assert isinstance(events[-1], Finished)
    return [e for e in events if isinstance(e, Progress)], events[-1].images


def tiny(**kw):
    return {"prompt": "a red fox", "model": "demo", "width": 64, "height": 64, "steps": 4, "seed": 1, **kw}


async def test_txt2img_makes_n_pngs_with_consecutive_seeds(local_backend, media):
    progress, images = await run(local_backend, Txt2Img(**tiny(n=4, seed=10)), media)
    assert [i.seed for i in images] == [10, 11, 12, 13]
    for image in images:
        with Image.open(io.BytesIO(image.png)) as im:
            assert (im.format, im.size) == ("PNG", (64, 64))
    assert [(p.step, p.total) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]


async def test_same_seed_same_bytes_other_seed_other_bytes(local_backend, media):
    _, a = await run(local_backend, Txt2Img(**tiny(seed=5)), media)
    _, b = await run(local_backend, Txt2Img(**tiny(seed=5)), media)
    _, c = await run(local_backend, Txt2Img(**tiny(seed=6)), media)
    assert a[0].png == b[0].png
    assert a[0].png != c[0].png


async def test_img2img_reports_the_steps_it_really_runs(local_backend, media):
    spec = Img2Img(**tiny(steps=20), init_image=picture(media), strength=0.6)
    progress, images = await run(local_backend, spec, media)
    assert progress[-1].total == 12 and progress[-1].step == 12
    assert len(images) == 1


async def test_inpaint_and_controlnet_run_from_the_same_loaded_weights(local_backend, media):
    await run(local_backend, Txt2Img(**tiny()), media)
    assert local_backend.cache.loads == 1
    await run(local_backend, Img2Img(**tiny(), init_image=picture(media)), media)
    await run(local_backend, Inpaint(**tiny(), init_image=picture(media), mask_image=picture(media, mode="L")), media)
    assert local_backend.cache.loads == 1  # from_pipe: no weights read again
    _, images = await run(local_backend, ControlNet(**tiny(), control_image=picture(media), control_type="canny"),
                          media)
    assert len(images) == 1 and local_backend.cache.loads == 2  # + the ControlNet itself


def test_canny_map_is_white_edges_on_black():
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    image.paste(Image.new("RGB", (32, 32), (255, 255, 255)), (16, 16))
    edges = canny_map(image).convert("L")
    column = [edges.getpixel((x, 30)) for x in range(12, 20)]
    assert max(column) == 255  # the square's left edge
    assert edges.getpixel((32, 32)) == 0 and edges.getpixel((2, 2)) == 0


async def test_previews_are_small_jpegs(media, local_registry):
    backend = LocalDiffusersBackend(local_registry, device="cpu", offline=True, previews_per_job=4)
    try:
        progress, _ = await run(backend, Txt2Img(**tiny(steps=8)), media)
    finally:
        await backend.close()
    previews = [p.preview for p in progress if p.preview]
    assert previews and all(p.startswith(b"\xff\xd8") and len(p) < 20_000 for p in previews)


async def test_cancel_stops_between_steps(local_backend, media):
    cancel = CancelToken()
    seen: list[Progress] = []
    spec = Txt2Img(**tiny(steps=60, width=256, height=256))
    with pytest.raises(JobCancelled):
        async for event in local_backend.run(Work(job_id="j", spec=spec, media=media, cancel=cancel)):
            seen.append(event)
            if len(seen) == 2:
                cancel.cancel()
    assert len(seen) < 10


async def test_the_event_loop_keeps_running_during_a_job(local_backend, media):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await run(local_backend, Txt2Img(**tiny(steps=20, width=256, height=256)), media)
    task.cancel()
    assert ticks > 5


async def test_unknown_and_missing_models_are_explained(media, tmp_path):
    backend = LocalDiffusersBackend(ModelRegistry(tmp_path / "empty"), device="cpu", offline=True)
    try:
        with pytest.raises(ModelUnavailable) as unknown:
            await run(backend, Txt2Img(**tiny(model="nope")), media)
        assert unknown.value.args_["reason"] == "unknown-model"
        with pytest.raises(ModelUnavailable) as missing:
            await run(backend, Txt2Img(**tiny(model="demo")), media)  # never built in this folder
        assert missing.value.args_["reason"] == "missing-folder"
        with pytest.raises(ModelUnavailable) as offline:
            await run(backend, Txt2Img(**tiny(model="sd-turbo")), media)
        assert offline.value.args_["reason"] == "not-downloaded"
    finally:
        await backend.close()


def test_models_file_adds_and_overrides_entries(tmp_path):
    path = tmp_path / "models.json"
    path.write_text('{"mine": {"source": "/srv/mine", "default_steps": 30}, "sd-turbo": {"default_steps": 4}}')
    registry = ModelRegistry(tmp_path, path)
    assert registry.get("mine").default_steps == 30 and registry.get("sd-turbo").default_steps == 4
    assert {i.name for i in registry.infos()} >= {"demo", "sd-turbo", "sdxl-turbo", "sd15", "mine"}
