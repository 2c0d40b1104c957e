"""dedupe.sources.tarstream against GNU tar, Python's tarfile, the file system and hostile inputs."""

from __future__ import annotations

import grp
import io
import os
import pwd
import random
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from dedupe_testing import require_root, require_tools

from dedupe import acl
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.errors import DedupeError
from dedupe.sources import tarstream
from dedupe.sources.tarstream import (
    BadChecksumError,
    BadFieldError,
    BadPaxRecordError,
    BadSparseMapError,
    DanglingExtensionError,
    ExtensionTooLargeError,
    ImpossibleSizeError,
    NotATarError,
    TarMember,
    TarReader,
    TarStreamError,
    TruncatedTarError,
    normalize_path,
)

Format = Literal[0, 1, 2]  # tarfile.USTAR_FORMAT, GNU_FORMAT, PAX_FORMAT
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TAR_FIXTURES = FIXTURES / "tar"
IS_ROOT = os.geteuid() == 0


# -- helpers


class Trickle(io.RawIOBase):
    """A stream that returns at most a few bytes per read, like a pipe or a socket."""

    def __init__(self, data: bytes, steps: tuple[int, ...] = (1, 7, 511, 513, 4096, 100_000)) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._steps = steps
        self._turn = 0

    def read(self, n: int = -1) -> bytes:
        step = self._steps[self._turn % len(self._steps)]
        self._turn += 1
        if n < 0:
            n = len(self._data)
        end = min(self._pos + min(n, step), len(self._data))
        piece = bytes(self._data[self._pos:end])
        self._pos = end
        return piece


@dataclass
class Parsed:
    members: list[TarMember]
    datas: list[bytes]
    tail: bytes
    rebuilt: bytes

    @property
    def entries(self) -> list[Entry]:
        return [m.entry for m in self.members]

    def by_path(self) -> dict[str, tuple[TarMember, bytes]]:
        return {m.entry.path: (m, d) for m, d in zip(self.members, self.datas)}


