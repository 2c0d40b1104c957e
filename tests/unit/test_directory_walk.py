"""dedupe.sources.directory.walk_tree, plus the full test tree the restore and PAX tests share.

``build_full_tree`` and ``snapshot`` are imported by test_directory_restore.py and
test_pax_writer.py (by file path: tests/ has no packages).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dedupe import acl
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.sources import directory
from dedupe.sources.directory import DirectorySourceError, WalkedEntry, walk_tree
from dedupe_testing import require_root, require_tools, unmet

ROOT = os.geteuid() == 0
needs_root = pytest.mark.needs_root("devices, owners, trusted.* xattrs")
needs_acl_tools = pytest.mark.needs_tools("setfacl", "getfacl")

NON_UTF8 = os.fsdecode(b"\xff-not-utf8")
LONG = "L" * 255
DEEP_PARTS = [f"d{i:02d}" + "x" * 250 for i in range(18)]  # > 4096 bytes in total
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # v2, effective, cap_net_raw


# -- the shared tree ----------------------------------------------------------------------

def build_full_tree(root: Path) -> None:
    """Every kind of entry the walk and the restore must carry (run as root)."""
    root.mkdir()
    (root / "file").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "big").write_bytes(random.Random(1).randbytes(3 << 20 | 12345))
    _sparse(root / "sparse", 9 << 20, [(1 << 20, b"data" * 1000), ((9 << 20) - 5, b"tail!")])
    _sparse(root / "sparse_tail_hole", 8 << 20, [(0, b"head" * 1024)])
    _sparse(root / "all_hole", 5 << 20, [])
    (root / "links").mkdir()
    (root / "hl_a").write_bytes(b"linked content\n")
    os.link(root / "hl_a", root / "links" / "hl_b")
    os.link(root / "hl_a", root / "links" / "hl_c")
    os.symlink("file", root / "rel")
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("no/such/target", root / "dangling")
    os.symlink("../file", root / "links" / "up")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop9", stat.S_IFBLK | 0o640, os.makedev(7, 9))
    os.mkfifo(root / "fifo", 0o620)
    for name, mode in (("null", 0o666), ("loop9", 0o640), ("fifo", 0o620)):
        os.chmod(root / name, mode)  # whatever the umask
    os.setxattr(root / "file", "user.comment", b"a comment")
    os.setxattr(root / "file", "trusted.secret", b"\x00\xffbinary\x00")
    os.setxattr(root / "links", "user.dir", b"on a directory")
    os.setxattr(root / "rel", "trusted.onlink", b"on a symlink", follow_symlinks=False)
    (root / "capfile").write_bytes(b"#!/bin/sh\n")
    os.chown(root / "capfile", 1000, 2000)
    os.setxattr(root / "capfile", "security.capability", CAPABILITY)
    (root / "acl_file").write_bytes(b"acl\n")
    subprocess.run(["setfacl", "-m", "u:1000:r,g:2000:rw,u:123456:x", str(root / "acl_file")], check=True)
    (root / "acl_dir").mkdir()
    subprocess.run(["setfacl", "-m", "u:1000:rwx", str(root / "acl_dir")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:1000:rwx,g:2000:r-x", str(root / "acl_dir")], check=True)
    (root / "acl_dir" / "inherited").write_bytes(b"inherits the default ACL\n")
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    (root / "sgid_dir").mkdir()
    (root / "sticky").mkdir()
    (root / "empty_dir").mkdir()
    (root / "owned").write_bytes(b"owned by 1000:2000\n")
    os.chown(root / "owned", 1000, 2000)
    (root / "big_ids").mkdir()
    (root / "big_ids" / "f").write_bytes(b"x")
    os.chown(root / "big_ids", 123456, 123456)
    os.chown(root / "big_ids" / "f", 123456, 7654321)
    os.chown(root / "suid", 1000, 2000)
    os.chmod(root / "suid", 0o4755)
    os.chown(root / "sgid_dir", 0, 2000)
    os.chmod(root / "sgid_dir", 0o2775)
    os.chmod(root / "sticky", 0o1777)
    (root / "日本語-ü.txt").write_bytes("unicode\n".encode())
    (root / NON_UTF8).write_bytes(b"not utf-8\n")
    (root / LONG).write_bytes(b"long name\n")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in DEEP_PARTS:  # dir_fd-relative: the full path is longer than PATH_MAX
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    leaf = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
    os.write(leaf, b"deep down\n")
    os.close(leaf)
    os.close(fd)
    _set_times(root)


def _sparse(path: Path, size: int, data: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        for offset, chunk in data:
            f.seek(offset)
            f.write(chunk)
        f.truncate(size)


def _set_times(root: Path) -> None:
    """Distinct nanosecond mtimes everywhere, children before their directory."""
    counter = iter(range(10**6))

    def visit(dir_fd: int) -> None:
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                visit(child)
                os.close(child)
            n = next(counter)
            os.utime(name, ns=(1_500_000_000_000_000_001 + n * 7919, 1_600_000_000_123_456_789 + n * 1_000_003),
                     dir_fd=dir_fd, follow_symlinks=False)

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    visit(fd)
    os.close(fd)
    os.utime(root, ns=(1_400_000_000_000_000_000, 1_700_000_000_987_654_321))


def snapshot(root: Path, *, content: bool = True) -> dict[str, dict[str, Any]]:
    """Every field a restore must reproduce, per path ("." is the root), read with *at calls."""
    out: dict[str, dict[str, Any]] = {}
    first_names: dict[tuple[int, int], str] = {}

    def record(dir_fd: int, name: str, path: str) -> os.stat_result:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        rec: dict[str, Any] = {"fmt": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                               "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
        where = f"/proc/self/fd/{dir_fd}/{name}" if name != "." else dir_fd
        follow = isinstance(where, int)
        rec["xattrs"] = {k: os.getxattr(where, k, follow_symlinks=follow)
                         for k in sorted(os.listxattr(where, follow_symlinks=follow))}
        if stat.S_ISREG(st.st_mode):
            rec["size"] = st.st_size
            rec["nlink"] = st.st_nlink
            if content:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOATIME, dir_fd=dir_fd)
                digest = hashlib.sha256()
                while block := os.read(fd, 1 << 20):
                    digest.update(block)
                os.close(fd)
                rec["sha256"] = digest.hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            rec["link"] = os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            rec["same_inode_as"] = first_names.setdefault((st.st_dev, st.st_ino), path)
        out[path] = rec
        return st

    def visit(dir_fd: int, rel: str) -> None:
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            path = f"{rel}/{name}" if rel else name
            st = record(dir_fd, name, path)
            if stat.S_ISDIR(st.st_mode):
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                visit(child, path)
                os.close(child)

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        record(fd, ".", ".")
        visit(fd, "")
    finally:
        os.close(fd)
    return out


def deep_path() -> str:
    return "/".join(DEEP_PARTS + ["leaf"])


def walk_all(root: Path, warnings: list[str] | None = None) -> list[tuple[WalkedEntry, bytes]]:
    """Walk and read every entry's data in stream order."""
    warn = warnings.append if warnings is not None else None
    return [(w, b"".join(w.iter_data(1 << 16))) for w in walk_tree(root, on_warning=warn)]


