"""Buttons that keep working after a restart and months later.

Every button's ``custom_id`` *is* the handlers' opaque payload (``u:JOB:k``, ``x:JOB``,
``s:ar:3:2``; at most 64 bytes, under Discord's 100). One ``DynamicItem`` whose template
matches any custom_id is registered once with ``client.add_dynamic_items``: discord.py
builds it from the pressed component, and its callback hands the payload to the adapter,
which turns it into a ``Press``. No View object has to survive; the handlers check every
payload against the database, so a forged or stale one changes nothing.

Discord allows 5 buttons in a row and 5 rows in a message: longer rows are wrapped, and
what still does not fit is left out (logged).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import discord

from handlers.port import Button

log = logging.getLogger(__name__)

ROW_WIDTH = 5
ROWS = 5
LABEL_LIMIT = 80

# What pressing one of our buttons calls: (interaction, payload).
PressCallback = Callable[[discord.Interaction, str], Awaitable[None]]


class PayloadButton(discord.ui.DynamicItem[discord.ui.Button], template=re.compile(r"(?P<data>.{1,100})", re.S)):
    """A button whose custom_id is a handlers payload."""

    def __init__(self, label: str, data: str, *, style: discord.ButtonStyle = discord.ButtonStyle.secondary,
                 row: int | None = None) -> None:
        super().__init__(discord.ui.Button(label=label[:LABEL_LIMIT] or "·", custom_id=data, style=style), row=row)
        self.data = data

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,  # type: ignore[override]
                             match: re.Match[str]) -> PayloadButton:
        return cls(item.label or "", match["data"], style=item.style)

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        on_press: PressCallback | None = getattr(interaction.client, "on_press", None)
        if on_press is not None:
            await on_press(interaction, self.data)


def style_of(button: Button) -> discord.ButtonStyle:
    return discord.ButtonStyle.danger if button.data.startswith("x:") else discord.ButtonStyle.secondary


def view_of(rows: list[list[Button]] | None) -> discord.ui.View | None:
    """A discord.py view holding ``rows`` as persistent payload buttons; None without buttons."""
    if not rows:
        return None
    view = discord.ui.View(timeout=None)
    placed = 0
    wrapped = [row[i:i + ROW_WIDTH] for row in rows if row for i in range(0, len(row), ROW_WIDTH)]
    for index, row in enumerate(wrapped[:ROWS]):
        for button in row:
            view.add_item(PayloadButton(button.label, button.data, style=style_of(button), row=index))
            placed += 1
    total = sum(len(row) for row in rows)
    if placed < total:
        log.warning("%d of %d buttons did not fit Discord's 5 rows of 5", total - placed, total)
    return view if placed else None

