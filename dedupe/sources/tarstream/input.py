"""The stream under a tar reader: a read-ahead buffer, reused buffers for the backup
path (views without copies), and the count of bytes consumed."""

from __future__ import annotations

from typing import Any, Protocol

from dedupe.sources.tarstream.errors import ExtensionTooLargeError
from dedupe.sources.tarstream.fields import _DIRECT_READ, MAX_HEADER_SIZE, READ_SIZE


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Input:
    """The stream with a small read-ahead buffer and a byte count.

    With ``view_size`` (the backup path), the stream is read into reused buffers of
    that size: ``read_some`` then returns memoryviews into them (valid for as long as
    the caller keeps them; a buffer is reused only once no view of it is left) and
    ``read_view`` gives up to ``view_size`` contiguous bytes without a copy."""

    def __init__(self, stream: Readable, view_size: int = 0) -> None:
        self._stream = stream
        self._buf: bytes | memoryview = b""
        self._pos = 0
        self.offset = 0
        self.view_size = view_size
        self._pool: Any = None
        if view_size:
            from dedupe.buffers import ReadInto, shared_pool
            self._pool = shared_pool(view_size)
            self._readinto = ReadInto(stream)

    def _refill(self, need: int) -> None:
        """A fresh buffer holding what is left of the current one, then read until it
        holds ``need`` bytes (or the stream ends)."""
        left = self._buf[self._pos:]
        view = self._pool.view()
        kept = len(left)
        view[:kept] = left
        del left
        filled = kept
        while filled < need:
            n = self._readinto(view[filled:])
            if not n:
                break
            filled += n
        self._buf = view[:filled]
        view.release()
        self._pos = 0

    def read_some(self, n: int) -> bytes:
        """Between 1 and ``n`` bytes; ``b""`` only at the end of the stream."""
        avail = len(self._buf) - self._pos
        if avail:
            take = min(avail, n)
            piece = self._buf[self._pos:self._pos + take]
            self._pos += take
        elif self._pool is not None:
            self._refill(1)
            take = min(len(self._buf), n)
            piece = self._buf[:take]
            self._pos = take
        elif n >= _DIRECT_READ:
            piece = self._stream.read(n)
        else:
            self._buf = self._stream.read(READ_SIZE)
            self._pos = 0
            piece = self._buf[:n]
            self._pos = len(piece)
        self.offset += len(piece)
        return piece  # type: ignore[return-value]  # a memoryview with view_size

    def read_view(self, n: int) -> memoryview:
        """``n`` contiguous bytes (``n`` at most ``view_size``), fewer only if the stream ends."""
        if len(self._buf) - self._pos < n:
            self._refill(self.view_size)
        piece = self._buf[self._pos:self._pos + n]
        self._pos += len(piece)
        self.offset += len(piece)
        return piece  # type: ignore[return-value]

    def unread(self, n: int) -> None:
        """Step back over the last ``n`` bytes of the view just read (they are still in
        the current buffer): the next ``read_view`` starts with them."""
        assert 0 <= n <= self._pos
        self._pos -= n
        self.offset -= n

    def read_upto(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer if the stream ends first."""
        pos = self._pos
        if self._pool is not None and len(self._buf) - pos >= n:  # the common case: in the buffer
            self._pos = pos + n
            self.offset += n
            return bytes(self._buf[pos:pos + n])
        first = self.read_some(n)
        if len(first) == n or not first:
            return bytes(first) if self._pool is not None else first
        parts = [first]
        got = len(first)
        while got < n:
            piece = self.read_some(n - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)


class _Pending:
    """Extension headers read so far for the next member."""

    __slots__ = ("longlink", "longname", "offset", "only_global", "parts", "records", "size",
                 "sparse_numbytes", "sparse_offsets")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.parts: list[bytes] = []
        self.size = 0
        self.records: dict[str, bytes] = {}
        self.sparse_offsets: list[bytes] = []
        self.sparse_numbytes: list[bytes] = []
        self.longname: bytes | None = None
        self.longlink: bytes | None = None
        self.only_global = True

    def add(self, raw: bytes) -> None:
        self.parts.append(raw)
        self.size += len(raw)
        if self.size > MAX_HEADER_SIZE:
            raise ExtensionTooLargeError(
                f"headers of one member starting at byte offset {self.offset} exceed {MAX_HEADER_SIZE} bytes")
