"""multipart/form-data as LXD's image API speaks it: a streaming reader for split image
exports and a generator body for split image uploads (docs/lxd.md section 4)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Final

from dedupe.lxd.errors import LXDStreamBroken
from dedupe.lxd.api.uploads import UploadSource, chunks


class MultipartReader:
    """A streaming multipart/form-data parser: parts one after the other, each read in
    pieces, holding at most one block of the body (no spooling, no whole parts).

    Go's writer (LXD) starts with ``--B\\r\\n``; each part is headers, a blank line, the
    data, then ``\\r\\n--B``; ``--`` after the last delimiter ends the body.
    """

    _HEADER_LIMIT: Final = 64 * 1024

    def __init__(self, read: Callable[[int], bytes], boundary: bytes, what: str) -> None:
        self._read = read
        self._delim = b"\r\n--" + boundary
        self._what = what
        self._buf = bytearray(b"\r\n")  # so the first delimiter looks like the others
        self._pos = 0
        self._eof = False
        self._avail = 0  # bytes from _pos known to be data of the current part
        self._delim_next = False  # the delimiter follows those bytes
        self.finished = False  # the closing delimiter has been read

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._read(256 * 1024)
        if not data:
            self._eof = True
            return False
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        return True

    def _need(self, n: int) -> bool:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                return False
        return True

    def skip_preamble(self) -> None:
        while (i := self._buf.find(self._delim, self._pos)) < 0:
            keep = len(self._buf) - len(self._delim) + 1
            self._pos = max(self._pos, keep)
            if not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: no multipart boundary")
        self._pos = i + len(self._delim)
        self._after_delimiter()

    def _after_delimiter(self) -> None:
        """After a delimiter: ``--`` ends the body, else skip to the end of the line."""
        if not self._need(2):
            raise LXDStreamBroken(f"LXD stream {self._what}: multipart body cut at a boundary")
        if self._buf[self._pos : self._pos + 2] == b"--":
            self._pos += 2
            self.finished = True
            while self._fill():  # epilogue: ignored
                self._pos = len(self._buf)
            return
        while (i := self._buf.find(b"\r\n", self._pos)) < 0:
            if len(self._buf) - self._pos > 1024 or not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: malformed multipart boundary")
        self._pos = i + 2

    def next_headers(self) -> Message | None:
        """The headers of the next part, or None after the closing delimiter."""
        if self.finished:
            return None
        while (i := self._buf.find(b"\r\n\r\n", self._pos)) < 0:
            if len(self._buf) - self._pos > self._HEADER_LIMIT:
                raise LXDStreamBroken(f"LXD stream {self._what}: multipart headers too long")
            if not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: cut in multipart headers")
        raw = bytes(self._buf[self._pos : i + 4])
        self._pos = i + 4
        self._avail, self._delim_next = 0, False
        return BytesHeaderParser().parsebytes(raw)

    def read_part(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current part; b"" at its end (the delimiter and
        the line after it are then consumed)."""
        while self._avail == 0:
            if self._delim_next:
                self._pos += len(self._delim)
                self._delim_next = False
                self._after_delimiter()
                return b""
            i = self._buf.find(self._delim, self._pos)
            if i >= 0:
                self._avail, self._delim_next = i - self._pos, True
            else:
                self._avail = max(0, len(self._buf) - self._pos - len(self._delim) + 1)
                if self._avail == 0 and not self._fill():
                    raise LXDStreamBroken(f"LXD stream {self._what}: multipart body cut in a part")
        take = min(size, self._avail)
        out = bytes(self._buf[self._pos : self._pos + take])
        self._pos += take
        self._avail -= take
        return out


def multipart_body(boundary: str, parts: list[tuple[str, str, UploadSource]]) -> Iterator[bytes]:
    for field, filename, source in parts:
        yield (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from chunks(source)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()
