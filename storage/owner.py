"""One bot process per data folder.

A second bot on the same database would take over the jobs the first one is running and
generate them again. The process that serves a data folder holds an exclusive ``flock`` on
a file beside the database for its whole life; the kernel drops it when the process dies
(kill -9 included), so a restart after a crash never waits and never needs a cleanup.
Read-only tools (``python -m bot jobs``, ``ledger``) do not take it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataFolderBusy(Exception):
    """Another live process serves this data folder."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by process {pid or '?'}")
        self.path = path
        self.pid = pid


class OwnerLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> OwnerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataFolderBusy(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
