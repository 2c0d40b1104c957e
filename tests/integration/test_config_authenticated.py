"""Issue #18, point 2: an encrypted repository's config is authenticated (FORMAT.md 4.4);
a changed one is an error before anything is written, and an older dedupe says the
repository was written by a newer one."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from dedupe_testing import RunCli, assert_clean_error
from repo_format import config, header, keys, msgpack_codec


@pytest.fixture
def fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each call to dedupe a machine that never saw the repository (no local record of
    its config): what the MAC alone catches."""
    cache = tmp_path / "fresh"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _write(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def _state(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*")) if p.is_file()
            and "locks" not in p.parts}


def test_an_encrypted_config_is_version_2_with_a_mac(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    raw = (repo_path / "config").read_bytes()
    assert raw[:5] == b"DDCF\x02"
    assert "mac" in msgpack_codec.unpack(raw[header.HEADER_LEN:], "t")


@pytest.mark.parametrize("change", ["chunker", "item_chunker", "features", "extra"])
def test_a_changed_config_is_refused_before_anything_is_written(dedupe: RunCli, repo_path: Path,
                                                                fresh_machine: Path, change: str) -> None:
    dedupe("init")
    dedupe("backup", "stream", "g", "-", input=os.urandom(200_000))
    raw = (repo_path / "config").read_bytes()
    body = msgpack_codec.unpack(raw[header.HEADER_LEN:], "t")
    if change == "chunker":
        body["chunker"] = [64, 256, 1024, 1, 0]  # sizes that would fingerprint content
    elif change == "item_chunker":
        body["item_chunker"] = [64, 64, 64, 1, 0]
    elif change == "features":
        body["features"] = ["aead-1", "aead-1"]
    else:
        body["encryption"] = "none"
    _write(repo_path / "config", raw[:header.HEADER_LEN] + msgpack_codec.pack(body))
    before = _state(repo_path)
    for argv in (["backup", "stream", "g", "-"], ["list"], ["check"]):
        p = dedupe(*argv, input=os.urandom(200_000), check=False)
        assert_clean_error(p, 20, "MAC")
    assert _state(repo_path) == before


def _unauthenticated(cfg: config.RepoConfig) -> config.RepoConfig:
    return dataclasses.replace(cfg, chunker=config.ChunkerParams(64, 256, 1024))


def _unencrypted(cfg: config.RepoConfig) -> config.RepoConfig:
    return dataclasses.replace(cfg, features=(), id_key=os.urandom(32), extra={})


REPLACED = {
    # a version 1 copy of an encrypted repository's config (a downgrade)
    "downgrade": ("aes-256-gcm", _unauthenticated, "not authenticated"),
    # an encrypted repository's config turned into an unencrypted one
    "no encryption": ("aes-256-gcm", _unencrypted, "key file"),
    # an unencrypted repository's config: held to what this machine saw (it ran init)
    "unencrypted": ("none", _unauthenticated, "differs from the config this machine saw before"),
}


@pytest.mark.parametrize("case", REPLACED, ids=list(REPLACED))
def test_a_replaced_config_is_refused(dedupe: RunCli, repo_path: Path, case: str) -> None:
    encryption, change, words = REPLACED[case]
    dedupe("init", "--encryption", encryption)
    cfg = config.decode((repo_path / "config").read_bytes())
    _write(repo_path / "config", config.encode(change(cfg)))
    p = dedupe("backup", "stream", "g", "-", input=b"x" * 1000, check=False)
    assert_clean_error(p, 20, words)


def test_a_repository_made_before_the_mac_stays_usable(dedupe: RunCli, repo_path: Path, fresh_machine: Path) -> None:
    """Version 1 config, key file without config_mac: opens, backs up, restores."""
    from dedupe_testing import TEST_PASSPHRASE
    dedupe("init")
    cfg = config.decode((repo_path / "config").read_bytes())
    secrets, repo_id = keys.decode((repo_path / "keys" / "repokey").read_bytes(), TEST_PASSPHRASE.encode(), "k")
    old = dataclasses.replace(secrets, config_mac=False)
    _write(repo_path / "keys" / "repokey", keys.encode(old, repo_id, TEST_PASSPHRASE.encode(), {"t": 1, "m": 8, "p": 1}))
    _write(repo_path / "config", config.encode(cfg))
    shutil.rmtree(fresh_machine)  # this machine knew the repository as it then was
    data = os.urandom(100_000)
    bid = json.loads(dedupe("backup", "stream", "g", "-", "--json", input=data).stdout)["id"]
    assert dedupe("restore", bid, "--stdout").stdout == data


def test_an_older_dedupe_says_written_by_a_newer_one(dedupe: RunCli, repo_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    dedupe("init")
    monkeypatch.setattr(config, "SUPPORTED_VERSIONS", (1,))
    from repo_format.errors import UnsupportedVersionError
    with pytest.raises(UnsupportedVersionError, match="written by a newer dedupe") as e:
        config.decode((repo_path / "config").read_bytes())
    assert e.value.exit_code == 12 if hasattr(e.value, "exit_code") else True
