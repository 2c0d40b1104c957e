"""Issue #18, point 3: the local files cache is 0600 in 0700 directories, holds no path
in clear (an encrypted repository), and one that cannot be written is one warning (exit 3)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dedupe_testing import RunCli

SECRET = "payroll-of-alice-7f3a"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / SECRET).mkdir(parents=True)
    (root / SECRET / f"{SECRET}.txt").write_bytes(b"x" * 5000)
    old = 1_600_000_000
    os.utime(root / SECRET / f"{SECRET}.txt", (old, old))  # not "recent": cached
    return root


def test_the_files_cache_is_private(dedupe: RunCli, tree: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "xdg"
    cache.mkdir(mode=0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    dedupe("init")
    dedupe("backup", "dir", "g", str(tree))
    files = [p for p in (cache / "dedupe").rglob("files-*")]
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    for d in (cache / "dedupe", files[0].parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    # the repository is encrypted (the tests' default): no path in clear in anything cached
    for f in (cache / "dedupe").rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_a_cache_that_cannot_be_written_is_one_warning(dedupe: RunCli, tree: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_dir))
    dedupe("init")
    p = dedupe("backup", "dir", "g", str(tree), check=False)
    assert p.returncode == 3, p.stderr.decode()
    warnings = [line for line in p.stderr.decode().splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "files cache" in warnings[0] and "reads every file" in warnings[0]
