"""``dedupe mount``: the repository as a read-only FUSE file system (mfusepy over
libfuse 3), in the foreground until Ctrl-C or ``umount``, or as a daemon.

Layout::

    by-id/<id>/...                       each backup's tree
    by-group/<group>/<time> -> ../by-id/<id>   (a symlink per backup)
    by-group/<group>/latest -> <time>

While mounted it holds a shared lock (as a restore does): backups run beside it and
gc waits for it to end before deleting anything.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, SYMLINK, Entry
from dedupe.errors import DedupeError
from dedupe.locking import acquire
from dedupe.mount.backup_tree import Node
from dedupe.mount.catalog import Catalog
from dedupe.mount.content import FILES_AHEAD, ChunkCache, Content, prefetch, read
from dedupe.repository import Repository

_TYPE_BITS = {DIR: stat.S_IFDIR, FILE: stat.S_IFREG, SYMLINK: stat.S_IFLNK, CHARDEV: stat.S_IFCHR,
              BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}
ENOATTR = getattr(errno, "ENOATTR", errno.ENODATA)


class FuseUnavailable(DedupeError):
    """FUSE is missing: no /dev/fuse, no fusermount3 or no libfuse."""

    exit_code = 57


class BadMountPoint(DedupeError):
    """The mount point is missing, not a directory, or not empty."""

    exit_code = 58


def _fuse() -> Any:
    if not os.path.exists("/dev/fuse"):
        raise FuseUnavailable("FUSE is not available: /dev/fuse is missing (load the module: modprobe fuse; "
                              "in a container, pass /dev/fuse in)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        raise FuseUnavailable("FUSE is not available: no fusermount3 (install Debian's fuse3 package)")
    try:
        import mfusepy
    except (ImportError, OSError, EnvironmentError) as e:
        raise FuseUnavailable(f"FUSE is not available: libfuse cannot be loaded ({e}); install fuse3") from None
    return mfusepy


def check_mount_point(path: Path) -> None:
    if not path.is_dir():
        raise BadMountPoint(f"mount point {path} is not a directory")
    if os.path.ismount(path):
        raise BadMountPoint(f"mount point {path} is already a mount point")
    if any(path.iterdir()):
        raise BadMountPoint(f"mount point {path} is not empty")


def _virtual_dir(mtime_ns: int) -> dict[str, Any]:
    return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, "st_uid": os.getuid(), "st_gid": os.getgid(),
            "st_mtime": mtime_ns, "st_atime": mtime_ns, "st_ctime": mtime_ns, "st_size": 0}


def _link_attrs(target: str, mtime_ns: int) -> dict[str, Any]:
    return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_uid": os.getuid(), "st_gid": os.getgid(),
            "st_size": len(target.encode()), "st_mtime": mtime_ns, "st_atime": mtime_ns, "st_ctime": mtime_ns}


def entry_attrs(e: Entry, children: int = 0) -> dict[str, Any]:
    size = len(e.link.encode("utf-8", "surrogateescape")) if e.type == SYMLINK else e.size if e.type == FILE else 0
    attrs = {"st_mode": _TYPE_BITS.get(e.type, stat.S_IFREG) | (e.mode & 0o7777),
             "st_nlink": 2 + children if e.type == DIR else 1, "st_uid": e.uid, "st_gid": e.gid,
             "st_size": size, "st_blocks": (size + 511) // 512, "st_mtime": e.mtime_ns,
             "st_atime": e.atime_ns if e.atime_ns is not None else e.mtime_ns,
             "st_ctime": e.ctime_ns if e.ctime_ns is not None else e.mtime_ns}
    if e.rdev is not None:
        attrs["st_rdev"] = os.makedev(*e.rdev)
    return attrs


class Resolved:
    """What a path in the mount is: a virtual directory, a link, or a node of a tree."""

    __slots__ = ("kind", "names", "target", "node")

    def __init__(self, kind: str, names: list[str] | None = None, target: str = "", node: Node | None = None):
        self.kind, self.names, self.target, self.node = kind, names, target, node


class DedupeFS:
    """The file system operations (mfusepy's ``Operations`` protocol)."""

    use_ns = True

    def __init__(self, repo: Repository, daemon: bool = False, on_ready: Callable[[], None] | None = None) -> None:
        self.daemon = daemon
        self.on_ready = on_ready
        self.catalog = Catalog(repo)
        self.cache = ChunkCache(repo)
        self.started_ns = time.time_ns()
        self._handles: dict[int, Content] = {}
        self._last_opened: Node | None = None
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    # -- resolving ------------------------------------------------------------------------

    def resolve(self, path: str, listing: bool = False) -> Resolved:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return Resolved("dir", ["by-id", "by-group"])
        top, rest = parts[0], parts[1:]
        if top == "by-id":
            if not rest:
                if listing:  # ls by-id: always the current list
                    self.catalog.refresh(force=True)
                return Resolved("dir", sorted(self.catalog.backups))
            b = self.catalog.backup(rest[0])
            if b is None:
                raise OSError(errno.ENOENT, path)
            try:
                tree = self.catalog.tree(b)
            except DedupeError as e:  # a damaged or vanished backup: that directory fails, the mount goes on
                raise OSError(errno.EIO, f"{path}: {e}") from None
            node = tree.lookup(rest[1:])
            if node is None:
                raise OSError(errno.ENOENT, path)
            return Resolved("node", node=node)
        if top == "by-group":
            if listing:  # ls by-group: the current list; below it at most once a second
                self.catalog.refresh(force=not rest)
            found = self.catalog.group_dir(rest)
            if found is not None:
                subdirs, times = found
                return Resolved("dir", sorted(subdirs | set(times) | ({"latest"} if times else set())))
            if rest:
                parent = self.catalog.group_dir(rest[:-1])
                if parent is not None:
                    times = parent[1]
                    name = rest[-1]
                    if name == "latest" and times:
                        return Resolved("link", target=list(times)[-1])
                    if name in times:
                        return Resolved("link", target="../" * len(rest) + f"by-id/{times[name].short}")
            raise OSError(errno.ENOENT, path)
        raise OSError(errno.ENOENT, path)

    # -- operations -----------------------------------------------------------------------

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        r = self.resolve(path)
        if r.kind == "dir":
            return _virtual_dir(self.started_ns)
        if r.kind == "link":
            return _link_attrs(r.target, self.started_ns)
        assert r.node is not None
        return entry_attrs(r.node.entry, 0)

    def readdir(self, path: str, fh: Any) -> list[str]:
        r = self.resolve(path, listing=True)
        if r.kind == "dir":
            assert r.names is not None
            return [".", "..", *r.names]
        if r.node is None or r.node.children is None:
            raise OSError(errno.ENOTDIR, path)
        return [".", "..", *r.node.children]

    def readlink(self, path: str) -> str:
        r = self.resolve(path)
        if r.kind == "link":
            return r.target
        if r.node is None or r.node.entry.type != SYMLINK:
            raise OSError(errno.EINVAL, path)
        return r.node.entry.link

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise OSError(errno.EROFS, path)
        r = self.resolve(path)
        if r.node is None or r.node.entry.type != FILE:
            raise OSError(errno.EISDIR if r.kind == "dir" else errno.EINVAL, path)
        content = r.node.content or Content([], 0)
        walking = self._last_opened is not None and self._last_opened.next_file is r.node
        self._last_opened = r.node
        if walking:  # a tree reader (cp -r, tar, rsync): fetch the next files' first chunks
            ahead, nxt = [], r.node.next_file
            while nxt is not None and len(ahead) < FILES_AHEAD:
                if nxt.content is not None and nxt.content.chunks:
                    ahead.append(nxt.content)
                nxt = nxt.next_file
            prefetch(self.cache, ahead)
        with self._lock:
            fh = next(self._next)
            self._handles[fh] = Content(content.chunks, content.size, content.prefix, content.sparse,
                                        content.starts())
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        content = self._handles.get(fh)
        if content is None:
            raise OSError(errno.EBADF, path)
        try:
            return read(self.cache, content, offset, size)
        except DedupeError:
            raise OSError(errno.EIO, path) from None

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self._handles.pop(fh, None)
        return 0

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        r = self.resolve(path)
        value = r.node.entry.xattrs.get(name) if r.node is not None else None
        if value is None:
            raise OSError(ENOATTR, path)
        return value

    def listxattr(self, path: str) -> list[str]:
        r = self.resolve(path)
        return sorted(r.node.entry.xattrs) if r.node is not None else []

    def statfs(self, path: str) -> dict[str, Any]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 0, "f_bfree": 0, "f_bavail": 0, "f_files": 0,
                "f_ffree": 0, "f_favail": 0, "f_namemax": 255}

    def init(self, path: str) -> None:
        if self.on_ready is not None:
            self.on_ready()
        if self.daemon:  # the mount is up: the parent has gone, and so has its pipe
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)

    def destroy(self, path: str) -> None:
        self.cache.close()


