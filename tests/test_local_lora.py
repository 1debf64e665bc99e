"""LoRAs on the local engine: a tiny LoRA made here with peft for the tiny test model's
attention layers, saved as ``<models_dir>/lora/grain.safetensors``, loaded for one job and
gone again after it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import BackendError
from engine.jobs import LoraRef, Txt2Img
from engine.local.backend import LocalDiffusersBackend
from engine.local.registry import ModelRegistry
from tests.backend_events import run
from tests.fixtures_models import InMemoryMedia, make_work


def build_tiny_lora(unet_dir: Path, dest: Path, *, seed: int = 7) -> Path:
    """A random rank-4 LoRA for the UNet's attention projections, in diffusers' format."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(unet_dir)
    torch.manual_seed(seed)
    # init_lora_weights=False: random A and B, so the LoRA really changes the picture.
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    dest.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(dest, unet_lora_layers=layers, weight_name="grain.safetensors")
    return dest / "grain.safetensors"


@pytest.fixture(scope="module")
def models_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder as the bot keeps one: the demo model and a lora/ folder."""
    models = tmp_path_factory.mktemp("lora-models")
    (models / "demo").symlink_to(tiny_model_dir, target_is_directory=True)
    (models / "lora").mkdir()
    (models / "lora" / "notes.txt").write_text("not a LoRA")
    build_tiny_lora(tiny_model_dir / "unet", models / "lora")  # peft comes with the `local` extra
    return models


@pytest.fixture
async def backend(models_dir: Path):  # type: ignore[no-untyped-def]
    engine = LocalDiffusersBackend(ModelRegistry(models_dir), device="cpu", offline=True, default_model="demo")
    yield engine
    await engine.close()


def spec(**kw) -> Txt2Img:  # type: ignore[no-untyped-def]
    return Txt2Img(**{"prompt": "a red fox", "model": "demo", "width": 64, "height": 64, "steps": 4, "seed": 3, **kw})


async def paint(backend: LocalDiffusersBackend, job: Txt2Img) -> np.ndarray:
    _, finished = await run(backend, make_work(job, InMemoryMedia()))
    return np.asarray(Image.open(io.BytesIO(finished.images[0].png)), dtype=np.int16)


async def test_a_lora_changes_the_picture_by_its_weight_and_is_gone_after_the_job(backend) -> None:
    plain = await paint(backend, spec())
    full = await paint(backend, spec(loras=(LoraRef(name="grain", weight=1.0),)))
    half = await paint(backend, spec(loras=(LoraRef(name="Grain", weight=0.5),)))  # names ignore case
    again = await paint(backend, spec())
    assert np.abs(full - plain).max() > 0 and np.abs(half - plain).max() > 0
    assert np.abs(full - half).max() > 0  # the weight is applied
    assert np.array_equal(again, plain)  # unloaded: the cached pipeline is as it was
    unet = backend.cache.pipeline(backend.registry.get("demo"), "txt2img").unet
    assert not getattr(unet, "peft_config", None)


async def test_a_lora_file_that_does_not_fit_the_model_is_explained_and_leaves_it_clean(
        backend, models_dir: Path) -> None:
    import torch
    from safetensors.torch import save_file

    bad = models_dir / "lora" / "other_model.safetensors"
    save_file({"unet.nope.lora.down.weight": torch.zeros(4, 8), "unet.nope.lora.up.weight": torch.zeros(8, 4)},
              str(bad))
    try:
        plain = await paint(backend, spec())
        with pytest.raises(BackendError) as err:
            await paint(backend, spec(loras=(LoraRef(name="other_model"),)))
        assert (err.value.key, err.value.args_["value"]) == ("error-local-lora-bad", "other_model")
        assert np.array_equal(await paint(backend, spec()), plain)
    finally:
        bad.unlink()


async def test_extras_lists_the_lora_files(backend) -> None:
    extras = await backend.extras()
    assert [m.name for m in extras["lora"]] == ["grain"]  # notes.txt is no LoRA
    assert extras["lora"][0].backend == "local" and extras["vae"] == [] and extras["embedding"] == []


async def test_an_unknown_lora_a_vae_or_an_embedding_is_refused_before_any_work(backend) -> None:
    with pytest.raises(BackendError) as err:
        backend.check(spec(loras=(LoraRef(name="grian"),)))
    assert (err.value.key, err.value.args_["choices"]) == ("error-extra-unknown", "grain")
    for job, what in ((spec(vae="kl-f8.ckpt"), "vae"), (spec(embeddings=("bad-hands-5",)), "embedding")):
        with pytest.raises(BackendError) as err:
            backend.check(job)
        assert (err.value.key, err.value.args_["what"]) == ("error-extra-unsupported", what)
    assert backend._cache is None  # nothing was loaded to find that out


async def test_without_a_lora_folder_the_refusal_says_there_are_none(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "demo").symlink_to(tiny_model_dir, target_is_directory=True)
    engine = LocalDiffusersBackend(ModelRegistry(tmp_path), device="cpu", offline=True, default_model="demo")
    with pytest.raises(BackendError) as err:
        engine.check(spec(loras=(LoraRef(name="grain"),)))
    assert err.value.key == "error-extra-none"
    assert (await engine.extras())["lora"] == []
    await engine.close()


async def test_without_peft_a_lora_job_is_refused_as_an_admin_matter(backend, monkeypatch) -> None:
    import engine.local.backend as local_backend

    monkeypatch.setattr(local_backend, "peft_installed", lambda: False)  # a deployment without the `local` extra
    with pytest.raises(BackendError) as err:
        backend.check(spec(loras=(LoraRef(name="grain"),)))
    assert err.value.key == "error-local-lora-needs-peft"
