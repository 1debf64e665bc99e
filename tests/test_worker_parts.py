"""The parts of the worker path in one process, on a real ``redis-server``: which worker a
job goes to, the lane capacity the scheduler reads, the size bounds, and a backend's
checkpoint travelling back to the bot. (The whole deployment, through the real entry
points and with kill -9, is tests/test_workers.py.)"""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from engine.backend import BackendEvent, Finished, ModelInfo, Progress, ResultImage, Work
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import Img2Img, Txt2Img
from engine.workers import connect
from engine.workers.fleet import DRAIN, Fleet, Need
from engine.workers.protocol import Announcement, Keys, Offer, event_fields, read_event
from engine.workers.remote import RemoteBackend
from engine.workers.worker import Worker
from tests.fixtures_models import InMemoryMedia
from tests.redis_server import RedisServer

pytestmark = pytest.mark.asyncio(loop_scope="module")
_prefixes = itertools.count(1)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def redis(redis_server):
    client = connect.client(redis_server.url)
    yield client
    await client.aclose()


def png(side: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (10, 200, 90)).save(buf, format="PNG")
    return buf.getvalue()


class Painter:
    """A small real backend: paints a flat picture in ``spec.steps`` steps."""

    name = "local"
    lane = "device:test"
    concurrency = 1
    default_model = "m1"

    def __init__(self, side: int = 8, step_s: float = 0.005, remember: bool = False) -> None:
        self.side, self.step_s, self.remember = side, step_s, remember
        self.ran: list[str] = []

    def supports(self, spec) -> bool:  # type: ignore[no-untyped-def]
        return spec.kind in ("txt2img", "img2img")

    async def models(self) -> list[ModelInfo]:
        return [ModelInfo("m1", "local"), ModelInfo("m2", "local")]

    async def run(self, work: Work) -> AsyncIterator[BackendEvent]:
        self.ran.append(work.job_id)
        if self.remember:
            await work.remember(task_id="vendor-task-7")
        for step in range(work.spec.steps):
            if work.cancel.cancelled:
                raise JobCancelled()
            await asyncio.sleep(self.step_s)
            yield Progress(step + 1, work.spec.steps)
        yield Finished([ResultImage(png=png(self.side), seed=work.spec.seed)])

    async def close(self) -> None:
        return None


def announce(name: str, *, loaded: tuple[str, ...] = (), on_disk: tuple[str, ...] = (),
             models: tuple[str, ...] = ("m1", "m2"), slots: int = 1) -> Announcement:
    offer = Offer("local", ("txt2img",), tuple(ModelInfo(m, "local") for m in models), "m1", "device:cuda",
                  slots, on_disk, loaded)
    return Announcement(name=name, instance=name, offers={"local": offer}, seen_at=0.0)


async def fleet_of(redis, *workers: Announcement, dead: tuple[str, ...] = (), **options) -> Fleet:  # type: ignore[no-untyped-def]
    keys = Keys(f"t{next(_prefixes)}")
    for a in workers:
        await redis.hset(keys.workers, a.name, a.dumps())
        if a.name not in dead:
            await redis.set(keys.alive(a.name), a.instance, ex=60)
    fleet = Fleet(redis, keys, heartbeat_s=0.1, **options)
    fleet.serve("local")
    await fleet.refresh()
    return fleet


async def test_a_job_goes_to_a_worker_with_its_model_loaded_else_on_disk(redis):
    fleet = await fleet_of(redis, announce("a"), announce("b", on_disk=("m2",)), announce("c", loaded=("m2",)))
    assert await fleet.acquire("j1", Need("local", "txt2img", "m2")) == "c"  # loaded
    assert await fleet.acquire("j2", Need("local", "txt2img", "m2")) == "b"  # c is busy; b has it on disk
    assert await fleet.acquire("j3", Need("local", "txt2img", "m2")) == "a"
    fleet.release("j1")
    assert await fleet.acquire("j4", Need("local", "txt2img", "m2")) == "c"


async def test_a_job_goes_only_to_a_worker_that_can_run_it(redis):
    fleet = await fleet_of(redis, announce("old", models=("m1",)), announce("new", models=("m1", "m3")),
                           announce("gone", models=("m4",)), dead=("gone",), worker_wait_s=0.3)
    assert await fleet.acquire("j1", Need("local", "txt2img", "m3")) == "new"
    with pytest.raises(BackendError) as refused:  # only a dead worker has m4: a bounded wait, then a clear no
        await fleet.acquire("j2", Need("local", "txt2img", "m4"))
    assert refused.value.key == "error-no-worker-alive"


