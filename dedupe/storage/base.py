"""The storage protocol: named immutable files (FORMAT.md section 11: storage rules).

Names are '/'-separated relative paths such as ``data/ab/abcd...``. Every write
is all-or-nothing: a reader sees the whole file or no file. There is no rename in
the protocol, so object storage can implement it (FORMAT.md section 11).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Iterator, Protocol, Union, runtime_checkable

from dedupe.errors import DedupeError


# What ``put`` stores: a file's bytes, or the parts they are the concatenation of (a
# pack's blobs: a local storage writes them with one writev, with no joined copy).
Data = Union[bytes, memoryview, Sequence[Union[bytes, memoryview]]]


def joined(data: Data) -> bytes:
    """The bytes of ``data`` (parts are joined: one copy)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    return b"".join(data)


class StorageError(DedupeError):
    """The storage failed (I/O error, permission, disk full)."""

    exit_code = 24


class ObjectNotFound(StorageError):
    """A named file is missing."""

    exit_code = 22


class ObjectExists(StorageError):
    """``create`` found the name taken."""

    exit_code = 24


class ObjectWriter(Protocol):
    """A file written part by part whose name is known only at the end (a pack, named
    by its content): ``write`` the parts in order, then ``finish(name)`` stores them
    under ``name`` as ``put`` would (all-or-nothing), or ``abort`` drops them."""

    def write(self, parts: Sequence[bytes | memoryview]) -> None: ...

    def finish(self, name: str) -> None: ...

    def abort(self) -> None: ...


class HeldWriter:
    """``Storage.writer`` where a file cannot be written before its name is known (an
    object store): the parts are held until ``finish`` puts them."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._parts: list[bytes | memoryview] = []

    def write(self, parts: Sequence[bytes | memoryview]) -> None:
        self._parts += parts

    def finish(self, name: str) -> None:
        parts, self._parts = self._parts, []
        self._storage.put(name, parts)

    def abort(self) -> None:
        self._parts = []


@runtime_checkable
class Storage(Protocol):
    """What the repository needs from a place to keep files."""

    location: str  # for messages: a path or URL
    # How reads should be shaped (restore): a remote storage, where each request has a
    # high fixed cost, asks for wide ranged reads (S3: whole packs) with ``read_span``
    # and runs ``read_threads`` of them at once; a local one leaves the span to the
    # reader (None).
    read_span: int | None
    read_threads: int

    def put(self, name: str, data: Data) -> None:
        """Store ``data`` (bytes, or parts stored as their concatenation) under ``name``
        atomically, replacing any file of that name."""

    def writer(self, directory: str) -> ObjectWriter:
        """A file to be stored under ``directory`` (its name given at the end), written
        part by part: a local storage writes the parts as they come, instead of the
        caller holding the whole file in memory (``HeldWriter`` where it cannot)."""

    def create(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` only if no such file exists (raises ObjectExists)."""

    def get(self, name: str) -> bytes:
        """The whole file (raises ObjectNotFound)."""

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer only at the end of the file)."""

    def size(self, name: str) -> int:
        """The file's length in bytes (raises ObjectNotFound)."""

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(name, size)`` of every file under the directory ``prefix``, recursively."""

    def delete(self, name: str) -> None:
        """Remove a file; a missing file is not an error."""

    def exists(self, name: str) -> bool: ...

    def abort_stale_uploads(self, older_than_s: float) -> int:
        """Abort writes left unfinished by a crashed writer that began more than
        ``older_than_s`` seconds ago (S3 multipart uploads, FORMAT.md section 11.2,
        which cost space while invisible); returns how many. 0 where writes cannot be
        left half-done (a local temporary file is gc's to remove, section 15.3)."""

    # Where a storage is a local directory, a repository is made and opened with a few
    # checks and steps more: these ask the storage instead of asking what it is.

    def not_empty(self) -> str | None:
        """Why no new repository may be made here, before anything is written (a local
        directory that exists and holds files), or None."""

    def make_directories(self, names: Sequence[str]) -> None:
        """Make these directories, where the storage has them (a local one); else nothing."""

    def missing(self) -> str | None:
        """Why there is no repository here at all, before anything is read (a local
        directory that does not exist), or None."""

    def remove_stale_temp_files(self, older_than_s: float) -> int:
        """Remove the leftovers of interrupted writes (FORMAT.md section 11.1) older than
        ``older_than_s`` seconds; returns how many. 0 where writes leave none."""


LOCAL_READ_THREADS = 2  # ranged reads at once where a read is a local pread


class NoDirectory:
    """A storage that is no local directory: nothing to check before a repository is
    made or opened, no directories to make, no temporary files left behind, no file
    written before its name is known."""

    def writer(self, directory: str) -> ObjectWriter:
        return HeldWriter(self)  # type: ignore[arg-type]  # the class that mixes this in is a Storage

    def not_empty(self) -> str | None:
        return None

    def make_directories(self, names: Sequence[str]) -> None:
        pass

    def missing(self) -> str | None:
        return None

    def remove_stale_temp_files(self, older_than_s: float) -> int:
        return 0


class LocalReads(NoDirectory):
    """The read shape and housekeeping of a storage whose requests cost little and
    whose writes cannot be left half-done: the reader's own spans, two reads at once."""

    read_span: int | None = None
    read_threads: int = LOCAL_READ_THREADS

    def abort_stale_uploads(self, older_than_s: float) -> int:
        return 0
