"""Issue #18, point 3: the files cache of an encrypted repository holds no path (nor the
group) in clear: the file is sealed with a key derived from the repository's, its name
keyed; the next backup still hits on every unchanged file; a cache that does not open
is empty; an older plain cache is read once and removed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import msgpack
import pytest

from dedupe import api
from dedupe.backup.files_cache import SEALED_MAGIC, VERSION, FilesCache
from dedupe.backup.tree import backup_dir
from dedupe.keymgmt import TEST_KDF
from dedupe.repository import Repository
from dedupe.storage.memory import MemoryStorage

SECRET = "payroll-of-alice-7f3a"
GROUP = "host/secret-group-name"
OLD_NS = 1_600_000_000_000_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / SECRET / "deeper").mkdir(parents=True)
    for i in range(12):
        (root / SECRET / "deeper" / f"{SECRET}-{i}.txt").write_bytes(os.urandom(2000 + i))
    (root / "plain.txt").write_bytes(b"x" * 3000)
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))
    return root


def _encrypted() -> Repository:
    return Repository.create(MemoryStorage(), passphrase=b"pw", kdf_params=dict(TEST_KDF))


def _night(repo: Repository, root: Path, cache_root: Path) -> FilesCache:
    cache = FilesCache(repo, GROUP, root=cache_root)
    with api.session(repo, "dir", GROUP) as s:
        backup_dir(s, root, files_cache=cache)
    return cache


def test_no_path_in_clear_and_the_next_backup_hits(tree: Path, tmp_path: Path) -> None:
    repo = _encrypted()
    first = _night(repo, tree, tmp_path / "cache")
    assert first.misses == 13 and first.hits == 0
    (written,) = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    data = written.read_bytes()
    assert data.startswith(SEALED_MAGIC)
    for clear in (SECRET, "deeper", "plain.txt", GROUP):
        assert clear.encode() not in data and clear.encode("utf-16-le") not in data
    # the name is keyed: not the unkeyed hash of the group anyone could compute
    assert hashlib.blake2b(GROUP.encode(), digest_size=12).hexdigest() not in written.name
    second = _night(repo, tree, tmp_path / "cache")
    assert (second.hits, second.misses) == (13, 0)  # nothing read again
    third = _night(repo, tree, tmp_path / "cache")  # hits are carried into every next cache
    assert (third.hits, third.misses) == (13, 0)


def test_a_cache_that_does_not_open_is_empty(tree: Path, tmp_path: Path) -> None:
    repo = _encrypted()
    _night(repo, tree, tmp_path / "cache")
    cache = FilesCache(repo, GROUP, root=tmp_path / "cache")
    # another key (same repository id, so the same folder): the file does not open
    other = Repository(repo.storage, repo.config, dataclasses.replace(repo.secrets, enc_key=os.urandom(32)))
    theirs = FilesCache(other, GROUP, root=tmp_path / "cache")
    theirs.path.write_bytes(cache.path.read_bytes())
    assert FilesCache(other, GROUP, root=tmp_path / "cache").old == {}
    # damaged, cut short, or not sealed at all: empty, never an error
    data = cache.path.read_bytes()
    for bad in (data[:-1] + bytes([data[-1] ^ 1]), data[:40], b"", b"\x81\xa1v\x03"):
        cache.path.write_bytes(bad)
        assert FilesCache(repo, GROUP, root=tmp_path / "cache").old == {}
    again = _night(repo, tree, tmp_path / "cache")
    assert again.misses == 13  # read again, stored the same


def test_an_older_plain_cache_is_read_once_then_removed(tree: Path, tmp_path: Path) -> None:
    repo = _encrypted()
    _night(repo, tree, tmp_path / "cache")
    sealed = FilesCache(repo, GROUP, root=tmp_path / "cache")
    plain = sealed.path.with_name("files-" + hashlib.blake2b(GROUP.encode(), digest_size=12).hexdigest())
    plain.write_bytes(msgpack.packb({"v": VERSION, "files": sealed.old, "backup": sealed.previous}, use_bin_type=True))
    sealed.path.unlink()
    after_upgrade = _night(repo, tree, tmp_path / "cache")
    assert (after_upgrade.hits, after_upgrade.misses) == (13, 0)
    assert not plain.exists() and SECRET.encode() not in after_upgrade.path.read_bytes()


def test_an_unencrypted_repository_keeps_a_plain_cache(tree: Path, tmp_path: Path) -> None:
    """Documented: its repository holds every path in clear anyway, and it has no secret."""
    repo = Repository.create(MemoryStorage())
    _night(repo, tree, tmp_path / "cache")
    second = _night(repo, tree, tmp_path / "cache")
    assert (second.hits, second.misses) == (13, 0)
    assert SECRET.encode() in second.path.read_bytes()
