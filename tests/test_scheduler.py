"""The queue is fair between users and keeps one lane per backend."""

import asyncio

import pytest

from engine.scheduler import QueueFull, Scheduler


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


async def test_waiting_jobs_hear_their_new_place_when_the_queue_moves():
    rec = Recorder()
    rec.gate.set()
    seen: list[dict[str, int]] = []

    async def moved(positions):
        seen.append(positions)

    sched = Scheduler(rec.run, lanes={"local": 1}, on_queue_moved=moved)
    for job in ("a", "b", "c"):
        await sched.submit(job, job, "local")
    await sched.start()
    await sched.wait_idle()
    await sched.stop()
    assert seen[0] == {"b": 1, "c": 2}
    assert seen[1] == {"c": 1}
