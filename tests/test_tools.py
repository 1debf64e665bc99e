"""The local image tools on tiny random weights in the real file formats."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backend import CancelToken, Finished, Progress, Work
from engine.errors import BackendError, JobCancelled, ModelUnavailable, UserFacingError
from engine.jobs import FaceSwap, Txt2Img, Upscale
from engine.tools.backend import ToolModels, ToolsBackend, default_tool_models
from engine.tools.demo_tools import (
    DEMO_NUM_BLOCK,
    DEMO_NUM_FEAT,
    DEMO_NUM_GROW,
    build_demo_swapper,
    build_demo_upscaler,
)
from engine.tools.faces import BoxFaceDetector, HaarFaceDetector
from engine.tools.faceswap import FaceSwapper
from engine.tools.rrdb import RRDBNet, infer_config, load_rrdbnet, read_state_dict
from engine.tools.upscale import Upscaler
from locales import tr
from storage.media import MediaStore
from tests.fixtures_tools import GREEN, face_picture
from tests.images import encoded


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """Smooth colourful content (a raw noise picture would make every comparison meaningless)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)


def real_esrgan_keys(num_block: int) -> set[str]:
    """The parameter names of Real-ESRGAN's RRDBNet, as in RealESRGAN_x4plus.pth."""
    names = ["conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    names += [f"body.{b}.rdb{r}.conv{c}" for b in range(num_block) for r in (1, 2, 3) for c in range(1, 6)]
    return {f"{n}.{p}" for n in names for p in ("weight", "bias")}


async def collect(backend: ToolsBackend, work: Work) -> list[Progress | Finished]:
    return [event async for event in backend.run(work)]


# --- RRDBNet and its weight files ------------------------------------------------------


def test_demo_upscaler_uses_the_real_esrgan_names_and_loads_strictly(tiny_tool_models: ToolModels) -> None:
    raw = torch.load(tiny_tool_models.upscaler, weights_only=True)
    assert set(raw) == {"params_ema"}  # the wrapper Real-ESRGAN's releases use
    assert set(raw["params_ema"]) == real_esrgan_keys(DEMO_NUM_BLOCK)

    net = load_rrdbnet(tiny_tool_models.upscaler)

    assert (net.scale, len(net.body)) == (4, DEMO_NUM_BLOCK)
    assert net.conv_first.out_channels == DEMO_NUM_FEAT
    assert net.conv_body.in_channels == DEMO_NUM_FEAT
    assert net.state_dict()["body.0.rdb1.conv1.weight"].shape[0] == DEMO_NUM_GROW


@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_x2plus_layout_loads_from_pth_wrappers_and_safetensors(tmp_path: Path, wrapper: str | None) -> None:
    from safetensors.torch import save_file

    net = RRDBNet(scale=2, num_feat=16, num_block=1, num_grow_ch=32)
    state = net.state_dict()
    pth = tmp_path / "x2.pth"
    torch.save({wrapper: state} if wrapper else state, pth)
    st = tmp_path / "x2.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))

    for path in (pth, st):
        cfg = infer_config(read_state_dict(path))
        assert (cfg.scale, cfg.num_feat, cfg.num_block, cfg.num_grow_ch) == (2, 16, 1, 32)
        loaded = load_rrdbnet(path)
        # x2 models fold 2x2 pixels into channels first, as Real-ESRGAN x2plus does.
        assert loaded.conv_first.in_channels == 12
        assert loaded(torch.rand(1, 3, 10, 14)).shape == (1, 3, 20, 28)


def test_an_x2_model_upscales_odd_sizes_and_runs_twice_for_x4(tmp_path: Path) -> None:
    path = build_demo_upscaler(tmp_path / "x2.pth", scale=2)
    up = Upscaler(path, "cpu", tile=16, overlap=4)

    assert up.upscale(picture(25, 17), 2).size == (50, 34)
    assert up.upscale(picture(25, 17), 4).size == (100, 68)


# --- Upscaler ------------------------------------------------------------------------


def test_x4_model_makes_the_picture_four_times_larger_and_keeps_its_content(
    tiny_tool_models: ToolModels,
) -> None:
    image = picture(48, 40)

    out = Upscaler(tiny_tool_models.upscaler, "cpu").upscale(image, 4)

    assert out.size == (192, 160) and out.mode == "RGB"
    reference = np.asarray(image.resize(out.size, Image.Resampling.BICUBIC), np.float32)
    assert np.abs(np.asarray(out, np.float32) - reference).mean() < 8


@pytest.mark.parametrize("scale", [2, 3])
def test_x4_model_asked_for_less_resizes_down(tiny_tool_models: ToolModels, scale: int) -> None:
    out = Upscaler(tiny_tool_models.upscaler, "cpu").upscale(picture(48, 40), scale)

    assert out.size == (48 * scale, 40 * scale)


def test_tiled_result_matches_untiled(tiny_tool_models: ToolModels) -> None:
    image = picture(72, 56, seed=3)
    up = Upscaler(tiny_tool_models.upscaler, "cpu", overlap=8)
    seen: list[tuple[int, int]] = []

    whole = np.asarray(up.upscale(image, 4, tile=0), np.int16)
    tiled = np.asarray(up.upscale(image, 4, tile=24, on_progress=lambda d, t: seen.append((d, t))), np.int16)

    assert seen == [(i, 9) for i in range(10)]  # 3 x 3 tiles, reported one by one
    assert np.abs(whole - tiled).max() <= 2


def test_transparency_survives_upscaling(tiny_tool_models: ToolModels) -> None:
    image = picture(32, 32).convert("RGBA")
    alpha = np.zeros((32, 32), np.uint8)
    alpha[:, 16:] = 255
    image.putalpha(Image.fromarray(alpha))

    out = Upscaler(tiny_tool_models.upscaler, "cpu").upscale(image, 2)

    assert out.mode == "RGBA"
    a = np.asarray(out.getchannel("A"))
    assert a[:, :20].max() < 10 and a[:, 44:].min() > 245


def test_cancel_stops_between_tiles(tiny_tool_models: ToolModels) -> None:
    done: list[int] = []

    with pytest.raises(JobCancelled):
        Upscaler(tiny_tool_models.upscaler, "cpu", tile=16).upscale(
            picture(48, 48), 4, on_progress=lambda d, t: done.append(d), should_stop=lambda: len(done) >= 3
        )

    assert done == [0, 1, 2]


def test_too_large_a_picture_is_refused_before_any_model_loads(tmp_path: Path) -> None:
    up = Upscaler(tmp_path / "missing.pth", "cpu", max_output_pixels=256 * 256)

    with pytest.raises(UserFacingError) as err:
        up.upscale(picture(100, 80), 4)

    assert err.value.key == "error-upscale-too-large"
    assert {k: err.value.args_[k] for k in ("width", "height", "scale", "max_side")} == {
        "width": 100,
        "height": 80,
        "scale": 4,
        "max_side": 64,
    }
    assert not up.loaded


def test_missing_or_corrupt_upscaler_weights_are_model_unavailable(tmp_path: Path) -> None:
    corrupt = tmp_path / "RealESRGAN_x4plus.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    not_rrdb = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, not_rrdb)

    for path in (tmp_path / "missing.pth", corrupt, not_rrdb):
        with pytest.raises(ModelUnavailable) as err:
            Upscaler(path, "cpu").upscale(picture(), 2)
        assert err.value.args_["model"] == path.stem
        assert path.name in err.value.args_["reason"]


# --- faces ---------------------------------------------------------------------------


def test_haar_finds_the_synthetic_face_and_nothing_in_a_plain_picture() -> None:
    detector = HaarFaceDetector()
    bgr = np.asarray(face_picture(at=(20, 40), size=200))[:, :, ::-1].copy()

    faces = detector.detect(bgr)

    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 20 <= x < 80 and 40 <= y < 100 and 120 <= w <= 200
    assert detector.detect(np.full((200, 300, 3), GREEN, np.uint8)) == []


def test_face_swap_changes_the_face_and_leaves_far_pixels_alone(tiny_tool_models: ToolModels) -> None:
    swapper = FaceSwapper(tiny_tool_models.face_recognizer, tiny_tool_models.face_swapper, "cpu")
    source = face_picture(260, 260, at=(30, 30), size=200, skin=(230, 160, 120))
    target = face_picture(480, 300, at=(20, 40), size=200)

    out = np.asarray(swapper.swap(source, target), np.int16)
    before = np.asarray(target, np.int16)

    assert out.shape == before.shape
    assert np.abs(out[90:200, 70:170] - before[90:200, 70:170]).mean() > 10  # cheeks, eyes, mouth
    assert np.array_equal(out[:, 260:], before[:, 260:])  # nowhere near the face


def test_every_face_in_the_target_is_swapped_unless_asked_for_the_largest(
    tiny_tool_models: ToolModels,
) -> None:
    boxes = [(10, 10, 100, 100), (200, 20, 140, 140)]
    detector = BoxFaceDetector(lambda image: boxes if image.shape[1] > 300 else [(0, 0, 120, 120)])
    swapper = FaceSwapper(
        tiny_tool_models.face_recognizer, tiny_tool_models.face_swapper, "cpu", detector=detector
    )
    source, target = picture(120, 120), picture(360, 180, seed=5)
    before = np.asarray(target, np.int16)

    both = np.asarray(swapper.swap(source, target), np.int16)
    largest = np.asarray(swapper.swap(source, target, all_faces=False), np.int16)

    def changed(img: np.ndarray, box: tuple[int, int, int, int]) -> bool:
        x, y, w, h = box
        middle = (slice(y + h // 3, y + 2 * h // 3), slice(x + w // 3, x + 2 * w // 3))
        return bool(np.abs(img[middle] - before[middle]).mean() > 3)

    assert changed(both, boxes[0]) and changed(both, boxes[1])
    assert changed(largest, boxes[1]) and not changed(largest, boxes[0])


@pytest.mark.parametrize("which", ["source", "target"])
def test_no_face_is_a_clear_error(tiny_tool_models: ToolModels, which: str) -> None:
    swapper = FaceSwapper(tiny_tool_models.face_recognizer, tiny_tool_models.face_swapper, "cpu")
    face, blank = face_picture(260, 260, at=(30, 30)), Image.new("RGB", (260, 260), GREEN)
    source, target = (blank, face) if which == "source" else (face, blank)

    with pytest.raises(UserFacingError) as err:
        swapper.swap(source, target)

    assert err.value.key == "error-no-face" and err.value.args_["which"] == which
    assert isinstance(err.value, BackendError)  # so the job is refunded


def test_the_embedding_is_normalised_and_the_emap_applied_when_present(
    tiny_tool_models: ToolModels, tmp_path: Path
) -> None:
    with_emap = FaceSwapper(tiny_tool_models.face_recognizer, tiny_tool_models.face_swapper, "cpu").load()
    plain_path = build_demo_swapper(tmp_path / "plain.onnx", with_emap=False)
    without = FaceSwapper(tiny_tool_models.face_recognizer, plain_path, "cpu").load()
    face = HaarFaceDetector().detect(np.asarray(face_picture(260, 260, at=(30, 30)))[:, :, ::-1].copy())[0]
    bgr = np.asarray(face_picture(260, 260, at=(30, 30)))[:, :, ::-1].copy()

    embedding = with_emap.recognizer.embed(bgr, face)

    assert embedding.shape == (512,) and np.isclose(np.linalg.norm(embedding), 1.0)
    assert with_emap.swapper.emap is not None and with_emap.swapper.emap.shape == (512, 512)
    assert without.swapper.emap is None
    assert np.allclose(with_emap.swapper.latent(embedding), embedding @ with_emap.swapper.emap, atol=1e-5)
    assert np.allclose(without.swapper.latent(embedding), embedding[None], atol=1e-6)


def test_corrupt_or_wrong_face_models_are_model_unavailable(
    tiny_tool_models: ToolModels, tmp_path: Path
) -> None:
    garbage = tmp_path / "inswapper_128.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    cases = [
        (tiny_tool_models.face_recognizer, garbage),
        (tiny_tool_models.face_recognizer, tmp_path / "missing.onnx"),
        # A recognizer where the swapper belongs: wrong signature.
        (tiny_tool_models.face_recognizer, tiny_tool_models.face_recognizer),
    ]
    for recognizer, swapper in cases:
        with pytest.raises(ModelUnavailable) as err:
            FaceSwapper(recognizer, swapper, "cpu").swap(face_picture(), face_picture())
        assert swapper.name in err.value.args_["reason"]


# --- the backend ---------------------------------------------------------------------


def work_for(spec: Upscale | FaceSwap, media: MediaStore, cancel: CancelToken | None = None) -> Work:
    return Work(job_id="job-1", spec=spec, media=media, cancel=cancel or CancelToken())


async def test_backend_streams_tile_progress_then_one_png(
    tools_backend: ToolsBackend, tmp_path: Path
) -> None:
    media = MediaStore(tmp_path / "media")
    key = media.put(encoded(picture(64, 48)))

    events = await collect(tools_backend, work_for(Upscale(image=key, scale=4), media))

    *head, finished = events
    progress = [e for e in head if isinstance(e, Progress)]
    assert progress and progress == head
    assert [e.step for e in progress] == sorted(e.step for e in progress)
    assert progress[-1].step == progress[-1].total == 4  # 2 x 2 tiles of 32 px
    assert isinstance(finished, Finished) and len(finished.images) == 1
    assert Image.open(io.BytesIO(finished.images[0].png)).size == (256, 192)


async def test_backend_swaps_faces_off_the_event_loop(tiny_tool_models: ToolModels, tmp_path: Path) -> None:
    threads: list[str] = []

    def boxes(image: np.ndarray) -> list[tuple[int, int, int, int]]:
        threads.append(threading.current_thread().name)
        return [(20, 20, 120, 120)]

    backend = ToolsBackend(tiny_tool_models, device="cpu", detector=BoxFaceDetector(boxes))
    media = MediaStore(tmp_path / "media")
    spec = FaceSwap(
        face_image=media.put(encoded(picture(160, 160))),
        target_image=media.put(encoded(picture(200, 160, seed=2))),
    )
    try:
        events = await collect(backend, work_for(spec, media))
    finally:
        await backend.close()

    assert isinstance(events[-1], Finished)
    assert [e.step for e in events[:-1] if isinstance(e, Progress)] == [0, 1, 2, 3]
    assert threads and threading.main_thread().name not in threads


async def test_backend_reports_no_face_with_haar(tools_backend: ToolsBackend, tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media")
    spec = FaceSwap(
        face_image=media.put(encoded(face_picture(260, 260, at=(30, 30)))),
        target_image=media.put(encoded(picture(200, 160))),
    )

    with pytest.raises(BackendError) as err:
        await collect(tools_backend, work_for(spec, media))

    assert err.value.key == "error-no-face" and err.value.args_["which"] == "target"


async def test_backend_honours_cancel(tools_backend: ToolsBackend, tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media")
    cancel = CancelToken()
    work = work_for(Upscale(image=media.put(encoded(picture(96, 96))), scale=4), media, cancel)
    seen: list[Progress | Finished] = []

    with pytest.raises(JobCancelled):
        async for event in tools_backend.run(work):
            seen.append(event)
            cancel.cancel()

    assert seen and not any(isinstance(e, Finished) for e in seen)


async def test_backend_refuses_unreadable_pictures(tools_backend: ToolsBackend, tmp_path: Path) -> None:
    media = MediaStore(tmp_path / "media")
    key = media.put(b"\x89PNG\r\n\x1a\n but then garbage")

    with pytest.raises(BackendError) as err:
        await collect(tools_backend, work_for(Upscale(image=key), media))

    assert err.value.key == "error-tool-bad-image" and err.value.args_["which"] == "image"


async def test_backend_missing_weights_is_model_unavailable(tmp_path: Path) -> None:
    backend = ToolsBackend(default_tool_models(tmp_path / "empty"), device="cpu")
    media = MediaStore(tmp_path / "media")
    try:
        with pytest.raises(ModelUnavailable) as err:
            await collect(backend, work_for(Upscale(image=media.put(encoded(picture()))), media))
        assert await backend.models() == []
    finally:
        await backend.close()

    assert err.value.args_["model"] == "RealESRGAN_x4plus"


async def test_backend_names_its_tools(tools_backend: ToolsBackend) -> None:
    infos = {m.name: m for m in await tools_backend.models()}

    assert infos["RealESRGAN_x4plus"].kinds == ("upscale",)
    assert infos["inswapper_128"].kinds == ("faceswap",)
    assert all(m.backend == "tools" for m in infos.values())
    assert tools_backend.supports(Upscale(image="a" * 64 + ".png"))
    assert tools_backend.supports(FaceSwap(face_image="a" * 64 + ".png", target_image="b" * 64 + ".png"))
    assert not tools_backend.supports(Upscale(image="a" * 64 + ".png", model="some-other-upscaler"))
    assert not tools_backend.supports(Txt2Img(prompt="a cat"))


def test_default_locations_are_the_upstream_file_names(tmp_path: Path) -> None:
    models = default_tool_models(tmp_path)

    assert models.upscaler == tmp_path / "upscaler" / "RealESRGAN_x4plus.pth"
    assert models.face_recognizer == tmp_path / "faceswap" / "w600k_r50.onnx"
    assert models.face_swapper == tmp_path / "faceswap" / "inswapper_128.onnx"


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
@pytest.mark.parametrize(
    ("key", "args"),
    [
        ("error-no-face", {"which": "source"}),
        ("error-no-face", {"which": "target"}),
        ("error-upscale-too-large", {"width": 3000, "height": 2000, "scale": 4, "max_side": 1024}),
        ("error-tool-bad-image", {"which": "image"}),
        ("error-tool-image-too-large", {"width": 9000, "height": 7000}),
    ],
)
def test_every_tool_error_reads_well_in_each_language(lang: str, key: str, args: dict[str, object]) -> None:
    text = tr(lang, key, backend="tools", **args)

    assert key not in text and "{" not in text
    for value in args.values():
        if isinstance(value, int):
            assert str(value) in text  # sizes without thousands separators
