"""``restore --to-lxd --force`` against the real daemon: the backup is imported under a
temporary name and the original is replaced only once the copy is in. A repository
damaged so that the import fails midway (LXD has received megabytes by then) leaves the
original exactly as it was, running, with its snapshots and files; an image that is
there is never deleted to be re-imported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli, assert_clean_error

from dedupe import api
from dedupe.read import _refs_of, iter_items
from lxd.test_backup_restore import (
    POOL,
    _split_image,
    add_large_file,
    assert_same_tree,
    backup,
    listing,
    restore,
    set_features,
)

pytestmark = pytest.mark.lxd
TEMP_MARK = "-dedupe-"


def damage_the_end(repo_path: Path, backup_id: str) -> int:
    """Flip a byte in the blob of a chunk the backup's stream uses once, late (past 70%
    of it), so that a restore fails after LXD has received most of the stream. Returns
    how many bytes of the stream come before that chunk."""
    repo = api.open_repo(str(repo_path))
    refs = list(_refs_of(iter_items(repo, api.get_backup(repo, backup_id).manifest)))
    total = sum(n for _, n in refs)
    uses: dict[bytes, int] = {}
    for cid, _ in refs:
        uses[cid] = uses.get(cid, 0) + 1
    offset, late = 0, None
    for cid, n in refs:
        if offset > 0.7 * total and uses[cid] == 1:
            late = cid
            break
        offset += n
    assert late is not None
    loc = repo.locate(late)
    pack = next(f for f in (repo_path / "data").rglob(f"{loc.pack}*") if f.is_file())
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x40
    pack.write_bytes(bytes(data))
    return offset


def instance_state(p: Any, name: str) -> tuple[Any, ...]:
    """What must not change: status, uuid, snapshots, and a file's content."""
    record = p.client.instance(name)
    hello = p.lxc("exec", name, "--", "cat", "/root/hello").stdout
    return record["status"], record["config"]["volatile.uuid"], [s["name"] for s in p.client.snapshots(name)], hello


def no_temporaries(p: Any) -> None:
    names = [i["name"] for i in p.client.instances()] + [v["name"] for v in p.client.custom_volumes(POOL)]
    assert not [n for n in names if TEMP_MARK in n], names


def test_a_force_restore_that_fails_midway_leaves_the_running_original(lxd_project: Any, dedupe: RunCli,
                                                                       repo_path: Path) -> None:
    p = lxd_project
    c = p.container()  # running, with snap0 and /root/hello
    add_large_file(p, c, 24 << 20)  # more than one 16 MiB pack, near the end of the export
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--only", "instances")["by_group"][f"lxd/{p.name}/instance/{c}"]
    assert damage_the_end(repo_path, obj["id"]) > 16 << 20
    p.lxc("exec", c, "--", "sh", "-c", "echo since > /root/hello")
    before = instance_state(p, c)
    assert before[0] == "Running" and before[2] == ["snap0"]
    done = dedupe("restore", obj["id"], "--to-lxd", "--force", check=False)
    assert_clean_error(done, 20, "damaged")
    assert instance_state(p, c) == before == ("Running", before[1], ["snap0"], "since\n")
    assert [i["name"] for i in p.client.instances()] == [c]
    no_temporaries(p)


def test_a_force_restore_replaces_a_running_instance_and_starts_it_again(lxd: Any, lxd_project: Any,
                                                                         dedupe: RunCli) -> None:
    p = lxd_project
    c = p.container()
    dedupe("init")
    obj = backup(dedupe, c, "--project", p.name, "--only", "instances")["by_group"][f"lxd/{p.name}/instance/{c}"]
    p.lxc("exec", c, "--", "sh", "-c", "echo since > /root/hello")
    p.client.create_snapshot(c, "later")
    uuid = p.client.instance(c)["config"]["volatile.uuid"]
    done = restore(dedupe, obj["id"], "--force")[0]
    assert (done["action"], done["name"]) == ("replaced", c)
    assert done["warnings"] == ["it was running: stopped for the replacement and started again"]
    assert instance_state(p, c) == ("Running", uuid, ["snap0"], "hello\n")  # the backup's
    no_temporaries(p)
    # the backup.yaml files LXD keeps name the final instance (lxd recover reads them)
    source = p.rootfs(c).parents[2]
    yamls = [source / "containers" / f"{p.name}_{c}" / "backup.yaml",
             *(source / "containers-snapshots" / f"{p.name}_{c}").glob("*/backup.yaml")]
    assert len(yamls) == 2
    for yaml in yamls:
        text = yaml.read_text()
        assert f"  name: {c}\n" in text and TEMP_MARK not in text, yaml
    # the text output says what happened to the running instance
    text = dedupe("restore", obj["id"], "--to-lxd", "--force").stdout.decode()
    assert text.startswith(f"replaced instance {c} in project {p.name}")
    assert "note: it was running: stopped for the replacement and started again" in text
    # and LXD's recovery takes it back under its name after its database records are gone
    p.client.stop(c, force=True)
    where = f"name='{c}' AND project_id=(SELECT id FROM projects WHERE name='{p.name}')"
    sql = f"DELETE FROM storage_volumes WHERE {where} AND type=0; DELETE FROM instances WHERE {where}"
    subprocess.run(["lxd", "sql", "global", sql], check=True, capture_output=True, timeout=60)
    report = lxd.recover_validate([{"name": POOL}])
    assert [(v["name"], v["project"]) for v in report["UnknownVolumes"]] == [(c, p.name)]
    lxd.recover_import([{"name": POOL}])
    p.client.start(c)
    assert instance_state(p, c) == ("Running", uuid, ["snap0"], "hello\n")


