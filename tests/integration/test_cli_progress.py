"""Progress on a terminal, silence elsewhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dedupe_testing import CLI, RunCli


def test_status_line_on_a_terminal_only(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    src = tmp_path / "src"
    src.write_bytes(os.urandom(40 << 20))
    master, slave = os.openpty()
    try:
        env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
        p = subprocess.run([*CLI, "backup", "stream", "g", str(src)], stderr=slave, stdout=subprocess.PIPE, env=env)
        os.close(slave)
        shown = b""
        while True:
            try:
                piece = os.read(master, 65536)
            except OSError:
                break
            if not piece:
                break
            shown += piece
    finally:
        os.close(master)
    assert p.returncode == 0
    assert b"backup g" in shown and b"/s" in shown  # bytes read and rate on the status line
    assert b"\r" in shown  # redrawn in place, cleared at the end
    # not a terminal: nothing on stderr
    q = dedupe("backup", "stream", "g", str(src))
    assert q.stderr == b""
