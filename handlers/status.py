"""Each job's status message: where it is, and every edit of it.

The status message is the job's first answer ("Queued — position 3"), then its progress,
then it makes way for the result (or becomes it) or ends with a final word (failed,
cancelled). The board keeps the message each job's status is in now: posted by the
handler once the job was admitted, replaced when an adapter had to replace it, and kept
with the job in storage so a restarted process edits the message users see.

A job can start before its status message has reached a busy chat; its progress edits are
skipped until then, and its delivery waits for the message (``current``), so a result never
overtakes the "Queued" that announces it.
"""

from __future__ import annotations

import asyncio
import logging

from handlers.port import Button, ChatRef, MessageRef, Messenger
from storage.records import JobRecord
from storage.store import Storage

log = logging.getLogger(__name__)

# How long a delivery waits for a status message still on its way before going on without it.
POSTING_WAIT_S = 120.0


def chat_of(job: JobRecord) -> ChatRef:
    c = job.chat
    return ChatRef(platform=c.platform, chat_id=c.chat_id, thread_id=c.thread_id, is_private=c.is_private,
                   space_id=c.space_id)


class StatusBoard:
    def __init__(self, storage: Storage, messengers: dict[str, Messenger]) -> None:
        self.storage = storage
        self.messengers = messengers
        self._where: dict[str, MessageRef] = {}
        self._posting: dict[str, asyncio.Event] = {}

    # --- where the status is ------------------------------------------------------------

    def posting(self, job_id: str) -> None:
        """The handler is about to post this job's status message."""
        self._posting.setdefault(job_id, asyncio.Event())

    async def posted(self, job_id: str, ref: MessageRef | None) -> None:
        """The status message is out (``ref``), or could not be posted (None)."""
        if ref is not None:
            self._where[job_id] = ref
            await self.storage.set_status_message(job_id, ref.message_id)
        event = self._posting.pop(job_id, None)
        if event is not None:
            event.set()

    def known(self, job: JobRecord) -> MessageRef | None:
        """Where the status is now, without waiting (progress edits)."""
        ref = self._where.get(job.id)
        if ref is None and job.status_message_id:
            ref = self._where[job.id] = MessageRef(chat_of(job), job.status_message_id)
        return ref

    async def current(self, job: JobRecord) -> MessageRef | None:
        """Where the status is, waiting for one still being posted (deliveries)."""
        event = self._posting.get(job.id)
        if event is not None:
            try:
                async with asyncio.timeout(POSTING_WAIT_S):
                    await event.wait()
            except TimeoutError:
                log.warning("status message of job %s still not posted; delivering without it", job.id)
        return self.known(job)

    def forget(self, job_id: str) -> None:
        self._where.pop(job_id, None)

    # --- edits ----------------------------------------------------------------------------

    async def edit(self, job: JobRecord, text: str, *, preview: bytes | None = None,
                   buttons: list[list[Button]] | None = None, final: bool = False) -> None:
        """Edit the job's status (lossy unless ``final``); a final word for a job whose status
        never got out is said as a reply instead."""
        messenger = self.messengers.get(job.chat.platform)
        if messenger is None:
            return
        ref = await self.current(job) if final else self.known(job)
        try:
            if ref is None:
                if final:
                    await messenger.send_text(chat_of(job), text, reply_to=job.chat.request_message_id)
                return
            replaced = await messenger.edit_status(ref, text, preview=preview, buttons=buttons, final=final)
            if replaced is not None and replaced.message_id != ref.message_id:
                # Every later edit goes to the new message, in this process and after a restart.
                self._where[job.id] = replaced
                await self.storage.set_status_message(job.id, replaced.message_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # progress is best effort; the result is what matters
            log.warning("status edit failed for job %s", job.id, exc_info=True)

    async def remove(self, job: JobRecord) -> None:
        """The result is out: the status message makes way."""
        messenger = self.messengers.get(job.chat.platform)
        ref = self.known(job)
        self.forget(job.id)
        if messenger is None or ref is None:
            return
        try:
            await messenger.delete(ref)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not remove the status message of job %s", job.id, exc_info=True)
