"""GPU workers on Redis, measured side by side in one run (needs ``redis-server``).

    .venv/bin/python bench/workers_bench.py            # the tiny demo model on this machine's CPU
    .venv/bin/python bench/workers_bench.py --jobs 24 --size 256 --steps 30

Every job goes the whole way a user's does: admission, the scheduler, the backend,
results stored, delivered to a recording chat, settled in SQLite. Each worker is a real
``python -m bot worker`` process with ``--threads 1`` (one CPU core standing in for one GPU).

1. overhead: the same job in one process versus through Redis and one worker, interleaved,
   median of ``--repeat``. Goal: ratio <= 1.05 for a job of about a second.
2. throughput: ``--jobs`` jobs from four users with 1, 2 and 4 workers, jobs per second and
   the speed-up over one worker (linear would be 1, 2, 4; this machine has os.cpu_count() cores).
3. death to rerun: kill -9 of the worker running a long job, until the other worker starts
   it (its ``started`` event on Redis's clock), with the heartbeat settings given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.settings import Settings  # noqa: E402
from bot.wiring import Runtime  # noqa: E402
from engine.workers import connect  # noqa: E402
from tests.chat_recorder import RecordingMessenger, demo_settings, person, say, started_runtime  # noqa: E402
from tests.processes import bot_command, bot_env  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

USERS = [person(name) for name in ("ann", "bob", "cat", "dan")]


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, redis: RedisServer) -> None:
        self.args, self.tmp, self.redis = args, tmp, redis
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.model = tmp / "models" / "demo"
        self.counter = 0

    def settings(self, name: str, **extra: object) -> Settings:
        return demo_settings(self.tmp / name, self.model, daily_free_images=100_000, max_queued_per_user=1000,
                             max_queued_total=1000, device="cpu", **extra)

    def start_worker(self, name: str) -> None:
        data = self.tmp / name
        self.settings(name)  # its data folder, with the model
        env = bot_env(data, IMAGEBOT_QUEUE_URL=self.redis.url, OMP_NUM_THREADS="1",
                      IMAGEBOT_WORKER_HEARTBEAT_S=str(self.args.heartbeat),
                      IMAGEBOT_WORKER_LOST_AFTER_S=str(self.args.lost_after), IMAGEBOT_LOG_LEVEL="INFO")
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.workers[name] = subprocess.Popen(
            bot_command("worker", "--name", name, "--backends", "local", "--device", "cpu", "--threads", "1"),
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def wait_workers(self, runtime: Runtime, count: int) -> None:
        deadline = time.monotonic() + 180
        while runtime.fleet.capacity("local") < count:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not come up; see their logs in " + str(self.tmp))
            await asyncio.sleep(0.1)

    def job(self, user_index: int = 0, steps: int | None = None) -> tuple[object, str]:
        self.counter += 1
        prompt = f"bench {self.counter}"
        text = f"/imagine {prompt} --size {self.args.size}x{self.args.size} --steps {steps or self.args.steps} " \
               f"--seed {self.counter}"
        return say(text, user=USERS[user_index % len(USERS)]), prompt

    @staticmethod
    async def submit(runtime: Runtime, chat: RecordingMessenger, incoming: object) -> None:
        await runtime.app.handle_message(incoming, chat)  # type: ignore[arg-type]

    async def one(self, runtime: Runtime, chat: RecordingMessenger, steps: int | None = None) -> float:
        incoming, _ = self.job(steps=steps)
        started = time.perf_counter()
        await self.submit(runtime, chat, incoming)
        await asyncio.wait_for(runtime.wait_idle(), 600)  # delivered and settled
        return time.perf_counter() - started

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by the worker processes, and by this process (the bot)."""
        tick = os.sysconf("SC_CLK_TCK")
        workers = 0.0
        for proc in self.workers.values():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                workers += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return workers, usage.ru_utime + usage.ru_stime

    async def burst(self, runtime: Runtime, chat: RecordingMessenger, jobs: int) -> float:
        started = time.perf_counter()
        delivered = runtime.outbox.delivered
        for k in range(jobs):
            incoming, _ = self.job(k)
            await self.submit(runtime, chat, incoming)
        await asyncio.wait_for(runtime.wait_idle(), 1200)
        assert runtime.outbox.delivered - delivered == jobs, "a job of the burst was not delivered"
        return time.perf_counter() - started


