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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.errors import ModelUnavailable
from engine.local.registry import LocalModel, is_local_path

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


def cached_on_disk(repo_id: str, filename: str = "model_index.json") -> bool:
    """Whether a hub repo's index file is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # a malformed id ("a/b/c") is simply not cached
        return False
    return isinstance(found, str)


def unavailable_reason(source: str, *, offline: bool, index_file: str = "model_index.json") -> str | None:
    """Why a model cannot be had here (a reason key of error-model-unavailable), or None.

    Cheap: no weights are read, so the console can say it at start-up."""
    if is_local_path(source):
        path = Path(source).expanduser()
        if path.is_file():
            return "not-a-folder"
        if not path.is_dir():
            return "missing-folder"
        return None
    if cached_on_disk(source, index_file):
        return None  # already downloaded: no need to ask the hub again
    if offline or _hub_offline_env() or not hub_reachable():
        return "not-downloaded"
    return None


def _hub_offline_env() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class PipelineCache:
    """Base pipelines per model (LRU), derived pipelines per kind, ControlNets per source.

    Every method runs on the backend's single worker thread; the lock only guards
    against a stray caller (a bench, a test) touching the cache at the same time.
    """

    def __init__(self, *, device: str = "auto", offline: bool = False, max_models: int = 2) -> None:
        self.device = pick_device(device)
        self.offline = offline or _hub_offline_env()
        self.max_models = max(1, max_models)
        self._bases: OrderedDict[str, Any] = OrderedDict()
        self._derived: dict[tuple[str, str, str], Any] = {}
        self._controlnets: dict[str, Any] = {}
        # Which ControlNet source each derived ControlNet pipeline holds, so that evicting a
        # model also frees the ControlNets no resident model uses.
        self._derived_controlnet: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk or the hub (for tests and benches)
        _quiet_libraries()

    @property
    def dtype(self) -> Any:
        import torch

        # Half precision where it is fast; on a CPU fp16 is about 10x slower than fp32.
        return torch.float16 if self.device.startswith(("cuda", "mps")) else torch.float32

    def resident(self) -> list[str]:
        """Names of the models whose weights are loaded, least recently used first."""
        return list(self._bases)

    # --- loading ------------------------------------------------------------------

    def _local_only(self, label: str, source: str, index_file: str) -> bool:
        """Fail fast when ``source`` cannot be had here; else whether to stay off the hub."""
        reason = unavailable_reason(source, offline=self.offline, index_file=index_file)
        if reason is not None:
            raise ModelUnavailable(label, reason)
        return is_local_path(source) or cached_on_disk(source, index_file)

    def _load(self, label: str, source: str, local_only: bool, loader: Any) -> Any:
        try:
            obj = loader(source, dtype=self.dtype, local_files_only=local_only)
        except Exception as first:
            # A cached index with missing weights (an interrupted download): fetch the rest.
            if local_only and not is_local_path(source) and not self.offline and hub_reachable():
                try:
                    obj = loader(source, dtype=self.dtype, local_files_only=False)
                except Exception as e:
                    raise _unavailable(label, source, e) from None
            else:
                raise _unavailable(label, source, first) from None
        self.loads += 1
        return obj

    def _base(self, model: LocalModel) -> Any:
        from diffusers import AutoPipelineForText2Image

        if model.name in self._bases:
            self._bases.move_to_end(model.name)
            return self._bases[model.name]
        local_only = self._local_only(model.name, model.source, "model_index.json")
        # Make room before loading: two big models side by side is how a GPU runs out of memory.
        while len(self._bases) >= self.max_models:
            self._evict(next(iter(self._bases)))
        pipe = self._load(model.name, model.source, local_only, AutoPipelineForText2Image.from_pretrained)
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._bases[model.name] = pipe
        return pipe

    def _controlnet(self, model: LocalModel, control_type: str) -> tuple[str, Any]:
        from diffusers import ControlNetModel

        label = f"{model.name}/{control_type}"
        source = model.controlnets.get(control_type)
        if source is None:
            raise ModelUnavailable(label, "no-controlnet")
        if source not in self._controlnets:
            local_only = self._local_only(label, source, "config.json")
            cn = self._load(label, source, local_only, ControlNetModel.from_pretrained)
            self._controlnets[source] = cn.to(self.device)
        return source, self._controlnets[source]

    def pipeline(self, model: LocalModel, kind: str, control_type: str = "") -> Any:
        """The pipeline for one job kind, built from the model's cached base pipeline.

        Raises ModelUnavailable (with a reason code for the user) when the weights cannot
        be had here.
        """
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
                    source, controlnet = self._controlnet(model, control_type)
                    pipe = AutoPipelineForText2Image.from_pipe(base, controlnet=controlnet)
                    self._derived_controlnet[key] = source
                else:
                    raise ValueError(f"no pipeline for job kind {kind!r}")
                pipe.set_progress_bar_config(disable=True)
                self._derived[key] = pipe
            return self._derived[key]

    # --- freeing ------------------------------------------------------------------

    def _evict(self, name: str) -> None:
        self._bases.pop(name, None)
        for key in [k for k in self._derived if k[0] == name]:
            del self._derived[key]
            self._derived_controlnet.pop(key, None)
        in_use = set(self._derived_controlnet.values())
        for source in [s for s in self._controlnets if s not in in_use]:
            del self._controlnets[source]
        log.info("unloaded model %s", name)
        self._free_memory()

    def clear(self) -> None:
        with self._lock:
            self._bases.clear()
            self._derived.clear()
            self._derived_controlnet.clear()
            self._controlnets.clear()
            self._free_memory()

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            torch.mps.empty_cache()


def _unavailable(label: str, source: str, err: BaseException) -> ModelUnavailable:
    """A short reason code for the user; the library's own words go to the log only."""
    text = f"{type(err).__name__}: {err}"
    if not is_local_path(source):
        reason = "not-downloaded"
    elif isinstance(err, FileNotFoundError) or "no file named" in text.lower() or "does not appear" in text.lower():
        reason = "incomplete-folder"
    else:
        reason = "bad-files"
    log.warning("model %s could not be loaded (%s): %s", label, reason, text[:300])
    return ModelUnavailable(label, reason)
