"""Our own RRDBNet (ESRGAN / Real-ESRGAN), so the published weight files load without
basicsr or spandrel (both drag in torchvision, which breaks this environment).

The module names match Real-ESRGAN's ``RRDBNet`` exactly (``conv_first``,
``body.N.rdbK.convM``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
``conv_last``), so ``RealESRGAN_x4plus.pth``, ``RealESRGAN_x2plus.pth`` and the 6-block
anime model load strictly. The shape of the network is read from the state dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing every earlier output (dense), scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks and a scaled skip."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """The ESRGAN generator. The body always upsamples x4 (two nearest x2 + conv);
    x2 and x1 models first fold pixels into channels (pixel-unshuffle), as Real-ESRGAN does.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        unshuffle = {4: 1, 2: 4, 1: 16}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    @property
    def unshuffle(self) -> int:
        """The input side must be a multiple of this (pixel-unshuffle factor)."""
        return {4: 1, 2: 2, 1: 4}[self.scale]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


@dataclass(frozen=True)
class RRDBConfig:
    num_in_ch: int
    num_out_ch: int
    scale: int
    num_feat: int
    num_block: int
    num_grow_ch: int


class WeightsError(ValueError):
    """A weights file is missing, unreadable or not an RRDBNet state dict."""


_BODY_RE = re.compile(r"^body\.(\d+)\.")


def infer_config(state: dict[str, torch.Tensor]) -> RRDBConfig:
    """Read the network's shape from Real-ESRGAN-named weights."""
    try:
        first = state["conv_first.weight"]
        last = state["conv_last.weight"]
        grow = state["body.0.rdb1.conv1.weight"]
    except KeyError as e:
        raise WeightsError(f"not a Real-ESRGAN RRDBNet state dict (no {e.args[0]})") from None
    num_feat, in_folded = int(first.shape[0]), int(first.shape[1])
    num_out_ch = int(last.shape[0])
    # x2 / x1 models see 4x / 16x the input channels after pixel-unshuffle.
    ratio = in_folded / num_out_ch
    scale = {1.0: 4, 4.0: 2, 16.0: 1}.get(ratio)
    if scale is None:
        raise WeightsError(
            f"cannot tell the scale: conv_first takes {in_folded} channels, conv_last gives {num_out_ch}"
        )
    blocks = {int(m.group(1)) for k in state if (m := _BODY_RE.match(k))}
    return RRDBConfig(
        num_in_ch=num_out_ch,
        num_out_ch=num_out_ch,
        scale=scale,
        num_feat=num_feat,
        num_block=max(blocks) + 1,
        num_grow_ch=int(grow.shape[0]),
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.pth`` (optionally wrapped in params_ema/params) or ``.safetensors``."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: object = load_file(str(path), device="cpu")
        else:
            # weights_only: a .pth is a pickle; never run code from a downloaded file.
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # torch/safetensors raise many types for a damaged file
        raise WeightsError(f"cannot read {path.name}: {type(e).__name__}") from e
    if isinstance(raw, dict):
        for wrapper in ("params_ema", "params", "state_dict", "model"):
            if isinstance(raw.get(wrapper), dict):
                raw = raw[wrapper]
                break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path.name} does not hold a state dict")
    # Checkpoints saved from DataParallel prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in raw.items()}


def load_rrdbnet(path: Path) -> RRDBNet:
    """Build an RRDBNet shaped like the weights in ``path`` and load them strictly (eval mode)."""
    state = read_state_dict(path)
    try:
        cfg = infer_config(state)
    except WeightsError as e:
        raise WeightsError(f"{Path(path).name}: {e}") from None
    net = RRDBNet(cfg.num_in_ch, cfg.num_out_ch, cfg.scale, cfg.num_feat, cfg.num_block, cfg.num_grow_ch)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{Path(path).name} does not fit RRDBNet: {str(e).splitlines()[0]}") from e
    return net.eval()
