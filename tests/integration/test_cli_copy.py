"""``dedupe copy`` and ``init --copy-params-from`` between local repositories, each
under its own passphrase (issue 7 point 5; the S3 directions are in tests/s3)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from dedupe_testing import TEST_PASSPHRASE, RunCli, assert_clean_error

TARGET_PASSPHRASE = "a different passphrase for the off-site copy"


def stream(seed: int, size: int = 3 << 20) -> bytes:
    return random.Random(seed).randbytes(size)


def backup_ids(dedupe: RunCli, repo: Path) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json", repo=repo).stdout)]


@pytest.fixture
def target(tmp_path: Path, repo_path: Path, dedupe: RunCli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An encrypted target made with the source's parameters, under another passphrase:
    the new repository's passphrase from $DEDUPE_PASSPHRASE, the source's from
    --from-passphrase-file."""
    dedupe("init")
    source_pass = tmp_path / "source-passphrase"
    source_pass.write_text(TEST_PASSPHRASE + "\n")
    path = tmp_path / "target"
    with monkeypatch.context() as m:
        m.setenv("DEDUPE_PASSPHRASE", TARGET_PASSPHRASE)
        dedupe("init", "--copy-params-from", str(repo_path), "--from-passphrase-file",
               str(source_pass), repo=path)
    return path


def test_copy_under_another_passphrase_deduplicates_and_restores(dedupe: RunCli, target: Path,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    night1, night2 = stream(1), stream(1)[: 2 << 20] + stream(2, 1 << 20)
    dedupe("backup", "stream", "db", "-", input=night1)
    to_pass = tmp_path / "target-passphrase"
    to_pass.write_text(TARGET_PASSPHRASE + "\n")

    first = json.loads(dedupe("copy", "--to", str(target), "--to-passphrase-file", str(to_pass), "--json").stdout)
    assert len(first["copied"]) == 1 and first["chunks_sent"] > 0
    assert not first["rechunked"]  # same chunker parameters and id key: chunks keep their ids

    dedupe("backup", "stream", "db", "-", input=night2)
    monkeypatch.setenv("DEDUPE_TO_PASSPHRASE", TARGET_PASSPHRASE)  # the variable works as the option does
    second = json.loads(dedupe("copy", "--to", str(target), "--json").stdout)
    assert len(second["copied"]) == 1 and len(second["skipped"]) == 1
    assert second["chunks_present"] > 0  # night 2 shares its first 2 MiB with night 1
    assert second["raw_bytes_sent"] < len(night2)

    # the target opens under its own passphrase only, and gives back both nights byte for byte
    monkeypatch.delenv("DEDUPE_TO_PASSPHRASE")
    monkeypatch.setenv("DEDUPE_PASSPHRASE", TARGET_PASSPHRASE)
    restored = sorted(dedupe("restore", i, "--stdout", repo=target).stdout for i in backup_ids(dedupe, target))
    assert restored == sorted([night1, night2])
    dedupe("check", "--read-data", repo=target)


def test_copy_with_the_wrong_target_passphrase_is_a_clean_error(dedupe: RunCli, target: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    dedupe("backup", "stream", "db", "-", input=stream(3))
    # no --to-passphrase: the source's passphrase is tried on the target, and refused
    assert_clean_error(dedupe("copy", "--to", str(target), check=False), 16, "passphrase")
    monkeypatch.setenv("DEDUPE_TO_PASSPHRASE", "wrong")
    assert_clean_error(dedupe("copy", "--to", str(target), check=False), 16, "passphrase")
    monkeypatch.setenv("DEDUPE_PASSPHRASE", TARGET_PASSPHRASE)
    assert backup_ids(dedupe, target) == []  # nothing was written


def test_copy_params_from_needs_the_source_passphrase(dedupe: RunCli, tmp_path: Path, repo_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dedupe("init")
    monkeypatch.setenv("DEDUPE_PASSPHRASE", TARGET_PASSPHRASE)
    p = dedupe("init", "--copy-params-from", str(repo_path), repo=tmp_path / "t", check=False)
    assert_clean_error(p, 16, "passphrase")
    assert not (tmp_path / "t" / "config").exists()
