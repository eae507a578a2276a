"""One writer per index at a time, across processes and threads; readers never take it.

    with WriterLock(root, timeout=cfg.write_lock_timeout):
        ...read, change, commit...

The lock is an OS file lock (``filelock``: ``flock`` on ``<index>/.writer.lock``), so the kernel
drops it when its holder dies: a lock left by a killed process is free again at once. A second
writer logs one line naming the holder (pid, host, since when) and waits; after ``timeout``
seconds it fails with ``WriterLockTimeout`` (``timeout`` -1 = wait for ever, 0 = fail at once).
Any backend can use it (the default store and the Milvus store do).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable

from .base import StoreError

LOCK_NAME = ".writer.lock"
log = logging.getLogger(__name__)


class WriterLockTimeout(StoreError):
    """Another writer held the index for longer than the configured wait."""


class WriterLock:
    def __init__(self, root: str | Path, timeout: float = 600.0, on_wait: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.timeout = float(timeout)
        self.on_wait = on_wait or log.warning
        self._lock = None

    @property
    def path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked

    def _owner(self) -> str:
        try:
            o = json.loads((self.root / (LOCK_NAME + ".owner")).read_text(encoding="utf-8"))
            return f"pid {o['pid']} on {o['host']} since {o['since']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    def acquire(self) -> "WriterLock":
        from filelock import FileLock, Timeout

        if self.held:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        # thread_local=False: a writer may be closed from another thread (or by the garbage collector)
        lock = FileLock(str(self.path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            wait = "for ever" if self.timeout < 0 else f"up to {self.timeout:g} s"
            self.on_wait(f"index at {self.root} is being written by {self._owner()}; waiting {wait} "
                         f"(write_lock_timeout / RAG_WRITE_LOCK_TIMEOUT)")
            try:
                lock.acquire(timeout=self.timeout)
            except Timeout:
                raise WriterLockTimeout(
                    f"index at {self.root} is still being written by {self._owner()} after {self.timeout:g} s; "
                    f"try again later or raise write_lock_timeout (RAG_WRITE_LOCK_TIMEOUT)") from None
        self._lock = lock
        try:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (self.root / (LOCK_NAME + ".owner")).write_text(json.dumps(owner), encoding="utf-8")
        except OSError:
            pass  # the owner note only improves the waiting message
        return self

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None and lock.is_locked:
            lock.release(force=True)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass
