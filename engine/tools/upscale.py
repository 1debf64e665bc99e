"""Upscale a picture with an ESRGAN-family model, tile by tile so big pictures fit in memory.

Tiling follows Real-ESRGAN: each tile is run with ``overlap`` extra input pixels on every
side and only its centre is kept, so seams vanish as long as the overlap covers most of
the network's receptive field. Requests the model does not match are met with Lanczos:
an x4 model asked for x2 (or x3) runs once and is resized down; an x2 model asked for x4
runs twice; an x1 (restoration) model runs once and is resized up.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from engine.errors import BackendError, JobCancelled, ModelUnavailable

if TYPE_CHECKING:
    import torch

    from engine.tools.rrdb import RRDBNet

# The largest result we make: 4096x4096 (an x4 of 1024x1024, an x2 of 2048x2048). A
# bigger PNG is over most chat platforms' upload limits anyway.
MAX_OUTPUT_PIXELS = 4096 * 4096
DEFAULT_TILE = 256
DEFAULT_OVERLAP = 16

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


def resolve_torch_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_upscale_size(
    width: int, height: int, scale: int, max_output_pixels: int = MAX_OUTPUT_PIXELS
) -> None:
    """Refuse a request whose result would be too big, naming the largest square that fits."""
    if width * height * scale * scale > max_output_pixels:
        max_side = math.isqrt(max_output_pixels // (scale * scale))
        raise BackendError(
            "error-upscale-too-large",
            backend="tools",
            width=width,
            height=height,
            scale=scale,
            max_side=max_side,
        )


class Upscaler:
    """One upscaler weights file; the network loads on first use and stays cached."""

    def __init__(
        self,
        weights_path: Path,
        device: str = "auto",
        *,
        tile: int = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        half: bool | None = None,
        max_output_pixels: int = MAX_OUTPUT_PIXELS,
    ) -> None:
        self.weights_path = Path(weights_path)
        self.device = device
        self.tile = tile
        self.overlap = overlap
        self.half = half
        self.max_output_pixels = max_output_pixels
        self._net: RRDBNet | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.weights_path.stem

    @property
    def loaded(self) -> bool:
        return self._net is not None

    def load(self) -> RRDBNet:
        """The network, loading it once; raises ModelUnavailable for a missing or bad file."""
        with self._lock:
            if self._net is None:
                self._net = self._load()
            return self._net

    def _load(self) -> RRDBNet:
        import torch

        from engine.tools.rrdb import WeightsError, load_rrdbnet

        if not self.weights_path.is_file():
            raise ModelUnavailable(self.name, f"the weights file {self.weights_path.name} is missing")
        try:
            net = load_rrdbnet(self.weights_path)
        except WeightsError as e:
            raise ModelUnavailable(self.name, str(e)) from e
        self.device = resolve_torch_device(self.device)
        if self.half is None:
            self.half = self.device.startswith("cuda")  # fp16 on CPU is ~10x slower
        net = net.to(self.device, dtype=torch.float16 if self.half else torch.float32)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    @property
    def model_scale(self) -> int:
        return self.load().scale

    def upscale(
        self,
        image: Image.Image,
        scale: int = 4,
        *,
        on_progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        tile: int | None = None,
    ) -> Image.Image:
        """``image`` made ``scale`` times wider and taller. Raises JobCancelled between tiles."""
        if scale < 1:
            raise ValueError("scale must be at least 1")
        w, h = image.size
        check_upscale_size(w, h, scale, self.max_output_pixels)
        net = self.load()
        rgb, alpha = _split_alpha(image)
        passes = 1 if net.scale == 1 else max(1, math.ceil(math.log(scale) / math.log(net.scale) - 1e-9))
        tiles_per_pass = []
        size = (w, h)
        for _ in range(passes):
            tiles_per_pass.append(_tile_count(size, tile if tile is not None else self.tile, net.unshuffle))
            size = (size[0] * net.scale, size[1] * net.scale)
        total, done = sum(tiles_per_pass), 0

        def tick() -> None:
            nonlocal done
            done += 1
            if on_progress is not None:
                on_progress(done, total)

        if on_progress is not None:
            on_progress(0, total)
        out = rgb
        for _ in range(passes):
            out = self._run_net(net, out, tile if tile is not None else self.tile, tick, should_stop)
        target = (w * scale, h * scale)
        if out.size != target:
            out = out.resize(target, Image.Resampling.LANCZOS)
        if alpha is not None:
            out.putalpha(alpha.resize(target, Image.Resampling.LANCZOS))
        return out

    def _run_net(
        self,
        net: RRDBNet,
        image: Image.Image,
        tile: int,
        tick: Callable[[], None],
        should_stop: StopFn | None,
    ) -> Image.Image:
        import torch

        dtype = torch.float16 if self.half else torch.float32
        arr = np.asarray(image, dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
        h, w = x.shape[2:]
        # x2/x1 models pixel-unshuffle: pad the input to a multiple of the factor (reflect),
        # then crop the result back.
        f = net.unshuffle
        ph, pw = (-h) % f, (-w) % f
        if ph or pw:
            x = torch.nn.functional.pad(
                x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate"
            )
        with torch.inference_mode():
            y = _tiled(net, x, tile, self.overlap, f, self.device, dtype, tick, should_stop)
            y = y[0, :, : h * net.scale, : w * net.scale]
            out = y.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(out, "RGB")


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """RGB for the network; any alpha is resized on its own (the networks are RGB only)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return image.convert("RGB"), None


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _tile_count(size: tuple[int, int], tile: int, f: int) -> int:
    if tile <= 0:
        return 1
    tile = _round_up(tile, f)
    w, h = _round_up(size[0], f), _round_up(size[1], f)
    return math.ceil(w / tile) * math.ceil(h / tile)


def _tiled(
    net: RRDBNet,
    x: torch.Tensor,
    tile: int,
    overlap: int,
    f: int,
    device: str,
    dtype: torch.dtype,
    tick: Callable[[], None],
    should_stop: StopFn | None,
) -> torch.Tensor:
    """Run ``net`` over ``x`` (1,C,H,W on the CPU) tile by tile; the result stays on the CPU."""
    _, c, h, w = x.shape
    s = net.scale
    if tile <= 0:
        tile = max(h, w)
    # Tile edges must fall on the pixel-unshuffle grid, or tiles would not line up.
    tile, overlap = _round_up(tile, f), _round_up(max(0, overlap), f)
    out = x.new_zeros((1, c, h * s, w * s))
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            if should_stop is not None and should_stop():
                raise JobCancelled()
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
            py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
            piece = net(x[:, :, py0:py1, px0:px1].to(device, dtype)).float().cpu()
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = piece[
                :, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s
            ]
            tick()
    return out