def mount(repo: Repository, mountpoint: Path, *, foreground: bool = True, debug: bool = False,
          on_ready: Callable[[], None] | None = None) -> None:
    """Mount until unmounted. ``foreground=False``: this process returns once the mount
    is up and a child serves it (the lock, threads and FUSE loop live in the child)."""
    mfusepy = _fuse()
    check_mount_point(mountpoint)
    if not foreground:
        _daemonize(mountpoint)
    lock = acquire(repo.storage, exclusive=False, purpose="mount", wait_s=60)
    try:
        repo.refresh_index()
        ops = DedupeFS(repo, daemon=not foreground, on_ready=on_ready)
        _serve(mfusepy, ops, mountpoint, debug)
    finally:
        lock.release()


def _serve(mfusepy: Any, ops: DedupeFS, mountpoint: Path, debug: bool) -> None:
    import logging
    import warnings
    logging.getLogger("mfusepy").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            mfusepy.FUSE(ops, str(mountpoint), foreground=True, ro=True, fsname="dedupe", subtype="dedupe",
                         debug=debug, default_permissions=False)
        except RuntimeError as e:
            raise FuseUnavailable(f"mounting {mountpoint} failed (libfuse error {e}); see the message above") \
                from None


def _daemonize(mountpoint: Path) -> None:
    """Fork: the parent waits until the child's mount is up (or the child died) and
    exits; the child goes on in a new session with its output to /dev/null."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.ismount(mountpoint):
                os._exit(0)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                message = os.read(read_end, 4096).decode(errors="replace").strip()
                print(f"dedupe: {message or 'mount failed'}", file=sys.stderr)
                os._exit(os.waitstatus_to_exitcode(status) or 1)
            time.sleep(0.05)
        print(f"dedupe: {mountpoint} did not appear within 60 s", file=sys.stderr)
        os._exit(1)
    os.close(read_end)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(write_end, 2)  # errors until the mount is up reach the parent through the pipe
