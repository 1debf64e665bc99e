"""zhiqite AIGCImgOpenServ on the Aliyun API market (seed document 002): async tasks.

Every generation call only *starts* a task the bot names itself; the pictures come later,
by callback or by polling (each poll is a billed API call):

    saas/sd/v2/text2image | image2image | controlnet   {... alwayson_scripts.id_task}
        -> {"code": "200", "msg": "success", "data": {"task_id": <id_task>}}
    saas/sd/v2/queryTaskInfo {"businessTaskId"} -> data.status 0 failed, 1 running,
        2 success, 3 queued, 5 uploading; temporaryImageDto {progress "0~1", currentImage
        base64, jobNo, jobCount} while running; differentialImageRspList[] {image_url, seed,
        image_status 1 ok / 2 deleted for violation, img_audit_status false = do not show}
    saas/tool/roop {sourceUrl, targetUrl, businessTaskId}     face swap
    saas/tool/enhance {businessTaskId, image, resizeMode, upscalingResize, ...}   upscale
    saas/tool/{toolCode}/queryTask {"businessTaskId"} -> {taskId, status, outputImageUrl}
    saas/sd/v2/queryModelList | queryLoraList | queryVaeList | queryEmbeddingList
        {"pageSize", "pageNum"} -> data.rows[], data.total

Auth: ``X-Request-req-accessKeyId`` / ``X-Request-req-accessKeySecret`` headers, or the
API gateway AppCode (``Authorization: APPCODE <code>``), which wins when configured.
``code`` is the *string* "200" for success and "400" for failure (an int 200 is accepted too).

Input pictures are never uploaded: the vendor downloads them from our own web server
through ``work.media.public_url(key)`` (signed, expiring; never a platform URL).

Where the document contradicts itself, both forms are accepted and the choice is noted:

* The scripts object is ``alwayson_scripts`` in the text2image and image2image examples
  and ``always_on_scripts`` in the controlnet example and in every parameter table. We send
  the examples' spelling by default; ``zhiqite_scripts_field`` switches it.
* ``seed`` is a string in the text2image/image2image tables and examples but an integer in
  the controlnet table (whose example again sends a string): we always send a string.
* Tool status codes: the roop answer and the tool-query tables say 1 success / 2 failure;
  the enhance table says 1 running / 2 success / 0 failure, and the query example answers
  2 next to an ``outputImageUrl``; the query table types it a string, the others an
  integer. We read it as: 0 failure; 2 with an image URL success, 2 without one failure;
  1 without an image URL still running; 1 *with* one is tried (downloaded) and counts as
  success only when the picture is really there, else as still running; 3/5 pending.
* enhance ``resizeMode``: the table describes 0 both as "scale by upscalingResize" and as
  "target size W x H"; we send resizeMode 0 with upscalingResize *and* the matching
  upscalingResizeW/H, so either reading gives the same picture.
* ``jobNo`` (the batch in progress) is read 1-based; ``progress`` may be "0.42" or 0.42.
* The callback body is not documented; we accept the query answer (``{"code", "data"}``)
  or its ``data`` object alone, and only for our own task id.
* queryVaeList marks the ``vaeFileName`` filter required; we list without it (a filter
  of "" could match nothing), like the other catalogues.

Extras (``extras()``: the LoRA, VAE and embedding catalogues, cached like the model list).
A job's names are checked against them before any paid call (``check`` does it when the
catalogues are cached, ``run`` always): an unknown name is refused naming the closest
ones. Then, as the document says, each LoRA goes into the prompt as
``<lora:sdLoraFileSimplifyName:WEIGHT>``, the VAE into ``sd_vae`` (its ``vaeFileName``) and
each embedding's ``embeddingSimplifyName`` into ``negative_prompt``. A user may type a
LoRA by its simplified name, file name or title, a VAE with or without its extension.

Callbacks: when a public base URL and a ``CallbackHub`` are configured, sd tasks and
enhance carry ``callbackUrl`` with a per-task token. While waiting for it the task is
still asked for its progress at a modest rate (``callback_poll_interval_s``, backing off
to ``callback_poll_max_interval_s``), so users see the same progress and previews as in
poll mode; those polls are also the safety net for a lost callback. roop documents no
callbackUrl, so it is always polled.

Pictures travel as links to our own web server, so every kind but txt2img needs
``public_base_url``. Without it such a job is refused before any call with
``error-zhiqite-needs-public-url`` (an admin matter; retryable, so a fallback backend
may take the job).

Polling is idempotent and the task goes on (paid) at zhiqite whatever one answer looks
like: an unreadable answer (not JSON, fields missing), a 5xx or a throttled call is asked
again later, with backoff, within the task timeout; only ``_MAX_BAD_ANSWERS`` unreadable
answers in a row end the job.

The API gateway answers 403 with an ``X-Ca-Error-Message`` header before zhiqite sees a
call: "Quota Exhausted" (the purchased calls are used up: ``error-zhiqite-quota``),
"Throttled by ... Flow Control" (too many calls right now: ``error-zhiqite-throttled``,
retryable), anything else (a bad AppCode, key or signature: ``error-zhiqite-auth``).

Moderated pictures (image_status 2, img_audit_status false) are *not* downloaded; they
become ``ResultImage(png=b"", withheld_reason=<locale key>)`` so the user is told why and
is not charged for them (``withheld-zhiqite-deleted`` / ``withheld-zhiqite-hidden``).

Restart safety: the task id and the callback token are checkpointed *before* the submit
(``submitted=False``) and again after it. A job resumed with ``submitted=True`` only waits;
one resumed with ``submitted=False`` asks the vendor whether the task exists (again, on
an unreadable answer) and submits only if zhiqite says it does not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import BackendError, JobCancelled, Problem
from engine.extras import unknown_extra
from engine.jobs import CONTROL_TYPES, EXTRA_KINDS, GenerationBase, JobSpec
from engine.vendors.callbacks import callback_url
from engine.vendors.common import Mapped, VendorHttp, VendorLimits, sanitize_vendor_text

log = logging.getLogger("imagebot.vendors.zhiqite")

TEXT2IMAGE = "saas/sd/v2/text2image"
IMAGE2IMAGE = "saas/sd/v2/image2image"
CONTROLNET = "saas/sd/v2/controlnet"
QUERY_TASK = "saas/sd/v2/queryTaskInfo"
TOOL_SUBMIT = "saas/tool/{code}"
TOOL_QUERY = "saas/tool/{code}/queryTask"
CATALOGUES: dict[str, str] = {
    "models": "saas/sd/v2/queryModelList",
    "loras": "saas/sd/v2/queryLoraList",
    "vaes": "saas/sd/v2/queryVaeList",
    "embeddings": "saas/sd/v2/queryEmbeddingList",
}
JSON_TYPE = "application/json;charset=UTF-8"
SCRIPTS_FIELDS = ("alwayson_scripts", "always_on_scripts")

GENERATION_KINDS = ("txt2img", "img2img", "inpaint", "controlnet")
TOOL_KINDS = ("faceswap", "upscale")
TOOL_CODES = {"faceswap": "roop", "upscale": "enhance"}
MAX_SIDE = 1024  # width/height (0,1024], multiples of 8
ENHANCE_MAX_INPUT = 1536  # the enhance input may be at most 1536x1536
ENHANCE_MAX_TARGET = 2048
SAMPLERS = (
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE",
    "DPM fast", "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras",
    "DPM++ SDE Karras", "DPM++ 2M Karras",
)
# Our control types -> the document's preprocessor (module) and ControlNet model.
CONTROL: dict[str, tuple[str, str]] = {
    "canny": ("canny", "control_v11p_sd15_canny"),
    "depth": ("depth_midas", "control_v11f1p_sd15_depth"),
    "lineart": ("lineart_realistic", "control_v11p_sd15_lineart"),
    "scribble": ("scribble_xdog", "control_v11p_sd15_scribble"),
    "openpose": ("openpose", "control_v11p_sd15_openpose"),
    "mlsd": ("mlsd", "control_v11p_sd15_mlsd"),
    "normal": ("normal_bae", "control_v11p_sd15_normal_bae"),
    "seg": ("seg_ufade20k", "control_v11p_sd15_seg"),
}
assert set(CONTROL) == set(CONTROL_TYPES)

WITHHELD_DELETED = "withheld-zhiqite-deleted"
WITHHELD_HIDDEN = "withheld-zhiqite-hidden"

_SD_PENDING = {"1": "running", "3": "queued", "5": "uploading"}
_PREVIEW_SIDE = 320
_MAX_PREVIEW_B64 = 12 * 1024 * 1024
_MAX_PREVIEW_PIXELS = 16 * 1024 * 1024
_PAGE_SIZE = 50
_MAX_PAGES = 20
# Unreadable query answers in a row before a job is given up (each poll is billed).
_MAX_BAD_ANSWERS = 6


# Which catalogue lists each kind of extra.
EXTRA_CATALOGUES = {"lora": "loras", "vae": "vaes", "embedding": "embeddings"}
# Answers to a query that VendorHttp hands back without retrying (it passes 4xx through):
# unreadable, or throttled by the gateway / zhiqite. Asked again by the restart check.
_ASK_AGAIN = frozenset({"error-vendor-bad-answer", "error-zhiqite-throttled", "error-vendor-rate-limited"})


@dataclass(frozen=True)
class _Extras:
    """A job's extras as zhiqite names them."""

    loras: tuple[tuple[str, float], ...] = ()
    vae: str = ""
    embeddings: tuple[str, ...] = ()


