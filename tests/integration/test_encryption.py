"""Encryption and key management, end to end (issue 6)."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from dedupe_testing import TEST_PASSPHRASE, RunCli, assert_clean_error
from dedupe.backup.session import BackupSession
from dedupe.keymgmt import TEST_KDF
from dedupe.repository import Repository
from dedupe.backup.stream import backup_stream
from dedupe.storage.local import LocalStorage
from dedupe.storage.memory import MemoryStorage
from repo_format import layout

MARKER = b"MARKER-5f0c1e-the-secret-that-must-not-leak"
GROUP = "lxd/prod/instance/payroll-db"


def all_files(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in repo.rglob("*") if p.is_file()}


def ids(dedupe: RunCli) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json").stdout)]


def test_encrypted_by_default_and_nothing_leaks(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    assert json.loads(dedupe("init", "--json").stdout)["encryption"] == "aes-256-gcm"
    data = (MARKER + b"\n") * 50_000 + os.urandom(100_000) + MARKER
    dedupe("backup", "stream", GROUP, "-", input=data)
    tree = tmp_path / "tree"
    (tree / "secret-directory-name").mkdir(parents=True)
    (tree / "secret-directory-name" / "secret-file-name.conf").write_bytes(MARKER)
    dedupe("backup", "dir", GROUP + "-dir", str(tree))
    for name, content in all_files(repo_path).items():
        for needle in (MARKER, MARKER[:16], GROUP.encode(), b"payroll", b"secret-file-name", b"secret-directory"):
            assert needle not in content, (name, needle)
    assert dedupe("restore", ids(dedupe)[0], "--stdout").stdout == data


def test_plaintext_repositories_on_request(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init", "--encryption", "none")
    dedupe("backup", "stream", "g", "-", input=MARKER * 3, repo=repo_path)
    assert not (repo_path / layout.KEY_FILE).exists()
    env_free = dedupe("list", "--json")  # no passphrase needed (one is set, and unused)
    assert len(json.loads(env_free.stdout)) == 1


def test_chunk_ids_are_keyed_per_repository() -> None:
    data = os.urandom(300_000)
    repos = [Repository.create(MemoryStorage(), passphrase=b"pw", kdf_params=TEST_KDF) for _ in range(2)]
    for r in repos:
        with BackupSession(r, kind="stream", group="g") as s:
            backup_stream(s, io.BytesIO(data))
    a, b = ({cid for cid, _ in r.iter_index()} for r in repos)
    assert a and b and not (a & b)


def test_passphrase_sources(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    dedupe("backup", "stream", "g", "-", input=b"x")
    pw_file = tmp_path / "pw"
    pw_file.write_text(TEST_PASSPHRASE + "\n")
    env = {k: v for k, v in os.environ.items() if k != "DEDUPE_PASSPHRASE"}
    import subprocess

    from dedupe_testing import CLI
    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*CLI, *args], capture_output=True, env={**env, "DEDUPE_REPO": str(repo_path)})
    assert run("--passphrase-file", str(pw_file), "list").returncode == 0
    assert run("--passphrase-command", f"cat {pw_file}", "list").returncode == 0
    assert_clean_error(run("list"), 15, "no passphrase")
    assert_clean_error(run("--passphrase-command", "false", "list"), 15, "exited 1")
    wrong = tmp_path / "wrong"
    wrong.write_text("not it")
    assert_clean_error(run("--passphrase-file", str(wrong), "list"), 16, "wrong passphrase")


def test_change_export_import_keys(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    import subprocess

    from dedupe_testing import CLI
    dedupe("init")
    dedupe("backup", "stream", "g", "-", input=MARKER)
    exported = tmp_path / "key-backup"
    dedupe("key", "export", str(exported))
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert stat.S_IMODE((repo_path / layout.KEY_FILE).stat().st_mode) == 0o600
    assert MARKER not in exported.read_bytes()

    env = {**os.environ, "DEDUPE_REPO": str(repo_path), "DEDUPE_NEW_PASSPHRASE": "new pass"}
    assert subprocess.run([*CLI, "key", "change-passphrase"], env=env, capture_output=True).returncode == 0
    new_env = {**env, "DEDUPE_PASSPHRASE": "new pass"}
    assert subprocess.run([*CLI, "list"], env=new_env, capture_output=True).returncode == 0
    assert_clean_error(dedupe("list", check=False), 16, "wrong passphrase")  # the old one no longer opens it

    # lose the key file: a clear pointer to key import
    (repo_path / layout.KEY_FILE).unlink()
    assert_clean_error(dedupe("list", check=False), 18, "key import")
    # the exported copy still opens with the passphrase it was sealed under (the old one)
    dedupe("key", "import", str(exported))
    rows = json.loads(dedupe("list", "--json").stdout)
    assert dedupe("restore", rows[0]["id"], "--stdout").stdout == MARKER


def test_damaged_key_file_is_not_a_wrong_passphrase(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    keyfile = repo_path / layout.KEY_FILE
    data = bytearray(keyfile.read_bytes())
    data[len(data) // 2] ^= 1
    keyfile.write_bytes(bytes(data))
    assert_clean_error(dedupe("list", check=False), 17, "damaged")


def test_key_of_another_repository_is_refused(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    other = tmp_path / "other"
    dedupe("init", repo=other)
    shutil.copy(other / layout.KEY_FILE, tmp_path / "other-key")
    assert_clean_error(dedupe("key", "import", str(tmp_path / "other-key"), check=False), 17, "another repository")


# -- tampering -------------------------------------------------------------------------------


@pytest.fixture
def two_repos(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    dedupe("init")
    for i in range(2):
        dedupe("backup", "stream", f"g{i}", "-", input=os.urandom(1_500_000) + MARKER)
    other = tmp_path / "other"
    dedupe("init", repo=other)
    dedupe("backup", "stream", "g0", "-", input=os.urandom(1_000_000), repo=other)
    return repo_path, other, ids(dedupe)


def _check_fails(dedupe: RunCli, *words: str) -> str:
    p = dedupe("check", "--read-data", check=False)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode != 0, out
    assert "Traceback" not in out
    for w in words:
        assert w in out, (w, out)
    return out


def _no_wrong_data(dedupe: RunCli, backup_ids: list[str], originals: dict[str, bytes] | None = None) -> None:
    """Restores either fail with a clean error or give the verified original."""
    for bid in backup_ids:
        p = dedupe("restore", bid, "--stdout", check=False)
        if p.returncode == 0:
            assert p.stdout.endswith(MARKER)
        else:
            assert b"Traceback" not in p.stderr and p.stderr.startswith(b"dedupe: ")


def _objects(repo: Path, kind: str) -> list[Path]:
    return sorted(p for p in (repo / kind).rglob("*") if p.is_file())


@pytest.mark.parametrize("where", ["blob", "table", "trailer"])
def test_flipped_bit_in_a_pack(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli, where: str) -> None:
    repo, _, backup_ids = two_repos
    pack = _objects(repo, "data")[0]
    data = bytearray(pack.read_bytes())
    pos = {"blob": 100, "table": len(data) - 40, "trailer": len(data) - 2}[where]
    data[pos] ^= 0x01
    pack.write_bytes(bytes(data))
    _check_fails(dedupe, pack.name[:12])
    _no_wrong_data(dedupe, backup_ids)


@pytest.mark.parametrize("kind", ["index", "manifests"])
def test_flipped_bit_in_segment_or_manifest(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli,
                                            kind: str) -> None:
    repo, _, backup_ids = two_repos
    victim = _objects(repo, kind)[0]
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0x80
    victim.write_bytes(bytes(data))
    p = dedupe("check", check=False)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode != 0 and victim.name[:12] in out and "Traceback" not in out, out
    _no_wrong_data(dedupe, backup_ids)


def test_truncated_files(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli) -> None:
    repo, _, backup_ids = two_repos
    for f in (_objects(repo, "data")[0], _objects(repo, "manifests")[0]):
        f.write_bytes(f.read_bytes()[:-100])
    _check_fails(dedupe)
    _no_wrong_data(dedupe, backup_ids)


def test_two_blobs_swapped_within_a_pack(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli) -> None:
    repo, _, backup_ids = two_repos
    r = Repository.open(LocalStorage(repo), lambda: TEST_PASSPHRASE.encode())
    name = max(r.packs, key=lambda n: r.packs[n].size)
    entries = r.parse_pack(name, r.storage.get(layout.pack_path(name)))
    a, b = entries[0], entries[1]
    path = repo / layout.pack_path(name)
    data = bytearray(path.read_bytes())
    blob_a, blob_b = bytes(data[a.offset:a.offset + a.length]), bytes(data[b.offset:b.offset + b.length])
    n = min(len(blob_a), len(blob_b))  # same-size prefixes swapped keep every offset valid
    data[a.offset:a.offset + n], data[b.offset:b.offset + n] = blob_b[:n], blob_a[:n]
    path.write_bytes(bytes(data))
    _check_fails(dedupe, name[:12])
    _no_wrong_data(dedupe, backup_ids)


def test_two_packs_swapped(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli, tmp_path: Path) -> None:
    repo, _, backup_ids = two_repos
    p1, p2 = _objects(repo, "data")[:2]
    tmp = tmp_path / "swap"
    shutil.move(p1, tmp)
    shutil.move(p2, p1)
    shutil.move(tmp, p2)
    _check_fails(dedupe, p1.name[:12])
    _no_wrong_data(dedupe, backup_ids)


@pytest.mark.parametrize("kind", ["index", "manifests"])
def test_object_from_another_repository(two_repos: tuple[Path, Path, list[str]], dedupe: RunCli, kind: str) -> None:
    repo, other, backup_ids = two_repos
    foreign = _objects(other, kind)[0]
    shutil.copy(foreign, repo / kind / foreign.name)  # under its own (valid) name
    p = dedupe("check", check=False)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode != 0 and foreign.name[:12] in out and "another repository" in out, out
    _no_wrong_data(dedupe, backup_ids)
