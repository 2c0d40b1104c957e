"""Issue #14 item 7: an unchanged night does not rewrite the files cache (only a small
note beside it names the new backup as ``previous``), the next nights still hit and see
the latest backup as ``previous``; a changed night rewrites it (streamed, byte for byte
what one ``msgpack.packb`` of the whole cache gives) and drops the note; a note that does
not belong to the file beside it is ignored."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from dedupe import api
from dedupe.backup import files_cache
from dedupe.backup.files_cache import VERSION, FilesCache
from dedupe.backup.tree import backup_walk
from dedupe.keymgmt import TEST_KDF
from dedupe.repository import Repository
from dedupe.sources.directory import walk_tree
from dedupe.storage.memory import MemoryStorage
from repo_format import manifest

OLD_NS = 1_600_000_000_000_000_000
GROUP = "g"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    for i in range(30):
        (root / "d" / f"f{i}").write_bytes(os.urandom(500 + i))
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))
    return root


def _repo(encrypted: bool) -> Repository:
    if encrypted:
        return Repository.create(MemoryStorage(), passphrase=b"pw", kdf_params=dict(TEST_KDF))
    return Repository.create(MemoryStorage())


def _cached_night(repo: Repository, root: Path, cache_root: Path) -> tuple[FilesCache, str]:
    """A night as the LXD direct path runs it: the cache saved after the commit, with the backup's id."""
    cache = FilesCache(repo, GROUP, root=cache_root)
    with api.session(repo, manifest.KIND_DIR, GROUP) as s:
        total = backup_walk(s, walk_tree(root, lazy_files=True), cache)
        cache.walk_done()
        result = s.commit(total, None, {"root": str(root)})
    assert cache.save(result.id) is None
    return cache, result.id


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sealed"])
def test_an_unchanged_night_leaves_the_cache_file_and_notes_the_backup(tree: Path, tmp_path: Path,
                                                                       encrypted: bool) -> None:
    repo = _repo(encrypted)
    where = tmp_path / "cache"
    first, _ = _cached_night(repo, tree, where)
    assert first.misses == 30 and not first._note_path.exists()
    written = first.path.stat()
    for _ in range(3):
        again, latest = _cached_night(repo, tree, where)
        assert (again.hits, again.misses) == (30, 0)
        after = again.path.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (written.st_ino, written.st_mtime_ns,
                                                                    written.st_size)
        assert FilesCache(repo, GROUP, root=where).previous == latest  # by the note
    assert again._note_path.exists()
    if encrypted:  # the note is sealed like the cache: no backup id in clear
        assert latest.encode() not in again._note_path.read_bytes()

    (tree / "d" / "f3").write_bytes(b"changed")  # a changed night: rewritten, the note gone
    os.utime(tree / "d" / "f3", ns=(OLD_NS, OLD_NS))
    changed, id_changed = _cached_night(repo, tree, where)
    assert changed.misses == 1 and not changed._note_path.exists()
    assert changed.path.stat().st_ino != written.st_ino
    reread = FilesCache(repo, GROUP, root=where)
    assert reread.previous == id_changed and len(reread.old) == 30
    following, _ = _cached_night(repo, tree, where)
    assert (following.hits, following.misses) == (30, 0)


def test_a_note_that_does_not_belong_to_the_file_is_ignored(tree: Path, tmp_path: Path) -> None:
    repo = _repo(False)
    where = tmp_path / "cache"
    _, id1 = _cached_night(repo, tree, where)
    cache = FilesCache(repo, GROUP, root=where)
    cache._note_path.write_bytes(msgpack.packb({"of": [1, 2, 3], "backup": "someone-else"}))
    assert FilesCache(repo, GROUP, root=where).previous == id1
    cache._note_path.write_bytes(b"\xc1 damaged")
    assert FilesCache(repo, GROUP, root=where).previous == id1


def test_a_night_that_drops_a_file_rewrites_the_cache(tree: Path, tmp_path: Path) -> None:
    repo = _repo(False)
    where = tmp_path / "cache"
    first, _ = _cached_night(repo, tree, where)
    ino = first.path.stat().st_ino
    (tree / "d" / "f0").unlink()
    second, _ = _cached_night(repo, tree, where)
    assert second.path.stat().st_ino != ino
    assert len(FilesCache(repo, GROUP, root=where).old) == 29


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sealed"])
def test_the_streamed_cache_is_what_one_packb_gives(tree: Path, tmp_path: Path, encrypted: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_cache, "PACK_PIECE", 1000)  # many pieces
    repo = _repo(encrypted)
    cache, backup_id = _cached_night(repo, tree, tmp_path / "cache")
    reread = FilesCache(repo, GROUP, root=tmp_path / "cache")
    plain = reread._opened(reread.path.read_bytes())
    assert plain == msgpack.packb({"v": VERSION, "files": reread.old, "backup": backup_id}, use_bin_type=True)
    assert len(reread.old) == 30
