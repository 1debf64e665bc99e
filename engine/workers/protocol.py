"""What the bot and its workers say to each other through Redis, in one place.

Keys (``<p>`` is the prefix, ``imagebot`` by default, so several bots can share a Redis):

    <p>:workers            hash   worker name -> its last announcement (JSON), kept for /stats
    <p>:alive:<worker>     string the worker's instance id, with a TTL the worker renews:
                                  it exists exactly while the worker heart-beats (Redis's clock)
    <p>:inbox:<worker>     stream jobs handed to that worker; consumer group ``workers``,
                                  an entry stays pending until the worker acks it
    <p>:job:<job id>       hash   the current attempt: attempt, worker, cancel, checkpoint
    <p>:events:<job id>    stream what the worker reports, each entry tagged with its attempt
    <p>:media:<media key>  string an input picture for the worker (bounded, with a TTL)
    <p>:lanes              string the bot's queue per lane (JSON), for ``python -m bot workers``

Every dispatch carries an attempt number. The bot accepts events of the current attempt
only, so a worker that was given up for dead and comes back cannot deliver a stale
duplicate; the worker itself stops a run whose attempt is no longer the job's.

Bytes travel as they are (the client runs with ``decode_responses=False``); everything
else is UTF-8 text or JSON. Inputs and results are bounded per job (``max_bytes``) and a
job above the bound fails with a clear ``error-queue-too-large``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.backend import BackendEvent, Finished, ModelInfo, Notice, Progress, ResultImage
from engine.errors import BackendError
from engine.jobs import (
    ControlNet,
    FaceSwap,
    Img2Img,
    Inpaint,
    JobSpec,
    Txt2Img,
    Upscale,
    dump_job_spec,
    parse_job_spec,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

PROTOCOL_VERSION = 1
GROUP = "workers"  # the consumer group on every inbox; the consumer is the worker's name
MAX_PREVIEW_BYTES = 256 * 1024  # larger previews are dropped (progress is lossy anyway)
EVENTS_MAXLEN = 500  # a job's event stream is trimmed to about this many entries

Fields = Mapping[bytes | str, Any]


@dataclass(frozen=True)
class Keys:
    prefix: str = "imagebot"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def lanes(self) -> str:
        return f"{self.prefix}:lanes"

    def alive(self, worker: str) -> str:
        return f"{self.prefix}:alive:{worker}"

    def inbox(self, worker: str) -> str:
        return f"{self.prefix}:inbox:{worker}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}:events:{job_id}"

    def media(self, key: str) -> str:
        return f"{self.prefix}:media:{key}"


def drop_entry(pipe: Pipeline, inbox: str, entry: str) -> None:
    """Queue, on a MULTI pipeline, the XACK and XDEL of one inbox entry: acked and deleted
    together, so no consumer (a worker coming back) finds it pending again."""
    pipe.xack(inbox, GROUP, entry)
    pipe.xdel(inbox, entry)


async def remove_entry(redis: Redis, inbox: str, entry: str) -> None:
    """Ack and delete one inbox entry, in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        drop_entry(pipe, inbox, entry)
        await pipe.execute()


def text(value: Any) -> str:
    """A Redis reply (bytes) or a Python value as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def get(fields: Fields, name: str) -> Any:
    """A field of a Redis hash or stream entry, whether the reply's keys are bytes or str."""
    return fields.get(name.encode(), fields.get(name))


def too_large(size: int, limit: int, *, backend: str) -> BackendError:
    return BackendError("error-queue-too-large", backend=backend, size_mb=round(size / 2**20, 1),
                        limit_mb=round(limit / 2**20, 1))


# --- what a job needs: the dispatch -------------------------------------------------------

def media_keys(spec: JobSpec) -> list[str]:
    """The stored pictures a job reads (uploads, masks, control maps, earlier results)."""
    if isinstance(spec, Img2Img):
        return [spec.init_image]
    if isinstance(spec, Inpaint):
        return [spec.init_image, spec.mask_image]
    if isinstance(spec, ControlNet):
        return [spec.control_image]
    if isinstance(spec, FaceSwap):
        return [spec.face_image, spec.target_image]
    if isinstance(spec, Upscale):
        return [spec.image]
    return []


