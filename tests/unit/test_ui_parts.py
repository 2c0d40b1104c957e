"""The web UI's and the metrics' parts without a server: the browsable tree, file
content (sparse files, tar data prefixes), the listen rule, the records file, label
escaping."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from dedupe import api, metrics, records
from dedupe.cli.ui import is_loopback, parse_listen
from dedupe.entries import Entry
from dedupe.repository import Repository
from dedupe.ui.tree import Tree


def test_tree_lists_children_implied_directories_hardlinks_and_lxd_roots() -> None:
    entries = [
        (Entry("backup/container/rootfs/etc/hostname", "f", size=3), 0),  # its directories never named
        (Entry("backup/container/rootfs/etc/alias", "h", link="backup/container/rootfs/etc/hostname"), 0),
        (Entry("backup/snapshots/s1/rootfs", "d"), 0),
        (Entry("backup/snapshots/s1/rootfs/old", "l", link="/etc/hostname"), 0),
        (Entry("backup/index.yaml", "f", size=10), 0),
    ]
    t = Tree.build(entries)
    assert [p for p, _ in t.listing("")] == ["backup"]
    assert [p for p, _ in t.listing("backup")] == ["backup/container", "backup/snapshots", "backup/index.yaml"]
    assert t.is_dir("backup/container/rootfs/etc") and not t.is_dir("backup/index.yaml")
    assert t.roots == [("container /", "backup/container/rootfs"), ("snapshot s1 /", "backup/snapshots/s1/rootfs")]
    assert t.root_of("backup/container/rootfs/etc") == ("container /", "backup/container/rootfs")
    assert t.root_of("backup/index.yaml") is None
    found = t.file("backup/container/rootfs/etc/alias")
    assert found is not None and found[0].path == "backup/container/rootfs/etc/hostname"
    assert t.file("backup/snapshots/s1/rootfs/old") is None  # a symlink has no content to give
    assert t.file("backup/container") is None


def test_entry_content_of_tar_members_and_sparse_files(mem_repo: Repository, tmp_path: Path) -> None:
    big = os.urandom(3_000_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("a/small", b"tiny\n"), ("a/big", big), ("a/empty", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    done = api.do_backup_tar(mem_repo, "g", io.BytesIO(buf.getvalue()))
    t = Tree.build(api.tree_entries(mem_repo, done.manifest))
    for name, data in (("a/small", b"tiny\n"), ("a/big", big), ("a/empty", b"")):
        found = t.file(name)
        assert found is not None
        assert b"".join(api.entry_content(mem_repo, *found)) == data, name

    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"middle")
        f.truncate(9 << 20)
    done = api.do_backup_dir(mem_repo, "d", tree, use_files_cache=False)
    t = Tree.build(api.tree_entries(mem_repo, done.manifest))
    found = t.file("sparse")
    assert found is not None
    assert b"".join(api.entry_content(mem_repo, *found)) == (tree / "sparse").read_bytes()


@pytest.mark.parametrize(("listen", "host", "port", "loopback"), [
    ("127.0.0.1:8765", "127.0.0.1", 8765, True), ("localhost:80", "localhost", 80, True),
    ("[::1]:8765", "::1", 8765, True), (":9000", "127.0.0.1", 9000, True),
    ("0.0.0.0:8765", "0.0.0.0", 8765, False), ("[::]:1", "::", 1, False), ("backup.lan:8765", "backup.lan", 8765, False),
])
def test_listen_addresses(listen: str, host: str, port: int, loopback: bool) -> None:
    assert parse_listen(listen) == (host, port)
    assert is_loopback(host) is loopback


def test_records_are_kept_short_and_survive_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rid = os.urandom(16)
    assert records.read(rid) == [] and records.last(rid, "check") is None
    monkeypatch.setattr(records, "KEEP", 10)
    for i in range(25):
        records.append(rid, "check", {"n": i, "padding": "x" * 600})
    with open(records.records_path(rid), "ab") as f:
        f.write(b"{not json\n")
    records.append(rid, "prune", {"policy": {"keep_last": 1}})
    got = records.read(rid, "check")
    assert 10 <= len(got) <= 20 and got[-1]["n"] == 24
    assert records.last(rid, "prune") == {**records.last(rid, "prune"), "policy": {"keep_last": 1}}  # type: ignore[dict-item]


def test_metric_labels_are_escaped() -> None:
    fam = metrics.Family("dedupe_x_bytes", "help")
    fam.add(1.5, group='a"b\\c\nd')
    fam.add(3, group="plain")
    text = fam.render()
    assert 'dedupe_x_bytes{group="a\\"b\\\\c\\nd"} 1.5' in text and 'dedupe_x_bytes{group="plain"} 3' in text


def test_the_nightly_chart_has_every_day() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from dedupe.ui import pages

    def backup(day: str, new: int) -> SimpleNamespace:
        t = dt.datetime.fromisoformat(day + "T03:00:00").timestamp()
        return SimpleNamespace(manifest=SimpleNamespace(time_ns=int(t * 1e9), stats={"new_stored": new}))

    snap = SimpleNamespace(backups=[backup("2026-01-30", 10), backup("2026-01-30", 5), backup("2026-02-02", 7)])
    got = pages.nightly(snap)  # type: ignore[arg-type]
    assert got == {"labels": ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"], "new": [15, 0, 0, 7],
                   "stored": [15, 15, 15, 22]}
    assert pages.nightly(SimpleNamespace(backups=[])) == {"labels": [], "new": [], "stored": []}  # type: ignore[arg-type]
