"""dedupe.sinks.directory.restore_tree: faithful round trips, and never a write outside the target."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedupe import acl
from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.sinks.directory import RestoreError, RestoreResult, UnsafePathError, restore_tree
from dedupe.sources.directory import walk_tree
from dedupe_testing import require_root, require_tools

_spec = importlib.util.spec_from_file_location("tree_helpers", Path(__file__).with_name("test_directory_walk.py"))
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.needs_root("owners, devices, trusted.* xattrs")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "tar"

Data = Callable[[], Iterator[bytes]] | None


def _data(content: bytes) -> Data:
    return lambda: iter([content[i:i + 7000] for i in range(0, len(content), 7000)])


def _walk_stream(root: Path) -> Iterator[tuple[Entry, Data]]:
    for w in walk_tree(root):
        yield w.entry, w.iter_data


# -- round trip -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_root("owners, devices, trusted.* xattrs")
    require_tools("setfacl", "getfacl")
    root = tmp_path_factory.mktemp("restore") / "tree"
    helpers.build_full_tree(root)
    return root


def test_walk_then_restore_reproduces_every_field(full_tree: Path, tmp_path: Path) -> None:
    before = helpers.snapshot(full_tree)
    warnings: list[str] = []
    result = restore_tree(tmp_path / "out", _walk_stream(full_tree), on_warning=warnings.append)
    assert warnings == [] and result.warnings == []
    after = helpers.snapshot(tmp_path / "out")
    assert after.keys() == before.keys()
    for path in before:
        assert after[path] == before[path], path
    assert result.restored == len(before)  # the root entry counts as one
    assert helpers.snapshot(full_tree) == before  # the walk changed nothing


def test_restored_sparse_files_keep_their_holes(full_tree: Path, tmp_path: Path) -> None:
    restore_tree(tmp_path / "out", _walk_stream(full_tree))
    for name, most in (("sparse", 64 << 10), ("sparse_tail_hole", 64 << 10), ("all_hole", 0)):
        st = os.stat(tmp_path / "out" / name)
        assert st.st_size == os.stat(full_tree / name).st_size
        assert st.st_blocks * 512 <= most, name
    assert (tmp_path / "out" / "sparse").read_bytes() == (full_tree / "sparse").read_bytes()


def test_restored_hardlinks_share_an_inode(full_tree: Path, tmp_path: Path) -> None:
    restore_tree(tmp_path / "out", _walk_stream(full_tree))
    inodes = {os.stat(tmp_path / "out" / p).st_ino for p in ("hl_a", "links/hl_b", "links/hl_c")}
    assert len(inodes) == 1 and os.stat(tmp_path / "out" / "hl_a").st_nlink == 3


def test_restored_acls_read_the_same_with_getfacl(full_tree: Path, tmp_path: Path) -> None:
    restore_tree(tmp_path / "out", _walk_stream(full_tree))

    def getfacl(root: Path) -> str:
        names = ["acl_file", "acl_dir", "acl_dir/inherited", "file"]
        return subprocess.run(["getfacl", "-n", *names], cwd=root, check=True, capture_output=True, text=True).stdout

    assert getfacl(tmp_path / "out") == getfacl(full_tree)
    assert "default:user:1000:rwx" in getfacl(tmp_path / "out")


def test_restore_only_some_paths(full_tree: Path, tmp_path: Path) -> None:
    result = restore_tree(tmp_path / "out", _walk_stream(full_tree), paths=["links", "big_ids/f"])
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["big_ids", "links"]
    assert sorted(os.listdir(out / "links")) == ["up"]
    # hl_b and hl_c are further names of hl_a, which was not selected: warnings, not failures
    assert [w.split(":")[0] for w in result.warnings] == ["links/hl_b", "links/hl_c"]
    assert all("hard link target 'hl_a' was not restored" in w for w in result.warnings)
    assert os.stat(out / "big_ids" / "f").st_uid == 123456
    assert result.skipped > 0


def test_restore_into_an_existing_tree_replaces_files_and_keeps_directories(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "old").write_bytes(b"old")
    (out / "f").write_bytes(b"previous content")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"do not touch")
    os.link(elsewhere, out / "linked")  # a file in the target that is also a file outside it
    os.symlink(str(elsewhere), out / "was_symlink")
    entries = [
        (Entry("d", DIR, mode=0o750, mtime_ns=10**18), None),
        (Entry("f", FILE, size=3, mtime_ns=10**18), _data(b"new")),
        (Entry("linked", FILE, size=7, mtime_ns=10**18), _data(b"updated")),
        (Entry("was_symlink", FILE, size=4, mtime_ns=10**18), _data(b"file")),
    ]
    restore_tree(out, entries)
    assert (out / "d" / "old").read_bytes() == b"old" and stat.S_IMODE(os.stat(out / "d").st_mode) == 0o750
    assert (out / "f").read_bytes() == b"new"
    assert (out / "linked").read_bytes() == b"updated" and elsewhere.read_bytes() == b"do not touch"
    assert not (out / "was_symlink").is_symlink() and (out / "was_symlink").read_bytes() == b"file"


def test_a_file_is_created_first_and_what_is_in_its_way_is_still_judged(tmp_path: Path) -> None:
    """Files are created with O_EXCL before any lookup: whatever is in the way (a dangling
    symlink, a directory, a symlink this restore made) still meets the same rules."""
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "never-created"
    os.symlink(str(outside), out / "dangling")
    (out / "dir").mkdir()
    restore_tree(out, [(Entry("dangling", FILE, size=3), _data(b"new"))])
    assert not (out / "dangling").is_symlink() and (out / "dangling").read_bytes() == b"new"
    assert not outside.exists()
    with pytest.raises(UnsafePathError, match="would replace the directory"):
        restore_tree(out, [(Entry("dir", FILE, size=1), _data(b"x"))])
    with pytest.raises(UnsafePathError, match="would replace the symlink"):
        restore_tree(out, [(Entry("s", SYMLINK, link="elsewhere"), None), (Entry("s", FILE, size=1), _data(b"x"))])
    assert (out / "s").is_symlink() and not (out / "elsewhere").exists()


def test_entries_in_any_order_and_implicit_parents(tmp_path: Path) -> None:
    entries = [
        (Entry("a/b/c", FILE, size=1, mode=0o600, mtime_ns=5 * 10**17), _data(b"c")),
        (Entry("a", DIR, mode=0o511, mtime_ns=6 * 10**17), None),
        (Entry("", DIR, mode=0o701, mtime_ns=7 * 10**17), None),
    ]
    restore_tree(tmp_path / "out", entries)
    out = tmp_path / "out"
    assert (out / "a" / "b" / "c").read_bytes() == b"c"
    assert stat.S_IMODE(os.stat(out / "a").st_mode) == 0o511 and os.stat(out / "a").st_mtime_ns == 6 * 10**17
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o701 and os.stat(out).st_mtime_ns == 7 * 10**17


def test_numeric_owner_false_uses_names(tmp_path: Path) -> None:
    require_root("chown")
    entries = [(Entry("f", FILE, uid=4321, gid=4321, uname="root", gname="no-such-group-here"), _data(b""))]
    restore_tree(tmp_path / "out", entries, numeric_owner=False)
    st = os.stat(tmp_path / "out" / "f")
    assert (st.st_uid, st.st_gid) == (0, 4321)


@pytest.mark.parametrize("entry, content, message", [
    (Entry("f", FILE, size=10), b"short", "ends 5 bytes early"),
    (Entry("f", FILE, size=2), b"longer", "longer than the entry"),
    (Entry("f", FILE, size=100, sparse=[(50, 10), (40, 10)]), b"x" * 20, "malformed sparse map"),
    (Entry("f", FILE, size=10, sparse=[(5, 10)]), b"x" * 10, "malformed sparse map"),
    (Entry("d", CHARDEV), b"", "without major/minor"),
    (Entry("q", "?"), b"", "unknown entry type"),
])
def test_malformed_entries_raise_restore_error(tmp_path: Path, entry: Entry, content: bytes, message: str) -> None:
    with pytest.raises(RestoreError, match=message) as info:
        restore_tree(tmp_path / "out", [(entry, _data(content))])
    assert 50 <= info.value.exit_code <= 59 and repr(entry.path) in str(info.value)


def test_a_file_in_the_way_of_a_parent_is_a_restore_error(tmp_path: Path) -> None:
    entries = [(Entry("a", FILE), None), (Entry("a/b", FILE), None)]
    with pytest.raises(RestoreError, match="'a' is not a directory"):
        restore_tree(tmp_path / "out", entries)


def test_many_deep_directories_keep_few_descriptors_open(tmp_path: Path) -> None:
    parts = ["d"] * 300
    entries = [(Entry("/".join(parts[:i]), DIR, mode=0o755, mtime_ns=i), None) for i in range(1, 301)]
    entries += [(Entry("/".join(parts) + "/f", FILE, size=2), _data(b"ok"))]
    before = len(os.listdir("/proc/self/fd"))
    restore_tree(tmp_path / "out", entries)
    assert len(os.listdir("/proc/self/fd")) == before
    fd = os.open(tmp_path / "out", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(300):
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    assert os.stat(fd).st_mtime_ns == 300
    with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as f:
        assert f.read() == b"ok"
    os.close(fd)


# -- hostile entries --------------------------------------------------------------------

@pytest.fixture
def arena(tmp_path: Path) -> Path:
    """tmp_path/target (missing) next to tmp_path/sentinel (a directory that must not change)."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"secret")
    os.symlink("secret", sentinel / "a-link")
    return tmp_path


