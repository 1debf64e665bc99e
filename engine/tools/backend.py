"""The image tools (upscale, face swap) behind the common ``Backend`` protocol.

Work runs on the device's worker thread (engine/threads.py), shared with the diffusion
backend on the same device, never on the event loop. The job's cancel token (and the consumer
walking away from the stream) is checked between tiles and between faces.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import BackendError, JobCancelled
from engine.jobs import FaceSwap, JobSpec, Upscale
from engine.png import png_bytes
from engine.threads import DeviceThread, Done
from engine.tools.upscale import DEFAULT_OVERLAP, DEFAULT_TILE, Upscaler, check_upscale_size

if TYPE_CHECKING:
    from engine.tools.faces import FaceDetector
    from engine.tools.faceswap import FaceSwapper

log = logging.getLogger(__name__)

# Face swap inputs above this are refused rather than decoded (a 48 MP photo still fits).
MAX_FACESWAP_PIXELS = 8000 * 6000


@dataclass(frozen=True)
class ToolModels:
    """Where the tool weights live. Names follow the files' upstream releases."""

    upscaler: Path  # ESRGAN-family RRDBNet weights (.pth or .safetensors), e.g. RealESRGAN_x4plus.pth
    face_recognizer: Path  # ArcFace ONNX, e.g. insightface's w600k_r50.onnx
    face_swapper: Path  # inswapper-style ONNX, e.g. inswapper_128.onnx


def default_tool_models(models_dir: Path) -> ToolModels:
    models_dir = Path(models_dir)
    return ToolModels(
        upscaler=models_dir / "upscaler" / "RealESRGAN_x4plus.pth",
        face_recognizer=models_dir / "faceswap" / "w600k_r50.onnx",
        face_swapper=models_dir / "faceswap" / "inswapper_128.onnx",
    )


class ToolsBackend:
    name = "tools"
    concurrency = 1  # the device's one thread; torch and onnxruntime use the cores inside it

    def __init__(
        self,
        models: ToolModels,
        *,
        device: str = "auto",
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        all_faces: bool = True,
        detector: FaceDetector | None = None,
    ) -> None:
        self.tool_models = models
        self.device = device
        self.all_faces = all_faces
        self.upscaler = Upscaler(models.upscaler, device, tile=tile, overlap=overlap)
        self._detector = detector
        self._faceswapper: FaceSwapper | None = None
        self._swapper_lock = threading.Lock()
        self.lane = f"device:{device}"
        self._thread = DeviceThread.for_device(device)

    # --- names --------------------------------------------------------------------

    @property
    def upscale_model(self) -> str:
        return self.tool_models.upscaler.stem

    @property
    def faceswap_model(self) -> str:
        return self.tool_models.face_swapper.stem

    def supports(self, spec: JobSpec) -> bool:
        if isinstance(spec, Upscale):
            return spec.model.lower() in ("", self.upscale_model.lower())
        if isinstance(spec, FaceSwap):
            return spec.model.lower() in ("", self.faceswap_model.lower())
        return False

    async def models(self) -> list[ModelInfo]:
        """The tools whose files are present (a missing file would only fail at run time)."""
        m = self.tool_models
        out: list[ModelInfo] = []
        if m.upscaler.is_file():
            out.append(ModelInfo(self.upscale_model, self.name, title=self.upscale_model, kinds=("upscale",)))
        if m.face_recognizer.is_file() and m.face_swapper.is_file():
            out.append(
                ModelInfo(self.faceswap_model, self.name, title=self.faceswap_model, kinds=("faceswap",))
            )
        return out

    @property
    def faceswapper(self) -> FaceSwapper:
        with self._swapper_lock:
            if self._faceswapper is None:
                from engine.tools.faceswap import FaceSwapper  # OpenCV loads only when needed

                m = self.tool_models
                self._faceswapper = FaceSwapper(
                    m.face_recognizer, m.face_swapper, self.device, detector=self._detector
                )
            return self._faceswapper

    # --- running ------------------------------------------------------------------

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        if not isinstance(work.spec, (Upscale, FaceSwap)):
            raise TypeError(f"the tools backend cannot run {work.spec.kind} jobs")

        def job(emit: Callable[[Progress], None], should_stop: Callable[[], bool]) -> bytes:
            return self._work(work, emit, should_stop)

        png = b""
        async with contextlib.aclosing(self._thread.stream(job, work.cancel)) as stream:
            async for item in stream:
                if isinstance(item, Done):
                    png = item.result
                else:
                    yield item
        if work.cancel.cancelled:
            raise JobCancelled()
        yield Finished([ResultImage(png=png, stamped=work.parameters is not None)])

    def _work(self, work: Work, emit: Callable[[Progress], None], stop: Callable[[], bool]) -> bytes:
        """The whole job, in the worker thread: read inputs, run the tool, encode PNG."""
        if stop():
            raise JobCancelled()
        spec = work.spec

        def progress(done: int, total: int) -> None:
            emit(Progress(done, total))

        if isinstance(spec, Upscale):
            image = _open_image(
                work.media.read(spec.image),
                "image",
                size_check=lambda w, h: check_upscale_size(w, h, spec.scale, self.upscaler.max_output_pixels),
            )
            result = self.upscaler.upscale(image, spec.scale, on_progress=progress, should_stop=stop)
        else:
            assert isinstance(spec, FaceSwap)
            source = _open_image(work.media.read(spec.face_image), "source", size_check=_faceswap_size_check)
            target = _open_image(
                work.media.read(spec.target_image), "target", size_check=_faceswap_size_check
            )
            emit(Progress(0, 3))
            result = self.faceswapper.swap(
                source, target, all_faces=self.all_faces, on_progress=progress, should_stop=stop
            )
        if stop():
            raise JobCancelled()
        # Written once, with its parameters when known: the handlers need not re-encode it.
        return png_bytes(result, work.parameters(None) if work.parameters is not None else None)

    async def close(self) -> None:
        self.shutdown()

    def shutdown(self, *, wait: bool = True) -> None:
        """Done with the device thread (the last backend on it stops it; queued work is dropped)."""
        self._thread.release()


def _faceswap_size_check(width: int, height: int) -> None:
    if width * height > MAX_FACESWAP_PIXELS:
        raise BackendError("error-tool-image-too-large", backend="tools", width=width, height=height)


def _open_image(data: bytes, which: str, *, size_check: Callable[[int, int], None]) -> Image.Image:
    """Decode an uploaded picture, upright (EXIF), refusing sizes before paying for the decode."""
    try:
        image = Image.open(io.BytesIO(data))
        size_check(*image.size)
        image.load()
        return ImageOps.exif_transpose(image)
    except BackendError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        log.info("cannot decode the %s picture: %s", which, type(e).__name__)
        raise BackendError("error-tool-bad-image", backend="tools", which=which) from e
