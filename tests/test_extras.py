"""LoRAs, VAEs and embeddings from the flags to the job: parsed with clear errors, carried
by the job spec (old stored jobs still parse), and refused before any call by the vendors
that cannot take them."""

from __future__ import annotations

import pytest

from engine.backend import ModelInfo, Work
from engine.errors import UserFacingError
from engine.jobs import LoraRef, Txt2Img, dump_job_spec, parse_job_spec
from engine.vendors.aiimage import AiImageBackend
from engine.vendors.jumdata import JumdataBackend
from engine.vendors.paint4 import Paint4Backend
from engine.vendors.sdapi import SdApiBackend
from handlers.flags import FlagError, parse_prompt
from handlers.requests import Defaults, build_generation
from locales import tr
from tests.backend_events import run
from tests.fixtures_models import InMemoryMedia
from tests.vendor_fakes.aiimage import FakeAiImage
from tests.vendor_fakes.jumdata import FakeJumdata
from tests.vendor_fakes.paint4 import FakePaint4
from tests.vendor_fakes.sdapi import FakeSdApi

MODEL = ModelInfo(name="demo", backend="local")


def spec_from(text: str) -> Txt2Img:
    parsed = parse_prompt(text)
    spec = build_generation(prompt=parsed.prompt, flags=parsed.flags, defaults=Defaults({}), model=MODEL,
                            kind="txt2img", images={})
    assert isinstance(spec, Txt2Img)
    return spec


# --- flags --------------------------------------------------------------------------------


def test_lora_vae_and_embedding_flags_reach_the_job() -> None:
    spec = spec_from("a fox --lora film_grain:0.7, hayasaka --lora sharp:-0.5 --vae kl-f8-anime.ckpt "
                     "--embedding bad-hands-5 --emb FastNegativeV2")
    assert spec.loras == (LoraRef(name="film_grain", weight=0.7), LoraRef(name="hayasaka", weight=1.0),
                          LoraRef(name="sharp", weight=-0.5))
    assert spec.vae == "kl-f8-anime.ckpt" and spec.embeddings == ("bad-hands-5", "FastNegativeV2")
    assert spec.extras_used()[0] == ("lora", "film_grain") and spec.extras_used()[-1] == ("embedding", "FastNegativeV2")


@pytest.mark.parametrize(("text", "key", "shown"), [
    ("a --lora grain:3", "error-flag-lora", "“grain:3”"),
    ("a --lora grain:lots", "error-flag-lora", "“grain:lots”"),
    ("a --lora :0.5", "error-flag-lora", "“:0.5”"),
    ("a --lora ../../etc/passwd", "error-flag-extra-name", "“../../etc/passwd”"),
    ("a --vae <x>", "error-flag-extra-name", "“<x>”"),
    ("a --lora grain --lora Grain:0.2", "error-flag-name-twice", "“Grain”"),
    ("a --lora a,b,c,d,e,f", "error-flag-too-many", "5"),
    ("a --embedding ,", "error-flag-missing-value", "--embedding"),
    ("a --vae x --vae y", "error-flag-repeated", "--vae"),
])
def test_bad_extra_flags_are_explained(text: str, key: str, shown: str) -> None:
    with pytest.raises(FlagError) as e:
        parse_prompt(text)
    assert e.value.key == key
    assert shown in tr("en", key, **e.value.args_) and shown in tr("zh-CN", key, **e.value.args_)


def test_a_job_stored_before_extras_existed_still_parses_and_new_ones_round_trip() -> None:
    old = '{"kind": "txt2img", "prompt": "a fox", "width": 512, "height": 512, "seed": 3}'
    spec = parse_job_spec(old)
    assert (spec.loras, spec.vae, spec.embeddings) == ((), "", ())
    new = Txt2Img(prompt="a fox", loras=(LoraRef(name="grain", weight=0.25),), vae="v.pt", embeddings=("neg",))
    assert parse_job_spec(dump_job_spec(new)) == new


# --- vendors that cannot take them ----------------------------------------------------------


@pytest.mark.parametrize("spec", [
    Txt2Img(prompt="a fox", loras=(LoraRef(name="grain"),)),
    Txt2Img(prompt="a fox", vae="kl-f8.ckpt"),
    Txt2Img(prompt="a fox", embeddings=("bad-hands-5",)),
], ids=["lora", "vae", "embedding"])
async def test_vendors_without_extras_refuse_them_before_any_call(spec: Txt2Img) -> None:
    what, name = spec.extras_used()[0]
    async with FakePaint4() as paint4, FakeAiImage() as aiimage, FakeSdApi() as sdapi, FakeJumdata() as jumdata:
        pairs = [
            (paint4, Paint4Backend(paint4.base_url)),
            (aiimage, AiImageBackend(aiimage.base_url)),
            (sdapi, SdApiBackend(sdapi.base_url)),
            (jumdata, JumdataBackend(jumdata.base_url, jumdata.app_id, jumdata.app_secret)),
        ]
        for fake, backend in pairs:
            try:
                assert backend.supports(spec)  # so that check() can say why
                with pytest.raises(UserFacingError) as e:
                    backend.check(spec)
                assert (e.value.key, e.value.args_["what"], e.value.args_["value"]) == (
                    "error-extra-unsupported", what, name)
                assert f"--{what}" in tr("en", e.value.key, **e.value.args_)
                with pytest.raises(UserFacingError):
                    await run(backend, Work(job_id="job-1", spec=spec, media=InMemoryMedia()))
                assert sum(fake.calls.values()) == 0
            finally:
                await backend.close()
