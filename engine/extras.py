"""The refusals every engine gives for a job's LoRAs, VAEs and embeddings, in one place.

A backend that cannot take a kind of extra at all refuses it with
``error-extra-unsupported``; one that takes it but has no such name refuses with
``error-extra-unknown`` naming the closest names it has (``error-extra-none`` when it has
none). The error class is the caller's: vendors' limits raise ``UserFacingError``, a
backend's own checks ``BackendError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from engine.errors import BackendError, UserFacingError

CLOSEST = 5  # names offered for an unknown one


def closest(asked: str, names: list[str]) -> str:
    """The names nearest to ``asked`` (or the first few), comma-separated, for a refusal."""
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(asked.lower(), list(by_lower), n=CLOSEST, cutoff=0.3)
    return ", ".join(by_lower[c] for c in close) if close else ", ".join(names[: CLOSEST * 2])


def refuse_unsupported(backend: str, spec: Any, takes: Iterable[str], *,
                       error: type[UserFacingError] = UserFacingError) -> None:
    """Refuse, before any work, the first extra of ``spec`` whose kind is not in ``takes``."""
    allowed = tuple(takes)
    used = spec.extras_used() if hasattr(spec, "extras_used") else []
    for what, name in used:
        if what not in allowed:
            raise error("error-extra-unsupported", backend=backend, what=what, value=name)


def unknown_extra(backend: str, what: str, asked: str, names: list[str], *,
                  error: type[UserFacingError] = BackendError) -> UserFacingError:
    """The refusal of an extra called ``asked`` that is not among ``names`` (to raise)."""
    if not names:
        return error("error-extra-none", backend=backend, what=what, value=asked)
    return error("error-extra-unknown", backend=backend, what=what, value=asked, choices=closest(asked, names))


__all__ = ["CLOSEST", "closest", "refuse_unsupported", "unknown_extra"]
