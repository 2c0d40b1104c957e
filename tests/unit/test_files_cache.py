"""The files cache through ``backup_dir``: unchanged files are never opened, on every
unchanged night (a hit is carried into the next cache), and their xattrs and sparse
maps come back from the cache exactly as a walk that opens them reads them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dedupe import api
from dedupe.backup.files_cache import FilesCache
from dedupe.repository import Repository
from dedupe.restore.tree import iter_entries
from dedupe.sources import directory
from dedupe.backup.tree import backup_dir

OLD_NS = 1_600_000_000_000_000_000  # long before the backup: the cache keeps such files


def _tree(root: Path) -> None:
    (root / "d").mkdir(parents=True)
    for i in range(20):
        (root / "d" / f"f{i}").write_bytes(os.urandom(100 + i))
    (root / "x").write_bytes(b"with an xattr")
    os.setxattr(root / "x", "user.k", b"v1")
    with open(root / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"data")
        f.truncate(3 << 20)
    for p in [*root.rglob("*")]:
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))


def _night(repo: Repository, root: Path, cache_root: Path) -> tuple[list[dict[str, object]], FilesCache]:
    cache = FilesCache(repo, "g", root=cache_root)
    with api.session(repo, "dir", "g") as s:
        result = backup_dir(s, root, files_cache=cache)
    entries = [e.to_item() for e, _ in iter_entries(repo, result.manifest)]
    return entries, cache


def test_unchanged_nights_open_no_file_and_store_the_same_entries(
        mem_repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    _tree(root)
    first, cache = _night(mem_repo, root, tmp_path / "cache")
    assert cache.hits == 0
    opened: list[str] = []
    real_open = directory._open_file

    def spy(name: str, dir_fd: int) -> int:
        opened.append(name)
        return real_open(name, dir_fd)

    monkeypatch.setattr(directory, "_open_file", spy)
    for _ in range(2):  # the second unchanged night hits too: hits are carried over
        again, cache = _night(mem_repo, root, tmp_path / "cache")
        assert opened == [] and cache.misses == 0 and cache.hits == 22
        assert again == first
    os.setxattr(root / "x", "user.k", b"v2")  # changes ctime only
    changed, cache = _night(mem_repo, root, tmp_path / "cache")
    assert opened == ["x"] and cache.hits == 21
    assert next(e for e in changed if e["p"] == "x")["x"] == {"user.k": b"v2"}
    sparse = next(e for e in changed if e["p"] == "sparse")
    assert sparse["sp"] == [[1 << 20, 4096]] and sparse["sz"] == 3 << 20  # one block of data


def test_lazy_and_eager_walks_store_identical_items(mem_repo: Repository, tmp_path: Path) -> None:
    root = tmp_path / "t"
    _tree(root)
    with api.session(mem_repo, "dir", "a") as s:
        eager = backup_dir(s, root)  # no cache: every file opened by the walk
    lazy, _ = _night(mem_repo, root, tmp_path / "cache")
    assert [e.to_item() for e, _ in iter_entries(mem_repo, eager.manifest)] == lazy


def test_unchanged_night_items_are_byte_identical_to_an_eager_walk(mem_repo: Repository, tmp_path: Path) -> None:
    """The items an unchanged night takes over as bytes (``lookup_item``) are the
    items a walk that opens every file encodes: the same item chunks."""
    root = tmp_path / "t"
    _tree(root)
    _night(mem_repo, root, tmp_path / "cache")
    cache = FilesCache(mem_repo, "g", root=tmp_path / "cache")
    with api.session(mem_repo, "dir", "g") as s:
        fast = backup_dir(s, root, files_cache=cache)
    assert cache.hits == 22 and cache.misses == 0
    with api.session(mem_repo, "dir", "e") as s:
        eager = backup_dir(s, root)
    assert fast.manifest.items == eager.manifest.items
    assert fast.manifest.item_count == eager.manifest.item_count


def test_files_whose_chunks_are_gone_are_read_again(mem_repo: Repository, tmp_path: Path) -> None:
    """Unchanged files wait for one index search; those whose chunks the repository no
    longer has (gc) are read again, in their place, with the same result."""
    root = tmp_path / "t"
    _tree(root)
    _night(mem_repo, root, tmp_path / "cache")
    other = Repository.create(mem_repo.storage.__class__(), id_key=mem_repo.id_key)  # the same chunk ids
    other.config = mem_repo.config  # and the same repository id: the cache applies
    with api.session(other, "dir", "part") as s:  # some chunks there, most not
        backup_dir(s, root / "d")
    cache = FilesCache(other, "g", root=tmp_path / "cache")
    with api.session(other, "dir", "g") as s:
        result = backup_dir(s, root, files_cache=cache)
    assert cache.hits == 20 and cache.misses == 2 and result.manifest.stats["new_chunks"] > 0
    with api.session(other, "dir", "e") as s:
        eager = backup_dir(s, root)
    assert result.manifest.items == eager.manifest.items
    assert eager.manifest.stats["new_chunks"] == 0  # everything was stored again


def test_a_changed_owner_name_is_not_taken_over(mem_repo: Repository, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored item holds the owner's name: a host whose user database changed
    (same ids, ctime unchanged) stores the new name."""
    root = tmp_path / "t"
    _tree(root)
    _night(mem_repo, root, tmp_path / "cache")
    monkeypatch.setattr(directory, "_user_name", lambda uid: "someone-else")
    again, cache = _night(mem_repo, root, tmp_path / "cache")
    assert cache.hits == 22  # still not read
    assert {e["un"] for e in again if e["t"] == "f"} == {"someone-else"}