# -- tests ------------------------------------------------------------------------------

@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A temporary directory that other users can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dedupe-test-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root("devices, owners, trusted.* xattrs")
    require_tools("setfacl")
    root = tmp_path_factory.mktemp("walk") / "tree"
    build_full_tree(root)
    return root


def _by_path(walked: list[tuple[WalkedEntry, bytes]]) -> dict[str, tuple[Entry, bytes]]:
    return {w.entry.path: (w.entry, data) for w, data in walked}


def test_every_kind_of_entry(full_tree: Path) -> None:
    warnings: list[str] = []
    entries = _by_path(walk_all(full_tree, warnings))
    assert warnings == []
    root, _ = entries[""]
    assert root.type == DIR and root.mtime_ns == 1_700_000_000_987_654_321
    f, data = entries["file"]
    assert (f.type, f.size, data, f.mode, f.sparse) == (FILE, 6, b"hello\n", 0o644, None)
    assert f.xattrs == {"user.comment": b"a comment", "trusted.secret": b"\x00\xffbinary\x00"}
    assert f.uname == "root" and f.gname == "root"
    assert entries["empty"][0].size == 0 and entries["empty"][1] == b""
    assert len(entries["big"][1]) == entries["big"][0].size == 3 << 20 | 12345
    assert entries["hl_a"][0].type == FILE
    for name in ("links/hl_b", "links/hl_c"):
        e, data = entries[name]
        assert (e.type, e.link, e.size, data) == (HARDLINK, "hl_a", 0, b"")
    assert {p: entries[p][0].link for p in ("rel", "abs", "dangling", "links/up")} == {
        "rel": "file", "abs": "/etc/passwd", "dangling": "no/such/target", "links/up": "../file"}
    assert entries["rel"][0].type == SYMLINK and entries["rel"][0].xattrs == {"trusted.onlink": b"on a symlink"}
    assert (entries["null"][0].type, entries["null"][0].rdev) == (CHARDEV, (1, 3))
    assert (entries["loop9"][0].type, entries["loop9"][0].rdev, entries["loop9"][0].mode) == (BLOCKDEV, (7, 9), 0o640)
    assert entries["fifo"][0].type == FIFO
    assert entries["capfile"][0].xattrs == {"security.capability": CAPABILITY}
    assert entries["links"][0].xattrs == {"user.dir": b"on a directory"}
    acl_file = entries["acl_file"][0].xattrs[acl.ACCESS_XATTR]
    assert acl.xattr_to_text(acl_file) == ("user::rw-,user:1000:r--,user:123456:--x,group::r--,group:2000:rw-,"
                                           "mask::rwx,other::r--")
    assert acl.DEFAULT_XATTR in entries["acl_dir"][0].xattrs
    assert acl.ACCESS_XATTR in entries["acl_dir/inherited"][0].xattrs
    assert entries["suid"][0].mode == 0o4755 and (entries["suid"][0].uid, entries["suid"][0].gid) == (1000, 2000)
    assert entries["sgid_dir"][0].mode == 0o2775 and entries["sticky"][0].mode == 0o1777
    bf = entries["big_ids/f"][0]
    assert (bf.uid, bf.gid, bf.uname, bf.gname) == (123456, 7654321, "", "")
    assert entries["日本語-ü.txt"][1] == "unicode\n".encode()
    assert entries[NON_UTF8][1] == b"not utf-8\n"
    assert entries[LONG][0].size == 10
    assert entries[deep_path()][1] == b"deep down\n" and len(os.fsencode(deep_path())) > 4096


