"""A small neutral router: each feature module registers its commands and buttons beside them.

    router = Router()

    @router.command("balance")
    async def balance(ctx: Ctx, rest: str, incoming: Incoming) -> None: ...

    @router.press("s")                      # button payloads "s:..."
    async def setting_pressed(ctx: Ctx, payload: str) -> None: ...

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
F = TypeVar("F")


class Router:
    def __init__(self) -> None:
        self.commands: dict[str, CommandHandler] = {}
        self.presses: dict[str, PressHandler] = {}

    def command(self, *names: str) -> Callable[[CommandHandler], CommandHandler]:
        def register(fn: CommandHandler) -> CommandHandler:
            for name in names:
                if name in self.commands:
                    raise ValueError(f"/{name} is registered twice")
                self.commands[name] = fn
            return fn

        return register

    def press(self, *kinds: str) -> Callable[[PressHandler], PressHandler]:
        """Button payloads ``kind:...``; ``kinds`` are the prefixes this handler takes."""

        def register(fn: PressHandler) -> PressHandler:
            for kind in kinds:
                if kind in self.presses:
                    raise ValueError(f"press {kind!r} is registered twice")
                self.presses[kind] = fn
            return fn

        return register

    def include(self, *routers: Router) -> Router:
        for other in routers:
            for name, fn in other.commands.items():
                self.command(name)(fn)
            for kind, fn in other.presses.items():
                self.press(kind)(fn)
        return self
