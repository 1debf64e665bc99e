"""The local diffusers backend: txt2img, img2img, inpaint and ControlNet on this machine.

Jobs run one at a time on the device's worker thread (engine/threads.py), shared with the
tools on the same device: a GPU does one thing well at a time, and the event loop must
keep serving chats. Each job gets a fresh scheduler and
one CPU ``torch.Generator`` per image seeded ``seed + k``, so any image can be re-made
alone and the same seed gives the same bytes. Progress and latent previews flow back
to the event loop through a queue; cancelling sets the pipeline's interrupt flag and
the run stops at the next step, before the VAE decode.

Only canny control maps are computed here (``cv2.Canny``); for the other control types
the given picture is used as the control map as it is (a depth map, a pose skeleton, a
line drawing...), since their detectors need weights of their own.

LoRAs (``--lora NAME[:WEIGHT]``) are ``.safetensors`` files in ``<models_dir>/lora/``
(``extras()`` lists them). A job's LoRAs are loaded into the cached pipeline with
diffusers' ``load_lora_weights`` (one adapter each), weighted with ``set_adapters``, and
unloaded again when the job ends however it ends, so the next job gets the model as it
was. diffusers needs the ``peft`` package for this; without it LoRA jobs are refused
before they are queued. VAEs and embeddings are not supported here: refused likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import logging
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.backend import (
    BackendEvent,
    Finished,
    MediaReader,
    ModelInfo,
    Progress,
    ResultImage,
    Work,
)
from engine.errors import BackendError, JobCancelled, ModelUnavailable, Problem
from engine.extras import refuse_unsupported, unknown_extra
from engine.jobs import ControlNet, GenerationBase, GenerationSpec, Img2Img, Inpaint, JobSpec, Txt2Img
from engine.local.pipelines import PipelineCache
from engine.local.previews import latents_to_jpeg
from engine.local.registry import LocalModel, ModelRegistry
from engine.png import png_bytes
from engine.threads import DeviceThread, Done

log = logging.getLogger(__name__)

GENERATION_KINDS = ("txt2img", "img2img", "inpaint", "controlnet")
_ADAPTER_PREFIX = "imagebot_lora_"
LoraFiles = list[tuple[Path, float]]  # a job's LoRA files and their weights


def peft_installed() -> bool:
    """diffusers loads LoRAs through peft; without it there are no LoRAs here."""
    return importlib.util.find_spec("peft") is not None


def canny_map(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    """The canny edge map ControlNet's canny model was trained on (white edges on black)."""
    import cv2
    import numpy as np

    edges = cv2.Canny(np.asarray(image.convert("RGB")), low, high)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


