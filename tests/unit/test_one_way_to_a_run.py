"""One way to find a run, one grouping of backups into runs, one table of LXD roots:
``api.get_run`` behind ``dedupe.lxd.stored.find_run`` (restore --to-lxd --run),
``api.group_runs`` behind ``api.runs`` and the web UI's runs page, and
``instance_view.lxd_root`` behind restores, ls and the web UI's tree."""

from __future__ import annotations

import io

import pytest

from dedupe import api
from dedupe.backup.session import BackupSession
from dedupe.backup.stream import backup_stream
from dedupe.entries import Entry
from dedupe.lxd.stored import find_run
from dedupe.repository import AmbiguousBackupId, BackupNotFound, Repository
from dedupe.restore.instance_view import lxd_root, view_of
from dedupe.ui.tree import Tree


def _backup(repo: Repository, group: str, run: str, lxd: bool) -> str:
    meta = {"lxd": {"kind": "volume", "name": group.rsplit("/", 1)[-1], "server": {"server_name": "s"}}} if lxd else {}
    return backup_stream(BackupSession(repo, kind="stream", group=group, run=run, meta=meta),
                         io.BytesIO(group.encode())).id


def test_find_run_is_get_run_among_lxd_backups(mem_repo: Repository) -> None:
    lxd_run, other_run = "ab" + "1" * 30, "ab" + "2" * 30
    first = _backup(mem_repo, "lxd/default/volume/v1", lxd_run, True)
    second = _backup(mem_repo, "lxd/default/volume/v2", lxd_run, True)
    _backup(mem_repo, "files", other_run, False)
    # "ab" names two runs, but one LXD run: find_run takes it; get_run (every run) refuses
    run, backups = find_run(mem_repo, "ab")
    assert run == lxd_run and [b.id for b in backups] == [first, second]
    assert [b.id for b in api.get_run(mem_repo, lxd_run).backups] == [first, second]
    with pytest.raises(AmbiguousBackupId, match="2 runs start with it"):
        api.get_run(mem_repo, "ab")
    with pytest.raises(BackupNotFound, match="no LXD backup run 'ab2'"):
        find_run(mem_repo, "ab2")
    assert api.get_run(mem_repo, "ab2").run == other_run
    with pytest.raises(BackupNotFound, match="no LXD backup run ''"):
        find_run(mem_repo, " ")


def test_group_runs_is_what_runs_returns(mem_repo: Repository) -> None:
    _backup(mem_repo, "a", "r1" + "0" * 30, False)
    _backup(mem_repo, "b", "r2" + "0" * 30, False)
    _backup(mem_repo, "c", "r1" + "0" * 30, False)
    grouped = api.group_runs(api.list_backups(mem_repo))
    assert [(r.run, [b.manifest.group for b in r.backups]) for r in grouped] == \
        [(r.run, [b.manifest.group for b in r.backups]) for r in api.runs(mem_repo)]
    assert [[b.manifest.group for b in r.backups] for r in grouped] == [["a", "c"], ["b"]]
    assert [r.run[:2] for r in api.group_runs(api.list_backups(mem_repo), "R2")] == ["r2"]


def test_failed_objects_of_a_run_record() -> None:
    rec = {"run": "x", "objects": [{"group": "lxd/a", "error": "boom"}, {"group": "lxd/b"}, {"group": "lxd/c",
                                                                                            "error": ""}]}
    assert api.failed_objects(rec) == [{"group": "lxd/a", "error": "boom"}]
    assert api.failed_objects({"run": "x"}) == []


@pytest.mark.parametrize(("path", "root"), [
    ("backup/container/rootfs", ("backup/container/rootfs", "container /", "instance")),
    ("backup/container/rootfs/etc/x", ("backup/container/rootfs", "container /", "instance")),
    ("backup/container/rootfsx", None),
    ("backup/snapshots/s1/rootfs/a", ("backup/snapshots/s1/rootfs", "snapshot s1 /", "instance")),
    ("backup/snapshots/s1/other", None),
    ("backup/virtual-machine", ("backup/virtual-machine", "virtual machine", "vm")),
    ("backup/volume/a/b", ("backup/volume", "volume /", "volume")),
    ("backup/volume-snapshots/s2/a", ("backup/volume-snapshots/s2", "volume snapshot s2 /", "volume")),
    ("backup/volume-snapshots", None),
    ("backup/index.yaml", None),
    ("rootfs/backup/container/rootfs", None),
])
def test_one_table_of_lxd_roots(path: str, root: tuple[str, str, str] | None) -> None:
    assert lxd_root(path) == root == api.lxd_root(path)


def test_the_tree_and_the_restore_view_agree_on_roots() -> None:
    paths = ["backup/container/rootfs/etc", "backup/snapshots/s1/rootfs/etc", "backup/virtual-machine",
             "backup/index.yaml"]
    t = Tree.build((Entry(p, "d"), 0) for p in paths)
    assert t.roots == [("container /", "backup/container/rootfs"), ("snapshot s1 /", "backup/snapshots/s1/rootfs"),
                       ("virtual machine", "backup/virtual-machine")]
    view = view_of({"lxd": {"kind": "instance", "name": "c1"}}, ["/etc"])
    assert view is not None
    for label, root in t.roots[:2]:
        assert view._root_of(root + "/etc") == root  # noqa: SLF001
    assert view._root_of("backup/virtual-machine/x") is None  # noqa: SLF001  (a VM's disk has no owners to map)
    assert view._root_of("backup/volume/x") is None  # noqa: SLF001  (an instance's view: not a volume root)
