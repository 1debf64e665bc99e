"""The local diffusers backend, on a tiny random model loaded from disk like a real one."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

from engine.backend import Backend, CancelToken, Finished, Progress
from engine.errors import BackendError, JobCancelled, ModelUnavailable
from engine.jobs import ControlNet, Img2Img, Inpaint, Txt2Img, Upscale
from engine.local.backend import LocalDiffusersBackend, canny_map
from engine.local.registry import ModelRegistry
from storage.media import MediaStore
from tests.fixtures_models import InMemoryMedia, make_work


@pytest.fixture
def media(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")


def picture(media, color=(180, 40, 40), size=(64, 64), mode="RGB") -> str:
    buf = io.BytesIO()
    image = Image.new(mode, size, color if mode == "RGB" else 255)
    image.paste(Image.new(mode, (size[0] // 2, size[1] // 2), (20, 200, 20) if mode == "RGB" else 0))
    image.save(buf, format="PNG")
    return media.put(buf.getvalue())


async def run(backend, spec, media, cancel: CancelToken | None = None):
    events = [e async for e in backend.run(make_work(spec, media, cancel=cancel))]
    assert isinstance(events[-1], Finished)
    assert all(isinstance(e, Progress) for e in events[:-1])
    return events[:-1], events[-1].images


def tiny(**kw):
    return {"prompt": "a red fox", "model": "demo", "width": 64, "height": 64, "steps": 4, "seed": 1, **kw}


def png_size(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as im:
        return im.format, im.size


# --- generation ---------------------------------------------------------------------


async def test_txt2img_makes_n_pngs_with_consecutive_seeds_and_ordered_progress(local_backend, media):
    progress, images = await run(local_backend, Txt2Img(**tiny(n=4, seed=10)), media)
    assert [i.seed for i in images] == [10, 11, 12, 13]
    assert all(png_size(i.png) == ("PNG", (64, 64)) for i in images)
    assert [(p.step, p.total) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]


async def test_a_single_picture_from_a_chinese_prompt(local_backend):
    media = InMemoryMedia()
    _, images = await run(local_backend, Txt2Img(**tiny(prompt="一只红色的狐狸，雪地里", negative_prompt="模糊")),
                          media)
    assert len(images) == 1 and images[0].seed == 1
    assert png_size(images[0].png) == ("PNG", (64, 64))


async def test_same_seed_same_bytes_other_seed_other_bytes(local_backend, media):
    _, a = await run(local_backend, Txt2Img(**tiny(seed=5)), media)
    _, b = await run(local_backend, Txt2Img(**tiny(seed=5)), media)
    _, c = await run(local_backend, Txt2Img(**tiny(seed=6)), media)
    assert a[0].png == b[0].png
    assert a[0].png != c[0].png


async def test_img2img_reports_the_steps_it_really_runs(local_backend, media):
    spec = Img2Img(**tiny(steps=20), init_image=picture(media, size=(100, 80)), strength=0.6)
    progress, images = await run(local_backend, spec, media)
    assert [p.step for p in progress] == list(range(1, 13))
    assert {p.total for p in progress} == {12}  # strength 0.6 of 20 steps
    assert len(images) == 1 and png_size(images[0].png) == ("PNG", (64, 64))  # the input was resized


async def test_inpaint_makes_a_picture_of_the_asked_size(local_backend, media):
    spec = Inpaint(**tiny(width=64, height=96), init_image=picture(media), mask_image=picture(media, mode="L"))
    _, images = await run(local_backend, spec, media)
    assert png_size(images[0].png) == ("PNG", (64, 96))


async def test_all_kinds_share_one_load_of_the_weights(local_backend, media):
    await run(local_backend, Txt2Img(**tiny()), media)
    assert local_backend.cache.loads == 1
    await run(local_backend, Img2Img(**tiny(), init_image=picture(media)), media)
    await run(local_backend, Inpaint(**tiny(), init_image=picture(media), mask_image=picture(media, mode="L")), media)
    assert local_backend.cache.loads == 1  # from_pipe: no weights read again
    _, images = await run(local_backend, ControlNet(**tiny(), control_image=picture(media), control_type="canny"),
                          media)
    assert len(images) == 1 and local_backend.cache.loads == 2  # + the ControlNet itself
    await run(local_backend, ControlNet(**tiny(seed=3), control_image=picture(media), control_type="canny"), media)
    assert local_backend.cache.loads == 2


async def test_a_control_type_the_model_lacks_is_explained(local_backend, media):
    spec = ControlNet(**tiny(), control_image=picture(media), control_type="depth")
    with pytest.raises(ModelUnavailable) as err:
        await run(local_backend, spec, media)
    assert err.value.args_ == {"backend": "", "model": "demo/depth", "reason": "no-controlnet"}


def test_canny_map_is_white_edges_on_black():
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    image.paste(Image.new("RGB", (32, 32), (255, 255, 255)), (16, 16))
    edges = canny_map(image).convert("L")
    column = [edges.getpixel((x, 30)) for x in range(12, 20)]
    assert max(column) == 255  # the square's left edge
    assert edges.getpixel((32, 32)) == 0 and edges.getpixel((2, 2)) == 0


async def test_previews_come_every_few_steps_as_small_jpegs(media, local_registry):
    backend = LocalDiffusersBackend(local_registry, device="cpu", offline=True, previews_per_job=4)
    try:
        progress, _ = await run(backend, Txt2Img(**tiny(steps=8)), media)
    finally:
        await backend.close()
    with_preview = [p.step for p in progress if p.preview]
    assert with_preview == [2, 4, 6]  # not every step, and none at the end (the picture itself comes)
    for p in progress:
        if p.preview:
            assert p.preview.startswith(b"\xff\xd8") and len(p.preview) < 20_000
            with Image.open(io.BytesIO(p.preview)) as im:
                assert im.format == "JPEG"


def test_the_backend_speaks_the_backend_protocol(local_backend):
    assert isinstance(local_backend, Backend)
    assert local_backend.name == "local" and local_backend.concurrency == 1
    assert local_backend.supports(Txt2Img(**tiny()))
    assert not local_backend.supports(Upscale(image="a" * 64 + ".png"))


async def test_models_lists_the_registry_with_control_types(local_backend):
    infos = {i.name: i for i in await local_backend.models()}
    assert {"sd-turbo", "sdxl-turbo", "sd15", "demo"} <= set(infos)
    assert all(i.backend == "local" for i in infos.values())
    assert infos["demo"].control_types == ("canny",) and "controlnet" in infos["demo"].kinds
    assert set(infos["sd15"].control_types) == {"canny", "depth", "lineart", "scribble", "openpose"}
    assert infos["sd-turbo"].default_cfg == 0.0 and infos["sd-turbo"].default_steps <= 4
    assert "controlnet" not in infos["sdxl-turbo"].kinds


# --- cancel, threads, failures -----------------------------------------------------------


async def test_cancel_stops_between_steps_and_the_next_job_runs(local_backend, media):
    cancel = CancelToken()
    seen: list[Progress] = []
    spec = Txt2Img(**tiny(steps=60, width=256, height=256))
    with pytest.raises(JobCancelled):
        async for event in local_backend.run(make_work(spec, media, cancel=cancel)):
            seen.append(event)
            cancel.cancel()
    assert 1 <= len(seen) < 60
    progress, images = await run(local_backend, Txt2Img(**tiny()), media)
    assert len(progress) == 4 and len(images) == 1


async def test_a_consumer_that_walks_away_cancels_the_job(local_backend, media):
    cancel = CancelToken()
    events = local_backend.run(make_work(Txt2Img(**tiny(steps=60, width=256, height=256)), media, cancel=cancel))
    first = await anext(events)
    assert isinstance(first, Progress)
    await events.aclose()
    assert cancel.cancelled
    _, images = await run(local_backend, Txt2Img(**tiny()), media)  # the worker is free again
    assert len(images) == 1


async def test_the_job_runs_off_the_event_loop(local_backend):
    # The worker reads its input only once a coroutine on the event loop has run: if the
    # job ran on the loop, that coroutine could not run and the read would give up.
    loop_ran = threading.Event()

    class HandshakeMedia(InMemoryMedia):
        def read(self, key: str) -> bytes:
            assert threading.current_thread() is not threading.main_thread()
            if not loop_ran.wait(timeout=30):
                raise AssertionError("the event loop was blocked while the job ran")
            return super().read(key)

    async def poke() -> None:
        loop_ran.set()

    media = HandshakeMedia()
    spec = Img2Img(**tiny(), init_image=picture(media))
    poker = asyncio.create_task(poke())
    _, images = await run(local_backend, spec, media)
    await poker
    assert len(images) == 1


async def test_unknown_missing_and_undownloaded_models_are_explained(media, tmp_path):
    (tmp_path / "single.safetensors").write_bytes(b"not really")
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"one-file": {"source": "./single.safetensors"},
                                  "broken": {"source": "./broken"}}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{not json")
    backend = LocalDiffusersBackend(ModelRegistry(tmp_path / "empty", models), device="cpu", offline=True)

    async def reason(model: str) -> str:
        with pytest.raises(ModelUnavailable) as err:
            await run(backend, Txt2Img(**tiny(model=model)), media)
        assert err.value.key == "error-model-unavailable" and err.value.args_["model"] == model
        return err.value.args_["reason"]

    try:
        assert await reason("nope") == "unknown-model"
        assert await reason("demo") == "missing-folder"  # never built in this folder
        assert await reason("sd-turbo") == "not-downloaded"  # offline, not in the HF cache
        assert await reason("one-file") == "not-a-folder"
        assert await reason("broken") == "bad-files"
    finally:
        await backend.close()


async def test_missing_or_broken_inputs_are_user_errors(local_backend, media):
    gone = Img2Img(**tiny(), init_image="f" * 64 + ".png")
    with pytest.raises(BackendError) as err:
        await run(local_backend, gone, media)
    assert err.value.key == "error-local-input-gone" and err.value.args_["what"] == "picture"
    junk = media.put(b"\x89PNG but not really a picture")
    with pytest.raises(BackendError) as err:
        await run(local_backend, Inpaint(**tiny(), init_image=picture(media), mask_image=junk), media)
    assert err.value.key == "error-image-corrupt" and err.value.args_["what"] == "mask"


async def test_out_of_memory_is_a_user_error_and_unloads_models(local_backend, media, monkeypatch):
    import torch

    await run(local_backend, Txt2Img(**tiny()), media)
    assert local_backend.cache.resident() == ["demo"]

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(local_backend.cache, "pipeline", no_memory)
    with pytest.raises(BackendError) as err:
        await run(local_backend, Txt2Img(**tiny()), media)
    assert err.value.key == "error-out-of-memory"
    assert local_backend.cache.resident() == []


async def test_switching_models_keeps_at_most_max_models_loaded(tmp_path, tiny_model_dir, media):
    models = tmp_path / "models.json"
    models.write_text(json.dumps({"demo-copy": {"source": str(tiny_model_dir), "family": "sd15"}}))
    backend = LocalDiffusersBackend(ModelRegistry(tiny_model_dir.parent, models), device="cpu", offline=True,
                                    max_models=1)
    try:
        await run(backend, Txt2Img(**tiny(model="demo")), media)
        await run(backend, Txt2Img(**tiny(model="demo-copy")), media)
        assert backend.cache.resident() == ["demo-copy"]
        await run(backend, Txt2Img(**tiny(model="demo")), media)
        assert backend.cache.resident() == ["demo"] and backend.cache.loads == 3
    finally:
        await backend.close()


# --- registry --------------------------------------------------------------------------


def test_models_file_adds_and_overrides_entries(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(json.dumps({
        "mine": {"source": "./weights/mine", "default_steps": 30, "controlnets": {"canny": "~/cn"}},
        "sd-turbo": {"default_steps": 4},
        "hub": {"source": "someone/some-model", "family": "sdxl"},
    }))
    registry = ModelRegistry(tmp_path, path)
    mine = registry.get("mine")
    assert mine.default_steps == 30 and mine.source == str(tmp_path / "weights" / "mine")
    assert mine.controlnets == {"canny": str(Path("~/cn").expanduser())}
    assert registry.get("sd-turbo").default_steps == 4
    assert registry.get("sd-turbo").source == "stabilityai/sd-turbo"
    assert registry.get("hub").source == "someone/some-model" and not registry.get("hub").is_local_folder
    assert {"demo", "sd-turbo", "sdxl-turbo", "sd15", "mine", "hub"} <= set(registry.names())
    assert registry.get("demo").source == str(tmp_path / "demo")


@pytest.mark.parametrize("entry", [
    {"new-one": {"family": "sd15"}},  # no source
    {"sd15": {"steps": 3}},  # a typo for default_steps
    {"odd": {"source": "a/b", "family": "sd3"}},
])
def test_mistakes_in_the_models_file_stop_startup(tmp_path, entry):
    path = tmp_path / "models.json"
    path.write_text(json.dumps(entry))
    with pytest.raises(ValueError, match=next(iter(entry))):
        ModelRegistry(tmp_path, path)


def test_the_local_engine_modules_import_without_torch():
    code = ("import sys, engine.local, engine.local.registry, engine.local.backend, engine.local.previews; "
            "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
