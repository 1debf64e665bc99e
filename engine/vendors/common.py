"""What every vendor client shares: one careful HTTP layer, image fetching, limits, polling.

Each vendor module (``paint4``, ``aiimage``, ``sdapi``, ``jumdata``, ``zhiqite``) owns its
wire format; this module owns the parts that must behave the same everywhere:

* ``VendorHttp``: a timeout on every call, retries with exponential backoff and jitter on
  5xx and transport errors (never on 4xx), a per-vendor circuit breaker, and errors that
  are ``BackendError`` with a locale key. Logs carry the method and the *path* only: no
  headers, no query strings (vendor image URLs are signed), no bodies.
* ``VendorHttp.download_image``: fetch a vendor's result URL at once (they expire), bound
  its size, check that it decodes, and hand back PNG bytes.
* ``VendorLimits.check_or_map``: before any call, map a job onto what the vendor can honour
  (nearest size, fewer images, clamped steps...) and report each change as a ``Problem``
  note, or refuse with ``UserFacingError("error-vendor-cannot", reason=...)``. A LoRA, VAE
  or embedding the vendor cannot take is refused with ``error-extra-unsupported``.
* ``poll_until`` / ``polling``: bounded, cancellable polling with backoff for submit+query
  vendors.

Error keys (``locales/*/vendors.ftl``): error-vendor-timeout, error-vendor-unavailable,
error-vendor-rejected (``status``), error-vendor-rate-limited, error-vendor-bad-answer,
error-vendor-bad-image, error-vendor-image-too-large, error-vendor-failed (``detail``),
error-vendor-cannot (``reason`` selects the sentence). Every one has ``backend``.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from engine.backend import CancelToken
from engine.errors import BackendError, JobCancelled, Problem, UserFacingError
from engine.extras import refuse_unsupported

log = logging.getLogger("imagebot.vendors")

# httpx logs every request's full URL (signed query strings included) at INFO. Vendor
# links are credentials while they live, so keep that logger quiet unless someone set it.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

T = TypeVar("T")

DEFAULT_MAX_IMAGE_BYTES = 40 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 64 * 1024 * 1024
_MAX_BACKOFF_S = 20.0


def _safe_path(url: httpx.URL | str) -> str:
    """The host-less path of a URL, for logs: never the query (signatures live there)."""
    u = httpx.URL(str(url))
    return u.path or "/"


def _safe_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class CircuitBreaker:
    """Open after ``threshold`` consecutive failures; let one trial call through after
    ``cooldown_s`` (half-open); close on its success, re-open on its failure."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float]) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def failure(self) -> None:
        self.failures += 1
        if self._trial_in_flight or self.failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    def release(self) -> None:
        """A trial call ended neither way (4xx, cancelled): let the next one try."""
        self._trial_in_flight = False


