"""SQLite through aiosqlite: users and settings, jobs, and the quota ledger.

One connection per process, WAL mode so a second process (a restarted bot, a CLI
command) can read and write the same file. Every statement on the connection runs under
one lock and reads are fetched whole before the lock is released: SQLite refuses at once
("database is locked", no busy wait) to begin a write while a read of the same
connection is still open on an older snapshot. Every multi-row change runs in one
``BEGIN IMMEDIATE`` transaction, which waits out another process's write (busy_timeout),
so a job and its quota reservation are written together or not at all.

Balances are running totals in ``accounts``, kept in the same transactions as the
append-only ``ledger``: a balance, a reservation or a refund costs the same after a
hundred thousand ledger rows as after one.

A job's state only moves forward (``queued -> running -> delivering -> done``, or to
``failed``/``cancelled``): a late or duplicate writer cannot turn ``done`` back into
anything else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from engine.jobs import JobSpec, dump_job_spec, parse_job_spec
from storage.owner import OwnerLock
from storage.records import Balance, ChatCoordinates, JobRecord, JobState, ResultRecord, Settlement, User
from storage.schema import migrate

# The states a job may be in before it moves to each state; anything else is a late writer.
_PREDECESSORS: dict[JobState, tuple[JobState, ...]] = {
    JobState.RUNNING: (JobState.QUEUED, JobState.RUNNING),
    JobState.DELIVERING: (JobState.QUEUED, JobState.RUNNING),
    JobState.DONE: (JobState.DELIVERING,),
    JobState.FAILED: (JobState.QUEUED, JobState.RUNNING, JobState.DELIVERING),
    JobState.CANCELLED: (JobState.QUEUED, JobState.RUNNING),
    JobState.QUEUED: (JobState.RUNNING,),  # handed back (a worker was lost)
}


def _is_busy(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))


class QuotaExceeded(Exception):
    def __init__(self, needed: int, balance: Balance) -> None:
        super().__init__(f"needs {needed}, has {balance.available}")
        self.needed = needed
        self.balance = balance


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def new_job_id() -> str:
    # 12 url-safe characters: short enough for 64-byte button payloads, unguessable enough
    # that a forged payload names no one else's job by chance. Never a leading "-", so an
    # id is safe as a command-line argument (``ledger --job ID``).
    while True:
        job_id = secrets.token_urlsafe(9)
        if not job_id.startswith("-"):
            return job_id


_JOB_COLUMNS = (
    "id, user_id, spec, backend, state, platform, chat_id, thread_id, is_private, request_message_id, "
    "requester_mention, status_message_id, language, cost_per_image, results, delivered, checkpoint, "
    "notes, error_key, error_args, parent_job, attempts, created_at, finished_at, payer_id, space_id"
)


def _job_from_row(row: aiosqlite.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        user_id=row["user_id"],
        spec=parse_job_spec(row["spec"]),
        backend=row["backend"],
        state=JobState(row["state"]),
        chat=ChatCoordinates(
            platform=row["platform"],
            chat_id=row["chat_id"],
            thread_id=row["thread_id"],
            is_private=bool(row["is_private"]),
            request_message_id=row["request_message_id"],
            requester_mention=row["requester_mention"],
            space_id=row["space_id"],
        ),
        status_message_id=row["status_message_id"],
        language=row["language"],
        cost_per_image=row["cost_per_image"],
        results=[ResultRecord(**r) for r in json.loads(row["results"])],
        delivered=row["delivered"],
        checkpoint=json.loads(row["checkpoint"]),
        notes=json.loads(row["notes"]),
        error_key=row["error_key"],
        error_args=json.loads(row["error_args"] or "{}"),
        parent_job=row["parent_job"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        payer_id=row["payer_id"],
    )


class Storage:
    def __init__(self, db: aiosqlite.Connection, *, daily_free: int, owner: OwnerLock | None = None) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        self._owner = owner
        self.daily_free = daily_free

    @classmethod
    async def open(cls, path: Path | str, *, daily_free: int = 20, owner: bool = False) -> Storage:
        """Open (and migrate) the database. ``owner``: this process serves the data folder and
        runs its jobs; raises DataFolderBusy while another live process does."""
        lock: OwnerLock | None = None
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if owner:
                lock = OwnerLock(Path(f"{path}.owner")).acquire()
        try:
            return cls(await cls._connect(path), daily_free=daily_free, owner=lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @staticmethod
    async def _connect(path: Path | str) -> aiosqlite.Connection:
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA busy_timeout=10000")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA synchronous=NORMAL")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        try:
            async with self._lock:
                await self._db.close()
        finally:
            if self._owner is not None:
                self._owner.release()
                self._owner = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._begin()
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _begin(self) -> None:
        """Take the write lock. Each try waits busy_timeout (10 s) for another process's write;
        a few tries with backoff ride out even a long CLI transaction, so a busy database
        never leaves a job half-written or holding its quota."""
        async for attempt in AsyncRetrying(stop=stop_after_attempt(4), wait=wait_exponential(multiplier=0.5, max=5),
                                           retry=retry_if_exception(_is_busy), reraise=True):
            with attempt:
                await self._db.execute("BEGIN IMMEDIATE")

    async def _one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        # Fetched whole under the lock: no read stays open while another task begins a write.
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, tuple(params)))

    # --- users -------------------------------------------------------------------

    async def user(self, platform: str, ext_id: str, display_name: str = "") -> User:
        """The user, created on first sight. A known user with the same name costs one read."""
        row = await self._one("SELECT * FROM users WHERE platform = ? AND ext_id = ?", (platform, ext_id))
        if row is not None and (not display_name or row["display_name"] == display_name):
            return self._user_from_row(row)
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO users (platform, ext_id, display_name, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (platform, ext_id) DO UPDATE SET display_name = "
                "CASE WHEN excluded.display_name != '' THEN excluded.display_name ELSE display_name END",
                (platform, ext_id, display_name, time.time()),
            )
        row = await self._one("SELECT * FROM users WHERE platform = ? AND ext_id = ?", (platform, ext_id))
        assert row is not None
        return self._user_from_row(row)

    async def find_user(self, platform: str, ext_id: str) -> User | None:
        """The user if known; never creates one (for read-only tools)."""
        row = await self._one("SELECT * FROM users WHERE platform = ? AND ext_id = ?", (platform, ext_id))
        return self._user_from_row(row) if row else None

    async def user_by_id(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return self._user_from_row(row) if row else None

    @staticmethod
    def _user_from_row(row: aiosqlite.Row) -> User:
        return User(
            id=row["id"],
            platform=row["platform"],
            ext_id=row["ext_id"],
            display_name=row["display_name"],
            language=row["language"],
            settings=json.loads(row["settings"]),
        )

    async def set_language(self, user_id: int, language: str) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))

    async def update_user_settings(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the user's settings; a value of None removes the key."""
        async with self._tx() as db:
            async with db.execute("SELECT settings FROM users WHERE id = ?", (user_id,)) as cur:
                row = await cur.fetchone()
            settings = json.loads(row["settings"]) if row else {}
            for k, v in changes.items():
                if v is None:
                    settings.pop(k, None)
                else:
                    settings[k] = v
            await db.execute("UPDATE users SET settings = ? WHERE id = ?", (json.dumps(settings), user_id))
        return settings

    async def chat_settings(self, platform: str, chat_id: str) -> dict[str, Any]:
        row = await self._one("SELECT settings FROM chats WHERE platform = ? AND chat_id = ?", (platform, chat_id))
        return json.loads(row["settings"]) if row else {}

    async def update_chat_settings(self, platform: str, chat_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        async with self._tx() as db:
            async with db.execute(
                "SELECT settings FROM chats WHERE platform = ? AND chat_id = ?", (platform, chat_id)
            ) as cur:
                row = await cur.fetchone()
            settings = json.loads(row["settings"]) if row else {}
            for k, v in changes.items():
                if v is None:
                    settings.pop(k, None)
                else:
                    settings[k] = v
            await db.execute(
                "INSERT INTO chats (platform, chat_id, settings) VALUES (?, ?, ?) "
                "ON CONFLICT (platform, chat_id) DO UPDATE SET settings = excluded.settings",
                (platform, chat_id, json.dumps(settings)),
            )
        return settings

    # --- jobs + reservation -------------------------------------------------------

    async def create_job(
        self,
        *,
        user_id: int,
        spec: JobSpec,
        backend: str,
        chat: ChatCoordinates,
        language: str,
        cost_per_image: int,
        parent_job: str | None = None,
        notes: list[dict[str, Any]] | None = None,
        max_queued_per_user: int | None = None,
        pool: tuple[int, int] | None = None,
        admit: Callable[[str], Awaitable[None]] | None = None,
    ) -> JobRecord:
        """Write the job and reserve its quota in one transaction.

        ``admit(job_id)`` is called inside that transaction, after every check passed: the
        caller's queue takes the job there (and may refuse it by raising, which rolls the
        whole job back), so a job is durable and admitted in one step.

        Raises QuotaExceeded (nothing written) when the user cannot pay for every image,
        and TooManyQueued when the user already has ``max_queued_per_user`` open jobs.
        ``pool`` is ``(payer_id, daily_size)`` of a group's shared daily pool: the job is paid
        from it when the pool can cover it whole, else by the user as usual.
        """
        job_id = new_job_id()
        now = time.time()
        amount = cost_per_image * spec.n
        async with self._tx() as db:
            if max_queued_per_user is not None:
                async with db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND state IN ('queued','running')", (user_id,)
                ) as cur:
                    (open_jobs,) = await cur.fetchone()  # type: ignore[misc]
                if open_jobs >= max_queued_per_user:
                    raise TooManyQueued(open_jobs)
            payer: int | None = None
            if amount > 0:
                if pool is not None and await self._reserve(db, pool[0], job_id, amount, daily_free=pool[1],
                                                            credits=False, must=False):
                    payer = pool[0]
                else:
                    await self._reserve(db, user_id, job_id, amount)
                    payer = user_id
            await db.execute(
                "INSERT INTO jobs (id, user_id, kind, backend, spec, state, platform, chat_id, thread_id, "
                "is_private, request_message_id, requester_mention, language, cost_per_image, notes, "
                "parent_job, created_at, updated_at, payer_id, space_id) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id, user_id, spec.kind, backend, dump_job_spec(spec), chat.platform, chat.chat_id,
                    chat.thread_id, int(chat.is_private), chat.request_message_id, chat.requester_mention,
                    language, cost_per_image, json.dumps(notes or []), parent_job, now, now, payer, chat.space_id,
                ),
            )
            if admit is not None:
                # Still inside the transaction: a job the queue refuses is never written.
                await admit(job_id)
        job = await self.job(job_id)
        assert job is not None
        return job

    async def job(self, job_id: str) -> JobRecord | None:
        row = await self._one(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job_from_row(row) if row else None

    async def jobs_in_states(self, states: Iterable[JobState]) -> list[JobRecord]:
        states = list(states)
        marks = ",".join("?" * len(states))
        rows = await self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ({marks}) ORDER BY created_at", [s.value for s in states]
        )
        return [_job_from_row(r) for r in rows]

    async def open_jobs_of(self, user_id: int) -> list[JobRecord]:
        # No ORDER BY in SQL: with it SQLite walks the user's whole history by (user_id,
        # created_at); without it, the (user_id, state) index finds the few open ones.
        rows = await self._all(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE user_id = ? AND state IN ('queued','running','delivering')",
            (user_id,),
        )
        return sorted((_job_from_row(r) for r in rows), key=lambda j: j.created_at)

    async def set_state(
        self, job_id: str, state: JobState, *, error_key: str | None = None, error_args: dict[str, Any] | None = None
    ) -> bool:
        """Move the job forward to ``state``; False (nothing written) when it is past that point."""
        async with self._tx() as db:
            return await self._move(db, job_id, state, error_key=error_key, error_args=error_args)

    @staticmethod
    async def _move(db: aiosqlite.Connection, job_id: str, state: JobState, *, error_key: str | None = None,
                    error_args: dict[str, Any] | None = None) -> bool:
        now = time.time()
        before = _PREDECESSORS[state]
        cur = await db.execute(
            "UPDATE jobs SET state = ?, updated_at = ?, finished_at = ?, error_key = COALESCE(?, error_key), "
            "error_args = COALESCE(?, error_args), attempts = attempts + ? "
            f"WHERE id = ? AND state IN ({','.join('?' * len(before))})",
            (
                state.value, now, now if state.finished else None, error_key,
                json.dumps(error_args) if error_args is not None else None,
                1 if state is JobState.RUNNING else 0, job_id, *[s.value for s in before],
            ),
        )
        return cur.rowcount == 1

    async def set_status_message(self, job_id: str, message_id: str | None) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE jobs SET status_message_id = ?, updated_at = ? WHERE id = ?",
                             (message_id, time.time(), job_id))

    async def set_checkpoint(self, job_id: str, checkpoint: dict[str, Any]) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE jobs SET checkpoint = ?, updated_at = ? WHERE id = ?",
                             (json.dumps(checkpoint), time.time(), job_id))

    async def set_results(self, job_id: str, results: list[ResultRecord], *, backend: str | None = None,
                          spec: JobSpec | None = None, cost_per_image: int | None = None,
                          notes: list[dict[str, Any]] | None = None) -> bool:
        """Keep the produced images with the job and move it to ``delivering`` (the outbox's
        durable record). ``backend``/``spec``/``cost_per_image``: the backend that made them
        and what it ran, when a fallback did. False when the job was already past running."""
        before = _PREDECESSORS[JobState.DELIVERING]
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE jobs SET results = ?, state = ?, updated_at = ?, backend = COALESCE(?, backend), "
                "spec = COALESCE(?, spec), cost_per_image = COALESCE(?, cost_per_image), notes = COALESCE(?, notes) "
                f"WHERE id = ? AND state IN ({','.join('?' * len(before))})",
                (json.dumps([r.__dict__ for r in results]), JobState.DELIVERING.value, time.time(), backend,
                 dump_job_spec(spec) if spec is not None else None, cost_per_image,
                 json.dumps(notes) if notes is not None else None, job_id, *[s.value for s in before]),
            )
            return cur.rowcount == 1

    async def mark_delivered(self, job_id: str, delivered: int, message_ids: list[str], chat_id: str,
                             platform: str) -> None:
        """Record that the first ``delivered`` results reached the chat, and charge them."""
        job = await self.job(job_id)
        assert job is not None
        async with self._tx() as db:
            await self._record_delivery(db, job, delivered, message_ids)

    async def _record_delivery(self, db: aiosqlite.Connection, job: JobRecord, delivered: int,
                               message_ids: list[str]) -> int:
        await db.execute("UPDATE jobs SET delivered = MAX(delivered, ?), updated_at = ? WHERE id = ?",
                         (delivered, time.time(), job.id))
        for mid in message_ids:
            await db.execute(
                "INSERT OR IGNORE INTO job_messages (platform, chat_id, message_id, job_id) VALUES (?, ?, ?, ?)",
                (job.chat.platform, job.chat.chat_id, mid, job.id),
            )
        charged = 0
        if job.cost_per_image > 0:
            for index, result in enumerate(job.results[:delivered]):
                if result.media_key:  # withheld images are not charged
                    charged += await self._commit(db, job, index)
        return charged

    async def settle(self, job_id: str, message_ids: list[str]) -> Settlement:
        """Finish a delivered job in one transaction: charge each delivered picture once,
        give back what was held for the rest (withheld pictures), and mark it done.

        Idempotent: settling a job twice charges nothing more and refunds nothing more."""
        job = await self.job(job_id)
        assert job is not None
        async with self._tx() as db:
            await self._record_delivery(db, job, len(job.results), message_ids)
            refunded = await self._refund(db, job_id)
            await self._move(db, job_id, JobState.DONE)
        charged = sum(job.cost_per_image for r in job.results if r.media_key)
        return Settlement(charged=charged, refunded=refunded)

    async def end(self, job_id: str, state: JobState, *, error_key: str | None = None,
                  error_args: dict[str, Any] | None = None) -> int | None:
        """End a job that will deliver nothing more (failed or cancelled) and refund what it
        still holds, in one transaction. Returns the refund, or None when the job had already
        ended (it stays as it was: a done job never turns failed)."""
        async with self._tx() as db:
            if not await self._move(db, job_id, state, error_key=error_key, error_args=error_args):
                return None
            return await self._refund(db, job_id)

    async def job_for_message(self, platform: str, chat_id: str, message_id: str) -> JobRecord | None:
        """The job whose result (or status) message this is: for replies and button presses."""
        row = await self._one(
            "SELECT job_id FROM job_messages WHERE platform = ? AND chat_id = ? AND message_id = ?",
            (platform, chat_id, message_id),
        )
        if row is None:
            row = await self._one(
                "SELECT id AS job_id FROM jobs WHERE platform = ? AND chat_id = ? AND status_message_id = ?",
                (platform, chat_id, message_id),
            )
        return await self.job(row["job_id"]) if row else None

    async def meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        async with self._tx() as db:
            await db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    async def recent_jobs(self, limit: int = 20) -> list[JobRecord]:
        rows = await self._all(f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_job_from_row(r) for r in rows]

    async def stats(self) -> dict[str, int]:
        rows = await self._all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        out = {r["state"]: r["n"] for r in rows}
        row = await self._one("SELECT COUNT(*) AS n FROM users")
        out["users"] = row["n"] if row else 0
        return out

    # --- the ledger -----------------------------------------------------------------

    @staticmethod
    async def _account(db: aiosqlite.Connection, user_id: int) -> aiosqlite.Row:
        """The user's running totals, created on first use (a new user has nothing)."""
        await db.execute("INSERT OR IGNORE INTO accounts (user_id) VALUES (?)", (user_id,))
        async with db.execute("SELECT credits, free_day, free_used, held FROM accounts WHERE user_id = ?",
                              (user_id,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return row

    @staticmethod
    def _free_used_today(row: aiosqlite.Row, day: str) -> int:
        return row["free_used"] if row["free_day"] == day else 0

    async def _reserve(self, db: aiosqlite.Connection, user_id: int, job_id: str, amount: int, *,
                       daily_free: int | None = None, credits: bool = True, must: bool = True) -> bool:
        """Hold ``amount`` for the job: the day's free images first, then credits.

        Returns False (writing nothing) when it cannot be paid and ``must`` is false.
        """
        day = today()
        daily = self.daily_free if daily_free is None else daily_free
        account = await self._account(db, user_id)
        used = self._free_used_today(account, day)
        credit_balance = account["credits"] if credits else 0
        free_left = max(0, daily - used)
        from_free = min(amount, free_left)
        from_credit = amount - from_free
        if from_credit > credit_balance:
            if not must:
                return False
            raise QuotaExceeded(amount, Balance(free_left, daily, credit_balance, 0))
        now = time.time()
        for pool, part in (("free", from_free), ("credit", from_credit)):
            if part:
                await db.execute(
                    "INSERT INTO ledger (user_id, job_id, entry, pool, amount, day, idem_key, created_at) "
                    "VALUES (?, ?, 'reserve', ?, ?, ?, ?, ?)",
                    (user_id, job_id, pool, -part, day, f"reserve:{job_id}:{pool}", now),
                )
        await db.execute(
            "UPDATE accounts SET free_day = ?, free_used = ?, credits = credits - ?, held = held + ? "
            "WHERE user_id = ?",
            (day, used + from_free, from_credit, amount, user_id),
        )
        return True

    async def _payer(self, db: aiosqlite.Connection, job: JobRecord) -> int:
        if job.payer_id is not None:
            return job.payer_id
        # Jobs written before payer_id existed: whoever holds the reservation.
        async with db.execute("SELECT user_id FROM ledger WHERE job_id = ? AND entry = 'reserve' LIMIT 1",
                              (job.id,)) as cur:
            row = await cur.fetchone()
        return row["user_id"] if row else job.user_id

    async def _commit(self, db: aiosqlite.Connection, job: JobRecord, index: int) -> int:
        """Charge delivered picture ``index`` once; returns what this call charged (0 on a repeat)."""
        payer = await self._payer(db, job)
        cur = await db.execute(
            "INSERT OR IGNORE INTO ledger (user_id, job_id, entry, pool, amount, day, idem_key, created_at) "
            "VALUES (?, ?, 'commit', 'spent', ?, ?, ?, ?)",
            (payer, job.id, job.cost_per_image, today(), f"commit:{job.id}:{index}", time.time()),
        )
        if cur.rowcount != 1:
            return 0
        await db.execute("UPDATE accounts SET held = held - ? WHERE user_id = ?", (job.cost_per_image, payer))
        return job.cost_per_image

    async def refund(self, job_id: str) -> int:
        """Give back what the job held but did not commit. Idempotent; returns the amount."""
        async with self._tx() as db:
            return await self._refund(db, job_id)

    async def _refund(self, db: aiosqlite.Connection, job_id: str) -> int:
        async with db.execute(
            "SELECT pool, entry, SUM(amount) AS total, MIN(day) AS day, MIN(user_id) AS user_id "
            "FROM ledger WHERE job_id = ? GROUP BY pool, entry",
            (job_id,),
        ) as cur:
            rows = list(await cur.fetchall())
        held = {r["pool"]: -r["total"] for r in rows if r["entry"] == "reserve"}
        if not held:
            return 0
        if any(r["entry"] == "refund" for r in rows):
            return 0
        committed = sum(r["total"] for r in rows if r["entry"] == "commit")
        user_id = next(r["user_id"] for r in rows if r["entry"] == "reserve")  # the payer
        day = next(r["day"] for r in rows if r["entry"] == "reserve")
        give_back = max(0, sum(held.values()) - committed)
        # Paid credits come back first, then the day's free images.
        credit_back = min(give_back, held.get("credit", 0))
        free_back = give_back - credit_back
        now = time.time()
        for pool, part in (("credit", credit_back), ("free", free_back)):
            if not part:
                continue
            await db.execute(
                "INSERT OR IGNORE INTO ledger (user_id, job_id, entry, pool, amount, day, idem_key, created_at) "
                "VALUES (?, ?, 'refund', ?, ?, ?, ?, ?)",
                (user_id, job_id, pool, part, day, f"refund:{job_id}:{pool}", now),
            )
        # Free pictures of a past day stay spent: that day's allowance is over.
        await db.execute(
            "UPDATE accounts SET credits = credits + ?, held = held - ?, "
            "free_used = CASE WHEN free_day = ? THEN MAX(0, free_used - ?) ELSE free_used END WHERE user_id = ?",
            (credit_back, give_back, day, free_back, user_id),
        )
        return give_back

    async def grant(self, user_id: int, amount: int, *, note: str = "", idem_key: str | None = None) -> None:
        async with self._tx() as db:
            await self._account(db, user_id)
            cur = await db.execute(
                "INSERT OR IGNORE INTO ledger (user_id, job_id, entry, pool, amount, day, note, idem_key, created_at) "
                "VALUES (?, NULL, 'grant', 'credit', ?, ?, ?, ?, ?)",
                (user_id, amount, today(), note, idem_key, time.time()),
            )
            if cur.rowcount == 1:
                await db.execute("UPDATE accounts SET credits = credits + ? WHERE user_id = ?", (amount, user_id))

    async def balance(self, user_id: int, *, daily_free: int | None = None) -> Balance:
        daily = self.daily_free if daily_free is None else daily_free
        row = await self._one("SELECT credits, free_day, free_used, held FROM accounts WHERE user_id = ?",
                              (user_id,))
        if row is None:
            return Balance(free_left_today=daily, daily_free=daily, credits=0, reserved=0)
        return Balance(
            free_left_today=max(0, daily - self._free_used_today(row, today())),
            daily_free=daily,
            credits=row["credits"],
            reserved=row["held"],
        )

    async def ledger_of_user(self, user_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT entry, pool, amount, day, job_id, note, idem_key FROM ledger WHERE user_id = ? "
            "ORDER BY id DESC LIMIT ?", (user_id, limit),
        )
        return [dict(r) for r in reversed(rows)]

    async def ledger_of_job(self, job_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT entry, pool, amount, day, idem_key FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [dict(r) for r in rows]


class TooManyQueued(Exception):
    def __init__(self, open_jobs: int) -> None:
        super().__init__(f"{open_jobs} open jobs")
        self.open_jobs = open_jobs
