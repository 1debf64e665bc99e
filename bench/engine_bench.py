"""Engine benchmarks, measured side by side in one run, printed as ratios.

    .venv/bin/python bench/engine_bench.py                 # the tiny demo model, built in a temp dir
    .venv/bin/python bench/engine_bench.py --model sd-turbo --size 512 --steps 4   # a real model (GPU)

What it compares (each pair runs in this process, interleaved, best of ``--repeat``):
1. pipeline sharing: an img2img job on the cached base pipeline (``from_pipe``) versus
   loading the weights again for it. Goal: sharing is much faster .
2. batching: one job of n=4 versus four jobs of n=1. Goal: the batch is faster.
3. previews: a job with latent previews versus one without. Goal: overhead under 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from engine.backend import Finished, Work  # noqa: E402
from engine.jobs import Img2Img, Txt2Img  # noqa: E402
from engine.local.backend import LocalDiffusersBackend  # noqa: E402
from engine.local.registry import ModelRegistry  # noqa: E402
from storage.media import MediaStore  # noqa: E402


async def _run(backend: LocalDiffusersBackend, spec, media) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    async for event in backend.run(Work(job_id="bench", spec=spec, media=media)):
        if isinstance(event, Finished):
            break
    return time.perf_counter() - started


def _best(samples: list[float]) -> float:
    return min(samples)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="imagebot-bench-"))
    if args.model == "demo":
        from engine.local.demo_model import build_demo_model

        build_demo_model(tmp / "models" / "demo")
    media = MediaStore(tmp / "media")
    buf = io.BytesIO()
    Image.new("RGB", (args.size, args.size), (120, 80, 40)).save(buf, format="PNG")
    init = media.put(buf.getvalue())
    common = {"prompt": "a lighthouse at dusk", "model": args.model, "width": args.size, "height": args.size,
              "steps": args.steps, "seed": 1}
    registry = ModelRegistry(tmp / "models")

    def backend(previews: int = 5) -> LocalDiffusersBackend:
        return LocalDiffusersBackend(registry, device=args.device, offline=args.model == "demo",
                                     default_model=args.model, previews_per_job=previews)

    rows: list[tuple[str, float, float, str]] = []

    # 1. from_pipe sharing versus reloading the weights for img2img.
    shared = backend()
    await _run(shared, Txt2Img(**common), media)  # warm: base loaded once
    img2img = Img2Img(**common, init_image=init, strength=0.6)
    share_t, reload_t = [], []
    for _ in range(args.repeat):
        shared.cache._derived.clear()  # build the img2img pipeline from the cached base again
        share_t.append(await _run(shared, img2img, media))
        fresh = backend()
        reload_t.append(await _run(fresh, img2img, media))  # loads the weights from disk
        await fresh.close()
        gc.collect()
    rows.append(("img2img: shared base (from_pipe) vs reload", _best(share_t), _best(reload_t),
                 "goal: shared much faster"))

    # 2. one batch of four versus four single jobs.
    batch_t, single_t = [], []
    for _ in range(args.repeat):
        batch_t.append(await _run(shared, Txt2Img(**{**common, "n": 4}), media))
        t = 0.0
        for k in range(4):
            t += await _run(shared, Txt2Img(**{**common, "seed": 1 + k}), media)
        single_t.append(t)
    rows.append(("txt2img: n=4 in one job vs four n=1 jobs", _best(batch_t), _best(single_t),
                 "goal: batch faster"))

    # 3. latent previews versus none.
    quiet = backend(previews=0)
    quiet._cache = shared.cache  # same loaded weights, only the preview setting differs
    with_p, without_p = [], []
    for _ in range(args.repeat):
        with_p.append(await _run(shared, Txt2Img(**common), media))
        without_p.append(await _run(quiet, Txt2Img(**common), media))
    rows.append(("txt2img: with previews vs without", _best(with_p), _best(without_p),
                 "goal: ratio >= 0.95"))
    await shared.close()

    print(f"device={shared.cache.device if shared._cache else args.device} model={args.model} "
          f"size={args.size} steps={args.steps} threads={os.cpu_count()} repeat={args.repeat} (best of)")
    print(f"{'comparison':<48} {'A (s)':>8} {'B (s)':>8} {'B/A':>6}  note")
    for name, a, b, note in rows:
        print(f"{name:<48} {a:8.3f} {b:8.3f} {b / a:6.2f}  {note}")


if __name__ == "__main__":
    asyncio.run(main())