def _dump_tasks_on_sigusr1() -> None:
    """``kill -USR1 <bench pid>``: print what every task is waiting for (a run that hangs)."""
    def dump() -> None:
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="about a second per job on one core with the demo model")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--heartbeat", type=float, default=2.0, help="IMAGEBOT_WORKER_HEARTBEAT_S")
    parser.add_argument("--lost-after", type=float, default=10.0, help="IMAGEBOT_WORKER_LOST_AFTER_S")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    import torch

    torch.set_num_threads(1)  # the in-process engine gets one core, like each worker
    from engine.local.demo_model import build_demo_model

    load = os.getloadavg()[0]  # other work on this machine shares its cores
    _dump_tasks_on_sigusr1()
    tmp = Path(tempfile.mkdtemp(prefix="imagebot-workers-bench-"))
    build_demo_model(tmp / "models" / "demo")
    redis = RedisServer(tmp / "redis").start()
    bench = Bench(args, tmp, redis)
    rows: list[str] = []
    local_chat, remote_chat = RecordingMessenger(), RecordingMessenger()
    local = await started_runtime(bench.settings("inproc"), local_chat)
    remote = await started_runtime(bench.settings("bot", queue_url=redis.url, worker_heartbeat_s=args.heartbeat,
                                                  worker_lost_after_s=args.lost_after), remote_chat)
    for runtime in (local, remote):  # status edits as often as in production, on both paths
        runtime.runner.progress_interval_s = 1.5
    try:
        bench.start_worker("w1")
        await bench.wait_workers(remote, 1)
        await bench.one(local, local_chat)  # warm: the model loaded on both sides
        await bench.one(remote, remote_chat)

        # 1. overhead, interleaved
        inproc, queued = [], []
        for _ in range(args.repeat):
            inproc.append(await bench.one(local, local_chat))
            queued.append(await bench.one(remote, remote_chat))
        a, b = statistics.median(inproc), statistics.median(queued)
        rows.append(f"{'one job: in process vs through Redis + 1 worker':<52} {a:8.3f}s {b:8.3f}s  ratio {b / a:5.3f}"
                    "  (goal <= 1.05)")

        # 2. throughput
        base = await bench.burst(local, local_chat, args.jobs)
        rows.append(f"{f'{args.jobs} jobs in process (1 core)':<52} {args.jobs / base:8.2f} jobs/s")
        one_worker = 0.0
        for count in (1, 2, 4):
            while len(bench.workers) < count:
                bench.start_worker(f"w{len(bench.workers) + 1}")
            await bench.wait_workers(remote, count)
            await bench.one(remote, remote_chat)  # every new worker loads the model once
            for _ in range(count):
                await bench.one(remote, remote_chat)
            cpu_before = bench.cpu_seconds()
            took = await bench.burst(remote, remote_chat, args.jobs)
            cpu_after = bench.cpu_seconds()
            one_worker = one_worker or took
            workers_cores = (cpu_after[0] - cpu_before[0]) / took
            bot_cores = (cpu_after[1] - cpu_before[1]) / took
            rows.append(f"{f'{args.jobs} jobs, {count} worker(s)':<52} {args.jobs / took:8.2f} jobs/s  "
                        f"speed-up {one_worker / took:4.2f} (linear {count}); CPU cores busy: workers "
                        f"{workers_cores:.2f}, bot {bot_cores:.2f}")

        # 3. death to rerun: keep two workers, kill -9 the one running a long job
        for name in list(bench.workers)[2:]:
            bench.workers.pop(name).terminate()
        await asyncio.sleep(args.lost_after + 1)
        incoming, _ = bench.job(steps=100)
        await bench.submit(remote, remote_chat, incoming)
        job = (await remote.storage.recent_jobs(1))[0]
        client = connect.client(redis.url)
        events_key = f"imagebot:events:{job.id}"
        victim = None
        while victim is None:
            for _, fields in await client.xrange(events_key):
                if fields.get(b"type") == b"progress":
                    victim = fields[b"worker"].decode()
            await asyncio.sleep(0.02)
        seconds, micros = await client.time()  # Redis's clock, the one stream ids use
        killed_at_ms = int(seconds) * 1000 + int(micros) // 1000
        bench.workers[victim].send_signal(signal.SIGKILL)
        rerun_ms = None
        while rerun_ms is None:
            for entry, fields in await client.xrange(events_key):
                if fields.get(b"type") == b"started" and fields.get(b"attempt") == b"2":
                    rerun_ms = int(entry.decode().split("-")[0])
            await asyncio.sleep(0.02)
        await asyncio.wait_for(remote.wait_idle(), 600)
        await client.aclose()
        rows.append(f"{'worker kill -9 -> its job running on another':<52} {(rerun_ms - killed_at_ms) / 1000:8.2f}s"
                    f"  (heartbeat {args.heartbeat}s, lost after {args.lost_after}s)")
    finally:
        await local.stop()
        await remote.stop()
        for proc in bench.workers.values():
            proc.terminate()
        redis.stop()
    print(f"demo model {args.size}x{args.size}, {args.steps} steps, {os.cpu_count()} CPU cores "
          f"(load average before the run {load:.2f}), median of {args.repeat}")
    for row in rows:
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
