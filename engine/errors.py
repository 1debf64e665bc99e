"""Errors that end up in front of a user carry a locale key and its arguments, never prose.

The handlers turn ``key`` + ``args`` into the user's language (``locales``). Anything
else that escapes is a bug: the handlers log it and show the generic ``error-internal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One localizable message: a key in ``locales/*/imagebot.ftl`` and its placeholders."""

    key: str
    args: dict[str, Any] = field(default_factory=dict)


class UserFacingError(Exception):
    """An error whose message the user should read, in their language."""

    def __init__(self, key: str, /, **args: Any) -> None:
        super().__init__(key, args)
        self.key = key
        self.args_ = args

    @property
    def problem(self) -> Problem:
        return Problem(self.key, dict(self.args_))

    def __str__(self) -> str:  # for logs: the key and arguments, never a secret
        return f"{self.key} {self.args_}"


class BackendError(UserFacingError):
    """A backend could not produce images.

    ``retryable`` is true for transport errors, timeouts and 5xx answers: the caller may
    try again (with backoff) or fall back to another backend. The job is refunded
    whenever a BackendError ends it.
    """

    def __init__(self, key: str, /, *, retryable: bool = False, backend: str = "", **args: Any) -> None:
        super().__init__(key, backend=backend, **args)
        self.retryable = retryable
        self.backend = backend


class JobCancelled(Exception):
    """Raised by a backend when the job's cancel token was set."""


class ModelUnavailable(BackendError):
    """The requested model cannot be loaded here (not cached and offline, bad path, ...)."""

    def __init__(self, model: str, reason: str = "") -> None:
        super().__init__("error-model-unavailable", model=model, reason=reason)


# pydantic error type -> locale key. Placeholders: field, value, limit.
_VALIDATION_KEYS = {
    "string_too_long": "error-too-long",
    "string_too_short": "error-too-short",
    "too_long": "error-too-long",
    "greater_than_equal": "error-too-small",
    "greater_than": "error-too-small",
    "less_than_equal": "error-too-large",
    "less_than": "error-too-large",
    "int_parsing": "error-not-a-number",
    "int_from_float": "error-not-a-number",
    "float_parsing": "error-not-a-number",
    "literal_error": "error-not-one-of",
    "multiple_of_8": "error-multiple-of-8",
    "too_many_pixels": "error-too-many-pixels",
    "prompt_blank": "error-prompt-empty",
    "missing": "error-missing",
}


def problems_from_validation(err: ValidationError) -> list[Problem]:
    """Turn a pydantic ValidationError on a job into messages that name the bad value."""
    problems: list[Problem] = []
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ()) if not str(p).startswith(("function-", "txt2img", "img2img",
                                                                            "inpaint", "controlnet",
                                                                            "faceswap", "upscale"))]
        name = loc[-1] if loc else ""
        ctx = e.get("ctx") or {}
        limit = next((ctx[k] for k in ("ge", "gt", "le", "lt", "max_length", "min_length") if k in ctx), "")
        value = e.get("input")
        if isinstance(value, str) and len(value) > 40:
            value = f"{len(value)} characters"
        elif isinstance(value, dict):
            value = ""
        args: dict[str, Any] = {"field": name, "value": str(value), "limit": str(limit)}
        if e["type"] == "literal_error":
            args["choices"] = str(ctx.get("expected", ""))
        if e["type"] == "too_many_pixels":
            args.update({"width": ctx.get("width", ""), "height": ctx.get("height", "")})
        problems.append(Problem(_VALIDATION_KEYS.get(e["type"], "error-invalid"), args))
    return problems
