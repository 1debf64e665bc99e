"""The core under load, measured side by side in one run and printed as a table.

    .venv/bin/python bench/core_bench.py            # everything (about two minutes here)
    .venv/bin/python bench/core_bench.py --only flood,ledger

Each row compares the loaded case with its quiet twin, in this process, one after the other:

1. flood    25 /imagine@bot in one Telegram group (Telegram's flood limits, on a clock 20×
            faster, enforced by the fake Bot API server) with one private chat alongside:
            the private chat's first reply and its image-ready -> delivered time, against the
            same private request on a quiet bot; 429s in the whole run; every result once.
            Goals: first reply < 1 s, delivered within its compute + 2 s, 0 429s.
2. loop     event-loop lag p99 while 1024² results are stamped and stored and 4096² uploads
            are decoded, the way the bot does it (worker threads) against doing the same work
            on the loop. Goal: p99 <= 10 ms.
3. ledger   create_job and /balance for a user with 100k ledger rows against a fresh
            database. Goal: within 2x.
4. vendors  500 vendor jobs in flight in one process (a fake vendor taking 2 s per picture):
            wall time and loop lag p99. Goal: p99 <= 10 ms, wall close to 2 s.
5. writer   a second process writing the database every few milliseconds while users send
            commands: errors seen by users, and the command latency against no writer. Goal: 0.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bot.settings import Settings  # noqa: E402
from bot.wiring import build_runtime  # noqa: E402
from engine.jobs import Txt2Img  # noqa: E402
from handlers.port import ChatRef, Delivered, Incoming, MessageRef, UserRef  # noqa: E402
from storage.records import ChatCoordinates  # noqa: E402
from storage.store import Storage  # noqa: E402

ROWS: list[tuple[str, str, str, str, str]] = []


def row(name: str, loaded: str, quiet: str, ratio: str, goal: str) -> None:
    ROWS.append((name, loaded, quiet, ratio, goal))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class LoopLag:
    """How late a 1 ms sleep wakes up: what every chat waits when something blocks the loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.samples.append(max(0.0, loop.time() - before - 0.001))

    def p99(self) -> float:
        if not self.samples:
            return 0.0
        return sorted(self.samples)[max(0, int(len(self.samples) * 0.99) - 1)]

    def worst(self) -> float:
        """The longest stall: a blocked loop takes one sample, however long it blocks."""
        return max(self.samples, default=0.0)


class Sink:
    """A Messenger that only counts: the handlers and the engine are what is measured."""

    platform = "console"

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.images = 0
        self._ids = 0

    def _id(self, chat: ChatRef) -> MessageRef:
        self._ids += 1
        return MessageRef(chat, str(self._ids))

    async def send_text(self, chat, text, *, reply_to=None, buttons=None, personal=False):  # type: ignore[no-untyped-def]
        if "wrong" in text or "busy" in text or "❌" in text:
            self.errors.append(text)
        return self._id(chat)

    async def edit_text(self, message, text, *, buttons=None):  # type: ignore[no-untyped-def]
        return None

    async def send_status(self, chat, text, *, reply_to=None, buttons=None):  # type: ignore[no-untyped-def]
        return self._id(chat)

    async def edit_status(self, status, text, *, preview=None, buttons=None, final=False):  # type: ignore[no-untyped-def]
        if final:
            self.errors.append(text)
        return None

    async def send_images(self, chat, images, *, caption, buttons=None, reply_to=None, as_files=False,  # type: ignore[no-untyped-def]
                          status=None, notify=""):
        self.images += len(images)
        return Delivered([self._id(chat)])

    async def delete(self, message):  # type: ignore[no-untyped-def]
        return None

    async def answer_press(self, press, text=None, *, alert=False):  # type: ignore[no-untyped-def]
        return None


def say(text: str, user: str, chat: str = "local") -> Incoming:
    return Incoming(chat=ChatRef("console", chat), user=UserRef("console", user, user, "en"), message_id="m", text=text)


def demo_model(tmp: Path) -> Path:
    from engine.local.demo_model import build_demo_model

    models = tmp / "models"
    build_demo_model(models / "demo")
    return models


