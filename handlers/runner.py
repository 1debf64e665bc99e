"""The compute stage: runs one admitted job until its results are stored.

This is the middle of the ``/imagine`` path (handlers/admission.py comes before it,
handlers/outbox.py after):

    scheduler picks job id (lane slot taken) -> JobRunner.execute(job_id)
      -> storage: state running
      -> backend.run(work): Progress events -> status edits (lossy, handlers/status.py)
      -> Finished(images) -> stamped PNGs in the media store (off the event loop)
      -> storage: results kept, state delivering -> outbox.put(job)   (lane slot free)

The lane is free as soon as the results are stored: delivery waits for the chat's flood
limits, the GPU does not. Every other exit ends in ``failed`` or ``cancelled`` with the
unspent quota refunded in the same transaction (``storage.end``). A crash at any point is
finished by ``recover()`` after a restart without charging twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.backend import Backend, CancelToken, Finished, Notice, Progress, ResultImage, Work, accepts
from engine.errors import BackendError, JobCancelled, UserFacingError
from engine.jobs import GenerationBase, JobSpec
from engine.scheduler import Scheduler
from handlers.images import parameters_text, stamp_png
from handlers.outbox import Outbox
from handlers.presenting import cancel_buttons, status_queued, status_running
from handlers.status import StatusBoard
from locales import Translator
from storage.media import MediaStore
from storage.records import JobRecord, JobState, ResultRecord
from storage.store import Storage

log = logging.getLogger(__name__)

# A job that crashed the process this many times is failed and refunded, not retried.
MAX_ATTEMPTS = 3


@dataclass
class _Live:
    cancel: CancelToken = field(default_factory=CancelToken)
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Eta:
    """Time left, from the pace of the steps so far. Counted from the first step, so the
    time spent loading a model does not make the first estimate several times too high."""

    clock: Callable[[], float]
    first_at: float | None = None
    first_step: int = 0

    def seconds_left(self, step: int, total: int) -> float | None:
        now = self.clock()
        if self.first_at is None:
            self.first_at, self.first_step = now, step
            return None
        done = step - self.first_step
        if done <= 0:
            return None
        return (now - self.first_at) / done * (total - step)


class JobRunner:
    def __init__(
        self,
        *,
        storage: Storage,
        media: MediaStore,
        backends: dict[str, Backend],
        statuses: StatusBoard,
        outbox: Outbox,
        fallbacks: list[str] | None = None,
        cost_of: Callable[[str], int] = lambda backend: 1,
        job_timeout_s: float = 900.0,
        progress_interval_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.media = media
        self.backends = backends
        self.statuses = statuses
        self.outbox = outbox
        self.fallbacks = fallbacks or []
        self.cost_of = cost_of
        self.job_timeout_s = job_timeout_s
        self.progress_interval_s = progress_interval_s
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self.scheduler: Scheduler | None = None

    @property
    def messengers(self) -> dict:  # type: ignore[type-arg]
        return self.statuses.messengers

    # --- control --------------------------------------------------------------------

    def cancel_running(self, job_id: str) -> bool:
        live = self._live.get(job_id)
        if live is None:
            return False
        live.cancel.cancel()
        return True

    async def recover(self) -> int:
        """Take back jobs a dead process left queued, running or delivering."""
        assert self.scheduler is not None
        count = 0
        for job in await self.storage.jobs_in_states([JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING]):
            if job.chat.platform not in self.messengers:
                continue  # that platform is not served by this process now; the job waits for it
            if job.state is JobState.DELIVERING:
                self.outbox.put(job)
            elif job.attempts >= MAX_ATTEMPTS:
                await self._fail(job, UserFacingError("error-job-crashed"))
                continue
            else:
                backend = job.backend if job.backend in self.backends else next(iter(self.backends))
                self.scheduler.admit(job.id, str(job.user_id), backend, force=True)
            count += 1
        return count

    # --- one job ----------------------------------------------------------------------

    async def execute(self, job_id: str) -> None:
        job = await self.storage.job(job_id)
        if job is None or job.state.finished:
            return
        if job.state is JobState.DELIVERING:
            self.outbox.put(job)
            return
        if not await self.storage.set_state(job.id, JobState.RUNNING):
            return
        live = self._live.setdefault(job_id, _Live())
        try:
            name, spec, images = await self._generate(job, live)
            records = await self._store_images(name, spec, images)
            if name == job.backend:
                stored = await self.storage.set_results(job.id, records)
            else:
                # A fallback painted it: the caption names it, and the user pays its price
                # (never more than what was held and said when the job was queued).
                stored = await self.storage.set_results(
                    job.id, records, backend=name, spec=spec,
                    cost_per_image=min(job.cost_per_image, self.cost_of(name)),
                    notes=[n for n in job.notes if n.get("args", {}).get("backend") != job.backend])
            if stored:
                self.outbox.put(job)
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

    async def _generate(self, job: JobRecord, live: _Live) -> tuple[str, JobSpec, list[ResultImage]]:
        t = Translator(job.language)
        await self.statuses.edit(job, status_running(t, step=0, total=0, eta_s=None), buttons=cancel_buttons(t, job.id))
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
            if not (backend.supports(spec) if name == job.backend else accepts(backend, spec)):
                continue  # a fallback that would refuse the job (no LoRA there, say) is skipped
            try:
                return name, spec, await self._run_backend(job, backend, live, spec)
            except BackendError as e:
                last_error = e
                if not e.retryable:
                    raise
                log.warning("backend %s failed for job %s (%s); trying the next one", name, job.id, e.key)
        if last_error is not None:
            raise last_error
        raise UserFacingError("error-backend-cannot", backend=job.backend, kind=job.spec.kind)

    async def _run_backend(self, job: JobRecord, backend: Backend, live: _Live, spec: JobSpec) -> list[ResultImage]:
        async def save_checkpoint(state: dict) -> None:  # type: ignore[type-arg]
            await self.storage.set_checkpoint(job.id, state)

        def parameters(seed: int | None) -> str:
            return parameters_text(spec, seed=seed, backend=backend.name)

        work = Work(job_id=job.id, spec=spec, media=self.media, cancel=live.cancel,
                    checkpoint=dict(job.checkpoint), save_checkpoint=save_checkpoint, parameters=parameters)
        t = Translator(job.language)
        eta = _Eta(self._clock)
        last_edit = -1e9
        pending_preview: bytes | None = None  # the newest preview of skipped events
        async with asyncio.timeout(self.job_timeout_s):
            async for event in backend.run(work):
                if isinstance(event, Progress):
                    left = eta.seconds_left(event.step, event.total)
                    now = self._clock()
                    preview = event.preview or pending_preview
                    if now - last_edit < self.progress_interval_s and event.step < event.total:
                        pending_preview = preview  # coalesce: chats cannot take an edit per step
                        continue
                    last_edit, pending_preview = now, None
                    await self.statuses.edit(
                        job, status_running(t, step=event.step, total=event.total, eta_s=left),
                        preview=preview, buttons=cancel_buttons(t, job.id),
                    )
                elif isinstance(event, Notice):
                    await self.statuses.edit(job, t(event.key, **event.args), buttons=cancel_buttons(t, job.id))
                elif isinstance(event, Finished):
                    if live.cancel.cancelled:
                        raise JobCancelled()
                    return event.images
        raise BackendError("error-backend-no-result", backend=backend.name)

    async def _store_images(self, backend: str, spec: JobSpec, images: list[ResultImage]) -> list[ResultRecord]:
        """Each picture into the media store with the parameters of ``spec``, the spec that ran
        (after a fallback, not quite the job's), off the event loop: a 1024² PNG costs a
        hundred milliseconds to re-encode, during which every chat waits."""

        def store() -> list[ResultRecord]:
            records: list[ResultRecord] = []
            for image in images:
                if image.withheld_reason or not image.png:
                    records.append(ResultRecord("", image.seed, image.withheld_reason or "withheld"))
                    continue
                png = image.png if image.stamped else stamp_png(
                    image.png, parameters_text(spec, seed=image.seed, backend=backend))
                records.append(ResultRecord(self.media.put(png), image.seed))
            return records

        return await asyncio.to_thread(store)

    # --- endings --------------------------------------------------------------------

    async def _fail(self, job: JobRecord, error: UserFacingError) -> None:
        refunded = await self.storage.end(job.id, JobState.FAILED, error_key=error.key, error_args=_plain(error.args_))
        if refunded is None:
            return  # it had ended already (cancelled, or delivered): nothing to say
        t = Translator(job.language)
        await self.statuses.edit(job, t("job-failed", reason=t(error.key, **error.args_), refunded=refunded),
                                 final=True)
        self.statuses.forget(job.id)

    async def _cancelled(self, job: JobRecord) -> None:
        refunded = await self.storage.end(job.id, JobState.CANCELLED)
        if refunded is None:
            return
        t = Translator(job.language)
        await self.statuses.edit(job, t("job-cancelled", refunded=refunded), final=True)
        self.statuses.forget(job.id)

    async def cancel_queued(self, job: JobRecord) -> None:
        await self._cancelled(job)

    async def queue_moved(self, positions: dict[str, int]) -> None:
        """Scheduler callback: tell waiting jobs their new place (lossy, like progress)."""
        for job_id, position in positions.items():
            job = await self.storage.job(job_id)
            if job is not None and job.state is JobState.QUEUED:
                t = Translator(job.language)
                await self.statuses.edit(job, status_queued(t, position), buttons=cancel_buttons(t, job.id))


def _plain(args: dict) -> dict:  # type: ignore[type-arg]
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in args.items()}