def _outside(arena: Path) -> dict[str, Any]:
    """Everything in the arena except the target."""
    return {p: (os.lstat(p).st_mode, os.lstat(p).st_mtime_ns, p.read_bytes() if p.is_file() and not p.is_symlink()
                else None) for p in sorted(arena.rglob("*")) if "target" not in p.relative_to(arena).parts}


S = str  # the sentinel's absolute path is filled in by the test


HOSTILE: list[tuple[str, list[tuple[Entry, bytes | None]], str]] = [
    ("absolute", [(Entry("{S}/evil", FILE, size=4), b"evil")], "{S}/evil"),
    ("dotdot", [(Entry("../sentinel/evil", FILE, size=4), b"evil")], "../sentinel/evil"),
    ("nested dotdot", [(Entry("a", DIR), None), (Entry("a/../../sentinel/evil", FILE, size=4), b"evil")],
     "a/../../sentinel/evil"),
    ("trailing dotdot", [(Entry("a/..", DIR), None)], "a/.."),
    ("NUL", [(Entry("a\0b", FILE, size=4), b"evil")], "a\\x00b"),
    ("symlink parent, absolute", [(Entry("link", SYMLINK, link="{S}"), None),
                                  (Entry("link/evil", FILE, size=4), b"evil")], "link/evil"),
    ("symlink parent, relative", [(Entry("d", DIR), None), (Entry("d/l", SYMLINK, link=".."), None),
                                  (Entry("d/l/d/l/x", FILE, size=4), b"evil")], "d/l/d/l/x"),
    ("file over a planted symlink", [(Entry("l", SYMLINK, link="{S}/secret"), None),
                                     (Entry("l", FILE, size=4), b"evil")], "'l'"),
    ("dir over a planted symlink", [(Entry("l", SYMLINK, link="{S}"), None), (Entry("l", DIR), None)], "'l'"),
    ("hardlink over a planted symlink", [(Entry("f", FILE, size=1), b"x"), (Entry("l", SYMLINK, link="{S}/secret"),
                                         None), (Entry("l", HARDLINK, link="f"), None)], "'l'"),
    ("hardlink absolute", [(Entry("h", HARDLINK, link="{S}/secret"), None)], "'h'"),
    ("hardlink dotdot", [(Entry("h", HARDLINK, link="../sentinel/secret"), None)], "'h'"),
    ("hardlink NUL", [(Entry("h", HARDLINK, link="f\0"), None)], "'h'"),
    ("hardlink through a symlink", [(Entry("l", SYMLINK, link="{S}"), None),
                                    (Entry("h", HARDLINK, link="l/secret"), None)], "'h'"),
    ("hardlink to a directory", [(Entry("d", DIR), None), (Entry("h", HARDLINK, link="d"), None)], "'h'"),
    ("file over a directory", [(Entry("d", DIR), None), (Entry("d/x", FILE), b""), (Entry("d", FILE, size=1), b"x")],
     "'d'"),
    ("symlink over a directory", [(Entry("d", DIR), None), (Entry("d", SYMLINK, link="{S}"), None)], "'d'"),
    ("root as a file", [(Entry("", FILE, size=1), b"x")], "''"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_entries_are_refused(arena: Path, case: tuple[str, list[tuple[Entry, bytes | None]], str]) -> None:
    _, raw, member = case
    sentinel = str(arena / "sentinel")
    entries = [(e.replace(path=e.path.replace("{S}", sentinel), link=e.link.replace("{S}", sentinel)),
                _data(c) if c is not None else None) for e, c in raw]
    before = _outside(arena)
    with pytest.raises(UnsafePathError) as info:
        restore_tree(arena / "target", entries)
    assert member.replace("{S}", sentinel) in str(info.value)
    assert 50 <= info.value.exit_code <= 59
    assert _outside(arena) == before


def test_symlink_already_in_the_target_is_not_written_through(arena: Path) -> None:
    target = arena / "target"
    target.mkdir()
    os.symlink(str(arena / "sentinel"), target / "planted")
    before = _outside(arena)
    with pytest.raises(UnsafePathError, match="'planted' is a symlink"):
        restore_tree(target, [(Entry("planted/secret", FILE, size=4), _data(b"evil"))])
    with pytest.raises(UnsafePathError):
        restore_tree(target, [(Entry("h", HARDLINK, link="planted/secret"), None)])
    assert _outside(arena) == before


def test_allowed_symlinks_are_created_verbatim_and_never_followed(arena: Path) -> None:
    sentinel = str(arena / "sentinel")
    entries = [
        (Entry("abs", SYMLINK, link=sentinel + "/secret"), None),
        (Entry("dangling", SYMLINK, link="no/such"), None),
        (Entry("d", DIR), None),
        (Entry("d/within", SYMLINK, link="../abs"), None),
        (Entry("d/dotted", SYMLINK, link="./.././d/../x"), None),
        (Entry("d/up", SYMLINK, link="../../sentinel"), None),  # rule 3: one rule, relative or absolute
        (Entry("abs", SYMLINK, link="/replaced"), None),  # a symlink may replace a symlink
        (Entry("hl", HARDLINK, link="dangling"), None),  # a hard link to a symlink is the symlink itself
    ]
    before = _outside(arena)
    restore_tree(arena / "target", entries)
    target = arena / "target"
    assert os.readlink(target / "abs") == "/replaced"
    assert os.readlink(target / "dangling") == "no/such" and os.readlink(target / "hl") == "no/such"
    assert os.lstat(target / "hl").st_ino == os.lstat(target / "dangling").st_ino
    assert os.readlink(target / "d" / "within") == "../abs"
    assert os.readlink(target / "d" / "up") == "../../sentinel"
    assert _outside(arena) == before


def _tar_entries(path: Path) -> Iterator[tuple[Entry, Data]]:
    """A small adapter: Python's tarfile (stream mode) to (Entry, data), names kept verbatim."""
    kinds = {tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.DIRTYPE: DIR, tarfile.SYMTYPE: SYMLINK,
             tarfile.LNKTYPE: HARDLINK, tarfile.CHRTYPE: CHARDEV, tarfile.BLKTYPE: BLOCKDEV, tarfile.FIFOTYPE: FIFO}
    with tarfile.open(path, "r|") as tar:
        for info in tar:
            content = tar.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            entry = Entry(path=info.name, type=kinds[info.type], mode=info.mode, uid=info.uid, gid=info.gid,
                          mtime_ns=int(info.mtime * 10**9), size=len(content), link=info.linkname)
            yield entry, _data(content)


TRAVERSAL = sorted(FIXTURES.glob("traversal-*.tar"))


@pytest.mark.skipif(not TRAVERSAL, reason="no tests/fixtures/tar/traversal-*.tar yet")
@pytest.mark.parametrize("fixture", TRAVERSAL, ids=[p.name for p in TRAVERSAL])
def test_traversal_fixtures_are_refused(tmp_path: Path, fixture: Path) -> None:
    work = tmp_path / "a" / "b"  # deep enough that '../..' stays inside tmp_path
    work.mkdir(parents=True)
    (tmp_path / "outside.txt").write_bytes(b"outside")
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    with pytest.raises(UnsafePathError):
        restore_tree(work / "target", _tar_entries(fixture))
    after = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    assert {p: v for p, v in after.items() if "target" not in p.parts} == before


# -- without privileges -----------------------------------------------------------------

def _as_nobody(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child that dropped to nobody; return its repr'd result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, repr(work()).encode())
            status = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(write, repr(e).encode())
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        output = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert status == 0, output
    return eval(output, {"RestoreResult": RestoreResult})  # our own repr


@needs_root
def test_restore_as_an_unprivileged_user_warns_instead_of_failing(tmp_path: Path) -> None:
    base = Path("/tmp") / f"dedupe-nobody-{os.getpid()}"
    base.mkdir(mode=0o755)
    os.chown(base, 65534, 65534)
    try:
        entries = [
            (Entry("", DIR, mode=0o755, mtime_ns=10**18), None),
            (Entry("ro", DIR, mode=0o555, mtime_ns=2 * 10**18), None),
            (Entry("ro/owned", FILE, uid=1000, gid=2000, mode=0o4755, size=3, mtime_ns=3 * 10**18,
                   xattrs={"user.ok": b"yes", "trusted.no": b"no"}), _data(b"abc")),
            (Entry("ro/null", CHARDEV, rdev=(1, 3), mode=0o666), None),
            (Entry("ro/fifo", FIFO, mode=0o640, uid=65534, gid=65534), None),
            (Entry("ro/link", SYMLINK, link="owned", uid=1000), None),
            (Entry("mine", FILE, uid=65534, gid=65534, size=2, mtime_ns=4 * 10**18), _data(b"ok")),
        ]

        def work() -> RestoreResult:
            return restore_tree(base / "out", entries)

        result = _as_nobody(work)
        out = base / "out"
        assert (out / "ro" / "owned").read_bytes() == b"abc"
        assert stat.S_IMODE(os.stat(out / "ro").st_mode) == 0o555
        assert os.stat(out / "ro").st_mtime_ns == 2 * 10**18
        assert os.stat(out / "ro" / "owned").st_mtime_ns == 3 * 10**18
        assert os.stat(out / "ro" / "owned").st_uid == 65534
        assert stat.S_ISFIFO(os.stat(out / "ro" / "fifo").st_mode)
        assert not (out / "ro" / "null").exists()
        assert (out / "mine").read_bytes() == b"ok"
        kinds = "\n".join(result.warnings)
        assert "owners not set on 4 entries (first: .)" in kinds  # the root, ro, ro/owned, ro/link
        assert "device nodes not created on 1 entry (first: ro/null)" in kinds
        assert "trusted.* extended attributes not set on 1 entry (first: ro/owned)" in kinds
        assert len(result.warnings) == 3 + ("user.*" in kinds)  # user.* only where the fs lacks them
        assert result.skipped == 1
    finally:
        shutil.rmtree(base)


@needs_root
def test_trusted_xattrs_and_devices_as_root(tmp_path: Path) -> None:
    entries = [
        (Entry("f", FILE, size=0, xattrs={"trusted.t": b"\x00\x01", acl.ACCESS_XATTR:
                                           acl.text_to_xattr("user::rw-,user:7:r--,group::r--,mask::r--,other::---")}),
         None),
        (Entry("b", BLOCKDEV, rdev=(8, 17), mode=0o660, uid=0, gid=6), None),
    ]
    result = restore_tree(tmp_path / "out", entries)
    assert result.warnings == []
    assert os.getxattr(tmp_path / "out" / "f", "trusted.t") == b"\x00\x01"
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "f").st_mode) == 0o644  # the mode wins: mask r--
    assert "user:7:r--" in subprocess.run(["getfacl", "-n", "f"], cwd=tmp_path / "out", capture_output=True,
                                          text=True, check=True).stdout
    st = os.stat(tmp_path / "out" / "b")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev), st.st_gid) == (8, 17, 6)