def settings_for(data: Path, models: Path | None = None, **values: Any) -> Settings:
    data.mkdir(parents=True, exist_ok=True)
    if models is not None and not (data / "models").exists():
        (data / "models").symlink_to(models, target_is_directory=True)
    base = {"data_dir": data, "default_model": "demo", "hf_offline": True, "daily_free_images": 1000,
            "max_queued_per_user": 1000, "max_queued_total": 10_000, "platforms": ["console"]}
    return Settings(_env_file=None, **{**base, **values})


# --- 1. a flooded group with a private chat alongside --------------------------------------------

async def bench_flood(tmp: Path, models: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from bot.telegram.messenger import TELEGRAM_LIMITS
    from bot.telegram.runner import run_telegram
    from tests.fake_telegram import FakeTelegram

    scale = 0.05
    group = -100777
    dan = FakeTelegram.user(401, "Dan")

    async def private_request(flood: bool, data: Path) -> tuple[float, float, list[float], int]:
        fake = await FakeTelegram(group_limit=(20, 60.0 * scale), private_limit=(1, 1.0 * scale),
                                  global_limit=(30, 1.0 * scale)).start()
        settings = settings_for(data, models, telegram_token=fake.token, telegram_api_base=fake.base_url,
                                platforms=["telegram"])
        runtime = await build_runtime(settings)
        task = asyncio.create_task(run_telegram(runtime, limits=TELEGRAM_LIMITS.scaled(scale), polling_timeout=1))
        loop = asyncio.get_running_loop()
        try:
            await fake.wait_until(lambda: fake.count("getUpdates") > 0)
            if flood:
                for k in range(25):
                    await fake.say(group, FakeTelegram.user(500 + k, f"M{k}"),
                                   "/imagine@imagebot a crowded harbour --steps 2 --size 64x64")
                await fake.wait_until(lambda: len(fake.seen(group)) >= 3)
            asked = loop.time()
            await fake.say(dan["id"], dan, "/imagine a quiet lighthouse --steps 2 --size 64x64")
            await fake.wait_until(lambda: len(fake.seen(dan["id"])) >= 1, timeout=30)
            first = loop.time() - asked
            ready: list[float] = []
            while not ready:
                jobs = [j for j in await runtime.storage.recent_jobs(50) if j.chat.chat_id == str(dan["id"])]
                if jobs and jobs[0].state.value in ("delivering", "done"):
                    ready.append(loop.time())
                await asyncio.sleep(0.005)
            await fake.wait_until(lambda: len(fake.seen(dan["id"], kind="photo")) == 1, timeout=60)
            delivered = loop.time() - ready[0]
            compute = ready[0] - asked
            # Everyone outside the flooded group: image ready -> delivered. (Only Dan here.)
            await fake.wait_until(lambda: not flood or len(fake.seen(group, kind="photo")) == 25, timeout=120)
            await runtime.wait_idle()
            return first, delivered, [compute], fake.flood_errors
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await runtime.stop()
            await fake.close()

    quiet = await private_request(False, tmp / "flood-quiet")
    loaded = await private_request(True, tmp / "flood-loaded")
    row("flood: private first reply", ms(loaded[0]), ms(quiet[0]), f"{loaded[0] / max(quiet[0], 1e-3):.1f}x",
        "< 1 s")
    row("flood: private ready -> delivered", ms(loaded[1]), ms(quiet[1]), f"{loaded[1] / max(quiet[1], 1e-3):.1f}x",
        "< 2 s (its compute: " + ms(loaded[2][0]) + ")")
    row("flood: 429s in the run", str(loaded[3]), str(quiet[3]), "-", "0")


# --- 2. the event loop while big pictures move --------------------------------------------------

def noise_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def photo_jpeg(side: int) -> bytes:
    """A phone-photo-like upload: smooth, so it stays a few MB as a JPEG."""
    small = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    buf = io.BytesIO()
    small.resize((side, side), Image.Resampling.BICUBIC).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


async def bench_loop(tmp: Path) -> None:
    from handlers.images import load_upload, normalized_png, parameters_text, stamp_png
    from storage.media import MediaStore

    media = MediaStore(tmp / "loop-media")
    results = [noise_png(1024) for _ in range(6)]
    upload = photo_jpeg(4096)
    spec = Txt2Img(prompt="a harbour at night", width=1024, height=1024)

    def store_result(png: bytes) -> str:
        return media.put(stamp_png(png, parameters_text(spec, seed=1, backend="local")))

    def take_upload(data: bytes) -> str:
        return media.put(normalized_png(load_upload(data)))

    async def run(off_loop: bool) -> float:
        async def do(fn: Callable[[bytes], str], data: bytes) -> None:
            if off_loop:
                await asyncio.to_thread(fn, data)  # what the runner and the admission do
            else:
                fn(data)
                await asyncio.sleep(0)

        async with LoopLag() as lag:
            await asyncio.sleep(0.01)
            await asyncio.gather(*[do(store_result, png) for png in results], do(take_upload, upload),
                                 do(take_upload, upload))
            await asyncio.sleep(0.05)
        return lag

    on = await run(off_loop=False)
    off = await run(off_loop=True)
    row("loop lag p99, 1024² results + 4096² uploads", ms(off.p99()), "-", "-",
        "<= 10 ms")
    row("  longest stall meanwhile", ms(off.worst()), ms(on.worst()) + " on the loop",
        f"{off.worst() / max(on.worst(), 1e-6):.3f}x", "-")


# --- 3. costs that must not grow with a user's history ---------------------------------------

async def bench_ledger(tmp: Path) -> None:
    chat = ChatCoordinates(platform="console", chat_id="c", thread_id=None, is_private=True)

    async def timed(storage: Storage, user_id: int) -> tuple[float, float]:
        create: list[float] = []
        balance: list[float] = []
        for _ in range(30):
            started = time.perf_counter()
            job = await storage.create_job(user_id=user_id, spec=Txt2Img(prompt="x"), backend="local", chat=chat,
                                           language="en", cost_per_image=1, max_queued_per_user=1000)
            create.append(time.perf_counter() - started)
            await storage.refund(job.id)
            started = time.perf_counter()
            await storage.balance(user_id)
            await storage.open_jobs_of(user_id)
            balance.append(time.perf_counter() - started)
        return statistics.median(create), statistics.median(balance)

    empty = await Storage.open(tmp / "ledger-empty.sqlite3", daily_free=10**9)
    full = await Storage.open(tmp / "ledger-full.sqlite3", daily_free=10**9)
    try:
        for storage in (empty, full):
            await storage.user("console", "ann")
        ann = await full.user("console", "ann")
        # 100k ledger rows of history for this one user: 50k finished jobs (reserve + commit).
        db = full._db
        await db.execute("BEGIN")
        now = time.time()
        for k in range(50_000):
            job_id = f"old{k:06d}"
            await db.execute("INSERT INTO jobs (id, user_id, kind, backend, spec, state, platform, chat_id, "
                             "created_at, updated_at, payer_id) VALUES (?, ?, 'txt2img', 'local', ?, 'done', "
                             "'console', 'c', ?, ?, ?)", (job_id, ann.id, Txt2Img(prompt="x").model_dump_json(),
                                                          now, now, ann.id))
            await db.execute("INSERT INTO ledger (user_id, job_id, entry, pool, amount, day, idem_key, created_at) "
                             "VALUES (?, ?, 'reserve', 'free', -1, '2026-01-01', ?, ?)", (ann.id, job_id,
                                                                                          f"r{k}", now))
            await db.execute("INSERT INTO ledger (user_id, job_id, entry, pool, amount, day, idem_key, created_at) "
                             "VALUES (?, ?, 'commit', 'spent', 1, '2026-01-01', ?, ?)", (ann.id, job_id, f"c{k}",
                                                                                         now))
        await db.execute("COMMIT")
        e_create, e_balance = await timed(empty, (await empty.user("console", "ann")).id)
        f_create, f_balance = await timed(full, ann.id)
    finally:
        await empty.close()
        await full.close()
    row("create_job, 100k ledger rows", ms(f_create), ms(e_create), f"{f_create / e_create:.2f}x", "<= 2x")
    row("/balance, 100k ledger rows", ms(f_balance), ms(e_balance), f"{f_balance / e_balance:.2f}x", "<= 2x")


# --- 4. 500 vendor jobs in flight ------------------------------------------------------------------

FAKE_VENDOR = """
import asyncio, io, sys
from aiohttp import web
from PIL import Image

buf = io.BytesIO()
Image.new("RGB", (64, 64), (200, 90, 30)).save(buf, format="PNG")
PICTURE = buf.getvalue()

async def paint(request):
    await asyncio.sleep(2.0)  # the vendor paints for two seconds
    return web.json_response({"code": 1000, "msg": "success", "data": str(request.url.with_path("/img.png"))})

async def image(request):
    return web.Response(body=PICTURE, content_type="image/png")

app = web.Application()
app.router.add_post("/aipaint", paint)
app.router.add_get("/img.png", image)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, backlog=1024)
"""


async def bench_vendors(tmp: Path) -> None:
    """The fake vendor runs in a process of its own: only the bot's own work is on this loop."""
    from engine.vendors.paint4 import Paint4Backend
    from tests.redis_server import free_port

    port = free_port()
    vendor = subprocess.Popen([sys.executable, "-c", FAKE_VENDOR, str(port)])  # noqa: ASYNC220
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        settings = settings_for(tmp / "vendors", backend_concurrency={"paint4": 500})
        runtime = await build_runtime(settings, backends={"paint4": Paint4Backend(f"http://127.0.0.1:{port}",
                                                                                  timeout_s=30)})
        sink = Sink()
        runtime.app.attach(sink)
        await runtime.start(web=False)
        try:
            async with LoopLag() as lag:
                started = time.perf_counter()
                await asyncio.gather(*(runtime.app.handle_message(say("/imagine a dog --backend paint4", f"u{k}"),
                                                                  sink) for k in range(500)))
                admitted = time.perf_counter() - started
                await runtime.wait_idle()
                wall = time.perf_counter() - started
        finally:
            await runtime.stop()
    finally:
        vendor.kill()
        vendor.wait()
    row("500 vendor jobs (2 s each) in flight", f"{wall:.1f} s wall, {sink.images} pictures",
        "2.0 s (one job)", f"{wall / 2.0:.2f}x", "close to 1x")
    row("  all 500 admitted and told 'Queued'", f"{admitted:.2f} s", "-", "-", "-")
    row("  loop lag p99 meanwhile", ms(lag.p99()), "-", "-", "<= 10 ms")


# --- 5. a second process writing the database ------------------------------------------------------

WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
while True:
    db.execute('BEGIN IMMEDIATE')
    db.execute("INSERT INTO meta (key, value) VALUES ('writer', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(time.time()),))
    time.sleep(0.002)
    db.execute('COMMIT')
    time.sleep(0.003)
"""


async def bench_writer(tmp: Path, models: Path) -> None:
    async def commands(with_writer: bool) -> tuple[int, float]:
        data = tmp / ("writer-on" if with_writer else "writer-off")
        runtime = await build_runtime(settings_for(data, models))
        sink = Sink()
        runtime.app.attach(sink)
        await runtime.start(web=False)
        writer = None
        if with_writer:
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(runtime.settings.db_path)])  # noqa: ASYNC220
        latencies: list[float] = []
        try:
            for k in range(40):
                for text in (f"/imagine a busy day {k} --steps 1 --size 64x64", "/balance", "/settings ar 3:2"):
                    started = time.perf_counter()
                    await runtime.app.handle_message(say(text, f"user{k % 5}"), sink)
                    latencies.append(time.perf_counter() - started)
            await runtime.wait_idle()
        finally:
            if writer is not None:
                writer.kill()
                writer.wait()
            await runtime.stop()
        return len(sink.errors), statistics.median(latencies)

    quiet = await commands(False)
    loaded = await commands(True)
    row("second writer: errors seen by users", str(loaded[0]), str(quiet[0]), "-", "0")
    row("  command latency (median)", ms(loaded[1]), ms(quiet[1]), f"{loaded[1] / quiet[1]:.1f}x", "-")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="flood,loop,ledger,vendors,writer")
    wanted = set(parser.parse_args().only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="imagebot-core-bench-"))
    models = demo_model(tmp) if wanted & {"flood", "writer"} else None
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("flood", lambda: bench_flood(tmp, models)),  # type: ignore[arg-type]
        ("loop", lambda: bench_loop(tmp)),
        ("ledger", lambda: bench_ledger(tmp)),
        ("vendors", lambda: bench_vendors(tmp)),
        ("writer", lambda: bench_writer(tmp, models)),  # type: ignore[arg-type]
    ]
    for name, step in steps:
        if name in wanted:
            print(f"… {name}", file=sys.stderr, flush=True)
            await step()
    widths = [max(len(r[i]) for r in ROWS + [("what", "loaded", "quiet / baseline", "ratio", "goal")])
              for i in range(5)]
    header = ("what", "loaded", "quiet / baseline", "ratio", "goal")
    for r in [header, tuple("-" * w for w in widths), *ROWS]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main())