@dataclass(frozen=True)
class Dispatch:
    """One attempt of one job, as it sits in a worker's inbox."""

    job_id: str
    attempt: int
    backend: str
    spec: JobSpec
    media: tuple[str, ...] = ()
    # Signed links to the bot's web server, for vendors on workers that fetch by URL.
    links: dict[str, str] = field(default_factory=dict)
    # The A1111 ``parameters`` text per seed ("" for none), written into the PNGs.
    parameters: dict[str, str] = field(default_factory=dict)
    # The backend's own resume state (a vendor's task id), from an earlier attempt.
    checkpoint: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 900.0

    def fields(self) -> dict[str, str]:
        return {
            "v": str(PROTOCOL_VERSION), "job": self.job_id, "attempt": str(self.attempt),
            "backend": self.backend, "spec": dump_job_spec(self.spec), "media": json.dumps(list(self.media)),
            "links": json.dumps(self.links), "parameters": json.dumps(self.parameters),
            "checkpoint": json.dumps(self.checkpoint), "timeout_s": str(self.timeout_s),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> Dispatch:
        return cls(
            job_id=text(get(fields, "job")), attempt=int(text(get(fields, "attempt"))),
            backend=text(get(fields, "backend")), spec=parse_job_spec(text(get(fields, "spec"))),
            media=tuple(json.loads(text(get(fields, "media")) or "[]")),
            links=json.loads(text(get(fields, "links")) or "{}"),
            parameters=json.loads(text(get(fields, "parameters")) or "{}"),
            checkpoint=json.loads(text(get(fields, "checkpoint")) or "{}"),
            timeout_s=float(text(get(fields, "timeout_s")) or 900.0),
        )


# --- what a worker reports: events ---------------------------------------------------------

@dataclass(frozen=True)
class Started:
    """The worker took the attempt and is about to run it."""


@dataclass(frozen=True)
class Checkpointed:
    """The backend saved resume state (a vendor task id): the bot keeps it in SQLite."""

    state: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    key: str
    args: dict[str, Any]
    retryable: bool = False

    def error(self, backend: str) -> BackendError:
        args = {k: v for k, v in self.args.items() if k != "backend"}
        return BackendError(self.key, retryable=self.retryable, backend=backend, **args)


@dataclass(frozen=True)
class Cancelled:
    """The worker stopped the run because the job was cancelled."""


WorkerEvent = BackendEvent | Started | Checkpointed | Failed | Cancelled
TERMINAL = (Finished, Failed, Cancelled)


@dataclass(frozen=True)
class Envelope:
    attempt: int
    worker: str
    event: WorkerEvent


def event_fields(attempt: int, worker: str, event: WorkerEvent) -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {"attempt": str(attempt), "worker": worker}
    if isinstance(event, Progress):
        out.update(type="progress", step=str(event.step), total=str(event.total))
        if event.preview and len(event.preview) <= MAX_PREVIEW_BYTES:
            out["preview"] = event.preview
    elif isinstance(event, Notice):
        out.update(type="notice", key=event.key, args=json.dumps(event.args, default=str))
    elif isinstance(event, Finished):
        out.update(type="finished", n=str(len(event.images)))
        for k, image in enumerate(event.images):
            out[f"png{k}"] = image.png
            out[f"seed{k}"] = "" if image.seed is None else str(image.seed)
            out[f"withheld{k}"] = image.withheld_reason or ""
            out[f"stamped{k}"] = "1" if image.stamped else ""
    elif isinstance(event, Failed):
        out.update(type="failed", key=event.key, args=json.dumps(event.args, default=str),
                   retryable="1" if event.retryable else "")
    elif isinstance(event, Checkpointed):
        out.update(type="checkpoint", state=json.dumps(event.state, default=str))
    elif isinstance(event, Started):
        out.update(type="started")
    elif isinstance(event, Cancelled):
        out.update(type="cancelled")
    else:  # pragma: no cover - a new event type must be added here
        raise TypeError(f"no encoding for {event!r}")
    return out


def result_size(event: Finished) -> int:
    return sum(len(image.png) for image in event.images)


def read_event(fields: Fields) -> Envelope:
    kind = text(get(fields, "type"))
    event: WorkerEvent
    if kind == "progress":
        event = Progress(int(text(get(fields, "step"))), int(text(get(fields, "total"))), get(fields, "preview"))
    elif kind == "notice":
        event = Notice(text(get(fields, "key")), json.loads(text(get(fields, "args")) or "{}"))
    elif kind == "finished":
        images = []
        for k in range(int(text(get(fields, "n")))):
            seed = text(get(fields, f"seed{k}"))
            images.append(ResultImage(png=bytes(get(fields, f"png{k}") or b""), seed=int(seed) if seed else None,
                                      withheld_reason=text(get(fields, f"withheld{k}")) or None,
                                      stamped=bool(text(get(fields, f"stamped{k}")))))
        event = Finished(images)
    elif kind == "failed":
        event = Failed(text(get(fields, "key")), json.loads(text(get(fields, "args")) or "{}"),
                       bool(text(get(fields, "retryable"))))
    elif kind == "checkpoint":
        event = Checkpointed(json.loads(text(get(fields, "state")) or "{}"))
    elif kind == "started":
        event = Started()
    elif kind == "cancelled":
        event = Cancelled()
    else:
        raise ValueError(f"unknown event type {kind!r}")
    return Envelope(int(text(get(fields, "attempt")) or 0), text(get(fields, "worker")), event)


# --- what a worker offers: the announcement -----------------------------------------------

# One job of each kind, to ask a backend's own ``supports`` what it can run.
_KEY = "0" * 64 + ".png"
SAMPLE_SPECS: tuple[JobSpec, ...] = (
    Txt2Img(prompt="x"), Img2Img(prompt="x", init_image=_KEY), Inpaint(prompt="x", init_image=_KEY, mask_image=_KEY),
    ControlNet(prompt="x", control_image=_KEY, control_type="canny"), FaceSwap(face_image=_KEY, target_image=_KEY),
    Upscale(image=_KEY),
)


@dataclass(frozen=True)
class Offer:
    """What one worker offers for one backend."""

    backend: str
    kinds: tuple[str, ...]
    models: tuple[ModelInfo, ...] = ()
    default_model: str = ""
    # Backends with the same group share its slots on the worker (one device: diffusion and
    # tools take turns); a vendor is a group of its own.
    group: str = ""
    slots: int = 1
    on_disk: tuple[str, ...] = ()  # models whose weights are on this worker's disk
    loaded: tuple[str, ...] = ()  # models in this worker's memory now (most recent last)
    extras: dict[str, tuple[ModelInfo, ...]] = field(default_factory=dict)

    def has_model(self, name: str) -> bool:
        return not name or not self.models or any(m.name.lower() == name.lower() for m in self.models)


@dataclass(frozen=True)
class Announcement:
    """A worker's heartbeat: who it is and what it can run now."""

    name: str
    instance: str
    offers: dict[str, Offer]
    host: str = ""
    device: str = ""
    started_at: float = 0.0
    seen_at: float = 0.0
    busy: int = 0
    jobs_done: int = 0
    free_memory: int | None = None  # bytes free on its device (GPU), or in RAM on a CPU
    stopped: bool = False  # said goodbye (a clean stop)
    version: int = PROTOCOL_VERSION

    def dumps(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def loads(cls, raw: str | bytes) -> Announcement:
        data = json.loads(raw)
        offers = {name: _offer(o) for name, o in data.pop("offers", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(offers=offers, **{k: v for k, v in data.items() if k in known})


def _model(data: dict[str, Any]) -> ModelInfo:
    known = {f.name for f in dataclasses.fields(ModelInfo)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
    return ModelInfo(**values)


def _offer(data: dict[str, Any]) -> Offer:
    return Offer(
        backend=data["backend"], kinds=tuple(data.get("kinds", ())),
        models=tuple(_model(m) for m in data.get("models", ())), default_model=data.get("default_model", ""),
        group=data.get("group", ""), slots=int(data.get("slots", 1)), on_disk=tuple(data.get("on_disk", ())),
        loaded=tuple(data.get("loaded", ())),
        extras={k: tuple(_model(m) for m in v) for k, v in data.get("extras", {}).items()},
    )
