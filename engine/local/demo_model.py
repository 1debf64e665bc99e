"""A tiny, randomly initialised SD1.5-layout model, built locally in seconds.

It lets the whole path (queue, progress, img2img, inpaint, ControlNet, delivery) run on
a machine that cannot download real weights. It paints noise. The tests build it the
same way and load it through the same ``from_pretrained`` code users run.
"""

from __future__ import annotations

import json
from pathlib import Path

CONTROLNET_SUBDIR = "controlnet-canny"


def _byte_level_vocab() -> dict[str, int]:
    # GPT-2's bytes_to_unicode table: every byte gets a printable character, so any text,
    # Chinese included, tokenizes into known pieces without merges.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab: dict[str, int] = {}
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def build_demo_model(dest: Path, *, seed: int = 0) -> Path:
    """Write a tiny txt2img/img2img/inpaint pipeline and a tiny canny ControlNet to ``dest``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    )
    vocab = _byte_level_vocab()
    tok_dir = dest / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tok_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    ))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(dest)  # type: ignore[attr-defined]  # diffusers' mixins are untyped
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 16, 32, 32))
    controlnet.save_pretrained(dest / CONTROLNET_SUBDIR)
    (dest / "IMAGEBOT_DEMO_MODEL.txt").write_text(
        "Random weights built by `python -m bot demo-model`: this model paints noise.\n", encoding="utf-8"
    )
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.local.demo_model DEST [--seed N]`` (the bot's CLI has ``demo-model``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m engine.local.demo_model", description=main.__doc__)
    parser.add_argument("dest", type=Path, help="folder to write, e.g. models/demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_demo_model(args.dest, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
