"""Tasks run in order on a thread of their own, holding at most so many bytes.

A backup hands work it need not wait for to such a thread (the whole-stream hash, the
packs' writes) with the buffers it reads: while the thread has not run a task, the
task's buffers stay busy. ``submit`` therefore waits for the oldest tasks while more
than ``max_bytes`` would be held, so a thread that falls behind (a loaded machine, a
slow storage) holds the caller up instead of making it take ever more memory.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class TaskQueue:
    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queued: deque[tuple[Future[None], int]] = deque()
        self.queued_bytes = 0  # held by the tasks submitted and not yet taken back

    def submit(self, nbytes: int, fn: Callable[..., None], *args: Any) -> None:
        """Queue ``fn(*args)``, which holds ``nbytes`` until it has run; raises what
        an earlier task raised."""
        queued = self._queued
        while queued and (queued[0][0].done() or self.queued_bytes + nbytes > self.max_bytes):
            self._take_first()
        queued.append((self._thread.submit(fn, *args), nbytes))
        self.queued_bytes += nbytes

    def idle(self) -> bool:
        """Whether every task submitted has run (their errors raised here)."""
        while self._queued and self._queued[0][0].done():
            self._take_first()
        return not self._queued

    def wait(self) -> None:
        """Wait for every task submitted; raises the first error."""
        while self._queued:
            self._take_first()

    def _take_first(self) -> None:
        fut, nbytes = self._queued.popleft()
        self.queued_bytes -= nbytes
        fut.result()

    def close(self, cancel: bool = False) -> None:
        """Stop the thread once its tasks ran (or, with ``cancel``, those not started
        are dropped); errors are not raised."""
        self._thread.shutdown(wait=True, cancel_futures=cancel)
        self._queued.clear()
        self.queued_bytes = 0
