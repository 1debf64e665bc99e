"""Local models by name: where their weights come from and what settings suit them.

Built-in entries name real models on the Hugging Face hub; ``demo`` is the tiny random
model built by ``python -m bot demo-model``. A JSON file (``IMAGEBOT_MODELS_FILE``) adds
or overrides entries::

    {"dreamshaper": {"source": "Lykon/dreamshaper-8", "family": "sd15",
                     "controlnets": {"canny": "lllyasviel/control_v11p_sd15_canny"}}}

A source that starts with ``./`` or ``../`` is relative to the JSON file's folder, ``~``
is the user's home; anything else that is not an existing folder is a hub id. A mistake
in the file (unknown field, new entry without ``source``, unknown family) stops start-up
with a ``ValueError`` that names the entry: it is the operator's error, not a user's.

LoRAs are ``.safetensors`` files in ``<models_dir>/lora/``; a LoRA's name is its file name
without the extension (``--lora film_grain`` is ``lora/film_grain.safetensors``). Names
are looked up in that folder's listing, never joined into a path.

This module imports without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.backend import ModelInfo
from engine.errors import ModelUnavailable

FAMILIES = ("sd15", "sd21", "sdxl")

_SD15_CONTROLNETS = {
    "canny": "lllyasviel/control_v11p_sd15_canny",
    "depth": "lllyasviel/control_v11f1p_sd15_depth",
    "lineart": "lllyasviel/control_v11p_sd15_lineart",
    "scribble": "lllyasviel/control_v11p_sd15_scribble",
    "openpose": "lllyasviel/control_v11p_sd15_openpose",
}


@dataclass(frozen=True)
class LocalModel:
    name: str
    source: str  # a hub id ("stabilityai/sd-turbo") or a local folder
    family: str = "sd15"  # sd15 | sd21 | sdxl
    title: str = ""
    default_steps: int = 20
    default_cfg: float = 7.0
    default_size: int = 512
    controlnets: dict[str, str] = field(default_factory=dict)

    @property
    def is_local_folder(self) -> bool:
        return is_local_path(self.source)

    def info(self) -> ModelInfo:
        kinds = ("txt2img", "img2img", "inpaint") + (("controlnet",) if self.controlnets else ())
        return ModelInfo(name=self.name, backend="local", title=self.title or self.source, kinds=kinds,
                         default_steps=self.default_steps, default_cfg=self.default_cfg,
                         default_size=self.default_size, control_types=tuple(sorted(self.controlnets)))


BUILTIN: tuple[LocalModel, ...] = (
    LocalModel("sd-turbo", "stabilityai/sd-turbo", "sd21", "SD Turbo (fast, 1-4 steps)",
               default_steps=2, default_cfg=0.0, default_size=512),
    LocalModel("sdxl-turbo", "stabilityai/sdxl-turbo", "sdxl", "SDXL Turbo (fast, 1-4 steps)",
               default_steps=2, default_cfg=0.0, default_size=512),
    LocalModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd15", "Stable Diffusion 1.5",
               default_steps=25, default_cfg=7.0, default_size=512, controlnets=dict(_SD15_CONTROLNETS)),
)


def is_local_path(source: str) -> bool:
    """A folder on this machine (existing or not) rather than a hub id like ``org/name``."""
    return source.startswith((".", "~")) or Path(source).is_absolute() or Path(source).exists()


def _resolve(source: str, base: Path) -> str:
    if source.startswith("~"):
        return str(Path(source).expanduser())
    if source.startswith(("./", "../", ".\\", "..\\")):
        return str((base / source).resolve())
    return source


LORA_SUBDIR = "lora"
LORA_SUFFIX = ".safetensors"


class ModelRegistry:
    def __init__(self, models_dir: Path, models_file: Path | None = None) -> None:
        self.models_dir = Path(models_dir)
        self.lora_dir = self.models_dir / LORA_SUBDIR
        self._models: dict[str, LocalModel] = {m.name: m for m in BUILTIN}
        demo = self.models_dir / "demo"
        self._models["demo"] = LocalModel(
            "demo", str(demo), "sd15", "Demo model (random weights: paints noise)",
            default_steps=8, default_cfg=5.0, default_size=512,
            controlnets={"canny": str(demo / "controlnet-canny")},
        )
        if models_file:
            self._load_file(Path(models_file))

    def _load_file(self, path: Path) -> None:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object of model entries")
        allowed = set(LocalModel.__dataclass_fields__) - {"name"}
        for name, entry in data.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: model {name!r} must be an object")
            unknown = set(entry) - allowed
            if unknown:
                raise ValueError(f"{path}: model {name!r} has unknown fields {sorted(unknown)}")
            base = self._models.get(name)
            if base is None:
                if "source" not in entry:
                    raise ValueError(f"{path}: new model {name!r} needs a source")
                base = LocalModel(name, entry["source"])
            fields = dict(entry)
            if "source" in fields:
                fields["source"] = _resolve(str(fields["source"]), path.parent)
            if "controlnets" in fields:
                fields["controlnets"] = {str(k): _resolve(str(v), path.parent)
                                         for k, v in dict(fields["controlnets"]).items()}
            model = replace(base, **fields)
            if model.family not in FAMILIES:
                raise ValueError(f"{path}: model {name!r} has family {model.family!r}, not one of {FAMILIES}")
            self._models[name] = model

    def get(self, name: str) -> LocalModel:
        model = self._models.get(name)
        if model is None:
            raise ModelUnavailable(name, "unknown-model")
        return model

    def names(self) -> list[str]:
        return list(self._models)

    def infos(self) -> list[ModelInfo]:
        return [m.info() for m in self._models.values()]

    def loras(self) -> dict[str, Path]:
        """LoRA name -> file, for every ``*.safetensors`` in ``lora_dir`` (sorted by name)."""
        if not self.lora_dir.is_dir():
            return {}
        files = sorted(p for p in self.lora_dir.iterdir()
                       if p.suffix == LORA_SUFFIX and p.is_file() and not p.name.startswith("."))
        return {p.stem: p for p in files}

    def lora_file(self, name: str, found: dict[str, Path] | None = None) -> Path | None:
        """The file of the LoRA called ``name`` (exact, else ignoring case), or None.
        ``found``: a listing from ``loras()`` already at hand (else the folder is listed)."""
        if found is None:
            found = self.loras()
        if name in found:
            return found[name]
        by_lower = {stem.lower(): path for stem, path in found.items()}
        return by_lower.get(name.lower())
