"""Tar and directory backups through the command line: byte-identical tars, trees with
every piece of metadata, the files cache, browsing, and hostile archives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dedupe_testing import RunCli, assert_clean_error

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tar"
ROOT = os.geteuid() == 0


def make_tree(root: Path) -> None:
    """A tree with every file type and plenty of metadata."""
    root.mkdir()
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello\n")
    (root / "dir" / "big.bin").write_bytes(os.urandom(3_000_000))
    (root / "dir" / "sub" / "ünïcödé ✓").write_text("unicode")
    (root / ("long" * 60)[:250]).write_text("long name")
    os.symlink("small.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("missing", root / "dangling")
    os.link(root / "small.txt", root / "dir" / "hardlink")
    os.mkfifo(root / "fifo")
    with open(root / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"data in the middle")
        f.truncate(10 << 20)
    os.setxattr(root / "small.txt", "user.note", b"xattr value")
    os.chmod(root / "dir", 0o1755)
    os.utime(root / "small.txt", ns=(1_000_000_123, 981_173_106_123_456_789))
    if ROOT:
        os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
        os.chown(root / "dir" / "big.bin", 1000, 2000)
        os.chmod(root / "dir" / "big.bin", 0o4755)
        os.setxattr(root / "small.txt", "trusted.t", b"trusted")
        if shutil.which("setfacl"):
            subprocess.run(["setfacl", "-m", "u:1234:r--", str(root / "small.txt")], check=True)
            subprocess.run(["setfacl", "-d", "-m", "g:55:rwx", str(root / "dir")], check=True)


def snapshot(root: Path, ns: bool = True) -> dict[str, tuple]:  # type: ignore[type-arg]
    """Every piece of metadata and content of a tree, for comparison (mtimes to the
    second when ``ns`` is false, as formats without PAX times keep them)."""
    out = {}
    inodes: dict[int, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            link = os.readlink(p) if os.path.islink(p) else None
            content = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            xattrs = {} if p.is_symlink() else {k: os.getxattr(p, k) for k in os.listxattr(p)}
            first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 and not p.is_dir() else None
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_rdev,
                        (st.st_mtime_ns if ns else st.st_mtime_ns // 10**9 * 10**9) if not p.is_dir() else None, link, content, sorted(xattrs.items()),
                        first != rel if first else None)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    make_tree(root)
    return root


def ids(dedupe: RunCli) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json").stdout)]


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar"])
def test_gnu_tar_round_trips_byte_for_byte(dedupe: RunCli, tree: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "ustar":  # ustar cannot hold long names, sparse files, xattrs or ACLs
        for p in tree.iterdir():
            if len(p.name) > 99:
                p.unlink()
        for p in [tree, *tree.rglob("*")]:
            if not p.is_symlink():
                for name in os.listxattr(p):
                    os.removexattr(p, name)
        extra: list[str] = []
    else:
        extra = ["--xattrs", "--xattrs-include=*", "--acls", "--sparse"]
    tar = tmp_path / "t.tar"
    subprocess.run(["tar", f"--format={fmt}", *extra, "-cf", str(tar), "-C", str(tree), "."], check=True)
    dedupe("init")
    dedupe("backup", "tar", "t", str(tar))
    bid = ids(dedupe)[0]
    assert dedupe("restore", bid, "--stdout").stdout == tar.read_bytes()
    out = tmp_path / "out"
    dedupe("restore", bid, "--to-dir", str(out))
    assert snapshot(out, ns=fmt == "posix") == snapshot(tree, ns=fmt == "posix")
    if fmt != "ustar":  # sparse files stay sparse through our directory restore
        assert os.stat(out / "sparse").st_blocks * 512 < 1 << 20


def test_directory_round_trip_keeps_all_metadata(dedupe: RunCli, tree: Path, tmp_path: Path) -> None:
    dedupe("init")
    first = json.loads(dedupe("backup", "dir", "d", str(tree), "--json").stdout)
    assert first["warnings"] == []
    out = tmp_path / "out"
    dedupe("restore", first["id"], "--to-dir", str(out))
    assert snapshot(out) == snapshot(tree)
    assert os.stat(out / "sparse").st_blocks * 512 < 1 << 20
    # a PAX tar of the tree that GNU tar extracts to the same tree
    tarfile_ = tmp_path / "tree.tar"
    dedupe("restore", first["id"], "--to-file", str(tarfile_))
    ext = tmp_path / "ext"
    ext.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", str(tarfile_), "-C", str(ext)],
                   check=True)
    a, b = snapshot(ext), snapshot(tree)
    assert {k: v[:7] + v[8:] for k, v in a.items() if k != "sparse"} == \
        {k: v[:7] + v[8:] for k, v in b.items() if k != "sparse"}
    assert (ext / "sparse").read_bytes() == (tree / "sparse").read_bytes()


def test_restore_selected_paths(dedupe: RunCli, tree: Path, tmp_path: Path) -> None:
    dedupe("init")
    dedupe("backup", "dir", "d", str(tree))
    out = tmp_path / "out"
    dedupe("restore", ids(dedupe)[0], "--to-dir", str(out), "--path", "dir/sub")
    assert (out / "dir" / "sub" / "ünïcödé ✓").read_text() == "unicode"
    assert not (out / "small.txt").exists() and not (out / "dir" / "big.bin").exists()


def test_a_path_that_matches_nothing_is_an_error(dedupe: RunCli, tree: Path, tmp_path: Path) -> None:
    dedupe("init")
    dedupe("backup", "dir", "d", str(tree))
    bid = ids(dedupe)[0]
    out = tmp_path / "out"
    assert_clean_error(dedupe("restore", bid, "--to-dir", str(out), "--path", "dir/sub/nothere", check=False),
                       33, "dir/sub/nothere", "nearest existing parent: dir/sub")
    assert not out.exists() or not any(out.iterdir())
    assert_clean_error(dedupe("ls", bid, "nothere", check=False), 33, "nothere", "parent: .")
    assert_clean_error(dedupe("diff", bid, bid, "dir/x", check=False), 33, "dir/x", "parent: dir")
    dedupe("restore", bid, "--to-dir", str(out), "--path", "/dir/sub")  # a leading / is the tree's root
    assert (out / "dir" / "sub" / "ünïcödé ✓").read_text() == "unicode"
    assert_clean_error(dedupe("ls", bid, "x", "--snapshot", "s", check=False), 34, "--snapshot")


def test_unchanged_tree_is_not_read_again_and_changes_are_found(dedupe: RunCli, tree: Path) -> None:
    dedupe("init")
    dedupe("backup", "dir", "d", str(tree))
    again = json.loads(dedupe("backup", "dir", "d", str(tree), "--json").stdout)
    assert again["new_bytes"] == 0  # same content and same metadata: nothing new at all
    (tree / "dir" / "big.bin").write_bytes(os.urandom(3_000_000))
    (tree / "added").write_text("new file")
    (tree / "empty").unlink()
    third = json.loads(dedupe("backup", "dir", "d", str(tree), "--json").stdout)
    assert 3_000_000 <= third["new_bytes"] < 3_300_000
    first_id, _, third_id = ids(dedupe)
    changes = {c["path"]: c for c in json.loads(dedupe("diff", first_id, third_id, "--json").stdout)}
    assert changes["added"]["change"] == "added"
    assert changes["empty"]["change"] == "removed"
    assert changes["dir/big.bin"]["change"] == "changed" and "content" in changes["dir/big.bin"]["fields"]
    assert "small.txt" not in changes


def test_ls(dedupe: RunCli, tree: Path) -> None:
    dedupe("init")
    dedupe("backup", "dir", "d", str(tree))
    rows = {r["path"]: r for r in json.loads(dedupe("ls", ids(dedupe)[0], "--json").stdout)}
    assert rows["dir/big.bin"]["size"] == 3_000_000 and rows["dir/big.bin"]["type"] == "f"
    assert rows["rel-link"]["link"] == "small.txt" and rows["fifo"]["type"] == "p"
    text = dedupe("ls", ids(dedupe)[0], "dir").stdout.decode()
    assert "big.bin" in text and "small.txt" not in text


def test_file_changing_during_backup_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI in-process, with the file appended to right after its first block is read."""
    from click.testing import CliRunner

    from dedupe import cli
    from dedupe.sources import directory

    root = tmp_path / "live"
    root.mkdir()
    (root / "stable").write_text("stable")
    grower = root / "growing"
    grower.write_bytes(b"x" * 3_000_000)
    real_pread = os.pread
    real_preadv = os.preadv
    grown = []

    def grow(fd: int) -> None:
        if not grown and os.fstat(fd).st_size == 3_000_000:
            grown.append(True)
            with open(grower, "ab") as f:
                f.write(b"appended while being read")

    def pread(fd: int, n: int, offset: int) -> bytes:
        data = real_pread(fd, n, offset)
        grow(fd)
        return data

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:  # whole files are read into buffers
        n = real_preadv(fd, buffers, offset)
        grow(fd)
        return n

    monkeypatch.setattr(directory.os, "pread", pread)
    monkeypatch.setattr(directory.os, "preadv", preadv)
    repo = str(tmp_path / "repo")
    runner = CliRunner()
    assert runner.invoke(cli.main, ["init", "--repo", repo]).exit_code == 0
    r = runner.invoke(cli.main, ["backup", "dir", "d", str(root), "--repo", repo])
    assert grown and r.exit_code == 3, r.output
    assert "growing" in r.output and "warning" in r.output
    assert "Traceback" not in r.output
    listed = runner.invoke(cli.main, ["list", "--json", "--repo", repo])
    assert len(json.loads(listed.output)) == 1  # the backup still exists and is complete
    assert runner.invoke(cli.main, ["check", "--read-data", "--repo", repo]).exit_code == 0