class VendorHttp:
    """One vendor's HTTP client. Credentials go per call in ``headers``/body, never on the
    client, so ``download_image`` never sends them to a CDN.

    ``retries`` is how many times a failed attempt is tried again (attempts = retries + 1).
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout_s: float,
        retries: int = 3,
        backoff_base_s: float = 0.5,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_base_s = backoff_base_s
        self.max_image_bytes = max_image_bytes
        self.max_image_pixels = max_image_pixels
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown_s, clock)
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/" if base_url else "",
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
            headers={"User-Agent": "imagebot/0.1"},
            # No pool cap of our own: the scheduler's lane (IMAGEBOT_BACKEND_CONCURRENCY) is what
            # bounds the calls in flight; httpx's default of 100 would quietly queue the rest.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
        )

    # --- errors -------------------------------------------------------------------

    def error(self, key: str, *, retryable: bool = False, **args: Any) -> BackendError:
        return BackendError(key, retryable=retryable, backend=self.name, **args)

    def _backoff(self, attempt: int) -> float:
        delay = min(_MAX_BACKOFF_S, self.backoff_base_s * (2**attempt))
        return delay * random.uniform(0.5, 1.5)  # jitter: vendors hate synchronized herds

    # --- requests -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        pass_4xx: bool = False,
    ) -> httpx.Response:
        """Send one call with retries; return a 2xx response (or a 4xx one if ``pass_4xx``).

        ``idempotent=False`` (a billed submit): a read timeout or a dropped connection after
        the request went out is not retried, since the vendor may have accepted it; 5xx
        answers and connect errors still are.
        """
        return await self._send(
            method, path, use_breaker=True, idempotent=idempotent, pass_4xx=pass_4xx,
            json=json, data=data, files=files, headers=headers,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        use_breaker: bool,
        idempotent: bool,
        pass_4xx: bool,
        follow_redirects: bool = False,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        path = _safe_path(url) if use_breaker else _safe_host(url)
        last: BackendError | None = None
        for attempt in range(self.retries + 1):
            if use_breaker and not self.breaker.allow():
                log.warning("%s %s %s: circuit open, not calling", self.name, method, path)
                raise self.error("error-vendor-unavailable", retryable=True)
            started = time.monotonic()
            retry_after: float | None = None
            try:
                async with asyncio.timeout(self.timeout_s):
                    resp = await self._fetch(method, url, follow_redirects, max_bytes, kwargs)
            except (TimeoutError, httpx.TimeoutException) as e:
                sent = not isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout))
                log.warning("%s %s %s: timeout after %.1fs (attempt %d)", self.name, method, path,
                            time.monotonic() - started, attempt + 1)
                last = self.error("error-vendor-timeout", retryable=True)
                if use_breaker:
                    self.breaker.failure()
                if sent and not idempotent:
                    raise last from None
            except httpx.RequestError as e:
                sent = not isinstance(e, httpx.ConnectError)
                log.warning("%s %s %s: %s (attempt %d)", self.name, method, path,
                            type(e).__name__, attempt + 1)
                last = self.error("error-vendor-unavailable", retryable=True)
                if use_breaker:
                    self.breaker.failure()
                if sent and not idempotent:
                    raise last from None
            except BaseException:
                if use_breaker:
                    self.breaker.release()
                raise
            else:
                status = resp.status_code
                log.debug("%s %s %s -> %d in %.2fs", self.name, method, path, status,
                          time.monotonic() - started)
                if status < 400:
                    if use_breaker:
                        self.breaker.success()
                    return resp
                if status < 500:
                    # The vendor is up and said no: not a breaker failure, never retried.
                    if use_breaker:
                        self.breaker.success()
                    log.warning("%s %s %s -> %d", self.name, method, path, status)
                    if pass_4xx:
                        return resp
                    if status == 429:
                        raise self.error("error-vendor-rate-limited", retryable=True, status=status)
                    raise self.error("error-vendor-rejected", retryable=False, status=status)
                log.warning("%s %s %s -> %d (attempt %d)", self.name, method, path, status, attempt + 1)
                last = self.error("error-vendor-unavailable", retryable=True, status=status)
                if use_breaker:
                    self.breaker.failure()
                retry_after = _retry_after(resp)
            if attempt < self.retries:
                delay = self._backoff(attempt)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, _MAX_BACKOFF_S))
                await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def _fetch(self, method: str, url: str, follow_redirects: bool, max_bytes: int | None,
                     kwargs: dict[str, Any]) -> httpx.Response:
        """Send and read the whole body, stopping early once it passes ``max_bytes``."""
        request = self._client.build_request(method, url, **kwargs)
        resp = await self._client.send(request, stream=True, follow_redirects=follow_redirects)
        try:
            if max_bytes is not None and resp.status_code < 400:
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise self.error("error-vendor-image-too-large", limit=max_bytes)
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise self.error("error-vendor-image-too-large", limit=max_bytes)
            else:
                await resp.aread()
                return resp
        finally:
            await resp.aclose()
        # The body is already decoded, so the copy carries no Content-Encoding to undo.
        return httpx.Response(resp.status_code, content=bytes(body), request=request)

    async def json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        pass_4xx: bool = False,
    ) -> Any:
        """``request`` and parse the answer as JSON; garbage is ``error-vendor-bad-answer``.

        With ``pass_4xx`` a 4xx answer whose body is JSON is returned for the vendor to read
        its own error code; a 4xx without a JSON body is ``error-vendor-rejected``.
        """
        resp = await self.request(method, path, json=json, data=data, files=files, headers=headers,
                                  idempotent=idempotent, pass_4xx=pass_4xx)
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError):
            log.warning("%s %s %s: answer is not JSON (%d bytes)", self.name, method,
                        _safe_path(path), len(resp.content))
            if resp.status_code >= 400:
                raise self.error("error-vendor-rejected", status=resp.status_code) from None
            raise self.error("error-vendor-bad-answer") from None

    async def download_image(self, url: str) -> bytes:
        """Fetch a result image now (vendor links expire) and return it as PNG bytes."""
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise self.error("error-vendor-bad-answer")
        resp = await self._send("GET", url, use_breaker=False, idempotent=True, pass_4xx=False,
                                follow_redirects=True, max_bytes=self.max_image_bytes)
        return await asyncio.to_thread(to_png, resp.content, backend=self.name,
                                       max_pixels=self.max_image_pixels)

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


# --- images -------------------------------------------------------------------------


def to_png(data: bytes, *, backend: str = "", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> bytes:
    """Decode any image Pillow reads and re-encode it as a plain PNG (no vendor metadata).

    Raises ``BackendError("error-vendor-bad-image")`` for bytes that are not an image or
    decode to more than ``max_pixels`` (a decompression bomb).
    """
    try:
        with Image.open(io.BytesIO(data)) as src:
            if src.width * src.height > max_pixels:
                raise BackendError("error-vendor-image-too-large", backend=backend, limit=max_pixels)
            src.load()
            img: Image.Image = src
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                alpha = "A" in img.getbands() or "transparency" in img.info
                img = img.convert("RGBA" if alpha else "RGB")
            out = io.BytesIO()
            img.save(out, format="PNG")
            return out.getvalue()
    except BackendError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise BackendError("error-vendor-bad-image", backend=backend) from None


def sanitize_vendor_text(text: Any, limit: int = 160) -> str:
    """A vendor's free-text message made safe to show: no markup, no URLs (they may be
    signed), no control characters, bounded length."""
    s = html.unescape(str(text or ""))
    s = re.sub(r"<[^>]*>", " ", s)
    s = re.sub(r"https?://\S+", "[link]", s)
    s = re.sub(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e]", " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s


# --- mapping a job onto what a vendor can do ----------------------------------------------


def clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


def clamp_int(value: float, lo: int, hi: int) -> int:
    return int(clamp(round(value), lo, hi))


def fit_size(width: int, height: int, allowed: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The allowed size nearest to ``width``x``height``: by aspect ratio first, then area."""
    if not allowed:
        raise ValueError("no allowed sizes")
    ratio = math.log(width / height)
    area = math.log(width * height)
    return min(
        allowed,
        key=lambda wh: (round(abs(math.log(wh[0] / wh[1]) - ratio), 6), abs(math.log(wh[0] * wh[1]) - area)),
    )


