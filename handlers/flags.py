"""Midjourney-style inline flags: ``a red fox --ar 3:2 --seed 7 --no blurry, text``.

``parse_prompt`` splits a message into the prompt and typed flag values, or raises a
``FlagError`` that names the offending flag and value. It never raises anything else:
a property test feeds it arbitrary text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import UserFacingError

# Phones turn "--" into an em or en dash; accept those spellings too.
_FLAG_RE = re.compile(r"(?:(?<=\s)|^)(?:--|—|–)([A-Za-z][A-Za-z0-9_-]*)")


class FlagError(UserFacingError):
    pass


def _int(flag: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="integer") from None


def _float(flag: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="number")
    return value


def _ratio(flag: str, raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,3})\s*[:x×/]\s*(\d{1,3})\s*", raw)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="ratio")
    w, h = int(m.group(1)), int(m.group(2))
    if max(w, h) / min(w, h) > 4:
        raise FlagError("error-aspect-too-extreme", value=raw)
    return w, h


def _size(flag: str, raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{2,5})\s*[x×*]\s*(\d{2,5})\s*", raw)
    if not m:
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="size")
    return int(m.group(1)), int(m.group(2))


def _word(flag: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 200:
        raise FlagError("error-flag-value", flag=flag, value=raw[:40], expected="name")
    return value


def _text(flag: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise FlagError("error-flag-value", flag=flag, value=raw, expected="text")
    return value


@dataclass(frozen=True)
class FlagSpec:
    name: str
    parse: Any
    aliases: tuple[str, ...] = ()


FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("ar", _ratio, ("aspect",)),
    FlagSpec("size", _size),
    FlagSpec("seed", _int),
    FlagSpec("no", _text, ("neg", "negative")),
    FlagSpec("n", _int, ("repeat", "count")),
    FlagSpec("steps", _int),
    FlagSpec("cfg", _float, ("guidance",)),
    FlagSpec("model", _word, ("m",)),
    FlagSpec("backend", _word, ("b",)),
    FlagSpec("strength", _float, ("iw",)),
    FlagSpec("style", _word),
    FlagSpec("control", _word, ("cn",)),
    FlagSpec("scale", _int),
    # Console only: files on the local disk.
    FlagSpec("image", _text, ("img",)),
    FlagSpec("mask", _text),
    FlagSpec("face", _text),
)
_BY_NAME = {alias: spec for spec in FLAGS for alias in (spec.name, *spec.aliases)}
KNOWN_FLAGS = tuple(spec.name for spec in FLAGS)


@dataclass(frozen=True)
class ParsedPrompt:
    prompt: str
    flags: dict[str, Any] = field(default_factory=dict)


def parse_prompt(text: str) -> ParsedPrompt:
    """Split ``text`` into the prompt and its flags; raise FlagError on anything wrong."""
    matches = list(_FLAG_RE.finditer(text))
    prompt = text[: matches[0].start()] if matches else text
    flags: dict[str, Any] = {}
    unknown: list[str] = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        raw = text[m.end():end]
        name = m.group(1).lower()
        spec = _BY_NAME.get(name)
        if spec is None:
            unknown.append("--" + m.group(1))
            continue
        if spec.name in flags:
            raise FlagError("error-flag-repeated", flag="--" + spec.name)
        if not raw.strip():
            raise FlagError("error-flag-missing-value", flag="--" + spec.name)
        flags[spec.name] = spec.parse("--" + spec.name, raw)
    if unknown:
        raise FlagError("error-unknown-flags", flags=", ".join(unknown), known=", ".join("--" + k for k in KNOWN_FLAGS))
    return ParsedPrompt(prompt=" ".join(prompt.split()), flags=flags)


def split_command(text: str) -> tuple[str | None, str]:
    """``"/imagine@MyBot a fox"`` -> ``("imagine", "a fox")``; plain text -> ``(None, text)``."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None, stripped
    head, _, rest = stripped.partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + (" " + rest if rest else "")
    name = head[1:].split("@", 1)[0].lower()
    if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
        return None, stripped
    return name, rest.strip()
