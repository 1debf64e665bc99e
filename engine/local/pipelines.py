"""Loading diffusers pipelines once and sharing them between job kinds.

A model's weights are loaded once (``from_pretrained`` of a hub id or a local folder);
img2img, inpaint and ControlNet pipelines are built from it with ``from_pipe``, which
reuses the same modules, so switching kinds costs no memory and no load time. A small
LRU keeps at most ``max_models`` models resident.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ModelUnavailable
from engine.local.registry import LocalModel

log = logging.getLogger(__name__)


def pick_device(setting: str = "auto") -> str:
    import torch

    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _quiet_libraries() -> None:
    # Loading bars and hub chatter belong in a terminal, not in a bot's log.
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()


_HUB_CHECK_TTL_S = 60.0
_hub_checked: tuple[float, bool] | None = None


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect, cached for a minute.

    Without this, an offline machine spends half a minute in huggingface_hub's retries
    before the user hears that the model cannot be had.
    """
    global _hub_checked
    now = time.monotonic()
    if _hub_checked is not None and now - _hub_checked[0] < _HUB_CHECK_TTL_S:
        return _hub_checked[1]
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout_s):
            ok = True
    except OSError:
        ok = False
    _hub_checked = (now, ok)
    return ok


def cached_on_disk(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json")
    return isinstance(found, str)


def _unavailable(model: LocalModel, err: BaseException) -> ModelUnavailable:
    text = f"{type(err).__name__}: {err}"
    if model.is_local_folder:
        reason = "missing-folder" if "no file named" in text.lower() or "does not appear" in text.lower() \
            or isinstance(err, FileNotFoundError) else "bad-files"
    else:
        reason = "not-downloaded"
    log.warning("model %s could not be loaded (%s): %s", model.name, reason, text[:300])
    return ModelUnavailable(model.name, reason)


class PipelineCache:
    def __init__(self, *, device: str = "auto", offline: bool = False, max_models: int = 2) -> None:
        self.device = pick_device(device)
        self.offline = offline
        self.max_models = max_models
        self._bases: OrderedDict[str, Any] = OrderedDict()
        self._derived: dict[tuple[str, str, str], Any] = {}
        self._controlnets: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk or the hub (for tests and benches)
        _quiet_libraries()

    @property
    def dtype(self) -> Any:
        import torch

        return torch.float16 if self.device.startswith("cuda") else torch.float32

    def _base(self, model: LocalModel) -> Any:
        from diffusers import AutoPipelineForText2Image

        if model.name in self._bases:
            self._bases.move_to_end(model.name)
            return self._bases[model.name]
        if model.is_local_folder and not __import__("pathlib").Path(model.source).expanduser().is_dir():
            raise ModelUnavailable(model.name, "missing-folder")
        local_only = self.offline or model.is_local_folder
        if not local_only and cached_on_disk(model.source):
            local_only = True  # already downloaded: no need to ask the hub again
        elif not local_only and not hub_reachable():
            raise ModelUnavailable(model.name, "not-downloaded")
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(model.source, dtype=self.dtype,
                                                             local_files_only=local_only)
        except Exception as e:  # hub offline, missing or broken files: all mean "cannot use it here"
            raise _unavailable(model, e) from None
        self.loads += 1
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._bases[model.name] = pipe
        while len(self._bases) > self.max_models:
            old, _ = self._bases.popitem(last=False)
            for key in [k for k in self._derived if k[0] == old]:
                del self._derived[key]
            self._free_memory()
        return pipe

    def _controlnet(self, model: LocalModel, control_type: str) -> Any:
        from diffusers import ControlNetModel

        source = model.controlnets.get(control_type)
        if source is None:
            raise ModelUnavailable(f"{model.name}/{control_type}", "no-controlnet")
        if source not in self._controlnets:
            try:
                cn = ControlNetModel.from_pretrained(
                    source, dtype=self.dtype, local_files_only=self.offline or model.is_local_folder)
            except Exception as e:
                raise _unavailable(model, e) from None
            self.loads += 1
            self._controlnets[source] = cn.to(self.device)
        return self._controlnets[source]

    def pipeline(self, model: LocalModel, kind: str, control_type: str = "") -> Any:
        """The pipeline for one job kind, built from the model's cached base pipeline."""
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

        with self._lock:
            base = self._base(model)
            if kind == "txt2img":
                return base
            key = (model.name, kind, control_type)
            if key not in self._derived:
                if kind == "img2img":
                    pipe = AutoPipelineForImage2Image.from_pipe(base)
                elif kind == "inpaint":
                    pipe = AutoPipelineForInpainting.from_pipe(base)
                elif kind == "controlnet":
                    pipe = AutoPipelineForText2Image.from_pipe(base, controlnet=self._controlnet(model, control_type))
                else:
                    raise ValueError(kind)
                pipe.set_progress_bar_config(disable=True)
                self._derived[key] = pipe
            return self._derived[key]

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()
            self._derived.clear()
            self._controlnets.clear()
            self._free_memory()

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
