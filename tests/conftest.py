"""Shared fixtures: repositories and a way to run the real command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dedupe.repository import Repository
from dedupe.storage.memory import MemoryStorage
from dedupe_testing import CLI, TEST_PASSPHRASE, RunCli, assert_clean_error  # noqa: F401  (re-exported)
from dedupe_testing import require_root, require_tools


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs_tools("setfacl", ...)`` and ``@pytest.mark.needs_root("why")``:
    a skip on a developer's machine, a failure under CI (dedupe_testing.unmet)."""
    for mark in item.iter_markers("needs_tools"):
        require_tools(*mark.args)
    for mark in item.iter_markers("needs_root"):
        require_root(mark.args[0] if mark.args else "owners, devices, trusted.* xattrs")


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ``$XDG_CACHE_HOME`` (files caches, local records), also
    for the commands it runs as processes: nothing lands in the user's ``~/.cache``, and
    no test sees what another left there. A test that sets its own still wins."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def mem_repo() -> Repository:
    return Repository.create(MemoryStorage())


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    return tmp_path / "repo"


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
