"""The Midjourney-style flag parser: what parses, what is refused, and that nothing crashes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import UserFacingError
from handlers.flags import FlagError, parse_prompt, split_command
from locales import tr


def test_the_readme_example_parses_into_typed_flags():
    parsed = parse_prompt("a red fox in snow --ar 3:2 --n 2 --seed 7 --steps 20 --no blurry, text")
    assert parsed.prompt == "a red fox in snow"
    assert parsed.flags == {"ar": (3, 2), "n": 2, "seed": 7, "steps": 20, "no": "blurry, text"}


def test_phone_dashes_count_as_double_dashes():
    parsed = parse_prompt("a cat —ar 16:9 –seed 3")
    assert parsed.flags == {"ar": (16, 9), "seed": 3}


def test_aliases_map_to_the_canonical_flag():
    assert parse_prompt("x --repeat 3 --m demo").flags == {"n": 3, "model": "demo"}


def test_unknown_flags_are_named_in_the_error():
    with pytest.raises(FlagError) as e:
        parse_prompt("a dog --chaos 50 --weird 3")
    assert e.value.key == "error-unknown-flags"
    assert "--chaos" in e.value.args_["flags"] and "--weird" in e.value.args_["flags"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("a --seed banana", "error-flag-value"),
        ("a --cfg nan", "error-flag-value"),
        ("a --ar 3", "error-flag-value"),
        ("a --ar 10:1", "error-aspect-too-extreme"),
        ("a --seed 1 --seed 2", "error-flag-repeated"),
        ("a --steps", "error-flag-missing-value"),
    ],
)
def test_bad_values_name_the_flag(text, key):
    with pytest.raises(FlagError) as e:
        parse_prompt(text)
    assert e.value.key == key
    message = tr("en", e.value.key, **e.value.args_)
    assert "--" in message or "10:1" in message


def test_dashes_inside_words_are_not_flags():
    assert parse_prompt("a well-known x--y landmark").prompt == "a well-known x--y landmark"


def test_commands_are_split_from_their_bot_name():
    assert split_command("/imagine@ImageBot a fox --n 2") == ("imagine", "a fox --n 2")
    assert split_command("just words") == (None, "just words")
    assert split_command("/Balance") == ("balance", "")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_text_parses_or_gives_a_localized_error(text):
    try:
        parse_prompt(text)
    except UserFacingError as e:
        assert not tr("en", e.key, **e.args_).startswith("error-")
        assert not tr("zh-CN", e.key, **e.args_).startswith("error-")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["--ar", "--n", "--seed", "--no", "--x", "—steps", "3:2", "7", "a", "--", " "]),
                max_size=12))
def test_flag_soup_parses_or_gives_a_localized_error(words):
    try:
        parse_prompt(" ".join(words))
    except UserFacingError as e:
        assert not tr("en", e.key, **e.args_).startswith("error-")
