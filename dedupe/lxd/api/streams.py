"""Downloads from LXD as readables that are never loaded whole: a backup tarball
(``ExportStream``) and an image export (``ImageExport`` and its ``ImagePart`` files,
fingerprint checked at the end; ``ImageReader`` joins the parts into one stream)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from email.message import Message
from typing import TYPE_CHECKING, Any

from dedupe.lxd.errors import ImageFingerprintMismatch, LXDStreamBroken
from dedupe.lxd.api.multipart import MultipartReader
from dedupe.lxd.api.uploads import UPLOAD_CHUNK

if TYPE_CHECKING:
    import requests


class _Body(io.RawIOBase):
    """A readable whose ``read(n)`` gives at most n bytes (b"" at the end); reading all
    of it, or into a buffer, goes through ``read``."""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise NotImplementedError

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while chunk := self.read(UPLOAD_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class ExportStream(_Body):
    """A download in progress: a readable body that is never loaded whole.

    ``read(n)`` returns at most n bytes and b"" at the end. A connection cut, or a body
    shorter (or longer) than its Content-Length, raises ``LXDStreamBroken`` instead of
    a silent end. Closing it closes the HTTP response (and its connection).
    """

    def __init__(self, response: requests.Response, what: str) -> None:
        import urllib3.exceptions
        super().__init__()
        self._broken: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)
        self._response = response
        self._raw = response.raw
        self.what = what
        length = response.headers.get("Content-Length", "")
        self.length: int | None = int(length) if length.isdigit() else None
        self.content_type: str = response.headers.get("Content-Type", "")
        self.headers = response.headers
        self.position = 0

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError(f"read from a closed LXD stream ({self.what})")
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        try:
            data: bytes = self._raw.read(size)
        except self._broken as e:
            raise LXDStreamBroken(
                f"LXD stream {self.what} broke after {self.position} of "
                f"{self._expected()} bytes: {e}"
            ) from e
        if not data:
            if self.length is not None and self.position != self.length:
                raise LXDStreamBroken(
                    f"LXD stream {self.what} ended after {self.position} of {self.length} bytes"
                )
            return b""
        self.position += len(data)
        if self.length is not None and self.position > self.length:
            raise LXDStreamBroken(
                f"LXD stream {self.what} longer than its Content-Length {self.length}"
            )
        return data

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def _expected(self) -> str:
        return str(self.length) if self.length is not None else "?"


class ImagePart(_Body):
    """One file of an image export: ``metadata``, ``rootfs`` or ``unified``.

    Read it to its end before asking ``ImageExport.parts`` for the next one (the rest
    is skipped otherwise, and still hashed). The read that reaches the end of the last
    part checks the fingerprint and raises ``ImageFingerprintMismatch``.
    """

    def __init__(
        self,
        export: ImageExport,
        name: str,
        filename: str,
        read: Callable[[int], bytes],
        last: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.name = name
        self.filename = filename
        self.size = 0
        self.done = False
        self._export = export
        self._read_fn = read
        self._is_last = last

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self.done or size == 0:
            return b""
        data = self._read_fn(size)
        if data:
            self.size += len(data)
            self._export._hash.update(data)
            return data
        self.done = True
        if self._is_last():
            self._export._check()
        return b""

    def drain(self) -> None:
        while self.read(UPLOAD_CHUNK):
            pass


class ImageExport:
    """An image as ``GET /1.0/images/<fp>/export`` sends it (docs/lxd.md section 4).

    ``split`` images come as multipart/form-data with a ``metadata`` and a ``rootfs``
    part; unified ones as a single body (part name ``unified``). ``parts()`` yields them
    in order, streamed (a small incremental multipart parser, nothing spooled).
    sha256 of all parts' bytes must equal the fingerprint: the end of the last part, or
    ``verify()``, raises ``ImageFingerprintMismatch`` otherwise. Use it as a context
    manager (it closes the response).
    """

    def __init__(self, stream: ExportStream, fingerprint: str) -> None:
        self._stream = stream
        self.fingerprint = fingerprint
        self._hash = hashlib.sha256()
        self.verified = False
        content_type = stream.content_type
        self.split = content_type.lower().startswith("multipart/")
        self._multipart: MultipartReader | None = None
        self._started = False
        if self.split:
            msg = Message()
            msg["Content-Type"] = content_type
            boundary = msg.get_param("boundary")
            if not isinstance(boundary, str) or not boundary:
                raise LXDStreamBroken(f"LXD stream {stream.what}: multipart without boundary")
            self._multipart = MultipartReader(stream.read, boundary.encode(), stream.what)

    def parts(self) -> Iterator[ImagePart]:
        if self._started:
            raise ValueError(f"image {self.fingerprint} export already iterated")
        self._started = True
        if self._multipart is None:
            name = _disposition_filename(self._stream.headers.get("Content-Disposition", ""))
            part = ImagePart(
                self,
                "unified",
                name or f"{self.fingerprint}.tar.gz",
                self._stream.read,
                lambda: True,
            )
            yield part
            part.drain()
            return
        mp = self._multipart
        mp.skip_preamble()
        names: list[str] = []
        while (headers := mp.next_headers()) is not None:
            name = str(headers.get_param("name", "", header="content-disposition"))
            filename = str(headers.get_param("filename", "", header="content-disposition"))
            names.append(name)
            part = ImagePart(self, name, filename, mp.read_part, lambda: mp.finished)
            yield part
            part.drain()
        if names != ["metadata", "rootfs"]:
            raise LXDStreamBroken(
                f"LXD stream {self._stream.what}: expected parts metadata, rootfs; got {names}"
            )
        self._check()

    def verify(self) -> str:
        """Read whatever is left, then check the fingerprint; returns it."""
        if not self._started:
            for part in self.parts():
                part.drain()
        elif not self.verified:
            raise ValueError(f"image {self.fingerprint} export not read to its end")
        return self.fingerprint

    def _check(self) -> None:
        if self.verified:
            return
        actual = self._hash.hexdigest()
        if actual != self.fingerprint:
            raise ImageFingerprintMismatch(
                f"image {self.fingerprint} exported by LXD ({self._stream.what}) hashes to {actual}"
            )
        self.verified = True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ImageExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _disposition_filename(value: str) -> str:
    msg = Message()
    msg["Content-Disposition"] = value
    return str(msg.get_param("filename", "", header="content-disposition") or "")


class ImageReader:
    """The parts of an image export back to back, as one readable; records each part's
    name, file name and size in ``parts`` as it ends."""

    def __init__(self, export: ImageExport, parts: list[dict[str, Any]]) -> None:
        self._iter = export.parts()
        self._part: ImagePart | None = None
        self.parts = parts

    def read(self, n: int = -1, /) -> bytes:
        while True:
            if self._part is None:
                self._part = next(self._iter, None)
                if self._part is None:
                    return b""
            data = self._part.read(n)
            if data:
                return data
            self.parts.append(
                {"name": self._part.name, "filename": self._part.filename, "size": self._part.size}
            )
            self._part = None
