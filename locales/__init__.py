"""Every user-visible string, through Mozilla Fluent (``fluent.runtime``).

Catalogs live in ``locales/<lang>/*.ftl``; every ``.ftl`` file of a language is loaded,
so each part of the bot keeps its strings in its own file (``imagebot.ftl``,
``vendors.ftl``, ``telegram.ftl``...). English is the fallback for a missing message;
a test checks that every language has every key with the same placeholders.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fluent.runtime import FluentLocalization, FluentResourceLoader

LOCALES_DIR = Path(__file__).resolve().parent
FALLBACK = "en"
# Language codes as the bot shows them in /lang, with the name in that language.
LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "简体中文", "ru": "Русский"}


def resource_ids(lang: str = FALLBACK) -> list[str]:
    return sorted(p.name for p in (LOCALES_DIR / lang).glob("*.ftl"))


def normalize_language(code: str | None) -> str:
    """Map a client language ("zh-hans", "zh_CN", "en-US", "ru_RU", None) to one we ship."""
    if not code:
        return FALLBACK
    c = code.replace("_", "-").lower()
    if c.startswith("zh"):
        return "zh-CN"
    for lang in LANGUAGES:
        if c == lang.lower() or c.split("-")[0] == lang.split("-")[0].lower():
            return lang
    return FALLBACK


@cache
def _localization(lang: str) -> FluentLocalization:
    loader = FluentResourceLoader(str(LOCALES_DIR / "{locale}"))
    chain = [lang] if lang == FALLBACK else [lang, FALLBACK]
    ids = sorted(set(resource_ids(FALLBACK)) | set(resource_ids(lang)))
    return FluentLocalization(chain, ids, loader)


def tr(lang: str | None, key: str, /, **args: Any) -> str:
    """The message ``key`` in ``lang`` (falling back to English), with placeholders filled."""
    return _localization(normalize_language(lang)).format_value(key, args)


class Translator:
    """``tr`` bound to one language, for code that renders many strings for one user."""

    def __init__(self, lang: str | None) -> None:
        self.lang = normalize_language(lang)

    def __call__(self, key: str, /, **args: Any) -> str:
        return tr(self.lang, key, **args)