def test_sparse_files_yield_only_their_data_segments(full_tree: Path) -> None:
    entries = _by_path(walk_all(full_tree))
    e, data = entries["sparse"]
    assert e.size == 9 << 20
    assert e.sparse is not None and len(e.sparse) == 2
    assert sum(length for _, length in e.sparse) == len(data) < 64 << 10
    with open(full_tree / "sparse", "rb") as f:
        whole = f.read()
    assert b"".join(whole[o:o + n] for o, n in e.sparse) == data
    assert all(whole[i] == 0 for i in range(0, len(whole), 4096) if not any(o <= i < o + n for o, n in e.sparse))
    tail, tail_data = entries["sparse_tail_hole"]
    assert tail.sparse == [(0, 4096)] and tail_data == b"head" * 1024 and tail.size == 8 << 20
    hole, hole_data = entries["all_hole"]
    assert (hole.sparse, hole_data, hole.size) == ([], b"", 5 << 20)
    assert entries["big"][0].sparse is None


def test_order_is_sorted_depth_first_and_deterministic(full_tree: Path) -> None:
    first = [w.entry for w, _ in walk_all(full_tree)]
    second = [w.entry for w, _ in walk_all(full_tree)]
    paths = [e.path for e in first]
    assert paths[0] == ""
    assert paths == sorted(paths, key=lambda p: [os.fsencode(c) for c in p.split("/")] if p else [])
    assert len(paths) == len(set(paths))

    def stable(e: Entry) -> dict[str, Any]:
        item = e.to_item()
        item.pop("at", None)  # listing a directory may move its atime
        return item

    assert [stable(e) for e in first] == [stable(e) for e in second]


