"""Issue #18, point 2: a backup whose manifest was deleted in the storage (by whoever can
write it) is reported by the next ``check`` on a machine that saw it, from the record in
its local cache; what this machine removed itself is not."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dedupe_testing import RunCli


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _backup(dedupe: RunCli, group: str) -> str:
    return str(json.loads(dedupe("backup", "stream", group, "-", "--json", input=os.urandom(50_000)).stdout)["id"])


def test_a_deleted_manifest_is_reported_once_by_check(dedupe: RunCli, repo_path: Path, own_cache: Path) -> None:
    dedupe("init")
    a, b = _backup(dedupe, "a"), _backup(dedupe, "b")
    dedupe("check")  # the record starts here
    records = list(own_cache.rglob("record-seen-backups.json"))
    assert len(records) == 1 and stat.S_IMODE(records[0].stat().st_mode) == 0o600
    c = _backup(dedupe, "c")  # made here: seen too
    for bid in (a, c):
        os.unlink(repo_path / "manifests" / bid)
    p = dedupe("check", check=False)
    assert p.returncode == 25
    out = p.stdout.decode()
    assert f"backup {a[:12]} (a, " in out and f"backup {c[:12]} (c, " in out and "vanished" in out
    assert b[:12] not in out
    dedupe("check")  # reported once: the record now holds what is there


def test_what_this_machine_forgets_or_prunes_has_not_vanished(dedupe: RunCli) -> None:
    dedupe("init")
    a, _ = _backup(dedupe, "a"), _backup(dedupe, "b")
    dedupe("check")
    dedupe("forget", a)
    _backup(dedupe, "b")
    dedupe("prune", "--keep-last", "1")
    dedupe("check")


def test_a_machine_that_never_checked_reports_nothing(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    a = _backup(dedupe, "a")
    os.unlink(repo_path / "manifests" / a)
    dedupe("check")
