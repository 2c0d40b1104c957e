"""Single files of LXD backups as the instance sees them (issue #17): ``ls``, ``diff``
and ``restore --to-dir --path`` with instance paths, ``--snapshot``, the instance's own
owners, a path that matches nothing, and ``restore --to-instance``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli, assert_clean_error

pytestmark = pytest.mark.lxd


def backup_id(dedupe: RunCli, p: Any, name: str) -> str:
    out = json.loads(dedupe("backup", "lxd", name, "--project", p.name, "--only", "instances", "--json").stdout)
    assert out["failed"] == 0, out
    return next(o["id"] for o in out["objects"] if o["group"] == f"lxd/{p.name}/instance/{name}")


def ls(dedupe: RunCli, *args: str) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in json.loads(dedupe("ls", *args, "--json").stdout)}


def test_shifted_container_paths_and_owners_as_the_instance_sees_them(lxd_project: Any, dedupe: RunCli,
                                                                      tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(snapshot=None)
    host_uid, host_gid = p.host_base_ids(p.client.instance(c)["config"])
    assert host_uid >= 100000  # an unprivileged container: its files are shifted on disk
    dedupe("init")
    bid = backup_id(dedupe, p, c)

    # what LXD 5.0.2's export carries: the ids on disk (shifted); raw paths keep working
    raw = ls(dedupe, bid, "backup/container/rootfs/root/hello", "--numeric-host-ids")
    assert raw["backup/container/rootfs/root/hello"]["uid"] == host_uid

    seen = ls(dedupe, bid, "/root")
    assert seen["/root/hello"]["uid"] == 0 and seen["/root/hello"]["gid"] == 0
    assert seen["/root/tree/file.txt"]["uid"] == 1000 and seen["/root/tree/file.txt"]["gid"] == 2000
    assert ls(dedupe, bid, "/root/hello", "--numeric-host-ids")["/root/hello"]["uid"] == host_uid

    out = tmp_path / "out"
    dedupe("restore", bid, "--to-dir", str(out), "--path", "/root/hello", "--path", "/root/tree/file.txt")
    assert (out / "root/hello").read_bytes() == b"hello\n"
    st = (out / "root/tree/file.txt").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 2000, 0o640)
    assert (out / "root/hello").stat().st_uid == 0
    assert not (out / "backup").exists()

    host = tmp_path / "host"
    dedupe("restore", bid, "--to-dir", str(host), "--path", "/root/hello", "--numeric-host-ids")
    assert (host / "root/hello").stat().st_uid == host_uid

    rawdir = tmp_path / "raw"
    dedupe("restore", bid, "--to-dir", str(rawdir), "--path", "backup/container/rootfs/root/hello")
    assert (rawdir / "backup/container/rootfs/root/hello").stat().st_uid == 0


def test_privileged_container_is_stored_unshifted(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = "priv"
    p.client.create_instance(c, "tiny", config={"security.privileged": "true"})
    p.containers.append(c)
    p.client.start(c)
    p.lxc("exec", c, "--", "sh", "-c", "echo priv > /root/hello && chown 33:44 /root/hello")
    dedupe("init")
    bid = backup_id(dedupe, p, c)
    e = ls(dedupe, bid, "/root/hello")["/root/hello"]
    assert (e["uid"], e["gid"]) == (33, 44)
    assert ls(dedupe, bid, "/root/hello", "--numeric-host-ids")["/root/hello"]["uid"] == 33
    dedupe("restore", bid, "--to-dir", str(tmp_path / "o"), "--path", "/root/hello")
    st = (tmp_path / "o/root/hello").stat()
    assert (st.st_uid, st.st_gid) == (33, 44)


def test_a_snapshots_version_and_diff_in_instance_paths(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(snapshot="snap0")  # /root/hello is "hello" in snap0
    p.lxc("exec", c, "--", "sh", "-c", "echo changed > /root/hello && echo new > /root/added")
    dedupe("init")
    bid = backup_id(dedupe, p, c)
    dedupe("restore", bid, "--to-dir", str(tmp_path / "now"), "--path", "/root/hello")
    dedupe("restore", bid, "--to-dir", str(tmp_path / "then"), "--path", "/root/hello", "--snapshot", "snap0")
    assert (tmp_path / "now/root/hello").read_bytes() == b"changed\n"
    assert (tmp_path / "then/root/hello").read_bytes() == b"hello\n"
    assert ls(dedupe, bid, "/root/hello", "--snapshot", "snap0")["/root/hello"]["size"] == 6

    p.lxc("exec", c, "--", "sh", "-c", "echo again > /root/hello")
    bid2 = backup_id(dedupe, p, c)
    changes = {ch["path"]: ch for ch in json.loads(dedupe("diff", bid, bid2, "/root", "--json").stdout)}
    assert changes["/root/hello"]["change"] == "changed"
    assert all(path.startswith("/root") for path in changes)
    assert json.loads(dedupe("diff", bid, bid2, "/root", "--snapshot", "snap0", "--json").stdout) == []

    bad = dedupe("restore", bid, "--to-dir", str(tmp_path / "x"), "--path", "/root/hello", "--snapshot", "nope",
                 check=False)
    assert_clean_error(bad, 34, "nope", "snap0")


def test_a_path_that_matches_nothing_is_an_error(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(snapshot=None, files=False)
    dedupe("init")
    bid = backup_id(dedupe, p, c)
    out = tmp_path / "out"
    r = dedupe("restore", bid, "--to-dir", str(out), "--path", "/etc/nginx/nginx.conf", check=False)
    assert_clean_error(r, 33, "/etc/nginx/nginx.conf", "nearest existing parent: /etc")
    assert not out.exists() or not any(out.iterdir())
    # what a new user tried first (issue #17)
    assert_clean_error(dedupe("restore", bid, "--to-dir", str(out), "--path", "rootfs/root/hello", check=False),
                       33, "rootfs/root/hello", "nearest existing parent: /")
    assert_clean_error(dedupe("ls", bid, "/root/nothere", check=False), 33, "/root/nothere", "parent: /root")
    assert_clean_error(dedupe("ls", bid, "backup/container/rootfs/nothere", check=False), 33,
                       "backup/container/rootfs/nothere", "parent: backup/container/rootfs")
    assert_clean_error(dedupe("diff", bid, bid, "/srv/gone", check=False), 33, "/srv/gone", "parent: /")


def stat_in(p: Any, c: str, path: str) -> str:
    return p.lxc("exec", c, "--", "stat", "-c", "%u:%g:%a:%s:%F", path).stdout.strip()


def test_to_instance_writes_files_into_a_running_container(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(snapshot="snap0")
    dedupe("init")
    bid = backup_id(dedupe, p, c)
    p.lxc("exec", c, "--", "sh", "-c", "echo broken > /root/hello && rm -r /root/tree")

    # an existing file is refused, nothing written
    r = dedupe("restore", bid, "--to-instance", c, "--project", p.name, "--path", "/root/hello",
               "--path", "/root/tree", check=False)
    assert_clean_error(r, 60, "/root/hello", "--force")
    assert p.lxc("exec", c, "--", "test", "-e", "/root/tree", check=False).returncode == 1

    r = dedupe("restore", bid, "--to-instance", c, "--project", p.name, "--path", "/root/hello",
               "--path", "/root/tree", "--force", "--json", check=False)
    assert r.returncode == 3, r.stderr  # the fifo and the device nodes: warnings
    out = json.loads(r.stdout)
    assert out["replaced"] == 1
    assert sorted(w.split(":")[0] for w in out["warnings"]) == [
        "/root/tree/fifo", "/root/tree/loop0", "/root/tree/null", "/root/tree/setuid", "/root/tree/sticky"]
    assert p.lxc("exec", c, "--", "cat", "/root/hello").stdout == "hello\n"
    assert stat_in(p, c, "/root/tree/file.txt") == "1000:2000:640:6:regular file"
    assert stat_in(p, c, "/root/tree/setuid").split(":")[2] == "755"  # LXD drops the setuid bit (a warning)
    assert p.lxc("exec", c, "--", "readlink", "/root/tree/link-rel").stdout.strip() == "file.txt"
    assert p.lxc("exec", c, "--", "cat", "/root/tree/hard").stdout == "hello\n"
    assert p.lxc("exec", c, "--", "md5sum", "/root/tree/random.bin").stdout.split()[0] == \
        __import__("hashlib").md5((p.rootfs(c) / "root/tree/random.bin").read_bytes()).hexdigest()

    # a snapshot's version elsewhere in the instance, and a stopped instance
    p.client.stop(c, force=True)
    dedupe("restore", bid, "--to-instance", c, "--project", p.name, "--path", "/root/hello", "--snapshot", "snap0",
           "--target", "/root/from-snap")
    p.client.start(c)
    assert p.lxc("exec", c, "--", "cat", "/root/from-snap/hello").stdout == "hello\n"
    assert stat_in(p, c, "/root/from-snap/hello").startswith("0:0:644")

    assert_clean_error(dedupe("restore", bid, "--to-instance", c, "--project", p.name, "--path", "/nope/x",
                              check=False), 33, "/nope/x", "parent: /")


def test_mount_shows_the_instance_root_and_its_snapshots(lxd_project: Any, dedupe: RunCli, repo_path: Path,
                                                         tmp_path: Path) -> None:
    from mount.conftest import mounted
    p = lxd_project
    c = p.container(snapshot="snap0")
    p.lxc("exec", c, "--", "sh", "-c", "echo changed > /root/hello")
    dedupe("init")
    bid = backup_id(dedupe, p, c)
    mp = tmp_path / "mnt"
    with mounted(repo_path, mp):
        root = mp / "by-id" / bid[:12]
        assert sorted(os.listdir(root)) == ["rootfs", "snapshots"]
        assert (root / "rootfs/root/hello").read_bytes() == b"changed\n"
        assert (root / "snapshots/snap0/root/hello").read_bytes() == b"hello\n"
        st = (root / "rootfs/root/tree/file.txt").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 2000, 0o640)
        assert (root / "rootfs/root").stat().st_uid == 0  # 100000 on the host's disk
        assert (root / "rootfs/root/tree/random.bin").read_bytes() == \
            (p.rootfs(c) / "root/tree/random.bin").read_bytes()
        assert os.readlink(root / "rootfs/root/tree/link-abs-dangling") == "/nonexistent/target"
        latest = mp / "by-group" / "lxd" / p.name / "instance" / c / "latest"
        assert (latest / "rootfs/root/hello").read_bytes() == b"changed\n"
