"""The queue is fair between users, keeps one lane per device or vendor, admits atomically,
and tells waiting jobs their place at a bounded rate."""

import asyncio

import pytest

from engine.scheduler import QueueFull, Scheduler
from tests.waiting import until


class Recorder:
    def __init__(self):
        self.order: list[str] = []
        self.gate = asyncio.Event()

    async def run(self, job_id: str) -> None:
        self.order.append(job_id)
        await self.gate.wait()


async def test_users_take_turns_instead_of_first_come_first_served():
    rec = Recorder()
    rec.gate.set()
    sched = Scheduler(rec.run, lanes={"local": 1})
    for i in range(3):
        await sched.submit(f"ann{i}", "ann", "local")
    await sched.submit("bob0", "bob", "local")
    await sched.submit("cat0", "cat", "local")
    assert [sched.position(j) for j in ("ann0", "bob0", "cat0", "ann1", "ann2")] == [1, 2, 3, 4, 5]
    await sched.start()
    await sched.wait_idle()
    await sched.stop()
    assert rec.order == ["ann0", "bob0", "cat0", "ann1", "ann2"]


async def test_a_slow_vendor_lane_does_not_hold_up_the_gpu_lane():
    started: list[str] = []
    vendor_gate = asyncio.Event()

    async def run(job_id):
        started.append(job_id)
        if job_id.startswith("v"):
            await vendor_gate.wait()

    sched = Scheduler(run, lanes={"local": 1, "vendor": 1})
    await sched.start()
    await sched.submit("v1", "ann", "vendor")
    await sched.submit("l1", "ann", "local")
    await sched.submit("l2", "bob", "local")
    for _ in range(50):
        if {"l1", "l2"} <= set(started):
            break
        await asyncio.sleep(0.01)
    assert {"v1", "l1", "l2"} <= set(started)
    vendor_gate.set()
    await sched.wait_idle()
    await sched.stop()


async def test_waiting_jobs_can_be_removed_and_running_ones_cannot():
    rec = Recorder()
    sched = Scheduler(rec.run, lanes={"local": 1})
    await sched.start()
    await sched.submit("a", "ann", "local")
    await sched.submit("b", "ann", "local")
    while "a" not in rec.order:
        await asyncio.sleep(0.001)
    assert sched.is_running("a")
    assert await sched.remove("a") is False
    assert await sched.remove("b") is True
    assert sched.position("b") is None
    rec.gate.set()
    await sched.wait_idle()
    await sched.stop()
    assert rec.order == ["a"]


async def test_the_global_cap_refuses_new_jobs_but_not_recovered_ones():
    sched = Scheduler(Recorder().run, lanes={"local": 1}, max_total=1)
    await sched.submit("a", "ann", "local")
    with pytest.raises(QueueFull):
        await sched.submit("b", "bob", "local")
    assert await sched.submit("c", "cat", "local", force=True) == 2


async def test_waiting_jobs_hear_their_new_place_from_the_announcer_not_from_job_starts():
    gates: dict[str, asyncio.Event] = {j: asyncio.Event() for j in "abc"}
    started: list[str] = []

    async def run(job_id):
        started.append(job_id)
        await gates[job_id].wait()

    seen: list[dict[str, int]] = []
    slow_listener = asyncio.Event()

    async def moved(positions):
        seen.append(positions)
        await slow_listener.wait()  # a listener that takes forever holds up nothing

    sched = Scheduler(run, lanes={"local": 1}, on_queue_moved=moved, announce_interval_s=0.02)
    for job in "abc":
        assert sched.admit(job, job, "local") == "abc".index(job) + 1
    await sched.start()
    await until(lambda: seen, every=0.005)
    assert seen[0] == {"b": 1, "c": 2}  # a left the queue; each was told its new place once
    gates["a"].set()
    await until(lambda: "b" in started, every=0.005)  # b starts although the listener is still busy
    slow_listener.set()
    await until(lambda: len(seen) >= 2, every=0.005)
    assert seen[1] == {"c": 1}
    gates["b"].set(), gates["c"].set()
    await sched.wait_idle()
    await sched.stop()


async def test_announcements_are_bounded_however_long_the_queue():
    gate = asyncio.Event()

    async def run(job_id):
        await gate.wait()

    seen: list[dict[str, int]] = []

    async def moved(positions):
        seen.append(positions)

    sched = Scheduler(run, lanes={"local": 1}, max_total=1000, on_queue_moved=moved,
                      announce_interval_s=0.05, announce_limit=20)
    for i in range(500):
        sched.admit(f"j{i}", f"u{i}", "local")
    await sched.start()
    await asyncio.sleep(0.3)
    assert seen and all(len(batch) <= 20 for batch in seen)
    assert len(seen) <= 2  # nothing moved after the first job started: nothing more to say
    gate.set()
    await sched.wait_idle()
    await sched.stop()


async def test_backends_on_one_device_take_turns_in_one_lane():
    running: set[str] = set()
    overlap = []

    async def run(job_id):
        running.add(job_id)
        overlap.append(len(running))
        await asyncio.sleep(0.02)
        running.discard(job_id)

    sched = Scheduler(run, lanes={"device:cuda:0": 1}, routes={"local": "device:cuda:0", "tools": "device:cuda:0"})
    sched.admit("diffusion", "ann", "local")
    sched.admit("upscale", "bob", "tools")
    await sched.start()
    await sched.wait_idle()
    await sched.stop()
    assert max(overlap) == 1  # an upscale never shares the GPU with a diffusion job


async def test_admission_at_the_cap_is_atomic_and_every_place_is_real():
    sched = Scheduler(Recorder().run, lanes={"vendor": 1}, max_total=50)

    async def arrive(i):
        await asyncio.sleep(0)
        try:
            return sched.admit(f"j{i}", f"user{i}", "vendor")
        except QueueFull:
            return None

    places = await asyncio.gather(*(arrive(i) for i in range(200)))
    accepted = [p for p in places if p is not None]
    assert len(accepted) == 50 and sorted(accepted) == list(range(1, 51))


async def test_a_lane_with_capacity_from_a_callable_grows_when_it_grows():
    capacity = 0
    started: list[str] = []

    async def run(job_id):
        started.append(job_id)

    sched = Scheduler(run, lanes={"remote": lambda: capacity})
    sched.admit("a", "ann", "remote")
    await sched.start()
    await asyncio.sleep(0.05)
    assert started == []  # no worker yet: the job waits
    capacity = 1
    await sched.wait_idle()
    await sched.stop()
    assert started == ["a"]
