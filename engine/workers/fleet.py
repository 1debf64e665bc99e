"""The bot's view of its workers: who is alive, what each can run, whose slots are free.

Workers announce themselves (``protocol.Announcement``) and keep a key alive with a TTL
on Redis's own clock, so no two machines' clocks are compared. The fleet reads both
every ``refresh_s`` and answers, from memory and without a round trip:

- ``capacity(backend)``: the scheduler lane's slots (live workers' slots for that backend),
  read by the scheduler each time it considers starting a job;
- ``acquire(job, need)``: first come, first served among the jobs the scheduler started,
  the live worker that can run the job with a free slot, preferring one that has the
  model loaded (loading costs seconds to minutes), then one that has it on disk;
- ``lost(worker)``: its key is gone (its TTL ran out on Redis's clock); after the bot
  (re)connects to Redis, every worker first gets two heartbeats to come back, so a Redis
  restart that outlasted the TTLs does not take every job back;
- ``describe()`` for /stats and ``python -m bot workers``.

Slots are counted from the bot's own assignments, not from the workers' reports, which
lag by a heartbeat: the bot never hands a worker more than it announced.

When no live worker can run a backend for ``worker_wait_s``, that backend's lane opens
wide (``DRAIN``): the jobs waiting there start, and each fails at once with a clear
answer and a refund instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from engine.errors import BackendError, JobCancelled
from engine.workers.connect import UNREACHABLE, ignoring_unreachable, not_cancelled
from engine.workers.protocol import Announcement, Keys, Offer, text

log = logging.getLogger(__name__)

DRAIN = 10_000  # a lane's capacity while nobody can run it: let its waiting jobs fail now
FORGET_AFTER_S = 7 * 24 * 3600  # a worker unseen this long leaves /stats (and the hash)


@dataclass(frozen=True)
class Need:
    """What a job asks of a worker."""

    backend: str
    kind: str
    model: str = ""  # "" = the worker's default model for that backend


@dataclass
class _Worker:
    info: Announcement
    up: bool = False  # its key was there at the last refresh


@dataclass
class _Waiter:
    job_id: str
    need: Need
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    worker: str | None = None


class Fleet:
    def __init__(self, redis: Redis, keys: Keys | None = None, *, heartbeat_s: float = 2.0,
                 worker_wait_s: float = 300.0, refresh_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.heartbeat_s = heartbeat_s
        self.worker_wait_s = worker_wait_s
        self.refresh_s = refresh_s if refresh_s is not None else max(0.1, min(1.0, heartbeat_s / 2))
        self._clock = clock
        self._workers: dict[str, _Worker] = {}
        self._assigned: dict[str, tuple[str, str]] = {}  # job -> (worker, group)
        self._waiters: deque[_Waiter] = deque()
        self._backends: set[str] = set()  # backends the bot sends here (RemoteBackends)
        self._none_since: dict[str, float] = {}  # backend -> since when no live worker runs it
        self._reachable = False
        self._refreshed_at = -1e9
        self._grace_until = 0.0  # nobody is lost before this (just (re)connected to Redis)
        self._task: asyncio.Task[None] | None = None
        # The bot's scheduler lanes (waiting, running, capacity), published for `bot workers`.
        self.lanes_source: Callable[[], dict[str, tuple[int, int, int]]] | None = None

    # --- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.refresh()
        except UNREACHABLE as e:
            not_cancelled()
            log.warning("the queue (Redis) is not reachable yet (%s); jobs wait for it", type(e).__name__)
            self._mark_unreachable()
        self._task = asyncio.create_task(self._watch(), name="fleet-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def serve(self, backend: str) -> None:
        """A RemoteBackend of this name sends its jobs through the fleet."""
        self._backends.add(backend)
        self._track_none(self._clock())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
                await self._publish_lanes()
            except UNREACHABLE:
                not_cancelled()
                if self._reachable:
                    log.warning("the queue (Redis) is unreachable; running jobs keep their workers")
                self._mark_unreachable()
            except Exception:
                log.exception("reading the workers failed")

    def _mark_unreachable(self) -> None:
        self._reachable = False

    async def refresh(self) -> None:
        """Read every announcement and which workers are alive now."""
        raw = await self.redis.hgetall(self.keys.workers)  # type: ignore[misc]  # redis-py types sync and async alike
        names = [text(k) for k in raw]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(self.keys.alive(name))
            alive = await pipe.execute()
        now = self._clock()
        self._refreshed_at = now
        if not self._reachable:
            log.info("the queue (Redis) is reachable; %d worker(s) known", len(names))
            self._grace_until = now + 2 * self.heartbeat_s
        self._reachable = True
        seen: dict[str, _Worker] = {}
        forget: list[str] = []
        for name, up in zip(names, alive, strict=True):
            try:
                info = Announcement.loads(raw[name.encode()])
            except (ValueError, KeyError, TypeError):
                log.warning("worker %s announced something unreadable; ignored", name)
                continue
            worker = self._workers.get(name) or _Worker(info)
            worker.info, worker.up = info, bool(up)
            if not worker.up and time.time() - info.seen_at > FORGET_AFTER_S:
                forget.append(name)
                continue
            seen[name] = worker
        self._workers = seen
        if forget:
            await self.redis.hdel(self.keys.workers, *forget)  # type: ignore[misc]
        self._track_none(now)
        self._assign()

    async def ensure_fresh(self) -> None:
        """Refresh now if the view is older than a few periods (the event loop was busy,
        e.g. importing a chat library at start-up), so a question is not answered from it."""
        if self._clock() - self._refreshed_at > 3 * self.refresh_s:
            with ignoring_unreachable():
                await self.refresh()

    def _track_none(self, now: float) -> None:
        for backend in self._backends:
            if any(w.up and backend in w.info.offers for w in self._workers.values()):
                self._none_since.pop(backend, None)
            else:
                self._none_since.setdefault(backend, now)

    async def _publish_lanes(self) -> None:
        if self.lanes_source is None:
            return
        lanes = {name: list(values) for name, values in self.lanes_source().items()}
        await self.redis.set(self.keys.lanes, json.dumps({"at": time.time(), "lanes": lanes}), ex=60)

    # --- questions, answered from memory -----------------------------------------------------

    @property
    def reachable(self) -> bool:
        return self._reachable

    def up(self, worker: str) -> bool:
        w = self._workers.get(worker)
        return w is not None and w.up

    def lost(self, worker: str) -> bool:
        """Given up for dead: no heartbeat within its TTL, seen while Redis was reachable."""
        if not self._reachable or self._clock() < self._grace_until:
            return False
        w = self._workers.get(worker)
        return w is None or not w.up  # never heard of (or forgotten): nobody will run its jobs

    def offers(self, backend: str) -> list[Offer]:
        """What every known worker (live ones first) offers for ``backend``."""
        workers = sorted(self._workers.values(), key=lambda w: not w.up)
        return [w.info.offers[backend] for w in workers if backend in w.info.offers]

    def capacity(self, backend: str) -> int:
        """Slots of the live workers that run ``backend``: the scheduler lane's capacity."""
        total = 0
        for w in self._workers.values():
            offer = w.info.offers.get(backend)
            if w.up and offer is not None:
                total += offer.slots
        if total == 0 and self._waited_out(backend):
            return DRAIN
        return total

    def _waited_out(self, backend: str) -> bool:
        since = self._none_since.get(backend)
        return since is not None and self._clock() - since >= self.worker_wait_s

    def group_of(self, worker: str, backend: str) -> str:
        w = self._workers.get(worker)
        offer = w.info.offers.get(backend) if w is not None else None
        return (offer.group if offer is not None else "") or backend

    # --- handing out slots ---------------------------------------------------------------

    async def acquire(self, job_id: str, need: Need, *, cancelled: Callable[[], bool] = lambda: False) -> str:
        """Wait for a live worker that can run ``need`` with a free slot, take the slot and
        return the worker's name. Jobs are served in the order they asked.

        Raises BackendError("error-no-worker-alive") when no live worker could run the job
        for ``worker_wait_s`` (counted from when the last one went), JobCancelled when
        ``cancelled()`` turns true meanwhile."""
        waiter = _Waiter(job_id, need)
        self._waiters.append(waiter)
        since = self._none_since.get(need.backend)
        served = False
        try:
            while True:
                self._assign()
                if waiter.worker is not None:
                    served = True
                    return waiter.worker
                if cancelled():
                    raise JobCancelled()
                now = self._clock()
                if self._capable(need):
                    since = None
                elif since is None:
                    since = now
                if since is not None and now - since >= self.worker_wait_s:
                    raise BackendError("error-no-worker-alive", backend=need.backend, kind=need.kind,
                                       seconds=int(self.worker_wait_s))
                waiter.ready.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.refresh_s):
                        await waiter.ready.wait()
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if waiter.worker is not None and not served:
                self.release(job_id)  # given a slot, but gone (cancelled) before hearing it

    def attach(self, job_id: str, worker: str, backend: str) -> None:
        """A job already running on ``worker`` (found again after a bot restart) holds a slot."""
        self._assigned[job_id] = (worker, self.group_of(worker, backend))

    def release(self, job_id: str) -> None:
        if self._assigned.pop(job_id, None) is not None:
            self._assign()

    def _capable(self, need: Need) -> bool:
        return any(w.up and self._can_run(w, need) for w in self._workers.values())

    @staticmethod
    def _can_run(worker: _Worker, need: Need) -> bool:
        offer = worker.info.offers.get(need.backend)
        return offer is not None and need.kind in offer.kinds and offer.has_model(need.model)

    def _free(self, worker: _Worker, group: str, slots: int) -> int:
        used = sum(1 for w, g in self._assigned.values() if w == worker.info.name and g == group)
        return slots - used

    def _assign(self) -> None:
        for waiter in list(self._waiters):
            if waiter.worker is None:
                chosen = self._pick(waiter.need)
                if chosen is not None:
                    waiter.worker = chosen
                    self._assigned[waiter.job_id] = (chosen, self.group_of(chosen, waiter.need.backend))
                    waiter.ready.set()

    def _pick(self, need: Need) -> str | None:
        best: tuple[tuple[int, int, int, str], str] | None = None
        for w in self._workers.values():
            if not (w.up and self._can_run(w, need)):
                continue
            offer = w.info.offers[need.backend]
            free = self._free(w, offer.group or need.backend, offer.slots)
            if free <= 0:
                continue
            model = (need.model or offer.default_model).lower()
            loaded = any(m.lower() == model for m in offer.loaded)
            on_disk = any(m.lower() == model for m in offer.on_disk)
            rank = (0 if loaded else 1, 0 if on_disk else 1, -free, w.info.name)
            if best is None or rank < best[0]:
                best = (rank, w.info.name)
        return best[1] if best else None

    # --- for people ------------------------------------------------------------------------

    def waiting(self) -> int:
        return len(self._waiters)

    def describe(self) -> list[dict[str, Any]]:
        """One dict per known worker, live ones first: for /stats and ``bot workers``."""
        now = time.time()
        out = []
        for w in sorted(self._workers.values(), key=lambda w: (not w.up, w.info.name)):
            info = w.info
            loaded = sorted({m for o in info.offers.values() for m in o.loaded})
            mine = sum(1 for name, _ in self._assigned.values() if name == info.name)
            out.append({
                "name": info.name, "up": w.up, "backends": sorted(info.offers), "loaded": loaded,
                "jobs_done": info.jobs_done, "busy": max(info.busy, mine),
                "slots": sum({o.group or o.backend: o.slots for o in info.offers.values()}.values()),
                "last_seen_s": max(0.0, round(now - info.seen_at, 1)), "device": info.device, "host": info.host,
                "free_memory": info.free_memory, "stopped": info.stopped,
            })
        return out