def fit_within(width: int, height: int, max_side: int, *, min_side: int = 64, multiple: int = 8) -> tuple[int, int]:
    """Scale down (keeping the aspect) until both sides are at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    def side(v: int) -> int:
        s = int(v * scale) // multiple * multiple
        return max(min_side, min(max_side, s))
    return side(width), side(height)


@dataclass(frozen=True)
class Mapped:
    """The job's values as this vendor will receive them."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    n: int
    steps: int
    cfg: float
    seed: int
    strength: float | None = None
    style: str = ""
    model: str = ""


# Defaults of ``engine.jobs.GenerationBase``: a value still at its default was not asked for,
# so a vendor ignoring it is not worth a note.
_DEFAULTS = {"steps": 20, "cfg": 7.0, "seed": 0, "negative_prompt": "", "style": "", "model": ""}


@dataclass(frozen=True)
class VendorLimits:
    """What one vendor can honour. ``None`` for a range means the vendor takes no such value
    (it is ignored, with a note when the user set it)."""

    backend: str
    kinds: tuple[str, ...] = ("txt2img",)
    max_n: int = 1
    sizes: tuple[tuple[int, int], ...] | None = None  # a fixed menu of sizes
    max_side: int | None = None  # any size up to this side (multiples of 8)
    max_prompt_chars: int | None = None
    steps_range: tuple[int, int] | None = None
    cfg_range: tuple[float, float] | None = None
    cfg_integer: bool = False
    strength_range: tuple[float, float] | None = None
    negative_prompt: bool = False
    seed: bool = False
    # Canonical style names and aliases (lower-case, no spaces/-/_) -> canonical name.
    styles: tuple[str, ...] = ()
    style_aliases: Mapping[str, str] = field(default_factory=dict)
    default_style: str = ""
    models: tuple[str, ...] = ()  # names a vendor takes on the wire; empty: no model choice
    default_model: str = ""
    # Which of a job's extras ("lora", "vae", "embedding") the vendor takes; the rest are refused.
    extras: tuple[str, ...] = ()

    def cannot(self, reason: str, **args: Any) -> UserFacingError:
        return UserFacingError("error-vendor-cannot", backend=self.backend, reason=reason, **args)

    def refuse_extras(self, spec: Any) -> None:
        """Refuse, before any call, a LoRA, VAE or embedding this vendor cannot take."""
        refuse_unsupported(self.backend, spec, self.extras)

    def _note(self, notes: list[Problem], what: str, asked: Any, used: Any) -> None:
        notes.append(Problem("vendor-note-mapped", {"backend": self.backend, "what": what,
                                                    "asked": str(asked), "used": str(used)}))

    def _ignored(self, notes: list[Problem], spec: Any, name: str) -> None:
        value = getattr(spec, name, _DEFAULTS.get(name))
        if value != _DEFAULTS.get(name):
            notes.append(Problem("vendor-note-ignored", {"backend": self.backend, "what": name}))

    def resolve_style(self, style: str) -> str:
        if not self.styles:
            return ""
        if not style.strip():
            return self.default_style
        if style.strip() in self.styles:
            return style.strip()
        key = re.sub(r"[\s_\-]+", "", style.strip().lower())
        for name in self.styles:
            if re.sub(r"[\s_\-]+", "", name.lower()) == key:
                return name
        if key in self.style_aliases:
            return self.style_aliases[key]
        raise self.cannot("style", value=style, choices=", ".join(self.styles))

    def check_or_map(self, spec: Any) -> tuple[Mapped, list[Problem]]:
        """Map ``spec`` onto this vendor or raise ``UserFacingError('error-vendor-cannot')``.

        Returns the values to send and one ``Problem`` note per value that changed or is
        ignored, for the handlers to show next to the result.
        """
        notes: list[Problem] = []
        kind = getattr(spec, "kind", "")
        if kind not in self.kinds:
            raise self.cannot("kind", value=kind)
        self.refuse_extras(spec)

        prompt = spec.prompt.strip()
        if self.max_prompt_chars is not None and len(prompt) > self.max_prompt_chars:
            raise self.cannot("prompt-too-long", value=len(prompt), limit=self.max_prompt_chars)

        negative = spec.negative_prompt if self.negative_prompt else ""
        if not self.negative_prompt:
            self._ignored(notes, spec, "negative_prompt")

        width, height = spec.width, spec.height
        if self.sizes is not None or self.max_side is not None:
            if self.sizes is not None:
                width, height = fit_size(spec.width, spec.height, self.sizes)
            else:
                width, height = fit_within(spec.width, spec.height, self.max_side or spec.width)
            if (width, height) != (spec.width, spec.height):
                self._note(notes, "size", f"{spec.width}x{spec.height}", f"{width}x{height}")
        elif (spec.width, spec.height) != (512, 512):
            # The vendor takes no size at all; it picks one.
            notes.append(Problem("vendor-note-ignored", {"backend": self.backend, "what": "size"}))

        n = min(spec.n, self.max_n)
        if n != spec.n:
            self._note(notes, "n", spec.n, n)

        steps = spec.steps
        if self.steps_range is None:
            self._ignored(notes, spec, "steps")
        else:
            steps = clamp_int(spec.steps, *self.steps_range)
            if steps != spec.steps:
                self._note(notes, "steps", spec.steps, steps)

        cfg = float(spec.cfg)
        if self.cfg_range is None:
            self._ignored(notes, spec, "cfg")
        else:
            cfg = clamp(cfg, *self.cfg_range)
            if self.cfg_integer:
                cfg = float(clamp_int(cfg, math.ceil(self.cfg_range[0]), math.floor(self.cfg_range[1])))
            if cfg != spec.cfg:
                self._note(notes, "cfg", f"{spec.cfg:g}", f"{cfg:g}")

        if not self.seed:
            self._ignored(notes, spec, "seed")

        strength: float | None = getattr(spec, "strength", None)
        if strength is not None and self.strength_range is not None:
            mapped = clamp(strength, *self.strength_range)
            if mapped != strength:
                self._note(notes, "strength", f"{strength:g}", f"{mapped:g}")
            strength = mapped

        style = self.resolve_style(spec.style) if self.styles else ""
        if self.styles and spec.style.strip() and style != spec.style.strip():
            self._note(notes, "style", spec.style, style)
        elif not self.styles:
            self._ignored(notes, spec, "style")

        model = ""
        if self.models:
            asked = spec.model.strip()
            if not asked:
                model = self.default_model or self.models[0]
            elif asked in self.models:
                model = asked
            else:
                raise self.cannot("model", value=asked, choices=", ".join(self.models))
        else:
            self._ignored(notes, spec, "model")

        return (
            Mapped(prompt=prompt, negative_prompt=negative, width=width, height=height, n=n,
                   steps=steps, cfg=cfg, seed=spec.seed, strength=strength, style=style, model=model),
            notes,
        )


