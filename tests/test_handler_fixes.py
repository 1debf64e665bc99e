"""Two handler bugs, each pinned by a test: a fallback's pictures carry the parameters of the
spec that ran, and V on a picture larger than a job may be keeps the picture's shape."""

from __future__ import annotations

import io

from PIL import Image

from bot.settings import Settings
from engine.backend import Finished, ModelInfo, ResultImage, Work
from engine.errors import BackendError
from engine.jobs import GenerationBase, JobSpec
from handlers.images import read_parameters
from storage.records import JobState
from tests.chat_recorder import RecordingMessenger, press, say, started_runtime


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


class Painter:
    """A generator that returns an unstamped PNG (as a vendor does), of ``size`` if given,
    else of the size asked; or fails with a retryable error."""

    def __init__(self, name: str, *, fail: bool = False, size: tuple[int, int] | None = None) -> None:
        self.name = name
        self.concurrency = 1
        self.fail = fail
        self.size = size
        self.works: list[Work] = []

    def supports(self, spec: JobSpec) -> bool:
        return isinstance(spec, GenerationBase)

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo(name=f"{self.name}-model", backend=self.name, default_steps=2)]

    async def run(self, work: Work):  # type: ignore[no-untyped-def]
        self.works.append(work)
        if self.fail:
            raise BackendError("error-backend-unavailable", retryable=True, backend=self.name)
        assert isinstance(work.spec, GenerationBase)
        size = self.size or (work.spec.width, work.spec.height)
        yield Finished([ResultImage(png=_png(size), seed=work.spec.seed)])

    async def close(self) -> None:
        pass


async def _runtime(tmp_path, backends: dict, **overrides):  # type: ignore[no-untyped-def]
    settings = Settings(_env_file=None, data_dir=tmp_path, hf_offline=True, daily_free_images=10,
                        platforms=["console"], **overrides)
    chat = RecordingMessenger()
    return await started_runtime(settings, chat, backends=backends), chat


async def test_a_fallbacks_pictures_are_stamped_with_the_spec_that_ran(tmp_path) -> None:
    spare = Painter("spare")
    runtime, chat = await _runtime(tmp_path, {"primary": Painter("primary", fail=True), "spare": spare},
                                   default_backend="primary", fallback_backends=["spare"])
    try:
        await runtime.app.handle_message(say("/imagine a lighthouse --size 64x64 --seed 5"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE and job.backend == "spare"
        (work,) = spare.works
        stamped = read_parameters(runtime.media.read(job.results[0].media_key))
        # What ran had the model cleared (the primary's model means nothing to the spare).
        assert stamped == work.parameters(5)  # type: ignore[misc]
        assert "primary-model" not in stamped
    finally:
        await runtime.stop()


async def test_vary_of_a_picture_taller_than_a_job_may_be_keeps_its_shape(tmp_path) -> None:
    painter = Painter("painter", size=(1024, 4096))  # an upscaled picture, say: 1:4
    runtime, chat = await _runtime(tmp_path, {"painter": painter}, default_backend="painter")
    try:
        await runtime.app.handle_message(say("/imagine a tower --size 256x1024"), chat)
        await runtime.wait_idle()
        (job,) = await runtime.storage.recent_jobs()
        assert job.state is JobState.DONE
        await runtime.app.handle_press(press(f"v:{job.id}:0"), chat)
        await runtime.wait_idle()
        vary = painter.works[-1].spec
        assert vary.kind == "img2img"
        assert (vary.width, vary.height) == (512, 2048)  # 1:4 still, within the largest side
    finally:
        await runtime.stop()
