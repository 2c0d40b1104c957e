"""``--compression`` on the backup commands, end to end: what is stored, and that every
setting restores the same bytes."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path

import pytest

from dedupe_testing import RunCli


def text_like(size: int, seed: int = 7) -> bytes:
    """Compressible, but not trivially so: words drawn at random."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(3000)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def backup(dedupe: RunCli, repo: Path, *args: str, data: bytes) -> dict[str, object]:
    dedupe("init", "--encryption", "none", repo=repo)
    out: dict[str, object] = json.loads(dedupe("backup", "stream", "g", "-", "--json", *args, input=data,
                                               repo=repo).stdout)
    assert dedupe("restore", str(out["id"]), "--stdout", repo=repo).stdout == data
    assert json.loads(dedupe("check", "--json", repo=repo).stdout)["ok"]
    return out


def test_levels_trade_size_and_none_stores_raw(dedupe: RunCli, tmp_path: Path) -> None:
    data = text_like(6_000_000)
    stored = {spec: backup(dedupe, tmp_path / spec.replace(",", "-"), "--compression", spec, data=data)["new_stored"]
              for spec in ("none", "zstd,1", "zstd,19")}
    default = backup(dedupe, tmp_path / "default", data=data)["new_stored"]
    assert isinstance(stored["none"], int) and stored["none"] >= len(data)  # raw, plus envelopes
    assert stored["zstd,19"] < stored["zstd,1"] < len(data) // 2  # type: ignore[operator]
    assert stored["zstd,19"] <= default <= stored["zstd,1"]  # type: ignore[operator]


def test_the_environment_variable_sets_it(dedupe: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = text_like(1_000_000)
    monkeypatch.setenv("DEDUPE_COMPRESSION", "none")
    assert backup(dedupe, tmp_path / "r", data=data)["new_stored"] >= len(data)  # type: ignore[operator]


def test_tar_and_dir_backups_take_it(dedupe: RunCli, tmp_path: Path) -> None:
    content = text_like(500_000)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "words.txt").write_bytes(content)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("words.txt")
        info.size = len(content)
        t.addfile(info, io.BytesIO(content))
    repo = tmp_path / "r"
    dedupe("init", "--encryption", "none", repo=repo)
    raw = json.loads(dedupe("backup", "tar", "t", "-", "--compression", "none", "--json", input=buf.getvalue(),
                            repo=repo).stdout)
    assert raw["new_stored"] >= len(content)
    assert dedupe("restore", raw["id"], "--stdout", repo=repo).stdout == buf.getvalue()
    repo2 = tmp_path / "r2"
    dedupe("init", "--encryption", "none", repo=repo2)
    packed = json.loads(dedupe("backup", "dir", "d", str(tree), "--compression", "zstd,9", "--json",
                               repo=repo2).stdout)
    assert packed["new_stored"] < len(content) // 2


@pytest.mark.parametrize("spec", ["lz4", "zstd,0", "zstd,23", "zstd,x", "zstd,-1", ""])
def test_a_bad_setting_is_a_usage_error_and_stores_nothing(dedupe: RunCli, tmp_path: Path, spec: str) -> None:
    dedupe("init", "--encryption", "none")
    p = dedupe("backup", "stream", "g", "-", "--compression", spec, input=b"data", check=False)
    err = p.stderr.decode()  # click's usage error: the usage line, then the error
    assert p.returncode == 2 and "Traceback" not in err, err
    assert "Invalid value for '--compression'" in err and "use zstd,N (N from 1 to 22), zstd or none" in err
    assert json.loads(dedupe("list", "--json").stdout) == []
