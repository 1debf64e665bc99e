"""The command line: ``python -m bot [run|console|demo-model|jobs|ledger|worker|workers]``.

``run`` (the default) starts every platform that has a token configured, and the
console when none has: the bot always starts, token or not.

Stopping: Ctrl-C (or SIGTERM) stops taking new work and closes everything in order;
running jobs stay recorded and resume at the next start. A second Ctrl-C exits at once.
A setting that cannot work exits at once with one clear line and code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

from pydantic import ValidationError

from bot.logs import setup_logging
from bot.settings import Settings
from bot.worker_cli import EXIT_CONFIG, EXIT_INTERRUPTED, run_worker, show_workers
from bot.worker_cli import add_commands as add_worker_commands

# Quiet the ML libraries' import-time notices unless the user asked for them.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

log = logging.getLogger("bot")


def _platforms(settings: Settings) -> list[str]:
    wanted = [p.lower() for p in settings.platforms]
    if wanted and wanted != ["auto"]:
        return wanted
    found = []
    if settings.telegram_token.get_secret_value():
        found.append("telegram")
    if settings.discord_token.get_secret_value():
        found.append("discord")
    return found or ["console"]


async def _run(settings: Settings, platforms: list[str]) -> None:
    from bot.wiring import build_runtime

    _stop_on_signals(asyncio.current_task())
    runtime = await build_runtime(settings)
    try:
        tasks = []
        if "telegram" in platforms:
            from bot.telegram.runner import run_telegram

            tasks.append(asyncio.create_task(run_telegram(runtime), name="telegram"))
        if "discord" in platforms:
            from bot.discord.runner import run_discord

            tasks.append(asyncio.create_task(run_discord(runtime), name="discord"))
        if "console" in platforms:
            from bot.console import run_console

            tasks.append(asyncio.create_task(run_console(runtime), name="console"))
        try:
            # Until every platform has ended (the console at /quit or end of input), or one
            # failed: then the others are stopped with it.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()
    finally:
        await runtime.stop()


def _stop_on_signals(main: asyncio.Task | None) -> None:  # type: ignore[type-arg]
    """First Ctrl-C/SIGTERM: stop cleanly (cancel the main task). Second: exit at once."""
    loop = asyncio.get_running_loop()
    count = 0

    def stop() -> None:
        nonlocal count
        count += 1
        if count > 1:
            os._exit(EXIT_INTERRUPTED)
        if main is not None and not main.done():
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass


def _demo_model(settings: Settings) -> None:
    import diffusers
    import transformers

    from engine.local.demo_model import build_demo_model

    # Saving a 7 MB model needs no progress bar.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    dest = build_demo_model(settings.models_dir / "demo")
    print(f"Demo model (random weights: it paints noise) written to {dest}")
    try:
        from engine.tools.demo_tools import build_demo_tools

        build_demo_tools(settings.models_dir / "demo-tools")
        print(f"Demo tool models (upscaler, face swap; random weights) written to {settings.models_dir / 'demo-tools'}")
    except ImportError:
        pass
    print(f"Done in {time.perf_counter() - started:.1f}s. Use it with: /imagine a fox --model demo "
          "(or /settings model demo)")


async def _jobs(settings: Settings, limit: int) -> None:
    from storage.store import Storage

    storage = await Storage.open(settings.db_path, daily_free=settings.daily_free_images)
    try:
        for job in await storage.recent_jobs(limit):
            print(f"{job.id}  {job.state.value:<10} {job.kind:<10} {job.backend:<8} "
                  f"delivered {job.delivered}/{len(job.results)}  {job.error_key or ''}")
    finally:
        await storage.close()


async def _ledger(settings: Settings, job_id: str | None, user: str | None) -> int:
    from storage.store import Storage

    storage = await Storage.open(settings.db_path, daily_free=settings.daily_free_images)
    try:
        if job_id:
            rows = await storage.ledger_of_job(job_id)
            if not rows and await storage.job(job_id) is None:
                print(f"No job {job_id}.", file=sys.stderr)
                return 1
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
        if user:
            platform, _, ext = user.partition(":")
            found = await storage.find_user(platform, ext)
            if found is None:  # a read-only tool creates no one
                print(f"No user {user}.", file=sys.stderr)
                return 1
            for row in await storage.ledger_of_user(found.id):
                print(json.dumps(row, ensure_ascii=False))
            print(json.dumps({"balance": (await storage.balance(found.id)).__dict__}))
    finally:
        await storage.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="imagebot: pictures from chat")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="start the configured platforms (the console when no token is set)")
    sub.add_parser("console", help="chat with the bot in this terminal")
    sub.add_parser("demo-model", help="build the tiny random demo model (paints noise) for offline use")
    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--limit", type=int, default=20)
    ledger = sub.add_parser("ledger", help="show the quota ledger of a job, or a user's entries and balance")
    ledger.add_argument("--job", help="a job id (ids never start with '-'; --job=ID works for any)")
    ledger.add_argument("--user", help="platform:user_id, e.g. console:alice")
    add_worker_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "ledger" and not (args.job or args.user):
        ledger.error("give --job JOB_ID or --user platform:user_id")
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"imagebot: a setting is not valid:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    command = args.command or "run"
    platforms = ["console"] if command == "console" else _platforms(settings)
    setup_logging(settings, quiet=command in ("console", "jobs", "ledger", "demo-model", "workers") or (
        command == "run" and platforms == ["console"]))
    if command == "demo-model":
        _demo_model(settings)
        return 0
    if command == "jobs":
        asyncio.run(_jobs(settings, args.limit))
        return 0
    if command == "ledger":
        return asyncio.run(_ledger(settings, args.job, args.user))
    if command == "worker":
        return run_worker(settings, args, on_start=_stop_on_signals)
    if command == "workers":
        return show_workers(settings)
    return _serve(settings, platforms)


def _serve(settings: Settings, platforms: list[str]) -> int:
    from bot.wiring import ConfigurationError
    from storage.owner import DataFolderBusy

    try:
        asyncio.run(_run(settings, platforms))
    except DataFolderBusy as e:
        print(f"imagebot: another bot (process {e.pid or '?'}) is serving {settings.data_dir}/; "
              "stop it first, or give this one its own IMAGEBOT_DATA_DIR.", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigurationError as e:
        print(f"imagebot: the configuration cannot work: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
