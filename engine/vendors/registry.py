"""Which vendor backends this deployment has: each one whose settings are filled in."""

from __future__ import annotations

import logging
from typing import Any

from engine.backend import Backend

log = logging.getLogger(__name__)


def _classes() -> list[Any]:
    from engine.vendors.aiimage import AiImageBackend
    from engine.vendors.jumdata import JumdataBackend
    from engine.vendors.paint4 import Paint4Backend
    from engine.vendors.sdapi import SdApiBackend
    from engine.vendors.zhiqite import ZhiqiteBackend

    return [Paint4Backend, AiImageBackend, ZhiqiteBackend, SdApiBackend, JumdataBackend]


def configured(settings: Any, *, media: Any, hub: Any) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    for cls in _classes():
        if not cls.configured(settings):
            continue
        if cls.name == "zhiqite":
            out[cls.name] = cls.from_settings(settings, media=media, hub=hub)
        else:
            out[cls.name] = cls.from_settings(settings)
        log.info("vendor backend %s enabled", cls.name)
    return out
