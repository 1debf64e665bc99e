"""The delivery stage: stored results go to their chat, one chat at a time, and are charged.

The last part of the ``/imagine`` path (handlers/runner.py comes before it):

    job in state delivering (its durable outbox record) -> Outbox.put(job)
      -> the chat's own queue, in order -> messenger.send_images (waits for that chat's
         flood limit only) -> storage.settle: charged once per delivered picture, the rest
         refunded, done -> the status message makes way (or became the result)

Each chat has its own queue and worker: a group waiting for its 20 messages a minute never
delays another chat's results, and the engine's lanes are free long before. After a
restart, ``JobRunner.recover`` puts every job still ``delivering`` back here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from handlers.port import Delivered, Messenger, OutImage
from handlers.presenting import caption_for, result_buttons
from handlers.status import StatusBoard, chat_of
from locales import Translator
from storage.media import MediaStore
from storage.records import JobRecord, JobState
from storage.store import Storage

log = logging.getLogger(__name__)

# Beyond what each messenger already retries (429s, network errors), a delivery is tried
# this many times with backoff before the job is failed and refunded.
DELIVERY_ATTEMPTS = 4


@dataclass
class _ChatQueue:
    jobs: deque[str] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class Outbox:
    def __init__(self, *, storage: Storage, media: MediaStore, statuses: StatusBoard,
                 retry_wait_s: float = 1.0) -> None:
        self.storage = storage
        self.media = media
        self.statuses = statuses
        self.retry_wait_s = retry_wait_s
        self._chats: dict[tuple[str, str], _ChatQueue] = {}
        self._queued: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self.delivered = 0

    @property
    def messengers(self) -> dict[str, Messenger]:
        return self.statuses.messengers

    def put(self, job: JobRecord) -> None:
        """Deliver the job's stored results to its chat, after the chat's earlier ones."""
        if job.id in self._queued or self._closing:
            return
        key = (job.chat.platform, job.chat.chat_id)
        chat = self._chats.setdefault(key, _ChatQueue())
        chat.jobs.append(job.id)
        self._queued.add(job.id)
        self._idle.clear()
        if chat.worker is None or chat.worker.done():
            chat.worker = asyncio.create_task(self._serve(key, chat), name=f"outbox-{key[0]}-{key[1]}")

    @property
    def pending(self) -> int:
        return len(self._queued)

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop delivering: a delivery under way gets ``grace_s`` to be recorded (a picture
        already in the chat is charged now, not sent again after the restart); what was
        still waiting stays ``delivering`` and goes out at the next start."""
        self._closing = True
        workers = [c.worker for c in self._chats.values() if c.worker is not None and not c.worker.done()]
        if workers:
            await asyncio.wait(workers, timeout=grace_s)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _serve(self, key: tuple[str, str], chat: _ChatQueue) -> None:
        try:
            while chat.jobs and not self._closing:
                job_id = chat.jobs[0]
                try:
                    await self._deliver(job_id)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug here must not stop the chat's later deliveries
                    log.exception("delivering job %s failed", job_id)
                chat.jobs.popleft()
                self._queued.discard(job_id)
        finally:
            if not chat.jobs and self._chats.get(key) is chat:
                del self._chats[key]
            if not self._queued:
                self._idle.set()

    async def _deliver(self, job_id: str) -> None:
        job = await self.storage.job(job_id)
        if job is None or job.state is not JobState.DELIVERING:
            return
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None:
            log.warning("no messenger for %s; job %s waits for delivery", job.chat.platform, job.id)
            return
        t = Translator(job.language)
        delivered = Delivered([])
        keys = [r.media_key for r in job.results if r.media_key]
        if keys:
            images = await asyncio.to_thread(self._read, job, keys)
            caption = caption_for(t, job, [r.seed for r in job.results if r.media_key])
            buttons = result_buttons(t, job, len(job.results))
            owner = await self.storage.user_by_id(job.user_id)
            as_files = bool(owner and owner.settings.get("originals"))
            status = await self.statuses.current(job)
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(DELIVERY_ATTEMPTS),
                    wait=wait_exponential(multiplier=self.retry_wait_s, max=30),
                    retry=retry_if_exception_type(Exception), reraise=True,
                ):
                    with attempt:
                        delivered = await messenger.send_images(
                            chat_of(job), images, caption=caption, buttons=buttons,
                            reply_to=job.chat.request_message_id, as_files=as_files, status=status,
                            notify=job.chat.requester_mention)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("job %s could not be delivered; failing it with a refund", job.id, exc_info=True)
                await self.storage.end(job.id, JobState.FAILED, error_key="error-delivery-failed")
                self.statuses.forget(job.id)
                return
        settlement = await self.storage.settle(job.id, [m.message_id for m in delivered.messages])
        self.delivered += 1
        withheld = [r for r in job.results if not r.media_key]
        if withheld:
            await self._say(messenger, job, t("result-withheld", count=len(withheld),
                                              reason=t(withheld[0].withheld_reason or "withheld"),
                                              refunded=settlement.refunded))
        if delivered.status_used:
            self.statuses.forget(job.id)
        else:
            await self.statuses.remove(job)

    def _read(self, job: JobRecord, keys: list[str]) -> list[OutImage]:
        return [OutImage(self.media.read(key), f"{job.id}_{i + 1}.png") for i, key in enumerate(keys)]

    async def _say(self, messenger: Messenger, job: JobRecord, text: str) -> None:
        try:
            await messenger.send_text(chat_of(job), text, reply_to=job.chat.request_message_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not tell the chat about job %s", job.id, exc_info=True)
