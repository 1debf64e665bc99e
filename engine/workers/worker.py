"""The worker process: runs the jobs the bot hands it, with the real backends.

    heartbeat (every heartbeat_s): SET <alive> PX lost_after + HSET <workers> announcement
    inbox: XREADGROUP workers <name> <inbox>   (own pending entries first: an earlier life's)
      -> is the attempt still the job's? (job hash: attempt, worker, done, cancel) else ack, skip
      -> inputs from Redis -> backend.run(work) -> XADD <events>: started, progress, notices,
         checkpoints, then finished / failed / cancelled -> XACK + XDEL the entry

The worker never opens the database and needs no shared files: inputs come from Redis,
results go back through it (bounded). While a job runs, a watcher reads the job hash
every ``poll_s``: ``/cancel`` sets ``cancel`` there and the run stops at its next step; an
attempt the bot has given to someone else (this worker was presumed dead) stops too,
so a worker that comes back does not finish, or deliver, a stale duplicate.

A Redis restart is waited out: the device thread keeps painting, progress is dropped
meanwhile (it is lossy anyway), terminal events and checkpoints are published once Redis
is back, the consumer group is created again if Redis came back empty.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import socket
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.backend import Backend, CancelToken, Finished, ModelInfo, Notice, Progress, Work
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.workers.connect import UNREACHABLE, ignoring_unreachable, not_cancelled, until_reachable
from engine.workers.protocol import (
    EVENTS_MAXLEN,
    GROUP,
    SAMPLE_SPECS,
    Announcement,
    Cancelled,
    Checkpointed,
    Dispatch,
    Failed,
    Keys,
    Offer,
    Started,
    WorkerEvent,
    event_fields,
    remove_entry,
    result_size,
    text,
    too_large,
)

log = logging.getLogger(__name__)

OFFERS_EVERY_S = 30.0  # how often the models/extras lists are asked again (they may change on disk)
LOADED_KEPT = 2  # models a backend keeps in memory (the local engine's LRU)


class InputReader:
    """The job's pictures, fetched from Redis before the run (backends read them on their
    device thread, synchronously), and the signed links the bot sent for vendors."""

    def __init__(self, blobs: dict[str, bytes], links: dict[str, str]) -> None:
        self.blobs = blobs
        self.links = links

    def read(self, key: str) -> bytes:
        try:
            return self.blobs[key]
        except KeyError:
            raise KeyError(f"media {key} was not sent with the job") from None

    def public_url(self, key: str) -> str:
        try:
            return self.links[key]
        except KeyError:
            raise RuntimeError("no public link for this picture (IMAGEBOT_PUBLIC_BASE_URL on the bot)") from None


class Worker:
    def __init__(self, redis: Redis, backends: dict[str, Backend], *, name: str, keys: Keys | None = None,
                 device: str = "", slots: int = 1, heartbeat_s: float = 2.0, lost_after_s: float = 10.0,
                 max_bytes: int = 64 * 2**20, result_ttl_s: int = 3600, poll_s: float = 0.25,
                 backend_slots: dict[str, int] | None = None) -> None:
        """``slots``: jobs at once on the device (its backends take turns); a vendor backend
        runs ``backend_slots[name]`` (else its own ``concurrency``) at once."""
        self.redis = redis
        self.backends = backends
        self.name = name
        self.keys = keys or Keys()
        self.device = device
        self.slots = max(1, slots)
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = max(lost_after_s, 2 * heartbeat_s)
        self.max_bytes = max_bytes
        self.result_ttl_s = result_ttl_s
        self.poll_s = poll_s
        self.backend_slots = backend_slots or {}
        self.instance = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.jobs_done = 0
        self._running: dict[str, asyncio.Task[None]] = {}  # entry id -> its task
        self._offers: dict[str, Offer] = {}
        self._offers_at = -1e9
        self._loaded: dict[str, list[str]] = {}
        self._free = asyncio.Semaphore(self._total_slots())

    # --- what it offers -----------------------------------------------------------------

    def _group(self, backend: Backend) -> str:
        lane = getattr(backend, "lane", "")
        return lane if lane.startswith("device:") else backend.name

    def _slots_of(self, backend: Backend) -> int:
        if self._group(backend).startswith("device:"):
            return self.slots
        return max(1, self.backend_slots.get(backend.name) or int(getattr(backend, "concurrency", 1)))

    def _total_slots(self) -> int:
        groups = {self._group(b): self._slots_of(b) for b in self.backends.values()}
        return max(1, sum(groups.values()))

    async def _refresh_offers(self) -> None:
        offers = {}
        for name, backend in self.backends.items():
            try:
                models = await backend.models()
                extras_of = getattr(backend, "extras", None)
                extras = await extras_of() if extras_of is not None else {}
            except Exception as e:  # a vendor's catalogue may be down: offer what we know
                log.warning("listing what %s offers failed (%s)", name, type(e).__name__)
                previous = self._offers.get(name)
                models = list(previous.models) if previous else []
                extras = {k: list(v) for k, v in previous.extras.items()} if previous else {}
            offers[name] = Offer(
                backend=name, kinds=tuple(s.kind for s in SAMPLE_SPECS if _supports(backend, s)),
                models=tuple(models), default_model=str(getattr(backend, "default_model", "") or ""),
                group=self._group(backend), slots=self._slots_of(backend),
                on_disk=tuple(await asyncio.to_thread(_on_disk, backend, models)),
                extras={k: tuple(v) for k, v in extras.items()},
            )
        self._offers = offers
        self._offers_at = time.monotonic()

    def announcement(self, *, stopped: bool = False) -> Announcement:
        offers = {name: dataclasses.replace(offer, loaded=tuple(self._loaded.get(name, ())))
                  for name, offer in self._offers.items()}
        return Announcement(
            name=self.name, instance=self.instance, offers=offers, host=socket.gethostname(), device=self.device,
            started_at=self.started_at, seen_at=time.time(), busy=len(self._running), jobs_done=self.jobs_done,
            free_memory=_free_memory(self.device), stopped=stopped,
        )

    # --- life ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Heart-beat and take jobs until cancelled; then say goodbye, so the bot takes the
        jobs this worker did not finish back at once instead of waiting for the TTL."""
        await self._refresh_offers()
        await self._beat()
        log.info("worker %s ready: %s, %d slot(s)", self.name, ", ".join(sorted(self.backends)), self._total_slots())
        beats = asyncio.create_task(self._heartbeats(), name="worker-heartbeat")
        try:
            await self._take_jobs()
        finally:
            beats.cancel()
            running = list(self._running.values())
            for task in running:
                task.cancel()
            await asyncio.gather(beats, *running, return_exceptions=True)
            await self._goodbye()

    async def _heartbeats(self) -> None:
        """Beat every ``heartbeat_s``. The offers are listed again beside the beats, in a task
        of their own: a slow catalogue (a vendor's HTTP listing) must not stop the beats, or
        the bot would call this worker lost; the beats announce the last offers meanwhile."""
        refresh: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(self.heartbeat_s)
                if refresh is not None and refresh.done():
                    if not refresh.cancelled() and refresh.exception() is not None:
                        log.warning("listing the offers failed", exc_info=refresh.exception())
                    refresh = None
                if refresh is None and time.monotonic() - self._offers_at > OFFERS_EVERY_S:
                    refresh = asyncio.create_task(self._refresh_offers(), name="worker-offers")
                try:
                    await self._beat()
                except UNREACHABLE as e:
                    not_cancelled()
                    log.warning("heartbeat: the queue is unreachable (%s)", type(e).__name__)
        finally:
            if refresh is not None:
                refresh.cancel()
                await asyncio.gather(refresh, return_exceptions=True)

    async def _beat(self) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.alive(self.name), self.instance, px=int(self.lost_after_s * 1000))
            pipe.hset(self.keys.workers, self.name, self.announcement().dumps())
            await pipe.execute()

    async def _goodbye(self) -> None:
        with ignoring_unreachable():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.keys.alive(self.name))
                pipe.hset(self.keys.workers, self.name, self.announcement(stopped=True).dumps())
                await pipe.execute()

    # --- the inbox ----------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.inbox(self.name), GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def _take_jobs(self) -> None:
        inbox = self.keys.inbox(self.name)
        backlog: list[tuple[str, Any]] = []
        read_pending = True  # an earlier life of this worker (same name) may have left entries pending
        await until_reachable(self._ensure_group)
        while True:
            await self._free.acquire()
            try:
                if not backlog:
                    since = "0" if read_pending else ">"
                    reply: Any = await self.redis.xreadgroup(GROUP, self.name, {inbox: since}, count=100 if read_pending
                                                        else 1, block=None if read_pending else 1000)
                    entries = [(text(e), f) for _, es in reply for e, f in es]
                    for gone in [e for e, f in entries if not f]:  # deleted while pending: taken back
                        await self._ack(gone)
                    backlog = [(e, f) for e, f in entries if f and e not in self._running]
                    read_pending = False
            except ResponseError as e:  # NOGROUP, or "the stream key no longer exists" while blocked
                self._free.release()
                log.warning("the inbox is gone (%s; Redis came back empty?); creating it again", str(e)[:80])
                await until_reachable(self._ensure_group)
                await asyncio.sleep(0.5)  # not a tight loop if the error is of another kind
                read_pending = True
                continue
            except UNREACHABLE as e:
                self._free.release()
                not_cancelled()
                log.warning("inbox: the queue is unreachable (%s); waiting", type(e).__name__)
                await asyncio.sleep(1.0)
                read_pending = True
                continue
            except BaseException:
                self._free.release()
                raise
            if not backlog:
                self._free.release()
                continue
            entry, fields = backlog.pop(0)
            task = asyncio.create_task(self._handle(entry, fields), name=f"entry-{entry}")
            self._running[entry] = task
            task.add_done_callback(functools.partial(self._finished_entry, entry))

    def _finished_entry(self, entry: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(entry, None)
        self._free.release()

    async def _handle(self, entry: str, fields: Any) -> None:
        try:
            dispatch = Dispatch.from_fields(fields)
        except Exception:
            log.exception("inbox entry %s is unreadable; dropped", entry)
            await self._ack(entry)
            return
        state = await until_reachable(self.redis.hgetall, self.keys.job(dispatch.job_id))
        if not _current(state, dispatch, self.name):
            log.info("job %s attempt %d is no longer this worker's; dropped", dispatch.job_id, dispatch.attempt)
            await self._ack(entry)
            return
        # Acked only once the attempt's ending is published: a worker stopped or killed
        # before that finds the entry pending again when it comes back under its name.
        try:
            await self._run(dispatch, cancelled=text(state.get(b"cancel")) == "1")
        except Exception:  # Redis refusing a write (out of memory...), a bug: the job still ends
            log.exception("job %s attempt %d could not be run or answered", dispatch.job_id, dispatch.attempt)
            try:
                await self._sender(dispatch)(Failed("error-internal", {}), lossy=True)
            except Exception:
                log.warning("job %s: its failure could not be told either", dispatch.job_id)
        await self._ack(entry)

    async def _run(self, dispatch: Dispatch, *, cancelled: bool) -> None:
        send = self._sender(dispatch)
        backend = self.backends.get(dispatch.backend)
        if cancelled:
            await send(Cancelled())
            return
        if backend is None:
            await send(Failed("error-backend-cannot", {"kind": dispatch.spec.kind}))
            return
        await send(Started())
        blobs = await self._inputs(dispatch)
        if blobs is None:
            await send(Failed("error-local-input-gone", {"what": "picture"}))
            return
        token = CancelToken()
        superseded, ended = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(self._watch(dispatch, token, superseded, ended),
                                      name=f"watch-{dispatch.job_id}")
        work = Work(job_id=dispatch.job_id, spec=dispatch.spec, media=InputReader(blobs, dispatch.links),
                    cancel=token, checkpoint=dict(dispatch.checkpoint), save_checkpoint=self._saver(dispatch),
                    parameters=_parameters(dispatch.parameters))
        log.info("job %s attempt %d: running on %s", dispatch.job_id, dispatch.attempt, dispatch.backend)
        try:
            outcome = await self._drive(backend, work, dispatch, send)
        finally:
            ended.set()  # the watcher ends at its next look even if a cancellation went astray
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if superseded.is_set():
            log.info("job %s attempt %d was handed to another worker; its result is not sent", dispatch.job_id,
                     dispatch.attempt)
            return
        await send(outcome)
        if isinstance(outcome, Finished):
            self.jobs_done += 1
            self._note_loaded(dispatch, backend)
        elif isinstance(outcome, Failed) and outcome.key == "error-out-of-memory":
            self._loaded.pop(dispatch.backend, None)

    async def _drive(self, backend: Backend, work: Work, dispatch: Dispatch,
                     send: Callable[..., Any]) -> WorkerEvent:
        """Run the backend; progress goes out as it comes, the ending is returned."""
        try:
            async with asyncio.timeout(dispatch.timeout_s):
                async for event in backend.run(work):
                    if isinstance(event, Finished):
                        if work.cancel.cancelled:
                            return Cancelled()
                        size = result_size(event)
                        if size > self.max_bytes:
                            error = too_large(size, self.max_bytes, backend=dispatch.backend)
                            return Failed(error.key, dict(error.args_))
                        return event
                    if isinstance(event, Progress | Notice):
                        await send(event, lossy=True)
        except JobCancelled:
            return Cancelled()
        except BackendError as e:
            return Failed(e.key, _plain(e.args_), e.retryable)
        except UserFacingError as e:
            return Failed(e.key, _plain(e.args_))
        except TimeoutError:
            return Failed("error-job-timeout", {"seconds": int(dispatch.timeout_s)})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed unexpectedly", dispatch.job_id)
            return Failed("error-internal", {})
        return Failed("error-backend-no-result", {})

    async def _watch(self, dispatch: Dispatch, token: CancelToken, superseded: asyncio.Event,
                     ended: asyncio.Event) -> None:
        """Stop the run when the job is cancelled or its attempt is no longer ours."""
        while not token.cancelled and not ended.is_set():
            await asyncio.sleep(self.poll_s)
            try:
                state: Any = await self.redis.hgetall(self.keys.job(dispatch.job_id))  # type: ignore[misc]  # redis-py types sync and async alike
            except UNREACHABLE:
                not_cancelled()
                continue  # Redis restarting: keep painting
            if not _current(state, dispatch, self.name):
                superseded.set()
                token.cancel()
            elif text(state.get(b"cancel")) == "1":
                log.info("job %s: cancelled by the bot", dispatch.job_id)
                token.cancel()

    async def _inputs(self, dispatch: Dispatch) -> dict[str, bytes] | None:
        if not dispatch.media:
            return {}
        values = await until_reachable(self.redis.mget, [self.keys.media(k) for k in dispatch.media])
        if any(v is None for v in values):
            return None
        return dict(zip(dispatch.media, values, strict=True))

    def _note_loaded(self, dispatch: Dispatch, backend: Backend) -> None:
        model = getattr(dispatch.spec, "model", "") or str(getattr(backend, "default_model", "") or "")
        if not model:
            return
        loaded = [m for m in self._loaded.get(dispatch.backend, []) if m != model] + [model]
        self._loaded[dispatch.backend] = loaded[-LOADED_KEPT:]

    # --- talking back ---------------------------------------------------------------------------

    def _sender(self, dispatch: Dispatch) -> Callable[..., Any]:
        events_key = self.keys.events(dispatch.job_id)
        ttl = int(dispatch.timeout_s + self.result_ttl_s)

        async def send(event: WorkerEvent, *, lossy: bool = False) -> None:
            fields: dict[Any, Any] = event_fields(dispatch.attempt, self.name, event)

            async def publish() -> None:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.xadd(events_key, fields, maxlen=EVENTS_MAXLEN, approximate=True)
                    pipe.expire(events_key, ttl)
                    await pipe.execute()

            if lossy:
                with ignoring_unreachable():
                    await publish()
            else:
                await until_reachable(publish)

        return send

    def _saver(self, dispatch: Dispatch) -> Callable[[dict[str, Any]], Any]:
        """A backend's checkpoint (a vendor's task id) is durable in Redis before the
        backend goes on (it may be about to make a paid call); the bot copies it to SQLite."""
        send = self._sender(dispatch)

        async def save(state: dict[str, Any]) -> None:
            await until_reachable(self.redis.hset, self.keys.job(dispatch.job_id), "checkpoint",
                                      json.dumps(state, default=str))
            await send(Checkpointed(state))

        return save

    async def _ack(self, entry: str) -> None:
        await until_reachable(remove_entry, self.redis, self.keys.inbox(self.name), entry)


def _current(state: dict[bytes, bytes], dispatch: Dispatch, name: str) -> bool:
    """Whether the job hash still names this attempt on this worker, unfinished."""
    return (text(state.get(b"attempt")) == str(dispatch.attempt) and text(state.get(b"worker")) == name
            and text(state.get(b"done")) != "1")


def _supports(backend: Backend, spec: Any) -> bool:
    try:
        return bool(backend.supports(spec))
    except Exception:
        return False


def _parameters(texts: dict[str, str]) -> Callable[[int | None], str] | None:
    if not texts:
        return None

    def parameters(seed: int | None) -> str:
        return texts.get("" if seed is None else str(seed), texts.get("", ""))

    return parameters


def _plain(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool) or v is None else str(v) for k, v in args.items()}


def _on_disk(backend: Backend, models: list[ModelInfo]) -> list[str]:
    """Models whose weights this machine has (a local folder, or the Hugging Face cache)."""
    registry = getattr(backend, "registry", None)
    if registry is None:
        return []
    from engine.local.pipelines import unavailable_reason

    out = []
    for info in models:
        try:
            # offline: the hub is never asked; None is a folder that exists, or weights in the cache
            present = unavailable_reason(registry.get(info.name).source, offline=True) is None
        except Exception:
            present = False
        if present:
            out.append(info.name)
    return out


def _free_memory(device: str) -> int | None:
    """Free bytes on the worker's GPU (once torch has initialised CUDA), else available RAM."""
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda"):
        try:
            if torch.cuda.is_initialized():
                index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
                return int(torch.cuda.mem_get_info(index)[0])
        except Exception:
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
