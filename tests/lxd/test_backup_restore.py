"""``dedupe backup lxd`` and ``dedupe restore --to-lxd`` against a real LXD daemon.

These tests pin the export path (``--via export``); direct reads of the pools are
tested in ``test_direct.py``.

Each test works in its own LXD project (the ``lxd_project`` fixture), backs objects up,
deletes them, restores them and compares; networks are the exception (LXD 5.0 allows
bridges only in the default project), with unique names and their own cleanup.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import lxd_testing
from dedupe_testing import RunCli, assert_clean_error

from dedupe import api
from dedupe.lxd.backup import backup_lxd
from dedupe.lxd.errors import IncompleteRun
from dedupe.lxd.restore import RestoreOptions, restore_backup
from dedupe.lxd.restore_run import RUN_ORDER
from dedupe.read import RestoreMismatch
from dedupe.lxd.api import LXDClient, LXDNotFound, LXDStreamBroken, strip_read_only
from dedupe.lxd.source.plan import LXDSelection
from lxd.conftest import make_cert, wait_until_exec_works

pytestmark = pytest.mark.lxd
POOL = "default"


# ======================================================================================
# helpers


backup = functools.partial(lxd_testing.backup, via="export")  # this file tests the export path
restore = lxd_testing.restore


def listing(root: Path) -> tuple[dict[str, tuple[Any, ...]], dict[str, int]]:
    """Every entry below ``root`` (never following symlinks): type, mode, owner,
    content hash, link target, hard-link group, device, xattrs; and the mtimes apart
    (LXD's tar writer rounds them to seconds). POSIX ACLs are left out: LXD's own
    import drops them (docs/lxd.md section 2.3)."""
    entries: dict[str, tuple[Any, ...]] = {}
    times: dict[str, int] = {}
    first_name: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                      for k in os.listxattr(path, follow_symlinks=False) if not k.startswith("system.posix_acl")}
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            group = first_name.setdefault(st.st_ino, rel) if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 else None
            device = st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None
            entries[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest, link, group, device, xattrs)
            times[rel] = st.st_mtime_ns
    return entries, times


def assert_same_tree(before: tuple[dict[str, Any], dict[str, int]], root: Path,
                     times_of: frozenset[int] | None = None) -> None:
    """Same entries, and mtimes within LXD's one-second rounding: of every entry, or
    only of the file types in ``times_of``."""
    entries, times = listing(root)
    assert entries == before[0]
    late = {p: (t, before[1][p]) for p, t in times.items()
            if abs(t - before[1][p]) > 1_000_000_000 and (times_of is None or entries[p][0] in times_of)}
    assert not late, late


def instance_trees(p: Any, name: str, snapshots: list[str]) -> dict[str, Path]:
    """The rootfs of an instance and of each snapshot on disk (dir pool)."""
    source = p.rootfs(name).parents[2]
    trees = {"": p.rootfs(name)}
    for snap in snapshots:
        trees[snap] = source / "containers-snapshots" / f"{p.name}_{name}" / snap / "rootfs"
    return trees


def add_large_file(p: Any, name: str, size: int = 4 << 20) -> None:
    uid, gid = p.host_base_ids(p.client.instance(name)["config"])
    large = p.rootfs(name) / "root" / "large.bin"
    large.write_bytes(os.urandom(size))
    os.chown(large, uid, gid)


def kept(record: dict[str, Any]) -> dict[str, Any]:
    """What an instance restore must give back of its record."""
    return {k: record[k] for k in ("architecture", "config", "devices", "profiles", "ephemeral", "description",
                                   "type", "project")}


def set_features(lxd: LXDClient, project: str, **features: str) -> None:
    record = lxd.project_record(project)
    record["config"].update({f"features.{k}": v for k, v in features.items()})
    lxd.update_project(record)


# ======================================================================================
# instances


def test_instance_round_trip_files_config_snapshots(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(snapshot="snap0")
    add_large_file(p, c)
    p.client.create_snapshot(c, "snap1")
    record = p.client.instance(c)
    trees = {k: listing(v) for k, v in instance_trees(p, c, ["snap0", "snap1"]).items()}
    zoo = trees["snap1"][0]
    assert zoo["root/tree/xattr.txt"][-1] == {"user.backuptest": b"value", "trusted.foo": b"bar"}
    assert zoo["root/tree/hard"][6] == zoo["root/tree/file.txt"][6] == "root/tree/file.txt"
    assert zoo["root/large.bin"][4] and zoo["root/tree/null"][7] == os.makedev(1, 3)
    dedupe("init")
    run = backup(dedupe, c, "--project", p.name)
    obj = run["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert {f"lxd/{p.name}/profile/default", f"lxd/global/project/{p.name}"} <= set(run["by_group"])
    shown = json.loads(dedupe("show", obj["id"], "--json").stdout)
    meta = shown["meta"]["lxd"]
    assert shown["host"] == meta["server"]["server_name"] != ""  # the series prune keeps is the server's
    assert (meta["kind"], meta["name"], meta["project"], meta["snapshots"]) == ("instance", c, p.name,
                                                                                ["snap0", "snap1"])
    assert meta["server"]["version"] and meta["server"]["fingerprint"] and meta["record"]["name"] == c
    assert meta["consistency"] == "live" and meta["pool"] == POOL

    # an existing instance of that name is refused without --force
    assert_clean_error(restore(dedupe, obj["id"], check=False), 60, c, "exists", "--force")
    p.client.stop(c, force=True)
    p.client.delete_instance(c)
    assert restore(dedupe, obj["id"])[0]["action"] == "created"

    assert kept(p.client.instance(c)) == kept(record)
    assert [s["name"] for s in p.client.snapshots(c)] == ["snap0", "snap1"]
    for snap, root in instance_trees(p, c, ["snap0", "snap1"]).items():
        assert_same_tree(trees[snap], root)
    assert restore(dedupe, obj["id"], "--force")[0]["action"] == "replaced"
    p.client.start(c)
    assert p.lxc("exec", c, "--", "cat", "/root/hello").stdout == "hello\n"


def test_two_nightly_runs_store_little_new_data(lxd_project: Any, dedupe: RunCli) -> None:
    """4 of 200 files change between two nights. Measured on the second night, of an
    11.13 MB tarball: 596 KB new (5.4%): 84 KB of changed files and 507 KB of the item
    stream (tar headers; 3 of its 4 chunks changed), which compresses to 106 KB stored
    (0.95%). The first night stored 7.8 MB new. The bounds leave some room."""
    p = lxd_project
    c = p.container()
    uid, gid = p.host_base_ids(p.client.instance(c)["config"])
    data = p.rootfs(c) / "srv"
    data.mkdir()
    for i in range(200):
        f = data / f"f{i:03}"
        f.write_bytes(os.urandom(20_000))
        os.chown(f, uid, gid)
    dedupe("init")
    night1 = backup(dedupe, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    for i in range(0, 200, 50):  # 4 files: two rewritten, two appended to
        f = data / f"f{i:03}"
        if i % 100:
            f.write_bytes(os.urandom(20_000))
        else:
            with open(f, "ab") as out:
                out.write(os.urandom(2_000))
    night2 = backup(dedupe, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert night1["new_bytes"] > 0.4 * night1["size"]
    assert night2["size"] > 6_000_000
    assert night2["new_bytes"] < 0.07 * night2["size"], (night2["new_bytes"], night2["size"])
    assert night2["new_stored"] < 0.02 * night2["size"], (night2["new_stored"], night2["size"])


def test_restore_under_a_new_name_then_lxd_recover(lxd: LXDClient, lxd_project: Any, dedupe: RunCli) -> None:
    """The backup.yaml files LXD keeps name the new instance, so LXD's recovery accepts
    it after its database records are gone (docs/lxd.md section 2.3 and 7.1)."""
    p = lxd_project
    c = p.container()
    p.client.create_snapshot(c, "snap1")
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    new = f"{c}-new"
    assert restore(dedupe, obj["id"], "--as", new)[0]["name"] == new
    p.containers.append(new)
    source = p.rootfs(new).parents[2]
    for yaml in [source / "containers" / f"{p.name}_{new}" / "backup.yaml",
                 *(source / "containers-snapshots" / f"{p.name}_{new}").glob("*/backup.yaml")]:
        text = yaml.read_text()
        assert f"  name: {new}\n" in text and f"  name: {c}\n" not in text, yaml
    # Directory and symlink mtimes are not compared here: twice in CI (never locally) LXD's
    # import of this renamed instance, made while the original runs, left some of them in
    # snap0 at a time of its own (1.25-1.5 s after the originals, which the tar it got
    # holds, byte for byte). Every mtime is compared by the round trips above.
    trees = instance_trees(p, c, ["snap0", "snap1"])
    for snap, root in instance_trees(p, new, ["snap0", "snap1"]).items():
        assert_same_tree(listing(trees[snap]), root, times_of=frozenset({stat.S_IFREG}))

    where = f"name='{new}' AND project_id=(SELECT id FROM projects WHERE name='{p.name}')"
    sql = f"DELETE FROM storage_volumes WHERE {where} AND type=0; DELETE FROM instances WHERE {where}"
    subprocess.run(["lxd", "sql", "global", sql], check=True, capture_output=True, timeout=60)
    with pytest.raises(LXDNotFound):
        p.client.instance(new)
    report = lxd.recover_validate([{"name": POOL}])
    assert [(v["name"], v["project"]) for v in report["UnknownVolumes"]] == [(new, p.name)]
    lxd.recover_import([{"name": POOL}])
    assert [s["name"] for s in p.client.snapshots(new)] == ["snap0", "snap1"]
    p.client.start(new)
    assert p.lxc("exec", new, "--", "cat", "/root/hello").stdout == "hello\n"


def test_disaster_recovery_lays_files_out_and_lxd_recovers(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container()
    p.client.create_snapshot(c, "snap1")
    record = p.client.instance(c)
    trees = {k: listing(v) for k, v in instance_trees(p, c, ["snap0", "snap1"]).items()}
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert_clean_error(restore(dedupe, obj["id"], "--recover", check=False), 60, "exists", "--recover")
    p.client.stop(c, force=True)
    p.client.delete_instance(c)  # the database record and the files are gone
    assert restore(dedupe, obj["id"], "--recover")[0]["action"] == "recovered"
    assert kept(p.client.instance(c)) == kept(record)
    assert [s["name"] for s in p.client.snapshots(c)] == ["snap0", "snap1"]
    for snap, root in instance_trees(p, c, ["snap0", "snap1"]).items():
        assert_same_tree(trees[snap], root)
    p.client.start(c)
    assert p.lxc("exec", c, "--", "cat", "/root/hello").stdout == "hello\n"


def test_to_file_gives_a_tarball_lxc_imports(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container()
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    tarball = tmp_path / "c.tar"
    dedupe("restore", obj["id"], "--to-file", str(tarball))
    p.lxc("import", str(tarball), f"{c}-imported")
    p.containers.append(f"{c}-imported")
    assert [s["name"] for s in p.client.snapshots(f"{c}-imported")] == ["snap0"]
    p.client.start(f"{c}-imported")
    assert p.lxc("exec", f"{c}-imported", "--", "cat", "/root/hello").stdout == "hello\n"


def test_with_deps_recreates_the_missing_profile(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    p.client.create_profile({"name": "web", "description": "web", "config": {"user.role": "web"}, "devices": {}})
    c = f"c{secrets.token_hex(3)}"
    p.client.create_instance(c, "tiny", profiles=["default", "web"])
    p.containers.append(c)
    web = p.client.profile("web")
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    p.client.delete_instance(c)
    p.client.delete_profile("web")
    assert_clean_error(restore(dedupe, obj["id"], check=False), 60, "profile 'web'", "--with-deps")
    done = restore(dedupe, obj["id"], "--with-deps")
    assert [(o["kind"], o["name"], o["action"]) for o in done] == [("profile", "web", "created"),
                                                                    ("instance", c, "created")]
    assert p.client.profile("web")["config"] == web["config"]
    assert p.client.instance(c)["profiles"] == ["default", "web"]


def test_with_deps_recreates_a_network_and_the_zone_it_names(lxd: LXDClient, lxd_project: Any,
                                                               dedupe: RunCli) -> None:
    """The instance's NIC is on a bridge whose ``dns.zone.forward`` names a network zone:
    with --with-deps the zone comes back first, since LXD refuses a network naming a
    zone it lacks. (Bridges live in the default project; the test removes its own.)"""
    p = lxd_project
    tag = secrets.token_hex(3)
    net, zone, c = f"dtbr{tag}", f"dz{tag}.example", f"c{tag}"
    try:
        lxd.create_network_zone({"name": zone, "description": "zone of a bridge", "config": {"user.k": "v"}},
                                "default")
        lxd.create_network({"name": net, "type": "bridge", "description": "bridge with a zone",
                            "config": {"ipv4.address": "none", "ipv6.address": "none", "ipv4.firewall": "false",
                                       "ipv6.firewall": "false", "dns.zone.forward": zone}}, "default")
        p.client.create_instance(c, "tiny", devices={"eth0": {"type": "nic", "network": net, "name": "eth0"}})
        p.containers.append(c)
        net_before, zone_before = lxd.network(net, "default"), lxd.network_zone(zone, "default")
        dedupe("init")
        run = backup(dedupe, c, "--project", p.name)
        assert {f"lxd/default/network/{net}", f"lxd/default/network-zone/{zone}"} <= set(run["by_group"])
        obj = run["by_group"][f"lxd/{p.name}/instance/{c}"]
        p.client.delete_instance(c)
        lxd.delete_network(net, "default")
        lxd.delete_network_zone(zone, "default")
        assert_clean_error(restore(dedupe, obj["id"], check=False), 60, f"network '{net}'", "--with-deps")
        done = restore(dedupe, obj["id"], "--with-deps")
        assert [(o["kind"], o["name"], o["action"]) for o in done] == [
            ("network-zone", zone, "created"), ("network", net, "created"), ("instance", c, "created")]
        assert lxd.network(net, "default")["config"] == net_before["config"]
        assert lxd.network_zone(zone, "default")["config"] == zone_before["config"]
        assert p.client.instance(c)["devices"]["eth0"]["network"] == net
    finally:
        with contextlib.suppress(LXDNotFound):
            p.client.delete_instance(c)
        with contextlib.suppress(LXDNotFound):
            lxd.delete_network(net, "default")
        with contextlib.suppress(LXDNotFound):
            lxd.delete_network_zone(zone, "default")


# ======================================================================================
# volumes, images, config records


def test_custom_volume_round_trip(lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    p.client.create_custom_volume(POOL, "vol1", config={"user.k": "v"})
    p.write_tree(p.volume_path("vol1"))
    p.client.create_volume_snapshot(POOL, "vol1", "vsnap0")
    before = listing(p.volume_path("vol1"))
    record = p.client.custom_volume(POOL, "vol1")
    dedupe("init")
    obj = backup(dedupe, "--project", p.name, "--only", "volumes")["by_group"][f"lxd/{p.name}/volume/{POOL}/vol1"]
    p.client.delete_custom_volume(POOL, "vol1")
    assert restore(dedupe, obj["id"])[0]["action"] == "created"
    assert_same_tree(before, p.volume_path("vol1"))
    assert p.client.custom_volume(POOL, "vol1")["config"] == record["config"]
    assert [s["name"] for s in p.client.volume_snapshots(POOL, "vol1")] == ["vol1/vsnap0"]
    assert restore(dedupe, obj["id"], "--as", "vol2")[0]["name"] == "vol2"
    assert_same_tree(before, p.volume_path("vol2"))
    # --compression reaches the sessions of an LXD run: the same volume stored raw
    # takes at least its size, compressed (the default) less
    raw_repo = tmp_path / "raw"
    dedupe("init", repo=raw_repo)
    raw_run = json.loads(dedupe("backup", "lxd", "--project", p.name, "--only", "volumes", "--via", "export",
                                "--compression", "none", "--json", repo=raw_repo).stdout)
    raw_id = next(o["id"] for o in raw_run["objects"] if o["group"] == obj["group"])
    raw = json.loads(dedupe("show", raw_id, "--json", repo=raw_repo).stdout)
    packed = json.loads(dedupe("show", obj["id"], "--json").stdout)
    assert raw["new_stored"] >= raw["new_bytes"] > packed["new_stored"]


def _split_image(lxd: LXDClient, project: str) -> str:
    """The tiny (split) image imported into ``project``; its fingerprint."""
    fingerprint = str(next(a["target"] for a in lxd.image_aliases("default") if a["name"] == "tiny"))
    with lxd.export_image(fingerprint, "default") as export:
        meta, rootfs = (part.read() for part in export.parts())
    return lxd.import_image((meta, rootfs), fingerprint, {"os": "busybox", "note": "split"}, project=project)


def test_images_come_back_with_fingerprint_aliases_properties(lxd: LXDClient, lxd_project: Any,
                                                              dedupe: RunCli) -> None:
    p = lxd_project
    set_features(lxd, p.name, images="true")
    split = _split_image(lxd, p.name)
    p.client.add_image_alias("t-split", split, "the split one")
    c = p.container(start=False, files=False, snapshot=None, image="t-split")
    unified = p.client.publish_instance(c, aliases=["t-unified"], properties={"os": "busybox", "v": "2"})
    images = {i["fingerprint"]: i for i in p.client.images()}
    dedupe("init")
    run = backup(dedupe, "--project", p.name, "--only", "images")
    assert set(run["by_group"]) == {f"lxd/{p.name}/image/{fp}" for fp in (split, unified)}
    for fp in (split, unified):
        p.client.delete_image(fp)
    for fp in (split, unified):
        assert restore(dedupe, run["by_group"][f"lxd/{p.name}/image/{fp}"]["id"])[0]["name"] == fp
    after = {i["fingerprint"]: i for i in p.client.images()}
    assert set(after) == {split, unified}
    for fp, image in images.items():
        for key in ("aliases", "properties", "public", "auto_update", "profiles", "type", "size", "filename"):
            assert after[fp][key] == image[key], (fp, key)
    assert_clean_error(restore(dedupe, run["by_group"][f"lxd/{p.name}/image/{split}"]["id"], check=False), 60,
                   "exist", "--force")


def test_config_records_come_back_equal(lxd: LXDClient, lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    set_features(lxd, p.name, networks="true")
    tag = secrets.token_hex(3)
    net, pool, key = f"dtbr{tag}", f"dtpool{tag}", f"user.dedupe-test-{tag}"
    p.client.create_profile({"name": "web", "description": "web", "config": {"limits.cpu": "1"},
                             "devices": {"data": {"type": "disk", "pool": POOL, "source": "pv", "path": "/d"}}})
    p.client.create_network_acl({"name": "acl1", "description": "acl", "config": {"user.k": "v"}, "egress": [],
                                 "ingress": [{"action": "allow", "protocol": "tcp", "destination_port": "22",
                                              "description": "ssh", "state": "enabled"}]})
    try:
        lxd.create_network({"name": net, "type": "bridge", "description": "test bridge",
                            "config": {"ipv4.address": "none", "ipv6.address": "none", "ipv4.firewall": "false",
                                       "ipv6.firewall": "false"}}, "default")
        lxd.create_storage_pool({"name": pool, "driver": "dir", "description": "test pool", "config": {}})
        lxd.patch_server_config({key: "before"})
        objects = {("profile", f"lxd/{p.name}/profile/web"): lambda: p.client.profile("web"),
                   ("network_acl", f"lxd/{p.name}/network-acl/acl1"): lambda: p.client.network_acl("acl1"),
                   ("network", f"lxd/default/network/{net}"): lambda: lxd.network(net, "default"),
                   ("storage_pool", f"lxd/global/storage-pool/{pool}"): lambda: lxd.storage_pool(pool),
                   ("project", f"lxd/global/project/{p.name}"): lambda: lxd.project_record(p.name)}
        before = {group: strip_read_only(kind, get()) for (kind, group), get in objects.items()}
        dedupe("init")
        run = backup(dedupe, "--only", "config")
        stored = json.loads(dedupe("restore", run["by_group"][f"lxd/{p.name}/profile/web"]["id"], "--stdout").stdout)
        # the full record, as read, but for used_by (it names other projects' instances)
        assert stored == {k: v for k, v in p.client.profile("web").items() if k != "used_by"}
        p.client.delete_profile("web")
        p.client.delete_network_acl("acl1")
        lxd.delete_network(net, "default")
        lxd.delete_storage_pool(pool)
        lxd.patch_server_config({key: "changed"})
        for _, group in objects:
            if "project" not in group:
                assert restore(dedupe, run["by_group"][group]["id"])[0]["action"] == "created"
        config = run["by_group"]["lxd/global/server-config"]["id"]
        assert_clean_error(restore(dedupe, config, check=False), 60, key, "--force")
        assert restore(dedupe, config, "--force")[0]["action"] == "updated"
        assert lxd.server_config()[key] == "before"
        project = run["by_group"][f"lxd/global/project/{p.name}"]["id"]
        assert restore(dedupe, project)[0]["action"] == "unchanged"
        assert {group: strip_read_only(kind, get()) for (kind, group), get in objects.items()} == before
    finally:
        lxd.patch_server_config({key: ""})
        for cleanup in (lambda: lxd.delete_network(net, "default"), lambda: lxd.delete_storage_pool(pool)):
            with contextlib.suppress(LXDNotFound):
                cleanup()


@contextlib.contextmanager
def zone_and_certificate(lxd: LXDClient, p: Any, tmp_path: Path) -> Any:
    """A network zone with two DNS records in the project (its networks made its own)
    and a trusted certificate restricted to the project: (zone name, fingerprint, PEM).
    Both are deleted afterwards, whatever happened."""
    set_features(lxd, p.name, networks="true")
    tag = secrets.token_hex(3)
    zone = f"dt{tag}.example"  # zone names are DNS names
    _, _, pem = make_cert(f"dedupe-test-{tag}", tmp_path)
    fingerprint = ""
    try:
        p.lxc("network", "zone", "create", zone, "user.k=v")
        p.lxc("network", "zone", "set", zone, "dns.nameservers=ns1.example")
        p.lxc("network", "zone", "record", "create", zone, "www", "user.r=1")
        p.lxc("network", "zone", "record", "entry", "add", zone, "www", "A", "192.0.2.10", "--ttl", "300")
        p.lxc("network", "zone", "record", "create", zone, "mail")
        p.lxc("network", "zone", "record", "entry", "add", zone, "mail", "A", "192.0.2.11")
        p.lxc("network", "zone", "record", "entry", "add", zone, "mail", "TXT", "v=spf1 -all", "--ttl", "600")
        fingerprint = lxd.add_certificate(pem, name=f"dedupe-test-{tag}", restricted=True, projects=[p.name])
        yield zone, fingerprint, pem
    finally:
        with contextlib.suppress(LXDNotFound):
            p.client.delete_network_zone(zone)
        if fingerprint:
            with contextlib.suppress(LXDNotFound):
                lxd.delete_certificate(fingerprint)


ZONE_FIELDS = ("name", "description", "config")
RECORD_FIELDS = ("name", "description", "config", "entries")
CERTIFICATE_FIELDS = ("fingerprint", "name", "type", "restricted", "projects", "certificate")


def assert_same_zone(after: dict[str, Any], before: dict[str, Any]) -> None:
    for key in ZONE_FIELDS:
        assert after[key] == before[key], key
    assert [r["name"] for r in after["records"]] == [r["name"] for r in before["records"]]
    for got, wanted in zip(after["records"], before["records"], strict=True):
        for key in RECORD_FIELDS:
            assert got[key] == wanted[key], (wanted["name"], key)


def test_network_zone_and_certificate_come_back_equal(lxd: LXDClient, lxd_project: Any, dedupe: RunCli,
                                                      tmp_path: Path) -> None:
    p = lxd_project
    with zone_and_certificate(lxd, p, tmp_path) as (zone, fingerprint, pem):
        before_zone = p.client.network_zone(zone)
        assert [r["name"] for r in before_zone["records"]] == ["mail", "www"]
        assert [len(r["entries"]) for r in before_zone["records"]] == [2, 1]
        assert zone in [z["name"] for z in p.client.network_zones()]  # the project's own zone
        before_cert = lxd.certificate(fingerprint)
        assert before_cert["certificate"].startswith("-----BEGIN CERTIFICATE-----")  # GET gives PEM
        assert (before_cert["restricted"], before_cert["projects"]) == (True, [p.name])
        dedupe("init")
        run = backup(dedupe, "--only", "config")
        zone_id = run["by_group"][f"lxd/{p.name}/network-zone/{zone}"]["id"]
        cert_id = run["by_group"][f"lxd/global/certificate/{fingerprint}"]["id"]
        zone_read = {k: v for k, v in before_zone.items() if k != "used_by"}
        assert json.loads(dedupe("restore", zone_id, "--stdout").stdout) == zone_read  # zone + records, as read
        assert json.loads(dedupe("restore", cert_id, "--stdout").stdout) == before_cert
        p.client.delete_network_zone(zone)
        lxd.delete_certificate(fingerprint)
        with pytest.raises(LXDNotFound):
            p.client.network_zone(zone)
        with pytest.raises(LXDNotFound):
            lxd.certificate(fingerprint)
        assert restore(dedupe, cert_id)[0]["action"] == "created"
        assert restore(dedupe, zone_id)[0]["action"] == "created"
        assert_same_zone(p.client.network_zone(zone), before_zone)
        after_cert = lxd.certificate(fingerprint)
        for key in CERTIFICATE_FIELDS:
            assert after_cert[key] == before_cert[key], key
        assert after_cert["certificate"].strip() == pem.strip()
        assert_clean_error(dedupe("restore", cert_id, "--to-lxd", "--as", "x", check=False), 60, "--as",
                           "fingerprint")


def test_restoring_over_equal_zone_and_certificate_is_unchanged(lxd: LXDClient, lxd_project: Any, dedupe: RunCli,
                                                                tmp_path: Path) -> None:
    """Equal: "unchanged"; changed since the backup: refused without --force, put back
    ("updated") with it, the zone's DNS records too (one changed, one removed, one added)."""
    p = lxd_project
    with zone_and_certificate(lxd, p, tmp_path) as (zone, fingerprint, _):
        before_zone, before_cert = p.client.network_zone(zone), lxd.certificate(fingerprint)
        dedupe("init")
        run = backup(dedupe, "--only", "config")
        zone_id = run["by_group"][f"lxd/{p.name}/network-zone/{zone}"]["id"]
        cert_id = run["by_group"][f"lxd/global/certificate/{fingerprint}"]["id"]
        assert restore(dedupe, zone_id)[0]["action"] == "unchanged"
        assert restore(dedupe, cert_id)[0]["action"] == "unchanged"
        assert_same_zone(p.client.network_zone(zone), before_zone)
        assert lxd.certificate(fingerprint) == before_cert
        # changed: refused without --force, then put back
        p.lxc("network", "zone", "set", zone, "user.k=changed")
        p.lxc("network", "zone", "record", "entry", "remove", zone, "www", "A", "192.0.2.10")
        p.lxc("network", "zone", "record", "entry", "add", zone, "www", "A", "192.0.2.99")
        p.lxc("network", "zone", "record", "delete", zone, "mail")
        p.lxc("network", "zone", "record", "create", zone, "extra")
        edited = {**{k: before_cert[k] for k in ("type", "certificate")}, "name": "renamed", "restricted": False,
                  "projects": []}
        subprocess.run(["lxc", "config", "trust", "edit", fingerprint], input=json.dumps(edited), text=True,
                       capture_output=True, timeout=60, check=True)  # JSON is YAML
        assert lxd.certificate(fingerprint)["name"] == "renamed"
        assert_clean_error(restore(dedupe, zone_id, check=False), 60, "exists", zone, "--force")
        assert_clean_error(restore(dedupe, cert_id, check=False), 60, "exists", fingerprint, "--force")
        assert restore(dedupe, zone_id, "--force")[0]["action"] == "updated"
        assert restore(dedupe, cert_id, "--force")[0]["action"] == "updated"
        assert_same_zone(p.client.network_zone(zone), before_zone)
        after_cert = lxd.certificate(fingerprint)
        for key in CERTIFICATE_FIELDS:
            assert after_cert[key] == before_cert[key], key


# ======================================================================================
# whole runs, a second endpoint


def test_run_restored_into_a_fresh_project(lxd: LXDClient, lxd_project: Any, scratch_project: str,
                                           dedupe: RunCli) -> None:
    """Projects let one daemon play an empty server: everything of a run comes back."""
    p = lxd_project
    set_features(lxd, p.name, images="true", networks="true")
    p.client.create_profile({"name": "web", "description": "", "config": {"user.role": "web"}, "devices": {}})
    p.client.create_network_acl({"name": "acl1", "description": "", "config": {}, "egress": [], "ingress": []})
    p.client.create_custom_volume(POOL, "vol1", config={"user.k": "v"})
    image = _split_image(lxd, p.name)
    p.client.add_image_alias("t-split", image)
    c = p.container(image="t-split")
    dedupe("init")
    run = backup(dedupe, "--project", p.name)
    assert "lxd/global/database/global" not in run["by_group"]  # server-wide: not in a project's run
    done = restore(dedupe, "--run", run["run"][:10], "--project", scratch_project)
    assert not [o for o in done if o["error"]], done
    kinds = [o["kind"] for o in done]
    assert kinds == sorted(kinds, key=RUN_ORDER.index)
    assert {(o["kind"], o["name"]) for o in done} >= {("project", scratch_project), ("network-acl", "acl1"),
                                                      ("profile", "default"), ("profile", "web"), ("image", image),
                                                      ("volume", "vol1"), ("instance", c)}
    new = LXDClient.connect(project=scratch_project)
    with new:
        assert lxd.project_record(scratch_project)["config"] == lxd.project_record(p.name)["config"]
        for get in (lambda cl: cl.profile("web"), lambda cl: cl.profile("default"), lambda cl: cl.network_acl("acl1")):
            assert strip_read_only("profile", get(new)) == strip_read_only("profile", get(p.client))
        assert new.custom_volume(POOL, "vol1")["config"] == {"user.k": "v"}
        assert [(i["fingerprint"], [a["name"] for a in i["aliases"]]) for i in new.images()] == [(image, ["t-split"])]
        assert [s["name"] for s in new.snapshots(c)] == ["snap0"]
        stored = (p.rootfs(c).parents[1] / f"{scratch_project}_{c}" / "backup.yaml").read_text()
        assert f"  project: {scratch_project}\n" in stored and f"  project: {p.name}\n" not in stored
        new.start(c)
        wait_until_exec_works(scratch_project, c)
        out = subprocess.run(["lxc", "--project", scratch_project, "exec", c, "--", "cat", "/root/hello"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        assert out == "hello\n"
    # again: everything is there now
    again = restore(dedupe, "--run", run["run"], "--project", scratch_project, check=False)
    assert_clean_error(again, 69, "objects failed", "exists", f"instance {c!r}", "--force")


def test_backup_and_restore_over_https(lxd_project: Any, dedupe: RunCli, https_remote: Any) -> None:
    """A second endpoint: the same daemon over HTTPS, a trusted client certificate and
    its pinned server certificate."""
    p = lxd_project
    c = p.container()
    dedupe("init")
    run = backup(dedupe, c, "--project", p.name, "--host", "lxd-over-https", *https_remote.options())
    assert run["server"]["endpoint"] == https_remote.url
    obj = run["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert json.loads(dedupe("show", obj["id"], "--json").stdout)["host"] == "lxd-over-https"  # --host wins
    done = restore(dedupe, obj["id"], "--as", f"{c}-remote", "--project", p.name, *https_remote.options())
    assert done[0]["name"] == f"{c}-remote"
    p.containers.append(f"{c}-remote")
    p.client.start(f"{c}-remote")
    assert p.lxc("exec", f"{c}-remote", "--", "cat", "/root/hello").stdout == "hello\n"
    assert_same_tree(listing(p.rootfs(c) / "root"), p.rootfs(f"{c}-remote") / "root")


# ======================================================================================
# consistency and failures (through the library, to reach inside the run)


def test_freeze_holds_while_lxd_stages_the_backup_and_always_thaws(lxd_project: Any, tmp_path: Path) -> None:
    p = lxd_project
    c = p.container(files=False, snapshot=None)
    repo = api.init(str(tmp_path / "repo"))
    client = p.client
    seen: list[str] = []
    real_create = client.create_instance_backup

    def create(name: str, *args: Any, **kwargs: Any) -> str:
        seen.append(client.instance(name)["status"])
        return real_create(name, *args, **kwargs)

    client.create_instance_backup = create  # type: ignore[method-assign]
    selection = LXDSelection((c,), p.name, frozenset({"instances"}), consistent="freeze", via="export")
    result = backup_lxd(repo, client, selection)
    assert not result.failures and seen == ["Frozen"]
    assert client.instance(c)["status"] == "Running"
    assert api.get_backup(repo, result.objects[0].backup_id).manifest.meta["lxd"]["consistency"] == "frozen"

    def refuse(name: str, *args: Any, **kwargs: Any) -> str:
        raise LXDNotFound("LXD: instance gone while frozen (simulated)")

    client.create_instance_backup = refuse  # type: ignore[method-assign]
    selection = LXDSelection((c,), p.name, frozenset({"instances"}), consistent="freeze", via="export")
    result = backup_lxd(repo, client, selection)
    assert [o.error for o in result.failures] == ["LXD: instance gone while frozen (simulated)"]
    assert client.instance(c)["status"] == "Running"  # thawed on the error too


class _CutStream(io.RawIOBase):
    """An export that breaks after ``limit`` bytes, as when the daemon dies."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__()
        self.stream, self.limit, self.done = stream, limit, 0

    def read(self, n: int = -1, /) -> bytes:
        if self.done >= self.limit:
            raise LXDStreamBroken(f"LXD stream {self.stream.what} broke after {self.done} bytes (simulated)")
        data = self.stream.read(min(n, self.limit - self.done) if n > 0 else self.limit - self.done)
        self.done += len(data)
        return data

    def close(self) -> None:
        self.stream.close()
        super().close()


def test_a_vanished_instance_and_a_cut_export_fail_alone(lxd_project: Any, tmp_path: Path) -> None:
    p = lxd_project
    keep, cut, gone = (p.container(files=False, snapshot=None) for _ in range(3))
    add_large_file(p, cut)
    repo = api.init(str(tmp_path / "repo"))
    client = p.client
    real_list, real_export = client.instances, client.export_instance_backup

    def instances(project: Any = None) -> list[dict[str, Any]]:
        listed = real_list(project)
        if any(i["name"] == gone for i in listed):  # listed, then deleted before its turn
            client.stop(gone, force=True)
            client.delete_instance(gone)
        return listed

    def export(name: str, backup_name: str, project: Any = None) -> Any:
        stream = real_export(name, backup_name, project)
        return _CutStream(stream, 1 << 20) if name == cut else stream

    client.instances = instances  # type: ignore[method-assign]
    client.export_instance_backup = export  # type: ignore[method-assign]
    result = backup_lxd(repo, client, LXDSelection(project=p.name, only=frozenset({"instances"}), via="export"))
    errors = {o.name: o.error for o in result.objects}
    assert errors[keep] is None
    assert f"instance {gone!r} not found" in str(errors[gone])
    assert "broke after 1048576 bytes" in str(errors[cut])
    with pytest.raises(IncompleteRun, match=f"2 of 3 objects failed: .*{gone}"):  # exit code 69
        result.raise_for_failures()
    groups = {b.manifest.group for b in api.list_backups(repo)}
    assert groups == {f"lxd/{p.name}/instance/{keep}"}  # nothing committed for the broken ones
    for name in (keep, cut):
        assert client.instance_backups(name) == []  # no server-side backup left behind


def test_a_stream_that_does_not_verify_is_not_imported(lxd_project: Any, tmp_path: Path) -> None:
    """The whole-stream BLAKE3 is checked before the last piece goes to LXD."""
    p = lxd_project
    c = p.container(files=False, snapshot=None)
    repo = api.init(str(tmp_path / "repo"))
    result = backup_lxd(repo, p.client, LXDSelection((c,), p.name, frozenset({"instances"}), via="export"))
    info = api.get_backup(repo, result.objects[0].backup_id)
    info.manifest.stream_b3 = bytes(32)
    with pytest.raises(RestoreMismatch, match="BLAKE3"):
        restore_backup(repo, p.client, info, RestoreOptions(as_name=f"{c}-bad"))
    assert [i["name"] for i in p.client.instances()] == [c]


# ======================================================================================
# bad input through the command line


def test_clean_errors(lxd_project: Any, dedupe: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dedupe("init")
    (tmp_path / "notes").write_bytes(b"not LXD\n")
    plain = json.loads(dedupe("backup", "stream", "notes", str(tmp_path / "notes"), "--json").stdout)["id"]
    assert_clean_error(dedupe("restore", plain, "--to-lxd", check=False), 68, plain[:12], "not an LXD object")
    dump = backup(dedupe, "--only", "database")["by_group"]["lxd/global/database/global"]["id"]
    assert_clean_error(dedupe("restore", dump, "--to-lxd", check=False), 32, "database", "--to-file")
    assert_clean_error(dedupe("restore", "--run", "f" * 12, "--to-lxd", check=False), 30, "no LXD backup run")
    run = backup(dedupe, "--project", lxd_project.name, "--only", "config")
    record = run["by_group"][f"lxd/global/project/{lxd_project.name}"]["id"]
    port = 1 + int.from_bytes(os.urandom(2), "big") % 60000
    for args in (["backup", "lxd"], ["restore", record, "--to-lxd"]):
        assert_clean_error(dedupe(*args, "--remote", f"https://127.0.0.1:{port}", check=False), 61, "unreachable",
                       f"127.0.0.1:{port}")
    monkeypatch.setenv("LXD_DIR", str(tmp_path / "no-lxd"))
    missing = str(tmp_path / "no-lxd" / "unix.socket")
    for args in (["backup", "lxd"], ["restore", record, "--to-lxd"], ["restore", "--run", run["run"], "--to-lxd"]):
        assert_clean_error(dedupe(*args, check=False), 61, "unreachable", missing)
    assert_clean_error(dedupe("restore", plain, "--to-lxd", check=False), 68)  # said before connecting