def test_backup_of_a_missing_directory(dedupe: RunCli, tmp_path: Path) -> None:
    dedupe("init")
    p = dedupe("backup", "dir", "d", str(tmp_path / "nope"), check=False)
    assert p.returncode == 50 and b"nope" in p.stderr and b"Traceback" not in p.stderr
    assert ids(dedupe) == []


TRAVERSAL = sorted(p.name for p in FIXTURES.glob("traversal-*.tar"))
BROKEN = sorted(p.name for p in FIXTURES.glob("*.tar*")
                if p.name.split("-")[0] in ("truncated", "badchecksum.tar", "impossible", "pax", "not")
                or p.name in ("badchecksum.tar", "bad-field-mode.tar", "sparse-bad-map.tar", "gzip.tar.gz",
                              "short-not-a-tar.tar", "dangling-longname.tar"))


@pytest.mark.parametrize("name", TRAVERSAL)
def test_hostile_names_back_up_faithfully_but_never_escape(dedupe: RunCli, tmp_path: Path, name: str) -> None:
    dedupe("init")
    data = (FIXTURES / name).read_bytes()
    dedupe("backup", "tar", "t", "-", input=data)
    bid = ids(dedupe)[0]
    assert dedupe("restore", bid, "--stdout").stdout == data  # byte-faithful
    box = tmp_path / "box"
    target = box / "target"
    box.mkdir()
    p = dedupe("restore", bid, "--to-dir", str(target), check=False)
    assert p.returncode == 51, p.stderr
    assert_clean_error(p, 51)
    outside = [q for q in box.rglob("*") if target not in q.parents and q != target]
    assert outside == [], outside
    assert not Path("/etc/evil").exists()


