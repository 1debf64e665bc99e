"""Logging for the process, with no secret in any record at any level.

Secrets known at start (the bot tokens, vendor keys, the link secret) are registered with
``redact_in_logs`` and replaced in every record of the process, from any library and to
any handler, tracebacks included. Secrets made per job (vendor callback tokens in URL
paths, the ``sig`` of a signed media link) are unknown in advance and are masked by their
shape. Libraries that log request URLs or SQL parameters are kept above DEBUG.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any

# Libraries whose debug or info output carries secrets or URLs with secrets in them:
# aiosqlite logs every statement with its parameters (callback tokens), httpx/aiohttp log
# request URLs (a Telegram URL holds the token).
NOISY = ("httpx", "httpcore", "aiogram.event", "aiohttp.access", "aiosqlite", "discord.http", "discord.gateway",
         "discord.webhook", "websockets")

_SHAPES = (
    # Signed media links: /media/<key>?exp=...&sig=<hmac>
    (re.compile(r"(sig=)[0-9a-fA-F]{16,}"), r"\1<redacted>"),
    # Per-task callback paths: /callbacks/<vendor>/<token>
    (re.compile(r"(/callbacks/[A-Za-z0-9_-]+/)[A-Za-z0-9_.~-]{8,}"), r"\1<redacted>"),
    # A Telegram bot token anywhere (file and API URLs)
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b"), "<telegram-token>"),
    # Discord interaction tokens: in callback and follow-up webhook URLs, and in gateway
    # INTERACTION_CREATE payloads (discord.py logs both at DEBUG). Each is good for 15 minutes.
    (re.compile(r"(/(?:interactions|webhooks)/\d+/)[A-Za-z0-9_.~-]{16,}"), r"\1<redacted>"),
    (re.compile(r"""(['"]token['"]\s*:\s*['"])[^'"]{16,}"""), r"\1<redacted>"),
)

_secrets: set[str] = set()
_base_factory: Callable[..., logging.LogRecord] | None = None


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "<redacted>")
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _base_factory is not None
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:
        return record
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters reuse a filled exc_text, so the traceback is redacted once, here.
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    return record


def install_redaction() -> None:
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)


def redact_in_logs(*secrets: str) -> None:
    """Replace each of ``secrets`` in every log record of the process from now on."""
    _secrets.update(s for s in secrets if s and len(s) >= 6)
    install_redaction()


def secrets_of(settings: Any) -> Iterable[str]:
    """Every SecretStr value in the settings."""
    from pydantic import SecretStr

    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            yield value.get_secret_value()


def setup_logging(settings: Any, *, quiet: bool) -> None:
    """``quiet`` (the console): the chat is the interface, so library chatter goes nowhere,
    but an explicit IMAGEBOT_LOG_LEVEL still wins."""
    explicit = "log_level" in settings.model_fields_set
    level_name = settings.log_level.upper() if (explicit or not quiet) else "WARNING"
    level = getattr(logging, level_name, logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    redact_in_logs(*secrets_of(settings))
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if quiet:
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