async def test_lane_capacity_is_the_live_workers_slots_and_opens_when_nobody_is_left(redis):
    fleet = await fleet_of(redis, announce("a", slots=2), announce("b"), announce("c"), dead=("c",),
                           worker_wait_s=0.2)
    assert fleet.capacity("local") == 3
    await redis.delete(fleet.keys.alive("a"), fleet.keys.alive("b"))
    await fleet.refresh()
    assert fleet.capacity("local") == 0  # the queue waits for a worker to come back...
    await asyncio.sleep(0.25)
    assert fleet.capacity("local") == DRAIN  # ...for a while; then its jobs fail, refunded


async def test_nothing_is_queued_for_what_no_worker_ever_offered(redis):
    backend = RemoteBackend("local", await fleet_of(redis, announce("a")), InMemoryMedia())
    with pytest.raises(UserFacingError) as no_model:
        backend.check(Txt2Img(prompt="x", model="m9"))
    assert no_model.value.key == "error-no-worker-model"
    nobody = RemoteBackend("tools", await fleet_of(redis, announce("a")), InMemoryMedia())
    with pytest.raises(UserFacingError) as no_worker:
        nobody.check(Txt2Img(prompt="x"))
    assert no_worker.value.key == "error-no-worker"


async def _deployed(redis, painter: Painter, *, worker_bytes: int = 2**20, bot_bytes: int = 2**20):  # type: ignore[no-untyped-def]
    keys = Keys(f"t{next(_prefixes)}")
    worker = Worker(redis, {"local": painter}, name="w", keys=keys, heartbeat_s=0.1, lost_after_s=1.0,
                    max_bytes=worker_bytes, poll_s=0.05)
    task = asyncio.create_task(worker.run())
    fleet = Fleet(redis, keys, heartbeat_s=0.1)
    media = InMemoryMedia()
    remote = RemoteBackend("local", fleet, media, max_bytes=bot_bytes)
    await fleet.start()
    for _ in range(100):
        await fleet.refresh()
        if fleet.capacity("local"):
            break
        await asyncio.sleep(0.02)
    return task, fleet, remote, media


async def _run(remote: RemoteBackend, work: Work) -> list[BackendEvent]:
    return [event async for event in remote.run(work)]


async def _stop(task: asyncio.Task, fleet: Fleet) -> None:  # type: ignore[type-arg]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fleet.close()


async def test_results_above_the_bound_fail_clearly_and_inputs_above_it_are_never_sent(redis):
    painter = Painter(side=256)
    task, fleet, remote, media = await _deployed(redis, painter, worker_bytes=500, bot_bytes=500)
    try:
        with pytest.raises(BackendError) as big_result:
            await _run(remote, Work("j1", Txt2Img(prompt="x", steps=2), media))
        assert big_result.value.key == "error-queue-too-large"
        key = media.put(png(256))
        with pytest.raises(BackendError) as big_input:
            await _run(remote, Work("j2", Img2Img(prompt="x", steps=2, init_image=key), media))
        assert big_input.value.key == "error-queue-too-large"
        assert painter.ran == ["j1"]
    finally:
        await _stop(task, fleet)


async def test_a_backends_checkpoint_comes_back_to_the_bots_record(redis):
    saved: list[dict] = []  # type: ignore[type-arg]

    async def save(state: dict) -> None:  # type: ignore[type-arg]
        saved.append(state)

    task, fleet, remote, media = await _deployed(redis, Painter(remember=True))
    try:
        work = Work("j1", Txt2Img(prompt="x", steps=3, seed=5), media, save_checkpoint=save)
        events = await _run(remote, work)
        assert [e.step for e in events if isinstance(e, Progress)][-1] == 3
        assert isinstance(events[-1], Finished) and events[-1].images[0].seed == 5
        assert saved[-1]["backend"] == {"task_id": "vendor-task-7"}  # a vendor's task id, kept in SQLite
        assert saved[-1]["remote"]["worker"] == "w" and saved[-1]["remote"]["attempt"] == 1
    finally:
        await _stop(task, fleet)


async def test_events_keep_their_bytes_and_their_attempt():
    image = ResultImage(png=b"\x89PNG\x00\xff", seed=None, withheld_reason="withheld-nsfw")
    fields = event_fields(3, "w", Finished([image]))
    envelope = read_event({k.encode(): v.encode() if isinstance(v, str) else v for k, v in fields.items()})
    assert (envelope.attempt, envelope.worker, envelope.event) == (3, "w", Finished([image]))


async def test_the_queue_url_password_never_reaches_a_log(caplog):
    import logging

    from bot.logs import redact_in_logs

    url = "redis://:s3cr%2Ft-pw@10.0.0.5:6379/2"
    redact_in_logs(*connect.url_secrets(url))
    logging.getLogger("test").warning("cannot reach %s (password s3cr/t-pw)", url)
    assert "s3cr" not in caplog.text
    assert connect.safe_url(url) == "redis 10.0.0.5:6379/2 (with a password)"


