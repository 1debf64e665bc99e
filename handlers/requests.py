"""From a parsed prompt plus the user's and chat's defaults to a validated JobSpec.

Order of precedence for every parameter: the flag in the message, then the user's
``/settings``, then the chat's defaults (set by its admins), then the model's own
defaults (a Turbo model wants 1-4 steps and cfg 0, SD1.5 wants 20-30 and 7).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engine.backend import ModelInfo
from engine.errors import UserFacingError, problems_from_validation
from engine.jobs import MAX_SEED, MAX_SIDE, MIN_SIDE, JobSpec, parse_job_spec


class InvalidRequest(UserFacingError):
    """The assembled job failed validation; ``problems`` holds one message per bad value."""

    def __init__(self, err: ValidationError) -> None:
        self.problems = problems_from_validation(err)
        first = self.problems[0]
        super().__init__(first.key, **first.args)


def fresh_seed() -> int:
    """A random seed for a job whose user gave none."""
    return secrets.randbelow(MAX_SEED + 1)


def size_for_aspect(aspect: tuple[int, int], side: int) -> tuple[int, int]:
    """Width and height with about ``side``² pixels at ``aspect``, each a multiple of 8."""
    w, h = aspect
    area = side * side
    width = math.sqrt(area * w / h)
    height = width * h / w
    return max(64, int(round(width / 8)) * 8), max(64, int(round(height / 8)) * 8)


def within_limits(width: int, height: int) -> tuple[int, int]:
    """A computed size scaled down, keeping its shape, until no side passes ``MAX_SIDE``.

    A wide picture at a large default side (an 8:1 panorama at 1024) would otherwise ask
    for a size the user never typed and be refused for it."""
    scale = min(1.0, MAX_SIDE / max(width, height))

    def side(v: int) -> int:
        return max(MIN_SIDE, min(MAX_SIDE, round(v * scale / 8) * 8))

    return side(width), side(height)


def parse_aspect(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, str) and ":" in value:
        a, _, b = value.partition(":")
        if a.isdigit() and b.isdigit() and int(a) and int(b):
            return int(a), int(b)
    return None


@dataclass(frozen=True)
class Defaults:
    """The merged defaults for one user in one chat."""

    values: dict[str, Any]

    @classmethod
    def merge(cls, chat: dict[str, Any], user: dict[str, Any]) -> Defaults:
        return cls({**chat, **user})

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def build_generation(
    *,
    prompt: str,
    flags: dict[str, Any],
    defaults: Defaults,
    model: ModelInfo,
    kind: str,
    images: dict[str, str],
    image_size: tuple[int, int] | None = None,
) -> JobSpec:
    """Assemble and validate a generation job. ``images`` maps spec fields to media keys."""
    if "size" in flags:
        width, height = flags["size"]
    else:
        aspect = flags.get("ar") or parse_aspect(defaults.get("ar"))
        side = int(defaults.get("side") or model.default_size)
        if aspect is None and image_size is not None:
            aspect = image_size  # keep the picture's shape for img2img and friends
        width, height = within_limits(*size_for_aspect(aspect or (1, 1), side))
    seed = flags["seed"] if "seed" in flags else fresh_seed()
    data: dict[str, Any] = {
        "kind": kind,
        "prompt": prompt,
        "negative_prompt": flags.get("no", defaults.get("negative", "")),
        "width": width,
        "height": height,
        "steps": flags.get("steps", defaults.get("steps") or model.default_steps),
        "cfg": flags.get("cfg", defaults.get("cfg", model.default_cfg)),
        "seed": seed,
        "n": flags.get("n", defaults.get("n", 1)),
        "model": model.name,
        "style": flags.get("style", defaults.get("style", "")),
        **images,
    }
    data.update(extras_from_flags(flags))
    if kind in ("img2img", "inpaint") and "strength" in flags:
        data["strength"] = flags["strength"]
    if kind == "controlnet":
        data["control_type"] = flags.get("control")
    return validate(data)


def extras_from_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """The job fields of ``--lora``, ``--vae`` and ``--embedding`` (only those given), for
    ``build_generation`` and for re-running a job with new flags (``with_changes``)."""
    fields: dict[str, Any] = {}
    if "lora" in flags:
        fields["loras"] = [{"name": name, "weight": weight} for name, weight in flags["lora"]]
    if "vae" in flags:
        fields["vae"] = flags["vae"]
    if "embedding" in flags:
        fields["embeddings"] = list(flags["embedding"])
    return fields


def validate(data: dict[str, Any]) -> JobSpec:
    try:
        return parse_job_spec(data)
    except ValidationError as e:
        raise InvalidRequest(e) from None


def with_changes(spec: JobSpec, **changes: Any) -> JobSpec:
    """A copy of ``spec`` with some fields changed, validated again."""
    data = spec.model_dump()
    data.update(changes)
    return validate(data)