# --- polling --------------------------------------------------------------------------



class LimitedBackend:
    """``supports`` and ``check`` of a vendor backend, read straight off its ``VendorLimits``."""

    limits: VendorLimits

    def supports(self, spec: Any) -> bool:
        return spec.kind in self.limits.kinds

    def check(self, spec: Any) -> list[Problem]:
        """Notes about values this vendor changes or ignores; raises if it cannot do the job."""
        return self.limits.check_or_map(spec)[1]


@dataclass(frozen=True)
class Pending(Generic[T]):
    """Returned by a poll function while the task is not finished; ``state`` is whatever
    the vendor said (a status, a progress fraction, a preview...)."""

    state: T | None = None


async def _sleep_cancellable(seconds: float, cancel: CancelToken | None) -> None:
    # Short slices so a /cancel is noticed within a fraction of a second.
    end = time.monotonic() + seconds
    while True:
        if cancel is not None and cancel.cancelled:
            raise JobCancelled()
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.25))


async def polling(
    fn: Callable[[], Awaitable[Any]],
    *,
    interval_s: float,
    max_interval_s: float,
    timeout_s: float,
    cancel: CancelToken | None = None,
    backend: str = "",
    factor: float = 1.5,
) -> AsyncIterator[Any]:
    """Call ``fn`` until it returns something other than ``Pending``; yield every answer
    (each ``Pending`` and the final value, last). The interval grows by ``factor`` up to
    ``max_interval_s``; after ``timeout_s`` it gives up with a non-retryable
    ``error-vendor-timeout`` (the task may still finish at the vendor: retrying would pay
    twice). A set ``cancel`` token raises ``JobCancelled``."""
    deadline = time.monotonic() + timeout_s
    interval = interval_s
    while True:
        if cancel is not None and cancel.cancelled:
            raise JobCancelled()
        result = await fn()
        yield result
        if not isinstance(result, Pending):
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise BackendError("error-vendor-timeout", retryable=False, backend=backend)
        await _sleep_cancellable(min(interval * random.uniform(0.9, 1.1), left), cancel)
        interval = min(max_interval_s, interval * factor)


async def poll_until(
    fn: Callable[[], Awaitable[Any]],
    *,
    interval_s: float,
    max_interval_s: float,
    timeout_s: float,
    cancel: CancelToken | None = None,
    backend: str = "",
    on_pending: Callable[[Pending[Any]], Awaitable[None]] | None = None,
) -> Any:
    """``polling`` for callers that only want the final value (``on_pending`` sees the rest)."""
    async for result in polling(fn, interval_s=interval_s, max_interval_s=max_interval_s,
                                timeout_s=timeout_s, cancel=cancel, backend=backend):
        if isinstance(result, Pending):
            if on_pending is not None:
                await on_pending(result)
        else:
            return result
    raise AssertionError("unreachable")  # polling always ends with a value or an error


__all__ = [
    "CircuitBreaker",
    "Mapped",
    "Pending",
    "VendorHttp",
    "VendorLimits",
    "clamp",
    "clamp_int",
    "fit_size",
    "fit_within",
    "poll_until",
    "polling",
    "sanitize_vendor_text",
    "to_png",
]