class LocalDiffusersBackend:
    name = "local"

    def __init__(self, registry: ModelRegistry, *, device: str = "auto", offline: bool = False,
                 concurrency: int = 1, default_model: str = "sd-turbo", max_models: int = 2,
                 previews_per_job: int = 5) -> None:
        """``concurrency`` is what the scheduler may hand over at once; the jobs still run one
        after another on the single worker thread (one GPU), so 1 is the honest value."""
        self.registry = registry
        self.default_model = default_model
        self.previews_per_job = previews_per_job
        self.concurrency = concurrency
        self._device_setting = device
        self._offline = offline
        self._max_models = max_models
        self._cache: PipelineCache | None = None
        self.lane = f"device:{device}"
        self._thread = DeviceThread.for_device(device)

    @property
    def cache(self) -> PipelineCache:
        # Created on the worker thread's first job: importing torch costs seconds.
        if self._cache is None:
            self._cache = PipelineCache(device=self._device_setting, offline=self._offline,
                                        max_models=self._max_models)
        return self._cache

    def supports(self, spec: JobSpec) -> bool:
        return spec.kind in GENERATION_KINDS

    def unavailable(self, name: str | None = None) -> str | None:
        """Why ``name`` (the default model when None) cannot be used here, or None: checked
        without loading it, so the bot can say so at start-up rather than at the first job."""
        from engine.local.pipelines import unavailable_reason

        try:
            model = self.registry.get(name or self.default_model)
        except ModelUnavailable:
            return "unknown-model"
        return unavailable_reason(model.source, offline=self._offline)

    def check(self, spec: JobSpec) -> list[Problem]:
        """Refuse, before the job is queued, extras this engine cannot use (see ``_loras_for``)."""
        self._loras_for(spec)
        return []

    async def models(self) -> list[ModelInfo]:
        return self.registry.infos()

    async def extras(self) -> dict[str, list[ModelInfo]]:
        """The LoRA files in ``<models_dir>/lora/``; no VAEs or embeddings."""
        files = await asyncio.to_thread(self.registry.loras)
        return {
            "lora": [ModelInfo(name=name, backend=self.name, title=f"LoRA {path.name}") for name, path in files.items()],
            "vae": [],
            "embedding": [],
        }

    def _loras_for(self, spec: JobSpec) -> LoraFiles:
        """The files of the job's LoRAs with their weights, or a BackendError that says what
        cannot be used: a VAE or embeddings, an unknown LoRA (naming the closest), no peft."""
        if not isinstance(spec, GenerationBase):
            return []
        refuse_unsupported(self.name, spec, ("lora",), error=BackendError)  # no VAEs or embeddings here
        if not spec.loras:
            return []
        found = self.registry.loras()  # the folder listed once for all the job's LoRAs
        files: LoraFiles = []
        for ref in spec.loras:
            path = self.registry.lora_file(ref.name, found)
            if path is None:
                raise unknown_extra(self.name, "lora", ref.name, list(found))
            files.append((path, ref.weight))
        if not peft_installed():
            raise BackendError("error-local-lora-needs-peft", backend=self.name)
        return files

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        spec = work.spec
        if not isinstance(spec, Txt2Img | Img2Img | Inpaint | ControlNet):
            raise BackendError("error-backend-cannot", backend=self.name, kind=spec.kind)
        model = self.registry.get(spec.model or self.default_model)
        loras = self._loras_for(spec)  # before any work

        def generate(emit: Callable[[Progress], None], should_stop: Callable[[], bool]) -> list[ResultImage]:
            return self._generate(model, spec, work, should_stop, emit, loras)

        # aclosing: when our consumer walks away, the stream's own cleanup (stop the worker)
        # runs now, not whenever the inner generator is collected.
        async with contextlib.aclosing(self._thread.stream(generate, work.cancel)) as stream:
            async for item in stream:
                yield Finished(item.result) if isinstance(item, Done) else item

    # --- on the worker thread ---------------------------------------------------------

    def _generate(self, model: LocalModel, spec: GenerationSpec, work: Work, should_stop: Callable[[], bool],
                  emit: Callable[[Progress], None], loras: LoraFiles | None = None) -> list[ResultImage]:
        import torch

        if should_stop():
            raise JobCancelled()
        inputs = self._inputs(spec, work.media)
        try:
            return self._diffuse(model, spec, inputs, should_stop, emit, loras or [], work.parameters)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not _is_out_of_memory(e):
                raise
            log.warning("out of memory in a %s job at %dx%d, n=%d: unloading models", spec.kind,
                        spec.width, spec.height, spec.n)
            self.cache.clear()
            raise BackendError("error-out-of-memory", backend=self.name) from None

    def _diffuse(self, model: LocalModel, spec: GenerationSpec, inputs: dict[str, Any],
                 should_stop: Callable[[], bool], emit: Callable[[Progress], None], loras: LoraFiles,
                 parameters: Callable[[int | None], str] | None = None) -> list[ResultImage]:
        control_type = spec.control_type if isinstance(spec, ControlNet) else ""
        pipe = self.cache.pipeline(model, spec.kind, control_type)
        loaded = self._load_loras(pipe, model, loras)
        try:
            return self._paint(pipe, model, spec, inputs, should_stop, emit, parameters)
        finally:
            if loaded:
                self._unload_loras(pipe)  # the cached pipeline is shared by every later job

    def _load_loras(self, pipe: Any, model: LocalModel, loras: LoraFiles) -> bool:
        """Load each LoRA file as an adapter and weight them; False when there are none."""
        if not loras:
            return False
        names: list[str] = []
        try:
            for path, _weight in loras:
                name = f"{_ADAPTER_PREFIX}{len(names)}"
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
                names.append(name)
            pipe.set_adapters(names, adapter_weights=[weight for _, weight in loras])
        except Exception as e:
            bad = loras[min(len(names), len(loras) - 1)][0]
            log.warning("LoRA %s could not be loaded into %s: %s", bad.name, model.name, f"{type(e).__name__}: {e}"[:300])
            self._unload_loras(pipe)
            raise BackendError("error-local-lora-bad", backend=self.name, value=bad.stem, model=model.name) from None
        log.info("job LoRAs loaded into %s: %s", model.name, ", ".join(p.stem for p, _ in loras))
        return True

    def _unload_loras(self, pipe: Any) -> None:
        try:
            pipe.unload_lora_weights()
        except Exception:  # a pipeline we cannot clean must not paint the next job
            log.warning("LoRA weights could not be unloaded; dropping the cached models", exc_info=True)
            self.cache.clear()

    def _paint(self, pipe: Any, model: LocalModel, spec: GenerationSpec, inputs: dict[str, Any],
               should_stop: Callable[[], bool], emit: Callable[[Progress], None],
               parameters: Callable[[int | None], str] | None) -> list[ResultImage]:
        import torch

        # A fresh scheduler per job: schedulers keep per-run state (step index, sigmas).
        pipe.scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config)
        seeds = spec.image_seeds()
        kwargs: dict[str, Any] = {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative_prompt or None,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.cfg,
            "num_images_per_prompt": spec.n,
            # CPU generators: the same seed gives the same picture on any device.
            "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
            "output_type": "pil",
        }
        kwargs.update(inputs)

        def on_step_end(p: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            if should_stop():
                p._interrupt = True
                raise JobCancelled()  # now, not after the VAE decode of a picture nobody wants
            # num_timesteps, not spec.steps: img2img at strength 0.6 runs 12 of 20 steps.
            total = int(getattr(p, "num_timesteps", 0) or spec.steps)
            every = max(1, math.ceil(total / max(1, self.previews_per_job)))
            preview = None
            if self.previews_per_job and (step + 1) % every == 0 and step + 1 < total:
                try:
                    preview = latents_to_jpeg(callback_kwargs["latents"], family=model.family)
                except Exception:  # a preview is a nicety; never fail a job for it
                    log.debug("preview failed", exc_info=True)
            emit(Progress(step + 1, total, preview))
            return callback_kwargs

        with torch.inference_mode():
            out = pipe(**kwargs, callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        if should_stop():
            raise JobCancelled()
        flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(out.images)
        results = []
        for image, seed, nsfw in zip(out.images, seeds, flagged, strict=False):
            if nsfw:  # the model's own safety checker blacked it out
                results.append(ResultImage(png=b"", seed=seed, withheld_reason="withheld-nsfw"))
                continue
            # The final PNG, written once, with its parameters: nothing re-encodes it later.
            png = png_bytes(image, parameters(seed) if parameters is not None else None)
            results.append(ResultImage(png=png, seed=seed, stamped=parameters is not None))
        return results

    def _inputs(self, spec: GenerationSpec, media: MediaReader) -> dict[str, Any]:
        size = (spec.width, spec.height)

        def load(key: str, what: str, mode: str = "RGB") -> Image.Image:
            try:
                data = media.read(key)
            except Exception as e:  # storage.media.MediaError, or another reader's own error
                log.info("input %s of a %s job cannot be read: %s", what, spec.kind, type(e).__name__)
                raise BackendError("error-local-input-gone", backend=self.name, what=what) from None
            try:
                with Image.open(io.BytesIO(data)) as opened:
                    upright = ImageOps.exif_transpose(opened)  # phone photos carry their rotation in EXIF
                    return upright.convert(mode).resize(size, Image.Resampling.LANCZOS)
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                raise BackendError("error-image-corrupt", backend=self.name, what=what) from None

        if isinstance(spec, Img2Img):
            return {"image": load(spec.init_image, "picture"), "strength": spec.strength,
                    "num_inference_steps": _steps_for_strength(spec.steps, spec.strength)}
        if isinstance(spec, Inpaint):
            return {"image": load(spec.init_image, "picture"), "mask_image": load(spec.mask_image, "mask", "L"),
                    "strength": spec.strength, "width": spec.width, "height": spec.height,
                    "num_inference_steps": _steps_for_strength(spec.steps, spec.strength)}
        if isinstance(spec, ControlNet):
            image = load(spec.control_image, "picture")
            control = canny_map(image) if spec.control_type == "canny" else image
            return {"image": control, "controlnet_conditioning_scale": spec.control_scale,
                    "width": spec.width, "height": spec.height}
        return {"width": spec.width, "height": spec.height}

    async def close(self) -> None:
        if self._cache is not None:
            await self._thread.call(self._cache.clear)
        self._thread.release()


def _steps_for_strength(steps: int, strength: float) -> int:
    # img2img runs int(steps * strength) steps; at least one must remain (Turbo: 2 steps at 0.5).
    return max(steps, math.ceil(1 / strength))


def _is_out_of_memory(err: BaseException) -> bool:
    import torch

    # CUDA raises its own type; MPS and some CUDA paths raise a RuntimeError that says so.
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
