"""``python -m bot worker`` (a GPU worker process) and ``python -m bot workers`` (who is there).

A worker runs from the same package and the same settings file as the bot; it needs
``IMAGEBOT_QUEUE_URL`` and nothing else of the bot's: no database, no chat token, no
shared folder. One worker per GPU (``--device cuda:1``), on one machine or many::

    python -m bot worker --backends local,tools --device cuda:0 --name gpu1-0

Stopping it (Ctrl-C, SIGTERM) hands its unfinished jobs back at once; kill -9 hands them
back when its heartbeat runs out (IMAGEBOT_WORKER_LOST_AFTER_S).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from bot.logs import redact_in_logs
from bot.settings import Settings

log = logging.getLogger("bot.worker")

# Exit codes of ``python -m bot`` (the bot's and the worker's alike).
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def add_commands(sub: Any) -> None:
    worker = sub.add_parser("worker", help="run jobs for the bot on this machine's GPU (needs IMAGEBOT_QUEUE_URL)")
    worker.add_argument("--backends", default="local,tools",
                        help="backends to run here, comma-separated (default: local,tools; vendors by name)")
    worker.add_argument("--device", default=None, help="cuda, cuda:1, cpu... (default: IMAGEBOT_DEVICE)")
    worker.add_argument("--name", default=None, help="unique name of this worker (default: host name and device)")
    worker.add_argument("--slots", type=int, default=1, help="jobs at once on the device (default 1)")
    worker.add_argument("--threads", type=int, default=None, help="CPU threads for torch (CPU workers)")
    sub.add_parser("workers", help="the GPU workers behind the queue, and the queue per lane")


def _queue_url(settings: Settings) -> str | None:
    url = settings.queue_url.get_secret_value()
    if not url:
        print("imagebot: IMAGEBOT_QUEUE_URL is not set; workers need the bot's Redis "
              "(e.g. redis://host:6379/0).", file=sys.stderr)
        return None
    from engine.workers.connect import url_secrets

    redact_in_logs(*url_secrets(url))
    return url


# --- python -m bot worker ------------------------------------------------------------------

def run_worker(settings: Settings, args: argparse.Namespace,
               on_start: Callable[[asyncio.Task[Any] | None], None] = lambda task: None) -> int:
    """``on_start(task)``: the CLI's signal handling (first Ctrl-C cancels ``task``)."""
    url = _queue_url(settings)
    if url is None:
        return EXIT_CONFIG
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    name = args.name or socket.gethostname() + ("" if settings.device == "auto" else f"-{settings.device}")
    try:
        return asyncio.run(_serve(settings, url, wanted, name, args.slots, on_start))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED


async def _serve(settings: Settings, url: str, wanted: list[str], name: str, slots: int,
                 on_start: Callable[[asyncio.Task[Any] | None], None]) -> int:
    from engine.workers.connect import client, safe_url
    from engine.workers.protocol import Keys
    from engine.workers.worker import Worker

    backends = await _backends(settings, wanted)
    if isinstance(backends, str):
        print(f"imagebot: {backends}", file=sys.stderr)
        return EXIT_CONFIG
    on_start(asyncio.current_task())
    _dump_tasks_on_sigusr1()
    redis = client(url)
    worker = Worker(redis, backends, name=name, keys=Keys(settings.queue_prefix), device=settings.device,
                    slots=slots, heartbeat_s=settings.worker_heartbeat_s,
                    lost_after_s=settings.worker_lost_after_s, max_bytes=settings.queue_max_mb * 2**20,
                    result_ttl_s=settings.queue_result_ttl_s, backend_slots=settings.backend_concurrency)
    log.info("worker %s: taking jobs from %s", name, safe_url(url))
    try:
        await worker.run()
    finally:
        for backend in backends.values():
            try:
                await backend.close()
            except Exception:
                log.debug("backend close failed", exc_info=True)
        await redis.aclose()
    return 0


def _dump_tasks_on_sigusr1() -> None:
    """``kill -USR1 <worker pid>`` logs what every task of the worker is waiting for."""
    import io

    def dump() -> None:
        out = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=out)
        log.warning("tasks of this worker:\n%s", out.getvalue())

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)
    except (NotImplementedError, RuntimeError, AttributeError):
        pass


async def _backends(settings: Settings, wanted: list[str]) -> dict[str, Any] | str:
    """The real backends this worker runs, built as the bot builds them; or why not."""
    from bot.wiring import build_backends, local_engine_available

    if {"local", "tools"} & set(wanted) and not local_engine_available():
        return "the local engine needs torch and diffusers (pip install '.[local]')"
    # No media store here: pictures come with the job through Redis, and vendors fetch
    # them by the signed links the bot sends.
    built = build_backends(settings, None)  # type: ignore[arg-type]
    missing = [b for b in wanted if b not in built]
    chosen = {b: built[b] for b in wanted if b in built}
    for name, backend in built.items():
        if name not in chosen or missing:
            await backend.close()
    if missing:
        return f"no backend {', '.join(missing)} here (this machine has: {', '.join(sorted(built)) or 'none'})"
    return chosen


# --- python -m bot workers -----------------------------------------------------------------

def show_workers(settings: Settings) -> int:
    url = _queue_url(settings)
    if url is None:
        return EXIT_CONFIG
    return asyncio.run(_show(settings, url))


async def _show(settings: Settings, url: str) -> int:
    import json

    from engine.workers.connect import UNREACHABLE, client, safe_url
    from engine.workers.fleet import Fleet
    from engine.workers.protocol import Keys

    redis = client(url)
    try:
        fleet = Fleet(redis, Keys(settings.queue_prefix), heartbeat_s=settings.worker_heartbeat_s)
        try:
            await fleet.refresh()
            lanes = await redis.get(fleet.keys.lanes)
        except UNREACHABLE as e:
            print(f"imagebot: the queue at {safe_url(url)} is not reachable ({type(e).__name__})", file=sys.stderr)
            return 1
        for line in describe_lines(fleet.describe()):
            print(line)
        print()
        print(lanes_lines(json.loads(lanes) if lanes else None))
    finally:
        await redis.aclose()
    return 0


def describe_lines(workers: list[dict[str, Any]]) -> list[str]:
    if not workers:
        return ["No worker has announced itself yet."]
    lines = [f"{'worker':<20} {'state':<8} {'backends':<18} {'loaded':<16} {'done':>5} {'busy':>5}  last seen"]
    for w in workers:
        state = "up" if w["up"] else ("stopped" if w["stopped"] else "lost")
        lines.append(f"{w['name']:<20} {state:<8} {','.join(w['backends']):<18} "
                     f"{','.join(w['loaded']) or '-':<16} {w['jobs_done']:>5} {w['busy']:>2}/{w['slots']:<2}  "
                     f"{w['last_seen_s']:.1f}s ago")
    return lines


def lanes_lines(published: dict[str, Any] | None) -> str:
    if not published:
        return "Queue per lane: no bot has published its queue (is the bot running?)."
    age = max(0.0, time.time() - float(published.get("at", 0)))
    lines = [f"Queue per lane (from the bot, {age:.1f}s ago):"]
    for lane, (waiting, running, capacity) in sorted(published.get("lanes", {}).items()):
        lines.append(f"  {lane:<18} waiting {waiting:<4} running {running}/{capacity}")
    return "\n".join(lines)

