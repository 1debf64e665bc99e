"""The job model: what a user asked for, validated once, frozen, and stored as JSON.

Generation jobs (txt2img, img2img, inpaint, controlnet) and tool jobs (face swap,
upscale) are one discriminated union on ``kind`` so that storage, the scheduler and
every backend handle one type. Images are referenced by media keys (see
``storage.media``), never by bytes or URLs, so a job record survives a restart.

Generation jobs may name extras by the names a backend lists in its ``extras()``:
LoRAs with a weight (``loras``), a VAE (``vae``) and textual-inversion embeddings
(``embeddings``). All three default to empty, so jobs stored before they existed still
parse. A name is a catalogue or file name, never a path: no angle brackets, colon, slashes or pipe, no
control characters, no leading dot.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Limits a user can reach with flags. Backends may be narrower; they map or refuse.
MIN_SIDE = 64
MAX_SIDE = 2048
MAX_PIXELS = 2048 * 2048
MAX_PROMPT_CHARS = 1500
MAX_STEPS = 100
MAX_IMAGES = 4
MAX_SEED = 2**32 - 1
CONTROL_TYPES = ("canny", "depth", "lineart", "scribble", "openpose", "mlsd", "normal", "seg")
MAX_LORAS = 5
MAX_EMBEDDINGS = 8
MAX_EXTRA_NAME_CHARS = 128
LORA_WEIGHT_MIN = -2.0
LORA_WEIGHT_MAX = 2.0
EXTRA_KINDS = ("lora", "vae", "embedding")
_BAD_NAME_CHARS = re.compile(r"[<>:/\\|\x00-\x1f\x7f]")


def is_extra_name(name: str) -> bool:
    """Whether ``name`` may name a LoRA, VAE or embedding (a name, never a path)."""
    return (0 < len(name) <= MAX_EXTRA_NAME_CHARS and name == name.strip() and not name.startswith(".")
            and not _BAD_NAME_CHARS.search(name))


def _extra_name(name: str) -> str:
    if not is_extra_name(name):
        raise PydanticCustomError("extra_name", "{value} is not a valid name", {"value": name[:40]})
    return name


ExtraName = Annotated[str, AfterValidator(_extra_name)]

MediaKey = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoraRef(_Frozen):
    """One LoRA of a job: a name from the backend's ``extras()["lora"]`` and its weight."""

    name: ExtraName
    weight: float = Field(default=1.0, ge=LORA_WEIGHT_MIN, le=LORA_WEIGHT_MAX)


class GenerationBase(_Frozen):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    width: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE)
    height: int = Field(default=512, ge=MIN_SIDE, le=MAX_SIDE)
    steps: int = Field(default=20, ge=1, le=MAX_STEPS)
    cfg: float = Field(default=7.0, ge=0.0, le=30.0)
    # One seed per job; image k uses seed + k, so any single image can be re-made alone.
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    n: int = Field(default=1, ge=1, le=MAX_IMAGES)
    model: str = Field(default="", max_length=200)
    style: str = Field(default="", max_length=64)
    loras: tuple[LoraRef, ...] = Field(default=(), max_length=MAX_LORAS)
    vae: str = Field(default="", max_length=MAX_EXTRA_NAME_CHARS)
    embeddings: tuple[ExtraName, ...] = Field(default=(), max_length=MAX_EMBEDDINGS)

    @field_validator("vae")
    @classmethod
    def _vae_name(cls, v: str) -> str:
        return _extra_name(v) if v else v

    @field_validator("loras")
    @classmethod
    def _loras_distinct(cls, v: tuple[LoraRef, ...]) -> tuple[LoraRef, ...]:
        names = [ref.name.lower() for ref in v]
        if len(set(names)) != len(names):
            raise PydanticCustomError("extra_twice", "a LoRA is named twice")
        return v

    def extras_used(self) -> list[tuple[str, str]]:
        """``(kind, name)`` of every extra this job asks for: ("lora", NAME), ("vae", NAME)..."""
        used = [("lora", ref.name) for ref in self.loras]
        if self.vae:
            used.append(("vae", self.vae))
        return used + [("embedding", name) for name in self.embeddings]

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise PydanticCustomError("prompt_blank", "the prompt is empty")
        return v

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise PydanticCustomError("multiple_of_8", "{value} is not a multiple of 8", {"value": v})
        return v

    @model_validator(mode="after")
    def _pixels_bounded(self) -> GenerationBase:
        if self.width * self.height > MAX_PIXELS:
            raise PydanticCustomError(
                "too_many_pixels",
                "{width}x{height} is larger than the limit",
                {"width": self.width, "height": self.height},
            )
        return self

    def image_seeds(self) -> list[int]:
        return [(self.seed + k) % (MAX_SEED + 1) for k in range(self.n)]


class Txt2Img(GenerationBase):
    kind: Literal["txt2img"] = "txt2img"


class Img2Img(GenerationBase):
    kind: Literal["img2img"] = "img2img"
    init_image: MediaKey
    strength: float = Field(default=0.6, gt=0.0, le=1.0)


class Inpaint(GenerationBase):
    kind: Literal["inpaint"] = "inpaint"
    init_image: MediaKey
    # White = repaint, black = keep (the diffusers and A1111 convention).
    mask_image: MediaKey
    strength: float = Field(default=0.85, gt=0.0, le=1.0)


class ControlNet(GenerationBase):
    kind: Literal["controlnet"] = "controlnet"
    control_image: MediaKey
    control_type: Literal["canny", "depth", "lineart", "scribble", "openpose", "mlsd", "normal", "seg"]
    control_scale: float = Field(default=1.0, ge=0.0, le=2.0)


class FaceSwap(_Frozen):
    kind: Literal["faceswap"] = "faceswap"
    face_image: MediaKey  # whose face
    target_image: MediaKey  # the picture that receives it
    model: str = Field(default="", max_length=200)

    n: Literal[1] = 1


class Upscale(_Frozen):
    kind: Literal["upscale"] = "upscale"
    image: MediaKey
    scale: int = Field(default=2, ge=2, le=4)
    model: str = Field(default="", max_length=200)

    n: Literal[1] = 1


GenerationSpec = Txt2Img | Img2Img | Inpaint | ControlNet
ToolSpec = FaceSwap | Upscale
JobSpec = Annotated[
    Txt2Img | Img2Img | Inpaint | ControlNet | FaceSwap | Upscale,
    Field(discriminator="kind"),
]
JOB_KINDS = ("txt2img", "img2img", "inpaint", "controlnet", "faceswap", "upscale")

job_spec_adapter: TypeAdapter[JobSpec] = TypeAdapter(JobSpec)


def parse_job_spec(data: dict | str | bytes) -> JobSpec:
    """Validate a job from a dict (handlers) or JSON (storage); raises pydantic.ValidationError."""
    if isinstance(data, (str, bytes)):
        return job_spec_adapter.validate_json(data)
    return job_spec_adapter.validate_python(data)


def dump_job_spec(spec: JobSpec) -> str:
    return spec.model_dump_json()