@pytest.mark.parametrize("name", BROKEN)
def test_broken_archives_are_refused_and_nothing_is_committed(dedupe: RunCli, name: str) -> None:
    dedupe("init")
    p = dedupe("backup", "tar", "t", str(FIXTURES / name), check=False)
    assert 40 <= p.returncode <= 49, (p.returncode, p.stderr)
    err = p.stderr.decode()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert ids(dedupe) == []
    assert dedupe("check").returncode == 0


def test_excludes_leave_out_what_they_name_and_nothing_else(dedupe: RunCli, tree: Path, tmp_path: Path) -> None:
    from dedupe.sources.excludes import CACHEDIR_SIGNATURE

    (tree / "dir" / "sub" / "scratch.tmp").write_text("scratch")
    (tree / "build").mkdir()
    (tree / "build" / "out.o").write_bytes(os.urandom(100_000))
    (tree / "dir" / "build").mkdir()  # not anchored at the root: kept
    (tree / "dir" / "build" / "keep.txt").write_text("kept")
    cache = tree / "dir" / "cache"
    cache.mkdir()
    (cache / "CACHEDIR.TAG").write_bytes(CACHEDIR_SIGNATURE + b"\n")
    (cache / "blob").write_bytes(os.urandom(200_000))
    patterns = tmp_path / "excludes"
    patterns.write_text("# built files\n/build\n")
    dedupe("init")
    done = json.loads(dedupe("backup", "dir", "d", str(tree), "--exclude", "*.tmp", "-e", "/abs-link",
                             "--exclude-from", str(patterns), "--exclude-caches", "--json").stdout)
    stored = {r["path"] for r in json.loads(dedupe("ls", done["id"], "--json").stdout)}
    left_out = {"dir/sub/scratch.tmp", "build", "build/out.o", "abs-link", "dir/cache/CACHEDIR.TAG", "dir/cache/blob"}
    assert not stored & left_out
    assert {"dir/cache", "dir/build/keep.txt", "small.txt", "rel-link", "dir/sub/ünïcödé ✓"} <= stored
    assert done["new_bytes"] < 3_000_000 + 200_000  # neither the cache blob nor out.o was read
    meta = json.loads(dedupe("show", done["id"], "--json").stdout)["meta"]
    assert meta["excludes"] == ["*.tmp", "/abs-link", "/build"] and meta["exclude_caches"] is True
    out = tmp_path / "out"
    dedupe("restore", done["id"], "--to-dir", str(out))
    kept = {k: v for k, v in snapshot(tree).items()
            if not any(k == p or k.startswith(p + "/") for p in left_out)}
    assert snapshot(out) == kept


def test_a_bad_exclude_is_refused_before_anything_is_stored(dedupe: RunCli, tree: Path, tmp_path: Path) -> None:
    dedupe("init")
    assert_clean_error(dedupe("backup", "dir", "d", str(tree), "--exclude", "[oops", check=False), 2,
                       "'[oops'", "closing")
    assert_clean_error(dedupe("backup", "dir", "d", str(tree), "--exclude-from", str(tmp_path / "nope"),
                              check=False), 2, "nope")
    assert ids(dedupe) == []
