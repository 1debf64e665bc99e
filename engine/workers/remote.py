"""``RemoteBackend``: the Backend protocol, run by a worker process through Redis.

One per backend name the workers run ("local", "tools", a vendor). The scheduler and the
runner cannot tell it from the in-process backend: ``run(work)`` yields the same
Progress / Notice / Finished events. Underneath, one attempt at a time:

    acquire a worker (fleet) -> remember {worker, attempt} in the job's checkpoint (SQLite)
      -> MULTI: job hash {attempt, worker} + inputs + XADD <worker inbox> -> entry id remembered
      -> XREAD <job events> from 0, keeping only this attempt's events
         progress / notice -> yielded; checkpoint -> kept in SQLite; result -> Finished
      -> worker lost (no heartbeat) or the job gone from Redis: take the entry back (XACK +
         XDEL on the lost worker's inbox), "retrying on another GPU", next attempt elsewhere

The attempt is written to SQLite before it is handed out, so a bot that dies at any point
finds it again: a restarted bot whose job hash still names the same attempt re-attaches
(no second dispatch, the worker never noticed), otherwise it dispatches the next attempt
from its own records, which is also how a job that a Redis restart lost is handed out
again. A worker that comes back after its attempt was taken away is ignored by attempt
number, so it cannot deliver a stale duplicate; a job is charged at delivery, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from engine.backend import BackendEvent, Finished, ModelInfo, Notice, Progress, Work
from engine.errors import BackendError, JobCancelled, Problem, UserFacingError
from engine.jobs import GenerationBase, JobSpec
from engine.workers.connect import UNREACHABLE, ignoring_unreachable, not_cancelled, until_reachable
from engine.workers.fleet import Fleet, Need
from engine.workers.protocol import (
    Cancelled,
    Checkpointed,
    Dispatch,
    Failed,
    Keys,
    Started,
    drop_entry,
    media_keys,
    read_event,
    remove_entry,
    text,
    too_large,
)

log = logging.getLogger(__name__)

# After /cancel, how long to wait for the worker to confirm before ending the job anyway.
CANCEL_WAIT_S = 10.0
# How often a following bot checks that Redis still knows the job (it may have lost it).
JOB_CHECK_S = 2.0
# Redis keys of a finished job are removed this long after its result was read (the runner
# has stored the result by then; until then a restarted bot can still read it).
CLEANUP_AFTER_S = 60.0
BLOCK_MS = 250


class _Lost(Exception):
    """The attempt will not finish: its worker is lost, or Redis lost the job."""


@dataclass(frozen=True)
class _Attempt:
    worker: str
    attempt: int
    entry: str = ""

    @classmethod
    def of(cls, work: Work) -> _Attempt | None:
        state = work.checkpoint.get("remote")
        if not isinstance(state, dict) or not state.get("worker"):
            return None
        return cls(str(state["worker"]), int(state.get("attempt", 0)), str(state.get("entry") or ""))

    def saved(self) -> dict[str, Any]:
        return {"worker": self.worker, "attempt": self.attempt, "entry": self.entry}


class RemoteBackend:
    def __init__(self, name: str, fleet: Fleet, media: Any, *, default_model: str = "",
                 max_bytes: int = 64 * 2**20, result_ttl_s: int = 3600, timeout_s: float = 900.0,
                 max_attempts: int = 3, clock: Callable[[], float] = time.monotonic) -> None:
        """``media`` reads the job's stored pictures (the bot's MediaStore) and signs links."""
        self.name = name
        self.lane = f"remote:{name}"
        self.concurrency = 1  # the lane's real capacity is the fleet's (a callable, see wiring)
        self.fleet = fleet
        self.media = media
        self.keys: Keys = fleet.keys
        self.redis = fleet.redis
        self._default_model = default_model
        self.max_bytes = max_bytes
        self.result_ttl_s = result_ttl_s
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self._clock = clock
        fleet.serve(name)

    # --- what it can do: from what the workers announced ---------------------------------

    @property
    def default_model(self) -> str:
        for offer in self.fleet.offers(self.name):
            if offer.default_model:
                return offer.default_model
        return self._default_model

    def supports(self, spec: JobSpec) -> bool:
        offers = self.fleet.offers(self.name)
        if not offers:
            return True  # nobody announced it yet: check() says so in words
        return any(spec.kind in offer.kinds for offer in offers)

    def check(self, spec: JobSpec) -> list[Problem]:
        """Refuse, before the job is queued, what no worker has ever offered."""
        offers = self.fleet.offers(self.name)
        if not any(spec.kind in o.kinds for o in offers):
            raise UserFacingError("error-no-worker", backend=self.name, kind=spec.kind)
        model = getattr(spec, "model", "") or self.default_model
        if model and not any(spec.kind in o.kinds and o.has_model(model) for o in offers):
            raise UserFacingError("error-no-worker-model", backend=self.name, model=model)
        if isinstance(spec, GenerationBase):
            known = {(kind, m.name.lower()) for o in offers for kind, ms in o.extras.items() for m in ms}
            for kind, name in spec.extras_used():
                if (kind, name.lower()) not in known:
                    raise UserFacingError("error-extra-unknown", backend=self.name, what=kind, value=name,
                                          choices=", ".join(sorted({n for k, n in known if k == kind})) or "-")
        return []

    async def models(self) -> list[ModelInfo]:
        await self.fleet.ensure_fresh()  # admission asks this first, then check() reads the same view
        seen: dict[str, ModelInfo] = {}
        for offer in self.fleet.offers(self.name):
            for model in offer.models:
                seen.setdefault(model.name.lower(), model)
        return list(seen.values())

    async def extras(self) -> dict[str, list[ModelInfo]]:
        out: dict[str, dict[str, ModelInfo]] = {}
        for offer in self.fleet.offers(self.name):
            for kind, models in offer.extras.items():
                for model in models:
                    out.setdefault(kind, {}).setdefault(model.name.lower(), model)
        return {kind: list(models.values()) for kind, models in out.items()}

    async def close(self) -> None:
        return None  # the fleet owns the connection

    # --- running a job -----------------------------------------------------------------------

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        current = _Attempt.of(work)
        attached = current is not None and await self._reattach(work, current)
        finished = False
        try:
            while True:
                if not attached:
                    if current is not None and current.entry:  # an attempt was handed out and lost
                        if current.attempt >= self.max_attempts:
                            raise BackendError("error-worker-lost", backend=self.name, attempts=current.attempt)
                        yield Notice("status-retrying-gpu", {"attempt": current.attempt + 1,
                                                             "attempts": self.max_attempts})
                    current = await self._dispatch(work, current)
                assert current is not None
                try:
                    async for event in self._follow(work, current):
                        if isinstance(event, Finished):
                            finished = True
                        yield event
                    return
                except _Lost:
                    attached = False
        except (BackendError, JobCancelled):
            finished = True  # the worker's own answer (or ours): the job is over either way
            raise
        finally:
            self.fleet.release(work.job_id)
            if finished:
                self._clean_up_later(work.job_id, current)

    async def _reattach(self, work: Work, current: _Attempt) -> bool:
        """After a bot restart: is the attempt in the checkpoint still the job's in Redis?"""
        job = await until_reachable(self.redis.hgetall, self.keys.job(work.job_id))
        if text(job.get(b"attempt")) == str(current.attempt) and text(job.get(b"worker")) == current.worker:
            self.fleet.attach(work.job_id, current.worker, self.name)
            log.info("job %s: attempt %d still on worker %s; following it", work.job_id, current.attempt,
                     current.worker)
            return True
        log.info("job %s: attempt %d is not in the queue any more; handing it out again", work.job_id,
                 current.attempt)
        return False

    async def _dispatch(self, work: Work, previous: _Attempt | None) -> _Attempt:
        spec = work.spec
        inputs = await asyncio.to_thread(self._read_inputs, spec)
        worker = await self.fleet.acquire(work.job_id, Need(self.name, spec.kind, getattr(spec, "model", "")),
                                          cancelled=lambda: work.cancel.cancelled)
        current = _Attempt(worker, (previous.attempt if previous else 0) + 1)
        # Durable before anyone can run it: a bot that dies from here on finds this attempt.
        await work.remember(remote=current.saved())
        dispatch = Dispatch(
            job_id=work.job_id, attempt=current.attempt, backend=self.name, spec=spec, media=tuple(inputs),
            links=self._links(inputs), parameters=self._parameters(work),
            checkpoint=await self._backend_checkpoint(work), timeout_s=self.timeout_s,
        )
        ttl = int(self.timeout_s + self.result_ttl_s)

        async def hand_out() -> Any:
            async with self.redis.pipeline(transaction=True) as pipe:
                job_key = self.keys.job(work.job_id)
                pipe.delete(job_key)
                pipe.hset(job_key, mapping={"attempt": current.attempt, "worker": worker, "backend": self.name,
                                            "checkpoint": _json(dispatch.checkpoint)})
                pipe.expire(job_key, ttl)
                for key, data in inputs.items():
                    pipe.set(self.keys.media(key), data, ex=ttl)
                fields: dict[Any, Any] = dispatch.fields()
                pipe.xadd(self.keys.inbox(worker), fields)
                return (await pipe.execute())[-1]

        entry = text(await until_reachable(hand_out))
        current = _Attempt(worker, current.attempt, entry)
        await work.remember(remote=current.saved())
        log.info("job %s: attempt %d handed to worker %s", work.job_id, current.attempt, worker)
        return current

    def _read_inputs(self, spec: JobSpec) -> dict[str, bytes]:
        """The job's pictures from the media store (on a thread: disk reads), within the bound."""
        inputs = {key: self.media.read(key) for key in dict.fromkeys(media_keys(spec))}
        size = sum(len(data) for data in inputs.values())
        if size > self.max_bytes:
            raise too_large(size, self.max_bytes, backend=self.name)
        return inputs

    def _links(self, inputs: dict[str, bytes]) -> dict[str, str]:
        """Signed links to the bot's web server, when it has a public address (vendors on workers)."""
        if not getattr(self.media, "public_base_url", ""):
            return {}
        return {key: self.media.public_url(key) for key in inputs}

    @staticmethod
    def _parameters(work: Work) -> dict[str, str]:
        if work.parameters is None:
            return {}
        seeds: list[int | None] = [None]
        if isinstance(work.spec, GenerationBase):
            seeds += list(work.spec.image_seeds())
        return {"" if s is None else str(s): work.parameters(s) for s in seeds}

    async def _backend_checkpoint(self, work: Work) -> dict[str, Any]:
        """The backend's resume state: the newest the worker saved in Redis, else SQLite's."""
        saved = work.checkpoint.get("backend")
        job = await until_reachable(self.redis.hget, self.keys.job(work.job_id), "checkpoint")
        if job:
            with contextlib.suppress(ValueError):
                newer = json.loads(job)
                if isinstance(newer, dict) and newer:
                    return newer
        return dict(saved) if isinstance(saved, dict) else {}

    async def _follow(self, work: Work, current: _Attempt) -> AsyncIterator[BackendEvent]:
        """This attempt's events, until its result (yielded), its error (raised) or its loss (_Lost)."""
        events_key = self.keys.events(work.job_id)
        last = "0-0"
        cancel_sent: float | None = None
        next_check = self._clock() + JOB_CHECK_S
        while True:
            if work.cancel.cancelled and cancel_sent is None:
                await until_reachable(self.redis.hset, self.keys.job(work.job_id), "cancel", "1")
                cancel_sent = self._clock()
            try:
                reply: Any = await self.redis.xread({events_key: last}, count=200, block=BLOCK_MS)
            except UNREACHABLE:
                not_cancelled()
                await asyncio.sleep(0.5)
                continue
            batch = [(text(entry), fields) for _, entries in reply for entry, fields in entries]
            progress: Progress | None = None
            for entry, fields in batch:
                last = entry
                try:
                    envelope = read_event(fields)
                except (ValueError, KeyError, TypeError):
                    log.warning("job %s: an unreadable event was skipped", work.job_id)
                    continue
                if envelope.attempt != current.attempt:
                    continue  # an earlier attempt's worker: stale
                event = envelope.event
                if isinstance(event, Progress):  # several in one read: the newest, with the newest preview
                    preview = event.preview or (progress.preview if progress is not None else None)
                    progress = Progress(event.step, event.total, preview)
                    continue
                if progress is not None:
                    yield progress
                    progress = None
                if isinstance(event, Notice):
                    yield event
                elif isinstance(event, Checkpointed):
                    await work.remember(backend=event.state)
                elif isinstance(event, Started):
                    log.debug("job %s: worker %s started attempt %d", work.job_id, envelope.worker, current.attempt)
                elif isinstance(event, Finished):
                    await self._settled(work.job_id, current)
                    yield event
                    return
                elif isinstance(event, Failed):
                    await self._settled(work.job_id, current)
                    raise event.error(self.name)
                elif isinstance(event, Cancelled):
                    await self._settled(work.job_id, current)
                    raise JobCancelled()
            if progress is not None:
                yield progress
            if len(batch) >= 200:
                continue  # not caught up yet: the result may be further on
            now = self._clock()
            if cancel_sent is not None and (now - cancel_sent > CANCEL_WAIT_S or self.fleet.lost(current.worker)):
                raise JobCancelled()
            if self.fleet.lost(current.worker):
                log.warning("job %s: worker %s is lost (no heartbeat); taking attempt %d back", work.job_id,
                            current.worker, current.attempt)
                await self._take_back(work.job_id, current)
                raise _Lost()
            if now >= next_check and self.fleet.reachable:
                next_check = now + JOB_CHECK_S
                attempt = await until_reachable(self.redis.hget, self.keys.job(work.job_id), "attempt")
                if text(attempt) != str(current.attempt):
                    log.warning("job %s: the queue lost attempt %d (a Redis restart without its data?); "
                                "handing it out again", work.job_id, current.attempt)
                    await self._take_back(work.job_id, current)
                    raise _Lost()

    async def _take_back(self, job_id: str, current: _Attempt) -> None:
        """Reclaim an attempt from its worker's inbox: acked and deleted, so a worker that
        comes back finds nothing of it pending."""
        self.fleet.release(job_id)
        if current.entry:
            with ignoring_unreachable():
                await remove_entry(self.redis, self.keys.inbox(current.worker), current.entry)

    async def _settled(self, job_id: str, current: _Attempt) -> None:
        """The attempt ended: say so in the job hash (a worker restarted with the entry still
        pending will not run it again) and take the entry out of the inbox."""
        with ignoring_unreachable():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.job(job_id), "done", "1")
                if current.entry:
                    drop_entry(pipe, self.keys.inbox(current.worker), current.entry)
                await pipe.execute()

    def _clean_up_later(self, job_id: str, current: _Attempt | None) -> None:
        async def clean() -> None:
            await asyncio.sleep(CLEANUP_AFTER_S)
            with ignoring_unreachable():
                await self.redis.delete(self.keys.events(job_id), self.keys.job(job_id))

        with contextlib.suppress(RuntimeError):  # no loop: the process is ending, the TTL does it
            task = asyncio.get_running_loop().create_task(clean(), name=f"clean-{job_id}")
            _CLEANUPS.add(task)
            task.add_done_callback(_CLEANUPS.discard)


_CLEANUPS: set[asyncio.Task[None]] = set()


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