@pytest.mark.parametrize("names", [
    [b"b", b"a", b"Z", b"~", b"_", b"0"],  # all ASCII: sorted as text
    [b"b", b"\xc3\xa9", b"\xff", b"\xe2\x9c\x93", b"a", b"\xc3"],  # UTF-8, not UTF-8, ASCII mixed
])
def test_siblings_are_in_the_order_of_their_name_bytes(tmp_path: Path, names: list[bytes]) -> None:
    root = tmp_path / "t"
    root.mkdir()
    for n in names:
        with open(os.path.join(os.fsencode(root), n), "wb"):
            pass
    got = [os.fsencode(w.entry.path) for w in walk_tree(root, lazy_files=True)][1:]
    assert got == sorted(names)


def test_files_cache_fields(full_tree: Path) -> None:
    for w, _ in walk_all(full_tree):
        if w.entry.path == "big":
            st = os.stat(full_tree / "big")
            assert (w.dev, w.ino, w.ctime_ns, w.entry.mtime_ns) == (st.st_dev, st.st_ino, st.st_ctime_ns,
                                                                    st.st_mtime_ns)


def test_reading_after_the_walk_moved_on_reopens_the_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"aaa")
    (tmp_path / "b").write_bytes(b"bbb")
    warnings: list[str] = []
    walked = list(walk_tree(tmp_path, on_warning=warnings.append))  # nothing read yet
    by_path = {w.entry.path: w for w in walked}
    assert b"".join(by_path["a"].iter_data()) == b"aaa"
    (tmp_path / "b").rename(tmp_path / "b.old")  # kept, so the new "b" cannot reuse its inode
    (tmp_path / "b").write_bytes(b"another inode")
    assert b"".join(by_path["b"].iter_data()) == b""
    assert by_path["b"].vanished and by_path["b"].entry.size == 0
    assert len(warnings) == 1 and str(tmp_path / "b") in warnings[0] and "vanished" in warnings[0]


def test_file_that_grows_while_read(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"x" * 100_000)
    warnings: list[str] = []
    for w in walk_tree(tmp_path, on_warning=warnings.append):
        if w.entry.path == "log":
            with open(tmp_path / "log", "ab") as f:
                f.write(b"more")
            data = b"".join(w.iter_data(4096))
            assert len(data) == w.entry.size == 100_000
    assert len(warnings) == 1 and "log: changed while being read" in warnings[0]


def test_file_that_shrinks_while_read(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"y" * 100_000)
    warnings: list[str] = []
    for w in walk_tree(tmp_path, on_warning=warnings.append):
        if w.entry.path == "f":
            os.truncate(tmp_path / "f", 30_000)
            data = b"".join(w.iter_data(4096))
            assert len(data) == w.entry.size == 30_000
    assert len(warnings) == 1 and "f: changed while being read" in warnings[0]


def test_sparse_file_that_shrinks_while_read(tmp_path: Path) -> None:
    _sparse(tmp_path / "s", 4 << 20, [(0, b"a" * 8192), (2 << 20, b"b" * 8192)])
    warnings: list[str] = []
    for w in walk_tree(tmp_path, on_warning=warnings.append):
        if w.entry.path == "s":
            assert w.entry.sparse is not None and len(w.entry.sparse) == 2
            os.truncate(tmp_path / "s", (2 << 20) + 100)
            data = b"".join(w.iter_data())
            assert w.entry.sparse == [(0, 8192), (2 << 20, 100)]
            assert w.entry.size == (2 << 20) + 100
            assert len(data) == 8292
    assert len(warnings) == 1


def test_file_vanishing_between_listing_and_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "victim", "z"):
        (tmp_path / name).write_bytes(name.encode())
    real = directory._lstat

    def vanish(name: str, dir_fd: int) -> os.stat_result:
        if name == "victim":
            os.unlink(name, dir_fd=dir_fd)
        return real(name, dir_fd)

    monkeypatch.setattr(directory, "_lstat", vanish)
    warnings: list[str] = []
    walked = walk_all(tmp_path, warnings)
    assert [w.entry.path for w, _ in walked] == ["", "a", "z"]
    assert len(warnings) == 1 and str(tmp_path / "victim") in warnings[0] and "vanished" in warnings[0]


