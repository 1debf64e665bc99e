"""The console through its real entry point, as a user runs it: ``python -m bot console``
with piped input, the demo model built by ``python -m bot demo-model``, and a kill -9 in
the middle of a job followed by a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.processes import ROOT, bot_command, console_env, run_bot


def _bot(data_dir: Path, *args: str, stdin: str = "", timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return run_bot(console_env(data_dir), *args, stdin=stdin, timeout=timeout)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("console")
    built = _bot(data, "demo-model")
    assert built.returncode == 0, built.stderr
    assert "paints noise" in built.stdout
    return data


def _paths(stdout: str) -> list[Path]:
    return [Path(line.split("🖼", 1)[1].strip()) for line in stdout.splitlines() if "🖼" in line]


def test_piped_session_generates_and_saves_stamped_pngs(data_dir, tmp_path):
    init = tmp_path / "photo.png"
    Image.new("RGB", (96, 64), (20, 120, 200)).save(init)
    mask = tmp_path / "mask.png"
    Image.new("L", (96, 64), 255).save(mask)
    script = "\n".join([
        "/imagine a red fox in snow --ar 3:2 --n 2 --seed 7 --steps 4 --no blurry",
        f"/imagine a painting --image {init} --steps 4 --seed 1",
        f"/imagine a hat --image {init} --mask {mask} --steps 4 --seed 1",
        "/imagine four at once --n 4 --size 64x64 --steps 2",
        "/balance",
    ]) + "\n"
    run = _bot(data_dir, "console", stdin=script)
    assert run.returncode == 0, run.stderr
    paths = _paths(run.stdout)
    assert len(paths) == 2 + 1 + 1 + 4
    with Image.open(paths[0]) as im:
        assert im.size == (624, 416)
        assert "Negative prompt: blurry" in im.info["parameters"] and "Seed: 7" in im.info["parameters"]
    assert "Queued" in run.stdout and "%" in run.stdout
    assert "Free pictures left today" in run.stdout


def test_same_seed_same_bytes_across_processes(data_dir):
    line = "/imagine a lighthouse --seed 42 --steps 3 --size 64x64\n"
    first = _paths(_bot(data_dir, "console", stdin=line).stdout)
    second = _paths(_bot(data_dir, "console", stdin=line).stdout)
    assert first[0].read_bytes() == second[0].read_bytes()


def test_a_bad_file_and_a_bad_flag_are_explained(data_dir):
    run = _bot(data_dir, "console", stdin="/imagine x --image /no/such.png\n/imagine x --steps 0\n")
    assert "Cannot read the file /no/such.png" in run.stdout
    assert "steps = 0 is too small" in run.stdout


def test_killed_mid_job_then_restarted_finishes_and_charges_once(data_dir):
    env = console_env(data_dir)
    proc = subprocess.Popen(bot_command("console"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdin and proc.stdout
    proc.stdin.write("/imagine interrupted --steps 40 --size 320x320 --n 2 --seed 11\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "🎨" in line and "%" in line:
            break
    assert "🎨" in seen, seen
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    jobs = _bot(data_dir, "jobs").stdout
    job_id = next(line.split()[0] for line in jobs.splitlines() if "running" in line)
    restarted = _bot(data_dir, "console", stdin="")  # EOF at once: finish what is pending, then exit
    assert restarted.returncode == 0, restarted.stderr
    assert len([p for p in _paths(restarted.stdout) if job_id in p.name]) == 2
    ledger = [json.loads(line) for line in _bot(data_dir, "ledger", "--job", job_id).stdout.splitlines()]
    assert [(e["entry"], e["amount"]) for e in ledger] == [("reserve", -2), ("commit", 1), ("commit", 1)]
    again = _bot(data_dir, "console", stdin="")  # a second restart finds nothing to redo
    assert _paths(again.stdout) == []
