"""Large new files written with O_DIRECT: the packs of a local repository.

A buffered write of a pack costs the kernel a page-cache copy, page allocation and
writeback, about as much CPU as compressing a tenth of the pack's data, and fills the
page cache with data nobody reads soon, pushing out what the LXD host's instances use.
O_DIRECT writes the pack straight from a page-aligned copy, a few MiB at a time. A file system that refuses
O_DIRECT (tmpfs, some FUSE file systems) gets buffered writes instead, from then on.
Durability is unchanged: the caller still fsyncs the file and its directory.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

from dedupe.memory import new_buffer

MIN_SIZE = 1 << 20  # smaller files (manifests, most index segments) are written buffered
ALIGN = 4096  # buffer address, length and file offset: any logical sector size up to a page
STAGE = 4 << 20  # the aligned staging buffer: a pack is copied and written in pieces of this size
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


class DirectWriter:
    """Creates files with O_DIRECT writes while the file system takes them."""

    def __init__(self) -> None:
        self.enabled = hasattr(os, "O_DIRECT")
        self._stages: list[mmap.mmap] = []  # staging buffers of finished files, for the next ones
        self._lock = threading.Lock()

    def write_new(self, path: Path, views: list[memoryview]) -> int | None:
        """Create ``path`` (mode 0600, which must not exist) holding ``views`` one after
        the other, and return its open descriptor; ``None`` (and no file) when the data
        is small or the file system refuses O_DIRECT."""
        total = sum(v.nbytes for v in views)
        if not self.enabled or total < MIN_SIZE:
            return None
        stream = self.open_new(path)
        if stream is None:
            return None
        try:
            stream.write(views)
            return stream.end()
        except BaseException:
            stream.abort()
            path.unlink(missing_ok=True)
            raise

    def open_new(self, path: Path) -> DirectStream | None:
        """``path`` (mode 0600, which must not exist) created for writes with O_DIRECT,
        as a stream its data is written to piece by piece; ``None`` (and no file) when
        the file system refuses O_DIRECT."""
        if not self.enabled:
            return None
        try:
            fd = os.open(path, NEW_FILE | os.O_DIRECT, 0o600)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.enabled = False
            return None
        return DirectStream(self, fd)

    def _take_stage(self) -> mmap.mmap:
        """A staging buffer (an anonymous mapping, so page-aligned), reused across files."""
        with self._lock:
            if self._stages:
                return self._stages.pop()
        return new_buffer(STAGE)

    def _give_stage(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._stages) < KEPT_STAGES:
                self._stages.append(buf)


KEPT_STAGES = 2  # staging buffers kept for reuse (one per writing thread at once)


class DirectStream:
    """A new file written with O_DIRECT through a page-aligned staging buffer of
    ``STAGE`` bytes: each full buffer written as it fills, at ``end`` the whole blocks
    of the rest, then (with O_DIRECT switched off) the last partial block. A file
    system that opens with O_DIRECT but refuses the writes gets the same bytes
    buffered, from the same offset, and the writer gives up O_DIRECT for good."""

    def __init__(self, writer: DirectWriter, fd: int) -> None:
        self._writer = writer
        self.fd = fd
        self._buf: mmap.mmap | None = writer._take_stage()
        self._stage = memoryview(self._buf)
        self._fill = 0
        self._direct = True

    def write(self, views: list[memoryview]) -> None:
        stage = self._stage
        for v in views:
            pos, end = 0, v.nbytes
            while pos < end:
                n = min(STAGE - self._fill, end - pos)
                stage[self._fill:self._fill + n] = v[pos:pos + n]
                self._fill += n
                pos += n
                if self._fill == STAGE:
                    self._write(stage)
                    self._fill = 0

    def end(self) -> int:
        """Write what is staged; returns the descriptor (the caller fsyncs and closes it)."""
        whole = self._fill - self._fill % ALIGN
        self._write(self._stage[:whole])
        if whole < self._fill:
            self._buffered()
            write_all(self.fd, [self._stage[whole:self._fill]])
        self._release()
        return self.fd

    def abort(self) -> None:
        """Close the descriptor (the caller removes the file)."""
        self._release()
        os.close(self.fd)

    def _write(self, view: memoryview) -> None:
        if not self._direct:
            write_all(self.fd, [view])
            return
        start = os.lseek(self.fd, 0, os.SEEK_CUR)
        try:
            write_all(self.fd, [view])
        except OSError as e:
            if e.errno != errno.EINVAL:  # opened, but the writes were refused: buffered instead
                raise
            self._writer.enabled = False
            self._buffered()
            os.lseek(self.fd, start, os.SEEK_SET)
            write_all(self.fd, [view])

    def _buffered(self) -> None:
        if self._direct:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self._direct = False

    def _release(self) -> None:
        if self._buf is not None:
            self._stage.release()
            self._writer._give_stage(self._buf)
            self._buf = None


_IOV_MAX = 1024  # os.writev takes at most this many buffers (Linux's IOV_MAX)


def write_all(fd: int, views: list[memoryview]) -> None:
    """Write ``views`` in order with ``writev`` (no joined copy), resuming after short
    writes; empty views are skipped."""
    views = [v for v in views if v.nbytes]
    i = 0  # the first view not wholly written
    while i < len(views):
        written = os.writev(fd, views[i:i + _IOV_MAX])
        while written:
            if written < views[i].nbytes:
                views[i] = views[i][written:]
                break
            written -= views[i].nbytes
            i += 1
