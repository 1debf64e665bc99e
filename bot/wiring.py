"""Builds the process from settings: storage, media, backends, scheduler, runner, outbox, app, web.

Nothing here decides product behaviour; it only connects the parts in the one direction
the README draws (adapter -> handlers -> storage -> scheduler -> backend -> outbox -> adapter).
Every resource is entered into one ``AsyncExitStack`` as it is made, so a failure while
building the third still closes the first two, and ``Runtime.stop`` closes everything in
reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bot.outbound import OutboundLimiter
from bot.settings import Settings
from engine.backend import Backend
from engine.scheduler import Capacity, Scheduler
from handlers.app import App
from handlers.context import AppConfig, Services
from handlers.outbox import Outbox
from handlers.runner import JobRunner
from handlers.status import StatusBoard
from storage.media import MediaStore
from storage.store import Storage

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """The settings cannot make a working bot; the message says what to fix."""


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
    try:
        from engine.vendors import registry as vendor_registry
    except ImportError:
        return {}
    return dict(vendor_registry.configured(settings, media=media, hub=hub))


async def build_queue(settings: Settings, media: MediaStore, hub: Any,
                      stack: contextlib.AsyncExitStack) -> tuple[Any, dict[str, Backend]]:
    """With IMAGEBOT_QUEUE_URL: the GPU backends (and the vendors, with IMAGEBOT_QUEUE_VENDORS)
    are RemoteBackends run by `python -m bot worker` processes; the bot needs no torch."""
    from bot.logs import redact_in_logs
    from engine.workers.connect import client, safe_url, url_secrets
    from engine.workers.fleet import Fleet
    from engine.workers.protocol import Keys
    from engine.workers.remote import RemoteBackend

    url = settings.queue_url.get_secret_value()
    redact_in_logs(*url_secrets(url))
    try:
        redis = client(url)
    except ValueError as e:
        raise ConfigurationError(f"IMAGEBOT_QUEUE_URL is not a Redis URL ({safe_url(url)}): {e}") from None
    stack.push_async_callback(redis.aclose)
    fleet = Fleet(redis, Keys(settings.queue_prefix), heartbeat_s=settings.worker_heartbeat_s,
                  worker_wait_s=settings.worker_wait_s)
    await fleet.start()
    stack.push_async_callback(fleet.close)
    log.info("jobs go to GPU workers through %s", safe_url(url))
    vendors = build_vendor_backends(settings, media, hub)
    remote = {"local": settings.default_model, "tools": ""}
    if settings.queue_vendors:
        for name, vendor in vendors.items():
            remote[name] = str(getattr(vendor, "default_model", "") or "")
            await _close_backend(vendor)
        vendors = {}
    backends: dict[str, Backend] = {
        name: RemoteBackend(name, fleet, media, default_model=default, max_bytes=settings.queue_max_mb * 2**20,
                            result_ttl_s=settings.queue_result_ttl_s, timeout_s=settings.job_timeout_s,
                            max_attempts=settings.worker_attempts)
        for name, default in remote.items()
    }
    for vendor in vendors.values():
        stack.push_async_callback(_close_backend, vendor)
    return fleet, {**backends, **vendors}


def lanes_of(backends: dict[str, Backend], settings: Settings) -> tuple[dict[str, int], dict[str, str]]:
    """Scheduler lanes (name -> slots) and each backend's lane. Backends on one device share
    its lane; a vendor's slots come from IMAGEBOT_BACKEND_CONCURRENCY or the backend's default."""
    lanes: dict[str, int] = {}
    routes: dict[str, str] = {}
    for name, backend in backends.items():
        lane = getattr(backend, "lane", name)
        slots = settings.backend_concurrency.get(name) or getattr(backend, "concurrency", 1)
        routes[name] = lane
        lanes[lane] = max(lanes.get(lane, 0), max(1, slots))
    return lanes, routes


@dataclass
class Runtime:
    settings: Settings
    storage: Storage
    media: MediaStore
    backends: dict[str, Backend]
    scheduler: Scheduler
    runner: JobRunner
    outbox: Outbox
    statuses: StatusBoard
    outbound: OutboundLimiter
    app: App
    web: Any = None
    hub: Any = None
    fleet: Any = None  # the GPU workers, when jobs go through Redis
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _started: bool = False
    _web_started: bool = False

    async def start(self, *, web: bool | None = None) -> int:
        """Start the queue, resume unfinished jobs, and the web server when it is needed.
        Returns how many jobs were resumed.

        Idempotent: with several platforms in one process each runner may call it; the
        first call does the work (after every messenger was attached).
        """
        want_web = web if web is not None else bool(self.settings.public_base_url)
        if want_web and self.web is not None and not self._web_started:
            self._web_started = True
            await self.web.start()
            self.stack.push_async_callback(self._stop_web)
        if self._started:
            return 0
        self._started = True
        await self.scheduler.start()
        self.stack.push_async_callback(self.scheduler.stop)
        recovered = await self.runner.recover()
        if recovered:
            log.info("resumed %d unfinished job(s) from the last run", recovered)
        return recovered

    async def _stop_web(self) -> None:
        try:
            await self.web.stop()
        except Exception:
            log.debug("web server stop failed", exc_info=True)

    async def wait_idle(self) -> None:
        """Until nothing is queued, running or waiting for delivery."""
        while True:
            await self.scheduler.wait_idle()
            await self.outbox.wait_idle()
            await asyncio.sleep(0)
            if self.scheduler.idle and self.outbox.pending == 0:
                return

    async def stop(self) -> None:
        await self.stack.aclose()


async def _close_backend(backend: Backend) -> None:
    try:
        await backend.close()
    except Exception:
        log.debug("backend close failed", exc_info=True)


async def build_runtime(settings: Settings, *, backends: dict[str, Backend] | None = None) -> Runtime:
    """Build every part; on any failure everything built so far is closed again."""
    stack = contextlib.AsyncExitStack()
    try:
        return await _build(settings, stack, backends)
    except BaseException:
        await stack.aclose()
        raise


@contextlib.asynccontextmanager
async def running_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await build_runtime(settings)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _build(settings: Settings, stack: contextlib.AsyncExitStack, backends: dict[str, Backend] | None) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # This process serves the data folder: a second bot on it is refused (DataFolderBusy).
    storage = await Storage.open(settings.db_path, daily_free=settings.daily_free_images, owner=True)
    stack.push_async_callback(storage.close)
    media = MediaStore(
        settings.media_dir,
        public_base_url=settings.public_base_url,
        link_secret=settings.link_secret.get_secret_value().encode(),
        link_ttl_s=settings.link_ttl_s,
    )
    hub = None
    web = None
    fleet = None
    try:
        from engine.vendors.callbacks import CallbackHub

        hub = CallbackHub()
    except ImportError:
        pass
    if backends is None and settings.queue_url.get_secret_value():
        fleet, backends = await build_queue(settings, media, hub, stack)
    if backends is None:
        try:
            backends = build_backends(settings, media, hub)
        except (ValueError, OSError) as e:  # a bad models file, a malformed vendor setting...
            raise ConfigurationError(str(e)) from e
        for backend in backends.values():
            stack.push_async_callback(_close_backend, backend)
    try:
        from bot.web import WebServer

        web = WebServer(host=settings.web_host, port=settings.web_port, media=media, hub=hub)
    except ImportError:
        pass
    outbound = OutboundLimiter()
    stack.push_async_callback(outbound.close)
    statuses = StatusBoard(storage, messengers={})
    outbox = Outbox(storage=storage, media=media, statuses=statuses)
    stack.push_async_callback(outbox.close)
    runner = JobRunner(storage=storage, media=media, backends=backends, statuses=statuses, outbox=outbox,
                       fallbacks=settings.fallback_backends, cost_of=settings.cost_of,
                       job_timeout_s=settings.job_timeout_s)
    lanes, routes = lanes_of(backends, settings)
    capacities: dict[str, Capacity] = dict(lanes)
    if fleet is not None:  # a remote lane has as many slots as the live workers that run it
        capacities.update({b.lane: functools.partial(fleet.capacity, name) for name, b in backends.items()
                           if getattr(b, "fleet", None) is fleet})
    scheduler = Scheduler(runner.execute, lanes=capacities, routes=routes, max_total=settings.max_queued_total,
                          on_queue_moved=runner.queue_moved)
    runner.scheduler = scheduler
    if fleet is not None:
        fleet.lanes_source = scheduler.lanes
    default_backend = settings.default_backend if settings.default_backend in backends else next(
        (b for b in backends if b != "tools"), settings.default_backend)
    config = AppConfig(
        default_backend=default_backend,
        default_model=settings.default_model,
        default_language=settings.default_language,
        max_queued_per_user=settings.max_queued_per_user,
        cost_of=settings.cost_of,
        is_admin=settings.is_admin,
    )
    services = Services(storage=storage, media=media, scheduler=scheduler, runner=runner, statuses=statuses,
                        backends=backends, config=config, fleet=fleet)
    return Runtime(settings=settings, storage=storage, media=media, backends=backends, scheduler=scheduler,
                   runner=runner, outbox=outbox, statuses=statuses, outbound=outbound, app=App(services),
                   web=web, hub=hub, fleet=fleet, stack=stack)
