"""Read buffers that are reused instead of allocated per read: ``BufferPool`` (large
blocks a chunker cuts), ``ReadArena`` (many small whole-file reads), and ``ReadInto``
(``readinto`` into them, from any reader). Sources and the backup engine share them."""

from __future__ import annotations

import io
import mmap
import threading
from typing import Any, Callable

from dedupe.memory import new_buffer


def _exported(buf: mmap.mmap) -> bool:
    """Whether any memoryview still refers to ``buf`` (a mapping cannot be resized
    then; resizing it to its own size changes nothing)."""
    try:
        buf.resize(len(buf))
    except BufferError:
        return True
    return False


class BufferPool:
    """Read buffers that are reused once no chunk refers to them any more.

    A fresh multi-megabyte buffer per read costs a page fault per page; reusing a few
    buffers (``new_buffer``) keeps the read path copy- and fault-free. Memory stays
    bounded by the chunks in flight, since a buffer is busy only while chunks cut
    from it are. Up to ``keep`` buffers stay mapped for reuse; more, when that many
    are busy at once, are unmapped as soon as they are free."""

    def __init__(self, size: int, keep: int = 6) -> None:
        self.size = size
        self.keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def get(self) -> mmap.mmap:
        """A buffer no view refers to. The caller must take a view of it before any
        other thread may ``get`` from this pool (``view`` does both at once)."""
        for buf in self._free:
            if not _exported(buf):
                return buf
        buf = new_buffer(self.size)
        if len(self._free) < self.keep:
            self._free.append(buf)
        return buf

    def view(self) -> memoryview:
        """A view of a whole free buffer (busy until every view of it is released)."""
        with self._lock:
            return memoryview(self.get())


# Read buffers a shared pool keeps mapped. The chunk pipeline bounds the content in
# flight (8 MiB), so more than two busy at once is rare; each kept buffer is 8 MiB
# resident (huge pages). 2 instead of 4: an encrypted first directory backup of the
# large corpus peaked at 113-116 MiB instead of 129-131, with no CPU cost seen
# (benchmarks/RESULTS.md, "Encrypted backups' peak memory, session 8").
SHARED_KEEP = 2
_SHARED_SIZES = 4  # pools of this many buffer sizes are kept (the backup path uses one)
_shared: dict[int, BufferPool] = {}
_shared_lock = threading.Lock()


def shared_pool(size: int) -> BufferPool:
    """The process's pool of read buffers of ``size`` bytes. Every reader of a backup
    (the walk's arena, the blocks of large files, a tar stream) takes its buffers from
    the same pool, so that what stays mapped is what is in flight at once (which the
    chunk pipeline bounds), not each reader's own high-water mark added up."""
    with _shared_lock:
        pool = _shared.get(size)
        if pool is None:
            if len(_shared) >= _SHARED_SIZES:
                del _shared[next(iter(_shared))]  # the oldest size: its buffers go once free
            pool = _shared[size] = BufferPool(size, SHARED_KEEP)
        return pool


class ReadArena:
    """Room for many small reads (whole files) in a few reused buffers: ``take(n)``
    gives ``n`` bytes after the last ones taken, in a fresh buffer when they do not
    fit. A buffer comes back once no view of it is left (its chunks are stored).
    Its buffers come from ``shared_pool(size)``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = shared_pool(size)
        self._view = memoryview(b"")
        self._pos = 0

    def take(self, n: int) -> memoryview:
        if n > self.size:
            raise ValueError(f"ReadArena.take({n}): more than the buffer size {self.size}")
        if self._pos + n > len(self._view):
            self._view = self._pool.view()
            self._pos = 0
        view = self._view[self._pos:self._pos + n]
        self._pos += n
        return view


class ReadInto:
    """``f.readinto``, or a stand-in built on ``f.read`` (one copy per block) for
    readers that lack it or refuse it (a ``RawIOBase`` that implements only ``read``)."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self._native: Callable[[memoryview], int | None] | None = getattr(f, "readinto", None)

    def __call__(self, view: memoryview) -> int:
        if self._native is not None:
            try:
                return self._native(view) or 0
            except (NotImplementedError, io.UnsupportedOperation):
                self._native = None
        data = self._f.read(len(view))
        view[:len(data)] = data
        return len(data)
