"""``dedupe mount`` through a real FUSE mount: trees as stored (find, cat, cmp, diff -r
against the original), LXD-free kinds (tar, directory, stream), reads that fetch only
the chunks they need, new backups appearing, and ending with a reader open."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dedupe import api
from dedupe.mount.fs import BadMountPoint, DedupeFS, FuseUnavailable, check_mount_point, mount as fuse_mount
from dedupe_testing import ROOT, RunCli, assert_clean_error
from mount.conftest import mounted, require_fuse


def make_tree(root: Path) -> None:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello\n")
    (root / "dir" / "big.bin").write_bytes(os.urandom(5_000_000))
    for i in range(300):
        (root / "dir" / "sub" / f"f{i:03}").write_bytes(os.urandom(i * 37))
    (root / "dir" / "sub" / "ünïcödé ✓").write_text("unicode")
    os.symlink("small.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("missing", root / "dangling")
    os.link(root / "small.txt", root / "dir" / "hardlink")
    with open(root / "sparse", "wb") as f:
        f.seek(3 << 20)
        f.write(b"data in the middle")
        f.truncate(6 << 20)
    os.setxattr(root / "small.txt", "user.note", b"xattr value")
    os.chmod(root / "dir", 0o1755)
    os.chmod(root / "small.txt", 0o640)
    os.utime(root / "small.txt", ns=(1_000_000_123, 981_173_106_123_456_789))
    if ROOT:
        os.chown(root / "dir" / "big.bin", 1000, 2000)
        os.chmod(root / "dir" / "big.bin", 0o4755)


def listing(root: Path, ns: bool = True) -> dict[str, tuple[object, ...]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = p.lstat()
            mtime = st.st_mtime_ns if ns else st.st_mtime_ns // 1_000_000_000
            xattrs = {k: os.getxattr(p, k, follow_symlinks=False) for k in os.listxattr(p, follow_symlinks=False)
                      if not k.startswith("system.")} if not stat.S_ISLNK(st.st_mode) else {}
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                             st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                                             mtime if not stat.S_ISDIR(st.st_mode) else 0, xattrs)
    return out


def only_id(dedupe: RunCli, *backup: str) -> str:
    return str(json.loads(dedupe("backup", *backup, "--json").stdout)["id"])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    make_tree(root)
    return root


def test_trees_through_the_mount_equal_the_original(dedupe: RunCli, repo_path: Path, tree: Path,
                                                    tmp_path: Path) -> None:
    require_fuse()
    dedupe("init")
    dir_id = only_id(dedupe, "dir", "host/tree", str(tree))
    tarball = tmp_path / "tree.tar"
    subprocess.run(["tar", "--format=posix", "--xattrs", "--sparse", "--sparse-version=1.0", "-C", str(tree),
                    "-cf", str(tarball), "."], check=True)
    tar_id = only_id(dedupe, "tar", "host/tree-tar", str(tarball))
    stream_id = only_id(dedupe, "stream", "db/dump.sql", str(tree / "dir" / "big.bin"))
    mp = tmp_path / "mnt"
    with mounted(repo_path, mp):
        for bid in (dir_id, tar_id):
            root = mp / "by-id" / bid[:12]
            subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(root)], check=True)
            found = subprocess.run(["find", str(root), "-printf", "%P %y %m %U %G %s\n"], capture_output=True,
                                   text=True, check=True).stdout
            want = subprocess.run(["find", str(tree), "-printf", "%P %y %m %U %G %s\n"], capture_output=True,
                                  text=True, check=True).stdout
            strip = lambda text: sorted(l for l in text.splitlines() if " d " not in l)  # noqa: E731
            assert strip(found) == strip(want)
            subprocess.run(["cmp", str(tree / "dir" / "big.bin"), str(root / "dir" / "big.bin")], check=True)
        assert listing(mp / "by-id" / dir_id[:12]) == listing(tree)
        assert listing(mp / "by-id" / tar_id[:12], ns=False) == listing(tree, ns=False)
        assert os.readlink(mp / "by-id" / dir_id[:12] / "abs-link") == "/etc/passwd"
        assert subprocess.run(["cat", str(mp / "by-id" / dir_id[:12] / "small.txt")], capture_output=True,
                              check=True).stdout == b"hello\n"
        subprocess.run(["cmp", str(tree / "dir" / "big.bin"), str(mp / "by-id" / stream_id[:12] / "dump.sql")],
                       check=True)
        group = mp / "by-group" / "host" / "tree"
        assert os.readlink(group / "latest") in os.listdir(group)
        assert (group / "latest" / "small.txt").read_text() == "hello\n"
        with pytest.raises(OSError):
            (mp / "by-id" / dir_id[:12] / "small.txt").write_text("no")

        # a backup made while mounted shows up on the next listing
        (tree / "added").write_text("new")
        new_id = only_id(dedupe, "dir", "host/tree", str(tree))
        assert new_id[:12] in os.listdir(mp / "by-id")
        assert len([n for n in os.listdir(group) if n != "latest"]) == 2
        assert (group / "latest" / "added").read_text() == "new"


def test_a_small_read_of_a_large_file_reads_one_chunk(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    big = tmp_path / "big"
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    bid = only_id(dedupe, "stream", "big", str(big))
    repo = api.open_repo(str(repo_path))
    fs = DedupeFS(repo)
    try:
        path = f"/by-id/{bid[:12]}/big"
        assert fs.getattr(path)["st_size"] == 64 << 20
        fh = fs.open(path, os.O_RDONLY)
        with open(big, "rb") as f:
            f.seek(40 << 20)
            assert fs.read(path, 1024, 40 << 20, fh) == f.read(1024)
        assert fs.cache.fetched == 1
        assert fs.read(path, 1024, (64 << 20) - 10, fh) == big.read_bytes()[-10:]
        assert fs.cache.fetched == 2
    finally:
        fs.cache.close()


def test_one_small_file_of_a_large_tree_reads_one_chunk(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    tree = tmp_path / "many"
    for d in range(20):
        (tree / f"d{d}").mkdir(parents=True)
        for i in range(100):
            (tree / f"d{d}" / f"f{i}").write_bytes(os.urandom(2000 + i))
    bid = only_id(dedupe, "dir", "many", str(tree))
    fs = DedupeFS(api.open_repo(str(repo_path)))
    try:
        path = f"/by-id/{bid[:12]}/d7/f42"
        fh = fs.open(path, os.O_RDONLY)
        assert fs.read(path, 4096, 0, fh) == (tree / "d7" / "f42").read_bytes()
        assert fs.cache.fetched == 1
        for i in (43, 44):  # the next files in order: a tree walk, whose next files are fetched ahead
            p = f"/by-id/{bid[:12]}/d7/f{i}"
            assert fs.read(p, 4096, 0, fs.open(p, os.O_RDONLY)) == (tree / "d7" / f"f{i}").read_bytes()
        time.sleep(0.5)
        assert fs.cache.fetched > 3
    finally:
        fs.cache.close()


def test_ctrl_c_and_umount_with_a_reader_open(dedupe: RunCli, repo_path: Path, tree: Path, tmp_path: Path) -> None:
    require_fuse()
    dedupe("init")
    bid = only_id(dedupe, "dir", "d", str(tree))
    mp = tmp_path / "mnt"
    with mounted(repo_path, mp) as p:
        f = open(mp / "by-id" / bid[:12] / "dir" / "big.bin", "rb")
        assert f.read(10) == (tree / "dir" / "big.bin").read_bytes()[:10]
        busy = subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, text=True)
        assert busy.returncode != 0 and "busy" in busy.stderr  # refused while a file is open
        subprocess.run(["umount", "-l", str(mp)], check=True)  # detached: ends once the reader is done
        assert not os.path.ismount(mp)
        assert f.read() == (tree / "dir" / "big.bin").read_bytes()[10:]
        assert p.poll() is None
        f.close()
        assert p.wait(timeout=30) == 0
    with mounted(repo_path, mp) as p:
        f = open(mp / "by-id" / bid[:12] / "small.txt", "rb")
        p.send_signal(signal.SIGINT)  # Ctrl-C with a file open: unmounts and ends cleanly
        assert p.wait(timeout=30) == 0
        assert not os.path.ismount(mp)
        with pytest.raises(OSError) as gone:  # the reader is told, it does not hang
            f.read()
        assert gone.value.errno == errno.ENOTCONN
        with contextlib.suppress(OSError):
            f.close()
    assert not list((repo_path / "locks").iterdir())  # its lock is gone


def test_clear_errors(dedupe: RunCli, repo_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dedupe("init")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    assert_clean_error(dedupe("mount", str(full), check=False), 58, str(full), "not empty")
    assert_clean_error(dedupe("mount", str(tmp_path / "nope"), check=False), 58, "not a directory")
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == "/dev/fuse" else True)
    with pytest.raises(FuseUnavailable, match="/dev/fuse"):
        fuse_mount(api.open_repo(str(repo_path)), tmp_path)
    with pytest.raises(BadMountPoint):
        check_mount_point(full)


def test_daemon_mode(dedupe: RunCli, repo_path: Path, tree: Path, tmp_path: Path) -> None:
    require_fuse()
    dedupe("init")
    bid = only_id(dedupe, "dir", "d", str(tree))
    mp = tmp_path / "mnt"
    mp.mkdir()
    started = time.monotonic()
    dedupe("mount", str(mp), "--daemon")  # returns once mounted
    try:
        assert os.path.ismount(mp) and time.monotonic() - started < 30
        assert (mp / "by-id" / bid[:12] / "small.txt").read_text() == "hello\n"
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    deadline = time.monotonic() + 20
    while list((repo_path / "locks").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list((repo_path / "locks").iterdir())
