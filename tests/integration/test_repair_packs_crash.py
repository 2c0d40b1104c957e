"""Issue #18, point 1: ``repair packs`` killed at either side of its commit point (the
segment that replaces the damaged pack's) leaves a repository that opens, restores what
is intact and checks no worse than before; a second run (or gc) finishes the job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import damage_testing
from dedupe import api
from dedupe.maintenance.repair_packs import repair_packs
from dedupe_testing import RunCli
from repo_format import layout


class Killed(Exception):
    pass


def _damaged_table(dedupe: RunCli, repo_path: Path) -> tuple[str, bytes, str]:
    """A backup whose pack has one flipped byte in its table: every blob still verifies."""
    dedupe("init")
    data = os.urandom(3_000_000)
    bid = json.loads(dedupe("backup", "stream", "a", "-", "--json", input=data).stdout)["id"]
    (pack_path,) = (p for p, _ in api.open_storage(str(repo_path)).list(layout.DATA_DIR))
    damage_testing.damage(str(repo_path), pack_path, at=-20)
    assert dedupe("check", "--read-data", check=False).returncode == 25
    return bid, data, pack_path


def _packs(repo_path: Path) -> set[str]:
    return {p for p, _ in api.open_storage(str(repo_path)).list(layout.DATA_DIR)}


def test_killed_before_the_commit_point_changes_nothing_readers_see(dedupe: RunCli, repo_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bid, data, pack_path = _damaged_table(dedupe, repo_path)
    segments = {p for p, _ in api.open_storage(str(repo_path)).list(layout.INDEX_DIR)}

    def kill() -> None:
        raise Killed

    with pytest.raises(Killed):
        repair_packs(api.open_repo(str(repo_path)), before_commit=kill)
    # the new pack is stored but unindexed; the damaged one and the index are as they were
    assert pack_path in _packs(repo_path) and len(_packs(repo_path)) == 2
    assert {p for p, _ in api.open_storage(str(repo_path)).list(layout.INDEX_DIR)} == segments
    p = dedupe("check", "--read-data", check=False)
    assert p.returncode == 25 and "1 pack(s) not in the index" in p.stdout.decode()
    report = json.loads(dedupe("repair", "packs", "--json").stdout)
    assert report["lost_chunks"] == [] and report["backups_affected"] == {}
    assert dedupe("restore", bid, "--stdout").stdout == data
    dedupe("gc")  # the first run's unindexed copy goes
    dedupe("check", "--read-data")
    assert len(_packs(repo_path)) == 1 and dedupe("restore", bid, "--stdout").stdout == data


def test_killed_after_the_commit_point_leaves_a_clean_repository(dedupe: RunCli, repo_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bid, data, pack_path = _damaged_table(dedupe, repo_path)
    repo = api.open_repo(str(repo_path))
    real_delete = repo.storage.delete
    kills = [1]

    def kill(name: str) -> None:
        if kills and name.startswith(layout.DATA_DIR):  # the first delete comes right after the commit point
            kills.pop()
            raise Killed
        real_delete(name)  # the lock is still released, as a dead process's would be broken

    monkeypatch.setattr(repo.storage, "delete", kill)
    with pytest.raises(Killed):
        repair_packs(repo)
    assert pack_path in _packs(repo_path)
    p = dedupe("check", "--read-data")
    assert "1 pack(s) not in the index" in p.stdout.decode()
    assert dedupe("restore", bid, "--stdout").stdout == data
    dedupe("gc")  # removes the damaged pack, now unindexed, and the superseded segment
    assert pack_path not in _packs(repo_path)
    dedupe("check", "--read-data")
    assert dedupe("restore", bid, "--stdout").stdout == data
