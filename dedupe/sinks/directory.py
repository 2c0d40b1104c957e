"""Restore entries into a directory, never writing outside it.

Safety rules (each violation raises ``UnsafePathError`` naming the member; what was
restored before it stays, nothing outside the target is ever touched):

1. Member names and hard-link targets must be relative, without ``..`` components
   and without NUL. Empty and ``.`` components are ignored (``./a//b`` is ``a/b``);
   the path ``""`` (or ``.``) is the target directory itself, whose metadata it sets.
2. No symlink is ever followed. Every parent directory is opened one component at a
   time from the target with ``O_DIRECTORY | O_NOFOLLOW`` and every entry is created
   relative to its parent's descriptor (``O_CREAT | O_EXCL | O_NOFOLLOW``, ``mkdirat``,
   ``symlinkat``, ``linkat`` without ``AT_SYMLINK_FOLLOW``, ``mknodat``), so a member
   whose parent path crosses a symlink, whether created by this restore or already in
   the target, is refused, and nothing is written through a symlink.
3. Symlinks are created with their target verbatim: absolute, relative (also one that
   climbs above the target, ``a/l -> ../../x``) and dangling. A symlink's target is data,
   as in tar: in a restored root file system ``/etc/...`` means the restored tree's
   ``etc``, and by rules 2 and 4 the restore never follows one, whatever it points to.
   (One rule for every target: ``TarNames`` holds a tar written by ``restore --to-file``
   or ``--stdout`` to rules 1, 2, 4 and 6 too.)
4. A member may not take the place of a symlink created earlier by this restore,
   unless it is itself a symlink (so ``l -> /etc/passwd`` followed by a file ``l`` is
   refused, not written). A symlink that was in the target before the restore is
   replaced (unlinked, never written through).
5. A member may not replace an existing directory unless it is a directory (its
   metadata is then updated). Other existing non-directories are unlinked first, never
   opened for writing, so a pre-existing hard link to a file elsewhere is not changed.
6. A hard link's target must exist inside the target (normally restored earlier); it
   may not be a directory, and its parents may not cross a symlink. A hard link to a
   symlink links the symlink itself. A missing link target is a warning (this happens
   when ``paths`` leaves the first name out).

Metadata: contents first, then owner (``chown`` clears setuid/setgid and file
capabilities), then xattrs (ACLs as ``system.posix_acl_*``, ``security.capability``),
then the mode, then times. Directories are created ``0700`` and get their mode, times
and default ACL (which would otherwise be inherited by the restored children) in a
final pass, deepest first. Without the privilege for something (owners other than
one's own, device nodes, ``trusted.*`` / ``security.*`` xattrs) the restore goes on
and reports one summary warning per kind at the end.

Memory: contents are streamed; the restore keeps the paths and final metadata of the
directories (for the final pass) and the paths of the symlinks it created (rule 4).
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

from dedupe.acl import DEFAULT_XATTR
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, ENTRY_TYPES, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.errors import DedupeError

Warn = Callable[[str], None]
DataSource = Callable[[], Iterator[bytes]] | None

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN_DIRS: Final = 64
CAPABILITY_XATTR: Final = "security.capability"  # file capabilities: what --no-special leaves out


ID_NONE = (1 << 32) - 1  # uid_t -1: chown's "leave it"; valid ids are below


class UnsafePathError(DedupeError):
    """A member would write outside the target or through a symlink."""

    exit_code = 51


class RestoreError(DedupeError):
    """Restoring a member into the target directory failed."""

    exit_code = 53


@dataclass
class RestoreResult:
    restored: int = 0  # entries created or updated
    skipped: int = 0  # entries left out (not selected by ``paths``, or not restorable here)
    bytes_written: int = 0  # content bytes written (holes not counted)
    warnings: list[str] = field(default_factory=list)


def restore_tree(target: Path, entries: Iterable[tuple[Entry, DataSource]], *, paths: list[str] | None = None,
                 on_warning: Warn | None = None, numeric_owner: bool = True, no_special: bool = False) -> RestoreResult:
    """Restore ``entries`` (with their content sources) under ``target`` (see the module doc).

    ``paths`` restores only those paths and what is below them (their parents are
    created as plain directories). With ``numeric_owner=False`` owners are looked up
    by ``uname``/``gname`` on this host, falling back to the numeric ids. ``no_special``
    (for backups one does not trust): no device nodes (skipped), no setuid or setgid
    bit, no ``security.capability``.
    """
    restorer = _Restorer(target, paths, on_warning, numeric_owner, no_special)
    try:
        for entry, data in entries:
            restorer.restore(entry, data)
        restorer.finish()
    finally:
        restorer.close()
    return restorer.result


def split_member(name: str, what: str = "member") -> list[str]:
    """The components of a relative member name; ``UnsafePathError`` for hostile ones."""
    if "\0" in name:
        raise UnsafePathError(f"{what} {name!r}: name contains NUL")
    if name.startswith("/"):
        raise UnsafePathError(f"{what} {name!r}: absolute name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{what} {name!r}: name contains a '..' component")
    return parts


class TarNames:
    """The rules above for a tar that ``restore --to-file``/``--stdout`` writes of a
    directory backup, so that extracting it cannot do what ``--to-dir`` refuses: names
    (rule 1), no member under a symlink of the archive (2), no member but a symlink in a
    symlink's place (4), hard links to a relative name not under a symlink (6). Lexical:
    the archive is the whole world here. ``check`` raises ``UnsafePathError``."""

    def __init__(self) -> None:
        self.symlinks: set[str] = set()

    def _under_symlink(self, parts: list[str]) -> str | None:
        for n in range(1, len(parts)):
            if "/".join(parts[:n]) in self.symlinks:
                return "/".join(parts[:n])
        return None

    def check(self, entry: Entry) -> None:
        parts = split_member(entry.path)
        path = "/".join(parts)
        link = self._under_symlink(parts)
        if link is not None:
            raise UnsafePathError(f"member {entry.path!r}: parent {link!r} is a symlink; refusing to write through it")
        if path in self.symlinks and entry.type != SYMLINK:
            raise UnsafePathError(f"member {entry.path!r}: would replace the symlink {path!r} created earlier")
        if entry.type == SYMLINK:
            if "\0" in entry.link:
                raise UnsafePathError(f"member {entry.path!r}: symlink target contains NUL")
            self.symlinks.add(path)
        elif entry.type == HARDLINK:
            target = split_member(entry.link, f"hard link {entry.path!r} ->")
            if not target or self._under_symlink(target) is not None:
                raise UnsafePathError(f"member {entry.path!r}: hard link to {entry.link!r} leaves the archive's tree")


class _Restorer:
    def __init__(self, target: Path, paths: list[str] | None, on_warning: Warn | None, numeric_owner: bool,
                 no_special: bool = False) -> None:
        self.result = RestoreResult()
        self.no_special = no_special
        self.on_warning = on_warning
        self.numeric_owner = numeric_owner
        self.selected = None if paths is None else {tuple(split_member(p, "path")) for p in paths}
        self.symlinks: set[str] = set()
        self.deferred: list[tuple[str, int, int, int, bytes | None]] = []  # dirs: path, mode, atime, mtime, default ACL
        self.summaries: dict[str, tuple[int, str, str]] = {}  # kind -> (count, first path, reason)
        try:
            os.makedirs(target, exist_ok=True)
            self.target_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise RestoreError(f"restore target {os.fspath(target)}: {e.strerror}") from None
        self.dirs = _DirStack(self.target_fd)

    # -- per entry ---------------------------------------------------------------------

    def restore(self, entry: Entry, data: DataSource) -> None:
        parts = split_member(entry.path)
        if self.no_special:
            if entry.type in (CHARDEV, BLOCKDEV):
                self.result.skipped += 1
                return
            if entry.mode & 0o6000 or CAPABILITY_XATTR in entry.xattrs:
                entry = entry.replace(mode=entry.mode & ~0o6000,
                                      xattrs={k: v for k, v in entry.xattrs.items() if k != CAPABILITY_XATTR})
        if entry.type not in ENTRY_TYPES:
            raise RestoreError(f"restore {entry.path!r}: unknown entry type {entry.type!r}")
        if self.selected is not None and not any(tuple(parts[:n]) in self.selected for n in range(1, len(parts) + 1)):
            self.result.skipped += 1
            return
        try:
            if not parts:
                self._restore_root(entry)
            else:
                self._restore_member(entry, parts, data)
        except (UnsafePathError, RestoreError):
            raise
        except OSError as e:
            raise RestoreError(f"restore {entry.path!r}: {e.strerror or e}") from None

    def _restore_root(self, entry: Entry) -> None:
        if entry.type != DIR:
            raise UnsafePathError(f"member {entry.path!r}: the target itself can only be a directory")
        self._dir_meta(self.target_fd, entry, "")
        self.result.restored += 1

    def _restore_member(self, entry: Entry, parts: list[str], data: DataSource) -> None:
        path = "/".join(parts)
        if entry.type == SYMLINK:
            self._check_symlink_target(entry)
        parent = self.dirs.open(parts[:-1], entry.path)
        name = parts[-1]
        if entry.type == HARDLINK:
            source = self._open_link_source(entry)
            if source is None:
                return
            src_dir, src_name = source
            try:
                self._clear(parent, name, path, entry)
                os.link(src_name, name, src_dir_fd=src_dir, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(src_dir)
            self.result.restored += 1
            return
        if entry.type == FILE:
            segments = _segments(entry)  # a bad entry fails before anything is created
            self._write_file(self._create(parent, name, path, entry), entry, segments, data)
            self.result.restored += 1
            return
        exists_as_dir = self._clear(parent, name, path, entry)
        if entry.type == DIR:
            if not exists_as_dir:
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            try:
                self._dir_meta(fd, entry, path)
            finally:
                os.close(fd)
        elif entry.type == SYMLINK:
            os.symlink(entry.link, name, dir_fd=parent)
            self.symlinks.add(path)
            self._chown(entry, path, lambda uid, gid: os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False))
            self._set_xattrs(f"/proc/self/fd/{parent}/{name}", entry, path, follow=False)
            os.utime(name, ns=self._times(entry), dir_fd=parent, follow_symlinks=False)
        elif not self._make_node(parent, name, entry, path):  # CHARDEV, BLOCKDEV, FIFO
            return
        self.result.restored += 1

    def _create(self, parent: int, name: str, path: str, entry: Entry) -> int:
        """A new file ``name``, open for writing. Created first, cleared only when something
        is in the way (O_EXCL fails on anything there, a symlink too, never following it):
        a restore into an empty target then costs no lookup per file."""
        try:
            return os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            self._clear(parent, name, path, entry)
            return os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)

    def _clear(self, parent: int, name: str, path: str, entry: Entry) -> bool:
        """Make room for the entry; True when a directory is already there (and wanted)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if entry.type == DIR:
                return True
            raise UnsafePathError(f"member {entry.path!r}: would replace the directory {path!r}")
        if stat.S_ISLNK(st.st_mode) and path in self.symlinks and entry.type != SYMLINK:
            raise UnsafePathError(f"member {entry.path!r}: would replace the symlink {path!r} "
                                  "created earlier by this restore")
        os.unlink(name, dir_fd=parent)
        self.symlinks.discard(path)
        return False

    def _check_symlink_target(self, entry: Entry) -> None:
        """Rule 3: any target but an empty one or one with NUL (kept verbatim, never followed)."""
        link = entry.link
        if "\0" in link:
            raise UnsafePathError(f"member {entry.path!r}: symlink target contains NUL")
        if not link:
            raise RestoreError(f"restore {entry.path!r}: empty symlink target")

    def _open_link_source(self, entry: Entry) -> tuple[int, str] | None:
        parts = split_member(entry.link, f"hard link {entry.path!r} ->")
        if not parts:
            raise UnsafePathError(f"member {entry.path!r}: hard link to the target directory itself")
        try:
            fd = _walk(self.target_fd, parts[:-1], entry.path, create=False)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.close(fd)
                fd = -1
            else:
                if stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    raise UnsafePathError(f"member {entry.path!r}: hard link to the directory {entry.link!r}")
        if fd < 0:
            self._warn(f"{entry.path}: hard link target {entry.link!r} was not restored; skipped")
            self.result.skipped += 1
            return None
        return fd, parts[-1]

    def _write_file(self, fd: int, entry: Entry, segments: list[tuple[int, int]], data: DataSource) -> None:
        """Write the file open at ``fd`` (closed here) and set its metadata."""
        try:
            blocks = _Blocks(data() if data is not None else iter(()))
            for offset, length in segments:
                done = 0
                while done < length:
                    block = blocks.take(length - done)
                    if not block:
                        raise RestoreError(f"restore {entry.path!r}: content ends {length - done} bytes early")
                    _pwrite_all(fd, block, offset + done)
                    done += len(block)
                self.result.bytes_written += length
            if blocks.take(1):
                raise RestoreError(f"restore {entry.path!r}: content is longer than the entry says")
            if entry.sparse is not None:
                os.ftruncate(fd, entry.size)
            self._chown(entry, entry.path, lambda uid, gid: os.fchown(fd, uid, gid))
            self._set_xattrs(fd, entry, entry.path, follow=True)
            os.fchmod(fd, entry.mode & 0o7777)
            os.utime(fd, ns=self._times(entry))
        finally:
            os.close(fd)

    def _make_node(self, parent: int, name: str, entry: Entry, path: str) -> bool:
        if entry.type == FIFO:
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:
            if entry.rdev is None:
                raise RestoreError(f"restore {entry.path!r}: device without major/minor numbers")
            kind = stat.S_IFCHR if entry.type == CHARDEV else stat.S_IFBLK
            try:
                os.mknod(name, kind | 0o600, os.makedev(*entry.rdev), dir_fd=parent)
            except PermissionError as e:
                self._summary("device nodes not created", path, e)
                self.result.skipped += 1
                return False
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            proc = f"/proc/self/fd/{fd}"  # the node itself, reached through our descriptor
            self._chown(entry, path, lambda uid, gid: os.chown(proc, uid, gid))
            self._set_xattrs(proc, entry, path, follow=True)
            os.chmod(proc, entry.mode & 0o7777)
            os.utime(proc, ns=self._times(entry))
        finally:
            os.close(fd)
        return True

    def _dir_meta(self, fd: int, entry: Entry, path: str) -> None:
        self._chown(entry, path or ".", lambda uid, gid: os.fchown(fd, uid, gid))
        self._set_xattrs(fd, entry, path or ".", follow=True, skip=DEFAULT_XATTR)
        self.deferred.append((path, entry.mode & 0o7777, *self._times(entry), entry.xattrs.get(DEFAULT_XATTR)))

    # -- metadata helpers ----------------------------------------------------------------

    def _chown(self, entry: Entry, path: str, chown: Callable[[int, int], None]) -> None:
        uid, gid = entry.uid, entry.gid
        if not self.numeric_owner:
            uid = _uid_of(entry.uname, uid)
            gid = _gid_of(entry.gname, gid)
        if not (0 <= uid < ID_NONE and 0 <= gid < ID_NONE):  # a hostile tar's or a crafted item's
            self._warn(f"{path}: owner {uid}:{gid} is not a valid uid:gid, left as restored")
            return
        try:
            chown(uid, gid)
        except PermissionError as e:
            self._summary("owners not set", path, e)

    def _set_xattrs(self, where: int | str, entry: Entry, path: str, *, follow: bool, skip: str = "") -> None:
        for key, value in entry.xattrs.items():
            if key == skip:
                continue
            try:
                os.setxattr(where, key, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self._summary(f"{key.split('.', 1)[0]}.* extended attributes not set", path, e)

    @staticmethod
    def _times(entry: Entry) -> tuple[int, int]:
        return (entry.atime_ns if entry.atime_ns is not None else time.time_ns()), entry.mtime_ns

    def _summary(self, kind: str, path: str, error: OSError) -> None:
        count, first, reason = self.summaries.get(kind, (0, path, error.strerror or str(error)))
        self.summaries[kind] = (count + 1, first, reason)

    def _warn(self, message: str) -> None:
        self.result.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)

    # -- end -----------------------------------------------------------------------------

    def finish(self) -> None:
        """Directory modes, times and default ACLs, deepest first; then the summaries."""
        self.deferred.sort(key=lambda item: item[0].count("/") + (1 if item[0] else 0), reverse=True)
        for path, mode, atime, mtime, default_acl in self.deferred:
            parts = path.split("/") if path else []
            try:
                if parts:
                    parent = self.dirs.open(parts[:-1], path)
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
                else:
                    fd = os.dup(self.target_fd)
                try:
                    if default_acl is not None:
                        try:
                            os.setxattr(fd, DEFAULT_XATTR, default_acl)
                        except OSError as e:
                            if e.errno not in (errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL):
                                raise
                            self._summary("system.* extended attributes not set", path or ".", e)
                    os.fchmod(fd, mode)
                    os.utime(fd, ns=(atime, mtime))
                finally:
                    os.close(fd)
            except OSError as e:
                raise RestoreError(f"restore {path or '.'!r}: {e.strerror or e}") from None
        self.deferred.clear()
        for kind, (count, first, reason) in self.summaries.items():
            self._warn(f"{kind} on {count} entr{'y' if count == 1 else 'ies'} (first: {first or '.'}): {reason}")
        self.summaries.clear()

    def close(self) -> None:
        self.dirs.close()
        os.close(self.target_fd)


