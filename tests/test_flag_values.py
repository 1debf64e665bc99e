"""Flag values as users type them: quoted back as typed, sizes put on the grid of 8 with a
note, and computed sizes that stay within the limits."""

from __future__ import annotations

import pytest

from engine.backend import ModelInfo
from handlers.flags import FlagError, parse_prompt
from handlers.requests import Defaults, InvalidRequest, build_generation
from locales import tr

MODEL = ModelInfo(name="demo", backend="local", default_size=512)
BIG_MODEL = ModelInfo(name="xl", backend="local", default_size=1024)


def generation(text: str, *, model: ModelInfo = MODEL, kind: str = "txt2img",
               image_size: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    parsed = parse_prompt(text)
    images = {"init_image": "a" * 64 + ".png"} if kind == "img2img" else {}
    return build_generation(prompt=parsed.prompt, flags=parsed.flags, defaults=Defaults({}), model=model,
                            kind=kind, images=images, image_size=image_size)


@pytest.mark.parametrize(("text", "quoted"), [
    ("a fox --cfg  lots", "“lots”"),
    ("a fox --seed   banana  ", "“banana”"),
    ("a fox --ar  3", "“3”"),
    ("a fox --size   big", "“big”"),
])
def test_a_bad_value_is_quoted_as_typed_without_the_spaces_around_it(text: str, quoted: str) -> None:
    with pytest.raises(FlagError) as e:
        parse_prompt(text)
    assert quoted in tr("en", e.value.key, **e.value.args_)
    assert quoted in tr("zh-CN", e.value.key, **e.value.args_)


def test_an_extreme_aspect_is_quoted_without_a_stray_space() -> None:
    with pytest.raises(FlagError) as e:
        parse_prompt("a fox --ar  99:1 ")
    assert tr("en", e.value.key, **e.value.args_) == "The aspect 99:1 is too extreme (at most 4:1)."


def test_a_size_off_the_grid_is_rounded_to_multiples_of_8_and_noted() -> None:
    parsed = parse_prompt("a fox --size 100x100")
    assert parsed.flags["size"] == (104, 104)
    (note,) = parsed.notes
    assert tr("en", note.key, **note.args) == "Sizes must be multiples of 8: 100x100 became 104x104."
    assert "104x104" in tr("zh-CN", note.key, **note.args)
    spec = generation("a fox --size 100x100")
    assert (spec.width, spec.height) == (104, 104)


def test_a_size_on_the_grid_has_no_note() -> None:
    parsed = parse_prompt("a fox --size 768x512")
    assert parsed.flags["size"] == (768, 512) and parsed.notes == ()


def test_a_size_beyond_the_limits_is_refused_naming_what_was_typed() -> None:
    assert parse_prompt("a fox --size 30x2046").flags["size"] == (30, 2048)  # 30 cannot be rounded into range
    with pytest.raises(InvalidRequest) as e:
        generation("a fox --size 30x2046")
    assert [(p.key, p.args["value"]) for p in e.value.problems] == [("error-too-small", "30")]


def test_a_wide_picture_keeps_its_shape_within_the_limits_at_a_large_default_side() -> None:
    spec = generation("a panorama", model=BIG_MODEL, kind="img2img", image_size=(8000, 1000))
    assert (spec.width, spec.height) == (2048, 256)
