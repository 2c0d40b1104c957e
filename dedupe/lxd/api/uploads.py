"""What an upload to LXD accepts, turned into the non-empty byte chunks of a chunked
request body (nothing is held whole in memory)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, Protocol

UPLOAD_CHUNK: Final = 1 << 20


class SupportsRead(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


# What an upload accepts: bytes, a readable (file, ExportStream, socket file), or an
# iterable of byte chunks (a generator rebuilding a tarball).
UploadSource = bytes | bytearray | memoryview | SupportsRead | Iterable[bytes | memoryview]


def chunks(source: UploadSource) -> Iterator[bytes]:
    """Turn any upload source into non-empty byte chunks (an empty chunk would end a
    chunked body early)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source):
            yield bytes(source)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while chunk := read(UPLOAD_CHUNK):
            yield bytes(chunk)
        return
    for chunk in source:  # type: ignore[union-attr]
        if chunk:
            yield bytes(chunk)
