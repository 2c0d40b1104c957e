"""A command-line option wins over the environment, given before or after the command.

With ``DEDUPE_REPO=/a`` set (as the README's cron example sets it), ``dedupe --repo /b
CMD`` must act on ``/b``; the same for every option that also has an environment
variable. Each global option is tried in both positions against an environment that
names something else. (``--s3-endpoint`` is tried in tests/s3/test_s3_cli.py, against the
real gateway.)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dedupe_testing import CLI, TEST_PASSPHRASE

Env = dict[str, str]


def _run(env: Env, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=input, capture_output=True, env=env)


def _ok(env: Env, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    p = _run(env, *args, input=input)
    assert p.returncode == 0, f"dedupe {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}"
    return p


def _both_positions(option: list[str], command: list[str]) -> list[list[str]]:
    """``dedupe OPTION COMMAND`` and ``dedupe COMMAND OPTION``."""
    return [[*option, *command], [*command, *option]]


@pytest.fixture
def two_repos(tmp_path: Path) -> tuple[Path, Path, Env]:
    """Repositories A (holding group ga) and B (holding group gb), and an environment
    whose $DEDUPE_REPO names A."""
    a, b = tmp_path / "a", tmp_path / "b"
    base = {k: v for k, v in os.environ.items() if k != "DEDUPE_DEBUG"}
    for repo, group in ((a, "ga"), (b, "gb")):
        env = {**base, "DEDUPE_REPO": str(repo)}
        _ok(env, "init")
        _ok(env, "backup", "stream", group, "-", input=group.encode() * 1000)
    return a, b, {**base, "DEDUPE_REPO": str(a)}


def _groups(p: subprocess.CompletedProcess[bytes]) -> set[str]:
    return {b["group"] for b in json.loads(p.stdout)}


@pytest.mark.parametrize("flag", ["--repo", "-r"])
def test_repo_option_wins_over_the_environment_in_both_positions(two_repos: tuple[Path, Path, Env],
                                                                 flag: str) -> None:
    _, b, env = two_repos
    for argv in _both_positions([flag, str(b)], ["list", "--json"]):
        assert _groups(_ok(env, *argv)) == {"gb"}, argv
    assert _groups(_ok(env, "list", "--json")) == {"ga"}  # no option: the environment


def test_check_acts_on_the_repository_given_before_the_command(two_repos: tuple[Path, Path, Env]) -> None:
    a, b, env = two_repos
    for pack in (b / "data").rglob("*"):  # B is damaged, A is whole
        if pack.is_file():
            pack.write_bytes(b"x" + pack.read_bytes()[1:])
    assert _run(env, "check", "--read-data").returncode == 0
    for argv in _both_positions(["--repo", str(b)], ["check", "--read-data"]):
        assert _run(env, *argv).returncode == 25, argv


def test_forget_removes_from_the_repository_given_before_the_command(two_repos: tuple[Path, Path, Env]) -> None:
    a, b, env = two_repos
    a_ids = {x["id"] for x in json.loads(_ok(env, "list", "--json").stdout)}
    for argv in _both_positions(["--repo", str(b)], ["forget"]):
        _ok(env, "--repo", str(b), "backup", "stream", "gb", "-", input=os.urandom(100))
        victim = json.loads(_ok(env, "--repo", str(b), "list", "--json").stdout)[-1]["id"]
        _ok(env, *argv, victim)
        left = {x["id"] for x in json.loads(_ok(env, "--repo", str(b), "list", "--json").stdout)}
        assert victim not in left, argv
        assert {x["id"] for x in json.loads(_ok(env, "list", "--json").stdout)} == a_ids, argv


@pytest.fixture
def encrypted(tmp_path: Path) -> tuple[Path, Path, Env]:
    """An encrypted repository, a file holding its passphrase, and an environment whose
    $DEDUPE_PASSPHRASE is wrong."""
    repo = tmp_path / "repo"
    base = {k: v for k, v in os.environ.items() if k != "DEDUPE_DEBUG"}
    env = {**base, "DEDUPE_REPO": str(repo), "DEDUPE_PASSPHRASE": TEST_PASSPHRASE}
    _ok(env, "init")
    _ok(env, "backup", "stream", "g", "-", input=b"secret")
    good = tmp_path / "good"
    good.write_text(TEST_PASSPHRASE + "\n")
    return repo, good, {**env, "DEDUPE_PASSPHRASE": "wrong"}


def test_passphrase_file_wins_over_the_environment_in_both_positions(encrypted: tuple[Path, Path, Env],
                                                                     tmp_path: Path) -> None:
    _, good, env = encrypted
    assert _run(env, "list").returncode == 16  # the environment's passphrase is wrong
    bad_file = tmp_path / "bad"
    bad_file.write_text("not it")
    for variables in ({}, {"DEDUPE_PASSPHRASE_FILE": str(bad_file)}, {"DEDUPE_PASSPHRASE_COMMAND": "echo no"}):
        for argv in _both_positions(["--passphrase-file", str(good)], ["list", "--json"]):
            assert _groups(_ok({**env, **variables}, *argv)) == {"g"}, (variables, argv)


def test_passphrase_command_wins_over_the_environment_in_both_positions(encrypted: tuple[Path, Path, Env]) -> None:
    _, good, env = encrypted
    for argv in _both_positions(["--passphrase-command", f"cat {good}"], ["list", "--json"]):
        assert _groups(_ok(env, *argv)) == {"g"}, argv
        assert _groups(_ok({**env, "DEDUPE_PASSPHRASE_FILE": "/nonexistent"}, *argv)) == {"g"}, argv


def test_command_option_wins_over_the_one_before_it(two_repos: tuple[Path, Path, Env]) -> None:
    a, b, env = two_repos
    assert _groups(_ok(env, "--repo", str(a), "list", "--repo", str(b), "--json")) == {"gb"}


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_output_flags_in_both_positions(two_repos: tuple[Path, Path, Env], flag: str) -> None:
    _, _, env = two_repos
    for argv in _both_positions([flag], ["list"]):
        out = _ok(env, *argv).stdout
        if flag == "--json":
            assert {b["group"] for b in json.loads(out)} == {"ga"}, argv
        else:
            assert out == b"", argv


def test_other_repository_passphrase_options_win_over_the_environment(encrypted: tuple[Path, Path, Env],
                                                                      tmp_path: Path) -> None:
    """``copy --to-passphrase-file`` beats $DEDUPE_TO_PASSPHRASE, and ``init
    --from-passphrase-file`` beats $DEDUPE_FROM_PASSPHRASE."""
    source, good, env = encrypted
    env = {**env, "DEDUPE_PASSPHRASE": TEST_PASSPHRASE, "DEDUPE_TO_PASSPHRASE": "wrong",
           "DEDUPE_FROM_PASSPHRASE": "wrong"}
    target = tmp_path / "target"
    target_env = {**env, "DEDUPE_REPO": str(target)}
    _ok(target_env, "init", "--copy-params-from", str(source), "--from-passphrase-file", str(good))
    copied = json.loads(_ok(env, "copy", "--to", str(target), "--to-passphrase-file", str(good), "--json").stdout)
    assert len(copied["copied"]) == 1
    assert _groups(_ok(target_env, "list", "--json")) == {"g"}
    # and without the options the wrong variables are used
    assert _run(env, "copy", "--to", str(target)).returncode == 16
