"""Issue #16, as a new user meets LXD backups: what ``--recover`` brings back, instances
with their volumes, names and filters, runs, series, running state, progress, "new",
identities, records and the database. Against the real LXD daemon, each test in its own
project."""

from __future__ import annotations

import json
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
