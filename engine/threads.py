"""One worker thread per device, and the one bridge from it to the event loop.

A GPU does one thing well at a time, and the schedulers of diffusers pipelines are not
thread-safe: every backend that uses a device (diffusion, upscaling, face swap) runs its
work on that device's single thread, one job after another, never on the event loop.
``DeviceThread.stream`` runs a blocking function there and turns the progress it reports
into an async stream:

    async for item in device.stream(fn, cancel):   # fn(emit, should_stop) -> result
        Progress(...)  ... then, last, Done(result)

Walking away from the stream (the consumer cancelled) sets ``should_stop``, so the worker
stops at its next step instead of finishing a picture nobody will see.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.backend import CancelToken, Progress

R = TypeVar("R")

Emit = Callable[[Progress], None]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class Done(Generic[R]):
    result: R


class DeviceThread:
    _shared: dict[str, DeviceThread] = {}
    _shared_lock = threading.Lock()

    def __init__(self, device: str) -> None:
        self.device = device
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"device-{device}")
        self._users = 0

    @classmethod
    def for_device(cls, device: str) -> DeviceThread:
        """The one thread of ``device`` in this process, shared by every backend on it."""
        with cls._shared_lock:
            thread = cls._shared.get(device)
            if thread is None or thread._executor._shutdown:  # type: ignore[attr-defined]
                thread = cls._shared[device] = DeviceThread(device)
            thread._users += 1
            return thread

    def release(self) -> None:
        """A backend is done with the thread; the last one shuts it down (queued work dropped)."""
        with self._shared_lock:
            self._users -= 1
            last = self._users <= 0
            if last and self._shared.get(self.device) is self:
                del self._shared[self.device]
        if last:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` on the device thread (no progress)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def stream(self, fn: Callable[[Emit, ShouldStop], R], cancel: CancelToken) -> AsyncIterator[Progress | Done[R]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        abandoned = threading.Event()

        def should_stop() -> bool:
            return cancel.cancelled or abandoned.is_set()

        def emit(event: Progress) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        future = loop.run_in_executor(self._executor, fn, emit, should_stop)
        # Retrieve the exception even if nobody awaits it (stream abandoned), to keep logs clean.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        getter: asyncio.Future[Progress] | None = None
        try:
            # The worker's last emits are queued on the loop before its completion, so once
            # the future is done every Progress is already in the queue.
            while not (future.done() and queue.empty()):
                if not queue.empty():
                    yield queue.get_nowait()
                    continue
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, future}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
                getter = None
            result = future.result()  # re-raises what the worker raised
        finally:
            abandoned.set()
            if not future.done():
                cancel.cancel()  # the consumer went away: the job is over for everyone
            if getter is not None:
                getter.cancel()
        yield Done(result)
