"""Issue #16, as a new user meets LXD backups: what ``--recover`` brings back, instances
with their volumes, names and filters, runs, series, running state, progress, "new",
identities, records and the database. Against the real LXD daemon, each test in its own
project."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli, assert_clean_error

from dedupe import api
from dedupe.cli.common import human
from dedupe.lxd.api import LXDError
from dedupe.lxd.backup import backup_lxd
from dedupe.lxd.source import objects
from dedupe.lxd.source.plan import LXDSelection

from lxd.conftest import pool_source
from lxd.test_backup_restore import add_large_file, backup, restore

pytestmark = pytest.mark.lxd
POOL = "default"


def orphan(p: Any, name: str) -> None:
    """Drop LXD's database records of a stopped container, keeping its files in the pool:
    what LXD's recovery then finds as an unknown volume."""
    where = f"name='{name}' AND project_id=(SELECT id FROM projects WHERE name='{p.name}')"
    sql = f"DELETE FROM storage_volumes WHERE {where} AND type=0; DELETE FROM instances WHERE {where}"
    subprocess.run(["lxd", "sql", "global", sql], check=True, capture_output=True, timeout=60)


# -- 6. --recover says what it brings back


@pytest.fixture
def own_dir_pool(lxd_project: Any) -> Iterator[str]:
    """A dir pool of this test's own: LXD's recovery scans a whole pool, and the shared
    ``default`` pool holds other tests' instances (a leftover there breaks every
    recovery). Its instances, and any files left in it, go with it."""
    p = lxd_project
    pool = f"dt{secrets.token_hex(4)}"
    p.admin.create_storage_pool({"name": pool, "driver": "dir", "config": {}, "description": "dedupe test"})
    try:
        yield pool
    finally:
        for inst in p.client.instances():
            if inst["expanded_devices"].get("root", {}).get("pool") == pool:
                with contextlib.suppress(LXDError):
                    p.client.stop(inst["name"], force=True)
                p.client.delete_instance(inst["name"])
        source = pool_source(p.admin, pool)
        for sub in ("containers", "containers-snapshots"):
            for d in (source / sub).glob("*") if (source / sub).exists() else []:
                shutil.rmtree(d)
        p.admin.delete_storage_pool(pool)


def test_recover_lists_the_other_unknown_volumes_and_needs_yes(lxd_project: Any, own_dir_pool: str,
                                                               dedupe: RunCli) -> None:
    p, pool = lxd_project, own_dir_pool
    root = {"root": {"type": "disk", "path": "/", "pool": pool}}
    c, other = f"c{secrets.token_hex(3)}", f"c{secrets.token_hex(3)}"
    for name in (c, other):
        p.client.create_instance(name, "tiny", devices=root)
        p.containers.append(name)
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name)["by_group"][f"lxd/{p.name}/instance/{c}"]
    p.client.delete_instance(c)
    orphan(p, other)
    done = restore(dedupe, obj["id"], "--recover", check=False)
    assert_clean_error(done, 60, "every unknown volume", f"container {other} (project {p.name})", "--yes")
    assert not (pool_source(p.admin, pool) / "containers" / f"{p.name}_{c}").exists()  # nothing laid out
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


# -- 5. runs are first-class


def test_runs_are_listed_shown_and_named_where_a_backup_id_is_expected(lxd_project: Any, dedupe: RunCli,
                                                                        tmp_path: Any) -> None:
    p = lxd_project
    c = p.container(start=False, files=False, snapshot=None)
    dedupe("init")
    run = backup(dedupe, c, "--project", p.name)
    r = run["run"]
    backup(dedupe, "--project", p.name, "--only", "config")  # a second run
    listed = json.loads(dedupe("list", "--json").stdout)
    assert r in {b["run"] for b in listed} and len({b["run"] for b in listed}) == 2
    text = dedupe("list").stdout.decode().splitlines()
    assert "RUN" in text[0].split() and sum(r[:12] in line for line in text) == len(run["objects"])
    mine = json.loads(dedupe("list", "--run", r[:8], "--json").stdout)
    assert {b["group"] for b in mine} == set(run["by_group"]) and {b["run"] for b in mine} == {r}
    assert_clean_error(dedupe("list", "--run", "0" * 31 + "g", check=False), 30, "no backup run")
    shown = json.loads(dedupe("show", r[:12], "--json").stdout)
    assert shown["run"] == r and {b["group"] for b in shown["backups"]} == set(run["by_group"])
    assert f"lxd/{p.name}/instance/{c}" in dedupe("show", r[:12]).stdout.decode()
    for args in (["restore", r[:12], "--to-lxd"], ["restore", r, "--to-file", str(tmp_path / "x")], ["ls", r[:12]]):
        assert_clean_error(dedupe(*args, check=False), 30, "id of a backup run", f"dedupe list --run {r[:12]}"[:30])
    usage = dedupe("restore", "--run", r[:12], "--project", p.name, check=False)
    assert usage.returncode == 2 and "add --to-lxd" in usage.stderr.decode()


# -- 9. show prints the LXD details; one meaning of "new"