def _extra_row(what: str, row: dict[str, Any]) -> tuple[str, set[str]] | None:
    """(the name zhiqite takes, the lower-case names a user may type) of one catalogue row,
    or None for a row that cannot be used (no name, or a LoRA taken offline)."""
    if what == "lora":
        name = row.get("sdLoraFileSimplifyName")
        if _int_or_none(row.get("loraStatus")) == 0:
            return None
        typed = [name, row.get("sdLoraFileName"), row.get("sdLoraName")]
    elif what == "vae":
        name = row.get("vaeFileName")
        typed = [name, str(name or "").rsplit(".", 1)[0]]
    else:
        name = row.get("embeddingSimplifyName")
        typed = [name, row.get("embeddingName")]
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip(), {str(t).strip().lower() for t in typed if t and str(t).strip()}


# --- what a poll or a callback says ------------------------------------------------------


@dataclass(frozen=True)
class _Running:
    fraction: float | None = None
    preview_b64: str | None = None


@dataclass(frozen=True)
class _Item:
    url: str | None
    seed: int | None
    withheld: str | None = None
    png: bytes | None = None  # already downloaded (a tool answer that had to be probed)


@dataclass(frozen=True)
class _Done:
    items: list[_Item]


@dataclass(frozen=True)
class _Probe:
    """A tool answer of status 1 with an image URL: done only if the picture is there."""

    url: str


