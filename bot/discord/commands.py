"""The slash commands and context menus, generated from the flag table, localized, synced once.

- ``/imagine``'s typed options come from ``handlers.flags.FLAGS``: an integer or number flag
  becomes a ranged option with the bounds the job model gives (``bounds(spec)``), a flag
  with choices a menu, ``--model`` an autocomplete answered from the suggestion cache,
  ``--backend`` a menu of the enabled backends. No limit is written down twice.
- A command turns its typed options back into the inline flags they stand for
  (``seed=7`` -> ``--seed 7``) after whatever the user typed in ``prompt``, so the
  handlers parse one thing and ``--ar 3:2`` inside the prompt works as in Midjourney.
- Names and descriptions are localized by a discord.py ``Translator`` over the same Fluent
  catalogs the bot speaks (``discord-name-*``, ``cmd-*``, ``flag-*``, ``discord-*``).
- Discord allows 200 command creations a day; a bot that syncs on every boot runs into it.
  ``sync_if_changed`` keeps a hash of each scope's generated payloads in the database and
  syncs a scope only when its definitions changed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

import discord
from discord import app_commands
from discord.app_commands import Choice, TranslationContextLocation, locale_str
from fluent.runtime import FluentLocalization, FluentResourceLoader

from handlers.app import ADMIN_COMMANDS, MENU_COMMANDS
from handlers.flags import FLAGS, FlagSpec, bounds
from locales import LANGUAGES, LOCALES_DIR, resource_ids, tr

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 100
CHOICES_LIMIT = 25
# Inline flag -> option name, where the flag's own name reads badly as an option.
OPTION_NAMES = {"no": "negative"}
# Flags that are no /imagine option: --scale belongs to /upscale.
NOT_IMAGINE = {"scale"}
# Discord locales we ship command translations for (en-US is the base text).
DISCORD_LOCALES = {discord.Locale.chinese: "zh-CN", discord.Locale.russian: "ru"}
_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")


class Actions(Protocol):
    """What a command does once Discord calls it (bot/discord/adapter.py)."""

    async def command(self, interaction: discord.Interaction, text: str, *,
                      images: Sequence[discord.Attachment] = (), mask: discord.Attachment | None = None) -> None: ...

    async def imagine_from(self, interaction: discord.Interaction, message: discord.Message) -> None: ...

    async def upscale_message(self, interaction: discord.Interaction, message: discord.Message) -> None: ...

    async def swap_into(self, interaction: discord.Interaction, message: discord.Message) -> None: ...

    def models_for(self, backend: str | None, typed: str) -> list[str]: ...


# --- the text a command stands for ------------------------------------------------------------

def imagine_flags() -> list[FlagSpec]:
    return [f for f in FLAGS if not f.console_only and f.name not in NOT_IMAGINE]


def option_name(spec: FlagSpec) -> str:
    return OPTION_NAMES.get(spec.name, spec.name)


def as_flags(values: dict[str, Any], specs: Sequence[FlagSpec]) -> str:
    """Typed option values as the inline flags they stand for, in the table's order."""
    parts = []
    for spec in specs:
        value = values.get(option_name(spec))
        if value is None or value == "":
            continue
        text = f"{value:g}" if isinstance(value, float) else str(value)
        parts.append(f"--{spec.name} {text}")
    return " ".join(parts)


# --- descriptions -----------------------------------------------------------------------------

def _text(key: str, fallback: str = "") -> locale_str:
    english = tr("en", key)
    return locale_str(_cut(english if english != key else fallback or key), key=key)


def _cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _name(command: str) -> locale_str:
    return locale_str(command, key=f"discord-name-{command}")


# --- /imagine, generated from the flag table -----------------------------------------------------

def _annotation(spec: FlagSpec) -> Any:
    span = bounds(spec)
    if spec.kind == "integer":
        return app_commands.Range[int, int(span[0]), int(span[1])] if span else int
    if spec.kind == "number":
        return app_commands.Range[float, span[0], span[1]] if span else float
    return str


