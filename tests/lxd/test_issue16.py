"""Issue #16, as a new user meets LXD backups: what ``--recover`` brings back, instances
with their volumes, names and filters, runs, series, running state, progress, "new",
identities, records and the database. Against the real LXD daemon, each test in its own
project."""

from __future__ import annotations

import json
import secrets
import subprocess
from typing import Any

import pytest
from dedupe_testing import RunCli, assert_clean_error

from lxd.test_backup_restore import backup, restore

pytestmark = pytest.mark.lxd
POOL = "default"


def orphan(p: Any, name: str) -> None:
    """Drop LXD's database records of a stopped container, keeping its files in the pool:
    what LXD's recovery then finds as an unknown volume."""
    where = f"name='{name}' AND project_id=(SELECT id FROM projects WHERE name='{p.name}')"
    sql = f"DELETE FROM storage_volumes WHERE {where} AND type=0; DELETE FROM instances WHERE {where}"
    subprocess.run(["lxd", "sql", "global", sql], check=True, capture_output=True, timeout=60)


# -- 6. --recover says what it brings back


def test_recover_lists_the_other_unknown_volumes_and_needs_yes(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(files=False)
    other = p.container(start=False, files=False, snapshot=None)
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    p.client.stop(c, force=True)
    p.client.delete_instance(c)
    orphan(p, other)
    done = restore(dedupe, obj["id"], "--recover", check=False)
    assert_clean_error(done, 60, "every unknown volume", f"container {other} (project {p.name})", "--yes")
    assert not p.rootfs(c).parent.exists()  # refused before anything was laid out
    out = restore(dedupe, obj["id"], "--recover", "--yes")
    assert [(o["name"], o["action"]) for o in out] == [(c, "recovered")]
    assert out[0]["also"] == [f"container {other} (project {p.name})"]
    assert {i["name"] for i in p.client.instances()} == {c, other}
    usage = dedupe("restore", obj["id"], "--to-lxd", "--yes", check=False)
    assert usage.returncode == 2 and "--yes goes with --recover" in usage.stderr.decode()


# -- 2. instances bring their volumes


def instance_with_volume(p: Any, profile: bool = False) -> str:
    """A stopped container with custom volume ``data`` (holding f.txt) at /mnt/data, and
    with ``profile``: also profile ``web``."""
    p.client.create_custom_volume(POOL, "data")
    (p.volume_path("data") / "f.txt").write_bytes(b"data\n")
    profiles = ["default"]
    if profile:
        p.client.create_profile({"name": "web", "description": "", "config": {"user.role": "web"}, "devices": {}})
        profiles.append("web")
    c = f"c{secrets.token_hex(3)}"
    p.client.create_instance(c, "tiny", profiles=profiles)
    p.containers.append(c)
    p.lxc("config", "device", "add", c, "data", "disk", f"pool={POOL}", "source=data", "path=/mnt/data")
    return c


def test_naming_an_instance_backs_up_its_volume_and_with_deps_brings_it_back(lxd_project: Any,
                                                                             dedupe: RunCli) -> None:
    p = lxd_project
    c = instance_with_volume(p, profile=True)
    dedupe("init")
    text = dedupe("backup", "lxd", c, "--project", p.name).stdout.decode()
    assert f"lxd/{p.name}/volume/{POOL}/data" in text and f"(attached to {c})" in text
    run = backup(dedupe, c, "--project", p.name)
    assert run["by_group"][f"lxd/{p.name}/volume/{POOL}/data"]["reason"] == f"attached to {c}"
    inst = run["by_group"][f"lxd/{p.name}/instance/{c}"]["id"]
    p.client.delete_instance(c)
    p.client.delete_custom_volume(POOL, "data")
    p.client.delete_profile("web")
    assert_clean_error(restore(dedupe, inst, check=False), 60, f"volume '{POOL}/data'", "--with-deps")
    # the instance import fails after its profile and volume were made: both go again
    failed = restore(dedupe, inst, "--with-deps", "--as", "bad_name", check=False)
    assert_clean_error(failed, 64, "Invalid instance name")
    assert not p.client.custom_volumes(POOL) and "web" not in [x["name"] for x in p.client.profiles()]
    done = restore(dedupe, inst, "--with-deps")
    assert [(o["kind"], o["name"], o["action"]) for o in done] == [
        ("profile", "web", "created"), ("volume", "data", "created"), ("instance", c, "created")]
    assert (p.volume_path("data") / "f.txt").read_bytes() == b"data\n"
    assert p.client.instance(c)["devices"]["data"]["source"] == "data"


# -- 3. names and filters mean what they say


def test_names_that_match_nothing_and_empty_selections_are_errors(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(start=False, files=False, snapshot=None)
    p.client.create_custom_volume(POOL, "vol1")
    dedupe("init")
    assert_clean_error(dedupe("backup", "lxd", c, "nosuch", "--project", p.name, check=False), 63,
                       "no instance 'nosuch'", "nothing was backed up")
    assert_clean_error(dedupe("backup", "lxd", "vol1", "--project", p.name, check=False), 63,
                       "'vol1' is a custom volume", f"{POOL}/vol1")
    assert_clean_error(dedupe("backup", "lxd", f"{POOL}/nosuch", "--project", p.name, check=False), 63,
                       f"no custom volume '{POOL}/nosuch'")
    # the project shares the default project's images: it has none of its own
    assert_clean_error(dedupe("backup", "lxd", "--only", "images", "--project", p.name, check=False), 63,
                       "nothing to back up", "images")
    assert json.loads(dedupe("list", "--json").stdout) == []  # nothing was committed
    run = backup(dedupe, f"{POOL}/vol1", "--project", p.name)
    assert {o["kind"] for o in run["objects"]} - {"project", "profile", "storage-pool", "network", "network-acl",
                                                   "network-zone"} == {"volume"}
    assert f"lxd/{p.name}/volume/{POOL}/vol1" in run["by_group"]
