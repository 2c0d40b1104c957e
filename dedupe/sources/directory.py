"""Walk a directory tree for a backup: one ``Entry`` per file-system object.

Order: depth first, parents before children, siblings sorted by their name bytes, so
an unchanged tree gives an identical entry stream. The first entry is the root
directory itself, with path ``""``: it carries the root's own metadata (mode, owner,
times, xattrs, ACLs), which a restore applies to its target directory. Every other
path is relative to the root, '/'-separated, non-UTF-8 names carried with
``surrogateescape``.

Nothing below the root is followed: every directory is opened relative to its
parent's descriptor with ``O_NOFOLLOW | O_DIRECTORY`` and each file relative to its
parent, so paths longer than ``PATH_MAX`` work and a directory swapped for a symlink
while the walk runs is never followed out of the tree. The root itself is opened as
given (a symlink naming the root is followed).

A regular file is opened, and its metadata taken from the open descriptor, before its
entry is yielded (with ``lazy_files``, a file with one link is only ``lstat``-ed: its
xattrs and sparse map are left out, ``loaded`` is false, and ``load()`` opens it, so
a backup whose files cache knows the file never opens it); ``WalkedEntry.iter_data`` reads that descriptor. The walk closes the
descriptor when it moves on, so read an entry's data before advancing the walk (or
``iter_data`` re-opens the file, checking it is still the same inode). Reading updates
the entry when the file changed underneath: ``entry.size`` (and ``entry.sparse``) then
describe exactly the bytes yielded, so read ``entry`` after ``iter_data`` is exhausted.

Problems with single members never abort the walk; they are reported through
``on_warning`` (one line naming the path) and the member is skipped or kept
consistent: vanished before it could be opened (skipped), unreadable (``EACCES``:
files skipped; directories kept as an empty directory entry), changed while read
(content kept as read), sockets and unknown types (skipped). Only a root that is
missing, unreadable or not a directory raises ``DirectorySourceError``.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.errors import DedupeError
from dedupe.sources.excludes import CACHEDIR_TAG, is_cache_dir

Warn = Callable[[str], None]

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_MAX_OPEN_DIRS: Final = 64  # directory descriptors kept open on the walk's stack


class DirectorySourceError(DedupeError):
    """The root of a directory backup is missing, unreadable or not a directory."""

    exit_code = 50


@dataclass(slots=True)
class WalkedEntry:
    """One walked entry plus what the engine's files cache keys on.

    ``entry.chunks`` is empty; ``dev``, ``ino`` and ``ctime_ns`` (with ``entry.size``
    and ``entry.mtime_ns``) identify an unchanged file.
    """

    entry: Entry
    dev: int
    ino: int
    ctime_ns: int
    vanished: bool = False  # set by iter_data when a lazily re-opened file was gone
    loaded: bool = True  # false: a regular file only lstat-ed so far (xattrs and sparse map not read)
    on_load: Callable[[dict[str, bytes]], None] | None = field(default=None, repr=False, compare=False)
    _parent: _Dir | None = field(default=None, repr=False, compare=False)
    _name: str = field(default="", repr=False, compare=False)
    _fd: int = field(default=-1, repr=False, compare=False)
    _display: str = field(default="", repr=False, compare=False)
    _root: str = field(default="", repr=False, compare=False)  # set when _display is left to be made
    _warn: Warn | None = field(default=None, repr=False, compare=False)

    def load(self) -> bool:
        """Open a file the walk only ``lstat``-ed (``lazy_files``): take its metadata from
        the open descriptor, read its xattrs (then ``on_load(xattrs)``) and sparse map. False (with a warning) when
        it vanished or was replaced since: drop the entry. Call before the walk moves on."""
        if self.loaded:
            return True
        assert self._parent is not None
        try:
            dir_fd = self._parent.fileno()
            fd = _open_file(self._name, dir_fd)
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (self.dev, self.ino):
                    raise FileNotFoundError(errno.ENOENT, "replaced by another file")
            except OSError:
                os.close(fd)
                raise
        except OSError as e:
            self._report(f"vanished before it could be read ({e.strerror}); skipped")
            self.vanished = True
            return False
        entry = self.entry
        entry.size, entry.mtime_ns, self.ctime_ns = st.st_size, st.st_mtime_ns, st.st_ctime_ns
        entry.xattrs = _fd_xattrs(fd, self._warn or (lambda _m: None), self._where())
        if self.on_load is not None:  # e.g. the ids in ACLs unshifted, as for the walk's other entries
            self.on_load(entry.xattrs)
        entry.sparse = _sparse_map(fd, st)
        self._fd = fd
        self.loaded = True
        return True

    def iter_data(self, block_size: int = 1 << 20) -> Iterator[bytes]:
        """The content of a regular file (nothing for other types).

        For a sparse file, only the data segments of ``entry.sparse``, back to back.
        If the file changed while being read, a warning is given and ``entry`` is
        updated to describe exactly the bytes yielded. If the file had to be re-opened
        (the walk moved on) and is gone or replaced, a warning is given, nothing is
        yielded, ``entry.size`` becomes 0 and ``vanished`` is set: drop the entry.
        """
        if self.entry.type != FILE:
            return
        fd = self._take_fd()
        if fd < 0:
            return
        try:
            yield from self._read(fd, block_size)
        finally:
            os.close(fd)

    def read_view(self, take: Callable[[int], memoryview]) -> memoryview:
        """The content of a dense regular file (``entry.sparse`` None) read into
        ``take(entry.size)``, the view cut to what was read; the same checks and
        updates as ``iter_data``. Empty when the file vanished."""
        fd = self._take_fd("read_view")
        if fd < 0:
            return memoryview(b"")
        try:
            view = take(self.entry.size)
            done, problem = _read_into(fd, view)
            self._check_read(fd, done, problem, [(0, done)] if done else [])
            return view[:done]
        finally:
            os.close(fd)

    def read_dense(self, consume: Callable[[_FdReader], None]) -> None:
        """The content of a regular file through ``consume(reader)``, which reads it with
        ``reader.readinto`` (for files too large for ``read_view``, and sparse files: their
        data segments back to back, as ``iter_data`` gives them, read straight into the
        caller's buffers); the same checks and updates as ``iter_data``."""
        if self.entry.type != FILE:
            raise ValueError(f"{self._where()}: read_dense is for regular files")
        fd = self._take_fd()
        if fd < 0:
            return
        try:
            entry = self.entry
            reader = _FdReader(fd, entry.sparse if entry.sparse is not None else [(0, entry.size)])
            consume(reader)
            self._check_read(fd, reader.pos, reader.problem, reader.kept)
        finally:
            os.close(fd)

    def _take_fd(self, dense_reader: str = "") -> int:
        """The descriptor to read (re-opened if the walk closed it; the caller closes
        it), or -1 when the file vanished. ``dense_reader`` names a reader that only
        takes dense regular files."""
        if dense_reader and (self.entry.type != FILE or self.entry.sparse is not None):
            raise ValueError(f"{self._where()}: {dense_reader} is for dense regular files")
        fd, self._fd = self._fd, -1
        return fd if fd >= 0 else self._reopen()

    def close(self) -> None:
        """Release the open descriptor, if any (the walk calls this when moving on)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        self.close()

    def _reopen(self) -> int:
        assert self._parent is not None
        try:
            dir_fd = self._parent.open_new()
            try:
                fd = _open_file(self._name, dir_fd)
            finally:
                os.close(dir_fd)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.dev, self.ino):
                os.close(fd)
                raise FileNotFoundError(errno.ENOENT, "replaced by another file")
            return fd
        except OSError as e:
            self._report(f"vanished before it could be read ({e.strerror})")
            self.vanished = True
            self.entry.size = 0
            self.entry.sparse = None
            return -1

    def _read(self, fd: int, block_size: int) -> Iterator[bytes]:
        entry = self.entry
        segments = entry.sparse if entry.sparse is not None else [(0, entry.size)]
        kept: list[tuple[int, int]] = []
        problem = ""
        position = 0  # where reading stopped, when it stopped early
        for offset, length in segments:
            done = 0
            while done < length:
                try:
                    block = os.pread(fd, min(block_size, length - done), offset + done)
                except OSError as e:
                    problem = f"read error ({e.strerror}); content kept up to the error"
                    break
                if not block:
                    problem = "changed while being read (shorter than expected)"
                    break
                done += len(block)
                yield block
            if done:
                kept.append((offset, done))
            if problem:
                position = offset + done
                break
        self._check_read(fd, position, problem, kept)

    def _check_read(self, fd: int, position: int, problem: str, kept: list[tuple[int, int]]) -> None:
        """After a read: update the entry to what was read (a file ending at
        ``position``) if it stopped early, or check the file did not change."""
        entry = self.entry
        if problem:
            entry.size = position
            if entry.sparse is not None:
                entry.sparse = kept
        else:
            try:
                st = os.fstat(fd)
                if (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != (entry.size, entry.mtime_ns, self.ctime_ns):
                    problem = "changed while being read"
            except OSError as e:
                problem = f"changed while being read ({e.strerror})"
        if problem:
            self._report(problem)

    def _report(self, message: str) -> None:
        if self._warn is not None:
            self._warn(f"{self._where()}: {message}")

    def _where(self) -> str:
        """The path warnings name (the walked root joined with the entry's own path)."""
        if not self._display and self._root:
            assert self._parent is not None
            rel = f"{self._parent.path}/{self._name}" if self._parent.parent is not None else self._name
            self._display = os.path.join(self._root, rel)
        return self._display


class _Dir:
    """A directory on the walk's stack: its descriptor (or -1 when closed for now)."""

    __slots__ = ("parent", "name", "dev", "ino", "fd", "path")

    def __init__(self, parent: _Dir | None, name: str, dev: int, ino: int, fd: int, path: str) -> None:
        self.parent, self.name, self.dev, self.ino, self.fd, self.path = parent, name, dev, ino, fd, path

    def fileno(self) -> int:
        """The descriptor, re-opened (and kept) if it was closed to save descriptors."""
        if self.fd < 0:
            self.fd = self.open_new()
        return self.fd

    def open_new(self) -> int:
        """A new descriptor (the caller closes it), reached by ``O_NOFOLLOW`` hops."""
        chain: list[_Dir] = []
        node: _Dir | None = self
        while node is not None and node.fd < 0:
            chain.append(node)
            node = node.parent
        if node is None:  # nothing open any more: start again from the root's path
            root = chain.pop()
            fd = os.open(root.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            _check_same(fd, root)
        else:
            fd = os.dup(node.fd)
        for step in reversed(chain):
            try:
                child = os.open(step.name, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = child
            _check_same(fd, step)
        return fd


def _check_same(fd: int, d: _Dir) -> None:
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (d.dev, d.ino):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "directory was replaced while the walk ran", d.path)


def walk_tree(root: Path, *, one_file_system: bool = False, on_warning: Warn | None = None,
              exclude: Callable[[str], bool] | None = None, exclude_caches: bool = False,
              lazy_files: bool = False, names: bool = True) -> Iterator[WalkedEntry]:
    """Walk ``root`` (see the module doc), yielding the root (path ``""``) first.
    ``exclude``: relative paths left out (a directory with all below it), before they
    are even looked at; ``exclude_caches``: the contents of cache directories left out
    (``dedupe.sources.excludes``); ``lazy_files``: regular files with one link are not
    opened (``WalkedEntry.load``); ``names``: false leaves user and group names empty
    (ids that are not this host's: a container's)."""
    warn = on_warning or (lambda _message: None)
    root_text = os.fspath(root)
    try:
        root_fd = os.open(root_text, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        reason = "is not a directory" if e.errno == errno.ENOTDIR else e.strerror
        raise DirectorySourceError(f"directory source {root_text}: {reason}") from None
    st = os.fstat(root_fd)
    top = _Dir(None, "", st.st_dev, st.st_ino, root_fd, root_text)
    try:
        yield _entry(st, "", "", top, root_fd, root_text, None, _fd_xattrs(root_fd, warn, root_text), warn,
                     names=names)
        yield from _Walker(top, one_file_system, warn, exclude, exclude_caches, lazy_files, names).run()
    finally:
        if top.fd >= 0:
            os.close(top.fd)
            top.fd = -1


class _Walker:
    def __init__(self, top: _Dir, one_file_system: bool, warn: Warn,
                 exclude: Callable[[str], bool] | None = None, exclude_caches: bool = False,
                 lazy_files: bool = False, names: bool = True) -> None:
        self.top = top
        self.lazy_files = lazy_files
        self.names = names
        self.one_file_system = one_file_system
        self.warn = warn
        self.exclude = exclude
        self.exclude_caches = exclude_caches
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first path, for nlink > 1
        self.stack: list[_Dir] = []

    def run(self) -> Iterator[WalkedEntry]:
        # Each stack frame: the directory and its remaining (sorted) child names.
        frames: list[tuple[_Dir, Iterator[str]]] = [(self.top, iter(self._list(self.top)))]
        self.stack = [self.top]
        try:
            while frames:
                parent, names = frames[-1]
                name = next(names, None)
                if name is None:
                    frames.pop()
                    done = self.stack.pop()
                    if done is not self.top and done.fd >= 0:
                        os.close(done.fd)
                        done.fd = -1
                    continue
                walked, child = self._visit(parent, name)
                if walked is None:
                    continue
                try:
                    yield walked
                finally:
                    walked.close()
                if child is not None:
                    self.stack.append(child)
                    self._limit_open()
                    frames.append((child, iter(self._list(child))))
        finally:
            for d in self.stack:
                if d is not self.top and d.fd >= 0:
                    os.close(d.fd)
                    d.fd = -1

    def _limit_open(self) -> None:
        open_dirs = [d for d in self.stack[1:] if d.fd >= 0]
        for d in open_dirs[:-_MAX_OPEN_DIRS]:
            os.close(d.fd)
            d.fd = -1

    def _list(self, d: _Dir) -> list[str]:
        if d.fd == -2:  # unreadable: its entry was yielded, its content is skipped
            d.fd = -1
            return []
        try:
            names = os.listdir(d.fileno())
        except OSError as e:
            self.warn(f"{self._display(d.path)}: cannot list directory ({e.strerror}); its content is skipped")
            return []
        if self.exclude_caches and CACHEDIR_TAG in names and is_cache_dir(d.fileno()):
            return []  # a cache directory: kept, empty
        if all(map(str.isascii, names)):
            names.sort()  # the same order as their bytes'
        else:  # UTF-8's byte order is the code points', but not for surrogate-escaped bytes
            names.sort(key=os.fsencode)
        return names

    def _display(self, path: str) -> str:
        return os.path.join(self.top.path, path) if path else self.top.path

    def _visit(self, parent: _Dir, name: str) -> tuple[WalkedEntry | None, _Dir | None]:
        path = f"{parent.path}/{name}" if parent is not self.top else name
        if self.exclude is not None and self.exclude(path):
            return None, None
        try:
            dir_fd = parent.fileno()
            st = _lstat(name, dir_fd)
        except OSError as e:
            self._skip(self._display(path), e)
            return None, None
        mode = st.st_mode
        fmt = stat.S_IFMT(mode)
        if fmt == stat.S_IFREG and self.lazy_files and st.st_nlink == 1:
            # not opened: the files cache decides whether it must be (WalkedEntry.load);
            # its display path is only made for a warning (``_root``). The hot path of an
            # unchanged night: built here directly (what ``_entry`` gives such a file)
            uid, gid = st.st_uid, st.st_gid
            names = self.names
            return WalkedEntry(Entry(path, FILE, mode & 0o7777, uid, gid, _user_name(uid) if names else "",
                                     _group_name(gid) if names else "", st.st_mtime_ns, st.st_atime_ns,
                                     st.st_ctime_ns, st.st_size, "", None, {}),
                               st.st_dev, st.st_ino, st.st_ctime_ns, False, False, None, parent, name, -1, "",
                               self.top.path, self.warn), None
        display = self._display(path)
        fd = -1
        child: _Dir | None = None
        try:
            if fmt == stat.S_IFREG:
                fd = _open_file(name, dir_fd)
                st = _same_or_raise(os.fstat(fd), st)
                xattrs = _fd_xattrs(fd, self.warn, display)
            elif fmt == stat.S_IFDIR:
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                except PermissionError as e:
                    self.warn(f"{display}: cannot open directory ({e.strerror}); its content is skipped")
                    xattrs = _path_xattrs(dir_fd, name, self.warn, display)
                    child = _Dir(parent, name, st.st_dev, st.st_ino, -2, path)
                else:
                    st = _same_or_raise(os.fstat(fd), st)
                    xattrs = _fd_xattrs(fd, self.warn, display)
                    if self.one_file_system and st.st_dev != self.top.dev:
                        os.close(fd)
                        fd = -1
                    else:
                        child = _Dir(parent, name, st.st_dev, st.st_ino, fd, path)
                        fd = -1  # owned by the child frame now
            elif fmt in (stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
                xattrs = _path_xattrs(dir_fd, name, self.warn, display)
            else:
                kind = "socket" if fmt == stat.S_IFSOCK else f"file of unknown type {fmt:#o}"
                self.warn(f"{display}: {kind} skipped")
                return None, None
            link = os.readlink(name, dir_fd=dir_fd) if fmt == stat.S_IFLNK else ""
        except OSError as e:
            if fd >= 0:
                os.close(fd)
            if child is not None and child.fd >= 0:
                os.close(child.fd)
            self._skip(display, e)
            return None, None
        first = None
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is None:
                self.links[key] = path
        walked = _entry(st, path, link, parent, fd, display, first, xattrs, self.warn, name, self.names)
        return walked, child

    def _skip(self, display: str, e: OSError) -> None:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            self.warn(f"{display}: vanished before it could be read; skipped")
        elif e.errno in (errno.EACCES, errno.EPERM):
            self.warn(f"{display}: cannot read ({e.strerror}); skipped")
        else:
            self.warn(f"{display}: {e.strerror}; skipped")


class _FdReader:
    """``readinto`` over the data ``segments`` of a file ((offset, length), back to back;
    a dense file is one from 0); stops at a short read or an error, and says why in
    ``problem``. ``pos``: the file offset reading reached; ``kept``: the segments read
    (the last one cut where reading stopped)."""

    def __init__(self, fd: int, segments: list[tuple[int, int]]) -> None:
        self.fd = fd
        self._segments = segments
        self._next = 0  # the segment being read
        self._done = 0  # bytes read of it
        self.pos = 0
        self.kept: list[tuple[int, int]] = []
        self.problem = ""

    def readinto(self, view: memoryview) -> int:
        filled = 0
        segments = self._segments
        while filled < len(view) and not self.problem and self._next < len(segments):
            offset, length = segments[self._next]
            want = min(len(view) - filled, length - self._done)
            n, self.problem = _read_into(self.fd, view[filled:filled + want], offset + self._done)
            filled += n
            self._done += n
            self.pos = offset + self._done
            if self._done == length or self.problem:
                if self._done:
                    self.kept.append((offset, self._done))
                self._next += 1
                self._done = 0
        return filled


def _read_into(fd: int, view: memoryview, offset: int = 0) -> tuple[int, str]:
    """Fill ``view`` from ``offset`` in the file: bytes read, and the problem that
    stopped it early ("" when none)."""
    done = 0
    while done < len(view):
        try:
            n = os.preadv(fd, [view[done:]], offset + done)
        except OSError as e:
            return done, f"read error ({e.strerror}); content kept up to the error"
        if not n:
            return done, "changed while being read (shorter than expected)"
        done += n
    return done, ""


def _same_or_raise(after: os.stat_result, before: os.stat_result) -> os.stat_result:
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        raise FileNotFoundError(errno.ENOENT, "replaced between listing and opening")
    return after


def _lstat(name: str, dir_fd: int) -> os.stat_result:
    """``lstat`` relative to a directory descriptor (a seam for tests)."""
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _open_file(name: str, dir_fd: int) -> int:
    """Open a regular file for reading without following a symlink (a seam for tests)."""
    try:
        fd = os.open(name, _FILE_FLAGS | os.O_NOATIME, dir_fd=dir_fd)
    except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(errno.ENOENT, "no longer a regular file")
    return fd


_KINDS: Final = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK, stat.S_IFCHR: CHARDEV,
                 stat.S_IFBLK: BLOCKDEV, stat.S_IFIFO: FIFO}


def _entry(st: os.stat_result, path: str, link: str, parent: _Dir, fd: int, display: str, first: str | None,
           xattrs: dict[str, bytes], warn: Warn, name: str = "", names: bool = True) -> WalkedEntry:
    kind = _KINDS[stat.S_IFMT(st.st_mode)]
    uid, gid = st.st_uid, st.st_gid
    entry = Entry(path, kind, stat.S_IMODE(st.st_mode), uid, gid, _user_name(uid) if names else "",
                  _group_name(gid) if names else "", st.st_mtime_ns, st.st_atime_ns, st.st_ctime_ns, 0, link,
                  None, xattrs)
    if kind in (CHARDEV, BLOCKDEV):
        entry.rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if first is not None:
        entry.type, entry.link, entry.rdev = HARDLINK, first, None
        if fd >= 0:
            os.close(fd)
            fd = -1
    elif kind == FILE:
        entry.size = st.st_size
        entry.sparse = _sparse_map(fd, st) if fd >= 0 else None
    return WalkedEntry(entry=entry, dev=st.st_dev, ino=st.st_ino, ctime_ns=st.st_ctime_ns, _parent=parent,
                       _name=name, _fd=fd if kind == FILE else -1, _display=display, _warn=warn)


def _sparse_map(fd: int, st: os.stat_result) -> list[tuple[int, int]] | None:
    """Data segments of a file with fewer blocks than its size, or None when dense."""
    size = st.st_size
    if size == 0 or st.st_blocks * 512 >= size:
        return None
    segments: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole remains
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            segments.append((start, end - start))
            offset = end
    except OSError:  # no SEEK_DATA here: read it as dense
        return None
    if segments == [(0, size)]:
        return None
    return segments


def _fd_xattrs(fd: int, warn: Warn, display: str) -> dict[str, bytes]:
    return _xattrs(fd, warn, display)


def _path_xattrs(dir_fd: int, name: str, warn: Warn, display: str) -> dict[str, bytes]:
    # l*xattr has no *at form: reach the entry through its parent's descriptor.
    return _xattrs(f"/proc/self/fd/{dir_fd}/{name}", warn, display)


def _xattrs(target: int | str, warn: Warn, display: str) -> dict[str, bytes]:
    follow = isinstance(target, int)  # a descriptor is the file itself; a path must not be followed
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            warn(f"{display}: cannot list extended attributes ({e.strerror})")
        return {}
    values: dict[str, bytes] = {}
    for key in sorted(names):
        try:
            values[key] = os.getxattr(target, key, follow_symlinks=follow)
        except OSError as e:
            if e.errno != errno.ENODATA:  # removed meanwhile: nothing to keep
                warn(f"{display}: cannot read extended attribute {key} ({e.strerror})")
    return values


@lru_cache(maxsize=4096)
def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


@lru_cache(maxsize=4096)
def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""
