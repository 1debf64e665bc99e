"""Starting and stopping the bot as a user does, through ``python -m bot``: a second bot on the
same data folder, a second process writing the database, Ctrl-C in the middle of a job, /quit
with the terminal still open, and settings that cannot work."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, bot_command, console_env, run_bot


def _bot(data_dir: Path, *args: str, stdin: str = "", timeout: float = 120, **extra: str) -> subprocess.CompletedProcess[str]:
    return run_bot(console_env(data_dir, **extra), *args, stdin=stdin, timeout=timeout)


def _console(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(bot_command("console"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=console_env(data_dir))


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never came; saw:\n{seen}")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("lifecycle")
    built = _bot(data, "demo-model", timeout=240)
    assert built.returncode == 0, built.stderr
    return data


def test_a_second_bot_on_the_same_data_folder_is_told_who_holds_it_and_exits(data_dir: Path) -> None:
    first = _console(data_dir)
    try:
        _read_until(first, "imagebot console")  # the first one serves the folder now
        started = time.monotonic()
        second = _bot(data_dir, "console", stdin="/imagine a fox\n", timeout=60)
        assert second.returncode == 2
        assert f"another bot (process {first.pid})" in second.stderr and str(data_dir) in second.stderr
        assert "Traceback" not in second.stderr and "Queued" not in second.stdout
        assert time.monotonic() - started < 30  # it said so at once, without loading any model
    finally:
        first.kill()
        first.wait(timeout=30)


def test_ctrl_c_mid_job_ends_cleanly_and_the_job_resumes_at_the_next_start_and_quit_is_at_once(
        data_dir: Path) -> None:
    proc = _console(data_dir)
    assert proc.stdin is not None
    proc.stdin.write("/imagine interrupted by ctrl-c --steps 30 --size 320x320 --seed 5\n")
    proc.stdin.flush()
    _read_until(proc, "%")
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 130 and "Traceback" not in stderr, stderr

    jobs = _bot(data_dir, "jobs").stdout
    job_id = next(line.split()[0] for line in jobs.splitlines() if "running" in line)
    again = _console(data_dir)
    assert again.stdin is not None
    seen = _read_until(again, "🖼")  # the job from before Ctrl-C, finished once
    assert "Resuming 1 unfinished job" in seen and job_id in seen
    again.stdin.write("/quit\n")
    again.stdin.flush()  # the terminal stays open: /quit must not wait for another line
    assert again.wait(timeout=30) == 0
    ledger = [json.loads(line) for line in _bot(data_dir, "ledger", "--job", job_id).stdout.splitlines()]
    assert [(e["entry"], e["amount"]) for e in ledger] == [("reserve", -1), ("commit", 1)]


def test_a_second_process_writing_the_database_every_few_milliseconds_is_invisible_to_users(
        data_dir: Path, tmp_path: Path) -> None:
    db = data_dir / "imagebot.sqlite3"
    writer_code = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL')\n"
        "i = 0\n"
        "while True:\n"
        "    db.execute('BEGIN IMMEDIATE')\n"
        "    db.execute(\"INSERT INTO meta (key, value) VALUES ('writer', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value\", (str(i),))\n"
        "    time.sleep(0.002)\n"  # holds the write lock a moment, as a CLI command would
        "    db.execute('COMMIT')\n"
        "    i += 1\n"
        "    time.sleep(0.003)\n"
    )
    _bot(data_dir, "jobs")  # the schema exists before the writer starts
    writer = subprocess.Popen([sys.executable, "-c", writer_code, str(db)])
    try:
        script = "".join(f"/imagine busy writer {k} --steps 2 --size 64x64\n/balance\n/settings ar 3:2\n"
                         for k in range(8))
        run = _bot(data_dir, "console", stdin=script, timeout=240)
    finally:
        writer.kill()
        writer.wait(timeout=10)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("🖼") == 8 and run.stdout.count("Free pictures left today") == 8
    assert "database" not in run.stdout.lower() and "went wrong" not in run.stdout and "Traceback" not in run.stderr
    with sqlite3.connect(db) as check:
        written = int(check.execute("SELECT value FROM meta WHERE key = 'writer'").fetchone()[0])
    assert written > 50  # the writer really wrote all along


def test_settings_that_cannot_work_exit_at_once_with_one_clear_line(tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text("{ not json")
    bad_models = _bot(tmp_path / "a", "console", stdin="", timeout=60, IMAGEBOT_MODELS_FILE=str(models))
    assert bad_models.returncode == 2 and "configuration cannot work" in bad_models.stderr
    assert "Traceback" not in bad_models.stderr
    bad_value = _bot(tmp_path / "b", "console", stdin="", timeout=60, IMAGEBOT_WEB_PORT="eighty")
    assert bad_value.returncode == 2 and "web_port" in bad_value.stderr and "Traceback" not in bad_value.stderr


def test_the_ledger_tool_reads_without_creating_and_says_what_it_needs(data_dir: Path) -> None:
    nobody = _bot(data_dir, "ledger", "--user", "console:nobody")
    assert nobody.returncode == 1 and "No user console:nobody" in nobody.stderr
    assert "nobody" not in _bot(data_dir, "ledger", "--user", "console:nobody").stdout  # still not created
    bare = _bot(data_dir, "ledger")
    assert bare.returncode == 2 and "--job" in bare.stderr
    odd = _bot(data_dir, "ledger", "--job=-abc")  # an id with a leading dash still parses
    assert odd.returncode == 1 and "No job -abc" in odd.stderr
