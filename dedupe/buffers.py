"""Read buffers that are reused instead of allocated per read: ``BufferPool`` (large
blocks a chunker cuts), ``ReadArena`` (many small whole-file reads), and ``ReadInto``
(``readinto`` into them, from any reader). Sources and the backup engine share them."""

from __future__ import annotations

import io
import mmap
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
    from it are."""

    def __init__(self, size: int, keep: int = 6) -> None:
        self.size = size
        self.keep = keep
        self._free: list[mmap.mmap] = []

    def get(self) -> mmap.mmap:
        for buf in self._free:
            if not _exported(buf):
                return buf
        buf = new_buffer(self.size)
        if len(self._free) < self.keep:
            self._free.append(buf)
        return buf


class ReadArena:
    """Room for many small reads (whole files) in a few reused buffers: ``take(n)``
    gives ``n`` bytes after the last ones taken, in a fresh buffer when they do not
    fit. A buffer comes back once no view of it is left (its chunks are stored)."""

    def __init__(self, size: int, keep: int = 6) -> None:
        self.size = size
        self._pool = BufferPool(size, keep)
        self._view = memoryview(b"")
        self._pos = 0

    def take(self, n: int) -> memoryview:
        if n > self.size:
            raise ValueError(f"ReadArena.take({n}): more than the buffer size {self.size}")
        if self._pos + n > len(self._view):
            self._view = memoryview(self._pool.get())
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
