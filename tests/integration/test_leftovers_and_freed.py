"""Issue #18, point 7: gc's "freed" is what it removed less what it wrote (backups racing
it made it negative), and check mentions temporary files interrupted writes left."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dedupe.maintenance.gc_report import GcReport
from dedupe_testing import RunCli


def test_freed_is_not_moved_by_backups_racing_gc() -> None:
    # 100 bytes before; gc deleted 30 and wrote 10; backups meanwhile added 80
    r = GcReport(bytes_before=100, bytes_after=150, bytes_deleted=30, bytes_written=10)
    assert r.freed == 20 and r.to_json()["freed"] == 20
    assert GcReport(bytes_before=100, bytes_after=60, dry_run=True).freed == 40


def test_check_mentions_leftover_temporary_files(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    dedupe("backup", "stream", "g", "-", input=os.urandom(10_000))
    (repo_path / "data" / "ab").mkdir(parents=True, exist_ok=True)
    (repo_path / "data" / "ab" / ".abcdef.tmp").write_bytes(b"x" * 12345)
    p = dedupe("check")
    assert "1 temporary file(s) (12345 bytes) left by interrupted writes" in p.stdout.decode()
    notes = json.loads(dedupe("check", "--json").stdout)["notes"]
    assert any("temporary file" in n for n in notes)