def test_file_vanishing_between_stat_and_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "victim", "z"):
        (tmp_path / name).write_bytes(name.encode())
    real = directory._open_file

    def vanish(name: str, dir_fd: int) -> int:
        if name == "victim":
            os.unlink(name, dir_fd=dir_fd)
        return real(name, dir_fd)

    monkeypatch.setattr(directory, "_open_file", vanish)
    warnings: list[str] = []
    walked = walk_all(tmp_path, warnings)
    assert [(w.entry.path, data) for w, data in walked] == [("", b""), ("a", b"a"), ("z", b"z")]
    assert len(warnings) == 1 and "victim" in warnings[0]


def test_file_replaced_by_a_symlink_between_stat_and_open_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_bytes(b"ok")
    real = directory._open_file

    def swap(name: str, dir_fd: int) -> int:
        os.unlink(name, dir_fd=dir_fd)
        os.symlink(str(outside), name, dir_fd=dir_fd)
        return real(name, dir_fd)

    monkeypatch.setattr(directory, "_open_file", swap)
    warnings: list[str] = []
    walked = walk_all(tree, warnings)
    assert [w.entry.path for w, _ in walked] == [""]
    assert all(b"secret" not in data for _, data in walked)
    assert len(warnings) == 1


def test_socket_is_skipped_with_a_warning(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    (tmp_path / "z").write_bytes(b"")
    warnings: list[str] = []
    try:
        paths = [w.entry.path for w, _ in walk_all(tmp_path, warnings)]
    finally:
        sock.close()
    assert paths == ["", "z"]
    assert warnings == [f"{tmp_path / 'sock'}: socket skipped"]


def test_root_must_be_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(DirectorySourceError, match="does-not-exist") as info:
        list(walk_tree(tmp_path / "does-not-exist"))
    assert 50 <= info.value.exit_code <= 59
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DirectorySourceError, match="not a directory"):
        list(walk_tree(tmp_path / "file"))


def test_root_given_as_a_symlink_is_followed_but_nothing_below(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"f")
    os.symlink("real", tmp_path / "link")
    os.symlink("real", tmp_path / "real" / "loop")
    paths = [w.entry.path for w, _ in walk_all(tmp_path / "link")]
    assert paths == ["", "f", "loop"]


def test_many_deep_directories_keep_few_descriptors_open(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(300):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    for name in ("a", "b"):
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)
    before = len(os.listdir("/proc/self/fd"))
    peak = 0
    count = 0
    for w in walk_tree(tmp_path):
        count += 1
        peak = max(peak, len(os.listdir("/proc/self/fd")) - before)
        b"".join(w.iter_data())
    assert count == 1 + 300 + 2
    assert peak <= directory._MAX_OPEN_DIRS + 4
    assert len(os.listdir("/proc/self/fd")) == before


@needs_root
def test_one_file_system(tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    (tmp_path / "f").write_bytes(b"")
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(tmp_path / "mnt")], capture_output=True).returncode:
        unmet("cannot mount a tmpfs here")
    try:
        (tmp_path / "mnt" / "inside").write_bytes(b"x")
        assert [w.entry.path for w, _ in walk_all(tmp_path)] == ["", "f", "mnt", "mnt/inside"]
        assert [w.entry.path for w in walk_tree(tmp_path, one_file_system=True)] == ["", "f", "mnt"]
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], check=True)


