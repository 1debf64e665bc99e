"""The interactions still live: what the adapter and the messenger share about them.

An interaction token answers for 15 minutes. The handlers know an interaction only by its
id (``Incoming.message_id`` / ``Press.press_id``); this registry maps the id back to the
``discord.Interaction`` so personal replies can be ephemeral follow-ups of it, and
remembers which of our messages an interaction can still edit (an ephemeral settings
panel can only be edited through one). Nothing here outlives the process, and nothing
lasting depends on it: statuses and results always go out with the bot token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import discord

from handlers.port import MessageRef

# A margin under Discord's 15 minutes: a follow-up started at 14:59 might arrive too late.
TOKEN_TTL_S = 14 * 60.0
# Who asked is remembered longer (a "personal" reply after the token died mentions them).
_REMEMBERED = 10_000


@dataclass
class Live:
    interaction: discord.Interaction
    received: float  # time.monotonic()
    mention: str
    filled: bool = False  # a follow-up replaced the "thinking…" message
    status: MessageRef | None = None  # the status message posted in answer to it
    pressed: str | None = None  # a component interaction: the message whose button was pressed

    @property
    def key(self) -> str:
        return str(self.interaction.id)


class LiveInteractions:
    def __init__(self, *, ttl_s: float = TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._live: OrderedDict[str, Live] = OrderedDict()
        self._mentions: OrderedDict[str, str] = OrderedDict()
        self._editor: dict[str, str] = {}  # our message id -> the interaction that may edit it

    def add(self, interaction: discord.Interaction, *, mention: str = "") -> Live:
        self._prune()
        live = Live(interaction, time.monotonic(), mention)
        self._live[live.key] = live
        self._mentions[live.key] = mention
        while len(self._mentions) > _REMEMBERED:
            self._mentions.popitem(last=False)
        return live

    def get(self, interaction_id: str | None) -> Live | None:
        """The interaction if its token still answers."""
        if not interaction_id:
            return None
        live = self._live.get(interaction_id)
        if live is None or time.monotonic() - live.received > self.ttl_s:
            return None
        return live

    def known(self, some_id: str | None) -> bool:
        """Whether ``some_id`` names an interaction (live or not) rather than a message."""
        return bool(some_id) and some_id in self._mentions

    def mention_of(self, interaction_id: str | None) -> str:
        return self._mentions.get(interaction_id or "", "")

    def may_edit(self, message_id: str, live: Live) -> None:
        """``live`` can edit our message ``message_id`` (its follow-up, or the message pressed)."""
        self._editor[message_id] = live.key

    def editor_of(self, message_id: str) -> Live | None:
        return self.get(self._editor.get(message_id))

    def _prune(self) -> None:
        now = time.monotonic()
        while self._live:
            key, oldest = next(iter(self._live.items()))
            if now - oldest.received <= self.ttl_s:
                break
            del self._live[key]
        if len(self._editor) > _REMEMBERED:
            self._editor = {m: i for m, i in self._editor.items() if i in self._live}