def imagine_command(actions: Actions, backends: Sequence[str]) -> app_commands.Command[Any, ..., Any]:
    specs = imagine_flags()
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=discord.Interaction),
              inspect.Parameter("prompt", keyword, annotation=str)]
    descriptions: dict[str, locale_str] = {"prompt": _text("flag-prompt")}
    choices: dict[str, list[Choice[str]]] = {}
    for spec in specs:
        name = option_name(spec)
        params.append(inspect.Parameter(name, keyword, annotation=_annotation(spec) | None, default=None))
        descriptions[name] = _text(spec.help_key, spec.name)
        offered = tuple(backends) if spec.name == "backend" else spec.choices
        if offered:
            choices[name] = [Choice(name=c, value=c) for c in offered[:CHOICES_LIMIT]]
    for name in ("image", "mask"):
        params.append(inspect.Parameter(name, keyword, annotation=discord.Attachment | None, default=None))
        descriptions[name] = _text(f"flag-{name}")

    async def imagine(interaction: discord.Interaction, **values: Any) -> None:
        image, mask = values.pop("image", None), values.pop("mask", None)
        text = " ".join(p for p in ("/imagine", values.pop("prompt", ""), as_flags(values, specs)) if p)
        await actions.command(interaction, text, images=[image] if image else [], mask=mask)

    async def model_choices(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
        backend = getattr(interaction.namespace, "backend", None)
        return [Choice(name=m[:100], value=m[:100]) for m in actions.models_for(backend, current)]

    imagine.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback = app_commands.describe(**descriptions)(imagine)
    if choices:
        callback = app_commands.choices(**choices)(callback)
    callback = app_commands.autocomplete(model=model_choices)(callback)
    return app_commands.Command(name=_name("imagine"), description=_text("cmd-imagine"), callback=callback)


# --- the other commands ------------------------------------------------------------------------

def _range_of(flag_name: str) -> Any:
    spec = next(f for f in FLAGS if f.name == flag_name)
    return _annotation(spec)


# /upscale's --scale, bounded by the job model like every other number.
SCALE = _range_of("scale")


def tool_commands(actions: Actions) -> list[app_commands.Command[Any, ..., Any]]:
    @app_commands.describe(face=_text("flag-face"), image=_text("discord-option-target"))
    async def swap(interaction: discord.Interaction, face: discord.Attachment, image: discord.Attachment) -> None:
        await actions.command(interaction, "/swap", images=[face, image])

    @app_commands.describe(image=_text("flag-image"), scale=_text("flag-scale"))
    async def upscale(interaction: discord.Interaction, image: discord.Attachment,
                      scale: SCALE | None = None) -> None:  # type: ignore[valid-type]
        await actions.command(interaction, "/upscale" + (f" --scale {scale}" if scale else ""), images=[image])

    return [_command("swap", swap), _command("upscale", upscale)]


def account_commands(actions: Actions) -> list[app_commands.Command[Any, ..., Any]]:
    @app_commands.describe(change=_text("discord-option-change"))
    async def settings(interaction: discord.Interaction, change: str | None = None) -> None:
        await actions.command(interaction, f"/settings {change or ''}".strip())

    @app_commands.describe(language=_text("discord-option-language"))
    @app_commands.choices(language=[Choice(name=name, value=code) for code, name in LANGUAGES.items()])
    async def lang(interaction: discord.Interaction, language: str | None = None) -> None:
        await actions.command(interaction, f"/lang {language or ''}".strip())

    @app_commands.describe(job=_text("discord-option-job"))
    async def cancel(interaction: discord.Interaction, job: str | None = None) -> None:
        await actions.command(interaction, f"/cancel {job or ''}".strip())

    plain = [_command(name, _plain(actions, name)) for name in ("balance", "models", "help")]
    return [_command("settings", settings), _command("lang", lang), _command("cancel", cancel), *plain]


def admin_commands(actions: Actions) -> list[app_commands.Command[Any, ..., Any]]:
    """Hidden from members who may not manage the server (server admins can change that in
    Server Settings > Integrations); the handlers still check IMAGEBOT_ADMINS themselves."""

    @app_commands.describe(user=_text("discord-option-user"), amount=_text("discord-option-amount"))
    async def grant(interaction: discord.Interaction, user: discord.User, amount: int) -> None:
        await actions.command(interaction, f"/grant discord:{user.id} {amount}")

    commands = [_command("grant", grant)] + [_command(name, _plain(actions, name)) for name in ("stats", "pause",
                                                                                               "resume")]
    for command in commands:
        app_commands.default_permissions(manage_guild=True)(command)
    return commands


def _plain(actions: Actions, name: str):  # type: ignore[no-untyped-def]
    async def run(interaction: discord.Interaction) -> None:
        await actions.command(interaction, f"/{name}")

    run.__name__ = run.__qualname__ = name
    return run


def _command(name: str, callback: Any) -> app_commands.Command[Any, ..., Any]:
    return app_commands.Command(name=_name(name), description=_text(f"cmd-{name}"), callback=callback)


def context_menus(actions: Actions) -> list[app_commands.ContextMenu]:
    """Apps > ... on any message with a picture (Discord allows five message menus)."""

    async def imagine_from(interaction: discord.Interaction, message: discord.Message) -> None:
        await actions.imagine_from(interaction, message)

    async def upscale(interaction: discord.Interaction, message: discord.Message) -> None:
        await actions.upscale_message(interaction, message)

    async def swap(interaction: discord.Interaction, message: discord.Message) -> None:
        await actions.swap_into(interaction, message)

    return [app_commands.ContextMenu(name=_text(f"discord-menu-{key}"), callback=cb)
            for key, cb in (("imagine", imagine_from), ("upscale", upscale), ("swap", swap))]


def build(tree: app_commands.CommandTree[Any], actions: Actions, *, backends: Sequence[str],
          guilds: Sequence[int] = ()) -> None:
    """Every command into ``tree``: global, or (``guilds``) in those guilds only."""
    everything: list[app_commands.Command[Any, ..., Any] | app_commands.ContextMenu] = [
        imagine_command(actions, backends), *tool_commands(actions), *account_commands(actions),
        *admin_commands(actions), *context_menus(actions)]
    for command in everything:
        tree.add_command(command)
    offered = {c.name for c in tree.get_commands(type=discord.AppCommandType.chat_input)}
    missing = (set(MENU_COMMANDS) | set(ADMIN_COMMANDS)) - offered
    if missing:  # a command the handlers gained: it works in DMs as text, but has no slash command yet
        log.warning("no Discord slash command for: %s", ", ".join(sorted(missing)))
    if guilds:
        for guild in guilds:
            tree.copy_global_to(guild=discord.Object(guild))
        tree.clear_commands(guild=None)


# --- localization ---------------------------------------------------------------------------------

@cache
def _catalog(lang: str) -> FluentLocalization:
    """The language's own catalog, without the English fallback (missing -> not localized)."""
    return FluentLocalization([lang], resource_ids(lang), FluentResourceLoader(str(LOCALES_DIR / "{locale}")))


def localized(lang: str, key: str) -> str | None:
    if not (LOCALES_DIR / lang).is_dir():
        return None
    text = _catalog(lang).format_value(key)
    return None if text == key else text


class FluentTranslator(app_commands.Translator):
    """Command names, descriptions and menu names in the user's Discord language."""

    async def translate(self, string: locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        lang = DISCORD_LOCALES.get(locale)
        key = string.extras.get("key")
        if lang is None or not key:
            return None
        text = localized(lang, key)
        if text is None or text == string.message:
            return None
        if context.location is TranslationContextLocation.command_name:
            if isinstance(context.data, app_commands.ContextMenu):
                return text if 1 <= len(text) <= 32 else None
            return text if _NAME_RE.match(text) and text == text.lower() else None
        return _cut(text)


# --- syncing only what changed ----------------------------------------------------------------------

async def payload_digest(tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None) -> str:
    """A hash of exactly what ``tree.sync(guild=...)`` would send, translations included."""
    translator = tree.translator
    payloads = []
    for command in tree.get_commands(guild=guild):
        payloads.append(await command.get_translated_payload(tree, translator) if translator
                        else command.to_dict(tree))
    payloads.sort(key=lambda p: (p.get("type", 1), p["name"]))
    return hashlib.sha256(json.dumps(payloads, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


async def sync_if_changed(tree: app_commands.CommandTree[Any], storage: Any, *, application_id: int,
                          guilds: Sequence[int] = ()) -> list[str]:
    """Sync each scope (global, and every configured guild) whose definitions changed since
    the last successful sync; returns the scopes synced. A failed sync is logged and tried
    again at the next start; the commands Discord already has keep working."""
    synced: list[str] = []
    scopes: list[discord.abc.Snowflake | None] = [None, *(discord.Object(g) for g in guilds)]
    for scope in scopes:
        name = "global" if scope is None else str(scope.id)
        digest = await payload_digest(tree, scope)
        key = f"discord:commands:{application_id}:{name}"
        if await storage.meta(key) == digest:
            continue
        try:
            await tree.sync(guild=scope)
        except discord.Forbidden:
            log.warning("Discord refused the commands for guild %s: invite the bot with the "
                        "applications.commands scope there", name)
            continue
        except (discord.HTTPException, discord.RateLimited) as e:
            log.warning("command sync (%s) failed: %s; it is tried again at the next start", name, type(e).__name__)
            continue
        await storage.set_meta(key, digest)
        synced.append(name)
        log.info("Discord commands synced (%s)", name)
    return synced
