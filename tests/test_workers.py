"""GPU workers on Redis, through the real entry points: a real ``redis-server``, the bot as
``python -m bot run`` on Telegram (a fake Bot API on 127.0.0.1, several users) and two
``python -m bot worker`` processes with the demo model, each with its own data folder (no
shared files with the bot). Then the operator's bad day: a worker frozen and one killed
in the middle of a job, the bot killed, Redis killed, a cancel, and a job nobody can run;
read back from the ledger each time: nothing lost, nothing charged twice, the order fair.

The processes are shared by the tests of this module, in the order written here (a torch
import costs seconds per process).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from engine.workers import connect
from tests.fake_telegram import FakeTelegram
from tests.images import png
from tests.processes import ROOT, bot_command, bot_env, kill_process, stop_process
from tests.redis_server import RedisServer
from tests.waiting import until

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANN, BOB, CAT, DAN = (FakeTelegram.user(i, n) for i, n in ((101, "Ann"), (102, "Bob"), (103, "Cat"), (104, "Dan")))
ADMIN = FakeTelegram.user(900, "Root")
# A job of about a second on one CPU thread with the demo model, and a long one (4 s).
SHORT = "--size 256x256 --steps 30"
LONG = "--size 256x256 --steps 100"


class Proc:
    """A process of the deployment, its log in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log_path = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(bot_command(*self.args), cwd=ROOT, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        kill_process(self.proc, timeout=20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
        stop_process(self.proc, timeout=20)


class Deployment:
    """Redis, the fake Telegram, the bot and the workers, as an operator would run them."""

    def __init__(self, root: Path, model_dir: Path, fake: FakeTelegram, redis: RedisServer) -> None:
        self.root, self.model_dir, self.fake, self.redis = root, model_dir, fake, redis
        self.bot_data = root / "bot"
        self.workers: dict[str, Proc] = {}
        self.bot: Proc | None = None
        self.client = connect.client(redis.url)  # the bot's own client: it waits out a Redis restart

    def env(self, data: Path, **extra: str) -> dict[str, str]:
        return bot_env(data, PYTHONUNBUFFERED="1", IMAGEBOT_QUEUE_URL=self.redis.url,
                       IMAGEBOT_WORKER_HEARTBEAT_S="0.3", IMAGEBOT_WORKER_LOST_AFTER_S="1.5",
                       IMAGEBOT_WORKER_WAIT_S="3", IMAGEBOT_LOG_LEVEL="INFO", IMAGEBOT_MAX_QUEUED_PER_USER="10",
                       IMAGEBOT_ADMINS="telegram:900", OMP_NUM_THREADS="1", **extra)

    def start_worker(self, name: str) -> Proc:
        data = self.root / name
        (data / "models").mkdir(parents=True, exist_ok=True)
        if not (data / "models" / "demo").exists():
            os.symlink(self.model_dir, data / "models" / "demo", target_is_directory=True)
        worker = Proc(name, ["worker", "--name", name, "--backends", "local", "--device", "cpu", "--threads", "1"],
                      self.env(data), self.root / f"{name}.log").start()
        self.workers[name] = worker
        return worker

    async def start_bot(self) -> None:
        calls = self.fake.count("getUpdates")
        env = self.env(self.bot_data, IMAGEBOT_TELEGRAM_TOKEN=self.fake.token,
                       IMAGEBOT_TELEGRAM_API_BASE=self.fake.base_url, IMAGEBOT_PLATFORMS="telegram")
        self.bot = Proc("bot", ["run"], env, self.root / "bot.log").start()
        # Polled: the fake tells of a call when it ends, and the first long poll ends late.
        await until(lambda: self.fake.count("getUpdates") > calls, 60, what="the bot polling Telegram")

    async def workers_up(self, *names: str, timeout: float = 90) -> None:
        """Until the workers heart-beat and the bot counts their slots (it publishes its lanes)."""
        async def up() -> bool:
            if not all([await self.client.exists(f"imagebot:alive:{n}") for n in names]):
                return False
            lanes = await self.client.get("imagebot:lanes")
            return bool(lanes) and json.loads(lanes)["lanes"].get("remote:local", [0, 0, 0])[2] >= len(names)

        await until(up, timeout, what=f"workers {names} up")

    # --- what users do and see ----------------------------------------------------------

    async def imagine(self, user: dict[str, Any], prompt: str) -> str:
        """Send /imagine and return the job id once it is admitted (its "Queued" message may
        wait for the chat's flood limit; the job is in the queue before it)."""
        await self.fake.say(user["id"], user, f"/imagine {prompt}")
        text = prompt.split(" --")[0]
        job = await until(lambda: self.find_job(text), 30, what=f"job {text!r} admitted")
        return str(job["id"])

    def results(self, user: dict[str, Any], prompt: str) -> list[Any]:
        return [m for m in self.fake.seen(user["id"]) if m.kind in ("photo", "document") and prompt in m.text]

    async def delivered(self, user: dict[str, Any], prompt: str, timeout: float = 60) -> None:
        """Until the result is in the chat and the job settled (charged) in the database."""
        await self.fake.wait_until(lambda: self.results(user, prompt), timeout)
        await until(lambda: self.job(prompt)["state"] == "done", 10, what=f"{prompt!r} settled")

    def said(self, user: dict[str, Any]) -> list[str]:
        """Every text the bot sent or edited into this user's chat, in order."""
        out = []
        for _method, params in self.fake.calls:
            if str(params.get("chat_id")) != str(user["id"]):
                continue
            media = params.get("media")
            out.append(str(params.get("text") or params.get("caption")
                           or (media.get("caption") if isinstance(media, dict) else "") or ""))
        return out

    # --- what the records say -----------------------------------------------------------

    def find_job(self, prompt: str) -> dict[str, Any] | None:
        path = self.bot_data / "imagebot.sqlite3"
        if not path.exists():
            return None
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT id, state, spec, checkpoint, created_at FROM jobs")]
        found = [r for r in rows if json.loads(r["spec"]).get("prompt") == prompt]
        assert len(found) <= 1, f"two jobs named {prompt!r}"
        return {**found[0], "checkpoint": json.loads(found[0]["checkpoint"])} if found else None

    def job(self, prompt: str) -> dict[str, Any]:
        found = self.find_job(prompt)
        assert found is not None, f"no job {prompt!r}"
        return found

    async def ledger(self, job_id: str) -> list[tuple[str, int]]:
        run = await asyncio.to_thread(subprocess.run, bot_command("ledger", "--job", job_id),
                                      cwd=ROOT, env=self.env(self.bot_data), capture_output=True, text=True,
                                      timeout=60)
        assert run.returncode == 0, run.stderr
        return [(e["entry"], e["amount"]) for e in map(json.loads, run.stdout.splitlines())]

    async def events(self, job_id: str) -> list[dict[str, str]]:
        out = []
        for entry, fields in await self.client.xrange(f"imagebot:events:{job_id}"):
            out.append({"id": entry.decode(), **{k.decode(): v.decode(errors="replace") for k, v in fields.items()
                                                 if k != b"preview" and not k.startswith(b"png")}})
        return out

    async def running_on(self, job_id: str, timeout: float = 30) -> str:
        """The worker that reported progress on the job's current attempt."""
        async def progress() -> str | None:
            job = await self.client.hgetall(f"imagebot:job:{job_id}")
            attempt = job.get(b"attempt", b"").decode()
            seen = [e for e in await self.events(job_id) if e["type"] == "progress" and e["attempt"] == attempt]
            return seen[-1]["worker"] if seen else None

        return await until(progress, timeout, what=f"progress of {job_id}")

    async def close(self) -> None:
        for proc in [*self.workers.values(), *([self.bot] if self.bot else [])]:
            proc.stop()
        await self.client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployment(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("workers")
    redis = RedisServer(root / "redis").start()
    fake = await FakeTelegram().start()
    d = Deployment(root, tiny_model_dir, fake, redis)
    try:
        d.start_worker("gpu-a")
        d.start_worker("gpu-b")
        await d.start_bot()
        await d.workers_up("gpu-a", "gpu-b")
        yield d
    finally:
        await d.close()
        await fake.close()
        redis.stop()
        for name in ("bot", "gpu-a", "gpu-b"):  # for a failing test's reader
            path = root / f"{name}.log"
            if path.exists():
                print(f"--- {name}.log ---\n{path.read_text(errors='replace')[-4000:]}")


async def test_two_workers_share_a_burst_in_a_fair_order(deployment):
    d = deployment
    for k in range(1, 5):  # Ann queues four jobs at once, then Bob and Cat one each
        await d.imagine(ANN, f"ann {k} {SHORT} --seed {k}")
    await d.imagine(BOB, f"bob 1 {SHORT}")
    await d.imagine(CAT, f"cat 1 {SHORT}")
    prompts = [(ANN, f"ann {k}") for k in range(1, 5)] + [(BOB, "bob 1"), (CAT, "cat 1")]
    for user, prompt in prompts:
        await d.delivered(user, prompt)
    started = {}
    for _, prompt in prompts:
        job = d.job(prompt)
        first = next(e for e in await d.events(job["id"]) if e["type"] == "started")
        started[prompt] = (first["id"], first["worker"])  # stream ids: Redis's one clock
    order = [p for p, _ in sorted(started.items(), key=lambda kv: tuple(map(int, kv[1][0].split("-"))))]
    # Two at a time: Ann's first two found both workers idle; then the waiting users take
    # turns (Ann, who was waiting first, Bob, Cat, Ann again): Bob and Cat do not wait for
    # all of Ann's jobs.
    assert set(order[:2]) == {"ann 1", "ann 2"}
    assert set(order[2:4]) == {"ann 3", "bob 1"}
    assert set(order[4:]) == {"cat 1", "ann 4"}
    assert {worker for _, worker in started.values()} == {"gpu-a", "gpu-b"}
    for _, prompt in prompts:
        job = d.job(prompt)
        assert job["state"] == "done"
        assert await d.ledger(job["id"]) == [("reserve", -1), ("commit", 1)]


async def test_admins_and_operators_see_the_workers(deployment):
    d = deployment
    await d.fake.say(ADMIN["id"], ADMIN, "/stats")
    await d.fake.wait_until(lambda: any("gpu-b" in m.text for m in d.fake.seen(ADMIN["id"])))
    stats = d.fake.seen(ADMIN["id"])[-1].text
    assert "gpu-a (up): local · loaded demo" in stats and "lane remote:local" in stats
    shown = await asyncio.to_thread(subprocess.run, bot_command("workers"), cwd=ROOT,
                                    env=d.env(d.bot_data), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "gpu-a" in shown.stdout and "gpu-b" in shown.stdout and "remote:local" in shown.stdout
    assert d.redis.url not in shown.stdout + shown.stderr + d.bot.log()


async def test_cancel_reaches_the_worker_and_stops_the_job(deployment):
    d = deployment
    job_id = await d.imagine(DAN, f"to cancel {LONG}")
    await d.running_on(job_id)
    await d.fake.say(DAN["id"], DAN, "/cancel")
    await d.fake.wait_until(lambda: d.job("to cancel")["state"] == "cancelled" and any(
        "Cancelled" in t for t in d.said(DAN)))
    events = await d.events(job_id)
    assert events[-1]["type"] == "cancelled"  # the worker stopped it and said so
    steps = [int(e["step"]) for e in events if e["type"] == "progress"]
    assert max(steps) < 100
    assert await d.ledger(job_id) == [("reserve", -1), ("refund", 1)]


async def test_a_frozen_worker_is_given_up_and_cannot_deliver_a_stale_duplicate(deployment):
    d = deployment
    job_id = await d.imagine(ANN, f"frozen {LONG}")
    frozen = await d.running_on(job_id)
    d.workers[frozen].signal(signal.SIGSTOP)  # the machine is cut off: no heartbeat, no events
    try:
        await d.delivered(ANN, "frozen", timeout=60)
    finally:
        d.workers[frozen].signal(signal.SIGCONT)  # it comes back, still holding attempt 1
    assert any("retrying on another GPU" in t for t in d.said(ANN))
    await d.workers_up(frozen)
    await asyncio.sleep(1.5)  # time for a stale result to arrive, if it were to
    assert len(d.results(ANN, "frozen")) == 1
    job = d.job("frozen")
    assert job["state"] == "done" and job["checkpoint"]["remote"]["attempt"] == 2
    assert job["checkpoint"]["remote"]["worker"] != frozen
    assert not [e for e in await d.events(job_id) if e["attempt"] == "1" and e["type"] == "finished"]
    assert await d.ledger(job_id) == [("reserve", -1), ("commit", 1)]


async def test_a_worker_killed_mid_job_the_other_finishes_it_charged_once(deployment):
    d = deployment
    job_id = await d.imagine(BOB, f"killed worker {LONG}")
    victim = await d.running_on(job_id)
    d.workers[victim].kill()
    await d.delivered(BOB, "killed worker", timeout=60)
    job = d.job("killed worker")
    assert job["state"] == "done" and job["checkpoint"]["remote"]["attempt"] == 2
    assert await d.ledger(job_id) == [("reserve", -1), ("commit", 1)]
    assert len(d.results(BOB, "killed worker")) == 1
    d.start_worker(victim)  # back under its name: nothing of the old attempt is pending for it


async def test_the_bot_killed_mid_job_is_restarted_and_delivers_once(deployment):
    d = deployment
    job_id = await d.imagine(CAT, f"bot killed {LONG}")
    await d.running_on(job_id)
    d.bot.kill()
    await d.start_bot()
    await d.delivered(CAT, "bot killed", timeout=60)
    job = d.job("bot killed")
    assert job["state"] == "done"
    assert job["checkpoint"]["remote"]["attempt"] == 1  # re-attached: not handed out a second time
    assert await d.ledger(job_id) == [("reserve", -1), ("commit", 1)]
    assert len(d.results(CAT, "bot killed")) == 1


async def test_redis_killed_mid_job_loses_nothing(deployment):
    d = deployment
    await d.workers_up("gpu-a", "gpu-b")
    job_id = await d.imagine(DAN, f"redis killed {LONG}")
    await d.running_on(job_id)
    d.redis.kill()
    await asyncio.sleep(1.0)
    d.redis.start()  # same folder: the append-only file brings the queue back
    await d.delivered(DAN, "redis killed", timeout=90)
    job = d.job("redis killed")
    assert job["state"] == "done"
    assert await d.ledger(job_id) == [("reserve", -1), ("commit", 1)]
    assert len(d.results(DAN, "redis killed")) == 1


async def test_redis_back_empty_the_job_is_handed_out_again_from_the_bots_records(deployment):
    d = deployment
    job_id = await d.imagine(ANN, f"redis empty {LONG}")
    await d.running_on(job_id)
    await d.client.flushall()  # Redis lost everything: no persistence, or a new machine
    await d.delivered(ANN, "redis empty", timeout=90)
    job = d.job("redis empty")
    assert job["checkpoint"]["remote"]["attempt"] == 2
    assert await d.ledger(job_id) == [("reserve", -1), ("commit", 1)]
    assert len(d.results(ANN, "redis empty")) == 1


async def test_a_job_no_worker_can_run_gets_a_clear_answer_and_a_refund(deployment):
    d = deployment
    photo = await d.fake.say(ANN["id"], ANN, photo=png((64, 64)))
    await d.fake.say(ANN["id"], ANN, "/upscale", reply_to=photo)  # the workers run no tools
    await d.fake.wait_until(lambda: any("No GPU worker offers upscale jobs" in t for t in d.said(ANN)))
    for worker in d.workers.values():
        worker.kill()
    await d.imagine(ANN, f"nobody {SHORT}")
    await d.fake.wait_until(lambda: d.job("nobody")["state"] == "failed", timeout=30)
    await d.fake.wait_until(lambda: any("No GPU worker that can run this job" in t for t in d.said(ANN)))
    assert await d.ledger(d.job("nobody")["id"]) == [("reserve", -1), ("refund", 1)]
