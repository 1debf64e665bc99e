"""Midjourney-style inline flags: ``a red fox --ar 3:2 --seed 7 --no blurry, text``.

``parse_prompt`` splits a message into the prompt and typed flag values, or raises a
``FlagError`` that names the offending flag and value (as typed, without the spaces
around it). It never raises anything else: a property test feeds it arbitrary text.

A value the parser had to adjust rather than refuse (``--size 100x100`` becomes
``104x104``, the nearest multiples of 8) comes with a ``Problem`` note in
``ParsedPrompt.notes`` for the "Queued" message and the caption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import Problem, UserFacingError
from engine.jobs import (
    CONTROL_TYPES,
    LORA_WEIGHT_MAX,
    LORA_WEIGHT_MIN,
    MAX_EMBEDDINGS,
    MAX_LORAS,
    MAX_SIDE,
    MIN_SIDE,
    Img2Img,
    Upscale,
    is_extra_name,
)

# Phones turn "--" into an em or en dash; accept those spellings too (every platform does).
FLAG_DASHES = ("--", "—", "–")
FLAG_DASH_PATTERN = "(?:" + "|".join(re.escape(d) for d in FLAG_DASHES) + ")"  # any one of them, in a regex
_FLAG_RE = re.compile(r"(?:(?<=\s)|^)" + FLAG_DASH_PATTERN + r"([A-Za-z][A-Za-z0-9_-]*)")


def starts_with_flag(text: str) -> bool:
    """Whether ``text`` begins with a flag ("--seed 9", or a phone's "—seed 9")."""
    return text.startswith(FLAG_DASHES)


class FlagError(UserFacingError):
    pass


_QUOTED_CHARS = 40  # a bad value is quoted back at most this long


def _bad(flag: str, raw: str, expected: str) -> FlagError:
    """The error for a value that does not parse, quoting it as typed (stripped, bounded)."""
    return FlagError("error-flag-value", flag=flag, value=raw.strip()[:_QUOTED_CHARS], expected=expected)


def _int(flag: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise _bad(flag, raw, "integer") from None


def _float(flag: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise _bad(flag, raw, "number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _bad(flag, raw, "number")
    return value


def _ratio(flag: str, raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{1,3})\s*[:x×/]\s*(\d{1,3})\s*", raw)
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise _bad(flag, raw, "ratio")
    w, h = int(m.group(1)), int(m.group(2))
    if max(w, h) / min(w, h) > 4:
        raise FlagError("error-aspect-too-extreme", value=raw.strip())
    return w, h


def _size(flag: str, raw: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{2,5})\s*[x×*]\s*(\d{2,5})\s*", raw)
    if not m:
        raise _bad(flag, raw, "size")
    return int(m.group(1)), int(m.group(2))


def _word(flag: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 200:
        raise _bad(flag, raw, "name")
    return value


def _text(flag: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise _bad(flag, raw, "text")
    return value


def _extra(flag: str, raw: str) -> str:
    """A LoRA, VAE or embedding name: a catalogue or file name, never a path."""
    value = raw.strip()
    if not is_extra_name(value):
        raise FlagError("error-flag-extra-name", flag=flag, value=value[:_QUOTED_CHARS])
    return value


def _names(flag: str, raw: str) -> tuple[str, ...]:
    """``--embedding a, b``: one or more names, comma-separated."""
    return tuple(_extra(flag, item) for item in raw.split(",") if item.strip())


def _loras(flag: str, raw: str) -> tuple[tuple[str, float], ...]:
    """``--lora NAME[:WEIGHT], ...``: names with a weight (1 when left out)."""
    refs: list[tuple[str, float]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, weight = item, 1.0
        if ":" in item:
            name, _, text = item.rpartition(":")
            try:
                weight = float(text)
            except ValueError:
                raise FlagError("error-flag-lora", flag=flag, value=item[:_QUOTED_CHARS]) from None
            if not LORA_WEIGHT_MIN <= weight <= LORA_WEIGHT_MAX:  # NaN fails this too
                raise FlagError("error-flag-lora", flag=flag, value=item[:_QUOTED_CHARS])
        if not name.strip():
            raise FlagError("error-flag-lora", flag=flag, value=item[:_QUOTED_CHARS])
        refs.append((_extra(flag, name.strip()), weight))
    return tuple(refs)


def _nearest_multiple_of_8(side: int) -> int:
    """``side`` rounded to the nearest multiple of 8 when that is within the limits; else
    ``side`` itself, so that validation names the value the user typed."""
    rounded = (side + 4) // 8 * 8
    return rounded if MIN_SIDE <= rounded <= MAX_SIDE else side


def round_size(size: tuple[int, int]) -> tuple[tuple[int, int], list[Problem]]:
    """``--size`` on multiples of 8 (what every engine takes), with a note when it changed."""
    width, height = size
    used = (_nearest_multiple_of_8(width), _nearest_multiple_of_8(height))
    if used == (width, height):
        return used, []
    return used, [Problem("note-size-rounded", {"asked": f"{width}x{height}", "used": f"{used[0]}x{used[1]}"})]


@dataclass(frozen=True)
class FlagSpec:
    """One flag, as every platform offers it: typed inline (``--steps 30``) in the console
    and on Telegram, and as a typed slash option on Discord, from this one description."""

    name: str
    parse: Any
    aliases: tuple[str, ...] = ()
    # Repeatable flags add up (``--lora a --lora b``) to at most this many values; 0: given once.
    repeat_limit: int = 0
    # The typed option a platform may offer: "integer", "number" or "string".
    kind: str = "string"
    # The job field whose limits bound it (engine/jobs.py holds the only copy of each limit).
    bounded_by: str = ""
    # Fixed choices a platform may offer as a menu (the parser still takes any valid value).
    choices: tuple[str, ...] = ()
    # The locale key that says what the flag does (help texts, option descriptions).
    help_key: str = ""
    # Only the console has a local disk: --image/--mask/--face name files on it.
    console_only: bool = False


ASPECTS = ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16")

FLAGS: tuple[FlagSpec, ...] = (
    FlagSpec("ar", _ratio, ("aspect",), choices=ASPECTS, help_key="flag-ar"),
    FlagSpec("size", _size, help_key="flag-size"),
    FlagSpec("seed", _int, kind="integer", bounded_by="seed", help_key="flag-seed"),
    FlagSpec("no", _text, ("neg", "negative"), help_key="flag-no"),
    FlagSpec("n", _int, ("repeat", "count"), kind="integer", bounded_by="n", help_key="flag-n"),
    FlagSpec("steps", _int, kind="integer", bounded_by="steps", help_key="flag-steps"),
    FlagSpec("cfg", _float, ("guidance",), kind="number", bounded_by="cfg", help_key="flag-cfg"),
    FlagSpec("model", _word, ("m",), help_key="flag-model"),
    FlagSpec("backend", _word, ("b",), help_key="flag-backend"),
    FlagSpec("strength", _float, ("iw",), kind="number", bounded_by="strength", help_key="flag-strength"),
    FlagSpec("style", _word, help_key="flag-style"),
    FlagSpec("control", _word, ("cn",), choices=CONTROL_TYPES, help_key="flag-control"),
    FlagSpec("scale", _int, kind="integer", bounded_by="scale", help_key="flag-scale"),
    FlagSpec("lora", _loras, ("loras",), repeat_limit=MAX_LORAS, help_key="flag-lora"),
    FlagSpec("vae", _extra, help_key="flag-vae"),
    FlagSpec("embedding", _names, ("embeddings", "emb"), repeat_limit=MAX_EMBEDDINGS, help_key="flag-embedding"),
    # Console only: files on the local disk.
    FlagSpec("image", _text, ("img",), console_only=True),
    FlagSpec("mask", _text, console_only=True),
    FlagSpec("face", _text, console_only=True),
)


def bounds(spec: FlagSpec) -> tuple[float, float] | None:
    """The smallest and largest value a job takes for ``spec``, read from the job model."""
    if not spec.bounded_by:
        return None
    from annotated_types import Ge, Gt, Le, Lt

    model = Upscale if spec.bounded_by == "scale" else Img2Img
    field_info = model.model_fields[spec.bounded_by]
    lo: float | None = None
    hi: float | None = None
    for rule in field_info.metadata:
        if isinstance(rule, Ge):
            lo = float(rule.ge)  # type: ignore[arg-type]
        elif isinstance(rule, Gt):
            # An open bound (strength > 0): the smallest value a typed option may offer.
            lo = float(rule.gt) + (0.01 if spec.kind == "number" else 1)  # type: ignore[arg-type]
        elif isinstance(rule, Le):
            hi = float(rule.le)  # type: ignore[arg-type]
        elif isinstance(rule, Lt):
            hi = float(rule.lt)  # type: ignore[arg-type]
    if lo is None or hi is None:
        return None
    return lo, hi


def flag(name: str) -> FlagSpec:
    return _BY_NAME[name]
_BY_NAME = {alias: spec for spec in FLAGS for alias in (spec.name, *spec.aliases)}
KNOWN_FLAGS = tuple(spec.name for spec in FLAGS)
CONSOLE_ONLY_FLAGS = tuple(spec.name for spec in FLAGS if spec.console_only)  # image, mask, face


@dataclass(frozen=True)
class ParsedPrompt:
    prompt: str
    flags: dict[str, Any] = field(default_factory=dict)
    # What the parser adjusted instead of refusing (``note-size-rounded``), to show the user.
    notes: tuple[Problem, ...] = ()


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
        if spec.name in flags and not spec.repeat_limit:
            raise FlagError("error-flag-repeated", flag="--" + spec.name)
        if not raw.strip():
            raise FlagError("error-flag-missing-value", flag="--" + spec.name)
        value = spec.parse("--" + spec.name, raw)
        if spec.repeat_limit:
            value = _together(spec, flags.get(spec.name, ()) + value)
        flags[spec.name] = value
    if unknown:
        raise FlagError("error-unknown-flags", flags=", ".join(unknown), known=", ".join("--" + k for k in KNOWN_FLAGS))
    notes: list[Problem] = []
    if "size" in flags:
        flags["size"], notes = round_size(flags["size"])
    return ParsedPrompt(prompt=" ".join(prompt.split()), flags=flags, notes=tuple(notes))


def _together(spec: FlagSpec, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """All values of a repeatable flag: at least one, each name once, at most ``repeat_limit``."""
    flag = "--" + spec.name
    if not values:
        raise FlagError("error-flag-missing-value", flag=flag)
    seen: set[str] = set()
    for value in values:
        name = value[0] if isinstance(value, tuple) else value  # (name, weight) or a name
        if name.lower() in seen:
            raise FlagError("error-flag-name-twice", flag=flag, value=name)
        seen.add(name.lower())
    if len(values) > spec.repeat_limit:
        raise FlagError("error-flag-too-many", flag=flag, limit=spec.repeat_limit)
    return values


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
