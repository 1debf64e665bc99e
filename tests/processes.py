"""Processes of the bot as an operator starts them (``python -m bot ...``), and stopping them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bot_command(*args: str) -> list[str]:
    """``python -m bot ARGS`` with this interpreter (run it with ``cwd=ROOT``)."""
    return [sys.executable, "-m", "bot", *args]


def bot_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This environment without any IMAGEBOT_ setting of its own: the bot on ``data_dir`` with the
    demo model, offline; ``extra`` adds to it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEBOT_")}
    env.update(IMAGEBOT_DATA_DIR=str(data_dir), IMAGEBOT_DEFAULT_MODEL="demo", IMAGEBOT_HF_OFFLINE="true",
               HF_HUB_OFFLINE="1", **extra)
    return env


def console_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """``bot_env`` for the console in English, its output unbuffered, ten jobs queued per user."""
    return bot_env(data_dir, PYTHONUNBUFFERED="1", IMAGEBOT_CONSOLE_LANG="en", IMAGEBOT_MAX_QUEUED_PER_USER="10",
                   **extra)


def run_bot(env: dict[str, str], *args: str, stdin: str = "", timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m bot ARGS`` to its end, ``stdin`` piped in, its output captured as text."""
    return subprocess.run(bot_command(*args), input=stdin, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def kill_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, timeout: float) -> None:
    """kill -9 a running process and reap it."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=timeout)


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, timeout: float) -> None:
    """SIGTERM a running process and wait ``timeout`` for it to end, then kill -9 it."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc, timeout)
