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
        self._local = threading.local()  # each writing thread has its own staging buffer

    def write_new(self, path: Path, views: list[memoryview]) -> int | None:
        """Create ``path`` (mode 0600, which must not exist) holding ``views`` one after
        the other, and return its open descriptor; ``None`` (and no file) when the data
        is small or the file system refuses O_DIRECT."""
        total = sum(v.nbytes for v in views)
        if not self.enabled or total < MIN_SIZE:
            return None
        try:
            fd = os.open(path, NEW_FILE | os.O_DIRECT, 0o600)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            self.enabled = False
            return None
        try:
            self._write(fd, views)
        except BaseException as e:
            os.close(fd)
            path.unlink(missing_ok=True)
            if isinstance(e, OSError) and e.errno == errno.EINVAL:  # opened, but the writes were refused
                self.enabled = False
                return None
            raise
        return fd

    def _write(self, fd: int, views: list[memoryview]) -> None:
        """``views`` through a page-aligned staging buffer of ``STAGE`` bytes: each full
        buffer written with O_DIRECT, then the whole blocks of the rest, then (with
        O_DIRECT switched off) the last partial block."""
        stage = self._stage()
        fill = 0
        try:
            for v in views:
                pos, end = 0, v.nbytes
                while pos < end:
                    n = min(STAGE - fill, end - pos)
                    stage[fill:fill + n] = v[pos:pos + n]
                    fill += n
                    pos += n
                    if fill == STAGE:
                        write_all(fd, [stage])
                        fill = 0
            whole = fill - fill % ALIGN
            write_all(fd, [stage[:whole]])
            if whole < fill:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
                write_all(fd, [stage[whole:fill]])
        finally:
            stage.release()

    def _stage(self) -> memoryview:
        """This thread's staging buffer (an anonymous mapping, so page-aligned), made once."""
        buf: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buf is None:
            buf = self._local.buffer = new_buffer(STAGE)
        return memoryview(buf)


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
