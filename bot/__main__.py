"""The command line: ``python -m bot [run|console|demo-model|jobs|ledger]``.

``run`` (the default) starts every platform that has a token configured, and the
console when none has: the bot always starts, token or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import warnings

from bot.settings import Settings


def _setup_logging(settings: Settings, *, quiet: bool) -> None:
    level = logging.WARNING if quiet else getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # httpx logs full request URLs at INFO; a Telegram URL carries the bot token.
    for noisy in ("httpx", "httpcore", "aiogram.event", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if quiet:
        # In the console, the chat is the interface: library chatter goes nowhere.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)


# Quiet the ML libraries' import-time notices unless the user asked for them.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


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

    runtime = await build_runtime(settings)
    try:
        if platforms == ["console"]:
            from bot.console import run_console

            await run_console(runtime)
            return
        tasks = []
        if "telegram" in platforms:
            from bot.telegram.runner import run_telegram

            tasks.append(asyncio.create_task(run_telegram(runtime)))
        if "discord" in platforms:
            logging.getLogger(__name__).error("Discord is not implemented yet; see the README")
        if "console" in platforms:
            from bot.console import run_console

            tasks.append(asyncio.create_task(run_console(runtime)))
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        await runtime.stop()


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


async def _ledger(settings: Settings, job_id: str | None, user: str | None) -> None:
    from storage.store import Storage

    storage = await Storage.open(settings.db_path, daily_free=settings.daily_free_images)
    try:
        if job_id:
            for row in await storage.ledger_of_job(job_id):
                print(json.dumps(row, ensure_ascii=False))
        if user:
            platform, _, ext = user.partition(":")
            u = await storage.user(platform, ext)
            print(json.dumps((await storage.balance(u.id)).__dict__))
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="imagebot: pictures from chat")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="start the configured platforms (the console when no token is set)")
    sub.add_parser("console", help="chat with the bot in this terminal")
    sub.add_parser("demo-model", help="build the tiny random demo model (paints noise) for offline use")
    jobs = sub.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--limit", type=int, default=20)
    ledger = sub.add_parser("ledger", help="show the quota ledger of a job or a user's balance")
    ledger.add_argument("--job")
    ledger.add_argument("--user", help="platform:user_id, e.g. console:alice")
    args = parser.parse_args(argv)
    settings = Settings()
    command = args.command or "run"
    _setup_logging(settings, quiet=command in ("console", "jobs", "ledger", "demo-model") or (
        command == "run" and _platforms(settings) == ["console"]))
    if command == "demo-model":
        _demo_model(settings)
        return 0
    if command == "jobs":
        asyncio.run(_jobs(settings, args.limit))
        return 0
    if command == "ledger":
        asyncio.run(_ledger(settings, args.job, args.user))
        return 0
    platforms = ["console"] if command == "console" else _platforms(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(settings, platforms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
