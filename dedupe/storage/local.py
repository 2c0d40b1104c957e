"""A repository in a local directory (FORMAT.md section 11.1)."""

from __future__ import annotations

import errno
import mmap
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Iterator

from dedupe.storage.base import Data, LocalReads, ObjectExists, ObjectNotFound, StorageError
from dedupe.storage.direct import NEW_FILE, DirectStream, DirectWriter, write_all

TEMP_SUFFIX = ".tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _views(data: Data) -> list[memoryview]:
    """``data`` or its parts as byte views (no copies), empty ones left out."""
    parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    return [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes]


class LocalStorage(LocalReads):
    """Files under ``root``. Writes go to a temporary file that is fsynced, then
    renamed (or hard-linked, for ``create``) into place, then the directory is fsynced."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)
        self._direct = DirectWriter()

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise StorageError(f"{self.location}: refusing object name {name!r}")
        return self.root / name

    def _write_temp(self, path: Path, data: Data) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.urandom(4).hex()}{TEMP_SUFFIX}"
        views = _views(data)
        fd = self._direct.write_new(tmp, views)  # large objects (packs); None: write them here
        try:
            if fd is None:
                fd = os.open(tmp, NEW_FILE, 0o600)
                write_all(fd, views)
            os.fsync(fd)
        except BaseException:
            if fd is not None:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    def writer(self, directory: str) -> TempFileWriter:
        return TempFileWriter(self, directory)

    def put(self, name: str, data: Data) -> None:
        path = self._path(name)
        try:
            tmp = self._write_temp(path, data)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            raise StorageError(f"{path}: cannot write ({e.strerror})") from None

    def create(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            tmp = self._write_temp(path, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ObjectExists(f"{path}: already exists") from None
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
        except ObjectExists:
            raise
        except OSError as e:
            raise StorageError(f"{path}: cannot write ({e.strerror})") from None

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{path}: missing") from None
        except OSError as e:
            raise StorageError(f"{path}: cannot read ({e.strerror})") from None

    def get_into(self, name: str, buf: mmap.mmap | bytearray) -> memoryview | None:
        """The whole file read into ``buf`` (the start of it), or None when it does not
        fit. A caller reading many large files (check, pack after pack) reuses a few
        buffers instead of a fresh allocation each, whose pages all fault in again."""
        path = self._path(name)
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size >= len(buf):  # one byte to spare: a file that grew since is not cut short
                    return None
                view = memoryview(buf)
                n = 0
                while True:
                    got = f.readinto(view[n:])
                    if not got:
                        break
                    n += got
                    if n == len(buf):
                        return None
                return view[:n]
        except FileNotFoundError:
            raise ObjectNotFound(f"{path}: missing") from None
        except OSError as e:
            raise StorageError(f"{path}: cannot read ({e.strerror})") from None

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFound(f"{path}: missing") from None
        except OSError as e:
            raise StorageError(f"{path}: cannot read ({e.strerror})") from None
        try:
            parts = []
            while length > 0:
                part = os.pread(fd, length, offset)
                if not part:
                    break
                parts.append(part)
                offset += len(part)
                length -= len(part)
            return b"".join(parts)
        except OSError as e:
            raise StorageError(f"{path}: cannot read ({e.strerror})") from None
        finally:
            os.close(fd)

    def size(self, name: str) -> int:
        path = self._path(name)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"{path}: missing") from None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        top = self._path(prefix)
        try:
            for dirpath, _dirs, files in os.walk(top):
                rel = os.path.relpath(dirpath, self.root)
                for f in sorted(files):
                    if f.startswith(".") and f.endswith(TEMP_SUFFIX):
                        continue
                    try:
                        size = os.stat(os.path.join(dirpath, f)).st_size
                    except FileNotFoundError:
                        continue
                    yield (f"{rel}/{f}" if rel != "." else f), size
        except OSError as e:
            raise StorageError(f"{top}: cannot list ({e.strerror})") from None

    def not_empty(self) -> str | None:
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            return f"{self.root}: exists and is not an empty directory"
        return None

    def make_directories(self, names: Sequence[str]) -> None:
        for d in names:
            (self.root / d).mkdir(parents=True, exist_ok=True)

    def missing(self) -> str | None:
        return None if self.root.is_dir() else f"{self.root}: no such directory"

    def remove_stale_temp_files(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        n = 0
        for name in list(self.temp_files()):
            try:
                if os.stat(self.root / name).st_mtime < cutoff:
                    os.unlink(self.root / name)
                    n += 1
            except FileNotFoundError:
                continue
        return n

    def temp_files(self) -> Iterator[str]:
        """Leftovers of interrupted writes (section 11.1), for gc and check."""
        for dirpath, _dirs, files in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            for f in files:
                if f.startswith(".") and f.endswith(TEMP_SUFFIX):
                    yield f"{rel}/{f}" if rel != "." else f

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise StorageError(f"{path}: cannot delete ({e.strerror})") from None

    def exists(self, name: str) -> bool:
        return self._path(name).exists()


class TempFileWriter:
    """``LocalStorage.writer``: the parts go to a temporary file in the directory as
    they come (with O_DIRECT where the file system takes it); ``finish`` fsyncs it and
    renames it into place under its name (FORMAT.md section 11.1)."""

    def __init__(self, storage: LocalStorage, directory: str) -> None:
        self._storage = storage
        where = storage._path(directory)
        self._tmp = where / f".new.{os.urandom(8).hex()}{TEMP_SUFFIX}"
        try:
            where.mkdir(parents=True, exist_ok=True)
            self._direct: DirectStream | None = storage._direct.open_new(self._tmp)
            self._fd = self._direct.fd if self._direct is not None else os.open(self._tmp, NEW_FILE, 0o600)
        except OSError as e:
            raise StorageError(f"{self._tmp}: cannot write ({e.strerror})") from None

    def write(self, parts: Data) -> None:
        try:
            if self._direct is not None:
                self._direct.write(_views(parts))
            else:
                write_all(self._fd, _views(parts))
        except OSError as e:
            self.abort()
            raise StorageError(f"{self._tmp}: cannot write ({e.strerror})") from None

    def finish(self, name: str) -> None:
        path = self._storage._path(name)
        try:
            if self._direct is not None:
                self._direct.end()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, path)
            _fsync_dir(path.parent)
        except OSError as e:
            self.abort()
            raise StorageError(f"{path}: cannot write ({e.strerror})") from None

    def abort(self) -> None:
        if self._fd >= 0:
            if self._direct is not None:
                self._direct.abort()
            else:
                os.close(self._fd)
            self._fd = -1
        self._tmp.unlink(missing_ok=True)