def test_a_volume_is_replaced_through_a_copy_and_kept_when_that_fails(lxd_project: Any, dedupe: RunCli,
                                                                       repo_path: Path) -> None:
    p = lxd_project
    p.client.create_custom_volume(POOL, "vol1")
    p.write_tree(p.volume_path("vol1"))
    p.client.create_volume_snapshot(POOL, "vol1", "vsnap0")
    (p.volume_path("vol1") / "large.bin").write_bytes(os.urandom(24 << 20))
    backed_up = listing(p.volume_path("vol1"))
    dedupe("init")
    obj = backup(dedupe, "--project", p.name, "--only", "volumes")["by_group"][f"lxd/{p.name}/volume/{POOL}/vol1"]
    (p.volume_path("vol1") / "since").write_bytes(b"since\n")
    assert restore(dedupe, obj["id"], "--force")[0]["action"] == "replaced"
    assert_same_tree(backed_up, p.volume_path("vol1"))
    assert [s["name"] for s in p.client.volume_snapshots(POOL, "vol1")] == ["vol1/vsnap0"]
    no_temporaries(p)

    # in use by an instance: LXD cannot delete it, so it is refused before anything is sent
    c = p.container(start=False, files=False, snapshot=None)
    p.lxc("config", "device", "add", c, "data", "disk", f"pool={POOL}", "source=vol1", "path=/mnt")
    (p.volume_path("vol1") / "since").write_bytes(b"since\n")
    now = listing(p.volume_path("vol1"))
    assert_clean_error(dedupe("restore", obj["id"], "--to-lxd", "--force", check=False), 60, "vol1", "used by",
                       c, "detach")
    p.lxc("config", "device", "remove", c, "data")
    # damaged near the end: the import fails midway and the volume stays as it was
    assert damage_the_end(repo_path, obj["id"]) > 16 << 20
    assert_clean_error(dedupe("restore", obj["id"], "--to-lxd", "--force", check=False), 20, "damaged")
    assert_same_tree(now, p.volume_path("vol1"))
    assert [s["name"] for s in p.client.volume_snapshots(POOL, "vol1")] == ["vol1/vsnap0"]
    no_temporaries(p)


def test_a_force_restore_keeps_an_image_that_is_there(lxd: Any, lxd_project: Any, dedupe: RunCli) -> None:
    """The same fingerprint is the same content: the image stays (its upload time with
    it); its properties come back and its alias, moved to another image meanwhile,
    points at it again."""
    p = lxd_project
    set_features(lxd, p.name, images="true")
    split = _split_image(lxd, p.name)
    p.client.add_image_alias("t-split", split, "the split one")
    dedupe("init")
    obj = backup(dedupe, "--project", p.name, "--only", "images")["by_group"][f"lxd/{p.name}/image/{split}"]
    before = p.client.image(split)
    c = p.container(start=False, files=False, snapshot=None, image="t-split")
    other = p.client.publish_instance(c)
    p.client.update_image_alias("t-split", other, "moved")
    p.client.update_image(split, {**before, "properties": {"os": "changed"}})
    assert_clean_error(dedupe("restore", obj["id"], "--to-lxd", check=False), 60, "exist", "--force")
    assert restore(dedupe, obj["id"], "--force")[0]["action"] == "updated"
    after = p.client.image(split)
    assert after["uploaded_at"] == before["uploaded_at"] and after["properties"] == before["properties"]
    targets = {a["name"]: a["target"] for a in p.client.image_aliases()}
    assert targets["t-split"] == split
    assert json.loads(dedupe("show", obj["id"], "--json").stdout)["meta"]["lxd"]["name"] == split