# -- generated hostile streams ----------------------------------------------------------

_components = st.sampled_from(["a", "b", "l", "..", ".", ""])
_names = st.builds(lambda lead, parts: lead + "/".join(parts), st.sampled_from(["", "", "", "/", "./"]),
                   st.lists(_components, min_size=1, max_size=4))
_links = st.sampled_from(["a", "l", "..", "../..", "a/../..", "l/..", ".", "{S}", "{S}/secret", "/", "b/../../x",
                          "../sentinel/secret", "a/b"])
_kinds = st.sampled_from([FILE, FILE, DIR, DIR, SYMLINK, SYMLINK, HARDLINK, FIFO])
_streams = st.lists(st.tuples(_names, _kinds, _links), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=_streams)
def test_generated_streams_never_touch_anything_outside_the_target(tmp_path: Path,
                                                                    stream: list[tuple[str, str, str]]) -> None:
    arena = Path(tempfile.mkdtemp(dir=tmp_path))
    sentinel = arena / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"secret")
    before = _outside(arena)
    entries = [(Entry(name, kind, size=4 if kind == FILE else 0, link=link.replace("{S}", str(sentinel))),
                _data(b"evil") if kind == FILE else None) for name, kind, link in stream]
    try:
        restore_tree(arena / "target", entries)
    except (UnsafePathError, RestoreError):
        pass
    assert sorted(os.listdir(arena)) == ["sentinel", "target"]
    assert _outside(arena) == before
    shutil.rmtree(arena)


