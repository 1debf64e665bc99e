"""Plain records read from the database. Storage hands these out; nobody writes to them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.jobs import JobSpec


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class User:
    id: int
    platform: str
    ext_id: str
    display_name: str
    language: str | None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultRecord:
    """One produced image: its media key (empty when withheld) and seed."""

    media_key: str
    seed: int | None = None
    withheld_reason: str | None = None


@dataclass(frozen=True)
class ChatCoordinates:
    platform: str
    chat_id: str
    thread_id: str | None
    is_private: bool
    request_message_id: str | None = None
    requester_mention: str = ""
    space_id: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    user_id: int
    spec: JobSpec
    backend: str
    state: JobState
    chat: ChatCoordinates
    status_message_id: str | None
    language: str
    cost_per_image: int
    results: list[ResultRecord]
    delivered: int
    checkpoint: dict[str, Any]
    notes: list[dict[str, Any]]
    error_key: str | None
    error_args: dict[str, Any]
    parent_job: str | None
    attempts: int
    created_at: float
    finished_at: float | None
    # Who holds the job's money: the requester, or a group's shared pool (None: nothing held).
    payer_id: int | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass(frozen=True)
class Balance:
    free_left_today: int
    daily_free: int
    credits: int
    # Held by jobs that are queued or running.
    reserved: int

    @property
    def available(self) -> int:
        return self.free_left_today + self.credits


@dataclass(frozen=True)
class Settlement:
    """What settling a delivered job moved: charged for the pictures delivered, refunded the rest."""

    charged: int
    refunded: int
