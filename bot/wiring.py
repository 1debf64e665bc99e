"""Builds the process from settings: storage, media, backends, scheduler, runner, app, web.

Nothing here decides product behaviour; it only connects the parts in the one direction
the README draws (adapter -> handlers -> storage -> scheduler -> backend -> handlers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.settings import Settings
from engine.backend import Backend
from engine.scheduler import Scheduler
from handlers.app import App, AppConfig
from handlers.runner import JobRunner
from storage.media import MediaStore
from storage.store import Storage

log = logging.getLogger(__name__)


def local_engine_available() -> bool:
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def build_backends(settings: Settings, media: MediaStore, hub: Any = None) -> dict[str, Backend]:
    """Every backend this deployment can run: local ones when torch is installed, vendors
    whose base URL / credentials are configured."""
    backends: dict[str, Backend] = {}
    if local_engine_available():
        from engine.local.backend import LocalDiffusersBackend
        from engine.local.registry import ModelRegistry
        from engine.tools.backend import ToolsBackend

        registry = ModelRegistry(settings.models_dir, settings.models_file)
        backends["local"] = LocalDiffusersBackend(registry, device=settings.device, offline=settings.hf_offline,
                                                  default_model=settings.default_model)
        backends["tools"] = ToolsBackend(tool_models(settings), device=settings.device)
    else:
        log.info("torch/diffusers are not installed: the local engine is off (vendor backends only)")
    backends.update(build_vendor_backends(settings, media, hub))
    return backends


def tool_models(settings: Settings) -> Any:
    """Real tool weights at their conventional place, else the demo ones when built."""
    from engine.tools.backend import default_tool_models

    real = default_tool_models(settings.models_dir)
    demo = default_tool_models(settings.models_dir / "demo-tools")
    if not any(p.exists() for p in _paths(real)) and all(p.exists() for p in _paths(demo)):
        return demo
    return real


def _paths(models: Any) -> list[Any]:
    return [v for v in vars(models).values() if hasattr(v, "exists")]


def build_vendor_backends(settings: Settings, media: MediaStore, hub: Any) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    try:
        from engine.vendors import registry as vendor_registry
    except ImportError:
        return out
    for name, backend in vendor_registry.configured(settings, media=media, hub=hub).items():
        out[name] = backend
    return out


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    media: MediaStore
    backends: dict[str, Backend]
    scheduler: Scheduler
    runner: JobRunner
    app: App
    web: Any = None
    hub: Any = None
    _started: bool = False

    async def start(self, *, web: bool | None = None) -> None:
        """Start the queue, resume unfinished jobs, and the web server when it is needed.

        Idempotent: with several platforms in one process each runner may call it; the
        first call does the work (after every messenger was attached).
        """
        if self._started:
            if web and self.web is not None:
                await self.web.start()
            return
        self._started = True
        await self.scheduler.start()
        recovered = await self.runner.recover()
        if recovered:
            log.info("resumed %d unfinished job(s) from the last run", recovered)
        want_web = web if web is not None else bool(self.settings.public_base_url)
        if want_web and self.web is not None:
            await self.web.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self.web is not None:
            try:
                await self.web.stop()
            except Exception:
                log.debug("web server stop failed", exc_info=True)
        for backend in self.backends.values():
            try:
                await backend.close()
            except Exception:
                log.debug("backend close failed", exc_info=True)
        await self.storage.close()


async def build_runtime(settings: Settings, *, backends: dict[str, Backend] | None = None) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    storage = await Storage.open(settings.db_path, daily_free=settings.daily_free_images)
    media = MediaStore(
        settings.media_dir,
        public_base_url=settings.public_base_url,
        link_secret=settings.link_secret.get_secret_value().encode(),
        link_ttl_s=settings.link_ttl_s,
    )
    hub = None
    web = None
    try:
        from engine.vendors.callbacks import CallbackHub

        hub = CallbackHub()
    except ImportError:
        pass
    if backends is None:
        backends = build_backends(settings, media, hub)
    try:
        from bot.web import WebServer

        web = WebServer(host=settings.web_host, port=settings.web_port, media=media, hub=hub)
    except ImportError:
        pass
    runner = JobRunner(storage=storage, media=media, backends=backends, messengers={},
                       fallbacks=settings.fallback_backends, job_timeout_s=settings.job_timeout_s)
    scheduler = Scheduler(
        runner.execute,
        lanes={name: getattr(b, "concurrency", 1) for name, b in backends.items()},
        max_total=settings.max_queued_total,
        on_queue_moved=runner.queue_moved,
    )
    runner.scheduler = scheduler
    default_backend = settings.default_backend if settings.default_backend in backends else next(
        (b for b in backends if b != "tools"), settings.default_backend)
    app = App(
        storage=storage, media=media, scheduler=scheduler, runner=runner, backends=backends,
        config=AppConfig(
            default_backend=default_backend,
            default_model=settings.default_model,
            default_language=settings.default_language,
            max_queued_per_user=settings.max_queued_per_user,
            cost_of=settings.cost_of,
            is_admin=settings.is_admin,
        ),
    )
    return Runtime(settings=settings, storage=storage, media=media, backends=backends, scheduler=scheduler,
                   runner=runner, app=app, web=web, hub=hub)