# -- the same rule for a tar written by restore --to-file / --stdout (issue #18, point 6) --

_TAR_ALLOWS = {"hardlink to a directory", "file over a directory", "symlink over a directory", "root as a file"}


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_tar_names_refuse_what_a_directory_restore_refuses(case: tuple[str, list[tuple[Entry, bytes | None]], str]) -> None:
    """What --to-dir refuses because of names, a written tar refuses too (what it allows
    is what only a file system can judge: a directory there already, the root)."""
    from dedupe.sinks.directory import TarNames
    name, raw, member = case
    names = TarNames()
    entries = [e.replace(path=e.path.replace("{S}", "/s"), link=e.link.replace("{S}", "/s")) for e, _ in raw]
    if name in _TAR_ALLOWS:
        for e in entries:
            if e.path:
                names.check(e)
        return
    with pytest.raises(UnsafePathError) as info:
        for e in entries:
            names.check(e)
    assert member.replace("{S}", "/s") in str(info.value) and info.value.exit_code == 51


def test_tar_names_allow_what_a_directory_restore_allows() -> None:
    from dedupe.sinks.directory import TarNames
    names = TarNames()
    for e in [Entry("abs", SYMLINK, link="/etc/passwd"), Entry("d", DIR), Entry("d/up", SYMLINK, link="../../x"),
              Entry("abs", SYMLINK, link="/replaced"), Entry("hl", HARDLINK, link="abs"), Entry("./d//f", FILE)]:
        names.check(e)
