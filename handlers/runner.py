"""Runs one stored job to its end: backend -> progress edits -> images -> delivery -> ledger.

This is the second half of the ``/imagine`` path (the first half is ``handlers.app``):

    scheduler picks job id -> JobRunner.execute(job_id)
      -> storage: state running
      -> backend.run(work): Progress events -> throttled status edits
      -> Finished(images) -> media store + storage: results kept, state delivering
      -> messenger.send_images -> storage: delivered, quota committed per image
      -> storage: refund what was held but not delivered, state done

Every exit path ends in ``done``, ``failed`` or ``cancelled`` with the unspent quota
refunded. Because results are stored before delivery and commits are idempotent per
image, a crash at any point is finished by ``recover()`` after a restart without
charging twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.backend import Backend, CancelToken, Finished, Progress, ResultImage, Work
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import GenerationBase, JobSpec
from engine.scheduler import Scheduler
from handlers.images import parameters_text, stamp_png
from handlers.port import ChatRef, MessageRef, Messenger, OutImage
from handlers.presenting import cancel_buttons, caption_for, result_buttons, status_queued, status_running
from locales import Translator
from storage.media import MediaStore
from storage.records import JobRecord, JobState, ResultRecord
from storage.store import Storage

log = logging.getLogger(__name__)

# A job that crashed the process this many times is failed and refunded, not retried.
MAX_ATTEMPTS = 3
DELIVERY_RETRIES = 4


def chat_of(job: JobRecord) -> ChatRef:
    c = job.chat
    return ChatRef(platform=c.platform, chat_id=c.chat_id, thread_id=c.thread_id, is_private=c.is_private)


@dataclass
class _Live:
    cancel: CancelToken = field(default_factory=CancelToken)
    started: float = field(default_factory=time.monotonic)


class JobRunner:
    def __init__(
        self,
        *,
        storage: Storage,
        media: MediaStore,
        backends: dict[str, Backend],
        messengers: dict[str, Messenger],
        fallbacks: list[str] | None = None,
        job_timeout_s: float = 900.0,
        progress_interval_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.media = media
        self.backends = backends
        self.messengers = messengers
        self.fallbacks = fallbacks or []
        self.job_timeout_s = job_timeout_s
        self.progress_interval_s = progress_interval_s
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self.scheduler: Scheduler | None = None

    # --- control --------------------------------------------------------------------

    def cancel_running(self, job_id: str) -> bool:
        live = self._live.get(job_id)
        if live is None:
            return False
        live.cancel.cancel()
        return True

    async def recover(self) -> int:
        """Take back jobs that a dead process left queued, running or delivering."""
        assert self.scheduler is not None
        count = 0
        for job in await self.storage.jobs_in_states([JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING]):
            if job.chat.platform not in self.messengers:
                continue  # another process serves that platform; it will take the job back
            if job.state is not JobState.DELIVERING and job.attempts >= MAX_ATTEMPTS:
                await self._fail(job, UserFacingError("error-job-crashed"))
                continue
            lane = job.backend if job.backend in self.backends else None
            if job.state is JobState.DELIVERING or lane is None:
                lane = lane or next(iter(self.backends))
            await self.scheduler.submit(job.id, str(job.user_id), lane, force=True)
            count += 1
        return count

    # --- one job ----------------------------------------------------------------------

    async def execute(self, job_id: str) -> None:
        job = await self.storage.job(job_id)
        if job is None or job.state.finished:
            return
        if job.state is JobState.DELIVERING:
            await self._deliver(job)
            return
        live = self._live.setdefault(job_id, _Live())
        try:
            images = await self._generate(job, live)
            await self._store_results(job, images)
            job = await self.storage.job(job_id) or job  # now with its results
            await self._deliver(job)
        except JobCancelled:
            await self._cancelled(job)
        except UserFacingError as e:
            await self._fail(job, e)
        except TimeoutError:
            await self._fail(job, UserFacingError("error-job-timeout", seconds=int(self.job_timeout_s)))
        except asyncio.CancelledError:
            # Shutting down: stop the worker thread too; the job stays 'running' in storage
            # and recover() takes it back on the next start.
            live.cancel.cancel()
            raise
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            await self._fail(job, UserFacingError("error-internal"))
        finally:
            self._live.pop(job_id, None)

    async def _generate(self, job: JobRecord, live: _Live) -> list[ResultImage]:
        await self.storage.set_state(job.id, JobState.RUNNING)
        await self._edit_status(job, status_running(Translator(job.language), step=0, total=0, eta_s=None),
                                buttons=cancel_buttons(Translator(job.language), job.id))
        backend_names = [job.backend] + [b for b in self.fallbacks if b != job.backend]
        last_error: BackendError | None = None
        for name in backend_names:
            backend = self.backends.get(name)
            if backend is None:
                continue
            spec = job.spec
            if name != job.backend and isinstance(spec, GenerationBase):
                # Model names belong to one backend; a fallback uses its own default model.
                spec = spec.model_copy(update={"model": ""})
            if not backend.supports(spec):
                continue
            try:
                return await self._run_backend(job, backend, live, spec)
            except BackendError as e:
                last_error = e
                if not e.retryable:
                    raise
                log.warning("backend %s failed for job %s (%s); trying the next one", name, job.id, e.key)
        if last_error is not None:
            raise last_error
        raise UserFacingError("error-backend-cannot", backend=job.backend, kind=job.spec.kind)

    async def _run_backend(self, job: JobRecord, backend: Backend, live: _Live, spec: JobSpec) -> list[ResultImage]:
        async def save_checkpoint(state: dict) -> None:
            await self.storage.set_checkpoint(job.id, state)

        work = Work(job_id=job.id, spec=spec, media=self.media, cancel=live.cancel,
                    checkpoint=dict(job.checkpoint), save_checkpoint=save_checkpoint)
        t = Translator(job.language)
        last_edit = -1e9
        pending_preview: bytes | None = None  # the newest preview of skipped events
        started = self._clock()
        async with asyncio.timeout(self.job_timeout_s):
            async for event in backend.run(work):
                if isinstance(event, Progress):
                    now = self._clock()
                    preview = event.preview or pending_preview
                    if now - last_edit < self.progress_interval_s and event.step < event.total:
                        pending_preview = preview  # coalesce: chats cannot take an edit per step
                        continue
                    last_edit, pending_preview = now, None
                    elapsed = now - started
                    eta = elapsed / event.step * (event.total - event.step) if event.step else None
                    await self._edit_status(
                        job, status_running(t, step=event.step, total=event.total, eta_s=eta),
                        preview=preview, buttons=cancel_buttons(t, job.id),
                    )
                elif isinstance(event, Finished):
                    if live.cancel.cancelled:
                        raise JobCancelled()
                    return event.images
        raise BackendError("error-backend-no-result", backend=backend.name)

    async def _store_results(self, job: JobRecord, images: list[ResultImage]) -> None:
        records: list[ResultRecord] = []
        for image in images:
            if image.withheld_reason or not image.png:
                records.append(ResultRecord("", image.seed, image.withheld_reason or "withheld"))
                continue
            params = parameters_text(job.spec, seed=image.seed, backend=job.backend)
            key = self.media.put(stamp_png(image.png, params))
            records.append(ResultRecord(key, image.seed))
        await self.storage.set_results(job.id, records)

    async def _deliver(self, job: JobRecord) -> None:
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None:
            # That platform's adapter is not running in this process; leave the job for
            # the process that runs it (recover() picks it up there).
            log.warning("no messenger for %s; job %s waits for delivery", job.chat.platform, job.id)
            return
        t = Translator(job.language)
        pending = job.results[job.delivered:]
        deliverable = [(job.delivered + i, r) for i, r in enumerate(pending) if r.media_key]
        if deliverable:
            images = [OutImage(self.media.read(r.media_key), f"{job.id}_{i + 1}.png") for i, r in deliverable]
            caption = caption_for(t, job, [r.seed for _, r in deliverable])
            buttons = result_buttons(t, job, len(job.results)) if job.delivered == 0 else None
            owner = await self.storage.user_by_id(job.user_id)
            as_files = bool(owner and owner.settings.get("originals"))
            refs = await self._with_retries(
                lambda: messenger.send_images(chat_of(job), images, caption=caption, buttons=buttons,
                                              reply_to=job.chat.request_message_id, as_files=as_files)
            )
            await self.storage.mark_delivered(job.id, len(job.results), [r.message_id for r in refs],
                                              job.chat.chat_id, job.chat.platform)
        else:
            await self.storage.mark_delivered(job.id, len(job.results), [], job.chat.chat_id, job.chat.platform)
        withheld = [r for r in job.results if not r.media_key]
        refunded = await self.storage.refund(job.id)
        await self.storage.set_state(job.id, JobState.DONE)
        if withheld:
            await self._say(job, t("result-withheld", count=len(withheld), reason=t(withheld[0].withheld_reason or "withheld"),
                                   refunded=refunded))
        await self._clear_status(job)

    async def _with_retries(self, send):  # type: ignore[no-untyped-def]
        delay = 1.0
        for attempt in range(DELIVERY_RETRIES):
            try:
                return await send()
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == DELIVERY_RETRIES - 1:
                    raise
                log.warning("delivery failed, retrying in %.0fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # --- endings --------------------------------------------------------------------

    async def _fail(self, job: JobRecord, error: UserFacingError) -> None:
        refunded = await self.storage.refund(job.id)
        await self.storage.set_state(job.id, JobState.FAILED, error_key=error.key, error_args=_plain(error.args_))
        t = Translator(job.language)
        text = t("job-failed", reason=t(error.key, **error.args_), refunded=refunded)
        await self._edit_status(job, text) if job.status_message_id else await self._say(job, text)

    async def _cancelled(self, job: JobRecord) -> None:
        refunded = await self.storage.refund(job.id)
        await self.storage.set_state(job.id, JobState.CANCELLED)
        t = Translator(job.language)
        await self._edit_status(job, t("job-cancelled", refunded=refunded))

    async def cancel_queued(self, job: JobRecord) -> None:
        await self._cancelled(job)

    # --- chat helpers ---------------------------------------------------------------

    async def _edit_status(self, job: JobRecord, text: str, *, preview: bytes | None = None, buttons=None) -> None:  # type: ignore[no-untyped-def]
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None or not job.status_message_id:
            return
        try:
            replaced = await messenger.edit_text(MessageRef(chat_of(job), job.status_message_id), text,
                                                 preview=preview, buttons=buttons)
            if replaced is not None and replaced.message_id != job.status_message_id:
                # Kept with the job so a restarted process edits the message users now see.
                await self.storage.set_status_message(job.id, replaced.message_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # progress is best effort; the result is what matters
            log.warning("status edit failed for job %s", job.id, exc_info=True)

    async def _clear_status(self, job: JobRecord) -> None:
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None or not job.status_message_id:
            return
        try:
            await messenger.delete(MessageRef(chat_of(job), job.status_message_id))
        except Exception:
            log.warning("could not remove the status message of job %s", job.id, exc_info=True)

    async def _say(self, job: JobRecord, text: str) -> None:
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None:
            return
        try:
            await messenger.send_text(chat_of(job), text, reply_to=job.chat.request_message_id)
        except Exception:
            log.warning("could not tell the chat about job %s", job.id, exc_info=True)

    async def queue_moved(self, positions: dict[str, int]) -> None:
        """Scheduler callback: tell waiting jobs their new place (lossy, like progress)."""
        for job_id, position in positions.items():
            job = await self.storage.job(job_id)
            if job is not None and job.state is JobState.QUEUED:
                await self._edit_status(job, status_queued(Translator(job.language), position),
                                        buttons=cancel_buttons(Translator(job.language), job.id))


def _plain(args: dict) -> dict:  # type: ignore[type-arg]
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in args.items()}