class _DirStack:
    """Descriptors of the most recently used chain of parent directories.

    Entries mostly arrive depth first, so consecutive members share most of their
    parents. At most ``_MAX_OPEN_DIRS`` descriptors stay open; closed levels are
    re-opened from the nearest open ancestor (always with ``O_NOFOLLOW``).
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.names: list[str] = []
        self.fds: list[int] = []

    def open(self, parts: list[str], member: str) -> int:
        """The descriptor of directory ``parts`` (created when missing); valid until the next call."""
        common = 0
        while common < min(len(parts), len(self.names)) and self.names[common] == parts[common]:
            common += 1
        self._truncate(common)
        for i in range(common, len(parts)):
            fd = _walk(self._fd(i - 1), [parts[i]], member, create=True, prefix=parts[:i])
            self.names.append(parts[i])
            self.fds.append(fd)
        self._limit()
        return self._fd(len(parts) - 1)

    def _fd(self, level: int) -> int:
        if level < 0:
            return self.root_fd
        if self.fds[level] < 0:
            base = level
            while base >= 0 and self.fds[base] < 0:
                base -= 1
            for i in range(base + 1, level + 1):
                self.fds[i] = _walk(self._fd(i - 1), [self.names[i]], "/".join(self.names[: level + 1]), create=False)
        return self.fds[level]

    def _truncate(self, keep: int) -> None:
        for fd in self.fds[keep:]:
            if fd >= 0:
                os.close(fd)
        del self.names[keep:], self.fds[keep:]

    def _limit(self) -> None:
        open_levels = [i for i, fd in enumerate(self.fds) if fd >= 0]
        for i in open_levels[:-_MAX_OPEN_DIRS]:
            os.close(self.fds[i])
            self.fds[i] = -1

    def close(self) -> None:
        self._truncate(0)


def _walk(start: int, parts: list[str], member: str, *, create: bool, prefix: list[str] | None = None) -> int:
    """A new descriptor of directory ``parts`` below ``start``, never following a symlink."""
    fd = os.dup(start)
    done = list(prefix or [])
    try:
        for part in parts:
            done.append(part)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise RestoreError(f"restore {member!r}: cannot open {'/'.join(done)!r}: {e.strerror}") from None
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafePathError(f"member {member!r}: parent {'/'.join(done)!r} is a symlink; "
                                          "refusing to write through it") from None
                raise RestoreError(f"restore {member!r}: parent {'/'.join(done)!r} is not a directory") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _segments(entry: Entry) -> list[tuple[int, int]]:
    if entry.sparse is None:
        return [(0, entry.size)]
    end = 0
    for offset, length in entry.sparse:
        if offset < end or length < 0 or offset + length > entry.size:
            raise RestoreError(f"restore {entry.path!r}: malformed sparse map")
        end = offset + length
    return entry.sparse


class _Blocks:
    """Takes byte runs of a wanted length from an iterator of blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.current = memoryview(b"")

    def take(self, limit: int) -> memoryview:
        while not self.current:
            block = next(self.blocks, None)
            if block is None:
                return memoryview(b"")
            self.current = memoryview(block)
        out, self.current = self.current[:limit], self.current[limit:]
        return out


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


@lru_cache(maxsize=4096)
def _uid_of(name: str, fallback: int) -> int:
    try:
        return pwd.getpwnam(name).pw_uid if name else fallback
    except KeyError:
        return fallback


@lru_cache(maxsize=4096)
def _gid_of(name: str, fallback: int) -> int:
    try:
        return grp.getgrnam(name).gr_gid if name else fallback
    except KeyError:
        return fallback
