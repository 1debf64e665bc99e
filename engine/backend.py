"""The one interface every backend speaks: submit a job, stream progress events, get images.

    async for event in backend.run(work):
        Progress(step, total, preview)  -- zero or more, in order
        Notice(key, args)               -- now and then, e.g. "retrying on another GPU"
        Finished(images)                -- exactly once, last

A backend raises ``BackendError`` (localized, maybe retryable) or ``JobCancelled``;
it never returns without a ``Finished``. The local diffusers engine, each vendor client
and each image tool implement this same protocol, so the scheduler and the handlers
never learn which one ran a job.

Optional methods, looked up with ``getattr`` (a backend without them is complete):

    def check(self, spec) -> list[Problem]
        Before a job is queued, without any paid call: notes about values the backend
        will change (a size, an image count), or a ``UserFacingError`` that says why it
        cannot do the job as asked (an unknown LoRA, a missing setting...).
        Ask it through ``preflight(backend, spec)`` / ``accepts(backend, spec)`` below.

    async def extras(self) -> dict[str, list[ModelInfo]]
        What a job's ``loras`` / ``vae`` / ``embeddings`` may name on this backend, keyed
        "lora", "vae" and "embedding" (``ModelInfo.name`` is the name to give); a missing
        key or an empty list means none. May be cached with a TTL, like ``models``.
        A backend without it refuses jobs that name extras, in ``check``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.errors import Problem, UserFacingError
from engine.jobs import JobSpec


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    # A small JPEG of the current state, when the backend has one (local latents, vendor preview).
    preview: bytes | None = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


@dataclass(frozen=True)
class ResultImage:
    png: bytes  # always PNG
    seed: int | None = None
    # Set when a vendor withheld the picture (moderation). The handlers tell the user and
    # do not charge for it.
    withheld_reason: str | None = None
    # True when the PNG already carries its ``parameters`` text (``Work.parameters``), as the
    # local engine writes it; otherwise the handlers add it, off the event loop.
    stamped: bool = False


@dataclass(frozen=True)
class Finished:
    images: list[ResultImage]


@dataclass(frozen=True)
class Notice:
    """Something the user should hear about while the job runs (a locale key and its
    arguments), e.g. "retrying on another GPU"; shown on the status message."""

    key: str
    args: dict[str, Any] = field(default_factory=dict)


BackendEvent = Progress | Finished | Notice


class CancelToken:
    """Thread-safe cancel flag: set from the event loop, read inside a worker thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class MediaReader(Protocol):
    """Read access to stored images (uploads, masks, earlier results) by media key."""

    def read(self, key: str) -> bytes: ...

    def public_url(self, key: str) -> str:
        """An unguessable, expiring link a vendor may fetch; raises if no public base URL is set."""
        ...


@dataclass
class Work:
    """Everything a backend gets for one job."""

    job_id: str
    spec: JobSpec
    media: MediaReader
    cancel: CancelToken = field(default_factory=CancelToken)
    # Vendor task state saved earlier (task ids...), so polling resumes after a restart.
    checkpoint: dict[str, Any] = field(default_factory=dict)
    # Persist ``checkpoint`` (call it after every change a restart must not lose).
    save_checkpoint: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    # The A1111-style ``parameters`` text for the picture made with a seed: a backend that
    # encodes the PNG itself writes it in, so nothing has to re-encode the picture later.
    parameters: Callable[[int | None], str] | None = None

    async def remember(self, **values: Any) -> None:
        self.checkpoint.update(values)
        if self.save_checkpoint is not None:
            await self.save_checkpoint(dict(self.checkpoint))


@dataclass(frozen=True)
class ModelInfo:
    """A model a backend can run, with the defaults the handlers fill in for it."""

    name: str
    backend: str
    title: str = ""
    kinds: tuple[str, ...] = ("txt2img", "img2img", "inpaint")
    default_steps: int = 20
    default_cfg: float = 7.0
    default_size: int = 512  # the side of a square image at aspect 1:1
    control_types: tuple[str, ...] = ()
    nsfw: bool = False


@runtime_checkable
class Backend(Protocol):
    name: str
    # How many jobs this backend runs at once (a GPU: 1; a vendor: what its API allows).
    concurrency: int
    # The scheduler lane the backend's jobs take turns in. Backends on the same GPU share
    # one ("device:cuda:0"); a vendor has a lane of its own (its name). Optional: a backend
    # without the attribute gets a lane of its own name.
    # lane: str

    def supports(self, spec: JobSpec) -> bool: ...

    def run(self, work: Work) -> AsyncIterator[BackendEvent]: ...

    async def models(self) -> list[ModelInfo]:
        """What ``--model`` may name on this backend (may be cached with a TTL)."""
        ...

    async def close(self) -> None: ...


def preflight(backend: Backend, spec: JobSpec) -> list[Problem]:
    """Ask a backend that can tell in advance (its optional ``check``) whether it can honour
    ``spec`` as asked: its notes (values it will change), or the ``UserFacingError`` it raises.
    A backend without ``check`` has nothing to say."""
    check = getattr(backend, "check", None)
    if check is None:
        return []
    return list(check(spec))


def accepts(backend: Backend, spec: JobSpec) -> bool:
    """Whether ``backend`` takes ``spec`` at all: supports it and its preflight refuses nothing."""
    if not backend.supports(spec):
        return False
    try:
        preflight(backend, spec)
    except UserFacingError:
        return False
    return True
