"""A small neutral router: each feature module registers its commands and buttons beside them.

    router = Router()

    @router.command("balance")
    async def balance(ctx: Ctx, rest: str, incoming: Incoming) -> None: ...

    @router.press("s")                      # button payloads "s:..."
    async def setting_pressed(ctx: Ctx, kind: str, payload: str) -> None: ...

``handlers/app.py`` includes every feature's router and is the one place that turns a
user-facing error into an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from handlers.context import Ctx
    from handlers.port import Incoming

CommandHandler = Callable[["Ctx", str, "Incoming"], Awaitable[None]]
PressHandler = Callable[["Ctx", str, str], Awaitable[None]]  # ctx, kind, payload
H = TypeVar("H")


class Router:
    def __init__(self) -> None:
        self.commands: dict[str, CommandHandler] = {}
        self.presses: dict[str, PressHandler] = {}

    def command(self, *names: str) -> Callable[[CommandHandler], CommandHandler]:
        """Commands ``/name``; ``names`` are the commands this handler takes."""
        return self._register(self.commands, names, "/{}")

    def press(self, *kinds: str) -> Callable[[PressHandler], PressHandler]:
        """Button payloads ``kind:...``; ``kinds`` are the prefixes this handler takes."""
        return self._register(self.presses, kinds, "press {!r}")

    @staticmethod
    def _register(table: dict[str, H], keys: tuple[str, ...], what: str) -> Callable[[H], H]:
        def register(fn: H) -> H:
            for key in keys:
                if key in table:
                    raise ValueError(f"{what.format(key)} is registered twice")
                table[key] = fn
            return fn

        return register

    def include(self, *routers: Router) -> Router:
        for other in routers:
            for name, fn in other.commands.items():
                self.command(name)(fn)
            for kind, pressed in other.presses.items():
                self.press(kind)(pressed)
        return self