@needs_root
def test_unreadable_entries_as_an_unprivileged_user(public_tmp: Path) -> None:
    """EACCES on a file or a directory is a warning, never an abort (forked child as nobody)."""
    tree = public_tmp / "tree"
    tree.mkdir()
    (tree / "a").write_bytes(b"a")
    (tree / "secret").write_bytes(b"s")
    os.chmod(tree / "secret", 0)
    (tree / "closed").mkdir()
    (tree / "closed" / "inner").write_bytes(b"i")
    os.chmod(tree / "closed", 0o700)
    (tree / "z").write_bytes(b"z")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            warnings: list[str] = []
            paths = [w.entry.path for w, _ in walk_all(tree, warnings)]
            os.write(write, repr((paths, warnings)).encode())
            status = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(write, repr(e).encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        output = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0, output
    paths, warnings = eval(output.decode())  # our own repr
    assert paths == ["", "a", "closed", "z"]
    assert len(warnings) == 2
    assert any("secret" in w and "skipped" in w for w in warnings)
    assert any("closed" in w and "content is skipped" in w for w in warnings)


def test_entries_as_items_round_trip(tmp_path: Path) -> None:
    (tmp_path / NON_UTF8).write_bytes(b"x")
    os.symlink(os.fsencode(NON_UTF8), tmp_path / "l")
    for w, _ in walk_all(tmp_path):
        assert Entry.from_item(w.entry.to_item()) == w.entry


def test_whole_file_reads_see_changes_as_iter_data_does(tmp_path: Path) -> None:
    """read_view (files read whole into a buffer) and read_dense (large files through
    readinto) keep what was read and warn, like iter_data."""
    (tmp_path / "f").write_bytes(b"y" * 100_000)
    (tmp_path / "g").write_bytes(b"z" * 100_000)
    warnings: list[str] = []
    for w in walk_tree(tmp_path, on_warning=warnings.append):
        if w.entry.path == "f":
            os.truncate(tmp_path / "f", 30_000)
            view = w.read_view(lambda n: memoryview(bytearray(n)))
            assert bytes(view) == b"y" * 30_000 and w.entry.size == 30_000
        if w.entry.path == "g":
            with open(tmp_path / "g", "ab") as f:
                f.write(b"more")
            got = bytearray()

            def consume(reader: Any) -> None:
                buf = memoryview(bytearray(7000))
                while n := reader.readinto(buf):
                    got.extend(buf[:n])

            w.read_dense(consume)
            assert bytes(got) == b"z" * 100_000 and w.entry.size == 100_000
    assert sorted(m.rsplit("/", 1)[-1] for m in warnings) == ["f: changed while being read (shorter than expected)",
                                                              "g: changed while being read"]


def _sparse_file(path: Path) -> None:
    with open(path, "wb") as f:
        for i, at in enumerate((0, 1 << 20, 3 << 20)):
            f.seek(at)
            f.write(bytes([65 + i]) * 70_001)
        f.truncate(5 << 20)


def test_sparse_files_read_through_readinto_as_iter_data_reads_them(tmp_path: Path) -> None:
    """Issue #14 item 7: a sparse file's data segments go to the chunker through
    ``read_dense`` (straight into its buffers, not joined block by block): the same bytes,
    sparse map and size as ``iter_data``, also when the file shrinks while it is read."""
    results: dict[str, list[tuple[bytes, int, Any, list[str]]]] = {}
    for how in ("iter_data", "read_dense"):
        for name in ("whole", "cut"):
            _sparse_file(tmp_path / name)
        warnings: list[str] = []
        for w in walk_tree(tmp_path, on_warning=warnings.append):
            if w.entry.sparse is None:
                if w.entry.type == "f":
                    pytest.skip("this file system keeps no holes")
                continue
            if w.entry.path == "cut":
                os.truncate(tmp_path / "cut", (1 << 20) + 1000)  # mid-way through the second segment
            got = bytearray()
            if how == "iter_data":
                got.extend(b"".join(w.iter_data(4096)))
            else:
                def consume(reader: Any) -> None:
                    buf = memoryview(bytearray(7000))
                    while n := reader.readinto(buf):
                        got.extend(buf[:n])
                w.read_dense(consume)
            results.setdefault(how, []).append((bytes(got), w.entry.size, w.entry.sparse, list(warnings)))
    assert results["iter_data"] == results["read_dense"]
    (whole, size, sparse, _), (cut, cut_size, cut_sparse, warned) = sorted(results["read_dense"], key=lambda r: -r[1])
    content = (tmp_path / "whole").read_bytes()
    assert size == 5 << 20 and len(sparse) == 3
    assert whole == b"".join(content[at:at + length] for at, length in sparse)
    assert whole.replace(b"\0", b"") == b"A" * 70_001 + b"B" * 70_001 + b"C" * 70_001
    assert cut_size == (1 << 20) + 1000 and cut_sparse[-1] == (1 << 20, 1000) and warned
    assert cut == whole[:sparse[0][1]] + b"B" * 1000