Outcome = _Running | _Done | _Probe


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _fraction(value: Any) -> float | None:
    try:
        f = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    if f != f:  # NaN
        return None
    return min(1.0, max(0.0, f / 100.0 if f > 1.0 else f))


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def preview_jpeg(b64: str) -> bytes | None:
    """Decode the vendor's base64 in-progress picture and shrink it to a small JPEG."""
    if not isinstance(b64, str) or not b64 or len(b64) > _MAX_PREVIEW_B64:
        return None
    if b64.startswith("data:"):
        b64 = b64.split(",", 1)[-1]
    try:
        raw = base64.b64decode(b64, validate=False)
        with Image.open(io.BytesIO(raw)) as src:
            if src.width * src.height > _MAX_PREVIEW_PIXELS:
                return None
            img = src.convert("RGB")
        img.thumbnail((_PREVIEW_SIDE, _PREVIEW_SIDE))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=70)
        return out.getvalue()
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


# --- the backend ----------------------------------------------------------------------


class ZhiqiteBackend:
    name = "zhiqite"

    def __init__(
        self,
        base_url: str,
        *,
        access_key_id: str = "",
        access_key_secret: str = "",
        appcode: str = "",
        hub: Any = None,
        public_base_url: str = "",
        use_callbacks: bool = True,
        scripts_field: str = "alwayson_scripts",
        default_model: str = "",
        sampler: str = "DPM++ 2M Karras",
        clip_skip: int = 2,
        upscaler: str = "ESRGAN_4x",
        output_format: str = "png",
        timeout_s: float = 60.0,
        task_timeout_s: float = 600.0,
        poll_interval_s: float = 2.0,
        poll_max_interval_s: float = 15.0,
        callback_poll_interval_s: float = 5.0,
        callback_poll_max_interval_s: float = 30.0,
        catalogue_ttl_s: float = 600.0,
        concurrency: int = 50,
        retries: int = 2,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if scripts_field not in SCRIPTS_FIELDS:
            raise ValueError(f"zhiqite_scripts_field must be one of {SCRIPTS_FIELDS}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}")
        self.concurrency = concurrency
        self._key_id = access_key_id
        self._key_secret = access_key_secret
        self._appcode = appcode
        self.hub = hub
        self.public_base_url = public_base_url.rstrip("/")
        self.use_callbacks = use_callbacks and hub is not None and bool(self.public_base_url)
        self.scripts_field = scripts_field
        self.default_model = default_model
        self.sampler = sampler
        self.clip_skip = clip_skip
        self.upscaler = upscaler
        self.output_format = output_format
        self.task_timeout_s = task_timeout_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.callback_poll_interval_s = callback_poll_interval_s
        self.callback_poll_max_interval_s = callback_poll_max_interval_s
        self.catalogue_ttl_s = catalogue_ttl_s
        self._clock = clock
        self._catalogue_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._catalogue_lock = asyncio.Lock()
        self.limits = VendorLimits(
            backend=self.name, kinds=GENERATION_KINDS, max_n=4, max_side=MAX_SIDE, steps_range=(1, 150),
            cfg_range=(1.0, 30.0), strength_range=(0.0, 1.0), negative_prompt=True, seed=True,
            extras=EXTRA_KINDS,
        )
        self.http = VendorHttp(
            self.name, base_url, timeout_s=timeout_s, retries=retries, backoff_base_s=backoff_base_s,
            breaker_threshold=breaker_threshold, breaker_cooldown_s=breaker_cooldown_s, transport=transport,
        )

    def __repr__(self) -> str:  # never the credentials
        auth = "appcode" if self._appcode else "access-key"
        return f"ZhiqiteBackend(auth={auth}, callbacks={self.use_callbacks})"

    # --- construction -------------------------------------------------------------------

    @classmethod
    def configured(cls, settings: Any) -> bool:
        keys = (settings.zhiqite_access_key_id.get_secret_value()
                and settings.zhiqite_access_key_secret.get_secret_value())
        return bool(settings.zhiqite_base_url and (keys or settings.zhiqite_appcode.get_secret_value()))

    @classmethod
    def from_settings(cls, settings: Any, *, media: Any = None, hub: Any = None, **overrides: Any) -> ZhiqiteBackend:
        public = getattr(media, "public_base_url", "") or settings.public_base_url
        kwargs: dict[str, Any] = {
            "access_key_id": settings.zhiqite_access_key_id.get_secret_value(),
            "access_key_secret": settings.zhiqite_access_key_secret.get_secret_value(),
            "appcode": settings.zhiqite_appcode.get_secret_value(),
            "hub": hub,
            "public_base_url": public,
            "scripts_field": settings.zhiqite_scripts_field,
            "default_model": settings.zhiqite_default_model,
            "timeout_s": settings.vendor_timeout_s,
            "task_timeout_s": settings.vendor_task_timeout_s,
        }
        kwargs.update(overrides)
        return cls(settings.zhiqite_base_url, **kwargs)

    # --- the Backend protocol -----------------------------------------------------------

    def supports(self, spec: JobSpec) -> bool:
        # Kinds that need a public base URL are "supported" even without one, so that
        # ``check`` can tell why they are refused (an admin matter) instead of a bare "cannot".
        return spec.kind in GENERATION_KINDS + TOOL_KINDS

    def check(self, spec: JobSpec) -> list[Problem]:
        """Notes about values mapped to what zhiqite takes (a size above 1024...), or a refusal."""
        self._refuse_without_public_url(spec)
        if spec.kind in TOOL_KINDS:
            return []
        notes = self._map(spec)[1]
        if isinstance(spec, GenerationBase) and spec.extras_used():
            rows = {what: self._cached(EXTRA_CATALOGUES[what]) for what, _ in spec.extras_used()}
            if all(r is not None for r in rows.values()):  # else run() checks, still before any paid call
                self._extras_from(spec, {what: r or [] for what, r in rows.items()})
        return notes

    def _refuse_without_public_url(self, spec: JobSpec) -> None:
        """Every kind but txt2img sends pictures as links to our own web server."""
        if spec.kind != "txt2img" and not self.public_base_url:
            # Retryable: another backend (a fallback) can still do the job.
            raise BackendError("error-zhiqite-needs-public-url", retryable=True, backend=self.name,
                               kind=spec.kind)

    async def models(self) -> list[ModelInfo]:
        rows = [r for r in await self.catalogue("models") if self._usable(r)]
        infos = [self._model_info(r) for r in rows]
        default = self.default_model.strip().lower()
        if default:
            infos.sort(key=lambda m: 0 if m.name.lower() == default or m.title.lower() == default else 1)
        else:
            infos.sort(key=lambda m: 1 if m.nsfw else 0)  # stable: the vendor's order otherwise
        return infos

    async def close(self) -> None:
        await self.http.close()

    # --- catalogues ---------------------------------------------------------------------

    async def catalogue(self, which: str) -> list[dict[str, Any]]:
        """All rows of one catalogue ("models", "loras", "vaes", "embeddings"), cached."""
        path = CATALOGUES[which]
        async with self._catalogue_lock:
            cached = self._catalogue_cache.get(which)
            if cached is not None and cached[0] > self._clock():
                return cached[1]
            rows: list[dict[str, Any]] = []
            for page in range(1, _MAX_PAGES + 1):
                data = await self._call(path, {"pageSize": _PAGE_SIZE, "pageNum": page}, idempotent=True)
                got = data.get("rows")
                if not isinstance(got, list):
                    raise self.http.error("error-vendor-bad-answer")
                rows.extend(r for r in got if isinstance(r, dict))
                total = _int_or_none(data.get("total"))
                if len(got) < _PAGE_SIZE or (total is not None and len(rows) >= total):
                    break
            self._catalogue_cache[which] = (self._clock() + self.catalogue_ttl_s, rows)
            return rows

    def _cached(self, which: str) -> list[dict[str, Any]] | None:
        """A catalogue's rows if they are cached and fresh; None otherwise (no call)."""
        cached = self._catalogue_cache.get(which)
        return cached[1] if cached is not None and cached[0] > self._clock() else None

    async def _names(self, what: str) -> list[str]:
        rows = await self.catalogue(EXTRA_CATALOGUES[what])
        return [found[0] for found in (_extra_row(what, r) for r in rows) if found]

    async def loras(self) -> list[str]:
        """LoRA names as they go into a prompt (``<lora:NAME:0.8>``)."""
        return await self._names("lora")

    async def vaes(self) -> list[str]:
        return await self._names("vae")

    async def embeddings(self) -> list[str]:
        """Embedding names as they go into a negative prompt."""
        return await self._names("embedding")

    async def extras(self) -> dict[str, list[ModelInfo]]:
        """What ``--lora``, ``--vae`` and ``--embedding`` may name here (cached catalogues)."""
        out: dict[str, list[ModelInfo]] = {}
        for what, which in EXTRA_CATALOGUES.items():
            infos: list[ModelInfo] = []
            for row in await self.catalogue(which):
                found = _extra_row(what, row)
                if found is None:
                    continue
                title = str(row.get("sdLoraName") or found[0]).strip() if what == "lora" else found[0]
                base = str(row.get("loraBaseModel") or "").strip()
                infos.append(ModelInfo(name=found[0], backend=self.name, title=f"{title} ({base})" if base else title,
                                       kinds=GENERATION_KINDS, nsfw=_int_or_none(row.get("isAdult")) == 1))
            out[what] = infos
        return out

    def _resolve(self, what: str, asked: str, rows: list[dict[str, Any]]) -> str:
        """The catalogue name for ``asked``, or a refusal naming the closest ones."""
        usable = [found for found in (_extra_row(what, r) for r in rows) if found]
        low = asked.strip().lower()
        for name, typed in usable:
            if low in typed:
                return name
        raise unknown_extra(self.name, what, asked, [name for name, _ in usable])

    def _extras_from(self, spec: GenerationBase, rows: dict[str, list[dict[str, Any]]]) -> _Extras:
        return _Extras(
            loras=tuple((self._resolve("lora", ref.name, rows["lora"]), ref.weight) for ref in spec.loras),
            vae=self._resolve("vae", spec.vae, rows["vae"]) if spec.vae else "",
            embeddings=tuple(self._resolve("embedding", name, rows["embedding"]) for name in spec.embeddings),
        )

    async def _resolve_extras(self, spec: GenerationBase) -> _Extras:
        """The job's extras checked against the live catalogues (before any paid call)."""
        rows: dict[str, list[dict[str, Any]]] = {"lora": [], "vae": [], "embedding": []}
        for what in {what for what, _ in spec.extras_used()}:
            rows[what] = await self.catalogue(EXTRA_CATALOGUES[what])
        return self._extras_from(spec, rows)

    @staticmethod
    def _usable(row: dict[str, Any]) -> bool:
        return bool(row.get("sdModelCheckpoint")) and row.get("modelStatus", 1) != 0

    def _model_info(self, row: dict[str, Any]) -> ModelInfo:
        base = str(row.get("modelBaseModel") or "")
        title = str(row.get("sdModelName") or row["sdModelCheckpoint"])
        xl = "xl" in base.lower()
        return ModelInfo(
            name=str(row["sdModelCheckpoint"]), backend=self.name,
            title=f"{title} ({base})" if base else title,
            kinds=GENERATION_KINDS, default_steps=25, default_cfg=7.0,
            default_size=1024 if xl else 512, control_types=() if xl else CONTROL_TYPES,
            nsfw=_int_or_none(row.get("isAdult")) == 1,
        )

    async def _checkpoint_for(self, asked: str) -> str:
        """The sd_model_checkpoint to send for ``--model`` (a checkpoint or a model name)."""
        asked = asked.strip()
        if not asked and self.default_model:
            return self.default_model
        models = await self.models()
        if not asked:
            if not models:
                raise self.limits.cannot("model", value="-", choices="-")
            return models[0].name
        low = asked.lower()
        for m in models:
            if low in (m.name.lower(), m.name.rsplit(".", 1)[0].lower(), m.title.lower()):
                return m.name
        for row in await self.catalogue("models"):
            if str(row.get("sdModelName", "")).strip().lower() == low and self._usable(row):
                return str(row["sdModelCheckpoint"])
        raise self.limits.cannot("model", value=asked, choices=", ".join(m.name for m in models[:15]))

    # --- wire ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": JSON_TYPE, "Accept": "application/json"}
        if self._appcode:
            headers["Authorization"] = f"APPCODE {self._appcode}"
        else:
            headers["X-Request-req-accessKeyId"] = self._key_id
            headers["X-Request-req-accessKeySecret"] = self._key_secret
        return headers

    async def _call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST ``body``; the ``data`` object of a "200" answer, else a BackendError."""
        resp = await self.http.request("POST", path, json=body, headers=self._headers(),
                                       idempotent=idempotent, pass_4xx=True)
        status = resp.status_code
        if status in (401, 403):
            raise self._gateway_refusal(path, status, resp.headers.get("X-Ca-Error-Message", ""))
        if status == 429:
            raise self.http.error("error-vendor-rate-limited", retryable=True, status=status)
        try:
            answer = resp.json()
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                raise self.http.error("error-vendor-rejected", status=status) from None
            raise self.http.error("error-vendor-bad-answer") from None
        if not isinstance(answer, dict) or "code" not in answer:
            if status >= 400:
                raise self.http.error("error-vendor-rejected", status=status)
            raise self.http.error("error-vendor-bad-answer")
        return self._data_of(answer, path)

    def _gateway_refusal(self, path: str, status: int, message: str) -> BackendError:
        """What the API gateway's 401/403 means, from its ``X-Ca-Error-Message`` header."""
        said = sanitize_vendor_text(message, 80)
        for secret in (self._appcode, self._key_secret, self._key_id):
            if secret:
                said = said.replace(secret, "***")
        low = said.lower()
        if "quota exhausted" in low:
            log.warning("zhiqite %s -> %d (%s): the purchased calls are used up; buy more on the API market",
                        path, status, said)
            return self.http.error("error-zhiqite-quota", status=status)
        if "throttled" in low or "flow control" in low:
            log.warning("zhiqite %s -> %d (%s): throttled by the API gateway", path, status, said)
            return self.http.error("error-zhiqite-throttled", retryable=True, status=status)
        log.warning("zhiqite %s -> %d (%s): check the AppCode or access keys", path, status, said)
        return self.http.error("error-zhiqite-auth", status=status)

    def _data_of(self, answer: dict[str, Any], where: str) -> dict[str, Any]:
        code = str(answer.get("code", "")).strip()  # "200" in the document; 200 taken too
        if code != "200":
            detail = sanitize_vendor_text(answer.get("msg") or answer.get("message") or "")
            log.warning("zhiqite %s: code %s", where, code[:10])
            raise self.http.error("error-zhiqite-rejected", code=code[:10] or "?", detail=detail or "-")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise self.http.error("error-vendor-bad-answer")
        return data

    # --- mapping a job ------------------------------------------------------------------

    def _map(self, spec: JobSpec) -> tuple[Mapped, list[Problem]]:
        # The model is checked against the live catalogue in run(); here it passes as asked.
        asked = spec.model.strip()
        return replace(self.limits, models=(asked,) if asked else ()).check_or_map(spec)

    def _scripts(self, task_id: str, checkpoint: str) -> dict[str, Any]:
        return {
            "sd_model_checkpoint": checkpoint,
            "id_task": task_id,
            "override_settings": {"CLIP_stop_at_last_layers": self.clip_skip},
            "output_image_format": self.output_format,
        }

    def _sd_body(self, m: Mapped, task_id: str, checkpoint: str, cb_url: str | None,
                 extras: _Extras = _Extras()) -> dict[str, Any]:
        # The document: LoRAs by sdLoraFileSimplifyName in the prompt, embeddings by
        # embeddingSimplifyName in negative_prompt, the VAE in sd_vae.
        prompt = " ".join([m.prompt, *(f"<lora:{name}:{weight:g}>" for name, weight in extras.loras)])
        negative = ", ".join(part for part in (m.negative_prompt.strip(), *extras.embeddings) if part)
        body: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": negative,
            "n_iter": 1,
            "batch_size": m.n,  # images = n_iter x batch_size; one batch is fastest
            "steps": m.steps,
            "seed": str(m.seed),  # a string in the document ("-1" = random)
            "cfg_scale": int(m.cfg) if float(m.cfg).is_integer() else round(m.cfg, 2),
            "sampler_index": self.sampler,
            "width": m.width,
            "height": m.height,
            "restore_faces": False,
            "enable_hr": False,
            self.scripts_field: self._scripts(task_id, checkpoint),
        }
        if extras.vae:
            body[self.scripts_field]["sd_vae"] = extras.vae
        if cb_url:
            body["callbackUrl"] = cb_url
        return body

    async def _build_submit(self, work: Work, task_id: str, cb_url: str | None) -> tuple[str, dict[str, Any]]:
        """(path, body) of the submit call for ``work``'s job."""
        spec = work.spec
        if spec.kind == "faceswap":
            return TOOL_SUBMIT.format(code="roop"), {
                "sourceUrl": work.media.public_url(spec.face_image),
                "targetUrl": work.media.public_url(spec.target_image),
                "businessTaskId": task_id,
            }
        if spec.kind == "upscale":
            data = await asyncio.to_thread(work.media.read, spec.image)
            w, h = await asyncio.to_thread(_image_size, data)
            if max(w, h) > ENHANCE_MAX_INPUT:
                raise BackendError("error-zhiqite-input-too-large", backend=self.name,
                                   limit=ENHANCE_MAX_INPUT, width=w, height=h)
            body: dict[str, Any] = {
                "businessTaskId": task_id,
                "image": work.media.public_url(spec.image),
                "resizeMode": 0,
                "upscalingResize": spec.scale,
                "upscalingResizeW": max(64, min(ENHANCE_MAX_TARGET, w * spec.scale)),
                "upscalingResizeH": max(64, min(ENHANCE_MAX_TARGET, h * spec.scale)),
                "upscalingCrop": False,
                "upscaler1": spec.model.strip() or self.upscaler,
                "upscaler2": "None",
                "extrasUpscaler2Visibility": 0,
                "gfpganVisibility": 0,
                "codeformerVisibility": 0,
                "codeformerWeight": 0,
                "upscaleFirst": False,
            }
            if cb_url:
                body["callbackUrl"] = cb_url
            return TOOL_SUBMIT.format(code="enhance"), body

        m, _notes = self._map(spec)
        extras = await self._resolve_extras(spec)
        checkpoint = await self._checkpoint_for(spec.model)
        body = self._sd_body(m, task_id, checkpoint, cb_url, extras)
        scripts = body[self.scripts_field]
        if spec.kind in ("img2img", "inpaint"):
            scripts["image_link"] = work.media.public_url(spec.init_image)
            body.update({"denoising_strength": round(float(m.strength or 0.75), 3), "resize_mode": 0})
            if spec.kind == "inpaint":
                # White = repaint, as in A1111 (inpainting_mask_invert 0 = "Inpaint masked").
                scripts["mask_link"] = work.media.public_url(spec.mask_image)
                body.update({"mask_blur": 4, "inpainting_fill": 1, "inpaint_full_res": False,
                             "inpaint_full_res_padding": 32, "inpainting_mask_invert": 0})
            return IMAGE2IMAGE, body
        if spec.kind == "controlnet":
            module, model = CONTROL[spec.control_type]
            body["resize_mode"] = 1  # required by the controlnet table
            scripts["controlnet"] = {"args": [{
                "image_link": work.media.public_url(spec.control_image),
                "enabled": True,
                "module": module,
                "model": model,
                "weight": round(min(2.0, max(0.0, spec.control_scale)), 3),
                "resize_mode": "Crop and Resize",
                "low_vram": False,
                "processor_res": 512,
                "guidance_start": 0.0,
                "guidance_end": 1.0,
                "pixel_perfect": True,
                "control_mode": "Balanced",
            }]}
            return CONTROLNET, body
        return TEXT2IMAGE, body

    # --- reading answers ------------------------------------------------------------------

    def _read_sd(self, data: dict[str, Any], task_id: str) -> Outcome:
        if data.get("id_task") not in (None, "", task_id):
            raise self.http.error("error-vendor-bad-answer")
        status = str(data.get("status", "")).strip()
        if status in _SD_PENDING:
            dto = data.get("temporaryImageDto")
            if not isinstance(dto, dict):
                return _Running()
            frac = _fraction(dto.get("progress"))
            count = _int_or_none(dto.get("jobCount")) or 1
            number = _int_or_none(dto.get("jobNo"))
            if frac is not None and count > 1 and number is not None:
                frac = (min(count, max(1, number)) - 1 + frac) / count
            image = dto.get("currentImage")
            return _Running(frac, image if isinstance(image, str) and image else None)
        if status == "0":
            raise self.http.error("error-zhiqite-failed", detail=sanitize_vendor_text(data.get("desc")) or "-")
        if status != "2":
            raise self.http.error("error-vendor-bad-answer")
        rows = data.get("differentialImageRspList")
        if not isinstance(rows, list) or not rows:
            raise self.http.error("error-vendor-bad-answer")
        items: list[_Item] = []
        for row in rows:
            if not isinstance(row, dict):
                raise self.http.error("error-vendor-bad-answer")
            seed = _int_or_none(row.get("seed"))
            if _int_or_none(row.get("image_status")) == 2:
                items.append(_Item(None, seed, WITHHELD_DELETED))
            elif _is_false(row.get("img_audit_status")):
                items.append(_Item(None, seed, WITHHELD_HIDDEN))
            elif isinstance(row.get("image_url"), str) and row["image_url"]:
                items.append(_Item(row["image_url"], seed))
            else:
                raise self.http.error("error-vendor-bad-answer")
        return _Done(items)

    def _read_tool(self, data: dict[str, Any], task_id: str) -> Outcome:
        if data.get("businessTaskId") not in (None, "", task_id):
            raise self.http.error("error-vendor-bad-answer")
        status = str(data.get("status", "")).strip()
        url = data.get("outputImageUrl")
        url = url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
        detail = sanitize_vendor_text(data.get("desc") or data.get("msg") or "") or "-"
        if status == "0":
            raise self.http.error("error-zhiqite-failed", detail=detail)
        if status == "2":  # success (enhance table) when there is a picture; failure (roop table) if not
            if url is None:
                raise self.http.error("error-zhiqite-failed", detail=detail)
            return _Done([_Item(url, None)])
        if status == "1":  # running (enhance table) or success (roop table)
            return _Probe(url) if url else _Running()
        if status in ("3", "5"):
            return _Running()
        raise self.http.error("error-vendor-bad-answer")

    def _read(self, kind: str, data: dict[str, Any], task_id: str) -> Outcome:
        return self._read_tool(data, task_id) if kind in TOOL_KINDS else self._read_sd(data, task_id)

    async def _query(self, kind: str, task_id: str) -> Outcome:
        path = TOOL_QUERY.format(code=TOOL_CODES[kind]) if kind in TOOL_KINDS else QUERY_TASK
        data = await self._call(path, {"businessTaskId": task_id}, idempotent=True)
        return self._read(kind, data, task_id)

    def _from_callback(self, kind: str, payload: dict[str, Any], task_id: str) -> Outcome:
        data = self._data_of(payload, "callback") if "code" in payload and "data" in payload else payload
        return self._read(kind, data, task_id)

    async def _task_exists(self, kind: str, task_id: str) -> bool:
        """After a restart between checkpoint and submit: did the submit reach zhiqite?

        Only a definite answer decides: the task's state (it exists) or zhiqite's refusal of
        the id (it does not). An unreadable or throttled answer says neither, and submitting
        on it could pay for the same picture twice, so it is asked again (a few times,
        backing off); if it stays unreadable the job fails and is refunded. A 5xx or a lost
        connection is not asked again here: VendorHttp already retried that query."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, BackendError) and e.key in _ASK_AGAIN),
            stop=stop_after_attempt(_MAX_BAD_ANSWERS),
            wait=wait_exponential(multiplier=self.poll_interval_s, max=self.poll_max_interval_s),
            reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await self._query(kind, task_id)
        except BackendError as e:
            if e.key == "error-zhiqite-rejected":
                return False
            if e.key == "error-zhiqite-failed":
                return True
            raise
        return True

    # --- the job --------------------------------------------------------------------------

    def _new_task_id(self, job_id: str) -> str:
        # Named by us, from the job id (alphanumerics only) plus a fresh suffix so that a
        # re-run of the same job never collides with its earlier task at zhiqite.
        return "ib" + re.sub(r"[^A-Za-z0-9]", "", job_id)[:32] + secrets.token_hex(4)

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        spec = work.spec
        if spec.kind not in GENERATION_KINDS + TOOL_KINDS:
            raise self.limits.cannot("kind", value=spec.kind)
        self._refuse_without_public_url(spec)  # before any call
        if spec.kind in GENERATION_KINDS:
            self._map(spec)
        kind = spec.kind
        use_callback = self.use_callbacks and kind != "faceswap"  # roop documents no callbackUrl
        cp = work.checkpoint
        task_id = cp.get("task_id")
        resuming = (isinstance(task_id, str) and bool(task_id) and cp.get("task_backend") == self.name
                    and cp.get("task_kind") == kind)
        token: str | None = None
        abandoned = completed = False
        try:
            if resuming:
                assert isinstance(task_id, str)
                if use_callback and isinstance(cp.get("callback_token"), str):
                    token = self.hub.register(self.name, work.job_id, token=cp["callback_token"])
                else:
                    use_callback = False  # no token saved: the old callback URL is unknown, poll
                if not cp.get("submitted") and not await self._task_exists(kind, task_id):
                    await self._submit(work, task_id, token)
                else:
                    log.info("zhiqite job %s: resuming the saved task", work.job_id)
            else:
                if work.cancel.cancelled:
                    raise JobCancelled()
                task_id = self._new_task_id(work.job_id)
                if use_callback:
                    token = self.hub.register(self.name, work.job_id)
                await self._submit(work, task_id, token)
            yield Progress(0, 100)

            done: _Done | None = None
            async for event in self._wait(work, kind, task_id, use_callback):
                if isinstance(event, _Done):
                    done = event
                else:
                    yield event
            assert done is not None
            images: list[ResultImage] = []
            seeds = spec.image_seeds() if hasattr(spec, "image_seeds") else [None]
            for k, item in enumerate(done.items):
                seed = item.seed if item.seed is not None else (seeds[k] if k < len(seeds) else None)
                if item.withheld:
                    log.info("zhiqite job %s: picture %d withheld (%s)", work.job_id, k + 1, item.withheld)
                    images.append(ResultImage(png=b"", seed=seed, withheld_reason=item.withheld))
                    continue
                if work.cancel.cancelled:
                    raise JobCancelled()
                png = item.png if item.png is not None else await self.http.download_image(item.url or "")
                images.append(ResultImage(png=png, seed=seed))
            yield Progress(100, 100)
            completed = True
            yield Finished(images)
        except (GeneratorExit, asyncio.CancelledError):
            # Shutdown, or the consumer went away mid-task: the task lives on at zhiqite and
            # a resumed run must still get its callback.
            abandoned = not completed
            raise
        finally:
            if token is not None:
                self.hub.unregister(self.name, work.job_id, finished=not abandoned)

    async def _submit(self, work: Work, task_id: str, token: str | None) -> None:
        cb_url = callback_url(self.public_base_url, self.name, work.job_id, token) if token else None
        path, body = await self._build_submit(work, task_id, cb_url)
        # Saved before the call: a restart from here on asks zhiqite before submitting again.
        await work.remember(task_id=task_id, task_backend=self.name, task_kind=work.spec.kind,
                            callback_token=token, submitted=False)
        try:
            data = await self._call(path, body, idempotent=False)
        except BackendError as e:
            if not e.retryable or e.key == "error-zhiqite-throttled":
                # The vendor (or its gateway) said no: this task id is dead; a re-run starts a fresh one.
                await work.remember(task_id=None, submitted=False)
            raise
        answered = data.get("task_id") or data.get("businessTaskId")
        if answered not in (None, task_id):
            # The document says the answer echoes our id; we keep querying by ours.
            log.warning("zhiqite job %s: the answer names another task id", work.job_id)
        await work.remember(submitted=True, submitted_at=time.time())
        log.info("zhiqite job %s: task submitted (%s)", work.job_id, path)

    async def _pause(self, work: Work, seconds: float, callback: bool) -> dict[str, Any] | None:
        """Wait ``seconds`` or until a callback arrives (its payload); notice /cancel fast."""
        end = time.monotonic() + seconds
        while True:
            if work.cancel.cancelled:
                raise JobCancelled()
            left = end - time.monotonic()
            if left <= 0:
                return None
            if callback:
                try:
                    return await self.hub.wait(self.name, work.job_id, timeout=min(left, 0.25))
                except TimeoutError:
                    continue
            await asyncio.sleep(min(left, 0.25))

    async def _wait(self, work: Work, kind: str, task_id: str, callback: bool) -> AsyncIterator[Progress | _Done]:
        """Progress events until the task ends; then its ``_Done``. Polls back off (each one
        is billed); with a callback the polls are only a slow safety net."""
        started_at = work.checkpoint.get("submitted_at")
        elapsed = max(0.0, time.time() - started_at) if isinstance(started_at, (int, float)) else 0.0
        deadline = time.monotonic() + max(0.0, self.task_timeout_s - elapsed)
        interval = self.callback_poll_interval_s if callback else self.poll_interval_s
        max_interval = self.callback_poll_max_interval_s if callback else self.poll_max_interval_s
        heard = False  # at least one answer (poll or callback) before giving up
        step = 0
        bad_answers = 0  # unreadable query answers in a row
        while True:
            now = time.monotonic()
            if heard and now >= deadline:
                log.warning("zhiqite job %s: no result after %.0fs, giving up", work.job_id, self.task_timeout_s)
                if bad_answers:
                    raise self.http.error("error-vendor-bad-answer")
                raise self.http.error("error-vendor-timeout", retryable=False)
            pause = max(0.0, min(interval * random.uniform(0.9, 1.1), deadline - now))
            payload = await self._pause(work, pause, callback)
            outcome: Outcome | None = None
            if payload is not None:
                try:
                    outcome = self._from_callback(kind, payload, task_id)
                except BackendError as e:
                    if e.key != "error-vendor-bad-answer":
                        raise
                    log.warning("zhiqite job %s: unreadable callback, asking instead", work.job_id)
            heard = True
            if outcome is None:
                interval = min(max_interval, interval * 1.5)
                try:
                    outcome = await self._query(kind, task_id)
                except BackendError as e:
                    unreadable = e.key == "error-vendor-bad-answer"
                    if not (e.retryable or unreadable):
                        raise
                    bad_answers = bad_answers + 1 if unreadable else 0
                    if bad_answers >= _MAX_BAD_ANSWERS:
                        log.warning("zhiqite job %s: %d unreadable answers in a row, giving up",
                                    work.job_id, bad_answers)
                        raise
                    # The task goes on at zhiqite whatever one answer or our connection looks
                    # like: keep asking (backing off) until the task deadline.
                    log.warning("zhiqite job %s: query failed (%s), asking again later", work.job_id, e.key)
                    continue
                bad_answers = 0
            if isinstance(outcome, _Probe):
                outcome = await self._probe(outcome)
            if isinstance(outcome, _Done):
                yield outcome
                return
            assert isinstance(outcome, _Running)
            if outcome.fraction is not None or outcome.preview_b64:
                if outcome.fraction is not None:
                    step = max(step, min(99, int(outcome.fraction * 100)))
                preview = await asyncio.to_thread(preview_jpeg, outcome.preview_b64) if outcome.preview_b64 else None
                yield Progress(step, 100, preview)

    async def _probe(self, probe: _Probe) -> Outcome:
        try:
            png = await self.http.download_image(probe.url)
        except BackendError as e:
            if e.key in ("error-vendor-rejected", "error-vendor-bad-image"):
                return _Running()  # status 1 meant "running": the picture is not there yet
            raise
        return _Done([_Item(probe.url, None, png=png)])


__all__ = ["CONTROL", "SAMPLERS", "ZhiqiteBackend", "preview_jpeg"]
