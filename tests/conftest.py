"""Shared fixtures: repositories and a way to run the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from dedupe.repository import Repository
from dedupe.storage.memory import MemoryStorage

CLI = [sys.executable, "-m", "dedupe"]

# Every repository the tests make is encrypted (the default) under this passphrase,
# with a deliberately cheap key derivation so that each command starts fast.
TEST_PASSPHRASE = "correct horse battery staple"
os.environ.setdefault("DEDUPE_PASSPHRASE", TEST_PASSPHRASE)
os.environ.setdefault("DEDUPE_INSECURE_TEST_KDF", "1")


@pytest.fixture
def mem_repo() -> Repository:
    return Repository.create(MemoryStorage())


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


RunCli = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def dedupe(repo_path: Path) -> RunCli:
    """Run ``dedupe ARGS`` as a separate process against ``repo_path``."""

    def run(*args: str, input: bytes | None = None, repo: Path | None = repo_path,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DEDUPE_REPO": str(repo) if repo is not None else ""}
        env.pop("DEDUPE_DEBUG", None)
        p = subprocess.run([*CLI, *args], input=input, capture_output=True, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"dedupe {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
        return p

    return run


def assert_clean_error(p: subprocess.CompletedProcess[bytes], code: int, *words: str) -> None:
    """A one-line error naming what went wrong, the right exit code, no traceback."""
    err = p.stderr.decode()
    assert p.returncode == code, f"exit {p.returncode}, wanted {code}: {err}"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("dedupe: "), lines[0]
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