def read_by_views(member: TarMember, view_size: int) -> bytes:
    """A member's data through the view API (the backup path): one view when it fits,
    else ``cut_views``, leaving a varying tail of each view for the next one."""
    if member.data_size <= view_size and not member.data_prefix:
        view = member.read_view()
        assert isinstance(view, memoryview)
        return bytes(view)
    if member.data_prefix:
        return b"".join(member.iter_raw(view_size))
    got = bytearray()
    views = 0

    def consume(view: memoryview, last: bool) -> int:
        nonlocal views
        views += 1
        assert 0 < len(view) <= view_size
        carry = 0 if last else (len(view) * views) % (view_size // 2)
        got.extend(view[:len(view) - carry])
        return carry

    member.cut_views(consume)
    return bytes(got)


def parse(data: bytes, *, trickle: bool = False, block_size: int = 1 << 20, view_size: int = 0) -> Parsed:
    reader = TarReader(Trickle(data) if trickle else io.BytesIO(data), view_size=view_size)
    members: list[TarMember] = []
    datas: list[bytes] = []
    parts: list[bytes] = []
    for member in reader:
        if view_size:
            raw = read_by_views(member, view_size)
            members.append(member)
            datas.append(raw)
            parts += [member.header, raw, member.padding]
            continue
        blocks = list(member.iter_raw(block_size))
        assert all(0 < len(b) <= block_size for b in blocks)
        raw = b"".join(blocks)
        assert len(raw) == member.data_size
        assert len(member.padding) == -member.data_size % 512
        members.append(member)
        datas.append(raw)
        parts += [member.header, raw, member.padding]
    tail = b"".join(reader.iter_tail())
    parts.append(tail)
    assert reader.offset == len(data)
    return Parsed(members, datas, tail, b"".join(parts))


def roundtrip(data: bytes) -> Parsed:
    """Parse from a plain and from a trickling stream; both rebuild ``data`` and agree."""
    first = parse(data)
    assert first.rebuilt == data
    second = parse(data, trickle=True, block_size=1000)
    assert second.rebuilt == data
    assert second.entries == first.entries
    for view_size in (4096, 1 << 20):  # the backup path: reused buffers, data as views
        third = parse(data, trickle=view_size == 4096, view_size=view_size)
        assert third.rebuilt == data
        assert third.entries == first.entries
        assert third.datas == first.datas
    return first


def content(member: TarMember, data: bytes) -> bytes:
    """The apparent file content of a member (sparse holes filled with zeros)."""
    body = data[member.data_prefix:]
    sparse = member.entry.sparse
    if sparse is None:
        return body
    out = bytearray(member.entry.size)
    pos = 0
    for offset, length in sparse:
        out[offset:offset + length] = body[pos:pos + length]
        pos += length
    assert pos == len(body)
    return bytes(out)


def tar_bytes(infos: list[tuple[tarfile.TarInfo, bytes]], fmt: Format,
              pax_headers: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers or {},
                      encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def tinfo(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
          **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else 0
    info.mtime = 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def with_checksum(block: bytes | bytearray) -> bytes:
    out = bytearray(block)
    out[148:156] = b" " * 8
    out[148:156] = b"%06o\0 " % sum(out)
    return bytes(out)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax_block(records: bytes, kind: bytes = b"x", claimed: int | None = None) -> bytes:
    info = tarfile.TarInfo("PaxHeaders/x")
    info.type = kind
    info.size = len(records)
    block = info.tobuf(tarfile.USTAR_FORMAT)
    if claimed is not None:
        block = with_checksum(block[:124] + b"\x80" + claimed.to_bytes(11, "big") + block[136:])
    return block + records + bytes(-len(records) % 512)


def raw_member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, fmt: Format = tarfile.USTAR_FORMAT,
               **fields: object) -> bytes:
    info, _ = tinfo(name, data, kind, **fields)
    return info.tobuf(fmt, "utf-8", "surrogateescape") + data + bytes(-len(data) % 512)


END = bytes(1024)
TARFILE_TYPES = {tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.CONTTYPE: FILE, tarfile.GNUTYPE_SPARSE: FILE,
                 tarfile.LNKTYPE: HARDLINK, tarfile.SYMTYPE: SYMLINK, tarfile.CHRTYPE: CHARDEV,
                 tarfile.BLKTYPE: BLOCKDEV, tarfile.DIRTYPE: DIR, tarfile.FIFOTYPE: FIFO}


def assert_matches_tarfile(data: bytes, parsed: Parsed) -> None:
    """Every parsed entry agrees with what Python's tarfile reads from the same bytes."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        infos = tar.getmembers()
    assert len(infos) == len(parsed.members)
    for info, member in zip(infos, parsed.members):
        entry = member.entry
        assert entry.path == normalize_path(info.name)
        assert entry.type == TARFILE_TYPES.get(info.type, FILE)
        assert member.typeflag == info.type
        assert entry.mode == info.mode & 0o7777
        assert (entry.uid, entry.gid, entry.uname, entry.gname) == (info.uid, info.gid, info.uname, info.gname)
        if isinstance(info.mtime, int):
            assert entry.mtime_ns == info.mtime * 1_000_000_000
        else:
            assert abs(entry.mtime_ns - info.mtime * 1e9) < 1e3 + abs(info.mtime) * 1e-6
        if entry.type == FILE:
            assert entry.size == info.size
        if entry.type == SYMLINK:
            assert entry.link == info.linkname
        elif entry.type == HARDLINK:
            assert entry.link == normalize_path(info.linkname)
        else:
            assert entry.link == ""
        if entry.type in (CHARDEV, BLOCKDEV):
            assert entry.rdev == (info.devmajor, info.devminor)
        else:
            assert entry.rdev is None
        tar_sparse: list[tuple[int, int]] | None = getattr(info, "sparse", None)
        expected_sparse = [seg for seg in tar_sparse if seg[1]] if tar_sparse is not None else None
        assert entry.sparse == expected_sparse
        tar_xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                      for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        assert {k: v for k, v in entry.xattrs.items() if not k.startswith("system.posix_acl_")} == \
            {k: v for k, v in tar_xattrs.items() if not k.startswith("system.posix_acl_")}


# -- the file-system tree GNU tar and tarfile archive

LONG_DIR = "long-" + "d" * 95 + "/" + "e" * 100 + "/" + "f" * 100  # > 255 characters
PREFIX_NAME = "p" * 80 + "/" + "q" * 69  # 150 characters: fits ustar's prefix + name split
LONG_TARGET = "../" + "t" * 150  # a symlink target longer than 100 characters
MTIME_NS = 1_600_000_000_123_456_789
SPARSE_LAYOUT = {"sparse.img": (8 << 20, [(0, 4096, b"A"), (3 << 20, 8192, b"B"), ((8 << 20) - 4096, 4096, b"C")]),
                 "sparse-tail.img": (4 << 20, [(1 << 20, 4096, b"D")]),
                 "sparse-empty.img": (2 << 20, [])}


def _build_tree(root: Path) -> None:
    root.mkdir()
    (root / "small.txt").write_bytes(b"hello\n")
    os.chmod(root / "small.txt", 0o640)
    (root / "empty").write_bytes(b"")
    (root / "large.bin").write_bytes(random.Random(1).randbytes((3 << 20) + 123))
    for name, (size, chunks) in SPARSE_LAYOUT.items():
        with open(root / name, "wb") as f:
            f.truncate(size)
            for offset, length, fill in chunks:
                f.seek(offset)
                f.write(fill * length)
    os.link(root / "small.txt", root / "hard")
    os.symlink("small.txt", root / "rel")
    os.symlink("/etc/passwd", root / "abs")
    os.symlink("no/such/target", root / "dangling")
    os.symlink(LONG_TARGET, root / "longlink")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(root / "fifo", 0o600)
    (root / "ünïcödé ファイル.txt").write_text("unicode\n")
    (root / LONG_DIR).mkdir(parents=True)
    (root / LONG_DIR / "file.txt").write_bytes(b"a long name\n")
    (root / PREFIX_NAME).parent.mkdir()
    (root / PREFIX_NAME).write_bytes(b"a ustar prefix name\n")
    (root / "owned").write_bytes(b"owned by numeric ids\n")
    os.chown(root / "owned", 123456, 654321)
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "suid", 0o4755)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    xattr_file = root / "xattr.txt"
    xattr_file.write_bytes(b"with xattrs\n")
    os.setxattr(xattr_file, "user.comment", b"hello")
    os.setxattr(xattr_file, "user.binary", b"\x00\xff\n binary")
    os.setxattr(xattr_file, "trusted.secret", b"s3cret")
    (root / "acl.txt").write_bytes(b"with an ACL\n")
    subprocess.run(["setfacl", "-m", "u:1000:r,g:1000:rw", str(root / "acl.txt")], check=True)
    (root / "acldir").mkdir()
    subprocess.run(["setfacl", "-m", "u:1000:rx", "-d", "-m", "u:1000:rwx,g::r", str(root / "acldir")], check=True)
    os.utime(root / "small.txt", ns=(MTIME_NS - 7, MTIME_NS))
    os.utime(root / "rel", ns=(MTIME_NS, MTIME_NS + 1), follow_symlinks=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root("mknod, chown, trusted.* xattrs")
    require_tools("setfacl", "getfacl")
    root = tmp_path_factory.mktemp("tarstream") / "tree"
    _build_tree(root)
    return root


def _fs_paths(root: Path) -> set[str]:
    paths = {"."}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            paths.add(os.path.relpath(os.path.join(dirpath, name), root))
    return paths


def _data_regions(path: Path) -> list[tuple[int, int]]:
    regions = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(f.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            regions.append((start, end - start))
            pos = end
    return regions


def _getfacl(path: Path, default: bool = False) -> str:
    args = ["getfacl", "-n", "-c", "-E", "-d" if default else "-a", str(path)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return ",".join(line for line in out.splitlines() if line)


def _name_of(table: str, ident: int) -> str:
    try:
        return pwd.getpwuid(ident).pw_name if table == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return ""


def assert_matches_fs(parsed: Parsed, root: Path, *, times: str, xattrs: str, sparse: bool) -> None:
    """Every parsed entry agrees with the file it was archived from.

    ``times``: "ns" (GNU tar's PAX records), "s" (whole seconds) or "float" (tarfile's
    PAX records: a Python float, so about a microsecond). ``xattrs``: "all", "acl" (only
    the POSIX ACLs) or "none" were archived.
    """
    for member, data in zip(parsed.members, parsed.datas):
        entry = member.entry
        path = root / entry.path
        st = os.lstat(path)
        kind = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK, stat.S_IFCHR: CHARDEV,
                stat.S_IFBLK: BLOCKDEV, stat.S_IFIFO: FIFO}[stat.S_IFMT(st.st_mode)]
        if entry.type == HARDLINK:
            assert kind == FILE
            assert os.lstat(root / entry.link).st_ino == st.st_ino
        else:
            assert entry.type == kind, entry.path
        assert entry.mode == stat.S_IMODE(st.st_mode), entry.path
        assert (entry.uid, entry.gid) == (st.st_uid, st.st_gid)
        assert (entry.uname, entry.gname) == (_name_of("user", st.st_uid), _name_of("group", st.st_gid))
        if times == "ns":
            assert entry.mtime_ns == st.st_mtime_ns, entry.path
            assert entry.ctime_ns == st.st_ctime_ns, entry.path
            assert entry.atime_ns is not None
        elif times == "float":
            assert abs(entry.mtime_ns - st.st_mtime_ns) < 1000, entry.path
        else:
            assert entry.mtime_ns == st.st_mtime_ns // 1_000_000_000 * 1_000_000_000, entry.path
        if entry.type == FILE:
            assert entry.size == st.st_size
            assert content(member, data) == path.read_bytes(), entry.path
        else:
            assert entry.size == 0 and member.data_size == 0
        if entry.type == SYMLINK:
            assert entry.link == os.readlink(path)
        if entry.type in (CHARDEV, BLOCKDEV):
            assert entry.rdev == (os.major(st.st_rdev), os.minor(st.st_rdev))
        expected_xattrs = {}
        if xattrs != "none" and entry.type != HARDLINK:
            expected_xattrs = {name: os.getxattr(path, name, follow_symlinks=False)
                               for name in os.listxattr(path, follow_symlinks=False)
                               if xattrs == "all" or name.startswith("system.posix_acl_")}
        assert entry.xattrs == expected_xattrs, entry.path
        if entry.path in SPARSE_LAYOUT:
            if sparse:
                assert entry.sparse == _data_regions(path), entry.path
                assert sum(length for _, length in entry.sparse) < entry.size
                assert member.content_size == sum(length for _, length in entry.sparse)
            else:
                assert entry.sparse is None
    if xattrs != "none":
        by_path = parsed.by_path()
        access = by_path["acl.txt"][0].entry.xattrs[acl.ACCESS_XATTR]
        assert acl.xattr_to_text(access) == _getfacl(root / "acl.txt")
        acldir = by_path["acldir"][0].entry.xattrs
        assert acl.xattr_to_text(acldir[acl.ACCESS_XATTR]) == _getfacl(root / "acldir")
        assert acl.xattr_to_text(acldir[acl.DEFAULT_XATTR]) == _getfacl(root / "acldir", default=True)
        assert acl.DEFAULT_XATTR not in by_path["acl.txt"][0].entry.xattrs
        assert acl.ACCESS_XATTR not in by_path["small.txt"][0].entry.xattrs


GNU_TAR_CASES = {
    "gnu": ["--format=gnu", "--sparse"],
    "oldgnu": ["--format=oldgnu", "--sparse"],
    "posix-0.0": ["--format=posix", "--sparse", "--sparse-version=0.0", "--xattrs", "--acls"],
    "posix-0.1": ["--format=posix", "--sparse", "--sparse-version=0.1", "--xattrs", "--acls"],
    "posix-1.0": ["--format=posix", "--sparse", "--sparse-version=1.0", "--xattrs", "--acls"],
    "posix-acls-only": ["--format=posix", "--acls"],
    "ustar": ["--format=ustar", "--exclude=./longlink"],  # GNU tar would store a cut link target
}


@pytest.mark.needs_tools("tar")
@pytest.mark.parametrize("case", sorted(GNU_TAR_CASES))
def test_gnu_tar_round_trip_and_fields(case: str, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    result = subprocess.run(["tar", *GNU_TAR_CASES[case], "-cf", str(out), "-C", str(tree), "."],
                            capture_output=True, text=True)
    data = out.read_bytes()
    parsed = roundtrip(data)
    names = {entry.path for entry in parsed.entries}
    if case == "ustar":  # names > 255 and link targets > 100 characters do not fit: tar skips them
        assert result.returncode == 2
        assert "small.txt" in names and PREFIX_NAME in names and "longlink" not in names
        assert not any(name.startswith(LONG_DIR) for name in names)
    else:
        assert result.returncode == 0, result.stderr
        assert names == _fs_paths(tree)
    posix = case.startswith("posix")
    xattrs = "acl" if case == "posix-acls-only" else "all" if posix else "none"
    assert_matches_fs(parsed, tree, times="ns" if posix else "s", xattrs=xattrs,
                      sparse="--sparse" in GNU_TAR_CASES[case])
    if case == "posix-acls-only":  # the ACLs came from SCHILY.acl.* text alone
        assert b"SCHILY.xattr" not in data and b"SCHILY.acl.access" in data
    assert_matches_tarfile(data, parsed)
    if case == "posix-1.0":
        assert parsed.by_path()["sparse.img"][0].data_prefix == 512
    assert parsed.tail and not any(parsed.tail)  # end-of-archive blocks and blocking-factor zeros


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_python_tarfile_round_trip_and_fields(fmt: Format, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    with tarfile.open(out, "w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        skipped = set()
        for name in sorted(_fs_paths(tree)):
            try:
                tar.add(tree / name, arcname=name, recursive=False)
            except ValueError:  # USTAR: the name or the link target does not fit
                assert fmt == tarfile.USTAR_FORMAT
                skipped.add(name)
    if fmt == tarfile.USTAR_FORMAT:
        assert "longlink" in skipped and f"{LONG_DIR}/file.txt" in skipped and PREFIX_NAME not in skipped
    data = out.read_bytes()
    parsed = roundtrip(data)
    assert {entry.path for entry in parsed.entries} == _fs_paths(tree) - skipped
    assert_matches_fs(parsed, tree, times="float" if fmt == tarfile.PAX_FORMAT else "s", xattrs="none",
                      sparse=False)
    assert_matches_tarfile(data, parsed)


# -- tarfile-written edge cases


def test_all_types_from_tarfile_each_format() -> None:
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        members = [
            tinfo("dir", kind=tarfile.DIRTYPE, mode=0o755),
            tinfo("dir/file", b"data\n" * 100, mode=0o4755, uid=1000, gid=100, uname="alice", gname="users"),
            tinfo("dir/cont", b"contiguous", kind=tarfile.CONTTYPE),
            tinfo("dir/areg", b"old style", kind=tarfile.AREGTYPE),
            tinfo("dir/hard", kind=tarfile.LNKTYPE, linkname="./dir/file"),
            tinfo("dir/sym", kind=tarfile.SYMTYPE, linkname="./file/", mode=0o777),
            tinfo("dir/chr", kind=tarfile.CHRTYPE, devmajor=4, devminor=64),
            tinfo("dir/blk", kind=tarfile.BLKTYPE, devmajor=259, devminor=1),
            tinfo("dir/fifo", kind=tarfile.FIFOTYPE),
            tinfo("./dotslash", b"x"),
        ]
        data = tar_bytes(members, fmt)
        parsed = roundtrip(data)
        assert_matches_tarfile(data, parsed)
        entries = parsed.by_path()
        assert [m.entry.path for m in parsed.members][-1] == "dotslash"
        assert entries["dir/hard"][0].entry.link == "dir/file"
        assert entries["dir/sym"][0].entry.link == "./file/"  # symlink targets are verbatim
        assert entries["dir/cont"][0].entry.type == FILE and entries["dir/cont"][1] == b"contiguous"
        assert entries["dir/file"][0].entry.mode == 0o4755
        assert entries["dir/blk"][0].entry.rdev == (259, 1)


def test_base256_fields_gnu() -> None:
    member = tinfo("big-ids", b"x", uid=2**40, gid=2**33, mtime=-(2**33))
    data = tar_bytes([member], tarfile.GNU_FORMAT)
    assert data[108] == 0x80 and data[136] == 0xFF
    entry = roundtrip(data).entries[0]
    assert (entry.uid, entry.gid, entry.mtime_ns) == (2**40, 2**33, -(2**33) * 1_000_000_000)


def test_times_beyond_the_entry_range_refused() -> None:
    data = tar_bytes([tinfo("ancient", b"x", mtime=-(2**36))], tarfile.GNU_FORMAT)
    with pytest.raises(BadFieldError, match="'ancient' at byte offset 0: mtime"):
        parse(data)


def test_base256_size_field() -> None:
    payload = b"z" * 1000
    block = bytearray(raw_member("b256", payload)[:512])
    block[124:136] = b"\x80" + (1000).to_bytes(11, "big")
    data = with_checksum(block) + payload + bytes(24) + END
    parsed = roundtrip(data)
    assert parsed.members[0].data_size == 1000 and parsed.datas[0] == payload


def test_pax_fields_and_high_resolution_times() -> None:
    records = b"".join([
        pax_record(b"path", "a/ünï/" .encode() + b"n" * 300),
        pax_record(b"mtime", b"1600000000.123456789"),
        pax_record(b"atime", b"-1.5"),
        pax_record(b"ctime", b"12.3"),
        pax_record(b"uid", b"4000000000"),
        pax_record(b"gid", b"77"),
        pax_record(b"uname", "jürgen".encode()),
        pax_record(b"gname", b"staff"),
        pax_record(b"SCHILY.xattr.user.bin", b"\x00\n=\xff"),
        pax_record(b"SCHILY.xattr.trusted.t", b"t"),
        pax_record(b"LIBARCHIVE.xattr.user.%C3%A9t%C3%A9", b"aGVsbG8"),
        pax_record(b"LIBARCHIVE.xattr.user.bin", b"b3RoZXI="),  # SCHILY wins over LIBARCHIVE
        pax_record(b"comment", b"ignored"),
    ])
    data = pax_block(records) + raw_member("short", b"body") + END
    entry = roundtrip(data).entries[0]
    assert entry.path == "a/ünï/" + "n" * 300
    assert entry.mtime_ns == 1_600_000_000_123_456_789
    assert entry.atime_ns == -1_500_000_000
    assert entry.ctime_ns == 12_300_000_000
    assert (entry.uid, entry.gid, entry.uname, entry.gname) == (4_000_000_000, 77, "jürgen", "staff")
    assert entry.xattrs == {"user.bin": b"\x00\n=\xff", "trusted.t": b"t", "user.été": b"hello"}


@pytest.mark.parametrize("text, ns", [(b"1e-05", 10_000), (b"1.5e+16", 15 * 10**24), (b"-0.0000000019", -1),
                                      (b"7.", 7 * 10**9), (b"0.123456789987", 123_456_789),
                                      (b"5e-324", 0), (b"1" * 30 + b"e-21", 111_111_111_111_111_111)])
def test_pax_time_forms(text: bytes, ns: int) -> None:
    data = _with_records(pax_record(b"atime", text))
    if abs(ns) >= 2**64:
        with pytest.raises(BadFieldError, match="atime"):
            parse(data)
    else:
        assert roundtrip(data).entries[0].atime_ns == ns


def test_empty_pax_values() -> None:
    glob = pax_block(pax_record(b"SCHILY.xattr.user.g", b"global") + pax_record(b"path", b"global-path"), kind=b"g")
    local = pax_block(pax_record(b"SCHILY.xattr.user.empty", b"") + pax_record(b"path", b""))
    data = glob + local + raw_member("from-header") + raw_member("second") + END
    entries = roundtrip(data).entries
    assert [(e.path, e.xattrs) for e in entries] == [
        ("from-header", {"user.g": b"global", "user.empty": b""}), ("global-path", {"user.g": b"global"})]


def test_pax_size_overrides_header_size() -> None:
    payload = b"q" * 700
    block = bytearray(raw_member("sized", b"")[:512])
    data = pax_block(pax_record(b"size", b"700")) + bytes(block) + payload + bytes(-700 % 512) + END
    parsed = roundtrip(data)
    assert parsed.members[0].data_size == 700 and parsed.datas[0] == payload


def test_global_and_local_pax_headers() -> None:
    glob = pax_block(pax_record(b"uname", b"globaluser") + pax_record(b"comment", b"c"), kind=b"g")
    local_delete = pax_block(pax_record(b"uname", b""))  # an empty value deletes the global one
    solaris = pax_block(pax_record(b"path", b"from-X-header"), kind=b"X")
    data = (glob + raw_member("one", uname="hdr1")
            + local_delete + raw_member("two", uname="hdr2")
            + solaris + raw_member("three", uname="hdr3") + END)
    parsed = roundtrip(data)
    assert [(e.path, e.uname) for e in parsed.entries] == [
        ("one", "globaluser"), ("two", "hdr2"), ("from-X-header", "globaluser")]
    assert parsed.members[0].header.startswith(glob)  # the global header travels with the next member
    assert parsed.members[1].header.startswith(local_delete)


def test_tarfile_global_pax_headers_without_members() -> None:
    data = tar_bytes([], tarfile.PAX_FORMAT, pax_headers={"comment": "nothing here"})
    parsed = roundtrip(data)
    assert parsed.members == [] and parsed.tail == data


def test_non_utf8_names() -> None:
    name = os.fsdecode(b"caf\xe9/\xff\xfe-raw")
    target = os.fsdecode(b"t\xe9rget")
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        data = tar_bytes([tinfo(name, b"x"), tinfo("s", kind=tarfile.SYMTYPE, linkname=target)], fmt)
        entries = roundtrip(data).entries
        assert entries[0].path == name and entries[1].link == target


def test_gnu_long_names_and_links() -> None:
    name = "d/" + "n" * 300
    target = "/" + "t" * 200
    data = tar_bytes([tinfo(name, b"x"), tinfo("hl", kind=tarfile.LNKTYPE, linkname=name),
                      tinfo("sl", kind=tarfile.SYMTYPE, linkname=target)], tarfile.GNU_FORMAT)
    parsed = roundtrip(data)
    assert [m.header[156:157] for m in parsed.members] == [b"L", b"K", b"K"]
    assert [(e.path, e.link) for e in parsed.entries] == [(name, ""), ("hl", name), ("sl", target)]
    assert_matches_tarfile(data, parsed)


def test_v7_directory_and_unknown_type() -> None:
    v7dir = bytearray(raw_member("olddir/", kind=tarfile.AREGTYPE)[:512])
    v7dir[257:265] = bytes(8)  # no magic: a V7 header
    unknown = raw_member("vendor", b"vendor data", kind=b"Z", size=11)
    data = with_checksum(v7dir) + unknown + END
    parsed = roundtrip(data)
    assert [(e.path, e.type, e.uname) for e in parsed.entries] == [("olddir", DIR, ""), ("vendor", FILE, "")]
    assert parsed.members[1].typeflag == b"Z" and parsed.datas[1] == b"vendor data"


def test_header_only_types_carry_no_data_whatever_their_size() -> None:
    block = bytearray(raw_member("sym", kind=tarfile.SYMTYPE, linkname="x")[:512])
    block[124:136] = b"%011o\0" % 4096
    data = with_checksum(block) + raw_member("after", b"a") + END
    parsed = roundtrip(data)
    assert [(m.entry.path, m.data_size) for m in parsed.members] == [("sym", 0), ("after", 1)]


def test_signed_checksum_accepted() -> None:
    block = bytearray(raw_member("caf\xe9".encode("latin-1").decode("latin-1"), b"")[:512])
    block[0:5] = b"\xe9\xe9\xe9\xe9\xe9"
    block[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in block)
    block[148:156] = b"%06o\0 " % signed
    data = bytes(block) + END
    assert roundtrip(data).entries[0].path == os.fsdecode(b"\xe9" * 5)


def test_normalize_path() -> None:
    cases = {"./": ".", ".": ".", "./a/": "a", ".//a": "a", "././a": "a", "a//": "a", "/": "/", "//": "/",
             "/etc/": "/etc", "../evil": "../evil", "a/../../b": "a/../../b", "./../x": "../x", "": "."}
    for raw, expected in cases.items():
        assert normalize_path(raw) == expected, raw


# -- sparse members built by hand


def _old_gnu_sparse(segments: list[tuple[int, int]], realsize: int, extended_segments: list[tuple[int, int]]) -> bytes:
    stored = sum(length for _, length in segments + extended_segments)
    block = bytearray(raw_member("sp", b"", fmt=tarfile.GNU_FORMAT)[:512])
    block[156:157] = b"S"
    block[124:136] = b"%011o\0" % stored
    for i, (offset, length) in enumerate(segments):
        block[386 + 24 * i:410 + 24 * i] = b"%011o\0%011o\0" % (offset, length)
    block[482] = 1 if extended_segments else 0
    block[483:495] = b"%011o\0" % realsize
    out = with_checksum(block)
    for start in range(0, len(extended_segments), 21):
        ext = bytearray(512)
        chunk = extended_segments[start:start + 21]
        for i, (offset, length) in enumerate(chunk):
            ext[24 * i:24 * i + 24] = b"%011o\0%011o\0" % (offset, length)
        ext[504] = 1 if start + 21 < len(extended_segments) else 0
        out += bytes(ext)
    payload = bytes(random.Random(stored).randbytes(stored))
    return out + payload + bytes(-stored % 512)


def test_old_gnu_sparse_with_extension_blocks() -> None:
    segments = [(i * 1000, 10) for i in range(4)]
    extended = [(i * 1000, 10) for i in range(4, 50)]
    data = _old_gnu_sparse(segments, 60_000, extended) + END
    parsed = roundtrip(data)
    member = parsed.members[0]
    assert member.entry.sparse == segments + extended
    assert member.entry.size == 60_000 and member.data_size == 500
    assert len(member.header) == 512 * 4  # the header and three extension blocks
    assert_matches_tarfile(data, parsed)


def test_pax_sparse_1_0_map_spanning_blocks() -> None:
    segments = [(i * 100_000, 3) for i in range(200)]
    map_text = (f"{len(segments)}\n" + "".join(f"{o}\n{n}\n" for o, n in segments)).encode()
    map_blocks = map_text + bytes(-len(map_text) % 512)
    assert len(map_blocks) > 512
    payload = b"abc" * 200
    stored = map_blocks + payload
    records = (pax_record(b"GNU.sparse.major", b"1") + pax_record(b"GNU.sparse.minor", b"0")
               + pax_record(b"GNU.sparse.name", b"real/name") + pax_record(b"GNU.sparse.realsize", b"20000000"))
    data = pax_block(records) + raw_member("GNUSparseFile.1/name", stored) + END
    parsed = roundtrip(data)
    member = parsed.members[0]
    assert member.entry.path == "real/name" and member.entry.size == 20_000_000
    assert member.data_prefix == len(map_blocks) and member.entry.sparse == segments
    assert parsed.datas[0] == stored
    # a small block size still yields the map first, then the content
    again = parse(data, block_size=100)
    assert again.rebuilt == data


# -- ACL records


BINARY_ACL = (b"\x02\x00\x00\x00" + b"\x01\x00\x06\x00\xff\xff\xff\xff" + b"\x02\x00\x04\x00\xe8\x03\x00\x00"
              + b"\x04\x00\x04\x00\xff\xff\xff\xff" + b"\x10\x00\x04\x00\xff\xff\xff\xff"
              + b"\x20\x00\x04\x00\xff\xff\xff\xff")


def _with_records(*records: bytes, name: str = "f") -> bytes:
    return pax_block(b"".join(records)) + raw_member(name, b"x") + END


def test_lxd_binary_acl_kept() -> None:
    data = _with_records(pax_record(b"SCHILY.acl.access", BINARY_ACL), pax_record(b"SCHILY.acl.default", BINARY_ACL))
    entry = roundtrip(data).entries[0]
    assert entry.xattrs == {acl.ACCESS_XATTR: BINARY_ACL, acl.DEFAULT_XATTR: BINARY_ACL}


def test_text_acls_converted_minimal_access_dropped() -> None:
    star = b"user::rw-,user:bob:r--:1000,group::r--,mask::r--,other::r--"
    entry = roundtrip(_with_records(pax_record(b"SCHILY.acl.access", star))).entries[0]
    assert entry.xattrs == {acl.ACCESS_XATTR: BINARY_ACL}
    minimal = b"user::rw-\ngroup::r--\nother::r--\n"
    entry = roundtrip(_with_records(pax_record(b"SCHILY.acl.access", minimal),
                                    pax_record(b"SCHILY.acl.default", minimal))).entries[0]
    assert entry.xattrs == {acl.DEFAULT_XATTR: acl.text_to_xattr(minimal.decode())}


def test_bad_acl_text_is_a_pax_error() -> None:
    with pytest.raises(BadPaxRecordError, match=r"member 'f' at byte offset 1024: pax SCHILY.acl.access"):
        parse(_with_records(pax_record(b"SCHILY.acl.access", b"user::rw-,bogus")))


# -- stream shapes: tails, empty streams, padding


def test_trailing_data_and_blocking_factor_kept_in_tail() -> None:
    body = tar_bytes([tinfo("a", b"1")], tarfile.PAX_FORMAT)  # padded to 10240 bytes by tarfile
    data = body + b"\x00garbage\xff" * 1000
    parsed = roundtrip(data)
    assert len(parsed.members) == 1
    assert parsed.tail == data[1024:]


def test_stream_without_end_of_archive_blocks() -> None:
    data = raw_member("a", b"1") + raw_member("b", b"22")
    parsed = roundtrip(data)
    assert [e.path for e in parsed.entries] == ["a", "b"] and parsed.tail == b""


@pytest.mark.parametrize("data", [b"", bytes(1), bytes(100), bytes(512), bytes(1024), bytes(10240), bytes(3000)])
def test_empty_or_zero_streams_are_empty_archives(data: bytes) -> None:
    parsed = roundtrip(data)
    assert parsed.members == [] and parsed.tail == data


def test_single_zero_block_ends_the_members() -> None:
    data = raw_member("a", b"1") + bytes(512) + raw_member("hidden", b"2") + END
    parsed = roundtrip(data)
    assert [e.path for e in parsed.entries] == ["a"]
    assert parsed.tail == data[1024:]


def test_nonzero_padding_kept() -> None:
    data = (TAR_FIXTURES / "nonzero-padding.tar").read_bytes()
    parsed = roundtrip(data)
    assert parsed.members[0].padding == b"\xa5" * len(parsed.members[0].padding)


# -- the iteration protocol


def _three() -> bytes:
    return tar_bytes([tinfo("a", b"A" * 3000), tinfo("b", b"B" * 5), tinfo("c", b"C" * 70000)], tarfile.GNU_FORMAT)


def test_unread_data_is_skipped() -> None:
    data = _three()
    reader = TarReader(Trickle(data))
    members = list(reader)
    assert [m.entry.path for m in members] == ["a", "b", "c"]
    assert [m.padding for m in members] == [bytes(-n % 512) for n in (3000, 5, 70000)]
    assert b"".join(reader.iter_tail()) == data[512 * (1 + 6 + 1 + 1 + 1 + 137):]


def test_partly_read_data_is_skipped_and_stale_iterators_refuse() -> None:
    reader = TarReader(io.BytesIO(_three()))
    it = iter(reader)
    first = next(it)
    raw = first.iter_raw(1000)
    assert next(raw) == b"A" * 1000
    with pytest.raises(RuntimeError):
        first.iter_raw()  # one reader per member
    with pytest.raises(RuntimeError):
        _ = first.padding  # not read yet
    second = next(it)
    assert second.entry.path == "b" and first.padding == bytes(-3000 % 512)
    with pytest.raises(RuntimeError):
        next(raw)  # the stream has moved on
    with pytest.raises(RuntimeError):
        reader.iter_tail()  # members remain
    assert b"".join(second.iter_raw()) == b"BBBBB"
    third = next(it)
    assert b"".join(third.iter_raw(4096)) == b"C" * 70000
    assert list(it) == []
    assert not any(b"".join(reader.iter_tail()))


def test_reader_refuses_to_go_on_after_an_error() -> None:
    data = (TAR_FIXTURES / "truncated-data.tar").read_bytes()
    reader = TarReader(io.BytesIO(data))
    it = iter(reader)
    next(it)
    big = next(it)
    with pytest.raises(TruncatedTarError):
        b"".join(big.iter_raw())
    with pytest.raises(RuntimeError, match="raised an error before"):
        list(reader)
    with pytest.raises(RuntimeError, match="raised an error before"):
        reader.iter_tail()


def test_offsets() -> None:
    data = _three()
    reader = TarReader(io.BytesIO(data))
    offsets = []
    for member in reader:
        offsets.append((member.offset, reader.offset))
    assert offsets == [(0, 512), (512 + 3072, 512 + 3072 + 512), (512 + 3072 + 1024, 512 + 3072 + 1024 + 512)]


# -- committed fixtures


def test_fixture_script_writes_the_committed_fixtures(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(FIXTURES / "make_tar_fixtures.py"), str(tmp_path)], check=True)
    written = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in TAR_FIXTURES.iterdir()}
    assert written == committed
    assert all(len(body) <= 4096 for name, body in committed.items() if name != "README.md")


TRAVERSAL = {
    "traversal-dotdot.tar": [("../evil", FILE, "")],
    "traversal-absolute.tar": [("/etc/evil", FILE, "")],
    "traversal-nested-dotdot.tar": [("a", DIR, ""), ("a/../../evil", FILE, "")],
    "traversal-symlink-dir.tar": [("link", SYMLINK, "/etc"), ("link/passwd", FILE, "")],
    "traversal-symlink-relative.tar": [("sub", DIR, ""), ("sub/up", SYMLINK, "../.."), ("sub/up/evil", FILE, "")],
    "traversal-symlink-file.tar": [("escape", SYMLINK, "../outside.txt"), ("escape", FILE, "")],
    "traversal-hardlink-dotdot.tar": [("h", HARDLINK, "../outside")],
    "traversal-hardlink-absolute.tar": [("passwd", HARDLINK, "/etc/passwd")],
    "traversal-pax-path.tar": [("../pax-evil", FILE, "")],
    "traversal-gnu-longname.tar": [("../" + "x" * 120, FILE, "")],
}
VALID = {
    "empty.tar": [],
    "zeros.tar": [],
    "trailing-data.tar": [("first.txt", FILE, "")],
    "no-eof.tar": [("first.txt", FILE, ""), ("second.txt", FILE, "")],
    "global-only.tar": [],
    "nonzero-padding.tar": [("odd.txt", FILE, "")],
}


@pytest.mark.parametrize("name", sorted(TRAVERSAL) + sorted(VALID))
def test_hostile_and_edge_fixtures_parse_verbatim(name: str) -> None:
    data = (TAR_FIXTURES / name).read_bytes()
    parsed = roundtrip(data)
    assert [(e.path, e.type, e.link) for e in parsed.entries] == {**TRAVERSAL, **VALID}[name]


BROKEN: dict[str, tuple[type[TarStreamError], list[str]]] = {
    "truncated-header.tar": (TruncatedTarError, ["byte offset 1024", "'first.txt'", "300 of 512"]),
    "truncated-data.tar": (TruncatedTarError, ["member 'big.bin'", "claims 1048576 bytes, stream ends after 1000",
                                               "byte offset 1024"]),
    "truncated-padding.tar": (TruncatedTarError, ["member 'short.txt'", "padding", "byte offset 612"]),
    "truncated-pax.tar": (TruncatedTarError, ["pax header at byte offset 0", "claims 310 bytes"]),
    "badchecksum.tar": (BadChecksumError, ["byte offset 1024", "after member 'first.txt'", "'second.txt'"]),
    "bad-field-mode.tar": (BadFieldError, ["member 'mode.txt' at byte offset 0", "mode field"]),
    "impossible-size-negative.tar": (ImpossibleSizeError, ["member 'negative.bin'", "negative size -1000"]),
    "impossible-size-huge.tar": (ImpossibleSizeError, ["member 'huge.bin'", str(1 << 80)]),
    "pax-bad-length.tar": (BadPaxRecordError, ["pax header at byte offset 0", "bad length 99"]),
    "pax-bad-record.tar": (BadPaxRecordError, ["pax header at byte offset 0", "keyword=value"]),
    "pax-bad-number.tar": (BadPaxRecordError, ["member 'victim.txt' at byte offset 1024", "uid"]),
    "pax-huge.tar": (ExtensionTooLargeError, ["pax header at byte offset 0", "claims 1073741824 bytes"]),
    "dangling-longname.tar": (DanglingExtensionError, ["byte offset 0", "no member after it"]),
    "sparse-bad-map.tar": (BadSparseMapError, ["member 'sparse.img'", "holds 4096", "stores 1024"]),
    "not-a-tar.tar": (NotATarError, ["not a tar stream"]),
    "short-not-a-tar.tar": (NotATarError, ["not a tar stream", "17 bytes"]),
    "gzip.tar.gz": (NotATarError, ["gzip"]),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixtures_raise_typed_errors(name: str) -> None:
    error_type, fragments = BROKEN[name]
    data = (TAR_FIXTURES / name).read_bytes()
    for trickle, view_size in ((False, 0), (True, 0), (False, 4096), (True, 1 << 20)):
        with pytest.raises(error_type) as caught:
            parse(data, trickle=trickle, view_size=view_size)
        message = str(caught.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message
        assert isinstance(caught.value, DedupeError) and 40 <= caught.value.exit_code <= 49


def test_fixture_readme_lists_every_fixture() -> None:
    readme = (TAR_FIXTURES / "README.md").read_text()
    names = {p.name for p in TAR_FIXTURES.iterdir() if p.name != "README.md"}
    assert names == set(TRAVERSAL) | set(VALID) | set(BROKEN)
    for name in names:
        assert f"`{name}`" in readme


# -- more broken inputs


def test_error_classes_have_distinct_codes_in_range() -> None:
    classes = [BadChecksumError, BadFieldError, BadPaxRecordError, BadSparseMapError, DanglingExtensionError,
               ExtensionTooLargeError, ImpossibleSizeError, NotATarError, TruncatedTarError]
    assert len({c.exit_code for c in classes}) == len(classes)
    assert all(issubclass(c, TarStreamError) and 40 <= c.exit_code <= 49 for c in classes)


@pytest.mark.parametrize("records, fragment", [
    (b"5 a=\n", None),  # smallest record: an empty value is fine
    (b"x path=a\n", "bad length field"),
    (b"-9 path=a\n", "bad length field"),
    (b"3 path=a\n", "bad length 3"),
    (b"10 path=a\x00", "bad length 10"),
    (b"6 =ab\n", "keyword=value"),
    (b"9 path=a\n\x00\x00\x00", None),  # NUL padding after the records is tolerated
    (b"9 path=a\n\x00\x00x", "bad length field"),
    (pax_record(b"mtime", b"1e"), "mtime"),
    (pax_record(b"mtime", b"1e1000"), "mtime"),
    (pax_record(b"mtime", b"1e999"), "out of range"),
    (pax_record(b"mtime", b"nan"), "mtime"),
    (pax_record(b"mtime", b"1e99"), "out of range"),
    (pax_record(b"mtime", b"9" * 5000), "mtime"),  # int() would refuse 5000 digits with a bare ValueError
    (pax_record(b"uid", b"9" * 5000), "uid has 5000 digits"),
    (pax_record(b"size", b"9" * 5000), "size has 5000 digits"),
    (pax_record(b"GNU.sparse.map", b"0," + b"9" * 5000) + pax_record(b"GNU.sparse.size", b"9"), "not a decimal"),
    (pax_record(b"mtime", b"1.2.3"), "mtime"),
    (pax_record(b"size", b"-1000"), "size"),
    (pax_record(b"size", b"%d" % 2**64), "size"),
    (pax_record(b"GNU.sparse.map", b"1,2,3") + pax_record(b"GNU.sparse.size", b"9"), "odd count"),
    (pax_record(b"GNU.sparse.map", b"0,0") + pax_record(b"GNU.sparse.size", b"9")
     + pax_record(b"GNU.sparse.numblocks", b"2"), "numblocks"),
    (pax_record(b"GNU.sparse.offset", b"0") + pax_record(b"GNU.sparse.size", b"9"), "GNU.sparse.numbytes"),
    (pax_record(b"LIBARCHIVE.xattr.user.x", b"!!!"), "base64"),
])
def test_malformed_pax_records(records: bytes, fragment: str | None) -> None:
    data = pax_block(records) + raw_member("m", b"") + END
    if fragment is None:
        roundtrip(data)
        return
    with pytest.raises(TarStreamError, match=fragment):
        parse(data)


def test_pax_header_near_the_limit_is_accepted() -> None:
    value = bytes(range(256)) * (4 << 12)  # 4 MiB
    data = _with_records(pax_record(b"SCHILY.xattr.user.big", value))
    assert roundtrip(data).entries[0].xattrs["user.big"] == value


class Endless(io.RawIOBase):
    """A stream with a prefix and then an endless run of one byte; counts what was read."""

    def __init__(self, prefix: bytes, fill: bytes = b"a") -> None:
        self._prefix = prefix
        self._fill = fill
        self.consumed = 0

    def read(self, n: int = -1) -> bytes:
        n = 1 << 20 if n < 0 else n
        if self._prefix:
            piece, self._prefix = self._prefix[:n], self._prefix[n:]
        else:
            piece = self._fill * n
        self.consumed += len(piece)
        return piece


def test_hostile_pax_size_refused_without_reading() -> None:
    stream = Endless(pax_block(b"", claimed=(1 << 33)))
    with pytest.raises(ExtensionTooLargeError):
        list(TarReader(stream))
    assert stream.consumed <= tarstream.READ_SIZE + 512
    stream = Endless(pax_block(b"", claimed=tarstream.MAX_EXTENSION_SIZE + 1))
    with pytest.raises(ExtensionTooLargeError):
        list(TarReader(stream))


@pytest.mark.parametrize("map_start, fill, error", [
    (b"", b"1", BadSparseMapError),  # a number that never ends
    (b"99999999\n", b"0\n", ExtensionTooLargeError),  # too many segments
    (b"3\n", b"\x00", BadSparseMapError),  # not a number
])
def test_hostile_sparse_maps_refused_early(map_start: bytes, fill: bytes, error: type[TarStreamError]) -> None:
    records = pax_record(b"GNU.sparse.major", b"1") + pax_record(b"GNU.sparse.minor", b"0") + pax_record(
        b"GNU.sparse.realsize", b"10")
    header = bytearray(raw_member("sp", b"")[:512])
    header[124:136] = b"\x80" + (1 << 40).to_bytes(11, "big")
    stream = Endless(pax_block(records) + with_checksum(header) + map_start, fill=fill)
    with pytest.raises(error, match="'sp' at byte offset 1024: PAX 1.0 sparse map"):
        list(TarReader(stream))
    assert stream.consumed <= 3 * tarstream.READ_SIZE


def test_hostile_pax_record_counts_refused() -> None:
    records = b"".join(pax_record(b"k%d" % i, b"v") for i in range(tarstream.MAX_PAX_KEYS + 1))
    with pytest.raises(ExtensionTooLargeError, match="distinct keywords"):
        parse(_with_records(records))
    offsets = pax_record(b"GNU.sparse.offset", b"0") * (tarstream.MAX_SPARSE_SEGMENTS + 1)
    with pytest.raises(ExtensionTooLargeError, match="GNU.sparse.offset"):
        parse(_with_records(offsets))
    sparse_map = pax_record(b"GNU.sparse.map", b"0," * (2 * tarstream.MAX_SPARSE_SEGMENTS) + b"0")
    with pytest.raises(ExtensionTooLargeError, match="sparse segments"):
        parse(_with_records(sparse_map, pax_record(b"GNU.sparse.size", b"1")))


@pytest.mark.parametrize("field, value, error", [
    (100, b"0000888\0", BadFieldError),   # mode: not octal
    (108, b"12 34\0\0\0", BadFieldError),  # uid: embedded space
    (124, b"0000000001x\0", BadFieldError),  # size: junk
    (136, b"+0000001234\0", BadFieldError),  # mtime: sign
    (108, b"\xff" * 8, BadFieldError),  # uid: negative base-256
    (124, b"\x80" + b"\xff" * 11, ImpossibleSizeError),  # size: 2**88 - 1
    (329, b"\xff" * 8, BadFieldError),  # devmajor: negative
])
def test_bad_numeric_fields(field: int, value: bytes, error: type[TarStreamError]) -> None:
    block = bytearray(raw_member("dev", kind=tarfile.CHRTYPE)[:512])
    block[field:field + len(value)] = value
    with pytest.raises(error, match=r"'dev' at byte offset 0"):
        parse(with_checksum(block) + END)


def test_bad_checksum_on_first_header_with_magic() -> None:
    block = bytearray(raw_member("first", b"")[:512])
    block[148:156] = b"0000001\0"
    with pytest.raises(BadChecksumError, match="byte offset 0"):
        parse(bytes(block) + END)


def test_garbage_after_members_is_a_bad_checksum() -> None:
    data = raw_member("ok", b"fine") + b"\x01" * 512
    with pytest.raises(BadChecksumError, match="byte offset 1024, after member 'ok'"):
        parse(data)


@pytest.mark.parametrize("magic, kind", [(b"\x1f\x8b\x08\x00", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"),
                                         (b"\xfd7zXZ\x00", "xz"), (b"BZh9", "bzip2")])
def test_compressed_input_named(magic: bytes, kind: str) -> None:
    with pytest.raises(NotATarError, match=kind):
        parse(magic + bytes(range(256)) * 4)


def test_dangling_pax_header_at_end_of_stream() -> None:
    with pytest.raises(DanglingExtensionError, match="stream ends"):
        parse(pax_block(pax_record(b"path", b"x")))


def test_truncated_gnu_sparse_extension_block() -> None:
    data = _old_gnu_sparse([(0, 10)] * 1, 100, [(20, 10)])
    with pytest.raises(TruncatedTarError, match="sparse extension block"):
        parse(data[:512 + 100])


def test_every_truncation_is_typed_or_a_clean_prefix() -> None:
    data = tar_bytes([tinfo("a" * 150, b"1" * 700), tinfo("b", kind=tarfile.SYMTYPE, linkname="t" * 120),
                      tinfo("c", b"", pax_headers={"SCHILY.xattr.user.k": "v"})], tarfile.PAX_FORMAT)
    for cut in range(0, len(data), 7):
        try:
            parsed = parse(data[:cut])
        except TarStreamError:
            continue
        assert parsed.rebuilt == data[:cut]


def test_unsupported_sparse_version() -> None:
    data = _with_records(pax_record(b"GNU.sparse.major", b"2"), pax_record(b"GNU.sparse.minor", b"0"))
    with pytest.raises(BadSparseMapError, match="unsupported GNU sparse format"):
        parse(data)


@pytest.mark.parametrize("segments, realsize, fragment", [
    ([(0, 10), (5, 10)], 100, "overlaps"),
    ([(50, 10), (0, 10)], 100, "out of order"),
    ([(95, 10)], 100, "past the file size"),
])
def test_inconsistent_sparse_maps(segments: list[tuple[int, int]], realsize: int, fragment: str) -> None:
    numbers = b",".join(b"%d,%d" % seg for seg in segments)
    stored = b"s" * sum(n for _, n in segments)
    data = (pax_block(pax_record(b"GNU.sparse.size", b"%d" % realsize) + pax_record(b"GNU.sparse.map", numbers))
            + raw_member("sp", stored) + END)
    with pytest.raises(BadSparseMapError, match=fragment):
        parse(data)


# -- memory and speed


class ZeroMember(io.RawIOBase):
    """A tar stream of one member of ``size`` zero bytes, generated on the fly."""

    def __init__(self, size: int) -> None:
        self._head = raw_member("big", b"")[:512]
        block = bytearray(self._head)
        block[124:136] = b"%011o\0" % size
        self._head = with_checksum(block)
        self._left = size + (-size % 512) + 1024
        self._zeros = bytes(1 << 20)

    def read(self, n: int = -1) -> bytes:
        if self._head:
            piece, self._head = self._head[:n], self._head[n:]
            return piece
        take = min(n, self._left, len(self._zeros))
        self._left -= take
        return self._zeros[:take]


def test_large_member_streams_in_bounded_memory() -> None:
    size = (64 << 20) + 5
    tracemalloc.start()
    try:
        reader = TarReader(ZeroMember(size))
        total = 0
        largest = 0
        for member in reader:
            for block in member.iter_raw():
                total += len(block)
                largest = max(largest, len(block))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and largest == 1 << 20
    assert peak < 8 << 20


def test_throughput() -> None:
    size = 128 << 20
    data = bytes(ZeroMember(size).read(512)) + bytes(size) + END
    start = time.perf_counter()
    plain = io.BytesIO(data)
    while plain.read(1 << 20):
        pass
    raw_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reader = TarReader(io.BytesIO(data))
    total = 0
    for member in reader:
        for block in member.iter_raw():
            total += len(block)
    data_seconds = time.perf_counter() - start
    assert total == size
    many = tar_bytes([tinfo(f"d/{i:05d}", b"x" * (i % 700)) for i in range(10_000)], tarfile.PAX_FORMAT)
    start = time.perf_counter()
    count = sum(1 for _ in TarReader(io.BytesIO(many)))
    header_seconds = time.perf_counter() - start
    assert count == 10_000
    print(f"data: {size / data_seconds / 1e6:.0f} MB/s (plain 1 MiB reads: {size / raw_seconds / 1e6:.0f} MB/s); "
          f"headers: {count / header_seconds:.0f} members/s")
    assert size / data_seconds > 300e6
    assert count / header_seconds > 10_000
