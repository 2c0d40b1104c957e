"""dedupe.sinks.pax_writer.write_pax: GNU tar and Python's tarfile read back the same tree."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dedupe import acl
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.sinks.pax_writer import PaxWriteError, write_pax
from dedupe.sources.directory import walk_tree
from dedupe_testing import require_root, require_tools

_spec = importlib.util.spec_from_file_location("tree_helpers", Path(__file__).with_name("test_directory_walk.py"))
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

ROOT = os.geteuid() == 0
GNU_TAR = shutil.which("tar")
Data = Callable[[], Iterator[bytes]] | None


def _data(content: bytes) -> Data:
    return lambda: iter([content[i:i + 5000] for i in range(0, len(content), 5000)])


def _write(entries: list[tuple[Entry, Data]]) -> bytes:
    out = io.BytesIO()
    count = write_pax(out, entries)
    assert count == len(out.getvalue())
    return out.getvalue()


def _gnu_extract(archive: Path, into: Path) -> subprocess.CompletedProcess[str]:
    into.mkdir()
    return subprocess.run([GNU_TAR or "tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-xpf",
                           str(archive), "-C", str(into)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root("owners, devices, trusted.* xattrs")
    require_tools("setfacl", "tar")
    root = tmp_path_factory.mktemp("pax") / "tree"
    helpers.build_full_tree(root)
    return root


def _short(path: str) -> bool:
    """GNU tar 1.34 cannot create paths of PATH_MAX bytes or more ("File name too long")."""
    return len(os.fsencode(path)) < 4000


def test_walk_write_pax_gnu_tar_extract_gives_the_same_tree(full_tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "tree.tar"
    with open(archive, "wb") as f:
        size = write_pax(f, ((w.entry, w.iter_data) for w in walk_tree(full_tree) if _short(w.entry.path)))
    assert size == archive.stat().st_size and size % tarfile.RECORDSIZE == 0
    done = _gnu_extract(archive, tmp_path / "out")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    before = {p: rec for p, rec in helpers.snapshot(full_tree).items() if _short(p)}
    after = helpers.snapshot(tmp_path / "out")
    deepest = max((p for p in before if p.startswith("d00")), key=len)
    before[deepest]["mtime_ns"] = after[deepest]["mtime_ns"]  # its child was left out, so it changed
    assert after.keys() == before.keys()
    for path in before:
        assert after[path] == before[path], path
    for name in ("sparse", "sparse_tail_hole", "all_hole"):  # GNU sparse 1.0: holes come back as holes
        st = os.stat(tmp_path / "out" / name)
        assert st.st_size == os.stat(full_tree / name).st_size and st.st_blocks * 512 <= 64 << 10


def test_gnu_tar_lists_what_we_wrote(full_tree: Path, tmp_path: Path) -> None:
    archive = tmp_path / "tree.tar"
    with open(archive, "wb") as f:
        write_pax(f, ((w.entry, w.iter_data) for w in walk_tree(full_tree)))
    listing = subprocess.run([GNU_TAR or "tar", "-tvf", str(archive), "--numeric-owner", "--full-time"],
                             capture_output=True, check=True).stdout.decode("utf-8", "surrogateescape")
    lines = listing.splitlines()
    assert lines[0].startswith("drwxr-xr-x 0/0") and lines[0].endswith(" ./")
    assert any(line.startswith("hrw-r--r-- 0/0") and line.endswith("links/hl_b link to hl_a") for line in lines)
    assert any(line.startswith("crw-rw-rw- 0/0") and " 1,3 " in line and line.endswith(" null") for line in lines)
    assert any(line.startswith("prw--w---- 0/0") and line.endswith(" fifo") for line in lines)
    assert any(line.startswith("-rwsr-xr-x 1000/2000") and line.endswith(" suid") for line in lines)
    assert any(line.endswith("sparse") and " 9437184 " in line for line in lines)


def test_python_tarfile_reads_every_field(tmp_path: Path) -> None:
    long_name = "/".join(["p" * 120] * 3) + "/ü-file"
    text_acl = "user::rw-,user:1000:r--,group::r--,mask::r--,other::r--"
    entries: list[tuple[Entry, Data]] = [
        (Entry("", DIR, mode=0o755, mtime_ns=1), None),
        (Entry("f", FILE, mode=0o4755, uid=3000000, gid=123456, uname="u" * 40, gname="grp", size=5,
               mtime_ns=1_600_000_000_123_456_789, atime_ns=-1_500_000_000, ctime_ns=7,
               xattrs={"user.bin": b"\x00\xff\n=", acl.ACCESS_XATTR: acl.text_to_xattr(text_acl)}), _data(b"hello")),
        (Entry(long_name, FILE, size=0), None),
        (Entry("l", SYMLINK, link=long_name), None),
        (Entry("h", HARDLINK, link="f"), None),
        (Entry(os.fsdecode(b"\xff\xfe"), FILE, size=1), _data(b"x")),
        (Entry("c", CHARDEV, rdev=(4095, 1048575)), None),
        (Entry("b", BLOCKDEV, rdev=(8, 1)), None),
        (Entry("p", FIFO, mode=0o600), None),
        (Entry("d/s", FILE, size=100_000, sparse=[(10, 3), (50_000, 5)]), _data(b"abcdefgh")),
        (Entry("D" * 150, DIR), None),
    ]
    raw = _write(entries)
    assert b"hdrcharset" not in raw
    with tarfile.open(fileobj=io.BytesIO(raw), errors="surrogateescape") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [".", "f", long_name, "l", "h", os.fsdecode(b"\xff\xfe"), "c", "b", "p", "d/s", "D" * 150]
        root, f, _, link, hard, odd, char, block, fifo, sparse, long_dir = members
        assert long_dir.isdir()
        assert root.isdir() and root.pax_headers["mtime"] == "0.000000001"
        assert (f.mode, f.uid, f.gid, f.uname, f.gname) == (0o4755, 3000000, 123456, "u" * 40, "grp")
        assert f.pax_headers["mtime"] == "1600000000.123456789" and f.pax_headers["atime"] == "-1.500000000"
        assert f.pax_headers["ctime"] == "0.000000007"
        assert f.pax_headers["SCHILY.acl.access"] == text_acl
        assert f.pax_headers["SCHILY.xattr.user.bin"].encode("utf-8", "surrogateescape") == b"\x00\xff\n="
        assert tar.extractfile(f).read() == b"hello"  # type: ignore[union-attr]
        assert (link.issym(), link.linkname) == (True, long_name)
        assert (hard.islnk(), hard.linkname) == (True, "f")
        assert tar.extractfile(odd).read() == b"x"  # type: ignore[union-attr]
        assert (char.ischr(), char.devmajor, char.devminor) == (True, 4095, 1048575)
        assert (block.isblk(), block.devmajor, block.devminor) == (True, 8, 1)
        assert fifo.isfifo()
        assert sparse.sparse == [(10, 3), (50_000, 5), (100_000, 0)] and sparse.size == 100_000
        content = tar.extractfile(sparse).read()  # type: ignore[union-attr]
        assert content == b"\0" * 10 + b"abc" + b"\0" * (50_000 - 13) + b"defgh" + b"\0" * (100_000 - 50_005)


@pytest.mark.parametrize("length", [*range(85, 105), *range(985, 1005)])
def test_pax_record_lengths_at_digit_boundaries(length: int) -> None:
    value = b"v" * length
    raw = _write([(Entry("f", FILE, xattrs={"user.x": value}), None)])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getmembers()[0].pax_headers["SCHILY.xattr.user.x"] == value.decode()


@pytest.mark.parametrize("entry, content, message", [
    (Entry("f", FILE, size=10), b"short", "content is 5 bytes, its size is 10"),
    (Entry("f", FILE, size=2), b"longer", "longer than its size 2"),
    (Entry("f", FILE, size=10, sparse=[(5, 10)]), b"x" * 10, "malformed sparse map"),
    (Entry("c", CHARDEV), b"", "without major/minor"),
    (Entry("q", "?"), b"", "unknown entry type"),
    (Entry("a", DIR, xattrs={acl.DEFAULT_XATTR: b"\x01\x00\x00\x00"}), b"", "system.posix_acl_default: malformed"),
])
def test_inconsistent_entries_raise(entry: Entry, content: bytes, message: str) -> None:
    with pytest.raises(PaxWriteError, match=message) as info:
        _write([(entry, _data(content))])
    assert 50 <= info.value.exit_code <= 59 and repr(entry.path) in str(info.value)


def test_empty_stream_is_an_empty_archive() -> None:
    raw = _write([])
    assert raw == bytes(tarfile.RECORDSIZE)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        assert tar.getmembers() == []


@pytest.mark.needs_tools("tar")
def test_gnu_tar_extracts_a_sparse_member_that_is_all_hole(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_write([(Entry("hole", FILE, size=3 << 20, sparse=[], mtime_ns=10**18), None),
                                (Entry("after", FILE, size=2), _data(b"ok"))]))
    done = _gnu_extract(archive, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert os.stat(tmp_path / "out" / "hole").st_size == 3 << 20
    assert os.stat(tmp_path / "out" / "hole").st_mtime_ns == 10**18
    assert (tmp_path / "out" / "after").read_bytes() == b"ok"
