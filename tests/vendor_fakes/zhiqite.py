"""Fake zhiqite AIGCImgOpenServ (seed 002), written from the document.

Checks every request: POST, ``Content-Type: application/json;charset=UTF-8``, the auth
headers (access key pair or ``Authorization: APPCODE``), required fields and their types
(seed a string, ints that are ints, ranges, sizes (0,1024] multiples of 8, sampler and
ControlNet names from the document's lists), no unknown fields, a unique ``id_task`` /
``businessTaskId`` per submit. Picture links (image_link, mask_link, controlnet
image_link, sourceUrl, targetUrl, image) must be http(s) URLs without any secret in them;
the fake really GETs them and decodes the picture before the task can run.

Tasks go queued (3) -> running (1, with temporaryImageDto previews) -> success (2), one
step per query. A task submitted with ``callbackUrl`` finishes as soon as its inputs were
fetched and the result is POSTed there, retried on the compressed ``callback_schedule``
until the answer is JSON ``{"code": "200"}``.

Both spellings of the scripts object are accepted (the document uses both); the one seen
is recorded in ``scripts_fields``. Tool status codes follow ``tool_scheme``:
``"running12"`` (1 running / 2 success / 0 failure: the enhance table and the query
example; running answers carry the not-yet-served outputImageUrl, like the roop submit
example) or ``"success1"`` (1 success / 2 failure: the roop and tool-query tables; running
answers are status 3 without a URL). ``tool_status_as_string`` answers "2" instead of 2.

Faults: the base class ones, plus ``submit_code``/``query_code`` ("400" answers),
``fail_task`` (status 0), ``hang_task`` (stays running), ``moderation`` (index ->
"deleted" for image_status 2 or "hidden" for img_audit_status false), ``hold_callbacks``
(an Event the callback sender waits for), ``duplicate_callbacks`` (extra copies sent after
the accepted one), and:

    gateway_refusals  messages: the next API calls (any path) are refused by the Aliyun API
                      gateway, HTTP 403 with ``X-Ca-Error-Message: <message>`` ("Quota
                      Exhausted", "Throttled by APP Flow Control", "Invalid AppCode", ...)
    bad_queries       the next task queries (queryTaskInfo / queryTask) answer, in order:
                      "not-json", "no-data" (no data object), "no-status" (data without
                      status), "5xx" (a 502 HTML page) or "throttled" (a gateway 403);
                      the task itself goes on
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from tests.vendor_fakes import FakeVendor, image_bytes

PREFIX = "/AIGCImgOpenServ/"
SAMPLERS = {"Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE",
            "DPM fast", "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras",
            "DPM++ SDE Karras", "DPM++ 2M Karras"}
CN_MODULES = {"canny", "depth_midas", "lineart_realistic", "mlsd", "normal_bae", "openpose", "scribble_xdog",
              "seg_ufade20k", "inpaint_global_harmonious"}
CN_MODELS = {"control_v11p_sd15_canny", "control_v11f1p_sd15_depth", "control_v11p_sd15_lineart",
             "control_v11p_sd15_mlsd", "control_v11p_sd15_normal_bae", "control_v11p_sd15_openpose",
             "control_v11p_sd15_scribble", "control_v11p_sd15_seg", "control_v1p_sd15_brightness",
             "control_v1p_sd15_qrcode"}
MODELS = [
    {"id": 39, "sdModelCheckpoint": "photon_v1_84728.safetensors", "sdModelName": "Photon",
     "modelBaseModel": "SD 1.5", "modelType": "Checkpoint", "modelVersion": "v1", "modelStatus": 1,
     "modelUploadStatus": 2, "isAdult": 0},
    {"id": 40, "sdModelCheckpoint": "revAnimated_v122_7371.safetensors", "sdModelName": "ReV Animated",
     "modelBaseModel": "SD 1.5", "modelType": "Checkpoint", "modelVersion": "v122", "modelStatus": 1,
     "modelUploadStatus": 2, "isAdult": 0},
    {"id": 41, "sdModelCheckpoint": "offline_v1.safetensors", "sdModelName": "Gone",
     "modelBaseModel": "SD 1.5", "modelStatus": 0, "modelUploadStatus": 2, "isAdult": 0},
]
LORAS = [{"id": 8741, "sdLoraName": "Hayasaka Ai", "loraBaseModel": "SD 1.5",
          "sdLoraFileName": "hayasaka_ai_v10_26390.safetensors", "sdLoraFileSimplifyName": "hayasaka_ai_v10_26390",
          "loraVersion": "v1", "loraStatus": 1, "loraUploadStatus": 2, "isAdult": 0},
         {"id": 8742, "sdLoraName": "Film Grain", "loraBaseModel": "SD 1.5",
          "sdLoraFileName": "film_grain_v2.safetensors", "sdLoraFileSimplifyName": "film_grain_v2",
          "loraVersion": "v2", "loraStatus": 1, "loraUploadStatus": 2, "isAdult": 0},
         {"id": 8743, "sdLoraName": "Retired", "loraBaseModel": "SD 1.5",  # taken offline ("下线")
          "sdLoraFileName": "retired_style.safetensors", "sdLoraFileSimplifyName": "retired_style",
          "loraVersion": "v1", "loraStatus": 0, "loraUploadStatus": 2, "isAdult": 0}]
VAES = [{"id": 2, "vaeFileName": "k1F8Anime2_k1F8Anime2VAE.ckpt"},
        {"id": 3, "vaeFileName": "vae-ft-mse-840000-ema-pruned.ckpt"}]
EMBEDDINGS = [{"id": 3, "embeddingName": "FastNegativeV2.pt", "embeddingSimplifyName": "FastNegativeV2"},
              {"id": 4, "embeddingName": "bad-artist.pt", "embeddingSimplifyName": "bad-artist"}]
CATALOGUES = {"queryModelList": MODELS, "queryLoraList": LORAS, "queryVaeList": VAES,
              "queryEmbeddingList": EMBEDDINGS}

COMMON_SD = {"prompt", "negative_prompt", "n_iter", "batch_size", "steps", "seed", "restore_faces", "enable_hr",
             "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "width", "height",
             "cfg_scale", "sampler_index", "denoising_strength", "callbackUrl", "alwayson_scripts",
             "always_on_scripts"}
I2I_EXTRA = {"resize_mode", "mask_blur", "mask_blur_x", "mask_blur_y", "inpainting_fill", "inpaint_full_res",
             "inpaint_full_res_padding", "inpainting_mask_invert", "initial_noise_multiplier", "image_cfg_scale"}
SCRIPTS_KEYS = {"sd_model_checkpoint", "id_task", "sd_vae", "override_settings", "output_image_format", "ADetailer"}
ROOP_FIELDS = {"sourceUrl", "targetUrl", "businessTaskId"}
ENHANCE_FIELDS = {"businessTaskId", "image", "resizeMode", "showExtrasResults", "gfpganVisibility",
                  "codeformerVisibility", "codeformerWeight", "upscalingResize", "upscalingResizeW",
                  "upscalingResizeH", "upscalingCrop", "upscaler1", "upscaler2", "extrasUpscaler2Visibility",
                  "upscaleFirst", "callbackUrl"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class Task:
    task_id: str
    kind: str  # "sd" or a tool code
    body: dict[str, Any]
    links: list[str]
    n: int = 1
    width: int = 512
    height: int = 512
    callback_url: str | None = None
    state: str = "fetching"  # fetching -> queued -> running -> done | failed
    running_left: int = 0
    inputs: list[bytes] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    desc: str = ""


class FakeZhiqite(FakeVendor):
    def __init__(self, access_key_id: str = "AKID-zhiqite-test", access_key_secret: str = "AKSECRET-zhiqite-test",
                 appcode: str = "", *, forbidden_in_links: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.appcode = appcode
        self.forbidden_in_links = tuple(s for s in (access_key_secret, appcode, *forbidden_in_links) if s)
        self.tasks: dict[str, Task] = {}
        self.submits: list[tuple[str, dict[str, Any]]] = []
        self.scripts_fields: list[str] = []
        self.fetched_links: list[str] = []
        self.running_polls = 2  # queries answering "running" (with a preview) before success
        self.previews = True
        self.tool_scheme = "running12"
        self.tool_status_as_string = False
        self.submit_code: str | None = None
        self.query_code: str | None = None
        self.fail_task = False
        self.hang_task = False
        self.moderation: dict[int, str] = {}
        self.callback_schedule: tuple[float, ...] = (0.0, 0.01, 0.01, 0.02, 0.02, 0.05, 0.05, 0.05, 0.05, 0.05)
        self.hold_callbacks: asyncio.Event | None = None
        self.duplicate_callbacks = 0
        self.gateway_refusals: list[str] = []
        self.bad_queries: list[str] = []
        self.callback_attempts: list[tuple[str, int, Any]] = []  # (task_id, HTTP status, answer)
        self.callbacks_accepted: dict[str, int] = {}
        self.submitted = asyncio.Event()
        self.callback_attempted = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        r = self.app.router
        for name in ("text2image", "image2image", "controlnet"):
            r.add_route("*", f"{PREFIX}saas/sd/v2/{name}", self._sd_submit)
        r.add_route("*", f"{PREFIX}saas/sd/v2/queryTaskInfo", self._sd_query)
        for name in CATALOGUES:
            r.add_route("*", f"{PREFIX}saas/sd/v2/{name}", self._catalogue)
        r.add_route("*", f"{PREFIX}saas/tool/roop", self._tool_submit)
        r.add_route("*", f"{PREFIX}saas/tool/enhance", self._tool_submit)
        r.add_route("*", PREFIX + "saas/tool/{code:.+}/queryTask", self._tool_query)

    @property
    def api_url(self) -> str:
        return self.base_url + PREFIX.strip("/")

    def calls_to(self, name: str) -> int:
        return sum(n for path, n in self.calls.items() if path.endswith("/" + name))

    async def close(self) -> None:
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await super().close()

    async def settle(self) -> None:
        """Wait until every background fetch and callback (with its retries) is done."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # --- answers ------------------------------------------------------------------------

    @staticmethod
    def _answer(data: Any = None, code: str = "200", msg: str = "success") -> web.Response:
        body: dict[str, Any] = {"code": code, "msg": msg}
        if data is not None:
            body["data"] = data
        return web.json_response(body)

    def error_response(self, status: int, message: str) -> web.Response:
        return web.json_response({"code": str(status), "msg": message}, status=status)

    def _bad(self, message: str) -> web.Response:
        self.violation(message)
        return self._answer(code="400", msg=message)

    # --- request checks -----------------------------------------------------------------

    @staticmethod
    def _gateway_403(message: str) -> web.Response:
        # The gateway answers before the service: no JSON body, the reason in headers.
        return web.Response(status=403, headers={"X-Ca-Error-Message": message, "X-Ca-Error-Code": "A403"})

    def _bad_query(self) -> web.Response | None:
        """The next scripted fault of a task query, if any (the task is not advanced)."""
        if not self.bad_queries:
            return None
        fault = self.bad_queries.pop(0)
        if fault == "not-json":
            return web.Response(status=200, text='{"code": "200", "data": {"sta', content_type="application/json")
        if fault == "no-data":
            return self._answer()
        if fault == "no-status":
            return self._answer({"desc": "任务进行中"})
        if fault == "5xx":
            return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
        if fault == "throttled":
            return self._gateway_403("Throttled by API Flow Control")
        raise ValueError(f"unknown query fault {fault!r}")

    async def _common(self, request: web.Request) -> dict[str, Any] | web.Response:
        if self.gateway_refusals:
            return self._gateway_403(self.gateway_refusals.pop(0))
        if request.method != "POST":
            return self._bad(f"{request.path}: method {request.method}")
        ctype = request.headers.get("Content-Type", "").replace(" ", "").lower()
        if ctype != "application/json;charset=utf-8":
            return self._bad(f"{request.path}: content type {ctype!r}")
        auth = request.headers.get("Authorization")
        key_id = request.headers.get("X-Request-req-accessKeyId")
        key_secret = request.headers.get("X-Request-req-accessKeySecret")
        if auth is not None and (key_id or key_secret):
            self.violation("both AppCode and access key headers sent")
        if self.appcode and auth == f"APPCODE {self.appcode}":
            pass
        elif not self.appcode and key_id == self.access_key_id and key_secret == self.access_key_secret:
            pass
        else:
            self.violation(f"{request.path}: bad or missing credentials")
            return web.Response(status=401, headers={"X-Ca-Error-Message": "Invalid AppCode"})
        try:
            body = await request.json()
        except ValueError:
            return self._bad(f"{request.path}: body is not JSON")
        if not isinstance(body, dict):
            return self._bad(f"{request.path}: body is not an object")
        return body

    def _check_link(self, where: str, url: Any) -> str | None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            self.violation(f"{where}: not a URL: {str(url)[:60]!r}")
            return None
        for secret in self.forbidden_in_links:
            if secret in url:
                self.violation(f"{where}: the link carries a secret")
                return None
        if "api.telegram.org" in url or "/file/bot" in url:
            self.violation(f"{where}: a platform file URL")
            return None
        return url

    def _check_fields(self, where: str, body: dict[str, Any], allowed: set[str]) -> None:
        unknown = set(body) - allowed
        if unknown:
            self.violation(f"{where}: unknown fields {sorted(unknown)}")

    def _check_range(self, where: str, body: dict[str, Any], name: str, lo: float, hi: float, *,
                     integer: bool = False, required: bool = False) -> None:
        if name not in body:
            if required:
                self.violation(f"{where}: {name} missing")
            return
        v = body[name]
        if not (_is_int(v) if integer else _is_num(v)) or not lo <= v <= hi:
            self.violation(f"{where}: {name}={v!r} not {'an integer' if integer else 'a number'} in [{lo},{hi}]")

    def _check_sd(self, kind: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
        """Validate a text2image/image2image/controlnet body; the scripts object and links."""
        allowed = set(COMMON_SD) | (I2I_EXTRA if kind in ("image2image", "controlnet") else set())
        self._check_fields(kind, body, allowed)
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            self.violation(f"{kind}: prompt missing")
        if not isinstance(body.get("negative_prompt", ""), str):
            self.violation(f"{kind}: negative_prompt not a string")
        self._check_range(kind, body, "batch_size", 1, 8, integer=True, required=True)
        self._check_range(kind, body, "n_iter", 1, 8, integer=True)
        self._check_range(kind, body, "steps", 1, 150, integer=True)
        self._check_range(kind, body, "cfg_scale", 1, 30)
        self._check_range(kind, body, "denoising_strength", 0, 1)
        for side in ("width", "height"):
            v = body.get(side)
            if v is not None and (not _is_int(v) or not 0 < v <= 1024 or v % 8):
                self.violation(f"{kind}: {side}={v!r} not in (0,1024] or not a multiple of 8")
        seed = body.get("seed")
        # A string in the text2image/image2image tables; the controlnet table says integer.
        if seed is not None and not (isinstance(seed, str) or (kind == "controlnet" and _is_int(seed))):
            self.violation(f"{kind}: seed {seed!r} is not a string")
        if isinstance(seed, str) and not seed.lstrip("-").isdigit():
            self.violation(f"{kind}: seed {seed!r} is not a number")
        if "sampler_index" in body and body["sampler_index"] not in SAMPLERS:
            self.violation(f"{kind}: sampler {body['sampler_index']!r}")
        for flag in ("restore_faces", "enable_hr", "inpaint_full_res"):
            if flag in body and not isinstance(body[flag], bool):
                self.violation(f"{kind}: {flag} not a boolean")
        if "callbackUrl" in body:
            self._check_link(f"{kind}.callbackUrl", body["callbackUrl"])
        if kind in ("image2image", "controlnet"):
            self._check_range(kind, body, "resize_mode", 0, 3, integer=True, required=kind == "controlnet")
            self._check_range(kind, body, "mask_blur", 0, 64, integer=True)
            self._check_range(kind, body, "inpainting_fill", 0, 3, integer=True)
            self._check_range(kind, body, "inpaint_full_res_padding", 0, 256, integer=True)
            self._check_range(kind, body, "inpainting_mask_invert", 0, 1, integer=True)
            self._check_range(kind, body, "initial_noise_multiplier", 0.5, 1.5)
            self._check_range(kind, body, "image_cfg_scale", 0, 3)

        present = [f for f in ("alwayson_scripts", "always_on_scripts") if f in body]
        if len(present) != 1 or not isinstance(body[present[0]], dict):
            self.violation(f"{kind}: exactly one scripts object expected, got {present}")
            return None
        self.scripts_fields.append(present[0])
        scripts = body[present[0]]
        extra = {"image_link", "mask_link"} if kind == "image2image" else (
            {"image_link", "controlnet"} if kind == "controlnet" else set())
        self._check_fields(f"{kind}.scripts", scripts, SCRIPTS_KEYS | extra)
        self._check_extras(kind, body, scripts)
        if not isinstance(scripts.get("id_task"), str) or not scripts["id_task"]:
            self.violation(f"{kind}: id_task missing or not a string")
            return None
        checkpoints = {m["sdModelCheckpoint"] for m in MODELS if m["modelStatus"] == 1}
        if scripts.get("sd_model_checkpoint") not in checkpoints:
            self.violation(f"{kind}: sd_model_checkpoint {scripts.get('sd_model_checkpoint')!r} is not listed")
        overrides = scripts.get("override_settings")
        if kind == "image2image" and not isinstance(overrides, dict):
            self.violation("image2image: override_settings.CLIP_stop_at_last_layers is required")
        if isinstance(overrides, dict) and not _is_int(overrides.get("CLIP_stop_at_last_layers", 1)):
            self.violation(f"{kind}: CLIP_stop_at_last_layers not an integer")
        if scripts.get("output_image_format", "jpg") not in ("jpg", "png"):
            self.violation(f"{kind}: output_image_format {scripts.get('output_image_format')!r}")
        links: list[str] = []
        if kind == "image2image":
            for name in ("image_link", "mask_link"):
                if name in scripts or name == "image_link":
                    url = self._check_link(f"image2image.{name}", scripts.get(name))
                    if url:
                        links.append(url)
        if kind == "controlnet":
            args = (scripts.get("controlnet") or {}).get("args") if isinstance(scripts.get("controlnet"), dict) else None
            if not isinstance(args, list) or not args:
                self.violation("controlnet: controlnet.args missing")
            for a in args or []:
                if a.get("module") not in CN_MODULES:
                    self.violation(f"controlnet: module {a.get('module')!r}")
                if a.get("model") not in CN_MODELS:
                    self.violation(f"controlnet: model {a.get('model')!r}")
                self._check_range("controlnet.args", a, "weight", 0, 2)
                self._check_range("controlnet.args", a, "guidance_start", 0, 1)
                self._check_range("controlnet.args", a, "guidance_end", 0, 1)
                if not isinstance(a.get("enabled", True), bool) or not isinstance(a.get("pixel_perfect", True), bool):
                    self.violation("controlnet: enabled/pixel_perfect not booleans")
                if a.get("control_mode", "Balanced") not in ("Balanced", "ControlNet is more important",
                                                             "My prompt is more important"):
                    self.violation(f"controlnet: control_mode {a.get('control_mode')!r}")
                if a.get("resize_mode", 1) not in (0, 1, 2, "Just Resize", "Crop and Resize", "Resize and Fill"):
                    self.violation(f"controlnet: args resize_mode {a.get('resize_mode')!r}")
                if "image_link" in a:
                    url = self._check_link("controlnet.args.image_link", a["image_link"])
                    if url:
                        links.append(url)
            if "image_link" in scripts:
                url = self._check_link("controlnet.image_link", scripts["image_link"])
                if url:
                    links.append(url)
        return scripts, links

    def _check_extras(self, kind: str, body: dict[str, Any], scripts: dict[str, Any]) -> None:
        """LoRA tags in the prompt name listed, online LoRAs; sd_vae is a listed vaeFileName."""
        online = {lora["sdLoraFileSimplifyName"] for lora in LORAS if lora["loraStatus"] == 1}
        for name, weight in re.findall(r"<lora:([^<>]*?):([^<>:]*)>", str(body.get("prompt", ""))):
            if name not in online:
                self.violation(f"{kind}: LoRA {name!r} is not listed online")
            try:
                float(weight)
            except ValueError:
                self.violation(f"{kind}: LoRA weight {weight!r} is not a number")
        if "sd_vae" in scripts and scripts["sd_vae"] not in {v["vaeFileName"] for v in VAES}:
            self.violation(f"{kind}: sd_vae {scripts['sd_vae']!r} is not listed")

    # --- endpoints ----------------------------------------------------------------------

    async def _sd_submit(self, request: web.Request) -> web.Response:
        kind = request.path.rsplit("/", 1)[1]
        body = await self._common(request)
        if isinstance(body, web.Response):
            return body
        self.submits.append((kind, body))
        checked = self._check_sd(kind, body)
        if checked is None:
            return self._answer(code="400", msg="参数错误")
        scripts, links = checked
        task_id = scripts["id_task"]
        if task_id in self.tasks:
            return self._bad(f"{kind}: id_task {task_id} submitted twice")
        if self.submit_code is not None:
            return self._answer(code=self.submit_code, msg="余额不足")
        n = (body.get("n_iter") or 1) * (body.get("batch_size") or 1)
        task = Task(task_id, "sd", body, links, n=n, width=body.get("width", 512), height=body.get("height", 512),
                    callback_url=body.get("callbackUrl"), running_left=self.running_polls)
        self._start(task)
        return self._answer({"task_id": task_id})

    async def _tool_submit(self, request: web.Request) -> web.Response:
        code = request.path.rsplit("/", 1)[1]
        body = await self._common(request)
        if isinstance(body, web.Response):
            return body
        self.submits.append((code, body))
        links: list[str] = []
        if code == "roop":
            self._check_fields("roop", body, ROOP_FIELDS)
            for name in ("sourceUrl", "targetUrl"):
                url = self._check_link(f"roop.{name}", body.get(name))
                if url:
                    links.append(url)
        else:
            self._check_fields("enhance", body, ENHANCE_FIELDS)
            url = self._check_link("enhance.image", body.get("image"))
            if url:
                links.append(url)
            self._check_range("enhance", body, "resizeMode", 0, 1, integer=True)
            self._check_range("enhance", body, "upscalingResize", 1, 8, integer=True)
            self._check_range("enhance", body, "upscalingResizeW", 64, 2048, integer=True)
            self._check_range("enhance", body, "upscalingResizeH", 64, 2048, integer=True)
            for name in ("gfpganVisibility", "codeformerVisibility", "codeformerWeight", "extrasUpscaler2Visibility"):
                self._check_range("enhance", body, name, 0, 1)
            for name in ("upscalingCrop", "upscaleFirst", "showExtrasResults"):
                if name in body and not isinstance(body[name], bool):
                    self.violation(f"enhance: {name} not a boolean")
            if "callbackUrl" in body:
                self._check_link("enhance.callbackUrl", body["callbackUrl"])
        task_id = body.get("businessTaskId")
        if not isinstance(task_id, str) or not task_id:
            return self._bad(f"{code}: businessTaskId missing or not a string")
        if task_id in self.tasks:
            return self._bad(f"{code}: businessTaskId {task_id} submitted twice")
        if self.submit_code is not None:
            return self._answer(code=self.submit_code, msg="余额不足")
        task = Task(task_id, code, body, links, callback_url=body.get("callbackUrl"),
                    running_left=self.running_polls)
        self._start(task)
        answer = {"taskId": "pro" + uuid.uuid4().hex[:20], "toolTask": code, "businessTaskId": task_id,
                  "status": self._tool_status("running")}
        if self.tool_scheme == "running12":
            answer["outputImageUrl"] = self._result_url(task, 0)
        return self._answer(answer)

    async def _sd_query(self, request: web.Request) -> web.Response:
        body = await self._common(request)
        if isinstance(body, web.Response):
            return body
        self._check_fields("queryTaskInfo", body, {"businessTaskId"})
        task_id = body.get("businessTaskId")
        if not isinstance(task_id, str) or not task_id:
            return self._bad("queryTaskInfo: businessTaskId missing")
        fault = self._bad_query()
        if fault is not None:
            return fault
        if self.query_code is not None:
            return self._answer(code=self.query_code, msg="查询失败")
        task = self.tasks.get(task_id)
        if task is None or task.kind != "sd":
            return self._answer(code="400", msg="任务不存在")
        self._advance(task)
        return self._answer(self._sd_data(task))

    async def _tool_query(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        body = await self._common(request)
        if isinstance(body, web.Response):
            return body
        self._check_fields(f"{code}/queryTask", body, {"businessTaskId"})
        task_id = body.get("businessTaskId")
        if not isinstance(task_id, str) or not task_id:
            return self._bad(f"{code}/queryTask: businessTaskId missing")
        fault = self._bad_query()
        if fault is not None:
            return fault
        if self.query_code is not None:
            return self._answer(code=self.query_code, msg="查询失败")
        task = self.tasks.get(task_id)
        if task is None or task.kind != code:
            return self._answer(code="400", msg="任务不存在")
        self._advance(task)
        return self._answer(self._tool_data(task))

    async def _catalogue(self, request: web.Request) -> web.Response:
        name = request.path.rsplit("/", 1)[1]
        body = await self._common(request)
        if isinstance(body, web.Response):
            return body
        filters = {"queryModelList": {"sdModelCheckpoint", "sdModelName"},
                   "queryLoraList": {"sdLoraName", "loraBaseModel"},
                   "queryVaeList": {"vaeFileName"}, "queryEmbeddingList": set()}[name]
        self._check_fields(name, body, {"pageSize", "pageNum"} | filters)
        size, num = body.get("pageSize"), body.get("pageNum")
        if not _is_int(size) or not _is_int(num) or size < 1 or num < 1:
            return self._bad(f"{name}: pageSize/pageNum must be positive integers")
        rows = CATALOGUES[name]
        return self._answer({"rows": rows[(num - 1) * size: num * size], "total": len(rows),
                             "pageSize": size, "pageNum": num})

    # --- task life ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def _start(self, task: Task) -> None:
        self.tasks[task.task_id] = task
        self.submitted.set()
        self._spawn(self._fetch_inputs(task))

    async def _fetch_inputs(self, task: Task) -> None:
        """Download every picture link as the real service would, then queue the task."""
        async with aiohttp.ClientSession() as session:
            for url in task.links:
                self.fetched_links.append(url)
                try:
                    async with session.get(url) as resp:
                        data = await resp.read()
                        ok = resp.status == 200 and resp.headers.get("Content-Type", "").startswith("image/")
                except aiohttp.ClientError:
                    ok, data = False, b""
                if ok:
                    try:
                        with Image.open(io.BytesIO(data)) as img:
                            img.load()
                            size = img.size
                    except OSError:
                        ok = False
                if not ok:
                    self.violation(f"{task.kind}: could not fetch the picture link")
                    task.state, task.desc = "failed", "图片下载失败"
                    break
                task.inputs.append(data)
                if task.kind == "enhance" and max(size) > 1536:
                    self.violation("enhance: input picture larger than 1536x1536")
        if task.state == "fetching":
            task.state = "queued"
        if task.callback_url:
            await self._finish_for_callback(task)

    def _advance(self, task: Task) -> None:
        if task.state == "queued":
            task.state = "running"
        elif task.state == "running" and not self.hang_task:
            if task.running_left > 0:
                task.running_left -= 1
            else:
                self._complete(task)

    def _complete(self, task: Task) -> None:
        if self.fail_task:
            task.state, task.desc = "failed", "任务失败 !"
            return
        task.state, task.desc = "done", "任务成功 !"
        if task.kind == "sd":
            w, h = max(8, task.width // 4), max(8, task.height // 4)
            for k in range(task.n):
                name = f"{task.task_id}-{k}.png"
                self.add_file(name, image_bytes(w, h, (40 * k % 255, 120, 200)))
                task.files.append(name)
        else:
            src = task.inputs[-1] if task.inputs else image_bytes()
            with Image.open(io.BytesIO(src)) as img:
                w, h = img.size
            scale = task.body.get("upscalingResize", 1) if task.kind == "enhance" else 1
            self.add_file(f"{task.task_id}-0.png", image_bytes(w * scale, h * scale, (10, 200, 90)))
            task.files.append(f"{task.task_id}-0.png")

    def _result_url(self, task: Task, k: int) -> str:
        return f"{self.base_url}files/{task.task_id}-{k}.png?Expires=2006764200&Signature=SECRET-SIGNATURE"

    def _sd_data(self, task: Task) -> dict[str, Any]:
        status = {"fetching": 3, "queued": 3, "running": 1, "done": 2, "failed": 0}[task.state]
        data: dict[str, Any] = {"id_task": task.task_id, "status": status, "desc": task.desc or "任务进行中",
                                "temporaryImageDto": None, "differentialImageRspList": None}
        if task.state == "running" and self.previews:
            done = self.running_polls - task.running_left
            data["temporaryImageDto"] = {
                "progress": f"{min(0.95, (done + 1) / (self.running_polls + 2)):.2f}",
                "currentImage": base64.b64encode(image_bytes(64, 64, (done * 60 % 255, 30, 30))).decode(),
                "jobNo": 1, "jobCount": 1,
            }
        if task.state == "done":
            rows = []
            for k in range(len(task.files)):
                verdict = self.moderation.get(k)
                rows.append({
                    "img_audit": [{"confidence": None, "label": "porn" if verdict else "nonLabel"}],
                    "img_audit_status": verdict != "hidden",
                    "image_status": 2 if verdict == "deleted" else 1,
                    "image_url": "" if verdict == "deleted" else self._result_url(task, k),
                    "seed": 1063029203 + k,
                })
            data["differentialImageRspList"] = rows
        return data

    def _tool_status(self, state: str) -> Any:
        if self.tool_scheme == "running12":
            status = {"fetching": 1, "queued": 1, "running": 1, "done": 2, "failed": 0}[state]
        else:
            status = {"fetching": 3, "queued": 3, "running": 3, "done": 1, "failed": 2}[state]
        return str(status) if self.tool_status_as_string else status

    def _tool_data(self, task: Task) -> dict[str, Any]:
        data: dict[str, Any] = {"businessTaskId": task.task_id, "taskId": "pre" + task.task_id,
                                "status": self._tool_status(task.state)}
        if task.state == "done" or (self.tool_scheme == "running12" and task.state != "failed"):
            data["outputImageUrl"] = self._result_url(task, 0)
        return data

    # --- callbacks ----------------------------------------------------------------------

    async def _finish_for_callback(self, task: Task) -> None:
        if self.hang_task:
            return
        if self.hold_callbacks is not None:
            await self.hold_callbacks.wait()
        if task.state in ("queued", "running"):
            self._complete(task)
        data = self._sd_data(task) if task.kind == "sd" else self._tool_data(task)
        payload = {"code": "200", "msg": "success", "data": data}
        assert task.callback_url is not None
        async with aiohttp.ClientSession() as session:
            for delay in self.callback_schedule[:10]:  # "最多重试10次"
                await asyncio.sleep(delay)
                if await self._post_callback(session, task, payload):
                    break
            for _ in range(self.duplicate_callbacks):
                await self._post_callback(session, task, payload)

    async def _post_callback(self, session: aiohttp.ClientSession, task: Task, payload: dict[str, Any]) -> bool:
        assert task.callback_url is not None
        try:
            async with session.post(task.callback_url, json=payload) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
                self.callback_attempts.append((task.task_id, resp.status, answer))
        except aiohttp.ClientError:
            self.callback_attempts.append((task.task_id, 0, None))
            return False
        finally:
            self.callback_attempted.set()
        # Only the JSON string code "200" counts as received.
        if isinstance(answer, dict) and answer.get("code") == "200":
            self.callbacks_accepted[task.task_id] = self.callbacks_accepted.get(task.task_id, 0) + 1
            return True
        return False