async def test_vendor_jobs_stay_in_the_bot_unless_sent_to_the_workers_too(redis, redis_server, tmp_path):
    from bot.settings import Settings
    from bot.wiring import build_runtime
    from engine.vendors.paint4 import Paint4Backend

    common = dict(_env_file=None, queue_url=redis_server.url, paint4_base_url="http://127.0.0.1:9")
    here = await build_runtime(Settings(data_dir=tmp_path / "a", **common))
    try:
        assert isinstance(here.backends["paint4"], Paint4Backend)
        assert isinstance(here.backends["local"], RemoteBackend) and here.fleet is not None
        assert set(here.scheduler.lanes()) == {"remote:local", "remote:tools", "paint4"}
    finally:
        await here.stop()
    sent = await build_runtime(Settings(data_dir=tmp_path / "b", queue_vendors=True, **common))
    try:
        assert all(isinstance(b, RemoteBackend) for b in sent.backends.values())
        assert "remote:paint4" in sent.scheduler.lanes()
    finally:
        await sent.stop()


async def test_a_vendor_backend_runs_on_a_worker(redis):
    from engine.vendors.paint4 import Paint4Backend
    from tests.vendor_fakes.paint4 import FakePaint4

    async with FakePaint4() as vendor:
        keys = Keys(f"t{next(_prefixes)}")
        paint4 = Paint4Backend(vendor.base_url, retries=1, backoff_base_s=0.001, timeout_s=5)
        worker = Worker(redis, {"paint4": paint4}, name="v", keys=keys, heartbeat_s=0.1)
        task = asyncio.create_task(worker.run())
        fleet = Fleet(redis, keys, heartbeat_s=0.1)
        remote = RemoteBackend("paint4", fleet, InMemoryMedia())
        await fleet.start()
        try:
            while not fleet.capacity("paint4"):
                await asyncio.sleep(0.02)
            assert fleet.capacity("paint4") == 4  # the vendor's own concurrency, on that worker
            events = await _run(remote, Work("j1", Txt2Img(prompt="a dog", n=2), InMemoryMedia()))
            assert len(events[-1].images) == 2 and vendor.violations == []
        finally:
            await _stop(task, fleet)
            await paint4.close()


async def test_a_task_waiting_on_redis_can_always_be_cancelled(redis):
    """A worker, a job's follower and the bot itself stop by cancellation: the client must
    never swallow one (redis-py 8, or a socket_timeout on Python 3.11, does now and then)."""
    outcomes = []
    for k in range(60):
        async def poll() -> str:
            for _ in range(10_000):
                await redis.hgetall("nothing")
            return "never cancelled"

        task = asyncio.create_task(poll())
        await asyncio.sleep(0.0002 * (k % 20))
        task.cancel()
        try:
            outcomes.append(await asyncio.wait_for(task, 10))
        except asyncio.CancelledError:
            outcomes.append("cancelled")
    assert set(outcomes) == {"cancelled"}


class SlowCatalogue(Painter):
    """Lists its models at once at start-up; then every later listing hangs until released."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.release = asyncio.Event()

    async def models(self) -> list[ModelInfo]:
        self.listings += 1
        if self.listings == 1:
            return await super().models()
        await self.release.wait()
        return [ModelInfo("m3", "local")]


async def test_a_slow_catalogue_never_stops_the_heartbeats(redis, monkeypatch):
    from engine.workers import worker as worker_module

    monkeypatch.setattr(worker_module, "OFFERS_EVERY_S", 0.0)  # ask for the offers again at every beat
    keys = Keys(f"t{next(_prefixes)}")
    backend = SlowCatalogue()
    worker = Worker(redis, {"local": backend}, name="w", keys=keys, heartbeat_s=0.05, lost_after_s=0.5)
    task = asyncio.create_task(worker.run())

    async def offered() -> list[str]:
        seen = Announcement.loads(await redis.hget(keys.workers, "w"))
        return [m.name for m in seen.offers["local"].models]

    try:
        async with asyncio.timeout(5):
            while backend.listings < 2:  # the second listing hangs from here on
                await asyncio.sleep(0.01)
        for _ in range(12):  # more than twice the time after which the bot calls a worker lost
            await asyncio.sleep(0.1)
            assert await redis.get(keys.alive("w")) is not None
        assert await offered() == ["m1", "m2"]  # beats go on with the last offers
        assert backend.listings == 2  # one listing at a time, not one more per beat
        backend.release.set()
        async with asyncio.timeout(5):
            while await offered() != ["m3"]:
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