def test_show_prints_lxd_details_and_new_means_stored_bytes_added(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(start=False, files=False)
    dedupe("init")
    text = dedupe("backup", "lxd", c, "--project", p.name).stdout.decode()
    listed = {b["group"]: b for b in json.loads(dedupe("list", "--json").stdout)}
    inst = listed[f"lxd/{p.name}/instance/{c}"]
    line = next(x for x in text.splitlines() if f"lxd/{p.name}/instance/{c}" in x)
    row = next(x for x in dedupe("list").stdout.decode().splitlines() if inst["short_id"] in x)
    new = human(inst["new_stored"])
    assert f"read, {new} new" in line and f" {new} " in row and "stored)" not in line
    shown = dedupe("show", inst["id"]).stdout.decode()
    assert f"lxd object:    instance {c} in project {p.name}" in shown
    assert "snapshots:     snap0" in shown and f"new:           {new}" in shown


# -- 4. instance-only backups form their own series


def test_instance_only_backups_form_their_own_series(lxd_project: Any, dedupe: RunCli, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    p = lxd_project
    c = p.container(start=False, files=False)  # with snapshot snap0
    repo_dir = tmp_path / "repo"
    repo = api.init(str(repo_dir))
    sel = LXDSelection(names=(c,), project=p.name, only=frozenset({"instances"}))
    full = backup_lxd(repo, p.client, sel).objects[0]
    real_group_of = objects.group_of
    with monkeypatch.context() as m:  # as dedupe made them before: in the full backups' group
        m.setattr(objects, "group_of", lambda kind, project, name, pool="", only=False:
                  real_group_of(kind, project, name, pool))
        legacy = backup_lxd(repo, p.client, replace(sel, instance_only=True)).objects[0]
    only = backup_lxd(repo, p.client, replace(sel, instance_only=True)).objects[0]
    assert (full.group, legacy.group, only.group) == (
        f"lxd/{p.name}/instance/{c}", f"lxd/{p.name}/instance/{c}", f"lxd/{p.name}/instance-only/{c}")
    plan = dedupe("prune", "--keep-last", "1", "--dry-run", repo=repo_dir).stdout.decode()
    assert f"lxd/{p.name}/instance-only/{c}" in plan
    dedupe("prune", "--keep-last", "1", repo=repo_dir)
    # the newest backup of the full group is the legacy instance-only one: it counts in
    # the instance-only series, so the full backup (the one with the snapshots) stays
    assert {b.id for b in api.list_backups(repo)} == {full.backup_id, only.backup_id}


# -- 1. replace keeps the running state; --start, --no-start


def test_replace_keeps_the_running_state_unless_no_start_and_start_starts(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(files=False)  # running
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--only", "instances")["by_group"][f"lxd/{p.name}/instance/{c}"]
    done = restore(dedupe, obj["id"], "--force", "--no-start")[0]
    assert done["warnings"] == ["it was running: stopped for the replacement; left stopped (--no-start)"]
    assert p.client.instance(c)["status"] == "Stopped"
    text = dedupe("restore", obj["id"], "--to-lxd", "--force", "--start").stdout.decode()
    assert f"replaced instance {c}" in text and "note: started (--start)" in text
    assert p.client.instance(c)["status"] == "Running"
    done = restore(dedupe, obj["id"], "--force")[0]  # the default: running again, as it was
    assert done["warnings"] == ["it was running: stopped for the replacement and started again"]
    assert p.client.instance(c)["status"] == "Running"
    copy = restore(dedupe, obj["id"], "--as", f"{c}-copy", "--start")[0]
    assert copy["action"] == "created" and copy["warnings"][-1] == "started (--start)"  # after its new identity
    assert p.client.instance(f"{c}-copy")["status"] == "Running"
    p.client.stop(f"{c}-copy", force=True)
    usage = dedupe("restore", obj["id"], "--to-file", "x", "--no-start", check=False)
    assert usage.returncode == 2 and "--start/--no-start" in usage.stderr.decode()


def test_restore_progress_redraws_at_most_about_ten_times_a_second(lxd_project: Any, dedupe: RunCli,
                                                                   repo_path: Path) -> None:
    p = lxd_project
    c = p.container(start=False, files=False, snapshot=None)
    add_large_file(p, c, 10 << 20)
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--only", "instances")["by_group"][f"lxd/{p.name}/instance/{c}"]
    argv = [sys.executable, "-m", "dedupe", "restore", obj["id"], "--to-lxd", "--as", f"{c}-copy"]
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    started = time.monotonic()
    pid, fd = pty.fork()  # on a terminal, as a user sees it
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    out = b""
    with contextlib.suppress(OSError):  # EIO: the child closed the terminal
        while chunk := os.read(fd, 65536):
            out += chunk
    _, status = os.waitpid(pid, 0)
    elapsed = time.monotonic() - started
    p.containers.append(f"{c}-copy")
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert b"created instance" in out
    redraws = out.count(b"\r\x1b[K")
    assert 1 <= redraws <= 10 * elapsed + 3, (redraws, elapsed)


# -- 7. --as copies get fresh identities


IDENTITY = ("volatile.uuid", "volatile.cloud-init.instance-id", "volatile.eth1.hwaddr")


def test_as_copies_get_fresh_identities_unless_keep_identity(lxd_project: Any, dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container(start=False, files=False, snapshot=None)
    p.lxc("config", "device", "add", c, "eth1", "nic", "nictype=p2p")
    original = {k: p.client.instance(c)["config"][k] for k in IDENTITY}
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--only", "instances")["by_group"][f"lxd/{p.name}/instance/{c}"]
    done = restore(dedupe, obj["id"], "--as", f"{c}-copy")[0]
    p.containers.append(f"{c}-copy")
    assert done["warnings"] == ["a copy: new volatile.uuid, cloud-init instance id, MAC address of eth1 "
                                "(--keep-identity keeps the original's)"]
    copy = p.client.instance(f"{c}-copy")["config"]
    assert all(copy[k] and copy[k] != original[k] for k in IDENTITY), (copy, original)
    assert copy["volatile.eth1.hwaddr"].startswith("00:16:3e:")
    p.client.start(f"{c}-copy")  # LXD takes the new identity
    p.client.stop(f"{c}-copy", force=True)
    kept = restore(dedupe, obj["id"], "--as", f"{c}-same", "--keep-identity")[0]
    p.containers.append(f"{c}-same")
    assert kept["warnings"] == []
    assert {k: p.client.instance(f"{c}-same")["config"][k] for k in IDENTITY} == original
    usage = dedupe("restore", obj["id"], "--to-lxd", "--keep-identity", check=False)
    assert usage.returncode == 2 and "--keep-identity goes with --as" in usage.stderr.decode()


# -- 8. records without other projects' names, leases, the database dump


def test_records_leave_used_by_out_networks_keep_leases_dumps_load_into_sqlite(
        lxd: Any, lxd_project: Any, dedupe: RunCli, tmp_path: Path) -> None:
    p = lxd_project
    tag = secrets.token_hex(3)
    net, c = f"dtbr{tag}", f"c{tag}"
    subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
    try:
        lxd.create_network({"name": net, "type": "bridge", "description": "leases",
                            "config": {"ipv4.address": f"{subnet}.1/24", "ipv4.nat": "false",
                                       "ipv6.address": "none", "ipv4.firewall": "false",
                                       "ipv6.firewall": "false"}}, "default")
        p.client.create_instance(c, "tiny", devices={
            "eth0": {"type": "nic", "network": net, "name": "eth0", "ipv4.address": f"{subnet}.10"}})
        p.containers.append(c)
        dedupe("init")
        run = backup(dedupe, c, "--project", p.name)
        network = json.loads(dedupe("show", run["by_group"][f"lxd/default/network/{net}"]["id"], "--json").stdout)
        leases = network["meta"]["lxd"]["leases"]
        assert {"hostname": c, "address": f"{subnet}.10"}.items() <= next(
            lease for lease in leases if lease.get("hostname") == c).items()
        for group in (f"lxd/{p.name}/profile/default", f"lxd/global/storage-pool/{POOL}", f"lxd/default/network/{net}"):
            out = tmp_path / group.replace("/", "_")
            dedupe("restore", run["by_group"][group]["id"], "--to-file", str(out))
            assert "used_by" not in json.loads(out.read_bytes()), group
        # the dump comes back as a file that SQLite loads: the server's state, to query
        dumps = backup(dedupe, "--only", "database")["by_group"]
        dump = tmp_path / "global.sql"
        dedupe("restore", dumps["lxd/global/database/global"]["id"], "--to-file", str(dump))
        db = sqlite3.connect(str(tmp_path / "global.db"))
        db.executescript(dump.read_text())
        names = db.execute("SELECT instances.name FROM instances JOIN projects ON projects.id = instances.project_id "
                           "WHERE projects.name = ?", (p.name,)).fetchall()
        assert names == [(c,)]
        db.close()
    finally:
        with contextlib.suppress(LXDError):
            p.client.delete_instance(c)
        with contextlib.suppress(LXDError):
            lxd.delete_network(net, "default")


def test_show_run_names_the_objects_that_failed(lxd_project: Any, tmp_path: Path) -> None:
    p = lxd_project
    keep, gone = (p.container(start=False, files=False, snapshot=None) for _ in range(2))
    repo = api.init(str(tmp_path / "repo"))
    client, real_list = p.client, p.client.instances

    def instances(project: Any = None) -> list[dict[str, Any]]:
        listed = real_list(project)
        if any(i["name"] == gone for i in listed):  # listed, then deleted before its turn
            client.delete_instance(gone)
        return listed

    client.instances = instances  # type: ignore[method-assign]
    result = backup_lxd(repo, client, LXDSelection(project=p.name, only=frozenset({"instances"})))
    api.record_run(repo, result.to_json())  # as `backup lxd` does
    run = api.get_run(repo, result.run[:12])
    assert [b.manifest.group for b in run.backups] == [f"lxd/{p.name}/instance/{keep}"]
    assert [f["group"] for f in run.failed] == [f"lxd/{p.name}/instance/{gone}"]
    assert "not found" in run.failed[0]["error"] and run.to_json()["failed"] == run.failed
