"""A fair in-process job queue: round-robin between users, one lane per device or vendor.

The scheduler only orders job ids and decides when each runs; it calls ``run_job`` and
knows nothing of chats or quotas. A lane is what runs jobs side by side: one per GPU (the
diffusion and the tool backends on that device share it, so an upscale never runs on the
GPU at the same moment as a diffusion job) and one per vendor, with as many slots as the
vendor allows at once. Inside a lane, users take turns: a user with ten queued jobs does
not starve a user with one.

A lane slot is held only for the compute part of a job: ``run_job`` returns as soon as the
results are stored, and delivery to the chat happens elsewhere (handlers/outbox.py), so the
GPU never waits for a chat's flood limit.

``admit`` checks the global cap and queues the job in one synchronous step (no await in
between), so the position it returns is the job's real place, also when many arrive at once.
Waiting jobs hear about their new place from a background announcer at a bounded rate, never
from the path that starts a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

Capacity = int | Callable[[], int]


class QueueFull(Exception):
    pass


class _Lane:
    def __init__(self, name: str, capacity: Capacity) -> None:
        self.name = name
        self._capacity = capacity
        # user -> that user's queued job ids, in submission order. The OrderedDict's order
        # is the turn order: the user at the front goes next, then moves to the back.
        self.by_user: OrderedDict[str, deque[str]] = OrderedDict()
        self.size = 0
        self.running: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()  # a job arrived or a slot came free
        self.version = 0  # bumped whenever the waiting order changes

    @property
    def capacity(self) -> int:
        value = self._capacity() if callable(self._capacity) else self._capacity
        return max(0, value)

    def order(self, limit: int | None = None) -> list[str]:
        """The order queued jobs will start in, if nothing else arrives."""
        queues = [list(q) for q in self.by_user.values()]
        out: list[str] = []
        depth = 0
        while limit is None or len(out) < limit:
            layer = [q[depth] for q in queues if depth < len(q)]
            if not layer:
                break
            out.extend(layer)
            depth += 1
        return out if limit is None else out[:limit]

    def place_of_new(self, user: str) -> int:
        """Where a job this user adds now will wait (1-based)."""
        mine = len(self.by_user.get(user, ()))
        # Round-robin: everyone else goes as many times as this user's queue is deep, plus once.
        return 1 + mine + sum(min(len(q), mine + 1) for u, q in self.by_user.items() if u != user)

    def add(self, user: str, job_id: str) -> None:
        self.by_user.setdefault(user, deque()).append(job_id)
        self.size += 1
        self.version += 1
        self.changed.set()

    def pop(self) -> str | None:
        for user, queue in self.by_user.items():
            job = queue.popleft()
            if queue:
                self.by_user.move_to_end(user)
            else:
                del self.by_user[user]
            self.size -= 1
            self.version += 1
            return job
        return None

    def discard(self, job_id: str) -> bool:
        for user, queue in list(self.by_user.items()):
            if job_id in queue:
                queue.remove(job_id)
                if not queue:
                    del self.by_user[user]
                self.size -= 1
                self.version += 1
                return True
        return False


class Scheduler:
    def __init__(
        self,
        run_job: Callable[[str], Awaitable[None]],
        *,
        lanes: Mapping[str, Capacity],
        routes: Mapping[str, str] | None = None,
        max_total: int = 100,
        on_queue_moved: Callable[[dict[str, int]], Awaitable[None]] | None = None,
        announce_interval_s: float = 3.0,
        announce_limit: int = 50,
    ) -> None:
        """``lanes``: lane name -> how many of its jobs run at once (a number, or a callable
        read each time a slot is considered, for capacity that changes, e.g. live workers).
        ``routes``: backend name -> its lane (a backend without a route has a lane of its own
        name). ``on_queue_moved`` hears, at most every ``announce_interval_s``, the new places
        of up to ``announce_limit`` waiting jobs per lane whose place changed."""
        self._run_job = run_job
        self._lanes = {name: _Lane(name, capacity) for name, capacity in lanes.items()}
        self._routes = dict(routes or {})
        self._max_total = max_total
        self._on_queue_moved = on_queue_moved
        self._announce_interval_s = announce_interval_s
        self._announce_limit = announce_limit
        self._told: dict[str, int] = {}  # job -> the place it was last told
        self._tasks: list[asyncio.Task[None]] = []
        self._job_lane: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        for lane in self._lanes.values():
            self._tasks.append(asyncio.create_task(self._dispatch(lane), name=f"lane-{lane.name}"))
        if self._on_queue_moved is not None:
            self._tasks.append(asyncio.create_task(self._announcer(), name="queue-announcer"))

    async def stop(self) -> None:
        running = [t for lane in self._lanes.values() for t in lane.tasks]
        for task in self._tasks + running:
            task.cancel()
        await asyncio.gather(*self._tasks, *running, return_exceptions=True)
        self._tasks.clear()

    @property
    def max_total(self) -> int:
        return self._max_total

    @property
    def queued(self) -> int:
        return sum(lane.size for lane in self._lanes.values())

    def lane_of(self, backend: str) -> str:
        return self._routes.get(backend, backend)

    def lanes(self) -> dict[str, tuple[int, int, int]]:
        """Lane -> (waiting, running, capacity), for /stats."""
        return {name: (lane.size, len(lane.running), lane.capacity) for name, lane in self._lanes.items()}

    def admit(self, job_id: str, user: str, backend: str, *, force: bool = False) -> int:
        """Queue a job and return its real 1-based place in its lane; raises QueueFull at the
        global cap. ``force`` skips the cap (jobs recovered after a restart were accepted)."""
        lane_name = self.lane_of(backend)
        lane = self._lanes.get(lane_name)
        if lane is None:
            raise KeyError(f"no lane for backend {backend!r}")
        if job_id in self._job_lane:
            return self.position(job_id) or 1
        if not force and self.queued >= self._max_total:
            raise QueueFull()
        place = lane.place_of_new(user)
        lane.add(user, job_id)
        self._job_lane[job_id] = lane_name
        self._told[job_id] = place
        self._idle.clear()
        return place

    async def submit(self, job_id: str, user: str, backend: str, *, force: bool = False) -> int:
        return self.admit(job_id, user, backend, force=force)

    def position(self, job_id: str) -> int | None:
        """1-based place among the jobs waiting in its lane; None when not waiting."""
        lane = self._job_lane.get(job_id)
        if lane is None:
            return None
        order = self._lanes[lane].order()
        return order.index(job_id) + 1 if job_id in order else None

    def is_running(self, job_id: str) -> bool:
        return any(job_id in lane.running for lane in self._lanes.values())

    async def remove(self, job_id: str) -> bool:
        """Take a waiting job out of the queue; False if it is not waiting (running or gone)."""
        lane_name = self._job_lane.get(job_id)
        if lane_name is None or not self._lanes[lane_name].discard(job_id):
            return False
        del self._job_lane[job_id]
        self._told.pop(job_id, None)
        self._check_idle()
        return True

    async def wait_idle(self) -> None:
        """Until nothing is queued or running."""
        await self._idle.wait()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def _check_idle(self) -> None:
        if not self._job_lane:
            self._idle.set()

    # --- running ---------------------------------------------------------------------

    async def _dispatch(self, lane: _Lane) -> None:
        """Start the lane's next job whenever it has a waiting job and a free slot."""
        while True:
            while not (lane.size and len(lane.running) < lane.capacity):
                lane.changed.clear()
                # Capacity given by a callable may grow without telling: look again now and then.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await lane.changed.wait()
            job_id = lane.pop()
            if job_id is None:
                continue
            self._told.pop(job_id, None)
            lane.running.add(job_id)
            task = asyncio.create_task(self._run(lane, job_id), name=f"job-{job_id}")
            lane.tasks.add(task)
            task.add_done_callback(lane.tasks.discard)

    async def _run(self, lane: _Lane, job_id: str) -> None:
        try:
            await self._run_job(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # the runner handles its own errors; this is a last guard
            log.exception("job %s crashed its runner", job_id)
        finally:
            lane.running.discard(job_id)
            self._job_lane.pop(job_id, None)
            lane.changed.set()
            self._check_idle()

    # --- telling waiting jobs their place -------------------------------------------------

    async def _announcer(self) -> None:
        assert self._on_queue_moved is not None
        seen: dict[str, int] = {}
        while True:
            await asyncio.sleep(self._announce_interval_s)
            moved: dict[str, int] = {}
            for lane in self._lanes.values():
                if seen.get(lane.name) == lane.version:
                    continue
                seen[lane.name] = lane.version
                for place, job_id in enumerate(lane.order(limit=self._announce_limit), start=1):
                    if self._told.get(job_id) != place:
                        self._told[job_id] = place
                        moved[job_id] = place
            if moved:
                try:
                    await self._on_queue_moved(moved)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("queue position update failed")
