"""A fair in-process job queue: round-robin between users, one lane per backend.

The scheduler only orders job ids and decides when each runs; it calls ``run_job`` and
knows nothing of chats or quotas. Each backend gets its own lane with as many workers
as the backend's ``concurrency`` (a GPU: 1), so a slow vendor never holds up the GPU.
Inside a lane, users take turns: a user with ten queued jobs does not starve a user
with one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class QueueFull(Exception):
    pass


class _Lane:
    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        # user -> that user's queued job ids, in submission order. The OrderedDict's order
        # is the turn order: the user at the front goes next, then moves to the back.
        self.by_user: OrderedDict[str, deque[str]] = OrderedDict()
        self.wakeup = asyncio.Condition()
        self.running: set[str] = set()

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_user.values())

    def order(self) -> list[str]:
        """The order queued jobs will start in, if nothing else arrives."""
        queues = [list(q) for q in self.by_user.values()]
        out: list[str] = []
        depth = 0
        while True:
            layer = [q[depth] for q in queues if depth < len(q)]
            if not layer:
                return out
            out.extend(layer)
            depth += 1

    def pop(self) -> str | None:
        for user, queue in self.by_user.items():
            job = queue.popleft()
            if queue:
                self.by_user.move_to_end(user)
            else:
                del self.by_user[user]
            return job
        return None


class Scheduler:
    def __init__(
        self,
        run_job: Callable[[str], Awaitable[None]],
        *,
        lanes: dict[str, int],
        max_total: int = 100,
        on_queue_moved: Callable[[dict[str, int]], Awaitable[None]] | None = None,
    ) -> None:
        self._run_job = run_job
        self._lanes = {name: _Lane(name, max(1, n)) for name, n in lanes.items()}
        self._max_total = max_total
        self._on_queue_moved = on_queue_moved
        self._tasks: list[asyncio.Task[None]] = []
        self._job_lane: dict[str, str] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        for lane in self._lanes.values():
            for i in range(lane.workers):
                self._tasks.append(asyncio.create_task(self._worker(lane), name=f"lane-{lane.name}-{i}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def max_total(self) -> int:
        return self._max_total

    @property
    def queued(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    async def submit(self, job_id: str, user: str, lane: str, *, force: bool = False) -> int:
        """Queue a job; returns its 1-based position in its lane.

        ``force`` skips the global cap (jobs recovered after a restart were already accepted).
        """
        if lane not in self._lanes:
            raise KeyError(f"no backend lane {lane!r}")
        if not force and self.queued >= self._max_total:
            raise QueueFull()
        target = self._lanes[lane]
        async with target.wakeup:
            target.by_user.setdefault(user, deque()).append(job_id)
            self._job_lane[job_id] = lane
            self._idle.clear()
            target.wakeup.notify()
        return self.position(job_id) or 1

    def position(self, job_id: str) -> int | None:
        """1-based place among the jobs waiting in its lane; None when not waiting."""
        lane = self._job_lane.get(job_id)
        if lane is None:
            return None
        order = self._lanes[lane].order()
        return order.index(job_id) + 1 if job_id in order else None

    def estimate_position(self, user: str, lane: str) -> int:
        """Where a job this user submits now would wait, before it is submitted."""
        target = self._lanes.get(lane)
        if target is None:
            return 1
        mine = len(target.by_user.get(user, ()))
        # Round-robin: everyone with more queued than this user goes once more before it.
        return 1 + sum(min(len(q), mine + 1) for u, q in target.by_user.items() if u != user) + mine

    def is_running(self, job_id: str) -> bool:
        return any(job_id in lane.running for lane in self._lanes.values())

    async def remove(self, job_id: str) -> bool:
        """Take a waiting job out of the queue; False if it is not waiting (running or gone)."""
        lane_name = self._job_lane.get(job_id)
        if lane_name is None:
            return False
        lane = self._lanes[lane_name]
        async with lane.wakeup:
            for user, queue in list(lane.by_user.items()):
                if job_id in queue:
                    queue.remove(job_id)
                    if not queue:
                        del lane.by_user[user]
                    del self._job_lane[job_id]
                    self._check_idle()
                    return True
        return False

    async def wait_idle(self) -> None:
        """Until nothing is queued or running (the console waits here before exiting)."""
        await self._idle.wait()

    def _check_idle(self) -> None:
        if not self._job_lane:
            self._idle.set()

    async def _worker(self, lane: _Lane) -> None:
        while True:
            async with lane.wakeup:
                while not len(lane):
                    await lane.wakeup.wait()
                job_id = lane.pop()
            if job_id is None:
                continue
            lane.running.add(job_id)
            await self._announce(lane)
            try:
                await self._run_job(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # the runner handles its own errors; this is a last guard
                log.exception("job %s crashed its runner", job_id)
            finally:
                lane.running.discard(job_id)
                self._job_lane.pop(job_id, None)
                self._check_idle()

    async def _announce(self, lane: _Lane) -> None:
        if self._on_queue_moved is None:
            return
        positions = {job: i + 1 for i, job in enumerate(lane.order())}
        if positions:
            try:
                await self._on_queue_moved(positions)
            except Exception:
                log.exception("queue position update failed")
