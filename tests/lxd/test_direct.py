"""Direct reads of the storage pools (``backup lxd --via auto|direct``, issue #14)
against a real LXD daemon, on the ``dir`` pool and the loop-file ``btrfs`` pool that
scripts/lxd-test-server.sh creates.

A direct backup stores ids as the container sees them and says so in its backup.yaml
(``volatile.last_state.idmap: '[]'``): restored files are unshifted on disk until LXD
shifts them on the next start, so trees are compared from inside the container, or
against the original ids minus the shift.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli
from lxd_testing import backup, restore

from dedupe import api
from dedupe.lxd.backup import backup_lxd
from dedupe.lxd.direct import btrfs
from dedupe.lxd.api import LXDClient, LXDNotFound
from dedupe.lxd.source.plan import LXDSelection

pytestmark = pytest.mark.lxd
BTRFS = "btrfs"


def ls_n(p: Any, name: str, path: str) -> str:
    """``ls -ln`` of a path inside a running container: owner and mode as it sees them."""
    return p.lxc("exec", name, "--", "ls", "-lnd", path).stdout.split()


@pytest.fixture(scope="module")
def btrfs_pool(lxd: LXDClient) -> str:
    if not any(pool["name"] == BTRFS for pool in lxd.storage_pools()):
        if os.environ.get("CI") == "true":
            pytest.fail("no btrfs pool: scripts/lxd-test-server.sh setup creates it")
        pytest.skip("no btrfs pool (scripts/lxd-test-server.sh setup creates it)")
    return BTRFS


class BackupsDirWatch:
    """Watches LXD's backups directory during a run: the most bytes it ever held."""

    def __init__(self, lxd: LXDClient) -> None:
        assert lxd.socket_path is not None
        self.root = lxd.socket_path.parent / "backups"
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            time.sleep(0.005)

    def __enter__(self) -> BackupsDirWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_dir_pool_running_container_direct_round_trip(lxd: LXDClient, lxd_project: Any, dedupe: RunCli,
                                                      tmp_path: Path) -> None:
    """A started (shifted) container with the file zoo and a snapshot: read directly,
    stored unshifted, staged nothing, restored three ways."""
    p = lxd_project
    c = p.container(snapshot="snap0")
    p.client.create_snapshot(c, "snap1")
    record = p.client.instance(c)
    uid, gid = p.host_base_ids(record["config"])
    assert uid == 100000  # shifted on disk
    dedupe("init")
    with BackupsDirWatch(lxd) as watch:
        run = backup(dedupe, c, "--project", p.name)
    assert watch.peak == 0  # nothing staged under LXD's backups directory
    obj = run["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert obj["via"] == "direct" and obj["note"] is None
    shown = json.loads(dedupe("show", obj["id"], "--json").stdout)
    meta = shown["meta"]["lxd"]
    assert shown["kind"] == "dir" and meta["via"] == "direct" and meta["driver"] == "dir"
    assert (meta["kind"], meta["name"], meta["project"], meta["snapshots"]) == ("instance", c, p.name,
                                                                                ["snap0", "snap1"])
    assert meta["consistency"] == "live" and meta["pool"] == "default" and meta["record"]["name"] == c
    assert "read via:      direct (dir pool default)" in dedupe("show", obj["id"]).stdout.decode()

    # ownership as the container sees it (ls of the backup), ACL ids unshifted too
    entries = {e["path"]: e for e in json.loads(dedupe("ls", obj["id"], "--json").stdout)}
    zoo = "backup/container/rootfs/root/tree"
    assert (entries[f"{zoo}/file.txt"]["uid"], entries[f"{zoo}/file.txt"]["gid"]) == (1000, 2000)
    assert entries["backup/snapshots/snap1/rootfs/root/tree/file.txt"]["uid"] == 1000
    assert entries["backup/container/backup.yaml"]["uid"] == 0
    assert list(entries)[:2] == ["backup/index.yaml", "backup/snapshots/snap0"]  # the export's order
    tree = tmp_path / "tree"
    dedupe("restore", obj["id"], "--to-dir", str(tree), "--path", f"{zoo}/acl.txt")
    acl = os.getxattr(tree / zoo / "acl.txt", "system.posix_acl_access")
    named = [struct.unpack_from("<HHI", acl, at) for at in range(4, len(acl), 8)]
    assert (0x02, 6, 33) in named  # user:33:rw- (100033 on the host)

    # --to-file: a tarball lxc import takes; LXD shifts it on start
    tarball = tmp_path / "c.tar"
    dedupe("restore", obj["id"], "--to-file", str(tarball))
    p.lxc("import", str(tarball), f"{c}-imported")
    p.containers.append(f"{c}-imported")
    assert [s["name"] for s in p.client.snapshots(f"{c}-imported")] == ["snap0", "snap1"]
    p.client.start(f"{c}-imported")
    assert p.lxc("exec", f"{c}-imported", "--", "cat", "/root/hello").stdout == "hello\n"
    assert ls_n(p, f"{c}-imported", "/root/tree/file.txt")[2:4] == ["1000", "2000"]
    assert ls_n(p, f"{c}-imported", "/root/tree/setuid")[0] == "-rwsr-xr-x"

    # --to-lxd over the original (--force), then under a new name
    p.client.stop(c, force=True)
    assert restore(dedupe, obj["id"], "--force")[0]["action"] == "replaced"
    assert [s["name"] for s in p.client.snapshots(c)] == ["snap0", "snap1"]
    assert p.client.instance(c)["config"]["volatile.last_state.idmap"] == "[]"
    p.client.start(c)
    assert p.lxc("exec", c, "--", "cat", "/root/hello").stdout == "hello\n"
    assert ls_n(p, c, "/root/tree/file.txt")[2:4] == ["1000", "2000"]
    assert os.stat(p.rootfs(c) / "root" / "tree" / "file.txt").st_uid == 101000  # shifted again on start
    assert restore(dedupe, obj["id"], "--as", f"{c}-new")[0]["name"] == f"{c}-new"
    p.containers.append(f"{c}-new")
    p.client.start(f"{c}-new")
    assert p.lxc("exec", f"{c}-new", "--", "cat", "/root/hello").stdout == "hello\n"


def test_nights_with_changed_files_and_a_deleted_snapshot(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(snapshot="snap0")
    p.client.create_snapshot(c, "snap1")
    uid, gid = p.host_base_ids(p.client.instance(c)["config"])
    data = p.rootfs(c) / "srv"
    data.mkdir()
    for i in range(100):
        f = data / f"f{i:03}"
        f.write_bytes(os.urandom(40_000))
        os.chown(f, uid, gid)
        os.utime(f, (time.time() - 60, time.time() - 60))  # not "recent": the files cache may keep it
    dedupe("init")
    night1 = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    night2 = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert night2["new_bytes"] == 0 and night2["size"] == night1["size"]  # unchanged: nothing new
    (data / "f000").write_bytes(os.urandom(40_000))
    with open(data / "f050", "ab") as out:
        out.write(b"appended")
    p.client.delete_snapshot(c, "snap0")
    night3 = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert 40_000 < night3["new_bytes"] < 200_000, night3
    meta = json.loads(dedupe("show", night3["id"], "--json").stdout)["meta"]["lxd"]
    assert meta["snapshots"] == ["snap1"]
    changed = dedupe("diff", night1["id"], night3["id"]).stdout.decode("utf-8", "replace")
    assert "backup/container/rootfs/srv/f000" in changed and "- backup/snapshots/snap0" in changed
    tarball = tmp_path / "c.tar"
    dedupe("restore", night3["id"], "--to-file", str(tarball))
    p.lxc("import", str(tarball), f"{c}-n3")
    p.containers.append(f"{c}-n3")
    assert [s["name"] for s in p.client.snapshots(f"{c}-n3")] == ["snap1"]


def test_moving_from_export_to_direct_adds_close_to_nothing(lxd_project: Any, dedupe: RunCli) -> None:
    """File contents chunk the same on both paths; what is new is the entry list."""
    p = lxd_project
    c = p.container()
    uid, gid = p.host_base_ids(p.client.instance(c)["config"])
    big = p.rootfs(c) / "root" / "big.bin"
    big.write_bytes(os.urandom(12 << 20))  # larger than one read view: cut in parts
    os.chown(big, uid, gid)
    dedupe("init")
    exported = backup(dedupe, c, "--project", p.name, "--via", "export")["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert exported["via"] == "export"
    direct = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert direct["via"] == "direct"
    assert direct["new_bytes"] < 0.03 * exported["new_bytes"], (direct, exported)


def test_privileged_container_keeps_its_ids(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(config={"security.privileged": "true"}, snapshot=None)
    assert p.host_base_ids(p.client.instance(c)["config"]) == (0, 0)
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--via", "direct")["by_group"][f"lxd/{p.name}/instance/{c}"]
    entries = {e["path"]: e for e in json.loads(dedupe("ls", obj["id"], "--json").stdout)}
    assert entries["backup/container/rootfs/root/tree/file.txt"]["uid"] == 1000
    meta = json.loads(dedupe("show", obj["id"], "--json").stdout)["meta"]["lxd"]
    assert "idmap_undone" not in meta
    p.client.stop(c, force=True)
    restore(dedupe, obj["id"], "--force")
    assert os.stat(p.rootfs(c) / "root" / "tree" / "file.txt").st_uid == 1000


def test_recover_from_a_direct_backup(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container()
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    p.client.stop(c, force=True)
    p.client.delete_instance(c)
    assert restore(dedupe, obj["id"], "--recover")[0]["action"] == "recovered"
    assert [s["name"] for s in p.client.snapshots(c)] == ["snap0"]
    p.client.start(c)
    assert p.lxc("exec", c, "--", "cat", "/root/hello").stdout == "hello\n"
    assert ls_n(p, c, "/root/tree/file.txt")[2:4] == ["1000", "2000"]


def test_custom_volume_direct_round_trip(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    p.client.create_custom_volume("default", "vol1", project=p.name)
    root = p.volume_path("vol1")
    (root / "sub").mkdir()
    (root / "sub" / "file").write_bytes(b"volume data\n")
    os.chown(root / "sub" / "file", 1234, 1234)
    p.lxc("storage", "volume", "snapshot", "default", "vol1", "vs0")
    (root / "sub" / "file").write_bytes(b"changed\n")
    dedupe("init")
    obj = backup(dedupe, "--project", p.name, "--only", "volumes")["by_group"][f"lxd/{p.name}/volume/default/vol1"]
    assert obj["via"] == "direct"
    assert restore(dedupe, obj["id"], "--as", "vol2")[0]["action"] == "created"
    copy = p.volume_path("vol2")
    assert (copy / "sub" / "file").read_bytes() == b"changed\n"
    assert os.stat(copy / "sub" / "file").st_uid == 1234
    snaps = p.lxc("storage", "volume", "list", "default", "--format", "json").stdout
    assert any(v["name"] == "vol2/vs0" for v in json.loads(snaps))


def test_btrfs_running_container_read_from_a_temporary_snapshot(lxd: LXDClient, lxd_project: Any, dedupe: RunCli,
                                                                btrfs_pool: str, tmp_path: Path) -> None:
    """The live subvolume is read from a read-only snapshot that is gone afterwards; a
    killed run's leftover is removed; the files cache holds across new snapshots."""
    p = lxd_project
    c = p.container(pool=btrfs_pool, snapshot="snap0")
    mount = p.rootfs(c, btrfs_pool).parents[2]
    # a leftover of a killed run: a process that is gone (pid 1 never matches this start time)
    leftover = mount / btrfs.SNAPSHOT_DIR / "1-1-killed-run"
    leftover.parent.mkdir(exist_ok=True)
    subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(p.rootfs(c, btrfs_pool).parent), str(leftover)],
                   check=True, capture_output=True)
    dedupe("init")
    with BackupsDirWatch(lxd) as watch:
        night1 = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert watch.peak == 0
    assert not leftover.exists() and os.listdir(mount / btrfs.SNAPSHOT_DIR) == []
    meta = json.loads(dedupe("show", night1["id"], "--json").stdout)["meta"]["lxd"]
    assert (meta["via"], meta["driver"], meta["consistency"]) == ("direct", "btrfs", "snapshot")
    night2 = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert night2["new_bytes"] == 0
    # into the dir pool, under a new name
    done = restore(dedupe, night1["id"], "--as", f"{c}-dir", "--pool", "default")
    assert done[0]["action"] == "created"
    p.containers.append(f"{c}-dir")
    p.client.start(f"{c}-dir")
    assert p.lxc("exec", f"{c}-dir", "--", "cat", "/root/hello").stdout == "hello\n"
    assert ls_n(p, f"{c}-dir", "/root/tree/file.txt")[2:4] == ["1000", "2000"]


def test_btrfs_snapshot_that_cannot_be_taken_fails_that_object_alone(
        lxd_project: Any, dedupe: RunCli, btrfs_pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = lxd_project
    on_btrfs = p.container(pool=btrfs_pool, files=False, snapshot=None)
    on_dir = p.container(files=False, snapshot=None)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "btrfs").write_text("#!/bin/sh\necho 'ERROR: cannot snapshot (simulated)' >&2\nexit 1\n")
    (fake / "btrfs").chmod(0o755)
    dedupe("init")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    done = dedupe("backup", "lxd", "--project", p.name, "--only", "instances", "--json", check=False)
    assert done.returncode == 69
    out = {o["name"]: o for o in json.loads(done.stdout)["objects"]}
    assert "cannot take a btrfs snapshot" in out[on_btrfs]["error"] and "simulated" in out[on_btrfs]["error"]
    assert out[on_dir]["error"] is None and out[on_dir]["via"] == "direct"
    groups = {b["group"] for b in json.loads(dedupe("list", "--json").stdout)}
    assert groups == {f"lxd/{p.name}/instance/{on_dir}"}


def test_remote_servers_fall_back_to_the_export_and_say_so(lxd_project: Any, dedupe: RunCli,
                                                           https_remote: Any) -> None:
    p = lxd_project
    c = p.container(files=False, snapshot=None)
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, *https_remote.options())["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert obj["via"] == "export" and "remote server" in obj["note"]
    text = dedupe("backup", "lxd", c, "--project", p.name, *https_remote.options()).stdout.decode()
    assert "note: read through LXD's export: a remote server" in text
    strict = dedupe("backup", "lxd", c, "--project", p.name, "--via", "direct", *https_remote.options(),
                    "--json", check=False)
    assert strict.returncode == 69 and "cannot read it directly" in strict.stdout.decode()


def test_an_instance_deleted_while_read_commits_nothing(lxd_project: Any, tmp_path: Path) -> None:
    p = lxd_project
    keep, gone = p.container(files=False, snapshot=None), p.container(files=False, snapshot=None)
    repo = api.init(str(tmp_path / "repo"))
    client = p.client
    real_instance = client.instance
    calls: dict[str, int] = {}

    def instance(name: str, project: Any = None) -> dict[str, Any]:
        calls[name] = calls.get(name, 0) + 1
        if name == gone and calls[name] == 2:  # after the plan: deleted during the walk
            client.stop(gone, force=True)
            client.delete_instance(gone)
            raise LXDNotFound(f"instance {name!r} not found")
        return real_instance(name, project)

    client.instance = instance  # type: ignore[method-assign]
    result = backup_lxd(repo, client, LXDSelection(project=p.name, only=frozenset({"instances"})))
    errors = {o.name: o.error for o in result.objects}
    assert errors[keep] is None
    assert "deleted or renamed while it was read" in str(errors[gone])
    assert {b.manifest.group for b in api.list_backups(repo)} == {f"lxd/{p.name}/instance/{keep}"}


def test_freeze_holds_for_the_walk_on_dir(lxd_project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dedupe.lxd.direct import run as direct_run
    p = lxd_project
    c = p.container(files=False, snapshot=None)
    repo = api.init(str(tmp_path / "repo"))
    seen: list[str] = []
    real_walk = direct_run.backup_walk

    def walk(*args: Any, **kwargs: Any) -> int:
        seen.append(p.client.instance(c)["status"])
        return real_walk(*args, **kwargs)

    monkeypatch.setattr(direct_run, "backup_walk", walk)
    result = backup_lxd(repo, p.client, LXDSelection((c,), p.name, frozenset({"instances"}), consistent="freeze"))
    assert not result.failures and seen and set(seen) == {"Frozen"}  # a walk per part, all frozen
    assert p.client.instance(c)["status"] == "Running"
    assert api.get_backup(repo, result.objects[0].backup_id).manifest.meta["lxd"]["consistency"] == "frozen"


@pytest.mark.parametrize("on_btrfs", [False, True], ids=["dir", "btrfs"])
def test_unchanged_snapshots_are_taken_over_not_walked(lxd_project: Any, dedupe: RunCli, tmp_path: Path,
                                                       request: pytest.FixtureRequest, on_btrfs: bool) -> None:
    """LXD snapshots do not change: the next night takes an unchanged one's entries over
    from the previous backup; a new one is walked, a deleted one is gone,
    --rescan-snapshots walks them all, and the tarballs are the same either way."""
    p = lxd_project
    pool = request.getfixturevalue("btrfs_pool") if on_btrfs else "default"
    c = p.container(pool=pool, snapshot="snap0")
    group = f"lxd/{p.name}/instance/{c}"
    dedupe("init")

    def night(*args: str) -> tuple[dict[str, Any], dict[str, Any]]:
        obj = backup(dedupe, c, "--project", p.name, "--via", "direct", *args)["by_group"][group]
        shown = json.loads(dedupe("show", obj["id"], "--json").stdout)
        obj["items"] = shown["items"]
        return obj, shown["meta"]["lxd"]

    night1, meta1 = night()
    assert meta1["snapshots_reused"] == [] and set(meta1["snapshot_items"]) == {"snap0"}
    night2, meta2 = night()
    assert meta2["snapshots_reused"] == ["snap0"] and night2["new_bytes"] == 0
    assert night2["size"] == night1["size"] and night2["items"] == night1["items"]
    walked, meta_w = night("--rescan-snapshots")
    assert meta_w["snapshots_reused"] == [] and walked["new_bytes"] == 0
    tars = {}
    for label, obj in (("reused", night2), ("walked", walked)):
        tars[label] = tmp_path / f"{label}.tar"
        dedupe("restore", obj["id"], "--to-file", str(tars[label]))
    assert tars["reused"].read_bytes() == tars["walked"].read_bytes()

    p.client.create_snapshot(c, "snap1")
    night3, meta3 = night()
    assert meta3["snapshots_reused"] == ["snap0"] and set(meta3["snapshot_items"]) == {"snap0", "snap1"}
    p.client.delete_snapshot(c, "snap0")
    night4, meta4 = night()
    assert meta4["snapshots_reused"] == ["snap1"] and meta4["snapshots"] == ["snap1"]
    paths = [e["path"] for e in json.loads(dedupe("ls", night4["id"], "--json").stdout)]
    assert not any(x.startswith("backup/snapshots/snap0") for x in paths)
    assert "backup/snapshots/snap1/rootfs/root/hello" in paths
    tarball = tmp_path / "n4.tar"
    dedupe("restore", night4["id"], "--to-file", str(tarball))
    p.lxc("import", str(tarball), f"{c}-n4")
    p.containers.append(f"{c}-n4")
    assert [s["name"] for s in p.client.snapshots(f"{c}-n4")] == ["snap1"]
    p.client.start(f"{c}-n4")
    assert p.lxc("exec", f"{c}-n4", "--", "cat", "/root/hello").stdout == "hello\n"


def test_a_repaired_backup_restores_into_lxd_with_a_warning(lxd_project: Any, dedupe: RunCli, repo_path: Path,
                                                            tmp_path: Path) -> None:
    """A direct backup whose file lost a chunk, rewritten by ``repair backups``: ``restore
    --to-lxd`` brings the instance back with zeros where the piece was, and says so (exit
    3, the warning every other restore target gives), so a script can tell it from a
    perfect restore."""
    import damage_testing
    p = lxd_project
    c = p.container(snapshot=None)
    payload = tmp_path / "lost.bin"
    payload.write_bytes(os.urandom(200_000))
    p.lxc("file", "push", str(payload), f"{c}/root/lost.bin")
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--via", "direct")["by_group"][f"lxd/{p.name}/instance/{c}"]
    pack, at = damage_testing.first_chunk_of(str(repo_path), obj["id"], "backup/container/rootfs/root/lost.bin")
    damage_testing.damage(str(repo_path), pack, at)
    assert dedupe("repair", "packs", check=False).returncode == 3
    (fixed,) = json.loads(dedupe("repair", "backups", "--forget", "--json").stdout)["backups"]
    assert fixed["original"] == obj["id"]

    done = dedupe("restore", fixed["repaired"], "--to-lxd", "--as", f"{c}-rep", "--json", check=False)
    p.containers.append(f"{c}-rep")
    assert done.returncode == 3, done.stderr
    err = done.stderr.decode()
    assert f"backup {fixed['repaired'][:12]} was repaired" in err and "lost.bin" in err
    assert json.loads(done.stdout)["restored"][0]["action"] == "created"
    restored = (p.rootfs(f"{c}-rep") / "root" / "lost.bin").read_bytes()
    assert restored == bytes(len(restored)) and len(restored) == 200_000  # the lost piece is zeros
    assert (p.rootfs(f"{c}-rep") / "root" / "hello").read_text() == "hello\n"  # the rest intact


def test_unchanged_nights_leave_the_files_cache_and_find_the_latest_backup(lxd_project: Any, dedupe: RunCli) -> None:
    """Issue #14 item 7: an unchanged night does not rewrite the group's files cache (a
    note beside it names the new backup), and the next night still takes the snapshot
    over from the latest backup, even when every earlier one is forgotten."""
    p = lxd_project
    c = p.container(pool="default", snapshot="snap0")
    group = f"lxd/{p.name}/instance/{c}"
    dedupe("init")
    time.sleep(2.1)  # files written just now are not cached (files_cache.RECENT_NS)

    def night() -> tuple[str, Any, dict[str, Any]]:
        obj = backup(dedupe, c, "--project", p.name, "--via", "direct")["by_group"][group]
        (cache,) = [f for f in Path(os.environ["XDG_CACHE_HOME"]).rglob("files-*") if "." not in f.name]
        st = cache.stat()
        meta = json.loads(dedupe("show", obj["id"], "--json").stdout)["meta"]["lxd"]
        return obj["id"], (st.st_ino, st.st_mtime_ns), meta

    first, written, _ = night()
    second, after, meta2 = night()
    assert after == written and meta2["snapshots_reused"] == ["snap0"]
    third, after, meta3 = night()
    assert after == written and meta3["snapshots_reused"] == ["snap0"]
    dedupe("forget", first, second)  # the cache file itself was written after the first
    _, after, meta4 = night()
    assert after == written and meta4["snapshots_reused"] == ["snap0"]
