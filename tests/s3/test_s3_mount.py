"""``dedupe mount`` of an S3 repository (encrypted): trees and streams read through it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import RunCli
from mount.conftest import mounted


def test_mount_an_s3_repository(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    dedupe("init")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "big").write_bytes(os.urandom(3_000_000))
    (tree / "small").write_text("hello\n")
    d = json.loads(dedupe("backup", "dir", "host/tree", str(tree), "--json").stdout)["id"]
    s = json.loads(dedupe("backup", "stream", "db/dump", str(tree / "sub" / "big"), "--json").stdout)["id"]
    mp = tmp_path / "mnt"
    with mounted(s3_url, mp):
        subprocess.run(["diff", "-r", str(tree), str(mp / "by-id" / d[:12])], check=True)
        assert (mp / "by-id" / s[:12] / "dump").read_bytes() == (tree / "sub" / "big").read_bytes()
        assert (mp / "by-group" / "host" / "tree" / "latest" / "small").read_text() == "hello\n"
